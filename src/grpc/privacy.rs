//! `rapport.v1.PrivacyService`: the tenant's audit log; erasure, export and retention.

use tonic::{Request, Response, Status};

use super::convert::ts;
use super::gate::principal;
use super::pb::{self, privacy_service_server::PrivacyService};
use super::webhooks::json_struct;
use crate::domain::CustomerRef;
use crate::domain::listing::PageRequest;
use crate::domain::privacy::{AuditEvent, RetentionPolicy};
use crate::service::Services;

/// The privacy API over gRPC.
#[derive(Clone)]
pub struct PrivacyApi {
    svc: Services,
}

impl PrivacyApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

pub(crate) fn pb_audit_event(e: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.clone(),
        tenant_id: e.tenant.0.clone(),
        actor: e.actor.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        details: Some(json_struct(&e.details)),
        time: Some(ts(e.at)),
    }
}

/// The records of an export, as the server stream sends them.
pub type ExportStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ExportRecord, Status>> + Send>>;

fn pb_policy(p: RetentionPolicy, at: Option<crate::domain::time::Timestamp>) -> pb::RetentionPolicy {
    pb::RetentionPolicy {
        activity_event_days: p.activity_event_days,
        comment_days: p.comment_days,
        invitation_days: p.invitation_days,
        delivery_log_days: p.delivery_log_days,
        update_time: at.map(ts),
    }
}

#[tonic::async_trait]
impl PrivacyService for PrivacyApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "GetRetentionPolicy"))]
    async fn get_retention_policy(
        &self,
        req: Request<pb::GetRetentionPolicyRequest>,
    ) -> Result<Response<pb::RetentionPolicy>, Status> {
        let p = principal(&req)?;
        let (policy, at) = self.svc.retention_policy(&p).await?;
        Ok(Response::new(pb_policy(policy, at)))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateRetentionPolicy"))]
    async fn update_retention_policy(
        &self,
        req: Request<pb::UpdateRetentionPolicyRequest>,
    ) -> Result<Response<pb::RetentionPolicy>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let v = r.policy.unwrap_or_default();
        let values = RetentionPolicy {
            activity_event_days: v.activity_event_days,
            comment_days: v.comment_days,
            invitation_days: v.invitation_days,
            delivery_log_days: v.delivery_log_days,
        };
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let (policy, at) = self.svc.update_retention_policy(&p, &mask, values).await?;
        Ok(Response::new(pb_policy(policy, at)))
    }

    type ExportCustomerStream = ExportStream;

    #[tracing::instrument(skip_all, fields(rpc.method = "ExportCustomer"))]
    async fn export_customer(
        &self,
        req: Request<pb::ExportCustomerRequest>,
    ) -> Result<Response<Self::ExportCustomerStream>, Status> {
        use tokio_stream::StreamExt as _;
        let p = principal(&req)?;
        let customer = CustomerRef::parse(&req.get_ref().customer_id, "customer_id")?;
        let rx = self.svc.export_customer(&p, &customer).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| {
            r.map(|rec| pb::ExportRecord { kind: rec.kind.to_owned(), data: Some(json_struct(&rec.data)) })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "EraseCustomer"))]
    async fn erase_customer(
        &self,
        req: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        let p = principal(&req)?;
        let customer = CustomerRef::parse(&req.get_ref().customer_id, "customer_id")?;
        let r = self.svc.erase_customer(&p, &customer).await?;
        Ok(Response::new(pb::EraseCustomerResponse {
            erasure_id: r.erasure_id,
            found: r.found,
            responses: r.responses as i64,
            invitations: r.invitations as i64,
            follow_ups: r.follow_ups as i64,
            activity_events: r.activity_events as i64,
            events: r.events as i64,
            deliveries: r.deliveries as i64,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListAuditEvents"))]
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let out = self.svc.list_audit_events(&p, page).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: out.items.iter().map(pb_audit_event).collect(),
            next_page_token: out.next_page_token,
        }))
    }
}
