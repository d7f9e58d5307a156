//! Background work inside `rapport serve`: the webhook fan-out and
//! dispatcher, follow-up SLA escalation, event retention, the tenants' data
//! retention (docs/privacy.md), the fold of old days' counters (docs/engagement.md),
//! the monthly partitions of history on PostgreSQL
//! (docs/operations.md) and, on PostgreSQL, the session that hears of other replicas'
//! events. Each is a loop around
//! one use-case of `service/`; every replica runs them, and the database decides who
//! does what (an advisory lock for the fan-out and for partition changes, `FOR UPDATE
//! SKIP LOCKED` claims for deliveries, conditional updates for overdue marking).

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::service::Services;

/// How long the fan-out gathers committed events after a pass that found some: the
/// delay it adds to a webhook at most, against one pass per commit under load.
const FANOUT_GATHER: Duration = Duration::from_millis(20);

/// How often old events are pruned.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How often the history partitions are checked (and at start): months are kept ready
/// two ahead, so a day is plenty; after a partition could not be created, sooner.
const PARTITIONS_EVERY: Duration = Duration::from_secs(24 * 3600);
const PARTITIONS_RETRY: Duration = Duration::from_secs(600);

/// Starts every worker, as tasks of `services.tasks`. They stop when
/// `services.shutdown` is cancelled, after finishing what they are doing (a delivery
/// attempt included).
pub fn spawn(services: Services) -> Vec<JoinHandle<()>> {
    let poll = services.outbox.poll;
    let sla = services.outbox.sla_check;
    let client = crate::service::webhooks::http_client(services.outbox.timeout);
    let stop = services.shutdown.clone();
    let tasks = services.tasks.clone();
    let mut handles = Vec::new();

    let s = services.clone();
    handles.push(tasks.spawn(run(
        "fan-out",
        stop.clone(),
        move || {
            let s = s.clone();
            async move {
                let n = s.fan_out_events().await?;
                // After fanning something out, gather for a moment (not woken by each
                // commit): under load one pass then takes many commits' events.
                Ok(if n > 0 { Wait::Until(FANOUT_GATHER, Wake::Timer) } else { Wait::Until(poll, Wake::Outbox) })
            }
        },
        services.clone(),
    )));

    let s = services.clone();
    handles.push(tasks.spawn(run(
        "dispatcher",
        stop.clone(),
        move || {
            let s = s.clone();
            let client = client.clone();
            async move {
                let n = s.deliver_due(&client).await?;
                let full = n >= s.outbox.concurrency;
                Ok(Wait::Until(if full { Duration::ZERO } else { poll }, Wake::Deliveries))
            }
        },
        services.clone(),
    )));

    let s = services.clone();
    handles.push(tasks.spawn(run(
        "sla",
        stop.clone(),
        move || {
            let s = s.clone();
            async move {
                s.mark_overdue().await?;
                Ok(Wait::Until(sla, Wake::Timer))
            }
        },
        services.clone(),
    )));

    // PostgreSQL: what other replicas commit wakes this one's streams and dispatcher.
    let s = services.clone();
    handles.push(tasks.spawn(async move { s.relay_notices().await }));

    let s = services.clone();
    let every = services.outbox.retention_check;
    handles.push(tasks.spawn(run(
        "data retention",
        stop.clone(),
        move || {
            let s = s.clone();
            async move {
                let n = s.enforce_retention().await?;
                if n != Default::default() {
                    tracing::info!(
                        activity_events = n.activity_events,
                        comments = n.comments,
                        invitations = n.invitations,
                        delivery_logs = n.delivery_logs,
                        "data past the tenants' retention removed"
                    );
                }
                Ok(Wait::Until(every, Wake::Timer))
            }
        },
        services.clone(),
    )));

    // The fold's first pass comes one interval after start, not at once.
    let s = services.clone();
    let every = services.outbox.fold_every;
    let fold = run(
        "fold",
        stop.clone(),
        move || {
            let s = s.clone();
            async move {
                let pass = s.fold_rollups().await?;
                if pass != Default::default() {
                    tracing::debug!(
                        moved = pass.moved,
                        skipped = pass.skipped,
                        failed = pass.failed,
                        "old days' counters folded"
                    );
                }
                Ok(Wait::Until(every, Wake::Timer))
            }
        },
        services.clone(),
    );
    let first = stop.clone();
    handles.push(tasks.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(every) => fold.await,
            _ = first.cancelled() => {}
        }
    }));

    let s = services.clone();
    handles.push(tasks.spawn(run(
        "partitions",
        stop.clone(),
        move || {
            let s = s.clone();
            async move {
                let pass = s.maintain_partitions().await?;
                Ok(Wait::Until(if pass.failed > 0 { PARTITIONS_RETRY } else { PARTITIONS_EVERY }, Wake::Timer))
            }
        },
        services.clone(),
    )));

    let s = services.clone();
    handles.push(tasks.spawn(run(
        "retention",
        stop,
        move || {
            let s = s.clone();
            async move {
                let n = s.prune_events().await?;
                if n > 0 {
                    tracing::info!(pruned = n, "old events pruned");
                }
                Ok(Wait::Until(RETENTION_EVERY, Wake::Timer))
            }
        },
        services,
    )));
    handles
}

/// What ends a worker's pause early.
enum Wake {
    Timer,
    Outbox,
    Deliveries,
}

enum Wait {
    Until(Duration, Wake),
}

/// Runs `step` until `stop`; a failing step is logged and retried after a pause (the
/// database may be away; the worker carries on when it returns).
async fn run<F, Fut>(name: &'static str, stop: CancellationToken, step: F, services: Services)
where
    F: Fn() -> Fut,
    Fut: Future<Output = crate::error::Result<Wait>>,
{
    loop {
        if stop.is_cancelled() {
            return;
        }
        let (pause, wake) = match step().await {
            Ok(Wait::Until(d, w)) => (d, w),
            Err(e) => {
                tracing::warn!(worker = name, error = %e, "worker step failed; retrying");
                (services.outbox.poll.max(Duration::from_millis(500)), Wake::Timer)
            }
        };
        if pause.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        let woken = async {
            match wake {
                Wake::Timer => std::future::pending::<()>().await,
                Wake::Outbox => services.bus.wait_outbox().await,
                Wake::Deliveries => services.bus.wait_deliveries().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = woken => {}
            _ = stop.cancelled() => {}
        }
    }
}
