//! The CloudEvents JSON event format (1.0 and 0.3) and the JSON batch format.
//!
//! Parsing is a single pass with a custom serde visitor: member names and string values are borrowed
//! from the input when they contain no escapes, `data` is captured as raw JSON text (sliced from the
//! request body without a copy when the caller has it as [`Bytes`]), and duplicate members are
//! detected (serde_json's `Map` would silently keep the last one).

use super::validate::{declares_json, validate_event};
use super::FormatError;
use crate::event::{Data, Event, ExtValue, SpecVersion};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::io::Write;

/// Base64 (standard alphabet) that accepts input with or without padding.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses one event in the JSON format (`application/cloudevents+json`) and validates it.
pub fn parse_event(bytes: &[u8]) -> Result<Event, FormatError> {
    parse_single(bytes, None)
}

/// Like [`parse_event`], but `data` (and unescaped string data) is a zero-copy slice of `body`.
pub fn parse_event_bytes(body: &Bytes) -> Result<Event, FormatError> {
    parse_single(body, Some(body))
}

/// Parses a JSON batch (`application/cloudevents-batch+json`): all events valid or an error naming the
/// element (`"[2].source"`); all events must have the same specversion (rule 16). `[]` is valid.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Event>, FormatError> {
    parse_many(bytes, None)
}

/// Like [`parse_batch`], but event data are zero-copy slices of `body`.
pub fn parse_batch_bytes(body: &Bytes) -> Result<Vec<Event>, FormatError> {
    parse_many(body, Some(body))
}

fn parse_single(input: &[u8], backing: Option<&Bytes>) -> Result<Event, FormatError> {
    let mut err = None;
    let mut de = serde_json::Deserializer::from_slice(input);
    let res = EventSeed {
        err: &mut err,
        backing,
    }
    .deserialize(&mut de)
    .and_then(|ev| de.end().map(|()| ev));
    res.map_err(|e| err.unwrap_or_else(|| json_error(&e)))
}

fn parse_many(input: &[u8], backing: Option<&Bytes>) -> Result<Vec<Event>, FormatError> {
    let mut err = None;
    let mut de = serde_json::Deserializer::from_slice(input);
    let res = de
        .deserialize_seq(BatchVisitor {
            err: &mut err,
            backing,
        })
        .and_then(|evs| de.end().map(|()| evs));
    res.map_err(|e| err.unwrap_or_else(|| json_error(&e)))
}

fn json_error(e: &serde_json::Error) -> FormatError {
    FormatError::invalid_message(format!("malformed JSON: {e}"))
}

/// Aborts deserialization after recording the real error in the side channel.
fn abort<E: de::Error>(slot: &mut Option<FormatError>, e: FormatError) -> E {
    *slot = Some(e);
    E::custom("invalid event")
}

struct BatchVisitor<'c> {
    err: &'c mut Option<FormatError>,
    backing: Option<&'c Bytes>,
}

impl<'de> Visitor<'de> for BatchVisitor<'_> {
    type Value = Vec<Event>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of CloudEvents")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Event>, A::Error> {
        let mut events: Vec<Event> = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(1024));
        loop {
            let i = events.len();
            let mut slot = None;
            let next = seq.next_element_seed(EventSeed {
                err: &mut slot,
                backing: self.backing,
            });
            match next {
                Ok(Some(ev)) => {
                    if let Some(first) = events.first() {
                        if first.specversion != ev.specversion {
                            return Err(abort(
                                self.err,
                                FormatError::invalid(
                                    "specversion",
                                    "all events of a batch must have the same specversion",
                                )
                                .prefixed(&format!("[{i}]")),
                            ));
                        }
                    }
                    events.push(ev);
                }
                Ok(None) => return Ok(events),
                Err(e) => {
                    let fe = slot.unwrap_or_else(|| {
                        FormatError::invalid_message(format!(
                            "batch element must be a CloudEvent JSON object: {e}"
                        ))
                    });
                    return Err(abort(self.err, fe.prefixed(&format!("[{i}]"))));
                }
            }
        }
    }
}

struct EventSeed<'c> {
    err: &'c mut Option<FormatError>,
    backing: Option<&'c Bytes>,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Event;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Event, D::Error> {
        d.deserialize_map(self)
    }
}

