//! The CloudEvents Kafka protocol binding (rules 40–47 of `cloudevents-rules.md`, section 4.4) and the
//! Knative KafkaSource wrapping of records that are not CloudEvents.
//!
//! Pure functions over plain byte slices: no rdkafka types, so the Kafka channel backend, KafkaSink and
//! KafkaSource share one implementation, and the parser can be fuzzed (`fuzz/fuzz_targets/kafka_record.rs`).
//!
//! - [`encode`]: an [`Event`] → a [`KafkaRecord`] in binary mode (`ce_<attr>` headers, `content-type`,
//!   data as the value, null value when there is no data) or structured mode (JSON format value,
//!   `content-type: application/cloudevents+json; charset=utf-8`). The key is the `partitionkey`
//!   extension as-is when present (rule 43; the extension stays an attribute too).
//! - [`decode`]: headers + value → [`Decoded::Event`] (validated exactly like HTTP ingress), or
//!   [`Decoded::NotCloudEvent`] when the record has neither a `ce_specversion` header nor a structured
//!   `content-type`.
//! - [`wrap_raw`]: a record that is not a CloudEvent → the event Knative's KafkaSource sends for it.
//!
//! Kafka header names are case-sensitive byte strings; like the Go and Java SDKs, header names are
//! matched case-insensitively on decode (`CE_ID` is `ce_id`, `Content-Type` is `content-type`).
//! Header values carry no percent-encoding (rule 46): they must be UTF-8 and are taken as-is.

use crate::config::ContentMode;
use crate::event::{Data, Event, ExtValue};
use crate::format::binary::{
    self, attribute_name, essence, header_name, starts_with_ignore_case, AttributeDecoder, KAFKA,
};
use crate::format::json;
use crate::format::validate::{is_media_type, is_valid_string};
use crate::format::FormatError;
use base64::Engine;
use bytes::Bytes;
use std::borrow::Cow;

/// Media type of a structured-mode JSON event, as written into the `content-type` header.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// Name of the header that carries `datacontenttype` (binary) or the format (structured).
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// Type of the events [`wrap_raw`] builds (Knative's KafkaSource).
pub const KAFKA_EVENT_TYPE: &str = "dev.knative.kafka.event";
/// Extension holding the partition key; its value becomes the record key on encode (rule 43).
pub const PARTITION_KEY_EXTENSION: &str = "partitionkey";

/// A Kafka record produced by [`encode`], borrowing from the event where it can (binary-mode data and
/// string attributes are not copied; only the structured JSON value and integer/boolean extension
/// values are built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord<'a> {
    /// Record key: the `partitionkey` extension, or `None` (Kafka's partitioner decides).
    pub key: Option<Cow<'a, [u8]>>,
    /// Record headers in order: `ce_specversion`, `ce_id`, `ce_source`, `ce_type`, optional core
    /// attributes, extensions (sorted), then `content-type` when there is one.
    pub headers: Vec<(Cow<'static, str>, Cow<'a, [u8]>)>,
    /// Record value; `None` is a null value (binary mode without data, rule 45).
    pub value: Option<Cow<'a, [u8]>>,
}

/// What [`decode`] found in a record.
// A decoded event is the common case: boxing it would add an allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A valid CloudEvent (binary or structured mode).
    Event(Event),
    /// No `ce_specversion` header and no structured `content-type`: a plain record (see [`wrap_raw`]).
    NotCloudEvent,
}

