//! Org-wide engagement metrics: DAU/WAU/MAU, stickiness, new and churned customers,
//! churn and retention rates, monthly cohorts and net revenue retention. Every
//! definition here holds at any as-of day: nothing recorded after it counts.
//!
//! **Churn.** A customer *churns* on day d + T when d is an active day followed by T
//! days without activity (T = the tenant's inactivity threshold); one customer may
//! churn several times (go silent, come back, go silent again). In a window [a, b]:
//! - *churn episodes*: churn days in [a, b], summed over customers;
//! - *churned customers*: customers with at least one churn day in [a, b];
//! - *customers at the start*: customers active in the T days before the window
//!   ([a − T, a − 1]), i.e. not churned when it starts;
//! - *churn rate* = customers at the start who churned in the window / customers at
//!   the start — at most 1. Customers acquired inside the window count as churned
//!   customers (and episodes) but not in the rate.
//!
//! See [`ChurnSums`] and [`ChurnWindow`].
//!
//! Distinct-customer counts over any window come from one small per-tenant table, the
//! *gap histogram*: for every (customer, active day) it counts the gap in days to the
//! customer's next active day (or "none yet"). A customer is active in [from, to]
//! exactly when it has an active day d in the window whose next active day is after
//! `to` — its last one in the window — so each customer is counted once, by summing
//! histogram cells. The histogram has one cell per (day, gap), so reads cost in
//! proportion to days, never to customers or events; ingestion only touches the
//! cells of the days it adds (see [`gap_delta`]).
//!
//! **Net revenue retention** of a window C = [a, b] after P = [a − w, a − 1]: the
//! revenue in C of the customers with revenue in P, over the revenue in P. It comes
//! from a second histogram, of revenue: for every (customer, day f with revenue) the
//! cell (f, the customer's previous day with revenue) holds the customer's revenue on f
//! and every later day. A customer with revenue in P and in C has exactly one revenue
//! day f in C whose previous one is in P (its first in C), and the cell of f holds its
//! revenue in C — when nothing was recorded after b. So the retained revenue is the
//! sum of the cells with f in C and the previous day in P, at a cost in days (see
//! [`revenue_delta`]); at an as-of day before the last recorded one the service
//! counts per customer instead.

use std::collections::{BTreeMap, BTreeSet};

use super::engagement::{Day, month_of};

/// The gap stored for an active day with no later active day (yet).
pub const NO_NEXT: i32 = 0;

/// The longest window the revenue histogram is exact for (the longest `window_days`).
pub const REVENUE_WINDOW_DAYS: i32 = 365;

/// `prev_day` of a revenue cell whose day is the customer's first with revenue (as far
/// back as ingestion read).
pub const NO_PREV: i32 = -1;

/// `prev_day` of the cell that holds a day's revenue of all customers.
pub const DAY_TOTAL: i32 = -2;

/// The revenue cells of one customer whose revenue days are `days` ((day, revenue >
/// 0), sorted), for the days from `from` on, added to `out` times `sign`: (f, previous
/// revenue day or [`NO_PREV`]) → revenue on f and after.
fn revenue_cells(days: &[(Day, i64)], from: Day, sign: i64, out: &mut BTreeMap<(Day, i32), i64>) {
    let mut after = 0;
    for (i, &(day, revenue)) in days.iter().enumerate().rev() {
        after += revenue;
        if day >= from {
            let prev = if i == 0 { NO_PREV } else { days[i - 1].0 };
            *out.entry((day, prev)).or_default() += sign * after;
        }
    }
}

/// What a batch changes in the revenue histogram for one customer, added to `out`:
/// `now` is the customer's revenue days after the batch ((day, revenue), sorted, read
/// from [`revenue_reach`]'s second day on), `added` the batch's revenue per day.
/// Only cells from `from` on (its first day) are kept exact: the windows summed later
/// end on or after the batch's last day, so they read no cell before it.
pub fn revenue_delta(now: &[(Day, i64)], added: &BTreeMap<Day, i64>, from: Day, out: &mut BTreeMap<(Day, i32), i64>) {
    let before: Vec<(Day, i64)> =
        now.iter().map(|&(d, r)| (d, r - added.get(&d).copied().unwrap_or(0))).filter(|&(_, r)| r > 0).collect();
    revenue_cells(now, from, 1, out);
    revenue_cells(&before, from, -1, out);
    for (&day, &revenue) in added {
        *out.entry((day, DAY_TOTAL)).or_default() += revenue;
    }
}

