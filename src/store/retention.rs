//! Retention per tenant (docs/privacy.md, "Retention"): the policies, and the removal
//! of what is older, one bounded batch per statement so no pass holds locks for long.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, IntoActiveModel, Value};

use super::error::Result;
use super::sql::{exec, statement};
use crate::domain::TenantId;
use crate::domain::privacy::RetentionPolicy;
use crate::domain::time::{self, Timestamp};

pub mod retention_policy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "retention_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub activity_event_days: i32,
        pub comment_days: i32,
        pub invitation_days: i32,
        pub delivery_log_days: i32,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn to_policy(m: &retention_policy::Model) -> RetentionPolicy {
    RetentionPolicy {
        activity_event_days: m.activity_event_days,
        comment_days: m.comment_days,
        invitation_days: m.invitation_days,
        delivery_log_days: m.delivery_log_days,
    }
}

/// The tenant's policy (the defaults until set) and when it was last set.
pub async fn get(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<(RetentionPolicy, Option<Timestamp>)> {
    Ok(match retention_policy::Entity::find_by_id(tenant.0.clone()).one(conn).await? {
        Some(m) => (to_policy(&m), Some(time::from_micros(m.updated_at))),
        None => (RetentionPolicy::default(), None),
    })
}

/// Sets the tenant's policy.
pub async fn set(conn: &impl ConnectionTrait, tenant: &TenantId, p: &RetentionPolicy, now: Timestamp) -> Result<()> {
    let row = retention_policy::Model {
        tenant_id: tenant.0.clone(),
        activity_event_days: p.activity_event_days,
        comment_days: p.comment_days,
        invitation_days: p.invitation_days,
        delivery_log_days: p.delivery_log_days,
        updated_at: time::to_micros(now),
    };
    retention_policy::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::column(retention_policy::Column::TenantId)
                .update_columns([
                    retention_policy::Column::ActivityEventDays,
                    retention_policy::Column::CommentDays,
                    retention_policy::Column::InvitationDays,
                    retention_policy::Column::DeliveryLogDays,
                    retention_policy::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Every tenant with its policy (the defaults where none is set).
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<(TenantId, RetentionPolicy)>> {
    use super::entities::tenant;
    let set: std::collections::HashMap<String, RetentionPolicy> =
        retention_policy::Entity::find().all(conn).await?.iter().map(|m| (m.tenant_id.clone(), to_policy(m))).collect();
    let tenants = tenant::Entity::find().all(conn).await?;
    Ok(tenants
        .into_iter()
        .map(|t| {
            let p = set.get(&t.id).copied().unwrap_or_default();
            (TenantId(t.id), p)
        })
        .collect())
}

/// Deletes up to `limit` raw activity events that happened before `before`. Both
/// halves carry the time bound, so on PostgreSQL they read only the months before it.
/// Their dedup records stay: a message id is recorded once, forever.
pub async fn activity_events(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    before: Timestamp,
    limit: u64,
) -> Result<u64> {
    let before = time::to_micros(before);
    exec(
        conn,
        &format!(
            "DELETE FROM activity_events WHERE tenant_id = ? AND occurred_at < ? AND message_id IN \
             (SELECT message_id FROM activity_events WHERE tenant_id = ? AND occurred_at < ? LIMIT {limit})"
        ),
        vec![tenant.as_str().into(), before.into(), tenant.as_str().into(), before.into()],
    )
    .await
}

/// Empties up to `limit` comments of answers recorded before `before`.
pub async fn comments(conn: &impl ConnectionTrait, tenant: &TenantId, before: Timestamp, limit: u64) -> Result<u64> {
    exec(
        conn,
        &format!(
            "UPDATE responses SET comment = '' WHERE tenant_id = ? AND id IN \
             (SELECT id FROM responses WHERE tenant_id = ? AND recorded_at < ? AND comment <> '' LIMIT {limit})"
        ),
        vec![tenant.as_str().into(), tenant.as_str().into(), time::to_micros(before).into()],
    )
    .await
}

/// Removes the token, idempotency key and fingerprint of up to `limit` invitations
/// issued before `before` (the rows stay, as counts).
pub async fn invitations(conn: &impl ConnectionTrait, tenant: &TenantId, before: Timestamp, limit: u64) -> Result<u64> {
    exec(
        conn,
        &format!(
            "UPDATE invitations SET token_hash = NULL, idempotency_key = NULL, request_hash = NULL \
             WHERE tenant_id = ? AND id IN (SELECT id FROM invitations WHERE tenant_id = ? AND created_at < ? \
             AND (token_hash IS NOT NULL OR idempotency_key IS NOT NULL OR request_hash IS NOT NULL) LIMIT {limit})"
        ),
        vec![tenant.as_str().into(), tenant.as_str().into(), time::to_micros(before).into()],
    )
    .await
}

/// Deletes up to `limit` webhook deliveries created before `before` that are no longer
/// pending, with their attempts. Returns how many deliveries.
pub async fn delivery_logs(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    before: Timestamp,
    limit: u64,
) -> Result<u64> {
    let pick = format!(
        "SELECT id FROM deliveries WHERE tenant_id = ? AND created_at < ? AND status <> 'pending' LIMIT {limit}"
    );
    let rows = conn
        .query_all_raw(statement(
            conn.get_database_backend(),
            &pick,
            vec![tenant.as_str().into(), time::to_micros(before).into()],
        ))
        .await?;
    let ids: Vec<String> = rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let values = |ids: &[String]| ids.iter().map(|i| Value::from(i.clone())).collect::<Vec<_>>();
    let mut scoped = vec![Value::from(tenant.as_str())];
    scoped.extend(values(&ids));
    exec(
        conn,
        &format!("DELETE FROM delivery_attempts WHERE tenant_id = ? AND delivery_id IN ({marks})"),
        scoped.clone(),
    )
    .await?;
    exec(conn, &format!("DELETE FROM deliveries WHERE tenant_id = ? AND id IN ({marks})"), scoped).await
}
