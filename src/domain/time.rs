//! Time as the storage layer keeps it: microseconds since the Unix epoch, UTC.

use chrono::{DateTime, Utc};

/// A point in time, UTC.
pub type Timestamp = DateTime<Utc>;

/// Microseconds since the epoch, the storage representation.
pub fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`to_micros`].
pub fn from_micros(us: i64) -> Timestamp {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// `days` whole days as a duration.
pub fn days(days: i64) -> chrono::Duration {
    chrono::Duration::days(days)
}
