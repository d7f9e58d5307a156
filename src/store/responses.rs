//! Responses.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{Scoped, customer, follow_up, response};
use super::error::{Result, StoreError, decoded};
use super::{props_from_json, props_to_json};
use crate::domain::listing::{PageRequest, ResponseFilter};
use crate::domain::model::{Page, Response};
use crate::domain::stored::{NewResponse, StoredResponse};
use crate::domain::{
    Bucket, CustomerRef, FollowUpId, InvitationId, ResponseId, Scale, SurveyId, SurveyKind, TenantId, time,
};

fn to_domain(m: response::Model, customer: CustomerRef, follow_up_id: Option<String>) -> Result<Response> {
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

pub(super) fn to_row(tenant: &TenantId, r: &NewResponse) -> response::Model {
    let at = time::to_micros(r.recorded_at);
    response::Model {
        id: r.id.0.clone(),
        tenant_id: tenant.0.clone(),
        survey_id: r.survey_id.0.clone(),
        customer_id: r.customer.0.clone(),
        invitation_id: r.invitation_id.as_ref().map(|i| i.0.clone()),
        kind: r.scale.kind.as_str().into(),
        score: r.score.value,
        bucket: r.score.bucket.as_str().into(),
        scale_max: r.scale.max,
        comment: r.comment.clone(),
        properties: props_to_json(&r.properties),
        idempotency_key: r.idempotency_key.clone(),
        request_hash: Some(r.fingerprint.clone()),
        recorded_at: at,
        updated_at: at,
    }
}

/// Writes responses, of one or several tenants, in one statement. A second answer to
/// an invitation or a reused idempotency key is [`super::StoreError::Unique`].
pub async fn insert_many(conn: &impl ConnectionTrait, new: &[(&TenantId, &NewResponse)]) -> Result<()> {
    if new.is_empty() {
        return Ok(());
    }
    let rows: Vec<response::Model> = new.iter().map(|(tenant, r)| to_row(tenant, r)).collect();
    super::sql::insert_models::<response::Entity>(conn, &rows, "").await?;
    Ok(())
}

/// Writes what `UpdateResponse` changes: score and bucket, comment, properties, and
/// the time of the change.
pub async fn save(conn: &impl ConnectionTrait, tenant: &TenantId, r: &Response) -> Result<()> {
    response::Entity::update_many()
        .col_expr(response::Column::Score, Expr::value(r.score))
        .col_expr(response::Column::Bucket, Expr::value(r.bucket.as_str()))
        .col_expr(response::Column::Comment, Expr::value(r.comment.clone()))
        .col_expr(response::Column::Properties, Expr::value(props_to_json(&r.properties)))
        .col_expr(response::Column::UpdatedAt, Expr::value(time::to_micros(r.updated_at)))
        .filter(response::Column::TenantId.eq(tenant.as_str()))
        .filter(response::Column::Id.eq(r.id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// The response, or [`StoreError::NotFound`] (also for another tenant's).
pub async fn get(conn: &impl ConnectionTrait, tenant: &TenantId, id: &ResponseId) -> Result<Response> {
    let row = response::Entity::scoped(tenant)
        .filter(response::Column::Id.eq(id.as_str()))
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("response {id}")))?;
    hydrate(conn, tenant, vec![row]).await?.pop().ok_or_else(|| StoreError::NotFound(format!("response {id}")))
}

/// The response an earlier request with this idempotency key recorded, with that
/// request's fingerprint.
pub async fn by_idempotency_key(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<StoredResponse>> {
    let Some(row) = response::Entity::scoped(tenant).filter(response::Column::IdempotencyKey.eq(key)).one(conn).await?
    else {
        return Ok(None);
    };
    let fingerprint = row.request_hash.clone();
    let response = hydrate(conn, tenant, vec![row]).await?.pop();
    Ok(response.map(|response| StoredResponse { response, fingerprint }))
}

/// Attaches customers' CRM ids and follow-up ids to rows (two queries for any number).
pub(super) async fn hydrate(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    rows: Vec<response::Model>,
) -> Result<Vec<Response>> {
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
