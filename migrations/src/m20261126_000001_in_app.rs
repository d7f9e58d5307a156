//! In-app feedback: per-tenant identity verification (a flag and the HMAC secret the
//! CRM's server shares), and the time an invitation was dismissed.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        m.alter_table(
            Table::alter().table("tenants").add_column(boolean("identity_verification").default(false)).to_owned(),
        )
        .await?;
        m.alter_table(Table::alter().table("tenants").add_column(string_len_null("identity_secret", 100)).to_owned())
            .await?;
        m.alter_table(Table::alter().table("invitations").add_column(big_integer_null("dismissed_at")).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("invitations").drop_column("dismissed_at").to_owned()).await?;
        m.alter_table(Table::alter().table("tenants").drop_column("identity_secret").to_owned()).await?;
        m.alter_table(Table::alter().table("tenants").drop_column("identity_verification").to_owned()).await?;
        Ok(())
    }
}
