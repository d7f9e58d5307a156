//! The audit log (docs/privacy.md, "Keys and the audit log"): appended in the
//! transaction of the action it records, listed per tenant, newest first. There is no
//! way to change or delete a line here, and the database refuses it too (triggers).

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use super::error::Result;
use crate::domain::TenantId;
use crate::domain::listing::PageRequest;
use crate::domain::model::Page;
use crate::domain::privacy::{AuditEntry, AuditEvent};
use crate::domain::time::{self, Timestamp};

pub mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        // The key of a tenant's rows (m20261201_000005).
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub details: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl super::entities::Scoped for audit_log::Entity {
    fn tenant_column() -> Self::Column {
        audit_log::Column::TenantId
    }
}

/// Appends one line.
pub async fn record(conn: &impl ConnectionTrait, entry: &AuditEntry, now: Timestamp) -> Result<()> {
    audit_log::Model {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: entry.tenant.0.clone(),
        actor: entry.actor.as_string(),
        action: entry.action.as_str().into(),
        target: entry.target.clone(),
        details: if entry.details.is_null() { "{}".into() } else { entry.details.to_string() },
        created_at: time::to_micros(now),
    }
    .into_active_model()
    .insert(conn)
    .await?;
    Ok(())
}

/// The tenant's lines, newest first.
pub async fn list(conn: &impl ConnectionTrait, tenant: &TenantId, page: &PageRequest) -> Result<Page<AuditEvent>> {
    use super::entities::Scoped as _;
    let mut q = audit_log::Entity::scoped(tenant).order_by_desc(audit_log::Column::Id).limit(page.size);
    if let Some(after) = &page.after {
        q = q.filter(audit_log::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    let items = rows
        .into_iter()
        .map(|r| AuditEvent {
            id: r.id,
            tenant: TenantId(r.tenant_id),
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            at: time::from_micros(r.created_at),
        })
        .collect();
    Ok(Page { items, next_page_token: next })
}
