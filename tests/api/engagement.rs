//! Customers and activity ingestion (docs/engagement.md): upsert with account and traits,
//! deduplication by message id, per-item results, late and future events, the batch
//! limits, the scoring configuration, keys and tenant isolation. Also the helpers
//! the other engagement test files share.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rapport::grpc::pb::engagement_service_client::EngagementServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::*;

crate::on_both!(
    a_resent_batch_counts_once_and_a_reused_message_id_keeps_the_first_payload,
    items_are_judged_one_by_one_and_the_valid_ones_are_kept,
    an_empty_or_oversized_batch_is_invalid_argument_and_writes_nothing,
    late_events_land_on_their_own_day_even_between_known_days,
    customers_are_upserted_with_account_traits_and_properties_and_listed_by_filter,
    the_scoring_config_round_trips_and_bad_values_name_their_fields,
    another_tenant_sees_none_of_a_tenants_engagement,
    a_publishable_key_may_not_record_or_read_engagement,
);

pub type Engagement = EngagementServiceClient<InterceptedService<Channel, Auth>>;

/// An engagement client with the app's secret key (or `key`).
pub fn engagement(app: &TestApp, key: Option<&str>) -> Engagement {
    let key = key.map(str::to_owned).unwrap_or_else(|| app.key.clone());
    EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key)))
}

/// Moves the server's clock to `t`.
pub fn set_clock(app: &TestApp, t: DateTime<Utc>) {
    let now = app.clock.now();
    app.clock.advance(t - now);
}

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

pub fn pts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

fn event(id: &str, customer: &str, at: DateTime<Utc>, kind: pb::activity_event::Kind) -> pb::ActivityEvent {
    pb::ActivityEvent { message_id: id.into(), customer_id: customer.into(), time: Some(pts(at)), kind: Some(kind) }
}

pub fn action(id: &str, customer: &str, at: DateTime<Utc>, name: &str, props: &[(&str, &str)]) -> pb::ActivityEvent {
    event(
        id,
        customer,
        at,
        pb::activity_event::Kind::Action(pb::ActionEvent {
            name: name.into(),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }),
    )
}

pub fn session(id: &str, customer: &str, at: DateTime<Utc>, seconds: i64) -> pb::ActivityEvent {
    event(id, customer, at, pb::activity_event::Kind::Session(pb::SessionEvent { activity_seconds: seconds }))
}

pub fn purchase(id: &str, customer: &str, at: DateTime<Utc>, amount_minor: i64) -> pb::ActivityEvent {
    event(
        id,
        customer,
        at,
        pb::activity_event::Kind::Purchase(pb::PurchaseEvent { amount_minor, currency: "USD".into() }),
    )
}

/// Records `events` and expects every one accepted.
pub async fn record_ok(c: &mut Engagement, events: Vec<pb::ActivityEvent>) {
    let n = events.len() as i32;
    let r = c.record_events(pb::RecordEventsRequest { events }).await.expect("record").into_inner();
    assert_eq!(r.accepted, n, "{:?}", r.results.iter().filter(|x| x.status != 1).collect::<Vec<_>>());
}

pub async fn profile(c: &mut Engagement, customer: &str, as_of: Option<DateTime<Utc>>) -> pb::EngagementProfile {
    c.get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: customer.into(), as_of: as_of.map(pts) })
        .await
        .expect("profile")
        .into_inner()
}

pub async fn metrics(c: &mut Engagement, window_days: i32, as_of: Option<DateTime<Utc>>) -> pb::EngagementMetrics {
    c.get_engagement_metrics(pb::GetEngagementMetricsRequest { window_days, as_of: as_of.map(pts), cohort_months: 0 })
        .await
        .expect("metrics")
        .into_inner()
}

/// The value of a measure (panics when it is unset).
#[track_caller]
pub fn val(m: &Option<pb::Measure>) -> f64 {
    m.as_ref().expect("a measure").value.expect("a value")
}

