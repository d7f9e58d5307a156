//! Hardening of who may call what, and of what an error can carry: concurrent
//! retries of a token answer, the per-address limit of token calls with a made-up
//! secret key, permission before validation for publishable keys on every method of
//! the descriptor, and errors that quote huge input.

use std::str::FromStr;
use std::time::Instant;

use rapport::grpc::gate::{Access, OPEN_METHODS, access};
use rapport::grpc::pb::engagement_service_client::EngagementServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_types::StatusExt;

use crate::helpers::*;
use crate::web::Web;

crate::on_both!(
    concurrent_retries_of_a_token_answer_get_the_first_result,
    a_made_up_secret_key_does_not_skip_the_address_limit_of_token_calls,
    a_publishable_key_gets_permission_denied_before_any_input_check_on_every_secret_method,
    errors_quote_only_a_short_prefix_of_huge_input,
);

fn by_token(token: &str, score: i32, key: &str) -> pb::RecordResponseRequest {
    pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Token(token.into())),
        score: Some(score),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

async fn concurrent_retries_of_a_token_answer_get_the_first_result(b: Backend) {
    const PAIRS: usize = 10;
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut tokens = Vec::new();
    for i in 0..PAIRS {
        tokens.push(app.issue(&s.id, &format!("c{i}")).await.token);
    }
    // Every pair's two calls are in flight at once, and all pairs together.
    let mut calls = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        for _ in 0..2 {
            let mut client = app.surveys_as(None);
            let req = by_token(token, 5, &format!("k-{i}"));
            calls.spawn(async move { (i, client.record_response(req).await.map(|r| r.into_inner())) });
        }
    }
    let mut replies: Vec<Vec<pb::Response>> = vec![Vec::new(); PAIRS];
    while let Some(done) = calls.join_next().await {
        let (i, reply) = done.expect("the call ran");
        replies[i].push(reply.unwrap_or_else(|e| panic!("pair {i}: a retry with the same key and body failed: {e:?}")));
    }
    for (i, pair) in replies.iter().enumerate() {
        assert_eq!(pair.len(), 2);
        assert_eq!(pair[0].id, pair[1].id, "pair {i}: both calls return the one response");
        assert_eq!(pair[0].follow_up_id, pair[1].follow_up_id, "pair {i}: and its one follow-up");
        assert!(!pair[0].follow_up_id.is_empty(), "a 5 opens a follow-up");
    }
    assert_eq!(app.all_responses().await.len(), PAIRS, "one response per invitation");
    assert_eq!(app.all_follow_ups().await.len(), PAIRS, "one follow-up per response");

    // The key still guards its body: another score with the same key is refused, and
    // an answer without a key to an answered invitation is too.
    let err =
        assert_code(app.surveys_as(None).record_response(by_token(&tokens[0], 9, "k-0")).await, Code::AlreadyExists);
    assert!(err.message().contains("idempotency_key"), "{err:?}");
    assert_code(app.surveys_as(None).record_response(by_token(&tokens[0], 5, "")).await, Code::AlreadyExists);
}

/// A survey client whose calls come from `ip` (through the trusted proxy header) with
/// `authorization: Bearer <key>`.
fn surveys_from(app: &TestApp, key: &str, ip: &'static str) -> FromAddress {
    FromAddress { client: app.surveys_as(Some(key)), ip }
}

struct FromAddress {
    client: Surveys,
    ip: &'static str,
}

impl FromAddress {
    async fn get_invitation(&mut self, token: &str) -> Result<(), tonic::Status> {
        let mut req = tonic::Request::new(pb::GetInvitationRequest { token: token.into() });
        req.metadata_mut().insert("x-forwarded-for", MetadataValue::from_static(self.ip));
        self.client.get_invitation(req).await.map(|_| ())
    }

    async fn record_response(&mut self, r: pb::RecordResponseRequest) -> Result<pb::Response, tonic::Status> {
        let mut req = tonic::Request::new(r);
        req.metadata_mut().insert("x-forwarded-for", MetadataValue::from_static(self.ip));
        self.client.record_response(req).await.map(|r| r.into_inner())
    }
}

async fn a_made_up_secret_key_does_not_skip_the_address_limit_of_token_calls(b: Backend) {
    const RATE: u32 = 60;
    const CALLS: usize = 150;
    let app = spawn_app_with(b, |a| {
        a.client_address_rate_per_minute = RATE;
        a.client_address_burst = RATE;
        a.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let token = app.issue(&s.id, "c1").await.token;

    // 150 calls with a made-up secret key: only the address's burst (and what refills
    // meanwhile, one a second) gets through.
    let mut fake = surveys_from(&app, "rk_secret_made_up_by_the_caller", "192.0.2.7");
    let started = Instant::now();
    let mut passed = 0;
    for _ in 0..CALLS {
        match fake.get_invitation(&token).await {
            Ok(()) => passed += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.get_details_retry_info().is_some(), "with RetryInfo");
            }
        }
    }
    let refilled = started.elapsed().as_secs() as usize + 1;
    assert!(
        (RATE as usize..=RATE as usize + refilled).contains(&passed),
        "{passed} of {CALLS} calls passed in {:?}",
        started.elapsed()
    );
    // The other token calls, and the JSON route, share that address's bucket.
    assert_code(fake.record_response(by_token(&token, 9, "")).await, Code::ResourceExhausted);
    let web = Web::new(&app);
    let json = web
        .send(
            "GET",
            &format!("/v1/invitations/{token}"),
            Some("rk_secret_made_up_by_the_caller"),
            None,
            &[("x-forwarded-for", "192.0.2.7")],
        )
        .await;
    json.assert_error(429, 8);

    // A real secret key is not limited: the tenant's key (it authenticated already)
    // from the exhausted address, and a new key never used before from another one.
    let mut real = surveys_from(&app, &app.key, "192.0.2.7");
    for _ in 0..CALLS {
        real.get_invitation(&token).await.expect("a secret key is not limited");
    }
    let fresh = app.services.create_key("acme", rapport::domain::model::KeyKind::Secret).await.unwrap().secret;
    let mut fresh = surveys_from(&app, &fresh, "192.0.2.8");
    for _ in 0..CALLS {
        fresh.get_invitation(&token).await.expect("a new secret key is not limited");
    }
    let answered = fresh.record_response(by_token(&token, 9, "")).await.expect("answered with a secret key");
    assert_eq!(answered.score, 9);
}

