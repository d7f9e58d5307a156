//! InsightService (docs/insight.md) through the real server: comparing periods and
//! segments, the series' change flags and control limits, comment themes, drivers, and
//! account profiles and rankings. Expected numbers are computed here from the formulas
//! (independently of the service's code) or quoted from `tests/reference/insight.py`,
//! which computes them with scipy and statsmodels.

use chrono::Duration;
use rapport::grpc::pb::insight_service_client::InsightServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::engagement::*;
use crate::helpers::*;
use crate::web::Web;

crate::on_both!(
    a_real_rise_between_two_periods_and_no_detectable_change_between_two_segments,
    the_series_flags_a_significant_jump_and_gives_each_point_its_control_limits,
    comment_themes_rank_what_detractors_say_against_promoters,
    drivers_put_the_action_that_separates_promoters_first,
    an_account_rolls_up_its_contacts_and_accounts_rank_by_health_risk_and_revenue,
    insight_inputs_are_bounded_and_name_their_fields,
);

type Insight = InsightServiceClient<InterceptedService<Channel, Auth>>;

fn insight(app: &TestApp, key: Option<&str>) -> Insight {
    let key = key.map(str::to_owned).unwrap_or_else(|| app.key.clone());
    InsightServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key)))
}

/// A direct answer with a comment and properties.
async fn answer_with(
    app: &TestApp,
    survey: &str,
    customer: &str,
    score: i32,
    comment: &str,
    props: &[(&str, &str)],
) -> pb::Response {
    app.surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: survey.into(),
                customer_id: customer.into(),
            })),
            score: Some(score),
            comment: comment.into(),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        })
        .await
        .expect("answer")
        .into_inner()
}

/// The adjusted-Wald difference of two NPS, B − A, as MeasuringU describes it:
/// (lower, upper, z) in points.
fn adjusted_wald(a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64, f64) {
    let side = |(p, d, n): (f64, f64, f64)| {
        let (pt, dt) = ((p + 0.75) / (n + 3.0), (d + 0.75) / (n + 3.0));
        (pt - dt, (pt + dt - (pt - dt).powi(2)) / (n + 3.0))
    };
    let ((xa, va), (xb, vb)) = (side(a), side(b));
    let se = (va + vb).sqrt();
    (100.0 * (xb - xa - 1.959_963_984_540_054 * se), 100.0 * (xb - xa + 1.959_963_984_540_054 * se), (xb - xa) / se)
}

#[track_caller]
fn near(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} != {b}");
}

