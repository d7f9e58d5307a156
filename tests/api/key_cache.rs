//! The key cache (`RAPPORT_KEY_CACHE_SECONDS`, docs/operations.md): a key revoked
//! through one replica is refused there at once and by another replica on the same
//! database within that replica's cache time; an expired key is refused from its expiry.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::helpers::*;

crate::on_both!(a_revoked_key_is_refused_by_every_replica_within_its_cache_time, a_zero_cache_looks_every_key_up,);

/// Polls `GetSurvey` with `client` until it is refused, for at most `limit`; the time
/// it took, or `None`.
async fn refused_within(client: &mut Surveys, survey: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        match client.get_survey(pb::GetSurveyRequest { id: survey.into() }).await {
            Err(s) if s.code() == Code::Unauthenticated => return Some(start.elapsed()),
            Err(s) => panic!("unexpected error {s:?}"),
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    None
}

async fn a_revoked_key_is_refused_by_every_replica_within_its_cache_time(b: Backend) {
    let a = spawn_app(b).await;
    let cache = Duration::from_secs(1);
    let replica = spawn_app_on(b, a.db_url.clone(), a.key.clone(), |args| args.key_cache_seconds = 1).await;
    let s = a.survey(pb::SurveyKind::Nps, None).await;
    let extra = a.services.create_key("acme", rapport::domain::model::KeyKind::Secret).await.unwrap();
    let mut on_a = a.surveys_as(Some(&extra.secret));
    let mut on_replica = replica.surveys_as(Some(&extra.secret));
    // Both replicas have looked the key up (and remember it).
    on_a.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.expect("the new key works on a");
    on_replica.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.expect("the new key works on the replica");

    a.services.revoke_key(extra.id.as_str()).await.unwrap();
    let revoked_at = Instant::now();
    assert_code(on_a.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await, Code::Unauthenticated);
    // The replica may answer from memory for its cache time (1 s), never longer; the
    // extra second is for a loaded test machine.
    refused_within(&mut on_replica, &s.id, Duration::from_secs(10)).await.expect("the replica refuses the revoked key");
    let took = revoked_at.elapsed();
    assert!(took <= cache + Duration::from_secs(1), "refused {took:?} after the revocation");
    // Once refused, it stays refused, and the tenant's other key still works there.
    assert_code(on_replica.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await, Code::Unauthenticated);
    replica.surveys.clone().get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.expect("the first key works");
}

async fn a_zero_cache_looks_every_key_up(b: Backend) {
    let a = spawn_app(b).await;
    let replica = spawn_app_on(b, a.db_url.clone(), a.key.clone(), |args| args.key_cache_seconds = 0).await;
    let s = a.survey(pb::SurveyKind::Nps, None).await;
    let extra = a.services.create_key("acme", rapport::domain::model::KeyKind::Secret).await.unwrap();
    let mut on_replica = replica.surveys_as(Some(&extra.secret));
    on_replica.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.expect("the new key works");
    a.services.revoke_key(extra.id.as_str()).await.unwrap();
    // Without a cache the other replica refuses it on the very next call.
    assert_code(on_replica.get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await, Code::Unauthenticated);
}
