//! The HTTP gateway through a real HTTP client: the JSON routes (good and bad input,
//! grpc-gateway statuses and error bodies), publishable-key limits on every route, the
//! OpenAPI document against the routes, CORS, gRPC-Web, rate limits, the hosted page
//! and the widget.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::*;
use crate::web::{Reply, Web};

crate::on_both!(
    every_in_app_json_route_works_with_good_input,
    in_app_json_routes_answer_bad_input_with_grpc_gateway_statuses_and_error_bodies,
    every_other_route_refuses_a_publishable_key_and_serves_a_secret_key,
    the_hosted_page_shows_the_question_and_explains_expired_used_and_unknown_links,
);

/// Every JSON route, as `METHOD /path` in the OpenAPI document, written out by hand from
/// the proto's annotations. OpenAPI gives paths of one shape one parameter name, so
/// `PATCH /v1/surveys/{survey.id}` is listed under `/v1/surveys/{id}` and
/// `GET /v1/responses/{id}` under `/v1/responses/{response_id}`.
const ROUTES: &[&str] = &[
    "GET /v1/audit-events",
    "POST /v1/customers/{customer_id}:erase",
    "GET /v1/retention-policy",
    "PATCH /v1/retention-policy",
    "GET /v1/follow-ups",
    "GET /v1/follow-ups/{id}",
    "POST /v1/follow-ups/{id}:update",
    "PUT /v1/customers/{customer_id}/subscription",
    "GET /v1/invitations/{token}",
    "POST /v1/invitations/{token}:dismiss",
    "POST /v1/invitations/{token}/response",
    "PATCH /v1/invitations/{token}/response",
    "GET /v1/metrics",
    "GET /v1/responses",
    "POST /v1/responses",
    "GET /v1/responses/{response_id}",
    "PATCH /v1/responses/{response_id}",
    "GET /v1/surveys",
    "POST /v1/surveys",
    "GET /v1/surveys/{id}",
    "POST /v1/surveys/{id}:archive",
    "PATCH /v1/surveys/{id}",
    "GET /v1/surveys/{survey_id}/eligibility",
    "POST /v1/surveys/{survey_id}/invitations",
    "GET /v1/surveys/{survey_id}/metrics",
    "POST /v1/webhook-endpoints",
    "GET /v1/webhook-endpoints",
    "PATCH /v1/webhook-endpoints/{endpoint_id}",
    "DELETE /v1/webhook-endpoints/{endpoint_id}",
    "POST /v1/webhook-endpoints/{id}:rotateSecret",
    "POST /v1/webhook-endpoints/{endpoint_id}:replay",
    "POST /v1/webhook-endpoints/{endpoint_id}:sendTest",
    "GET /v1/webhook-deliveries",
    "POST /v1/imports/responses",
    "POST /v1/imports/events",
    "GET /v1/customers",
    "GET /v1/customers/{customer_id}",
    "GET /v1/customers/{customer_id}/profile",
    "GET /v1/accounts",
    "GET /v1/accounts/{account_id}/profile",
    "POST /v1/surveys/{survey_id}/metrics:compare",
    "POST /v1/metrics:compare",
    "GET /v1/surveys/{survey_id}/themes",
    "GET /v1/themes",
    "GET /v1/surveys/{survey_id}/drivers",
    "GET /v1/drivers",
];

/// The routes a publishable key (or an invitation token) may use.
const IN_APP_ROUTES: &[&str] = &[
    "POST /v1/surveys/{survey_id}/invitations",
    "GET /v1/invitations/{token}",
    "POST /v1/invitations/{token}:dismiss",
    "POST /v1/invitations/{token}/response",
    "PATCH /v1/invitations/{token}/response",
];

