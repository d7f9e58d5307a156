//! The server's life around its calls: shutdown with open streams, a database that
//! goes away (or stalls) while it serves, a full answer queue, and what start-up
//! errors say.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pb::event_service_client::EventServiceClient;
use rapport::app::Application;
use rapport::config::ServeArgs;
use rapport::service::Clock;
use rapport::store::DbSettings;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::helpers::*;

crate::on_both!(
    an_open_event_stream_ends_with_unavailable_at_shutdown_and_the_server_stops_at_once,
    a_delivery_in_flight_at_shutdown_is_finished_and_recorded,
);

/// Shutdown must not wait for open `WatchEvents` streams: they end with UNAVAILABLE
/// (clients resume from `after_sequence`), and the server stops long before its grace
/// period (30 s here) is over.
async fn an_open_event_stream_ends_with_unavailable_at_shutdown_and_the_server_stops_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |a| a.shutdown_grace_seconds = 30).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "ada", 9).await.unwrap();
    let mut events = EventServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let mut stream =
        events.watch_events(pb::WatchEventsRequest { after_sequence: 0, types: vec![] }).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
    assert!(matches!(first, Ok(Ok(Some(_)))), "the stream is open and delivering: {first:?}");

    let started = Instant::now();
    let stopping = tokio::spawn(app.stop());
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends at once, not after the grace period");
    let status = end.expect("the stream ends with a status, not as if it were complete");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("after_sequence"), "{status:?}");

    let stopped = tokio::time::timeout(Duration::from_secs(5), stopping).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "the server stopped cleanly: {stopped:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// A webhook receiver that answers 200 after `delay`, telling `seen` of each request.
async fn slow_receiver(
    delay: Duration,
    seen: tokio::sync::mpsc::UnboundedSender<()>,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                let _ = seen.send(());
                tokio::time::sleep(delay).await;
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    (
        url,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

/// Shutdown lets a worker finish the delivery it is making: the receiver's answer is
/// recorded, and nothing is sent twice.
async fn a_delivery_in_flight_at_shutdown_is_finished_and_recorded(backend: Backend) {
    let mut app = spawn_app_with(backend, |a| {
        fast_outbox(a);
        a.outbox.webhook_timeout_seconds = 10;
        a.shutdown_grace_seconds = 30;
    })
    .await;
    let (seen, mut hits) = tokio::sync::mpsc::unbounded_channel();
    let (url, receiver) = slow_receiver(Duration::from_millis(1500), seen).await;
    let mut hooks = pb::webhook_service_client::WebhookServiceClient::with_interceptor(
        app.channel.clone(),
        Auth(Some(app.key.clone())),
    );
    let endpoint = hooks
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url,
            description: "CRM".into(),
            event_types: vec!["response.recorded".into()],
            survey_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "ada", 9).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), hits.recv()).await.expect("the delivery is in flight");

    let (db_url, key) = (app.db_url.clone(), app.key.clone());
    let keep_db = app.pg.take();
    let keep_file = app.take_dir();
    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "stopped cleanly: {stopped:?}");
    assert!(started.elapsed() >= Duration::from_millis(1000), "the stop waited for the delivery");

    let second = spawn_app_on(backend, db_url, key, fast_outbox).await;
    let deliveries = pb::webhook_service_client::WebhookServiceClient::with_interceptor(
        second.channel.clone(),
        Auth(Some(second.key.clone())),
    )
    .list_deliveries(pb::ListDeliveriesRequest { endpoint_id: endpoint.id, page_size: 100, ..Default::default() })
    .await
    .unwrap()
    .into_inner()
    .deliveries;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0].status(), pb::DeliveryStatus::Succeeded, "{deliveries:?}");
    assert_eq!(deliveries[0].attempts.len(), 1, "{deliveries:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hits.try_recv().is_err(), "nothing was sent again");

    drop(second);
    drop(keep_file);
    receiver.abort();
    if let Some((name, admin)) = keep_db {
        drop_database(&name, &admin).await;
    }
}

