//! `rapport-bench records`: load-generates `RecordResponse` over real gRPC at several
//! concurrency levels and, in the same run, measures three references at each level:
//!
//! - `GetSurvey` over the same connections and key: authentication and one indexed
//!   read, no write (calls in flight together share the read) — the ceiling of a
//!   call through the gRPC stack on the machine;
//! - the baseline: autocommitted one-row INSERTs into `responses`, through a pool
//!   configured like the server's, in a scratch schema made by the project's own
//!   migrations (so the table is the real one, with its keys and indexes);
//! - pgbench, when it is on `PATH` and the database is PostgreSQL: the same one-row
//!   INSERT into the same table, prepared, over TCP, at the same concurrency.
//!
//! The loads run one after the other, never at once: each has the machine to itself.
//! The report ends with the targets: RecordResponse at c=64 ≥ 0.5× pgbench, GetSurvey
//! at c=64 ≥ 0.8× pgbench, RecordResponse at c=1 p50 ≤ 1 ms, no errors.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/rapport_bench rapport-bench records
//! DATABASE_URL='sqlite:///tmp/rapport-bench.db?mode=rwc' rapport-bench records
//! ```
//!
//! The bench writes real rows (a tenant `bench-<time>`, a survey, its responses and
//! follow-ups), so point it at a database of its own. Without `--server` it starts
//! `rapport serve` as a child process on free loopback ports, which also lets it read
//! the server's memory from `/proc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sea_orm::sea_query::Query;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use rapport::grpc::pb;
use rapport::grpc::pb::survey_service_client::SurveyServiceClient;

use crate::harness::database::{DbTarget, Scratch, backend_name, redact_url};
use crate::harness::load::{Operation, Sample, drive};
use crate::harness::pgbench::{Pgbench, PgbenchRun};
use crate::harness::report::{ms, print_table, ratio, redacted_command_line, verdict};
use crate::harness::server::{BearerAuth, Rss, Server, connect, describe_status};
use crate::harness::{CommonArgs, Session, run_session};

/// The concurrency level the throughput targets apply to.
const TARGET_CONCURRENCY: usize = 64;
/// RecordResponse's requests/s at least this fraction of the baseline's inserts/s.
const BASELINE_TARGET: f64 = 0.5;
/// RecordResponse's requests/s at least this fraction of pgbench's INSERTs/s.
const PGBENCH_RECORD_TARGET: f64 = 0.5;
/// GetSurvey's requests/s at least this fraction of pgbench's INSERTs/s.
const PGBENCH_READ_TARGET: f64 = 0.8;
/// RecordResponse alone (c=1): the median at most this.
const LONE_P50_TARGET: Duration = Duration::from_millis(1);
/// Load tasks that share one HTTP/2 connection. A few connections rather than one
/// keep a single connection's task from becoming the client's bottleneck at c=64.
const TASKS_PER_CHANNEL: usize = 16;
/// The scratch schema (a file beside the database on SQLite) the baselines insert into.
const SCRATCH: &str = "bench_records_baseline";
/// The comment of every answer, RecordResponse and baseline alike.
const COMMENT: &str = "Quick answer from the load generator.";

/// `rapport-bench records`: load-generate `RecordResponse` and compare with raw INSERTs.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordsArgs {
    /// Concurrency levels to run, in order: the number of calls kept in flight at once.
    #[arg(
        long,
        env = "RAPPORT_BENCH_CONCURRENCY",
        value_delimiter = ',',
        default_value = "1,16,64",
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub concurrency: Vec<u32>,
    /// Seconds measured per level, for rapport and again for each reference.
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
    /// must use the same database as `DATABASE_URL`, where the baselines run. Unset:
    /// the bench starts a server itself on free loopback ports and stops it at the end.
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

/// Runs the bench and prints one table: rapport against the references, per level.
pub async fn run(common: &CommonArgs, args: RecordsArgs) -> anyhow::Result<()> {
    let report = run_session(common, SCRATCH, args.server.as_deref(), async |s| bench(s, &args).await).await?;
    report.print();
    Ok(())
}

