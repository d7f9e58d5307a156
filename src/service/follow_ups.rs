//! Working follow-ups: status transitions, assignment, priority, notes (docs/api.md, "Follow-ups").

use super::{Services, require_reader, require_secret};
use crate::domain::events::{self as event_data, EventType};
use crate::domain::follow_up::FollowUpAction;
use crate::domain::listing::{FollowUpFilter, PageRequest};
use crate::domain::model::{FollowUp, FollowUpEntry, Page, Principal};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, FollowUpId, TenantId};
use crate::error::Result;
use crate::store::{customers, events, follow_ups};

/// Appends an entry written by rapport itself.
pub(crate) async fn system_entry(
    conn: &impl crate::store::Conn,
    tenant: &TenantId,
    follow_up: &FollowUpId,
    body: String,
    now: Timestamp,
) -> Result<FollowUpEntry> {
    let entry = FollowUpEntry::system(body, now);
    follow_ups::append(conn, tenant, follow_up, &entry).await?;
    Ok(entry)
}

impl Services {
    pub async fn get_follow_up(&self, p: &Principal, id: &FollowUpId) -> Result<FollowUp> {
        require_reader(p)?;
        Ok(follow_ups::get(self.db.conn(), &p.tenant, id).await?)
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
        Ok(follow_ups::list(self.db.conn(), &p.tenant, &filter, &page).await?)
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
        let txn = self.db.begin_write().await?;
        let mut state = follow_ups::state(&txn, &p.tenant, id).await?;
        let entry = state.apply(action, author, now)?;
        follow_ups::append(&txn, &p.tenant, id, &entry).await?;
        follow_ups::save_state(&txn, &p.tenant, id, &state).await?;
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
