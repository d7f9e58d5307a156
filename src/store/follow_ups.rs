//! Follow-ups and their append-only entries.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{Scoped, follow_up, follow_up_entry};
use super::error::{Result, StoreError, decoded};
use super::responses;
use crate::domain::listing::{FollowUpFilter, FollowUpOrder, PageRequest};
use crate::domain::model::{EntryKind, FollowUp, FollowUpEntry, Page, Response};
use crate::domain::stored::{FollowUpState, NewFollowUp};
use crate::domain::time::Timestamp;
use crate::domain::{FollowUpId, FollowUpStatus, Priority, TenantId, time};

pub(super) fn to_row(tenant: &TenantId, f: &NewFollowUp) -> follow_up::Model {
    let at = time::to_micros(f.opened_at);
    follow_up::Model {
        id: f.id.0.clone(),
        tenant_id: tenant.0.clone(),
        response_id: f.response_id.0.clone(),
        survey_id: f.survey_id.0.clone(),
        customer_id: f.customer.0.clone(),
        status: FollowUpStatus::Open.as_str().into(),
        priority: Priority::Normal.as_str().into(),
        assignee: String::new(),
        due_at: time::to_micros(f.due_at),
        overdue_at: None,
        resolution: String::new(),
        at_or_under_threshold: true,
        opened_at: at,
        acknowledged_at: None,
        resolved_at: None,
        dismissed_at: None,
        reopened_at: None,
        updated_at: at,
    }
}

/// Appends one history entry.
pub async fn append(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    follow_up: &FollowUpId,
    entry: &FollowUpEntry,
) -> Result<()> {
    entry_row(tenant, follow_up.as_str(), entry).into_active_model().insert(conn).await?;
    Ok(())
}

/// Writes follow-ups just opened, each with its first history entry, in two statements.
pub async fn insert_opened(conn: &impl ConnectionTrait, tenant: &TenantId, opened: &[NewFollowUp]) -> Result<()> {
    if opened.is_empty() {
        return Ok(());
    }
    let rows: Vec<follow_up::Model> = opened.iter().map(|f| to_row(tenant, f)).collect();
    super::sql::insert_models::<follow_up::Entity>(conn, &rows, "").await?;
    let entries: Vec<follow_up_entry::Model> =
        opened.iter().map(|f| entry_row(tenant, f.id.as_str(), &f.entry)).collect();
    super::sql::insert_models::<follow_up_entry::Entity>(conn, &entries, "").await?;
    Ok(())
}

pub(super) fn entry_row(tenant: &TenantId, follow_up: &str, entry: &FollowUpEntry) -> follow_up_entry::Model {
    follow_up_entry::Model {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.0.clone(),
        follow_up_id: follow_up.to_owned(),
        kind: entry.kind.as_str().into(),
        author: entry.author.clone(),
        body: entry.body.clone(),
        from_status: entry.from_status.map(|s| s.as_str().to_owned()),
        to_status: entry.to_status.map(|s| s.as_str().to_owned()),
        created_at: time::to_micros(entry.at),
    }
}

async fn row(conn: &impl ConnectionTrait, tenant: &TenantId, id: &FollowUpId) -> Result<follow_up::Model> {
    follow_up::Entity::scoped(tenant)
        .filter(follow_up::Column::Id.eq(id.as_str()))
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("follow-up {id}")))
}

fn state_of(r: &follow_up::Model) -> Result<FollowUpState> {
    Ok(FollowUpState {
        status: decoded(FollowUpStatus::from_db(&r.status))?,
        priority: decoded(Priority::from_db(&r.priority))?,
        assignee: r.assignee.clone(),
        resolution: r.resolution.clone(),
        at_or_under_threshold: r.at_or_under_threshold,
        acknowledged_at: r.acknowledged_at.map(time::from_micros),
        resolved_at: r.resolved_at.map(time::from_micros),
        dismissed_at: r.dismissed_at.map(time::from_micros),
        reopened_at: r.reopened_at.map(time::from_micros),
        updated_at: time::from_micros(r.updated_at),
    })
}