/// A TCP proxy in front of PostgreSQL that can turn into a black hole: connections
/// stay open but nothing passes either way (a partition, a server gone without a
/// word), until it heals and closes them.
struct Proxy {
    addr: SocketAddr,
    holed: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (holed, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(Self::carry(inbound, to, rx.clone()));
            }
        });
        Proxy { addr, holed, task }
    }

    async fn carry(mut inbound: TcpStream, to: SocketAddr, mut holed: watch::Receiver<bool>) {
        if *holed.borrow() {
            let _ = holed.wait_for(|h| !*h).await;
            return;
        }
        let Ok(mut outbound) = TcpStream::connect(to).await else { return };
        let cut = tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
            r = holed.wait_for(|h| *h) => r.is_ok(),
        };
        if cut {
            // Hold both ends, silent, until healed; then close them.
            let _ = holed.wait_for(|h| !*h).await;
        }
    }

    fn black_hole(&self, on: bool) {
        self.holed.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server over a new PostgreSQL database of its own, reached through a [`Proxy`].
struct ProxiedApp {
    app: TestAppLite,
    proxy: Proxy,
    direct_url: String,
    db_name: String,
    /// The server's services, to watch its answer queue.
    services: rapport::service::Services,
}

/// The parts of a running server these tests use.
struct TestAppLite {
    channel: tonic::transport::Channel,
    key: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestAppLite {
    fn surveys(&self) -> Surveys {
        pb::survey_service_client::SurveyServiceClient::with_interceptor(
            self.channel.clone(),
            Auth(Some(self.key.clone())),
        )
    }

    async fn health(&self) -> Option<ServingStatus> {
        let mut h = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        let r = h.check(HealthCheckRequest { service: String::new() }).await.ok()?;
        ServingStatus::try_from(r.into_inner().status).ok()
    }

    async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
        }
    }
}

impl Drop for TestAppLite {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl Drop for ProxiedApp {
    fn drop(&mut self) {
        let (name, admin) = (self.db_name.clone(), pg_admin_url());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(drop_database(&name, &admin));
            Some(())
        })
        .join();
    }
}

async fn proxied_app(adjust_db: impl FnOnce(&mut DbSettings), adjust: impl FnOnce(&mut ServeArgs)) -> ProxiedApp {
    let admin = pg_admin_url();
    let conn = Database::connect(&admin).await.expect("PostgreSQL for the tests");
    let db_name = format!("rapport_t_{}", uuid::Uuid::now_v7().simple());
    conn.execute_unprepared(&format!("CREATE DATABASE \"{db_name}\"")).await.unwrap();
    let _ = conn.close().await;

    let mut url = url::Url::parse(&admin).unwrap();
    let target = tokio::net::lookup_host((url.host_str().unwrap().to_owned(), url.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    url.set_path(&format!("/{db_name}"));
    let direct_url = url.to_string();
    let proxy = Proxy::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();

    let mut db =
        DbSettings { max_connections: 4, acquire_timeout: Duration::from_secs(10), ..DbSettings::new(url.to_string()) };
    adjust_db(&mut db);
    let mut args = ServeArgs { health_interval_ms: 200, ..ServeArgs::default() };
    with_test_keys(&mut args);
    adjust(&mut args);
    let app = Application::build(&db, args, Clock::default()).await.expect("the app builds");
    let addr = app.local_addr();
    let key = app.services().create_tenant("acme").await.unwrap().secret;
    let services = app.services().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connect");
    ProxiedApp {
        app: TestAppLite { channel, key, stop: Some(stop), server: Some(server) },
        proxy,
        direct_url,
        db_name,
        services,
    }
}

async fn create_survey(surveys: &mut Surveys) -> pb::Survey {
    let survey = pb::Survey {
        kind: pb::SurveyKind::Nps as i32,
        question: "How likely are you to recommend us?".into(),
        ..Default::default()
    };
    surveys.create_survey(pb::CreateSurveyRequest { survey: Some(survey) }).await.unwrap().into_inner()
}

fn direct_answer(survey: &str, customer: &str, score: i32) -> pb::RecordResponseRequest {
    pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
            survey_id: survey.into(),
            customer_id: customer.into(),
        })),
        score: Some(score),
        ..Default::default()
    }
}

/// While the database does not answer (connections open, nothing comes back) and
/// health says NOT_SERVING, calls fail at once with UNAVAILABLE and RetryInfo instead
/// of waiting for a connection (10 s here); when it answers again, so do they.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_calls_fail_fast_with_retry_info_while_the_database_is_known_down() {
    let mut p = proxied_app(|_| {}, |_| {}).await;
    let mut surveys = p.app.surveys();
    let s = create_survey(&mut surveys).await;
    assert!(
        eventually(Duration::from_secs(10), || async { p.app.health().await == Some(ServingStatus::Serving) }).await
    );

    p.proxy.black_hole(true);
    assert!(
        eventually(Duration::from_secs(10), || async { p.app.health().await == Some(ServingStatus::NotServing) }).await,
        "health notices the outage"
    );
    for _ in 0..3 {
        let started = Instant::now();
        let read =
            tokio::time::timeout(Duration::from_secs(3), surveys.get_survey(pb::GetSurveyRequest { id: s.id.clone() }))
                .await
                .expect("answered at once, not after the acquire timeout");
        let err = read.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        assert!(err.get_details_retry_info().is_some(), "RetryInfo tells when to retry: {err:?}");

        let write =
            tokio::time::timeout(Duration::from_secs(3), surveys.record_response(direct_answer(&s.id, "ada", 9)))
                .await
                .expect("answered at once");
        assert_eq!(write.unwrap_err().code(), Code::Unavailable);
    }

    p.proxy.black_hole(false);
    assert!(
        eventually(Duration::from_secs(20), || async { p.app.health().await == Some(ServingStatus::Serving) }).await,
        "health notices the recovery by itself"
    );
    assert!(
        eventually(Duration::from_secs(15), || {
            let mut surveys = surveys.clone();
            let id = s.id.clone();
            async move { surveys.record_response(direct_answer(&id, "bob", 9)).await.is_ok() }
        })
        .await,
        "calls work again"
    );
    p.app.stop().await;
}

