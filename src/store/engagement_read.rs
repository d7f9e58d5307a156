//! Engagement storage, read side: customers with their account and traits, what a
//! profile is computed from (the customer's daily roll-ups and survey history), the
//! sums org metrics need, rankings, and score snapshots. Only fetching and summing
//! here; the formulas are in `domain::engagement*`.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::error::{Result, StoreError, decoded};
use super::props_from_json;
use super::sql::{Sql, get_i64, get_opt_i64, insert_rows};
use crate::domain::engagement::{CustomerChange, CustomerRecord, Day, ScoreSnapshot, Traits};
use crate::domain::engagement_metrics::{ChurnWindow, DAY_TOTAL, GapSum, NO_NEXT, RevenueWindow};
use crate::domain::engagement_profile::{Answer, DayActivity, FollowUpTimes};
use crate::domain::listing::PageRequest;
use crate::domain::model::Page;
use crate::domain::time::Timestamp;
use crate::domain::{Bucket, CustomerRef, CustomerRowId, SurveyKind, TenantId, time};

fn s(row: &QueryResult, i: usize) -> Result<String> {
    Ok(row.try_get_by_index::<String>(i)?)
}

fn opt_s(row: &QueryResult, i: usize) -> Result<Option<String>> {
    Ok(row.try_get_by_index::<Option<String>>(i)?)
}

fn f(row: &QueryResult, i: usize) -> Result<f64> {
    Ok(row.try_get_by_index::<f64>(i)?)
}

// ---------------------------------------------------------------------------------
// Customers.
// ---------------------------------------------------------------------------------

const CUSTOMER_COLS: &str = "c.id, c.external_id, c.account_id, c.email, c.name, c.plan, c.signup_at, c.properties, \
     c.unsubscribed_at, c.created_at, c.updated_at, e.first_day, e.last_day, c.erased_at";

fn customer_from(row: &QueryResult) -> Result<(CustomerRowId, CustomerRecord)> {
    Ok((
        CustomerRowId(s(row, 0)?),
        CustomerRecord {
            customer: CustomerRef(s(row, 1)?),
            account_id: opt_s(row, 2)?,
            traits: Traits {
                email: opt_s(row, 3)?,
                name: opt_s(row, 4)?,
                plan: opt_s(row, 5)?,
                signup_at: get_opt_i64(row, 6)?.map(time::from_micros),
            },
            properties: props_from_json(&s(row, 7)?),
            unsubscribed: get_opt_i64(row, 8)?.is_some(),
            erased: get_opt_i64(row, 13)?.is_some(),
            created_at: time::from_micros(get_i64(row, 9)?),
            updated_at: time::from_micros(get_i64(row, 10)?),
            first_day: get_opt_i64(row, 11)?.map(|d| d as Day),
            last_day: get_opt_i64(row, 12)?.map(|d| d as Day),
        },
    ))
}

fn customer_select(conn: &impl ConnectionTrait, tenant: &TenantId) -> Sql {
    let mut q = Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT {CUSTOMER_COLS} FROM customers c LEFT JOIN engagement_customers e \
             ON e.tenant_id = c.tenant_id AND e.customer_id = c.id WHERE c.tenant_id = "
        ),
    );
    q.bind(tenant.as_str());
    q
}

/// The customer (its row id and record), or `None`.
pub async fn find_customer(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    customer: &CustomerRef,
) -> Result<Option<(CustomerRowId, CustomerRecord)>> {
    let mut q = customer_select(conn, tenant);
    q.push(" AND c.external_id = ").bind(customer.as_str());
    q.one(conn).await?.as_ref().map(customer_from).transpose()
}

/// The customer, or `NOT_FOUND` (also for other tenants' customers).
pub async fn get_customer(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    customer: &CustomerRef,
) -> Result<(CustomerRowId, CustomerRecord)> {
    find_customer(conn, tenant, customer)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("customer {:?}", customer.as_str())))
}

/// Sets the account and traits a change names.
pub async fn update_customer(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_id: &CustomerRowId,
    change: &CustomerChange,
    now: Timestamp,
) -> Result<()> {
    let blank = |v: &Option<String>| v.as_ref().map(|s| (!s.is_empty()).then(|| s.clone()));
    let mut sets: Vec<(&str, Value)> = Vec::new();
    if let Some(v) = blank(&change.account_id) {
        sets.push(("account_id", v.into()));
    }
    if let Some(v) = blank(&change.email) {
        sets.push(("email", v.into()));
    }
    if let Some(v) = blank(&change.name) {
        sets.push(("name", v.into()));
    }
    if let Some(v) = blank(&change.plan) {
        sets.push(("plan", v.into()));
    }
    if let Some(t) = change.signup_at {
        sets.push(("signup_at", time::to_micros(t).into()));
    }
    if sets.is_empty() {
        return Ok(());
    }
    let mut q = Sql::new(conn.get_database_backend(), "UPDATE customers SET updated_at = ");
    q.bind(time::to_micros(now));
    for (col, v) in sets {
        q.push(&format!(", {col} = ")).bind(v);
    }
    q.push(" WHERE tenant_id = ").bind(tenant.as_str()).push(" AND id = ").bind(row_id.as_str());
    q.exec(conn).await?;
    Ok(())
}

