//! Builds the server from settings and runs it until a shutdown signal: gRPC
//! services, health that follows the database, reflection, and a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::ServeArgs;
use crate::grpc::pb::engagement_service_server::EngagementServiceServer;
use crate::grpc::pb::follow_up_service_server::FollowUpServiceServer;
use crate::grpc::pb::survey_service_server::SurveyServiceServer;
use crate::grpc::{self, EngagementApi, FollowUpApi, SurveyApi};
use crate::service::{Clock, Services};
use crate::store::{Db, DbSettings};

/// Largest request accepted (DESIGN §10).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    services: Services,
    args: ServeArgs,
}

impl Application {
    /// Connects to the database, migrates it if asked, and binds the gRPC port.
    pub async fn build(db: &DbSettings, args: ServeArgs, clock: Clock) -> anyhow::Result<Self> {
        let db = Db::connect(db).await?;
        if args.migrate_on_start {
            db.migrate().await?;
        }
        let services = Services { db, clock };
        let listener = TcpListener::bind(args.grpc_addr).await?;
        Ok(Application { listener, services, args })
    }

    /// The bound address (useful when built with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, stops accepting
    /// and lets in-flight calls finish for up to the grace period.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, services, args } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_all(&reporter, ServingStatus::NotServing).await;
        let health_task = tokio::spawn(watch_database(
            services.db.clone(),
            reporter.clone(),
            Duration::from_millis(args.health_interval_ms.max(50)),
        ));

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let surveys =
            SurveyServiceServer::new(SurveyApi::new(services.clone())).max_decoding_message_size(MAX_REQUEST_BYTES);
        let follow_ups =
            FollowUpServiceServer::new(FollowUpApi::new(services.clone())).max_decoding_message_size(MAX_REQUEST_BYTES);
        let engagement = EngagementServiceServer::new(EngagementApi::new(services.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(surveys)
            .add_service(follow_ups)
            .add_service(engagement)
            // Without TCP_NODELAY a response written in two pieces waits ~40 ms for the
            // client's delayed ACK (Nagle); large replies such as profiles hit it.
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stop_rx.await;
                },
            );
        let mut server = tokio::spawn(server);

        tokio::select! {
            res = &mut server => {
                health_task.abort();
                return Ok(res??);
            }
            _ = shutdown => {}
        }
        tracing::info!("shutting down: draining in-flight calls");
        health_task.abort();
        set_all(&reporter, ServingStatus::NotServing).await;
        let _ = stop_tx.send(());
        match tokio::time::timeout(Duration::from_secs(args.shutdown_grace_seconds), &mut server).await {
            Ok(res) => res??,
            Err(_) => {
                tracing::warn!("drain took longer than the grace period; stopping");
                server.abort();
            }
        }
        services.db.close().await;
        Ok(())
    }
}

async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status("rapport.v1.SurveyService", status).await;
    reporter.set_service_status("rapport.v1.FollowUpService", status).await;
    reporter.set_service_status("rapport.v1.EngagementService", status).await;
}

/// Keeps health in step with the database: SERVING only while it answers.
async fn watch_database(db: Db, reporter: HealthReporter, every: Duration) {
    let mut last = None;
    loop {
        let up = tokio::time::timeout(every.max(Duration::from_secs(1)), db.ping()).await.unwrap_or(false);
        let status = if up { ServingStatus::Serving } else { ServingStatus::NotServing };
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
