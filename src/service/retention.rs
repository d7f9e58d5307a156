//! Retention per tenant (docs/privacy.md, "Retention"): the policy a tenant sets, and
//! the pass the retention worker makes — for each tenant and each kind of data, bounded
//! batches (each its own short transaction) of what is older than the policy allows.

use super::{Services, require_secret};
use crate::domain::model::Principal;
use crate::domain::privacy::{Actor, AuditAction, AuditEntry, RetentionPass, RetentionPolicy};
use crate::domain::time::Timestamp;
use crate::error::Result;
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
        for (tenant, policy) in retention::all(self.db.conn()).await? {
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
}
