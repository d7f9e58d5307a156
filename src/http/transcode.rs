//! JSON over HTTP, derived at start-up from the `google.api.http` annotations in the
//! proto: the same contract Envoy's gRPC-JSON transcoder and grpc-gateway serve.
//!
//! A request is matched to an RPC by method and path template, its message is built
//! from the path variables, the query string and the JSON body (canonical proto3 JSON,
//! read and written by `prost-reflect` against the descriptor set), and the RPC is
//! called **in process through the same tonic services** as native gRPC — same
//! authentication, rate limits, conversions and error table. The gRPC status comes
//! back as `{code, message, details}` with the HTTP status grpc-gateway uses.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use serde_json::{Map, Value as Json, json};
use tonic::Code;
use tower::ServiceExt as _;

use super::GrpcService;
use crate::error::AppError;
use crate::grpc::gate::ClientAddr;

/// Largest JSON body accepted (docs/api.md, "Input rules").
const MAX_BODY_BYTES: usize = crate::grpc::MAX_REQUEST_BYTES;

/// What the request body carries (`HttpRule.body`).
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body: every field not in the path is a query parameter.
    None,
    /// `*`: every field not in the path.
    All,
    /// One field of the request message; the others are query parameters.
    Field(FieldDescriptor),
}

/// One segment of a path template.
#[derive(Debug, Clone)]
pub enum Segment {
    Literal(String),
    /// `{field.path}`: one path segment, bound to this field path of the request.
    Var {
        name: String,
        path: Vec<FieldDescriptor>,
    },
}

/// A parsed `google.api.http` path template such as `/v1/surveys/{id}:archive`.
#[derive(Debug, Clone)]
pub struct Template {
    pub raw: String,
    pub segments: Vec<Segment>,
    pub verb: Option<String>,
}

/// One HTTP binding of one RPC.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub template: Template,
    pub body: BodyRule,
    pub rpc: MethodDescriptor,
    /// `/rapport.v1.SurveyService/IssueSurvey`.
    pub grpc_path: String,
    /// 0 for the main binding, 1… for `additional_bindings`.
    pub binding: usize,
}

/// The route table and the descriptors to read and write messages with.
pub struct Transcoder {
    pool: DescriptorPool,
    routes: Vec<Route>,
}