async fn create_survey(web: &Web, key: &str, body: Value) -> Value {
    let r = web.post("/v1/surveys", Some(key), &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json
}

async fn every_in_app_json_route_works_with_good_input(b: Backend) {
    let app = spawn_app(b).await;
    let web = Web::new(&app);
    let s = create_survey(
        &web,
        &app.key,
        json!({"kind": "SURVEY_KIND_CSAT", "scaleMax": 5, "question": "How was support?", "lowLabel": "Bad",
               "highLabel": "Great", "inApp": true}),
    )
    .await;
    assert_eq!(s["scaleMax"], 5);
    assert_eq!(s["kind"], "SURVEY_KIND_CSAT", "enums by name");
    assert!(s["createTime"].as_str().unwrap().ends_with('Z'), "RFC 3339 timestamps");
    let id = s["id"].as_str().unwrap();
    let pk = app.publishable_key().await;

    let issued = web
        .post(
            &format!("/v1/surveys/{id}/invitations"),
            Some(&pk),
            &json!({"customerId": "crm-9", "channel": "CHANNEL_IN_APP"}),
        )
        .await;
    assert_eq!(issued.status, 200, "{issued:?}");
    assert_eq!(issued.json["issued"], true);
    assert_eq!(issued.json["invitation"]["channel"], "CHANNEL_IN_APP");
    let token = issued.json["token"].as_str().unwrap().to_owned();

    let got = web.get(&format!("/v1/invitations/{token}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json["form"]["question"], "How was support?");
    assert_eq!((got.json["form"]["scaleMin"].clone(), got.json["form"]["scaleMax"].clone()), (json!(1), json!(5)));
    assert_eq!(
        (got.json["form"]["lowLabel"].as_str(), got.json["form"]["highLabel"].as_str()),
        (Some("Bad"), Some("Great"))
    );
    assert_eq!(got.json["invitation"]["status"], "INVITATION_STATUS_PENDING");

    let rec = web.post(&format!("/v1/invitations/{token}/response"), Some(&pk), &json!({"score": 2})).await;
    assert_eq!(rec.status, 200, "{rec:?}");
    assert_eq!(rec.json["bucket"], "BUCKET_UNSATISFIED");
    assert!(rec.json["followUpId"].as_str().is_some_and(|f| !f.is_empty()));
    let upd =
        web.patch(&format!("/v1/invitations/{token}/response"), Some(&pk), &json!({"comment": "Took a week"})).await;
    assert_eq!(upd.status, 200, "{upd:?}");
    assert_eq!((upd.json["score"].clone(), upd.json["comment"].clone()), (json!(2), json!("Took a week")));
    // The same answer over gRPC, with the secret key.
    let all = app.all_responses().await;
    assert_eq!((all.len(), all[0].comment.as_str()), (1, "Took a week"));

    // RecordResponse also takes the token in the body; and a second form can be dismissed.
    let t2 = app.issue(id, "crm-10").await.token;
    let dis = web.post(&format!("/v1/invitations/{t2}:dismiss"), Some(&pk), &json!({})).await;
    assert_eq!((dis.status, dis.json["status"].as_str()), (200, Some("INVITATION_STATUS_DISMISSED")), "{dis:?}");
    let t3 = app.issue(id, "crm-11").await.token;
    let by_body =
        web.post("/v1/responses", None, &json!({"token": t3, "score": 5, "properties": {"page": "/billing"}})).await;
    assert_eq!((by_body.status, by_body.json["bucket"].as_str()), (200, Some("BUCKET_SATISFIED")), "{by_body:?}");
    assert_eq!(by_body.json["properties"]["page"], "/billing");
}

async fn in_app_json_routes_answer_bad_input_with_grpc_gateway_statuses_and_error_bodies(b: Backend) {
    let app = spawn_app(b).await;
    let web = Web::new(&app);
    let s = create_survey(&web, &app.key, json!({"kind": "SURVEY_KIND_NPS", "question": "Q", "inApp": true})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let not_in_app = create_survey(&web, &app.key, json!({"kind": "SURVEY_KIND_NPS", "question": "Q"})).await;
    let pk = app.publishable_key().await;
    let issue = |survey: String, body: Value| {
        let web = web.clone();
        let pk = pk.clone();
        async move { web.post(&format!("/v1/surveys/{survey}/invitations"), Some(&pk), &body).await }
    };

    // IssueSurvey.
    issue(id.clone(), json!({"customerId": "c1"})).await;
    let r = web.post(&format!("/v1/surveys/{id}/invitations"), None, &json!({"customerId": "c1"})).await;
    r.assert_error(401, 16);
    let r =
        web.post(&format!("/v1/surveys/{id}/invitations"), Some("rk_pub_unknown"), &json!({"customerId": "c1"})).await;
    r.assert_error(401, 16);
    issue(not_in_app["id"].as_str().unwrap().into(), json!({"customerId": "c1"})).await.assert_error(404, 5);
    let r = issue(id.clone(), json!({})).await;
    r.assert_error(400, 3);
    assert_eq!(r.violated_fields(), vec!["customer_id"]);
    let r = issue(id.clone(), json!({"customerId": "c1", "channel": "CHANNEL_SMS"})).await;
    r.assert_error(400, 3);
    assert_eq!(r.violated_fields(), vec!["channel"]);
    issue(id.clone(), json!({"customerId": "c1", "force": true})).await.assert_error(403, 7);
    let r = issue(id.clone(), json!({"customerId": "c1", "channel": "NOT_A_CHANNEL"})).await;
    r.assert_error(400, 3);
    let r = issue(id.clone(), json!({"customerId": "c1", "surprise": 1})).await;
    r.assert_error(400, 3);
    assert_eq!(r.violated_fields(), vec!["body"], "unknown fields are refused");
    let r = web.send("POST", &format!("/v1/surveys/{id}/invitations"), Some(&pk), None, &[]).await;
    r.assert_error(400, 3);
    let bad_json = reqwest::Client::new()
        .post(format!("{}/v1/surveys/{id}/invitations", app.http))
        .bearer_auth(&pk)
        .header("content-type", "application/json")
        .body("{\"customerId\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status().as_u16(), 400);
    let body: Value = bad_json.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert_eq!(body["details"][0]["fieldViolations"][0]["field"], "body");

    // GetInvitation.
    web.get("/v1/invitations/inv_doesnotexist", None).await.assert_error(404, 5);
    let issued = app.issue(&id, "c2").await;
    let t = issued.token.clone();

    // RecordResponse.
    let r = web.post(&format!("/v1/invitations/{t}/response"), None, &json!({"score": 11})).await;
    r.assert_error(400, 3);
    assert_eq!(r.violated_fields(), vec!["score"]);
    assert!(r.json["message"].as_str().unwrap().contains("0 to 10"), "{r:?}");
    let r = web.post(&format!("/v1/invitations/{t}/response"), None, &json!({})).await;
    assert_eq!(r.violated_fields(), vec!["score"]);
    let r = web.post(&format!("/v1/invitations/{t}/response"), None, &json!({"score": "ten"})).await;
    r.assert_error(400, 3);
    let r = web
        .post(&format!("/v1/invitations/{t}/response"), None, &json!({"score": 3, "comment": "x".repeat(5001)}))
        .await;
    assert_eq!(r.violated_fields(), vec!["comment"]);
    assert!(app.all_responses().await.is_empty(), "bad input wrote nothing");
    assert_eq!(web.post(&format!("/v1/invitations/{t}/response"), None, &json!({"score": 3})).await.status, 200);
    web.post(&format!("/v1/invitations/{t}/response"), None, &json!({"score": 4})).await.assert_error(409, 6);
    web.post("/v1/invitations/inv_nope/response", None, &json!({"score": 4})).await.assert_error(404, 5);

    // UpdateResponse.
    let r = web.patch(&format!("/v1/invitations/{t}/response"), None, &json!({"comment": "y".repeat(5001)})).await;
    r.assert_error(400, 3);
    let r = web.patch(&format!("/v1/invitations/{t}/response"), None, &json!({"score": -1})).await;
    assert_eq!(r.violated_fields(), vec!["score"]);
    let unanswered = app.issue(&id, "c3").await.token;
    web.patch(&format!("/v1/invitations/{unanswered}/response"), None, &json!({"comment": "x"}))
        .await
        .assert_error(400, 9);

    // DismissInvitation.
    web.post(&format!("/v1/invitations/{t}:dismiss"), None, &json!({})).await.assert_error(400, 9);
    web.post("/v1/invitations/inv_nope:dismiss", None, &json!({})).await.assert_error(404, 5);

    // An expired invitation is FAILED_PRECONDITION → 400.
    app.clock.advance(chrono::Duration::days(31));
    web.post(&format!("/v1/invitations/{unanswered}/response"), None, &json!({"score": 9})).await.assert_error(400, 9);

    // Routing and size.
    web.get("/v1/nowhere", None).await.assert_error(404, 5);
    let r = web.send("DELETE", &format!("/v1/invitations/{t}"), None, None, &[]).await;
    r.assert_error(405, 12);
    assert_eq!(r.header("allow"), Some("GET"));
    let (status, body) = raw_http(
        &app,
        &format!("POST /v1/invitations/{unanswered}/response HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000000\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 413, "a declared body over 4 MiB is refused before it is read");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 8);
    let r = web.get(&format!("/v1/invitations/{t}?token=other"), None).await;
    assert_eq!(r.status, 200, "the path wins over the query: {r:?}");
    web.get(&format!("/v1/invitations/{t}?nope=1"), None).await.assert_error(400, 3);
}

/// Sends raw HTTP/1.1 (to declare a body it never sends) and returns status and body.
async fn raw_http(app: &TestApp, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.http.strip_prefix("http://").unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// One request per route that is not in-app, with a body that is valid for it.
fn other_routes(
    survey: &str,
    response: &str,
    follow_up: &str,
    endpoint: &str,
) -> Vec<(&'static str, String, Option<Value>)> {
    let ep = format!("/v1/webhook-endpoints/{endpoint}");
    vec![
        ("POST /v1/surveys", "/v1/surveys".into(), Some(json!({"kind": "SURVEY_KIND_NPS", "question": "Q"}))),
        ("GET /v1/surveys/{id}", format!("/v1/surveys/{survey}"), None),
        ("GET /v1/surveys", "/v1/surveys?pageSize=10&kind=SURVEY_KIND_NPS&includeArchived=true".into(), None),
        (
            "PATCH /v1/surveys/{id}",
            format!("/v1/surveys/{survey}?updateMask=name,lowLabel"),
            Some(json!({"name": "Renamed", "lowLabel": "Meh"})),
        ),
        ("GET /v1/surveys/{survey_id}/eligibility", format!("/v1/surveys/{survey}/eligibility?customerId=c9"), None),
        (
            "PUT /v1/customers/{customer_id}/subscription",
            "/v1/customers/crm%2F9/subscription".into(),
            Some(json!({"unsubscribed": true})),
        ),
        (
            "POST /v1/responses",
            "/v1/responses".into(),
            Some(json!({"direct": {"surveyId": survey, "customerId": "c8"}, "score": 9})),
        ),
        (
            "PATCH /v1/responses/{response_id}",
            format!("/v1/responses/{response}"),
            Some(json!({"comment": "noted", "properties": {"a": "b"}})),
        ),
        ("GET /v1/responses/{response_id}", format!("/v1/responses/{response}"), None),
        (
            "GET /v1/responses",
            format!("/v1/responses?surveyId={survey}&bucket=BUCKET_DETRACTOR&startTime=2020-01-01T00:00:00Z"),
            None,
        ),
        (
            "GET /v1/surveys/{survey_id}/metrics",
            format!("/v1/surveys/{survey}/metrics?interval=INTERVAL_DAY&filter[plan]=pro"),
            None,
        ),
        ("GET /v1/metrics", "/v1/metrics?kind=SURVEY_KIND_NPS".into(), None),
        ("GET /v1/customers", "/v1/customers?pageSize=10".into(), None),
        ("GET /v1/customers/{customer_id}", "/v1/customers/c1".into(), None),
        ("GET /v1/customers/{customer_id}/profile", "/v1/customers/c1/profile".into(), None),
        ("GET /v1/follow-ups/{id}", format!("/v1/follow-ups/{follow_up}"), None),
        ("GET /v1/follow-ups", "/v1/follow-ups?status=FOLLOW_UP_STATUS_OPEN&overdue=false".into(), None),
        (
            "POST /v1/follow-ups/{id}:update",
            format!("/v1/follow-ups/{follow_up}:update"),
            Some(json!({"author": "ana", "acknowledge": {}})),
        ),
        ("POST /v1/surveys/{id}:archive", format!("/v1/surveys/{survey}:archive"), Some(json!({}))),
        ("POST /v1/webhook-endpoints", "/v1/webhook-endpoints".into(), Some(json!({"url": "http://127.0.0.1:9/hook"}))),
        ("GET /v1/webhook-endpoints", "/v1/webhook-endpoints?pageSize=10".into(), None),
        (
            "PATCH /v1/webhook-endpoints/{endpoint_id}",
            format!("{ep}?updateMask=description"),
            Some(json!({"description": "CRM"})),
        ),
        ("POST /v1/webhook-endpoints/{id}:rotateSecret", format!("{ep}:rotateSecret"), Some(json!({}))),
        ("GET /v1/webhook-deliveries", format!("/v1/webhook-deliveries?endpointId={endpoint}"), None),
        (
            "POST /v1/webhook-endpoints/{endpoint_id}:replay",
            format!("{ep}:replay"),
            Some(json!({"timeRange": {"startTime": "2020-01-01T00:00:00Z", "endTime": "2099-01-01T00:00:00Z"}})),
        ),
        ("POST /v1/webhook-endpoints/{endpoint_id}:sendTest", format!("{ep}:sendTest"), Some(json!({}))),
        ("DELETE /v1/webhook-endpoints/{endpoint_id}", ep.clone(), None),
        (
            "POST /v1/imports/responses",
            "/v1/imports/responses".into(),
            Some(json!({"responses": [{"externalId": "old-1", "surveyId": survey, "customerId": "imp-1",
                                       "score": 7, "recordedTime": "2026-01-02T03:04:05Z"}]})),
        ),
        (
            "POST /v1/imports/events",
            "/v1/imports/events".into(),
            Some(json!({"events": [{"messageId": "old-e1", "customerId": "imp-1", "time": "2026-01-02T03:04:05Z",
                                    "action": {"name": "export"}}]})),
        ),
        ("GET /v1/audit-events", "/v1/audit-events?pageSize=10".into(), None),
        ("POST /v1/customers/{customer_id}:erase", "/v1/customers/crm%2Ferased:erase".into(), Some(json!({}))),
        ("GET /v1/retention-policy", "/v1/retention-policy".into(), None),
        (
            "PATCH /v1/retention-policy",
            "/v1/retention-policy?updateMask=commentDays".into(),
            Some(json!({"commentDays": 365})),
        ),
        ("GET /v1/accounts", "/v1/accounts?rankBy=ACCOUNT_RANKING_RISK&bands=HEALTH_BAND_RED".into(), None),
        ("GET /v1/accounts/{account_id}/profile", "/v1/accounts/acct-1/profile?windowDays=30".into(), None),
        (
            "POST /v1/surveys/{survey_id}/metrics:compare",
            format!("/v1/surveys/{survey}/metrics:compare"),
            Some(json!({"second": {"filter": {"plan": "pro"}}})),
        ),
        ("POST /v1/metrics:compare", "/v1/metrics:compare".into(), Some(json!({"kind": "SURVEY_KIND_NPS"}))),
        ("GET /v1/surveys/{survey_id}/themes", format!("/v1/surveys/{survey}/themes?limit=5"), None),
        ("GET /v1/themes", "/v1/themes?kind=SURVEY_KIND_NPS&language=fr".into(), None),
        ("GET /v1/surveys/{survey_id}/drivers", format!("/v1/surveys/{survey}/drivers?windowDays=7"), None),
        ("GET /v1/drivers", "/v1/drivers?kind=SURVEY_KIND_NPS".into(), None),
    ]
}

async fn every_other_route_refuses_a_publishable_key_and_serves_a_secret_key(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let web = Web::new(&app);
    let s = create_survey(&web, &app.key, json!({"kind": "SURVEY_KIND_NPS", "question": "Q", "inApp": true})).await;
    let survey = s["id"].as_str().unwrap();
    let r = app.answer(survey, "c1", 2).await.unwrap();
    // c1 joins an account, for the account routes.
    crate::engagement::engagement(&app, None)
        .upsert_customer(pb::UpsertCustomerRequest {
            customer_id: "c1".into(),
            account_id: Some("acct-1".into()),
            ..Default::default()
        })
        .await
        .expect("upsert");
    let endpoint = web.post("/v1/webhook-endpoints", Some(&app.key), &json!({"url": "http://127.0.0.1:9/crm"})).await;
    assert_eq!(endpoint.status, 200, "{endpoint:?}");
    assert!(endpoint.json["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{endpoint:?}");
    let endpoint = endpoint.json["endpoint"]["id"].as_str().unwrap().to_owned();
    let cases = other_routes(survey, &r.id, &r.follow_up_id, &endpoint);
    // The table covers every route that is not in-app.
    let covered: BTreeSet<&str> = cases.iter().map(|c| c.0).chain(IN_APP_ROUTES.iter().copied()).collect();
    assert_eq!(covered, ROUTES.iter().copied().collect::<BTreeSet<_>>());

    let pk = app.publishable_key().await;
    for (route, path, body) in &cases {
        let method = route.split(' ').next().unwrap();
        let reply = web.send(method, path, Some(&pk), body.as_ref(), &[]).await;
        assert_eq!((reply.status, reply.code()), (403, 7), "{route} with a publishable key: {reply:?}");
    }
    assert_eq!(app.all_responses().await.len(), 1, "nothing was written");
    for (route, path, body) in &cases {
        let method = route.split(' ').next().unwrap();
        let reply = web.send(method, path, Some(&app.key), body.as_ref(), &[]).await;
        assert_eq!(reply.status, 200, "{route} with the secret key: {reply:?}");
    }
    let renamed = web.get(&format!("/v1/surveys/{survey}"), Some(&app.key)).await;
    assert_eq!((renamed.json["name"].as_str(), renamed.json["archived"].as_bool()), (Some("Renamed"), Some(true)));
    let sub = app
        .surveys
        .clone()
        .check_eligibility(pb::CheckEligibilityRequest { survey_id: survey.into(), customer_id: "crm/9".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sub.rule, pb::EligibilityRule::Unsubscribed as i32, "the %2F-encoded customer id was unsubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_loads_and_matches_the_routes() {
    let app = spawn_app(Backend::Sqlite).await;
    let web = Web::new(&app);
    let doc = web.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    let doc = doc.json;
    assert_eq!(doc["openapi"], "3.0.3");
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            // The document's path params are the template's variables, all required.
            let names: BTreeSet<String> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true);
                    p["name"].as_str().unwrap().to_owned()
                })
                .collect();
            let in_path: BTreeSet<String> =
                path.split('{').skip(1).map(|s| s.split('}').next().unwrap().to_owned()).collect();
            assert_eq!(names, in_path, "{method} {path}");
            assert!(op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].is_string());
            ops.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert_eq!(ops, ROUTES.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    // OpenAPI: no two paths may differ only in their parameter names.
    let shapes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| {
            p.split('/')
                .map(|s| {
                    if s.starts_with('{') { s.split('}').nth(1).unwrap_or("").to_owned() + "{}" } else { s.to_owned() }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    assert_eq!(shapes.len(), shapes.iter().collect::<BTreeSet<_>>().len(), "{shapes:?}");

    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").expect("a component ref");
        assert!(doc["components"]["schemas"][name].is_object(), "{r} resolves");
    }
    // The wire names are proto3 JSON names.
    let survey = &doc["components"]["schemas"]["rapport.v1.Survey"]["properties"];
    assert!(survey["scaleMax"].is_object() && survey["inApp"].is_object() && survey["scale_max"].is_null());
    assert_eq!(doc["components"]["schemas"]["rapport.v1.BucketCount"]["properties"]["count"]["type"], "string");

    // And every documented operation is served: no "no route", no 405.
    for op in &ops {
        let (method, path) = op.split_once(' ').unwrap();
        let concrete: String = path
            .split('/')
            .map(|seg| match seg.find('{') {
                Some(i) => format!("{}x{}", &seg[..i], seg.split('}').nth(1).unwrap_or("")),
                None => seg.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let body = (method != "GET").then(|| json!({}));
        let r = web.send(method, &concrete, Some(&app.key), body.as_ref(), &[]).await;
        assert_ne!(r.status, 405, "{op}: {r:?}");
        assert!(!r.json["message"].as_str().unwrap_or("").starts_with("no route"), "{op}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_configured_origins_only() {
    let app =
        spawn_app_with(Backend::Sqlite, |a| a.cors_allowed_origins = vec!["https://app.example.com".into()]).await;
    let web = Web::new(&app);
    let preflight = |origin: &'static str, headers: &'static str| {
        let web = web.clone();
        async move {
            web.send(
                "OPTIONS",
                "/v1/invitations/inv_x/response",
                None,
                None,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", headers),
                ],
            )
            .await
        }
    };
    let ok = preflight("https://app.example.com", "authorization,content-type").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.example.com"));
    let allowed_headers = ok.header("access-control-allow-headers").unwrap_or("");
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert!(ok.header("access-control-allow-methods").unwrap_or("").contains("PATCH"));
    let grpc_web = preflight("https://app.example.com", "content-type,x-grpc-web,x-user-agent").await;
    assert!(grpc_web.header("access-control-allow-headers").unwrap_or("").contains("x-grpc-web"));

    let refused = preflight("https://evil.example.com", "authorization,content-type").await;
    assert_eq!(refused.header("access-control-allow-origin"), None, "no CORS grant for another origin: {refused:?}");
    // A request that skips the preflight is refused by the server too.
    let r = web.send("GET", "/v1/invitations/inv_x", None, None, &[("origin", "https://evil.example.com")]).await;
    r.assert_error(403, 7);
    // The configured origin gets the grant and the exposed gRPC headers on the real call.
    let r = web.send("GET", "/v1/invitations/inv_x", None, None, &[("origin", "https://app.example.com")]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert!(r.header("access-control-expose-headers").unwrap_or("").contains("grpc-status"));
    // The gateway's own origin (the hosted page) and callers without an Origin are fine.
    assert_eq!(
        web.send("GET", "/v1/invitations/inv_x", None, None, &[("origin", app.http.as_str())]).await.status,
        404
    );
    assert_eq!(web.get("/v1/invitations/inv_x", None).await.status, 404);
}

/// A gRPC-Web call: one length-prefixed message; the reply's data and trailer frames.
async fn grpc_web(app: &TestApp, path: &str, message: Vec<u8>) -> (reqwest::header::HeaderMap, Vec<u8>, String) {
    let mut body = vec![0u8];
    body.extend((message.len() as u32).to_be_bytes());
    body.extend(message);
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", app.http))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap().to_vec();
    let (mut data, mut trailers, mut i) = (Vec::new(), String::new(), 0);
    while i + 5 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
        let frame = &bytes[i + 5..i + 5 + len];
        if bytes[i] & 0x80 != 0 {
            trailers = String::from_utf8_lossy(frame).into_owned();
        } else {
            data = frame.to_vec();
        }
        i += 5 + len;
    }
    (headers, data, trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_reaches_the_same_services_and_plain_http1_reaches_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, in_app: true, ..Default::default() }).await;
    let token = app.issue(&s.id, "c1").await.token;
    let (_, data, trailers) = grpc_web(
        &app,
        "/rapport.v1.SurveyService/GetInvitation",
        pb::GetInvitationRequest { token: token.clone() }.encode_to_vec(),
    )
    .await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let got = pb::GetInvitationResponse::decode(data.as_slice()).unwrap();
    assert_eq!(got.form.unwrap().survey_id, s.id);

    let (headers, _, trailers) = grpc_web(
        &app,
        "/rapport.v1.SurveyService/RecordResponse",
        pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(token.clone())),
            score: Some(42),
            ..Default::default()
        }
        .encode_to_vec(),
    )
    .await;
    let status = headers.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_else(|| trailers.clone());
    assert!(status.contains('3'), "INVALID_ARGUMENT: {status}");

    // A plain HTTP/1.1 request that is not gRPC-Web reaches the JSON routes, not a 400.
    let web = Web::new(&app);
    let r = web.get(&format!("/v1/invitations/{token}"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["invitation"]["surveyId"], s.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_per_publishable_key_is_reached_and_recovers_and_other_tenants_are_not_slowed() {
    let app = spawn_app_with(Backend::Sqlite, |a| {
        // 60 a minute: a token a second, 3 at once (slow enough that a loaded machine
        // does not refill the bucket between the calls below).
        a.publishable_key_rate_per_minute = 60;
        a.publishable_key_burst = 3;
    })
    .await;
    let web = Web::new(&app);
    let s = app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, in_app: true, ..Default::default() }).await;
    let path = format!("/v1/surveys/{}/invitations", s.id);
    let pk = app.publishable_key().await;
    let body = json!({"customerId": "c1"});
    for _ in 0..3 {
        assert_eq!(web.post(&path, Some(&pk), &body).await.status, 200);
    }
    let limited = web.post(&path, Some(&pk), &body).await;
    limited.assert_error(429, 8);
    let retry_after: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert_eq!(retry_after, 1, "a wait of at most 1 s rounds up to 1 s");
    let retry = &limited.json["details"][0];
    assert_eq!(retry["@type"], "type.googleapis.com/google.rpc.RetryInfo");
    assert!(retry["retryDelay"].as_str().unwrap().ends_with('s'));
    // Over gRPC: RESOURCE_EXHAUSTED with RetryInfo.
    let err = app
        .surveys_as(Some(&pk))
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: s.id.clone(),
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let delay = err.get_details_retry_info().and_then(|r| r.retry_delay).expect("retry info");
    assert!(delay <= Duration::from_secs(1), "{delay:?}");

    // Another tenant's key (and the secret key) are served at once while this one is flooded.
    let other_secret = app.other_tenant_key().await;
    let theirs =
        create_survey(&web, &other_secret, json!({"kind": "SURVEY_KIND_NPS", "question": "Q", "inApp": true})).await;
    let their_pk =
        app.services.create_key("globex", rapport::domain::model::KeyKind::Publishable).await.unwrap().secret;
    let flood: Vec<_> = (0..100)
        .map(|_| {
            let (web, path, pk, body) = (web.clone(), path.clone(), pk.clone(), body.clone());
            tokio::spawn(async move { web.post(&path, Some(&pk), &body).await.status })
        })
        .collect();
    let started = Instant::now();
    let their_path = format!("/v1/surveys/{}/invitations", theirs["id"].as_str().unwrap());
    for i in 0..3 {
        let r = web.post(&their_path, Some(&their_pk), &json!({"customerId": format!("g{i}")})).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(web.get("/v1/surveys", Some(&app.key)).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let statuses: Vec<u16> = futures_join(flood).await;
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 90, "the flood was turned away: {statuses:?}");

    // And it recovers once the bucket refills.
    assert!(
        eventually(Duration::from_secs(5), || async { web.post(&path, Some(&pk), &body).await.status == 200 }).await
    );
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_per_client_address_covers_token_calls_and_spares_secret_keys() {
    let app = spawn_app_with(Backend::Sqlite, |a| {
        a.client_address_rate_per_minute = 60;
        a.client_address_burst = 2;
        a.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let web = Web::new(&app);
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let token = app.issue(&s.id, "c1").await.token;
    let path = format!("/v1/invitations/{token}");
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(web.send("GET", &path, None, None, &from("10.1.1.1, 192.0.2.7")).await.status, 200);
    assert_eq!(web.send("GET", &path, None, None, &from("192.0.2.7")).await.status, 200);
    let r = web.send("GET", &path, None, None, &from("192.0.2.7")).await;
    r.assert_error(429, 8);
    assert!(r.header("retry-after").is_some());
    // Another address has its own bucket; secret keys are not limited.
    assert_eq!(web.send("GET", &path, None, None, &from("192.0.2.8")).await.status, 200);
    for _ in 0..5 {
        assert_eq!(web.send("GET", "/v1/surveys", Some(&app.key), None, &from("192.0.2.7")).await.status, 200);
    }
    // The hosted page is limited by the same bucket.
    let page = web.send("GET", &format!("/s/{token}"), None, None, &from("192.0.2.7")).await;
    assert_eq!(page.status, 429);
    assert!(page.text.contains("Please wait"));
}

async fn the_hosted_page_shows_the_question_and_explains_expired_used_and_unknown_links(b: Backend) {
    let app = spawn_app(b).await;
    let web = Web::new(&app);
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Ces as i32,
            scale_max: Some(5),
            question: "<b>Was it easy</b> to \"export\"?".into(),
            low_label: "Strongly disagree".into(),
            high_label: "Strongly agree".into(),
            ..Default::default()
        })
        .await;
    let token = app.issue(&s.id, "c1").await.token;
    let page = web.get(&format!("/s/{token}"), None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.header("content-security-policy").unwrap().contains("script-src 'self'"));
    assert!(page.text.contains("&lt;b&gt;Was it easy&lt;/b&gt; to &quot;export&quot;?"), "escaped: {}", page.text);
    assert!(!page.text.contains("<b>Was"));
    assert!(page.text.contains("data-min=\"1\"") && page.text.contains("data-max=\"5\""));
    assert!(page.text.contains("data-low=\"Strongly disagree\""));
    assert!(page.text.contains("<script src=\"/widget.js\""));
    assert!(!page.text.contains("http://") && !page.text.contains("https://"), "no external assets");

    let unknown = web.get("/s/inv_unknown", None).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text.contains("This survey link doesn't work"));

    web.post(&format!("/v1/invitations/{token}/response"), None, &json!({"score": 5})).await;
    let used = web.get(&format!("/s/{token}"), None).await;
    assert_eq!(used.status, 200);
    assert!(used.text.contains("already answered"));

    let old = app.issue(&s.id, "c2").await;
    app.clock.advance(chrono::Duration::days(31));
    let expired = web.get(&format!("/s/{}", old.token), None).await;
    assert_eq!(expired.status, 410);
    assert!(expired.text.contains("This survey link has expired"));
    let date = chrono::DateTime::from_timestamp(old.invitation.unwrap().expire_time.unwrap().seconds, 0).unwrap();
    assert!(expired.text.contains(&date.format("%-d %B %Y").to_string()), "{}", expired.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_is_small_javascript_and_healthz_answers() {
    let app = spawn_app(Backend::Sqlite).await;
    let web = Web::new(&app);
    let js = web.get("/widget.js", None).await;
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    // The script and the texts of the five built-in languages (about 1 KiB each).
    assert!(js.text.len() < 24 * 1024, "the widget stays small: {} bytes", js.text.len());
    assert!(js.text.contains("rapport.show") || js.text.contains("api.show"));
    assert!(!js.text.contains("import "), "no dependencies");
    let h = web.get("/healthz", None).await;
    assert_eq!((h.status, h.text.as_str()), (200, "ok\n"));
    let r: Reply = web.send("POST", "/s/inv_x", None, None, &[]).await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survey_body_wrapped_in_its_field_name_is_refused_naming_the_survey_type() {
    let app = spawn_app(Backend::Sqlite).await;
    let web = Web::new(&app);
    let survey = json!({"kind": "SURVEY_KIND_NPS", "question": "Q"});
    // CreateSurvey's body is the bare Survey; wrapped in "survey" it is refused, and the
    // message names Survey (not CreateSurveyRequest) and says how to send it.
    let r = web.post("/v1/surveys", Some(&app.key), &json!({"survey": survey})).await;
    r.assert_error(400, 3);
    let message = r.json["message"].as_str().unwrap_or_default();
    assert!(message.contains("is not a valid Survey in proto3 JSON"), "{message}");
    assert!(
        message.contains(r#"the body is the bare Survey (its fields at the top level), not wrapped in {"survey": …}"#),
        "{message}"
    );
    assert!(!message.contains("CreateSurveyRequest"), "{message}");
    assert!(r.json["details"].to_string().contains("\"body\""), "{:?}", r.json);
    // Nothing was created; the bare Survey is accepted.
    assert_eq!(web.get("/v1/surveys", Some(&app.key)).await.json["surveys"].as_array().map_or(0, Vec::len), 0);
    create_survey(&web, &app.key, survey).await;
}
