//! Events are numbered in the transaction that writes them, no longer afterwards by a
//! sequencer. The writer bumps `tenants.event_seq` (which locks the tenant's row until
//! it commits, so numbers are committed in order) and inserts its events numbered;
//! a number that is visible therefore has every lower number visible too. What the
//! sequencer did besides — creating webhook deliveries — follows a per-tenant cursor,
//! `fanout_cursors.seq`: the last event whose deliveries exist.
//!
//! Rewriting every event once more to number it (with its payload and every index
//! entry, since `seq` is indexed) and scanning for the unnumbered ones had become a
//! third of what `rapport-bench records` cost PostgreSQL.
//!
//! Up: every tenant's cursor starts at its last number (those events were fanned out
//! together with their numbering), then events still unnumbered are numbered in id
//! order, so the fan-out picks them up. Down: the reverse; numbered events stay.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement, TryGetable};

use crate::util::{id, pending_events_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("fanout_cursors")
                // The tenant's id.
                .col(id("id"))
                .col(big_integer("seq"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared("INSERT INTO fanout_cursors (id, seq, updated_at) SELECT id, event_seq, 0 FROM tenants")
            .await?;
        number_pending_events(db).await?;
        m.drop_index(Index::drop().name("ix_events_pending").table("events").to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(pending_events_index()).await?;
        m.drop_table(Table::drop().table("fanout_cursors").to_owned()).await
    }
}

/// Numbers the events a sequencer had not numbered yet, per tenant in id order after
/// the tenant's last number. Usually there are none or a handful (those committed in
/// the last moments before an upgrade), so one statement per event is fine.
async fn number_pending_events(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let pending = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, tenant_id FROM events WHERE seq IS NULL ORDER BY tenant_id, id",
        ))
        .await?;
    let mut current: Option<(String, i64)> = None;
    for row in pending {
        let event_id = String::try_get(&row, "", "id").map_err(|e| DbErr::Type(format!("{e:?}")))?;
        let tenant_id = String::try_get(&row, "", "tenant_id").map_err(|e| DbErr::Type(format!("{e:?}")))?;
        let seq = match &current {
            Some((t, last)) if *t == tenant_id => last + 1,
            _ => last_number(db, backend, &tenant_id).await? + 1,
        };
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, "UPDATE events SET seq = ?, sequenced_at = created_at WHERE id = ?"),
            [seq.into(), event_id.into()],
        ))
        .await?;
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, "UPDATE tenants SET event_seq = ? WHERE id = ?"),
            [seq.into(), tenant_id.clone().into()],
        ))
        .await?;
        current = Some((tenant_id, seq));
    }
    Ok(())
}

async fn last_number(db: &SchemaManagerConnection<'_>, backend: DbBackend, tenant: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, "SELECT event_seq FROM tenants WHERE id = ?"),
            [tenant.into()],
        ))
        .await?;
    // An event of a tenant that no longer exists starts at 1.
    Ok(match row {
        Some(row) => i64::try_get(&row, "", "event_seq").map_err(|e| DbErr::Type(format!("{e:?}")))?,
        None => 0,
    })
}

/// `?` placeholders as the backend spells them.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
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
    }
}