/// Whether a measure is present but undefined.
pub fn unset(m: &Option<pb::Measure>) -> bool {
    m.as_ref().is_some_and(|m| m.value.is_none())
}

#[track_caller]
pub fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

/// Sets the scoring configuration fields in `mask` from `config`.
pub async fn configure(c: &mut Engagement, config: pb::ScoringConfig, mask: &[&str]) -> pb::ScoringConfig {
    c.update_scoring_config(pb::UpdateScoringConfigRequest {
        config: Some(config),
        update_mask: Some(prost_types::FieldMask { paths: mask.iter().map(|s| s.to_string()).collect() }),
    })
    .await
    .expect("update config")
    .into_inner()
}

pub fn weights(w: &[(&str, f64)]) -> pb::ScoringConfig {
    pb::ScoringConfig { action_weights: w.iter().map(|(k, v)| (k.to_string(), *v)).collect(), ..Default::default() }
}

fn statuses(r: &pb::RecordEventsResponse) -> Vec<i32> {
    r.results.iter().map(|x| x.status).collect()
}

const ACCEPTED: i32 = pb::ActivityEventStatus::Accepted as i32;
const DUPLICATE: i32 = pb::ActivityEventStatus::Duplicate as i32;
const REJECTED: i32 = pb::ActivityEventStatus::Rejected as i32;

