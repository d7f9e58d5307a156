//! One tower layer on the tonic server that sees every RPC: it counts it and times it
//! for Prometheus ([`super::metrics`]), opens its OpenTelemetry server span, and is the
//! last line of defence against a panic.
//!
//! The span follows the OpenTelemetry RPC semantic conventions: named
//! `rapport.v1.SurveyService/RecordResponse`, kind server, with `rpc.system = "grpc"`,
//! `rpc.service`, `rpc.method` and, once known, `rpc.grpc.status_code`. A W3C
//! `traceparent` (and `tracestate`) in the request metadata makes it a child of the
//! caller's span, so the caller's trace continues through the server; the use-case and
//! database spans (`#[tracing::instrument]`, sea-orm's `tracing-spans`) nest under it.
//! The HTTP gateway calls the same services in process through a [`RpcLayer::nested`]
//! copy of the layer, whose spans are children of the gateway's HTTP span.
//!
//! A gRPC status arrives in one of two places: in the response headers of a
//! trailers-only response (tonic's errors), or in the trailers after the body (every
//! success, and streams). The layer reads the headers and, when the status is not there,
//! wraps the body to read it from the trailers. An RPC whose response is dropped before
//! its status was sent (the client went away) counts as `Canceled`.
//!
//! **Panics.** A panic while handling a call (in the service's `call`, its future, or
//! a streamed body) is caught here: that call alone is answered `INTERNAL`
//! ("internal error"; in the trailers if part of a stream was sent), the panic is
//! logged at ERROR and counted in `rapport_panics_total`, and the process and the
//! connection carry on. This is the last line: code must not panic on any input.
//!
//! **Size.** tonic refuses a request message over the decoding limit with
//! `OUT_OF_RANGE`; the API documents `RESOURCE_EXHAUSTED` (as gRPC's own
//! implementations answer), so the layer rewrites that one refusal.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pin_project_lite::pin_project;
use prost::Message;
use tower_layer::Layer;
use tower_service::Service;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::metrics::{Metrics, RpcLabels};

/// gRPC status codes the OpenTelemetry conventions count as server errors (span
/// status ERROR); the rest are the caller's doing and leave the status unset.
const SERVER_ERRORS: [i32; 6] = [2, 4, 12, 13, 14, 15];
/// `UNKNOWN`: a response that ended without any status.
const UNKNOWN: i32 = 2;
/// `CANCELLED`: the response was dropped before its status was sent.
const CANCELLED: i32 = 1;
/// `OUT_OF_RANGE`: what tonic answers to a request over the decoding limit.
const OUT_OF_RANGE: i32 = 11;
/// `RESOURCE_EXHAUSTED`: what the API answers to it instead.
const RESOURCE_EXHAUSTED: i32 = 8;
/// `INTERNAL`: the answer to a panic.
const INTERNAL: i32 = 13;
/// The message of a call that panicked: nothing of the panic is shown to the caller.
pub const PANIC_MESSAGE: &str = "internal error";
/// How the answer to a request message over the size limit begins.
pub const TOO_LARGE_MESSAGE: &str = "the request message is too large";
/// How tonic's decoder words a request over the limit (tonic `codec/decode.rs`).
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: ";

/// The layer; build it once per server with the descriptor sets of every service the
/// server hosts, so that metrics label only real methods (a path that names no method
/// is labelled `unknown`, which keeps the label set bounded whatever callers send).
#[derive(Clone, Debug)]
pub struct RpcLayer {
    metrics: Metrics,
    methods: Arc<HashMap<String, RpcLabels>>,
    unknown: RpcLabels,
    nested: bool,
}

impl RpcLayer {
    /// A layer recording into `metrics`, knowing the methods of `descriptor_sets`
    /// (encoded `FileDescriptorSet`s, as given to server reflection).
    pub fn new(metrics: Metrics, descriptor_sets: &[&[u8]]) -> anyhow::Result<Self> {
        let mut methods = HashMap::new();
        for set in descriptor_sets {
            let set = prost_types::FileDescriptorSet::decode(*set)?;
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let name = service.name.unwrap_or_default();
                    let full = if package.is_empty() { name } else { format!("{package}.{name}") };
                    let full = Arc::new(full);
                    for method in service.method {
                        let grpc_type = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        let name = method.name.unwrap_or_default();
                        methods.insert(
                            format!("/{full}/{name}"),
                            RpcLabels { grpc_type, grpc_service: full.clone(), grpc_method: Arc::new(name) },
                        );
                    }
                }
            }
        }
        let unknown = Arc::new("unknown".to_owned());
        Ok(RpcLayer {
            metrics,
            methods: Arc::new(methods),
            unknown: RpcLabels { grpc_type: "unknown", grpc_service: unknown.clone(), grpc_method: unknown },
            nested: false,
        })
    }

    /// The same layer for calls made in process by a server that already opened a
    /// span for the request (the HTTP gateway): each RPC span is a child of the current
    /// span, of kind internal, instead of a new server span continuing the metadata's
    /// `traceparent`.
    pub fn nested(&self) -> Self {
        RpcLayer { nested: true, ..self.clone() }
    }

    /// Whether `path` (`/package.Service/Method`) names a method of this server.
    pub fn knows(&self, path: &str) -> bool {
        self.methods.contains_key(path)
    }

    /// The metrics this layer records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService { inner, layer: self.clone() }
    }
}

