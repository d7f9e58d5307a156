//! Exporting a customer (docs/privacy.md): everything written about one customer comes
//! back, over the gRPC stream, the JSON route and the command line alike, and nothing of
//! anyone else.

use pb::engagement_service_client::EngagementServiceClient;
use pb::privacy_service_client::PrivacyServiceClient;
use pb::update_follow_up_request::{self as u, Action};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

const CUSTOMER: &str = "crm/export-1";
const OTHER: &str = "crm/export-other";

fn activity(message: &str, customer: &str, kind: pb::activity_event::Kind) -> pb::ActivityEvent {
    let now = chrono::Utc::now();
    pb::ActivityEvent {
        message_id: message.into(),
        customer_id: customer.into(),
        time: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
        kind: Some(kind),
    }
}

/// A protobuf Struct as JSON (numbers as they came: the Struct holds doubles).
fn struct_json(s: &prost_types::Struct) -> Value {
    fn value(v: &prost_types::Value) -> Value {
        use prost_types::value::Kind;
        match &v.kind {
            Some(Kind::NullValue(_)) | None => Value::Null,
            Some(Kind::BoolValue(b)) => json!(b),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 => json!(*n as i64),
            Some(Kind::NumberValue(n)) => json!(n),
            Some(Kind::StringValue(s)) => json!(s),
            Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value).collect()),
            Some(Kind::StructValue(s)) => struct_json(s),
        }
    }
    Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

