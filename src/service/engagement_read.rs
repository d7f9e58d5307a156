//! Reading engagement (docs/engagement.md): the per-customer profile, org-wide metrics,
//! rankings and property values, all from the roll-ups; and the score snapshots that
//! make percentile ranks cheap.
//!
//! Percentile freshness: every customer's score decays at the same rate, so the
//! ranking only changes when events arrive, and a snapshot of the score keys stays
//! exact until then. A tenant with at most [`SYNC_SNAPSHOT_LIMIT`] customers gets a
//! new snapshot whenever its roll-ups changed since the last one (a small scan); a
//! larger tenant reads the latest snapshot and, when it is older than
//! [`SNAPSHOT_REFRESH`], refreshes it in the background — so no request scans every
//! customer. Each profile says which snapshot it ranked against.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::{Services, require_reader, require_secret};
use crate::domain::engagement::{self as eng, Day, ScoringConfig, date_of, day_of, key_term};
use crate::domain::engagement_metrics::{
    self as em, ChurnSums, ChurnWindow, GapSum, MetricSums, OrgMetrics, REVENUE_WINDOW_DAYS, RevenueWindow,
};
use crate::domain::engagement_profile::{self as ep, DayActivity, Profile, ProfileInput};
use crate::domain::model::Principal;
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, History, TenantId, eligibility};
use crate::error::{AppError, Result};
use crate::store::engagement_read::{self as er, CountFilter, RankBy, Ranked, ScoreOn, StoredSnapshot};
use crate::store::{Db, engagement as es, tenants};

/// Tenants with at most this many customers get an up-to-date snapshot on read.
pub const SYNC_SNAPSHOT_LIMIT: i64 = 5_000;
/// A larger tenant's snapshot is refreshed in the background once older than this.
pub const SNAPSHOT_REFRESH: Duration = Duration::from_secs(300);
/// Longest window of metrics and rankings, in days.
pub const MAX_WINDOW_DAYS: i32 = 365;
// Net revenue retention is summed from the revenue histogram for every window allowed.
const _: () = assert!(MAX_WINDOW_DAYS <= REVENUE_WINDOW_DAYS);

/// Tenants whose snapshot is being refreshed in the background (one at a time each).
static REFRESHING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A tenant's place in [`REFRESHING`], held by its background refresh and given back
/// when dropped: also when the refresh panics or its task is aborted, so no tenant is
/// left marked as refreshing (and never refreshed again).
struct RefreshClaim(String);

impl RefreshClaim {
    /// The tenant's place, unless a refresh of it holds it.
    fn take(tenant: &TenantId) -> Option<Self> {
        let mut set = REFRESHING.lock().unwrap_or_else(|e| e.into_inner());
        set.get_or_insert_with(HashSet::new).insert(tenant.0.clone()).then(|| RefreshClaim(tenant.0.clone()))
    }
}

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        let mut set = REFRESHING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = set.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// A profile with the snapshot its percentile ranks against.
#[derive(Debug, Clone)]
pub struct ProfileOut {
    pub customer: CustomerRef,
    pub profile: Profile,
    pub snapshot: Option<SnapshotInfo>,
}

#[derive(Debug, Clone, Copy)]
pub struct SnapshotInfo {
    pub taken_at: Timestamp,
    pub population: i64,
    pub exact: bool,
}

/// Org metrics with the cohorts.
#[derive(Debug, Clone)]
pub struct MetricsOut {
    pub as_of: Timestamp,
    pub time_zone: String,
    pub currency: String,
    pub start: Day,
    pub end: Day,
    pub metrics: OrgMetrics,
    pub cohorts: Vec<em::Cohort>,
}

/// What a ranking ranks by.
#[derive(Debug, Clone)]
pub enum Ranking {
    Score,
    Action { name: String, property: Option<(String, String)> },
}

