//! Insight use-cases (docs/insight.md): account profiles and rankings, comparing two
//! samples of a survey's answers, comment themes, and engagement drivers. Each reads
//! with one connection and computes in `domain::insight`.

use std::collections::{BTreeMap, HashMap};

use super::engagement_read::{churn, window};
use super::metrics::MetricScope;
use super::{Services, require_reader};
use crate::domain::engagement::{Day, ScoringConfig, day_of};
use crate::domain::engagement_metrics::ChurnWindow;
use crate::domain::engagement_profile::Band;
use crate::domain::insight::account::{
    self, ANSWER_HISTORY_DAYS, AccountProfile, Contact, DEFAULT_WINDOW_DAYS, MIN_DAYS_READ, Ranking, RiskFlag,
};
use crate::domain::insight::compare::{self, Comparison, Moments, NpsCounts};
use crate::domain::insight::drivers::{self, Effect};
use crate::domain::insight::sources::{CommentPosition, Whose};
use crate::domain::insight::themes::{self, Analyzer, Corpus, MAX_COMMENTS_PER_SIDE, Side, Themes};
use crate::domain::model::{Principal, Properties, Survey};
use crate::domain::stats::{self, Summary};
use crate::domain::time::Timestamp;
use crate::domain::{Bucket, CustomerRowId, Scale, SurveyId, SurveyKind, TenantId, input};
use crate::error::{AppError, Result};
use crate::store::insight as si;
use crate::store::{engagement as es, surveys};

/// Default length of a comparison's samples, of the themes' and drivers' window.
const DEFAULT_SAMPLE_DAYS: i64 = 30;
const DEFAULT_INSIGHT_DAYS: i64 = 90;
/// Most characters of a sample's label.
pub const MAX_LABEL_CHARS: usize = 100;
/// Comments fetched per query while collecting a side.
const COMMENT_BATCH: u64 = 2_000;
/// Days of activity read before the earliest answer, for recency.
pub const RECENCY_CAP_DAYS: i32 = 365;

/// The unhappy and the happy bucket of a kind.
pub fn sides(kind: SurveyKind) -> (Bucket, Bucket) {
    match kind {
        SurveyKind::Nps => (Bucket::Detractor, Bucket::Promoter),
        SurveyKind::Csat => (Bucket::Unsatisfied, Bucket::Satisfied),
        SurveyKind::Ces => (Bucket::NotAgree, Bucket::Agree),
    }
}

/// One side of a comparison, as asked.
#[derive(Debug, Clone, Default)]
pub struct SampleSpec {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub filter: Properties,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub scope: MetricScope,
    pub first: SampleSpec,
    pub second: SampleSpec,
}

#[derive(Debug, Clone)]
pub struct SampleOut {
    pub label: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub filter: Properties,
    pub summary: Summary,
}

#[derive(Debug, Clone)]
pub struct CompareOut {
    pub scale: Scale,
    pub first: SampleOut,
    pub second: SampleOut,
    pub headline: Comparison,
    pub headline_sentence: String,
    pub headline_method: String,
    pub mean: Comparison,
    pub mean_sentence: String,
    pub shared_responses: i64,
}

#[derive(Debug, Clone)]
pub struct ThemesRequest {
    pub scope: MetricScope,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub filter: Properties,
    pub limit: usize,
    pub min_count: i64,
    pub language: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ThemesOut {
    pub themes: Themes,
    pub unhappy: Bucket,
    pub happy: Bucket,
    pub languages: Vec<String>,
    pub truncated: bool,
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone)]
pub struct DriversRequest {
    pub scope: MetricScope,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub window_days: i32,
}

/// One signal's effect, with what it measures.
#[derive(Debug, Clone)]
pub struct DriverOut {
    pub signal: String,
    pub unit: String,
    pub definition: String,
    pub effect: Effect,
}

#[derive(Debug, Clone)]
pub struct DriversOut {
    pub drivers: Vec<DriverOut>,
    pub customers: i64,
    pub unhappy: Bucket,
    pub happy: Bucket,
    pub start: Timestamp,
    pub end: Timestamp,
    pub window_days: i32,
}

