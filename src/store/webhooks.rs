//! Webhook endpoints, deliveries and their attempts.

use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Db;
use super::entities::{Scoped, delivery, delivery_attempt, event, webhook_endpoint};
use super::error::{Result, StoreError};
use crate::domain::TenantId;
use crate::domain::events::EventType;
use crate::domain::listing::{DeliveryFilter, PageRequest};
use crate::domain::model::{Delivery, DeliveryAttempt, DeliveryStatus, Page, WebhookEndpoint};
use crate::domain::sealing::Sealed;
use crate::domain::stored::{DueDelivery, SigningEndpoint};
use crate::domain::time::{self, Timestamp};

use delivery::Model as DeliveryRow;
use webhook_endpoint::Model as EndpointRow;

fn list_to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn list_from_json(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn endpoint_to_domain(m: &EndpointRow) -> WebhookEndpoint {
    WebhookEndpoint {
        id: m.id.clone(),
        url: m.url.clone(),
        description: m.description.clone(),
        event_types: list_from_json(&m.event_types),
        survey_ids: list_from_json(&m.survey_ids),
        enabled: m.enabled,
        disabled_reason: m.disabled_reason.clone(),
        failing_since: m.failing_since.map(time::from_micros),
        created_at: time::from_micros(m.created_at),
        updated_at: time::from_micros(m.updated_at),
    }
}

/// Stores a new endpoint with its sealed secret.
pub async fn insert_endpoint(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    e: &WebhookEndpoint,
    secret: &Sealed,
) -> Result<()> {
    webhook_endpoint::Model {
        id: e.id.clone(),
        tenant_id: tenant.0.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: list_to_json(&e.event_types),
        survey_ids: list_to_json(&e.survey_ids),
        secret: secret.ciphertext.clone(),
        secret_key_id: Some(secret.key_id.clone()),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since.map(time::to_micros),
        created_at: time::to_micros(e.created_at),
        updated_at: time::to_micros(e.updated_at),
    }
    .into_active_model()
    .insert(conn)
    .await?;
    Ok(())
}

/// Writes an endpoint's settings (not its secret).
pub async fn save_endpoint(conn: &impl ConnectionTrait, tenant: &TenantId, e: &WebhookEndpoint) -> Result<()> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Url, Expr::value(e.url.clone()))
        .col_expr(webhook_endpoint::Column::Description, Expr::value(e.description.clone()))
        .col_expr(webhook_endpoint::Column::EventTypes, Expr::value(list_to_json(&e.event_types)))
        .col_expr(webhook_endpoint::Column::SurveyIds, Expr::value(list_to_json(&e.survey_ids)))
        .col_expr(webhook_endpoint::Column::Enabled, Expr::value(e.enabled))
        .col_expr(webhook_endpoint::Column::DisabledReason, Expr::value(e.disabled_reason.clone()))
        .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(e.failing_since.map(time::to_micros)))
        .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(time::to_micros(e.updated_at)))
        .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_str()))
        .filter(webhook_endpoint::Column::Id.eq(e.id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn set_secret(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
    secret: &Sealed,
    now: Timestamp,
) -> Result<()> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Secret, Expr::value(secret.ciphertext.clone()))
        .col_expr(webhook_endpoint::Column::SecretKeyId, Expr::value(secret.key_id.clone()))
        .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(time::to_micros(now)))
        .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_str()))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The endpoint, or [`StoreError::NotFound`] (also another tenant's).
pub async fn endpoint(conn: &impl ConnectionTrait, tenant: &TenantId, id: &str) -> Result<WebhookEndpoint> {
    webhook_endpoint::Entity::scoped(tenant)
        .filter(webhook_endpoint::Column::Id.eq(id))
        .one(conn)
        .await?
        .map(|m| endpoint_to_domain(&m))
        .ok_or_else(|| StoreError::NotFound(format!("webhook endpoint {id}")))
}

pub async fn list_endpoints(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    page: &PageRequest,
) -> Result<Page<WebhookEndpoint>> {
    let mut q = webhook_endpoint::Entity::scoped(tenant).order_by_desc(webhook_endpoint::Column::Id).limit(page.size);
    if let Some(after) = &page.after {
        q = q.filter(webhook_endpoint::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    Ok(Page { items: rows.iter().map(endpoint_to_domain).collect(), next_page_token: next })
}

/// Deletes an endpoint; its undelivered deliveries are cancelled, the log is kept.
pub async fn delete_endpoint(conn: &impl ConnectionTrait, tenant: &TenantId, id: &str, now: Timestamp) -> Result<()> {
    let res = webhook_endpoint::Entity::delete_many()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_str()))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(conn)
        .await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("webhook endpoint {id}")));
    }
    delivery::Entity::update_many()
        .col_expr(delivery::Column::Status, Expr::value(DeliveryStatus::Cancelled.as_str()))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(time::to_micros(now)))
        .filter(delivery::Column::TenantId.eq(tenant.as_str()))
        .filter(delivery::Column::EndpointId.eq(id))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// The tenant's endpoints, for fan-out. Disabled ones get their deliveries too; they
