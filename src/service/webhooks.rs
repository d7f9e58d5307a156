//! Webhook endpoints and the delivery of events to them (docs/webhooks.md): Standard
//! Webhooks signatures, at-least-once with retries, dead letters and replay.

use std::time::Instant;

use super::{Services, require_reader, require_secret};
use crate::domain::events::{Event, EventType};
use crate::domain::input;
use crate::domain::listing::{DeliveryFilter, PageRequest};
use crate::domain::model::{Delivery, DeliveryStatus, Page, Principal, WebhookEndpoint};
use crate::domain::privacy::{Actor, AuditAction, AuditEntry};
use crate::domain::sealing::{self, Sealed};
use crate::domain::stored::{DueDelivery, SigningEndpoint};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{self, AttemptOutcome};
use crate::error::{AppError, Result};
use crate::store::audit;
use crate::store::events as store_events;
use crate::store::webhooks::{self as store, AttemptRecord};

/// An endpoint as a caller describes it.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub survey_ids: Vec<String>,
}

/// Which fields an update changes.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub survey_ids: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// What `ReplayEvents` replays.
#[derive(Debug, Clone)]
pub enum ReplayScope {
    Event(String),
    Window(Timestamp, Timestamp),
}

fn check_types(types: &[String]) -> Result<Vec<String>> {
    for t in types {
        if EventType::parse(t).is_none_or(|t| t == EventType::WebhookTest) {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(AppError::invalid(
                "event_types",
                format!("unknown event type {:?}; known: {}", input::quote_prefix(t), known.join(", ")),
            ));
        }
    }
    Ok(types.to_vec())
}