#[derive(Debug, Clone)]
pub struct TopRequest {
    pub ranking: Ranking,
    pub window_days: i32,
    pub as_of: Option<Timestamp>,
    pub include_zero: bool,
    pub ascending: bool,
    pub page_size: u64,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub struct TopOut {
    /// (rank: the 1-based row number, customer).
    pub customers: Vec<(u64, Ranked)>,
    pub next_offset: Option<u64>,
    /// Whether the values are counts (an action ranking) rather than scores.
    pub is_count: bool,
    pub as_of_day: Day,
    /// (days, start, end) of a count's window; `None` for a score (all history).
    pub window: Option<(i32, Day, Day)>,
    pub definition: String,
}

#[derive(Debug, Clone)]
pub struct ValuesOut {
    pub values: Vec<(String, i64, i64)>,
    pub total: i64,
    pub window_days: i32,
    pub start: Day,
    pub end: Day,
}

/// A window length: 0 means `default`; otherwise 1–365 days.
pub fn window(days: i32, default: i32, field: &str) -> Result<i32> {
    match days {
        0 => Ok(default),
        d if (1..=MAX_WINDOW_DAYS).contains(&d) => Ok(d),
        d => Err(AppError::invalid(field, format!("must be from 1 to {MAX_WINDOW_DAYS} days; got {d}"))),
    }
}

/// The customer's score key from its days up to `day` (as ingestion would have
/// built it from those days alone).
fn key_on(config: &ScoringConfig, reference: Day, days: &[DayActivity], day: Day) -> f64 {
    days.iter()
        .filter(|d| d.day <= day)
        .flat_map(|d| d.action_counts.iter().map(move |(a, n)| (d.day, a, n)))
        .map(|(d, a, n)| key_term(config.weight(a) * *n as f64, d, reference, config.half_life_days))
        .sum()
}

impl Services {
    fn as_of(&self, as_of: Option<Timestamp>) -> Result<(Timestamp, Timestamp)> {
        let now = self.clock.now();
        match as_of {
            Some(t) if t > now => Err(AppError::invalid("as_of", "must not be in the future")),
            Some(t) => Ok((t, now)),
            None => Ok((now, now)),
        }
    }

