//! The CloudEvents NATS protocol binding (rules 48–53 of `cloudevents-rules.md`, section 4.5).
//!
//! Pure functions over plain strings and byte slices: no async-nats types, so the JetStream channel
//! backend, NatsSink and NatsSource share one implementation, and the parser can be fuzzed
//! (`fuzz/fuzz_targets/nats_message.rs`).
//!
//! - [`encode`]: an [`Event`] → a [`NatsMessage`] in binary mode (`ce-<attr>` headers for every
//!   attribute, `ce-datacontenttype` included, values percent-encoded like the HTTP binding; the
//!   payload is the data bytes) or structured mode (JSON format payload,
//!   `Content-Type: application/cloudevents+json`).
//! - [`decode`]: headers + payload → an [`Event`], validated exactly like HTTP ingress.
//!
//! NATS header names are case-insensitive for this binding (rule 51): `CE-ID` is `ce-id`,
//! `content-type` is `Content-Type`. NATS has no batch mode (rule 48).

use crate::config::ContentMode;
use crate::event::Event;
use crate::format::binary::{
    self, attribute_name, duplicate, essence, header_name, percent_value, starts_with_ignore_case,
    AttributeDecoder, NATS,
};
use crate::format::json;
use crate::format::percent::encode_header_value;
use crate::format::FormatError;
use bytes::Bytes;
use std::borrow::Cow;

/// Name of the header that selects structured mode (rule 49).
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";
/// Media type written into `Content-Type` in structured mode.
pub const STRUCTURED_CONTENT_TYPE: &str = crate::format::http::STRUCTURED_JSON;

/// A NATS message produced by [`encode`]: headers and payload, ready for any NATS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsMessage {
    /// Headers in order. Binary mode: `ce-specversion`, `ce-id`, `ce-source`, `ce-type`, optional core
    /// attributes, `ce-datacontenttype`, extensions (sorted); values percent-encoded (rule 53).
    /// Structured mode: only `Content-Type`.
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Message payload: the data bytes (binary, empty without data) or the JSON format (structured).
    pub payload: Bytes,
}

