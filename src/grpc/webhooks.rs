//! `rapport.v1.WebhookService` and `rapport.v1.EventService`.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::{opt_ts, parse_opt_ts, ts};
use super::gate::principal;
use super::pb::{self, event_service_server::EventService, webhook_service_server::WebhookService};
use crate::domain::events::Event;
use crate::domain::listing::{DeliveryFilter, PageRequest};
use crate::domain::model::{Delivery, DeliveryStatus, WebhookEndpoint};
use crate::error::AppError;
use crate::service::Services;
use crate::service::webhooks::{EndpointInput, EndpointPatch, ReplayScope, stream_filter};

/// Events read per query while streaming.
const STREAM_BATCH: u64 = 500;

/// The webhook API over gRPC.
#[derive(Clone)]
pub struct WebhookApi {
    svc: Services,
}

impl WebhookApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

/// The event stream over gRPC.
#[derive(Clone)]
pub struct EventApi {
    svc: Services,
}

impl EventApi {
    pub fn new(svc: Services) -> Self {
        Self { svc }
    }
}

fn pb_endpoint(e: &WebhookEndpoint) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e.event_types.clone(),
        survey_ids: e.survey_ids.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        failing_since: opt_ts(e.failing_since),
        create_time: Some(ts(e.created_at)),
        update_time: Some(ts(e.updated_at)),
    }
}

fn pb_delivery_status(s: DeliveryStatus) -> pb::DeliveryStatus {
    match s {
        DeliveryStatus::Pending => pb::DeliveryStatus::Pending,
        DeliveryStatus::Succeeded => pb::DeliveryStatus::Succeeded,
        DeliveryStatus::Failed => pb::DeliveryStatus::Failed,
        DeliveryStatus::DeadLettered => pb::DeliveryStatus::DeadLettered,
        DeliveryStatus::Cancelled => pb::DeliveryStatus::Cancelled,
    }
}

fn delivery_status(raw: i32) -> Result<Option<DeliveryStatus>, AppError> {
    Ok(match pb::DeliveryStatus::try_from(raw) {
        Ok(pb::DeliveryStatus::Unspecified) => None,
        Ok(pb::DeliveryStatus::Pending) => Some(DeliveryStatus::Pending),
        Ok(pb::DeliveryStatus::Succeeded) => Some(DeliveryStatus::Succeeded),
        Ok(pb::DeliveryStatus::Failed) => Some(DeliveryStatus::Failed),
        Ok(pb::DeliveryStatus::DeadLettered) => Some(DeliveryStatus::DeadLettered),
        Ok(pb::DeliveryStatus::Cancelled) => Some(DeliveryStatus::Cancelled),
        Err(_) => return Err(AppError::invalid("status", "is not a known delivery status")),
    })
}

fn pb_delivery(d: &Delivery) -> pb::Delivery {
    pb::Delivery {
        id: d.id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        event_id: d.event_id.clone(),
        event_sequence: d.event_sequence,
        event_type: d.event_type.clone(),
        status: pb_delivery_status(d.status) as i32,
        next_attempt_time: opt_ts(d.next_attempt_at),
        attempts: d
            .attempts
            .iter()
            .map(|a| pb::DeliveryAttempt {
                attempt: a.attempt,
                time: Some(ts(a.at)),
                status_code: a.status_code.unwrap_or(0),
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
        create_time: Some(ts(d.created_at)),
    }
}

/// A JSON value as a protobuf `Value`.
fn json_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => {
            Kind::ListValue(prost_types::ListValue { values: a.iter().map(json_value).collect() })
        }
        serde_json::Value::Object(_) => Kind::StructValue(json_struct(v)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub(crate) fn json_struct(v: &serde_json::Value) -> prost_types::Struct {
    prost_types::Struct {
        fields: v.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), json_value(v))).collect()).unwrap_or_default(),
    }
}

pub fn pb_event(e: &Event) -> pb::Event {
    pb::Event {
        id: e.id.clone(),
        sequence: e.sequence,
        r#type: e.event_type.clone(),
        time: Some(ts(e.created_at)),
        data: Some(json_struct(&e.data)),
    }
}

