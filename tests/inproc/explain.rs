//! `switchyard explain` (CLI) and the admin explain endpoint.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn manifests() -> String {
    config(
        "",
        &[
            trigger(
                "orders",
                "  filter:\n    attributes:\n      type: order.created\n",
                "http://127.0.0.1:1/orders",
            ),
            trigger(
                "shop",
                "  filters:\n    - all:\n      - exact:\n          type: order.created\n      - prefix:\n          source: https://shop/\n",
                "http://127.0.0.1:1/shop",
            ),
        ],
    )
}

fn explain_cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.yaml");
    std::fs::write(&cfg, manifests()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("explain")
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_text_output_names_the_failing_leaf() {
    let event =
        r#"{"specversion":"1.0","id":"1","source":"https://other/x","type":"order.created"}"#;
    let (code, out, err) = explain_cli(&["--broker", "default/default"], event);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("MATCH    orders: filter.attributes matched"),
        "{out}"
    );
    assert!(
        out.contains(r#"NO MATCH shop: filters[0].all[1].prefix: source "https://other/x" does not start with "https://shop/""#),
        "{out}"
    );
}

#[test]
fn cli_json_output_and_attribute_object_input() {
    let (code, out, err) = explain_cli(
        &["--broker", "default/default", "--output", "json"],
        r#"{"type":"payment.done"}"#,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["broker"], "default/default");
    let t = v["triggers"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["name"], "orders");
    assert_eq!(t[0]["matched"], false);
    assert_eq!(
        t[0]["reason"],
        r#"filter.attributes: type "payment.done" != "order.created""#
    );
}

#[test]
fn cli_rejects_unknown_broker_and_invalid_event() {
    let (code, _, err) = explain_cli(&["--broker", "default/nope"], "{}");
    assert_ne!(code, 0);
    assert!(err.contains("default/nope"), "{err}");
    let (code, _, err) = explain_cli(&["--broker", "default/default"], r#"{"time":"lunchtime"}"#);
    assert_ne!(code, 0);
    assert!(err.contains("time"), "{err}");
}

#[tokio::test]
async fn admin_api_explains_with_the_running_config() {
    let b = TestBroker::start(&manifests()).await;
    let r = post(
        &b.admin("/api/v1/brokers/default/default/explain"),
        &[("content-type", "application/json")],
        r#"{"type":"order.created","source":"https://shop/1"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(
        v["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["matched"] == true),
        "{v}"
    );
    let r = post(&b.admin("/api/v1/brokers/default/nope/explain"), &[], "{}").await;
    assert_eq!(r.status, 404);
    let r = post(
        &b.admin("/api/v1/brokers/default/default/explain"),
        &[],
        "not json",
    )
    .await;
    assert_eq!(r.status, 400);
    b.shutdown().await;
}
