//! Ingress status codes and validation over real HTTP (Switchyard decision 9), including the
//! CloudEvents JSON conformance fixtures sent in structured and batched mode.

use crate::common::*;
use switchyard_ingress::Limits;

fn fixtures(name: &str) -> Vec<serde_json::Value> {
    let path = format!(
        "{}/broker/tests/data/ce-conformance/format/json/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["tests"].as_array().unwrap().clone()
}

const STRUCTURED: (&str, &str) = ("content-type", "application/cloudevents+json");
const BATCH: (&str, &str) = ("content-type", "application/cloudevents-batch+json");

#[tokio::test]
async fn conformance_fixtures_in_structured_and_batch_mode() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("t", "", &sub.url("/s"))])).await;
    let url = b.ingress("/default/default");
    for case in fixtures("valid-events") {
        let r = post(&url, &[STRUCTURED], case["event"].to_string()).await;
        assert_eq!(
            r.status,
            202,
            "{}: {}",
            case["id"],
            String::from_utf8_lossy(&r.body)
        );
    }
    for case in fixtures("invalid-events") {
        let r = post(&url, &[STRUCTURED], case["event"].to_string()).await;
        assert_eq!(r.status, 400, "{} must be rejected", case["id"]);
        let v = r.json();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            case["id"]
        );
    }
    let mut expected = fixtures("valid-events").len();
    for case in fixtures("valid-batches") {
        let r = post(&url, &[BATCH], case["batch"].to_string()).await;
        assert_eq!(r.status, 202, "{}", case["id"]);
        expected += case["batch"].as_array().unwrap().len();
    }
    for case in fixtures("invalid-batches") {
        let r = post(&url, &[BATCH], case["batch"].to_string()).await;
        assert_eq!(r.status, 400, "{} must be rejected", case["id"]);
    }
    // Everything accepted is delivered, nothing rejected is (invalid batches are all-or-nothing).
    sub.wait_for("/s", expected).await;
    let sentinel = ce_headers("sentinel", "t");
    assert_eq!(post(&url, &sentinel, "{}").await.status, 202);
    let got = sub.wait_for("/s", expected + 1).await;
    assert_eq!(got.len(), expected + 1);
    b.shutdown().await;
}

#[tokio::test]
async fn status_codes_follow_the_contract() {
    let b = TestBroker::start(&config("", &[])).await;
    let url = b.ingress("/default/default");

    let r = request("OPTIONS", &url, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("allow").as_deref(), Some("POST, OPTIONS"));
    assert_eq!(r.header("webhook-allowed-origin").as_deref(), Some("*"));
    assert_eq!(r.header("webhook-allowed-rate").as_deref(), Some("*"));

    for m in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = request(m, &url, &[], "").await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow").as_deref(), Some("POST, OPTIONS"));
    }

    let r = post(&b.ingress("/default/nope"), &ce_headers("1", "t"), "{}").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("default/nope"));
    assert_eq!(
        post(&b.ingress("/"), &ce_headers("1", "t"), "{}")
            .await
            .status,
        404
    );
    assert_eq!(
        post(&b.ingress("/a/b/c"), &ce_headers("1", "t"), "{}")
            .await
            .status,
        404
    );
    // trailing slash tolerated
    assert_eq!(
        post(&b.ingress("/default/default/"), &ce_headers("1", "t"), "{}")
            .await
            .status,
        202
    );

    // Missing ce-id → 400 naming the field.
    let r = post(
        &url,
        &[
            ("ce-specversion", "1.0"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert!(v["field"].as_str().unwrap().contains("id"), "{v}");

    // Unsupported spec version.
    let mut h = ce_headers("1", "t");
    h[0] = ("ce-specversion", "19.0");
    assert_eq!(post(&url, &h, "{}").await.status, 400);

    // 0.3 is accepted.
    let mut h = ce_headers("1", "t");
    h[0] = ("ce-specversion", "0.3");
    assert_eq!(post(&url, &h, "{}").await.status, 202);

    // 415 for non-JSON structured formats.
    let r = post(
        &url,
        &[("content-type", "application/cloudevents+xml")],
        "<e/>",
    )
    .await;
    assert_eq!(r.status, 415);

    // Invalid percent-encoding (overlong UTF-8) is rejected.
    let mut h = ce_headers("1", "t");
    h.push(("ce-myext", "%C0%A0"));
    assert_eq!(post(&url, &h, "{}").await.status, 400);

    // TTL: 1 is decremented to 0 → loop → 400.
    let mut h = ce_headers("1", "t");
    h.push(("ce-knativebrokerttl", "1"));
    let r = post(&url, &h, "{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "knativebrokerttl");
    b.shutdown().await;
}

#[tokio::test]
async fn oversized_events_get_413() {
    let limits = Limits {
        max_event_bytes: 64 * 1024,
        ..Limits::default()
    };
    let b = TestBroker::start_with(&config("", &[]), limits).await;
    let url = b.ingress("/default/default");
    let ok = vec![b'a'; 60 * 1024];
    let mut h = ce_headers("1", "t");
    h[4] = ("content-type", "text/plain");
    assert_eq!(post(&url, &h, ok).await.status, 202);
    let big = vec![b'a'; 65 * 1024];
    let r = post(&url, &h, big).await;
    assert_eq!(r.status, 413);
    // The body is not read to its end: the connection is closed after the answer.
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(b.metrics().await.contains("reason=\"too_large\""));
    b.shutdown().await;
}

#[tokio::test]
async fn backlog_limit_gives_429_with_retry_after() {
    // Subscriber that never answers successfully: entries stay in the backlog.
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(500));
    let broker = "metadata:\n  name: default\n  annotations:\n    switchyard.dev/max-backlog: \"2\"\nspec:\n  delivery:\n    retry: 100\n    backoffDelay: PT10S\n";
    let yaml = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\n{broker}---\n{}",
        trigger("t", "", &sub.url("/s"))
    );
    let b = TestBroker::start(&yaml).await;
    let url = b.ingress("/default/default");
    b.send("1", "t").await;
    b.send("2", "t").await;
    let r = post(&url, &ce_headers("3", "t"), "{}").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    b.shutdown().await;
}

#[tokio::test]
async fn binary_mode_header_values_are_percent_decoded() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config(
        "",
        &[trigger(
            "t",
            "  delivery:\n    format: json\n",
            &sub.url("/s"),
        )],
    ))
    .await;
    let mut h = ce_headers("1", "t");
    h.push(("ce-greeting", "Euro%20%e2%82%ac%20%F0%9F%98%80"));
    h.push(("ce-quoted", "\"a \\\"b\\\"\""));
    assert_eq!(
        post(&b.ingress("/default/default"), &h, "{}").await.status,
        202
    );
    let got = sub.wait_for("/s", 1).await;
    let v: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(v["greeting"], "Euro € 😀");
    assert_eq!(v["quoted"], "a \"b\"");
    assert!(v["knativearrivaltime"].is_string());
    b.shutdown().await;
}

