//! A real HTTP webhook receiver on loopback for the tests, with an independent
//! implementation of the Standard Webhooks signature check.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{KeyInit, Mac};

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Answer with this status.
    Status(u16),
    /// 302 to another path of this receiver.
    Redirect,
    /// Never answer (the sender times out or dies waiting).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub attempt: String,
    pub body: String,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    redirected: Arc<Mutex<usize>>,
    mode: Arc<Mutex<Option<Mode>>>,
}

/// A running receiver.
pub struct Receiver {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    s.hits.lock().unwrap().push(Hit {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        attempt: h("rapport-attempt"),
        body,
    });
    let mode = s.mode.lock().unwrap().clone().unwrap_or(Mode::Status(200));
    match mode {
        Mode::Status(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::OK).into_response(),
        Mode::Redirect => (StatusCode::FOUND, [("location", "/elsewhere")]).into_response(),
        Mode::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}

async fn elsewhere(State(s): State<Shared>) -> StatusCode {
    *s.redirected.lock().unwrap() += 1;
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared::default();
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/elsewhere", post(elsewhere).get(elsewhere))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared, task }
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = Some(mode);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    pub fn redirected(&self) -> usize {
        *self.shared.redirected.lock().unwrap()
    }

    pub fn hits_of(&self, event_type: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.event_type() == event_type).collect()
    }
}

/// Verifies a request the way a receiver following the Standard Webhooks
/// specification does: HMAC-SHA256 of `id.timestamp.body` under the base64 key after
/// `whsec_`, compared with every `v1,` signature in the header.
pub fn verify(secret: &str, hit: &Hit) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", hit.id, hit.timestamp, hit.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    hit.signature.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
