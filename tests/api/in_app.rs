//! In-app feedback over native gRPC: what a publishable key may do (and nothing
//! else), in-app surveys only, one decision a day, dismissals, and identity
//! verification.

use chrono::Duration;
use hmac::{Hmac, KeyInit, Mac};
use pb::record_response_request::Target;
use rapport::service::in_app::IdentityChange;
use sha2::Sha256;
use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    a_publishable_key_issues_an_in_app_invitation_and_the_form_answers_it_with_the_token,
    every_other_rpc_refuses_a_publishable_key,
    a_survey_not_marked_in_app_is_not_found_for_a_publishable_key,
    publishable_keys_cannot_force_set_properties_pick_a_channel_or_an_idempotency_key,
    an_in_app_issue_is_decided_once_a_day_and_a_dismissed_form_stays_closed,
    dismissing_is_idempotent_and_refused_once_answered_or_expired,
    identity_verification_requires_the_hmac_of_the_customer_id,
    a_revoked_publishable_key_is_unauthenticated,
);

/// The customer hash as the CRM's server computes it: hex HMAC-SHA256, written here
/// with the `hmac` crate directly rather than through rapport.
fn hmac_hex(secret: &str, customer: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(customer.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

async fn in_app_nps(app: &TestApp) -> pb::Survey {
    app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, in_app: true, ..Default::default() }).await
}

fn issue_req(survey: &str, customer: &str) -> pb::IssueSurveyRequest {
    pb::IssueSurveyRequest { survey_id: survey.into(), customer_id: customer.into(), ..Default::default() }
}

async fn funnel(app: &TestApp, survey: &str) -> pb::Funnel {
    app.surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.into())),
            ..Default::default()
        })
        .await
        .expect("metrics")
        .into_inner()
        .funnel
        .expect("a funnel")
}

async fn a_publishable_key_issues_an_in_app_invitation_and_the_form_answers_it_with_the_token(b: Backend) {
    let app = spawn_app(b).await;
    let s = in_app_nps(&app).await;
    let pk = app.publishable_key().await;
    assert!(pk.starts_with("rk_pub_"));
    let mut web = app.surveys_as(Some(&pk));
    let out = web.issue_survey(issue_req(&s.id, "crm-7")).await.expect("issued").into_inner();
    assert!(out.issued);
    let inv = out.invitation.unwrap();
    assert_eq!(inv.channel, pb::Channel::InApp as i32, "a publishable key always issues in-app");
    assert_eq!(inv.status, pb::InvitationStatus::Pending as i32);

    let form = web.get_invitation(pb::GetInvitationRequest { token: out.token.clone() }).await.unwrap().into_inner();
    assert_eq!(form.form.unwrap().scale_max, 10);
    let r = web
        .record_response(pb::RecordResponseRequest {
            target: Some(Target::Token(out.token.clone())),
            score: Some(2),
            ..Default::default()
        })
        .await
        .expect("recorded")
        .into_inner();
    assert!(!r.follow_up_id.is_empty(), "a detractor opens a follow-up");
    let r = web
        .update_response(pb::UpdateResponseRequest {
            target: Some(pb::update_response_request::Target::Token(out.token)),
            comment: Some("Checkout keeps failing".into()),
            ..Default::default()
        })
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(r.comment, "Checkout keeps failing");
    // The CRM sees it with its secret key.
    let all = app.all_responses().await;
    assert_eq!((all.len(), all[0].score, all[0].comment.as_str()), (1, 2, "Checkout keeps failing"));
    assert_eq!(app.all_follow_ups().await.len(), 1);
}