async fn the_export_holds_everything_written_about_the_customer_and_nothing_else(b: Backend) {
    let app = spawn_app(b).await;
    let mut engagement = EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    engagement
        .upsert_customer(pb::UpsertCustomerRequest {
            customer_id: CUSTOMER.into(),
            account_id: Some("acct-9".into()),
            traits: Some(pb::CustomerTraits {
                email: Some("ana@example.com".into()),
                name: Some("Ana".into()),
                plan: Some("pro".into()),
                ..Default::default()
            }),
            properties: [("segment".to_owned(), "vip".to_owned())].into(),
        })
        .await
        .unwrap();
    let issued = app
        .surveys
        .clone()
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: s.id.clone(),
            customer_id: CUSTOMER.into(),
            properties: [("campaign".to_owned(), "spring".to_owned())].into(),
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
            score: Some(4),
            comment: "Too slow".into(),
            properties: [("order".to_owned(), "o-17".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut f = app.follow_ups.clone();
    let act = |action| pb::UpdateFollowUpRequest {
        id: answer.follow_up_id.clone(),
        author: "ana@crm.example".into(),
        action: Some(action),
    };
    f.update_follow_up(act(Action::AddNote(u::AddNote { body: "Called back".into() }))).await.unwrap();
    f.update_follow_up(act(Action::Resolve(u::Resolve { resolution: "Upgraded the plan".into() }))).await.unwrap();
    use pb::activity_event::Kind;
    engagement
        .record_events(pb::RecordEventsRequest {
            events: vec![
                activity(
                    "m-1",
                    CUSTOMER,
                    Kind::Action(pb::ActionEvent {
                        name: "export".into(),
                        properties: [("file".to_owned(), "q3.pdf".to_owned())].into(),
                    }),
                ),
                activity(
                    "m-2",
                    CUSTOMER,
                    Kind::Purchase(pb::PurchaseEvent { amount_minor: 4900, currency: "USD".into() }),
                ),
                activity(
                    "m-other",
                    OTHER,
                    Kind::Action(pb::ActionEvent { name: "export".into(), ..Default::default() }),
                ),
            ],
        })
        .await
        .unwrap();
    app.answer(&s.id, OTHER, 10).await.unwrap();

    // The gRPC stream.
    let mut privacy = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let mut stream =
        privacy.export_customer(pb::ExportCustomerRequest { customer_id: CUSTOMER.into() }).await.unwrap().into_inner();
    let mut records: Vec<(String, Value)> = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        records.push((r.kind, struct_json(&r.data.unwrap_or_default())));
    }
    let kinds: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["customer", "invitation", "response", "follow_up", "activity_event", "activity_event"]);
    let of = |kind: &str| records.iter().filter(|(k, _)| k == kind).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let customer = &of("customer")[0];
    assert_eq!(customer["customer_id"], CUSTOMER);
    assert_eq!(customer["account_id"], "acct-9");
    assert_eq!(
        (customer["email"].as_str(), customer["name"].as_str(), customer["plan"].as_str()),
        (Some("ana@example.com"), Some("Ana"), Some("pro"))
    );
    assert_eq!(customer["properties"], json!({"segment": "vip", "campaign": "spring"}));
    let invitation = &of("invitation")[0];
    assert_eq!(invitation["invitation_id"], issued.invitation.as_ref().unwrap().id.as_str());
    assert_eq!(invitation["outcome"], "issued");
    assert_eq!(invitation["response_id"], answer.id.as_str());
    let response = &of("response")[0];
    assert_eq!(response["response_id"], answer.id.as_str());
    assert_eq!((response["score"].as_i64(), response["comment"].as_str()), (Some(4), Some("Too slow")));
    assert_eq!(response["properties"], json!({"order": "o-17"}));
    let follow_up = &of("follow_up")[0];
    assert_eq!(follow_up["follow_up_id"], answer.follow_up_id.as_str());
    assert_eq!(follow_up["resolution"], "Upgraded the plan");
    let notes: Vec<&str> = follow_up["entries"].as_array().unwrap().iter().filter_map(|e| e["body"].as_str()).collect();
    assert!(notes.contains(&"Called back"), "{notes:?}");
    let events = of("activity_event");
    assert_eq!(events[0]["message_id"], "m-1");
    assert_eq!(events[0]["properties"], json!({"file": "q3.pdf"}));
    assert_eq!((events[1]["amount_minor"].as_i64(), events[1]["currency"].as_str()), (Some(4900), Some("USD")));
    let all = format!("{records:?}");
    assert!(!all.contains(OTHER) && !all.contains("m-other"), "nothing of another customer");

    // The JSON route: the same records, as one document.
    let url = format!("{}/v1/customers/{}/export", app.http, CUSTOMER.replace('/', "%2F"));
    let resp = reqwest::Client::new().get(&url).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["format"], "rapport.customer_export.v1");
    assert_eq!(&doc["customer"], customer);
    assert_eq!(doc["invitations"].as_array().unwrap(), &of("invitation"));
    assert_eq!(doc["responses"].as_array().unwrap(), &of("response"));
    assert_eq!(doc["follow_ups"].as_array().unwrap(), &of("follow_up"));
    assert_eq!(doc["activity_events"].as_array().unwrap(), &events);

    // The command line: the same document.
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_rapport"));
    cli.args(["customer", "export", "--tenant", "acme", CUSTOMER])
        .env_clear()
        .env("DATABASE_URL", &app.db_url)
        .env("RAPPORT_LOG_LEVEL", "warn");
    if b == Backend::Postgres {
        cli.env("RAPPORT_SECRET_KEYS", TEST_SECRET_KEYS);
    }
    let out = cli.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut from_route = doc.clone();
    for d in [&mut printed, &mut from_route] {
        d["exported_at"] = Value::Null;
    }
    assert_eq!(printed, from_route);

    // Refusals: unknown, bad id, publishable key, no key over JSON.
    let unknown = privacy.export_customer(pb::ExportCustomerRequest { customer_id: "nobody".into() }).await;
    assert_eq!(unknown.err().map(|e| e.code()), Some(Code::NotFound));
    let bad = privacy.export_customer(pb::ExportCustomerRequest { customer_id: String::new() }).await.err().unwrap();
    assert_invalid(&bad, "customer_id");
    let pk = app.publishable_key().await;
    let web = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(pk.clone())))
        .export_customer(pb::ExportCustomerRequest { customer_id: CUSTOMER.into() })
        .await;
    assert_eq!(web.err().map(|e| e.code()), Some(Code::PermissionDenied));
    let no_key = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
    let as_web = reqwest::Client::new().get(&url).bearer_auth(&pk).send().await.unwrap();
    assert_eq!(as_web.status().as_u16(), 403);

    // Each export is in the audit log, without the customer's id.
    let log = privacy.list_audit_events(pb::ListAuditEventsRequest::default()).await.unwrap().into_inner();
    let exports: Vec<_> = log.audit_events.iter().filter(|e| e.action == "customer.exported").collect();
    assert_eq!(exports.len(), 3, "gRPC, JSON and the command line");
    assert!(!format!("{exports:?}").contains(CUSTOMER));
}

crate::on_both!(the_export_holds_everything_written_about_the_customer_and_nothing_else);
