//! `rapport.v1.EngagementService`, and its proto ⇄ domain conversions: every number
//! goes out as a `Measure` with its window and definition.

use chrono_tz::Tz;
use tonic::Request;

use super::convert::{self as c, opt_ts, ts};
use super::pb::{self, engagement_service_server::EngagementService};
use super::{R, ok, principal, reader, status};
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
use crate::service::engagement_read::{MetricsOut, ProfileOut, Ranking, TopRequest};

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
        let p = principal(&self.svc, &req).await?;
        let r = req.into_inner();
        let parsed = (|| {
            let customer = CustomerRef::parse(&r.customer_id, "customer_id")?;
            let t = r.traits.clone().unwrap_or_default();
            let change = CustomerChange {
                account_id: r.account_id.clone(),
                email: t.email,
                name: t.name,
                plan: t.plan,
                signup_at: c::parse_opt_ts(&t.signup_time, "traits.signup_time")?,
                properties: c::props(&r.properties, "properties")?,
            };
            Ok::<_, AppError>((customer, change))
        })()
        .map_err(status)?;
        let (customer, change) = parsed;
        let out = self.svc.upsert_customer(&p, &customer, change).await.map_err(status)?;
        ok(pb_customer(&out))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetCustomer"))]
    async fn get_customer(&self, req: Request<pb::GetCustomerRequest>) -> R<pb::Customer> {
        let p = reader(&self.svc, &req).await?;
        let customer = CustomerRef::parse(&req.get_ref().customer_id, "customer_id").map_err(status)?;
        ok(pb_customer(&self.svc.get_customer(&p, &customer).await.map_err(status)?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListCustomers"))]
    async fn list_customers(&self, req: Request<pb::ListCustomersRequest>) -> R<pb::ListCustomersResponse> {
        let p = reader(&self.svc, &req).await?;
        let r = req.into_inner();
        let parsed = (|| {
            let page = PageRequest::parse(r.page_size, &r.page_token)?;
            let account = (!r.account_id.is_empty()).then(|| r.account_id.clone());
            Ok::<_, AppError>((page, account, c::props(&r.property_filter, "property_filter")?))
        })()
        .map_err(status)?;
        let (page, account, props) = parsed;
        let out = self.svc.list_customers(&p, account, props, page).await.map_err(status)?;
        ok(pb::ListCustomersResponse {
            customers: out.items.iter().map(pb_customer).collect(),
            next_page_token: out.next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RecordEvents"))]
    async fn record_events(&self, req: Request<pb::RecordEventsRequest>) -> R<pb::RecordEventsResponse> {
        let p = principal(&self.svc, &req).await?;
        let (raw, ids, bad_times) = raw_events(req.into_inner().events);
        let outcomes = self.svc.record_events(&p, raw).await.map_err(status)?;
        ok(events_response(outcomes, ids, bad_times))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetScoringConfig"))]
    async fn get_scoring_config(&self, req: Request<pb::GetScoringConfigRequest>) -> R<pb::ScoringConfig> {
        let p = reader(&self.svc, &req).await?;
        let (config, at) = self.svc.scoring_config(&p).await.map_err(status)?;
        ok(pb_config(&config, at))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateScoringConfig"))]
    async fn update_scoring_config(&self, req: Request<pb::UpdateScoringConfigRequest>) -> R<pb::ScoringConfig> {
        let p = principal(&self.svc, &req).await?;
        let r = req.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let values = config_values(r.config.unwrap_or_default());
        let (config, at) = self.svc.update_scoring_config(&p, mask, values).await.map_err(status)?;
        ok(pb_config(&config, at))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetEngagementProfile"))]
    async fn get_engagement_profile(&self, req: Request<pb::GetEngagementProfileRequest>) -> R<pb::EngagementProfile> {
        let p = reader(&self.svc, &req).await?;
        let r = req.into_inner();
        let customer = CustomerRef::parse(&r.customer_id, "customer_id").map_err(status)?;
        let as_of = c::parse_opt_ts(&r.as_of, "as_of").map_err(status)?;
        let out = self.svc.engagement_profile(&p, &customer, as_of).await.map_err(status)?;
        ok(pb_profile(&out))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetEngagementMetrics"))]
    async fn get_engagement_metrics(&self, req: Request<pb::GetEngagementMetricsRequest>) -> R<pb::EngagementMetrics> {
        let p = reader(&self.svc, &req).await?;
        let r = req.into_inner();
        let as_of = c::parse_opt_ts(&r.as_of, "as_of").map_err(status)?;
        let out = self.svc.engagement_metrics(&p, r.window_days, as_of, r.cohort_months).await.map_err(status)?;
        let tz = self.svc_tz(&out.time_zone);
        ok(pb_metrics(&out, tz))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListTopCustomers"))]
    async fn list_top_customers(&self, req: Request<pb::ListTopCustomersRequest>) -> R<pb::ListTopCustomersResponse> {
        use pb::list_top_customers_request::Ranking as PbRanking;
        let p = reader(&self.svc, &req).await?;
        let r = req.into_inner();
        let parsed = (|| {
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
                Some(a) => a
                    .parse::<u64>()
                    .map_err(|_| AppError::invalid("page_token", "is not a token this service issued"))?,
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
        })()
        .map_err(status)?;
        let page_size = parsed.page_size;
        let out = self.svc.top_customers(&p, parsed).await.map_err(status)?;
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
        let p = principal(&self.svc, &req).await?;
        let r = req.into_inner();
        let parsed = (|| {
            let action = eng::action_name(&r.action, "action")?;
            let property = input::text("property", &r.property, input::MAX_PROPERTY_CHARS, true)?;
            let limit = match r.limit {
                0 => 10,
                n if (1..=1000).contains(&n) => n as u64,
                n => return Err(AppError::invalid("limit", format!("must be from 0 to 1 000; got {n}"))),
            };
            Ok::<_, AppError>((action, property, limit, c::parse_opt_ts(&r.as_of, "as_of")?))
        })()
        .map_err(status)?;
        let (action, property, limit, as_of) = parsed;
        let out =
            self.svc.top_property_values(&p, &action, &property, r.window_days, as_of, limit).await.map_err(status)?;
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

fn pb_profile(out: &ProfileOut) -> pb::EngagementProfile {
    let pr = &out.profile;
    let tz: Tz = pr.time_zone.parse().unwrap_or(Tz::UTC);
    let as_of = pr.as_of;
    let today = pr.as_of_day;
    let cur = &pr.value.currency;
    let money = format!("{cur} minor units");

    let v = &pr.voice;
    let voice = pb::VoiceProfile {
        latest_nps: v.latest_nps.as_ref().map(pb_nps),
        nps_history: v.nps_history.iter().map(pb_nps).collect(),
        windows: v
            .windows
            .iter()
            .map(|w| {
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
                    csat_mean_percent: m(
                        w.csat_mean_percent,
                        "percent",
                        win,
                        "mean CSAT as 100 × (score − 1) / (scale max − 1)",
                    ),
                    ces_answers: mc(w.ces_answers, "answers", win, "CES (effort) answers recorded in the window"),
                    ces_mean: m(
                        w.ces_mean,
                        "score",
                        win,
                        "mean CES score on the surveys' own scale; unset when they use different scales",
                    ),
                    ces_mean_percent: m(
                        w.ces_mean_percent,
                        "percent",
                        win,
                        "mean CES as 100 × (score − 1) / (scale max − 1)",
                    ),
                    invitations: mc(w.invitations, "invitations", win, "invitations issued in the window"),
                    response_rate: m(
                        w.response_rate,
                        "ratio",
                        win,
                        "answered / issued, for the invitations issued in the window",
                    ),
                }
            })
            .collect(),
        open_follow_ups: mc(
            v.open_follow_ups,
            "follow-ups",
            Win::at(as_of),
            "follow-ups open or acknowledged at as_of",
        ),
        overdue_follow_ups: mc(
            v.overdue_follow_ups,
            "follow-ups",
            Win::at(as_of),
            "open follow-ups past their due time at as_of",
        ),
        eligible_now: v.eligible_now,
        next_eligible_time: opt_ts(v.next_eligible),
    };

    let a = &pr.activity;
    let activity = pb::ActivityProfile {
        first_seen_date: date(a.first_seen),
        last_seen_date: date(a.last_seen),
        recency_days: mc_opt(
            a.recency_days,
            "days",
            Win::at(as_of),
            "calendar days from the last active day to as_of's day (tenant's time zone)",
        ),
        windows: a
            .windows
            .iter()
            .map(|w| {
                let win = Win::days(tz, w.days, w.start, as_of);
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
                    mean_session_seconds: m(
                        w.mean_session_seconds,
                        "seconds",
                        win,
                        "total activity seconds / sessions",
                    ),
                    visits_per_week: m(
                        Some(w.visits_per_week),
                        "per week",
                        win,
                        format!("sessions / ({} / 7)", w.days),
                    ),
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
            })
            .collect(),
        first_week: a.first_week.as_ref().map(|fw| {
            let win =
                Win { days: 7, start: Some(day_start(tz, fw.start)), end: Some(day_start(tz, fw.end + 1).min(as_of)) };
            pb::FirstWeek {
                start_date: date_of(fw.start).to_string(),
                end_date: date_of(fw.end).to_string(),
                actions: mc(fw.actions, "events", win, "action events in the 7 days from the first active day"),
                active_days: mc(fw.active_days, "days", win, "active days in the 7 days from the first active day"),
                sessions: mc(fw.sessions, "sessions", win, "sessions in the 7 days from the first active day"),
            }
        }),
    };

    let e = &pr.engagement;
    let engagement_score = pb::EngagementScore {
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
            Win::at(out.snapshot.map(|s| s.taken_at).unwrap_or(as_of)),
            "100 × (customers with a lower score + half those with an equal one) / (ranked customers − 1), \
             against the snapshot taken at percentile_snapshot_time; unset with fewer than two customers",
        ),
        percentile_snapshot_time: out.snapshot.map(|s| ts(s.taken_at)),
        ranked_customers: out.snapshot.map(|s| s.population).unwrap_or(0),
        percentile_exact: out.snapshot.is_some_and(|s| s.exact),
    };

    let val = &pr.value;
    let value = pb::ValueProfile {
        currency: cur.clone(),
        windows: val
            .windows
            .iter()
            .map(|w| {
                let win = Win::days(tz, w.days, w.start, as_of);
                pb::ValueWindow {
                    window_days: w.days,
                    start_date: date_of(w.start).to_string(),
                    end_date: date_of(w.end).to_string(),
                    revenue: mc(w.revenue_minor, &money, win, "Σ purchase amounts"),
                    purchases: mc(w.purchases, "purchases", win, "purchase events"),
                    mean_order_value: m(w.mean_order_minor, &money, win, "revenue / purchases"),
                }
            })
            .collect(),
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
            Win::at(as_of),
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
    };

    let h = &pr.health;
    let health_def = "Σ(weight × component) / Σ weights over the components with data (each 0–100): engagement \
                      percentile; stickiness 100 × active days of the last 30 / 30; recency 100 × (1 − days since \
                      last active / inactivity days), at least 0; NPS latest score × 10; CSAT and effort mean of \
                      100 × (score − 1) / (max − 1) over 90 days; follow-ups 100 − 50 per open one, 0 if one is \
                      overdue (with any answer on record)";
    let health = pb::HealthProfile {
        score: m(h.score, "points", Win::at(as_of), health_def),
        band: match h.band {
            Band::Red => pb::HealthBand::Red,
            Band::Yellow => pb::HealthBand::Yellow,
            Band::Green => pb::HealthBand::Green,
            Band::Unknown => pb::HealthBand::Unknown,
        } as i32,
        components: h
            .components
            .iter()
            .map(|cs| pb::HealthComponent {
                kind: match cs.component {
                    Component::Engagement => pb::HealthComponentKind::Engagement,
                    Component::Stickiness => pb::HealthComponentKind::Stickiness,
                    Component::Recency => pb::HealthComponentKind::Recency,
                    Component::Nps => pb::HealthComponentKind::Nps,
                    Component::Csat => pb::HealthComponentKind::Csat,
                    Component::Effort => pb::HealthComponentKind::Effort,
                    Component::FollowUps => pb::HealthComponentKind::FollowUps,
                } as i32,
                weight: cs.weight,
                value: m(cs.value, "points", Win::at(as_of), component_definition(cs.component)),
                contribution: cs.contribution,
            })
            .collect(),
        components_with_data: h.components_with_data as i32,
        min_components: h.min_components as i32,
        score_30_days_before: m(
            h.score_30_days_before,
            "points",
            Win::at(as_of - chrono::Duration::days(30)),
            "the health score computed the same way 30 days before as_of",
        ),
        change: m(h.change, "points", Win::days(tz, 30, today - 30, as_of), "score − score 30 days before"),
        risks: h
            .risks
            .iter()
            .map(|r| match r {
                RiskFlag::Inactive => pb::RiskFlag::Inactive,
                RiskFlag::ActivityDown => pb::RiskFlag::ActivityDown,
                RiskFlag::Detractor => pb::RiskFlag::Detractor,
                RiskFlag::OverdueFollowUp => pb::RiskFlag::OverdueFollowUp,
                RiskFlag::Silent => pb::RiskFlag::Silent,
            } as i32)
            .collect(),
    };
    pb::EngagementProfile {
        customer_id: out.customer.0.clone(),
        as_of: Some(ts(as_of)),
        time_zone: pr.time_zone.clone(),
        voice: Some(voice),
        activity: Some(activity),
        engagement_score: Some(engagement_score),
        value: Some(value),
        health: Some(health),
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
