//! Builds the server from settings and runs it until a shutdown signal: gRPC
//! services, health that follows the database, reflection, the HTTP gateway (JSON,
//! gRPC-Web, the hosted page and widget) on its own port, and a bounded drain; and
//! beside it the admin HTTP listener with Prometheus `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::ServeArgs;
use crate::grpc::gate::Gate;
use crate::grpc::pb::admin_service_server::AdminServiceServer;
use crate::grpc::pb::engagement_service_server::EngagementServiceServer;
use crate::grpc::pb::event_service_server::EventServiceServer;
use crate::grpc::pb::follow_up_service_server::FollowUpServiceServer;
use crate::grpc::pb::import_service_server::ImportServiceServer;
use crate::grpc::pb::insight_service_server::InsightServiceServer;
use crate::grpc::pb::privacy_service_server::PrivacyServiceServer;
use crate::grpc::pb::survey_service_server::SurveyServiceServer;
use crate::grpc::pb::webhook_service_server::WebhookServiceServer;
use crate::grpc::{
    self, AdminApi, EngagementApi, EventApi, FollowUpApi, ImportApi, InsightApi, PrivacyApi, SurveyApi, WebhookApi,
};
use crate::service::in_app::RateLimits;
use crate::service::{Clock, Services};
use crate::store::{Db, DbSettings};
use crate::telemetry::rpc::RpcLayer;

pub use crate::grpc::MAX_REQUEST_BYTES;

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    admin_listener: TcpListener,
    http_listener: TcpListener,
    services: Services,
    metrics: crate::telemetry::Metrics,
    /// The rate limits of in-app calls: the replica's own, or shared in Redis.
    limits: RateLimits,
    args: ServeArgs,
}

impl Application {
    /// Connects to the database, migrates it if asked, and binds the gRPC and admin ports.
    pub async fn build(db: &DbSettings, args: ServeArgs, clock: Clock) -> anyhow::Result<Self> {
        crate::grpc::admin::check_operator_token(args.secrets.operator_token.as_deref())?;
        let url = db.url.clone();
        let db = Db::connect(db).await?;
        // After connecting, so a bad URL is reported as such first.
        let keyring = crate::secret_keys::keyring(&args.secrets, &url)?;
        if args.migrate_on_start {
            db.migrate().await?;
        }
        let metrics = crate::telemetry::Metrics::new();
        let services = Services::new(db, clock)
            .with_counters(Arc::new(metrics.clone()))
            .with_outbox(args.outbox.settings()?)
            .with_record_queue_limit(args.record_queue_limit)
            .with_key_cache(std::time::Duration::from_secs(args.key_cache_seconds))
            .with_keyring(keyring);
        // Secrets written before they were sealed are sealed now; a key that sealed
        // something must still be configured (docs/privacy.md).
        services.check_secret_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let sealed = services.seal_plain_secrets().await.context("sealing stored secrets")?;
        if sealed.total() > 0 {
            tracing::info!(
                webhook_secrets = sealed.webhook_secrets,
                identity_secrets = sealed.identity_secrets,
                "sealed secrets stored in plain text"
            );
        }
        // A bad Redis URL stops the start; a Redis that is down does not (fail open).
        let limits = match args.shared_rate_limits() {
            Some(shared) => RateLimits::shared(args.rate_limits(), &shared, Arc::new(metrics.clone()))?,
            None => RateLimits::new(args.rate_limits()),
        };
        let listener = TcpListener::bind(args.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC listener (RAPPORT_GRPC_ADDR) on {}", args.grpc_addr))?;
        let admin_listener = TcpListener::bind(args.admin_addr)
            .await
            .with_context(|| format!("binding the admin listener (RAPPORT_ADMIN_ADDR) on {}", args.admin_addr))?;
        let http_listener = TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("binding the HTTP gateway (RAPPORT_HTTP_ADDR) on {}", args.http_addr))?;
        Ok(Application { listener, admin_listener, http_listener, services, metrics, limits, args })
    }