enum Lookup<'a> {
    Found(&'a Route, Vec<(Vec<FieldDescriptor>, String)>),
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

impl Transcoder {
    /// Reads every unary RPC's `google.api.http` rule from rapport's descriptor set.
    /// A template this gateway cannot serve fails start-up rather than a request.
    pub fn new() -> anyhow::Result<Self> {
        let mut pool = DescriptorPool::decode(crate::grpc::pb::FILE_DESCRIPTOR_SET)?;
        // google.rpc.Status and its details, to render error details as JSON.
        pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
        let ext = pool
            .get_extension_by_name("google.api.http")
            .ok_or_else(|| anyhow::anyhow!("google.api.http is not in the descriptor set"))?;
        let mut routes = Vec::new();
        for service in pool.services() {
            for rpc in service.methods() {
                if rpc.is_client_streaming() || rpc.is_server_streaming() {
                    continue;
                }
                let options = rpc.options();
                if !options.has_extension(&ext) {
                    continue;
                }
                let rule = options.get_extension(&ext);
                let rule = rule.as_message().ok_or_else(|| anyhow::anyhow!("{}: bad http rule", rpc.full_name()))?;
                let grpc_path = format!("/{}/{}", service.full_name(), rpc.name());
                let mut bindings = vec![rule.clone()];
                if let Some(extra) = rule.get_field_by_name("additional_bindings")
                    && let Some(list) = extra.as_list()
                {
                    bindings.extend(list.iter().filter_map(|v| v.as_message().cloned()));
                }
                for (binding, b) in bindings.iter().enumerate() {
                    routes.push(
                        parse_rule(&rpc, b, &grpc_path, binding)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", rpc.full_name()))?,
                    );
                }
            }
        }
        // Templates with a verb (`…:archive`) and more literal segments match first.
        routes.sort_by_key(|r| {
            let literals = r.template.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
            (r.template.verb.is_none(), std::cmp::Reverse(literals))
        });
        Ok(Transcoder { pool, routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let mut allowed = Vec::new();
        for r in &self.routes {
            if let Some(vars) = r.template.matches(path) {
                if r.method == *method {
                    return Lookup::Found(r, vars);
                }
                if !allowed.contains(&r.method) {
                    allowed.push(r.method.clone());
                }
            }
        }
        if allowed.is_empty() { Lookup::NotFound } else { Lookup::MethodNotAllowed(allowed) }
    }

    /// The template of the first route `path` matches, whatever the method.
    pub fn template_of(&self, path: &str) -> Option<&str> {
        self.routes.iter().find(|r| r.template.matches(path).is_some()).map(|r| r.template.raw.as_str())
    }

    /// Serves one JSON request by calling its RPC on `grpc`.
    pub(crate) async fn handle(&self, grpc: GrpcService, req: axum::extract::Request) -> Response {
        let (parts, body) = req.into_parts();
        let (route, vars) = match self.lookup(&parts.method, parts.uri.path()) {
            Lookup::Found(r, v) => (r, v),
            Lookup::NotFound => {
                return error_json(
                    StatusCode::NOT_FOUND,
                    Code::NotFound,
                    &format!("no route for {} {}", parts.method, parts.uri.path()),
                );
            }
            Lookup::MethodNotAllowed(allowed) => {
                let mut resp = error_json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Code::Unimplemented,
                    &format!("{} is not allowed on {}", parts.method, parts.uri.path()),
                );
                let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    resp.headers_mut().insert(http::header::ALLOW, v);
                }
                return resp;
            }
        };
        let too_large = || {
            error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::ResourceExhausted,
                &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        };
        // Refuse a declared oversize body before reading any of it.
        let declared =
            parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return too_large();
        }
        let bytes = match http_body_util::Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return too_large(),
        };
        let message = match self.request_message(route, vars, parts.uri.query(), &bytes) {
            Ok(m) => m,
            Err(e) => return self.error_response(&e.into()),
        };
        match call_unary(grpc, &route.grpc_path, message.encode_to_vec(), &parts.headers, &parts.extensions).await {
            Ok(reply) => match DynamicMessage::decode(route.rpc.output(), reply) {
                Ok(msg) => json_response(StatusCode::OK, &to_json(&msg)),
                Err(e) => self.error_response(&internal(format!("undecodable reply from {}: {e}", route.grpc_path))),
            },
            Err(status) => self.error_response(&status),
        }
    }

    /// Builds the request message from the JSON body, the query string and the path.
    fn request_message(
        &self,
        route: &Route,
        vars: Vec<(Vec<FieldDescriptor>, String)>,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<DynamicMessage, AppError> {
        let input = route.rpc.input();
        let mut root = Map::new();
        let has_body = body.iter().any(|b| !b.is_ascii_whitespace());
        match &route.body {
            BodyRule::None => {}
            BodyRule::All if has_body => match serde_json::from_slice::<Json>(body) {
                Ok(Json::Object(m)) => root = m,
                Ok(_) => return Err(AppError::invalid("body", "must be a JSON object")),
                Err(e) => return Err(AppError::invalid("body", format!("is not valid JSON: {e}"))),
            },
            BodyRule::All => {}
            BodyRule::Field(f) if has_body => {
                let v = serde_json::from_slice::<Json>(body)
                    .map_err(|e| AppError::invalid("body", format!("is not valid JSON: {e}")))?;
                if let Kind::Message(m) = f.kind() {
                    body_field_check(f, &m, &v)?;
                }
                root.insert(f.json_name().to_owned(), v);
            }
            BodyRule::Field(_) => {}
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            if matches!(route.body, BodyRule::All) {
                let first =
                    form_urlencoded::parse(q.as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default();
                return Err(AppError::invalid(
                    first,
                    "this route takes every field in the JSON body, not in the query",
                ));
            }
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                set_query(&input, &route.body, &mut root, &k, &v)?;
            }
        }
        for (path, value) in vars {
            set_path(&mut root, &path, &value)?;
        }
        DynamicMessage::deserialize_with_options(
            input.clone(),
            Json::Object(root),
            &DeserializeOptions::new().deny_unknown_fields(true),
        )
        .map_err(|e| AppError::invalid("body", format!("is not a valid {} in proto3 JSON: {e}", input.name())))
    }

    /// The JSON error body for a gRPC status: `{code, message, details}` (the
    /// `google.rpc.Status` in proto3 JSON, as grpc-gateway writes it), with the HTTP
    /// status grpc-gateway uses and `Retry-After` on RESOURCE_EXHAUSTED.
    pub fn error_response(&self, status: &tonic::Status) -> Response {
        let mut details = Json::Array(Vec::new());
        if !status.details().is_empty()
            && let Some(desc) = self.pool.get_message_by_name("google.rpc.Status")
            && let Ok(msg) = DynamicMessage::decode(desc, status.details())
            && let Json::Object(mut m) = to_json(&msg)
            && let Some(d) = m.remove("details")
        {
            details = d;
        }
        let body = json!({"code": status.code() as i32, "message": status.message(), "details": details});
        // A message over the size limit is 413, as a body over it is; not a rate limit.
        let too_large = status.code() == Code::ResourceExhausted
            && status.message().starts_with(crate::telemetry::rpc::TOO_LARGE_MESSAGE);
        if too_large {
            return json_response(StatusCode::PAYLOAD_TOO_LARGE, &body);
        }
        let mut resp = json_response(http_status(status.code()), &body);
        if status.code() == Code::ResourceExhausted {
            use tonic_types::StatusExt as _;
            let secs = status
                .get_details_retry_info()
                .and_then(|r| r.retry_delay)
                .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
                .unwrap_or(1)
                .max(1);
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Calls a unary RPC of `grpc` in process with an encoded request, forwarding the
/// caller's `authorization` and client address. Returns the encoded reply.
pub(crate) async fn call_unary(
    grpc: GrpcService,
    path: &str,
    message: Vec<u8>,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Result<Bytes, tonic::Status> {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    let mut req = http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    if let Some(auth) = headers.get(AUTHORIZATION) {
        req = req.header(AUTHORIZATION, auth);
    }
    if let Some(addr) = extensions.get::<ClientAddr>() {
        req = req.extension(*addr);
    }
    let req = req
        .body(tonic::body::Body::new(http_body_util::Full::new(frame.freeze())))
        .map_err(|e| internal(format!("building the in-process call: {e}")))?;
    let resp = match grpc.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(|e| internal(format!("reading the in-process reply: {e}")))?;
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    let status = tonic::Status::from_header_map(&parts.headers)
        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map))
        .unwrap_or_else(|| internal("the in-process reply had no grpc-status".into()));
    if status.code() != Code::Ok {
        return Err(status);
    }
    if data.len() < 5 || data[0] != 0 {
        return Err(internal("the in-process reply was not one uncompressed frame".into()));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if data.len() < 5 + len {
        return Err(internal("the in-process reply frame was cut short".into()));
    }
    Ok(data.slice(5..5 + len))
}

/// An internal status through the one error table (logged there, never shown).
fn internal(why: String) -> tonic::Status {
    AppError::Internal(anyhow::anyhow!(why)).into()
}

/// A message as canonical proto3 JSON (lowerCamelCase names, default values
/// omitted, 64-bit integers as strings, enums by name, RFC 3339 timestamps).
pub fn to_json(msg: &DynamicMessage) -> Json {
    msg.serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new()).unwrap_or(Json::Null)
}

pub fn json_response(status: StatusCode, body: &Json) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], Body::from(bytes)).into_response()
}

