//! Read-only keys (`rk_read_…`, issue 18): the Get and List methods of every service,
//! the reads of `READ_KEY_EXTRA_METHODS` (CompareSurveyMetrics, CommentThemes), and
//! nothing else, over gRPC and JSON; and `ListFollowUps` by due time, the queue
//! the console shows.

use rapport::domain::model::KeyKind;
use rapport::grpc::gate::{READ_KEY_EXTRA_METHODS, may_call};
use tonic::Code;

use crate::hardening_auth::call_empty;
use crate::helpers::*;
use crate::web::Web;

crate::on_both!(
    a_read_key_may_call_the_get_and_list_methods_and_no_other,
    a_read_key_reads_what_a_secret_key_wrote_and_cannot_change_it,
    follow_ups_by_due_time_come_earliest_first_across_pages,
);

async fn read_key(app: &TestApp) -> String {
    app.services.create_key("acme", KeyKind::Read).await.expect("a read key").secret
}

async fn a_read_key_may_call_the_get_and_list_methods_and_no_other(b: Backend) {
    let app = spawn_app(b).await;
    let key = read_key(&app).await;
    assert!(key.starts_with("rk_read_"), "{key}");
    let pool = prost_reflect::DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("the descriptor set");
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for service in pool.services().filter(|s| s.package_name() == "rapport.v1") {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let result = call_empty(&app, &path, &key, method.is_server_streaming()).await;
            if service.name() == "AdminService" {
                // The operator's methods take no tenant's key, a read key included.
                assert!(!may_call(KeyKind::Read, &path), "{path}");
                assert_eq!(result.expect_err(&path).code(), Code::PermissionDenied, "{path} with a read key");
                continue;
            }
            let named_read = ["CompareSurveyMetrics", "CommentThemes"].contains(&method.name());
            if method.name().starts_with("Get") || method.name().starts_with("List") || named_read {
                assert!(may_call(KeyKind::Read, &path), "{path}");
                // Whatever an empty request gives (OK, NOT_FOUND, INVALID_ARGUMENT…), not a refusal.
                if let Err(e) = &result {
                    assert!(
                        !matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated),
                        "{path} with a read key: {e:?}"
                    );
                }
                reads.push(path);
            } else {
                assert!(!may_call(KeyKind::Read, &path), "{path}");
                let e = result.expect_err(&path);
                assert_eq!(e.code(), Code::PermissionDenied, "{path} with a read key: {e:?}");
                assert!(e.message().contains("read keys"), "{path}: {}", e.message());
                writes.push(path);
            }
        }
    }
    assert!(reads.len() >= 15, "{reads:?}");
    assert!(writes.len() >= 20, "{writes:?}");
    assert!(writes.iter().any(|p| p.ends_with("/WatchEvents")), "not a Get or List method: refused too");
    for extra in READ_KEY_EXTRA_METHODS {
        assert!(reads.iter().any(|p| p == extra), "{extra} is a method of the API and was tried");
    }
    assert!(app.all_responses().await.is_empty(), "nothing was written");
    assert!(app.all_follow_ups().await.is_empty());

    // A revoked read key is refused like any other.
    let fresh = app.services.create_key("acme", KeyKind::Read).await.unwrap();
    app.services.revoke_key(&fresh.id.0).await.unwrap();
    let err = call_empty(&app, "/rapport.v1.SurveyService/ListSurveys", &fresh.secret, false).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // A made-up one too.
    let err = call_empty(&app, "/rapport.v1.SurveyService/ListSurveys", "rk_read_made_up", false).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

