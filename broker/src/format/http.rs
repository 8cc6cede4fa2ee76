//! The CloudEvents HTTP protocol binding: binary, structured and batched content modes, for requests
//! (ingress), subscriber responses (replies) and egress.

use super::json::{self, BASE64};
use super::percent::{decode_header_value, encode_header_value};
use super::validate::validate_event;
use super::{FormatError, FormatErrorKind};
use crate::event::{Data, Event, ExtValue, SpecVersion};
use ::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use base64::Engine;
use bytes::Bytes;

/// Media type of a structured-mode JSON event.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// Media type of a JSON batch.
pub const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// A parsed HTTP request: one event (binary or structured mode) or a batch.
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

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
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
    if starts_with_ignore_case(ct, b"application/cloudevents-batch") {
        if essence(ct).eq_ignore_ascii_case(BATCH_JSON.as_bytes()) {
            return Ok(Mode::Batch);
        }
        return Err(FormatError::unsupported(format!(
            "unsupported batch format '{}': only {BATCH_JSON} is supported",
            String::from_utf8_lossy(essence(ct))
        )));
    }
    if starts_with_ignore_case(ct, b"application/cloudevents") {
        if essence(ct).eq_ignore_ascii_case(STRUCTURED_JSON.as_bytes()) {
            return Ok(Mode::Structured);
        }
        return Err(FormatError::unsupported(format!(
            "unsupported event format '{}': only {STRUCTURED_JSON} is supported",
            String::from_utf8_lossy(essence(ct))
        )));
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

fn header_field(attr: &str) -> String {
    if attr == "datacontenttype" {
        "content-type".to_owned()
    } else {
        format!("ce-{attr}")
    }
}

fn parse_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, FormatError> {
    let sv_raw = single_value(headers, CE_SPECVERSION)?.ok_or_else(|| {
        FormatError::invalid(
            CE_SPECVERSION,
            "missing required header 'ce-specversion' (not a CloudEvent)",
        )
    })?;
    let sv = decode(CE_SPECVERSION, sv_raw.as_bytes())?;
    let specversion = SpecVersion::parse(&sv).ok_or_else(|| {
        FormatError::invalid(
            CE_SPECVERSION,
            format!("unsupported specversion '{sv}' (supported: 1.0, 0.3)"),
        )
    })?;
    let mut event = Event::new(String::new(), String::new(), String::new());
    event.specversion = specversion;
    let (mut has_id, mut has_source, mut has_type) = (false, false, false);
    let mut base64_body = false;
    for name in headers.keys() {
        // `HeaderName`s are always lower case, so `CE-ID` and `Ce-Id` arrive as `ce-id`.
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let value = single_value(headers, name.as_str())?
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
        let v = decode(field, value.as_bytes())?;
        match attr {
            "id" => {
                event.id = v;
                has_id = true;
            }
            "source" => {
                event.source = v;
                has_source = true;
            }
            "type" => {
                event.ty = v;
                has_type = true;
            }
            "subject" => event.subject = Some(v),
            "time" => event.time = Some(v),
            "dataschema" if specversion == SpecVersion::V10 => event.dataschema = Some(v),
            "schemaurl" if specversion == SpecVersion::V03 => event.dataschema = Some(v),
            "datacontentencoding" if specversion == SpecVersion::V03 => {
                if !v.eq_ignore_ascii_case("base64") {
                    return Err(FormatError::invalid(
                        field,
                        format!("unsupported datacontentencoding '{v}'"),
                    ));
                }
                base64_body = true;
            }
            _ => {
                if !super::validate::is_valid_attribute_name(attr) {
                    return Err(FormatError::invalid(
                        field,
                        format!("invalid attribute name '{attr}': must be [a-z0-9]+"),
                    ));
                }
                event.set_extension(attr, ExtValue::String(v));
            }
        }
    }
    for (present, attr) in [(has_id, "id"), (has_source, "source"), (has_type, "type")] {
        if !present {
            return Err(FormatError::invalid(
                format!("ce-{attr}"),
                format!("missing required header 'ce-{attr}'"),
            ));
        }
    }
    if let Some(ct) = single_value(headers, CONTENT_TYPE.as_str())? {
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
    event.data = if body.is_empty() {
        Data::None
    } else if base64_body {
        let decoded = BASE64.decode(&body).map_err(|e| {
            FormatError::invalid("data", format!("body is not valid base64: {e}"))
        })?;
        Data::Binary(Bytes::from(decoded))
    } else {
        Data::Text(body)
    };
    validate_event(&event).map_err(|mut e| {
        if let Some(f) = e.field.take() {
            e.field = Some(header_field(&f));
        }
        e
    })?;
    Ok(event)
}

/// The one value of a header; two or more values for one attribute are invalid (rule 6).
fn single_value<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h HeaderValue>, FormatError> {
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(FormatError::invalid(
            name,
            format!("header '{name}' appears more than once"),
        ));
    }
    Ok(first)
}

fn decode(field: &str, raw: &[u8]) -> Result<String, FormatError> {
    decode_header_value(raw).map_err(|mut e| {
        e.message = format!("header '{field}': {}", e.message);
        e.field = Some(field.to_owned());
        e
    })
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
    let mut buf = String::with_capacity(64);
    headers.insert(
        HeaderName::from_static(CE_SPECVERSION),
        HeaderValue::from_static(event.specversion.as_str()),
    );
    insert_encoded(headers, HeaderName::from_static("ce-id"), &event.id, &mut buf);
    insert_encoded(headers, HeaderName::from_static("ce-source"), &event.source, &mut buf);
    insert_encoded(headers, HeaderName::from_static("ce-type"), &event.ty, &mut buf);
    if let Some(v) = &event.subject {
        insert_encoded(headers, HeaderName::from_static("ce-subject"), v, &mut buf);
    }
    if let Some(v) = &event.time {
        insert_encoded(headers, HeaderName::from_static("ce-time"), v, &mut buf);
    }
    if let Some(v) = &event.dataschema {
        let name = match event.specversion {
            SpecVersion::V10 => HeaderName::from_static("ce-dataschema"),
            SpecVersion::V03 => HeaderName::from_static("ce-schemaurl"),
        };
        insert_encoded(headers, name, v, &mut buf);
    }
    let mut name_buf = String::with_capacity(32);
    for (name, value) in &event.extensions {
        name_buf.clear();
        name_buf.push_str("ce-");
        name_buf.push_str(name);
        if let Ok(hn) = HeaderName::from_bytes(name_buf.as_bytes()) {
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