async fn every_other_rpc_refuses_a_publishable_key(b: Backend) {
    let app = spawn_app(b).await;
    let s = in_app_nps(&app).await;
    let r = app.answer(&s.id, "c1", 3).await.expect("a response with a follow-up");
    let pk = app.publishable_key().await;
    let mut sv = app.surveys_as(Some(&pk));
    let mut fu = app.follow_ups_as(Some(&pk));
    let survey = || Some(pb::Survey { id: s.id.clone(), name: "x".into(), ..Default::default() });
    let mask = Some(prost_types::FieldMask { paths: vec!["name".into()] });
    let denied = [
        (
            "CreateSurvey",
            sv.create_survey(pb::CreateSurveyRequest {
                survey: Some(pb::Survey {
                    kind: pb::SurveyKind::Nps as i32,
                    question: "Q".into(),
                    ..Default::default()
                }),
            })
            .await
            .map(|_| ()),
        ),
        ("GetSurvey", sv.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.map(|_| ())),
        ("ListSurveys", sv.list_surveys(pb::ListSurveysRequest::default()).await.map(|_| ())),
        (
            "UpdateSurvey",
            sv.update_survey(pb::UpdateSurveyRequest { survey: survey(), update_mask: mask }).await.map(|_| ()),
        ),
        ("ArchiveSurvey", sv.archive_survey(pb::ArchiveSurveyRequest { id: s.id.clone() }).await.map(|_| ())),
        (
            "CheckEligibility",
            sv.check_eligibility(pb::CheckEligibilityRequest { survey_id: s.id.clone(), customer_id: "c1".into() })
                .await
                .map(|_| ()),
        ),
        (
            "SetCustomerSubscription",
            sv.set_customer_subscription(pb::SetCustomerSubscriptionRequest {
                customer_id: "c1".into(),
                unsubscribed: true,
            })
            .await
            .map(|_| ()),
        ),
        (
            "RecordResponse (direct)",
            sv.record_response(pb::RecordResponseRequest {
                target: Some(Target::Direct(pb::SurveyCustomer { survey_id: s.id.clone(), customer_id: "c2".into() })),
                score: Some(9),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "UpdateResponse (by id)",
            sv.update_response(pb::UpdateResponseRequest {
                target: Some(pb::update_response_request::Target::ResponseId(r.id.clone())),
                comment: Some("x".into()),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        ("GetResponse", sv.get_response(pb::GetResponseRequest { id: r.id.clone() }).await.map(|_| ())),
        ("ListResponses", sv.list_responses(pb::ListResponsesRequest::default()).await.map(|_| ())),
        (
            "GetSurveyMetrics",
            sv.get_survey_metrics(pb::GetSurveyMetricsRequest {
                scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(s.id.clone())),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        ("GetFollowUp", fu.get_follow_up(pb::GetFollowUpRequest { id: r.follow_up_id.clone() }).await.map(|_| ())),
        ("ListFollowUps", fu.list_follow_ups(pb::ListFollowUpsRequest::default()).await.map(|_| ())),
        (
            "UpdateFollowUp",
            fu.update_follow_up(pb::UpdateFollowUpRequest {
                id: r.follow_up_id.clone(),
                action: Some(pb::update_follow_up_request::Action::Acknowledge(
                    pb::update_follow_up_request::Acknowledge {},
                )),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
    ];
    for (rpc, res) in denied {
        let err = res.expect_err(rpc);
        assert_eq!(err.code(), Code::PermissionDenied, "{rpc}: {err:?}");
    }
    // Nothing changed: the survey is not archived or renamed, the follow-up still open,
    // the customer still subscribed, one response only.
    let got = app.surveys.clone().get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.unwrap().into_inner();
    assert!(!got.archived && got.name.is_empty());
    assert_eq!(app.all_follow_ups().await[0].status, pb::FollowUpStatus::Open as i32);
    assert_eq!(app.all_responses().await.len(), 1);
    let blocking = app.issue(&s.id, "c1").await.eligibility.unwrap().blocking_rules;
    assert!(blocking.iter().all(|r| r.rule != pb::EligibilityRule::Unsubscribed as i32), "still subscribed");
}

async fn a_survey_not_marked_in_app_is_not_found_for_a_publishable_key(b: Backend) {
    let app = spawn_app(b).await;
    let email_only = app.survey(pb::SurveyKind::Csat, None).await;
    let pk = app.publishable_key().await;
    let mut web = app.surveys_as(Some(&pk));
    let err = web.issue_survey(issue_req(&email_only.id, "c1")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let missing = web.issue_survey(issue_req("01a20988-bb56-72df-b86d-0c51fcf49060", "c1")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        err.message().replace(&email_only.id, "ID"),
        missing.message().replace("01a20988-bb56-72df-b86d-0c51fcf49060", "ID"),
        "a survey not in-app looks exactly like one that does not exist"
    );
    // Another tenant's in-app survey is not found either.
    let other = app.other_tenant_key().await;
    let theirs = app
        .survey_as(
            &other,
            pb::Survey { kind: pb::SurveyKind::Nps as i32, question: "Q".into(), in_app: true, ..Default::default() },
        )
        .await;
    assert_eq!(web.issue_survey(issue_req(&theirs.id, "c1")).await.unwrap_err().code(), Code::NotFound);
    // Once marked in-app it can be issued.
    app.surveys
        .clone()
        .update_survey(pb::UpdateSurveyRequest {
            survey: Some(pb::Survey { id: email_only.id.clone(), in_app: true, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["in_app".into()] }),
        })
        .await
        .unwrap();
    assert!(web.issue_survey(issue_req(&email_only.id, "c1")).await.unwrap().into_inner().issued);
}

async fn publishable_keys_cannot_force_set_properties_pick_a_channel_or_an_idempotency_key(b: Backend) {
    let app = spawn_app(b).await;
    let s = in_app_nps(&app).await;
    let pk = app.publishable_key().await;
    let mut web = app.surveys_as(Some(&pk));
    let forced = pb::IssueSurveyRequest { force: true, ..issue_req(&s.id, "c1") };
    assert_code(web.issue_survey(forced).await, Code::PermissionDenied);
    let with_props =
        pb::IssueSurveyRequest { properties: [("plan".into(), "enterprise".into())].into(), ..issue_req(&s.id, "c1") };
    assert_code(web.issue_survey(with_props).await, Code::PermissionDenied);
    let email = pb::IssueSurveyRequest { channel: pb::Channel::Email as i32, ..issue_req(&s.id, "c1") };
    assert_invalid(&web.issue_survey(email).await.unwrap_err(), "channel");
    let keyed = pb::IssueSurveyRequest { idempotency_key: "k1".into(), ..issue_req(&s.id, "c1") };
    assert_invalid(&web.issue_survey(keyed).await.unwrap_err(), "idempotency_key");
    let f = funnel(&app, &s.id).await;
    assert_eq!((f.issued, f.suppressed), (0, 0), "nothing was issued or recorded");
    // IN_APP and unset are both fine.
    let in_app = pb::IssueSurveyRequest { channel: pb::Channel::InApp as i32, ..issue_req(&s.id, "c1") };
    assert!(web.issue_survey(in_app).await.unwrap().into_inner().issued);
}

async fn an_in_app_issue_is_decided_once_a_day_and_a_dismissed_form_stays_closed(b: Backend) {
    let app = spawn_app(b).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Ces as i32,
            in_app: true,
            policy: Some(pb::EligibilityPolicy { days_after_invitation_this_survey: Some(7), ..Default::default() }),
            ..Default::default()
        })
        .await;
    let pk = app.publishable_key().await;
    let mut web = app.surveys_as(Some(&pk));
    let first = web.issue_survey(issue_req(&s.id, "c1")).await.unwrap().into_inner();
    let again = web.issue_survey(issue_req(&s.id, "c1")).await.unwrap().into_inner();
    assert!(first.issued && again.issued);
    let id = first.invitation.as_ref().unwrap().id.clone();
    assert_eq!(again.invitation.as_ref().unwrap().id, id, "a page reload the same day gets the same invitation");
    assert!(!again.token.is_empty() && again.token != first.token, "with a fresh token");
    assert_code(web.get_invitation(pb::GetInvitationRequest { token: first.token.clone() }).await, Code::NotFound);

    let dismissed = web.dismiss_invitation(pb::DismissInvitationRequest { token: again.token.clone() }).await;
    let dismissed = dismissed.expect("dismissed").into_inner();
    assert_eq!(dismissed.status, pb::InvitationStatus::Dismissed as i32);
    assert!(dismissed.dismiss_time.is_some());
    let replay = web.issue_survey(issue_req(&s.id, "c1")).await.unwrap().into_inner();
    assert_eq!(replay.invitation.as_ref().unwrap().id, id);
    assert!(replay.token.is_empty(), "a dismissed form is not shown again");
    assert_eq!(replay.invitation.unwrap().status, pb::InvitationStatus::Dismissed as i32);

    // The next day the survey's invitation cooldown decides, recorded once.
    app.clock.advance(Duration::days(1));
    let next = web.issue_survey(issue_req(&s.id, "c1")).await.unwrap().into_inner();
    let next_again = web.issue_survey(issue_req(&s.id, "c1")).await.unwrap().into_inner();
    assert!(!next.issued && !next_again.issued);
    assert_eq!(next.eligibility.unwrap().rule, pb::EligibilityRule::InvitedThisSurvey as i32);
    assert_eq!(next.suppression_id, next_again.suppression_id, "one suppression for the day");
    let f = funnel(&app, &s.id).await;
    assert_eq!((f.issued, f.suppressed), (1, 1));

    // A week later it may show again: a new invitation.
    app.clock.advance(Duration::days(7));
    let later = web.issue_survey(issue_req(&s.id, "c1")).await.unwrap().into_inner();
    assert!(later.issued && !later.token.is_empty());
    assert_ne!(later.invitation.unwrap().id, id);
}

async fn dismissing_is_idempotent_and_refused_once_answered_or_expired(b: Backend) {
    let app = spawn_app(b).await;
    let s = in_app_nps(&app).await;
    let mut form = app.surveys_as(None);
    let t1 = app.issue(&s.id, "c1").await.token;
    let once = form.dismiss_invitation(pb::DismissInvitationRequest { token: t1.clone() }).await.unwrap().into_inner();
    app.clock.advance(Duration::minutes(5));
    let twice = form.dismiss_invitation(pb::DismissInvitationRequest { token: t1.clone() }).await.unwrap().into_inner();
    assert_eq!(once.dismiss_time, twice.dismiss_time, "the first dismissal is kept");
    // A dismissed invitation can still be answered from its link; it is then answered.
    form.record_response(pb::RecordResponseRequest {
        target: Some(Target::Token(t1.clone())),
        score: Some(10),
        ..Default::default()
    })
    .await
    .expect("still answerable");
    let got = form.get_invitation(pb::GetInvitationRequest { token: t1.clone() }).await.unwrap().into_inner();
    assert_eq!(got.invitation.unwrap().status, pb::InvitationStatus::Answered as i32);
    assert_code(form.dismiss_invitation(pb::DismissInvitationRequest { token: t1 }).await, Code::FailedPrecondition);

    let t2 = app.issue(&s.id, "c2").await.token;
    app.clock.advance(Duration::days(31));
    assert_code(form.dismiss_invitation(pb::DismissInvitationRequest { token: t2 }).await, Code::FailedPrecondition);
    assert_code(
        form.dismiss_invitation(pb::DismissInvitationRequest { token: "inv_nope".into() }).await,
        Code::NotFound,
    );
    assert_invalid(
        &form.dismiss_invitation(pb::DismissInvitationRequest { token: String::new() }).await.unwrap_err(),
        "token",
    );
}

async fn identity_verification_requires_the_hmac_of_the_customer_id(b: Backend) {
    let app = spawn_app(b).await;
    let s = in_app_nps(&app).await;
    let pk = app.publishable_key().await;
    let mut web = app.surveys_as(Some(&pk));
    // Off by default: no hash needed.
    assert!(web.issue_survey(issue_req(&s.id, "c0")).await.unwrap().into_inner().issued);

    let secret = app
        .services
        .set_identity_verification("acme", IdentityChange::Enable { rotate: false })
        .await
        .unwrap()
        .expect("a new secret is shown once");
    assert!(secret.starts_with("idv_") && secret.len() >= 40);
    let with_hash =
        |customer: &str, hash: String| pb::IssueSurveyRequest { customer_hash: hash, ..issue_req(&s.id, customer) };
    assert_code(web.issue_survey(issue_req(&s.id, "c1")).await, Code::PermissionDenied);
    assert_code(web.issue_survey(with_hash("c1", "00".repeat(32))).await, Code::PermissionDenied);
    assert_code(web.issue_survey(with_hash("c1", hmac_hex(&secret, "c2"))).await, Code::PermissionDenied);
    assert_code(web.issue_survey(with_hash("c1", hmac_hex("idv_wrong", "c1"))).await, Code::PermissionDenied);
    // An unverified caller cannot even learn whether a survey exists.
    let unknown = pb::IssueSurveyRequest {
        customer_hash: "00".repeat(32),
        ..issue_req("01a20988-bb56-72df-b86d-0c51fcf49060", "c1")
    };
    assert_code(web.issue_survey(unknown).await, Code::PermissionDenied);
    let f = funnel(&app, &s.id).await;
    assert_eq!((f.issued, f.suppressed), (1, 0), "refused calls wrote nothing");

    let ok = web.issue_survey(with_hash("c1", hmac_hex(&secret, "c1"))).await.expect("verified").into_inner();
    assert!(ok.issued);
    assert!(
        web.issue_survey(with_hash("c3", hmac_hex(&secret, "c3").to_uppercase())).await.is_ok(),
        "hex in either case"
    );
    // Secret keys (servers) never need it.
    assert!(app.issue(&s.id, "c4").await.issued);

    // Enabling again keeps the secret; rotating replaces it at once.
    let same = app.services.set_identity_verification("acme", IdentityChange::Enable { rotate: false }).await;
    assert_eq!(same.unwrap(), None);
    let rotated = app
        .services
        .set_identity_verification("acme", IdentityChange::Enable { rotate: true })
        .await
        .unwrap()
        .expect("a new secret");
    assert_ne!(rotated, secret);
    assert_code(web.issue_survey(with_hash("c5", hmac_hex(&secret, "c5"))).await, Code::PermissionDenied);
    assert!(web.issue_survey(with_hash("c5", hmac_hex(&rotated, "c5"))).await.is_ok());
    // Turned off, the hash is not needed any more.
    app.services.set_identity_verification("acme", IdentityChange::Disable).await.unwrap();
    assert!(web.issue_survey(issue_req(&s.id, "c6")).await.is_ok());
}

async fn a_revoked_publishable_key_is_unauthenticated(b: Backend) {
    let app = spawn_app(b).await;
    let s = in_app_nps(&app).await;
    let key = app.services.create_key("acme", rapport::domain::model::KeyKind::Publishable).await.unwrap();
    let mut web = app.surveys_as(Some(&key.secret));
    assert!(web.issue_survey(issue_req(&s.id, "c1")).await.is_ok());
    app.services.revoke_key(&key.id.0).await.unwrap();
    assert_code(web.issue_survey(issue_req(&s.id, "c1")).await, Code::Unauthenticated);
    assert_code(
        app.surveys_as(Some("rk_pub_made_up")).issue_survey(issue_req(&s.id, "c1")).await,
        Code::Unauthenticated,
    );
}