#[derive(Debug, Clone)]
pub struct AccountListRequest {
    pub ranking: Ranking,
    /// `None`: the ranking's default direction.
    pub ascending: Option<bool>,
    pub as_of: Option<Timestamp>,
    pub window_days: i32,
    pub bands: Vec<Band>,
    pub risks: Vec<RiskFlag>,
    pub min_contacts: i64,
    pub page_size: u64,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub struct AccountListOut {
    pub accounts: Vec<AccountProfile>,
    pub next_offset: Option<u64>,
    pub total: i64,
    pub definition: String,
}

/// A window [start, end): defaults to the `days` before `end` (now by default).
fn window_of(
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    now: Timestamp,
    days: i64,
    field: &str,
) -> Result<(Timestamp, Timestamp)> {
    let end = end.unwrap_or(now);
    let start = start.unwrap_or(end - chrono::Duration::days(days));
    if start >= end {
        return Err(AppError::invalid(field, "must be before end_time"));
    }
    Ok((start, end))
}

impl Services {
    /// The surveys of a scope and their scale: one scale when `one_scale` (else
    /// FAILED_PRECONDITION, as GetSurveyMetrics), else the kind's default scale for a
    /// kind whose surveys differ.
    async fn scope_surveys(
        &self,
        tenant: &TenantId,
        scope: &MetricScope,
        one_scale: bool,
    ) -> Result<(Vec<Survey>, Scale)> {
        let conn = self.db.conn();
        match scope {
            MetricScope::Survey(id) => {
                let s = surveys::get(conn, tenant, id).await?;
                let scale = s.scale;
                Ok((vec![s], scale))
            }
            MetricScope::Kind(kind) => {
                let all = surveys::of_kind(conn, tenant, *kind).await?;
                let mut scales: Vec<i32> = all.iter().map(|s| s.scale.max).collect();
                scales.sort_unstable();
                scales.dedup();
                let scale = match scales.as_slice() {
                    [max] => Scale { kind: *kind, max: *max },
                    [] => Scale::parse(*kind, None)?,
                    many if one_scale => {
                        return Err(AppError::FailedPrecondition(format!(
                            "the {} surveys use different scales (1–{}); ask for one survey at a time",
                            kind.as_str().to_uppercase(),
                            many.iter().map(i32::to_string).collect::<Vec<_>>().join(", 1–")
                        )));
                    }
                    _ => Scale::parse(*kind, None)?,
                };
                Ok((all, scale))
            }
        }
    }

