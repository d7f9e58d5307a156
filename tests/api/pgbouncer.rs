//! rapport behind a real PgBouncer in transaction mode (docs/operations.md#behind-pgbouncer):
//! a PgBouncer process of the test's own, with two server connections per database, so
//! the service's client connections really share them and consecutive statements of one
//! client run on different server sessions. Migrations from an empty database, answers
//! written in batches at 32 at once, activity batches, reads, a failing commit, a frozen
//! PgBouncer, and the statement-level error path, all through it; and the failure the
//! pooler setting prevents, shown on the same PgBouncer.
//!
//! [`PgBouncer`] is public for other tests (several servers behind one PgBouncer). It
//! needs the `pgbouncer` binary (Debian: `apt-get install pgbouncer`): without it the
//! tests are skipped with a message, and fail with `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rapport::store::DbSettings;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use tokio::task::JoinSet;
use tonic::Code;

use crate::engagement::{engagement, metrics as engagement_metrics, record_ok, session, val};
use crate::helpers::*;

/// A PgBouncer (`pool_mode = transaction`, [`PgBouncer::POOL_SIZE`] server connections)
/// in front of one PostgreSQL database of its own, on a free loopback port. Dropping it
/// stops the process and drops the database, so drop the servers using it first.
pub struct PgBouncer {
    /// The database through PgBouncer.
    pub url: String,
    /// The same database, directly (to prepare it or look at rows behind the service).
    pub direct_url: String,
    /// The database's name.
    pub database: String,
    admin: String,
    child: Child,
    dir: tempfile::TempDir,
    _permit: Option<tokio::sync::SemaphorePermit<'static>>,
}

impl PgBouncer {
    /// Server connections per database and user: fewer than the service's clients.
    pub const POOL_SIZE: u32 = 2;

    /// A new, empty database (no migration) behind a new PgBouncer. `None` (after saying
    /// why) when `pgbouncer` is not installed, unless `CI=true`, where that fails the test.
    pub async fn empty() -> Option<PgBouncer> {
        let binary = pgbouncer_binary()?;
        let permit = PG_DATABASES.acquire().await.expect("the semaphore is never closed");
        let admin = pg_admin_url();
        let name = format!("rapport_t_{}", uuid::Uuid::now_v7().simple());
        let conn = Database::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
        conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create the database");
        let _ = conn.close().await;
        Some(Self::start(&binary, name, admin, Some(permit), "").await)
    }

    /// A new migrated database (from the tests' template) behind a new PgBouncer; `None`
    /// as for [`PgBouncer::empty`].
    pub async fn migrated() -> Option<PgBouncer> {
        Self::migrated_with("").await
    }

    /// Like [`PgBouncer::migrated`], with more `[pgbouncer]` settings (ini lines).
    pub async fn migrated_with(settings: &str) -> Option<PgBouncer> {
        let binary = pgbouncer_binary()?;
        let ((_, _, pg), permit) = fresh_database_permitted(Backend::Postgres).await;
        let (name, admin) = pg.expect("a PostgreSQL database");
        Some(Self::start(&binary, name, admin, permit, settings).await)
    }

    /// The service's database settings through this PgBouncer: `transaction_pooler` on
    /// (RAPPORT_DB_POOLER=transaction), more client connections than server connections.
    pub fn settings(&self) -> DbSettings {
        DbSettings {
            max_connections: 6,
            acquire_timeout: Duration::from_secs(5),
            transaction_pooler: true,
            ..DbSettings::new(self.url.clone())
        }
    }

    /// A server on this database through PgBouncer, calling with `key` (none: a new
    /// tenant `acme`'s).
    pub async fn spawn_app(
        &self,
        key: Option<String>,
        adjust: impl FnOnce(&mut rapport::config::ServeArgs),
    ) -> TestApp {
        spawn_app_with_db(Backend::Postgres, self.settings(), key, adjust).await
    }