/// Net revenue retention's two sums over revenue-histogram cells, for the window
/// (`prev_to`, `to`] after [`prev_from`, `prev_to`] (the storage layer sums the same
/// conditions in SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevenueWindow {
    pub prev_from: Day,
    pub prev_to: Day,
    pub to: Day,
}

impl RevenueWindow {
    /// Whether a cell is revenue of the earlier window (all of it counts).
    pub fn previous(&self, day: Day, prev: i32) -> bool {
        prev == DAY_TOTAL && day >= self.prev_from && day <= self.prev_to
    }

    /// Whether a cell is revenue in the later window of customers with revenue in the
    /// earlier one: their first revenue day in it, its previous one in the earlier.
    pub fn retained(&self, day: Day, prev: i32) -> bool {
        day > self.prev_to && day <= self.to && prev >= self.prev_from && prev <= self.prev_to
    }
}

/// For a batch whose last day with revenue is `last`: the first day whose cells it
/// keeps exact, and the first day of history it must read (so that every previous
/// day a window of up to [`REVENUE_WINDOW_DAYS`] asks for is known).
pub fn revenue_reach(last: Day) -> (Day, Day) {
    let from = last - REVENUE_WINDOW_DAYS;
    (from, from - REVENUE_WINDOW_DAYS - 1)
}

/// One (day, gap) cell per active day of a sorted, deduplicated set of days.
pub fn gap_entries(days: &[Day]) -> Vec<(Day, i32)> {
    days.iter().enumerate().map(|(i, d)| (*d, days.get(i + 1).map(|n| n - d).unwrap_or(NO_NEXT))).collect()
}

/// How the histogram changes when a customer's active days go from `old` to `new`
/// (sorted, deduplicated, `new` ⊇ `old`). Either may be just the tail that changes:
/// the days before the first new day only matter through the last of them.
pub fn gap_delta(old: &[Day], new: &[Day]) -> BTreeMap<(Day, i32), i64> {
    let mut out: BTreeMap<(Day, i32), i64> = BTreeMap::new();
    for e in gap_entries(old) {
        *out.entry(e).or_default() -= 1;
    }
    for e in gap_entries(new) {
        *out.entry(e).or_default() += 1;
    }
    out.retain(|_, n| *n != 0);
    out
}

/// How the cohort table (first-seen month × active month → customers) changes when a
/// customer's active days go from `old` to `new` (sorted; `new` ⊇ `old`). `old` and
/// `new` must each start with the customer's first active day, or be tails whose
/// first-seen month is given as `old_cohort` / `new_cohort`.
pub fn cohort_delta(old_cohort: Option<i32>, old: &[Day], new_cohort: i32, new: &[Day]) -> BTreeMap<(i32, i32), i64> {
    let months = |days: &[Day]| days.iter().map(|d| month_of(*d)).collect::<BTreeSet<i32>>();
    let mut out: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    if let Some(c) = old_cohort {
        for m in months(old) {
            *out.entry((c, m)).or_default() -= 1;
        }
    }
    for m in months(new) {
        *out.entry((new_cohort, m)).or_default() += 1;
    }
    out.retain(|_, n| *n != 0);
    out
}

/// A sum over histogram cells: days in [from, to], and optionally the next active
/// day after a day (`next_after`), the gap over a length (`gap_over`), or the next
/// active day known and at most a day (`next_by`). "No next day yet" counts as after
/// any day and over any gap, and never as known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapSum {
    pub from: Day,
    pub to: Day,
    pub next_after: Option<Day>,
    pub gap_over: Option<i32>,
    pub next_by: Option<Day>,
}

impl GapSum {
    fn days(from: Day, to: Day) -> Self {
        GapSum { from, to, next_after: None, gap_over: None, next_by: None }
    }

