//! The Helm chart against the binary it deploys: every variable the chart sets is one
//! the binary reads, and the built `rapport` process, run with the chart's settings,
//! logs JSON, serves gRPC health and `/metrics` on the admin port, and stops cleanly on
//! SIGTERM. (The chart's own tests, `bash helm/tests/run.sh`, check the manifests.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BINARY: &str = env!("CARGO_BIN_EXE_rapport");

/// Variables the chart may set before the binary reads them (none now).
const PENDING: &[&str] = &[];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// Environment variable names the chart sets: ConfigMap keys and `env` entries.
fn chart_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in read("helm/rapport/templates/configmap.yaml").lines() {
        // Keys of `data:`, two spaces in: `  RAPPORT_GRPC_ADDR: {{ … }}`.
        if let Some((key, _)) = line.strip_prefix("  ").and_then(|l| l.split_once(':'))
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            names.insert(key.to_owned());
        }
    }
    for file in ["helm/rapport/templates/migration-job.yaml", "helm/rapport/templates/_helpers.tpl"] {
        for line in read(file).lines() {
            if let Some(name) = line.trim().strip_prefix("- name: ")
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Environment variables the binary's flags read, from its own `--help`.
async fn binary_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for args in [&["--help"][..], &["serve", "--help"], &["migrate", "--help"]] {
        let out = Command::new(BINARY).args(args).env_clear().output().await.expect("rapport --help runs");
        assert!(out.status.success(), "rapport {args:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        for part in text.split("[env: ").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.insert(name);
        }
    }
    names
}

#[tokio::test]
async fn every_variable_the_chart_sets_is_one_the_binary_reads() {
    let chart = chart_variables();
    for expected in [
        "RAPPORT_GRPC_ADDR",
        "RAPPORT_ADMIN_ADDR",
        "RAPPORT_LOG_FORMAT",
        "DATABASE_URL",
        "OTEL_SERVICE_NAME",
        // The in-app settings (config.corsAllowedOrigins, clientIpHeader, rateLimits.*).
        "RAPPORT_CORS_ALLOWED_ORIGINS",
        "RAPPORT_CLIENT_IP_HEADER",
        "RAPPORT_PUBLISHABLE_KEY_RATE_PER_MINUTE",
        "RAPPORT_PUBLISHABLE_KEY_BURST",
        "RAPPORT_CLIENT_ADDRESS_RATE_PER_MINUTE",
        "RAPPORT_CLIENT_ADDRESS_BURST",
    ] {
        assert!(chart.contains(expected), "the chart sets {expected}: {chart:?}");
    }
    let binary = binary_variables().await;
    // OpenTelemetry's own variables are read by `telemetry::init`, not by a flag, and the
    // secrets (keys, operator token) by `SecretArgs::read_environment`, never from a flag.
    let telemetry = read("src/telemetry.rs");
    let config = read("src/config.rs");
    let unknown: Vec<&String> = chart
        .iter()
        .filter(|name| !binary.contains(*name) && !PENDING.contains(&name.as_str()))
        .filter(|name| !(name.starts_with("OTEL_") && telemetry.contains(&format!("\"{name}\""))))
        .filter(|name| !config.contains(&format!("var(\"{name}\")")))
        .collect();
    assert!(unknown.is_empty(), "the chart sets variables the binary does not read: {unknown:?}; it reads {binary:?}");
}

/// The options a help text lists (`--flag`s at the start of a line).
async fn help_options(args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(BINARY).args(args).env_clear().output().await.expect("rapport --help runs");
    assert!(out.status.success(), "rapport {args:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.lines()
        .filter_map(|l| l.trim_start().split([' ', ',', '=']).find(|w| w.starts_with("--")).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn rapport_help_and_rapport_serve_help_list_the_same_options_and_both_places_take_them() {
    let mut top = help_options(&["--help"]).await;
    assert!(top.remove("--version"), "only the program has a version");
    let serve = help_options(&["serve", "--help"]).await;
    for option in ["--http-addr", "--grpc-addr", "--admin-addr", "--cors-allowed-origins", "--database-url"] {
        assert!(top.contains(option), "rapport --help lists {option}: {top:?}");
    }
    assert_eq!(top, serve, "rapport --help and rapport serve --help list the same options");
    // No sub-command means serve: a serve option before it (or alone) is taken; a bad
    // value is refused naming the flag, which shows the flag was parsed as a serve option.
    for args in
        [&["--http-addr", "nowhere"][..], &["--http-addr", "nowhere", "serve"], &["serve", "--http-addr", "nowhere"]]
    {
        let out = Command::new(BINARY).args(args).env_clear().output().await.expect("rapport runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "rapport {args:?}: {stderr}");
        assert!(stderr.contains("invalid value 'nowhere' for '--http-addr"), "rapport {args:?}: {stderr}");
    }
}

/// A free loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_with_the_charts_settings_logs_json_serves_health_and_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // The chart's ConfigMap with its default values (as helm/tests pins them), except
    // loopback port 0 for the listeners and SQLite (the chart's demo mode) for the
    // database, and a collector address where nothing listens: the server must run
    // unchanged without one.
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("RAPPORT_GRPC_ADDR", "127.0.0.1:0")
        .env("RAPPORT_HTTP_ADDR", "127.0.0.1:0")
        .env("RAPPORT_ADMIN_ADDR", "127.0.0.1:0")
        .env("RAPPORT_LOG_FORMAT", "json")
        .env("RAPPORT_LOG_LEVEL", "info")
        .env("RAPPORT_MIGRATE_ON_START", "true")
        .env("RAPPORT_BOOTSTRAP_TENANT", "false")
        .env("RAPPORT_SHUTDOWN_GRACE_SECONDS", "20")
        .env("RAPPORT_DB_MAX_CONNECTIONS", "10")
        .env("RAPPORT_CORS_ALLOWED_ORIGINS", "")
        .env("RAPPORT_PUBLISHABLE_KEY_RATE_PER_MINUTE", "1200")
        .env("RAPPORT_PUBLISHABLE_KEY_BURST", "200")
        .env("RAPPORT_CLIENT_ADDRESS_RATE_PER_MINUTE", "120")
        .env("RAPPORT_CLIENT_ADDRESS_BURST", "60")
        .env("OTEL_SERVICE_NAME", "rapport")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{}", closed_port()))
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("rapport.db").display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rapport starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut logged: Vec<serde_json::Value> = Vec::new();

    // Every line is a JSON object; the two "serving" lines carry the bound addresses.
    let (mut grpc, mut admin) = (None, None);
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while grpc.is_none() || admin.is_none() {
            let line = lines.next_line().await.expect("stdout").expect("rapport exited early");
            let entry: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            let message = entry["fields"]["message"].as_str().unwrap_or_default().to_owned();
            let addr = entry["fields"]["addr"].as_str().map(str::to_owned);
            if message == "rapport serving gRPC" {
                grpc = addr;
            } else if message.starts_with("rapport serving Prometheus metrics") {
                admin = addr;
            }
            logged.push(entry);
        }
    })
    .await;
    assert!(started.is_ok(), "no 'serving' lines within a minute: {logged:?}");
    assert!(logged.iter().all(|e| e["level"].is_string() && e["timestamp"].is_string()), "{logged:?}");
    let (grpc, admin) = (grpc.expect("gRPC address"), admin.expect("admin address"));

    // The probes' check: health service "" on the gRPC port.
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}")).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel);
    let serving = crate::helpers::eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest { service: String::new() })
                .await
                .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
        }
    })
    .await;
    assert!(serving, "health \"\" turns SERVING");
    health.check(HealthCheckRequest { service: String::new() }).await.expect("a health check");

    // The ServiceMonitor's scrape: GET /metrics on the admin port.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(format!("http://{admin}/metrics").parse().unwrap()).await.expect("GET /metrics");
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    assert!(
        text.lines().any(|l| l.starts_with("grpc_server_handled_total{")
            && l.contains("grpc_service=\"grpc.health.v1.Health\"")
            && l.contains("grpc_code=\"OK\"")),
        "{text}"
    );

    // Kubernetes stops a pod with SIGTERM: drain, then exit 0.
    let pid = child.id().expect("a pid").to_string();
    // The shell's builtin `kill`: no procps needed.
    let kill = Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status().await.expect("sh runs");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits").expect("waited");
    assert!(status.success(), "exit status {status:?}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.expect("stdout") {
        rest.push(serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    assert!(
        rest.iter().any(|e| e["fields"]["message"].as_str().is_some_and(|m| m.starts_with("shutting down"))),
        "{rest:?}"
    );
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).await.unwrap();
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}
