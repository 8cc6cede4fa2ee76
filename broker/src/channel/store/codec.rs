//! Binary encodings private to the store.
//!
//! - `encode` / `decode`: the event codec, `crate::format::codec` (re-exported with the store's error type).
//! - `encode_park` / `decode_park`: the dead-letter record (trigger key, park time, [`ParkRecord`]).
//!
//! Layout: little-endian integers, strings and byte strings prefixed by a `u32` length, options by a
//! `0`/`1` tag byte. Decoding never panics on bad input: every read is bounds-checked.

use crate::channel::ParkRecord;
use crate::config::TriggerKey;
use crate::event::Event;

/// Decoding failure: the stored bytes are not a valid record.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// The input ended in the middle of a field.
    #[error("truncated record")]
    Truncated,
    /// A tag or version byte has an unknown value.
    #[error("invalid tag {0} in {1}")]
    BadTag(u8, &'static str),
    /// The embedded event is not a valid storage encoding.
    #[error("invalid event encoding: {0}")]
    Event(crate::format::codec::CodecError),
    /// A string field is not UTF-8.
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
}

const PARK_VERSION: u8 = 1;

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        // Events are bounded far below 4 GiB by ingress limits; saturate rather than panic.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.0.extend_from_slice(&b[..len as usize]);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self, field: &'static str) -> Result<String, CodecError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| CodecError::Utf8(field))
    }
    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string(field).map(Some),
            t => Err(CodecError::BadTag(t, field)),
        }
    }
}

/// The event encoding is the shared storage codec.
pub(crate) use crate::format::codec::encode;

/// Decodes an event written by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<Event, CodecError> {
    crate::format::codec::decode(bytes).map_err(CodecError::Event)
}

/// A decoded dead-letter record. `event_bytes` is the stored encoding of the event (so that a redrive
/// can store it again without re-encoding).
pub(crate) struct ParkEntry<'a> {
    pub trigger: TriggerKey,
    pub parked_at_ms: u64,
    pub record: ParkRecord,
    pub event_bytes: &'a [u8],
}

/// Encodes a dead-letter record.
pub(crate) fn encode_park(
    trigger: &TriggerKey,
    parked_at_ms: u64,
    record: &ParkRecord,
    out: &mut Vec<u8>,
) {
    let mut w = Writer(out);
    w.u8(PARK_VERSION);
    w.str(&trigger.namespace);
    w.str(&trigger.name);
    w.u64(parked_at_ms);
    w.str(&record.reason);
    w.opt_str(record.error_dest.as_deref());
    match record.error_code {
        None => w.u8(0),
        Some(c) => {
            w.u8(1);
            w.u16(c);
        }
    }
    w.opt_str(record.error_data.as_deref());
    // The event goes last and unprefixed so that `event_bytes` is a plain slice of the record.
    encode(&record.event, out);
}

/// Decodes a dead-letter record written by [`encode_park`].
pub(crate) fn decode_park(bytes: &[u8]) -> Result<ParkEntry<'_>, CodecError> {
    let mut r = Reader(bytes);
    match r.u8()? {
        PARK_VERSION => {}
        t => return Err(CodecError::BadTag(t, "dead-letter version")),
    }
    let namespace = r.string("trigger namespace")?;
    let name = r.string("trigger name")?;
    let parked_at_ms = r.u64()?;
    let reason = r.string("reason")?;
    let error_dest = r.opt_string("error_dest")?;
    let error_code = match r.u8()? {
        0 => None,
        1 => Some(r.u16()?),
        t => return Err(CodecError::BadTag(t, "error_code")),
    };
    let error_data = r.opt_string("error_data")?;
    let event_bytes = r.0;
    let event = decode(event_bytes)?;
    Ok(ParkEntry {
        trigger: TriggerKey { namespace, name },
        parked_at_ms,
        record: ParkRecord {
            reason,
            error_dest,
            error_code,
            error_data,
            event,
        },
        event_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Data, ExtValue, SpecVersion};
    use bytes::Bytes;

    fn sample() -> Event {
        let mut e = Event::new("id-1", "/src", "com.example.t");
        e.specversion = SpecVersion::V03;
        e.datacontenttype = Some("application/json".into());
        e.subject = Some("sub".into());
        e.time = Some("2024-01-01T00:00:00Z".into());
        e.set_extension("b", ExtValue::Bool(true));
        e.set_extension("i", ExtValue::Int(-7));
        e.set_extension("s", ExtValue::String("v".into()));
        e.data = Data::Json(Bytes::from_static(b"{\"a\":1}"));
        e
    }

    #[test]
    fn event_round_trips() {
        let e = sample();
        let mut buf = Vec::new();
        encode(&e, &mut buf);
        assert_eq!(decode(&buf).expect("decodes"), e);
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf);
        for n in 0..buf.len() {
            assert!(decode(&buf[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        assert!(decode(&[1, 9]).is_err());
        assert!(decode(&[1, 1, 255, 255, 255, 255]).is_err());
    }

    #[test]
    fn park_record_round_trips_and_exposes_event_bytes() {
        let record = ParkRecord {
            reason: "retries-exhausted".into(),
            error_dest: Some("http://sink".into()),
            error_code: Some(503),
            error_data: None,
            event: sample(),
        };
        let trigger = TriggerKey::new("ns", "t");
        let mut buf = Vec::new();
        encode_park(&trigger, 42, &record, &mut buf);
        let entry = decode_park(&buf).expect("decodes");
        assert_eq!(entry.trigger, trigger);
        assert_eq!(entry.parked_at_ms, 42);
        assert_eq!(entry.record, record);
        assert_eq!(decode(entry.event_bytes).expect("event"), record.event);
    }
}