async fn a_real_rise_between_two_periods_and_no_detectable_change_between_two_segments(b: Backend) {
    let app = spawn_app(b).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await.id;
    let t1 = utc(2026, 3, 10, 12, 0);
    let t2 = t1 + Duration::days(30);
    // Twenty answers a period, every other one from a "pro" customer.
    let first = [10, 10, 9, 9, 8, 7, 6, 5, 3, 0];
    let second = [10, 10, 10, 9, 9, 9, 9, 9, 8, 2];
    for (t, scores, tag) in [(t1, first, "a"), (t2, second, "b")] {
        set_clock(&app, t);
        for (i, s) in scores.iter().chain(scores.iter()).enumerate() {
            let plan = if i % 2 == 0 { "pro" } else { "free" };
            answer_with(&app, &survey, &format!("{tag}{i}"), *s, "", &[("plan", plan)]).await;
        }
    }
    let window =
        |t: chrono::DateTime<chrono::Utc>| (Some(pts(t - Duration::hours(1))), Some(pts(t + Duration::hours(1))));
    let (s1, e1) = window(t1);
    let (s2, e2) = window(t2);
    let mut c = insight(&app, None);
    let out = c
        .compare_survey_metrics(pb::CompareSurveyMetricsRequest {
            scope: Some(pb::compare_survey_metrics_request::Scope::SurveyId(survey.clone())),
            first: Some(pb::Sample { start_time: s1, end_time: e1, label: "March".into(), ..Default::default() }),
            second: Some(pb::Sample { start_time: s2, end_time: e2, label: "April".into(), ..Default::default() }),
        })
        .await
        .expect("compare")
        .into_inner();
    let (a, bb) = (out.first.unwrap(), out.second.unwrap());
    assert_eq!((a.summary.as_ref().unwrap().n, bb.summary.as_ref().unwrap().n), (20, 20));
    // March: 8 promoters, 8 detractors of 20 (NPS 0); April: 16 and 2 (NPS 70).
    let h = out.headline.unwrap();
    assert_eq!((h.first, h.second, h.difference), (Some(0.0), Some(70.0), Some(70.0)));
    let (lo, hi, z) = adjusted_wald((8.0, 8.0, 20.0), (16.0, 2.0, 20.0));
    let i = h.interval.unwrap();
    near(i.lower, lo, 1e-9);
    near(i.upper, hi, 1e-9);
    near(h.statistic.unwrap(), z, 1e-9);
    // tests/reference/insight.py: lo=15.3941171342 hi=106.3450133005 z=2.6234410129 p=0.0087046517
    near(i.lower, 15.394_117_134_2, 1e-8);
    near(h.p_value.unwrap(), 0.008_704_651_7, 1e-9);
    assert_eq!(h.verdict, pb::ChangeVerdict::Higher as i32);
    assert!(
        h.summary.starts_with("NPS is higher in April than in March, a real change at the 5 % level"),
        "{}",
        h.summary
    );
    assert!(h.summary.contains("n = 20 and 20"), "{}", h.summary);
    // The mean by Welch (scipy.stats.ttest_ind(equal_var=False)):
    // t=2.0491904368 df=34.6477473090 p=0.0480756419 lo=0.0161136854 hi=3.5838863146
    let m = out.mean.unwrap();
    near(m.statistic.unwrap(), 2.049_190_436_8, 1e-8);
    near(m.degrees_of_freedom.unwrap(), 34.647_747_309_0, 1e-7);
    near(m.p_value.unwrap(), 0.048_075_641_9, 1e-9);
    near(m.interval.unwrap().lower, 0.016_113_685_4, 1e-8);
    assert_eq!(m.verdict, pb::ChangeVerdict::Higher as i32);
    assert_eq!(out.shared_responses, 0);

    // Two segments over both periods: pro (12 promoters, 4 detractors of 20) against
    // free (12 and 6): −10 points, well inside the noise.
    let all = (Some(pts(t1 - Duration::days(1))), Some(pts(t2 + Duration::days(1))));
    let seg = |plan: &str| pb::Sample {
        start_time: all.0,
        end_time: all.1,
        filter: [("plan".to_string(), plan.to_string())].into(),
        label: format!("{plan} customers"),
    };
    let out = c
        .compare_survey_metrics(pb::CompareSurveyMetricsRequest {
            scope: Some(pb::compare_survey_metrics_request::Scope::Kind(pb::SurveyKind::Nps as i32)),
            first: Some(seg("pro")),
            second: Some(seg("free")),
        })
        .await
        .unwrap()
        .into_inner();
    let h = out.headline.unwrap();
    near(h.difference.unwrap(), -10.0, 1e-9);
    let (lo, hi, _) = adjusted_wald((12.0, 4.0, 20.0), (12.0, 6.0, 20.0));
    near(h.interval.as_ref().unwrap().lower, lo, 1e-9);
    near(h.interval.as_ref().unwrap().upper, hi, 1e-9);
    // tests/reference/insight.py: p=0.7263351287
    near(h.p_value.unwrap(), 0.726_335_128_7, 1e-9);
    assert_eq!(h.verdict, pb::ChangeVerdict::NoDetectableChange as i32);
    assert!(h.summary.starts_with("No detectable change at n = 20 and 20"), "{}", h.summary);

    // The same comparison over JSON.
    let web = Web::new(&app);
    let r = web
        .post(
            &format!("/v1/surveys/{survey}/metrics:compare"),
            Some(&app.key),
            &json!({
                "first": {"startTime": (t1 - Duration::hours(1)).to_rfc3339(), "endTime": (t1 + Duration::hours(1)).to_rfc3339()},
                "second": {"startTime": (t2 - Duration::hours(1)).to_rfc3339(), "endTime": (t2 + Duration::hours(1)).to_rfc3339()}
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["headline"]["verdict"], "CHANGE_VERDICT_HIGHER");
    assert!(r.json["headline"]["summary"].as_str().unwrap().contains("in the second sample than in the first sample"));
}

async fn the_series_flags_a_significant_jump_and_gives_each_point_its_control_limits(b: Backend) {
    let app = spawn_app(b).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await.id;
    let d1 = utc(2026, 4, 1, 10, 0);
    // Day 1: 18 detractors and 12 passives (NPS −60); day 2: 24 promoters and 6
    // passives (NPS 80).
    set_clock(&app, d1);
    for (i, s) in [0, 1, 2, 3, 4, 5, 7, 7, 8, 8].iter().cycle().take(30).enumerate() {
        app.answer(&survey, &format!("x{i}"), *s).await.unwrap();
    }
    set_clock(&app, d1 + Duration::days(1));
    for (i, s) in [9, 9, 10, 10, 9, 10, 9, 10, 7, 8].iter().cycle().take(30).enumerate() {
        app.answer(&survey, &format!("y{i}"), *s).await.unwrap();
    }
    let m = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey)),
            start_time: Some(pts(utc(2026, 4, 1, 0, 0))),
            end_time: Some(pts(utc(2026, 4, 3, 0, 0))),
            interval: pb::Interval::Day as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.series.len(), 2);
    assert!(m.series[0].change.is_none(), "the first point has nothing before it");
    let ch = m.series[1].change.as_ref().expect("compared with day 1");
    near(ch.difference, 140.0, 1e-9);
    let (_, _, z) = adjusted_wald((0.0, 18.0, 30.0), (24.0, 0.0, 30.0));
    assert!(z > 1.96, "{z}");
    assert!(ch.significant && ch.p_value < 0.05, "{ch:?}");
    // Pooled: 24 promoters, 18 detractors of 60 → centre 10; σ² = .4 + .3 − .1² = .69;
    // limits 10 ± 3 × 100 √.69 / √30 (about ± 45.5).
    let half = 3.0 * 100.0 * 0.69f64.sqrt() / 30f64.sqrt();
    for p in &m.series {
        let l = p.control_limits.as_ref().expect("limits");
        near(l.centre, 10.0, 1e-9);
        near(l.lower, 10.0 - half, 1e-9);
        near(l.upper, 10.0 + half, 1e-9);
        assert!(l.outside, "−60 and 80 both lie outside 10 ± {half}");
    }
}