fn ext_bytes(v: &ExtValue) -> Cow<'_, [u8]> {
    match v.to_canonical() {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// Encodes an event as a Kafka record in the given content mode.
///
/// Binary (rules 41, 44–46): every attribute except `datacontenttype` is a `ce_<name>` header with its
/// canonical string value (no percent-encoding); `datacontenttype` is the `content-type` header
/// (`application/json` when the data arrived as JSON and there is no `datacontenttype`, as in the HTTP
/// binding); the value is the data bytes as-is, or null without data. 0.3 events use `ce_schemaurl`.
///
/// Structured (rule 47): the value is the JSON format (never null, even without data) and
/// `content-type` is [`STRUCTURED_CONTENT_TYPE`].
///
/// In both modes the key is the `partitionkey` extension when present (rule 43), which also stays an
/// attribute. Every extension is written, `knativebrokerttl` included: callers that must not let it
/// leave the broker remove it first.
pub fn encode(event: &Event, mode: ContentMode) -> KafkaRecord<'_> {
    let key = event.extension(PARTITION_KEY_EXTENSION).map(ext_bytes);
    match mode {
        ContentMode::Structured => {
            let mut out = Vec::with_capacity(event.approx_size() + 192);
            json::write_event(event, &mut out);
            KafkaRecord {
                key,
                headers: vec![(
                    Cow::Borrowed(CONTENT_TYPE_HEADER),
                    Cow::Borrowed(STRUCTURED_CONTENT_TYPE.as_bytes()),
                )],
                value: Some(Cow::Owned(out)),
            }
        }
        ContentMode::Binary => {
            let mut headers = Vec::with_capacity(8 + event.extensions.len());
            for (attr, v) in binary::core_attributes(event) {
                headers.push((header_name(&KAFKA, attr), Cow::Borrowed(v.as_bytes())));
            }
            for (name, value) in &event.extensions {
                headers.push((header_name(&KAFKA, name), ext_bytes(value)));
            }
            if let Some(ct) = binary::content_type(event) {
                headers.push((
                    Cow::Borrowed(CONTENT_TYPE_HEADER),
                    Cow::Borrowed(ct.as_bytes()),
                ));
            }
            KafkaRecord {
                key,
                headers,
                value: event.data.bytes().map(|b| Cow::Borrowed(&b[..])),
            }
        }
    }
}

/// A header value as UTF-8: a null value or invalid UTF-8 is an error naming the header (rule 46).
fn utf8_value<'v>(field: &str, value: Option<&'v [u8]>) -> Result<&'v str, FormatError> {
    let value = value
        .ok_or_else(|| FormatError::invalid(field, format!("header '{field}' has a null value")))?;
    std::str::from_utf8(value)
        .map_err(|_| FormatError::invalid(field, format!("header '{field}' is not valid UTF-8")))
}

/// Decodes a consumed record.
///
/// Mode detection (rule 42): a `content-type` header starting with `application/cloudevents`
/// (case-insensitive) means structured mode — only `application/cloudevents+json` is supported
/// (`UnsupportedMediaType` otherwise) and a batch media type is invalid because Kafka has no batch
/// mode (rule 40); the value is parsed with the JSON format, `ce_` headers are ignored (rule 47).
/// Otherwise a `ce_specversion` header means binary mode (rules 41, 44–46): attributes from `ce_`
/// headers (UTF-8, no percent-decoding; extensions are strings, as in the HTTP binary binding),
/// `datacontenttype` from `content-type` (`ce_datacontenttype` is rejected, as in HTTP), data = the
/// value as-is (a null or empty value is no data). Anything else is [`Decoded::NotCloudEvent`].
///
/// A header that appears twice for one attribute, a null or non-UTF-8 attribute header, and every
/// CloudEvents validation rule give a [`FormatError`] whose field names the header. The key is not
/// read: it is transport metadata and never becomes an attribute (rule 43).
pub fn decode(
    key: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
    value: Option<&[u8]>,
) -> Result<Decoded, FormatError> {
    let _ = key;
    let mut content_type: Option<&str> = None;
    let mut has_specversion = false;
    for (name, v) in headers {
        if name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
            if content_type.is_some() {
                return Err(FormatError::invalid(
                    CONTENT_TYPE_HEADER,
                    "header 'content-type' appears more than once",
                ));
            }
            // A null content-type is no content type.
            if v.is_some() {
                content_type = Some(utf8_value(CONTENT_TYPE_HEADER, *v)?);
            }
        } else if name.eq_ignore_ascii_case("ce_specversion") {
            has_specversion = true;
        }
    }
    if let Some(ct) = content_type {
        let trimmed = ct.trim_start();
        if starts_with_ignore_case(trimmed.as_bytes(), b"application/cloudevents-batch") {
            return Err(FormatError::invalid(
                CONTENT_TYPE_HEADER,
                format!(
                    "batch format '{}' is not allowed: Kafka has no batch mode",
                    essence(trimmed)
                ),
            ));
        }
        if starts_with_ignore_case(trimmed.as_bytes(), b"application/cloudevents") {
            if !essence(trimmed).eq_ignore_ascii_case(crate::format::http::STRUCTURED_JSON) {
                return Err(FormatError::unsupported(format!(
                    "unsupported event format '{}': only {} is supported",
                    essence(trimmed),
                    crate::format::http::STRUCTURED_JSON
                )));
            }
            let value = value.ok_or_else(|| {
                FormatError::invalid(
                    "value",
                    "a structured-mode record must have a value (it has a null value)",
                )
            })?;
            return json::parse_event(value).map(Decoded::Event);
        }
    }
    if !has_specversion {
        return Ok(Decoded::NotCloudEvent);
    }
    decode_binary(headers, content_type, value).map(Decoded::Event)
}

