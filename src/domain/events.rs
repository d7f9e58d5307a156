//! Events: every state change is recorded as one, in the transaction of the change
//! (docs/webhooks.md). Here: the event types and the payloads, built from domain records, so
//! a receiver can act without calling back.
//!
//! Payloads use snake_case names and lower-case enum values (`"bucket": "detractor"`),
//! not the proto3 JSON mapping of the gRPC/JSON API (`"bucket": "BUCKET_DETRACTOR"`).
//! That is deliberate and stays so within `v1`: a payload is stored with its event and
//! re-sent as stored by retries, replays and `WatchEvents` for the retention period, so
//! a change of shape would mix two shapes in one stream and break every receiver at
//! once; the payloads are not API messages (they add fields such as `scale_min`,
//! `blocking_rules`, the follow-up's `response`), so there is no proto message whose
//! mapping they would follow; and snake_case is what generic receivers (Standard
//! Webhooks, Zapier, serverless handlers) expect. Fields may be added, none renamed.

use serde_json::{Value, json};

use super::eligibility::Eligibility;
use super::model::{FollowUp, Invitation, Response};
use super::time::Timestamp;
use super::{CustomerRef, InvitationId, SurveyId};

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ResponseRecorded,
    ResponseUpdated,
    FollowUpOpened,
    FollowUpUpdated,
    FollowUpOverdue,
    InvitationIssued,
    InvitationSuppressed,
    /// A customer's data was erased (docs/privacy.md); the payload is the id only.
    CustomerErased,
    /// Sent by `SendTestEvent`; never stored in the outbox.
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::ResponseRecorded,
        EventType::ResponseUpdated,
        EventType::FollowUpOpened,
        EventType::FollowUpUpdated,
        EventType::FollowUpOverdue,
        EventType::InvitationIssued,
        EventType::InvitationSuppressed,
        EventType::CustomerErased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ResponseRecorded => "response.recorded",
            EventType::ResponseUpdated => "response.updated",
            EventType::FollowUpOpened => "follow_up.opened",
            EventType::FollowUpUpdated => "follow_up.updated",
            EventType::FollowUpOverdue => "follow_up.overdue",
            EventType::InvitationIssued => "invitation.issued",
            EventType::InvitationSuppressed => "invitation.suppressed",
            EventType::CustomerErased => "customer.erased",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().chain([EventType::WebhookTest]).find(|t| t.as_str() == s)
    }
}

/// A stored event as readers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub sequence: i64,
    pub event_type: String,
    pub created_at: Timestamp,
    pub data: Value,
}

impl Event {
    /// The Standard Webhooks envelope: `{type, timestamp, data}`.
    pub fn envelope(event_type: &str, created_at: Timestamp, data: &Value) -> Value {
        json!({
            "type": event_type,
            "timestamp": created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": data,
        })
    }
}

fn ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn opt_ts(t: Option<Timestamp>) -> Value {
    t.map(ts).map(Value::String).unwrap_or(Value::Null)
}

/// `response.recorded` / `response.updated`.
pub fn response_data(r: &Response) -> Value {
    json!({
        "response_id": r.id.0,
        "survey_id": r.survey_id.0,
        "customer_id": r.customer.0,
        "invitation_id": r.invitation_id.as_ref().map(|i| i.0.clone()),
        "survey_kind": r.scale.kind.as_str(),
        "scale_min": r.scale.min(),
        "scale_max": r.scale.max,
        "score": r.score,
        "bucket": r.bucket.as_str(),
        "comment": r.comment,
        "properties": r.properties,
        "recorded_at": ts(r.recorded_at),
        "updated_at": ts(r.updated_at),
        "follow_up_id": r.follow_up_id.as_ref().map(|f| f.0.clone()),
    })
}

/// `follow_up.opened` / `.updated` / `.overdue`: the follow-up with its latest answer.
pub fn follow_up_data(f: &FollowUp) -> Value {
    json!({
        "follow_up_id": f.id.0,
        "status": f.status.as_str(),
        "priority": f.priority.as_str(),
        "assignee": f.assignee,
        "due_at": ts(f.due_at),
        "overdue": f.overdue_at.is_some(),
        "resolution": f.resolution,
        "opened_at": ts(f.opened_at),
        "updated_at": ts(f.updated_at),
        "at_or_under_threshold": f.at_or_under_threshold,
        "response": response_data(&f.response),
    })
}

/// `invitation.issued`.
pub fn invitation_issued_data(i: &Invitation) -> Value {
    json!({
        "invitation_id": i.id.0,
        "survey_id": i.survey_id.0,
        "customer_id": i.customer.0,
        "channel": i.channel.as_str(),
        "forced": i.forced,
        "issued_at": ts(i.issued_at),
        "expires_at": ts(i.expires_at),
    })
}

/// `invitation.suppressed`: which rule blocked and until when.
pub fn invitation_suppressed_data(
    id: &InvitationId,
    survey: &SurveyId,
    customer: &CustomerRef,
    e: &Eligibility,
    at: Timestamp,
) -> Value {
    json!({
        "suppression_id": id.0,
        "survey_id": survey.0,
        "customer_id": customer.0,
        "rule": e.rule.map(|r| r.as_str()),
        "blocking_rules": e.blocking.iter().map(|(r, until)| json!({"rule": r.as_str(), "until": opt_ts(*until)})).collect::<Vec<_>>(),
        "next_eligible_at": opt_ts(e.next_eligible_at),
        "suppressed_at": ts(at),
    })
}

/// `customer.erased`: the CRM's id of the customer, and when.
pub fn customer_erased_data(customer: &CustomerRef, at: Timestamp) -> Value {
    json!({ "customer_id": customer.0, "erased_at": ts(at) })
}

/// An event payload stored sealed (docs/privacy.md): the outbox then holds only this,
/// and readers open it ([`sealed_payload`]) before it is sent.
pub fn sealed_data(sealed: &super::sealing::Sealed) -> Value {
    json!({ "$sealed": { "key_id": sealed.key_id, "ciphertext": sealed.ciphertext } })
}

/// The sealed payload inside `data`, if it is one.
pub fn sealed_payload(data: &Value) -> Option<super::sealing::Sealed> {
    let s = data.as_object().filter(|o| o.len() == 1)?.get("$sealed")?;
    Some(super::sealing::Sealed {
        key_id: s.get("key_id")?.as_str()?.to_owned(),
        ciphertext: s.get("ciphertext")?.as_str()?.to_owned(),
    })
}

/// Where a sealed event payload lives: the associated data of its seal.
pub fn sealed_event_context(tenant: &str, event_type: &str) -> String {
    format!("events.data/{tenant}/{event_type}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("nope"), None);
    }
}
