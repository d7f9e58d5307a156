//! What the use-cases hand to storage and what storage hands back beyond the API's
//! records: a new response, follow-up or invitation to write; an invitation with what
//! only rapport keeps (its tenant, the fingerprint of the request that issued it); the
//! part of a follow-up that actions change; a webhook delivery due for its attempt.
//!
//! Plain data in domain types. How each is laid out in a row — microseconds, the
//! stored names of enums, JSON text — is `store/`'s business alone.

use super::eligibility::{Eligibility, EligibilityRule};
use super::engagement::EventKind;
use super::follow_up::{FollowUpAction, FollowUpStatus, Priority, next_status};
use super::ids::*;
use super::model::{
    Channel, EntryKind, FollowUp, FollowUpEntry, Invitation, Properties, Response, Survey, WebhookEndpoint,
};
use super::survey::{Scale, Score};
use super::time::Timestamp;
use crate::error::Result;

/// A response to write: a checked answer (live or imported) for a customer's row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResponse {
    pub id: ResponseId,
    pub survey_id: SurveyId,
    /// The customer's row (rapport's id).
    pub customer: CustomerRowId,
    pub invitation_id: Option<InvitationId>,
    pub scale: Scale,
    pub score: Score,
    pub comment: String,
    pub properties: Properties,
    pub idempotency_key: Option<String>,
    /// The fingerprint of the request, to tell a retry from a different request.
    pub fingerprint: String,
    /// When it was recorded (an import's: when the source recorded it).
    pub recorded_at: Timestamp,
}

impl NewResponse {
    /// The response as the API shows it once written: with the customer's CRM id and
    /// the follow-up it opened, if any.
    pub fn response(&self, customer: CustomerRef, follow_up_id: Option<FollowUpId>) -> Response {
        Response {
            id: self.id.clone(),
            survey_id: self.survey_id.clone(),
            customer,
            invitation_id: self.invitation_id.clone(),
            scale: self.scale,
            score: self.score.value,
            bucket: self.score.bucket,
            comment: self.comment.clone(),
            properties: self.properties.clone(),
            recorded_at: self.recorded_at,
            updated_at: self.recorded_at,
            follow_up_id,
        }
    }
}

/// A stored response with the fingerprint of the request that recorded it (what an
/// idempotent retry is compared with).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub response: Response,
    pub fingerprint: Option<String>,
}

/// A follow-up to write: opened by a low score, with its first history line.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFollowUp {
    pub id: FollowUpId,
    pub response_id: ResponseId,
    pub survey_id: SurveyId,
    /// The customer's row (rapport's id).
    pub customer: CustomerRowId,
    pub opened_at: Timestamp,
    pub due_at: Timestamp,
    /// Its first history line.
    pub entry: FollowUpEntry,
}

impl NewFollowUp {
    /// The follow-up a low `score` of `response` (by `customer`) opens at `at`: open,
    /// normal priority, unassigned, due once the survey's SLA has passed.
    pub fn opened_by(
        survey: &Survey,
        response: &ResponseId,
        customer: &CustomerRowId,
        score: i32,
        at: Timestamp,
    ) -> Self {
        NewFollowUp {
            id: FollowUpId::generate(),
            response_id: response.clone(),
            survey_id: survey.id.clone(),
            customer: customer.clone(),
            opened_at: at,
            due_at: at + survey.follow_up.sla(),
            entry: FollowUpEntry::system(format!("opened by a score of {score}"), at),
        }
    }

    /// The follow-up as the API shows it once written, about `response`.
    pub fn follow_up(&self, response: Response) -> FollowUp {
        FollowUp {
            id: self.id.clone(),
            response,
            status: FollowUpStatus::Open,
            priority: Priority::Normal,
            assignee: String::new(),
            due_at: self.due_at,
            overdue_at: None,
            resolution: String::new(),
            at_or_under_threshold: true,
            opened_at: self.opened_at,
            acknowledged_at: None,
            resolved_at: None,
            dismissed_at: None,
            reopened_at: None,
            updated_at: self.opened_at,
            entries: vec![self.entry.clone()],
        }
    }
}

