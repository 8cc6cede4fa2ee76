//! Validation of CloudEvents context attributes (spec rules 1–11 of `cloudevents-rules.md`).
//!
//! All checks are allocation-free scans; they run once per event at the edge.

use super::FormatError;
use crate::event::{Event, ExtValue};

/// Attribute name rule (rule 7): ASCII `[a-z0-9]+`, not `data`. Names longer than 20 characters are
/// only a SHOULD in the spec and are accepted.
pub fn is_valid_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name != "data"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Strict RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)`, seconds required, every
/// field in range (days per month and leap years included, second 60 allowed for leap seconds).
pub fn is_rfc3339(s: &str) -> bool {
    rfc3339_instant(s).is_some()
}

/// Parses a strict RFC 3339 timestamp (see [`is_rfc3339`]) into the instant it denotes: seconds since
/// the Unix epoch (UTC) and nanoseconds (digits beyond nanoseconds are ignored). Used to compare
/// timestamps as instants.
pub fn rfc3339_instant(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let second = num(17, 2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() => {
            let oh = num(i + 1, 2)?;
            let om = num(i + 4, 2)?;
            if b[i + 3] != b':' || oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Some((secs, nanos))
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 2045 `token` character (visible ASCII except `tspecials`).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// RFC 2046 media type: `type/subtype` followed by any number of `; name=value` parameters (value a
/// token or a quoted-string), optional whitespace around separators. Only ASCII is allowed.
pub fn is_media_type(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let token = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && is_token_char(b[*i]) {
            *i += 1;
        }
        *i > start
    };
    let ows = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    if !token(&mut i) || b.get(i) != Some(&b'/') {
        return false;
    }
    i += 1;
    if !token(&mut i) {
        return false;
    }
    loop {
        ows(&mut i);
        if i == b.len() {
            return true;
        }
        if b[i] != b';' {
            return false;
        }
        i += 1;
        ows(&mut i);
        if i == b.len() {
            // A trailing `;` is tolerated (common in the wild).
            return true;
        }
        if !token(&mut i) || b.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return false,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match b.get(i + 1) {
                            Some(c) if *c == b'\t' || (0x20..0x7f).contains(c) => {}
                            _ => return false,
                        }
                        i += 2;
                    }
                    Some(&c) if c == b'\t' || (0x20..0x7f).contains(&c) => i += 1,
                    Some(_) => return false,
                }
            }
        } else if !token(&mut i) {
            return false;
        }
    }
}

/// Whether a content type "declares JSON" (rule 24): with parameters removed, `*/json` or `*/*+json`,
/// case-insensitive.
pub fn declares_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t']);
    let Some((_, subtype)) = essence.split_once('/') else {
        return false;
    };
    let n = subtype.len();
    (n >= 4 && subtype.as_bytes()[n - 4..].eq_ignore_ascii_case(b"json"))
        && (n == 4 || subtype.as_bytes()[n - 5] == b'+')
}

/// A URI with a scheme (RFC 3986 §4.3 absolute URI, checked loosely: `scheme ":" rest` with no
/// whitespace or control characters).
pub fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut sb = scheme.bytes();
    sb.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sb.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A CloudEvents String value (rule 9): no U+0000–U+001F, U+007F–U+009F or Unicode noncharacters
/// (unpaired surrogates cannot occur in a Rust `str`).
pub fn is_valid_string(s: &str) -> bool {
    // ASCII fast path: only the C0 controls and DEL are forbidden.
    if s.is_ascii() {
        return !s.bytes().any(|b| b < 0x20 || b == 0x7f);
    }
    !s.chars().any(|c| {
        let u = c as u32;
        u < 0x20
            || (0x7f..=0x9f).contains(&u)
            || (0xfdd0..=0xfdef).contains(&u)
            || u & 0xfffe == 0xfffe
    })
}

fn check_string(field: &str, value: &str) -> Result<(), FormatError> {
    if is_valid_string(value) {
        Ok(())
    } else {
        Err(FormatError::invalid(
            field,
            format!("attribute '{field}' contains a control character or a Unicode noncharacter"),
        ))
    }
}

fn check_required(field: &str, value: &str) -> Result<(), FormatError> {
    if value.is_empty() {
        return Err(FormatError::invalid(
            field,
            format!("attribute '{field}' must be a non-empty string"),
        ));
    }
    check_string(field, value)
}

/// Validates rules 1–11 on a built event: required attributes non-empty, String values free of control
/// characters, `datacontenttype` RFC 2046, `dataschema` a non-empty absolute URI, `subject` non-empty,
/// `time` RFC 3339, extension names `[a-z0-9]+` (not `data`). The error's field is the attribute name.
pub fn validate_event(event: &Event) -> Result<(), FormatError> {
    check_required("id", &event.id)?;
    check_required("source", &event.source)?;
    check_required("type", &event.ty)?;
    if let Some(ct) = &event.datacontenttype {
        if !is_media_type(ct) {
            return Err(FormatError::invalid(
                "datacontenttype",
                format!("datacontenttype '{ct}' is not an RFC 2046 media type"),
            ));
        }
    }
    if let Some(schema) = &event.dataschema {
        let field = match event.specversion {
            crate::event::SpecVersion::V03 => "schemaurl",
            crate::event::SpecVersion::V10 => "dataschema",
        };
        check_required(field, schema)?;
        if !is_absolute_uri(schema) {
            return Err(FormatError::invalid(
                field,
                format!("{field} must be an absolute URI"),
            ));
        }
    }
    if let Some(subject) = &event.subject {
        check_required("subject", subject)?;
    }
    if let Some(time) = &event.time {
        if !is_rfc3339(time) {
            return Err(FormatError::invalid(
                "time",
                format!("time '{time}' is not an RFC 3339 timestamp with seconds"),
            ));
        }
    }
    for (name, value) in &event.extensions {
        if !is_valid_attribute_name(name) {
            return Err(FormatError::invalid(
                name.as_str(),
                format!("invalid attribute name '{name}': must be [a-z0-9]+ and not 'data'"),
            ));
        }
        if let ExtValue::String(s) = value {
            check_string(name, s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        assert!(is_valid_attribute_name("abc123"));
        assert!(is_valid_attribute_name("abcdefghijklmnopqrstuvwxyz"));
        assert!(is_valid_attribute_name("1abc"));
        for bad in ["", "data", "MyExt", "my.ext", "my-ext", "é", "my_ext"] {
            assert!(!is_valid_attribute_name(bad), "{bad}");
        }
    }

    #[test]
    fn rfc3339_strict() {
        for ok in [
            "2018-04-05T17:31:00Z",
            "2018-04-05t17:31:00z",
            "2018-04-05T17:31:00.123456789Z",
            "2018-04-05T17:31:00.1234567891234Z",
            "2018-04-05T18:31:00+01:00",
            "2018-04-05T16:31:00-01:00",
            "2020-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "lunchtime",
            "2018-04-05T18:31Z",
            "2018-04-05T18:31:00X",
            "2018-04-05T18:31:00+25:00",
            "2018-04-05T18:31:00+xx:00",
            "2018-04-05T18:31:00+05",
            "2018-04-05T18:31:00+05:60",
            "2018-04-05T18:31:00",
            "2018-04-05 18:31:00Z",
            "2019-02-29T00:00:00Z",
            "2018-13-05T18:31:00Z",
            "2018-04-31T18:31:00Z",
            "2018-04-05T24:00:00Z",
            "2018-04-05T18:31:00.Z",
            "2018-04-05T18:31:00Zjunk",
            "２018-04-05T18:31:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn instants_compare_across_offsets() {
        let a = rfc3339_instant("2018-04-05T17:31:00Z");
        assert_eq!(a, rfc3339_instant("2018-04-05T18:31:00+01:00"));
        assert_eq!(a, rfc3339_instant("2018-04-05T16:31:00-01:00"));
        assert_eq!(a, rfc3339_instant("2018-04-05T17:31:00.000000000Z"));
        assert_eq!(
            rfc3339_instant("1970-01-01T00:00:01.5Z"),
            Some((1, 500_000_000))
        );
        assert_eq!(a, Some((1_522_949_460, 0)));
    }

    #[test]
    fn media_types() {
        for ok in [
            "text/plain",
            "application/json",
            "TEXT/Plain; CharSet=utf-8",
            "application/vnd.apache.thrift.binary",
            "multipart/form-data; boundary=\"a b;c\"",
            "text/plain;charset=utf-8",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "xyz",
            "text/",
            "/plain",
            "text/plain; charset",
            "text/pl ain",
            "tëxt/plain",
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn json_declaration() {
        for yes in [
            "application/json",
            "text/json; charset=utf-8",
            "application/cloudevents+JSON",
            "APPLICATION/JSON",
        ] {
            assert!(declares_json(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "application/xjson",
            "json",
            "application/json-seq",
        ] {
            assert!(!declares_json(no), "{no}");
        }
    }

    #[test]
    fn strings_and_uris() {
        assert!(is_valid_string("Euro € 😀"));
        assert!(!is_valid_string("a\u{0}b"));
        assert!(!is_valid_string("a\u{85}b"));
        assert!(!is_valid_string("a\u{fffe}b"));
        assert!(!is_valid_string("a\u{7f}"));
        assert!(is_absolute_uri("https://cloudevents.io/x"));
        assert!(is_absolute_uri("urn:isbn:123"));
        assert!(!is_absolute_uri("/relative"));
        assert!(!is_absolute_uri("1http://x"));
        assert!(!is_absolute_uri("http://a b"));
    }

    #[test]
    fn validate_built_events() {
        let mut e = Event::new("1", "/s", "t");
        assert!(validate_event(&e).is_ok());
        e.id.clear();
        assert_eq!(validate_event(&e).unwrap_err().field.as_deref(), Some("id"));
        let mut e = Event::new("1", "/s", "t");
        e.subject = Some(String::new());
        assert_eq!(
            validate_event(&e).unwrap_err().field.as_deref(),
            Some("subject")
        );
        let mut e = Event::new("1", "/s", "t");
        e.set_extension("Bad", ExtValue::Int(1));
        assert_eq!(
            validate_event(&e).unwrap_err().field.as_deref(),
            Some("Bad")
        );
        let mut e = Event::new("1", "/s", "t");
        e.set_extension("ok", ExtValue::String("tab\there".into()));
        assert_eq!(validate_event(&e).unwrap_err().field.as_deref(), Some("ok"));
        let mut e = Event::new("1", "/s", "t");
        e.dataschema = Some("relative/path".into());
        assert_eq!(
            validate_event(&e).unwrap_err().field.as_deref(),
            Some("dataschema")
        );
        let mut e = Event::new("1", "/s", "t");
        e.time = Some("2018-04-05T18:31Z".into());
        assert_eq!(
            validate_event(&e).unwrap_err().field.as_deref(),
            Some("time")
        );
    }
}
