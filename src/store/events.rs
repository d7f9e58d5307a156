//! The event outbox and its sequencer.
//!
//! Use-cases append events with no sequence number inside their own transaction. The
//! sequencer, one at a time across every replica (a PostgreSQL advisory lock; SQLite
//! has one writer anyway), numbers committed events per tenant and fans them out to
//! the tenant's webhook endpoints, in one transaction. A reader that follows sequence
//! numbers therefore never skips an event that committed late: numbers are handed out
//! only to committed events, in order, and become visible all at once.

use std::collections::BTreeMap;

use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;

use super::Db;
use super::entities::{Scoped, event, tenant};
use super::webhooks;
use crate::domain::TenantId;
use crate::domain::events::Event;
use crate::domain::time::{self, Timestamp};
use crate::error::Result;

/// Key of the PostgreSQL advisory lock that makes the sequencer a singleton.
const SEQUENCER_LOCK: i64 = 0x7261_7070_6f72_7401;

/// Appends an event to the outbox, in the caller's transaction.
pub async fn append(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    event_type: &str,
    data: &Value,
    now: Timestamp,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    event::Model {
        id: id.clone(),
        tenant_id: tenant.0.clone(),
        seq: None,
        event_type: event_type.to_owned(),
        data: data.to_string(),
        created_at: time::to_micros(now),
        sequenced_at: None,
    }
    .into_active_model()
    .insert(conn)
    .await?;
    Ok(id)
}

/// Appends several events in one statement, in order, in the caller's transaction.
pub async fn append_all(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    events: &[(&str, Value)],
    now: Timestamp,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = events.iter().map(|(event_type, data)| {
        event::Model {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.0.clone(),
            seq: None,
            event_type: (*event_type).to_owned(),
            data: data.to_string(),
            created_at: time::to_micros(now),
            sequenced_at: None,
        }
        .into_active_model()
    });
    event::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

fn to_domain(m: event::Model) -> Event {
    Event {
        id: m.id,
        sequence: m.seq.unwrap_or_default(),
        event_type: m.event_type,
        created_at: time::from_micros(m.created_at),
        data: serde_json::from_str(&m.data).unwrap_or(Value::Null),
    }
}

/// Numbers up to `limit` committed events and creates their deliveries. Returns how
/// many it numbered.
pub async fn sequence_pending(db: &Db, now: Timestamp, settle: chrono::Duration, limit: u64) -> Result<usize> {
    let txn = db.begin_write().await?;
    if db.backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({SEQUENCER_LOCK})")).await?;
    }
    // Ids and tenants only: the payloads are read below for tenants with endpoints.
    let pending: Vec<(String, String)> = event::Entity::find()
        .filter(event::Column::Seq.is_null())
        .order_by_asc(event::Column::Id)
        .limit(limit)
        .select_only()
        .column(event::Column::Id)
        .column(event::Column::TenantId)
        .into_tuple()
        .all(&txn)
        .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let n = pending.len();
    let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, tenant_id) in pending {
        by_tenant.entry(tenant_id).or_default().push(id);
    }
    let at = time::to_micros(now);
    for (tenant_id, ids) in by_tenant {
        let current: Option<i64> = tenant::Entity::find_by_id(tenant_id.clone())
            .select_only()
            .column(tenant::Column::EventSeq)
            .into_tuple()
            .one(&txn)
            .await?;
        let first = current.unwrap_or(0) + 1;
        let seq = first + ids.len() as i64 - 1;
        // One statement numbers the tenant's whole batch: `CASE id WHEN … THEN n …`.
        let numbering = ids
            .iter()
            .zip(first..)
            .fold(CaseStatement::new(), |case, (id, n)| case.case(event::Column::Id.eq(id.as_str()), n));
        event::Entity::update_many()
            .col_expr(event::Column::Seq, numbering.into())
            .col_expr(event::Column::SequencedAt, Expr::value(at))
            .filter(event::Column::Id.is_in(ids.iter().map(String::as_str)))
            .exec(&txn)
            .await?;
        let endpoints = webhooks::fanout_endpoints(&txn, &TenantId(tenant_id.clone())).await?;
        if !endpoints.is_empty() {
            let sequenced = event::Entity::find()
                .filter(event::Column::Id.is_in(ids.iter().map(String::as_str)))
                .order_by_asc(event::Column::Id)
                .all(&txn)
                .await?;
            webhooks::fan_out(&txn, &endpoints, &sequenced, now, settle).await?;
        }
        tenant::Entity::update_many()
            .col_expr(tenant::Column::EventSeq, Expr::value(seq))
            .filter(tenant::Column::Id.eq(tenant_id.as_str()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(n)
}

/// Numbered events after `after`, in order, at most `limit`.
pub async fn after(conn: &impl ConnectionTrait, tenant: &TenantId, after: i64, limit: u64) -> Result<Vec<Event>> {
    Ok(event::Entity::scoped(tenant)
        .filter(event::Column::Seq.gt(after))
        .order_by_asc(event::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(to_domain)
        .collect())
}

/// The lowest sequence number still kept, if any.
pub async fn oldest_kept(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<Option<i64>> {
    let v: Option<Option<i64>> = event::Entity::scoped(tenant)
        .filter(event::Column::Seq.is_not_null())
        .select_only()
        .expr(sea_orm::ExprTrait::min(Expr::col(event::Column::Seq)))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(v.flatten())
}

/// The tenant's last sequence number handed out.
pub async fn last_sequence(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<i64> {
    let v: Option<i64> = tenant::Entity::find_by_id(tenant.0.clone())
        .select_only()
        .column(tenant::Column::EventSeq)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(v.unwrap_or(0))
}

/// One event by id.
pub async fn by_id(conn: &impl ConnectionTrait, tenant: &TenantId, id: &str) -> Result<Option<Event>> {
    Ok(event::Entity::scoped(tenant).filter(event::Column::Id.eq(id)).one(conn).await?.map(to_domain))
}

/// Deletes numbered events created before `before`; returns how many.
pub async fn prune(conn: &impl ConnectionTrait, before: Timestamp) -> Result<u64> {
    let res = event::Entity::delete_many()
        .filter(event::Column::Seq.is_not_null())
        .filter(event::Column::CreatedAt.lt(time::to_micros(before)))
        .exec(conn)
        .await?;
    Ok(res.rows_affected)
}
