//! Retention per tenant (docs/privacy.md, "Retention"): how many days raw activity
//! events, answers' comments, invitations' tokens and webhook delivery logs are kept.
//! No row means the documented defaults; 0 keeps forever.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("retention_policies")
                .col(string_len("tenant_id", 64).primary_key())
                .col(integer("activity_event_days"))
                .col(integer("comment_days"))
                .col(integer("invitation_days"))
                .col(integer("delivery_log_days"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("retention_policies").to_owned()).await
    }
}