    /// The whole profile of one customer.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn engagement_profile(
        &self,
        p: &Principal,
        customer: &CustomerRef,
        as_of: Option<Timestamp>,
    ) -> Result<ProfileOut> {
        require_reader(p)?;
        let (as_of, now) = self.as_of(as_of)?;
        let conn = self.db.conn();
        let (row_id, record) = er::get_customer(conn, &p.tenant, customer).await?;
        let stored = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, now)).await?;
        let config = stored.config;
        let tz = config.tz();
        let today = day_of(tz, as_of);

        let days = er::customer_activity(conn, &p.tenant, &row_id, today).await?;
        let answers = er::customer_answers(conn, &p.tenant, &row_id).await?;
        let follow_ups = er::customer_follow_ups(conn, &p.tenant, &row_id).await?;
        let invitations = er::customer_invitations(conn, &p.tenant, &row_id).await?;

        // Next eligible survey time: the tenant's default cooldowns, any survey.
        let policy = tenants::default_policy(conn, &p.tenant).await?;
        let history = History {
            last_invitation_this_survey: None,
            last_invitation_any_survey: invitations.iter().map(|(t, _)| *t).filter(|t| *t <= as_of).max(),
            last_response_this_survey: None,
            last_response_any_survey: answers.iter().map(|a| a.at).filter(|t| *t <= as_of).max(),
            unsubscribed: record.unsubscribed,
            erased: record.erased,
        };
        let eligibility = eligibility::evaluate(policy, history, as_of, false);

        // Percentiles: against a fresh snapshot for "now", else the one of the time.
        let current = if now - as_of <= chrono::Duration::minutes(1) {
            self.current_snapshot(&p.tenant).await?
        } else {
            er::snapshot_before(conn, &p.tenant, Some(as_of)).await?
        };
        let rank = |s: &Option<StoredSnapshot>, day: Day| {
            s.as_ref().and_then(|s| {
                let key = key_on(&config, stored.reference_day, &days, day);
                s.snapshot.percentile(key, record.created_at <= s.taken_at)
            })
        };
        let percentile = rank(&current, today);
        let before = er::snapshot_before(conn, &p.tenant, Some(as_of - chrono::Duration::days(30))).await?;
        let percentile_before = rank(&before, today - 30);

        // The tenant's churn rate over the 30 days to as_of gives the expected lifetime.
        let window = ChurnWindow::ending(today, 30, config.inactivity_days);
        let monthly_churn_rate = churn(conn, &p.tenant, window).await?.rate();

        let profile = ep::profile(&ProfileInput {
            config,
            as_of,
            days,
            answers,
            follow_ups,
            invitations,
            next_eligible: eligibility.next_eligible_at,
            eligible_now: eligibility.eligible,
            percentile,
            percentile_30_days_before: percentile_before,
            monthly_churn_rate,
        });
        Ok(ProfileOut {
            customer: record.customer,
            profile,
            snapshot: current.map(|s| SnapshotInfo {
                taken_at: s.taken_at,
                population: s.snapshot.population,
                exact: s.snapshot.exact,
            }),
        })
    }

    /// The latest score snapshot, refreshed as the module documentation says.
    async fn current_snapshot(&self, tenant: &TenantId) -> Result<Option<StoredSnapshot>> {
        let conn = self.db.conn();
        let latest = er::snapshot_before(conn, tenant, None).await?;
        let now = self.clock.now();
        match latest {
            None => Ok(Some(take_snapshot(&self.db, tenant, now).await?)),
            Some(s) if s.snapshot.population <= SYNC_SNAPSHOT_LIMIT => {
                let version = er::data_version(conn, tenant).await?;
                let population = er::population(conn, tenant).await?;
                if version != s.data_version || population != s.snapshot.population {
                    Ok(Some(take_snapshot(&self.db, tenant, now).await?))
                } else {
                    Ok(Some(s))
                }
            }
            Some(s) => {
                if (now - s.taken_at).to_std().is_ok_and(|age| age > SNAPSHOT_REFRESH) {
                    self.refresh_in_background(tenant);
                }
                Ok(Some(s))
            }
        }
    }

    fn refresh_in_background(&self, tenant: &TenantId) {
        let (db, t, clock) = (self.db.clone(), tenant.clone(), self.clock.clone());
        self.spawn_refresh(tenant, async move { take_snapshot(&db, &t, clock.now()).await.map(|_| ()) });
    }

    /// Runs `refresh` of `tenant`'s snapshot in a tracked task, unless one of that
    /// tenant runs already; returns whether it started. However the task ends —
    /// done, failed, panicked or aborted — the tenant is free for the next refresh.
    fn spawn_refresh(&self, tenant: &TenantId, refresh: impl Future<Output = Result<()>> + Send + 'static) -> bool {
        let Some(claim) = RefreshClaim::take(tenant) else { return false };
        self.tasks.spawn(async move {
            let claim = claim;
            if let Err(e) = refresh.await {
                tracing::warn!(tenant = %claim.0, error = %e, "refreshing the score snapshot failed");
            }
        });
        true
    }

    /// Org-wide metrics for a window ending on the as-of day.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn engagement_metrics(
        &self,
        p: &Principal,
        window_days: i32,
        as_of: Option<Timestamp>,
        cohort_months: i32,
    ) -> Result<MetricsOut> {
        require_reader(p)?;
        let w = window(window_days, 30, "window_days")?;
        let months = match cohort_months {
            0 => 6,
            m if (1..=24).contains(&m) => m,
            m => return Err(AppError::invalid("cohort_months", format!("must be from 0 to 24; got {m}"))),
        };
        let (as_of, now) = self.as_of(as_of)?;
        let conn = self.db.conn();
        let config = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, now)).await?.config;
        let today = day_of(config.tz(), as_of);
        let (a, b) = (today - w + 1, today);
        let tenant = &p.tenant;
        let churn_window = ChurnWindow::ending(today, w, config.inactivity_days);
        let (last, first) = (eng::month_of(today), eng::month_of(today) - months + 1);
        // Independent reads, each on a connection of its own: the call takes as long as
        // the slowest (the gap-histogram sums, on a large tenant), not their sum.
        let gaps = [
            GapSum::active(today, today),
            GapSum::active(today - 6, today),
            GapSum::active(today - 29, today),
            GapSum::active(a - w, a - 1),
            GapSum::returned(a - w, a - 1, b),
            churn_window.episodes(),
            churn_window.at_start(),
        ];
        let revenue_window = RevenueWindow { prev_from: a - w, prev_to: a - 1, to: b };
        let (sums, (dau_total, new_customers), from_cells, churned, last_day, cells) = tokio::try_join!(
            er::gap_sums(conn, tenant, &gaps),
            er::day_totals(conn, tenant, a, b),
            er::revenue_retention_cells(conn, tenant, revenue_window),
            churned_per_customer(conn, tenant, churn_window),
            er::last_recorded_day(conn, tenant),
            er::cohort_cells(conn, tenant, first, last, last),
        )?;
        let &[dau, wau, mau, previous_active, retained, episodes, at_start] = &sums[..] else {
            return Err(AppError::Internal(anyhow::anyhow!("{} gap sums for {} asked", sums.len(), gaps.len())));
        };
        // The revenue histogram's cells hold revenue up to the last recorded day: with
        // anything recorded after the as-of day, count per customer instead.
        let recorded_after = last_day.is_some_and(|d| d > today);
        let (previous_revenue, retained_revenue) =
            if recorded_after { er::revenue_retention(conn, tenant, a - w, a - 1, b).await? } else { from_cells };
        let sums = MetricSums {
            dau,
            wau,
            mau,
            dau_total,
            new_customers,
            churn: ChurnSums::of(episodes, at_start, churned),
            previous_active,
            retained,
            previous_revenue,
            retained_revenue,
        };
        // The stored cells are cut by month. When something was recorded after the
        // as-of day, the as-of month is counted from its days up to that day instead.
        let cells = if recorded_after {
            let mut cells = er::cohort_cells(conn, tenant, first, last, last - 1).await?;
            let by_first_day =
                er::active_by_first_day(conn, tenant, eng::month_start(last), today, eng::month_start(first)).await?;
            cells.extend(em::as_of_month_cells(last, &by_first_day));
            cells
        } else {
            cells
        };
        Ok(MetricsOut {
            as_of,
            time_zone: config.time_zone.clone(),
            currency: config.currency.clone(),
            start: a,
            end: b,
            metrics: em::org_metrics(w, sums),
            cohorts: em::cohorts(&cells, first, last),
        })
    }

    /// Customers ranked by score or by an action's count. Equal values are ordered by
    /// customer id (A→Z) in either direction, and a customer's rank is its row number
    /// in that order (1, 2, 3, 4 — not a competition rank 1, 2, 2, 4).
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn top_customers(&self, p: &Principal, req: TopRequest) -> Result<TopOut> {
        require_reader(p)?;
        let w = window(req.window_days, 30, "window_days")?;
        let (as_of, now) = self.as_of(req.as_of)?;
        let conn = self.db.conn();
        let stored = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, now)).await?;
        let config = &stored.config;
        let today = day_of(config.tz(), as_of);
        let (start, end) = (today - w + 1, today);
        let (limit, offset) = (req.page_size, req.offset);
        let tenant = &p.tenant;
        let mut score_on = None;
        let (filter, window, definition) = match &req.ranking {
            Ranking::Score => {
                // The stored keys hold every recorded day; when something was recorded
                // after the as-of day (a past as_of, or events up to a day ahead of
                // now), the scores of that day are summed from the roll-ups up to it.
                if er::last_recorded_day(conn, tenant).await?.is_some_and(|d| d > today) {
                    score_on = Some(score_on_day(conn, tenant, config, today).await?);
                }
                (
                    None,
                    None,
                    format!(
                        "engagement score on {}: Σ Wᵢ·Nᵢ over the events up to that day, each day's events decayed \
                         by 2^(−age in days / {} days) (as GetEngagementProfile at as_of); equal scores in \
                         customer-id order; rank is the row number",
                        date_of(today),
                        config.half_life_days
                    ),
                )
            }
            Ranking::Action { name, property } => (
                Some(CountFilter { action: name.clone(), property: property.clone(), from: start, to: end }),
                Some((w, start, end)),
                match property {
                    None => format!(
                        "count of {name} events from {} to {}; equal counts in customer-id order; rank is the row number",
                        date_of(start),
                        date_of(end)
                    ),
                    Some((k, v)) => format!(
                        "count of {name} events with {k} = {v} from {} to {}; equal counts in customer-id order; \
                         rank is the row number",
                        date_of(start),
                        date_of(end)
                    ),
                },
            ),
        };
        let by = match (&filter, &score_on) {
            (Some(f), _) => RankBy::Count(f),
            (None, Some(s)) => RankBy::ScoreOn(s),
            (None, None) => RankBy::StoredScore,
        };
        // The reported (and ranked) value of a stored key or a summed score.
        let value = |k: f64| match by {
            RankBy::StoredScore => {
                eng::round_score(eng::score_from_key(k, today, stored.reference_day, config.half_life_days))
            }
            RankBy::ScoreOn(_) => eng::round_score(k),
            RankBy::Count(_) => k,
        };
        let ranked = |offset: u64, limit: u64| ranked_page(conn, tenant, by, req.ascending, offset, limit, value);
        let mut out: Vec<Ranked>;
        if !req.include_zero {
            out = ranked(offset, limit).await?;
        } else {
            // Zeros follow the others (descending) or come first (ascending). The size
            // of the first part is only counted when a page starts past its end.
            let first = if req.ascending {
                er::zeros(conn, tenant, by, offset, limit).await?
            } else {
                ranked(offset, limit).await?
            };
            let got = first.len() as u64;
            out = first;
            if got < limit {
                let first_len = if got > 0 {
                    offset + got
                } else if req.ascending {
                    (er::population(conn, tenant).await? as u64)
                        .saturating_sub(er::count_positive(conn, tenant, by).await? as u64)
                } else {
                    er::count_positive(conn, tenant, by).await? as u64
                };
                let second_offset = (offset + got).saturating_sub(first_len);
                let more = if req.ascending {
                    ranked(second_offset, limit - got).await?
                } else {
                    er::zeros(conn, tenant, by, second_offset, limit - got).await?
                };
                out.extend(more);
            }
        }
        let next_offset = (out.len() as u64 >= limit).then_some(offset + limit);
        Ok(TopOut {
            customers: out.into_iter().enumerate().map(|(i, r)| (offset + i as u64 + 1, r)).collect(),
            next_offset,
            is_count: filter.is_some(),
            as_of_day: today,
            window,
            definition,
        })
    }

    /// The most frequent values of a property of an action in a window.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn top_property_values(
        &self,
        p: &Principal,
        action: &str,
        property: &str,
        window_days: i32,
        as_of: Option<Timestamp>,
        limit: u64,
    ) -> Result<ValuesOut> {
        require_secret(p)?;
        let w = window(window_days, 30, "window_days")?;
        let (as_of, now) = self.as_of(as_of)?;
        let conn = self.db.conn();
        let config = es::load_config(conn, &p.tenant, day_of(chrono_tz::Tz::UTC, now)).await?.config;
        let today = day_of(config.tz(), as_of);
        let (start, end) = (today - w + 1, today);
        let (values, total) = er::top_values(conn, &p.tenant, action, property, start, end, limit).await?;
        Ok(ValuesOut { values, total, window_days: w, start, end })
    }
}

