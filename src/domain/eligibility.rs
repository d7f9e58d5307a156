//! May this customer be surveyed now? The Medallia four-cooldown model plus
//! opt-out and erasure (docs/api.md, "Surveys, eligibility and defaults"). Explained, never silent.

use super::time::{Timestamp, days};
use crate::error::{AppError, Result};

/// The effective cooldowns of a survey (its own values over the tenant defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub days_after_invitation_this_survey: i32,
    pub days_after_invitation_any_survey: i32,
    pub days_after_response_this_survey: i32,
    pub days_after_response_any_survey: i32,
    pub invitation_expiry_days: i32,
}

/// A survey's own policy: `None` takes the tenant default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyOverrides {
    pub days_after_invitation_this_survey: Option<i32>,
    pub days_after_invitation_any_survey: Option<i32>,
    pub days_after_response_this_survey: Option<i32>,
    pub days_after_response_any_survey: Option<i32>,
    pub invitation_expiry_days: Option<i32>,
}

impl PolicyOverrides {
    /// Checks every value: cooldowns 0–3650 days, expiry 1–365 days.
    pub fn validate(self) -> Result<Self> {
        let mut violations = Vec::new();
        for (field, value, lo, hi) in [
            ("policy.days_after_invitation_this_survey", self.days_after_invitation_this_survey, 0, 3650),
            ("policy.days_after_invitation_any_survey", self.days_after_invitation_any_survey, 0, 3650),
            ("policy.days_after_response_this_survey", self.days_after_response_this_survey, 0, 3650),
            ("policy.days_after_response_any_survey", self.days_after_response_any_survey, 0, 3650),
            ("policy.invitation_expiry_days", self.invitation_expiry_days, 1, 365),
        ] {
            if let Some(v) = value
                && !(lo..=hi).contains(&v)
            {
                violations.push(crate::error::FieldViolation {
                    field: field.into(),
                    description: format!("must be from {lo} to {hi} days; got {v}"),
                });
            }
        }
        if violations.is_empty() { Ok(self) } else { Err(AppError::InvalidArgument(violations)) }
    }

    /// This survey's values over the tenant's defaults.
    pub fn over(self, defaults: Policy) -> Policy {
        Policy {
            days_after_invitation_this_survey: self
                .days_after_invitation_this_survey
                .unwrap_or(defaults.days_after_invitation_this_survey),
            days_after_invitation_any_survey: self
                .days_after_invitation_any_survey
                .unwrap_or(defaults.days_after_invitation_any_survey),
            days_after_response_this_survey: self
                .days_after_response_this_survey
                .unwrap_or(defaults.days_after_response_this_survey),
            days_after_response_any_survey: self
                .days_after_response_any_survey
                .unwrap_or(defaults.days_after_response_any_survey),
            invitation_expiry_days: self.invitation_expiry_days.unwrap_or(defaults.invitation_expiry_days),
        }
    }
}

/// What rapport knows of a customer's past, as far as eligibility cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    pub last_invitation_this_survey: Option<Timestamp>,
    pub last_invitation_any_survey: Option<Timestamp>,
    pub last_response_this_survey: Option<Timestamp>,
    pub last_response_any_survey: Option<Timestamp>,
    pub unsubscribed: bool,
    pub erased: bool,
}

/// Which rule blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EligibilityRule {
    InvitedThisSurvey,
    InvitedAnySurvey,
    RespondedThisSurvey,
    RespondedAnySurvey,
    Unsubscribed,
    Erased,
}

impl EligibilityRule {
    pub fn as_str(self) -> &'static str {
        match self {
            EligibilityRule::InvitedThisSurvey => "invited_this_survey",
            EligibilityRule::InvitedAnySurvey => "invited_any_survey",
            EligibilityRule::RespondedThisSurvey => "responded_this_survey",
            EligibilityRule::RespondedAnySurvey => "responded_any_survey",
            EligibilityRule::Unsubscribed => "unsubscribed",
            EligibilityRule::Erased => "erased",
        }
    }

    pub fn from_db(s: &str) -> Result<Self> {
        Ok(match s {
            "invited_this_survey" => EligibilityRule::InvitedThisSurvey,
            "invited_any_survey" => EligibilityRule::InvitedAnySurvey,
            "responded_this_survey" => EligibilityRule::RespondedThisSurvey,
            "responded_any_survey" => EligibilityRule::RespondedAnySurvey,
            "unsubscribed" => EligibilityRule::Unsubscribed,
            "erased" => EligibilityRule::Erased,
            other => return Err(anyhow::anyhow!("unknown rule {other:?} in database").into()),
        })
    }

    /// Whether `force` may bypass it: cooldowns yes, opt-out and erasure never.
    pub fn bypassable(self) -> bool {
        !matches!(self, EligibilityRule::Unsubscribed | EligibilityRule::Erased)
    }
}

/// The decision, with every rule that blocks and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    pub eligible: bool,
    /// The deciding rule: one without an end first, else the cooldown that lasts longest.
    pub rule: Option<EligibilityRule>,
    /// Every blocking rule with its end (`None`: no end).
    pub blocking: Vec<(EligibilityRule, Option<Timestamp>)>,
    /// When every cooldown has passed; `None` when eligible or blocked without end.
    pub next_eligible_at: Option<Timestamp>,
    /// Eligible only because `force` bypassed cooldowns.
    pub forced: bool,
}