/// Fails, saying what to change, when PostgreSQL has fewer free connection slots than
/// pgbench's `clients` (the server's pool keeps its connections open meanwhile).
async fn free_slots_for(scratch: &Scratch, clients: usize) -> anyhow::Result<()> {
    let sql = "SELECT (current_setting('max_connections')::int - \
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'))::bigint AS free";
    let row = scratch
        .conn()
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .context("no answer to the connection count")?;
    let free: i64 = row.try_get("", "free")?;
    if free < clients as i64 {
        anyhow::bail!(
            "PostgreSQL has {free} free connection slots and pgbench needs {clients}: raise max_connections \
             (ALTER SYSTEM SET max_connections = 300, then restart) or lower --db-max-connections"
        );
    }
    Ok(())
}

/// Sets up the tenant, the survey and the baseline rows, then runs every level.
async fn bench(session: &Session, args: &RecordsArgs) -> anyhow::Result<Report> {
    let Session { db, scratch, server, .. } = session;
    let run_tag = format!("bench-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let (key, tenant_id) = match &args.key {
        Some(key) => (key.clone(), uuid::Uuid::now_v7().to_string()),
        None => {
            let tenant = session.create_tenant(&run_tag).await?;
            (tenant.secret, tenant.id)
        }
    };
    let auth = BearerAuth::new(&key)?;
    let survey_id = create_survey(server.uri(), &auth, &run_tag).await?;
    let baseline = InsertOp::prepare(scratch, &tenant_id, &survey_id).await?;
    let pgbench = match (db.is_postgres(), Pgbench::on_path()) {
        (false, _) => Err("not run: the database is not PostgreSQL".to_owned()),
        (true, None) => Err("not run: pgbench is not on PATH".to_owned()),
        (true, Some(p)) => Ok(p),
    };
    let pgbench_script = baseline.pgbench_script(scratch);

    let warmup = Duration::from_secs(args.warmup_seconds);
    let measure = Duration::from_secs(args.duration_seconds);
    // A database made for the run starts empty, and statements first run on empty
    // tables keep plans made for them (a seek becomes a scan of the tenant's rows)
    // until autovacuum's ANALYZE, a minute or more later; a running service has
    // tables its autovacuum has analysed. So the server first answers unmeasured
    // for the warm-up time, then the database is analysed.
    if !warmup.is_zero() {
        eprintln!("priming: RecordResponse at c=16 for {warmup:?}, then ANALYZE…");
        let op = RecordOp::connect(server.uri(), &auth, &survey_id, &format!("{run_tag}-prime"), 16).await?;
        drive(&op, 16, Duration::ZERO, warmup).await?;
        db.analyze().await?;
    }
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let concurrency = concurrency as usize;
        eprintln!("c={concurrency}: RecordResponse over gRPC for {warmup:?} + {measure:?}…");
        let op = RecordOp::connect(server.uri(), &auth, &survey_id, &run_tag, concurrency).await?;
        let rapport = drive(&op, concurrency, warmup, measure).await?;
        let rss = server.rss();
        eprintln!("c={concurrency}: GetSurvey over gRPC for {warmup:?} + {measure:?}…");
        let read = ReadOp { clients: op.clients.clone(), survey_id: Arc::from(survey_id.as_str()) };
        let reference = drive(&read, concurrency, warmup, measure).await?;
        eprintln!("c={concurrency}: baseline INSERTs for {warmup:?} + {measure:?}…");
        let pool = scratch.open_pool().await?;
        let base = drive(&baseline.on(pool.clone()), concurrency, warmup, measure).await?;
        // Its connections back before pgbench opens as many of its own.
        pool.close().await.context("closing the baseline's pool")?;
        let pg = match &pgbench {
            Ok(p) => {
                eprintln!("c={concurrency}: pgbench INSERTs for {warmup:?} + {measure:?}…");
                let run = async {
                    free_slots_for(scratch, concurrency).await?;
                    p.run(&db.url, &pgbench_script, concurrency, warmup, measure).await
                };
                Some(run.await.map_err(|e| format!("{e:#}")))
            }
            Err(_) => None,
        };
        levels.push(Level { concurrency, rapport, reference, baseline: base, pgbench: pg, rss });
    }
    let webhooks = if args.webhooks {
        Some(webhook_phase(server, db, &auth, &survey_id, &run_tag, &levels, warmup, measure).await?)
    } else {
        None
    };
    Ok(Report {
        backend: scratch.backend(),
        database: redact_url(&db.url),
        pool: db.max_connections,
        warmup,
        measure,
        server: server.describe(),
        command: redacted_command_line(),
        pgbench: match pgbench {
            Ok(p) => format!("pgbench: {}, -M prepared, -j 2, TCP", p.path().display()),
            Err(why) => format!("pgbench: {why}"),
        },
        levels,
        webhooks,
    })
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

