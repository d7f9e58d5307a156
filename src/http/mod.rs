//! The HTTP gateway (docs/api.md, docs/in-app.md), on its own port beside native gRPC: what web
//! pages and plain HTTP clients use.
//!
//! - **JSON over HTTP** (`/v1/…`), derived from the proto's `google.api.http`
//!   annotations ([`transcode`]), and its OpenAPI 3 document at `/openapi.json`.
//! - **gRPC-Web** (tonic-web) for browsers: any request whose content type is
//!   `application/grpc…`. Plain HTTP/1.1 requests go to the JSON routes instead.
//! - **The hosted survey page** `/s/{token}` and the embeddable **widget** `/widget.js`.
//! - **The console** `/console` ([`console`]): trends, the follow-up queue and customer
//!   profiles in the browser, over the JSON routes.
//! - `/healthz`: 200 while the database answers, else 503.
//!
//! Both API protocols call the same tonic services in process, so authentication,
//! the in-app rules, rate limits and errors are exactly those of native gRPC; the calls
//! pass through the same [`RpcLayer`] too, so they are in the gRPC metrics, have their
//! RPC span (a child of the request's HTTP span) and are answered INTERNAL if a handler
//! panics.
//!
//! Every request, the hosted page and the widget included, has an `http.server` span
//! (continuing a W3C `traceparent`), a sample in `http_server_request_duration_seconds`
//! and a DEBUG access-log line (target `rapport::http::access`). All three name the
//! route by its template (`/s/{token}`, `/v1/invitations/{token}/response`; a gRPC-Web
//! call by its method), never by the path, which carries invitation tokens. A panic in
//! the gateway's own code is answered 500 with a JSON error body (`grpc-status` 13 for
//! gRPC-Web), logged at ERROR and counted in `rapport_panics_total`. Browsers
//! from other origins need CORS: only the configured origins get it, and an API call
//! that carries an `Origin` neither configured nor the gateway's own is refused here
//! too. The gateway shares `service/` and never touches `store/`.

mod console;
mod openapi;
mod pages;
mod privacy;
pub mod transcode;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument as _;

use crate::grpc::gate::{ClientAddr, bucket_address, forwarded_ip};
use crate::service::Services;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::rpc::{self, CatchUnwind, RpcBody, RpcLayer};

/// The gRPC services as the gateway calls them in process: behind the RPC layer.
pub(crate) type GrpcService =
    BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, Infallible>;

/// The route template of a request (`/s/{token}`, a JSON route's template, a gRPC
/// method's path, `unmatched`), set by [`observe`] for the layers inside it.
#[derive(Debug, Clone)]
struct RouteTemplate(Arc<str>);

/// What the gateway needs from the settings.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Origins allowed by CORS (`scheme://host[:port]`), or `*`.
    pub allowed_origins: Vec<String>,
    /// A trusted proxy's client-address header.
    pub client_ip_header: Option<HeaderName>,
}

/// Shared state of the gateway's handlers.
#[derive(Clone)]
pub(crate) struct Gateway(Arc<Inner>);

pub(crate) struct Inner {
    services: Services,
    grpc: GrpcService,
    grpc_web: GrpcWebService<GrpcService>,
    rpc: RpcLayer,
    api: transcode::Transcoder,
    openapi: bytes::Bytes,
    origins: Origins,
    client_ip_header: Option<HeaderName>,
}

/// The origins whose pages may call the API.
#[derive(Debug, Clone)]
struct Origins {
    any: bool,
    list: Vec<HeaderValue>,
}

impl Origins {
    fn new(configured: &[String]) -> anyhow::Result<Self> {
        let any = configured.iter().any(|o| o == "*");
        let list = configured
            .iter()
            .filter(|o| *o != "*")
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("RAPPORT_CORS_ALLOWED_ORIGINS: bad origin {o:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Origins { any, list })
    }

    /// Whether a request from a page at `origin` may call the API: a configured origin,
    /// or the gateway's own (the hosted page), judged by the `Host` it was sent to.
    fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        if self.any || self.list.iter().any(|o| o == origin) {
            return true;
        }
        let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(|h| h.to_str())) else { return false };
        origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
    }

    fn cors(&self) -> CorsLayer {
        let allow = if self.any { AllowOrigin::any() } else { AllowOrigin::list(self.list.clone()) };
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                http::header::AUTHORIZATION,
                CONTENT_TYPE,
                http::header::ACCEPT,
                HeaderName::from_static("x-grpc-web"),
                HeaderName::from_static("x-user-agent"),
                HeaderName::from_static("grpc-timeout"),
                HeaderName::from_static("connect-protocol-version"),
                HeaderName::from_static("connect-timeout-ms"),
            ])
            // gRPC-Web puts the status in headers for errors before any message.
            .expose_headers([
                HeaderName::from_static("grpc-status"),
                HeaderName::from_static("grpc-message"),
                HeaderName::from_static("grpc-status-details-bin"),
                http::header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600))
    }
}

