//! `rapport bench-engagement`: the engagement load generator (docs/benchmarks.md, "Engagement").
//!
//! It starts the server as a child process on a free loopback port over
//! `DATABASE_URL`, and measures, each against a baseline taken in the same run:
//!
//! 1. `RecordEvents` throughput (events/s) with batches of 100 and 1 000, roll-ups
//!    included, against 100-row multi-value INSERTs of the same raw rows into a table
//!    shaped like `activity_events`, through the same database, at the same
//!    concurrency. Target on PostgreSQL: ≥ 0.5× the baseline.
//! 2. `GetEngagementProfile` latency for a customer with 10 k and one with 1 M events
//!    over the same 180 days. Target: the 1 M case ≤ 1.2× the 10 k case.
//! 3. `GetEngagementMetrics`, `ListTopCustomers` (and a profile) in a tenant with
//!    100 k customers, against the same calls in a tenant of 1 k customers.
//!
//! History is seeded directly through the store's ingestion functions (the API only
//! takes events up to 30 days old), in bulk. Point it at a database of its own:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/rapport_bench_engagement rapport bench-engagement
//! ```

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::Rng;
use sea_orm::{ConnectionTrait, Database, Value};
use tokio::process::{Child, Command};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::domain::engagement::{self as eng, EventKind, ScoringConfig};
use crate::domain::stored::NewActivity;
use crate::domain::{TenantId, time};
use crate::grpc::pb;
use crate::grpc::pb::engagement_service_client::EngagementServiceClient;
use crate::service::{Clock, Services};
use crate::store::engagement::{self as es, Rolled};
use crate::store::{Db, DbSettings};

const BASELINE_TABLE: &str = "bench_engagement_baseline";
const THROUGHPUT_TARGET: f64 = 0.5;
const PROFILE_TARGET: f64 = 1.2;
/// Days the seeded history spans.
const HISTORY_DAYS: i64 = 180;
/// Raw events seeded per transaction.
const SEED_CHUNK: usize = 20_000;

/// `rapport bench-engagement`: ingestion throughput and read latencies.
#[derive(Debug, Clone, clap::Args)]
pub struct EngagementBenchArgs {
    /// Seconds measured per throughput run (after one second of warm-up).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Batches in flight at once, for RecordEvents and for the baseline INSERTs.
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Events of history of the large profile (the small one has 10 000).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_HISTORY_EVENTS", default_value_t = 1_000_000)]
    pub history_events: u64,
    /// Customers of the large tenant (the small one has 1 000).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_CUSTOMERS", default_value_t = 100_000)]
    pub customers: u64,
    /// Timed calls per latency figure (after three warm-up calls).
    #[arg(long, env = "RAPPORT_BENCH_ENGAGEMENT_SAMPLES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: u64,
}

type Client = EngagementServiceClient<InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
struct Bearer(AsciiMetadataValue);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// Runs every measurement and prints the report.
pub async fn run(db: &DbSettings, args: EngagementBenchArgs) -> anyhow::Result<()> {
    ensure_database(&db.url).await?;
    let store = Db::connect(db).await.context("connecting to the database")?;
    store.migrate().await.context("migrating")?;
    let mut server = start_server(db).await?;
    let outcome = bench(&store, &args, &mut server).await;
    let _ = server.kill().await;
    let _ = store.conn().execute_unprepared(&format!("DROP TABLE IF EXISTS {BASELINE_TABLE}")).await;
    store.close().await;
    let report = outcome?;
    println!("{report}");
    Ok(())
}

