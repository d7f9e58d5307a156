//! The outbox and the event stream: every state change is an event, numbered per
//! tenant with no gap; a stream resumed from a sequence misses nothing and repeats
//! nothing, even while events are written; old sequences are OUT_OF_RANGE; follow-ups
//! past due turn overdue once.

use std::time::Duration;

use pb::event_service_client::EventServiceClient;
use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    every_state_change_is_an_event_with_its_full_payload,
    a_stream_resumed_from_the_last_sequence_misses_nothing_while_events_are_written,
    events_of_concurrent_transactions_are_numbered_in_commit_order,
    answers_of_two_tenants_in_flight_together_are_numbered_per_tenant,
    a_sequence_older_than_the_retention_is_out_of_range,
    an_open_follow_up_past_due_is_marked_overdue_exactly_once,
);

fn events_client(
    app: &TestApp,
) -> EventServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>> {
    EventServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
}

/// Reads the stream from `after` until `n` events arrived.
async fn read(app: &TestApp, after: i64, n: usize) -> Vec<pb::Event> {
    let mut stream = events_client(app)
        .watch_events(pb::WatchEventsRequest { after_sequence: after, types: vec![] })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), stream.message()).await {
            Ok(Ok(Some(e))) => out.push(e),
            other => panic!("stream ended early after {} of {n}: {other:?}", out.len()),
        }
    }
    out
}

fn field<'a>(e: &'a pb::Event, path: &[&str]) -> Option<&'a prost_types::value::Kind> {
    let mut s = e.data.as_ref()?;
    let (last, init) = path.split_last()?;
    for p in init {
        match s.fields.get(*p)?.kind.as_ref()? {
            prost_types::value::Kind::StructValue(inner) => s = inner,
            _ => return None,
        }
    }
    s.fields.get(*last)?.kind.as_ref()
}

fn string(e: &pb::Event, path: &[&str]) -> String {
    match field(e, path) {
        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("{path:?}: {other:?}"),
    }
}

fn number(e: &pb::Event, path: &[&str]) -> f64 {
    match field(e, path) {
        Some(prost_types::value::Kind::NumberValue(n)) => *n,
        other => panic!("{path:?}: {other:?}"),
    }
}