/// An error body made here (not from an RPC).
pub fn error_json(http: StatusCode, code: Code, message: &str) -> Response {
    json_response(http, &json!({"code": code as i32, "message": message, "details": []}))
}

/// The HTTP status grpc-gateway (`runtime.HTTPStatusFromCode`) gives each gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn parse_rule(rpc: &MethodDescriptor, rule: &DynamicMessage, grpc_path: &str, binding: usize) -> anyhow::Result<Route> {
    let text =
        |name: &str| rule.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let (method, raw) = [
        (Method::GET, "get"),
        (Method::PUT, "put"),
        (Method::POST, "post"),
        (Method::DELETE, "delete"),
        (Method::PATCH, "patch"),
    ]
    .into_iter()
    .find(|(_, f)| rule.has_field_by_name(f))
    .map(|(m, f)| (m, text(f)))
    .ok_or_else(|| anyhow::anyhow!("only get, put, post, delete and patch rules are served"))?;
    if !text("response_body").is_empty() {
        anyhow::bail!("response_body is not supported");
    }
    let input = rpc.input();
    let body = match text("body").as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::All,
        f => BodyRule::Field(input.get_field_by_name(f).ok_or_else(|| anyhow::anyhow!("no body field {f}"))?),
    };
    Ok(Route {
        method,
        template: Template::parse(&raw, &input)?,
        body,
        rpc: rpc.clone(),
        grpc_path: grpc_path.to_owned(),
        binding,
    })
}

