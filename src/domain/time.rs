//! Time as the storage layer keeps it: microseconds since the Unix epoch, UTC; and
//! the one range of time the API accepts (docs/api.md, "Input rules").

use chrono::{DateTime, Utc};

use crate::error::{AppError, Result};

/// The earliest time the API accepts: 1970-01-01T00:00:00Z.
pub const MIN_SECONDS: i64 = 0;
/// The latest time the API accepts: 9999-12-31T23:59:59.999999999Z.
pub const MAX_SECONDS: i64 = 253_402_300_799;

/// A time given as seconds and nanoseconds since the epoch, if it lies in the API's
/// range (years 1970–9999, nanoseconds 0–999 999 999); else INVALID_ARGUMENT naming
/// `field`. Any time inside the range can be moved by centuries either way without
/// overflow, so arithmetic on accepted times cannot panic.
pub fn check_range(field: &str, seconds: i64, nanos: i32) -> Result<Timestamp> {
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(AppError::invalid(field, "nanos must be from 0 to 999 999 999"));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
        return Err(AppError::invalid(field, "must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"));
    }
    DateTime::from_timestamp(seconds, nanos as u32)
        .ok_or_else(|| AppError::invalid(field, "must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_range_is_1970_to_9999() {
        assert!(check_range("t", 0, 0).is_ok());
        assert!(check_range("t", -1, 999_999_999).is_err());
        assert_eq!(
            check_range("t", MAX_SECONDS, 999_999_999).unwrap().to_rfc3339(),
            "9999-12-31T23:59:59.999999999+00:00"
        );
        assert!(check_range("t", MAX_SECONDS + 1, 0).is_err());
        assert!(check_range("t", 1, -1).is_err());
        assert!(check_range("t", 1, 1_000_000_000).is_err());
    }

    proptest! {
        #[test]
        fn accepted_times_survive_centuries_of_arithmetic(seconds in MIN_SECONDS..=MAX_SECONDS, nanos in 0i32..1_000_000_000) {
            let t = check_range("t", seconds, nanos).unwrap();
            prop_assert!(t.checked_add_signed(days(365 * 1000)).is_some());
            prop_assert!(t.checked_sub_signed(days(365 * 1000)).is_some());
            prop_assert_eq!(from_micros(to_micros(t)).timestamp(), seconds);
        }

        #[test]
        fn refused_times_name_the_field(seconds in any::<i64>(), nanos in any::<i32>()) {
            if let Err(AppError::InvalidArgument(v)) = check_range("as_of", seconds, nanos) {
                prop_assert_eq!(&v[0].field, "as_of");
            }
        }
    }
}
