//! Webhooks: signed deliveries with the full payload, retries, refusals, redirects,
//! dead letters and replay, the settle window, two replicas, and a crash mid-send.

use std::time::Duration;

use pb::webhook_service_client::WebhookServiceClient;
use tonic::Code;

use crate::helpers::*;
use crate::receiver::{Mode, Receiver, verify};

crate::on_both!(
    deliveries_are_signed_and_carry_the_full_payload,
    a_receiver_that_is_down_gets_the_event_once_it_is_back,
    a_4xx_is_not_retried_and_a_redirect_is_a_failed_attempt,
    a_dead_letter_can_be_replayed_with_the_same_webhook_id,
    the_settle_window_lets_the_comment_ride_with_follow_up_opened,
    follow_up_updated_may_arrive_before_follow_up_opened_which_then_carries_the_current_state,
    endpoints_can_be_filtered_rotated_tested_disabled_and_deleted,
    an_endpoint_failing_for_five_days_is_disabled_with_a_notice,
    a_crash_between_sending_and_recording_resends_the_same_webhook_id,
    bad_endpoints_are_refused_with_the_field_named,
);

type Hooks = WebhookServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>>;

fn hooks(app: &TestApp) -> Hooks {
    WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
}

async fn endpoint(app: &TestApp, url: &str, types: &[&str]) -> pb::WebhookEndpointWithSecret {
    hooks(app)
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url: url.into(),
            description: "CRM".into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            survey_ids: vec![],
        })
        .await
        .expect("create endpoint")
        .into_inner()
}

async fn deliveries(app: &TestApp, endpoint_id: &str) -> Vec<pb::Delivery> {
    hooks(app)
        .list_deliveries(pb::ListDeliveriesRequest {
            endpoint_id: endpoint_id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
}

const WAIT: Duration = Duration::from_secs(20);

async fn deliveries_are_signed_and_carry_the_full_payload(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let rx = Receiver::start().await;
    let ep = endpoint(&app, &rx.url, &[]).await;
    assert!(ep.secret.starts_with("whsec_"));
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut c = app.surveys.clone();
    let r = c
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: s.id.clone(),
                customer_id: "crm-7".into(),
            })),
            score: Some(3),
            comment: "Support never called back".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        eventually(WAIT, || async {
            rx.hits_of("follow_up.opened").len() == 1 && rx.hits_of("response.recorded").len() == 1
        })
        .await
    );
    for hit in rx.hits() {
        assert!(verify(&ep.secret, &hit), "signature of {}", hit.event_type());
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &hit), "a wrong secret fails");
        let age = chrono::Utc::now().timestamp() - hit.timestamp.parse::<i64>().unwrap();
        assert!(age.abs() < 300, "timestamp is now");
    }
    let recorded = rx.hits_of("response.recorded").remove(0).json();
    let data = &recorded["data"];
    assert_eq!(data["response_id"], r.id.as_str());
    assert_eq!(data["survey_kind"], "nps");
    assert_eq!(data["score"], 3);
    assert_eq!(data["bucket"], "detractor");
    assert_eq!(data["comment"], "Support never called back");
    assert_eq!(data["customer_id"], "crm-7");
    let opened = rx.hits_of("follow_up.opened").remove(0).json();
    assert_eq!(opened["data"]["status"], "open");
    assert_eq!(opened["data"]["follow_up_id"], r.follow_up_id.as_str());
    assert_eq!(opened["data"]["response"]["score"], 3);

    // webhook-id is the event id, the same one the stream and the delivery log show.
    let ds = deliveries(&app, &ep.endpoint.as_ref().unwrap().id).await;
    assert_eq!(ds.len(), 2);
    for d in &ds {
        assert_eq!(d.status, pb::DeliveryStatus::Succeeded as i32);
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(d.attempts[0].status_code, 200);
        assert!(rx.hits().iter().any(|h| h.id == d.event_id));
    }
}

