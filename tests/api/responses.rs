//! Recording and changing responses: scales and buckets, bad scores, one response per
//! invitation, idempotency, expiry, and the follow-up that a low score opens.

use chrono::Duration;
use pb::record_response_request::Target;
use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    every_scale_puts_its_edge_scores_in_the_right_bucket,
    out_of_range_and_missing_scores_are_invalid_argument_and_store_nothing,
    an_invitation_takes_one_response_even_when_answers_race,
    a_retry_with_the_same_idempotency_key_returns_the_first_result_and_records_once,
    an_expired_invitation_is_failed_precondition,
    the_comment_and_properties_follow_the_score_and_the_score_may_change_within_24_hours,
    a_follow_up_opens_exactly_at_or_under_the_threshold,
    a_follow_up_condition_on_customer_properties_narrows_it,
    a_changed_score_shows_on_the_follow_up_and_leaving_the_threshold_is_noted,
    long_comments_and_too_many_properties_are_refused,
    answers_in_flight_together_each_get_their_own_outcome,
    first_answers_of_the_same_customers_on_two_servers_make_each_customer_once,
);

fn record(target: Target, score: Option<i32>) -> pb::RecordResponseRequest {
    pb::RecordResponseRequest { target: Some(target), score, ..Default::default() }
}

fn direct(survey: &str, customer: &str) -> Target {
    Target::Direct(pb::SurveyCustomer { survey_id: survey.into(), customer_id: customer.into() })
}

async fn every_scale_puts_its_edge_scores_in_the_right_bucket(b: Backend) {
    use pb::Bucket::*;
    use pb::SurveyKind::*;
    let app = spawn_app(b).await;
    type Edges = Vec<(i32, pb::Bucket)>;
    let cases: Vec<(pb::SurveyKind, i32, Edges)> = vec![
        (Nps, 10, vec![(0, Detractor), (6, Detractor), (7, Passive), (8, Passive), (9, Promoter), (10, Promoter)]),
        (Csat, 3, vec![(1, Unsatisfied), (2, Unsatisfied), (3, Satisfied)]),
        (Csat, 5, vec![(3, Unsatisfied), (4, Satisfied), (5, Satisfied)]),
        (Csat, 7, vec![(5, Unsatisfied), (6, Satisfied), (7, Satisfied)]),
        (Csat, 10, vec![(7, Unsatisfied), (8, Satisfied), (10, Satisfied)]),
        (Ces, 5, vec![(3, NotAgree), (4, Agree), (5, Agree)]),
        (Ces, 7, vec![(1, NotAgree), (4, NotAgree), (5, Agree), (7, Agree)]),
    ];
    for (kind, max, edges) in cases {
        let s = app.survey(kind, Some(max)).await;
        for (i, (score, bucket)) in edges.into_iter().enumerate() {
            let r = app.answer(&s.id, &format!("{kind:?}-{max}-{i}"), score).await.expect("record");
            assert_eq!(r.score, score);
            assert_eq!(r.bucket, bucket as i32, "{kind:?} 1–{max}: score {score}");
            let def = r.definition.expect("definition");
            assert_eq!(def.scale_max, max);
            let range = def.buckets.iter().find(|b| b.bucket == bucket as i32).expect("bucket range");
            assert!(range.min <= score && score <= range.max);
        }
    }
}

async fn out_of_range_and_missing_scores_are_invalid_argument_and_store_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    let csat = app.survey(pb::SurveyKind::Csat, Some(5)).await;
    let mut c = app.surveys.clone();
    for (survey, score) in [(&nps, Some(11)), (&nps, Some(-1)), (&nps, None), (&csat, Some(0)), (&csat, Some(6))] {
        let err = c.record_response(record(direct(&survey.id, "c1"), score)).await.unwrap_err();
        assert_invalid(&err, "score");
        if let Some(s) = score {
            assert!(err.message().contains(&s.to_string()), "{}", err.message());
        }
    }
    // Through a token too: the invitation stays unanswered.
    let issued = app.issue(&nps.id, "c2").await;
    let err = c.record_response(record(Target::Token(issued.token.clone()), Some(42))).await.unwrap_err();
    assert_invalid(&err, "score");
    let inv = c.get_invitation(pb::GetInvitationRequest { token: issued.token }).await.unwrap().into_inner();
    assert_eq!(inv.invitation.unwrap().status, pb::InvitationStatus::Pending as i32);

    assert!(app.all_responses().await.is_empty());
    assert!(app.all_follow_ups().await.is_empty(), "no follow-up without its response");
    // No target at all.
    let err = c.record_response(pb::RecordResponseRequest { score: Some(5), ..Default::default() }).await.unwrap_err();
    assert_invalid(&err, "target");
}

