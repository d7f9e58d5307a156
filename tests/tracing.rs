//! OpenTelemetry end to end: the real server exports its spans over OTLP/gRPC to a tiny
//! trace receiver inside this test (the collector's `TraceService`, from the
//! `opentelemetry-proto` crate's tonic server code).
//!
//! Its own test binary, because it installs the process-wide `tracing` subscriber (the
//! server's tasks run on any runtime thread, so a thread-scoped one would miss spans),
//! and only one test may do that per process.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpers::{Backend, assert_invalid, eventually, pb, spawn_app};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What the receiver got: every span, with its resource's `service.name`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut all = self.0.lock().expect("not poisoned");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                all.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// Starts the receiver on a random loopback port.
async fn start_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("an address");
    let received = Received::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(received.clone()))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (addr, received)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
}

fn string(s: &str) -> Option<Value> {
    Some(Value::StringValue(s.into()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans below `root` (children, their children, …).
fn descendants<'a>(all: &'a [Span], root: &Span) -> Vec<&'a Span> {
    let mut out: Vec<&Span> = Vec::new();
    let mut frontier = vec![root.span_id.clone()];
    while let Some(parent) = frontier.pop() {
        for s in all.iter().filter(|s| s.parent_span_id == parent && s.trace_id == root.trace_id) {
            frontier.push(s.span_id.clone());
            out.push(s);
        }
    }
    out
}

const RECORD: &str = "rapport.v1.SurveyService/RecordResponse";
/// The caller's trace and span, as the W3C Trace Context example has them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_response_span_follows_the_rpc_conventions_and_continues_the_callers_trace() {
    let (collector, received) = start_receiver().await;
    // The same provider and layer `telemetry::init` builds when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let provider =
        rapport::telemetry::tracer_provider(&format!("http://{collector}"), "rapport-under-test").expect("a provider");
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(rapport::telemetry::otel_layer(&provider))
        .init();

    let app = spawn_app(Backend::Sqlite).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await;
    let record = |score| pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
            survey_id: survey.id.clone(),
            customer_id: "crm-42".into(),
        })),
        score: Some(score),
        ..Default::default()
    };
    // A caller in the middle of its own trace sends W3C `traceparent` metadata.
    let mut traced = Request::new(record(3));
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    traced.metadata_mut().insert("traceparent", traceparent.parse().expect("ASCII"));
    app.surveys.clone().record_response(traced).await.expect("recorded");
    // A refused call with no trace of its own.
    assert_invalid(&app.surveys.clone().record_response(record(11)).await.unwrap_err(), "score");

    let flusher = provider.clone();
    tokio::task::spawn_blocking(move || flusher.force_flush()).await.expect("joined").expect("flushed");
    let arrived = eventually(Duration::from_secs(10), || {
        let received = received.clone();
        async move { received.spans().iter().filter(|(_, s)| s.name == RECORD).count() >= 2 }
    })
    .await;
    let got = received.spans();
    assert!(arrived, "two {RECORD} spans expected; got {:?}", got.iter().map(|(_, s)| &s.name).collect::<Vec<_>>());
    assert!(got.iter().all(|(service, _)| service == "rapport-under-test"), "service.name");
    let spans: Vec<Span> = got.into_iter().map(|(_, s)| s).collect();

    // The traced call: a server span of the caller's trace, child of the caller's span.
    let rpc = spans
        .iter()
        .find(|s| s.name == RECORD && hex(&s.trace_id) == TRACE_ID)
        .expect("the RecordResponse span continues the caller's trace");
    assert_eq!(hex(&rpc.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(rpc.kind, SpanKind::Server as i32);
    assert_eq!(attr(rpc, "rpc.system").cloned(), string("grpc"));
    assert_eq!(attr(rpc, "rpc.service").cloned(), string("rapport.v1.SurveyService"));
    assert_eq!(attr(rpc, "rpc.method").cloned(), string("RecordResponse"));
    assert_eq!(attr(rpc, "rpc.grpc.status_code").cloned(), Some(Value::IntValue(0)));
    // OK leaves the status unset, as the conventions say for servers.
    assert_eq!(rpc.status.as_ref().map_or(0, |s| s.code), StatusCode::Unset as i32);
    assert!(rpc.end_time_unix_nano >= rpc.start_time_unix_nano);

    // Below it: the use-case, and the database work it did (sea-orm's spans).
    let below = descendants(&spans, rpc);
    let names: Vec<&str> = below.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"record_response"), "the use-case span under the RPC span: {names:?}");
    let db: Vec<&&Span> = below.iter().filter(|s| attr(s, "db.system").is_some()).collect();
    assert!(!db.is_empty(), "database spans under the RPC span: {names:?}");
    assert!(db.iter().all(|s| attr(s, "db.system").cloned() == string("sqlite")));
    assert!(db.iter().all(|s| s.kind == SpanKind::Client as i32), "database calls are client spans");
    assert!(
        db.iter().any(|s| attr(s, "db.operation").cloned() == string("INSERT")),
        "the response's INSERT: {:?}",
        db.iter().map(|s| attr(s, "db.operation")).collect::<Vec<_>>()
    );
    // The handler and use-case spans lie within the RPC's. (Not the database spans: on
    // SQLite, sqlx's worker thread enters the caller's span to run a statement and may
    // leave it just after the caller has moved on.)
    for s in below.iter().filter(|s| attr(s, "db.system").is_none()) {
        assert!(
            s.start_time_unix_nano >= rpc.start_time_unix_nano && s.end_time_unix_nano <= rpc.end_time_unix_nano,
            "{} [{}, {}] outside the RPC's [{}, {}]; parent {}",
            s.name,
            s.start_time_unix_nano as i128 - rpc.start_time_unix_nano as i128,
            s.end_time_unix_nano as i128 - rpc.end_time_unix_nano as i128,
            rpc.start_time_unix_nano,
            rpc.end_time_unix_nano,
            hex(&s.parent_span_id)
        );
    }

    // Database work outside any span (the health check's ping every 200 ms here) is
    // not exported as traces of its own.
    let mut roots = spans.iter().filter(|s| s.parent_span_id.is_empty());
    assert!(roots.all(|s| attr(s, "db.system").is_none()), "no one-span database traces");

    // The refused call: its own new trace, INVALID_ARGUMENT (3), a caller's error, so
    // the span status stays unset.
    let refused = spans.iter().find(|s| s.name == RECORD && hex(&s.trace_id) != TRACE_ID).expect("a second trace");
    assert!(refused.parent_span_id.is_empty(), "a root span");
    assert_eq!(attr(refused, "rpc.grpc.status_code").cloned(), Some(Value::IntValue(3)));
    assert_eq!(refused.status.as_ref().map_or(0, |s| s.code), StatusCode::Unset as i32);

    app.stop().await.expect("clean stop");
    tokio::task::spawn_blocking(move || provider.shutdown()).await.expect("joined").expect("shut down");
}
