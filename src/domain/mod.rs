//! Pure rules of the product: scales and buckets, the statistics behind every number,
//! eligibility, follow-up transitions, and the parsing of every input. No I/O, no
//! tonic, no sea-orm: everything here is a function tests can call directly.

pub mod eligibility;
pub mod engagement;
pub mod engagement_metrics;
pub mod engagement_profile;
pub mod events;
pub mod follow_up;
pub mod identity;
pub mod ids;
pub mod input;
pub mod insight;
pub mod listing;
pub mod model;
pub mod partitions;
pub mod privacy;
pub mod sealing;
pub mod secrets;
pub mod stats;
#[cfg(test)]
mod stats_coverage;
pub mod stored;
pub mod survey;
pub mod time;
pub mod webhooks;

pub use eligibility::{Eligibility, EligibilityRule, History, Policy};
pub use follow_up::{FollowUpAction, FollowUpStatus, Priority};
pub use ids::*;
pub use survey::{Bucket, Scale, Score, SurveyKind};

/// What tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// Numbers below `m`, the same sequence for the same `seed` (a 64-bit LCG's high
    /// bits): made-up data that reproduces.
    pub(crate) fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |m| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % m
        }
    }
}
