//! Org-wide engagement metrics, rankings and property values (docs/engagement.md, "Definitions") on
//! hand-built datasets; the expected numbers are worked out in the comments.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait as _, Statement};

use crate::engagement::*;
use crate::helpers::*;

crate::on_both!(
    org_metrics_match_a_hand_built_dataset,
    net_revenue_retention_matches_the_purchases_summed_per_customer,
    folding_old_days_beside_concurrent_batches_keeps_every_metric,
    top_customers_by_action_per_property_value_and_with_those_who_never_did_it,
    top_property_values_rank_values_by_events,
    bad_metric_and_ranking_requests_name_their_fields,
);

fn day(m: u32, d: u32) -> DateTime<Utc> {
    utc(2026, m, d, 12, 0)
}

/// The fold's cut-off on `today`: the UTC day number minus two.
fn fold_before(today: DateTime<Utc>) -> i32 {
    today.timestamp().div_euclid(86_400) as i32 - 2
}

/// Rows of the gap histogram for the days the fold folds on `today`, in the shards
/// `shards` says (`">= 0"`: unfolded rows; `"= -1"`: folded ones).
async fn old_gap_rows(app: &TestApp, today: DateTime<Utc>, shards: &str) -> u64 {
    let conn = app.services.db.conn();
    let sql = format!("SELECT COUNT(*) FROM engagement_gaps WHERE day < {} AND shard {shards}", fold_before(today));
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap();
    row.unwrap().try_get_by_index::<i64>(0).unwrap() as u64
}

