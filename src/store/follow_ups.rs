//! Follow-ups and their append-only entries.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{Scoped, follow_up, follow_up_entry};
use super::responses;
use crate::domain::listing::{FollowUpFilter, FollowUpOrder, PageRequest};
use crate::domain::model::{EntryKind, FollowUp, FollowUpEntry, Page};
use crate::domain::time::Timestamp;
use crate::domain::{FollowUpId, FollowUpStatus, Priority, ResponseId, TenantId, time};
use crate::error::{AppError, Result};

pub use follow_up::Model as Row;

pub async fn save(conn: &impl ConnectionTrait, row: Row) -> Result<()> {
    follow_up::Entity::update(row.into_active_model().reset_all()).exec(conn).await?;
    Ok(())
}

/// Appends one history entry.
pub async fn append(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    follow_up: &str,
    entry: &FollowUpEntry,
) -> Result<()> {
    entry_row(tenant, follow_up, entry).into_active_model().insert(conn).await?;
    Ok(())
}

/// Inserts follow-ups, each with its first history entry, in two statements.
pub async fn insert_opened(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    opened: &[(Row, FollowUpEntry)],
) -> Result<(), sea_orm::DbErr> {
    if opened.is_empty() {
        return Ok(());
    }
    follow_up::Entity::insert_many(opened.iter().map(|(row, _)| row.clone().into_active_model()))
        .exec_without_returning(conn)
        .await?;
    follow_up_entry::Entity::insert_many(
        opened.iter().map(|(row, entry)| entry_row(tenant, &row.id, entry).into_active_model()),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

fn entry_row(tenant: &TenantId, follow_up: &str, entry: &FollowUpEntry) -> follow_up_entry::Model {
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

pub async fn row(conn: &impl ConnectionTrait, tenant: &TenantId, id: &FollowUpId) -> Result<Row> {
    follow_up::Entity::scoped(tenant)
        .filter(follow_up::Column::Id.eq(id.as_str()))
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("follow-up {id}")))
}

pub async fn row_by_response(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    response: &ResponseId,
) -> Result<Option<Row>> {
    Ok(follow_up::Entity::scoped(tenant).filter(follow_up::Column::ResponseId.eq(response.as_str())).one(conn).await?)
}

fn entry_to_domain(m: follow_up_entry::Model) -> Result<FollowUpEntry> {
    Ok(FollowUpEntry {
        kind: EntryKind::from_db(&m.kind),
        at: time::from_micros(m.created_at),
        author: m.author,
        body: m.body,
        from_status: m.from_status.as_deref().map(FollowUpStatus::from_db).transpose()?,
        to_status: m.to_status.as_deref().map(FollowUpStatus::from_db).transpose()?,
    })
}

/// Follow-up rows with their responses and entries, in the given order.
async fn hydrate(conn: &impl ConnectionTrait, tenant: &TenantId, rows: Vec<Row>) -> Result<Vec<FollowUp>> {
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
    let mut by_id: std::collections::HashMap<String, crate::domain::model::Response> =
        responses::hydrate(conn, tenant, resp_rows).await?.into_iter().map(|r| (r.id.0.clone(), r)).collect();
    rows.into_iter()
        .map(|r| {
            let response = by_id
                .remove(&r.response_id)
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("follow-up {} lost its response", r.id)))?;
            let e = entries.remove(&r.id).unwrap_or_default();
            to_domain(r, response, e)
        })
        .collect()
}

/// A follow-up row with its response and entries, as a domain record.
pub fn to_domain(r: Row, response: crate::domain::model::Response, entries: Vec<FollowUpEntry>) -> Result<FollowUp> {
    Ok(FollowUp {
        entries,
        id: FollowUpId(r.id),
        response,
        status: FollowUpStatus::from_db(&r.status)?,
        priority: Priority::from_db(&r.priority)?,
        assignee: r.assignee,
        due_at: time::from_micros(r.due_at),
        overdue_at: r.overdue_at.map(time::from_micros),
        resolution: r.resolution,
        at_or_under_threshold: r.at_or_under_threshold,
        opened_at: time::from_micros(r.opened_at),
        acknowledged_at: r.acknowledged_at.map(time::from_micros),
        resolved_at: r.resolved_at.map(time::from_micros),
        dismissed_at: r.dismissed_at.map(time::from_micros),
        reopened_at: r.reopened_at.map(time::from_micros),
        updated_at: time::from_micros(r.updated_at),
    })
}

pub async fn get(conn: &impl ConnectionTrait, tenant: &TenantId, id: &FollowUpId) -> Result<FollowUp> {
    let r = row(conn, tenant, id).await?;
    hydrate(conn, tenant, vec![r]).await?.pop().ok_or_else(|| AppError::NotFound(format!("follow-up {id}")))
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
                let (due, id) = FollowUpOrder::parse_due_position(after)?;
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
        .col_expr(follow_up::Column::OverdueAt, sea_orm::sea_query::Expr::value(time::to_micros(now)))
        .filter(follow_up::Column::TenantId.eq(tenant.as_str()))
        .filter(follow_up::Column::Id.eq(id.as_str()))
        .filter(follow_up::Column::Status.is_in(["open", "acknowledged"]))
        .filter(follow_up::Column::OverdueAt.is_null())
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}
