//! CloudEvents conformance: the JSON-format test files of cloudevents/conformance (`format/json/*.json`),
//! the JSON-format and batch examples of the spec, and the HTTP header percent-encoding vectors.
//! The data is a verbatim copy under `tests/data/ce-conformance/` (see its `NOTICE.md`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::PathBuf;
use switchyard_broker::event::{Data, Event, ExtValue, SpecVersion};
use switchyard_broker::format::http::{parse_request, write_binary, write_structured, Message};
use switchyard_broker::format::json::{parse_batch, parse_event, write_event};
use switchyard_broker::format::percent::{decode_header_value, encode_header_value};
use switchyard_broker::format::validate::rfc3339_instant;
use switchyard_broker::format::{FormatError, FormatErrorKind};

fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ce-conformance")
        .join(rel)
}

fn read(rel: &str) -> String {
    let text = std::fs::read_to_string(data_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    text.trim_start_matches('\u{feff}').to_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestFile {
    test_type: String,
    tests: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestCase {
    id: String,
    sample_id: Option<String>,
    test_type: Option<String>,
    event: Option<Box<RawValue>>,
    batch: Option<Box<RawValue>>,
}

fn load(rel: &str) -> Vec<(String, TestCase)> {
    let file: TestFile = serde_json::from_str(&read(rel)).unwrap();
    file.tests
        .into_iter()
        .map(|t| {
            (
                t.test_type
                    .clone()
                    .unwrap_or_else(|| file.test_type.clone()),
                t,
            )
        })
        .collect()
}

// === golden sample events (format/README.md) ===

fn minimal() -> Event {
    Event::new("minimal", "https://cloudevents.io", "io.cloudevents.test")
}

fn sample(id: &str) -> Event {
    let mut e = minimal();
    match id {
        "minimal" => {}
        "minimalWithTime" => {
            e.id = id.into();
            e.time = Some("2018-04-05T17:31:00Z".into());
        }
        "minimalWithRelativeSource" => {
            e.id = id.into();
            e.source = "#fragment".into();
        }
        "allCore" => {
            e.id = id.into();
            e.datacontenttype = Some("text/plain".into());
            e.dataschema = Some("https://cloudevents.io/dataschema".into());
            e.subject = Some("tests".into());
            e.time = Some("2018-04-05T17:31:00Z".into());
        }
        "simpleTextData" => {
            // format/README.md says id "simpleData", but the test file (and the sample id) use
            // "simpleTextData"; the test file is what is parsed, so follow it.
            e.id = "simpleTextData".into();
            e.datacontenttype = Some("text/plain".into());
            e.data = Data::Text(Bytes::from_static(b"Simple text"));
        }
        "allExtensionTypes" => {
            // No typed extension definitions: Binary, Timestamp, URI and URI-reference extensions are
            // carried as their canonical strings.
            e.id = id.into();
            e.set_extension("extinteger", ExtValue::Int(10));
            e.set_extension("extboolean", ExtValue::Bool(true));
            e.set_extension("extstring", ExtValue::String("text".into()));
            e.set_extension("extbinary", ExtValue::String("TWE=".into()));
            e.set_extension(
                "exttimestamp",
                ExtValue::String("2023-03-31T15:12:00Z".into()),
            );
            e.set_extension("exturi", ExtValue::String("https://cloudevents.io".into()));
            e.set_extension("exturiref", ExtValue::String("//authority/path".into()));
        }
        other => panic!("unknown sample event {other}"),
    }
    e
}

fn sample_batch(id: &str) -> Vec<Event> {
    match id {
        "empty" => vec![],
        "minimal" => vec![minimal()],
        "minimal2" => vec![minimal(), minimal()],
        "minimalAndAllCore" => vec![minimal(), sample("allCore")],
        "minimalAndAllExtensionTypes" => vec![minimal(), sample("allExtensionTypes")],
        other => panic!("unknown sample batch {other}"),
    }
}

/// Equality of CloudEvent-relevant content: timestamps compare as instants.
fn assert_same(test: &str, got: &Event, want: &Event) {
    match (&got.time, &want.time) {
        (Some(g), Some(w)) => {
            let gi = rfc3339_instant(g).unwrap_or_else(|| panic!("{test}: bad time {g}"));
            assert_eq!(Some(gi), rfc3339_instant(w), "{test}: time {g} vs {w}");
        }
        (g, w) => assert_eq!(g, w, "{test}: time"),
    }
    let (mut g, mut w) = (got.clone(), want.clone());
    g.time = None;
    w.time = None;
    assert_eq!(g, w, "{test}");
}

fn structured_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/cloudevents+json"),
    );
    h
}

fn batch_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/cloudevents-batch+json; charset=utf-8"),
    );
    h
}