impl Template {
    /// Parses `/literal/{field.path}/…[:verb]`. Only single-segment variables
    /// (`{x}` or `{x=*}`) are supported, which is all rapport's API uses.
    pub fn parse(raw: &str, input: &MessageDescriptor) -> anyhow::Result<Self> {
        let rest = raw.strip_prefix('/').ok_or_else(|| anyhow::anyhow!("template {raw:?} must start with /"))?;
        let (path, verb) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('}') && !rest[i..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_owned()))
            }
            _ => (rest, None),
        };
        let mut segments = Vec::new();
        for seg in path.split('/') {
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let name = inner.strip_suffix("=*").unwrap_or(inner);
                if name.contains(['=', '*', '{', '}']) || name.is_empty() {
                    anyhow::bail!("template {raw:?}: only {{field}} variables are supported");
                }
                segments.push(Segment::Var { name: name.to_owned(), path: field_path(input, name)? });
            } else if seg.is_empty() || seg.contains(['{', '}', '*']) {
                anyhow::bail!("template {raw:?}: bad segment {seg:?}");
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        Ok(Template { raw: raw.to_owned(), segments, verb })
    }

    /// The variables of `path` if it matches, percent-decoded.
    pub fn matches(&self, path: &str) -> Option<Vec<(Vec<FieldDescriptor>, String)>> {
        let mut path = path.strip_prefix('/')?;
        if let Some(v) = &self.verb {
            path = path.strip_suffix(v.as_str())?.strip_suffix(':')?;
        }
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Var { path, .. } => {
                    let value = percent_decode(part)?;
                    if value.is_empty() {
                        return None;
                    }
                    vars.push((path.clone(), value));
                }
            }
        }
        Some(vars)
    }
}

/// The fields named by a dotted path (`survey.id`), by proto or JSON name.
fn field_path(input: &MessageDescriptor, dotted: &str) -> anyhow::Result<Vec<FieldDescriptor>> {
    let mut msg = input.clone();
    let mut out = Vec::new();
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, name) in parts.iter().enumerate() {
        let f = find_field(&msg, name).ok_or_else(|| anyhow::anyhow!("{} has no field {name}", msg.full_name()))?;
        if i + 1 < parts.len() {
            match f.kind() {
                Kind::Message(m) if !f.is_list() && !f.is_map() => msg = m,
                _ => anyhow::bail!("{name} in {dotted} is not a message field"),
            }
        }
        out.push(f);
    }
    Ok(out)
}

fn find_field(msg: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    msg.get_field_by_name(name).or_else(|| msg.get_field_by_json_name(name))
}

