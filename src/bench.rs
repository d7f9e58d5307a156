//! `rapport bench`: the load generator. It drives `RecordResponse` over real gRPC at
//! several concurrency levels against a running server and, in the same run and on
//! the same database, measures the baseline: one-row INSERTs into an equivalent table.
//! The ratio between the two is the cost of everything rapport does per answer
//! (authentication, the survey read, the customer upsert, the follow-up, the
//! transaction and gRPC) expressed against the cheapest possible write.
//!
//! PostgreSQL is the meaningful target (the goal is ≥ 0.5× the baseline at
//! concurrency 64); SQLite runs too, for comparison:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/rapport_bench rapport bench
//! DATABASE_URL='sqlite:///tmp/rapport-bench.db?mode=rwc' rapport bench
//! ```
//!
//! The baseline goes through [`Db::connect`], the very pool the server uses (same size,
//! timeouts, connection checks and TLS negotiation), so the ratio isolates what rapport
//! adds per answer rather than differences in connection set-up. The two loads run
//! one after the other, never at once: each has the machine to itself.
//!
//! The bench writes real rows (a tenant `bench-<time>`, a survey, its responses and
//! follow-ups), so point it at a database of its own. A missing PostgreSQL database
//! is created; the schema is migrated. Without `--server` the bench starts the server
//! itself as a child process on a free loopback port, which also lets it read the
//! server's memory from `/proc`.

use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sea_orm::sea_query::{ColumnDef, Query, Table};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::domain::{Scale, SurveyKind};
use crate::grpc::pb;
use crate::grpc::pb::survey_service_client::SurveyServiceClient;
use crate::service::{Clock, Services};
use crate::store::{Db, DbSettings};

/// The concurrency level the target applies to.
const TARGET_CONCURRENCY: usize = 64;
/// The target: rapport's requests/s at least this fraction of the baseline's inserts/s.
const TARGET_RATIO: f64 = 0.5;
/// How long the server may take to report SERVING.
const SERVING_DEADLINE: Duration = Duration::from_secs(30);
/// A call slower than this counts as an error rather than hanging the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Load tasks that share one HTTP/2 connection. A few connections rather than one
/// keep a single connection's task from becoming the client's bottleneck at c=64.
const TASKS_PER_CHANNEL: usize = 16;
/// The table the baseline inserts into. Dropped before and after the run.
const BASELINE_TABLE: &str = "bench_baseline";

/// `rapport bench`: load-generate `RecordResponse` and compare with raw INSERTs.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Concurrency levels to run, in order: the number of calls kept in flight at once.
    #[arg(
        long,
        env = "RAPPORT_BENCH_CONCURRENCY",
        value_delimiter = ',',
        default_value = "1,16,64",
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub concurrency: Vec<u32>,
    /// Seconds measured per level, for rapport and again for the baseline.
    #[arg(
        long,
        env = "RAPPORT_BENCH_DURATION_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub duration_seconds: u64,
    /// Seconds of unmeasured load before each measurement (connections, caches).
    #[arg(long, env = "RAPPORT_BENCH_WARMUP_SECONDS", default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Address of an already running server (`host:port` or `http://host:port`). It
    /// must use the same database as `DATABASE_URL`, where the baseline runs. Unset:
    /// the bench starts a server itself on a free loopback port and stops it at the end.
    #[arg(long, env = "RAPPORT_BENCH_SERVER")]
    pub server: Option<String>,
    /// Secret key of the tenant to load, for `--server`. Unset: the bench creates a
    /// tenant `bench-<time>` in the database. Prefer the environment variable: a
    /// flag's value is visible to other users of the machine.
    #[arg(long, env = "RAPPORT_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Also measure webhooks: register an endpoint on a loopback receiver in this
    /// process, run RecordResponse at the highest concurrency while the dispatcher
    /// delivers, and report deliveries per second and the throughput ratio against the
    /// same level without webhooks. The server must allow loopback http targets (the
    /// server the bench starts does).
    #[arg(long, env = "RAPPORT_BENCH_WEBHOOKS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub webhooks: bool,
}

