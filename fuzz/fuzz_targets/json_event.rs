//! Arbitrary bytes into the JSON format parsers; a parsed event must survive write → parse unchanged
//! in its attributes, and the storage codec must round-trip it exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_broker::format::{codec, json};

fuzz_target!(|data: &[u8]| {
    let _ = json::parse_batch(data);
    let Ok(event) = json::parse_event(data) else {
        return;
    };
    let mut out = Vec::new();
    json::write_event(&event, &mut out);
    let again = json::parse_event(&out).expect("written event must parse");
    assert_eq!(
        (
            &again.id,
            &again.source,
            &again.ty,
            &again.time,
            &again.extensions
        ),
        (
            &event.id,
            &event.source,
            &event.ty,
            &event.time,
            &event.extensions
        )
    );
    let mut stored = Vec::new();
    codec::encode(&event, &mut stored);
    assert_eq!(codec::decode(&stored).expect("codec round-trip"), event);
});
