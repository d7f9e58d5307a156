//! Prometheus metrics on the admin port: scraped over real HTTP after real gRPC calls,
//! parsed with a Prometheus text parser (the `prometheus-parse` crate), and checked to
//! have moved by exactly what the calls did.

use std::net::SocketAddr;

use http_body_util::BodyExt;
use pb::record_response_request::Target;
use pb::update_follow_up_request::{Acknowledge, Action};
use pb::update_response_request::Target as UpdateTarget;
use prometheus_parse::{Scrape, Value};
use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    metrics_count_rpcs_by_method_and_code_and_time_them,
    metrics_count_recorded_responses_and_follow_ups_after_commit_only,
    metrics_show_open_follow_ups_and_the_database_pool,
);

/// One scrape of `/metrics`: (content type, body).
async fn scrape_raw(addr: SocketAddr) -> (String, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}/metrics").parse().expect("a URI");
    let response = client.get(uri).await.expect("GET /metrics");
    assert_eq!(response.status(), http::StatusCode::OK);
    let content_type =
        response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = response.into_body().collect().await.expect("the body").to_bytes();
    (content_type, String::from_utf8(body.to_vec()).expect("UTF-8 text"))
}

/// `/metrics`, parsed.
pub async fn scrape(app: &TestApp) -> Scrape {
    let (_, body) = scrape_raw(app.admin_addr).await;
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// The sum of the samples of `metric` whose labels include `labels` (0 if none).
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(_) | Value::Summary(_) => panic!("{metric} is not a single value"),
        })
        .sum()
}

/// The buckets (upper bound, cumulative count) of one histogram series.
pub(crate) fn histogram(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let series: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(series.len(), 1, "one {metric} series for {labels:?}");
    match &series[0].value {
        Value::Histogram(buckets) => buckets.iter().map(|b| (b.less_than, b.count)).collect(),
        other => panic!("{metric} is not a histogram: {other:?}"),
    }
}

const SURVEYS: &str = "rapport.v1.SurveyService";

fn rpc<'a>(method: &'a str, code: &'a str) -> [(&'a str, &'a str); 4] {
    [("grpc_service", SURVEYS), ("grpc_method", method), ("grpc_type", "unary"), ("grpc_code", code)]
}

fn direct(survey: &str, customer: &str, score: i32, key: Option<&str>) -> pb::RecordResponseRequest {
    pb::RecordResponseRequest {
        target: Some(Target::Direct(pb::SurveyCustomer { survey_id: survey.into(), customer_id: customer.into() })),
        score: Some(score),
        idempotency_key: key.unwrap_or_default().to_owned(),
        ..Default::default()
    }
}

