//! The records the use-cases hand back to the transports: plain data, no I/O types.

use std::collections::BTreeMap;

use super::eligibility::{Eligibility, EligibilityRule, PolicyOverrides};
use super::follow_up::{FollowUpStatus, Priority};
use super::ids::*;
use super::stats::Summary;
use super::survey::{Bucket, Scale};
use super::time::Timestamp;

/// Free-form string properties.
pub type Properties = BTreeMap<String, String>;

/// When a low score opens a follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FollowUpRule {
    pub threshold: Option<i32>,
    pub customer_condition: Properties,
    pub sla_hours: Option<i32>,
    pub disabled: bool,
}

impl FollowUpRule {
    /// Default SLA: 48 hours from opening.
    pub const DEFAULT_SLA_HOURS: i32 = 48;

    /// Whether a score on `scale` from a customer with `props` opens a follow-up.
    pub fn opens(&self, scale: Scale, score: i32, props: &Properties) -> bool {
        !self.disabled && self.at_or_under(scale, score) && super::input::matches(&self.customer_condition, props)
    }

    /// Whether `score` is at or under the threshold (the survey's, else the default).
    pub fn at_or_under(&self, scale: Scale, score: i32) -> bool {
        score <= self.threshold.unwrap_or_else(|| scale.default_follow_up_threshold())
    }

    pub fn sla(&self) -> chrono::Duration {
        chrono::Duration::hours(self.sla_hours.unwrap_or(Self::DEFAULT_SLA_HOURS) as i64)
    }
}

/// A survey as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    pub id: SurveyId,
    pub scale: Scale,
    pub name: String,
    pub question: String,
    pub low_label: String,
    pub high_label: String,
    pub policy: PolicyOverrides,
    pub follow_up: FollowUpRule,
    pub in_app: bool,
    /// The look and language of its hosted page and widget; empty fields take the
    /// tenant's defaults.
    pub branding: Branding,
    pub archived_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How the hosted page and the widget present a survey: a name, an accent colour, a
/// logo and the language of their fixed texts. Each field is optional (empty); a
/// survey's empty field takes the tenant's default, and an empty default the built-in
/// look (no name, the standard blue, no logo, the browser's language).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Branding {
    /// Shown above the question, e.g. "Acme" (at most 100 characters).
    pub display_name: String,
    /// `#rrggbb`, stored in lower case.
    pub accent_color: String,
    /// An `https://` URL of an image (at most 500 characters), shown above the question.
    pub logo_url: String,
    /// A BCP 47 language tag such as `de` or `pt-BR` (at most 35 characters).
    pub language: String,
}

impl Branding {
    pub const DISPLAY_NAME_MAX: usize = 100;
    pub const LOGO_URL_MAX: usize = 500;
    pub const LANGUAGE_MAX: usize = 35;

    /// Each field checked (and normalised); errors name `{prefix}{field}`, all at once.
    /// `language_field` is where the language came from (it is not inside `branding`
    /// in the API).
    pub fn validate(self, prefix: &str, language_field: &str) -> crate::error::Result<Branding> {
        use crate::error::{AppError, FieldViolation};
        let mut errors = Vec::new();
        let mut push = |field: String, description: String| errors.push(FieldViolation { field, description });
        let display_name = match super::input::text(
            &format!("{prefix}display_name"),
            self.display_name.trim(),
            Self::DISPLAY_NAME_MAX,
            false,
        ) {
            Ok(v) => v,
            Err(AppError::InvalidArgument(v)) => {
                v.into_iter().for_each(|f| push(f.field, f.description));
                String::new()
            }
            Err(e) => return Err(e),
        };
        let accent_color = self.accent_color.trim().to_ascii_lowercase();
        if !accent_color.is_empty() && !is_hex_color(&accent_color) {
            push(
                format!("{prefix}accent_color"),
                format!("must be a colour as #rrggbb; got {:?}", super::input::quote_prefix(&accent_color)),
            );
        }
        let logo_url = match logo_url(self.logo_url.trim()) {
            Ok(v) => v,
            Err(why) => {
                push(format!("{prefix}logo_url"), why);
                String::new()
            }
        };
        let language = self.language.trim().to_owned();
        if !language.is_empty() && !is_language_tag(&language) {
            push(
                language_field.to_owned(),
                format!(
                    "must be a BCP 47 language tag such as \"de\" or \"pt-BR\" (at most {} characters); got {:?}",
                    Self::LANGUAGE_MAX,
                    super::input::quote_prefix(&language)
                ),
            );
        }
        if !errors.is_empty() {
            return Err(AppError::InvalidArgument(errors));
        }
        Ok(Branding { display_name, accent_color, logo_url, language })
    }

