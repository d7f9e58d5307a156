//! The account (B2B) roll-up: what an account's contacts — the customers that carry its
//! account id — say, do and are worth together, its health and its risk flags
//! (docs/insight.md, "Accounts"). Pure: the store fetches each contact's recent days,
//! lifetime sums, answers and follow-ups; everything is computed here.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::engagement::{Day, ScoringConfig, day_start};
use crate::domain::engagement_profile::{
    Answer, Band, DAYS_PER_MONTH, DayActivity, FollowUpTimes, activity_down, band, expected_lifetime_months,
    predicted_clv,
};
use crate::domain::stats::{self, Interval};
use crate::domain::survey::{Bucket, SurveyKind};
use crate::domain::time::Timestamp;

/// Default window of an account profile, in days.
pub const DEFAULT_WINDOW_DAYS: i32 = 90;
/// Answers older than this (before as_of) are not read.
pub const ANSWER_HISTORY_DAYS: i64 = 365;
/// No answer in this many days raises `NoRecentResponse`.
pub const SILENCE_DAYS: i64 = 180;
/// Most customer ids listed with a role or a flag.
pub const MAX_LISTED: usize = 20;
/// Days of activity read before as_of's day at least (for the 30 + 30-day comparison).
pub const MIN_DAYS_READ: i32 = 60;

/// A contact's activity over its whole history up to as_of's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub revenue_minor: i64,
    pub purchases: i64,
    pub first_day: Option<Day>,
    pub last_day: Option<Day>,
}

