//! Customers, keyed by the CRM's id within a tenant.

use std::collections::HashSet;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Set};

use super::entities::{Scoped, customer};
use super::error::{Result, StoreError};
use super::sql::Sql;
use super::{props_from_json, props_to_json};
use crate::domain::input;
use crate::domain::model::Properties;
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, CustomerRowId, TenantId, time};

/// A customer row as the survey rules need it.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: CustomerRowId,
    pub external: CustomerRef,
    pub properties: Properties,
    pub unsubscribed_at: Option<Timestamp>,
    pub erased_at: Option<Timestamp>,
}

fn to_domain(m: customer::Model) -> Customer {
    Customer {
        id: CustomerRowId(m.id),
        external: CustomerRef(m.external_id),
        properties: props_from_json(&m.properties),
        unsubscribed_at: m.unsubscribed_at.map(time::from_micros),
        erased_at: m.erased_at.map(time::from_micros),
    }
}

/// The customer, or `None`.
pub async fn find(conn: &impl ConnectionTrait, tenant: &TenantId, external: &CustomerRef) -> Result<Option<Customer>> {
    Ok(customer::Entity::scoped(tenant)
        .filter(customer::Column::ExternalId.eq(external.as_str()))
        .one(conn)
        .await?
        .map(to_domain))
}

/// The customer, or `NOT_FOUND`.
pub async fn get(conn: &impl ConnectionTrait, tenant: &TenantId, external: &CustomerRef) -> Result<Customer> {
    find(conn, tenant, external).await?.ok_or_else(|| StoreError::NotFound(format!("customer {:?}", external.as_str())))
}