async fn comment_themes_rank_what_detractors_say_against_promoters(b: Backend) {
    let app = spawn_app(b).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await.id;
    let detractors = [
        "Support is slow and the app crashes",
        "The app crashes every day, support never answers",
        "Too expensive and slow support",
        "Billing is confusing and too expensive",
    ];
    let promoters = [
        "Great app, easy to use",
        "Easy setup and great support",
        "I love how easy the reports are",
        "Great reports, the app is fast",
        "Fast and easy",
    ];
    let mut ids = std::collections::HashMap::new();
    for (i, t) in detractors.iter().enumerate() {
        ids.insert(answer_with(&app, &survey, &format!("d{i}"), 2, t, &[]).await.id, format!("d{i}"));
    }
    for (i, t) in promoters.iter().enumerate() {
        ids.insert(answer_with(&app, &survey, &format!("p{i}"), 10, t, &[]).await.id, format!("p{i}"));
    }
    // A passive's comment is on neither side.
    answer_with(&app, &survey, "m0", 8, "slow slow slow", &[]).await;
    let mut c = insight(&app, None);
    let out = c
        .comment_themes(pb::CommentThemesRequest {
            scope: Some(pb::comment_themes_request::Scope::SurveyId(survey.clone())),
            ..Default::default()
        })
        .await
        .expect("themes")
        .into_inner();
    assert_eq!((out.unhappy_comments, out.happy_comments), (4, 5));
    assert_eq!(out.languages, ["en"]);
    let top: Vec<(&str, i64, i64)> =
        out.unhappy_themes.iter().map(|t| (t.term.as_str(), t.unhappy_comments, t.happy_comments)).collect();
    let bottom: Vec<(&str, i64, i64)> =
        out.happy_themes.iter().map(|t| (t.term.as_str(), t.unhappy_comments, t.happy_comments)).collect();
    // tests/reference/insight.py themes (its own tokeniser, NLTK lists, snowballstemmer).
    assert_eq!(top, [("crashes", 2, 0), ("expensive", 2, 0), ("slow", 2, 0), ("app crashes", 2, 0), ("support", 3, 1)]);
    assert_eq!(bottom, [("easy", 0, 4), ("great", 0, 3), ("fast", 0, 2), ("reports", 0, 2)]);
    // z from the counts, by the formula (prior α_w = y_A + y_B, α₀ = n_A + n_B): each
    // side's 17 word-comment pairs.
    let z = |ya: f64, yb: f64, na: f64, nb: f64| {
        let (al, a0) = (ya + yb, na + nb);
        let d = ((ya + al) / (na + a0 - ya - al)).ln() - ((yb + al) / (nb + a0 - yb - al)).ln();
        d / (1.0 / (ya + al) + 1.0 / (yb + al)).sqrt()
    };
    near(out.unhappy_themes[0].z_score, z(2.0, 0.0, 17.0, 17.0), 1e-9);
    near(out.unhappy_themes[0].z_score, 0.848_496_907_5, 1e-9);
    near(out.happy_themes[0].z_score, z(0.0, 4.0, 17.0, 17.0), 1e-9);
    let crashes = &out.unhappy_themes[0];
    assert_eq!(crashes.kind, pb::ThemeKind::Word as i32);
    let mut examples: Vec<&str> = crashes.example_response_ids.iter().map(|id| ids[id].as_str()).collect();
    examples.sort();
    assert_eq!(examples, ["d0", "d1"], "the responses that say it");

    // Over JSON, three a side, analysed as German (no stems in common with English).
    let web = Web::new(&app);
    let r = web.get(&format!("/v1/surveys/{survey}/themes?limit=3&language=de"), Some(&app.key)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["unhappyThemes"].as_array().unwrap().len(), 3);
    assert_eq!(r.json["languages"], json!(["de"]));
    assert_eq!(r.json["unhappyBucket"], "BUCKET_DETRACTOR");
}