impl FollowUpEntry {
    /// A history line written by rapport itself.
    pub fn system(body: String, at: Timestamp) -> Self {
        FollowUpEntry {
            kind: EntryKind::System,
            at,
            author: "rapport".into(),
            body,
            from_status: None,
            to_status: None,
        }
    }
}

/// What the people working a follow-up change: its status and when it reached each,
/// who has it, how urgent it is, how it ended. Read, changed by [`FollowUpState::apply`]
/// and written back whole, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpState {
    pub status: FollowUpStatus,
    pub priority: Priority,
    pub assignee: String,
    pub resolution: String,
    /// Whether the answer's score is (still) at or under the survey's threshold.
    pub at_or_under_threshold: bool,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub dismissed_at: Option<Timestamp>,
    pub reopened_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl FollowUpState {
    /// Applies `action` by `author` at `now`; returns the history line that records
    /// it. A transition the status does not allow is `FAILED_PRECONDITION` and
    /// changes nothing.
    pub fn apply(&mut self, action: FollowUpAction, author: String, now: Timestamp) -> Result<FollowUpEntry> {
        let from = self.status;
        let to = next_status(from, &action)?;
        let mut entry = FollowUpEntry {
            kind: EntryKind::StatusChange,
            at: now,
            author,
            body: String::new(),
            from_status: to.map(|_| from),
            to_status: to,
        };
        match action {
            FollowUpAction::Acknowledge => self.acknowledged_at = Some(now),
            FollowUpAction::Resolve { resolution } => {
                self.resolved_at = Some(now);
                self.resolution = resolution.clone();
                entry.body = resolution;
            }
            FollowUpAction::Dismiss { reason } => {
                self.dismissed_at = Some(now);
                entry.body = reason;
            }
            FollowUpAction::Reopen { reason } => {
                self.reopened_at = Some(now);
                self.resolution.clear();
                entry.body = reason;
            }
            FollowUpAction::Assign { assignee } => {
                entry.kind = EntryKind::Assignment;
                entry.body = assignee.clone();
                self.assignee = assignee;
            }
            FollowUpAction::SetPriority { priority } => {
                entry.kind = EntryKind::Priority;
                entry.body = priority.as_str().into();
                self.priority = priority;
            }
            FollowUpAction::AddNote { body } => {
                entry.kind = EntryKind::Note;
                entry.body = body;
            }
        }
        if let Some(to) = to {
            self.status = to;
        }
        self.updated_at = now;
        Ok(entry)
    }
}

/// An invitation, or a suppression `IssueSurvey` recorded instead, to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInvitation {
    pub id: InvitationId,
    pub survey_id: SurveyId,
    /// The customer's row (rapport's id).
    pub customer: CustomerRowId,
    pub channel: Channel,
    /// Issued (eligible, forced or imported), or suppressed by `rule`.
    pub issued: bool,
    /// The deciding rule of the eligibility decision, if one blocked.
    pub rule: Option<EligibilityRule>,
    pub next_eligible_at: Option<Timestamp>,
    pub forced: bool,
    /// The SHA-256 of the token handed out (never the token); `None` for a suppression
    /// or an imported invitation.
    pub token_hash: Option<String>,
    pub idempotency_key: Option<String>,
    pub fingerprint: Option<String>,
    pub created_at: Timestamp,
    /// `None` for a suppression.
    pub expires_at: Option<Timestamp>,
    /// An imported invitation comes answered: by this response, at this time.
    pub answered: Option<(ResponseId, Timestamp)>,
}

