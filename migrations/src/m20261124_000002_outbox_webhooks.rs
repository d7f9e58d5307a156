//! The event outbox, webhook endpoints, deliveries and their attempts (docs/webhooks.md).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::{id, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Events are written with `seq` NULL in the transaction of the change they
        // record; the sequencer numbers committed events per tenant, in order, so a
        // reader that follows `seq` never skips one that commits late.
        m.create_table(
            Table::create()
                .table("events")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(big_integer_null("seq"))
                .col(string_len("event_type", 64))
                .col(text("data"))
                .col(big_integer("created_at"))
                .col(big_integer_null("sequenced_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("events", "seq", &["tenant_id", "seq"], true)).await?;
        m.create_index(index("events", "unsequenced", &["seq", "id"], false)).await?;
        m.create_index(index("events", "created", &["created_at"], false)).await?;

        m.create_table(
            Table::create()
                .table("webhook_endpoints")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(text("url"))
                .col(string_len("description", 200))
                .col(text("event_types"))
                .col(text("survey_ids"))
                .col(string_len("secret", 128))
                .col(boolean("enabled"))
                .col(text("disabled_reason"))
                .col(big_integer_null("failing_since"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("webhook_endpoints", "tenant", &["tenant_id", "id"], false)).await?;

        m.create_table(
            Table::create()
                .table("deliveries")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("endpoint_id", 64))
                .col(string_len("event_id", 64))
                .col(big_integer("event_seq"))
                .col(string_len("event_type", 64))
                .col(text("payload"))
                .col(text_null("body"))
                .col(string_len("status", 16))
                .col(integer("attempts"))
                .col(big_integer("next_attempt_at"))
                .col(big_integer_null("last_attempt_at"))
                .col(integer_null("last_status_code"))
                .col(text("last_error"))
                .col(big_integer("event_created_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("deliveries", "due", &["status", "next_attempt_at"], false)).await?;
        m.create_index(index("deliveries", "endpoint", &["tenant_id", "endpoint_id", "id"], false)).await?;
        m.create_index(index("deliveries", "event", &["tenant_id", "event_id"], false)).await?;

        m.create_table(
            Table::create()
                .table("delivery_attempts")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("delivery_id", 64))
                .col(integer("attempt"))
                .col(big_integer("attempted_at"))
                .col(integer_null("status_code"))
                .col(text("error"))
                .col(big_integer("duration_ms"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("delivery_attempts", "delivery", &["delivery_id", "attempt"], false)).await?;

        // The per-tenant event counter, touched only by the sequencer.
        m.alter_table(Table::alter().table("tenants").add_column(big_integer("event_seq").default(0)).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("tenants").drop_column("event_seq").to_owned()).await?;
        for t in ["delivery_attempts", "deliveries", "webhook_endpoints", "events"] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
