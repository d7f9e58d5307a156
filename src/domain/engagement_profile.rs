//! The engagement profile of one customer (docs/engagement.md): voice, activity, engagement
//! score, value and health, for windows of 7, 30 and 90 days. Pure functions over
//! the customer's daily roll-ups and survey history; storage only fetches and sums.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::engagement::{Day, ScoringConfig, day_of, day_start, decayed_score, round_score};
use super::survey::{Bucket, SurveyKind};
use super::time::Timestamp;

/// The profile's windows, in days.
pub const WINDOWS: [i32; 3] = [7, 30, 90];
/// Most NPS answers in the history.
pub const NPS_HISTORY_LIMIT: usize = 50;
/// Expected lifetime cap, in months (docs/engagement.md, "Definitions").
pub const MAX_LIFETIME_MONTHS: f64 = 60.0;
/// Days per month in value formulas.
pub const DAYS_PER_MONTH: f64 = 30.0;

/// One day of one customer's activity, as rolled up on ingestion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DayActivity {
    pub day: Day,
    pub events: i64,
    pub actions: i64,
    pub sessions: i64,
    pub session_seconds: i64,
    pub purchases: i64,
    pub revenue_minor: i64,
    /// Count per action name that day.
    pub action_counts: BTreeMap<String, i64>,
}

/// One survey answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub kind: SurveyKind,
    pub score: i32,
    pub scale_max: i32,
    pub bucket: Bucket,
    pub at: Timestamp,
}

impl Answer {
    /// The score on 0–100: NPS × 10; CSAT and CES (score − 1) / (max − 1) × 100.
    pub fn percent(&self) -> f64 {
        match self.kind {
            SurveyKind::Nps => self.score as f64 * 10.0,
            SurveyKind::Csat | SurveyKind::Ces => 100.0 * (self.score - 1) as f64 / (self.scale_max - 1).max(1) as f64,
        }
    }
}

/// One follow-up's timeline, as far as the profile cares.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpTimes {
    pub opened_at: Timestamp,
    pub due_at: Timestamp,
    /// When it was resolved or dismissed, if it is closed now.
    pub closed_at: Option<Timestamp>,
}

impl FollowUpTimes {
    pub fn open_at(&self, t: Timestamp) -> bool {
        self.opened_at <= t && self.closed_at.is_none_or(|c| c > t)
    }
    pub fn overdue_at(&self, t: Timestamp) -> bool {
        self.open_at(t) && self.due_at <= t
    }
}

/// Everything the profile is computed from.
#[derive(Debug, Clone)]
pub struct ProfileInput {
    pub config: ScoringConfig,
    pub as_of: Timestamp,
    /// Every active day of the customer (any order; days after `as_of` are ignored).
    pub days: Vec<DayActivity>,
    /// Every answer of the customer (any order).
    pub answers: Vec<Answer>,
    pub follow_ups: Vec<FollowUpTimes>,
    /// Issue times of the customer's invitations, with whether each was answered.
    pub invitations: Vec<(Timestamp, bool)>,
    /// When the customer may next be surveyed (any survey, tenant defaults); `None`
    /// when eligible now or blocked without end.
    pub next_eligible: Option<Timestamp>,
    pub eligible_now: bool,
    /// The customer's engagement percentile now and 30 days before (from the tenant's
    /// score snapshots), when known.
    pub percentile: Option<f64>,
    pub percentile_30_days_before: Option<f64>,
    /// The tenant's churn rate over the last 30 days (for the expected lifetime).
    pub monthly_churn_rate: Option<f64>,
}

/// Lifecycle state over a window, as PostHog defines it, with the window as period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// First seen in this period.
    New,
    /// Active in this period and the one before.
    Returning,
    /// Active in this period, not in the one before, but earlier.
    Resurrecting,
    /// Not active in this period, active in the one before.
    Dormant,
    /// Not active in this period nor the one before (PostHog leaves them out).
    Inactive,
    /// Never active.
    NeverActive,
}

