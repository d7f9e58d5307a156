//! A small SQL builder for hand-written statements (engagement, privacy, retention):
//! placeholders for either backend, multi-row inserts within the parameter limits,
//! and column readers that accept whatever integer width the backend returns. Shared
//! by the write side (`engagement`) and the read side (`engagement_read`).

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use super::error::{Result, StoreError};

/// The SQL text of a statement that is built the same way on every call, built once per
/// backend and kept: building a sea-query statement (every column named, each
/// identifier quoted, the values boxed) costs more instructions than the rest of a
/// one-row read (`valgrind --tool=callgrind`, docs/benchmarks.md). `build` makes the
/// statement with any values; each call binds its own in the same order.
pub(crate) fn cached_text(
    cache: &'static std::sync::OnceLock<[std::sync::OnceLock<String>; 3]>,
    backend: DbBackend,
    build: impl FnOnce(DbBackend) -> Statement,
) -> &'static str {
    let slot = match backend {
        DbBackend::Postgres => 0,
        DbBackend::Sqlite => 1,
        _ => 2,
    };
    cache.get_or_init(Default::default)[slot].get_or_init(|| build(backend).sql)
}

/// Bound parameters per statement stay under SQLite's 32 766 and PostgreSQL's 65 535.
const MAX_PARAMS: usize = 30_000;

/// SQL text with its bound values; `bind` writes the backend's placeholder.
pub(crate) struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: DbBackend, text: &str) -> Self {
        Sql { backend, text: text.to_owned(), values: Vec::new() }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.values.push(v.into());
        match self.backend {
            DbBackend::Postgres => {
                let n = self.values.len();
                self.text.push_str(&format!("${n}"));
            }
            _ => self.text.push('?'),
        }
        self
    }

    /// `(?, ?, …)` for a list, binding each.
    pub(crate) fn list<V: Into<Value>>(&mut self, items: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        for (i, v) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self.text.push(')');
        self
    }

    pub(crate) fn stmt(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }

    /// The statement's start, to say which one failed in the logs (values never).
    fn head(&self) -> String {
        self.text.chars().take(120).collect()
    }

    pub(crate) async fn all(self, conn: &impl ConnectionTrait) -> Result<Vec<QueryResult>> {
        let head = self.head();
        conn.query_all_raw(self.stmt()).await.map_err(|e| failed(e, head))
    }

    pub(crate) async fn one(self, conn: &impl ConnectionTrait) -> Result<Option<QueryResult>> {
        let head = self.head();
        conn.query_one_raw(self.stmt()).await.map_err(|e| failed(e, head))
    }

    pub(crate) async fn exec(self, conn: &impl ConnectionTrait) -> Result<u64> {
        let head = self.head();
        Ok(conn.execute_raw(self.stmt()).await.map_err(|e| failed(e, head))?.rows_affected())
    }
}

/// `sql` written with `?` placeholders, as the backend spells them (`$1, $2, …` on
/// PostgreSQL), with its values.
pub(crate) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            let mut n = 0;
            sql.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Runs `sql` (with `?` placeholders) and returns the rows it changed.
pub(crate) async fn exec(conn: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<u64> {
    Ok(conn.execute_raw(statement(conn.get_database_backend(), sql, values)).await?.rows_affected())
}

/// A database error with the statement that caused it, for the logs; connection
/// trouble stays [`StoreError::Unavailable`].
fn failed(e: sea_orm::DbErr, head: String) -> StoreError {
    StoreError::from(e).context(format!("in {head}…"))
}

/// `LEAST` / `GREATEST` on PostgreSQL, `MIN` / `MAX` (scalar) on SQLite.
pub(crate) fn least(b: DbBackend) -> &'static str {
    if b == DbBackend::Postgres { "LEAST" } else { "MIN" }
}

pub(crate) fn greatest(b: DbBackend) -> &'static str {
    if b == DbBackend::Postgres { "GREATEST" } else { "MAX" }
}

/// `INSERT INTO table (cols) VALUES (…), (…) <tail>` in as few statements as the
/// parameter limit allows, returning the rows any `RETURNING` in `tail` yields.
pub(crate) async fn insert_rows(
    conn: &impl ConnectionTrait,
    table: &str,
    cols: &[&str],
    rows: Vec<Vec<Value>>,
    tail: &str,
) -> Result<Vec<QueryResult>> {
    let per = (MAX_PARAMS / cols.len()).clamp(1, 1_000);
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut q =
            Sql::new(conn.get_database_backend(), &format!("INSERT INTO {table} ({}) VALUES ", cols.join(", ")));
        for (i, row) in rows.by_ref().take(per).enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.list(row);
        }
        q.push(" ");
        q.push(tail);
        if tail.contains("RETURNING") {
            out.extend(q.all(conn).await?);
        } else {
            q.exec(conn).await?;
        }
    }
    Ok(out)
}

/// `ON CONFLICT (keys) DO UPDATE SET c = table.c + excluded.c, …`.
pub(crate) fn add_on_conflict(table: &str, keys: &str, counters: &[&str]) -> String {
    let sets: Vec<String> = counters.iter().map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect();
    format!("ON CONFLICT ({keys}) DO UPDATE SET {}", sets.join(", "))
}

pub(crate) fn get<T: sea_orm::TryGetable>(row: &QueryResult, i: usize) -> Result<T> {
    Ok(row.try_get_by_index::<T>(i)?)
}

/// Reads an integer column whatever width the backend gives it.
pub(crate) fn get_i64(row: &QueryResult, i: usize) -> Result<i64> {
    match row.try_get_by_index::<i64>(i) {
        Ok(v) => Ok(v),
        Err(_) => Ok(row.try_get_by_index::<i32>(i)? as i64),
    }
}

pub(crate) fn get_opt_i64(row: &QueryResult, i: usize) -> Result<Option<i64>> {
    match row.try_get_by_index::<Option<i64>>(i) {
        Ok(v) => Ok(v),
        Err(_) => Ok(row.try_get_by_index::<Option<i32>>(i)?.map(i64::from)),
    }
}
