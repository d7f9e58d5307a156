//! Activity and the engagement score (docs/engagement.md): the tenant's scoring
//! configuration, the rules an incoming event must pass, calendar days in the
//! tenant's time zone, the decayed score and its percentile rank.
//!
//! Days are numbered as days since 1970-01-01 of the *local* calendar date in the
//! tenant's IANA time zone, so a day is whatever the tenant calls a day, DST or not.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::CustomerRef;
use super::input;
use super::model::Properties;
use super::time::Timestamp;
use crate::error::{AppError, FieldViolation, Result};

/// A calendar day in the tenant's zone: days since 1970-01-01 (local date).
pub type Day = i32;

/// Most events in one `RecordEvents` call.
pub const MAX_BATCH: usize = 1_000;
/// Events older than this many days are refused (late events up to it are kept).
pub const MAX_LATE_DAYS: i64 = 30;
/// Events further in the future than this are refused (clock skew allowance).
pub const MAX_FUTURE_HOURS: i64 = 24;
/// Longest `message_id`.
pub const MAX_MESSAGE_ID_CHARS: usize = 200;
/// Longest action name.
pub const MAX_ACTION_CHARS: usize = 100;
/// Longest single session (activity seconds).
pub const MAX_SESSION_SECONDS: i64 = 86_400;
/// Largest purchase, in minor units.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;
/// Most weighted actions in a scoring configuration.
pub const MAX_WEIGHTED_ACTIONS: usize = 200;

// ---------------------------------------------------------------------------------
// Calendar days in a time zone.
// ---------------------------------------------------------------------------------

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Parses an IANA zone name (`Europe/Berlin`, `UTC`).
pub fn parse_zone(name: &str, field: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|_| AppError::invalid(field, format!("{:?} is not an IANA time zone name", input::quote_prefix(name))))
}

/// The local calendar day of `t` in `tz`.
pub fn day_of(tz: Tz, t: Timestamp) -> Day {
    let local = tz.from_utc_datetime(&t.naive_utc()).date_naive();
    (local - epoch()).num_days() as Day
}

/// The date of a day number.
pub fn date_of(day: Day) -> NaiveDate {
    epoch() + chrono::Duration::days(day as i64)
}

/// The instant a local day starts in `tz` (the first instant of that date: after a
/// spring-forward gap at midnight, the end of the gap).
pub fn day_start(tz: Tz, day: Day) -> Timestamp {
    let date = date_of(day);
    let mut local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone may skip local midnight; step an hour at a time until the time exists.
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&chrono::Utc);
        }
        local += chrono::Duration::hours(1);
    }
    chrono::Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The month of a day, as months since January 1970 (`year * 12 + month0 - 1970 * 12`).
pub fn month_of(day: Day) -> i32 {
    let d = date_of(day);
    (d.year() - 1970) * 12 + d.month0() as i32
}

/// The first day of a month number.
pub fn month_start(month: i32) -> Day {
    let y = 1970 + month.div_euclid(12);
    let m = month.rem_euclid(12) as u32 + 1;
    let d = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default();
    (d - epoch()).num_days() as Day
}

/// `YYYY-MM` of a month number.
pub fn month_label(month: i32) -> String {
    format!("{:04}-{:02}", 1970 + month.div_euclid(12), month.rem_euclid(12) + 1)
}

// ---------------------------------------------------------------------------------
// Scoring configuration.
// ---------------------------------------------------------------------------------

/// Weights of the health components (docs/engagement.md, "Definitions"). A weight of 0 leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthWeights {
    pub engagement: f64,
    pub stickiness: f64,
    pub recency: f64,
    pub nps: f64,
    pub csat: f64,
    pub effort: f64,
    pub follow_ups: f64,
}

impl Default for HealthWeights {
    fn default() -> Self {
        HealthWeights {
            engagement: 2.0,
            stickiness: 1.0,
            recency: 1.0,
            nps: 2.0,
            csat: 1.0,
            effort: 1.0,
            follow_ups: 1.0,
        }
    }
}

/// Band edges of the health score (Gainsight's defaults: red 0–50, yellow 51–75,
/// green 76–100). A score at or under `red_max` is red, at or under `yellow_max`
/// yellow, above it green (scores are rounded to whole numbers first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bands {
    pub red_max: f64,
    pub yellow_max: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Bands { red_max: 50.0, yellow_max: 75.0 }
    }
}

