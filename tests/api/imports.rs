//! Imported history (docs/imports.md): answers and activity from before rapport, with
//! their original times. The central check: after an import, every metric and profile
//! at every as-of equals what live traffic would have given.

use chrono::{DateTime, Duration, Utc};
use pb::import_service_client::ImportServiceClient;
use serde_json::json;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::engagement::{Engagement, action, configure, engagement, metrics, pts, purchase, session, set_clock, utc};
use crate::helpers::*;
use crate::web::Web;

crate::on_both!(
    an_import_gives_the_numbers_live_traffic_would_have_given,
    imports_are_idempotent_and_report_each_answer,
    follow_ups_and_events_only_when_asked,
    events_years_old_enter_through_the_import_only,
);

type Imports = ImportServiceClient<InterceptedService<Channel, Auth>>;

fn imports(app: &TestApp, key: Option<&str>) -> Imports {
    let key = key.map(str::to_owned).unwrap_or_else(|| app.key.clone());
    ImportServiceClient::with_interceptor(app.channel.clone(), Auth(Some(key)))
}

/// A small deterministic generator (the tests must not depend on a seed's luck).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// One thing that happened, in time order.
#[derive(Clone)]
enum Happened {
    Event(pb::ActivityEvent),
    /// An answer, with the time its invitation was sent if it had one.
    Answer {
        external_id: String,
        customer: String,
        score: i32,
        at: DateTime<Utc>,
        invited: Option<DateTime<Utc>>,
    },
}

impl Happened {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Happened::Event(e) => {
                let t = e.time.as_ref().unwrap();
                DateTime::from_timestamp(t.seconds, 0).unwrap()
            }
            Happened::Answer { invited: Some(i), .. } => *i,
            Happened::Answer { at, .. } => *at,
        }
    }
}

const CUSTOMERS: usize = 8;

/// Five and a half months of activity and answers for eight customers, across the
/// 1 November DST change of the tenant's zone (America/Los_Angeles).
fn history(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Happened> {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    let mut n = 0;
    let mut t = start;
    while t < end {
        for c in 0..CUSTOMERS {
            // Customer c is active on about (c + 2) days in 10, and the last two go
            // quiet for good in September (churned).
            if rng.next(10) >= (c as u64 + 2) || (c >= 6 && t > utc(2026, 9, 10, 0, 0)) {
                continue;
            }
            let at = t + Duration::minutes(rng.next(23 * 60) as i64);
            let who = format!("c{c}");
            n += 1;
            out.push(Happened::Event(match rng.next(4) {
                0 => session(&format!("e{n}"), &who, at, 60 + rng.next(1800) as i64),
                1 if rng.next(5) == 0 => purchase(&format!("e{n}"), &who, at, 500 + rng.next(5000) as i64),
                2 => action(&format!("e{n}"), &who, at, "share", &[]),
                _ => action(&format!("e{n}"), &who, at, "export", &[("plan", ["pro", "free"][c % 2])]),
            }));
            if rng.next(12) == 0 {
                let invited = (rng.next(2) == 0).then(|| at - Duration::hours(2 + rng.next(40) as i64));
                out.push(Happened::Answer {
                    external_id: format!("r{n}"),
                    customer: who,
                    score: rng.next(11) as i32,
                    at: at + Duration::minutes(1),
                    invited,
                });
            }
        }
        t += Duration::days(1);
    }
    out.sort_by_key(Happened::at);
    out
}

/// The tenant settings both servers share, and a survey that opens no follow-ups.
async fn prepare(app: &TestApp, at: DateTime<Utc>) -> (Engagement, pb::Survey) {
    set_clock(app, at);
    let mut c = engagement(app, None);
    let cfg = pb::ScoringConfig {
        time_zone: "America/Los_Angeles".into(),
        inactivity_days: 7,
        action_weights: [("export".to_string(), 2.0), ("share".to_string(), 1.0)].into(),
        core_actions: vec!["export".into()],
        ..Default::default()
    };
    configure(&mut c, cfg, &["time_zone", "inactivity_days", "action_weights", "core_actions"]).await;
    let survey = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            name: "nps".into(),
            question: "How likely?".into(),
            follow_up: Some(pb::FollowUpRule { disabled: true, ..Default::default() }),
            ..Default::default()
        })
        .await;
    (c, survey)
}

