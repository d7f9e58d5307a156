//! The rules behind the monthly partitions of the history tables on PostgreSQL
//! (docs/operations.md, "History partitions"): which calendar month (UTC) a time falls
//! in, what a month's partition is called and which times it holds, which months are
//! kept ready ahead, and when a past month may go whole instead of row by row.

use chrono::{Datelike, NaiveDate};

use super::TenantId;
use super::time::{self, Timestamp};

/// Months kept ready after the current one, so a month's first write never waits for
/// its partition (the worker checks daily; two months leave weeks to spare).
pub const MONTHS_AHEAD: u32 = 2;

/// A calendar month, UTC: the span of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1–12.
    month: u32,
}

impl Month {
    /// The month `year`-`month` (1–12), if the API's range (1970–9999) holds it.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    /// The month `t` falls in.
    pub fn of(t: Timestamp) -> Month {
        Month { year: t.year(), month: t.month() }
    }

    /// The month a stored time (microseconds since the epoch) falls in.
    pub fn of_micros(us: i64) -> Month {
        Month::of(time::from_micros(us))
    }

    /// The month `n` months later.
    pub fn plus(self, n: u32) -> Month {
        let index = self.year * 12 + self.month as i32 - 1 + n as i32;
        Month { year: index.div_euclid(12), month: index.rem_euclid(12) as u32 + 1 }
    }

    /// Its first microsecond, the partition's lower bound (inclusive).
    pub fn start_micros(self) -> i64 {
        let day = NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default();
        day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros()
    }

    /// The next month's first microsecond, the partition's upper bound (exclusive).
    pub fn end_micros(self) -> i64 {
        self.plus(1).start_micros()
    }

    /// `YYYYMM`, as partition names end.
    pub fn suffix(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }

    /// The month of a `YYYYMM` suffix.
    pub fn from_suffix(s: &str) -> Option<Month> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Month::new(s[..4].parse().ok()?, s[4..].parse().ok()?)
    }
}

/// The partition of `table` holding `month`: `<table>_pYYYYMM`.
pub fn partition_name(table: &str, month: Month) -> String {
    format!("{table}_p{}", month.suffix())
}

/// The month of a partition of `table`, from its name (`None`: not one of ours, such
/// as the default partition or a table an operator attached).
pub fn month_of_partition(table: &str, name: &str) -> Option<Month> {
    Month::from_suffix(name.strip_prefix(table)?.strip_prefix("_p")?)
}

/// The partition of `table` that takes rows of months without their own.
pub fn default_partition(table: &str) -> String {
    format!("{table}_default")
}

/// The name a retired partition has between leaving the table and being dropped: a
/// table of this name is the worker's own, to drop (a pass that stopped half-way
/// leaves one for the next).
pub fn retired_name(table: &str, month: Month) -> String {
    format!("{}_retired", partition_name(table, month))
}

/// The month of a retired partition of `table`, from its name.
pub fn month_of_retired(table: &str, name: &str) -> Option<Month> {
    month_of_partition(table, name.strip_suffix("_retired")?)
}

/// The months whose partitions must exist at `now`: this one and [`MONTHS_AHEAD`] more.
pub fn months_ahead(now: Timestamp) -> Vec<Month> {
    let this = Month::of(now);
    (0..=MONTHS_AHEAD).map(|n| this.plus(n)).collect()
}

/// The tenants whose retention still keeps some time of `month` at `now`: those that
/// keep forever (`days` 0) and those whose cutoff (`now − days`) is before the month's
/// end. While one of them has a row in the month, its partition stays; otherwise
/// every row in it is past its own tenant's retention, and the partition may go whole.
/// A month not wholly past is kept by everyone (nothing of it is dropped early).
pub fn keeping<'a>(tenants: &'a [(TenantId, i32)], month: Month, now: Timestamp) -> Keeping<'a> {
    let now_us = time::to_micros(now);
    if month.end_micros() > now_us {
        return Keeping::Everyone;
    }
    Keeping::Tenants(
        tenants
            .iter()
            .filter(|(_, days)| *days == 0 || month.end_micros() > now_us - i64::from(*days) * 86_400_000_000)
            .map(|(t, _)| t)
            .collect(),
    )
}

