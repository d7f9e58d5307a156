//! The test harness: a fresh database per test (SQLite temp file or a new PostgreSQL
//! database), the real server on a random loopback port, and typed tonic clients.

use std::time::Duration;

use rapport::app::Application;
use rapport::config::ServeArgs;
use rapport::grpc::pb::follow_up_service_client::FollowUpServiceClient;
use rapport::grpc::pb::survey_service_client::SurveyServiceClient;
use rapport::service::{Clock, Services};
use rapport::store::DbSettings;
use sea_orm::{ConnectionTrait, Database};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;

pub use rapport::grpc::pb;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Adds `authorization: Bearer <key>` to every call (no key: nothing).
#[derive(Clone)]
pub struct Auth(pub Option<String>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(k) = &self.0 {
            let v: MetadataValue<_> = format!("Bearer {k}").parse().map_err(|_| Status::internal("bad key"))?;
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

pub type Surveys = SurveyServiceClient<InterceptedService<Channel, Auth>>;
pub type FollowUps = FollowUpServiceClient<InterceptedService<Channel, Auth>>;

/// A running server with its own database.
#[allow(dead_code)] // not every field is read by some test
pub struct TestApp {
    /// The admin HTTP listener (Prometheus `/metrics`).
    pub admin_addr: std::net::SocketAddr,
    /// The HTTP gateway's base URL, `http://127.0.0.1:<port>`.
    pub http: String,
    pub channel: Channel,
    /// A secret key of the tenant `acme`.
    pub key: String,
    pub surveys: Surveys,
    pub follow_ups: FollowUps,
    pub health: HealthClient<Channel>,
    pub clock: Clock,
    pub services: Services,
    /// PostgreSQL: the test's own database name; its admin URL.
    pub pg: Option<(String, String)>,
    /// The database URL, for a second server on the same database.
    pub db_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    /// Released after the database is dropped (declared last: dropped last).
    _permit: Option<tokio::sync::SemaphorePermit<'static>>,
}

/// The URL of the PostgreSQL server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("RAPPORT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub(crate) fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a PostgreSQL URL ends in /<database>");
    format!("{base}/{db}")
}

/// At most this many PostgreSQL test databases are in use at once, whatever the number
/// of test threads: with 4 connections a server and at most three servers a test, a
/// many-core machine stays under PostgreSQL's default 100 connections.
pub(crate) static PG_DATABASES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

pub(crate) async fn fresh_database_permitted(
    backend: Backend,
) -> ((String, Option<tempfile::TempDir>, Option<(String, String)>), Option<tokio::sync::SemaphorePermit<'static>>) {
    let permit = match backend {
        Backend::Postgres => Some(PG_DATABASES.acquire().await.expect("the semaphore is never closed")),
        Backend::Sqlite => None,
    };
    (fresh_database(backend).await, permit)
}

/// A fresh database for one test (PostgreSQL: migrated, from the template).
async fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>, Option<(String, String)>) {
    new_database(backend, true).await
}

/// A database of its own, not migrated: (URL, the directory to keep, the PostgreSQL
/// database's name and admin URL to drop it with).
pub async fn empty_database(backend: Backend) -> (String, Option<tempfile::TempDir>, Option<(String, String)>) {
    new_database(backend, false).await
}

async fn new_database(
    backend: Backend,
    migrated: bool,
) -> (String, Option<tempfile::TempDir>, Option<(String, String)>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("rapport.db").display());
            (url, Some(dir), None)
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let conn = match Database::connect(&admin).await {
                Ok(c) => c,
                Err(e) => panic!(
                    "PostgreSQL is not reachable at {admin} ({e}). Start it with \
                     `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                     or point RAPPORT_TEST_POSTGRES_URL at one."
                ),
            };
            let name = format!("rapport_t_{}", uuid::Uuid::now_v7().simple());
            let create = if migrated {
                let template = migrated_template(&conn, &admin).await;
                format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")
            } else {
                format!("CREATE DATABASE \"{name}\"")
            };
            conn.execute_unprepared(&create).await.expect("create test database");
            let _ = conn.close().await;
            (with_database(&admin, &name), None, Some((name, admin)))
        }
    }
}

