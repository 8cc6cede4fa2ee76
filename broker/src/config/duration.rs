//! ISO-8601 durations as Knative writes them in a `DeliverySpec` (`PT0.2S`, `PT1M30S`, `P1D`, `PT0S`).
//!
//! Accepted: `P[nW][nD][T[nH][nM][nS]]` where every number is a non-negative decimal (`.` or `,` as the
//! separator, at most nanosecond precision). Years and months are rejected because their length is not
//! fixed; negative durations and anything else are rejected with a message saying what is wrong.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses an ISO-8601 duration. The error is a human-readable message (the caller adds file and path).
pub fn parse_iso8601(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid ISO-8601 duration {s:?}: {why}");
    if s.starts_with('-') {
        return Err(bad("negative durations are not allowed"));
    }
    let rest = s
        .strip_prefix('P')
        .ok_or_else(|| bad("must start with \"P\" (e.g. PT0.2S)"))?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(bad("\"T\" must be followed by hours, minutes or seconds"));
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(bad("no components (e.g. PT0.2S)"));
    }
    let mut total: u128 = 0;
    // (designator, nanoseconds per unit) in the order they must appear.
    const DATE_UNITS: [(char, u128); 2] = [
        ('W', 7 * 86_400 * NANOS_PER_SEC),
        ('D', 86_400 * NANOS_PER_SEC),
    ];
    const TIME_UNITS: [(char, u128); 3] = [
        ('H', 3_600 * NANOS_PER_SEC),
        ('M', 60 * NANOS_PER_SEC),
        ('S', NANOS_PER_SEC),
    ];
    total += parse_components(date, &DATE_UNITS, true).map_err(|e| bad(&e))?;
    if let Some(time) = time {
        total += parse_components(time, &TIME_UNITS, false).map_err(|e| bad(&e))?;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| bad("too large"))?;
    // The remainder is < 1e9, so it always fits in u32.
    let nanos = (total % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Parses a run of `<number><designator>` components, designators in the order of `units`.
fn parse_components(mut s: &str, units: &[(char, u128)], date_part: bool) -> Result<u128, String> {
    let mut total: u128 = 0;
    let mut next_unit = 0;
    while !s.is_empty() {
        let num_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .ok_or_else(|| format!("number {s:?} has no unit designator"))?;
        let (num, tail) = s.split_at(num_len);
        let mut chars = tail.chars();
        let designator = chars.next().unwrap_or(' ');
        s = chars.as_str();
        if num.is_empty() {
            return Err(format!("expected a number before {designator:?}"));
        }
        let pos = units[next_unit..]
            .iter()
            .position(|(d, _)| *d == designator)
            .map(|p| p + next_unit);
        let Some(pos) = pos else {
            return Err(match designator {
                'Y' => "years are not supported (their length is not fixed)".to_owned(),
                'M' if date_part => {
                    "months are not supported (their length is not fixed); minutes go after \"T\""
                        .to_owned()
                }
                'H' | 'S' | 'M' if date_part => format!("{designator:?} must come after \"T\""),
                d if units.iter().any(|(u, _)| *u == d) => {
                    format!("{d:?} is repeated or out of order")
                }
                d => format!("unknown designator {d:?}"),
            });
        };
        next_unit = pos + 1;
        total = total
            .checked_add(component_nanos(num, units[pos].1)?)
            .ok_or("too large")?;
    }
    Ok(total)
}

/// `num` (decimal, `.` or `,` separator) × `unit` nanoseconds, truncated to whole nanoseconds.
fn component_nanos(num: &str, unit: u128) -> Result<u128, String> {
    let (int, frac) = match num.split_once(['.', ',']) {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || frac.contains(['.', ',']) || (num.len() > int.len() && frac.is_empty()) {
        return Err(format!("malformed number {num:?}"));
    }
    if frac.len() > 9 {
        return Err(format!("{num:?} has more than nanosecond precision"));
    }
    let int: u128 = int
        .parse()
        .map_err(|_| format!("malformed number {num:?}"))?;
    let mut nanos = int.checked_mul(unit).ok_or("too large")?;
    if !frac.is_empty() {
        let digits: u128 = frac
            .parse()
            .map_err(|_| format!("malformed number {num:?}"))?;
        let scale = 10u128.pow(frac.len() as u32);
        nanos = nanos
            .checked_add(digits * unit / scale)
            .ok_or("too large")?;
    }
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_knative_examples() {
        assert_eq!(parse_iso8601("PT0.2S"), Ok(ms(200)));
        assert_eq!(parse_iso8601("PT1M30S"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_iso8601("P1D"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_iso8601("PT0S"), Ok(Duration::ZERO));
        assert_eq!(parse_iso8601("PT1H"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_iso8601("PT10S"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_iso8601("P1W"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            parse_iso8601("P1DT2H3M4.5S"),
            Ok(Duration::from_millis(
                ((86_400 + 2 * 3_600 + 3 * 60 + 4) * 1000) + 500
            ))
        );
        assert_eq!(parse_iso8601("PT0,25S"), Ok(ms(250)));
        assert_eq!(parse_iso8601("PT0.000000001S"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_iso8601("PT1.5M"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_negative_and_garbage() {
        for bad in [
            "",
            "P",
            "PT",
            "-PT1S",
            "PT-1S",
            "1S",
            "PT1",
            "PTS",
            "PT1.S",
            "PT.5S",
            "PT1.2.3S",
            "P1Y",
            "P1M",
            "P1S",
            "PT1D",
            "PT1S1M",
            "PT1S1S",
            "pt1s",
            "PT1X",
            "PT0.0000000001S",
            " PT1S",
            "PT1S ",
            "P1DT",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse_iso8601("-PT1S"),
            Err(
                "invalid ISO-8601 duration \"-PT1S\": negative durations are not allowed"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_iso8601("P1M"),
            Err("invalid ISO-8601 duration \"P1M\": months are not supported (their length is not fixed); minutes go after \"T\"".to_owned())
        );
    }

    #[test]
    fn huge_values_error_instead_of_overflowing() {
        assert!(parse_iso8601("PT99999999999999999999999999999999999999999S").is_err());
        assert!(parse_iso8601("P999999999999999999999999W").is_err());
    }
}