    /// CompareSurveyMetrics: two samples and the differences of headline and mean.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn compare_survey_metrics(&self, p: &Principal, req: CompareRequest) -> Result<CompareOut> {
        require_reader(p)?;
        let now = self.clock.now();
        for (spec, field) in [(&req.first, "first.label"), (&req.second, "second.label")] {
            input::text(field, &spec.label, MAX_LABEL_CHARS, false)?;
        }
        let (s2, e2) = window_of(req.second.start, req.second.end, now, DEFAULT_SAMPLE_DAYS, "second.start_time")?;
        // The first sample defaults to the period of the second's length just before it.
        let e1 = req.first.end.unwrap_or(s2);
        let s1 = req.first.start.unwrap_or(e1 - (e2 - s2));
        if s1 >= e1 {
            return Err(AppError::invalid("first.start_time", "must be before first.end_time"));
        }
        let (all, scale) = self.scope_surveys(&p.tenant, &req.scope, true).await?;
        let ids: Vec<_> = all.iter().map(|s| s.id.clone()).collect();
        let conn = self.db.conn();
        let mut samples = Vec::new();
        for (spec, (start, end), default_label) in
            [(&req.first, (s1, e1), "the first sample"), (&req.second, (s2, e2), "the second sample")]
        {
            let rows = si::sample(conn, &p.tenant, &ids, start, end, !spec.filter.is_empty()).await?;
            let rows: Vec<_> = rows.into_iter().filter(|r| input::matches(&spec.filter, &r.properties)).collect();
            let label =
                if spec.label.trim().is_empty() { default_label.to_owned() } else { spec.label.trim().to_owned() };
            samples.push((label, start, end, spec.filter.clone(), rows));
        }
        let shared = {
            let first: std::collections::HashSet<&str> = samples[0].4.iter().map(|r| r.id.as_str()).collect();
            samples[1].4.iter().filter(|r| first.contains(r.id.as_str())).count() as i64
        };
        let outs: Vec<(SampleOut, Vec<i32>)> = samples
            .into_iter()
            .map(|(label, start, end, filter, rows)| {
                let scores: Vec<i32> = rows.iter().map(|r| r.score).collect();
                (SampleOut { label, start, end, filter, summary: stats::summarize(scale, &scores) }, scores)
            })
            .collect();
        let [(first, scores_a), (second, scores_b)]: [(SampleOut, Vec<i32>); 2] =
            outs.try_into().map_err(|_| AppError::Internal(anyhow::anyhow!("two samples expected")))?;
        let count = |s: &Summary, b: Bucket| s.bucket_counts.get(&b).copied().unwrap_or(0);
        let (headline, metric, method) = match scale.kind {
            SurveyKind::Nps => (
                compare::nps_difference(
                    NpsCounts {
                        promoters: count(&first.summary, Bucket::Promoter),
                        detractors: count(&first.summary, Bucket::Detractor),
                        n: first.summary.n,
                    },
                    NpsCounts {
                        promoters: count(&second.summary, Bucket::Promoter),
                        detractors: count(&second.summary, Bucket::Detractor),
                        n: second.summary.n,
                    },
                ),
                "NPS",
                "adjusted-Wald difference of two NPS (Rocks 2016; MeasuringU): ¾ promoter and ¾ detractor added \
                 to each side and n + 3; z = difference / √(var A + var B)",
            ),
            kind => {
                let good = scale.good_bucket();
                (
                    compare::proportion_difference(
                        count(&first.summary, good),
                        first.summary.n,
                        count(&second.summary, good),
                        second.summary.n,
                    ),
                    if kind == SurveyKind::Csat { "CSAT (% satisfied)" } else { "CES (% agree)" },
                    "Newcombe's hybrid score interval (method 10) of the difference of two shares; p-value by \
                     inverting it",
                )
            }
        };
        let f = |v: &[i32]| Moments::of(&v.iter().map(|&s| s as f64).collect::<Vec<_>>());
        let mean = compare::mean_difference(f(&scores_a), f(&scores_b));
        let labels = (first.label.as_str(), second.label.as_str());
        Ok(CompareOut {
            scale,
            headline_sentence: headline.sentence(metric, "points", labels),
            headline_method: method.into(),
            mean_sentence: mean.sentence("mean score", "points", labels),
            headline,
            mean,
            first,
            second,
            shared_responses: shared,
        })
    }

