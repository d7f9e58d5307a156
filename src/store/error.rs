//! The one error the store returns. Database errors are classified here, at the
//! storage boundary, into what a use-case can act on — a broken unique constraint, a
//! missing row, a database that cannot answer now — and the rest, which is a bug or
//! corrupt data. Use-cases match on it (a `Unique` on an idempotency key means a
//! concurrent first attempt won) and let `?` turn it into an [`AppError`] through the
//! one mapping below; nothing above `store/` sees a sea-orm or sqlx error.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DbErr, RuntimeErr, sqlx};

use crate::error::AppError;

/// `Result` with [`StoreError`] as the default error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in the database, classified by what the caller can do about it.
/// Cheap to clone, so one failed statement can answer every call that shared it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was broken (an answered invitation, a reused idempotency
    /// key, a tenant name taken); `constraint` is what the database said about it.
    #[error("unique constraint violated: {constraint}")]
    Unique { constraint: String },
    /// No such row for this tenant; says what was looked for, e.g. `survey 0190…`.
    #[error("{0} not found")]
    NotFound(String),
    /// A write naming a customer whose data was erased (a tombstone stands for them).
    #[error("the customer has been erased")]
    Erased,
    /// The database cannot be reached, or it ended the connection or the statement
    /// (PostgreSQL classes 08, 53 and 57, and 55000); also while the health watcher
    /// knows it to be down. Safe to retry later.
    #[error("the database is unreachable")]
    Unavailable,
    /// SQLite: another writer held the lock past the busy timeout (BUSY, LOCKED);
    /// PostgreSQL: a statement waited for a lock past its `lock_timeout` (55P03).
    /// Safe to retry later.
    #[error("the database is busy")]
    Busy,
    /// A step of a batched write took longer than the batch timeout
    /// (`DbSettings::batch_timeout`); `step` names it (`begin`, `writes`, `commit`…).
    #[error("the database did not complete the batch's {step} within {} ms", .after.as_millis())]
    Timeout { step: String, after: Duration },
    /// Anything else: a bug, a statement the database refused, a stored value that
    /// does not read back. Logged with its chain, never shown to the caller.
    #[error("{0:#}")]
    Other(Arc<anyhow::Error>),
}

impl StoreError {
    /// An unexpected failure with its cause.
    pub fn other(e: impl Into<anyhow::Error>) -> Self {
        StoreError::Other(Arc::new(e.into()))
    }

    /// Whether it is worth retrying the same work later (the database was unreachable,
    /// busy or slow), rather than a property of the work itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable | StoreError::Busy | StoreError::Timeout { .. })
    }

    /// The same error, an unexpected one with `context` added to its chain (to name
    /// the statement that failed in the logs); the others stay as they are.
    pub(crate) fn context(self, context: String) -> Self {
        match self {
            StoreError::Other(e) => {
                let e = Arc::try_unwrap(e).unwrap_or_else(|shared| anyhow::anyhow!("{shared:#}"));
                StoreError::Other(Arc::new(e.context(context)))
            }
            other => other,
        }
    }
}

impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(constraint)) = e.sql_err() {
            return StoreError::Unique { constraint };
        }
        if let DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) = &e
            && let sqlx::Error::Database(db) = &**s
            && db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
            && db.code().is_some_and(|c| sqlite_busy_or_locked(&c))
        {
            return StoreError::Busy;
        }
        if let DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) = &e
            && let sqlx::Error::Database(db) = &**s
            && db.code().is_some_and(|c| c == PG_LOCK_NOT_AVAILABLE)
        {
            return StoreError::Busy;
        }
        if is_unavailable(&e) {
            return StoreError::Unavailable;
        }
        StoreError::Other(Arc::new(anyhow::Error::new(e).context("database error")))
    }
}

impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> Self {
        StoreError::Other(Arc::new(e))
    }
}

