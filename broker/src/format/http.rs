//! The CloudEvents HTTP protocol binding: binary, structured and batched content modes, for requests
//! (ingress), subscriber responses (replies) and egress.

use super::binary::{self, percent_value, starts_with_ignore_case, AttributeDecoder};
use super::json;
use super::percent::encode_header_value;
use super::{FormatError, FormatErrorKind};
use crate::event::{Data, Event};
use ::http::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use bytes::Bytes;

/// Media type of a structured-mode JSON event.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// Media type of a JSON batch.
pub const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// A parsed HTTP request: one event (binary or structured mode) or a batch.
// Single events are the common case: boxing them would add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A single event.
    Single(Event),
    /// A batched-mode request (possibly empty).
    Batch(Vec<Event>),
}

/// The content mode a `Content-Type` selects (rule 30).
enum Mode {
    Binary,
    Structured,
    Batch,
}

/// The media type without parameters, trimmed.
fn essence(ct: &[u8]) -> &[u8] {
    let end = ct.iter().position(|&b| b == b';').unwrap_or(ct.len());
    ct[..end].trim_ascii()
}

fn mode(headers: &HeaderMap) -> Result<Mode, FormatError> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(Mode::Binary);
    };
    let ct = ct.as_bytes().trim_ascii_start();
    // Batch prefix first: it also starts with "application/cloudevents".
    let formats = [
        (
            b"application/cloudevents-batch".as_slice(),
            BATCH_JSON,
            Mode::Batch,
            "batch",
        ),
        (
            b"application/cloudevents".as_slice(),
            STRUCTURED_JSON,
            Mode::Structured,
            "event",
        ),
    ];
    for (prefix, supported, mode, what) in formats {
        if starts_with_ignore_case(ct, prefix) {
            if essence(ct).eq_ignore_ascii_case(supported.as_bytes()) {
                return Ok(mode);
            }
            return Err(FormatError::unsupported(format!(
                "unsupported {what} format '{}': only {supported} is supported",
                String::from_utf8_lossy(essence(ct))
            )));
        }
    }
    Ok(Mode::Binary)
}

/// Ingress: mode detection by Content-Type (batch prefix first, case-insensitive), binary mode from ce-* headers.
pub fn parse_request(headers: &HeaderMap, body: Bytes) -> Result<Message, FormatError> {
    match mode(headers)? {
        Mode::Batch => json::parse_batch_bytes(&body).map(Message::Batch),
        Mode::Structured => json::parse_event_bytes(&body).map(Message::Single),
        Mode::Binary => parse_binary(headers, body).map(Message::Single),
    }
}

/// Subscriber response → reply event: Ok(None) when the body is empty and there is no ce-specversion
/// header; Err when there is a non-empty body that is not a valid CloudEvent (or a batch); Ok(Some) otherwise.
pub fn parse_response(headers: &HeaderMap, body: Bytes) -> Result<Option<Event>, FormatError> {
    if body.is_empty() && !headers.contains_key(CE_SPECVERSION) {
        return Ok(None);
    }
    match mode(headers) {
        Ok(Mode::Batch) => Err(FormatError {
            kind: FormatErrorKind::Invalid,
            message: "a reply must be a single event, not a batch".to_owned(),
            field: Some("content-type".to_owned()),
        }),
        Ok(Mode::Structured) => json::parse_event_bytes(&body).map(Some),
        Ok(Mode::Binary) => parse_binary(headers, body).map(Some),
        Err(e) => Err(e),
    }
}

const CE_SPECVERSION: &str = "ce-specversion";

fn parse_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, FormatError> {
    let sv_raw = single_value(headers, CE_SPECVERSION)?.ok_or_else(|| {
        FormatError::invalid(
            CE_SPECVERSION,
            "missing required header 'ce-specversion' (not a CloudEvent)",
        )
    })?;
    let sv = percent_value(CE_SPECVERSION, sv_raw.as_bytes())?;
    let mut attributes = AttributeDecoder::new(binary::specversion(CE_SPECVERSION, &sv)?);
    for name in headers.keys() {
        // `HeaderName`s are always lower case, so `CE-ID` and `Ce-Id` arrive as `ce-id`.
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let value = single_value(headers, name)?
            .ok_or_else(|| FormatError::invalid(name.as_str(), "header has no value"))?;
        let field = name.as_str();
        match attr {
            "specversion" => continue,
            "datacontenttype" => {
                return Err(FormatError::invalid(
                    field,
                    "ce-datacontenttype is not allowed in binary mode: use Content-Type",
                ))
            }
            _ => {}
        }
        attributes.set(attr, field, percent_value(field, value.as_bytes())?)?;
    }
    let (mut event, base64_body) = attributes.finish(&binary::HTTP)?;
    if let Some(ct) = single_value(headers, &CONTENT_TYPE)? {
        match ct.to_str() {
            Ok(s) => event.datacontenttype = Some(s.trim().to_owned()),
            Err(_) => {
                return Err(FormatError::invalid(
                    "content-type",
                    "Content-Type is not visible ASCII",
                ))
            }
        }
    }
    event.data = binary::data(&body, base64_body, "body", || body.clone())?;
    binary::validate(event, &binary::HTTP)
}

