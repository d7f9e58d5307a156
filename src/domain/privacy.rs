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

/// The tombstone of an erased customer: hex SHA-256 of the tenant and the CRM's id.
/// It tells a later write naming that id that the customer was erased; it does not
/// tell anyone the id (though someone who already knows an id can test it).
pub fn subject_hash(tenant: &TenantId, external: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"rapport-erased\0");
    h.update(tenant.as_str().as_bytes());
    h.update(b"\0");
    h.update(external.as_bytes());
    super::secrets::hex(&h.finalize())
}

/// Fields of an event payload that hold what a customer wrote or is: blanked when the
/// customer is erased.
const PERSONAL_FIELDS: [&str; 4] = ["comment", "properties", "resolution", "customer_properties"];

/// Removes one customer from an event payload: every object whose `customer_id` is
/// `external` gets `stand_in` there instead, and its comment, properties and
/// resolution emptied (in the follow-up around a response too). Returns whether
/// anything changed.
pub fn redact_event_data(data: &mut Value, external: &str, stand_in: &str) -> bool {
    fn walk(v: &mut Value, external: &str, stand_in: &str, inside: bool) -> bool {
        let mut changed = false;
        match v {
            Value::Object(o) => {
                let mine = inside || o.get("customer_id").and_then(Value::as_str) == Some(external);
                if let Some(c) = o.get_mut("customer_id")
                    && c.as_str() == Some(external)
                {
                    *c = Value::String(stand_in.to_owned());
                    changed = true;
                }
                if mine {
                    for f in PERSONAL_FIELDS {
                        match o.get_mut(f) {
                            Some(Value::String(s)) if !s.is_empty() => {
                                s.clear();
                                changed = true;
                            }
                            Some(Value::Object(m)) if !m.is_empty() => {
                                m.clear();
                                changed = true;
                            }
                            _ => {}
                        }
                    }
                }
                // A follow-up's own fields belong to the customer of its response.
                let nested_mine = mine
                    || o.get("response").and_then(|r| r.get("customer_id")).and_then(Value::as_str) == Some(external);
                if nested_mine && !mine {
                    for f in PERSONAL_FIELDS {
                        if let Some(Value::String(s)) = o.get_mut(f)
                            && !s.is_empty()
                        {
                            s.clear();
                            changed = true;
                        }
                    }
                }
                for (_, child) in o.iter_mut() {
                    changed |= walk(child, external, stand_in, mine);
                }
            }
            Value::Array(a) => {
                for child in a {
                    changed |= walk(child, external, stand_in, inside);
                }
            }
            _ => {}
        }
        changed
    }
    walk(data, external, stand_in, false)
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// The erasure's id (as in the audit log).
    pub erasure_id: String,
    /// Whether the customer existed (false: erased before, or never seen; the
    /// tombstone is recorded either way).
    pub found: bool,
    /// Responses kept as anonymous scores (comment and properties removed).
    pub responses: u64,
    /// Invitations kept as anonymous counts (tokens removed).
    pub invitations: u64,
    /// Follow-ups kept (resolution and notes removed).
    pub follow_ups: u64,
    /// Raw activity events deleted.
    pub activity_events: u64,
    /// Outbox events and webhook deliveries whose payloads were scrubbed.
    pub events: u64,
    pub deliveries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_removes_the_customer_and_what_they_wrote_and_nothing_else() {
        let mut follow_up = json!({
            "follow_up_id": "f1", "assignee": "ana", "resolution": "called Jo at jo@example.com",
            "response": { "customer_id": "jo", "comment": "bad", "properties": {"plan": "pro"}, "score": 2 }
        });
        assert!(redact_event_data(&mut follow_up, "jo", "erased-1"));
        assert_eq!(follow_up["response"]["customer_id"], "erased-1");
        assert_eq!(follow_up["response"]["comment"], "");
        assert_eq!(follow_up["response"]["properties"], json!({}));
        assert_eq!(follow_up["resolution"], "");
        assert_eq!(follow_up["assignee"], "ana");
        assert_eq!(follow_up["response"]["score"], 2, "the score stays");

        let mut other = json!({ "customer_id": "jon", "comment": "fine" });
        assert!(!redact_event_data(&mut other, "jo", "erased-1"), "another customer is untouched");
        assert_eq!(other["comment"], "fine");
    }

    #[test]
    fn subject_hashes_differ_per_tenant_and_id_and_hide_the_id() {
        let a = subject_hash(&TenantId("t1".into()), "jo@example.com");
        assert_eq!(a.len(), 64);
        assert!(!a.contains("jo"));
        assert_ne!(a, subject_hash(&TenantId("t2".into()), "jo@example.com"));
        assert_ne!(a, subject_hash(&TenantId("t1".into()), "jo@example.co"));
    }
}

