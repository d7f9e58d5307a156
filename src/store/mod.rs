//! Storage: the only module that knows SQL. sea-orm entities, tenant-scoped queries,
//! connection set-up for SQLite and PostgreSQL, and the classification of database
//! errors into [`StoreError`]s at this boundary. The other infrastructure the
//! use-cases reach lives here too: the rate-limit buckets the replicas share in Redis
//! ([`shared_limits`]) and PostgreSQL's LISTEN/NOTIFY between replicas ([`notify`]). Functions take and return domain
//! types; rows, column encodings (microseconds, enum names, JSON text) and sea-orm
//! errors stay in here.

pub mod answers;
pub mod audit;
pub mod customers;
pub mod engagement;
pub mod engagement_read;
pub mod entities;
pub mod error;
pub mod events;
pub mod follow_ups;
pub mod imports;
pub mod in_app;
pub mod insight;
pub mod invitations;
pub mod keys;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod partitions;
pub mod privacy;
pub mod responses;
pub mod retention;
pub mod secrets;
pub mod shared_limits;
pub(crate) mod sql;
pub mod surveys;
pub mod tenants;
pub mod webhooks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::sqlx;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::domain::model::Properties;
pub use error::{Result, StoreError};

/// A write transaction, as use-cases hold it (from [`Db::begin_write`]): store
/// functions run on it as on the pool, and [`Tx::commit`] ends it. Dropped without a
/// commit, it rolls back.
#[derive(Debug)]
pub struct Tx(DatabaseTransaction);

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }

    /// Rolls the transaction back (as dropping it does, but waiting for it).
    pub async fn rollback(self) -> Result<()> {
        Ok(self.0.rollback().await?)
    }
}

#[sea_orm::prelude::async_trait::async_trait]
impl ConnectionTrait for Tx {
    fn get_database_backend(&self) -> DbBackend {
        self.0.get_database_backend()
    }
    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.0.execute_raw(stmt).await
    }
    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.0.execute_unprepared(sql).await
    }
    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.0.query_one_raw(stmt).await
    }
    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.0.query_all_raw(stmt).await
    }
    fn support_returning(&self) -> bool {
        self.0.support_returning()
    }
}

/// What store functions run on: the pool ([`Db::conn`]) or a transaction ([`Tx`]).
/// Use-cases name this, never the driver's types.
pub trait Conn: ConnectionTrait {}

impl<T: ConnectionTrait> Conn for T {}

/// A pool of connections to the service's database.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite: a one-connection pool that write transactions queue on, in order,
    /// instead of polling on the busy timeout (which made the p99 of concurrent
    /// writers seconds long). PostgreSQL: the main pool.
    writer: DatabaseConnection,
    /// The connections batched writes (group commit) run on. PostgreSQL: two of their
    /// own — a batch's two reads side by side, then its write on one of them — whose
    /// statement caches hold every batch's statements, so a batch is never parsed and
    /// planned again, and a pool busy with other calls never holds an answer up.
    /// SQLite: the writer.
    batcher: DatabaseConnection,
    /// What [`Db::ping`] asks: one connection of its own, opened when first needed, so
    /// a pool busy with calls is not taken for an outage (`sqlite::memory:`: the pool).
    probe: DatabaseConnection,
    /// What the health watcher found last ([`Db::set_reachable`]).
    reach: Arc<Reachability>,
    /// The settings it was opened with (the batch timeout, migrations' connection).
    settings: Arc<DbSettings>,
}

/// Connections of the batched writes on PostgreSQL, besides the pool ([`Db::batcher`]).
pub const BATCH_CONNECTIONS: u32 = 2;

/// Prepared statements the batch connection keeps: a batch of n answers is one
/// statement shape per table, n from 1 to 128 (the default cache keeps 100).
const BATCH_STATEMENT_CACHE: usize = 1_024;