async fn a_read_key_reads_what_a_secret_key_wrote_and_cannot_change_it(b: Backend) {
    let app = spawn_app(b).await;
    let key = read_key(&app).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await;
    let answer = app.answer(&survey.id, "crm/7", 3).await.expect("a detractor");
    assert!(!answer.follow_up_id.is_empty());

    // gRPC: the reads work.
    let mut surveys = app.surveys_as(Some(&key));
    let metrics = surveys
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.id.clone())),
            ..Default::default()
        })
        .await
        .expect("metrics with a read key")
        .into_inner();
    assert_eq!(metrics.summary.expect("a summary").n, 1);
    let mut follow_ups = app.follow_ups_as(Some(&key));
    let listed = follow_ups
        .list_follow_ups(pb::ListFollowUpsRequest { order_by: "due_time".into(), ..Default::default() })
        .await
        .expect("the queue with a read key")
        .into_inner();
    assert_eq!(listed.follow_ups.len(), 1);

    // And a write does not, before its input is even read.
    let ack = pb::UpdateFollowUpRequest {
        id: answer.follow_up_id.clone(),
        author: "wall".into(),
        action: Some(pb::update_follow_up_request::Action::Acknowledge(Default::default())),
    };
    assert_code(follow_ups.update_follow_up(ack).await, Code::PermissionDenied);
    let direct = pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
            survey_id: survey.id.clone(),
            customer_id: "crm/8".into(),
        })),
        score: Some(10),
        ..Default::default()
    };
    assert_code(surveys.record_response(direct).await, Code::PermissionDenied);

    // JSON: the same, with the gateway's statuses.
    let web = Web::new(&app);
    let reply = web.get("/v1/follow-ups?orderBy=due_time", Some(&key)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = web.get("/v1/customers/crm%2F7/profile", Some(&key)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["customerId"], "crm/7");
    assert_eq!(web.get("/v1/customers/crm%2F7", Some(&key)).await.json["customerId"], "crm/7");
    // The reads not named Get or List that the console shows, over their JSON routes.
    let reply =
        web.post(&format!("/v1/surveys/{}/metrics:compare", survey.id), Some(&key), &serde_json::json!({})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.json["headline"]["summary"].is_string(), "{reply:?}");
    let reply = web.get(&format!("/v1/surveys/{}/themes", survey.id), Some(&key)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(app.all_responses().await.len(), 1, "the reads wrote nothing");
    let body = serde_json::json!({"author": "wall", "acknowledge": {}});
    web.post(&format!("/v1/follow-ups/{}:update", answer.follow_up_id), Some(&key), &body).await.assert_error(403, 7);
    web.post("/v1/surveys", Some(&key), &serde_json::json!({"kind": "SURVEY_KIND_NPS", "question": "Q"}))
        .await
        .assert_error(403, 7);
    // A publishable key reads nothing there.
    let pk = app.publishable_key().await;
    web.get("/v1/customers/crm%2F7/profile", Some(&pk)).await.assert_error(403, 7);

    let all = app.all_follow_ups().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, pb::FollowUpStatus::Open as i32, "unchanged");
    assert!(all[0].entries.iter().all(|e| e.author != "wall"));
    assert_eq!(app.all_responses().await.len(), 1);
}

async fn follow_ups_by_due_time_come_earliest_first_across_pages(b: Backend) {
    let app = spawn_app(b).await;
    let survey = app.survey(pb::SurveyKind::Nps, None).await;
    // Imported detractors open follow-ups due 48 hours after their answer: in an order
    // that is neither the import order nor its reverse.
    let now = chrono::Utc::now();
    let days_ago = [5, 1, 10, 3, 7, 2, 9];
    let responses = days_ago
        .iter()
        .enumerate()
        .map(|(i, d)| pb::ImportedResponse {
            external_id: format!("e{i}"),
            survey_id: survey.id.clone(),
            customer_id: format!("c{i}"),
            score: Some(2),
            recorded_time: Some(prost_types::Timestamp {
                seconds: (now - chrono::Duration::days(*d)).timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        })
        .collect();
    let mut imports = pb::import_service_client::ImportServiceClient::with_interceptor(
        app.channel.clone(),
        Auth(Some(app.key.clone())),
    );
    let out = imports
        .import_responses(pb::ImportResponsesRequest { responses, open_follow_ups: true, emit_events: false })
        .await
        .expect("imported")
        .into_inner();
    assert_eq!(out.imported, days_ago.len() as i32);

    let mut follow_ups = app.follow_ups.clone();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = follow_ups
            .list_follow_ups(pb::ListFollowUpsRequest {
                order_by: "due_time".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        seen.extend(page.follow_ups.iter().map(|f| (f.due_time.expect("a due time").seconds, f.customer_id.clone())));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut by_age: Vec<(i64, usize)> = days_ago.iter().enumerate().map(|(i, d)| (-d, i)).collect();
    by_age.sort();
    let want: Vec<String> = by_age.iter().map(|(_, i)| format!("c{i}")).collect();
    assert_eq!(seen.iter().map(|s| s.1.clone()).collect::<Vec<_>>(), want, "the earliest due first: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));

    // A token of the newest-first order does not continue the due order, and an order
    // this service does not know is refused, naming the field.
    let newest = follow_ups
        .list_follow_ups(pb::ListFollowUpsRequest { page_size: 3, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(!newest.next_page_token.is_empty());
    let err = follow_ups
        .list_follow_ups(pb::ListFollowUpsRequest {
            order_by: "due_time".into(),
            page_size: 3,
            page_token: newest.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    let err = follow_ups
        .list_follow_ups(pb::ListFollowUpsRequest { order_by: "score desc".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "order_by");
}