/// wait until the endpoint is enabled again, so nothing is lost meanwhile.
pub(super) async fn fanout_endpoints(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<Vec<EndpointRow>> {
    Ok(webhook_endpoint::Entity::scoped(tenant).all(conn).await?)
}

/// Whether an endpoint wants an event: its type filter and its survey filter.
fn wants(endpoint: &EndpointRow, event_type: &str, data: &serde_json::Value) -> bool {
    let types = list_from_json(&endpoint.event_types);
    let surveys = list_from_json(&endpoint.survey_ids);
    let survey = data
        .get("survey_id")
        .or_else(|| data.get("response").and_then(|r| r.get("survey_id")))
        .and_then(|v| v.as_str());
    // An erasure concerns every survey: a survey filter does not hold it back.
    let any_survey = event_type == EventType::CustomerErased.as_str();
    (types.is_empty() || types.iter().any(|t| t == event_type))
        && (surveys.is_empty() || any_survey || survey.is_some_and(|s| surveys.iter().any(|x| x == s)))
}

/// Creates the deliveries of numbered events, in a few multi-row statements.
/// `follow_up.opened` waits out the settle window so the comment that follows the
/// score rides along.
pub(super) async fn fan_out(
    conn: &impl ConnectionTrait,
    endpoints: &[EndpointRow],
    events: &[event::Model],
    now: Timestamp,
    settle: chrono::Duration,
) -> Result<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for e in events {
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
        let created = time::from_micros(e.created_at);
        let due = if e.event_type == EventType::FollowUpOpened.as_str() { (created + settle).max(now) } else { now };
        for ep in endpoints.iter().filter(|ep| wants(ep, &e.event_type, &data)) {
            let seq = e.seq.unwrap_or_default();
            let d = new_delivery(&ep.tenant_id, &ep.id, &e.id, seq, &e.event_type, &e.data, None, created, due, now);
            rows.push(d.into_active_model());
        }
    }
    // Well under the bind-parameter limits of both databases per statement.
    const ROWS_PER_STATEMENT: usize = 500;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(ROWS_PER_STATEMENT));
        delivery::Entity::insert_many(std::mem::replace(&mut rows, rest)).exec_without_returning(conn).await?;
    }
    Ok(())
}

