//! Authentication: a plaintext API key to its caller.
//!
//! Every call looks its key up in the database — a revoked key fails at once, so no
//! answer is cached. Concurrent calls share lookups instead (see [`super::batch`]): a
//! lookup takes the keys of every call waiting when it starts, so each call is
//! answered by a query that began after it arrived, never by an older one.
//!
//! What is remembered is only which secret keys authenticated lately
//! ([`VerifiedKeys`]): the rate-limit gate lets them skip the per-address limit of
//! the token calls, which an unverified `rk_secret_…` header does not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Services;
use super::batch::BatchQueue;
use crate::domain::model::{KeyKind, Principal};
use crate::domain::privacy::LAST_USED_PRECISION;
use crate::domain::secrets;
use crate::error::{AppError, Result};
use crate::store::tenants;

/// One call waiting for its key to be looked up.
#[derive(Debug)]
pub struct KeyLookup {
    hash: String,
    kind: KeyKind,
    reply: oneshot::Sender<Result<Principal>>,
}

/// Most keys in one lookup.
const MAX_LOOKUP_BATCH: usize = 256;
/// Lookups in flight at once. One: calls that arrive during a lookup share the next,
/// so under load each lookup answers many calls (`rapport-bench records`, PostgreSQL, c=64:
/// 2 014–2 080 RecordResponse/s with four, 2 213–2 582 with one).
const LOOKUP_WRITERS: usize = 1;

/// The queue [`Services::key_lookups`] starts with.
pub fn lookup_queue() -> BatchQueue<KeyLookup> {
    BatchQueue::new(MAX_LOOKUP_BATCH, LOOKUP_WRITERS, LOOKUP_QUEUE_LIMIT)
}

/// Most calls waiting for their key's lookup; past it calls are refused at once.
const LOOKUP_QUEUE_LIMIT: usize = 10_000;

/// How long a secret key that authenticated counts as verified for the rate limits.
/// A key revoked meanwhile is refused at once by every call that needs it; it only
/// keeps skipping the per-address limit of token calls for at most this long.
pub const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Most keys remembered; past it the oldest half is forgotten.
const MAX_VERIFIED: usize = 10_000;

/// Hashes of the secret keys that authenticated in the last [`VERIFIED_FOR`]: a
/// check costs one hash and one short lock, no database work.
#[derive(Debug, Default)]
pub struct VerifiedKeys {
    seen: Mutex<HashMap<String, Instant>>,
}

impl VerifiedKeys {
    /// Whether the secret key with this hash authenticated lately.
    pub fn contains(&self, hash: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(hash).is_some_and(|at| at.elapsed() < VERIFIED_FOR)
    }

    /// Whether this plaintext secret key authenticated lately.
    pub fn contains_key(&self, key: &str) -> bool {
        key.starts_with(KeyKind::Secret.prefix()) && self.contains(&secrets::hash(key))
    }

    fn insert(&self, hash: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_VERIFIED && !seen.contains_key(hash) {
            seen.retain(|_, at| at.elapsed() < VERIFIED_FOR);
            if seen.len() >= MAX_VERIFIED {
                let mut times: Vec<Instant> = seen.values().copied().collect();
                times.sort_unstable();
                let median = times[times.len() / 2];
                seen.retain(|_, at| *at > median);
            }
        }
        seen.insert(hash.to_owned(), Instant::now());
    }

