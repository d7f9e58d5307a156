//! A headline's time series, point by point: whether each point differs from the one
//! before (the same two-sample test as [`compare`](super::compare)), and a control-chart
//! band around the window's pooled headline.
//!
//! The band is a Shewhart chart for the headline (a p-chart for a share): centre = the
//! headline of all the window's answers pooled; limits = centre ± 3 σ / √nᵢ for a point
//! of nᵢ answers, where σ² is the variance of one answer's contribution at the pooled
//! rates (NPS, each answer +1, 0 or −1: σ² = p̄ + d̄ − (p̄ − d̄)²; a share:
//! σ² = p̄ (1 − p̄)), in points and clamped to the headline's range. A point outside
//! its limits is flagged: it is unlikely (about 3 in 1 000) under a steady process.

use super::compare::{Comparison, NpsCounts, Verdict, nps_difference, proportion_difference};
use crate::domain::stats::Summary;
use crate::domain::{Bucket, Scale, SurveyKind};

/// A summary's counts as a series point of its scale.
pub fn point_counts(scale: Scale, s: &Summary) -> PointCounts {
    let count = |b: Bucket| s.bucket_counts.get(&b).copied().unwrap_or(0);
    match scale.kind {
        SurveyKind::Nps => PointCounts::Nps(NpsCounts {
            promoters: count(Bucket::Promoter),
            detractors: count(Bucket::Detractor),
            n: s.n,
        }),
        SurveyKind::Csat | SurveyKind::Ces => PointCounts::Share { k: count(scale.good_bucket()), n: s.n },
    }
}

/// One point's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointCounts {
    Nps(NpsCounts),
    /// k of n in the good bucket.
    Share {
        k: i64,
        n: i64,
    },
}

impl PointCounts {
    pub fn n(self) -> i64 {
        match self {
            PointCounts::Nps(c) => c.n,
            PointCounts::Share { n, .. } => n,
        }
    }

    fn headline(self) -> Option<f64> {
        match self {
            PointCounts::Nps(c) => c.headline(),
            PointCounts::Share { k, n } => (n > 0).then(|| 100.0 * k as f64 / n as f64),
        }
    }
}

/// B − A of two points of the same kind.
pub fn compare_points(a: PointCounts, b: PointCounts) -> Comparison {
    match (a, b) {
        (PointCounts::Nps(a), PointCounts::Nps(b)) => nps_difference(a, b),
        (PointCounts::Share { k: ka, n: na }, PointCounts::Share { k: kb, n: nb }) => {
            proportion_difference(ka, na, kb, nb)
        }
        // The service builds every point of one series from one scale.
        (a, b) => {
            Comparison::untested(a.n(), b.n(), a.headline(), b.headline(), "the points are of different kinds".into())
        }
    }
}

/// How a point differs from the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not compared: the first point, or a side without answers.
    None,
    Up,
    Down,
    NoDetectableChange,
}

/// A control limit pair around the centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub centre: f64,
    pub lower: f64,
    pub upper: f64,
}

/// What the series adds to one point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointFlags {
    pub change: Change,
    /// p-value of the difference from the previous point, when compared.
    pub p_value: Option<f64>,
    /// Headline of this point − headline of the previous one.
    pub difference: Option<f64>,
    /// The control limits at this point's n (none without answers).
    pub band: Option<Band>,
    /// The headline lies outside `band`.
    pub outside_band: bool,
}

/// Flags every point of a series (in time order).
pub fn flag(points: &[PointCounts]) -> Vec<PointFlags> {
    let centre = pooled(points);
    points
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let (change, p_value, difference) = match i.checked_sub(1).map(|j| points[j]) {
                Some(prev) if prev.n() > 0 && p.n() > 0 => {
                    let c = compare_points(prev, p);
                    let change = match c.verdict {
                        Verdict::Higher => Change::Up,
                        Verdict::Lower => Change::Down,
                        Verdict::NoDetectableChange => Change::NoDetectableChange,
                        Verdict::NotEnoughData => Change::None,
                    };
                    (change, c.test.map(|t| t.p_value), c.difference)
                }
                _ => (Change::None, None, None),
            };
            let band = centre.and_then(|(centre, sigma, range)| {
                (p.n() > 0).then(|| {
                    let half = 3.0 * sigma / (p.n() as f64).sqrt();
                    Band { centre, lower: (centre - half).max(range.0), upper: (centre + half).min(range.1) }
                })
            });
            let outside_band = match (band, p.headline()) {
                // A hair of tolerance: a point on a limit is inside it.
                (Some(b), Some(h)) => h < b.lower - 1e-9 || h > b.upper + 1e-9,
                _ => false,
            };
            PointFlags { change, p_value, difference, band, outside_band }
        })
        .collect()
}