/// `Debug` text with ids (UUIDs) and sub-second clock readings blanked, and every
/// decimal rounded to 9 significant places: two servers differ in ids, their test
/// clocks in the nanoseconds that pass between calls, and a score summed in another
/// order may differ in its last bits.
fn normalized(v: &impl std::fmt::Debug, survey: &str, now: i64) -> String {
    let text = format!("{v:?}").replace(survey, "<survey>");
    let text: String =
        text.split("nanos: ")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 { part.to_owned() } else { part.trim_start_matches(|c: char| c.is_ascii_digit()).to_owned() }
            })
            .collect::<Vec<_>>()
            .join("nanos: _");
    // "Now" is read from each server's clock a moment apart: times in the minute after
    // `now`, or whole days before or after it (window ends, "30 days before"), are
    // all "now".
    let text: String = text
        .split("seconds: ")
        .enumerate()
        .map(|(i, part)| {
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            match digits.parse::<i64>() {
                Ok(s) if i > 0 && (s - now).rem_euclid(86_400) < 60 => format!("NOW{}", &part[digits.len()..]),
                _ => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("seconds: ");
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let is_uuid = i + 36 <= chars.len()
            && chars[i..i + 36]
                .iter()
                .enumerate()
                .all(|(k, c)| if [8, 13, 18, 23].contains(&k) { *c == '-' } else { c.is_ascii_hexdigit() });
        if is_uuid {
            out.push_str("<id>");
            i += 36;
            continue;
        }
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit() || chars[j] == '.' || chars[j] == 'e' || chars[j] == '-')
            {
                j += 1;
            }
            let token: String = chars[i..j].iter().collect();
            match token.parse::<f64>() {
                Ok(x) if token.contains('.') || token.contains('e') => out.push_str(&format!("{x:.9e}")),
                _ => out.push_str(&token),
            }
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

async fn an_import_gives_the_numbers_live_traffic_would_have_given(b: Backend) {
    let start = utc(2026, 6, 1, 9, 0);
    let end = utc(2026, 11, 20, 12, 0);
    let happened = history(start, end);
    let answers = happened.iter().filter(|h| matches!(h, Happened::Answer { .. })).count();
    assert!(answers > 20, "the history has answers to compare ({answers})");

    // Live: everything arrives as it happens.
    let live = spawn_app(b).await;
    let (mut live_eng, live_survey) = prepare(&live, start - Duration::days(1)).await;
    for h in &happened {
        match h {
            Happened::Event(e) => {
                set_clock(&live, h.at());
                crate::engagement::record_ok(&mut live_eng, vec![e.clone()]).await;
            }
            Happened::Answer { customer, score, at, invited, .. } => {
                let target = match invited {
                    Some(i) => {
                        set_clock(&live, *i);
                        let issued = live
                            .surveys
                            .clone()
                            .issue_survey(pb::IssueSurveyRequest {
                                survey_id: live_survey.id.clone(),
                                customer_id: customer.clone(),
                                force: true,
                                ..Default::default()
                            })
                            .await
                            .expect("issue")
                            .into_inner();
                        assert!(issued.issued);
                        pb::record_response_request::Target::Token(issued.token)
                    }
                    None => pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                        survey_id: live_survey.id.clone(),
                        customer_id: customer.clone(),
                    }),
                };
                set_clock(&live, *at);
                live.surveys
                    .clone()
                    .record_response(pb::RecordResponseRequest {
                        target: Some(target),
                        score: Some(*score),
                        ..Default::default()
                    })
                    .await
                    .expect("answer");
            }
        }
    }
    set_clock(&live, end);

    // Imported: everything arrives at the end, through the import calls.
    let imp = spawn_app(b).await;
    let (mut imp_eng, imp_survey) = prepare(&imp, start - Duration::days(1)).await;
    set_clock(&imp, end);
    let mut importer = imports(&imp, None);
    let events: Vec<pb::ActivityEvent> = happened
        .iter()
        .filter_map(|h| match h {
            Happened::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    for batch in events.chunks(100) {
        let r = importer
            .import_events(pb::ImportEventsRequest { events: batch.to_vec() })
            .await
            .expect("import events")
            .into_inner();
        assert_eq!(r.accepted as usize, batch.len(), "{:?}", r.results.iter().find(|x| x.status != 1));
    }
    let to_import: Vec<pb::ImportedResponse> = happened
        .iter()
        .filter_map(|h| match h {
            Happened::Answer { external_id, customer, score, at, invited } => Some(pb::ImportedResponse {
                external_id: external_id.clone(),
                survey_id: imp_survey.id.clone(),
                customer_id: customer.clone(),
                score: Some(*score),
                recorded_time: Some(pts(*at)),
                invitation_time: invited.map(pts),
                ..Default::default()
            }),
            _ => None,
        })
        .collect();
    let r = importer
        .import_responses(pb::ImportResponsesRequest { responses: to_import, ..Default::default() })
        .await
        .expect("import responses")
        .into_inner();
    assert_eq!(r.imported as usize, answers, "{:?}", r.results.iter().find(|x| x.status != 1));

    // Every number, at every as-of, is the same.
    let as_ofs = [None, Some(end - Duration::days(8)), Some(utc(2026, 11, 1, 10, 0)), Some(end - Duration::days(100))];
    for as_of in as_ofs {
        for c in 0..CUSTOMERS {
            let who = format!("c{c}");
            let a = crate::engagement::profile(&mut live_eng, &who, as_of).await;
            let b = crate::engagement::profile(&mut imp_eng, &who, as_of).await;
            assert_eq!(
                normalized(&a, &live_survey.id, end.timestamp()),
                normalized(&b, &imp_survey.id, end.timestamp()),
                "profile of {who} at {as_of:?}"
            );
        }
        for window in [7, 30, 90] {
            let a = metrics(&mut live_eng, window, as_of).await;
            let b = metrics(&mut imp_eng, window, as_of).await;
            assert_eq!(
                normalized(&a, "-", end.timestamp()),
                normalized(&b, "-", end.timestamp()),
                "metrics over {window} days at {as_of:?}"
            );
        }
        let top = |c: &mut Engagement| {
            let mut c = c.clone();
            async move {
                c.list_top_customers(pb::ListTopCustomersRequest {
                    ranking: Some(pb::list_top_customers_request::Ranking::Action("export".into())),
                    window_days: 30,
                    as_of: as_of.map(pts),
                    include_zero: true,
                    ..Default::default()
                })
                .await
                .expect("top customers")
                .into_inner()
            }
        };
        let (a, b) = (top(&mut live_eng).await, top(&mut imp_eng).await);
        assert_eq!(
            normalized(&a, "-", end.timestamp()),
            normalized(&b, "-", end.timestamp()),
            "top customers at {as_of:?}"
        );
    }
    for interval in [pb::Interval::Day, pb::Interval::Week, pb::Interval::Month] {
        let req = |survey: &str| pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.into())),
            start_time: Some(pts(start - Duration::days(3))),
            end_time: Some(pts(end)),
            interval: interval as i32,
            ..Default::default()
        };
        let a = live.surveys.clone().get_survey_metrics(req(&live_survey.id)).await.unwrap().into_inner();
        let b = imp.surveys.clone().get_survey_metrics(req(&imp_survey.id)).await.unwrap().into_inner();
        assert_eq!(
            normalized(&a, &live_survey.id, end.timestamp()),
            normalized(&b, &imp_survey.id, end.timestamp()),
            "survey metrics by {interval:?}"
        );
    }
}

