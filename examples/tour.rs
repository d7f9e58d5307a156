//! A quick tour of the API with the generated Rust client: create an NPS survey,
//! issue it, answer through the invitation token, read the follow-up the low score
//! opened, and print the survey's metrics.
//!
//! ```text
//! cargo run --release                                     # in one terminal: prints a secret key once
//! RAPPORT_KEY=rk_secret_… cargo run --release --example tour
//! ```
//!
//! After `cargo build --release` this compiles only the example and the test-only
//! crates (seconds): the dev-dependencies turn on no feature the service's build lacks
//! (see the note in Cargo.toml). Without `--release` it is a second, debug build.

use rapport::grpc::pb;
use rapport::grpc::pb::follow_up_service_client::FollowUpServiceClient;
use rapport::grpc::pb::survey_service_client::SurveyServiceClient;
use tonic::Request;

fn authed<T>(key: &str, msg: T) -> anyhow::Result<Request<T>> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert("authorization", format!("Bearer {key}").parse()?);
    Ok(req)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let key = std::env::var("RAPPORT_KEY").map_err(|_| anyhow::anyhow!("set RAPPORT_KEY to a secret key"))?;
    let addr = std::env::var("RAPPORT_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let mut surveys = SurveyServiceClient::connect(addr.clone()).await?;
    let mut follow_ups = FollowUpServiceClient::connect(addr).await?;

    let survey = surveys
        .create_survey(authed(
            &key,
            pb::CreateSurveyRequest {
                survey: Some(pb::Survey {
                    kind: pb::SurveyKind::Nps as i32,
                    name: "Quarterly NPS".into(),
                    question: "How likely are you to recommend us to a friend?".into(),
                    low_label: "Not at all likely".into(),
                    high_label: "Extremely likely".into(),
                    ..Default::default()
                }),
            },
        )?)
        .await?
        .into_inner();
    println!("created survey {} ({} to {})", survey.id, survey.scale_min, survey.scale_max.unwrap_or_default());

    let customer = format!("tour-{}", std::process::id());
    let issued = surveys
        .issue_survey(authed(
            &key,
            pb::IssueSurveyRequest {
                survey_id: survey.id.clone(),
                customer_id: customer.clone(),
                channel: pb::Channel::Email as i32,
                properties: [("plan".to_string(), "enterprise".to_string())].into(),
                ..Default::default()
            },
        )?)
        .await?
        .into_inner();
    println!("issued invitation (issued = {}), token {}", issued.issued, issued.token);

    // The form holds only the token: no key needed.
    let response = surveys
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(issued.token.clone())),
            score: Some(4),
            comment: "Checkout keeps timing out".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("recorded score {} as bucket {:?}", response.score, pb::Bucket::try_from(response.bucket)?);

    let follow_up = follow_ups
        .get_follow_up(authed(&key, pb::GetFollowUpRequest { id: response.follow_up_id.clone() })?)
        .await?
        .into_inner();
    println!("follow-up {} is {:?}, due at {:?}", follow_up.id, follow_up.status(), follow_up.due_time);

    let metrics = surveys
        .get_survey_metrics(authed(
            &key,
            pb::GetSurveyMetricsRequest {
                scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(survey.id)),
                ..Default::default()
            },
        )?)
        .await?
        .into_inner();
    let s = metrics.summary.unwrap_or_default();
    println!(
        "NPS {:?} over n = {}, 95 % CI {:?}; response rate {:?}",
        s.headline,
        s.n,
        s.headline_interval.map(|i| (i.lower, i.upper)),
        metrics.funnel.and_then(|f| f.response_rate)
    );
    Ok(())
}