    /// Freezes PgBouncer (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused PgBouncer go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let status = Command::new("kill").args([which, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill {which} PgBouncer");
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    async fn start(
        binary: &Path,
        database: String,
        admin: String,
        permit: Option<tokio::sync::SemaphorePermit<'static>>,
        settings: &str,
    ) -> PgBouncer {
        let server = url::Url::parse(&admin).expect("RAPPORT_TEST_POSTGRES_URL is a URL");
        let host = server.host_str().unwrap_or("127.0.0.1").to_owned();
        let user = if server.username().is_empty() { "postgres".to_owned() } else { server.username().to_owned() };
        let password = server.password().map(|p| format!(" password={p}")).unwrap_or_default();
        let dir = tempfile::tempdir().expect("a temp dir");
        let auth = dir.path().join("users.txt");
        std::fs::write(&auth, format!("\"{user}\" \"\"\n")).expect("the auth file");
        // A port taken by someone else between looking and listening: try another.
        for _ in 0..5 {
            let port = free_port();
            let ini = format!(
                "[databases]\n\
                 {database} = host={host} port={pg_port} dbname={database} user={user}{password}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool}\n\
                 max_client_conn = 200\n\
                 admin_users = {user}\n\
                 ; a deadlock on the pool fails the test instead of hanging it\n\
                 query_wait_timeout = 20\n\
                 {settings}\n",
                pg_port = server.port().unwrap_or(5432),
                auth = auth.display(),
                pool = Self::POOL_SIZE,
            );
            let ini_path = dir.path().join("pgbouncer.ini");
            std::fs::write(&ini_path, ini).expect("the ini file");
            let log_path = dir.path().join("pgbouncer.log");
            let log = std::fs::File::create(&log_path).expect("the log file");
            let mut command = Command::new(binary);
            // PgBouncer refuses to run as root; it reads its files, then switches user.
            if running_as_root() {
                command.args(["-u", "postgres"]);
            }
            let mut child = command
                .arg(&ini_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            if listening(&mut child, port, &log_path).await {
                return PgBouncer {
                    url: format!("postgres://{user}@127.0.0.1:{port}/{database}"),
                    direct_url: with_database(&admin, &database),
                    database,
                    admin,
                    child,
                    dir,
                    _permit: permit,
                };
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(log.contains("Address already in use"), "PgBouncer did not start:\n{log}");
        }
        panic!("no free port for PgBouncer after 5 tries")
    }
}

impl Drop for PgBouncer {
    /// Stops PgBouncer, then drops the database (closing its connections).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (name, admin) = (self.database.clone(), self.admin.clone());
        // Drop runs outside async; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(drop_database(&name, &admin));
            Some(())
        })
        .join();
    }
}

/// Whether PgBouncer listens on `port` (within 10 s); `false` once it exited.
async fn listening(child: &mut Child, port: u16, log: &Path) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        if child.try_wait().expect("the PgBouncer process").is_some() {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("PgBouncer did not listen within 10 s:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port nobody listens on (now).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("an address").port()
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The `pgbouncer` binary: on the PATH or where Debian puts it (/usr/sbin). Missing, it
/// is `None` after saying so, or a failure with `CI=true`.
fn pgbouncer_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file());
    if found.is_none() {
        let why = "pgbouncer is not installed (Debian: apt-get install pgbouncer)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}; with CI=true the PgBouncer tests must run");
        eprintln!("skipped: {why}");
    }
    found
}

/// A direct answer of `customer` to `survey`, as a request.
fn answer(survey: &str, customer: &str, score: i32, comment: &str) -> pb::RecordResponseRequest {
    pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
            survey_id: survey.into(),
            customer_id: customer.into(),
        })),
        score: Some(score),
        comment: comment.into(),
        ..Default::default()
    }
}

/// Sends every request with at most `at_once` in flight; the results in request order.
async fn record_all(
    app: &TestApp,
    requests: Vec<pb::RecordResponseRequest>,
    at_once: usize,
) -> Vec<Result<pb::Response, tonic::Status>> {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut calls = JoinSet::new();
    for (i, req) in requests.into_iter().enumerate() {
        let (mut client, slots) = (app.surveys.clone(), slots.clone());
        calls.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            (i, client.record_response(req).await.map(|r| r.into_inner()))
        });
    }
    let mut results: Vec<_> = calls.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The number of rows `sql` counts, asked of PostgreSQL directly.