    /// Whether a cell counts (the storage layer sums the same condition in SQL).
    pub fn matches(&self, day: Day, gap: i32) -> bool {
        let none = gap == NO_NEXT;
        day >= self.from
            && day <= self.to
            && self.next_after.is_none_or(|x| none || day + gap > x)
            && self.gap_over.is_none_or(|k| none || gap > k)
            && self.next_by.is_none_or(|y| !none && day + gap <= y)
    }

    /// Distinct customers active in [from, to].
    pub fn active(from: Day, to: Day) -> Self {
        GapSum { next_after: Some(to), ..Self::days(from, to) }
    }

    /// Churn *episodes* in [a, b]: active days d with d + T in [a, b] and no activity
    /// in the T days after d (each is a churn on day d + T). A customer who churns
    /// twice in the window is two episodes; [`ChurnWindow`] counts customers.
    pub fn churn_episodes(a: Day, b: Day, inactivity_days: i32) -> Self {
        GapSum { gap_over: Some(inactivity_days), ..Self::days(a - inactivity_days, b - inactivity_days) }
    }

    /// Customers active in [from, to] who came back within [to + 1, by].
    pub fn returned(from: Day, to: Day, by: Day) -> Self {
        GapSum { next_after: Some(to), next_by: Some(by), ..Self::days(from, to) }
    }
}

/// One window's churn, as [`ChurnWindow`] defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChurnSums {
    /// Churn days in the window, summed over customers.
    pub episodes: i64,
    /// Customers with at least one churn day in the window.
    pub churned: i64,
    /// Of the customers at the start, those who churned in the window.
    pub churned_from_start: i64,
    /// Customers active in the threshold's days before the window.
    pub at_start: i64,
}

impl ChurnSums {
    /// The sums when every episode is a distinct customer at the start (see
    /// [`ChurnWindow::episodes_are_customers`]).
    pub fn from_episodes(episodes: i64, at_start: i64) -> Self {
        ChurnSums { episodes, churned: episodes, churned_from_start: episodes, at_start }
    }

    /// The sums from the histogram's episodes and customers at the start, with the
    /// (churned, churned from the start) counted per customer when the window is
    /// longer than the threshold, `None` when it is not.
    pub fn of(episodes: i64, at_start: i64, per_customer: Option<(i64, i64)>) -> Self {
        match per_customer {
            None => Self::from_episodes(episodes, at_start),
            Some((churned, churned_from_start)) => ChurnSums { episodes, churned, churned_from_start, at_start },
        }
    }

    /// churned from the start / at the start: the share of the customers the window
    /// started with who churned in it (0–1); `None` without customers at the start.
    pub fn rate(&self) -> Option<f64> {
        ratio(self.churned_from_start, self.at_start)
    }

    /// episodes / at the start: churn episodes (of anyone, also customers acquired in
    /// the window) per customer at the start; may exceed 1.
    pub fn episode_rate(&self) -> Option<f64> {
        ratio(self.episodes, self.at_start)
    }
}

/// A window [a, b] of churn with inactivity threshold T (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChurnWindow {
    pub a: Day,
    pub b: Day,
    pub inactivity_days: i32,
}

impl ChurnWindow {
    /// The window of `days` days ending on `end` (inclusive).
    pub fn ending(end: Day, days: i32, inactivity_days: i32) -> Self {
        ChurnWindow { a: end - days + 1, b: end, inactivity_days }
    }

    /// Customers at the start: active in [a − T, a − 1].
    pub fn at_start(&self) -> GapSum {
        GapSum::active(self.a - self.inactivity_days, self.a - 1)
    }

    /// Churn episodes in the window.
    pub fn episodes(&self) -> GapSum {
        GapSum::churn_episodes(self.a, self.b, self.inactivity_days)
    }