async fn org_metrics_match_a_hand_built_dataset(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    // Active days (2026): A May 15, Jun 12, 25, 30; B Jun 14, 29; C May 20; D Jun 22, 30;
    // E May 25; F Jun 15; G Apr 10, Jun 23. Purchases: A 1 000 (Jun 12) and 1 500
    // (Jun 25); B 2 000 (Jun 14); D 500 (Jun 22); F 700 (Jun 15).
    set_clock(&app, day(4, 10));
    record_ok(&mut c, vec![session("g1", "G", day(4, 10), 1)]).await;
    set_clock(&app, day(5, 25));
    record_ok(
        &mut c,
        vec![session("a1", "A", day(5, 15), 1), session("c1", "C", day(5, 20), 1), session("e1", "E", day(5, 25), 1)],
    )
    .await;
    set_clock(&app, day(6, 30));
    record_ok(
        &mut c,
        vec![
            session("a2", "A", day(6, 12), 1),
            purchase("a3", "A", day(6, 12), 1_000),
            purchase("a4", "A", day(6, 25), 1_500),
            session("a5", "A", day(6, 30), 1),
            purchase("b1", "B", day(6, 14), 2_000),
            session("b2", "B", day(6, 29), 1),
            purchase("d1", "D", day(6, 22), 500),
            session("d2", "D", day(6, 30), 1),
            purchase("f1", "F", day(6, 15), 700),
            session("g2", "G", day(6, 23), 1),
        ],
    )
    .await;

    // Window of 10 days: Jun 21–30; the previous one Jun 11–20.
    let m = metrics(&mut c, 10, None).await;
    assert_eq!((m.start_date.as_str(), m.end_date.as_str(), m.window_days), ("2026-06-21", "2026-06-30", 10));
    assert_eq!(val(&m.dau), 2.0); // A, D
    assert_eq!(val(&m.wau), 3.0); // Jun 24–30: A, B, D
    assert_eq!(val(&m.mau), 5.0); // Jun 1–30: A, B, D, F, G
    // Daily actives Jun 22 D, 23 G, 25 A, 29 B, 30 A+D: 6 over 10 days.
    close(val(&m.mean_dau), 0.6);
    close(val(&m.stickiness), 0.6 / 5.0);
    assert_eq!(val(&m.new_customers), 1.0); // D
    // E's 30 silent days end on Jun 24 (C's on Jun 19, before the window).
    assert_eq!(val(&m.churned_customers), 1.0);
    // Active in the 30 days before the window (May 22–Jun 20): A, B, E, F.
    assert_eq!(val(&m.customers_at_start), 4.0);
    close(val(&m.churn_rate), 0.25);
    // Active Jun 11–20: A, B, F; of them A and B again in Jun 21–30.
    assert_eq!((val(&m.previously_active), val(&m.retained_customers)), (3.0, 2.0));
    close(val(&m.retention_rate), 2.0 / 3.0);
    // Bought Jun 11–20: A 1 000, B 2 000, F 700; the same customers since: A 1 500.
    assert_eq!((val(&m.previous_revenue), val(&m.retained_revenue)), (3_700.0, 1_500.0));
    close(val(&m.net_revenue_retention), 1_500.0 / 3_700.0);
    // Cohorts Jan–Jun by first-seen month: Apr {G}, May {A, C, E}, Jun {B, D, F}.
    let months: Vec<&str> = m.cohorts.iter().map(|c| c.month.as_str()).collect();
    assert_eq!(months, vec!["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]);
    let apr = &m.cohorts[3];
    assert_eq!((apr.size, apr.active.clone()), (1, vec![1, 0, 1]));
    assert_eq!(apr.retention, vec![1.0, 0.0, 1.0]);
    let may = &m.cohorts[4];
    assert_eq!((may.size, may.active.clone()), (3, vec![3, 1]));
    close(may.retention[1], 1.0 / 3.0);
    assert_eq!((m.cohorts[5].size, m.cohorts[5].active.clone()), (3, vec![3]));
    assert_eq!(m.cohorts[0].size, 0);
    assert!(m.stickiness.as_ref().unwrap().definition.contains("MAU"));

    // As of Jun 20: nobody that day; May 22–Jun 20 had A, B, E, F.
    let m = metrics(&mut c, 10, Some(day(6, 20))).await;
    assert_eq!((val(&m.dau), val(&m.mau)), (0.0, 4.0));
    // Jun 11–20: new B, F; churned C (May 20 + 30 = Jun 19).
    assert_eq!((val(&m.new_customers), val(&m.churned_customers)), (2.0, 1.0));
    // An empty window has undefined rates, not zeros.
    let m = metrics(&mut c, 7, Some(day(4, 1))).await;
    assert!(unset(&m.stickiness) && unset(&m.churn_rate) && unset(&m.retention_rate));
    assert!(unset(&m.net_revenue_retention));
}

/// Net revenue retention, kept up batch by batch over 70 days (purchases late by up
/// to 20 days, several on one day, customers who buy in one window only), against the
/// purchases summed per customer here: on the last recorded day (read from the
/// revenue histogram), on earlier as-of days and with a purchase recorded a day ahead
/// (both counted per customer), and on the day that purchase falls on.
async fn net_revenue_retention_matches_the_purchases_summed_per_customer(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let start = day(3, 1);
    let at = |d: i64| start + Duration::days(d);
    // Per customer: day (from `start`) → revenue.
    let mut bought: Vec<BTreeMap<i64, i64>> = vec![BTreeMap::new(); 8];
    let mut x: u64 = 5;
    let mut next = |m: u64| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    let mut sent = 0;
    for today in 0..70 {
        set_clock(&app, at(today));
        let mut events = Vec::new();
        for _ in 0..1 + next(3) {
            let customer = next(8) as usize;
            let d = if next(4) == 0 { (today - next(21) as i64).max(0) } else { today };
            let amount = 1 + next(900) as i64;
            *bought[customer].entry(d).or_default() += amount;
            sent += 1;
            events.push(purchase(&format!("p{sent}"), &format!("c{customer}"), at(d), amount));
        }
        record_ok(&mut c, events).await;
    }
    // (previous, retained) for the window of `w` days ending on day `t`.
    let expected = |bought: &[BTreeMap<i64, i64>], t: i64, w: i64| {
        let sum = |b: &BTreeMap<i64, i64>, lo: i64, hi: i64| b.range(lo..=hi).map(|(_, r)| r).sum::<i64>();
        let previous: i64 = bought.iter().map(|b| sum(b, t - 2 * w + 1, t - w)).sum();
        let retained: i64 =
            bought.iter().filter(|b| sum(b, t - 2 * w + 1, t - w) > 0).map(|b| sum(b, t - w + 1, t)).sum();
        (previous as f64, retained as f64)
    };
    let mut kept = 0;
    for (t, w) in [(69, 1), (69, 3), (69, 7), (69, 10), (69, 30), (69, 35), (50, 7), (40, 14), (45, 20)] {
        let m = metrics(&mut c, w as i32, (t < 69).then(|| at(t))).await;
        let want = expected(&bought, t, w);
        assert_eq!((val(&m.previous_revenue), val(&m.retained_revenue)), want, "as of day {t}, {w} days");
        kept += usize::from(want.1 > 0.0);
    }
    assert!(kept >= 6, "most windows keep some revenue ({kept})");

    // A purchase 18 hours ahead, on day 70: today's figures do not count it.
    set_clock(&app, at(69));
    record_ok(&mut c, vec![purchase("ahead", "c1", at(70) - Duration::hours(6), 4_321)]).await;
    for w in [1, 7, 30] {
        let m = metrics(&mut c, w as i32, None).await;
        assert_eq!((val(&m.previous_revenue), val(&m.retained_revenue)), expected(&bought, 69, w), "{w} days");
    }
    // On day 70 it counts.
    *bought[1].entry(70).or_default() += 4_321;
    set_clock(&app, at(70));
    for w in [1, 7, 30] {
        let m = metrics(&mut c, w as i32, None).await;
        assert_eq!((val(&m.previous_revenue), val(&m.retained_revenue)), expected(&bought, 70, w), "day 70, {w} days");
    }
}

/// The fold (docs/engagement.md, "Shards and the fold") running again and again beside
/// concurrent batches, late events for old days among them, and two folds at once (the
/// worker's, every 10 ms, and this test's, in chunks of 7 rows): the metrics are what
/// the events give, counted here per customer, and the old days are left one row per
/// key.
async fn folding_old_days_beside_concurrent_batches_keeps_every_metric(b: Backend) {
    let app = spawn_app_with(b, |a| a.outbox.rollup_fold_ms = 10).await;
    let today = day(5, 10);
    set_clock(&app, today);
    let at = |ago: i64, hour: i64| today - Duration::days(ago) + Duration::hours(hour);
    let mut next = {
        let mut x: u64 = 11;
        move |m: u64| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % m
        }
    };
    // Per customer: days ago → revenue (0: active without buying).
    let mut days: Vec<BTreeMap<i64, i64>> = vec![BTreeMap::new(); 150];
    let mut events = Vec::new();
    for i in 0..1_500 {
        // RecordEvents takes events up to 30 days old.
        let (customer, ago, hour) = (next(150) as usize, next(30) as i64, next(23) as i64 - 11);
        let id = format!("e{i}");
        let revenue = if next(5) == 0 { 1 + next(900) as i64 } else { 0 };
        *days[customer].entry(ago).or_default() += revenue;
        let who = format!("c{customer}");
        events.push(if revenue > 0 {
            purchase(&id, &who, at(ago, hour), revenue)
        } else {
            session(&id, &who, at(ago, hour), 30)
        });
    }
    // Six clients, each sending every sixth batch of 50, while this test folds too.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let folds = {
        let (services, done) = (app.services.clone(), done.clone());
        let tenant = rapport::store::tenants::find_tenant(&app.services.db, "acme").await.unwrap();
        let before = fold_before(today);
        tokio::spawn(async move {
            let mut moved = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match rapport::store::engagement::fold_old_days(&services.db, &tenant, before, 7).await {
                    Ok(n) => moved += n,
                    // The worker's fold held a row this one needed (PostgreSQL).
                    Err(e) if e.is_transient() => {}
                    Err(e) => panic!("a fold: {e}"),
                }
            }
            moved
        })
    };
    let batches: Vec<Vec<pb::ActivityEvent>> = events.chunks(50).map(|c| c.to_vec()).collect();
    let mut clients = Vec::new();
    for k in 0..6 {
        let mut c = engagement(&app, None);
        let mine: Vec<_> = batches.iter().skip(k).step_by(6).cloned().collect();
        clients.push(tokio::spawn(async move {
            for batch in mine {
                record_ok(&mut c, batch).await;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(folds.await.unwrap() > 7, "the test's fold moved several chunks");

    // The worker leaves no row of a shard for the days before yesterday, and the
    // folded rows are there.
    let unfolded = || async { old_gap_rows(&app, today, ">= 0").await == 0 };
    assert!(eventually(std::time::Duration::from_secs(10), unfolded).await);
    assert!(old_gap_rows(&app, today, "= -1").await > 50, "old days are folded, one row per key");

    // Active customers and revenue per window, counted per customer.
    let active = |lo: i64, hi: i64| days.iter().filter(|d| d.range(lo..=hi).next().is_some()).count() as f64;
    let mut c = engagement(&app, None);
    for (ago, w) in [(0, 1), (0, 7), (0, 15), (3, 10), (10, 7), (5, 12)] {
        let m = metrics(&mut c, w as i32, (ago > 0).then(|| at(ago, 0))).await;
        // Days ago: the window is [ago, ago + w - 1], the previous one the w days before it.
        let (newest, oldest) = (ago, ago + w - 1);
        let what = format!("{w} days, {ago} days ago");
        assert_eq!(val(&m.dau), active(ago, ago), "{what}");
        assert_eq!(val(&m.wau), active(ago, ago + 6), "{what}");
        assert_eq!(val(&m.mau), active(ago, ago + 29), "{what}");
        let before = |d: &BTreeMap<i64, i64>| d.range(oldest + 1..=oldest + w).next().is_some();
        let retained = days.iter().filter(|d| before(d) && d.range(newest..=oldest).next().is_some()).count();
        assert_eq!(val(&m.previously_active), active(oldest + 1, oldest + w), "{what}");
        assert_eq!(val(&m.retained_customers), retained as f64, "{what}");
        let spent = |d: &BTreeMap<i64, i64>, lo: i64, hi: i64| d.range(lo..=hi).map(|(_, r)| r).sum::<i64>();
        let previous: i64 = days.iter().map(|d| spent(d, oldest + 1, oldest + w)).sum();
        let kept: i64 =
            days.iter().filter(|d| spent(d, oldest + 1, oldest + w) > 0).map(|d| spent(d, newest, oldest)).sum();
        assert_eq!((val(&m.previous_revenue), val(&m.retained_revenue)), (previous as f64, kept as f64), "{what}");
    }
}

async fn top_customers_by_action_per_property_value_and_with_those_who_never_did_it(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = day(6, 30);
    set_clock(&app, d);
    let news = [("section", "news")];
    let help = [("section", "help")];
    let h = |n: i64| d - Duration::hours(n);
    record_ok(
        &mut c,
        vec![
            action("1", "p1", h(1), "post_created", &news),
            action("2", "p1", h(2), "post_created", &news),
            action("3", "p1", h(30), "post_created", &news),
            action("4", "p1", h(3), "post_created", &help),
            action("5", "p2", h(4), "post_created", &help),
            action("6", "p2", h(50), "post_created", &help),
            action("7", "p3", h(5), "post_created", &news),
            session("8", "p4", h(1), 10),
            action("9", "p5", d - Duration::days(10), "post_created", &news), // outside 7 days
        ],
    )
    .await;
    let req =
        |action: &str, prop: Option<(&str, &str)>, include_zero: bool, ascending: bool| pb::ListTopCustomersRequest {
            ranking: Some(pb::list_top_customers_request::Ranking::Action(action.into())),
            property_key: prop.map(|p| p.0.to_string()).unwrap_or_default(),
            property_value: prop.map(|p| p.1.to_string()).unwrap_or_default(),
            window_days: 7,
            include_zero,
            order: if ascending { pb::RankOrder::Ascending } else { pb::RankOrder::Descending } as i32,
            ..Default::default()
        };
    let got = |r: pb::ListTopCustomersResponse| -> Vec<(String, f64)> {
        r.customers.into_iter().map(|x| (x.customer_id, x.value)).collect()
    };
    let s = |v: &[(&str, f64)]| -> Vec<(String, f64)> { v.iter().map(|(a, b)| (a.to_string(), *b)).collect() };

    let r = c.list_top_customers(req("post_created", None, false, false)).await.unwrap().into_inner();
    assert_eq!((r.window_days, r.start_date.as_str()), (7, "2026-06-24"));
    assert!(r.definition.contains("post_created"));
    assert_eq!(got(r), s(&[("p1", 4.0), ("p2", 2.0), ("p3", 1.0)]));
    // The top posters of one forum section.
    let r = c.list_top_customers(req("post_created", Some(("section", "news")), false, false)).await.unwrap();
    assert_eq!(got(r.into_inner()), s(&[("p1", 3.0), ("p3", 1.0)]));
    let r = c.list_top_customers(req("post_created", Some(("section", "help")), false, false)).await.unwrap();
    assert_eq!(got(r.into_inner()), s(&[("p2", 2.0), ("p1", 1.0)]));
    // With the customers who did not post in the window, who come last…
    let r = c.list_top_customers(req("post_created", None, true, false)).await.unwrap();
    assert_eq!(got(r.into_inner()), s(&[("p1", 4.0), ("p2", 2.0), ("p3", 1.0), ("p4", 0.0), ("p5", 0.0)]));
    // …or first, lowest first.
    let r = c.list_top_customers(req("post_created", None, true, true)).await.unwrap();
    assert_eq!(got(r.into_inner()), s(&[("p4", 0.0), ("p5", 0.0), ("p3", 1.0), ("p2", 2.0), ("p1", 4.0)]));
    // The users who made no calls: all of them.
    let r = c.list_top_customers(req("call_made", None, true, true)).await.unwrap().into_inner();
    assert_eq!(r.customers.len(), 5);
    assert!(r.customers.iter().all(|x| x.value == 0.0));
    assert!(
        c.list_top_customers(req("call_made", None, false, false)).await.unwrap().into_inner().customers.is_empty()
    );
}

async fn top_property_values_rank_values_by_events(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = day(6, 30);
    set_clock(&app, d);
    let kb = |id: &str, who: &str, article: &str| action(id, who, d, "kb_article_viewed", &[("content_id", article)]);
    let call = |id: &str, who: &str, t: &str| action(id, who, d, "call_made", &[("call_type", t)]);
    record_ok(
        &mut c,
        vec![
            kb("1", "u1", "a1"),
            kb("2", "u1", "a1"),
            kb("3", "u2", "a1"),
            kb("4", "u2", "a2"),
            kb("5", "u3", "a3"),
            kb("6", "u3", "a3"),
            call("7", "u1", "national"),
            call("8", "u2", "national"),
            call("9", "u2", "international"),
            action("10", "u9", d - Duration::days(8), "kb_article_viewed", &[("content_id", "a2")]),
        ],
    )
    .await;
    let ask = |action: &str, property: &str, window_days: i32, limit: i32| pb::TopPropertyValuesRequest {
        action: action.into(),
        property: property.into(),
        window_days,
        as_of: None,
        limit,
    };
    let r = c.top_property_values(ask("kb_article_viewed", "content_id", 7, 2)).await.unwrap().into_inner();
    let v: Vec<(String, i64, i64)> = r.values.iter().map(|x| (x.value.clone(), x.events, x.customers)).collect();
    assert_eq!(v, vec![("a1".into(), 3, 2), ("a3".into(), 2, 1)]);
    assert_eq!(r.total_events, 6);
    // 30 days: a2 gains u9's view.
    let r = c.top_property_values(ask("kb_article_viewed", "content_id", 30, 0)).await.unwrap().into_inner();
    let a2 = r.values.iter().find(|x| x.value == "a2").unwrap();
    assert_eq!((a2.events, a2.customers, r.total_events), (2, 2, 7));
    // National vs international calls.
    let r = c.top_property_values(ask("call_made", "call_type", 7, 0)).await.unwrap().into_inner();
    let v: Vec<(String, i64)> = r.values.iter().map(|x| (x.value.clone(), x.events)).collect();
    assert_eq!(v, vec![("national".into(), 2), ("international".into(), 1)]);
}

async fn bad_metric_and_ranking_requests_name_their_fields(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let future = app.clock.now() + Duration::days(2);
    let err = c
        .get_engagement_metrics(pb::GetEngagementMetricsRequest { window_days: 400, ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "window_days");
    let err = c
        .get_engagement_metrics(pb::GetEngagementMetricsRequest { as_of: Some(pts(future)), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "as_of");
    let err = c
        .get_engagement_metrics(pb::GetEngagementMetricsRequest { cohort_months: 25, ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "cohort_months");
    let err = c.list_top_customers(pb::ListTopCustomersRequest::default()).await.unwrap_err();
    assert_invalid(&err, "ranking");
    let err = c
        .list_top_customers(pb::ListTopCustomersRequest {
            ranking: Some(pb::list_top_customers_request::Ranking::Action("x".into())),
            property_value: "news".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "property_key");
    let err = c
        .list_top_customers(pb::ListTopCustomersRequest {
            ranking: Some(pb::list_top_customers_request::Ranking::Action("x".into())),
            page_token: "nonsense".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    let err = c
        .top_property_values(pb::TopPropertyValuesRequest { action: "x".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "property");
    let err = c
        .get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: String::new(), as_of: None })
        .await
        .unwrap_err();
    assert_invalid(&err, "customer_id");
}

/// Two replicas folding one tenant at once (PostgreSQL): while another session holds a
/// folded row, a fold pass gives that tenant up after its short lock timeout (counted,
/// nothing moved, nothing lost) and the next pass, once the row is free, folds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_fold_that_meets_another_gives_the_tenant_up_until_the_next_pass() {
    use sea_orm::TransactionTrait as _;
    let app = spawn_app(Backend::Postgres).await;
    let today = day(5, 10);
    set_clock(&app, today);
    let mut c = engagement(&app, None);
    let (old, older) = (today - Duration::days(9), today - Duration::days(12));
    record_ok(&mut c, vec![session("a1", "ada", older, 30), session("b1", "bob", older, 30)]).await;
    // (The worker's first pass is a minute away.)
    let first = app.services.fold_rollups().await.unwrap().moved;
    assert!(first > 0);
    // Ada comes back: her old day's cells change in a shard's row again.
    record_ok(&mut c, vec![session("a2", "ada", old, 30)]).await;
    let before = metrics(&mut c, 30, Some(today)).await;

    let conn = app.services.db.conn();
    let holder = conn.begin().await.unwrap();
    holder.execute_unprepared("SELECT * FROM engagement_gaps WHERE shard = -1 FOR UPDATE").await.unwrap();
    let pass = app.services.fold_rollups().await.unwrap();
    assert_eq!((pass.moved, pass.skipped), (0, 1), "{pass:?}");
    assert_eq!(metrics(&mut c, 30, Some(today)).await, before);
    holder.rollback().await.unwrap();
    let pass = app.services.fold_rollups().await.unwrap();
    assert!(pass.moved > 0 && pass.skipped == 0, "{pass:?}");
    let text = reqwest::get(format!("http://{}/metrics", app.admin_addr)).await.unwrap().text().await.unwrap();
    let folded = text.lines().find_map(|l| l.strip_prefix("rapport_rollup_rows_folded_total "));
    assert_eq!(folded.map(|v| v.trim().parse::<u64>().unwrap()), Some(first + pass.moved), "{text}");
    assert_eq!(metrics(&mut c, 30, Some(today)).await, before);
    assert_eq!(old_gap_rows(&app, today, ">= 0").await, 0);
}

/// One pass over a tenant in chunks of a few rows (PostgreSQL; SQLite folds a tenant in
/// one transaction) moves every unfolded row of the old days, whatever day a chunk
/// ends in, and leaves the metrics as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_fold_in_small_chunks_moves_every_old_row_in_one_pass() {
    let app = spawn_app(Backend::Postgres).await;
    let today = day(5, 10);
    set_clock(&app, today);
    let mut c = engagement(&app, None);
    // Four batches (each in a shard of its own, mostly) of 40 customers over 25 days.
    for b in 0..4 {
        let events = (0..60)
            .map(|i| {
                let (who, ago) = ((i * 7 + b * 3) % 40, (i * 5 + b * 11) % 25 + 3);
                session(&format!("b{b}-{i}"), &format!("c{who}"), today - Duration::days(ago), 30)
            })
            .collect();
        record_ok(&mut c, events).await;
    }
    let before_metrics = metrics(&mut c, 14, Some(today)).await;
    let rows = old_gap_rows(&app, today, ">= 0").await;
    assert!(rows > 20, "{rows} rows to fold");
    let tenant = rapport::store::tenants::find_tenant(&app.services.db, "acme").await.unwrap();
    let folded = rapport::store::engagement::fold_old_days(&app.services.db, &tenant, fold_before(today), 5);
    assert_eq!((folded.await.unwrap(), old_gap_rows(&app, today, ">= 0").await), (rows, 0));
    assert_eq!(metrics(&mut c, 14, Some(today)).await, before_metrics);
}
