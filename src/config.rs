//! Command line and environment. Every flag has an environment variable
//! (`RAPPORT_…`, `DATABASE_URL`); nothing secret is taken on the command line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store::DbSettings;

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rapport.db?mode=rwc";

#[derive(Debug, Parser)]
#[command(
    name = "rapport",
    version,
    about = "Customer-engagement service: NPS, CSAT and CES surveys with follow-ups, over gRPC"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Load-generate against a server and compare with raw database inserts.
    Bench(crate::bench::BenchArgs),
    /// Load-generate engagement: RecordEvents throughput and profile/metric latencies.
    BenchEngagement(crate::bench_engagement::EngagementBenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first secret key (shown once).
    Create { name: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key for a tenant (by name or id) and print it (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        /// A publishable key (`rk_pub_…`) for in-app forms instead of a secret key.
        #[arg(long)]
        publishable: bool,
    },
    /// Revoke a key by its id; calls with it fail at once.
    Revoke { key_id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Json,
    Text,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Database URL: `postgres://…` or `sqlite://path?mode=rwc`. Default: ./rapport.db (SQLite).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most connections in the database pool.
    #[arg(long, env = "RAPPORT_DB_MAX_CONNECTIONS", default_value_t = 32, global = true)]
    pub db_max_connections: u32,
    /// Seconds a call waits for a database connection before failing with UNAVAILABLE.
    #[arg(long, env = "RAPPORT_DB_ACQUIRE_TIMEOUT_SECONDS", default_value_t = 5, global = true)]
    pub db_acquire_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "RAPPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `rapport=debug,info`.
    #[arg(long, env = "RAPPORT_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
}

impl CommonArgs {
    pub fn db(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone().unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_seconds.max(1)),
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address of the gRPC server.
    #[arg(long, env = "RAPPORT_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,
    /// Apply migrations before serving.
    #[arg(long, env = "RAPPORT_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// On an empty database, create the tenant `default` and print its key once.
    #[arg(long, env = "RAPPORT_BOOTSTRAP_TENANT", default_value_t = true, action = clap::ArgAction::Set)]
    pub bootstrap_tenant: bool,
    /// After SIGTERM, how long in-flight calls may take to finish.
    #[arg(long, env = "RAPPORT_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    /// How often health checks the database, in milliseconds.
    #[arg(long, env = "RAPPORT_HEALTH_INTERVAL_MS", default_value_t = 1000)]
    pub health_interval_ms: u64,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            grpc_addr: "127.0.0.1:0".parse().expect("a valid address"),
            migrate_on_start: true,
            bootstrap_tenant: false,
            shutdown_grace_seconds: 20,
            health_interval_ms: 1000,
        }
    }
}
