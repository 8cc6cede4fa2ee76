//! Binary content mode, written once for the three protocol bindings: HTTP ([`super::http`], `ce-`
//! headers), Kafka ([`crate::kafka::binding`], `ce_` headers) and NATS ([`crate::nats::binding`], `ce-` headers).
//!
//! Each binding keeps what differs — how its headers are read (a `HeaderMap`, byte pairs, nullable
//! values), value decoding (percent-encoding for HTTP and NATS, plain UTF-8 for Kafka), where
//! `datacontenttype` travels, mode detection — and shares what does not:
//!
//! - header names: [`header_name`] (static for the core attributes and the extensions Switchyard
//!   stamps or forwards on every event, so encoding allocates no name for them), [`attribute_name`];
//! - the attributes of an event in header order ([`core_attributes`]);
//! - decoding: [`AttributeDecoder`] turns attribute headers into an event (duplicates, 0.3
//!   `schemaurl`/`datacontentencoding`, extension names, required attributes), [`data`] the payload,
//!   [`validate`] applies the CloudEvents rules with errors naming the header.

use super::json::BASE64;
use super::percent::decode_header_value;
use super::validate::{is_valid_attribute_name, validate_event};
use super::FormatError;
use crate::event::{Data, Event, ExtValue, SpecVersion};
use base64::Engine;
use bytes::Bytes;
use std::borrow::Cow;

/// The header conventions of one binding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding {
    /// Attribute header prefix: `ce-` or `ce_`.
    pub(crate) prefix: &'static str,
    /// The header that errors about `datacontenttype` name (`content-type`, or NATS's
    /// `ce-datacontenttype`).
    pub(crate) datacontenttype_field: &'static str,
}

/// HTTP: `ce-` headers, `datacontenttype` is `Content-Type`.
pub(crate) const HTTP: Binding = Binding {
    prefix: "ce-",
    datacontenttype_field: "content-type",
};
/// Kafka: `ce_` headers, `datacontenttype` is `content-type`.
pub(crate) const KAFKA: Binding = Binding {
    prefix: "ce_",
    datacontenttype_field: "content-type",
};
/// NATS: `ce-` headers for every attribute, `datacontenttype` included.
pub(crate) const NATS: Binding = Binding {
    prefix: "ce-",
    datacontenttype_field: "ce-datacontenttype",
};

impl Binding {
    /// The header an error about attribute `attr` names.
    pub(crate) fn field(&self, attr: &str) -> String {
        if attr == "datacontenttype" {
            self.datacontenttype_field.to_owned()
        } else {
            format!("{}{attr}", self.prefix)
        }
    }
}

/// One list of the attributes whose header names are static, in both spellings.
macro_rules! known_headers {
    ($($attr:literal),* $(,)?) => {
        /// The static header name of `attr` with `prefix` (`ce-` or `ce_`), when it has one.
        pub(crate) fn known_header(prefix: &str, attr: &str) -> Option<&'static str> {
            match (prefix, attr) {
                $(("ce-", $attr) => Some(concat!("ce-", $attr)),)*
                $(("ce_", $attr) => Some(concat!("ce_", $attr)),)*
                _ => None,
            }
        }
    };
}

known_headers!(
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "dataschema",
    "schemaurl",
    "datacontenttype",
    "knativearrivaltime",
    "knativebrokerttl",
    "traceparent",
    "tracestate",
    "partitionkey",
    "knativeerrordest",
    "knativeerrorcode",
    "knativeerrordata",
);

/// The header name of attribute `attr` for `binding`: static (no allocation) for the core attributes
/// and frequent extensions, built for the others.
pub(crate) fn header_name(binding: &Binding, attr: &str) -> Cow<'static, str> {
    match known_header(binding.prefix, attr) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("{}{attr}", binding.prefix)),
    }
}

pub(crate) fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The media type of a `&str` content type without parameters, trimmed.
pub(crate) fn essence(ct: &str) -> &str {
    ct.split(';').next().unwrap_or_default().trim()
}

/// The attribute name of an attribute header (prefix matched case-insensitively), lower-cased.
pub(crate) fn attribute_name<'a>(binding: &Binding, name: &'a str) -> Option<Cow<'a, str>> {
    let prefix = binding.prefix;
    if !starts_with_ignore_case(name.as_bytes(), prefix.as_bytes()) {
        return None;
    }
    let attr = &name[prefix.len()..];
    Some(if attr.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(attr.to_ascii_lowercase())
    } else {
        Cow::Borrowed(attr)
    })
}

