//! The sealed columns as a whole (docs/privacy.md, "Secrets at rest"): the rows still
//! plain (written before secrets were sealed), the rows sealed under a key other than
//! the newest (for rotation), and the key ids in use. Each row is replaced only if it is
//! still what was read (its key id unchanged), so two replicas sealing or rotating at
//! once do not undo each other.

use std::collections::BTreeSet;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait as _, QueryFilter, QuerySelect};

use super::entities::webhook_endpoint;
use super::error::Result;
use super::in_app::tenant_identity;
use crate::domain::sealing::Sealed;

/// Which sealed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `webhook_endpoints.secret`, by endpoint id.
    WebhookSecret,
    /// `tenants.identity_secret`, by tenant id.
    IdentitySecret,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 2] = [SealedColumn::WebhookSecret, SealedColumn::IdentitySecret];
}

/// A value of a sealed column: its row's tenant and id, and what is stored. `key_id`
/// `None`: plain.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// The tenant the row belongs to (for a tenant's own row, its id).
    pub tenant: String,
    pub row_id: String,
    pub key_id: Option<String>,
    pub value: String,
}

/// The values of `column` that are plain (`plain`), or sealed under a key other than
/// `not_under` — at most `limit` of them.
pub async fn pending(
    conn: &impl ConnectionTrait,
    column: SealedColumn,
    not_under: Option<&str>,
    limit: u64,
) -> Result<Vec<StoredSecret>> {
    Ok(match column {
        SealedColumn::WebhookSecret => {
            let mut q = webhook_endpoint::Entity::find();
            q = match not_under {
                None => q.filter(webhook_endpoint::Column::SecretKeyId.is_null()),
                Some(k) => q.filter(
                    webhook_endpoint::Column::SecretKeyId.ne(k).or(webhook_endpoint::Column::SecretKeyId.is_null()),
                ),
            };
            q.limit(limit)
                .all(conn)
                .await?
                .into_iter()
                .map(|r| StoredSecret { tenant: r.tenant_id, row_id: r.id, key_id: r.secret_key_id, value: r.secret })
                .collect()
        }
        SealedColumn::IdentitySecret => {
            let mut q = tenant_identity::Entity::find().filter(tenant_identity::Column::IdentitySecret.is_not_null());
            q = match not_under {
                None => q.filter(tenant_identity::Column::IdentitySecretKeyId.is_null()),
                Some(k) => q.filter(
                    tenant_identity::Column::IdentitySecretKeyId
                        .ne(k)
                        .or(tenant_identity::Column::IdentitySecretKeyId.is_null()),
                ),
            };
            q.limit(limit)
                .all(conn)
                .await?
                .into_iter()
                .filter_map(|r| {
                    r.identity_secret.map(|value| StoredSecret {
                        tenant: r.id.clone(),
                        row_id: r.id,
                        key_id: r.identity_secret_key_id,
                        value,
                    })
                })
                .collect()
        }
    })
}

/// Replaces a value with `sealed` if it is still as read (`was`). Returns whether it did.
pub async fn replace(
    conn: &impl ConnectionTrait,
    column: SealedColumn,
    was: &StoredSecret,
    sealed: &Sealed,
) -> Result<bool> {
    let n = match column {
        SealedColumn::WebhookSecret => {
            let mut q = webhook_endpoint::Entity::update_many()
                .col_expr(webhook_endpoint::Column::Secret, Expr::value(sealed.ciphertext.clone()))
                .col_expr(webhook_endpoint::Column::SecretKeyId, Expr::value(sealed.key_id.clone()))
                .filter(webhook_endpoint::Column::TenantId.eq(was.tenant.as_str()))
                .filter(webhook_endpoint::Column::Id.eq(was.row_id.as_str()))
                .filter(webhook_endpoint::Column::Secret.eq(was.value.as_str()));
            q = match &was.key_id {
                None => q.filter(webhook_endpoint::Column::SecretKeyId.is_null()),
                Some(k) => q.filter(webhook_endpoint::Column::SecretKeyId.eq(k.as_str())),
            };
            q.exec(conn).await?.rows_affected
        }
        SealedColumn::IdentitySecret => {
            let mut q = tenant_identity::Entity::update_many()
                .col_expr(tenant_identity::Column::IdentitySecret, Expr::value(sealed.ciphertext.clone()))
                .col_expr(tenant_identity::Column::IdentitySecretKeyId, Expr::value(sealed.key_id.clone()))
                .filter(tenant_identity::Column::Id.eq(was.row_id.as_str()))
                .filter(tenant_identity::Column::IdentitySecret.eq(was.value.as_str()));
            q = match &was.key_id {
                None => q.filter(tenant_identity::Column::IdentitySecretKeyId.is_null()),
                Some(k) => q.filter(tenant_identity::Column::IdentitySecretKeyId.eq(k.as_str())),
            };
            q.exec(conn).await?.rows_affected
        }
    };
    Ok(n == 1)
}

/// The ids of the keys that sealed something in `column`.
pub async fn key_ids(conn: &impl ConnectionTrait, column: SealedColumn) -> Result<BTreeSet<String>> {
    let ids: Vec<Option<String>> = match column {
        SealedColumn::WebhookSecret => {
            webhook_endpoint::Entity::find()
                .select_only()
                .column(webhook_endpoint::Column::SecretKeyId)
                .distinct()
                .into_tuple()
                .all(conn)
                .await?
        }
        SealedColumn::IdentitySecret => {
            tenant_identity::Entity::find()
                .select_only()
                .column(tenant_identity::Column::IdentitySecretKeyId)
                .distinct()
                .into_tuple()
                .all(conn)
                .await?
        }
    };
    Ok(ids.into_iter().flatten().collect())
}
