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
/// like [`upsert`]). Customers seen for the first time cost one statement: the insert
/// skips erased ids itself (`NOT EXISTS` on their tombstones), so nothing is inserted to
/// be deleted again. Ids it did not insert are read; those neither inserted nor found
/// are looked up among the tombstones (an erased id, or one erased meanwhile) and come
/// back erased, without a row.
pub async fn ensure_many(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: &[&CustomerRef],
    now: Timestamp,
) -> Result<Vec<Customer>> {
    if externals.is_empty() {
        return Ok(Vec::new());
    }
    let b = conn.get_database_backend();
    let new: Vec<NewCustomer> = externals.iter().map(|e| NewCustomer::of(tenant, e)).collect();
    // SQLite takes at most 500 terms of a compound SELECT; PostgreSQL takes them all
    // as arrays.
    let per = if b == DbBackend::Postgres { new.len() } else { 400 };
    let mut found: Vec<Customer> = Vec::with_capacity(new.len());
    for chunk in new.chunks(per) {
        let mut q = Sql::new(b, "");
        push_insert_new(&mut q, tenant, chunk, now);
        q.push(" RETURNING *");
        for r in q.all(conn).await? {
            found.push(to_domain(customer::Model::from_query_result(&r, "")?));
        }
    }
    let inserted: HashSet<&str> = found.iter().map(|c| c.external.as_str()).collect();
    let rest: Vec<String> =
        externals.iter().map(|e| e.as_str()).filter(|e| !inserted.contains(e)).map(str::to_owned).collect();
    if rest.is_empty() {
        return Ok(found);
    }
    found.extend(by_externals(conn, tenant, rest.clone()).await?);
    let have: HashSet<&str> = found.iter().map(|c| c.external.as_str()).collect();
    let missing: Vec<&str> = rest.iter().map(String::as_str).filter(|e| !have.contains(e)).collect();
    if missing.is_empty() {
        return Ok(found);
    }
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

/// The customers of these CRM ids that have a row (erased ones included, with
/// their `erased_at`); ids without one are left out.
pub async fn by_externals(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    externals: Vec<String>,
) -> Result<Vec<Customer>> {
    if externals.is_empty() {
        return Ok(Vec::new());
    }
    // One id (a lone answer) as a plain equality: with an array, a plan made before
    // the table's first ANALYZE scans the tenant's rows instead of the unique index.
    let filter = match <[String; 1]>::try_from(externals) {
        Ok([one]) => customer::Column::ExternalId.eq(one),
        Err(many) => super::sql::one_of(conn.get_database_backend(), customer::Column::ExternalId, many),
    };
    let rows = customer::Entity::scoped(tenant).filter(filter).all(conn).await?;
    Ok(rows.into_iter().map(to_domain).collect())
}

/// A customer about to be created on first use: its new row id, its CRM id, and the
/// hash its tombstone would carry if the id was erased.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub id: CustomerRowId,
    pub external: CustomerRef,
    subject_hash: String,
}

impl NewCustomer {
    pub fn of(tenant: &TenantId, external: &CustomerRef) -> Self {
        NewCustomer {
            id: CustomerRowId::generate(),
            external: external.clone(),
            subject_hash: crate::domain::privacy::subject_hash(tenant, external.as_str()),
        }
    }

    /// The customer as the answer rules see it once created: no properties yet.
    pub fn customer(&self) -> Customer {
        Customer {
            id: self.id.clone(),
            external: self.external.clone(),
            properties: Properties::new(),
            unsubscribed_at: None,
            erased_at: None,
        }
    }
}

/// `INSERT INTO customers … ON CONFLICT DO NOTHING` of `new`, with no properties,
/// skipping ids that were erased (`NOT EXISTS` on their tombstones), so nothing is
/// inserted to be deleted again. The caller adds a `RETURNING` if it wants one.
pub(super) fn push_insert_new(q: &mut Sql, tenant: &TenantId, new: &[NewCustomer], now: Timestamp) {
    let us = time::to_micros(now);
    q.push("INSERT INTO customers (id, tenant_id, external_id, properties, created_at, updated_at) ");
    q.push("SELECT u.id, ").bind(tenant.as_str()).push(", u.external_id, ");
    q.bind(props_to_json(&Properties::new())).push(", ").bind(us).push(", ").bind(us).push(" FROM ");
    if q.backend() == DbBackend::Postgres {
        // One array per column: the same text whatever the number of customers.
        let column = |f: fn(&NewCustomer) -> &str| new.iter().map(|c| f(c).to_owned()).collect::<Vec<String>>();
        q.push("UNNEST(").bind(column(|c| c.id.as_str())).push("::text[], ");
        q.bind(column(|c| c.external.as_str())).push("::text[], ");
        q.bind(column(|c| c.subject_hash.as_str())).push("::text[]) AS u(id, external_id, subject_hash)");
    } else {
        q.push("(");
        for (i, c) in new.iter().enumerate() {
            q.push(if i == 0 { "SELECT " } else { " UNION ALL SELECT " });
            q.bind(c.id.as_str()).push(" AS id, ").bind(c.external.as_str()).push(" AS external_id, ");
            q.bind(c.subject_hash.as_str()).push(" AS subject_hash");
        }
        q.push(") AS u");
    }
    q.push(" WHERE NOT EXISTS (SELECT 1 FROM erased_customers e WHERE e.tenant_id = ").bind(tenant.as_str());
    q.push(" AND e.subject_hash = u.subject_hash) ON CONFLICT (tenant_id, external_id) DO NOTHING");
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

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};

    use super::*;
    use crate::store::testing::{memory_db, tenant_row};

    /// More customers than SQLite takes terms of one compound SELECT (500), as an import
    /// of 1 000 answers brings: all created once, and found again the second time.
    #[tokio::test]
    async fn a_thousand_new_customers_are_created_once_and_found_again() {
        let db = memory_db().await;
        db.migrate().await.unwrap();
        tenant_row("t1", 0).into_active_model().insert(db.conn()).await.unwrap();
        let t = TenantId("t1".into());
        let refs: Vec<CustomerRef> = (0..1_000).map(|i| CustomerRef(format!("c{i}"))).collect();
        let refs: Vec<&CustomerRef> = refs.iter().collect();
        let now = time::from_micros(1);

        let first = ensure_many(db.conn(), &t, &refs, now).await.unwrap();
        let again = ensure_many(db.conn(), &t, &refs, now).await.unwrap();

        assert_eq!(first.len(), 1_000);
        let ids = |cs: &[Customer]| {
            let mut v: Vec<(String, String)> = cs.iter().map(|c| (c.external.0.clone(), c.id.0.clone())).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&first), ids(&again), "the second call finds the same rows");
        assert!(first.iter().all(|c| !c.id.0.is_empty() && c.erased_at.is_none()));
    }
}
