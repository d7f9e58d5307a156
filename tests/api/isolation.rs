//! Tenant isolation for every RPC (docs/api.md, "Keys and tenants"): a key of tenant B can never read, change
//! or even learn of tenant A's data. It gets `NOT_FOUND` exactly as for an id that does
//! not exist, lists show it nothing of A's, and A's data is unchanged afterwards.
//! Invitation tokens are credentials for one invitation only, whoever's key rides along.

use tonic::{Code, Status};

use crate::helpers::*;

crate::on_both!(
    another_tenant_gets_not_found_for_every_rpc_on_a_tenants_ids_exactly_as_for_made_up_ids,
    another_tenants_lists_and_metrics_show_nothing_of_a_tenants_data,
    a_customer_id_used_by_two_tenants_is_two_customers,
    idempotency_keys_are_per_tenant,
    a_token_reveals_its_invitation_and_nothing_more_whatever_key_comes_with_it,
);

/// What tenant A owns at the start of each scenario.
struct TenantA {
    survey: pb::Survey,
    token: String,
    invitation: pb::Invitation,
    response: pb::Response,
    follow_up: pb::FollowUp,
}

/// Tenant A (`app.key`): an NPS survey, an invitation to `cust-1` (unanswered) and a
/// direct score of 2 from `cust-2`, which opens a follow-up.
async fn tenant_a(app: &TestApp) -> TenantA {
    let survey = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&survey.id, "cust-1").await;
    assert!(issued.issued);
    let response = app.answer(&survey.id, "cust-2", 2).await.expect("a low score");
    assert!(!response.follow_up_id.is_empty(), "a score of 2 opens a follow-up");
    let follow_up = app
        .follow_ups
        .clone()
        .get_follow_up(pb::GetFollowUpRequest { id: response.follow_up_id.clone() })
        .await
        .expect("A reads its follow-up")
        .into_inner();
    assert_eq!(follow_up.status, pb::FollowUpStatus::Open as i32);
    TenantA { survey, token: issued.token, invitation: issued.invitation.expect("an invitation"), response, follow_up }
}

