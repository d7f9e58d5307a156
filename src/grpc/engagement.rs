//! `rapport.v1.EngagementService`, and its proto ⇄ domain conversions: every number
//! goes out as a `Measure` with its window and definition.

use chrono_tz::Tz;
use tonic::Request;

use super::convert::{self as c, opt_ts, ts};
use super::gate::principal;
use super::pb::{self, engagement_service_server::EngagementService};
use super::{R, ok};
use crate::domain::engagement::{
    self as eng, Bands, CustomerChange, CustomerRecord, Day, HealthWeights, RawEvent, RawKind, RiskThresholds,
    ScoringConfig, date_of, day_start,
};
use crate::domain::engagement_profile::{self as ep, Band, Component, Lifecycle, RiskFlag};
use crate::domain::listing::PageRequest;
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, input};
use crate::error::AppError;
use crate::service::Services;
use crate::service::engagement::EventOutcome;
use crate::service::engagement_read::{MetricsOut, ProfileOut, Ranking, SnapshotInfo, TopRequest};

/// The engagement API over gRPC.
#[derive(Clone)]
pub struct EngagementApi {
    svc: Services,
}

impl EngagementApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

#[tonic::async_trait]
impl EngagementService for EngagementApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "UpsertCustomer"))]
    async fn upsert_customer(&self, req: Request<pb::UpsertCustomerRequest>) -> R<pb::Customer> {
        let p = principal(&req)?;
        let (customer, change) = customer_change(req.into_inner())?;
        let out = self.svc.upsert_customer(&p, &customer, change).await?;
        ok(pb_customer(&out))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetCustomer"))]
    async fn get_customer(&self, req: Request<pb::GetCustomerRequest>) -> R<pb::Customer> {
        let p = principal(&req)?;
        let customer = CustomerRef::parse(&req.get_ref().customer_id, "customer_id")?;
        ok(pb_customer(&self.svc.get_customer(&p, &customer).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListCustomers"))]
    async fn list_customers(&self, req: Request<pb::ListCustomersRequest>) -> R<pb::ListCustomersResponse> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let account = (!r.account_id.is_empty()).then(|| r.account_id.clone());
        let props = c::props(&r.property_filter, "property_filter")?;
        let out = self.svc.list_customers(&p, account, props, page).await?;
        ok(pb::ListCustomersResponse {
            customers: out.items.iter().map(pb_customer).collect(),
            next_page_token: out.next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RecordEvents"))]
    async fn record_events(&self, req: Request<pb::RecordEventsRequest>) -> R<pb::RecordEventsResponse> {
        let p = principal(&req)?;
        let (raw, ids, bad_times) = raw_events(req.into_inner().events);
        let outcomes = self.svc.record_events(&p, raw).await?;
        ok(events_response(outcomes, ids, bad_times))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetScoringConfig"))]
    async fn get_scoring_config(&self, req: Request<pb::GetScoringConfigRequest>) -> R<pb::ScoringConfig> {
        let p = principal(&req)?;
        let (config, at) = self.svc.scoring_config(&p).await?;
        ok(pb_config(&config, at))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateScoringConfig"))]
    async fn update_scoring_config(&self, req: Request<pb::UpdateScoringConfigRequest>) -> R<pb::ScoringConfig> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let values = config_values(r.config.unwrap_or_default());
        let (config, at) = self.svc.update_scoring_config(&p, mask, values).await?;
        ok(pb_config(&config, at))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetEngagementProfile"))]
    async fn get_engagement_profile(&self, req: Request<pb::GetEngagementProfileRequest>) -> R<pb::EngagementProfile> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let customer = CustomerRef::parse(&r.customer_id, "customer_id")?;
        let as_of = c::parse_opt_ts(&r.as_of, "as_of")?;
        let out = self.svc.engagement_profile(&p, &customer, as_of).await?;
        ok(pb_profile(&out))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetEngagementMetrics"))]
    async fn get_engagement_metrics(&self, req: Request<pb::GetEngagementMetricsRequest>) -> R<pb::EngagementMetrics> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let as_of = c::parse_opt_ts(&r.as_of, "as_of")?;
        let out = self.svc.engagement_metrics(&p, r.window_days, as_of, r.cohort_months).await?;
        let tz = self.svc_tz(&out.time_zone);
        ok(pb_metrics(&out, tz))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListTopCustomers"))]
    async fn list_top_customers(&self, req: Request<pb::ListTopCustomersRequest>) -> R<pb::ListTopCustomersResponse> {
        let p = principal(&req)?;
        let parsed = top_request(req.into_inner())?;
        let page_size = parsed.page_size;
        let out = self.svc.top_customers(&p, parsed).await?;
        let token = PageRequest { size: page_size, after: None };
        let is_count = out.is_count;
        let (window_days, start_date, end_date) = match out.window {
            Some((days, start, end)) => (days, date_of(start).to_string(), date_of(end).to_string()),
            None => (0, String::new(), String::new()),
        };
        ok(pb::ListTopCustomersResponse {
            customers: out
                .customers
                .into_iter()
                .map(|(rank, (id, account, value))| pb::RankedCustomer {
                    rank: rank as i64,
                    customer_id: id,
                    account_id: account.unwrap_or_default(),
                    value,
                    count: is_count.then_some(value as i64),
                })
                .collect(),
            next_page_token: match out.next_offset {
                Some(o) => token.next_token(page_size as usize, Some(&o.to_string())),
                None => String::new(),
            },
            window_days,
            start_date,
            end_date,
            definition: out.definition,
            as_of_date: date_of(out.as_of_day).to_string(),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "TopPropertyValues"))]
    async fn top_property_values(
        &self,
        req: Request<pb::TopPropertyValuesRequest>,
    ) -> R<pb::TopPropertyValuesResponse> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let action = eng::action_name(&r.action, "action")?;
        let property = input::text("property", &r.property, input::MAX_PROPERTY_CHARS, true)?;
        let limit = match r.limit {
            0 => 10,
            n if (1..=1000).contains(&n) => n as u64,
            n => return Err(AppError::invalid("limit", format!("must be from 0 to 1 000; got {n}")).into()),
        };
        let as_of = c::parse_opt_ts(&r.as_of, "as_of")?;
        let out = self.svc.top_property_values(&p, &action, &property, r.window_days, as_of, limit).await?;
        ok(pb::TopPropertyValuesResponse {
            values: out
                .values
                .into_iter()
                .map(|(value, events, customers)| pb::PropertyValueCount { value, events, customers })
                .collect(),
            total_events: out.total,
            window_days: out.window_days,
            start_date: date_of(out.start).to_string(),
            end_date: date_of(out.end).to_string(),
            definition: format!(
                "events of {action} per value of its property {property} from {} to {} (tenant's calendar days), \
                 most frequent first; customers: distinct customers with such events",
                date_of(out.start),
                date_of(out.end)
            ),
        })
    }
}

impl EngagementApi {
    fn svc_tz(&self, name: &str) -> Tz {
        name.parse().unwrap_or(Tz::UTC)
    }
}

// ---------------------------------------------------------------------------------
// Conversions.
// ---------------------------------------------------------------------------------

fn date(d: Option<Day>) -> String {
    d.map(|d| date_of(d).to_string()).unwrap_or_default()
}

pub fn pb_customer(c: &CustomerRecord) -> pb::Customer {
    pb::Customer {
        customer_id: c.customer.0.clone(),
        account_id: c.account_id.clone().unwrap_or_default(),
        traits: Some(pb::CustomerTraits {
            email: c.traits.email.clone(),
            name: c.traits.name.clone(),
            plan: c.traits.plan.clone(),
            signup_time: opt_ts(c.traits.signup_at),
        }),
        properties: c::pb_props(&c.properties),
        unsubscribed: c.unsubscribed,
        create_time: Some(ts(c.created_at)),
        update_time: Some(ts(c.updated_at)),
        first_seen_date: date(c.first_day),
        last_seen_date: date(c.last_day),
    }
}

/// An `UpsertCustomer` request as the use-case takes it.
fn customer_change(r: pb::UpsertCustomerRequest) -> Result<(CustomerRef, CustomerChange), AppError> {
    let customer = CustomerRef::parse(&r.customer_id, "customer_id")?;
    let t = r.traits.unwrap_or_default();
    let change = CustomerChange {
        account_id: r.account_id,
        email: t.email,
        name: t.name,
        plan: t.plan,
        signup_at: c::parse_opt_ts(&t.signup_time, "traits.signup_time")?,
        properties: c::props(&r.properties, "properties")?,
    };
    Ok((customer, change))
}

/// A `ListTopCustomers` request as the use-case takes it.
fn top_request(r: pb::ListTopCustomersRequest) -> Result<TopRequest, AppError> {
    use pb::list_top_customers_request::Ranking as PbRanking;
    let ranking = match r.ranking {
        Some(PbRanking::EngagementScore(true)) => {
            if !r.property_key.is_empty() {
                return Err(AppError::invalid("property_key", "filters an action ranking only"));
            }
            Ranking::Score
        }
        Some(PbRanking::Action(a)) => {
            let name = eng::action_name(&a, "action")?;
            let property = match (r.property_key.is_empty(), r.property_value.is_empty()) {
                (true, true) => None,
                (false, _) => Some((
                    input::text("property_key", &r.property_key, input::MAX_PROPERTY_CHARS, true)?,
                    input::text("property_value", &r.property_value, input::MAX_PROPERTY_CHARS, false)?,
                )),
                (true, false) => {
                    return Err(AppError::invalid("property_key", "is required with property_value"));
                }
            };
            Ranking::Action { name, property }
        }
        _ => return Err(AppError::invalid("ranking", "set engagement_score to true or name an action")),
    };
    let page = PageRequest::parse(r.page_size, &r.page_token)?;
    let offset = match &page.after {
        None => 0,
        Some(a) => {
            a.parse::<u64>().map_err(|_| AppError::invalid("page_token", "is not a token this service issued"))?
        }
    };
    let ascending = match pb::RankOrder::try_from(r.order) {
        Ok(pb::RankOrder::Unspecified) | Ok(pb::RankOrder::Descending) => false,
        Ok(pb::RankOrder::Ascending) => true,
        Err(_) => return Err(AppError::invalid("order", "is not a known order")),
    };
    Ok(TopRequest {
        ranking,
        window_days: r.window_days,
        as_of: c::parse_opt_ts(&r.as_of, "as_of")?,
        include_zero: r.include_zero,
        ascending,
        page_size: if r.page_size == 0 { 10 } else { page.size },
        offset,
    })
}

/// The values of an update (unset fields are zero; the mask says which count).
fn config_values(p: pb::ScoringConfig) -> ScoringConfig {
    let hw = p.health_weights.unwrap_or_default();
    let b = p.health_bands.unwrap_or_default();
    let r = p.risk.unwrap_or_default();
    ScoringConfig {
        action_weights: p.action_weights.into_iter().collect(),
        half_life_days: p.half_life_days,
        core_actions: p.core_actions,
        profit_margin: p.profit_margin,
        health_weights: HealthWeights {
            engagement: hw.engagement,
            stickiness: hw.stickiness,
            recency: hw.recency,
            nps: hw.nps,
            csat: hw.csat,
            effort: hw.effort,
            follow_ups: hw.follow_ups,
        },
        min_health_components: p.min_health_components.max(0) as u32,
        bands: Bands { red_max: b.red_max, yellow_max: b.yellow_max },
        risk: RiskThresholds { inactive_days: r.inactive_days, activity_drop: r.activity_drop },
        inactivity_days: p.inactivity_days,
        currency: p.currency,
        time_zone: p.time_zone,
    }
}

pub fn pb_config(c: &ScoringConfig, at: Option<Timestamp>) -> pb::ScoringConfig {
    let w = c.health_weights;
    pb::ScoringConfig {
        action_weights: c.action_weights.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        half_life_days: c.half_life_days,
        core_actions: c.core_actions.clone(),
        profit_margin: c.profit_margin,
        health_weights: Some(pb::HealthWeights {
            engagement: w.engagement,
            stickiness: w.stickiness,
            recency: w.recency,
            nps: w.nps,
            csat: w.csat,
            effort: w.effort,
            follow_ups: w.follow_ups,
        }),
        min_health_components: c.min_health_components as i32,
        health_bands: Some(pb::HealthBands { red_max: c.bands.red_max, yellow_max: c.bands.yellow_max }),
        risk: Some(pb::RiskThresholds { inactive_days: c.risk.inactive_days, activity_drop: c.risk.activity_drop }),
        inactivity_days: c.inactivity_days,
        time_zone: c.time_zone.clone(),
        currency: c.currency.clone(),
        update_time: opt_ts(at),
    }
}

/// A window of days [start, end] up to `as_of`, for measures.
#[derive(Clone, Copy)]
struct Win {
    days: i32,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

impl Win {
    fn days(tz: Tz, days: i32, start: Day, as_of: Timestamp) -> Self {
        Win { days, start: Some(day_start(tz, start)), end: Some(as_of) }
    }
    fn at(as_of: Timestamp) -> Self {
        Win { days: 0, start: None, end: Some(as_of) }
    }
    fn all() -> Self {
        Win { days: 0, start: None, end: None }
    }
}

/// A measure of a number that need not be whole (a ratio, mean or score).
fn m(value: Option<f64>, unit: &str, w: Win, definition: impl Into<String>) -> Option<pb::Measure> {
    Some(pb::Measure {
        value,
        unit: unit.into(),
        window_days: w.days,
        start_time: opt_ts(w.start),
        end_time: opt_ts(w.end),
        definition: definition.into(),
        count: None,
    })
}

/// A measure of a whole number (a count or minor units): in `count`, and in `value`
/// as a double for compatibility.
fn mc(count: i64, unit: &str, w: Win, definition: impl Into<String>) -> Option<pb::Measure> {
    m(Some(count as f64), unit, w, definition).map(|x| pb::Measure { count: Some(count), ..x })
}

/// [`mc`] of a count that may be undefined.
fn mc_opt(count: Option<i64>, unit: &str, w: Win, definition: impl Into<String>) -> Option<pb::Measure> {
    match count {
        Some(c) => mc(c, unit, w, definition),
        None => m(None, unit, w, definition),
    }
}

fn pb_lifecycle(l: Option<Lifecycle>) -> pb::LifecycleState {
    match l {
        None => pb::LifecycleState::Unspecified,
        Some(Lifecycle::New) => pb::LifecycleState::New,
        Some(Lifecycle::Returning) => pb::LifecycleState::Returning,
        Some(Lifecycle::Resurrecting) => pb::LifecycleState::Resurrecting,
        Some(Lifecycle::Dormant) => pb::LifecycleState::Dormant,
        Some(Lifecycle::Inactive) => pb::LifecycleState::Inactive,
        Some(Lifecycle::NeverActive) => pb::LifecycleState::NeverActive,
    }
}

fn pb_nps(a: &ep::Answer) -> pb::NpsAnswer {
    pb::NpsAnswer { score: a.score, bucket: c::pb_bucket(a.bucket) as i32, record_time: Some(ts(a.at)) }
}

/// Where a profile is measured from: the tenant's time zone, `as_of` and its
/// calendar day there.
#[derive(Clone, Copy)]
struct Frame {
    tz: Tz,
    as_of: Timestamp,
    today: Day,
}

/// A customer's profile: its four parts, each converted by its own step below.
fn pb_profile(out: &ProfileOut) -> pb::EngagementProfile {
    let pr = &out.profile;
    let at = Frame { tz: pr.time_zone.parse().unwrap_or(Tz::UTC), as_of: pr.as_of, today: pr.as_of_day };
    pb::EngagementProfile {
        customer_id: out.customer.0.clone(),
        as_of: Some(ts(pr.as_of)),
        time_zone: pr.time_zone.clone(),
        voice: Some(pb_voice(&pr.voice, at)),
        activity: Some(pb_activity(&pr.activity, at)),
        engagement_score: Some(pb_engagement_score(&pr.engagement, out.snapshot, at)),
        value: Some(pb_value(&pr.value, at)),
        health: Some(pb_health(&pr.health, at)),
    }
}

/// The customer's answers, invitations and follow-ups.
fn pb_voice(v: &ep::Voice, at: Frame) -> pb::VoiceProfile {
    pb::VoiceProfile {
        latest_nps: v.latest_nps.as_ref().map(pb_nps),
        nps_history: v.nps_history.iter().map(pb_nps).collect(),
        windows: v.windows.iter().map(pb_voice_window).collect(),
        open_follow_ups: mc(
            v.open_follow_ups,
            "follow-ups",
            Win::at(at.as_of),
            "follow-ups open or acknowledged at as_of",
        ),
        overdue_follow_ups: mc(
            v.overdue_follow_ups,
            "follow-ups",
            Win::at(at.as_of),
            "open follow-ups past their due time at as_of",
        ),
        eligible_now: v.eligible_now,
        next_eligible_time: opt_ts(v.next_eligible),
    }
}

/// One window of answers: its bounds are instants, not calendar days.
fn pb_voice_window(w: &ep::VoiceWindow) -> pb::VoiceWindow {
    let win = Win { days: w.days, start: Some(w.start), end: Some(w.end) };
    pb::VoiceWindow {
        window_days: w.days,
        start_time: Some(ts(w.start)),
        end_time: Some(ts(w.end)),
        nps_answers: mc(w.nps_answers, "answers", win, "NPS answers recorded in the window"),
        csat_answers: mc(w.csat_answers, "answers", win, "CSAT answers recorded in the window"),
        csat_mean: m(
            w.csat_mean,
            "score",
            win,
            "mean CSAT score on the surveys' own scale; unset when they use different scales",
        ),
        csat_mean_percent: m(w.csat_mean_percent, "percent", win, "mean CSAT as 100 × (score − 1) / (scale max − 1)"),
        ces_answers: mc(w.ces_answers, "answers", win, "CES (effort) answers recorded in the window"),
        ces_mean: m(
            w.ces_mean,
            "score",
            win,
            "mean CES score on the surveys' own scale; unset when they use different scales",
        ),
        ces_mean_percent: m(w.ces_mean_percent, "percent", win, "mean CES as 100 × (score − 1) / (scale max − 1)"),
        invitations: mc(w.invitations, "invitations", win, "invitations issued in the window"),
        response_rate: m(w.response_rate, "ratio", win, "answered / issued, for the invitations issued in the window"),
    }
}

/// The customer's activity: per window of the tenant's calendar days, and its first week.
fn pb_activity(a: &ep::Activity, at: Frame) -> pb::ActivityProfile {
    pb::ActivityProfile {
        first_seen_date: date(a.first_seen),
        last_seen_date: date(a.last_seen),
        recency_days: mc_opt(
            a.recency_days,
            "days",
            Win::at(at.as_of),
            "calendar days from the last active day to as_of's day (tenant's time zone)",
        ),
        windows: a.windows.iter().map(|w| pb_activity_window(w, at)).collect(),
        first_week: a.first_week.as_ref().map(|fw| pb_first_week(fw, at)),
    }
}

fn pb_activity_window(w: &ep::ActivityWindow, at: Frame) -> pb::ActivityWindow {
    let win = Win::days(at.tz, w.days, w.start, at.as_of);
    pb::ActivityWindow {
        window_days: w.days,
        start_date: date_of(w.start).to_string(),
        end_date: date_of(w.end).to_string(),
        active_days: mc(w.active_days, "days", win, "days with at least one event"),
        stickiness: m(Some(w.stickiness), "ratio", win, format!("active days / {}", w.days)),
        events: mc(w.events, "events", win, "events of any kind"),
        actions: mc(w.actions, "events", win, "action events"),
        sessions: mc(w.sessions, "sessions", win, "session events (visits)"),
        total_session_seconds: mc(w.session_seconds, "seconds", win, "Σ activity seconds of the sessions"),
        mean_session_seconds: m(w.mean_session_seconds, "seconds", win, "total activity seconds / sessions"),
        visits_per_week: m(Some(w.visits_per_week), "per week", win, format!("sessions / ({} / 7)", w.days)),
        core_actions: w
            .core_actions
            .iter()
            .map(|(name, count)| pb::ActionCount {
                action: name.clone(),
                count: mc(*count, "events", win, format!("{name} events")),
            })
            .collect(),
        lifecycle: pb_lifecycle(w.lifecycle) as i32,
    }
}

/// The 7 days from the first active day, measured no later than `as_of`.
fn pb_first_week(fw: &ep::FirstWeek, at: Frame) -> pb::FirstWeek {
    let win =
        Win { days: 7, start: Some(day_start(at.tz, fw.start)), end: Some(day_start(at.tz, fw.end + 1).min(at.as_of)) };
    pb::FirstWeek {
        start_date: date_of(fw.start).to_string(),
        end_date: date_of(fw.end).to_string(),
        actions: mc(fw.actions, "events", win, "action events in the 7 days from the first active day"),
        active_days: mc(fw.active_days, "days", win, "active days in the 7 days from the first active day"),
        sessions: mc(fw.sessions, "sessions", win, "sessions in the 7 days from the first active day"),
    }
}

/// The decayed engagement score, and its percentile against the tenant's snapshot
/// (measured when the snapshot was taken; at `as_of` without one).
fn pb_engagement_score(e: &ep::EngagementScore, snapshot: Option<SnapshotInfo>, at: Frame) -> pb::EngagementScore {
    pb::EngagementScore {
        score: m(
            Some(e.score),
            "points",
            Win::all(),
            format!(
                "Σ Wᵢ·Nᵢ over the configured action weights, each day's events decayed by 2^(−age in days / {} days) at as_of's day",
                e.half_life_days
            ),
        ),
        percentile: m(
            e.percentile,
            "percentile",
            Win::at(snapshot.map(|s| s.taken_at).unwrap_or(at.as_of)),
            "100 × (customers with a lower score + half those with an equal one) / (ranked customers − 1), \
             against the snapshot taken at percentile_snapshot_time; unset with fewer than two customers",
        ),
        percentile_snapshot_time: snapshot.map(|s| ts(s.taken_at)),
        ranked_customers: snapshot.map(|s| s.population).unwrap_or(0),
        percentile_exact: snapshot.is_some_and(|s| s.exact),
    }
}

/// Revenue and lifetime value, in minor units of the tenant's currency.
fn pb_value(val: &ep::Value, at: Frame) -> pb::ValueProfile {
    let money = format!("{} minor units", val.currency);
    pb::ValueProfile {
        currency: val.currency.clone(),
        windows: val.windows.iter().map(|w| pb_value_window(w, &money, at)).collect(),
        lifetime_revenue: mc(val.lifetime_revenue_minor, &money, Win::all(), "Σ purchase amounts up to as_of"),
        lifetime_purchases: mc(val.lifetime_purchases, "purchases", Win::all(), "purchase events up to as_of"),
        mean_order_value: m(val.mean_order_minor, &money, Win::all(), "lifetime revenue / lifetime purchases"),
        historical_value: m(Some(val.historical_value_minor), &money, Win::all(), "lifetime revenue × profit margin"),
        purchases_per_month: m(
            Some(val.purchases_per_month),
            "per month",
            Win::all(),
            "lifetime purchases / max(1, days from the first active day to as_of / 30)",
        ),
        expected_lifetime_months: m(
            Some(val.expected_lifetime_months),
            "months",
            Win::at(at.as_of),
            "1 / the tenant's monthly churn rate (customers at the start of the 30 days to as_of who churned in \
             them / customers at the start), at most 60 (60 when no one churned)",
        ),
        predicted_clv: m(
            Some(val.predicted_clv_minor),
            &money,
            Win::all(),
            "mean order value × purchases per month × expected lifetime months × profit margin; 0 without purchases",
        ),
        profit_margin: val.profit_margin,
    }
}

fn pb_value_window(w: &ep::ValueWindow, money: &str, at: Frame) -> pb::ValueWindow {
    let win = Win::days(at.tz, w.days, w.start, at.as_of);
    pb::ValueWindow {
        window_days: w.days,
        start_date: date_of(w.start).to_string(),
        end_date: date_of(w.end).to_string(),
        revenue: mc(w.revenue_minor, money, win, "Σ purchase amounts"),
        purchases: mc(w.purchases, "purchases", win, "purchase events"),
        mean_order_value: m(w.mean_order_minor, money, win, "revenue / purchases"),
    }
}

/// The health score with its components, band, change over 30 days and risk flags.
fn pb_health(h: &ep::Health, at: Frame) -> pb::HealthProfile {
    const DEFINITION: &str = "Σ(weight × component) / Σ weights over the components with data (each 0–100): \
                              engagement percentile; stickiness 100 × active days of the last 30 / 30; recency \
                              100 × (1 − days since last active / inactivity days), at least 0; NPS latest score \
                              × 10; CSAT and effort mean of 100 × (score − 1) / (max − 1) over 90 days; \
                              follow-ups 100 − 50 per open one, 0 if one is overdue (with any answer on record)";
    pb::HealthProfile {
        score: m(h.score, "points", Win::at(at.as_of), DEFINITION),
        band: pb_band(h.band) as i32,
        components: h.components.iter().map(|cs| pb_health_component(cs, at)).collect(),
        components_with_data: h.components_with_data as i32,
        min_components: h.min_components as i32,
        score_30_days_before: m(
            h.score_30_days_before,
            "points",
            Win::at(at.as_of - chrono::Duration::days(30)),
            "the health score computed the same way 30 days before as_of",
        ),
        change: m(h.change, "points", Win::days(at.tz, 30, at.today - 30, at.as_of), "score − score 30 days before"),
        risks: h.risks.iter().map(|r| pb_risk(*r) as i32).collect(),
    }
}

fn pb_health_component(cs: &ep::ComponentScore, at: Frame) -> pb::HealthComponent {
    pb::HealthComponent {
        kind: pb_component_kind(cs.component) as i32,
        weight: cs.weight,
        value: m(cs.value, "points", Win::at(at.as_of), component_definition(cs.component)),
        contribution: cs.contribution,
    }
}

fn pb_band(b: Band) -> pb::HealthBand {
    match b {
        Band::Red => pb::HealthBand::Red,
        Band::Yellow => pb::HealthBand::Yellow,
        Band::Green => pb::HealthBand::Green,
        Band::Unknown => pb::HealthBand::Unknown,
    }
}

fn pb_component_kind(c: Component) -> pb::HealthComponentKind {
    match c {
        Component::Engagement => pb::HealthComponentKind::Engagement,
        Component::Stickiness => pb::HealthComponentKind::Stickiness,
        Component::Recency => pb::HealthComponentKind::Recency,
        Component::Nps => pb::HealthComponentKind::Nps,
        Component::Csat => pb::HealthComponentKind::Csat,
        Component::Effort => pb::HealthComponentKind::Effort,
        Component::FollowUps => pb::HealthComponentKind::FollowUps,
    }
}

fn pb_risk(r: RiskFlag) -> pb::RiskFlag {
    match r {
        RiskFlag::Inactive => pb::RiskFlag::Inactive,
        RiskFlag::ActivityDown => pb::RiskFlag::ActivityDown,
        RiskFlag::Detractor => pb::RiskFlag::Detractor,
        RiskFlag::OverdueFollowUp => pb::RiskFlag::OverdueFollowUp,
        RiskFlag::Silent => pb::RiskFlag::Silent,
    }
}

fn component_definition(c: Component) -> &'static str {
    match c {
        Component::Engagement => "the engagement score's percentile",
        Component::Stickiness => "100 × active days in the last 30 / 30",
        Component::Recency => "100 × (1 − days since last active / inactivity days), at least 0",
        Component::Nps => "latest NPS score × 10",
        Component::Csat => "mean of 100 × (score − 1) / (max − 1) over CSAT answers of the last 90 days",
        Component::Effort => "mean of 100 × (score − 1) / (max − 1) over CES answers of the last 90 days",
        Component::FollowUps => "100 − 50 per open follow-up, 0 when one is overdue; needs an answer on record",
    }
}

fn pb_metrics(out: &MetricsOut, tz: Tz) -> pb::EngagementMetrics {
    let x = &out.metrics;
    let as_of = out.as_of;
    let w = x.window_days;
    let win = Win::days(tz, w, out.start, as_of);
    let prev = Win { days: w, start: Some(day_start(tz, out.start - w)), end: Some(day_start(tz, out.start)) };
    let today = out.end;
    let money = format!("{} minor units", out.currency);
    pb::EngagementMetrics {
        as_of: Some(ts(as_of)),
        time_zone: out.time_zone.clone(),
        window_days: w,
        start_date: date_of(out.start).to_string(),
        end_date: date_of(out.end).to_string(),
        dau: mc(x.dau, "customers", Win::days(tz, 1, today, as_of), "customers with an event on as_of's day"),
        wau: mc(
            x.wau,
            "customers",
            Win::days(tz, 7, today - 6, as_of),
            "customers with an event in the 7 days to as_of",
        ),
        mau: mc(
            x.mau,
            "customers",
            Win::days(tz, 30, today - 29, as_of),
            "customers with an event in the 30 days to as_of",
        ),
        mean_dau: m(Some(x.mean_dau), "customers", win, "daily active customers averaged over the window's days"),
        stickiness: m(x.stickiness, "ratio", win, "mean DAU over the window / MAU"),
        new_customers: mc(x.new_customers, "customers", win, "customers whose first event falls in the window"),
        churned_customers: mc(
            x.churn.churned,
            "customers",
            win,
            "distinct customers who churned in the window: an active day d followed by the inactivity threshold's \
             days without an event, d + threshold in the window; each customer once, also those acquired in it",
        ),
        customers_at_start: mc(
            x.churn.at_start,
            "customers",
            Win::at(day_start(tz, out.start)),
            "customers active in the inactivity threshold's days before the window (not churned at its start)",
        ),
        churn_rate: m(
            x.churn_rate,
            "ratio",
            win,
            "customers at the start who churned in the window / customers at the start (0–1)",
        ),
        churned_from_start: mc(
            x.churn.churned_from_start,
            "customers",
            win,
            "customers at the start who churned in the window",
        ),
        churn_episodes: mc(
            x.churn.episodes,
            "episodes",
            win,
            "churn episodes in the window: days d + threshold inside it for an active day d followed by the \
             threshold's days without an event; a customer who churns twice counts twice",
        ),
        churn_episode_rate: m(
            x.churn_episode_rate,
            "ratio",
            win,
            "churn episodes / customers at the start; may exceed 1 (not a churn rate)",
        ),
        previously_active: mc(
            x.previous_active,
            "customers",
            prev,
            "customers active in the previous window of the same length",
        ),
        retained_customers: mc(
            x.retained,
            "customers",
            win,
            "customers of the previous window active again in this one",
        ),
        retention_rate: m(x.retention_rate, "ratio", win, "retained customers / previously active customers"),
        previous_revenue: mc(
            x.previous_revenue,
            &money,
            prev,
            "revenue of the customers who purchased in the previous window",
        ),
        retained_revenue: mc(x.retained_revenue, &money, win, "revenue in this window of the same customers"),
        net_revenue_retention: m(x.net_revenue_retention, "ratio", win, "retained revenue / previous revenue"),
        cohorts: out
            .cohorts
            .iter()
            .map(|ch| pb::Cohort {
                month: eng::month_label(ch.month),
                size: ch.size,
                active: ch.active.clone(),
                retention: ch.retention.clone(),
            })
            .collect(),
        currency: out.currency.clone(),
    }
}

/// Activity events as the domain takes them, their message ids, and the positions
/// of those whose time could not be converted (shared by RecordEvents and ImportEvents).
pub(super) fn raw_events(events: Vec<pb::ActivityEvent>) -> (Vec<RawEvent>, Vec<String>, Vec<usize>) {
    use pb::activity_event::Kind;
    let mut bad_times = Vec::new();
    let raw: Vec<RawEvent> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = match e.time.as_ref().map(|t| c::parse_ts(t, "time")) {
                Some(Ok(t)) => Some(t),
                Some(Err(_)) => {
                    bad_times.push(i);
                    None
                }
                None => None,
            };
            RawEvent {
                message_id: e.message_id,
                customer_id: e.customer_id,
                at,
                kind: match e.kind {
                    Some(Kind::Action(a)) => Some(RawKind::Action { name: a.name, properties: a.properties }),
                    Some(Kind::Session(s)) => Some(RawKind::Session { seconds: s.activity_seconds }),
                    Some(Kind::Purchase(x)) => {
                        Some(RawKind::Purchase { amount_minor: x.amount_minor, currency: x.currency })
                    }
                    None => None,
                },
            }
        })
        .collect();
    let ids = raw.iter().map(|e| e.message_id.clone()).collect();
    (raw, ids, bad_times)
}

/// The per-event results of a batch, in request order, with their totals.
pub(super) fn events_response(
    mut outcomes: Vec<EventOutcome>,
    ids: Vec<String>,
    bad_times: Vec<usize>,
) -> pb::RecordEventsResponse {
    for i in bad_times {
        outcomes[i] =
            EventOutcome::Rejected(eng::Rejection { field: "time".into(), reason: "is not a valid timestamp".into() });
    }
    let mut resp = pb::RecordEventsResponse::default();
    for (i, (o, id)) in outcomes.into_iter().zip(ids).enumerate() {
        let (st, field, reason) = match o {
            EventOutcome::Accepted => {
                resp.accepted += 1;
                (pb::ActivityEventStatus::Accepted, String::new(), String::new())
            }
            EventOutcome::Duplicate { same_payload } => {
                resp.duplicates += 1;
                let reason = match same_payload {
                    Some(true) => "already recorded with the same payload",
                    Some(false) => "already recorded with a different payload; the first one is kept",
                    None => "repeated within this batch; the first one is kept",
                };
                (pb::ActivityEventStatus::Duplicate, String::new(), reason.to_owned())
            }
            EventOutcome::Rejected(rej) => {
                resp.rejected += 1;
                (pb::ActivityEventStatus::Rejected, format!("events[{i}].{}", rej.field), rej.reason)
            }
        };
        resp.results.push(pb::ActivityEventResult {
            index: i as i32,
            message_id: id,
            status: st as i32,
            field,
            reason,
        });
    }
    resp
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::*;
    use crate::domain::engagement::day_of;
    use crate::domain::engagement_profile::{Answer, DayActivity, FollowUpTimes, ProfileInput};
    use crate::domain::survey::{Bucket, SurveyKind};

    fn at(d: u32, h: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 6, d, h, 0, 0).unwrap()
    }

    fn config() -> ScoringConfig {
        ScoringConfig {
            action_weights: [("login".to_owned(), 1.0), ("export".to_owned(), 3.0)].into(),
            currency: "EUR".into(),
            time_zone: "Europe/Berlin".into(),
            ..Default::default()
        }
    }

    /// A customer of a Berlin tenant active every third day of the last 60, with
    /// answers, a follow-up past due and purchases.
    fn sample(snapshot: Option<SnapshotInfo>) -> ProfileOut {
        let as_of = at(30, 12);
        let today = day_of(config().tz(), as_of);
        let days = (0..60)
            .step_by(3)
            .map(|n| DayActivity {
                day: today - n,
                events: 4,
                actions: 3,
                sessions: 1,
                session_seconds: 600,
                purchases: i64::from(n % 12 == 0),
                revenue_minor: if n % 12 == 0 { 2_500 } else { 0 },
                action_counts: [("login".to_owned(), 2), ("export".to_owned(), 1)].into(),
            })
            .collect();
        let answer = |kind, score, scale_max, bucket, at| Answer { kind, score, scale_max, bucket, at };
        let input = ProfileInput {
            config: config(),
            as_of,
            days,
            answers: vec![
                answer(SurveyKind::Nps, 3, 10, Bucket::Detractor, at(20, 9)),
                answer(SurveyKind::Csat, 4, 5, Bucket::Satisfied, at(25, 9)),
            ],
            follow_ups: vec![FollowUpTimes { opened_at: at(20, 9), due_at: at(22, 9), closed_at: None }],
            invitations: vec![(at(19, 9), true), (at(26, 9), false)],
            next_eligible: Some(at(30, 0) + chrono::Duration::days(10)),
            eligible_now: false,
            percentile: Some(62.5),
            percentile_30_days_before: Some(70.0),
            monthly_churn_rate: Some(0.05),
        };
        ProfileOut { customer: CustomerRef("crm-1".into()), profile: ep::profile(&input), snapshot }
    }

    fn snapshot() -> SnapshotInfo {
        SnapshotInfo { taken_at: at(30, 6), population: 40, exact: true }
    }

    /// Every `Measure` in `msg` (a message of the descriptor set), with its path.
    fn measures<M: prost::Message>(msg: &M, name: &str) -> Vec<(String, pb::Measure)> {
        use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage as _, Value};
        fn walk(msg: &DynamicMessage, path: &str, out: &mut Vec<(String, pb::Measure)>) {
            if msg.descriptor().full_name() == "rapport.v1.Measure" {
                out.push((path.to_owned(), msg.transcode_to().expect("a Measure")));
                return;
            }
            for (field, value) in msg.fields() {
                let path = format!("{path}.{}", field.name());
                match value {
                    Value::Message(m) => walk(m, &path, out),
                    Value::List(items) => {
                        for (i, item) in items.iter().enumerate() {
                            if let Value::Message(m) = item {
                                walk(m, &format!("{path}[{i}]"), out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("the descriptor set");
        let desc = pool.get_message_by_name(name).expect("a message of the descriptor set");
        let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice()).expect("decodes");
        let mut out = Vec::new();
        walk(&dynamic, "", &mut out);
        out
    }

    fn berlin_midnight(date: &str) -> prost_types::Timestamp {
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("a date");
        let local = chrono_tz::Europe::Berlin.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap()).unwrap();
        ts(local.with_timezone(&Utc))
    }

    #[test]
    fn every_measure_of_a_profile_has_a_unit_a_definition_and_a_window_in_order() {
        for out in [sample(Some(snapshot())), sample(None)] {
            let found = measures(&pb_profile(&out), "rapport.v1.EngagementProfile");
            assert!(found.len() > 60, "the sample fills every part: {} measures", found.len());
            for (path, m) in found {
                assert!(!m.unit.is_empty() && !m.definition.is_empty(), "{path}: {m:?}");
                if let Some(count) = m.count {
                    assert_eq!(m.value, Some(count as f64), "{path}: a count is its value too");
                }
                if let (Some(start), Some(end)) = (&m.start_time, &m.end_time) {
                    assert!(start.seconds <= end.seconds, "{path}: {m:?}");
                }
                if let Some(end) = &m.end_time {
                    assert!(end.seconds <= ts(out.profile.as_of).seconds, "{path} ends after as_of: {m:?}");
                }
            }
        }
    }

    #[test]
    fn activity_and_value_windows_start_at_midnight_in_the_tenants_zone_and_end_at_as_of() {
        let out = sample(None);
        let p = pb_profile(&out);
        let as_of = Some(ts(at(30, 12)));
        assert_eq!(p.time_zone, "Europe/Berlin");
        let activity = p.activity.expect("activity");
        assert_eq!(activity.windows.len(), out.profile.activity.windows.len());
        for w in &activity.windows {
            let active = w.active_days.as_ref().expect("active_days");
            assert_eq!(active.window_days, w.window_days);
            assert_eq!(active.start_time, Some(berlin_midnight(&w.start_date)), "{}", w.start_date);
            assert_eq!(active.end_time, as_of);
            assert_eq!(w.end_date, "2026-06-30");
            let login = w.core_actions.iter().find(|a| a.action == "login").expect("a weighted action is core");
            assert_eq!(login.count.as_ref().unwrap().definition, "login events");
        }
        let first_week = activity.first_week.expect("a first week");
        let actions = first_week.actions.expect("actions");
        assert_eq!((actions.window_days, actions.start_time), (7, Some(berlin_midnight(&first_week.start_date))));
        let value = p.value.expect("value");
        for w in &value.windows {
            let revenue = w.revenue.as_ref().expect("revenue");
            assert_eq!(revenue.start_time, Some(berlin_midnight(&w.start_date)));
            assert_eq!(revenue.end_time, as_of);
        }
    }

    #[test]
    fn money_is_in_minor_units_of_the_tenants_currency() {
        let value = pb_profile(&sample(None)).value.expect("value");
        assert_eq!(value.currency, "EUR");
        // Purchases of 25.00 on 5 of the active days (every 12th day from today).
        let revenue = value.lifetime_revenue.expect("lifetime_revenue");
        assert_eq!((revenue.count, revenue.unit.as_str()), (Some(12_500), "EUR minor units"));
        assert_eq!(value.lifetime_purchases.expect("lifetime_purchases").count, Some(5));
        assert_eq!(value.mean_order_value.expect("mean_order_value").value, Some(2_500.0));
        assert!(value.windows.iter().all(|w| w.mean_order_value.as_ref().unwrap().unit == "EUR minor units"));
    }

    #[test]
    fn the_percentile_is_measured_when_the_snapshot_was_taken() {
        let with = pb_profile(&sample(Some(snapshot()))).engagement_score.expect("engagement_score");
        assert_eq!(with.percentile.as_ref().and_then(|m| m.value), Some(62.5));
        assert_eq!(with.percentile.unwrap().end_time, Some(ts(at(30, 6))));
        assert_eq!(with.percentile_snapshot_time, Some(ts(at(30, 6))));
        assert_eq!((with.ranked_customers, with.percentile_exact), (40, true));
        let without = pb_profile(&sample(None)).engagement_score.expect("engagement_score");
        assert_eq!(without.percentile.unwrap().end_time, Some(ts(at(30, 12))));
        assert_eq!(
            (without.percentile_snapshot_time, without.ranked_customers, without.percentile_exact),
            (None, 0, false)
        );
        assert!(without.score.unwrap().definition.contains("/ 30 days"), "names the half-life");
    }

    #[test]
    fn health_keeps_the_band_the_components_and_the_risks() {
        let out = sample(None);
        let h = pb_profile(&out).health.expect("health");
        let domain = &out.profile.health;
        assert_eq!(h.band, pb_band(domain.band) as i32);
        assert_ne!(h.band, pb::HealthBand::Unspecified as i32);
        let kinds: Vec<i32> = domain.components.iter().map(|c| pb_component_kind(c.component) as i32).collect();
        assert_eq!(h.components.iter().map(|c| c.kind).collect::<Vec<_>>(), kinds);
        let nps = h.components.iter().find(|c| c.kind == pb::HealthComponentKind::Nps as i32).expect("NPS");
        assert_eq!(nps.value.as_ref().and_then(|m| m.value), Some(30.0), "the latest NPS answer × 10");
        // The sample's latest NPS answer is a 3 and its follow-up is past due.
        for flag in [pb::RiskFlag::Detractor, pb::RiskFlag::OverdueFollowUp] {
            assert!(h.risks.contains(&(flag as i32)), "{flag:?} in {:?}", h.risks);
        }
        let before = h.score_30_days_before.expect("score_30_days_before");
        assert_eq!(before.end_time, Some(ts(at(30, 12) - chrono::Duration::days(30))));
        assert_eq!(h.change.expect("change").start_time, Some(berlin_midnight("2026-05-31")));
    }

    #[test]
    fn voice_keeps_answers_follow_ups_and_eligibility() {
        let v = pb_profile(&sample(None)).voice.expect("voice");
        let latest = v.latest_nps.expect("latest_nps");
        assert_eq!((latest.score, latest.bucket), (3, pb::Bucket::Detractor as i32));
        assert_eq!(latest.record_time, Some(ts(at(20, 9))));
        assert_eq!(v.overdue_follow_ups.expect("overdue").count, Some(1));
        assert_eq!(v.open_follow_ups.expect("open").count, Some(1));
        assert!(!v.eligible_now);
        assert_eq!(v.next_eligible_time, Some(ts(at(30, 0) + chrono::Duration::days(10))));
        let widest = v.windows.iter().max_by_key(|w| w.window_days).expect("a window");
        let invitations = widest.invitations.as_ref().expect("invitations");
        assert_eq!((invitations.count, invitations.start_time), (Some(2), widest.start_time));
    }

    #[test]
    fn a_scoring_config_survives_the_round_trip_through_its_message() {
        let mut c = config();
        c.half_life_days = 14.0;
        c.core_actions = vec!["export".into()];
        c.profit_margin = 0.4;
        c.min_health_components = 2;
        c.bands.red_max = 35.0;
        c.risk.inactive_days = 21;
        c.inactivity_days = 45;
        let message = pb_config(&c, Some(at(1, 8)));
        assert_eq!(message.update_time, Some(ts(at(1, 8))));
        assert_eq!(config_values(message), c);
        let negative = pb::ScoringConfig { min_health_components: -3, ..Default::default() };
        assert_eq!(config_values(negative).min_health_components, 0);
    }

    fn violation<T: std::fmt::Debug>(r: Result<T, AppError>) -> String {
        match r {
            Err(AppError::InvalidArgument(v)) => v[0].field.clone(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_top_customers_request_defaults_to_ten_by_score_and_names_bad_fields() {
        use pb::list_top_customers_request::Ranking as R;
        let by_score = pb::ListTopCustomersRequest { ranking: Some(R::EngagementScore(true)), ..Default::default() };
        let t = top_request(by_score.clone()).expect("valid");
        assert!(matches!(t.ranking, Ranking::Score));
        assert_eq!((t.page_size, t.offset, t.ascending, t.include_zero), (10, 0, false, false));

        let token = PageRequest { size: 5, after: None }.next_token(5, Some("20"));
        let next = pb::ListTopCustomersRequest {
            ranking: Some(R::Action("export".into())),
            property_key: "plan".into(),
            property_value: "pro".into(),
            page_size: 5,
            page_token: token,
            order: pb::RankOrder::Ascending as i32,
            ..Default::default()
        };
        let t = top_request(next.clone()).expect("valid");
        assert_eq!((t.page_size, t.offset, t.ascending), (5, 20, true));
        match t.ranking {
            Ranking::Action { name, property } => {
                assert_eq!((name.as_str(), property), ("export", Some(("plan".into(), "pro".into()))))
            }
            other => panic!("{other:?}"),
        }

        let bad = |change: fn(&mut pb::ListTopCustomersRequest)| {
            let mut r = next.clone();
            change(&mut r);
            violation(top_request(r))
        };
        assert_eq!(bad(|r| r.ranking = None), "ranking");
        assert_eq!(bad(|r| r.ranking = Some(R::EngagementScore(false))), "ranking");
        assert_eq!(bad(|r| r.ranking = Some(R::EngagementScore(true))), "property_key");
        assert_eq!(bad(|r| r.property_key.clear()), "property_key");
        assert_eq!(bad(|r| r.order = 99), "order");
        assert_eq!(bad(|r| r.page_token = "not-ours".into()), "page_token");
        assert_eq!(
            bad(|r| r.page_token = PageRequest { size: 5, after: None }.next_token(5, Some("x"))),
            "page_token",
            "a token of another list"
        );
        assert_eq!(bad(|r| r.as_of = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 })), "as_of");
    }

    #[test]
    fn a_customer_upsert_names_its_bad_fields() {
        let good = pb::UpsertCustomerRequest {
            customer_id: "crm-1".into(),
            account_id: Some("acct".into()),
            traits: Some(pb::CustomerTraits {
                email: Some("a@example.com".into()),
                signup_time: Some(ts(at(1, 8))),
                ..Default::default()
            }),
            properties: [("plan".to_owned(), "pro".to_owned())].into(),
        };
        let (customer, change) = customer_change(good.clone()).expect("valid");
        assert_eq!(customer.0, "crm-1");
        assert_eq!((change.account_id.as_deref(), change.email.as_deref()), (Some("acct"), Some("a@example.com")));
        assert_eq!(change.signup_at, Some(at(1, 8)));
        assert_eq!(change.properties.get("plan").map(String::as_str), Some("pro"));

        let mut r = good.clone();
        r.customer_id.clear();
        assert_eq!(violation(customer_change(r)), "customer_id");
        let mut r = good;
        r.traits.as_mut().unwrap().signup_time = Some(prost_types::Timestamp { seconds: -1, nanos: 0 });
        assert_eq!(violation(customer_change(r)), "traits.signup_time");
    }

    #[test]
    fn an_unreadable_event_time_is_that_events_rejection_and_the_totals_add_up() {
        let event = |id: &str, seconds| pb::ActivityEvent {
            message_id: id.into(),
            customer_id: "crm-1".into(),
            time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            kind: None,
        };
        let (raw, ids, bad) = raw_events(vec![event("a", 1_780_000_000), event("b", i64::MAX), event("c", 0)]);
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(bad, [1]);
        assert_eq!(raw[0].at, Some(Utc.timestamp_opt(1_780_000_000, 0).unwrap()));
        assert_eq!(raw[1].at, None);

        let outcomes =
            vec![EventOutcome::Accepted, EventOutcome::Accepted, EventOutcome::Duplicate { same_payload: Some(false) }];
        let resp = events_response(outcomes, ids, bad);
        assert_eq!((resp.accepted, resp.duplicates, resp.rejected), (1, 1, 1));
        let rejected = &resp.results[1];
        assert_eq!((rejected.index, rejected.message_id.as_str()), (1, "b"));
        assert_eq!(
            (rejected.status, rejected.field.as_str()),
            (pb::ActivityEventStatus::Rejected as i32, "events[1].time")
        );
        assert!(resp.results[2].reason.contains("different payload"), "{}", resp.results[2].reason);
    }
}