/// The object at `path` inside `root` (created as needed), keyed by JSON names; a
/// key the body gave by its proto name is renamed, so it is not given twice.
fn object_at<'a>(root: &'a mut Map<String, Json>, path: &[FieldDescriptor]) -> Option<&'a mut Map<String, Json>> {
    let mut cur = root;
    for f in path {
        let key = normalise_key(cur, f);
        let entry = cur.entry(key).or_insert_with(|| Json::Object(Map::new()));
        if entry.is_null() {
            *entry = Json::Object(Map::new());
        }
        cur = entry.as_object_mut()?;
    }
    Some(cur)
}

fn normalise_key(obj: &mut Map<String, Json>, f: &FieldDescriptor) -> String {
    let json = f.json_name().to_owned();
    if f.name() != json
        && let Some(v) = obj.remove(f.name())
    {
        obj.entry(json.clone()).or_insert(v);
    }
    json
}

/// On a route whose body is one message field (`body: "survey"`), the body is that
/// message itself: a bad one is reported with the body's type (`Survey`), not the
/// request's, and a body wrapped in the field's name (`{"survey": {…}}`) is told so.
fn body_field_check(f: &FieldDescriptor, m: &MessageDescriptor, v: &Json) -> Result<(), AppError> {
    let Err(e) = DynamicMessage::deserialize_with_options(
        m.clone(),
        v.clone(),
        &DeserializeOptions::new().deny_unknown_fields(true),
    ) else {
        return Ok(());
    };
    let wrapped = v.as_object().is_some_and(|o| {
        (o.contains_key(f.name()) || o.contains_key(f.json_name())) && find_field(m, f.name()).is_none()
    });
    let hint = if wrapped {
        format!(
            "; the body is the bare {} (its fields at the top level), not wrapped in {{\"{}\": …}}",
            m.name(),
            f.json_name()
        )
    } else {
        String::new()
    };
    Err(AppError::invalid("body", format!("is not a valid {} in proto3 JSON: {e}{hint}", m.name())))
}

/// Puts a path variable into the JSON message (it wins over the body).
fn set_path(root: &mut Map<String, Json>, path: &[FieldDescriptor], value: &str) -> Result<(), AppError> {
    let Some((leaf, parents)) = path.split_last() else { return Ok(()) };
    let obj =
        object_at(root, parents).ok_or_else(|| AppError::invalid(leaf.name(), "must be an object in the body"))?;
    let key = normalise_key(obj, leaf);
    obj.insert(key, scalar(leaf, value, leaf.name())?);
    Ok(())
}

/// Puts one query parameter into the JSON message: `field`, `a.b`, a repeated field
/// by repeating it, a map entry as `field[key]=value`.
fn set_query(
    input: &MessageDescriptor,
    body: &BodyRule,
    root: &mut Map<String, Json>,
    key: &str,
    value: &str,
) -> Result<(), AppError> {
    let (dotted, map_key) = match key.split_once('[') {
        Some((field, rest)) => match rest.strip_suffix(']') {
            Some(k) => (field, Some(k)),
            None => return Err(AppError::invalid(key, "a map entry is written field[key]=value")),
        },
        None => (key, None),
    };
    let path = field_path(input, dotted)
        .map_err(|e| AppError::invalid(key, format!("is not a query parameter of this route ({e})")))?;
    if let BodyRule::Field(f) = body
        && path.first().is_some_and(|p| p.number() == f.number())
    {
        return Err(AppError::invalid(key, "is carried in the body on this route"));
    }
    let (leaf, parents) = path.split_last().ok_or_else(|| AppError::invalid(key, "is empty"))?;
    let obj = object_at(root, parents).ok_or_else(|| AppError::invalid(key, "conflicts with another parameter"))?;
    let slot = normalise_key(obj, leaf);
    match map_key {
        Some(k) => {
            if !leaf.is_map() {
                return Err(AppError::invalid(key, "is not a map field"));
            }
            let Kind::Message(entry) = leaf.kind() else { return Err(AppError::invalid(key, "is not a map field")) };
            let v = scalar(&entry.map_entry_value_field(), value, key)?;
            let map = obj.entry(slot).or_insert_with(|| Json::Object(Map::new()));
            map.as_object_mut().ok_or_else(|| AppError::invalid(key, "is given twice"))?.insert(k.to_owned(), v);
        }
        None if leaf.is_map() => return Err(AppError::invalid(key, "is a map: write it as field[key]=value")),
        None if leaf.is_list() => {
            let v = scalar(leaf, value, key)?;
            let list = obj.entry(slot).or_insert_with(|| Json::Array(Vec::new()));
            list.as_array_mut().ok_or_else(|| AppError::invalid(key, "is given twice"))?.push(v);
        }
        None => {
            obj.insert(slot, scalar(leaf, value, key)?);
        }
    }
    Ok(())
}