/// Holds `LOCK TABLE responses` in a transaction of its own until dropped or released.
async fn lock_responses(url: &str) -> sea_orm::DatabaseTransaction {
    let conn = Database::connect(url).await.unwrap();
    let txn = conn.begin().await.unwrap();
    txn.execute_unprepared("LOCK TABLE responses IN ACCESS EXCLUSIVE MODE").await.unwrap();
    txn
}

/// A batch of answers that cannot go on (here: a table locked by someone else) fails
/// with UNAVAILABLE once PostgreSQL's statement timeout cancels it, instead of holding
/// every RecordResponse of the process; the next ones are written once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_stuck_batch_ends_at_the_statement_timeout() {
    let mut p = proxied_app(
        |db| {
            db.statement_timeout = Some(Duration::from_millis(1500));
            db.batch_timeout = Duration::from_secs(60);
        },
        |_| {},
    )
    .await;
    stuck_batch_fails_then_recovers(&p).await;
    p.app.stop().await;
}

/// The same with no statement timeout: the batch's own timeout (on its begin, its
/// statements and its commit) ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_stuck_batch_ends_at_the_batch_timeout() {
    let mut p = proxied_app(
        |db| {
            db.statement_timeout = None;
            db.batch_timeout = Duration::from_millis(1500);
        },
        |_| {},
    )
    .await;
    stuck_batch_fails_then_recovers(&p).await;
    p.app.stop().await;
}

async fn stuck_batch_fails_then_recovers(p: &ProxiedApp) {
    let mut surveys = p.app.surveys();
    let s = create_survey(&mut surveys).await;
    surveys.record_response(direct_answer(&s.id, "warm-up", 9)).await.unwrap();

    let lock = lock_responses(&p.direct_url).await;
    let started = Instant::now();
    let stuck = tokio::time::timeout(Duration::from_secs(8), surveys.record_response(direct_answer(&s.id, "ada", 9)))
        .await
        .expect("the stuck batch ends on its own timeout");
    assert_eq!(stuck.unwrap_err().code(), Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    lock.rollback().await.unwrap();

    assert!(
        eventually(Duration::from_secs(15), || {
            let mut surveys = surveys.clone();
            let id = s.id.clone();
            async move { surveys.record_response(direct_answer(&id, "ada", 9)).await.is_ok() }
        })
        .await,
        "answers are written again once the table is free"
    );
}

/// The answer queue is bounded: with a batch stuck and the queue full, the next
/// RecordResponse is refused at once with RESOURCE_EXHAUSTED and RetryInfo; the queued
/// ones are written once the batch can go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_full_answer_queue_refuses_at_once_with_retry_info() {
    let mut p = proxied_app(
        |db| {
            db.statement_timeout = None;
            db.batch_timeout = Duration::from_secs(60);
        },
        |a| a.record_queue_limit = 1,
    )
    .await;
    let mut surveys = p.app.surveys();
    let s = create_survey(&mut surveys).await;
    surveys.record_response(direct_answer(&s.id, "warm-up", 9)).await.unwrap();

    let lock = lock_responses(&p.direct_url).await;
    // The first answer's batch waits on the lock; the second waits in the queue.
    let mut first = surveys.clone();
    let (id1, id2) = (s.id.clone(), s.id.clone());
    let first = tokio::spawn(async move { first.record_response(direct_answer(&id1, "ada", 9)).await });
    let watcher = Database::connect(&p.direct_url).await.unwrap();
    let db_name = p.db_name.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let (watcher, db_name) = (watcher.clone(), db_name.clone());
            async move {
                let row = watcher
                    .query_one_raw(sea_orm::Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                        [db_name.into()],
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get::<i64>("", "n").unwrap() > 0
            }
        })
        .await,
        "the first batch waits on the lock"
    );
    let mut second = surveys.clone();
    let second = tokio::spawn(async move { second.record_response(direct_answer(&id2, "bob", 9)).await });
    let queue = p.services.records.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let queue = queue.clone();
            async move { queue.waiting() == 1 }
        })
        .await,
        "the second answer waits in the queue"
    );

    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(3), surveys.record_response(direct_answer(&s.id, "cy", 9)))
        .await
        .expect("refused at once")
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.get_details_retry_info().is_some(), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    lock.rollback().await.unwrap();
    assert!(first.await.unwrap().is_ok(), "the batch goes on once the lock is gone");
    assert!(second.await.unwrap().is_ok(), "and the queued answer is written");
    p.app.stop().await;
}

