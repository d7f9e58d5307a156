//! The engagement profile (docs/engagement.md, "Definitions") on hand-built datasets, every expected number
//! worked out by hand in the comments: voice, activity windows, lifecycle, score and
//! percentile, value and CLV, health with its components, change and risks; days in a
//! non-UTC zone across midnight and a DST change; decay; thin data.

use chrono::Duration;

use crate::engagement::*;
use crate::helpers::*;

crate::on_both!(
    every_profile_field_matches_a_hand_computed_dataset,
    days_follow_the_tenants_zone_across_midnight_and_a_dst_change,
    the_score_halves_every_half_life_and_ranks_customers,
    health_is_unknown_on_thin_data_and_banded_with_enough,
    clv_uses_the_tenants_churn_and_is_zero_without_purchases,
);

fn lifecycle(w: &pb::ActivityWindow) -> pb::LifecycleState {
    pb::LifecycleState::try_from(w.lifecycle).unwrap()
}

async fn every_profile_field_matches_a_hand_computed_dataset(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = utc(2026, 6, 30, 12, 0); // day D
    let may1 = d - Duration::days(60);
    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    let csat = app.survey(pb::SurveyKind::Csat, Some(5)).await;
    let ces = app.survey(pb::SurveyKind::Ces, Some(7)).await;
    let cfg = pb::ScoringConfig {
        action_weights: [("post_created".to_string(), 2.0), ("call_made".to_string(), 1.0)].into(),
        half_life_days: 10.0,
        profit_margin: 0.5,
        ..Default::default()
    };
    configure(&mut c, cfg, &["action_weights", "half_life_days", "profit_margin"]).await;

    // May 1 (D − 60): one post and a 600 s session; an NPS invitation answered 9.
    set_clock(&app, may1);
    record_ok(&mut c, vec![action("a1", "alice", may1, "post_created", &[]), session("a2", "alice", may1, 600)]).await;
    let issued = app.issue(&nps.id, "alice").await;
    app.surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(issued.token)),
            score: Some(9),
            ..Default::default()
        })
        .await
        .unwrap();

    // June: D − 20 two posts, a call, 300 s, a purchase of 4 000; D − 3 a call, 100 s,
    // a purchase of 2 000; D a post and 200 s. Bob calls once on D − 1; Cara never acts.
    set_clock(&app, d);
    let j10 = d - Duration::days(20);
    let j27 = d - Duration::days(3);
    record_ok(
        &mut c,
        vec![
            action("a3", "alice", j10, "post_created", &[]),
            action("a4", "alice", j10, "post_created", &[]),
            action("a5", "alice", j10, "call_made", &[]),
            session("a6", "alice", j10, 300),
            purchase("a7", "alice", j10, 4_000),
            action("a8", "alice", j27, "call_made", &[]),
            session("a9", "alice", j27, 100),
            purchase("a10", "alice", j27, 2_000),
            action("a11", "alice", d, "post_created", &[]),
            session("a12", "alice", d, 200),
            action("b1", "bob", d - Duration::days(1), "call_made", &[]),
        ],
    )
    .await;
    c.upsert_customer(pb::UpsertCustomerRequest { customer_id: "cara".into(), ..Default::default() }).await.unwrap();
    // Today: NPS 3 (a detractor: opens a follow-up due in 48 h), CSAT 4 of 5, CES 6 of 7.
    let last = app.answer(&nps.id, "alice", 3).await.unwrap();
    assert!(!last.follow_up_id.is_empty());
    app.answer(&csat.id, "alice", 4).await.unwrap();
    app.answer(&ces.id, "alice", 6).await.unwrap();

    let p = profile(&mut c, "alice", None).await;
    assert_eq!(p.customer_id, "alice");
    assert_eq!(p.time_zone, "UTC");

    // Voice.
    let v = p.voice.as_ref().unwrap();
    let latest = v.latest_nps.as_ref().unwrap();
    assert_eq!((latest.score, latest.bucket), (3, pb::Bucket::Detractor as i32));
    assert_eq!(v.nps_history.iter().map(|a| a.score).collect::<Vec<_>>(), vec![3, 9]);
    let (v7, v30, v90) = (&v.windows[0], &v.windows[1], &v.windows[2]);
    assert_eq!((v7.window_days, v30.window_days, v90.window_days), (7, 30, 90));
    assert_eq!((val(&v7.nps_answers), val(&v7.csat_answers), val(&v7.ces_answers)), (1.0, 1.0, 1.0));
    assert_eq!(val(&v7.csat_mean), 4.0);
    close(val(&v7.csat_mean_percent), 75.0); // (4 − 1) / (5 − 1)
    assert_eq!(val(&v7.ces_mean), 6.0);
    close(val(&v7.ces_mean_percent), 500.0 / 6.0); // (6 − 1) / (7 − 1)
    assert_eq!(val(&v7.invitations), 0.0);
    assert!(unset(&v7.response_rate), "no invitation in 7 days");
    assert_eq!((val(&v90.nps_answers), val(&v90.invitations), val(&v90.response_rate)), (2.0, 1.0, 1.0));
    assert_eq!((val(&v.open_follow_ups), val(&v.overdue_follow_ups)), (1.0, 0.0));
    // The tenant's 30-day "after any response" cooldown runs from today's answers.
    assert!(!v.eligible_now);
    let answered = last.record_time.unwrap().seconds;
    let next = v.next_eligible_time.as_ref().unwrap().seconds;
    assert!((answered + 30 * 86_400..=answered + 30 * 86_400 + 5).contains(&next), "{next} vs {answered}");

    // Activity.
    let a = p.activity.as_ref().unwrap();
    assert_eq!((a.first_seen_date.as_str(), a.last_seen_date.as_str()), ("2026-05-01", "2026-06-30"));
    assert_eq!(val(&a.recency_days), 0.0);
    let (w7, w30, w90) = (&a.windows[0], &a.windows[1], &a.windows[2]);
    assert_eq!((w7.start_date.as_str(), w7.end_date.as_str()), ("2026-06-24", "2026-06-30"));
    // 7 days: Jun 27 (call, session, purchase) and Jun 30 (post, session).
    assert_eq!((val(&w7.active_days), val(&w7.events), val(&w7.actions)), (2.0, 5.0, 2.0));
    close(val(&w7.stickiness), 2.0 / 7.0);
    assert_eq!((val(&w7.sessions), val(&w7.total_session_seconds), val(&w7.mean_session_seconds)), (2.0, 300.0, 150.0));
    close(val(&w7.visits_per_week), 2.0);
    let counts = |w: &pb::ActivityWindow| -> Vec<(String, f64)> {
        w.core_actions.iter().map(|x| (x.action.clone(), val(&x.count))).collect()
    };
    assert_eq!(counts(w7), vec![("call_made".into(), 1.0), ("post_created".into(), 1.0)]);
    assert_eq!(lifecycle(w7), pb::LifecycleState::Resurrecting); // nothing Jun 17–23, seen before
    // 30 days: Jun 10 (5 events), Jun 27 (3), Jun 30 (2).
    assert_eq!((val(&w30.active_days), val(&w30.events), val(&w30.actions)), (3.0, 10.0, 5.0));
    close(val(&w30.stickiness), 0.1);
    assert_eq!(
        (val(&w30.sessions), val(&w30.total_session_seconds), val(&w30.mean_session_seconds)),
        (3.0, 600.0, 200.0)
    );
    close(val(&w30.visits_per_week), 3.0 * 7.0 / 30.0);
    assert_eq!(counts(w30), vec![("call_made".into(), 2.0), ("post_created".into(), 3.0)]);
    assert_eq!(lifecycle(w30), pb::LifecycleState::Resurrecting); // nothing May 2–31
    // 90 days: May 1 too; first seen inside the period: new.
    assert_eq!((val(&w90.active_days), val(&w90.events), val(&w90.sessions)), (4.0, 12.0, 4.0));
    assert_eq!(val(&w90.mean_session_seconds), 300.0);
    close(val(&w90.visits_per_week), 4.0 * 7.0 / 90.0);
    assert_eq!(counts(w90), vec![("call_made".into(), 2.0), ("post_created".into(), 4.0)]);
    assert_eq!(lifecycle(w90), pb::LifecycleState::New);
    let fw = a.first_week.as_ref().unwrap();
    assert_eq!((fw.start_date.as_str(), fw.end_date.as_str()), ("2026-05-01", "2026-05-07"));
    assert_eq!((val(&fw.actions), val(&fw.active_days), val(&fw.sessions)), (1.0, 1.0, 1.0));
    // Every number says its window and definition.
    let m = w30.stickiness.as_ref().unwrap();
    assert_eq!(m.window_days, 30);
    assert_eq!(m.start_time.as_ref().unwrap().seconds, utc(2026, 6, 1, 0, 0).timestamp());
    assert!(!m.definition.is_empty());

    // Engagement score: day weights May 1: 2, Jun 10: 2·2 + 1 = 5, Jun 27: 1, Jun 30: 2,
    // each × 2^(−age / 10).
    let e = p.engagement_score.as_ref().unwrap();
    let expected = 2.0 * 2f64.powf(-6.0) + 5.0 * 2f64.powf(-2.0) + 2f64.powf(-0.3) + 2.0;
    close(val(&e.score), expected);
    // Ranked among alice, bob (a call yesterday: 2^−0.1) and cara (0): both others lower.
    assert_eq!((val(&e.percentile), e.ranked_customers, e.percentile_exact), (100.0, 3, true));
    let pb_bob = profile(&mut c, "bob", None).await;
    assert_eq!(val(&pb_bob.engagement_score.as_ref().unwrap().percentile), 50.0);
    close(val(&pb_bob.engagement_score.as_ref().unwrap().score), 2f64.powf(-0.1));
    let pc = profile(&mut c, "cara", None).await;
    assert_eq!(val(&pc.engagement_score.as_ref().unwrap().percentile), 0.0);
    assert_eq!(lifecycle(&pc.activity.as_ref().unwrap().windows[0]), pb::LifecycleState::NeverActive);

    // Value: revenue 6 000 in 2 purchases; margin 0.5; 61 days observed → 2 / (61 / 30)
    // purchases a month; nobody churned → lifetime 60 months.
    let val_ = p.value.as_ref().unwrap();
    assert_eq!(val_.currency, "USD");
    let (r7, r30) = (&val_.windows[0], &val_.windows[1]);
    assert_eq!((val(&r7.revenue), val(&r7.purchases), val(&r7.mean_order_value)), (2_000.0, 1.0, 2_000.0));
    assert_eq!((val(&r30.revenue), val(&r30.purchases), val(&r30.mean_order_value)), (6_000.0, 2.0, 3_000.0));
    assert_eq!((val(&val_.lifetime_revenue), val(&val_.lifetime_purchases)), (6_000.0, 2.0));
    assert_eq!(val(&val_.historical_value), 3_000.0);
    close(val(&val_.purchases_per_month), 2.0 * 30.0 / 61.0);
    assert_eq!(val(&val_.expected_lifetime_months), 60.0);
    close(val(&val_.predicted_clv), 3_000.0 * (60.0 / 61.0) * 60.0 * 0.5);

    // Health now: engagement 100 (w 2), stickiness 10, recency 100, NPS 30 (w 2), CSAT 75,
    // effort 83.33, follow-ups 50 (one open): Σ / 9.
    let h = p.health.as_ref().unwrap();
    let now_score = (2.0 * 100.0 + 10.0 + 100.0 + 2.0 * 30.0 + 75.0 + 500.0 / 6.0 + 50.0) / 9.0;
    close(val(&h.score), now_score);
    assert_eq!(h.band, pb::HealthBand::Yellow as i32);
    assert_eq!((h.components_with_data, h.min_components), (7, 3));
    let sum: f64 = h.components.iter().filter_map(|x| x.contribution).sum();
    close(sum, now_score);
    let nps_c = h.components.iter().find(|x| x.kind == pb::HealthComponentKind::Nps as i32).unwrap();
    close(nps_c.contribution.unwrap(), 2.0 * 30.0 / 9.0);
    // 30 days before (May 31): stickiness 0, recency 0, NPS 90 (w 2), follow-ups 100;
    // no percentile then: 280 / 5 = 56.
    close(val(&h.score_30_days_before), 56.0);
    close(val(&h.change), now_score - 56.0);
    assert_eq!(h.risks, vec![pb::RiskFlag::Detractor as i32]);
}

