//! Keys that include the tenant (docs/scaling.md, "Tenant-sharded on Citus"): a
//! distributed table's primary key and unique constraints must include its distribution
//! column, `tenant_id`, and so must foreign keys between distributed tables.
//!
//! - The primary key of each table in [`TABLES`] becomes `(id, tenant_id)`. Ids stay
//!   UUIDv7, so no two rows share one in practice; every query already names the tenant.
//!   The id leads: a lookup by tenant and id, such as the check of a foreign key, then
//!   has one index that matches both columns, where `(tenant_id, id)` tied with every
//!   other index led by `tenant_id` while a table was empty — and PostgreSQL keeps a
//!   connection's plan for a foreign-key check, so a plan made on an empty table
//!   scanned all of a tenant's rows for each check (`rapport-bench records`: 5× slower).
//! - The foreign keys between them ([`FOREIGN_KEYS`]) become `(tenant_id, col) →
//!   parent (tenant_id, id)`: a row can only point at a parent of its own tenant.
//! - The one-column unique constraints ([`PER_TENANT_UNIQUE`]) become unique indexes
//!   over `(col, tenant_id)` (the column first, for the same reason as the id first). An invitation or a response belongs to one tenant, so
//!   "one answer per invitation" and "one follow-up per response" are the same rules.
//!   An invitation's token is 128+ random bits (hashed): two tenants never share one in
//!   practice, so unique per tenant loses nothing; a plain index on `token_hash` keeps
//!   the hosted page's lookup, which does not know the tenant yet, an index scan.
//! - The `(tenant_id, id)` indexes of `surveys`, `webhook_endpoints` and `audit_log`
//!   stay: they list a tenant's rows in order of id.
//!
//! `tenants` and `api_keys` keep their keys: they are looked up before the tenant is
//! known (a bearer key's hash) and are meant to be Citus reference tables.
//! `fanout_cursors` is keyed by the tenant's id already. `activity_events` and, on
//! PostgreSQL, `delivery_attempts` are left to m20261201_000006 (partitioned history);
//! SQLite keeps plain history tables, so `delivery_attempts` is rebuilt here
//! ([`SQLITE_ALSO`]).
//!
//! PostgreSQL alters the keys in place in the migration's one transaction (each new
//! primary key and foreign key builds an index or checks every row, under lock: on a
//! big database this migration takes a while). SQLite cannot alter a primary key: each
//! table is rebuilt (created anew, copied, dropped, renamed, its indexes and triggers
//! recreated), as SQLite's documentation prescribes, with foreign keys off — which
//! only takes effect outside a transaction, so it runs on one connection of its own —
//! and `PRAGMA foreign_key_check` before the commit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::sqlx::sqlite::SqliteRow;
use sea_orm_migration::sea_orm::sqlx::{self, Row as _, SqliteConnection};
use sea_orm_migration::sea_orm::{DatabaseExecutor, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables whose primary key becomes `(id, tenant_id)`, parents before children.
const TABLES: [&str; 11] = [
    "surveys",
    "customers",
    "invitations",
    "responses",
    "follow_ups",
    "follow_up_entries",
    "events",
    "webhook_endpoints",
    "deliveries",
    "imported_responses",
    "audit_log",
];

/// Tables whose key only SQLite changes here (PostgreSQL partitions them in
/// m20261201_000006, with keys that hold the tenant and the month).
const SQLITE_ALSO: [&str; 1] = ["delivery_attempts"];

/// The foreign keys between them: (table, column, parent). Named `fk_<table>_<column>`.
const FOREIGN_KEYS: [(&str, &str, &str); 5] = [
    ("invitations", "customer_id", "customers"),
    ("responses", "customer_id", "customers"),
    ("responses", "invitation_id", "invitations"),
    ("follow_ups", "response_id", "responses"),
    ("follow_up_entries", "follow_up_id", "follow_ups"),
];

/// Column-level unique constraints that become unique per tenant: (table, column, the
/// new unique index).
const PER_TENANT_UNIQUE: [(&str, &str, &str); 3] = [
    ("invitations", "token_hash", "ix_invitations_token"),
    ("responses", "invitation_id", "ix_responses_invitation"),
    ("follow_ups", "response_id", "ix_follow_ups_response"),
];

/// The plain index the token lookup uses (it does not know the tenant).
const TOKEN_LOOKUP: &str = "CREATE INDEX \"ix_invitations_token_lookup\" ON \"invitations\" (\"token_hash\")";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        match m.get_database_backend() {
            DbBackend::Postgres => postgres(m, Direction::Up).await,
            _ => sqlite(m, Direction::Up).await,
        }
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        match m.get_database_backend() {
            DbBackend::Postgres => postgres(m, Direction::Down).await,
            _ => sqlite(m, Direction::Down).await,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// To keys with the tenant.
    Up,
    /// Back to keys on `id` alone (fails if two tenants share a token, which the
    /// per-tenant constraint no longer prevents).
    Down,
}

fn unique_index(table: &str, column: &str, name: &str) -> String {
    // The column leads, not the tenant: an index led by `tenant_id` ties with the primary
    // key for a lookup by tenant and id while the table is empty, and PostgreSQL prefers
    // it — a plan it then keeps for a connection's foreign-key checks.
    format!("CREATE UNIQUE INDEX \"{name}\" ON \"{table}\" (\"{column}\", \"tenant_id\")")
}

/// PostgreSQL: foreign keys off the old keys first (they depend on them), then the
/// primary keys, the unique constraints, and the foreign keys back on the new keys.
async fn postgres(m: &SchemaManager<'_>, dir: Direction) -> Result<(), DbErr> {
    let db = m.get_connection();
    let mut sql = Vec::new();
    for (table, column, _) in FOREIGN_KEYS {
        sql.push(format!("ALTER TABLE \"{table}\" DROP CONSTRAINT \"fk_{table}_{column}\""));
    }
    let pk = if dir == Direction::Up { "\"id\", \"tenant_id\"" } else { "\"id\"" };
    for table in TABLES {
        sql.push(format!("ALTER TABLE \"{table}\" DROP CONSTRAINT \"{table}_pkey\", ADD PRIMARY KEY ({pk})"));
    }
    for (table, column, index) in PER_TENANT_UNIQUE {
        match dir {
            Direction::Up => {
                sql.push(unique_index(table, column, index));
                sql.push(format!("ALTER TABLE \"{table}\" DROP CONSTRAINT \"{table}_{column}_key\""));
            }
            Direction::Down => {
                sql.push(format!(
                    "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{table}_{column}_key\" UNIQUE (\"{column}\")"
                ));
                sql.push(format!("DROP INDEX \"{index}\""));
            }
        }
    }
    match dir {
        Direction::Up => sql.push(TOKEN_LOOKUP.to_owned()),
        Direction::Down => sql.push("DROP INDEX \"ix_invitations_token_lookup\"".to_owned()),
    }
    for (table, column, parent) in FOREIGN_KEYS {
        let (from, to) = match dir {
            Direction::Up => (format!("\"tenant_id\", \"{column}\""), "\"tenant_id\", \"id\""),
            Direction::Down => (format!("\"{column}\""), "\"id\""),
        };
        sql.push(format!(
            "ALTER TABLE \"{table}\" ADD CONSTRAINT \"fk_{table}_{column}\" FOREIGN KEY ({from}) \
             REFERENCES \"{parent}\" ({to})"
        ));
    }
    for s in sql {
        db.execute_unprepared(&s).await?;
    }
    Ok(())
}

/// SQLite: every table rebuilt on one connection, with foreign keys off, in one
/// transaction. The connection goes back to the pool with foreign keys on again, or
/// is closed.
async fn sqlite(m: &SchemaManager<'_>, dir: Direction) -> Result<(), DbErr> {
    let DatabaseExecutor::Connection(db) = m.get_connection() else {
        return Err(DbErr::Migration(
            "m20261201_000005_tenant_keys rebuilds tables with SQLite's foreign keys off, which cannot be \
             switched inside a transaction: run it outside one"
                .into(),
        ));
    };
    let mut conn = db.get_sqlite_connection_pool().acquire().await.map_err(sqlx_err)?;
    let done = rebuild_all(&mut conn, dir).await;
    if done.is_err() {
        let _ = exec(&mut conn, "ROLLBACK").await;
    }
    if exec(&mut conn, "PRAGMA foreign_keys = ON").await.is_err() {
        // Never hand the pool a connection that does not check foreign keys.
        let _ = conn.close().await;
    }
    done
}

async fn rebuild_all(conn: &mut SqliteConnection, dir: Direction) -> Result<(), DbErr> {
    exec(conn, "PRAGMA foreign_keys = OFF").await?;
    exec(conn, "BEGIN IMMEDIATE").await?;
    for table in TABLES.into_iter().chain(SQLITE_ALSO) {
        rebuild(conn, table, dir).await?;
    }
    let broken = rows(conn, "PRAGMA foreign_key_check").await?;
    if let Some(row) = broken.first() {
        let table: String = row.try_get(0).map_err(sqlx_err)?;
        let parent: String = row.try_get(2).map_err(sqlx_err)?;
        return Err(DbErr::Migration(format!(
            "{} row(s) point at a missing parent after the rebuild (first: a row of {table} → {parent})",
            broken.len()
        )));
    }
    exec(conn, "COMMIT").await
}

/// A column as `PRAGMA table_info` describes it.
struct Column {
    name: String,
    declared: String,
    not_null: bool,
    default: Option<String>,
}

/// A foreign key as `PRAGMA foreign_key_list` describes it (one row per column).
struct ForeignKey {
    from: Vec<String>,
    parent: String,
    to: Vec<String>,
    on_update: String,
    on_delete: String,
}

/// Rebuilds `table` with its new keys; every column, index, trigger and other
/// constraint as it was.
async fn rebuild(conn: &mut SqliteConnection, table: &str, dir: Direction) -> Result<(), DbErr> {
    let columns = columns(conn, table).await?;
    let foreign_keys = foreign_keys(conn, table).await?;
    let uniques = column_uniques(conn, table).await?;
    let recreate = schema_objects(conn, table).await?;

    let mut defs: Vec<String> = columns.iter().map(column_def).collect();
    defs.push(match dir {
        Direction::Up => "PRIMARY KEY (\"id\", \"tenant_id\")".to_owned(),
        Direction::Down => "PRIMARY KEY (\"id\")".to_owned(),
    });
    for cols in &uniques {
        let per_tenant = PER_TENANT_UNIQUE.iter().any(|(t, c, _)| *t == table && cols.len() == 1 && cols[0] == *c);
        if !per_tenant {
            return Err(DbErr::Migration(format!("{table}: unexpected unique constraint on {cols:?}")));
        }
    }
    if dir == Direction::Down {
        for (_, column, _) in PER_TENANT_UNIQUE.iter().filter(|(t, _, _)| *t == table) {
            defs.push(format!("UNIQUE (\"{column}\")"));
        }
    }
    for fk in foreign_keys {
        defs.push(foreign_key_def(table, fk, dir));
    }

    let new = format!("{table}_rebuilt");
    let names = columns.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", ");
    exec(conn, &format!("CREATE TABLE \"{new}\" (\n  {}\n)", defs.join(",\n  "))).await?;
    exec(conn, &format!("INSERT INTO \"{new}\" ({names}) SELECT {names} FROM \"{table}\"")).await?;
    exec(conn, &format!("DROP TABLE \"{table}\"")).await?;
    exec(conn, &format!("ALTER TABLE \"{new}\" RENAME TO \"{table}\"")).await?;

    for (name, sql) in recreate {
        let dropped = match dir {
            Direction::Up => false,
            Direction::Down => {
                PER_TENANT_UNIQUE.iter().any(|(_, _, i)| *i == name) || name == "ix_invitations_token_lookup"
            }
        };
        if !dropped {
            exec(conn, &sql).await?;
        }
    }
    match dir {
        Direction::Up => {
            for (_, column, index) in PER_TENANT_UNIQUE.iter().filter(|(t, _, _)| *t == table) {
                exec(conn, &unique_index(table, column, index)).await?;
            }
            if table == "invitations" {
                exec(conn, TOKEN_LOOKUP).await?;
            }
        }
        Direction::Down => {}
    }
    Ok(())
}

