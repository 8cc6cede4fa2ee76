//! The real binary: crash safety (kill -9), graceful shutdown, config errors, hot reload, --help.

use crate::common::*;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Many quick linear retries: nothing is dead-lettered while a subscriber fails or is down, and a recovered
/// subscriber is retried within half a second.
const QUICK_RETRIES: &str = "spec:\n  delivery:\n    retry: 100000\n    backoffPolicy: linear\n    backoffDelay: PT0.05S\n    backoffMax: PT0.5S\n";

/// Ids that `sub` answered with a 2xx on `path`.
fn delivered_ids(sub: &Subscriber, path: &str) -> HashSet<String> {
    sub.received_on(path)
        .iter()
        .filter(|r| (200..300).contains(&r.status))
        .filter_map(|r| r.header("ce-id"))
        .collect()
}

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

/// Flag values below what the broker can work with are refused with the flag and the reason, not raised
/// silently (exit 2, like other bad input at start-up).
#[test]
fn too_small_flag_values_are_refused_by_name() {
    for (flag, value, expect) in [
        ("--lease-duration", "1s", "at least 3s"),
        ("--nats-ack-wait", "200ms", "at least 1s"),
        ("--kafka-trigger-window", "0", "at least 1 entry"),
    ] {
        let out = bin()
            .args(["serve", flag, value])
            .output()
            .expect("run switchyard");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(expect),
            "{flag} {value}: {stderr}"
        );
    }
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

/// Issue 11 (what `switchyard soak --scenario kill-cycles` measures at full size): SIGKILL/restart cycles
/// while 4 senders post concurrently and the subscriber fails every 10th request with 503 (so retries are
/// in flight at each kill). Every event that got a 202 is delivered (2xx) at least once in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_cycles_under_load_lose_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Subscriber::start().await;
    sub.script((0..100_000).map(|i| Reply::status(if i % 10 == 9 { 503 } else { 202 })));
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        config(QUICK_RETRIES, &[trigger("t", "", &sub.url("/s"))]),
    )
    .unwrap();
    let data = dir.path().join("data");
    let target: Arc<Mutex<Option<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (target, stop, next, acked) =
                (target.clone(), stop.clone(), next.clone(), acked.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while !stop.load(SeqCst) {
                    let url = target.lock().clone();
                    let Some(url) = url else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let id = format!("e{}", next.fetch_add(1, SeqCst));
                    match try_post(&url, &ce_headers(&id, "t"), "{}", Duration::from_secs(10)).await
                    {
                        Some(r) if r.status == 202 => {
                            mine.push(id);
                            acked.fetch_add(1, SeqCst);
                        }
                        // Killed mid-request or not listening yet: the event's fate is unknown.
                        _ => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                mine
            })
        })
        .collect();
    for cycle in 0..5 {
        let mut p = Process::spawn(&cfg, &data, &[]);
        *target.lock() = Some(format!("http://{}/default/default", p.ingress));
        let before = acked.load(SeqCst);
        eventually(
            &format!("cycle {cycle}: 40 more events acknowledged"),
            || {
                let now = acked.load(SeqCst);
                async move { (now >= before + 40).then_some(()) }
            },
        )
        .await;
        p.kill9(); // with requests and deliveries in flight
        *target.lock() = None;
    }
    let _p = Process::spawn(&cfg, &data, &[]);
    stop.store(true, SeqCst);
    let mut all = Vec::new();
    for s in senders {
        let mine = tokio::time::timeout(patience(), s)
            .await
            .expect("senders stop")
            .unwrap();
        all.extend(mine);
    }
    assert!(all.len() >= 200, "only {} events acknowledged", all.len());
    eventually(
        "every acknowledged event delivered (2xx) at least once",
        || {
            let delivered = delivered_ids(&sub, "/s");
            let missing = all.iter().filter(|id| !delivered.contains(*id)).count();
            async move { (missing == 0).then_some(()) }
        },
    )
    .await;
    assert!(
        sub.received().iter().any(|r| r.status == 503),
        "the subscriber's 503s should have caused retries"
    );
}

/// Issue 11 (what `switchyard soak --scenario subscriber-down` measures at full size): while the subscriber
/// refuses connections the backlog grows to `--max-backlog`, where ingress answers 429 with Retry-After;
/// when the subscriber comes back every accepted event is delivered and ingress accepts again.
#[tokio::test]
async fn subscriber_down_backlog_reaches_the_limit_then_drains_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        config(
            QUICK_RETRIES,
            &[trigger("t", "", &format!("http://127.0.0.1:{port}/s"))],
        ),
    )
    .unwrap();
    let limit = 150;
    let p = Process::spawn(
        &cfg,
        &dir.path().join("data"),
        &["--max-backlog", &limit.to_string()],
    );
    let url = format!("http://{}/default/default", p.ingress);
    let mut acked = Vec::new();
    let mut rejected = None;
    for i in 0..limit * 4 {
        let id = format!("e{i}");
        let r = post(&url, &ce_headers(&id, "t"), "{}").await;
        match r.status {
            202 => acked.push(id),
            429 => {
                rejected = Some(r);
                break;
            }
            s => panic!(
                "unexpected status {s}: {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
    }
    let r = rejected.expect("a 429 once the backlog reached --max-backlog");
    assert!(
        acked.len() >= limit,
        "429 after only {} accepted events",
        acked.len()
    );
    let retry_after = r.header("retry-after").expect("Retry-After on the 429");
    assert!(retry_after.parse::<u64>().is_ok(), "{retry_after:?}");

    // The subscriber comes back on the same port.
    let listener = eventually("the subscriber port can be bound again", || async {
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    let sub = Subscriber::start_on(listener).await;
    eventually("every accepted event delivered", || {
        let delivered = delivered_ids(&sub, "/s");
        let missing = acked.iter().filter(|id| !delivered.contains(*id)).count();
        async move { (missing == 0).then_some(()) }
    })
    .await;
    eventually("ingress accepts again", || {
        let url = url.clone();
        async move {
            let r = post(&url, &ce_headers("after", "t"), "{}").await;
            (r.status == 202).then_some(())
        }
    })
    .await;
}