/// (centre, σ of one answer, headline range), all in points, of the pooled points.
fn pooled(points: &[PointCounts]) -> Option<(f64, f64, (f64, f64))> {
    let n: i64 = points.iter().map(|p| p.n()).sum();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    match points.first()? {
        PointCounts::Nps(_) => {
            let (mut pr, mut de) = (0, 0);
            for p in points {
                if let PointCounts::Nps(c) = p {
                    pr += c.promoters;
                    de += c.detractors;
                }
            }
            let (p, d) = (pr as f64 / nf, de as f64 / nf);
            let var = (p + d - (p - d).powi(2)).max(0.0);
            Some((100.0 * (p - d), 100.0 * var.sqrt(), (-100.0, 100.0)))
        }
        PointCounts::Share { .. } => {
            let k: i64 = points.iter().map(|p| if let PointCounts::Share { k, .. } = p { *k } else { 0 }).sum();
            let p = k as f64 / nf;
            Some((100.0 * p, 100.0 * (p * (1.0 - p)).max(0.0).sqrt(), (0.0, 100.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nps(promoters: i64, detractors: i64, n: i64) -> PointCounts {
        PointCounts::Nps(NpsCounts { promoters, detractors, n })
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-8, "{a} != {b}");
    }

    #[test]
    fn each_point_is_tested_against_the_one_before() {
        // Steady, then a jump, then an empty period, then answers again.
        let points = [nps(20, 10, 50), nps(21, 10, 50), nps(45, 2, 50), nps(0, 0, 0), nps(10, 10, 30)];
        let f = flag(&points);
        assert_eq!(f[0].change, Change::None);
        assert_eq!(f[0].p_value, None);
        assert_eq!(f[1].change, Change::NoDetectableChange);
        close(f[1].difference.unwrap(), 2.0);
        // The same test as compare: nps_difference of the two points.
        let c = nps_difference(
            NpsCounts { promoters: 21, detractors: 10, n: 50 },
            NpsCounts { promoters: 45, detractors: 2, n: 50 },
        );
        assert_eq!(f[2].change, Change::Up);
        assert_eq!(f[2].p_value, c.test.map(|t| t.p_value));
        // No answers: no comparison on either side of the gap, and no band.
        assert_eq!((f[3].change, f[3].band, f[3].outside_band), (Change::None, None, false));
        assert_eq!(f[4].change, Change::None);
    }

    #[test]
    fn the_band_is_three_sigma_around_the_pooled_headline() {
        // `python3 tests/reference/insight.py series`: centre=38.75
        // limits at n=50: [6.2350995696, 71.2649004304]; at n=10: [-33.9555276441, 100]
        let points = [nps(20, 10, 50), nps(21, 10, 50), nps(45, 2, 50), nps(4, 6, 10)];
        // pooled: 90 promoters, 28 detractors of 160 → centre 38.75.
        let f = flag(&points);
        let b = f[0].band.unwrap();
        close(b.centre, 38.75);
        let (p, d) = (90.0_f64 / 160.0, 28.0_f64 / 160.0);
        let sigma = 100.0 * (p + d - (p - d) * (p - d)).sqrt();
        close(b.lower, 38.75 - 3.0 * sigma / 50f64.sqrt());
        close(b.upper, 38.75 + 3.0 * sigma / 50f64.sqrt());
        assert!(f[2].outside_band, "86 against an upper limit of {}", f[2].band.unwrap().upper);
        assert!(!f[0].outside_band);
        // Fewer answers, wider limits (clamped to the scale).
        let b3 = f[3].band.unwrap();
        close(b.lower, 6.235_099_569_6);
        close(b.upper, 71.264_900_430_4);
        close(b3.lower, -33.955_527_644_1);
        close(b3.upper, 100.0);
    }

    #[test]
    fn a_share_series_uses_a_p_chart() {
        let points = [PointCounts::Share { k: 8, n: 10 }, PointCounts::Share { k: 2, n: 10 }];
        let f = flag(&points);
        // p̄ = .5, σ = 50 points, limits 50 ± 3·50/√10.
        let b = f[1].band.unwrap();
        close(b.lower, 50.0 - 150.0 / 10f64.sqrt());
        close(b.upper, 50.0 + 150.0 / 10f64.sqrt());
        assert_eq!(f[1].change, Change::Down);
        // Every answer good: σ = 0, the band is the centre, and the points sit on it.
        let f = flag(&[PointCounts::Share { k: 5, n: 5 }, PointCounts::Share { k: 3, n: 3 }]);
        assert_eq!(f[1].band, Some(Band { centre: 100.0, lower: 100.0, upper: 100.0 }));
        assert!(!f[1].outside_band);
        assert!(flag(&[]).is_empty());
        assert_eq!(flag(&[nps(0, 0, 0)])[0].band, None);
    }
}
