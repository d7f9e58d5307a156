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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Services, require_publishable};
use crate::domain::TenantId;
use crate::domain::model::{Branding, Channel, Invitation, InvitationStatus, IssueOutcome, KeyKind, Principal, Survey};
use crate::domain::privacy::{Actor, AuditAction, AuditEntry};
use crate::domain::{identity, sealing, secrets};
use crate::error::{AppError, Result};
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

/// Keyed token buckets (GCRA, the `governor` crate): one per publishable key and one
/// per client address. Each key has its own bucket, so one tenant's flood only ever
/// empties its own; a check never waits or takes a shared lock for long.
pub struct RateLimits {
    by_key: Option<DefaultKeyedRateLimiter<String>>,
    by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// How many checks between two sweeps of idle buckets.
const SWEEP_EVERY: u64 = 4096;

impl RateLimits {
    pub fn new(s: RateLimitSettings) -> Self {
        fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
            let rate = NonZeroU32::new(per_minute)?;
            Some(Quota::per_minute(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
        }
        RateLimits {
            by_key: quota(s.per_key_per_minute, s.per_key_burst).map(RateLimiter::keyed),
            by_address: quota(s.per_address_per_minute, s.per_address_burst).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one token from each bucket the call belongs to, or says how long to wait
    /// (`RESOURCE_EXHAUSTED` with the delay).
    pub fn admit(&self, credential: Credential<'_>, address: Option<IpAddr>) -> Result<()> {
        if credential == Credential::Secret {
            return Ok(());
        }
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

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_delay_and_keys_do_not_share() {
        let limits = RateLimits::new(RateLimitSettings {
            per_key_per_minute: 60,
            per_key_burst: 2,
            per_address_per_minute: 0,
            per_address_burst: 0,
        });
        let a = Credential::Publishable("rk_pub_a");
        assert!(limits.admit(a, None).is_ok());
        assert!(limits.admit(a, None).is_ok());
        match limits.admit(a, None) {
            Err(AppError::ResourceExhausted { retry_after, .. }) => {
                // 60 a minute: one token a second.
                assert!(retry_after > Duration::from_millis(900) && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
        }
        assert!(limits.admit(Credential::Publishable("rk_pub_b"), None).is_ok(), "another key has its own bucket");
        assert!(limits.admit(Credential::Secret, None).is_ok(), "secret keys are not limited");
    }

    #[test]
    fn addresses_have_their_own_buckets_and_zero_turns_limits_off() {
        let limits = RateLimits::new(RateLimitSettings {
            per_key_per_minute: 0,
            per_key_burst: 0,
            per_address_per_minute: 60,
            per_address_burst: 1,
        });
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.admit(Credential::None, Some(one)).is_ok());
        assert!(limits.admit(Credential::None, Some(one)).is_err());
        assert!(limits.admit(Credential::None, Some(two)).is_ok());
        let off = RateLimits::new(RateLimitSettings::default());
        for _ in 0..100 {
            assert!(off.admit(Credential::Publishable("rk_pub_a"), Some(one)).is_ok());
        }
    }
}
