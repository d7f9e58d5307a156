//! The partitions worker's pass (docs/operations.md, "History partitions"): on
//! PostgreSQL, every history table gets its partitions for this month and the next
//! ones before they are needed, and a partition for each month whose rows wait in its
//! default partition (an event imported years late, a month the worker was not running
//! for), which takes those rows out of the default. Idempotent and safe on every
//! replica at once: the store takes an advisory lock and looks again under it.

use std::collections::BTreeSet;

use super::Services;
use crate::domain::partitions::{self as p, Month, PartitionPass};
use crate::error::Result;
use crate::store::partitions::{self as sp, History};

impl Services {
    /// One pass of the partitions worker; nothing on SQLite.
    pub async fn maintain_partitions(&self) -> Result<PartitionPass> {
        let mut pass = PartitionPass::default();
        if !sp::partitioned(&self.db) {
            return Ok(pass);
        }
        let now = self.clock.now();
        for h in History::ALL {
            let have = sp::months(self.db.conn(), h).await?;
            let mut want: BTreeSet<Month> = p::months_ahead(now).into_iter().collect();
            want.extend(sp::months_in_default(self.db.conn(), h).await?);
            for month in want.difference(&have) {
                match sp::create(&self.db, h, *month).await {
                    Ok(Some(moved)) => {
                        tracing::info!(table = h.table(), month = %month.suffix(), moved, "history partition created");
                        pass.created += 1;
                        pass.moved += moved;
                    }
                    Ok(None) => {}
                    // A lock not granted in time, a table of that name in the way: the
                    // other months go on, this one is tried again soon.
                    Err(e) => {
                        tracing::warn!(table = h.table(), month = %month.suffix(), error = %e, "history partition not created");
                        pass.failed += 1;
                    }
                }
            }
        }
        Ok(pass)
    }
}
