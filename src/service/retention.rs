//! Retention per tenant (docs/privacy.md, "Retention"): the policy a tenant sets, and
//! the pass the retention worker makes — on PostgreSQL first the months of history
//! whose every row is past its tenant's retention, dropped whole (docs/operations.md,
//! "History partitions"); then for each tenant and each kind of data, bounded batches
//! (each its own short transaction) of what is older than the policy allows.

use super::{Services, require_secret};
use crate::domain::TenantId;
use crate::domain::model::Principal;
use crate::domain::partitions::{self as p, Keeping};
use crate::domain::privacy::{Actor, AuditAction, AuditEntry, RetentionPass, RetentionPolicy};
use crate::domain::time::Timestamp;
use crate::error::Result;
use crate::store::partitions::{self as sp, History};
use crate::store::{audit, retention};

/// Rows per statement.
const BATCH: u64 = 1_000;
/// Batches per tenant and kind in one pass; the next pass goes on where this one stopped.
const BATCHES_PER_PASS: u32 = 20;

impl Services {
    /// The tenant's retention policy (the defaults until set) and when it was set.
    pub async fn retention_policy(&self, p: &Principal) -> Result<(RetentionPolicy, Option<Timestamp>)> {
        super::require_reader(p)?;
        Ok(retention::get(self.db.conn(), &p.tenant).await?)
    }

    /// Changes the fields of the policy named in `mask` (`activity_event_days`,
    /// `comment_days`, `invitation_days`, `delivery_log_days`) to their values in `values`.
    pub async fn update_retention_policy(
        &self,
        p: &Principal,
        mask: &[String],
        values: RetentionPolicy,
    ) -> Result<(RetentionPolicy, Option<Timestamp>)> {
        require_secret(p)?;
        if mask.is_empty() {
            return Err(crate::error::AppError::invalid("update_mask", "name at least one field to change"));
        }
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let (mut policy, _) = retention::get(&txn, &p.tenant).await?;
        for path in mask {
            match path.as_str() {
                "activity_event_days" => policy.activity_event_days = values.activity_event_days,
                "comment_days" => policy.comment_days = values.comment_days,
                "invitation_days" => policy.invitation_days = values.invitation_days,
                "delivery_log_days" => policy.delivery_log_days = values.delivery_log_days,
                other => {
                    return Err(crate::error::AppError::invalid(
                        "update_mask",
                        format!(
                            "unknown field {:?}; one of activity_event_days, comment_days, invitation_days, \
                             delivery_log_days",
                            crate::domain::input::quote_prefix(other)
                        ),
                    ));
                }
            }
        }
        let policy = policy.validate()?;
        retention::set(&txn, &p.tenant, &policy, now).await?;
        let details = serde_json::json!({
            "activity_event_days": policy.activity_event_days,
            "comment_days": policy.comment_days,
            "invitation_days": policy.invitation_days,
            "delivery_log_days": policy.delivery_log_days,
        });
        let entry = AuditEntry::new(&p.tenant, Actor::of(p), AuditAction::RetentionUpdated, "").with(details);
        audit::record(&txn, &entry, now).await?;
        txn.commit().await?;
        Ok((policy, Some(now)))
    }

    /// One pass of the retention worker over every tenant; counts what it removed in
    /// the metrics. Returns the totals.
    pub async fn enforce_retention(&self) -> Result<RetentionPass> {
        let now = self.clock.now();
        let mut total = RetentionPass::default();
        let tenants = retention::all(self.db.conn()).await?;
        if sp::partitioned(&self.db) {
            total.activity_events += self.drop_past_months(History::ActivityEvents, &tenants, now).await?;
            // Attempts go with their deliveries, which are counted as they are deleted.
            self.drop_past_months(History::DeliveryAttempts, &tenants, now).await?;
        }
        for (tenant, policy) in tenants {
            let kinds: [(&'static str, i32); 4] = [
                ("activity_events", policy.activity_event_days),
                ("comments", policy.comment_days),
                ("invitations", policy.invitation_days),
                ("delivery_logs", policy.delivery_log_days),
            ];
            for (kind, days) in kinds {
                if days == 0 || self.shutdown.is_cancelled() {
                    continue;
                }
                let before = now - chrono::Duration::days(i64::from(days));
                for _ in 0..BATCHES_PER_PASS {
                    let txn = self.db.begin_write().await?;
                    let n = match kind {
                        "activity_events" => retention::activity_events(&txn, &tenant, before, BATCH).await?,
                        "comments" => retention::comments(&txn, &tenant, before, BATCH).await?,
                        "invitations" => retention::invitations(&txn, &tenant, before, BATCH).await?,
                        _ => retention::delivery_logs(&txn, &tenant, before, BATCH).await?,
                    };
                    txn.commit().await?;
                    if n > 0 {
                        self.metrics.retention_removed(kind, n);
                    }
                    match kind {
                        "activity_events" => total.activity_events += n,
                        "comments" => total.comments += n,
                        "invitations" => total.invitations += n,
                        _ => total.delivery_logs += n,
                    }
                    if n < BATCH {
                        break;
                    }
                }
            }
        }
        Ok(total)
    }

    /// Drops the partitions of `h` whose every row is past its own tenant's retention
    /// (domain::partitions::keeping), after counting their rows; returns how many.
    /// Raw activity is counted in `rapport_retention_removed_total{kind="activity_events"}`
    /// like rows deleted one by one; delivery attempts are not (the `delivery_logs` kind
    /// counts deliveries). A month that cannot go this pass (a lock not granted in time)
    /// is logged and left to the next; rows deletes still follow.
    async fn drop_past_months(
        &self,
        h: History,
        tenants: &[(TenantId, RetentionPolicy)],
        now: Timestamp,
    ) -> Result<u64> {
        let days: Vec<(TenantId, i32)> = tenants
            .iter()
            .map(|(t, policy)| {
                let d = match h {
                    History::ActivityEvents => policy.activity_event_days,
                    History::DeliveryAttempts => policy.delivery_log_days,
                };
                (t.clone(), d)
            })
            .collect();
        for month in sp::months(self.db.conn(), h).await? {
            if self.shutdown.is_cancelled() {
                break;
            }
            let Keeping::Tenants(keeping) = p::keeping(&days, month, now) else { continue };
            if let Err(e) = sp::retire(&self.db, h, month, &keeping).await {
                tracing::warn!(table = h.table(), month = %month.suffix(), error = %e, "a past month stays this pass");
            }
        }
        // Retired just now, or by a pass that stopped before dropping.
        let mut removed = 0;
        for name in sp::retired(self.db.conn(), h).await? {
            let n = sp::drop_retired(&self.db, h, &name).await?;
            tracing::info!(table = h.table(), partition = %name, rows = n, "past month of history dropped");
            if h == History::ActivityEvents && n > 0 {
                self.metrics.retention_removed("activity_events", n);
            }
            removed += n;
        }
        Ok(removed)
    }
}