fn single(m: Message) -> Event {
    match m {
        Message::Single(e) => e,
        Message::Batch(_) => panic!("expected a single event"),
    }
}

/// Re-encodes `e` in both HTTP modes and checks that the result parses back to the same event
/// (binary mode carries data as bytes, so its data/content type are compared separately).
fn check_reencoding(test: &str, e: &Event) {
    let mut h = HeaderMap::new();
    let body = write_structured(e, &mut h);
    assert_eq!(
        &single(parse_request(&h, body).unwrap()),
        e,
        "{test}: structured"
    );
    let mut h = HeaderMap::new();
    let body = write_binary(e, &mut h);
    let mut back = single(parse_request(&h, body).unwrap());
    assert_eq!(back.data.bytes(), e.data.bytes(), "{test}: binary data");
    back.data = e.data.clone();
    // Binary mode carries no extension types: every extension comes back as its canonical string.
    let canon = |ev: &Event| -> Vec<(String, String)> {
        ev.extensions
            .iter()
            .map(|(k, v)| (k.clone(), v.to_canonical().into_owned()))
            .collect()
    };
    assert_eq!(canon(&back), canon(e), "{test}: binary extensions");
    assert!(back
        .extensions
        .iter()
        .all(|(_, v)| matches!(v, ExtValue::String(_))));
    back.extensions = e.extensions.clone();
    assert_eq!(&back, e, "{test}: binary");
}

