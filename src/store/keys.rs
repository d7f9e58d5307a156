//! API keys as operators manage them (docs/privacy.md, "Keys and the audit log"):
//! listed without their secrets, with their expiry and time of last use.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait as _, QueryFilter, QueryOrder, QuerySelect};

use super::error::{Result, StoreError};
use crate::domain::listing::PageRequest;
use crate::domain::model::{KeyKind, Page};
use crate::domain::privacy::ApiKeyInfo;
use crate::domain::time::{self, Timestamp};
use crate::domain::{KeyId, TenantId};

/// `api_keys` with the columns the survey core's entity does not name.
pub mod api_key_info {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub kind: String,
        pub key_hash: String,
        pub prefix: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
        pub expires_at: Option<i64>,
        pub last_used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) fn to_info(m: api_key_info::Model) -> ApiKeyInfo {
    ApiKeyInfo {
        id: KeyId(m.id),
        tenant: TenantId(m.tenant_id),
        kind: if m.kind == KeyKind::Publishable.as_str() { KeyKind::Publishable } else { KeyKind::Secret },
        prefix: m.prefix,
        created_at: time::from_micros(m.created_at),
        last_used_at: m.last_used_at.map(time::from_micros),
        expires_at: m.expires_at.map(time::from_micros),
        revoked_at: m.revoked_at.map(time::from_micros),
    }
}

/// The tenant's keys, newest first.
pub async fn list(conn: &impl ConnectionTrait, tenant: &TenantId, page: &PageRequest) -> Result<Page<ApiKeyInfo>> {
    let mut q = api_key_info::Entity::find()
        .filter(api_key_info::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(api_key_info::Column::Id)
        .limit(page.size);
    if let Some(after) = &page.after {
        q = q.filter(api_key_info::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    Ok(Page { items: rows.into_iter().map(to_info).collect(), next_page_token: next })
}

/// One key by id (of any tenant: operators and the command line name keys by id), or `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, id: &str) -> Result<ApiKeyInfo> {
    api_key_info::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .map(to_info)
        .ok_or_else(|| StoreError::NotFound(format!("key {id:?}")))
}

/// Sets when a key stops working.
pub async fn set_expiry(conn: &impl ConnectionTrait, id: &KeyId, at: Option<Timestamp>) -> Result<()> {
    api_key_info::Entity::update_many()
        .col_expr(api_key_info::Column::ExpiresAt, Expr::value(at.map(time::to_micros)))
        .filter(api_key_info::Column::Id.eq(id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Records that these keys authenticated at `now`, where their last use is older than
/// `precision` (so a busy key is written at most once per period).
pub async fn touch(
    conn: &impl ConnectionTrait,
    ids: &[&str],
    now: Timestamp,
    precision: chrono::Duration,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let stale = time::to_micros(now - precision);
    api_key_info::Entity::update_many()
        .col_expr(api_key_info::Column::LastUsedAt, Expr::value(time::to_micros(now)))
        .filter(api_key_info::Column::Id.is_in(ids.iter().copied()))
        .filter(api_key_info::Column::LastUsedAt.is_null().or(api_key_info::Column::LastUsedAt.lt(stale)))
        .exec(conn)
        .await?;
    Ok(())
}

/// Every tenant, newest first (operators).
pub async fn list_tenants(
    conn: &impl ConnectionTrait,
    page: &PageRequest,
) -> Result<Page<crate::domain::privacy::TenantInfo>> {
    use super::entities::tenant;
    let mut q = tenant::Entity::find().order_by_desc(tenant::Column::Id).limit(page.size);
    if let Some(after) = &page.after {
        q = q.filter(tenant::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    let items = rows
        .into_iter()
        .map(|r| crate::domain::privacy::TenantInfo {
            id: TenantId(r.id),
            name: r.name,
            created_at: time::from_micros(r.created_at),
        })
        .collect();
    Ok(Page { items, next_page_token: next })
}