fn answer(external_id: &str, survey: &str, customer: &str, score: i32, at: DateTime<Utc>) -> pb::ImportedResponse {
    pb::ImportedResponse {
        external_id: external_id.into(),
        survey_id: survey.into(),
        customer_id: customer.into(),
        score: Some(score),
        recorded_time: Some(pts(at)),
        ..Default::default()
    }
}

async fn imports_are_idempotent_and_report_each_answer(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 11, 20, 12, 0);
    set_clock(&app, now);
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut c = imports(&app, None);
    let old = utc(2024, 3, 5, 8, 30);
    let mut first = answer("d-1", &s.id, "alice", 3, old);
    first.comment = "too slow".into();
    first.invitation_time = Some(pts(old - Duration::days(1)));
    let batch = vec![
        first.clone(),
        answer("d-2", &s.id, "bob", 10, old + Duration::days(30)),
        answer("d-2", &s.id, "bob", 9, old),            // repeated in the call
        answer("d-3", "no-such-survey", "bob", 9, old), // unknown survey
        answer("d-4", &s.id, "bob", 11, old),           // off the scale
        answer("d-5", &s.id, "bob", 5, now + Duration::hours(1)), // in the future
        pb::ImportedResponse {
            invitation_time: Some(pts(old + Duration::days(1))),
            ..answer("d-6", &s.id, "c", 5, old)
        },
        answer("", &s.id, "bob", 5, old), // no external id
    ];
    let r = c
        .import_responses(pb::ImportResponsesRequest { responses: batch.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let statuses: Vec<i32> = r.results.iter().map(|x| x.status).collect();
    use pb::ImportStatus::*;
    assert_eq!(
        statuses,
        [Imported, Imported, Duplicate, Rejected, Rejected, Rejected, Rejected, Rejected].map(|s| s as i32).to_vec()
    );
    let fields: Vec<&str> = r.results.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "",
            "",
            "",
            "responses[3].survey_id",
            "responses[4].score",
            "responses[5].recorded_time",
            "responses[6].invitation_time",
            "responses[7].external_id"
        ]
    );
    assert_eq!((r.imported, r.duplicates, r.rejected), (2, 1, 5));

    // The answers carry their original times, comment and invitation.
    let all = app.all_responses().await;
    assert_eq!(all.len(), 2);
    let alice = all.iter().find(|x| x.customer_id == "alice").unwrap();
    assert_eq!(alice.id, r.results[0].response_id);
    assert_eq!(alice.record_time.as_ref().unwrap().seconds, old.timestamp());
    assert_eq!(alice.comment, "too slow");
    assert!(!alice.invitation_id.is_empty());
    // No follow-up although 3 is a detractor's score.
    assert!(app.all_follow_ups().await.is_empty());

    // Run again: every answer is a duplicate of itself, nothing is written twice.
    let again = c
        .import_responses(pb::ImportResponsesRequest { responses: batch[..2].to_vec(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.imported, again.duplicates), (0, 2));
    assert_eq!(again.results[0].response_id, r.results[0].response_id);
    assert_eq!(again.results[0].reason, "imported before with the same content");
    // The same id with other content keeps the first.
    let changed = c
        .import_responses(pb::ImportResponsesRequest {
            responses: vec![answer("d-1", &s.id, "alice", 9, old)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.results[0].status, Duplicate as i32);
    assert!(changed.results[0].reason.contains("different"), "{}", changed.results[0].reason);
    assert_eq!(app.all_responses().await.len(), 2);

    // The metric counts them in their own past period.
    let m = app
        .surveys
        .clone()
        .get_survey_metrics(pb::GetSurveyMetricsRequest {
            scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(s.id.clone())),
            start_time: Some(pts(utc(2024, 3, 1, 0, 0))),
            end_time: Some(pts(utc(2024, 4, 1, 0, 0))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let summary = m.summary.unwrap();
    assert_eq!(summary.n, 1);
    assert_eq!(m.funnel.unwrap().issued, 1);

    // Bounds of the call itself.
    let err = c.import_responses(pb::ImportResponsesRequest::default()).await.unwrap_err();
    assert_invalid(&err, "responses");
    let pk = app.publishable_key().await;
    let err = imports(&app, Some(&pk))
        .import_responses(pb::ImportResponsesRequest { responses: batch, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The JSON route takes the same body.
    let web = Web::new(&app);
    let reply = web
        .post(
            "/v1/imports/responses",
            Some(&app.key),
            &json!({"responses": [{"externalId": "j-1", "surveyId": s.id, "customerId": "dora", "score": 8,
                                    "recordedTime": "2025-01-02T03:04:05Z"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["imported"], 1);
}

async fn follow_ups_and_events_only_when_asked(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 11, 20, 12, 0);
    set_clock(&app, now);
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let at = now - Duration::days(3);
    let r = imports(&app, None)
        .import_responses(pb::ImportResponsesRequest {
            responses: vec![answer("x-1", &s.id, "erin", 2, at), answer("x-2", &s.id, "finn", 10, at)],
            open_follow_ups: true,
            emit_events: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.imported, 2);
    let f = app.all_follow_ups().await;
    assert_eq!(f.len(), 1, "one detractor, one follow-up");
    assert_eq!(f[0].response_id, r.results[0].response_id);
    assert_eq!(f[0].open_time.as_ref().unwrap().seconds, at.timestamp(), "opened when the answer was given");

    let mut events = rapport::grpc::pb::event_service_client::EventServiceClient::with_interceptor(
        app.channel.clone(),
        Auth(Some(app.key.clone())),
    );
    let mut stream = events
        .watch_events(pb::WatchEventsRequest { after_sequence: 0, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    while types.len() < 3 {
        let e = stream.message().await.unwrap().expect("an event");
        types.push(e.r#type);
    }
    types.sort();
    assert_eq!(types, ["follow_up.opened", "response.recorded", "response.recorded"]);
}

async fn events_years_old_enter_through_the_import_only(b: Backend) {
    let app = spawn_app(b).await;
    let now = utc(2026, 11, 20, 12, 0);
    set_clock(&app, now);
    let mut eng = engagement(&app, None);
    let old = action("old-1", "gina", now - Duration::days(400), "export", &[]);
    let live = eng.record_events(pb::RecordEventsRequest { events: vec![old.clone()] }).await.unwrap().into_inner();
    assert_eq!(live.rejected, 1);
    assert_eq!(live.results[0].field, "events[0].time");
    assert!(live.results[0].reason.contains("ImportEvents"), "{}", live.results[0].reason);

    let mut c = imports(&app, None);
    let too_old = action("old-2", "gina", now - Duration::days(3_661), "export", &[]);
    let r = c.import_events(pb::ImportEventsRequest { events: vec![old.clone(), too_old] }).await.unwrap().into_inner();
    assert_eq!((r.accepted, r.rejected), (1, 1));
    assert_eq!(r.results[1].field, "events[1].time");
    // Again: a duplicate, by message id, also against live traffic.
    let r = c.import_events(pb::ImportEventsRequest { events: vec![old] }).await.unwrap().into_inner();
    assert_eq!(r.duplicates, 1);
    // The old activity is in the profile at that time.
    let p = crate::engagement::profile(&mut eng, "gina", Some(now - Duration::days(399))).await;
    let activity = p.activity.unwrap();
    assert_eq!(activity.first_seen_date, (now - Duration::days(400)).date_naive().to_string());
    // A publishable key may not import.
    let pk = app.publishable_key().await;
    let err = imports(&app, Some(&pk)).import_events(pb::ImportEventsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}
