//! HTTP header value encoding for binary-mode attributes (HTTP binding §3.1.3.2, rules 35–36).

use super::FormatError;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes a binary-mode header value: first the RFC 7230 §3.2.6 quoted-string unescape (when the
/// value is enclosed in double quotes, backslash escapes included), then exactly one round of
/// percent-decoding (upper- or lower-case hex, unnecessary encodings accepted). The result must be
/// valid UTF-8 (so overlong forms such as `%C0%A0` are rejected). The error has no field: the caller
/// knows the header name.
pub fn decode_header_value(raw: &[u8]) -> Result<String, FormatError> {
    // Fast path: the common case is plain visible ASCII with nothing to decode.
    if !raw.contains(&b'%') && raw.first() != Some(&b'"') {
        return match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(FormatError::invalid_message(
                "header value is not valid UTF-8",
            )),
        };
    }
    let unquoted;
    let input: &[u8] = if raw.len() >= 2 && raw[0] == b'"' && raw[raw.len() - 1] == b'"' {
        unquoted = unquote(&raw[1..raw.len() - 1])?;
        &unquoted
    } else {
        raw
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            let hi = input.get(i + 1).and_then(|c| hex_val(*c));
            let lo = input.get(i + 2).and_then(|c| hex_val(*c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => {
                    return Err(FormatError::invalid_message(
                        "header value has a '%' not followed by two hex digits",
                    ))
                }
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| FormatError::invalid_message("header value does not decode to valid UTF-8"))
}

/// RFC 7230 quoted-string content (between the quotes): `\x` stands for `x`; a bare `"` or a trailing
/// lone backslash is malformed.
fn unquote(inner: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&b) = it.next() {
        match b {
            b'\\' => match it.next() {
                Some(&c) => out.push(c),
                None => {
                    return Err(FormatError::invalid_message(
                        "quoted header value ends with a lone backslash",
                    ))
                }
            },
            b'"' => {
                return Err(FormatError::invalid_message(
                    "quoted header value contains an unescaped '\"'",
                ))
            }
            _ => out.push(b),
        }
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes an attribute value for a header (rule 35): space, `"`, `%` and every character
/// outside U+0021–U+007E (control characters included) become the `%XY` upper-case hex of their UTF-8
/// bytes. Appends to `out`.
pub fn encode_header_value(value: &str, out: &mut String) {
    out.reserve(value.len());
    for &b in value.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut out = String::new();
        encode_header_value(s, &mut out);
        out
    }

    #[test]
    fn encodes_spec_vector() {
        assert_eq!(enc("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80");
        assert_eq!(enc("a\"b%c\td"), "a%22b%25c%09d");
        assert_eq!(enc("plain/ascii-~!"), "plain/ascii-~!");
    }

    #[test]
    fn decodes() {
        assert_eq!(decode_header_value(b"plain").unwrap(), "plain");
        assert_eq!(
            decode_header_value(b"Euro%20%e2%82%ac%20%F0%9F%98%80").unwrap(),
            "Euro € 😀"
        );
        assert_eq!(decode_header_value(b"%41%42c").unwrap(), "ABc");
        // One round only.
        assert_eq!(decode_header_value(b"%2541").unwrap(), "%41");
        // Quoted-string unescape first, then percent-decoding.
        assert_eq!(
            decode_header_value(br#""a\"b\\c%20d""#).unwrap(),
            "a\"b\\c d"
        );
        assert_eq!(decode_header_value(br#""""#).unwrap(), "");
    }

    #[test]
    fn rejects() {
        for bad in [
            &b"%C0%A0"[..],
            b"%",
            b"%4",
            b"%zz",
            b"\xff",
            b"%FF",
            br#""a\""#,
            br#""a"b""#,
        ] {
            assert!(decode_header_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn round_trip() {
        for s in ["", "x", "Euro € 😀", "%41 \"q\" \u{7f}", "日本語"] {
            assert_eq!(decode_header_value(enc(s).as_bytes()).unwrap(), s);
        }
    }
}
