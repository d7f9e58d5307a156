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
    /// The server's options: global, so `rapport --http-addr …` (no sub-command means
    /// `serve`) and `rapport serve --http-addr …` both take them, and both helps list them.
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (the default; its options may come before or after `serve`).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Send history from files (answers, activity) to a running server.
    #[command(subcommand)]
    Import(crate::import_file::ImportCommand),
    /// The keys that seal secrets at rest (docs/privacy.md).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Erase or export one customer's data (docs/privacy.md).
    #[command(subcommand)]
    Customer(CustomerCommand),
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Erase every personal datum of a customer; their scores stay as anonymous counts.
    Erase {
        /// The tenant, by name or id.
        #[arg(long)]
        tenant: String,
        /// The CRM's id of the customer.
        customer_id: String,
    },
    /// Print everything rapport holds about a customer as one JSON document (docs/privacy.md).
    Export {
        /// The tenant, by name or id.
        #[arg(long)]
        tenant: String,
        /// The CRM's id of the customer.
        customer_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key as `id:base64`, to put first in RAPPORT_SECRET_KEYS (or the
    /// key file) before `rapport secrets rotate`.
    NewKey,
    /// Re-seal every stored secret under the newest configured key, so older keys can
    /// then be removed. Idempotent; safe while servers run.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first secret key (shown once).
    Create { name: String },
    /// Turn identity verification of publishable-key calls on or off. Turning it on
    /// prints the HMAC secret (shown once) the first time, and again with --rotate.
    IdentityVerification {
        /// The tenant, by name or id.
        #[arg(long)]
        tenant: String,
        /// Require a valid `customer_hash` on publishable-key calls.
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        /// Stop requiring it (the secret is kept).
        #[arg(long)]
        disable: bool,
        /// With --enable: replace the secret with a new one (the old one stops working at once).
        #[arg(long, requires = "enable")]
        rotate: bool,
    },
    /// Set the default look of the tenant's hosted survey pages and widgets (each
    /// survey's own `branding` and `language` win). Options not given keep their value;
    /// an empty value ("") clears one. Without options, prints the current values.
    Branding {
        /// The tenant, by name or id.
        #[arg(long)]
        tenant: String,
        /// Shown above the question, e.g. "Acme" (at most 100 characters).
        #[arg(long)]
        display_name: Option<String>,
        /// Accent colour as #rrggbb.
        #[arg(long)]
        accent_color: Option<String>,
        /// An https:// URL of a logo image.
        #[arg(long)]
        logo_url: Option<String>,
        /// Language of the fixed texts, a BCP 47 tag such as de or pt-BR (empty: the browser's).
        #[arg(long)]
        language: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key for a tenant (by name or id) and print it (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        /// A publishable key (`rk_pub_…`) for in-app forms instead of a secret key.
        #[arg(long, conflicts_with = "read")]
        publishable: bool,
        /// A read-only key (`rk_read_…`): it may call only the Get and List methods,
        /// e.g. for a console on a wall display.
        #[arg(long)]
        read: bool,
        /// The key stops working after this long, e.g. `90d` or `12h` (default: never).
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "expires_at")]
        expires_in: Option<Duration>,
        /// The key stops working at this time (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List a tenant's keys: id, kind, prefix, created, last used, expiry, revoked.
    List {
        #[arg(long)]
        tenant: String,
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

/// What stands between rapport and PostgreSQL (`RAPPORT_DB_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbPooler {
    /// PostgreSQL itself, or a pooler in session mode.
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`).
    Transaction,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Database URL: `postgres://…` or `sqlite://path?mode=rwc`. Default: ./rapport.db (SQLite).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL: a connection to PostgreSQL itself, not through a transaction-pooling
    /// PgBouncer, for LISTEN (replicas wake each other's event streams and workers
    /// with NOTIFY). Defaults to DATABASE_URL.
    #[arg(long, env = "RAPPORT_DIRECT_DATABASE_URL", global = true, hide_env_values = true)]
    pub direct_database_url: Option<String>,
    /// Most connections in the database pool. On PostgreSQL two more connections, of
    /// their own, carry the batched writes of RecordResponse.
    #[arg(long, env = "RAPPORT_DB_MAX_CONNECTIONS", default_value_t = 32, global = true)]
    pub db_max_connections: u32,
    /// Seconds a call waits for a database connection before failing with UNAVAILABLE.
    #[arg(long, env = "RAPPORT_DB_ACQUIRE_TIMEOUT_SECONDS", default_value_t = 5, global = true)]
    pub db_acquire_timeout_seconds: u64,
    /// PostgreSQL: seconds a statement may run before the server cancels it
    /// (`statement_timeout`; the call fails with UNAVAILABLE); 0: no limit. Migrations
    /// run without it.
    #[arg(long, env = "RAPPORT_DB_STATEMENT_TIMEOUT_SECONDS", default_value_t = 60, global = true)]
    pub db_statement_timeout_seconds: u64,
    /// PostgreSQL: TCP keepalive of the database connections, on both ends: seconds
    /// without traffic before the first probe, then a probe every third of that;
    /// three unanswered probes end the connection. 0: the operating system's default.
    #[arg(long, env = "RAPPORT_DB_TCP_KEEPALIVE_SECONDS", default_value_t = 30, global = true)]
    pub db_tcp_keepalive_seconds: u64,
    /// Seconds each step of a batched RecordResponse write (begin, statements,
    /// commit) may take before the batch fails with UNAVAILABLE.
    #[arg(long, env = "RAPPORT_DB_BATCH_TIMEOUT_SECONDS", default_value_t = 10, global = true)]
    pub db_batch_timeout_seconds: u64,
    /// PostgreSQL: what DATABASE_URL points at. `transaction`: a pooler in transaction
    /// mode, such as PgBouncer with `pool_mode = transaction`; each statement is then
    /// sent so that it runs whole on one server connection, and nothing is set per
    /// session. `none`: PostgreSQL itself (or a pooler in session mode).
    #[arg(long, env = "RAPPORT_DB_POOLER", value_enum, default_value_t = DbPooler::None, global = true)]
    pub db_pooler: DbPooler,
    /// Log format.
    #[arg(long, env = "RAPPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `rapport=debug,info`.
    #[arg(long, env = "RAPPORT_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
}

impl CommonArgs {
    pub fn db(&self) -> DbSettings {
        let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        DbSettings {
            url: self.database_url.clone().unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            direct_url: self.direct_database_url.clone().filter(|u| !u.trim().is_empty()),
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_seconds.max(1)),
            statement_timeout: seconds(self.db_statement_timeout_seconds),
            tcp_keepalive: seconds(self.db_tcp_keepalive_seconds),
            batch_timeout: Duration::from_secs(self.db_batch_timeout_seconds.max(1)),
            transaction_pooler: self.db_pooler == DbPooler::Transaction,
        }
    }
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Server options (serve, the default sub-command)")]
pub struct ServeArgs {
    /// Address of the gRPC server.
    #[arg(long, global = true, env = "RAPPORT_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,
    /// Apply migrations before serving.
    #[arg(long, global = true, env = "RAPPORT_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// On an empty database, create the tenant `default` and print its key once.
    #[arg(long, global = true, env = "RAPPORT_BOOTSTRAP_TENANT", default_value_t = true, action = clap::ArgAction::Set)]
    pub bootstrap_tenant: bool,
    /// After SIGTERM, how long in-flight calls may take to finish. Open WatchEvents
    /// streams end at once with UNAVAILABLE (clients resume from after_sequence);
    /// workers finish the delivery they are making.
    #[arg(long, global = true, env = "RAPPORT_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    /// Most RecordResponse calls waiting for their batch to be written; past it calls
    /// fail at once with RESOURCE_EXHAUSTED (and RetryInfo) instead of queueing.
    #[arg(long, global = true, env = "RAPPORT_RECORD_QUEUE_LIMIT", default_value_t = crate::service::responses::DEFAULT_RECORD_QUEUE_LIMIT)]
    pub record_queue_limit: usize,
    /// Seconds an API key answers calls from memory after its lookup (0: every call
    /// looks its key up). A key revoked on this replica is refused at once; on other
    /// replicas, and after `rapport key revoke`, within this time. At most 300.
    #[arg(long, global = true, env = "RAPPORT_KEY_CACHE_SECONDS", default_value_t = DEFAULT_KEY_CACHE_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub key_cache_seconds: u64,
    /// How often health checks the database, in milliseconds. While it finds the
    /// database unreachable, calls fail at once with UNAVAILABLE (and RetryInfo).
    #[arg(long, global = true, env = "RAPPORT_HEALTH_INTERVAL_MS", default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// Address of the admin HTTP listener serving Prometheus `/metrics`.
    #[arg(long, global = true, env = "RAPPORT_ADMIN_ADDR", default_value = "0.0.0.0:9464")]
    pub admin_addr: SocketAddr,
    /// Address of the HTTP gateway: JSON routes, gRPC-Web, /s/{token}, /widget.js,
    /// /openapi.json and /healthz.
    #[arg(long, global = true, env = "RAPPORT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Web origins (scheme://host[:port]) whose pages may call the HTTP gateway
    /// (CORS), comma-separated; `*` allows any. Empty: only same-origin pages
    /// (the hosted survey page).
    #[arg(long, global = true, env = "RAPPORT_CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_allowed_origins: Vec<String>,
    /// Calls per minute per publishable key (token bucket); 0 turns the limit off.
    #[arg(long, global = true, env = "RAPPORT_PUBLISHABLE_KEY_RATE_PER_MINUTE", default_value_t = 1200)]
    pub publishable_key_rate_per_minute: u32,
    /// Calls a publishable key may make in a burst.
    #[arg(long, global = true, env = "RAPPORT_PUBLISHABLE_KEY_BURST", default_value_t = 200)]
    pub publishable_key_burst: u32,
    /// Calls per minute per client address for publishable-key and token calls; 0: off.
    #[arg(long, global = true, env = "RAPPORT_CLIENT_ADDRESS_RATE_PER_MINUTE", default_value_t = 120)]
    pub client_address_rate_per_minute: u32,
    /// Calls a client address may make in a burst.
    #[arg(long, global = true, env = "RAPPORT_CLIENT_ADDRESS_BURST", default_value_t = 60)]
    pub client_address_burst: u32,
    /// Behind a proxy: the header it sets to the client's address (e.g.
    /// `x-forwarded-for`; its last entry is used). Unset: the TCP peer. Set it only
    /// when every request comes through that proxy, or clients can pick their address.
    #[arg(long, global = true, env = "RAPPORT_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Redis that keeps the rate limits above, shared by every replica, e.g.
    /// `redis://:password@redis:6379/0` (one Redis or a primary, not a Cluster). Unset:
    /// each replica keeps its own, so N replicas allow N times each rate. When Redis fails
    /// or is slow, checks fall back to the replica's own limits (fail open).
    #[arg(long, global = true, env = "RAPPORT_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// What the keys of the shared rate limits in Redis start with.
    #[arg(long, global = true, env = "RAPPORT_REDIS_KEY_PREFIX", default_value = "rapport:")]
    pub redis_key_prefix: String,
    /// How long a rate-limit check waits for Redis, in milliseconds, before it falls back
    /// to the replica's own limits.
    #[arg(long, global = true, env = "RAPPORT_REDIS_TIMEOUT_MS", default_value_t = 100)]
    pub redis_timeout_ms: u64,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub secrets: SecretArgs,
}

/// Where the keys that seal secrets at rest come from, and the operator token
/// (docs/privacy.md). The keys and the token themselves are read from the environment
/// only ([`SecretArgs::read_environment`]), never from the command line.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Secrets at rest (every command that opens the database)")]
pub struct SecretArgs {
    /// A file of the keys that seal stored secrets, one `id:base64-of-32-bytes` per line,
    /// newest first (e.g. a mounted Kubernetes Secret). Or give the same keys, comma-
    /// separated, in the environment variable RAPPORT_SECRET_KEYS. Without either,
    /// PostgreSQL refuses to start, and SQLite uses (creating it if missing) the file
    /// `<database file>.keys` beside the database.
    #[arg(long, global = true, env = "RAPPORT_SECRET_KEYS_FILE")]
    pub secret_keys_file: Option<std::path::PathBuf>,
    /// RAPPORT_SECRET_KEYS: the keys themselves, newest first.
    #[arg(skip)]
    pub secret_keys: Option<String>,
    /// RAPPORT_OPERATOR_TOKEN: the bearer token of the admin gRPC service (unset: that
    /// service refuses every call).
    #[arg(skip)]
    pub operator_token: Option<String>,
}

impl std::fmt::Debug for SecretArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretArgs")
            .field("secret_keys_file", &self.secret_keys_file)
            .field("secret_keys", &self.secret_keys.as_ref().map(|_| "***"))
            .field("operator_token", &self.operator_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SecretArgs {
    /// Takes RAPPORT_SECRET_KEYS and RAPPORT_OPERATOR_TOKEN from the environment (empty
    /// values count as unset).
    pub fn read_environment(&mut self) {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        self.secret_keys = var("RAPPORT_SECRET_KEYS");
        self.operator_token = var("RAPPORT_OPERATOR_TOKEN");
    }
}

impl ServeArgs {
    /// The rate limits of in-app calls.
    pub fn rate_limits(&self) -> crate::service::in_app::RateLimitSettings {
        crate::service::in_app::RateLimitSettings {
            per_key_per_minute: self.publishable_key_rate_per_minute,
            per_key_burst: self.publishable_key_burst,
            per_address_per_minute: self.client_address_rate_per_minute,
            per_address_burst: self.client_address_burst,
        }
    }

    /// Where the replicas share their rate limits (Redis), if anywhere.
    pub fn shared_rate_limits(&self) -> Option<crate::service::in_app::SharedLimitSettings> {
        let url = self.redis_url.as_deref().map(str::trim).filter(|u| !u.is_empty())?;
        Some(crate::service::in_app::SharedLimitSettings {
            url: url.to_owned(),
            key_prefix: self.redis_key_prefix.clone(),
            timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
        })
    }

    /// The CORS origins, trimmed, without empty entries.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.cors_allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// The trusted client-address header, checked.
    pub fn client_ip_header(&self) -> anyhow::Result<Option<http::HeaderName>> {
        match self.client_ip_header.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            None => Ok(None),
            Some(h) => Ok(Some(
                h.to_ascii_lowercase()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("RAPPORT_CLIENT_IP_HEADER: {h:?} is not a header name"))?,
            )),
        }
    }
}

/// Webhooks, the event stream and follow-up SLAs (docs/webhooks.md).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Webhook, event and SLA options (serve)")]
pub struct OutboxArgs {
    /// Delays before each webhook attempt, comma-separated (s, m, h, d).
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_RETRY_SCHEDULE", default_value = "0s,5s,5m,30m,2h,5h,10h,10h")]
    pub webhook_retry_schedule: String,
    /// Seconds to wait for a webhook receiver's answer.
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 15)]
    pub webhook_timeout_seconds: u64,
    /// Seconds `follow_up.opened` waits before delivery, so the comment that follows
    /// the score rides in the same payload.
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_SETTLE_SECONDS", default_value_t = 60)]
    pub webhook_settle_seconds: u64,
    /// Days of continuous failure after which an endpoint is disabled.
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_DISABLE_AFTER_DAYS", default_value_t = 5)]
    pub webhook_disable_after_days: u64,
    /// Allow webhook URLs on private, loopback and link-local addresses.
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// Hosts that may receive webhooks over plain http (comma-separated); others need https.
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_ALLOW_HTTP_HOSTS", default_value = "", value_delimiter = ',')]
    pub webhook_allow_http_hosts: Vec<String>,
    /// Deliveries sent at once by one replica.
    #[arg(long, global = true, env = "RAPPORT_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,
    /// Days events are kept for `WatchEvents` and replay.
    #[arg(long, global = true, env = "RAPPORT_EVENT_RETENTION_DAYS", default_value_t = 30)]
    pub event_retention_days: u64,
    /// How often the workers look for work other replicas created, in milliseconds.
    #[arg(long, global = true, env = "RAPPORT_WORKER_POLL_MS", default_value_t = 1000)]
    pub worker_poll_ms: u64,
    /// How often open follow-ups are checked against their due time, in milliseconds.
    #[arg(long, global = true, env = "RAPPORT_SLA_CHECK_MS", default_value_t = 30000)]
    pub sla_check_ms: u64,
    /// How often the retention worker removes data older than each tenant's retention
    /// policy (docs/privacy.md), in milliseconds.
    #[arg(long, global = true, env = "RAPPORT_RETENTION_CHECK_MS", default_value_t = 3_600_000)]
    pub retention_check_ms: u64,
    /// How often each tenant's counter rows of days before yesterday are folded into
    /// one row per key, which keeps reads of large tenants short (docs/engagement.md),
    /// in milliseconds.
    #[arg(long, global = true, env = "RAPPORT_ROLLUP_FOLD_MS", default_value_t = 60_000)]
    pub rollup_fold_ms: u64,
}

