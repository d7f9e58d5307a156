//! The harness both load generators share: the database they point at (created when
//! missing, and a scratch copy of the schema for the baselines), the server under load
//! (a child `rapport serve` on free loopback ports, or one already running), the
//! connections and keys to call it with, the loop that keeps a number of calls in
//! flight and times them, pgbench as the outside reference, and the printed report.
//!
//! The service is only ever reached from outside: over gRPC, through its command line
//! (`rapport serve`, `rapport tenant create`) and through the database it uses.

pub mod database;
pub mod load;
pub mod pgbench;
pub mod report;
pub mod server;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use database::{DbTarget, Scratch, ensure_database_exists};
use server::{Rapport, Server, Tenant};

/// The options every sub-command takes: where the database is, how the server's pool
/// is sized, and which `rapport` executable to start.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Database URL of the server under load, where the baselines run too:
    /// `postgres://…` or `sqlite://path?mode=rwc`. The bench writes real rows, so give
    /// it a database of its own; a missing PostgreSQL database is created.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most connections in the server's database pool, and in the bench's own pool for
    /// the baseline INSERTs.
    #[arg(long, env = "RAPPORT_DB_MAX_CONNECTIONS", default_value_t = 32, global = true)]
    pub db_max_connections: u32,
    /// Seconds a call waits for a database connection (the server's and the baseline's).
    #[arg(long, env = "RAPPORT_DB_ACQUIRE_TIMEOUT_SECONDS", default_value_t = 5, global = true)]
    pub db_acquire_timeout_seconds: u64,
    /// The `rapport` executable to start the server and create tenants with. Unset:
    /// `rapport` beside this executable (`target/release/rapport` after
    /// `cargo build --release --workspace`).
    #[arg(long, env = "RAPPORT_BIN", global = true)]
    pub rapport_bin: Option<PathBuf>,
}

impl CommonArgs {
    /// The database to use; `DATABASE_URL` is required.
    pub fn db(&self) -> anyhow::Result<DbTarget> {
        let url = self
            .database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .context("set DATABASE_URL (or --database-url) to a database of the bench's own")?;
        Ok(DbTarget {
            url,
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_seconds.max(1)),
        })
    }

    /// The `rapport` executable.
    pub fn rapport(&self) -> anyhow::Result<Rapport> {
        Rapport::locate(self.rapport_bin.clone())
    }
}

/// One run against one server: the database (created when missing), the scratch
/// schema of the baselines, and the server under load, ready.
pub struct Session {
    pub db: DbTarget,
    pub scratch: Scratch,
    pub server: Server,
    common: CommonArgs,
}

impl Session {
    /// Creates tenant `name` (with `rapport tenant create` on the run's database).
    pub async fn create_tenant(&self, name: &str) -> anyhow::Result<Tenant> {
        self.common
            .rapport()?
            .create_tenant(&self.db, name)
            .await
            .with_context(|| format!("creating the tenant {name}"))
    }
}

/// Sets up a [`Session`] — the database, the scratch schema `scratch` migrated, the
/// server started (or the one at `external`) and SERVING — runs `body` in it, then
/// stops the server and drops the scratch schema whatever happened. The first error
/// is the one returned.
pub async fn run_session<T>(
    common: &CommonArgs,
    scratch: &str,
    external: Option<&str>,
    body: impl AsyncFnOnce(&Session) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let db = common.db()?;
    ensure_database_exists(&db.url).await?;
    let scratch = Scratch::create(&db, scratch).await?;
    let server = match external {
        Some(addr) => Ok(Server::external(addr)),
        None => match common.rapport() {
            Ok(rapport) => rapport.serve(&db).await,
            Err(e) => Err(e),
        },
    };
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            let _ = scratch.drop().await;
            return Err(e);
        }
    };
    let mut session = Session { db, scratch, server, common: common.clone() };
    let outcome = match session.server.wait_for_serving().await {
        Ok(()) => body(&session).await,
        Err(e) => Err(e),
    };
    let Session { scratch, mut server, .. } = session;
    server.stop().await;
    let dropped = scratch.drop().await;
    let value = outcome?;
    dropped?;
    Ok(value)
}
