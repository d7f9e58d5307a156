//! Working follow-ups: status transitions, assignment, priority, notes (docs/api.md, "Follow-ups").

use super::{Services, require_reader, require_secret};
use crate::domain::events::{self as event_data, EventType};
use crate::domain::follow_up::{self, FollowUpAction};
use crate::domain::listing::{FollowUpFilter, PageRequest};
use crate::domain::model::{EntryKind, FollowUp, FollowUpEntry, Page, Principal};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, FollowUpId, FollowUpStatus, TenantId, time};
use crate::error::Result;
use crate::store::{customers, events, follow_ups};

/// Appends an entry written by rapport itself.
pub(crate) async fn system_entry(
    conn: &impl crate::store::Conn,
    tenant: &TenantId,
    follow_up: &str,
    body: String,
    now: Timestamp,
) -> Result<FollowUpEntry> {
    let entry = system_note(body, now);
    follow_ups::append(conn, tenant, follow_up, &entry).await?;
    Ok(entry)
}

/// A history entry written by rapport itself (not yet stored).
pub(crate) fn system_note(body: String, now: Timestamp) -> FollowUpEntry {
    FollowUpEntry {
        kind: EntryKind::System,
        at: now,
        author: "rapport".into(),
        body,
        from_status: None,
        to_status: None,
    }
}

impl Services {
    pub async fn get_follow_up(&self, p: &Principal, id: &FollowUpId) -> Result<FollowUp> {
        require_reader(p)?;
        follow_ups::get(self.db.conn(), &p.tenant, id).await
    }

    pub async fn list_follow_ups(
        &self,
        p: &Principal,
        mut filter: FollowUpFilter,
        customer: Option<CustomerRef>,
        page: PageRequest,
    ) -> Result<Page<FollowUp>> {
        require_reader(p)?;
        if let Some(c) = customer {
            match customers::find(self.db.conn(), &p.tenant, &c).await? {
                Some(c) => filter.customer_row = Some(c.id.0),
                None => return Ok(Page { items: Vec::new(), next_page_token: String::new() }),
            }
        }
        follow_ups::list(self.db.conn(), &p.tenant, &filter, &page).await
    }

    /// Applies one action; the history keeps who did what and when.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, follow_up = %id))]
    pub async fn update_follow_up(
        &self,
        p: &Principal,
        id: &FollowUpId,
        author: String,
        action: FollowUpAction,
    ) -> Result<FollowUp> {
        require_secret(p)?;
        let now = self.clock.now();
        let at = time::to_micros(now);
        let txn = self.db.begin_write().await?;
        let mut row = follow_ups::row(&txn, &p.tenant, id).await?;
        let from = FollowUpStatus::from_db(&row.status)?;
        let to = follow_up::next_status(from, &action)?;
        let mut entry = FollowUpEntry {
            kind: EntryKind::StatusChange,
            at: now,
            author,
            body: String::new(),
            from_status: to.map(|_| from),
            to_status: to,
        };
        match action {
            FollowUpAction::Acknowledge => row.acknowledged_at = Some(at),
            FollowUpAction::Resolve { resolution } => {
                row.resolved_at = Some(at);
                row.resolution = resolution.clone();
                entry.body = resolution;
            }
            FollowUpAction::Dismiss { reason } => {
                row.dismissed_at = Some(at);
                entry.body = reason;
            }
            FollowUpAction::Reopen { reason } => {
                row.reopened_at = Some(at);
                row.resolution.clear();
                entry.body = reason;
            }
            FollowUpAction::Assign { assignee } => {
                entry.kind = EntryKind::Assignment;
                entry.body = assignee.clone();
                row.assignee = assignee;
            }
            FollowUpAction::SetPriority { priority } => {
                entry.kind = EntryKind::Priority;
                entry.body = priority.as_str().into();
                row.priority = priority.as_str().into();
            }
            FollowUpAction::AddNote { body } => {
                entry.kind = EntryKind::Note;
                entry.body = body;
            }
        }
        if let Some(to) = to {
            row.status = to.as_str().into();
        }
        row.updated_at = at;
        follow_ups::append(&txn, &p.tenant, id.as_str(), &entry).await?;
        follow_ups::save(&txn, row).await?;
        let out = follow_ups::get(&txn, &p.tenant, id).await?;
        events::append(&txn, &p.tenant, EventType::FollowUpUpdated.as_str(), &event_data::follow_up_data(&out), now)
            .await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(out)
    }
}

/// Checks the free text of an action: resolution and note 1–5 000 characters,
/// assignee at most 200.
pub fn check_action(action: FollowUpAction) -> Result<FollowUpAction> {
    use crate::domain::input::text;
    Ok(match action {
        FollowUpAction::Resolve { resolution } => {
            FollowUpAction::Resolve { resolution: text("resolve.resolution", &resolution, 5000, true)? }
        }
        FollowUpAction::AddNote { body } => FollowUpAction::AddNote { body: text("add_note.body", &body, 5000, true)? },
        FollowUpAction::Dismiss { reason } => {
            FollowUpAction::Dismiss { reason: text("dismiss.reason", &reason, 5000, false)? }
        }
        FollowUpAction::Reopen { reason } => {
            FollowUpAction::Reopen { reason: text("reopen.reason", &reason, 5000, false)? }
        }
        FollowUpAction::Assign { assignee } => {
            FollowUpAction::Assign { assignee: text("assign.assignee", &assignee, 200, false)? }
        }
        other => other,
    })
}