impl Default for OutboxArgs {
    fn default() -> Self {
        OutboxArgs {
            webhook_retry_schedule: "0s,5s,5m,30m,2h,5h,10h,10h".into(),
            webhook_timeout_seconds: 15,
            webhook_settle_seconds: 60,
            webhook_disable_after_days: 5,
            webhook_allow_private: false,
            webhook_allow_http_hosts: Vec::new(),
            webhook_concurrency: 16,
            event_retention_days: 30,
            worker_poll_ms: 1000,
            sla_check_ms: 30000,
            retention_check_ms: 3_600_000,
            rollup_fold_ms: 60_000,
        }
    }
}

impl OutboxArgs {
    /// The checked settings.
    pub fn settings(&self) -> anyhow::Result<crate::service::OutboxSettings> {
        let retry = crate::domain::webhooks::RetrySchedule::parse(&self.webhook_retry_schedule)
            .map_err(|e| anyhow::anyhow!("RAPPORT_WEBHOOK_RETRY_SCHEDULE: {e}"))?;
        Ok(crate::service::OutboxSettings {
            retry,
            timeout: Duration::from_secs(self.webhook_timeout_seconds.max(1)),
            settle: chrono::Duration::seconds(self.webhook_settle_seconds as i64),
            disable_after: chrono::Duration::days(self.webhook_disable_after_days as i64),
            allow_private: self.webhook_allow_private,
            allow_http_hosts: self.webhook_allow_http_hosts.iter().filter(|h| !h.is_empty()).cloned().collect(),
            concurrency: self.webhook_concurrency.max(1),
            retention: chrono::Duration::days(self.event_retention_days.max(1) as i64),
            poll: Duration::from_millis(self.worker_poll_ms.max(10)),
            sla_check: Duration::from_millis(self.sla_check_ms.max(10)),
            retention_check: Duration::from_millis(self.retention_check_ms.max(10)),
            fold_every: Duration::from_millis(self.rollup_fold_ms.max(10)),
        })
    }
}