/// A query or path value as the JSON the field takes. Numbers stay strings (proto3
/// JSON accepts both), booleans are parsed, enums go by name or number, and the
/// well-known types written as strings (Timestamp, Duration, FieldMask) pass through.
fn scalar(f: &FieldDescriptor, value: &str, key: &str) -> Result<Json, AppError> {
    Ok(match f.kind() {
        Kind::Bool => match value {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => return Err(AppError::invalid(key, "must be true or false")),
        },
        Kind::Enum(_) => match value.parse::<i64>() {
            Ok(n) => Json::from(n),
            Err(_) => Json::String(value.to_owned()),
        },
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.BytesValue" => Json::String(value.to_owned()),
            "google.protobuf.BoolValue" => return scalar_bool(value, key),
            _ => return Err(AppError::invalid(key, "is a message; set its fields as field.subfield=value")),
        },
        _ => Json::String(value.to_owned()),
    })
}

fn scalar_bool(value: &str, key: &str) -> Result<Json, AppError> {
    match value {
        "true" => Ok(Json::Bool(true)),
        "false" => Ok(Json::Bool(false)),
        _ => Err(AppError::invalid(key, "must be true or false")),
    }
}

/// `%XX`-decoding of one path segment; `None` for malformed input or bad UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The comment written above a descriptor in the proto (its source info), if any.
pub fn comment(file: &prost_types::FileDescriptorProto, path: &[i32]) -> Option<String> {
    let info = file.source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text = loc.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
}