impl NewInvitation {
    /// The invitation as the API shows it once written.
    pub fn invitation(&self, customer: &CustomerRef) -> Invitation {
        Invitation {
            id: self.id.clone(),
            survey_id: self.survey_id.clone(),
            customer: customer.clone(),
            channel: self.channel,
            forced: self.forced,
            issued_at: self.created_at,
            expires_at: self.expires_at.unwrap_or(self.created_at),
            response_id: self.answered.as_ref().map(|(id, _)| id.clone()),
            dismissed_at: None,
        }
    }
}

/// A stored invitation or suppression with what only rapport keeps: its tenant (a
/// token names it), its customer's row, the decision it recorded and the fingerprint
/// of the request that issued it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationRecord {
    pub tenant: TenantId,
    pub id: InvitationId,
    pub survey_id: SurveyId,
    pub customer: CustomerRowId,
    pub channel: Channel,
    pub issued: bool,
    pub rule: Option<EligibilityRule>,
    pub next_eligible_at: Option<Timestamp>,
    pub forced: bool,
    pub token_hash: Option<String>,
    pub fingerprint: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub response_id: Option<ResponseId>,
    pub dismissed_at: Option<Timestamp>,
}

impl InvitationRecord {
    /// The invitation as the API shows it, with the customer's CRM id.
    pub fn invitation(&self, customer: &CustomerRef) -> Invitation {
        Invitation {
            id: self.id.clone(),
            survey_id: self.survey_id.clone(),
            customer: customer.clone(),
            channel: self.channel,
            forced: self.forced,
            issued_at: self.created_at,
            expires_at: self.expires_at.unwrap_or(self.created_at),
            response_id: self.response_id.clone(),
            dismissed_at: self.dismissed_at,
        }
    }

    /// The eligibility decision it recorded, as a retried `IssueSurvey` reports it:
    /// the deciding rule stands for every blocking one.
    pub fn eligibility(&self) -> Eligibility {
        Eligibility {
            eligible: self.issued,
            rule: self.rule,
            blocking: self.rule.map(|r| vec![(r, self.next_eligible_at)]).unwrap_or_default(),
            next_eligible_at: self.next_eligible_at,
            forced: self.forced,
        }
    }
}

/// A raw activity event to store: a checked event, resolved to its customer's row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    pub message_id: String,
    /// The customer's row (rapport's id).
    pub customer: CustomerRowId,
    pub occurred_at: Timestamp,
    pub kind: EventKind,
    /// What the event says, hashed (see `Event::payload_hash`).
    pub payload_hash: String,
}

/// A webhook delivery claimed for its next attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: String,
    pub tenant: TenantId,
    pub endpoint_id: String,
    /// Also the `webhook-id` header: the same across retries and replays.
    pub event_id: String,
    pub event_type: String,
    pub event_created_at: Timestamp,
    /// The event's data as it was appended.
    pub payload: serde_json::Value,
    /// The body the first attempt sent (retries send the same bytes); `None` before it.
    pub body: Option<String>,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    /// When the claim ends: the delivery is due again then unless its attempt is recorded.
    pub next_attempt_at: Timestamp,
}

