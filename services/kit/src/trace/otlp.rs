//! OTLP's `ExportTraceServiceRequest` written straight from recorded spans into one buffer,
//! with prost's wire-format helpers, and sent as it is: building the generated message types
//! first costs an allocation per id, name, key and value of every span (about half the export
//! thread's CPU when every request is traced). Field numbers are those of
//! opentelemetry-proto's `collector/trace/v1`, `trace/v1`, `common/v1` and `resource/v1`; the
//! tests decode the result with the generated types.

use prost::{
    bytes::BufMut,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint},
};

use super::record::{Kind, Recorded, Value};

/// The gRPC method the request is sent to.
pub(crate) const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The resource and scope every batch carries, written once.
pub(crate) struct Preamble {
    /// `Resource` (field 1 of `ResourceSpans`), with its key.
    resource: Vec<u8>,
    /// `InstrumentationScope` (field 1 of `ScopeSpans`), with its key.
    scope: Vec<u8>,
}

impl Preamble {
    pub(crate) fn new(resource: &[(String, String)], scope_name: &str) -> Self {
        let attributes: usize = resource
            .iter()
            .map(|(key, value)| key_value_len(1, key, ValueRef::Str(value)))
            .sum();
        let mut encoded = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut encoded);
        encode_varint(attributes as u64, &mut encoded);
        for (key, value) in resource {
            key_value(1, key, ValueRef::Str(value), &mut encoded);
        }
        let mut scope = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut scope);
        encode_varint(string_len(1, scope_name) as u64, &mut scope);
        string(1, scope_name, &mut scope);
        Self {
            resource: encoded,
            scope,
        }
    }
}

/// The whole request for `spans`, into `out` (cleared first).
pub(crate) fn export_request(preamble: &Preamble, spans: &[Recorded], out: &mut Vec<u8>) {
    out.clear();
    let spans_len: usize = spans
        .iter()
        .map(|span| message_len(2, span_len(span)))
        .sum();
    let scope_spans_len = preamble.scope.len() + spans_len;
    let resource_spans_len = preamble.resource.len() + message_len(2, scope_spans_len);
    out.reserve(message_len(1, resource_spans_len));
    // ExportTraceServiceRequest.resource_spans (1) → ResourceSpans
    encode_key(1, WireType::LengthDelimited, out);
    encode_varint(resource_spans_len as u64, out);
    out.extend_from_slice(&preamble.resource);
    // ResourceSpans.scope_spans (2) → ScopeSpans
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(scope_spans_len as u64, out);
    out.extend_from_slice(&preamble.scope);
    for span in spans {
        // ScopeSpans.spans (2) → Span
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(span_len(span) as u64, out);
        write_span(span, out);
    }
}

/// A value as written: a fixed attribute's text or a recorded value.
enum ValueRef<'a> {
    Str(&'a str),
    I64(i64),
    Bool(bool),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Str(text) => Self::Str(text),
            Value::String(text) => Self::Str(text),
            Value::I64(number) => Self::I64(*number),
            Value::Bool(flag) => Self::Bool(*flag),
        }
    }
}

fn key_len(tag: u32) -> usize {
    encoded_len_varint(u64::from(tag) << 3)
}

/// A length-delimited field of `len` bytes, key and length included.
fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn string_len(tag: u32, text: &str) -> usize {
    message_len(tag, text.len())
}

fn string(tag: u32, text: &str, out: &mut Vec<u8>) {
    bytes(tag, text.as_bytes(), out);
}

fn bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn any_value_len(value: &ValueRef<'_>) -> usize {
    match value {
        // AnyValue.string_value (1), bool_value (2), int_value (3, int64: negatives take 10)
        ValueRef::Str(text) => string_len(1, text),
        ValueRef::Bool(_) => key_len(2) + 1,
        ValueRef::I64(number) => key_len(3) + encoded_len_varint(*number as u64),
    }
}

/// A `KeyValue` message's body: key (1) and value (2).
fn key_value_body_len(key: &str, value: &ValueRef<'_>) -> usize {
    string_len(1, key) + message_len(2, any_value_len(value))
}

/// A `KeyValue` written as field `tag` of the message around it.
fn key_value(tag: u32, key: &str, value: ValueRef<'_>, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(key_value_body_len(key, &value) as u64, out);
    string(1, key, out);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(any_value_len(&value) as u64, out);
    match value {
        ValueRef::Str(text) => string(1, text, out),
        ValueRef::Bool(flag) => {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(flag), out);
        }
        ValueRef::I64(number) => {
            encode_key(3, WireType::Varint, out);
            encode_varint(number as u64, out);
        }
    }
}

/// The length of a `KeyValue` written as field `tag`, key and length included.
fn key_value_len(tag: u32, key: &str, value: ValueRef<'_>) -> usize {
    message_len(tag, key_value_body_len(key, &value))
}

// W3C trace flags (sampled) and whether the parent is remote (OTLP's span flags).
const SAMPLED: u32 = 0x1;
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn kind(kind: Kind) -> u64 {
    // opentelemetry.proto.trace.v1.Span.SpanKind
    match kind {
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
    }
}

fn status_len(message: &str) -> usize {
    // Status.message (2), code (3) = STATUS_CODE_ERROR (2)
    string_len(2, message) + key_len(3) + 1
}

fn span_len(span: &Recorded) -> usize {
    let mut len = message_len(1, 16) + message_len(2, 8);
    if span.parent.is_some() {
        len += message_len(4, 8);
    }
    len += string_len(5, &span.name);
    len += key_len(6) + 1;
    len += 2 * (key_len(7) + 8);
    len += span
        .fixed
        .iter()
        .map(|(key, value)| key_value_len(9, key, ValueRef::Str(value)))
        .sum::<usize>();
    len += span
        .attributes
        .iter()
        .map(|(key, value)| key_value_len(9, key, value.into()))
        .sum::<usize>();
    if let Some(error) = &span.error {
        len += message_len(15, status_len(error));
    }
    len + key_len(16) + 4
}

