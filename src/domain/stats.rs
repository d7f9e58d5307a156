//! The numbers behind every metric: headline scores, means and their 95 % confidence
//! intervals (their coverage is checked by simulation in `stats_coverage`), and the
//! time-series intervals.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::survey::{Bucket, Scale, SurveyKind};
use super::time::Timestamp;

/// The 97.5th percentile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A confidence interval at 95 %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

/// The numbers for one set of scores.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub n: i64,
    pub bucket_counts: BTreeMap<Bucket, i64>,
    pub headline: Option<f64>,
    pub headline_interval: Option<Interval>,
    pub mean: Option<f64>,
    pub mean_interval: Option<Interval>,
}

/// Summarises scores on one scale. Every bucket of the scale appears in the counts.
pub fn summarize(scale: Scale, scores: &[i32]) -> Summary {
    let n = scores.len() as i64;
    let mut bucket_counts: BTreeMap<Bucket, i64> = scale.bucket_ranges().iter().map(|r| (r.bucket, 0)).collect();
    for &s in scores {
        *bucket_counts.entry(scale.bucket(s)).or_default() += 1;
    }
    if n == 0 {
        return Summary { n, bucket_counts, ..Summary::default() };
    }
    let (headline, headline_interval) = match scale.kind {
        SurveyKind::Nps => {
            let p = bucket_counts[&Bucket::Promoter];
            let d = bucket_counts[&Bucket::Detractor];
            let (score, ci) = nps(p, d, n);
            (score, ci)
        }
        SurveyKind::Csat | SurveyKind::Ces => {
            let good = bucket_counts[&scale.good_bucket()];
            (100.0 * good as f64 / n as f64, wilson(good, n))
        }
    };
    let (mean, mean_interval) = mean_t(scores);
    Summary {
        n,
        bucket_counts,
        headline: Some(headline),
        headline_interval: Some(headline_interval),
        mean: Some(mean),
        mean_interval,
    }
}

/// NPS = 100 (p − d), the plain share of promoters less the share of detractors, with
/// its adjusted-Wald 95 % interval (Rocks 2016, "Interval estimation for the 'net
/// promoter score'", The American Statistician 70:4): add ¾ to the promoters and ¾ to
/// the detractors and 3 to n, so p̃ = (P + ¾) / (n + 3) and d̃ = (D + ¾) / (n + 3), then
/// take the variance of a difference of two proportions of one sample on those:
/// 100 ((p̃ − d̃) ± z sqrt((p̃ + d̃ − (p̃ − d̃)²) / (n + 3))), clamped to [−100, 100].
///
/// The interval is centred on the adjusted difference, not on the headline, and never
/// collapses to a point, as the plain normal approximation does when every answer
/// falls in one bucket. It holds the headline from n = 2 (checked for every sample up
/// to n = 300); at n = 1 a promoter's or a detractor's headline lies just outside it
/// (one detractor: −100, interval [−98.5, 48.5]).
pub fn nps(promoters: i64, detractors: i64, n: i64) -> (f64, Interval) {
    let headline = if n > 0 { 100.0 * (promoters - detractors) as f64 / n as f64 } else { 0.0 };
    let m = n as f64 + 3.0;
    let p = (promoters as f64 + 0.75) / m;
    let d = (detractors as f64 + 0.75) / m;
    let diff = p - d;
    let var = (p + d - diff * diff) / m;
    let half = Z_95 * var.max(0.0).sqrt();
    (headline, Interval { lower: (100.0 * (diff - half)).max(-100.0), upper: (100.0 * (diff + half)).min(100.0) })
}

/// Wilson score interval for `k` successes in `n`, in percent.
pub fn wilson(k: i64, n: i64) -> Interval {
    let nf = n as f64;
    let phat = k as f64 / nf;
    let z2 = Z_95 * Z_95;
    let denom = 1.0 + z2 / nf;
    let centre = (phat + z2 / (2.0 * nf)) / denom;
    let half = Z_95 * (phat * (1.0 - phat) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Interval { lower: 100.0 * (centre - half).max(0.0), upper: 100.0 * (centre + half).min(1.0) }
}

/// Mean and its Student-t interval (none for fewer than two scores).
pub fn mean_t(scores: &[i32]) -> (f64, Option<Interval>) {
    let n = scores.len() as f64;
    let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / n;
    if scores.len() < 2 {
        return (mean, None);
    }
    let var = scores.iter().map(|&s| (s as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let t = t_975(n - 1.0);
    let half = t * (var / n).sqrt();
    (mean, Some(Interval { lower: mean - half, upper: mean + half }))
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom.
pub fn t_975(df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(0.975),
        Err(_) => Z_95,
    }
}

/// Calendar grain of a time series (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Day,
    /// ISO weeks, Monday first.
    Week,
    Month,
}

/// The start of the period of `grain` that contains `t`.
pub fn period_start(grain: Grain, t: Timestamp) -> Timestamp {
    let date = t.date_naive();
    let start = match grain {
        Grain::Day => Some(date),
        Grain::Week => date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday()))),
        Grain::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1),
    };
    // Only the first days chrono can hold have no week start; they are outside the
    // API's range (docs/api.md, "Input rules"), and the day itself is the next best.
    midnight(start.unwrap_or(date))
}