/// The one value of a header; two or more values for one attribute are invalid (rule 6).
fn single_value<K: AsHeaderName + Copy + AsRef<str>>(
    headers: &HeaderMap,
    name: K,
) -> Result<Option<&HeaderValue>, FormatError> {
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(binary::duplicate(name.as_ref()));
    }
    Ok(first)
}

fn insert_encoded(headers: &mut HeaderMap, name: HeaderName, value: &str, buf: &mut String) {
    buf.clear();
    encode_header_value(value, buf);
    // The encoding is visible ASCII only, so this cannot fail.
    if let Ok(v) = HeaderValue::from_str(buf) {
        headers.insert(name, v);
    }
}

/// Egress binary mode: inserts ce-* headers (percent-encoded per rule 35), Content-Type from datacontenttype
/// (application/json when data is Data::Json and there is no datacontenttype); returns the body.
pub fn write_binary(event: &Event, headers: &mut HeaderMap) -> Bytes {
    write_binary_impl(event, headers, None)
}

/// [`write_binary`] without the `knativebrokerttl` extension, which never leaves the broker (Switchyard
/// decision 6): the dispatcher's egress encoding, with no header inserted only to be removed again.
pub fn write_binary_egress(event: &Event, headers: &mut HeaderMap) -> Bytes {
    write_binary_impl(event, headers, Some(crate::event::TTL_EXTENSION))
}

/// The `ce-` header name of an extension; the ones Switchyard itself stamps or forwards on every event
/// are static (no allocation), the others are built.
fn extension_header(name: &str, buf: &mut String) -> Option<HeaderName> {
    if let Some(known) = binary::known_header(binary::HTTP.prefix, name) {
        return Some(HeaderName::from_static(known));
    }
    buf.clear();
    buf.push_str("ce-");
    buf.push_str(name);
    HeaderName::from_bytes(buf.as_bytes()).ok()
}

fn write_binary_impl(event: &Event, headers: &mut HeaderMap, skip: Option<&str>) -> Bytes {
    // Core attributes, extensions, Content-Type, and room for the dispatcher's few own headers.
    headers.reserve(8 + event.extensions.len());
    let mut buf = String::with_capacity(64);
    let mut name_buf = String::new();
    for (attr, value) in binary::core_attributes(event) {
        // Every core attribute has a static name.
        let Some(name) = extension_header(attr, &mut name_buf) else {
            continue;
        };
        if attr == "specversion" {
            headers.insert(name, HeaderValue::from_static(event.specversion.as_str()));
        } else {
            insert_encoded(headers, name, value, &mut buf);
        }
    }
    for (name, value) in &event.extensions {
        if skip == Some(name.as_str()) {
            continue;
        }
        if let Some(hn) = extension_header(name, &mut name_buf) {
            insert_encoded(headers, hn, &value.to_canonical(), &mut buf);
        }
    }
    let ct = match (&event.datacontenttype, &event.data) {
        (Some(ct), _) => HeaderValue::from_str(ct).ok(),
        (None, Data::Json(_)) => Some(HeaderValue::from_static("application/json")),
        (None, _) => None,
    };
    match ct {
        Some(v) => {
            headers.insert(CONTENT_TYPE, v);
        }
        None => {
            headers.remove(CONTENT_TYPE);
        }
    }
    event.data.bytes().cloned().unwrap_or_default()
}

