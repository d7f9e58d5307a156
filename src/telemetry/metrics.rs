//! Prometheus metrics: one registry per server, encoded by the `prometheus-client`
//! crate (OpenMetrics text) on the admin port's `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `grpc_server_started_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_handled_total` | counter | the same and `grpc_code` |
//! | `grpc_server_handling_seconds` | histogram | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `rapport_responses_recorded_total` | counter | `kind`, `bucket` |
//! | `rapport_follow_ups_opened_total` | counter | `kind` |
//! | `rapport_follow_ups_open` | gauge | `status` (`open`, `acknowledged`) |
//! | `rapport_follow_ups_overdue` | gauge | `status` (`open`, `acknowledged`) |
//! | `rapport_db_up` | gauge | |
//! | `rapport_db_pool_connections` | gauge | `state` (`in_use`, `idle`) |
//! | `rapport_db_pool_max_connections` | gauge | |
//! | `rapport_record_queue_waiting` | gauge | |
//! | `rapport_record_queue_limit` | gauge | |
//! | `rapport_event_fanout_lag_seconds` | gauge | |
//! | `rapport_webhook_deliveries_total` | counter | `outcome` |
//! | `rapport_rate_limit_backend_errors_total` | counter | |
//! | `rapport_panics_total` | counter | `route` |
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_route`, `http_response_status_code` |
//!
//! The gRPC names and labels are those of go-grpc-prometheus (and grpc-ecosystem's
//! middleware), so existing dashboards and alerts work unchanged; `grpc_code` is the
//! code's name as grpc-go spells it (`OK`, `InvalidArgument`, `NotFound`, …).
//!
//! The HTTP gateway's calls are RPCs too (in process), so they count in the gRPC
//! metrics; every HTTP request, the hosted page and the widget included, is also in
//! the HTTP histogram, whose names and labels are those of the OpenTelemetry HTTP
//! conventions (`http.server.request.duration`) as Prometheus spells them. Routes are
//! labelled by their template (`/s/{token}`, `/v1/invitations/{token}/response`),
//! never by the path, which would carry invitation tokens and grow without bound.
//!
//! Domain counters are incremented by the use-cases right after their transaction
//! commits, so a rolled-back write never counts. Gauges that describe the database
//! (open and overdue follow-ups, the fan-out's lag, the pool, whether it answers) and
//! the answer queue are read when Prometheus scrapes ([`Metrics::refresh`]). The
//! chart's alerts and dashboard (helm/rapport) use these names; its tests check that
//! every name they use is one this registry has.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::time::Timestamp;
use crate::domain::{Bucket, SurveyKind};
use crate::store::{self, Db};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the RPC latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How long a scrape waits for the database before leaving the database gauges out.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// Which RPC: the labels of `grpc_server_started_total` and the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
    /// The fully qualified service, e.g. `rapport.v1.SurveyService`.
    pub grpc_service: Arc<String>,
    /// The method, e.g. `RecordResponse`.
    pub grpc_method: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: Arc<String>,
    grpc_method: Arc<String>,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    kind: &'static str,
    bucket: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Which HTTP request: the labels of `http_server_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    http_request_method: &'static str,
    http_route: String,
    http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What [`Metrics::refresh`] reads at a scrape.
#[derive(Clone, Copy, Debug)]
pub struct Scrape<'a> {
    pub db: &'a Db,
    /// The service's clock (overdue follow-ups and the fan-out's lag are measured to it).
    pub now: Timestamp,
    /// `RecordResponse` calls waiting for their batch, and the most that may wait.
    pub record_queue: (usize, usize),
}

