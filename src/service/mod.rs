//! Use-cases: each takes the caller and domain inputs, runs in one transaction, and
//! returns domain records. No transport types here, and no SQL (that is `store/`).
//! `RecordResponse` calls that overlap share their transaction, and key lookups their
//! query ([`batch`]: group commit).

pub mod admin;
pub mod audit;
pub mod batch;
pub mod engagement;
pub mod engagement_read;
pub mod events;
pub mod follow_ups;
pub mod imports;
pub mod in_app;
pub mod insight;
pub mod invitations;
pub mod keys;
pub mod metrics;
pub mod partitions;
pub mod privacy;
pub mod responses;
pub mod retention;
pub mod secrets;
pub mod surveys;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::domain::{Bucket, SurveyKind, TenantId};

use crate::domain::model::{KeyKind, Principal};
use crate::domain::time::Timestamp;
use crate::error::{AppError, Result};
use crate::store::Db;

/// The service's clock. Tests move it forward to reach expiries and cooldowns
/// without sleeping; production never touches the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// Now, at the microsecond precision the database keeps.
    pub fn now(&self) -> Timestamp {
        let t = chrono::Utc::now() + chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed));
        crate::domain::time::from_micros(crate::domain::time::to_micros(t))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_micros.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::Relaxed);
    }
}

/// Everything a use-case needs.
#[derive(Clone, Debug)]
pub struct Services {
    pub db: Db,
    pub clock: Clock,
    /// Wakes the workers and the event streams.
    pub bus: EventBus,
    /// Webhook and event settings.
    pub outbox: Arc<OutboxSettings>,
    /// What the use-cases count after their transaction commits (the server passes its
    /// Prometheus registry; by default nothing is counted).
    pub metrics: Arc<dyn Counters>,
    /// `RecordResponse` calls waiting to be written together (group commit).
    pub records: Arc<batch::BatchQueue<responses::PendingRecord>>,
    /// Calls waiting for their API key to be looked up (shared lookups).
    pub key_lookups: Arc<batch::BatchQueue<keys::KeyLookup>>,
    /// `GetSurvey` calls waiting for their survey to be read (shared reads).
    pub survey_reads: Arc<batch::BatchQueue<surveys::SurveyRead>>,
    /// Every task the services spawn (batch writers, score refreshes, event streams,
    /// workers): shutdown waits for them, within the grace period.
    pub tasks: tokio_util::task::TaskTracker,
    /// Cancelled when the server shuts down: event streams end (UNAVAILABLE), workers
    /// stop after the step they are in.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The keys that authenticated lately: they answer calls for a short while without a
    /// lookup, and secret keys among them skip the per-address limit of token calls.
    pub key_cache: Arc<keys::KeyCache>,
    /// The keys secrets are sealed with at rest (docs/privacy.md). Empty by default:
    /// nothing can be sealed until [`Services::with_keyring`] gives keys.
    pub keyring: Arc<crate::domain::sealing::Keyring>,
}

/// Webhook, event and SLA settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxSettings {
    pub retry: crate::domain::webhooks::RetrySchedule,
    pub timeout: Duration,
    pub settle: chrono::Duration,
    pub disable_after: chrono::Duration,
    pub allow_private: bool,
    pub allow_http_hosts: Vec<String>,
    pub concurrency: usize,
    pub retention: chrono::Duration,
    pub poll: Duration,
    pub sla_check: Duration,
    /// How often the retention worker passes over every tenant (docs/privacy.md).
    pub retention_check: Duration,
    /// How often old days' counter rows are folded (docs/engagement.md).
    pub fold_every: Duration,
}

impl Default for OutboxSettings {
    /// The documented defaults of the server's options (docs/operations.md).
    fn default() -> Self {
        OutboxSettings {
            retry: crate::domain::webhooks::RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            settle: chrono::Duration::seconds(60),
            disable_after: chrono::Duration::days(5),
            allow_private: false,
            allow_http_hosts: Vec::new(),
            concurrency: 16,
            retention: chrono::Duration::days(30),
            poll: Duration::from_millis(1000),
            sla_check: Duration::from_millis(30000),
            retention_check: Duration::from_secs(3600),
            fold_every: Duration::from_secs(60),
        }
    }
}