async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.expect(sql).expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_migrates_writes_in_batches_and_reads_behind_pgbouncer_in_transaction_mode() {
    let Some(bouncer) = PgBouncer::empty().await else { return };
    // An empty database: the server migrates it through PgBouncer.
    let app = bouncer.spawn_app(None, |_| {}).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await;

    // Answers 32 at a time: the batched writer groups them.
    const ANSWERS: usize = 192;
    let score = |i: usize| (i % 11) as i32;
    let requests = (0..ANSWERS).map(|i| answer(&survey.id, &format!("c{i}"), score(i), "")).collect();
    let results = record_all(&app, requests, 32).await;
    let failed: Vec<_> = results.iter().enumerate().filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e))).collect();
    assert!(failed.is_empty(), "{} of {ANSWERS} answers failed: {failed:?}\n{}", failed.len(), bouncer.log());
    for (i, r) in results.iter().enumerate() {
        let r = r.as_ref().unwrap();
        assert_eq!(
            (r.customer_id.as_str(), r.score),
            (format!("c{i}").as_str(), score(i)),
            "each caller gets its own answer"
        );
        assert_eq!(!r.follow_up_id.is_empty(), score(i) <= 6, "a detractor's answer opens a follow-up: {r:?}");
    }
    let batches =
        crate::observability::histogram(&crate::observability::scrape(&app).await, "rapport_response_batch_size", &[]);
    let written_in_batches = batches.last().expect("a +Inf bucket").1;
    let alone = batches.first().expect("a bucket of 1").1;
    assert!(alone < written_in_batches, "some batches held more than one answer: {batches:?}");

    // Reads, through PgBouncer, see exactly what was written.
    let scores: Vec<i32> = (0..ANSWERS).map(score).collect();
    let (promoters, detractors) =
        (scores.iter().filter(|&&s| s >= 9).count() as i64, scores.iter().filter(|&&s| s <= 6).count() as i64);
    let metrics = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.id.clone())),
            ..Default::default()
        })
        .await
        .expect("metrics")
        .into_inner();
    let summary = metrics.summary.expect("a summary");
    assert_eq!(summary.n, ANSWERS as i64);
    let nps = 100.0 * (promoters - detractors) as f64 / ANSWERS as f64;
    assert!((summary.headline.expect("an NPS") - nps).abs() < 1e-9, "{summary:?}");
    assert_eq!(app.all_responses().await.len(), ANSWERS);
    assert_eq!(app.all_follow_ups().await.len() as i64, detractors);

    // Activity in batches of 250, four at once; a resent batch counts once.
    let now = app.clock.now();
    let batch = |b: usize| -> Vec<pb::ActivityEvent> {
        (0..250).map(|i| session(&format!("m{b}-{i}"), &format!("u{}", i % 50), now, 60)).collect()
    };
    let mut sends = JoinSet::new();
    for b in 0..4 {
        let mut c = engagement(&app, None);
        let events = batch(b);
        sends.spawn(async move { record_ok(&mut c, events).await });
    }
    sends.join_all().await;
    let mut c = engagement(&app, None);
    let again = c.record_events(pb::RecordEventsRequest { events: batch(0) }).await.expect("resend").into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 250));
    assert_eq!(val(&engagement_metrics(&mut c, 7, None).await.dau), 50.0, "50 customers active today");

    // A transaction that fails: two answers to one invitation at once, one wins.
    let token = app.issue(&survey.id, "invited").await.token;
    let by_token = |score| pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Token(token.clone())),
        score: Some(score),
        ..Default::default()
    };
    let both = record_all(&app, vec![by_token(9), by_token(3)], 2).await;
    assert_eq!(both.iter().filter(|r| r.is_ok()).count(), 1, "{both:?}");
    let detractor_won = both[1].is_ok();
    let lost = both.into_iter().find_map(Result::err).expect("one lost");
    assert_eq!(lost.code(), Code::AlreadyExists, "{lost:?}");

    // And the rows behind it all, counted on PostgreSQL itself.
    let direct = Database::connect(&bouncer.direct_url).await.expect("PostgreSQL");
    assert_eq!(count(&direct, "SELECT count(*) FROM responses").await, ANSWERS as i64 + 1);
    assert_eq!(count(&direct, "SELECT count(*) FROM follow_ups").await, detractors + i64::from(detractor_won));
    let _ = direct.close().await;
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_acknowledged_only_once_its_commit_succeeded() {
    let Some(bouncer) = PgBouncer::migrated().await else { return };
    // A check PostgreSQL makes only at COMMIT: a deferred trigger refusing one comment.
    let direct = Database::connect(&bouncer.direct_url).await.expect("PostgreSQL");
    direct
        .execute_unprepared(
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.comment = 'refused' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON responses \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()",
        )
        .await
        .expect("the trigger");
    let app = bouncer.spawn_app(None, |_| {}).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await;

    // 64 answers, 32 at once, the refused ones among them: their batches fail at COMMIT.
    let refused = |i: usize| i % 16 == 5;
    let requests =
        (0..64).map(|i| answer(&survey.id, &format!("c{i}"), 9, if refused(i) { "refused" } else { "fine" })).collect();
    let results = record_all(&app, requests, 32).await;
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(_) => assert!(!refused(i), "answer {i} was acknowledged though its COMMIT failed"),
            Err(e) => {
                assert!(refused(i), "answer {i} failed though nothing refused it: {e:?}");
                assert_eq!(e.code(), Code::Internal, "{e:?}");
            }
        }
    }
    let kept = (0..64).filter(|&i| !refused(i)).count() as i64;
    assert_eq!(count(&direct, "SELECT count(*) FROM responses WHERE comment = 'fine'").await, kept);
    assert_eq!(count(&direct, "SELECT count(*) FROM responses WHERE comment = 'refused'").await, 0);
    let _ = direct.close().await;
    drop(app);
}

