//! The monthly partitions of the history tables on PostgreSQL (docs/operations.md,
//! "History partitions"; the migration m20261201_000006 creates them): listing them,
//! creating a month's partition with the rows the default partition holds for it, and
//! retiring a month whose rows are all past retention. SQLite keeps plain tables, and
//! nothing here runs there.
//!
//! Every change takes one advisory lock first, so replicas doing the same work at once
//! take turns, and looks again under it (the other may have done it). Table locks are
//! taken parent first, as every insert and read does, with a short `lock_timeout`: a
//! change that would wait long behind a slow transaction (and make every write queue
//! behind it) gives up and is tried again on the next pass.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbBackend};

use super::Db;
use super::error::Result;
use super::sql::{Sql, get, get_i64};
use crate::domain::TenantId;
use crate::domain::partitions::{self as p, Month};

/// Key of the PostgreSQL advisory lock that makes partition changes take turns (an
/// operator holding it with `pg_advisory_lock` pauses them).
pub const PARTITIONS_LOCK: i64 = 0x7261_7070_6f72_7402;

/// How long a partition change waits for a table lock before giving up for this pass.
const LOCK_TIMEOUT: &str = "5s";

/// A table of history, partitioned by month on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Raw activity events, by `occurred_at`.
    ActivityEvents,
    /// Webhook delivery attempts, by `attempted_at`.
    DeliveryAttempts,
}

impl History {
    pub const ALL: [History; 2] = [History::ActivityEvents, History::DeliveryAttempts];

    pub fn table(self) -> &'static str {
        match self {
            History::ActivityEvents => "activity_events",
            History::DeliveryAttempts => "delivery_attempts",
        }
    }

    fn column(self) -> &'static str {
        match self {
            History::ActivityEvents => "occurred_at",
            History::DeliveryAttempts => "attempted_at",
        }
    }
}

/// Whether history is partitioned on this database (PostgreSQL).
pub fn partitioned(db: &Db) -> bool {
    db.backend() == DbBackend::Postgres
}

/// The months with a partition of ours attached to `h`.
pub async fn months(conn: &impl ConnectionTrait, h: History) -> Result<BTreeSet<Month>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = to_regclass(",
    );
    q.bind(h.table()).push(")");
    let mut out = BTreeSet::new();
    for r in q.all(conn).await? {
        if let Some(m) = p::month_of_partition(h.table(), &get::<String>(&r, 0)?) {
            out.insert(m);
        }
    }
    Ok(out)
}

/// The months of the rows in `h`'s default partition (kept small: the worker moves
/// them into their own partitions).
pub async fn months_in_default(conn: &impl ConnectionTrait, h: History) -> Result<BTreeSet<Month>> {
    let sql = format!(
        "SELECT DISTINCT to_char(to_timestamp({c} / 1000000) AT TIME ZONE 'UTC', 'YYYYMM') FROM {d}",
        c = h.column(),
        d = p::default_partition(h.table()),
    );
    let mut out = BTreeSet::new();
    for r in Sql::new(conn.get_database_backend(), &sql).all(conn).await? {
        if let Some(m) = Month::from_suffix(&get::<String>(&r, 0)?) {
            out.insert(m);
        }
    }
    Ok(out)
}

/// Begins a partition change: a write transaction holding the advisory lock, with the
/// short lock timeout.
async fn begin_change(db: &Db) -> Result<super::Tx> {
    let txn = db.begin_write().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({PARTITIONS_LOCK})")).await?;
    txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).await?;
    Ok(txn)
}

/// Creates `month`'s partition of `h` unless it exists, in one transaction: the
/// default partition's rows of that month move into it, then it is attached (which
/// PostgreSQL refuses while the default holds rows of its range). Returns the rows
/// moved, or `None` if the partition was there.
///
/// The new table is filled and then attached. The table is locked EXCLUSIVE for the
/// moment it takes (a handful of rows, usually none): reads go on, writes wait. Not
/// less: an insert already routing a row of the month to the default partition while
/// the partition is attached would fail (PostgreSQL re-checks the default's range);
/// waiting, it routes the row to the new partition.
pub async fn create(db: &Db, h: History, month: Month) -> Result<Option<u64>> {
    let txn = begin_change(db).await?;
    if months(&txn, h).await?.contains(&month) {
        txn.rollback().await?;
        return Ok(None);
    }
    let (t, c) = (h.table(), h.column());
    let (name, default) = (p::partition_name(t, month), p::default_partition(t));
    let (lo, hi) = (month.start_micros(), month.end_micros());
    txn.execute_unprepared(&format!("LOCK TABLE ONLY {t} IN EXCLUSIVE MODE")).await?;
    txn.execute_unprepared(&format!("LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE")).await?;
    txn.execute_unprepared(&format!("CREATE TABLE {name} (LIKE {t} INCLUDING DEFAULTS)")).await?;
    let moved = txn
        .execute_unprepared(&format!(
            "WITH moved AS (DELETE FROM {default} WHERE {c} >= {lo} AND {c} < {hi} RETURNING *) \
             INSERT INTO {name} SELECT * FROM moved"
        ))
        .await?
        .rows_affected();
    txn.execute_unprepared(&format!("ALTER TABLE {t} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"))
        .await?;
    txn.commit().await?;
    Ok(Some(moved))
}