    /// CommentThemes.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn comment_themes(&self, p: &Principal, req: ThemesRequest) -> Result<ThemesOut> {
        require_reader(p)?;
        let now = self.clock.now();
        let (start, end) = window_of(req.start, req.end, now, DEFAULT_INSIGHT_DAYS, "start_time")?;
        let (all, scale) = self.scope_surveys(&p.tenant, &req.scope, false).await?;
        let ids: Vec<_> = all.iter().map(|s| s.id.clone()).collect();
        let language_of: HashMap<SurveyId, String> =
            all.iter().map(|s| (s.id.clone(), s.branding.language.clone())).collect();
        let (unhappy, happy) = sides(scale.kind);
        let conn = self.db.conn();
        let mut analyzers: BTreeMap<String, Analyzer> = BTreeMap::new();
        let mut corpus = Corpus::default();
        let mut truncated = false;
        for (bucket, side) in [(unhappy, Side::A), (happy, Side::B)] {
            let mut kept = 0usize;
            let mut after: Option<CommentPosition> = None;
            'side: loop {
                let batch =
                    si::comments(conn, &p.tenant, &ids, bucket, start, end, after.as_ref(), COMMENT_BATCH).await?;
                let fetched = batch.len() as u64;
                for c in batch {
                    after = Some(c.position());
                    if !input::matches(&req.filter, &c.properties) {
                        continue;
                    }
                    if kept == MAX_COMMENTS_PER_SIDE {
                        truncated = true;
                        break 'side;
                    }
                    kept += 1;
                    let tag = req
                        .language
                        .clone()
                        .unwrap_or_else(|| language_of.get(&c.survey_id).cloned().unwrap_or_default());
                    let analyzer = analyzers.entry(tag.clone()).or_insert_with(|| Analyzer::for_language(&tag));
                    corpus.add(side, c.id.as_str(), analyzer.terms(&c.comment));
                }
                if fetched < COMMENT_BATCH {
                    break;
                }
            }
        }
        let mut languages: Vec<String> = analyzers.values().map(|a| a.language.to_owned()).collect();
        languages.sort();
        languages.dedup();
        Ok(ThemesOut {
            themes: themes::rank(&corpus, req.min_count, req.limit),
            unhappy,
            happy,
            languages,
            truncated,
            start,
            end,
        })
    }

    /// GetDrivers.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn drivers(&self, p: &Principal, req: DriversRequest) -> Result<DriversOut> {
        require_reader(p)?;
        let now = self.clock.now();
        let w = window(req.window_days, 30, "window_days")?;
        let (start, end) = window_of(req.start, req.end, now, DEFAULT_INSIGHT_DAYS, "start_time")?;
        let (all, scale) = self.scope_surveys(&p.tenant, &req.scope, false).await?;
        let ids: Vec<_> = all.iter().map(|s| s.id.clone()).collect();
        let (unhappy, happy) = sides(scale.kind);
        let conn = self.db.conn();
        let config = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, now)).await?.config;
        let tz = config.tz();

        // Each customer's latest answer of either side in the window.
        let mut latest: BTreeMap<CustomerRowId, (Bucket, Timestamp)> = BTreeMap::new();
        for a in si::answers_in(conn, &p.tenant, &ids, &[unhappy, happy], start, end).await? {
            let (customer, bucket, at) = (a.customer, a.bucket, a.at);
            let e = latest.entry(customer).or_insert((bucket, at));
            if at > e.1 {
                *e = (bucket, at);
            }
        }
        let empty = DriversOut { drivers: Vec::new(), customers: 0, unhappy, happy, start, end, window_days: w };
        let Some(first_answer_day) = latest.values().map(|(_, at)| day_of(tz, *at)).min() else {
            return Ok(DriversOut { drivers: signals(&config, w, &[]), ..empty });
        };
        let last_answer_day = latest.values().map(|(_, at)| day_of(tz, *at)).max().unwrap_or(first_answer_day);
        let who = Whose::Respondents { surveys: &ids, start, end };
        let counted = config.counted_actions();
        let days =
            si::days_of(conn, &p.tenant, &who, first_answer_day - RECENCY_CAP_DAYS.max(w), last_answer_day, &counted)
                .await?;
        let first_days = si::first_days(conn, &p.tenant, &who).await?;
        let mut rows: Vec<(bool, Vec<(String, f64)>)> = Vec::new();
        for (customer, (bucket, at)) in &latest {
            let d = day_of(tz, *at);
            if first_days.get(customer).is_none_or(|f| *f > d) {
                continue; // no activity on or before the answer's day
            }
            let mine = days.get(customer).map(Vec::as_slice).unwrap_or(&[]);
            rows.push((*bucket == happy, signal_values(&counted, mine, d, w)));
        }
        let drivers = signals(&config, w, &rows);
        Ok(DriversOut { drivers, customers: rows.len() as i64, ..empty })
    }

    /// Loads the contacts of one account or of every account, grouped by account.
    async fn accounts_input(
        &self,
        tenant: &TenantId,
        account: Option<&str>,
        config: &ScoringConfig,
        as_of: Timestamp,
        w: i32,
    ) -> Result<BTreeMap<String, Vec<Contact>>> {
        let conn = self.db.conn();
        let today = day_of(config.tz(), as_of);
        let rows = si::contacts(conn, tenant, account, as_of).await?;
        let mut out: BTreeMap<String, Vec<Contact>> = BTreeMap::new();
        if rows.is_empty() {
            return Ok(out);
        }
        let who = Whose::Account(account);
        let mut days =
            si::days_of(conn, tenant, &who, today - w.max(MIN_DAYS_READ) + 1, today, &config.counted_actions()).await?;
        let mut lifetimes = si::lifetimes(conn, tenant, account, today).await?;
        let from = as_of - chrono::Duration::days(ANSWER_HISTORY_DAYS);
        let mut answers = si::contact_answers(conn, tenant, account, from, as_of).await?;
        let mut follow_ups = si::contact_follow_ups(conn, tenant, account, as_of).await?;
        for r in rows {
            out.entry(r.account.clone()).or_default().push(Contact {
                customer: r.customer.0,
                role: r.properties.get("role").filter(|v| !v.trim().is_empty()).cloned(),
                days: days.remove(&r.row).unwrap_or_default(),
                lifetime: lifetimes.remove(&r.row).unwrap_or_default(),
                answers: answers.remove(&r.row).unwrap_or_default(),
                follow_ups: follow_ups.remove(&r.row).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn monthly_churn(&self, tenant: &TenantId, config: &ScoringConfig, as_of: Timestamp) -> Result<Option<f64>> {
        let today = day_of(config.tz(), as_of);
        Ok(churn(self.db.conn(), tenant, ChurnWindow::ending(today, 30, config.inactivity_days)).await?.rate())
    }

    fn as_of_checked(&self, as_of: Option<Timestamp>) -> Result<Timestamp> {
        let now = self.clock.now();
        match as_of {
            Some(t) if t > now => Err(AppError::invalid("as_of", "must not be in the future")),
            Some(t) => Ok(t),
            None => Ok(now),
        }
    }

    /// GetAccountProfile.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn account_profile(
        &self,
        p: &Principal,
        account: &str,
        as_of: Option<Timestamp>,
        window_days: i32,
    ) -> Result<AccountProfile> {
        require_reader(p)?;
        let w = window(window_days, DEFAULT_WINDOW_DAYS, "window_days")?;
        let as_of = self.as_of_checked(as_of)?;
        let conn = self.db.conn();
        let config = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, self.clock.now())).await?.config;
        let mut by_account = self.accounts_input(&p.tenant, Some(account), &config, as_of, w).await?;
        let contacts = by_account.remove(account).ok_or_else(|| AppError::NotFound(format!("account {account:?}")))?;
        let churn = self.monthly_churn(&p.tenant, &config, as_of).await?;
        Ok(account::account_profile(account, &config, as_of, w, &contacts, churn))
    }

    /// ListAccounts: every account's profile, filtered, ranked and cut to a page.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn list_accounts(&self, p: &Principal, req: AccountListRequest) -> Result<AccountListOut> {
        require_reader(p)?;
        let w = window(req.window_days, DEFAULT_WINDOW_DAYS, "window_days")?;
        let as_of = self.as_of_checked(req.as_of)?;
        let conn = self.db.conn();
        let config = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, self.clock.now())).await?.config;
        let churn = self.monthly_churn(&p.tenant, &config, as_of).await?;
        let by_account = self.accounts_input(&p.tenant, None, &config, as_of, w).await?;
        let mut profiles: Vec<AccountProfile> = by_account
            .iter()
            .filter(|(_, c)| c.len() as i64 >= req.min_contacts)
            .map(|(a, c)| account::account_profile(a, &config, as_of, w, c, churn))
            .filter(|pr| req.bands.is_empty() || req.bands.contains(&pr.health.band))
            .filter(|pr| req.risks.is_empty() || pr.health.risks.iter().any(|r| req.risks.contains(&r.flag)))
            .collect();
        let ascending = req.ascending.unwrap_or(req.ranking.default_ascending());
        account::rank(&mut profiles, req.ranking, ascending);
        let total = profiles.len() as i64;
        let from = (req.offset as usize).min(profiles.len());
        let to = (from + req.page_size as usize).min(profiles.len());
        let next_offset = (to < profiles.len()).then_some(to as u64);
        let dir = if ascending { "lowest first" } else { "highest first" };
        let definition = match req.ranking {
            Ranking::Health => {
                format!("account health score, {dir}; accounts without a score last; ties by account id")
            }
            Ranking::Risk => {
                format!("number of risk flags, {dir}; equal counts by the lower health score; ties by account id")
            }
            Ranking::Revenue => format!("revenue of the {w} days to as_of, {dir}; ties by account id"),
        };
        Ok(AccountListOut { accounts: profiles.drain(from..to).collect(), next_offset, total, definition })
    }
}

