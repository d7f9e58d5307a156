//! Rate limits shared by the replicas in Redis (`RAPPORT_REDIS_URL`): two servers on one
//! database and one Redis together allow a publishable key its configured rate — the
//! burst plus what accrues while the flood lasts — not twice it; another tenant's key
//! keeps its own; with a Redis that cannot be reached, calls go on under each
//! replica's own limits (fail open) and `/metrics` counts the failures; and when Redis
//! comes back, the replicas share their limits again by themselves.
//!
//! These need Redis at 127.0.0.1:6379 (or `RAPPORT_TEST_REDIS_URL`): without it they
//! skip, saying so, and with `CI=true` they fail.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::helpers::*;
use crate::observability::{scrape, value};

crate::on_both!(
    two_replicas_together_allow_a_publishable_key_its_rate_once,
    with_redis_unreachable_calls_go_on_under_each_replicas_own_limits_and_are_counted,
);

/// 60 a minute: a bucket gains one call a second.
pub(crate) const PER_MINUTE: u32 = 60;
pub(crate) const BURST: u32 = 10;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(4);
/// Concurrent callers per server.
const CALLERS: usize = 4;

/// Asks for `survey` with the publishable key `pk` on `app`: Ok, or RESOURCE_EXHAUSTED
/// (false). Anything else fails the test.
async fn issue(app: &TestApp, pk: &str, survey: &str) -> bool {
    let res = app
        .surveys_as(Some(pk))
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: survey.into(),
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await;
    match res {
        Ok(_) => true,
        Err(e) if e.code() == Code::ResourceExhausted => false,
        Err(e) => panic!("expected OK or RESOURCE_EXHAUSTED, got {e:?}"),
    }
}

/// An in-app survey of the tenant whose secret key is `key`.
pub(crate) async fn in_app_survey(app: &TestApp, key: &str) -> String {
    app.surveys_as(Some(key))
        .create_survey(pb::CreateSurveyRequest {
            survey: Some(pb::Survey {
                kind: pb::SurveyKind::Nps as i32,
                question: "How likely are you to recommend us?".into(),
                in_app: true,
                ..Default::default()
            }),
        })
        .await
        .expect("create survey")
        .into_inner()
        .id
}

pub(crate) fn limited(a: &mut rapport::config::ServeArgs) {
    a.publishable_key_rate_per_minute = PER_MINUTE;
    a.publishable_key_burst = BURST;
    // Every test call comes from 127.0.0.1: only the key's limit is measured here.
    a.client_address_rate_per_minute = 0;
}

async fn two_replicas_together_allow_a_publishable_key_its_rate_once(b: Backend) {
    let Some(redis) = test_redis_url().await else { return };
    let prefix = redis_test_prefix();
    let servers = spawn_replicas(b, 2, |_, a, _| {
        limited(a);
        a.redis_url = Some(redis.clone());
        a.redis_key_prefix = prefix.clone();
        // Generous: on a loaded test machine a check may wait for a CPU longer than the
        // default 100 ms, and a check that falls back counts on its replica alone.
        a.redis_timeout_ms = 5_000;
    })
    .await;
    let survey = in_app_survey(&servers[0], &servers[0].key).await;
    let pk = servers[0].publishable_key().await;

    let (elapsed, per_server) = flood(&servers, &pk, &survey, FLOOD).await;
    let accepted: u32 = per_server.iter().map(|(a, _)| a).sum();
    // The bucket holds BURST and gains one a second: over the flood it lets through
    // BURST plus one per whole second, give or take the one that accrues at its edges.
    // Each server alone would have allowed as much again (2 × BURST at least).
    let accrued = elapsed.as_secs() as u32;
    let lowest = BURST + FLOOD.as_secs() as u32 - 1;
    let highest = BURST + accrued + 1;
    println!("shared rate limit over {elapsed:?}: accepted (ok, refused) per server {per_server:?}, total {accepted}");
    assert!(
        (lowest..=highest).contains(&accepted),
        "two replicas sharing one bucket of {BURST} + {PER_MINUTE}/min accepted {accepted} calls in {elapsed:?} \
         (expected {lowest}..={highest}); per server (accepted, refused): {per_server:?}"
    );
    assert!(per_server.iter().all(|(_, refused)| *refused > 0), "both servers refused calls: {per_server:?}");
    for s in servers.iter() {
        let errors = value(&scrape(s).await, "rapport_rate_limit_backend_errors_total", &[]);
        assert_eq!(errors, 0.0, "every check was Redis's: none fell back to the replica's own buckets");
    }

    // Another tenant's publishable key has its own (shared) bucket, full: BURST calls
    // across both servers, then refused.
    let globex = servers[0].other_tenant_key().await;
    let theirs = in_app_survey(&servers[0], &globex).await;
    let their_pk =
        servers[0].services.create_key("globex", rapport::domain::model::KeyKind::Publishable).await.unwrap().secret;
    let t0 = Instant::now();
    for i in 0..BURST as usize {
        assert!(issue(&servers[i % 2], &their_pk, &theirs).await, "call {i} of another tenant's key");
    }
    // Unless a second passed meanwhile and refilled one call.
    if t0.elapsed() < Duration::from_millis(900) {
        assert!(!issue(&servers[1], &their_pk, &theirs).await, "its bucket is shared by the replicas too");
    }
}

