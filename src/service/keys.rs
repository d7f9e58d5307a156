//! Authentication: a plaintext API key to its caller.
//!
//! A key is looked up in the database, then remembered for a short while
//! ([`KeyCache`], `RAPPORT_KEY_CACHE_SECONDS`, 2 s by default; docs/operations.md): a
//! revoked key is refused at once by the replica that revoked it and within that time by
//! every other one; an expired key is refused from its expiry on, cached or not. Calls
//! whose key is not remembered share lookups (see [`super::batch`]): a lookup takes the
//! keys of every call waiting when it starts, so each such call is answered by a query
//! that began after it arrived, never by an older one.
//!
//! The same memory tells the rate-limit gate which secret keys authenticated lately
//! ([`KeyCache::verified`]): they skip the per-address limit of the token calls, which
//! an unverified `rk_secret_…` header does not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Services;
use super::batch::BatchQueue;
use crate::domain::ids::{KeyId, TenantId};
use crate::domain::model::{KeyKind, Principal};
use crate::domain::privacy::LAST_USED_PRECISION;
use crate::domain::secrets;
use crate::domain::time::Timestamp;
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
/// A key revoked meanwhile is refused by every call that needs it once the key cache
/// forgets it; it only keeps skipping the per-address limit of token calls for at most
/// this long.
pub const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Most keys remembered; past it the oldest half is forgotten.
const MAX_REMEMBERED: usize = 10_000;

/// A key that authenticated, as its lookup found it.
#[derive(Debug, Clone)]
struct Remembered {
    tenant: TenantId,
    key_id: KeyId,
    kind: KeyKind,
    expires_at: Option<Timestamp>,
    at: Instant,
}

/// The keys that authenticated lately, by hash: for [`KeyCache::ttl`] they answer
/// calls without a lookup, for [`VERIFIED_FOR`] secret keys count as verified. A check
/// costs one hash and one short lock, no database work. Unknown and revoked keys are
/// never remembered.
#[derive(Debug, Default)]
pub struct KeyCache {
    ttl: Duration,
    seen: Mutex<HashMap<String, Remembered>>,
    /// Bumped by every [`KeyCache::clear`]: a lookup that began before a revocation
    /// must not put the key back afterwards.
    generation: AtomicU64,
}

impl KeyCache {
    /// Answers from memory for `ttl` (zero: every call looks its key up).
    pub fn new(ttl: Duration) -> Self {
        KeyCache { ttl, seen: Mutex::default(), generation: AtomicU64::new(0) }
    }

    /// How long a looked-up key answers calls without a new lookup.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller of a key of `kind` with this hash, if it authenticated less than
    /// [`KeyCache::ttl`] ago: `Some(Err)` once it has expired.
    fn principal(&self, hash: &str, kind: KeyKind, now: Timestamp) -> Option<Result<Principal>> {
        let seen = self.lock();
        let r = seen.get(hash).filter(|r| r.kind == kind && r.at.elapsed() < self.ttl)?;
        if r.expires_at.is_some_and(|at| at <= now) {
            return Some(Err(expired()));
        }
        Some(Ok(Principal { tenant: r.tenant.clone(), key_id: r.key_id.clone(), kind }))
    }

    /// Whether the secret key with this hash authenticated lately.
    pub fn contains(&self, hash: &str) -> bool {
        self.lock().get(hash).is_some_and(|r| r.kind == KeyKind::Secret && r.at.elapsed() < VERIFIED_FOR)
    }

    /// Whether this plaintext secret key authenticated lately.
    pub fn verified(&self, key: &str) -> bool {
        key.starts_with(KeyKind::Secret.prefix()) && self.contains(&secrets::hash(key))
    }

    /// What to pass to [`KeyCache::remember`] for a lookup starting now.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers a key found by a lookup that began at `generation`, unless the cache
    /// was cleared since.
    fn remember(&self, hash: &str, key: &tenants::KeyRecord, kind: KeyKind, generation: u64) {
        let mut seen = self.lock();
        if self.generation() != generation {
            return;
        }
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(hash) {
            let keep = self.ttl.max(VERIFIED_FOR);
            seen.retain(|_, r| r.at.elapsed() < keep);
            if seen.len() >= MAX_REMEMBERED {
                let mut times: Vec<Instant> = seen.values().map(|r| r.at).collect();
                times.sort_unstable();
                let median = times[times.len() / 2];
                seen.retain(|_, r| r.at > median);
            }
        }
        let r = Remembered {
            tenant: key.tenant.clone(),
            key_id: key.key_id.clone(),
            kind,
            expires_at: key.expires_at,
            at: Instant::now(),
        };
        seen.insert(hash.to_owned(), r);
    }

