//! Keys you can manage and the audit log (docs/privacy.md, "Keys and the audit log"):
//! an optional expiry and the time of last use on API keys, and an append-only log of
//! administrative actions — who (the key, the operator, the command line), what, when;
//! never a secret. Triggers refuse to change or delete a logged action on both
//! databases, so "append-only" does not rest on the code alone.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::util::{id, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for col in [big_integer_null("expires_at"), big_integer_null("last_used_at")] {
            m.alter_table(Table::alter().table("api_keys").add_column(col).to_owned()).await?;
        }
        m.create_index(index("api_keys", "tenant", &["tenant_id", "id"], false)).await?;

        m.create_table(
            Table::create()
                .table("audit_log")
                // UUIDv7: ordered by time.
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                // `key:<id>`, `operator` or `cli`.
                .col(string_len("actor", 80))
                .col(string_len("action", 64))
                .col(string_len("target", 200))
                // What changed, as JSON; never a secret, a comment or a customer's data.
                .col(text("details"))
                .col(big_integer("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("audit_log", "tenant", &["tenant_id", "id"], false)).await?;

        let db = m.get_connection();
        match m.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log \
                     FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
                )
                .await?;
            }
            _ => {
                for what in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER audit_log_no_{w} BEFORE {what} ON audit_log \
                         BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
                        w = what.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("audit_log").to_owned()).await?;
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection().execute_unprepared("DROP FUNCTION IF EXISTS audit_log_append_only()").await?;
        }
        m.drop_index(Index::drop().name("ix_api_keys_tenant").table("api_keys").to_owned()).await?;
        for c in ["last_used_at", "expires_at"] {
            m.alter_table(Table::alter().table("api_keys").drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
