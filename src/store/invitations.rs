//! Invitations and recorded suppressions (one table), and the history that
//! eligibility reads.

use sea_orm::ExprTrait as _;
use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};

use super::entities::{Scoped, invitation, response};
use super::error::{Result, decoded};
use crate::domain::eligibility::{EligibilityRule, History};
use crate::domain::model::Channel;
use crate::domain::stored::{InvitationRecord, NewInvitation};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRowId, InvitationId, ResponseId, SurveyId, TenantId, time};

/// The stored outcome of an issued invitation (the others are suppressions).
pub(super) const ISSUED: &str = "issued";
pub(super) const SUPPRESSED: &str = "suppressed";

fn to_row(tenant: &TenantId, i: &NewInvitation) -> invitation::Model {
    invitation::Model {
        id: i.id.0.clone(),
        tenant_id: tenant.0.clone(),
        survey_id: i.survey_id.0.clone(),
        customer_id: i.customer.0.clone(),
        channel: i.channel.as_str().into(),
        outcome: if i.issued { ISSUED } else { SUPPRESSED }.into(),
        rule: i.rule.map(|r| r.as_str().to_owned()),
        next_eligible_at: i.next_eligible_at.map(time::to_micros),
        token_hash: i.token_hash.clone(),
        forced: i.forced,
        idempotency_key: i.idempotency_key.clone(),
        request_hash: i.fingerprint.clone(),
        created_at: time::to_micros(i.created_at),
        expires_at: i.expires_at.map(time::to_micros),
        answered_at: i.answered.as_ref().map(|(_, at)| time::to_micros(*at)),
        response_id: i.answered.as_ref().map(|(id, _)| id.0.clone()),
        dismissed_at: None,
    }
}

fn to_domain(m: invitation::Model) -> Result<InvitationRecord> {
    Ok(InvitationRecord {
        tenant: TenantId(m.tenant_id),
        id: InvitationId(m.id),
        survey_id: SurveyId(m.survey_id),
        customer: CustomerRowId(m.customer_id),
        channel: Channel::from_db(&m.channel),
        issued: m.outcome == ISSUED,
        rule: decoded(m.rule.as_deref().map(EligibilityRule::from_db).transpose())?,
        next_eligible_at: m.next_eligible_at.map(time::from_micros),
        forced: m.forced,
        token_hash: m.token_hash,
        fingerprint: m.request_hash,
        created_at: time::from_micros(m.created_at),
        expires_at: m.expires_at.map(time::from_micros),
        response_id: m.response_id.map(ResponseId),
        dismissed_at: m.dismissed_at.map(time::from_micros),
    })
}

/// Writes an invitation or a suppression; a reused idempotency key is
/// [`super::StoreError::Unique`].
pub async fn insert(conn: &impl ConnectionTrait, tenant: &TenantId, new: &NewInvitation) -> Result<()> {
    to_row(tenant, new).into_active_model().insert(conn).await?;
    Ok(())
}

/// Writes invitations in one statement.
pub async fn insert_many(conn: &impl ConnectionTrait, tenant: &TenantId, new: &[NewInvitation]) -> Result<()> {
    if new.is_empty() {
        return Ok(());
    }
    invitation::Entity::insert_many(new.iter().map(|i| to_row(tenant, i).into_active_model()))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The invitation or suppression an earlier request with this idempotency key wrote.
pub async fn by_idempotency_key(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<InvitationRecord>> {
    invitation::Entity::scoped(tenant)
        .filter(invitation::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await?
        .map(to_domain)
        .transpose()
}

/// The issued invitation holding this token hash (the token names its tenant).
pub async fn by_token_hash(conn: &impl ConnectionTrait, hash: &str) -> Result<Option<InvitationRecord>> {
    invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(hash))
        .filter(invitation::Column::Outcome.eq(ISSUED))
        .one(conn)
        .await?
        .map(to_domain)
        .transpose()
}

/// Issued invitations by token hash (of any tenant: the token is the credential).
pub async fn by_token_hashes(conn: &impl ConnectionTrait, hashes: &[&str]) -> Result<Vec<InvitationRecord>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    invitation::Entity::find()
        .filter(invitation::Column::TokenHash.is_in(hashes.iter().copied()))
        .filter(invitation::Column::Outcome.eq(ISSUED))
        .all(conn)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// Replaces an invitation's token hash (an idempotent retry hands out a new token).
pub async fn set_token_hash(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &InvitationId,
    hash: &str,
) -> Result<()> {
    invitation::Entity::update_many()
        .col_expr(invitation::Column::TokenHash, Expr::value(hash))
        .filter(invitation::Column::TenantId.eq(tenant.as_str()))
        .filter(invitation::Column::Id.eq(id.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Marks invitations answered, each by its response, in one statement per tenant.
pub async fn mark_answered(
    conn: &impl ConnectionTrait,
    answered: &[(&TenantId, &InvitationId, &ResponseId)],
    at: Timestamp,
) -> Result<()> {
    let mut by_tenant: std::collections::BTreeMap<&TenantId, Vec<(&InvitationId, &ResponseId)>> = Default::default();
    for (tenant, inv, resp) in answered {
        by_tenant.entry(*tenant).or_default().push((*inv, *resp));
    }
    for (tenant, answered) in by_tenant {
        let response_of = answered.iter().fold(CaseStatement::new(), |case, (inv, resp)| {
            case.case(invitation::Column::Id.eq(inv.as_str()), resp.as_str())
        });
        invitation::Entity::update_many()
            .col_expr(invitation::Column::AnsweredAt, Expr::value(time::to_micros(at)))
            .col_expr(invitation::Column::ResponseId, response_of.into())
            .filter(invitation::Column::TenantId.eq(tenant.as_str()))
            .filter(invitation::Column::Id.is_in(answered.iter().map(|(inv, _)| inv.as_str())))
            .exec(conn)
            .await?;
    }
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