/// A string borrowed from the input when it has no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member value other than `data`.
enum Val<'de> {
    Null,
    Bool(bool),
    Int(i64),
    Str(Cow<'de, str>),
    /// Anything else, by kind (for the error message).
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val<'de>, E> {
                Ok(Val::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
                Ok(Val::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
                Ok(i64::try_from(v).map_or(Val::Other("an out-of-range integer"), Val::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Val<'de>, E> {
                Ok(Val::Other("a non-integer number"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Val<'de>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Val::Other("an object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Val<'de>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Val::Other("an array"))
            }
        }
        d.deserialize_any(V)
    }
}

impl Val<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Int(_) => "an integer",
            Val::Str(_) => "a string",
            Val::Other(k) => k,
        }
    }
}

/// A core attribute member: a string, or null (= unset, rule 20).
fn string_attr<'de>(name: &str, v: Val<'de>) -> Result<Option<Cow<'de, str>>, FormatError> {
    match v {
        Val::Null => Ok(None),
        Val::Str(s) => Ok(Some(s)),
        other => Err(FormatError::invalid(
            name,
            format!("attribute '{name}' must be a string, not {}", other.kind()),
        )),
    }
}

/// An extension member value: boolean, 32-bit integer, string, or null (= unset).
fn ext_value(name: &str, v: Val<'_>) -> Result<Option<ExtValue>, FormatError> {
    match v {
        Val::Null => Ok(None),
        Val::Bool(b) => Ok(Some(ExtValue::Bool(b))),
        Val::Int(i) => match i32::try_from(i) {
            Ok(i) => Ok(Some(ExtValue::Int(i))),
            Err(_) => Err(FormatError::invalid(
                name,
                format!("extension '{name}' is an integer outside the 32-bit range"),
            )),
        },
        Val::Str(s) => Ok(Some(ExtValue::String(s.into_owned()))),
        other => Err(FormatError::invalid(
            name,
            format!(
                "extension '{name}' must be a boolean, an integer or a string, not {}",
                other.kind()
            ),
        )),
    }
}

// Bits of the core members seen, for duplicate detection.
const M_SPECVERSION: u16 = 1;
const M_ID: u16 = 1 << 1;
const M_SOURCE: u16 = 1 << 2;
const M_TYPE: u16 = 1 << 3;
const M_DCT: u16 = 1 << 4;
const M_SUBJECT: u16 = 1 << 5;
const M_TIME: u16 = 1 << 6;
const M_DATA: u16 = 1 << 7;
const M_DATA_BASE64: u16 = 1 << 8;

#[derive(Default)]
struct Members<'de> {
    seen: u16,
    specversion: Option<Cow<'de, str>>,
    id: Option<Cow<'de, str>>,
    source: Option<Cow<'de, str>>,
    ty: Option<Cow<'de, str>>,
    dct: Option<Cow<'de, str>>,
    subject: Option<Cow<'de, str>>,
    time: Option<Cow<'de, str>>,
    data: Option<&'de RawValue>,
    data_base64: Option<Cow<'de, str>>,
    /// Members whose meaning depends on the specversion (`dataschema`, `schemaurl`,
    /// `datacontentencoding`) and extensions: `(name, value)`, nulls included (for duplicate checks).
    others: Vec<(Cow<'de, str>, Val<'de>)>,
}

