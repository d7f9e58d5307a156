//! `rapport.v1.SurveyService`.

use tonic::Request;

use super::convert::{self as c};
use super::gate::{principal, secret_caller};
use super::pb::{self, survey_service_server::SurveyService};
use super::{R, ok};
use crate::domain::listing::{PageRequest, ResponseFilter};
use crate::domain::model::{IssueOutcome, KeyKind};
use crate::domain::stats::Grain;
use crate::domain::{CustomerRef, ResponseId, SurveyId, input};
use crate::error::AppError;
use crate::service::Services;
use crate::service::invitations::IssueRequest;
use crate::service::metrics::{MetricScope, MetricsRequest};
use crate::service::responses::{RecordRequest, ResponseChange, ResponseRef, Target};

/// The survey API over gRPC.
#[derive(Clone)]
pub struct SurveyApi {
    svc: Services,
}

impl SurveyApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

#[tonic::async_trait]
impl SurveyService for SurveyApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "CreateSurvey"))]
    async fn create_survey(&self, req: Request<pb::CreateSurveyRequest>) -> R<pb::Survey> {
        let p = principal(&req)?;
        let draft = c::survey_draft(req.into_inner().survey)?;
        let s = self.svc.create_survey(&p, draft).await?;
        ok(c::pb_survey(&s))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetSurvey"))]
    async fn get_survey(&self, req: Request<pb::GetSurveyRequest>) -> R<pb::Survey> {
        let p = principal(&req)?;
        let id = SurveyId::parse(&req.get_ref().id, "id")?;
        ok(c::pb_survey(&self.svc.get_survey(&p, &id).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListSurveys"))]
    async fn list_surveys(&self, req: Request<pb::ListSurveysRequest>) -> R<pb::ListSurveysResponse> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let kind = c::opt_kind(r.kind, "kind")?;
        let out = self.svc.list_surveys(&p, kind, r.include_archived, page).await?;
        ok(pb::ListSurveysResponse {
            surveys: out.items.iter().map(c::pb_survey).collect(),
            next_page_token: out.next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateSurvey"))]
    async fn update_survey(&self, req: Request<pb::UpdateSurveyRequest>) -> R<pb::Survey> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let id = SurveyId::parse(r.survey.as_ref().map(|s| s.id.as_str()).unwrap_or(""), "survey.id")?;
        let patch = c::survey_patch(r.survey, r.update_mask)?;
        ok(c::pb_survey(&self.svc.update_survey(&p, &id, patch).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ArchiveSurvey"))]
    async fn archive_survey(&self, req: Request<pb::ArchiveSurveyRequest>) -> R<pb::Survey> {
        let p = principal(&req)?;
        let id = SurveyId::parse(&req.get_ref().id, "id")?;
        ok(c::pb_survey(&self.svc.archive_survey(&p, &id).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "CheckEligibility"))]
    async fn check_eligibility(&self, req: Request<pb::CheckEligibilityRequest>) -> R<pb::Eligibility> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let survey = SurveyId::parse(&r.survey_id, "survey_id")?;
        let customer = CustomerRef::parse(&r.customer_id, "customer_id")?;
        let e = self.svc.check_eligibility(&p, &survey, &customer).await?;
        ok(c::pb_eligibility(&e))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "IssueSurvey"))]
    async fn issue_survey(&self, req: Request<pb::IssueSurveyRequest>) -> R<pb::IssueSurveyResponse> {
        // Publishable keys may issue in-app surveys.
        let p = principal(&req)?;
        let r = req.into_inner();
        let parsed = IssueRequest {
            survey: SurveyId::parse(&r.survey_id, "survey_id")?,
            customer: CustomerRef::parse(&r.customer_id, "customer_id")?,
            channel: c::channel(r.channel)?,
            properties: c::props(&r.properties, "properties")?,
            idempotency_key: input::idempotency_key(&r.idempotency_key)?,
            force: r.force,
        };
        let now = self.svc.clock.now();
        let out = match p.kind {
            KeyKind::Publishable => self.svc.issue_in_app(&p, parsed, &r.customer_hash).await,
            // A read key is refused there (require_secret), after the gate refused it.
            KeyKind::Secret | KeyKind::Read => self.svc.issue_survey(&p, parsed).await,
        }?;
        ok(match out {
            IssueOutcome::Issued { invitation, token, eligibility } => pb::IssueSurveyResponse {
                issued: true,
                invitation: Some(c::pb_invitation(&invitation, now)),
                token,
                eligibility: Some(c::pb_eligibility(&eligibility)),
                suppression_id: String::new(),
            },
            IssueOutcome::Suppressed { suppression_id, eligibility } => pb::IssueSurveyResponse {
                issued: false,
                invitation: None,
                token: String::new(),
                eligibility: Some(c::pb_eligibility(&eligibility)),
                suppression_id: suppression_id.0,
            },
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetInvitation"))]
    async fn get_invitation(&self, req: Request<pb::GetInvitationRequest>) -> R<pb::GetInvitationResponse> {
        let token = &req.get_ref().token;
        if token.is_empty() {
            return Err(AppError::invalid("token", "is required").into());
        }
        let inv = self.svc.invitation_by_token(token).await?;
        let branding = self.svc.form_branding(&inv.tenant, &inv.survey).await?;
        ok(pb::GetInvitationResponse {
            invitation: Some(c::pb_invitation(&inv.invitation, self.svc.clock.now())),
            form: Some(c::pb_form(&inv.survey, &branding)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "DismissInvitation"))]
    async fn dismiss_invitation(&self, req: Request<pb::DismissInvitationRequest>) -> R<pb::Invitation> {
        let token = &req.get_ref().token;
        if token.is_empty() {
            return Err(AppError::invalid("token", "is required").into());
        }
        let inv = self.svc.dismiss_invitation(token).await?;
        ok(c::pb_invitation(&inv, self.svc.clock.now()))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "SetCustomerSubscription"))]
    async fn set_customer_subscription(
        &self,
        req: Request<pb::SetCustomerSubscriptionRequest>,
    ) -> R<pb::CustomerSubscription> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let customer = CustomerRef::parse(&r.customer_id, "customer_id")?;
        let at = self.svc.set_subscription(&p, &customer, r.unsubscribed).await?;
        ok(pb::CustomerSubscription {
            customer_id: customer.0,
            unsubscribed: at.is_some(),
            unsubscribe_time: c::opt_ts(at),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RecordResponse"))]
    async fn record_response(&self, req: Request<pb::RecordResponseRequest>) -> R<pb::Response> {
        use pb::record_response_request::Target as T;
        // The direct form needs a secret key, checked before the input is read; a
        // token needs none.
        let direct_caller = match req.get_ref().target {
            Some(T::Direct(_)) => Some(secret_caller(&self.svc, &req).await?),
            _ => None,
        };
        let r = req.into_inner();
        let target = match r.target {
            Some(T::Token(t)) if !t.is_empty() => Target::Token(t),
            Some(T::Direct(d)) => Target::Direct {
                principal: direct_caller
                    .ok_or_else(|| AppError::Unauthenticated("a direct answer needs a secret key".into()))?,
                survey: SurveyId::parse(&d.survey_id, "direct.survey_id")?,
                customer: CustomerRef::parse(&d.customer_id, "direct.customer_id")?,
            },
            _ => return Err(AppError::invalid("target", "give a token or a survey and customer (direct)").into()),
        };
        let parsed = RecordRequest {
            target,
            score: r.score,
            comment: input::comment(&r.comment)?,
            properties: c::props(&r.properties, "properties")?,
            idempotency_key: input::idempotency_key(&r.idempotency_key)?,
        };
        ok(c::pb_response(&self.svc.record_response(parsed).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateResponse"))]
    async fn update_response(&self, req: Request<pb::UpdateResponseRequest>) -> R<pb::Response> {
        use pb::update_response_request::Target as T;
        let target = match &req.get_ref().target {
            Some(T::ResponseId(id)) => ResponseRef::Id {
                principal: secret_caller(&self.svc, &req).await?,
                id: ResponseId::parse(id, "response_id")?,
            },
            Some(T::Token(t)) if !t.is_empty() => ResponseRef::Token(t.clone()),
            _ => return Err(AppError::invalid("target", "give a response_id or a token").into()),
        };
        let r = req.into_inner();
        let change =
            ResponseChange { score: r.score, comment: r.comment, properties: c::props(&r.properties, "properties")? };
        ok(c::pb_response(&self.svc.update_response(target, change).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetResponse"))]
    async fn get_response(&self, req: Request<pb::GetResponseRequest>) -> R<pb::Response> {
        let p = principal(&req)?;
        let id = ResponseId::parse(&req.get_ref().id, "id")?;
        ok(c::pb_response(&self.svc.get_response(&p, &id).await?))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListResponses"))]
    async fn list_responses(&self, req: Request<pb::ListResponsesRequest>) -> R<pb::ListResponsesResponse> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let filter = ResponseFilter {
            survey: (!r.survey_id.is_empty()).then(|| SurveyId::parse(&r.survey_id, "survey_id")).transpose()?,
            customer_row: None,
            start: c::parse_opt_ts(&r.start_time, "start_time")?,
            end: c::parse_opt_ts(&r.end_time, "end_time")?,
            bucket: c::opt_bucket(r.bucket, "bucket")?,
        };
        let customer =
            (!r.customer_id.is_empty()).then(|| CustomerRef::parse(&r.customer_id, "customer_id")).transpose()?;
        let out = self.svc.list_responses(&p, filter, customer, page).await?;
        ok(pb::ListResponsesResponse {
            responses: out.items.iter().map(c::pb_response).collect(),
            next_page_token: out.next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "GetSurveyMetrics"))]
    async fn get_survey_metrics(&self, req: Request<pb::GetSurveyMetricsRequest>) -> R<pb::GetSurveyMetricsResponse> {
        use pb::get_survey_metrics_request::Scope;
        let p = principal(&req)?;
        let r = req.into_inner();
        let scope = match r.scope {
            Some(Scope::SurveyId(id)) => MetricScope::Survey(SurveyId::parse(&id, "survey_id")?),
            Some(Scope::Kind(k)) => MetricScope::Kind(c::kind(k, "kind")?),
            None => return Err(AppError::invalid("scope", "give a survey_id or a kind").into()),
        };
        let grain = match pb::Interval::try_from(r.interval) {
            Ok(pb::Interval::Unspecified) => None,
            Ok(pb::Interval::Day) => Some(Grain::Day),
            Ok(pb::Interval::Week) => Some(Grain::Week),
            Ok(pb::Interval::Month) => Some(Grain::Month),
            Err(_) => return Err(AppError::invalid("interval", "is not a known interval").into()),
        };
        let parsed = MetricsRequest {
            scope,
            start: c::parse_opt_ts(&r.start_time, "start_time")?,
            end: c::parse_opt_ts(&r.end_time, "end_time")?,
            filter: c::props(&r.filter, "filter")?,
            grain,
        };
        ok(c::pb_metrics(&self.svc.survey_metrics(&p, parsed).await?))
    }
}
