//! The CloudEvent model used everywhere inside Switchyard.
//!
//! It is a plain owned struct (no URL or timestamp parsing on the hot path): values are validated once
//! at the edge (`crate::format`) and then carried as their canonical strings. Extensions are kept sorted
//! by name so lookups are a binary search and serialization is deterministic.

use bytes::Bytes;
use std::borrow::Cow;

/// Extension attribute used for loop protection (Knative `knativebrokerttl`).
pub const TTL_EXTENSION: &str = "knativebrokerttl";
/// Extension attribute stamped at ingress with the arrival time (RFC 3339).
pub const ARRIVAL_TIME_EXTENSION: &str = "knativearrivaltime";
/// Default TTL given to events that arrive without one.
pub const DEFAULT_TTL: i32 = 255;

/// CloudEvents spec version of an event. Both are accepted at ingress and kept on egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecVersion {
    /// CloudEvents 0.3.
    V03,
    /// CloudEvents 1.0.
    V10,
}

impl SpecVersion {
    /// The canonical string (`"0.3"` or `"1.0"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V03 => "0.3",
            SpecVersion::V10 => "1.0",
        }
    }

    /// Parses `"0.3"` / `"1.0"`; anything else is unsupported.
    pub fn parse(s: &str) -> Option<SpecVersion> {
        match s {
            "1.0" => Some(SpecVersion::V10),
            "0.3" => Some(SpecVersion::V03),
            _ => None,
        }
    }
}

/// Value of an extension attribute. The JSON format distinguishes booleans and integers; every other
/// CloudEvents type (String, Binary, URI, URI-reference, Timestamp) travels as its canonical string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtValue {
    /// CloudEvents Boolean.
    Bool(bool),
    /// CloudEvents Integer (32-bit signed).
    Int(i32),
    /// Any string-encoded type.
    String(String),
}

impl ExtValue {
    /// Length in bytes of [`ExtValue::to_canonical`], without building the string.
    pub fn canonical_len(&self) -> usize {
        match self {
            ExtValue::Bool(true) => 4,
            ExtValue::Bool(false) => 5,
            ExtValue::Int(i) => {
                let mut n = usize::from(*i < 0) + 1;
                let mut v = i.unsigned_abs();
                while v >= 10 {
                    v /= 10;
                    n += 1;
                }
                n
            }
            ExtValue::String(s) => s.len(),
        }
    }

    /// Canonical string form (what a binary-mode header carries).
    pub fn to_canonical(&self) -> Cow<'_, str> {
        match self {
            ExtValue::Bool(true) => Cow::Borrowed("true"),
            ExtValue::Bool(false) => Cow::Borrowed("false"),
            ExtValue::Int(i) => Cow::Owned(i.to_string()),
            ExtValue::String(s) => Cow::Borrowed(s),
        }
    }
}

/// The payload of an event and how it arrived, so that it can be re-encoded faithfully.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Data {
    /// No data.
    #[default]
    None,
    /// Raw JSON text of a structured-mode `data` member whose content type declares JSON (or is absent).
    Json(Bytes),
    /// Bytes that came as `data_base64` (or 0.3 `datacontentencoding: base64`): re-encoded as base64 in
    /// structured mode.
    Binary(Bytes),
    /// Bytes from a binary-mode body, or the UTF-8 of a structured-mode string `data` with a non-JSON
    /// content type.
    Text(Bytes),
}

impl Data {
    /// The payload bytes as a binary-mode body would carry them.
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            Data::None => None,
            Data::Json(b) | Data::Binary(b) | Data::Text(b) => Some(b),
        }
    }

    /// Copies the payload into an allocation of its own. A payload parsed without copying is a view
    /// into the request's network buffer and keeps that whole buffer (often many times the payload)
    /// alive; anything kept in memory for long (a trigger's buffered deliveries) must not pin it.
    pub fn detach(&mut self) {
        match self {
            Data::None => {}
            Data::Json(b) | Data::Binary(b) | Data::Text(b) => *b = Bytes::copy_from_slice(b),
        }
    }
}

