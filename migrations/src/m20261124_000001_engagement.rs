//! Engagement (docs/engagement.md): customer accounts and traits, raw activity events
//! (deduplicated per tenant by message id), the per-customer daily roll-ups they feed
//! on ingestion, the small per-tenant tables org metrics read (gap histogram, daily
//! counts, cohorts), the scoring configuration and the score snapshots that keep the
//! percentile rank cheap.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn pk(cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    for c in cols {
        idx.col(*c);
    }
    idx.to_owned()
}

fn index(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(format!("ix_{table}_{name}")).table(table);
    for c in cols {
        idx.col(*c);
    }
    idx.to_owned()
}

fn tenant() -> ColumnDef {
    string_len("tenant_id", 64)
}

fn customer() -> ColumnDef {
    string_len("customer_id", 64)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one ALTER TABLE … ADD COLUMN at a time.
        for col in [
            string_len_null("account_id", 128),
            string_len_null("email", 320),
            string_len_null("name", 200),
            string_len_null("plan", 200),
            big_integer_null("signup_at"),
        ] {
            m.alter_table(Table::alter().table("customers").add_column(col).to_owned()).await?;
        }
        m.create_index(index("customers", "account", &["tenant_id", "account_id", "id"])).await?;

        // Raw events, kept for recomputation and export. The primary key is the
        // deduplication: a message id is recorded once per tenant, forever.
        m.create_table(
            Table::create()
                .table("activity_events")
                .col(tenant())
                .col(string_len("message_id", 200))
                .col(customer())
                .col(string_len("kind", 8))
                .col(string_len_null("name", 100))
                .col(big_integer("occurred_at"))
                .col(text("properties"))
                .col(big_integer_null("seconds"))
                .col(big_integer_null("amount_minor"))
                .col(string_len_null("currency", 3))
                .col(string_len("payload_hash", 32))
                .col(big_integer("received_at"))
                .primary_key(&mut pk(&["tenant_id", "message_id"]))
                .to_owned(),
        )
        .await?;

        // One row per customer and active day (tenant's calendar).
        m.create_table(
            Table::create()
                .table("activity_days")
                .col(tenant())
                .col(customer())
                .col(integer("day"))
                .col(big_integer("events"))
                .col(big_integer("actions"))
                .col(big_integer("sessions"))
                .col(big_integer("session_seconds"))
                .col(big_integer("purchases"))
                .col(big_integer("revenue_minor"))
                .primary_key(&mut pk(&["tenant_id", "customer_id", "day"]))
                .to_owned(),
        )
        .await?;
        // Net revenue retention reads the days with purchases only, from the index alone.
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_activity_days_purchases ON activity_days (tenant_id, day, customer_id, revenue_minor) \
                 WHERE purchases > 0",
            )
            .await?;

        // Count per customer, day and action.
        m.create_table(
            Table::create()
                .table("activity_day_actions")
                .col(tenant())
                .col(customer())
                .col(integer("day"))
                .col(string_len("action", 100))
                .col(big_integer("count"))
                .primary_key(&mut pk(&["tenant_id", "customer_id", "day", "action"]))
                .to_owned(),
        )
        .await?;
        m.create_index(index("activity_day_actions", "action", &["tenant_id", "action", "day"])).await?;

        // Count per customer, day, action and property value.
        m.create_table(
            Table::create()
                .table("activity_day_props")
                .col(tenant())
                .col(customer())
                .col(integer("day"))
                .col(string_len("action", 100))
                .col(string_len("prop_key", 1000))
                .col(text("prop_value"))
                .col(big_integer("count"))
                .primary_key(&mut pk(&["tenant_id", "action", "prop_key", "prop_value", "day", "customer_id"]))
                .to_owned(),
        )
        .await?;
        m.create_index(index("activity_day_props", "key_day", &["tenant_id", "action", "prop_key", "day"])).await?;

        // Per customer: first and last active day and the score key (see
        // domain::engagement::key_term). prev_* hold the values before the latest
        // upsert, which ingestion reads back to update the tenant tables.
        m.create_table(
            Table::create()
                .table("engagement_customers")
                .col(tenant())
                .col(customer())
                .col(integer("first_day"))
                .col(integer("last_day"))
                .col(double("score_key"))
                .col(integer_null("prev_first_day"))
                .col(integer_null("prev_last_day"))
                .primary_key(&mut pk(&["tenant_id", "customer_id"]))
                .to_owned(),
        )
        .await?;
        m.create_index(index("engagement_customers", "score", &["tenant_id", "score_key", "customer_id"])).await?;

        // The three per-tenant tables below are counters every batch adds to. Each batch
        // writes one of SHARDS rows per key (its `shard`), so concurrent batches do not
        // queue on one row lock; reads sum over the shards.
        //
        // The gap histogram (domain::engagement_metrics): customers per active day
        // and days to their next active day (0: none yet).
        m.create_table(
            Table::create()
                .table("engagement_gaps")
                .col(tenant())
                .col(integer("day"))
                .col(integer("gap"))
                .col(small_integer("shard"))
                .col(big_integer("customers"))
                .primary_key(&mut pk(&["tenant_id", "day", "gap", "shard"]))
                .to_owned(),
        )
        .await?;

        // Per tenant and day: active customers (DAU), customers first seen that day,
        // and when the day's row last changed (the freshness of score snapshots).
        m.create_table(
            Table::create()
                .table("engagement_days")
                .col(tenant())
                .col(integer("day"))
                .col(small_integer("shard"))
                .col(big_integer("dau"))
                .col(big_integer("new_customers"))
                .col(big_integer("updated_at"))
                .primary_key(&mut pk(&["tenant_id", "day", "shard"]))
                .to_owned(),
        )
        .await?;

        // Customers per first-seen month and active month.
        m.create_table(
            Table::create()
                .table("engagement_cohorts")
                .col(tenant())
                .col(integer("cohort_month"))
                .col(integer("active_month"))
                .col(small_integer("shard"))
                .col(big_integer("customers"))
                .primary_key(&mut pk(&["tenant_id", "cohort_month", "active_month", "shard"]))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("engagement_configs")
                .col(string_len("tenant_id", 64).primary_key())
                .col(text("config"))
                .col(integer("reference_day"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await?;

        // Snapshots of the distribution of score keys, for percentile ranks.
        m.create_table(
            Table::create()
                .table("engagement_snapshots")
                .col(tenant())
                .col(big_integer("taken_at"))
                .col(big_integer("data_version"))
                .col(text("snapshot"))
                .primary_key(&mut pk(&["tenant_id", "taken_at"]))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "engagement_snapshots",
            "engagement_configs",
            "engagement_cohorts",
            "engagement_days",
            "engagement_gaps",
            "engagement_customers",
            "activity_day_props",
            "activity_day_actions",
            "activity_days",
            "activity_events",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        m.drop_index(Index::drop().name("ix_customers_account").table("customers").to_owned()).await?;
        for c in ["signup_at", "plan", "name", "email", "account_id"] {
            m.alter_table(Table::alter().table("customers").drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
