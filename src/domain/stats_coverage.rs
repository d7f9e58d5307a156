//! Coverage of every 95 % interval the service returns, checked by simulation.
//!
//! For each true score distribution of a grid and each n from 5 to 500, [`RUNS`]
//! samples are drawn with a fixed-seed RNG and summarised by [`summarize`], the function
//! behind every metric; a cell's coverage is the share of its samples whose interval
//! holds the true value. Three intervals are checked: the NPS adjusted-Wald interval,
//! the Wilson interval of the CSAT and CES headlines, and the Student-t interval of the
//! mean on all three scales.
//!
//! The band. Scores are discrete, so no interval covers exactly 95 % in every cell: the
//! coverage of even the best methods oscillates with n and the true shares and dips
//! where the truth sits near an edge at small n (Brown, Cai and DasGupta 2001, "Interval
//! estimation for a binomial proportion", Statistical Science 16:2; Rocks 2016 for
//! NPS). What a 95 % method can promise is coverage near 95 % on average and no cell far
//! below it. So, for each interval:
//!
//! - the mean coverage over the grid lies in [`MEAN_BAND`] = [93 %, 97 %]: 2 points
//!   either side of nominal, where the Monte Carlo standard error of that mean is under
//!   0.1 point (80 to 200 cells of 1 000 runs), so only a real bias leaves the band;
//! - every cell covers at least [`FLOOR`] = 85 %: an interval may miss at most three
//!   times as often as it claims. A cell's standard error is under 1.2 points, so a cell
//!   that truly covers 90 % does not fail by chance, while the zero-width intervals of
//!   the normal approximation the NPS interval used before (below 45 % with 90 %
//!   promoters at n = 5) fail it, as the test shows.
//!
//! The Student-t interval of the mean holds that floor from n = 50 only. Below, on NPS
//! scores skewed to one end (few detractors spread over 0–6), a sample often holds none
//! of the rare low scores, its mean is too high and its spread too small: the interval
//! covers down to 78 % at n = 10. That is the known weakness of the t-interval for
//! skewed data at small n, not an error of computation, and is documented with the
//! field; for n < 50 it is held to [`T_SMALL_N_FLOOR`] = 75 % so that any worsening
//! still fails. NPS adjusted-Wald and Wilson cover 90 % or more in every cell.
//!
//! The grid keeps every bucket at 5 % or more and spreads each bucket over its scores.
//! A population concentrated on a single score gives samples of identical scores whose
//! t-interval has zero width, which no interval built on the sample variance avoids.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::stats::{Interval, Z_95, summarize};
use super::survey::{Bucket, Scale, SurveyKind};

/// Sample sizes: from the smallest a team would look at to a large survey.
const SIZES: [usize; 7] = [5, 10, 20, 50, 100, 200, 500];
/// Simulated samples per cell.
const RUNS: u32 = 1_000;
/// Bounds of the mean coverage over the grid.
const MEAN_BAND: (f64, f64) = (0.93, 0.97);
/// Lowest coverage allowed in any one cell.
const FLOOR: f64 = 0.85;
/// Lowest coverage allowed for the Student-t interval of the mean below n = 50.
const T_SMALL_N_FLOOR: f64 = 0.75;

/// A true distribution of scores on a scale.
struct Truth {
    scale: Scale,
    /// Probability of each score from `scale.min()` to `scale.max`.
    probs: Vec<f64>,
    /// Running sums of `probs`, the last one infinite, for drawing.
    cumulative: Vec<f64>,
    label: String,
}

impl Truth {
    fn scores(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        (self.scale.min()..=self.scale.max).zip(self.probs.iter().copied())
    }

    /// The true headline: 100 (P(promoter) − P(detractor)) for NPS, 100 P(good) otherwise.
    fn headline(&self) -> f64 {
        let sign = |s: i32| match (self.scale.kind, self.scale.bucket(s)) {
            (SurveyKind::Nps, Bucket::Promoter) => 1.0,
            (SurveyKind::Nps, Bucket::Detractor) => -1.0,
            (SurveyKind::Nps, _) => 0.0,
            (_, b) if b == self.scale.good_bucket() => 1.0,
            _ => 0.0,
        };
        100.0 * self.scores().map(|(s, p)| sign(s) * p).sum::<f64>()
    }

    fn mean(&self) -> f64 {
        self.scores().map(|(s, p)| f64::from(s) * p).sum()
    }

