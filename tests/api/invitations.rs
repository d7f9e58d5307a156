//! Eligibility and issuing: the four cooldowns, opt-out, `force`, idempotent issue,
//! and reading an invitation by its token.

use chrono::Duration;
use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    an_issued_invitation_can_be_read_and_answered_by_its_token_alone,
    each_of_the_four_cooldowns_suppresses_until_it_ends_and_says_why,
    force_bypasses_cooldowns_but_never_an_unsubscribe,
    a_retried_issue_returns_the_same_invitation_and_a_different_body_is_already_exists,
    check_eligibility_answers_without_issuing,
    bad_issue_requests_name_the_field,
);

fn policy(inv_this: i32, inv_any: i32, resp_this: i32, resp_any: i32) -> Option<pb::EligibilityPolicy> {
    Some(pb::EligibilityPolicy {
        days_after_invitation_this_survey: Some(inv_this),
        days_after_invitation_any_survey: Some(inv_any),
        days_after_response_this_survey: Some(resp_this),
        days_after_response_any_survey: Some(resp_any),
        invitation_expiry_days: None,
    })
}

async fn nps_with(app: &TestApp, p: Option<pb::EligibilityPolicy>) -> pb::Survey {
    app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, policy: p, ..Default::default() }).await
}

fn secs(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().expect("a timestamp").seconds
}

async fn an_issued_invitation_can_be_read_and_answered_by_its_token_alone(b: Backend) {
    let app = spawn_app(b).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Csat as i32,
            scale_max: Some(7),
            question: "How was onboarding?".into(),
            low_label: "Awful".into(),
            high_label: "Superb".into(),
            ..Default::default()
        })
        .await;
    let issued = app.issue(&s.id, "crm-42").await;
    assert!(issued.issued);
    assert!(issued.token.len() >= 32, "an unguessable token");
    let inv = issued.invitation.clone().unwrap();
    assert_eq!(inv.customer_id, "crm-42");
    assert_eq!(secs(&inv.expire_time) - secs(&inv.issue_time), 30 * 86_400, "default expiry is 30 days");
    assert!(issued.eligibility.unwrap().eligible);

    let mut form = app.surveys_as(None);
    let got = form.get_invitation(pb::GetInvitationRequest { token: issued.token.clone() }).await.unwrap().into_inner();
    let f = got.form.unwrap();
    assert_eq!((f.question.as_str(), f.scale_min, f.scale_max), ("How was onboarding?", 1, 7));
    assert_eq!((f.low_label.as_str(), f.high_label.as_str()), ("Awful", "Superb"));
    assert_eq!(got.invitation.unwrap().status, pb::InvitationStatus::Pending as i32);

    let r = form
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(issued.token.clone())),
            score: Some(6),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.customer_id.as_str(), r.invitation_id.as_str()), ("crm-42", inv.id.as_str()));
    let after = form.get_invitation(pb::GetInvitationRequest { token: issued.token }).await.unwrap().into_inner();
    let after = after.invitation.unwrap();
    assert_eq!(after.status, pb::InvitationStatus::Answered as i32);
    assert_eq!(after.response_id, r.id);

    assert_code(
        form.get_invitation(pb::GetInvitationRequest { token: "inv_doesnotexist0000000000000000000".into() }).await,
        Code::NotFound,
    );
}