fn column_def(c: &Column) -> String {
    let mut def = format!("{} {}", quoted(&c.name), c.declared);
    if c.not_null {
        def.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        def.push_str(&format!(" DEFAULT {d}"));
    }
    def
}

/// A foreign key to another table of [`TABLES`] gains (or, down, loses) `tenant_id`
/// on both sides; one to a table outside them (`tenants`) stays as it is.
fn foreign_key_def(table: &str, mut fk: ForeignKey, dir: Direction) -> String {
    if TABLES.contains(&fk.parent.as_str()) {
        let tenant = "tenant_id".to_owned();
        match dir {
            Direction::Up => {
                fk.from.insert(0, tenant.clone());
                fk.to.insert(0, tenant);
            }
            Direction::Down => {
                fk.from.retain(|c| *c != tenant);
                fk.to.retain(|c| *c != tenant);
            }
        }
    }
    let named = fk.from.iter().find(|c| *c != "tenant_id").or(fk.from.first()).cloned().unwrap_or_default();
    let list = |cols: &[String]| cols.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ");
    let mut def = format!(
        "CONSTRAINT \"fk_{table}_{named}\" FOREIGN KEY ({}) REFERENCES \"{}\" ({})",
        list(&fk.from),
        fk.parent,
        list(&fk.to)
    );
    for (what, action) in [("UPDATE", &fk.on_update), ("DELETE", &fk.on_delete)] {
        if action != "NO ACTION" {
            def.push_str(&format!(" ON {what} {action}"));
        }
    }
    def
}

