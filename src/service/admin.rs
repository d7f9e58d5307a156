//! Tenants and keys, for the admin sub-commands and the first start. Each change is
//! written to the tenant's audit log ([`super::audit`]).

use super::Services;
use crate::domain::input;
use crate::domain::model::{IssuedKey, KeyKind};
use crate::domain::privacy::{Actor, AuditAction, AuditEntry};
use crate::error::{AppError, Result};
use crate::store::{StoreError, audit, tenants};

impl Services {
    /// Creates a tenant and its first secret key (from the command line).
    pub async fn create_tenant(&self, name: &str) -> Result<IssuedKey> {
        self.create_tenant_as(Actor::CommandLine, name).await
    }

    /// Creates a tenant and its first secret key, and logs who did.
    pub async fn create_tenant_as(&self, actor: Actor, name: &str) -> Result<IssuedKey> {
        let name = input::text("name", name, 200, true)?;
        let now = self.clock.now();
        let key = tenants::create_tenant(&self.db, &name, now).await.map_err(|e| match e {
            StoreError::Unique { .. } => AppError::AlreadyExists(format!("a tenant named {name:?} exists")),
            other => other.into(),
        })?;
        let txn = self.db.begin_write().await?;
        let created = AuditEntry::new(&key.tenant, actor.clone(), AuditAction::TenantCreated, "")
            .with(serde_json::json!({ "name": name }));
        audit::record(&txn, &created, now).await?;
        let first = AuditEntry::new(&key.tenant, actor, AuditAction::KeyCreated, key.id.as_str())
            .with(serde_json::json!({ "kind": key.kind.as_str(), "expires_at": null }));
        audit::record(&txn, &first, now).await?;
        txn.commit().await?;
        Ok(key)
    }

    /// Creates a key for a tenant named by name or id (from the command line).
    pub async fn create_key(&self, tenant: &str, kind: KeyKind) -> Result<IssuedKey> {
        self.create_key_as(Actor::CommandLine, tenant, kind, None).await
    }

    /// Revokes a key by id (from the command line).
    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        self.revoke_key_as(Actor::CommandLine, key_id, None).await.map(|_| ())
    }

    /// On an empty database, creates the tenant `default` and returns its key.
    pub async fn bootstrap(&self) -> Result<Option<IssuedKey>> {
        if tenants::is_empty(&self.db).await? {
            return self.create_tenant_as(Actor::System, "default").await.map(Some);
        }
        Ok(None)
    }
}
