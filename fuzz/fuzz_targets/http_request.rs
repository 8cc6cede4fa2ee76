//! Arbitrary headers and body into `parse_request` / `parse_response`; whatever parses must re-encode
//! in both HTTP modes and parse again.
//!
//! Input layout: byte 0 = number of headers (mod 16); each header = name length byte, name bytes,
//! value length byte, value bytes; the rest is the body. Header names/values the `http` crate rejects
//! are skipped.
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard_broker::format::http::{
    parse_request, parse_response, write_binary, write_structured, Message,
};

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n).min(rest.len());
    let (field, rest) = rest.split_at(n);
    *data = rest;
    Some(field)
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let mut headers = HeaderMap::new();
    if let Some((&count, rest)) = data.split_first() {
        data = rest;
        for _ in 0..count % 16 {
            let (Some(name), Some(value)) = (take(&mut data), take(&mut data)) else {
                break;
            };
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                headers.append(n, v);
            }
        }
    }
    let body = Bytes::copy_from_slice(data);
    let _ = parse_response(&headers, body.clone());
    let events = match parse_request(&headers, body) {
        Ok(Message::Single(e)) => vec![e],
        Ok(Message::Batch(v)) => v,
        Err(_) => return,
    };
    for e in events {
        let mut h = HeaderMap::new();
        let b = write_structured(&e, &mut h);
        let again = parse_request(&h, b).expect("structured re-encoding must parse");
        assert!(matches!(again, Message::Single(ref x) if x.id == e.id));
        let mut h = HeaderMap::new();
        let b = write_binary(&e, &mut h);
        let again = parse_request(&h, b).expect("binary re-encoding must parse");
        assert!(matches!(again, Message::Single(ref x) if x.id == e.id && x.time == e.time));
    }
});