async fn a_receiver_that_is_down_gets_the_event_once_it_is_back(b: Backend) {
    let app = spawn_app_with(b, |a| {
        fast_outbox(a);
        a.outbox.webhook_retry_schedule = "0s,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms".into();
    })
    .await;
    let rx = Receiver::start().await;
    rx.set(Mode::Status(503));
    let ep = endpoint(&app, &rx.url, &["response.recorded"]).await;
    let s = app.survey(pb::SurveyKind::Csat, None).await;
    app.answer(&s.id, "c", 5).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits().len() >= 3 }).await, "retried while down");
    rx.set(Mode::Status(200));
    let id = ep.endpoint.unwrap().id;
    assert!(
        eventually(WAIT, || async {
            deliveries(&app, &id).await.first().is_some_and(|d| d.status == pb::DeliveryStatus::Succeeded as i32)
        })
        .await,
        "delivered once back"
    );
    let hits = rx.hits();
    let first = &hits[0];
    assert!(hits.iter().all(|h| h.id == first.id), "one webhook-id across retries");
    let attempts: Vec<u32> = hits.iter().map(|h| h.attempt.parse().unwrap()).collect();
    assert_eq!(attempts, (1..=hits.len() as u32).collect::<Vec<_>>());
    let d = deliveries(&app, &id).await.remove(0);
    assert_eq!(d.attempts.len(), hits.len());
    assert!(d.attempts[..hits.len() - 1].iter().all(|a| a.status_code == 503));
    assert_eq!(d.attempts.last().unwrap().status_code, 200);
    // Prometheus counts each attempt by outcome.
    let m = crate::observability::scrape(&app).await;
    let count = |outcome| crate::observability::value(&m, "rapport_webhook_deliveries_total", &[("outcome", outcome)]);
    assert_eq!(count("retrying") as usize, hits.len() - 1);
    assert_eq!(count("succeeded"), 1.0);
}

async fn a_4xx_is_not_retried_and_a_redirect_is_a_failed_attempt(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let refusing = Receiver::start().await;
    refusing.set(Mode::Status(410));
    let redirecting = Receiver::start().await;
    redirecting.set(Mode::Redirect);
    let ep1 = endpoint(&app, &refusing.url, &["response.recorded"]).await.endpoint.unwrap();
    let ep2 = endpoint(&app, &redirecting.url, &["response.recorded"]).await.endpoint.unwrap();
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "c", 10).await.unwrap();

    assert!(
        eventually(WAIT, || async {
            deliveries(&app, &ep1.id).await.first().is_some_and(|d| d.status == pb::DeliveryStatus::Failed as i32)
        })
        .await
    );
    let d = deliveries(&app, &ep1.id).await.remove(0);
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].status_code, 410);
    assert_eq!(refusing.hits().len(), 1, "a 4xx is not retried");

    // Redirects are failures (retried) and never followed; with five attempts it dead-letters.
    assert!(
        eventually(WAIT, || async {
            deliveries(&app, &ep2.id).await.first().is_some_and(|d| d.status == pb::DeliveryStatus::DeadLettered as i32)
        })
        .await
    );
    let d = deliveries(&app, &ep2.id).await.remove(0);
    assert_eq!(d.attempts.len(), 5);
    assert!(d.attempts.iter().all(|a| a.status_code == 302));
    assert_eq!(redirecting.redirected(), 0, "the redirect was not followed");
}

