//! Compact binary storage encoding of an [`Event`] (what the channel stores on disk).
//!
//! Layout (version 1), all lengths unsigned LEB128 varints (at most `u32`):
//!
//! ```text
//! u8 version (=1) | u8 specversion (0 = 0.3, 1 = 1.0) | str id | str source | str type
//! | u8 optional-presence bits (1 datacontenttype, 2 dataschema, 4 subject, 8 time) | present strs in that order
//! | varint n | n × (str name | u8 tag (0 false, 1 true, 2 int: 4 bytes LE, 3 str))
//! | u8 data tag (0 none, 1 json, 2 binary, 3 text) | bytes (for tags 1–3)
//! ```
//!
//! Decoding checks every length against the remaining input before slicing, validates UTF-8, requires
//! minimal varints and strictly sorted extensions and rejects trailing bytes (so decode∘encode is the
//! identity on valid records), so corrupt input yields a [`CodecError`],
//! never a panic or an oversized allocation.

use crate::event::{Data, Event, ExtValue, SpecVersion};
use bytes::Bytes;

/// Current version byte of the encoding.
pub const VERSION: u8 = 1;

/// Why stored bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended in the middle of a value.
    #[error("truncated event record")]
    Truncated,
    /// The record was written by an unknown version of the encoding.
    #[error("unsupported event record version {0}")]
    UnsupportedVersion(u8),
    /// A tag byte has no meaning.
    #[error("invalid {what} tag {tag}")]
    InvalidTag {
        /// Which tag.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// A length does not fit in 32 bits (or its varint is malformed).
    #[error("invalid length prefix")]
    InvalidLength,
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// Extensions are not strictly sorted by name.
    #[error("extensions are not sorted and unique")]
    UnsortedExtensions,
    /// Bytes remain after the record.
    #[error("{0} trailing bytes after event record")]
    TrailingBytes(usize),
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Appends the storage encoding of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    out.reserve(event.approx_size() + 16 + 6 * event.extensions.len());
    out.push(VERSION);
    out.push(match event.specversion {
        SpecVersion::V03 => 0,
        SpecVersion::V10 => 1,
    });
    put_bytes(out, event.id.as_bytes());
    put_bytes(out, event.source.as_bytes());
    put_bytes(out, event.ty.as_bytes());
    let opts = [
        &event.datacontenttype,
        &event.dataschema,
        &event.subject,
        &event.time,
    ];
    let mut bits = 0u8;
    for (i, o) in opts.iter().enumerate() {
        if o.is_some() {
            bits |= 1 << i;
        }
    }
    out.push(bits);
    for s in opts.into_iter().flatten() {
        put_bytes(out, s.as_bytes());
    }
    put_len(out, event.extensions.len());
    for (name, value) in &event.extensions {
        put_bytes(out, name.as_bytes());
        match value {
            ExtValue::Bool(false) => out.push(0),
            ExtValue::Bool(true) => out.push(1),
            ExtValue::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            ExtValue::String(s) => {
                out.push(3);
                put_bytes(out, s.as_bytes());
            }
        }
    }
    let (tag, data) = match &event.data {
        Data::None => (0, None),
        Data::Json(b) => (1, Some(b)),
        Data::Binary(b) => (2, Some(b)),
        Data::Text(b) => (3, Some(b)),
    };
    out.push(tag);
    if let Some(b) = data {
        put_bytes(out, b);
    }
}

/// Decodes a record written by [`encode`]. Data is copied out of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Event, CodecError> {
    Reader {
        buf: bytes,
        pos: 0,
        backing: None,
    }
    .event()
}

