//! The codec every RPC decodes through: prost, plus the input rules that hold for
//! every field of every request (docs/api.md, "Input rules"), checked in this one place
//! before any handler runs:
//!
//! - **text**: no control characters but tab, line feed and carriage return, in every
//!   string field, map key and map value ([`input::control_character`]);
//! - **time**: every `google.protobuf.Timestamp` lies in the API's range, years
//!   1970–9999 ([`time::check_range`]).
//!
//! A violation is INVALID_ARGUMENT naming the field by its path (`events[2].time`,
//! `properties[plan]`), with every violation of the message listed. A message that is
//! not valid protobuf is INVALID_ARGUMENT too (tonic's own codec says INTERNAL).
//!
//! Only the request types of the services are checked; replies (which clients decode
//! with the same codec) pass as they are.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::LazyLock;

use bytes::Buf as _;
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, ReflectMessage as _, Value};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};

use crate::domain::{input, time};
use crate::error::{AppError, FieldViolation};

/// The descriptors of `rapport.v1` and the set of its request types.
struct Schema {
    pool: DescriptorPool,
    requests: HashSet<String>,
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(super::pb::FILE_DESCRIPTOR_SET).expect("the built-in descriptor set decodes");
    let requests = pool
        .services()
        .flat_map(|s| s.methods().map(|m| m.input().full_name().to_owned()).collect::<Vec<_>>())
        .collect();
    Schema { pool, requests }
});

/// Prost encoding with the input rules checked on decode. Named by `build.rs` as the
/// codec of every generated service and client.
#[derive(Debug, Clone, Copy)]
pub struct CheckedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        CheckedCodec(PhantomData)
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

/// Decodes with prost, then checks a request against the input rules.
#[derive(Debug)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let message = U::decode(bytes.clone()).map_err(|e| malformed(&e))?;
        let schema = &*SCHEMA;
        let name = U::full_name();
        if schema.requests.contains(&name)
            && let Some(desc) = schema.pool.get_message_by_name(&name)
        {
            let dynamic = DynamicMessage::decode(desc, bytes).map_err(|e| malformed(&e))?;
            let violations = violations(&dynamic);
            if !violations.is_empty() {
                return Err(AppError::InvalidArgument(violations).into());
            }
        }
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

fn malformed(e: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the request is not a valid protobuf message: {e}"))
}

/// Every violation of the input rules in `message`, with field paths.
pub fn violations(message: &DynamicMessage) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    walk_message(message, "", &mut out);
    out
}

/// Checks that stop after this many violations: the reply stays small.
const MAX_VIOLATIONS: usize = 20;

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

fn walk_message(message: &DynamicMessage, path: &str, out: &mut Vec<FieldViolation>) {
    if message.descriptor().full_name() == "google.protobuf.Timestamp" {
        let seconds = message.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
        let nanos = message.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
        if let Err(AppError::InvalidArgument(v)) = time::check_range(path, seconds, nanos) {
            out.extend(v);
        }
        return;
    }
    for (field, value) in message.fields() {
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        walk_value(value, &join(path, field.name()), out);
    }
}

