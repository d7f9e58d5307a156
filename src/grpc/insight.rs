//! `rapport.v1.InsightService`, and its proto ⇄ domain conversions (docs/insight.md).
//! Also the series additions of `GetSurveyMetrics` (a point's change and control
//! limits), which `convert::pb_metrics` takes from here.

use tonic::Request;

use super::convert::{self as c, opt_ts, ts};
use super::gate::principal;
use super::pb::{self, insight_service_server::InsightService};
use super::{R, ok};
use crate::domain::engagement::{date_of, day_start};
use crate::domain::engagement_profile::Band;
use crate::domain::insight::account::{AccountProfile, Component, Ranking, RiskFlag};
use crate::domain::insight::compare::{Comparison, Verdict};
use crate::domain::insight::themes::TermKind;
use crate::domain::listing::PageRequest;
use crate::domain::stats::Interval;
use crate::domain::time::Timestamp;
use crate::domain::{SurveyId, input, model};
use crate::error::{AppError, Result};
use crate::service::Services;
use crate::service::insight::{
    AccountListRequest, CompareOut, CompareRequest, DriversOut, DriversRequest, SampleOut, SampleSpec, ThemesOut,
    ThemesRequest,
};
use crate::service::metrics::MetricScope;

/// Most characters of an account id (as `UpsertCustomer`).
const MAX_ACCOUNT_CHARS: usize = 128;
/// Most themes per side.
const MAX_THEMES: i32 = 100;
/// Largest `min_count` of themes.
const MAX_MIN_COUNT: i32 = 1_000;
/// Largest `min_contacts` filter.
const MAX_MIN_CONTACTS: i32 = 1_000_000;

/// The insight API over gRPC.
#[derive(Clone)]
pub struct InsightApi {
    svc: Services,
}

impl InsightApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

fn scope(survey_id: Option<String>, kind: Option<i32>) -> Result<MetricScope> {
    match (survey_id, kind) {
        (Some(id), _) => Ok(MetricScope::Survey(SurveyId::parse(&id, "survey_id")?)),
        (None, Some(k)) => Ok(MetricScope::Kind(c::kind(k, "kind")?)),
        (None, None) => Err(AppError::invalid("scope", "give a survey_id or a kind")),
    }
}

fn sample(s: Option<pb::Sample>, field: &str) -> Result<SampleSpec> {
    let s = s.unwrap_or_default();
    Ok(SampleSpec {
        start: c::parse_opt_ts(&s.start_time, &format!("{field}.start_time"))?,
        end: c::parse_opt_ts(&s.end_time, &format!("{field}.end_time"))?,
        filter: c::props(&s.filter, &format!("{field}.filter"))?,
        label: s.label,
    })
}

fn band(raw: i32, field: &str) -> Result<Band> {
    match pb::HealthBand::try_from(raw) {
        Ok(pb::HealthBand::Red) => Ok(Band::Red),
        Ok(pb::HealthBand::Yellow) => Ok(Band::Yellow),
        Ok(pb::HealthBand::Green) => Ok(Band::Green),
        Ok(pb::HealthBand::Unknown) => Ok(Band::Unknown),
        _ => Err(AppError::invalid(field, "is not a known band")),
    }
}

fn risk(raw: i32, field: &str) -> Result<RiskFlag> {
    match pb::AccountRiskFlag::try_from(raw) {
        Ok(pb::AccountRiskFlag::ChampionDetractor) => Ok(RiskFlag::ChampionDetractor),
        Ok(pb::AccountRiskFlag::ActivityDown) => Ok(RiskFlag::ActivityDown),
        Ok(pb::AccountRiskFlag::NoRecentResponse) => Ok(RiskFlag::NoRecentResponse),
        Ok(pb::AccountRiskFlag::Inactive) => Ok(RiskFlag::Inactive),
        Ok(pb::AccountRiskFlag::OverdueFollowUp) => Ok(RiskFlag::OverdueFollowUp),
        _ => Err(AppError::invalid(field, "is not a known risk flag")),
    }
}

