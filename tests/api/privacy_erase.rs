//! Erasing a customer (docs/privacy.md): afterwards no column of any table holds the
//! customer's id, e-mail, comments, notes or property values; survey metrics are the
//! same; webhooks replayed afterwards carry nothing of the customer; a late answer,
//! event or invitation cannot bring the customer back; a second erasure changes nothing.

use std::time::Duration;

use pb::engagement_service_client::EngagementServiceClient;
use pb::privacy_service_client::PrivacyServiceClient;
use pb::update_follow_up_request::{self as u, Action};
use pb::webhook_service_client::WebhookServiceClient;
use tonic::Code;

use crate::dump;
use crate::helpers::*;
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(20);
/// Every personal datum of the erased customer carries this, and nothing else does.
const MARK: &str = "zqxw";
const CUSTOMER: &str = "cust-zqxw-01";
const EMAIL: &str = "jo.zqxw@example.com";

type Engagement =
    EngagementServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>>;

fn engagement(app: &TestApp) -> Engagement {
    EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
}

fn activity(message: &str, customer: &str) -> pb::ActivityEvent {
    let now = chrono::Utc::now();
    pb::ActivityEvent {
        message_id: message.into(),
        customer_id: customer.into(),
        time: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
        kind: Some(pb::activity_event::Kind::Action(pb::ActionEvent {
            name: "export".into(),
            // Only the erased customer's activity carries the mark.
            properties: [("file".to_owned(), format!("report-{}.pdf", if customer == CUSTOMER { MARK } else { "x" }))]
                .into(),
        })),
    }
}

