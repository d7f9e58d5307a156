//! Hardening of what the gateway and the RPC layer show and answer: gateway calls
//! (JSON, gRPC-Web, the hosted page, the widget) in the RPC and HTTP metrics, labelled
//! by route template and never by a path that carries a token; and a request over
//! 4 MiB answered RESOURCE_EXHAUSTED (HTTP 413 over JSON) on every protocol.
//!
//! That a panic becomes INTERNAL for its call only is tested where a panic can be
//! made, on the layer itself (`telemetry::rpc` and `http` unit tests): the service has
//! no way to panic on purpose.

use std::time::Duration;

use prost::Message as _;
use serde_json::json;
use tonic::Code;

use crate::helpers::*;
use crate::observability::{scrape, value};
use crate::web::Web;

crate::on_both!(gateway_calls_are_in_the_rpc_and_http_metrics_by_route_template);

/// Over the 4 MiB limit by a little.
const TOO_LARGE: usize = 4 * 1024 * 1024 + 1024;

/// A gRPC-Web call: one length-prefixed message. Returns the HTTP status, the
/// `grpc-status` (from the headers of a trailers-only answer, else the trailer frame)
/// and the reply's message bytes.
async fn grpc_web(app: &TestApp, path: &str, message: &[u8]) -> (u16, String, Vec<u8>) {
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
        .expect("the gateway answers");
    let status = resp.status().as_u16();
    let in_headers = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = resp.bytes().await.expect("a body").to_vec();
    let (mut data, mut trailers, mut i) = (Vec::new(), String::new(), 0);
    while i + 5 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().expect("4 bytes")) as usize;
        let frame = &bytes[i + 5..i + 5 + len];
        if bytes[i] & 0x80 != 0 {
            trailers = String::from_utf8_lossy(frame).into_owned();
        } else {
            data = frame.to_vec();
        }
        i += 5 + len;
    }
    let grpc_status = in_headers.unwrap_or_else(|| {
        trailers.lines().find_map(|l| l.strip_prefix("grpc-status:")).map(|s| s.trim().to_owned()).unwrap_or_default()
    });
    (status, grpc_status, data)
}

fn rpc<'a>(method: &'a str, code: &'a str) -> [(&'a str, &'a str); 3] {
    [("grpc_service", "rapport.v1.SurveyService"), ("grpc_method", method), ("grpc_code", code)]
}

fn http<'a>(method: &'a str, route: &'a str, status: &'a str) -> [(&'a str, &'a str); 3] {
    [("http_request_method", method), ("http_route", route), ("http_response_status_code", status)]
}