/// A handle on the server's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    rpc_started: Family<RpcLabels, Counter>,
    rpc_handled: Family<HandledLabels, Counter>,
    rpc_seconds: Family<RpcLabels, Histogram, fn() -> Histogram>,
    responses_recorded: Family<ResponseLabels, Counter>,
    follow_ups_opened: Family<KindLabels, Counter>,
    follow_ups_open: Family<StatusLabels, Gauge>,
    follow_ups_overdue: Family<StatusLabels, Gauge>,
    db_up: Gauge,
    pool_connections: Family<StateLabels, Gauge>,
    pool_max: Gauge,
    record_queue_waiting: Gauge,
    record_queue_limit: Gauge,
    fanout_lag: Gauge<f64, AtomicU64>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    retention_removed: Family<KindLabels, Counter>,
    rollup_rows_folded: Counter,
    rate_limit_backend_errors: Counter,
    response_batch_size: Histogram,
    panics: Family<RouteLabels, Counter>,
    http_seconds: Family<HttpLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (and none observed yet).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let rpc_started = Family::<RpcLabels, Counter>::default();
        registry.register("grpc_server_started", "RPCs started on the server", rpc_started.clone());
        let rpc_handled = Family::<HandledLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, by gRPC status code",
            rpc_handled.clone(),
        );
        let rpc_seconds = Family::<RpcLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to sending its status, in seconds",
            rpc_seconds.clone(),
        );
        let responses_recorded = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "rapport_responses_recorded",
            "Survey responses recorded, by survey kind and the bucket of the score",
            responses_recorded.clone(),
        );
        let follow_ups_opened = Family::<KindLabels, Counter>::default();
        registry.register(
            "rapport_follow_ups_opened",
            "Follow-ups opened by a low score, by survey kind",
            follow_ups_opened.clone(),
        );
        let follow_ups_open = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "rapport_follow_ups_open",
            "Follow-ups not yet resolved or dismissed, across all tenants, read from the database at scrape time",
            follow_ups_open.clone(),
        );
        let follow_ups_overdue = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "rapport_follow_ups_overdue",
            "Follow-ups not yet resolved or dismissed whose due time has passed, across all tenants, read from the \
             database at scrape time",
            follow_ups_overdue.clone(),
        );
        let db_up = Gauge::<i64>::default();
        registry.register(
            "rapport_db_up",
            "1 while the database answers this process's health checks, 0 while it does not",
            db_up.clone(),
        );
        let pool_connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "rapport_db_pool_connections",
            "Connections of this process's database pool, in use or idle",
            pool_connections.clone(),
        );
        let pool_max = Gauge::<i64>::default();
        registry.register(
            "rapport_db_pool_max_connections",
            "The most connections this process's database pool may open",
            pool_max.clone(),
        );
        let record_queue_waiting = Gauge::<i64>::default();
        registry.register(
            "rapport_record_queue_waiting",
            "RecordResponse calls waiting for their batch to be written",
            record_queue_waiting.clone(),
        );
        let record_queue_limit = Gauge::<i64>::default();
        registry.register(
            "rapport_record_queue_limit",
            "The most RecordResponse calls that may wait for their batch (RAPPORT_RECORD_QUEUE_LIMIT); \
             more are refused with RESOURCE_EXHAUSTED",
            record_queue_limit.clone(),
        );
        let fanout_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "rapport_event_fanout_lag_seconds",
            "Age of the oldest event the webhook fan-out has not passed yet (0 when none waits; NaN while the \
             database does not answer), read from the database at scrape time",
            fanout_lag.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rapport_webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            webhook_deliveries.clone(),
        );
        let retention_removed = Family::<KindLabels, Counter>::default();
        registry.register(
            "rapport_retention_removed",
            "Rows the retention worker removed or emptied past the tenants' retention, by kind \
             (activity_events, comments, invitations, delivery_logs)",
            retention_removed.clone(),
        );
        let rollup_rows_folded = Counter::default();
        registry.register(
            "rapport_rollup_rows_folded",
            "Counter rows of old days the fold moved into their keys' one row (gap and revenue histograms)",
            rollup_rows_folded.clone(),
        );
        let rate_limit_backend_errors = Counter::default();
        registry.register(
            "rapport_rate_limit_backend_errors",
            "Rate-limit checks that found the shared buckets (Redis) unreachable or too slow and fell back to \
             the replica's own limits",
            rate_limit_backend_errors.clone(),
        );
        let response_batch_size = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
        registry.register(
            "rapport_response_batch_size",
            "RecordResponse calls written per batch (group commit: one statement or one transaction; 1 when calls do not overlap)",
            response_batch_size.clone(),
        );
        let panics = Family::<RouteLabels, Counter>::default();
        registry.register(
            "rapport_panics",
            "Panics caught while handling a request (answered INTERNAL, or HTTP 500), by route",
            panics.clone(),
        );
        let http_seconds = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_server_request_duration_seconds",
            "HTTP gateway requests (JSON, gRPC-Web, the hosted page, the widget): time to the response headers, \
             in seconds, by method, route template and status",
            http_seconds.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            rpc_started,
            rpc_handled,
            rpc_seconds,
            responses_recorded,
            follow_ups_opened,
            follow_ups_open,
            follow_ups_overdue,
            db_up,
            pool_connections,
            pool_max,
            record_queue_waiting,
            record_queue_limit,
            fanout_lag,
            webhook_deliveries,
            retention_removed,
            rollup_rows_folded,
            rate_limit_backend_errors,
            response_batch_size,
            panics,
            http_seconds,
        }))
    }

    /// An RPC arrived.
    pub fn rpc_started(&self, rpc: &RpcLabels) {
        self.0.rpc_started.get_or_create(rpc).inc();
    }

    /// An RPC finished with `code` (the numeric gRPC status) after `elapsed`.
    pub fn rpc_handled(&self, rpc: &RpcLabels, code: i32, elapsed: Duration) {
        let labels = HandledLabels {
            grpc_type: rpc.grpc_type,
            grpc_service: rpc.grpc_service.clone(),
            grpc_method: rpc.grpc_method.clone(),
            grpc_code: code_name(code),
        };
        self.0.rpc_handled.get_or_create(&labels).inc();
        self.0.rpc_seconds.get_or_create(rpc).observe(elapsed.as_secs_f64());
    }

    /// A panic was caught while handling a request on `route` (a gRPC method's path
    /// such as `/rapport.v1.SurveyService/RecordResponse`, or an HTTP route template;
    /// callers pass only known routes or `unknown`).
    pub fn panicked(&self, route: &str) {
        self.0.panics.get_or_create(&RouteLabels { route: route.to_owned() }).inc();
    }

    /// An HTTP request on `route` (a template, or `unmatched`) was answered `status`
    /// after `elapsed`. Methods outside the standard ones are labelled `_OTHER`.
    pub fn http_handled(&self, method: &http::Method, route: &str, status: u16, elapsed: Duration) {
        let http_request_method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::CONNECT => "CONNECT",
            http::Method::TRACE => "TRACE",
            _ => "_OTHER",
        };
        let labels =
            HttpLabels { http_request_method, http_route: route.to_owned(), http_response_status_code: status };
        self.0.http_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// A response was recorded, opening a follow-up or not (call after its transaction
    /// committed).
    pub fn response_recorded(&self, kind: SurveyKind, bucket: Bucket, opened_follow_up: bool) {
        let labels = ResponseLabels { kind: kind.as_str(), bucket: bucket.as_str() };
        self.0.responses_recorded.get_or_create(&labels).inc();
        if opened_follow_up {
            self.follow_up_opened(kind);
        }
    }

    /// A transaction wrote `n` RecordResponse calls' answers (after it committed).
    pub fn response_batch_written(&self, n: usize) {
        self.0.response_batch_size.observe(n as f64);
    }

    /// A follow-up was opened (call after its transaction committed).
    pub fn follow_up_opened(&self, kind: SurveyKind) {
        self.0.follow_ups_opened.get_or_create(&KindLabels { kind: kind.as_str() }).inc();
    }

    /// A webhook delivery attempt ended with `outcome` (e.g. `delivered`, `retry`,
    /// `dead_lettered`), one per attempt, after its outcome is recorded (docs/webhooks.md).
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.0.webhook_deliveries.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Reads the gauges that describe the database and the process at scrape time:
    /// whether the database answers, open and overdue follow-ups and the fan-out's lag
    /// (queries, bounded by a timeout; while the database does not answer they are left
    /// out rather than reported stale), the connection pool and the answer queue.
    pub async fn refresh(&self, scrape: Scrape<'_>) {
        let db = scrape.db;
        self.0.db_up.set(i64::from(!db.is_down()));
        let figures = async {
            let open = store::ops::unclosed_follow_ups(db).await?;
            let overdue = store::ops::overdue_follow_ups(db, scrape.now).await?;
            let lag = store::ops::fan_out_lag(db, scrape.now).await?;
            Ok::<_, crate::error::AppError>((open, overdue, lag))
        };
        let figures = match tokio::time::timeout(REFRESH_TIMEOUT, figures).await {
            Ok(Ok(figures)) => Some(figures),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "metrics: could not read the database figures");
                None
            }
            Err(_) => {
                tracing::debug!("metrics: reading the database figures timed out");
                None
            }
        };
        match figures {
            Some((open, overdue, lag)) => {
                for (status, n) in open {
                    self.0.follow_ups_open.get_or_create(&StatusLabels { status: status.as_str() }).set(n);
                }
                for (status, n) in overdue {
                    self.0.follow_ups_overdue.get_or_create(&StatusLabels { status: status.as_str() }).set(n);
                }
                self.0.fanout_lag.set(lag.num_milliseconds() as f64 / 1000.0);
            }
            None => {
                // Unknown, not stale, until the database answers again: the follow-up
                // series are left out, and the lag (one series) is NaN.
                self.0.follow_ups_open.clear();
                self.0.follow_ups_overdue.clear();
                self.0.fanout_lag.set(f64::NAN);
            }
        }
        let pool = store::ops::pool_stats(db);
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.0.pool_connections.get_or_create(&StateLabels { state: "in_use" }).set(gauge(pool.in_use));
        self.0.pool_connections.get_or_create(&StateLabels { state: "idle" }).set(gauge(pool.idle));
        self.0.pool_max.set(gauge(pool.max));
        let (waiting, limit) = scrape.record_queue;
        self.0.record_queue_waiting.set(gauge(waiting as u64));
        self.0.record_queue_limit.set(gauge(limit as u64));
    }

    /// The registry in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }
}