/// The default of [`DbSettings::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default of [`DbSettings::tcp_keepalive`].
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// The default of [`DbSettings::batch_timeout`].
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub url: String,
    /// PostgreSQL: where the one session that LISTENs for other replicas' events
    /// connects ([`notify`]): PostgreSQL itself, not a transaction-pooling PgBouncer,
    /// which cannot keep a LISTEN. `None`: [`DbSettings::url`].
    pub direct_url: Option<String>,
    pub max_connections: u32,
    /// How long a call waits for a free (or new) connection before `UNAVAILABLE`.
    pub acquire_timeout: Duration,
    /// PostgreSQL: the server cancels a statement that runs longer (its
    /// `statement_timeout`), and the call fails with `UNAVAILABLE`. `None`: no limit.
    /// Migrations run without it.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL: TCP keepalive on every connection, on both ends: the first probe
    /// after this long without traffic, then one every third of it; three unanswered
    /// probes end the connection, so a server (or a client) that vanished without
    /// closing it is noticed. `None`: the operating system's default (usually off).
    pub tcp_keepalive: Option<Duration>,
    /// Each step of a batched write — its begin, its statements, its commit — that
    /// takes longer fails the batch with `UNAVAILABLE`: one stalled connection cannot
    /// hold every `RecordResponse` of the process.
    pub batch_timeout: Duration,
    /// PostgreSQL reached through a pooler in transaction mode (PgBouncer's `pool_mode
    /// = transaction`), which may run a connection's consecutive statements on different
    /// server sessions and, before PgBouncer 1.21, knows nothing of prepared statements.
    /// Then every statement is the unnamed one, parsed, bound and executed before one
    /// Sync (the patched sqlx-postgres, vendor/README.md), so it runs whole on one
    /// session; and nothing is set per session at connect: the statement timeout and the
    /// server's end of the keepalive are the role's or the pooler's settings.
    pub transaction_pooler: bool,
}

impl DbSettings {
    /// Settings for `url` with the defaults of the command line: 32 connections, 5 s to
    /// get one, the default statement timeout, keepalive and batch timeout.
    pub fn new(url: impl Into<String>) -> Self {
        DbSettings {
            url: url.into(),
            direct_url: None,
            max_connections: 32,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            batch_timeout: DEFAULT_BATCH_TIMEOUT,
            transaction_pooler: false,
        }
    }
}

impl Db {
    /// Opens the pool. SQLite files are created if missing and run in WAL mode with a
    /// busy timeout; `sqlite::memory:` uses one shared connection.
    ///
    /// An error names the database — PostgreSQL's host, port, database and user, or
    /// the SQLite file — and the cause, never the password.
    pub async fn connect(settings: &DbSettings) -> anyhow::Result<Self> {
        let target = Target::of(&settings.url)?;
        if target.postgres {
            // Process-wide, for the connections opened from now on (patched sqlx-core).
            sqlx_core::net::set_tcp_keepalive(settings.tcp_keepalive);
        }
        match Self::open(settings).await {
            Ok(db) => {
                if settings.transaction_pooler {
                    db.check_pooled_statement_timeout().await;
                }
                Ok(db)
            }
            Err(e) => Err(target.failed(&e, settings).await),
        }
    }

    /// Behind a transaction pooler the statement timeout cannot be set per session
    /// ([`DbSettings::transaction_pooler`]): warns when the one the server applies is
    /// not the one asked for, so it is set where it belongs (on the role).
    async fn check_pooled_statement_timeout(&self) {
        let wanted = self.settings.statement_timeout.map_or(0, |t| t.as_millis());
        let sql = "SELECT setting FROM pg_settings WHERE name = 'statement_timeout'";
        let applied = match self.conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await {
            Ok(Some(row)) => row.try_get_by_index::<String>(0).ok().and_then(|s| s.parse::<u128>().ok()),
            _ => None,
        };
        if applied != Some(wanted) {
            tracing::warn!(
                applied_ms = ?applied,
                wanted_ms = wanted,
                "behind a transaction pooler the statement timeout is not set per connection; \
                 set it on the role: ALTER ROLE <user> SET statement_timeout = '{wanted}ms'"
            );
        }
    }