/// Rows fetched on each side of a page to find the whole of a tie at its edges, at
/// first and at most.
const TIE_MARGIN: u64 = 16;
const MAX_TIE_MARGIN: u64 = 4_096;

/// A page of the customers with a non-zero value, with each value as reported
/// (`value` of the stored one). The database orders by the stored value, then by
/// customer id; values that differ only beyond what is reported (scores summed in
/// another order) are ties too, so the page is cut from a window around it re-sorted
/// by (reported value, customer id), widened until the ties at its edges fit
/// (at most [`MAX_TIE_MARGIN`] rows each side).
async fn ranked_page(
    conn: &impl crate::store::Conn,
    tenant: &TenantId,
    by: RankBy<'_>,
    ascending: bool,
    offset: u64,
    limit: u64,
    value: impl Fn(f64) -> f64,
) -> Result<Vec<Ranked>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut margin = if matches!(by, RankBy::Count(_)) { 0 } else { TIE_MARGIN };
    loop {
        let from = offset.saturating_sub(margin);
        let want = offset - from + limit + margin;
        let mut rows = er::top(conn, tenant, by, ascending, from, want).await?;
        for r in &mut rows {
            r.2 = value(r.2);
        }
        let first = (offset - from) as usize;
        if first >= rows.len() {
            return Ok(Vec::new());
        }
        let last = (first + limit as usize).min(rows.len()) - 1;
        let spills = (from > 0 && rows[0].2 == rows[first].2)
            || (rows.len() as u64 == want && rows[rows.len() - 1].2 == rows[last].2);
        if margin > 0 && spills && margin < MAX_TIE_MARGIN {
            margin *= 4;
            continue;
        }
        rows.sort_by(|a, b| {
            let v = if ascending { a.2.total_cmp(&b.2) } else { b.2.total_cmp(&a.2) };
            v.then_with(|| a.0.cmp(&b.0))
        });
        return Ok(rows.drain(first..=last).collect());
    }
}

