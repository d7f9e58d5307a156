//! Database migrations for rapport: one schema that runs unchanged on SQLite and
//! PostgreSQL. Times are stored as BIGINT microseconds since the Unix epoch (portable,
//! totally ordered, cheap to compare); free-form maps as JSON text.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_survey_core;
mod m20261124_000001_engagement;
mod m20261124_000002_outbox_webhooks;
mod m20261126_000001_in_app;
mod m20261129_000001_pending_events_index;
mod m20261129_000002_events_numbered_on_write;
mod m20261130_000001_imported_responses;
mod m20261130_000002_branding;
mod m20261201_000001_sealed_secrets;
mod m20261201_000002_keys_audit;
mod m20261201_000003_erasure;
mod m20261201_000004_retention;
mod m20261201_000005_tenant_keys;
mod m20261201_000006_partitioned_history;
mod m20261201_000007_revenue_histogram;
mod util;

/// Applies the migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_survey_core::Migration),
            Box::new(m20261124_000001_engagement::Migration),
            Box::new(m20261124_000002_outbox_webhooks::Migration),
            Box::new(m20261126_000001_in_app::Migration),
            Box::new(m20261129_000001_pending_events_index::Migration),
            Box::new(m20261129_000002_events_numbered_on_write::Migration),
            Box::new(m20261130_000001_imported_responses::Migration),
            Box::new(m20261130_000002_branding::Migration),
            Box::new(m20261201_000001_sealed_secrets::Migration),
            Box::new(m20261201_000002_keys_audit::Migration),
            Box::new(m20261201_000003_erasure::Migration),
            Box::new(m20261201_000004_retention::Migration),
            Box::new(m20261201_000005_tenant_keys::Migration),
            Box::new(m20261201_000006_partitioned_history::Migration),
            Box::new(m20261201_000007_revenue_histogram::Migration),
        ]
    }
}
