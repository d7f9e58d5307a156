//! Branding: the display name, accent colour, logo and language of a survey's hosted
//! page and widget, per survey and as a tenant's default. Empty text means "not set"
//! (a survey's empty field takes the tenant's, an empty tenant field the built-in look).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (column, length): the same four on `surveys` and `tenants`.
const COLUMNS: [(&str, u32); 4] =
    [("brand_display_name", 400), ("brand_accent_color", 7), ("brand_logo_url", 2000), ("language", 35)];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for table in ["surveys", "tenants"] {
            for (col, len) in COLUMNS {
                m.alter_table(Table::alter().table(table).add_column(string_len(col, len).default("")).to_owned())
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["tenants", "surveys"] {
            for (col, _) in COLUMNS.iter().rev() {
                m.alter_table(Table::alter().table(table).drop_column(*col).to_owned()).await?;
            }
        }
        Ok(())
    }
}