async fn a_dead_letter_can_be_replayed_with_the_same_webhook_id(b: Backend) {
    let app = spawn_app_with(b, |a| {
        fast_outbox(a);
        a.outbox.webhook_retry_schedule = "0s,50ms".into();
    })
    .await;
    let rx = Receiver::start().await;
    rx.set(Mode::Status(500));
    let ep = endpoint(&app, &rx.url, &["response.recorded"]).await.endpoint.unwrap();
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "a", 9).await.unwrap();
    app.answer(&s.id, "b", 9).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            let ds = deliveries(&app, &ep.id).await;
            ds.len() == 2 && ds.iter().all(|d| d.status == pb::DeliveryStatus::DeadLettered as i32)
        })
        .await
    );
    assert_eq!(rx.hits().len(), 4, "two attempts each");
    let dead = deliveries(&app, &ep.id).await;
    rx.set(Mode::Status(200));

    // One event by id.
    let event_id = dead[0].event_id.clone();
    let queued = hooks(&app)
        .replay_events(pb::ReplayEventsRequest {
            endpoint_id: ep.id.clone(),
            scope: Some(pb::replay_events_request::Scope::EventId(event_id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.queued, 1);
    assert!(eventually(WAIT, || async { rx.hits().len() == 5 }).await);
    let replayed = rx.hits().pop().unwrap();
    assert_eq!(replayed.id, event_id, "the same webhook-id");
    let originals: Vec<_> = rx.hits().into_iter().filter(|h| h.id == event_id).collect();
    assert_eq!(originals[0].body, replayed.body, "the same body");

    // Every event of the endpoint in a time range.
    let now = app.clock.now();
    let queued = hooks(&app)
        .replay_events(pb::ReplayEventsRequest {
            endpoint_id: ep.id.clone(),
            scope: Some(pb::replay_events_request::Scope::TimeRange(pb::TimeRange {
                start_time: Some(prost_types::Timestamp { seconds: now.timestamp() - 3600, nanos: 0 }),
                end_time: Some(prost_types::Timestamp { seconds: now.timestamp() + 1, nanos: 0 }),
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.queued, 2);
    assert!(eventually(WAIT, || async { rx.hits().len() == 7 }).await);
    let ids: std::collections::HashSet<String> = rx.hits().into_iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), 2, "replays reuse the two events' ids");
}

async fn the_settle_window_lets_the_comment_ride_with_follow_up_opened(b: Backend) {
    let app = spawn_app_with(b, |a| {
        fast_outbox(a);
        a.outbox.webhook_settle_seconds = 60;
    })
    .await;
    let rx = Receiver::start().await;
    endpoint(&app, &rx.url, &["follow_up.opened", "response.recorded"]).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&s.id, "c").await;
    let mut form = app.surveys_as(None);
    form.record_response(pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Token(issued.token.clone())),
        score: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(eventually(WAIT, || async { rx.hits_of("response.recorded").len() == 1 }).await, "not held");
    assert!(rx.hits_of("follow_up.opened").is_empty(), "held for the settle window");
    form.update_response(pb::UpdateResponseRequest {
        target: Some(pb::update_response_request::Target::Token(issued.token)),
        comment: Some("The app crashes on login".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    app.clock.advance(chrono::Duration::seconds(61));
    assert!(eventually(WAIT, || async { rx.hits_of("follow_up.opened").len() == 1 }).await);
    let opened = rx.hits_of("follow_up.opened").remove(0).json();
    assert_eq!(opened["data"]["response"]["comment"], "The app crashes on login");
    assert_eq!(opened["data"]["response"]["score"], 2);
}

/// Webhooks are not ordered (docs/webhooks.md): `follow_up.opened` is held for the
/// settle window while a `follow_up.updated` of the same follow-up is sent at once, so a
/// receiver sees the update first; the held `opened` is rendered when first sent, so it
/// is never staler than what arrived before it (its `updated_at` and status are the
/// latest). The event stream has them in commit order.
async fn follow_up_updated_may_arrive_before_follow_up_opened_which_then_carries_the_current_state(b: Backend) {
    let app = spawn_app_with(b, |a| {
        fast_outbox(a);
        a.outbox.webhook_settle_seconds = 60;
    })
    .await;
    let rx = Receiver::start().await;
    endpoint(&app, &rx.url, &["follow_up.opened", "follow_up.updated"]).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let r = app.answer(&s.id, "c", 1).await.expect("an answer");
    app.follow_ups
        .clone()
        .update_follow_up(pb::UpdateFollowUpRequest {
            id: r.follow_up_id.clone(),
            author: "ana".into(),
            action: Some(pb::update_follow_up_request::Action::Acknowledge(Default::default())),
        })
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { rx.hits_of("follow_up.updated").len() == 1 }).await, "sent at once");
    assert!(rx.hits_of("follow_up.opened").is_empty(), "held for the settle window");
    app.clock.advance(chrono::Duration::seconds(61));
    assert!(eventually(WAIT, || async { rx.hits_of("follow_up.opened").len() == 1 }).await);
    let types: Vec<String> = rx.hits().iter().map(|h| h.event_type()).collect();
    assert_eq!(types, ["follow_up.updated", "follow_up.opened"], "arrival order is not commit order");
    let updated = rx.hits_of("follow_up.updated").remove(0).json();
    let opened = rx.hits_of("follow_up.opened").remove(0).json();
    assert_eq!(updated["data"]["status"], "acknowledged");
    assert_eq!(opened["data"]["status"], "acknowledged", "rendered when first sent");
    assert_eq!(opened["data"]["updated_at"], updated["data"]["updated_at"]);
    // The stream has them in commit order: response.recorded, follow_up.opened, then
    // follow_up.updated.
    let mut stream = pb::event_service_client::EventServiceClient::with_interceptor(
        app.channel.clone(),
        Auth(Some(app.key.clone())),
    )
    .watch_events(pb::WatchEventsRequest {
        after_sequence: 0,
        types: vec!["follow_up.opened".into(), "follow_up.updated".into()],
    })
    .await
    .expect("watch")
    .into_inner();
    let mut order = Vec::new();
    while order.len() < 2 {
        let e = tokio::time::timeout(WAIT, stream.message()).await.expect("in time").expect("a message").expect("open");
        order.push(e.r#type);
    }
    assert_eq!(order, ["follow_up.opened", "follow_up.updated"]);
}

async fn endpoints_can_be_filtered_rotated_tested_disabled_and_deleted(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let rx = Receiver::start().await;
    let s1 = app.survey(pb::SurveyKind::Nps, None).await;
    let s2 = app.survey(pb::SurveyKind::Nps, None).await;
    let mut h = hooks(&app);
    let created = h
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url: rx.url.clone(),
            description: String::new(),
            event_types: vec!["response.recorded".into()],
            survey_ids: vec![s1.id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let id = created.endpoint.unwrap().id;
    app.answer(&s2.id, "x", 9).await.unwrap(); // other survey: filtered out
    app.answer(&s1.id, "y", 9).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits().len() == 1 }).await);
    assert_eq!(rx.hits()[0].json()["data"]["survey_id"], s1.id.as_str());

    // Test event.
    h.send_test_event(pb::SendTestEventRequest { endpoint_id: id.clone() }).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits_of("webhook.test").len() == 1 }).await);

    // Rotation: later deliveries use the new secret.
    let rotated =
        h.rotate_webhook_secret(pb::RotateWebhookSecretRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_ne!(rotated.secret, created.secret);
    app.answer(&s1.id, "z", 9).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits_of("response.recorded").len() == 2 }).await);
    let last = rx.hits_of("response.recorded").pop().unwrap();
    assert!(verify(&rotated.secret, &last) && !verify(&created.secret, &last));

    // Disabled: nothing is sent; deliveries wait until it is enabled again.
    let upd = |enabled: bool| pb::UpdateWebhookEndpointRequest {
        endpoint: Some(pb::WebhookEndpoint { id: id.clone(), enabled, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["enabled".into()] }),
    };
    let off = h.update_webhook_endpoint(upd(false)).await.unwrap().into_inner();
    assert!(!off.enabled);
    app.answer(&s1.id, "w", 9).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            deliveries(&app, &id).await.iter().any(|d| d.status == pb::DeliveryStatus::Pending as i32)
        })
        .await
    );
    assert_eq!(rx.hits_of("response.recorded").len(), 2);
    h.update_webhook_endpoint(upd(true)).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits_of("response.recorded").len() == 3 }).await);

    let listed = h.list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.endpoints.len(), 1);
    h.delete_webhook_endpoint(pb::DeleteWebhookEndpointRequest { id: id.clone() }).await.unwrap();
    assert_code(h.rotate_webhook_secret(pb::RotateWebhookSecretRequest { id: id.clone() }).await, Code::NotFound);
    assert!(
        h.list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .endpoints
            .is_empty()
    );

    // Another tenant sees none of it.
    let other = app.other_tenant_key().await;
    let mut theirs = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(other)));
    assert_code(theirs.send_test_event(pb::SendTestEventRequest { endpoint_id: id }).await, Code::NotFound);
}