impl From<StoreError> for AppError {
    /// The one mapping of storage failures: a missing row is `NOT_FOUND` with what was
    /// looked for; a database that cannot answer now is `UNAVAILABLE` (safe to retry);
    /// the rest — a unique constraint no use-case expected included — is internal.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AppError::NotFound(what),
            StoreError::Erased => {
                AppError::FailedPrecondition("the customer has been erased; use another customer id".into())
            }
            StoreError::Unavailable | StoreError::Busy => unavailable(),
            e @ StoreError::Timeout { .. } => AppError::Unavailable(format!("{e}; retry later")),
            e @ StoreError::Unique { .. } => AppError::Internal(anyhow::Error::new(e).context("database error")),
            StoreError::Other(e) => {
                AppError::Internal(Arc::try_unwrap(e).unwrap_or_else(|shared| anyhow::anyhow!("{shared:#}")))
            }
        }
    }
}

fn unavailable() -> AppError {
    AppError::Unavailable("the database is unreachable; retry later".into())
}

/// A stored value read back through a domain parser (an enum's stored name): a value
/// it does not know is corrupt data, an unexpected failure.
pub(crate) fn decoded<T>(r: crate::error::Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        AppError::Internal(e) => StoreError::other(e),
        other => StoreError::other(anyhow::Error::new(other)),
    })
}

/// PostgreSQL's `lock_not_available`: a lock waited for past `lock_timeout`.
const PG_LOCK_NOT_AVAILABLE: &str = "55P03";

/// Whether `e` is connection trouble (safe to retry later).
fn is_unavailable(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => match &**s {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLite's BUSY and LOCKED are `Busy`, classified before this.
            sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => false,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                // PostgreSQL: connection exception (08), insufficient resources (53),
                // operator intervention (57, e.g. terminated backends or a cancelled
                // statement), and 55000 for "database is not currently accepting
                // connections".
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57") || c == "55000"
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Whether an SQLite result code (extended, as sqlx reports it) is BUSY or LOCKED:
/// the primary code is the low byte (BUSY_RECOVERY 261, BUSY_SNAPSHOT 517,
/// BUSY_TIMEOUT 773, LOCKED_SHAREDCACHE 262, …).
fn sqlite_busy_or_locked(code: &str) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    code.trim().parse::<i64>().is_ok_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
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
    async fn a_busy_snapshot_from_sqlite_is_busy_and_unavailable() {
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
        let err = StoreError::from(DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err))));
        assert!(matches!(err, StoreError::Busy), "{err:?}");
        assert!(err.is_transient());
        assert!(
            matches!(AppError::from(err), AppError::Unavailable(m) if m == "the database is unreachable; retry later")
        );
    }

    /// A second row with the same key is `Unique`, on SQLite as on PostgreSQL (whose
    /// classification sea-orm shares).
    #[tokio::test]
    async fn a_broken_unique_constraint_is_unique() {
        use sea_orm::{ConnectionTrait as _, Database};
        let conn = Database::connect("sqlite::memory:").await.expect("in-memory SQLite");
        conn.execute_unprepared("CREATE TABLE t (x INTEGER PRIMARY KEY)").await.expect("created");
        conn.execute_unprepared("INSERT INTO t VALUES (1)").await.expect("written");
        let err = StoreError::from(conn.execute_unprepared("INSERT INTO t VALUES (1)").await.expect_err("a duplicate"));
        assert!(matches!(&err, StoreError::Unique { .. }), "{err:?}");
        assert!(!err.is_transient());
    }

    #[test]
    fn each_kind_maps_to_its_status_with_the_message_callers_see() {
        assert!(
            matches!(AppError::from(StoreError::NotFound("survey s1".into())), AppError::NotFound(m) if m == "survey s1")
        );
        assert!(matches!(
            AppError::from(StoreError::Unavailable),
            AppError::Unavailable(m) if m == "the database is unreachable; retry later"
        ));
        let slow = StoreError::Timeout { step: "commit".into(), after: Duration::from_millis(1500) };
        assert!(slow.is_transient());
        assert!(matches!(
            AppError::from(slow),
            AppError::Unavailable(m) if m == "the database did not complete the batch's commit within 1500 ms; retry later"
        ));
        let bug = StoreError::other(anyhow::anyhow!("tenant t1 vanished")).context("in SELECT …".into());
        match AppError::from(bug) {
            AppError::Internal(e) => assert_eq!(format!("{e:#}"), "in SELECT …: tenant t1 vanished"),
            other => panic!("not internal: {other:?}"),
        }
        assert!(matches!(AppError::from(StoreError::Unique { constraint: "k".into() }), AppError::Internal(_)));
    }
}