/// The service [`RpcLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct RpcService<S> {
    inner: S,
    layer: RpcLayer,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<RpcBody<ResBody>>;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let path = req.uri().path();
        let labels = self.layer.methods.get(path).unwrap_or(&self.layer.unknown).clone();
        // The span names what was asked for, even a method this server lacks.
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
        let name = format!("{service}/{method}");
        let (parent, kind) =
            if self.layer.nested { (tracing::Span::current().id(), "internal") } else { (None, "server") };
        let span = tracing::info_span!(
            parent: parent,
            "grpc.server",
            otel.name = name.as_str(),
            otel.kind = kind,
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        if !self.layer.nested {
            continue_trace(&span, req.headers());
        }
        self.layer.metrics.rpc_started(&labels);
        let mut call = Call { metrics: self.layer.metrics.clone(), labels, start, span: span.clone(), done: false };
        let inner = match span.in_scope(|| catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))) {
            Ok(future) => Some(future),
            Err(panic) => {
                call.panicked(panic.as_ref());
                None
            }
        };
        RpcFuture { inner, span, call: Some(call) }
    }
}

/// An RPC in flight: records its outcome once, when its status is known, or as
/// `CANCELLED` if dropped before that.
#[derive(Debug)]
struct Call {
    metrics: Metrics,
    labels: RpcLabels,
    start: Instant,
    span: tracing::Span,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: i32) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.metrics.rpc_handled(&self.labels, code, self.start.elapsed());
        self.span.record("rpc.grpc.status_code", i64::from(code));
        if SERVER_ERRORS.contains(&code) {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

impl Call {
    /// Logs and counts a panic of this call (the caller answers INTERNAL).
    fn panicked(&mut self, payload: &(dyn Any + Send)) {
        let route = if self.labels.grpc_type == "unknown" {
            "unknown".to_owned()
        } else {
            format!("/{}/{}", self.labels.grpc_service, self.labels.grpc_method)
        };
        self.metrics.panicked(&route);
        self.span.in_scope(|| {
            tracing::error!(rpc = %route, panic = %panic_message(payload), "a call panicked; answered INTERNAL");
        });
        self.finish(INTERNAL);
    }
}

/// The text of a panic's payload (what `panic!` was given), cut short.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    match text.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

pin_project! {
    /// The response future of [`RpcService`].
    pub struct RpcFuture<F> {
        // `None` once the service's `call` or this future panicked.
        #[pin]
        inner: Option<F>,
        span: tracing::Span,
        call: Option<Call>,
    }
}

impl<F, ResBody, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<RpcBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(call) = this.call.as_mut() else {
            // Polled again after completing: a contract breach by the caller.
            return Poll::Pending;
        };
        // `Err(None)`: a panic (logged and counted), answered INTERNAL.
        let result = match this.inner.as_mut().as_pin_mut() {
            Some(inner) => {
                let polled = {
                    let _entered = this.span.enter();
                    catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
                };
                match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(result)) => result.map_err(Some),
                    Err(panic) => {
                        call.panicked(panic.as_ref());
                        // What the future holds may panic again as it is dropped.
                        let _ = catch_unwind(AssertUnwindSafe(|| this.inner.set(None)));
                        Err(None)
                    }
                }
            }
            // The service's `call` panicked.
            None => Err(None),
        };
        let Some(mut call) = this.call.take() else { return Poll::Pending };
        let span = this.span.clone();
        Poll::Ready(match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                if let Some(mut code) = grpc_status(&parts.headers) {
                    if code == OUT_OF_RANGE {
                        code = too_large_is_resource_exhausted(&mut parts.headers);
                    }
                    call.finish(code);
                }
                Ok(http::Response::from_parts(parts, RpcBody { inner: Some(body), span, call }))
            }
            // A panic: INTERNAL, trailers-only.
            Err(None) => {
                let (parts, ()) = tonic::Status::internal(PANIC_MESSAGE).into_http::<()>().into_parts();
                Ok(http::Response::from_parts(parts, RpcBody { inner: None, span, call }))
            }
            Err(Some(e)) => {
                call.finish(UNKNOWN);
                Err(e)
            }
        })
    }
}