/// The gateway's router: static routes, then gRPC-Web or JSON by content type. The
/// services of `grpc` are called through `rpc` (as [`RpcLayer::nested`]).
pub fn router(services: Services, grpc: Routes, rpc: &RpcLayer, settings: HttpSettings) -> anyhow::Result<Router> {
    // The hosted page's and the widget's texts; a bad RAPPORT_LOCALES_DIR fails here.
    pages::load_locales()?;
    let rpc = rpc.nested();
    let grpc: GrpcService = BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .map_response(|r: http::Response<RpcBody<tonic::body::Body>>| r.map(tonic::body::Body::new))
            .layer(rpc.clone())
            .service(grpc.prepare()),
    );
    let api = transcode::Transcoder::new()?;
    let openapi = serde_json::to_vec_pretty(&openapi::document(&api))?.into();
    let origins = Origins::new(&settings.allowed_origins)?;
    let cors = origins.cors();
    let metrics = rpc.metrics().clone();
    let gw = Gateway(Arc::new(Inner {
        services,
        grpc_web: GrpcWebLayer::new().layer(grpc.clone()),
        grpc,
        rpc,
        api,
        openapi,
        origins,
        client_ip_header: settings.client_ip_header,
    }));
    Ok(Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/widget.js", get(pages::widget))
        .route("/s/{token}", get(pages::hosted))
        .route("/console", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/v1/customers/{customer_id}/export", get(privacy::export))
        .fallback(dispatch)
        // Inside CORS, so that a browser can read the answer to a panic too.
        .layer(middleware::from_fn_with_state(metrics, catch_panics))
        .layer(cors)
        .layer(middleware::from_fn_with_state(gw.clone(), client_addr))
        .layer(middleware::from_fn_with_state(gw.clone(), observe))
        .with_state(gw))
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    tracing::info!(addr = %listener.local_addr()?, "rapport serving HTTP (JSON, gRPC-Web, /s/, /widget.js, /console)");
    // Small replies must not wait for Nagle's algorithm, as on the gRPC port.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Records the client's address (the TCP peer, or the trusted proxy's header) for
/// the rate limits.
async fn client_addr(State(gw): State<Gateway>, mut req: Request, next: Next) -> Response {
    let from_header =
        gw.0.client_ip_header.as_ref().and_then(|h| forwarded_ip(req.headers().get(h).and_then(|v| v.to_str().ok())));
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| bucket_address(c.0.ip()));
    if let Some(ip) = from_header.or(peer) {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(req).await
}

/// Whether a request is gRPC(-Web), by its content type.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl Gateway {
    /// The route template of `req`, bounded whatever the path: a static route's, a JSON
    /// route's (any method, so a preflight or a 405 is labelled too), a gRPC method this
    /// server has, else `unmatched`.
    fn route_of(&self, req: &Request) -> Arc<str> {
        if let Some(m) = req.extensions().get::<MatchedPath>() {
            return m.as_str().into();
        }
        let path = req.uri().path();
        let known =
            if is_grpc(req.headers()) { self.0.rpc.knows(path).then_some(path) } else { self.0.api.template_of(path) };
        known.unwrap_or("unmatched").into()
    }
}

/// The outermost layer: the request's span, its HTTP metrics and its access-log line.
async fn observe(State(gw): State<Gateway>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = gw.route_of(&req);
    let name = format!("{method} {route}");
    let span = tracing::info_span!(
        parent: None,
        "http.server",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method.as_str(),
        http.route = &*route,
        http.response.status_code = tracing::field::Empty,
    );
    rpc::continue_trace(&span, req.headers());
    req.extensions_mut().insert(RouteTemplate(route.clone()));
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    span.record("http.response.status_code", status);
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    gw.0.rpc.metrics().http_handled(&method, &route, status, elapsed);
    // gRPC-Web errors before any message carry their status in the headers.
    let grpc_status = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("");
    span.in_scope(|| {
        tracing::debug!(
            target: "rapport::http::access",
            method = method.as_str(),
            route = &*route,
            status,
            grpc_status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "HTTP request",
        );
    });
    resp
}

