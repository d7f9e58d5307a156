//! Is the change real? The difference B − A of one headline between two independent
//! samples (two periods, or two segments), with its 95 % interval, a p-value and a
//! verdict in plain words.
//!
//! - **NPS**: the adjusted-Wald difference (Rocks 2016; MeasuringU, "How to compare
//!   two Net Promoter Scores"): each side gets ¾ promoter and ¾ detractor added and
//!   n + 3, so p̃ = (P + ¾)/(n + 3) and d̃ = (D + ¾)/(n + 3); each side's adjusted NPS
//!   p̃ − d̃ has variance (p̃ + d̃ − (p̃ − d̃)²)/(n + 3), the two variances add, and
//!   z = (adjusted B − adjusted A)/√(var A + var B). The interval is the adjusted
//!   difference ± 1.96 × that standard error, clamped to [−200, 200] points; the
//!   difference reported beside it is the plain one of the two headlines.
//! - **A share** (CSAT % satisfied, CES % agree): Newcombe's hybrid score interval
//!   (Newcombe 1998, "Interval estimation for the difference between independent
//!   proportions", method 10): with the Wilson intervals (l, u) of each side,
//!   B − A ± the root sum of squares of each side's distance to its Wilson bound.
//!   Its p-value is the one that inverts the interval: the smallest α whose
//!   (1 − α) interval excludes 0, found by bisection on z, so the p-value and the
//!   interval never disagree about significance.
//! - **Mean** score: Welch's t-test (unequal variances, Welch–Satterthwaite degrees of
//!   freedom) and its t interval.
//!
//! A change is called real at the 5 % level (p < 0.05, the interval excludes 0).

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::normal_p;
use crate::domain::stats::{Interval, Z_95, wilson};

/// What the comparison concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// B is higher than A at the 5 % level.
    Higher,
    /// B is lower than A at the 5 % level.
    Lower,
    /// The interval holds 0: no change this data can detect.
    NoDetectableChange,
    /// No test is possible (an empty side, fewer than two answers for a mean, or no
    /// variance at all); `Comparison::reason` says which.
    NotEnoughData,
}

/// The test behind a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// 95 % interval of B − A, in the headline's unit.
    pub interval: Interval,
    pub p_value: f64,
    /// z (NPS, shares: the z that inverts the interval) or t (means).
    pub statistic: f64,
    /// Welch–Satterthwaite degrees of freedom (means only).
    pub df: Option<f64>,
}

/// B − A for one headline.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub n_a: i64,
    pub n_b: i64,
    /// Each side's headline, when it has answers.
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// b − a, when both sides have a headline.
    pub difference: Option<f64>,
    pub test: Option<Test>,
    pub verdict: Verdict,
    /// Why there is no test, when there is none.
    pub reason: Option<String>,
}

impl Comparison {
    pub(crate) fn untested(n_a: i64, n_b: i64, a: Option<f64>, b: Option<f64>, reason: String) -> Self {
        let difference = a.zip(b).map(|(a, b)| b - a);
        Comparison { n_a, n_b, a, b, difference, test: None, verdict: Verdict::NotEnoughData, reason: Some(reason) }
    }

    fn tested(n_a: i64, n_b: i64, a: f64, b: f64, test: Test) -> Self {
        let verdict = if test.p_value < 0.05 && test.interval.lower > 0.0 {
            Verdict::Higher
        } else if test.p_value < 0.05 && test.interval.upper < 0.0 {
            Verdict::Lower
        } else {
            Verdict::NoDetectableChange
        };
        Comparison {
            n_a,
            n_b,
            a: Some(a),
            b: Some(b),
            difference: Some(b - a),
            test: Some(test),
            verdict,
            reason: None,
        }
    }