/// Calls `path` with an empty request and `key`, whatever its types (an empty
/// message is the default value of every request message).
pub(crate) async fn call_empty(
    app: &TestApp,
    path: &str,
    key: &str,
    server_streaming: bool,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(());
    req.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    if server_streaming {
        let mut stream = grpc.server_streaming(req, path, codec).await?.into_inner();
        stream.message().await.map(|_| ())
    } else {
        grpc.unary(req, path, codec).await.map(|_| ())
    }
}

async fn a_publishable_key_gets_permission_denied_before_any_input_check_on_every_secret_method(b: Backend) {
    let app = spawn_app(b).await;
    let pk = app.publishable_key().await;
    let pool = prost_reflect::DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("the descriptor set");
    let mut all = Vec::new();
    for service in pool.services().filter(|s| s.package_name() == "rapport.v1") {
        for method in service.methods() {
            all.push((format!("/{}/{}", service.full_name(), method.name()), method.is_server_streaming()));
        }
    }
    // The table of methods open to publishable keys and tokens names real methods.
    for (open, _) in OPEN_METHODS {
        assert!(all.iter().any(|(p, _)| p == open), "{open} is not a method of rapport.v1");
    }
    let secret_only: Vec<&(String, bool)> = all.iter().filter(|(p, _)| access(p) == Access::Secret).collect();
    // The admin service's methods take the operator token, and no tenant's key either.
    let operator: Vec<&(String, bool)> = all.iter().filter(|(p, _)| access(p) == Access::Operator).collect();
    assert!(!operator.is_empty(), "the admin service's methods were found: {all:?}");
    assert_eq!(secret_only.len() + operator.len(), all.len() - OPEN_METHODS.len());
    assert!(secret_only.len() >= 30, "every service's methods were found: {all:?}");
    for (path, streaming) in secret_only.iter().chain(&operator) {
        let err = call_empty(&app, path, &pk, *streaming).await.expect_err(path);
        assert_eq!(err.code(), Code::PermissionDenied, "{path} with a publishable key and an empty request: {err:?}");
    }
    // The handlers check too: a publishable key on the secret-key form of the methods
    // it may call is refused before the input is read.
    let mut surveys = app.surveys_as(Some(&pk));
    let direct = pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer::default())),
        ..Default::default()
    };
    assert_code(surveys.record_response(direct).await, Code::PermissionDenied);
    let by_id = pb::UpdateResponseRequest {
        target: Some(pb::update_response_request::Target::ResponseId(String::new())),
        ..Default::default()
    };
    assert_code(surveys.update_response(by_id).await, Code::PermissionDenied);
    // Without a key, or with an unknown one, it stays UNAUTHENTICATED.
    let err = call_empty(&app, "/rapport.v1.SurveyService/CreateSurvey", "rk_secret_unknown", false).await;
    assert_eq!(err.unwrap_err().code(), Code::Unauthenticated);
    assert!(app.all_responses().await.is_empty(), "nothing was written");
}

async fn errors_quote_only_a_short_prefix_of_huge_input(b: Backend) {
    let app = spawn_app(b).await;
    let mut engagement = EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let huge = "x".repeat(20_000);
    let small = |e: &tonic::Status| {
        let details: usize = e.details().len();
        assert!(e.message().len() <= 1024, "message of {} bytes", e.message().len());
        assert!(details <= 8 * 1024, "details of {details} bytes");
    };
    let top = pb::ListTopCustomersRequest {
        ranking: Some(pb::list_top_customers_request::Ranking::Action(huge.clone())),
        ..Default::default()
    };
    let err = engagement.list_top_customers(top).await.unwrap_err();
    assert_invalid(&err, "action");
    small(&err);
    let values = pb::TopPropertyValuesRequest { action: huge.clone(), property: "plan".into(), ..Default::default() };
    let err = engagement.top_property_values(values).await.unwrap_err();
    assert_invalid(&err, "action");
    small(&err);
    // A bad field in an update mask is quoted short too.
    let mut surveys = app.surveys.clone();
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let update = pb::UpdateSurveyRequest {
        survey: Some(s),
        update_mask: Some(prost_types::FieldMask { paths: vec![huge.clone()] }),
    };
    let err = surveys.update_survey(update).await.unwrap_err();
    assert_invalid(&err, "update_mask");
    small(&err);
}
