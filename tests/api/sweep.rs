//! The hostile-input sweep: generated bad inputs over every RPC of the descriptor set
//! and every JSON route of `/openapi.json`, on both databases.
//!
//! For each RPC a valid *base* request (proto3 JSON over seeded data, in [`BASES`]) is
//! mutated one field at a time, through sub-messages, list elements and map entries:
//! control characters, 20 000-character strings, timestamps outside 1970–9999 (chrono's
//! extremes included) and nanos out of range, integer extremes, unknown enum values, NaN
//! and infinities, page tokens the service never issued, missing and empty
//! sub-messages; and raw frames that are not valid protobuf (invalid UTF-8 in a string,
//! a field cut short, a bad wire type, deeply nested groups, random bytes). Each request
//! goes over native gRPC (raw bytes through `tonic::client::Grpc`, so any RPC is called
//! without a typed client) and over each of the RPC's JSON routes (the same message in
//! proto3 JSON, split into path, query and body as the binding says). A subset goes with
//! a publishable key, another tenant's key, a forged `rk_secret_…` key, an invitation
//! token as the key, and no key. The generator is seeded: every run sends the same calls.
//!
//! Every reply must hold:
//! - never INTERNAL, UNKNOWN, CANCELLED, DATA_LOSS, UNAVAILABLE, DEADLINE_EXCEEDED or
//!   UNIMPLEMENTED (a transport error shows as one of these), no HTTP 5xx, an answer
//!   within 10 s;
//! - the error message (`grpc-message`, JSON `message`) at most 1 KiB, the error
//!   details at most 8 KiB;
//! - an input the API's rules refuse (docs/api.md, "Input rules": control characters,
//!   timestamps outside 1970–9999, undecodable protobuf; and page tokens it never issued)
//!   is refused: with the tenant's secret key as INVALID_ARGUMENT naming the field by its
//!   path (HTTP 400 with code 3), with any other credential refused somehow;
//! - a refused call changes no row. The refusable inputs run first and every table is
//!   compared before and after each RPC's share; then the other inputs (which may be
//!   accepted) run, with the tables compared around each refused write (reads: around
//!   each RPC's share). Not compared: `engagement_snapshots` (a cache that reads
//!   refresh), `api_keys.last_used_at` (authentication writes it, whatever the call's
//!   outcome), `fanout_cursors` and `delivery_attempts` (the background workers write
//!   them), and of `deliveries` only the ids (the dispatcher updates their status).
//!
//! Afterwards: no panic on the server's threads (a panic hook that records panics on
//! this test's runtime threads, where the in-process server runs), no ERROR event in
//! the server's log (a subscriber on the same threads), `rapport_panics_total` zero when
//! exported, and the server still serves (health, `/healthz`, a plain call).
//!
//! A failing run prints one line per problem: transport, RPC, field, input kind,
//! credential and what came back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Buf as _, BufMut as _, Bytes};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, MethodDescriptor,
    ReflectMessage as _, SerializeOptions, Value,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value as Json, json};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::helpers::*;
use crate::receiver::Receiver;

mod sqlite {
    #[test]
    fn generated_bad_inputs_never_break_the_server_nor_change_a_row() {
        super::run(super::Backend::Sqlite);
    }
}

mod postgres {
    #[test]
    fn generated_bad_inputs_never_break_the_server_nor_change_a_row() {
        super::run(super::Backend::Postgres);
    }
}

/// The sweep's own instruments, checked: a panic on a sweep thread is seen (and one on
/// another thread is not), and a changed row shows in the comparison.
mod instruments {
    use super::*;

    #[test]
    fn the_panic_hook_records_panics_on_sweep_threads_only() {
        install_panic_hook();
        let name = format!("{THREAD_PREFIX}self-test");
        let on = std::thread::Builder::new().name(name.clone()).spawn(|| panic!("a planted panic"));
        assert!(on.expect("a thread").join().is_err());
        let off = std::thread::Builder::new().name("elsewhere".into()).spawn(|| panic!("not ours"));
        assert!(off.expect("a thread").join().is_err());
        let seen = server_panics(&name);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].starts_with("a planted panic at tests/api/sweep.rs:"), "{seen:?}");
    }

    #[tokio::test]
    async fn a_changed_row_shows_in_the_comparison() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("rows.db").display());
        let rows = Rows::new(&url).await;
        for sql in [
            "CREATE TABLE things (id TEXT PRIMARY KEY, n INTEGER, note TEXT)",
            "CREATE TABLE fanout_cursors (tenant_id TEXT, seq INTEGER)",
            "INSERT INTO things VALUES ('a', 1, NULL)",
        ] {
            rows.conn.execute_unprepared(sql).await.expect(sql);
        }
        let before = rows.take().await;
        rows.conn.execute_unprepared("INSERT INTO fanout_cursors VALUES ('t', 1)").await.expect("insert");
        assert_eq!(diff(&before, &rows.take().await), None, "fanout_cursors is not compared");
        rows.conn.execute_unprepared("UPDATE things SET note = 'x' WHERE id = 'a'").await.expect("update");
        let changed = diff(&before, &rows.take().await).expect("a changed row shows");
        assert!(changed.starts_with("things +1 -1"), "{changed}");
    }
}

/// Seed of the generator: every run sends the same calls.
const SEED: u64 = 0x5eed_0011;
/// Every base gets every input marked `always` (NUL in every text, every timestamp
/// extreme, every 20 000-character string, page tokens, undecodable frames) and at most
/// this many of the others of each class (a seeded sample), so a database's sweep takes
/// seconds in a debug build.
const MORE_REFUSE_PER_BASE: usize = 12;
const MORE_EDGE_PER_BASE: usize = 24;
/// Refusable inputs of each base also sent with each other credential.
const REFUSE_PER_OTHER_CREDENTIAL: usize = 2;
/// A call that takes longer than this hangs.
const CALL_LIMIT: Duration = Duration::from_secs(10);
/// Largest error message and details a reply may carry.
const MAX_MESSAGE: usize = 1024;
const MAX_DETAILS: usize = 8 * 1024;
/// Codes that mean the server failed, not the input.
const FORBIDDEN: &[Code] = &[
    Code::Internal,
    Code::Unknown,
    Code::Cancelled,
    Code::DataLoss,
    Code::Unavailable,
    Code::DeadlineExceeded,
    Code::Unimplemented,
];
/// Tables not compared, and tables compared by id only (see the module doc).
const NOT_COMPARED: &[&str] = &["engagement_snapshots", "fanout_cursors", "delivery_attempts"];
const IDS_ONLY: &[&str] = &["deliveries"];
/// Columns not compared: when a key last authenticated (written after any call with it,
/// refused or not).
const COLUMNS_NOT_COMPARED: &[(&str, &str)] = &[("api_keys", "last_used_at")];
/// Runtime threads of the sweep are named with this prefix and the backend.
const THREAD_PREFIX: &str = "rapport-sweep-";
const LONG: usize = 20_000;