    /// Whether the episodes are distinct customers who were all customers at the
    /// start, so the histogram alone gives every churn figure: true when the window
    /// is no longer than the threshold. A churn day c = d + T in [a, b] has d ≤ b − T
    /// < a, so d is in [a − T, a − 1] (the customer was there at the start); and two
    /// churns of one customer need active days d₁ < d₂ with d₂ − d₁ > T, which do not
    /// fit in [a − T, a − 1].
    pub fn episodes_are_customers(&self) -> bool {
        self.b - self.a < self.inactivity_days
    }

    /// The active days a per-customer count must read: [a − T, b].
    pub fn days_read(&self) -> (Day, Day) {
        (self.a - self.inactivity_days, self.b)
    }

    /// For one customer's sorted active days (all of them, or those in
    /// [`days_read`](Self::days_read)): (churned in the window, churned in it and was a
    /// customer at its start). The storage layer counts the same condition in SQL.
    pub fn customer(&self, days: &[Day]) -> (bool, bool) {
        let t = self.inactivity_days;
        let churned = days.iter().enumerate().any(|(i, d)| {
            let churn_day = d + t;
            // The next active day, if it is read at all, is at most b: beyond it (or
            // none) means the silence reached T (churn_day ≤ b).
            (self.a..=self.b).contains(&churn_day) && days.get(i + 1).is_none_or(|n| *n > churn_day)
        });
        let at_start = days.iter().any(|d| (self.a - t..self.a).contains(d));
        (churned, churned && at_start)
    }
}

/// The sums [`org_metrics`] needs, for a window [start, end] of `days` days ending
/// on the as-of day.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricSums {
    pub dau: i64,
    pub wau: i64,
    pub mau: i64,
    /// Σ DAU over the window's days.
    pub dau_total: i64,
    /// Customers first seen in the window.
    pub new_customers: i64,
    pub churn: ChurnSums,
    /// Customers active in the previous window of the same length…
    pub previous_active: i64,
    /// …and of them, those active again in this window.
    pub retained: i64,
    /// Revenue (minor units) in the previous window of the customers who bought then…
    pub previous_revenue: i64,
    /// …and what the same customers spent in this window.
    pub retained_revenue: i64,
}

/// The org-wide numbers of one window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrgMetrics {
    pub window_days: i32,
    pub dau: i64,
    pub wau: i64,
    pub mau: i64,
    pub mean_dau: f64,
    /// Mean DAU over the window / MAU; `None` when MAU is 0.
    pub stickiness: Option<f64>,
    pub new_customers: i64,
    pub churn: ChurnSums,
    /// [`ChurnSums::rate`].
    pub churn_rate: Option<f64>,
    /// [`ChurnSums::episode_rate`].
    pub churn_episode_rate: Option<f64>,
    pub previous_active: i64,
    pub retained: i64,
    /// retained / previous_active.
    pub retention_rate: Option<f64>,
    /// retained_revenue / previous_revenue.
    pub net_revenue_retention: Option<f64>,
    pub previous_revenue: i64,
    pub retained_revenue: i64,
}

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Rates from the sums.
pub fn org_metrics(window_days: i32, s: MetricSums) -> OrgMetrics {
    let mean_dau = s.dau_total as f64 / window_days.max(1) as f64;
    OrgMetrics {
        window_days,
        dau: s.dau,
        wau: s.wau,
        mau: s.mau,
        mean_dau,
        stickiness: (s.mau > 0).then(|| mean_dau / s.mau as f64),
        new_customers: s.new_customers,
        churn: s.churn,
        churn_rate: s.churn.rate(),
        churn_episode_rate: s.churn.episode_rate(),
        previous_active: s.previous_active,
        retained: s.retained,
        retention_rate: ratio(s.retained, s.previous_active),
        net_revenue_retention: ratio(s.retained_revenue, s.previous_revenue),
        previous_revenue: s.previous_revenue,
        retained_revenue: s.retained_revenue,
    }
}

/// One monthly cohort: customers first seen in `month`, and how many of them were
/// active in each month since (index 0 is the cohort's own month).
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub month: i32,
    pub size: i64,
    pub active: Vec<i64>,
    pub retention: Vec<f64>,
}

