//! One tower layer on the tonic server that sees every RPC: it counts it and times it
//! for Prometheus ([`super::metrics`]) and opens its OpenTelemetry server span.
//!
//! The span follows the OpenTelemetry RPC semantic conventions: named
//! `rapport.v1.SurveyService/RecordResponse`, kind server, with `rpc.system = "grpc"`,
//! `rpc.service`, `rpc.method` and, once known, `rpc.grpc.status_code`. A W3C
//! `traceparent` (and `tracestate`) in the request metadata makes it a child of the
//! caller's span, so the caller's trace continues through the server; the use-case and
//! database spans (`#[tracing::instrument]`, sea-orm's `tracing-spans`) nest under it.
//!
//! A gRPC status arrives in one of two places: in the response headers of a
//! trailers-only response (tonic's errors), or in the trailers after the body (every
//! success, and streams). The layer reads the headers and, when the status is not there,
//! wraps the body to read it from the trailers. An RPC whose response is dropped before
//! its status was sent (the client went away) counts as `Canceled`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
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

/// The layer; build it once per server with the descriptor sets of every service the
/// server hosts, so that metrics label only real methods (a path that names no method
/// is labelled `unknown`, which keeps the label set bounded whatever callers send).
#[derive(Clone, Debug)]
pub struct RpcLayer {
    metrics: Metrics,
    methods: Arc<HashMap<String, RpcLabels>>,
    unknown: RpcLabels,
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
        })
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
        let span = tracing::info_span!(
            parent: None,
            "grpc.server",
            otel.name = name.as_str(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
        if parent.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer is installed: nothing to continue then.
            let _ = span.set_parent(parent);
        }
        self.layer.metrics.rpc_started(&labels);
        let call = Call { metrics: self.layer.metrics.clone(), labels, start, span: span.clone(), done: false };
        let inner = span.in_scope(|| self.inner.call(req));
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

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

pin_project! {
    /// The response future of [`RpcService`].
    pub struct RpcFuture<F> {
        #[pin]
        inner: F,
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
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let Some(mut call) = this.call.take() else {
            // Polled again after completing: a contract breach by the caller.
            return Poll::Pending;
        };
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                if let Some(code) = grpc_status(&parts.headers) {
                    call.finish(code);
                }
                let span = this.span.clone();
                Ok(http::Response::from_parts(parts, RpcBody { inner: body, span, call }))
            }
            Err(e) => {
                call.finish(UNKNOWN);
                Err(e)
            }
        })
    }
}

pin_project! {
    /// A response body that reads the gRPC status from its trailers.
    pub struct RpcBody<B> {
        #[pin]
        inner: B,
        span: tracing::Span,
        call: Call,
    }
}

impl<B: Body> Body for RpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = {
            let _entered = this.span.enter();
            ready!(this.inner.poll_frame(cx))
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
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
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
}
