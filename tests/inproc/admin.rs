//! Admin endpoints: health, readiness, broker listing, metrics; and the quickstart example stays valid.

use crate::common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn health_readiness_and_broker_listing() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("t", "", &sub.url("/s"))])).await;
    let r = request("GET", &b.admin("/healthz"), &[], "").await;
    assert_eq!(r.status, 200);
    let r = request("GET", &b.admin("/readyz"), &[], "").await;
    assert_eq!(r.status, 200);
    let v = request("GET", &b.admin("/api/v1/brokers"), &[], "")
        .await
        .json();
    assert_eq!(v["brokers"][0]["namespace"], "default");
    assert_eq!(v["brokers"][0]["name"], "default");
    assert_eq!(v["brokers"][0]["triggers"][0]["name"], "t");
    assert_eq!(v["brokers"][0]["triggers"][0]["subscriber"], sub.url("/s"));
    let r = post(&b.admin("/api/v1/deadletters/abc/redrive"), &[], "").await;
    assert_eq!(r.status, 400);
    let m = b.metrics().await;
    assert!(
        m.contains("switchyard_trigger_backlog{trigger=\"default/t\"} 0"),
        "{m}"
    );
    b.shutdown().await;
}

#[test]
fn quickstart_example_is_a_valid_config() {
    let path = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.yaml"
    ));
    let loaded = switchyard_broker::config::load::load_paths(&[path]).unwrap();
    assert_eq!(loaded.topology.brokers.len(), 1);
    assert_eq!(loaded.topology.triggers.len(), 2);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[tokio::test]
async fn flags_can_come_from_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, config("", &[])).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("serve")
        .env("SWITCHYARD_CONFIG", &cfg)
        .env("SWITCHYARD_DATA_DIR", dir.path().join("data"))
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHYARD_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("switchyard ready ingress=127.0.0.1:"),
        "{line}"
    );
    assert!(
        dir.path().join("data").exists(),
        "data dir from SWITCHYARD_DATA_DIR"
    );
}

/// A real tmpfs of a given size (needs root, which CI has: the test fails rather than skips without it).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs failed: this test needs root (CI runs as root)"
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Posts 4 KiB events from 8 connections until the broker refuses one; returns the accepted ids and the
/// refusal.
async fn fill_until_refused(b: &TestBroker) -> (Vec<String>, Resp) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let url = b.ingress("/default/default");
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (stop, next, url, body) = (stop.clone(), next.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refusal = None;
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                assert!(n < 100_000, "the broker never refused an event");
                let id = format!("e{n}");
                let r = post(&url, &ce_headers(&id, "fill"), body.clone()).await;
                match r.status {
                    202 => accepted.push(id),
                    _ => {
                        stop.store(true, Ordering::SeqCst);
                        refusal = Some(r);
                    }
                }
            }
            (accepted, refusal)
        }));
    }
    let mut accepted = Vec::new();
    let mut refusal = None;
    for t in tasks {
        let (a, r) = t.await.unwrap();
        accepted.extend(a);
        refusal = refusal.or(r);
    }
    (accepted, refusal.unwrap())
}

/// The broker on a 24 MiB tmpfs, one trigger whose subscriber hangs (so the backlog stays on disk).
async fn broker_on_tmpfs(tmpfs: &Tmpfs, sub: &Subscriber, min_free: Option<u64>) -> TestBroker {
    let trigger = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\n  annotations:\n    switchyard.dev/max-inflight: \"1\"\nspec:\n  broker: default\n  delivery:\n    retry: 5\n    backoffPolicy: linear\n    backoffDelay: PT0.1S\n    timeout: PT1S\n  subscriber:\n    uri: {}\n",
        sub.url("/s")
    );
    let data = tmpfs.path().join("data");
    TestBroker::start_custom(&config("", &[trigger]), |o| {
        o.data_dir = Some(data);
        o.store.min_free_bytes = min_free;
    })
    .await
}

