//! The input rules every request meets at the boundary (docs/api.md, "Input rules"):
//! timestamps in years 1970–9999, no control characters in any text, page tokens
//! that this service issued. Each scenario is a call that once hung, panicked or
//! answered INTERNAL; now it is INVALID_ARGUMENT naming the field, and nothing changes.

use base64::Engine as _;
use pb::record_response_request::Target;
use serde_json::json;
use tonic::Code;

use crate::engagement::{action, engagement, record_ok, set_clock, utc};
use crate::helpers::*;
use crate::web::Web;

crate::on_both!(
    far_off_end_times_are_refused_instead_of_hanging_or_panicking,
    a_window_of_millions_of_points_is_refused_without_building_it,
    a_profile_at_a_far_past_as_of_is_refused,
    control_characters_are_refused_in_every_text_and_nothing_is_written,
    page_tokens_with_control_characters_are_refused,
    malformed_protobuf_is_invalid_argument_not_internal,
);

/// The largest and smallest seconds chrono can hold: years +262142 and −262143.
const YEAR_262142: i64 = 8_210_266_876_799;
const YEAR_MINUS_262143: i64 = -8_334_601_228_800;

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn metrics_of(survey: &str, start: Option<i64>, end: i64, interval: pb::Interval) -> pb::GetSurveyMetricsRequest {
    pb::GetSurveyMetricsRequest {
        scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.into())),
        start_time: start.and_then(at),
        end_time: at(end),
        interval: interval as i32,
        ..Default::default()
    }
}

async fn far_off_end_times_are_refused_instead_of_hanging_or_panicking(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut c = app.surveys.clone();
    for interval in [pb::Interval::Month, pb::Interval::Day, pb::Interval::Week] {
        for end in [YEAR_262142, YEAR_MINUS_262143, -1, 253_402_300_800] {
            let err = c.get_survey_metrics(metrics_of(&s.id, None, end, interval)).await.unwrap_err();
            assert_invalid(&err, "end_time");
        }
    }
    // The edges of the range are accepted.
    let last = c.get_survey_metrics(metrics_of(&s.id, None, 253_402_300_799, pb::Interval::Month)).await.unwrap();
    assert_eq!(last.into_inner().summary.expect("summary").n, 0);
    let first = c.get_survey_metrics(metrics_of(&s.id, Some(0), 86_400, pb::Interval::Day)).await.unwrap();
    assert_eq!(first.into_inner().series.len(), 1);
    // The server still answers.
    app.answer(&s.id, "c1", 9).await.expect("the server still serves");
}

async fn a_window_of_millions_of_points_is_refused_without_building_it(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let mut c = app.surveys.clone();
    // Year 1 to year 262142 is outside the range: the start is named.
    let err = c
        .get_survey_metrics(metrics_of(&s.id, Some(-62_135_596_800), YEAR_262142, pb::Interval::Day))
        .await
        .unwrap_err();
    assert_invalid(&err, "start_time");
    // The whole range by day: 2.9 million points, refused by count.
    let err = c.get_survey_metrics(metrics_of(&s.id, Some(0), 253_402_300_799, pb::Interval::Day)).await.unwrap_err();
    assert_invalid(&err, "interval");
    assert!(err.message().contains("2932897"), "{}", err.message());
}

async fn a_profile_at_a_far_past_as_of_is_refused(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let now = utc(2026, 11, 20, 12, 0);
    set_clock(&app, now);
    record_ok(&mut c, vec![action("e1", "alice", now, "export", &[])]).await;
    for seconds in [YEAR_MINUS_262143, YEAR_262142, -86_400] {
        let err = c
            .get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: "alice".into(), as_of: at(seconds) })
            .await
            .unwrap_err();
        assert_invalid(&err, "as_of");
    }
    let ok =
        c.get_engagement_profile(pb::GetEngagementProfileRequest { customer_id: "alice".into(), as_of: None }).await;
    assert!(ok.is_ok(), "{ok:?}");
}

async fn control_characters_are_refused_in_every_text_and_nothing_is_written(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let issued = app.issue(&s.id, "alice").await;
    let mut c = app.surveys.clone();

    // A comment with NUL over gRPC: refused, the invitation stays unanswered.
    let err = c
        .record_response(pb::RecordResponseRequest {
            target: Some(Target::Token(issued.token.clone())),
            score: Some(5),
            comment: "a\0b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "comment");
    // An escape sequence in a property value names the property.
    let err = c
        .record_response(pb::RecordResponseRequest {
            target: Some(Target::Token(issued.token.clone())),
            score: Some(5),
            properties: [("plan".to_string(), "\u{1b}[31mred".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "properties[plan]");
    // The same over JSON.
    let web = Web::new(&app);
    let r = web
        .post(&format!("/v1/invitations/{}/response", issued.token), None, &json!({"score": 5, "comment": "\u{0}"}))
        .await;
    r.assert_error(400, 3);
    assert_eq!(r.violated_fields(), vec!["comment"]);
    assert!(app.all_responses().await.is_empty(), "a refused answer wrote nothing");

    // A question with NUL: no survey is created.
    let before = c.list_surveys(pb::ListSurveysRequest::default()).await.unwrap().into_inner().surveys.len();
    let err = c
        .create_survey(pb::CreateSurveyRequest {
            survey: Some(pb::Survey {
                kind: pb::SurveyKind::Nps as i32,
                name: "n".into(),
                question: "q\0".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "survey.question");
    let after = c.list_surveys(pb::ListSurveysRequest::default()).await.unwrap().into_inner().surveys.len();
    assert_eq!(before, after);

    // Tab, newline and carriage return are text.
    let r = c
        .record_response(pb::RecordResponseRequest {
            target: Some(Target::Token(issued.token)),
            score: Some(5),
            comment: "first line\r\nsecond\tline".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.comment, "first line\r\nsecond\tline");
}

async fn page_tokens_with_control_characters_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = app.surveys.clone();
    for raw in ["after:\0", "after:", "after:\u{1}x", "before:x"] {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let err = c.list_surveys(pb::ListSurveysRequest { page_token: token, ..Default::default() }).await.unwrap_err();
        assert_invalid(&err, "page_token");
    }
    let err = c
        .list_surveys(pb::ListSurveysRequest { page_token: "x".repeat(20_000), ..Default::default() })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    assert!(err.message().len() < 1_000, "the token is not echoed: {} bytes", err.message().len());
}

async fn malformed_protobuf_is_invalid_argument_not_internal(b: Backend) {
    let app = spawn_app(b).await;
    // A gRPC-Web frame whose body is not protobuf (a field with wire type 7).
    let message = [0x0f_u8, 0x01];
    let mut body = vec![0u8];
    body.extend((message.len() as u32).to_be_bytes());
    body.extend(message);
    let resp = reqwest::Client::new()
        .post(format!("{}/rapport.v1.SurveyService/ListSurveys", app.http))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {}", app.key))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let in_headers = resp.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    let code = in_headers
        .or_else(|| text.lines().find_map(|l| l.trim().strip_prefix("grpc-status:").map(|c| c.trim().to_owned())));
    assert_eq!(code.as_deref(), Some((Code::InvalidArgument as i32).to_string().as_str()), "{text}");
}