/// Runs the bench and prints one table: rapport against the baseline, per level.
pub async fn run(db: &DbSettings, args: BenchArgs) -> anyhow::Result<()> {
    ensure_database_exists(&db.url).await?;
    let store = Db::connect(db).await.with_context(|| format!("connecting to {}", redact_url(&db.url)))?;
    store.migrate().await.context("migrating the bench database")?;

    let mut server = match &args.server {
        Some(addr) => Server::External { uri: server_uri(addr) },
        None => start_server(db).await?,
    };
    let outcome = bench(db, &store, &args, &mut server).await;
    // Clean up whatever happened above; the first error is the one reported.
    server.stop().await;
    let dropped = store
        .conn()
        .execute(&Table::drop().table(BASELINE_TABLE).if_exists().to_owned())
        .await
        .context("dropping the baseline table");
    store.close().await;
    let report = outcome?;
    dropped?;
    report.print();
    Ok(())
}

/// Sets up the tenant, the survey and the baseline table, then runs every level.
async fn bench(db: &DbSettings, store: &Db, args: &BenchArgs, server: &mut Server) -> anyhow::Result<Report> {
    server.wait_for_serving().await?;
    let run_tag = format!("bench-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let (key, tenant_id) = match &args.key {
        Some(key) => (key.clone(), None),
        None => {
            let services = Services::new(store.clone(), Clock::default());
            let issued = services.create_tenant(&run_tag).await.context("creating the bench tenant")?;
            (issued.secret, Some(issued.tenant.0))
        }
    };
    let auth = BearerAuth::new(&key)?;
    let survey_id = create_survey(server.uri(), &auth, &run_tag).await?;
    create_baseline_table(store.conn()).await?;

    let warmup = Duration::from_secs(args.warmup_seconds);
    let measure = Duration::from_secs(args.duration_seconds);
    let baseline = InsertOp {
        conn: store.conn().clone(),
        // The baseline table has no foreign keys; any id of the right shape will do.
        tenant_id: Arc::from(tenant_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string())),
        survey_id: Arc::from(survey_id.as_str()),
        scale: nps_scale()?,
    };
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let concurrency = concurrency as usize;
        eprintln!("c={concurrency}: RecordResponse over gRPC for {warmup:?} + {measure:?}…");
        let op = RecordOp::connect(server.uri(), &auth, &survey_id, &run_tag, concurrency).await?;
        let rapport = run_level(&op, concurrency, warmup, measure).await?;
        let rss = server.pid().map(rss_of);
        eprintln!("c={concurrency}: GetSurvey over gRPC for {warmup:?} + {measure:?}…");
        let read = ReadOp { clients: op.clients.clone(), survey_id: Arc::from(survey_id.as_str()) };
        let reference = drive(&read, concurrency, warmup, measure).await?;
        eprintln!("c={concurrency}: baseline INSERTs for {warmup:?} + {measure:?}…");
        let base = baseline_level(&baseline, concurrency, warmup, measure).await?;
        levels.push(Level { concurrency, rapport, reference, baseline: base, rss });
    }
    let webhooks = if args.webhooks {
        Some(webhook_phase(server, store, &auth, &survey_id, &run_tag, &levels, warmup, measure).await?)
    } else {
        None
    };
    Ok(Report {
        backend: store.backend(),
        database: redact_url(&db.url),
        pool: db.max_connections,
        warmup,
        measure,
        server: server.describe(),
        command: redacted_command_line(),
        levels,
        webhooks,
    })
}

// ---------------------------------------------------------------------------------
// The database: create it if missing, and the baseline table.
// ---------------------------------------------------------------------------------

/// Creates the PostgreSQL database named in `url` when it does not exist, through the
/// `postgres` maintenance database of the same server. Nothing to do for SQLite,
/// whose `mode=rwc` creates the file.
async fn ensure_database_exists(url: &str) -> anyhow::Result<()> {
    let Some((admin_url, name)) = postgres_admin_url(url) else {
        return Ok(());
    };
    let quiet = |url: &str| {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(1).sqlx_logging(false);
        opts
    };
    match Database::connect(quiet(url)).await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Err(e) if is_missing_database(&e) => {}
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", redact_url(url))),
    }
    let admin = Database::connect(quiet(&admin_url))
        .await
        .with_context(|| format!("connecting to {} to create the database {name:?}", redact_url(&admin_url)))?;
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let created = admin.execute_unprepared(&create).await;
    let _ = admin.close().await;
    match created {
        Ok(_) => {
            eprintln!("created the PostgreSQL database {name:?}");
            Ok(())
        }
        // Another process created it meanwhile (42P04: duplicate_database).
        Err(e) if sqlstate(&e).as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the database {name:?}")),
    }
}

