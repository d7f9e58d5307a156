//! History partitioned by month (docs/operations.md, "History partitions"): on
//! PostgreSQL `activity_events` and `delivery_attempts` are partitioned by range of
//! their time, one partition per month, kept ready ahead by the partitions worker, with
//! a default partition for the rest; retention drops a past month whole. Dedup by
//! message id holds across months on both databases, and the migration puts existing
//! rows into their months.

use chrono::{DateTime, Datelike, Duration, Months, TimeZone, Utc};
use pb::engagement_service_client::EngagementServiceClient;
use pb::import_service_client::ImportServiceClient;
use pb::privacy_service_client::PrivacyServiceClient;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use crate::helpers::*;

crate::on_both!(a_message_id_is_recorded_once_across_months, the_migration_keeps_every_row_in_its_month);

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `<table>_pYYYYMM` of the month `t` falls in.
fn partition(table: &str, t: DateTime<Utc>) -> String {
    format!("{table}_p{}", t.format("%Y%m"))
}

/// The 15th, noon, of the month `t` falls in (far from the month's edges).
fn mid_month(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 15, 12, 0, 0).unwrap()
}

fn months_later(t: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    mid_month(t).checked_add_months(Months::new(n)).unwrap()
}

/// Raw SQL on the test's database: the first column of each row, as text.
struct Db(DatabaseConnection);

impl Db {
    async fn open(url: &str) -> Db {
        Db(Database::connect(url).await.expect("the test database"))
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        let b = self.0.get_database_backend();
        self.0
            .query_all_raw(Statement::from_string(b, sql.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap_or_else(|e| panic!("{sql}: {e:?}")))
            .collect()
    }

    async fn one(&self, sql: &str) -> String {
        self.strings(sql).await.into_iter().next().unwrap_or_default()
    }

    async fn count(&self, sql: &str) -> i64 {
        let b = self.0.get_database_backend();
        let row = self.0.query_one_raw(Statement::from_string(b, sql.to_owned())).await.unwrap().unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// The partitions attached to `table`.
    async fn partitions(&self, table: &str) -> Vec<String> {
        self.strings(&format!(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = '{table}'::regclass ORDER BY 1"
        ))
        .await
    }

    /// The partition holding the activity event `message_id`.
    async fn home_of(&self, message_id: &str) -> String {
        self.one(&format!("SELECT tableoid::regclass::text FROM activity_events WHERE message_id = '{message_id}'"))
            .await
    }

    async fn exists(&self, table: &str) -> bool {
        self.count(&format!("SELECT count(*) FROM pg_class WHERE relname = '{table}'")).await > 0
    }
}

fn engagement(app: &TestApp, key: &str) -> EngagementServiceClient<InterceptedChannel> {
    EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key.to_owned())))
}

fn imports(app: &TestApp, key: &str) -> ImportServiceClient<InterceptedChannel> {
    ImportServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key.to_owned())))
}

type InterceptedChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>;

fn event(id: &str, customer: &str, at: DateTime<Utc>, name: &str) -> pb::ActivityEvent {
    pb::ActivityEvent {
        message_id: id.into(),
        customer_id: customer.into(),
        time: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 }),
        kind: Some(pb::activity_event::Kind::Action(pb::ActionEvent { name: name.into(), ..Default::default() })),
    }
}

/// Imports events (up to 3 660 days old) with `key`; returns the results.
async fn import(app: &TestApp, key: &str, events: Vec<pb::ActivityEvent>) -> pb::RecordEventsResponse {
    imports(app, key).import_events(pb::ImportEventsRequest { events }).await.unwrap().into_inner()
}

/// Keeps the raw activity of the tenant with secret `key` forever: the tests below
/// import events older than the default 730 days, which the retention worker (its
/// first pass runs as the server starts, whenever the machine lets it) would remove.
async fn keep_activity_forever(app: &TestApp, key: &str) {
    PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key.to_owned())))
        .update_retention_policy(pb::UpdateRetentionPolicyRequest {
            policy: Some(pb::RetentionPolicy { activity_event_days: 0, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["activity_event_days".into()] }),
        })
        .await
        .unwrap();
}

