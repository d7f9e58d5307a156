//! Secrets at rest (docs/privacy.md): webhook signing secrets and identity-verification
//! secrets are sealed in the database, the server still signs and verifies with them,
//! plain rows left by an older version are sealed at start, and rotation moves every
//! secret to the newest key.

use std::time::Duration;

use pb::webhook_service_client::WebhookServiceClient;
use rapport::app::Application;
use rapport::config::ServeArgs;
use rapport::service::Clock;
use rapport::service::in_app::IdentityChange;
use rapport::store::DbSettings;
use sea_orm::{ConnectionTrait, Database};

use crate::dump;
use crate::helpers::*;
use crate::receiver::{Receiver, verify};

const WAIT: Duration = Duration::from_secs(20);
const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn endpoint(app: &TestApp, url: &str) -> (String, String) {
    let created = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest { url: url.into(), ..Default::default() })
        .await
        .expect("create endpoint")
        .into_inner();
    (created.endpoint.unwrap().id, created.secret)
}

/// A detractor answer, and the webhooks it causes arrive signed with `secret`.
async fn answer_arrives_signed(app: &TestApp, rx: &Receiver, secret: &str, customer: &str) {
    let before = rx.hits_of("response.recorded").len();
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, customer, 9).await.expect("answer");
    assert!(eventually(WAIT, || async { rx.hits_of("response.recorded").len() > before }).await);
    let hit = rx.hits_of("response.recorded").pop().unwrap();
    assert!(verify(secret, &hit), "the delivery is signed with the endpoint's secret");
}

/// The secret, and the random part after its prefix, appear in no column of any table.
async fn assert_nowhere(db_url: &str, secret: &str, prefix: &str) {
    let cells = dump::database(db_url).await;
    assert!(cells.len() > 50, "the dump read the database ({} values)", cells.len());
    let body = secret.strip_prefix(prefix).expect("the secret's prefix");
    for needle in [secret, body, &body[..16]] {
        let found = dump::containing(&cells, needle);
        assert!(found.is_empty(), "{needle:?} is stored in {found:?}");
    }
}

async fn the_database_alone_does_not_reveal_a_secret(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let rx = Receiver::start().await;
    let (_, webhook_secret) = endpoint(&app, &rx.url).await;
    let identity_secret = app
        .services
        .set_identity_verification("acme", IdentityChange::Enable { rotate: false })
        .await
        .unwrap()
        .expect("a new identity secret");

    answer_arrives_signed(&app, &rx, &webhook_secret, "c-1").await;
    assert_nowhere(&app.db_url, &webhook_secret, "whsec_").await;
    assert_nowhere(&app.db_url, &identity_secret, "idv_").await;

    // Rotated secrets are sealed too, and the new one signs.
    let rotated = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .rotate_webhook_secret(pb::RotateWebhookSecretRequest { id: rx_endpoint(&app).await })
        .await
        .unwrap()
        .into_inner()
        .secret;
    answer_arrives_signed(&app, &rx, &rotated, "c-2").await;
    assert_nowhere(&app.db_url, &rotated, "whsec_").await;

    // The identity secret still verifies a customer (a publishable key's in-app issue).
    let publishable = app.publishable_key().await;
    let s = app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, in_app: true, ..Default::default() }).await;
    let hash = rapport::domain::identity::customer_hash(&identity_secret, "c-3");
    app.surveys_as(Some(&publishable))
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: s.id.clone(),
            customer_id: "c-3".into(),
            customer_hash: hash,
            ..Default::default()
        })
        .await
        .expect("the hash made with the identity secret is accepted");
}

async fn rx_endpoint(app: &TestApp) -> String {
    WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .list_webhook_endpoints(pb::ListWebhookEndpointsRequest { page_size: 10, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .endpoints
        .remove(0)
        .id
}

/// What the raw sealed columns hold: (secret, key id) of every endpoint.
async fn stored_webhook_secrets(db_url: &str) -> Vec<(String, Option<String>)> {
    let conn = Database::connect(db_url).await.unwrap();
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT secret, secret_key_id FROM webhook_endpoints".to_owned(),
        ))
        .await
        .unwrap();
    let out = rows
        .into_iter()
        .map(|r| (r.try_get_by_index::<String>(0).unwrap(), r.try_get_by_index::<Option<String>>(1).unwrap()))
        .collect();
    let _ = conn.close().await;
    out
}

