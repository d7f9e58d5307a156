//! What goes with a promoter: for one engagement signal (an action's count, active
//! days, activity time…), how far promoters and detractors differ. Association, not
//! cause: a signal can go with promoters because both follow from something else.
//!
//! - **Hedges' g** (the standardised mean difference, promoters − detractors, in
//!   pooled standard deviations): d = (m_P − m_D)/s_pooled with
//!   s²_pooled = ((n_P − 1) s²_P + (n_D − 1) s²_D)/(n_P + n_D − 2), corrected for small
//!   samples by J = 1 − 3/(4 (n_P + n_D) − 9): g = J d. Its 95 % interval is
//!   g ± 1.96 J √((n_P + n_D)/(n_P n_D) + d²/(2 (n_P + n_D))) (Borenstein et al. 2009,
//!   "Introduction to Meta-Analysis", §4). Needs two customers on each side and some
//!   spread; |g| of 0.2, 0.5 and 0.8 are Cohen's small, medium and large.
//! - **Point-biserial correlation** r of the signal with being a promoter (1) rather
//!   than a detractor (0), its p-value from t = r √((n − 2)/(1 − r²)) on n − 2 degrees
//!   of freedom (the same test as Student's t on the two means), and its 95 % interval
//!   by Fisher's z: tanh(atanh r ± 1.96/√(n − 3)) (needs n ≥ 4).

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::compare::Moments;
use crate::domain::stats::{Interval, Z_95};

/// The effect of one signal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effect {
    pub n_promoters: i64,
    pub n_detractors: i64,
    pub mean_promoters: Option<f64>,
    pub mean_detractors: Option<f64>,
    pub hedges_g: Option<f64>,
    pub g_interval: Option<Interval>,
    pub correlation: Option<f64>,
    pub correlation_interval: Option<Interval>,
    pub p_value: Option<f64>,
}

/// Compares a signal's values among promoters and among detractors.
pub fn effect(promoters: &[f64], detractors: &[f64]) -> Effect {
    let (p, d) = (Moments::of(promoters), Moments::of(detractors));
    let mut e = Effect {
        n_promoters: p.n,
        n_detractors: d.n,
        mean_promoters: (p.n > 0).then_some(p.mean),
        mean_detractors: (d.n > 0).then_some(d.mean),
        ..Effect::default()
    };
    let (n1, n2) = (p.n as f64, d.n as f64);
    if p.n >= 2 && d.n >= 2 {
        let pooled = (((n1 - 1.0) * p.variance + (n2 - 1.0) * d.variance) / (n1 + n2 - 2.0)).sqrt();
        if pooled > 0.0 {
            let dd = (p.mean - d.mean) / pooled;
            let j = 1.0 - 3.0 / (4.0 * (n1 + n2) - 9.0);
            let g = j * dd;
            let se = j * ((n1 + n2) / (n1 * n2) + dd * dd / (2.0 * (n1 + n2))).sqrt();
            e.hedges_g = Some(g);
            e.g_interval = Some(Interval { lower: g - Z_95 * se, upper: g + Z_95 * se });
        }
    }
    let n = n1 + n2;
    if p.n >= 1 && d.n >= 1 && n >= 3.0 {
        // r from the two means and the spread of all values (population form).
        let all_mean = (n1 * p.mean + n2 * d.mean) / n;
        let ss: f64 = promoters.iter().chain(detractors).map(|v| (v - all_mean).powi(2)).sum::<f64>() / n;
        if ss > 0.0 {
            let r = ((p.mean - d.mean) / ss.sqrt() * (n1 * n2 / (n * n)).sqrt()).clamp(-1.0, 1.0);
            e.correlation = Some(r);
            e.p_value = Some(if r.abs() >= 1.0 {
                0.0
            } else {
                let t = r * ((n - 2.0) / (1.0 - r * r)).sqrt();
                StudentsT::new(0.0, 1.0, n - 2.0).map(|dist| (2.0 * dist.sf(t.abs())).min(1.0)).unwrap_or(1.0)
            });
            if n >= 4.0 && r.abs() < 1.0 {
                let z = r.atanh();
                let half = Z_95 / (n - 3.0).sqrt();
                e.correlation_interval = Some(Interval { lower: (z - half).tanh(), upper: (z + half).tanh() });
            }
        }
    }
    e
}