/// Customers ordered by row id, newest first, a page at a time; `properties`
/// narrows in SQL by a text match on the stored JSON and is then checked exactly.
pub async fn list_customers(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    account: Option<&str>,
    properties: &BTreeMap<String, String>,
    page: &PageRequest,
) -> Result<Page<CustomerRecord>> {
    let mut out: Vec<(CustomerRowId, CustomerRecord)> = Vec::new();
    let mut after = page.after.clone();
    loop {
        let mut q = customer_select(conn, tenant);
        if let Some(a) = account {
            q.push(" AND c.account_id = ").bind(a);
        }
        for (k, v) in properties {
            let needle = serde_json::to_string(&BTreeMap::from([(k, v)])).unwrap_or_default();
            let inner = needle.trim_start_matches('{').trim_end_matches('}');
            let escaped = inner.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            q.push(" AND c.properties LIKE ").bind(format!("%{escaped}%")).push(" ESCAPE '\\'");
        }
        if let Some(a) = &after {
            q.push(" AND c.id < ").bind(a.as_str());
        }
        let batch = page.size.max(50);
        q.push(&format!(" ORDER BY c.id DESC LIMIT {batch}"));
        let rows = q.all(conn).await?;
        let fetched = rows.len() as u64;
        for r in &rows {
            let (id, c) = customer_from(r)?;
            after = Some(id.0.clone());
            if crate::domain::input::matches(properties, &c.properties) {
                out.push((id, c));
                if out.len() as u64 >= page.size {
                    break;
                }
            }
        }
        if out.len() as u64 >= page.size || fetched < batch {
            break;
        }
    }
    let next = page.next_token(out.len(), out.last().map(|(id, _)| id.as_str()));
    Ok(Page { items: out.into_iter().map(|(_, c)| c).collect(), next_page_token: next })
}

// ---------------------------------------------------------------------------------
// What a profile reads.
// ---------------------------------------------------------------------------------

/// The active days of several customers (row ids), each sorted: one statement
/// whatever their number, as ingestion needs them for the customers a late event
/// reaches back for.
pub async fn customers_days(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_ids: &[String],
) -> Result<HashMap<String, Vec<Day>>> {
    let mut out: HashMap<String, Vec<Day>> = HashMap::with_capacity(row_ids.len());
    for chunk in row_ids.chunks(1_000) {
        let mut q =
            Sql::new(conn.get_database_backend(), "SELECT customer_id, day FROM activity_days WHERE tenant_id = ");
        q.bind(tenant.as_str()).push(" AND customer_id").in_list(chunk.iter().cloned());
        q.push(" ORDER BY customer_id, day");
        for r in q.all(conn).await? {
            out.entry(s(&r, 0)?).or_default().push(get_i64(&r, 1)? as Day);
        }
    }
    Ok(out)
}

/// Each customer's days with revenue from `from` on, (day, revenue) in day order: what
/// a batch's change to the revenue histogram is computed from.
pub async fn customers_revenue_days(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_ids: &[&str],
    from: Day,
) -> Result<HashMap<String, Vec<(Day, i64)>>> {
    let mut out: HashMap<String, Vec<(Day, i64)>> = HashMap::with_capacity(row_ids.len());
    for chunk in row_ids.chunks(1_000) {
        let mut q = Sql::new(
            conn.get_database_backend(),
            "SELECT customer_id, day, revenue_minor FROM activity_days WHERE tenant_id = ",
        );
        q.bind(tenant.as_str()).push(" AND customer_id").in_list(chunk.iter().map(|c| c.to_string()));
        // Revenue comes only with purchases; leaving `purchases > 0` out keeps the
        // planner off the partial index of purchase days, which would read every
        // customer's since `from`.
        q.push(" AND revenue_minor > 0 AND day >= ").bind(from);
        q.push(" ORDER BY customer_id, day");
        for r in q.all(conn).await? {
            out.entry(s(&r, 0)?).or_default().push((get_i64(&r, 1)? as Day, get_i64(&r, 2)?));
        }
    }
    Ok(out)
}

/// Every daily roll-up of the customer up to `to`, with its action counts: one row
/// per active day, whatever the number of events.
pub async fn customer_activity(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_id: &CustomerRowId,
    to: Day,
) -> Result<Vec<DayActivity>> {
    let b = conn.get_database_backend();
    let mut q = Sql::new(
        b,
        "SELECT day, events, actions, sessions, session_seconds, purchases, revenue_minor FROM activity_days \
         WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND customer_id = ").bind(row_id.as_str()).push(" AND day <= ").bind(to);
    q.push(" ORDER BY day");
    let mut days: BTreeMap<Day, DayActivity> = BTreeMap::new();
    for r in q.all(conn).await? {
        let day = get_i64(&r, 0)? as Day;
        days.insert(
            day,
            DayActivity {
                day,
                events: get_i64(&r, 1)?,
                actions: get_i64(&r, 2)?,
                sessions: get_i64(&r, 3)?,
                session_seconds: get_i64(&r, 4)?,
                purchases: get_i64(&r, 5)?,
                revenue_minor: get_i64(&r, 6)?,
                action_counts: BTreeMap::new(),
            },
        );
    }
    let mut q = Sql::new(b, "SELECT day, action, count FROM activity_day_actions WHERE tenant_id = ");
    q.bind(tenant.as_str()).push(" AND customer_id = ").bind(row_id.as_str()).push(" AND day <= ").bind(to);
    for r in q.all(conn).await? {
        let day = get_i64(&r, 0)? as Day;
        if let Some(d) = days.get_mut(&day) {
            d.action_counts.insert(s(&r, 1)?, get_i64(&r, 2)?);
        }
    }
    Ok(days.into_values().collect())
}

