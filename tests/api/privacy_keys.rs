//! Keys you can manage and the audit log (docs/privacy.md): the admin service behind
//! the operator token, keys with an expiry and a time of last use, revocation by id,
//! `rapport key list`, and an append-only audit log per tenant over gRPC and JSON.

use std::time::Duration;

use pb::admin_service_client::AdminServiceClient;
use pb::engagement_service_client::EngagementServiceClient;
use pb::privacy_service_client::PrivacyServiceClient;
use pb::webhook_service_client::WebhookServiceClient;
use rapport::service::in_app::IdentityChange;
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;

use crate::dump;
use crate::helpers::*;

const OPERATOR: &str = "operator-token-0123456789abcdef0123456789";

type Admin = AdminServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>>;

fn admin(app: &TestApp, token: Option<&str>) -> Admin {
    AdminServiceClient::with_interceptor(app.channel.clone(), Auth(token.map(str::to_owned)))
}

fn with_operator(args: &mut rapport::config::ServeArgs) {
    fast_outbox(args);
    args.secrets.operator_token = Some(OPERATOR.into());
}

async fn list_surveys(app: &TestApp, key: &str) -> Result<pb::ListSurveysResponse, tonic::Status> {
    app.surveys_as(Some(key)).list_surveys(pb::ListSurveysRequest::default()).await.map(|r| r.into_inner())
}

async fn acme_keys(app: &TestApp) -> Vec<pb::ApiKey> {
    admin(app, Some(OPERATOR))
        .list_api_keys(pb::ListApiKeysRequest { tenant: "acme".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .keys
}

async fn keys_are_managed_over_the_admin_service_with_the_operator_token(b: Backend) {
    let app = spawn_app_with(b, with_operator).await;
    let none = admin(&app, None).list_tenants(pb::ListTenantsRequest::default()).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    let tenant_key = admin(&app, Some(&app.key)).list_tenants(pb::ListTenantsRequest::default()).await.unwrap_err();
    assert_eq!(tenant_key.code(), Code::Unauthenticated, "a tenant's key is not the operator token");

    let mut op = admin(&app, Some(OPERATOR));
    let tenants = op.list_tenants(pb::ListTenantsRequest::default()).await.unwrap().into_inner().tenants;
    assert_eq!(tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["acme"]);
    let globex = op.create_tenant(pb::CreateTenantRequest { name: "globex".into() }).await.unwrap().into_inner();
    assert!(globex.secret.starts_with("rk_secret_") && globex.key.is_some());
    list_surveys(&app, &globex.secret).await.expect("the new tenant's key works");

    // A key that expires in an hour works until then.
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let created = op
        .create_api_key(pb::CreateApiKeyRequest {
            tenant: "acme".into(),
            kind: pb::ApiKeyKind::Secret as i32,
            expire_time: Some(prost_types::Timestamp { seconds: in_an_hour.timestamp(), nanos: 0 }),
        })
        .await
        .unwrap()
        .into_inner();
    let info = created.key.clone().unwrap();
    assert_eq!(info.expire_time.as_ref().map(|t| t.seconds), Some(in_an_hour.timestamp()));
    assert!(created.secret.starts_with(&info.prefix) && info.prefix.len() < created.secret.len());
    list_surveys(&app, &created.secret).await.expect("an unexpired key works");

    // Listed without secrets, with the time of last use once a key was used.
    list_surveys(&app, &app.key).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let keys = acme_keys(&app).await;
            keys.len() == 2 && keys.iter().all(|k| k.last_use_time.is_some())
        })
        .await,
        "both keys were used: {:?}",
        acme_keys(&app).await
    );
    let text = format!("{:?}", acme_keys(&app).await);
    assert!(!text.contains(&created.secret) && !text.contains(&app.key), "no secret in the list");

    // Past its expiry, refused.
    app.clock.advance(chrono::Duration::hours(2));
    let expired = list_surveys(&app, &created.secret).await.unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{expired:?}");

    // Revoked by id: refused at once, and a second revocation is NOT_FOUND.
    let revoked = op.revoke_api_key(pb::RevokeApiKeyRequest { id: globex.key.unwrap().id }).await.unwrap().into_inner();
    assert!(revoked.revoke_time.is_some());
    assert_eq!(list_surveys(&app, &globex.secret).await.unwrap_err().code(), Code::Unauthenticated);
    let again = op.revoke_api_key(pb::RevokeApiKeyRequest { id: revoked.id.clone() }).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let bad = op.revoke_api_key(pb::RevokeApiKeyRequest { id: String::new() }).await.unwrap_err();
    assert_invalid(&bad, "key_id");

    let log = op
        .list_tenant_audit_events(pb::ListTenantAuditEventsRequest { tenant: "globex".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    let actions: Vec<(&str, &str)> = log.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert_eq!(actions, [("key.revoked", "operator"), ("key.created", "operator"), ("tenant.created", "operator")]);
}

async fn the_admin_service_is_off_without_an_operator_token(b: Backend) {
    let app = spawn_app(b).await;
    let err = admin(&app, Some("anything-at-all-anything-at-all-anything"))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("RAPPORT_OPERATOR_TOKEN"), "{err:?}");
}

