//! Replicas wake each other through PostgreSQL (LISTEN/NOTIFY): a `WatchEvents`
//! stream on one server hears of an event committed on another at once, not at the
//! next poll. The servers poll every 30 s here, so only the NOTIFY can explain a
//! delivery within the bound (2 s, generous: it is a few milliseconds). The
//! listening session comes back by itself after PostgreSQL ends it.
//!
//! PostgreSQL only: on SQLite one process writes and reads, and nothing changes.

use std::time::{Duration, Instant};

use pb::event_service_client::EventServiceClient;
use sea_orm::{ConnectionTrait, Database};
use tonic::Streaming;

use crate::helpers::*;

/// Poll interval of the servers' workers and streams: far longer than any wait below.
const POLL_MS: u64 = 30_000;
/// What a NOTIFY-driven delivery must beat (the poll is 30 s).
const BOUND: Duration = Duration::from_secs(2);
const EVENTS: usize = 20;

async fn two_replicas() -> Replicas {
    spawn_replicas(Backend::Postgres, 2, |_, a, _| a.outbox.worker_poll_ms = POLL_MS).await
}

/// A stream of every event after `after` on `app`.
async fn watch(app: &TestApp, after: i64) -> Streaming<pb::Event> {
    EventServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .watch_events(pb::WatchEventsRequest { after_sequence: after, types: vec![] })
        .await
        .expect("watch")
        .into_inner()
}

/// The next event on `stream` that carries `response_id`, within a generous deadline.
async fn next_for(stream: &mut Streaming<pb::Event>, response_id: &str) -> pb::Event {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(e))) => e,
            other => panic!("no event for response {response_id}: {other:?}"),
        };
        let carries = e.data.as_ref().and_then(|d| d.fields.get("response_id")).and_then(|v| v.kind.as_ref());
        if matches!(carries, Some(prost_types::value::Kind::StringValue(id)) if id == response_id) {
            return e;
        }
    }
}

/// Records an answer on `writer` and returns how long until `stream` (on another
/// server) delivered its event: from the call, and from its answer (by then the
/// transaction has committed, so this is the wake-up and the stream's read).
async fn latency(
    writer: &TestApp,
    survey: &str,
    customer: &str,
    stream: &mut Streaming<pb::Event>,
) -> (Duration, Duration) {
    let t0 = Instant::now();
    let response = writer.answer(survey, customer, 9).await.expect("recorded");
    let committed = Instant::now();
    let e = next_for(stream, &response.id).await;
    assert_eq!(e.r#type, "response.recorded");
    (t0.elapsed(), committed.elapsed())
}

fn summary(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort();
    (latencies[latencies.len() / 2], *latencies.last().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_replica_hears_of_an_event_committed_on_another_at_once() {
    let servers = two_replicas().await;
    let (a, b) = (&servers[0], &servers[1]);
    let survey = a.survey(pb::SurveyKind::Nps, None).await;
    let mut on_b = watch(b, 0).await;
    // The survey's own events, if any, then the answers'.
    let (mut latencies, mut after_commit) = (Vec::new(), Vec::new());
    for i in 0..EVENTS {
        let (total, woken) = latency(a, &survey.id, &format!("c{i}"), &mut on_b).await;
        latencies.push(total);
        after_commit.push(woken);
    }
    let (median, max) = summary(latencies.clone());
    let (woken_median, woken_max) = summary(after_commit);
    println!(
        "NOTIFY wake-up over {EVENTS} events, RecordResponse called on A to the event on B's WatchEvents: \
         median {median:?}, max {max:?}; from A's answer (committed) to B's event: median {woken_median:?}, \
         max {woken_max:?}"
    );
    // The poll is 30 s: only a NOTIFY delivers within the bound.
    assert!(max < BOUND, "every event reached the other replica's stream within {BOUND:?}: {latencies:?}");
}

/// The sessions named `rapport listener` on the test's database.
async fn listeners(app: &TestApp) -> Vec<i32> {
    let (name, admin) = app.pg.clone().expect("a PostgreSQL test database");
    let conn = Database::connect(&admin).await.expect("admin connection");
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND application_name = 'rapport listener'"
            ),
        ))
        .await
        .expect("pg_stat_activity");
    let _ = conn.close().await;
    rows.iter().map(|r| r.try_get::<i32>("", "pid").unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listening_session_comes_back_after_postgresql_ends_it() {
    let servers = two_replicas().await;
    let (a, b) = (&servers[0], &servers[1]);
    assert!(eventually(Duration::from_secs(10), || async { listeners(a).await.len() == 2 }).await, "one each");
    let before = listeners(a).await;

    // PostgreSQL ends both listening sessions (as a restart or a failover would).
    let (_, admin) = a.pg.clone().unwrap();
    let conn = Database::connect(&admin).await.unwrap();
    for pid in &before {
        conn.execute_unprepared(&format!("SELECT pg_terminate_backend({pid})")).await.unwrap();
    }
    let _ = conn.close().await;
    let back = eventually(Duration::from_secs(10), || async {
        let now = listeners(a).await;
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    })
    .await;
    assert!(back, "both replicas listen again, on new sessions");

    let survey = a.survey(pb::SurveyKind::Nps, None).await;
    let mut on_b = watch(b, 0).await;
    let (took, _) = latency(a, &survey.id, "after-reconnect", &mut on_b).await;
    println!("after the listening session came back: {took:?}");
    assert!(took < BOUND, "B hears of A's events at once again: {took:?} (the poll is 30 s)");
}
