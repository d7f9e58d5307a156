//! Responses.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{Scoped, customer, follow_up, response};
use super::error::{Result, StoreError, decoded};
use super::props_from_json;
use crate::domain::listing::{PageRequest, ResponseFilter};
use crate::domain::model::{Page, Response};
use crate::domain::{
    Bucket, CustomerRef, FollowUpId, InvitationId, ResponseId, Scale, SurveyId, SurveyKind, TenantId, time,
};

pub use response::Model as Row;

/// A response row with the customer's CRM id and its follow-up id.
pub fn to_domain(m: Row, customer: CustomerRef, follow_up_id: Option<String>) -> Result<Response> {
    let kind = decoded(SurveyKind::from_db(&m.kind))?;
    Ok(Response {
        id: ResponseId(m.id),
        survey_id: SurveyId(m.survey_id),
        customer,
        invitation_id: m.invitation_id.map(InvitationId),
        scale: Scale { kind, max: m.scale_max },
        score: m.score,
        bucket: decoded(Bucket::from_db(&m.bucket))?,
        comment: m.comment,
        properties: props_from_json(&m.properties),
        recorded_at: time::from_micros(m.recorded_at),
        updated_at: time::from_micros(m.updated_at),
        follow_up_id: follow_up_id.map(FollowUpId),
    })
}

/// Inserts rows in one statement.
pub async fn insert_many(conn: &impl ConnectionTrait, rows: Vec<Row>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    response::Entity::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Writes a changed response (score, bucket, comment, properties, updated_at).
pub async fn save(conn: &impl ConnectionTrait, row: Row) -> Result<()> {
    let am = row.into_active_model().reset_all();
    response::Entity::update(am).exec(conn).await?;
    Ok(())
}

pub async fn row_by_id(conn: &impl ConnectionTrait, tenant: &TenantId, id: &ResponseId) -> Result<Row> {
    response::Entity::scoped(tenant)
        .filter(response::Column::Id.eq(id.as_str()))
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("response {id}")))
}

pub async fn row_by_idempotency_key(conn: &impl ConnectionTrait, tenant: &TenantId, key: &str) -> Result<Option<Row>> {
    Ok(response::Entity::scoped(tenant).filter(response::Column::IdempotencyKey.eq(key)).one(conn).await?)
}

pub async fn row_by_invitation(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    inv: &InvitationId,
) -> Result<Option<Row>> {
    Ok(response::Entity::scoped(tenant).filter(response::Column::InvitationId.eq(inv.as_str())).one(conn).await?)
}

/// Attaches customers' CRM ids and follow-up ids to rows (two queries for any number).
pub async fn hydrate(conn: &impl ConnectionTrait, tenant: &TenantId, rows: Vec<Row>) -> Result<Vec<Response>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let customer_ids: Vec<&str> = rows.iter().map(|r| r.customer_id.as_str()).collect();
    let customers: HashMap<String, String> = customer::Entity::scoped(tenant)
        .filter(customer::Column::Id.is_in(customer_ids))
        .select_only()
        .column(customer::Column::Id)
        .column(customer::Column::ExternalId)
        .into_tuple::<(String, String)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let response_ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let follow_ups: HashMap<String, String> = follow_up::Entity::scoped(tenant)
        .filter(follow_up::Column::ResponseId.is_in(response_ids))
        .select_only()
        .column(follow_up::Column::ResponseId)
        .column(follow_up::Column::Id)
        .into_tuple::<(String, String)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    rows.into_iter()
        .map(|r| {
            let ext = CustomerRef(customers.get(&r.customer_id).cloned().unwrap_or_default());
            let fu = follow_ups.get(&r.id).cloned();
            to_domain(r, ext, fu)
        })
        .collect()
}

/// Responses, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    f: &ResponseFilter,
    page: &PageRequest,
) -> Result<Page<Response>> {
    let mut q = response::Entity::scoped(tenant).order_by_desc(response::Column::Id).limit(page.size);
    if let Some(s) = &f.survey {
        q = q.filter(response::Column::SurveyId.eq(s.as_str()));
    }
    if let Some(c) = &f.customer_row {
        q = q.filter(response::Column::CustomerId.eq(c.as_str()));
    }
    if let Some(t) = f.start {
        q = q.filter(response::Column::RecordedAt.gte(time::to_micros(t)));
    }
    if let Some(t) = f.end {
        q = q.filter(response::Column::RecordedAt.lt(time::to_micros(t)));
    }
    if let Some(b) = f.bucket {
        q = q.filter(response::Column::Bucket.eq(b.as_str()));
    }
    if let Some(after) = &page.after {
        q = q.filter(response::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    Ok(Page { items: hydrate(conn, tenant, rows).await?, next_page_token: next })
}
