//! In-app feedback (docs/in-app.md): what a publishable key may do, identity verification,
//! dismissals, and the rate limits on the calls a web page makes.
//!
//! A publishable key (`rk_pub_…`) sits in a web page, so anyone can copy it. With one
//! a caller may only issue an invitation for a survey marked in-app (eligibility
//! applies, channel IN_APP) and then use the token it gets; every other use-case
//! refuses it in [`super::require_secret`]. Tokens stay what they are everywhere: the
//! credential for exactly one invitation.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Counters, Services, require_publishable};
use crate::domain::TenantId;
use crate::domain::model::{Branding, Channel, Invitation, InvitationStatus, IssueOutcome, KeyKind, Principal, Survey};
use crate::domain::privacy::{Actor, AuditAction, AuditEntry};
use crate::domain::{identity, sealing, secrets};
use crate::error::{AppError, Result};
use crate::store::shared_limits::{Bucket, SharedBuckets, Taken};
use crate::store::{audit, in_app, surveys, tenants};

use super::invitations::IssueRequest;

/// Length of the random part of an identity-verification secret (≈ 238 bits).
const IDENTITY_SECRET_CHARS: usize = 40;

/// What to do with a tenant's identity verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityChange {
    /// Turn it on; make a secret if there is none, or a new one when `rotate`.
    Enable { rotate: bool },
    /// Turn it off (the secret is kept for turning it on again).
    Disable,
}

impl Services {
    /// `IssueSurvey` with a publishable key: only for a survey marked in-app, as
    /// channel IN_APP, without `force` or customer properties, for a verified customer
    /// when the tenant asks for it. At most one decision per survey, customer and UTC
    /// day: later calls that day replay it, so a page that asks on every load neither
    /// piles up suppressions nor shows a dismissed form again.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, survey = %req.survey))]
    pub async fn issue_in_app(&self, p: &Principal, req: IssueRequest, customer_hash: &str) -> Result<IssueOutcome> {
        require_publishable(p)?;
        if req.force {
            return Err(AppError::PermissionDenied("`force` needs a secret key".into()));
        }
        if !req.properties.is_empty() {
            return Err(AppError::PermissionDenied(
                "publishable keys cannot set customer properties; send properties with the response".into(),
            ));
        }
        if req.idempotency_key.is_some() {
            return Err(AppError::invalid(
                "idempotency_key",
                "is set by rapport for publishable keys (one decision per survey, customer and UTC day); leave it empty",
            ));
        }
        if !matches!(req.channel, Channel::InApp | Channel::Link) {
            return Err(AppError::invalid("channel", "must be CHANNEL_IN_APP (or unset) with a publishable key"));
        }
        let conn = self.db.conn();
        // Identity first: an unverified caller learns nothing, not even whether the survey exists.
        let idv = in_app::identity(conn, &p.tenant).await?;
        if idv.enabled {
            let secret = match &idv.secret {
                Some(s) => Some(self.keyring.open(&sealing::identity_secret_context(p.tenant.as_str()), s)?),
                None => None,
            };
            let ok = secret.as_deref().is_some_and(|s| identity::verify(s, req.customer.as_str(), customer_hash));
            if !ok {
                return Err(AppError::PermissionDenied(
                    "identity verification is on: customer_hash must be the HMAC-SHA256 of customer_id \
                     under the tenant's secret"
                        .into(),
                ));
            }
        }
        let survey = surveys::get(conn, &p.tenant, &req.survey).await?;
        if !survey.in_app {
            // Exactly the answer for a survey that does not exist.
            return Err(AppError::NotFound(format!("survey {}", req.survey)));
        }
        let day = self.clock.now().date_naive().to_string();
        let key = format!("in_app:{}", secrets::fingerprint(&[survey.id.as_str(), req.customer.as_str(), &day]));
        // The in-app checks are done; issue as the tenant would.
        let acting = Principal { kind: KeyKind::Secret, ..p.clone() };
        let out = self
            .issue_survey(&acting, IssueRequest { channel: Channel::InApp, idempotency_key: Some(key), ..req })
            .await?;
        Ok(match out {
            // A replay of a dismissed invitation: no token, so the form stays closed.
            IssueOutcome::Issued { invitation, eligibility, .. } if invitation.dismissed_at.is_some() => {
                IssueOutcome::Issued { invitation, token: String::new(), eligibility }
            }
            other => other,
        })
    }

