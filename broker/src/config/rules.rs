//! The validation rules of the values in manifests (pure): DNS-1123 labels, attribute names, Kafka topic
//! messages, `host:port` lists and NATS server lists. Each returns what is wrong in the words the loader
//! reports; the decoder (`manifest`) and the builder (ConfigMap settings) apply them at a field path.

/// DNS-1123 label: at most 63 characters, lower-case alphanumerics and '-', alphanumeric at both ends.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 63
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// The attribute-name rule [`is_attribute_key`] applies, as messages name it.
pub(crate) const KEY_REGEX: &str = "^[a-z][a-z0-9]*$";

pub(crate) fn is_attribute_key(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub(crate) fn topic_message(s: &str) -> String {
    format!(
        "{s:?} is not a valid Kafka topic name: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' or '-', \
         and not \".\" or \"..\""
    )
}

/// One `host:port` (`[v6 address]:port` for IPv6 literals); the error says what is wrong.
pub(crate) fn check_host_port(s: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err("missing ']' after the IPv6 address".to_owned());
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} is not an IPv6 address"));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err("missing \":port\"".to_owned());
        };
        (None, port)
    } else {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err("missing \":port\"".to_owned());
        };
        (Some(host), port)
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err("empty host".to_owned());
        }
        if host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(format!(
                "host {host:?} must be a DNS name or an IP address ([...] for IPv6)"
            ));
        }
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("port {port:?} must be an integer from 1 to 65535")),
    }
}

/// A comma-separated `host:port` list (Knative's `bootstrap.servers`), normalised (entries trimmed,
/// joined with `,`), or one message per bad entry.
pub(crate) fn parse_bootstrap_csv(s: &str) -> Result<String, Vec<String>> {
    parse_csv(s, "host:port", "host:port", check_host_port)
}

/// One NATS server: `nats://host[:port]`, `tls://host[:port]` or `host:port` (the port is required
/// without a scheme); the error says what is wrong.
pub(crate) fn check_nats_server(s: &str) -> Result<(), String> {
    let lower = s.to_ascii_lowercase();
    let rest = ["nats://", "tls://"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| &s[p.len()..]);
    match rest {
        Some(rest) => {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('@') {
                return Err(
                    "credentials in server URLs are not supported in standalone mode".to_owned(),
                );
            }
            // A port is optional after a scheme (the NATS default is 4222).
            let has_port = if rest.starts_with('[') {
                rest.contains("]:")
            } else {
                rest.contains(':')
            };
            if has_port {
                check_host_port(rest)
            } else {
                check_host_port(&format!("{rest}:4222"))
            }
        }
        None if s.contains("://") => Err(format!(
            "unsupported scheme in {s:?}: use nats://, tls:// or host:port"
        )),
        None => check_host_port(s),
    }
}

/// A comma-separated list of NATS servers (`nats://host:port`, `tls://host:port` or `host:port`),
/// normalised (entries trimmed, joined with `,`), or one message per bad entry.
pub(crate) fn parse_nats_servers_csv(s: &str) -> Result<String, Vec<String>> {
    parse_csv(
        s,
        "nats://host:port, tls://host:port or host:port",
        "NATS server",
        check_nats_server,
    )
}

/// A comma-separated list of `expected` entries, each one checked as a `what`, normalised (entries
/// trimmed, joined with `,`), or one message per bad entry.
fn parse_csv(
    s: &str,
    expected: &str,
    what: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for entry in s.split(',').map(str::trim) {
        if entry.is_empty() {
            problems.push(format!(
                "{s:?} has an empty entry; expected a comma-separated list of {expected}"
            ));
            continue;
        }
        match check(entry) {
            Ok(()) => out.push(entry),
            Err(why) => problems.push(format!("{entry:?} is not a valid {what}: {why}")),
        }
    }
    if problems.is_empty() {
        Ok(out.join(","))
    } else {
        Err(problems)
    }
}