/// Creates the customer if new (race-free: INSERT … ON CONFLICT DO NOTHING) and
/// merges `props` into its properties.
pub async fn upsert(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    external: &CustomerRef,
    props: &Properties,
    now: Timestamp,
) -> Result<Customer> {
    let us = time::to_micros(now);
    // One statement for a new customer; a second only when it already exists.
    let inserted = customer::Entity::insert(customer::ActiveModel {
        id: Set(CustomerRowId::generate().0),
        tenant_id: Set(tenant.0.clone()),
        external_id: Set(external.0.clone()),
        properties: Set(props_to_json(props)),
        unsubscribed_at: Set(None),
        erased_at: Set(None),
        created_at: Set(us),
        updated_at: Set(us),
    })
    .on_conflict(
        OnConflict::columns([customer::Column::TenantId, customer::Column::ExternalId]).do_nothing().to_owned(),
    )
    .exec_with_returning(conn)
    .await;
    match inserted {
        // New: unless the id was erased (a tombstone), which the caller's transaction
        // then rolls back with the insert.
        Ok(_) if super::privacy::is_erased(conn, tenant, external.as_str()).await? => return Err(erased()),
        Ok(m) => return Ok(to_domain(m)),
        Err(sea_orm::DbErr::RecordNotInserted) | Err(sea_orm::DbErr::RecordNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut c = get(conn, tenant, external).await?;
    let merged = input::merge(&c.properties, props);
    if merged != c.properties {
        customer::Entity::update_many()
            .col_expr(customer::Column::Properties, sea_orm::sea_query::Expr::value(props_to_json(&merged)))
            .col_expr(customer::Column::UpdatedAt, sea_orm::sea_query::Expr::value(us))
            .filter(customer::Column::TenantId.eq(tenant.as_str()))
            .filter(customer::Column::Id.eq(c.id.as_str()))
            .exec(conn)
            .await?;
        c.properties = merged;
    }
    Ok(c)
}

/// The customers of these CRM ids, each created with no properties if new (race-free,
/// like [`upsert`]): one statement when all are new, a second for those that exist.
pub async fn ensure_many(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: &[&CustomerRef],
    now: Timestamp,
) -> Result<Vec<Customer>> {
    if externals.is_empty() {
        return Ok(Vec::new());
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        return ensure_many_postgres(conn, tenant, externals, now).await;
    }
    let us = time::to_micros(now);
    let rows: Vec<customer::Model> = externals
        .iter()
        .map(|external| customer::Model {
            id: CustomerRowId::generate().0,
            tenant_id: tenant.0.clone(),
            external_id: external.0.clone(),
            properties: props_to_json(&Properties::new()),
            unsubscribed_at: None,
            erased_at: None,
            created_at: us,
            updated_at: us,
        })
        .collect();
    let inserted = super::sql::insert_models::<customer::Entity>(
        conn,
        &rows,
        "ON CONFLICT (tenant_id, external_id) DO NOTHING RETURNING *",
    )
    .await?;
    let mut found: Vec<Customer> = inserted
        .iter()
        .map(|r| customer::Model::from_query_result(r, "").map(to_domain))
        .collect::<std::result::Result<_, _>>()?;
    // New ones whose id was erased are not created: they come back erased, without a row.
    let new_ids: Vec<&str> = found.iter().map(|c| c.external.as_str()).collect();
    let erased = super::privacy::erased_among(conn, tenant, &new_ids).await?;
    if !erased.is_empty() {
        let rows: Vec<String> =
            found.iter().filter(|c| erased.contains(c.external.as_str())).map(|c| c.id.0.clone()).collect();
        customer::Entity::delete_many()
            .filter(customer::Column::TenantId.eq(tenant.as_str()))
            .filter(customer::Column::Id.is_in(rows))
            .exec(conn)
            .await?;
        for c in found.iter_mut().filter(|c| erased.contains(c.external.as_str())) {
            c.id = CustomerRowId(String::new());
            c.erased_at = Some(now);
        }
    }
    let new: std::collections::HashSet<&str> = found.iter().map(|c| c.external.as_str()).collect();
    let existing: Vec<&str> = externals.iter().map(|e| e.as_str()).filter(|e| !new.contains(e)).collect();
    if !existing.is_empty() {
        let existing = existing.into_iter().map(str::to_owned).collect();
        let rows = customer::Entity::scoped(tenant)
            .filter(super::sql::one_of(conn.get_database_backend(), customer::Column::ExternalId, existing))
            .all(conn)
            .await?;
        found.extend(rows.into_iter().map(to_domain));
    }
    Ok(found)
}

/// [`ensure_many`] on PostgreSQL, where a batch of customers seen for the first time
/// costs one statement instead of two: the insert skips the erased ids itself (`NOT
/// EXISTS` on their tombstones), so nothing is inserted to be deleted again. Ids it did
/// not insert are read; those neither inserted nor found are looked up among the
/// tombstones (an erased id, or one erased meanwhile).
async fn ensure_many_postgres(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: &[&CustomerRef],
    now: Timestamp,
) -> Result<Vec<Customer>> {
    let us = time::to_micros(now);
    let ids: Vec<String> = externals.iter().map(|_| CustomerRowId::generate().0).collect();
    let names: Vec<String> = externals.iter().map(|e| e.0.clone()).collect();
    let hashes: Vec<String> =
        externals.iter().map(|e| crate::domain::privacy::subject_hash(tenant, e.as_str())).collect();
    let mut q = Sql::new(
        DbBackend::Postgres,
        "INSERT INTO customers (id, tenant_id, external_id, properties, created_at, updated_at) SELECT u.id, ",
    );
    q.bind(tenant.as_str()).push(", u.external_id, ").bind(props_to_json(&Properties::new()));
    q.push(", ").bind(us).push(", ").bind(us).push(" FROM UNNEST(").bind(ids).push("::text[], ").bind(names);
    q.push("::text[], ").bind(hashes).push("::text[]) AS u(id, external_id, subject_hash) ");
    q.push("WHERE NOT EXISTS (SELECT 1 FROM erased_customers e WHERE e.tenant_id = ").bind(tenant.as_str());
    q.push(" AND e.subject_hash = u.subject_hash) ON CONFLICT (tenant_id, external_id) DO NOTHING RETURNING *");
    let mut found: Vec<Customer> = q
        .all(conn)
        .await?
        .iter()
        .map(|r| customer::Model::from_query_result(r, "").map(to_domain))
        .collect::<std::result::Result<_, _>>()?;
    let inserted: HashSet<&str> = found.iter().map(|c| c.external.as_str()).collect();
    let rest: Vec<String> =
        externals.iter().map(|e| e.as_str()).filter(|e| !inserted.contains(e)).map(str::to_owned).collect();
    if rest.is_empty() {
        return Ok(found);
    }
    let rows = customer::Entity::scoped(tenant)
        .filter(super::sql::one_of(DbBackend::Postgres, customer::Column::ExternalId, rest.clone()))
        .all(conn)
        .await?;
    found.extend(rows.into_iter().map(to_domain));
    let have: HashSet<&str> = found.iter().map(|c| c.external.as_str()).collect();
    let missing: Vec<&str> = rest.iter().map(String::as_str).filter(|e| !have.contains(e)).collect();
    if missing.is_empty() {
        return Ok(found);
    }
    // Erased: they come back erased, without a row.
    let erased = super::privacy::erased_among(conn, tenant, &missing).await?;
    let erased: Vec<Customer> = missing
        .iter()
        .filter(|e| erased.contains(**e))
        .map(|e| Customer {
            id: CustomerRowId(String::new()),
            external: CustomerRef((*e).to_owned()),
            properties: Properties::new(),
            unsubscribed_at: None,
            erased_at: Some(now),
        })
        .collect();
    found.extend(erased);
    Ok(found)
}

/// A write naming an erased customer (docs/privacy.md).
fn erased() -> StoreError {
    StoreError::Erased
}

/// Customers by rapport's row ids.
pub async fn by_row_ids(conn: &impl ConnectionTrait, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Customer>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = ids.iter().map(|s| (*s).to_owned()).collect();
    let rows = customer::Entity::scoped(tenant)
        .filter(super::sql::one_of(conn.get_database_backend(), customer::Column::Id, ids))
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(to_domain).collect())
}

/// Sets or clears the customer's opt-out.
pub async fn set_unsubscribed(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    customer: &CustomerRowId,
    at: Option<Timestamp>,
    now: Timestamp,
) -> Result<()> {
    customer::Entity::update_many()
        .col_expr(customer::Column::UnsubscribedAt, sea_orm::sea_query::Expr::value(at.map(time::to_micros)))
        .col_expr(customer::Column::UpdatedAt, sea_orm::sea_query::Expr::value(time::to_micros(now)))
        .filter(customer::Column::TenantId.eq(tenant.as_str()))
        .filter(customer::Column::Id.eq(customer.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

/// The CRM id of a customer row.
pub async fn external_id(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    row_id: &CustomerRowId,
) -> Result<CustomerRef> {
    customer::Entity::scoped(tenant)
        .filter(customer::Column::Id.eq(row_id.as_str()))
        .one(conn)
        .await?
        .map(|c| CustomerRef(c.external_id))
        .ok_or_else(|| StoreError::other(anyhow::anyhow!("customer row {row_id} vanished")))
}