    /// Forgets every key (after a revocation in this process).
    pub fn clear(&self) {
        let mut seen = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        seen.clear();
    }
}

fn expired() -> AppError {
    AppError::Unauthenticated("the API key has expired".into())
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
        let hash = secrets::hash(key);
        if let Some(known) = self.key_cache.principal(&hash, kind, self.clock.now()) {
            return known;
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(&self.key_lookups, KeyLookup { hash, kind, reply }, "API key lookups", |svc, batch| async move {
            svc.look_up_keys(batch).await
        })?;
        answer.await.unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("the key lookup stopped"))))
    }

    async fn look_up_keys(&self, batch: Vec<KeyLookup>) {
        // Calls usually share a few keys (a CRM sends all of its calls with one): each
        // is asked for once, and the statement keeps one shape.
        let mut hashes: Vec<&str> = batch.iter().map(|l| l.hash.as_str()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let generation = self.key_cache.generation();
        let found = tenants::keys_by_hash(&self.db, &hashes).await;
        let found: std::result::Result<HashMap<String, tenants::KeyRecord>, _> =
            found.map(|keys| keys.into_iter().map(|k| (k.key_hash.clone(), k)).collect());
        let now = self.clock.now();
        let mut used: Vec<String> = Vec::new();
        for lookup in batch {
            let result = match &found {
                Ok(keys) => match keys.get(&lookup.hash) {
                    Some(k) if k.expires_at.is_some_and(|at| at <= now) && !k.revoked => Err(expired()),
                    Some(k) if !k.revoked => {
                        if k.last_used_at.is_none_or(|at| now - at >= LAST_USED_PRECISION)
                            && !used.contains(&k.key_id.0)
                        {
                            used.push(k.key_id.0.clone());
                        }
                        self.key_cache.remember(&lookup.hash, k, lookup.kind, generation);
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
        assert!(svc.key_cache.verified(&acme.secret));
        assert!(svc.key_cache.verified(&globex.secret));
        for not_verified in [&public.secret, &revoked.secret, "rk_secret_unknown", "rk_secret_"] {
            assert!(!svc.key_cache.verified(not_verified), "{not_verified}");
        }
        svc.revoke_key(&acme.id.0).await.unwrap();
        assert!(!svc.key_cache.verified(&acme.secret), "a revocation forgets the verified keys");
    }

    fn record(tenant: &str, expires_at: Option<Timestamp>) -> tenants::KeyRecord {
        tenants::KeyRecord {
            key_hash: String::new(),
            key_id: KeyId("key".into()),
            tenant: TenantId(tenant.into()),
            revoked: false,
            expires_at,
            last_used_at: None,
        }
    }

    #[test]
    fn the_cache_stays_bounded() {
        let v = KeyCache::new(Duration::from_secs(60));
        for i in 0..(MAX_REMEMBERED + 10) {
            v.remember(&format!("h{i}"), &record("t", None), KeyKind::Secret, v.generation());
        }
        let len = v.lock().len();
        assert!(len <= MAX_REMEMBERED, "{len}");
        assert!(v.contains(&format!("h{}", MAX_REMEMBERED + 9)), "the newest stays");
        v.clear();
        assert!(!v.contains(&format!("h{}", MAX_REMEMBERED + 9)));
    }

    #[test]
    fn a_cached_key_answers_for_its_kind_until_it_expires() {
        let now = crate::domain::time::from_micros(1_000_000_000_000_000);
        let v = KeyCache::new(Duration::from_secs(60));
        v.remember("h", &record("acme", Some(now + chrono::Duration::seconds(1))), KeyKind::Publishable, 0);
        let p = v.principal("h", KeyKind::Publishable, now).expect("cached").expect("valid");
        assert_eq!(p.tenant.0, "acme");
        assert!(v.principal("h", KeyKind::Secret, now).is_none(), "another kind is looked up");
        assert!(!v.contains("h"), "a publishable key is never verified");
        let later = now + chrono::Duration::seconds(1);
        assert!(matches!(v.principal("h", KeyKind::Publishable, later), Some(Err(AppError::Unauthenticated(_)))));
        let off = KeyCache::new(Duration::ZERO);
        off.remember("h", &record("acme", None), KeyKind::Secret, 0);
        assert!(off.principal("h", KeyKind::Secret, now).is_none(), "a zero ttl caches nothing");
        assert!(off.contains("h"), "but still counts the key as verified");
        let before = off.generation();
        off.clear();
        off.remember("h2", &record("acme", None), KeyKind::Secret, before);
        assert!(!off.contains("h2"), "a lookup older than a clear is not remembered");
    }
}
