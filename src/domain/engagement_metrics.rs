//! Org-wide engagement metrics (DESIGN §9): DAU/WAU/MAU, stickiness, new and churned
//! customers, churn and retention rates, monthly cohorts and net revenue retention.
//!
//! Distinct-customer counts over any window come from one small per-tenant table, the
//! *gap histogram*: for every (customer, active day) it counts the gap in days to the
//! customer's next active day (or "none yet"). A customer is active in [from, to]
//! exactly when it has an active day d in the window whose next active day is after
//! `to` — its last one in the window — so each customer is counted once, by summing
//! histogram cells. The histogram has one cell per (day, gap), so reads cost in
//! proportion to days, never to customers or events; ingestion only touches the
//! cells of the days it adds (see [`gap_delta`]).

use std::collections::{BTreeMap, BTreeSet};

use super::engagement::{Day, month_of};

/// The gap stored for an active day with no later active day (yet).
pub const NO_NEXT: i32 = 0;

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

    /// Customers whose `inactivity_days` without activity ended within [a, b]: their
    /// last active day d before the silence has d + T in [a, b] and no activity in
    /// the T days after it. They count as churned on day d + T.
    pub fn churned(a: Day, b: Day, inactivity_days: i32) -> Self {
        GapSum { gap_over: Some(inactivity_days), ..Self::days(a - inactivity_days, b - inactivity_days) }
    }

    /// Customers active in [from, to] who came back within [to + 1, by].
    pub fn returned(from: Day, to: Day, by: Day) -> Self {
        GapSum { next_after: Some(to), next_by: Some(by), ..Self::days(from, to) }
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
    /// Customers churned in the window (see [`GapSum::churned`]).
    pub churned: i64,
    /// Customers active in the `inactivity_days` before the window: the customers
    /// the window starts with.
    pub at_start: i64,
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
    pub churned: i64,
    pub at_start: i64,
    /// churned / at_start.
    pub churn_rate: Option<f64>,
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
        churned: s.churned,
        at_start: s.at_start,
        churn_rate: ratio(s.churned, s.at_start),
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

/// Cohorts from (first-seen month, active month, customers) cells, for the cohort
/// months [first, last], each followed up to `last`.
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
    fn churn_counts_the_day_the_silence_reaches_the_threshold() {
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
            assert_eq!(sum(&h, GapSum::churned(a, b, t)), brute, "[{a}, {b}]");
        }
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
                churned: 1,
                at_start: 4,
                previous_active: 5,
                retained: 4,
                previous_revenue: 1000,
                retained_revenue: 1100,
            },
        );
        assert_eq!(m.mean_dau, 4.0);
        assert_eq!(m.stickiness, Some(0.5));
        assert_eq!(m.churn_rate, Some(0.25));
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