pin_project! {
    /// A future that turns a panic while it is polled into `Err(payload)`; it must not
    /// be polled again after that.
    pub struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchUnwind<F> {
    pub fn new(inner: F) -> Self {
        CatchUnwind { inner }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Rewrites tonic's `OUT_OF_RANGE` for a request over the decoding limit to
/// `RESOURCE_EXHAUSTED`; returns the code the headers now hold.
fn too_large_is_resource_exhausted(headers: &mut http::HeaderMap) -> i32 {
    let Some(status) = tonic::Status::from_header_map(headers) else { return OUT_OF_RANGE };
    let Some(sizes) = status.message().strip_prefix(TONIC_TOO_LARGE) else { return OUT_OF_RANGE };
    let message = format!("{TOO_LARGE_MESSAGE}: {}", sizes.replace("limit is:", "limit is"));
    let refusal = tonic::Status::resource_exhausted(message).into_http::<()>();
    for name in ["grpc-status", "grpc-message"] {
        if let Some(v) = refusal.headers().get(name) {
            headers.insert(name, v.clone());
        }
    }
    headers.remove("grpc-status-details-bin");
    RESOURCE_EXHAUSTED
}

pin_project! {
    /// A response body that reads the gRPC status from its trailers, and ends the
    /// call with `INTERNAL` trailers if the body panics.
    pub struct RpcBody<B> {
        // `None` for a trailers-only answer to a panic, or once the body panicked.
        #[pin]
        inner: Option<B>,
        span: tracing::Span,
        call: Call,
    }
}

impl<B: Body> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else { return Poll::Ready(None) };
        let polled = {
            let _entered = this.span.enter();
            catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx)))
        };
        let frame = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(frame)) => frame,
            Err(panic) => {
                this.call.panicked(panic.as_ref());
                let _ = catch_unwind(AssertUnwindSafe(|| this.inner.set(None)));
                let status = tonic::Status::internal(PANIC_MESSAGE).into_http::<()>();
                let mut trailers = http::HeaderMap::new();
                for name in ["grpc-status", "grpc-message"] {
                    if let Some(v) = status.headers().get(name) {
                        trailers.insert(name, v.clone());
                    }
                }
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        };
        match &frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref() {
                    this.call.finish(grpc_status(trailers).unwrap_or(UNKNOWN));
                }
            }
            // The body broke off, or ended without trailers: no status was sent.
            Some(Err(_)) | None => this.call.finish(UNKNOWN),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

/// Makes `span` a child of the caller's span named by a W3C `traceparent` (and
/// `tracestate`) in `headers`, if there is one.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: nothing to continue then.
        let _ = span.set_parent(parent);
    }
}

