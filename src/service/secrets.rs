//! Secrets at rest as a whole (docs/privacy.md, "Secrets at rest"): sealing the rows
//! written before secrets were sealed (at every start), checking that every key that
//! sealed something is still configured, and re-sealing everything under the newest key
//! (`rapport secrets rotate`).

use super::Services;
use crate::domain::sealing::{self, Sealed};
use crate::error::{AppError, Result};
use crate::store::secrets::{self as store, SealedColumn, StoredSecret};

/// Rows handled per statement batch.
const BATCH: u64 = 500;

/// What a sealing or rotation pass changed, per column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    pub webhook_secrets: u64,
    pub identity_secrets: u64,
}

impl Resealed {
    fn add(&mut self, column: SealedColumn, n: u64) {
        match column {
            SealedColumn::WebhookSecret => self.webhook_secrets += n,
            SealedColumn::IdentitySecret => self.identity_secrets += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.webhook_secrets + self.identity_secrets
    }
}

fn context(column: SealedColumn, row_id: &str) -> String {
    match column {
        SealedColumn::WebhookSecret => sealing::webhook_secret_context(row_id),
        SealedColumn::IdentitySecret => sealing::identity_secret_context(row_id),
    }
}

impl Services {
    /// Seals every secret still stored plain, under the newest key. Run at every start
    /// (a database written by a version before sealing is sealed on its first start).
    pub async fn seal_plain_secrets(&self) -> Result<Resealed> {
        self.reseal_where(None).await
    }

    /// Re-seals every secret sealed under an older key (and any still plain) under the
    /// newest one, so the older keys can be removed afterwards.
    pub async fn rotate_secrets(&self) -> Result<Resealed> {
        let newest = self.keyring.newest_id().ok_or_else(no_keys)?.to_owned();
        self.check_secret_keys().await?;
        self.reseal_where(Some(&newest)).await
    }

    async fn reseal_where(&self, not_under: Option<&str>) -> Result<Resealed> {
        let mut done = Resealed::default();
        for column in SealedColumn::ALL {
            loop {
                let rows = store::pending(self.db.conn(), column, not_under, BATCH).await?;
                if rows.is_empty() {
                    break;
                }
                if self.keyring.is_empty() {
                    return Err(no_keys());
                }
                let txn = self.db.begin_write().await?;
                let mut changed = 0;
                for row in &rows {
                    let ctx = context(column, &row.row_id);
                    let sealed = self.reseal(&ctx, row)?;
                    if store::replace(&txn, column, row, &sealed).await? {
                        changed += 1;
                    }
                }
                txn.commit().await?;
                done.add(column, changed);
                if (rows.len() as u64) < BATCH {
                    break;
                }
            }
        }
        Ok(done)
    }

    fn reseal(&self, ctx: &str, row: &StoredSecret) -> Result<Sealed> {
        match &row.key_id {
            None => self.keyring.seal(ctx, &row.value),
            Some(k) => {
                let old = Sealed { key_id: k.clone(), ciphertext: row.value.clone() };
                Ok(self.keyring.reseal(ctx, &old)?.unwrap_or(old))
            }
        }
    }

    /// Fails, naming them, if secrets are sealed under keys that are not configured
    /// (removed before `rapport secrets rotate` moved everything off them).
    pub async fn check_secret_keys(&self) -> Result<()> {
        let mut missing = std::collections::BTreeSet::new();
        for column in SealedColumn::ALL {
            for id in store::key_ids(self.db.conn(), column).await? {
                if !self.keyring.has(&id) {
                    missing.insert(id);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(AppError::FailedPrecondition(format!(
            "secrets in the database are sealed under key(s) {} that are not configured (configured: {}); \
             put the key(s) back into RAPPORT_SECRET_KEYS, after the newest, and run `rapport secrets rotate`",
            missing.into_iter().collect::<Vec<_>>().join(", "),
            if self.keyring.is_empty() { "none".to_owned() } else { self.keyring.ids().join(", ") }
        )))
    }
}

fn no_keys() -> AppError {
    AppError::FailedPrecondition("no secret key is configured (RAPPORT_SECRET_KEYS or RAPPORT_SECRET_KEYS_FILE)".into())
}

#[cfg(test)]
mod tests {
    use crate::domain::sealing::{Keyring, SecretKey};
    use crate::service::in_app::IdentityChange;

    #[tokio::test]
    async fn plain_rows_are_sealed_and_rotation_moves_every_secret_to_the_newest_key() {
        let old = SecretKey::generate(chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        let svc = crate::service::in_memory().await.with_keyring(Keyring::new(vec![old.clone()]).unwrap());
        svc.create_tenant("acme").await.unwrap();
        let secret = svc.set_identity_verification("acme", IdentityChange::Enable { rotate: false }).await.unwrap();
        assert!(secret.is_some());
        assert_eq!(svc.seal_plain_secrets().await.unwrap().total(), 0, "nothing plain");

        let new = SecretKey::generate(chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        let svc = svc.with_keyring(Keyring::new(vec![new.clone(), old.clone()]).unwrap());
        let moved = svc.rotate_secrets().await.unwrap();
        assert_eq!(moved.identity_secrets, 1);
        assert_eq!(svc.rotate_secrets().await.unwrap().total(), 0, "idempotent");

        let svc = svc.with_keyring(Keyring::new(vec![new]).unwrap());
        svc.check_secret_keys().await.expect("only the new key is in use");
        let svc = svc.with_keyring(Keyring::new(vec![old]).unwrap());
        let err = svc.check_secret_keys().await.unwrap_err().to_string();
        assert!(err.contains("k202602"), "{err}");
    }
}
