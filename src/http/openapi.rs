//! The OpenAPI 3 document of the JSON routes, generated from the same route table
//! and descriptors that serve them, so it cannot drift from the routes. Schemas
//! follow the proto3 JSON mapping (lowerCamelCase names, 64-bit integers as strings,
//! enums by name, RFC 3339 timestamps); comments come from the proto's source.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use super::transcode::{BodyRule, Route, Segment, Transcoder, comment};

/// The document, as JSON.
pub fn document(api: &Transcoder) -> Json {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    // OpenAPI treats `/v1/responses/{id}` and `/v1/responses/{response_id}` as the same
    // path, which must then use one parameter name: the first route's names win.
    let mut names_by_shape: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in api.routes() {
        let names = names_by_shape.entry(shape(route)).or_insert_with(|| var_names(route)).clone();
        let op = operation(route, &names, &mut schemas);
        paths.entry(openapi_path(route, &names)).or_default().insert(route.method.as_str().to_ascii_lowercase(), op);
    }
    let mut components = schemas.done();
    components.insert(
        "Status".into(),
        json!({
            "type": "object",
            "description": "An error: the gRPC status (google.rpc.Status) in proto3 JSON. `code` is the gRPC \
                code (3 INVALID_ARGUMENT, 5 NOT_FOUND, 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, …); \
                `details` holds google.rpc.BadRequest (fieldViolations) and google.rpc.RetryInfo (retryDelay).",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "additionalProperties": true
                }}
            }
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rapport JSON API",
            "version": "v1",
            "description": "JSON over HTTP for rapport.v1, generated from the google.api.http annotations of \
                proto/rapport/v1. Send `Authorization: Bearer <key>`; invitation-token calls need no key. \
                Bodies are canonical proto3 JSON. Errors are {code, message, details} with the HTTP status \
                grpc-gateway uses for each gRPC code; 429 comes with Retry-After."
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "rk_secret_…, rk_read_… (GET routes only) or rk_pub_…"}}
        },
        "security": [{"bearer": []}, {}]
    })
}

/// A template with its variables blanked: routes of one shape are one OpenAPI path.
fn shape(r: &Route) -> String {
    openapi_path(r, &vec![String::new(); var_names(r).len()])
}

/// Parameter names for a template's variables: the field path, dots as underscores
/// (`survey.id` → `survey_id`), since tools format paths with the names.
fn var_names(r: &Route) -> Vec<String> {
    r.template
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Var { name, .. } => Some(name.replace('.', "_")),
            Segment::Literal(_) => None,
        })
        .collect()
}

/// The OpenAPI form of a template, with `names` for its variables.
fn openapi_path(r: &Route, names: &[String]) -> String {
    let mut out = String::new();
    let mut names = names.iter();
    for s in &r.template.segments {
        out.push('/');
        match s {
            Segment::Literal(l) => out.push_str(l),
            Segment::Var { .. } => {
                out.push('{');
                out.push_str(names.next().map(String::as_str).unwrap_or_default());
                out.push('}');
            }
        }
    }
    if let Some(v) = &r.template.verb {
        out.push(':');
        out.push_str(v);
    }
    out
}

fn operation(r: &Route, names: &[String], schemas: &mut Schemas) -> Json {
    let input = r.rpc.input();
    let service = r.rpc.parent_service();
    let description = comment(r.rpc.parent_file().file_descriptor_proto(), r.rpc.path()).unwrap_or_default();
    let mut parameters = Vec::new();
    // Top-level fields bound by the path or carried by the body are not query parameters.
    let mut bound: BTreeSet<u32> = BTreeSet::new();
    let vars = r.template.segments.iter().filter_map(|s| match s {
        Segment::Var { name, path } => Some((name, path)),
        Segment::Literal(_) => None,
    });
    for ((field, path), name) in vars.zip(names) {
        if path.len() == 1 {
            bound.insert(path[0].number());
        }
        let leaf = path.last().expect("a variable names a field");
        let doc = field_doc(leaf);
        parameters.push(json!({
            "name": name,
            "in": "path",
            "required": true,
            "description": if doc.is_empty() { format!("`{field}`") } else { format!("`{field}`: {doc}") },
            "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        }));
    }
    let request_body = match &r.body {
        BodyRule::None => None,
        BodyRule::All => {
            let mut schema = schemas.inline(&input, &bound);
            if let Some(d) = comment(input.parent_file_descriptor_proto(), input.path()) {
                schema["description"] = Json::String(d);
            }
            Some(schema)
        }
        BodyRule::Field(f) => {
            bound.insert(f.number());
            Some(schemas.field(f))
        }
    };
    if !matches!(r.body, BodyRule::All) {
        for f in input.fields().filter(|f| !bound.contains(&f.number())) {
            if let Some(p) = query_parameter(&f, schemas) {
                parameters.push(p);
            }
        }
    }
    let mut op = json!({
        "operationId": format!("{}_{}{}", service.name(), r.rpc.name(), if r.binding > 0 { format!("_{}", r.binding + 1) } else { String::new() }),
        "tags": [service.name()],
        "summary": format!("{}.{}", service.name(), r.rpc.name()),
        "description": description,
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": schemas.reference(&r.rpc.output())}}
            },
            "default": {
                "description": "An error (gRPC status as JSON)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
            }
        }
    });
    if let Some(schema) = request_body {
        op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": schema}}});
    }
    op
}

/// A query parameter for a top-level field: scalars, enums, string-valued well-known
/// types, repeated scalars, and `map<string, …>` as `field[key]=value` (deepObject).
fn query_parameter(f: &FieldDescriptor, schemas: &mut Schemas) -> Option<Json> {
    let name = f.json_name();
    let doc = field_doc(f);
    if f.is_map() {
        return Some(json!({
            "name": name, "in": "query", "style": "deepObject", "explode": true, "description": doc,
            "schema": schemas.field(f)
        }));
    }
    if let Kind::Message(m) = f.kind()
        && !string_wkt(m.full_name())
    {
        return None;
    }
    let schema = match f.kind() {
        // In a query string an enum goes by name or by number (proto3 JSON takes both).
        Kind::Enum(e) if !f.is_list() => json!({
            "type": "string",
            "enum": e.values().map(|v| v.name().to_owned()).chain(e.values().map(|v| v.number().to_string())).collect::<Vec<_>>()
        }),
        _ => schemas.field(f),
    };
    Some(if f.is_list() {
        json!({"name": name, "in": "query", "style": "form", "explode": true, "description": doc, "schema": schema})
    } else {
        json!({"name": name, "in": "query", "description": doc, "schema": schema})
    })
}

fn field_doc(f: &FieldDescriptor) -> String {
    let mut doc = comment(f.parent_file().file_descriptor_proto(), f.path()).unwrap_or_default();
    if let Some(o) = f.containing_oneof()
        && !o.is_synthetic()
    {
        if !doc.is_empty() {
            doc.push(' ');
        }
        doc.push_str(&format!("(One of `{}`: set at most one.)", o.name()));
    }
    doc
}

fn string_wkt(name: &str) -> bool {
    matches!(name, "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask")
}

/// The component schemas met so far, and those still to write.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Json>,
    seen: BTreeSet<String>,
    todo: Vec<MessageDescriptor>,
}

