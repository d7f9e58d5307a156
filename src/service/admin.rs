//! Tenants and keys, for the admin sub-commands and the first start.

use super::Services;
use crate::domain::input;
use crate::domain::model::{IssuedKey, KeyKind};
use crate::error::{AppError, Result};
use crate::store::{StoreError, tenants};

impl Services {
    /// Creates a tenant and its first secret key.
    pub async fn create_tenant(&self, name: &str) -> Result<IssuedKey> {
        let name = input::text("name", name, 200, true)?;
        tenants::create_tenant(&self.db, &name, self.clock.now()).await.map_err(|e| match e {
            StoreError::Unique { .. } => AppError::AlreadyExists(format!("a tenant named {name:?} exists")),
            other => other.into(),
        })
    }

    /// Creates a key for a tenant named by name or id.
    pub async fn create_key(&self, tenant: &str, kind: KeyKind) -> Result<IssuedKey> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        Ok(tenants::create_key(&self.db, &t, kind, self.clock.now()).await?)
    }

    /// Revokes a key by id.
    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        tenants::revoke_key(&self.db, key_id, self.clock.now()).await?;
        // The revoked key no longer skips the per-address limit of token calls here
        // (other processes forget it within keys::VERIFIED_FOR).
        self.verified_keys.clear();
        Ok(())
    }

    /// On an empty database, creates the tenant `default` and returns its key.
    pub async fn bootstrap(&self) -> Result<Option<IssuedKey>> {
        if tenants::is_empty(&self.db).await? {
            return self.create_tenant("default").await.map(Some);
        }
        Ok(None)
    }
}