/// A validated CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `specversion`.
    pub specversion: SpecVersion,
    /// `id` (non-empty).
    pub id: String,
    /// `source` (non-empty URI-reference).
    pub source: String,
    /// `type` (non-empty).
    pub ty: String,
    /// `datacontenttype` (RFC 2046 media type), if set.
    pub datacontenttype: Option<String>,
    /// `dataschema` (1.0) or `schemaurl` (0.3), if set.
    pub dataschema: Option<String>,
    /// `subject`, if set (non-empty).
    pub subject: Option<String>,
    /// `time` as its RFC 3339 string, if set.
    pub time: Option<String>,
    /// Extension attributes, sorted by name, names unique.
    pub extensions: Vec<(String, ExtValue)>,
    /// The payload.
    pub data: Data,
}

/// A borrowed view of one attribute value, as filters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// A string-typed attribute.
    Str(&'a str),
    /// A boolean extension.
    Bool(bool),
    /// An integer extension.
    Int(i32),
}

impl AttrValue<'_> {
    /// Canonical string form.
    pub fn to_canonical(&self) -> Cow<'_, str> {
        match self {
            AttrValue::Str(s) => Cow::Borrowed(s),
            AttrValue::Bool(true) => Cow::Borrowed("true"),
            AttrValue::Bool(false) => Cow::Borrowed("false"),
            AttrValue::Int(i) => Cow::Owned(i.to_string()),
        }
    }
}

