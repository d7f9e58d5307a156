//! What the insight use-cases read (issue 16): the responses of two samples, comments by
//! bucket, respondents' activity before their answers, and the contacts of accounts
//! with their recent days, lifetime sums, answers and follow-ups. Only fetching and
//! summing; the formulas are in `domain::insight`.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, QueryResult};

use super::error::{Result, decoded};
use super::props_from_json;
use super::sql::{Sql, get_i64, get_opt_i64};
use crate::domain::engagement::Day;
use crate::domain::engagement_profile::{Answer, DayActivity, FollowUpTimes};
use crate::domain::insight::account::Lifetime;
use crate::domain::insight::sources::{Comment, CommentPosition, ContactRecord, RespondentAnswer, SampleAnswer, Whose};
use crate::domain::model::Properties;
use crate::domain::time::Timestamp;
use crate::domain::{Bucket, CustomerRef, CustomerRowId, ResponseId, SurveyId, SurveyKind, TenantId, time};

fn s(row: &QueryResult, i: usize) -> Result<String> {
    Ok(row.try_get_by_index::<String>(i)?)
}

fn opt_s(row: &QueryResult, i: usize) -> Result<Option<String>> {
    Ok(row.try_get_by_index::<Option<String>>(i)?)
}

/// ` AND survey_id IN (…)` (`col` names the column), or a condition that matches
/// nothing for no surveys.
fn surveys_in(q: &mut Sql, col: &str, surveys: &[SurveyId]) {
    if surveys.is_empty() {
        q.push(" AND 1 = 0");
    } else {
        q.push(&format!(" AND {col}")).in_list(surveys.iter().map(|s| s.as_str().to_owned()));
    }
}

// ---------------------------------------------------------------------------------
// Samples and comments.
// ---------------------------------------------------------------------------------

/// The responses of the surveys recorded in [start, end).
pub async fn sample(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    surveys: &[SurveyId],
    start: Timestamp,
    end: Timestamp,
    with_properties: bool,
) -> Result<Vec<SampleAnswer>> {
    let cols = if with_properties { "r.id, r.score, r.properties, c.properties" } else { "r.id, r.score" };
    let mut q = Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT {cols} FROM responses r JOIN customers c ON c.tenant_id = r.tenant_id AND c.id = r.customer_id \
             WHERE r.tenant_id = "
        ),
    );
    q.bind(tenant.as_str());
    surveys_in(&mut q, "r.survey_id", surveys);
    q.push(" AND r.recorded_at >= ").bind(time::to_micros(start));
    q.push(" AND r.recorded_at < ").bind(time::to_micros(end));
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            let properties = if with_properties {
                let mut p = props_from_json(&s(r, 3)?);
                p.extend(props_from_json(&s(r, 2)?));
                p
            } else {
                Properties::new()
            };
            Ok(SampleAnswer { id: ResponseId(s(r, 0)?), score: get_i64(r, 1)? as i32, properties })
        })
        .collect()
}

/// Up to `limit` non-empty comments of one bucket in [start, end), newest first
/// (ties by id), after the position `after` of a previous batch.
#[allow(clippy::too_many_arguments)]
pub async fn comments(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    surveys: &[SurveyId],
    bucket: Bucket,
    start: Timestamp,
    end: Timestamp,
    after: Option<&CommentPosition>,
    limit: u64,
) -> Result<Vec<Comment>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT r.id, r.survey_id, r.comment, r.recorded_at, r.properties, c.properties FROM responses r \
         JOIN customers c ON c.tenant_id = r.tenant_id AND c.id = r.customer_id WHERE r.tenant_id = ",
    );
    q.bind(tenant.as_str());
    surveys_in(&mut q, "r.survey_id", surveys);
    q.push(" AND r.bucket = ").bind(bucket.as_str());
    q.push(" AND r.comment <> '' AND r.recorded_at >= ").bind(time::to_micros(start));
    q.push(" AND r.recorded_at < ").bind(time::to_micros(end));
    if let Some(CommentPosition { recorded_at, id }) = after {
        let at = time::to_micros(*recorded_at);
        q.push(" AND (r.recorded_at < ").bind(at).push(" OR (r.recorded_at = ").bind(at);
        q.push(" AND r.id < ").bind(id.as_str()).push("))");
    }
    q.push(&format!(" ORDER BY r.recorded_at DESC, r.id DESC LIMIT {limit}"));
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            let mut properties = props_from_json(&s(r, 5)?);
            properties.extend(props_from_json(&s(r, 4)?));
            Ok(Comment {
                id: ResponseId(s(r, 0)?),
                survey_id: SurveyId(s(r, 1)?),
                comment: s(r, 2)?,
                recorded_at: time::from_micros(get_i64(r, 3)?),
                properties,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Drivers.
// ---------------------------------------------------------------------------------

/// Every answer of the surveys in [start, end) in the given buckets.
pub async fn answers_in(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    surveys: &[SurveyId],
    buckets: &[Bucket],
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<RespondentAnswer>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT r.customer_id, r.bucket, r.recorded_at FROM responses r JOIN customers c \
         ON c.tenant_id = r.tenant_id AND c.id = r.customer_id WHERE c.erased_at IS NULL AND r.tenant_id = ",
    );
    q.bind(tenant.as_str());
    surveys_in(&mut q, "r.survey_id", surveys);
    q.push(" AND r.bucket").in_list(buckets.iter().map(|b| b.as_str().to_owned()));
    q.push(" AND r.recorded_at >= ").bind(time::to_micros(start));
    q.push(" AND r.recorded_at < ").bind(time::to_micros(end));
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(RespondentAnswer {
                customer: CustomerRowId(s(r, 0)?),
                bucket: decoded(Bucket::from_db(&s(r, 1)?))?,
                at: time::from_micros(get_i64(r, 2)?),
            })
        })
        .collect()
}