/// A gRPC status code's name as grpc-go (and so go-grpc-prometheus) prints it.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        // Not a gRPC code: a misbehaving handler; grpc-go reports these as Unknown too.
        _ => "Unknown",
    }
}

/// The use-cases' counters are this registry's.
impl crate::service::Counters for Metrics {
    fn response_batch_written(&self, n: usize) {
        Metrics::response_batch_written(self, n)
    }
    fn response_recorded(&self, kind: SurveyKind, bucket: Bucket, opened_follow_up: bool) {
        Metrics::response_recorded(self, kind, bucket, opened_follow_up)
    }
    fn follow_up_opened(&self, kind: SurveyKind) {
        Metrics::follow_up_opened(self, kind)
    }
    fn webhook_delivery(&self, outcome: &'static str) {
        Metrics::webhook_delivery(self, outcome)
    }
    fn retention_removed(&self, kind: &'static str, n: u64) {
        self.0.retention_removed.get_or_create(&KindLabels { kind }).inc_by(n);
    }
    fn rollup_rows_folded(&self, n: u64) {
        self.0.rollup_rows_folded.inc_by(n);
    }
    fn rate_limit_backend_error(&self) {
        self.0.rate_limit_backend_errors.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_has_the_name_grpc_go_gives_it() {
        // From grpc-go codes/code_string.go.
        let expected = [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        for (code, name) in expected.iter().enumerate() {
            assert_eq!(code_name(code as i32), *name);
        }
        assert_eq!(code_name(17), "Unknown");
        assert_eq!(code_name(-1), "Unknown");
    }

    #[test]
    fn every_family_is_described_once_it_has_a_series() {
        let m = Metrics::new();
        assert!(!m.encode().contains("grpc_server_started"), "a family without series is left out");
        let rpc = RpcLabels {
            grpc_type: "unary",
            grpc_service: Arc::new("rapport.v1.SurveyService".into()),
            grpc_method: Arc::new("RecordResponse".into()),
        };
        m.rpc_started(&rpc);
        m.rpc_handled(&rpc, 3, Duration::from_millis(2));
        m.response_recorded(SurveyKind::Nps, Bucket::Detractor, true);
        m.webhook_delivery("delivered");
        m.panicked("/rapport.v1.SurveyService/RecordResponse");
        m.http_handled(&http::Method::GET, "/s/{token}", 200, Duration::from_millis(1));
        m.http_handled(&http::Method::from_bytes(b"BREW").unwrap(), "unmatched", 404, Duration::from_millis(1));
        m.0.follow_ups_open.get_or_create(&StatusLabels { status: "open" }).set(1);
        m.0.pool_connections.get_or_create(&StateLabels { state: "idle" }).set(1);
        m.0.follow_ups_overdue.get_or_create(&StatusLabels { status: "open" }).set(2);
        m.0.fanout_lag.set(1.5);
        let text = m.encode();
        for name in [
            "grpc_server_started",
            "grpc_server_handled",
            "grpc_server_handling_seconds",
            "rapport_responses_recorded",
            "rapport_follow_ups_opened",
            "rapport_follow_ups_open",
            "rapport_follow_ups_overdue",
            "rapport_db_up",
            "rapport_db_pool_connections",
            "rapport_db_pool_max_connections",
            "rapport_record_queue_waiting",
            "rapport_record_queue_limit",
            "rapport_event_fanout_lag_seconds",
            "rapport_webhook_deliveries",
            "rapport_rate_limit_backend_errors",
            "rapport_panics",
            "http_server_request_duration_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF:\n{text}");
        assert!(text.contains(
            "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"rapport.v1.SurveyService\",\
             grpc_method=\"RecordResponse\",grpc_code=\"InvalidArgument\"} 1"
        ));
        assert!(text.contains("rapport_follow_ups_opened_total{kind=\"nps\"} 1"), "{text}");
        assert!(text.contains("\nrapport_follow_ups_overdue{status=\"open\"} 2\n"), "{text}");
        assert!(text.contains("\nrapport_event_fanout_lag_seconds 1.5\n"), "{text}");
        assert!(text.contains("rapport_panics_total{route=\"/rapport.v1.SurveyService/RecordResponse\"} 1"), "{text}");
        assert!(
            text.contains(
                "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/s/{token}\",\
                 http_response_status_code=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("http_request_method=\"_OTHER\""), "{text}");
    }
}