    fn new(scale: Scale, probs: Vec<f64>, label: String) -> Self {
        let mut cumulative: Vec<f64> = probs
            .iter()
            .scan(0.0, |sum, p| {
                *sum += p;
                Some(*sum)
            })
            .collect();
        let total = cumulative.pop().expect("a score");
        assert!((total - 1.0).abs() < 1e-9, "{label}: probabilities sum to {total}");
        cumulative.push(f64::INFINITY);
        Truth { scale, probs, cumulative, label }
    }

    /// Draws `n` scores into `out`.
    fn sample(&self, rng: &mut SmallRng, n: usize, out: &mut Vec<i32>) {
        out.clear();
        let min = self.scale.min();
        for _ in 0..n {
            let u: f64 = rng.random();
            let mut i = 0;
            while u >= self.cumulative[i] {
                i += 1;
            }
            out.push(min + i as i32);
        }
    }
}

/// Spreads `share` over `scores` in proportion to `weights`.
fn spread(probs: &mut [f64], min: i32, scores: std::ops::RangeInclusive<i32>, weights: &[f64], share: f64) {
    let total: f64 = weights.iter().sum();
    for (s, w) in scores.zip(weights) {
        probs[(s - min) as usize] = share * w / total;
    }
}

/// NPS with promoters `p` and detractors `d`; passives take the rest.
fn nps_truth(p: f64, d: f64) -> Truth {
    let scale = Scale::parse(SurveyKind::Nps, None).expect("the NPS scale");
    let mut probs = vec![0.0; 11];
    spread(&mut probs, 0, 0..=6, &[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0], d);
    spread(&mut probs, 0, 7..=8, &[1.0, 1.0], 1.0 - p - d);
    spread(&mut probs, 0, 9..=10, &[1.0, 1.0], p);
    Truth::new(scale, probs, format!("NPS p={p} d={d}"))
}

/// A CSAT or CES scale whose good boxes hold `good`, spread evenly, and the others the
/// rest, more of it near the top.
fn top_box_truth(kind: SurveyKind, max: i32, good: f64) -> Truth {
    let scale = Scale::parse(kind, Some(max)).expect("a valid scale");
    let ranges = scale.bucket_ranges();
    let top = ranges.iter().find(|r| r.bucket == scale.good_bucket()).expect("a good bucket");
    let (min, start) = (scale.min(), top.min);
    let mut probs = vec![0.0; (max - min + 1) as usize];
    let low: Vec<f64> = (min..start).map(|s| f64::from(s - min + 1)).collect();
    spread(&mut probs, min, min..=start - 1, &low, 1.0 - good);
    spread(&mut probs, min, start..=max, &vec![1.0; (max - start + 1) as usize], good);
    Truth::new(scale, probs, format!("{kind:?} 1–{max} good={good}"))
}

fn grid() -> Vec<Truth> {
    let mut truths = Vec::new();
    let shares = [0.05, 0.2, 0.4, 0.6, 0.8];
    for p in shares {
        for d in shares {
            if p + d <= 0.95 + 1e-9 {
                truths.push(nps_truth(p, d));
            }
        }
    }
    truths.push(nps_truth(0.9, 0.05));
    truths.push(nps_truth(0.05, 0.9));
    for good in [0.05, 0.2, 0.4, 0.6, 0.8, 0.95] {
        truths.push(top_box_truth(SurveyKind::Csat, 5, good));
        truths.push(top_box_truth(SurveyKind::Ces, 7, good));
    }
    truths
}

fn covers(ci: Option<Interval>, truth: f64) -> bool {
    ci.is_some_and(|ci| ci.lower - 1e-9 <= truth && truth <= ci.upper + 1e-9)
}

/// The NPS interval the service used before: the plain normal approximation around
/// the sample NPS. Computed here only to show that the band rejects it.
fn plain_wald_nps(promoters: i64, detractors: i64, n: i64) -> Interval {
    let (p, d) = (promoters as f64 / n as f64, detractors as f64 / n as f64);
    let half = Z_95 * ((p + d - (p - d) * (p - d)) / n as f64).max(0.0).sqrt();
    Interval { lower: (100.0 * (p - d - half)).max(-100.0), upper: (100.0 * (p - d + half)).min(100.0) }
}

/// Coverage of one interval in one cell.
struct Cell {
    label: String,
    n: usize,
    coverage: f64,
}

#[derive(Default)]
struct Coverage {
    nps_adjusted_wald: Vec<Cell>,
    nps_plain_wald: Vec<Cell>,
    wilson: Vec<Cell>,
    mean_t: Vec<Cell>,
}

