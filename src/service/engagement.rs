//! Customers, activity ingestion and the scoring configuration (docs/engagement.md).
//!
//! `RecordEvents` runs in one transaction: resolve (or create) the customers, insert
//! the raw events — their dedup record, keyed by (tenant, message id) and kept forever,
//! drops duplicates before anything else sees them — and roll the accepted ones up into
//! the daily aggregates.
//! A duplicate never touches an aggregate, and a resent batch never counts twice.

use std::collections::{BTreeSet, HashMap};

use super::{Services, require_reader, require_secret};
use crate::domain::engagement::{
    self as eng, CustomerChange, CustomerRecord, Event, RawEvent, Rejection, ScoringConfig,
};
use crate::domain::listing::PageRequest;
use crate::domain::model::{Page, Principal, Properties};
use crate::domain::privacy::{Actor, AuditAction, AuditEntry};
use crate::domain::stored::NewActivity;
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, TenantId};
use crate::error::{AppError, Result};
use crate::store::engagement::{self as es, Rolled, StoredConfig};
use crate::store::{customers, engagement_read as er, tenants};

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    Accepted,
    /// Its message id was recorded before; `same_payload` says whether the first
    /// event said the same (`None` when it came earlier in the same batch).
    Duplicate {
        same_payload: Option<bool>,
    },
    Rejected(Rejection),
}

/// The fields an `UpdateScoringConfig` mask may name.
pub const CONFIG_FIELDS: [&str; 11] = [
    "action_weights",
    "half_life_days",
    "core_actions",
    "profit_margin",
    "health_weights",
    "min_health_components",
    "health_bands",
    "risk",
    "inactivity_days",
    "time_zone",
    "currency",
];

/// Pages of raw events replayed at a time when roll-ups are recomputed.
const REPLAY_PAGE: u64 = 5_000;

/// Days before the UTC day that the fold leaves alone: today and yesterday in every
/// time zone (a tenant's day is at most one day behind or ahead of UTC's), the days
/// whose counters concurrent batches add to most.
const FOLD_AFTER_DAYS: i32 = 2;

/// What one pass of the fold did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldPass {
    /// Counter rows folded into their key's one row.
    pub moved: u64,
    /// Tenants left for the next pass: another replica was folding them, or the
    /// database was busy or unreachable.
    pub skipped: u64,
    /// Tenants whose fold failed otherwise (logged; tried again on the next pass).
    pub failed: u64,
}

impl Services {
    /// One pass of the fold over every tenant (docs/engagement.md, "Shards and the
    /// fold"): the gap and revenue counters of the days before yesterday, summed into
    /// one row per key. What the reads sum is unchanged; they read fewer rows.
    pub async fn fold_rollups(&self) -> Result<FoldPass> {
        let before = eng::day_of(chrono_tz::Tz::UTC, self.clock.now()) - FOLD_AFTER_DAYS;
        let mut pass = FoldPass::default();
        for tenant in tenants::ids(&self.db).await? {
            if self.shutdown.is_cancelled() {
                break;
            }
            match es::fold_old_days(&self.db, &tenant, before, es::FOLD_CHUNK).await {
                Ok(n) => {
                    pass.moved += n;
                    self.metrics.rollup_rows_folded(n);
                }
                Err(e) if e.is_transient() => pass.skipped += 1,
                Err(e) => {
                    // One tenant's failure does not hold the others' fold up.
                    tracing::warn!(tenant = %tenant, error = %e, "folding old days' counters failed");
                    pass.failed += 1;
                }
            }
        }
        Ok(pass)
    }

