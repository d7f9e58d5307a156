//! `rapport.v1.ImportService`: history from another tool (docs/imports.md).

use tonic::Request;

use super::convert::{self as c};
use super::engagement::{events_response, raw_events};
use super::gate::principal;
use super::pb::{self, import_service_server::ImportService};
use super::{R, ok};
use crate::domain::engagement::MAX_IMPORT_DAYS;
use crate::error::{AppError, FieldViolation};
use crate::service::Services;
use crate::service::imports::{ImportOptions, ImportOutcome, RawImport};

/// The import API over gRPC.
#[derive(Clone)]
pub struct ImportApi {
    svc: Services,
}

impl ImportApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

#[tonic::async_trait]
impl ImportService for ImportApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "ImportResponses"))]
    async fn import_responses(&self, req: Request<pb::ImportResponsesRequest>) -> R<pb::ImportResponsesResponse> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let options = ImportOptions { open_follow_ups: r.open_follow_ups, emit_events: r.emit_events };
        let mut bad = Vec::new();
        let mut raw = Vec::with_capacity(r.responses.len());
        let mut ids = Vec::with_capacity(r.responses.len());
        for (i, x) in r.responses.into_iter().enumerate() {
            let recorded_at = c::parse_opt_ts(&x.recorded_time, &format!("responses[{i}].recorded_time"));
            let invited_at = c::parse_opt_ts(&x.invitation_time, &format!("responses[{i}].invitation_time"));
            let (recorded_at, invited_at) = match (recorded_at, invited_at) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    bad.push(e);
                    (None, None)
                }
            };
            ids.push(x.external_id.clone());
            raw.push(RawImport {
                external_id: x.external_id,
                survey_id: x.survey_id,
                customer_id: x.customer_id,
                score: x.score,
                recorded_at,
                invited_at,
                comment: x.comment,
                properties: x.properties.into_iter().collect(),
            });
        }
        if !bad.is_empty() {
            let v: Vec<FieldViolation> = bad
                .into_iter()
                .flat_map(|e| match e {
                    AppError::InvalidArgument(v) => v,
                    _ => Vec::new(),
                })
                .collect();
            return Err(AppError::InvalidArgument(v).into());
        }
        let outcomes = self.svc.import_responses(&p, raw, options).await?;
        let mut resp = pb::ImportResponsesResponse::default();
        for (i, (o, external_id)) in outcomes.into_iter().zip(ids).enumerate() {
            let mut result = pb::ImportedResponseResult { index: i as i32, external_id, ..Default::default() };
            match o {
                ImportOutcome::Imported { response_id } => {
                    resp.imported += 1;
                    result.status = pb::ImportStatus::Imported as i32;
                    result.response_id = response_id.0;
                }
                ImportOutcome::Duplicate { response_id, same } => {
                    resp.duplicates += 1;
                    result.status = pb::ImportStatus::Duplicate as i32;
                    result.response_id = response_id.map(|r| r.0).unwrap_or_default();
                    result.reason = match same {
                        Some(true) => "imported before with the same content",
                        Some(false) => "imported before with different content; the first one is kept",
                        None => "repeated within this call; the first one is kept",
                    }
                    .into();
                }
                ImportOutcome::Rejected { field, reason } => {
                    resp.rejected += 1;
                    result.status = pb::ImportStatus::Rejected as i32;
                    result.field = format!("responses[{i}].{field}");
                    result.reason = reason;
                }
            }
            resp.results.push(result);
        }
        ok(resp)
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ImportEvents"))]
    async fn import_events(&self, req: Request<pb::ImportEventsRequest>) -> R<pb::RecordEventsResponse> {
        let p = principal(&req)?;
        let (raw, ids, bad_times) = raw_events(req.into_inner().events);
        let outcomes = self.svc.record_events_within(&p, raw, MAX_IMPORT_DAYS).await?;
        ok(events_response(outcomes, ids, bad_times))
    }
}