impl NatsMessage {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn encoded(value: &str) -> String {
    let mut out = String::new();
    encode_header_value(value, &mut out);
    out
}

/// Encodes an event as a NATS message in the given content mode.
///
/// Binary (rules 51–53): every attribute is a `ce-<name>` header with its canonical string value,
/// percent-encoded like the HTTP binding — `datacontenttype` included, as `ce-datacontenttype`
/// (`application/json` when the data arrived as JSON and there is no `datacontenttype`, as in the
/// HTTP binding); 0.3 events use `ce-schemaurl`. The payload is the data bytes as-is (not copied),
/// empty without data.
///
/// Structured (rules 49–50): the payload is the JSON format and `Content-Type` is
/// [`STRUCTURED_CONTENT_TYPE`].
///
/// Every extension is written, `knativebrokerttl` included: callers that must not let it leave the
/// broker remove it first.
pub fn encode(event: &Event, mode: ContentMode) -> NatsMessage {
    match mode {
        ContentMode::Structured => {
            let mut out = Vec::with_capacity(event.approx_size() + 192);
            json::write_event(event, &mut out);
            NatsMessage {
                headers: vec![(
                    Cow::Borrowed(CONTENT_TYPE_HEADER),
                    STRUCTURED_CONTENT_TYPE.to_owned(),
                )],
                payload: Bytes::from(out),
            }
        }
        ContentMode::Binary => {
            let mut headers = Vec::with_capacity(9 + event.extensions.len());
            for (attr, v) in binary::core_attributes(event) {
                // The specversion needs no encoding.
                let value = if attr == "specversion" {
                    v.to_owned()
                } else {
                    encoded(v)
                };
                headers.push((header_name(&NATS, attr), value));
            }
            if let Some(ct) = binary::content_type(event) {
                headers.push((header_name(&NATS, "datacontenttype"), encoded(ct)));
            }
            for (name, value) in &event.extensions {
                headers.push((header_name(&NATS, name), encoded(&value.to_canonical())));
            }
            NatsMessage {
                headers,
                payload: event.data.bytes().cloned().unwrap_or_default(),
            }
        }
    }
}

/// Decodes a received NATS message. `headers` holds every header value as its own pair (a header
/// with two values appears twice).
///
/// Mode detection (rule 49): a `Content-Type` header (name case-insensitive) whose value starts with
/// `application/cloudevents` (case-insensitive) means structured mode — only
/// `application/cloudevents+json` is supported (`UnsupportedMediaType` otherwise, as at HTTP ingress)
/// and a batch media type is invalid because NATS has no batch mode (rule 48); the payload is parsed
/// with the JSON format (rule 50) and `ce-` headers are ignored.
///
/// Otherwise binary mode (rules 51–53): attributes from `ce-` headers (names case-insensitive, values
/// quoted-string and percent-decoded like HTTP; extensions are strings, as in the HTTP binary
/// binding), `datacontenttype` from `ce-datacontenttype` (a non-CloudEvents `Content-Type` header is
/// not an attribute and is ignored), data = the payload as-is (an empty payload is no data). A
/// message without `ce-specversion` is not a CloudEvent and is an error naming `ce-specversion`.
///
/// A header that appears twice for one attribute and every CloudEvents validation rule give a
/// [`FormatError`] whose field names the header.
pub fn decode(headers: &[(&str, &[u8])], payload: &[u8]) -> Result<Event, FormatError> {
    let mut content_type: Option<&[u8]> = None;
    for (name, v) in headers {
        if name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
            if content_type.is_some() {
                return Err(duplicate("content-type"));
            }
            content_type = Some(*v);
        }
    }
    if let Some(ct) = content_type {
        let ct = ct.trim_ascii_start();
        if starts_with_ignore_case(ct, b"application/cloudevents") {
            let ct = std::str::from_utf8(ct).map_err(|_| {
                FormatError::invalid("content-type", "header 'Content-Type' is not valid UTF-8")
            })?;
            if starts_with_ignore_case(ct.as_bytes(), b"application/cloudevents-batch") {
                return Err(FormatError::invalid(
                    "content-type",
                    format!(
                        "batch format '{}' is not allowed: NATS has no batch mode",
                        essence(ct)
                    ),
                ));
            }
            if !essence(ct).eq_ignore_ascii_case(STRUCTURED_CONTENT_TYPE) {
                return Err(FormatError::unsupported(format!(
                    "unsupported event format '{}': only {STRUCTURED_CONTENT_TYPE} is supported",
                    essence(ct)
                )));
            }
            return json::parse_event(payload);
        }
    }
    decode_binary(headers, payload)
}

