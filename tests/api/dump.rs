//! Every value of every column of every table, read straight from the database: what
//! someone holding only the database (a backup, a replica) could read. The privacy
//! tests search it for what must not be there.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

/// One stored value: table, column, the value as text (the first two are read through
/// `Debug`, in the messages of failed assertions).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Cell {
    pub table: String,
    pub column: String,
    pub value: String,
}

async fn strings(conn: &sea_orm::DatabaseConnection, sql: &str) -> Vec<Option<String>> {
    let backend = conn.get_database_backend();
    conn.query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|row| row.try_get_by_index::<Option<String>>(0).unwrap_or_else(|e| panic!("{sql}: {e:?}")))
        .collect()
}

/// Every non-null value of the database at `url`, as text.
pub async fn database(url: &str) -> Vec<Cell> {
    let conn = Database::connect(url).await.expect("the test database");
    let backend = conn.get_database_backend();
    let tables = match backend {
        DbBackend::Sqlite => {
            strings(&conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").await
        }
        _ => {
            strings(&conn, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'").await
        }
    };
    let mut out = Vec::new();
    for table in tables.into_iter().flatten() {
        let columns = match backend {
            DbBackend::Sqlite => strings(&conn, &format!("SELECT name FROM pragma_table_info('{table}')")).await,
            _ => {
                strings(
                    &conn,
                    &format!(
                        "SELECT column_name::text FROM information_schema.columns \
                         WHERE table_schema = 'public' AND table_name = '{table}'"
                    ),
                )
                .await
            }
        };
        for column in columns.into_iter().flatten() {
            let sql = format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"");
            for value in strings(&conn, &sql).await.into_iter().flatten() {
                out.push(Cell { table: table.clone(), column: column.clone(), value });
            }
        }
    }
    let _ = conn.close().await;
    out
}

/// The cells that contain `needle` (an empty needle matches nothing).
pub fn containing<'a>(cells: &'a [Cell], needle: &str) -> Vec<&'a Cell> {
    if needle.is_empty() {
        return Vec::new();
    }
    cells.iter().filter(|c| c.value.contains(needle)).collect()
}