    /// This branding with each empty field taken from `default`.
    pub fn or(&self, default: &Branding) -> Branding {
        let pick = |a: &String, b: &String| if a.is_empty() { b.clone() } else { a.clone() };
        Branding {
            display_name: pick(&self.display_name, &default.display_name),
            accent_color: pick(&self.accent_color, &default.accent_color),
            logo_url: pick(&self.logo_url, &default.logo_url),
            language: pick(&self.language, &default.language),
        }
    }

    /// The `https://host[:port]` origin of the logo, for a Content-Security-Policy.
    pub fn logo_origin(&self) -> Option<String> {
        let u = url::Url::parse(&self.logo_url).ok()?;
        (u.scheme() == "https" && u.host().is_some()).then(|| u.origin().ascii_serialization())
    }
}

fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `xx`, `xxx` or either with subtags: ASCII letters first, then `-` and 1–8 letters or digits.
pub fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    s.len() <= Branding::LANGUAGE_MAX
        && (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// An absolute `https://` URL with a host and no user name or password; normalised.
fn logo_url(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Ok(String::new());
    }
    let n = raw.chars().count();
    if n > Branding::LOGO_URL_MAX {
        return Err(format!("must be at most {} characters; got {n}", Branding::LOGO_URL_MAX));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    let u = url::Url::parse(raw)
        .map_err(|e| format!("must be an absolute https:// URL ({e}); got {:?}", super::input::quote_prefix(raw)))?;
    if u.scheme() != "https" {
        return Err(format!("must be an https:// URL; got {:?}", super::input::quote_prefix(raw)));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    let out = u.to_string();
    if out.len() > Branding::LOGO_URL_MAX {
        return Err(format!("must be at most {} characters once encoded", Branding::LOGO_URL_MAX));
    }
    Ok(out)
}

/// How an invitation reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Link,
    InApp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Link => "link",
            Channel::InApp => "in_app",
        }
    }
    pub fn from_db(s: &str) -> Self {
        match s {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "in_app" => Channel::InApp,
            _ => Channel::Link,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Answered,
    Expired,
    /// Closed without an answer; an answer afterwards makes it `Answered`.
    Dismissed,
}

/// An issued invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: InvitationId,
    pub survey_id: SurveyId,
    pub customer: CustomerRef,
    pub channel: Channel,
    pub forced: bool,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub response_id: Option<ResponseId>,
    /// When the customer closed the form without answering.
    pub dismissed_at: Option<Timestamp>,
}

impl Invitation {
    pub fn status(&self, now: Timestamp) -> InvitationStatus {
        if self.response_id.is_some() {
            InvitationStatus::Answered
        } else if self.dismissed_at.is_some() {
            InvitationStatus::Dismissed
        } else if now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }
}

/// What `IssueSurvey` did.
#[derive(Debug, Clone, PartialEq)]
pub enum IssueOutcome {
    Issued { invitation: Invitation, token: String, eligibility: Eligibility },
    Suppressed { suppression_id: InvitationId, eligibility: Eligibility },
}

/// A recorded response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: ResponseId,
    pub survey_id: SurveyId,
    pub customer: CustomerRef,
    pub invitation_id: Option<InvitationId>,
    pub scale: Scale,
    pub score: i32,
    pub bucket: Bucket,
    pub comment: String,
    pub properties: Properties,
    pub recorded_at: Timestamp,
    pub updated_at: Timestamp,
    pub follow_up_id: Option<FollowUpId>,
}