impl Event {
    /// A minimal 1.0 event, mostly for tests and examples.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Event {
        Event {
            specversion: SpecVersion::V10,
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: Vec::new(),
            data: Data::None,
        }
    }

    /// Looks up any context attribute (core or extension) by its lower-case name.
    /// `schemaurl` is accepted as an alias of `dataschema` for 0.3 events.
    pub fn attribute(&self, name: &str) -> Option<AttrValue<'_>> {
        fn s(v: &Option<String>) -> Option<AttrValue<'_>> {
            v.as_deref().map(AttrValue::Str)
        }
        match name {
            "specversion" => Some(AttrValue::Str(self.specversion.as_str())),
            "id" => Some(AttrValue::Str(&self.id)),
            "source" => Some(AttrValue::Str(&self.source)),
            "type" => Some(AttrValue::Str(&self.ty)),
            "datacontenttype" => s(&self.datacontenttype),
            "dataschema" => s(&self.dataschema),
            "schemaurl" if self.specversion == SpecVersion::V03 => s(&self.dataschema),
            "subject" => s(&self.subject),
            "time" => s(&self.time),
            _ => self.extension(name).map(|v| match v {
                ExtValue::Bool(b) => AttrValue::Bool(*b),
                ExtValue::Int(i) => AttrValue::Int(*i),
                ExtValue::String(s) => AttrValue::Str(s),
            }),
        }
    }

    /// Looks up an extension attribute.
    pub fn extension(&self, name: &str) -> Option<&ExtValue> {
        self.extensions
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &self.extensions[i].1)
    }

    /// Sets (or replaces) an extension attribute, keeping the list sorted.
    pub fn set_extension(&mut self, name: &str, value: ExtValue) {
        match self
            .extensions
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
        {
            Ok(i) => self.extensions[i].1 = value,
            Err(i) => self.extensions.insert(i, (name.to_owned(), value)),
        }
    }

    /// Removes an extension attribute, returning its value.
    pub fn remove_extension(&mut self, name: &str) -> Option<ExtValue> {
        match self
            .extensions
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
        {
            Ok(i) => Some(self.extensions.remove(i).1),
            Err(_) => None,
        }
    }

    /// The `knativebrokerttl` value, if present and an integer (a numeric string counts).
    pub fn ttl(&self) -> Option<i32> {
        match self.extension(TTL_EXTENSION)? {
            ExtValue::Int(i) => Some(*i),
            ExtValue::String(s) => s.parse().ok(),
            ExtValue::Bool(_) => None,
        }
    }

    /// Applies the ingress TTL rule (Switchyard decision 6) and stamps the arrival time: a missing or
    /// non-integer `knativebrokerttl` becomes [`DEFAULT_TTL`], a present one is decremented. Returns
    /// `false` (and leaves the event unchanged) when the result is ≤ 0: a loop was detected.
    pub fn stamp_ingress(&mut self, arrival: &str) -> bool {
        let ttl = match self.ttl() {
            Some(t) => t.saturating_sub(1),
            None => DEFAULT_TTL,
        };
        if ttl <= 0 {
            return false;
        }
        // Room for the two stamped extensions in one growth rather than two.
        self.extensions.reserve(2);
        self.set_extension(TTL_EXTENSION, ExtValue::Int(ttl));
        self.set_extension(ARRIVAL_TIME_EXTENSION, ExtValue::String(arrival.to_owned()));
        true
    }

    /// Approximate in-memory/wire size, used for limits and metrics.
    pub fn approx_size(&self) -> usize {
        let opt = |v: &Option<String>| v.as_ref().map_or(0, |s| s.len());
        self.id.len()
            + self.source.len()
            + self.ty.len()
            + opt(&self.datacontenttype)
            + opt(&self.dataschema)
            + opt(&self.subject)
            + opt(&self.time)
            + self
                .extensions
                .iter()
                .map(|(k, v)| k.len() + v.canonical_len())
                .sum::<usize>()
            + self.data.bytes().map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_stay_sorted_and_unique() {
        let mut e = Event::new("1", "/s", "t");
        e.set_extension("b", ExtValue::Int(1));
        e.set_extension("a", ExtValue::Bool(true));
        e.set_extension("b", ExtValue::Int(2));
        assert_eq!(
            e.extensions,
            vec![
                ("a".to_owned(), ExtValue::Bool(true)),
                ("b".to_owned(), ExtValue::Int(2))
            ]
        );
        assert_eq!(e.attribute("b"), Some(AttrValue::Int(2)));
        assert_eq!(e.remove_extension("a"), Some(ExtValue::Bool(true)));
        assert_eq!(e.attribute("a"), None);
        assert_eq!(e.attribute("type"), Some(AttrValue::Str("t")));
        assert_eq!(e.attribute("subject"), None);
    }

    #[test]
    fn canonical_len_matches_the_canonical_string() {
        for v in [
            ExtValue::Bool(true),
            ExtValue::Bool(false),
            ExtValue::Int(0),
            ExtValue::Int(9),
            ExtValue::Int(10),
            ExtValue::Int(255),
            ExtValue::Int(-1),
            ExtValue::Int(-10),
            ExtValue::Int(i32::MAX),
            ExtValue::Int(i32::MIN),
            ExtValue::String("héllo".into()),
        ] {
            assert_eq!(v.canonical_len(), v.to_canonical().len(), "{v:?}");
        }
    }

    #[test]
    fn ingress_ttl_rule() {
        let mut e = Event::new("1", "/s", "t");
        assert!(e.stamp_ingress("2020-01-01T00:00:00Z"));
        assert_eq!(e.ttl(), Some(DEFAULT_TTL));
        assert!(e.extension(ARRIVAL_TIME_EXTENSION).is_some());
        assert!(e.stamp_ingress("x"));
        assert_eq!(e.ttl(), Some(DEFAULT_TTL - 1));
        e.set_extension(TTL_EXTENSION, ExtValue::String("2".into()));
        assert!(e.stamp_ingress("x"));
        assert_eq!(e.ttl(), Some(1));
        assert!(!e.stamp_ingress("x"), "1 - 1 = 0 is a loop");
        e.set_extension(TTL_EXTENSION, ExtValue::String("not a number".into()));
        assert!(e.stamp_ingress("x"));
        assert_eq!(e.ttl(), Some(DEFAULT_TTL));
    }
}