fn keys(args: &mut ServeArgs, keys: &str) {
    fast_outbox(args);
    args.secrets.secret_keys = Some(keys.into());
}

async fn plain_secrets_left_by_an_older_version_are_sealed_at_start(b: Backend) {
    let mut first = spawn_app_with(b, |a| keys(a, K1)).await;
    let rx = Receiver::start().await;
    let (_, secret) = endpoint(&first, &rx.url).await;
    // As a version before sealing left it: the secret in plain text, no key id.
    let conn = Database::connect(&first.db_url).await.unwrap();
    conn.execute_unprepared(&format!("UPDATE webhook_endpoints SET secret = '{secret}', secret_key_id = NULL"))
        .await
        .unwrap();
    let _ = conn.close().await;
    assert_eq!(stored_webhook_secrets(&first.db_url).await, [(secret.clone(), None)]);

    let dir = first.take_dir();
    let db_url = first.db_url.clone();
    let key = first.key.clone();
    let pg = first.pg.take();
    first.stop().await.unwrap();
    let mut second = spawn_app_on(b, db_url.clone(), key, |a| keys(a, K1)).await;
    second.pg = pg;
    let stored = stored_webhook_secrets(&db_url).await;
    assert_eq!(stored[0].1.as_deref(), Some("k1"), "sealed under the configured key at start");
    assert_nowhere(&db_url, &secret, "whsec_").await;
    answer_arrives_signed(&second, &rx, &secret, "c-1").await;
    drop(dir);
}

async fn rotation_reseals_under_the_newest_key_and_then_the_old_one_can_go(b: Backend) {
    let mut first = spawn_app_with(b, |a| keys(a, K1)).await;
    let rx = Receiver::start().await;
    let (_, secret) = endpoint(&first, &rx.url).await;
    let _ = first.services.set_identity_verification("acme", IdentityChange::Enable { rotate: false }).await.unwrap();
    let dir = first.take_dir();
    let (db_url, key, pg) = (first.db_url.clone(), first.key.clone(), first.pg.take());
    first.stop().await.unwrap();

    // The new key first, the old one still there: what the old key sealed opens.
    let both = format!("{K2},{K1}");
    let second = spawn_app_on(b, db_url.clone(), key.clone(), |a| keys(a, &both)).await;
    answer_arrives_signed(&second, &rx, &secret, "c-1").await;
    let moved = second.services.rotate_secrets().await.unwrap();
    assert_eq!((moved.webhook_secrets, moved.identity_secrets), (1, 1));
    assert!(stored_webhook_secrets(&db_url).await.iter().all(|(_, k)| k.as_deref() == Some("k2")));
    assert_eq!(second.services.rotate_secrets().await.unwrap().total(), 0, "nothing left to move");
    second.stop().await.unwrap();

    // Only the old key: the server refuses to start, naming the key it lacks.
    let db = DbSettings { max_connections: 4, ..DbSettings::new(db_url.clone()) };
    let mut old_only = ServeArgs::default();
    keys(&mut old_only, K1);
    let err = match Application::build(&db, old_only, Clock::default()).await {
        Ok(_) => panic!("a server without the key that sealed the secrets must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("k2") && err.contains("rapport secrets rotate"), "{err}");

    // Only the new key: it starts and signs.
    let mut third = spawn_app_on(b, db_url, key, |a| keys(a, K2)).await;
    third.pg = pg;
    answer_arrives_signed(&third, &rx, &secret, "c-2").await;
    drop(dir);
}

#[tokio::test]
async fn on_postgres_the_server_refuses_to_start_without_a_key() {
    let db = DbSettings { max_connections: 2, ..DbSettings::new(pg_admin_url()) };
    let err =
        match Application::build(&db, ServeArgs { migrate_on_start: false, ..ServeArgs::default() }, Clock::default())
            .await
        {
            Ok(_) => panic!("PostgreSQL without a configured key must not start"),
            Err(e) => format!("{e:#}"),
        };
    assert!(err.contains("RAPPORT_SECRET_KEYS"), "{err}");
}

crate::on_both!(
    the_database_alone_does_not_reveal_a_secret,
    plain_secrets_left_by_an_older_version_are_sealed_at_start,
    rotation_reseals_under_the_newest_key_and_then_the_old_one_can_go,
);