/// What the use-cases count, each call right after its transaction committed. The
/// server's Prometheus registry implements it (`telemetry::metrics`); the use-cases
/// know only this handle.
pub trait Counters: Send + Sync + std::fmt::Debug {
    /// A transaction wrote `n` RecordResponse calls' answers.
    fn response_batch_written(&self, n: usize);
    /// An answer was recorded, and whether it opened a follow-up.
    fn response_recorded(&self, kind: SurveyKind, bucket: Bucket, opened_follow_up: bool);
    /// A follow-up was opened.
    fn follow_up_opened(&self, kind: SurveyKind);
    /// A webhook delivery attempt ended with `outcome` (`delivered`, `retry`, `dead_lettered`).
    fn webhook_delivery(&self, outcome: &'static str);
    /// The retention worker removed `n` rows of `kind` (`activity_events`, `comments`,
    /// `invitations`, `delivery_logs`; docs/privacy.md).
    fn retention_removed(&self, _kind: &'static str, _n: u64) {}
    /// The fold moved `n` counter rows of old days into their keys' one row
    /// (docs/engagement.md).
    fn rollup_rows_folded(&self, _n: u64) {}
    /// A rate-limit check found the shared buckets (Redis) unreachable or too slow and
    /// fell back to the replica's own ([`in_app::RateLimits`]).
    fn rate_limit_backend_error(&self) {}
}

/// Counts nothing (tools and tests that do not serve `/metrics`).
#[derive(Debug)]
pub struct NoCounters;

impl Counters for NoCounters {
    fn response_batch_written(&self, _: usize) {}
    fn response_recorded(&self, _: SurveyKind, _: Bucket, _: bool) {}
    fn follow_up_opened(&self, _: SurveyKind) {}
    fn webhook_delivery(&self, _: &'static str) {}
}

/// In-process signals between use-cases, workers and streams. They make this replica
/// react at once to what it did itself and, on PostgreSQL, to what other replicas
/// told it through the database (LISTEN/NOTIFY, [`Services::relay_notices`]); the
/// workers' and streams' polling covers a notice that was lost.
#[derive(Clone, Debug)]
pub struct EventBus {
    outbox: Arc<tokio::sync::Notify>,
    committed: Arc<tokio::sync::watch::Sender<u64>>,
    /// Events committed, as PostgreSQL told: the tenant and its last number.
    told: tokio::sync::broadcast::Sender<(Arc<str>, i64)>,
    deliveries: Arc<tokio::sync::Notify>,
}

/// Notices a slow stream may fall behind by before it just reads (it then misses no
/// event, only the filtering of notices it would not have needed).
const TOLD_CAPACITY: usize = 1024;

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            outbox: Arc::default(),
            committed: Arc::new(tokio::sync::watch::channel(0).0),
            told: tokio::sync::broadcast::channel(TOLD_CAPACITY).0,
            deliveries: Arc::default(),
        }
    }
}

impl EventBus {
    /// A use-case committed events: streams should look, the fan-out should run.
    pub fn outbox_written(&self) {
        self.committed.send_modify(|n| *n += 1);
        self.outbox.notify_one();
    }
    pub async fn wait_outbox(&self) {
        self.outbox.notified().await
    }
    /// What an event stream waits on, taken before its first read so that nothing
    /// committed in between goes unnoticed.
    pub fn subscribe(&self) -> EventWaiter {
        EventWaiter { committed: self.committed.subscribe(), told: self.told.subscribe() }
    }
    /// PostgreSQL told that `tenant`'s events up to `last` committed (on any replica,
    /// this one included): its streams that have not read that far look.
    pub fn events_told(&self, tenant: &str, last: i64) {
        // No stream listening is no error.
        let _ = self.told.send((Arc::from(tenant), last));
    }
    /// Notices may have been missed (the listening session was away): every stream
    /// looks, and the dispatcher.
    pub fn wake_all(&self) {
        self.committed.send_modify(|n| *n += 1);
        self.deliveries.notify_one();
    }
    /// Deliveries were queued (a replay or a test event).
    pub fn deliveries_queued(&self) {
        self.deliveries.notify_one();
    }
    pub async fn wait_deliveries(&self) {
        self.deliveries.notified().await
    }
}

/// An event stream's wake-ups ([`EventBus::subscribe`]).
#[derive(Debug)]
pub struct EventWaiter {
    committed: tokio::sync::watch::Receiver<u64>,
    told: tokio::sync::broadcast::Receiver<(Arc<str>, i64)>,
}

impl EventWaiter {
    /// Returns when `tenant`'s events past `cursor` may have committed: this replica
    /// committed events, PostgreSQL told of `tenant`'s events past `cursor` (notices of
    /// other tenants, or of events already read, are passed over without a read), or
    /// `poll` passed.
    pub async fn wait(&mut self, tenant: &TenantId, cursor: i64, poll: Duration) {
        let timer = tokio::time::sleep(poll);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                _ = &mut timer => return,
                _ = self.committed.changed() => return,
                told = self.told.recv() => match told {
                    Ok((t, last)) if &*t == tenant.as_str() && last > cursor => return,
                    Ok(_) => {}
                    // Fell behind: some notices were dropped, one may have been ours.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        timer.as_mut().await;
                        return;
                    }
                },
            }
        }
    }
}

