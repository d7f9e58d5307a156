//! Retention per tenant (docs/privacy.md): the defaults, a policy set over JSON, and the
//! worker removing what is older — raw activity, comments, invitation tokens, delivery
//! logs — while the scores and counts stay; `/metrics` shows what it removed.

use std::time::Duration;

use pb::engagement_service_client::EngagementServiceClient;
use pb::privacy_service_client::PrivacyServiceClient;
use pb::webhook_service_client::WebhookServiceClient;
use serde_json::json;
use tonic::Code;

use crate::helpers::*;
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);

async fn metric(app: &TestApp, kind: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", app.admin_addr)).await.unwrap().text().await.unwrap();
    let prefix = format!("rapport_retention_removed_total{{kind=\"{kind}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().parse().unwrap()).unwrap_or(0)
}

async fn deliveries(app: &TestApp, endpoint: &str) -> usize {
    WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .list_deliveries(pb::ListDeliveriesRequest {
            endpoint_id: endpoint.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries
        .len()
}

async fn exported_activity(app: &TestApp, customer: &str) -> usize {
    let doc: serde_json::Value = get_json(app, &format!("{}/v1/customers/{customer}/export", app.http)).await;
    doc["activity_events"].as_array().map(Vec::len).unwrap_or(usize::MAX)
}

async fn a_tenants_retention_removes_old_raw_data_and_keeps_the_numbers(b: Backend) {
    let app = spawn_app_with(b, |a| {
        fast_outbox(a);
        a.outbox.retention_check_ms = 100;
        // No SLA pass after the clock moves: an overdue event would add a new delivery.
        a.outbox.sla_check_ms = 3_600_000;
    })
    .await;
    let mut privacy = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let defaults = privacy.get_retention_policy(pb::GetRetentionPolicyRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (defaults.activity_event_days, defaults.comment_days, defaults.invitation_days, defaults.delivery_log_days),
        (730, 0, 400, 30),
        "the documented defaults"
    );
    assert!(defaults.update_time.is_none());

    // Data of every kind.
    let rx = Receiver::start().await;
    let endpoint = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest { url: rx.url.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap()
        .id;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&s.id, "c-1").await;
    let answered = app.issue(&s.id, "c-2").await;
    app.surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(answered.token.clone())),
            score: Some(4),
            comment: "Slow support".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let now = chrono::Utc::now();
    EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .record_events(pb::RecordEventsRequest {
            events: vec![pb::ActivityEvent {
                message_id: "m-1".into(),
                customer_id: "c-2".into(),
                time: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
                kind: Some(pb::activity_event::Kind::Action(pb::ActionEvent {
                    name: "export".into(),
                    ..Default::default()
                })),
            }],
        })
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { rx.hits_of("response.recorded").len() == 1 }).await);
    assert!(eventually(WAIT, || async { deliveries(&app, &endpoint).await >= 3 }).await);
    assert_eq!(exported_activity(&app, "c-2").await, 1);
    let before = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(s.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // One day for everything, over JSON.
    let set: serde_json::Value = reqwest::Client::new()
        .patch(format!(
            "{}/v1/retention-policy?updateMask=activityEventDays,commentDays,invitationDays,deliveryLogDays",
            app.http
        ))
        .bearer_auth(&app.key)
        .json(&json!({"activityEventDays": 1, "commentDays": 1, "invitationDays": 1, "deliveryLogDays": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["commentDays"], 1, "{set}");
    assert!(set["updateTime"].is_string());
    // Nothing is a day old yet: a pass removes nothing.
    assert_eq!(app.services.enforce_retention().await.unwrap(), Default::default());
    assert_eq!(app.all_responses().await[0].comment, "Slow support");

    // Two days later the worker removes it, in its next pass.
    app.clock.advance(chrono::Duration::days(2));
    assert!(
        eventually(WAIT, || async {
            metric(&app, "comments").await == 1
                && metric(&app, "activity_events").await == 1
                && metric(&app, "invitations").await == 2
                && metric(&app, "delivery_logs").await >= 3
        })
        .await,
        "the worker's removals are on /metrics"
    );
    let responses = app.all_responses().await;
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].comment, "", "the comment is gone");
    assert_eq!(responses[0].score, 4, "the score stays");
    let link = app.surveys.clone().get_invitation(pb::GetInvitationRequest { token: issued.token.clone() }).await;
    assert_eq!(link.unwrap_err().code(), Code::NotFound, "an old link stops working");
    assert_eq!(deliveries(&app, &endpoint).await, 0, "the delivery log is gone");
    assert_eq!(exported_activity(&app, "c-2").await, 0, "raw activity is gone");
    let after = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(s.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.summary, before.summary, "the numbers stay");
    assert_eq!(after.funnel.map(|f| f.issued), before.funnel.map(|f| f.issued), "the funnel's counts stay");

    // The change is in the audit log; bad input names the field.
    let log = privacy.list_audit_events(pb::ListAuditEventsRequest::default()).await.unwrap().into_inner();
    assert!(log.audit_events.iter().any(|e| e.action == "retention.updated"));
    let bad = privacy
        .update_retention_policy(pb::UpdateRetentionPolicyRequest {
            policy: Some(pb::RetentionPolicy { comment_days: -1, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["comment_days".into()] }),
        })
        .await
        .unwrap_err();
    assert_invalid(&bad, "policy.comment_days");
    let unknown = privacy
        .update_retention_policy(pb::UpdateRetentionPolicyRequest {
            policy: Some(pb::RetentionPolicy::default()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["scores".into()] }),
        })
        .await
        .unwrap_err();
    assert_invalid(&unknown, "update_mask");
}

crate::on_both!(a_tenants_retention_removes_old_raw_data_and_keeps_the_numbers);
