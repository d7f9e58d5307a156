//! What the answer writer writes for a batch, in one statement on PostgreSQL
//! (docs/architecture.md, "The batched answer writer"). Kept apart from the tables'
//! own modules, which it uses: responses, follow-ups and their entries, the outbox.

use sea_orm::ConnectionTrait;

use super::customers::NewCustomer;
use super::entities::{follow_up, follow_up_entry, response};
use super::error::Result;
use crate::domain::TenantId;
use crate::domain::stored::{NewFollowUp, NewResponse};
use crate::domain::time::Timestamp;

/// PostgreSQL: one tenant's answers of a batch written in one statement — the
/// customers answering for the first time (`customers`), the responses, the
/// follow-ups they open with their first history entries, and the outbox events,
/// numbered as [`super::events::append_all`] numbers them — instead of one round trip
/// per table. `None` on SQLite, or when a row cannot go as arrays: the caller then
/// writes table by table. Returns the events' ids.
///
/// A new customer that cannot be inserted — created meanwhile by another call (under
/// another row id), or erased — leaves its answers pointing at no row: the foreign key
/// fails the whole statement, and nothing of it is written.
pub async fn write(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    customers: &[NewCustomer],
    new: &[&NewResponse],
    opened: &[NewFollowUp],
    events: &[(&str, serde_json::Value)],
    now: Timestamp,
) -> Result<Option<Vec<String>>> {
    if conn.get_database_backend() != sea_orm::DbBackend::Postgres || events.is_empty() {
        return Ok(None);
    }
    let responses: Vec<response::Model> = new.iter().map(|r| super::responses::to_row(tenant, r)).collect();
    let follow_ups: Vec<follow_up::Model> = opened.iter().map(|f| super::follow_ups::to_row(tenant, f)).collect();
    let entries: Vec<follow_up_entry::Model> =
        opened.iter().map(|f| super::follow_ups::entry_row(tenant, f.id.as_str(), &f.entry)).collect();
    let mut chain = super::sql::InsertChain::new();
    if !customers.is_empty() {
        chain = chain.part("c", |q| super::customers::push_insert_new(q, tenant, customers, now));
    }
    let chain = chain
        .models::<response::Entity>(&responses)
        .and_then(|c| c.models::<follow_up::Entity>(&follow_ups))
        .and_then(|c| c.models::<follow_up_entry::Entity>(&entries));
    match chain {
        Some(chain) => super::events::append_all_chained(conn, chain, tenant, events, now).await,
        None => Ok(None),
    }
}
