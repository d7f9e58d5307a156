//! Engagement storage, write side: the scoring configuration, bulk customer
//! resolution, raw events (deduplicated by the primary key), and the roll-ups that
//! ingestion updates in the same transaction (docs/engagement.md, "How it is built").
//!
//! Everything is multi-row SQL: a batch of 1 000 events costs about ten statements,
//! whatever its size. Counters are upserted as increments (`n = n + excluded.n`), so
//! concurrent batches never lose an update, and every statement touches its rows in
//! sorted key order, so two batches cannot deadlock each other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sea_orm::{ConnectionTrait, Value};

use super::sql::{Sql, add_on_conflict, get, get_i64, get_opt_i64, greatest, insert_rows, least};

use super::error::Result;
use crate::domain::engagement::{self as eng, Day, EventKind, ScoringConfig};
use crate::domain::engagement_metrics::{cohort_delta, gap_delta};
use crate::domain::{CustomerRowId, TenantId};

// ---------------------------------------------------------------------------------
// Configuration.
// ---------------------------------------------------------------------------------

/// A tenant's configuration with its score reference day.
#[derive(Debug, Clone)]
pub struct StoredConfig {
    pub config: ScoringConfig,
    /// The day score keys are relative to (domain::engagement::key_term).
    pub reference_day: Day,
    pub updated_at: Option<i64>,
}

/// The tenant's configuration, or the defaults (reference day `today`) if unset.
pub async fn load_config(conn: &impl ConnectionTrait, tenant: &TenantId, today: Day) -> Result<StoredConfig> {
    let b = conn.get_database_backend();
    let mut q = Sql::new(
        b,
        "SELECT t.time_zone, c.config, c.reference_day, c.updated_at FROM tenants t \
         LEFT JOIN engagement_configs c ON c.tenant_id = t.id WHERE t.id = ",
    );
    q.bind(tenant.as_str());
    let row = q.one(conn).await?.ok_or_else(|| anyhow::anyhow!("tenant {tenant} vanished"))?;
    let tz: String = get(&row, 0)?;
    let json: Option<String> = get(&row, 1)?;
    let mut config: ScoringConfig = match &json {
        Some(j) => serde_json::from_str(j).map_err(|e| anyhow::anyhow!("stored scoring config: {e}"))?,
        None => ScoringConfig::default(),
    };
    config.time_zone = tz;
    let reference_day = get_opt_i64(&row, 2)?.map(|d| d as Day).unwrap_or(today);
    Ok(StoredConfig { config, reference_day, updated_at: get_opt_i64(&row, 3)? })
}

/// Creates the tenant's configuration row with the defaults if it has none, fixing
/// the reference day of its score keys before the first key is written.
pub async fn ensure_config(conn: &impl ConnectionTrait, tenant: &TenantId, today: Day, now_us: i64) -> Result<()> {
    let json = serde_json::to_string(&ScoringConfig::default()).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    insert_rows(
        conn,
        "engagement_configs",
        &["tenant_id", "config", "reference_day", "updated_at"],
        vec![vec![tenant.as_str().into(), json.into(), today.into(), now_us.into()]],
        "ON CONFLICT (tenant_id) DO NOTHING",
    )
    .await?;
    Ok(())
}

/// Writes the configuration (and the tenant's time zone).
pub async fn save_config(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    config: &ScoringConfig,
    reference_day: Day,
    now_us: i64,
) -> Result<()> {
    let b = conn.get_database_backend();
    let json = serde_json::to_string(config).map_err(|e| anyhow::anyhow!("serialising the config: {e}"))?;
    insert_rows(
        conn,
        "engagement_configs",
        &["tenant_id", "config", "reference_day", "updated_at"],
        vec![vec![tenant.as_str().into(), json.into(), reference_day.into(), now_us.into()]],
        "ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config, reference_day = excluded.reference_day, \
         updated_at = excluded.updated_at",
    )
    .await?;
    let mut q = Sql::new(b, "UPDATE tenants SET time_zone = ");
    q.bind(config.time_zone.as_str()).push(" WHERE id = ").bind(tenant.as_str());
    q.exec(conn).await?;
    Ok(())
}

