//! Keys you can manage and the audit log (docs/privacy.md, "Keys and the audit log"):
//! keys created with an optional expiry, listed without their secrets, revoked by id —
//! from the command line, the tenant's own API or the operator's admin service — and
//! every administrative action appended to the tenant's audit log in the transaction
//! of the action.

use super::Services;
use crate::domain::listing::PageRequest;
use crate::domain::model::{IssuedKey, KeyKind, Page, Principal};
use crate::domain::privacy::{Actor, ApiKeyInfo, AuditAction, AuditEntry, AuditEvent};
use crate::domain::time::Timestamp;
use crate::domain::{TenantId, input};
use crate::error::{AppError, Result};
use crate::store::{audit, keys, tenants};

/// Longest expiry a key may be given.
pub const MAX_KEY_LIFETIME_DAYS: i64 = 3_660;

impl Services {
    /// Appends an audit line on its own (for actions that are not one transaction).
    pub async fn audit(&self, entry: AuditEntry) -> Result<()> {
        let txn = self.db.begin_write().await?;
        audit::record(&txn, &entry, self.clock.now()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates a key for a tenant (by name or id), expiring at `expires_at` if given
    /// (in the future, at most [`MAX_KEY_LIFETIME_DAYS`] away), and logs who did.
    pub async fn create_key_as(
        &self,
        actor: Actor,
        tenant: &str,
        kind: KeyKind,
        expires_at: Option<Timestamp>,
    ) -> Result<IssuedKey> {
        let now = self.clock.now();
        if let Some(at) = expires_at {
            if at <= now {
                return Err(AppError::invalid("expire_time", "must be in the future"));
            }
            if at - now > chrono::Duration::days(MAX_KEY_LIFETIME_DAYS) {
                return Err(AppError::invalid(
                    "expire_time",
                    format!("must be at most {MAX_KEY_LIFETIME_DAYS} days away"),
                ));
            }
        }
        let t = tenants::find_tenant(&self.db, tenant).await?;
        let txn = self.db.begin_write().await?;
        let key = tenants::insert_key(&txn, &t, kind, now).await?;
        if expires_at.is_some() {
            keys::set_expiry(&txn, &key.id, expires_at).await?;
        }
        let details = serde_json::json!({
            "kind": kind.as_str(),
            "expires_at": expires_at.map(|t| t.to_rfc3339()),
        });
        audit::record(&txn, &AuditEntry::new(&t, actor, AuditAction::KeyCreated, key.id.as_str()).with(details), now)
            .await?;
        txn.commit().await?;
        Ok(key)
    }

    /// One key, without its secret.
    pub async fn key_info(&self, id: &crate::domain::KeyId) -> Result<ApiKeyInfo> {
        Ok(keys::get(self.db.conn(), id.as_str()).await?)
    }

    /// The keys of a tenant (by name or id), newest first, without their secrets.
    pub async fn list_keys(&self, tenant: &str, page: PageRequest) -> Result<Page<ApiKeyInfo>> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        Ok(keys::list(self.db.conn(), &t, &page).await?)
    }

    /// Revokes a key by id and logs who did. `within`: only a key of this tenant (a
    /// key of another one is `NOT_FOUND`, as if it did not exist).
    pub async fn revoke_key_as(&self, actor: Actor, key_id: &str, within: Option<&TenantId>) -> Result<ApiKeyInfo> {
        let key_id = input::text("key_id", key_id, 64, true)?;
        let found = keys::get(self.db.conn(), &key_id).await?;
        if within.is_some_and(|t| *t != found.tenant) {
            return Err(AppError::NotFound(format!("key {key_id:?}")));
        }
        let now = self.clock.now();
        tenants::revoke_key(&self.db, &key_id, now).await?;
        // The revoked key is refused here at once; other processes forget it within
        // their key cache's ttl (and stop counting it as verified within keys::VERIFIED_FOR).
        self.key_cache.clear();
        self.audit(AuditEntry::new(&found.tenant, actor, AuditAction::KeyRevoked, key_id.as_str())).await?;
        Ok(keys::get(self.db.conn(), &key_id).await?)
    }

    /// The tenant's audit log, newest first (a secret or read-only key of the tenant).
    pub async fn list_audit_events(&self, p: &Principal, page: PageRequest) -> Result<Page<AuditEvent>> {
        super::require_reader(p)?;
        Ok(audit::list(self.db.conn(), &p.tenant, &page).await?)
    }

    /// Every tenant, newest first (the operator).
    pub async fn list_tenants(&self, page: PageRequest) -> Result<Page<crate::domain::privacy::TenantInfo>> {
        Ok(keys::list_tenants(self.db.conn(), &page).await?)
    }

    /// Any tenant's audit log (the operator, the command line).
    pub async fn tenant_audit_events(&self, tenant: &str, page: PageRequest) -> Result<Page<AuditEvent>> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        Ok(audit::list(self.db.conn(), &t, &page).await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::listing::PageRequest;
    use crate::domain::model::KeyKind;
    use crate::domain::privacy::Actor;
    use crate::error::AppError;

    #[tokio::test]
    async fn keys_are_listed_without_secrets_and_every_change_is_audited() {
        let svc = crate::service::in_memory().await;
        let first = svc.create_tenant("acme").await.unwrap();
        let later = svc.clock.now() + chrono::Duration::days(30);
        let public = svc.create_key_as(Actor::Operator, "acme", KeyKind::Publishable, Some(later)).await.unwrap();
        let keys = svc.list_keys("acme", PageRequest::parse(0, "").unwrap()).await.unwrap().items;
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].id, public.id, "newest first");
        assert_eq!(keys[0].expires_at.map(|t| t.timestamp()), Some(later.timestamp()));
        assert!(keys.iter().all(|k| k.prefix.len() < 20 && !format!("{k:?}").contains(&first.secret[10..])));

        let past = svc.clock.now() - chrono::Duration::seconds(1);
        let err = svc.create_key_as(Actor::Operator, "acme", KeyKind::Secret, Some(past)).await.unwrap_err();
        assert!(matches!(err, AppError::InvalidArgument(_)), "{err}");

        let globex = svc.create_tenant("globex").await.unwrap();
        let err = svc.revoke_key_as(Actor::Key(globex.id.clone()), &first.id.0, Some(&globex.tenant)).await;
        assert!(matches!(err, Err(AppError::NotFound(_))), "another tenant's key is not found");
        let revoked = svc.revoke_key_as(Actor::Operator, &first.id.0, None).await.unwrap();
        assert!(revoked.revoked_at.is_some());

        let log = svc.tenant_audit_events("acme", PageRequest::parse(0, "").unwrap()).await.unwrap().items;
        let actions: Vec<(&str, &str)> = log.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
        assert_eq!(
            actions,
            [
                ("key.revoked", "operator"),
                ("key.created", "operator"),
                ("key.created", "cli"),
                ("tenant.created", "cli")
            ]
        );
        assert!(!format!("{log:?}").contains(&first.secret) && !format!("{log:?}").contains(&public.secret));
    }
}