/// The message ids (and times) of a customer's raw activity, as the export shows them.
async fn exported(app: &TestApp, customer: &str) -> Vec<(String, String)> {
    let doc: serde_json::Value = get_json(app, &format!("{}/v1/customers/{customer}/export", app.http)).await;
    doc["activity_events"]
        .as_array()
        .unwrap_or_else(|| panic!("an export: {doc}"))
        .iter()
        .map(|e| (e["message_id"].as_str().unwrap().to_owned(), e["occurred_at"].as_str().unwrap_or("").to_owned()))
        .collect()
}

async fn metric(app: &TestApp, kind: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", app.admin_addr)).await.unwrap().text().await.unwrap();
    let prefix = format!("rapport_retention_removed_total{{kind=\"{kind}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse().unwrap()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_history_is_partitioned_by_month_with_months_ready_ahead() {
    let app = spawn_app(Backend::Postgres).await;
    let db = Db::open(&app.db_url).await;
    assert_eq!(
        db.strings(
            "SELECT c.relname || ' ' || pg_get_partkeydef(c.oid) FROM pg_partitioned_table p \
             JOIN pg_class c ON c.oid = p.partrelid ORDER BY 1"
        )
        .await,
        ["activity_events RANGE (occurred_at)", "delivery_attempts RANGE (attempted_at)"]
    );
    let now = Utc::now();
    for table in ["activity_events", "delivery_attempts"] {
        let parts = db.partitions(table).await;
        for k in 0..=2 {
            let p = partition(table, months_later(now, k));
            assert!(parts.contains(&p), "{p} is ready: {parts:?}");
        }
        assert!(parts.contains(&format!("{table}_default")), "{parts:?}");
    }

    // Four months later the worker (here: its pass, on two replicas at once) adds the
    // months then ahead, neither pass failing.
    let second = spawn_app_on(Backend::Postgres, app.db_url.clone(), app.key.clone(), |_| {}).await;
    app.clock.advance(Duration::days(124));
    second.clock.advance(Duration::days(124));
    let (a, b) = tokio::join!(app.services.maintain_partitions(), second.services.maintain_partitions());
    let (a, b) = (a.expect("a pass"), b.expect("a pass"));
    assert_eq!((a.failed, b.failed), (0, 0));
    let later = now + Duration::days(124);
    let mut wanted = 0;
    for table in ["activity_events", "delivery_attempts"] {
        let parts = db.partitions(table).await;
        for k in 0..=2 {
            let p = partition(table, months_later(later, k));
            assert!(parts.contains(&p), "{p} is ready: {parts:?}");
            wanted += 1;
        }
    }
    // Each made once: a second CREATE of one would have failed (the workers' own passes
    // at start may have made some of them first).
    assert!(a.created + b.created <= wanted, "{a:?} {b:?}");
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_old_event_waits_in_the_default_partition_until_its_month_is_made() {
    let app = spawn_app(Backend::Postgres).await;
    keep_activity_forever(&app, &app.key).await;
    let db = Db::open(&app.db_url).await;
    // Holding the worker's lock, so its pass cannot move the row before we look.
    let lock = Db::open(&app.db_url).await;
    let lock_txn = lock.0.begin().await.unwrap();
    let key = rapport::store::partitions::PARTITIONS_LOCK;
    lock_txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})")).await.unwrap();

    let old = mid_month(Utc::now() - Duration::days(1_500));
    let r = import(&app, &app.key, vec![event("old-1", "ada", old, "export")]).await;
    assert_eq!(r.accepted, 1, "{r:?}");
    assert_eq!(db.home_of("old-1").await, "activity_events_default", "no partition for {old} yet");
    assert_eq!(exported(&app, "ada").await.len(), 1, "readable from the default partition");
    let own = partition("activity_events", old);
    assert!(!db.partitions("activity_events").await.contains(&own));

    lock_txn.rollback().await.unwrap();
    app.services.maintain_partitions().await.unwrap();
    assert!(
        eventually(WAIT, || async { db.home_of("old-1").await == own }).await,
        "the row moved into {own}: in {}",
        db.home_of("old-1").await
    );
    assert!(db.partitions("activity_events").await.contains(&own));
    assert_eq!(db.count("SELECT count(*) FROM activity_events_default").await, 0, "the default is empty again");
    let after = exported(&app, "ada").await;
    assert_eq!(after.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["old-1"]);
}

