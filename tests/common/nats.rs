//! A real nats-server with JetStream for tests: one child process per test on a free loopback port with a
//! temporary store directory (hermetic and killable; the machine's shared server on 4222 is not used).
//!
//! The binary is found like `.ci/nats-testbed.sh` finds it: `$SWITCHYARD_NATS_SERVER`, `nats-server` on
//! `PATH`, `/usr/sbin/nats-server`. When none exists the test FAILS (panics) with install instructions.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `start`/`restart` wait for the server to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The nats-server binary (panics with instructions when there is none).
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_NATS_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nats-server"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    candidates
        .into_iter()
        .find(|p| is_executable(p))
        .unwrap_or_else(|| {
            panic!(
                "no nats-server found: the NATS tests need one. Run `.ci/nats-testbed.sh` (installs the \
                 Debian package nats-server) or set SWITCHYARD_NATS_SERVER=/path/to/nats-server."
            )
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A running `nats-server -js`, killed on drop. Its JetStream store survives [`Nats::restart`].
pub struct Nats {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: usize,
}

impl Nats {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Nats {
        let mut n = Nats {
            bin: nats_server_binary(),
            port: free_port(),
            dir: tempfile::tempdir().expect("nats store dir"),
            child: None,
            starts: 0,
        };
        n.spawn_and_wait().await;
        n
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port with the same store directory (kills a running one first).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait().await;
    }

    /// The last `max` bytes of the server's logs, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        let mut out = String::new();
        for i in 1..=self.starts {
            if let Ok(b) = std::fs::read(self.dir.path().join(format!("nats-{i}.log"))) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
        let mut cut = out.len().saturating_sub(max);
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out[cut..].to_owned()
    }

    async fn spawn_and_wait(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("nats-{}.log", self.starts));
        let store = self.dir.path().join("store");
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&store)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "nats-server exited during start ({status}):\n{}",
                    self.log_tail(4000)
                );
            }
            // Ready when the log says so (JetStream is set up before the client port opens).
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.log_tail(100_000).contains("Server is ready")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not become ready on port {} within {START_DEADLINE:?}:\n{}",
                self.port,
                self.log_tail(4000)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