/// What actions change on the follow-up, or [`StoreError::NotFound`].
pub async fn state(conn: &impl ConnectionTrait, tenant: &TenantId, id: &FollowUpId) -> Result<FollowUpState> {
    state_of(&row(conn, tenant, id).await?)
}

/// Writes back what actions change on the follow-up.
pub async fn save_state(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &FollowUpId,
    s: &FollowUpState,
) -> Result<()> {
    let us = |t: Option<Timestamp>| Expr::value(t.map(time::to_micros));
    follow_up::Entity::update_many()
        .col_expr(follow_up::Column::Status, Expr::value(s.status.as_str()))
        .col_expr(follow_up::Column::Priority, Expr::value(s.priority.as_str()))
        .col_expr(follow_up::Column::Assignee, Expr::value(s.assignee.clone()))
        .col_expr(follow_up::Column::Resolution, Expr::value(s.resolution.clone()))
        .col_expr(follow_up::Column::AtOrUnderThreshold, Expr::value(s.at_or_under_threshold))
        .col_expr(follow_up::Column::AcknowledgedAt, us(s.acknowledged_at))
        .col_expr(follow_up::Column::ResolvedAt, us(s.resolved_at))
        .col_expr(follow_up::Column::DismissedAt, us(s.dismissed_at))
        .col_expr(follow_up::Column::ReopenedAt, us(s.reopened_at))
        .col_expr(follow_up::Column::UpdatedAt, Expr::value(time::to_micros(s.updated_at)))
        .filter(follow_up::Column::TenantId.eq(tenant.as_str()))
        .filter(follow_up::Column::Id.eq(id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

fn entry_to_domain(m: follow_up_entry::Model) -> Result<FollowUpEntry> {
    Ok(FollowUpEntry {
        kind: EntryKind::from_db(&m.kind),
        at: time::from_micros(m.created_at),
        author: m.author,
        body: m.body,
        from_status: decoded(m.from_status.as_deref().map(FollowUpStatus::from_db).transpose())?,
        to_status: decoded(m.to_status.as_deref().map(FollowUpStatus::from_db).transpose())?,
    })
}

/// Follow-up rows with their responses and entries, in the given order.
async fn hydrate(conn: &impl ConnectionTrait, tenant: &TenantId, rows: Vec<follow_up::Model>) -> Result<Vec<FollowUp>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut entries: std::collections::HashMap<String, Vec<FollowUpEntry>> = Default::default();
    for e in follow_up_entry::Entity::scoped(tenant)
        .filter(follow_up_entry::Column::FollowUpId.is_in(ids))
        .order_by_asc(follow_up_entry::Column::Id)
        .all(conn)
        .await?
    {
        entries.entry(e.follow_up_id.clone()).or_default().push(entry_to_domain(e)?);
    }
    let response_ids: Vec<&str> = rows.iter().map(|r| r.response_id.as_str()).collect();
    let resp_rows = super::entities::response::Entity::scoped(tenant)
        .filter(super::entities::response::Column::Id.is_in(response_ids))
        .all(conn)
        .await?;
    let mut by_id: std::collections::HashMap<String, Response> =
        responses::hydrate(conn, tenant, resp_rows).await?.into_iter().map(|r| (r.id.0.clone(), r)).collect();
    rows.into_iter()
        .map(|r| {
            let response = by_id
                .remove(&r.response_id)
                .ok_or_else(|| StoreError::other(anyhow::anyhow!("follow-up {} lost its response", r.id)))?;
            let e = entries.remove(&r.id).unwrap_or_default();
            to_domain(r, response, e)
        })
        .collect()
}

/// A follow-up row with its response and entries, as a domain record.
fn to_domain(r: follow_up::Model, response: Response, entries: Vec<FollowUpEntry>) -> Result<FollowUp> {
    let s = state_of(&r)?;
    Ok(FollowUp {
        entries,
        id: FollowUpId(r.id),
        response,
        status: s.status,
        priority: s.priority,
        assignee: s.assignee,
        due_at: time::from_micros(r.due_at),
        overdue_at: r.overdue_at.map(time::from_micros),
        resolution: s.resolution,
        at_or_under_threshold: s.at_or_under_threshold,
        opened_at: time::from_micros(r.opened_at),
        acknowledged_at: s.acknowledged_at,
        resolved_at: s.resolved_at,
        dismissed_at: s.dismissed_at,
        reopened_at: s.reopened_at,
        updated_at: s.updated_at,
    })
}

pub async fn get(conn: &impl ConnectionTrait, tenant: &TenantId, id: &FollowUpId) -> Result<FollowUp> {
    let r = row(conn, tenant, id).await?;
    hydrate(conn, tenant, vec![r]).await?.pop().ok_or_else(|| StoreError::NotFound(format!("follow-up {id}")))
}

pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    f: &FollowUpFilter,
    page: &PageRequest,
) -> Result<Page<FollowUp>> {
    let mut q = follow_up::Entity::scoped(tenant).limit(page.size);
    if let Some(s) = f.status {
        q = q.filter(follow_up::Column::Status.eq(s.as_str()));
    }
    if let Some(s) = &f.survey {
        q = q.filter(follow_up::Column::SurveyId.eq(s.as_str()));
    }
    if let Some(c) = &f.customer_row {
        q = q.filter(follow_up::Column::CustomerId.eq(c.as_str()));
    }
    if let Some(a) = &f.assignee {
        q = q.filter(follow_up::Column::Assignee.eq(a.as_str()));
    }
    match f.overdue {
        Some(true) => q = q.filter(follow_up::Column::OverdueAt.is_not_null()),
        Some(false) => q = q.filter(follow_up::Column::OverdueAt.is_null()),
        None => {}
    }
    let (rows, next) = match f.order {
        FollowUpOrder::Newest => {
            q = q.order_by_desc(follow_up::Column::Id);
            if let Some(after) = &page.after {
                q = q.filter(follow_up::Column::Id.lt(after.as_str()));
            }
            let rows = q.all(conn).await?;
            let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
            (rows, next)
        }
        FollowUpOrder::DueFirst => {
            q = q.order_by_asc(follow_up::Column::DueAt).order_by_asc(follow_up::Column::Id);
            if let Some(after) = &page.after {
                // Checked at the boundary (grpc/follow_ups.rs); a bad one here is a bug.
                let (due, id) = FollowUpOrder::parse_due_position(after).map_err(StoreError::other)?;
                q = q.filter(
                    Condition::any()
                        .add(follow_up::Column::DueAt.gt(due))
                        .add(Condition::all().add(follow_up::Column::DueAt.eq(due)).add(follow_up::Column::Id.gt(id))),
                );
            }
            let rows = q.all(conn).await?;
            let last = rows.last().map(|r| FollowUpOrder::due_position(r.due_at, &r.id));
            let next = page.next_token(rows.len(), last.as_deref());
            (rows, next)
        }
    };
    Ok(Page { items: hydrate(conn, tenant, rows).await?, next_page_token: next })
}

/// Active follow-ups past their due time and not yet marked overdue.
pub async fn due_for_overdue(
    conn: &impl ConnectionTrait,
    now: Timestamp,
    limit: u64,
) -> Result<Vec<(TenantId, FollowUpId)>> {
    let rows: Vec<(String, String)> = follow_up::Entity::find()
        .filter(follow_up::Column::Status.is_in(["open", "acknowledged"]))
        .filter(follow_up::Column::DueAt.lte(time::to_micros(now)))
        .filter(follow_up::Column::OverdueAt.is_null())
        .select_only()
        .column(follow_up::Column::TenantId)
        .column(follow_up::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|(t, id)| (TenantId(t), FollowUpId(id))).collect())
}

/// Marks one follow-up overdue unless it already is (or is no longer active). Returns
/// whether this call marked it: of concurrent callers exactly one does.
pub async fn set_overdue(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &FollowUpId,
    now: Timestamp,
) -> Result<bool> {
    let res = follow_up::Entity::update_many()
        .col_expr(follow_up::Column::OverdueAt, Expr::value(time::to_micros(now)))
        .filter(follow_up::Column::TenantId.eq(tenant.as_str()))
        .filter(follow_up::Column::Id.eq(id.as_str()))
        .filter(follow_up::Column::Status.is_in(["open", "acknowledged"]))
        .filter(follow_up::Column::OverdueAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}