fn midnight(date: NaiveDate) -> Timestamp {
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// The start of the period after the one starting at `start`, or `None` when that
/// time cannot be represented. Always later than `start` when it exists.
pub fn next_period(grain: Grain, start: Timestamp) -> Option<Timestamp> {
    let d = start.date_naive();
    let next = match grain {
        Grain::Day => d.checked_add_days(Days::new(1))?,
        Grain::Week => d.checked_add_days(Days::new(7))?,
        Grain::Month => d.with_day(1)?.checked_add_months(Months::new(1))?,
    };
    Some(midnight(next)).filter(|n| *n > start)
}

/// How many periods of `grain` cover [start, end), computed without listing them.
pub fn period_count(grain: Grain, start: Timestamp, end: Timestamp) -> u64 {
    if start >= end {
        return 0;
    }
    let first = period_start(grain, start).date_naive();
    // The last day the window touches, counted whole.
    let last = if end.time() == NaiveTime::MIN { end.date_naive().pred_opt() } else { Some(end.date_naive()) };
    let Some(last) = last.filter(|l| *l >= first) else { return 1 };
    let days = u64::try_from((last - first).num_days()).unwrap_or(0) + 1;
    match grain {
        Grain::Day => days,
        Grain::Week => days.div_ceil(7),
        Grain::Month => {
            let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            u64::try_from(months(last) - months(first)).unwrap_or(0) + 1
        }
    }
}

/// A window that would have more than the allowed number of periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPeriods {
    pub count: u64,
}