/// Decides eligibility at `now`. `force` bypasses cooldowns, never opt-out or erasure.
pub fn evaluate(policy: Policy, history: History, now: Timestamp, force: bool) -> Eligibility {
    let mut blocking: Vec<(EligibilityRule, Option<Timestamp>)> = Vec::new();
    if history.erased {
        blocking.push((EligibilityRule::Erased, None));
    }
    if history.unsubscribed {
        blocking.push((EligibilityRule::Unsubscribed, None));
    }
    for (rule, last, n) in [
        (
            EligibilityRule::InvitedThisSurvey,
            history.last_invitation_this_survey,
            policy.days_after_invitation_this_survey,
        ),
        (
            EligibilityRule::InvitedAnySurvey,
            history.last_invitation_any_survey,
            policy.days_after_invitation_any_survey,
        ),
        (
            EligibilityRule::RespondedThisSurvey,
            history.last_response_this_survey,
            policy.days_after_response_this_survey,
        ),
        (EligibilityRule::RespondedAnySurvey, history.last_response_any_survey, policy.days_after_response_any_survey),
    ] {
        if let Some(last) = last
            && n > 0
        {
            let until = last + days(n as i64);
            if until > now {
                blocking.push((rule, Some(until)));
            }
        }
    }

    let hard = blocking.iter().any(|(r, _)| !r.bypassable());
    if blocking.is_empty() || (force && !hard) {
        return Eligibility {
            eligible: true,
            rule: None,
            blocking: Vec::new(),
            next_eligible_at: None,
            forced: !blocking.is_empty(),
        };
    }
    let rule = blocking
        .iter()
        .find(|(r, _)| !r.bypassable())
        .or_else(|| blocking.iter().max_by_key(|(_, until)| *until))
        .map(|(r, _)| *r);
    let next_eligible_at = if hard { None } else { blocking.iter().filter_map(|(_, u)| *u).max() };
    Eligibility { eligible: false, rule, blocking, next_eligible_at, forced: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn policy() -> Policy {
        Policy {
            days_after_invitation_this_survey: 7,
            days_after_invitation_any_survey: 3,
            days_after_response_this_survey: 90,
            days_after_response_any_survey: 30,
            invitation_expiry_days: 30,
        }
    }

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_customer_with_no_history_is_eligible() {
        let e = evaluate(policy(), History::default(), now(), false);
        assert!(e.eligible && !e.forced && e.rule.is_none());
    }

    #[test]
    fn each_cooldown_blocks_until_its_end_and_not_after() {
        type SetLast = fn(&mut History, Timestamp);
        let cases: [(SetLast, EligibilityRule, i64); 4] = [
            (|h, t| h.last_invitation_this_survey = Some(t), EligibilityRule::InvitedThisSurvey, 7),
            (|h, t| h.last_invitation_any_survey = Some(t), EligibilityRule::InvitedAnySurvey, 3),
            (|h, t| h.last_response_this_survey = Some(t), EligibilityRule::RespondedThisSurvey, 90),
            (|h, t| h.last_response_any_survey = Some(t), EligibilityRule::RespondedAnySurvey, 30),
        ];
        for (set, rule, n) in cases {
            let mut h = History::default();
            let last = now() - days(n) + chrono::Duration::seconds(1);
            set(&mut h, last);
            let e = evaluate(policy(), h, now(), false);
            assert!(!e.eligible);
            assert_eq!(e.rule, Some(rule));
            assert_eq!(e.next_eligible_at, Some(last + days(n)));

            let mut h = History::default();
            set(&mut h, now() - days(n));
            assert!(evaluate(policy(), h, now(), false).eligible, "{rule:?} ends after {n} days");
        }
    }

    #[test]
    fn the_longest_cooldown_decides() {
        let h = History {
            last_invitation_this_survey: Some(now()),
            last_response_any_survey: Some(now()),
            ..History::default()
        };
        let e = evaluate(policy(), h, now(), false);
        assert_eq!(e.rule, Some(EligibilityRule::RespondedAnySurvey));
        assert_eq!(e.blocking.len(), 2);
        assert_eq!(e.next_eligible_at, Some(now() + days(30)));
    }

    #[test]
    fn force_bypasses_cooldowns_but_never_unsubscribe() {
        let h = History { last_response_this_survey: Some(now()), ..History::default() };
        let e = evaluate(policy(), h, now(), true);
        assert!(e.eligible && e.forced);
        let h = History { unsubscribed: true, last_response_this_survey: Some(now()), ..History::default() };
        let e = evaluate(policy(), h, now(), true);
        assert!(!e.eligible);
        assert_eq!(e.rule, Some(EligibilityRule::Unsubscribed));
        assert_eq!(e.next_eligible_at, None);
    }

    #[test]
    fn zero_days_never_blocks() {
        let mut p = policy();
        p.days_after_invitation_this_survey = 0;
        let h = History { last_invitation_this_survey: Some(now()), ..History::default() };
        assert!(evaluate(p, h, now(), false).eligible);
    }
}