/// The as-of month's cells: from the customers active in that month up to the as-of
/// day, counted per first active day (`(first day, customers)`, first days up to the
/// as-of day), as (cohort month, `last`, customers). The stored cells are cut by
/// month only, so for the as-of month they would also count days after the as-of
/// day — and customers first seen after it.
pub fn as_of_month_cells(last: i32, by_first_day: &[(Day, i64)]) -> Vec<(i32, i32, i64)> {
    let mut out: BTreeMap<i32, i64> = BTreeMap::new();
    for (first_day, n) in by_first_day {
        *out.entry(month_of(*first_day)).or_default() += n;
    }
    out.into_iter().map(|(c, n)| (c, last, n)).collect()
}

/// Cohorts from (first-seen month, active month, customers) cells, for the cohort
/// months [first, last], each followed up to `last`. At a past as-of day the cells
/// of its month must be [`as_of_month_cells`].
pub fn cohorts(cells: &[(i32, i32, i64)], first: i32, last: i32) -> Vec<Cohort> {
    (first..=last)
        .map(|m| {
            let get = |a: i32| cells.iter().filter(|(c, x, _)| *c == m && *x == a).map(|(_, _, n)| *n).sum::<i64>();
            let size = get(m);
            let active: Vec<i64> = (m..=last).map(get).collect();
            let retention = active.iter().map(|n| if size > 0 { *n as f64 / size as f64 } else { 0.0 }).collect();
            Cohort { month: m, size, active, retention }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Customers' revenue arrives in batches, most on the current day, some up to 30
    /// days late and some on a day that has revenue already; the histogram is kept by
    /// [`revenue_delta`] with each batch's reach, from history read as ingestion reads
    /// it. Every window of up to a year that ends on or after the last recorded day
    /// then sums to what the customers' revenue gives directly.
    #[test]
    fn revenue_retention_from_the_histogram_is_the_per_customer_sum() {
        let mut numbers = crate::domain::testing::numbers(11);
        let mut next = |m: i64| numbers(m as u64) as i64;
        let mut custs: Vec<BTreeMap<Day, i64>> = vec![BTreeMap::new(); 12];
        let mut cells: BTreeMap<(Day, i32), i64> = BTreeMap::new();
        let mut today: Day = 1_000;
        for _ in 0..600 {
            today += next(3) as Day;
            let mut batch: BTreeMap<usize, BTreeMap<Day, i64>> = BTreeMap::new();
            for _ in 0..1 + next(3) {
                let c = next(custs.len() as i64) as usize;
                let day = if next(4) == 0 { today - next(31) as Day } else { today };
                *batch.entry(c).or_default().entry(day).or_default() += 1 + next(500);
            }
            for (c, added) in &batch {
                for (d, r) in added {
                    *custs[*c].entry(*d).or_default() += r;
                }
            }
            let last = batch.values().flat_map(|a| a.keys()).max().copied().unwrap();
            let (from, read_from) = revenue_reach(last);
            for (c, added) in &batch {
                let now: Vec<(Day, i64)> = custs[*c].range(read_from..).map(|(d, r)| (*d, *r)).collect();
                revenue_delta(&now, added, from, &mut cells);
            }
        }
        let last_day = custs.iter().filter_map(|c| c.keys().max()).max().copied().unwrap();
        let mut checked = 0;
        for b in [last_day, last_day + 1, last_day + 40] {
            for w in [1, 2, 7, 30, 90, 200, REVENUE_WINDOW_DAYS] {
                let win = RevenueWindow { prev_from: b - 2 * w + 1, prev_to: b - w, to: b };
                let sum = |f: &dyn Fn(Day, i32) -> bool| -> i64 {
                    cells.iter().filter(|((d, p), _)| f(*d, *p)).map(|(_, v)| *v).sum()
                };
                let in_range =
                    |c: &BTreeMap<Day, i64>, lo: Day, hi: Day| c.range(lo..=hi).map(|(_, r)| *r).sum::<i64>();
                let previous: i64 = custs.iter().map(|c| in_range(c, win.prev_from, win.prev_to)).sum();
                let retained: i64 = custs
                    .iter()
                    .filter(|c| in_range(c, win.prev_from, win.prev_to) > 0)
                    .map(|c| in_range(c, win.prev_to + 1, win.to))
                    .sum();
                assert_eq!(sum(&|d, p| win.previous(d, p)), previous, "previous, b = {b}, w = {w}");
                assert_eq!(sum(&|d, p| win.retained(d, p)), retained, "retained, b = {b}, w = {w}");
                checked += usize::from(retained > 0);
            }
        }
        assert!(checked >= 12, "most windows retain some revenue ({checked})");
    }

    /// Brute force: customers' day sets, counted directly.
    fn brute_active(custs: &[Vec<Day>], from: Day, to: Day) -> i64 {
        custs.iter().filter(|ds| ds.iter().any(|d| (from..=to).contains(d))).count() as i64
    }

    fn histogram(custs: &[Vec<Day>]) -> BTreeMap<(Day, i32), i64> {
        let mut h: BTreeMap<(Day, i32), i64> = BTreeMap::new();
        for ds in custs {
            // Build it the way ingestion does: one day at a time, in a shuffled order.
            let mut seen: Vec<Day> = Vec::new();
            let mut order = ds.clone();
            order.reverse();
            let half = order.len() / 2;
            order.rotate_left(half);
            for d in order {
                let old = seen.clone();
                seen.push(d);
                seen.sort_unstable();
                seen.dedup();
                for (k, v) in gap_delta(&old, &seen) {
                    *h.entry(k).or_default() += v;
                }
            }
        }
        h.retain(|_, n| *n != 0);
        h
    }

    fn sum(h: &BTreeMap<(Day, i32), i64>, q: GapSum) -> i64 {
        h.iter().filter(|((d, g), _)| q.matches(*d, *g)).map(|(_, n)| n).sum()
    }

    fn customers() -> Vec<Vec<Day>> {
        vec![vec![1, 2, 3, 10, 40], vec![5], vec![20, 21, 60, 61], vec![2, 45], vec![30, 31, 32, 33, 34, 35]]
    }

    #[test]
    fn windows_count_each_active_customer_once() {
        let custs = customers();
        let h = histogram(&custs);
        for from in 0..70 {
            for len in [1, 7, 30] {
                let to = from + len - 1;
                assert_eq!(sum(&h, GapSum::active(from, to)), brute_active(&custs, from, to), "[{from}, {to}]");
            }
        }
    }

    #[test]
    fn tails_give_the_same_histogram_as_whole_sets() {
        let whole = gap_delta(&[1, 5, 9], &[1, 5, 9, 12, 15]);
        let tail = gap_delta(&[9], &[9, 12, 15]);
        assert_eq!(whole, tail);
        // A late day between two known ones changes the gap of the one before it.
        let late = gap_delta(&[1, 9], &[1, 5, 9]);
        assert_eq!(late, BTreeMap::from([((1, 8), -1), ((1, 4), 1), ((5, 4), 1)]));
    }

    #[test]
    fn churn_episodes_are_the_days_the_silence_reaches_the_threshold() {
        let custs = customers();
        let h = histogram(&custs);
        let t = 30;
        for a in 0..100 {
            let b = a + 9;
            // Brute force: a customer churns on d + T for an active day d followed by
            // T inactive days.
            let brute: i64 = custs
                .iter()
                .map(|ds| {
                    ds.iter()
                        .filter(|d| {
                            let churn_day = **d + t;
                            (a..=b).contains(&churn_day) && !ds.iter().any(|x| *x > **d && *x <= churn_day)
                        })
                        .count() as i64
                })
                .sum();
            assert_eq!(sum(&h, GapSum::churn_episodes(a, b, t)), brute, "[{a}, {b}]");
        }
    }

    /// Brute force, by the definition: (customers with a churn day in [a, b], of them
    /// those active in [a − t, a − 1], customers active in [a − t, a − 1]).
    fn brute_churn(custs: &[Vec<Day>], a: Day, b: Day, t: i32) -> (i64, i64, i64) {
        let churns =
            |ds: &Vec<Day>| (a..=b).any(|c| ds.contains(&(c - t)) && !ds.iter().any(|x| *x > c - t && *x <= c));
        let there = |ds: &Vec<Day>| ds.iter().any(|d| (a - t..a).contains(d));
        let churned = custs.iter().filter(|ds| churns(ds)).count() as i64;
        let from_start = custs.iter().filter(|ds| churns(ds) && there(ds)).count() as i64;
        (churned, from_start, custs.iter().filter(|ds| there(ds)).count() as i64)
    }

    /// Customers who go silent, come back and go silent again within a month.
    fn restless() -> Vec<Vec<Day>> {
        vec![
            vec![1, 2, 3, 10, 40],
            vec![5],
            vec![20, 21, 60, 61],
            vec![2, 45],
            vec![30, 31, 32, 33, 34, 35],
            vec![8, 16, 24, 32, 40, 48],
            vec![11, 12, 30, 31, 50],
            vec![3, 9, 15, 26, 38, 39],
        ]
    }

    #[test]
    fn churned_customers_are_counted_once_and_the_rate_never_exceeds_one() {
        let custs = restless();
        let h = histogram(&custs);
        let mut saw_two_churns = false;
        for t in [3, 7, 10, 30] {
            for w in [1, 7, 10, 30, 60] {
                for end in 0..110 {
                    let win = ChurnWindow::ending(end, w, t);
                    let (churned, from_start, at_start) = brute_churn(&custs, win.a, win.b, t);
                    let by_customer: Vec<(bool, bool)> = custs.iter().map(|ds| win.customer(ds)).collect();
                    assert_eq!(
                        by_customer.iter().filter(|c| c.0).count() as i64,
                        churned,
                        "t {t} [{}, {}]",
                        win.a,
                        win.b
                    );
                    assert_eq!(by_customer.iter().filter(|c| c.1).count() as i64, from_start);
                    // Reading only the days [a − T, b] gives the same answer.
                    let (lo, hi) = win.days_read();
                    let cut: Vec<(bool, bool)> = custs
                        .iter()
                        .map(|ds| {
                            win.customer(&ds.iter().copied().filter(|d| (lo..=hi).contains(d)).collect::<Vec<_>>())
                        })
                        .collect();
                    assert_eq!(cut, by_customer);
                    assert_eq!(sum(&h, win.at_start()), at_start);
                    let episodes = sum(&h, win.episodes());
                    saw_two_churns |= episodes > churned;
                    let sums = ChurnSums { episodes, churned, churned_from_start: from_start, at_start };
                    assert!(sums.rate().is_none_or(|r| (0.0..=1.0).contains(&r)));
                    if win.episodes_are_customers() {
                        assert_eq!(ChurnSums::from_episodes(episodes, at_start), sums, "t {t} w {w} end {end}");
                    }
                }
            }
        }
        assert!(saw_two_churns, "the data has customers who churn twice in a window");
    }

    #[test]
    fn a_short_threshold_separates_episodes_customers_and_the_rate() {
        // T = 7, the 30 days [100, 129]. X: active 95, 110, 125 → churns on 102 and 117
        // (and 132, after the window): two episodes, one customer, there at the start.
        // Y: first seen 105 → churns on 112: churned, not at the start. Z: active every
        // third day from 96 to 126 → churns on 133: not in the window.
        let x = vec![95, 110, 125];
        let y = vec![105];
        let z: Vec<Day> = (96..=128).step_by(3).collect();
        let custs = vec![x, y, z];
        let h = histogram(&custs);
        let win = ChurnWindow::ending(129, 30, 7);
        assert!(!win.episodes_are_customers());
        assert_eq!(sum(&h, win.episodes()), 3);
        assert_eq!(sum(&h, win.at_start()), 2); // X and Z
        let by: Vec<(bool, bool)> = custs.iter().map(|ds| win.customer(ds)).collect();
        assert_eq!(by, vec![(true, true), (true, false), (false, false)]);
        let sums = ChurnSums { episodes: 3, churned: 2, churned_from_start: 1, at_start: 2 };
        assert_eq!(sums.rate(), Some(0.5));
        assert_eq!(sums.episode_rate(), Some(1.5), "the episode figure can pass 100 %");
    }

    #[test]
    fn the_as_of_months_cells_count_customers_first_seen_by_then() {
        let d = super::super::engagement::month_start;
        let (jan, feb) = (672, 673);
        // Active in February up to the as-of day: two first seen in January, one on
        // February 3; customers first seen after the as-of day are not in the input.
        let cells = as_of_month_cells(feb, &[(d(jan) + 4, 1), (d(jan) + 20, 1), (d(feb) + 2, 1)]);
        assert_eq!(cells, vec![(jan, feb, 2), (feb, feb, 1)]);
        let mut all = vec![(jan, jan, 2)];
        all.extend(cells);
        let cs = cohorts(&all, jan, feb);
        assert_eq!((cs[0].size, cs[0].active.clone()), (2, vec![2, 2]));
        assert_eq!((cs[1].size, cs[1].active.clone()), (1, vec![1]));
    }

    #[test]
    fn retention_counts_the_previous_windows_customers_seen_again() {
        let custs = customers();
        let h = histogram(&custs);
        for a in 10..70 {
            let w = 10;
            let b = a + w - 1;
            let brute = custs
                .iter()
                .filter(|ds| ds.iter().any(|d| (a - w..a).contains(d)) && ds.iter().any(|d| (a..=b).contains(d)))
                .count() as i64;
            assert_eq!(sum(&h, GapSum::returned(a - w, a - 1, b)), brute, "[{a}, {b}]");
        }
    }

    #[test]
    fn rates_are_ratios_and_undefined_on_empty_bases() {
        let m = org_metrics(
            10,
            MetricSums {
                dau: 3,
                wau: 5,
                mau: 8,
                dau_total: 40,
                new_customers: 2,
                churn: ChurnSums { episodes: 3, churned: 2, churned_from_start: 1, at_start: 4 },
                previous_active: 5,
                retained: 4,
                previous_revenue: 1000,
                retained_revenue: 1100,
            },
        );
        assert_eq!(m.mean_dau, 4.0);
        assert_eq!(m.stickiness, Some(0.5));
        // Of the four customers at the start one churned; the other churned customer
        // and the third episode belong to customers acquired in the window.
        assert_eq!(m.churn_rate, Some(0.25));
        assert_eq!(m.churn_episode_rate, Some(0.75));
        assert_eq!(m.retention_rate, Some(0.8));
        assert_eq!(m.net_revenue_retention, Some(1.1));
        let empty = org_metrics(7, MetricSums::default());
        assert_eq!((empty.stickiness, empty.churn_rate, empty.retention_rate), (None, None, None));
    }

    #[test]
    fn cohorts_follow_first_seen_months() {
        // Customer 1: January and March; customer 2: January; customer 3: February.
        let jan = month_of(super::super::engagement::month_start(672)); // some month
        let mut cells: BTreeMap<(i32, i32), i64> = BTreeMap::new();
        let d = super::super::engagement::month_start;
        for (old_c, old, new_c, new) in [
            (None, vec![], jan, vec![d(jan) + 3]),
            (Some(jan), vec![d(jan) + 3], jan, vec![d(jan) + 3, d(jan + 2) + 1]),
            (None, vec![], jan, vec![d(jan) + 9]),
            (None, vec![], jan + 1, vec![d(jan + 1)]),
        ] {
            for (k, v) in cohort_delta(old_c, &old, new_c, &new) {
                *cells.entry(k).or_default() += v;
            }
        }
        // A late event moves customer 3 into January's cohort.
        for (k, v) in cohort_delta(Some(jan + 1), &[d(jan + 1)], jan, &[d(jan) + 20, d(jan + 1)]) {
            *cells.entry(k).or_default() += v;
        }
        let flat: Vec<(i32, i32, i64)> = cells.iter().map(|((c, m), n)| (*c, *m, *n)).collect();
        let cs = cohorts(&flat, jan, jan + 2);
        assert_eq!(cs[0].size, 3);
        assert_eq!(cs[0].active, vec![3, 1, 1]);
        assert!((cs[0].retention[1] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(cs[1].size, 0);
        assert_eq!(cs[2].size, 0);
    }
}