fn write_span(span: &Recorded, out: &mut Vec<u8>) {
    bytes(1, &span.context.trace_id.to_be_bytes(), out);
    bytes(2, &span.context.span_id.to_be_bytes(), out);
    if let Some((parent, _)) = span.parent {
        bytes(4, &parent.to_be_bytes(), out);
    }
    string(5, &span.name, out);
    encode_key(6, WireType::Varint, out);
    encode_varint(kind(span.kind), out);
    encode_key(7, WireType::SixtyFourBit, out);
    out.put_u64_le(span.start_unix_nanos);
    encode_key(8, WireType::SixtyFourBit, out);
    out.put_u64_le(span.end_unix_nanos);
    for (key, value) in span.fixed {
        key_value(9, key, ValueRef::Str(value), out);
    }
    for (key, value) in span.attributes.iter() {
        key_value(9, key, value.into(), out);
    }
    if let Some(error) = &span.error {
        encode_key(15, WireType::LengthDelimited, out);
        encode_varint(status_len(error) as u64, out);
        string(2, error, out);
        encode_key(3, WireType::Varint, out);
        encode_varint(2, out);
    }
    let remote = span.parent.is_some_and(|(_, remote)| remote);
    encode_key(16, WireType::ThirtyTwoBit, out);
    out.put_u32_le(SAMPLED | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 });
}

/// The `service.name` a batch of received spans was sent with, when it is text.
pub fn service_name(
    resource_spans: &opentelemetry_proto::tonic::trace::v1::ResourceSpans,
) -> Option<&str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    resource_spans
        .resource
        .iter()
        .flat_map(|resource| &resource.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(name) => Some(name.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn recorded_spans_are_written_as_the_otlp_request_the_generated_types_read() {
        use opentelemetry_proto::tonic::{
            collector::trace::v1::ExportTraceServiceRequest,
            common::v1::{AnyValue, any_value},
        };
        use prost::Message as _;

        use super::super::{
            SpanContext,
            record::{Kind, Value},
        };

        let resource = vec![
            ("service.name".to_owned(), "queue".to_owned()),
            ("deployment.environment".to_owned(), "prod".to_owned()),
        ];
        let preamble = Preamble::new(&resource, "kit");
        let failed = Recorded::for_test(
            SpanContext {
                trace_id: 0x0102_u128 << 64 | 0x0304,
                span_id: 0x0506,
                sampled: true,
            },
            Some((0x0708, true)),
            Kind::Server,
            "POST /api/reserve",
            &[("db.system", "redis")],
            &[
                ("http.response.status_code", Value::I64(503)),
                ("retried", Value::Bool(false)),
                ("offset", Value::I64(-3)),
                ("http.route", Value::String("/api/reserve".into())),
            ],
            Some("backend down"),
        );
        let root = Recorded::for_test(
            SpanContext {
                trace_id: 9,
                span_id: 10,
                sampled: true,
            },
            None,
            Kind::Client,
            "redis status.lua",
            &[],
            &[],
            None,
        );
        let mut encoded = Vec::new();
        export_request(&preamble, &[failed, root], &mut encoded);
        let decoded = ExportTraceServiceRequest::decode(encoded.as_slice()).expect("valid OTLP");

        let text = |value: &str| {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            })
        };
        assert_eq!(decoded.resource_spans.len(), 1);
        let resource_spans = &decoded.resource_spans[0];
        let attributes = &resource_spans
            .resource
            .as_ref()
            .expect("resource")
            .attributes;
        assert_eq!(
            attributes
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("service.name", text("queue")),
                ("deployment.environment", text("prod"))
            ]
        );
        let scope_spans = &resource_spans.scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().expect("scope").name, "kit");
        let [failed, root] = scope_spans.spans.as_slice() else {
            panic!("two spans: {:?}", scope_spans.spans);
        };
        assert_eq!(failed.trace_id, (0x0102_u128 << 64 | 0x0304).to_be_bytes());
        assert_eq!(failed.span_id, 0x0506_u64.to_be_bytes());
        assert_eq!(failed.parent_span_id, 0x0708_u64.to_be_bytes());
        assert_eq!(failed.flags, 0x301, "sampled, parent known to be remote");
        assert_eq!(failed.kind, 2, "server");
        assert_eq!(failed.name, "POST /api/reserve");
        assert_eq!(
            (failed.start_time_unix_nano, failed.end_time_unix_nano),
            (10, 20)
        );
        let values: Vec<(&str, Option<any_value::Value>)> = failed
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|v| v.value)))
            .collect();
        assert_eq!(
            values,
            vec![
                (
                    "db.system",
                    Some(any_value::Value::StringValue("redis".into()))
                ),
                (
                    "http.response.status_code",
                    Some(any_value::Value::IntValue(503))
                ),
                ("retried", Some(any_value::Value::BoolValue(false))),
                ("offset", Some(any_value::Value::IntValue(-3))),
                (
                    "http.route",
                    Some(any_value::Value::StringValue("/api/reserve".into()))
                ),
            ]
        );
        let status = failed.status.as_ref().expect("a failed span's status");
        assert_eq!((status.code, status.message.as_str()), (2, "backend down"));

        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.flags, 0x101, "sampled, parent known not to be remote");
        assert_eq!(root.kind, 3, "client");
        assert!(root.attributes.is_empty());
        assert!(root.status.is_none());
    }
}