/// Thresholds of the risk flags.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskThresholds {
    /// `inactive`: no activity for more than this many days (default 14).
    pub inactive_days: i32,
    /// `activity_down`: events in the last 30 days fell by more than this fraction
    /// against the 30 days before (default 0.5).
    pub activity_drop: f64,
}

impl Default for RiskThresholds {
    fn default() -> Self {
        RiskThresholds { inactive_days: 14, activity_drop: 0.5 }
    }
}

/// A tenant's engagement settings. Stored as JSON beside the tenant; the time zone is
/// the tenant's own `time_zone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoringConfig {
    /// Wᵢ of each action name; actions without a weight add nothing to the score.
    pub action_weights: BTreeMap<String, f64>,
    /// Half-life of an event's weight, in days.
    pub half_life_days: f64,
    /// Actions counted one by one in profiles; empty means the weighted actions.
    pub core_actions: Vec<String>,
    /// Profit margin, 0–1: historical value and CLV are revenue × margin.
    pub profit_margin: f64,
    pub health_weights: HealthWeights,
    /// Fewer components with data than this and the band is UNKNOWN.
    pub min_health_components: u32,
    pub bands: Bands,
    pub risk: RiskThresholds,
    /// A customer with no activity for this many days has churned.
    pub inactivity_days: i32,
    /// The currency purchases must be in (ISO 4217).
    pub currency: String,
    #[serde(skip)]
    pub time_zone: String,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            action_weights: BTreeMap::new(),
            half_life_days: 30.0,
            core_actions: Vec::new(),
            profit_margin: 1.0,
            health_weights: HealthWeights::default(),
            min_health_components: 3,
            bands: Bands::default(),
            risk: RiskThresholds::default(),
            inactivity_days: 30,
            currency: "USD".into(),
            time_zone: "UTC".into(),
        }
    }
}

fn violation(errors: &mut Vec<FieldViolation>, field: &str, description: String) {
    errors.push(FieldViolation { field: field.into(), description });
}

impl ScoringConfig {
    /// The zone, parsed (checked at update time, so a stored one always parses).
    pub fn tz(&self) -> Tz {
        self.time_zone.parse().unwrap_or(Tz::UTC)
    }

    /// The actions profiles count one by one.
    pub fn counted_actions(&self) -> Vec<String> {
        if self.core_actions.is_empty() {
            self.action_weights.keys().cloned().collect()
        } else {
            self.core_actions.clone()
        }
    }

    /// Wᵢ of an action (0 when it has none).
    pub fn weight(&self, action: &str) -> f64 {
        self.action_weights.get(action).copied().unwrap_or(0.0)
    }

