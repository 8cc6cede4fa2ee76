//! A real Kubernetes control plane for tests: ONE etcd + kube-apiserver v1.20.2 per test binary (in practice
//! one for `tests/system/`, where the Kubernetes tests are), started on free loopback ports by
//! `tests/k8s/start-controlplane.sh` the first time a test asks for it ([`ControlPlane::shared`]), with the
//! CRDs of `deploy/crds/` applied and Established. Tests share it and separate themselves by namespace
//! ([`ControlPlane::new_namespace`]); the other tests of that binary never start it.
//!
//! The apiserver binary comes from `$SWITCHYARD_KUBE_APISERVER` or `~/.cache/switchyard-tools/k8s/bin/
//! kube-apiserver` (built by `.ci/k8s-testbed.sh`); when there is none the tests FAIL (panic), never skip.
//!
//! Statics are never dropped, so a detached watchdog (`setsid`) waits for the test process to exit and then
//! stops apiserver + etcd by PID (`tests/k8s/stop-controlplane.sh`) and removes the work directory.
//!
//! Nothing runs pods here (no kubelet, scheduler or controller-manager): Deployments are stored, never
//! started, and Endpoints exist only when a test creates them ([`ControlPlane::create_data_plane_endpoints`]).
//! Start-up uses only `std::process`, so it works from any runtime (or none); the `async` helpers run
//! `kubectl` on tokio's blocking pool.