/// Moves the score keys to a new reference day (multiplying by 2^−(Δ/half-life)).
pub async fn rebase_keys(conn: &impl ConnectionTrait, tenant: &TenantId, factor: f64) -> Result<()> {
    let mut q = Sql::new(conn.get_database_backend(), "UPDATE engagement_customers SET score_key = score_key * ");
    q.bind(factor).push(" WHERE tenant_id = ").bind(tenant.as_str());
    q.exec(conn).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------
// Customers, in bulk.
// ---------------------------------------------------------------------------------

/// A customer as ingestion needs it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub row_id: String,
    pub erased: bool,
}

async fn find_customers(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: &[&str],
    out: &mut HashMap<String, Resolved>,
) -> Result<()> {
    for chunk in externals.chunks(1_000) {
        let mut q = Sql::new(
            conn.get_database_backend(),
            "SELECT id, external_id, erased_at FROM customers WHERE tenant_id = ",
        );
        q.bind(tenant.as_str()).push(" AND external_id IN ").list(chunk.iter().map(|s| s.to_string()));
        for row in q.all(conn).await? {
            let id: String = get(&row, 0)?;
            let ext: String = get(&row, 1)?;
            let erased = get_opt_i64(&row, 2)?.is_some();
            out.insert(ext, Resolved { row_id: id, erased });
        }
    }
    Ok(())
}

