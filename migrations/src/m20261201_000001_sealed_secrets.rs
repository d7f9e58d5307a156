//! Secrets at rest (docs/privacy.md): webhook signing secrets and identity-verification
//! secrets are stored sealed (XChaCha20-Poly1305) under a key the database does not hold.
//! Each sealed column gets the id of the key that sealed it beside it; NULL there means
//! the value is still plain (written before this migration). The server seals those rows
//! when it starts, with its configured key — a migration has no key to seal with.
//! On PostgreSQL the secret columns become TEXT, since a sealed value is longer than the
//! plain one (SQLite does not enforce VARCHAR lengths).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, sealed column, its key-id column).
const SEALED: [(&str, &str, &str); 2] =
    [("webhook_endpoints", "secret", "secret_key_id"), ("tenants", "identity_secret", "identity_secret_key_id")];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column, key_id) in SEALED {
            m.alter_table(Table::alter().table(table).add_column(string_len_null(key_id, 32)).to_owned()).await?;
            if m.get_database_backend() == DbBackend::Postgres {
                m.get_connection()
                    .execute_unprepared(&format!("ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Sealed values stay sealed: going down makes them unreadable to the older server.
        for (table, _, key_id) in SEALED {
            m.alter_table(Table::alter().table(table).drop_column(key_id).to_owned()).await?;
        }
        Ok(())
    }
}