/// The error of a build that fails, with its causes.
async fn build_error(db: DbSettings, args: ServeArgs) -> String {
    match Application::build(&db, args, Clock::default()).await {
        Ok(_) => panic!("the build should fail"),
        Err(e) => format!("{e:#}"),
    }
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("rapport.db").display())
}

#[tokio::test]
async fn a_grpc_port_in_use_is_named_in_the_error() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err =
        build_error(DbSettings::new(sqlite_url(&dir)), ServeArgs { grpc_addr: addr, ..ServeArgs::default() }).await;
    assert!(err.contains(&addr.to_string()) && err.contains("RAPPORT_GRPC_ADDR"), "{err}");
}

#[tokio::test]
async fn a_database_url_that_does_not_parse_is_shown_without_its_password() {
    for url in [
        "postgres://rapport:s3cr3t-pw@db.example:notaport/rapport",
        "postgres://rapport:s3cr3t-pw@db.example:5432/rapport?sslmode=sometimes",
        "mysql://rapport:s3cr3t-pw@db.example/rapport",
    ] {
        let err = build_error(DbSettings::new(url), ServeArgs::default()).await;
        assert!(!err.contains("s3cr3t-pw"), "{err}");
        assert!(err.contains("rapport:***@db.example"), "the URL is shown, redacted: {err}");
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_the_cause() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let url = format!("postgres://rapport:s3cr3t-pw@127.0.0.1:{closed}/rapportdb");
    let db = DbSettings { acquire_timeout: Duration::from_secs(1), ..DbSettings::new(url) };
    let err = build_error(db, ServeArgs::default()).await;
    assert!(err.contains(&format!("127.0.0.1:{closed}/rapportdb")), "host, port and database: {err}");
    assert!(err.to_lowercase().contains("refused"), "the cause: {err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
}

#[tokio::test]
async fn an_sqlite_file_that_cannot_be_opened_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("rapport.db");
    let err = build_error(DbSettings::new(format!("sqlite://{}?mode=rwc", path.display())), ServeArgs::default()).await;
    assert!(err.contains(&path.display().to_string()), "{err}");
}

/// `--log-format text` colours only a terminal: a pipe gets plain text.
#[tokio::test]
async fn text_logs_into_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rapport"))
        .args(["--log-format", "text", "--log-level", "debug", "migrate"])
        .env("DATABASE_URL", sqlite_url(&dir))
        .env_remove("NO_COLOR")
        .env_remove("RAPPORT_LOG_LEVEL")
        .env_remove("RAPPORT_LOG_FORMAT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
    assert!(child.wait().await.unwrap().success(), "{out}\n{err}");
    assert!(out.contains("DEBUG") || out.contains("INFO"), "some log lines were written: {out}");
    assert!(!out.contains('\u{1b}') && !err.contains('\u{1b}'), "no escape codes: {out:?}");
}

/// The pool and the batch connection carry the statement timeout and the server's end
/// of the TCP keepalive (the client's end is set on the socket).
#[tokio::test]
async fn on_postgres_the_connections_have_the_statement_timeout_and_keepalive() {
    use sea_orm::{DbBackend, Statement};
    let admin = pg_admin_url();
    let conn = Database::connect(&admin).await.expect("PostgreSQL for the tests");
    let name = format!("rapport_t_{}", uuid::Uuid::now_v7().simple());
    conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let settings = DbSettings {
        statement_timeout: Some(Duration::from_secs(7)),
        tcp_keepalive: Some(Duration::from_secs(21)),
        ..DbSettings::new(url.to_string())
    };
    let db = rapport::store::Db::connect(&settings).await.unwrap();
    db.migrate().await.unwrap();

    async fn show(c: &impl ConnectionTrait, setting: &str) -> String {
        let row = c.query_one_raw(Statement::from_string(DbBackend::Postgres, format!("SHOW {setting}"))).await;
        row.unwrap().expect("a row").try_get_by_index::<String>(0).unwrap()
    }
    let batch = db.begin_batch().await.unwrap();
    for (setting, want) in [
        ("statement_timeout", "7s"),
        ("tcp_keepalives_idle", "21"),
        ("tcp_keepalives_interval", "7"),
        ("tcp_keepalives_count", "3"),
    ] {
        assert_eq!(show(db.conn(), setting).await, want, "pool: {setting}");
        assert_eq!(show(&batch, setting).await, want, "batch connection: {setting}");
    }
    let _ = batch.rollback().await;
    db.close().await;
    drop_database(&name, &admin).await;
}