/// The rows of these CRM ids, creating the customers not seen before (race-free:
/// INSERT … ON CONFLICT DO NOTHING, then read back).
pub async fn resolve_customers(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: &BTreeSet<String>,
    now_us: i64,
) -> Result<HashMap<String, Resolved>> {
    let all: Vec<&str> = externals.iter().map(String::as_str).collect();
    let mut out = HashMap::with_capacity(all.len());
    find_customers(conn, tenant, &all, &mut out).await?;
    let missing: Vec<&str> = all.iter().copied().filter(|e| !out.contains_key(*e)).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let rows = missing
        .iter()
        .map(|e| {
            vec![
                CustomerRowId::generate().0.into(),
                tenant.as_str().into(),
                e.to_string().into(),
                "{}".into(),
                now_us.into(),
                now_us.into(),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "customers",
        &["id", "tenant_id", "external_id", "properties", "created_at", "updated_at"],
        rows,
        "ON CONFLICT (tenant_id, external_id) DO NOTHING",
    )
    .await?;
    find_customers(conn, tenant, &missing, &mut out).await?;
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Raw events.
// ---------------------------------------------------------------------------------

/// One raw event row.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub message_id: String,
    pub customer_row: String,
    pub occurred_at: i64,
    pub kind: EventKind,
    pub payload_hash: String,
}

const EVENT_COLS: [&str; 12] = [
    "tenant_id",
    "message_id",
    "customer_id",
    "kind",
    "name",
    "occurred_at",
    "properties",
    "seconds",
    "amount_minor",
    "currency",
    "payload_hash",
    "received_at",
];

fn event_values(tenant: &TenantId, e: &EventRow, now_us: i64) -> Vec<Value> {
    let (name, props, seconds, amount, currency) = match &e.kind {
        EventKind::Action { name, properties } => {
            (Some(name.clone()), super::props_to_json(properties), None, None, None)
        }
        EventKind::Session { seconds } => (None, "{}".to_owned(), Some(*seconds), None, None),
        EventKind::Purchase { amount_minor, currency } => {
            (None, "{}".to_owned(), None, Some(*amount_minor), Some(currency.clone()))
        }
    };
    vec![
        tenant.as_str().into(),
        e.message_id.clone().into(),
        e.customer_row.clone().into(),
        e.kind.as_str().into(),
        name.into(),
        e.occurred_at.into(),
        props.into(),
        seconds.into(),
        amount.into(),
        currency.into(),
        e.payload_hash.clone().into(),
        now_us.into(),
    ]
}

/// Inserts the events whose message id is new for the tenant; returns those ids.
/// The primary key decides, so a concurrent resend of the same batch can never
/// insert twice.
pub async fn insert_events(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    events: &[EventRow],
    now_us: i64,
) -> Result<HashSet<String>> {
    let mut sorted: Vec<&EventRow> = events.iter().collect();
    sorted.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    let rows = sorted.iter().map(|e| event_values(tenant, e, now_us)).collect();
    let returned = insert_rows(
        conn,
        "activity_events",
        &EVENT_COLS,
        rows,
        "ON CONFLICT (tenant_id, message_id) DO NOTHING RETURNING message_id",
    )
    .await?;
    returned.iter().map(|r| get::<String>(r, 0)).collect()
}

/// The stored payload hashes of these message ids.
pub async fn payload_hashes(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &[String],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(1_000) {
        let mut q = Sql::new(
            conn.get_database_backend(),
            "SELECT message_id, payload_hash FROM activity_events WHERE tenant_id = ",
        );
        q.bind(tenant.as_str()).push(" AND message_id IN ").list(chunk.iter().cloned());
        for r in q.all(conn).await? {
            out.insert(get(&r, 0)?, get(&r, 1)?);
        }
    }
    Ok(out)
}

/// Raw events of a tenant in time order, a page at a time (for recomputation):
/// those after (`after_time`, `after_id`).
pub async fn events_page(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    after: Option<(i64, String)>,
    limit: u64,
) -> Result<Vec<EventRow>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT message_id, customer_id, occurred_at, kind, name, properties, seconds, amount_minor, currency, \
         payload_hash FROM activity_events WHERE tenant_id = ",
    );
    q.bind(tenant.as_str());
    if let Some((t, id)) = after {
        q.push(" AND (occurred_at > ").bind(t).push(" OR (occurred_at = ").bind(t);
        q.push(" AND message_id > ").bind(id).push("))");
    }
    q.push(&format!(" ORDER BY occurred_at, message_id LIMIT {limit}"));
    q.all(conn)
        .await?
        .iter()
        .map(|r| {
            let kind: String = get(r, 3)?;
            let kind = match kind.as_str() {
                "action" => EventKind::Action {
                    name: get::<Option<String>>(r, 4)?.unwrap_or_default(),
                    properties: super::props_from_json(&get::<String>(r, 5)?),
                },
                "session" => EventKind::Session { seconds: get_opt_i64(r, 6)?.unwrap_or(0) },
                _ => EventKind::Purchase {
                    amount_minor: get_opt_i64(r, 7)?.unwrap_or(0),
                    currency: get::<Option<String>>(r, 8)?.unwrap_or_default(),
                },
            };
            Ok(EventRow {
                message_id: get(r, 0)?,
                customer_row: get(r, 1)?,
                occurred_at: get_i64(r, 2)?,
                kind,
                payload_hash: get(r, 9)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Roll-ups.
// ---------------------------------------------------------------------------------

/// An accepted event as the roll-ups see it.
#[derive(Debug, Clone, Copy)]
pub struct Rolled<'a> {
    pub customer: &'a str,
    pub day: Day,
    pub kind: &'a EventKind,
}

#[derive(Debug, Default, Clone, Copy)]
struct DayAgg {
    events: i64,
    actions: i64,
    sessions: i64,
    session_seconds: i64,
    purchases: i64,
    revenue: i64,
}

impl DayAgg {
    fn values(&self) -> [Value; 6] {
        [
            self.events.into(),
            self.actions.into(),
            self.sessions.into(),
            self.session_seconds.into(),
            self.purchases.into(),
            self.revenue.into(),
        ]
    }
}

const DAY_COUNTERS: [&str; 6] = ["events", "actions", "sessions", "session_seconds", "purchases", "revenue_minor"];

/// Rows per key of the per-tenant counter tables (see the migration).
pub const SHARDS: i16 = 16;

/// Rolls accepted events up into every aggregate, in the caller's transaction:
/// per-customer days, actions and property values; the customer's first and last
/// day and score key; and the tenant's gap histogram, daily counts and cohorts.
pub async fn roll_up(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    config: &ScoringConfig,
    reference_day: Day,
    events: &[Rolled<'_>],
    now_us: i64,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let b = conn.get_database_backend();
    let t = tenant.as_str();

    // Aggregate the batch in memory first: one row per key, in key order.
    let mut days: BTreeMap<(&str, Day), DayAgg> = BTreeMap::new();
    let mut actions: BTreeMap<(&str, Day, &str), i64> = BTreeMap::new();
    let mut props: BTreeMap<(&str, &str, &str, Day, &str), i64> = BTreeMap::new();
    let mut customers: BTreeMap<&str, (Day, Day, f64)> = BTreeMap::new();
    for e in events {
        let agg = days.entry((e.customer, e.day)).or_default();
        agg.events += 1;
        let mut key = 0.0;
        match e.kind {
            EventKind::Action { name, properties } => {
                agg.actions += 1;
                *actions.entry((e.customer, e.day, name.as_str())).or_default() += 1;
                for (k, v) in properties {
                    *props.entry((name.as_str(), k.as_str(), v.as_str(), e.day, e.customer)).or_default() += 1;
                }
                let w = config.weight(name);
                if w > 0.0 {
                    key = eng::key_term(w, e.day, reference_day, config.half_life_days);
                }
            }
            EventKind::Session { seconds } => {
                agg.sessions += 1;
                agg.session_seconds += seconds;
            }
            EventKind::Purchase { amount_minor, .. } => {
                agg.purchases += 1;
                agg.revenue += amount_minor;
            }
        }
        let c = customers.entry(e.customer).or_insert((e.day, e.day, 0.0));
        c.0 = c.0.min(e.day);
        c.1 = c.1.max(e.day);
        c.2 += key;
    }

    // Days: add to each (customer, day) row, creating it if new, and learn which rows
    // are new: an existing row has at least one event already, so a row whose count
    // after the upsert equals this batch's count did not exist before. The upsert is
    // atomic, so this holds whatever runs concurrently.
    let day_cols = [
        "tenant_id",
        "customer_id",
        "day",
        "events",
        "actions",
        "sessions",
        "session_seconds",
        "purchases",
        "revenue_minor",
    ];
    let returned_days = insert_rows(
        conn,
        "activity_days",
        &day_cols,
        days.iter()
            .map(|((c, d), a)| {
                let mut v: Vec<Value> = vec![t.into(), (*c).into(), (*d).into()];
                v.extend(a.values());
                v
            })
            .collect(),
        &format!(
            "{} RETURNING customer_id, day, events",
            add_on_conflict("activity_days", "tenant_id, customer_id, day", &DAY_COUNTERS)
        ),
    )
    .await?;
    let mut new_days: BTreeMap<String, Vec<Day>> = BTreeMap::new();
    for r in &returned_days {
        let customer: String = get(r, 0)?;
        let day = get_i64(r, 1)? as Day;
        let total = get_i64(r, 2)?;
        if days.get(&(customer.as_str(), day)).is_some_and(|a| a.events == total) {
            new_days.entry(customer).or_default().push(day);
        }
    }

    if !actions.is_empty() {
        insert_rows(
            conn,
            "activity_day_actions",
            &["tenant_id", "customer_id", "day", "action", "count"],
            actions
                .iter()
                .map(|((c, d, a), n)| vec![t.into(), (*c).into(), (*d).into(), (*a).into(), (*n).into()])
                .collect(),
            &add_on_conflict("activity_day_actions", "tenant_id, customer_id, day, action", &["count"]),
        )
        .await?;
    }
    if !props.is_empty() {
        insert_rows(
            conn,
            "activity_day_props",
            &["tenant_id", "action", "prop_key", "prop_value", "day", "customer_id", "count"],
            props
                .iter()
                .map(|((a, k, v, d, c), n)| {
                    vec![t.into(), (*a).into(), (*k).into(), (*v).into(), (*d).into(), (*c).into(), (*n).into()]
                })
                .collect(),
            &add_on_conflict(
                "activity_day_props",
                "tenant_id, action, prop_key, prop_value, day, customer_id",
                &["count"],
            ),
        )
        .await?;
    }

    // Customers: widen first/last day, add to the score key, and read back the
    // previous first/last day (NULL for a customer's first activity ever).
    let ec = "engagement_customers";
    let tail = format!(
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET prev_first_day = {ec}.first_day, \
         prev_last_day = {ec}.last_day, first_day = {lo}({ec}.first_day, excluded.first_day), \
         last_day = {hi}({ec}.last_day, excluded.last_day), score_key = {ec}.score_key + excluded.score_key \
         RETURNING customer_id, first_day, prev_first_day, prev_last_day",
        lo = least(b),
        hi = greatest(b),
    );
    let returned = insert_rows(
        conn,
        ec,
        &["tenant_id", "customer_id", "first_day", "last_day", "score_key", "prev_first_day", "prev_last_day"],
        customers
            .iter()
            .map(|(c, (lo, hi, k))| {
                vec![t.into(), (*c).into(), (*lo).into(), (*hi).into(), (*k).into(), Value::Int(None), Value::Int(None)]
            })
            .collect(),
        &tail,
    )
    .await?;

    // The tenant tables change only where a customer gained an active day.
    let mut gaps: BTreeMap<(Day, i32), i64> = BTreeMap::new();
    let mut tenant_days: BTreeMap<Day, (i64, i64)> = BTreeMap::new();
    let mut cohorts: BTreeMap<(i32, i32), i64> = BTreeMap::new();
    for r in &returned {
        let customer: String = get(r, 0)?;
        let Some(added) = new_days.get_mut(&customer) else { continue };
        added.sort_unstable();
        let new_first = get_i64(r, 1)? as Day;
        let old_first = get_opt_i64(r, 2)?.map(|d| d as Day);
        let old_last = get_opt_i64(r, 3)?.map(|d| d as Day);
        for d in added.iter() {
            tenant_days.entry(*d).or_default().0 += 1;
        }
        if old_first != Some(new_first) {
            tenant_days.entry(new_first).or_default().1 += 1;
            if let Some(o) = old_first {
                tenant_days.entry(o).or_default().1 -= 1;
            }
        }
        let (old, new): (Vec<Day>, Vec<Day>) = match old_last {
            // The usual case: the new days all follow the last known one, so only
            // that day's gap changes.
            None => (Vec::new(), added.clone()),
            Some(l) if added[0] > l => (vec![l], std::iter::once(l).chain(added.iter().copied()).collect()),
            // A late event before the last known day: read the customer's days.
            Some(_) => {
                let all = super::engagement_read::customer_days(conn, tenant, &customer).await?;
                let old: Vec<Day> = all.iter().copied().filter(|d| added.binary_search(d).is_err()).collect();
                (old, all)
            }
        };
        for (k, v) in gap_delta(&old, &new) {
            *gaps.entry(k).or_default() += v;
        }
        let old_cohort = old_first.map(eng::month_of);
        for (k, v) in cohort_delta(old_cohort, &old, eng::month_of(new_first), &new) {
            *cohorts.entry(k).or_default() += v;
        }
    }
    gaps.retain(|_, n| *n != 0);
    cohorts.retain(|_, n| *n != 0);
    let shard: i16 = rand::random_range(0..SHARDS);
    if !gaps.is_empty() {
        insert_rows(
            conn,
            "engagement_gaps",
            &["tenant_id", "day", "gap", "shard", "customers"],
            gaps.iter()
                .map(|((d, g), n)| vec![t.into(), (*d).into(), (*g).into(), shard.into(), (*n).into()])
                .collect(),
            &add_on_conflict("engagement_gaps", "tenant_id, day, gap, shard", &["customers"]),
        )
        .await?;
    }
    if !cohorts.is_empty() {
        insert_rows(
            conn,
            "engagement_cohorts",
            &["tenant_id", "cohort_month", "active_month", "shard", "customers"],
            cohorts
                .iter()
                .map(|((c, m), n)| vec![t.into(), (*c).into(), (*m).into(), shard.into(), (*n).into()])
                .collect(),
            &add_on_conflict("engagement_cohorts", "tenant_id, cohort_month, active_month, shard", &["customers"]),
        )
        .await?;
    }
    // Every batch stamps its days, so score snapshots know when they are stale.
    for (_, d) in days.keys() {
        tenant_days.entry(*d).or_default();
    }
    insert_rows(
        conn,
        "engagement_days",
        &["tenant_id", "day", "shard", "dau", "new_customers", "updated_at"],
        tenant_days
            .iter()
            .map(|(d, (dau, new))| {
                vec![t.into(), (*d).into(), shard.into(), (*dau).into(), (*new).into(), now_us.into()]
            })
            .collect(),
        "ON CONFLICT (tenant_id, day, shard) DO UPDATE SET dau = engagement_days.dau + excluded.dau, \
         new_customers = engagement_days.new_customers + excluded.new_customers, updated_at = excluded.updated_at",
    )
    .await?;
    Ok(())
}

/// Deletes every roll-up of a tenant (before recomputing them from raw events).
pub async fn clear_rollups(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<()> {
    for table in [
        "activity_days",
        "activity_day_actions",
        "activity_day_props",
        "engagement_customers",
        "engagement_gaps",
        "engagement_days",
        "engagement_cohorts",
        "engagement_snapshots",
    ] {
        let mut q = Sql::new(conn.get_database_backend(), &format!("DELETE FROM {table} WHERE tenant_id = "));
        q.bind(tenant.as_str());
        q.exec(conn).await?;
    }
    Ok(())
}
