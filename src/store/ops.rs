//! Operator-level figures for the Prometheus endpoint: counts across every tenant and
//! the state of the connection pool. This is the one place that reads without a tenant
//! scope, on purpose: only aggregate numbers leave it (no ids, no row data), and only
//! on the admin port (`RAPPORT_ADMIN_ADDR`), never through the API.

use sea_orm::{ColumnTrait, Condition, DbBackend, EntityTrait, QueryFilter, QuerySelect};

use super::Db;
use super::entities::{event, follow_up};
use super::error::Result;
use crate::domain::FollowUpStatus;
use crate::domain::time::{self, Timestamp};

/// Follow-ups not yet closed (open or acknowledged), per status, across all tenants.
/// Served by the `(status, due_at)` index.
pub async fn unclosed_follow_ups(db: &Db) -> Result<Vec<(FollowUpStatus, i64)>> {
    let statuses = [FollowUpStatus::Open, FollowUpStatus::Acknowledged];
    let rows: Vec<(String, i64)> = follow_up::Entity::find()
        .select_only()
        .column(follow_up::Column::Status)
        .column_as(follow_up::Column::Id.count(), "n")
        .filter(follow_up::Column::Status.is_in(statuses.map(FollowUpStatus::as_str)))
        .group_by(follow_up::Column::Status)
        .into_tuple()
        .all(db.conn())
        .await?;
    // A status with no row has no group: report it as zero rather than leave it out.
    Ok(statuses
        .into_iter()
        .map(|s| (s, rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n)))
        .collect())
}

/// Follow-ups not yet closed whose due time has passed at `now`, per status, across
/// all tenants. Served by the `(status, due_at)` index.
pub async fn overdue_follow_ups(db: &Db, now: Timestamp) -> Result<Vec<(FollowUpStatus, i64)>> {
    let statuses = [FollowUpStatus::Open, FollowUpStatus::Acknowledged];
    let rows: Vec<(String, i64)> = follow_up::Entity::find()
        .select_only()
        .column(follow_up::Column::Status)
        .column_as(follow_up::Column::Id.count(), "n")
        .filter(follow_up::Column::Status.is_in(statuses.map(FollowUpStatus::as_str)))
        .filter(follow_up::Column::DueAt.lt(time::to_micros(now)))
        .group_by(follow_up::Column::Status)
        .into_tuple()
        .all(db.conn())
        .await?;
    Ok(statuses
        .into_iter()
        .map(|s| (s, rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n)))
        .collect())
}

/// Most tenants whose oldest waiting event [`fan_out_lag`] looks at in one scrape.
const LAG_TENANTS: usize = 500;

/// How long the oldest event that the webhook fan-out has not passed yet has been
/// waiting, across the tenants with endpoints (zero when none waits). Each tenant's
/// next event is found by the `(tenant_id, seq)` index.
pub async fn fan_out_lag(db: &Db, now: Timestamp) -> Result<chrono::Duration> {
    let behind = super::events::behind(db.conn()).await?;
    if behind.is_empty() {
        return Ok(chrono::Duration::zero());
    }
    let mut next = Condition::any();
    for (tenant, (cursor, _)) in behind.iter().take(LAG_TENANTS) {
        next = next.add(
            Condition::all().add(event::Column::TenantId.eq(tenant.as_str())).add(event::Column::Seq.eq(cursor + 1)),
        );
    }
    let oldest: Option<Option<i64>> = event::Entity::find()
        .select_only()
        .column_as(event::Column::CreatedAt.min(), "oldest")
        .filter(next)
        .into_tuple()
        .one(db.conn())
        .await?;
    Ok(match oldest.flatten() {
        Some(at) => (now - time::from_micros(at)).max(chrono::Duration::zero()),
        // Every waiting event was pruned before its turn: the fan-out skips them at once.
        None => chrono::Duration::zero(),
    })
}

/// The connection pool right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections checked out by a query or transaction.
    pub in_use: u64,
    /// Open connections waiting in the pool.
    pub idle: u64,
    /// The most connections the pool may open.
    pub max: u64,
}

/// How many pooled connections are in use and idle.
pub fn pool_stats(db: &Db) -> PoolStats {
    fn stats<D: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<D>) -> PoolStats {
        let size = u64::from(pool.size());
        let idle = pool.num_idle() as u64;
        PoolStats { in_use: size.saturating_sub(idle), idle, max: u64::from(pool.options().get_max_connections()) }
    }
    match db.backend() {
        DbBackend::Postgres => stats(db.conn().get_postgres_connection_pool()),
        DbBackend::Sqlite => stats(db.conn().get_sqlite_connection_pool()),
        // Not a backend this service connects to.
        _ => PoolStats { in_use: 0, idle: 0, max: 0 },
    }
}