async fn bench(store: &Db, args: &EngagementBenchArgs, server: &mut Server) -> anyhow::Result<String> {
    server.wait_for_serving().await?;
    let tag = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
    let services = Services::new(store.clone(), Clock::default());
    let mut out = String::new();
    let backend = format!("{:?}", store.backend());
    out.push_str(&format!(
        "rapport bench-engagement on {backend}, concurrency {}, {} s per throughput run, {} samples per latency\n\
         command: {}\n\n",
        args.concurrency,
        args.seconds,
        args.samples,
        std::env::args().collect::<Vec<_>>().join(" ")
    ));

    // 1. Ingestion throughput.
    let ingest = services.create_tenant(&format!("bench-ingest-{tag}")).await?;
    let client = connect(&server.uri, &ingest.secret).await?;
    configure(&client).await?;
    create_baseline_table(store).await?;
    eprintln!("baseline: 100-row INSERTs for {} s…", args.seconds);
    let base = baseline(store, &ingest.tenant, args).await?;
    out.push_str("RecordEvents throughput (roll-ups included) against 100-row INSERTs of raw rows\n");
    out.push_str(&format!("  baseline, 100-row multi-value INSERTs      {base:>10.0} rows/s\n"));
    for batch in [100usize, 1_000] {
        eprintln!("RecordEvents, batches of {batch}, for {} s…", args.seconds);
        let rate = ingest_rate(&server.uri, &ingest.secret, batch, args).await?;
        let ratio = rate / base;
        out.push_str(&format!(
            "  RecordEvents, batches of {batch:<5}            {rate:>10.0} events/s  {ratio:.2}× baseline (target ≥ {THROUGHPUT_TARGET}×: {})\n",
            verdict(ratio >= THROUGHPUT_TARGET)
        ));
    }

    // 2. Profile latency: 10 k against 1 M events over the same days.
    let history = services.create_tenant(&format!("bench-history-{tag}")).await?;
    let cfg = weighted_config();
    let now = chrono::Utc::now();
    eprintln!("seeding 10 000 + {} events of history…", args.history_events);
    seed_one(store, &history.tenant, &cfg, "h-small", 10_000, now).await?;
    seed_one(store, &history.tenant, &cfg, "h-large", args.history_events as usize, now).await?;
    analyze(store).await?;
    let hc = connect(&server.uri, &history.secret).await?;
    let small = latency(args.samples, || profile(&hc, "h-small")).await?;
    let large = latency(args.samples, || profile(&hc, "h-large")).await?;
    let ratio = large.median / small.median;
    out.push_str(&format!("\nGetEngagementProfile, one customer, {HISTORY_DAYS} days of history\n"));
    out.push_str(&format!("  10 000 events                             {small}\n"));
    out.push_str(&format!(
        "  {:<9} events                          {large}  {ratio:.2}× the 10 k case (target ≤ {PROFILE_TARGET}×: {})\n",
        args.history_events,
        verdict(ratio <= PROFILE_TARGET)
    ));

    // 3. Metrics and rankings: 100 k against 1 k customers.
    let big = services.create_tenant(&format!("bench-big-{tag}")).await?;
    let little = services.create_tenant(&format!("bench-little-{tag}")).await?;
    eprintln!("seeding {} customers (and 1 000)…", args.customers);
    seed_many(store, &big.tenant, &cfg, args.customers as usize, now).await?;
    seed_many(store, &little.tenant, &cfg, 1_000, now).await?;
    // Bulk seeding leaves dead row versions and no statistics; a running server's
    // autovacuum would have dealt with both before anyone reads.
    analyze(store).await?;
    let (bc, lc) = (connect(&server.uri, &big.secret).await?, connect(&server.uri, &little.secret).await?);
    out.push_str(&format!(
        "\n{} customers (ratio: the same call with 1 000 customers of the same shape)\n",
        args.customers
    ));
    let calls: [(&str, Call); 6] = [
        ("GetEngagementMetrics, 30 days", Call::Metrics),
        ("ListTopCustomers by score, top 10", Call::TopScore),
        ("ListTopCustomers post_created, section", Call::TopSection),
        ("ListTopCustomers no call_made (zeros)", Call::NoCalls),
        ("TopPropertyValues kb content_id", Call::Values),
        ("GetEngagementProfile (percentile)", Call::Profile),
    ];
    for (name, call) in calls {
        let l = latency(args.samples, || call.run(&lc)).await?;
        let b = latency(args.samples, || call.run(&bc)).await?;
        out.push_str(&format!("  {name:<41} {b}  {:.2}× 1 k ({})\n", b.median / l.median, l));
    }
    let floor = latency(args.samples, || async {
        hc.clone().get_scoring_config(pb::GetScoringConfigRequest {}).await.map(|_| ())
    })
    .await?;
    out.push_str(&format!("\nfloor: GetScoringConfig round trip           {floor}\n"));
    Ok(out)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

// ---------------------------------------------------------------------------------
// Load.
// ---------------------------------------------------------------------------------

fn weighted_config() -> ScoringConfig {
    let mut c = ScoringConfig::default();
    for (a, w) in [("post_created", 3.0), ("comment_added", 1.0), ("kb_article_viewed", 0.5), ("call_made", 2.0)] {
        c.action_weights.insert(a.into(), w);
    }
    c
}

async fn configure(c: &Client) -> anyhow::Result<()> {
    let w = weighted_config();
    c.clone()
        .update_scoring_config(pb::UpdateScoringConfigRequest {
            config: Some(pb::ScoringConfig {
                action_weights: w.action_weights.into_iter().collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["action_weights".into()] }),
        })
        .await?;
    Ok(())
}

/// One synthetic event: mostly actions with one property, some sessions, a few purchases.
fn synthetic(rng: &mut impl Rng, customer: u64) -> (String, EventKind) {
    let roll: u32 = rng.random_range(0..100);
    let kind = if roll < 70 {
        let (name, key, value) = match roll % 4 {
            0 => ("post_created", "section", format!("s{}", rng.random_range(0..20))),
            1 => ("comment_added", "section", format!("s{}", rng.random_range(0..20))),
            2 => ("kb_article_viewed", "content_id", format!("a{}", rng.random_range(0..200))),
            _ => ("call_made", "call_type", if rng.random_bool(0.3) { "international" } else { "national" }.into()),
        };
        EventKind::Action { name: name.into(), properties: [(key.to_string(), value)].into() }
    } else if roll < 95 {
        EventKind::Session { seconds: rng.random_range(10..1_800) }
    } else {
        EventKind::Purchase { amount_minor: rng.random_range(100..50_000), currency: "USD".into() }
    };
    (format!("c{customer}"), kind)
}

fn pb_event(id: String, customer: String, at: chrono::DateTime<chrono::Utc>, kind: EventKind) -> pb::ActivityEvent {
    use pb::activity_event::Kind;
    let kind = match kind {
        EventKind::Action { name, properties } => {
            Kind::Action(pb::ActionEvent { name, properties: properties.into_iter().collect() })
        }
        EventKind::Session { seconds } => Kind::Session(pb::SessionEvent { activity_seconds: seconds }),
        EventKind::Purchase { amount_minor, currency } => Kind::Purchase(pb::PurchaseEvent { amount_minor, currency }),
    };
    pb::ActivityEvent {
        message_id: id,
        customer_id: customer,
        time: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }),
        kind: Some(kind),
    }
}