fn bounded(v: i32, max: i32, field: &str) -> Result<i32> {
    if (0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(AppError::invalid(field, format!("must be from 0 to {max}; got {v}")))
    }
}

#[tonic::async_trait]
impl InsightService for InsightApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "GetAccountProfile"))]
    async fn get_account_profile(&self, req: Request<pb::GetAccountProfileRequest>) -> R<pb::AccountProfile> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let account = input::text("account_id", &r.account_id, MAX_ACCOUNT_CHARS, true)?;
        let as_of = c::parse_opt_ts(&r.as_of, "as_of")?;
        ok(pb_account(&self.svc.account_profile(&p, &account, as_of, r.window_days).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListAccounts"))]
    async fn list_accounts(&self, req: Request<pb::ListAccountsRequest>) -> R<pb::ListAccountsResponse> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let offset = match &page.after {
            None => 0,
            Some(a) => {
                a.parse::<u64>().map_err(|_| AppError::invalid("page_token", "is not a token this service issued"))?
            }
        };
        let ranking = match pb::AccountRanking::try_from(r.rank_by) {
            Ok(pb::AccountRanking::Unspecified) | Ok(pb::AccountRanking::Health) => Ranking::Health,
            Ok(pb::AccountRanking::Risk) => Ranking::Risk,
            Ok(pb::AccountRanking::Revenue) => Ranking::Revenue,
            Err(_) => return Err(AppError::invalid("rank_by", "is not a known ranking").into()),
        };
        let ascending = match pb::RankOrder::try_from(r.order) {
            Ok(pb::RankOrder::Unspecified) => None,
            Ok(pb::RankOrder::Descending) => Some(false),
            Ok(pb::RankOrder::Ascending) => Some(true),
            Err(_) => return Err(AppError::invalid("order", "is not a known order").into()),
        };
        if r.bands.len() > 4 {
            return Err(AppError::invalid("bands", "at most 4").into());
        }
        if r.risks.len() > 5 {
            return Err(AppError::invalid("risks", "at most 5").into());
        }
        let parsed = AccountListRequest {
            ranking,
            ascending,
            as_of: c::parse_opt_ts(&r.as_of, "as_of")?,
            window_days: r.window_days,
            bands: r.bands.iter().enumerate().map(|(i, b)| band(*b, &format!("bands[{i}]"))).collect::<Result<_>>()?,
            risks: r.risks.iter().enumerate().map(|(i, f)| risk(*f, &format!("risks[{i}]"))).collect::<Result<_>>()?,
            min_contacts: i64::from(bounded(r.min_contacts, MAX_MIN_CONTACTS, "min_contacts")?),
            page_size: page.size,
            offset,
        };
        let size = parsed.page_size;
        let out = self.svc.list_accounts(&p, parsed).await?;
        let token = PageRequest { size, after: None };
        ok(pb::ListAccountsResponse {
            accounts: out.accounts.iter().map(pb_account).collect(),
            next_page_token: match out.next_offset {
                Some(o) => token.next_token(size as usize, Some(&o.to_string())),
                None => String::new(),
            },
            total_size: out.total,
            definition: out.definition,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "CompareSurveyMetrics"))]
    async fn compare_survey_metrics(
        &self,
        req: Request<pb::CompareSurveyMetricsRequest>,
    ) -> R<pb::CompareSurveyMetricsResponse> {
        use pb::compare_survey_metrics_request::Scope;
        let p = principal(&req)?;
        let r = req.into_inner();
        let scope = match r.scope {
            Some(Scope::SurveyId(id)) => scope(Some(id), None)?,
            Some(Scope::Kind(k)) => scope(None, Some(k))?,
            None => scope(None, None)?,
        };
        let parsed = CompareRequest { scope, first: sample(r.first, "first")?, second: sample(r.second, "second")? };
        ok(pb_compare(&self.svc.compare_survey_metrics(&p, parsed).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "CommentThemes"))]
    async fn comment_themes(&self, req: Request<pb::CommentThemesRequest>) -> R<pb::CommentThemesResponse> {
        use pb::comment_themes_request::Scope;
        let p = principal(&req)?;
        let r = req.into_inner();
        let scope = match r.scope {
            Some(Scope::SurveyId(id)) => scope(Some(id), None)?,
            Some(Scope::Kind(k)) => scope(None, Some(k))?,
            None => scope(None, None)?,
        };
        let language = input::text("language", &r.language, 35, false)?;
        if !language.is_empty() && !model::is_language_tag(&language) {
            return Err(
                AppError::invalid("language", "must be a BCP 47 language tag such as \"de\" or \"pt-BR\"").into()
            );
        }
        let parsed = ThemesRequest {
            scope,
            start: c::parse_opt_ts(&r.start_time, "start_time")?,
            end: c::parse_opt_ts(&r.end_time, "end_time")?,
            filter: c::props(&r.filter, "filter")?,
            limit: match bounded(r.limit, MAX_THEMES, "limit")? {
                0 => 20,
                n => n as usize,
            },
            min_count: match bounded(r.min_count, MAX_MIN_COUNT, "min_count")? {
                0 => 2,
                n => i64::from(n),
            },
            language: (!language.is_empty()).then_some(language),
        };
        ok(pb_themes(&self.svc.comment_themes(&p, parsed).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetDrivers"))]
    async fn get_drivers(&self, req: Request<pb::GetDriversRequest>) -> R<pb::GetDriversResponse> {
        use pb::get_drivers_request::Scope;
        let p = principal(&req)?;
        let r = req.into_inner();
        let scope = match r.scope {
            Some(Scope::SurveyId(id)) => scope(Some(id), None)?,
            Some(Scope::Kind(k)) => scope(None, Some(k))?,
            None => scope(None, None)?,
        };
        let parsed = DriversRequest {
            scope,
            start: c::parse_opt_ts(&r.start_time, "start_time")?,
            end: c::parse_opt_ts(&r.end_time, "end_time")?,
            window_days: r.window_days,
        };
        ok(pb_drivers(&self.svc.drivers(&p, parsed).await?))
    }
}

// ---------------------------------------------------------------------------------
// Conversions.
// ---------------------------------------------------------------------------------

fn ci(i: Option<Interval>) -> Option<pb::ConfidenceInterval> {
    i.map(|i| pb::ConfidenceInterval { level: 0.95, lower: i.lower, upper: i.upper })
}

/// A measure with a window [start, end] (or a point in time when `days` is 0).
fn m(
    value: Option<f64>,
    count: Option<i64>,
    unit: &str,
    days: i32,
    start: Option<Timestamp>,
    end: Timestamp,
    definition: impl Into<String>,
) -> Option<pb::Measure> {
    Some(pb::Measure {
        value: value.or(count.map(|c| c as f64)),
        unit: unit.into(),
        window_days: days,
        start_time: opt_ts(start),
        end_time: Some(ts(end)),
        definition: definition.into(),
        count,
    })
}

fn pb_band(b: Band) -> pb::HealthBand {
    match b {
        Band::Red => pb::HealthBand::Red,
        Band::Yellow => pb::HealthBand::Yellow,
        Band::Green => pb::HealthBand::Green,
        Band::Unknown => pb::HealthBand::Unknown,
    }
}

fn pb_risk(f: RiskFlag) -> pb::AccountRiskFlag {
    match f {
        RiskFlag::ChampionDetractor => pb::AccountRiskFlag::ChampionDetractor,
        RiskFlag::ActivityDown => pb::AccountRiskFlag::ActivityDown,
        RiskFlag::NoRecentResponse => pb::AccountRiskFlag::NoRecentResponse,
        RiskFlag::Inactive => pb::AccountRiskFlag::Inactive,
        RiskFlag::OverdueFollowUp => pb::AccountRiskFlag::OverdueFollowUp,
    }
}

fn pb_component(c: Component) -> pb::AccountHealthComponentKind {
    match c {
        Component::Breadth => pb::AccountHealthComponentKind::Breadth,
        Component::Stickiness => pb::AccountHealthComponentKind::Stickiness,
        Component::Recency => pb::AccountHealthComponentKind::Recency,
        Component::Nps => pb::AccountHealthComponentKind::Nps,
        Component::Csat => pb::AccountHealthComponentKind::Csat,
        Component::Effort => pb::AccountHealthComponentKind::Effort,
        Component::FollowUps => pb::AccountHealthComponentKind::FollowUps,
    }
}

fn component_definition(c: Component) -> &'static str {
    match c {
        Component::Breadth => "100 × contacts active in the 30 days to as_of / contacts",
        Component::Stickiness => "100 × DAU/MAU of the account's contacts over the 30 days to as_of",
        Component::Recency => "100 × (1 − days since any contact was active / inactivity threshold), at least 0",
        Component::Nps => "(account NPS + 100) / 2",
        Component::Csat => "mean CSAT of the window as 100 × (score − 1) / (max − 1)",
        Component::Effort => "mean CES of the window as 100 × (score − 1) / (max − 1)",
        Component::FollowUps => "100 − 50 per open follow-up, 0 with an overdue one",
    }
}

pub(crate) fn pb_account(a: &AccountProfile) -> pb::AccountProfile {
    let tz: chrono_tz::Tz = a.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let as_of = a.as_of;
    let w = a.window_days;
    let wstart = Some(day_start(tz, a.as_of_day - w + 1));
    let s30 = Some(day_start(tz, a.as_of_day - 29));
    let v = &a.voice;
    let win =
        |value: Option<f64>, count: Option<i64>, unit: &str, def: &str| m(value, count, unit, w, wstart, as_of, def);
    let at = |value: Option<f64>, count: Option<i64>, unit: &str, def: &str| m(value, count, unit, 0, None, as_of, def);
    let voice = pb::AccountVoice {
        contacts: at(None, Some(v.contacts), "customers", "the account's customers, not erased, created by as_of"),
        respondents: win(None, Some(v.respondents), "customers", "contacts with an NPS answer in the window"),
        coverage: win(v.coverage, None, "ratio", "respondents / contacts"),
        nps: win(
            v.nps,
            None,
            "points",
            "100 × (promoters − detractors) / respondents, each respondent's latest NPS answer in the window",
        ),
        nps_interval: ci(v.nps_interval),
        promoters: win(None, Some(v.promoters), "customers", "respondents whose latest answer is 9–10"),
        passives: win(None, Some(v.passives), "customers", "respondents whose latest answer is 7–8"),
        detractors: win(None, Some(v.detractors), "customers", "respondents whose latest answer is 0–6"),
        detractors_by_role: v
            .by_role
            .iter()
            .map(|r| pb::RoleDetractors {
                role: r.role.clone(),
                respondents: r.respondents,
                detractors: r.detractors,
                detractor_customer_ids: r.detractor_ids.clone(),
            })
            .collect(),
        open_follow_ups: at(None, Some(v.open_follow_ups), "follow-ups", "follow-ups of contacts open at as_of"),
        overdue_follow_ups: at(
            None,
            Some(v.overdue_follow_ups),
            "follow-ups",
            "open follow-ups of contacts past their due time at as_of",
        ),
        csat_mean_percent: win(v.csat_mean_percent, None, "percent", "mean CSAT of the window on 0–100"),
        ces_mean_percent: win(v.ces_mean_percent, None, "percent", "mean CES of the window on 0–100"),
        last_response_time: opt_ts(v.last_response),
    };
    let ac = &a.activity;
    let last30 =
        |value: Option<f64>, count: Option<i64>, unit: &str, def: &str| m(value, count, unit, 30, s30, as_of, def);
    let activity = pb::AccountActivity {
        active_contacts: last30(None, Some(ac.active_contacts), "customers", "contacts with an event in the 30 days"),
        active_share: last30(ac.active_share, None, "ratio", "active contacts / contacts"),
        stickiness: last30(
            ac.stickiness,
            None,
            "ratio",
            "mean daily active contacts over the 30 days / active contacts (DAU/MAU)",
        ),
        active_days: win(None, Some(ac.active_days), "days", "days of the window with an event of any contact"),
        events: win(None, Some(ac.events), "events", "events of all contacts in the window"),
        core_actions: ac
            .core_actions
            .iter()
            .map(|(name, n)| pb::ActionCount {
                action: name.clone(),
                count: win(None, Some(*n), "events", &format!("{name} events of all contacts in the window")),
            })
            .collect(),
        last_seen_date: ac.last_seen.map(|d| date_of(d).to_string()).unwrap_or_default(),
        recency_days: at(None, ac.recency_days, "days", "days from the last day any contact was active to as_of's day"),
        events_last_30_days: last30(None, Some(ac.events_last_30), "events", "events of the 30 days to as_of"),
        events_previous_30_days: m(
            None,
            Some(ac.events_previous_30),
            "events",
            30,
            Some(day_start(tz, a.as_of_day - 59)),
            day_start(tz, a.as_of_day - 29),
            "events of the 30 days before the last 30",
        ),
    };
    let money = format!("{} minor units", a.value.currency);
    let value = pb::AccountValue {
        currency: a.value.currency.clone(),
        revenue: win(None, Some(a.value.revenue_minor), &money, "purchases of all contacts in the window"),
        purchases: win(None, Some(a.value.purchases), "purchases", "purchases of all contacts in the window"),
        lifetime_revenue: at(None, Some(a.value.lifetime_revenue_minor), &money, "all purchases of the contacts"),
        predicted_clv: at(
            Some(a.value.predicted_clv_minor),
            None,
            &money,
            "mean order value × purchases per month since the first contact's first active day × expected lifetime \
             (1 / the tenant's 30-day churn rate, at most 60 months) × profit margin",
        ),
    };
    let h = &a.health;
    let health = pb::AccountHealth {
        score: at(h.score, None, "score", "Σ(weight × component) / Σ weights over the components with data"),
        band: pb_band(h.band) as i32,
        components: h
            .components
            .iter()
            .map(|c| pb::AccountHealthComponent {
                kind: pb_component(c.component) as i32,
                weight: c.weight,
                value: at(c.value, None, "score", component_definition(c.component)),
                contribution: c.contribution,
            })
            .collect(),
        components_with_data: h.components_with_data as i32,
        min_components: h.min_components as i32,
        risks: h
            .risks
            .iter()
            .map(|r| pb::AccountRisk {
                flag: pb_risk(r.flag) as i32,
                detail: r.detail.clone(),
                customer_ids: r.customers.clone(),
            })
            .collect(),
    };
    pb::AccountProfile {
        account_id: a.account.clone(),
        as_of: Some(ts(as_of)),
        time_zone: a.time_zone.clone(),
        window_days: w,
        start_date: date_of(a.as_of_day - w + 1).to_string(),
        end_date: date_of(a.as_of_day).to_string(),
        voice: Some(voice),
        activity: Some(activity),
        value: Some(value),
        health: Some(health),
    }
}

fn pb_verdict(v: Verdict) -> pb::ChangeVerdict {
    match v {
        Verdict::Higher => pb::ChangeVerdict::Higher,
        Verdict::Lower => pb::ChangeVerdict::Lower,
        Verdict::NoDetectableChange => pb::ChangeVerdict::NoDetectableChange,
        Verdict::NotEnoughData => pb::ChangeVerdict::NotEnoughData,
    }
}

fn pb_difference(c: &Comparison, summary: &str, method: &str, unit: &str) -> pb::Difference {
    pb::Difference {
        first: c.a,
        second: c.b,
        difference: c.difference,
        interval: ci(c.test.map(|t| t.interval)),
        p_value: c.test.map(|t| t.p_value),
        statistic: c.test.map(|t| t.statistic),
        degrees_of_freedom: c.test.and_then(|t| t.df),
        verdict: pb_verdict(c.verdict) as i32,
        summary: summary.into(),
        method: method.into(),
        unit: unit.into(),
    }
}

fn pb_sample(s: &SampleOut) -> pb::SampleSummary {
    pb::SampleSummary {
        label: s.label.clone(),
        start_time: Some(ts(s.start)),
        end_time: Some(ts(s.end)),
        filter: c::pb_props(&s.filter),
        summary: Some(c::pb_summary(&s.summary)),
    }
}

fn pb_compare(o: &CompareOut) -> pb::CompareSurveyMetricsResponse {
    pb::CompareSurveyMetricsResponse {
        definition: Some(c::pb_definition(o.scale)),
        first: Some(pb_sample(&o.first)),
        second: Some(pb_sample(&o.second)),
        headline: Some(pb_difference(&o.headline, &o.headline_sentence, &o.headline_method, "points")),
        mean: Some(pb_difference(
            &o.mean,
            &o.mean_sentence,
            "Welch's t-test (unequal variances, Welch–Satterthwaite degrees of freedom)",
            "score",
        )),
        shared_responses: o.shared_responses,
    }
}

fn pb_themes(o: &ThemesOut) -> pb::CommentThemesResponse {
    let theme = |t: &crate::domain::insight::themes::Theme| pb::Theme {
        term: t.term.clone(),
        stem: t.stem.clone(),
        kind: match t.kind {
            TermKind::Word => pb::ThemeKind::Word,
            TermKind::Phrase => pb::ThemeKind::Phrase,
        } as i32,
        unhappy_comments: t.count_a,
        happy_comments: t.count_b,
        log_odds: t.log_odds,
        z_score: t.z,
        example_response_ids: t.examples.clone(),
    };
    pb::CommentThemesResponse {
        unhappy_themes: o.themes.over_a.iter().map(theme).collect(),
        happy_themes: o.themes.over_b.iter().map(theme).collect(),
        unhappy_comments: o.themes.comments_a,
        happy_comments: o.themes.comments_b,
        unhappy_bucket: c::pb_bucket(o.unhappy) as i32,
        happy_bucket: c::pb_bucket(o.happy) as i32,
        languages: o.languages.clone(),
        truncated: o.truncated,
        start_time: Some(ts(o.start)),
        end_time: Some(ts(o.end)),
        definition: "terms (Snowball stems of words, and pairs of neighbouring words) counted once per comment, \
                     ranked by the weighted log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi \
                     and Quinn 2008; prior: the pooled counts of both sides) and its z-score; |z| > 1.96 is the \
                     usual threshold, with no correction for the many terms tested"
            .into(),
    }
}

fn pb_drivers(o: &DriversOut) -> pb::GetDriversResponse {
    pb::GetDriversResponse {
        drivers: o
            .drivers
            .iter()
            .map(|d| pb::Driver {
                signal: d.signal.clone(),
                unit: d.unit.clone(),
                definition: d.definition.clone(),
                happy_customers: d.effect.n_promoters,
                unhappy_customers: d.effect.n_detractors,
                happy_mean: d.effect.mean_promoters,
                unhappy_mean: d.effect.mean_detractors,
                hedges_g: d.effect.hedges_g,
                hedges_g_interval: ci(d.effect.g_interval),
                correlation: d.effect.correlation,
                correlation_interval: ci(d.effect.correlation_interval),
                p_value: d.effect.p_value,
            })
            .collect(),
        customers: o.customers,
        happy_bucket: c::pb_bucket(o.happy) as i32,
        unhappy_bucket: c::pb_bucket(o.unhappy) as i32,
        start_time: Some(ts(o.start)),
        end_time: Some(ts(o.end)),
        window_days: o.window_days,
        warning: "These are associations between engagement and answers, not causes: a signal can go with happy \
                  customers because both follow from something else (plan, tenure, use case)."
            .into(),
    }
}
