//! Imported history: the external id each imported answer came with, so an import can
//! be run again and answers it already took are recognised (docs/imports.md).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::{fk, id, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("imported_responses")
                // The response's id: one imported answer is one response.
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("external_id", 200))
                .col(string_len("request_hash", 64))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("imported_responses", "tenant_id", "tenants"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("imported_responses", "external", &["tenant_id", "external_id"], true)).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("imported_responses").to_owned()).await
    }
}