fn whose(q: &mut Sql, tenant: &TenantId, col: &str, w: &Whose<'_>) {
    match w {
        Whose::Respondents { surveys, start, end } => {
            q.push(&format!(" AND {col} IN (SELECT r.customer_id FROM responses r WHERE r.tenant_id = "));
            q.bind(tenant.as_str());
            surveys_in(q, "r.survey_id", surveys);
            q.push(" AND r.recorded_at >= ").bind(time::to_micros(*start));
            q.push(" AND r.recorded_at < ").bind(time::to_micros(*end)).push(")");
        }
        Whose::Account(account) => {
            q.push(&format!(" AND {col} IN (SELECT c.id FROM customers c WHERE c.tenant_id = "));
            q.bind(tenant.as_str()).push(" AND c.erased_at IS NULL AND ");
            match account {
                Some(a) => q.push("c.account_id = ").bind(*a),
                None => q.push("c.account_id IS NOT NULL"),
            };
            q.push(")");
        }
    }
}

/// The daily roll-ups in [from, to] of the chosen customers, by customer row id, each
/// day with the counts of `actions` (only those).
pub async fn days_of(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    who: &Whose<'_>,
    from: Day,
    to: Day,
    actions: &[String],
) -> Result<BTreeMap<CustomerRowId, Vec<DayActivity>>> {
    let b = conn.get_database_backend();
    let mut q = Sql::new(
        b,
        "SELECT customer_id, day, events, actions, sessions, session_seconds, purchases, revenue_minor \
         FROM activity_days WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND day >= ").bind(from).push(" AND day <= ").bind(to);
    whose(&mut q, tenant, "customer_id", who);
    let mut out: BTreeMap<CustomerRowId, BTreeMap<Day, DayActivity>> = BTreeMap::new();
    for r in q.all(conn).await? {
        let day = get_i64(&r, 1)? as Day;
        out.entry(CustomerRowId(s(&r, 0)?)).or_default().insert(
            day,
            DayActivity {
                day,
                events: get_i64(&r, 2)?,
                actions: get_i64(&r, 3)?,
                sessions: get_i64(&r, 4)?,
                session_seconds: get_i64(&r, 5)?,
                purchases: get_i64(&r, 6)?,
                revenue_minor: get_i64(&r, 7)?,
                action_counts: BTreeMap::new(),
            },
        );
    }
    if !actions.is_empty() {
        let mut q = Sql::new(b, "SELECT customer_id, day, action, count FROM activity_day_actions WHERE tenant_id = ");
        q.bind(tenant.as_str()).push(" AND day >= ").bind(from).push(" AND day <= ").bind(to);
        q.push(" AND action").in_list(actions.iter().cloned());
        whose(&mut q, tenant, "customer_id", who);
        for r in q.all(conn).await? {
            let (customer, day) = (CustomerRowId(s(&r, 0)?), get_i64(&r, 1)? as Day);
            if let Some(d) = out.get_mut(&customer).and_then(|days| days.get_mut(&day)) {
                d.action_counts.insert(s(&r, 2)?, get_i64(&r, 3)?);
            }
        }
    }
    Ok(out.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect())
}

