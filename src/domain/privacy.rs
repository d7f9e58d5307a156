//! Privacy and administration records (docs/privacy.md): API keys as operators see
//! them, the audit log of administrative actions, and who did each action.

use serde_json::Value;

use super::model::KeyKind;
use super::time::Timestamp;
use super::{KeyId, TenantId};

/// An API key as listed: never its secret (only the first characters, to recognise it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: KeyId,
    pub tenant: TenantId,
    pub kind: KeyKind,
    /// The first characters of the key, e.g. `rk_secret_Ab3x`.
    pub prefix: String,
    pub created_at: Timestamp,
    /// When it last authenticated a call (to the hour: it is written at most hourly).
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// How often a key's time of last use is written: a busy key costs one write per period.
pub const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::hours(1);

/// Who did an administrative action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A tenant's API key, over the API.
    Key(KeyId),
    /// The holder of the operator token, over the admin service.
    Operator,
    /// Someone at the command line (`rapport key revoke …`).
    CommandLine,
    /// rapport itself (start-up sealing, retention).
    System,
}

impl Actor {
    /// The caller behind an API key.
    pub fn of(p: &super::model::Principal) -> Self {
        Actor::Key(p.key_id.clone())
    }

    /// As stored and shown: `key:<id>`, `operator`, `cli`, `system`.
    pub fn as_string(&self) -> String {
        match self {
            Actor::Key(k) => format!("key:{}", k.0),
            Actor::Operator => "operator".into(),
            Actor::CommandLine => "cli".into(),
            Actor::System => "system".into(),
        }
    }
}

/// The administrative actions the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    TenantCreated,
    KeyCreated,
    KeyRevoked,
    WebhookEndpointCreated,
    WebhookEndpointUpdated,
    WebhookEndpointDeleted,
    WebhookSecretRotated,
    IdentityVerificationEnabled,
    IdentityVerificationDisabled,
    IdentitySecretRotated,
    ScoringConfigUpdated,
    CustomerErased,
    CustomerExported,
    RetentionUpdated,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::TenantCreated => "tenant.created",
            AuditAction::KeyCreated => "key.created",
            AuditAction::KeyRevoked => "key.revoked",
            AuditAction::WebhookEndpointCreated => "webhook_endpoint.created",
            AuditAction::WebhookEndpointUpdated => "webhook_endpoint.updated",
            AuditAction::WebhookEndpointDeleted => "webhook_endpoint.deleted",
            AuditAction::WebhookSecretRotated => "webhook_endpoint.secret_rotated",
            AuditAction::IdentityVerificationEnabled => "identity_verification.enabled",
            AuditAction::IdentityVerificationDisabled => "identity_verification.disabled",
            AuditAction::IdentitySecretRotated => "identity_verification.secret_rotated",
            AuditAction::ScoringConfigUpdated => "scoring_config.updated",
            AuditAction::CustomerErased => "customer.erased",
            AuditAction::CustomerExported => "customer.exported",
            AuditAction::RetentionUpdated => "retention.updated",
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// UUIDv7: ordered by time.
    pub id: String,
    pub tenant: TenantId,
    /// `key:<id>`, `operator`, `cli` or `system` ([`Actor::as_string`]).
    pub actor: String,
    /// e.g. `key.revoked` ([`AuditAction::as_str`]).
    pub action: String,
    /// The id of what it acted on (a key, an endpoint, an erasure); empty for the tenant.
    pub target: String,
    /// What changed; never a secret, a comment or a customer's data.
    pub details: Value,
    pub at: Timestamp,
}

/// A new audit line, before it is stored.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub tenant: TenantId,
    pub actor: Actor,
    pub action: AuditAction,
    pub target: String,
    pub details: Value,
}

impl AuditEntry {
    pub fn new(tenant: &TenantId, actor: Actor, action: AuditAction, target: impl Into<String>) -> Self {
        AuditEntry { tenant: tenant.clone(), actor, action, target: target.into(), details: Value::Null }
    }

    pub fn with(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// A tenant as operators list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}