/// The score of call `seq` of `worker`: cycling through 0–10 so that, as in real life,
/// detractors (0–6, which open a follow-up) and the others are both common.
fn score_for(worker: usize, seq: u64) -> i32 {
    ((worker as u64 + seq) % 11) as i32
}

/// The NPS bucket of a score, as stored.
fn nps_bucket(score: i32) -> &'static str {
    match score {
        9.. => "promoter",
        7..=8 => "passive",
        _ => "detractor",
    }
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
    async fn call(&self, worker: usize, seq: u64) -> anyhow::Result<u64> {
        let mut client = self.clients[(worker / TASKS_PER_CHANNEL) % self.clients.len()].clone();
        let request = pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: self.survey_id.to_string(),
                customer_id: format!("{}-w{worker}-{seq}", self.customer_prefix),
            })),
            score: Some(score_for(worker, seq)),
            comment: COMMENT.into(),
            ..Default::default()
        };
        client.record_response(request).await.map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
        Ok(1)
    }
}

/// One `GetSurvey` per call, over the same connections and key: authentication and
/// one indexed read, no write (the server reads the surveys of calls in flight
/// together with one statement). It shows what a call through gRPC reaches on the
/// machine, the ceiling under any use-case that also writes.
#[derive(Clone)]
struct ReadOp {
    clients: Arc<[SurveyClient]>,
    survey_id: Arc<str>,
}

impl Operation for ReadOp {
    async fn call(&self, worker: usize, _seq: u64) -> anyhow::Result<u64> {
        let mut client = self.clients[(worker / TASKS_PER_CHANNEL) % self.clients.len()].clone();
        let request = pb::GetSurveyRequest { id: self.survey_id.to_string() };
        client.get_survey(request).await.map_err(|s| anyhow::anyhow!(describe_status(&s)))?;
        Ok(1)
    }
}

/// One autocommitted one-row INSERT into the scratch schema's `responses` per call:
/// the columns a direct answer fills, for one customer row made beforehand (the table's
/// foreign key to `customers` is checked, as for a real answer).
#[derive(Clone)]
struct InsertOp {
    conn: DatabaseConnection,
    tenant_id: Arc<str>,
    survey_id: Arc<str>,
    customer_id: Arc<str>,
}

/// The columns of `responses` a direct answer fills.
const RESPONSE_COLUMNS: [&str; 12] = [
    "id",
    "tenant_id",
    "survey_id",
    "customer_id",
    "kind",
    "score",
    "bucket",
    "scale_max",
    "comment",
    "properties",
    "recorded_at",
    "updated_at",
];

impl InsertOp {
    /// Adds the customer the baseline's answers come from to the scratch schema.
    async fn prepare(scratch: &Scratch, tenant_id: &str, survey_id: &str) -> anyhow::Result<InsertOp> {
        let customer_id = uuid::Uuid::now_v7().to_string();
        let now = chrono::Utc::now().timestamp_micros();
        let insert = Query::insert()
            .into_table("customers")
            .columns(["id", "tenant_id", "external_id", "properties", "created_at", "updated_at"])
            .values([
                customer_id.clone().into(),
                tenant_id.into(),
                "bench-baseline".into(),
                "{}".into(),
                now.into(),
                now.into(),
            ])?
            .to_owned();
        scratch.conn().execute(&insert).await.context("adding the baseline's customer")?;
        Ok(InsertOp {
            conn: scratch.conn().clone(),
            tenant_id: Arc::from(tenant_id),
            survey_id: Arc::from(survey_id),
            customer_id: Arc::from(customer_id.as_str()),
        })
    }

    /// The same INSERTs through `conn`.
    fn on(&self, conn: DatabaseConnection) -> InsertOp {
        InsertOp { conn, ..self.clone() }
    }