/// One window's churn: the episodes and the customers at the start from the gap
/// histogram, the churned customers from it too when the window is no longer than the
/// threshold (see [`ChurnWindow::episodes_are_customers`]), else counted per customer.
pub(crate) async fn churn(conn: &impl crate::store::Conn, tenant: &TenantId, w: ChurnWindow) -> Result<ChurnSums> {
    let gaps = [w.episodes(), w.at_start()];
    let (sums, churned) = tokio::try_join!(er::gap_sums(conn, tenant, &gaps), churned_per_customer(conn, tenant, w))?;
    let &[episodes, at_start] = &sums[..] else {
        return Err(AppError::Internal(anyhow::anyhow!("{} gap sums for 2 asked", sums.len())));
    };
    Ok(ChurnSums::of(episodes, at_start, churned))
}

/// (churned, churned from the start) counted per customer when the window is longer
/// than the threshold; `None` when the histogram's episodes are the customers.
async fn churned_per_customer(
    conn: &impl crate::store::Conn,
    tenant: &TenantId,
    w: ChurnWindow,
) -> crate::store::Result<Option<(i64, i64)>> {
    if w.episodes_are_customers() {
        return Ok(None);
    }
    er::churned_customers(conn, tenant, w).await.map(Some)
}

/// What ranking by the score of `day` sums: the weighted actions and the decay of
/// every recorded day up to `day` (the terms of [`eng::decayed_score`]).
async fn score_on_day(
    conn: &impl crate::store::Conn,
    tenant: &TenantId,
    config: &ScoringConfig,
    day: Day,
) -> Result<ScoreOn> {
    let weights = config.action_weights.iter().filter(|(_, w)| **w > 0.0).map(|(a, w)| (a.clone(), *w)).collect();
    let factors = er::recorded_days(conn, tenant, day)
        .await?
        .into_iter()
        .map(|d| (d, eng::decay((day - d) as f64, config.half_life_days)))
        .collect();
    Ok(ScoreOn { day, weights, factors })
}