    /// The verdict as a sentence: `metric` names the headline ("NPS"), `unit` its
    /// unit after a number ("points"), `labels` the two sides ("the first period").
    pub fn sentence(&self, metric: &str, unit: &str, labels: (&str, &str)) -> String {
        let (la, lb) = labels;
        let n = format!("n = {} and {}", self.n_a, self.n_b);
        let (Some(a), Some(b), Some(d), Some(t)) = (self.a, self.b, self.difference, self.test) else {
            let why = self.reason.as_deref().unwrap_or("not enough data");
            return format!("No test at {n}: {why}.");
        };
        let details = format!(
            "{metric} {} in {la}, {} in {lb}; difference {} {unit}, 95 % interval {} to {}, {}",
            num(a),
            num(b),
            signed(d),
            signed(t.interval.lower),
            signed(t.interval.upper),
            p_text(t.p_value)
        );
        match self.verdict {
            Verdict::Higher => {
                format!(
                    "{} is higher in {lb} than in {la}, a real change at the 5 % level ({details}; {n}).",
                    capital(metric)
                )
            }
            Verdict::Lower => {
                format!(
                    "{} is lower in {lb} than in {la}, a real change at the 5 % level ({details}; {n}).",
                    capital(metric)
                )
            }
            Verdict::NoDetectableChange | Verdict::NotEnoughData => {
                format!("No detectable change at {n} ({details}).")
            }
        }
    }
}

/// `s` with its first letter in upper case, to start a sentence.
fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn num(x: f64) -> String {
    format!("{x:.1}")
}

fn signed(x: f64) -> String {
    if x.abs() < 0.05 { "0.0".into() } else { format!("{x:+.1}") }
}

/// A p-value as people read it: "p = 0.06" (two decimals), "p < 0.001" below that.
pub fn p_text(p: f64) -> String {
    if p < 0.001 { "p < 0.001".into() } else { format!("p = {p:.2}") }
}

/// One side of an NPS comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NpsCounts {
    pub promoters: i64,
    pub detractors: i64,
    pub n: i64,
}

impl NpsCounts {
    /// 100 (P − D)/n, or `None` without answers.
    pub fn headline(self) -> Option<f64> {
        (self.n > 0).then(|| 100.0 * (self.promoters - self.detractors) as f64 / self.n as f64)
    }

    /// The adjusted share difference p̃ − d̃ and its variance (Rocks 2016).
    fn adjusted(self) -> (f64, f64) {
        let m = self.n as f64 + 3.0;
        let p = (self.promoters as f64 + 0.75) / m;
        let d = (self.detractors as f64 + 0.75) / m;
        (p - d, ((p + d - (p - d).powi(2)) / m).max(0.0))
    }
}

/// NPS of B − NPS of A, in points, by the adjusted-Wald method (module docs).
pub fn nps_difference(a: NpsCounts, b: NpsCounts) -> Comparison {
    let (ha, hb) = (a.headline(), b.headline());
    if let Some(reason) = empty_side(a.n, b.n) {
        return Comparison::untested(a.n, b.n, ha, hb, reason);
    }
    let ((adj_a, var_a), (adj_b, var_b)) = (a.adjusted(), b.adjusted());
    let se = (var_a + var_b).sqrt();
    let diff = adj_b - adj_a;
    // The adjustment keeps the variance positive, so `se` > 0 whatever the counts.
    let z = diff / se;
    let interval =
        Interval { lower: (100.0 * (diff - Z_95 * se)).max(-200.0), upper: (100.0 * (diff + Z_95 * se)).min(200.0) };
    Comparison::tested(
        a.n,
        b.n,
        ha.unwrap_or(0.0),
        hb.unwrap_or(0.0),
        Test { interval, p_value: normal_p(z), statistic: z, df: None },
    )
}

fn empty_side(n_a: i64, n_b: i64) -> Option<String> {
    match (n_a, n_b) {
        (0, 0) => Some("neither side has answers".into()),
        (0, _) => Some("the first side has no answers".into()),
        (_, 0) => Some("the second side has no answers".into()),
        _ => None,
    }
}

/// Newcombe's hybrid score interval of p_b − p_a at the normal quantile `z`, as
/// fractions (not percent).
fn newcombe(k_a: i64, n_a: i64, k_b: i64, n_b: i64, z: f64) -> Interval {
    let (pa, pb) = (k_a as f64 / n_a as f64, k_b as f64 / n_b as f64);
    let (la, ua) = wilson_at(k_a, n_a, z);
    let (lb, ub) = wilson_at(k_b, n_b, z);
    let d = pb - pa;
    Interval {
        lower: d - ((pb - lb).powi(2) + (ua - pa).powi(2)).sqrt(),
        upper: d + ((ub - pb).powi(2) + (pa - la).powi(2)).sqrt(),
    }
}