/// Sorts signals by strength: |g| highest first, then |r|; signals without either
/// last; equal strength by name.
pub fn rank(signals: &mut [(String, Effect)]) {
    let strength = |e: &Effect| (e.hedges_g.map(f64::abs), e.correlation.map(f64::abs));
    signals.sort_by(|(na, a), (nb, b)| {
        let (ga, ra) = strength(a);
        let (gb, rb) = strength(b);
        let key = |g: Option<f64>| g.unwrap_or(-1.0);
        key(gb).total_cmp(&key(ga)).then_with(|| key(rb).total_cmp(&key(ra))).then_with(|| na.cmp(nb))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-8, "{a} != {b}");
    }

    #[test]
    fn matches_the_reference() {
        // `python3 tests/reference/insight.py drivers` (Hedges' g by numpy from the
        // formula; r and its p-value by scipy.stats.pointbiserialr):
        // g=1.4325118725 lo=0.5209451212 hi=2.3440786238
        // r=0.6138705733 p=0.0023746114 lo=0.2593976032 hi=0.8225836598
        let promoters = [12.0, 15.0, 9.0, 20.0, 14.0, 18.0, 11.0, 16.0, 13.0, 17.0, 19.0, 10.0];
        let detractors = [8.0, 12.0, 5.0, 10.0, 14.0, 7.0, 9.0, 11.0, 6.0, 13.0];
        let e = effect(&promoters, &detractors);
        assert_eq!((e.n_promoters, e.n_detractors), (12, 10));
        close(e.mean_promoters.unwrap(), 14.5);
        close(e.mean_detractors.unwrap(), 9.5);
        close(e.hedges_g.unwrap(), 1.432_511_872_5);
        close(e.g_interval.unwrap().lower, 0.520_945_121_2);
        close(e.g_interval.unwrap().upper, 2.344_078_623_8);
        close(e.correlation.unwrap(), 0.613_870_573_3);
        close(e.p_value.unwrap(), 0.002_374_611_4);
        close(e.correlation_interval.unwrap().lower, 0.259_397_603_2);
        close(e.correlation_interval.unwrap().upper, 0.822_583_659_8);
    }

    #[test]
    fn edges() {
        // Empty sides: counts only.
        let e = effect(&[], &[1.0, 2.0]);
        assert_eq!((e.n_promoters, e.mean_promoters, e.hedges_g, e.correlation), (0, None, None, None));
        // One promoter: no g (no spread on that side), but r is defined from n = 3.
        let e = effect(&[5.0], &[1.0, 2.0]);
        assert_eq!(e.hedges_g, None);
        assert!(e.correlation.is_some());
        assert_eq!(e.correlation_interval, None, "Fisher's z needs n ≥ 4");
        // Zero variance everywhere: nothing to standardise by.
        let e = effect(&[3.0, 3.0], &[3.0, 3.0, 3.0]);
        assert_eq!((e.hedges_g, e.correlation), (None, None));
        // Perfect separation without spread inside the groups: r = 1, p = 0, no g.
        let e = effect(&[4.0, 4.0], &[1.0, 1.0]);
        assert_eq!(e.hedges_g, None);
        assert_eq!((e.correlation, e.p_value, e.correlation_interval), (Some(1.0), Some(0.0), None));
        // Identical groups: g = 0 and r = 0, p = 1.
        let e = effect(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        close(e.hedges_g.unwrap(), 0.0);
        close(e.correlation.unwrap(), 0.0);
        close(e.p_value.unwrap(), 1.0);
    }

    #[test]
    fn ranking_puts_the_strongest_first_and_the_undefined_last() {
        let mut s = vec![
            ("weak".to_string(), effect(&[1.0, 2.0, 3.0], &[1.0, 2.0, 2.5])),
            ("none".to_string(), effect(&[], &[])),
            ("strong".to_string(), effect(&[5.0, 6.0, 7.0], &[1.0, 2.0, 3.0])),
            ("negative".to_string(), effect(&[1.0, 2.0, 3.0], &[3.0, 4.0, 5.0])),
        ];
        rank(&mut s);
        let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["strong", "negative", "weak", "none"]);
    }
}