/// A pending delivery of an event to `endpoint`, due at `due`.
#[allow(clippy::too_many_arguments)]
fn new_delivery(
    tenant: &str,
    endpoint: &str,
    event_id: &str,
    event_seq: i64,
    event_type: &str,
    payload: &str,
    body: Option<String>,
    event_created: Timestamp,
    due: Timestamp,
    now: Timestamp,
) -> delivery::Model {
    delivery::Model {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_owned(),
        endpoint_id: endpoint.to_owned(),
        event_id: event_id.to_owned(),
        event_seq,
        event_type: event_type.to_owned(),
        payload: payload.to_owned(),
        body,
        status: DeliveryStatus::Pending.as_str().into(),
        attempts: 0,
        next_attempt_at: time::to_micros(due),
        last_attempt_at: None,
        last_status_code: None,
        last_error: String::new(),
        event_created_at: time::to_micros(event_created),
        created_at: time::to_micros(now),
        updated_at: time::to_micros(now),
    }
}

/// Inserts one delivery made by [`new_delivery`]; returns its id.
async fn insert_delivery(conn: &impl ConnectionTrait, d: delivery::Model) -> Result<String> {
    let id = d.id.clone();
    d.into_active_model().insert(conn).await?;
    Ok(id)
}

/// A test event for one endpoint, due now.
pub async fn insert_test_delivery(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    endpoint: &str,
    data: &serde_json::Value,
    now: Timestamp,
) -> Result<String> {
    let event_id = uuid::Uuid::now_v7().to_string();
    insert_delivery(
        conn,
        new_delivery(
            tenant.as_str(),
            endpoint,
            &event_id,
            0,
            EventType::WebhookTest.as_str(),
            &data.to_string(),
            None,
            now,
            now,
            now,
        ),
    )
    .await
}

/// Claims up to `limit` due deliveries for this worker: their next attempt moves to
/// `now + lease`, so no other worker picks them up while this one sends; a worker that
/// dies mid-send leaves them to be sent again (same `webhook-id`) once the lease ends.
/// On PostgreSQL the rows are taken with `FOR UPDATE SKIP LOCKED`, so concurrent
/// replicas never claim the same attempt.
pub async fn claim_due(
    db: &Db,
    now: Timestamp,
    lease: chrono::Duration,
    limit: u64,
) -> Result<Vec<(DueDelivery, SigningEndpoint)>> {
    let txn = db.begin_write().await?;
    let enabled = sea_orm::sea_query::Query::select()
        .column(webhook_endpoint::Column::Id)
        .from(webhook_endpoint::Entity)
        .and_where(sea_orm::ExprTrait::eq(Expr::col(webhook_endpoint::Column::Enabled), true))
        .to_owned();
    let mut q = delivery::Entity::find()
        .filter(delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .filter(delivery::Column::NextAttemptAt.lte(time::to_micros(now)))
        .filter(delivery::Column::EndpointId.in_subquery(enabled))
        .order_by_asc(delivery::Column::NextAttemptAt)
        .limit(limit);
    if db.backend() == DbBackend::Postgres {
        q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = q.all(&txn).await?;
    let mut out = Vec::with_capacity(rows.len());
    let until = time::to_micros(now + lease);
    for mut row in rows {
        let endpoint =
            webhook_endpoint::Entity::find_by_id((row.tenant_id.clone(), row.endpoint_id.clone())).one(&txn).await?;
        let Some(endpoint) = endpoint.filter(|e| e.enabled) else {
            // Deleted or disabled meanwhile: the delivery waits (disabled) or is cancelled.
            continue;
        };
        row.next_attempt_at = until;
        row.attempts += 1;
        row.updated_at = time::to_micros(now);
        delivery::Entity::update_many()
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(until))
            .col_expr(delivery::Column::Attempts, Expr::value(row.attempts))
            .col_expr(delivery::Column::UpdatedAt, Expr::value(row.updated_at))
            .filter(delivery::Column::TenantId.eq(row.tenant_id.as_str()))
            .filter(delivery::Column::Id.eq(row.id.as_str()))
            .exec(&txn)
            .await?;
        out.push((
            due(row),
            SigningEndpoint {
                endpoint: endpoint_to_domain(&endpoint),
                secret: endpoint.secret,
                secret_key_id: endpoint.secret_key_id,
            },
        ));
    }
    txn.commit().await?;
    Ok(out)
}

/// A claimed delivery row as its attempt needs it.
fn due(row: DeliveryRow) -> DueDelivery {
    DueDelivery {
        payload: serde_json::from_str(&row.payload).unwrap_or_default(),
        id: row.id,
        tenant: TenantId(row.tenant_id),
        endpoint_id: row.endpoint_id,
        event_id: row.event_id,
        event_type: row.event_type,
        event_created_at: time::from_micros(row.event_created_at),
        body: row.body,
        attempt: row.attempts,
        next_attempt_at: time::from_micros(row.next_attempt_at),
    }
}

/// Keeps the body sent on the first attempt, so retries send the same bytes.
pub async fn set_body(conn: &impl ConnectionTrait, tenant: &TenantId, delivery_id: &str, body: &str) -> Result<()> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::Body, Expr::value(body))
        .filter(delivery::Column::TenantId.eq(tenant.as_str()))
        .filter(delivery::Column::Id.eq(delivery_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// What to write after an attempt.
pub struct AttemptRecord {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
    pub status_code: Option<i32>,
    pub error: String,
    pub duration_ms: i64,
}

/// Records an attempt's outcome and the log line.
pub async fn record_attempt(
    conn: &impl ConnectionTrait,
    d: &DueDelivery,
    rec: &AttemptRecord,
    now: Timestamp,
) -> Result<()> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::Status, Expr::value(rec.status.as_str()))
        .col_expr(
            delivery::Column::NextAttemptAt,
            Expr::value(time::to_micros(rec.next_attempt_at.unwrap_or(d.next_attempt_at))),
        )
        .col_expr(delivery::Column::LastAttemptAt, Expr::value(time::to_micros(now)))
        .col_expr(delivery::Column::LastStatusCode, Expr::value(rec.status_code))
        .col_expr(delivery::Column::LastError, Expr::value(rec.error.clone()))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(time::to_micros(now)))
        .filter(delivery::Column::TenantId.eq(d.tenant.as_str()))
        .filter(delivery::Column::Id.eq(d.id.as_str()))
        .exec(conn)
        .await?;
    log(conn, &d.tenant, &d.id, d.attempt, rec.status_code, &rec.error, rec.duration_ms, now).await
}