    /// Forgets every key (after a revocation in this process).
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

fn unknown() -> AppError {
    AppError::Unauthenticated("unknown or revoked API key".into())
}

impl Services {
    /// Resolves a plaintext key to its caller, or `UNAUTHENTICATED`.
    pub async fn authenticate(&self, key: &str) -> Result<Principal> {
        let kind = [KeyKind::Secret, KeyKind::Publishable, KeyKind::Read]
            .into_iter()
            .find(|k| key.starts_with(k.prefix()))
            .ok_or_else(unknown)?;
        let (reply, answer) = oneshot::channel();
        match self.key_lookups.push(KeyLookup { hash: secrets::hash(key), kind, reply }) {
            Ok(true) => {
                let svc = self.clone();
                self.tasks.spawn(async move { svc.key_lookups.drain(|batch| svc.look_up_keys(batch)).await });
            }
            Ok(false) => {}
            Err(_) => return Err(super::busy("API key lookups")),
        }
        answer.await.unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("the key lookup stopped"))))
    }

    async fn look_up_keys(&self, batch: Vec<KeyLookup>) {
        // Calls usually share a few keys (a CRM sends all of its calls with one): each
        // is asked for once, and the statement keeps one shape.
        let mut hashes: Vec<&str> = batch.iter().map(|l| l.hash.as_str()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let found = tenants::keys_by_hash(&self.db, &hashes).await;
        let found: std::result::Result<HashMap<String, tenants::KeyRecord>, _> =
            found.map(|keys| keys.into_iter().map(|k| (k.key_hash.clone(), k)).collect());
        let now = self.clock.now();
        let mut used: Vec<String> = Vec::new();
        for lookup in batch {
            let result = match &found {
                Ok(keys) => match keys.get(&lookup.hash) {
                    Some(k) if k.expires_at.is_some_and(|at| at <= now) && !k.revoked => {
                        Err(AppError::Unauthenticated("the API key has expired".into()))
                    }
                    Some(k) if !k.revoked => {
                        if k.last_used_at.is_none_or(|at| now - at >= LAST_USED_PRECISION)
                            && !used.contains(&k.key_id.0)
                        {
                            used.push(k.key_id.0.clone());
                        }
                        if lookup.kind == KeyKind::Secret {
                            self.verified_keys.insert(&lookup.hash);
                        }
                        Ok(Principal { tenant: k.tenant.clone(), key_id: k.key_id.clone(), kind: lookup.kind })
                    }
                    _ => Err(unknown()),
                },
                Err(e) => Err(e.clone().into()),
            };
            // A caller that gave up no longer listens.
            let _ = lookup.reply.send(result);
        }
        // The time of last use, after the answers: a busy key costs one write an hour.
        if !used.is_empty() {
            let db = self.db.clone();
            self.tasks.spawn(async move {
                let ids: Vec<&str> = used.iter().map(String::as_str).collect();
                let written = async {
                    let txn = db.begin_write().await?;
                    crate::store::keys::touch(&txn, &ids, now, LAST_USED_PRECISION).await?;
                    txn.commit().await?;
                    Ok::<_, AppError>(())
                };
                if let Err(e) = written.await {
                    tracing::debug!(error = %e, "recording the keys' last use failed; the next call tries again");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_lookup_answers_each_key_on_its_own() {
        let svc = crate::service::in_memory().await;
        let acme = svc.create_tenant("acme").await.unwrap();
        let globex = svc.create_tenant("globex").await.unwrap();
        let public = svc.create_key("acme", KeyKind::Publishable).await.unwrap();
        let revoked = svc.create_key("globex", KeyKind::Secret).await.unwrap();
        svc.revoke_key(&revoked.id.0).await.unwrap();

        let keys = [&acme.secret, &globex.secret, &public.secret, &revoked.secret, "rk_secret_unknown"];
        let (batch, answers): (Vec<_>, Vec<_>) = keys
            .iter()
            .map(|k| {
                let (reply, answer) = oneshot::channel();
                let kind =
                    if k.starts_with(KeyKind::Publishable.prefix()) { KeyKind::Publishable } else { KeyKind::Secret };
                (KeyLookup { hash: secrets::hash(k), kind, reply }, answer)
            })
            .unzip();
        svc.look_up_keys(batch).await;
        let mut got = Vec::new();
        for a in answers {
            got.push(a.await.expect("answered").map(|p| (p.tenant, p.kind)));
        }
        assert_eq!(got[0].as_ref().ok(), Some(&(acme.tenant.clone(), KeyKind::Secret)));
        assert_eq!(got[1].as_ref().ok(), Some(&(globex.tenant.clone(), KeyKind::Secret)));
        assert_eq!(got[2].as_ref().ok(), Some(&(acme.tenant.clone(), KeyKind::Publishable)));
        assert!(matches!(got[3], Err(AppError::Unauthenticated(_))), "revoked");
        assert!(matches!(got[4], Err(AppError::Unauthenticated(_))), "unknown");

        // Only the secret keys that authenticated count as verified.
        assert!(svc.verified_keys.contains_key(&acme.secret));
        assert!(svc.verified_keys.contains_key(&globex.secret));
        for not_verified in [&public.secret, &revoked.secret, "rk_secret_unknown", "rk_secret_"] {
            assert!(!svc.verified_keys.contains_key(not_verified), "{not_verified}");
        }
        svc.revoke_key(&acme.id.0).await.unwrap();
        assert!(!svc.verified_keys.contains_key(&acme.secret), "a revocation forgets the verified keys");
    }

    #[test]
    fn the_verified_set_stays_bounded() {
        let v = VerifiedKeys::default();
        for i in 0..(MAX_VERIFIED + 10) {
            v.insert(&format!("h{i}"));
        }
        let len = v.seen.lock().unwrap().len();
        assert!(len <= MAX_VERIFIED, "{len}");
        assert!(v.contains(&format!("h{}", MAX_VERIFIED + 9)), "the newest stays");
        v.clear();
        assert!(!v.contains(&format!("h{}", MAX_VERIFIED + 9)));
    }
}
