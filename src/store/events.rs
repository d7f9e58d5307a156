//! The event outbox and the webhook fan-out.
//!
//! Use-cases append events inside their own transaction, numbered there: appending
//! bumps the tenant's counter (`tenants.event_seq`), which holds the tenant's row
//! locked until the transaction ends, so a second writer of the same tenant takes its
//! numbers only after the first has committed. Numbers therefore become visible in
//! order: a reader that follows them never skips an event that commits late. The
//! fan-out, one at a time across every replica (a PostgreSQL advisory lock; SQLite has
//! one writer anyway), creates the webhook deliveries of each tenant's events after
//! its cursor (`fanout_cursors`).

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, Iterable, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::Db;
use super::entities::{Scoped, event, fanout_cursor, tenant, webhook_endpoint};
use super::error::{Result, StoreError};
use super::webhooks;
use crate::domain::TenantId;
use crate::domain::events::Event;
use crate::domain::time::{self, Timestamp};

/// Key of the PostgreSQL advisory lock that makes the fan-out a singleton.
const FANOUT_LOCK: i64 = 0x7261_7070_6f72_7401;

/// Appends an event to the outbox, in the caller's transaction; returns its id.
pub async fn append(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    event_type: &str,
    data: &Value,
    now: Timestamp,
) -> Result<String> {
    let mut ids = append_all(conn, tenant, &[(event_type, data.clone())], now).await?;
    ids.pop().ok_or_else(|| StoreError::other(anyhow::anyhow!("an appended event has no id")))
}

/// Appends several events, numbered in order, in the caller's transaction; returns
/// their ids. From here to the end of the transaction the tenant's row stays locked
/// (see the module doc), so callers append last, just before they commit.
pub async fn append_all(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    events: &[(&str, Value)],
    now: Timestamp,
) -> Result<Vec<String>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let last = take_numbers(conn, tenant, events.len() as i64).await?;
    let rows = rows(tenant, events, last - events.len() as i64 + 1, now);
    let ids = rows.iter().map(|r| r.id.clone()).collect();
    super::sql::insert_models::<event::Entity>(conn, &rows, "").await?;
    Ok(ids)
}

/// The outbox rows of `events`, numbered from `first` on.
pub(super) fn rows(tenant: &TenantId, events: &[(&str, Value)], first: i64, now: Timestamp) -> Vec<event::Model> {
    let at = time::to_micros(now);
    events
        .iter()
        .zip(first..)
        .map(|((event_type, data), seq)| event::Model {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.0.clone(),
            seq: Some(seq),
            event_type: (*event_type).to_owned(),
            data: data.to_string(),
            created_at: at,
            sequenced_at: Some(at),
        })
        .collect()
}

/// PostgreSQL: the `pg_notify` call that announces a tenant's new last number, as
/// `RETURNING` of the counter's update ([`super::notify`]).
pub(super) fn notify_call() -> String {
    format!("pg_notify('{}', \"id\" || ':' || \"event_seq\")", super::notify::EVENTS)
}

/// PostgreSQL: `events` appended and numbered in the same statement as the inserts of
/// `chain` (see [`append_all`]: the counter's update, then the rows numbered from the
/// number before it, the NOTIFY in its `RETURNING`). `None` when the rows cannot go as
/// arrays; an error when the tenant is gone. Returns the events' ids.
pub(super) async fn append_all_chained(
    conn: &impl ConnectionTrait,
    chain: super::sql::InsertChain,
    tenant: &TenantId,
    events: &[(&str, Value)],
    now: Timestamp,
) -> Result<Option<Vec<String>>> {
    let n = events.len() as i64;
    // Numbered 1..=n here; the statement adds the number before the batch's.
    let rows = rows(tenant, events, 1, now);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let chain = chain.part("s", |q| {
        q.push("UPDATE \"tenants\" SET \"event_seq\" = \"event_seq\" + ").bind(n);
        q.push(" WHERE \"id\" = ").bind(tenant.as_str());
        q.push(" RETURNING \"event_seq\" - ").bind(n).push(" AS base, ").push(&notify_call()).push(" AS notified");
    });
    let seq = <event::Entity as EntityTrait>::Column::iter().position(|c| c.as_str() == "seq");
    let Some(q) =
        chain.finish::<event::Entity>(&rows, "s, ", |i, e| if Some(i) == seq { format!("s.base + {e}") } else { e })
    else {
        return Ok(None);
    };
    let written = q.exec(conn).await?;
    if written != n as u64 {
        return Err(StoreError::other(anyhow::anyhow!("tenant {} vanished while writing", tenant.0)));
    }
    Ok(Some(ids))
}