async fn days_follow_the_tenants_zone_across_midnight_and_a_dst_change(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    set_clock(&app, utc(2026, 4, 5, 12, 0));
    configure(&mut c, pb::ScoringConfig { time_zone: "Europe/Berlin".into(), ..Default::default() }, &["time_zone"])
        .await;
    // Berlin leaves UTC+1 for UTC+2 at 01:00 UTC on 2026-03-29.
    record_ok(
        &mut c,
        vec![
            session("d1", "dst", utc(2026, 3, 28, 22, 59), 1), // 23:59 Mar 28, Berlin
            session("d2", "dst", utc(2026, 3, 28, 23, 1), 1),  // 00:01 Mar 29
            session("d3", "dst", utc(2026, 3, 29, 21, 59), 1), // 23:59 Mar 29 (summer time)
            session("d4", "dst", utc(2026, 3, 29, 22, 1), 1),  // 00:01 Mar 30
            session("x1", "x", utc(2026, 3, 28, 23, 1), 1),    // Mar 29 in Berlin, Mar 28 in UTC
            session("y1", "y", utc(2026, 3, 29, 21, 59), 1),   // Mar 29 in both
            session("z1", "z", utc(2026, 3, 29, 22, 1), 1),    // Mar 30 in Berlin, Mar 29 in UTC
        ],
    )
    .await;
    let p = profile(&mut c, "dst", None).await;
    assert_eq!(p.time_zone, "Europe/Berlin");
    let a = p.activity.as_ref().unwrap();
    assert_eq!((a.first_seen_date.as_str(), a.last_seen_date.as_str()), ("2026-03-28", "2026-03-30"));
    assert_eq!(val(&a.recency_days), 6.0); // Mar 30 → Apr 5
    assert_eq!(val(&a.windows[1].active_days), 3.0);
    // The 7 days Mar 30–Apr 5 start at local midnight, 22:00 UTC on Mar 29.
    assert_eq!(val(&a.windows[0].active_days), 1.0);
    let start = a.windows[0].active_days.as_ref().unwrap().start_time.as_ref().unwrap().seconds;
    assert_eq!(start, utc(2026, 3, 29, 22, 0).timestamp());
    assert_eq!(a.first_week.as_ref().unwrap().end_date, "2026-04-03");

    // DAU of Berlin's Mar 29 (as of 23:59 local): dst, x, y. Of Mar 30: dst and z.
    let m = metrics(&mut c, 1, Some(utc(2026, 3, 29, 21, 59))).await;
    assert_eq!(val(&m.dau), 3.0);
    assert_eq!(m.end_date, "2026-03-29");
    let m = metrics(&mut c, 1, Some(utc(2026, 3, 29, 22, 30))).await;
    assert_eq!(val(&m.dau), 2.0);
    assert_eq!(m.end_date, "2026-03-30");
    // Mar 28, local: only dst's first session.
    let m = metrics(&mut c, 1, Some(utc(2026, 3, 28, 22, 59))).await;
    assert_eq!(val(&m.dau), 1.0);

    // Back to UTC: the roll-ups are recomputed from the raw events.
    configure(&mut c, pb::ScoringConfig { time_zone: "UTC".into(), ..Default::default() }, &["time_zone"]).await;
    let p = profile(&mut c, "dst", None).await;
    let a = p.activity.as_ref().unwrap();
    assert_eq!((a.first_seen_date.as_str(), a.last_seen_date.as_str()), ("2026-03-28", "2026-03-29"));
    assert_eq!(val(&a.windows[1].active_days), 2.0);
    assert_eq!(val(&a.windows[0].active_days), 0.0);
    let m = metrics(&mut c, 1, Some(utc(2026, 3, 29, 21, 59))).await;
    assert_eq!(val(&m.dau), 3.0, "dst, y and z on Mar 29 UTC");
}