async fn every_state_change_is_an_event_with_its_full_payload(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            policy: Some(pb::EligibilityPolicy { days_after_invitation_this_survey: Some(7), ..Default::default() }),
            ..Default::default()
        })
        .await;
    let issued = app.issue(&s.id, "c1").await; // invitation.issued
    let suppressed = app.issue(&s.id, "c1").await; // invitation.suppressed
    assert!(!suppressed.issued);
    let mut form = app.surveys_as(None);
    let r = form
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(issued.token.clone())),
            score: Some(4),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(); // response.recorded + follow_up.opened
    form.update_response(pb::UpdateResponseRequest {
        target: Some(pb::update_response_request::Target::Token(issued.token)),
        comment: Some("slow".into()),
        ..Default::default()
    })
    .await
    .unwrap(); // response.updated + follow_up.updated (latest answer)
    app.follow_ups
        .clone()
        .update_follow_up(pb::UpdateFollowUpRequest {
            id: r.follow_up_id.clone(),
            author: "ana".into(),
            action: Some(pb::update_follow_up_request::Action::Acknowledge(Default::default())),
        })
        .await
        .unwrap(); // follow_up.updated

    let events = read(&app, 0, 7).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "invitation.issued",
            "invitation.suppressed",
            "response.recorded",
            "follow_up.opened",
            "response.updated",
            "follow_up.updated",
            "follow_up.updated",
        ]
    );
    let seqs: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(string(&events[0], &["customer_id"]), "c1");
    assert_eq!(string(&events[1], &["rule"]), "invited_this_survey");
    assert_eq!(string(&events[2], &["bucket"]), "detractor");
    assert_eq!(number(&events[2], &["score"]), 4.0);
    assert_eq!(string(&events[2], &["survey_kind"]), "nps");
    assert_eq!(string(&events[3], &["status"]), "open");
    assert_eq!(string(&events[4], &["comment"]), "slow");
    assert_eq!(string(&events[5], &["response", "comment"]), "slow");
    assert_eq!(string(&events[6], &["status"]), "acknowledged");

    // A type filter.
    let mut only = events_client(&app)
        .watch_events(pb::WatchEventsRequest { after_sequence: 0, types: vec!["follow_up.opened".into()] })
        .await
        .unwrap()
        .into_inner();
    let first = only.message().await.unwrap().unwrap();
    assert_eq!((first.r#type.as_str(), first.sequence), ("follow_up.opened", 4));
    let err = events_client(&app)
        .watch_events(pb::WatchEventsRequest { after_sequence: 0, types: vec!["nope".into()] })
        .await
        .unwrap_err();
    assert_invalid(&err, "types");
    // Bad input wrote nothing: a failed record is no event.
    let err = form
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: s.id.clone(),
                customer_id: "c2".into(),
            })),
            score: Some(12),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "a direct answer needs a key");
    let err = app.answer(&s.id, "c2", 12).await.unwrap_err();
    assert_invalid(&err, "score");
    app.answer(&s.id, "c3", 10).await.unwrap();
    let next = read(&app, 7, 1).await;
    assert_eq!((next[0].sequence, next[0].r#type.as_str()), (8, "response.recorded"));
}

async fn a_stream_resumed_from_the_last_sequence_misses_nothing_while_events_are_written(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let n_writes: usize = 60;
    let writer = {
        let c = app.surveys.clone();
        let sid = s.id.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for w in 0..4 {
                let mut c = c.clone();
                let sid = sid.clone();
                tasks.push(tokio::spawn(async move {
                    let mut low = 0usize;
                    for i in 0..n_writes / 4 {
                        let score = ((i * 3 + w) % 11) as i32;
                        if score <= 6 {
                            low += 1;
                        }
                        c.record_response(pb::RecordResponseRequest {
                            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                                survey_id: sid.clone(),
                                customer_id: format!("w{w}-{i}"),
                            })),
                            score: Some(score),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    }
                    low
                }));
            }
            let mut low = 0usize;
            for t in tasks {
                low += t.await.unwrap();
            }
            low
        })
    };
    // Read a little, hang up, resume from the last sequence seen; repeat.
    let mut seen: Vec<pb::Event> = Vec::new();
    for _ in 0..3 {
        let after = seen.last().map(|e| e.sequence).unwrap_or(0);
        seen.extend(read(&app, after, 10).await);
    }
    let low: usize = writer.await.unwrap();
    let total = n_writes + low; // one response.recorded each, one follow_up.opened per low score
    let after = seen.last().unwrap().sequence;
    seen.extend(read(&app, after, total - seen.len()).await);
    let seqs: Vec<i64> = seen.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "no gap, no duplicate");
    assert_eq!(seen.iter().filter(|e| e.r#type == "response.recorded").count(), n_writes);
    assert_eq!(seen.iter().filter(|e| e.r#type == "follow_up.opened").count(), low);
    let ids: std::collections::HashSet<&str> = seen.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), total);
}

/// Each IssueSurvey is a transaction of its own (answers share one): while six of
/// them and a stream of answers write at once, a reader that follows the numbers from
/// the start sees every event exactly once, numbered 1..N. A number taken by a
/// transaction that commits late would otherwise be skipped by a reader that already
/// went past it.
async fn events_of_concurrent_transactions_are_numbered_in_commit_order(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let (issuers, issues_each, answers) = (6usize, 10usize, 20usize);
    let total = issuers * issues_each + answers;
    let writers = async {
        let mut tasks = Vec::new();
        for w in 0..issuers {
            let c = app.surveys.clone();
            let sid = s.id.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..issues_each {
                    c.clone()
                        .issue_survey(pb::IssueSurveyRequest {
                            survey_id: sid.clone(),
                            customer_id: format!("issued-{w}-{i}"),
                            ..Default::default()
                        })
                        .await
                        .expect("issue");
                }
            }));
        }
        for i in 0..answers {
            // Scores 7–10 open no follow-up: one event per answer.
            app.answer(&s.id, &format!("answered-{i}"), 7 + (i % 4) as i32).await.expect("answer");
        }
        for t in tasks {
            t.await.unwrap();
        }
    };
    // The reader follows the stream live from 0 while the writers run.
    let (seen, ()) = tokio::join!(read(&app, 0, total), writers);
    let seqs: Vec<i64> = seen.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "no gap, no duplicate, in order");
    let issued = seen.iter().filter(|e| e.r#type == "invitation.issued" || e.r#type == "invitation.suppressed");
    assert_eq!(issued.count(), issuers * issues_each);
    assert_eq!(seen.iter().filter(|e| e.r#type == "response.recorded").count(), answers);
}

/// Answers of two tenants sent at once share the writer's batches (one statement for a
/// batch of one tenant on PostgreSQL, table by table for several): each tenant's
/// stream holds its own answers and follow-ups, numbered 1..N without a gap.
async fn answers_of_two_tenants_in_flight_together_are_numbered_per_tenant(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let other_key = app.other_tenant_key().await;
    let mine = app.survey(pb::SurveyKind::Nps, None).await;
    let theirs = app.survey_as(&other_key, pb::Survey { kind: pb::SurveyKind::Nps as i32, ..Default::default() }).await;
    let answers = 24usize;
    let mut tasks = Vec::new();
    for i in 0..answers {
        let (key, survey) = if i % 2 == 0 { (app.key.clone(), &mine.id) } else { (other_key.clone(), &theirs.id) };
        let mut c = app.surveys_as(Some(&key));
        let req = pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: survey.clone(),
                customer_id: format!("c-{i}"),
            })),
            // 0–10 in turn: the detractors (0–6) open a follow-up, a second event.
            score: Some((i % 11) as i32),
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move { c.record_response(req).await.map(|r| r.into_inner()) }));
    }
    let mut expected = [0usize; 2];
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap().expect("recorded");
        expected[i % 2] += if r.score <= 6 { 2 } else { 1 };
    }
    for (t, key) in [app.key.clone(), other_key].into_iter().enumerate() {
        let mut stream = EventServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key)))
            .watch_events(pb::WatchEventsRequest { after_sequence: 0, types: vec![] })
            .await
            .expect("watch")
            .into_inner();
        let mut seen = Vec::new();
        while seen.len() < expected[t] {
            match tokio::time::timeout(Duration::from_secs(20), stream.message()).await {
                Ok(Ok(Some(e))) => seen.push(e),
                other => panic!("stream ended early after {} of {}: {other:?}", seen.len(), expected[t]),
            }
        }
        let seqs: Vec<i64> = seen.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, (1..=expected[t] as i64).collect::<Vec<_>>(), "tenant {t}: no gap, no duplicate");
        let recorded = seen.iter().filter(|e| e.r#type == "response.recorded").count();
        assert_eq!(recorded, answers / 2, "tenant {t}: its own answers only");
    }
}