    /// Records that the customer closed the form without answering. Idempotent; an
    /// answered or expired invitation is FAILED_PRECONDITION.
    #[tracing::instrument(skip_all)]
    pub async fn dismiss_invitation(&self, token: &str) -> Result<Invitation> {
        let found = self.invitation_by_token(token).await?;
        let now = self.clock.now();
        let mut invitation = found.invitation;
        match invitation.status(now) {
            InvitationStatus::Dismissed => return Ok(invitation),
            InvitationStatus::Answered => return Err(answered()),
            InvitationStatus::Expired => {
                return Err(AppError::FailedPrecondition("the invitation has expired".into()));
            }
            InvitationStatus::Pending => {}
        }
        let txn = self.db.begin_write().await?;
        let changed = in_app::mark_dismissed(&txn, &found.tenant, &invitation.id, now).await?;
        txn.commit().await?;
        if !changed {
            // Answered or dismissed between the read and the write: report what it is now.
            let again = self.invitation_by_token(token).await?.invitation;
            return match again.status(now) {
                InvitationStatus::Dismissed => Ok(again),
                _ => Err(answered()),
            };
        }
        invitation.dismissed_at = Some(now);
        Ok(invitation)
    }

    /// Turns a tenant's identity verification on or off. Returns the new secret when
    /// one was made (shown once; the CRM's server keeps it).
    pub async fn set_identity_verification(&self, tenant: &str, change: IdentityChange) -> Result<Option<String>> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        let txn = self.db.begin_write().await?;
        let current = in_app::identity(&txn, &t).await?;
        let action = match change {
            IdentityChange::Disable => AuditAction::IdentityVerificationDisabled,
            IdentityChange::Enable { rotate: true } if current.secret.is_some() => AuditAction::IdentitySecretRotated,
            IdentityChange::Enable { .. } => AuditAction::IdentityVerificationEnabled,
        };
        audit::record(&txn, &AuditEntry::new(&t, Actor::CommandLine, action, ""), self.clock.now()).await?;
        let new_secret = match change {
            IdentityChange::Disable => {
                in_app::set_identity(&txn, &t, false, None).await?;
                None
            }
            IdentityChange::Enable { rotate } => {
                let secret = (rotate || current.secret.is_none())
                    .then(|| secrets::generate(identity::SECRET_PREFIX, IDENTITY_SECRET_CHARS));
                let sealed = match &secret {
                    Some(s) => Some(self.keyring.seal(&sealing::identity_secret_context(t.as_str()), s)?),
                    None => None,
                };
                in_app::set_identity(&txn, &t, true, sealed.as_ref()).await?;
                secret
            }
        };
        txn.commit().await?;
        Ok(new_secret)
    }
}

impl Services {
    /// Sets a tenant's default branding (each survey's empty fields take it); empty
    /// fields clear the default. Returns the stored values.
    pub async fn set_tenant_branding(&self, tenant: &str, branding: Branding) -> Result<Branding> {
        let branding = branding.validate("", "language")?;
        let t = tenants::find_tenant(&self.db, tenant).await?;
        let txn = self.db.begin_write().await?;
        tenants::set_branding(&txn, &t, &branding).await?;
        txn.commit().await?;
        Ok(branding)
    }

    /// A tenant's default branding.
    pub async fn tenant_branding(&self, tenant: &str) -> Result<Branding> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        Ok(tenants::branding(self.db.conn(), &t).await?)
    }

    /// What the hosted page and the widget show for `survey`: its branding, each empty
    /// field taken from the tenant's default.
    pub async fn form_branding(&self, tenant: &TenantId, survey: &Survey) -> Result<Branding> {
        Ok(survey.branding.or(&tenants::branding(self.db.conn(), tenant).await?))
    }
}

fn answered() -> AppError {
    AppError::FailedPrecondition("the invitation is already answered".into())
}

/// Token buckets for the calls a web page makes. Off (0) in [`Default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitSettings {
    /// Calls per minute per publishable key; 0 turns the limit off.
    pub per_key_per_minute: u32,
    /// Calls a publishable key may make at once before the rate applies.
    pub per_key_burst: u32,
    /// Calls per minute per client address (publishable-key and token calls); 0: off.
    pub per_address_per_minute: u32,
    /// Calls an address may make at once.
    pub per_address_burst: u32,
}