async fn the_score_halves_every_half_life_and_ranks_customers(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = utc(2026, 6, 30, 12, 0);
    set_clock(&app, d);
    configure(
        &mut c,
        pb::ScoringConfig {
            action_weights: [("post".to_string(), 1.0)].into(),
            half_life_days: 7.0,
            ..Default::default()
        },
        &["action_weights", "half_life_days"],
    )
    .await;
    let ago = |n: i64| d - Duration::days(n);
    record_ok(
        &mut c,
        vec![
            action("p1a", "p1", ago(7), "post", &[]),  // 0.5
            action("p2a", "p2", ago(14), "post", &[]), // 0.25 …
            action("p2b", "p2", d, "post", &[]),       // … + 1 = 1.25
            action("p3a", "p3", ago(7), "post", &[]),  // 2 × 0.5 = 1
            action("p3b", "p3", ago(7), "post", &[]),
            session("p4a", "p4", d, 5), // 0
        ],
    )
    .await;
    let score = |p: &pb::EngagementProfile| val(&p.engagement_score.as_ref().unwrap().score);
    let pct = |p: &pb::EngagementProfile| val(&p.engagement_score.as_ref().unwrap().percentile);
    let expected = [("p1", 0.5, 100.0 / 3.0), ("p2", 1.25, 100.0), ("p3", 1.0, 200.0 / 3.0), ("p4", 0.0, 0.0)];
    for (id, s, p) in expected {
        let prof = profile(&mut c, id, None).await;
        close(score(&prof), s);
        close(pct(&prof), p);
    }
    // A week later every score has halved; the ranking is the same.
    set_clock(&app, d + Duration::days(7));
    for (id, s, p) in expected {
        let prof = profile(&mut c, id, None).await;
        close(score(&prof), s / 2.0);
        close(pct(&prof), p);
    }

    let top = |ascending: bool, include_zero: bool, size: i32, token: String| pb::ListTopCustomersRequest {
        ranking: Some(pb::list_top_customers_request::Ranking::EngagementScore(true)),
        include_zero,
        order: if ascending { pb::RankOrder::Ascending } else { pb::RankOrder::Descending } as i32,
        page_size: size,
        page_token: token,
        ..Default::default()
    };
    let r = c.list_top_customers(top(false, false, 0, String::new())).await.unwrap().into_inner();
    let got: Vec<(String, f64)> = r.customers.iter().map(|x| (x.customer_id.clone(), x.value)).collect();
    assert_eq!(got.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), vec!["p2", "p3", "p1"]);
    close(got[0].1, 0.625);
    assert_eq!(r.customers.iter().map(|x| x.rank).collect::<Vec<_>>(), vec![1, 2, 3]);
    // Ascending with the zeros, two at a time.
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let r = c.list_top_customers(top(true, true, 2, token)).await.unwrap().into_inner();
        all.extend(r.customers.iter().map(|x| (x.rank, x.customer_id.clone())));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let ids: Vec<&str> = all.iter().map(|x| x.1.as_str()).collect();
    assert_eq!(ids, vec!["p4", "p1", "p3", "p2"]);
    assert_eq!(all.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

    // A new half-life recomputes every score from the raw events.
    configure(&mut c, pb::ScoringConfig { half_life_days: 14.0, ..Default::default() }, &["half_life_days"]).await;
    let prof = profile(&mut c, "p1", None).await;
    close(score(&prof), 0.5); // 14 days old at half-life 14
    let prof = profile(&mut c, "p2", None).await;
    close(score(&prof), 2f64.powf(-1.5) + 2f64.powf(-0.5));
}