/// gRPC metadata is HTTP/2 headers: the W3C propagator reads `traceparent` from them.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_come_from_the_descriptor_sets_with_their_streaming_type() {
        let layer = RpcLayer::new(
            Metrics::new(),
            &[crate::grpc::pb::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET],
        )
        .expect("valid descriptor sets");
        let record = &layer.methods["/rapport.v1.SurveyService/RecordResponse"];
        assert_eq!(record.grpc_type, "unary");
        assert_eq!(record.grpc_service.as_str(), "rapport.v1.SurveyService");
        assert_eq!(record.grpc_method.as_str(), "RecordResponse");
        assert_eq!(layer.methods["/grpc.health.v1.Health/Watch"].grpc_type, "server_stream");
        assert!(!layer.methods.contains_key("/rapport.v1.SurveyService/NoSuchMethod"));
    }

    #[test]
    fn the_status_is_read_from_a_header_or_trailer() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(grpc_status(&h), Some(3));
        h.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&h), None);
    }

    /// A health service that panics on request: in its handler (`check` of service
    /// `panic`, at once or after yielding), and in the middle of a stream (`watch`).
    struct Panicky;

    #[tonic::async_trait]
    impl tonic_health::pb::health_server::Health for Panicky {
        async fn check(
            &self,
            req: tonic::Request<tonic_health::pb::HealthCheckRequest>,
        ) -> Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
            match req.get_ref().service.as_str() {
                "panic" => panic!("a test panic in a handler"),
                "panic-later" => {
                    tokio::task::yield_now().await;
                    panic!("a test panic after a yield")
                }
                _ => Ok(tonic::Response::new(tonic_health::pb::HealthCheckResponse { status: 1 })),
            }
        }

        type WatchStream = Pin<
            Box<dyn tokio_stream::Stream<Item = Result<tonic_health::pb::HealthCheckResponse, tonic::Status>> + Send>,
        >;

        async fn watch(
            &self,
            _: tonic::Request<tonic_health::pb::HealthCheckRequest>,
        ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
            let stream = PanicsAfterOne { sent: false, waited: false };
            Ok(tonic::Response::new(Box::pin(stream)))
        }
    }

    /// A stream of one message that, after waiting once (so that the message is sent
    /// on its own), panics.
    struct PanicsAfterOne {
        sent: bool,
        waited: bool,
    }

    impl tokio_stream::Stream for PanicsAfterOne {
        type Item = Result<tonic_health::pb::HealthCheckResponse, tonic::Status>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if !self.sent {
                self.sent = true;
                return Poll::Ready(Some(Ok(tonic_health::pb::HealthCheckResponse { status: 1 })));
            }
            if !self.waited {
                self.waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            panic!("a test panic in a stream")
        }
    }

    /// Panics in its `call` (before any future exists) when asked by a header.
    #[derive(Clone)]
    struct PanicInCall<S>(S);

    impl<S: Service<http::Request<B>>, B> Service<http::Request<B>> for PanicInCall<S> {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, req: http::Request<B>) -> S::Future {
            assert!(!req.headers().contains_key("x-test-panic"), "a test panic in call");
            self.0.call(req)
        }
    }

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
    }

    #[tokio::test]
    async fn a_panic_is_internal_for_that_call_only_counted_and_the_connection_goes_on() {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;

        let metrics = Metrics::new();
        let layer = RpcLayer::new(metrics.clone(), &[tonic_health::pb::FILE_DESCRIPTOR_SET]).expect("a descriptor set");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layer)
                .layer(tower_layer::layer_fn(PanicInCall))
                .add_service(tonic_health::pb::health_server::HealthServer::new(Panicky))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a URI")
            .connect()
            .await
            .expect("connected");
        let mut client = HealthClient::new(channel);
        let check = |service: &str| HealthCheckRequest { service: service.into() };

        client.check(check("")).await.expect("a call that does not panic");
        for service in ["panic", "panic-later"] {
            let err = client.check(check(service)).await.expect_err("a panic");
            assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
            assert_eq!(err.message(), PANIC_MESSAGE, "nothing of the panic is shown");
            client.check(check("")).await.expect("the same channel still serves");
        }
        let mut req = tonic::Request::new(check(""));
        req.metadata_mut().insert("x-test-panic", "1".parse().expect("a value"));
        let err = client.check(req).await.expect_err("a panic in call");
        assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");

        // A stream that panics after its first message ends with INTERNAL.
        let mut stream = client.watch(check("")).await.expect("a stream").into_inner();
        assert_eq!(stream.message().await.expect("the first message").map(|m| m.status), Some(1));
        let err = stream.message().await.expect_err("the stream panicked");
        assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
        client.check(check("")).await.expect("the channel still serves after a stream panicked");
        assert!(!server.is_finished(), "the server runs on");

        let text = metrics.encode();
        let panics =
            |method: &str| sample(&text, &format!("rapport_panics_total{{route=\"/grpc.health.v1.Health/{method}\"}}"));
        assert_eq!(panics("Check"), Some(3.0), "{text}");
        assert_eq!(panics("Watch"), Some(1.0), "{text}");
        let handled = |method: &str, code: &str| {
            sample(
                &text,
                &format!(
                    "grpc_server_handled_total{{grpc_type=\"{}\",grpc_service=\"grpc.health.v1.Health\",\
                     grpc_method=\"{method}\",grpc_code=\"{code}\"}}",
                    if method == "Watch" { "server_stream" } else { "unary" }
                ),
            )
        };
        assert_eq!(handled("Check", "Internal"), Some(3.0), "{text}");
        assert_eq!(handled("Check", "OK"), Some(4.0), "{text}");
        assert_eq!(handled("Watch", "Internal"), Some(1.0), "{text}");
        server.abort();
    }

    #[tokio::test]
    async fn a_request_over_the_decoding_limit_is_resource_exhausted() {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;

        let metrics = Metrics::new();
        let layer = RpcLayer::new(metrics.clone(), &[tonic_health::pb::FILE_DESCRIPTOR_SET]).expect("a descriptor set");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(
                    tonic_health::pb::health_server::HealthServer::new(Panicky).max_decoding_message_size(1024),
                )
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a URI")
            .connect()
            .await
            .expect("connected");
        let mut client = HealthClient::new(channel);
        let err = client.check(HealthCheckRequest { service: "x".repeat(2000) }).await.expect_err("too large");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("the limit is 1024 bytes"), "{err:?}");
        client.check(HealthCheckRequest { service: "x".repeat(1000) }).await.expect("within the limit");
        let text = metrics.encode();
        assert!(text.contains("grpc_method=\"Check\",grpc_code=\"ResourceExhausted\"} 1"), "{text}");
        server.abort();
    }
}
