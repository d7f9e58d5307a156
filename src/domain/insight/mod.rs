//! Insight beyond the headline (issue 16): whether a change between two periods or
//! segments is real (`compare`, `series`), what the unhappy answers talk about
//! against the happy ones (`themes`), and which engagement signals go with promoters
//! rather than detractors (`drivers`). Pure functions over counts and numbers, no
//! I/O; each is tested against values computed independently (the tests name the
//! command that produced them). Definitions for users are in docs/insight.md.

pub mod account;
pub mod compare;
pub mod drivers;
pub mod series;
pub mod sources;
pub mod themes;

use statrs::distribution::{ContinuousCDF, Normal};

/// Two-sided p-value of a standard-normal statistic.
pub fn normal_p(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 1.0 } else { 0.0 };
    }
    match Normal::new(0.0, 1.0) {
        Ok(n) => (2.0 * n.sf(z.abs())).min(1.0),
        Err(_) => 1.0,
    }
}