/// A batch as a back end flushes it: about ten events per customer, mostly from the
/// last hours, one in ten from the last three weeks (late).
fn batch(rng: &mut impl Rng, prefix: &str, seq: u64, size: usize) -> Vec<pb::ActivityEvent> {
    let now = chrono::Utc::now();
    let first = rng.random_range(0..20_000u64);
    (0..size)
        .map(|i| {
            let customer = first + (i as u64) / 10;
            let (cid, kind) = synthetic(rng, customer);
            let age = if rng.random_bool(0.1) {
                chrono::Duration::days(rng.random_range(1..21))
            } else {
                chrono::Duration::minutes(rng.random_range(0..360))
            };
            pb_event(format!("{prefix}-{seq}-{i}"), cid, now - age, kind)
        })
        .collect()
}

/// Runs `work` on `concurrency` tasks for warm-up + measure, counting units done
/// after the warm-up; returns units per second.
async fn drive<F, Fut>(concurrency: u64, measure: Duration, work: F) -> anyhow::Result<f64>
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send,
{
    let work = Arc::new(work);
    let counted = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (work, counted) = (work.clone(), counted.clone());
        tasks.spawn(async move {
            let mut seq = 0;
            while start.elapsed() < warmup + measure {
                let n = work(worker, seq).await?;
                seq += 1;
                if start.elapsed() > warmup && start.elapsed() <= warmup + measure {
                    counted.fetch_add(n, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(counted.load(Ordering::Relaxed) as f64 / measure.as_secs_f64())
}

async fn ingest_rate(uri: &str, key: &str, size: usize, args: &EngagementBenchArgs) -> anyhow::Result<f64> {
    let client = connect(uri, key).await?;
    let run = format!("r{size}-{}", chrono::Utc::now().timestamp_micros());
    drive(args.concurrency, Duration::from_secs(args.seconds), move |worker, seq| {
        let mut c = client.clone();
        let events = batch(&mut rand::rng(), &format!("{run}-{worker}"), seq, size);
        async move {
            let r = c.record_events(pb::RecordEventsRequest { events }).await?.into_inner();
            anyhow::ensure!(r.rejected == 0, "the server rejected generated events: {:?}", r.results.first());
            Ok(r.accepted as u64)
        }
    })
    .await
}

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

async fn create_baseline_table(store: &Db) -> anyhow::Result<()> {
    let conn = store.conn();
    conn.execute_unprepared(&format!("DROP TABLE IF EXISTS {BASELINE_TABLE}")).await?;
    conn.execute_unprepared(&format!(
        "CREATE TABLE {BASELINE_TABLE} (tenant_id VARCHAR(64) NOT NULL, message_id VARCHAR(200) NOT NULL, \
         customer_id VARCHAR(64) NOT NULL, kind VARCHAR(8) NOT NULL, name VARCHAR(100), occurred_at BIGINT NOT NULL, \
         properties TEXT NOT NULL, seconds BIGINT, amount_minor BIGINT, currency VARCHAR(3), \
         payload_hash VARCHAR(32) NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, message_id))"
    ))
    .await
    .context("creating the baseline table")?;
    Ok(())
}

/// The baseline: the same raw rows, 100 per multi-value INSERT, no roll-ups, no gRPC.
async fn baseline(store: &Db, tenant: &TenantId, args: &EngagementBenchArgs) -> anyhow::Result<f64> {
    let conn = store.conn().clone();
    let tenant = tenant.0.clone();
    drive(args.concurrency, Duration::from_secs(args.seconds), move |worker, seq| {
        let conn = conn.clone();
        let mut rng = rand::rng();
        let now = time::to_micros(chrono::Utc::now());
        let rows: Vec<Vec<Value>> = (0..100)
            .map(|i| {
                let customer = rng.random_range(0..20_000);
                let (cid, kind) = synthetic(&mut rng, customer);
                raw_values(&tenant, format!("b-{worker}-{seq}-{i}"), cid, now, &kind)
            })
            .collect();
        async move {
            crate::store::sql::insert_rows(&conn, BASELINE_TABLE, &RAW_COLS, rows, "").await?;
            Ok(100)
        }
    })
    .await
}

fn raw_values(tenant: &str, id: String, customer: String, at: i64, kind: &EventKind) -> Vec<Value> {
    let (name, props, seconds, amount, currency) = match kind {
        EventKind::Action { name, properties } => {
            (Some(name.clone()), serde_json::to_string(properties).unwrap_or_default(), None, None, None)
        }
        EventKind::Session { seconds } => (None, "{}".into(), Some(*seconds), None, None),
        EventKind::Purchase { amount_minor, currency } => {
            (None, "{}".into(), None, Some(*amount_minor), Some(currency.clone()))
        }
    };
    let hash = crate::domain::secrets::hash(&id)[..32].to_owned();
    vec![
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
    ]
}

// ---------------------------------------------------------------------------------
// Seeding history through the store's ingestion functions.
// ---------------------------------------------------------------------------------

async fn set_config(
    store: &Db,
    tenant: &TenantId,
    cfg: &ScoringConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<i32> {
    let today = eng::day_of(cfg.tz(), now);
    let txn = store.begin_write().await?;
    es::save_config(&txn, tenant, cfg, today, now).await?;
    txn.commit().await?;
    Ok(today)
}

/// Inserts and rolls up `events` (customer CRM id, time, kind), in chunks.
async fn seed(
    store: &Db,
    tenant: &TenantId,
    cfg: &ScoringConfig,
    reference: i32,
    prefix: &str,
    events: Vec<(String, i64, EventKind)>,
) -> anyhow::Result<()> {
    let tz = cfg.tz();
    let now = chrono::Utc::now();
    for (n, chunk) in events.chunks(SEED_CHUNK).enumerate() {
        let txn = store.begin_write().await?;
        let externals = chunk.iter().map(|(c, _, _)| c.clone()).collect();
        let resolved = es::resolve_customers(&txn, tenant, &externals, now).await?;
        let rows: Vec<NewActivity> = chunk
            .iter()
            .enumerate()
            .map(|(i, (c, at, kind))| NewActivity {
                message_id: format!("{prefix}-{n}-{i}"),
                customer: resolved[c].row_id.clone(),
                occurred_at: time::from_micros(*at),
                kind: kind.clone(),
                payload_hash: "seed".into(),
            })
            .collect();
        es::insert_events(&txn, tenant, &rows, now).await?;
        let rolled: Vec<Rolled<'_>> = rows
            .iter()
            .map(|r| Rolled { customer: &r.customer, day: eng::day_of(tz, r.occurred_at), kind: &r.kind })
            .collect();
        es::roll_up(&txn, tenant, cfg, reference, &rolled, now).await?;
        txn.commit().await?;
    }
    Ok(())
}

/// One customer with `n` events spread evenly over the last 180 days.
async fn seed_one(
    store: &Db,
    tenant: &TenantId,
    cfg: &ScoringConfig,
    customer: &str,
    n: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let reference = set_config(store, tenant, cfg, now).await?;
    let span = HISTORY_DAYS * 86_400_000_000;
    let start = time::to_micros(now) - span;
    let mut rng = rand::rng();
    let events = (0..n)
        .map(|i| {
            let (_, kind) = synthetic(&mut rng, 0);
            (customer.to_owned(), start + (i as i64) * (span / n as i64), kind)
        })
        .collect();
    seed(store, tenant, cfg, reference, customer, events).await
}

/// `n` customers with about five events each over the last 60 days, in time order.
async fn seed_many(
    store: &Db,
    tenant: &TenantId,
    cfg: &ScoringConfig,
    n: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let reference = set_config(store, tenant, cfg, now).await?;
    let mut rng = rand::rng();
    let now_us = time::to_micros(now);
    let mut events: Vec<(String, i64, EventKind)> = (0..n * 5)
        .map(|i| {
            let customer = (i % n) as u64;
            let (cid, kind) = synthetic(&mut rng, customer);
            (cid, now_us - rng.random_range(0..60 * 86_400_000_000i64), kind)
        })
        .collect();
    events.sort_by_key(|e| e.1);
    seed(store, tenant, cfg, reference, "m", events).await
}

/// Refreshes the planner's statistics (and, on PostgreSQL, cleans dead rows).
async fn analyze(store: &Db) -> anyhow::Result<()> {
    let sql = if store.backend() == sea_orm::DbBackend::Postgres { "VACUUM ANALYZE" } else { "ANALYZE" };
    store.conn().execute_unprepared(sql).await.context("analysing after seeding")?;
    Ok(())
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

struct Latency {
    median: f64,
    p95: f64,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "median {:>8.2} ms, p95 {:>8.2} ms", self.median, self.p95)
    }
}

/// Three warm-up calls, then `samples` timed calls one after another.
async fn latency<F, Fut>(samples: u64, call: F) -> anyhow::Result<Latency>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Status>>,
{
    for _ in 0..3 {
        call().await?;
    }
    let mut ms = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        call().await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Ok(Latency { median: at(0.5), p95: at(0.95) })
}

// ---------------------------------------------------------------------------------
// The server and the database.
// ---------------------------------------------------------------------------------

struct Server {
    child: Child,
    uri: String,
}

impl Server {
    async fn wait_for_serving(&mut self) -> anyhow::Result<()> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited early with {status}");
            }
            if let Ok(ch) = Endpoint::from_shared(self.uri.clone())?.connect().await
                && let Ok(r) = HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await
                && r.into_inner().status == 1
            {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not report SERVING within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill().await
    }
}

async fn start_server(db: &DbSettings) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("finding the rapport executable")?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let child = Command::new(&exe)
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("RAPPORT_DB_MAX_CONNECTIONS", db.max_connections.to_string())
        .env("RAPPORT_GRPC_ADDR", addr.to_string())
        .env("RAPPORT_BOOTSTRAP_TENANT", "false")
        .env("RAPPORT_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    Ok(Server { child, uri: format!("http://{addr}") })
}

async fn connect(uri: &str, key: &str) -> anyhow::Result<Client> {
    let channel = Endpoint::from_shared(uri.to_owned())?
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .connect()
        .await
        .with_context(|| format!("connecting to {uri}"))?;
    let value: AsciiMetadataValue = format!("Bearer {key}").parse()?;
    Ok(EngagementServiceClient::with_interceptor(channel, Bearer(value)).max_decoding_message_size(64 << 20))
}

/// Creates the PostgreSQL database named in `url` if it does not exist.
async fn ensure_database(url: &str) -> anyhow::Result<()> {
    if !url.starts_with("postgres") {
        return Ok(());
    }
    if let Ok(c) = Database::connect(url).await {
        let _ = c.close().await;
        return Ok(());
    }
    let (base, rest) = url.rsplit_once('/').context("a PostgreSQL URL ends in /<database>")?;
    let name = rest.split('?').next().unwrap_or(rest);
    let admin = Database::connect(format!("{base}/postgres")).await.context("connecting to the postgres database")?;
    admin.execute_unprepared(&format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""))).await?;
    let _ = admin.close().await;
    Ok(())
}