/// The credential a call carries, as far as rate limiting cares. The gate
/// (`grpc::gate`) classifies it from the method and the bearer value, before any
/// lookup, so a flood is turned away without touching the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A secret key (a server): never limited here. On a token call only a key that
    /// authenticated lately counts (`keys::VerifiedKeys`); elsewhere the call's own
    /// authentication refuses a bad one.
    Secret,
    /// A publishable key: limited per key and per address.
    Publishable(&'a str),
    /// No key (an invitation token, or nothing), or a secret key not known to be
    /// good on a token call: limited per address.
    None,
}

/// Where the buckets are kept when every replica shares them (Redis,
/// `RAPPORT_REDIS_URL`), and how long a check waits for them.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedLimitSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// What every key of the buckets starts with (`rapport:`).
    pub key_prefix: String,
    /// How long a check waits for Redis before it falls back to the replica's own buckets.
    pub timeout: Duration,
}

impl std::fmt::Debug for SharedLimitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("SharedLimitSettings")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The rate limits of the calls a web page makes: a bucket per publishable key and
/// one per client address (GCRA: a bucket holds `burst` calls and gains
/// `per_minute` a minute). Each key has its own bucket, so one tenant's flood only
/// ever empties its own.
///
/// With [`SharedLimitSettings`] the buckets live in Redis, shared by every replica, so
/// N replicas together allow the configured rate, not N times it: one round trip per
/// check. When Redis fails or takes longer than its timeout, the check **fails open
/// to this replica's own buckets** (the limits without Redis: each replica allows the
/// rate by itself), counts the failure (`Counters::rate_limit_backend_error`) and warns
/// at most every [`WARN_EVERY`]; for [`RETRY_SHARED_AFTER`] the checks then skip Redis, so
/// a Redis that hangs slows one call a second, not every call. A call is never refused
/// because Redis is away: an outage of a cache must not take the in-app forms down.
pub struct RateLimits {
    settings: RateLimitSettings,
    local: LocalBuckets,
    shared: Option<Shared>,
}

/// How long checks skip Redis after it failed.
pub const RETRY_SHARED_AFTER: Duration = Duration::from_secs(1);
/// The least time between two warnings that Redis failed.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

impl RateLimits {
    /// Each replica its own buckets.
    pub fn new(s: RateLimitSettings) -> Self {
        RateLimits { settings: s, local: LocalBuckets::new(s), shared: None }
    }

    /// Buckets in Redis shared by every replica, falling back to this replica's own
    /// (see the type's documentation); failures are counted in `counters`. Fails only
    /// for a URL that is not a Redis URL.
    pub fn shared(
        s: RateLimitSettings,
        shared: &SharedLimitSettings,
        counters: Arc<dyn Counters>,
    ) -> anyhow::Result<Self> {
        let buckets = SharedBuckets::open(&shared.url, &shared.key_prefix, shared.timeout)?;
        let shared = Shared {
            buckets,
            counters,
            epoch: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
            warned_at_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        };
        Ok(RateLimits { shared: Some(shared), ..RateLimits::new(s) })
    }

    /// Takes one call from each bucket the call belongs to, or says how long to wait
    /// (`RESOURCE_EXHAUSTED` with the delay).
    pub async fn admit(&self, credential: Credential<'_>, address: Option<IpAddr>) -> Result<()> {
        if credential == Credential::Secret {
            return Ok(());
        }
        if let Some(shared) = self.shared.as_ref().filter(|s| s.in_use()) {
            let wanted = self.buckets(credential, address);
            let buckets: Vec<Bucket> = wanted.iter().map(|(b, _)| b.clone()).collect();
            match shared.buckets.take(&buckets).await {
                Ok(Taken::Admitted) => {
                    shared.succeeded();
                    return Ok(());
                }
                Ok(Taken::Full { bucket, wait }) => {
                    shared.succeeded();
                    return Err(exhausted(wanted.get(bucket).map_or("this caller", |(_, what)| *what), wait));
                }
                Err(e) => shared.failed(&e),
            }
        }
        self.local.admit(credential, address)
    }

