//! Working follow-ups: transitions (and the ones that are not allowed), assignment,
//! priority, append-only notes, and list filters.

use pb::update_follow_up_request::{self as u, Action};
use tonic::Code;

use crate::helpers::*;

crate::on_both!(
    a_follow_up_moves_through_its_statuses_and_keeps_every_timestamp,
    transitions_the_status_does_not_allow_are_failed_precondition_and_change_nothing,
    notes_are_appended_and_bad_actions_name_the_field,
    follow_ups_can_be_listed_by_status_assignee_customer_and_survey,
);

fn act(id: &str, action: Action) -> pb::UpdateFollowUpRequest {
    pb::UpdateFollowUpRequest { id: id.into(), author: "ana@example.com".into(), action: Some(action) }
}

async fn low_score(app: &TestApp, customer: &str) -> pb::FollowUp {
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let r = app.answer(&s.id, customer, 2).await.unwrap();
    app.follow_ups.clone().get_follow_up(pb::GetFollowUpRequest { id: r.follow_up_id }).await.unwrap().into_inner()
}

async fn a_follow_up_moves_through_its_statuses_and_keeps_every_timestamp(b: Backend) {
    let app = spawn_app(b).await;
    let f = low_score(&app, "c1").await;
    assert_eq!(f.status, pb::FollowUpStatus::Open as i32);
    assert_eq!(f.priority, pb::Priority::Normal as i32);
    let mut c = app.follow_ups.clone();

    app.clock.advance(chrono::Duration::minutes(10));
    let acked = c.update_follow_up(act(&f.id, Action::Acknowledge(u::Acknowledge {}))).await.unwrap().into_inner();
    assert_eq!(acked.status, pb::FollowUpStatus::Acknowledged as i32);
    // Ten minutes on the test clock, plus the real time between the two calls.
    let micros = |t: prost_types::Timestamp| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000;
    let since_open = micros(acked.acknowledge_time.unwrap()) - micros(f.open_time.unwrap());
    assert!((600_000_000..605_000_000).contains(&since_open), "acknowledged {since_open} µs after opening");

    let resolved = c
        .update_follow_up(act(&f.id, Action::Resolve(u::Resolve { resolution: "Called; refund issued".into() })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, pb::FollowUpStatus::Resolved as i32);
    assert_eq!(resolved.resolution, "Called; refund issued");
    assert!(resolved.resolve_time.is_some());

    let reopened = c
        .update_follow_up(act(&f.id, Action::Reopen(u::Reopen { reason: "came back".into() })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.status, pb::FollowUpStatus::Open as i32);
    assert!(reopened.reopen_time.is_some());
    assert!(reopened.resolve_time.is_some(), "earlier timestamps are kept");

    let dismissed = c
        .update_follow_up(act(&f.id, Action::Dismiss(u::Dismiss { reason: "duplicate".into() })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dismissed.status, pb::FollowUpStatus::Dismissed as i32);

    let changes: Vec<(i32, i32)> = dismissed
        .entries
        .iter()
        .filter(|e| e.kind == pb::EntryKind::StatusChange as i32)
        .map(|e| (e.from_status, e.to_status))
        .collect();
    use pb::FollowUpStatus::*;
    assert_eq!(
        changes,
        vec![
            (Open as i32, Acknowledged as i32),
            (Acknowledged as i32, Resolved as i32),
            (Resolved as i32, Open as i32),
            (Open as i32, Dismissed as i32),
        ]
    );
    assert!(dismissed.entries.iter().all(|e| e.time.is_some()));
    assert!(
        dismissed
            .entries
            .iter()
            .filter(|e| e.kind == pb::EntryKind::StatusChange as i32)
            .all(|e| e.author == "ana@example.com")
    );
}

async fn transitions_the_status_does_not_allow_are_failed_precondition_and_change_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let f = low_score(&app, "c1").await;
    let mut c = app.follow_ups.clone();
    assert_code(c.update_follow_up(act(&f.id, Action::Reopen(u::Reopen::default()))).await, Code::FailedPrecondition);
    c.update_follow_up(act(&f.id, Action::Acknowledge(u::Acknowledge {}))).await.unwrap();
    assert_code(c.update_follow_up(act(&f.id, Action::Acknowledge(u::Acknowledge {}))).await, Code::FailedPrecondition);
    c.update_follow_up(act(&f.id, Action::Dismiss(u::Dismiss::default()))).await.unwrap();
    let before = c.get_follow_up(pb::GetFollowUpRequest { id: f.id.clone() }).await.unwrap().into_inner();
    for action in [
        Action::Resolve(u::Resolve { resolution: "x".into() }),
        Action::Acknowledge(u::Acknowledge {}),
        Action::Dismiss(u::Dismiss::default()),
    ] {
        assert_code(c.update_follow_up(act(&f.id, action)).await, Code::FailedPrecondition);
    }
    let after = c.get_follow_up(pb::GetFollowUpRequest { id: f.id.clone() }).await.unwrap().into_inner();
    assert_eq!(before, after, "a refused transition changes nothing");
    assert_code(c.get_follow_up(pb::GetFollowUpRequest { id: "0190-missing".into() }).await, Code::NotFound);
}

async fn notes_are_appended_and_bad_actions_name_the_field(b: Backend) {
    let app = spawn_app(b).await;
    let f = low_score(&app, "c1").await;
    let mut c = app.follow_ups.clone();
    for body in ["first call, no answer", "second call: resolved billing question"] {
        c.update_follow_up(act(&f.id, Action::AddNote(u::AddNote { body: body.into() }))).await.unwrap();
    }
    c.update_follow_up(act(&f.id, Action::Assign(u::Assign { assignee: "bob".into() }))).await.unwrap();
    let got = c
        .update_follow_up(act(&f.id, Action::SetPriority(u::SetPriority { priority: pb::Priority::Urgent as i32 })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.assignee, "bob");
    assert_eq!(got.priority, pb::Priority::Urgent as i32);
    assert_eq!(got.status, pb::FollowUpStatus::Open as i32, "notes do not change the status");
    let notes: Vec<&str> =
        got.entries.iter().filter(|e| e.kind == pb::EntryKind::Note as i32).map(|e| e.body.as_str()).collect();
    assert_eq!(notes, vec!["first call, no answer", "second call: resolved billing question"]);

    for (action, field) in [
        (Some(Action::AddNote(u::AddNote { body: "".into() })), "add_note.body"),
        (Some(Action::Resolve(u::Resolve { resolution: " ".into() })), "resolve.resolution"),
        (Some(Action::SetPriority(u::SetPriority { priority: 0 })), "set_priority.priority"),
        (Some(Action::Assign(u::Assign { assignee: "a".repeat(201) })), "assign.assignee"),
        (None, "action"),
    ] {
        let req = pb::UpdateFollowUpRequest { id: f.id.clone(), author: String::new(), action };
        assert_invalid(&c.update_follow_up(req).await.unwrap_err(), field);
    }
    let after = c.get_follow_up(pb::GetFollowUpRequest { id: f.id.clone() }).await.unwrap().into_inner();
    assert_eq!(after.entries.len(), got.entries.len(), "bad input writes nothing");
}

async fn follow_ups_can_be_listed_by_status_assignee_customer_and_survey(b: Backend) {
    let app = spawn_app(b).await;
    let a = low_score(&app, "alice").await;
    let bfu = low_score(&app, "bob").await;
    let _c = low_score(&app, "carol").await;
    let mut c = app.follow_ups.clone();
    c.update_follow_up(act(&a.id, Action::Assign(u::Assign { assignee: "sam".into() }))).await.unwrap();
    c.update_follow_up(act(&bfu.id, Action::Resolve(u::Resolve { resolution: "done".into() }))).await.unwrap();
    let list = |r: pb::ListFollowUpsRequest| {
        let mut c = c.clone();
        async move {
            c.list_follow_ups(r).await.unwrap().into_inner().follow_ups.into_iter().map(|f| f.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(pb::ListFollowUpsRequest { assignee: "sam".into(), ..Default::default() }).await,
        vec![a.id.clone()]
    );
    assert_eq!(
        list(pb::ListFollowUpsRequest { status: pb::FollowUpStatus::Resolved as i32, ..Default::default() }).await,
        vec![bfu.id.clone()]
    );
    assert_eq!(
        list(pb::ListFollowUpsRequest { status: pb::FollowUpStatus::Open as i32, ..Default::default() }).await.len(),
        2
    );
    assert_eq!(
        list(pb::ListFollowUpsRequest { customer_id: "bob".into(), ..Default::default() }).await,
        vec![bfu.id.clone()]
    );
    assert_eq!(
        list(pb::ListFollowUpsRequest { survey_id: a.survey_id.clone(), ..Default::default() }).await,
        vec![a.id.clone()]
    );
    assert!(list(pb::ListFollowUpsRequest { customer_id: "nobody".into(), ..Default::default() }).await.is_empty());
    assert_eq!(list(pb::ListFollowUpsRequest { overdue: Some(true), ..Default::default() }).await.len(), 0);
    // Pages of one, newest first.
    let first =
        c.list_follow_ups(pb::ListFollowUpsRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(first.follow_ups.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let second = c
        .list_follow_ups(pb::ListFollowUpsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.follow_ups[0].id, first.follow_ups[0].id);
}