/// The customer's survey answers.
pub async fn customer_answers(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_id: &CustomerRowId,
) -> Result<Vec<Answer>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT kind, score, scale_max, bucket, recorded_at FROM responses WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND customer_id = ").bind(row_id.as_str());
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Answer {
                kind: decoded(SurveyKind::from_db(&s(r, 0)?))?,
                score: get_i64(r, 1)? as i32,
                scale_max: get_i64(r, 2)? as i32,
                bucket: decoded(Bucket::from_db(&s(r, 3)?))?,
                at: time::from_micros(get_i64(r, 4)?),
            })
        })
        .collect()
}

/// The customer's follow-ups: opened, due, and closed (if resolved or dismissed now).
pub async fn customer_follow_ups(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_id: &CustomerRowId,
) -> Result<Vec<FollowUpTimes>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT status, opened_at, due_at, resolved_at, dismissed_at FROM follow_ups WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND customer_id = ").bind(row_id.as_str());
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            let status = s(r, 0)?;
            let closed = match status.as_str() {
                "resolved" => get_opt_i64(r, 3)?,
                "dismissed" => get_opt_i64(r, 4)?,
                _ => None,
            };
            Ok(FollowUpTimes {
                opened_at: time::from_micros(get_i64(r, 1)?),
                due_at: time::from_micros(get_i64(r, 2)?),
                closed_at: closed.map(time::from_micros),
            })
        })
        .collect()
}

/// The customer's issued invitations: issue time and whether answered.
pub async fn customer_invitations(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_id: &CustomerRowId,
) -> Result<Vec<(time::Timestamp, bool)>> {
    let mut q =
        Sql::new(conn.get_database_backend(), "SELECT created_at, response_id FROM invitations WHERE tenant_id = ");
    q.bind(tenant.as_str()).push(" AND customer_id = ").bind(row_id.as_str()).push(" AND outcome = 'issued'");
    q.all(conn).await?.iter().map(|r| Ok((time::from_micros(get_i64(r, 0)?), opt_s(r, 1)?.is_some()))).collect()
}

// ---------------------------------------------------------------------------------
// Org metrics: sums over the small per-tenant tables.
// ---------------------------------------------------------------------------------

/// Σ customers over the gap-histogram cells that match each of `sums`
/// (domain::GapSum::matches), in order: one statement, which reads the cells of the
/// days the sums span once.
pub async fn gap_sums(conn: &impl ConnectionTrait, tenant: &TenantId, sums: &[GapSum]) -> Result<Vec<i64>> {
    let (Some(from), Some(to)) = (sums.iter().map(|g| g.from).min(), sums.iter().map(|g| g.to).max()) else {
        return Ok(Vec::new());
    };
    let mut q = Sql::new(conn.get_database_backend(), "SELECT ");
    for (i, g) in sums.iter().enumerate() {
        q.push(if i == 0 { "" } else { ", " });
        q.push("CAST(COALESCE(SUM(CASE WHEN day >= ").bind(g.from).push(" AND day <= ").bind(g.to);
        if let Some(x) = g.next_after {
            q.push(&format!(" AND (gap = {NO_NEXT} OR day + gap > ")).bind(x).push(")");
        }
        if let Some(k) = g.gap_over {
            q.push(&format!(" AND (gap = {NO_NEXT} OR gap > ")).bind(k).push(")");
        }
        if let Some(y) = g.next_by {
            q.push(&format!(" AND gap <> {NO_NEXT} AND day + gap <= ")).bind(y);
        }
        q.push(" THEN customers ELSE 0 END), 0) AS BIGINT)");
    }
    q.push(" FROM engagement_gaps WHERE tenant_id = ").bind(tenant.as_str());
    q.push(" AND day >= ").bind(from).push(" AND day <= ").bind(to);
    match q.one(conn).await? {
        Some(r) => (0..sums.len()).map(|i| get_i64(&r, i)).collect(),
        None => Ok(vec![0; sums.len()]),
    }
}