/// The signals of one respondent: (name, value), from its days up to the answer's day
/// `d`, over the `w` days to it.
fn signal_values(
    counted: &[String],
    days: &[crate::domain::engagement_profile::DayActivity],
    d: Day,
    w: i32,
) -> Vec<(String, f64)> {
    let in_w = || days.iter().filter(move |x| x.day <= d && x.day > d - w && x.events > 0);
    let mut out = vec![
        ("active_days".to_owned(), in_w().count() as f64),
        ("activity_seconds".to_owned(), in_w().map(|x| x.session_seconds as f64).sum()),
        (
            "stickiness".to_owned(),
            days.iter().filter(|x| x.day <= d && x.day > d - 30 && x.events > 0).count() as f64 / 30.0,
        ),
        (
            "recency_days".to_owned(),
            days.iter()
                .filter(|x| x.day <= d && x.events > 0)
                .map(|x| x.day)
                .max()
                .map(|l| ((d - l) as f64).min(RECENCY_CAP_DAYS as f64))
                .unwrap_or(RECENCY_CAP_DAYS as f64),
        ),
        ("revenue".to_owned(), in_w().map(|x| x.revenue_minor as f64).sum()),
    ];
    for a in counted {
        out.push((format!("action:{a}"), in_w().map(|x| x.action_counts.get(a).copied().unwrap_or(0) as f64).sum()));
    }
    out
}