fn decode_binary(headers: &[(&str, &[u8])], payload: &[u8]) -> Result<Event, FormatError> {
    const SV: &str = "ce-specversion";
    let mut specversion = None;
    for (name, v) in headers {
        if !name.eq_ignore_ascii_case(SV) {
            continue;
        }
        if specversion.is_some() {
            return Err(duplicate(SV));
        }
        specversion = Some(binary::specversion(SV, &percent_value(SV, v)?)?);
    }
    let Some(specversion) = specversion else {
        return Err(FormatError::invalid(
            SV,
            "missing required header 'ce-specversion' (not a CloudEvent)",
        ));
    };
    let mut attributes = AttributeDecoder::new(specversion);
    for (name, v) in headers {
        let Some(attr) = attribute_name(&NATS, name) else {
            continue;
        };
        let attr = attr.as_ref();
        if attr == "specversion" {
            continue;
        }
        let field = NATS.field(attr);
        let s = percent_value(&field, v)?;
        if attr == "datacontenttype" {
            attributes.set_datacontenttype(&field, &s)?;
        } else {
            attributes.set(attr, &field, s)?;
        }
    }
    let (mut event, base64_payload) = attributes.finish(&NATS)?;
    event.data = binary::data(payload, base64_payload, "payload", || {
        Bytes::copy_from_slice(payload)
    })?;
    binary::validate(event, &NATS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Data, ExtValue, SpecVersion};
    use crate::format::validate::validate_event;
    use crate::format::FormatErrorKind;

    /// Decodes an encoded message (as a subscriber would see it).
    fn decode_message(m: &NatsMessage) -> Result<Event, FormatError> {
        let headers: Vec<(&str, &[u8])> = m
            .headers
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_bytes()))
            .collect();
        decode(&headers, &m.payload)
    }

    fn base() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("ce-specversion", b"1.0"),
            ("ce-id", b"A234-1234-1234"),
            ("ce-source", b"/mycontext"),
            ("ce-type", b"com.example.someevent"),
        ]
    }

    fn with(extra: (&'static str, &'static [u8])) -> Vec<(&'static str, &'static [u8])> {
        let mut h = base();
        h.push(extra);
        h
    }

    fn err(headers: &[(&str, &[u8])], payload: &[u8]) -> FormatError {
        decode(headers, payload).unwrap_err()
    }

    fn sample_events() -> Vec<Event> {
        let [e, with_text, bytes] = binary::sample_events("text/plain; charset=\"utf-8\"");
        let mut v03 = with_text.clone();
        v03.specversion = SpecVersion::V03;
        vec![e, with_text, bytes, v03]
    }

    #[test]
    fn binary_round_trip() {
        for e in sample_events() {
            let m = encode(&e, ContentMode::Binary);
            assert_eq!(decode_message(&m).unwrap(), e);
        }
    }

    #[test]
    fn structured_round_trip() {
        let mut events = sample_events();
        // Non-text bytes travel as data_base64 in the JSON format.
        events[2].data = Data::Binary(Bytes::from_static(&[0, 1, 255]));
        let mut j = Event::new("1", "/s", "t");
        j.data = Data::Json(Bytes::from_static(br#"{"a":[1,2]}"#));
        events.push(j);
        for e in events {
            let m = encode(&e, ContentMode::Structured);
            assert_eq!(decode_message(&m).unwrap(), e);
        }
    }

    #[test]
    fn rule48_json_format_and_no_batch_mode() {
        let batch = [("Content-Type", &b"application/cloudevents-batch+json"[..])];
        let e = err(&batch, b"[]");
        assert_eq!(e.kind, FormatErrorKind::Invalid);
        assert_eq!(e.field.as_deref(), Some("content-type"));
        assert!(e.message.contains("batch"), "{e}");
        // Another structured format is unsupported, like a 415 at HTTP ingress.
        for ct in ["application/cloudevents+avro", "application/cloudevents"] {
            let e = err(&[("Content-Type", ct.as_bytes())], b"{}");
            assert_eq!(e.kind, FormatErrorKind::UnsupportedMediaType, "{ct}");
        }
    }

    #[test]
    fn rule49_mode_detection() {
        let one: &[u8] = br#"{"specversion":"1.0","id":"json","source":"/s","type":"t"}"#;
        // Structured wins over ce- headers; header name, value case and parameters do not matter.
        for (name, ct) in [
            ("Content-Type", "application/cloudevents+json"),
            (
                "content-type",
                "Application/CloudEvents+JSON; charset=UTF-8",
            ),
            ("CONTENT-TYPE", "  application/cloudevents+json"),
        ] {
            let mut h = base();
            h.push((name, ct.as_bytes()));
            assert_eq!(decode(&h, one).unwrap().id, "json", "{name}: {ct}");
        }
        // Any other content type is binary mode, and is not the datacontenttype.
        let h = with(("Content-Type", b"text/plain"));
        let e = decode(&h, b"hi").unwrap();
        assert_eq!(e.id, "A234-1234-1234");
        assert_eq!(e.datacontenttype, None);
        assert_eq!(e.data, Data::Text(Bytes::from_static(b"hi")));
        // Without ce-specversion and without a structured content type: not a CloudEvent.
        let e = err(&[("Content-Type", &b"application/json"[..])], one);
        assert_eq!(e.field.as_deref(), Some("ce-specversion"));
        assert_eq!(err(&[], b"").field.as_deref(), Some("ce-specversion"));
        // Two Content-Type headers are ambiguous.
        let h = [
            ("Content-Type", &b"application/cloudevents+json"[..]),
            ("content-type", b"text/plain"),
        ];
        assert_eq!(err(&h, one).field.as_deref(), Some("content-type"));
        // A non-UTF-8 non-CloudEvents content type is simply ignored in binary mode.
        assert!(decode(&with(("Content-Type", b"\xff")), b"").is_ok());
    }

    #[test]
    fn rule50_structured_payload_is_utf8_json_format() {
        let e = Event::new("1", "/s", "t");
        let m = encode(&e, ContentMode::Structured);
        assert_eq!(
            m.header("content-type"),
            Some("application/cloudevents+json")
        );
        assert_eq!(m.headers.len(), 1, "no ce- headers in structured mode");
        assert!(std::str::from_utf8(&m.payload).is_ok());
        assert_eq!(json::parse_event(&m.payload).unwrap(), e);
        let h = [("Content-Type", &b"application/cloudevents+json"[..])];
        for bad in [&b""[..], b"\xff\xfe", b"{", b"[]"] {
            assert!(decode(&h, bad).is_err(), "{bad:?}");
        }
        // Invalid JSON-format events are rejected like at HTTP ingress.
        let bad: &[u8] = br#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#;
        assert_eq!(decode(&h, bad).unwrap_err().field.as_deref(), Some("id"));
    }

    #[test]
    fn rule51_every_attribute_is_a_ce_header_including_datacontenttype() {
        let mut e = Event::new("1", "/s", "t");
        e.subject = Some("sub".into());
        e.time = Some("2018-04-05T17:31:00Z".into());
        e.dataschema = Some("https://example.com/s".into());
        e.datacontenttype = Some("text/plain".into());
        e.data = Data::Text(Bytes::from_static(b"x"));
        e.set_extension("myext", ExtValue::Int(5));
        e.set_extension("flag", ExtValue::Bool(true));
        let m = encode(&e, ContentMode::Binary);
        let names: Vec<&str> = m.headers.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            names,
            [
                "ce-specversion",
                "ce-id",
                "ce-source",
                "ce-type",
                "ce-subject",
                "ce-time",
                "ce-dataschema",
                "ce-datacontenttype",
                "ce-flag",
                "ce-myext"
            ]
        );
        assert_eq!(m.header("ce-datacontenttype"), Some("text/plain"));
        assert_eq!(m.header("Content-Type"), None);
        assert_eq!(m.header("ce-myext"), Some("5"));
        assert_eq!(m.header("ce-flag"), Some("true"));
        // Binary-mode extensions carry no type: they decode as strings (like the HTTP binding).
        let d = decode_message(&m).unwrap();
        assert_eq!(d.extension("myext"), Some(&ExtValue::String("5".into())));
        assert_eq!(d.datacontenttype.as_deref(), Some("text/plain"));
        // JSON data without a datacontenttype is declared application/json, as in HTTP.
        let mut j = Event::new("1", "/s", "t");
        j.data = Data::Json(Bytes::from_static(b"{}"));
        let m = encode(&j, ContentMode::Binary);
        assert_eq!(m.header("ce-datacontenttype"), Some("application/json"));
        // 0.3 uses ce-schemaurl.
        let mut old = e.clone();
        old.specversion = SpecVersion::V03;
        let m = encode(&old, ContentMode::Binary);
        assert_eq!(m.header("ce-schemaurl"), Some("https://example.com/s"));
        assert_eq!(m.header("ce-dataschema"), None);
        // Header names are case-insensitive on decode.
        let h = [
            ("CE-SpecVersion", &b"1.0"[..]),
            ("Ce-Id", b"1"),
            ("ce-SOURCE", b"/s"),
            ("ce-type", b"t"),
            ("CE-MYEXT", b"x"),
            ("CE-DataContentType", b"text/plain"),
            ("other", b"ignored"),
        ];
        let d = decode(&h, b"hi").unwrap();
        assert_eq!(d.extension("myext"), Some(&ExtValue::String("x".into())));
        assert_eq!(d.extensions.len(), 1);
        assert_eq!(d.datacontenttype.as_deref(), Some("text/plain"));
    }

    #[test]
    fn rule51_binary_validation_like_http() {
        let without = |name: &str| -> Vec<(&'static str, &'static [u8])> {
            base().into_iter().filter(|(k, _)| *k != name).collect()
        };
        for attr in ["ce-id", "ce-source", "ce-type"] {
            assert_eq!(err(&without(attr), b"").field.as_deref(), Some(attr));
        }
        for (extra, field) in [
            (("ce-id", &b"again"[..]), "ce-id"),
            (("CE-ID", b"again"), "ce-id"),
            (("ce-time", b"2018-04-05T18:31Z"), "ce-time"),
            (("ce-subject", b""), "ce-subject"),
            (("ce-my_ext", b"x"), "ce-my_ext"),
            (("ce-", b"x"), "ce-"),
            (("ce-dataschema", b"not absolute"), "ce-dataschema"),
            (("ce-specversion", b"1.0"), "ce-specversion"),
            (("ce-datacontenttype", b"xyz"), "ce-datacontenttype"),
        ] {
            assert_eq!(
                err(&with(extra), b"x").field.as_deref(),
                Some(field),
                "{extra:?}"
            );
        }
        let mut h = with(("ce-datacontenttype", b"text/plain"));
        h.push(("Ce-DataContentType", b"text/html"));
        assert_eq!(err(&h, b"").field.as_deref(), Some("ce-datacontenttype"));
        let mut h = base();
        h.push(("ce-x", b"1"));
        h.push(("ce-X", b"2"));
        assert_eq!(err(&h, b"").field.as_deref(), Some("ce-x"));
        let mut h = base();
        h[0] = ("ce-specversion", b"19.0");
        assert_eq!(err(&h, b"").field.as_deref(), Some("ce-specversion"));
        // 0.3 with base64 encoding and schemaurl.
        let mut h = base();
        h[0] = ("ce-specversion", b"0.3");
        h.push(("ce-datacontentencoding", b"base64"));
        h.push(("ce-schemaurl", b"https://example.com/s"));
        let e = decode(&h, b"AAH/").unwrap();
        assert_eq!(e.data, Data::Binary(Bytes::from_static(&[0, 1, 255])));
        assert_eq!(e.dataschema.as_deref(), Some("https://example.com/s"));
        assert_eq!(err(&h, b"!!").field.as_deref(), Some("data"));
    }

    #[test]
    fn rule52_payload_is_the_data() {
        let mut e = Event::new("1", "/s", "t");
        let m = encode(&e, ContentMode::Binary);
        assert!(m.payload.is_empty());
        assert_eq!(m.header("ce-datacontenttype"), None);
        assert_eq!(decode(&base(), b"").unwrap().data, Data::None);
        let data = Bytes::from_static(&[0, 1, 2, 255]);
        e.data = Data::Text(data.clone());
        let m = encode(&e, ContentMode::Binary);
        assert_eq!(m.payload, data);
        // The payload is shared with the event, not copied.
        assert_eq!(m.payload.as_ptr(), data.as_ptr());
        assert_eq!(
            decode(&base(), &[0, 1, 2, 255]).unwrap().data,
            Data::Text(data)
        );
    }

    #[test]
    fn rule53_percent_encoding_and_quoted_strings_like_http() {
        let mut e = Event::new("id 100%", "/s", "t");
        e.subject = Some("Euro € 😀".into());
        e.set_extension("q", ExtValue::String("a\"b".into()));
        let m = encode(&e, ContentMode::Binary);
        assert_eq!(m.header("ce-id"), Some("id%20100%25"));
        assert_eq!(
            m.header("ce-subject"),
            Some("Euro%20%E2%82%AC%20%F0%9F%98%80")
        );
        assert_eq!(m.header("ce-q"), Some("a%22b"));
        assert!(m
            .headers
            .iter()
            .all(|(_, v)| v.bytes().all(|b| (0x21..=0x7e).contains(&b))));
        assert_eq!(decode_message(&m).unwrap(), e);
        // Lower-case hex, unnecessary encodings and quoted strings decode.
        let d = decode(&with(("ce-subject", b"%41%62c%e2%82%ac")), b"").unwrap();
        assert_eq!(d.subject.as_deref(), Some("Abc€"));
        let d = decode(&with(("ce-subject", br#""a\"b%20c""#)), b"").unwrap();
        assert_eq!(d.subject.as_deref(), Some("a\"b c"));
        // Malformed encodings name the header.
        for bad in [&b"%"[..], b"%zz", b"%C0%A0", b"\xff", br#""a"b""#] {
            let e = err(&with(("ce-subject", bad)), b"");
            assert_eq!(e.field.as_deref(), Some("ce-subject"), "{bad:?}");
        }
        let mut h = base();
        h[0] = ("ce-specversion", b"%31.0");
        assert_eq!(decode(&h, b"").unwrap().specversion, SpecVersion::V10);
    }

    /// A cheap, deterministic stand-in for the `nats_message` fuzz target: random messages built from
    /// interesting names and values never panic, and whatever decodes is valid and re-encodes.
    #[test]
    fn decode_never_panics_on_random_messages() {
        let mut next = binary::xorshift();
        let names = [
            "ce-specversion",
            "ce-id",
            "ce-source",
            "ce-type",
            "ce-time",
            "ce-subject",
            "ce-dataschema",
            "ce-schemaurl",
            "ce-datacontentencoding",
            "ce-datacontenttype",
            "Content-Type",
            "content-type",
            "CE-ID",
            "ce-",
            "ce-x",
            "other",
        ];
        let values: [&[u8]; 16] = [
            b"1.0",
            b"0.3",
            b"",
            b"\xff",
            b"base64",
            b"application/cloudevents+json",
            b"application/cloudevents-batch+json",
            b"application/cloudevents+avro",
            b"2018-04-05T17:31:00Z",
            b"/s",
            b"x%20y",
            b"%",
            b"\"q\\\"\"",
            b"text/plain",
            b"https://example.com/s",
            b"AAH/",
        ];
        let payloads: [&[u8]; 5] = [
            b"",
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}"#,
            br#"{"specversion":"0.3","id":"1","source":"/s","type":"t","x":"#,
            b"\x00\xff",
            b"AAH/",
        ];
        let mut decoded = 0;
        for _ in 0..20_000 {
            // Half of the messages start with valid required attributes.
            let mut headers = if next() % 2 == 0 { base() } else { Vec::new() };
            for _ in 0..next() % 6 {
                headers.push((names[next() % names.len()], values[next() % values.len()]));
            }
            let payload = payloads[next() % payloads.len()];
            if let Ok(e) = decode(&headers, payload) {
                decoded += 1;
                validate_event(&e).unwrap();
                for mode in [ContentMode::Binary, ContentMode::Structured] {
                    let again = decode_message(&encode(&e, mode)).unwrap();
                    assert_eq!((&again.id, &again.time), (&e.id, &e.time));
                }
            }
        }
        assert!(decoded > 1000, "only {decoded} messages decoded");
    }
}
