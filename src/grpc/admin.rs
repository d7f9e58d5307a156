//! `rapport.v1.AdminService`: tenants, keys and audit logs across tenants, for the
//! holder of the operator token (`RAPPORT_OPERATOR_TOKEN`, docs/privacy.md). The token
//! is compared by its SHA-256 hash in constant time; without a configured token every
//! call is UNAUTHENTICATED.

use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::convert::{opt_ts, parse_opt_ts, ts};
use super::gate::bearer;
use super::pb::{self, admin_service_server::AdminService};
use super::privacy::pb_audit_event;
use crate::domain::listing::PageRequest;
use crate::domain::model::KeyKind;
use crate::domain::privacy::{Actor, ApiKeyInfo};
use crate::error::AppError;
use crate::service::Services;

/// Fewest characters of an operator token.
pub const MIN_OPERATOR_TOKEN_CHARS: usize = 32;

/// The admin API over gRPC.
#[derive(Clone)]
pub struct AdminApi {
    svc: Services,
    /// SHA-256 of the operator token; `None`: the service is off.
    token: Option<[u8; 32]>,
}

impl AdminApi {
    /// `token`: the operator token, at least [`MIN_OPERATOR_TOKEN_CHARS`] characters
    /// (checked at start-up by [`check_operator_token`]).
    pub fn new(svc: Services, token: Option<&str>) -> Self {
        Self { svc, token: token.map(|t| Sha256::digest(t.as_bytes()).into()) }
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Err(Status::unauthenticated("the admin service is off: RAPPORT_OPERATOR_TOKEN is not set"));
        };
        let given: [u8; 32] = Sha256::digest(bearer(req.metadata().as_ref()).unwrap_or_default().as_bytes()).into();
        let differs = given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return Err(Status::unauthenticated("send the operator token as `authorization: Bearer <token>`"));
        }
        Ok(())
    }
}

/// Refuses an operator token too short to be one.
pub fn check_operator_token(token: Option<&str>) -> anyhow::Result<()> {
    match token {
        Some(t) if t.trim().chars().count() < MIN_OPERATOR_TOKEN_CHARS => anyhow::bail!(
            "RAPPORT_OPERATOR_TOKEN must be at least {MIN_OPERATOR_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
        ),
        _ => Ok(()),
    }
}

fn pb_kind(k: KeyKind) -> pb::ApiKeyKind {
    match k {
        KeyKind::Secret => pb::ApiKeyKind::Secret,
        KeyKind::Publishable => pb::ApiKeyKind::Publishable,
        KeyKind::Read => pb::ApiKeyKind::Read,
    }
}

fn pb_key(k: &ApiKeyInfo) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id.0.clone(),
        tenant_id: k.tenant.0.clone(),
        kind: pb_kind(k.kind) as i32,
        prefix: k.prefix.clone(),
        create_time: Some(ts(k.created_at)),
        last_use_time: opt_ts(k.last_used_at),
        expire_time: opt_ts(k.expires_at),
        revoke_time: opt_ts(k.revoked_at),
    }
}

fn tenant_field(raw: &str) -> Result<String, Status> {
    crate::domain::input::text("tenant", raw, 200, true).map_err(Status::from)
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "CreateTenant"))]
    async fn create_tenant(
        &self,
        req: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreatedApiKey>, Status> {
        self.authorize(&req)?;
        let key = self.svc.create_tenant_as(Actor::Operator, &req.into_inner().name).await?;
        let info = self.svc.list_keys(key.tenant.as_str(), PageRequest::parse(1, "")?).await;
        let info = info?.items.into_iter().next();
        Ok(Response::new(pb::CreatedApiKey { key: info.as_ref().map(pb_key), secret: key.secret }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListTenants"))]
    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let out = self.svc.list_tenants(page).await?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: out
                .items
                .iter()
                .map(|t| pb::Tenant { id: t.id.0.clone(), name: t.name.clone(), create_time: Some(ts(t.created_at)) })
                .collect(),
            next_page_token: out.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "CreateApiKey"))]
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreatedApiKey>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let tenant = tenant_field(&r.tenant)?;
        let kind = match pb::ApiKeyKind::try_from(r.kind) {
            Ok(pb::ApiKeyKind::Unspecified | pb::ApiKeyKind::Secret) => KeyKind::Secret,
            Ok(pb::ApiKeyKind::Publishable) => KeyKind::Publishable,
            Ok(pb::ApiKeyKind::Read) => KeyKind::Read,
            Err(_) => return Err(AppError::invalid("kind", "is not a known key kind").into()),
        };
        let expires = parse_opt_ts(&r.expire_time, "expire_time")?;
        let key = self.svc.create_key_as(Actor::Operator, &tenant, kind, expires).await?;
        let info = self.svc.key_info(&key.id).await?;
        Ok(Response::new(pb::CreatedApiKey { key: Some(pb_key(&info)), secret: key.secret }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListApiKeys"))]
    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let tenant = tenant_field(&r.tenant)?;
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let out = self.svc.list_keys(&tenant, page).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            keys: out.items.iter().map(pb_key).collect(),
            next_page_token: out.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RevokeApiKey"))]
    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        self.authorize(&req)?;
        let id = req.into_inner().id;
        let key = self.svc.revoke_key_as(Actor::Operator, &id, None).await?;
        Ok(Response::new(pb_key(&key)))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListTenantAuditEvents"))]
    async fn list_tenant_audit_events(
        &self,
        req: Request<pb::ListTenantAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let tenant = tenant_field(&r.tenant)?;
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let out = self.svc.tenant_audit_events(&tenant, page).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: out.items.iter().map(pb_audit_event).collect(),
            next_page_token: out.next_page_token,
        }))
    }
}