async fn columns(conn: &mut SqliteConnection, table: &str) -> Result<Vec<Column>, DbErr> {
    let rows = rows(conn, &format!("PRAGMA table_info(\"{table}\")")).await?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get("name").map_err(sqlx_err)?,
                declared: r.try_get("type").map_err(sqlx_err)?,
                not_null: r.try_get::<i64, _>("notnull").map_err(sqlx_err)? != 0,
                default: r.try_get("dflt_value").map_err(sqlx_err)?,
            })
        })
        .collect()
}

async fn foreign_keys(conn: &mut SqliteConnection, table: &str) -> Result<Vec<ForeignKey>, DbErr> {
    let rows = rows(conn, &format!("PRAGMA foreign_key_list(\"{table}\")")).await?;
    let mut out: Vec<(i64, ForeignKey)> = Vec::new();
    for r in rows {
        let id: i64 = r.try_get("id").map_err(sqlx_err)?;
        let from: String = r.try_get("from").map_err(sqlx_err)?;
        let to: String = r.try_get("to").map_err(sqlx_err)?;
        match out.iter_mut().find(|(i, _)| *i == id) {
            Some((_, fk)) => {
                fk.from.push(from);
                fk.to.push(to);
            }
            None => out.push((
                id,
                ForeignKey {
                    from: vec![from],
                    parent: r.try_get("table").map_err(sqlx_err)?,
                    to: vec![to],
                    on_update: r.try_get("on_update").map_err(sqlx_err)?,
                    on_delete: r.try_get("on_delete").map_err(sqlx_err)?,
                },
            )),
        }
    }
    // PRAGMA lists them last-declared first.
    out.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    Ok(out.into_iter().map(|(_, fk)| fk).collect())
}