impl Services {
    /// Services over a database with default settings.
    pub fn new(db: Db, clock: Clock) -> Self {
        Services {
            records: Arc::new(responses::record_queue(responses::DEFAULT_RECORD_QUEUE_LIMIT)),
            key_lookups: Arc::new(keys::lookup_queue()),
            survey_reads: Arc::new(surveys::read_queue()),
            key_cache: Arc::default(),
            keyring: Arc::default(),
            db,
            clock,
            bus: EventBus::default(),
            outbox: Arc::new(OutboxSettings::default()),
            metrics: Arc::new(NoCounters),
            tasks: tokio_util::task::TaskTracker::new(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The same services with at most `limit` `RecordResponse` calls waiting for their
    /// batch (more are refused with RESOURCE_EXHAUSTED).
    pub fn with_record_queue_limit(mut self, limit: usize) -> Self {
        self.records = Arc::new(responses::record_queue(limit));
        self
    }

    /// The same services counting into `counters`.
    pub fn with_counters(mut self, counters: Arc<dyn Counters>) -> Self {
        self.metrics = counters;
        self
    }

    /// The same services sealing secrets with `keyring`.
    pub fn with_keyring(mut self, keyring: crate::domain::sealing::Keyring) -> Self {
        self.keyring = Arc::new(keyring);
        self
    }

    /// The same services answering a key from memory for `ttl` after its lookup (zero,
    /// the default: every call looks its key up).
    pub fn with_key_cache(mut self, ttl: Duration) -> Self {
        self.key_cache = Arc::new(keys::KeyCache::new(ttl));
        self
    }

    /// The same services with these webhook and event settings.
    pub fn with_outbox(mut self, settings: OutboxSettings) -> Self {
        self.outbox = Arc::new(settings);
        self
    }
}

/// A bounded queue of this process is full ([`batch`]): `RESOURCE_EXHAUSTED`, with
/// RetryInfo asking for a retry in a second.
impl Services {
    /// Puts `job` in `queue` ([`batch::BatchQueue`]) and, when the queue asks for a
    /// writer, starts a task that drains it with `handle`, one batch at a time. A full
    /// queue refuses at once with RESOURCE_EXHAUSTED, naming `what` waits there.
    pub(crate) fn enqueue<J, F, Fut>(
        &self,
        queue: &Arc<batch::BatchQueue<J>>,
        job: J,
        what: &str,
        handle: F,
    ) -> std::result::Result<(), AppError>
    where
        J: Send + 'static,
        F: Fn(Services, Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        match queue.push(job) {
            Ok(true) => {
                let (svc, queue) = (self.clone(), queue.clone());
                self.tasks.spawn(async move { queue.drain(|batch| handle(svc.clone(), batch)).await });
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(_) => Err(busy(what)),
        }
    }
}

pub(crate) fn busy(what: &str) -> AppError {
    AppError::ResourceExhausted {
        message: format!("too many {what} in this server; retry in a moment"),
        retry_after: std::time::Duration::from_secs(1),
    }
}

/// Publishable keys only: the in-app use-cases (`in_app.rs`) check what such a key may do.
pub fn require_publishable(p: &Principal) -> Result<()> {
    match p.kind {
        KeyKind::Publishable => Ok(()),
        KeyKind::Secret | KeyKind::Read => Err(AppError::PermissionDenied("this call is for publishable keys".into())),
    }
}

impl Services {
    /// Whether the database answers (for the HTTP gateway's `/healthz`).
    pub async fn database_ready(&self) -> bool {
        self.db.ping().await
    }
}

/// Secret keys only: publishable keys may only answer in-app surveys, read keys only read.
pub fn require_secret(p: &Principal) -> Result<()> {
    match p.kind {
        KeyKind::Secret => Ok(()),
        KeyKind::Publishable => Err(AppError::PermissionDenied(
            "this call needs a secret key; publishable keys may only answer surveys".into(),
        )),
        KeyKind::Read => Err(read_only()),
    }
}

/// The reads (the Get and List use-cases): a secret key or a read-only key.
pub fn require_reader(p: &Principal) -> Result<()> {
    match p.kind {
        KeyKind::Secret | KeyKind::Read => Ok(()),
        KeyKind::Publishable => Err(AppError::PermissionDenied(
            "this call needs a secret or read key; publishable keys may only answer surveys".into(),
        )),
    }
}

/// What a read-only key hears on a write.
pub fn read_only() -> AppError {
    AppError::PermissionDenied(
        "this call changes data; read keys (rk_read_…) may only call Get and List methods".into(),
    )
}

/// An NPS survey with no follow-up rule, named `name`, for unit tests of use-cases.
#[cfg(test)]
pub(crate) fn nps_draft(name: &str) -> crate::domain::model::SurveyDraft {
    crate::domain::model::SurveyDraft {
        scale: crate::domain::Scale::parse(crate::domain::SurveyKind::Nps, None).expect("NPS"),
        name: name.into(),
        question: "How likely are you to recommend us?".into(),
        low_label: String::new(),
        high_label: String::new(),
        policy: Default::default(),
        follow_up: Default::default(),
        in_app: false,
        branding: Default::default(),
    }
}

/// Services over a fresh in-memory SQLite database, for unit tests of use-cases.
#[cfg(test)]
pub(crate) async fn in_memory() -> Services {
    let settings = crate::store::DbSettings { max_connections: 1, ..crate::store::DbSettings::new("sqlite::memory:") };
    let db = Db::connect(&settings).await.expect("in-memory SQLite");
    db.migrate().await.expect("migrated");
    Services::new(db, Clock::default()).with_keyring(crate::domain::sealing::Keyring::ephemeral())
}