/// The first active day of each chosen customer (any time).
pub async fn first_days(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    who: &Whose<'_>,
) -> Result<BTreeMap<CustomerRowId, Day>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT customer_id, first_day FROM engagement_customers WHERE first_day IS NOT NULL AND tenant_id = ",
    );
    q.bind(tenant.as_str());
    whose(&mut q, tenant, "customer_id", who);
    let mut out = BTreeMap::new();
    for r in q.all(conn).await? {
        if let Some(d) = get_opt_i64(&r, 1)? {
            out.insert(CustomerRowId(s(&r, 0)?), d as Day);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Accounts.
// ---------------------------------------------------------------------------------

/// The contacts of one account (or of every account) created at or before `created_by`,
/// not erased, in (account, CRM id) order.
pub async fn contacts(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    account: Option<&str>,
    created_by: Timestamp,
) -> Result<Vec<ContactRecord>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT id, external_id, account_id, properties FROM customers WHERE erased_at IS NULL AND tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND created_at <= ").bind(time::to_micros(created_by));
    match account {
        Some(a) => q.push(" AND account_id = ").bind(a),
        None => q.push(" AND account_id IS NOT NULL AND account_id <> ''"),
    };
    q.push(" ORDER BY account_id, external_id");
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(ContactRecord {
                row: CustomerRowId(s(r, 0)?),
                customer: CustomerRef(s(r, 1)?),
                account: opt_s(r, 2)?.unwrap_or_default(),
                properties: props_from_json(&s(r, 3)?),
            })
        })
        .collect()
}

/// Each contact's lifetime sums over its days up to `to`.
pub async fn lifetimes(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    account: Option<&str>,
    to: Day,
) -> Result<BTreeMap<CustomerRowId, Lifetime>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT customer_id, CAST(SUM(revenue_minor) AS BIGINT), CAST(SUM(purchases) AS BIGINT), MIN(day), MAX(day) \
         FROM activity_days WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND day <= ").bind(to);
    whose(&mut q, tenant, "customer_id", &Whose::Account(account));
    q.push(" GROUP BY customer_id");
    let mut out = BTreeMap::new();
    for r in q.all(conn).await? {
        out.insert(
            CustomerRowId(s(&r, 0)?),
            Lifetime {
                revenue_minor: get_opt_i64(&r, 1)?.unwrap_or(0),
                purchases: get_opt_i64(&r, 2)?.unwrap_or(0),
                first_day: get_opt_i64(&r, 3)?.map(|d| d as Day),
                last_day: get_opt_i64(&r, 4)?.map(|d| d as Day),
            },
        );
    }
    Ok(out)
}

/// The contacts' answers recorded in [from, to], by customer row id.
pub async fn contact_answers(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    account: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<BTreeMap<CustomerRowId, Vec<Answer>>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT customer_id, kind, score, scale_max, bucket, recorded_at FROM responses WHERE tenant_id = ",
    );
    q.bind(tenant.as_str());
    q.push(" AND recorded_at >= ").bind(time::to_micros(from)).push(" AND recorded_at <= ").bind(time::to_micros(to));
    whose(&mut q, tenant, "customer_id", &Whose::Account(account));
    let mut out: BTreeMap<CustomerRowId, Vec<Answer>> = BTreeMap::new();
    for r in q.all(conn).await? {
        out.entry(CustomerRowId(s(&r, 0)?)).or_default().push(Answer {
            kind: decoded(SurveyKind::from_db(&s(&r, 1)?))?,
            score: get_i64(&r, 2)? as i32,
            scale_max: get_i64(&r, 3)? as i32,
            bucket: decoded(Bucket::from_db(&s(&r, 4)?))?,
            at: time::from_micros(get_i64(&r, 5)?),
        });
    }
    Ok(out)
}

/// The contacts' follow-ups opened at or before `by`, by customer row id.
pub async fn contact_follow_ups(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    account: Option<&str>,
    by: Timestamp,
) -> Result<BTreeMap<CustomerRowId, Vec<FollowUpTimes>>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT customer_id, status, opened_at, due_at, resolved_at, dismissed_at FROM follow_ups WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND opened_at <= ").bind(time::to_micros(by));
    whose(&mut q, tenant, "customer_id", &Whose::Account(account));
    let mut out: BTreeMap<CustomerRowId, Vec<FollowUpTimes>> = BTreeMap::new();
    for r in q.all(conn).await? {
        let closed = match s(&r, 1)?.as_str() {
            "resolved" => get_opt_i64(&r, 4)?,
            "dismissed" => get_opt_i64(&r, 5)?,
            _ => None,
        };
        out.entry(CustomerRowId(s(&r, 0)?)).or_default().push(FollowUpTimes {
            opened_at: time::from_micros(get_i64(&r, 2)?),
            due_at: time::from_micros(get_i64(&r, 3)?),
            closed_at: closed.map(time::from_micros),
        });
    }
    Ok(out)
}
