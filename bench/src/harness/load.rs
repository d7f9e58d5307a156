//! Driving a load: keep a number of calls in flight for a warm-up and a measured
//! window, time each call, and sum it up; and timing calls one after another.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;

/// A call the load generator repeats.
pub trait Operation: Clone + Send + Sync + 'static {
    /// Makes call number `seq` of load task `worker`; returns the units it did (1 for
    /// one answer or one row, the accepted events of a batch).
    fn call(&self, worker: usize, seq: u64) -> impl Future<Output = anyhow::Result<u64>> + Send;
}

/// What one load measured.
#[derive(Debug, Default)]
pub struct Sample {
    /// Latencies of the successful calls started in the measured window, sorted.
    pub latencies: Vec<Duration>,
    /// Units those calls did.
    pub units: u64,
    /// Calls started in the measured window that failed.
    pub errors: u64,
    /// Calls that failed during the warm-up.
    pub warmup_errors: u64,
    /// The first failure, warm-up included, to show why.
    pub first_error: Option<String>,
    /// From the start of the window to the end of the last call counted.
    pub elapsed: Duration,
}

impl Sample {
    /// Units per second (calls per second when a call is one unit).
    pub fn rate(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn p(&self, pct: f64) -> Option<Duration> {
        percentile(&self.latencies, pct)
    }

    /// Failed calls, warm-up included.
    pub fn all_errors(&self) -> u64 {
        self.errors + self.warmup_errors
    }
}

/// One load task's tally.
struct Tally {
    latencies: Vec<Duration>,
    units: u64,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
    last_done: Instant,
}

/// Keeps `concurrency` calls of `op` in flight: each task loops, one call at a time,
/// until the window closes. Calls that start during the warm-up are not counted.
pub async fn drive<O: Operation>(
    op: &O,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<Sample> {
    let measure_from = Instant::now() + warmup;
    let until = measure_from + measure;
    let mut tasks = JoinSet::new();
    for worker in 0..concurrency {
        tasks.spawn(load_task(op.clone(), worker, measure_from, until));
    }
    let mut sample = Sample::default();
    let mut last_done = until;
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a load task panicked")?;
        sample.latencies.extend(tally.latencies);
        sample.units += tally.units;
        sample.errors += tally.errors;
        sample.warmup_errors += tally.warmup_errors;
        if sample.first_error.is_none() {
            sample.first_error = tally.first_error;
        }
        last_done = last_done.max(tally.last_done);
    }
    sample.latencies.sort_unstable();
    sample.elapsed = last_done.saturating_duration_since(measure_from);
    Ok(sample)
}

/// One load task: call, time, repeat, until `until`.
async fn load_task<O: Operation>(op: O, worker: usize, measure_from: Instant, until: Instant) -> Tally {
    let mut tally = Tally {
        latencies: Vec::new(),
        units: 0,
        errors: 0,
        warmup_errors: 0,
        first_error: None,
        last_done: measure_from,
    };
    let mut seq = 0u64;
    loop {
        let started = Instant::now();
        if started >= until {
            return tally;
        }
        let result = op.call(worker, seq).await;
        let done = Instant::now();
        seq += 1;
        if let Err(e) = &result
            && tally.first_error.is_none()
        {
            tally.first_error = Some(format!("{e:#}"));
        }
        let measured = started >= measure_from;
        match (measured, result) {
            (true, Ok(units)) => {
                tally.latencies.push(done - started);
                tally.units += units;
            }
            (true, Err(_)) => tally.errors += 1,
            (false, Ok(_)) => {}
            (false, Err(_)) => tally.warmup_errors += 1,
        }
        if measured {
            tally.last_done = done;
        }
    }
}

/// The nearest-rank `pct` percentile (0–100) of sorted latencies; `None` when empty.
pub fn percentile(sorted: &[Duration], pct: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The latency of a call made alone, one call after another.
pub struct Latency {
    /// Milliseconds.
    pub median: f64,
    pub p95: f64,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "median {:>8.2} ms, p95 {:>8.2} ms", self.median, self.p95)
    }
}

/// Three warm-up calls, then `samples` timed calls one after another. The first
/// failure ends the measurement.
pub async fn sequential<F, Fut, E>(samples: u64, call: F) -> anyhow::Result<Latency>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<anyhow::Error>,
{
    for _ in 0..3 {
        call().await.map_err(Into::into)?;
    }
    let mut times = Vec::with_capacity(samples as usize);
    for _ in 0..samples.max(1) {
        let t = Instant::now();
        call().await.map_err(Into::into)?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let ms = |pct| percentile(&times, pct).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    Ok(Latency { median: ms(50.0), p95: ms(95.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn percentile_of_nothing_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_is_the_nearest_rank() {
        let sorted = ms_list(1..=100);
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn percentile_of_few_values_rounds_up() {
        let sorted = ms_list([10, 20, 30]);
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&ms_list([7]), 99.0), Some(Duration::from_millis(7)));
    }

    /// Fails every third call, and counts each call as two units.
    #[derive(Clone)]
    struct Flaky;

    impl Operation for Flaky {
        async fn call(&self, _worker: usize, seq: u64) -> anyhow::Result<u64> {
            tokio::task::yield_now().await;
            if seq % 3 == 2 { anyhow::bail!("call {seq} failed") } else { Ok(2) }
        }
    }

    #[tokio::test]
    async fn a_load_counts_units_and_errors_of_the_measured_window_only() {
        let s = drive(&Flaky, 2, Duration::from_millis(20), Duration::from_millis(50)).await.unwrap();
        assert!(!s.latencies.is_empty());
        assert_eq!(s.units, 2 * s.latencies.len() as u64);
        assert!(s.errors > 0 && s.warmup_errors > 0, "{s:?}");
        assert!(s.first_error.unwrap().ends_with("failed"));
        assert!(s.elapsed >= Duration::from_millis(50));
    }
}