async fn metrics_count_rpcs_by_method_and_code_and_time_them(b: Backend) {
    let app = spawn_app(b).await;
    let (content_type, body) = scrape_raw(app.admin_addr).await;
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    let before = scrape(&app).await;

    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    let mut c = app.surveys.clone();
    for (customer, score) in [("a", 10), ("b", 3), ("c", 8)] {
        c.record_response(direct(&nps.id, customer, score, None)).await.expect("recorded");
    }
    assert_invalid(&c.record_response(direct(&nps.id, "d", 11, None)).await.unwrap_err(), "score");
    let missing = c.get_survey(pb::GetSurveyRequest { id: "01a20988-bb56-72df-b86d-0c51fcf49060".into() }).await;
    assert_code(missing, Code::NotFound);
    // A call with no key at all.
    assert_code(app.surveys_as(None).list_surveys(pb::ListSurveysRequest::default()).await, Code::Unauthenticated);

    let after = scrape(&app).await;
    let moved = |metric: &str, labels: &[(&str, &str)]| value(&after, metric, labels) - value(&before, metric, labels);
    assert_eq!(moved("grpc_server_handled_total", &rpc("RecordResponse", "OK")), 3.0);
    assert_eq!(moved("grpc_server_handled_total", &rpc("RecordResponse", "InvalidArgument")), 1.0);
    assert_eq!(moved("grpc_server_handled_total", &[("grpc_method", "RecordResponse")]), 4.0, "no other code");
    assert_eq!(moved("grpc_server_handled_total", &rpc("CreateSurvey", "OK")), 1.0);
    assert_eq!(moved("grpc_server_handled_total", &rpc("GetSurvey", "NotFound")), 1.0);
    assert_eq!(moved("grpc_server_handled_total", &rpc("ListSurveys", "Unauthenticated")), 1.0);
    assert_eq!(moved("grpc_server_handled_total", &[("grpc_service", SURVEYS)]), 7.0, "7 calls in all");
    assert_eq!(
        moved("grpc_server_started_total", &[("grpc_service", SURVEYS), ("grpc_method", "RecordResponse")]),
        4.0
    );

    // The latency histogram of RecordResponse: 4 observations, cumulative buckets up to +Inf.
    let labels = [("grpc_service", SURVEYS), ("grpc_method", "RecordResponse"), ("grpc_type", "unary")];
    let buckets = histogram(&after, "grpc_server_handling_seconds", &labels);
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf: {buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "cumulative: {buckets:?}");
    assert_eq!(buckets.last().copied(), Some((f64::INFINITY, 4.0)));
    assert_eq!(value(&after, "grpc_server_handling_seconds_count", &labels), 4.0);
    assert!(value(&after, "grpc_server_handling_seconds_sum", &labels) > 0.0);

    // Health checks are RPCs too, on their own service.
    let health = [("grpc_service", "grpc.health.v1.Health"), ("grpc_method", "Check"), ("grpc_code", "OK")];
    let checks = value(&after, "grpc_server_handled_total", &health);
    app.health
        .clone()
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .expect("health check");
    assert_eq!(value(&scrape(&app).await, "grpc_server_handled_total", &health), checks + 1.0);
}

async fn metrics_count_recorded_responses_and_follow_ups_after_commit_only(b: Backend) {
    let app = spawn_app(b).await;
    let before = scrape(&app).await;
    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    let csat = app.survey(pb::SurveyKind::Csat, Some(5)).await;
    let mut c = app.surveys.clone();

    let promoter = c.record_response(direct(&nps.id, "a", 10, None)).await.unwrap().into_inner();
    c.record_response(direct(&nps.id, "b", 3, None)).await.unwrap(); // detractor: opens a follow-up
    c.record_response(direct(&csat.id, "c", 2, None)).await.unwrap(); // unsatisfied: opens one too
    c.record_response(direct(&csat.id, "d", 5, None)).await.unwrap(); // satisfied
    // A retry with the same idempotency key returns the first result and counts once.
    for _ in 0..2 {
        c.record_response(direct(&nps.id, "e", 8, Some("retry-1"))).await.expect("recorded or replayed");
    }
    // Refused writes count nothing: a bad score, and a second answer to one invitation
    // (refused by the unique constraint, inside a transaction that rolls back).
    assert_invalid(&c.record_response(direct(&nps.id, "f", -1, None)).await.unwrap_err(), "score");
    let issued = app.issue(&nps.id, "g").await;
    let by_token = |score| pb::RecordResponseRequest {
        target: Some(Target::Token(issued.token.clone())),
        score: Some(score),
        ..Default::default()
    };
    c.record_response(by_token(9)).await.expect("the first answer");
    assert_code(c.record_response(by_token(0)).await, Code::AlreadyExists);
    // Lowering a score later opens a follow-up from UpdateResponse.
    c.update_response(pb::UpdateResponseRequest {
        target: Some(UpdateTarget::ResponseId(promoter.id.clone())),
        score: Some(2),
        ..Default::default()
    })
    .await
    .expect("score changed");

    let after = scrape(&app).await;
    let moved = |metric: &str, labels: &[(&str, &str)]| value(&after, metric, labels) - value(&before, metric, labels);
    let recorded = "rapport_responses_recorded_total";
    assert_eq!(moved(recorded, &[("kind", "nps"), ("bucket", "promoter")]), 2.0, "10 and the token's 9");
    assert_eq!(moved(recorded, &[("kind", "nps"), ("bucket", "detractor")]), 1.0, "the change is no new response");
    assert_eq!(moved(recorded, &[("kind", "nps"), ("bucket", "passive")]), 1.0, "the retry counts once");
    assert_eq!(moved(recorded, &[("kind", "csat"), ("bucket", "unsatisfied")]), 1.0);
    assert_eq!(moved(recorded, &[("kind", "csat"), ("bucket", "satisfied")]), 1.0);
    assert_eq!(moved(recorded, &[]), 6.0, "6 responses stored");
    assert_eq!(moved("rapport_follow_ups_opened_total", &[("kind", "nps")]), 2.0, "score 3, and 10 lowered to 2");
    assert_eq!(moved("rapport_follow_ups_opened_total", &[("kind", "csat")]), 1.0);
    assert_eq!(moved("rapport_follow_ups_opened_total", &[]), 3.0);
    // The same figures the API reports.
    assert_eq!(app.all_responses().await.len(), 6);
    assert_eq!(app.all_follow_ups().await.len(), 3);
}