async fn an_endpoint_failing_for_five_days_is_disabled_with_a_notice(b: Backend) {
    let app = spawn_app_with(b, |a| {
        fast_outbox(a);
        a.outbox.webhook_retry_schedule = "0s,1h,1h,1h".into();
    })
    .await;
    let rx = Receiver::start().await;
    rx.set(Mode::Status(500));
    let ep = endpoint(&app, &rx.url, &["response.recorded"]).await.endpoint.unwrap();
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "c", 9).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits().len() == 1 }).await);
    let mut h = hooks(&app);
    assert!(
        eventually(WAIT, || async {
            let e = h
                .clone()
                .list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default())
                .await
                .unwrap()
                .into_inner();
            e.endpoints[0].failing_since.is_some()
        })
        .await,
        "failing since the first failure"
    );
    app.clock.advance(chrono::Duration::days(5) + chrono::Duration::hours(1));
    assert!(
        eventually(WAIT, || async {
            let e = h
                .clone()
                .list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default())
                .await
                .unwrap()
                .into_inner();
            !e.endpoints[0].enabled
        })
        .await
    );
    let e = h.list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default()).await.unwrap().into_inner();
    assert!(e.endpoints[0].disabled_reason.contains("failing"));
    let d = deliveries(&app, &ep.id).await.remove(0);
    assert!(d.attempts.iter().any(|a| a.error.starts_with("notice:")), "{:?}", d.attempts);
}