async fn health_is_unknown_on_thin_data_and_banded_with_enough(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = utc(2026, 6, 30, 12, 0);
    set_clock(&app, d);
    record_ok(&mut c, vec![session("t1", "thin", d, 30)]).await;
    // One customer: no percentile; stickiness 100/30 and recency 100 only.
    let p = profile(&mut c, "thin", None).await;
    let h = p.health.as_ref().unwrap();
    assert_eq!(h.components_with_data, 2);
    assert_eq!(h.band, pb::HealthBand::Unknown as i32);
    close(val(&h.score), (100.0 / 30.0 + 100.0) / 2.0);
    assert!(unset(&p.engagement_score.as_ref().unwrap().percentile));
    assert!(h.risks.contains(&(pb::RiskFlag::Silent as i32)), "active, never answered");
    assert!(unset(&h.change));

    // With an NPS of 10: + NPS 100 (w 2) and follow-ups 100 → (3.33 + 100 + 200 + 100) / 5.
    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&nps.id, "thin", 10).await.unwrap();
    let p = profile(&mut c, "thin", None).await;
    let h = p.health.as_ref().unwrap();
    assert_eq!(h.components_with_data, 4);
    close(val(&h.score), (100.0 / 30.0 + 100.0 + 200.0 + 100.0) / 5.0);
    assert_eq!(h.band, pb::HealthBand::Green as i32);
    assert!(h.risks.is_empty(), "{:?}", h.risks);

    // A customer who never did anything ties with "thin" (no weighted action either):
    // the 50th percentile is all the health score has — UNKNOWN, never painted.
    c.upsert_customer(pb::UpsertCustomerRequest { customer_id: "ghost".into(), ..Default::default() }).await.unwrap();
    let p = profile(&mut c, "ghost", None).await;
    let h = p.health.as_ref().unwrap();
    assert_eq!((val(&h.score), h.components_with_data), (50.0, 1));
    assert_eq!(h.band, pb::HealthBand::Unknown as i32);
    assert!(p.activity.as_ref().unwrap().first_week.is_none());

    // Inactive for 20 days with activity down: flagged.
    set_clock(&app, d + Duration::days(20));
    let p = profile(&mut c, "thin", None).await;
    let risks = &p.health.as_ref().unwrap().risks;
    assert!(risks.contains(&(pb::RiskFlag::Inactive as i32)), "{risks:?}");
    assert!(!risks.contains(&(pb::RiskFlag::ActivityDown as i32)), "nothing in the 30 days before: no drop");
}