/// An event of a month whose partition is being created at that moment waits for it
/// and goes into it (an insert routed to the default partition while the partition
/// is attached would be refused by PostgreSQL). The moment is held open with locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_event_arriving_while_its_month_is_made_goes_into_it() {
    let app = spawn_app(Backend::Postgres).await;
    keep_activity_forever(&app, &app.key).await;
    let db = Db::open(&app.db_url).await;
    let key = rapport::store::partitions::PARTITIONS_LOCK;
    let month = mid_month(Utc::now() - Duration::days(1_200));
    let own = partition("activity_events", month);
    // A row of the month in the default partition, the worker held off meanwhile.
    let worker_lock = Db::open(&app.db_url).await;
    let held = worker_lock.0.begin().await.unwrap();
    held.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})")).await.unwrap();
    assert_eq!(import(&app, &app.key, vec![event("first", "ada", month, "login")]).await.accepted, 1);
    assert_eq!(db.home_of("first").await, "activity_events_default");
    // Someone holds the default partition: the worker's change stops half-way, with
    // the table locked.
    let blocker = Db::open(&app.db_url).await;
    let blocking = blocker.0.begin().await.unwrap();
    blocking.execute_unprepared("LOCK TABLE activity_events_default IN ROW EXCLUSIVE MODE").await.unwrap();
    held.rollback().await.unwrap();
    let services = app.services.clone();
    let pass = tokio::spawn(async move { services.maintain_partitions().await });
    let waiting = |n: i64| {
        let db = &db;
        async move {
            db.count(
                "SELECT count(*) FROM pg_locks WHERE NOT granted \
                 AND relation IN ('activity_events'::regclass, 'activity_events_default'::regclass)",
            )
            .await
                >= n
        }
    };
    assert!(eventually(WAIT, || waiting(1)).await, "the worker waits for the default partition");
    // The event arrives now.
    let channel = app.channel.clone();
    let secret = app.key.clone();
    let late = tokio::spawn(async move {
        ImportServiceClient::with_interceptor(channel, Auth(Some(secret)))
            .import_events(pb::ImportEventsRequest { events: vec![event("second", "ada", month, "login")] })
            .await
    });
    assert!(eventually(WAIT, || waiting(2)).await, "the event waits too");
    blocking.rollback().await.unwrap();

    let pass = pass.await.unwrap().expect("the pass");
    assert_eq!((pass.failed, pass.moved), (0, 1), "{pass:?}");
    let late = late.await.unwrap().expect("the event is accepted, not refused").into_inner();
    assert_eq!(late.accepted, 1, "{late:?}");
    assert_eq!(db.home_of("first").await, own);
    assert_eq!(db.home_of("second").await, own);
}