async fn a_resent_batch_counts_once_and_a_reused_message_id_keeps_the_first_payload(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 6, 30, 12, 0);
    set_clock(&app, now);
    let mut c = engagement(&app, None);
    configure(&mut c, weights(&[("post_created", 1.0)]), &["action_weights"]).await;
    let batch = vec![
        action("m1", "alice", now - Duration::hours(1), "post_created", &[("section", "news")]),
        action("m2", "alice", now - Duration::hours(2), "post_created", &[("section", "news")]),
        session("m3", "bob", now - Duration::hours(1), 120),
    ];
    let first = c.record_events(pb::RecordEventsRequest { events: batch.clone() }).await.unwrap().into_inner();
    assert_eq!((first.accepted, first.duplicates, first.rejected), (3, 0, 0));
    // The same batch again, and concurrently twice more: nothing counts twice.
    let again = c.record_events(pb::RecordEventsRequest { events: batch.clone() }).await.unwrap().into_inner();
    assert_eq!(statuses(&again), vec![DUPLICATE; 3]);
    assert!(again.results.iter().all(|r| r.reason.contains("same payload")), "{:?}", again.results);
    let (mut c1, mut c2) = (engagement(&app, None), engagement(&app, None));
    let (x, y) = tokio::join!(
        c1.record_events(pb::RecordEventsRequest { events: batch.clone() }),
        c2.record_events(pb::RecordEventsRequest { events: batch.clone() }),
    );
    assert_eq!(x.unwrap().into_inner().duplicates + y.unwrap().into_inner().duplicates, 6);
    // The same message id with another payload: the first one is kept.
    let other = c
        .record_events(pb::RecordEventsRequest {
            events: vec![
                action("m1", "alice", now, "comment_added", &[]),
                session("m4", "bob", now, 60),
                session("m4", "bob", now, 99),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(statuses(&other), vec![DUPLICATE, ACCEPTED, DUPLICATE]);
    assert!(other.results[0].reason.contains("different payload"), "{}", other.results[0].reason);
    assert!(other.results[2].reason.contains("within this batch"), "{}", other.results[2].reason);

    let p = profile(&mut c, "alice", None).await;
    let w30 = &p.activity.as_ref().unwrap().windows[1];
    assert_eq!(val(&w30.actions), 2.0);
    assert_eq!(val(&w30.events), 2.0);
    assert_eq!(w30.core_actions.len(), 1);
    assert_eq!(val(&w30.core_actions[0].count), 2.0);
    let p = profile(&mut c, "bob", None).await;
    let w7 = &p.activity.as_ref().unwrap().windows[0];
    assert_eq!((val(&w7.sessions), val(&w7.total_session_seconds)), (2.0, 180.0));
    let m = metrics(&mut c, 7, None).await;
    assert_eq!(val(&m.dau), 2.0);
    let top = c
        .top_property_values(pb::TopPropertyValuesRequest {
            action: "post_created".into(),
            property: "section".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(top.values.len(), 1);
    assert_eq!((top.values[0].events, top.values[0].customers, top.total_events), (2, 1, 2));
}

async fn items_are_judged_one_by_one_and_the_valid_ones_are_kept(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 6, 30, 12, 0);
    set_clock(&app, now);
    let mut c = engagement(&app, None);
    let mut no_kind = session("e4", "carol", now, 1);
    no_kind.kind = None;
    let mut no_time = session("e9", "carol", now, 1);
    no_time.time = None;
    let mut bad_currency = purchase("e6", "carol", now, 100);
    if let Some(pb::activity_event::Kind::Purchase(p)) = bad_currency.kind.as_mut() {
        p.currency = "EUR".into();
    }
    let events = vec![
        session("e0", "carol", now - Duration::hours(3), 30),
        session("e1", "carol", now + Duration::hours(25), 30),
        session("e2", "carol", now + Duration::hours(23), 30),
        session("e3", "carol", now - Duration::days(31), 30),
        no_kind,
        purchase("e5", "carol", now, 0),
        bad_currency,
        session("", "carol", now, 1),
        session("e8", "", now, 1),
        no_time,
        session("e10", "dave", now + Duration::hours(30), 1),
    ];
    let r = c.record_events(pb::RecordEventsRequest { events }).await.unwrap().into_inner();
    let expect = [
        (ACCEPTED, ""),
        (REJECTED, "events[1].time"),
        (ACCEPTED, ""),
        (REJECTED, "events[3].time"),
        (REJECTED, "events[4].kind"),
        (REJECTED, "events[5].purchase.amount_minor"),
        (REJECTED, "events[6].purchase.currency"),
        (REJECTED, "events[7].message_id"),
        (REJECTED, "events[8].customer_id"),
        (REJECTED, "events[9].time"),
        (REJECTED, "events[10].time"),
    ];
    for (i, (st, field)) in expect.iter().enumerate() {
        assert_eq!(r.results[i].status, *st, "event {i}: {:?}", r.results[i]);
        assert_eq!(r.results[i].field, *field, "event {i}");
        assert_eq!(r.results[i].index, i as i32);
        if *st == REJECTED {
            assert!(!r.results[i].reason.is_empty());
        }
    }
    assert!(r.results[1].reason.contains("future"), "{}", r.results[1].reason);
    assert_eq!((r.accepted, r.rejected), (2, 9));
    let p = profile(&mut c, "carol", None).await;
    // e0 today and e2 (23 hours ahead, tomorrow) — only today's counts as of now.
    assert_eq!(val(&p.activity.as_ref().unwrap().windows[0].sessions), 1.0);
    let later = profile(&mut c, "carol", Some(now)).await;
    assert_eq!(val(&later.activity.as_ref().unwrap().windows[0].sessions), 1.0);
    // A customer whose only event was refused was not created.
    assert_code(c.get_customer(pb::GetCustomerRequest { customer_id: "dave".into() }).await, Code::NotFound);
}

async fn an_empty_or_oversized_batch_is_invalid_argument_and_writes_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let err = c.record_events(pb::RecordEventsRequest { events: vec![] }).await.unwrap_err();
    assert_invalid(&err, "events");
    let now = app.clock.now();
    let many: Vec<pb::ActivityEvent> = (0..1001).map(|i| session(&format!("m{i}"), "erin", now, 1)).collect();
    let err = c.record_events(pb::RecordEventsRequest { events: many }).await.unwrap_err();
    assert_invalid(&err, "events");
    assert_code(c.get_customer(pb::GetCustomerRequest { customer_id: "erin".into() }).await, Code::NotFound);
    // A full batch of 1 000 is fine.
    let full: Vec<pb::ActivityEvent> = (0..1000).map(|i| session(&format!("m{i}"), "erin", now, 1)).collect();
    record_ok(&mut c, full).await;
    let m = metrics(&mut c, 1, None).await;
    assert_eq!(val(&m.dau), 1.0);
}

async fn late_events_land_on_their_own_day_even_between_known_days(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 6, 30, 12, 0);
    set_clock(&app, now);
    let mut c = engagement(&app, None);
    // Frank: active 20 days ago and today; then a late event from 10 days ago.
    record_ok(&mut c, vec![session("f1", "frank", now - Duration::days(20), 10)]).await;
    record_ok(&mut c, vec![session("f2", "frank", now, 10)]).await;
    // Grace: today, then a late event 25 days ago (before her first day).
    record_ok(&mut c, vec![session("g1", "grace", now, 10)]).await;
    record_ok(&mut c, vec![session("g2", "grace", now - Duration::days(25), 10)]).await;
    record_ok(&mut c, vec![session("f3", "frank", now - Duration::days(10), 10)]).await;

    let p = profile(&mut c, "frank", None).await;
    let a = p.activity.as_ref().unwrap();
    assert_eq!((a.first_seen_date.as_str(), a.last_seen_date.as_str()), ("2026-06-10", "2026-06-30"));
    assert_eq!(val(&a.windows[1].active_days), 3.0);
    let p = profile(&mut c, "grace", None).await;
    assert_eq!(p.activity.as_ref().unwrap().first_seen_date, "2026-06-05");

    // Distinct customers per window, checked by hand against the days:
    // frank {Jun 10, 20, 30}, grace {Jun 5, 30}.
    for (as_of, wau, mau) in [
        (now, 2.0, 2.0),
        (utc(2026, 6, 21, 12, 0), 1.0, 2.0), // WAU Jun 15–21: frank (20)
        (utc(2026, 6, 12, 12, 0), 1.0, 2.0), // WAU Jun 6–12: frank (10); MAU: both
        (utc(2026, 6, 5, 12, 0), 1.0, 1.0),  // only grace so far
        (utc(2026, 6, 27, 12, 0), 0.0, 2.0), // nobody Jun 21–27
    ] {
        let m = metrics(&mut c, 7, Some(as_of)).await;
        assert_eq!((val(&m.wau), val(&m.mau)), (wau, mau), "as of {as_of}");
    }
    // New customers: grace's first day moved to Jun 5, frank's is Jun 10.
    let m = metrics(&mut c, 30, Some(now)).await;
    assert_eq!(val(&m.new_customers), 2.0);
    let m = metrics(&mut c, 7, Some(utc(2026, 6, 11, 12, 0))).await;
    assert_eq!(val(&m.new_customers), 2.0, "Jun 5–11 holds both first days");
    let m = metrics(&mut c, 3, Some(now)).await;
    assert_eq!(val(&m.new_customers), 0.0);
}

async fn customers_are_upserted_with_account_traits_and_properties_and_listed_by_filter(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let signup = utc(2026, 1, 2, 3, 4);
    let created = c
        .upsert_customer(pb::UpsertCustomerRequest {
            customer_id: "crm-1".into(),
            account_id: Some("acct-9".into()),
            traits: Some(pb::CustomerTraits {
                email: Some("ann@example.com".into()),
                name: Some("Ann".into()),
                plan: Some("enterprise".into()),
                signup_time: Some(pts(signup)),
            }),
            properties: [("region".to_string(), "emea".to_string())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.account_id, "acct-9");
    let t = created.traits.clone().unwrap();
    assert_eq!((t.email.as_deref(), t.plan.as_deref()), (Some("ann@example.com"), Some("enterprise")));
    assert_eq!(t.signup_time.unwrap().seconds, signup.timestamp());
    assert_eq!(created.properties["region"], "emea");
    assert!(created.first_seen_date.is_empty());

    // Unset fields keep their value; an empty one clears it.
    let changed = c
        .upsert_customer(pb::UpsertCustomerRequest {
            customer_id: "crm-1".into(),
            account_id: None,
            traits: Some(pb::CustomerTraits { plan: Some(String::new()), ..Default::default() }),
            properties: [("tier".to_string(), "gold".to_string())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.account_id, "acct-9");
    let t = changed.traits.clone().unwrap();
    assert_eq!((t.email.as_deref(), t.plan.as_deref()), (Some("ann@example.com"), None));
    assert_eq!(changed.properties.len(), 2);
    let got = c.get_customer(pb::GetCustomerRequest { customer_id: "crm-1".into() }).await.unwrap().into_inner();
    assert_eq!(got, changed);

    for (id, acct, region) in [("crm-2", "acct-9", "apac"), ("crm-3", "acct-7", "emea"), ("crm-4", "", "emea")] {
        c.upsert_customer(pb::UpsertCustomerRequest {
            customer_id: id.into(),
            account_id: (!acct.is_empty()).then(|| acct.to_string()),
            traits: None,
            properties: [("region".to_string(), region.to_string())].into(),
        })
        .await
        .unwrap();
    }
    let list = |account: &str, filter: &[(&str, &str)], size: i32, token: String| pb::ListCustomersRequest {
        page_size: size,
        page_token: token,
        account_id: account.into(),
        property_filter: filter.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let ids = |r: &pb::ListCustomersResponse| {
        let mut v: Vec<String> = r.customers.iter().map(|c| c.customer_id.clone()).collect();
        v.sort();
        v
    };
    let r = c.list_customers(list("acct-9", &[], 0, String::new())).await.unwrap().into_inner();
    assert_eq!(ids(&r), vec!["crm-1", "crm-2"]);
    let r = c.list_customers(list("", &[("region", "emea")], 0, String::new())).await.unwrap().into_inner();
    assert_eq!(ids(&r), vec!["crm-1", "crm-3", "crm-4"]);
    let r = c.list_customers(list("acct-9", &[("region", "emea")], 0, String::new())).await.unwrap().into_inner();
    assert_eq!(ids(&r), vec!["crm-1"]);
    // Paging walks every customer once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let r = c.list_customers(list("", &[], 1, token)).await.unwrap().into_inner();
        seen.extend(r.customers.iter().map(|c| c.customer_id.clone()));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    seen.sort();
    assert_eq!(seen, vec!["crm-1", "crm-2", "crm-3", "crm-4"]);

    let err = c
        .upsert_customer(pb::UpsertCustomerRequest {
            customer_id: "crm-5".into(),
            account_id: Some("a".repeat(129)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "account_id");
    assert_code(c.get_customer(pb::GetCustomerRequest { customer_id: "crm-5".into() }).await, Code::NotFound);
    let err = c.upsert_customer(pb::UpsertCustomerRequest::default()).await.unwrap_err();
    assert_invalid(&err, "customer_id");
}

async fn the_scoring_config_round_trips_and_bad_values_name_their_fields(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let d = c.get_scoring_config(pb::GetScoringConfigRequest {}).await.unwrap().into_inner();
    assert_eq!((d.half_life_days, d.profit_margin, d.inactivity_days), (30.0, 1.0, 30));
    assert_eq!((d.time_zone.as_str(), d.currency.as_str()), ("UTC", "USD"));
    assert_eq!(d.health_bands.unwrap(), pb::HealthBands { red_max: 50.0, yellow_max: 75.0 });
    assert_eq!(d.risk.unwrap().inactive_days, 14);

    let set = pb::ScoringConfig {
        action_weights: [("call_made".to_string(), 3.0)].into(),
        half_life_days: 14.0,
        profit_margin: 0.4,
        time_zone: "America/New_York".into(),
        currency: "EUR".into(),
        ..Default::default()
    };
    let out =
        configure(&mut c, set, &["action_weights", "half_life_days", "profit_margin", "time_zone", "currency"]).await;
    assert_eq!(out.action_weights["call_made"], 3.0);
    assert_eq!((out.half_life_days, out.profit_margin), (14.0, 0.4));
    assert_eq!(out.time_zone, "America/New_York");
    assert_eq!(out.inactivity_days, 30, "fields outside the mask keep their value");
    let again = c.get_scoring_config(pb::GetScoringConfigRequest {}).await.unwrap().into_inner();
    assert_eq!(again, out);

    let bad = pb::ScoringConfig {
        half_life_days: 0.0,
        time_zone: "Mars/Olympus".into(),
        action_weights: [("x".to_string(), -2.0)].into(),
        ..Default::default()
    };
    let err = c
        .update_scoring_config(pb::UpdateScoringConfigRequest {
            config: Some(bad),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["half_life_days".into(), "time_zone".into(), "action_weights".into()],
            }),
        })
        .await
        .unwrap_err();
    for f in ["config.half_life_days", "config.time_zone", "config.action_weights[x]"] {
        assert_invalid(&err, f);
    }
    let err = c
        .update_scoring_config(pb::UpdateScoringConfigRequest { config: Some(Default::default()), update_mask: None })
        .await
        .unwrap_err();
    assert_invalid(&err, "update_mask");
    let after = c.get_scoring_config(pb::GetScoringConfigRequest {}).await.unwrap().into_inner();
    assert_eq!(after, out, "nothing written");
}

async fn another_tenant_sees_none_of_a_tenants_engagement(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 6, 30, 12, 0);
    set_clock(&app, now);
    let mut a = engagement(&app, None);
    configure(&mut a, weights(&[("call_made", 1.0)]), &["action_weights"]).await;
    record_ok(
        &mut a,
        vec![action("m1", "shared-id", now, "call_made", &[("call_type", "intl")]), purchase("m2", "only-a", now, 500)],
    )
    .await;
    let key_b = app.other_tenant_key().await;
    let mut bc = engagement(&app, Some(&key_b));

    // NOT_FOUND exactly as for an id nobody has.
    for id in ["only-a", "nobody-at-all"] {
        let e1 = bc.get_customer(pb::GetCustomerRequest { customer_id: id.into() }).await.unwrap_err();
        let e2 = bc
            .get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: id.into(), as_of: None })
            .await
            .unwrap_err();
        assert_eq!((e1.code(), e2.code()), (Code::NotFound, Code::NotFound));
        assert_eq!(e1.message().replace(id, "<id>"), "customer \"<id>\" not found");
    }
    let m = metrics(&mut bc, 30, None).await;
    assert_eq!((val(&m.dau), val(&m.mau), val(&m.new_customers)), (0.0, 0.0, 0.0));
    let top = bc
        .list_top_customers(pb::ListTopCustomersRequest {
            ranking: Some(pb::list_top_customers_request::Ranking::Action("call_made".into())),
            include_zero: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(top.customers.is_empty());
    let list = bc.list_customers(pb::ListCustomersRequest::default()).await.unwrap().into_inner();
    assert!(list.customers.is_empty());
    // B's message ids and customer ids are its own.
    let r = bc
        .record_events(pb::RecordEventsRequest { events: vec![action("m1", "shared-id", now, "call_made", &[])] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let pa = profile(&mut a, "shared-id", None).await;
    assert_eq!(val(&pa.activity.unwrap().windows[0].actions), 1.0);
    let m = metrics(&mut a, 30, None).await;
    assert_eq!(val(&m.dau), 2.0);
    let cfg_b = bc.get_scoring_config(pb::GetScoringConfigRequest {}).await.unwrap().into_inner();
    assert!(cfg_b.action_weights.is_empty(), "B has its own configuration");
}

async fn a_publishable_key_may_not_record_or_read_engagement(b: Backend) {
    let app = spawn_app(b).await;
    let key = app.services.create_key("acme", rapport::domain::model::KeyKind::Publishable).await.unwrap();
    let mut c = engagement(&app, Some(&key.secret));
    let now = app.clock.now();
    let err = c.record_events(pb::RecordEventsRequest { events: vec![session("m", "x", now, 1)] }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c.get_engagement_metrics(pb::GetEngagementMetricsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut none = EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(None));
    let err = none.get_scoring_config(pb::GetScoringConfigRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}