    async fn open(settings: &DbSettings) -> Result<Self, DbErr> {
        let memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
        let reach = Arc::new(Reachability::default());
        let max = if memory { 1 } else { settings.max_connections };
        let conn = Database::connect(Self::options(settings, &reach, max, None)).await?;
        let sqlite = conn.get_database_backend() == DbBackend::Sqlite;
        let writer = if sqlite && !memory {
            Database::connect(Self::options(settings, &reach, 1, None)).await?
        } else {
            conn.clone()
        };
        let batcher = if sqlite {
            writer.clone()
        } else {
            // Behind a transaction pooler no statement is kept (see `options`).
            let mut opts = Self::options(settings, &reach, BATCH_CONNECTIONS, Some(BATCH_STATEMENT_CACHE));
            // Busy, it is in use back to back and never pinged; after a pause of its
            // own it is, so a database that restarted meanwhile costs no call.
            opts.test_before_acquire_if_idle_for(Duration::from_millis(100));
            Database::connect(opts).await?
        };
        let probe = if memory {
            conn.clone()
        } else {
            let mut opts = Self::options(settings, &reach, 1, None);
            opts.connect_lazy(true);
            Database::connect(opts).await?
        };
        Ok(Db { conn, writer, batcher, probe, reach, settings: Arc::new(settings.clone()) })
    }