use super::patience;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root (where `deploy/` and `tests/k8s/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kube-apiserver binary (panics with instructions when there is none).
pub fn apiserver_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_KUBE_APISERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            is_executable(&p),
            "SWITCHYARD_KUBE_APISERVER={} is not an executable file. Run `.ci/k8s-testbed.sh` (prints the \
             path of a working kube-apiserver) or unset it.",
            p.display()
        );
        return p;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cached = home.join(".cache/switchyard-tools/k8s/bin/kube-apiserver");
    if is_executable(&cached) {
        return cached;
    }
    panic!(
        "no kube-apiserver found: the Kubernetes tests need a real one. Run `.ci/k8s-testbed.sh` (builds \
         kube-apiserver v1.20.2 into ~/.cache/switchyard-tools/k8s/bin/ and installs etcd and kubectl) or set \
         SWITCHYARD_KUBE_APISERVER=/path/to/kube-apiserver."
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Two consecutive free ports (etcd's client port and, next to it, its peer port).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < u16::MAX
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no two consecutive free loopback ports found");
}

/// The shared etcd + kube-apiserver of this test binary.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

impl ControlPlane {
    /// The control plane of this test binary, started on first use (CRDs applied and Established).
    /// Panics (the test fails) when it cannot be started.
    pub fn shared() -> &'static ControlPlane {
        match SHARED.get_or_init(start) {
            Ok(cp) => cp,
            Err(e) => panic!("the Kubernetes control plane for the tests is not available: {e}"),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Work directory (kubeconfig, logs `apiserver.log`, `etcd.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null());
        c
    }

    /// Runs `kubectl ARGS` with `KUBECONFIG` set.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubectl (is it installed?): {e}"))
    }

    /// Runs `kubectl ARGS` with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl (is it installed?): {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        // Written from a thread so that a large input cannot dead-lock against kubectl's output.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("kubectl output");
        let _ = writer.join();
        out
    }

    /// Runs `kubectl ARGS`, panics when it fails, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml`; panics when it fails.
    pub fn apply(&self, yaml: &str) {
        let out = self.try_apply(yaml, &[]);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n--- manifest:\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `kubectl apply EXTRA -f -` of `yaml`, whatever the outcome.
    pub fn try_apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-f", "-"]);
        self.kubectl_stdin(&args, yaml)
    }

    /// The object as JSON, `None` when it does not exist. `ns` empty: a cluster-scoped kind.
    pub fn get_json(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if !ns.is_empty() {
            args.extend_from_slice(&["-n", ns]);
        }
        let out = self.kubectl(&args);
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "kubectl get {kind} {name}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            }));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("NotFound") || err.contains("not found") {
            return None;
        }
        panic!("kubectl {}: {err}", args.join(" "));
    }

    /// Deletes an object (and does not wait for finalizers: nothing here runs them).
    pub fn delete(&self, kind: &str, ns: &str, name: &str) {
        self.kubectl_ok(&["delete", kind, name, "-n", ns, "--wait=false"]);
    }

    /// `kubectl patch --type merge`.
    pub fn patch(&self, kind: &str, ns: &str, name: &str, merge_patch: &str) {
        self.kubectl_ok(&[
            "patch",
            kind,
            name,
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            merge_patch,
        ]);
    }

    /// Creates a namespace named after `prefix`, unique in this test binary, and returns its name.
    pub fn new_namespace(&self, prefix: &str) -> String {
        let mut p: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        p.truncate(40);
        let name = format!(
            "{}-{}",
            p.trim_matches('-'),
            NAMESPACES.fetch_add(1, Ordering::SeqCst)
        );
        self.kubectl_ok(&["create", "namespace", &name]);
        name
    }

    /// Creates what the endpoints controller would for a running data plane: the Endpoints object
    /// `switchyard-ingress` in `system_ns` with one ready address. (A pod-like address: the apiserver
    /// refuses loopback addresses in Endpoints; nothing connects to it, the controller only looks for a
    /// ready address.)
    pub fn create_data_plane_endpoints(&self, system_ns: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: switchyard-ingress\n  namespace: {system_ns}\n\
             subsets:\n- addresses:\n  - ip: 10.244.0.10\n  ports:\n  - name: http\n    port: 8080\n"
        ));
    }

    /// A v1 Service `name` in `ns` (port 80); no pods back it.
    pub fn create_service(&self, ns: &str, name: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  ports:\n  \
             - port: 80\n    targetPort: 8080\n"
        ));
    }

    /// [`Self::get_json`] on tokio's blocking pool.
    pub async fn get_json_async(&'static self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let (kind, ns, name) = (kind.to_owned(), ns.to_owned(), name.to_owned());
        tokio::task::spawn_blocking(move || self.get_json(&kind, &ns, &name))
            .await
            .unwrap()
    }

    /// Polls the object until `pred` holds (within [`patience`]) and returns it; the panic message shows
    /// the last version seen.
    pub async fn wait_for(
        &'static self,
        kind: &str,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_within(patience(), kind, ns, name, what, pred)
            .await
    }

    /// [`Self::wait_for`] with an explicit deadline.
    pub async fn wait_for_within(
        &'static self,
        within: Duration,
        kind: &str,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.get_json_async(kind, ns, name).await;
            if let Some(v) = &v {
                if pred(v) {
                    return v.clone();
                }
            }
            if Instant::now() > deadline {
                let shown = v
                    .map(|v| serde_json::to_string_pretty(&v).unwrap())
                    .unwrap_or_else(|| "(does not exist)".to_owned());
                panic!("timed out after {within:?} waiting for {kind} {ns}/{name}: {what}; last seen:\n{shown}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Starts etcd + apiserver (twice at most: a free port can be taken between probing and binding), then
/// installs the CRDs.
fn start() -> Result<ControlPlane, String> {
    let bin = apiserver_binary();
    let cp = start_once(&bin).or_else(|_| start_once(&bin))?;
    install_crds(&cp)?;
    Ok(cp)
}

fn start_once(bin: &Path) -> Result<ControlPlane, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("switchyard-k8s-{}-{nanos}", std::process::id()));
    let scripts = repo_root().join("tests/k8s");
    // The watchdog first, so that even a test process killed during start-up leaves nothing running.
    start_watchdog(&dir, &scripts.join("stop-controlplane.sh"))?;
    let (api_port, etcd_port) = (free_port(), free_port_pair());
    let out = Command::new(scripts.join("start-controlplane.sh"))
        .arg(&dir)
        .arg(api_port.to_string())
        .arg(etcd_port.to_string())
        .env("KUBE_APISERVER_BIN", bin)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run start-controlplane.sh: {e}"))?;
    if !out.status.success() {
        let log = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        let msg = format!(
            "start-controlplane.sh {} {api_port} {etcd_port} failed ({}):\n{}{}\n--- etcd.log:\n{}\n--- apiserver.log:\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(log("etcd.log")),
            tail(log("apiserver.log")),
        );
        let _ = Command::new(scripts.join("stop-controlplane.sh"))
            .arg(&dir)
            .status();
        return Err(msg);
    }
    Ok(ControlPlane {
        kubeconfig: dir.join("kubeconfig"),
        dir,
    })
}

/// `sh -c 'while kill -0 $TESTPID; do sleep 1; done; stop-controlplane.sh DIR; rm -rf DIR'` in its own
/// session, so that it outlives this process (and a Ctrl-C to the test's process group).
fn start_watchdog(dir: &Path, stop: &Path) -> Result<(), String> {
    let script = "while kill -0 \"$TESTPID\" 2>/dev/null; do sleep 1; done; \
                  \"$STOP\" \"$DIR\" >/dev/null 2>&1; rm -rf \"$DIR\"";
    let status = Command::new("setsid")
        .args(["-f", "sh", "-c", script])
        .env("TESTPID", std::process::id().to_string())
        .env("STOP", stop)
        .env("DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start the clean-up watchdog (setsid): {e}"))?;
    if !status.success() {
        return Err(format!("setsid for the clean-up watchdog failed: {status}"));
    }
    Ok(())
}