/// Asserts the degraded state as a user sees it: 507 in our words, readiness false, the metric.
async fn assert_refusing(b: &TestBroker, refusal: &Resp, reason: &str) {
    assert_eq!(
        refusal.status,
        507,
        "{}",
        String::from_utf8_lossy(&refusal.body)
    );
    assert_eq!(
        refusal.json(),
        json!({"error": "the broker's store is full", "field": null})
    );
    assert!(refusal.header("retry-after").is_some());
    let again = post(&b.ingress("/default/default"), &ce_headers("x", "t"), "{}").await;
    assert_eq!(again.status, 507);
    let ready = request("GET", &b.admin("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503);
    let text = String::from_utf8_lossy(&ready.body).into_owned();
    assert!(text.contains("store is full"), "{text}");
    assert!(text.contains(reason), "{text}");
    let m = b.metrics().await;
    assert!(m.contains("switchyard_store_degraded 1"), "{m}");
    // An embedded broker's own readiness follows the store.
    assert!(
        m.contains("switchyard_broker_ready{broker=\"default/default\"} 0"),
        "{m}"
    );
    let brokers = request("GET", &b.admin("/api/v1/brokers"), &[], "")
        .await
        .json();
    assert_eq!(brokers["brokers"][0]["ready"], false, "{brokers}");
    assert!(
        brokers["brokers"][0]["notReadyReason"]
            .as_str()
            .is_some_and(|r| r.contains("store is full")),
        "{brokers}"
    );
}

/// Waits until every accepted event reached the subscriber, readiness is back and the broker takes
/// events again — without a restart.
async fn assert_recovers(b: &TestBroker, sub: &Subscriber, accepted: &[String]) {
    eventually("every accepted event delivered", || async {
        let got: std::collections::HashSet<String> = sub
            .received_on("/s")
            .iter()
            .filter_map(|r| r.header("ce-id"))
            .collect();
        accepted.iter().all(|id| got.contains(id)).then_some(())
    })
    .await;
    eventually("readiness back", || async {
        let r = request("GET", &b.admin("/readyz"), &[], "").await;
        (r.status == 200).then_some(())
    })
    .await;
    let r = post(
        &b.ingress("/default/default"),
        &ce_headers("after", "t"),
        "{}",
    )
    .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    sub.wait_for("/s", accepted.len() + 1).await;
    let m = b.metrics().await;
    assert!(m.contains("switchyard_store_degraded 0"), "{m}");
    assert!(
        m.contains("switchyard_broker_ready{broker=\"default/default\"} 1"),
        "{m}"
    );
    assert!(m.contains("switchyard_store_bytes "), "{m}");
    assert!(m.contains("switchyard_store_free_bytes "), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_volume_refuses_with_507_before_it_is_exhausted_and_recovers_by_itself() {
    let tmpfs = Tmpfs::mount("24m");
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(200).delay(Duration::from_secs(3600)));
    // The default reserve: 5 % of 24 MiB.
    let b = broker_on_tmpfs(&tmpfs, &sub, None).await;
    let (accepted, refusal) = fill_until_refused(&b).await;
    assert!(accepted.len() > 1000, "only {} accepted", accepted.len());
    assert_refusing(&b, &refusal, "below the reserve").await;
    // Refused before the volume was exhausted: there is room left for acks and parking.
    let free = fs_free(tmpfs.path());
    assert!(free > 0, "the volume is exhausted");
    // The subscriber comes back: the backlog drains, compaction gives the space back, and the broker
    // accepts events again by itself.
    sub.set_default(Reply::status(200));
    assert_recovers(&b, &sub, &accepted).await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failing_with_enospc_degrades_the_store_until_space_is_freed() {
    let tmpfs = Tmpfs::mount("24m");
    // Ballast the operator deletes later.
    let ballast = tmpfs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 4 << 20]).unwrap();
    let sub = Subscriber::start().await;
    sub.set_default(Reply::status(200).delay(Duration::from_secs(3600)));
    // No reserve: the store runs into ENOSPC, and redb's database is poisoned by the failed write.
    let b = broker_on_tmpfs(&tmpfs, &sub, Some(0)).await;
    let (accepted, refusal) = fill_until_refused(&b).await;
    assert!(accepted.len() > 1000, "only {} accepted", accepted.len());
    assert_refusing(&b, &refusal, "no space left").await;
    // The operator frees space; the subscriber comes back.
    std::fs::remove_file(&ballast).unwrap();
    sub.set_default(Reply::status(200));
    assert_recovers(&b, &sub, &accepted).await;
    b.shutdown().await;
}

fn fs_free(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}
