//! Storage: the only module that knows SQL. sea-orm entities, tenant-scoped queries,
//! connection set-up for SQLite and PostgreSQL, and the classification of database
//! errors into [`AppError`]s at this boundary.

pub mod customers;
pub mod engagement;
pub mod engagement_read;
pub mod entities;
pub mod events;
pub mod follow_ups;
pub mod in_app;
pub mod invitations;
pub mod metrics;
pub mod ops;
pub mod responses;
pub mod surveys;
pub mod tenants;
pub mod webhooks;

use std::time::Duration;

use base64::Engine as _;
use sea_orm::sqlx;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::domain::model::Properties;
use crate::error::{AppError, Result};

/// A write transaction, as use-cases hold it (from [`Db::begin_write`]).
pub type Tx = DatabaseTransaction;
/// What queries run on: the pool or a transaction.
pub use sea_orm::ConnectionTrait as Conn;
/// A database error as the store returns it, for use-cases that must tell a unique
/// violation ([`is_unique_violation`]) from other failures.
pub use sea_orm::DbErr as DbError;

/// A pool of connections to the service's database.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite: a one-connection pool that write transactions queue on, in order,
    /// instead of polling on the busy timeout (which made the p99 of concurrent
    /// writers seconds long). PostgreSQL: the main pool.
    writer: DatabaseConnection,
    /// The connection batched writes (group commit) run on. PostgreSQL: one connection
    /// of its own whose statement cache holds every batch size's statements, so a
    /// batch is never parsed and planned again. SQLite: the writer.
    batcher: DatabaseConnection,
}

/// Prepared statements the batch connection keeps: a batch of n answers is one
/// statement shape per table, n from 1 to 128 (the default cache keeps 100).
const BATCH_STATEMENT_CACHE: usize = 1_024;

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub url: String,
    pub max_connections: u32,
    /// How long a call waits for a free (or new) connection before `UNAVAILABLE`.
    pub acquire_timeout: Duration,
}

impl Db {
    /// Opens the pool. SQLite files are created if missing and run in WAL mode with a
    /// busy timeout; `sqlite::memory:` uses one shared connection.
    pub async fn connect(settings: &DbSettings) -> Result<Self, DbErr> {
        let memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
        let conn =
            Database::connect(Self::options(settings, if memory { 1 } else { settings.max_connections })).await?;
        let sqlite = conn.get_database_backend() == DbBackend::Sqlite;
        let writer =
            if sqlite && !memory { Database::connect(Self::options(settings, 1)).await? } else { conn.clone() };
        let batcher = if sqlite {
            writer.clone()
        } else {
            let mut opts = Self::options(settings, 1);
            // Busy, it is in use back to back and never pinged; after a pause of its
            // own it is, so a database that restarted meanwhile costs no call.
            opts.test_before_acquire_if_idle_for(Duration::from_millis(100))
                .map_sqlx_postgres_opts(|o| o.statement_cache_capacity(BATCH_STATEMENT_CACHE));
            Database::connect(opts).await?
        };
        Ok(Db { conn, writer, batcher })
    }

    fn options(settings: &DbSettings, max_connections: u32) -> ConnectOptions {
        let mut opts = ConnectOptions::new(settings.url.clone());
        let memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
        opts.max_connections(max_connections)
            .min_connections(if memory { 1 } else { 0 })
            .acquire_timeout(settings.acquire_timeout)
            .connect_timeout(settings.acquire_timeout)
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(300)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(1800)) })
            // Ping only connections idle for a while: a ping per checkout doubles the
            // round trips of a call; a connection that died in use fails that call
            // with UNAVAILABLE and is replaced.
            .test_before_acquire_if_idle_for(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        opts
    }

    /// The pool, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Starts a write transaction. On SQLite it begins IMMEDIATE, taking the write
    /// lock at once: a deferred one can fail with SQLITE_BUSY when it upgrades.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction> {
        self.begin_on(&self.writer).await
    }

    /// Starts a write transaction for a batch of calls (see `service::batch`), on the
    /// batch connection.
    pub async fn begin_batch(&self) -> Result<DatabaseTransaction> {
        self.begin_on(&self.batcher).await
    }

    async fn begin_on(&self, pool: &DatabaseConnection) -> Result<DatabaseTransaction> {
        let sqlite_mode = (self.backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate);
        let options = TransactionOptions { sqlite_transaction_mode: sqlite_mode, ..Default::default() };
        Ok(pool.begin_with_options(options).await?)
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        use migrations::MigratorTrait;
        migrations::Migrator::up(&self.conn, None).await
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.conn.execute_unprepared("SELECT 1").await.is_ok()
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.batcher.close().await;
        let _ = self.writer.close().await;
        let _ = self.conn.close().await;
    }
}

impl From<DbErr> for AppError {
    /// Connection trouble is `UNAVAILABLE` (safe to retry); the rest is internal.
    fn from(e: DbErr) -> Self {
        if is_unavailable(&e) {
            unavailable()
        } else {
            AppError::Internal(anyhow::Error::new(e).context("database error"))
        }
    }
}