async fn metrics_show_open_follow_ups_and_the_database_pool(b: Backend) {
    let app = spawn_app(b).await;
    let open = |s: &Scrape, status: &str| value(s, "rapport_follow_ups_open", &[("status", status)]);
    let first = scrape(&app).await;
    assert_eq!((open(&first, "open"), open(&first, "acknowledged")), (0.0, 0.0));

    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    let mut ids = Vec::new();
    for customer in ["a", "b", "c"] {
        ids.push(app.answer(&nps.id, customer, 1).await.unwrap().follow_up_id);
    }
    app.follow_ups
        .clone()
        .update_follow_up(pb::UpdateFollowUpRequest {
            id: ids[0].clone(),
            author: "ana@example.com".into(),
            action: Some(Action::Acknowledge(Acknowledge {})),
        })
        .await
        .expect("acknowledged");
    // Another tenant's follow-up counts too: the gauge is for the operator, across tenants.
    let other = app.other_tenant_key().await;
    let mut theirs = app.surveys_as(Some(&other));
    let s = app.survey_as(&other, pb::Survey { kind: pb::SurveyKind::Nps as i32, ..Default::default() }).await;
    theirs.record_response(direct(&s.id, "z", 0, None)).await.unwrap();

    let now = scrape(&app).await;
    assert_eq!(open(&now, "open"), 3.0, "two of acme's and one of globex's");
    assert_eq!(open(&now, "acknowledged"), 1.0);
    let overdue = value(&now, "rapport_follow_ups_overdue", &[("status", "open")]);
    assert_eq!(overdue.to_bits(), 0.0f64.to_bits(), "a sample of 0 (not none: -0.0): none is due yet");
    assert_eq!(value(&now, "rapport_db_up", &[]), 1.0);
    // No endpoint, so nothing waits for the webhook fan-out.
    assert_eq!(value(&now, "rapport_event_fanout_lag_seconds", &[]).to_bits(), 0.0f64.to_bits());
    assert_eq!(value(&now, "rapport_record_queue_waiting", &[]), 0.0);
    let limit = rapport::service::responses::DEFAULT_RECORD_QUEUE_LIMIT as f64;
    assert_eq!(value(&now, "rapport_record_queue_limit", &[]), limit);

    // A month on, every follow-up still open or acknowledged is past its due time.
    app.clock.advance(chrono::Duration::days(31));
    let later = scrape(&app).await;
    let overdue = |status: &str| value(&later, "rapport_follow_ups_overdue", &[("status", status)]);
    assert_eq!((overdue("open"), overdue("acknowledged")), (3.0, 1.0), "globex's one counts too");

    // The harness gives the pool 4 connections; some are open by now.
    assert_eq!(value(&now, "rapport_db_pool_max_connections", &[]), 4.0);
    let in_use = value(&now, "rapport_db_pool_connections", &[("state", "in_use")]);
    let idle = value(&now, "rapport_db_pool_connections", &[("state", "idle")]);
    assert!(in_use >= 0.0 && idle >= 0.0 && in_use + idle >= 1.0 && in_use + idle <= 8.0, "{in_use} + {idle}");
    // No webhook deliveries yet: the family is described and has no samples.
    assert_eq!(value(&now, "rapport_webhook_deliveries_total", &[]), 0.0);
}
