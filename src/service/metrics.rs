//! Survey metrics: headline, counts, mean and intervals, a time series, and the
//! invitation funnel (docs/engagement.md, "Survey metrics").

use super::{Services, require_reader};
use crate::domain::insight::series as insight_series;
use crate::domain::model::{Principal, Properties, SurveyMetrics};
use crate::domain::stats::{self, Grain, MAX_SERIES_POINTS};
use crate::domain::time::Timestamp;
use crate::domain::{Scale, SurveyId, SurveyKind, input};
use crate::error::{AppError, Result};
use crate::store::{metrics, surveys};

/// Which responses a metric covers.
#[derive(Debug, Clone)]
pub enum MetricScope {
    Survey(SurveyId),
    Kind(SurveyKind),
}

/// A `GetSurveyMetrics` request, parsed.
#[derive(Debug, Clone)]
pub struct MetricsRequest {
    pub scope: MetricScope,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub filter: Properties,
    pub grain: Option<Grain>,
}

/// Default window: the 30 days before the end.
const DEFAULT_WINDOW_DAYS: i64 = 30;

impl Services {
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn survey_metrics(&self, p: &Principal, req: MetricsRequest) -> Result<SurveyMetrics> {
        require_reader(p)?;
        let now = self.clock.now();
        let end = req.end.unwrap_or(now);
        let start = req.start.unwrap_or(end - chrono::Duration::days(DEFAULT_WINDOW_DAYS));
        if start >= end {
            return Err(AppError::invalid("start_time", "must be before end_time"));
        }
        let periods = match req.grain {
            None => Vec::new(),
            Some(grain) => stats::periods(grain, start, end, MAX_SERIES_POINTS).map_err(|e| {
                AppError::invalid(
                    "interval",
                    format!(
                        "the window would have {} points, more than {MAX_SERIES_POINTS}; choose a coarser interval",
                        e.count
                    ),
                )
            })?,
        };
        let conn = self.db.conn();
        let (ids, scale) = match &req.scope {
            MetricScope::Survey(id) => {
                let s = surveys::get(conn, &p.tenant, id).await?;
                (vec![s.id], s.scale)
            }
            MetricScope::Kind(kind) => {
                let all = surveys::of_kind(conn, &p.tenant, *kind).await?;
                let mut scales: Vec<i32> = all.iter().map(|s| s.scale.max).collect();
                scales.sort_unstable();
                scales.dedup();
                let scale = match scales.as_slice() {
                    [] => Scale::parse(*kind, None)?,
                    [max] => Scale { kind: *kind, max: *max },
                    many => {
                        return Err(AppError::FailedPrecondition(format!(
                            "the {} surveys use different scales (1–{}); ask for one survey at a time",
                            kind.as_str().to_uppercase(),
                            many.iter().map(i32::to_string).collect::<Vec<_>>().join(", 1–")
                        )));
                    }
                };
                (all.into_iter().map(|s| s.id).collect(), scale)
            }
        };
        // Scores by period start. Without a filter the database counts them per score and
        // day; with one, each answer's properties are needed, so they are fetched.
        let mut by_period: std::collections::BTreeMap<Timestamp, Vec<i32>> = Default::default();
        let grain = req.grain.unwrap_or(Grain::Day);
        if req.filter.is_empty() {
            for (score, day, n) in metrics::score_counts_by_day(conn, &p.tenant, &ids, start, end).await? {
                let at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(day);
                let scores = by_period.entry(stats::period_start(grain, at)).or_default();
                scores.extend(std::iter::repeat_n(score, usize::try_from(n).unwrap_or(0)));
            }
        } else {
            let rows = metrics::scores(conn, &p.tenant, &ids, start, end, true).await?;
            for r in rows.into_iter().filter(|r| input::matches(&req.filter, &r.properties)) {
                by_period.entry(stats::period_start(grain, r.recorded_at)).or_default().push(r.score);
            }
        }
        let all: Vec<i32> = by_period.values().flatten().copied().collect();
        let summary = stats::summarize(scale, &all);
        let series = match req.grain {
            None => Vec::new(),
            Some(grain) => periods
                .into_iter()
                .map(|(from, to)| {
                    let scores = by_period.remove(&stats::period_start(grain, from)).unwrap_or_default();
                    (from, to, stats::summarize(scale, &scores))
                })
                .collect(),
        };
        let funnel = metrics::funnel(conn, &p.tenant, &ids, start, end, now).await?;
        let points: Vec<_> = series.iter().map(|(_, _, s)| insight_series::point_counts(scale, s)).collect();
        let series_flags = insight_series::flag(&points);
        Ok(SurveyMetrics { scale, summary, series, series_flags, funnel, start, end })
    }
}