/// What the customer leaves behind: traits, properties, an invitation, an answer with a
/// comment and properties, a follow-up with a note and a resolution, activity.
async fn customer_with_history(app: &TestApp, survey: &str) -> pb::Response {
    engagement(app)
        .upsert_customer(pb::UpsertCustomerRequest {
            customer_id: CUSTOMER.into(),
            account_id: Some(format!("acct-{MARK}")),
            traits: Some(pb::CustomerTraits {
                email: Some(EMAIL.into()),
                name: Some(format!("Jo {MARK}")),
                ..Default::default()
            }),
            properties: [("segment".to_owned(), format!("vip-{MARK}"))].into(),
        })
        .await
        .unwrap();
    let issued = app
        .surveys
        .clone()
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: survey.into(),
            customer_id: CUSTOMER.into(),
            properties: [("campaign".to_owned(), format!("spring-{MARK}"))].into(),
            idempotency_key: format!("issue-{MARK}"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let answer = app
        .surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(issued.token.clone())),
            score: Some(3),
            comment: format!("My manager Bob {MARK} ignored me"),
            properties: [("order".to_owned(), format!("ord-{MARK}-991"))].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut f = app.follow_ups.clone();
    let act = |action| pb::UpdateFollowUpRequest {
        id: answer.follow_up_id.clone(),
        author: "ana@example.com".into(),
        action: Some(action),
    };
    f.update_follow_up(act(Action::AddNote(u::AddNote { body: format!("Called Jo back, {MARK}") }))).await.unwrap();
    f.update_follow_up(act(Action::Resolve(u::Resolve { resolution: format!("Refund {MARK} issued") }))).await.unwrap();
    let recorded = engagement(app)
        .record_events(pb::RecordEventsRequest { events: vec![activity(&format!("msg-{MARK}-1"), CUSTOMER)] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(recorded.results[0].status, pb::ActivityEventStatus::Accepted as i32);
    answer
}

async fn summary(app: &TestApp, survey: &str) -> (i64, Option<f64>, i64) {
    let m = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let s = m.summary.unwrap();
    (s.n, s.headline, m.funnel.map(|f| f.issued).unwrap_or_default())
}

async fn nothing_of_the_customer_is_left(db_url: &str) {
    let cells = dump::database(db_url).await;
    assert!(cells.len() > 100, "the dump read the database");
    for needle in [MARK, CUSTOMER, EMAIL] {
        let found = dump::containing(&cells, needle);
        assert!(found.is_empty(), "{needle:?} is still stored: {found:#?}");
    }
}

async fn erasure_leaves_nothing_of_the_customer_and_the_numbers_unchanged(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let rx = Receiver::start().await;
    let mut hooks = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let endpoint = hooks
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest { url: rx.url.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap()
        .id;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let answer = customer_with_history(&app, &s.id).await;
    app.answer(&s.id, "someone-else", 10).await.unwrap();
    engagement(&app)
        .record_events(pb::RecordEventsRequest { events: vec![activity("msg-other-1", "someone-else")] })
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || async {
            rx.hits_of("response.recorded").len() == 2 && rx.hits_of("follow_up.updated").len() == 2
        })
        .await
    );
    assert!(rx.hits().iter().any(|h| h.body.contains(MARK)), "the webhooks carried the customer's data");
    let before = summary(&app, &s.id).await;
    assert_eq!(before.0, 2);

    // Erase over JSON.
    let erased: serde_json::Value = post_json(&app, &format!("{}/v1/customers/{CUSTOMER}:erase", app.http)).await;
    assert_eq!(erased["found"], true, "{erased}");
    assert_eq!(erased["responses"], "1", "{erased}");
    assert_eq!(erased["activityEvents"], "1", "{erased}");
    nothing_of_the_customer_is_left(&app.db_url).await;

    // The numbers do not move.
    assert_eq!(summary(&app, &s.id).await, before, "n, NPS and the funnel are unchanged");
    let kept: Vec<_> = app.all_responses().await.into_iter().filter(|r| r.survey_id == s.id).collect();
    assert_eq!(kept.len(), 2, "the score stays, as an anonymous count");
    let anonymous = kept.iter().find(|r| r.score == 3).expect("the erased customer's score");
    assert!(anonymous.comment.is_empty() && anonymous.properties.is_empty());
    assert!(anonymous.customer_id.starts_with("erased-"), "{}", anonymous.customer_id);
    let gone = engagement(&app).get_customer(pb::GetCustomerRequest { customer_id: CUSTOMER.into() }).await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);

    // The CRM's other systems learn of it: customer.erased, the id only.
    assert!(eventually(WAIT, || async { rx.hits_of("customer.erased").len() == 1 }).await);
    let note = rx.hits_of("customer.erased").remove(0).json();
    assert_eq!(note["data"]["customer_id"], CUSTOMER);
    assert_eq!(note["data"].as_object().unwrap().len(), 2, "the id and the time only: {note}");

    // Webhooks replayed afterwards carry nothing of the customer.
    let seen = rx.hits().len();
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    let end = chrono::Utc::now() + chrono::Duration::hours(1);
    let replayed = hooks
        .replay_events(pb::ReplayEventsRequest {
            endpoint_id: endpoint.clone(),
            scope: Some(pb::replay_events_request::Scope::TimeRange(pb::TimeRange {
                start_time: Some(prost_types::Timestamp { seconds: start.timestamp(), nanos: 0 }),
                end_time: Some(prost_types::Timestamp { seconds: end.timestamp(), nanos: 0 }),
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(replayed.queued >= 5, "{replayed:?}");
    assert!(eventually(WAIT, || async { rx.hits().len() >= seen + replayed.queued as usize }).await);
    let again: Vec<_> = rx.hits().into_iter().skip(seen).collect();
    for hit in &again {
        if hit.event_type() == "customer.erased" {
            continue;
        }
        assert!(!hit.body.contains(MARK) && !hit.body.contains(CUSTOMER), "replayed with personal data: {}", hit.body);
    }
    assert!(again.iter().any(|h| h.event_type() == "response.recorded" && h.json()["data"]["score"] == 3));
    let _ = answer;
    nothing_of_the_customer_is_left(&app.db_url).await;
}

async fn an_erased_customer_cannot_come_back_and_a_second_erasure_changes_nothing(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&s.id, CUSTOMER).await;
    app.answer(&s.id, CUSTOMER, 9).await.unwrap();
    let mut privacy = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let first =
        privacy.erase_customer(pb::EraseCustomerRequest { customer_id: CUSTOMER.into() }).await.unwrap().into_inner();
    assert!(first.found);
    assert_eq!((first.responses, first.invitations), (1, 1));

    // Late writes naming the customer: refused, and nothing is created.
    let late = app.answer(&s.id, CUSTOMER, 2).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    let by_token = app
        .surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(issued.token.clone())),
            score: Some(1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(by_token.code(), Code::NotFound, "the token is gone: {by_token:?}");
    let issue = app
        .surveys
        .clone()
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: s.id.clone(),
            customer_id: CUSTOMER.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(issue.code(), Code::FailedPrecondition);
    let upsert = engagement(&app)
        .upsert_customer(pb::UpsertCustomerRequest { customer_id: CUSTOMER.into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(upsert.code(), Code::FailedPrecondition);
    let events = engagement(&app)
        .record_events(pb::RecordEventsRequest {
            events: vec![activity("late-1", CUSTOMER), activity("fine-1", "someone-else")],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(events[0].status, pb::ActivityEventStatus::Rejected as i32);
    assert!(events[0].field.ends_with("customer_id"), "{:?}", events[0]);
    assert_eq!(events[1].status, pb::ActivityEventStatus::Accepted as i32, "the rest of the batch goes in");
    let cells = dump::database(&app.db_url).await;
    assert!(dump::containing(&cells, CUSTOMER).is_empty(), "not re-created: {:?}", dump::containing(&cells, CUSTOMER));

    // Again: succeeds, finds nothing, logs nothing more.
    let second =
        privacy.erase_customer(pb::EraseCustomerRequest { customer_id: CUSTOMER.into() }).await.unwrap().into_inner();
    assert!(!second.found);
    let log = privacy.list_audit_events(pb::ListAuditEventsRequest::default()).await.unwrap().into_inner();
    let erasures: Vec<_> = log.audit_events.iter().filter(|e| e.action == "customer.erased").collect();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0].target, first.erasure_id);
    assert!(!format!("{erasures:?}").contains(CUSTOMER), "the audit log never holds the id");

    // Bad input names the field.
    let bad = privacy.erase_customer(pb::EraseCustomerRequest { customer_id: String::new() }).await.unwrap_err();
    assert_invalid(&bad, "customer_id");
    // Another tenant's key erases nothing of this tenant.
    let other = app.other_tenant_key().await;
    let theirs = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(other)))
        .erase_customer(pb::EraseCustomerRequest { customer_id: "someone-else".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!theirs.found);
    assert!(engagement(&app).get_customer(pb::GetCustomerRequest { customer_id: "someone-else".into() }).await.is_ok());
}

crate::on_both!(
    erasure_leaves_nothing_of_the_customer_and_the_numbers_unchanged,
    an_erased_customer_cannot_come_back_and_a_second_erasure_changes_nothing,
);