async fn drivers_put_the_action_that_separates_promoters_first(b: Backend) {
    let app = spawn_app(b).await;
    let mut e = engagement(&app, None);
    configure(&mut e, weights(&[("post_created", 1.0)]), &["action_weights"]).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await.id;
    let d = utc(2026, 6, 30, 12, 0);
    set_clock(&app, d);
    let posts = [("p", [5, 6, 7, 8, 9]), ("d", [1, 2, 2, 3, 1])];
    let mut events = Vec::new();
    for (side, counts) in posts {
        for (i, n) in counts.iter().enumerate() {
            for k in 0..*n {
                events.push(action(
                    &format!("{side}{i}-{k}"),
                    &format!("{side}{i}"),
                    d - Duration::days(2),
                    "post_created",
                    &[],
                ));
            }
        }
    }
    record_ok(&mut e, events).await;
    for i in 0..5 {
        app.answer(&survey, &format!("p{i}"), 10).await.unwrap();
        app.answer(&survey, &format!("d{i}"), 2).await.unwrap();
    }
    // An answer without any activity is left out; a passive is on neither side.
    app.answer(&survey, "ghost", 0).await.unwrap();
    app.answer(&survey, "p0-passive", 8).await.unwrap();
    let out = insight(&app, None)
        .get_drivers(pb::GetDriversRequest {
            scope: Some(pb::get_drivers_request::Scope::Kind(pb::SurveyKind::Nps as i32)),
            ..Default::default()
        })
        .await
        .expect("drivers")
        .into_inner();
    assert_eq!(out.customers, 10);
    assert!(out.warning.contains("not causes"), "{}", out.warning);
    let top = &out.drivers[0];
    assert_eq!(top.signal, "action:post_created");
    assert_eq!((top.happy_customers, top.unhappy_customers), (5, 5));
    assert_eq!((top.happy_mean, top.unhappy_mean), (Some(7.0), Some(1.8)));
    // Hedges' g by hand: s² = (4 × 2.5 + 4 × 0.7) / 8 = 1.6, d = 5.2 / √1.6, J = 1 − 3/31.
    let dd = 5.2 / 1.6f64.sqrt();
    let g = (1.0 - 3.0 / 31.0) * dd;
    near(top.hedges_g.unwrap(), g, 1e-9);
    // tests/reference/insight.py (scipy.stats.pointbiserialr): g=3.7131260268
    // r=0.9169493006 p=0.0001881040, Fisher-z interval 0.6797895953 to 0.9804988876.
    near(top.hedges_g.unwrap(), 3.713_126_026_8, 1e-9);
    near(top.correlation.unwrap(), 0.916_949_300_6, 1e-9);
    near(top.p_value.unwrap(), 0.000_188_104_0, 1e-10);
    near(top.correlation_interval.as_ref().unwrap().lower, 0.679_789_595_3, 1e-9);
    // Everyone was active on one day: no spread, no effect size, listed last.
    let active = out.drivers.iter().find(|d| d.signal == "active_days").unwrap();
    assert_eq!((active.hedges_g, active.correlation), (None, None));
    assert!(out.drivers.iter().position(|d| d.signal == "active_days").unwrap() > 0);
}