/// A database with every migration applied, made once per version of the migrations
/// (its name carries a hash of migrations/src) and cloned by `CREATE DATABASE …
/// TEMPLATE` for each test, instead of migrating every test's database. Concurrent test
/// processes take an advisory lock to build it; a template is complete once renamed to
/// its final name.
async fn migrated_template(conn: &sea_orm::DatabaseConnection, admin: &str) -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let name = TEMPLATE.get_or_init(|| async { format!("rapport_tpl_{:016x}", migrations_hash()) }).await.clone();
    let exists = |c: &sea_orm::DatabaseConnection, n: String| {
        let c = c.clone();
        async move {
            let sql = format!("SELECT 1 AS one FROM pg_database WHERE datname = '{n}'");
            c.query_one_raw(sea_orm::Statement::from_string(c.get_database_backend(), sql)).await.unwrap().is_some()
        }
    };
    if exists(conn, name.clone()).await {
        return name;
    }
    // One connection holds the lock while it builds; session locks need one session.
    let lock = Database::connect(admin).await.expect("connect for the template lock");
    lock.execute_unprepared("SELECT pg_advisory_lock(727272)").await.expect("template lock");
    if !exists(&lock, name.clone()).await {
        let building = format!("{name}_building");
        lock.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).await.unwrap();
        lock.execute_unprepared(&format!("CREATE DATABASE \"{building}\"")).await.expect("create the template");
        let db = rapport::store::Db::connect(&DbSettings::new(with_database(admin, &building))).await.unwrap();
        db.migrate().await.expect("migrate the template");
        db.close().await;
        lock.execute_unprepared(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")).await.unwrap();
    }
    lock.execute_unprepared("SELECT pg_advisory_unlock(727272)").await.expect("template unlock");
    let _ = lock.close().await;
    name
}

/// FNV-1a over the migrations' sources, in file-name order.
fn migrations_hash() -> u64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/src");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("migrations/src").map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut h: u64 = 0xcbf29ce484222325;
    for f in files {
        for b in f.file_name().unwrap().as_encoded_bytes().iter().chain(&std::fs::read(&f).unwrap()) {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Starts the real server on 127.0.0.1:0 over a fresh database, with a tenant `acme`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the server settings.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let ((url, dir, pg), permit) = fresh_database_permitted(backend).await;
    let mut app = start(backend, url, None, |a, _| adjust(a)).await;
    app.pg = pg;
    app._dir = dir;
    app._permit = permit;
    app
}

/// Another server on the database of an existing test app (as a second replica),
/// calling with `key`. It leaves the database alone when dropped.
pub async fn spawn_app_on(
    backend: Backend,
    db_url: String,
    key: String,
    adjust: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    start(backend, db_url, Some(key), |a, _| adjust(a)).await
}

/// `n` servers — replicas — on one fresh database, as a deployment runs them: the
/// first creates the tenant `acme`, and every one calls with its secret key. Each
/// server's settings pass through `adjust(i, serve, db)` first (`i` from 0): e.g. a
/// Redis URL for all, a `DATABASE_URL` through a pooler with `direct_url` set to
/// PostgreSQL itself. `replicas[i]` is the `i`-th; the database goes when they are
/// dropped, the last server first.
pub async fn spawn_replicas(
    backend: Backend,
    n: usize,
    adjust: impl Fn(usize, &mut ServeArgs, &mut DbSettings),
) -> Replicas {
    assert!(n >= 1, "at least one server");
    let ((url, dir, pg), permit) = fresh_database_permitted(backend).await;
    let mut first = start(backend, url.clone(), None, |a, d| adjust(0, a, d)).await;
    first.pg = pg;
    first._dir = dir;
    first._permit = permit;
    let key = first.key.clone();
    let mut apps = vec![first];
    for i in 1..n {
        apps.push(start(backend, url.clone(), Some(key.clone()), |a, d| adjust(i, a, d)).await);
    }
    Replicas(apps)
}

/// Servers on one database ([`spawn_replicas`]); indexes like a slice.
pub struct Replicas(Vec<TestApp>);

impl std::ops::Deref for Replicas {
    type Target = [TestApp];
    fn deref(&self) -> &[TestApp] {
        &self.0
    }
}

impl Drop for Replicas {
    /// The others before the first, which owns the database.
    fn drop(&mut self) {
        while let Some(app) = self.0.pop() {
            drop(app);
        }
    }
}

/// The Redis the tests share (`RAPPORT_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`),
/// if it answers PING. Without it a test skips, saying why; with `CI=true` it fails.
pub async fn test_redis_url() -> Option<String> {
    let url = std::env::var("RAPPORT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let reachable = async {
        let addr = url.trim_start_matches("redis://").split('/').next()?.rsplit('@').next()?.to_owned();
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    };
    match tokio::time::timeout(Duration::from_secs(2), reachable).await {
        Ok(Some(())) => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "Redis is not reachable at {url} (CI=true: the shared rate-limit tests must run). Start it with \
             `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no` or point \
             RAPPORT_TEST_REDIS_URL at one."
        ),
        _ => {
            eprintln!("SKIPPED: Redis is not reachable at {url}; set RAPPORT_TEST_REDIS_URL or start redis-server");
            None
        }
    }
}