/// (churned customers, of them those who were customers at the start) of a window,
/// counted per customer as [`ChurnWindow::customer`] defines it, from the active days
/// in [`ChurnWindow::days_read`]: its cost grows with the customer-days read.
pub async fn churned_customers(conn: &impl ConnectionTrait, tenant: &TenantId, w: ChurnWindow) -> Result<(i64, i64)> {
    let (lo, hi) = w.days_read();
    let t = w.inactivity_days;
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN first_read < ",
    );
    q.bind(w.a)
        .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) FROM (SELECT customer_id, MIN(first_read) AS first_read FROM (");
    q.push(
        "SELECT customer_id, day, LEAD(day) OVER (PARTITION BY customer_id ORDER BY day) AS next_day, \
         MIN(day) OVER (PARTITION BY customer_id) AS first_read FROM activity_days WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND day >= ").bind(lo).push(" AND day <= ").bind(hi);
    // A churn on day + T inside [a, b]: no next active day up to it.
    q.push(") x WHERE day + ").bind(t).push(" >= ").bind(w.a).push(" AND day + ").bind(t).push(" <= ").bind(w.b);
    q.push(" AND (next_day IS NULL OR next_day > day + ").bind(t).push(") GROUP BY customer_id) y");
    match q.one(conn).await? {
        Some(r) => Ok((get_i64(&r, 0)?, get_i64(&r, 1)?)),
        None => Ok((0, 0)),
    }
}

/// The last day with any recorded activity, if any.
pub async fn last_recorded_day(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<Option<Day>> {
    let mut q = Sql::new(conn.get_database_backend(), "SELECT MAX(day) FROM engagement_days WHERE tenant_id = ");
    q.bind(tenant.as_str());
    match q.one(conn).await? {
        Some(r) => Ok(get_opt_i64(&r, 0)?.map(|d| d as Day)),
        None => Ok(None),
    }
}

/// The days up to `to` with recorded activity, in order.
pub async fn recorded_days(conn: &impl ConnectionTrait, tenant: &TenantId, to: Day) -> Result<Vec<Day>> {
    let mut q = Sql::new(conn.get_database_backend(), "SELECT DISTINCT day FROM engagement_days WHERE tenant_id = ");
    q.bind(tenant.as_str()).push(" AND day <= ").bind(to).push(" ORDER BY day");
    q.all(conn).await?.iter().map(|r| Ok(get_i64(r, 0)? as Day)).collect()
}

/// (Σ DAU, Σ new customers) over the days [from, to].
pub async fn day_totals(conn: &impl ConnectionTrait, tenant: &TenantId, from: Day, to: Day) -> Result<(i64, i64)> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT CAST(COALESCE(SUM(dau), 0) AS BIGINT), CAST(COALESCE(SUM(new_customers), 0) AS BIGINT) \
         FROM engagement_days WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND day >= ").bind(from).push(" AND day <= ").bind(to);
    match q.one(conn).await? {
        Some(r) => Ok((get_i64(&r, 0)?, get_i64(&r, 1)?)),
        None => Ok((0, 0)),
    }
}

/// Net revenue retention's sums from the revenue histogram (domain::RevenueWindow):
/// exact when nothing was recorded after `w.to`. Reads the cells of the two windows'
/// days: its cost grows with days, not customers.
pub async fn revenue_retention_cells(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    w: RevenueWindow,
) -> Result<(i64, i64)> {
    let mut q = Sql::new(conn.get_database_backend(), "SELECT CAST(COALESCE(SUM(CASE WHEN prev_day = ");
    q.push(&DAY_TOTAL.to_string()).push(" AND day <= ").bind(w.prev_to);
    q.push(" THEN revenue_minor ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN day > ").bind(w.prev_to);
    q.push(" AND prev_day >= ").bind(w.prev_from).push(" AND prev_day <= ").bind(w.prev_to);
    q.push(" THEN revenue_minor ELSE 0 END), 0) AS BIGINT) FROM engagement_revenue WHERE tenant_id = ");
    q.bind(tenant.as_str()).push(" AND day >= ").bind(w.prev_from).push(" AND day <= ").bind(w.to);
    match q.one(conn).await? {
        Some(r) => Ok((get_i64(&r, 0)?, get_i64(&r, 1)?)),
        None => Ok((0, 0)),
    }
}

/// Net revenue retention's sums: revenue in [prev_from, prev_to] of the customers
/// who bought then, and the same customers' revenue in [prev_to + 1, to].
pub async fn revenue_retention(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    prev_from: Day,
    prev_to: Day,
    to: Day,
) -> Result<(i64, i64)> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT CAST(COALESCE(SUM(prev), 0) AS BIGINT), CAST(COALESCE(SUM(cur), 0) AS BIGINT) FROM (\
         SELECT customer_id, SUM(CASE WHEN day <= ",
    );
    q.bind(prev_to).push(" THEN revenue_minor ELSE 0 END) AS prev, SUM(CASE WHEN day > ").bind(prev_to);
    q.push(" THEN revenue_minor ELSE 0 END) AS cur FROM activity_days WHERE tenant_id = ").bind(tenant.as_str());
    q.push(" AND purchases > 0 AND day >= ").bind(prev_from).push(" AND day <= ").bind(to);
    q.push(" GROUP BY customer_id) r WHERE prev > 0");
    match q.one(conn).await? {
        Some(r) => Ok((get_i64(&r, 0)?, get_i64(&r, 1)?)),
        None => Ok((0, 0)),
    }
}

/// Cohort cells (first-seen month, active month, customers) for cohort months
/// [first, last] and active months up to `active_through`.
pub async fn cohort_cells(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    first: i32,
    last: i32,
    active_through: i32,
) -> Result<Vec<(i32, i32, i64)>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT cohort_month, active_month, CAST(SUM(customers) AS BIGINT) FROM engagement_cohorts WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND cohort_month >= ").bind(first).push(" AND cohort_month <= ").bind(last);
    q.push(" AND active_month <= ").bind(active_through).push(" GROUP BY cohort_month, active_month");
    q.all(conn).await?.iter().map(|r| Ok((get_i64(r, 0)? as i32, get_i64(r, 1)? as i32, get_i64(r, 2)?))).collect()
}