fn walk_value(value: &Value, path: &str, out: &mut Vec<FieldViolation>) {
    match value {
        Value::String(s) => check_text(path, s, out),
        Value::Message(m) => walk_message(m, path, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if out.len() >= MAX_VIOLATIONS {
                    return;
                }
                walk_value(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(map) => {
            for (key, item) in map {
                if out.len() >= MAX_VIOLATIONS {
                    return;
                }
                match key {
                    MapKey::String(k) if input::control_character(k).is_some() => {
                        check_text(path, k, out);
                    }
                    MapKey::String(k) => walk_value(item, &format!("{path}[{}]", input::quote_prefix(k)), out),
                    other => walk_value(item, &format!("{path}[{other:?}]"), out),
                }
            }
        }
        _ => {}
    }
}

fn check_text(path: &str, s: &str, out: &mut Vec<FieldViolation>) {
    if let Err(AppError::InvalidArgument(v)) = input::no_control_characters(path, s) {
        out.extend(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::pb;
    use proptest::prelude::*;

    fn check<M: Message + Name + Default>(m: &M) -> Vec<FieldViolation> {
        let desc = SCHEMA.pool.get_message_by_name(&M::full_name()).expect("known type");
        violations(&DynamicMessage::decode(desc, m.encode_to_vec().as_slice()).expect("decodes"))
    }

    fn action(properties: std::collections::HashMap<String, String>) -> pb::activity_event::Kind {
        pb::activity_event::Kind::Action(pb::ActionEvent { name: "export".into(), properties })
    }

    #[test]
    fn every_request_type_has_a_descriptor_and_a_type_name() {
        assert!(SCHEMA.requests.len() > 30, "{}", SCHEMA.requests.len());
        assert!(SCHEMA.requests.contains(&pb::RecordResponseRequest::full_name()));
        for name in &SCHEMA.requests {
            assert!(SCHEMA.pool.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_nul_in_a_comment_names_the_field() {
        let req = pb::RecordResponseRequest { comment: "a\0b".into(), ..Default::default() };
        let v = check(&req);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "comment");
    }

    #[test]
    fn nested_lists_maps_and_timestamps_are_named_by_path() {
        let bad_time = prost_types::Timestamp { seconds: 253_402_300_800, nanos: 0 };
        let ok_time = prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 };
        let req = pb::RecordEventsRequest {
            events: vec![
                pb::ActivityEvent { time: Some(ok_time), ..Default::default() },
                pb::ActivityEvent {
                    time: Some(bad_time),
                    kind: Some(action([("plan".to_string(), "x\u{1b}".to_string())].into())),
                    ..Default::default()
                },
            ],
        };
        let mut fields: Vec<String> = check(&req).into_iter().map(|v| v.field).collect();
        fields.sort();
        assert_eq!(fields, vec!["events[1].action.properties[plan]".to_string(), "events[1].time".to_string()]);
    }

    #[test]
    fn a_bad_map_key_names_the_map_not_the_key() {
        let req = pb::RecordEventsRequest {
            events: vec![pb::ActivityEvent {
                kind: Some(action([("k\0".to_string(), "v".to_string())].into())),
                ..Default::default()
            }],
        };
        let v = check(&req);
        assert_eq!(v[0].field, "events[0].action.properties");
    }

    #[test]
    fn violations_are_capped() {
        let req = pb::RecordEventsRequest {
            events: (0..100).map(|_| pb::ActivityEvent { customer_id: "\0".into(), ..Default::default() }).collect(),
        };
        assert!(check(&req).len() <= MAX_VIOLATIONS + 1);
    }

    proptest! {
        #[test]
        fn text_without_control_characters_passes_and_with_one_fails(
            s in "[^\\p{Cc}]{0,40}",
            c in prop::sample::select((0u32..0x20).chain(0x7f..0xa0).filter(|c| ![9, 10, 13].contains(c)).collect::<Vec<_>>()),
            at in 0usize..40,
        ) {
            let req = pb::CreateSurveyRequest {
                survey: Some(pb::Survey { question: s.clone(), ..Default::default() }),
            };
            prop_assert!(check(&req).is_empty());
            let mut bad: Vec<char> = s.chars().collect();
            bad.insert(at.min(bad.len()), char::from_u32(c).unwrap());
            let req = pb::CreateSurveyRequest {
                survey: Some(pb::Survey { question: bad.into_iter().collect(), ..Default::default() }),
            };
            let v = check(&req);
            prop_assert_eq!(v.len(), 1);
            prop_assert_eq!(&v[0].field, "survey.question");
        }

        #[test]
        fn timestamps_pass_exactly_inside_the_range(seconds in any::<i64>(), nanos in any::<i32>()) {
            let req = pb::RecordEventsRequest {
                events: vec![pb::ActivityEvent {
                    time: Some(prost_types::Timestamp { seconds, nanos }),
                    ..Default::default()
                }],
            };
            let inside = (time::MIN_SECONDS..=time::MAX_SECONDS).contains(&seconds) && (0..1_000_000_000).contains(&nanos);
            prop_assert_eq!(check(&req).is_empty(), inside);
        }
    }
}
