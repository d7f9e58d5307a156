//! Tenants, keys, surveys, customers, invitations, responses and follow-ups.
//!
//! Foreign keys link each row to its own parents (a response to its customer and
//! invitation, a follow-up to its response). The hot write tables carry no foreign key
//! to `tenants` or `surveys`: every writer would lock the same parent row (PostgreSQL's
//! FOR KEY SHARE), which serialises writes of one tenant; tenant scoping is enforced by
//! every query instead (`store::entities::Scoped`).

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
                .table("tenants")
                .col(id("id"))
                .col(string_len_uniq("name", 200))
                .col(string_len("time_zone", 64).default("UTC"))
                .col(integer("days_after_invitation_this_survey").default(0))
                .col(integer("days_after_invitation_any_survey").default(0))
                .col(integer("days_after_response_this_survey").default(90))
                .col(integer("days_after_response_any_survey").default(30))
                .col(integer("invitation_expiry_days").default(30))
                .col(big_integer("created_at"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("api_keys")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("kind", 16))
                .col(string_len_uniq("key_hash", 64))
                .col(string_len("prefix", 32))
                .col(big_integer("created_at"))
                .col(big_integer_null("revoked_at"))
                .foreign_key(&mut fk("api_keys", "tenant_id", "tenants"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("surveys")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("kind", 8))
                .col(string_len("name", 200))
                .col(text("question"))
                .col(integer("scale_max"))
                .col(string_len("low_label", 100))
                .col(string_len("high_label", 100))
                .col(integer_null("days_after_invitation_this_survey"))
                .col(integer_null("days_after_invitation_any_survey"))
                .col(integer_null("days_after_response_this_survey"))
                .col(integer_null("days_after_response_any_survey"))
                .col(integer_null("invitation_expiry_days"))
                .col(integer_null("follow_up_threshold"))
                .col(text("follow_up_condition"))
                .col(integer_null("follow_up_sla_hours"))
                .col(boolean("follow_up_disabled"))
                .col(boolean("in_app"))
                .col(big_integer_null("archived_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("surveys", "tenant_id", "tenants"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("surveys", "tenant", &["tenant_id", "id"], false)).await?;

        m.create_table(
            Table::create()
                .table("customers")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("external_id", 128))
                .col(text("properties"))
                .col(big_integer_null("unsubscribed_at"))
                .col(big_integer_null("erased_at"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("customers", "external", &["tenant_id", "external_id"], true)).await?;

        // Issued invitations and recorded suppressions share one table, so the funnel
        // and the cooldowns read one place.
        m.create_table(
            Table::create()
                .table("invitations")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("survey_id", 64))
                .col(string_len("customer_id", 64))
                .col(string_len("channel", 16))
                .col(string_len("outcome", 16))
                .col(string_len_null("rule", 32))
                .col(big_integer_null("next_eligible_at"))
                .col(string_len_null("token_hash", 64).unique_key())
                .col(boolean("forced"))
                .col(string_len_null("idempotency_key", 200))
                .col(string_len_null("request_hash", 64))
                .col(big_integer("created_at"))
                .col(big_integer_null("expires_at"))
                .col(big_integer_null("answered_at"))
                .col(string_len_null("response_id", 64))
                .foreign_key(&mut fk("invitations", "customer_id", "customers"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("invitations", "idem", &["tenant_id", "idempotency_key"], true)).await?;
        m.create_index(index("invitations", "customer", &["tenant_id", "customer_id", "outcome", "created_at"], false))
            .await?;
        m.create_index(index("invitations", "survey", &["tenant_id", "survey_id", "created_at"], false)).await?;

        m.create_table(
            Table::create()
                .table("responses")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("survey_id", 64))
                .col(string_len("customer_id", 64))
                // One response per invitation, enforced here and nowhere else.
                .col(string_len_null("invitation_id", 64).unique_key())
                .col(string_len("kind", 8))
                .col(integer("score"))
                .col(string_len("bucket", 16))
                .col(integer("scale_max"))
                .col(text("comment"))
                .col(text("properties"))
                .col(string_len_null("idempotency_key", 200))
                .col(string_len_null("request_hash", 64))
                .col(big_integer("recorded_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("responses", "customer_id", "customers"))
                .foreign_key(&mut fk("responses", "invitation_id", "invitations"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("responses", "idem", &["tenant_id", "idempotency_key"], true)).await?;
        m.create_index(index("responses", "survey", &["tenant_id", "survey_id", "recorded_at"], false)).await?;
        m.create_index(index("responses", "customer", &["tenant_id", "customer_id", "recorded_at"], false)).await?;

        m.create_table(
            Table::create()
                .table("follow_ups")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                // A response opens at most one follow-up.
                .col(string_len_uniq("response_id", 64))
                .col(string_len("survey_id", 64))
                .col(string_len("customer_id", 64))
                .col(string_len("status", 16))
                .col(string_len("priority", 16))
                .col(string_len("assignee", 200))
                .col(big_integer("due_at"))
                .col(big_integer_null("overdue_at"))
                .col(text("resolution"))
                .col(boolean("at_or_under_threshold"))
                .col(big_integer("opened_at"))
                .col(big_integer_null("acknowledged_at"))
                .col(big_integer_null("resolved_at"))
                .col(big_integer_null("dismissed_at"))
                .col(big_integer_null("reopened_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("follow_ups", "response_id", "responses"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("follow_ups", "status", &["tenant_id", "status", "id"], false)).await?;
        m.create_index(index("follow_ups", "due", &["status", "due_at"], false)).await?;

        m.create_table(
            Table::create()
                .table("follow_up_entries")
                .col(id("id"))
                .col(string_len("tenant_id", 64))
                .col(string_len("follow_up_id", 64))
                .col(string_len("kind", 16))
                .col(string_len("author", 200))
                .col(text("body"))
                .col(string_len_null("from_status", 16))
                .col(string_len_null("to_status", 16))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("follow_up_entries", "follow_up_id", "follow_ups"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("follow_up_entries", "follow_up", &["follow_up_id", "id"], false)).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "follow_up_entries",
            "follow_ups",
            "responses",
            "invitations",
            "customers",
            "surveys",
            "api_keys",
            "tenants",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