/// Like `AppError::from`, for an error that several callers share (a batch's).
pub fn classify(e: &DbErr) -> AppError {
    if is_unavailable(e) { unavailable() } else { AppError::Internal(anyhow::anyhow!("database error: {e}")) }
}

fn unavailable() -> AppError {
    AppError::Unavailable("the database is unreachable; retry later".into())
}

/// Whether `e` is connection trouble (`UNAVAILABLE`, safe to retry later).
pub fn is_unavailable(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => match &**s {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLite: BUSY (5) or LOCKED (6), by the primary code of the extended code
            // sqlx gives (BUSY_RECOVERY 261, BUSY_SNAPSHOT 517, BUSY_TIMEOUT 773,
            // LOCKED_SHAREDCACHE 262, …).
            sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                db.code().is_some_and(|c| sqlite_busy_or_locked(&c))
            }
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                // PostgreSQL: connection exception (08), insufficient resources (53),
                // operator intervention (57, e.g. terminated backends), and 55000 for
                // "database is not currently accepting connections".
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57") || c == "55000"
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Whether an SQLite result code (extended, as sqlx reports it) is BUSY or LOCKED:
/// the primary code is the low byte.
fn sqlite_busy_or_locked(code: &str) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    code.trim().parse::<i64>().is_ok_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

/// Whether `e` broke a unique constraint.
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// A property map as stored.
pub fn props_to_json(p: &Properties) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
}

/// A stored property map.
pub fn props_from_json(s: &str) -> Properties {
    serde_json::from_str(s).unwrap_or_default()
}

/// Page size when the caller sends none.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page.
pub const MAX_PAGE_SIZE: u64 = 1_000;

/// A keyset position: list pages are ordered by id, newest first, and a token holds
/// the last id of the previous page.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: u64,
    pub after: Option<String>,
}

impl PageRequest {
    /// Checks `page_size` (0 means the default, 50; at most 1 000) and `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 || n as u64 > MAX_PAGE_SIZE => {
                return Err(AppError::invalid("page_size", format!("must be from 0 to {MAX_PAGE_SIZE}; got {n}")));
            }
            n => n as u64,
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || AppError::invalid("page_token", "is not a token this service issued");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(page_token).map_err(|_| bad())?;
            let s = String::from_utf8(bytes).map_err(|_| bad())?;
            let id = s.strip_prefix("after:").ok_or_else(bad)?;
            if id.is_empty() || crate::domain::input::control_character(id).is_some() {
                return Err(bad());
            }
            Some(id.to_owned())
        };
        Ok(PageRequest { size, after })
    }

    /// The token for the page after one that ended with `last_id`, if it was full.
    pub fn next_token(&self, returned: usize, last_id: Option<&str>) -> String {
        match last_id {
            Some(id) if returned as u64 >= self.size => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{id}"))
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod sqlite_busy_tests {
    use sea_orm::{DbErr, RuntimeErr};
    use sqlx::{ConnectOptions as _, Executor as _};

    use super::*;

    #[test]
    fn sqlite_busy_and_locked_are_matched_by_their_primary_code() {
        // BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT, LOCKED, LOCKED_SHAREDCACHE, LOCKED_VTAB.
        for code in ["5", "261", "517", "773", "6", "262", "518"] {
            assert!(sqlite_busy_or_locked(code), "{code}");
        }
        // ERROR, CONSTRAINT, CONSTRAINT_UNIQUE, CANTOPEN, IOERR, and what is no SQLite code.
        for code in ["1", "19", "2067", "14", "10", "", "x", "08006"] {
            assert!(!sqlite_busy_or_locked(code), "{code}");
        }
    }

    /// A real SQLITE_BUSY_SNAPSHOT (517): a read transaction in WAL mode that tries to
    /// write after another connection wrote is refused, and that is worth a retry.
    #[tokio::test]
    async fn a_busy_snapshot_from_sqlite_is_unavailable() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::ZERO);
        let mut a = opts.connect().await.expect("a connection");
        let mut b = opts.connect().await.expect("another connection");
        a.execute("CREATE TABLE t (x INTEGER)").await.expect("created");
        a.execute("INSERT INTO t VALUES (1)").await.expect("written");
        a.execute("BEGIN").await.expect("a transaction");
        sqlx::query("SELECT x FROM t").fetch_all(&mut a).await.expect("a read snapshot");
        b.execute("INSERT INTO t VALUES (2)").await.expect("written beside it");
        let err = a.execute("INSERT INTO t VALUES (3)").await.expect_err("the snapshot is stale");
        let code = match &err {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            other => panic!("not a database error: {other:?}"),
        };
        assert_eq!(code.as_deref(), Some("517"), "SQLITE_BUSY_SNAPSHOT: {err:?}");
        let err = DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(err)));
        assert!(is_unavailable(&err), "{err:?}");
        assert!(matches!(classify(&err), AppError::Unavailable(_)));
    }
}