fn simulate() -> Coverage {
    let mut out = Coverage::default();
    let mut scores = Vec::with_capacity(SIZES[SIZES.len() - 1]);
    for (i, truth) in grid().iter().enumerate() {
        let (headline, mean) = (truth.headline(), truth.mean());
        for (j, &n) in SIZES.iter().enumerate() {
            // One stream per cell, so a cell's numbers do not depend on the grid's order.
            let mut rng = SmallRng::seed_from_u64(0x7261_7070_6f72_7400 ^ ((i as u64) << 8 | j as u64));
            let (mut head_hits, mut mean_hits, mut plain_hits) = (0u32, 0u32, 0u32);
            for _ in 0..RUNS {
                truth.sample(&mut rng, n, &mut scores);
                let s = summarize(truth.scale, &scores);
                head_hits += u32::from(covers(s.headline_interval, headline));
                mean_hits += u32::from(covers(s.mean_interval, mean));
                if truth.scale.kind == SurveyKind::Nps {
                    let ci =
                        plain_wald_nps(s.bucket_counts[&Bucket::Promoter], s.bucket_counts[&Bucket::Detractor], s.n);
                    plain_hits += u32::from(covers(Some(ci), headline));
                }
            }
            let cell = |hits: u32| Cell { label: truth.label.clone(), n, coverage: f64::from(hits) / f64::from(RUNS) };
            if truth.scale.kind == SurveyKind::Nps {
                out.nps_adjusted_wald.push(cell(head_hits));
                out.nps_plain_wald.push(cell(plain_hits));
            } else {
                out.wilson.push(cell(head_hits));
            }
            out.mean_t.push(cell(mean_hits));
        }
    }
    out
}

fn mean_coverage(cells: &[Cell]) -> f64 {
    cells.iter().map(|c| c.coverage).sum::<f64>() / cells.len() as f64
}

fn worst(cells: &[Cell]) -> &Cell {
    cells.iter().min_by(|a, b| a.coverage.total_cmp(&b.coverage)).expect("cells")
}

/// Checks one interval's cells against the band, naming the worst cells on failure;
/// `floor` gives the lowest coverage allowed at each n.
fn assert_in_band(name: &str, cells: &[Cell], floor: impl Fn(usize) -> f64) {
    let mean = mean_coverage(cells);
    let low = worst(cells);
    eprintln!(
        "{name}: {} cells, mean coverage {:.2} %, lowest {:.1} % ({}, n = {})",
        cells.len(),
        100.0 * mean,
        100.0 * low.coverage,
        low.label,
        low.n
    );
    let mut below: Vec<String> = cells
        .iter()
        .filter(|c| c.coverage < floor(c.n))
        .map(|c| format!("{} n={}: {:.1} % < {} %", c.label, c.n, 100.0 * c.coverage, 100.0 * floor(c.n)))
        .collect();
    below.truncate(10);
    assert!(
        (MEAN_BAND.0..=MEAN_BAND.1).contains(&mean),
        "{name}: mean coverage {:.2} % is outside [{} %, {} %]",
        100.0 * mean,
        100.0 * MEAN_BAND.0,
        100.0 * MEAN_BAND.1
    );
    assert!(below.is_empty(), "{name}: cells below the floor: {below:?}");
}

#[test]
fn every_interval_covers_the_truth_about_95_percent_of_the_time_from_n_5_to_500() {
    let c = simulate();
    assert_eq!(c.nps_adjusted_wald.len(), 17 * SIZES.len());
    assert_eq!(c.wilson.len(), 12 * SIZES.len());
    assert_in_band("NPS adjusted-Wald", &c.nps_adjusted_wald, |_| FLOOR);
    assert_in_band("CSAT/CES Wilson", &c.wilson, |_| FLOOR);
    assert_in_band("mean Student t", &c.mean_t, |n| if n < 50 { T_SMALL_N_FLOOR } else { FLOOR });

    // The band has teeth: the normal approximation the NPS interval used before fails
    // it, at the small n and extreme shares where it collapses.
    let old = worst(&c.nps_plain_wald);
    eprintln!("old NPS normal approximation: lowest {:.1} % ({}, n = {})", 100.0 * old.coverage, old.label, old.n);
    assert!(old.coverage < FLOOR, "the old method's worst cell covers {:.1} %", 100.0 * old.coverage);
}