async fn gateway_calls_are_in_the_rpc_and_http_metrics_by_route_template(b: Backend) {
    let app = spawn_app(b).await;
    let web = Web::new(&app);
    let s = app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, in_app: true, ..Default::default() }).await;
    let token = app.issue(&s.id, "c1").await.token;
    let before = scrape(&app).await;
    let before_text = metrics_text(&app).await;

    // JSON: a token call, a secret-key call, a path with no route.
    let r = web.get(&format!("/v1/invitations/{token}"), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = web.post("/v1/surveys", Some(&app.key), &json!({"kind": "SURVEY_KIND_CSAT", "question": "Q"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(web.get(&format!("/v1/nowhere/{token}"), None).await.status, 404);
    // gRPC-Web: a success and a refusal.
    let get = pb::GetInvitationRequest { token: token.clone() }.encode_to_vec();
    let (status, grpc_status, data) = grpc_web(&app, "/rapport.v1.SurveyService/GetInvitation", &get).await;
    assert_eq!((status, grpc_status.as_str()), (200, "0"));
    assert!(pb::GetInvitationResponse::decode(data.as_slice()).expect("a reply").form.is_some());
    let bad = pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Token(token.clone())),
        score: Some(42),
        ..Default::default()
    };
    let (_, grpc_status, _) = grpc_web(&app, "/rapport.v1.SurveyService/RecordResponse", &bad.encode_to_vec()).await;
    assert_eq!(grpc_status, "3", "INVALID_ARGUMENT");
    // The hosted page (which calls GetInvitation in process) and the widget.
    let page = web.get(&format!("/s/{token}"), None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(web.get("/widget.js", None).await.status, 200);

    let after = scrape(&app).await;
    let moved = |metric: &str, labels: &[(&str, &str)]| value(&after, metric, labels) - value(&before, metric, labels);
    // In the RPC metrics, as calls of their method: JSON, gRPC-Web and the page.
    assert_eq!(moved("grpc_server_handled_total", &rpc("GetInvitation", "OK")), 3.0);
    assert_eq!(moved("grpc_server_handled_total", &rpc("RecordResponse", "InvalidArgument")), 1.0);
    assert_eq!(moved("grpc_server_handled_total", &rpc("CreateSurvey", "OK")), 1.0);
    assert_eq!(
        moved("grpc_server_started_total", &[("grpc_method", "GetInvitation")]),
        3.0,
        "started as often as handled"
    );
    let latency = [("grpc_method", "GetInvitation"), ("grpc_type", "unary")];
    assert_eq!(moved("grpc_server_handling_seconds_count", &latency), 3.0);

    // In the HTTP metrics, by route template.
    let text = metrics_text(&app).await;
    let moved = |labels: &[(&str, &str)]| count(&text, labels) - count(&before_text, labels);
    assert_eq!(moved(&http("GET", "/v1/invitations/{token}", "200")), 1.0, "{text}");
    assert_eq!(moved(&http("POST", "/v1/surveys", "200")), 1.0, "{text}");
    assert_eq!(moved(&http("GET", "unmatched", "404")), 1.0, "{text}");
    assert_eq!(moved(&http("POST", "/rapport.v1.SurveyService/GetInvitation", "200")), 1.0, "{text}");
    assert_eq!(moved(&http("POST", "/rapport.v1.SurveyService/RecordResponse", "200")), 1.0, "{text}");
    assert_eq!(moved(&http("GET", "/s/{token}", "200")), 1.0, "{text}");
    assert_eq!(moved(&http("GET", "/widget.js", "200")), 1.0, "{text}");
    assert_eq!(moved(&[]), 7.0, "one sample per request: {text}");
    // No label anywhere carries the token.
    assert!(!text.contains(&token), "a token in the metrics: {text}");
}

async fn metrics_text(app: &TestApp) -> String {
    let resp = reqwest::get(format!("http://{}/metrics", app.admin_addr)).await.expect("a scrape");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("text")
}

/// The sum of `http_server_request_duration_seconds_count` over the series whose
/// labels include `labels`, read from the text itself: a route template's braces
/// (`/s/{token}`) are beyond the Prometheus parser the other tests use.
fn count(text: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("http_server_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit_once("} "))
        .filter(|(series, _)| {
            labels.iter().all(|(k, v)| series.split("\",").any(|p| p.trim_end_matches('"') == format!("{k}=\"{v}")))
        })
        .map(|(_, v)| v.trim().parse::<f64>().expect("a count"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_four_mib_is_resource_exhausted_over_grpc_and_grpc_web_and_413_over_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let before = scrape(&app).await;
    let huge = "x".repeat(TOO_LARGE);
    let create = pb::CreateSurveyRequest {
        survey: Some(pb::Survey { kind: pb::SurveyKind::Nps as i32, question: huge.clone(), ..Default::default() }),
    };

    // Native gRPC: RESOURCE_EXHAUSTED, and the channel goes on.
    let mut c = app.surveys.clone();
    let err = c.create_survey(create.clone()).await.expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large") && err.message().len() < 200, "{err:?}");
    c.list_surveys(pb::ListSurveysRequest::default()).await.expect("the same channel still serves");
    let after = scrape(&app).await;
    let moved = |labels: &[(&str, &str)]| {
        value(&after, "grpc_server_handled_total", labels) - value(&before, "grpc_server_handled_total", labels)
    };
    assert_eq!(moved(&rpc("CreateSurvey", "ResourceExhausted")), 1.0);
    assert_eq!(moved(&rpc("CreateSurvey", "OutOfRange")), 0.0);

    // gRPC-Web: the same code. (Sent raw: the answer may come, and the connection
    // close, before the whole body was written.)
    let message = create.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    let head = "content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n";
    let (status, text) = raw_post(&app, "/rapport.v1.SurveyService/CreateSurvey", head, &frame, false).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\ngrpc-status: 8\r\n"), "RESOURCE_EXHAUSTED: {text}");

    // JSON: 413 with code 8 (a declared length over the limit is refused before the
    // body is read: gateway.rs), here for a body sent in chunks without a length.
    let body = serde_json::to_vec(&json!({"kind": "SURVEY_KIND_NPS", "question": huge})).expect("JSON");
    let head = format!("authorization: Bearer {}\r\ncontent-type: application/json\r\n", app.key);
    let (status, text) = raw_post(&app, "/v1/surveys", &head, &body, true).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"code\":8"), "{text}");
    let listed = c
        .list_surveys(pb::ListSurveysRequest { include_archived: true, ..Default::default() })
        .await
        .expect("listed")
        .into_inner();
    assert!(listed.surveys.is_empty(), "nothing was created");
}

/// A POST over raw HTTP/1.1 with the header lines `head`, its body sent with a
/// `content-length` or in chunks; the server may answer and close before the whole
/// body is written. Returns the status and the whole answer.
async fn raw_post(app: &TestApp, path: &str, head: &str, body: &[u8], chunked: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.http.strip_prefix("http://").expect("an http URL");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connected");
    let length =
        if chunked { "transfer-encoding: chunked".to_owned() } else { format!("content-length: {}", body.len()) };
    let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\n{head}{length}\r\nconnection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).await.expect("sent");
    for chunk in body.chunks(64 * 1024) {
        let sent = if chunked {
            conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_ok()
                && conn.write_all(chunk).await.is_ok()
                && conn.write_all(b"\r\n").await.is_ok()
        } else {
            conn.write_all(chunk).await.is_ok()
        };
        if !sent {
            break;
        }
    }
    if chunked {
        let _ = conn.write_all(b"0\r\n\r\n").await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}