fn decode_binary(
    headers: &[(&str, Option<&[u8]>)],
    content_type: Option<&str>,
    value: Option<&[u8]>,
) -> Result<Event, FormatError> {
    let mut specversion = None;
    // Attribute headers other than specversion, validated once the specversion is known.
    for (name, v) in headers {
        let Some(attr) = attribute_name(&KAFKA, name) else {
            continue;
        };
        if attr != "specversion" {
            continue;
        }
        let field = "ce_specversion";
        if specversion.is_some() {
            return Err(binary::duplicate(field));
        }
        specversion = Some(binary::specversion(field, utf8_value(field, *v)?)?);
    }
    let Some(specversion) = specversion else {
        return Err(FormatError::invalid(
            "ce_specversion",
            "missing required header 'ce_specversion' (not a CloudEvent)",
        ));
    };
    let mut attributes = AttributeDecoder::new(specversion);
    for (name, v) in headers {
        let Some(attr) = attribute_name(&KAFKA, name) else {
            continue;
        };
        let attr = attr.as_ref();
        match attr {
            "specversion" => continue,
            "datacontenttype" => {
                return Err(FormatError::invalid(
                    "ce_datacontenttype",
                    "ce_datacontenttype is not allowed in binary mode: use the content-type header",
                ))
            }
            _ => {}
        }
        let field = KAFKA.field(attr);
        let s = utf8_value(&field, *v)?;
        attributes.set(attr, &field, s.to_owned())?;
    }
    let (mut event, base64_value) = attributes.finish(&KAFKA)?;
    event.datacontenttype = content_type.map(|ct| ct.trim().to_owned());
    let value = value.unwrap_or_default();
    event.data = binary::data(value, base64_value, "value", || {
        Bytes::copy_from_slice(value)
    })?;
    binary::validate(event, &KAFKA)
}

/// Where a record that is not a CloudEvent came from, for [`wrap_raw`].
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Record timestamp in milliseconds since the Unix epoch, when the broker reported one.
    pub timestamp_ms: Option<i64>,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record headers.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
    /// Record value.
    pub value: Option<&'a [u8]>,
}