    /// The pgbench script of the same INSERT into the same table: a random id per
    /// statement, the other values fixed.
    fn pgbench_script(&self, scratch: &Scratch) -> String {
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let now = chrono::Utc::now().timestamp_micros();
        format!(
            "\\set n random(1, 9000000000000000000)\n\
             INSERT INTO {} ({}) VALUES ('pgbench-' || :client_id || '-' || :n, {}, {}, {}, 'nps', 7, 'passive', 10, {}, '{{}}', {now}, {now});\n",
            scratch.qualified("responses"),
            RESPONSE_COLUMNS.join(", "),
            lit(&self.tenant_id),
            lit(&self.survey_id),
            lit(&self.customer_id),
            lit(COMMENT),
        )
    }
}

impl Operation for InsertOp {
    async fn call(&self, worker: usize, seq: u64) -> anyhow::Result<u64> {
        let score = score_for(worker, seq);
        let now = chrono::Utc::now().timestamp_micros();
        let insert = Query::insert()
            .into_table("responses")
            .columns(RESPONSE_COLUMNS)
            .values([
                uuid::Uuid::now_v7().to_string().into(),
                self.tenant_id.to_string().into(),
                self.survey_id.to_string().into(),
                self.customer_id.to_string().into(),
                "nps".into(),
                score.into(),
                nps_bucket(score).into(),
                10.into(),
                COMMENT.into(),
                "{}".into(),
                now.into(),
                now.into(),
            ])?
            .to_owned();
        self.conn.execute(&insert).await?;
        Ok(1)
    }
}

// ---------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------

/// The loads at one concurrency level.
struct Level {
    concurrency: usize,
    rapport: Sample,
    /// `GetSurvey` at the same concurrency (see [`ReadOp`]).
    reference: Sample,
    baseline: Sample,
    /// `None` when pgbench did not run at all.
    pgbench: Option<Result<PgbenchRun, String>>,
    /// The server's memory after the level; `None` for an external server.
    rss: Option<anyhow::Result<Rss>>,
}

