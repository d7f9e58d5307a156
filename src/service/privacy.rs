//! Erasure and export of one customer (docs/privacy.md).
//!
//! `erase_customer` runs in one transaction: the customer's rows move to an anonymous
//! stand-in or are emptied (store::privacy), the outbox and deliveries are scrubbed,
//! a tombstone keeps later writes from creating the customer again, the audit log gets
//! a line without the id, and a `customer.erased` event — the id only, sealed in the
//! outbox — tells the CRM's other systems. A retry after success finds the tombstone and
//! changes nothing; a crash before the commit leaves everything as it was.

use serde_json::{Value, json};

use super::{Services, require_secret};
use crate::domain::engagement::CustomerRecord;
use crate::domain::events::{self, EventType};
use crate::domain::listing::{FollowUpFilter, PageRequest, ResponseFilter};
use crate::domain::model::{FollowUp, Principal};
use crate::domain::privacy::{
    Actor, AuditAction, AuditEntry, ErasureReport, ExportRecord, ExportedActivity, ExportedInvitation,
};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, CustomerRowId, TenantId};
use crate::error::{AppError, Result};
use crate::store::{
    audit, customers, engagement_read as er, events as store_events, follow_ups, privacy, responses, tenants,
};

/// Who acts, for which tenant.
struct Who {
    tenant: TenantId,
    actor: Actor,
}

impl Services {
    /// Erases every personal datum of one customer (docs/privacy.md, "Erasing a
    /// customer"). Idempotent: erasing an erased or unknown id records the tombstone and
    /// reports `found: false`.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn erase_customer(&self, p: &Principal, customer: &CustomerRef) -> Result<ErasureReport> {
        require_secret(p)?;
        self.erase_customer_as(Actor::of(p), &p.tenant, customer).await
    }

    /// [`Services::erase_customer`] from the command line, for a tenant by name or id.
    pub async fn erase_customer_of(&self, tenant: &str, customer: &str) -> Result<ErasureReport> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        let customer = CustomerRef::parse(customer, "customer_id")?;
        self.erase_customer_as(Actor::CommandLine, &t, &customer).await
    }

    async fn erase_customer_as(
        &self,
        actor: Actor,
        tenant: &TenantId,
        customer: &CustomerRef,
    ) -> Result<ErasureReport> {
        let p = &Who { tenant: tenant.clone(), actor };
        let now = self.clock.now();
        let erasure_id = uuid::Uuid::now_v7().to_string();
        // Sealed before the transaction: the outbox must not hold the id readable.
        let context = events::sealed_event_context(p.tenant.as_str(), EventType::CustomerErased.as_str());
        let payload = events::customer_erased_data(customer, now).to_string();
        let sealed = events::sealed_data(&self.keyring.seal(&context, &payload)?);

        let txn = self.db.begin_write().await?;
        let already = privacy::is_erased(&txn, &p.tenant, customer.as_str()).await?;
        let mut report = match customers::find(&txn, &p.tenant, customer).await? {
            Some(c) => {
                let stand_in = CustomerRowId::generate();
                let stand_in_external = format!("erased-{}", uuid::Uuid::now_v7().simple());
                let mut r = privacy::erase_rows(&txn, &p.tenant, &c.id, &stand_in, &stand_in_external, now).await?;
                let (events, deliveries) =
                    privacy::scrub_events(&txn, &p.tenant, customer.as_str(), &stand_in_external).await?;
                r.events = events;
                r.deliveries = deliveries;
                r
            }
            None => ErasureReport::default(),
        };
        report.erasure_id = erasure_id.clone();
        if already && !report.found {
            // Erased before: nothing changes, not even the log.
            txn.rollback().await?;
            return Ok(report);
        }
        privacy::record_tombstone(&txn, &p.tenant, customer.as_str(), &erasure_id, now).await?;
        let details = serde_json::json!({
            "found": report.found,
            "responses": report.responses,
            "invitations": report.invitations,
            "follow_ups": report.follow_ups,
            "activity_events": report.activity_events,
            "events": report.events,
            "deliveries": report.deliveries,
        });
        let entry = AuditEntry::new(&p.tenant, p.actor.clone(), AuditAction::CustomerErased, &erasure_id).with(details);
        audit::record(&txn, &entry, now).await?;
        store_events::append(&txn, &p.tenant, EventType::CustomerErased.as_str(), &sealed, now).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(report)
    }
}

/// Records read per query while exporting.
const EXPORT_PAGE: u64 = 500;

fn ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn opt_ts(t: Option<Timestamp>) -> Value {
    t.map(ts).map(Value::String).unwrap_or(Value::Null)
}

