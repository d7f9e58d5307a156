//! A small SQL builder for hand-written statements (engagement, privacy, retention):
//! placeholders for either backend, multi-row inserts within the parameter limits,
//! and column readers that accept whatever integer width the backend returns. Shared
//! by the write side (`engagement`) and the read side (`engagement_read`).

use sea_orm::sea_query::{Expr, ExprTrait, PgFunc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, Iterable, ModelTrait, QueryResult, Statement,
    Value,
};

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

    pub(crate) fn backend(&self) -> DbBackend {
        self.backend
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

    /// ` IN (?, ?, …)`, or on PostgreSQL ` = ANY($n)` with one array: the text is the
    /// same whatever the list's length, so it is planned once per connection. An empty
    /// list matches nothing on either backend.
    pub(crate) fn in_list(&mut self, items: impl IntoIterator<Item = String>) -> &mut Self {
        let items: Vec<String> = items.into_iter().collect();
        if self.backend == DbBackend::Postgres {
            self.push(" = ANY(").bind(items).push("::text[])")
        } else if items.is_empty() {
            self.push(" IN (SELECT NULL WHERE 1 = 0)")
        } else {
            self.push(" IN ").list(items)
        }
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
///
/// On PostgreSQL the rows go as one array per column instead
/// (`INSERT … SELECT … FROM UNNEST($1::text[], $2::int8[], …)`), whatever their number:
/// the statement's text depends only on the table, the columns and which of them hold
/// a NULL, so the server parses and plans it once per connection rather than once per
/// batch size, and a batch of 1 000 rows binds a dozen parameters, not 12 000
/// (docs/benchmarks.md, "Engagement").
pub(crate) async fn insert_rows(
    conn: &impl ConnectionTrait,
    table: &str,
    cols: &[&str],
    rows: Vec<Vec<Value>>,
    tail: &str,
) -> Result<Vec<QueryResult>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if conn.get_database_backend() == DbBackend::Postgres
        && let Some(q) = unnest_insert(table, cols, &rows, tail)
    {
        return if tail.contains("RETURNING") { q.all(conn).await } else { q.exec(conn).await.map(|_| Vec::new()) };
    }
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

/// [`insert_rows`] for an entity's models, every column in the entity's order: the
/// replacement for sea-orm's `insert_many`, whose statement text changes with the
/// number of rows (each new text is parsed, described and planned again on every
/// connection, and on the main pool's 100-statement cache pushes others out).
pub(crate) async fn insert_models<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    models: &[E::Model],
    tail: &str,
) -> Result<Vec<QueryResult>> {
    let (table, names, rows) = model_rows::<E>(models);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    insert_rows(conn, &table, &names, rows, tail).await
}

/// A filter `col IN (…)`, or on PostgreSQL `col = ANY($1)` with one array, so that the
/// statement's text does not change with the number of values (see [`insert_models`]).
pub(crate) fn one_of<C: ColumnTrait>(backend: DbBackend, col: C, values: Vec<String>) -> Expr {
    if backend == DbBackend::Postgres {
        Expr::col(col.as_column_ref()).eq(PgFunc::any(Expr::val(values)))
    } else {
        col.is_in(values)
    }
}

/// One column's values as a PostgreSQL array, and which rows are NULL.
enum Column {
    Text(Vec<String>),
    BigInt(Vec<i64>),
    Int(Vec<i32>),
    SmallInt(Vec<i16>),
    Double(Vec<f64>),
    Bool(Vec<bool>),
}

impl Column {
    /// The empty array for a value's type; `None` for a type not sent this way.
    fn of(v: &Value, n: usize) -> Option<Column> {
        Some(match v {
            Value::String(_) => Column::Text(Vec::with_capacity(n)),
            Value::BigInt(_) => Column::BigInt(Vec::with_capacity(n)),
            Value::Int(_) => Column::Int(Vec::with_capacity(n)),
            Value::SmallInt(_) => Column::SmallInt(Vec::with_capacity(n)),
            Value::Double(_) => Column::Double(Vec::with_capacity(n)),
            Value::Bool(_) => Column::Bool(Vec::with_capacity(n)),
            _ => return None,
        })
    }

    /// Appends a value (a placeholder for NULL); `None` when its type differs from the
    /// column's, `Some(true)` for a NULL.
    fn push(&mut self, v: &Value) -> Option<bool> {
        /// Appends the value or, for NULL, the type's default; true for NULL.
        fn put<T: Clone + Default>(a: &mut Vec<T>, x: &Option<T>) -> bool {
            a.push(x.clone().unwrap_or_default());
            x.is_none()
        }
        Some(match (self, v) {
            (Column::Text(a), Value::String(x)) => put(a, x),
            (Column::BigInt(a), Value::BigInt(x)) => put(a, x),
            (Column::Int(a), Value::Int(x)) => put(a, x),
            (Column::SmallInt(a), Value::SmallInt(x)) => put(a, x),
            (Column::Double(a), Value::Double(x)) => put(a, x),
            (Column::Bool(a), Value::Bool(x)) => put(a, x),
            _ => return None,
        })
    }

    fn sql_type(&self) -> &'static str {
        match self {
            Column::Text(_) => "text[]",
            Column::BigInt(_) => "int8[]",
            Column::Int(_) => "int4[]",
            Column::SmallInt(_) => "int2[]",
            Column::Double(_) => "float8[]",
            Column::Bool(_) => "bool[]",
        }
    }

    fn into_value(self) -> Value {
        match self {
            Column::Text(a) => a.into(),
            Column::BigInt(a) => a.into(),
            Column::Int(a) => a.into(),
            Column::SmallInt(a) => a.into(),
            Column::Double(a) => a.into(),
            Column::Bool(a) => a.into(),
        }
    }
}