impl Level {
    fn pgbench_tps(&self) -> Option<f64> {
        match &self.pgbench {
            Some(Ok(run)) => Some(run.tps),
            _ => None,
        }
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
    pgbench: String,
    levels: Vec<Level>,
    webhooks: Option<WebhookReport>,
}

impl Report {
    fn print(&self) {
        println!(
            "rapport-bench records: {} at {}, pool {} connections, {} s per level after {} s warm-up; server {}",
            backend_name(self.backend),
            self.database,
            self.pool,
            self.measure.as_secs(),
            self.warmup.as_secs(),
            self.server
        );
        println!("command: {}", self.command);
        println!("{}", self.pgbench);
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
                if s.all_errors() > 0 {
                    println!(
                        "ERRORS at c={}: {} {what} calls failed in the measured window, {} in the warm-up; first error: {}",
                        l.concurrency,
                        s.errors,
                        s.warmup_errors,
                        s.first_error.as_deref().unwrap_or("-")
                    );
                }
            }
            if let Some(Err(e)) = &l.pgbench {
                println!("ERRORS at c={}: pgbench: {e}", l.concurrency);
            }
        }
        println!("targets:");
        for line in self.targets() {
            println!("  {line}");
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
            "pgbench tps",
            "vs pgbench",
            "GetSurvey vs pgbench",
            "server RSS MiB",
        ];
        let mut rows = vec![header.iter().map(|h| h.to_string()).collect()];
        for l in &self.levels {
            let pg = l.pgbench_tps().unwrap_or(0.0);
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
                ratio(l.rapport.rate(), l.baseline.rate()),
                format!("{:.0}", l.reference.rate()),
                ratio(l.reference.rate(), l.baseline.rate()),
                l.pgbench_tps().map_or_else(|| "-".into(), |t| format!("{t:.0}")),
                ratio(l.rapport.rate(), pg),
                ratio(l.reference.rate(), pg),
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

    /// One line per target: its figure in this run and MET or MISSED.
    fn targets(&self) -> Vec<String> {
        let caveat = if self.backend == DbBackend::Postgres { "" } else { " (this run is not PostgreSQL)" };
        let at = |c: usize| self.levels.iter().find(|l| l.concurrency == c);
        let mut out = Vec::new();
        for (what, target, pick) in [
            ("RecordResponse", PGBENCH_RECORD_TARGET, (|l: &Level| l.rapport.rate()) as fn(&Level) -> f64),
            ("GetSurvey", PGBENCH_READ_TARGET, |l: &Level| l.reference.rate()),
        ] {
            let goal = format!("{what} at c={TARGET_CONCURRENCY} ≥ {target}× pgbench");
            out.push(match at(TARGET_CONCURRENCY) {
                None => format!("{goal}: not measured (no c={TARGET_CONCURRENCY} level in this run)"),
                Some(l) => match (&l.pgbench, l.pgbench_tps()) {
                    (_, Some(tps)) if tps > 0.0 => {
                        let r = pick(l) / tps;
                        format!("{goal}: {r:.2}× ({:.0} req/s against {tps:.0} tps): {}", pick(l), verdict(r >= target))
                    }
                    (Some(Err(e)), _) => format!("{goal}: not measured (pgbench failed: {e})"),
                    _ => format!("{goal}: not measured ({})", self.pgbench.trim_start_matches("pgbench: ")),
                },
            });
        }
        let goal = format!("RecordResponse at c=1 p50 ≤ {} ms", LONE_P50_TARGET.as_secs_f64() * 1e3);
        out.push(match at(1).and_then(|l| l.rapport.p(50.0)) {
            Some(p50) => format!("{goal}: {} ms: {}{caveat}", ms(Some(p50)), verdict(p50 <= LONE_P50_TARGET)),
            None => format!("{goal}: not measured (no c=1 level, or no call succeeded)"),
        });
        let errors: u64 = self
            .levels
            .iter()
            .map(|l| {
                l.rapport.all_errors()
                    + l.reference.all_errors()
                    + l.baseline.all_errors()
                    + match &l.pgbench {
                        Some(Ok(run)) => run.failed,
                        Some(Err(_)) => 1,
                        None => 0,
                    }
            })
            .sum();
        out.push(format!("no errors at any level: {errors} errors: {}", verdict(errors == 0)));
        out
    }

    /// The last line: whether c=64 meets the target against the bench's own baseline.
    fn verdict(&self) -> String {
        let goal = format!("target: ≥ {BASELINE_TARGET}× the baseline at c={TARGET_CONCURRENCY} on PostgreSQL");
        let Some(level) = self.levels.iter().find(|l| l.concurrency == TARGET_CONCURRENCY) else {
            return format!("{goal}: not measured (no c={TARGET_CONCURRENCY} level in this run)");
        };
        let caveat = if self.backend == DbBackend::Postgres { "" } else { " (this run is not PostgreSQL)" };
        let errors = if level.rapport.errors + level.baseline.errors > 0 { ", with errors" } else { "" };
        let base = level.baseline.rate();
        if base <= 0.0 {
            return format!("{goal}: unknown (the baseline completed no inserts){caveat}");
        }
        let r = level.rapport.rate() / base;
        let met = if r >= BASELINE_TARGET { "MET" } else { "NOT MET" };
        format!("{goal}: {met} at {r:.2}×{errors}{caveat}")
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

/// Deliveries not made yet, read from the server's database.
async fn pending_deliveries(conn: &DatabaseConnection) -> anyhow::Result<i64> {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'pending'",
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
async fn webhook_phase(
    server: &Server,
    db: &DbTarget,
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
    let with = drive(&op, top, warmup, measure).await?;
    // Let the dispatcher drain what the load queued (bounded: report what is left).
    let conn = db.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut left = pending_deliveries(&conn).await?;
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = pending_deliveries(&conn).await?;
    }
    let _ = conn.close().await;
    let delivered = counts.hits.load(std::sync::atomic::Ordering::Relaxed);
    let last = counts.last.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(started);
    receiver.abort();
    Ok(WebhookReport { concurrency: top, without, with, delivered, delivering_for: last - started, left_pending: left })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_cycle_through_the_nps_scale() {
        let scores: Vec<i32> = (0..11).map(|seq| score_for(3, seq)).collect();
        let mut sorted = scores.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..=10).collect::<Vec<_>>());
    }

    #[test]
    fn buckets_follow_the_nps_definition() {
        let buckets: Vec<&str> = (0..=10).map(nps_bucket).collect();
        assert_eq!(buckets[..7], ["detractor"; 7]);
        assert_eq!(buckets[7..9], ["passive"; 2]);
        assert_eq!(buckets[9..], ["promoter"; 2]);
    }
}
