//! The event stream and the webhook fan-out step (docs/webhooks.md), and the
//! wake-ups between replicas on PostgreSQL.

use std::time::Duration;

use super::{Services, require_secret};
use crate::domain::events::{self, Event};
use crate::domain::model::Principal;
use crate::domain::{FollowUpId, TenantId};
use crate::error::{AppError, Result};
use crate::store::notify::{Listener, Notice};
use crate::store::{events as store_events, follow_ups};

/// Events fanned out per transaction at most.
const FANOUT_BATCH: u64 = 500;

/// The first pause before the listening session connects again, doubled after each
/// failure up to [`LISTEN_RETRY_MAX`].
const LISTEN_RETRY_MIN: Duration = Duration::from_millis(250);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(30);

impl Services {
    /// Checks that the events after `after` are still kept (else `OUT_OF_RANGE`).
    pub async fn check_stream_start(&self, p: &Principal, after: i64) -> Result<()> {
        require_secret(p)?;
        if after < 0 {
            return Err(AppError::invalid("after_sequence", "must be 0 or more"));
        }
        let conn = self.db.conn();
        let last = store_events::last_sequence(conn, &p.tenant).await?;
        if after > last {
            return Err(AppError::invalid("after_sequence", format!("is past the last sequence number, {last}")));
        }
        let oldest = store_events::oldest_kept(conn, &p.tenant).await?;
        let gone = match oldest {
            Some(oldest) => after + 1 < oldest,
            None => after < last,
        };
        if gone {
            return Err(AppError::OutOfRange(format!(
                "events after {after} are no longer kept (retention {} days); resume from {}",
                self.outbox.retention.num_days(),
                oldest.map(|o| o - 1).unwrap_or(last)
            )));
        }
        Ok(())
    }

    /// Up to `limit` numbered events after `after`, in order.
    pub async fn events_after(&self, tenant: &TenantId, after: i64, limit: u64) -> Result<Vec<Event>> {
        let mut out = store_events::after(self.db.conn(), tenant, after, limit).await?;
        for e in &mut out {
            e.data = self.open_event_data(tenant.as_str(), &e.event_type, std::mem::take(&mut e.data));
        }
        Ok(out)
    }

    /// An event's payload as receivers get it: a sealed one (`customer.erased`, whose
    /// customer id must not sit readable in the outbox) opened. One that does not open
    /// (its key was removed) goes out without the id, and the cause is logged.
    pub(crate) fn open_event_data(&self, tenant: &str, event_type: &str, data: serde_json::Value) -> serde_json::Value {
        let Some(sealed) = events::sealed_payload(&data) else { return data };
        let opened = self
            .keyring
            .open(&events::sealed_event_context(tenant, event_type), &sealed)
            .and_then(|s| serde_json::from_str(&s).map_err(|e| AppError::Internal(e.into())));
        opened.unwrap_or_else(|e| {
            tracing::error!(error = %e, event_type, "a sealed event payload does not open");
            serde_json::json!({ "customer_id": null })
        })
    }

    /// Relays what PostgreSQL tells (LISTEN/NOTIFY, `store::notify`) to this replica's
    /// streams and dispatcher, until the server shuts down: the one session that
    /// listens, connected again after a pause that doubles up to 30 s when it drops or
    /// cannot connect; after each (re)connection every stream looks once, since
    /// notices sent meanwhile were lost. Returns at once on SQLite.
    ///
    /// The fan-out is not woken by other replicas' events: the replica that committed
    /// them wakes its own, which waits for the fan-out lock if another holds it.
    pub async fn relay_notices(&self) {
        let mut pause = LISTEN_RETRY_MIN;
        let mut lost = false;
        loop {
            let connected = tokio::select! {
                c = Listener::connect(&self.db) => c,
                _ = self.shutdown.cancelled() => return,
            };
            let mut listener = match connected {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot LISTEN for other replicas' events; they are polled meanwhile");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    pause = (pause * 2).min(LISTEN_RETRY_MAX);
                    lost = true;
                    continue;
                }
            };
            if lost {
                tracing::info!("listening for other replicas' events again");
            } else {
                tracing::debug!("listening for other replicas' events");
            }
            pause = LISTEN_RETRY_MIN;
            self.bus.wake_all();
            loop {
                let next = tokio::select! {
                    n = listener.next() => n,
                    _ = self.shutdown.cancelled() => return,
                };
                match next {
                    Ok(Some(Notice::Events { tenant, last })) => self.bus.events_told(tenant.as_str(), last),
                    Ok(Some(Notice::Deliveries)) => self.bus.deliveries_queued(),
                    Ok(None) => {
                        // The listener has connected again by itself (a failure to
                        // would be an error, next): notices of the gap are lost.
                        tracing::warn!("the session listening for other replicas' events dropped and was reopened");
                        self.bus.wake_all();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the session listening for other replicas' events failed; connecting again");
                        break;
                    }
                }
            }
            lost = true;
        }
    }

    /// Creates the webhook deliveries of events not fanned out yet; returns how many
    /// events it passed.
    pub async fn fan_out_events(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = store_events::fan_out_new(&self.db, self.clock.now(), self.outbox.settle, FANOUT_BATCH).await?;
            total += n;
            if (n as u64) < FANOUT_BATCH {
                break;
            }
        }
        if total > 0 {
            self.bus.deliveries_queued();
        }
        Ok(total)
    }

    /// Deletes events older than the retention; returns how many.
    pub async fn prune_events(&self) -> Result<u64> {
        Ok(store_events::prune(self.db.conn(), self.clock.now() - self.outbox.retention).await?)
    }

    /// The follow-up as it is now, as event data (for a settled `follow_up.opened`).
    pub async fn follow_up_data_now(&self, tenant: &TenantId, id: &str) -> Result<serde_json::Value> {
        let f = follow_ups::get(self.db.conn(), tenant, &FollowUpId(id.to_owned())).await?;
        Ok(events::follow_up_data(&f))
    }

    /// Marks open follow-ups past their due time overdue, once each, with a
    /// `follow_up.overdue` event in the same transaction. Returns how many.
    pub async fn mark_overdue(&self) -> Result<usize> {
        let now = self.clock.now();
        let due = follow_ups::due_for_overdue(self.db.conn(), now, 200).await?;
        let mut marked = 0;
        for (tenant, id) in due {
            let txn = self.db.begin_write().await?;
            if follow_ups::set_overdue(&txn, &tenant, &id, now).await? {
                let f = follow_ups::get(&txn, &tenant, &id).await?;
                store_events::append(
                    &txn,
                    &tenant,
                    events::EventType::FollowUpOverdue.as_str(),
                    &events::follow_up_data(&f),
                    now,
                )
                .await?;
                marked += 1;
            }
            txn.commit().await?;
        }
        if marked > 0 {
            self.bus.outbox_written();
        }
        Ok(marked)
    }
}