/// Rows turned into one array per column (and a NULL mask per column that holds one).
struct Unnested {
    arrays: Vec<Column>,
    nulls: Vec<Vec<bool>>,
}

/// `None` when a value is of a type not sent this way, or rows differ in shape.
fn unnested(cols: &[&str], rows: &[Vec<Value>]) -> Option<Unnested> {
    let first = rows.first()?;
    if first.len() != cols.len() {
        return None;
    }
    let mut arrays: Vec<Column> = first.iter().map(|v| Column::of(v, rows.len())).collect::<Option<_>>()?;
    let mut nulls: Vec<Vec<bool>> = vec![Vec::with_capacity(rows.len()); cols.len()];
    for row in rows {
        if row.len() != cols.len() {
            return None;
        }
        for (i, v) in row.iter().enumerate() {
            nulls[i].push(arrays[i].push(v)?);
        }
    }
    for n in &mut nulls {
        if !n.contains(&true) {
            n.clear();
        }
    }
    Some(Unnested { arrays, nulls })
}

impl Unnested {
    /// Appends `INSERT INTO table (cols) SELECT … FROM <from>UNNEST($n::text[], …) AS
    /// u(c0, …, n0, …) `; `expr` may rewrite column i's expression (`u.ci`).
    fn push_insert(self, q: &mut Sql, table: &str, cols: &[&str], from: &str, expr: impl Fn(usize, String) -> String) {
        q.push(&format!("INSERT INTO {table} ({}) SELECT ", cols.join(", ")));
        for (i, n) in self.nulls.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let e =
                if n.is_empty() { format!("u.c{i}") } else { format!("CASE WHEN u.n{i} THEN NULL ELSE u.c{i} END") };
            q.push(&expr(i, e));
        }
        q.push(" FROM ").push(from).push("UNNEST(");
        let mut names = Vec::new();
        for (i, a) in self.arrays.into_iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let ty = a.sql_type();
            q.bind(a.into_value()).push("::").push(ty);
            names.push(format!("c{i}"));
        }
        for (i, n) in self.nulls.into_iter().enumerate() {
            if !n.is_empty() {
                q.push(", ").bind(n).push("::bool[]");
                names.push(format!("n{i}"));
            }
        }
        q.push(&format!(") AS u({}) ", names.join(", ")));
    }
}

/// The PostgreSQL form of [`insert_rows`]: `INSERT INTO table (cols) SELECT … FROM
/// UNNEST($1::text[], …) AS u(c0, …, n0, …) <tail>`, a column holding a NULL getting a
/// second, boolean array that says where. `None` when a value is of a type not sent
/// this way, or rows differ in shape (the caller then uses VALUES).
fn unnest_insert(table: &str, cols: &[&str], rows: &[Vec<Value>], tail: &str) -> Option<Sql> {
    let u = unnested(cols, rows)?;
    let mut q = Sql::new(DbBackend::Postgres, "");
    u.push_insert(&mut q, table, cols, "", |_, e| e);
    q.push(tail);
    Some(q)
}

/// An entity's quoted table and column names, and its models as rows in that order.
fn model_rows<E: EntityTrait>(models: &[E::Model]) -> (String, Vec<String>, Vec<Vec<Value>>) {
    let cols: Vec<E::Column> = E::Column::iter().collect();
    let names = cols.iter().map(|c| format!("\"{}\"", c.as_str())).collect();
    let rows = models.iter().map(|m| cols.iter().map(|c| m.get(*c)).collect()).collect();
    (format!("\"{}\"", E::default().table_name()), names, rows)
}