/// Moves the tenant's counter on by `n` and returns the new last number. On
/// PostgreSQL the same statement queues the NOTIFY that wakes the other replicas'
/// streams ([`super::notify`]): sent when the transaction commits, with the tenant and
/// its new last number, at no extra round trip.
async fn take_numbers(conn: &impl ConnectionTrait, tenant: &TenantId, n: i64) -> Result<i64> {
    let mut bump = Query::update()
        .table(tenant::Entity)
        .value(tenant::Column::EventSeq, Expr::col(tenant::Column::EventSeq).add(n))
        .and_where(tenant::Column::Id.eq(tenant.as_str()))
        .to_owned();
    if conn.get_database_backend() == DbBackend::Postgres {
        bump.returning(Query::returning().exprs([Expr::col(tenant::Column::EventSeq), Expr::cust(notify_call())]));
    } else {
        bump.returning_col(tenant::Column::EventSeq);
    }
    let row = conn
        .query_one(&bump)
        .await?
        .ok_or_else(|| StoreError::other(anyhow::anyhow!("tenant {} vanished while writing", tenant.0)))?;
    Ok(row.try_get::<i64>("", "event_seq")?)
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

/// Creates the webhook deliveries of up to `limit` events past the cursors of the
/// tenants with endpoints, and moves the cursors on. Returns how many events it passed.
pub async fn fan_out_new(db: &Db, now: Timestamp, settle: chrono::Duration, limit: u64) -> Result<usize> {
    // A cheap look first, without a transaction or lock: usually nobody is behind.
    if behind(db.conn()).await?.is_empty() {
        return Ok(0);
    }
    let txn = db.begin_write().await?;
    if db.backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({FANOUT_LOCK})")).await?;
    }
    let mut passed = 0;
    for (tenant_id, (cursor, last)) in behind(&txn).await? {
        let tenant = TenantId(tenant_id);
        let endpoints = webhooks::fanout_endpoints(&txn, &tenant).await?;
        let events = event::Entity::scoped(&tenant)
            .filter(event::Column::Seq.gt(cursor))
            .filter(event::Column::Seq.lte(last))
            .order_by_asc(event::Column::Seq)
            .limit(Ord::max(limit.saturating_sub(passed as u64), 1))
            .all(&txn)
            .await?;
        webhooks::fan_out(&txn, &endpoints, &events, now, settle).await?;
        // Events pruned before their turn leave nothing to read: the cursor moves past.
        let upto = events.last().and_then(|e| e.seq).unwrap_or(last);
        passed += (upto - cursor) as usize;
        move_cursor(&txn, &tenant, upto, now).await?;
        if passed as u64 >= limit {
            break;
        }
    }
    if passed > 0 && db.backend() == DbBackend::Postgres {
        // Every replica's dispatcher may take a share of the new deliveries (at commit).
        txn.execute_unprepared(&format!("SELECT pg_notify('{}', '')", super::notify::DELIVERIES)).await?;
    }
    txn.commit().await?;
    Ok(passed)
}

/// Called in the transaction that creates an endpoint: for a tenant without endpoints
/// (whose events nobody fanned out) the cursor moves to its last event, so a new
/// endpoint hears of what happens from now on, not of the tenant's history. A tenant
/// that has endpoints keeps its cursor: their deliveries are not fanned out yet.
pub async fn start_fan_out(conn: &impl ConnectionTrait, tenant: &TenantId, now: Timestamp) -> Result<()> {
    if !webhooks::fanout_endpoints(conn, tenant).await?.is_empty() {
        return Ok(());
    }
    let last = last_sequence(conn, tenant).await?;
    move_cursor(conn, tenant, last, now).await
}

