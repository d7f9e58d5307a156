//! The raw material of survey metrics: scores in a window and the invitation funnel.
//! Only counting and fetching here; the formulas are in `domain::stats`.

use std::collections::BTreeMap;

use sea_orm::ExprTrait as _;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QuerySelect};

use super::entities::{Scoped, customer, invitation, response};
use super::error::{Result, decoded};
use super::invitations::{ISSUED, SUPPRESSED};
use super::props_from_json;
use crate::domain::model::{Funnel, Properties};
use crate::domain::time::Timestamp;
use crate::domain::{EligibilityRule, SurveyId, TenantId, time};

/// One response as metrics see it.
pub struct Scored {
    pub score: i32,
    pub recorded_at: Timestamp,
    /// The response's properties over the customer's (only when asked for).
    pub properties: Properties,
}

/// Scores of the surveys' responses recorded in [start, end). With `with_properties`
/// each carries the customer's properties overlaid with the response's.
pub async fn scores(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    surveys: &[SurveyId],
    start: Timestamp,
    end: Timestamp,
    with_properties: bool,
) -> Result<Vec<Scored>> {
    let ids: Vec<&str> = surveys.iter().map(SurveyId::as_str).collect();
    let q = response::Entity::scoped(tenant)
        .filter(response::Column::SurveyId.is_in(ids))
        .filter(response::Column::RecordedAt.gte(time::to_micros(start)))
        .filter(response::Column::RecordedAt.lt(time::to_micros(end)))
        .select_only()
        .column(response::Column::Score)
        .column(response::Column::RecordedAt);
    if !with_properties {
        let rows: Vec<(i32, i64)> = q.into_tuple().all(conn).await?;
        return Ok(rows
            .into_iter()
            .map(|(score, at)| Scored { score, recorded_at: time::from_micros(at), properties: Properties::new() })
            .collect());
    }
    let rel = response::Entity::belongs_to(customer::Entity)
        .from((response::Column::TenantId, response::Column::CustomerId))
        .to((customer::Column::TenantId, customer::Column::Id))
        .into();
    let rows: Vec<(i32, i64, String, String)> = q
        .column(response::Column::Properties)
        .column_as(customer::Column::Properties, "customer_properties")
        .join(JoinType::InnerJoin, rel)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(score, at, rp, cp)| {
            let mut props = props_from_json(&cp);
            props.extend(props_from_json(&rp));
            Scored { score, recorded_at: time::from_micros(at), properties: props }
        })
        .collect())
}

/// How many responses of the surveys, recorded in [start, end), gave each score on
/// each UTC day: `(score, day, count)`, the day as days since 1970-01-01. Counted by
/// the database, so a window of 100 000 answers returns a few hundred rows (the
/// console's first screen, issue 18); day, week and month periods are whole UTC days.
pub async fn score_counts_by_day(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    surveys: &[SurveyId],
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<(i32, i64, i64)>> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let ids: Vec<&str> = surveys.iter().map(SurveyId::as_str).collect();
    let day = Expr::col(response::Column::RecordedAt).div(MICROS_PER_DAY);
    Ok(response::Entity::scoped(tenant)
        .filter(response::Column::SurveyId.is_in(ids))
        .filter(response::Column::RecordedAt.gte(time::to_micros(start)))
        .filter(response::Column::RecordedAt.lt(time::to_micros(end)))
        .select_only()
        .column(response::Column::Score)
        .expr_as(day, "day")
        // COUNT(*): no column read beyond the score and the time.
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .group_by(response::Column::Score)
        // By the alias: PostgreSQL would take the expression, with its own bind
        // parameter, for another one than the selected day.
        .group_by(Expr::cust("day"))
        .into_tuple()
        .all(conn)
        .await?)
}

/// What happened to the invitations created in [start, end), as of `now`.
pub async fn funnel(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    surveys: &[SurveyId],
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> Result<Funnel> {
    let ids: Vec<&str> = surveys.iter().map(SurveyId::as_str).collect();
    let base = || {
        invitation::Entity::scoped(tenant)
            .filter(invitation::Column::SurveyId.is_in(ids.clone()))
            .filter(invitation::Column::CreatedAt.gte(time::to_micros(start)))
            .filter(invitation::Column::CreatedAt.lt(time::to_micros(end)))
    };
    let issued = || base().filter(invitation::Column::Outcome.eq(ISSUED));
    let by_rule: Vec<(Option<String>, i64)> = base()
        .filter(invitation::Column::Outcome.eq(SUPPRESSED))
        .select_only()
        .column(invitation::Column::Rule)
        .expr(Expr::col(invitation::Column::Id).count())
        .group_by(invitation::Column::Rule)
        .into_tuple()
        .all(conn)
        .await?;
    let mut suppressed_by_rule = BTreeMap::new();
    for (rule, n) in by_rule {
        if let Some(rule) = rule {
            suppressed_by_rule.insert(decoded(EligibilityRule::from_db(&rule))?, n);
        }
    }
    let issued_n = issued().count(conn).await? as i64;
    let answered = issued().filter(invitation::Column::ResponseId.is_not_null()).count(conn).await? as i64;
    let expired = issued()
        .filter(invitation::Column::ResponseId.is_null())
        .filter(invitation::Column::ExpiresAt.lte(time::to_micros(now)))
        .count(conn)
        .await? as i64;
    Ok(Funnel { issued: issued_n, suppressed_by_rule, expired, answered, pending: issued_n - answered - expired })
}