fn made_up_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The error of `on_a` (a call on A's id) must be NOT_FOUND and say exactly what the
/// error of `on_made_up` (the same call on an id nobody has) says, ids aside.
#[track_caller]
fn assert_same_not_found<T: std::fmt::Debug>(
    rpc: &str,
    on_a: Result<T, Status>,
    a_id: &str,
    on_made_up: Result<T, Status>,
    made_up: &str,
) {
    let a = on_a.expect_err(&format!("{rpc} on A's id must fail for B"));
    let m = on_made_up.expect_err(&format!("{rpc} on a made-up id must fail"));
    assert_eq!(m.code(), Code::NotFound, "{rpc} on a made-up id: {m:?}");
    assert_eq!(a.code(), m.code(), "{rpc}: B must get what a made-up id gets ({a:?} vs {m:?})");
    assert_eq!(
        a.message().replace(a_id, "<id>"),
        m.message().replace(made_up, "<id>"),
        "{rpc}: the message must not tell A's id from a made-up one"
    );
    assert_eq!(a.details(), m.details(), "{rpc}: the details must not differ either");
}

async fn another_tenant_gets_not_found_for_every_rpc_on_a_tenants_ids_exactly_as_for_made_up_ids(b: Backend) {
    let app = spawn_app(b).await;
    let a = tenant_a(&app).await;
    let key_b = app.other_tenant_key().await;
    let mut sb = app.surveys_as(Some(&key_b));
    let mut fb = app.follow_ups_as(Some(&key_b));
    let fake = made_up_id();

    // GetSurvey.
    let get = |id: &str| pb::GetSurveyRequest { id: id.into() };
    let on_a = sb.get_survey(get(&a.survey.id)).await;
    let on_fake = sb.get_survey(get(&fake)).await;
    assert_same_not_found("GetSurvey", on_a, &a.survey.id, on_fake, &fake);

    // UpdateSurvey.
    let update = |id: &str| pb::UpdateSurveyRequest {
        survey: Some(pb::Survey { id: id.into(), question: "Hijacked?".into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["question".into()] }),
    };
    let on_a = sb.update_survey(update(&a.survey.id)).await;
    let on_fake = sb.update_survey(update(&fake)).await;
    assert_same_not_found("UpdateSurvey", on_a, &a.survey.id, on_fake, &fake);

    // ArchiveSurvey.
    let on_a = sb.archive_survey(pb::ArchiveSurveyRequest { id: a.survey.id.clone() }).await;
    let on_fake = sb.archive_survey(pb::ArchiveSurveyRequest { id: fake.clone() }).await;
    assert_same_not_found("ArchiveSurvey", on_a, &a.survey.id, on_fake, &fake);

    // CheckEligibility, for a customer A really has.
    let check = |id: &str| pb::CheckEligibilityRequest { survey_id: id.into(), customer_id: "cust-1".into() };
    let on_a = sb.check_eligibility(check(&a.survey.id)).await;
    let on_fake = sb.check_eligibility(check(&fake)).await;
    assert_same_not_found("CheckEligibility", on_a, &a.survey.id, on_fake, &fake);

    // IssueSurvey.
    let issue = |id: &str| pb::IssueSurveyRequest {
        survey_id: id.into(),
        customer_id: "cust-1".into(),
        force: true,
        ..Default::default()
    };
    let on_a = sb.issue_survey(issue(&a.survey.id)).await;
    let on_fake = sb.issue_survey(issue(&fake)).await;
    assert_same_not_found("IssueSurvey", on_a, &a.survey.id, on_fake, &fake);

    // RecordResponse, direct, on A's survey.
    let record = |id: &str| pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
            survey_id: id.into(),
            customer_id: "cust-2".into(),
        })),
        score: Some(10),
        ..Default::default()
    };
    let on_a = sb.record_response(record(&a.survey.id)).await;
    let on_fake = sb.record_response(record(&fake)).await;
    assert_same_not_found("RecordResponse", on_a, &a.survey.id, on_fake, &fake);

    // UpdateResponse by response id.
    let change = |id: &str| pb::UpdateResponseRequest {
        target: Some(pb::update_response_request::Target::ResponseId(id.into())),
        score: Some(10),
        comment: Some("changed by someone else".into()),
        ..Default::default()
    };
    let on_a = sb.update_response(change(&a.response.id)).await;
    let on_fake = sb.update_response(change(&fake)).await;
    assert_same_not_found("UpdateResponse", on_a, &a.response.id, on_fake, &fake);

    // GetResponse.
    let on_a = sb.get_response(pb::GetResponseRequest { id: a.response.id.clone() }).await;
    let on_fake = sb.get_response(pb::GetResponseRequest { id: fake.clone() }).await;
    assert_same_not_found("GetResponse", on_a, &a.response.id, on_fake, &fake);

    // GetSurveyMetrics by A's survey id.
    let m = |id: &str| pb::GetSurveyMetricsRequest {
        scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(id.into())),
        ..Default::default()
    };
    let on_a = sb.get_survey_metrics(m(&a.survey.id)).await;
    let on_fake = sb.get_survey_metrics(m(&fake)).await;
    assert_same_not_found("GetSurveyMetrics", on_a, &a.survey.id, on_fake, &fake);

    // GetFollowUp.
    let on_a = fb.get_follow_up(pb::GetFollowUpRequest { id: a.follow_up.id.clone() }).await;
    let on_fake = fb.get_follow_up(pb::GetFollowUpRequest { id: fake.clone() }).await;
    assert_same_not_found("GetFollowUp", on_a, &a.follow_up.id, on_fake, &fake);

    // UpdateFollowUp, with every kind of action.
    let actions = [
        pb::update_follow_up_request::Action::Acknowledge(pb::update_follow_up_request::Acknowledge {}),
        pb::update_follow_up_request::Action::Resolve(pb::update_follow_up_request::Resolve {
            resolution: "closed by someone else".into(),
        }),
        pb::update_follow_up_request::Action::Dismiss(pb::update_follow_up_request::Dismiss { reason: "x".into() }),
        pb::update_follow_up_request::Action::Assign(pb::update_follow_up_request::Assign { assignee: "eve".into() }),
        pb::update_follow_up_request::Action::SetPriority(pb::update_follow_up_request::SetPriority {
            priority: pb::Priority::Urgent as i32,
        }),
        pb::update_follow_up_request::Action::AddNote(pb::update_follow_up_request::AddNote { body: "hi".into() }),
    ];
    for action in actions {
        let upd = |id: &str| pb::UpdateFollowUpRequest {
            id: id.into(),
            author: "eve@globex.example".into(),
            action: Some(action.clone()),
        };
        let on_a = fb.update_follow_up(upd(&a.follow_up.id)).await;
        let on_fake = fb.update_follow_up(upd(&fake)).await;
        assert_same_not_found(&format!("UpdateFollowUp {action:?}"), on_a, &a.follow_up.id, on_fake, &fake);
    }

    // A's data is as it was: the survey not changed or archived, no extra response,
    // the response unchanged, the follow-up still OPEN with the same history.
    let mut sa = app.surveys.clone();
    let survey = sa.get_survey(pb::GetSurveyRequest { id: a.survey.id.clone() }).await.unwrap().into_inner();
    assert_eq!(survey, a.survey);
    assert!(!survey.archived);
    let responses = app.all_responses().await;
    assert_eq!(responses, vec![a.response.clone()]);
    let follow_up = app
        .follow_ups
        .clone()
        .get_follow_up(pb::GetFollowUpRequest { id: a.follow_up.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(follow_up, a.follow_up);
    assert_eq!(follow_up.status, pb::FollowUpStatus::Open as i32);
    assert_eq!(app.all_follow_ups().await.len(), 1);
    // A's invitation is still pending, and B's forced issue left no trace in A's funnel.
    let inv = app
        .surveys_as(None)
        .get_invitation(pb::GetInvitationRequest { token: a.token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inv.invitation.unwrap().status, pb::InvitationStatus::Pending as i32);
    let m = sa
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(a.survey.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.summary.unwrap().n, 1);
    let f = m.funnel.unwrap();
    assert_eq!((f.issued, f.suppressed), (1, 0), "B's attempts left no invitation or suppression in A");
}

async fn another_tenants_lists_and_metrics_show_nothing_of_a_tenants_data(b: Backend) {
    let app = spawn_app(b).await;
    let a = tenant_a(&app).await;
    let key_b = app.other_tenant_key().await;
    let mut sb = app.surveys_as(Some(&key_b));
    let mut fb = app.follow_ups_as(Some(&key_b));
    let fake = made_up_id();

    for kind in [pb::SurveyKind::Unspecified, pb::SurveyKind::Nps] {
        let listed = sb
            .list_surveys(pb::ListSurveysRequest { include_archived: true, kind: kind as i32, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(listed.surveys.is_empty(), "{:?}", listed.surveys);
        assert!(listed.next_page_token.is_empty());
    }

    let listed = sb.list_responses(pb::ListResponsesRequest::default()).await.unwrap().into_inner();
    assert!(listed.responses.is_empty(), "{:?}", listed.responses);
    // Filtering by A's survey or A's customer answers as for ones that do not exist.
    let by_survey = |id: &str| pb::ListResponsesRequest { survey_id: id.into(), ..Default::default() };
    let on_a = sb.list_responses(by_survey(&a.survey.id)).await.map(|r| r.into_inner().responses);
    let on_fake = sb.list_responses(by_survey(&fake)).await.map(|r| r.into_inner().responses);
    assert_same_outcome("ListResponses by survey", on_a, on_fake);
    let by_customer = |id: &str| pb::ListResponsesRequest { customer_id: id.into(), ..Default::default() };
    let on_a = sb.list_responses(by_customer("cust-2")).await.map(|r| r.into_inner().responses);
    let on_fake = sb.list_responses(by_customer("nobody-at-all")).await.map(|r| r.into_inner().responses);
    assert_same_outcome("ListResponses by customer", on_a, on_fake);

    let listed = fb.list_follow_ups(pb::ListFollowUpsRequest::default()).await.unwrap().into_inner();
    assert!(listed.follow_ups.is_empty(), "{:?}", listed.follow_ups);
    let open = fb
        .list_follow_ups(pb::ListFollowUpsRequest { status: pb::FollowUpStatus::Open as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(open.follow_ups.is_empty());
    let by_survey = |id: &str| pb::ListFollowUpsRequest { survey_id: id.into(), ..Default::default() };
    let on_a = fb.list_follow_ups(by_survey(&a.survey.id)).await.map(|r| r.into_inner().follow_ups);
    let on_fake = fb.list_follow_ups(by_survey(&fake)).await.map(|r| r.into_inner().follow_ups);
    assert_same_outcome("ListFollowUps by survey", on_a, on_fake);
    let by_customer = |id: &str| pb::ListFollowUpsRequest { customer_id: id.into(), ..Default::default() };
    let on_a = fb.list_follow_ups(by_customer("cust-2")).await.map(|r| r.into_inner().follow_ups);
    let on_fake = fb.list_follow_ups(by_customer("nobody-at-all")).await.map(|r| r.into_inner().follow_ups);
    assert_same_outcome("ListFollowUps by customer", on_a, on_fake);

    // Metrics by kind count only B's own surveys: none, then B's one answer.
    let by_kind = pb::GetSurveyMetricsRequest {
        scope: Some(pb::get_survey_metrics_request::Scope::Kind(pb::SurveyKind::Nps as i32)),
        ..Default::default()
    };
    let m = sb.get_survey_metrics(by_kind.clone()).await.unwrap().into_inner();
    let sum = m.summary.unwrap();
    assert_eq!((sum.n, sum.headline), (0, None));
    let f = m.funnel.unwrap();
    assert_eq!((f.issued, f.suppressed), (0, 0));

    let survey_b = sb
        .create_survey(pb::CreateSurveyRequest {
            survey: Some(pb::Survey { kind: pb::SurveyKind::Nps as i32, question: "B?".into(), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    sb.record_response(pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
            survey_id: survey_b.id.clone(),
            customer_id: "cust-2".into(),
        })),
        score: Some(10),
        ..Default::default()
    })
    .await
    .unwrap();
    let m = sb.get_survey_metrics(by_kind.clone()).await.unwrap().into_inner();
    let sum = m.summary.unwrap();
    assert_eq!(sum.n, 1, "only B's own answer");
    assert_eq!(sum.headline, Some(100.0));
    // And A's by kind still sees only A's answer.
    let m = app.surveys.clone().get_survey_metrics(by_kind).await.unwrap().into_inner();
    let sum = m.summary.unwrap();
    assert_eq!(sum.n, 1);
    assert_eq!(sum.headline, Some(-100.0));

    // B lists only its own survey and response; A's lists are untouched.
    let listed = sb.list_surveys(pb::ListSurveysRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.surveys.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![survey_b.id.as_str()]);
    let listed = sb.list_responses(pb::ListResponsesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.responses.len(), 1);
    assert_eq!(listed.responses[0].survey_id, survey_b.id);
    assert_eq!(app.all_responses().await, vec![a.response]);
    let listed = app.surveys.clone().list_surveys(pb::ListSurveysRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.surveys, vec![a.survey]);
}

/// Both calls must end alike: both OK and empty, or both the same error code.
#[track_caller]
fn assert_same_outcome<T: std::fmt::Debug>(what: &str, on_a: Result<Vec<T>, Status>, on_fake: Result<Vec<T>, Status>) {
    match (on_a, on_fake) {
        (Ok(a), Ok(f)) => {
            assert!(a.is_empty(), "{what}: B sees A's data: {a:?}");
            assert!(f.is_empty(), "{what}: {f:?}");
        }
        (Err(a), Err(f)) => assert_eq!(a.code(), f.code(), "{what}: {a:?} vs {f:?}"),
        (a, f) => panic!("{what}: A's id and a made-up id must answer alike: {a:?} vs {f:?}"),
    }
}

async fn a_customer_id_used_by_two_tenants_is_two_customers(b: Backend) {
    let app = spawn_app(b).await;
    let a = tenant_a(&app).await;
    let key_b = app.other_tenant_key().await;
    let mut sb = app.surveys_as(Some(&key_b));

    // B unsubscribes "cust-1" and "cust-3" (its own customers of those ids).
    for customer in ["cust-1", "cust-3"] {
        let sub = sb
            .set_customer_subscription(pb::SetCustomerSubscriptionRequest {
                customer_id: customer.into(),
                unsubscribed: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(sub.unsubscribed);
    }
    // It holds for B's survey…
    let survey_b = sb
        .create_survey(pb::CreateSurveyRequest {
            survey: Some(pb::Survey { kind: pb::SurveyKind::Nps as i32, question: "B?".into(), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    let e = sb
        .check_eligibility(pb::CheckEligibilityRequest { survey_id: survey_b.id.clone(), customer_id: "cust-3".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.eligible);
    assert_eq!(e.rule, pb::EligibilityRule::Unsubscribed as i32);

    // …but A's customers of the same ids are untouched: A may still survey them.
    let mut sa = app.surveys.clone();
    for customer in ["cust-1", "cust-3"] {
        let e = sa
            .check_eligibility(pb::CheckEligibilityRequest {
                survey_id: a.survey.id.clone(),
                customer_id: customer.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(e.eligible, "{customer}: {e:?}");
    }
    let issued = app.issue(&a.survey.id, "cust-3").await;
    assert!(issued.issued, "B's opt-out does not reach A's customer: {issued:?}");
    let issued = app.issue(&a.survey.id, "cust-1").await;
    assert!(issued.issued, "{issued:?}");

    // And the other way round: A's opt-out does not reach B's customer "cust-2"
    // (A's cust-2 has answered; B's has not even been seen).
    sa.set_customer_subscription(pb::SetCustomerSubscriptionRequest {
        customer_id: "cust-2".into(),
        unsubscribed: true,
    })
    .await
    .unwrap();
    let out = sb
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: survey_b.id.clone(),
            customer_id: "cust-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(out.issued, "{out:?}");
    // B re-subscribing its cust-2 does not re-subscribe anything of A's either.
    sb.set_customer_subscription(pb::SetCustomerSubscriptionRequest {
        customer_id: "cust-2".into(),
        unsubscribed: false,
    })
    .await
    .unwrap();
    let e = sa
        .check_eligibility(pb::CheckEligibilityRequest { survey_id: a.survey.id.clone(), customer_id: "cust-2".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!e.eligible);
    assert!(
        e.blocking_rules.iter().any(|r| r.rule == pb::EligibilityRule::Unsubscribed as i32),
        "A's own opt-out still holds: {e:?}"
    );
}

async fn idempotency_keys_are_per_tenant(b: Backend) {
    let app = spawn_app(b).await;
    let survey_a = app.survey(pb::SurveyKind::Nps, None).await;
    let mut sa = app.surveys.clone();
    let issued_a = sa
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: survey_a.id.clone(),
            customer_id: "cust-1".into(),
            idempotency_key: "shared-issue-key".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let recorded_a = sa
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: survey_a.id.clone(),
                customer_id: "cust-2".into(),
            })),
            score: Some(3),
            idempotency_key: "shared-record-key".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let key_b = app.other_tenant_key().await;
    let mut sb = app.surveys_as(Some(&key_b));
    let survey_b = sb
        .create_survey(pb::CreateSurveyRequest {
            survey: Some(pb::Survey { kind: pb::SurveyKind::Nps as i32, question: "B?".into(), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    // The same keys in B issue and record B's own, new things — never A's, never a conflict.
    let issued_b = sb
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: survey_b.id.clone(),
            customer_id: "cust-1".into(),
            idempotency_key: "shared-issue-key".into(),
            ..Default::default()
        })
        .await
        .expect("B's first use of the key is a first use")
        .into_inner();
    assert!(issued_b.issued);
    let inv_b = issued_b.invitation.unwrap();
    assert_ne!(inv_b.id, issued_a.invitation.as_ref().unwrap().id);
    assert_eq!(inv_b.survey_id, survey_b.id);
    let recorded_b = sb
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: survey_b.id.clone(),
                customer_id: "cust-2".into(),
            })),
            score: Some(3),
            idempotency_key: "shared-record-key".into(),
            ..Default::default()
        })
        .await
        .expect("B's first use of the key is a first use")
        .into_inner();
    assert_ne!(recorded_b.id, recorded_a.id);
    assert_eq!(recorded_b.survey_id, survey_b.id);

    // A's retry still returns A's own first result.
    let again = sa
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: survey_a.id.clone(),
                customer_id: "cust-2".into(),
            })),
            score: Some(3),
            idempotency_key: "shared-record-key".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, recorded_a.id);
    assert_eq!(app.all_responses().await.len(), 1);
    assert_eq!(app.all_follow_ups().await.len(), 1);
}

async fn a_token_reveals_its_invitation_and_nothing_more_whatever_key_comes_with_it(b: Backend) {
    let app = spawn_app(b).await;
    let a = tenant_a(&app).await;
    let key_b = app.other_tenant_key().await;
    let mut sb = app.surveys_as(Some(&key_b));
    let get = |token: &str| pb::GetInvitationRequest { token: token.into() };

    // Without any key, the token is the credential.
    let anon = app.surveys_as(None).get_invitation(get(&a.token)).await.expect("a token needs no key").into_inner();
    let inv = anon.invitation.clone().unwrap();
    assert_eq!(inv.id, a.invitation.id);
    assert_eq!(inv.survey_id, a.survey.id);
    assert_eq!(inv.customer_id, "cust-1");
    assert_eq!(inv.status, pb::InvitationStatus::Pending as i32);
    let form = anon.form.clone().unwrap();
    assert_eq!(form.survey_id, a.survey.id);
    assert_eq!(form.question, a.survey.question);
    assert_eq!((form.scale_min, form.scale_max), (0, 10));

    // With B's key the answer is the very same: the key adds nothing.
    let with_b = sb.get_invitation(get(&a.token)).await.expect("the token works whatever the key").into_inner();
    assert_eq!(with_b, anon);
    // An unknown token is NOT_FOUND, with or without a key.
    assert_code(app.surveys_as(None).get_invitation(get("inv_not-a-real-token")).await, Code::NotFound);
    assert_code(sb.get_invitation(get("inv_not-a-real-token")).await, Code::NotFound);

    // What the token names is still invisible to B's key.
    assert_code(sb.get_survey(pb::GetSurveyRequest { id: inv.survey_id.clone() }).await, Code::NotFound);
    assert_code(
        sb.check_eligibility(pb::CheckEligibilityRequest {
            survey_id: inv.survey_id.clone(),
            customer_id: inv.customer_id.clone(),
        })
        .await,
        Code::NotFound,
    );

    // Answering by token with B's key attached records into A's tenant, for that invitation only.
    let answered = sb
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(a.token.clone())),
            score: Some(9),
            ..Default::default()
        })
        .await
        .expect("the token is the credential")
        .into_inner();
    assert_eq!(answered.survey_id, a.survey.id);
    assert_eq!(answered.invitation_id, a.invitation.id);
    // B can neither read it by id nor list it; A sees it.
    assert_code(sb.get_response(pb::GetResponseRequest { id: answered.id.clone() }).await, Code::NotFound);
    assert_code(
        sb.update_response(pb::UpdateResponseRequest {
            target: Some(pb::update_response_request::Target::ResponseId(answered.id.clone())),
            comment: Some("B was here".into()),
            ..Default::default()
        })
        .await,
        Code::NotFound,
    );
    let listed = sb.list_responses(pb::ListResponsesRequest::default()).await.unwrap().into_inner();
    assert!(listed.responses.is_empty(), "{:?}", listed.responses);
    let mut ids: Vec<String> = app.all_responses().await.into_iter().map(|r| r.id).collect();
    ids.sort();
    let mut expected = vec![a.response.id.clone(), answered.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // The token updates its own answer's comment, and only that one.
    let updated = sb
        .update_response(pb::UpdateResponseRequest {
            target: Some(pb::update_response_request::Target::Token(a.token.clone())),
            comment: Some("Great support".into()),
            ..Default::default()
        })
        .await
        .expect("the token may update its answer")
        .into_inner();
    assert_eq!(updated.id, answered.id);
    let other = app
        .surveys
        .clone()
        .get_response(pb::GetResponseRequest { id: a.response.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other, a.response, "A's other response is untouched");
    // The token now shows its invitation as answered, still nothing more.
    let after = app.surveys_as(None).get_invitation(get(&a.token)).await.unwrap().into_inner();
    let after_inv = after.invitation.unwrap();
    assert_eq!(after_inv.status, pb::InvitationStatus::Answered as i32);
    assert_eq!(after_inv.response_id, answered.id);
}
