//! A small JSON-over-HTTP client for the gateway tests (reqwest, a real HTTP/1.1
//! connection to the server's HTTP port).

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::TestApp;

/// What came back: status, headers and the body (as JSON when it parses).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The gRPC code of a `{code, message, details}` error body.
    pub fn code(&self) -> i64 {
        self.json["code"].as_i64().unwrap_or(-1)
    }

    /// The fields named by the body's BadRequest detail.
    pub fn violated_fields(&self) -> Vec<String> {
        self.json["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            .flat_map(|d| d["fieldViolations"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v["field"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error reply: HTTP status, gRPC code, and the `{code, message, details}` shape.
    #[track_caller]
    pub fn assert_error(&self, http: u16, code: i64) {
        assert_eq!(self.status, http, "{self:?}");
        assert_eq!(self.code(), code, "{self:?}");
        assert!(self.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
        assert!(self.json["details"].is_array(), "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// A client of one test server's HTTP port.
#[derive(Clone)]
pub struct Web {
    pub base: String,
    client: reqwest::Client,
}

impl Web {
    pub fn new(app: &TestApp) -> Self {
        Web { base: app.http.clone(), client: reqwest::Client::new() }
    }

    /// Sends `method path` with an optional key, JSON body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method.parse().expect("a method"), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, json }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.send("GET", path, key, None, &[]).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.send("POST", path, key, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        self.send("PATCH", path, key, Some(body), &[]).await
    }
}