async fn a_sequence_older_than_the_retention_is_out_of_range(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    for i in 0..3 {
        app.answer(&s.id, &format!("c{i}"), 9).await.unwrap();
    }
    read(&app, 0, 3).await;
    app.clock.advance(chrono::Duration::days(31));
    app.answer(&s.id, "late", 9).await.unwrap();
    read(&app, 3, 1).await;
    let pruned = app.services.prune_events().await.unwrap();
    assert_eq!(pruned, 3, "the three old events go");
    let err = events_client(&app)
        .watch_events(pb::WatchEventsRequest { after_sequence: 0, types: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("resume from 3"), "{}", err.message());
    let kept = read(&app, 3, 1).await;
    assert_eq!(kept[0].sequence, 4);
    let err = events_client(&app)
        .watch_events(pb::WatchEventsRequest { after_sequence: 99, types: vec![] })
        .await
        .unwrap_err();
    assert_invalid(&err, "after_sequence");
}

async fn an_open_follow_up_past_due_is_marked_overdue_exactly_once(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            follow_up: Some(pb::FollowUpRule { sla_hours: Some(1), ..Default::default() }),
            ..Default::default()
        })
        .await;
    let late = app.answer(&s.id, "late", 1).await.unwrap();
    let resolved = app.answer(&s.id, "fixed", 1).await.unwrap();
    app.follow_ups
        .clone()
        .update_follow_up(pb::UpdateFollowUpRequest {
            id: resolved.follow_up_id.clone(),
            author: String::new(),
            action: Some(pb::update_follow_up_request::Action::Resolve(pb::update_follow_up_request::Resolve {
                resolution: "called".into(),
            })),
        })
        .await
        .unwrap();
    app.clock.advance(chrono::Duration::minutes(59));
    assert_eq!(app.services.mark_overdue().await.unwrap(), 0, "not yet due");
    app.clock.advance(chrono::Duration::minutes(2));
    let mut f = app.follow_ups.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            f.clone()
                .get_follow_up(pb::GetFollowUpRequest { id: late.follow_up_id.clone() })
                .await
                .unwrap()
                .into_inner()
                .overdue
        })
        .await
    );
    // More passes (this one and the background worker's) mark nothing again.
    assert_eq!(app.services.mark_overdue().await.unwrap(), 0);
    let overdue = f
        .list_follow_ups(pb::ListFollowUpsRequest { overdue: Some(true), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .follow_ups;
    assert_eq!(overdue.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), vec![late.follow_up_id.as_str()]);
    // Events: 2 × (response.recorded, follow_up.opened), follow_up.updated, follow_up.overdue.
    let events = read(&app, 0, 6).await;
    let overdue_events: Vec<_> = events.iter().filter(|e| e.r#type == "follow_up.overdue").collect();
    assert_eq!(overdue_events.len(), 1);
    assert_eq!(string(overdue_events[0], &["follow_up_id"]), late.follow_up_id);
    app.answer(&s.id, "after", 9).await.unwrap();
    let next = read(&app, 6, 1).await;
    assert_eq!(next[0].r#type, "response.recorded", "no second overdue event came in between");
}