    /// Checks every field; every violation is reported at once, prefixed `config.`.
    pub fn validate(self) -> Result<Self> {
        let mut e = Vec::new();
        if self.action_weights.len() > MAX_WEIGHTED_ACTIONS {
            violation(&mut e, "config.action_weights", format!("at most {MAX_WEIGHTED_ACTIONS} actions"));
        }
        for (name, w) in &self.action_weights {
            if let Err(AppError::InvalidArgument(v)) = action_name(name, "config.action_weights") {
                e.extend(v);
            }
            if !w.is_finite() || *w < 0.0 || *w > 1e6 {
                violation(&mut e, &format!("config.action_weights[{name}]"), format!("must be from 0 to 1e6; got {w}"));
            }
        }
        if !(self.half_life_days.is_finite() && (1.0..=3650.0).contains(&self.half_life_days)) {
            violation(
                &mut e,
                "config.half_life_days",
                format!("must be from 1 to 3650 days; got {}", self.half_life_days),
            );
        }
        if self.core_actions.len() > 50 {
            violation(&mut e, "config.core_actions", "at most 50 actions".into());
        }
        for a in &self.core_actions {
            if let Err(AppError::InvalidArgument(v)) = action_name(a, "config.core_actions") {
                e.extend(v);
            }
        }
        if !(self.profit_margin.is_finite() && (0.0..=1.0).contains(&self.profit_margin)) {
            violation(&mut e, "config.profit_margin", format!("must be from 0 to 1; got {}", self.profit_margin));
        }
        let w = self.health_weights;
        for (name, v) in [
            ("engagement", w.engagement),
            ("stickiness", w.stickiness),
            ("recency", w.recency),
            ("nps", w.nps),
            ("csat", w.csat),
            ("effort", w.effort),
            ("follow_ups", w.follow_ups),
        ] {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                violation(&mut e, &format!("config.health_weights.{name}"), format!("must be from 0 to 100; got {v}"));
            }
        }
        if !(1..=7).contains(&self.min_health_components) {
            violation(
                &mut e,
                "config.min_health_components",
                format!("must be from 1 to 7; got {}", self.min_health_components),
            );
        }
        let b = self.bands;
        if !(b.red_max.is_finite()
            && b.yellow_max.is_finite()
            && 0.0 <= b.red_max
            && b.red_max < b.yellow_max
            && b.yellow_max < 100.0)
        {
            violation(
                &mut e,
                "config.health_bands",
                format!("need 0 ≤ red_max < yellow_max < 100; got {} and {}", b.red_max, b.yellow_max),
            );
        }
        if !(1..=365).contains(&self.risk.inactive_days) {
            violation(
                &mut e,
                "config.risk.inactive_days",
                format!("must be from 1 to 365; got {}", self.risk.inactive_days),
            );
        }
        if !(self.risk.activity_drop.is_finite() && self.risk.activity_drop > 0.0 && self.risk.activity_drop < 1.0) {
            violation(
                &mut e,
                "config.risk.activity_drop",
                format!("must be between 0 and 1 (exclusive); got {}", self.risk.activity_drop),
            );
        }
        if !(1..=365).contains(&self.inactivity_days) {
            violation(&mut e, "config.inactivity_days", format!("must be from 1 to 365; got {}", self.inactivity_days));
        }
        if let Err(AppError::InvalidArgument(v)) = currency(&self.currency, "config.currency") {
            e.extend(v);
        }
        if let Err(AppError::InvalidArgument(v)) = parse_zone(&self.time_zone, "config.time_zone") {
            e.extend(v);
        }
        if e.is_empty() { Ok(self) } else { Err(AppError::InvalidArgument(e)) }
    }
}

/// An action name: 1–100 characters, no control characters.
pub fn action_name(raw: &str, field: &str) -> Result<String> {
    if raw.is_empty() {
        return Err(AppError::invalid(field, "action names must not be empty"));
    }
    if raw.chars().count() > MAX_ACTION_CHARS || raw.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!(
                "action {:?}: at most {MAX_ACTION_CHARS} characters, no control characters",
                input::quote_prefix(raw)
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// A currency code: three upper-case letters (ISO 4217).
pub fn currency(raw: &str, field: &str) -> Result<String> {
    if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err(AppError::invalid(
            field,
            format!("must be an ISO 4217 code such as USD; got {:?}", input::quote_prefix(raw)),
        ))
    }
}

// ---------------------------------------------------------------------------------
// Customers.
// ---------------------------------------------------------------------------------

/// Who a customer is, as the CRM says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traits {
    pub email: Option<String>,
    pub name: Option<String>,
    pub plan: Option<String>,
    pub signup_at: Option<Timestamp>,
}

/// A change to a customer: `None` keeps a field; `Some("")` clears a text field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerChange {
    pub account_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub plan: Option<String>,
    pub signup_at: Option<Timestamp>,
    pub properties: Properties,
}

impl CustomerChange {
    /// Checks the lengths: account id at most 128 characters, email 320, name and plan 200.
    pub fn validate(self) -> Result<Self> {
        let mut e = Vec::new();
        for (field, v, max) in [
            ("account_id", &self.account_id, 128),
            ("traits.email", &self.email, 320),
            ("traits.name", &self.name, 200),
            ("traits.plan", &self.plan, 200),
        ] {
            if let Some(v) = v
                && let Err(AppError::InvalidArgument(x)) = input::text(field, v, max, false)
            {
                e.extend(x);
            }
        }
        if e.is_empty() { Ok(self) } else { Err(AppError::InvalidArgument(e)) }
    }
}