/// `kubectl apply -f deploy/crds/` (with kubectl's client-side validation against the 1.20 server's
/// OpenAPI, so a CRD using newer schema features fails here as it would on an old cluster), then waits
/// until every CRD is Established.
fn install_crds(cp: &ControlPlane) -> Result<(), String> {
    let crds = repo_root().join("deploy/crds");
    let crds = crds.to_str().unwrap();
    let out = cp.kubectl(&["apply", "-f", crds, "-o", "name"]);
    if !out.status.success() {
        return Err(format!(
            "kubectl apply -f deploy/crds failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        return Err("kubectl apply -f deploy/crds applied nothing".to_owned());
    }
    let mut args = vec!["wait", "--for", "condition=established", "--timeout=60s"];
    args.extend(names.iter().map(String::as_str));
    let out = cp.kubectl(&args);
    if !out.status.success() {
        return Err(format!(
            "CRDs not Established: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// `status.conditions[type == ty]` of an object.
pub fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

/// `status` of condition `ty` (`"True"`, `"False"`, `"Unknown"`), `None` when absent.
pub fn condition_status<'a>(obj: &'a Value, ty: &str) -> Option<&'a str> {
    condition(obj, ty)?["status"].as_str()
}

/// Condition `ty` is `True`.
pub fn is_true(obj: &Value, ty: &str) -> bool {
    condition_status(obj, ty) == Some("True")
}

/// Condition `ty` has `status` and `reason`.
pub fn has_condition(obj: &Value, ty: &str, status: &str, reason: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == status && c["reason"] == reason)
}

/// `status.observedGeneration == metadata.generation`: the status describes the current spec.
pub fn observed(obj: &Value) -> bool {
    obj["metadata"]["generation"].as_i64().is_some()
        && obj["status"]["observedGeneration"].as_i64() == obj["metadata"]["generation"].as_i64()
}

/// Observed and `Ready=True`.
pub fn ready(obj: &Value) -> bool {
    observed(obj) && is_true(obj, "Ready")
}

/// Which `switchyard serve --kubernetes` role to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Controller,
    DataPlane,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Controller => "controller",
            Role::DataPlane => "data-plane",
        }
    }
}

static PODS: AtomicUsize = AtomicUsize::new(0);

/// The real binary in Kubernetes mode (`serve --kubernetes`), watching one namespace that is also its
/// system namespace. Killed on drop; when the test is failing, the tail of its log is printed.
pub struct Switchyard {
    pub child: Child,
    /// Ingress address (roles `all` and `data-plane`).
    pub ingress: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// Validating webhook address (when started with `--webhook-listen`).
    pub webhook: Option<SocketAddr>,
    /// `POD_NAME`, the leader-election identity.
    pub pod_name: String,
    pub role: Role,
    dir: tempfile::TempDir,
}

impl Switchyard {
    /// Starts `role` for namespace `ns` with a unique `POD_NAME`.
    pub fn spawn(cp: &ControlPlane, role: Role, ns: &str) -> Switchyard {
        let pod = format!(
            "{ns}-{}-{}",
            role.as_str(),
            PODS.fetch_add(1, Ordering::SeqCst)
        );
        Self::spawn_with(cp, role, ns, &pod, &[])
    }

    /// Starts `role` for namespace `ns` with `POD_NAME=pod_name` and extra arguments.
    pub fn spawn_with(
        cp: &ControlPlane,
        role: Role,
        ns: &str,
        pod_name: &str,
        extra: &[&str],
    ) -> Switchyard {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--kubernetes", "--role", role.as_str()])
            .args(["--watch-namespace", ns, "--system-namespace", ns])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            // A short lease, so that taking over from a killed leader takes seconds, not 15 s.
            .args(["--lease-duration", "4s"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .env("KUBECONFIG", cp.kubeconfig())
            .env("POD_NAME", pod_name)
            .env_remove("SWITCHYARD_KUBERNETES")
            .env_remove("SWITCHYARD_ROLE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn switchyard");
        // The first line within the patience; the rest of stdout is drained so that the child never
        // blocks on (or fails writing to) a full or closed pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        // Generous: a controller might print its line only once it holds the Lease, which can take a
        // lease duration when a killed holder's Lease has to expire first.
        let line = rx
            .recv_timeout(patience().max(Duration::from_secs(60)))
            .unwrap_or_default();
        let mut ingress = None;
        let mut admin = None;
        let mut webhook = None;
        for part in line.split_whitespace() {
            if let Some(a) = part.strip_prefix("webhook=") {
                webhook = a.parse().ok();
            }
            if let Some(a) = part.strip_prefix("ingress=") {
                ingress = a.parse().ok();
            }
            if let Some(a) = part.strip_prefix("admin=") {
                admin = a.parse().ok();
            }
        }
        let wants_ingress = role != Role::Controller;
        let ok = line.starts_with("switchyard ready")
            && admin.is_some()
            && (ingress.is_some() || !wants_ingress);
        if !ok {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!(
                "switchyard serve --kubernetes --role {} did not report ready; first stdout line was {line:?}; \
                 stderr:\n{log}",
                role.as_str()
            );
        }
        Switchyard {
            child,
            ingress,
            admin: admin.unwrap(),
            webhook,
            pod_name: pod_name.to_owned(),
            role,
            dir,
        }
    }

    /// `http://INGRESS{path}` (panics for the controller role).
    pub fn ingress_url(&self, path: &str) -> String {
        let addr = self
            .ingress
            .unwrap_or_else(|| panic!("role {} has no ingress", self.role.as_str()));
        format!("http://{addr}{path}")
    }

    /// `http://ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the process wrote on stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("stderr.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Switchyard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- last stderr lines of switchyard {} (POD_NAME {}):\n{}",
                self.role.as_str(),
                self.pod_name,
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    }
}
