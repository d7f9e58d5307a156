//! History partitioned by month (docs/operations.md, "History partitions"): raw
//! activity events and webhook delivery attempts grow without end, and retention used
//! to delete them row by row. On PostgreSQL both become tables partitioned BY RANGE on
//! their time — `activity_events` on `occurred_at` (what retention, the export and the
//! recomputation select and order by), `delivery_attempts` on `attempted_at` — one
//! partition per calendar month (UTC) named `<table>_pYYYYMM`, and a DEFAULT partition
//! `<table>_default` for a row whose month has none yet. The partitions worker keeps
//! months ready ahead and moves rows out of the default partition; retention drops a
//! month whole once every row in it is past its tenant's retention.
//!
//! A unique key of a partitioned table must contain the partition column, so the
//! primary key of `activity_events` can no longer be the deduplication ("a message id
//! is recorded once per tenant, forever"). That moves to `activity_event_ids`, a narrow
//! table keyed by (tenant, message id), on both databases: ingestion inserts there
//! first and keeps only the ids it inserted. It also holds the payload's hash (to tell
//! a replay from a reused id) and the customer's row (so an erasure removes it). Its
//! rows stay after retention removes the events: dedup holds forever.
//!
//! Up on PostgreSQL: each table is renamed, the partitioned table is created like it,
//! with a partition for every month its rows span, this month and two more, and the
//! default; the rows are copied, the old table dropped, then the keys and indexes
//! built: `activity_events` (tenant_id, occurred_at, message_id) — tenant first, then
//! the time the reads range over — and `delivery_attempts` (tenant_id, id,
//! attempted_at) with its index by delivery. The copy takes as long as the tables are
//! big: plan it like any rewrite of them. SQLite keeps plain tables.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One history table: its name, its time column, its primary key when partitioned,
/// its primary key before, and its other indexes (name, columns).
struct History {
    table: &'static str,
    column: &'static str,
    key: &'static str,
    old_key: &'static str,
    indexes: &'static [(&'static str, &'static str)],
}

const HISTORY: [History; 2] = [
    History {
        table: "activity_events",
        column: "occurred_at",
        key: "tenant_id, occurred_at, message_id",
        old_key: "tenant_id, message_id",
        indexes: &[],
    },
    History {
        table: "delivery_attempts",
        column: "attempted_at",
        key: "tenant_id, id, attempted_at",
        old_key: "id",
        indexes: &[("ix_delivery_attempts_delivery", "delivery_id, attempt")],
    },
];

/// Creates a partition of `table` for every month (UTC) that `months` (a query of
/// timestamps) yields, in the years 1970–9999; the default partition takes the rest.
fn create_monthly_partitions(table: &str, months: &str) -> String {
    format!(
        "DO $$ DECLARE m timestamp; BEGIN \
           FOR m IN {months} LOOP \
             IF extract(year FROM m) BETWEEN 1970 AND 9999 THEN \
               EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)', \
                 '{table}_p' || to_char(m, 'YYYYMM'), '{table}', \
                 (extract(epoch FROM m) * 1000000)::bigint, \
                 (extract(epoch FROM m + interval '1 month') * 1000000)::bigint); \
             END IF; \
           END LOOP; \
         END $$"
    )
}

/// The months of the rows of `table`'s time `column`, this month and two more.
fn months_of(table: &str, column: &str) -> String {
    format!(
        "SELECT DISTINCT date_trunc('month', to_timestamp({column} / 1000000) AT TIME ZONE 'UTC') FROM {table} \
         UNION SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + k * interval '1 month' \
         FROM generate_series(0, 2) k"
    )
}

async fn partition(db: &SchemaManagerConnection<'_>, h: &History) -> Result<(), DbErr> {
    let (t, old) = (h.table, format!("{}_unpartitioned", h.table));
    for sql in [
        format!("ALTER TABLE {t} RENAME TO {old}"),
        format!("CREATE TABLE {t} (LIKE {old}) PARTITION BY RANGE ({})", h.column),
        format!("CREATE TABLE {t}_default PARTITION OF {t} DEFAULT"),
        create_monthly_partitions(t, &months_of(&old, h.column)),
        format!("INSERT INTO {t} SELECT * FROM {old}"),
        format!("DROP TABLE {old}"),
        // Built after the copy (faster than row by row), on every partition.
        format!("ALTER TABLE {t} ADD PRIMARY KEY ({})", h.key),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    for (name, cols) in h.indexes {
        db.execute_unprepared(&format!("CREATE INDEX {name} ON {t} ({cols})")).await?;
    }
    Ok(())
}

async fn unpartition(db: &SchemaManagerConnection<'_>, h: &History) -> Result<(), DbErr> {
    let (t, old) = (h.table, format!("{}_partitioned", h.table));
    for sql in [
        format!("ALTER TABLE {t} RENAME TO {old}"),
        format!("CREATE TABLE {t} (LIKE {old})"),
        format!("INSERT INTO {t} SELECT * FROM {old}"),
        format!("DROP TABLE {old}"),
        format!("ALTER TABLE {t} ADD PRIMARY KEY ({})", h.old_key),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    for (name, cols) in h.indexes {
        db.execute_unprepared(&format!("CREATE INDEX {name} ON {t} ({cols})")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("activity_event_ids")
                .col(string_len("tenant_id", 64))
                .col(string_len("message_id", 200))
                .col(string_len("customer_id", 64))
                .col(string_len("payload_hash", 32))
                .primary_key(Index::create().col("tenant_id").col("message_id"))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "INSERT INTO activity_event_ids (tenant_id, message_id, customer_id, payload_hash) \
             SELECT tenant_id, message_id, customer_id, payload_hash FROM activity_events",
        )
        .await?;
        if db.get_database_backend() == DbBackend::Postgres {
            for h in &HISTORY {
                partition(db, h).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            for h in &HISTORY {
                unpartition(db, h).await?;
            }
        }
        m.drop_table(Table::drop().table("activity_event_ids").to_owned()).await
    }
}