    fn options(
        settings: &DbSettings,
        reach: &Arc<Reachability>,
        max_connections: u32,
        statement_cache: Option<usize>,
    ) -> ConnectOptions {
        let mut opts = ConnectOptions::new(settings.url.clone());
        let memory = settings.url.contains(":memory:") || settings.url.contains("mode=memory");
        opts.max_connections(max_connections)
            .min_connections(if memory { 1 } else { 0 })
            .acquire_timeout(settings.acquire_timeout)
            .connect_timeout(settings.acquire_timeout)
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(300)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(1800)) })
            // Ping only connections idle for a while: a ping per checkout doubles the
            // round trips of a call; a connection that died in use fails that call
            // with UNAVAILABLE and is replaced.
            .test_before_acquire_if_idle_for(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        // Behind a transaction pooler: no startup option, which PgBouncer refuses ("unsupported
        // startup parameter") and which would hold for one server session only anyway; and
        // no statement cache, which makes every statement the unnamed one, sent whole
        // (the patched sqlx-postgres, vendor/README.md).
        let pooled = settings.transaction_pooler;
        let statement_cache = if pooled { Some(0) } else { statement_cache };
        // PostgreSQL only (sea-orm sends it as a startup option).
        if let Some(t) = settings.statement_timeout.filter(|t| !t.is_zero() && !pooled) {
            opts.statement_timeout(t);
        }
        // The server's end of the keepalive: it notices a client that vanished (and
        // ends its transaction, releasing its locks). The client's end is set in
        // `connect` (`set_tcp_keepalive`).
        let keepalive = settings.tcp_keepalive.filter(|_| !pooled).map(|idle| idle.as_secs().max(1));
        opts.map_sqlx_postgres_opts(move |mut o| {
            if let Some(n) = statement_cache {
                o = o.statement_cache_capacity(n);
            }
            if pooled {
                o = o.extra_float_digits(None);
            }
            if let Some(idle) = keepalive {
                o = o.options([
                    ("tcp_keepalives_idle", idle.to_string()),
                    ("tcp_keepalives_interval", (idle / 3).max(1).to_string()),
                    ("tcp_keepalives_count", "3".to_owned()),
                ]);
            }
            o
        });
        // After an outage, a pooled connection idle since before it ended may be dead
        // (terminated, or its server restarted): it is tested before use, so the first
        // calls after the recovery do not fail on it. Once used, it is not tested again.
        let reach = reach.clone();
        opts.map_sqlx_postgres_before_acquire(move |conn, meta| {
            let test = reach.maybe_dead(meta.idle_for);
            Box::pin(async move {
                if test {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        });
        opts
    }

    /// The pool, for reads.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The connections batched writes run on (on PostgreSQL [`BATCH_CONNECTIONS`] of
    /// their own), for a batch read and written without a transaction around it
    /// ([`Db::begin_batch`] for one with).
    pub fn batcher(&self) -> &DatabaseConnection {
        &self.batcher
    }

    /// Whether the database is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.backend() == DbBackend::Postgres
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Starts a write transaction. On SQLite it begins IMMEDIATE, taking the write
    /// lock at once: a deferred one can fail with SQLITE_BUSY when it upgrades.
    pub async fn begin_write(&self) -> Result<Tx> {
        self.check_reachable()?;
        self.begin_on(&self.writer).await
    }

    /// Starts a write transaction for a batch of calls (see `service::batch`), on the
    /// batch connection, within the batch timeout.
    pub async fn begin_batch(&self) -> Result<Tx> {
        self.check_reachable()?;
        self.batch_step("begin", self.begin_on(&self.batcher)).await
    }

    /// Runs `step` (`what`: its name, for the error) of a batched write within the
    /// batch timeout ([`DbSettings::batch_timeout`]); past it, [`StoreError::Timeout`]. The
    /// step's future is dropped then: its transaction rolls back, and a connection
    /// left mid-statement is not reused before it answered (sqlx tests it first).
    pub async fn batch_step<T, E>(&self, what: &str, step: impl Future<Output = Result<T, E>>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let limit = self.settings.batch_timeout;
        match tokio::time::timeout(limit, step).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(step = what, timeout = ?limit, "a batched write timed out");
                Err(StoreError::Timeout { step: what.to_owned(), after: limit }.into())
            }
        }
    }

    async fn begin_on(&self, pool: &DatabaseConnection) -> Result<Tx> {
        let sqlite_mode = (self.backend() == DbBackend::Sqlite).then_some(SqliteTransactionMode::Immediate);
        let options = TransactionOptions { sqlite_transaction_mode: sqlite_mode, ..Default::default() };
        Ok(Tx(pool.begin_with_options(options).await?))
    }

    /// Applies every pending migration. On PostgreSQL they run on a connection of
    /// their own without the statement timeout: a migration may rewrite a big table.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        use migrations::MigratorTrait;
        if self.backend() == DbBackend::Postgres && self.settings.statement_timeout.is_some() {
            let settings = DbSettings { statement_timeout: None, ..(*self.settings).clone() };
            let conn = Database::connect(Self::options(&settings, &self.reach, 1, None)).await?;
            let done = migrations::Migrator::up(&conn, None).await;
            let _ = conn.close().await;
            return done;
        }
        migrations::Migrator::up(&self.conn, None).await
    }

    /// Whether the database answers a trivial query (on a connection of its own: a busy
    /// pool is not an outage).
    pub async fn ping(&self) -> bool {
        self.probe.execute_unprepared("SELECT 1").await.is_ok()
    }

    /// Records what the health watcher found. While the database is known to be
    /// unreachable, calls fail at once with `UNAVAILABLE` ([`Db::is_down`]) instead of
    /// each waiting for a connection; the watcher keeps probing and clears it.
    pub fn set_reachable(&self, up: bool) {
        self.reach.set(up);
    }

    /// Whether the health watcher last found the database unreachable.
    pub fn is_down(&self) -> bool {
        self.reach.down.load(Ordering::Relaxed)
    }

    /// [`StoreError::Unavailable`] at once while the database is known to be unreachable.
    pub fn check_reachable(&self) -> Result<()> {
        if self.is_down() { Err(StoreError::Unavailable) } else { Ok(()) }
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.probe.close().await;
        let _ = self.batcher.close().await;
        let _ = self.writer.close().await;
        let _ = self.conn.close().await;
    }
}

/// What the health watcher found last, shared by the pools.
#[derive(Debug, Default)]
struct Reachability {
    down: AtomicBool,
    /// When the database was last found unreachable.
    last_down: Mutex<Option<Instant>>,
}

impl Reachability {
    fn set(&self, up: bool) {
        self.down.store(!up, Ordering::Relaxed);
        if !up {
            *self.last_down.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }

    /// Whether a connection idle for `idle_for` went idle before the database was last
    /// found unreachable (and may have died with it).
    fn maybe_dead(&self, idle_for: Duration) -> bool {
        self.last_down.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|at| idle_for >= at.elapsed())
    }
}