/// Like [`decode`], but the event data is a zero-copy slice of `bytes`.
pub fn decode_bytes(bytes: &Bytes) -> Result<Event, CodecError> {
    Reader {
        buf: bytes,
        pos: 0,
        backing: Some(bytes),
    }
    .event()
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    backing: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn len(&mut self) -> Result<usize, CodecError> {
        let mut n: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // Only minimal encodings are valid, so that decoding and encoding are inverse.
                if b == 0 && shift != 0 {
                    return Err(CodecError::InvalidLength);
                }
                return usize::try_from(u32::try_from(n).map_err(|_| CodecError::InvalidLength)?)
                    .map_err(|_| CodecError::InvalidLength);
            }
        }
        Err(CodecError::InvalidLength)
    }

    fn take(&mut self, n: usize) -> Result<(usize, &'a [u8]), CodecError> {
        let start = self.pos;
        let end = start.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.buf.get(start..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok((start, s))
    }

    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.len()?;
        let (start, s) = self.take(n)?;
        Ok(match self.backing {
            Some(b) => b.slice(start..start + n),
            None => Bytes::copy_from_slice(s),
        })
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let n = self.len()?;
        let (_, s) = self.take(n)?;
        std::str::from_utf8(s).map_err(|_| CodecError::InvalidUtf8)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.str().map(str::to_owned)
    }

    fn event(mut self) -> Result<Event, CodecError> {
        let version = self.u8()?;
        if version != VERSION {
            return Err(CodecError::UnsupportedVersion(version));
        }
        let specversion = match self.u8()? {
            0 => SpecVersion::V03,
            1 => SpecVersion::V10,
            tag => {
                return Err(CodecError::InvalidTag {
                    what: "specversion",
                    tag,
                })
            }
        };
        let id = self.string()?;
        let source = self.string()?;
        let ty = self.string()?;
        let bits = self.u8()?;
        if bits & !0x0f != 0 {
            return Err(CodecError::InvalidTag {
                what: "presence",
                tag: bits,
            });
        }
        let mut opt = |bit: u8| -> Result<Option<String>, CodecError> {
            if bits & bit != 0 {
                self.string().map(Some)
            } else {
                Ok(None)
            }
        };
        let datacontenttype = opt(1)?;
        let dataschema = opt(2)?;
        let subject = opt(4)?;
        let time = opt(8)?;
        let n = self.len()?;
        // Each extension takes at least 2 bytes: never pre-allocate more than the input can hold.
        let mut extensions: Vec<(String, ExtValue)> =
            Vec::with_capacity(n.min(self.buf.len().saturating_sub(self.pos) / 2));
        for _ in 0..n {
            let name = self.str()?;
            if let Some((last, _)) = extensions.last() {
                if last.as_str() >= name {
                    return Err(CodecError::UnsortedExtensions);
                }
            }
            let value = match self.u8()? {
                0 => ExtValue::Bool(false),
                1 => ExtValue::Bool(true),
                2 => {
                    let (_, b) = self.take(4)?;
                    ExtValue::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                3 => ExtValue::String(self.string()?),
                tag => {
                    return Err(CodecError::InvalidTag {
                        what: "extension value",
                        tag,
                    })
                }
            };
            extensions.push((name.to_owned(), value));
        }
        let data = match self.u8()? {
            0 => Data::None,
            1 => Data::Json(self.bytes()?),
            2 => Data::Binary(self.bytes()?),
            3 => Data::Text(self.bytes()?),
            tag => return Err(CodecError::InvalidTag { what: "data", tag }),
        };
        if self.pos != self.buf.len() {
            return Err(CodecError::TrailingBytes(self.buf.len() - self.pos));
        }
        Ok(Event {
            specversion,
            id,
            source,
            ty,
            datacontenttype,
            dataschema,
            subject,
            time,
            extensions,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_event() -> Event {
        let mut e = Event::new("id-1", "https://example.com/src", "com.example.t");
        e.datacontenttype = Some("application/json".into());
        e.dataschema = Some("https://example.com/schema".into());
        e.subject = Some("subj €".into());
        e.time = Some("2018-04-05T17:31:00Z".into());
        e.set_extension("b", ExtValue::Bool(true));
        e.set_extension("f", ExtValue::Bool(false));
        e.set_extension("i", ExtValue::Int(-42));
        e.set_extension("s", ExtValue::String("x".repeat(300)));
        e.data = Data::Json(Bytes::from_static(b"{\"a\":1}"));
        e
    }

    #[test]
    fn round_trips() {
        let mut events = vec![Event::new("1", "/s", "t"), full_event()];
        for data in [
            Data::Binary(Bytes::from_static(&[0, 159, 255])),
            Data::Text(Bytes::from(vec![b'z'; 200])),
        ] {
            let mut e = full_event();
            e.data = data;
            events.push(e);
        }
        let mut e03 = full_event();
        e03.specversion = SpecVersion::V03;
        events.push(e03);
        for e in events {
            let mut buf = Vec::new();
            encode(&e, &mut buf);
            assert_eq!(decode(&buf).unwrap(), e);
            assert_eq!(decode_bytes(&Bytes::from(buf)).unwrap(), e);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut buf = Vec::new();
        encode(&full_event(), &mut buf);
        for n in 0..buf.len() {
            assert!(decode(&buf[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut extra = buf.clone();
        extra.push(0);
        assert_eq!(decode(&extra), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert_eq!(decode(&[9]), Err(CodecError::UnsupportedVersion(9)));
        assert!(matches!(
            decode(&[1, 7]),
            Err(CodecError::InvalidTag { .. })
        ));
        // Huge length prefix.
        assert_eq!(
            decode(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            decode(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(CodecError::InvalidLength)
        );
        // Non-minimal varint.
        assert_eq!(decode(&[1, 1, 0x81, 0x00]), Err(CodecError::InvalidLength));
        // Invalid UTF-8 id.
        assert_eq!(decode(&[1, 1, 1, 0xff]), Err(CodecError::InvalidUtf8));
        // Unsorted extensions.
        let mut e = Event::new("1", "/s", "t");
        e.extensions = vec![
            ("b".into(), ExtValue::Bool(true)),
            ("a".into(), ExtValue::Bool(true)),
        ];
        let mut buf = Vec::new();
        encode(&e, &mut buf);
        assert_eq!(decode(&buf), Err(CodecError::UnsortedExtensions));
        // Pseudo-random garbage, and every single-byte corruption of a valid record.
        let mut valid = Vec::new();
        encode(&full_event(), &mut valid);
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..400 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decode(&garbage);
        }
        for i in 0..valid.len() {
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut c = valid.clone();
                c[i] = b;
                let _ = decode(&c);
            }
        }
    }
}