/// `RAPPORT_KEY_CACHE_SECONDS`: the longest a revoked key keeps working on another replica.
pub const DEFAULT_KEY_CACHE_SECONDS: u64 = 2;

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            grpc_addr: "127.0.0.1:0".parse().expect("a valid address"),
            migrate_on_start: true,
            bootstrap_tenant: false,
            shutdown_grace_seconds: 20,
            record_queue_limit: crate::service::responses::DEFAULT_RECORD_QUEUE_LIMIT,
            key_cache_seconds: DEFAULT_KEY_CACHE_SECONDS,
            health_interval_ms: 1000,
            // Tests: a random port, no cross-origin pages, and no rate limits unless asked.
            http_addr: "127.0.0.1:0".parse().expect("a valid address"),
            cors_allowed_origins: Vec::new(),
            publishable_key_rate_per_minute: 0,
            publishable_key_burst: 0,
            client_address_rate_per_minute: 0,
            client_address_burst: 0,
            client_ip_header: None,
            redis_url: None,
            redis_key_prefix: "rapport:".into(),
            redis_timeout_ms: 100,
            outbox: OutboxArgs::default(),
            secrets: SecretArgs::default(),
            admin_addr: "127.0.0.1:0".parse().expect("a valid address"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rapport").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn serve_options_are_taken_before_and_after_the_sub_command() {
        let cli = parse(&["--http-addr", "127.0.0.1:8081", "--grpc-addr", "127.0.0.1:50052"]);
        assert!(cli.command.is_none(), "no sub-command: serve");
        assert_eq!(cli.serve.http_addr, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(cli.serve.grpc_addr, "127.0.0.1:50052".parse().unwrap());

        let cli = parse(&["serve", "--http-addr", "127.0.0.1:8082", "--webhook-concurrency", "3"]);
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.serve.http_addr, "127.0.0.1:8082".parse().unwrap());
        assert_eq!(cli.serve.outbox.webhook_concurrency, 3);

        let cli = parse(&["--cors-allowed-origins", "https://a.example,https://b.example", "serve"]);
        assert_eq!(cli.serve.allowed_origins(), ["https://a.example", "https://b.example"]);

        // The common options too, on either side.
        let cli = parse(&["serve", "--log-level", "debug"]);
        assert_eq!(cli.common.log_level, "debug");
        let cli = parse(&["--log-level", "debug", "migrate"]);
        assert!(matches!(cli.command, Some(Command::Migrate)));

        // A bad value is still refused, naming the flag.
        let err = Cli::try_parse_from(["rapport", "--http-addr", "nowhere"]).unwrap_err().to_string();
        assert!(err.contains("--http-addr"), "{err}");
    }

    #[test]
    fn a_transaction_pooler_is_named_on_the_command_line() {
        assert!(!parse(&[]).common.db().transaction_pooler, "by default: PostgreSQL itself");
        assert!(parse(&["--db-pooler", "transaction", "migrate"]).common.db().transaction_pooler);
        assert!(!parse(&["--db-pooler", "none"]).common.db().transaction_pooler);
        let err = Cli::try_parse_from(["rapport", "--db-pooler", "session"]).unwrap_err().to_string();
        assert!(err.contains("--db-pooler"), "{err}");
    }

    #[test]
    fn redis_and_the_direct_database_url_are_taken_and_empty_means_unset() {
        let cli = parse(&["--redis-url", " redis://cache:6379/0 ", "--redis-timeout-ms", "50"]);
        let shared = cli.serve.shared_rate_limits().expect("shared limits");
        assert_eq!(shared.url, "redis://cache:6379/0");
        assert_eq!(shared.key_prefix, "rapport:");
        assert_eq!(shared.timeout, Duration::from_millis(50));
        assert!(parse(&["--redis-url", ""]).serve.shared_rate_limits().is_none(), "empty: each replica its own");
        assert!(parse(&[]).serve.shared_rate_limits().is_none());

        let cli = parse(&["--database-url", "postgres://pgbouncer/db", "--direct-database-url", "postgres://pg/db"]);
        assert_eq!(cli.common.db().direct_url.as_deref(), Some("postgres://pg/db"));
        assert_eq!(parse(&["--direct-database-url", " "]).common.db().direct_url, None, "defaults to DATABASE_URL");
    }

    #[test]
    fn the_top_level_help_lists_the_serve_options_with_their_variables() {
        let mut cli = Cli::command();
        cli.build();
        let top = cli.render_long_help().to_string();
        let serve = cli.find_subcommand_mut("serve").expect("serve").render_long_help().to_string();
        for option in [
            "--http-addr",
            "--grpc-addr",
            "--admin-addr",
            "--cors-allowed-origins",
            "--client-ip-header",
            "--publishable-key-rate-per-minute",
            "--webhook-retry-schedule",
            "--database-url",
            "--direct-database-url",
            "--redis-url",
            "--redis-key-prefix",
            "--redis-timeout-ms",
        ] {
            assert!(top.contains(option), "rapport --help lists {option}");
            assert!(serve.contains(option), "rapport serve --help lists {option}");
        }
        for variable in [
            "RAPPORT_HTTP_ADDR",
            "RAPPORT_CORS_ALLOWED_ORIGINS",
            "RAPPORT_CLIENT_IP_HEADER",
            "RAPPORT_REDIS_URL",
            "RAPPORT_DIRECT_DATABASE_URL",
        ] {
            assert!(top.contains(&format!("[env: {variable}")), "rapport --help names {variable}");
        }
    }
}

#[cfg(test)]
mod outbox_default_tests {
    #[test]
    fn the_options_defaults_are_the_services_defaults() {
        let from_options = super::OutboxArgs::default().settings().unwrap();
        assert_eq!(from_options, crate::service::OutboxSettings::default());
    }
}
