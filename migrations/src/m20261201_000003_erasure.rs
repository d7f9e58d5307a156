//! Erasure (docs/privacy.md, "Erasing a customer"): the tombstones of erased customers.
//! A tombstone holds a hash of the tenant and the CRM's customer id — never the id —
//! so a late event, answer or import naming an erased customer is refused instead of
//! creating the customer again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("erased_customers")
                .col(string_len("tenant_id", 64))
                // Hex SHA-256 of the tenant and the CRM's id (domain::privacy::subject_hash).
                .col(string_len("subject_hash", 64))
                // The erasure's id, as in the audit log.
                .col(string_len("erasure_id", 64))
                .col(big_integer("erased_at"))
                .primary_key(Index::create().col("tenant_id").col("subject_hash"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("erased_customers").to_owned()).await
    }
}