/// The Wilson score interval of k in n at the normal quantile `z`, as fractions.
fn wilson_at(k: i64, n: i64, z: f64) -> (f64, f64) {
    let nf = n as f64;
    let p = k as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The z at which Newcombe's interval just touches 0: the inverted test statistic.
fn newcombe_z(k_a: i64, n_a: i64, k_b: i64, n_b: i64) -> f64 {
    let d = k_b as f64 / n_b as f64 - k_a as f64 / n_a as f64;
    if d == 0.0 {
        return 0.0;
    }
    // The bound nearer 0 moves monotonically towards 0 (and past it) as z grows.
    let bound = |z: f64| {
        let i = newcombe(k_a, n_a, k_b, n_b, z);
        if d > 0.0 { i.lower } else { -i.upper }
    };
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while bound(hi) > 0.0 {
        if hi >= 64.0 {
            return d.signum() * hi;
        }
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if bound(mid) > 0.0 {
            lo = mid
        } else {
            hi = mid
        }
        if hi - lo < 1e-13 {
            break;
        }
    }
    d.signum() * 0.5 * (lo + hi)
}

/// Share of B − share of A, in percentage points (k successes in n on each side),
/// with Newcombe's hybrid score interval (module docs).
pub fn proportion_difference(k_a: i64, n_a: i64, k_b: i64, n_b: i64) -> Comparison {
    let share = |k: i64, n: i64| (n > 0).then(|| 100.0 * k as f64 / n as f64);
    let (ha, hb) = (share(k_a, n_a), share(k_b, n_b));
    if let Some(reason) = empty_side(n_a, n_b) {
        return Comparison::untested(n_a, n_b, ha, hb, reason);
    }
    let i = newcombe(k_a, n_a, k_b, n_b, Z_95);
    let z = newcombe_z(k_a, n_a, k_b, n_b);
    Comparison::tested(
        n_a,
        n_b,
        ha.unwrap_or(0.0),
        hb.unwrap_or(0.0),
        Test {
            interval: Interval { lower: 100.0 * i.lower, upper: 100.0 * i.upper },
            p_value: normal_p(z),
            statistic: z,
            df: None,
        },
    )
}

/// n, mean and sample variance (n − 1 denominator) of one side.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Moments {
    pub n: i64,
    pub mean: f64,
    pub variance: f64,
}

impl Moments {
    /// Of a list of values (two passes: exact for any scale of scores).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Moments::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let variance =
            if n < 2 { 0.0 } else { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 };
        Moments { n: n as i64, mean, variance }
    }
}

/// Mean of B − mean of A by Welch's t-test.
pub fn mean_difference(a: Moments, b: Moments) -> Comparison {
    let mean = |m: Moments| (m.n > 0).then_some(m.mean);
    let (ma, mb) = (mean(a), mean(b));
    if let Some(reason) = empty_side(a.n, b.n) {
        return Comparison::untested(a.n, b.n, ma, mb, reason);
    }
    if a.n < 2 || b.n < 2 {
        return Comparison::untested(a.n, b.n, ma, mb, "a mean needs at least two answers on each side".into());
    }
    let (va, vb) = (a.variance / a.n as f64, b.variance / b.n as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return Comparison::untested(a.n, b.n, ma, mb, "every answer on both sides is the same score".into());
    }
    let se = se2.sqrt();
    let diff = b.mean - a.mean;
    let t = diff / se;
    let df = se2 * se2 / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    let (q, p) = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => (dist.inverse_cdf(0.975), (2.0 * dist.sf(t.abs())).min(1.0)),
        Err(_) => (Z_95, normal_p(t)),
    };
    Comparison::tested(
        a.n,
        b.n,
        a.mean,
        b.mean,
        Test {
            interval: Interval { lower: diff - q * se, upper: diff + q * se },
            p_value: p,
            statistic: t,
            df: Some(df),
        },
    )
}