/// PostgreSQL only: inserts into several tables as one statement (one round trip
/// instead of one per table), each insert but the last a data-modifying `WITH` clause.
/// Every part is planned together and the whole is one statement: it commits or fails
/// as one, and foreign keys between the parts are checked at its end, when all rows are
/// in. The text depends on which parts have rows, not on how many.
pub(crate) struct InsertChain {
    q: Sql,
    parts: usize,
}

impl InsertChain {
    pub(crate) fn new() -> Self {
        InsertChain { q: Sql::new(DbBackend::Postgres, ""), parts: 0 }
    }

    fn open_part(&mut self, name: &str) {
        self.q.push(if self.parts == 0 { "WITH " } else { ", " });
        self.q.push(name).push(" AS (");
        self.parts += 1;
    }

    /// Adds the insert of `models` (nothing when there are none). `None` when a value
    /// cannot go as an array (the caller writes the tables one by one instead).
    pub(crate) fn models<E: EntityTrait>(mut self, models: &[E::Model]) -> Option<Self> {
        if models.is_empty() {
            return Some(self);
        }
        let (table, names, rows) = model_rows::<E>(models);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let u = unnested(&names, &rows)?;
        self.open_part(&format!("w{}", self.parts));
        u.push_insert(&mut self.q, &table, &names, "", |_, e| e);
        self.q.push(")");
        Some(self)
    }

    /// Adds a part of the caller's, named `name` for the last insert to read from.
    pub(crate) fn part(mut self, name: &str, build: impl FnOnce(&mut Sql)) -> Self {
        self.open_part(name);
        build(&mut self.q);
        self.q.push(")");
        self
    }

    /// The statement, ending with the insert of `models` whose rows are read with
    /// `from` (`"s, "` joins a part named `s`) and whose column i is `expr(i, u.ci)`.
    pub(crate) fn finish<E: EntityTrait>(
        mut self,
        models: &[E::Model],
        from: &str,
        expr: impl Fn(usize, String) -> String,
    ) -> Option<Sql> {
        let (table, names, rows) = model_rows::<E>(models);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let u = unnested(&names, &rows)?;
        if self.parts > 0 {
            self.q.push(" ");
        }
        u.push_insert(&mut self.q, &table, &names, from, expr);
        Some(self.q)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: Option<&str>, n: i64) -> Vec<Value> {
        vec!["t".into(), name.map(str::to_owned).into(), n.into()]
    }

    #[test]
    fn rows_go_as_one_array_per_column_and_the_text_does_not_depend_on_their_number() {
        let cols = ["tenant_id", "name", "n"];
        let two = unnest_insert("x", &cols, &[row(Some("a"), 1), row(Some("b"), 2)], "").expect("sent as arrays");
        let three = unnest_insert("x", &cols, &[row(Some("a"), 1), row(Some("b"), 2), row(Some("c"), 3)], "")
            .expect("sent as arrays");
        assert_eq!(two.text, three.text);
        assert_eq!(
            two.text,
            "INSERT INTO x (tenant_id, name, n) SELECT u.c0, u.c1, u.c2 FROM UNNEST($1::text[], $2::text[], \
             $3::int8[]) AS u(c0, c1, c2) "
        );
        assert_eq!(three.values.len(), 3, "one parameter per column, whatever the rows");
    }

    #[test]
    fn a_column_holding_a_null_gets_a_second_array_that_says_where() {
        let q = unnest_insert("x", &["tenant_id", "name", "n"], &[row(Some("a"), 1), row(None, 2)], "RETURNING n")
            .expect("sent as arrays");
        assert_eq!(
            q.text,
            "INSERT INTO x (tenant_id, name, n) SELECT u.c0, CASE WHEN u.n1 THEN NULL ELSE u.c1 END, u.c2 FROM \
             UNNEST($1::text[], $2::text[], $3::int8[], $4::bool[]) AS u(c0, c1, c2, n1) RETURNING n"
        );
        assert_eq!(q.values[3], Value::from(vec![false, true]));
    }

    #[test]
    fn rows_of_another_shape_or_type_fall_back_to_values() {
        let cols = ["tenant_id", "name", "n"];
        let mixed = vec!["t".into(), Value::String(None), Value::Int(Some(1))];
        assert!(unnest_insert("x", &cols, &[row(Some("a"), 1), mixed], "").is_none());
        assert!(unnest_insert("x", &cols, &[vec!["t".into()]], "").is_none());
        let json = vec!["t".into(), Value::Json(None), Value::BigInt(Some(1))];
        assert!(unnest_insert("x", &cols, &[json], "").is_none());
    }
}