/// A customer with its account, traits and first/last active days.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    pub customer: CustomerRef,
    pub account_id: Option<String>,
    pub traits: Traits,
    pub properties: Properties,
    pub unsubscribed: bool,
    pub erased: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub first_day: Option<Day>,
    pub last_day: Option<Day>,
}

// ---------------------------------------------------------------------------------
// Events.
// ---------------------------------------------------------------------------------

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A named core user action with optional properties.
    Action { name: String, properties: Properties },
    /// A visit and its activity time (idle time excluded by the client).
    Session { seconds: i64 },
    /// A purchase in minor units of the tenant's currency.
    Purchase { amount_minor: i64, currency: String },
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Action { .. } => "action",
            EventKind::Session { .. } => "session",
            EventKind::Purchase { .. } => "purchase",
        }
    }
}

/// An event as the caller sent it, before the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub message_id: String,
    pub customer_id: String,
    pub at: Option<Timestamp>,
    /// `None` when the caller named no kind (or one this server does not know).
    pub kind: Option<RawKind>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RawKind {
    Action { name: String, properties: std::collections::HashMap<String, String> },
    Session { seconds: i64 },
    Purchase { amount_minor: i64, currency: String },
}

/// An event that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub message_id: String,
    pub customer: CustomerRef,
    pub at: Timestamp,
    pub kind: EventKind,
}

impl Event {
    /// A short hash of what the event says, to tell a resend from a different event
    /// that reuses a `message_id`.
    pub fn payload_hash(&self) -> String {
        let (a, b, c) = match &self.kind {
            EventKind::Action { name, properties } => {
                (name.clone(), serde_json::to_string(properties).unwrap_or_default(), String::new())
            }
            EventKind::Session { seconds } => (seconds.to_string(), String::new(), String::new()),
            EventKind::Purchase { amount_minor, currency } => {
                (amount_minor.to_string(), currency.clone(), String::new())
            }
        };
        let at = self.at.timestamp_micros().to_string();
        let mut h = super::secrets::fingerprint(&[self.customer.as_str(), &at, self.kind.as_str(), &a, &b, &c]);
        h.truncate(32);
        h
    }
}

/// Why one event of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The field, relative to the event (`time`, `purchase.amount_minor`…).
    pub field: String,
    pub reason: String,
}

fn reject(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection { field: field.into(), reason: reason.into() }
}

fn first_violation(e: AppError, fallback: &str) -> Rejection {
    match e {
        AppError::InvalidArgument(v) if !v.is_empty() => reject(&v[0].field, v[0].description.clone()),
        other => reject(fallback, other.to_string()),
    }
}

/// Checks one event at `now` against the tenant's currency (docs/engagement.md).
pub fn check_event(raw: RawEvent, now: Timestamp, tenant_currency: &str) -> std::result::Result<Event, Rejection> {
    check_event_within(raw, now, tenant_currency, MAX_LATE_DAYS)
}

/// Events older than this many days are refused by an import (docs/imports.md).
pub const MAX_IMPORT_DAYS: i64 = 3_660;

