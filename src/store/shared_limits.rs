//! Rate-limit buckets kept in Redis, so that every replica draws on the same ones
//! (`RAPPORT_REDIS_URL`, docs/operations.md). The rule is the one the replica's own
//! buckets follow (GCRA, as the `governor` crate counts: a bucket holds `burst` calls
//! and gains one every `interval`); here a bucket is one Redis key holding its
//! "theoretical arrival time" in microseconds of Redis's clock, and one Lua script
//! checks and takes every bucket of a call at once — all of them or none — in one
//! round trip (EVALSHA; the script is loaded again when Redis answers NOSCRIPT, after a
//! restart). Redis's clock (`TIME`) is the only clock, so replicas whose clocks
//! disagree still share one rate.
//!
//! A key expires when its bucket is full again, so Redis holds only the callers that
//! called lately. Every key starts with the configured prefix, so several deployments
//! (or tests) can share one Redis. The keys of one call are in one script, so a Redis
//! Cluster is not supported: one Redis (or a primary with replicas) is.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::{Result, StoreError};

/// Takes one call from each bucket in KEYS, all or none. ARGV holds two numbers per
/// key: the bucket's emission interval and its tolerance (`interval × (burst − 1)`),
/// in microseconds. Returns `{0, 0}` when every bucket had room (and took the call),
/// else `{i, wait}`: the first full bucket (1-based) and the microseconds until it has
/// room, having changed nothing.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  local earliest = tat - tolerance
  if now < earliest then
    return {i, earliest - now}
  end
  next[i] = math.max(tat, now) + interval
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', next[i]), 'PX', math.ceil((next[i] - now) / 1000))
end
return {0, 0}
";

/// One bucket a call draws on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// What the bucket is for, unique among the deployment's buckets, e.g.
    /// `pk:<hash of the key>` or `ip:192.0.2.1` (the prefix is added here).
    pub name: String,
    /// How long the bucket takes to gain one call.
    pub interval: Duration,
    /// How many calls it holds when full (at least 1).
    pub burst: u32,
}

/// Redis's answer for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Every bucket had room and took the call.
    Admitted,
    /// The bucket at this index of the call's list is full; it has room after `wait`.
    Full { bucket: usize, wait: Duration },
}

/// The connection to Redis: one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct SharedBuckets {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    script: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never shown.
        f.debug_struct("SharedBuckets").field("prefix", &self.prefix).field("timeout", &self.timeout).finish()
    }
}

impl SharedBuckets {
    /// Buckets in the Redis at `url` (`redis://[user:password@]host:port[/db]`), under
    /// keys starting with `prefix`; each check waits at most `timeout` for Redis. The
    /// connection is opened at the first check, not here: a Redis that is down at start
    /// does not keep the server from starting. Fails only for a URL that is not one.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        // The error never quotes the URL, which may hold a password.
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("RAPPORT_REDIS_URL is not a Redis URL ({:?})", e.kind()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
            .set_max_delay(Duration::from_secs(5))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("RAPPORT_REDIS_URL: {:?}", e.kind()))?;
        Ok(SharedBuckets {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            script: std::sync::Arc::new(redis::Script::new(TAKE)),
        })
    }

    /// Takes one call from every bucket of `buckets`, or none if one is full.
    /// [`StoreError::Timeout`] when Redis does not answer within the timeout,
    /// [`StoreError::Other`] when it cannot be reached or answers an error.
    pub async fn take(&self, buckets: &[Bucket]) -> Result<Taken> {
        if buckets.is_empty() {
            return Ok(Taken::Admitted);
        }
        let mut call = self.script.prepare_invoke();
        for b in buckets {
            let interval = micros(b.interval).max(1);
            call.key(format!("{}rl:{}", self.prefix, b.name))
                .arg(interval)
                .arg(interval.saturating_mul(u64::from(b.burst.max(1) - 1)));
        }
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(self.timeout, call.invoke_async::<Vec<i64>>(&mut conn)).await;
        let reply = match answer {
            Err(_) => return Err(StoreError::Timeout { step: "rate-limit check".into(), after: self.timeout }),
            Ok(Err(e)) => return Err(classify(e, self.timeout)),
            Ok(Ok(reply)) => reply,
        };
        match reply.as_slice() {
            [0, _] => Ok(Taken::Admitted),
            [i, wait] if *i >= 1 && (*i as usize) <= buckets.len() => {
                Ok(Taken::Full { bucket: *i as usize - 1, wait: Duration::from_micros((*wait).max(0) as u64) })
            }
            other => Err(StoreError::other(anyhow::anyhow!("the rate-limit script answered {other:?}"))),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Redis's error, as the store's: too slow, or anything else (unreachable, refused),
/// with Redis's words, which never quote the URL.
fn classify(e: redis::RedisError, timeout: Duration) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout { step: "rate-limit check".into(), after: timeout }
    } else {
        StoreError::other(anyhow::anyhow!("Redis: {e}"))
    }
}