/// The core attributes of an event other than `datacontenttype`, in header order: `specversion`,
/// `id`, `source`, `type`, then `subject`, `time` and `dataschema` (`schemaurl` for 0.3) when set.
pub(crate) fn core_attributes(event: &Event) -> impl Iterator<Item = (&'static str, &str)> {
    let dataschema = match event.specversion {
        SpecVersion::V10 => "dataschema",
        SpecVersion::V03 => "schemaurl",
    };
    [
        Some(("specversion", event.specversion.as_str())),
        Some(("id", event.id.as_str())),
        Some(("source", event.source.as_str())),
        Some(("type", event.ty.as_str())),
        event.subject.as_deref().map(|v| ("subject", v)),
        event.time.as_deref().map(|v| ("time", v)),
        event.dataschema.as_deref().map(|v| (dataschema, v)),
    ]
    .into_iter()
    .flatten()
}

/// The `datacontenttype` binary mode writes: the attribute, or `application/json` for JSON data
/// without one.
pub(crate) fn content_type(event: &Event) -> Option<&str> {
    match (&event.datacontenttype, &event.data) {
        (Some(ct), _) => Some(ct),
        (None, Data::Json(_)) => Some("application/json"),
        (None, _) => None,
    }
}

/// The error for an attribute header that appears twice.
pub(crate) fn duplicate(field: &str) -> FormatError {
    FormatError::invalid(field, format!("header '{field}' appears more than once"))
}

/// A percent-encoded (HTTP, NATS) header value: quoted-string and percent decoding, errors naming the
/// header.
pub(crate) fn percent_value(field: &str, raw: &[u8]) -> Result<String, FormatError> {
    decode_header_value(raw).map_err(|mut e| {
        e.message = format!("header '{field}': {}", e.message);
        e.field = Some(field.to_owned());
        e
    })
}

/// The specversion of a binary-mode message.
pub(crate) fn specversion(field: &str, value: &str) -> Result<SpecVersion, FormatError> {
    SpecVersion::parse(value).ok_or_else(|| {
        FormatError::invalid(
            field,
            format!("unsupported specversion '{value}' (supported: 1.0, 0.3)"),
        )
    })
}

/// Builds an event from its attribute headers, one at a time, in header order.
#[derive(Debug)]
pub(crate) struct AttributeDecoder {
    event: Event,
    has_id: bool,
    has_source: bool,
    has_type: bool,
    base64: bool,
}

impl AttributeDecoder {
    /// A decoder for an event of this specversion.
    pub(crate) fn new(specversion: SpecVersion) -> AttributeDecoder {
        let mut event = Event::new(String::new(), String::new(), String::new());
        event.specversion = specversion;
        AttributeDecoder {
            event,
            has_id: false,
            has_source: false,
            has_type: false,
            base64: false,
        }
    }

    /// Sets attribute `attr` (lower case) from header `field` with its decoded `value`. The binding
    /// handles `specversion` and `datacontenttype` itself. A second header for one attribute, an
    /// unsupported `datacontentencoding` and an invalid extension name are errors naming `field`.
    pub(crate) fn set(
        &mut self,
        attr: &str,
        field: &str,
        value: String,
    ) -> Result<(), FormatError> {
        let event = &mut self.event;
        let set = |slot: &mut Option<String>, value: String| {
            if slot.is_some() {
                return Err(duplicate(field));
            }
            *slot = Some(value);
            Ok(())
        };
        let v03 = event.specversion == SpecVersion::V03;
        match attr {
            "id" | "source" | "type" => {
                let (flag, slot) = match attr {
                    "id" => (&mut self.has_id, &mut event.id),
                    "source" => (&mut self.has_source, &mut event.source),
                    _ => (&mut self.has_type, &mut event.ty),
                };
                if *flag {
                    return Err(duplicate(field));
                }
                *flag = true;
                *slot = value;
            }
            "subject" => set(&mut event.subject, value)?,
            "time" => set(&mut event.time, value)?,
            "dataschema" if !v03 => set(&mut event.dataschema, value)?,
            "schemaurl" if v03 => set(&mut event.dataschema, value)?,
            "datacontentencoding" if v03 => {
                if !value.eq_ignore_ascii_case("base64") {
                    return Err(FormatError::invalid(
                        field,
                        format!("unsupported datacontentencoding '{value}'"),
                    ));
                }
                if self.base64 {
                    return Err(duplicate(field));
                }
                self.base64 = true;
            }
            _ => {
                if !is_valid_attribute_name(attr) {
                    return Err(FormatError::invalid(
                        field,
                        format!("invalid attribute name '{attr}': must be [a-z0-9]+"),
                    ));
                }
                if event.extension(attr).is_some() {
                    return Err(duplicate(field));
                }
                event.set_extension(attr, ExtValue::String(value));
            }
        }
        Ok(())
    }

    /// Sets `datacontenttype` (NATS: from its own attribute header), trimmed; a second one is an error.
    pub(crate) fn set_datacontenttype(
        &mut self,
        field: &str,
        value: &str,
    ) -> Result<(), FormatError> {
        if self.event.datacontenttype.is_some() {
            return Err(duplicate(field));
        }
        self.event.datacontenttype = Some(value.trim().to_owned());
        Ok(())
    }

