//! Test support for the console's browser tests (`tests/browser/console.test.mjs`, run
//! by `tests/browser/run.sh`): starts the real server over a temporary SQLite database,
//! seeds a bulk of history, prints what the test needs as one JSON line, and serves
//! until its standard input closes (or SIGTERM).
//!
//! ```text
//! cargo run --example console_fixture -- --bulk 100000
//! {"grpc":"127.0.0.1:…","http":"http://127.0.0.1:…","secretKey":"rk_secret_…","readKey":"rk_read_…",…}
//! ```
//!
//! Data: tenant `acme` with a secret and a read-only key and an NPS survey "Bulk NPS"
//! holding `--bulk` answers (default 100 000) spread over the last 88 days, imported
//! through ImportService in batches of 1 000 (the path `rapport import` takes), from
//! 20 000 customers with a `plan` property; and tenant `globex` with its own secret
//! key, so the test can check that one tenant's console never shows the other's. The
//! test seeds the answers whose numbers it checks itself.

use std::time::{Duration, Instant};

use rapport::app::{Application, shutdown_signal};
use rapport::config::ServeArgs;
use rapport::domain::model::KeyKind;
use rapport::grpc::pb;
use rapport::grpc::pb::import_service_client::ImportServiceClient;
use rapport::grpc::pb::survey_service_client::SurveyServiceClient;
use rapport::service::Clock;
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

/// A deterministic score: a mix of about 45 % promoters, 30 % passives, 25 % detractors.
fn score(i: u64) -> i32 {
    const SCORES: [i32; 20] = [10, 9, 10, 9, 9, 10, 9, 10, 9, 8, 7, 8, 7, 8, 7, 6, 3, 5, 0, 4];
    SCORES[((i.wrapping_mul(2_654_435_761)) % 20) as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bulk: u64 = arg("--bulk").map(|b| b.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let db = DbSettings {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        ..DbSettings::new(format!("sqlite://{}?mode=rwc", dir.path().join("rapport.db").display()))
    };
    let args = ServeArgs {
        grpc_addr: "127.0.0.1:0".parse()?,
        http_addr: arg("--http-addr").unwrap_or_else(|| "127.0.0.1:0".into()).parse()?,
        ..ServeArgs::default()
    };
    let app = Application::build(&db, args, Clock::default()).await?;
    let (grpc, http) = (app.local_addr(), app.http_addr());
    let svc = app.services().clone();
    let acme = svc.create_tenant("acme").await?;
    let read = svc.create_key("acme", KeyKind::Read).await?;
    let globex = svc.create_tenant("globex").await?;
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

    let mut surveys = SurveyServiceClient::connect(format!("http://{grpc}")).await?;
    let s = pb::Survey {
        kind: pb::SurveyKind::Nps as i32,
        name: "Bulk NPS".into(),
        question: "How likely are you to recommend Acme?".into(),
        ..Default::default()
    };
    let bulk_survey = surveys
        .create_survey(authed(&acme.secret, pb::CreateSurveyRequest { survey: Some(s) })?)
        .await?
        .into_inner()
        .id;

    let started = Instant::now();
    let mut imports = ImportServiceClient::connect(format!("http://{grpc}"))
        .await
        .map_err(|e| anyhow::anyhow!("connecting the import client: {e:?}"))?;
    let now = chrono::Utc::now();
    let span_secs = 88 * 86_400;
    let mut i = 0;
    while i < bulk {
        let batch: Vec<pb::ImportedResponse> = (i..(i + 1000).min(bulk))
            .map(|k| {
                let at = now - chrono::Duration::seconds(60 + ((k * 7_919) % span_secs) as i64);
                pb::ImportedResponse {
                    external_id: format!("bulk-{k}"),
                    survey_id: bulk_survey.clone(),
                    customer_id: format!("bulk-customer-{}", k % 20_000),
                    score: Some(score(k)),
                    recorded_time: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 }),
                    properties: [("plan".to_owned(), if k % 3 == 0 { "enterprise" } else { "starter" }.to_owned())]
                        .into(),
                    ..Default::default()
                }
            })
            .collect();
        let n = batch.len() as u64;
        let req = pb::ImportResponsesRequest { responses: batch, open_follow_ups: false, emit_events: false };
        let out = imports
            .import_responses(authed(&acme.secret, req)?)
            .await
            .map_err(|e| anyhow::anyhow!("importing answers {i}…: {e:?}"))?
            .into_inner();
        anyhow::ensure!(out.rejected == 0, "bulk import rejected {} answers: {:?}", out.rejected, out.results.first());
        i += n;
    }
    eprintln!("console fixture: {bulk} answers imported in {:.1} s", started.elapsed().as_secs_f64());

    println!(
        "{}",
        json!({
            "grpc": grpc.to_string(),
            "http": format!("http://{http}"),
            "secretKey": acme.secret,
            "readKey": read.secret,
            "bulkSurvey": bulk_survey,
            "bulk": bulk,
            "globexKey": globex.secret,
        })
    );
    server.await??;
    Ok(())
}