async fn an_invitation_takes_one_response_even_when_answers_race(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&s.id, "racer").await;
    assert!(issued.issued);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut c = app.surveys_as(None);
        let token = issued.token.clone();
        tasks.push(tokio::spawn(async move {
            c.record_response(pb::RecordResponseRequest {
                target: Some(Target::Token(token)),
                score: Some(i % 11),
                ..Default::default()
            })
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), Code::AlreadyExists, "{e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one answer wins");
    let all = app.all_responses().await;
    assert_eq!(all.len(), 1);
    let follow_ups = app.all_follow_ups().await;
    assert!(follow_ups.len() <= 1);
    for f in follow_ups {
        assert_eq!(f.response_id, all[0].id);
    }
    // A later answer is refused too and says how to change it.
    let err = assert_code(
        app.surveys_as(None).record_response(record(Target::Token(issued.token), Some(3))).await,
        Code::AlreadyExists,
    );
    assert!(err.message().contains("UpdateResponse"));
}

async fn a_retry_with_the_same_idempotency_key_returns_the_first_result_and_records_once(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let req = |score: i32, key: &str| pb::RecordResponseRequest {
        target: Some(direct(&s.id, "idem")),
        score: Some(score),
        comment: "slow checkout".into(),
        idempotency_key: key.into(),
        ..Default::default()
    };
    let mut c = app.surveys.clone();
    let first = c.record_response(req(3, "k-1")).await.unwrap().into_inner();
    app.clock.advance(Duration::minutes(5));
    let again = c.record_response(req(3, "k-1")).await.unwrap().into_inner();
    assert_eq!(again, first, "the first result, unchanged");
    let err = c.record_response(req(4, "k-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("idempotency_key"));

    // Concurrent first attempts with one key: one response, all see the same one.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut c = app.surveys.clone();
        let r = req(9, "k-2");
        tasks.push(tokio::spawn(async move { c.record_response(r).await.map(|r| r.into_inner().id) }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("every retry succeeds"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.all_responses().await.len(), 2);
    assert_eq!(app.all_follow_ups().await.len(), 1, "only the score of 3 opened one");
}

async fn an_expired_invitation_is_failed_precondition(b: Backend) {
    let app = spawn_app(b).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            policy: Some(pb::EligibilityPolicy { invitation_expiry_days: Some(2), ..Default::default() }),
            ..Default::default()
        })
        .await;
    let issued = app.issue(&s.id, "late").await;
    let inv = issued.invitation.unwrap();
    let expire = inv.expire_time.unwrap().seconds - inv.issue_time.unwrap().seconds;
    assert_eq!(expire, 2 * 86_400);
    app.clock.advance(Duration::days(2) + Duration::seconds(1));
    let mut c = app.surveys_as(None);
    let got = c.get_invitation(pb::GetInvitationRequest { token: issued.token.clone() }).await.unwrap().into_inner();
    assert_eq!(got.invitation.unwrap().status, pb::InvitationStatus::Expired as i32);
    let err =
        assert_code(c.record_response(record(Target::Token(issued.token), Some(9))).await, Code::FailedPrecondition);
    assert!(err.message().contains("expired"));
    assert!(app.all_responses().await.is_empty());
}

async fn the_comment_and_properties_follow_the_score_and_the_score_may_change_within_24_hours(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&s.id, "form").await;
    let mut form = app.surveys_as(None);
    let first = form.record_response(record(Target::Token(issued.token.clone()), Some(8))).await.unwrap().into_inner();
    assert_eq!(first.comment, "");
    let upd = |score: Option<i32>, comment: Option<&str>| pb::UpdateResponseRequest {
        target: Some(pb::update_response_request::Target::Token(issued.token.clone())),
        score,
        comment: comment.map(str::to_owned),
        properties: [("page".to_string(), "billing".to_string())].into(),
    };
    let second = form.update_response(upd(None, Some("Great support"))).await.unwrap().into_inner();
    assert_eq!(second.id, first.id);
    assert_eq!(second.comment, "Great support");
    assert_eq!(second.properties.get("page").map(String::as_str), Some("billing"));
    assert_eq!(second.score, 8);

    app.clock.advance(Duration::hours(23));
    let third = form.update_response(upd(Some(10), None)).await.unwrap().into_inner();
    assert_eq!((third.score, third.bucket), (10, pb::Bucket::Promoter as i32));
    assert_eq!(third.comment, "Great support", "an unset comment is left alone");
    let err = form.update_response(upd(Some(11), None)).await.unwrap_err();
    assert_invalid(&err, "score");

    app.clock.advance(Duration::hours(2));
    assert_code(form.update_response(upd(Some(2), None)).await, Code::FailedPrecondition);
    // The comment may still change after 24 hours.
    let late = form.update_response(upd(None, Some("Still great"))).await.unwrap().into_inner();
    assert_eq!((late.score, late.comment.as_str()), (10, "Still great"));

    // By id with a secret key, and the stored record agrees.
    let got =
        app.surveys.clone().get_response(pb::GetResponseRequest { id: first.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got, late);
}

async fn a_follow_up_opens_exactly_at_or_under_the_threshold(b: Backend) {
    let app = spawn_app(b).await;
    let nps = app.survey(pb::SurveyKind::Nps, None).await;
    let csat = app.survey(pb::SurveyKind::Csat, Some(5)).await;
    let ces = app.survey(pb::SurveyKind::Ces, Some(7)).await;
    let custom = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            follow_up: Some(pb::FollowUpRule { threshold: Some(4), sla_hours: Some(8), ..Default::default() }),
            ..Default::default()
        })
        .await;
    let off = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            follow_up: Some(pb::FollowUpRule { disabled: true, ..Default::default() }),
            ..Default::default()
        })
        .await;
    let cases = [
        (&nps, 6, true),
        (&nps, 7, false),
        (&nps, 0, true),
        (&csat, 2, true),
        (&csat, 3, false),
        (&ces, 3, true),
        (&ces, 4, false),
        (&custom, 4, true),
        (&custom, 5, false),
        (&off, 0, false),
    ];
    for (i, (survey, score, opens)) in cases.iter().enumerate() {
        let r = app.answer(&survey.id, &format!("t{i}"), *score).await.unwrap();
        assert_eq!(!r.follow_up_id.is_empty(), *opens, "survey {} score {score}", survey.id);
        if *opens {
            let f = app
                .follow_ups
                .clone()
                .get_follow_up(pb::GetFollowUpRequest { id: r.follow_up_id.clone() })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(f.response_id, r.id);
            assert_eq!(f.status, pb::FollowUpStatus::Open as i32);
            assert_eq!(f.answer.as_ref().unwrap().score, *score);
            let sla = if survey.id == custom.id { 8 } else { 48 };
            assert_eq!(f.due_time.unwrap().seconds - f.open_time.unwrap().seconds, sla * 3600);
        }
    }
    let follow_ups = app.all_follow_ups().await;
    assert_eq!(follow_ups.len(), cases.iter().filter(|c| c.2).count());
    let responses = app.all_responses().await;
    for f in follow_ups {
        assert!(responses.iter().any(|r| r.id == f.response_id && r.follow_up_id == f.id));
    }
}

