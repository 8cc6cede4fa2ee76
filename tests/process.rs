//! The real binary: crash safety (kill -9), graceful shutdown, config errors, hot reload, --help.

mod common;
use common::*;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

#[tokio::test]
async fn kill_9_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    // The subscriber is down while events are accepted: reserve a port and close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        config(
            "spec:\n  delivery:\n    retry: 1000\n    backoffPolicy: linear\n    backoffDelay: PT0.05S\n    backoffMax: PT0.2S\n",
            &[trigger("t", "", &format!("http://127.0.0.1:{port}/s"))],
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut p = Process::spawn(&cfg, &data, &[]);
    let url = format!("http://{}/default/default", p.ingress);
    let n = 200;
    for i in 0..n {
        let id = format!("e{i}");
        let r = post(&url, &ce_headers(&id, "t"), "{}").await;
        assert_eq!(r.status, 202);
    }
    p.kill9();

    // Subscriber comes up on the reserved port; broker restarts on the same data.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let sub = Subscriber::start_on(listener).await;
    let _p = Process::spawn(&cfg, &data, &[]);
    let got = eventually("all accepted events delivered after restart", || async {
        let mut ids: Vec<String> = sub
            .received_on("/s")
            .iter()
            .filter_map(|r| r.header("ce-id"))
            .collect();
        ids.sort();
        ids.dedup();
        (ids.len() >= n).then_some(ids)
    })
    .await;
    assert_eq!(got.len(), n);
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start().await;
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, config("", &[trigger("t", "", &sub.url("/s"))])).unwrap();
    let mut p = Process::spawn(&cfg, &dir.path().join("data"), &["--shutdown-grace", "5s"]);
    let url = format!("http://{}/default/default", p.ingress);
    assert_eq!(post(&url, &ce_headers("1", "t"), "{}").await.status, 202);
    sub.wait_for("/s", 1).await;
    let status = p.sigterm().await;
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn invalid_config_is_rejected_at_start_with_file_doc_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("triggers.yaml");
    std::fs::write(
        &cfg,
        config(
            "",
            &[trigger(
                "bad",
                "  filter:\n    attributes:\n      Type: x\n",
                "http://127.0.0.1:1/",
            )],
        ),
    )
    .unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"triggers.yaml doc 2: spec.filter.attributes: key "Type" must match ^[a-z][a-z0-9]*$"#
        ),
        "{stderr}"
    );
}

#[test]
fn help_documents_every_flag_and_env_var() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "--admin-listen",
        "--max-event-bytes",
        "--shutdown-grace",
        "SWITCHYARD_LISTEN",
        "SWITCHYARD_DATA_DIR",
        "./switchyard-data",
        "127.0.0.1:8080",
        "127.0.0.1:9090",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[tokio::test]
async fn hot_reload_applies_valid_changes_and_rejects_invalid_ones() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("a", "", &sub.url("/a"))])).await;
    let url = b.ingress("/default/default");
    assert_eq!(post(&url, &ce_headers("1", "t"), "{}").await.status, 202);
    sub.wait_for("/a", 1).await;

    // Add trigger b: it sees events accepted after it exists, not before.
    std::fs::write(
        &b.config,
        config(
            "",
            &[
                trigger("a", "", &sub.url("/a")),
                trigger("b", "", &sub.url("/b")),
            ],
        ),
    )
    .unwrap();
    b.wait_reloads("success", 1).await;
    assert_eq!(post(&url, &ce_headers("2", "t"), "{}").await.status, 202);
    let got = sub.wait_for("/b", 1).await;
    assert_eq!(got[0].header("ce-id").as_deref(), Some("2"));
    sub.wait_for("/a", 2).await;

    // Invalid edit: rejected, previous config stays.
    std::fs::write(
        &b.config,
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: x\nspec: {}\n",
    )
    .unwrap();
    b.wait_reloads("invalid", 1).await;
    assert_eq!(post(&url, &ce_headers("3", "t"), "{}").await.status, 202);
    sub.wait_for("/a", 3).await;
    sub.wait_for("/b", 2).await;
    // No duplicates on the kept trigger.
    let ids: Vec<String> = sub
        .received_on("/a")
        .iter()
        .filter_map(|r| r.header("ce-id"))
        .collect();
    assert_eq!(ids, vec!["1", "2", "3"]);
    b.shutdown().await;
}

#[tokio::test]
async fn hot_reload_repointing_a_trigger_to_another_broker_keeps_it_delivering() {
    let sub = Subscriber::start().await;
    let two_brokers = |trigger_broker: &str| {
        format!(
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: other\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n  broker: {trigger_broker}\n  subscriber:\n    uri: {}\n",
            sub.url("/s")
        )
    };
    let b = TestBroker::start(&two_brokers("default")).await;
    b.send("1", "t").await;
    sub.wait_for("/s", 1).await;
    std::fs::write(&b.config, two_brokers("other")).unwrap();
    b.wait_reloads("success", 1).await;
    let r = post(&b.ingress("/default/other"), &ce_headers("2", "t"), "{}").await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for("/s", 2).await;
    assert_eq!(got[1].header("ce-id").as_deref(), Some("2"));
    b.shutdown().await;
}
