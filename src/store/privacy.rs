//! Erasure at the storage level (docs/privacy.md, "Erasing a customer"): every table
//! that holds something of one customer, in the caller's transaction, and the
//! tombstones that later writes respect.
//!
//! The customer's scores stay as anonymous counts: their responses, invitations,
//! follow-ups and daily roll-ups move to a *stand-in* — a new customer row with a
//! random id, no data and `erased_at` set — so past NPS, funnels and DAU do not move,
//! and nothing left links them to the person. What the person wrote or is (comments,
//! properties, notes, resolutions, traits, raw events, per-property counts, tokens,
//! idempotency keys, request fingerprints) is deleted or emptied; outbox events and
//! webhook deliveries that name the customer are rewritten without it.

use std::collections::HashSet;

use sea_orm::sea_query::{Expr, LikeExpr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait as _, IntoActiveModel, QueryFilter, Value,
};

use super::entities::{
    Scoped, customer, delivery, event, follow_up, follow_up_entry, imported_response, invitation, response,
};
use super::error::Result;
use super::sql::{exec, statement};
use crate::domain::privacy::{ErasureReport, ExportedActivity, ExportedInvitation, redact_event_data, subject_hash};
use crate::domain::time::{self, Timestamp};
use crate::domain::{CustomerRowId, TenantId};

pub mod erased_customer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "erased_customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject_hash: String,
        pub erasure_id: String,
        pub erased_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Which of these CRM ids were erased.
pub async fn erased_among(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: &[&str],
) -> Result<HashSet<String>> {
    if externals.is_empty() {
        return Ok(HashSet::new());
    }
    let by_hash: std::collections::HashMap<String, &str> =
        externals.iter().map(|e| (subject_hash(tenant, e), *e)).collect();
    let mut out = HashSet::new();
    let hashes: Vec<&String> = by_hash.keys().collect();
    for chunk in hashes.chunks(500) {
        let rows = erased_customer::Entity::find()
            .filter(erased_customer::Column::TenantId.eq(tenant.as_str()))
            .filter(super::sql::one_of(
                conn.get_database_backend(),
                erased_customer::Column::SubjectHash,
                chunk.iter().map(|h| h.to_string()).collect(),
            ))
            .all(conn)
            .await?;
        out.extend(rows.into_iter().filter_map(|r| by_hash.get(&r.subject_hash).map(|e| e.to_string())));
    }
    Ok(out)
}

/// Whether this CRM id was erased.
pub async fn is_erased(conn: &impl ConnectionTrait, tenant: &TenantId, external: &str) -> Result<bool> {
    Ok(!erased_among(conn, tenant, &[external]).await?.is_empty())
}