/// What the account profile reads of one contact.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// The CRM id.
    pub customer: String,
    /// The `role` property, if any.
    pub role: Option<String>,
    /// Active days from max(window, 60) days before as_of's day up to it; the action
    /// counts hold the core actions only.
    pub days: Vec<DayActivity>,
    pub lifetime: Lifetime,
    /// Answers of the 365 days to as_of (later ones are ignored).
    pub answers: Vec<Answer>,
    pub follow_ups: Vec<FollowUpTimes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleDetractors {
    pub role: String,
    pub respondents: i64,
    pub detractors: i64,
    pub detractor_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Voice {
    pub contacts: i64,
    pub respondents: i64,
    pub coverage: Option<f64>,
    pub promoters: i64,
    pub passives: i64,
    pub detractors: i64,
    pub nps: Option<f64>,
    pub nps_interval: Option<Interval>,
    pub by_role: Vec<RoleDetractors>,
    pub open_follow_ups: i64,
    pub overdue_follow_ups: i64,
    pub csat_mean_percent: Option<f64>,
    pub ces_mean_percent: Option<f64>,
    pub last_response: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Activity {
    pub active_contacts: i64,
    pub active_share: Option<f64>,
    pub stickiness: Option<f64>,
    pub active_days: i64,
    pub events: i64,
    pub core_actions: BTreeMap<String, i64>,
    pub last_seen: Option<Day>,
    pub recency_days: Option<i64>,
    pub events_last_30: i64,
    pub events_previous_30: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Value {
    pub currency: String,
    pub revenue_minor: i64,
    pub purchases: i64,
    pub lifetime_revenue_minor: i64,
    pub predicted_clv_minor: f64,
}

/// The account health components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Breadth,
    Stickiness,
    Recency,
    Nps,
    Csat,
    Effort,
    FollowUps,
}

/// An account health component's part of the score.
pub type ComponentScore = crate::domain::engagement_profile::ComponentScore<Component>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskFlag {
    ChampionDetractor,
    ActivityDown,
    NoRecentResponse,
    Inactive,
    OverdueFollowUp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Risk {
    pub flag: RiskFlag,
    pub detail: String,
    pub customers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub score: Option<f64>,
    pub band: Band,
    pub components: Vec<ComponentScore>,
    pub components_with_data: u32,
    pub min_components: u32,
    pub risks: Vec<Risk>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountProfile {
    pub account: String,
    pub as_of: Timestamp,
    pub as_of_day: Day,
    pub time_zone: String,
    pub window_days: i32,
    pub voice: Voice,
    pub activity: Activity,
    pub value: Value,
    pub health: Health,
}

/// Whether a `role` value names a champion or a decision maker ("Champion",
/// "decision maker", "decision-maker", "decision_maker").
pub fn is_key_role(role: &str) -> bool {
    let r: String = role.trim().to_lowercase().chars().map(|c| if c == '-' || c == ' ' { '_' } else { c }).collect();
    matches!(r.as_str(), "champion" | "decision_maker")
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The profile of one account from its contacts.
pub fn account_profile(
    account: &str,
    config: &ScoringConfig,
    as_of: Timestamp,
    window_days: i32,
    contacts: &[Contact],
    monthly_churn_rate: Option<f64>,
) -> AccountProfile {
    let tz = config.tz();
    let today = crate::domain::engagement::day_of(tz, as_of);
    let w = window_days.max(1);
    let (w_from, w_start) = (today - w + 1, day_start(tz, today - w + 1));
    let in_window = |t: Timestamp| t >= w_start && t <= as_of;
    let n_contacts = contacts.len() as i64;

    // Voice: each respondent's latest NPS answer of the window.
    let mut voice = Voice { contacts: n_contacts, ..Voice::default() };
    let mut roles: BTreeMap<String, RoleDetractors> = BTreeMap::new();
    let (mut csat, mut ces) = (Vec::new(), Vec::new());
    for c in contacts {
        let answers: Vec<&Answer> = c.answers.iter().filter(|a| a.at <= as_of).collect();
        if let Some(latest) =
            answers.iter().filter(|a| a.kind == SurveyKind::Nps && in_window(a.at)).max_by_key(|a| a.at)
        {
            voice.respondents += 1;
            match latest.bucket {
                Bucket::Promoter => voice.promoters += 1,
                Bucket::Detractor => voice.detractors += 1,
                _ => voice.passives += 1,
            }
            if let Some(role) = &c.role {
                let r = roles
                    .entry(role.clone())
                    .or_insert_with(|| RoleDetractors { role: role.clone(), ..Default::default() });
                r.respondents += 1;
                if latest.bucket == Bucket::Detractor {
                    r.detractors += 1;
                    if r.detractor_ids.len() < MAX_LISTED {
                        r.detractor_ids.push(c.customer.clone());
                    }
                }
            }
        }
        for a in answers.iter().filter(|a| in_window(a.at)) {
            match a.kind {
                SurveyKind::Csat => csat.push(a.percent()),
                SurveyKind::Ces => ces.push(a.percent()),
                SurveyKind::Nps => {}
            }
        }
        voice.last_response = voice.last_response.max(answers.iter().map(|a| a.at).max());
        voice.open_follow_ups += c.follow_ups.iter().filter(|f| f.open_at(as_of)).count() as i64;
        voice.overdue_follow_ups += c.follow_ups.iter().filter(|f| f.overdue_at(as_of)).count() as i64;
    }
    if voice.respondents > 0 {
        let (nps, ci) = stats::nps(voice.promoters, voice.detractors, voice.respondents);
        voice.nps = Some(nps);
        voice.nps_interval = Some(ci);
    }
    voice.coverage = (n_contacts > 0).then(|| voice.respondents as f64 / n_contacts as f64);
    voice.by_role = roles.into_values().collect();
    voice.csat_mean_percent = mean(&csat);
    voice.ces_mean_percent = mean(&ces);

    // Activity.
    let counted = config.counted_actions();
    let mut activity = Activity::default();
    for a in &counted {
        activity.core_actions.insert(a.clone(), 0);
    }
    let mut window_days_active: BTreeSet<Day> = BTreeSet::new();
    let mut contact_days_30 = 0i64;
    let (mut revenue, mut purchases) = (0i64, 0i64);
    for c in contacts {
        let mut active_30 = false;
        for d in c.days.iter().filter(|d| d.day <= today && d.events > 0) {
            if d.day > today - 30 {
                active_30 = true;
                contact_days_30 += 1;
                activity.events_last_30 += d.events;
            } else if d.day > today - 60 {
                activity.events_previous_30 += d.events;
            }
            if d.day >= w_from {
                window_days_active.insert(d.day);
                activity.events += d.events;
                revenue += d.revenue_minor;
                purchases += d.purchases;
                for (name, n) in &d.action_counts {
                    if let Some(count) = activity.core_actions.get_mut(name) {
                        *count += n;
                    }
                }
            }
        }
        if active_30 {
            activity.active_contacts += 1;
        }
        activity.last_seen = activity.last_seen.max(c.lifetime.last_day.filter(|d| *d <= today));
    }
    activity.active_days = window_days_active.len() as i64;
    activity.active_share = (n_contacts > 0).then(|| activity.active_contacts as f64 / n_contacts as f64);
    activity.stickiness =
        (activity.active_contacts > 0).then(|| contact_days_30 as f64 / 30.0 / activity.active_contacts as f64);
    activity.recency_days = activity.last_seen.map(|l| (today - l) as i64);

    // Value.
    let lifetime_revenue: i64 = contacts.iter().map(|c| c.lifetime.revenue_minor).sum();
    let lifetime_purchases: i64 = contacts.iter().map(|c| c.lifetime.purchases).sum();
    let first_day = contacts.iter().filter_map(|c| c.lifetime.first_day).min();
    let months = first_day.map(|f| (today - f + 1) as f64 / DAYS_PER_MONTH).unwrap_or(1.0).max(1.0);
    let value = Value {
        currency: config.currency.clone(),
        revenue_minor: revenue,
        purchases,
        lifetime_revenue_minor: lifetime_revenue,
        predicted_clv_minor: predicted_clv(
            lifetime_revenue,
            lifetime_purchases,
            months,
            expected_lifetime_months(monthly_churn_rate),
            config.profit_margin,
        ),
    };

    let health = health(config, contacts, &voice, &activity, as_of, today);
    AccountProfile {
        account: account.to_owned(),
        as_of,
        as_of_day: today,
        time_zone: config.time_zone.clone(),
        window_days: w,
        voice,
        activity,
        value,
        health,
    }
}

fn health(
    config: &ScoringConfig,
    contacts: &[Contact],
    voice: &Voice,
    activity: &Activity,
    as_of: Timestamp,
    today: Day,
) -> Health {
    let hw = config.health_weights;
    let ever_active = activity.last_seen.is_some();
    let answered = voice.respondents > 0 || voice.csat_mean_percent.is_some() || voice.ces_mean_percent.is_some();
    let follow_ups = answered.then(|| {
        if voice.overdue_follow_ups > 0 { 0.0 } else { (100.0 - 50.0 * voice.open_follow_ups as f64).max(0.0) }
    });
    let parts = [
        (Component::Breadth, hw.engagement, activity.active_share.filter(|_| ever_active).map(|s| 100.0 * s)),
        (
            Component::Stickiness,
            hw.stickiness,
            if ever_active { Some(100.0 * activity.stickiness.unwrap_or(0.0)) } else { None },
        ),
        (
            Component::Recency,
            hw.recency,
            activity.recency_days.map(|r| 100.0 * (1.0 - r as f64 / config.inactivity_days.max(1) as f64).max(0.0)),
        ),
        (Component::Nps, hw.nps, voice.nps.map(|n| (n + 100.0) / 2.0)),
        (Component::Csat, hw.csat, voice.csat_mean_percent),
        (Component::Effort, hw.effort, voice.ces_mean_percent),
        (Component::FollowUps, hw.follow_ups, follow_ups),
    ];
    let (score, components, with_data) = crate::domain::engagement_profile::weighted_health(&parts);

    let mut risks = Vec::new();
    let key_detractors: Vec<String> = contacts
        .iter()
        .filter(|c| c.role.as_deref().is_some_and(is_key_role))
        .filter(|c| {
            c.answers
                .iter()
                .filter(|a| a.kind == SurveyKind::Nps && a.at <= as_of)
                .max_by_key(|a| a.at)
                .is_some_and(|a| a.bucket == Bucket::Detractor)
        })
        .map(|c| c.customer.clone())
        .collect();
    if !key_detractors.is_empty() {
        risks.push(Risk {
            flag: RiskFlag::ChampionDetractor,
            detail: format!(
                "{} champion or decision-maker contact(s) answered NPS as a detractor last",
                key_detractors.len()
            ),
            customers: key_detractors.into_iter().take(MAX_LISTED).collect(),
        });
    }
    if activity_down(activity.events_last_30, activity.events_previous_30, config.risk.activity_drop) {
        risks.push(Risk {
            flag: RiskFlag::ActivityDown,
            detail: format!(
                "{} events in the last 30 days against {} in the 30 before (threshold: down more than {:.0} %)",
                activity.events_last_30,
                activity.events_previous_30,
                100.0 * config.risk.activity_drop
            ),
            customers: Vec::new(),
        });
    }
    let silent_since = as_of - chrono::Duration::days(SILENCE_DAYS);
    if voice.contacts > 0 && voice.last_response.is_none_or(|t| t < silent_since) {
        risks.push(Risk {
            flag: RiskFlag::NoRecentResponse,
            detail: format!("no contact answered a survey in the {SILENCE_DAYS} days to as_of"),
            customers: Vec::new(),
        });
    }
    if let Some(r) = activity.recency_days
        && r > config.risk.inactive_days as i64
    {
        risks.push(Risk {
            flag: RiskFlag::Inactive,
            detail: format!("no contact active for {r} days (threshold {} days)", config.risk.inactive_days),
            customers: Vec::new(),
        });
    }
    let overdue: Vec<String> = contacts
        .iter()
        .filter(|c| c.follow_ups.iter().any(|f| f.overdue_at(as_of)))
        .map(|c| c.customer.clone())
        .collect();
    if !overdue.is_empty() {
        risks.push(Risk {
            flag: RiskFlag::OverdueFollowUp,
            detail: format!("{} overdue follow-up(s)", voice.overdue_follow_ups),
            customers: overdue.into_iter().take(MAX_LISTED).collect(),
        });
    }
    let _ = today;
    Health {
        score,
        band: band(score, with_data, config),
        components,
        components_with_data: with_data,
        min_components: config.min_health_components,
        risks,
    }
}

/// How `ListAccounts` orders accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    Health,
    Risk,
    Revenue,
}

impl Ranking {
    /// The default direction: lowest health first; most risks and highest revenue first.
    pub fn default_ascending(self) -> bool {
        matches!(self, Ranking::Health)
    }
}

/// Sorts profiles for `ListAccounts`: by the ranking in the given direction, accounts
/// without a health score last when ranking by health, ties by account id (A→Z).
pub fn rank(profiles: &mut [AccountProfile], by: Ranking, ascending: bool) {
    profiles.sort_by(|a, b| {
        let dir = |o: std::cmp::Ordering| if ascending { o } else { o.reverse() };
        let primary = match by {
            Ranking::Health => match (a.health.score, b.health.score) {
                (Some(x), Some(y)) => dir(x.total_cmp(&y)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
            Ranking::Risk => dir(a.health.risks.len().cmp(&b.health.risks.len())).then_with(|| {
                // More risks first (descending); among equals, the lower health first.
                let x = a.health.score.unwrap_or(f64::INFINITY);
                let y = b.health.score.unwrap_or(f64::INFINITY);
                x.total_cmp(&y)
            }),
            Ranking::Revenue => dir(a.value.revenue_minor.cmp(&b.value.revenue_minor)),
        };
        primary.then_with(|| a.account.cmp(&b.account))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::engagement::day_of;
    use chrono::{TimeZone, Utc};

    fn at(d: u32, h: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 6, d, h, 0, 0).unwrap()
    }

    fn nps(score: i32, t: Timestamp) -> Answer {
        let bucket = match score {
            9.. => Bucket::Promoter,
            7..=8 => Bucket::Passive,
            _ => Bucket::Detractor,
        };
        Answer { kind: SurveyKind::Nps, score, scale_max: 10, bucket, at: t }
    }

    fn day(d: Day, events: i64) -> DayActivity {
        DayActivity { day: d, events, actions: events, ..Default::default() }
    }

    fn contact(id: &str, role: Option<&str>, days: Vec<DayActivity>, answers: Vec<Answer>) -> Contact {
        let lifetime = Lifetime {
            revenue_minor: days.iter().map(|d| d.revenue_minor).sum(),
            purchases: days.iter().map(|d| d.purchases).sum(),
            first_day: days.iter().map(|d| d.day).min(),
            last_day: days.iter().map(|d| d.day).max(),
        };
        Contact { customer: id.into(), role: role.map(Into::into), days, lifetime, answers, follow_ups: vec![] }
    }

    #[test]
    fn a_hand_computed_account() {
        let as_of = at(30, 12);
        let today = day_of(chrono_tz::Tz::UTC, as_of);
        let mut big = day(today - 2, 5);
        big.revenue_minor = 3_000;
        big.purchases = 1;
        let contacts = vec![
            // Promoter, active on 3 of the last 30 days.
            contact("ann", Some("Champion"), vec![day(today, 2), day(today - 1, 1), big], vec![nps(10, at(20, 9))]),
            // Detractor decision maker, active once 40 days ago (the previous 30 days).
            contact(
                "bob",
                Some("decision-maker"),
                vec![day(today - 40, 20)],
                vec![nps(3, at(25, 9)), nps(9, at(2, 9))],
            ),
            // Passive without a role, never active.
            contact("cid", None, vec![], vec![nps(8, at(29, 9))]),
            // Never answered, active today.
            contact("dee", Some("user"), vec![day(today, 1)], vec![]),
        ];
        let config = ScoringConfig::default();
        let p = account_profile("acme", &config, as_of, 90, &contacts, Some(0.1));
        let v = &p.voice;
        assert_eq!((v.contacts, v.respondents, v.promoters, v.passives, v.detractors), (4, 3, 1, 1, 1));
        assert_eq!(v.coverage, Some(0.75));
        // NPS 0 of 3, with the adjusted-Wald interval of stats::nps(1, 1, 3).
        assert_eq!(v.nps, Some(0.0));
        assert_eq!(v.nps_interval, Some(stats::nps(1, 1, 3).1));
        let roles: Vec<(&str, i64, i64)> =
            v.by_role.iter().map(|r| (r.role.as_str(), r.respondents, r.detractors)).collect();
        assert_eq!(roles, [("Champion", 1, 0), ("decision-maker", 1, 1)]);
        assert_eq!(v.by_role[1].detractor_ids, ["bob"]);

        let a = &p.activity;
        // ann and dee were active in the last 30 days: 2 of 4; contact-days 3 + 1 = 4,
        // mean DAU 4/30, DAU/MAU = (4/30)/2.
        assert_eq!(a.active_contacts, 2);
        assert_eq!(a.active_share, Some(0.5));
        assert!((a.stickiness.unwrap() - 4.0 / 30.0 / 2.0).abs() < 1e-12);
        // Window of 90 days: days today, today−1, today−2, today−40.
        assert_eq!((a.active_days, a.events), (4, 2 + 1 + 5 + 20 + 1));
        assert_eq!((a.events_last_30, a.events_previous_30), (9, 20));
        assert_eq!(a.recency_days, Some(0));

        assert_eq!(p.value.revenue_minor, 3_000);
        // CLV: 3 000 per order × 1 purchase / (41 days / 30 months) × 10 months × margin 1.
        let months = 41.0 / 30.0;
        assert!((p.value.predicted_clv_minor - 3_000.0 / months * 10.0).abs() < 1e-9);

        let h = &p.health;
        // Breadth 50 (w 2), stickiness 100·4/60 (w 1), recency 100 (w 1), NPS 50 (w 2),
        // follow-ups 100 (w 1); CSAT and effort without data.
        let stick = 100.0 * 4.0 / 60.0;
        let expected = (2.0 * 50.0 + stick + 100.0 + 2.0 * 50.0 + 100.0) / 7.0;
        assert!((h.score.unwrap() - expected).abs() < 1e-9, "{:?}", h.score);
        assert_eq!(h.components_with_data, 5);
        assert_eq!(h.band, band(Some(expected), 5, &config));
        let flags: Vec<RiskFlag> = h.risks.iter().map(|r| r.flag).collect();
        // bob (a decision maker) is a detractor last; 9 events against 20 is down 55 %.
        assert_eq!(flags, [RiskFlag::ChampionDetractor, RiskFlag::ActivityDown]);
        assert_eq!(h.risks[0].customers, ["bob"]);
    }

    #[test]
    fn thin_and_empty_accounts() {
        let as_of = at(30, 12);
        let config = ScoringConfig::default();
        let p = account_profile("empty", &config, as_of, 30, &[], None);
        assert_eq!((p.voice.contacts, p.voice.nps, p.voice.coverage), (0, None, None));
        assert_eq!((p.health.score, p.health.band), (None, Band::Unknown));
        assert!(p.health.risks.is_empty(), "no contacts, nothing to flag");
        // One silent, inactive contact: UNKNOWN band and the no-response flag.
        let p = account_profile("quiet", &config, as_of, 30, &[contact("q", None, vec![], vec![])], None);
        assert_eq!(p.health.band, Band::Unknown);
        let flags: Vec<RiskFlag> = p.health.risks.iter().map(|r| r.flag).collect();
        assert_eq!(flags, [RiskFlag::NoRecentResponse]);
        // An answer 200 days ago is not recent; inactivity is flagged past 14 days.
        let today = day_of(chrono_tz::Tz::UTC, as_of);
        let old = nps(9, as_of - chrono::Duration::days(200));
        let p = account_profile(
            "old",
            &config,
            as_of,
            30,
            &[contact("o", None, vec![day(today - 20, 1)], vec![old])],
            None,
        );
        let flags: Vec<RiskFlag> = p.health.risks.iter().map(|r| r.flag).collect();
        assert_eq!(flags, [RiskFlag::NoRecentResponse, RiskFlag::Inactive]);
        assert!(is_key_role(" Decision Maker ") && is_key_role("CHAMPION") && !is_key_role("user"));
    }

    #[test]
    fn ranking_orders_and_breaks_ties_by_id() {
        let config = ScoringConfig::default();
        let as_of = at(30, 12);
        let today = day_of(chrono_tz::Tz::UTC, as_of);
        let mut rich = day(today, 1);
        rich.revenue_minor = 500;
        let mk = |id: &str, c: Vec<Contact>| account_profile(id, &config, as_of, 30, &c, None);
        let mut ps = vec![
            mk("b-unknown", vec![]),
            mk("a-active", vec![contact("x", None, vec![rich], vec![nps(10, at(29, 1))])]),
            mk("c-detractor", vec![contact("y", None, vec![day(today, 1)], vec![nps(0, at(29, 1))])]),
        ];
        rank(&mut ps, Ranking::Health, true);
        let ids: Vec<&str> = ps.iter().map(|p| p.account.as_str()).collect();
        assert_eq!(ids, ["c-detractor", "a-active", "b-unknown"]);
        rank(&mut ps, Ranking::Health, false);
        let ids: Vec<&str> = ps.iter().map(|p| p.account.as_str()).collect();
        assert_eq!(ids, ["a-active", "c-detractor", "b-unknown"], "unknown last either way");
        rank(&mut ps, Ranking::Revenue, false);
        assert_eq!(ps[0].account, "a-active");
        assert_eq!(ps[1].account, "b-unknown", "equal revenue: by id");
    }
}
