//! `rapport-bench engagement` (docs/benchmarks.md, "Engagement"): ingestion throughput
//! and read latencies, each against a reference taken in the same run:
//!
//! 1. `RecordEvents` throughput (events/s) with batches of 100 and 1 000, roll-ups
//!    included, against 100-row multi-value INSERTs of the same raw rows into
//!    `activity_events` of a scratch schema made by the project's migrations, through
//!    a pool configured like the server's, at the same concurrency. Targets on
//!    PostgreSQL: ≥ 0.5× the baseline with batches of 100, ≥ 0.8× with 1 000.
//! 2. `GetEngagementProfile` latency for a customer with 10 k and one with 1 M events
//!    over the same 180 days. Target: the 1 M case ≤ 1.2× the 10 k case.
//! 3. `GetEngagementMetrics`, `ListTopCustomers`, `TopPropertyValues` (and a profile)
//!    in a tenant with 100 k customers, against the same calls in a tenant of 1 k.
//!    Target: `GetEngagementMetrics` and `TopPropertyValues` ≤ 1.5× the 1 k case.
//!
//! History is seeded through `ImportEvents` (the live API only takes events up to 30
//! days old), so it is stored and rolled up exactly as the service does it. Point it
//! at a database of its own:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/rapport_bench_engagement rapport-bench engagement
//! ```

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng;
use sea_orm::sea_query::Query;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait as _, Value};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use rapport::grpc::pb;
use rapport::grpc::pb::engagement_service_client::EngagementServiceClient;
use rapport::grpc::pb::import_service_client::ImportServiceClient;

use crate::harness::database::backend_name;
use crate::harness::load::{Latency, Operation, Sample, drive, sequential};
use crate::harness::report::{redacted_command_line, verdict};
use crate::harness::server::{BearerAuth, connect, describe_status};
use crate::harness::{CommonArgs, Session, run_session};

/// The scratch schema (a file beside the database on SQLite) the baseline inserts into.
const SCRATCH: &str = "bench_engagement_baseline";
/// RecordEvents against the baseline, per batch size: at least this.
const THROUGHPUT_TARGETS: [(usize, f64); 2] = [(100, 0.5), (1_000, 0.8)];
const PROFILE_TARGET: f64 = 1.2;
/// `GetEngagementMetrics` and `TopPropertyValues` with 100 k customers against 1 k: at
/// most this.
const SCALE_TARGET: f64 = 1.5;
/// Days the seeded history spans.
const HISTORY_DAYS: i64 = 180;
/// Events per `ImportEvents` call (the server's limit).
const IMPORT_BATCH: usize = 1_000;
/// Unmeasured load on each side before the throughput runs (see [`bench`]).
const WARM_UP: Duration = Duration::from_secs(2);
/// Rows per baseline INSERT.
const BASELINE_ROWS: usize = 100;
/// Events of the small profile and customers of the small tenant (or fewer, when the
/// large ones are smaller still).
const SMALL_HISTORY: u64 = 10_000;
const SMALL_TENANT: u64 = 1_000;