fn duplicate(name: &str) -> FormatError {
    FormatError::invalid(name, format!("member '{name}' appears more than once"))
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudEvent JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut m = Members::default();
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            let bit = match key.as_ref() {
                "specversion" => M_SPECVERSION,
                "id" => M_ID,
                "source" => M_SOURCE,
                "type" => M_TYPE,
                "datacontenttype" => M_DCT,
                "subject" => M_SUBJECT,
                "time" => M_TIME,
                "data" => M_DATA,
                "data_base64" => M_DATA_BASE64,
                _ => 0,
            };
            if bit != 0 {
                if m.seen & bit != 0 {
                    return Err(abort(self.err, duplicate(&key)));
                }
                m.seen |= bit;
            }
            if bit == M_DATA {
                m.data = Some(map.next_value::<&'de RawValue>()?);
                continue;
            }
            let v: Val<'de> = map.next_value()?;
            let slot = match bit {
                M_SPECVERSION => &mut m.specversion,
                M_ID => &mut m.id,
                M_SOURCE => &mut m.source,
                M_TYPE => &mut m.ty,
                M_DCT => &mut m.dct,
                M_SUBJECT => &mut m.subject,
                M_TIME => &mut m.time,
                M_DATA_BASE64 => &mut m.data_base64,
                _ => {
                    m.others.push((key, v));
                    continue;
                }
            };
            *slot = string_attr(&key, v).map_err(|e| abort(self.err, e))?;
        }
        build(m, self.backing).map_err(|e| abort(self.err, e))
    }
}

fn required(name: &str, v: Option<Cow<'_, str>>) -> Result<String, FormatError> {
    v.map(Cow::into_owned)
        .ok_or_else(|| FormatError::invalid(name, format!("missing required attribute '{name}'")))
}

/// Slices `s` out of `backing` when it points into it, else copies.
fn to_bytes(s: &[u8], backing: Option<&Bytes>) -> Bytes {
    if let Some(b) = backing {
        let base = b.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if p >= base && p + s.len() <= base + b.len() {
            return b.slice(p - base..p - base + s.len());
        }
    }
    Bytes::copy_from_slice(s)
}

fn build(mut m: Members<'_>, backing: Option<&Bytes>) -> Result<Event, FormatError> {
    let sv = required("specversion", m.specversion.take())?;
    let specversion = SpecVersion::parse(&sv).ok_or_else(|| {
        FormatError::invalid(
            "specversion",
            format!("unsupported specversion '{sv}' (supported: 1.0, 0.3)"),
        )
    })?;
    let mut event = Event {
        specversion,
        id: required("id", m.id)?,
        source: required("source", m.source)?,
        ty: required("type", m.ty)?,
        datacontenttype: m.dct.map(Cow::into_owned),
        dataschema: None,
        subject: m.subject.map(Cow::into_owned),
        time: m.time.map(Cow::into_owned),
        extensions: Vec::new(),
        data: Data::None,
    };
    let (schema_member, encoding_member) = match specversion {
        SpecVersion::V10 => ("dataschema", None),
        SpecVersion::V03 => ("schemaurl", Some("datacontentencoding")),
    };
    let mut base64_data = false;
    if !m.others.is_empty() {
        m.others.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = m.others.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(duplicate(&w[0].0));
        }
        event.extensions.reserve(m.others.len());
        for (name, v) in m.others {
            if name == schema_member {
                event.dataschema = string_attr(&name, v)?.map(Cow::into_owned);
            } else if Some(name.as_ref()) == encoding_member {
                if let Some(enc) = string_attr(&name, v)? {
                    if !enc.eq_ignore_ascii_case("base64") {
                        return Err(FormatError::invalid(
                            "datacontentencoding",
                            format!("unsupported datacontentencoding '{enc}'"),
                        ));
                    }
                    base64_data = true;
                }
            } else {
                if !super::validate::is_valid_attribute_name(&name) {
                    return Err(FormatError::invalid(
                        name.as_ref(),
                        format!(
                            "invalid attribute name '{name}': must be [a-z0-9]+ and not 'data'"
                        ),
                    ));
                }
                if let Some(value) = ext_value(&name, v)? {
                    // Sorted and unique already: push keeps the invariant.
                    event.extensions.push((name.into_owned(), value));
                }
            }
        }
    }
    event.data = match (m.data, m.data_base64) {
        (Some(_), Some(_)) => {
            return Err(FormatError::invalid(
                "data_base64",
                "'data' and 'data_base64' are mutually exclusive",
            ))
        }
        (None, Some(b64)) => Data::Binary(decode_base64("data_base64", &b64)?),
        (None, None) => Data::None,
        (Some(raw), None) => {
            let text = raw.get();
            if base64_data {
                match serde_json::from_str::<Str<'_>>(text) {
                    Ok(Str(s)) => Data::Binary(decode_base64("data", &s)?),
                    Err(_) if text == "null" => Data::None,
                    Err(_) => {
                        return Err(FormatError::invalid(
                            "data",
                            "data with datacontentencoding base64 must be a string",
                        ))
                    }
                }
            } else if event.datacontenttype.as_deref().is_none_or(declares_json) {
                Data::Json(to_bytes(text.as_bytes(), backing))
            } else if text == "null" {
                Data::None
            } else {
                match serde_json::from_str::<Str<'_>>(text) {
                    Ok(Str(Cow::Borrowed(s))) => Data::Text(to_bytes(s.as_bytes(), backing)),
                    Ok(Str(Cow::Owned(s))) => Data::Text(Bytes::from(s.into_bytes())),
                    // Not a string although the content type is not JSON: keep the JSON text.
                    Err(_) => Data::Text(to_bytes(text.as_bytes(), backing)),
                }
            }
        }
    };
    validate_event(&event)?;
    Ok(event)
}