/// For a PostgreSQL URL: the URL of the same server's `postgres` database, and the
/// name of the database the URL names. `None` for other URLs, or one naming no database.
fn postgres_admin_url(url: &str) -> Option<(String, String)> {
    let scheme_end = ["postgres://", "postgresql://"].iter().find(|s| url.starts_with(**s))?.len();
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let (server, name) = main[scheme_end..].split_once('/')?;
    if name.is_empty() {
        return None;
    }
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Some((format!("{}{server}/postgres{query}", &main[..scheme_end]), name.to_owned()))
}

/// The SQLSTATE of a database error, if it carries one.
fn sqlstate(e: &DbErr) -> Option<String> {
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(s)) | DbErr::Exec(RuntimeErr::SqlxError(s)) => {
            s.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
        }
        _ => None,
    }
}

/// Whether connecting failed because the database does not exist (3D000).
fn is_missing_database(e: &DbErr) -> bool {
    sqlstate(e).as_deref() == Some("3D000")
}

/// (Re)creates the baseline table: the columns of `responses` that a direct answer
/// fills, with its primary key, and nothing else (no foreign keys, no indexes).
async fn create_baseline_table(conn: &DatabaseConnection) -> anyhow::Result<()> {
    conn.execute(&Table::drop().table(BASELINE_TABLE).if_exists().to_owned())
        .await
        .context("dropping an old baseline table")?;
    let create = Table::create()
        .table(BASELINE_TABLE)
        .col(ColumnDef::new("id").string_len(64).not_null().primary_key())
        .col(ColumnDef::new("tenant_id").string_len(64).not_null())
        .col(ColumnDef::new("survey_id").string_len(64).not_null())
        .col(ColumnDef::new("customer_id").string_len(64).not_null())
        .col(ColumnDef::new("score").integer().not_null())
        .col(ColumnDef::new("bucket").string_len(16).not_null())
        .col(ColumnDef::new("comment").text().not_null())
        .col(ColumnDef::new("properties").text().not_null())
        .col(ColumnDef::new("recorded_at").big_integer().not_null())
        .to_owned();
    conn.execute(&create).await.context("creating the baseline table")?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// The server: start it, wait for it, measure it, stop it.
// ---------------------------------------------------------------------------------

/// The server under load.
enum Server {
    /// Started by the bench; killed at the end (and on drop).
    Child { child: Child, pid: u32, uri: String },
    /// Given with `--server`.
    External { uri: String },
}

impl Server {
    fn uri(&self) -> &str {
        match self {
            Server::Child { uri, .. } | Server::External { uri } => uri,
        }
    }

    /// The process id, when the bench started the server.
    fn pid(&self) -> Option<u32> {
        match self {
            Server::Child { pid, .. } => Some(*pid),
            Server::External { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Server::Child { pid, uri, .. } => format!("started by the bench at {uri} (pid {pid})"),
            Server::External { uri } => format!("external at {uri}"),
        }
    }

    /// Waits until the server's health reports SERVING, or fails after
    /// [`SERVING_DEADLINE`] or when the child exits first.
    async fn wait_for_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SERVING_DEADLINE;
        let uri = self.uri().to_owned();
        loop {
            if let Server::Child { child, .. } = self
                && let Some(status) = child.try_wait().context("checking on the server process")?
            {
                bail!("the server exited ({status}) before serving; see its log above");
            }
            let last = match health(&uri).await {
                Ok(ServingStatus::Serving) => return Ok(()),
                Ok(other) => format!("health says {}", other.as_str_name()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("the server at {uri} was not SERVING after {SERVING_DEADLINE:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server the bench started; nothing for an external one.
    async fn stop(&mut self) {
        if let Server::Child { child, .. } = self
            && let Err(e) = child.kill().await
        {
            eprintln!("could not stop the server: {e}");
        }
    }
}

/// Starts `rapport serve` from this executable on a free loopback port, with the same
/// database and pool size, no bootstrap tenant and quiet logs.
async fn start_server(db: &DbSettings) -> anyhow::Result<Server> {
    let exe = std::env::current_exe().context("finding the rapport executable")?;
    let addr = free_port()?;
    let child = Command::new(&exe)
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("RAPPORT_DB_MAX_CONNECTIONS", db.max_connections.to_string())
        .env("RAPPORT_DB_ACQUIRE_TIMEOUT_SECONDS", db.acquire_timeout.as_secs().to_string())
        .env("RAPPORT_GRPC_ADDR", addr.to_string())
        .env("RAPPORT_ADMIN_ADDR", "127.0.0.1:0")
        .env("RAPPORT_HTTP_ADDR", "127.0.0.1:0")
        // For the webhook phase: the receiver is this process, on loopback.
        .env("RAPPORT_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("RAPPORT_WEBHOOK_ALLOW_HTTP_HOSTS", "127.0.0.1")
        .env("RAPPORT_WEBHOOK_SETTLE_SECONDS", "0")
        .env("RAPPORT_WORKER_POLL_MS", "200")
        .env("RAPPORT_BOOTSTRAP_TENANT", "false")
        .env("RAPPORT_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let pid = child.id().context("the server exited as soon as it started")?;
    Ok(Server::Child { child, pid, uri: format!("http://{addr}") })
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

/// `host:port` or a URI, as a URI.
fn server_uri(addr: &str) -> String {
    if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") }
}

/// The server's overall status from grpc.health.v1 `Check("")`.
async fn health(uri: &str) -> anyhow::Result<ServingStatus> {
    let channel = connect(uri).await?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
    Ok(reply.into_inner().status())
}

/// One HTTP/2 connection to the server.
async fn connect(uri: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(uri.to_owned())
        .with_context(|| format!("{uri:?} is not a valid server address"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connecting to {uri}"))
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rss {
    /// `VmRSS`: resident now, in KiB.
    now_kib: u64,
    /// `VmHWM`: the most it was ever resident, in KiB.
    peak_kib: u64,
}

/// Reads the resident memory of process `pid` (Linux only).
fn rss_of(pid: u32) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_rss(&status).with_context(|| format!("{path} has no VmRSS/VmHWM"))
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
fn parse_rss(status: &str) -> Option<Rss> {
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Rss { now_kib: kib("VmRSS:")?, peak_kib: kib("VmHWM:")? })
}

// ---------------------------------------------------------------------------------
// The two loads: RecordResponse over gRPC, and the baseline INSERT.
// ---------------------------------------------------------------------------------

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
struct BearerAuth(AsciiMetadataValue);

impl BearerAuth {
    fn new(key: &str) -> anyhow::Result<Self> {
        let value = format!("Bearer {key}").parse().context("the key is not valid in gRPC metadata")?;
        Ok(BearerAuth(value))
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type SurveyClient = SurveyServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Creates the NPS survey the load answers, with the default follow-up rule
/// (scores 0–6 open a follow-up), and returns its id.
async fn create_survey(uri: &str, auth: &BearerAuth, name: &str) -> anyhow::Result<String> {
    let mut client = SurveyServiceClient::with_interceptor(connect(uri).await?, auth.clone());
    let survey = pb::Survey {
        kind: pb::SurveyKind::Nps as i32,
        name: name.to_owned(),
        question: "How likely are you to recommend us to a friend or colleague?".into(),
        ..Default::default()
    };
    let created = client
        .create_survey(pb::CreateSurveyRequest { survey: Some(survey) })
        .await
        .map_err(|s| anyhow::anyhow!("CreateSurvey failed: {}", describe_status(&s)))?;
    Ok(created.into_inner().id)
}

/// The NPS scale, for the baseline's buckets.
fn nps_scale() -> anyhow::Result<Scale> {
    Scale::parse(SurveyKind::Nps, None).map_err(|e| anyhow::anyhow!("the NPS scale: {e}"))
}

/// The score of call `seq` of `worker`: cycling through 0–10 so that, as in real life,
/// detractors (0–6, which open a follow-up) and the others are both common.
fn score_for(worker: usize, seq: u64) -> i32 {
    ((worker as u64 + seq) % 11) as i32
}

/// A call the load generator repeats.
trait Operation: Clone + Send + Sync + 'static {
    /// Makes call number `seq` of load task `worker`.
    fn call(&self, worker: usize, seq: u64) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// One direct `RecordResponse` per call, each from a new customer.
#[derive(Clone)]
struct RecordOp {
    /// One client per [`TASKS_PER_CHANNEL`] tasks, each on its own connection.
    clients: Arc<[SurveyClient]>,
    survey_id: Arc<str>,
    /// Makes customer ids unique across runs and levels.
    customer_prefix: Arc<str>,
}

impl RecordOp {
    /// Opens the connections a level with `concurrency` tasks uses.
    async fn connect(
        uri: &str,
        auth: &BearerAuth,
        survey_id: &str,
        run_tag: &str,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let mut clients = Vec::new();
        for _ in 0..concurrency.div_ceil(TASKS_PER_CHANNEL) {
            clients.push(SurveyServiceClient::with_interceptor(connect(uri).await?, auth.clone()));
        }
        Ok(RecordOp {
            clients: clients.into(),
            survey_id: Arc::from(survey_id),
            customer_prefix: Arc::from(format!("{run_tag}-c{concurrency}")),
        })
    }
}

impl Operation for RecordOp {
    async fn call(&self, worker: usize, seq: u64) -> anyhow::Result<()> {
        let mut client = self.clients[(worker / TASKS_PER_CHANNEL) % self.clients.len()].clone();
        let request = pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: self.survey_id.to_string(),
                customer_id: format!("{}-w{worker}-{seq}", self.customer_prefix),
            })),
            score: Some(score_for(worker, seq)),
            comment: "Quick answer from the load generator.".into(),
            ..Default::default()
        };
        client.record_response(request).await.map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
        Ok(())
    }
}

/// One `GetSurvey` per call, over the same connections and key: authentication and
/// one indexed read, no write. It shows what a call through gRPC alone reaches on the
/// machine, the ceiling under any use-case that also writes.
#[derive(Clone)]
struct ReadOp {
    clients: Arc<[SurveyClient]>,
    survey_id: Arc<str>,
}

impl Operation for ReadOp {
    async fn call(&self, worker: usize, _seq: u64) -> anyhow::Result<()> {
        let mut client = self.clients[(worker / TASKS_PER_CHANNEL) % self.clients.len()].clone();
        let request = pb::GetSurveyRequest { id: self.survey_id.to_string() };
        client.get_survey(request).await.map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
        Ok(())
    }
}

/// One autocommitted one-row INSERT into [`BASELINE_TABLE`] per call, through a pool
/// configured like the server's.
#[derive(Clone)]
struct InsertOp {
    conn: DatabaseConnection,
    tenant_id: Arc<str>,
    survey_id: Arc<str>,
    scale: Scale,
}

impl Operation for InsertOp {
    async fn call(&self, worker: usize, seq: u64) -> anyhow::Result<()> {
        let score = score_for(worker, seq);
        let insert = Query::insert()
            .into_table(BASELINE_TABLE)
            .columns([
                "id",
                "tenant_id",
                "survey_id",
                "customer_id",
                "score",
                "bucket",
                "comment",
                "properties",
                "recorded_at",
            ])
            .values([
                uuid::Uuid::now_v7().to_string().into(),
                self.tenant_id.to_string().into(),
                self.survey_id.to_string().into(),
                uuid::Uuid::now_v7().to_string().into(),
                score.into(),
                self.scale.bucket(score).as_str().into(),
                "Quick answer from the load generator.".into(),
                "{}".into(),
                chrono::Utc::now().timestamp_micros().into(),
            ])?
            .to_owned();
        self.conn.execute(&insert).await?;
        Ok(())
    }
}

/// A status as one line: its code and message.
fn describe_status(s: &Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

// ---------------------------------------------------------------------------------
// Driving a load and summing it up.
// ---------------------------------------------------------------------------------

/// What one level of one load measured.
#[derive(Debug, Default)]
struct Sample {
    /// Latencies of the successful calls started in the measured window, sorted.
    latencies: Vec<Duration>,
    /// Calls started in the measured window that failed.
    errors: u64,
    /// Calls that failed during the warm-up.
    warmup_errors: u64,
    /// The first failure, warm-up included, to show why.
    first_error: Option<String>,
    /// From the start of the window to the end of the last call counted.
    elapsed: Duration,
}

impl Sample {
    /// Successful calls per second.
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn p(&self, pct: f64) -> Option<Duration> {
        percentile(&self.latencies, pct)
    }
}

/// One load task's tally.
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
    last_done: Instant,
}

/// Runs `RecordResponse` at `concurrency`: warm-up, then the measured window.
async fn run_level(op: &RecordOp, concurrency: usize, warmup: Duration, measure: Duration) -> anyhow::Result<Sample> {
    drive(op, concurrency, warmup, measure).await
}

/// Runs the baseline INSERT at `concurrency`: warm-up, then the measured window.
async fn baseline_level(
    op: &InsertOp,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<Sample> {
    drive(op, concurrency, warmup, measure).await
}

/// Keeps `concurrency` calls of `op` in flight: each task loops, one call at a time,
/// until the window closes. Calls that start during the warm-up are not counted.
async fn drive<O: Operation>(
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
    let mut tally =
        Tally { latencies: Vec::new(), errors: 0, warmup_errors: 0, first_error: None, last_done: measure_from };
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
            (true, Ok(())) => tally.latencies.push(done - started),
            (true, Err(_)) => tally.errors += 1,
            (false, Ok(())) => {}
            (false, Err(_)) => tally.warmup_errors += 1,
        }
        if measured {
            tally.last_done = done;
        }
    }
}

/// The nearest-rank `pct` percentile (0–100) of sorted latencies; `None` when empty.
fn percentile(sorted: &[Duration], pct: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

// ---------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------

/// Both loads at one concurrency level.
struct Level {
    concurrency: usize,
    rapport: Sample,
    /// `GetSurvey` at the same concurrency (see [`ReadOp`]).
    reference: Sample,
    baseline: Sample,
    /// The server's memory after the level; `None` for an external server.
    rss: Option<anyhow::Result<Rss>>,
}

impl Level {
    /// rapport's requests/s over the baseline's inserts/s.
    fn ratio(&self) -> Option<f64> {
        let base = self.baseline.rate();
        (base > 0.0).then(|| self.rapport.rate() / base)
    }
}

/// Everything the bench prints.
struct Report {
    backend: DbBackend,
    database: String,
    pool: u32,
    warmup: Duration,
    measure: Duration,
    server: String,
    command: String,
    levels: Vec<Level>,
    webhooks: Option<WebhookReport>,
}

impl Report {
    fn print(&self) {
        let backend = match self.backend {
            DbBackend::Postgres => "PostgreSQL",
            DbBackend::Sqlite => "SQLite",
            _ => "other",
        };
        println!(
            "rapport bench: {backend} at {}, pool {} connections, {} s per level after {} s warm-up; server {}",
            self.database,
            self.pool,
            self.measure.as_secs(),
            self.warmup.as_secs(),
            self.server
        );
        println!("command: {}", self.command);
        println!();
        print_table(&self.rows());
        println!();
        if let Some(w) = &self.webhooks {
            w.print();
            println!();
        }
        for l in &self.levels {
            for (what, s) in
                [("RecordResponse", &l.rapport), ("GetSurvey", &l.reference), ("baseline INSERT", &l.baseline)]
            {
                if s.errors + s.warmup_errors > 0 {
                    println!(
                        "ERRORS at c={}: {} {what} calls failed in the measured window, {} in the warm-up; first error: {}",
                        l.concurrency,
                        s.errors,
                        s.warmup_errors,
                        s.first_error.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        println!("{}", self.verdict());
    }

    /// The header and one row per level.
    fn rows(&self) -> Vec<Vec<String>> {
        let header = [
            "concurrency",
            "rapport req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "baseline inserts/s",
            "baseline p50 ms",
            "baseline p99 ms",
            "ratio",
            "GetSurvey req/s",
            "GetSurvey ratio",
            "server RSS MiB",
        ];
        let mut rows = vec![header.iter().map(|h| h.to_string()).collect()];
        for l in &self.levels {
            rows.push(vec![
                l.concurrency.to_string(),
                format!("{:.0}", l.rapport.rate()),
                ms(l.rapport.p(50.0)),
                ms(l.rapport.p(99.0)),
                match l.baseline.errors {
                    0 => l.rapport.errors.to_string(),
                    b => format!("{} (+{b} baseline)", l.rapport.errors),
                },
                format!("{:.0}", l.baseline.rate()),
                ms(l.baseline.p(50.0)),
                ms(l.baseline.p(99.0)),
                l.ratio().map_or_else(|| "-".into(), |r| format!("{r:.2}×")),
                format!("{:.0}", l.reference.rate()),
                match l.baseline.rate() {
                    base if base > 0.0 => format!("{:.2}×", l.reference.rate() / base),
                    _ => "-".into(),
                },
                match &l.rss {
                    None => "n/a (external server)".into(),
                    Some(Ok(rss)) => {
                        format!("{:.1} (peak {:.1})", rss.now_kib as f64 / 1024.0, rss.peak_kib as f64 / 1024.0)
                    }
                    Some(Err(e)) => format!("n/a ({e:#})"),
                },
            ]);
        }
        rows
    }

    /// The last line: whether c=64 meets the target, and whether that means anything.
    fn verdict(&self) -> String {
        let goal = format!("target: ≥ {TARGET_RATIO}× the baseline at c={TARGET_CONCURRENCY} on PostgreSQL");
        let Some(level) = self.levels.iter().find(|l| l.concurrency == TARGET_CONCURRENCY) else {
            return format!("{goal}: not measured (no c={TARGET_CONCURRENCY} level in this run)");
        };
        let caveat = if self.backend == DbBackend::Postgres { "" } else { " (this run is not PostgreSQL)" };
        let errors = if level.rapport.errors + level.baseline.errors > 0 { ", with errors" } else { "" };
        match level.ratio() {
            Some(r) if r >= TARGET_RATIO => format!("{goal}: MET at {r:.2}×{errors}{caveat}"),
            Some(r) => format!("{goal}: NOT MET at {r:.2}×{errors}{caveat}"),
            None => format!("{goal}: unknown (the baseline completed no inserts){caveat}"),
        }
    }
}

/// A latency in milliseconds, or `-`.
fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

/// Prints rows as a plain table: columns padded to their widest cell, numbers right-aligned.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| if i == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        println!("{}", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            println!("{}", rule.join("-|-"));
        }
    }
}

/// The URL with any password replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// This process's command line, with the value of `--key` and passwords in URLs hidden.
fn redacted_command_line() -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in std::env::args() {
        if hide_next {
            out.push("***".to_owned());
            hide_next = false;
        } else if arg == "--key" {
            hide_next = true;
            out.push(arg);
        } else if arg.starts_with("--key=") {
            out.push("--key=***".to_owned());
        } else {
            out.push(redact_url(&arg));
        }
    }
    out.join(" ")
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

    #[test]
    fn rss_is_read_from_proc_status() {
        let status = "Name:\trapport\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t4\n";
        assert_eq!(parse_rss(status), Some(Rss { now_kib: 102_400, peak_kib: 204_800 }));
        assert_eq!(parse_rss("Name:\trapport\n"), None);
    }

    #[test]
    fn the_admin_url_names_the_postgres_database_of_the_same_server() {
        assert_eq!(
            postgres_admin_url("postgres://postgres@127.0.0.1:5432/rapport_bench"),
            Some(("postgres://postgres@127.0.0.1:5432/postgres".into(), "rapport_bench".into()))
        );
        assert_eq!(
            postgres_admin_url("postgresql://u:p@db/x?sslmode=disable"),
            Some(("postgresql://u:p@db/postgres?sslmode=disable".into(), "x".into()))
        );
        assert_eq!(postgres_admin_url("postgres://db:5432"), None);
        assert_eq!(postgres_admin_url("sqlite:///tmp/x.db?mode=rwc"), None);
    }

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("sqlite:///tmp/a.db?mode=rwc"), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(redact_url("--concurrency"), "--concurrency");
    }

    #[test]
    fn scores_cycle_through_the_nps_scale() {
        let scores: Vec<i32> = (0..11).map(|seq| score_for(3, seq)).collect();
        let mut sorted = scores.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..=10).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------
// Webhooks: deliveries per second, and RecordResponse while the dispatcher delivers.
// ---------------------------------------------------------------------------------

/// What the webhook phase measured.
struct WebhookReport {
    concurrency: usize,
    /// RecordResponse at `concurrency` without any endpoint (from the levels above).
    without: f64,
    /// The same load while every event is also delivered.
    with: Sample,
    /// Requests the receiver got, and over how long (first event to last request).
    delivered: u64,
    delivering_for: Duration,
    /// Deliveries still pending when the bench stopped waiting.
    left_pending: i64,
}

impl WebhookReport {
    fn print(&self) {
        let rate = self.delivered as f64 / self.delivering_for.as_secs_f64().max(f64::EPSILON);
        println!("webhooks (loopback receiver, every event type, c={}):", self.concurrency);
        println!(
            "  deliveries: {} in {:.1} s = {:.0} deliveries/s{}",
            self.delivered,
            self.delivering_for.as_secs_f64(),
            rate,
            if self.left_pending > 0 {
                format!(" ({} still pending when the bench stopped)", self.left_pending)
            } else {
                String::new()
            }
        );
        println!(
            "  RecordResponse while delivering: {:.0} req/s (p50 {} ms, p99 {} ms, {} errors) against {:.0} req/s without webhooks: {:.2}×",
            self.with.rate(),
            ms(self.with.p(50.0)),
            ms(self.with.p(99.0)),
            self.with.errors,
            self.without,
            self.with.rate() / self.without.max(f64::EPSILON)
        );
    }
}

/// Counts what a loopback webhook receiver gets.
#[derive(Default)]
struct ReceiverCounts {
    hits: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<Instant>>,
}

/// Starts a receiver answering 204 to every POST; returns its URL.
async fn start_receiver(counts: Arc<ReceiverCounts>) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counts = counts.clone();
            async move {
                counts.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *counts.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the webhook receiver")?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

async fn pending_deliveries(store: &Db) -> anyhow::Result<i64> {
    let row = store
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            store.backend(),
            "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'pending'",
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
async fn webhook_phase(
    server: &Server,
    store: &Db,
    auth: &BearerAuth,
    survey_id: &str,
    run_tag: &str,
    levels: &[Level],
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<WebhookReport> {
    let top = levels.iter().map(|l| l.concurrency).max().unwrap_or(TARGET_CONCURRENCY);
    let without = levels.iter().find(|l| l.concurrency == top).map(|l| l.rapport.rate()).unwrap_or(0.0);
    let counts = Arc::new(ReceiverCounts::default());
    let (url, receiver) = start_receiver(counts.clone()).await?;
    let mut hooks =
        pb::webhook_service_client::WebhookServiceClient::with_interceptor(connect(server.uri()).await?, auth.clone());
    hooks
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url,
            description: "rapport bench".into(),
            event_types: vec![],
            survey_ids: vec![survey_id.to_owned()],
        })
        .await
        .context("registering the bench webhook endpoint (the server must allow loopback http targets)")?;
    eprintln!("c={top}: RecordResponse while the dispatcher delivers, {warmup:?} + {measure:?}…");
    let started = Instant::now();
    let op = RecordOp::connect(server.uri(), auth, survey_id, &format!("{run_tag}-webhooks"), top).await?;
    let with = run_level(&op, top, warmup, measure).await?;
    // Let the dispatcher drain what the load queued (bounded: report what is left).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut left = pending_deliveries(store).await?;
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = pending_deliveries(store).await?;
    }
    let delivered = counts.hits.load(std::sync::atomic::Ordering::Relaxed);
    let last = counts.last.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(started);
    receiver.abort();
    Ok(WebhookReport { concurrency: top, without, with, delivered, delivering_for: last - started, left_pending: left })
}