/// Customers active in [from, to] per first active day, for first days from
/// `first_from` on: (first day, customers). Reads the customer-days of [from, to].
pub async fn active_by_first_day(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    from: Day,
    to: Day,
    first_from: Day,
) -> Result<Vec<(Day, i64)>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT e.first_day, CAST(COUNT(DISTINCT a.customer_id) AS BIGINT) FROM activity_days a \
         JOIN engagement_customers e ON e.tenant_id = a.tenant_id AND e.customer_id = a.customer_id \
         WHERE a.tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND a.day >= ").bind(from).push(" AND a.day <= ").bind(to);
    q.push(" AND e.first_day >= ").bind(first_from).push(" GROUP BY e.first_day");
    q.all(conn).await?.iter().map(|r| Ok((get_i64(r, 0)? as Day, get_i64(r, 1)?))).collect()
}

// ---------------------------------------------------------------------------------
// Rankings.
// ---------------------------------------------------------------------------------

/// One ranked customer: CRM id, account, value.
pub type Ranked = (String, Option<String>, f64);

/// The engagement score on one day from the daily roll-ups up to it: Σ over days
/// d ≤ `day` of Σ Wᵢ·Nᵢ(d) · `factors`(d), where the factor of a day is its decay
/// 2^(−(day − d) / half-life) — what the profile sums for that day.
#[derive(Debug, Clone)]
pub struct ScoreOn {
    pub day: Day,
    /// The weighted actions (weight > 0).
    pub weights: Vec<(String, f64)>,
    /// (day, decay factor) for every recorded day up to `day`.
    pub factors: Vec<(Day, f64)>,
}

/// What a ranking ranks by.
#[derive(Debug, Clone, Copy)]
pub enum RankBy<'a> {
    /// The stored score keys: right on any day after which nothing was recorded.
    StoredScore,
    /// The score on a day, summed from the roll-ups.
    ScoreOn(&'a ScoreOn),
    /// An action's count in a window.
    Count(&'a CountFilter),
}

/// `SELECT customer_id, k …`: each customer's score on `s.day` (rows with a positive
/// weight only; customers without any are absent).
fn score_on_source(q: &mut Sql, tenant: &TenantId, s: &ScoreOn) {
    q.push(
        "SELECT a.customer_id, SUM(CAST(a.count AS DOUBLE PRECISION) * w.column2 * CAST(f.column2 AS DOUBLE PRECISION)) \
         AS k FROM activity_day_actions a JOIN (VALUES ",
    );
    // The weights are the tenant's action names: bound. An empty list gets a row that
    // matches no action (names are never empty).
    if s.weights.is_empty() {
        q.push("(").bind("").push(", ").bind(0.0f64).push(")");
    }
    for (i, (action, w)) in s.weights.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" }).bind(action.as_str()).push(", ").bind(*w).push(")");
    }
    // The factors are our own numbers, written as literals: a day per row would
    // otherwise spend two of the statement's bound parameters per day of history.
    q.push(") AS w ON w.column1 = a.action JOIN (VALUES ");
    let mut rows: Vec<String> = s.factors.iter().map(|(d, f)| format!("({d}, {f:e})")).collect();
    if rows.is_empty() {
        rows.push(format!("({}, 0e0)", Day::MIN));
    }
    q.push(&rows.join(", "));
    q.push(") AS f ON f.column1 = a.day WHERE a.tenant_id = ").bind(tenant.as_str());
    q.push(" AND a.day <= ").bind(s.day).push(" GROUP BY a.customer_id");
}

/// Customers by score or count, highest (or lowest) first, non-zero values only;
/// equal values in customer-id order (A→Z) whichever the direction.
pub async fn top(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    by: RankBy<'_>,
    ascending: bool,
    offset: u64,
    limit: u64,
) -> Result<Vec<Ranked>> {
    let b = conn.get_database_backend();
    let dir = if ascending { "ASC" } else { "DESC" };
    // Ties in byte order of the id, as the service re-sorts them (Rust's `str` order).
    let id = if b == sea_orm::DbBackend::Postgres { "c.external_id COLLATE \"C\"" } else { "c.external_id" };
    let rows = match by {
        RankBy::StoredScore => {
            let mut q = Sql::new(
                b,
                "SELECT c.external_id, c.account_id, e.score_key FROM engagement_customers e JOIN customers c \
                 ON c.tenant_id = e.tenant_id AND c.id = e.customer_id WHERE e.tenant_id = ",
            );
            q.bind(tenant.as_str()).push(" AND e.score_key > 0 AND c.erased_at IS NULL");
            // The index (tenant, score_key, …) gives the order; ties are sorted by id.
            q.push(&format!(" ORDER BY e.score_key {dir}, {id} ASC LIMIT {limit} OFFSET {offset}"));
            q.all(conn).await?
        }
        RankBy::ScoreOn(s) => {
            let mut q = Sql::new(b, "SELECT c.external_id, c.account_id, k.k FROM (");
            score_on_source(&mut q, tenant, s);
            q.push(") k JOIN customers c ON c.tenant_id = ").bind(tenant.as_str());
            q.push(" AND c.id = k.customer_id WHERE c.erased_at IS NULL AND k.k > 0");
            q.push(&format!(" ORDER BY k.k {dir}, {id} ASC LIMIT {limit} OFFSET {offset}"));
            q.all(conn).await?
        }
        RankBy::Count(filter) => {
            let mut q = Sql::new(
                b,
                "SELECT c.external_id, c.account_id, t.n FROM (SELECT a.customer_id, CAST(SUM(a.count) AS BIGINT) AS n",
            );
            count_source(&mut q, tenant, filter);
            q.push(" GROUP BY a.customer_id) t JOIN customers c ON c.tenant_id = ").bind(tenant.as_str());
            q.push(&format!(" AND c.id = t.customer_id ORDER BY t.n {dir}, {id} ASC LIMIT {limit} OFFSET {offset}"));
            return q.all(conn).await?.iter().map(|r| Ok((s(r, 0)?, opt_s(r, 1)?, get_i64(r, 2)? as f64))).collect();
        }
    };
    rows.iter().map(|r| Ok((s(r, 0)?, opt_s(r, 1)?, f(r, 2)?))).collect()
}