impl Schemas {
    fn reference(&mut self, m: &MessageDescriptor) -> Json {
        if self.seen.insert(m.full_name().to_owned()) {
            self.todo.push(m.clone());
        }
        json!({"$ref": format!("#/components/schemas/{}", m.full_name())})
    }

    /// A message's fields as an object schema, leaving out `skip` (by number).
    fn inline(&mut self, m: &MessageDescriptor, skip: &BTreeSet<u32>) -> Json {
        let mut props = Map::new();
        for f in m.fields().filter(|f| !skip.contains(&f.number())) {
            // proto3 JSON reads `null` as the field's default value.
            props.insert(f.json_name().to_owned(), described(nullable(self.field(&f)), field_doc(&f)));
        }
        // Unknown fields are refused, as proto3 JSON parsers do by default.
        json!({"type": "object", "properties": props, "additionalProperties": false})
    }

    fn field(&mut self, f: &FieldDescriptor) -> Json {
        if f.is_map() {
            let Kind::Message(entry) = f.kind() else { return json!({}) };
            return json!({"type": "object", "additionalProperties": self.kind(&entry.map_entry_value_field().kind())});
        }
        let item = self.kind(&f.kind());
        if f.is_list() { json!({"type": "array", "items": item}) } else { item }
    }

    fn kind(&mut self, k: &Kind) -> Json {
        match k {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Enum(e) => {
                json!({"type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>()})
            }
            Kind::Message(m) => match m.full_name() {
                "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
                "google.protobuf.Duration" => json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"}),
                "google.protobuf.FieldMask" => {
                    json!({"type": "string", "description": "Comma-separated field paths, e.g. `name,policy.invitationExpiryDays`."})
                }
                // The well-known types proto3 JSON writes as plain JSON.
                "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
                "google.protobuf.Value" => json!({}),
                "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
                "google.protobuf.Empty" => json!({"type": "object", "additionalProperties": false}),
                "google.protobuf.Any" => {
                    json!({"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true})
                }
                "google.protobuf.BoolValue" => json!({"type": "boolean"}),
                "google.protobuf.StringValue" | "google.protobuf.BytesValue" => json!({"type": "string"}),
                "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": "integer"}),
                "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => json!({"type": "string"}),
                "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => json!({"type": "number"}),
                _ => self.reference(m),
            },
        }
    }

    fn done(mut self) -> Map<String, Json> {
        while let Some(m) = self.todo.pop() {
            let mut schema = self.inline(&m, &BTreeSet::new());
            if let Some(d) = comment(m.parent_file_descriptor_proto(), m.path()) {
                schema["description"] = Json::String(d);
            }
            self.done.insert(m.full_name().to_owned(), schema);
        }
        self.done.into_iter().collect()
    }
}

/// A schema that also takes `null` (OpenAPI 3.0 ignores siblings of `$ref`, so a
/// reference is wrapped in `allOf`).
fn nullable(schema: Json) -> Json {
    let mut s = if schema.get("$ref").is_some() { json!({"allOf": [schema]}) } else { schema };
    s["nullable"] = Json::Bool(true);
    s
}

fn described(mut schema: Json, doc: String) -> Json {
    if !doc.is_empty() {
        schema["description"] = Json::String(doc);
    }
    schema
}
