//! Three servers behind one PgBouncer in transaction mode, on one PostgreSQL database,
//! sharing one Redis — the deployment docs/operations.md describes ("Several replicas",
//! "Behind PgBouncer"): every event is delivered to a webhook once, a `WatchEvents`
//! stream on one server hears the answers recorded on every server promptly (the
//! replicas poll only every 10 s: only LISTEN/NOTIFY, on the direct URL, explains a
//! prompt wake-up), and a publishable key's rate limit holds across the three in total.
//!
//! Needs pgbouncer and Redis: without them it skips, saying so; with `CI=true` it fails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rapport::grpc::pb::event_service_client::EventServiceClient;
use rapport::grpc::pb::webhook_service_client::WebhookServiceClient;

use rapport::store::DbSettings;

use crate::helpers::*;
use crate::observability::{scrape, value};
use crate::pgbouncer::PgBouncer;
use crate::rate_limits_shared::{BURST, PER_MINUTE, flood, in_app_survey, limited};
use crate::receiver::Receiver;

/// The replicas' polling: far longer than any wake-up the test accepts.
const POLL_MS: u64 = 10_000;
/// A wake-up slower than this is a failure (the poll would take up to 10 s).
const PROMPT: Duration = Duration::from_secs(2);
const ANSWERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_behind_pgbouncer_with_redis_deliver_once_wake_each_other_and_share_limits() {
    let Some(bouncer) = PgBouncer::migrated().await else { return };
    let Some(redis) = test_redis_url().await else { return };
    let prefix = redis_test_prefix();
    let db = DbSettings { direct_url: Some(bouncer.direct_url.clone()), ..bouncer.settings() };
    let settings = |a: &mut rapport::config::ServeArgs| {
        fast_outbox(a);
        a.outbox.worker_poll_ms = POLL_MS;
        limited(a);
        a.redis_url = Some(redis.clone());
        a.redis_key_prefix = prefix.clone();
        a.redis_timeout_ms = 5_000;
    };
    let first = spawn_app_with_db(Backend::Postgres, db.clone(), None, settings).await;
    let mut servers = vec![first];
    for _ in 1..3 {
        let key = Some(servers[0].key.clone());
        servers.push(spawn_app_with_db(Backend::Postgres, db.clone(), key, settings).await);
    }

    // A webhook endpoint (made on the first) and a stream (on the third).
    let rx = Receiver::start().await;
    WebhookServiceClient::with_interceptor(servers[0].channel.clone(), Auth(Some(servers[0].key.clone())))
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url: rx.url.clone(),
            description: "CRM".into(),
            event_types: vec!["response.recorded".into()],
            survey_ids: vec![],
        })
        .await
        .expect("endpoint");
    let mut stream =
        EventServiceClient::with_interceptor(servers[2].channel.clone(), Auth(Some(servers[2].key.clone())))
            .watch_events(pb::WatchEventsRequest { after_sequence: 0, types: vec!["response.recorded".into()] })
            .await
            .expect("watch")
            .into_inner();

    // Answers on each server in turn; each one's event reaches the third's stream.
    let survey = servers[0].survey(pb::SurveyKind::Nps, None).await;
    let mut waits = Vec::new();
    let mut seen = Vec::new();
    for i in 0..ANSWERS {
        let response = servers[i % 3].answer(&survey.id, &format!("c{i}"), 9).await.expect("recorded");
        let committed = Instant::now();
        let event = tokio::time::timeout(PROMPT, async {
            loop {
                let e = stream.message().await.expect("the stream").expect("an event");
                let about = e.data.as_ref().and_then(|d| d.fields.get("response_id")).and_then(|v| v.kind.clone());
                if matches!(about, Some(prost_types::value::Kind::StringValue(id)) if id == response.id) {
                    return e;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("answer {i} (server {}) not on the stream within {PROMPT:?}", i % 3));
        waits.push(committed.elapsed());
        seen.push(event.sequence);
    }
    waits.sort();
    println!(
        "stream on server 2, answers on servers 0–2: median {:?}, max {:?}",
        waits[ANSWERS / 2],
        waits[ANSWERS - 1]
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in commit order: {seen:?}");

    // Every answer's event reaches the webhook once: one delivery per event, no attempt twice.
    let delivered =
        eventually(Duration::from_secs(60), || async { rx.hits_of("response.recorded").len() >= ANSWERS }).await;
    assert!(delivered, "{} of {ANSWERS} webhooks", rx.hits_of("response.recorded").len());
    let mut per_event = HashMap::<String, usize>::new();
    for h in rx.hits_of("response.recorded") {
        *per_event.entry(h.id).or_default() += 1;
    }
    assert_eq!(per_event.len(), ANSWERS, "one delivery per event");
    assert!(per_event.values().all(|&n| n == 1), "no event delivered twice: {per_event:?}");

    // One publishable key flooded on all three: the shared bucket's allowance in total.
    let in_app = in_app_survey(&servers[0], &servers[0].key).await;
    let pk = servers[0].publishable_key().await;
    let how_long = Duration::from_secs(3);
    let (elapsed, per_server) = flood(&servers, &pk, &in_app, how_long).await;
    let accepted: u32 = per_server.iter().map(|(a, _)| a).sum();
    let (lowest, highest) = (BURST + how_long.as_secs() as u32 - 1, BURST + elapsed.as_secs() as u32 + 1);
    assert!(
        (lowest..=highest).contains(&accepted),
        "three replicas sharing one bucket of {BURST} + {PER_MINUTE}/min accepted {accepted} in {elapsed:?} \
         (expected {lowest}..={highest}); per server (accepted, refused): {per_server:?}"
    );
    for s in &servers {
        let errors = value(&scrape(s).await, "rapport_rate_limit_backend_errors_total", &[]);
        assert_eq!(errors, 0.0, "every check was Redis's");
    }
    // The servers go before the PgBouncer and its database.
    while let Some(s) = servers.pop() {
        drop(s);
    }
    drop(bouncer);
}