/// How many customers [`top`] ranks (a non-zero value).
pub async fn count_positive(conn: &impl ConnectionTrait, tenant: &TenantId, by: RankBy<'_>) -> Result<i64> {
    let b = conn.get_database_backend();
    let q = match by {
        RankBy::StoredScore => {
            let mut q = Sql::new(
                b,
                "SELECT COUNT(*) FROM engagement_customers e JOIN customers c \
                 ON c.tenant_id = e.tenant_id AND c.id = e.customer_id WHERE e.tenant_id = ",
            );
            q.bind(tenant.as_str()).push(" AND e.score_key > 0 AND c.erased_at IS NULL");
            q
        }
        RankBy::ScoreOn(s) => {
            let mut q = Sql::new(b, "SELECT COUNT(*) FROM (");
            score_on_source(&mut q, tenant, s);
            q.push(") k JOIN customers c ON c.tenant_id = ").bind(tenant.as_str());
            q.push(" AND c.id = k.customer_id WHERE c.erased_at IS NULL AND k.k > 0");
            q
        }
        RankBy::Count(filter) => {
            let mut q = Sql::new(b, "SELECT COUNT(DISTINCT a.customer_id)");
            count_source(&mut q, tenant, filter);
            q
        }
    };
    match q.one(conn).await? {
        Some(r) => get_i64(&r, 0),
        None => Ok(0),
    }
}

/// What a count ranking counts: one action in [from, to], optionally only events
/// whose property `key` is `value`.
#[derive(Debug, Clone)]
pub struct CountFilter {
    pub action: String,
    pub property: Option<(String, String)>,
    pub from: Day,
    pub to: Day,
}

/// `FROM … WHERE …` of the rows a count ranking sums (aliased `a`).
fn count_source(q: &mut Sql, tenant: &TenantId, f: &CountFilter) {
    match &f.property {
        None => {
            q.push(" FROM activity_day_actions a WHERE a.tenant_id = ").bind(tenant.as_str());
            q.push(" AND a.action = ").bind(f.action.as_str());
        }
        Some((k, v)) => {
            q.push(" FROM activity_day_props a WHERE a.tenant_id = ").bind(tenant.as_str());
            q.push(" AND a.action = ").bind(f.action.as_str()).push(" AND a.prop_key = ").bind(k.as_str());
            q.push(" AND a.prop_value = ").bind(v.as_str());
        }
    }
    q.push(" AND a.day >= ").bind(f.from).push(" AND a.day <= ").bind(f.to);
}

/// The tenant's customers [`top`] leaves out (a zero count or score), by CRM id in
/// the database's order (byte order in SQLite, and in PostgreSQL under a `C` or
/// `C.UTF-8` collation), which lets it walk the customers' index.
pub async fn zeros(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    by: RankBy<'_>,
    offset: u64,
    limit: u64,
) -> Result<Vec<Ranked>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT c.external_id, c.account_id FROM customers c WHERE c.tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND c.erased_at IS NULL AND ");
    match by {
        // NOT EXISTS walks customers in id order and probes each one's rows by key, so
        // a page of zeros costs about its size, not the number of customers who did act.
        RankBy::Count(f) => {
            q.push("NOT EXISTS (SELECT 1");
            count_source(&mut q, tenant, f);
            q.push(" AND a.customer_id = c.id)");
        }
        RankBy::StoredScore => {
            q.push("NOT EXISTS (SELECT 1 FROM engagement_customers e WHERE e.tenant_id = ").bind(tenant.as_str());
            q.push(" AND e.customer_id = c.id AND e.score_key > 0)");
        }
        // The scores of the day are summed once, not per customer.
        RankBy::ScoreOn(s) => {
            q.push("c.id NOT IN (SELECT k.customer_id FROM (");
            score_on_source(&mut q, tenant, s);
            q.push(") k WHERE k.k > 0)");
        }
    }
    q.push(&format!(" ORDER BY c.external_id LIMIT {limit} OFFSET {offset}"));
    q.all(conn).await?.iter().map(|r| Ok((s(r, 0)?, opt_s(r, 1)?, 0.0))).collect()
}