fn decode_base64(field: &str, s: &str) -> Result<Bytes, FormatError> {
    BASE64
        .decode(s)
        .map(Bytes::from)
        .map_err(|e| FormatError::invalid(field, format!("{field} is not valid base64: {e}")))
}

// === writing ===

/// Appends `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_member(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b',');
    write_json_str(out, name);
    out.push(b':');
    write_json_str(out, value);
}

fn write_base64(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(data.len(), true).unwrap_or(0);
    out.push(b'"');
    out.resize(start + 1 + len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut out[start + 1..])
        .unwrap_or(0);
    out.truncate(start + 1 + written);
    out.push(b'"');
}

/// Writes the event as a structured-mode JSON object (extensions as top-level members, `data` per the
/// content type: raw JSON, a string, or `data_base64`; 0.3 events use `schemaurl` and
/// `datacontentencoding: base64`). `Data::Json` must hold valid JSON text (as the parsers produce).
pub fn write_event(event: &Event, out: &mut Vec<u8>) {
    out.reserve(event.approx_size() + 128);
    out.extend_from_slice(b"{\"specversion\":\"");
    out.extend_from_slice(event.specversion.as_str().as_bytes());
    out.push(b'"');
    write_member(out, "id", &event.id);
    write_member(out, "source", &event.source);
    write_member(out, "type", &event.ty);
    if let Some(v) = &event.datacontenttype {
        write_member(out, "datacontenttype", v);
    }
    if let Some(v) = &event.dataschema {
        let name = match event.specversion {
            SpecVersion::V10 => "dataschema",
            SpecVersion::V03 => "schemaurl",
        };
        write_member(out, name, v);
    }
    if let Some(v) = &event.subject {
        write_member(out, "subject", v);
    }
    if let Some(v) = &event.time {
        write_member(out, "time", v);
    }
    for (name, value) in &event.extensions {
        out.push(b',');
        write_json_str(out, name);
        out.push(b':');
        match value {
            ExtValue::Bool(true) => out.extend_from_slice(b"true"),
            ExtValue::Bool(false) => out.extend_from_slice(b"false"),
            ExtValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            ExtValue::String(s) => write_json_str(out, s),
        }
    }
    let binary = |out: &mut Vec<u8>, bytes: &[u8]| match event.specversion {
        SpecVersion::V10 => {
            out.extend_from_slice(b",\"data_base64\":");
            write_base64(out, bytes);
        }
        SpecVersion::V03 => {
            out.extend_from_slice(b",\"datacontentencoding\":\"base64\",\"data\":");
            write_base64(out, bytes);
        }
    };
    match &event.data {
        Data::None => {}
        Data::Json(raw) => {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(raw);
        }
        Data::Binary(bytes) => binary(out, bytes),
        Data::Text(bytes) => match event.datacontenttype.as_deref() {
            Some(ct) if declares_json(ct) && is_json(bytes) => {
                out.extend_from_slice(b",\"data\":");
                out.extend_from_slice(bytes);
            }
            Some(ct) if !declares_json(ct) => match std::str::from_utf8(bytes) {
                Ok(s) => {
                    out.extend_from_slice(b",\"data\":");
                    write_json_str(out, s);
                }
                Err(_) => binary(out, bytes),
            },
            _ => binary(out, bytes),
        },
    }
    out.push(b'}');
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FormatErrorKind;

    fn field(r: Result<Event, FormatError>) -> String {
        let e = r.expect_err("expected an error");
        assert_eq!(e.kind, FormatErrorKind::Invalid);
        e.field.unwrap_or_default()
    }

    #[test]
    fn parses_all_members() {
        let ev = parse_event(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"sub",
                "time":"2018-04-05T17:31:00Z","dataschema":"https://x/s","datacontenttype":"application/json",
                "zed":"z","alpha":true,"num":-5,"gone":null,"data":{"a":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(ev.subject.as_deref(), Some("sub"));
        assert_eq!(ev.dataschema.as_deref(), Some("https://x/s"));
        assert_eq!(
            ev.extensions,
            vec![
                ("alpha".to_owned(), ExtValue::Bool(true)),
                ("num".to_owned(), ExtValue::Int(-5)),
                ("zed".to_owned(), ExtValue::String("z".into())),
            ]
        );
        assert_eq!(ev.data, Data::Json(Bytes::from_static(br#"{"a":[1,2]}"#)));
    }

    #[test]
    fn data_kinds() {
        let base = r#""specversion":"1.0","id":"1","source":"/s","type":"t""#;
        let p = |extra: &str| parse_event(format!("{{{base}{extra}}}").as_bytes());
        assert_eq!(p("").unwrap().data, Data::None);
        assert_eq!(
            p(r#","data":null"#).unwrap().data,
            Data::Json(Bytes::from_static(b"null"))
        );
        assert_eq!(
            p(r#","data":"s""#).unwrap().data,
            Data::Json(Bytes::from_static(b"\"s\""))
        );
        assert_eq!(
            p(r#","datacontenttype":"text/vnd.x+JSON; charset=utf-8","data":1.5"#)
                .unwrap()
                .data,
            Data::Json(Bytes::from_static(b"1.5"))
        );
        assert_eq!(
            p(r#","datacontenttype":"text/plain","data":"a\nb""#)
                .unwrap()
                .data,
            Data::Text(Bytes::from_static(b"a\nb"))
        );
        assert_eq!(
            p(r#","data_base64":"TWE=""#).unwrap().data,
            Data::Binary(Bytes::from_static(b"Ma"))
        );
        assert_eq!(field(p(r#","data_base64":"!!""#)), "data_base64");
        assert_eq!(field(p(r#","data":1,"data_base64":"TWE=""#)), "data_base64");
    }

    #[test]
    fn zero_copy_data_slices_the_body() {
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"k":"v"}}"#,
        );
        let ev = parse_event_bytes(&body).unwrap();
        let Data::Json(d) = &ev.data else { panic!() };
        assert_eq!(&d[..], br#"{"k":"v"}"#);
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(range.contains(&(d.as_ptr() as usize)));
    }

    #[test]
    fn rejects_bad_members() {
        let base = r#""specversion":"1.0","id":"1","source":"/s","type":"t""#;
        let p = |extra: &str| parse_event(format!("{{{base}{extra}}}").as_bytes());
        assert_eq!(field(p(r#","id":"2""#)), "id");
        assert_eq!(field(p(r#","x":1,"x":null"#)), "x");
        assert_eq!(field(p(r#","x":1.0"#)), "x");
        assert_eq!(field(p(r#","x":2147483648"#)), "x");
        assert_eq!(field(p(r#","x":{}"#)), "x");
        assert_eq!(field(p(r#","x":[]"#)), "x");
        assert_eq!(field(p(r#","subject":5"#)), "subject");
        assert_eq!(field(p(r#","my_ext":"v""#)), "my_ext");
        assert_eq!(field(p(r#","data":1,"data":2"#)), "data");
        assert!(p(r#","x":-2147483648"#).is_ok());
        assert!(parse_event(b"[]").is_err());
        assert!(parse_event(b"\"x\"").is_err());
        assert!(parse_event(b"{").is_err());
        assert!(parse_event(format!("{{{base}}} x").as_bytes()).is_err());
        assert_eq!(
            field(parse_event(
                br#"{"specversion":"19.0","id":"1","source":"/s","type":"t"}"#
            )),
            "specversion"
        );
    }

    #[test]
    fn v03_events() {
        let ev = parse_event(
            br#"{"specversion":"0.3","id":"1","source":"/s","type":"t","schemaurl":"https://x/s",
                "datacontentencoding":"base64","datacontenttype":"application/octet-stream","data":"TWE="}"#,
        )
        .unwrap();
        assert_eq!(ev.specversion, SpecVersion::V03);
        assert_eq!(ev.dataschema.as_deref(), Some("https://x/s"));
        assert_eq!(ev.data, Data::Binary(Bytes::from_static(b"Ma")));
        assert!(ev.extensions.is_empty());
        let mut out = Vec::new();
        write_event(&ev, &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#""schemaurl":"https://x/s""#), "{text}");
        assert!(
            text.contains(r#""datacontentencoding":"base64","data":"TWE=""#),
            "{text}"
        );
        assert_eq!(parse_event(&out).unwrap(), ev);
        // In 1.0, schemaurl is just an extension.
        let ev = parse_event(
            br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","schemaurl":"u"}"#,
        )
        .unwrap();
        assert_eq!(
            ev.extension("schemaurl"),
            Some(&ExtValue::String("u".into()))
        );
    }

    #[test]
    fn batches() {
        assert_eq!(parse_batch(b"[]").unwrap(), vec![]);
        let one = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
        assert_eq!(
            parse_batch(format!("[{one},{one}]").as_bytes())
                .unwrap()
                .len(),
            2
        );
        let e = parse_batch(
            format!("[{one},{one},{{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}}]")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[2].source"));
        let v03 = one.replace("1.0", "0.3");
        let e = parse_batch(format!("[{one},{v03}]").as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[1].specversion"));
        let e = parse_batch(format!("[{one}, 5]").as_bytes()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[1]"));
        assert!(parse_batch(one.as_bytes()).is_err());
    }

    #[test]
    fn writes_and_reparses() {
        let mut e = Event::new("i\"d", "/s", "t");
        e.subject = Some("line\nbreak \u{1}".into());
        e.time = Some("2018-04-05T17:31:00Z".into());
        e.set_extension("b", ExtValue::Bool(false));
        e.set_extension("n", ExtValue::Int(i32::MIN));
        e.set_extension("s", ExtValue::String("€".into()));
        for data in [
            Data::None,
            Data::Json(Bytes::from_static(b"[1,{\"a\":null}]")),
            Data::Binary(Bytes::from_static(&[0, 1, 2, 255])),
        ] {
            e.data = data;
            let mut out = Vec::new();
            write_event(&e, &mut out);
            let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(back["n"], serde_json::json!(i32::MIN));
            assert_eq!(back["subject"], "line\nbreak \u{1}");
        }
        // A control character is not a valid String value, so strip it for the parse round-trip.
        e.subject = Some("line".into());
        e.datacontenttype = Some("text/plain".into());
        e.data = Data::Text(Bytes::from_static("héllo".as_bytes()));
        let mut out = Vec::new();
        write_event(&e, &mut out);
        assert_eq!(parse_event(&out).unwrap(), e);
    }

    #[test]
    fn text_data_encoding_choice() {
        let write = |ct: Option<&str>, body: &'static [u8]| {
            let mut e = Event::new("1", "/s", "t");
            e.datacontenttype = ct.map(str::to_owned);
            e.data = Data::Text(Bytes::from_static(body));
            let mut out = Vec::new();
            write_event(&e, &mut out);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = write(Some("application/json"), b"{\"a\":1}");
        assert_eq!(v["data"], serde_json::json!({"a":1}));
        let v = write(Some("application/json"), b"not json");
        assert_eq!(v["data_base64"], "bm90IGpzb24=");
        let v = write(Some("text/plain"), b"hi");
        assert_eq!(v["data"], "hi");
        let v = write(Some("text/plain"), b"\xff");
        assert_eq!(v["data_base64"], "/w==");
        let v = write(None, b"{ \"xyz\": 123 }");
        assert_eq!(v["data_base64"], "eyAieHl6IjogMTIzIH0=");
    }
}