async fn administrative_actions_are_in_the_tenants_audit_log_and_nowhere_else(b: Backend) {
    let app = spawn_app_with(b, fast_outbox).await;
    let mut hooks = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let created = hooks
        .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
            url: "http://127.0.0.1:9/hook?token=s3cr3t-in-url".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = created.endpoint.unwrap().id;
    hooks
        .update_webhook_endpoint(pb::UpdateWebhookEndpointRequest {
            endpoint: Some(pb::WebhookEndpoint { id: id.clone(), enabled: false, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["enabled".into()] }),
        })
        .await
        .unwrap();
    let rotated = hooks.rotate_webhook_secret(pb::RotateWebhookSecretRequest { id: id.clone() }).await.unwrap();
    hooks.delete_webhook_endpoint(pb::DeleteWebhookEndpointRequest { id: id.clone() }).await.unwrap();
    let identity = app.services.set_identity_verification("acme", IdentityChange::Enable { rotate: false }).await;
    let identity = identity.unwrap().unwrap();
    EngagementServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())))
        .update_scoring_config(pb::UpdateScoringConfigRequest {
            config: Some(pb::ScoringConfig { half_life_days: 14.0, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["half_life_days".into()] }),
        })
        .await
        .unwrap();
    let other = app.other_tenant_key().await;

    // Paged over gRPC, newest first.
    let mut privacy = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(app.key.clone())));
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = privacy
            .list_audit_events(pb::ListAuditEventsRequest { page_size: 2, page_token: token })
            .await
            .unwrap()
            .into_inner();
        assert!(page.audit_events.len() <= 2);
        all.extend(page.audit_events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "scoring_config.updated",
            "identity_verification.enabled",
            "webhook_endpoint.deleted",
            "webhook_endpoint.secret_rotated",
            "webhook_endpoint.updated",
            "webhook_endpoint.created",
            "key.created",
            "tenant.created",
        ]
    );
    let key_id = app.services.list_keys("acme", rapport::domain::listing::PageRequest::parse(0, "").unwrap());
    let key_id = key_id.await.unwrap().items[0].id.0.clone();
    assert_eq!(all[0].actor, format!("key:{key_id}"), "who: the key that called");
    assert_eq!(all[2].target, id);
    assert!(all.iter().all(|e| e.time.is_some() && e.tenant_id == all[0].tenant_id));

    // The same over JSON.
    let json: serde_json::Value = get_json(&app, &format!("{}/v1/audit-events?pageSize=100", app.http)).await;
    let listed = json["auditEvents"].as_array().expect("auditEvents");
    assert_eq!(listed.len(), all.len());
    assert_eq!(listed[1]["action"], "identity_verification.enabled");

    // Another tenant sees only its own.
    let theirs = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(other)))
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .audit_events;
    assert_eq!(theirs.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["key.created", "tenant.created"]);

    // Never a secret, not even the token in a webhook URL.
    let cells = dump::database(&app.db_url).await;
    let audit: Vec<&dump::Cell> = cells.iter().filter(|c| c.table == "audit_log").collect();
    assert!(audit.len() > 20);
    for secret in [created.secret.as_str(), &rotated.into_inner().secret, &identity, &app.key, "s3cr3t-in-url"] {
        assert!(audit.iter().all(|c| !c.value.contains(secret)), "{secret} is in the audit log");
    }

    // Append-only, by the database too.
    let conn = Database::connect(&app.db_url).await.unwrap();
    assert!(conn.execute_unprepared("UPDATE audit_log SET action = 'x'").await.is_err(), "no update");
    assert!(conn.execute_unprepared("DELETE FROM audit_log").await.is_err(), "no delete");
    let _ = conn.close().await;
}

/// `rapport tenant create`, `key create --expires-in`, `key list` and `key revoke`, as an
/// operator types them.
#[tokio::test]
async fn the_key_commands_print_ids_and_list_keys_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("rapport.db").display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rapport"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("RAPPORT_LOG_LEVEL", "warn")
            .output()
            .expect("rapport runs");
        assert!(out.status.success(), "rapport {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let created = run(&["tenant", "create", "acme"]);
    assert!(created.contains("secret key id "), "{created}");
    let first_key = created.lines().find_map(|l| l.strip_prefix("secret key (shown once): ")).unwrap().to_owned();
    let made = run(&["key", "create", "--tenant", "acme", "--publishable", "--expires-in", "30d"]);
    let key_id = made.lines().find_map(|l| l.strip_prefix("key id ")).expect("the key's id").to_owned();
    assert!(made.contains("expires "), "{made}");
    let listed = run(&["key", "list", "--tenant", "acme"]);
    assert_eq!(listed.lines().count(), 3, "a header and two keys: {listed}");
    let line = listed.lines().find(|l| l.starts_with(&key_id)).expect("the new key is listed");
    assert!(line.contains("publishable") && line.contains("rk_pub_"), "{line}");
    assert!(!listed.contains(&first_key[12..]), "no secret in the list");
    run(&["key", "revoke", &key_id]);
    let listed = run(&["key", "list", "--tenant", "acme"]);
    let line = listed.lines().find(|l| l.starts_with(&key_id)).unwrap();
    assert!(!line.trim_end().ends_with(" -"), "revoked: {line}");
}

crate::on_both!(
    keys_are_managed_over_the_admin_service_with_the_operator_token,
    the_admin_service_is_off_without_an_operator_token,
    administrative_actions_are_in_the_tenants_audit_log_and_nowhere_else,
);