/// A blocking socket connected to `addr` whose send buffer holds only 64 KiB, like a client behind a
/// real network link (where little of a large body can be in flight) rather than loopback, which would
/// otherwise buffer a whole 2 MiB body before the server reacts.
async fn small_buffer_client(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    let s = socket.connect(addr).await.unwrap().into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Sends `head` and `body` on `s` like Python's `http.client` does, blocking (call it on its own
/// thread): everything is written before anything is read; then reads until the server closes the
/// connection. Returns the status and body of the one complete response, or what went wrong (typically
/// a reset while writing or reading).
fn raw_exchange(
    mut s: std::net::TcpStream,
    head: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(patience())).unwrap();
    s.set_write_timeout(Some(patience())).unwrap();
    s.write_all(head.as_bytes())
        .map_err(|e| format!("writing the head failed: {e}"))?;
    s.write_all(body)
        .map_err(|e| format!("writing the body failed: {e}"))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .map_err(|e| format!("reading the response failed: {e}"))?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("not a response: {text:?}"));
    };
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match (status, length) {
        (Some(status), Some(n)) if n == body.len() => Ok((status, body.as_bytes().to_vec())),
        _ => Err(format!("not one complete response: {text:?}")),
    }
}

/// Issue 11: an error sent before the request body was read (413 for a declared or chunked body above
/// the limit, 404 for an unknown broker, 400 for broken chunking) must reach a client that writes its
/// whole request before reading, instead of being destroyed by a TCP reset when the server closes.
#[tokio::test]
async fn error_responses_before_the_body_is_read_are_readable() {
    const TRIES: usize = 50;
    let b = TestBroker::start(&config("", &[])).await; // default limits: 1 MiB per event
    let addr = b.app.as_ref().unwrap().ingress_addr;
    let body = vec![b'a'; 2 * 1024 * 1024];
    let ce = "ce-specversion: 1.0\r\nce-id: 1\r\nce-source: /s\r\nce-type: t\r\n\
              content-type: text/plain\r\n";
    let sized = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{ce}content-length: {}\r\n\r\n",
            body.len()
        )
    };
    let chunked_head = format!(
        "POST /default/default HTTP/1.1\r\nhost: x\r\n{ce}transfer-encoding: chunked\r\n\r\n"
    );
    let mut chunked = Vec::new();
    for part in body.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    // 64 KiB of data, then a chunk size that is not hex, then the rest of the 2 MiB.
    let mut broken = chunked[..64 * 1024 + 7].to_vec();
    broken.extend_from_slice(b"zz\r\n");
    broken.extend_from_slice(&body[..body.len() - 64 * 1024]);

    let cases: [(&str, String, &[u8], u16, &str); 4] = [
        (
            "content-length above the limit",
            sized("/default/default"),
            &body,
            413,
            "exceeds the limit",
        ),
        (
            "chunked body above the limit",
            chunked_head.clone(),
            &chunked,
            413,
            "exceeds the limit",
        ),
        (
            "unknown broker, body unread",
            sized("/default/nope"),
            &body,
            404,
            "does not exist",
        ),
        (
            "broken chunked encoding",
            chunked_head,
            &broken,
            400,
            "request body",
        ),
    ];
    let mut report = Vec::new();
    for (what, head, body, status, error) in cases {
        let mut failures = Vec::new();
        for i in 0..TRIES {
            let (head, body) = (head.clone(), body.to_vec());
            let s = small_buffer_client(addr).await;
            let outcome = tokio::task::spawn_blocking(move || raw_exchange(s, &head, &body))
                .await
                .unwrap();
            match outcome {
                Ok((s, b)) if s == status => {
                    let v: serde_json::Value = serde_json::from_slice(&b)
                        .unwrap_or_else(|e| panic!("{what}, try {i}: body is not JSON: {e}"));
                    assert!(
                        v["error"].as_str().is_some_and(|e| e.contains(error)),
                        "{what}, try {i}: {v}"
                    );
                }
                Ok((s, b)) => failures.push(format!(
                    "try {i}: status {s}: {}",
                    String::from_utf8_lossy(&b)
                )),
                Err(e) => failures.push(format!("try {i}: {e}")),
            }
        }
        if !failures.is_empty() {
            report.push(format!(
                "{what}: {}/{TRIES} tries did not get the {status}:\n  {}",
                failures.len(),
                failures.join("\n  ")
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    b.shutdown().await;
}