/// [`check_event`] with the age limit given: [`MAX_LATE_DAYS`] for live traffic,
/// [`MAX_IMPORT_DAYS`] for an import.
pub fn check_event_within(
    raw: RawEvent,
    now: Timestamp,
    tenant_currency: &str,
    max_late_days: i64,
) -> std::result::Result<Event, Rejection> {
    if raw.message_id.is_empty() {
        return Err(reject("message_id", "is required"));
    }
    if raw.message_id.chars().count() > MAX_MESSAGE_ID_CHARS || raw.message_id.chars().any(char::is_control) {
        return Err(reject(
            "message_id",
            format!("must be at most {MAX_MESSAGE_ID_CHARS} characters, without control characters"),
        ));
    }
    let customer =
        CustomerRef::parse(&raw.customer_id, "customer_id").map_err(|e| first_violation(e, "customer_id"))?;
    let at = raw.at.ok_or_else(|| reject("time", "is required"))?;
    if at > now + chrono::Duration::hours(MAX_FUTURE_HOURS) {
        return Err(reject("time", format!("is more than {MAX_FUTURE_HOURS} hours in the future")));
    }
    if at < now - chrono::Duration::days(max_late_days) {
        let reason = if max_late_days == MAX_LATE_DAYS {
            format!(
                "is more than {MAX_LATE_DAYS} days in the past; late events are kept up to {MAX_LATE_DAYS} days \
                 (older history goes through ImportEvents)"
            )
        } else {
            format!("is more than {max_late_days} days in the past")
        };
        return Err(reject("time", reason));
    }
    let kind = match raw.kind {
        None => return Err(reject("kind", "name one kind: action, session or purchase")),
        Some(RawKind::Action { name, properties }) => EventKind::Action {
            name: action_name(&name, "action.name").map_err(|e| first_violation(e, "action.name"))?,
            properties: input::properties("action.properties", &properties)
                .map_err(|e| first_violation(e, "action.properties"))?,
        },
        Some(RawKind::Session { seconds }) => {
            if !(0..=MAX_SESSION_SECONDS).contains(&seconds) {
                return Err(reject(
                    "session.activity_seconds",
                    format!("must be from 0 to {MAX_SESSION_SECONDS}; got {seconds}"),
                ));
            }
            EventKind::Session { seconds }
        }
        Some(RawKind::Purchase { amount_minor, currency: cur }) => {
            if amount_minor <= 0 || amount_minor > MAX_AMOUNT_MINOR {
                return Err(reject(
                    "purchase.amount_minor",
                    format!("must be from 1 to {MAX_AMOUNT_MINOR} minor units; got {amount_minor}"),
                ));
            }
            let cur = currency(&cur, "purchase.currency").map_err(|e| first_violation(e, "purchase.currency"))?;
            if cur != tenant_currency {
                return Err(reject(
                    "purchase.currency",
                    format!("must be the tenant's currency {tenant_currency}; got {cur}"),
                ));
            }
            EventKind::Purchase { amount_minor, currency: cur }
        }
    };
    Ok(Event { message_id: raw.message_id, customer, at, kind })
}

// ---------------------------------------------------------------------------------
// The decayed engagement score.
// ---------------------------------------------------------------------------------

/// The decay factor of something `age_days` old: 2^(−age / half-life).
pub fn decay(age_days: f64, half_life_days: f64) -> f64 {
    (-(age_days) / half_life_days).exp2()
}

/// Σ Wᵢ·Nᵢ with each day's events decayed by their age at `as_of` (whole days
/// between the event's day and `as_of`'s day). Days after `as_of` are left out.
/// `weighted_days` holds (day, Σ Wᵢ·Nᵢ of that day).
pub fn decayed_score(weighted_days: &[(Day, f64)], as_of: Day, half_life_days: f64) -> f64 {
    weighted_days.iter().filter(|(d, _)| *d <= as_of).map(|(d, w)| w * decay((as_of - d) as f64, half_life_days)).sum()
}

/// The stored form of a customer's score: Σ Wᵢ·Nᵢ·2^((day − reference) / half-life).
/// Every score decays at the same rate, so this key orders customers exactly as their
/// scores do on any day (the ranking only changes when events arrive), and it is
/// additive: an event adds its own term. The score on day D is
/// `key · 2^(−(D − reference) / half-life)` ([`score_from_key`]).
pub fn key_term(weight: f64, day: Day, reference: Day, half_life_days: f64) -> f64 {
    weight * ((day - reference) as f64 / half_life_days).exp2()
}

/// The score on `as_of` of a stored key (see [`key_term`]).
pub fn score_from_key(key: f64, as_of: Day, reference: Day, half_life_days: f64) -> f64 {
    key * decay((as_of - reference) as f64, half_life_days)
}

/// Significant digits of a reported score. Sums of the same terms added in another
/// order (events that arrived in other batches) differ in the last bits of a double;
/// rounded to this many digits they are equal, so customers with the same activity
/// have the same score and rank as a tie.
pub const SCORE_DIGITS: usize = 12;

/// A score as reported and ranked: rounded to [`SCORE_DIGITS`] significant digits.
/// Monotone: a higher score never rounds below a lower one.
pub fn round_score(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    format!("{:.*e}", SCORE_DIGITS - 1, x).parse().unwrap_or(x)
}

/// How far past the reference day keys may grow before they are rebased (2^600 is
/// far from f64's limit of 2^1023).
pub const MAX_KEY_EXPONENT: f64 = 600.0;

