//! Invitations and recorded suppressions (one table), and the history that
//! eligibility reads.

use sea_orm::ExprTrait as _;
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};

use super::entities::{Scoped, invitation, response};
use super::error::Result;
use crate::domain::eligibility::History;
use crate::domain::model::{Channel, Invitation};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, CustomerRowId, InvitationId, ResponseId, SurveyId, TenantId, time};

pub use invitation::Model as Row;

pub const ISSUED: &str = "issued";
pub const SUPPRESSED: &str = "suppressed";

/// The invitation of an issued row, with the customer's CRM id.
pub fn to_domain(m: &Row, customer: &CustomerRef) -> Invitation {
    Invitation {
        id: InvitationId(m.id.clone()),
        survey_id: SurveyId(m.survey_id.clone()),
        customer: customer.clone(),
        channel: Channel::from_db(&m.channel),
        forced: m.forced,
        issued_at: time::from_micros(m.created_at),
        expires_at: time::from_micros(m.expires_at.unwrap_or(m.created_at)),
        response_id: m.response_id.clone().map(ResponseId),
        dismissed_at: m.dismissed_at.map(time::from_micros),
    }
}

pub async fn insert(conn: &impl ConnectionTrait, row: Row) -> Result<()> {
    row.into_active_model().insert(conn).await?;
    Ok(())
}

/// Inserts rows in one statement.
pub async fn insert_many(conn: &impl ConnectionTrait, rows: Vec<Row>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    invitation::Entity::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn by_idempotency_key(conn: &impl ConnectionTrait, tenant: &TenantId, key: &str) -> Result<Option<Row>> {
    Ok(invitation::Entity::scoped(tenant).filter(invitation::Column::IdempotencyKey.eq(key)).one(conn).await?)
}

/// The issued invitation holding this token hash (the token names its tenant).
pub async fn by_token_hash(conn: &impl ConnectionTrait, hash: &str) -> Result<Option<Row>> {
    Ok(invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(hash))
        .filter(invitation::Column::Outcome.eq(ISSUED))
        .one(conn)
        .await?)
}

/// Issued invitations by token hash (of any tenant: the token is the credential).
pub async fn by_token_hashes(conn: &impl ConnectionTrait, hashes: &[&str]) -> Result<Vec<Row>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(invitation::Entity::find()
        .filter(invitation::Column::TokenHash.is_in(hashes.iter().copied()))
        .filter(invitation::Column::Outcome.eq(ISSUED))
        .all(conn)
        .await?)
}

pub async fn by_id(conn: &impl ConnectionTrait, tenant: &TenantId, id: &InvitationId) -> Result<Option<Row>> {
    Ok(invitation::Entity::scoped(tenant).filter(invitation::Column::Id.eq(id.as_str())).one(conn).await?)
}

/// Replaces an invitation's token hash (an idempotent retry hands out a new token).
pub async fn set_token_hash(conn: &impl ConnectionTrait, id: &InvitationId, hash: &str) -> Result<()> {
    invitation::Entity::update_many()
        .col_expr(invitation::Column::TokenHash, Expr::value(hash))
        .filter(invitation::Column::Id.eq(id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Marks invitations answered, each by its response, in one statement.
pub async fn mark_answered(
    conn: &impl ConnectionTrait,
    answered: &[(&InvitationId, &ResponseId)],
    at: Timestamp,
) -> Result<()> {
    if answered.is_empty() {
        return Ok(());
    }
    let response_of = answered.iter().fold(CaseStatement::new(), |case, (inv, resp)| {
        case.case(invitation::Column::Id.eq(inv.as_str()), resp.as_str())
    });
    invitation::Entity::update_many()
        .col_expr(invitation::Column::AnsweredAt, Expr::value(time::to_micros(at)))
        .col_expr(invitation::Column::ResponseId, response_of.into())
        .filter(invitation::Column::Id.is_in(answered.iter().map(|(inv, _)| inv.as_str())))
        .exec(conn)
        .await?;
    Ok(())
}

async fn latest(
    conn: &impl ConnectionTrait,
    q: sea_orm::Select<impl EntityTrait>,
    col: impl sea_orm::sea_query::IntoColumnRef,
) -> Result<Option<Timestamp>> {
    let v: Option<Option<i64>> = q.select_only().expr(Expr::col(col).max()).into_tuple().one(conn).await?;
    Ok(v.flatten().map(time::from_micros))
}

/// The last invitation and response times eligibility needs, and the opt-out state.
pub async fn history(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    survey: &SurveyId,
    customer: &CustomerRowId,
    unsubscribed: bool,
    erased: bool,
) -> Result<History> {
    let inv = || {
        invitation::Entity::scoped(tenant)
            .filter(invitation::Column::CustomerId.eq(customer.as_str()))
            .filter(invitation::Column::Outcome.eq(ISSUED))
    };
    let resp = || response::Entity::scoped(tenant).filter(response::Column::CustomerId.eq(customer.as_str()));
    Ok(History {
        last_invitation_this_survey: latest(
            conn,
            inv().filter(invitation::Column::SurveyId.eq(survey.as_str())),
            invitation::Column::CreatedAt,
        )
        .await?,
        last_invitation_any_survey: latest(conn, inv(), invitation::Column::CreatedAt).await?,
        last_response_this_survey: latest(
            conn,
            resp().filter(response::Column::SurveyId.eq(survey.as_str())),
            response::Column::RecordedAt,
        )
        .await?,
        last_response_any_survey: latest(conn, resp(), response::Column::RecordedAt).await?,
        unsubscribed,
        erased,
    })
}