/// Activity over one window [start, end] of days.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActivityWindow {
    pub days: i32,
    pub start: Day,
    pub end: Day,
    pub active_days: i64,
    /// active_days / days.
    pub stickiness: f64,
    pub events: i64,
    pub actions: i64,
    pub sessions: i64,
    pub session_seconds: i64,
    /// session_seconds / sessions.
    pub mean_session_seconds: Option<f64>,
    /// sessions / (days / 7).
    pub visits_per_week: f64,
    /// Count of each counted (core) action.
    pub core_actions: BTreeMap<String, i64>,
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirstWeek {
    pub start: Day,
    pub end: Day,
    pub actions: i64,
    pub active_days: i64,
    pub sessions: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Activity {
    pub first_seen: Option<Day>,
    pub last_seen: Option<Day>,
    /// Days from the last active day to the as-of day.
    pub recency_days: Option<i64>,
    pub windows: Vec<ActivityWindow>,
    pub first_week: Option<FirstWeek>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngagementScore {
    /// Σ Wᵢ·Nᵢ, each day's events decayed by 2^(−age / half-life), to
    /// [`SCORE_DIGITS`](super::engagement::SCORE_DIGITS) significant digits.
    pub score: f64,
    pub percentile: Option<f64>,
    pub half_life_days: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValueWindow {
    pub days: i32,
    pub start: Day,
    pub end: Day,
    pub revenue_minor: i64,
    pub purchases: i64,
    pub mean_order_minor: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Value {
    pub currency: String,
    pub windows: Vec<ValueWindow>,
    pub lifetime_revenue_minor: i64,
    pub lifetime_purchases: i64,
    pub mean_order_minor: Option<f64>,
    /// Lifetime revenue × margin.
    pub historical_value_minor: f64,
    /// Lifetime purchases / months since first seen (at least one month).
    pub purchases_per_month: f64,
    /// 1 / the tenant's monthly churn rate, at most 60.
    pub expected_lifetime_months: f64,
    /// mean order × purchases per month × expected lifetime × margin; 0 without purchases.
    pub predicted_clv_minor: f64,
    pub profit_margin: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct VoiceWindow {
    pub days: i32,
    pub start: Timestamp,
    pub end: Timestamp,
    pub nps_answers: i64,
    pub csat_answers: i64,
    /// Mean CSAT on the surveys' own scale, when they share one.
    pub csat_mean: Option<f64>,
    /// Mean CSAT on 0–100 ((score − 1) / (max − 1)).
    pub csat_mean_percent: Option<f64>,
    pub ces_answers: i64,
    pub ces_mean: Option<f64>,
    pub ces_mean_percent: Option<f64>,
    pub invitations: i64,
    pub answered_invitations: i64,
    /// answered / issued for invitations issued in the window.
    pub response_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Voice {
    pub latest_nps: Option<Answer>,
    /// NPS answers, newest first.
    pub nps_history: Vec<Answer>,
    pub windows: Vec<VoiceWindow>,
    pub open_follow_ups: i64,
    pub overdue_follow_ups: i64,
    pub eligible_now: bool,
    pub next_eligible: Option<Timestamp>,
}

/// The health components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Engagement,
    Stickiness,
    Recency,
    Nps,
    Csat,
    Effort,
    FollowUps,
}

/// One component's part of a health score (a customer's [`Component`], or an
/// account's in `insight::account`).
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentScore<C = Component> {
    pub component: C,
    pub weight: f64,
    /// 0–100, or `None` without data.
    pub value: Option<f64>,
    /// weight × value / Σ weights of the components with data.
    pub contribution: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Red,
    Yellow,
    Green,
    /// Too few components have data.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskFlag {
    /// No activity for more than the risk threshold (14 days by default).
    Inactive,
    /// Events in the last 30 days fell by more than the threshold against the 30 before.
    ActivityDown,
    /// The latest NPS answer is a detractor's.
    Detractor,
    /// An open follow-up is past its due time.
    OverdueFollowUp,
    /// Active in the last 30 days but never answered a survey.
    Silent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub score: Option<f64>,
    pub band: Band,
    pub components: Vec<ComponentScore>,
    pub components_with_data: u32,
    /// Fewer components with data than this and the band is UNKNOWN.
    pub min_components: u32,
    pub score_30_days_before: Option<f64>,
    /// score − score 30 days before.
    pub change: Option<f64>,
    pub risks: Vec<RiskFlag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub as_of: Timestamp,
    pub as_of_day: Day,
    pub time_zone: String,
    pub voice: Voice,
    pub activity: Activity,
    pub engagement: EngagementScore,
    pub value: Value,
    pub health: Health,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Computes the whole profile.
pub fn profile(input: &ProfileInput) -> Profile {
    let tz = input.config.tz();
    let today = day_of(tz, input.as_of);
    let mut days: Vec<&DayActivity> = input.days.iter().filter(|d| d.day <= today && d.events > 0).collect();
    days.sort_by_key(|d| d.day);
    let activity = activity(&input.config, &days, today);
    let engagement = EngagementScore {
        score: round_score(score_on(&input.config, &days, today)),
        percentile: input.percentile,
        half_life_days: input.config.half_life_days,
    };
    let value = value(input, &days, today, activity.first_seen);
    let voice = voice(input, tz, today);
    let health = health(input, &days, today);
    Profile {
        as_of: input.as_of,
        as_of_day: today,
        time_zone: input.config.time_zone.clone(),
        voice,
        activity,
        engagement,
        value,
        health,
    }
}

/// The decayed score on `day` from the days up to it.
fn score_on(config: &ScoringConfig, days: &[&DayActivity], day: Day) -> f64 {
    let weighted: Vec<(Day, f64)> =
        days.iter().map(|d| (d.day, d.action_counts.iter().map(|(a, n)| config.weight(a) * *n as f64).sum())).collect();
    decayed_score(&weighted, day, config.half_life_days)
}

fn in_range<'a>(days: &[&'a DayActivity], from: Day, to: Day) -> impl Iterator<Item = &'a DayActivity> {
    days.iter().copied().filter(move |d| d.day >= from && d.day <= to)
}

/// The lifecycle state with periods of `w` days ending on `today`.
pub fn lifecycle(days: &[&DayActivity], today: Day, w: i32) -> Lifecycle {
    let Some(first) = days.first().map(|d| d.day) else {
        return Lifecycle::NeverActive;
    };
    let current = in_range(days, today - w + 1, today).next().is_some();
    let previous = in_range(days, today - 2 * w + 1, today - w).next().is_some();
    match (current, previous) {
        _ if first > today - w => Lifecycle::New,
        (true, true) => Lifecycle::Returning,
        (true, false) => Lifecycle::Resurrecting,
        (false, true) => Lifecycle::Dormant,
        (false, false) => Lifecycle::Inactive,
    }
}

fn activity(config: &ScoringConfig, days: &[&DayActivity], today: Day) -> Activity {
    let counted = config.counted_actions();
    let first_seen = days.first().map(|d| d.day);
    let last_seen = days.last().map(|d| d.day);
    let windows = WINDOWS
        .iter()
        .map(|&w| {
            let (start, end) = (today - w + 1, today);
            let mut win = ActivityWindow { days: w, start, end, ..Default::default() };
            for a in &counted {
                win.core_actions.insert(a.clone(), 0);
            }
            for d in in_range(days, start, end) {
                win.active_days += 1;
                win.events += d.events;
                win.actions += d.actions;
                win.sessions += d.sessions;
                win.session_seconds += d.session_seconds;
                for (a, n) in &d.action_counts {
                    if let Some(c) = win.core_actions.get_mut(a) {
                        *c += n;
                    }
                }
            }
            win.stickiness = win.active_days as f64 / w as f64;
            win.mean_session_seconds = (win.sessions > 0).then(|| win.session_seconds as f64 / win.sessions as f64);
            win.visits_per_week = win.sessions as f64 / (w as f64 / 7.0);
            win.lifecycle = Some(lifecycle(days, today, w));
            win
        })
        .collect();
    let first_week = first_seen.map(|f| {
        let mut fw = FirstWeek { start: f, end: f + 6, ..Default::default() };
        for d in in_range(days, f, f + 6) {
            fw.active_days += 1;
            fw.actions += d.actions;
            fw.sessions += d.sessions;
        }
        fw
    });
    Activity { first_seen, last_seen, recency_days: last_seen.map(|l| (today - l) as i64), windows, first_week }
}

/// The expected lifetime in months: 1 / monthly churn, capped at 60 (and 60 when
/// nobody churned or the rate is unknown).
pub fn expected_lifetime_months(monthly_churn_rate: Option<f64>) -> f64 {
    match monthly_churn_rate {
        Some(r) if r > 0.0 => (1.0 / r).min(MAX_LIFETIME_MONTHS),
        _ => MAX_LIFETIME_MONTHS,
    }
}

/// Predicted CLV = mean order value × purchases per month × expected lifetime months ×
/// margin, with purchases per month = purchases / months since first seen (at least
/// one). Zero without purchases.
pub fn predicted_clv(revenue: i64, purchases: i64, months_observed: f64, lifetime_months: f64, margin: f64) -> f64 {
    if purchases == 0 {
        return 0.0;
    }
    let mean_order = revenue as f64 / purchases as f64;
    let per_month = purchases as f64 / months_observed.max(1.0);
    mean_order * per_month * lifetime_months * margin
}

fn value(input: &ProfileInput, days: &[&DayActivity], today: Day, first_seen: Option<Day>) -> Value {
    let windows = WINDOWS
        .iter()
        .map(|&w| {
            let (start, end) = (today - w + 1, today);
            let (mut revenue, mut purchases) = (0, 0);
            for d in in_range(days, start, end) {
                revenue += d.revenue_minor;
                purchases += d.purchases;
            }
            ValueWindow {
                days: w,
                start,
                end,
                revenue_minor: revenue,
                purchases,
                mean_order_minor: (purchases > 0).then(|| revenue as f64 / purchases as f64),
            }
        })
        .collect();
    let revenue: i64 = days.iter().map(|d| d.revenue_minor).sum();
    let purchases: i64 = days.iter().map(|d| d.purchases).sum();
    let margin = input.config.profit_margin;
    let months_observed = first_seen.map(|f| (today - f + 1) as f64 / DAYS_PER_MONTH).unwrap_or(1.0).max(1.0);
    let lifetime = expected_lifetime_months(input.monthly_churn_rate);
    Value {
        currency: input.config.currency.clone(),
        windows,
        lifetime_revenue_minor: revenue,
        lifetime_purchases: purchases,
        mean_order_minor: (purchases > 0).then(|| revenue as f64 / purchases as f64),
        historical_value_minor: revenue as f64 * margin,
        purchases_per_month: purchases as f64 / months_observed,
        expected_lifetime_months: lifetime,
        predicted_clv_minor: predicted_clv(revenue, purchases, months_observed, lifetime, margin),
        profit_margin: margin,
    }
}

fn voice(input: &ProfileInput, tz: Tz, today: Day) -> Voice {
    let as_of = input.as_of;
    let mut nps: Vec<Answer> =
        input.answers.iter().filter(|a| a.kind == SurveyKind::Nps && a.at <= as_of).cloned().collect();
    nps.sort_by_key(|a| std::cmp::Reverse(a.at));
    let windows = WINDOWS
        .iter()
        .map(|&w| {
            let start = day_start(tz, today - w + 1);
            let inside = |t: Timestamp| t >= start && t <= as_of;
            let of = |k: SurveyKind| -> Vec<&Answer> {
                input.answers.iter().filter(|a| a.kind == k && inside(a.at)).collect()
            };
            let (csat, ces) = (of(SurveyKind::Csat), of(SurveyKind::Ces));
            let raw_mean = |v: &[&Answer]| -> Option<f64> {
                let one_scale = v.windows(2).all(|p| p[0].scale_max == p[1].scale_max);
                if one_scale { mean(&v.iter().map(|a| a.score as f64).collect::<Vec<_>>()) } else { None }
            };
            let pct_mean = |v: &[&Answer]| mean(&v.iter().map(|a| a.percent()).collect::<Vec<_>>());
            let invs: Vec<&(Timestamp, bool)> = input.invitations.iter().filter(|(t, _)| inside(*t)).collect();
            let answered = invs.iter().filter(|(_, a)| *a).count() as i64;
            VoiceWindow {
                days: w,
                start,
                end: as_of,
                nps_answers: of(SurveyKind::Nps).len() as i64,
                csat_answers: csat.len() as i64,
                csat_mean: raw_mean(&csat),
                csat_mean_percent: pct_mean(&csat),
                ces_answers: ces.len() as i64,
                ces_mean: raw_mean(&ces),
                ces_mean_percent: pct_mean(&ces),
                invitations: invs.len() as i64,
                answered_invitations: answered,
                response_rate: (!invs.is_empty()).then(|| answered as f64 / invs.len() as f64),
            }
        })
        .collect();
    Voice {
        latest_nps: nps.first().cloned(),
        nps_history: nps.iter().take(NPS_HISTORY_LIMIT).cloned().collect(),
        windows,
        open_follow_ups: input.follow_ups.iter().filter(|f| f.open_at(as_of)).count() as i64,
        overdue_follow_ups: input.follow_ups.iter().filter(|f| f.overdue_at(as_of)).count() as i64,
        eligible_now: input.eligible_now,
        next_eligible: input.next_eligible,
    }
}

/// The components of health at `at` (its day `day`), each 0–100 or `None`.
fn components(
    input: &ProfileInput,
    days: &[&DayActivity],
    at: Timestamp,
    day: Day,
    percentile: Option<f64>,
) -> Vec<(Component, f64, Option<f64>)> {
    let c = &input.config;
    let w = c.health_weights;
    let tz = c.tz();
    let ever_active = days.iter().any(|d| d.day <= day);
    let last = days.iter().filter(|d| d.day <= day).map(|d| d.day).max();
    let active_30 = in_range(days, day - 29, day).count() as f64;
    let since = day_start(tz, day - 89);
    let answers: Vec<&Answer> = input.answers.iter().filter(|a| a.at <= at).collect();
    let recent_mean = |k: SurveyKind| {
        mean(&answers.iter().filter(|a| a.kind == k && a.at >= since).map(|a| a.percent()).collect::<Vec<_>>())
    };
    let latest_nps = answers.iter().filter(|a| a.kind == SurveyKind::Nps).max_by_key(|a| a.at);
    let follow_ups = (!answers.is_empty()).then(|| {
        if input.follow_ups.iter().any(|f| f.overdue_at(at)) {
            0.0
        } else {
            let open = input.follow_ups.iter().filter(|f| f.open_at(at)).count() as f64;
            (100.0 - 50.0 * open).max(0.0)
        }
    });
    vec![
        (Component::Engagement, w.engagement, percentile),
        (Component::Stickiness, w.stickiness, ever_active.then(|| 100.0 * active_30 / 30.0)),
        (
            Component::Recency,
            w.recency,
            last.map(|l| 100.0 * (1.0 - (day - l) as f64 / c.inactivity_days as f64).max(0.0)),
        ),
        (Component::Nps, w.nps, latest_nps.map(|a| a.percent())),
        (Component::Csat, w.csat, recent_mean(SurveyKind::Csat)),
        (Component::Effort, w.effort, recent_mean(SurveyKind::Ces)),
        (Component::FollowUps, w.follow_ups, follow_ups),
    ]
}

/// Σ(weight × value) / Σ weights over the components with data and a weight, with
/// each one's contribution; and how many had data.
pub fn weighted_health<C: Copy>(parts: &[(C, f64, Option<f64>)]) -> (Option<f64>, Vec<ComponentScore<C>>, u32) {
    let counted: Vec<&(C, f64, Option<f64>)> = parts.iter().filter(|(_, w, v)| *w > 0.0 && v.is_some()).collect();
    let total_weight: f64 = counted.iter().map(|(_, w, _)| w).sum();
    let score =
        (total_weight > 0.0).then(|| counted.iter().map(|(_, w, v)| w * v.unwrap_or(0.0)).sum::<f64>() / total_weight);
    let components = parts
        .iter()
        .map(|(c, w, v)| ComponentScore {
            component: *c,
            weight: *w,
            value: *v,
            contribution: match v {
                Some(v) if *w > 0.0 && total_weight > 0.0 => Some(w * v / total_weight),
                _ => None,
            },
        })
        .collect();
    (score, components, counted.len() as u32)
}

/// The band of a score (rounded to a whole number), or UNKNOWN on thin data.
pub fn band(score: Option<f64>, with_data: u32, config: &ScoringConfig) -> Band {
    match score {
        Some(s) if with_data >= config.min_health_components => {
            let r = s.round();
            if r <= config.bands.red_max {
                Band::Red
            } else if r <= config.bands.yellow_max {
                Band::Yellow
            } else {
                Band::Green
            }
        }
        _ => Band::Unknown,
    }
}

fn health(input: &ProfileInput, days: &[&DayActivity], today: Day) -> Health {
    let c = &input.config;
    let parts = components(input, days, input.as_of, today, input.percentile);
    let (score, comps, with_data) = weighted_health(&parts);
    let before_at = input.as_of - chrono::Duration::days(30);
    let before = components(input, days, before_at, today - 30, input.percentile_30_days_before);
    let (score_before, _, with_data_before) = weighted_health(&before);
    // A change is only shown between two scores that each had enough data.
    let change = match (score, score_before) {
        (Some(a), Some(b)) if with_data >= c.min_health_components && with_data_before >= c.min_health_components => {
            Some(a - b)
        }
        _ => None,
    };

    let mut risks = Vec::new();
    let last = days.last().map(|d| d.day);
    if let Some(l) = last
        && today - l > c.risk.inactive_days
    {
        risks.push(RiskFlag::Inactive);
    }
    let recent: i64 = in_range(days, today - 29, today).map(|d| d.events).sum();
    let prior: i64 = in_range(days, today - 59, today - 30).map(|d| d.events).sum();
    if activity_down(recent, prior, c.risk.activity_drop) {
        risks.push(RiskFlag::ActivityDown);
    }
    let answers: Vec<&Answer> = input.answers.iter().filter(|a| a.at <= input.as_of).collect();
    if answers
        .iter()
        .filter(|a| a.kind == SurveyKind::Nps)
        .max_by_key(|a| a.at)
        .is_some_and(|a| a.bucket == Bucket::Detractor)
    {
        risks.push(RiskFlag::Detractor);
    }
    if input.follow_ups.iter().any(|f| f.overdue_at(input.as_of)) {
        risks.push(RiskFlag::OverdueFollowUp);
    }
    if recent > 0 && answers.is_empty() {
        risks.push(RiskFlag::Silent);
    }
    Health {
        score,
        band: band(score, with_data, c),
        components: comps,
        components_with_data: with_data,
        min_components: c.min_health_components,
        score_30_days_before: score_before.filter(|_| with_data_before >= c.min_health_components),
        change,
        risks,
    }
}

/// Whether activity fell by more than `drop` (a fraction) against a non-empty prior period.
pub fn activity_down(recent: i64, prior: i64, drop: f64) -> bool {
    prior > 0 && (recent as f64) < prior as f64 * (1.0 - drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(d: u32, h: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 6, d, h, 0, 0).unwrap()
    }

    fn day(n: Day, events: i64) -> DayActivity {
        DayActivity { day: n, events, actions: events, ..Default::default() }
    }

    fn input(days: Vec<DayActivity>) -> ProfileInput {
        ProfileInput {
            config: ScoringConfig::default(),
            as_of: at(30, 12),
            days,
            answers: vec![],
            follow_ups: vec![],
            invitations: vec![],
            next_eligible: None,
            eligible_now: true,
            percentile: None,
            percentile_30_days_before: None,
            monthly_churn_rate: None,
        }
    }

    #[test]
    fn lifecycle_states_follow_posthog() {
        let today = 100;
        let refs = |v: &[DayActivity]| -> Vec<DayActivity> { v.to_vec() };
        let case = |days: Vec<DayActivity>| {
            let v = refs(&days);
            let r: Vec<&DayActivity> = v.iter().collect();
            lifecycle(&r, today, 7)
        };
        assert_eq!(case(vec![]), Lifecycle::NeverActive);
        assert_eq!(case(vec![day(94, 1)]), Lifecycle::New); // first seen on the window's first day
        assert_eq!(case(vec![day(93, 1), day(100, 1)]), Lifecycle::Returning);
        assert_eq!(case(vec![day(80, 1), day(95, 1)]), Lifecycle::Resurrecting);
        assert_eq!(case(vec![day(87, 1)]), Lifecycle::Dormant);
        assert_eq!(case(vec![day(86, 1)]), Lifecycle::Inactive);
    }

    #[test]
    fn clv_with_and_without_purchases() {
        // 3 purchases of 2 000 over 60 days: 1.5 a month; churn 10 %: 10 months; margin 0.25.
        let clv = predicted_clv(6_000, 3, 2.0, expected_lifetime_months(Some(0.1)), 0.25);
        assert!((clv - 2_000.0 * 1.5 * 10.0 * 0.25).abs() < 1e-9);
        assert_eq!(predicted_clv(0, 0, 3.0, 60.0, 1.0), 0.0);
        assert_eq!(expected_lifetime_months(Some(0.001)), 60.0);
        assert_eq!(expected_lifetime_months(Some(0.0)), 60.0);
        assert_eq!(expected_lifetime_months(None), 60.0);
    }

    #[test]
    fn health_is_a_weighted_mean_over_the_components_with_data() {
        let parts = vec![
            (Component::Engagement, 2.0, Some(90.0)),
            (Component::Stickiness, 1.0, Some(30.0)),
            (Component::Nps, 2.0, None),
            (Component::Csat, 0.0, Some(0.0)),
        ];
        let (score, comps, n) = weighted_health(&parts);
        assert_eq!(n, 2);
        assert!((score.unwrap() - 70.0).abs() < 1e-12);
        assert!((comps[0].contribution.unwrap() - 60.0).abs() < 1e-12);
        assert_eq!(comps[2].contribution, None);
        assert_eq!(comps[3].contribution, None, "a zero weight leaves a component out");
    }

    #[test]
    fn bands_use_gainsight_edges_and_thin_data_is_unknown() {
        let c = ScoringConfig::default();
        assert_eq!(band(Some(50.4), 3, &c), Band::Red);
        assert_eq!(band(Some(50.5), 3, &c), Band::Yellow);
        assert_eq!(band(Some(75.0), 3, &c), Band::Yellow);
        assert_eq!(band(Some(76.0), 3, &c), Band::Green);
        assert_eq!(band(Some(99.0), 2, &c), Band::Unknown);
        assert_eq!(band(Some(5.0), 2, &c), Band::Unknown);
        assert_eq!(band(None, 7, &c), Band::Unknown);
    }

    #[test]
    fn activity_windows_count_days_sessions_and_core_actions() {
        let mut c = ScoringConfig::default();
        c.action_weights.insert("post".into(), 2.0);
        let today = day_of(Tz::UTC, at(30, 12));
        let mut d1 = day(today, 3);
        d1.sessions = 2;
        d1.session_seconds = 300;
        d1.action_counts.insert("post".into(), 1);
        let mut d2 = day(today - 10, 1);
        d2.action_counts.insert("post".into(), 1);
        let p = profile(&ProfileInput { config: c, ..input(vec![d1, d2]) });
        let w7 = &p.activity.windows[0];
        assert_eq!((w7.active_days, w7.sessions, w7.core_actions["post"]), (1, 2, 1));
        assert_eq!(w7.mean_session_seconds, Some(150.0));
        assert!((w7.visits_per_week - 2.0).abs() < 1e-12);
        let w30 = &p.activity.windows[1];
        assert_eq!((w30.active_days, w30.core_actions["post"]), (2, 2));
        assert!((w30.stickiness - 2.0 / 30.0).abs() < 1e-12);
        // Score: 2 today + 2 ten days ago at half-life 30.
        assert!((p.engagement.score - (2.0 + 2.0 * (-10.0_f64 / 30.0).exp2())).abs() < 1e-9);
        assert_eq!(p.activity.recency_days, Some(0));
        assert_eq!(p.activity.first_week.as_ref().unwrap().active_days, 1);
    }

    #[test]
    fn risk_flags() {
        let today = day_of(Tz::UTC, at(30, 12));
        // Active 40 days ago (10 events), then 20 days of silence, 1 event 20 days ago.
        let p = profile(&input(vec![day(today - 40, 10), day(today - 20, 1)]));
        assert!(p.health.risks.contains(&RiskFlag::Inactive));
        assert!(p.health.risks.contains(&RiskFlag::ActivityDown));
        assert!(p.health.risks.contains(&RiskFlag::Silent));
        assert!(activity_down(4, 10, 0.5));
        assert!(!activity_down(5, 10, 0.5));
        assert!(!activity_down(0, 0, 0.5));
    }
}
