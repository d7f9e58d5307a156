//! `rapport.v1.FollowUpService`.

use tonic::{Request, Response, Status};

use super::convert as c;
use super::gate::principal;
use super::pb::{self, follow_up_service_server::FollowUpService, update_follow_up_request::Action};
use crate::domain::follow_up::FollowUpAction;
use crate::domain::listing::{FollowUpFilter, FollowUpOrder, PageRequest};
use crate::domain::{CustomerRef, FollowUpId, SurveyId, input};
use crate::error::AppError;
use crate::service::Services;
use crate::service::follow_ups::check_action;

/// The follow-up API over gRPC.
#[derive(Clone)]
pub struct FollowUpApi {
    svc: Services,
}

impl FollowUpApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

#[tonic::async_trait]
impl FollowUpService for FollowUpApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "GetFollowUp"))]
    async fn get_follow_up(&self, req: Request<pb::GetFollowUpRequest>) -> Result<Response<pb::FollowUp>, Status> {
        let p = principal(&req)?;
        let id = FollowUpId::parse(&req.get_ref().id, "id")?;
        let f = self.svc.get_follow_up(&p, &id).await?;
        Ok(Response::new(c::pb_follow_up(&f)))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListFollowUps"))]
    async fn list_follow_ups(
        &self,
        req: Request<pb::ListFollowUpsRequest>,
    ) -> Result<Response<pb::ListFollowUpsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let filter = FollowUpFilter {
            status: c::opt_status(r.status)?,
            survey: (!r.survey_id.is_empty()).then(|| SurveyId::parse(&r.survey_id, "survey_id")).transpose()?,
            customer_row: None,
            assignee: (!r.assignee.is_empty()).then(|| r.assignee.clone()),
            overdue: r.overdue,
            order: FollowUpOrder::parse(&r.order_by)?,
        };
        if let (FollowUpOrder::DueFirst, Some(after)) = (filter.order, &page.after) {
            FollowUpOrder::parse_due_position(after)?;
        }
        let customer =
            (!r.customer_id.is_empty()).then(|| CustomerRef::parse(&r.customer_id, "customer_id")).transpose()?;
        let out = self.svc.list_follow_ups(&p, filter, customer, page).await?;
        Ok(Response::new(pb::ListFollowUpsResponse {
            follow_ups: out.items.iter().map(c::pb_follow_up).collect(),
            next_page_token: out.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateFollowUp"))]
    async fn update_follow_up(
        &self,
        req: Request<pb::UpdateFollowUpRequest>,
    ) -> Result<Response<pb::FollowUp>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let id = FollowUpId::parse(&r.id, "id")?;
        let author = input::text("author", &r.author, 200, false)?;
        let action = match r.action {
            Some(Action::Acknowledge(_)) => FollowUpAction::Acknowledge,
            Some(Action::Resolve(x)) => FollowUpAction::Resolve { resolution: x.resolution },
            Some(Action::Dismiss(x)) => FollowUpAction::Dismiss { reason: x.reason },
            Some(Action::Reopen(x)) => FollowUpAction::Reopen { reason: x.reason },
            Some(Action::Assign(x)) => FollowUpAction::Assign { assignee: x.assignee },
            Some(Action::SetPriority(x)) => FollowUpAction::SetPriority { priority: c::priority(x.priority)? },
            Some(Action::AddNote(x)) => FollowUpAction::AddNote { body: x.body },
            None => return Err(AppError::invalid("action", "name one action").into()),
        };
        let action = check_action(action)?;
        let f = self.svc.update_follow_up(&p, &id, author, action).await?;
        Ok(Response::new(c::pb_follow_up(&f)))
    }
}