/// Where a database URL points, as errors name it: never with its password.
struct Target {
    postgres: bool,
    /// "PostgreSQL at host:5432/db as user u", "the SQLite database ./x.db".
    shown: String,
    /// The password as written in the URL (and decoded), to scrub from causes.
    secrets: Vec<String>,
}

impl Target {
    /// Checks that `url` is a database URL this service supports.
    fn of(url: &str) -> anyhow::Result<Target> {
        let secrets = url_passwords(url);
        let scrub = |s: String| scrub(s, &secrets);
        let target = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let o: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
                anyhow::anyhow!(
                    "DATABASE_URL {} is not a valid PostgreSQL URL: {}",
                    redact_url(url),
                    scrub(e.to_string())
                )
            })?;
            let place = match o.get_socket() {
                Some(dir) => format!("socket {}", dir.display()),
                None => format!("{}:{}", o.get_host(), o.get_port()),
            };
            let database = o.get_database().unwrap_or(o.get_username());
            Target {
                postgres: true,
                shown: format!("PostgreSQL at {place}/{database} as user {}", o.get_username()),
                secrets: Vec::new(),
            }
        } else if url.starts_with("sqlite:") {
            let o: sqlx::sqlite::SqliteConnectOptions = url.parse().map_err(|e: sqlx::Error| {
                anyhow::anyhow!("DATABASE_URL {} is not a valid SQLite URL: {}", redact_url(url), scrub(e.to_string()))
            })?;
            Target {
                postgres: false,
                shown: format!("the SQLite database {}", o.get_filename().display()),
                secrets: Vec::new(),
            }
        } else {
            anyhow::bail!("DATABASE_URL {} is not supported: use postgres://… or sqlite://…", redact_url(url));
        };
        Ok(Target { secrets, ..target })
    }

    /// The error of a failed [`Db::connect`]: where, and why. A PostgreSQL pool that
    /// timed out says no more than that; one direct attempt then tells the cause
    /// (refused, unknown host, no answer…).
    async fn failed(&self, e: &DbErr, settings: &DbSettings) -> anyhow::Error {
        let mut cause = e.to_string();
        let timed_out = matches!(e, DbErr::Conn(RuntimeErr::SqlxError(s)) if matches!(&**s, sqlx::Error::PoolTimedOut));
        if self.postgres && timed_out {
            use sqlx::ConnectOptions as _;
            let within = settings.acquire_timeout;
            let why = match settings.url.parse::<sqlx::postgres::PgConnectOptions>() {
                Ok(o) => {
                    // As the pool connects (see `options`): PgBouncer refuses the parameter.
                    let o = if settings.transaction_pooler { o.extra_float_digits(None) } else { o };
                    match tokio::time::timeout(within, o.connect()).await {
                        Ok(Ok(c)) => {
                            let _ = sqlx::Connection::close(c).await;
                            None
                        }
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some(format!("no answer within {} ms", within.as_millis())),
                    }
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                cause = format!("{cause}: {why}");
            }
        }
        // What PgBouncer says to the startup options rapport sends unless told of it.
        if cause.contains("unsupported startup parameter") && !settings.transaction_pooler {
            cause.push_str(" (PgBouncer in transaction mode? set RAPPORT_DB_POOLER=transaction)");
        }
        let what = if self.postgres { "cannot connect to" } else { "cannot open" };
        anyhow::anyhow!("{}", scrub(cause, &self.secrets)).context(format!("{what} {}", self.shown))
    }
}

/// The passwords a URL may hold, as written and percent-decoded, for [`scrub`].
fn url_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(u) = url::Url::parse(url)
        && let Some(p) = u.password()
    {
        out.push(p.to_owned());
        if let Ok(decoded) = percent_decode(p) {
            out.push(decoded);
        }
    }
    // A URL that does not parse: what lies between the user's `:` and the last `@`.
    if let Some((_, rest)) = url.split_once("://")
        && let Some(at) = rest.rfind('@')
        && let Some((_, p)) = rest[..at].split_once(':')
    {
        out.push(p.to_owned());
    }
    for (k, v) in url.split_once('?').map(|(_, q)| form_urlencoded::parse(q.as_bytes())).into_iter().flatten() {
        if k.eq_ignore_ascii_case("password") {
            out.push(v.into_owned());
        }
    }
    out.retain(|p| !p.is_empty());
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    out
}