/// A new reference day when `today` has moved too far past the current one.
pub fn rebase_needed(today: Day, reference: Day, half_life_days: f64) -> Option<Day> {
    ((today - reference) as f64 / half_life_days > MAX_KEY_EXPONENT / 2.0).then_some(today)
}

// ---------------------------------------------------------------------------------
// Percentile rank from a snapshot of the tenant's scores.
// ---------------------------------------------------------------------------------

/// Up to this many non-zero keys a snapshot keeps them all (exact ranks); above it,
/// [`SNAPSHOT_QUANTILES`] + 1 evenly spaced order statistics.
pub const SNAPSHOT_EXACT_LIMIT: usize = 5_000;
pub const SNAPSHOT_QUANTILES: usize = 1_000;

/// The distribution of a tenant's score keys at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ScoreSnapshot {
    /// Customers ranked (every customer of the tenant that is not erased).
    pub population: i64,
    /// Of those, customers whose score is zero (no weighted action).
    pub zeros: i64,
    /// Non-zero customers.
    pub positive: i64,
    /// Sorted keys: all of them when `exact`, else order statistics at ranks
    /// round(i · (positive − 1) / SNAPSHOT_QUANTILES).
    pub keys: Vec<f64>,
    pub exact: bool,
}

impl ScoreSnapshot {
    /// Builds a snapshot from every non-zero key (any order) and the population.
    pub fn build(mut positive_keys: Vec<f64>, population: i64) -> Self {
        positive_keys.retain(|k| *k > 0.0 && k.is_finite());
        positive_keys.sort_by(f64::total_cmp);
        let positive = positive_keys.len() as i64;
        let population = population.max(positive);
        let zeros = population - positive;
        if positive_keys.len() <= SNAPSHOT_EXACT_LIMIT {
            return ScoreSnapshot { population, zeros, positive, keys: positive_keys, exact: true };
        }
        let last = positive_keys.len() - 1;
        let keys = (0..=SNAPSHOT_QUANTILES)
            .map(|i| positive_keys[((i as f64) * last as f64 / SNAPSHOT_QUANTILES as f64).round() as usize])
            .collect();
        ScoreSnapshot { population, zeros, positive, keys, exact: false }
    }

    /// (customers with a lower key, customers with an equal key) for `key`, the
    /// customer itself included in the equal ones when it was in the snapshot.
    fn lower_equal(&self, key: f64) -> (f64, f64) {
        let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        if key <= 0.0 {
            return (0.0, self.zeros as f64);
        }
        let zeros = self.zeros as f64;
        if self.exact {
            let lower = self.keys.iter().filter(|k| **k < key && !same(**k, key)).count() as f64;
            let equal = self.keys.iter().filter(|k| same(**k, key)).count() as f64;
            return (zeros + lower, equal);
        }
        // Interpolate the rank between the two order statistics around `key`.
        let n = self.keys.len();
        let idx = self.keys.partition_point(|k| *k < key);
        let step = (self.positive - 1) as f64 / SNAPSHOT_QUANTILES as f64;
        let rank = if idx == 0 {
            0.0
        } else if idx >= n {
            self.positive as f64
        } else {
            let (lo, hi) = (self.keys[idx - 1], self.keys[idx]);
            let frac = if hi > lo { (key - lo) / (hi - lo) } else { 0.0 };
            ((idx - 1) as f64 + frac) * step
        };
        (zeros + rank.min(self.positive as f64), 0.0)
    }