async fn clv_uses_the_tenants_churn_and_is_zero_without_purchases(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = utc(2026, 6, 30, 12, 0);
    configure(&mut c, pb::ScoringConfig { profit_margin: 0.25, ..Default::default() }, &["profit_margin"]).await;
    // u1–u4 active on May 21 (D − 40); only u1 comes back, within 30 days (Jun 15).
    set_clock(&app, d - Duration::days(40));
    let may21 = d - Duration::days(40);
    record_ok(&mut c, (1..=4).map(|i| session(&format!("u{i}"), &format!("u{i}"), may21, 60)).collect()).await;
    set_clock(&app, d);
    record_ok(
        &mut c,
        vec![
            session("u1b", "u1", d - Duration::days(15), 60),
            purchase("k1", "buyer", d - Duration::days(20), 3_000),
            purchase("k2", "buyer", d, 1_000),
        ],
    )
    .await;
    // Churn over Jun 1–30 (threshold 30): u2–u4 churned on Jun 20; the 30 days before
    // (May 2–31) had u1–u4 active: 3 / 4 → lifetime 4 / 3 months.
    let p = profile(&mut c, "buyer", None).await;
    let v = p.value.as_ref().unwrap();
    close(val(&v.expected_lifetime_months), 4.0 / 3.0);
    // Mean order 2 000; first seen Jun 10 → less than a month observed, counted as one:
    // 2 purchases a month; × 4/3 × 0.25.
    assert_eq!(val(&v.mean_order_value), 2_000.0);
    assert_eq!(val(&v.purchases_per_month), 2.0);
    close(val(&v.predicted_clv), 2_000.0 * 2.0 * (4.0 / 3.0) * 0.25);
    assert_eq!(val(&v.historical_value), 1_000.0);

    let p = profile(&mut c, "u1", None).await;
    let v = p.value.as_ref().unwrap();
    assert_eq!(val(&v.predicted_clv), 0.0);
    assert!(unset(&v.mean_order_value));
    assert_eq!(val(&v.lifetime_revenue), 0.0);
}