/// Appends a line to a delivery's log.
#[allow(clippy::too_many_arguments)]
pub async fn log(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    delivery_id: &str,
    attempt: i32,
    status_code: Option<i32>,
    error: &str,
    duration_ms: i64,
    now: Timestamp,
) -> Result<()> {
    delivery_attempt::Model {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.0.clone(),
        delivery_id: delivery_id.to_owned(),
        attempt,
        attempted_at: time::to_micros(now),
        status_code,
        error: error.to_owned(),
        duration_ms,
    }
    .into_active_model()
    .insert(conn)
    .await?;
    Ok(())
}

/// Marks an endpoint failing since `since` (if not already), or healthy (`None`).
pub async fn set_failing(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    endpoint: &WebhookEndpoint,
    since: Option<Timestamp>,
) -> Result<()> {
    let value = match (endpoint.failing_since, since) {
        (Some(c), Some(_)) => Some(c),
        (_, s) => s,
    };
    if value == endpoint.failing_since {
        return Ok(());
    }
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(value.map(time::to_micros)))
        .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_str()))
        .filter(webhook_endpoint::Column::Id.eq(endpoint.id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Disables an endpoint with a reason.
pub async fn disable(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    endpoint_id: &str,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
        .col_expr(webhook_endpoint::Column::DisabledReason, Expr::value(reason))
        .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(time::to_micros(now)))
        .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_str()))
        .filter(webhook_endpoint::Column::Id.eq(endpoint_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deliveries, newest first, each with its attempts.
pub async fn list_deliveries(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    f: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    let mut q = delivery::Entity::scoped(tenant).order_by_desc(delivery::Column::Id).limit(page.size);
    if let Some(e) = &f.endpoint_id {
        q = q.filter(delivery::Column::EndpointId.eq(e.as_str()));
    }
    if let Some(e) = &f.event_id {
        q = q.filter(delivery::Column::EventId.eq(e.as_str()));
    }
    if let Some(s) = f.status {
        q = q.filter(delivery::Column::Status.eq(s.as_str()));
    }
    if let Some(after) = &page.after {
        q = q.filter(delivery::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut attempts: std::collections::HashMap<String, Vec<DeliveryAttempt>> = Default::default();
    if !ids.is_empty() {
        for a in delivery_attempt::Entity::scoped(tenant)
            .filter(delivery_attempt::Column::DeliveryId.is_in(ids))
            .order_by_asc(delivery_attempt::Column::Id)
            .all(conn)
            .await?
        {
            attempts.entry(a.delivery_id.clone()).or_default().push(DeliveryAttempt {
                attempt: a.attempt,
                at: time::from_micros(a.attempted_at),
                status_code: a.status_code,
                error: a.error,
                duration_ms: a.duration_ms,
            });
        }
    }
    let items = rows
        .into_iter()
        .map(|r| {
            let status = DeliveryStatus::from_db(&r.status);
            Delivery {
                attempts: attempts.remove(&r.id).unwrap_or_default(),
                id: r.id,
                endpoint_id: r.endpoint_id,
                event_id: r.event_id,
                event_sequence: r.event_seq,
                event_type: r.event_type,
                status,
                next_attempt_at: (status == DeliveryStatus::Pending).then(|| time::from_micros(r.next_attempt_at)),
                created_at: time::from_micros(r.created_at),
            }
        })
        .collect();
    Ok(Page { items, next_page_token: next })
}

/// Delivers events to an endpoint again, as new deliveries with the same event ids
/// (so the same `webhook-id`), due now. One event, or every event of the endpoint
/// created in [start, end), whatever became of it. Returns how many were queued.
pub async fn replay(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    endpoint_id: &str,
    event_id: Option<&str>,
    window: Option<(Timestamp, Timestamp)>,
    now: Timestamp,
) -> Result<usize> {
    // Prefer the endpoint's own earlier deliveries (they hold the exact body); fall
    // back to the outbox for an event that never went to this endpoint.
    let mut q = delivery::Entity::scoped(tenant)
        .filter(delivery::Column::EndpointId.eq(endpoint_id))
        .filter(delivery::Column::EventType.ne(EventType::WebhookTest.as_str()))
        .order_by_asc(delivery::Column::EventSeq);
    if let Some(id) = event_id {
        q = q.filter(delivery::Column::EventId.eq(id));
    }
    if let Some((start, end)) = window {
        q = q
            .filter(delivery::Column::EventCreatedAt.gte(time::to_micros(start)))
            .filter(delivery::Column::EventCreatedAt.lt(time::to_micros(end)));
    }
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for d in q.all(conn).await? {
        if !seen.insert(d.event_id.clone()) {
            continue;
        }
        insert_delivery(
            conn,
            new_delivery(
                &d.tenant_id,
                &d.endpoint_id,
                &d.event_id,
                d.event_seq,
                &d.event_type,
                &d.payload,
                d.body.clone(),
                time::from_micros(d.event_created_at),
                now,
                now,
            ),
        )
        .await?;
        n += 1;
    }
    if let Some(id) = event_id
        && n == 0
    {
        let e = event::Entity::scoped(tenant)
            .filter(event::Column::Id.eq(id))
            .filter(event::Column::Seq.is_not_null())
            .one(conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("event {id}")))?;
        insert_delivery(
            conn,
            new_delivery(
                tenant.as_str(),
                endpoint_id,
                &e.id,
                e.seq.unwrap_or_default(),
                &e.event_type,
                &e.data,
                None,
                time::from_micros(e.created_at),
                now,
                now,
            ),
        )
        .await?;
        n = 1;
    }
    Ok(n)
}