/// Whether `month` of `h` holds a row of one of `tenants`: an index probe per tenant,
/// through the table with the month's bounds, so it reads that partition only (and
/// finds nothing, rather than failing, if another replica retired it meanwhile).
async fn has_rows_of(conn: &impl ConnectionTrait, h: History, month: Month, tenants: &[&TenantId]) -> Result<bool> {
    for chunk in tenants.chunks(1_000) {
        let mut q = Sql::new(conn.get_database_backend(), &format!("SELECT 1 FROM {} WHERE ", h.table()));
        q.push(h.column()).push(" >= ").bind(month.start_micros());
        q.push(&format!(" AND {} < ", h.column())).bind(month.end_micros());
        q.push(" AND tenant_id").in_list(chunk.iter().map(|t| t.as_str().to_owned())).push(" LIMIT 1");
        if q.one(conn).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Takes `month`'s partition out of `h` if none of `keeping` (the tenants whose
/// retention keeps some of the month; domain::partitions::keeping) has a row in it,
/// and renames it to its retired name for [`drop_retired`]. Returns whether it did.
///
/// Looked at first without a lock; then again under an ACCESS EXCLUSIVE lock on the
/// table (DETACH needs it anyway), so no row of a keeping tenant can arrive between
/// the look and the detach. The lock is held for index probes and the detach only;
/// counting the rows happens afterwards, on the detached table.
pub async fn retire(db: &Db, h: History, month: Month, keeping: &[&TenantId]) -> Result<bool> {
    let (t, name) = (h.table(), p::partition_name(h.table(), month));
    if has_rows_of(db.conn(), h, month, keeping).await? {
        return Ok(false);
    }
    let txn = begin_change(db).await?;
    if !months(&txn, h).await?.contains(&month) {
        txn.rollback().await?;
        return Ok(false);
    }
    txn.execute_unprepared(&format!("LOCK TABLE ONLY {t} IN ACCESS EXCLUSIVE MODE")).await?;
    if has_rows_of(&txn, h, month, keeping).await? {
        txn.rollback().await?;
        return Ok(false);
    }
    txn.execute_unprepared(&format!("ALTER TABLE {t} DETACH PARTITION {name}")).await?;
    txn.execute_unprepared(&format!("ALTER TABLE {name} RENAME TO {}", p::retired_name(t, month))).await?;
    txn.commit().await?;
    Ok(true)
}

/// The retired partitions of `h` not dropped yet.
pub async fn retired(conn: &impl ConnectionTrait, h: History) -> Result<Vec<String>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relispartition = false \
         AND relnamespace = current_schema()::regnamespace AND relname LIKE ",
    );
    q.bind(format!("{}\\_p%\\_retired", h.table()));
    let mut out = Vec::new();
    for r in q.all(conn).await? {
        let name: String = get(&r, 0)?;
        if p::month_of_retired(h.table(), &name).is_some() {
            out.push(name);
        }
    }
    Ok(out)
}

/// Counts the rows of a retired partition and drops it. Returns the rows.
pub async fn drop_retired(db: &Db, h: History, name: &str) -> Result<u64> {
    if p::month_of_retired(h.table(), name).is_none() {
        return Ok(0);
    }
    let txn = begin_change(db).await?;
    let mut exists = Sql::new(db.backend(), "SELECT to_regclass(");
    exists.bind(name.to_owned()).push(") IS NOT NULL");
    if !exists.one(&txn).await?.map(|r| get::<bool>(&r, 0)).transpose()?.unwrap_or(false) {
        // Another replica dropped it meanwhile.
        txn.rollback().await?;
        return Ok(0);
    }
    let count = Sql::new(db.backend(), &format!("SELECT count(*) FROM {name}")).one(&txn).await?;
    let n = match count {
        Some(r) => get_i64(&r, 0)?.max(0) as u64,
        None => 0,
    };
    txn.execute_unprepared(&format!("DROP TABLE {name}")).await?;
    txn.commit().await?;
    Ok(n)
}