async fn a_follow_up_condition_on_customer_properties_narrows_it(b: Backend) {
    let app = spawn_app(b).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            follow_up: Some(pb::FollowUpRule {
                customer_condition: [("plan".to_string(), "enterprise".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    let mut c = app.surveys.clone();
    for (customer, plan) in [("big", "enterprise"), ("small", "free")] {
        c.issue_survey(pb::IssueSurveyRequest {
            survey_id: s.id.clone(),
            customer_id: customer.into(),
            properties: [("plan".to_string(), plan.to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let big = app.answer(&s.id, "big", 2).await.unwrap();
    let small = app.answer(&s.id, "small", 2).await.unwrap();
    assert!(!big.follow_up_id.is_empty());
    assert!(small.follow_up_id.is_empty());
}

async fn a_changed_score_shows_on_the_follow_up_and_leaving_the_threshold_is_noted(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let r = app.answer(&s.id, "c", 3).await.unwrap();
    let mut c = app.surveys.clone();
    c.update_response(pb::UpdateResponseRequest {
        target: Some(pb::update_response_request::Target::ResponseId(r.id.clone())),
        score: Some(9),
        comment: Some("actually fine".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let f = app
        .follow_ups
        .clone()
        .get_follow_up(pb::GetFollowUpRequest { id: r.follow_up_id.clone() })
        .await
        .unwrap()
        .into_inner();
    let answer = f.answer.unwrap();
    assert_eq!((answer.score, answer.comment.as_str()), (9, "actually fine"));
    assert!(!answer.at_or_under_threshold);
    assert_eq!(f.status, pb::FollowUpStatus::Open as i32, "the follow-up is not deleted");
    assert!(f.entries.iter().any(|e| e.kind == pb::EntryKind::System as i32 && e.body.contains("from 3 to 9")));

    // A passive that drops to a detractor gets a follow-up then.
    let p = app.answer(&s.id, "d", 8).await.unwrap();
    assert!(p.follow_up_id.is_empty());
    let changed = c
        .update_response(pb::UpdateResponseRequest {
            target: Some(pb::update_response_request::Target::ResponseId(p.id)),
            score: Some(5),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!changed.follow_up_id.is_empty());
    assert_eq!(app.all_follow_ups().await.len(), 2);
}

async fn long_comments_and_too_many_properties_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut c = app.surveys.clone();
    let mut req = record(direct(&s.id, "c"), Some(5));
    req.comment = "x".repeat(5001);
    assert_invalid(&c.record_response(req.clone()).await.unwrap_err(), "comment");
    req.comment = "x".repeat(5000);
    req.properties = (0..51).map(|i| (format!("k{i}"), "v".to_string())).collect();
    assert_invalid(&c.record_response(req.clone()).await.unwrap_err(), "properties");
    req.properties = [("k".to_string(), "v".repeat(1001))].into();
    assert_invalid(&c.record_response(req.clone()).await.unwrap_err(), "properties[k]");
    let mut bad_customer = record(direct(&s.id, &"c".repeat(129)), Some(5));
    bad_customer.comment.clear();
    assert_invalid(&c.record_response(bad_customer).await.unwrap_err(), "direct.customer_id");
    assert!(app.all_responses().await.is_empty());
    req.properties.clear();
    c.record_response(req).await.expect("5 000 characters are fine");
}

/// Many answers at once share transactions (group commit); whichever batches they
/// fall into, each answer gets the outcome it would get alone.
async fn answers_in_flight_together_each_get_their_own_outcome(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let archived = app.survey(pb::SurveyKind::Nps, None).await;
    app.surveys.clone().archive_survey(pb::ArchiveSurveyRequest { id: archived.id.clone() }).await.unwrap();
    let issued = app.issue(&s.id, "invited").await;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Recorded(i32),
        Invalid,
        Archived,
        OneOfTheToken,
    }
    let mut calls: Vec<(pb::RecordResponseRequest, Expect)> = Vec::new();
    for i in 0..30 {
        calls.push((record(direct(&s.id, &format!("new-{i}")), Some(i % 11)), Expect::Recorded(i % 11)));
    }
    for i in 0..6 {
        calls.push((record(direct(&s.id, "regular"), Some(i)), Expect::Recorded(i)));
        calls.push((record(direct(&s.id, &format!("bad-{i}")), Some(12)), Expect::Invalid));
    }
    for i in 0..3 {
        calls.push((record(direct(&archived.id, &format!("late-{i}")), Some(9)), Expect::Archived));
        calls.push((record(Target::Token(issued.token.clone()), Some(4)), Expect::OneOfTheToken));
    }
    let mut tasks = Vec::new();
    for (req, expect) in calls {
        let mut c = app.surveys.clone();
        tasks.push(tokio::spawn(async move { (expect, c.record_response(req).await.map(|r| r.into_inner())) }));
    }
    let (mut recorded, mut token_wins) = (Vec::new(), 0);
    for t in tasks {
        let (expect, got) = t.await.unwrap();
        match (expect, got) {
            (Expect::Recorded(score), Ok(r)) => {
                assert_eq!(r.score, score);
                recorded.push(r);
            }
            (Expect::Invalid, Err(e)) => assert_invalid(&e, "score"),
            (Expect::Archived, Err(e)) => assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}"),
            (Expect::OneOfTheToken, Ok(r)) => {
                token_wins += 1;
                recorded.push(r);
            }
            (Expect::OneOfTheToken, Err(e)) => assert_eq!(e.code(), Code::AlreadyExists, "{e:?}"),
            (expect, got) => panic!("expected {expect:?}, got {got:?}"),
        }
    }
    assert_eq!(token_wins, 1, "the invitation takes exactly one answer");
    assert_eq!(recorded.len(), 30 + 6 + 1);

    let stored = app.all_responses().await;
    let mut ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    let mut acknowledged: Vec<&str> = recorded.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    acknowledged.sort_unstable();
    assert_eq!(ids, acknowledged, "every acknowledged answer is stored, and nothing else");
    let regular: Vec<&pb::Response> = stored.iter().filter(|r| r.customer_id == "regular").collect();
    assert_eq!(regular.len(), 6, "one customer, six answers");

    // A follow-up for exactly the detractors (0–6), each with its response.
    let follow_ups = app.all_follow_ups().await;
    let detractors: Vec<&str> = stored.iter().filter(|r| r.score <= 6).map(|r| r.id.as_str()).collect();
    assert_eq!(follow_ups.len(), detractors.len());
    for f in &follow_ups {
        assert!(detractors.contains(&f.response_id.as_str()), "{f:?}");
    }
    // Refused answers created no customers.
    let customers = app.all_customers().await;
    assert_eq!(customers.len(), 30 + 1 + 1, "new-*, regular and invited");
    assert!(customers.iter().all(|c| !c.customer_id.starts_with("bad-") && !c.customer_id.starts_with("late-")));
}

/// A customer's first answers arriving at two servers at once: on PostgreSQL each
/// server's batch creates its new customers in the statement that writes the answers,
/// and one that loses the race to the other server (its customer row was not
/// inserted) writes nothing and is written again in a transaction. Every answer is
/// acknowledged and stored once, and each customer exists once.
async fn first_answers_of_the_same_customers_on_two_servers_make_each_customer_once(b: Backend) {
    let apps = spawn_replicas(b, 2, |_, _, _| {}).await;
    let s = apps[0].survey(pb::SurveyKind::Nps, None).await;
    const CUSTOMERS: usize = 6;
    const ROUNDS: usize = 5;
    let mut tasks = Vec::new();
    for round in 0..ROUNDS {
        for c in 0..CUSTOMERS {
            for app in apps.iter() {
                let mut client = app.surveys.clone();
                let req = record(direct(&s.id, &format!("twice-{round}-{c}")), Some(((round + c) % 11) as i32));
                tasks.push(tokio::spawn(async move { client.record_response(req).await.map(|r| r.into_inner()) }));
            }
        }
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.push(t.await.unwrap().expect("every first answer is recorded"));
    }
    assert_eq!(acknowledged.len(), ROUNDS * CUSTOMERS * 2);
    let stored = apps[0].all_responses().await;
    let mut ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    let mut acked: Vec<&str> = acknowledged.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    acked.sort_unstable();
    assert_eq!(ids, acked, "every acknowledged answer is stored once, and nothing else");
    let customers = apps[1].all_customers().await;
    let mut names: Vec<&str> = customers.iter().map(|c| c.customer_id.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<String> =
        (0..ROUNDS).flat_map(|r| (0..CUSTOMERS).map(move |c| format!("twice-{r}-{c}"))).collect();
    expected.sort_unstable();
    assert_eq!(names, expected, "each customer once");
    for name in &expected {
        let theirs = stored.iter().filter(|r| &r.customer_id == name).count();
        assert_eq!(theirs, 2, "{name}: one answer through each server");
    }
    let follow_ups = apps[0].all_follow_ups().await;
    let detractors = stored.iter().filter(|r| r.score <= 6).count();
    assert_eq!(follow_ups.len(), detractors, "a follow-up for each detractor, none twice");
}