/// What one pass of the partitions worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionPass {
    /// Partitions created.
    pub created: u32,
    /// Rows moved out of the default partitions into them.
    pub moved: u64,
    /// Partitions that could not be created this pass (logged; tried again soon).
    pub failed: u32,
}

/// Who keeps a month (see [`keeping`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Keeping<'a> {
    /// The month is not over: its partition stays.
    Everyone,
    /// These tenants keep some of it; any other tenant's rows in it are all past.
    Tenants(Vec<&'a TenantId>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_month_spans_its_first_microsecond_to_the_next_month_s() {
        let dec = Month::of(at("2026-12-31T23:59:59.999999Z"));
        assert_eq!(dec.suffix(), "202612");
        assert_eq!(dec.start_micros(), time::to_micros(at("2026-12-01T00:00:00Z")));
        assert_eq!(dec.end_micros(), time::to_micros(at("2027-01-01T00:00:00Z")));
        assert_eq!(Month::of_micros(dec.end_micros()), dec.plus(1));
        assert_eq!(Month::of_micros(dec.end_micros() - 1), dec);
        assert_eq!(Month::of_micros(0).suffix(), "197001");
    }

    #[test]
    fn names_carry_the_month_and_only_ours_parse() {
        let m = Month::new(2024, 3).unwrap();
        assert_eq!(partition_name("activity_events", m), "activity_events_p202403");
        assert_eq!(month_of_partition("activity_events", "activity_events_p202403"), Some(m));
        assert_eq!(month_of_partition("activity_events", "activity_events_default"), None);
        assert_eq!(month_of_partition("activity_events", "activity_events_p202413"), None);
        assert_eq!(month_of_partition("activity_events", "delivery_attempts_p202403"), None);
        assert_eq!(month_of_partition("activity_events", "activity_events_p202403_retired"), None);
        assert_eq!(retired_name("activity_events", m), "activity_events_p202403_retired");
        assert_eq!(month_of_retired("activity_events", "activity_events_p202403_retired"), Some(m));
        assert_eq!(month_of_retired("activity_events", "activity_events_p202403"), None);
        assert_eq!(Month::new(1969, 12), None);
    }

    #[test]
    fn this_month_and_two_more_are_kept_ready() {
        let months: Vec<String> = months_ahead(at("2026-11-30T12:00:00Z")).iter().map(|m| m.suffix()).collect();
        assert_eq!(months, ["202611", "202612", "202701"]);
    }

    #[test]
    fn a_month_goes_whole_only_when_no_tenant_with_rows_in_it_still_keeps_it() {
        let (short, long, forever) = (TenantId("short".into()), TenantId("long".into()), TenantId("forever".into()));
        let tenants = vec![(short.clone(), 30), (long.clone(), 730), (forever.clone(), 0)];
        let now = at("2026-12-15T00:00:00Z");
        // The current month and a month not over: everyone keeps it.
        assert_eq!(keeping(&tenants, Month::of(now), now), Keeping::Everyone);
        // October ended 45 days ago: past the 30 days, not the 730.
        let oct = Month::new(2026, 10).unwrap();
        assert_eq!(keeping(&tenants, oct, now), Keeping::Tenants(vec![&long, &forever]));
        // November ended 14 days ago: the 30-day tenant still has rows in it to keep.
        let nov = Month::new(2026, 11).unwrap();
        assert_eq!(keeping(&tenants, nov, now), Keeping::Tenants(vec![&short, &long, &forever]));
        // Three years ago: only the tenant keeping forever.
        let old = Month::new(2023, 11).unwrap();
        assert_eq!(keeping(&tenants, old, now), Keeping::Tenants(vec![&forever]));
    }
}