/// The event Knative's KafkaSource `namespace/name` sends for a record that is not a CloudEvent:
///
/// - `type` [`KAFKA_EVENT_TYPE`] (`dev.knative.kafka.event`),
/// - `source` `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`,
/// - `subject` `partition:<p>#<offset>`, `id` `partition:<p>/offset:<offset>`,
/// - `time` the record timestamp when there is one,
/// - extensions `key` and `partitionkey` when the record has a key: the key as UTF-8, or its base64
///   (standard alphabet, padded) when it is not valid UTF-8 or not a valid CloudEvents String
///   (control characters, Unicode noncharacters),
/// - `datacontenttype` from a `content-type` header when it is a valid UTF-8 media type (otherwise
///   none), data = the value as-is (a null or empty value is no data).
///
/// Knative also maps the other record headers to `kafkaheader<name>` extensions when the name is
/// valid; Switchyard ignores them. The result is always a valid event.
pub fn wrap_raw(namespace: &str, source_name: &str, record: &RawRecord<'_>) -> Event {
    let RawRecord {
        topic,
        partition,
        offset,
        ..
    } = *record;
    let mut event = Event::new(
        format!("partition:{partition}/offset:{offset}"),
        format!("/apis/v1/namespaces/{namespace}/kafkasources/{source_name}#{topic}"),
        KAFKA_EVENT_TYPE,
    );
    event.subject = Some(format!("partition:{partition}#{offset}"));
    if let Some(ms) = record.timestamp_ms.and_then(|ms| u64::try_from(ms).ok()) {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        event.time = Some(crate::time::format_rfc3339(t));
    }
    if let Some(key) = record.key {
        let key = match std::str::from_utf8(key) {
            Ok(s) if is_valid_string(s) => s.to_owned(),
            _ => base64::engine::general_purpose::STANDARD.encode(key),
        };
        event.extensions.reserve(2);
        event.set_extension("key", ExtValue::String(key.clone()));
        event.set_extension(PARTITION_KEY_EXTENSION, ExtValue::String(key));
    }
    event.datacontenttype = record
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
        .and_then(|(_, v)| std::str::from_utf8((*v)?).ok())
        .map(str::trim)
        .filter(|ct| is_media_type(ct))
        .map(str::to_owned);
    event.data = match record.value {
        None | Some([]) => Data::None,
        Some(v) => Data::Text(Bytes::copy_from_slice(v)),
    };
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SpecVersion;
    use crate::format::validate::validate_event;
    use crate::format::FormatErrorKind;

    /// Decodes an encoded record (as a consumer would see it).
    fn decode_record(r: &KafkaRecord<'_>) -> Result<Decoded, FormatError> {
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_ref(), Some(v.as_ref())))
            .collect();
        decode(r.key.as_deref(), &headers, r.value.as_deref())
    }

    fn event_of(d: Decoded) -> Event {
        match d {
            Decoded::Event(e) => e,
            Decoded::NotCloudEvent => panic!("expected a CloudEvent"),
        }
    }

    fn base() -> Vec<(&'static str, Option<&'static [u8]>)> {
        vec![
            ("ce_specversion", Some(b"1.0")),
            ("ce_id", Some(b"A234-1234-1234")),
            ("ce_source", Some(b"/mycontext")),
            ("ce_type", Some(b"com.example.someevent")),
        ]
    }

    fn err(headers: &[(&str, Option<&[u8]>)], value: Option<&[u8]>) -> FormatError {
        decode(None, headers, value).unwrap_err()
    }

    fn with(
        extra: (&'static str, Option<&'static [u8]>),
    ) -> Vec<(&'static str, Option<&'static [u8]>)> {
        let mut h = base();
        h.push(extra);
        h
    }

    fn sample_events() -> Vec<Event> {
        let [e, with_text, bytes] = binary::sample_events("text/plain; charset=utf-8");
        let mut keyed = with_text.clone();
        keyed.set_extension("partitionkey", ExtValue::String("order-42".into()));
        let mut v03 = with_text.clone();
        v03.specversion = SpecVersion::V03;
        vec![e, with_text, bytes, keyed, v03]
    }

    #[test]
    fn binary_round_trip() {
        for e in sample_events() {
            let r = encode(&e, ContentMode::Binary);
            assert_eq!(event_of(decode_record(&r).unwrap()), e);
        }
    }

    #[test]
    fn structured_round_trip() {
        let mut events = sample_events();
        binary::structured_samples(&mut events);
        let mut typed = Event::new("1", "/s", "t");
        typed.set_extension("i", ExtValue::Int(-7));
        typed.set_extension("b", ExtValue::Bool(false));
        events.push(typed);
        for e in events {
            let r = encode(&e, ContentMode::Structured);
            assert_eq!(
                r.headers,
                vec![(
                    Cow::Borrowed("content-type"),
                    Cow::Borrowed(STRUCTURED_CONTENT_TYPE.as_bytes())
                )]
            );
            assert_eq!(event_of(decode_record(&r).unwrap()), e);
        }
    }

    #[test]
    fn rule40_structured_json_and_no_batch_mode() {
        let one: &[u8] = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
        let h = [("content-type", Some(&b"application/cloudevents+json"[..]))];
        assert_eq!(event_of(decode(None, &h, Some(one)).unwrap()).id, "1");
        let h = [(
            "content-type",
            Some(&b"application/cloudevents-batch+json"[..]),
        )];
        let e = err(&h, Some(b"[]"));
        assert_eq!(e.kind, FormatErrorKind::Invalid);
        assert_eq!(e.field.as_deref(), Some("content-type"));
        for ct in ["application/cloudevents+avro", "application/cloudevents"] {
            let h = [("content-type", Some(ct.as_bytes()))];
            assert_eq!(
                err(&h, Some(one)).kind,
                FormatErrorKind::UnsupportedMediaType,
                "{ct}"
            );
        }
    }

    #[test]
    fn rule41_binary_value_is_data_as_is_and_attributes_are_headers() {
        let mut e = Event::new("1", "/s", "t");
        e.datacontenttype = Some("application/octet-stream".into());
        e.data = Data::Text(Bytes::from_static(&[0, 159, 146, 150]));
        e.set_extension("myext", ExtValue::String("v".into()));
        let r = encode(&e, ContentMode::Binary);
        assert_eq!(r.value.as_deref(), Some(&[0, 159, 146, 150][..]));
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            names,
            [
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_myext",
                "content-type"
            ]
        );
        let h = [
            ("ce_specversion", Some(&b"1.0"[..])),
            ("ce_id", Some(b"1")),
            ("ce_source", Some(b"/s")),
            ("ce_type", Some(b"t")),
        ];
        let d = event_of(decode(None, &h, Some(&[0, 255])).unwrap());
        assert_eq!(d.data, Data::Text(Bytes::from_static(&[0, 255])));
        assert_eq!(d.datacontenttype, None);
    }

    #[test]
    fn rule42_mode_detection() {
        let one: &[u8] = br#"{"specversion":"1.0","id":"json","source":"/s","type":"t"}"#;
        // Structured wins over ce_ headers, case-insensitively, with parameters.
        for ct in [
            "application/cloudevents+json",
            "Application/CloudEvents+JSON; charset=UTF-8",
        ] {
            let mut h = base();
            h.push(("content-type", Some(ct.as_bytes())));
            assert_eq!(event_of(decode(None, &h, Some(one)).unwrap()).id, "json");
        }
        // Without ce_specversion and without a structured content type: not a CloudEvent.
        assert_eq!(
            decode(None, &[], Some(b"hello")).unwrap(),
            Decoded::NotCloudEvent
        );
        let h = [
            ("content-type", Some(&b"application/json"[..])),
            ("ce_id", Some(b"1")),
        ];
        assert_eq!(
            decode(Some(b"k"), &h, Some(one)).unwrap(),
            Decoded::NotCloudEvent
        );
        assert_eq!(decode(None, &[], None).unwrap(), Decoded::NotCloudEvent);
        // A null content-type is no content type.
        let mut h = base();
        h.push(("content-type", None));
        assert_eq!(
            event_of(decode(None, &h, None).unwrap()).datacontenttype,
            None
        );
        // Header names are matched case-insensitively.
        let h = [
            ("CE_SpecVersion", Some(&b"1.0"[..])),
            ("Ce_Id", Some(b"1")),
            ("ce_SOURCE", Some(b"/s")),
            ("ce_type", Some(b"t")),
            ("CE_MYEXT", Some(b"x")),
            ("Content-Type", Some(b"text/plain")),
        ];
        let e = event_of(decode(None, &h, Some(b"hi")).unwrap());
        assert_eq!(e.extension("myext"), Some(&ExtValue::String("x".into())));
        assert_eq!(e.datacontenttype.as_deref(), Some("text/plain"));
    }

    #[test]
    fn rule43_partitionkey_is_the_key_and_stays_an_attribute() {
        let mut e = Event::new("1", "/s", "t");
        assert_eq!(encode(&e, ContentMode::Binary).key, None);
        assert_eq!(encode(&e, ContentMode::Structured).key, None);
        e.set_extension("partitionkey", ExtValue::String("user-7".into()));
        for mode in [ContentMode::Binary, ContentMode::Structured] {
            let r = encode(&e, mode);
            assert_eq!(r.key.as_deref(), Some(&b"user-7"[..]));
            let d = event_of(decode_record(&r).unwrap());
            assert_eq!(
                d.extension("partitionkey"),
                Some(&ExtValue::String("user-7".into()))
            );
        }
        // A record key never becomes an attribute on decode.
        let d = event_of(decode(Some(b"other"), &base(), None).unwrap());
        assert!(d.extensions.is_empty());
    }

    #[test]
    fn rule44_content_type_header_is_datacontenttype() {
        let mut e = Event::new("1", "/s", "t");
        e.datacontenttype = Some("text/plain; charset=utf-8".into());
        e.data = Data::Text(Bytes::from_static(b"x"));
        let r = encode(&e, ContentMode::Binary);
        assert!(r.headers.iter().all(|(k, _)| k != "ce_datacontenttype"));
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.as_ref() == b"text/plain; charset=utf-8"));
        // JSON data without a datacontenttype is declared application/json, as in HTTP.
        let mut j = Event::new("1", "/s", "t");
        j.data = Data::Json(Bytes::from_static(b"{}"));
        let r = encode(&j, ContentMode::Binary);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.as_ref() == b"application/json"));
        // ce_datacontenttype is not the binding's header.
        let e = err(&with(("ce_datacontenttype", Some(b"text/plain"))), None);
        assert_eq!(e.field.as_deref(), Some("ce_datacontenttype"));
        // An invalid content type is named as the content-type header.
        let e = err(&with(("content-type", Some(b"xyz"))), Some(b"x"));
        assert_eq!(e.field.as_deref(), Some("content-type"));
    }

    #[test]
    fn rule45_no_data_is_a_null_value() {
        let e = Event::new("1", "/s", "t");
        let r = encode(&e, ContentMode::Binary);
        assert_eq!(r.value, None);
        assert!(r.headers.iter().all(|(k, _)| k != "content-type"));
        assert_eq!(
            event_of(decode(None, &base(), None).unwrap()).data,
            Data::None
        );
        // An empty value is no data too, as an empty HTTP body is.
        assert_eq!(
            event_of(decode(None, &base(), Some(b"")).unwrap()).data,
            Data::None
        );
    }

    #[test]
    fn rule46_headers_are_utf8_ce_underscore_without_percent_encoding() {
        let mut e = Event::new("id €/1 100%", "/s", "t");
        e.set_extension("n", ExtValue::Int(5));
        e.set_extension("b", ExtValue::Bool(true));
        let r = encode(&e, ContentMode::Binary);
        let get = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_ref().to_vec())
        };
        assert_eq!(get("ce_specversion").as_deref(), Some(&b"1.0"[..]));
        assert_eq!(get("ce_id").as_deref(), Some("id €/1 100%".as_bytes()));
        assert_eq!(get("ce_n").as_deref(), Some(&b"5"[..]));
        assert_eq!(get("ce_b").as_deref(), Some(&b"true"[..]));
        // Binary-mode extensions carry no type: they decode as strings (like the HTTP binding).
        let d = event_of(decode_record(&r).unwrap());
        assert_eq!(d.extension("n"), Some(&ExtValue::String("5".into())));
        assert_eq!(d.id, "id €/1 100%");
        // A percent sequence is taken literally.
        let d = event_of(decode(None, &with(("ce_subject", Some(b"a%20b"))), None).unwrap());
        assert_eq!(d.subject.as_deref(), Some("a%20b"));
        // Non-UTF-8 and null values name the header.
        let e = err(&with(("ce_subject", Some(b"\xe2\x82"))), None);
        assert_eq!(e.field.as_deref(), Some("ce_subject"));
        assert!(e.message.contains("UTF-8"), "{e}");
        let e = err(&with(("ce_subject", None)), None);
        assert_eq!(e.field.as_deref(), Some("ce_subject"));
        let e = err(&with(("content-type", Some(b"\xff"))), None);
        assert_eq!(e.field.as_deref(), Some("content-type"));
        let mut h = base();
        h[0] = ("ce_specversion", Some(b"\xff"));
        assert_eq!(err(&h, None).field.as_deref(), Some("ce_specversion"));
    }

    #[test]
    fn rule46_binary_validation_like_http() {
        let without = |name: &str| -> Vec<(&'static str, Option<&'static [u8]>)> {
            base().into_iter().filter(|(k, _)| *k != name).collect()
        };
        for attr in ["ce_id", "ce_source", "ce_type"] {
            assert_eq!(err(&without(attr), None).field.as_deref(), Some(attr));
        }
        for (extra, field) in [
            (("ce_id", Some(&b"again"[..])), "ce_id"),
            (("CE_ID", Some(b"again")), "ce_id"),
            (("ce_time", Some(b"2018-04-05T18:31Z")), "ce_time"),
            (("ce_subject", Some(b"")), "ce_subject"),
            (("ce_my-ext", Some(b"x")), "ce_my-ext"),
            (("ce_", Some(b"x")), "ce_"),
            (("ce_dataschema", Some(b"not absolute")), "ce_dataschema"),
            (("ce_specversion", Some(b"1.0")), "ce_specversion"),
            (("content-type", Some(b"text/plain")), "content-type"),
        ] {
            let mut h = with(extra);
            if field == "content-type" {
                h.push(("content-type", Some(b"text/plain")));
            }
            assert_eq!(err(&h, None).field.as_deref(), Some(field), "{extra:?}");
        }
        let mut h = base();
        h.push(("ce_x", Some(b"1")));
        h.push(("ce_X", Some(b"2")));
        assert_eq!(err(&h, None).field.as_deref(), Some("ce_x"));
        let mut h = base();
        h[0] = ("ce_specversion", Some(b"19.0"));
        assert_eq!(err(&h, None).field.as_deref(), Some("ce_specversion"));
        // 0.3 with base64 encoding and schemaurl.
        let mut h = base();
        h[0] = ("ce_specversion", Some(b"0.3"));
        h.push(("ce_datacontentencoding", Some(b"base64")));
        h.push(("ce_schemaurl", Some(b"https://example.com/s")));
        let e = event_of(decode(None, &h, Some(b"AAH/")).unwrap());
        assert_eq!(e.data, Data::Binary(Bytes::from_static(&[0, 1, 255])));
        assert_eq!(e.dataschema.as_deref(), Some("https://example.com/s"));
        let e = err(&h, Some(b"!!"));
        assert_eq!(e.field.as_deref(), Some("data"));
    }

    #[test]
    fn rule47_structured_value_is_never_null() {
        let e = Event::new("1", "/s", "t");
        let r = encode(&e, ContentMode::Structured);
        let v = r.value.as_deref().unwrap();
        assert_eq!(json::parse_event(v).unwrap(), e);
        let h = [("content-type", Some(&b"application/cloudevents+json"[..]))];
        let err = decode(None, &h, None).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("value"));
        // Invalid JSON-format events are rejected like at HTTP ingress.
        let bad: &[u8] = br#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#;
        assert_eq!(
            decode(None, &h, Some(bad)).unwrap_err().field.as_deref(),
            Some("id")
        );
    }

    /// A cheap, deterministic stand-in for the `kafka_record` fuzz target: random records built from
    /// interesting names and values never panic, and whatever decodes is valid and re-encodes.
    #[test]
    fn decode_never_panics_on_random_records() {
        let mut next = binary::xorshift();
        let names = [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "ce_dataschema",
            "ce_schemaurl",
            "ce_datacontentencoding",
            "ce_datacontenttype",
            "content-type",
            "Content-Type",
            "CE_ID",
            "ce_",
            "ce_x",
            "other",
        ];
        let values: [&[u8]; 14] = [
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
            b"x y",
            b"text/plain",
            b"https://example.com/s",
            b"AAH/",
        ];
        let bodies: [Option<&[u8]>; 6] = [
            None,
            Some(b""),
            Some(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}"#),
            Some(br#"{"specversion":"0.3","id":"1","source":"/s","type":"t","x":"#),
            Some(b"\x00\xff"),
            Some(b"AAH/"),
        ];
        let mut decoded = 0;
        for _ in 0..20_000 {
            // Half of the records start with valid required attributes.
            let mut headers = if next() % 2 == 0 { base() } else { Vec::new() };
            for _ in 0..next() % 6 {
                let name = names[next() % names.len()];
                let value = (next() % 12 != 0).then(|| values[next() % values.len()]);
                headers.push((name, value));
            }
            let value = bodies[next() % bodies.len()];
            let keys: [&[u8]; 3] = [b"k", b"a\nb", b"\xff"];
            let key = (next() % 2 == 0).then(|| keys[next() % keys.len()]);
            let rec = RawRecord {
                topic: "t",
                partition: 0,
                offset: 1,
                timestamp_ms: Some(1),
                key,
                headers: &headers,
                value,
            };
            validate_event(&wrap_raw("ns", "s", &rec)).unwrap();
            if let Ok(Decoded::Event(e)) = decode(key, &headers, value) {
                decoded += 1;
                validate_event(&e).unwrap();
                for mode in [ContentMode::Binary, ContentMode::Structured] {
                    let again = event_of(decode_record(&encode(&e, mode)).unwrap());
                    assert_eq!((&again.id, &again.time), (&e.id, &e.time));
                }
            }
        }
        assert!(decoded > 1000, "only {decoded} records decoded");
    }

    #[test]
    fn knative_kafka_source_wrapping() {
        let headers = [
            ("content-type", Some(&b"application/json"[..])),
            ("other", Some(b"ignored")),
        ];
        let rec = RawRecord {
            topic: "orders",
            partition: 2,
            offset: 17,
            timestamp_ms: Some(1_700_000_000_123),
            key: Some(b"user-1"),
            headers: &headers,
            value: Some(br#"{"a":1}"#),
        };
        let e = wrap_raw("default", "my-source", &rec);
        assert_eq!(e.ty, "dev.knative.kafka.event");
        assert_eq!(
            e.source,
            "/apis/v1/namespaces/default/kafkasources/my-source#orders"
        );
        assert_eq!(e.subject.as_deref(), Some("partition:2#17"));
        assert_eq!(e.id, "partition:2/offset:17");
        assert_eq!(e.time.as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(e.extension("key"), Some(&ExtValue::String("user-1".into())));
        assert_eq!(
            e.extension("partitionkey"),
            Some(&ExtValue::String("user-1".into()))
        );
        assert_eq!(e.extensions.len(), 2, "other headers are ignored");
        assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(e.data, Data::Text(Bytes::from_static(br#"{"a":1}"#)));
        validate_event(&e).unwrap();

        // Non-UTF-8 key → base64; no key → no extensions; bad content type → none; null value → no data.
        let headers = [("Content-Type", Some(&b"not a media type"[..]))];
        let rec = RawRecord {
            key: Some(&[0xff, 0x00]),
            headers: &headers,
            value: None,
            timestamp_ms: None,
            ..rec
        };
        let e = wrap_raw("ns", "s", &rec);
        assert_eq!(e.extension("key"), Some(&ExtValue::String("/wA=".into())));
        assert_eq!(e.datacontenttype, None);
        assert_eq!(e.data, Data::None);
        assert_eq!(e.time, None);
        validate_event(&e).unwrap();
        let e = wrap_raw("ns", "s", &RawRecord { key: None, ..rec });
        assert!(e.extensions.is_empty());
        // UTF-8 that is not a valid CloudEvents String (a control character) is base64 too.
        let e = wrap_raw(
            "ns",
            "s",
            &RawRecord {
                key: Some(b"a\nb"),
                ..rec
            },
        );
        assert_eq!(e.extension("key"), Some(&ExtValue::String("YQpi".into())));
        validate_event(&e).unwrap();
    }
}