/// A webhook endpoint with its signing secret, as a delivery attempt needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningEndpoint {
    pub endpoint: WebhookEndpoint,
    /// The secret as stored: sealed under the key `secret_key_id` (`None`: not sealed
    /// yet, which opens nowhere).
    pub secret: String,
    pub secret_key_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SurveyKind;
    use crate::domain::time::from_micros;

    fn state() -> FollowUpState {
        FollowUpState {
            status: FollowUpStatus::Open,
            priority: Priority::Normal,
            assignee: String::new(),
            resolution: String::new(),
            at_or_under_threshold: true,
            acknowledged_at: None,
            resolved_at: None,
            dismissed_at: None,
            reopened_at: None,
            updated_at: from_micros(1),
        }
    }

    #[test]
    fn an_action_changes_its_fields_and_returns_the_history_line() {
        let now = from_micros(2_000_000);
        let mut s = state();
        let entry = s.apply(FollowUpAction::Resolve { resolution: "called back".into() }, "ann".into(), now).unwrap();
        assert_eq!(
            (s.status, s.resolved_at, s.resolution.as_str()),
            (FollowUpStatus::Resolved, Some(now), "called back")
        );
        assert_eq!(s.updated_at, now);
        assert_eq!(entry.kind, EntryKind::StatusChange);
        assert_eq!((entry.from_status, entry.to_status), (Some(FollowUpStatus::Open), Some(FollowUpStatus::Resolved)));
        assert_eq!((entry.author.as_str(), entry.body.as_str(), entry.at), ("ann", "called back", now));

        let later = from_micros(3_000_000);
        let entry = s.apply(FollowUpAction::Reopen { reason: "not fixed".into() }, "bob".into(), later).unwrap();
        assert_eq!((s.status, s.reopened_at, s.resolution.as_str()), (FollowUpStatus::Open, Some(later), ""));
        assert_eq!(entry.body, "not fixed");
    }

    #[test]
    fn assignment_priority_and_notes_keep_the_status() {
        let now = from_micros(5);
        let mut s = state();
        let e = s.apply(FollowUpAction::Assign { assignee: "cy".into() }, "ann".into(), now).unwrap();
        assert_eq!((e.kind, e.body.as_str(), e.to_status), (EntryKind::Assignment, "cy", None));
        let e = s.apply(FollowUpAction::SetPriority { priority: Priority::Urgent }, "ann".into(), now).unwrap();
        assert_eq!((e.kind, e.body.as_str()), (EntryKind::Priority, "urgent"));
        let e = s.apply(FollowUpAction::AddNote { body: "left a message".into() }, "ann".into(), now).unwrap();
        assert_eq!((e.kind, e.body.as_str()), (EntryKind::Note, "left a message"));
        assert_eq!((s.status, s.assignee.as_str(), s.priority), (FollowUpStatus::Open, "cy", Priority::Urgent));
    }

    #[test]
    fn a_transition_the_status_does_not_allow_changes_nothing() {
        let mut s = FollowUpState { status: FollowUpStatus::Resolved, ..state() };
        let before = s.clone();
        assert!(s.apply(FollowUpAction::Acknowledge, "ann".into(), from_micros(9)).is_err());
        assert_eq!(s, before);
    }

    #[test]
    fn a_low_score_opens_a_follow_up_due_after_the_sla_with_its_first_line() {
        let scale = Scale::parse(SurveyKind::Nps, None).unwrap();
        let survey = Survey {
            id: SurveyId("s1".into()),
            scale,
            name: String::new(),
            question: String::new(),
            low_label: String::new(),
            high_label: String::new(),
            policy: Default::default(),
            follow_up: crate::domain::model::FollowUpRule { sla_hours: Some(2), ..Default::default() },
            in_app: false,
            branding: Default::default(),
            archived_at: None,
            created_at: from_micros(0),
            updated_at: from_micros(0),
        };
        let at = from_micros(10_000_000);
        let response = NewResponse {
            id: ResponseId("r1".into()),
            survey_id: survey.id.clone(),
            customer: CustomerRowId("c1".into()),
            invitation_id: None,
            scale,
            score: Score::parse(scale, Some(3)).unwrap(),
            comment: String::new(),
            properties: Properties::new(),
            idempotency_key: None,
            fingerprint: "f".into(),
            recorded_at: at,
        };
        let opened = NewFollowUp::opened_by(&survey, &response.id, &response.customer, response.score.value, at);
        assert_eq!(opened.due_at, at + chrono::Duration::hours(2));
        assert_eq!(opened.entry.body, "opened by a score of 3");
        let shown = opened.follow_up(response.response(CustomerRef("ada".into()), Some(opened.id.clone())));
        assert_eq!((shown.status, shown.priority, shown.updated_at), (FollowUpStatus::Open, Priority::Normal, at));
        assert_eq!(shown.response.follow_up_id, Some(opened.id.clone()));
        assert_eq!(shown.entries, vec![opened.entry.clone()]);
    }
}
