//! Creating, listing, changing and archiving surveys; keys.

use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    a_survey_can_be_created_read_listed_by_page_updated_and_archived,
    a_bad_survey_is_invalid_argument_naming_every_field_and_stores_nothing,
    kind_and_scale_cannot_change,
    calls_without_a_key_or_with_a_revoked_key_are_unauthenticated,
);

async fn a_survey_can_be_created_read_listed_by_page_updated_and_archived(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = app.surveys.clone();
    let created = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Csat as i32,
            scale_max: Some(7),
            name: "Support".into(),
            question: "How satisfied were you?".into(),
            low_label: "Not at all".into(),
            high_label: "Very".into(),
            in_app: true,
            policy: Some(pb::EligibilityPolicy { days_after_response_this_survey: Some(14), ..Default::default() }),
            ..Default::default()
        })
        .await;
    assert_eq!(created.scale_min, 1);
    assert_eq!(created.scale_max, Some(7));
    let got = c.get_survey(pb::GetSurveyRequest { id: created.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, created);

    // NPS takes 0–10 and CES defaults to 7.
    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    assert_eq!((nps.scale_min, nps.scale_max), (0, Some(10)));
    assert_eq!(app.survey(pb::SurveyKind::Ces, None).await.scale_max, Some(7));
    for _ in 0..2 {
        app.survey(pb::SurveyKind::Nps, None).await;
    }

    // Five surveys, pages of two: 2 + 2 + 1, newest first, no repeats.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_surveys(pb::ListSurveysRequest { page_size: 2, page_token: token.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.surveys.into_iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 5);
    assert!(pages >= 3);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 5);
    assert_eq!(seen.last(), Some(&created.id), "newest first: the first survey comes last");

    let only_nps = c
        .list_surveys(pb::ListSurveysRequest { kind: pb::SurveyKind::Nps as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_nps.surveys.len(), 3);

    // Update only what the mask names.
    let updated = c
        .update_survey(pb::UpdateSurveyRequest {
            survey: Some(pb::Survey {
                id: created.id.clone(),
                question: "How happy were you with support?".into(),
                name: "ignored".into(),
                follow_up: Some(pb::FollowUpRule { threshold: Some(3), ..Default::default() }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["question".into(), "follow_up.threshold".into()] }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.question, "How happy were you with support?");
    assert_eq!(updated.name, "Support");
    assert_eq!(updated.follow_up.unwrap().threshold, Some(3));
    assert_eq!(updated.policy.unwrap().days_after_response_this_survey, Some(14));

    let archived = c.archive_survey(pb::ArchiveSurveyRequest { id: created.id.clone() }).await.unwrap().into_inner();
    assert!(archived.archived && archived.archive_time.is_some());
    let listed = c.list_surveys(pb::ListSurveysRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.surveys.len(), 4, "archived surveys are hidden by default");
    let all = c
        .list_surveys(pb::ListSurveysRequest { include_archived: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.surveys.len(), 5);
    // An archived survey issues nothing.
    let err = assert_code(
        c.issue_survey(pb::IssueSurveyRequest {
            survey_id: created.id.clone(),
            customer_id: "c1".into(),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
    );
    assert!(err.message().contains("archived"));
    assert_code(c.archive_survey(pb::ArchiveSurveyRequest { id: created.id }).await, Code::FailedPrecondition);
}

async fn a_bad_survey_is_invalid_argument_naming_every_field_and_stores_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = app.surveys.clone();
    let cases: Vec<(pb::Survey, &str)> = vec![
        (pb::Survey { kind: 0, question: "q".into(), ..Default::default() }, "survey.kind"),
        (pb::Survey { kind: pb::SurveyKind::Nps as i32, ..Default::default() }, "survey.question"),
        (
            pb::Survey {
                kind: pb::SurveyKind::Nps as i32,
                question: "q".into(),
                scale_max: Some(5),
                ..Default::default()
            },
            "survey.scale_max",
        ),
        (
            pb::Survey {
                kind: pb::SurveyKind::Csat as i32,
                question: "q".into(),
                scale_max: Some(4),
                ..Default::default()
            },
            "survey.scale_max",
        ),
        (
            pb::Survey {
                kind: pb::SurveyKind::Ces as i32,
                question: "q".into(),
                scale_max: Some(10),
                ..Default::default()
            },
            "survey.scale_max",
        ),
        (
            pb::Survey {
                kind: pb::SurveyKind::Csat as i32,
                question: "q".into(),
                follow_up: Some(pb::FollowUpRule { threshold: Some(9), ..Default::default() }),
                ..Default::default()
            },
            "survey.follow_up.threshold",
        ),
        (
            pb::Survey {
                kind: pb::SurveyKind::Nps as i32,
                question: "q".into(),
                policy: Some(pb::EligibilityPolicy { invitation_expiry_days: Some(0), ..Default::default() }),
                ..Default::default()
            },
            "survey.policy.invitation_expiry_days",
        ),
        (
            pb::Survey { kind: pb::SurveyKind::Nps as i32, question: "q".repeat(1001), ..Default::default() },
            "survey.question",
        ),
    ];
    for (survey, field) in cases {
        let err = c.create_survey(pb::CreateSurveyRequest { survey: Some(survey) }).await.unwrap_err();
        assert_invalid(&err, field);
    }
    // Two bad fields at once: both are named.
    let err = c
        .create_survey(pb::CreateSurveyRequest {
            survey: Some(pb::Survey { kind: pb::SurveyKind::Nps as i32, scale_max: Some(3), ..Default::default() }),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "survey.question");
    assert_invalid(&err, "survey.scale_max");
    let err = c.create_survey(pb::CreateSurveyRequest { survey: None }).await.unwrap_err();
    assert_invalid(&err, "survey");

    let listed = c
        .list_surveys(pb::ListSurveysRequest { include_archived: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.surveys.is_empty(), "nothing was stored");

    let err = c.list_surveys(pb::ListSurveysRequest { page_size: 1001, ..Default::default() }).await.unwrap_err();
    assert_invalid(&err, "page_size");
    let err = c
        .list_surveys(pb::ListSurveysRequest { page_token: "not-a-token".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
}

async fn kind_and_scale_cannot_change(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Csat, Some(5)).await;
    let mut c = app.surveys.clone();
    for path in ["kind", "scale_max", "bogus"] {
        let err = c
            .update_survey(pb::UpdateSurveyRequest {
                survey: Some(pb::Survey { id: s.id.clone(), kind: 1, scale_max: Some(7), ..Default::default() }),
                update_mask: Some(prost_types::FieldMask { paths: vec![path.into()] }),
            })
            .await
            .unwrap_err();
        assert_invalid(&err, "update_mask");
    }
    let err = c
        .update_survey(pb::UpdateSurveyRequest {
            survey: Some(pb::Survey { id: s.id.clone(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["question".into()] }),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "survey.question");
    let got = c.get_survey(pb::GetSurveyRequest { id: s.id }).await.unwrap().into_inner();
    assert_eq!(got.scale_max, Some(5));
    assert_eq!(got.kind, pb::SurveyKind::Csat as i32);
    assert_eq!(got.question, s.question);
}

async fn calls_without_a_key_or_with_a_revoked_key_are_unauthenticated(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut anon = app.surveys_as(None);
    assert_code(anon.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await, Code::Unauthenticated);
    let mut wrong = app.surveys_as(Some("rk_secret_not-a-real-key"));
    assert_code(wrong.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await, Code::Unauthenticated);

    let extra = app.services.create_key("acme", rapport::domain::model::KeyKind::Secret).await.unwrap();
    let mut with_extra = app.surveys_as(Some(&extra.secret));
    with_extra.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.expect("a new key works");
    app.services.revoke_key(extra.id.as_str()).await.unwrap();
    assert_code(with_extra.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await, Code::Unauthenticated);
    // The tenant's other key is unaffected.
    app.surveys.clone().get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.expect("first key still works");

    // A publishable key may not manage surveys.
    let publishable = app.services.create_key("acme", rapport::domain::model::KeyKind::Publishable).await.unwrap();
    let mut public = app.surveys_as(Some(&publishable.secret));
    assert_code(public.get_survey(pb::GetSurveyRequest { id: s.id }).await, Code::PermissionDenied);
}