/// Sorted, deduplicated `(METHOD, /path)` pairs of the route table (for tests and
/// the OpenAPI document).
pub fn route_keys(routes: &[Route]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in routes {
        out.entry(r.template.raw.clone()).or_default().push(r.method.as_str().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcoder() -> Transcoder {
        Transcoder::new().expect("the descriptor set's http rules parse")
    }

    #[test]
    fn paths_match_with_verbs_variables_and_percent_decoding() {
        let t = transcoder();
        let find = |m: Method, p: &str| match t.lookup(&m, p) {
            Lookup::Found(r, vars) => {
                Some((r.rpc.name().to_owned(), vars.into_iter().map(|(_, v)| v).collect::<Vec<_>>()))
            }
            _ => None,
        };
        assert_eq!(find(Method::GET, "/v1/surveys/abc"), Some(("GetSurvey".into(), vec!["abc".into()])));
        assert_eq!(find(Method::POST, "/v1/surveys/abc:archive"), Some(("ArchiveSurvey".into(), vec!["abc".into()])));
        assert_eq!(
            find(Method::POST, "/v1/invitations/inv_x/response"),
            Some(("RecordResponse".into(), vec!["inv_x".into()]))
        );
        assert_eq!(
            find(Method::PUT, "/v1/customers/crm%2F42%20x/subscription"),
            Some(("SetCustomerSubscription".into(), vec!["crm/42 x".into()]))
        );
        assert!(matches!(t.lookup(&Method::DELETE, "/v1/surveys/abc"), Lookup::MethodNotAllowed(_)));
        assert!(matches!(t.lookup(&Method::GET, "/v1/nothing"), Lookup::NotFound));
        assert!(matches!(t.lookup(&Method::GET, "/v1/surveys/"), Lookup::NotFound));
        assert!(matches!(t.lookup(&Method::GET, "/v1/surveys/%zz"), Lookup::NotFound));
    }

    #[test]
    fn grpc_gateway_statuses() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::ResourceExhausted), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_status(Code::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
    }

    #[test]
    fn a_message_is_built_from_path_query_and_body() {
        let t = transcoder();
        let Lookup::Found(route, vars) = t.lookup(&Method::PATCH, "/v1/surveys/s1") else { panic!("no route") };
        let msg = t
            .request_message(route, vars, Some("updateMask=name,question"), br#"{"name": "N", "id": "ignored"}"#)
            .expect("builds");
        assert_eq!(to_json(&msg), json!({"survey": {"id": "s1", "name": "N"}, "updateMask": "name,question"}));

        let Lookup::Found(route, vars) = t.lookup(&Method::GET, "/v1/surveys/s1/metrics") else { panic!("no route") };
        let msg = t
            .request_message(
                route,
                vars,
                Some("filter[plan]=pro&interval=INTERVAL_WEEK&start_time=2026-01-01T00:00:00Z"),
                b"",
            )
            .expect("builds");
        assert_eq!(
            to_json(&msg),
            json!({"surveyId": "s1", "filter": {"plan": "pro"}, "interval": "INTERVAL_WEEK", "startTime": "2026-01-01T00:00:00Z"})
        );

        let Lookup::Found(route, vars) = t.lookup(&Method::POST, "/v1/surveys/s1/invitations") else {
            panic!("no route")
        };
        let msg =
            t.request_message(route, vars, None, br#"{"survey_id": "other", "customerId": "c1"}"#).expect("builds");
        assert_eq!(to_json(&msg), json!({"surveyId": "s1", "customerId": "c1"}));
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let t = transcoder();
        let Lookup::Found(route, vars) = t.lookup(&Method::GET, "/v1/responses") else { panic!("no route") };
        let field = |r: Result<DynamicMessage, AppError>| match r {
            Err(AppError::InvalidArgument(v)) => v[0].field.clone(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        };
        assert_eq!(field(t.request_message(route, vars.clone(), Some("nope=1"), b"")), "nope");
        let Lookup::Found(route, vars) = t.lookup(&Method::POST, "/v1/responses") else { panic!("no route") };
        assert_eq!(field(t.request_message(route, vars.clone(), None, b"{not json")), "body");
        assert_eq!(field(t.request_message(route, vars.clone(), None, b"[1]")), "body");
        assert_eq!(field(t.request_message(route, vars.clone(), None, br#"{"score": "high"}"#)), "body");
        assert_eq!(field(t.request_message(route, vars, Some("score=3"), b"{}")), "score");
    }

    #[test]
    fn a_wrapped_body_is_named_by_the_bodys_type_with_a_hint() {
        let t = transcoder();
        let Lookup::Found(route, vars) = t.lookup(&Method::POST, "/v1/surveys") else { panic!("no route") };
        let violation = |r: Result<DynamicMessage, AppError>| match r {
            Err(AppError::InvalidArgument(v)) => (v[0].field.clone(), v[0].description.clone()),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        };
        let (field, why) = violation(t.request_message(
            route,
            vars.clone(),
            None,
            br#"{"survey": {"name": "N", "kind": "KIND_NPS"}}"#,
        ));
        assert_eq!(field, "body");
        assert!(why.starts_with("is not a valid Survey in proto3 JSON"), "{why}");
        assert!(!why.contains("CreateSurveyRequest"), "{why}");
        assert!(
            why.contains(r#"the body is the bare Survey (its fields at the top level), not wrapped in {"survey": …}"#),
            "{why}"
        );
        // Another unknown field: the body's type, no wrapping hint.
        let (_, why) = violation(t.request_message(route, vars.clone(), None, br#"{"nom": "N"}"#));
        assert!(why.starts_with("is not a valid Survey in proto3 JSON") && why.contains("nom"), "{why}");
        assert!(!why.contains("wrapped"), "{why}");
        // The bare Survey is accepted.
        t.request_message(route, vars, None, br#"{"name": "N"}"#).expect("the bare Survey builds");
    }
}
