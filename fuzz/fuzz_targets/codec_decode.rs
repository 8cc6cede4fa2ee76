//! Arbitrary bytes into the storage codec: never panics; whatever decodes re-encodes to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard_broker::format::codec;

fuzz_target!(|data: &[u8]| {
    let copied = codec::decode(data);
    let shared = codec::decode_bytes(&Bytes::copy_from_slice(data));
    assert_eq!(copied.is_ok(), shared.is_ok());
    if let Ok(event) = copied {
        let mut out = Vec::new();
        codec::encode(&event, &mut out);
        assert_eq!(out, data, "decode/encode must be canonical");
    }
});
