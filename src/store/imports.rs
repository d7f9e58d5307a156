//! Imported answers: which source ids were taken before (docs/imports.md).

use std::collections::HashMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::entities::{Scoped, imported_response};
use super::error::Result;
use crate::domain::time::{self, Timestamp};
use crate::domain::{ResponseId, TenantId};

/// What an earlier import of a source id became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub response_id: ResponseId,
    /// The fingerprint of what that import said.
    pub request_hash: String,
}

/// The earlier imports among these source ids.
pub async fn existing(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    external_ids: &[&str],
) -> Result<HashMap<String, Imported>> {
    if external_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = imported_response::Entity::scoped(tenant)
        .filter(imported_response::Column::ExternalId.is_in(external_ids.iter().copied()))
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.external_id, Imported { response_id: ResponseId(r.id), request_hash: r.request_hash }))
        .collect())
}

/// Claims source ids for new responses, `(external id, response id, fingerprint)`;
/// returns the response ids whose claim held. A claim another import made meanwhile
/// is skipped, not an error, so concurrent runs of one import each take a share.
pub async fn claim(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    claims: &[(&str, &ResponseId, &str)],
    now: Timestamp,
) -> Result<Vec<ResponseId>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let rows = claims.iter().map(|(external, id, hash)| imported_response::ActiveModel {
        id: Set(id.0.clone()),
        tenant_id: Set(tenant.0.clone()),
        external_id: Set((*external).to_owned()),
        request_hash: Set((*hash).to_owned()),
        created_at: Set(time::to_micros(now)),
    });
    let inserted = imported_response::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([imported_response::Column::TenantId, imported_response::Column::ExternalId])
                .do_nothing()
                .to_owned(),
        )
        .exec_with_returning(conn)
        .await;
    match inserted {
        Ok(models) => Ok(models.into_iter().map(|m| ResponseId(m.id)).collect()),
        Err(sea_orm::DbErr::RecordNotInserted) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}
