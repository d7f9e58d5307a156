//! Surveys.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult as _, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait as _,
};

use super::entities::{Scoped, survey};
use super::error::{Result, StoreError, decoded};
use super::{props_from_json, props_to_json};
use crate::domain::eligibility::PolicyOverrides;
use crate::domain::listing::PageRequest;
use crate::domain::model::{Branding, FollowUpRule, Page, Survey};
use crate::domain::{Scale, SurveyId, SurveyKind, TenantId, time};

fn to_domain(m: survey::Model) -> Result<Survey> {
    let kind = decoded(SurveyKind::from_db(&m.kind))?;
    Ok(Survey {
        id: SurveyId(m.id),
        scale: Scale { kind, max: m.scale_max },
        name: m.name,
        question: m.question,
        low_label: m.low_label,
        high_label: m.high_label,
        policy: PolicyOverrides {
            days_after_invitation_this_survey: m.days_after_invitation_this_survey,
            days_after_invitation_any_survey: m.days_after_invitation_any_survey,
            days_after_response_this_survey: m.days_after_response_this_survey,
            days_after_response_any_survey: m.days_after_response_any_survey,
            invitation_expiry_days: m.invitation_expiry_days,
        },
        follow_up: FollowUpRule {
            threshold: m.follow_up_threshold,
            customer_condition: props_from_json(&m.follow_up_condition),
            sla_hours: m.follow_up_sla_hours,
            disabled: m.follow_up_disabled,
        },
        in_app: m.in_app,
        branding: Branding {
            display_name: m.brand_display_name,
            accent_color: m.brand_accent_color,
            logo_url: m.brand_logo_url,
            language: m.language,
        },
        archived_at: m.archived_at.map(time::from_micros),
        created_at: time::from_micros(m.created_at),
        updated_at: time::from_micros(m.updated_at),
    })
}

fn to_model(tenant: &TenantId, s: &Survey) -> survey::Model {
    survey::Model {
        id: s.id.0.clone(),
        tenant_id: tenant.0.clone(),
        kind: s.scale.kind.as_str().into(),
        name: s.name.clone(),
        question: s.question.clone(),
        scale_max: s.scale.max,
        low_label: s.low_label.clone(),
        high_label: s.high_label.clone(),
        days_after_invitation_this_survey: s.policy.days_after_invitation_this_survey,
        days_after_invitation_any_survey: s.policy.days_after_invitation_any_survey,
        days_after_response_this_survey: s.policy.days_after_response_this_survey,
        days_after_response_any_survey: s.policy.days_after_response_any_survey,
        invitation_expiry_days: s.policy.invitation_expiry_days,
        follow_up_threshold: s.follow_up.threshold,
        follow_up_condition: props_to_json(&s.follow_up.customer_condition),
        follow_up_sla_hours: s.follow_up.sla_hours,
        follow_up_disabled: s.follow_up.disabled,
        in_app: s.in_app,
        brand_display_name: s.branding.display_name.clone(),
        brand_accent_color: s.branding.accent_color.clone(),
        brand_logo_url: s.branding.logo_url.clone(),
        language: s.branding.language.clone(),
        archived_at: s.archived_at.map(time::to_micros),
        created_at: time::to_micros(s.created_at),
        updated_at: time::to_micros(s.updated_at),
    }
}

pub async fn insert(conn: &impl ConnectionTrait, tenant: &TenantId, s: &Survey) -> Result<()> {
    to_model(tenant, s).into_active_model().insert(conn).await?;
    Ok(())
}

/// Writes every field of `s` over the stored survey.
pub async fn save(conn: &impl ConnectionTrait, tenant: &TenantId, s: &Survey) -> Result<()> {
    let mut am = to_model(tenant, s).into_active_model();
    // Mark every column changed so the UPDATE writes them all.
    am = am.reset_all();
    // Callers read the survey through `get` (tenant-scoped) in the same transaction.
    survey::Entity::update(am).exec(conn).await?;
    Ok(())
}

/// The survey, or `NOT_FOUND` (also when it belongs to another tenant).
pub async fn get(conn: &impl ConnectionTrait, tenant: &TenantId, id: &SurveyId) -> Result<Survey> {
    static TEXT: std::sync::OnceLock<[std::sync::OnceLock<String>; 3]> = std::sync::OnceLock::new();
    let backend = conn.get_database_backend();
    // The same statement as `scoped(tenant).filter(id).one()`, its text built once.
    let text = super::sql::cached_text(&TEXT, backend, |b| {
        survey::Entity::scoped(&TenantId(String::new())).filter(survey::Column::Id.eq("")).limit(1).build(b)
    });
    let values = [tenant.as_str().into(), id.as_str().into(), 1u64.into()];
    survey::Model::find_by_statement(sea_orm::Statement::from_sql_and_values(backend, text, values))
        .one(conn)
        .await?
        .map(to_domain)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("survey {id}")))
}

/// The surveys of these ids that belong to the tenant.
pub async fn get_many(conn: &impl ConnectionTrait, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Survey>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // As one array on PostgreSQL: the same text whatever the number of ids.
    let ids = ids.iter().map(|id| (*id).to_owned()).collect();
    survey::Entity::scoped(tenant)
        .filter(super::sql::one_of(conn.get_database_backend(), survey::Column::Id, ids))
        .all(conn)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// Surveys, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    kind: Option<SurveyKind>,
    include_archived: bool,
    page: &PageRequest,
) -> Result<Page<Survey>> {
    let mut q = survey::Entity::scoped(tenant).order_by_desc(survey::Column::Id).limit(page.size);
    if let Some(k) = kind {
        q = q.filter(survey::Column::Kind.eq(k.as_str()));
    }
    if !include_archived {
        q = q.filter(survey::Column::ArchivedAt.is_null());
    }
    if let Some(after) = &page.after {
        q = q.filter(survey::Column::Id.lt(after.as_str()));
    }
    let rows = q.all(conn).await?;
    let next = page.next_token(rows.len(), rows.last().map(|r| r.id.as_str()));
    Ok(Page { items: rows.into_iter().map(to_domain).collect::<Result<_>>()?, next_page_token: next })
}

/// Every survey of a kind (for metrics across surveys).
pub async fn of_kind(conn: &impl ConnectionTrait, tenant: &TenantId, kind: SurveyKind) -> Result<Vec<Survey>> {
    survey::Entity::scoped(tenant)
        .filter(survey::Column::Kind.eq(kind.as_str()))
        .all(conn)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}