fn percent_decode(s: &str) -> std::result::Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("-"), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
}

/// `text` with every one of `secrets` replaced by `***`.
fn scrub(mut text: String, secrets: &[String]) -> String {
    for s in secrets {
        text = text.replace(s.as_str(), "***");
    }
    text
}

/// A database URL fit for logs and errors: its password (in the user part or a
/// `password=` parameter) replaced by `***`, also when the URL does not parse.
pub fn redact_url(url: &str) -> String {
    let (mut out, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_owned(), Some(query)),
        None => (url.to_owned(), None),
    };
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some(at) = rest.rfind('@')
        && let Some((user, _)) = rest[..at].split_once(':')
    {
        // The last `@` of the whole URL: a password may hold `/`, `?` or `@` unencoded.
        let after = &rest[at + 1..];
        return redact_url(&format!("{scheme}://{user}@{after}")).replacen('@', ":***@", 1);
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{out}?{}", params.join("&"));
    }
    out
}

/// A property map as stored (JSON text).
fn props_to_json(p: &Properties) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
}

/// A stored property map.
fn props_from_json(s: &str) -> Properties {
    serde_json::from_str(s).unwrap_or_default()
}

/// What the store's own tests start from.
#[cfg(test)]
pub(crate) mod testing {
    use super::entities::tenant;
    use super::{Db, DbSettings};

    /// An in-memory SQLite database on one connection, not yet migrated.
    pub(crate) async fn memory_db() -> Db {
        let settings = DbSettings { max_connections: 1, ..DbSettings::new("sqlite::memory:") };
        Db::connect(&settings).await.expect("in-memory SQLite")
    }

    /// Applies every migration before the one named `name`.
    pub(crate) async fn migrate_up_to(db: &Db, name: &str) {
        use migrations::MigratorTrait;
        let before = migrations::Migrator::migrations().iter().position(|m| m.name() == name);
        let before = before.unwrap_or_else(|| panic!("no migration {name}")) as u32;
        migrations::Migrator::up(db.conn(), Some(before)).await.unwrap();
    }

    /// A tenant row named `id` in UTC, without waiting periods, whose last event is `event_seq`.
    pub(crate) fn tenant_row(id: &str, event_seq: i64) -> tenant::Model {
        tenant::Model {
            id: id.into(),
            name: id.into(),
            time_zone: "UTC".into(),
            days_after_invitation_this_survey: 0,
            days_after_invitation_any_survey: 0,
            days_after_response_this_survey: 0,
            days_after_response_any_survey: 0,
            invitation_expiry_days: 7,
            created_at: 0,
            event_seq,
        }
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_whether_or_not_the_url_parses() {
        for (url, shown) in [
            ("postgres://u:s3cr3t@db:5432/x", "postgres://u:***@db:5432/x"),
            ("postgres://u:s3cr3t@db:notaport/x", "postgres://u:***@db:notaport/x"),
            ("postgres://u:s3/cr@et@db/x?sslmode=require", "postgres://u:***@db/x?sslmode=require"),
            ("postgres://u@db/x?password=s3cr3t&sslmode=require", "postgres://u@db/x?password=***&sslmode=require"),
            ("postgres://db/x", "postgres://db/x"),
            ("sqlite://rapport.db?mode=rwc", "sqlite://rapport.db?mode=rwc"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn causes_are_scrubbed_of_the_password_as_written_and_decoded() {
        let secrets = url_passwords("postgres://u:p%40ss-w0rd@db/x");
        assert_eq!(scrub("auth failed for p%40ss-w0rd / p@ss-w0rd".into(), &secrets), "auth failed for *** / ***");
    }
}