/// One valid request per line, as proto3 JSON; `<NAME>` is replaced by seeded data
/// (see [`seed`]). Several lines for one RPC give it several bases (one per oneof
/// branch that reaches other code). Every RPC of the descriptor set must have one.
const BASES: &[(&str, &str)] = &[
    (
        "SurveyService.CreateSurvey",
        r#"{"survey":{"kind":"SURVEY_KIND_CSAT","name":"sweep","question":"How was it?","scaleMax":5,
            "lowLabel":"bad","highLabel":"good","policy":{"daysAfterResponseThisSurvey":10,"invitationExpiryDays":7},
            "followUp":{"threshold":2,"customerCondition":{"plan":"pro"},"slaHours":24},"inApp":true}}"#,
    ),
    ("SurveyService.GetSurvey", r#"{"id":"<S>"}"#),
    ("SurveyService.ListSurveys", r#"{"pageSize":10,"kind":"SURVEY_KIND_NPS","includeArchived":true}"#),
    (
        "SurveyService.UpdateSurvey",
        r#"{"survey":{"id":"<S>","name":"renamed","question":"How likely are you to recommend us?","lowLabel":"no",
            "highLabel":"yes","policy":{"daysAfterInvitationThisSurvey":0},"followUp":{"threshold":6,"slaHours":48}},
            "updateMask":"name,lowLabel"}"#,
    ),
    ("SurveyService.ArchiveSurvey", r#"{"id":"<S_B>"}"#),
    ("SurveyService.CheckEligibility", r#"{"surveyId":"<S>","customerId":"c-1"}"#),
    (
        "SurveyService.IssueSurvey",
        r#"{"surveyId":"<S>","customerId":"c-issue","channel":"CHANNEL_EMAIL","properties":{"plan":"pro"}}"#,
    ),
    ("SurveyService.GetInvitation", r#"{"token":"<T3>"}"#),
    ("SurveyService.DismissInvitation", r#"{"token":"<T2>"}"#),
    ("SurveyService.SetCustomerSubscription", r#"{"customerId":"c-sub","unsubscribed":false}"#),
    (
        "SurveyService.RecordResponse",
        r#"{"direct":{"surveyId":"<S>","customerId":"c-direct"},"score":9,"comment":"great","properties":{"plan":"pro"}}"#,
    ),
    ("SurveyService.RecordResponse", r#"{"token":"<T3>","score":9,"comment":"great","properties":{"plan":"pro"}}"#),
    ("SurveyService.UpdateResponse", r#"{"responseId":"<R1>","score":3,"comment":"changed","properties":{"k":"v"}}"#),
    ("SurveyService.UpdateResponse", r#"{"token":"<T1>","comment":"changed again"}"#),
    ("SurveyService.GetResponse", r#"{"id":"<R1>"}"#),
    (
        "SurveyService.ListResponses",
        r#"{"pageSize":10,"surveyId":"<S>","customerId":"c-1","startTime":"<MONTHS_AGO>","endTime":"<TOMORROW>",
            "bucket":"BUCKET_DETRACTOR"}"#,
    ),
    (
        "SurveyService.GetSurveyMetrics",
        r#"{"surveyId":"<S>","startTime":"<MONTHS_AGO>","endTime":"<TOMORROW>","filter":{"plan":"pro"},
            "interval":"INTERVAL_WEEK"}"#,
    ),
    (
        "SurveyService.GetSurveyMetrics",
        r#"{"kind":"SURVEY_KIND_NPS","endTime":"<TOMORROW>","interval":"INTERVAL_MONTH"}"#,
    ),
    ("FollowUpService.GetFollowUp", r#"{"id":"<F1>"}"#),
    (
        "FollowUpService.ListFollowUps",
        r#"{"pageSize":10,"status":"FOLLOW_UP_STATUS_OPEN","surveyId":"<S>","customerId":"c-1","assignee":"agent",
            "overdue":false}"#,
    ),
    ("FollowUpService.UpdateFollowUp", r#"{"id":"<F2>","author":"agent","addNote":{"body":"called them"}}"#),
    (
        "EngagementService.UpsertCustomer",
        r#"{"customerId":"c-1","accountId":"acct-1","traits":{"email":"ada@example.com","name":"Ada","plan":"pro",
            "signupTime":"2024-01-01T00:00:00Z"},"properties":{"plan":"pro"}}"#,
    ),
    ("EngagementService.GetCustomer", r#"{"customerId":"c-1"}"#),
    ("EngagementService.ListCustomers", r#"{"pageSize":10,"accountId":"acct-1","propertyFilter":{"plan":"pro"}}"#),
    (
        "EngagementService.RecordEvents",
        r#"{"events":[{"messageId":"m-sweep","customerId":"c-1","time":"<YESTERDAY>",
            "action":{"name":"export","properties":{"plan":"pro"}}}]}"#,
    ),
    ("EngagementService.GetScoringConfig", "{}"),
    (
        "EngagementService.UpdateScoringConfig",
        r#"{"config":{"actionWeights":{"export":2},"halfLifeDays":30,"coreActions":["export"],"profitMargin":0.3,
            "healthWeights":{"engagement":1,"stickiness":1,"recency":1,"nps":1,"csat":1,"effort":1,"followUps":1},
            "minHealthComponents":2,"healthBands":{"redMax":40,"yellowMax":70},
            "risk":{"inactiveDays":14,"activityDrop":0.5},"inactivityDays":30,"timeZone":"Europe/Paris",
            "currency":"EUR"},"updateMask":"halfLifeDays,coreActions"}"#,
    ),
    ("EngagementService.GetEngagementProfile", r#"{"customerId":"c-1","asOf":"<NOW>"}"#),
    ("EngagementService.GetEngagementMetrics", r#"{"windowDays":30,"asOf":"<NOW>","cohortMonths":6}"#),
    (
        "EngagementService.ListTopCustomers",
        r#"{"action":"export","propertyKey":"plan","propertyValue":"pro","windowDays":30,"asOf":"<NOW>",
            "order":"RANK_ORDER_DESCENDING","pageSize":10}"#,
    ),
    ("EngagementService.ListTopCustomers", r#"{"engagementScore":true,"windowDays":30,"asOf":"<NOW>","pageSize":10}"#),
    (
        "EngagementService.TopPropertyValues",
        r#"{"action":"export","property":"plan","windowDays":30,"asOf":"<NOW>","limit":10}"#,
    ),
    (
        "ImportService.ImportResponses",
        r#"{"responses":[{"externalId":"x-1","surveyId":"<S>","customerId":"c-import","score":8,
            "recordedTime":"<MONTHS_AGO>","invitationTime":"<MONTHS_AGO>","comment":"old","properties":{"plan":"pro"}}]}"#,
    ),
    (
        "ImportService.ImportEvents",
        r#"{"events":[{"messageId":"m-import","customerId":"c-1","time":"<MONTHS_AGO>",
            "action":{"name":"export","properties":{"plan":"pro"}}}]}"#,
    ),
    (
        "WebhookService.CreateWebhookEndpoint",
        r#"{"url":"<RECEIVER>","description":"sweep","eventTypes":["follow_up.overdue"],"surveyIds":["<S>"]}"#,
    ),
    ("WebhookService.ListWebhookEndpoints", r#"{"pageSize":10}"#),
    (
        "WebhookService.UpdateWebhookEndpoint",
        r#"{"endpoint":{"id":"<E>","url":"<RECEIVER>","description":"renamed","eventTypes":["follow_up.overdue"],
            "enabled":true},"updateMask":"description"}"#,
    ),
    ("WebhookService.RotateWebhookSecret", r#"{"id":"<E>"}"#),
    ("WebhookService.DeleteWebhookEndpoint", r#"{"id":"<E_B>"}"#),
    (
        "WebhookService.ListDeliveries",
        r#"{"pageSize":10,"endpointId":"<E>","eventId":"<EV>","status":"DELIVERY_STATUS_PENDING"}"#,
    ),
    ("WebhookService.ReplayEvents", r#"{"endpointId":"<E>","eventId":"<EV>"}"#),
    (
        "WebhookService.ReplayEvents",
        r#"{"endpointId":"<E>","timeRange":{"startTime":"<MONTHS_AGO>","endTime":"<TOMORROW>"}}"#,
    ),
    ("WebhookService.SendTestEvent", r#"{"endpointId":"<E>"}"#),
    ("EventService.WatchEvents", r#"{"afterSequence":"0","types":["response.recorded"]}"#),
    ("PrivacyService.ListAuditEvents", r#"{"pageSize":10}"#),
    ("PrivacyService.EraseCustomer", r#"{"customerId":"c-erase"}"#),
    ("PrivacyService.ExportCustomer", r#"{"customerId":"c-1"}"#),
    ("PrivacyService.GetRetentionPolicy", r#"{}"#),
    (
        "PrivacyService.UpdateRetentionPolicy",
        r#"{"policy":{"activityEventDays":3650,"commentDays":0,"invitationDays":400,"deliveryLogDays":30},
            "updateMask":"activityEventDays,deliveryLogDays"}"#,
    ),
    // The admin service: the sweep's "secret" credential is the operator token there.
    ("AdminService.CreateTenant", r#"{"name":"sweep-tenant"}"#),
    ("AdminService.ListTenants", r#"{"pageSize":10}"#),
    ("AdminService.CreateApiKey", r#"{"tenant":"acme","kind":"API_KEY_KIND_PUBLISHABLE","expireTime":"<TOMORROW>"}"#),
    ("AdminService.ListApiKeys", r#"{"tenant":"acme","pageSize":10}"#),
    ("AdminService.RevokeApiKey", r#"{"id":"0190a000-0000-7000-8000-000000000000"}"#),
    ("AdminService.ListTenantAuditEvents", r#"{"tenant":"acme","pageSize":10}"#),
    ("InsightService.GetAccountProfile", r#"{"accountId":"acct-1","asOf":"<NOW>","windowDays":30}"#),
    (
        "InsightService.ListAccounts",
        r#"{"pageSize":10,"rankBy":"ACCOUNT_RANKING_RISK","order":"RANK_ORDER_ASCENDING","asOf":"<NOW>",
            "windowDays":30,"bands":["HEALTH_BAND_RED"],"risks":["ACCOUNT_RISK_FLAG_INACTIVE"],"minContacts":1}"#,
    ),
    (
        "InsightService.CompareSurveyMetrics",
        r#"{"surveyId":"<S>","first":{"startTime":"<MONTHS_AGO>","endTime":"<YESTERDAY>","filter":{"plan":"pro"},
            "label":"before"},"second":{"startTime":"<YESTERDAY>","endTime":"<TOMORROW>","label":"after"}}"#,
    ),
    ("InsightService.CompareSurveyMetrics", r#"{"kind":"SURVEY_KIND_NPS","second":{"filter":{"plan":"pro"}}}"#),
    (
        "InsightService.CommentThemes",
        r#"{"surveyId":"<S>","startTime":"<MONTHS_AGO>","endTime":"<TOMORROW>","filter":{"plan":"pro"},"limit":10,
            "minCount":1,"language":"en"}"#,
    ),
    ("InsightService.CommentThemes", r#"{"kind":"SURVEY_KIND_NPS"}"#),
    (
        "InsightService.GetDrivers",
        r#"{"surveyId":"<S>","startTime":"<MONTHS_AGO>","endTime":"<TOMORROW>","windowDays":30}"#,
    ),
    ("InsightService.GetDrivers", r#"{"kind":"SURVEY_KIND_NPS"}"#),
];

/// The operator token of the swept server; sent as the "secret" credential to the
/// admin service, whose calls a tenant's key cannot make.
const SWEEP_OPERATOR_TOKEN: &str = "sweep-operator-token-0123456789abcdef";

// ---------------------------------------------------------------------------------
// The run: a runtime of our own, so the server's threads are known by name.
// ---------------------------------------------------------------------------------

fn run(backend: Backend) {
    install_panic_hook();
    let threads = format!("{THREAD_PREFIX}{backend:?}");
    let log = ErrorLog::default();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(log.clone().with_filter(tracing_subscriber::filter::LevelFilter::ERROR)),
    );
    let on_start = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(threads.clone())
        .enable_all()
        .on_thread_start(move || {
            // The server's tasks run on these threads: their log goes to `log`.
            std::mem::forget(tracing::dispatcher::set_default(&on_start));
        })
        .build()
        .expect("a runtime");
    let _log_here = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(sweep(backend, log, threads));
}

async fn sweep(backend: Backend, log: ErrorLog, threads: String) {
    let started = Instant::now();
    let receiver = Receiver::start().await;
    let app = spawn_app_with(backend, |a| {
        fast_outbox(a);
        a.secrets.operator_token = Some(SWEEP_OPERATOR_TOKEN.into());
        // No SLA pass during the sweep: it would change follow-ups under the comparisons.
        a.outbox.sla_check_ms = 3_600_000;
    })
    .await;
    let api = Api::new(&app);
    let rows = Rows::new(&app.db_url).await;
    let seed = seed(&api, &receiver, &rows).await;
    let routes = json_routes(&api.pool, &app).await;
    let creds = [
        Cred { name: "secret", key: Some(app.key.clone()) },
        Cred { name: "publishable", key: Some(app.publishable_key().await) },
        Cred { name: "other-tenant", key: Some(app.other_tenant_key().await) },
        Cred { name: "forged-secret", key: Some("rk_secret_sweepforgedkey0000000000000000".into()) },
        Cred { name: "token-as-key", key: Some(seed["T3"].clone()) },
        Cred { name: "no-key", key: None },
    ];
    let secret = &creds[0];
    let others = &creds[1..];

    let mut rng = StdRng::seed_from_u64(SEED);
    let targets = plan(&api, &seed, &routes, &mut rng);
    let mut s = Sweeper { api: &api, app: &app, failures: Vec::new(), calls: 0, http: reqwest::Client::new() };
    let before_phases = Instant::now();

    // Phase 1: inputs that must all be refused; every table compared per RPC.
    for t in &targets {
        let before = rows.take().await;
        let mut all_refused = true;
        for case in &t.refuse {
            all_refused &= s.grpc(t, case, secret).await;
            for r in &t.routes {
                all_refused &= s.json(t, r, case, secret).await;
            }
        }
        for cred in others {
            for case in t.refuse.iter().take(REFUSE_PER_OTHER_CREDENTIAL) {
                all_refused &= s.grpc(t, case, cred).await;
            }
            if let (Some(case), Some(r)) = (t.refuse.first(), t.routes.first()) {
                all_refused &= s.json(t, r, case, cred).await;
            }
        }
        // An accepted refusable input is a failure of its own; the rows then say nothing.
        if all_refused && let Some(d) = diff(&before, &rows.take().await) {
            s.fail("any", &t.rpc.short, "*", "every refusable input", "all", format!("rows changed: {d}"));
        }
        if s.hung() {
            break;
        }
    }
    let phase1 = s.calls;

    // Phase 2: edge inputs, the base itself and other credentials; they may be accepted.
    'targets: for t in &targets {
        let mut calls: Vec<(Option<&Route>, &Case, &Cred)> = Vec::new();
        for case in std::iter::once(&t.base_case).chain(&t.edge) {
            calls.push((None, case, secret));
            calls.extend(t.routes.iter().map(|r| (Some(*r), case, secret)));
        }
        for cred in others {
            for case in [&t.base_case, &t.empty_case] {
                calls.push((None, case, cred));
                calls.extend(t.routes.iter().map(|r| (Some(*r), case, cred)));
            }
        }
        let mut current = rows.take().await;
        for (route, case, cred) in calls {
            let accepted = match route {
                None => s.grpc(t, case, cred).await,
                Some(r) => s.json(t, r, case, cred).await,
            };
            if s.hung() {
                break 'targets;
            }
            if t.rpc.read {
                continue;
            }
            let now = rows.take().await;
            if !accepted && let Some(d) = diff(&current, &now) {
                let transport = route.map_or("grpc".to_owned(), |r| format!("json {} {}", r.method, r.template));
                s.fail(
                    &transport,
                    &t.rpc.short,
                    &case.field,
                    &case.kind,
                    cred.name,
                    format!("refused, yet rows changed: {d}"),
                );
            }
            current = now;
        }
        if t.rpc.read
            && let Some(d) = diff(&current, &rows.take().await)
        {
            s.fail("any", &t.rpc.short, "*", "every input", "all", format!("a read changed rows: {d}"));
        }
    }
    let phase2 = s.calls - phase1;

    // The server still serves.
    if !s.hung() {
        still_serves(&mut s).await;
    }
    let scrape = crate::observability::scrape(&app).await;
    let panics_metric = crate::observability::value(&scrape, "rapport_panics_total", &[]);
    if panics_metric != 0.0 {
        s.fail("any", "-", "-", "-", "-", format!("rapport_panics_total is {panics_metric}"));
    }
    for p in server_panics(&threads) {
        s.fail("any", "-", "-", "-", "-", format!("the server panicked: {}", clip(&p, 300)));
    }
    for line in log.lines() {
        s.fail("any", "-", "-", "-", "-", format!("ERROR in the log: {}", clip(&line, 300)));
    }

    eprintln!(
        "sweep on {backend:?}: {} RPCs ({} bases), {} JSON routes; {phase1} refusable and {phase2} other calls in {:.1?} \
         (seeding {:.1?})",
        targets.iter().map(|t| &t.rpc.short).collect::<BTreeSet<_>>().len(),
        targets.len(),
        routes.len(),
        before_phases.elapsed(),
        before_phases - started,
    );
    let failures = std::mem::take(&mut s.failures);
    drop(s);
    let _ = app.stop().await;
    assert!(failures.is_empty(), "{}", report(backend, &failures));
}

/// Health, `/healthz` and a plain call, after everything else.
async fn still_serves(s: &mut Sweeper<'_>) {
    let health = s
        .app
        .health
        .clone()
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .map(|r| r.into_inner().status);
    if health.as_ref().ok() != Some(&(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)) {
        s.fail("grpc", "Health.Check", "-", "after the sweep", "-", format!("{health:?}"));
    }
    let healthz = s.http.get(format!("{}/healthz", s.app.http)).send().await.map(|r| r.status().as_u16());
    if healthz.as_ref().ok() != Some(&200) {
        s.fail("json", "GET /healthz", "-", "after the sweep", "-", format!("{healthz:?}"));
    }
    let list = s.api.rpc("SurveyService.ListSurveys");
    let reply = grpc_call(&s.app.channel, list, Bytes::new(), Some(&s.app.key)).await;
    if reply.code != Code::Ok {
        s.fail("grpc", "SurveyService.ListSurveys", "-", "after the sweep", "secret", reply.describe());
    }
}

// ---------------------------------------------------------------------------------
// The API from the descriptor set, and raw calls.
// ---------------------------------------------------------------------------------

/// One RPC of the descriptor set.
struct Rpc {
    /// `SurveyService.CreateSurvey`.
    short: String,
    /// `/rapport.v1.SurveyService/CreateSurvey`.
    path: String,
    method: MethodDescriptor,
    streaming: bool,
    /// Only reads (its rows are compared per RPC, not per call).
    read: bool,
}

struct Api {
    pool: DescriptorPool,
    rpcs: Vec<Rpc>,
    channel: Channel,
    key: String,
}

impl Api {
    fn new(app: &TestApp) -> Api {
        let pool = DescriptorPool::decode(rapport::grpc::pb::FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
        let rpcs = pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .map(|m| {
                let service = m.parent_service();
                let name = m.name();
                Rpc {
                    short: format!("{}.{name}", service.name()),
                    path: format!("/{}/{name}", service.full_name()),
                    streaming: m.is_server_streaming() || m.is_client_streaming(),
                    read: ["Get", "List", "Check", "Top", "Watch"].iter().any(|p| name.starts_with(p)),
                    method: m,
                }
            })
            .collect();
        Api { pool, rpcs, channel: app.channel.clone(), key: app.key.clone() }
    }

    fn rpc(&self, short: &str) -> &Rpc {
        self.rpcs.iter().find(|r| r.short == short).unwrap_or_else(|| panic!("no RPC {short} in the descriptor set"))
    }

    /// Calls `short` with the secret key and a proto3 JSON request; the reply as JSON.
    async fn call(&self, short: &str, request: Json) -> Json {
        let rpc = self.rpc(short);
        let msg = DynamicMessage::deserialize(rpc.method.input(), request).expect("a valid request");
        let reply = grpc_call(&self.channel, rpc, msg.encode_to_vec().into(), Some(&self.key)).await;
        assert_eq!(reply.code, Code::Ok, "seeding with {short}: {}", reply.describe());
        let out = DynamicMessage::decode(rpc.method.output(), reply.body).expect("a reply");
        to_json(&out).expect("a reply in JSON")
    }
}

/// Sends and receives raw bytes, so any RPC can be called with any frame.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// What came back from one call, over either transport.
struct Reply {
    code: Code,
    /// The HTTP status of a JSON call.
    http: Option<u16>,
    message: String,
    details: usize,
    /// The fields a BadRequest detail names.
    fields: Vec<String>,
    hang: bool,
    body: Bytes,
}

impl Reply {
    fn hang() -> Reply {
        Reply {
            code: Code::DeadlineExceeded,
            http: None,
            message: String::new(),
            details: 0,
            fields: Vec::new(),
            hang: true,
            body: Bytes::new(),
        }
    }

    fn ok(&self) -> bool {
        !self.hang && self.code == Code::Ok && self.http.is_none_or(|h| (200..300).contains(&h))
    }

    fn describe(&self) -> String {
        if self.hang {
            return format!("no reply within {CALL_LIMIT:?}");
        }
        let http = self.http.map(|h| format!("HTTP {h} ")).unwrap_or_default();
        format!("{http}{:?}: {}", self.code, clip(&self.message, 120))
    }
}

async fn grpc_call(channel: &Channel, rpc: &Rpc, body: Bytes, key: Option<&str>) -> Reply {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let mut req = tonic::Request::new(body);
    if let Some(k) = key {
        req.metadata_mut().insert("authorization", format!("Bearer {k}").parse().expect("an ASCII key"));
    }
    let path = http::uri::PathAndQuery::try_from(rpc.path.as_str()).expect("an RPC path");
    let call = async {
        grpc.ready().await.map_err(|e| Status::unknown(format!("transport not ready: {e}")))?;
        if rpc.streaming {
            let mut stream = grpc.server_streaming(req, path, Raw).await?.into_inner();
            // Open and quiet is accepted too: only the first message or status matters.
            match tokio::time::timeout(Duration::from_millis(200), stream.message()).await {
                Err(_) | Ok(Ok(None)) => Ok(Bytes::new()),
                Ok(Ok(Some(m))) => Ok(m),
                Ok(Err(s)) => Err(s),
            }
        } else {
            grpc.unary(req, path, Raw).await.map(tonic::Response::into_inner)
        }
    };
    match tokio::time::timeout(CALL_LIMIT, call).await {
        Err(_) => Reply::hang(),
        Ok(Ok(body)) => Reply {
            code: Code::Ok,
            http: None,
            message: String::new(),
            details: 0,
            fields: Vec::new(),
            hang: false,
            body,
        },
        Ok(Err(status)) => {
            use tonic_types::StatusExt as _;
            let fields = status
                .get_error_details()
                .bad_request()
                .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
                .unwrap_or_default();
            Reply {
                code: status.code(),
                http: None,
                message: status.message().to_owned(),
                details: status.details().len(),
                fields,
                hang: false,
                body: Bytes::new(),
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// JSON routes: from the google.api.http annotations, checked against /openapi.json.
// ---------------------------------------------------------------------------------

/// One HTTP binding of one RPC.
struct Route {
    rpc: String,
    method: reqwest::Method,
    /// `/v1/surveys/{survey.id}:archive`.
    template: String,
    /// `*`, a field name, or none.
    body: Option<String>,
}

async fn json_routes(pool: &DescriptorPool, app: &TestApp) -> Vec<Route> {
    let ext = pool.get_extension_by_name("google.api.http").expect("google.api.http in the descriptor set");
    let mut routes = Vec::new();
    let mut operations = BTreeSet::new();
    for service in pool.services() {
        for m in service.methods() {
            let options = m.options();
            if !options.has_extension(&ext) {
                continue;
            }
            let rule = options.get_extension(&ext);
            let rule = rule.as_message().expect("an HttpRule").clone();
            let mut bindings = vec![rule.clone()];
            if let Some(extra) = rule.get_field_by_name("additional_bindings") {
                bindings.extend(extra.as_list().unwrap_or_default().iter().filter_map(|v| v.as_message().cloned()));
            }
            for (i, b) in bindings.iter().enumerate() {
                let text = |f: &str| b.get_field_by_name(f).and_then(|v| v.as_str().map(str::to_owned));
                let (method, template) = ["get", "put", "post", "delete", "patch"]
                    .into_iter()
                    .find(|f| b.has_field_by_name(f))
                    .map(|f| (f.to_ascii_uppercase(), text(f).unwrap_or_default()))
                    .expect("a method in every binding");
                let suffix = if i == 0 { String::new() } else { format!("_{}", i + 1) };
                operations.insert((method.clone(), format!("{}_{}{suffix}", service.name(), m.name())));
                routes.push(Route {
                    rpc: format!("{}.{}", service.name(), m.name()),
                    method: method.parse().expect("an HTTP method"),
                    template,
                    body: text("body").filter(|b| !b.is_empty()),
                });
            }
        }
    }
    // Every operation the gateway documents is one of these routes, and back.
    let doc: Json = reqwest::get(format!("{}/openapi.json", app.http))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("the OpenAPI document");
    let mut served = BTreeSet::new();
    for (_, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            served.insert((method.to_ascii_uppercase(), op["operationId"].as_str().unwrap_or_default().to_owned()));
        }
    }
    assert_eq!(served, operations, "the routes of /openapi.json are those of the annotations");
    routes
}

/// The path, query and body of a JSON call carrying `msg` (or, for a raw JSON body,
/// the base's path variables and that body); `None` when a path variable is empty.
fn http_request(route: &Route, msg: &DynamicMessage, body_json: Option<&Json>) -> Option<(String, Option<Vec<u8>>)> {
    let input = msg.descriptor();
    let mut path = String::new();
    let mut bound = BTreeSet::new();
    let rest = route.template.strip_prefix('/').unwrap_or(&route.template);
    let (segments, verb) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(['}', '/']) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    for seg in segments.split('/') {
        path.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(var) => {
                let var = var.strip_suffix("=*").unwrap_or(var);
                if !var.contains('.') {
                    bound.insert(var.to_owned());
                }
                let value = string_at(msg, var);
                if value.is_empty() {
                    // The route cannot address this message (another oneof branch, or
                    // the field unset): the gateway would answer 404 for any of it.
                    return None;
                }
                path.push_str(&percent(&value));
            }
            None => path.push_str(seg),
        }
    }
    if let Some(v) = verb {
        path.push(':');
        path.push_str(v);
    }
    let Some(json) = body_json else { return Some((path, None)) };
    let obj = json.as_object().cloned().unwrap_or_default();
    let (body, query_obj) = match route.body.as_deref() {
        Some("*") => (Some(serde_json::to_vec(&json).expect("JSON")), serde_json::Map::new()),
        Some(field) => {
            let f = input.get_field_by_name(field).expect("the body field");
            let mut q = obj;
            let body = q.remove(f.json_name()).map(|b| serde_json::to_vec(&b).expect("JSON"));
            (body, q)
        }
        None => (None, obj),
    };
    let mut params = Vec::new();
    let query_obj = query_obj
        .into_iter()
        .filter(|(k, _)| {
            input
                .get_field_by_json_name(k)
                .or_else(|| input.get_field_by_name(k))
                .is_none_or(|f| !bound.contains(f.name()))
        })
        .collect();
    flatten(&input, &query_obj, "", &mut params);
    if !params.is_empty() {
        path.push('?');
        let q: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", percent(k), percent(v))).collect();
        path.push_str(&q.join("&"));
    }
    Some((path, body))
}

/// A message's JSON as query parameters: `a.b=v`, repeated `a=v`, maps `a[k]=v`.
fn flatten(
    desc: &MessageDescriptor,
    obj: &serde_json::Map<String, Json>,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) {
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (k, v) in obj {
        let Some(f) = desc.get_field_by_json_name(k).or_else(|| desc.get_field_by_name(k)) else { continue };
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match (f.kind(), v) {
            (_, Json::Object(m)) if f.is_map() => {
                out.extend(m.iter().map(|(mk, mv)| (format!("{name}[{mk}]"), text(mv))))
            }
            (_, Json::Array(items)) => out.extend(items.iter().map(|i| (name.clone(), text(i)))),
            (Kind::Message(m), Json::Object(inner)) => flatten(&m, inner, &name, out),
            _ => out.push((name, text(v))),
        }
    }
}

/// The string at a dotted field path of `msg` ("" when unset).
fn string_at(msg: &DynamicMessage, dotted: &str) -> String {
    let mut cur = msg.clone();
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let Some(v) = cur.get_field_by_name(p) else { return String::new() };
        if i + 1 == parts.len() {
            return v.as_str().map(str::to_owned).unwrap_or_default();
        }
        match v.as_message() {
            Some(m) => cur = m.clone(),
            None => return String::new(),
        }
    }
    String::new()
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn to_json(msg: &DynamicMessage) -> Result<Json, serde_json::Error> {
    msg.serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
}

// ---------------------------------------------------------------------------------
// Seeded data and the plan of calls.
// ---------------------------------------------------------------------------------

/// Data the bases name: surveys, tokens, responses, follow-ups, endpoints, an event.
/// Calls that change or remove what they name get their own (`S_B`, `T2`, `F2`, `E_B`),
/// so what the other bases name stays as it was.
async fn seed(api: &Api, receiver: &Receiver, rows: &Rows) -> HashMap<&'static str, String> {
    let mut s: HashMap<&'static str, String> = HashMap::new();
    let now = chrono::Utc::now();
    let at = |d: chrono::Duration| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    s.insert("NOW", at(chrono::Duration::zero()));
    s.insert("YESTERDAY", at(chrono::Duration::days(-1)));
    s.insert("TOMORROW", at(chrono::Duration::days(1)));
    s.insert("MONTHS_AGO", at(chrono::Duration::days(-60)));
    s.insert("RECEIVER", receiver.url.clone());
    let survey = json!({"survey": {"kind": "SURVEY_KIND_NPS", "name": "sweep",
        "question": "How likely are you to recommend us?", "inApp": true}});
    let id = |j: &Json, k: &str| j[k].as_str().unwrap_or_default().to_owned();
    s.insert("S", id(&api.call("SurveyService.CreateSurvey", survey.clone()).await, "id"));
    s.insert("S_B", id(&api.call("SurveyService.CreateSurvey", survey).await, "id"));
    for (token, customer) in [("T1", "c-1"), ("T2", "c-2"), ("T3", "c-3")] {
        let issued = api.call("SurveyService.IssueSurvey", json!({"surveyId": s["S"], "customerId": customer})).await;
        s.insert(token, id(&issued, "token"));
    }
    let r1 = api.call("SurveyService.RecordResponse", json!({"token": s["T1"], "score": 2, "comment": "meh"})).await;
    s.insert("R1", id(&r1, "id"));
    s.insert("F1", id(&r1, "followUpId"));
    let r2 = api
        .call("SurveyService.RecordResponse", json!({"direct": {"surveyId": s["S"], "customerId": "c-4"}, "score": 1}))
        .await;
    s.insert("F2", id(&r2, "followUpId"));
    api.call(
        "EngagementService.UpsertCustomer",
        json!({"customerId": "c-1", "accountId": "acct-1", "traits": {"email": "ada@example.com", "plan": "pro"},
               "properties": {"plan": "pro"}}),
    )
    .await;
    let t = &s["YESTERDAY"];
    api.call(
        "EngagementService.RecordEvents",
        json!({"events": [
            {"messageId": "m-1", "customerId": "c-1", "time": t, "action": {"name": "export", "properties": {"plan": "pro"}}},
            {"messageId": "m-2", "customerId": "c-1", "time": t, "session": {"activitySeconds": "120"}},
            {"messageId": "m-3", "customerId": "c-1", "time": t, "purchase": {"amountMinor": "1999", "currency": "USD"}},
        ]}),
    )
    .await;
    // An endpoint that wants only an event the sweep never causes: the fan-out creates
    // no deliveries behind the comparisons' back.
    let endpoint = json!({"url": receiver.url, "eventTypes": ["follow_up.overdue"]});
    let e = api.call("WebhookService.CreateWebhookEndpoint", endpoint.clone()).await;
    s.insert("E", e["endpoint"]["id"].as_str().unwrap_or_default().to_owned());
    let e = api.call("WebhookService.CreateWebhookEndpoint", endpoint).await;
    s.insert("E_B", e["endpoint"]["id"].as_str().unwrap_or_default().to_owned());
    s.insert("EV", rows.one("SELECT id FROM events ORDER BY id").await);
    for (k, v) in &s {
        assert!(!v.is_empty(), "seeding: no {k}");
    }
    s
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// The API's rules refuse it.
    Refuse,
    /// May be accepted or refused; must not break anything.
    Edge,
}

#[derive(Clone)]
enum Payload {
    Msg(DynamicMessage),
    /// A gRPC frame that is not what the message says (gRPC only).
    Raw(Bytes),
    /// A JSON body that is not a message (JSON only).
    JsonText(&'static str),
}

#[derive(Clone)]
struct Case {
    field: String,
    kind: String,
    class: Class,
    payload: Payload,
    /// For timestamps JSON cannot write: the JSON path and text to put there instead.
    json_text: Option<(Vec<String>, String)>,
    /// JSON cannot carry this input (proto3 JSON writes the timestamp normalised).
    no_json: bool,
    /// Sent for every base (not sampled).
    always: bool,
}

/// One base request of one RPC with its generated inputs and JSON routes.
struct Target<'a> {
    rpc: &'a Rpc,
    base: DynamicMessage,
    base_case: Case,
    empty_case: Case,
    refuse: Vec<Case>,
    edge: Vec<Case>,
    routes: Vec<&'a Route>,
}

#[derive(Clone)]
struct Cred {
    name: &'static str,
    key: Option<String>,
}

fn plan<'a>(api: &'a Api, seed: &HashMap<&str, String>, routes: &'a [Route], rng: &mut StdRng) -> Vec<Target<'a>> {
    let missing: Vec<&str> =
        api.rpcs.iter().filter(|r| !BASES.iter().any(|(n, _)| *n == r.short)).map(|r| r.short.as_str()).collect();
    assert!(missing.is_empty(), "the sweep has no base request for {missing:?}: add one to BASES");
    let mut targets = Vec::new();
    for (name, text) in BASES {
        let Some(rpc) = api.rpcs.iter().find(|r| r.short == *name) else { continue };
        let mut text = (*text).to_owned();
        for (k, v) in seed {
            text = text.replace(&format!("<{k}>"), v);
        }
        let json: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("base of {name}: {e}"));
        let base = DynamicMessage::deserialize(rpc.method.input(), json)
            .unwrap_or_else(|e| panic!("base of {name} is not a {}: {e}", rpc.method.input().full_name()));
        let mut refuse = Vec::new();
        let mut edge = Vec::new();
        for c in generate(&base, rng) {
            match c.class {
                Class::Refuse => refuse.push(c),
                Class::Edge => edge.push(c),
            }
        }
        sample(&mut refuse, MORE_REFUSE_PER_BASE, rng);
        sample(&mut edge, MORE_EDGE_PER_BASE, rng);
        let case = |kind: &str, m: DynamicMessage| Case {
            field: "-".into(),
            kind: kind.into(),
            class: Class::Edge,
            payload: Payload::Msg(m),
            json_text: None,
            no_json: false,
            always: true,
        };
        // Only the routes that can address the base (a token route needs a token).
        let routes: Vec<&Route> =
            routes.iter().filter(|r| r.rpc == *name && http_request(r, &base, None).is_some()).collect();
        targets.push(Target {
            rpc,
            base_case: case("the base request", base.clone()),
            empty_case: case("empty message", DynamicMessage::new(rpc.method.input())),
            base,
            refuse,
            edge,
            routes,
        });
    }
    let unused: Vec<String> = routes
        .iter()
        .filter(|r| !targets.iter().any(|t| t.routes.iter().any(|u| std::ptr::eq(*u, *r))))
        .map(|r| format!("{} {}", r.method, r.template))
        .collect();
    assert!(unused.is_empty(), "no base request can address the routes {unused:?}: add one to BASES");
    targets
}

/// Keeps every `always` case and at most `more` others: the first of each input kind
/// that is not kept anyway, then a seeded sample.
fn sample(cases: &mut Vec<Case>, more: usize, rng: &mut StdRng) {
    let (mut keep, others): (Vec<Case>, Vec<Case>) = cases.drain(..).partition(|c| c.always);
    let mut seen: BTreeSet<String> = keep.iter().map(|c| c.kind.clone()).collect();
    let (mut first, mut rest): (Vec<Case>, Vec<Case>) = others.into_iter().partition(|c| seen.insert(c.kind.clone()));
    first.shuffle(rng);
    first.truncate(more);
    rest.shuffle(rng);
    let room = more - first.len();
    keep.extend(first);
    keep.extend(rest.into_iter().take(room));
    *cases = keep;
}

/// One step from a message to a field inside it.
#[derive(Clone)]
enum Step {
    Field(FieldDescriptor),
    /// The first element of the list the previous step named (created if empty).
    First,
}

/// Every generated input of `base`.
fn generate(base: &DynamicMessage, rng: &mut StdRng) -> Vec<Case> {
    let mut out = Vec::new();
    walk(base, &base.descriptor(), &mut Vec::new(), "", 0, rng, &mut out);
    windows(base, &mut out);
    raw_cases(base, rng, &mut out);
    out
}

/// Both ends of each time window at once (`start_time`/`end_time` side by side): the
/// widest window the rules allow, and one that ends before it starts.
fn windows(base: &DynamicMessage, out: &mut Vec<Case>) {
    let mut stamps = Vec::new();
    timestamps(&base.descriptor(), &mut Vec::new(), "", 0, &mut stamps);
    for (start, start_path) in &stamps {
        let Some((parent, _)) = start_path.rsplit_once("start").filter(|(_, rest)| rest.starts_with("_time")) else {
            continue;
        };
        let Some((end, _)) = stamps.iter().find(|(_, p)| *p == format!("{parent}end_time")) else { continue };
        let Some(Step::Field(f)) = start.last() else { continue };
        let Kind::Message(ts) = f.kind() else { continue };
        let at = |seconds: i64| {
            let mut t = DynamicMessage::new(ts.clone());
            t.set_field_by_name("seconds", Value::I64(seconds));
            Some(Value::Message(t))
        };
        for (kind, from, to) in [
            ("widest window (1970 to 9999)", 0, 253_402_300_799),
            ("reversed window (9999 to 1970)", 253_402_300_799, 0),
        ] {
            let mut m = base.clone();
            set_at(&mut m, start, at(from));
            set_at(&mut m, end, at(to));
            out.push(Case {
                field: format!("{parent}start_time+end_time"),
                kind: kind.into(),
                class: Class::Edge,
                payload: Payload::Msg(m),
                json_text: None,
                no_json: false,
                always: true,
            });
        }
    }
}

/// The singular timestamp fields under `desc`, with their steps and paths.
fn timestamps(
    desc: &MessageDescriptor,
    steps: &mut Vec<Step>,
    path: &str,
    depth: usize,
    out: &mut Vec<(Vec<Step>, String)>,
) {
    for f in desc.fields() {
        let Kind::Message(m) = f.kind() else { continue };
        if f.is_list() || f.is_map() || depth >= 3 {
            continue;
        }
        let p = if path.is_empty() { f.name().to_owned() } else { format!("{path}.{}", f.name()) };
        steps.push(Step::Field(f.clone()));
        if m.full_name() == "google.protobuf.Timestamp" {
            out.push((steps.clone(), p));
        } else if !m.full_name().starts_with("google.protobuf.") {
            timestamps(&m, steps, &p, depth + 1, out);
        }
        steps.pop();
    }
}

#[allow(clippy::too_many_arguments)]
fn walk(
    root: &DynamicMessage,
    desc: &MessageDescriptor,
    steps: &mut Vec<Step>,
    path: &str,
    depth: usize,
    rng: &mut StdRng,
    out: &mut Vec<Case>,
) {
    for f in desc.fields() {
        let p = if path.is_empty() { f.name().to_owned() } else { format!("{path}.{}", f.name()) };
        steps.push(Step::Field(f.clone()));
        for v in values(&f, &p, rng) {
            let mut m = root.clone();
            set_at(&mut m, steps, v.value);
            let json_text = v.json_text.map(|t| (json_path(steps), t));
            let always = v.always || (v.class == Class::Refuse && v.kind.contains("NUL"));
            out.push(Case {
                field: v.field,
                kind: v.kind,
                class: v.class,
                payload: Payload::Msg(m),
                json_text,
                no_json: v.no_json,
                always,
            });
        }
        if let Kind::Message(m) = f.kind()
            && !f.is_map()
            && !m.full_name().starts_with("google.protobuf.")
            && depth < 3
        {
            if f.is_list() {
                steps.push(Step::First);
                walk(root, &m, steps, &format!("{p}[0]"), depth + 1, rng, out);
                steps.pop();
            } else {
                walk(root, &m, steps, &p, depth + 1, rng, out);
            }
        }
        steps.pop();
    }
}

/// The JSON keys along `steps` (`"0"` for a list's first element).
fn json_path(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Field(f) => f.json_name().to_owned(),
            Step::First => "0".to_owned(),
        })
        .collect()
}

/// Sets (or clears, with `None`) the field at `steps` in `m`.
fn set_at(m: &mut DynamicMessage, steps: &[Step], value: Option<Value>) {
    let Some(Step::Field(f)) = steps.first() else { return };
    if steps.len() == 1 {
        match value {
            Some(v) => m.set_field(f, v),
            None => m.clear_field(f),
        }
        return;
    }
    match (&steps[1], m.get_field_mut(f)) {
        (Step::First, Value::List(items)) => {
            if items.is_empty()
                && let Kind::Message(d) = f.kind()
            {
                items.push(Value::Message(DynamicMessage::new(d)));
            }
            if let Some(Value::Message(inner)) = items.first_mut() {
                set_at(inner, &steps[2..], value);
            }
        }
        (Step::Field(_), Value::Message(inner)) => set_at(inner, &steps[1..], value),
        _ => {}
    }
}

/// One generated value for one field.
struct Generated {
    /// The field the server should name (the path of the value, or of its map).
    field: String,
    kind: String,
    class: Class,
    value: Option<Value>,
    json_text: Option<String>,
    no_json: bool,
    always: bool,
}

fn g(field: &str, kind: &str, class: Class, value: Option<Value>) -> Generated {
    Generated {
        field: field.to_owned(),
        kind: kind.to_owned(),
        class,
        value,
        json_text: None,
        no_json: false,
        always: false,
    }
}

/// A value sent for every base.
fn always(mut v: Generated) -> Generated {
    v.always = true;
    v
}

/// Strings the input rules refuse, by kind.
const BAD_TEXT: &[(&str, &str)] = &[
    ("NUL", "a\u{0}b"),
    ("control U+0001", "\u{1}"),
    ("escape sequence", "x\u{1b}[2J"),
    ("C1 control U+0085", "\u{85}"),
];

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The values tried for field `f` at path `p`.
fn values(f: &FieldDescriptor, p: &str, rng: &mut StdRng) -> Vec<Generated> {
    use Class::{Edge, Refuse};
    let s = |t: &str| Value::String(t.to_owned());
    let long = "x".repeat(LONG);
    let mut out = Vec::new();
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else { return out };
        let value_field = entry.map_entry_value_field();
        let good = match value_field.kind() {
            Kind::String => s("v"),
            Kind::Double => Value::F64(1.0),
            other => Value::default_value(&other),
        };
        let map = |pairs: Vec<(String, Value)>| {
            Some(Value::Map(pairs.into_iter().map(|(k, v)| (MapKey::String(k), v)).collect()))
        };
        for (kind, bad) in BAD_TEXT {
            out.push(g(p, &format!("map key with {kind}"), Refuse, map(vec![(format!("k{bad}"), good.clone())])));
        }
        if value_field.kind() == Kind::String {
            for (kind, bad) in BAD_TEXT {
                out.push(g(
                    &format!("{p}[k]"),
                    &format!("map value with {kind}"),
                    Refuse,
                    map(vec![("k".into(), s(bad))]),
                ));
            }
            out.push(g(p, "20 000-char map value", Edge, map(vec![("k".into(), s(&long))])));
        }
        if value_field.kind() == Kind::Double {
            for (kind, v) in
                [("NaN map value", f64::NAN), ("infinite map value", f64::INFINITY), ("-1e308 map value", -1e308)]
            {
                out.push(g(p, kind, Edge, map(vec![("k".into(), Value::F64(v))])));
            }
        }
        out.push(g(p, "20 000-char map key", Edge, map(vec![(long.clone(), good.clone())])));
        out.push(g(p, "1 000 map entries", Edge, map((0..1000).map(|i| (format!("k{i}"), good.clone())).collect())));
        return out;
    }
    if f.is_list() {
        match f.kind() {
            Kind::String => {
                for (kind, bad) in BAD_TEXT {
                    out.push(g(
                        &format!("{p}[0]"),
                        &format!("element with {kind}"),
                        Refuse,
                        Some(Value::List(vec![s(bad)])),
                    ));
                }
                out.push(g(p, "20 000-char element", Edge, Some(Value::List(vec![s(&long)]))));
                out.push(g(
                    p,
                    "10 000 elements",
                    Edge,
                    Some(Value::List((0..10_000).map(|i| s(&format!("x{i}"))).collect())),
                ));
            }
            _ => out.push(g(p, "empty list", Edge, None)),
        }
        return out;
    }
    match f.kind() {
        Kind::String => {
            for (kind, bad) in BAD_TEXT {
                out.push(g(p, kind, Refuse, Some(s(bad))));
            }
            out.push(always(g(p, "20 000 chars", Edge, Some(s(&long)))));
            out.push(g(p, "empty", Edge, Some(s(""))));
            out.push(g(p, "blank", Edge, Some(s("   "))));
            out.push(g(p, "format characters", Edge, Some(s("é😀\u{200b}\u{202e}\u{feff}"))));
            if f.name().ends_with("page_token") {
                out.push(always(g(p, "token of after:NUL", Refuse, Some(s(&b64(b"after:\0"))))));
                out.push(always(g(p, "token of after:ESC", Refuse, Some(s(&b64(b"after:x\x1b"))))));
                out.push(always(g(p, "token not base64", Refuse, Some(s("%%not-a-token%%")))));
                let random: Vec<u8> = (0..24).map(|_| rng.random()).collect();
                out.push(always(g(p, "random base64 token", Edge, Some(s(&b64(&random))))));
                out.push(always(g(p, "huge token", Edge, Some(s(&b64(format!("after:{long}").as_bytes()))))));
            }
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            for (kind, v) in [("i32::MIN", i32::MIN), ("i32::MAX", i32::MAX), ("-1", -1)] {
                out.push(g(p, kind, Edge, Some(Value::I32(v))));
            }
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            for (kind, v) in [("i64::MIN", i64::MIN), ("i64::MAX", i64::MAX), ("-1", -1)] {
                out.push(g(p, kind, Edge, Some(Value::I64(v))));
            }
        }
        Kind::Uint32 | Kind::Fixed32 => out.push(g(p, "u32::MAX", Edge, Some(Value::U32(u32::MAX)))),
        Kind::Uint64 | Kind::Fixed64 => out.push(g(p, "u64::MAX", Edge, Some(Value::U64(u64::MAX)))),
        Kind::Double => {
            for (kind, v) in [("NaN", f64::NAN), ("+inf", f64::INFINITY), ("-inf", f64::NEG_INFINITY), ("1e308", 1e308)]
            {
                out.push(g(p, kind, Edge, Some(Value::F64(v))));
            }
        }
        Kind::Float => {
            for (kind, v) in [("NaN", f32::NAN), ("+inf", f32::INFINITY), ("f32::MAX", f32::MAX)] {
                out.push(g(p, kind, Edge, Some(Value::F32(v))));
            }
        }
        Kind::Bool => out.push(g(p, "true", Edge, Some(Value::Bool(true)))),
        Kind::Bytes => out.push(g(p, "20 000 bytes", Edge, Some(Value::Bytes(Bytes::from(vec![0xff; LONG]))))),
        Kind::Enum(_) => {
            for (kind, v) in [("unknown enum 99", 99), ("enum -1", -1), ("enum i32::MAX", i32::MAX)] {
                out.push(g(p, kind, Edge, Some(Value::EnumNumber(v))));
            }
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let ts = |seconds: i64, nanos: i32| {
                let mut t = DynamicMessage::new(m.clone());
                t.set_field_by_name("seconds", Value::I64(seconds));
                t.set_field_by_name("nanos", Value::I32(nanos));
                Some(Value::Message(t))
            };
            let refused: [(&str, i64, i32, Option<&str>); 8] = [
                ("year 0", -62_167_219_200, 0, Some("0000-01-01T00:00:00Z")),
                ("1969", -1, 0, None),
                ("year 10000", 253_402_300_800, 0, Some("10000-01-01T00:00:00Z")),
                ("chrono max (+262142)", 8_210_298_412_799, 0, Some("+262142-12-31T23:59:59Z")),
                ("chrono min (-262143)", -8_334_632_851_200, 0, Some("-262143-01-01T00:00:00Z")),
                ("seconds i64::MAX", i64::MAX, 0, None),
                ("nanos -1", 1_700_000_000, -1, None),
                ("nanos 1e9", 1_700_000_000, 1_000_000_000, None),
            ];
            for (kind, seconds, nanos, text) in refused {
                let mut v = always(g(p, kind, Refuse, ts(seconds, nanos)));
                v.json_text = text.map(str::to_owned);
                v.no_json = nanos != 0;
                out.push(v);
            }
            out.push(always(g(p, "1970-01-01T00:00:00Z", Edge, ts(0, 0))));
            out.push(always(g(p, "9999-12-31T23:59:59.999999999Z", Edge, ts(253_402_300_799, 999_999_999))));
            out.push(g(p, "unset", Edge, None));
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask" => {
            let mask = |paths: Vec<&str>| {
                let mut fm = DynamicMessage::new(m.clone());
                fm.set_field_by_name("paths", Value::List(paths.into_iter().map(s).collect()));
                Some(Value::Message(fm))
            };
            for (kind, bad) in BAD_TEXT {
                out.push(g(&format!("{p}.paths[0]"), &format!("mask path with {kind}"), Refuse, mask(vec![bad])));
            }
            out.push(g(p, "unknown mask path", Edge, mask(vec!["no_such_field"])));
            out.push(g(p, "mask *", Edge, mask(vec!["*"])));
            out.push(g(p, "empty mask", Edge, mask(vec![])));
            out.push(g(p, "unset", Edge, None));
        }
        Kind::Message(m) => {
            out.push(g(p, "unset", Edge, None));
            out.push(g(p, "empty message", Edge, Some(Value::Message(DynamicMessage::new(m)))));
        }
    }
    out
}

/// Frames that are not the message: undecodable ones are refused.
fn raw_cases(base: &DynamicMessage, rng: &mut StdRng, out: &mut Vec<Case>) {
    let encoded = base.encode_to_vec();
    let raw = |kind: &str, class: Class, bytes: Vec<u8>| Case {
        field: "-".into(),
        kind: kind.into(),
        class,
        payload: Payload::Raw(Bytes::from(bytes)),
        json_text: None,
        no_json: false,
        always: class == Class::Refuse,
    };
    let key = |number: u32, wire: u32, buf: &mut Vec<u8>| {
        prost::encoding::encode_varint(u64::from((number << 3) | wire), buf)
    };
    if let Some(f) = base.descriptor().fields().find(|f| f.kind() == Kind::String && !f.is_list() && !f.is_map()) {
        let mut b = encoded.clone();
        key(f.number(), 2, &mut b);
        b.extend_from_slice(&[3, b'a', 0xff, 0xfe]);
        let mut c = raw("invalid UTF-8", Class::Refuse, b);
        c.field = f.name().to_owned();
        out.push(c);
    }
    let mut cut = encoded.clone();
    cut.extend_from_slice(&[0x0a, 0x05, b'a']);
    out.push(raw("field cut short", Class::Refuse, cut));
    let mut wire = encoded.clone();
    wire.push(0x0f);
    out.push(raw("wire type 7", Class::Refuse, wire));
    let mut deep = encoded.clone();
    for _ in 0..200 {
        key(999, 3, &mut deep);
    }
    for _ in 0..200 {
        key(999, 4, &mut deep);
    }
    out.push(raw("200 nested groups", Class::Edge, deep));
    let mut unknown = encoded.clone();
    key(999, 0, &mut unknown);
    unknown.push(1);
    out.push(raw("unknown field", Class::Edge, unknown));
    out.push(raw("64 random bytes", Class::Edge, (0..64).map(|_| rng.random()).collect()));
    let text = |kind: &str, class: Class, body: &'static str| Case {
        field: "body".into(),
        kind: kind.into(),
        class,
        payload: Payload::JsonText(body),
        json_text: None,
        no_json: false,
        always: class == Class::Refuse,
    };
    out.push(text("body not JSON", Class::Refuse, "{\"a\":"));
    out.push(text("body a JSON array", Class::Refuse, "[]"));
    out.push(text("body with an unknown field", Class::Edge, "{\"noSuchField\":1}"));
}

// ---------------------------------------------------------------------------------
// Calls and their checks.
// ---------------------------------------------------------------------------------

struct Sweeper<'a> {
    api: &'a Api,
    app: &'a TestApp,
    failures: Vec<Failure>,
    calls: usize,
    http: reqwest::Client,
}

struct Failure {
    transport: String,
    rpc: String,
    field: String,
    kind: String,
    cred: String,
    problem: String,
}

impl Sweeper<'_> {
    fn fail(&mut self, transport: &str, rpc: &str, field: &str, kind: &str, cred: &str, problem: String) {
        self.failures.push(Failure {
            transport: transport.into(),
            rpc: rpc.into(),
            field: field.into(),
            kind: kind.into(),
            cred: cred.into(),
            problem,
        });
    }

    fn hung(&self) -> bool {
        self.failures.iter().any(|f| f.problem.starts_with("no reply"))
    }

    /// Sends `case` over gRPC with `cred`; checks the reply; whether it was accepted.
    async fn grpc(&mut self, t: &Target<'_>, case: &Case, cred: &Cred) -> bool {
        let bytes = match &case.payload {
            Payload::Msg(m) => Bytes::from(m.encode_to_vec()),
            Payload::Raw(b) => b.clone(),
            Payload::JsonText(_) => return false,
        };
        self.calls += 1;
        let key = if cred.name == "secret" && t.rpc.path.starts_with("/rapport.v1.AdminService/") {
            Some(SWEEP_OPERATOR_TOKEN)
        } else {
            cred.key.as_deref()
        };
        let reply = grpc_call(&self.api.channel, t.rpc, bytes, key).await;
        self.check("grpc", t, case, cred, &reply);
        reply.ok()
    }

    /// Sends `case` over the JSON route `r` with `cred`; checks the reply; whether it
    /// was accepted. Inputs JSON cannot carry are skipped (as refused).
    async fn json(&mut self, t: &Target<'_>, r: &Route, case: &Case, cred: &Cred) -> bool {
        let (path, body) = match &case.payload {
            Payload::Raw(_) => return false,
            Payload::JsonText(text) => {
                if r.body.is_none() {
                    return false;
                }
                let Some((path, _)) = http_request(r, &t.base, None) else { return false };
                (path, Some(text.as_bytes().to_vec()))
            }
            Payload::Msg(_) if case.no_json => return false,
            Payload::Msg(m) => {
                let json = match (to_json(m), &case.json_text) {
                    (Ok(j), _) => j,
                    (Err(_), Some((path, text))) => {
                        let Some(j) = json_with_text(m, path, text) else { return false };
                        j
                    }
                    (Err(_), None) => return false,
                };
                let Some(request) = http_request(r, m, Some(&json)) else { return false };
                request
            }
        };
        self.calls += 1;
        let mut req = self.http.request(r.method.clone(), format!("{}{path}", self.app.http));
        if let Some(k) = &cred.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let reply = match tokio::time::timeout(CALL_LIMIT, async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            Ok::<_, reqwest::Error>((status, resp.text().await?))
        })
        .await
        {
            Err(_) => Reply::hang(),
            Ok(Err(e)) => Reply {
                code: Code::Unavailable,
                http: Some(0),
                message: format!("transport error: {e}"),
                details: 0,
                fields: Vec::new(),
                hang: false,
                body: Bytes::new(),
            },
            Ok(Ok((status, text))) => {
                let j: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
                let code = if (200..300).contains(&status) {
                    Code::Ok
                } else {
                    Code::from_i32(j["code"].as_i64().and_then(|c| i32::try_from(c).ok()).unwrap_or(2))
                };
                let fields = j["details"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|d| d["fieldViolations"].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v["field"].as_str().map(str::to_owned))
                    .collect();
                Reply {
                    code,
                    http: Some(status),
                    message: j["message"].as_str().unwrap_or_default().to_owned(),
                    details: j["details"].to_string().len(),
                    fields,
                    hang: false,
                    body: Bytes::new(),
                }
            }
        };
        let transport = format!("json {} {}", r.method, r.template);
        self.check(&transport, t, case, cred, &reply);
        reply.ok()
    }

    fn check(&mut self, transport: &str, t: &Target<'_>, case: &Case, cred: &Cred, reply: &Reply) {
        let mut problems = Vec::new();
        if reply.hang {
            problems.push(reply.describe());
        } else {
            // JSON: the HTTP status says (the gateway's own 404 and 405 carry
            // UNIMPLEMENTED or NOT_FOUND); CANCELLED and UNKNOWN are never right.
            let broken = match reply.http {
                Some(h) => !(200..500).contains(&h) || matches!(reply.code, Code::Cancelled | Code::Unknown),
                None => FORBIDDEN.contains(&reply.code),
            };
            if broken {
                problems.push(reply.describe());
            }
            if reply.message.len() > MAX_MESSAGE {
                problems.push(format!("{:?} with a message of {} bytes", reply.code, reply.message.len()));
            }
            if reply.details > MAX_DETAILS {
                problems.push(format!("{:?} with {} bytes of details", reply.code, reply.details));
            }
            if case.class == Class::Refuse && problems.is_empty() {
                if reply.ok() {
                    problems.push("accepted".into());
                } else if cred.name == "secret" {
                    let http_ok = reply.http.is_none_or(|h| h == 400);
                    if reply.code != Code::InvalidArgument || !http_ok {
                        problems.push(format!("{} instead of INVALID_ARGUMENT", reply.describe()));
                    } else if reply.http.is_none()
                        && case.field != "-"
                        && matches!(case.payload, Payload::Msg(_))
                        && !reply.fields.contains(&case.field)
                    {
                        problems.push(format!("INVALID_ARGUMENT naming {:?}, not the field", reply.fields));
                    }
                }
            }
        }
        for p in problems {
            self.fail(transport, &t.rpc.short, &case.field, &case.kind, cred.name, p);
        }
    }
}

/// The JSON of `m` with the value at `path` (a timestamp JSON cannot write) replaced
/// by `text`.
fn json_with_text(m: &DynamicMessage, path: &[String], text: &str) -> Option<Json> {
    let mut cleared = m.clone();
    clear_path(&mut cleared, path);
    let mut json = to_json(&cleared).ok()?;
    let mut cur = &mut json;
    for (i, key) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        cur = match cur {
            Json::Object(o) if last => {
                o.insert(key.clone(), Json::String(text.to_owned()));
                return Some(json);
            }
            Json::Object(o) => o.entry(key.clone()).or_insert_with(|| json!({})),
            Json::Array(a) => a.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    None
}

/// Clears the field at a JSON path (as [`json_path`] writes it) in `m`.
fn clear_path(m: &mut DynamicMessage, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    let Some(f) = m.descriptor().get_field_by_json_name(first) else { return };
    if rest.is_empty() {
        m.clear_field(&f);
        return;
    }
    match m.get_field_mut(&f) {
        Value::Message(inner) => clear_path(inner, rest),
        Value::List(items) => {
            if let (Some(Value::Message(inner)), Some(tail)) = (items.first_mut(), rest.get(1..)) {
                clear_path(inner, tail);
            }
        }
        _ => {}
    }
}

fn report(backend: Backend, failures: &[Failure]) -> String {
    let mut lines = BTreeMap::<String, usize>::new();
    for f in failures {
        let line = format!(
            "{:<44} {:<38} {:<28} {:<30} {:<13} {}",
            clip(&f.transport, 44),
            f.rpc,
            clip(&f.field, 28),
            f.kind,
            f.cred,
            clip(&f.problem, 400)
        );
        *lines.entry(line).or_default() += 1;
    }
    let mut out = format!(
        "the sweep on {backend:?} found {} problems ({} distinct): transport, RPC, field, input, credential, what came back\n",
        failures.len(),
        lines.len()
    );
    for (i, (line, n)) in lines.iter().enumerate() {
        if i == 300 {
            let _ = writeln!(out, "… and {} more", lines.len() - 300);
            break;
        }
        let times = if *n > 1 { format!(" (×{n})") } else { String::new() };
        let _ = writeln!(out, "{line}{times}");
    }
    out
}

fn clip(s: &str, max: usize) -> String {
    let s = s.replace(['\n', '\r'], " ");
    match s.char_indices().nth(max) {
        None => s,
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()),
    }
}

// ---------------------------------------------------------------------------------
// Rows of every table.
// ---------------------------------------------------------------------------------

/// Every compared row of the database, as text.
struct Rows {
    conn: DatabaseConnection,
    backend: DbBackend,
    sql: Mutex<Option<String>>,
}

type Snapshot = BTreeMap<String, Vec<String>>;

impl Rows {
    async fn new(url: &str) -> Rows {
        let conn = Database::connect(url).await.expect("a second connection to the test database");
        let backend = conn.get_database_backend();
        Rows { conn, backend, sql: Mutex::new(None) }
    }

    async fn strings(&self, sql: &str) -> Vec<Vec<String>> {
        let rows = self.conn.query_all_raw(Statement::from_string(self.backend, sql)).await.expect("a snapshot query");
        rows.iter().map(|r| (0..).map_while(|i| r.try_get_by_index::<String>(i).ok()).collect()).collect()
    }

    async fn one(&self, sql: &str) -> String {
        self.strings(sql).await.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or_default()
    }

    /// One query over every table (built once: the schema does not change).
    async fn query(&self) -> String {
        if let Some(q) = self.sql.lock().expect("lock").clone() {
            return q;
        }
        let postgres = self.backend == DbBackend::Postgres;
        let tables = if postgres {
            // Tables, partitioned ones included, but not their partitions (read through them).
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        };
        let mut parts = Vec::new();
        for t in self.strings(tables).await.into_iter().filter_map(|r| r.into_iter().next()) {
            if NOT_COMPARED.contains(&t.as_str()) {
                continue;
            }
            let skipped: Vec<&str> =
                COLUMNS_NOT_COMPARED.iter().filter(|(table, _)| *table == t).map(|(_, c)| *c).collect();
            let row = if IDS_ONLY.contains(&t.as_str()) {
                if postgres { "CAST(x.id AS TEXT)".to_owned() } else { "quote(x.id)".to_owned() }
            } else if postgres && !skipped.is_empty() {
                let cols = self
                    .strings(&format!(
                        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' \
                         AND table_name = '{t}' ORDER BY ordinal_position"
                    ))
                    .await;
                let kept: Vec<String> = cols
                    .iter()
                    .filter_map(|c| c.first())
                    .filter(|c| !skipped.contains(&c.as_str()))
                    .map(|c| format!("x.\"{c}\""))
                    .collect();
                format!("CAST(ROW({}) AS TEXT)", kept.join(", "))
            } else if postgres {
                "CAST(x AS TEXT)".to_owned()
            } else {
                let cols = self.strings(&format!("SELECT name FROM pragma_table_info('{t}') ORDER BY cid")).await;
                cols.iter()
                    .filter_map(|c| c.first())
                    .filter(|c| !skipped.contains(&c.as_str()))
                    .map(|c| format!("quote(x.\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ")
            };
            parts.push(format!("SELECT CAST('{t}' AS TEXT), {row} FROM \"{t}\" x"));
        }
        let q = parts.join(" UNION ALL ");
        *self.sql.lock().expect("lock") = Some(q.clone());
        q
    }

    async fn take(&self) -> Snapshot {
        let q = self.query().await;
        let mut out = Snapshot::new();
        for r in self.strings(&q).await {
            let mut r = r.into_iter();
            if let (Some(t), Some(row)) = (r.next(), r.next()) {
                out.entry(t).or_default().push(row);
            }
        }
        for rows in out.values_mut() {
            rows.sort();
        }
        out
    }
}

fn counts(rows: &[String]) -> BTreeMap<&String, i64> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r).or_default() += 1;
    }
    m
}

/// What changed between two snapshots, in short; `None` when nothing did.
fn diff(before: &Snapshot, after: &Snapshot) -> Option<String> {
    let tables: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for t in tables {
        let empty = Vec::new();
        let (a, b) = (before.get(t).unwrap_or(&empty), after.get(t).unwrap_or(&empty));
        if a == b {
            continue;
        }
        let (ca, cb) = (counts(a), counts(b));
        let added: Vec<&&String> = cb.keys().filter(|r| cb[*r] > ca.get(*r).copied().unwrap_or(0)).collect();
        let removed: Vec<&&String> = ca.keys().filter(|r| ca[*r] > cb.get(*r).copied().unwrap_or(0)).collect();
        let example = added.first().or(removed.first()).map(|r| clip(r, 160)).unwrap_or_default();
        out.push(format!("{t} +{} -{} (e.g. {example})", added.len(), removed.len()));
    }
    if out.is_empty() { None } else { Some(out.join("; ")) }
}

// ---------------------------------------------------------------------------------
// Panics and ERROR events on the server's threads.
// ---------------------------------------------------------------------------------

static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Records every panic on a sweep runtime thread (then lets the usual hook print it).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name()
                && name.starts_with(THREAD_PREFIX)
            {
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                PANICS.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_owned(), format!("{payload}{at}")));
            }
            previous(info);
        }));
    });
}

fn server_panics(threads: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(t, _)| t == threads)
        .map(|(_, p)| p.clone())
        .collect()
}

/// ERROR events, as text.
#[derive(Clone, Default)]
struct ErrorLog(Arc<Mutex<Vec<String>>>);

impl ErrorLog {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut text = format!("{} {}:", event.metadata().level(), event.metadata().target());
        event.record(&mut Fields(&mut text));
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}