/// A key prefix in Redis of the test's own, so tests sharing one Redis do not meet.
pub fn redis_test_prefix() -> String {
    format!("rapport:test:{}:", uuid::Uuid::now_v7().simple())
}

/// Starts the real server with `db` as its database settings, calling with `key` (none:
/// a new tenant `acme`'s). It leaves the database alone when dropped.
pub async fn spawn_app_with_db(
    backend: Backend,
    db: DbSettings,
    key: Option<String>,
    adjust: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    start(backend, db.url.clone(), key, |a, d| {
        *d = db;
        adjust(a)
    })
    .await
}

async fn start(
    backend: Backend,
    url: String,
    key: Option<String>,
    adjust: impl FnOnce(&mut ServeArgs, &mut DbSettings),
) -> TestApp {
    let mut db =
        DbSettings { max_connections: 4, acquire_timeout: Duration::from_secs(2), ..DbSettings::new(url.clone()) };
    let mut args = ServeArgs { health_interval_ms: 200, ..ServeArgs::default() };
    if backend == Backend::Postgres {
        with_test_keys(&mut args);
    }
    adjust(&mut args, &mut db);
    let clock = Clock::default();
    let app = Application::build(&db, args, clock.clone()).await.expect("the app builds");
    let addr = app.local_addr();
    let admin_addr = app.admin_addr();
    let http = format!("http://{}", app.http_addr());
    let services = app.services().clone();
    let key = match key {
        Some(k) => k,
        None => services.create_tenant("acme").await.expect("tenant").secret,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connect");
    let _ = (backend, addr);
    TestApp {
        admin_addr,
        http,
        surveys: SurveyServiceClient::with_interceptor(channel.clone(), Auth(Some(key.clone()))),
        follow_ups: FollowUpServiceClient::with_interceptor(channel.clone(), Auth(Some(key.clone()))),
        health: HealthClient::new(channel.clone()),
        channel,
        key,
        clock,
        services,
        pg: None,
        db_url: url,
        stop: Some(stop),
        server: Some(server),
        _dir: None,
        _permit: None,
    }
}

/// `GET url` on the gateway with the app's secret key; the answer as JSON.
pub async fn get_json(app: &TestApp, url: &str) -> serde_json::Value {
    reqwest::Client::new().get(url).bearer_auth(&app.key).send().await.unwrap().json().await.unwrap()
}

/// `POST url` (no body) on the gateway with the app's secret key; the answer as JSON.
pub async fn post_json(app: &TestApp, url: &str) -> serde_json::Value {
    reqwest::Client::new().post(url).bearer_auth(&app.key).send().await.unwrap().json().await.unwrap()
}

/// The key that seals secrets in tests on PostgreSQL, where one must be configured
/// (SQLite tests use the key file the server creates beside the database).
pub const TEST_SECRET_KEYS: &str = "test1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Configures [`TEST_SECRET_KEYS`] as RAPPORT_SECRET_KEYS.
pub fn with_test_keys(args: &mut ServeArgs) {
    args.secrets.secret_keys = Some(TEST_SECRET_KEYS.into());
}

/// Webhook and worker settings for tests: loopback receivers allowed, short retries,
/// fast polling, no settle window.
pub fn fast_outbox(args: &mut ServeArgs) {
    let o = &mut args.outbox;
    o.webhook_allow_private = true;
    o.webhook_allow_http_hosts = vec!["127.0.0.1".into()];
    o.webhook_retry_schedule = "0s,100ms,100ms,100ms,100ms".into();
    o.webhook_timeout_seconds = 2;
    o.webhook_settle_seconds = 0;
    o.worker_poll_ms = 50;
    o.sla_check_ms = 50;
}

impl TestApp {
    /// A survey client that sends `key` (or none).
    pub fn surveys_as(&self, key: Option<&str>) -> Surveys {
        SurveyServiceClient::with_interceptor(self.channel.clone(), Auth(key.map(str::to_owned)))
    }

    pub fn follow_ups_as(&self, key: Option<&str>) -> FollowUps {
        FollowUpServiceClient::with_interceptor(self.channel.clone(), Auth(key.map(str::to_owned)))
    }

    /// A new publishable key (`rk_pub_…`) of the tenant `acme`.
    pub async fn publishable_key(&self) -> String {
        use rapport::domain::model::KeyKind;
        self.services.create_key("acme", KeyKind::Publishable).await.expect("publishable key").secret
    }

    /// A second tenant's secret key.
    pub async fn other_tenant_key(&self) -> String {
        self.services.create_tenant("globex").await.expect("tenant").secret
    }

    /// Creates a survey of `kind` (scale default unless given) and returns it.
    pub async fn survey(&self, kind: pb::SurveyKind, scale_max: Option<i32>) -> pb::Survey {
        self.survey_with(pb::Survey { kind: kind as i32, scale_max, ..Default::default() }).await
    }

    /// Creates a survey from `s` (question filled in if empty).
    pub async fn survey_with(&self, s: pb::Survey) -> pb::Survey {
        self.survey_as(&self.key, s).await
    }

    /// Creates a survey from `s` (question filled in if empty) with the tenant's `key`.
    pub async fn survey_as(&self, key: &str, mut s: pb::Survey) -> pb::Survey {
        if s.question.is_empty() {
            s.question = "How likely are you to recommend us?".into();
        }
        self.surveys_as(Some(key))
            .create_survey(pb::CreateSurveyRequest { survey: Some(s) })
            .await
            .expect("create survey")
            .into_inner()
    }

    /// A direct response (secret key) with `score`.
    pub async fn answer(&self, survey: &str, customer: &str, score: i32) -> Result<pb::Response, Status> {
        self.surveys
            .clone()
            .record_response(pb::RecordResponseRequest {
                target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                    survey_id: survey.into(),
                    customer_id: customer.into(),
                })),
                score: Some(score),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Issues `survey` to `customer` (no force, no key).
    pub async fn issue(&self, survey: &str, customer: &str) -> pb::IssueSurveyResponse {
        self.surveys
            .clone()
            .issue_survey(pb::IssueSurveyRequest {
                survey_id: survey.into(),
                customer_id: customer.into(),
                ..Default::default()
            })
            .await
            .expect("issue")
            .into_inner()
    }

    /// Every response of the tenant (all pages).
    pub async fn all_responses(&self) -> Vec<pb::Response> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .surveys
                .clone()
                .list_responses(pb::ListResponsesRequest { page_size: 1000, page_token: token, ..Default::default() })
                .await
                .expect("list responses")
                .into_inner();
            out.extend(page.responses);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Every customer of the tenant (all pages).
    pub async fn all_customers(&self) -> Vec<pb::Customer> {
        let mut engagement = rapport::grpc::pb::engagement_service_client::EngagementServiceClient::with_interceptor(
            self.channel.clone(),
            Auth(Some(self.key.clone())),
        );
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = engagement
                .list_customers(pb::ListCustomersRequest { page_size: 1000, page_token: token, ..Default::default() })
                .await
                .expect("list customers")
                .into_inner();
            out.extend(page.customers);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Every follow-up of the tenant (all pages).
    pub async fn all_follow_ups(&self) -> Vec<pb::FollowUp> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .follow_ups
                .clone()
                .list_follow_ups(pb::ListFollowUpsRequest { page_size: 1000, page_token: token, ..Default::default() })
                .await
                .expect("list follow-ups")
                .into_inner();
            out.extend(page.follow_ups);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    /// Takes the SQLite temp dir out, so the file outlives this app.
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    /// Stops the server at once, as a crash would: nothing is drained or finished.
    pub fn crash(mut self) {
        // Keep the stop signal from firing: dropping it would start a graceful stop.
        if let Some(s) = self.stop.take() {
            std::mem::forget(s);
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Stops the server (graceful) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.server.take() {
            Some(h) => h.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    /// Stops the server and drops the test's PostgreSQL database, so runs leave
    /// nothing behind.
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some((name, admin)) = self.pg.take() {
            // Drop runs outside async; a short-lived runtime on its own thread does the work.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(drop_database(&name, &admin));
                Some(())
            })
            .join();
        }
    }
}

/// Drops a test database, closing its connections.
pub async fn drop_database(name: &str, admin: &str) {
    if let Ok(conn) = Database::connect(admin).await {
        let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        let _ = conn.close().await;
    }
}

/// Asserts an error's code and that a `BadRequest` violation names `field`.
#[track_caller]
pub fn assert_invalid(err: &Status, field: &str) {
    use tonic_types::StatusExt;
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let details = err.get_error_details();
    let fields: Vec<String> =
        details.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
    assert!(fields.iter().any(|f| f == field), "expected a violation on {field:?}, got {fields:?}");
}

/// Asserts an error's code.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(res: Result<T, Status>, code: Code) -> Status {
    match res {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            e
        }
    }
}

/// Polls `check` until it holds or `limit` passes (for state that changes in the
/// background, such as health). Returns whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs each named scenario on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}