async fn each_of_the_four_cooldowns_suppresses_until_it_ends_and_says_why(b: Backend) {
    use pb::EligibilityRule as R;
    let app = spawn_app(b).await;
    let a = nps_with(&app, policy(7, 0, 0, 0)).await;
    let bsurvey = nps_with(&app, policy(0, 3, 0, 0)).await;
    let c = nps_with(&app, policy(0, 0, 90, 0)).await;
    let d = nps_with(&app, policy(0, 0, 0, 30)).await;

    // Invited to this survey within 7 days.
    let first = app.issue(&a.id, "u1").await;
    let again = app.issue(&a.id, "u1").await;
    assert!(!again.issued && !again.suppression_id.is_empty() && again.token.is_empty());
    let e = again.eligibility.unwrap();
    assert_eq!(e.rule, R::InvitedThisSurvey as i32);
    assert_eq!(secs(&e.next_eligible_at), secs(&first.invitation.unwrap().issue_time) + 7 * 86_400);

    // Invited to any survey within 3 days.
    let on_a = app.issue(&a.id, "u2").await;
    let on_b = app.issue(&bsurvey.id, "u2").await;
    let e = on_b.eligibility.unwrap();
    assert_eq!(e.rule, R::InvitedAnySurvey as i32);
    assert_eq!(secs(&e.next_eligible_at), secs(&on_a.invitation.unwrap().issue_time) + 3 * 86_400);

    // Responded to this survey within 90 days.
    let answered = app.answer(&c.id, "u3", 9).await.unwrap();
    let e = app.issue(&c.id, "u3").await.eligibility.unwrap();
    assert_eq!(e.rule, R::RespondedThisSurvey as i32);
    assert_eq!(secs(&e.next_eligible_at), secs(&answered.record_time) + 90 * 86_400);

    // Responded to any survey within 30 days.
    let answered = app.answer(&a.id, "u4", 9).await.unwrap();
    let e = app.issue(&d.id, "u4").await.eligibility.unwrap();
    assert_eq!(e.rule, R::RespondedAnySurvey as i32);
    assert_eq!(secs(&e.next_eligible_at), secs(&answered.record_time) + 30 * 86_400);

    // Each ends when it says: 3 days frees u2 on B, not u1 on A (7 days).
    app.clock.advance(Duration::days(3));
    assert!(app.issue(&bsurvey.id, "u2").await.issued);
    assert!(!app.issue(&a.id, "u1").await.issued);
    app.clock.advance(Duration::days(4));
    assert!(app.issue(&a.id, "u1").await.issued);
    app.clock.advance(Duration::days(23));
    assert!(app.issue(&d.id, "u4").await.issued, "30 days after the response");
    assert!(!app.issue(&c.id, "u3").await.issued, "90-day cooldown still running");
    app.clock.advance(Duration::days(60));
    assert!(app.issue(&c.id, "u3").await.issued);

    // Every suppression was recorded with its rule.
    let m = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::Kind(pb::SurveyKind::Nps as i32)),
            start_time: Some(prost_types::Timestamp { seconds: 0, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let funnel = m.funnel.unwrap();
    let by_rule = |r: R| funnel.suppressed_by_rule.iter().find(|x| x.rule == r as i32).map(|x| x.count).unwrap_or(0);
    assert_eq!(by_rule(R::InvitedThisSurvey), 2);
    assert_eq!(by_rule(R::InvitedAnySurvey), 1);
    assert_eq!(by_rule(R::RespondedThisSurvey), 2);
    assert_eq!(by_rule(R::RespondedAnySurvey), 1);
    assert_eq!(funnel.suppressed, 6);
}

async fn force_bypasses_cooldowns_but_never_an_unsubscribe(b: Backend) {
    let app = spawn_app(b).await;
    let s = nps_with(&app, None).await; // tenant defaults: 90 days after a response
    app.answer(&s.id, "vip", 10).await.unwrap();
    let mut c = app.surveys.clone();
    let forced = |customer: &str| pb::IssueSurveyRequest {
        survey_id: s.id.clone(),
        customer_id: customer.into(),
        force: true,
        ..Default::default()
    };
    assert_eq!(
        app.issue(&s.id, "vip").await.eligibility.unwrap().rule,
        pb::EligibilityRule::RespondedThisSurvey as i32,
        "the tenant default applies"
    );
    let out = c.issue_survey(forced("vip")).await.unwrap().into_inner();
    assert!(out.issued);
    assert!(out.invitation.unwrap().forced, "recorded as forced");

    let sub = c
        .set_customer_subscription(pb::SetCustomerSubscriptionRequest { customer_id: "vip".into(), unsubscribed: true })
        .await
        .unwrap()
        .into_inner();
    assert!(sub.unsubscribed && sub.unsubscribe_time.is_some());
    let out = c.issue_survey(forced("vip")).await.unwrap().into_inner();
    assert!(!out.issued);
    let e = out.eligibility.unwrap();
    assert_eq!(e.rule, pb::EligibilityRule::Unsubscribed as i32);
    assert!(e.next_eligible_at.is_none(), "no end to an opt-out");

    c.set_customer_subscription(pb::SetCustomerSubscriptionRequest { customer_id: "vip".into(), unsubscribed: false })
        .await
        .unwrap();
    assert!(c.issue_survey(forced("vip")).await.unwrap().into_inner().issued);
}

async fn a_retried_issue_returns_the_same_invitation_and_a_different_body_is_already_exists(b: Backend) {
    let app = spawn_app(b).await;
    let s = nps_with(&app, None).await;
    let req = |customer: &str| pb::IssueSurveyRequest {
        survey_id: s.id.clone(),
        customer_id: customer.into(),
        channel: pb::Channel::Email as i32,
        idempotency_key: "send-2026-11-23-c1".into(),
        ..Default::default()
    };
    let mut c = app.surveys.clone();
    let first = c.issue_survey(req("c1")).await.unwrap().into_inner();
    let retry = c.issue_survey(req("c1")).await.unwrap().into_inner();
    assert_eq!(retry.invitation.as_ref().unwrap().id, first.invitation.as_ref().unwrap().id);
    assert_eq!(retry.invitation.as_ref().unwrap().expire_time, first.invitation.as_ref().unwrap().expire_time);
    // Only hashes are kept, so the retry hands out a fresh token; it works, the old one no longer does.
    let mut form = app.surveys_as(None);
    form.get_invitation(pb::GetInvitationRequest { token: retry.token.clone() }).await.expect("new token works");
    assert_code(form.get_invitation(pb::GetInvitationRequest { token: first.token.clone() }).await, Code::NotFound);

    let err = assert_code(c.issue_survey(req("c2")).await, Code::AlreadyExists);
    assert!(err.message().contains("idempotency_key"));

    // Concurrent first attempts with a new key issue one invitation.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut c = app.surveys.clone();
        let mut r = req("c3");
        r.idempotency_key = "race".into();
        tasks.push(tokio::spawn(async move { c.issue_survey(r).await.map(|r| r.into_inner()) }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let out = t.await.unwrap().expect("each attempt succeeds");
        ids.push(out.invitation.unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
}

async fn check_eligibility_answers_without_issuing(b: Backend) {
    let app = spawn_app(b).await;
    let s = nps_with(&app, policy(5, 0, 0, 0)).await;
    let mut c = app.surveys.clone();
    let check = |customer: &str| pb::CheckEligibilityRequest { survey_id: s.id.clone(), customer_id: customer.into() };
    assert!(c.check_eligibility(check("new")).await.unwrap().into_inner().eligible);
    assert!(c.check_eligibility(check("new")).await.unwrap().into_inner().eligible, "asking twice changes nothing");
    let issued = app.issue(&s.id, "new").await;
    let e = c.check_eligibility(check("new")).await.unwrap().into_inner();
    assert!(!e.eligible);
    assert_eq!(e.rule, pb::EligibilityRule::InvitedThisSurvey as i32);
    assert_eq!(e.blocking_rules.len(), 1);
    assert_eq!(secs(&e.next_eligible_at), secs(&issued.invitation.unwrap().issue_time) + 5 * 86_400);

    let m = c
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(s.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let f = m.funnel.unwrap();
    assert_eq!((f.issued, f.suppressed), (1, 0), "checks are not recorded as issues");
}

async fn bad_issue_requests_name_the_field(b: Backend) {
    let app = spawn_app(b).await;
    let s = nps_with(&app, None).await;
    let mut c = app.surveys.clone();
    let base = pb::IssueSurveyRequest { survey_id: s.id.clone(), customer_id: "c".into(), ..Default::default() };
    for (req, field) in [
        (pb::IssueSurveyRequest { customer_id: String::new(), ..base.clone() }, "customer_id"),
        (pb::IssueSurveyRequest { customer_id: "x".repeat(129), ..base.clone() }, "customer_id"),
        (pb::IssueSurveyRequest { survey_id: String::new(), ..base.clone() }, "survey_id"),
        (pb::IssueSurveyRequest { channel: 99, ..base.clone() }, "channel"),
        (pb::IssueSurveyRequest { idempotency_key: "k".repeat(201), ..base.clone() }, "idempotency_key"),
    ] {
        assert_invalid(&c.issue_survey(req).await.unwrap_err(), field);
    }
    assert_code(
        c.issue_survey(pb::IssueSurveyRequest { survey_id: "0000-nope".into(), ..base.clone() }).await,
        Code::NotFound,
    );
    let m = c
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(s.id.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let f = m.funnel.unwrap();
    assert_eq!((f.issued, f.suppressed), (0, 0), "nothing was written");
}