/// The last line inside the gateway: a panic in its own code (the RPCs it calls have
/// their own, in the RPC layer) is answered 500 with a JSON error, or `grpc-status` 13
/// for gRPC-Web, logged and counted; the connection and the process go on.
async fn catch_panics(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = match (req.extensions().get::<RouteTemplate>(), req.extensions().get::<MatchedPath>()) {
        (Some(r), _) => r.0.clone(),
        (None, Some(m)) => m.as_str().into(),
        (None, None) => "unmatched".into(),
    };
    let grpc_content_type = is_grpc(req.headers()).then(|| req.headers().get(CONTENT_TYPE).cloned()).flatten();
    let panic = match CatchUnwind::new(next.run(req)).await {
        Ok(resp) => return resp,
        Err(panic) => panic,
    };
    metrics.panicked(&route);
    tracing::error!(
        route = &*route,
        panic = %rpc::panic_message(panic.as_ref()),
        "an HTTP request panicked; answered with an internal error"
    );
    match grpc_content_type {
        Some(content_type) => {
            let mut resp = tonic::Status::internal(rpc::PANIC_MESSAGE).into_http::<axum::body::Body>();
            resp.headers_mut().insert(CONTENT_TYPE, content_type);
            resp
        }
        None => transcode::error_json(StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal, rpc::PANIC_MESSAGE),
    }
}

/// Everything that is not a static route: gRPC(-Web) by content type, else JSON.
async fn dispatch(State(gw): State<Gateway>, req: Request) -> Response {
    if let Some(origin) = req.headers().get(ORIGIN)
        && !gw.0.origins.allows(origin, req.headers().get(HOST))
    {
        let message = format!(
            "pages from {} may not call this API (RAPPORT_CORS_ALLOWED_ORIGINS)",
            origin.to_str().unwrap_or("this origin")
        );
        return transcode::error_json(StatusCode::FORBIDDEN, tonic::Code::PermissionDenied, &message);
    }
    if is_grpc(req.headers()) {
        return match gw.0.grpc_web.clone().oneshot(req).await {
            Ok(resp) => resp.map(axum::body::Body::new),
            Err(never) => match never {},
        };
    }
    gw.0.api.handle(gw.0.grpc.clone(), req).await
}

async fn healthz(State(gw): State<Gateway>) -> Response {
    let up = tokio::time::timeout(Duration::from_secs(2), gw.0.services.database_ready()).await.unwrap_or(false);
    let (status, body) =
        if up { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n") };
    (status, [(CACHE_CONTROL, "no-store")], body).into_response()
}

async fn openapi_json(State(gw): State<Gateway>) -> Response {
    ([(CONTENT_TYPE, "application/json")], gw.0.openapi.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_and_same_origins_are_allowed_and_nothing_else() {
        let o = Origins::new(&["https://app.example.com".into()]).unwrap();
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(o.allows(&v("https://app.example.com"), None));
        assert!(!o.allows(&v("https://evil.example.com"), None));
        assert!(!o.allows(&v("null"), Some(&v("rapport.example.com"))));
        assert!(o.allows(&v("https://rapport.example.com"), Some(&v("rapport.example.com"))));
        assert!(o.allows(&v("http://127.0.0.1:8080"), Some(&v("127.0.0.1:8080"))));
        assert!(!o.allows(&v("http://127.0.0.1:9999"), Some(&v("127.0.0.1:8080"))));
        assert!(Origins::new(&["*".into()]).unwrap().allows(&v("https://anyone.example"), None));
    }

    #[tokio::test]
    async fn a_panic_in_the_gateway_is_a_500_json_error_or_grpc_internal_and_is_counted() {
        use http_body_util::BodyExt as _;

        async fn page() -> &'static str {
            panic!("a test panic in a page")
        }
        async fn fallback() -> &'static str {
            panic!("a test panic in the fallback")
        }
        let metrics = Metrics::new();
        let app = Router::new()
            .route("/s/{token}", get(page))
            .fallback(fallback)
            .layer(middleware::from_fn_with_state(metrics.clone(), catch_panics));
        let call = |path: &str, content_type: Option<&str>| {
            let method = if content_type.is_some() { Method::POST } else { Method::GET };
            let mut req = Request::builder().method(method).uri(path);
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            app.clone().oneshot(req.body(axum::body::Body::empty()).expect("a request"))
        };

        let resp = call("/s/inv_secret", None).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.expect("a body").to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
        assert_eq!(json, serde_json::json!({"code": 13, "message": "internal error", "details": []}));

        let resp = call("/rapport.v1.SurveyService/GetSurvey", Some("application/grpc-web+proto")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "gRPC-Web answers its status in headers");
        assert_eq!(resp.headers()["grpc-status"], "13");
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/grpc-web+proto");

        let text = metrics.encode();
        assert!(text.contains("rapport_panics_total{route=\"/s/{token}\"} 1"), "by template, not path: {text}");
        assert!(text.contains("rapport_panics_total{route=\"unmatched\"} 1"), "{text}");
        assert!(!text.contains("inv_secret"), "{text}");
    }
}