/// Takes and stores a snapshot of the tenant's score keys.
async fn take_snapshot(db: &Db, tenant: &TenantId, now: Timestamp) -> Result<StoredSnapshot> {
    let conn = db.conn();
    // The version is read first: a change racing the scan makes the next read redo it.
    let version = er::data_version(conn, tenant).await?;
    let population = er::population(conn, tenant).await?;
    let keys = er::all_keys(conn, tenant).await?;
    let snapshot = eng::ScoreSnapshot::build(keys, population);
    let txn = db.begin_write().await?;
    er::save_snapshot(&txn, tenant, now, version, &snapshot).await?;
    txn.commit().await?;
    Ok(StoredSnapshot { taken_at: now, data_version: version, snapshot })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refresh_that_panics_leaves_its_tenant_free_for_the_next_one() {
        let svc = crate::service::in_memory().await;
        let tenant = TenantId("refresh-that-panics".into());
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        assert!(svc.spawn_refresh(&tenant, async move {
            let _ = wait.await;
            if true {
                panic!("the snapshot query blew up");
            }
            Ok(())
        }));
        assert!(!svc.spawn_refresh(&tenant, async { Ok(()) }), "one refresh of a tenant at a time");
        let _ = go.send(());
        svc.tasks.close();
        svc.tasks.wait().await;
        svc.tasks.reopen();

        let (done, finished) = tokio::sync::oneshot::channel();
        let started = svc.spawn_refresh(&tenant, async move {
            let _ = done.send(());
            Ok(())
        });
        assert!(started, "after the panic the tenant is refreshed again");
        finished.await.expect("the next refresh ran");
    }
}