/// The Wilson interval in percent, re-exported for the series band.
pub fn share_interval(k: i64, n: i64) -> Interval {
    wilson(k, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} != {b}");
    }

    fn nps(promoters: i64, detractors: i64, n: i64) -> NpsCounts {
        NpsCounts { promoters, detractors, n }
    }

    // Reference values: `python3 tests/reference/insight.py compare` (scipy 1.17,
    // numpy), which computes each method from its formula with scipy.stats.norm and
    // scipy.stats.ttest_ind(equal_var=False); the script's output is quoted beside
    // each case.

    #[test]
    fn nps_difference_matches_the_adjusted_wald_reference() {
        // A: 40 promoters, 25 detractors of 100; B: 70 and 20 of 150.
        // diff=18.3333333333 lo=-0.7572132794 hi=36.9904768113 z=1.8813307886 p=0.0599269353
        let c = nps_difference(nps(40, 25, 100), nps(70, 20, 150));
        close(c.difference.unwrap(), 100.0 * (50.0 / 150.0 - 15.0 / 100.0), 1e-9);
        let t = c.test.unwrap();
        close(t.interval.lower, -0.757_213_279_4, 1e-8);
        close(t.interval.upper, 36.990_476_811_3, 1e-8);
        close(t.statistic, 1.881_330_788_6, 1e-8);
        close(t.p_value, 0.059_926_935_3, 1e-9);
        assert_eq!(c.verdict, Verdict::NoDetectableChange);

        // A: 30/40 of 200 ; B: 90/20 of 200: a real rise.
        // diff=40 lo=27.2585455265 hi=51.5591884637 z=6.3570301561 p=2.0569e-10
        let c = nps_difference(nps(30, 40, 200), nps(90, 20, 200));
        let t = c.test.unwrap();
        close(t.interval.lower, 27.258_545_526_5, 1e-8);
        close(t.interval.upper, 51.559_188_463_7, 1e-8);
        close(t.statistic, 6.357_030_156_1, 1e-8);
        close(t.p_value, 2.0569e-10, 1e-13);
        assert_eq!(c.verdict, Verdict::Higher);
        assert_eq!(c.difference, Some(40.0));
    }

    #[test]
    fn nps_edges() {
        // Identical sides: no difference, p = 1.
        let c = nps_difference(nps(5, 2, 10), nps(5, 2, 10));
        assert_eq!(c.difference, Some(0.0));
        let t = c.test.unwrap();
        close(t.p_value, 1.0, 1e-12);
        close(t.interval.lower, -t.interval.upper, 1e-12);
        assert_eq!(c.verdict, Verdict::NoDetectableChange);
        // n = 1 on each side still has a (wide) interval.
        // One detractor, then one promoter: lo=-53.9427868262 hi=153.9427868262 z=0.9428090416
        let c = nps_difference(nps(0, 1, 1), nps(1, 0, 1));
        assert_eq!(c.difference, Some(200.0));
        let t = c.test.unwrap();
        close(t.interval.lower, -53.942_786_826_2, 1e-8);
        close(t.interval.upper, 153.942_786_826_2, 1e-8);
        close(t.statistic, 0.942_809_041_6, 1e-8);
        assert_eq!(c.verdict, Verdict::NoDetectableChange);
        // An empty side: no test, and it says why.
        let c = nps_difference(nps(0, 0, 0), nps(3, 1, 5));
        assert_eq!(c.verdict, Verdict::NotEnoughData);
        assert_eq!(c.a, None);
        assert_eq!(c.b, Some(40.0));
        assert!(c.sentence("NPS", "points", ("A", "B")).contains("the first side has no answers"));
    }

    #[test]
    fn newcombe_matches_the_published_example_and_the_reference() {
        // Newcombe (1998), table II, example (a): 56/70 − 48/80, method 10 gives
        // 0.0524 to 0.3339. Here B − A with A = 48/80, B = 56/70.
        let c = proportion_difference(48, 80, 56, 70);
        let t = c.test.unwrap();
        close(t.interval.lower, 5.24, 0.005);
        close(t.interval.upper, 33.39, 0.005);
        // statsmodels (confint_proportions_2indep, method="newcomb") to more places,
        // and the z at which its interval touches 0 (scipy brentq):
        // lo=5.2431472402 hi=33.3872654037 z=2.6464921053 p=0.0081331404
        close(t.interval.lower, 5.243_147_240_2, 1e-8);
        close(t.interval.upper, 33.387_265_403_7, 1e-8);
        close(t.statistic, 2.646_492_105_3, 1e-7);
        close(t.p_value, 0.008_133_140_4, 1e-8);
        assert_eq!(c.verdict, Verdict::Higher);
        // All of A, none of B: lo=-100 hi=-67.9086037142 z=5.8643917902
        let c = proportion_difference(10, 10, 0, 20);
        let t = c.test.unwrap();
        close(t.interval.lower, -100.0, 1e-9);
        close(t.interval.upper, -67.908_603_714_2, 1e-8);
        close(t.statistic, -5.864_391_790_2, 1e-7);
        assert_eq!(c.verdict, Verdict::Lower);
    }

    #[test]
    fn the_p_value_of_a_share_agrees_with_its_interval() {
        for (ka, na, kb, nb) in [(3, 9, 7, 11), (48, 80, 56, 70), (0, 5, 1, 5), (20, 40, 20, 40), (9, 10, 5, 12)] {
            let c = proportion_difference(ka, na, kb, nb);
            let t = c.test.unwrap();
            let excludes_zero = t.interval.lower > 0.0 || t.interval.upper < 0.0;
            assert_eq!(excludes_zero, t.p_value < 0.05, "{ka}/{na} vs {kb}/{nb}: {t:?}");
        }
        // Identical shares: p = 1; n = 1 on each side works.
        close(proportion_difference(20, 40, 20, 40).test.unwrap().p_value, 1.0, 1e-12);
        let c = proportion_difference(0, 1, 1, 1);
        assert_eq!(c.verdict, Verdict::NoDetectableChange);
        assert_eq!(proportion_difference(1, 2, 0, 0).verdict, Verdict::NotEnoughData);
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy.stats.ttest_ind(b, a, equal_var=False):
        // t=2.8183023396 df=15.5119249738 p=0.0126499739 lo=0.3995543575 hi=2.8504456425
        let a = [7.0, 8.0, 6.0, 9.0, 7.0, 8.0, 5.0, 7.0];
        let b = [9.0, 9.0, 10.0, 8.0, 6.0, 10.0, 9.0, 7.0, 10.0, 9.0, 8.0, 10.0];
        let c = mean_difference(Moments::of(&a), Moments::of(&b));
        let t = c.test.unwrap();
        close(t.statistic, 2.818_302_339_6, 1e-8);
        close(t.df.unwrap(), 15.511_924_973_8, 1e-8);
        close(t.p_value, 0.012_649_973_9, 1e-8);
        close(t.interval.lower, 0.399_554_357_5, 1e-8);
        close(t.interval.upper, 2.850_445_642_5, 1e-8);
        assert_eq!(c.verdict, Verdict::Higher);
    }

    #[test]
    fn welch_edges() {
        // One answer on a side: no test, but both means.
        let c = mean_difference(Moments::of(&[3.0]), Moments::of(&[4.0, 5.0]));
        assert_eq!(c.verdict, Verdict::NotEnoughData);
        assert_eq!((c.a, c.b, c.difference), (Some(3.0), Some(4.5), Some(1.5)));
        // No variance anywhere: no test.
        let c = mean_difference(Moments::of(&[4.0, 4.0]), Moments::of(&[5.0, 5.0, 5.0]));
        assert_eq!(c.verdict, Verdict::NotEnoughData);
        assert!(c.reason.unwrap().contains("same score"));
        // Variance on one side only is enough.
        let c = mean_difference(Moments::of(&[4.0, 4.0, 4.0]), Moments::of(&[4.0, 6.0]));
        assert!(c.test.is_some());
        // Identical samples: t = 0, p = 1.
        let s = Moments::of(&[1.0, 2.0, 3.0]);
        let c = mean_difference(s, s);
        close(c.test.unwrap().p_value, 1.0, 1e-12);
        assert_eq!(c.verdict, Verdict::NoDetectableChange);
        assert_eq!(mean_difference(Moments::default(), s).verdict, Verdict::NotEnoughData);
    }

    #[test]
    fn the_verdict_reads_as_a_sentence() {
        let c = nps_difference(nps(40, 25, 100), nps(70, 20, 150));
        assert_eq!(
            c.sentence("NPS", "points", ("the first period", "the second period")),
            "No detectable change at n = 100 and 150 (NPS 15.0 in the first period, 33.3 in the second period; \
             difference +18.3 points, 95 % interval -0.8 to +37.0, p = 0.06)."
        );
        let c = nps_difference(nps(30, 40, 200), nps(90, 20, 200));
        assert!(c.sentence("NPS", "points", ("A", "B")).starts_with("NPS is higher in B than in A, a real change"));
        let m = mean_difference(Moments::of(&[1.0, 2.0, 1.0, 2.0]), Moments::of(&[8.0, 9.0, 8.0, 9.0]));
        let s = m.sentence("mean score", "points", ("A", "B"));
        assert!(
            s.starts_with("Mean score is higher in B than in A") && s.contains("(mean score 1.5 in A, 8.5 in B;"),
            "{s}"
        );
    }

    #[test]
    fn p_values_read_as_a_phrase() {
        assert_eq!(p_text(0.0004), "p < 0.001");
        assert_eq!(p_text(0.0612), "p = 0.06");
    }
}