    /// Creates or changes a customer: account, traits, properties.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn upsert_customer(
        &self,
        p: &Principal,
        customer: &CustomerRef,
        change: CustomerChange,
    ) -> Result<CustomerRecord> {
        require_secret(p)?;
        let change = change.validate()?;
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let c = customers::upsert(&txn, &p.tenant, customer, &change.properties, now).await?;
        er::update_customer(&txn, &p.tenant, &c.id, &change, now).await?;
        let (_, out) = er::get_customer(&txn, &p.tenant, customer).await?;
        txn.commit().await?;
        Ok(out)
    }

    pub async fn get_customer(&self, p: &Principal, customer: &CustomerRef) -> Result<CustomerRecord> {
        require_reader(p)?;
        Ok(er::get_customer(self.db.conn(), &p.tenant, customer).await?.1)
    }

    pub async fn list_customers(
        &self,
        p: &Principal,
        account: Option<String>,
        properties: Properties,
        page: PageRequest,
    ) -> Result<Page<CustomerRecord>> {
        require_reader(p)?;
        Ok(er::list_customers(self.db.conn(), &p.tenant, account.as_deref(), &properties, &page).await?)
    }

    /// Records a batch: per item accepted, duplicate or rejected; valid items kept.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, events = raw.len()))]
    pub async fn record_events(&self, p: &Principal, raw: Vec<RawEvent>) -> Result<Vec<EventOutcome>> {
        self.record_events_within(p, raw, eng::MAX_LATE_DAYS).await
    }

    /// [`Services::record_events`] taking events up to `max_late_days` old: the live
    /// limit for RecordEvents, a longer one for an import (docs/imports.md). Old events
    /// are rolled up on the day they happened, as if they had arrived then.
    pub async fn record_events_within(
        &self,
        p: &Principal,
        raw: Vec<RawEvent>,
        max_late_days: i64,
    ) -> Result<Vec<EventOutcome>> {
        require_secret(p)?;
        if raw.is_empty() {
            return Err(AppError::invalid("events", "send 1 to 1 000 events"));
        }
        if raw.len() > eng::MAX_BATCH {
            return Err(AppError::invalid(
                "events",
                format!("at most {} events per call; got {}", eng::MAX_BATCH, raw.len()),
            ));
        }
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let stored = self.config_for_write(&txn, &p.tenant, now).await?;
        let config = &stored.config;
        let tz = config.tz();

        // Check every item; a message id repeated within the batch is a duplicate.
        let mut outcomes: Vec<EventOutcome> = Vec::with_capacity(raw.len());
        let mut valid: Vec<(usize, Event)> = Vec::with_capacity(raw.len());
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            match eng::check_event_within(r, now, &config.currency, max_late_days) {
                Err(rej) => outcomes.push(EventOutcome::Rejected(rej)),
                Ok(e) => {
                    if seen.insert(e.message_id.clone(), i).is_some() {
                        outcomes.push(EventOutcome::Duplicate { same_payload: None });
                    } else {
                        outcomes.push(EventOutcome::Accepted);
                        valid.push((i, e));
                    }
                }
            }
        }

        let externals: BTreeSet<String> = valid.iter().map(|(_, e)| e.customer.0.clone()).collect();
        let resolved = es::resolve_customers(&txn, &p.tenant, &externals, now).await?;
        let mut rows: Vec<(usize, NewActivity, i32)> = Vec::with_capacity(valid.len());
        for (i, e) in valid {
            let Some(c) = resolved.get(e.customer.as_str()) else {
                return Err(AppError::Internal(anyhow::anyhow!("customer {:?} was not created", e.customer.0)));
            };
            if c.erased {
                outcomes[i] = EventOutcome::Rejected(Rejection {
                    field: "customer_id".into(),
                    reason: "the customer has been erased".into(),
                });
                continue;
            }
            let day = eng::day_of(tz, e.at);
            let hash = e.payload_hash();
            rows.push((
                i,
                NewActivity {
                    message_id: e.message_id,
                    customer: c.row_id.clone(),
                    occurred_at: e.at,
                    kind: e.kind,
                    payload_hash: hash,
                },
                day,
            ));
        }

        let events: Vec<NewActivity> = rows.iter().map(|(_, r, _)| r.clone()).collect();
        let inserted = es::insert_events(&txn, &p.tenant, &events, now).await?;
        let dupes: Vec<String> = rows
            .iter()
            .filter(|(_, r, _)| !inserted.contains(&r.message_id))
            .map(|(_, r, _)| r.message_id.clone())
            .collect();
        let first_hashes =
            if dupes.is_empty() { HashMap::new() } else { es::payload_hashes(&txn, &p.tenant, &dupes).await? };
        let mut accepted: Vec<Rolled<'_>> = Vec::with_capacity(inserted.len());
        for (i, r, day) in &rows {
            if inserted.contains(&r.message_id) {
                accepted.push(Rolled { customer: &r.customer, day: *day, kind: &r.kind });
            } else {
                let same = first_hashes.get(&r.message_id).map(|h| *h == r.payload_hash);
                outcomes[*i] = EventOutcome::Duplicate { same_payload: same };
            }
        }
        es::roll_up(&txn, &p.tenant, config, stored.reference_day, &accepted, now).await?;
        txn.commit().await?;
        Ok(outcomes)
    }

    /// The configuration inside a write transaction, created with the defaults on
    /// first use, and its score keys rebased when the reference day has grown old.
    async fn config_for_write(
        &self,
        txn: &crate::store::Tx,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<StoredConfig> {
        let utc_today = eng::day_of(chrono_tz::Tz::UTC, now);
        let mut stored = es::load_config(txn, tenant, utc_today).await?;
        if stored.updated_at.is_none() {
            es::ensure_config(txn, tenant, utc_today, now).await?;
            stored = es::load_config(txn, tenant, utc_today).await?;
        }
        let today = eng::day_of(stored.config.tz(), now);
        if let Some(new_ref) = eng::rebase_needed(today, stored.reference_day, stored.config.half_life_days) {
            let factor = eng::decay((new_ref - stored.reference_day) as f64, stored.config.half_life_days);
            es::rebase_keys(txn, tenant, factor).await?;
            es::save_config(txn, tenant, &stored.config, new_ref, now).await?;
            stored.reference_day = new_ref;
        }
        Ok(stored)
    }

    /// The tenant's configuration and when it last changed.
    pub async fn scoring_config(&self, p: &Principal) -> Result<(ScoringConfig, Option<Timestamp>)> {
        require_reader(p)?;
        let now = self.clock.now();
        let stored = es::load_config(self.db.conn(), &p.tenant, eng::day_of(chrono_tz::Tz::UTC, now)).await?;
        Ok((stored.config, stored.updated_at))
    }

    /// Changes the fields in `mask` to their values in `values`. A change of weights,
    /// half-life or time zone recomputes every roll-up from the raw events, in the
    /// same transaction.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn update_scoring_config(
        &self,
        p: &Principal,
        mask: Vec<String>,
        values: ScoringConfig,
    ) -> Result<(ScoringConfig, Option<Timestamp>)> {
        require_secret(p)?;
        if mask.is_empty() {
            return Err(AppError::invalid("update_mask", "name at least one field to change"));
        }
        for path in &mask {
            if !CONFIG_FIELDS.contains(&path.as_str()) {
                return Err(AppError::invalid(
                    "update_mask",
                    format!(
                        "unknown field {:?}; one of {}",
                        crate::domain::input::quote_prefix(path),
                        CONFIG_FIELDS.join(", ")
                    ),
                ));
            }
        }
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let stored = self.config_for_write(&txn, &p.tenant, now).await?;
        let old = stored.config.clone();
        let mut c = old.clone();
        for path in &mask {
            match path.as_str() {
                "action_weights" => c.action_weights = values.action_weights.clone(),
                "half_life_days" => c.half_life_days = values.half_life_days,
                "core_actions" => c.core_actions = values.core_actions.clone(),
                "profit_margin" => c.profit_margin = values.profit_margin,
                "health_weights" => c.health_weights = values.health_weights,
                "min_health_components" => c.min_health_components = values.min_health_components,
                "health_bands" => c.bands = values.bands,
                "risk" => c.risk = values.risk,
                "inactivity_days" => c.inactivity_days = values.inactivity_days,
                "time_zone" => c.time_zone = values.time_zone.clone(),
                "currency" => c.currency = values.currency.clone(),
                _ => {}
            }
        }
        let c = c.validate()?;
        let recompute = c.action_weights != old.action_weights
            || c.half_life_days != old.half_life_days
            || c.time_zone != old.time_zone;
        let reference = if recompute { eng::day_of(c.tz(), now) } else { stored.reference_day };
        es::save_config(&txn, &p.tenant, &c, reference, now).await?;
        let entry = AuditEntry::new(&p.tenant, Actor::of(p), AuditAction::ScoringConfigUpdated, "")
            .with(serde_json::json!({ "fields": mask, "recomputed": recompute }));
        crate::store::audit::record(&txn, &entry, now).await?;
        if recompute {
            replay(&txn, &p.tenant, &c, reference, now).await?;
        }
        txn.commit().await?;
        Ok((c, Some(now)))
    }
}

/// Recomputes every roll-up of a tenant from its raw events, oldest first, through
/// the same code as ingestion.
async fn replay(
    txn: &crate::store::Tx,
    tenant: &TenantId,
    config: &ScoringConfig,
    reference_day: i32,
    now: Timestamp,
) -> Result<()> {
    es::clear_rollups(txn, tenant).await?;
    let tz = config.tz();
    let mut after: Option<(Timestamp, String)> = None;
    loop {
        let page = es::events_page(txn, tenant, after.clone(), REPLAY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.occurred_at, last.message_id.clone()));
        let rolled: Vec<Rolled<'_>> = page
            .iter()
            .map(|e| Rolled { customer: &e.customer, day: eng::day_of(tz, e.occurred_at), kind: &e.kind })
            .collect();
        es::roll_up(txn, tenant, config, reference_day, &rolled, now).await?;
        if (page.len() as u64) < REPLAY_PAGE {
            break;
        }
    }
    Ok(())
}