impl Services {
    /// Checks a target URL, including where its host resolves to.
    async fn check_target(&self, raw: &str) -> Result<String> {
        let url = webhooks::parse_url(raw, &self.outbox.allow_http_hosts)?;
        if !self.outbox.allow_private {
            let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(a) => a.collect(),
                Err(_) => {
                    return Err(AppError::invalid(
                        "url",
                        format!("host {:?} does not resolve", input::quote_prefix(&host)),
                    ));
                }
            };
            if addrs.is_empty() || addrs.iter().any(|a| webhooks::is_private(a.ip())) {
                return Err(AppError::invalid(
                    "url",
                    "points at a private, loopback or link-local address; the operator has not allowed that",
                ));
            }
        }
        Ok(url.to_string())
    }

    /// Registers an endpoint; returns it with its `whsec_…` secret (shown once).
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn create_endpoint(&self, p: &Principal, input: EndpointInput) -> Result<(WebhookEndpoint, String)> {
        require_secret(p)?;
        let url = self.check_target(&input.url).await?;
        let now = self.clock.now();
        let endpoint = WebhookEndpoint {
            id: uuid::Uuid::now_v7().to_string(),
            url,
            description: input::text("description", &input.description, 200, false)?,
            event_types: check_types(&input.event_types)?,
            survey_ids: input.survey_ids,
            enabled: true,
            disabled_reason: String::new(),
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let secret = webhooks::generate_secret();
        let sealed = self.keyring.seal(&sealing::webhook_secret_context(&endpoint.id), &secret)?;
        let txn = self.db.begin_write().await?;
        store_events::start_fan_out(&txn, &p.tenant, now).await?;
        store::insert_endpoint(&txn, &p.tenant, &endpoint, &sealed).await?;
        let host = url::Url::parse(&endpoint.url).ok().and_then(|u| u.host_str().map(str::to_owned));
        let details = serde_json::json!({ "host": host, "event_types": endpoint.event_types });
        let entry = AuditEntry::new(&p.tenant, Actor::of(p), AuditAction::WebhookEndpointCreated, &endpoint.id);
        audit::record(&txn, &entry.with(details), now).await?;
        txn.commit().await?;
        Ok((endpoint, secret))
    }

    pub async fn list_endpoints(&self, p: &Principal, page: PageRequest) -> Result<Page<WebhookEndpoint>> {
        require_reader(p)?;
        Ok(store::list_endpoints(self.db.conn(), &p.tenant, &page).await?)
    }

    pub async fn update_endpoint(&self, p: &Principal, id: &str, patch: EndpointPatch) -> Result<WebhookEndpoint> {
        require_secret(p)?;
        let url = match &patch.url {
            Some(u) => Some(self.check_target(u).await?),
            None => None,
        };
        // The audit log names the fields changed (not their values: a URL may carry a token).
        let fields: Vec<&str> = [
            ("url", patch.url.is_some()),
            ("description", patch.description.is_some()),
            ("event_types", patch.event_types.is_some()),
            ("survey_ids", patch.survey_ids.is_some()),
            ("enabled", patch.enabled.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        let txn = self.db.begin_write().await?;
        let mut e = store::endpoint(&txn, &p.tenant, id).await?;
        if let Some(u) = url {
            e.url = u;
        }
        if let Some(d) = patch.description {
            e.description = input::text("description", &d, 200, false)?;
        }
        if let Some(t) = patch.event_types {
            e.event_types = check_types(&t)?;
        }
        if let Some(s) = patch.survey_ids {
            e.survey_ids = s;
        }
        if let Some(enabled) = patch.enabled {
            if enabled && !e.enabled {
                e.disabled_reason.clear();
                e.failing_since = None;
            }
            if !enabled && e.enabled {
                e.disabled_reason = "disabled by the tenant".into();
            }
            e.enabled = enabled;
        }
        e.updated_at = self.clock.now();
        store::save_endpoint(&txn, &p.tenant, &e).await?;
        let details = serde_json::json!({ "fields": fields, "enabled": e.enabled });
        let entry = AuditEntry::new(&p.tenant, Actor::of(p), AuditAction::WebhookEndpointUpdated, &e.id);
        audit::record(&txn, &entry.with(details), e.updated_at).await?;
        txn.commit().await?;
        if e.enabled {
            self.bus.deliveries_queued();
        }
        Ok(e)
    }

    /// A new secret; the old one stops signing at once.
    pub async fn rotate_endpoint_secret(&self, p: &Principal, id: &str) -> Result<(WebhookEndpoint, String)> {
        require_secret(p)?;
        let txn = self.db.begin_write().await?;
        let endpoint = store::endpoint(&txn, &p.tenant, id).await?;
        let secret = webhooks::generate_secret();
        let sealed = self.keyring.seal(&sealing::webhook_secret_context(&endpoint.id), &secret)?;
        store::set_secret(&txn, &p.tenant, id, &sealed, self.clock.now()).await?;
        let entry = AuditEntry::new(&p.tenant, Actor::of(p), AuditAction::WebhookSecretRotated, id);
        audit::record(&txn, &entry, self.clock.now()).await?;
        txn.commit().await?;
        Ok((endpoint, secret))
    }

    pub async fn delete_endpoint(&self, p: &Principal, id: &str) -> Result<()> {
        require_secret(p)?;
        let txn = self.db.begin_write().await?;
        store::delete_endpoint(&txn, &p.tenant, id, self.clock.now()).await?;
        let entry = AuditEntry::new(&p.tenant, Actor::of(p), AuditAction::WebhookEndpointDeleted, id);
        audit::record(&txn, &entry, self.clock.now()).await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn list_deliveries(
        &self,
        p: &Principal,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<Delivery>> {
        require_reader(p)?;
        if let Some(e) = &filter.endpoint_id {
            store::endpoint(self.db.conn(), &p.tenant, e).await?;
        }
        Ok(store::list_deliveries(self.db.conn(), &p.tenant, &filter, &page).await?)
    }

    /// Queues events again for an endpoint, dead-lettered ones included; the same
    /// event keeps its `webhook-id`. Returns how many were queued.
    pub async fn replay_events(&self, p: &Principal, endpoint_id: &str, scope: ReplayScope) -> Result<usize> {
        require_secret(p)?;
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        store::endpoint(&txn, &p.tenant, endpoint_id).await?;
        let n = match scope {
            ReplayScope::Event(id) => store::replay(&txn, &p.tenant, endpoint_id, Some(&id), None, now).await?,
            ReplayScope::Window(start, end) => {
                if start >= end {
                    return Err(AppError::invalid("start_time", "must be before end_time"));
                }
                store::replay(&txn, &p.tenant, endpoint_id, None, Some((start, end)), now).await?
            }
        };
        txn.commit().await?;
        self.bus.deliveries_queued();
        Ok(n)
    }

    /// Queues a `webhook.test` delivery for an endpoint; returns the delivery id.
    pub async fn send_test_event(&self, p: &Principal, endpoint_id: &str) -> Result<String> {
        require_secret(p)?;
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        store::endpoint(&txn, &p.tenant, endpoint_id).await?;
        let data = serde_json::json!({ "message": "a test event from rapport", "endpoint_id": endpoint_id });
        let id = store::insert_test_delivery(&txn, &p.tenant, endpoint_id, &data, now).await?;
        txn.commit().await?;
        self.bus.deliveries_queued();
        Ok(id)
    }

    /// Claims due deliveries and sends them, `concurrency` at a time. Returns how many
    /// it attempted.
    pub async fn deliver_due(&self, client: &reqwest::Client) -> Result<usize> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.outbox.timeout).unwrap_or_default() + chrono::Duration::seconds(30);
        let claimed = store::claim_due(&self.db, now, lease, self.outbox.concurrency as u64).await?;
        let n = claimed.len();
        let mut set = tokio::task::JoinSet::new();
        for (delivery, endpoint) in claimed {
            let svc = self.clone();
            let client = client.clone();
            set.spawn(async move {
                if let Err(e) = svc.attempt(&client, delivery, endpoint).await {
                    tracing::warn!(error = %e, "recording a webhook attempt failed; it will be retried after its lease");
                }
            });
        }
        while set.join_next().await.is_some() {}
        Ok(n)
    }

    /// One attempt of one delivery, recorded afterwards. A crash between sending and
    /// recording leaves the claim to expire: the event is sent again, never lost.
    async fn attempt(&self, client: &reqwest::Client, d: DueDelivery, target: SigningEndpoint) -> Result<()> {
        let body = match &d.body {
            Some(b) => b.clone(),
            None => {
                // A sealed payload is opened for each attempt and its body never stored.
                let sealed = crate::domain::events::sealed_payload(&d.payload).is_some();
                let mut data = self.open_event_data(d.tenant.as_str(), &d.event_type, d.payload.clone());
                if d.event_type == EventType::FollowUpOpened.as_str()
                    && let Some(id) = data.get("follow_up_id").and_then(|v| v.as_str()).map(str::to_owned)
                {
                    // After the settle window: the follow-up as it is now, comment included.
                    if let Ok(now_data) = self.follow_up_data_now(&d.tenant, &id).await {
                        data = now_data;
                    }
                }
                let body = Event::envelope(&d.event_type, d.event_created_at, &data).to_string();
                if !sealed {
                    store::set_body(self.db.conn(), &d.tenant, &d.id, &body).await?;
                }
                body
            }
        };
        let sent_at = self.clock.now();
        let started = Instant::now();
        let (status, error) = self.send(client, &target, &d, &body, sent_at).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let now = self.clock.now();
        let outcome = webhooks::classify(status);
        let (state, next) = match outcome {
            AttemptOutcome::Delivered => (DeliveryStatus::Succeeded, None),
            AttemptOutcome::Refused => (DeliveryStatus::Failed, None),
            AttemptOutcome::Retry => match self.outbox.retry.delay_after(d.attempt as usize) {
                Some(delay) => {
                    (DeliveryStatus::Pending, Some(now + chrono::Duration::from_std(delay).unwrap_or_default()))
                }
                None => (DeliveryStatus::DeadLettered, None),
            },
        };
        let txn = self.db.begin_write().await?;
        let rec = AttemptRecord {
            status: state,
            next_attempt_at: next,
            status_code: status.map(i32::from),
            error,
            duration_ms,
        };
        store::record_attempt(&txn, &d, &rec, now).await?;
        let endpoint = &target.endpoint;
        if outcome == AttemptOutcome::Delivered {
            store::set_failing(&txn, &d.tenant, endpoint, None).await?;
        } else {
            store::set_failing(&txn, &d.tenant, endpoint, Some(now)).await?;
            let since = endpoint.failing_since.unwrap_or(now);
            if endpoint.enabled && now - since >= self.outbox.disable_after {
                let reason = format!("disabled after failing continuously since {}", since.to_rfc3339());
                store::disable(&txn, &d.tenant, &endpoint.id, &reason, now).await?;
                store::log(&txn, &d.tenant, &d.id, d.attempt, None, &format!("notice: endpoint {reason}"), 0, now)
                    .await?;
            }
        }
        txn.commit().await?;
        self.metrics.webhook_delivery(match state {
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::DeadLettered => "dead_lettered",
            DeliveryStatus::Pending | DeliveryStatus::Cancelled => "retrying",
        });
        Ok(())
    }

    /// Sends one signed request; returns the HTTP status (none on a network error or
    /// timeout) and an error text.
    async fn send(
        &self,
        client: &reqwest::Client,
        target: &SigningEndpoint,
        d: &DueDelivery,
        body: &str,
        at: Timestamp,
    ) -> (Option<u16>, String) {
        if !self.outbox.allow_private
            && let Err(e) = self.check_target(&target.endpoint.url).await
        {
            return (None, format!("target refused: {e}"));
        }
        let ts = at.timestamp();
        let endpoint = &target.endpoint;
        let sealed =
            Sealed { key_id: target.secret_key_id.clone().unwrap_or_default(), ciphertext: target.secret.clone() };
        let secret = match self.keyring.open(&sealing::webhook_secret_context(&endpoint.id), &sealed) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.id, error = %e, "the endpoint's signing secret does not open");
                return (None, "the endpoint's signing secret cannot be read; see the server's log".into());
            }
        };
        let signature = match webhooks::sign(&secret, &d.event_id, ts, body) {
            Ok(s) => s,
            Err(e) => return (None, e.to_string()),
        };
        let res = client
            .post(&target.endpoint.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .header("rapport-attempt", d.attempt.to_string())
            .body(body.to_owned())
            .send()
            .await;
        match res {
            Ok(r) => {
                let code = r.status().as_u16();
                let err = if r.status().is_success() { String::new() } else { format!("HTTP {code}") };
                (Some(code), err)
            }
            Err(e) if e.is_timeout() => (None, "timed out".into()),
            Err(e) => (None, format!("network error: {e}")),
        }
    }
}

/// The HTTP client deliveries use: no redirects (a redirect is a failed attempt), the
/// configured timeout.
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("rapport/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Events the stream sends for a type filter (empty: all).
pub fn stream_filter(types: &[String]) -> Result<Vec<String>> {
    check_types(types).map_err(|_| AppError::invalid("types", "lists an unknown event type"))
}