#[test]
fn valid_events() {
    let cases = load("format/json/valid-events.json");
    assert_eq!(cases.len(), 10);
    for (ty, t) in cases {
        assert_eq!(ty, "ValidSingleEvent");
        let raw = t.event.as_ref().unwrap().get();
        let want = sample(t.sample_id.as_deref().unwrap());
        let got = parse_event(raw.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", t.id));
        assert_same(&t.id, &got, &want);
        let via_http = single(
            parse_request(
                &structured_headers(),
                Bytes::copy_from_slice(raw.as_bytes()),
            )
            .unwrap(),
        );
        assert_eq!(via_http, got, "{}", t.id);
        check_reencoding(&t.id, &got);
    }
}

#[test]
fn valid_batches() {
    let cases = load("format/json/valid-batches.json");
    assert_eq!(cases.len(), 5);
    for (ty, t) in cases {
        assert_eq!(ty, "ValidBatch");
        let raw = t.batch.as_ref().unwrap().get();
        let want = sample_batch(t.sample_id.as_deref().unwrap());
        let got = parse_batch(raw.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", t.id));
        assert_eq!(got.len(), want.len(), "{}", t.id);
        for (g, w) in got.iter().zip(&want) {
            assert_same(&t.id, g, w);
        }
        match parse_request(&batch_headers(), Bytes::copy_from_slice(raw.as_bytes())) {
            Ok(Message::Batch(b)) => assert_eq!(b, got, "{}", t.id),
            other => panic!("{}: {other:?}", t.id),
        }
    }
}

fn expect_invalid(test: &str, r: Result<impl std::fmt::Debug, FormatError>, field: &str) {
    let e = match r {
        Ok(v) => panic!("{test}: accepted {v:?}"),
        Err(e) => e,
    };
    assert_eq!(e.kind, FormatErrorKind::Invalid, "{test}: {e}");
    assert_eq!(e.field.as_deref(), Some(field), "{test}: {e}");
    assert!(!e.message.is_empty());
}

#[test]
fn invalid_events() {
    // The attribute each rejection must name.
    let fields: BTreeMap<&str, &str> = [
        ("invalidNoSpecVersion", "specversion"),
        ("invalidNoId", "id"),
        ("invalidNoType", "type"),
        ("invalidNoSource", "source"),
        ("invalidTimeGarbage", "time"),
        ("invalidTimeToMinute", "time"),
        ("invalidTimeOffsetX", "time"),
        ("invalidTimeOffsetOutOfRange", "time"),
        ("invalidTimeOffsetNonInteger", "time"),
        ("invalidTimeOffsetHourOnly", "time"),
        ("invalidEmptyId", "id"),
        ("invalidEmptyType", "type"),
        ("invalidEmptySource", "source"),
        ("invalidEmptySpecVersion", "specversion"),
        ("invalidUnknownSpecVersion", "specversion"),
        ("invalidNonRfc2046DataContentType", "datacontenttype"),
        ("invalidEmptyDataContentType", "datacontenttype"),
        ("invalidEmptyDataSchema", "dataschema"),
        ("invalidEmptySubject", "subject"),
        ("invalidNumericId", "id"),
        ("invalidObjectId", "id"),
        ("invalidCapitalizedExtension", "MyExtension"),
        ("invalidPunctuatedExtension", "my.extension"),
        ("invalidNonIntegerExtensionValue", "my.extension"),
        ("invalidBothDataAndDataBase64", "data_base64"),
    ]
    .into_iter()
    .collect();
    let cases = load("format/json/invalid-events.json");
    assert_eq!(cases.len(), fields.len());
    for (ty, t) in cases {
        assert_eq!(ty, "InvalidSingleEvent");
        let field = fields
            .get(t.id.as_str())
            .unwrap_or_else(|| panic!("no expectation for {}", t.id));
        let raw = t.event.as_ref().unwrap().get();
        expect_invalid(&t.id, parse_event(raw.as_bytes()), field);
        expect_invalid(
            &t.id,
            parse_request(
                &structured_headers(),
                Bytes::copy_from_slice(raw.as_bytes()),
            ),
            field,
        );
        // The same event inside a batch is rejected as a whole, naming the element.
        expect_invalid(
            &t.id,
            parse_batch(format!("[{}, {raw}]", minimal_json_str()).as_bytes()),
            &format!("[1].{field}"),
        );
    }
}

fn minimal_json() -> Vec<u8> {
    let mut out = Vec::new();
    write_event(&minimal(), &mut out);
    out
}

fn minimal_json_str() -> String {
    String::from_utf8(minimal_json()).unwrap()
}

#[test]
fn invalid_batches() {
    let fields: BTreeMap<&str, &str> = [
        ("invalidBatchMixedSpecVersions", "[1].specversion"),
        ("invalidBatchContainingInvalidCloudEvent", "[0].id"),
        ("invalidBatchContainingNonObject", "[0]"),
    ]
    .into_iter()
    .collect();
    let cases = load("format/json/invalid-batches.json");
    assert_eq!(cases.len(), fields.len());
    for (ty, t) in cases {
        assert_eq!(ty, "InvalidBatch");
        let raw = t.batch.as_ref().unwrap().get();
        let field = fields[t.id.as_str()];
        expect_invalid(&t.id, parse_batch(raw.as_bytes()), field);
        expect_invalid(
            &t.id,
            parse_request(&batch_headers(), Bytes::copy_from_slice(raw.as_bytes())),
            field,
        );
    }
    // Mixed but individually valid specversions (rule 16).
    let v03 = minimal_json_str().replace("\"1.0\"", "\"0.3\"");
    let mixed = format!("[{}, {v03}]", minimal_json_str());
    expect_invalid(
        "mixed 1.0/0.3",
        parse_batch(mixed.as_bytes()),
        "[1].specversion",
    );
    let all03 = parse_batch(format!("[{v03}, {v03}]").as_bytes()).unwrap();
    assert!(all03.iter().all(|e| e.specversion == SpecVersion::V03));
}

// === spec examples (json-format.md §3.2 and §4.3) ===

fn yaml(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(rel)).unwrap()
}

fn json_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn json_format_examples() {
    let doc = yaml("spec-examples/json-format-3.2-examples.yaml");
    let cases = doc["cases"].as_sequence().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let structured = case["structured_json"].as_str().unwrap();
        let expected_headers: Vec<(String, String)> = case["http_binary_headers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected_body = case["http_binary_body"].as_str().unwrap();

        // The binary form always parses.
        let mut h = HeaderMap::new();
        for (k, v) in &expected_headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let from_binary = single(
            parse_request(&h, Bytes::copy_from_slice(expected_body.as_bytes()))
                .unwrap_or_else(|e| panic!("{name} binary: {e}")),
        );

        if !case["structured_json_valid"].as_bool().unwrap() {
            // Placeholder "... base64 encoded string ..." is not base64.
            expect_invalid(name, parse_event(structured.as_bytes()), "data_base64");
            continue;
        }
        let ev = parse_event(structured.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ev.extension("unsetextension"), None, "{name}");
        assert_eq!(ev.subject, None, "{name}");

        // Same attributes in both forms (binary extensions are strings: compare canonical forms).
        assert_eq!(
            (&ev.id, &ev.source, &ev.ty, &ev.time),
            (
                &from_binary.id,
                &from_binary.source,
                &from_binary.ty,
                &from_binary.time
            ),
            "{name}"
        );
        let canon = |e: &Event| -> Vec<(String, String)> {
            e.extensions
                .iter()
                .map(|(k, v)| (k.clone(), v.to_canonical().into_owned()))
                .collect()
        };
        assert_eq!(canon(&ev), canon(&from_binary), "{name}");

        // Re-encoding the structured event in binary mode gives exactly the spec's headers and body.
        let mut out = HeaderMap::new();
        let body = write_binary(&ev, &mut out);
        let got_headers: BTreeMap<String, String> = out
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let want_headers: BTreeMap<String, String> = expected_headers.into_iter().collect();
        assert_eq!(got_headers, want_headers, "{name}");
        match ev.datacontenttype.as_deref() {
            Some("application/xml") => assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                expected_body.trim_end(),
                "{name}"
            ),
            Some(_) => assert_eq!(
                json_value(&body),
                json_value(expected_body.as_bytes()),
                "{name}"
            ),
            None if matches!(ev.data, Data::Binary(_)) => {
                assert_eq!(&body[..], expected_body.trim_end().as_bytes(), "{name}")
            }
            None => {
                assert!(matches!(ev.data, Data::Json(_)), "{name}");
                assert_eq!(
                    json_value(&body),
                    json_value(expected_body.as_bytes()),
                    "{name}"
                );
            }
        }

        // Structured re-encoding is the same JSON value minus the null members.
        let mut out = Vec::new();
        write_event(&ev, &mut out);
        let mut want = json_value(structured.as_bytes());
        want.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        assert_eq!(json_value(&out), want, "{name}");
    }
}