/// One record of a customer export (docs/privacy.md, "Exporting a customer"): its
/// kind — `customer`, `invitation`, `response`, `follow_up`, `activity_event` — and
/// its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRecord {
    pub kind: &'static str,
    pub data: Value,
}

/// The name and version of the export document's shape.
pub const EXPORT_FORMAT: &str = "rapport.customer_export.v1";

/// The export as one JSON document: the customer, then a list per kind in the order
/// the records came.
pub fn export_document(tenant: &TenantId, at: Timestamp, records: Vec<ExportRecord>) -> Value {
    let mut doc = serde_json::json!({
        "format": EXPORT_FORMAT,
        "tenant_id": tenant.0,
        "exported_at": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "customer": null,
        "invitations": [],
        "responses": [],
        "follow_ups": [],
        "activity_events": [],
    });
    for r in records {
        let list = match r.kind {
            "customer" => {
                doc["customer"] = r.data;
                continue;
            }
            "invitation" => "invitations",
            "response" => "responses",
            "follow_up" => "follow_ups",
            _ => "activity_events",
        };
        if let Some(a) = doc[list].as_array_mut() {
            a.push(r.data);
        }
    }
    doc
}

/// How long a tenant's raw data is kept, in days; 0 keeps it forever
/// (docs/privacy.md, "Retention"). Roll-ups and anonymous counts are always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Raw activity events (their daily roll-ups stay).
    pub activity_event_days: i32,
    /// The comments of answers (the scores stay).
    pub comment_days: i32,
    /// Invitations' tokens, idempotency keys and fingerprints (the rows stay, for the
    /// funnel and the cooldowns; an old link stops working).
    pub invitation_days: i32,
    /// Webhook deliveries and their attempts, once no longer pending.
    pub delivery_log_days: i32,
}

/// Longest period a retention field takes (100 years).
pub const MAX_RETENTION_DAYS: i32 = 36_600;

impl Default for RetentionPolicy {
    /// The documented defaults.
    fn default() -> Self {
        RetentionPolicy { activity_event_days: 730, comment_days: 0, invitation_days: 400, delivery_log_days: 30 }
    }
}

impl RetentionPolicy {
    /// Each field from 0 to [`MAX_RETENTION_DAYS`]; errors name the field (`policy.<name>`).
    pub fn validate(self) -> crate::error::Result<Self> {
        for (field, days) in [
            ("policy.activity_event_days", self.activity_event_days),
            ("policy.comment_days", self.comment_days),
            ("policy.invitation_days", self.invitation_days),
            ("policy.delivery_log_days", self.delivery_log_days),
        ] {
            if !(0..=MAX_RETENTION_DAYS).contains(&days) {
                return Err(crate::error::AppError::invalid(
                    field,
                    format!("must be from 0 (keep forever) to {MAX_RETENTION_DAYS} days; got {days}"),
                ));
            }
        }
        Ok(self)
    }
}

/// What one retention pass removed, per kind of data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPass {
    pub activity_events: u64,
    pub comments: u64,
    pub invitations: u64,
    pub delivery_logs: u64,
}

/// One invitation of a customer, as their export shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedInvitation {
    pub id: String,
    pub survey_id: String,
    pub channel: String,
    pub outcome: String,
    pub rule: Option<String>,
    pub forced: bool,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub dismissed_at: Option<Timestamp>,
    pub response_id: Option<String>,
}

/// One raw activity event of a customer, as their export shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedActivity {
    pub message_id: String,
    pub kind: String,
    pub name: Option<String>,
    pub occurred_at: Timestamp,
    pub properties: Value,
    pub seconds: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub received_at: Timestamp,
}