/// The columns of each UNIQUE constraint declared with the table (not by CREATE INDEX).
async fn column_uniques(conn: &mut SqliteConnection, table: &str) -> Result<Vec<Vec<String>>, DbErr> {
    let list = rows(conn, &format!("PRAGMA index_list(\"{table}\")")).await?;
    let mut out = Vec::new();
    for r in list {
        let origin: String = r.try_get("origin").map_err(sqlx_err)?;
        if origin != "u" {
            continue;
        }
        let name: String = r.try_get("name").map_err(sqlx_err)?;
        let info = rows(conn, &format!("PRAGMA index_info(\"{name}\")")).await?;
        out.push(info.iter().map(|i| i.try_get("name")).collect::<Result<Vec<String>, _>>().map_err(sqlx_err)?);
    }
    Ok(out)
}

/// The table's own indexes and triggers (name, SQL), which DROP TABLE takes with it.
async fn schema_objects(conn: &mut SqliteConnection, table: &str) -> Result<Vec<(String, String)>, DbErr> {
    let rows = rows(
        conn,
        &format!(
            "SELECT name, sql FROM sqlite_master WHERE tbl_name = '{table}' AND type IN ('index', 'trigger') \
             AND sql IS NOT NULL ORDER BY type, name"
        ),
    )
    .await?;
    rows.iter().map(|r| Ok((r.try_get("name").map_err(sqlx_err)?, r.try_get("sql").map_err(sqlx_err)?))).collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs one statement (ours: names come from the constants above and the catalog).
async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), DbErr> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn).await.map_err(sqlx_err)?;
    Ok(())
}

async fn rows(conn: &mut SqliteConnection, sql: &str) -> Result<Vec<SqliteRow>, DbErr> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut *conn).await.map_err(sqlx_err)
}

fn sqlx_err(e: sqlx::Error) -> DbErr {
    DbErr::Migration(format!("rebuilding the tables with tenant keys: {e}"))
}
