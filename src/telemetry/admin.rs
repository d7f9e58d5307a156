//! The admin HTTP listener (`RAPPORT_ADMIN_ADDR`, default `0.0.0.0:9464`), apart from
//! the gRPC port so that it can be firewalled and scraped separately: `GET /metrics`
//! serves the Prometheus metrics in the OpenMetrics text format.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::metrics::{self, Scrape};
use crate::service::Services;

#[derive(Clone)]
struct Admin {
    metrics: metrics::Metrics,
    services: Services,
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: metrics::Metrics,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(scrape)).with_state(Admin { metrics, services });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn scrape(State(admin): State<Admin>) -> impl IntoResponse {
    let s = &admin.services;
    let scrape = Scrape { db: &s.db, now: s.clock.now(), record_queue: (s.records.waiting(), s.records.capacity()) };
    admin.metrics.refresh(scrape).await;
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], admin.metrics.encode())
}
