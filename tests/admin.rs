//! Admin endpoints: health, readiness, broker listing, metrics; and the quickstart example stays valid.

mod common;
use common::*;

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