/// The periods covering [start, end): each is [from, to) clipped to the window. The
/// number is computed first, so a window of more than `limit` periods allocates
/// nothing and is refused.
pub fn periods(
    grain: Grain,
    start: Timestamp,
    end: Timestamp,
    limit: usize,
) -> Result<Vec<(Timestamp, Timestamp)>, TooManyPeriods> {
    let count = period_count(grain, start, end);
    if count > limit as u64 {
        return Err(TooManyPeriods { count });
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut from = period_start(grain, start);
    while from < end {
        match next_period(grain, from) {
            Some(to) => {
                out.push((from.max(start), to.min(end)));
                from = to;
            }
            None => {
                out.push((from.max(start), end));
                break;
            }
        }
    }
    Ok(out)
}

/// Time series may not have more points than this.
pub const MAX_SERIES_POINTS: usize = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} != {b}");
    }

    #[test]
    fn nps_of_a_known_sample() {
        // 5 promoters, 3 passives, 2 detractors: the headline is the plain
        // 100 (.5 − .2) = 30. Adjusted: p̃ = 5.75/13, d̃ = 2.75/13, centre 3/13,
        // variance (8.5/13 − 9/169)/13 = 101.5/2197; worked out by hand (and checked in
        // Python) to ten places: [−19.0506153764, 65.2044615302].
        let scale = Scale::parse(SurveyKind::Nps, None).unwrap();
        let s = summarize(scale, &[10, 9, 9, 10, 9, 7, 8, 8, 3, 6]);
        close(s.headline.unwrap(), 30.0);
        let ci = s.headline_interval.unwrap();
        close(ci.lower, -19.050_615_376_4);
        close(ci.upper, 65.204_461_530_2);
        close((ci.lower + ci.upper) / 2.0, 100.0 * 3.0 / 13.0);
    }

    #[test]
    fn nps_interval_is_clamped() {
        // Three promoters: p̃ = 3.75/6, d̃ = .75/6, centre .5, variance (.75 − .25)/6;
        // the raw upper bound 106.579… is clamped, the lower one is not.
        let (score, ci) = nps(3, 0, 3);
        close(score, 100.0);
        close(ci.upper, 100.0);
        close(ci.lower, -6.579_286_703_8);
        // Five detractors: centre −.625, raw lower bound −107.5… clamped to −100.
        let (score, ci) = nps(0, 5, 5);
        close(score, -100.0);
        close(ci.lower, -100.0);
        close(ci.upper, -17.491_453_034_2);
    }

    #[test]
    fn one_answer_gives_a_wide_interval_not_a_point() {
        // One detractor: p̃ = .75/4, d̃ = 1.75/4, centre −.25, variance .140625.
        let (score, ci) = nps(0, 1, 1);
        close(score, -100.0);
        close(ci.lower, -98.498_649_420_3);
        close(ci.upper, 48.498_649_420_3);
        let (score, ci) = nps(1, 0, 1);
        close(score, 100.0);
        close(ci.lower, -48.498_649_420_3);
        close(ci.upper, 98.498_649_420_3);
    }

    #[test]
    fn wilson_matches_the_textbook_example() {
        // 8 of 10 satisfied → Wilson 95 % ≈ [49.016, 94.332] %.
        let ci = wilson(8, 10);
        assert!((ci.lower - 49.016).abs() < 0.01, "{}", ci.lower);
        assert!((ci.upper - 94.332).abs() < 0.01, "{}", ci.upper);
    }

    #[test]
    fn t_quantiles_match_tables() {
        assert!((t_975(1.0) - 12.706).abs() < 1e-3);
        assert!((t_975(4.0) - 2.776).abs() < 1e-3);
        assert!((t_975(29.0) - 2.045).abs() < 1e-3);
    }

    #[test]
    fn mean_interval_needs_two_scores() {
        assert!(mean_t(&[4]).1.is_none());
        let (m, ci) = mean_t(&[1, 2, 3, 4, 5]);
        close(m, 3.0);
        let half = 2.776445105 * (2.5_f64 / 5.0).sqrt();
        let ci = ci.unwrap();
        assert!((ci.lower - (3.0 - half)).abs() < 1e-6);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let t = Utc.with_ymd_and_hms(2026, 11, 19, 15, 0, 0).unwrap(); // a Thursday
        assert_eq!(period_start(Grain::Week, t), Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap());
        assert_eq!(period_start(Grain::Month, t), Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
        let dec = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(next_period(Grain::Month, dec), Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()));
        let ps = periods(Grain::Day, t, t + chrono::Duration::days(2), MAX_SERIES_POINTS).unwrap();
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[0].0, t);
    }

    #[test]
    fn the_last_representable_month_ends_the_series_instead_of_looping() {
        let last = chrono::DateTime::<Utc>::MAX_UTC;
        assert_eq!(next_period(Grain::Month, period_start(Grain::Month, last)), None);
        let ps = periods(Grain::Month, last - chrono::Duration::days(40), last, 10).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1].1, last);
    }

    #[test]
    fn a_huge_window_is_refused_before_anything_is_listed() {
        let from = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        let err = periods(Grain::Day, from, to, MAX_SERIES_POINTS).unwrap_err();
        assert_eq!(err.count, 2_932_897);
        assert_eq!(periods(Grain::Month, from, to, 200_000).unwrap().len(), 12 * 8030);
    }

    fn any_time() -> impl proptest::strategy::Strategy<Value = Timestamp> {
        use proptest::prelude::*;
        (crate::domain::time::MIN_SECONDS..=crate::domain::time::MAX_SECONDS)
            .prop_map(|s| chrono::DateTime::from_timestamp(s, 0).unwrap())
    }

    fn any_grain() -> impl proptest::strategy::Strategy<Value = Grain> {
        proptest::sample::select(vec![Grain::Day, Grain::Week, Grain::Month])
    }

    proptest::proptest! {
        #[test]
        fn periods_tile_the_window_and_match_their_count(
            grain in any_grain(),
            start in any_time(),
            span in 1i64..(400 * 86_400),
        ) {
            let end = start + chrono::Duration::seconds(span);
            let ps = periods(grain, start, end, 100_000).unwrap();
            proptest::prop_assert_eq!(ps.len() as u64, period_count(grain, start, end));
            proptest::prop_assert_eq!(ps[0].0, start);
            proptest::prop_assert_eq!(ps[ps.len() - 1].1, end);
            for w in ps.windows(2) {
                proptest::prop_assert_eq!(w[0].1, w[1].0);
                proptest::prop_assert!(w[0].0 < w[0].1);
            }
        }

        #[test]
        fn next_period_always_advances(grain in any_grain(), t in any_time()) {
            let start = period_start(grain, t);
            proptest::prop_assert!(start <= t);
            let next = next_period(grain, start).unwrap();
            proptest::prop_assert!(next > t);
            proptest::prop_assert_eq!(period_start(grain, next), next);
        }

        #[test]
        fn any_window_is_counted_without_panicking(grain in any_grain(), a in any_time(), b in any_time()) {
            let n = period_count(grain, a.min(b), a.max(b));
            if a != b {
                proptest::prop_assert!(n >= 1);
            }
            proptest::prop_assert_eq!(periods(grain, a.min(b), a.max(b), 50).is_ok(), n <= 50);
        }
    }
}