/// Egress structured mode: sets Content-Type application/cloudevents+json; returns the body.
pub fn write_structured(event: &Event, headers: &mut HeaderMap) -> Bytes {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(STRUCTURED_JSON));
    let mut out = Vec::with_capacity(event.approx_size() + 192);
    json::write_event(event, &mut out);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExtValue, SpecVersion};

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn binary_base() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("CE-SpecVersion", b"1.0"),
            ("Ce-Id", b"A234-1234-1234"),
            ("ce-source", b"/mycontext"),
            ("CE-TYPE", b"com.example.someevent"),
        ]
    }

    fn single(m: Message) -> Event {
        match m {
            Message::Single(e) => e,
            Message::Batch(_) => panic!("expected a single event"),
        }
    }

    fn err_field(h: &HeaderMap, body: &'static [u8]) -> String {
        let e = parse_request(h, Bytes::from_static(body)).unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::Invalid, "{e}");
        e.field.unwrap_or_default()
    }

    #[test]
    fn binary_mode_case_insensitive_names() {
        let mut pairs = binary_base();
        pairs.push(("Ce-MyExt", b"Euro%20%E2%82%ac"));
        pairs.push(("content-type", b"text/plain; charset=utf-8"));
        pairs.push(("ce-time", b"2018-04-05T17:31:00Z"));
        let e = single(parse_request(&headers(&pairs), Bytes::from_static(b"hello")).unwrap());
        assert_eq!(e.id, "A234-1234-1234");
        assert_eq!(e.ty, "com.example.someevent");
        assert_eq!(
            e.extension("myext"),
            Some(&ExtValue::String("Euro €".into()))
        );
        assert_eq!(
            e.datacontenttype.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(e.data, Data::Text(Bytes::from_static(b"hello")));
        // Empty body and no Content-Type: no data.
        let e = single(parse_request(&headers(&binary_base()), Bytes::new()).unwrap());
        assert_eq!(e.data, Data::None);
        assert_eq!(e.datacontenttype, None);
    }

    #[test]
    fn binary_mode_errors() {
        let without = |name: &str| {
            headers(
                &binary_base()
                    .into_iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(err_field(&without("ce-id"), b""), "ce-id");
        assert_eq!(err_field(&without("ce-source"), b""), "ce-source");
        assert_eq!(err_field(&without("ce-type"), b""), "ce-type");
        assert_eq!(
            err_field(&without("ce-specversion"), b"x"),
            "ce-specversion"
        );
        let with = |extra: (&'static str, &'static [u8])| {
            let mut p = binary_base();
            p.push(extra);
            headers(&p)
        };
        assert_eq!(err_field(&with(("ce-id", b"again")), b""), "ce-id");
        assert_eq!(
            err_field(&with(("ce-subject", b"\xe2\x82")), b""),
            "ce-subject"
        );
        assert_eq!(
            err_field(&with(("ce-subject", b"%C0%A0")), b""),
            "ce-subject"
        );
        assert_eq!(
            err_field(&with(("ce-datacontenttype", b"text/plain")), b""),
            "ce-datacontenttype"
        );
        assert_eq!(
            err_field(&with(("ce-time", b"2018-04-05T18:31Z")), b""),
            "ce-time"
        );
        assert_eq!(err_field(&with(("ce-subject", b"")), b""), "ce-subject");
        assert_eq!(
            err_field(&with(("content-type", b"xyz")), b"x"),
            "content-type"
        );
        assert_eq!(err_field(&with(("ce-my_ext", b"x")), b""), "ce-my_ext");
        let mut p = binary_base();
        p[0] = ("ce-specversion", b"19.0");
        assert_eq!(err_field(&headers(&p), b""), "ce-specversion");
    }

    #[test]
    fn v03_binary_mode() {
        let mut p = binary_base();
        p[0] = ("ce-specversion", b"0.3");
        p.push(("ce-schemaurl", b"https://example.com/schema"));
        let e = single(parse_request(&headers(&p), Bytes::new()).unwrap());
        assert_eq!(e.specversion, SpecVersion::V03);
        assert_eq!(e.dataschema.as_deref(), Some("https://example.com/schema"));
        let mut h = HeaderMap::new();
        write_binary(&e, &mut h);
        assert_eq!(h["ce-schemaurl"], "https://example.com/schema");
        assert!(!h.contains_key("ce-dataschema"));
    }

    #[test]
    fn mode_detection() {
        let one = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
        for ct in [
            "application/cloudevents+json",
            "Application/CloudEvents+JSON; charset=UTF-8",
        ] {
            let h = headers(&[("content-type", ct.as_bytes())]);
            let e = single(parse_request(&h, Bytes::from_static(one)).unwrap());
            assert_eq!(e.id, "1");
        }
        let h = headers(&[("content-type", b"application/cloudevents-batch+json")]);
        let m = parse_request(
            &h,
            Bytes::from(format!("[{}]", std::str::from_utf8(one).unwrap())),
        );
        assert!(matches!(m, Ok(Message::Batch(v)) if v.len() == 1));
        for ct in [
            "application/cloudevents+avro",
            "application/cloudevents+xml",
            "application/cloudevents",
            "application/cloudevents-batch+avro",
        ] {
            let h = headers(&[("content-type", ct.as_bytes())]);
            let e = parse_request(&h, Bytes::from_static(one)).unwrap_err();
            assert_eq!(e.kind, FormatErrorKind::UnsupportedMediaType, "{ct}");
        }
        // Structured mode takes attributes from the body, not from ce- headers.
        let h = headers(&[
            ("content-type", b"application/cloudevents+json"),
            ("ce-id", b"header"),
        ]);
        assert_eq!(
            single(parse_request(&h, Bytes::from_static(one)).unwrap()).id,
            "1"
        );
    }

    fn sample_events() -> Vec<Event> {
        let [e, with_text, bytes] = binary::sample_events("text/plain; charset=utf-8");
        let mut ct_no_data = e.clone();
        ct_no_data.datacontenttype = Some("text/plain".into());
        vec![e, with_text, bytes, ct_no_data]
    }

    #[test]
    fn egress_binary_is_binary_without_the_ttl() {
        for mut e in sample_events() {
            for name in [
                "knativearrivaltime",
                "traceparent",
                "tracestate",
                "partitionkey",
                "knativeerrordest",
                "knativeerrorcode",
                "knativeerrordata",
            ] {
                e.set_extension(name, ExtValue::String(format!("v-{name}")));
            }
            let mut full = HeaderMap::new();
            let full_body = write_binary(&e, &mut full);
            let mut egress = HeaderMap::new();
            let egress_body = write_binary_egress(&e, &mut egress);
            assert_eq!(full_body, egress_body);
            assert!(egress.get("ce-knativebrokerttl").is_none());
            assert_eq!(full["ce-knativebrokerttl"], "255");
            full.remove("ce-knativebrokerttl");
            assert_eq!(full, egress);
            assert_eq!(egress["ce-traceparent"], "v-traceparent");
            let mut expected = e.clone();
            expected.remove_extension(TTL_EXTENSION_NAME);
            assert_eq!(
                single(parse_request(&egress, egress_body).unwrap()),
                expected
            );
        }
    }

    const TTL_EXTENSION_NAME: &str = crate::event::TTL_EXTENSION;

    #[test]
    fn binary_round_trip() {
        for e in sample_events() {
            let mut h = HeaderMap::new();
            let body = write_binary(&e, &mut h);
            assert!(!h.contains_key("ce-datacontenttype"));
            for (_, v) in &h {
                assert!(v.to_str().is_ok());
            }
            assert_eq!(single(parse_request(&h, body).unwrap()), e);
        }
        let mut h = HeaderMap::new();
        write_binary(&sample_events()[0], &mut h);
        assert_eq!(h["ce-id"], "id%20%E2%82%AC/1");
        assert_eq!(h["ce-subject"], "%22quoted%22%20100%25");
    }

    #[test]
    fn binary_json_data_gets_application_json() {
        let mut e = Event::new("1", "/s", "t");
        e.data = Data::Json(Bytes::from_static(b"\"I'm just a string\""));
        let mut h = HeaderMap::new();
        let body = write_binary(&e, &mut h);
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(&body[..], b"\"I'm just a string\"");
        e.set_extension("i", ExtValue::Int(5));
        e.set_extension("b", ExtValue::Bool(true));
        write_binary(&e, &mut h);
        assert_eq!(h["ce-i"], "5");
        assert_eq!(h["ce-b"], "true");
    }

    #[test]
    fn structured_round_trip() {
        let mut events = sample_events();
        binary::structured_samples(&mut events);
        let mut v03 = events[2].clone();
        v03.specversion = SpecVersion::V03;
        events.push(v03);
        let mut typed = Event::new("1", "/s", "t");
        typed.set_extension("i", ExtValue::Int(-7));
        typed.set_extension("b", ExtValue::Bool(false));
        events.push(typed);
        for e in events {
            let mut h = HeaderMap::new();
            let body = write_structured(&e, &mut h);
            assert_eq!(h[CONTENT_TYPE], STRUCTURED_JSON);
            assert_eq!(single(parse_request(&h, body).unwrap()), e);
        }
    }

    #[test]
    fn responses() {
        let none = parse_response(&HeaderMap::new(), Bytes::new()).unwrap();
        assert_eq!(none, None);
        let h = headers(&[("content-type", b"text/plain")]);
        assert!(parse_response(&h, Bytes::from_static(b"ok")).is_err());
        assert!(parse_response(&HeaderMap::new(), Bytes::from_static(b"{}")).is_err());
        let e = parse_response(&headers(&binary_base()), Bytes::new()).unwrap();
        assert_eq!(e.map(|e| e.id), Some("A234-1234-1234".to_owned()));
        let mut h = HeaderMap::new();
        let body = write_structured(&sample_events()[1], &mut h);
        assert_eq!(
            parse_response(&h, body).unwrap(),
            Some(sample_events()[1].clone())
        );
        let h = headers(&[("content-type", b"application/cloudevents-batch+json")]);
        assert!(parse_response(&h, Bytes::from_static(b"[]")).is_err());
        let mut p = binary_base();
        p.remove(1);
        assert!(parse_response(&headers(&p), Bytes::new()).is_err());
    }
}
