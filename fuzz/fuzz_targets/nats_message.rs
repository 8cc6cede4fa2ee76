//! Arbitrary headers and payload into the NATS binding's `decode`: nothing may panic; whatever
//! decodes must be valid, re-encode in both NATS modes and decode again to the same id and time.
//!
//! Input layout: byte 0 = number of headers (mod 16); each header = name length byte, name bytes,
//! value length byte, value bytes; the rest is the payload. Header names that are not UTF-8 are
//! skipped (NATS clients expose names as strings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_broker::config::ContentMode;
use switchyard_broker::nats::binding::{decode, encode, NatsMessage};
use switchyard_broker::format::validate::validate_event;

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n).min(rest.len());
    let (field, rest) = rest.split_at(n);
    *data = rest;
    Some(field)
}

fn decode_message(m: &NatsMessage) -> switchyard_broker::event::Event {
    let headers: Vec<(&str, &[u8])> = m
        .headers
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_bytes()))
        .collect();
    decode(&headers, &m.payload).expect("re-encoding must decode")
}

fuzz_target!(|input: &[u8]| {
    let Some((&count, mut data)) = input.split_first() else {
        return;
    };
    let mut headers = Vec::new();
    for _ in 0..count % 16 {
        let (Some(name), Some(value)) = (take(&mut data), take(&mut data)) else {
            break;
        };
        if let Ok(name) = std::str::from_utf8(name) {
            headers.push((name, value));
        }
    }
    let Ok(event) = decode(&headers, data) else {
        return;
    };
    validate_event(&event).expect("a decoded event is valid");
    for mode in [ContentMode::Binary, ContentMode::Structured] {
        let again = decode_message(&encode(&event, mode));
        assert_eq!(again.id, event.id);
        assert_eq!(again.time, event.time);
    }
});
