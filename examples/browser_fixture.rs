//! Test support for the browser and Node tests (`tests/browser/run.sh`): starts the
//! real server over a temporary SQLite database with known data, prints it as one
//! JSON line, and serves until its standard input closes (or SIGTERM).
//!
//! ```text
//! cargo run --example browser_fixture -- --allowed-origin http://localhost:4173
//! {"grpc":"127.0.0.1:…","http":"http://127.0.0.1:…","secretKey":"rk_secret_…",…}
//! ```
//!
//! Data: tenant `acme` with a secret and a publishable key and in-app NPS, CSAT and
//! CES surveys plus an email-only NPS survey; an email invitation for the hosted page;
//! an invitation that has expired (the server's clock is moved 31 days on after
//! issuing it); and tenant `verified` with identity verification on. Branding: an
//! email NPS survey branded "Acme" in purple with no language (the page follows the
//! browser's) and one invitation per test language, one in Arabic (right to left),
//! an in-app CSAT survey in Spanish branded in red, and an invitation whose score the
//! test changes before sending the comment.

use std::time::Duration;

use rapport::app::{Application, shutdown_signal};
use rapport::config::ServeArgs;
use rapport::domain::model::KeyKind;
use rapport::grpc::pb;
use rapport::grpc::pb::survey_service_client::SurveyServiceClient;
use rapport::service::Clock;
use rapport::service::in_app::IdentityChange;
use rapport::store::DbSettings;
use serde_json::json;
use tonic::Request;

fn authed<T>(key: &str, msg: T) -> anyhow::Result<Request<T>> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert("authorization", format!("Bearer {key}").parse()?);
    Ok(req)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = DbSettings {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        ..DbSettings::new(format!("sqlite://{}?mode=rwc", dir.path().join("rapport.db").display()))
    };
    let args = ServeArgs {
        grpc_addr: arg("--grpc-addr").unwrap_or_else(|| "127.0.0.1:0".into()).parse()?,
        http_addr: arg("--http-addr").unwrap_or_else(|| "127.0.0.1:0".into()).parse()?,
        cors_allowed_origins: arg("--allowed-origin").into_iter().collect(),
        // The production defaults, so the browser runs under real limits.
        publishable_key_rate_per_minute: 1200,
        publishable_key_burst: 200,
        client_address_rate_per_minute: 120,
        client_address_burst: 60,
        ..ServeArgs::default()
    };
    let clock = Clock::default();
    let app = Application::build(&db, args, clock.clone()).await?;
    let (grpc, http) = (app.local_addr(), app.http_addr());
    let svc = app.services().clone();
    let acme = svc.create_tenant("acme").await?;
    let acme_pub = svc.create_key("acme", KeyKind::Publishable).await?;
    let verified = svc.create_tenant("verified").await?;
    let verified_pub = svc.create_key("verified", KeyKind::Publishable).await?;
    let identity_secret = svc
        .set_identity_verification("verified", IdentityChange::Enable { rotate: false })
        .await?
        .ok_or_else(|| anyhow::anyhow!("no identity secret"))?;
    // Standard input closing (the test runner exiting) stops the server.
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = eof_tx.send(());
    });
    let server = tokio::spawn(app.run_until_stopped(async {
        tokio::select! {
            _ = eof_rx => {}
            _ = shutdown_signal() => {}
        }
    }));

    let mut client = SurveyServiceClient::connect(format!("http://{grpc}")).await?;
    let mut survey = async |key: &str, kind: pb::SurveyKind, max: Option<i32>, question: &str, in_app: bool| {
        let s =
            pb::Survey { kind: kind as i32, scale_max: max, question: question.into(), in_app, ..Default::default() };
        anyhow::Ok(
            client.create_survey(authed(key, pb::CreateSurveyRequest { survey: Some(s) })?).await?.into_inner().id,
        )
    };
    let nps =
        survey(&acme.secret, pb::SurveyKind::Nps, None, "How likely are you to recommend Acme to a friend?", true)
            .await?;
    let csat =
        survey(&acme.secret, pb::SurveyKind::Csat, Some(5), "How satisfied are you with the new editor?", true).await?;
    let ces = survey(&acme.secret, pb::SurveyKind::Ces, Some(7), "Acme made it easy to export my data.", true).await?;
    let email = survey(&acme.secret, pb::SurveyKind::Nps, None, "How likely are you to recommend Acme?", false).await?;
    let verified_nps =
        survey(&verified.secret, pb::SurveyKind::Nps, None, "How likely are you to recommend us?", true).await?;

    let mut client = SurveyServiceClient::connect(format!("http://{grpc}")).await?;
    let mut branded = async |s: pb::Survey| {
        anyhow::Ok(
            client
                .create_survey(authed(&acme.secret, pb::CreateSurveyRequest { survey: Some(s) })?)
                .await?
                .into_inner()
                .id,
        )
    };
    let brand = |name: &str, color: &str| {
        Some(pb::Branding { display_name: name.into(), accent_color: color.into(), logo_url: String::new() })
    };
    let acme_brand = branded(pb::Survey {
        kind: pb::SurveyKind::Nps as i32,
        question: "How likely are you to recommend Acme to a colleague?".into(),
        branding: brand("Acme", "#8250df"),
        ..Default::default()
    })
    .await?;
    let arabic = branded(pb::Survey {
        kind: pb::SurveyKind::Nps as i32,
        question: "ما مدى احتمال أن توصي بأكمي لصديق؟".into(),
        branding: brand("أكمي", "#0a7d33"),
        language: "ar".into(),
        ..Default::default()
    })
    .await?;
    let spanish = branded(pb::Survey {
        kind: pb::SurveyKind::Csat as i32,
        scale_max: Some(5),
        question: "¿Qué tan satisfecho está con el nuevo editor?".into(),
        branding: brand("Acme", "#d1242f"),
        language: "es".into(),
        in_app: true,
        ..Default::default()
    })
    .await?;

    let mut client = SurveyServiceClient::connect(format!("http://{grpc}")).await?;
    let mut issue_for = async |survey: &str, customer: &str| {
        let req = pb::IssueSurveyRequest {
            survey_id: survey.into(),
            customer_id: customer.into(),
            channel: pb::Channel::Email as i32,
            ..Default::default()
        };
        anyhow::Ok(client.issue_survey(authed(&acme.secret, req)?).await?.into_inner().token)
    };
    let expired = issue_for(&email, "mail-expired").await?;
    clock.advance(chrono::Duration::days(31));
    let hosted = issue_for(&email, "mail-1").await?;
    let mut locales = serde_json::Map::new();
    for tag in ["en", "de", "fr", "es"] {
        locales.insert(tag.into(), issue_for(&acme_brand, &format!("mail-{tag}")).await?.into());
    }
    let rtl = issue_for(&arabic, "mail-ar").await?;
    let change = issue_for(&acme_brand, "mail-change").await?;

    println!(
        "{}",
        json!({
            "grpc": grpc.to_string(),
            "http": format!("http://{http}"),
            "secretKey": acme.secret,
            "publishableKey": acme_pub.secret,
            "surveys": {"nps": nps, "csat": csat, "ces": ces, "email": email},
            "hostedToken": hosted,
            "expiredToken": expired,
            "branding": {
                "localeTokens": locales,
                "rtlToken": rtl,
                "changeToken": change,
                "spanishSurvey": spanish,
            },
            "verified": {
                "secretKey": verified.secret,
                "publishableKey": verified_pub.secret,
                "survey": verified_nps,
                "identitySecret": identity_secret,
            },
        })
    );
    server.await??;
    Ok(())
}