async fn an_account_rolls_up_its_contacts_and_accounts_rank_by_health_risk_and_revenue(b: Backend) {
    let app = spawn_app(b).await;
    let mut e = engagement(&app, None);
    configure(&mut e, weights(&[("post_created", 1.0)]), &["action_weights"]).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await.id;
    let d = utc(2026, 6, 30, 12, 0);
    let contact = |id: &str, account: &str, role: Option<&str>| pb::UpsertCustomerRequest {
        customer_id: id.into(),
        account_id: Some(account.into()),
        properties: role.map(|r| [("role".to_string(), r.to_string())].into()).unwrap_or_default(),
        ..Default::default()
    };
    // Forty days before D, bob posts ten times.
    set_clock(&app, d - Duration::days(40));
    e.upsert_customer(contact("bob", "globex", Some("Decision Maker"))).await.unwrap();
    record_ok(
        &mut e,
        (0..10).map(|k| action(&format!("b{k}"), "bob", d - Duration::days(40), "post_created", &[])).collect(),
    )
    .await;
    set_clock(&app, d);
    e.upsert_customer(contact("ann", "globex", Some("champion"))).await.unwrap();
    e.upsert_customer(contact("cid", "globex", None)).await.unwrap();
    e.upsert_customer(contact("dan", "initech", None)).await.unwrap();
    record_ok(
        &mut e,
        vec![
            action("a1", "ann", d - Duration::days(1), "post_created", &[]),
            action("a2", "ann", d - Duration::days(2), "post_created", &[]),
            purchase("a3", "ann", d - Duration::days(1), 5_000),
            action("d1", "dan", d - Duration::days(1), "post_created", &[]),
        ],
    )
    .await;
    app.answer(&survey, "ann", 10).await.unwrap();
    let bob = app.answer(&survey, "bob", 3).await.unwrap();
    assert!(!bob.follow_up_id.is_empty(), "a detractor opens a follow-up");
    app.answer(&survey, "dan", 9).await.unwrap();

    let mut c = insight(&app, None);
    let p = c
        .get_account_profile(pb::GetAccountProfileRequest { account_id: "globex".into(), ..Default::default() })
        .await
        .expect("profile")
        .into_inner();
    let v = p.voice.as_ref().unwrap();
    let count = |m: &Option<pb::Measure>| m.as_ref().and_then(|m| m.count).expect("a count");
    assert_eq!((count(&v.contacts), count(&v.respondents)), (3, 2));
    near(val(&v.coverage), 2.0 / 3.0, 1e-12);
    // One promoter and one detractor: NPS 0, adjusted-Wald interval of one sample:
    // p̃ = d̃ = 1.75/5, so 0 ± 1.96 √(.7 / 5).
    near(val(&v.nps), 0.0, 1e-12);
    let half = 1.959_963_984_540_054 * (0.7f64 / 5.0).sqrt() * 100.0;
    near(v.nps_interval.as_ref().unwrap().upper, half, 1e-9);
    let roles: Vec<(&str, i64, i64)> =
        v.detractors_by_role.iter().map(|r| (r.role.as_str(), r.respondents, r.detractors)).collect();
    assert_eq!(roles, [("Decision Maker", 1, 1), ("champion", 1, 0)]);
    assert_eq!(v.detractors_by_role[0].detractor_customer_ids, ["bob"]);
    assert_eq!((count(&v.open_follow_ups), count(&v.overdue_follow_ups)), (1, 0));

    let a = p.activity.as_ref().unwrap();
    // Only ann was active in the last 30 days, on 2 days: DAU/MAU = (2/30) / 1.
    assert_eq!(count(&a.active_contacts), 1);
    near(val(&a.active_share), 1.0 / 3.0, 1e-12);
    near(val(&a.stickiness), 2.0 / 30.0, 1e-12);
    assert_eq!((count(&a.events_last_30_days), count(&a.events_previous_30_days)), (3, 10));
    assert_eq!(
        a.core_actions.iter().map(|x| (x.action.as_str(), count(&x.count))).collect::<Vec<_>>(),
        [("post_created", 12)]
    );
    assert_eq!(count(&p.value.as_ref().unwrap().revenue), 5_000);

    let h = p.health.as_ref().unwrap();
    // Breadth 100/3 (weight 2), stickiness 100 × 2/30 (1), recency 100 × (1 − 1/30) (1),
    // NPS (0 + 100)/2 (2), follow-ups 100 − 50 (1); no CSAT or CES.
    let score = (2.0 * 100.0 / 3.0 + 200.0 / 30.0 + 100.0 * 29.0 / 30.0 + 2.0 * 50.0 + 50.0) / 7.0;
    near(val(&h.score), score, 1e-9);
    assert_eq!(h.components_with_data, 5);
    assert_eq!(h.band, pb::HealthBand::Red as i32, "{score} ≤ 50");
    let flags: Vec<i32> = h.risks.iter().map(|r| r.flag).collect();
    assert_eq!(flags, [pb::AccountRiskFlag::ChampionDetractor as i32, pb::AccountRiskFlag::ActivityDown as i32]);
    assert_eq!(h.risks[0].customer_ids, ["bob"]);

    // Ranked by health, lowest first, a page of one at a time.
    let list = |req: pb::ListAccountsRequest| {
        let mut c = c.clone();
        async move { c.list_accounts(req).await.expect("list").into_inner() }
    };
    let page1 = list(pb::ListAccountsRequest { page_size: 1, ..Default::default() }).await;
    assert_eq!(page1.total_size, 2);
    assert_eq!(page1.accounts.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(), ["globex"]);
    let page2 =
        list(pb::ListAccountsRequest { page_size: 1, page_token: page1.next_page_token, ..Default::default() }).await;
    assert_eq!(page2.accounts[0].account_id, "initech");
    assert!(page2.next_page_token.is_empty());
    let risky = list(pb::ListAccountsRequest {
        risks: vec![pb::AccountRiskFlag::ChampionDetractor as i32],
        ..Default::default()
    })
    .await;
    assert_eq!(risky.accounts.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(), ["globex"]);
    let by_revenue =
        list(pb::ListAccountsRequest { rank_by: pb::AccountRanking::Revenue as i32, ..Default::default() }).await;
    assert_eq!(by_revenue.accounts.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(), ["globex", "initech"]);

    assert_code(
        c.get_account_profile(pb::GetAccountProfileRequest { account_id: "nope".into(), ..Default::default() }).await,
        Code::NotFound,
    );
    let web = Web::new(&app);
    let r = web.get("/v1/accounts/globex/profile?windowDays=30", Some(&app.key)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["voice"]["respondents"]["count"], "2");
    assert_eq!(r.json["windowDays"], 30);
}

