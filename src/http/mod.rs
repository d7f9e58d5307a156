//! The HTTP gateway (DESIGN §2, §11), on its own port beside native gRPC: what web
//! pages and plain HTTP clients use.
//!
//! - **JSON over HTTP** (`/v1/…`), derived from the proto's `google.api.http`
//!   annotations ([`transcode`]), and its OpenAPI 3 document at `/openapi.json`.
//! - **gRPC-Web** (tonic-web) for browsers: any request whose content type is
//!   `application/grpc…`. Plain HTTP/1.1 requests go to the JSON routes instead.
//! - **The hosted survey page** `/s/{token}` and the embeddable **widget** `/widget.js`.
//! - `/healthz`: 200 while the database answers, else 503.
//!
//! Both API protocols call the same tonic services in process, so authentication,
//! the in-app rules, rate limits and errors are exactly those of native gRPC. Browsers
//! from other origins need CORS: only the configured origins get it, and an API call
//! that carries an `Origin` neither configured nor the gateway's own is refused here
//! too. The gateway shares `service/` and never touches `store/`.

mod openapi;
mod pages;
pub mod transcode;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::grpc::gate::{ClientAddr, bucket_address, forwarded_ip};
use crate::service::Services;

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
    grpc: Routes,
    grpc_web: GrpcWebService<Routes>,
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

/// The gateway's router: static routes, then gRPC-Web or JSON by content type.
pub fn router(services: Services, grpc: Routes, settings: HttpSettings) -> anyhow::Result<Router> {
    let grpc = grpc.prepare();
    let api = transcode::Transcoder::new()?;
    let openapi = serde_json::to_vec_pretty(&openapi::document(&api))?.into();
    let origins = Origins::new(&settings.allowed_origins)?;
    let cors = origins.cors();
    let gw = Gateway(Arc::new(Inner {
        services,
        grpc_web: GrpcWebLayer::new().layer(grpc.clone()),
        grpc,
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
        .fallback(dispatch)
        .layer(cors)
        .layer(middleware::from_fn_with_state(gw.clone(), client_addr))
        .with_state(gw))
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    tracing::info!(addr = %listener.local_addr()?, "rapport serving HTTP (JSON, gRPC-Web, /s/, /widget.js)");
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
    let is_grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if is_grpc {
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
}