async fn a_message_id_is_recorded_once_across_months(b: Backend) {
    let app = spawn_app(b).await;
    let db = Db::open(&app.db_url).await;
    let now = Utc::now();
    let live = engagement(&app, &app.key)
        .record_events(pb::RecordEventsRequest { events: vec![event("m-1", "ada", now, "login")] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.accepted, 1);
    // The same id, months earlier (another partition on PostgreSQL): a duplicate, and
    // the first one is kept.
    let again = import(&app, &app.key, vec![event("m-1", "ada", now - Duration::days(400), "login")]).await;
    assert_eq!((again.accepted, again.duplicates), (0, 1), "{again:?}");
    assert!(again.results[0].reason.contains("different payload"), "{:?}", again.results[0]);
    // And the other way round: first an old one, then the same id live.
    let first = import(&app, &app.key, vec![event("m-2", "ada", now - Duration::days(200), "login")]).await;
    assert_eq!(first.accepted, 1);
    if b == Backend::Postgres {
        app.services.maintain_partitions().await.unwrap();
    }
    let second = engagement(&app, &app.key)
        .record_events(pb::RecordEventsRequest { events: vec![event("m-2", "ada", now, "login")] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.duplicates, 1, "{second:?}");

    let ids: Vec<String> = exported(&app, "ada").await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["m-2", "m-1"], "one event each, in time order");
    assert_eq!(db.count("SELECT count(*) FROM activity_events").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM activity_event_ids").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retention_drops_a_past_month_whole_and_deletes_rows_of_newer_ones() {
    let app = spawn_app(Backend::Postgres).await;
    let db = Db::open(&app.db_url).await;
    let now = Utc::now();
    // acme keeps the default 730 days; keeper keeps forever.
    let keeper = app.services.create_tenant("keeper").await.unwrap().secret;
    keep_activity_forever(&app, &keeper).await;

    // A month past everyone's retention, with acme's rows only.
    let gone = mid_month(now - Duration::days(800));
    // An older month where keeper has a row too.
    let shared = mid_month(now - Duration::days(900));
    // A month within acme's retention.
    let kept = mid_month(now - Duration::days(400));
    let r = import(
        &app,
        &app.key,
        vec![
            event("gone-1", "ada", gone, "login"),
            event("gone-2", "ada", gone + Duration::days(1), "login"),
            event("shared-acme", "ada", shared, "login"),
            event("kept-1", "ada", kept, "login"),
        ],
    )
    .await;
    assert_eq!(r.accepted, 4, "{r:?}");
    assert_eq!(import(&app, &keeper, vec![event("shared-keeper", "bob", shared, "login")]).await.accepted, 1);
    app.services.maintain_partitions().await.unwrap();
    let (gone_p, shared_p, kept_p) =
        (partition("activity_events", gone), partition("activity_events", shared), partition("activity_events", kept));
    for p in [&gone_p, &shared_p, &kept_p] {
        assert!(db.partitions("activity_events").await.contains(p), "{p} made for its rows");
    }

    let pass = app.services.enforce_retention().await.unwrap();
    assert_eq!(pass.activity_events, 3, "two rows with their month, one deleted alone: {pass:?}");
    let parts = db.partitions("activity_events").await;
    assert!(!parts.contains(&gone_p), "{gone_p} is dropped: {parts:?}");
    assert!(!db.exists(&gone_p).await && !db.exists(&format!("{gone_p}_retired")).await, "and gone");
    assert!(parts.contains(&shared_p), "keeper still keeps {shared_p}");
    assert_eq!(db.strings(&format!("SELECT message_id::text FROM {shared_p}")).await, ["shared-keeper"]);
    assert_eq!(db.home_of("kept-1").await, kept_p);
    assert_eq!(metric(&app, "activity_events").await, 3, "the metric counts the dropped rows");
    let left: Vec<String> = exported(&app, "ada").await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(left, ["kept-1"]);

    // Dedup outlives the events: the dropped ids are still known.
    let again = import(&app, &app.key, vec![event("gone-1", "ada", gone, "login")]).await;
    assert_eq!(again.duplicates, 1, "{again:?}");
    // A second pass finds nothing more.
    assert_eq!(app.services.enforce_retention().await.unwrap().activity_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_time_bounded_reads_touch_only_the_months_they_need() {
    let app = spawn_app(Backend::Postgres).await;
    let db = Db::open(&app.db_url).await;
    let now = Utc::now();
    let months: Vec<DateTime<Utc>> = [300, 200, 100].iter().map(|d| mid_month(now - Duration::days(*d))).collect();
    let events = months.iter().enumerate().map(|(i, t)| event(&format!("e-{i}"), "ada", *t, "login")).collect();
    assert_eq!(import(&app, &app.key, events).await.accepted, 3);
    app.services.maintain_partitions().await.unwrap();
    let tenant = db.one("SELECT id FROM tenants WHERE name = 'acme'").await;
    let [m300, m200, m100] = [0, 1, 2].map(|i| partition("activity_events", months[i]));
    let us = |t: DateTime<Utc>| t.timestamp_micros();
    let plan = |sql: String| {
        let db = &db;
        async move { db.strings(&format!("EXPLAIN (COSTS OFF) {sql}")).await.join("\n") }
    };

    // The export's next page after an event of the latest month: that month and later.
    let cursor = us(months[2]);
    let page = plan(format!(
        "SELECT message_id FROM activity_events WHERE tenant_id = '{tenant}' AND customer_id = 'x' \
         AND occurred_at >= {cursor} AND (occurred_at > {cursor} OR (occurred_at = {cursor} AND message_id > 'e')) \
         ORDER BY occurred_at, message_id LIMIT 100"
    ))
    .await;
    assert!(page.contains(&m100) && page.contains(&partition("activity_events", now)), "{page}");
    assert!(!page.contains(&m200) && !page.contains(&m300), "earlier months are not read:\n{page}");

    // Retention's delete before the second month: only the first (and the default).
    let before = us(Utc.with_ymd_and_hms(months[1].year(), months[1].month(), 1, 0, 0, 0).unwrap());
    let delete = plan(format!(
        "DELETE FROM activity_events WHERE tenant_id = '{tenant}' AND occurred_at < {before} AND message_id IN \
         (SELECT message_id FROM activity_events WHERE tenant_id = '{tenant}' AND occurred_at < {before} LIMIT 1000)"
    ))
    .await;
    assert!(delete.contains(&m300), "{delete}");
    assert!(!delete.contains(&m200) && !delete.contains(&m100), "later months are not read:\n{delete}");

    // As the server sends it: bound parameters, with a plan made for any value (the
    // months are pruned when it runs).
    let txn = db.0.begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan").await.unwrap();
    txn.execute_unprepared(
        "PREPARE page(text, bigint) AS SELECT message_id FROM activity_events WHERE tenant_id = $1 \
         AND customer_id = 'ada' AND occurred_at >= $2 ORDER BY occurred_at, message_id LIMIT 100",
    )
    .await
    .unwrap();
    let rows = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE page('{tenant}', {cursor})"),
        ))
        .await
        .unwrap();
    let generic: String = rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect::<Vec<_>>().join("\n");
    assert!(generic.contains("Subplans Removed"), "pruned at run time:\n{generic}");
    assert!(!generic.contains(&m200) && !generic.contains(&m300), "{generic}");
    txn.rollback().await.unwrap();
}

/// Runs the migrations before m20261201_000006 on an empty database, writes history
/// with SQL as those versions did, then the rest.
async fn the_migration_keeps_every_row_in_its_month(b: Backend) {
    use migrations::MigratorTrait;
    let (url, _dir, pg) = match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display()), Some(dir), None)
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let name = format!("rapport_t_mig_{}", uuid::Uuid::now_v7().simple());
            let conn = Database::connect(&admin).await.expect("PostgreSQL (RAPPORT_TEST_POSTGRES_URL)");
            conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
            let _ = conn.close().await;
            let (base, _) = admin.rsplit_once('/').unwrap();
            (format!("{base}/{name}"), None, Some((name, admin)))
        }
    };
    let db = Db::open(&url).await;
    let before = migrations::Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261201_000006_partitioned_history")
        .expect("the partitioning migration") as u32;
    migrations::Migrator::up(&db.0, Some(before)).await.unwrap();

    let now = Utc::now();
    let t = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
    let events = [("t1", "a-1", t(2024, 3, 10)), ("t1", "a-2", now), ("t2", "a-3", t(2019, 7, 31))];
    for (tenant, id, at) in events {
        db.0.execute_unprepared(&format!(
            "INSERT INTO activity_events (tenant_id, message_id, customer_id, kind, name, occurred_at, properties, \
             payload_hash, received_at) VALUES ('{tenant}', '{id}', 'c-{id}', 'action', 'login', {}, '{{}}', \
             'hash-{id}', {})",
            at.timestamp_micros(),
            now.timestamp_micros()
        ))
        .await
        .unwrap();
    }
    let attempts = [("d-1", t(2025, 5, 5)), ("d-2", now)];
    for (id, at) in attempts {
        db.0.execute_unprepared(&format!(
            "INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt, attempted_at, status_code, error, \
             duration_ms) VALUES ('{id}', 't1', 'del-1', 1, {}, 200, '', 5)",
            at.timestamp_micros()
        ))
        .await
        .unwrap();
    }

    migrations::Migrator::up(&db.0, None).await.unwrap();

    assert_eq!(db.count("SELECT count(*) FROM activity_events").await, 3);
    assert_eq!(db.count("SELECT count(*) FROM delivery_attempts").await, 2);
    assert_eq!(
        db.strings(
            "SELECT tenant_id || ' ' || message_id || ' ' || customer_id || ' ' || payload_hash \
             FROM activity_event_ids ORDER BY message_id"
        )
        .await,
        ["t1 a-1 c-a-1 hash-a-1", "t1 a-2 c-a-2 hash-a-2", "t2 a-3 c-a-3 hash-a-3"],
        "every event has its dedup record"
    );
    if b == Backend::Postgres {
        for (_, id, at) in events {
            assert_eq!(db.home_of(id).await, partition("activity_events", at), "{id}");
        }
        for (id, at) in attempts {
            let home =
                db.one(&format!("SELECT tableoid::regclass::text FROM delivery_attempts WHERE id = '{id}'")).await;
            assert_eq!(home, partition("delivery_attempts", at), "{id}");
        }
        for table in ["activity_events", "delivery_attempts"] {
            let parts = db.partitions(table).await;
            for k in 0..=2 {
                assert!(parts.contains(&partition(table, months_later(now, k))), "{table} ahead: {parts:?}");
            }
            assert_eq!(db.count(&format!("SELECT count(*) FROM {table}_default")).await, 0);
        }
        let keys = db
            .strings(
                "SELECT conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE contype = 'p' AND conrelid IN ('activity_events'::regclass, 'delivery_attempts'::regclass) \
                 ORDER BY 1",
            )
            .await;
        assert_eq!(
            keys,
            [
                "activity_events PRIMARY KEY (tenant_id, occurred_at, message_id)",
                "delivery_attempts PRIMARY KEY (tenant_id, id, attempted_at)"
            ]
        );
        assert!(db.exists("ix_delivery_attempts_delivery").await);

        // Down past the partitioning (and the migrations after it) and up again: the rows stay.
        let all = migrations::Migrator::migrations();
        let partitioning = all.iter().position(|m| m.name() == "m20261201_000006_partitioned_history").unwrap();
        migrations::Migrator::down(&db.0, Some((all.len() - partitioning) as u32)).await.unwrap();
        assert_eq!(db.count("SELECT count(*) FROM pg_partitioned_table").await, 0);
        assert_eq!(db.count("SELECT count(*) FROM activity_events").await, 3);
        migrations::Migrator::up(&db.0, None).await.unwrap();
        assert_eq!(db.home_of("a-3").await, "activity_events_p201907");
    }
    let _ = db.0.close().await;
    if let Some((name, admin)) = pg {
        drop_database(&name, &admin).await;
    }
}