/// One line of a follow-up's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpEntry {
    pub kind: EntryKind,
    pub at: Timestamp,
    pub author: String,
    pub body: String,
    pub from_status: Option<FollowUpStatus>,
    pub to_status: Option<FollowUpStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Note,
    StatusChange,
    Assignment,
    Priority,
    System,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Note => "note",
            EntryKind::StatusChange => "status",
            EntryKind::Assignment => "assignment",
            EntryKind::Priority => "priority",
            EntryKind::System => "system",
        }
    }
    pub fn from_db(s: &str) -> Self {
        match s {
            "note" => EntryKind::Note,
            "status" => EntryKind::StatusChange,
            "assignment" => EntryKind::Assignment,
            "priority" => EntryKind::Priority,
            _ => EntryKind::System,
        }
    }
}

/// A follow-up with the answer it is about, as that answer is now.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUp {
    pub id: FollowUpId,
    pub response: Response,
    pub status: FollowUpStatus,
    pub priority: Priority,
    pub assignee: String,
    pub due_at: Timestamp,
    pub overdue_at: Option<Timestamp>,
    pub resolution: String,
    pub at_or_under_threshold: bool,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub dismissed_at: Option<Timestamp>,
    pub reopened_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub entries: Vec<FollowUpEntry>,
}

/// The invitation funnel of a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Funnel {
    pub issued: i64,
    pub suppressed_by_rule: BTreeMap<EligibilityRule, i64>,
    pub expired: i64,
    pub answered: i64,
    pub pending: i64,
}

impl Funnel {
    pub fn suppressed(&self) -> i64 {
        self.suppressed_by_rule.values().sum()
    }
    /// answered / issued, or `None` when nothing was issued.
    pub fn response_rate(&self) -> Option<f64> {
        (self.issued > 0).then(|| self.answered as f64 / self.issued as f64)
    }
}

/// Everything `GetSurveyMetrics` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyMetrics {
    pub scale: Scale,
    pub summary: Summary,
    pub series: Vec<(Timestamp, Timestamp, Summary)>,
    /// Per point of `series`: the change from the previous point and the control
    /// limits (domain::insight::series).
    pub series_flags: Vec<crate::domain::insight::series::PointFlags>,
    pub funnel: Funnel,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A page of results and the token for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// What kind of credential a caller holds (docs/api.md, "Keys and tenants").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `rk_secret_…`: full access to the tenant.
    Secret,
    /// `rk_pub_…`: in-app answering only.
    Publishable,
    /// `rk_read_…`: reads only (the Get and List methods), e.g. for a wall display of
    /// the console; every write is PERMISSION_DENIED.
    Read,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Publishable => "publishable",
            KeyKind::Read => "read",
        }
    }
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Secret => "rk_secret_",
            KeyKind::Publishable => "rk_pub_",
            KeyKind::Read => "rk_read_",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_id: KeyId,
    pub kind: KeyKind,
}

/// A key as shown once at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    pub id: KeyId,
    pub tenant: TenantId,
    pub kind: KeyKind,
    /// The plaintext. Only its hash is stored.
    pub secret: String,
}

/// A new survey, checked field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct SurveyDraft {
    pub scale: Scale,
    pub name: String,
    pub question: String,
    pub low_label: String,
    pub high_label: String,
    pub policy: PolicyOverrides,
    pub follow_up: FollowUpRule,
    pub in_app: bool,
    pub branding: Branding,
}