/// The most frequent values of `key` on `action` in [from, to]: (value, events,
/// distinct customers), and the events with the property in all.
pub async fn top_values(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    action: &str,
    key: &str,
    from: Day,
    to: Day,
    limit: u64,
) -> Result<(Vec<(String, i64, i64)>, i64)> {
    let b = conn.get_database_backend();
    let source = |q: &mut Sql| {
        q.push(" FROM activity_day_props WHERE tenant_id = ").bind(tenant.as_str());
        q.push(" AND action = ").bind(action).push(" AND prop_key = ").bind(key);
        q.push(" AND day >= ").bind(from).push(" AND day <= ").bind(to);
    };
    // Counts per value, the total over every value (a window over the groups), then
    // distinct customers for the values returned only.
    let mut q =
        Sql::new(b, "SELECT prop_value, CAST(SUM(count) AS BIGINT) AS n, CAST(SUM(SUM(count)) OVER () AS BIGINT)");
    source(&mut q);
    q.push(&format!(" GROUP BY prop_value ORDER BY n DESC, prop_value LIMIT {limit}"));
    let rows = q.all(conn).await?;
    let total = match rows.first() {
        Some(r) => get_i64(r, 2)?,
        None => return Ok((Vec::new(), 0)),
    };
    let counts = rows.iter().map(|r| Ok((s(r, 0)?, get_i64(r, 1)?))).collect::<Result<Vec<_>>>()?;
    let mut q = Sql::new(b, "SELECT prop_value, COUNT(DISTINCT customer_id)");
    source(&mut q);
    q.push(" AND prop_value").in_list(counts.iter().map(|(v, _)| v.clone())).push(" GROUP BY prop_value");
    let mut customers = std::collections::HashMap::new();
    for r in q.all(conn).await? {
        customers.insert(s(&r, 0)?, get_i64(&r, 1)?);
    }
    let values = counts.into_iter().map(|(v, n)| {
        let c = customers.get(&v).copied().unwrap_or(0);
        (v, n, c)
    });
    Ok((values.collect(), total))
}

// ---------------------------------------------------------------------------------
// Score snapshots.
// ---------------------------------------------------------------------------------

/// A stored snapshot.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    pub taken_at: Timestamp,
    /// What the roll-ups were when it was taken ([`data_version`]).
    pub data_version: i64,
    pub snapshot: ScoreSnapshot,
}

/// The latest snapshot taken at or before `at` (`None`: the latest of all).
pub async fn snapshot_before(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    at: Option<Timestamp>,
) -> Result<Option<StoredSnapshot>> {
    let at_us = at.map_or(i64::MAX, time::to_micros);
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT taken_at, data_version, snapshot FROM engagement_snapshots WHERE tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND taken_at <= ").bind(at_us).push(" ORDER BY taken_at DESC LIMIT 1");
    let Some(r) = q.one(conn).await? else { return Ok(None) };
    let snapshot = serde_json::from_str(&s(&r, 2)?).map_err(|e| anyhow::anyhow!("stored snapshot: {e}"))?;
    Ok(Some(StoredSnapshot { taken_at: time::from_micros(get_i64(&r, 0)?), data_version: get_i64(&r, 1)?, snapshot }))
}

/// What a fresh snapshot must match: when the roll-ups last changed and how many
/// customers the tenant has. Reads one row per day and one index range.
pub async fn data_version(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<i64> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT CAST(COALESCE(MAX(updated_at), 0) AS BIGINT) FROM engagement_days WHERE tenant_id = ",
    );
    q.bind(tenant.as_str());
    match q.one(conn).await? {
        Some(r) => get_i64(&r, 0),
        None => Ok(0),
    }
}

/// Customers of the tenant that can be ranked (not erased).
pub async fn population(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<i64> {
    let mut q = Sql::new(conn.get_database_backend(), "SELECT COUNT(*) FROM customers WHERE tenant_id = ");
    q.bind(tenant.as_str()).push(" AND erased_at IS NULL");
    match q.one(conn).await? {
        Some(r) => get_i64(&r, 0),
        None => Ok(0),
    }
}

/// Every non-zero score key of the tenant: the one full scan, done by snapshots.
pub async fn all_keys(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<Vec<f64>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT e.score_key FROM engagement_customers e JOIN customers c \
         ON c.tenant_id = e.tenant_id AND c.id = e.customer_id WHERE e.tenant_id = ",
    );
    q.bind(tenant.as_str()).push(" AND e.score_key > 0 AND c.erased_at IS NULL");
    q.all(conn).await?.iter().map(|r| f(r, 0)).collect()
}

