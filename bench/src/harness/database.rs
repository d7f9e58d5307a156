//! The database under the server: created when missing, a pool configured like the
//! server's for the baselines, and a scratch copy of the schema, made by the project's
//! own migrations, for the baseline tables.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use migrations::MigratorTrait as _;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, sqlx};

/// The database the server under load uses.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub url: String,
    /// The pool size of the server and of the bench's baseline pool.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl DbTarget {
    pub fn is_postgres(&self) -> bool {
        is_postgres_url(&self.url)
    }

    /// A pool on `url`, configured as the server configures its own: same size,
    /// timeouts and SQLite settings (WAL, `synchronous = NORMAL`, foreign keys), so a
    /// baseline differs from the server only in what it does per call.
    fn pool(&self, url: &str, search_path: Option<&str>) -> ConnectOptions {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_timeout(self.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        if let Some(schema) = search_path {
            opts.set_schema_search_path(schema.to_owned());
        }
        opts
    }

    /// The pool on the server's own database (for reads, `VACUUM ANALYZE`…).
    pub async fn connect(&self) -> anyhow::Result<DatabaseConnection> {
        Database::connect(self.pool(&self.url, None))
            .await
            .with_context(|| format!("connecting to {}", redact_url(&self.url)))
    }

    /// Refreshes the planner's statistics (and, on PostgreSQL, cleans dead rows).
    pub async fn analyze(&self) -> anyhow::Result<()> {
        let conn = self.connect().await?;
        let sql = if self.is_postgres() { "VACUUM ANALYZE" } else { "ANALYZE" };
        let done = conn.execute_unprepared(sql).await.context("analysing the loaded tables");
        let _ = conn.close().await;
        done.map(|_| ())
    }

    /// Waits until the server's fold (docs/engagement.md, "Shards and the fold") has
    /// left `tenants` one counter row per key for the days before `before` (days since
    /// 1970), as a running service has a minute after a bulk load; gives up after
    /// `limit`. Returns how long it waited.
    pub async fn wait_folded(&self, tenants: &[&str], before: i64, limit: Duration) -> anyhow::Result<Duration> {
        let conn = self.connect_one().await?;
        let ids = tenants.iter().map(|t| format!("'{}'", t.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM engagement_gaps WHERE tenant_id IN ({ids}) AND day < {before} AND shard >= 0) \
             + (SELECT COUNT(*) FROM engagement_revenue WHERE tenant_id IN ({ids}) AND day < {before} AND shard >= 0)"
        );
        let start = std::time::Instant::now();
        let waited = loop {
            let row = conn.query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), &sql)).await?;
            let left: i64 = row.context("no row counted")?.try_get_by_index(0)?;
            if left == 0 {
                break Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                break Err(anyhow::anyhow!("{left} counter rows still unfolded after {} s", limit.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = conn.close().await;
        waited
    }

    /// One connection to the server's database, for set-up statements.
    async fn connect_one(&self) -> anyhow::Result<DatabaseConnection> {
        let mut opts = self.pool(&self.url, None);
        opts.max_connections(1);
        Database::connect(opts).await.with_context(|| format!("connecting to {}", redact_url(&self.url)))
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A copy of the service's schema for the bench's baselines, made by running the
/// project's migrations into it: the tables a baseline inserts into are the real ones,
/// never a hand-written copy that drifts from them. On PostgreSQL it is a schema of
/// the same database (so pgbench reaches it too); on SQLite a file beside the database.
pub struct Scratch {
    conn: DatabaseConnection,
    options: ConnectOptions,
    place: Place,
}

enum Place {
    /// The schema's name, and a connection to drop it with.
    Schema { name: String, admin: DatabaseConnection },
    /// The SQLite file.
    File(PathBuf),
}

impl Scratch {
    /// Creates the scratch schema `name` (replacing one an earlier run left) and
    /// migrates it.
    pub async fn create(db: &DbTarget, name: &str) -> anyhow::Result<Scratch> {
        let (conn, options, place) = if db.is_postgres() {
            let admin = db.connect_one().await?;
            let quoted = quote_ident(name);
            admin
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
                .await
                .with_context(|| format!("dropping an old scratch schema {name}"))?;
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {quoted}"))
                .await
                .with_context(|| format!("creating the scratch schema {name}"))?;
            let options = db.pool(&db.url, Some(name));
            let conn = Database::connect(options.clone())
                .await
                .with_context(|| format!("connecting to the scratch schema {name}"))?;
            (conn, options, Place::Schema { name: name.to_owned(), admin })
        } else {
            let path = sqlite_sibling(&db.url, name)?;
            remove_sqlite_files(&path);
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let options = db.pool(&url, None);
            let conn = Database::connect(options.clone())
                .await
                .with_context(|| format!("opening the scratch database {}", path.display()))?;
            (conn, options, Place::File(path))
        };
        migrations::Migrator::up(&conn, None).await.with_context(|| format!("migrating the scratch schema {name}"))?;
        Ok(Scratch { conn, options, place })
    }

    /// The pool on the scratch schema (unqualified table names resolve there).
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// A new pool on the scratch schema, configured like [`Scratch::conn`]'s, for a load
    /// that must give its connections back when it ends ([`DatabaseConnection::close`]):
    /// a pool keeps its idle connections, and the server's pool, the baseline's and
    /// pgbench's clients together would pass PostgreSQL's `max_connections` (100 by default).
    pub async fn open_pool(&self) -> anyhow::Result<DatabaseConnection> {
        Database::connect(self.options.clone()).await.context("opening a pool on the scratch database")
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// `table` of the scratch schema, qualified for a connection that does not have the
    /// schema on its search path (pgbench).
    pub fn qualified(&self, table: &str) -> String {
        match &self.place {
            Place::Schema { name, .. } => format!("{}.{}", quote_ident(name), quote_ident(table)),
            Place::File(_) => quote_ident(table),
        }
    }

    /// Drops the scratch schema (or deletes the file).
    pub async fn drop(self) -> anyhow::Result<()> {
        let _ = self.conn.close().await;
        match self.place {
            Place::Schema { name, admin } => {
                let dropped =
                    admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&name))).await;
                let _ = admin.close().await;
                dropped.with_context(|| format!("dropping the scratch schema {name}"))?;
            }
            Place::File(path) => remove_sqlite_files(&path),
        }
        Ok(())
    }
}

/// An SQL identifier in double quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// For a SQLite URL, the path `<database file>-<suffix>` beside it (in the temporary
/// directory for an in-memory database).
fn sqlite_sibling(url: &str, suffix: &str) -> anyhow::Result<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).context("not a SQLite URL")?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return Ok(std::env::temp_dir().join(format!("rapport-bench-{}-{suffix}.db", std::process::id())));
    }
    Ok(PathBuf::from(format!("{path}-{suffix}")))
}