/// The fields an `UpdateSurvey` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SurveyPatch {
    pub name: Option<String>,
    pub question: Option<String>,
    pub low_label: Option<String>,
    pub high_label: Option<String>,
    pub in_app: Option<bool>,
    pub days_after_invitation_this_survey: Option<Option<i32>>,
    pub days_after_invitation_any_survey: Option<Option<i32>>,
    pub days_after_response_this_survey: Option<Option<i32>>,
    pub days_after_response_any_survey: Option<Option<i32>>,
    pub invitation_expiry_days: Option<Option<i32>>,
    pub follow_up_threshold: Option<Option<i32>>,
    pub follow_up_condition: Option<Properties>,
    pub follow_up_sla_hours: Option<Option<i32>>,
    pub follow_up_disabled: Option<bool>,
    pub display_name: Option<String>,
    pub accent_color: Option<String>,
    pub logo_url: Option<String>,
    pub language: Option<String>,
}

impl SurveyPatch {
    /// `survey` with the patch applied, checked again as a whole.
    pub fn apply(self, mut s: Survey) -> crate::error::Result<Survey> {
        fn set<T>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut s.name, self.name);
        set(&mut s.question, self.question);
        set(&mut s.low_label, self.low_label);
        set(&mut s.high_label, self.high_label);
        set(&mut s.in_app, self.in_app);
        set(&mut s.policy.days_after_invitation_this_survey, self.days_after_invitation_this_survey);
        set(&mut s.policy.days_after_invitation_any_survey, self.days_after_invitation_any_survey);
        set(&mut s.policy.days_after_response_this_survey, self.days_after_response_this_survey);
        set(&mut s.policy.days_after_response_any_survey, self.days_after_response_any_survey);
        set(&mut s.policy.invitation_expiry_days, self.invitation_expiry_days);
        set(&mut s.follow_up.threshold, self.follow_up_threshold);
        set(&mut s.follow_up.customer_condition, self.follow_up_condition);
        set(&mut s.follow_up.sla_hours, self.follow_up_sla_hours);
        set(&mut s.follow_up.disabled, self.follow_up_disabled);
        set(&mut s.branding.display_name, self.display_name);
        set(&mut s.branding.accent_color, self.accent_color);
        set(&mut s.branding.logo_url, self.logo_url);
        set(&mut s.branding.language, self.language);
        s.branding = s.branding.validate("survey.branding.", "survey.language")?;
        s.policy = s.policy.validate()?;
        s.follow_up.validate(s.scale)?;
        Ok(s)
    }
}

impl FollowUpRule {
    /// Checks the threshold against the scale and the SLA (1 hour to 365 days).
    pub fn validate(&self, scale: Scale) -> crate::error::Result<()> {
        scale.parse_threshold(self.threshold)?;
        if let Some(h) = self.sla_hours
            && !(1..=8760).contains(&h)
        {
            return Err(crate::error::AppError::invalid(
                "follow_up.sla_hours",
                format!("must be from 1 to 8760 hours; got {h}"),
            ));
        }
        Ok(())
    }
}

/// A tenant's webhook endpoint. The signing secret is shown only at creation and
/// rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Event types delivered; empty: all.
    pub event_types: Vec<String>,
    /// Surveys whose events are delivered; empty: all.
    pub survey_ids: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The state of one event's delivery to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Succeeded,
    /// The receiver refused it (a 4xx other than 408 and 429).
    Failed,
    /// Every attempt failed; kept for replay.
    DeadLettered,
    /// The endpoint was deleted before it was delivered.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::DeadLettered => "dead",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
    pub fn from_db(s: &str) -> Self {
        match s {
            "succeeded" => DeliveryStatus::Succeeded,
            "failed" => DeliveryStatus::Failed,
            "dead" => DeliveryStatus::DeadLettered,
            "cancelled" => DeliveryStatus::Cancelled,
            _ => DeliveryStatus::Pending,
        }
    }
}

/// One attempt of a delivery, or a notice in its log (no status code, an error text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    pub at: Timestamp,
    pub status_code: Option<i32>,
    pub error: String,
    pub duration_ms: i64,
}

/// One event's delivery to one endpoint, with every attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    /// Also the `webhook-id` header: the same across retries and replays.
    pub event_id: String,
    pub event_sequence: i64,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
    pub attempts: Vec<DeliveryAttempt>,
    pub created_at: Timestamp,
}
