//! Tenants and API keys.

use sea_orm::ExprTrait as _;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use super::Db;
use super::entities::{api_key, tenant};
use super::error::{Result, StoreError};
use crate::domain::eligibility::Policy;
use crate::domain::model::{IssuedKey, KeyKind};
use crate::domain::time::Timestamp;
use crate::domain::{KeyId, TenantId, secrets, time};

/// Creates a tenant with the default cooldowns and a first secret key; a name taken
/// already is [`StoreError::Unique`].
pub async fn create_tenant(db: &Db, name: &str, now: Timestamp) -> Result<IssuedKey> {
    let txn = db.begin_write().await?;
    let id = TenantId::generate();
    tenant::ActiveModel {
        id: Set(id.0.clone()),
        name: Set(name.to_owned()),
        time_zone: Set("UTC".into()),
        days_after_invitation_this_survey: Set(0),
        days_after_invitation_any_survey: Set(0),
        days_after_response_this_survey: Set(90),
        days_after_response_any_survey: Set(30),
        invitation_expiry_days: Set(30),
        created_at: Set(time::to_micros(now)),
        event_seq: Set(0),
    }
    .insert(&txn)
    .await?;
    let key = insert_key(&txn, &id, KeyKind::Secret, now).await?;
    txn.commit().await?;
    Ok(key)
}

/// Inserts a new key (its hash) and returns it with its secret, shown once.
pub async fn insert_key(
    conn: &impl sea_orm::ConnectionTrait,
    tenant: &TenantId,
    kind: KeyKind,
    now: Timestamp,
) -> Result<IssuedKey> {
    let secret = secrets::generate(kind.prefix(), 32);
    let id = KeyId::generate();
    api_key::ActiveModel {
        id: Set(id.0.clone()),
        tenant_id: Set(tenant.0.clone()),
        kind: Set(kind.as_str().into()),
        key_hash: Set(secrets::hash(&secret)),
        prefix: Set(secret.chars().take(kind.prefix().len() + 4).collect()),
        created_at: Set(time::to_micros(now)),
        revoked_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(IssuedKey { id, tenant: tenant.clone(), kind, secret })
}

/// Finds a tenant by name or id.
pub async fn find_tenant(db: &Db, name_or_id: &str) -> Result<TenantId> {
    let found = tenant::Entity::find()
        .filter(tenant::Column::Name.eq(name_or_id).or(tenant::Column::Id.eq(name_or_id)))
        .one(db.conn())
        .await?;
    found.map(|t| TenantId(t.id)).ok_or_else(|| StoreError::NotFound(format!("tenant {name_or_id:?}")))
}

/// Creates another key for a tenant.
pub async fn create_key(db: &Db, tenant: &TenantId, kind: KeyKind, now: Timestamp) -> Result<IssuedKey> {
    insert_key(db.conn(), tenant, kind, now).await
}

/// Revokes a key by id; later calls with it are `UNAUTHENTICATED`.
pub async fn revoke_key(db: &Db, key_id: &str, now: Timestamp) -> Result<()> {
    let res = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, sea_orm::sea_query::Expr::value(time::to_micros(now)))
        .filter(api_key::Column::Id.eq(key_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db.conn())
        .await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("active key {key_id:?}")));
    }
    Ok(())
}

/// An API key as authentication needs it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_hash: String,
    pub key_id: KeyId,
    pub tenant: TenantId,
    pub revoked: bool,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it last authenticated a call (written at most hourly).
    pub last_used_at: Option<Timestamp>,
}

/// The keys with these hashes, in one query.
pub async fn keys_by_hash(db: &Db, hashes: &[&str]) -> Result<Vec<KeyRecord>> {
    use super::keys::api_key_info;
    Ok(api_key_info::Entity::find()
        .filter(api_key_info::Column::KeyHash.is_in(hashes.iter().copied()))
        .all(db.conn())
        .await?
        .into_iter()
        .map(|row| KeyRecord {
            key_hash: row.key_hash,
            key_id: KeyId(row.id),
            tenant: TenantId(row.tenant_id),
            revoked: row.revoked_at.is_some(),
            expires_at: row.expires_at.map(time::from_micros),
            last_used_at: row.last_used_at.map(time::from_micros),
        })
        .collect())
}

/// Every tenant's id, in id order.
pub async fn ids(db: &Db) -> Result<Vec<TenantId>> {
    use sea_orm::QueryOrder as _;
    let rows = tenant::Entity::find().order_by_asc(tenant::Column::Id).all(db.conn()).await?;
    Ok(rows.into_iter().map(|t| TenantId(t.id)).collect())
}

/// Whether the database has no tenant yet.
pub async fn is_empty(db: &Db) -> Result<bool> {
    Ok(tenant::Entity::find().count(db.conn()).await? == 0)
}

/// The tenant's default cooldowns and expiry.
pub async fn default_policy(conn: &impl sea_orm::ConnectionTrait, tenant: &TenantId) -> Result<Policy> {
    let t = tenant::Entity::find_by_id(tenant.0.clone())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::other(anyhow::anyhow!("tenant {tenant} vanished")))?;
    Ok(Policy {
        days_after_invitation_this_survey: t.days_after_invitation_this_survey,
        days_after_invitation_any_survey: t.days_after_invitation_any_survey,
        days_after_response_this_survey: t.days_after_response_this_survey,
        days_after_response_any_survey: t.days_after_response_any_survey,
        invitation_expiry_days: t.invitation_expiry_days,
    })
}

/// A tenant's default branding (all empty until set).
pub async fn branding(
    conn: &impl sea_orm::ConnectionTrait,
    tenant: &TenantId,
) -> Result<crate::domain::model::Branding> {
    let row = super::entities::tenant_branding::Entity::find_by_id(tenant.0.clone())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant}")))?;
    Ok(crate::domain::model::Branding {
        display_name: row.brand_display_name,
        accent_color: row.brand_accent_color,
        logo_url: row.brand_logo_url,
        language: row.language,
    })
}

/// Replaces a tenant's default branding.
pub async fn set_branding(
    conn: &impl sea_orm::ConnectionTrait,
    tenant: &TenantId,
    b: &crate::domain::model::Branding,
) -> Result<()> {
    use super::entities::tenant_branding;
    let am = tenant_branding::ActiveModel {
        id: sea_orm::Unchanged(tenant.0.clone()),
        brand_display_name: Set(b.display_name.clone()),
        brand_accent_color: Set(b.accent_color.clone()),
        brand_logo_url: Set(b.logo_url.clone()),
        language: Set(b.language.clone()),
    };
    tenant_branding::Entity::update(am).exec(conn).await?;
    Ok(())
}