    /// The shared buckets a call draws on, each with what it is for (for the refusal).
    fn buckets(&self, credential: Credential<'_>, address: Option<IpAddr>) -> Vec<(Bucket, &'static str)> {
        let s = self.settings;
        let mut out = Vec::with_capacity(2);
        if let (Some(addr), Some((interval, burst))) =
            (address, bucket_shape(s.per_address_per_minute, s.per_address_burst))
        {
            out.push((Bucket { name: format!("ip:{addr}"), interval, burst }, "this client address"));
        }
        if let (Credential::Publishable(key), Some((interval, burst))) =
            (credential, bucket_shape(s.per_key_per_minute, s.per_key_burst))
        {
            let name = format!("pk:{}", secrets::hash(key));
            out.push((Bucket { name, interval, burst }, "this publishable key"));
        }
        out
    }
}

/// A bucket's interval between two calls and its size, as [`governor::Quota`] has them
/// (`None`: the limit is off).
fn bucket_shape(per_minute: u32, burst: u32) -> Option<(Duration, u32)> {
    let rate = NonZeroU32::new(per_minute)?;
    Some((Duration::from_secs(60) / rate.get(), NonZeroU32::new(burst).unwrap_or(rate).get()))
}

/// The buckets in Redis and what the checks know of its health.
struct Shared {
    buckets: SharedBuckets,
    counters: Arc<dyn Counters>,
    /// What the millisecond clocks below count from.
    epoch: Instant,
    /// Checks skip Redis until then (after a failure).
    skip_until_ms: AtomicU64,
    /// When the last warning was logged (0: never).
    warned_at_ms: AtomicU64,
    /// The last check failed (to log once when Redis answers again).
    failing: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Whether checks ask Redis now (not within [`RETRY_SHARED_AFTER`] of a failure).
    fn in_use(&self) -> bool {
        self.now_ms() >= self.skip_until_ms.load(Ordering::Relaxed)
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again: rate limits are shared by the replicas again");
        }
    }

    /// Counts the failure, warns if none was logged lately, and skips Redis a while.
    fn failed(&self, e: &crate::store::StoreError) {
        self.counters.rate_limit_backend_error();
        self.failing.store(true, Ordering::Relaxed);
        let now = self.now_ms();
        self.skip_until_ms.store(now.saturating_add(RETRY_SHARED_AFTER.as_millis() as u64), Ordering::Relaxed);
        let last = self.warned_at_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due && self.warned_at_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let error = match e {
                crate::store::StoreError::Timeout { after, .. } => format!("Redis did not answer within {after:?}"),
                other => other.to_string(),
            };
            tracing::warn!(
                %error,
                "the shared rate limits in Redis failed; this replica applies its own limits until Redis answers \
                 (rapport_rate_limit_backend_errors_total counts the failures)"
            );
        }
    }
}

