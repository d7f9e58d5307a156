//! Logs, traces and metrics: `tracing` with a text or JSON formatter, an OpenTelemetry
//! (OTLP/gRPC) exporter only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the per-RPC
//! span and metrics layer ([`rpc`]), and Prometheus metrics ([`metrics`]) served on the
//! admin port ([`admin`]).

pub mod admin;
pub mod metrics;
pub mod rpc;

pub use metrics::Metrics;

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Flushes and stops the trace exporter when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Short: a missing collector must not hold up shutdown.
            let _ = p.shutdown_with_timeout(Duration::from_secs(2));
        }
    }
}

/// Installs the global subscriber. Call once, from `main`, inside the runtime.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<TelemetryGuard> {
    let mut env_filter = EnvFilter::try_new(filter)?;
    if !filter.contains("sqlx") {
        // PostgreSQL's NOTICEs ("relation … already exists, skipping" at every start's
        // migration check) are noise at INFO; a filter that names sqlx decides itself.
        env_filter = env_filter.add_directive("sqlx::postgres::notice=warn".parse()?);
    }
    let filter = env_filter;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().with_current_span(true).boxed()
    } else {
        // Colour only on a terminal: escape codes in a file or a pipe are noise.
        tracing_subscriber::fmt::layer().with_ansi(colour(std::io::stdout().is_terminal())).boxed()
    };

    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty());
    let provider = match endpoint {
        Some(endpoint) => {
            let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "rapport".into());
            Some(tracer_provider(&endpoint, &name)?)
        }
        None => None,
    };
    let otel = provider.as_ref().map(otel_layer);
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init()?;
    Ok(TelemetryGuard { provider })
}

/// Whether text logs are coloured: only on a terminal (logs go to stdout), and never
/// when `NO_COLOR` is set (no-color.org).
fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A tracer provider that batches spans to an OTLP/gRPC collector at `endpoint`
/// (e.g. `http://collector:4317`). Call inside the Tokio runtime. The service runs
/// unchanged when nothing listens there: failed exports are dropped.
pub fn tracer_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(3))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build())
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
/// [`init`] installs it; a test can install it in a subscriber of its own.
///
/// Database spans are exported only inside another span (an RPC, a use-case): the
/// health check's `SELECT 1` every second and the statements of a migration would
/// otherwise each make a one-span trace of their own.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let layer: OpenTelemetryLayer<S, SdkTracer> =
        tracing_opentelemetry::layer().with_tracer(provider.tracer("rapport"));
    layer.with_filter(DynFilterFn::new(|meta, cx| {
        !(meta.is_span() && meta.target().starts_with("sea_orm") && cx.lookup_current().is_none())
    }))
}
