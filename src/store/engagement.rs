//! Engagement storage, write side: the scoring configuration, bulk customer
//! resolution, raw events (deduplicated by `activity_event_ids`), and the roll-ups that
//! ingestion updates in the same transaction (docs/engagement.md, "How it is built").
//!
//! Everything is multi-row SQL: a batch of 1 000 events costs about ten statements,
//! whatever its size. Counters are upserted as increments (`n = n + excluded.n`), so
//! concurrent batches never lose an update, and every statement touches its rows in
//! sorted key order, so two batches cannot deadlock each other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sea_orm::{ConnectionTrait, Value};

use super::Db;
use super::error::Result;
use super::sql::{Sql, add_on_conflict, get, get_i64, get_opt_i64, greatest, insert_rows, least};
use crate::domain::engagement::{self as eng, Day, EventKind, ScoringConfig};
use crate::domain::engagement_metrics::{self as em, cohort_delta, gap_delta};
use crate::domain::stored::NewActivity;
use crate::domain::time::{self, Timestamp};
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
    /// When it last changed; `None` while the tenant has the defaults.
    pub updated_at: Option<Timestamp>,
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
    Ok(StoredConfig { config, reference_day, updated_at: get_opt_i64(&row, 3)?.map(time::from_micros) })
}

/// Creates the tenant's configuration row with the defaults if it has none, fixing
/// the reference day of its score keys before the first key is written.
pub async fn ensure_config(conn: &impl ConnectionTrait, tenant: &TenantId, today: Day, now: Timestamp) -> Result<()> {
    let json = serde_json::to_string(&ScoringConfig::default()).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    insert_rows(
        conn,
        "engagement_configs",
        &["tenant_id", "config", "reference_day", "updated_at"],
        vec![vec![tenant.as_str().into(), json.into(), today.into(), time::to_micros(now).into()]],
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
    now: Timestamp,
) -> Result<()> {
    let b = conn.get_database_backend();
    let json = serde_json::to_string(config).map_err(|e| anyhow::anyhow!("serialising the config: {e}"))?;
    insert_rows(
        conn,
        "engagement_configs",
        &["tenant_id", "config", "reference_day", "updated_at"],
        vec![vec![tenant.as_str().into(), json.into(), reference_day.into(), time::to_micros(now).into()]],
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
    pub row_id: CustomerRowId,
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
        q.bind(tenant.as_str()).push(" AND external_id").in_list(chunk.iter().map(|s| s.to_string()));
        for row in q.all(conn).await? {
            let id: String = get(&row, 0)?;
            let ext: String = get(&row, 1)?;
            let erased = get_opt_i64(&row, 2)?.is_some();
            out.insert(ext, Resolved { row_id: CustomerRowId(id), erased });
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
    now: Timestamp,
) -> Result<HashMap<String, Resolved>> {
    let now_us = time::to_micros(now);
    let all: Vec<&str> = externals.iter().map(String::as_str).collect();
    let mut out = HashMap::with_capacity(all.len());
    find_customers(conn, tenant, &all, &mut out).await?;
    let mut missing: Vec<&str> = all.iter().copied().filter(|e| !out.contains_key(*e)).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    // An erased id (a tombstone) is not created again: it resolves as erased, with no row.
    let erased = super::privacy::erased_among(conn, tenant, &missing).await?;
    missing.retain(|e| !erased.contains(*e));
    for e in erased {
        out.insert(e, Resolved { row_id: crate::domain::ids::CustomerRowId(String::new()), erased: true });
    }
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

fn event_values(tenant: &TenantId, e: &NewActivity, now_us: i64) -> Vec<Value> {
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
        e.customer.0.clone().into(),
        e.kind.as_str().into(),
        name.into(),
        time::to_micros(e.occurred_at).into(),
        props.into(),
        seconds.into(),
        amount.into(),
        currency.into(),
        e.payload_hash.clone().into(),
        now_us.into(),
    ]
}

/// Inserts the events whose message id is new for the tenant; returns those ids.
/// The dedup record decides: one narrow multi-row insert into `activity_event_ids`
/// (primary key tenant, message id; kept after the events are gone), and only the ids
/// it inserted go on to `activity_events`, so a concurrent resend of the same batch can
/// never insert twice, whatever the events' months (on PostgreSQL the events' own key
/// holds their time: the table is partitioned by it).
pub async fn insert_events(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    events: &[NewActivity],
    now: Timestamp,
) -> Result<HashSet<String>> {
    let mut sorted: Vec<&NewActivity> = events.iter().collect();
    sorted.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    let ids = sorted
        .iter()
        .map(|e| {
            vec![
                tenant.as_str().into(),
                e.message_id.clone().into(),
                e.customer.0.clone().into(),
                e.payload_hash.clone().into(),
            ]
        })
        .collect();
    let inserted: HashSet<String> = insert_rows(
        conn,
        "activity_event_ids",
        &["tenant_id", "message_id", "customer_id", "payload_hash"],
        ids,
        "ON CONFLICT (tenant_id, message_id) DO NOTHING RETURNING message_id",
    )
    .await?
    .iter()
    .map(|r| get::<String>(r, 0))
    .collect::<Result<_>>()?;
    let now_us = time::to_micros(now);
    let rows =
        sorted.iter().filter(|e| inserted.contains(&e.message_id)).map(|e| event_values(tenant, e, now_us)).collect();
    insert_rows(conn, "activity_events", &EVENT_COLS, rows, "").await?;
    Ok(inserted)
}

/// The payload hashes recorded with these message ids.
pub async fn payload_hashes(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &[String],
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(1_000) {
        let mut q = Sql::new(
            conn.get_database_backend(),
            "SELECT message_id, payload_hash FROM activity_event_ids WHERE tenant_id = ",
        );
        q.bind(tenant.as_str()).push(" AND message_id").in_list(chunk.iter().cloned());
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
    after: Option<(Timestamp, String)>,
    limit: u64,
) -> Result<Vec<NewActivity>> {
    let mut q = Sql::new(
        conn.get_database_backend(),
        "SELECT message_id, customer_id, occurred_at, kind, name, properties, seconds, amount_minor, currency, \
         payload_hash FROM activity_events WHERE tenant_id = ",
    );
    q.bind(tenant.as_str());
    if let Some((t, id)) = after {
        // The bound alone (`>=`) lets PostgreSQL skip the partitions of earlier months.
        let t = time::to_micros(t);
        q.push(" AND occurred_at >= ").bind(t);
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
            Ok(NewActivity {
                message_id: get(r, 0)?,
                customer: CustomerRowId(get(r, 1)?),
                occurred_at: time::from_micros(get_i64(r, 2)?),
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
    pub customer: &'a CustomerRowId,
    pub day: Day,
    pub kind: &'a EventKind,
}

/// One (customer, day) row's counters, as a batch adds to them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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

/// What a batch adds to the per-customer roll-ups: one entry per row, in key order
/// (the order the upserts take their locks in).
#[derive(Debug, Default, PartialEq)]
struct Aggregate<'a> {
    /// (customer, day) → counters.
    days: BTreeMap<(&'a str, Day), DayAgg>,
    /// (customer, day, action) → count.
    actions: BTreeMap<(&'a str, Day, &'a str), i64>,
    /// (action, property, value, day, customer) → count.
    props: BTreeMap<(&'a str, &'a str, &'a str, Day, &'a str), i64>,
    /// customer → (first day, last day, score key added) of its events in the batch.
    customers: BTreeMap<&'a str, (Day, Day, f64)>,
}

/// Sums a batch of events into one row per roll-up key. Pure: the score key of an
/// action is its weight decayed to the tenant's reference day.
fn aggregate<'a>(events: &[Rolled<'a>], config: &ScoringConfig, reference_day: Day) -> Aggregate<'a> {
    let mut a = Aggregate::default();
    for e in events {
        let customer = e.customer.as_str();
        let agg = a.days.entry((customer, e.day)).or_default();
        agg.events += 1;
        let mut key = 0.0;
        match e.kind {
            EventKind::Action { name, properties } => {
                agg.actions += 1;
                *a.actions.entry((customer, e.day, name.as_str())).or_default() += 1;
                for (k, v) in properties {
                    *a.props.entry((name.as_str(), k.as_str(), v.as_str(), e.day, customer)).or_default() += 1;
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
        let c = a.customers.entry(customer).or_insert((e.day, e.day, 0.0));
        c.0 = c.0.min(e.day);
        c.1 = c.1.max(e.day);
        c.2 += key;
    }
    a
}

/// The (customer, day) rows the days' upsert created, per customer: an existing row
/// has at least one event already, so a row whose count after the upsert (`totals`:
/// customer, day, events) equals this batch's count did not exist before. The upsert
/// is atomic, so this holds whatever runs concurrently.
fn new_days(batch: &BTreeMap<(&str, Day), DayAgg>, totals: &[(String, Day, i64)]) -> BTreeMap<String, Vec<Day>> {
    let mut out: BTreeMap<String, Vec<Day>> = BTreeMap::new();
    for (customer, day, total) in totals {
        if batch.get(&(customer.as_str(), *day)).is_some_and(|a| a.events == *total) {
            out.entry(customer.clone()).or_default().push(*day);
        }
    }
    for days in out.values_mut() {
        days.sort_unstable();
    }
    out
}

/// A customer's first active day after the customers' upsert, and its first and last
/// before it (`None` for a customer's first activity ever).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Widened {
    customer: String,
    new_first: Day,
    old_first: Option<Day>,
    old_last: Option<Day>,
}

impl Widened {
    /// Whether `added` (its new active days, sorted) reach back before its last known
    /// active day: a late event, whose gaps need all of the customer's days.
    fn needs_history(&self, added: &[Day]) -> bool {
        self.old_last.is_some_and(|l| added.first().is_some_and(|d| *d <= l))
    }
}

/// Counters of a per-tenant table by their two-part key.
type Cells = BTreeMap<(i32, i32), i64>;

/// The per-tenant counter tables batches add to, each row in one of [`SHARDS`]:
/// (table, first key, second key, counter), in [`TenantDeltas`]' order of their cells.
/// Those whose first key is `day` are the ones [`fold_old_days`] folds.
const COUNTER_TABLES: [(&str, &str, &str, &str); 3] = [
    ("engagement_gaps", "day", "gap", "customers"),
    ("engagement_cohorts", "cohort_month", "active_month", "customers"),
    ("engagement_revenue", "day", "prev_day", "revenue_minor"),
];

/// What a batch changes in the per-tenant tables: the gap histogram, the daily counts
/// (active customers, new customers) and the cohorts.
#[derive(Debug, Default, PartialEq)]
struct TenantDeltas {
    /// (day, gap to the next active day) → customers.
    gaps: Cells,
    /// day → (active customers, new customers).
    days: BTreeMap<Day, (i64, i64)>,
    /// (first-seen month, active month) → customers.
    cohorts: Cells,
    /// (day, previous revenue day) → revenue (domain::engagement_metrics::revenue_delta).
    revenue: Cells,
}

impl TenantDeltas {
    /// Adds what one customer's new active days change. `added`: those days, sorted;
    /// `history`: all of its active days now, needed only when
    /// [`Widened::needs_history`] (else the days follow the last known one, and only
    /// that day's gap changes).
    fn add_customer(&mut self, w: &Widened, added: &[Day], history: Option<&[Day]>) {
        for d in added {
            self.days.entry(*d).or_default().0 += 1;
        }
        if w.old_first != Some(w.new_first) {
            self.days.entry(w.new_first).or_default().1 += 1;
            if let Some(o) = w.old_first {
                self.days.entry(o).or_default().1 -= 1;
            }
        }
        let (old, new): (Vec<Day>, Vec<Day>) = match (w.old_last, history) {
            (None, _) => (Vec::new(), added.to_vec()),
            (Some(_), Some(all)) => {
                (all.iter().copied().filter(|d| added.binary_search(d).is_err()).collect(), all.to_vec())
            }
            (Some(l), None) => (vec![l], std::iter::once(l).chain(added.iter().copied()).collect()),
        };
        for (k, v) in gap_delta(&old, &new) {
            *self.gaps.entry(k).or_default() += v;
        }
        let old_cohort = w.old_first.map(eng::month_of);
        for (k, v) in cohort_delta(old_cohort, &old, eng::month_of(w.new_first), &new) {
            *self.cohorts.entry(k).or_default() += v;
        }
    }

    /// Drops the cells that net to zero, and gives every day of the batch a row (with
    /// nothing added): each batch stamps its days, so score snapshots know when they
    /// are stale.
    fn finish<'a>(mut self, batch_days: impl IntoIterator<Item = &'a Day>) -> Self {
        self.gaps.retain(|_, n| *n != 0);
        self.cohorts.retain(|_, n| *n != 0);
        self.revenue.retain(|_, n| *n != 0);
        for d in batch_days {
            self.days.entry(*d).or_default();
        }
        self
    }
}

/// Rolls accepted events up into every aggregate, in the caller's transaction:
/// per-customer days, actions and property values; the customer's first and last
/// day and score key; and the tenant's gap histogram, daily counts and cohorts.
pub async fn roll_up(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    config: &ScoringConfig,
    reference_day: Day,
    events: &[Rolled<'_>],
    now: Timestamp,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let batch = aggregate(events, config, reference_day);
    let totals = upsert_days(conn, tenant, &batch.days).await?;
    let mut added = new_days(&batch.days, &totals);
    upsert_actions(conn, tenant, &batch.actions).await?;
    upsert_props(conn, tenant, &batch.props).await?;
    let widened = upsert_customers(conn, tenant, &batch.customers).await?;
    // The customers' rows are locked now: their revenue days read below include every
    // batch committed before this one, and none still running.
    let revenue = revenue_deltas(conn, tenant, &batch.days).await?;

    // The tenant tables change only where a customer gained an active day.
    // Customers whose new days reach back before their last known one need all of
    // their days: read in one statement for the batch.
    let late: Vec<String> = widened
        .iter()
        .filter(|w| added.get(&w.customer).is_some_and(|a| w.needs_history(a)))
        .map(|w| w.customer.clone())
        .collect();
    let histories = if late.is_empty() {
        HashMap::new()
    } else {
        super::engagement_read::customers_days(conn, tenant, &late).await?
    };
    let mut deltas = TenantDeltas::default();
    for w in &widened {
        let Some(added) = added.remove(&w.customer) else { continue };
        let history = w.needs_history(&added).then(|| histories.get(&w.customer).map_or(&[][..], Vec::as_slice));
        deltas.add_customer(w, &added, history);
    }
    deltas.revenue = revenue;
    let deltas = deltas.finish(batch.days.keys().map(|(_, d)| d));
    upsert_tenant_tables(conn, tenant, &deltas, now).await
}

/// What the batch's revenue changes in the revenue histogram: each customer with
/// revenue in it, from its revenue days now (one read for the batch, only when there
/// is revenue).
async fn revenue_deltas(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    days: &BTreeMap<(&str, Day), DayAgg>,
) -> Result<Cells> {
    let mut added: BTreeMap<&str, BTreeMap<Day, i64>> = BTreeMap::new();
    for ((customer, day), agg) in days {
        if agg.revenue > 0 {
            *added.entry(customer).or_default().entry(*day).or_default() += agg.revenue;
        }
    }
    let mut out = BTreeMap::new();
    let Some(last) = added.values().filter_map(|a| a.keys().next_back()).max().copied() else {
        return Ok(out);
    };
    let (from, read_from) = em::revenue_reach(last);
    let customers: Vec<&str> = added.keys().copied().collect();
    let now = super::engagement_read::customers_revenue_days(conn, tenant, &customers, read_from).await?;
    for (customer, added) in &added {
        em::revenue_delta(now.get(*customer).map_or(&[][..], Vec::as_slice), added, from, &mut out);
    }
    Ok(out)
}

/// Adds to each (customer, day) row, creating it if new; returns each row's event
/// count after the upsert, (customer, day, events).
async fn upsert_days(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    days: &BTreeMap<(&str, Day), DayAgg>,
) -> Result<Vec<(String, Day, i64)>> {
    let t = tenant.as_str();
    let cols = [
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
    let rows = days
        .iter()
        .map(|((c, d), a)| {
            let mut v: Vec<Value> = vec![t.into(), (*c).into(), (*d).into()];
            v.extend(a.values());
            v
        })
        .collect();
    let tail = format!(
        "{} RETURNING customer_id, day, events",
        add_on_conflict("activity_days", "tenant_id, customer_id, day", &DAY_COUNTERS)
    );
    insert_rows(conn, "activity_days", &cols, rows, &tail)
        .await?
        .iter()
        .map(|r| Ok((get(r, 0)?, get_i64(r, 1)? as Day, get_i64(r, 2)?)))
        .collect()
}

async fn upsert_actions(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    actions: &BTreeMap<(&str, Day, &str), i64>,
) -> Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let t = tenant.as_str();
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
    Ok(())
}

async fn upsert_props(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    props: &BTreeMap<(&str, &str, &str, Day, &str), i64>,
) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let t = tenant.as_str();
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
        &add_on_conflict("activity_day_props", "tenant_id, action, prop_key, prop_value, day, customer_id", &["count"]),
    )
    .await?;
    Ok(())
}

/// Widens each customer's first and last day and adds to its score key; returns the
/// previous first and last day of each (none for a customer's first activity ever).
async fn upsert_customers(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    customers: &BTreeMap<&str, (Day, Day, f64)>,
) -> Result<Vec<Widened>> {
    let b = conn.get_database_backend();
    let t = tenant.as_str();
    let ec = "engagement_customers";
    let tail = format!(
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET prev_first_day = {ec}.first_day, \
         prev_last_day = {ec}.last_day, first_day = {lo}({ec}.first_day, excluded.first_day), \
         last_day = {hi}({ec}.last_day, excluded.last_day), score_key = {ec}.score_key + excluded.score_key \
         RETURNING customer_id, first_day, prev_first_day, prev_last_day",
        lo = least(b),
        hi = greatest(b),
    );
    insert_rows(
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
    .await?
    .iter()
    .map(|r| {
        Ok(Widened {
            customer: get(r, 0)?,
            new_first: get_i64(r, 1)? as Day,
            old_first: get_opt_i64(r, 2)?.map(|d| d as Day),
            old_last: get_opt_i64(r, 3)?.map(|d| d as Day),
        })
    })
    .collect()
}

/// Adds the deltas to the tenant's gap histogram, cohorts and days, in one shard
/// picked at random (concurrent batches rarely meet on a row).
async fn upsert_tenant_tables(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    deltas: &TenantDeltas,
    now: Timestamp,
) -> Result<()> {
    let t = tenant.as_str();
    let shard: i16 = rand::random_range(0..SHARDS);
    let cells: [&Cells; 3] = [&deltas.gaps, &deltas.cohorts, &deltas.revenue];
    for ((table, k1, k2, counter), cells) in COUNTER_TABLES.into_iter().zip(cells) {
        if cells.is_empty() {
            continue;
        }
        insert_rows(
            conn,
            table,
            &["tenant_id", k1, k2, "shard", counter],
            cells
                .iter()
                .map(|((a, b), n)| vec![t.into(), (*a).into(), (*b).into(), shard.into(), (*n).into()])
                .collect(),
            &add_on_conflict(table, &format!("tenant_id, {k1}, {k2}, shard"), &[counter]),
        )
        .await?;
    }
    let now_us = time::to_micros(now);
    insert_rows(
        conn,
        "engagement_days",
        &["tenant_id", "day", "shard", "dau", "new_customers", "updated_at"],
        deltas
            .days
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

// ---------------------------------------------------------------------------------
// Folding old days' shards.
// ---------------------------------------------------------------------------------

/// The shard [`fold_old_days`] moves old days' counts into. Ingestion writes shards
/// `0..SHARDS` only, so no batch ever holds a lock on a folded row.
pub const FOLDED: i16 = -1;

/// Rows one PostgreSQL fold statement moves at most (one short transaction each).
pub const FOLD_CHUNK: u64 = 10_000;

/// How long a fold waits for a row lock (another replica folding the same tenant)
/// before giving up until the next pass: PostgreSQL's `lock_timeout`.
const FOLD_LOCK_TIMEOUT: &str = "200ms";

/// Folds a tenant's counter rows of the days before `before` into one row per key
/// (shard [`FOLDED`]), so reads of a window sum about one row per key instead of up
/// to [`SHARDS`] (docs/engagement.md, "Shards and the fold"). Sums are unchanged.
/// Returns the rows moved. On PostgreSQL it moves at most `chunk` rows per
/// transaction ([`FOLD_CHUNK`]).
///
/// On PostgreSQL it runs beside ingestion: it deletes only rows no batch holds
/// (`FOR UPDATE SKIP LOCKED`) and adds them to the folded row in the same statement;
/// a batch adding to a row being deleted waits for the fold's commit and then inserts
/// it afresh. A row locked by a batch stays for the next pass. On SQLite writes take
/// turns, so a plain insert-then-delete in one transaction is enough.
pub async fn fold_old_days(db: &Db, tenant: &TenantId, before: Day, chunk: u64) -> Result<u64> {
    let t = tenant.as_str();
    let b = db.backend();
    let mut moved = 0;
    for (table, day, key, counter) in COUNTER_TABLES.into_iter().filter(|(_, first, _, _)| *first == "day") {
        let keys = format!("tenant_id, {day}, {key}, shard");
        let upsert = add_on_conflict(table, &keys, &[counter]);
        // Where the next chunk starts: the last one's latest day (not before, so a
        // chunk never walks again over the keys the ones before it emptied).
        let mut from: Option<Day> = None;
        loop {
            let txn = db.begin_write().await?;
            let n = if db.is_postgres() {
                txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{FOLD_LOCK_TIMEOUT}'")).await?;
                let mut q = Sql::new(
                    b,
                    &format!(
                        "WITH moved AS (DELETE FROM {table} WHERE ({keys}) IN (SELECT {keys} FROM {table} \
                         WHERE tenant_id = "
                    ),
                );
                q.bind(t).push(&format!(" AND {day} < ")).bind(before);
                if let Some(from) = from {
                    q.push(&format!(" AND {day} >= ")).bind(from);
                }
                q.push(&format!(
                    " AND shard <> {FOLDED} ORDER BY {day}, {key}, shard LIMIT {chunk} FOR UPDATE SKIP LOCKED) \
                     RETURNING {day}, {key}, {counter}), folded AS (INSERT INTO {table} ({keys}, {counter}) SELECT "
                ));
                q.bind(t).push(&format!(
                    ", {day}, {key}, {FOLDED}, CAST(SUM({counter}) AS BIGINT) FROM moved GROUP BY {day}, {key} \
                     ORDER BY {day}, {key} {upsert}) SELECT COUNT(*), MAX({day}) FROM moved"
                ));
                match q.one(&txn).await? {
                    Some(r) => {
                        from = get_opt_i64(&r, 1)?.map(|d| d as Day).or(from);
                        get_i64(&r, 0)? as u64
                    }
                    None => 0,
                }
            } else {
                let old = |q: &mut Sql| {
                    q.push(&format!(" FROM {table} WHERE tenant_id = ")).bind(t);
                    q.push(&format!(" AND {day} < ")).bind(before).push(&format!(" AND shard <> {FOLDED}"));
                };
                let mut q = Sql::new(
                    b,
                    &format!(
                        "INSERT INTO {table} ({keys}, {counter}) SELECT tenant_id, {day}, {key}, {FOLDED}, SUM({counter})"
                    ),
                );
                old(&mut q);
                q.push(&format!(" GROUP BY tenant_id, {day}, {key} {upsert}"));
                q.exec(&txn).await?;
                let mut q = Sql::new(b, "DELETE");
                old(&mut q);
                q.exec(&txn).await?
            };
            txn.commit().await?;
            moved += n;
            if n < chunk {
                break;
            }
        }
    }
    Ok(moved)
}

/// Deletes every roll-up of a tenant (before recomputing them from raw events).
pub async fn clear_rollups(conn: &impl ConnectionTrait, tenant: &TenantId) -> Result<()> {
    for table in [
        "activity_days",
        "activity_day_actions",
        "activity_day_props",
        "engagement_customers",
        "engagement_gaps",
        "engagement_revenue",
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

#[cfg(test)]
mod tests {
    //! The pure steps of [`roll_up`]: what a batch adds per row, which rows are new,
    //! and what the new active days change in the tenant tables.

    use super::*;
    use crate::domain::model::Properties;

    fn action(name: &str, props: &[(&str, &str)]) -> EventKind {
        let properties: Properties = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EventKind::Action { name: name.into(), properties }
    }

    #[test]
    fn a_batch_is_summed_into_one_row_per_key() {
        let (ada, bob) = (CustomerRowId("ada".into()), CustomerRowId("bob".into()));
        let login = action("login", &[("plan", "pro")]);
        let export = action("export", &[]);
        let session = EventKind::Session { seconds: 30 };
        let purchase = EventKind::Purchase { amount_minor: 500, currency: "EUR".into() };
        let events = [
            Rolled { customer: &ada, day: 10, kind: &login },
            Rolled { customer: &ada, day: 10, kind: &login },
            Rolled { customer: &ada, day: 12, kind: &session },
            Rolled { customer: &bob, day: 11, kind: &purchase },
            Rolled { customer: &bob, day: 9, kind: &export },
        ];
        let config = ScoringConfig { action_weights: [("login".to_string(), 2.0)].into(), ..ScoringConfig::default() };
        let a = aggregate(&events, &config, 7);

        assert_eq!(a.days[&("ada", 10)], DayAgg { events: 2, actions: 2, ..Default::default() });
        assert_eq!(a.days[&("ada", 12)], DayAgg { events: 1, sessions: 1, session_seconds: 30, ..Default::default() });
        assert_eq!(a.days[&("bob", 11)], DayAgg { events: 1, purchases: 1, revenue: 500, ..Default::default() });
        assert_eq!(a.days.len(), 4);
        assert_eq!(a.actions.iter().collect::<Vec<_>>(), [(&("ada", 10, "login"), &2), (&("bob", 9, "export"), &1)]);
        assert_eq!(a.props.iter().collect::<Vec<_>>(), [(&("login", "plan", "pro", 10, "ada"), &2)]);
        // First and last day of each; only weighted actions add to the score key.
        let key = 2.0 * eng::key_term(2.0, 10, 7, config.half_life_days);
        assert_eq!(a.customers[&"ada"], (10, 12, key));
        assert_eq!(a.customers[&"bob"], (9, 11, 0.0));
    }

    #[test]
    fn a_row_whose_total_is_the_batch_s_count_is_new() {
        let mut batch = BTreeMap::new();
        batch.insert(("ada", 10), DayAgg { events: 2, ..Default::default() });
        batch.insert(("ada", 11), DayAgg { events: 1, ..Default::default() });
        batch.insert(("ada", 8), DayAgg { events: 1, ..Default::default() });
        batch.insert(("bob", 10), DayAgg { events: 1, ..Default::default() });
        let totals = [
            ("ada".to_string(), 10, 2),
            ("ada".to_string(), 11, 5), // had 4 events before
            ("ada".to_string(), 8, 1),
            ("bob".to_string(), 10, 1),
        ];
        let new = new_days(&batch, &totals);
        assert_eq!(new.into_iter().collect::<Vec<_>>(), [("ada".into(), vec![8, 10]), ("bob".into(), vec![10])]);
    }

    fn widened(new_first: Day, old_first: Option<Day>, old_last: Option<Day>) -> Widened {
        Widened { customer: "ada".into(), new_first, old_first, old_last }
    }

    #[test]
    fn a_first_activity_adds_a_new_customer_its_gaps_and_its_cohort() {
        let w = widened(10, None, None);
        assert!(!w.needs_history(&[10, 12]));
        let mut d = TenantDeltas::default();
        d.add_customer(&w, &[10, 12], None);
        let d = d.finish(&[10, 12]);
        assert_eq!(d.days.into_iter().collect::<Vec<_>>(), [(10, (1, 1)), (12, (1, 0))]);
        assert_eq!(d.gaps.into_iter().collect::<Vec<_>>(), [((10, 2), 1), ((12, 0), 1)]);
        assert_eq!(d.cohorts.into_iter().collect::<Vec<_>>(), [((0, 0), 1)]);
    }

    #[test]
    fn days_after_the_last_known_one_only_move_its_gap() {
        let w = widened(10, Some(10), Some(12));
        assert!(!w.needs_history(&[15]));
        let mut d = TenantDeltas::default();
        d.add_customer(&w, &[15], None);
        let d = d.finish(&[15]);
        assert_eq!(d.days.into_iter().collect::<Vec<_>>(), [(15, (1, 0))]);
        assert_eq!(d.gaps.into_iter().collect::<Vec<_>>(), [((12, 0), -1), ((12, 3), 1), ((15, 0), 1)]);
        assert!(d.cohorts.is_empty(), "the same cohort, the same month: nothing changes");
    }

    #[test]
    fn a_late_day_before_the_first_moves_the_new_customer_and_the_cohort() {
        // Days 40 and 45 are in February 1970 (month 1), day 20 in January (month 0).
        let w = widened(20, Some(40), Some(45));
        assert!(w.needs_history(&[20]));
        let mut d = TenantDeltas::default();
        d.add_customer(&w, &[20], Some(&[20, 40, 45]));
        let d = d.finish(&[20]);
        assert_eq!(d.days.into_iter().collect::<Vec<_>>(), [(20, (1, 1)), (40, (0, -1))]);
        assert_eq!(d.gaps.into_iter().collect::<Vec<_>>(), [((20, 20), 1)]);
        assert_eq!(d.cohorts.into_iter().collect::<Vec<_>>(), [((0, 0), 1), ((0, 1), 1), ((1, 1), -1)]);
    }

    /// The fold sums every key's shards of the old days into one row and leaves the
    /// sums read from them, and the newer days' rows, as they were.
    #[tokio::test]
    async fn folding_old_days_leaves_one_row_per_key_and_every_sum() {
        use crate::domain::engagement_metrics::{GapSum, RevenueWindow};
        use crate::store::engagement_read::{gap_sums, revenue_retention_cells};
        use crate::store::testing::{memory_db, tenant_row};
        use sea_orm::{ActiveModelTrait as _, IntoActiveModel as _};

        let db = memory_db().await;
        db.migrate().await.unwrap();
        for t in ["t1", "t2"] {
            tenant_row(t, 0).into_active_model().insert(db.conn()).await.unwrap();
        }
        let mut next = crate::domain::testing::numbers(5);
        for (table, key, counter) in
            [("engagement_gaps", "gap", "customers"), ("engagement_revenue", "prev_day", "revenue_minor")]
        {
            for _ in 0..400 {
                let (day, other, shard, n) = (100 + next(40), next(6) as i64, next(16), 1 + next(9));
                let other = if key == "prev_day" { day as i64 - 1 - other } else { other };
                for t in ["t1", "t2"] {
                    let sql = format!(
                        "INSERT INTO {table} (tenant_id, day, {key}, shard, {counter}) VALUES ('{t}', {day}, {other}, {shard}, {n}) \
                         ON CONFLICT (tenant_id, day, {key}, shard) DO UPDATE SET {counter} = {table}.{counter} + {n}"
                    );
                    db.conn().execute_unprepared(&sql).await.unwrap();
                }
            }
        }
        let t = TenantId("t1".into());
        let sums: Vec<GapSum> = [(100, 139), (110, 125), (125, 135), (130, 139)]
            .into_iter()
            .flat_map(|(a, b)| [GapSum::active(a, b), GapSum::returned(a, b, b + 3), GapSum::churn_episodes(a, b, 2)])
            .collect();
        let windows = [(139, 10), (139, 5), (131, 4)].map(|(to, w)| RevenueWindow {
            prev_from: to - 2 * w + 1,
            prev_to: to - w,
            to,
        });
        let read = || async {
            let mut revenue = Vec::new();
            for w in windows {
                revenue.push(revenue_retention_cells(db.conn(), &t, w).await.unwrap());
            }
            (gap_sums(db.conn(), &t, &sums).await.unwrap(), revenue)
        };
        let db = &db;
        let rows = |sql: String| async move {
            let r = db.conn().query_one_raw(sea_orm::Statement::from_string(db.backend(), sql)).await.unwrap();
            r.unwrap().try_get_by_index::<i64>(0).unwrap()
        };
        let count = |table: &str, key: &str, filter: &str| {
            format!(
                "SELECT COUNT(*) FROM (SELECT day, {key}, COUNT(*) AS n, MIN(shard) AS s FROM {table} WHERE tenant_id = 't1' AND {filter} GROUP BY day, {key}) x"
            )
        };
        let before = read().await;
        let newer = rows("SELECT COUNT(*) FROM engagement_gaps WHERE day >= 125".into()).await;
        let moved = fold_old_days(db, &t, 125, FOLD_CHUNK).await.unwrap();
        assert!(moved > 200, "{moved}");
        assert_eq!(read().await, before);
        for (table, key) in [("engagement_gaps", "gap"), ("engagement_revenue", "prev_day")] {
            let keys = rows(count(table, key, "day < 125")).await;
            assert!(keys > 50, "{table}: {keys} keys");
            let folded = rows(format!("{}  WHERE n = 1 AND s = {FOLDED}", count(table, key, "day < 125"))).await;
            assert_eq!(folded, keys, "{table}: one folded row per key");
        }
        assert_eq!(rows("SELECT COUNT(*) FROM engagement_gaps WHERE day >= 125".into()).await, newer);
        // The other tenant is untouched; a second fold has nothing to move; a row added
        // to an old day later is folded into its key's row by the next.
        assert_eq!(rows("SELECT COUNT(*) FROM engagement_gaps WHERE tenant_id = 't2' AND shard < 0".into()).await, 0);
        assert_eq!(fold_old_days(db, &t, 125, FOLD_CHUNK).await.unwrap(), 0);
        db.conn()
            .execute_unprepared(
                "INSERT INTO engagement_gaps (tenant_id, day, gap, shard, customers) VALUES ('t1', 110, 3, 7, 4)",
            )
            .await
            .unwrap();
        let with_it = read().await;
        assert_ne!(with_it, before);
        assert_eq!(fold_old_days(db, &t, 125, FOLD_CHUNK).await.unwrap(), 1);
        assert_eq!(read().await, with_it);
    }

    #[test]
    fn every_day_of_the_batch_is_stamped_even_without_a_new_active_customer() {
        let d = TenantDeltas::default().finish(&[3, 4]);
        assert_eq!(d.days.into_iter().collect::<Vec<_>>(), [(3, (0, 0)), (4, (0, 0))]);
    }
}
