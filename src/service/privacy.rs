//! Erasure and export of one customer (docs/privacy.md).
//!
//! `erase_customer` runs in one transaction: the customer's rows move to an anonymous
//! stand-in or are emptied (store::privacy), the outbox and deliveries are scrubbed,
//! a tombstone keeps later writes from creating the customer again, the audit log gets
//! a line without the id, and a `customer.erased` event — the id only, sealed in the
//! outbox — tells the CRM's other systems. A retry after success finds the tombstone and
//! changes nothing; a crash before the commit leaves everything as it was.

use super::{Services, require_secret};
use crate::domain::events::{self, EventType};
use crate::domain::model::Principal;
use crate::domain::privacy::{Actor, AuditAction, AuditEntry, ErasureReport};
use crate::domain::{CustomerRef, CustomerRowId, TenantId};
use crate::error::Result;
use crate::store::{audit, customers, events as store_events, privacy, tenants};

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