#[test]
fn batch_examples() {
    let doc = yaml("spec-examples/json-format-4.3-batch-examples.yaml");
    for case in doc["cases"].as_sequence().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(case["content_type"].as_str().unwrap()).unwrap(),
        );
        let body = Bytes::from(case["body"].as_str().unwrap().to_owned());
        let r = parse_request(&h, body);
        if case["body_has_placeholders"].as_bool().unwrap() {
            expect_invalid(name, r, "[0].data_base64");
        } else {
            assert!(
                matches!(r, Ok(Message::Batch(ref v)) if v.is_empty()),
                "{name}: {r:?}"
            );
        }
    }
}

// === HTTP header percent-encoding (http-protocol-binding.md §3.1.3.2) ===

#[test]
fn percent_encoding_vectors() {
    let doc = yaml("spec-examples/http-header-percent-encoding-vectors.yaml");
    for v in doc["encode"].as_sequence().unwrap() {
        let value = v["attribute_value"].as_str().unwrap();
        let header = v["header_value"].as_str().unwrap();
        let mut out = String::new();
        encode_header_value(value, &mut out);
        assert_eq!(out, header);
        assert_eq!(decode_header_value(header.as_bytes()).unwrap(), value);
        assert_eq!(
            decode_header_value(header.to_ascii_lowercase().as_bytes()).unwrap(),
            value.to_lowercase(),
            "lower-case hex accepted"
        );
    }
    for v in doc["decode_reject"].as_sequence().unwrap() {
        let header = v["header_value"].as_str().unwrap();
        assert!(decode_header_value(header.as_bytes()).is_err(), "{header}");
    }
    // Lower-case hex and unnecessary encodings.
    assert_eq!(decode_header_value(b"%e2%82%ac%41b").unwrap(), "€Ab");
    // Quoted-string unescape (with backslash escapes) before one round of percent-decoding.
    assert_eq!(
        decode_header_value(br#""Euro \"%E2%82%AC\" back\\slash %2541""#).unwrap(),
        "Euro \"€\" back\\slash %41"
    );
    // Must-encode characters.
    let mut out = String::new();
    encode_header_value(" \"%\u{7f}\u{1}~!", &mut out);
    assert_eq!(out, "%20%22%25%7F%01~!");

    // End to end: a binary-mode request with encoded headers.
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "\"quoted\\\"id\""),
        ("ce-source", "/s"),
        ("ce-type", "t"),
        ("ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
    ] {
        h.insert(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let e = single(parse_request(&h, Bytes::new()).unwrap());
    assert_eq!(e.id, "quoted\"id");
    assert_eq!(e.subject.as_deref(), Some("Euro € 😀"));
    h.insert("ce-subject", HeaderValue::from_static("%C0%A0"));
    expect_invalid("overlong", parse_request(&h, Bytes::new()), "ce-subject");
}