async fn move_cursor(conn: &impl ConnectionTrait, tenant: &TenantId, seq: i64, now: Timestamp) -> Result<()> {
    let moved = fanout_cursor::ActiveModel {
        id: sea_orm::Set(tenant.0.clone()),
        seq: sea_orm::Set(seq),
        updated_at: sea_orm::Set(time::to_micros(now)),
    };
    fanout_cursor::Entity::insert(moved)
        .on_conflict(
            OnConflict::column(fanout_cursor::Column::Id)
                .update_columns([fanout_cursor::Column::Seq, fanout_cursor::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Tenants with webhook endpoints whose last event number is past their fan-out
/// cursor: (cursor, last). Every number up to `last` is committed, since numbers
/// commit in order.
pub(super) async fn behind(conn: &impl ConnectionTrait) -> Result<Vec<(String, (i64, i64))>> {
    let with_endpoints =
        Query::select().distinct().column(webhook_endpoint::Column::TenantId).from(webhook_endpoint::Entity).to_owned();
    let tenants: Vec<(String, i64)> = tenant::Entity::find()
        .select_only()
        .column(tenant::Column::Id)
        .column(tenant::Column::EventSeq)
        .filter(tenant::Column::Id.in_subquery(with_endpoints))
        .order_by_asc(tenant::Column::Id)
        .into_tuple()
        .all(conn)
        .await?;
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let cursors: HashMap<String, i64> = fanout_cursor::Entity::find()
        .select_only()
        .column(fanout_cursor::Column::Id)
        .column(fanout_cursor::Column::Seq)
        .filter(fanout_cursor::Column::Id.is_in(tenants.iter().map(|(id, _)| id.as_str())))
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    Ok(tenants
        .into_iter()
        .filter_map(|(id, last)| {
            let cursor = cursors.get(&id).copied().unwrap_or(0);
            (last > cursor).then_some((id, (cursor, last)))
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};

    use super::*;
    use crate::store::testing::{memory_db, migrate_up_to, tenant_row};

    fn event_row(id: &str, tenant: &str, seq: Option<i64>) -> event::Model {
        event::Model {
            id: id.into(),
            tenant_id: tenant.into(),
            seq,
            event_type: "response.recorded".into(),
            data: "{}".into(),
            created_at: 1,
            sequenced_at: seq.map(|_| 1),
        }
    }

    async fn seqs(db: &Db, ids: &[&str]) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for id in ids {
            let row = event::Entity::find().filter(event::Column::Id.eq(*id)).one(db.conn()).await.unwrap();
            out.push(row.unwrap().seq);
        }
        out
    }

    async fn cursor(db: &Db, tenant: &str) -> Option<i64> {
        fanout_cursor::Entity::find_by_id(tenant).one(db.conn()).await.unwrap().map(|c| c.seq)
    }

    async fn counter(db: &Db, tenant: &str) -> i64 {
        tenant::Entity::find_by_id(tenant).one(db.conn()).await.unwrap().unwrap().event_seq
    }

    /// An endpoint row as written before secrets were sealed (no key-id column yet).
    fn endpoint_row_before_sealing(id: &str, tenant: &str) -> webhook_endpoint::ActiveModel {
        let mut row = endpoint_row(id, tenant).into_active_model();
        row.secret_key_id = sea_orm::ActiveValue::NotSet;
        row
    }

    fn endpoint_row(id: &str, tenant: &str) -> webhook_endpoint::Model {
        webhook_endpoint::Model {
            id: id.into(),
            tenant_id: tenant.into(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            event_types: "[]".into(),
            survey_ids: "[]".into(),
            secret: "whsec_test".into(),
            secret_key_id: None,
            enabled: true,
            disabled_reason: String::new(),
            failing_since: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// The event numbers that have deliveries.
    async fn delivered_seqs(db: &Db) -> Vec<i64> {
        let mut v: Vec<i64> = super::super::entities::delivery::Entity::find()
            .all(db.conn())
            .await
            .unwrap()
            .iter()
            .map(|d| d.event_seq)
            .collect();
        v.sort_unstable();
        v
    }

    #[tokio::test]
    async fn events_a_sequencer_left_unnumbered_are_numbered_by_the_upgrade_and_fanned_out_later() {
        let db = memory_db().await;
        migrate_up_to(&db, "m20261129_000002_events_numbered_on_write").await;
        tenant_row("t1", 2).into_active_model().insert(db.conn()).await.unwrap();
        tenant_row("t2", 0).into_active_model().insert(db.conn()).await.unwrap();
        endpoint_row_before_sealing("w1", "t1").insert(db.conn()).await.unwrap();
        for e in [
            event_row("e1", "t1", Some(1)),
            event_row("e2", "t1", Some(2)),
            event_row("e3", "t1", None),
            event_row("e4", "t2", None),
            event_row("e5", "t1", None),
        ] {
            e.into_active_model().insert(db.conn()).await.unwrap();
        }

        db.migrate().await.unwrap();

        assert_eq!(seqs(&db, &["e1", "e2", "e3", "e5", "e4"]).await, [Some(1), Some(2), Some(3), Some(4), Some(1)]);
        assert_eq!((counter(&db, "t1").await, counter(&db, "t2").await), (4, 1));
        // What was numbered before the upgrade was fanned out with its numbering.
        assert_eq!((cursor(&db, "t1").await, cursor(&db, "t2").await), (Some(2), Some(0)));
        let passed = fan_out_new(&db, time::from_micros(2), chrono::Duration::zero(), 100).await.unwrap();
        assert_eq!(passed, 2, "e3 and e5 go to t1's endpoint; t2 has none");
        assert_eq!(delivered_seqs(&db).await, [3, 4]);
        assert_eq!((cursor(&db, "t1").await, cursor(&db, "t2").await), (Some(4), Some(0)));
    }

    #[tokio::test]
    async fn each_transaction_numbers_its_events_after_the_last_committed_one() {
        let db = memory_db().await;
        db.migrate().await.unwrap();
        tenant_row("t1", 0).into_active_model().insert(db.conn()).await.unwrap();
        tenant_row("t2", 0).into_active_model().insert(db.conn()).await.unwrap();
        let now = time::from_micros(5);
        let (t1, t2) = (TenantId("t1".into()), TenantId("t2".into()));
        let two = [("response.recorded", Value::Null), ("follow_up.opened", Value::Null)];

        let txn = db.begin_write().await.unwrap();
        let first = append_all(&txn, &t1, &two, now).await.unwrap();
        txn.commit().await.unwrap();
        let txn = db.begin_write().await.unwrap();
        let other = append(&txn, &t2, "response.recorded", &Value::Null, now).await.unwrap();
        let third = append(&txn, &t1, "response.recorded", &Value::Null, now).await.unwrap();
        txn.commit().await.unwrap();
        // A transaction that rolls back gives its numbers back.
        let txn = db.begin_write().await.unwrap();
        append(&txn, &t1, "response.recorded", &Value::Null, now).await.unwrap();
        txn.rollback().await.unwrap();

        let ids: Vec<&str> = first.iter().chain([&third, &other]).map(String::as_str).collect();
        assert_eq!(seqs(&db, &ids).await, [Some(1), Some(2), Some(3), Some(1)]);
        assert_eq!((counter(&db, "t1").await, counter(&db, "t2").await), (3, 1));
        let listed: Vec<i64> = after(db.conn(), &t1, 1, 10).await.unwrap().iter().map(|e| e.sequence).collect();
        assert_eq!(listed, [2, 3]);
    }

    #[tokio::test]
    async fn a_first_endpoint_hears_of_events_after_it_a_further_one_also_of_those_not_yet_fanned_out() {
        let db = memory_db().await;
        db.migrate().await.unwrap();
        tenant_row("t1", 0).into_active_model().insert(db.conn()).await.unwrap();
        let (t1, now) = (TenantId("t1".into()), time::from_micros(5));
        let write = |n: usize| {
            let db = db.clone();
            let t1 = t1.clone();
            async move {
                let txn = db.begin_write().await.unwrap();
                let events = vec![("response.recorded", Value::Null); n];
                append_all(&txn, &t1, &events, now).await.unwrap();
                txn.commit().await.unwrap();
            }
        };
        write(2).await;
        // No endpoint: nothing to fan out, and the fan-out does not even look.
        assert_eq!(fan_out_new(&db, now, chrono::Duration::zero(), 100).await.unwrap(), 0);
        assert_eq!(cursor(&db, "t1").await, None);

        let txn = db.begin_write().await.unwrap();
        start_fan_out(&txn, &t1, now).await.unwrap();
        endpoint_row("w1", "t1").into_active_model().insert(&txn).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(cursor(&db, "t1").await, Some(2), "events 1 and 2 came before the endpoint");
        write(1).await;
        // A second endpoint while event 3 is not fanned out yet: the cursor stays.
        let txn = db.begin_write().await.unwrap();
        start_fan_out(&txn, &t1, now).await.unwrap();
        endpoint_row("w2", "t1").into_active_model().insert(&txn).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(cursor(&db, "t1").await, Some(2));

        assert_eq!(fan_out_new(&db, now, chrono::Duration::zero(), 100).await.unwrap(), 1);
        assert_eq!(delivered_seqs(&db).await, [3, 3], "event 3 to each endpoint");
        assert_eq!(cursor(&db, "t1").await, Some(3));
        assert_eq!(fan_out_new(&db, now, chrono::Duration::zero(), 100).await.unwrap(), 0);
    }
}