/// Stores a snapshot and keeps one per UTC day (the latest) for 60 days.
pub async fn save_snapshot(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    taken_at: Timestamp,
    data_version: i64,
    snapshot: &ScoreSnapshot,
) -> Result<()> {
    let b = conn.get_database_backend();
    let taken_at = time::to_micros(taken_at);
    const DAY_US: i64 = 86_400_000_000;
    let day_start = taken_at - taken_at.rem_euclid(DAY_US);
    let mut q = Sql::new(b, "DELETE FROM engagement_snapshots WHERE tenant_id = ");
    q.bind(tenant.as_str()).push(" AND ((taken_at >= ").bind(day_start).push(" AND taken_at <= ").bind(taken_at);
    q.push(") OR taken_at < ").bind(taken_at - 60 * DAY_US).push(")");
    q.exec(conn).await?;
    let json = serde_json::to_string(snapshot).map_err(|e| anyhow::anyhow!("serialising a snapshot: {e}"))?;
    insert_rows(
        conn,
        "engagement_snapshots",
        &["tenant_id", "taken_at", "data_version", "snapshot"],
        vec![vec![tenant.as_str().into(), taken_at.into(), data_version.into(), json.into()]],
        "ON CONFLICT (tenant_id, taken_at) DO NOTHING",
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};

    use super::*;
    use crate::store::testing::{memory_db, migrate_up_to, tenant_row};

    /// The one statement's sums are the domain's definition (`GapSum::matches`) summed
    /// by hand over the same cells, for every kind of sum and window edges that cut
    /// through the stored days and gaps, "no next day yet" included.
    #[tokio::test]
    async fn gap_sums_in_one_statement_are_the_matching_cells_summed() {
        let db = memory_db().await;
        db.migrate().await.unwrap();
        tenant_row("t1", 0).into_active_model().insert(db.conn()).await.unwrap();
        let t = TenantId("t1".into());
        // A histogram over days 100..=160: gaps 1..=40 and "none yet", 1 to 9
        // customers a cell, spread over shards.
        let mut cells: Vec<(Day, i32, i64)> = Vec::new();
        let mut next = crate::domain::testing::numbers(7);
        for day in 100..=160 {
            for _ in 0..6 {
                let gap = if next(5) == 0 { NO_NEXT } else { 1 + next(40) as i32 };
                if !cells.iter().any(|&(d, g, _)| d == day && g == gap) {
                    cells.push((day, gap, 1 + next(9) as i64));
                }
            }
        }
        for (i, &(day, gap, customers)) in cells.iter().enumerate() {
            let sql = format!(
                "INSERT INTO engagement_gaps (tenant_id, day, gap, shard, customers) VALUES ('t1', {day}, {gap}, {}, {customers})",
                i % 16
            );
            db.conn().execute_unprepared(&sql).await.unwrap();
        }
        let mut sums = Vec::new();
        for (a, b) in [(100, 160), (130, 130), (124, 130), (131, 160), (90, 105), (155, 170)] {
            sums.push(GapSum::active(a, b));
            sums.push(GapSum::returned(a, b, b + 12));
            sums.push(GapSum::churn_episodes(a, b, 7));
            sums.push(GapSum::churn_episodes(a, b, 30));
        }
        let got = gap_sums(db.conn(), &t, &sums).await.unwrap();
        let want: Vec<i64> = sums
            .iter()
            .map(|g| cells.iter().filter(|&&(d, gap, _)| g.matches(d, gap)).map(|&(_, _, n)| n).sum())
            .collect();
        assert_eq!(got, want);
        assert!(want.iter().filter(|&&n| n > 0).count() >= 20, "most sums count something: {want:?}");
        // Another tenant's cells and no sums at all.
        assert_eq!(gap_sums(db.conn(), &TenantId("t2".into()), &sums[..2]).await.unwrap(), vec![0, 0]);
        assert_eq!(gap_sums(db.conn(), &t, &[]).await.unwrap(), Vec::<i64>::new());
    }

    /// Daily roll-ups stored before the revenue histogram existed: its migration fills
    /// it, and net revenue retention summed from it is what the per-customer statement
    /// gives, for windows ending on the last recorded day or after it.
    #[tokio::test]
    async fn the_revenue_histogram_its_migration_fills_sums_to_the_per_customer_retention() {
        let db = memory_db().await;
        migrate_up_to(&db, "m20261201_000007_revenue_histogram").await;
        tenant_row("t1", 0).into_active_model().insert(db.conn()).await.unwrap();
        let mut next = crate::domain::testing::numbers(3);
        for day in 100..=170 {
            for customer in 0..6 {
                if next(3) != 0 {
                    continue;
                }
                // Some days with a session only, some purchases of nothing.
                let purchases = next(3);
                let revenue = if purchases > 0 && next(5) > 0 { 1 + next(1_000) } else { 0 };
                let sql = format!(
                    "INSERT INTO activity_days (tenant_id, customer_id, day, events, actions, sessions, \
                     session_seconds, purchases, revenue_minor) VALUES ('t1', 'c{customer}', {day}, 1, 0, 1, 10, \
                     {purchases}, {revenue})"
                );
                db.conn().execute_unprepared(&sql).await.unwrap();
            }
        }
        db.migrate().await.unwrap();
        let t = TenantId("t1".into());
        let last = 170;
        let mut kept = 0;
        for (to, w) in [(last, 1), (last, 7), (last, 20), (last, 35), (last + 3, 10), (last + 50, 60)] {
            let win = RevenueWindow { prev_from: to - 2 * w + 1, prev_to: to - w, to };
            let cells = revenue_retention_cells(db.conn(), &t, win).await.unwrap();
            let per_customer = revenue_retention(db.conn(), &t, win.prev_from, win.prev_to, win.to).await.unwrap();
            assert_eq!(cells, per_customer, "{w} days to day {to}");
            kept += usize::from(per_customer.1 > 0);
        }
        assert!(kept >= 4, "most windows keep some revenue ({kept})");
    }
}
