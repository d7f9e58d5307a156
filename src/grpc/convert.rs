//! proto ⇄ domain conversions: the one place that knows both shapes. Input messages
//! are parsed into domain types (errors name the field); domain records become
//! proto messages.

use std::collections::HashMap;

use prost_types::Timestamp as PbTime;

use super::pb;
use crate::domain::eligibility::{Eligibility, EligibilityRule, PolicyOverrides};
use crate::domain::insight::series::{Change, PointFlags};
use crate::domain::model::{self, Channel, FollowUpRule, Invitation, InvitationStatus, Properties, Response, Survey};
use crate::domain::stats::{Interval, Summary};
use crate::domain::time::Timestamp;
use crate::domain::{Bucket, FollowUpStatus, Priority, Scale, SurveyKind, input};
use crate::error::{AppError, Result};

pub fn ts(t: Timestamp) -> PbTime {
    PbTime { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn opt_ts(t: Option<Timestamp>) -> Option<PbTime> {
    t.map(ts)
}

/// A caller's timestamp, in the API's range (years 1970–9999); `field` names it when
/// out of range. The codec has checked this already; the check stays here so a
/// conversion can never yield a time the domain's arithmetic was not made for.
pub fn parse_ts(t: &PbTime, field: &str) -> Result<Timestamp> {
    crate::domain::time::check_range(field, t.seconds, t.nanos)
}

pub fn parse_opt_ts(t: &Option<PbTime>, field: &str) -> Result<Option<Timestamp>> {
    t.as_ref().map(|t| parse_ts(t, field)).transpose()
}

pub fn props(map: &HashMap<String, String>, field: &str) -> Result<Properties> {
    input::properties(field, map)
}

pub fn pb_props(p: &Properties) -> HashMap<String, String> {
    p.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn kind(raw: i32, field: &str) -> Result<SurveyKind> {
    match pb::SurveyKind::try_from(raw) {
        Ok(pb::SurveyKind::Nps) => Ok(SurveyKind::Nps),
        Ok(pb::SurveyKind::Csat) => Ok(SurveyKind::Csat),
        Ok(pb::SurveyKind::Ces) => Ok(SurveyKind::Ces),
        _ => Err(AppError::invalid(field, "must be SURVEY_KIND_NPS, SURVEY_KIND_CSAT or SURVEY_KIND_CES")),
    }
}

/// An optional kind filter: UNSPECIFIED means "any".
pub fn opt_kind(raw: i32, field: &str) -> Result<Option<SurveyKind>> {
    if raw == 0 { Ok(None) } else { kind(raw, field).map(Some) }
}

pub fn pb_kind(k: SurveyKind) -> pb::SurveyKind {
    match k {
        SurveyKind::Nps => pb::SurveyKind::Nps,
        SurveyKind::Csat => pb::SurveyKind::Csat,
        SurveyKind::Ces => pb::SurveyKind::Ces,
    }
}

pub fn pb_bucket(b: Bucket) -> pb::Bucket {
    match b {
        Bucket::Promoter => pb::Bucket::Promoter,
        Bucket::Passive => pb::Bucket::Passive,
        Bucket::Detractor => pb::Bucket::Detractor,
        Bucket::Satisfied => pb::Bucket::Satisfied,
        Bucket::Unsatisfied => pb::Bucket::Unsatisfied,
        Bucket::Agree => pb::Bucket::Agree,
        Bucket::NotAgree => pb::Bucket::NotAgree,
    }
}

pub fn opt_bucket(raw: i32, field: &str) -> Result<Option<Bucket>> {
    Ok(match pb::Bucket::try_from(raw) {
        Ok(pb::Bucket::Unspecified) => None,
        Ok(pb::Bucket::Promoter) => Some(Bucket::Promoter),
        Ok(pb::Bucket::Passive) => Some(Bucket::Passive),
        Ok(pb::Bucket::Detractor) => Some(Bucket::Detractor),
        Ok(pb::Bucket::Satisfied) => Some(Bucket::Satisfied),
        Ok(pb::Bucket::Unsatisfied) => Some(Bucket::Unsatisfied),
        Ok(pb::Bucket::Agree) => Some(Bucket::Agree),
        Ok(pb::Bucket::NotAgree) => Some(Bucket::NotAgree),
        Err(_) => return Err(AppError::invalid(field, "is not a known bucket")),
    })
}

pub fn channel(raw: i32) -> Result<Channel> {
    Ok(match pb::Channel::try_from(raw) {
        Ok(pb::Channel::Unspecified) | Ok(pb::Channel::Link) => Channel::Link,
        Ok(pb::Channel::Email) => Channel::Email,
        Ok(pb::Channel::Sms) => Channel::Sms,
        Ok(pb::Channel::InApp) => Channel::InApp,
        Err(_) => return Err(AppError::invalid("channel", "is not a known channel")),
    })
}

fn pb_channel(c: Channel) -> pb::Channel {
    match c {
        Channel::Email => pb::Channel::Email,
        Channel::Sms => pb::Channel::Sms,
        Channel::Link => pb::Channel::Link,
        Channel::InApp => pb::Channel::InApp,
    }
}

pub fn pb_rule(r: EligibilityRule) -> pb::EligibilityRule {
    match r {
        EligibilityRule::InvitedThisSurvey => pb::EligibilityRule::InvitedThisSurvey,
        EligibilityRule::InvitedAnySurvey => pb::EligibilityRule::InvitedAnySurvey,
        EligibilityRule::RespondedThisSurvey => pb::EligibilityRule::RespondedThisSurvey,
        EligibilityRule::RespondedAnySurvey => pb::EligibilityRule::RespondedAnySurvey,
        EligibilityRule::Unsubscribed => pb::EligibilityRule::Unsubscribed,
        EligibilityRule::Erased => pb::EligibilityRule::Erased,
    }
}

pub fn pb_status(s: FollowUpStatus) -> pb::FollowUpStatus {
    match s {
        FollowUpStatus::Open => pb::FollowUpStatus::Open,
        FollowUpStatus::Acknowledged => pb::FollowUpStatus::Acknowledged,
        FollowUpStatus::Resolved => pb::FollowUpStatus::Resolved,
        FollowUpStatus::Dismissed => pb::FollowUpStatus::Dismissed,
    }
}

pub fn opt_status(raw: i32) -> Result<Option<FollowUpStatus>> {
    Ok(match pb::FollowUpStatus::try_from(raw) {
        Ok(pb::FollowUpStatus::Unspecified) => None,
        Ok(pb::FollowUpStatus::Open) => Some(FollowUpStatus::Open),
        Ok(pb::FollowUpStatus::Acknowledged) => Some(FollowUpStatus::Acknowledged),
        Ok(pb::FollowUpStatus::Resolved) => Some(FollowUpStatus::Resolved),
        Ok(pb::FollowUpStatus::Dismissed) => Some(FollowUpStatus::Dismissed),
        Err(_) => return Err(AppError::invalid("status", "is not a known status")),
    })
}

pub fn pb_priority(p: Priority) -> pb::Priority {
    match p {
        Priority::Low => pb::Priority::Low,
        Priority::Normal => pb::Priority::Normal,
        Priority::High => pb::Priority::High,
        Priority::Urgent => pb::Priority::Urgent,
    }
}

pub fn priority(raw: i32) -> Result<Priority> {
    match pb::Priority::try_from(raw) {
        Ok(pb::Priority::Low) => Ok(Priority::Low),
        Ok(pb::Priority::Normal) => Ok(Priority::Normal),
        Ok(pb::Priority::High) => Ok(Priority::High),
        Ok(pb::Priority::Urgent) => Ok(Priority::Urgent),
        _ => Err(AppError::invalid("set_priority.priority", "must be LOW, NORMAL, HIGH or URGENT")),
    }
}

fn policy(p: &Option<pb::EligibilityPolicy>) -> PolicyOverrides {
    let p = p.unwrap_or_default();
    PolicyOverrides {
        days_after_invitation_this_survey: p.days_after_invitation_this_survey,
        days_after_invitation_any_survey: p.days_after_invitation_any_survey,
        days_after_response_this_survey: p.days_after_response_this_survey,
        days_after_response_any_survey: p.days_after_response_any_survey,
        invitation_expiry_days: p.invitation_expiry_days,
    }
}

fn follow_up_rule(f: &Option<pb::FollowUpRule>) -> Result<FollowUpRule> {
    let f = f.clone().unwrap_or_default();
    Ok(FollowUpRule {
        threshold: f.threshold,
        customer_condition: props(&f.customer_condition, "follow_up.customer_condition")?,
        sla_hours: f.sla_hours,
        disabled: f.disabled,
    })
}

/// Collects every field error of a survey at once.
fn texts(s: &pb::Survey, errors: &mut Vec<crate::error::FieldViolation>) -> (String, String, String, String) {
    let mut take = |field: &str, raw: &str, max: usize, required: bool| match input::text(field, raw, max, required) {
        Ok(v) => v,
        Err(AppError::InvalidArgument(v)) => {
            errors.extend(v);
            String::new()
        }
        Err(_) => String::new(),
    };
    (
        take("survey.name", &s.name, 200, false),
        take("survey.question", &s.question, 1000, true),
        take("survey.low_label", &s.low_label, 100, false),
        take("survey.high_label", &s.high_label, 100, false),
    )
}

pub fn survey_draft(s: Option<pb::Survey>) -> Result<model::SurveyDraft> {
    let s = s.ok_or_else(|| AppError::invalid("survey", "is required"))?;
    let mut errors = Vec::new();
    let (name, question, low_label, high_label) = texts(&s, &mut errors);
    let scale = kind(s.kind, "survey.kind").and_then(|k| Scale::parse(k, s.scale_max).map_err(|e| e.within("survey")));
    let follow_up = follow_up_rule(&s.follow_up);
    let policy = policy(&s.policy).validate().map_err(|e| e.within("survey"));
    for r in [scale.as_ref().err(), follow_up.as_ref().err(), policy.as_ref().err()].into_iter().flatten() {
        if let AppError::InvalidArgument(v) = r {
            errors.extend(v.iter().cloned());
        }
    }
    if !errors.is_empty() {
        return Err(AppError::InvalidArgument(errors));
    }
    let (scale, follow_up, policy) = (scale?, follow_up?, policy?);
    follow_up.validate(scale).map_err(|e| e.within("survey"))?;
    let branding = branding(&s).validate("survey.branding.", "survey.language")?;
    Ok(model::SurveyDraft {
        scale,
        name,
        question,
        low_label,
        high_label,
        policy,
        follow_up,
        in_app: s.in_app,
        branding,
    })
}

/// The branding fields of a survey message (not yet checked).
fn branding(s: &pb::Survey) -> model::Branding {
    let b = s.branding.clone().unwrap_or_default();
    model::Branding {
        display_name: b.display_name,
        accent_color: b.accent_color,
        logo_url: b.logo_url,
        language: s.language.clone(),
    }
}

pub fn pb_branding(b: &model::Branding) -> pb::Branding {
    pb::Branding {
        display_name: b.display_name.clone(),
        accent_color: b.accent_color.clone(),
        logo_url: b.logo_url.clone(),
    }
}

/// An `UpdateSurvey` mask and values, as a patch.
pub fn survey_patch(s: Option<pb::Survey>, mask: Option<prost_types::FieldMask>) -> Result<model::SurveyPatch> {
    let s = s.ok_or_else(|| AppError::invalid("survey", "is required"))?;
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(AppError::invalid("update_mask", "name at least one field to change"));
    }
    let mut errors = Vec::new();
    let (name, question, low_label, high_label) = texts(&s, &mut errors);
    let p = s.policy.unwrap_or_default();
    let f = s.follow_up.clone().unwrap_or_default();
    let b = branding(&s);
    let mut patch = model::SurveyPatch::default();
    for path in &paths {
        match path.as_str() {
            "name" => patch.name = Some(name.clone()),
            "question" => {
                if s.question.trim().is_empty() {
                    errors.push(crate::error::FieldViolation {
                        field: "survey.question".into(),
                        description: "is required".into(),
                    });
                }
                patch.question = Some(question.clone())
            }
            "low_label" => patch.low_label = Some(low_label.clone()),
            "high_label" => patch.high_label = Some(high_label.clone()),
            "in_app" => patch.in_app = Some(s.in_app),
            "policy" => {
                patch.days_after_invitation_this_survey = Some(p.days_after_invitation_this_survey);
                patch.days_after_invitation_any_survey = Some(p.days_after_invitation_any_survey);
                patch.days_after_response_this_survey = Some(p.days_after_response_this_survey);
                patch.days_after_response_any_survey = Some(p.days_after_response_any_survey);
                patch.invitation_expiry_days = Some(p.invitation_expiry_days);
            }
            "policy.days_after_invitation_this_survey" => {
                patch.days_after_invitation_this_survey = Some(p.days_after_invitation_this_survey)
            }
            "policy.days_after_invitation_any_survey" => {
                patch.days_after_invitation_any_survey = Some(p.days_after_invitation_any_survey)
            }
            "policy.days_after_response_this_survey" => {
                patch.days_after_response_this_survey = Some(p.days_after_response_this_survey)
            }
            "policy.days_after_response_any_survey" => {
                patch.days_after_response_any_survey = Some(p.days_after_response_any_survey)
            }
            "policy.invitation_expiry_days" => patch.invitation_expiry_days = Some(p.invitation_expiry_days),
            "follow_up"
            | "follow_up.threshold"
            | "follow_up.customer_condition"
            | "follow_up.sla_hours"
            | "follow_up.disabled" => {
                let whole = path == "follow_up";
                if whole || path == "follow_up.threshold" {
                    patch.follow_up_threshold = Some(f.threshold);
                }
                if whole || path == "follow_up.customer_condition" {
                    patch.follow_up_condition =
                        Some(props(&f.customer_condition, "survey.follow_up.customer_condition")?);
                }
                if whole || path == "follow_up.sla_hours" {
                    patch.follow_up_sla_hours = Some(f.sla_hours);
                }
                if whole || path == "follow_up.disabled" {
                    patch.follow_up_disabled = Some(f.disabled);
                }
            }
            // Checked as a whole when the patch is applied.
            "branding" => {
                patch.display_name = Some(b.display_name.clone());
                patch.accent_color = Some(b.accent_color.clone());
                patch.logo_url = Some(b.logo_url.clone());
            }
            "branding.display_name" => patch.display_name = Some(b.display_name.clone()),
            "branding.accent_color" => patch.accent_color = Some(b.accent_color.clone()),
            "branding.logo_url" => patch.logo_url = Some(b.logo_url.clone()),
            "language" => patch.language = Some(b.language.clone()),
            "kind" | "scale_max" => errors.push(crate::error::FieldViolation {
                field: "update_mask".into(),
                description: format!("{path} cannot change after creation; create a new survey"),
            }),
            other => errors.push(crate::error::FieldViolation {
                field: "update_mask".into(),
                description: format!("unknown or read-only field {:?}", crate::domain::input::quote_prefix(other)),
            }),
        }
    }
    // Only the fields named in the mask are checked.
    errors.retain(|e| {
        let f = e.field.trim_start_matches("survey.");
        e.field == "update_mask" || paths.iter().any(|p| p == f)
    });
    if !errors.is_empty() {
        return Err(AppError::InvalidArgument(errors));
    }
    Ok(patch)
}

pub fn pb_survey(s: &Survey) -> pb::Survey {
    pb::Survey {
        id: s.id.0.clone(),
        kind: pb_kind(s.scale.kind) as i32,
        name: s.name.clone(),
        question: s.question.clone(),
        scale_max: Some(s.scale.max),
        scale_min: s.scale.min(),
        low_label: s.low_label.clone(),
        high_label: s.high_label.clone(),
        policy: Some(pb::EligibilityPolicy {
            days_after_invitation_this_survey: s.policy.days_after_invitation_this_survey,
            days_after_invitation_any_survey: s.policy.days_after_invitation_any_survey,
            days_after_response_this_survey: s.policy.days_after_response_this_survey,
            days_after_response_any_survey: s.policy.days_after_response_any_survey,
            invitation_expiry_days: s.policy.invitation_expiry_days,
        }),
        follow_up: Some(pb::FollowUpRule {
            threshold: s.follow_up.threshold,
            customer_condition: pb_props(&s.follow_up.customer_condition),
            sla_hours: s.follow_up.sla_hours,
            disabled: s.follow_up.disabled,
        }),
        in_app: s.in_app,
        archived: s.archived_at.is_some(),
        create_time: Some(ts(s.created_at)),
        update_time: Some(ts(s.updated_at)),
        archive_time: opt_ts(s.archived_at),
        branding: Some(pb_branding(&s.branding)),
        language: s.branding.language.clone(),
    }
}

/// The form of `s` as the hosted page and the widget show it, with `branding` (the
/// survey's, with the tenant's defaults filled in).
pub fn pb_form(s: &Survey, branding: &model::Branding) -> pb::SurveyForm {
    pb::SurveyForm {
        branding: Some(pb_branding(branding)),
        language: branding.language.clone(),
        survey_id: s.id.0.clone(),
        kind: pb_kind(s.scale.kind) as i32,
        question: s.question.clone(),
        scale_min: s.scale.min(),
        scale_max: s.scale.max,
        low_label: s.low_label.clone(),
        high_label: s.high_label.clone(),
    }
}

pub fn pb_eligibility(e: &Eligibility) -> pb::Eligibility {
    pb::Eligibility {
        eligible: e.eligible,
        rule: e.rule.map(pb_rule).unwrap_or(pb::EligibilityRule::Unspecified) as i32,
        blocking_rules: e
            .blocking
            .iter()
            .map(|(r, until)| pb::BlockingRule { rule: pb_rule(*r) as i32, until: opt_ts(*until) })
            .collect(),
        next_eligible_at: opt_ts(e.next_eligible_at),
    }
}

pub fn pb_invitation(i: &Invitation, now: Timestamp) -> pb::Invitation {
    pb::Invitation {
        id: i.id.0.clone(),
        survey_id: i.survey_id.0.clone(),
        customer_id: i.customer.0.clone(),
        channel: pb_channel(i.channel) as i32,
        status: match i.status(now) {
            InvitationStatus::Pending => pb::InvitationStatus::Pending,
            InvitationStatus::Answered => pb::InvitationStatus::Answered,
            InvitationStatus::Expired => pb::InvitationStatus::Expired,
            InvitationStatus::Dismissed => pb::InvitationStatus::Dismissed,
        } as i32,
        forced: i.forced,
        issue_time: Some(ts(i.issued_at)),
        expire_time: Some(ts(i.expires_at)),
        response_id: i.response_id.as_ref().map(|r| r.0.clone()).unwrap_or_default(),
        dismiss_time: opt_ts(i.dismissed_at),
    }
}

pub fn pb_definition(scale: Scale) -> pb::MetricDefinition {
    pb::MetricDefinition {
        kind: pb_kind(scale.kind) as i32,
        scale_min: scale.min(),
        scale_max: scale.max,
        buckets: scale
            .bucket_ranges()
            .into_iter()
            .map(|r| pb::BucketRange { bucket: pb_bucket(r.bucket) as i32, min: r.min, max: r.max })
            .collect(),
        formula: scale.formula().into(),
        interval_method: scale.interval_method().into(),
    }
}

pub fn pb_response(r: &Response) -> pb::Response {
    pb::Response {
        id: r.id.0.clone(),
        survey_id: r.survey_id.0.clone(),
        customer_id: r.customer.0.clone(),
        invitation_id: r.invitation_id.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
        kind: pb_kind(r.scale.kind) as i32,
        score: r.score,
        bucket: pb_bucket(r.bucket) as i32,
        definition: Some(pb_definition(r.scale)),
        comment: r.comment.clone(),
        properties: pb_props(&r.properties),
        record_time: Some(ts(r.recorded_at)),
        update_time: Some(ts(r.updated_at)),
        follow_up_id: r.follow_up_id.as_ref().map(|f| f.0.clone()).unwrap_or_default(),
    }
}

fn ci(i: Option<Interval>) -> Option<pb::ConfidenceInterval> {
    i.map(|i| pb::ConfidenceInterval { level: 0.95, lower: i.lower, upper: i.upper })
}

pub fn pb_summary(s: &Summary) -> pb::ScoreSummary {
    pb::ScoreSummary {
        n: s.n,
        bucket_counts: s
            .bucket_counts
            .iter()
            .map(|(b, n)| pb::BucketCount { bucket: pb_bucket(*b) as i32, count: *n })
            .collect(),
        headline: s.headline,
        headline_interval: ci(s.headline_interval),
        mean: s.mean,
        mean_interval: ci(s.mean_interval),
    }
}

pub fn pb_metrics(m: &model::SurveyMetrics) -> pb::GetSurveyMetricsResponse {
    pb::GetSurveyMetricsResponse {
        definition: Some(pb_definition(m.scale)),
        summary: Some(pb_summary(&m.summary)),
        series: m
            .series
            .iter()
            .enumerate()
            .map(|(i, (from, to, s))| {
                let flags = m.series_flags.get(i);
                pb::SeriesPoint {
                    start_time: Some(ts(*from)),
                    end_time: Some(ts(*to)),
                    summary: Some(pb_summary(s)),
                    change: flags.and_then(pb_point_change),
                    control_limits: flags.and_then(pb_control_limits),
                }
            })
            .collect(),
        funnel: Some(pb::Funnel {
            issued: m.funnel.issued,
            suppressed: m.funnel.suppressed(),
            suppressed_by_rule: m
                .funnel
                .suppressed_by_rule
                .iter()
                .map(|(r, n)| pb::RuleCount { rule: pb_rule(*r) as i32, count: *n })
                .collect(),
            expired: m.funnel.expired,
            answered: m.funnel.answered,
            pending: m.funnel.pending,
            response_rate: m.funnel.response_rate(),
        }),
        start_time: Some(ts(m.start)),
        end_time: Some(ts(m.end)),
    }
}

pub fn pb_follow_up(f: &model::FollowUp) -> pb::FollowUp {
    pb::FollowUp {
        id: f.id.0.clone(),
        response_id: f.response.id.0.clone(),
        survey_id: f.response.survey_id.0.clone(),
        customer_id: f.response.customer.0.clone(),
        status: pb_status(f.status) as i32,
        priority: pb_priority(f.priority) as i32,
        assignee: f.assignee.clone(),
        due_time: Some(ts(f.due_at)),
        overdue: f.overdue_at.is_some(),
        resolution: f.resolution.clone(),
        answer: Some(pb::LatestAnswer {
            score: f.response.score,
            bucket: pb_bucket(f.response.bucket) as i32,
            comment: f.response.comment.clone(),
            record_time: Some(ts(f.response.recorded_at)),
            update_time: Some(ts(f.response.updated_at)),
            at_or_under_threshold: f.at_or_under_threshold,
        }),
        entries: f
            .entries
            .iter()
            .map(|e| pb::FollowUpEntry {
                kind: match e.kind {
                    model::EntryKind::Note => pb::EntryKind::Note,
                    model::EntryKind::StatusChange => pb::EntryKind::StatusChange,
                    model::EntryKind::Assignment => pb::EntryKind::Assignment,
                    model::EntryKind::Priority => pb::EntryKind::Priority,
                    model::EntryKind::System => pb::EntryKind::System,
                } as i32,
                time: Some(ts(e.at)),
                author: e.author.clone(),
                body: e.body.clone(),
                from_status: e.from_status.map(pb_status).unwrap_or(pb::FollowUpStatus::Unspecified) as i32,
                to_status: e.to_status.map(pb_status).unwrap_or(pb::FollowUpStatus::Unspecified) as i32,
            })
            .collect(),
        open_time: Some(ts(f.opened_at)),
        acknowledge_time: opt_ts(f.acknowledged_at),
        resolve_time: opt_ts(f.resolved_at),
        dismiss_time: opt_ts(f.dismissed_at),
        reopen_time: opt_ts(f.reopened_at),
        update_time: Some(ts(f.updated_at)),
    }
}

/// The change of a series point from the previous one, when compared.
fn pb_point_change(f: &PointFlags) -> Option<pb::PointChange> {
    match (f.change, f.difference, f.p_value) {
        (Change::None, _, _) => None,
        (change, Some(difference), Some(p_value)) => {
            Some(pb::PointChange { difference, p_value, significant: matches!(change, Change::Up | Change::Down) })
        }
        _ => None,
    }
}

/// A series point's control limits, when it has answers.
fn pb_control_limits(f: &PointFlags) -> Option<pb::ControlLimits> {
    f.band.map(|b| pb::ControlLimits { centre: b.centre, lower: b.lower, upper: b.upper, outside: f.outside_band })
}
