//! The revenue histogram net revenue retention is summed from (docs/engagement.md,
//! "How it is built"), filled from the per-customer daily roll-ups already stored.
//!
//! A cell (tenant, day f, prev_day p) holds, over the customers with revenue on day f
//! whose previous day with revenue was p, their revenue on f and every later day. Two
//! values of `prev_day` are not days: -1, no earlier revenue day (within reach), and
//! -2, the row holding the day's revenue of all customers. Counters, sharded like the
//! gap histogram: reads sum over `shard`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("engagement_revenue")
                .col(string_len("tenant_id", 64))
                .col(integer("day"))
                .col(integer("prev_day"))
                .col(small_integer("shard"))
                .col(big_integer("revenue_minor"))
                .primary_key(Index::create().col("tenant_id").col("day").col("prev_day").col("shard"))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // Every revenue day of every customer: its previous revenue day and the
        // customer's revenue from it on (a sum over the later days, in day order).
        db.execute_unprepared(
            "INSERT INTO engagement_revenue (tenant_id, day, prev_day, shard, revenue_minor) \
             SELECT tenant_id, day, COALESCE(prev_day, -1), 0, SUM(from_here) FROM (\
             SELECT tenant_id, day, LAG(day) OVER (PARTITION BY tenant_id, customer_id ORDER BY day) AS prev_day, \
             SUM(revenue_minor) OVER (PARTITION BY tenant_id, customer_id ORDER BY day DESC \
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS from_here \
             FROM activity_days WHERE purchases > 0 AND revenue_minor > 0) x \
             GROUP BY tenant_id, day, COALESCE(prev_day, -1)",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO engagement_revenue (tenant_id, day, prev_day, shard, revenue_minor) \
             SELECT tenant_id, day, -2, 0, SUM(revenue_minor) FROM activity_days \
             WHERE purchases > 0 AND revenue_minor > 0 GROUP BY tenant_id, day",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("engagement_revenue").to_owned()).await
    }
}