    /// The percentile rank (0–100) of a customer with `key`: the share of the *other*
    /// customers with a lower score, counting ties as half (mid-rank). `None` when
    /// fewer than two customers are ranked.
    pub fn percentile(&self, key: f64, in_snapshot: bool) -> Option<f64> {
        let n = self.population + if in_snapshot { 0 } else { 1 };
        if n < 2 {
            return None;
        }
        let (lower, mut equal) = self.lower_equal(key);
        if in_snapshot {
            equal = (equal - 1.0).max(0.0);
        }
        Some((100.0 * (lower + equal / 2.0) / (n - 1) as f64).clamp(0.0, 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn days_follow_the_local_calendar_across_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-03-29: clocks go 02:00 → 03:00 (UTC+1 → UTC+2).
        let before = day_of(berlin, utc(2026, 3, 28, 22, 59)); // 23:59 local on the 28th
        let after = day_of(berlin, utc(2026, 3, 28, 23, 0)); // 00:00 local on the 29th
        assert_eq!(after - before, 1);
        assert_eq!(date_of(after), NaiveDate::from_ymd_opt(2026, 3, 29).unwrap());
        // The 29th is 23 hours long: 22:00 UTC on the 29th is already the 30th.
        assert_eq!(day_of(berlin, utc(2026, 3, 29, 21, 59)), after);
        assert_eq!(day_of(berlin, utc(2026, 3, 29, 22, 0)), after + 1);
        assert_eq!(day_start(berlin, after), utc(2026, 3, 28, 23, 0));
        assert_eq!(day_start(berlin, after + 1), utc(2026, 3, 29, 22, 0));
        assert_eq!(day_of(Tz::UTC, utc(1970, 1, 2, 0, 0)), 1);
    }

    #[test]
    fn months_number_from_1970() {
        let d = day_of(Tz::UTC, utc(2026, 11, 23, 0, 0));
        assert_eq!(month_label(month_of(d)), "2026-11");
        assert_eq!(date_of(month_start(month_of(d))), NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(month_of(month_start(month_of(d)) - 1), month_of(d) - 1);
    }

    #[test]
    fn a_weight_halves_every_half_life() {
        // One post (W = 2) 30 days ago and one (W = 2) today, half-life 30 days: 2/2 + 2.
        let s = decayed_score(&[(100, 2.0), (130, 2.0)], 130, 30.0);
        assert!((s - 3.0).abs() < 1e-12, "{s}");
        // Seen from day 160: 0.5 + 1.
        assert!((decayed_score(&[(100, 2.0), (130, 2.0)], 160, 30.0) - 1.5).abs() < 1e-12);
        // Days after as_of do not count.
        assert!((decayed_score(&[(100, 2.0), (130, 2.0)], 110, 10.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn keys_rank_like_scores_and_give_the_score_back() {
        let (r, h) = (100, 7.0);
        let a = key_term(1.0, 120, r, h) + key_term(3.0, 90, r, h);
        let score = score_from_key(a, 130, r, h);
        let direct = decayed_score(&[(120, 1.0), (90, 3.0)], 130, h);
        assert!((score - direct).abs() < 1e-9 * direct, "{score} vs {direct}");
        assert_eq!(rebase_needed(100 + 2200, 100, 7.0), Some(2300));
        assert_eq!(rebase_needed(130, 100, 7.0), None);
    }

    #[test]
    fn exact_percentiles_are_mid_ranks_among_the_others() {
        // Four customers: one zero, keys 1, 2, 2.
        let s = ScoreSnapshot::build(vec![2.0, 1.0, 2.0], 4);
        assert!(s.exact);
        assert_eq!(s.zeros, 1);
        assert_eq!(s.percentile(0.0, true), Some(0.0));
        // Key 1: one lower (the zero) of three others.
        assert!((s.percentile(1.0, true).unwrap() - 100.0 / 3.0).abs() < 1e-9);
        // Key 2: two lower, one tie (half) of three others = 2.5 / 3.
        assert!((s.percentile(2.0, true).unwrap() - 250.0 / 3.0).abs() < 1e-9);
        // A customer not in the snapshot with key 3: all four lower.
        assert_eq!(s.percentile(3.0, false), Some(100.0));
        assert_eq!(ScoreSnapshot::build(vec![], 1).percentile(0.0, true), None);
    }

    #[test]
    fn scores_summed_in_another_order_round_to_the_same_value() {
        let terms: Vec<f64> = [3, 17, 29, 41].iter().map(|d| key_term(2.0, *d, 0, 30.0)).collect();
        let forward = terms.iter().fold(0.0, |a, t| a + t);
        let backward = terms.iter().rev().fold(0.0, |a, t| a + t);
        let batched = (terms[0] + terms[1]) + (terms[2] + terms[3]);
        assert_eq!(round_score(forward), round_score(backward));
        assert_eq!(round_score(forward), round_score(batched));
        assert!((round_score(forward) - forward).abs() <= 1e-11 * forward);
        assert_eq!((round_score(0.0), round_score(1.0)), (0.0, 1.0));
        // Monotone.
        let xs: Vec<f64> = (1..2000).map(|i| 0.1 + i as f64 * 1e-13).collect();
        assert!(xs.windows(2).all(|w| round_score(w[0]) <= round_score(w[1])));
    }

    #[test]
    fn large_snapshots_keep_quantiles_and_interpolate() {
        let keys: Vec<f64> = (1..=100_001).map(f64::from).collect();
        let s = ScoreSnapshot::build(keys, 100_001);
        assert!(!s.exact);
        assert_eq!(s.keys.len(), SNAPSHOT_QUANTILES + 1);
        // Key 50 001 has 50 000 lower of 100 000 others: 50 %.
        let p = s.percentile(50_001.0, true).unwrap();
        assert!((p - 50.0).abs() < 0.01, "{p}");
        let p = s.percentile(1_000.5, false).unwrap();
        assert!((p - 1.0).abs() < 0.01, "{p}");
    }

    #[test]
    fn events_are_checked_item_by_item() {
        let now = utc(2026, 6, 1, 12, 0);
        let base = RawEvent {
            message_id: "m1".into(),
            customer_id: "c1".into(),
            at: Some(now),
            kind: Some(RawKind::Session { seconds: 60 }),
        };
        assert!(check_event(base.clone(), now, "EUR").is_ok());
        let future = RawEvent { at: Some(now + chrono::Duration::hours(25)), ..base.clone() };
        assert_eq!(check_event(future, now, "EUR").unwrap_err().field, "time");
        let near_future = RawEvent { at: Some(now + chrono::Duration::hours(23)), ..base.clone() };
        assert!(check_event(near_future, now, "EUR").is_ok());
        let old = RawEvent { at: Some(now - chrono::Duration::days(31)), ..base.clone() };
        assert_eq!(check_event(old, now, "EUR").unwrap_err().field, "time");
        let no_kind = RawEvent { kind: None, ..base.clone() };
        assert_eq!(check_event(no_kind, now, "EUR").unwrap_err().field, "kind");
        let bad_amount =
            RawEvent { kind: Some(RawKind::Purchase { amount_minor: 0, currency: "EUR".into() }), ..base.clone() };
        assert_eq!(check_event(bad_amount, now, "EUR").unwrap_err().field, "purchase.amount_minor");
        let other_currency =
            RawEvent { kind: Some(RawKind::Purchase { amount_minor: 5, currency: "USD".into() }), ..base.clone() };
        assert_eq!(check_event(other_currency, now, "EUR").unwrap_err().field, "purchase.currency");
        let no_id = RawEvent { message_id: String::new(), ..base.clone() };
        assert_eq!(check_event(no_id, now, "EUR").unwrap_err().field, "message_id");
        let long_session = RawEvent { kind: Some(RawKind::Session { seconds: 86_401 }), ..base };
        assert_eq!(check_event(long_session, now, "EUR").unwrap_err().field, "session.activity_seconds");
    }

    #[test]
    fn a_payload_hash_tells_a_resend_from_a_different_event() {
        let now = utc(2026, 6, 1, 12, 0);
        let e = |seconds| Event {
            message_id: "m".into(),
            customer: CustomerRef("c".into()),
            at: now,
            kind: EventKind::Session { seconds },
        };
        assert_eq!(e(5).payload_hash(), e(5).payload_hash());
        assert_ne!(e(5).payload_hash(), e(6).payload_hash());
    }

    #[test]
    fn configs_report_every_bad_field() {
        let mut c = ScoringConfig { half_life_days: 0.0, profit_margin: 2.0, ..ScoringConfig::default() };
        c.action_weights.insert("post".into(), -1.0);
        c.time_zone = "Mars/Olympus".into();
        match c.validate() {
            Err(AppError::InvalidArgument(v)) => {
                let fields: Vec<_> = v.iter().map(|f| f.field.as_str()).collect();
                for f in
                    ["config.half_life_days", "config.profit_margin", "config.action_weights[post]", "config.time_zone"]
                {
                    assert!(fields.contains(&f), "{f} in {fields:?}");
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(ScoringConfig::default().validate().is_ok());
    }
}