    /// The event once every header is read (no data yet), and whether the data is base64 (0.3
    /// `datacontentencoding`); an error names the first missing required attribute.
    pub(crate) fn finish(self, binding: &Binding) -> Result<(Event, bool), FormatError> {
        for (present, attr) in [
            (self.has_id, "id"),
            (self.has_source, "source"),
            (self.has_type, "type"),
        ] {
            if !present {
                let field = format!("{}{attr}", binding.prefix);
                let message = format!("missing required header '{field}'");
                return Err(FormatError::invalid(field, message));
            }
        }
        Ok((self.event, self.base64))
    }
}

/// The data of a binary-mode message: none when `payload` is empty, base64-decoded when `base64`,
/// otherwise `text()` (the payload as is). `what` names the payload in the base64 error (`body`,
/// `value`, `payload`).
pub(crate) fn data(
    payload: &[u8],
    base64: bool,
    what: &str,
    text: impl FnOnce() -> Bytes,
) -> Result<Data, FormatError> {
    if payload.is_empty() {
        Ok(Data::None)
    } else if base64 {
        let decoded = BASE64.decode(payload).map_err(|e| {
            FormatError::invalid("data", format!("{what} is not valid base64: {e}"))
        })?;
        Ok(Data::Binary(Bytes::from(decoded)))
    } else {
        Ok(Data::Text(text()))
    }
}

/// Validates a decoded event; an error's field names the binding's header.
pub(crate) fn validate(event: Event, binding: &Binding) -> Result<Event, FormatError> {
    validate_event(&event).map_err(|mut e| {
        if let Some(f) = e.field.take() {
            e.field = Some(binding.field(&f));
        }
        e
    })?;
    Ok(event)
}

/// The events the bindings' round-trip tests start from: one with every optional core attribute, the
/// TTL and a non-ASCII extension, and no data; the same with text data of `text_content_type`; the
/// same with non-UTF-8 bytes as `application/octet-stream`.
#[cfg(test)]
pub(crate) fn sample_events(text_content_type: &str) -> [Event; 3] {
    let mut e = Event::new("id €/1", "https://example.com/a b", "com.example.t");
    e.subject = Some("\"quoted\" 100%".into());
    e.time = Some("2018-04-05T17:31:00.123+01:00".into());
    e.dataschema = Some("https://example.com/schema".into());
    e.set_extension("knativebrokerttl", ExtValue::String("255".into()));
    e.set_extension("emoji", ExtValue::String("😀".into()));
    let mut with_text = e.clone();
    with_text.datacontenttype = Some(text_content_type.into());
    with_text.data = Data::Text(Bytes::from_static(b"some text"));
    let mut bytes = e.clone();
    bytes.datacontenttype = Some("application/octet-stream".into());
    bytes.data = Data::Text(Bytes::from_static(&[0, 1, 255]));
    [e, with_text, bytes]
}

/// The structured-mode round trips' events from [`sample_events`] first: the bytes event's data as
/// `Binary` (non-text bytes travel as `data_base64` in the JSON format), plus a JSON-data event.
#[cfg(test)]
pub(crate) fn structured_samples(events: &mut Vec<Event>) {
    events[2].data = Data::Binary(Bytes::from_static(&[0, 1, 255]));
    let mut json = events[0].clone();
    json.datacontenttype = Some("application/json".into());
    json.data = Data::Json(Bytes::from_static(br#"{"a":[1,true,null]}"#));
    events.push(json);
}

/// A deterministic xorshift generator for the fuzz stand-in tests.
#[cfg(test)]
pub(crate) fn xorshift() -> impl FnMut() -> usize {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % 1_000_003).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_static_for_known_attributes() {
        for (binding, id) in [(&HTTP, "ce-id"), (&KAFKA, "ce_id"), (&NATS, "ce-id")] {
            assert!(matches!(header_name(binding, "id"), Cow::Borrowed(n) if n == id));
            assert!(matches!(
                header_name(binding, "knativeerrordata"),
                Cow::Borrowed(_)
            ));
            assert!(matches!(header_name(binding, "myext"), Cow::Owned(_)));
        }
        assert_eq!(header_name(&KAFKA, "myext"), "ce_myext");
        assert_eq!(attribute_name(&KAFKA, "CE_MyExt").as_deref(), Some("myext"));
        assert_eq!(attribute_name(&KAFKA, "ce-id"), None);
        assert_eq!(attribute_name(&NATS, "Ce-Id").as_deref(), Some("id"));
    }

    #[test]
    fn errors_name_the_binding_header() {
        assert_eq!(HTTP.field("datacontenttype"), "content-type");
        assert_eq!(NATS.field("datacontenttype"), "ce-datacontenttype");
        assert_eq!(KAFKA.field("time"), "ce_time");
        let e = AttributeDecoder::new(SpecVersion::V10)
            .finish(&KAFKA)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ce_id"));
        assert_eq!(e.message, "missing required header 'ce_id'");
    }
}
