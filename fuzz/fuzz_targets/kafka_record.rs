//! Arbitrary key, headers and value into the Kafka binding's `decode` and `wrap_raw`: nothing may
//! panic; whatever decodes must re-encode in both Kafka modes and decode again, and a wrapped plain
//! record must always be a valid event.
//!
//! Input layout: byte 0 = flags (bit 0: the record has a key, bit 1: the value is null); byte 1 =
//! number of headers (mod 16); the key (if any) = length byte + bytes; each header = name length byte,
//! name bytes, value length byte (255 = null value), value bytes; the rest is the value. Header names
//! that are not UTF-8 are skipped (Kafka clients expose names as strings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_broker::config::ContentMode;
use switchyard_broker::kafka::binding::{decode, encode, wrap_raw, Decoded, KafkaRecord, RawRecord};
use switchyard_broker::format::validate::validate_event;

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n).min(rest.len());
    let (field, rest) = rest.split_at(n);
    *data = rest;
    Some(field)
}

fn take_nullable<'a>(data: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    if data.first() == Some(&255) {
        *data = &data[1..];
        return Some(None);
    }
    take(data).map(Some)
}

fn decode_record(r: &KafkaRecord<'_>) -> Decoded {
    let headers: Vec<(&str, Option<&[u8]>)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_ref(), Some(v.as_ref())))
        .collect();
    decode(r.key.as_deref(), &headers, r.value.as_deref()).expect("re-encoding must decode")
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let (Some((&flags, rest)), true) = (data.split_first(), data.len() >= 2) else {
        return;
    };
    let count = rest[0] % 16;
    data = &rest[1..];
    let key = if flags & 1 != 0 {
        take(&mut data)
    } else {
        None
    };
    let mut headers = Vec::new();
    for _ in 0..count {
        let (Some(name), Some(value)) = (take(&mut data), take_nullable(&mut data)) else {
            break;
        };
        if let Ok(name) = std::str::from_utf8(name) {
            headers.push((name, value));
        }
    }
    let value = if flags & 2 != 0 { None } else { Some(data) };

    let wrapped = wrap_raw(
        "ns",
        "src",
        &RawRecord {
            topic: "topic",
            partition: i32::from(flags),
            offset: i64::from(count),
            timestamp_ms: Some(i64::from(flags) * 1_000_000_007),
            key,
            headers: &headers,
            value,
        },
    );
    validate_event(&wrapped).expect("a wrapped record is a valid event");

    let Ok(Decoded::Event(event)) = decode(key, &headers, value) else {
        return;
    };
    for mode in [ContentMode::Binary, ContentMode::Structured] {
        match decode_record(&encode(&event, mode)) {
            Decoded::Event(again) => {
                assert_eq!(again.id, event.id);
                assert_eq!(again.time, event.time);
            }
            Decoded::NotCloudEvent => panic!("an encoded event must decode as a CloudEvent"),
        }
    }
});