impl Services {
    /// Everything rapport holds about one customer, as records sent on the returned
    /// channel as they are read (docs/privacy.md, "Exporting a customer"): the customer,
    /// then their invitations, responses, follow-ups (with their history) and raw
    /// activity. `NOT_FOUND` for an unknown or erased customer, before any record. The
    /// export is logged in the audit log (without the id).
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn export_customer(
        &self,
        p: &Principal,
        customer: &CustomerRef,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<ExportRecord>>> {
        require_secret(p)?;
        self.export_customer_as(Actor::of(p), &p.tenant, customer).await
    }

    /// The export as one JSON document (the JSON route and the command line).
    pub async fn export_document(&self, p: &Principal, customer: &CustomerRef) -> Result<Value> {
        require_secret(p)?;
        let rx = self.export_customer_as(Actor::of(p), &p.tenant, customer).await?;
        collect(&p.tenant, self.clock.now(), rx).await
    }

    /// [`Services::export_document`] from the command line, for a tenant by name or id.
    pub async fn export_customer_of(&self, tenant: &str, customer: &str) -> Result<Value> {
        let t = tenants::find_tenant(&self.db, tenant).await?;
        let customer = CustomerRef::parse(customer, "customer_id")?;
        let rx = self.export_customer_as(Actor::CommandLine, &t, &customer).await?;
        collect(&t, self.clock.now(), rx).await
    }

    async fn export_customer_as(
        &self,
        actor: Actor,
        tenant: &TenantId,
        customer: &CustomerRef,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<ExportRecord>>> {
        let (row, record) = er::get_customer(self.db.conn(), tenant, customer).await?;
        let export_id = uuid::Uuid::now_v7().to_string();
        self.audit(AuditEntry::new(tenant, actor, AuditAction::CustomerExported, &export_id)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let first = ExportRecord { kind: "customer", data: customer_data(&record) };
        let svc = self.clone();
        let tenant = tenant.clone();
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            let run = async {
                let send = |r: ExportRecord| {
                    let tx = tx.clone();
                    async move { tx.send(Ok(r)).await.map_err(|_| AppError::Unavailable("the reader left".into())) }
                };
                send(first).await?;
                svc.export_rest(&tenant, &row, &send).await
            };
            tokio::select! {
                r = run => if let Err(e) = r {
                    let _ = tx.send(Err(e)).await;
                },
                _ = stop.cancelled() => {
                    let _ = tx.send(Err(AppError::Unavailable("the server is shutting down; export again".into()))).await;
                }
            }
        });
        Ok(rx)
    }

    async fn export_rest<F, Fut>(&self, tenant: &TenantId, row: &CustomerRowId, send: &F) -> Result<()>
    where
        F: Fn(ExportRecord) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let conn = self.db.conn();
        let mut after: Option<String> = None;
        loop {
            let page = privacy::invitations_of(conn, tenant, row, after.as_deref(), EXPORT_PAGE).await?;
            for i in &page {
                send(ExportRecord { kind: "invitation", data: invitation_data(i) }).await?;
            }
            match page.last() {
                Some(last) if page.len() as u64 == EXPORT_PAGE => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let by_customer = ResponseFilter { customer_row: Some(row.0.clone()), ..Default::default() };
        let mut token = String::new();
        loop {
            let page =
                responses::list(conn, tenant, &by_customer, &PageRequest::parse(EXPORT_PAGE as i32, &token)?).await?;
            for r in &page.items {
                send(ExportRecord { kind: "response", data: events::response_data(r) }).await?;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let by_customer = FollowUpFilter { customer_row: Some(row.0.clone()), ..Default::default() };
        let mut token = String::new();
        loop {
            let page =
                follow_ups::list(conn, tenant, &by_customer, &PageRequest::parse(EXPORT_PAGE as i32, &token)?).await?;
            for f in &page.items {
                send(ExportRecord { kind: "follow_up", data: follow_up_export(f) }).await?;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut after: Option<(Timestamp, String)> = None;
        loop {
            let page = privacy::activity_of(conn, tenant, row, after.clone(), EXPORT_PAGE).await?;
            for a in &page {
                send(ExportRecord { kind: "activity_event", data: activity_data(a) }).await?;
            }
            match page.last() {
                Some(last) if page.len() as u64 == EXPORT_PAGE => {
                    after = Some((last.occurred_at, last.message_id.clone()))
                }
                _ => break,
            }
        }
        Ok(())
    }
}

async fn collect(
    tenant: &TenantId,
    at: Timestamp,
    mut rx: tokio::sync::mpsc::Receiver<Result<ExportRecord>>,
) -> Result<Value> {
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r?);
    }
    Ok(crate::domain::privacy::export_document(tenant, at, records))
}

fn customer_data(c: &CustomerRecord) -> Value {
    json!({
        "customer_id": c.customer.0,
        "account_id": c.account_id,
        "email": c.traits.email,
        "name": c.traits.name,
        "plan": c.traits.plan,
        "signup_at": opt_ts(c.traits.signup_at),
        "properties": c.properties,
        "unsubscribed": c.unsubscribed,
        "created_at": ts(c.created_at),
        "updated_at": ts(c.updated_at),
    })
}

fn invitation_data(i: &ExportedInvitation) -> Value {
    json!({
        "invitation_id": i.id,
        "survey_id": i.survey_id,
        "channel": i.channel,
        "outcome": i.outcome,
        "rule": i.rule,
        "forced": i.forced,
        "created_at": ts(i.created_at),
        "expires_at": opt_ts(i.expires_at),
        "answered_at": opt_ts(i.answered_at),
        "dismissed_at": opt_ts(i.dismissed_at),
        "response_id": i.response_id,
    })
}

fn follow_up_export(f: &FollowUp) -> Value {
    let mut data = events::follow_up_data(f);
    data["entries"] = f
        .entries
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind.as_str(),
                "at": ts(e.at),
                "author": e.author,
                "body": e.body,
                "from_status": e.from_status.map(|s| s.as_str()),
                "to_status": e.to_status.map(|s| s.as_str()),
            })
        })
        .collect();
    data
}

fn activity_data(a: &ExportedActivity) -> Value {
    json!({
        "message_id": a.message_id,
        "kind": a.kind,
        "name": a.name,
        "occurred_at": ts(a.occurred_at),
        "properties": a.properties,
        "seconds": a.seconds,
        "amount_minor": a.amount_minor,
        "currency": a.currency,
        "received_at": ts(a.received_at),
    })
}