    /// The bound address (useful when built with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The bound address of the admin HTTP listener (`/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener.local_addr().expect("a bound listener has an address")
    }

    /// The bound address of the HTTP gateway.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().expect("a bound listener has an address")
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, stops accepting
    /// and lets in-flight calls finish for up to the grace period.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, admin_listener, http_listener, services, metrics, limits, args } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_all(&reporter, ServingStatus::NotServing).await;
        let health_every = Duration::from_millis(args.health_interval_ms.max(50));
        let health_task = tokio::spawn(watch_database(services.db.clone(), reporter.clone(), health_every));

        // Every call passes the database check, then the gate: who may call each method,
        // and the rate limits of in-app and token calls (grpc::gate). The database check
        // comes first (the gate may look a key up): while health finds the database
        // unreachable, calls fail at once instead of waiting for a connection.
        let gate = Gate::new(services.clone(), limits, args.client_ip_header()?);
        let db_up = DbUp { db: services.db.clone(), retry_after: health_every.max(Duration::from_secs(1)) };
        let guard = Guard { gate, db_up };
        let api = |s: &Services| Api {
            surveys: guard
                .wrap(SurveyServiceServer::new(SurveyApi::new(s.clone())).max_decoding_message_size(MAX_REQUEST_BYTES)),
            follow_ups: guard.wrap(
                FollowUpServiceServer::new(FollowUpApi::new(s.clone())).max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
            webhooks: guard.wrap(
                WebhookServiceServer::new(WebhookApi::new(s.clone())).max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
            engagement: guard.wrap(
                EngagementServiceServer::new(EngagementApi::new(s.clone()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
            events: guard.wrap(EventServiceServer::new(EventApi::new(s.clone()))),
            imports: guard
                .wrap(ImportServiceServer::new(ImportApi::new(s.clone())).max_decoding_message_size(MAX_REQUEST_BYTES)),
            insight: guard.wrap(
                InsightServiceServer::new(InsightApi::new(s.clone())).max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
            privacy: guard.wrap(
                PrivacyServiceServer::new(PrivacyApi::new(s.clone())).max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
            // Behind the gate too: a caller without a key is held to the per-address limit.
            admin: guard.wrap(
                AdminServiceServer::new(AdminApi::new(s.clone(), args.secrets.operator_token.as_deref()))
                    .max_decoding_message_size(MAX_REQUEST_BYTES),
            ),
        };
        let api = api(&services);

        // Metrics and the span of every RPC, health and reflection included, and the
        // gateway's (which calls them in process); it answers INTERNAL to a panic.
        let rpc_layer = RpcLayer::new(
            metrics.clone(),
            &[
                grpc::pb::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ],
        )?;
        // The HTTP gateway calls the same services (gRPC-Web and the JSON routes).
        let grpc_routes = Routes::new(api.surveys.clone())
            .add_service(api.follow_ups.clone())
            .add_service(api.engagement.clone())
            .add_service(api.webhooks.clone())
            .add_service(api.events.clone())
            .add_service(api.imports.clone())
            .add_service(api.insight.clone())
            .add_service(api.privacy.clone())
            .add_service(health_service.clone());
        let gateway = crate::http::router(
            services.clone(),
            grpc_routes,
            &rpc_layer,
            crate::http::HttpSettings {
                allowed_origins: args.allowed_origins(),
                client_ip_header: args.client_ip_header()?,
            },
        )?;
        let (http_stop, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let http = tokio::spawn(crate::http::serve(http_listener, gateway, async {
            let _ = http_stop_rx.await;
        }));

        // The admin listener keeps serving while gRPC drains, and stops after it.
        let (admin_stop, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let admin = tokio::spawn(crate::telemetry::admin::serve(admin_listener, metrics, services.clone(), async {
            let _ = admin_stop_rx.await;
        }));

        let (grpc_stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (reflection_v1, reflection_v1alpha) = reflection()?;
        let grpc = tonic::transport::Server::builder()
            .layer(rpc_layer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(api.surveys)
            .add_service(api.follow_ups)
            .add_service(api.engagement)
            .add_service(api.webhooks)
            .add_service(api.events)
            .add_service(api.imports)
            .add_service(api.insight)
            .add_service(api.privacy)
            .add_service(api.admin)
            .serve_with_incoming_shutdown(
                // Small gRPC frames must not wait for Nagle's algorithm (≈40 ms a call).
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stop_rx.await;
                },
            );
        let grpc = tokio::spawn(grpc);
        let workers = crate::workers::spawn(services.clone());
        let mut running = Running { grpc, http, admin, health: health_task, grpc_stop, http_stop, admin_stop };
        // If this future is dropped (a crash-like stop), everything it started stops too:
        // its tasks are aborted, and the streams and tracked tasks told to stop.
        let _abort = running.abort_on_drop(&workers);
        let _cancel = services.shutdown.clone().drop_guard();

        tokio::select! {
            res = &mut running.grpc => {
                running.health.abort();
                running.http.abort();
                services.shutdown.cancel();
                running.admin.abort();
                return Ok(res??);
            }
            res = &mut running.http => {
                running.health.abort();
                running.grpc.abort();
                services.shutdown.cancel();
                return res?;
            }
            _ = shutdown => {}
        }
        running.drain(&services, &reporter, Duration::from_secs(args.shutdown_grace_seconds)).await
    }
}

/// The API's services, each behind the [`Guard`].
struct Api<A, B, C, D, E, F, G, H, I> {
    surveys: A,
    follow_ups: B,
    webhooks: C,
    engagement: D,
    events: E,
    imports: F,
    insight: G,
    privacy: H,
    admin: I,
}

/// What every API service is wrapped in: the database check outside, the gate inside.
struct Guard {
    gate: Gate,
    db_up: DbUp,
}

impl Guard {
    fn wrap<S>(&self, service: S) -> DbUpService<crate::grpc::gate::Gated<S>> {
        self.db_up.wrap(self.gate.wrap(service))
    }
}

/// gRPC server reflection, v1 and v1alpha, over rapport's and health's descriptors.
fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(grpc::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(grpc::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok((v1, v1alpha))
}

/// The serving tasks of a running server and the senders that stop them.
struct Running {
    grpc: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    http: tokio::task::JoinHandle<anyhow::Result<()>>,
    admin: tokio::task::JoinHandle<std::io::Result<()>>,
    health: tokio::task::JoinHandle<()>,
    grpc_stop: tokio::sync::oneshot::Sender<()>,
    http_stop: tokio::sync::oneshot::Sender<()>,
    admin_stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// Aborts the serving tasks and `workers` when dropped.
    fn abort_on_drop(&self, workers: &[tokio::task::JoinHandle<()>]) -> AbortOnDrop {
        AbortOnDrop(
            [self.grpc.abort_handle(), self.http.abort_handle(), self.health.abort_handle(), self.admin.abort_handle()]
                .into_iter()
                .chain(workers.iter().map(|w| w.abort_handle()))
                .collect(),
        )
    }

    /// The graceful stop: NOT_SERVING, stop accepting, let in-flight calls, workers and
    /// batch writers finish within `grace`, then stop the admin listener and close the pool.
    async fn drain(mut self, services: &Services, reporter: &HealthReporter, grace: Duration) -> anyhow::Result<()> {
        tracing::info!("shutting down: draining in-flight calls and the current deliveries");
        self.health.abort();
        set_all(reporter, ServingStatus::NotServing).await;
        let _ = self.grpc_stop.send(());
        let _ = self.http_stop.send(());
        // Event streams end now (UNAVAILABLE; clients resume from after_sequence), so
        // they do not hold the drain; workers stop after the step they are in.
        services.shutdown.cancel();
        services.tasks.close();
        let drained = async {
            let served = (&mut self.grpc).await;
            let http = (&mut self.http).await;
            // Workers, batch writers, snapshot refreshes and streams.
            services.tasks.wait().await;
            (served, http)
        };
        match tokio::time::timeout(grace, drained).await {
            Ok((served, http)) => {
                served??;
                http??;
            }
            Err(_) => {
                tracing::warn!("drain took longer than the grace period; stopping");
                self.grpc.abort();
                self.http.abort();
            }
        }
        let _ = self.admin_stop.send(());
        match tokio::time::timeout(Duration::from_secs(1), self.admin).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "admin listener failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("admin listener did not stop in time"),
        }
        services.db.clone().close().await;
        Ok(())
    }
}

/// A tonic service behind the database check: while the health watcher finds the
/// database unreachable ([`Db::is_down`]), a call fails at once with UNAVAILABLE and
/// RetryInfo, instead of waiting for a connection until its deadline.
#[derive(Clone)]
struct DbUp {
    db: Db,
    retry_after: Duration,
}

impl DbUp {
    fn wrap<S>(&self, inner: S) -> DbUpService<S> {
        DbUpService { check: self.clone(), inner }
    }

    fn refusal(&self) -> tonic::Status {
        use tonic_types::StatusExt as _;
        let mut details = tonic_types::ErrorDetails::new();
        details.set_retry_info(Some(self.retry_after));
        tonic::Status::with_error_details(tonic::Code::Unavailable, "the database is unreachable; retry later", details)
    }
}

#[derive(Clone)]
struct DbUpService<S> {
    check: DbUp,
    inner: S,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for DbUpService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<http::Request<B>> for DbUpService<S>
where
    S: tower_service::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if self.check.db.is_down() {
            let refused = self.check.refusal().into_http();
            return Box::pin(std::future::ready(Ok(refused)));
        }
        Box::pin(self.inner.call(req))
    }
}

/// Aborts tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status("rapport.v1.SurveyService", status).await;
    reporter.set_service_status("rapport.v1.FollowUpService", status).await;
    reporter.set_service_status("rapport.v1.EngagementService", status).await;
    reporter.set_service_status("rapport.v1.ImportService", status).await;
    reporter.set_service_status("rapport.v1.WebhookService", status).await;
    reporter.set_service_status("rapport.v1.EventService", status).await;
    reporter.set_service_status("rapport.v1.InsightService", status).await;
    reporter.set_service_status("rapport.v1.PrivacyService", status).await;
    reporter.set_service_status("rapport.v1.AdminService", status).await;
}

/// Keeps health in step with the database: SERVING only while it answers.
async fn watch_database(db: Db, reporter: HealthReporter, every: Duration) {
    let mut last = None;
    loop {
        let up = tokio::time::timeout(every.max(Duration::from_secs(1)), db.ping()).await.unwrap_or(false);
        let status = if up { ServingStatus::Serving } else { ServingStatus::NotServing };
        // Calls fail fast while it is down ([`DbUp`]); this loop keeps probing.
        db.set_reachable(up);
        if last != Some(up) {
            if up {
                tracing::info!("database reachable: serving");
            } else {
                tracing::warn!("database unreachable: not serving");
            }
            set_all(&reporter, status).await;
            last = Some(up);
        }
        tokio::time::sleep(every).await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
