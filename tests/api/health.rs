//! Health follows the database; reflection lists the services; shutdown drains.

use std::time::Duration;

use rapport::grpc::pb::survey_service_server::SERVICE_NAME;
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

async fn status(app: &TestApp, service: &str) -> Option<ServingStatus> {
    let r = app.health.clone().check(HealthCheckRequest { service: service.into() }).await.ok()?;
    ServingStatus::try_from(r.into_inner().status).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_serving_for_the_whole_server_and_each_service_on_sqlite() {
    let app = spawn_app(Backend::Sqlite).await;
    for service in ["", SERVICE_NAME, "rapport.v1.FollowUpService"] {
        assert!(
            eventually(Duration::from_secs(10), || async {
                status(&app, service).await == Some(ServingStatus::Serving)
            })
            .await,
            "{service:?} serving"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_public_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let app = spawn_app(Backend::Sqlite).await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let msg = stream.message().await.unwrap().expect("a reply");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("unexpected reply") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["rapport.v1.SurveyService", "rapport.v1.FollowUpService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_and_reports_not_serving() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "before", 9).await.unwrap();
    app.stop().await.expect("a clean stop");
}

/// While the test's PostgreSQL database refuses connections, health turns
/// NOT_SERVING and calls fail with UNAVAILABLE; both recover, without a restart,
/// once it accepts them again, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_losing_the_database_turns_health_not_serving_and_calls_unavailable_until_it_returns() {
    let app = spawn_app(Backend::Postgres).await;
    let (db_name, admin_url) = app.pg.clone().expect("a PostgreSQL test database");
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let kept = app.answer(&s.id, "before", 3).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async { status(&app, "").await == Some(ServingStatus::Serving) }).await
    );

    let admin = Database::connect(&admin_url).await.unwrap();
    admin.execute_unprepared(&format!("ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS false")).await.unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
        ))
        .await
        .unwrap();

    assert!(
        eventually(Duration::from_secs(10), || async { status(&app, "").await == Some(ServingStatus::NotServing) })
            .await,
        "health turns NOT_SERVING"
    );
    let err = app.answer(&s.id, "during", 9).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = app.surveys.clone().get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    admin.execute_unprepared(&format!("ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS true")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async { status(&app, "").await == Some(ServingStatus::Serving) }).await,
        "health recovers by itself"
    );
    let after = app.answer(&s.id, "after", 9).await.expect("calls work again");
    let all = app.all_responses().await;
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert!(ids.contains(&kept.id.as_str()) && ids.contains(&after.id.as_str()));
    assert_eq!(all.len(), 2, "the refused call stored nothing");
}