/// Records the tombstone (idempotent).
pub async fn record_tombstone(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    external: &str,
    erasure_id: &str,
    now: Timestamp,
) -> Result<()> {
    let row = erased_customer::Model {
        tenant_id: tenant.0.clone(),
        subject_hash: subject_hash(tenant, external),
        erasure_id: erasure_id.to_owned(),
        erased_at: time::to_micros(now),
    };
    let inserted = erased_customer::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::columns([erased_customer::Column::TenantId, erased_customer::Column::SubjectHash])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await;
    match inserted {
        Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Moves everything of customer row `row` to a new stand-in row (`stand_in`, whose CRM
/// id is `stand_in_external`), empties or deletes what the person wrote or is, and
/// deletes the row. In the caller's transaction.
pub async fn erase_rows(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row: &CustomerRowId,
    stand_in: &CustomerRowId,
    stand_in_external: &str,
    now: Timestamp,
) -> Result<ErasureReport> {
    let us = time::to_micros(now);
    let t = tenant.as_str();
    customer::ActiveModel {
        id: sea_orm::Set(stand_in.0.clone()),
        tenant_id: sea_orm::Set(t.to_owned()),
        external_id: sea_orm::Set(stand_in_external.to_owned()),
        properties: sea_orm::Set("{}".into()),
        unsubscribed_at: sea_orm::Set(None),
        erased_at: sea_orm::Set(Some(us)),
        created_at: sea_orm::Set(us),
        updated_at: sea_orm::Set(us),
    }
    .insert(conn)
    .await?;
    let mut report = ErasureReport { found: true, ..Default::default() };

    report.responses = response::Entity::update_many()
        .col_expr(response::Column::CustomerId, Expr::value(stand_in.as_str()))
        .col_expr(response::Column::Comment, Expr::value(""))
        .col_expr(response::Column::Properties, Expr::value("{}"))
        .col_expr(response::Column::IdempotencyKey, Expr::value(Option::<String>::None))
        .col_expr(response::Column::RequestHash, Expr::value(Option::<String>::None))
        .filter(response::Column::TenantId.eq(t))
        .filter(response::Column::CustomerId.eq(row.as_str()))
        .exec(conn)
        .await?
        .rows_affected;
    // An invitation without its token can no longer be answered: a late answer by a
    // link in an old e-mail finds nothing.
    report.invitations = invitation::Entity::update_many()
        .col_expr(invitation::Column::CustomerId, Expr::value(stand_in.as_str()))
        .col_expr(invitation::Column::TokenHash, Expr::value(Option::<String>::None))
        .col_expr(invitation::Column::IdempotencyKey, Expr::value(Option::<String>::None))
        .col_expr(invitation::Column::RequestHash, Expr::value(Option::<String>::None))
        .filter(invitation::Column::TenantId.eq(t))
        .filter(invitation::Column::CustomerId.eq(row.as_str()))
        .exec(conn)
        .await?
        .rows_affected;
    report.follow_ups = follow_up::Entity::update_many()
        .col_expr(follow_up::Column::CustomerId, Expr::value(stand_in.as_str()))
        .col_expr(follow_up::Column::Resolution, Expr::value(""))
        .filter(follow_up::Column::TenantId.eq(t))
        .filter(follow_up::Column::CustomerId.eq(row.as_str()))
        .exec(conn)
        .await?
        .rows_affected;
    let their_follow_ups = Query::select()
        .column(follow_up::Column::Id)
        .from(follow_up::Entity)
        .and_where(follow_up::Column::TenantId.eq(t))
        .and_where(follow_up::Column::CustomerId.eq(stand_in.as_str()))
        .to_owned();
    follow_up_entry::Entity::update_many()
        .col_expr(follow_up_entry::Column::Body, Expr::value(""))
        .filter(follow_up_entry::Column::TenantId.eq(t))
        .filter(follow_up_entry::Column::FollowUpId.in_subquery(their_follow_ups))
        .exec(conn)
        .await?;
    let their_responses = Query::select()
        .column(response::Column::Id)
        .from(response::Entity)
        .and_where(response::Column::TenantId.eq(t))
        .and_where(response::Column::CustomerId.eq(stand_in.as_str()))
        .to_owned();
    imported_response::Entity::update_many()
        .col_expr(imported_response::Column::RequestHash, Expr::value(""))
        .filter(imported_response::Column::TenantId.eq(t))
        .filter(imported_response::Column::Id.in_subquery(their_responses))
        .exec(conn)
        .await?;

    // Raw activity and the per-property counts hold what the person did and is; the
    // daily counts stay, with the stand-in, so org metrics do not move. The dedup
    // records of their events go too (a message id may say something of them; a late
    // resend naming them is refused by the tombstone anyway).
    exec(
        conn,
        "DELETE FROM activity_event_ids WHERE tenant_id = ? AND customer_id = ?",
        vec![t.into(), row.0.clone().into()],
    )
    .await?;
    report.activity_events = exec(
        conn,
        "DELETE FROM activity_events WHERE tenant_id = ? AND customer_id = ?",
        vec![t.into(), row.0.clone().into()],
    )
    .await?;
    exec(
        conn,
        "DELETE FROM activity_day_props WHERE tenant_id = ? AND customer_id = ?",
        vec![t.into(), row.0.clone().into()],
    )
    .await?;
    for table in ["activity_days", "activity_day_actions", "engagement_customers"] {
        exec(
            conn,
            &format!("UPDATE {table} SET customer_id = ? WHERE tenant_id = ? AND customer_id = ?"),
            vec![stand_in.0.clone().into(), t.into(), row.0.clone().into()],
        )
        .await?;
    }
    customer::Entity::delete_many()
        .filter(customer::Column::TenantId.eq(t))
        .filter(customer::Column::Id.eq(row.as_str()))
        .exec(conn)
        .await?;
    Ok(report)
}

/// `s` for a LIKE pattern, its wildcards escaped with `\`.
fn like_escaped(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Rewrites the tenant's outbox events and webhook deliveries that name the customer
/// `external`, without it ([`redact_event_data`]). Returns (events, deliveries) changed.
pub async fn scrub_events(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    external: &str,
    stand_in_external: &str,
) -> Result<(u64, u64)> {
    // The id as it appears inside JSON text.
    let quoted = serde_json::to_string(external).unwrap_or_default();
    let needle = format!("%{}%", like_escaped(&quoted));
    let like = || LikeExpr::new(needle.clone()).escape('\\');
    let mut events = 0;
    for e in event::Entity::scoped(tenant).filter(Expr::col(event::Column::Data).like(like())).all(conn).await? {
        let mut data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        if redact_event_data(&mut data, external, stand_in_external) {
            event::Entity::update_many()
                .col_expr(event::Column::Data, Expr::value(data.to_string()))
                .filter(event::Column::TenantId.eq(tenant.as_str()))
                .filter(event::Column::Id.eq(e.id.as_str()))
                .exec(conn)
                .await?;
            events += 1;
        }
    }
    let mut deliveries = 0;
    let rows = delivery::Entity::scoped(tenant)
        .filter(
            sea_orm::Condition::any()
                .add(Expr::col(delivery::Column::Payload).like(like()))
                .add(Expr::col(delivery::Column::Body).like(like())),
        )
        .all(conn)
        .await?;
    for d in rows {
        let mut payload: serde_json::Value = serde_json::from_str(&d.payload).unwrap_or_default();
        let mut changed = redact_event_data(&mut payload, external, stand_in_external);
        let body = match &d.body {
            Some(b) => {
                let mut body: serde_json::Value = serde_json::from_str(b).unwrap_or_default();
                changed |= redact_event_data(&mut body, external, stand_in_external);
                Some(body.to_string())
            }
            None => None,
        };
        if changed {
            delivery::Entity::update_many()
                .col_expr(delivery::Column::Payload, Expr::value(payload.to_string()))
                .col_expr(delivery::Column::Body, Expr::value(body))
                .filter(delivery::Column::TenantId.eq(tenant.as_str()))
                .filter(delivery::Column::Id.eq(d.id.as_str()))
                .exec(conn)
                .await?;
            deliveries += 1;
        }
    }
    Ok((events, deliveries))
}

/// The customer's invitations and suppressions, oldest first, after the id `after`.
pub async fn invitations_of(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row: &CustomerRowId,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<ExportedInvitation>> {
    use sea_orm::{QueryOrder, QuerySelect};
    let mut q = invitation::Entity::scoped(tenant)
        .filter(invitation::Column::CustomerId.eq(row.as_str()))
        .order_by_asc(invitation::Column::Id)
        .limit(limit);
    if let Some(a) = after {
        q = q.filter(invitation::Column::Id.gt(a));
    }
    let us = |v: Option<i64>| v.map(time::from_micros);
    Ok(q.all(conn)
        .await?
        .into_iter()
        .map(|i| ExportedInvitation {
            id: i.id,
            survey_id: i.survey_id,
            channel: i.channel,
            outcome: i.outcome,
            rule: i.rule,
            forced: i.forced,
            created_at: time::from_micros(i.created_at),
            expires_at: us(i.expires_at),
            answered_at: us(i.answered_at),
            dismissed_at: us(i.dismissed_at),
            response_id: i.response_id,
        })
        .collect())
}

/// The customer's raw activity events in (time, message id) order, after `after`.
pub async fn activity_of(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row: &CustomerRowId,
    after: Option<(Timestamp, String)>,
    limit: u64,
) -> Result<Vec<ExportedActivity>> {
    let mut sql =
        "SELECT message_id, kind, name, occurred_at, properties, seconds, amount_minor, currency, received_at \
                   FROM activity_events WHERE tenant_id = ? AND customer_id = ?"
            .to_owned();
    let mut values: Vec<Value> = vec![tenant.as_str().into(), row.as_str().into()];
    if let Some((at, id)) = after {
        // The bound alone (`>=`) lets PostgreSQL skip the partitions of earlier months.
        sql.push_str(" AND occurred_at >= ? AND (occurred_at > ? OR (occurred_at = ? AND message_id > ?))");
        let at = time::to_micros(at);
        values.extend([at.into(), at.into(), at.into(), id.into()]);
    }
    sql.push_str(&format!(" ORDER BY occurred_at, message_id LIMIT {limit}"));
    let rows = conn.query_all_raw(statement(conn.get_database_backend(), &sql, values)).await?;
    rows.into_iter()
        .map(|r| {
            let properties: String = r.try_get_by_index(4)?;
            Ok(ExportedActivity {
                message_id: r.try_get_by_index(0)?,
                kind: r.try_get_by_index(1)?,
                name: r.try_get_by_index(2)?,
                occurred_at: time::from_micros(r.try_get_by_index(3)?),
                properties: serde_json::from_str(&properties).unwrap_or(serde_json::Value::Null),
                seconds: r.try_get_by_index(5)?,
                amount_minor: r.try_get_by_index(6)?,
                currency: r.try_get_by_index(7)?,
                received_at: time::from_micros(r.try_get_by_index(8)?),
            })
        })
        .collect::<std::result::Result<Vec<_>, sea_orm::DbErr>>()
        .map_err(Into::into)
}