async fn a_crash_between_sending_and_recording_resends_the_same_webhook_id(b: Backend) {
    let first = spawn_app_with(b, fast_outbox).await;
    let rx = Receiver::start().await;
    rx.set(Mode::Hang);
    endpoint(&first, &rx.url, &["response.recorded"]).await;
    let s = first.survey(pb::SurveyKind::Nps, None).await;
    first.answer(&s.id, "c", 9).await.unwrap();
    assert!(eventually(WAIT, || async { rx.hits().len() == 1 }).await, "the first attempt is in flight");
    let (url, key) = (first.db_url.clone(), first.key.clone());
    // Keep the database (and SQLite file) while the first server dies mid-send.
    let mut first = first;
    let keep_db = first.pg.take();
    let tmp = first.take_dir();
    first.crash();

    rx.set(Mode::Status(200));
    let second = spawn_app_on(b, url, key, fast_outbox).await;
    // The claim of the dead server runs out (timeout + 30 s); then it is sent again.
    second.clock.advance(chrono::Duration::seconds(40));
    assert!(eventually(WAIT, || async { rx.hits().len() == 2 }).await, "re-sent");
    let hits = rx.hits();
    assert_eq!(hits[0].id, hits[1].id, "the same webhook-id, never a loss");
    assert_eq!(hits[1].attempt, "2");
    drop(second);
    drop(tmp);
    if let Some((name, admin)) = keep_db {
        drop_database(&name, &admin).await;
    }
}

async fn bad_endpoints_are_refused_with_the_field_named(b: Backend) {
    let app = spawn_app(b).await; // default settings: no private targets, https only
    let mut h = hooks(&app);
    for (url, why) in [
        ("http://example.com/hook", "https"),
        ("https://127.0.0.1/hook", "private"),
        ("https://localhost/hook", "private"),
        ("ftp://example.com", "https"),
        ("not a url", "URL"),
    ] {
        let err = h
            .create_webhook_endpoint(pb::CreateWebhookEndpointRequest { url: url.into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_invalid(&err, "url");
        assert!(err.message().contains(why), "{url}: {}", err.message());
    }
    let err = h
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url: "https://127.0.0.1/hook".into(),
            event_types: vec!["response.exploded".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        h.list_webhook_endpoints(pb::ListWebhookEndpointsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .endpoints
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_two_servers_on_one_database_deliver_each_attempt_once() {
    let a = spawn_app_with(Backend::Postgres, fast_outbox).await;
    let b = spawn_app_on(Backend::Postgres, a.db_url.clone(), a.key.clone(), fast_outbox).await;
    let rx = Receiver::start().await;
    endpoint(&a, &rx.url, &["response.recorded"]).await;
    let s = a.survey(pb::SurveyKind::Nps, None).await;
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let app = if i % 2 == 0 { a.surveys.clone() } else { b.surveys.clone() };
        let sid = s.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut app = app;
            app.record_response(pb::RecordResponseRequest {
                target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                    survey_id: sid,
                    customer_id: format!("c{i}"),
                })),
                score: Some(9),
                ..Default::default()
            })
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(eventually(WAIT, || async { rx.hits().len() >= n }).await);
    // Let both dispatchers look again: every delivery is recorded as succeeded.
    assert!(
        eventually(WAIT, || async {
            hooks(&a)
                .list_deliveries(pb::ListDeliveriesRequest { page_size: 1000, ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .deliveries
                .iter()
                .all(|d| d.status == pb::DeliveryStatus::Succeeded as i32)
        })
        .await
    );
    let hits = rx.hits();
    let mut per_id = std::collections::HashMap::<String, usize>::new();
    for h in &hits {
        *per_id.entry(format!("{}#{}", h.id, h.attempt)).or_default() += 1;
    }
    assert_eq!(per_id.len(), n, "one delivery per event");
    assert!(per_id.values().all(|&c| c == 1), "no attempt sent twice: {per_id:?}");
    drop(b);
}