fn id_field(raw: &str, field: &str) -> Result<String, Status> {
    Ok(crate::domain::SurveyId::parse(raw, field)?.0)
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    #[tracing::instrument(skip_all, fields(rpc.method = "CreateWebhookEndpoint"))]
    async fn create_webhook_endpoint(
        &self,
        req: Request<pb::CreateWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpointWithSecret>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let input = EndpointInput {
            url: r.url,
            description: r.description,
            event_types: r.event_types,
            survey_ids: r.survey_ids,
        };
        let (e, secret) = self.svc.create_endpoint(&p, input).await?;
        Ok(Response::new(pb::WebhookEndpointWithSecret { endpoint: Some(pb_endpoint(&e)), secret }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListWebhookEndpoints"))]
    async fn list_webhook_endpoints(
        &self,
        req: Request<pb::ListWebhookEndpointsRequest>,
    ) -> Result<Response<pb::ListWebhookEndpointsResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let out = self.svc.list_endpoints(&p, page).await?;
        Ok(Response::new(pb::ListWebhookEndpointsResponse {
            endpoints: out.items.iter().map(pb_endpoint).collect(),
            next_page_token: out.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "UpdateWebhookEndpoint"))]
    async fn update_webhook_endpoint(
        &self,
        req: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let e = r.endpoint.ok_or_else(|| AppError::invalid("endpoint", "is required"))?;
        let id = id_field(&e.id, "endpoint.id")?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(AppError::invalid("update_mask", "name at least one field to change").into());
        }
        let mut patch = EndpointPatch::default();
        for path in paths {
            match path.as_str() {
                "url" => patch.url = Some(e.url.clone()),
                "description" => patch.description = Some(e.description.clone()),
                "event_types" => patch.event_types = Some(e.event_types.clone()),
                "survey_ids" => patch.survey_ids = Some(e.survey_ids.clone()),
                "enabled" => patch.enabled = Some(e.enabled),
                other => {
                    return Err(AppError::invalid(
                        "update_mask",
                        format!("unknown or read-only field {:?}", crate::domain::input::quote_prefix(other)),
                    )
                    .into());
                }
            }
        }
        let out = self.svc.update_endpoint(&p, &id, patch).await?;
        Ok(Response::new(pb_endpoint(&out)))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "RotateWebhookSecret"))]
    async fn rotate_webhook_secret(
        &self,
        req: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::WebhookEndpointWithSecret>, Status> {
        let p = principal(&req)?;
        let id = id_field(&req.get_ref().id, "id")?;
        let (e, secret) = self.svc.rotate_endpoint_secret(&p, &id).await?;
        Ok(Response::new(pb::WebhookEndpointWithSecret { endpoint: Some(pb_endpoint(&e)), secret }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "DeleteWebhookEndpoint"))]
    async fn delete_webhook_endpoint(
        &self,
        req: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> Result<Response<pb::DeleteWebhookEndpointResponse>, Status> {
        let p = principal(&req)?;
        let id = id_field(&req.get_ref().id, "id")?;
        self.svc.delete_endpoint(&p, &id).await?;
        Ok(Response::new(pb::DeleteWebhookEndpointResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ListDeliveries"))]
    async fn list_deliveries(
        &self,
        req: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let page = PageRequest::parse(r.page_size, &r.page_token)?;
        let filter = DeliveryFilter {
            endpoint_id: (!r.endpoint_id.is_empty()).then(|| id_field(&r.endpoint_id, "endpoint_id")).transpose()?,
            event_id: (!r.event_id.is_empty()).then(|| id_field(&r.event_id, "event_id")).transpose()?,
            status: delivery_status(r.status)?,
        };
        let out = self.svc.list_deliveries(&p, filter, page).await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: out.items.iter().map(pb_delivery).collect(),
            next_page_token: out.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "ReplayEvents"))]
    async fn replay_events(
        &self,
        req: Request<pb::ReplayEventsRequest>,
    ) -> Result<Response<pb::ReplayEventsResponse>, Status> {
        use pb::replay_events_request::Scope;
        let p = principal(&req)?;
        let r = req.into_inner();
        let endpoint = id_field(&r.endpoint_id, "endpoint_id")?;
        let scope = match r.scope {
            Some(Scope::EventId(id)) => ReplayScope::Event(id_field(&id, "event_id")?),
            Some(Scope::TimeRange(t)) => {
                let start = parse_opt_ts(&t.start_time, "time_range.start_time")?;
                let end = parse_opt_ts(&t.end_time, "time_range.end_time")?;
                match (start, end) {
                    (Some(s), Some(e)) => ReplayScope::Window(s, e),
                    _ => return Err(AppError::invalid("time_range", "needs start_time and end_time").into()),
                }
            }
            None => return Err(AppError::invalid("scope", "give an event_id or a time_range").into()),
        };
        let n = self.svc.replay_events(&p, &endpoint, scope).await?;
        Ok(Response::new(pb::ReplayEventsResponse { queued: n as i64 }))
    }

    #[tracing::instrument(skip_all, fields(rpc.method = "SendTestEvent"))]
    async fn send_test_event(
        &self,
        req: Request<pb::SendTestEventRequest>,
    ) -> Result<Response<pb::SendTestEventResponse>, Status> {
        let p = principal(&req)?;
        let id = id_field(&req.get_ref().endpoint_id, "endpoint_id")?;
        let delivery_id = self.svc.send_test_event(&p, &id).await?;
        Ok(Response::new(pb::SendTestEventResponse { delivery_id }))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = EventStream;

    #[tracing::instrument(skip_all, fields(rpc.method = "WatchEvents"))]
    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> Result<Response<EventStream>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let types = stream_filter(&r.types)?;
        // Subscribe before the first read, so nothing numbered in between is missed.
        let numbered = self.svc.bus.subscribe();
        self.svc.check_stream_start(&p, r.after_sequence).await?;
        let svc = self.svc.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::Event, Status>>(256);
        // A tracked task, ended by the server's shutdown: an open stream must not hold
        // the shutdown for its whole grace period.
        let shutdown = svc.shutdown.clone();
        self.svc.tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = stream_events(svc, p, types, numbered, r.after_sequence, tx) => {}
            }
        });
        // After the events sent, a stream ended by the shutdown says so: UNAVAILABLE,
        // and the client resumes after the last sequence number it received.
        let ended = self.svc.shutdown.clone();
        let shut = std::iter::once_with(move || {
            ended.is_cancelled().then(|| {
                Err(Status::unavailable(
                    "the server is shutting down; resume with after_sequence set to the last sequence received",
                ))
            })
        })
        .flatten();
        let events =
            tokio_stream::StreamExt::chain(tokio_stream::wrappers::ReceiverStream::new(rx), tokio_stream::iter(shut));
        Ok(Response::new(Box::pin(events)))
    }
}

/// Sends the events after `after` (of `types`, if any) to `tx` until the receiver goes
/// away or a read fails, waking when this replica commits events, when PostgreSQL
/// tells of the tenant's events committed elsewhere, and polling in case a notice
/// was lost.
async fn stream_events(
    svc: Services,
    p: crate::domain::model::Principal,
    types: Vec<String>,
    mut numbered: crate::service::EventWaiter,
    after: i64,
    tx: tokio::sync::mpsc::Sender<Result<pb::Event, Status>>,
) {
    let mut cursor = after;
    loop {
        let batch = match svc.events_after(&p.tenant, cursor, STREAM_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        let caught_up = (batch.len() as u64) < STREAM_BATCH;
        for e in batch {
            cursor = e.sequence;
            if (types.is_empty() || types.contains(&e.event_type)) && tx.send(Ok(pb_event(&e))).await.is_err() {
                return;
            }
        }
        if caught_up {
            tokio::select! {
                _ = numbered.wait(&p.tenant, cursor, svc.outbox.poll) => {}
                _ = tx.closed() => return,
            }
        }
    }
}