/// Floods every server in `servers` with `pk` at once, [`CALLERS`] callers each, for
/// `how_long`: the time it took and, per server, (accepted, refused).
pub(crate) async fn flood(
    servers: &[TestApp],
    pk: &str,
    survey: &str,
    how_long: Duration,
) -> (Duration, Vec<(u32, u32)>) {
    let started = Instant::now();
    let mut callers = Vec::new();
    for server in servers.iter() {
        for _ in 0..CALLERS {
            let (surveys, pk, survey) = (server.surveys_as(Some(pk)), pk.to_owned(), survey.to_owned());
            callers.push(tokio::spawn(async move {
                let (mut accepted, mut refused) = (0u32, 0u32);
                while started.elapsed() < how_long {
                    let res = surveys
                        .clone()
                        .issue_survey(pb::IssueSurveyRequest {
                            survey_id: survey.clone(),
                            customer_id: "c1".into(),
                            ..Default::default()
                        })
                        .await;
                    match res {
                        Ok(_) => accepted += 1,
                        Err(e) if e.code() == Code::ResourceExhausted => refused += 1,
                        Err(e) => panic!("expected OK or RESOURCE_EXHAUSTED, got {e:?} ({pk})"),
                    }
                }
                (accepted, refused)
            }));
        }
    }
    let mut per_server = vec![(0u32, 0u32); servers.len()];
    for (i, c) in callers.into_iter().enumerate() {
        let (a, r) = c.await.expect("a caller");
        per_server[i / CALLERS].0 += a;
        per_server[i / CALLERS].1 += r;
    }
    (started.elapsed(), per_server)
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn with_redis_unreachable_calls_go_on_under_each_replicas_own_limits_and_are_counted(b: Backend) {
    let port = closed_port().await;
    let servers = spawn_replicas(b, 2, |_, a, _| {
        limited(a);
        a.publishable_key_burst = 3;
        a.redis_url = Some(format!("redis://127.0.0.1:{port}"));
        a.redis_timeout_ms = 100;
    })
    .await;
    for s in servers.iter() {
        assert_eq!(value(&scrape(s).await, "rapport_rate_limit_backend_errors_total", &[]), 0.0);
    }
    let survey = in_app_survey(&servers[0], &servers[0].key).await;
    let pk = servers[0].publishable_key().await;
    // Each replica applies its own bucket of 3: calls are served, never failed for Redis.
    for s in servers.iter() {
        let started = Instant::now();
        for i in 0..3 {
            assert!(issue(s, &pk, &survey).await, "call {i} is served without Redis");
        }
        if started.elapsed() < Duration::from_millis(900) {
            assert!(!issue(s, &pk, &survey).await, "the replica's own limit still holds");
        }
    }
    for s in servers.iter() {
        let errors = value(&scrape(s).await, "rapport_rate_limit_backend_errors_total", &[]);
        assert!(errors >= 1.0, "the failed Redis checks are counted: {errors}");
    }
}

/// A `redis-server` of the test's own on `port`, killed when dropped.
struct OwnRedis(tokio::process::Child);

impl OwnRedis {
    /// Starts one and waits until it answers; `None` (skipping, or failing with
    /// `CI=true`) where the `redis-server` binary is missing.
    async fn start(port: u16) -> Option<OwnRedis> {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("redis-server does not start: {e}"),
            Err(e) => {
                eprintln!("SKIPPED: redis-server does not start ({e}); install Debian's redis-server");
                return None;
            }
        };
        let up = eventually(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        assert!(up, "redis-server answers on port {port}");
        Some(OwnRedis(child))
    }

    async fn stop(mut self) {
        self.0.kill().await.expect("redis-server stops");
    }
}

/// Whether a new publishable key gets exactly its burst across both servers (shared
/// buckets), not a burst on each.
async fn shares_one_bucket(servers: &Replicas, survey: &str, burst: u32) -> bool {
    let pk = servers[0].publishable_key().await;
    let started = Instant::now();
    for i in 0..burst as usize {
        if !issue(&servers[i % 2], &pk, survey).await {
            return false;
        }
    }
    let refused = !issue(&servers[burst as usize % 2], &pk, survey).await;
    // A second refills one call: then this attempt proves nothing either way.
    refused && started.elapsed() < Duration::from_millis(900)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_comes_back_the_replicas_share_their_limits_again() {
    let port = closed_port().await;
    let Some(redis) = OwnRedis::start(port).await else { return };
    let servers = spawn_replicas(Backend::Sqlite, 2, |_, a, _| {
        limited(a);
        a.publishable_key_burst = 3;
        a.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let survey = in_app_survey(&servers[0], &servers[0].key).await;
    assert!(shares_one_bucket(&servers, &survey, 3).await, "shared while Redis runs");

    // Redis goes away: calls are served under each replica's own limits.
    redis.stop().await;
    let pk = servers[0].publishable_key().await;
    for s in servers.iter() {
        assert!(issue(s, &pk, &survey).await, "served without Redis");
    }
    for s in servers.iter() {
        let errors = value(&scrape(s).await, "rapport_rate_limit_backend_errors_total", &[]);
        assert!(errors >= 1.0, "the failures are counted: {errors}");
    }

    // Back again (empty: its buckets start full): the replicas reconnect by themselves
    // and share one bucket per key again.
    let _redis = OwnRedis::start(port).await.expect("restarts");
    let again = eventually(Duration::from_secs(20), || shares_one_bucket(&servers, &survey, 3)).await;
    assert!(again, "the limits are shared again once Redis is back");
}