/// `rapport-bench engagement`: ingestion throughput and read latencies.
#[derive(Debug, Clone, clap::Args)]
pub struct EngagementArgs {
    /// Seconds measured per throughput run (after one second of warm-up).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Batches in flight at once, for RecordEvents, the baseline INSERTs and seeding.
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Events of history of the large profile (the small one has 10 000, or as many
    /// as the large one when that is fewer).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_HISTORY_EVENTS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_events: u64,
    /// Customers of the large tenant (the small one has 1 000, or as many as the large
    /// one when that is fewer).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_CUSTOMERS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub customers: u64,
    /// Timed calls per latency figure (after three warm-up calls).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_SAMPLES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: u64,
}

type Client = EngagementServiceClient<InterceptedService<Channel, BearerAuth>>;
type Importer = ImportServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Runs every measurement and prints the report.
pub async fn run(common: &CommonArgs, args: EngagementArgs) -> anyhow::Result<()> {
    let report = run_session(common, SCRATCH, None, async |s| bench(s, &args).await).await?;
    println!("{report}");
    Ok(())
}

async fn bench(session: &Session, args: &EngagementArgs) -> anyhow::Result<String> {
    let uri = session.server.uri();
    let concurrency = args.concurrency as usize;
    let measure = Duration::from_secs(args.seconds);
    let tag = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
    let mut out = String::new();
    writeln!(
        out,
        "rapport-bench engagement on {}, concurrency {}, {} s per throughput run, {} samples per latency\n\
         command: {}\n",
        backend_name(session.scratch.backend()),
        args.concurrency,
        args.seconds,
        args.samples,
        redacted_command_line()
    )?;

    // 1. Ingestion throughput.
    let ingest = session.create_tenant(&format!("bench-ingest-{tag}")).await?;
    let client = engagement_client(uri, &ingest.secret).await?;
    configure(&client).await?;
    // A database made for the run starts empty, and the statements of the first
    // seconds are planned for empty tables: a seek becomes a scan that every later
    // call repeats until autovacuum's next ANALYZE (a minute or more away) makes the
    // server plan again. A running service has tables its autovacuum has analysed.
    // So both sides first load some rows unmeasured, then the database is analysed.
    eprintln!("warming up: RecordEvents and the baseline's INSERTs, then ANALYZE…");
    let warm = IngestOp { client: client.clone(), run: Arc::from(format!("warm-{tag}").as_str()), size: 100 };
    drive(&warm, concurrency, Duration::ZERO, WARM_UP).await?;
    let raw = |run: &str| RawInsertOp {
        conn: session.scratch.conn().clone(),
        tenant: Arc::from(ingest.id.as_str()),
        run: Arc::from(run),
        dedup: false,
    };
    drive(&raw("warm"), concurrency, Duration::ZERO, WARM_UP).await?;
    session.db.analyze().await?;
    eprintln!("baseline: {BASELINE_ROWS}-row INSERTs for {} s…", args.seconds);
    let base = drive(&raw("measured"), concurrency, Duration::from_secs(1), measure).await?;
    out.push_str("RecordEvents throughput (roll-ups included) against 100-row INSERTs of raw rows\n");
    writeln!(out, "  baseline, 100-row multi-value INSERTs      {:>10.0} rows/s{}", base.rate(), errors(&base))?;
    // What no ingestion keeping deduplication can beat: the same rows, each with its
    // dedup record, the two INSERTs in one transaction — and no roll-up at all.
    eprintln!("floor with dedup: the same INSERTs and their dedup records for {} s…", args.seconds);
    let floor =
        drive(&RawInsertOp { dedup: true, ..raw("dedup") }, concurrency, Duration::from_secs(1), measure).await?;
    writeln!(
        out,
        "  the same with each row's dedup record         {:>10.0} rows/s  {:.2}× baseline: the most RecordEvents can reach{}",
        floor.rate(),
        floor.rate() / base.rate().max(f64::EPSILON),
        errors(&floor)
    )?;
    for (size, target) in THROUGHPUT_TARGETS {
        eprintln!("RecordEvents, batches of {size}, for {} s…", args.seconds);
        let run = format!("r{size}-{}", chrono::Utc::now().timestamp_micros());
        let op = IngestOp { client: client.clone(), run: Arc::from(run.as_str()), size };
        let rate = drive(&op, concurrency, Duration::from_secs(1), measure).await?;
        let ratio = rate.rate() / base.rate().max(f64::EPSILON);
        writeln!(
            out,
            "  RecordEvents, batches of {size:<5}            {:>10.0} events/s  {ratio:.2}× baseline (target ≥ {target}×: {}), {:.2}× the floor{}",
            rate.rate(),
            verdict(ratio >= target),
            rate.rate() / floor.rate().max(f64::EPSILON),
            errors(&rate)
        )?;
    }

    // 2. Profile latency: 10 k against 1 M events over the same days.
    let small_history = SMALL_HISTORY.min(args.history_events);
    let history = session.create_tenant(&format!("bench-history-{tag}")).await?;
    let hc = engagement_client(uri, &history.secret).await?;
    configure(&hc).await?;
    let importer = import_client(uri, &history.secret).await?;
    let now = chrono::Utc::now();
    eprintln!("seeding {small_history} + {} events of history…", args.history_events);
    seed_one(&importer, "h-small", small_history as usize, now, concurrency).await?;
    seed_one(&importer, "h-large", args.history_events as usize, now, concurrency).await?;
    session.db.analyze().await?;
    let small = sequential(args.samples, || profile(&hc, "h-small")).await?;
    let large = sequential(args.samples, || profile(&hc, "h-large")).await?;
    let ratio = large.median / small.median;
    writeln!(out, "\nGetEngagementProfile, one customer, {HISTORY_DAYS} days of history")?;
    writeln!(out, "  {small_history:<9} events                          {small}")?;
    writeln!(
        out,
        "  {:<9} events                          {large}  {ratio:.2}× the small case (target ≤ {PROFILE_TARGET}×: {})",
        args.history_events,
        verdict(ratio <= PROFILE_TARGET)
    )?;

    // 3. Metrics and rankings: 100 k against 1 k customers.
    let little_size = SMALL_TENANT.min(args.customers);
    let big = session.create_tenant(&format!("bench-big-{tag}")).await?;
    let little = session.create_tenant(&format!("bench-little-{tag}")).await?;
    let (bc, lc) = (engagement_client(uri, &big.secret).await?, engagement_client(uri, &little.secret).await?);
    configure(&bc).await?;
    configure(&lc).await?;
    eprintln!("seeding {} customers (and {little_size})…", args.customers);
    seed_many(&import_client(uri, &big.secret).await?, args.customers as usize, now, concurrency).await?;
    seed_many(&import_client(uri, &little.secret).await?, little_size as usize, now, concurrency).await?;
    // A running server folds the counters of past days in the background (every
    // minute by default): read them as they are once it has.
    let before = chrono::Utc::now().timestamp().div_euclid(86_400) - 2;
    let waited = session.db.wait_folded(&[&big.id, &little.id], before, Duration::from_secs(300)).await?;
    eprintln!("the seeded days were folded after {} ms", waited.as_millis());
    // Bulk seeding leaves dead row versions and no statistics; a running server's
    // autovacuum would have dealt with both before anyone reads.
    session.db.analyze().await?;
    writeln!(
        out,
        "\n{} customers (ratio: the same call with {little_size} customers of the same shape)",
        args.customers
    )?;
    // (name, call, whether the ratio has a target)
    let calls: [(&str, Call, bool); 6] = [
        ("GetEngagementMetrics, 30 days", Call::Metrics, true),
        ("ListTopCustomers by score, top 10", Call::TopScore, false),
        ("ListTopCustomers post_created, section", Call::TopSection, false),
        ("ListTopCustomers no call_made (zeros)", Call::NoCalls, false),
        ("TopPropertyValues kb content_id", Call::Values, true),
        ("GetEngagementProfile (percentile)", Call::Profile, false),
    ];
    for (name, call, targeted) in calls {
        let l = sequential(args.samples, || call.run(&lc)).await?;
        let b = sequential(args.samples, || call.run(&bc)).await?;
        let ratio = b.median / l.median;
        let target = if targeted {
            format!(" (target ≤ {SCALE_TARGET}×: {})", verdict(ratio <= SCALE_TARGET))
        } else {
            String::new()
        };
        writeln!(out, "  {name:<41} {b}  {ratio:.2}× small{target} ({l})")?;
    }
    let floor: Latency = sequential(args.samples, || async {
        hc.clone().get_scoring_config(pb::GetScoringConfigRequest {}).await.map(|_| ())
    })
    .await?;
    writeln!(out, "\nfloor: GetScoringConfig round trip           {floor}")?;
    Ok(out)
}

/// Nothing when the load had no errors; otherwise how many and the first.
fn errors(s: &Sample) -> String {
    match s.all_errors() {
        0 => String::new(),
        n => format!("  ERRORS: {n} failed calls, first: {}", s.first_error.as_deref().unwrap_or("-")),
    }
}

async fn engagement_client(uri: &str, key: &str) -> anyhow::Result<Client> {
    Ok(EngagementServiceClient::with_interceptor(connect(uri).await?, BearerAuth::new(key)?)
        .max_decoding_message_size(64 << 20))
}

async fn import_client(uri: &str, key: &str) -> anyhow::Result<Importer> {
    Ok(ImportServiceClient::with_interceptor(connect(uri).await?, BearerAuth::new(key)?))
}

/// Action weights, so that scores and rankings have something to weigh.
async fn configure(c: &Client) -> anyhow::Result<()> {
    let weights = [("post_created", 3.0), ("comment_added", 1.0), ("kb_article_viewed", 0.5), ("call_made", 2.0)];
    c.clone()
        .update_scoring_config(pb::UpdateScoringConfigRequest {
            config: Some(pb::ScoringConfig {
                action_weights: weights.into_iter().map(|(a, w)| (a.to_owned(), w)).collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["action_weights".into()] }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("UpdateScoringConfig failed: {}", describe_status(&s)))?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Synthetic events.
// ---------------------------------------------------------------------------------

/// What an event says, in the few shapes the load uses.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Action { name: &'static str, key: &'static str, value: String },
    Session { seconds: i64 },
    Purchase { amount_minor: i64 },
}

impl Kind {
    /// The stored `kind` column.
    fn as_str(&self) -> &'static str {
        match self {
            Kind::Action { .. } => "action",
            Kind::Session { .. } => "session",
            Kind::Purchase { .. } => "purchase",
        }
    }
}

/// One synthetic event: mostly actions with one property, some sessions, a few purchases.
fn synthetic(rng: &mut impl Rng) -> Kind {
    let roll: u32 = rng.random_range(0..100);
    if roll < 70 {
        let (name, key, value) = match roll % 4 {
            0 => ("post_created", "section", format!("s{}", rng.random_range(0..20))),
            1 => ("comment_added", "section", format!("s{}", rng.random_range(0..20))),
            2 => ("kb_article_viewed", "content_id", format!("a{}", rng.random_range(0..200))),
            _ => ("call_made", "call_type", if rng.random_bool(0.3) { "international" } else { "national" }.into()),
        };
        Kind::Action { name, key, value }
    } else if roll < 95 {
        Kind::Session { seconds: rng.random_range(10..1_800) }
    } else {
        Kind::Purchase { amount_minor: rng.random_range(100..50_000) }
    }
}

/// The event as the API takes it.
fn pb_event(id: String, customer: String, at_micros: i64, kind: Kind) -> pb::ActivityEvent {
    use pb::activity_event::Kind as K;
    let kind = match kind {
        Kind::Action { name, key, value } => {
            K::Action(pb::ActionEvent { name: name.into(), properties: [(key.to_owned(), value)].into() })
        }
        Kind::Session { seconds } => K::Session(pb::SessionEvent { activity_seconds: seconds }),
        Kind::Purchase { amount_minor } => K::Purchase(pb::PurchaseEvent { amount_minor, currency: "USD".into() }),
    };
    pb::ActivityEvent {
        message_id: id,
        customer_id: customer,
        time: Some(prost_types::Timestamp {
            seconds: at_micros.div_euclid(1_000_000),
            nanos: (at_micros.rem_euclid(1_000_000) * 1_000) as i32,
        }),
        kind: Some(kind),
    }
}

/// A batch as a back end flushes it: about ten events per customer, mostly from the
/// last hours, one in ten from the last three weeks (late).
fn batch(rng: &mut impl Rng, prefix: &str, seq: u64, size: usize) -> Vec<pb::ActivityEvent> {
    let now = chrono::Utc::now().timestamp_micros();
    let first = rng.random_range(0..20_000u64);
    (0..size)
        .map(|i| {
            let customer = first + (i as u64) / 10;
            let age = if rng.random_bool(0.1) {
                rng.random_range(1..21) * 86_400_000_000
            } else {
                rng.random_range(0..360) * 60_000_000
            };
            pb_event(format!("{prefix}-{seq}-{i}"), format!("c{customer}"), now - age, synthetic(rng))
        })
        .collect()
}

/// One `RecordEvents` call of `size` fresh events.
#[derive(Clone)]
struct IngestOp {
    client: Client,
    run: Arc<str>,
    size: usize,
}

impl Operation for IngestOp {
    async fn call(&self, worker: usize, seq: u64) -> anyhow::Result<u64> {
        let events = batch(&mut rand::rng(), &format!("{}-{worker}", self.run), seq, self.size);
        let r = self
            .client
            .clone()
            .record_events(pb::RecordEventsRequest { events })
            .await
            .map_err(|s| anyhow::anyhow!(describe_status(&s)))?
            .into_inner();
        anyhow::ensure!(r.rejected == 0, "the server rejected generated events: {:?}", r.results.first());
        Ok(r.accepted as u64)
    }
}

/// The columns of `activity_events`, in the order of [`raw_values`].
const RAW_COLS: [&str; 12] = [
    "tenant_id",
    "message_id",
    "customer_id",
    "kind",
    "name",
    "occurred_at",
    "properties",
    "seconds",
    "amount_minor",
    "currency",
    "payload_hash",
    "received_at",
];

/// The baseline: the same raw rows, [`BASELINE_ROWS`] per multi-value INSERT into the
/// scratch schema's `activity_events`; no roll-ups, no gRPC.
#[derive(Clone)]
struct RawInsertOp {
    conn: DatabaseConnection,
    tenant: Arc<str>,
    /// Tells this load's message ids from another's (the warm-up's).
    run: Arc<str>,
    /// Whether each row's dedup record goes with it (into `activity_event_ids`, in the
    /// same transaction), as ingestion must write it.
    dedup: bool,
}

impl Operation for RawInsertOp {
    async fn call(&self, worker: usize, seq: u64) -> anyhow::Result<u64> {
        let (insert, ids) = {
            let mut rng = rand::rng();
            let now = chrono::Utc::now().timestamp_micros();
            let mut insert = Query::insert();
            insert.into_table("activity_events").columns(RAW_COLS);
            let mut ids = Query::insert();
            ids.into_table("activity_event_ids").columns(["tenant_id", "message_id", "customer_id", "payload_hash"]);
            for i in 0..BASELINE_ROWS {
                let customer = format!("c{}", rng.random_range(0..20_000));
                let kind = synthetic(&mut rng);
                let row = raw_values(&self.tenant, format!("b-{}-{worker}-{seq}-{i}", self.run), customer, now, &kind);
                // tenant, message id, customer, payload hash
                ids.values([0, 1, 2, 10].map(|c| row[c].clone()))?;
                insert.values(row)?;
            }
            ids.on_conflict(
                sea_orm::sea_query::OnConflict::columns(["tenant_id", "message_id"]).do_nothing().to_owned(),
            );
            (insert, ids)
        };
        if self.dedup {
            let txn = self.conn.begin().await?;
            txn.execute(&ids).await?;
            txn.execute(&insert).await?;
            txn.commit().await?;
        } else {
            self.conn.execute(&insert).await?;
        }
        Ok(BASELINE_ROWS as u64)
    }
}

fn raw_values(tenant: &str, id: String, customer: String, at: i64, kind: &Kind) -> Vec<sea_orm::sea_query::SimpleExpr> {
    let (name, props, seconds, amount, currency) = match kind {
        Kind::Action { name, key, value } => {
            (Some(name.to_string()), serde_json::json!({ *key: value }).to_string(), None, None, None)
        }
        Kind::Session { seconds } => (None, "{}".into(), Some(*seconds), None, None),
        Kind::Purchase { amount_minor } => (None, "{}".into(), None, Some(*amount_minor), Some("USD".to_owned())),
    };
    let digest = Sha256::digest(id.as_bytes());
    let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let values: [Value; 12] = [
        tenant.into(),
        id.into(),
        customer.into(),
        kind.as_str().into(),
        name.into(),
        at.into(),
        props.into(),
        seconds.into(),
        amount.into(),
        currency.into(),
        hash.into(),
        at.into(),
    ];
    values.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------------------------
// Seeding history through ImportEvents.
// ---------------------------------------------------------------------------------

/// Imports `n` events, event `i` being `event(i)`, in batches of [`IMPORT_BATCH`] with
/// at most `parallel` batches in flight. Every event must be accepted.
async fn import<F>(client: &Importer, n: usize, parallel: usize, event: F) -> anyhow::Result<()>
where
    F: Fn(usize, &mut rand::rngs::ThreadRng) -> pb::ActivityEvent + Send + Sync + 'static,
{
    let event = Arc::new(event);
    let mut tasks = JoinSet::new();
    let mut start = 0;
    while start < n || !tasks.is_empty() {
        if start < n && tasks.len() < parallel.max(1) {
            let (client, event) = (client.clone(), event.clone());
            let range = start..(start + IMPORT_BATCH).min(n);
            start = range.end;
            tasks.spawn(async move {
                let events: Vec<_> = {
                    let mut rng = rand::rng();
                    range.map(|i| event(i, &mut rng)).collect()
                };
                let sent = events.len();
                let r = client
                    .clone()
                    .import_events(pb::ImportEventsRequest { events })
                    .await
                    .map_err(|s| anyhow::anyhow!("ImportEvents failed: {}", describe_status(&s)))?
                    .into_inner();
                anyhow::ensure!(
                    r.accepted as usize == sent,
                    "ImportEvents accepted {} of {sent} events ({} duplicates, {} rejected; first: {:?})",
                    r.accepted,
                    r.duplicates,
                    r.rejected,
                    r.results.iter().find(|x| !x.reason.is_empty())
                );
                Ok(())
            });
            continue;
        }
        if let Some(joined) = tasks.join_next().await {
            joined.context("an import task panicked")??;
        }
    }
    Ok(())
}

/// One customer with `n` events spread evenly over the last 180 days.
async fn seed_one(
    client: &Importer,
    customer: &'static str,
    n: usize,
    now: chrono::DateTime<chrono::Utc>,
    parallel: usize,
) -> anyhow::Result<()> {
    let span = HISTORY_DAYS * 86_400_000_000;
    let start = now.timestamp_micros() - span;
    let step = span / n.max(1) as i64;
    import(client, n, parallel, move |i, rng| {
        pb_event(format!("{customer}-{i}"), customer.to_owned(), start + i as i64 * step, synthetic(rng))
    })
    .await
}

/// `n` customers with about five events each over the last 60 days, in time order.
async fn seed_many(
    client: &Importer,
    n: usize,
    now: chrono::DateTime<chrono::Utc>,
    parallel: usize,
) -> anyhow::Result<()> {
    let now = now.timestamp_micros();
    let mut rng = rand::rng();
    let mut events: Vec<(u32, i64)> =
        (0..n * 5).map(|i| ((i % n) as u32, now - rng.random_range(0..60 * 86_400_000_000i64))).collect();
    events.sort_by_key(|e| e.1);
    let events = Arc::new(events);
    import(client, events.len(), parallel, move |i, rng| {
        let (customer, at) = events[i];
        pb_event(format!("m-{i}"), format!("c{customer}"), at, synthetic(rng))
    })
    .await
}

// ---------------------------------------------------------------------------------
// Latency.
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Call {
    Metrics,
    TopScore,
    TopSection,
    NoCalls,
    Values,
    Profile,
}

impl Call {
    async fn run(self, c: &Client) -> Result<(), Status> {
        use pb::list_top_customers_request::Ranking;
        let mut c = c.clone();
        let top = |ranking: Ranking, key: &str, value: &str, zero: bool| pb::ListTopCustomersRequest {
            ranking: Some(ranking),
            property_key: key.into(),
            property_value: value.into(),
            include_zero: zero,
            order: if zero { pb::RankOrder::Ascending as i32 } else { 0 },
            page_size: 10,
            ..Default::default()
        };
        match self {
            Call::Metrics => {
                c.get_engagement_metrics(pb::GetEngagementMetricsRequest { window_days: 30, ..Default::default() })
                    .await?;
            }
            Call::TopScore => {
                c.list_top_customers(top(Ranking::EngagementScore(true), "", "", false)).await?;
            }
            Call::TopSection => {
                c.list_top_customers(top(Ranking::Action("post_created".into()), "section", "s3", false)).await?;
            }
            Call::NoCalls => {
                c.list_top_customers(top(Ranking::Action("call_made".into()), "", "", true)).await?;
            }
            Call::Values => {
                c.top_property_values(pb::TopPropertyValuesRequest {
                    action: "kb_article_viewed".into(),
                    property: "content_id".into(),
                    ..Default::default()
                })
                .await?;
            }
            Call::Profile => {
                c.get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: "c7".into(), as_of: None })
                    .await?;
            }
        }
        Ok(())
    }
}

async fn profile(c: &Client, customer: &str) -> Result<(), Status> {
    c.clone()
        .get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: customer.into(), as_of: None })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_row_fills_every_column_of_activity_events() {
        let kind = Kind::Action { name: "post_created", key: "section", value: "s1".into() };
        assert_eq!(raw_values("t", "m1".into(), "c1".into(), 5, &kind).len(), RAW_COLS.len());
    }

    #[test]
    fn event_times_keep_their_microseconds() {
        let e = pb_event("m".into(), "c".into(), 1_700_000_000_123_456, Kind::Session { seconds: 30 });
        assert_eq!(e.time, Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 123_456_000 }));
    }
}