/// Deletes a SQLite database file with its WAL and shared-memory files.
fn remove_sqlite_files(path: &std::path::Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
}

/// Creates the PostgreSQL database named in `url` when it does not exist, through the
/// `postgres` maintenance database of the same server. Nothing to do for SQLite,
/// whose `mode=rwc` creates the file.
pub async fn ensure_database_exists(url: &str) -> anyhow::Result<()> {
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
        Err(e) if sqlstate(&e).as_deref() == Some("3D000") => {}
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", redact_url(url))),
    }
    let admin = Database::connect(quiet(&admin_url))
        .await
        .with_context(|| format!("connecting to {} to create the database {name:?}", redact_url(&admin_url)))?;
    let created = admin.execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(&name))).await;
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
pub fn postgres_admin_url(url: &str) -> Option<(String, String)> {
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

/// The URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
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

/// "PostgreSQL" or "SQLite".
pub fn backend_name(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "PostgreSQL",
        DbBackend::Sqlite => "SQLite",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_sqlite_scratch_file_sits_beside_the_database() {
        assert_eq!(sqlite_sibling("sqlite:///tmp/b.db?mode=rwc", "base").unwrap(), PathBuf::from("/tmp/b.db-base"));
        assert_eq!(sqlite_sibling("sqlite://rel.db", "base").unwrap(), PathBuf::from("rel.db-base"));
        assert!(sqlite_sibling("sqlite::memory:", "base").unwrap().starts_with(std::env::temp_dir()));
    }
}
