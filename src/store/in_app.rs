//! Storage for in-app feedback: a tenant's identity-verification setting and secret,
//! and the dismissal of an invitation.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::entities::invitation;
use super::error::{Result, StoreError};
use crate::domain::sealing::Sealed;
use crate::domain::time::Timestamp;
use crate::domain::{InvitationId, TenantId, time};

/// The identity-verification columns of `tenants`, as their own entity so the
/// tenant entity of the survey core stays as it is.
pub mod tenant_identity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub identity_verification: bool,
        pub identity_secret: Option<String>,
        /// The key that sealed `identity_secret` (NULL: not sealed yet).
        pub identity_secret_key_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A tenant's identity-verification setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentitySettings {
    pub enabled: bool,
    /// The HMAC secret the CRM's server shares, sealed (domain::sealing): HMAC needs
    /// it back, so it is encrypted rather than hashed.
    pub secret: Option<Sealed>,
}

/// The identity-verification setting of a tenant.
pub async fn identity(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<IdentitySettings> {
    let row = tenant_identity::Entity::find_by_id(tenant.0.clone())
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::other(anyhow::anyhow!("tenant {tenant} vanished")))?;
    let secret = row.identity_secret.map(|ciphertext| Sealed {
        // Not sealed yet (before the server sealed old rows at start): an empty key id
        // opens nowhere, so such a secret verifies nothing until it is sealed.
        key_id: row.identity_secret_key_id.unwrap_or_default(),
        ciphertext,
    });
    Ok(IdentitySettings { enabled: row.identity_verification, secret })
}

/// Turns identity verification on or off, and sets the secret when `secret` is given.
pub async fn set_identity(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    enabled: bool,
    secret: Option<&Sealed>,
) -> Result<()> {
    let mut update = tenant_identity::Entity::update_many()
        .col_expr(tenant_identity::Column::IdentityVerification, Expr::value(enabled))
        .filter(tenant_identity::Column::Id.eq(tenant.as_str()));
    if let Some(s) = secret {
        update = update
            .col_expr(tenant_identity::Column::IdentitySecret, Expr::value(s.ciphertext.clone()))
            .col_expr(tenant_identity::Column::IdentitySecretKeyId, Expr::value(s.key_id.clone()));
    }
    let res = update.exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("tenant {tenant}")));
    }
    Ok(())
}

/// Marks an unanswered, undismissed invitation as dismissed at `now`. Returns whether
/// a row changed (false: answered or dismissed meanwhile).
pub async fn mark_dismissed(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &InvitationId,
    now: Timestamp,
) -> Result<bool> {
    let res = invitation::Entity::update_many()
        .col_expr(invitation::Column::DismissedAt, Expr::value(time::to_micros(now)))
        .filter(invitation::Column::TenantId.eq(tenant.as_str()))
        .filter(invitation::Column::Id.eq(id.as_str()))
        .filter(invitation::Column::ResponseId.is_null())
        .filter(invitation::Column::DismissedAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}
