//! The sequencer finds the events it has not numbered yet through a partial index that
//! holds only those. The index it replaces, on (seq, id) over every event, kept an entry
//! for each numbered event's old, unnumbered version until VACUUM; with a busy outbox
//! the sequencer's scan for `seq IS NULL` walked ever more of them and read the heap
//! for each (measured: most of PostgreSQL's CPU under `rapport-bench records`).

use sea_orm_migration::prelude::*;

use crate::util::{index, pending_events_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_events_unsequenced").table("events").to_owned()).await?;
        m.create_index(pending_events_index()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_events_pending").table("events").to_owned()).await?;
        m.create_index(index("events", "unsequenced", &["seq", "id"], false)).await
    }
}