/// The value of `sql` (one int4 parameter, one int4 column) on `db`.
async fn int(db: &DatabaseConnection, sql: &str, param: i32) -> Result<i32, sea_orm::DbErr> {
    let row = db.query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [Value::from(param)])).await?;
    Ok(row.expect("a row").try_get_by_index::<i32>(0).expect("an int4"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_gives_its_server_connection_back_and_its_connection_stays_usable() {
    // One server connection: a client that kept it would stall the other.
    let Some(bouncer) = PgBouncer::migrated_with("default_pool_size = 1\nquery_wait_timeout = 5").await else {
        return;
    };
    let direct = Database::connect(&bouncer.direct_url).await.expect("PostgreSQL");
    direct.execute_unprepared("CREATE TYPE mood AS ENUM ('calm', 'busy')").await.expect("a type");
    let _ = direct.close().await;
    let one = DbSettings { max_connections: 1, ..bouncer.settings() };
    let (a, b) = (
        rapport::store::Db::connect(&one).await.expect("through PgBouncer"),
        rapport::store::Db::connect(&one).await.expect("through PgBouncer"),
    );

    // Refused at Parse: the server skips to the Sync the client then owes.
    let err = int(a.conn(), "SELECT $1::int4 FROM no_such_table", 1).await.unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
    assert_eq!(int(b.conn(), "SELECT $1::int4 + 1", 41).await.expect("the other client"), 42);
    assert_eq!(int(a.conn(), "SELECT $1::int4 * 2", 21).await.expect("the same client"), 42);

    // Refused at Execute, after Bind.
    let err = int(a.conn(), "SELECT 1 / $1::int4", 0).await.unwrap_err();
    assert!(err.to_string().contains("division by zero"), "{err}");
    assert_eq!(int(b.conn(), "SELECT $1::int4 - 1", 43).await.expect("the other client"), 42);

    // A result type the driver does not know: it ends the parse, looks the type up and
    // parses again; then again with the type known.
    for _ in 0..2 {
        let sql = "SELECT $1::int4 + 1, 'busy'::mood";
        assert_eq!(int(a.conn(), sql, 41).await.expect("an enum column"), 42);
        assert_eq!(int(b.conn(), "SELECT $1::int4", 42).await.expect("the other client"), 42);
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pooler_setting_prepared_statements_break_behind_pgbouncer() {
    // Ignoring the startup parameters rapport sends unless told of the pooler.
    let Some(bouncer) = PgBouncer::migrated_with("ignore_startup_parameters = extra_float_digits, options").await
    else {
        return;
    };
    // Three clients, each with its own statement, over two server connections: at least
    // two of them prepare their first statement, `sqlx_s_1`, on the same session.
    let rounds = |settings: DbSettings| async move {
        let mut clients = Vec::new();
        for (sql, f) in [("SELECT $1::int4 + 1", 0), ("SELECT $1::int4 * 100", 1), ("SELECT $1::int4 - 7", 2)] {
            clients.push((rapport::store::Db::connect(&settings).await.expect("through PgBouncer"), sql, f));
        }
        let want = |f: i32, i: i32| [i + 1, i * 100, i - 7][f as usize];
        let mut wrong = Vec::new();
        for i in 0..10 {
            for (db, sql, f) in &clients {
                match int(db.conn(), sql, i).await {
                    Ok(got) if got == want(*f, i) => {}
                    Ok(got) => wrong.push(format!("{sql} with {i}: {got}")),
                    Err(e) => wrong.push(format!("{sql} with {i}: {e}")),
                }
            }
        }
        for (db, _, _) in clients {
            db.close().await;
        }
        wrong
    };
    // Named, cached statements: each client's are on whichever session it had, where
    // another client's statement of the same name may be.
    let plain = DbSettings { max_connections: 1, transaction_pooler: false, ..bouncer.settings() };
    let wrong = rounds(plain).await;
    assert!(
        wrong.iter().any(|w| w.contains("prepared statement \"sqlx_s_1\" already exists")),
        "without the pooler setting, named statements meet on shared sessions: {wrong:#?}"
    );
    let pooled = DbSettings { max_connections: 1, ..bouncer.settings() };
    assert_eq!(rounds(pooled).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_not_told_of_pgbouncer_does_not_start_and_says_what_to_set() {
    let Some(bouncer) = PgBouncer::empty().await else { return };
    let plain = DbSettings { transaction_pooler: false, acquire_timeout: Duration::from_secs(2), ..bouncer.settings() };
    let Err(err) = rapport::store::Db::connect(&plain).await else {
        panic!("PgBouncer accepted the startup options");
    };
    let err = format!("{err:#}");
    assert!(err.contains("unsupported startup parameter"), "{err}");
    assert!(err.contains("set RAPPORT_DB_POOLER=transaction"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_acknowledged_while_pgbouncer_stalls_are_all_written() {
    let Some(bouncer) = PgBouncer::migrated().await else { return };
    let settings = DbSettings { batch_timeout: Duration::from_secs(1), ..bouncer.settings() };
    let app = spawn_app_with_db(Backend::Postgres, settings, None, |_| {}).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await;

    // 96 answers, 16 at once; PgBouncer freezes for 3 s once 16 are acknowledged, so
    // batches stall in every step — begin, statements, commit — and time out.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let requests: Vec<_> = (0..96).map(|i| answer(&survey.id, &format!("c{i}"), 9, "")).collect();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut calls = JoinSet::new();
    for (i, req) in requests.into_iter().enumerate() {
        let (mut client, slots, acked) = (app.surveys.clone(), slots.clone(), acked.clone());
        calls.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let r = client.record_response(req).await.map(|r| r.into_inner());
            if r.is_ok() {
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (i, r)
        });
    }
    let counted = acked.clone();
    assert!(
        eventually(Duration::from_secs(30), || {
            let n = counted.load(std::sync::atomic::Ordering::Relaxed);
            async move { n >= 16 }
        })
        .await,
        "16 answers acknowledged"
    );
    bouncer.pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    bouncer.resume();
    let results = calls.join_all().await;

    // Every acknowledged answer is there; a failed one may be too (its COMMIT may have
    // gone through before the timeout), never the other way round.
    let direct = Database::connect(&bouncer.direct_url).await.expect("PostgreSQL");
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (i, r) in &results {
        if let Ok(r) = r {
            let sql = format!("SELECT count(*) FROM responses WHERE id = '{}'", r.id);
            assert_eq!(count(&direct, &sql).await, 1, "answer {i} was acknowledged but not written");
        }
    }
    // The stall did reach the writer: its batches timed out, their callers heard so.
    assert!(failed > 0, "no answer failed while PgBouncer was frozen for 3 s");
    for (i, r) in &results {
        if let Err(e) = r {
            assert_eq!(e.code(), Code::Unavailable, "answer {i}: {e:?}");
        }
    }
    let _ = direct.close().await;
    drop(app);
}