/// This replica's own keyed buckets (the `governor` crate): all of the limits without
/// Redis, and the fallback when Redis fails. A check never waits or takes a shared
/// lock for long.
struct LocalBuckets {
    by_key: Option<DefaultKeyedRateLimiter<String>>,
    by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// How many checks between two sweeps of idle buckets.
const SWEEP_EVERY: u64 = 4096;

impl LocalBuckets {
    fn new(s: RateLimitSettings) -> Self {
        fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
            let rate = NonZeroU32::new(per_minute)?;
            Some(Quota::per_minute(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
        }
        LocalBuckets {
            by_key: quota(s.per_key_per_minute, s.per_key_burst).map(RateLimiter::keyed),
            by_address: quota(s.per_address_per_minute, s.per_address_burst).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    fn admit(&self, credential: Credential<'_>, address: Option<IpAddr>) -> Result<()> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        if let (Some(limiter), Some(addr)) = (&self.by_address, address) {
            limiter
                .check_key(&addr)
                .map_err(|wait| exhausted("this client address", wait.wait_time_from(self.clock.now())))?;
        }
        if let (Some(limiter), Credential::Publishable(key)) = (&self.by_key, credential) {
            limiter
                .check_key(&secrets::hash(key))
                .map_err(|wait| exhausted("this publishable key", wait.wait_time_from(self.clock.now())))?;
        }
        Ok(())
    }

    /// Forgets buckets that are full again, so memory follows the active callers.
    fn sweep(&self) {
        if let Some(l) = &self.by_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.by_address {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn exhausted(what: &str, wait: Duration) -> AppError {
    // Never advise a retry sooner than a millisecond.
    let retry_after = wait.max(Duration::from_millis(1));
    AppError::ResourceExhausted {
        message: format!("rate limit reached for {what}; retry in {:.3} s", retry_after.as_secs_f64()),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_allows_its_burst_then_refuses_with_a_delay_and_keys_do_not_share() {
        let limits = RateLimits::new(RateLimitSettings {
            per_key_per_minute: 60,
            per_key_burst: 2,
            per_address_per_minute: 0,
            per_address_burst: 0,
        });
        let a = Credential::Publishable("rk_pub_a");
        assert!(limits.admit(a, None).await.is_ok());
        assert!(limits.admit(a, None).await.is_ok());
        match limits.admit(a, None).await {
            Err(AppError::ResourceExhausted { retry_after, .. }) => {
                // 60 a minute: one token a second.
                assert!(retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
        }
        assert!(
            limits.admit(Credential::Publishable("rk_pub_b"), None).await.is_ok(),
            "another key has its own bucket"
        );
        assert!(limits.admit(Credential::Secret, None).await.is_ok(), "secret keys are not limited");
    }

    #[tokio::test]
    async fn addresses_have_their_own_buckets_and_zero_turns_limits_off() {
        let limits = RateLimits::new(RateLimitSettings {
            per_key_per_minute: 0,
            per_key_burst: 0,
            per_address_per_minute: 60,
            per_address_burst: 1,
        });
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.admit(Credential::None, Some(one)).await.is_ok());
        assert!(limits.admit(Credential::None, Some(one)).await.is_err());
        assert!(limits.admit(Credential::None, Some(two)).await.is_ok());
        let off = RateLimits::new(RateLimitSettings::default());
        for _ in 0..100 {
            assert!(off.admit(Credential::Publishable("rk_pub_a"), Some(one)).await.is_ok());
        }
    }

    /// Counts only the failures of the shared buckets.
    #[derive(Debug, Default)]
    struct Failures(AtomicU64);

    impl Counters for Failures {
        fn response_batch_written(&self, _: usize) {}
        fn response_recorded(&self, _: crate::domain::SurveyKind, _: crate::domain::Bucket, _: bool) {}
        fn follow_up_opened(&self, _: crate::domain::SurveyKind) {}
        fn webhook_delivery(&self, _: &'static str) {}
        fn rate_limit_backend_error(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn redis_at(url: String) -> SharedLimitSettings {
        SharedLimitSettings { url, key_prefix: "rapport:unit:".into(), timeout: Duration::from_millis(50) }
    }

    #[tokio::test]
    async fn without_redis_a_check_falls_back_to_the_replicas_own_buckets_counts_it_and_skips_redis_a_while() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let failures = Arc::new(Failures::default());
        let settings = RateLimitSettings {
            per_key_per_minute: 60,
            per_key_burst: 2,
            per_address_per_minute: 0,
            per_address_burst: 0,
        };
        let limits =
            RateLimits::shared(settings, &redis_at(format!("redis://127.0.0.1:{port}")), failures.clone()).unwrap();
        let a = Credential::Publishable("rk_pub_a");
        assert!(limits.admit(a, None).await.is_ok(), "fails open");
        assert!(limits.admit(a, None).await.is_ok());
        assert!(
            matches!(limits.admit(a, None).await, Err(AppError::ResourceExhausted { .. })),
            "to the replica's own bucket of 2, not to no limit"
        );
        assert_eq!(failures.0.load(Ordering::Relaxed), 1, "one failure; then Redis is left alone for a while");
    }

    #[test]
    fn a_redis_url_that_is_not_one_stops_the_start_without_quoting_it() {
        let failures: Arc<dyn Counters> = Arc::new(Failures::default());
        let bad = RateLimits::shared(
            RateLimitSettings::default(),
            &redis_at("http://user:hunter2@example.com".into()),
            failures,
        );
        let e = bad.err().expect("not a Redis URL");
        assert!(e.to_string().contains("RAPPORT_REDIS_URL"), "{e}");
        assert!(!format!("{e:#}").contains("hunter2"), "{e:#}");
        let shown = format!("{:?}", redis_at("redis://:hunter2@localhost".into()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