async fn insight_inputs_are_bounded_and_name_their_fields(b: Backend) {
    let app = spawn_app(b).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await.id;
    let mut c = insight(&app, None);
    let e = c.get_account_profile(pb::GetAccountProfileRequest::default()).await.unwrap_err();
    assert_invalid(&e, "account_id");
    let e = c
        .get_account_profile(pb::GetAccountProfileRequest { account_id: "x".repeat(129), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&e, "account_id");
    let e = c
        .get_account_profile(pb::GetAccountProfileRequest {
            account_id: "a".into(),
            window_days: 366,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "window_days");
    let e = c.list_accounts(pb::ListAccountsRequest { bands: vec![0], ..Default::default() }).await.unwrap_err();
    assert_invalid(&e, "bands[0]");
    let e = c
        .list_accounts(pb::ListAccountsRequest { page_token: "bogus".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&e, "page_token");
    let e = c.list_accounts(pb::ListAccountsRequest { min_contacts: -1, ..Default::default() }).await.unwrap_err();
    assert_invalid(&e, "min_contacts");
    let scope = || Some(pb::comment_themes_request::Scope::SurveyId(survey.clone()));
    let e = c
        .comment_themes(pb::CommentThemesRequest { scope: scope(), limit: 101, ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&e, "limit");
    let e = c
        .comment_themes(pb::CommentThemesRequest { scope: scope(), language: "not a tag".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&e, "language");
    let e = c.comment_themes(pb::CommentThemesRequest::default()).await.unwrap_err();
    assert_invalid(&e, "scope");
    let now = utc(2026, 1, 1, 0, 0);
    let e = c
        .compare_survey_metrics(pb::CompareSurveyMetricsRequest {
            scope: Some(pb::compare_survey_metrics_request::Scope::SurveyId(survey.clone())),
            second: Some(pb::Sample { start_time: Some(pts(now)), end_time: Some(pts(now)), ..Default::default() }),
            first: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "second.start_time");
    let e = c
        .compare_survey_metrics(pb::CompareSurveyMetricsRequest {
            scope: Some(pb::compare_survey_metrics_request::Scope::SurveyId(survey.clone())),
            first: Some(pb::Sample { label: "l".repeat(101), ..Default::default() }),
            second: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "first.label");
    let e = c
        .get_drivers(pb::GetDriversRequest {
            scope: Some(pb::get_drivers_request::Scope::SurveyId(survey.clone())),
            window_days: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&e, "window_days");
    assert_code(
        c.get_drivers(pb::GetDriversRequest {
            scope: Some(pb::get_drivers_request::Scope::SurveyId("sv_missing".into())),
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    // A publishable key may call none of it.
    let pk = app.publishable_key().await;
    let e = insight(&app, Some(&pk)).list_accounts(pb::ListAccountsRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}