/// Every signal's effect from the respondents' rows (is happy, signal values), in
/// rank order.
fn signals(config: &ScoringConfig, w: i32, rows: &[(bool, Vec<(String, f64)>)]) -> Vec<DriverOut> {
    let mut names: Vec<(String, String, String)> = vec![
        ("active_days".into(), "days".into(), format!("days with an event in the {w} days to the answer's day")),
        (
            "activity_seconds".into(),
            "seconds".into(),
            format!("Σ activity seconds of sessions in the {w} days to the answer's day"),
        ),
        ("stickiness".into(), "ratio".into(), "active days of the 30 days to the answer's day / 30".into()),
        (
            "recency_days".into(),
            "days".into(),
            format!("days from the last active day to the answer's day (at most {RECENCY_CAP_DAYS})"),
        ),
        (
            "revenue".into(),
            format!("{} minor units", config.currency),
            format!("purchases in the {w} days to the answer's day"),
        ),
    ];
    for a in config.counted_actions() {
        names.push((format!("action:{a}"), "events".into(), format!("{a} events in the {w} days to the answer's day")));
    }
    let mut effects: Vec<(String, Effect)> = names
        .iter()
        .map(|(name, _, _)| {
            let values = |happy: bool| -> Vec<f64> {
                rows.iter()
                    .filter(|(h, _)| *h == happy)
                    .filter_map(|(_, v)| v.iter().find(|(n, _)| n == name).map(|(_, x)| *x))
                    .collect()
            };
            (name.clone(), drivers::effect(&values(true), &values(false)))
        })
        .collect();
    drivers::rank(&mut effects);
    effects
        .into_iter()
        .map(|(signal, effect)| {
            let (_, unit, definition) = names.iter().find(|(n, _, _)| *n == signal).cloned().unwrap_or_default();
            DriverOut { signal, unit, definition, effect }
        })
        .collect()
}
