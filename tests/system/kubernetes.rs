//! Switchyard in Kubernetes mode against a real kube-apiserver (v1.20.2 + etcd, one per test binary, see
//! `common::k8s`): the CRDs and manifests of `deploy/` install, the controller resolves Brokers and Triggers
//! into their status (addresses, subscriber URIs, conditions, validation), the data plane delivers what the
//! controller resolved and follows edits and deletions, statuses survive a controller restart, and leader
//! election hands over to the second controller.
//!
//! Each test works in its own namespace, which is both the watched and the system namespace of the processes
//! it starts (Lease, `switchyard-ingress` Endpoints). Nothing runs pods: a test that wants Brokers Ready
//! creates the Endpoints object the endpoints controller would ([`ControlPlane::create_data_plane_endpoints`]).
//! Without an apiserver binary the tests fail (run `.ci/k8s-testbed.sh`), they never skip.

use crate::common::k8s::{
    condition, condition_status, has_condition, is_true, observed, ready, repo_root, ControlPlane,
    Role, Switchyard,
};
use crate::common::nats::Nats;
use crate::common::{ce_headers, eventually, post, request, Subscriber};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long a surviving controller may take to become leader after the holder was SIGKILLed: the Lease
/// (4 s in these tests, `--lease-duration`) has to expire first, then the new leader reconciles.
const LEASE_TAKEOVER: Duration = Duration::from_secs(30);

const CLASS: &str = "eventing.knative.dev/broker.class";

fn broker(ns: &str, name: &str, class: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: {name}\n  namespace: {ns}\n  \
         annotations:\n    {CLASS}: {class}\nspec: {{}}\n"
    )
}

/// A Trigger; `spec_extra` are lines of `spec` (indented by 2), `subscriber` the lines under
/// `subscriber:` (indented by 4).
fn trigger(ns: &str, name: &str, broker: &str, spec_extra: &str, subscriber: &str) -> String {
    format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  broker: {broker}\n{spec_extra}  subscriber:\n{subscriber}"
    )
}

fn uri(u: &str) -> String {
    format!("    uri: {u}\n")
}

fn filter_type(ty: &str) -> String {
    format!("  filter:\n    attributes:\n      type: {ty}\n")
}

fn service_ref(name: &str) -> String {
    format!("    ref:\n      apiVersion: v1\n      kind: Service\n      name: {name}\n")
}

/// `type → lastTransitionTime` of an object's conditions.
fn transition_times(obj: &Value) -> BTreeMap<String, String> {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_owned(),
                c["lastTransitionTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn message(obj: &Value, ty: &str) -> String {
    condition(obj, ty)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn cluster_url(ns: &str, svc: &str) -> String {
    format!("http://{svc}.{ns}.svc.cluster.local")
}

/// (a) The CRDs of deploy/crds are accepted by a real apiserver and Established; the kinds can be listed.
#[test]
fn crds_from_deploy_are_established() {
    let cp = ControlPlane::shared();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("deploy/crds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in serde_yaml::Deserializer::from_str(&std::fs::read_to_string(&path).unwrap()) {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if v["kind"].as_str() == Some("CustomResourceDefinition") {
                names.push(v["metadata"]["name"].as_str().unwrap().to_owned());
            }
        }
    }
    for expected in [
        "brokers.eventing.knative.dev",
        "triggers.eventing.knative.dev",
        "kafkasources.sources.knative.dev",
        "kafkasinks.eventing.knative.dev",
        "natssources.sources.switchyard.dev",
        "natssinks.sources.switchyard.dev",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "deploy/crds has no CRD {expected} (found {names:?})"
        );
    }
    for name in &names {
        let crd = cp
            .get_json("customresourcedefinitions.apiextensions.k8s.io", "", name)
            .unwrap_or_else(|| panic!("CRD {name} was not created"));
        assert!(
            is_true(&crd, "Established") && is_true(&crd, "NamesAccepted"),
            "CRD {name} not Established/NamesAccepted: {:#}",
            crd["status"]
        );
    }
    for kind in [
        "brokers",
        "triggers",
        "kafkasources",
        "kafkasinks",
        "natssources",
        "natssinks",
    ] {
        cp.kubectl_ok(&["get", kind, "-A"]);
    }
}

/// Splits multi-document YAML into (CustomResourceDefinitions, everything else), each as YAML.
fn split_crds(yaml: &str) -> (String, String) {
    let (mut crds, mut rest) = (String::new(), String::new());
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        let out = if v["kind"].as_str() == Some("CustomResourceDefinition") {
            &mut crds
        } else {
            &mut rest
        };
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&v).unwrap());
    }
    (crds, rest)
}

/// `kubectl apply --dry-run=server` of `yaml` (CRDs first), asserting success.
/// Objects without a namespace go to the kubeconfig's (`default`).
fn server_dry_run(cp: &ControlPlane, what: &str, yaml: &str) {
    let (crds, rest) = split_crds(yaml);
    for (docs, extra) in [
        (crds, vec!["--dry-run=server"]),
        (rest, vec!["--dry-run=server"]),
    ] {
        if docs.is_empty() {
            continue;
        }
        let out = cp.try_apply(&docs, &extra);
        assert!(
            out.status.success(),
            "kubectl apply {} of {what} failed:\n{}{}",
            extra.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn has_kustomization(dir: &std::path::Path) -> bool {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// The manifests at `path` as (label, YAML): a directory with a kustomization rendered by `kubectl
/// kustomize`, another directory file by file (recursively, except `skip`), a file as it is.
fn manifests(
    cp: &ControlPlane,
    path: &std::path::Path,
    skip: &[std::path::PathBuf],
) -> Vec<(String, String)> {
    let label = path.display().to_string();
    if !path.is_dir() {
        return vec![(label, std::fs::read_to_string(path).unwrap())];
    }
    if has_kustomization(path) {
        let rendered = cp.kubectl_ok(&["kustomize", path.to_str().unwrap()]);
        return vec![(format!("kustomize {label}"), rendered)];
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !skip.contains(p))
        .filter(|p| {
            p.is_dir() || matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    entries.sort();
    entries
        .iter()
        .flat_map(|p| manifests(cp, p, skip))
        .collect()
}

/// (b) What deploy/ installs (its kustomization, else every manifest under it) and the Kubernetes examples
/// (`examples/kubernetes*.yaml` and `examples/kubernetes*/`) pass the apiserver's validation (server-side
/// dry run).
#[test]
fn deploy_manifests_pass_server_dry_run() {
    let cp = ControlPlane::shared();
    // Namespaced objects can be dry-run only into an existing namespace.
    cp.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: switchyard-system\n");
    let deploy = repo_root().join("deploy");
    // deploy/controller is the Rust crate (the controller's code), not manifests.
    let deploy_manifests = manifests(cp, &deploy, &[deploy.join("controller")]);
    assert!(!deploy_manifests.is_empty(), "deploy/ has no manifests");
    let mut examples: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kubernetes")
        })
        .collect();
    examples.sort();
    let example_manifests: Vec<_> = examples
        .iter()
        .flat_map(|p| manifests(cp, p, &[]))
        .collect();
    let mut checked = Vec::new();
    for (label, yaml) in deploy_manifests {
        server_dry_run(cp, &label, &yaml);
        checked.push(label);
    }
    for (label, yaml) in example_manifests {
        server_dry_run(cp, &label, &yaml);
        checked.push(label);
    }
    eprintln!("server dry run passed for: {checked:?}");
}

/// (c) A Switchyard Broker: without data-plane Endpoints Ready=False (DataPlaneAvailable NoEndpoints); once
/// they exist Ready=True with its address and all dependent conditions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_gets_ready_and_address() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("broker-ready");
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    cp.apply(&broker(&ns, "b", "Switchyard"));

    let b = cp
        .wait_for(
            "broker",
            &ns,
            "b",
            "DataPlaneAvailable False NoEndpoints",
            |b| observed(b) && has_condition(b, "DataPlaneAvailable", "False", "NoEndpoints"),
        )
        .await;
    assert_eq!(
        condition_status(&b, "Ready"),
        Some("False"),
        "{:#}",
        b["status"]
    );

    cp.create_data_plane_endpoints(&ns);
    let b = cp.wait_for("broker", &ns, "b", "Ready", ready).await;
    let status = &b["status"];
    for ty in [
        "Ready",
        "Addressable",
        "DataPlaneAvailable",
        "DeadLetterSinkResolved",
        "SpecValid",
    ] {
        assert!(is_true(&b, ty), "{ty} is not True: {status:#}");
    }
    assert!(
        has_condition(
            &b,
            "DeadLetterSinkResolved",
            "True",
            "DeadLetterSinkNotConfigured"
        ),
        "{status:#}"
    );
    assert_eq!(status["observedGeneration"], b["metadata"]["generation"]);
    assert_eq!(
        status["address"]["url"],
        format!("http://switchyard-ingress.{ns}.svc.cluster.local/{ns}/b"),
        "{status:#}"
    );
}

/// (d) Trigger subscribers: a URI as is, a Service ref (plus a relative URI), an addressable ref (a Broker's
/// status.address.url); a missing Service is Unresolved until it is created. A Broker of another class gets
/// no status from Switchyard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_subscriber_resolution() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("resolution");
    cp.create_data_plane_endpoints(&ns);
    cp.create_service(&ns, "svc");
    // The foreign-class broker first, so that the controller has seen it before the Switchyard one is Ready.
    cp.apply(&broker(&ns, "mt", "MTChannelBasedBroker"));
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    cp.apply(&broker(&ns, "b", "Switchyard"));
    // An addressable subscriber: another Broker (its status.address.url).
    cp.apply(&broker(&ns, "sink", "Switchyard"));
    cp.apply(&trigger(
        &ns,
        "t-uri",
        "b",
        "",
        &uri("http://example.com/x?y=1"),
    ));
    cp.apply(&trigger(&ns, "t-svc", "b", "", &service_ref("svc")));
    cp.apply(&trigger(
        &ns,
        "t-svc-path",
        "b",
        "",
        &format!("{}    uri: /path\n", service_ref("svc")),
    ));
    cp.apply(&trigger(
        &ns,
        "t-addressable",
        "b",
        "",
        "    ref:\n      apiVersion: eventing.knative.dev/v1\n      kind: Broker\n      name: sink\n",
    ));
    cp.apply(&trigger(&ns, "t-missing", "b", "", &service_ref("later")));

    cp.wait_for("broker", &ns, "b", "Ready", ready).await;
    let sink = cp.wait_for("broker", &ns, "sink", "Ready", ready).await;
    let expect = [
        ("t-uri", "http://example.com/x?y=1".to_owned()),
        ("t-svc", cluster_url(&ns, "svc")),
        ("t-svc-path", format!("{}/path", cluster_url(&ns, "svc"))),
        (
            "t-addressable",
            sink["status"]["address"]["url"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
    ];
    for (name, want) in &expect {
        let t = cp.wait_for("trigger", &ns, name, "Ready", ready).await;
        assert!(
            is_true(&t, "SubscriberResolved"),
            "{name}: {:#}",
            t["status"]
        );
        assert_eq!(
            t["status"]["subscriberUri"], *want,
            "{name}: {:#}",
            t["status"]
        );
    }

    let t = cp
        .wait_for(
            "trigger",
            &ns,
            "t-missing",
            "SubscriberResolved False Unresolved",
            |t| observed(t) && has_condition(t, "SubscriberResolved", "False", "Unresolved"),
        )
        .await;
    assert_eq!(
        condition_status(&t, "Ready"),
        Some("False"),
        "{:#}",
        t["status"]
    );
    let uri = &t["status"]["subscriberUri"];
    assert!(
        uri.is_null() || uri == "",
        "an unresolved subscriber has no URI: {:#}",
        t["status"]
    );
    cp.create_service(&ns, "later");
    let t = cp
        .wait_for("trigger", &ns, "t-missing", "Ready", ready)
        .await;
    assert_eq!(t["status"]["subscriberUri"], cluster_url(&ns, "later"));

    // By now the controller has reconciled everything in the namespace, the foreign broker included.
    let mt = cp.get_json("broker", &ns, "mt").unwrap();
    let status = &mt["status"];
    assert!(
        status.is_null() || status.as_object().is_some_and(|o| o.is_empty()),
        "a MTChannelBasedBroker broker got a status from Switchyard: {status:#}"
    );
}

/// (e) A Trigger whose Broker does not exist yet waits for it (BrokerDoesNotExist), then becomes Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_before_broker() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("trigger-first");
    cp.create_data_plane_endpoints(&ns);
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    cp.apply(&trigger(&ns, "t", "b", "", &uri("http://example.com/")));
    let t = cp
        .wait_for(
            "trigger",
            &ns,
            "t",
            "BrokerReady False BrokerDoesNotExist",
            |t| observed(t) && has_condition(t, "BrokerReady", "False", "BrokerDoesNotExist"),
        )
        .await;
    assert_eq!(
        condition_status(&t, "Ready"),
        Some("False"),
        "{:#}",
        t["status"]
    );

    cp.apply(&broker(&ns, "b", "Switchyard"));
    let t = cp.wait_for("trigger", &ns, "t", "Ready", ready).await;
    assert!(is_true(&t, "BrokerReady"), "{:#}", t["status"]);
}

/// Sends a binary-mode event `{}` of type `ty` to `url`; returns the HTTP status.
async fn send(url: &str, id: &str, ty: &str) -> u16 {
    post(url, &ce_headers(id, ty), "{}").await.status
}

fn ids(sub: &Subscriber, path: &str) -> Vec<String> {
    sub.received_on(path)
        .iter()
        .filter_map(|r| r.header("ce-id"))
        .collect()
}

/// Waits until event `id` arrived on `path`.
async fn wait_id(sub: &Subscriber, path: &str, id: &str) {
    eventually(&format!("event {id} on {path}"), || async {
        ids(sub, path).iter().any(|i| i == id).then_some(())
    })
    .await;
}

/// (f) Controller + data plane as separate processes: the data plane delivers what the controller
/// resolved, follows a filter edit, and stops delivering to a deleted Trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_delivers_and_follows_edits() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("delivery");
    cp.create_data_plane_endpoints(&ns);
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    let dp = Switchyard::spawn(cp, Role::DataPlane, &ns);
    let sub = Subscriber::start().await;
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.apply(&trigger(
        &ns,
        "t1",
        "b",
        &filter_type("a"),
        &uri(&sub.url("/t1")),
    ));
    // t2 takes everything: it proves that the broker processed an event t1 did not get.
    cp.apply(&trigger(&ns, "t2", "b", "", &uri(&sub.url("/t2"))));
    for t in ["t1", "t2"] {
        cp.wait_for("trigger", &ns, t, "Ready", ready).await;
    }
    let url = dp.ingress_url(&format!("/{ns}/b"));
    let seq = AtomicUsize::new(0);
    let next = |p: &str| format!("{p}-{}", seq.fetch_add(1, Ordering::SeqCst));

    // 1. The data plane needs a moment to see the objects: send until t1 has one (404s until then).
    eventually("an event of type a delivered to t1", || async {
        send(&url, &next("first"), "a").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        (!sub.received_on("/t1").is_empty()).then_some(())
    })
    .await;
    let first = sub.received_on("/t1")[0].clone();
    assert_eq!(first.header("ce-type").as_deref(), Some("a"));

    // 2. Filter edited to type=b: once a b arrives, a's are no longer delivered.
    cp.patch(
        "trigger",
        &ns,
        "t1",
        r#"{"spec":{"filter":{"attributes":{"type":"b"}}}}"#,
    );
    cp.wait_for("trigger", &ns, "t1", "Ready at the new generation", |t| {
        ready(t) && t["metadata"]["generation"].as_i64() > Some(1)
    })
    .await;
    eventually("an event of type b delivered to t1", || async {
        assert_eq!(send(&url, &next("edit"), "b").await, 202);
        tokio::time::sleep(Duration::from_millis(200)).await;
        sub.received_on("/t1")
            .iter()
            .any(|r| r.header("ce-type").as_deref() == Some("b"))
            .then_some(())
    })
    .await;
    let (a, b) = (next("after-edit-a"), next("after-edit-b"));
    assert_eq!(send(&url, &a, "a").await, 202);
    assert_eq!(send(&url, &b, "b").await, 202);
    wait_id(&sub, "/t1", &b).await;
    wait_id(&sub, "/t2", &a).await;
    assert!(
        !ids(&sub, "/t1").contains(&a),
        "t1 (filter type=b) received an event of type a after the edit"
    );

    // 3. t1 deleted: events still reach t2, and no longer t1.
    cp.delete("trigger", &ns, "t1");
    eventually("an event reaching t2 but not the deleted t1", || async {
        let (x, barrier) = (next("deleted-x"), next("deleted-barrier"));
        assert_eq!(send(&url, &x, "b").await, 202);
        wait_id(&sub, "/t2", &x).await;
        // A second event through t2 leaves t1 time to deliver x, had it still been there.
        assert_eq!(send(&url, &barrier, "b").await, 202);
        wait_id(&sub, "/t2", &barrier).await;
        (!ids(&sub, "/t1").contains(&x)).then_some(())
    })
    .await;
    let seen_by_t1 = sub.received_on("/t1").len();
    let (x, barrier) = (next("final-x"), next("final-barrier"));
    assert_eq!(send(&url, &x, "b").await, 202);
    wait_id(&sub, "/t2", &x).await;
    assert_eq!(send(&url, &barrier, "b").await, 202);
    wait_id(&sub, "/t2", &barrier).await;
    assert_eq!(
        sub.received_on("/t1").len(),
        seen_by_t1,
        "the deleted trigger t1 still receives events: {:?}",
        ids(&sub, "/t1")
    );
}

/// (g) A new controller (after SIGKILL of the old one) keeps the statuses the old one wrote: same
/// conditions, same lastTransitionTime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_keeps_statuses() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("restart");
    cp.create_data_plane_endpoints(&ns);
    let mut ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.apply(&trigger(&ns, "t", "b", "", &uri("http://example.com/")));
    let b = cp.wait_for("broker", &ns, "b", "Ready", ready).await;
    let t = cp.wait_for("trigger", &ns, "t", "Ready", ready).await;
    let (b_times, t_times) = (transition_times(&b), transition_times(&t));
    assert!(b_times.values().all(|v| !v.is_empty()), "{b_times:?}");
    assert!(t_times.values().all(|v| !v.is_empty()), "{t_times:?}");

    ctl.kill9();
    let _ctl2 = Switchyard::spawn(cp, Role::Controller, &ns);
    // The new controller works (after taking over the Lease) once a Trigger created now gets Ready.
    cp.apply(&trigger(
        &ns,
        "t-new",
        "b",
        "",
        &uri("http://example.com/new"),
    ));
    cp.wait_for_within(LEASE_TAKEOVER, "trigger", &ns, "t-new", "Ready", ready)
        .await;

    let b = cp.get_json("broker", &ns, "b").unwrap();
    let t = cp.get_json("trigger", &ns, "t").unwrap();
    assert!(ready(&b), "{:#}", b["status"]);
    assert!(ready(&t), "{:#}", t["status"]);
    assert_eq!(transition_times(&b), b_times, "broker conditions changed");
    assert_eq!(transition_times(&t), t_times, "trigger conditions changed");
}

fn holder(lease: &Value) -> Option<String> {
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// (h) Two controllers: one holds the Lease; when it dies the other takes over and reconciles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("leader");
    cp.create_data_plane_endpoints(&ns);
    let mut ctls = [
        Switchyard::spawn(cp, Role::Controller, &ns),
        Switchyard::spawn(cp, Role::Controller, &ns),
    ];
    let pods: Vec<String> = ctls.iter().map(|c| c.pod_name.clone()).collect();
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.wait_for("broker", &ns, "b", "Ready", ready).await;

    let lease_kind = "leases.coordination.k8s.io";
    let lease = cp
        .wait_for(lease_kind, &ns, "switchyard-controller", "a holder", |l| {
            holder(l).is_some_and(|h| pods.contains(&h))
        })
        .await;
    let leader = holder(&lease).unwrap();
    let i = pods.iter().position(|p| *p == leader).unwrap();
    let other = pods[1 - i].clone();

    ctls[i].kill9();
    cp.wait_for_within(
        LEASE_TAKEOVER,
        lease_kind,
        &ns,
        "switchyard-controller",
        &format!("{other} holds the lease"),
        |l| holder(l).as_deref() == Some(other.as_str()),
    )
    .await;
    cp.apply(&trigger(
        &ns,
        "t-after",
        "b",
        "",
        &uri("http://example.com/"),
    ));
    cp.wait_for("trigger", &ns, "t-after", "Ready", ready).await;
}

/// (i) Invalid Triggers are reported in SpecValid (Invalid, naming the field) and a changed spec.broker
/// is refused (ImmutableFieldChanged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_trigger_reported() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("invalid");
    cp.create_data_plane_endpoints(&ns);
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.apply(&broker(&ns, "other", "Switchyard"));
    // Knative's webhook only accepts lower-case alphanumeric attribute names.
    cp.apply(&trigger(
        &ns,
        "t-upper",
        "b",
        "  filter:\n    attributes:\n      Type: a\n",
        &uri("http://example.com/"),
    ));
    cp.apply(&trigger(
        &ns,
        "t-cesql",
        "b",
        "  filters:\n  - cesql: \"type = = 'a'\"\n",
        &uri("http://example.com/"),
    ));
    cp.apply(&trigger(
        &ns,
        "t-move",
        "b",
        "",
        &uri("http://example.com/"),
    ));

    let invalid = |t: &Value| observed(t) && has_condition(t, "SpecValid", "False", "Invalid");
    let t = cp
        .wait_for(
            "trigger",
            &ns,
            "t-upper",
            "SpecValid False Invalid",
            invalid,
        )
        .await;
    assert_eq!(
        condition_status(&t, "Ready"),
        Some("False"),
        "{:#}",
        t["status"]
    );
    let m = message(&t, "SpecValid");
    assert!(
        m.contains("spec.filter"),
        "message does not name the field: {m:?}"
    );

    let t = cp
        .wait_for(
            "trigger",
            &ns,
            "t-cesql",
            "SpecValid False Invalid",
            invalid,
        )
        .await;
    assert_eq!(
        condition_status(&t, "Ready"),
        Some("False"),
        "{:#}",
        t["status"]
    );
    let m = message(&t, "SpecValid");
    assert!(
        m.contains("spec.filter") && m.to_ascii_lowercase().contains("cesql"),
        "message does not name the field: {m:?}"
    );

    cp.wait_for("trigger", &ns, "t-move", "Ready", ready).await;
    cp.patch("trigger", &ns, "t-move", r#"{"spec":{"broker":"other"}}"#);
    let t = cp
        .wait_for(
            "trigger",
            &ns,
            "t-move",
            "SpecValid False ImmutableFieldChanged",
            |t| observed(t) && has_condition(t, "SpecValid", "False", "ImmutableFieldChanged"),
        )
        .await;
    assert_eq!(
        condition_status(&t, "Ready"),
        Some("False"),
        "{:#}",
        t["status"]
    );
}

/// (i) A Trigger whose subscriber refs a NatsSink (created after the Trigger): the controller resolves it
/// once the sink exists (descriptive subscriberUri `nats://<servers>/<subject>`), and the data plane
/// publishes the events posted to its ingress to the NATS subject (binary mode, `ce-` headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_to_a_nats_sink_publishes_to_nats() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("natssink");
    cp.create_data_plane_endpoints(&ns);
    let nats = Nats::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut messages = client.subscribe("k8s.out").await.unwrap();
    client.flush().await.unwrap();
    let sw = Switchyard::spawn(cp, Role::All, &ns);
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.apply(&trigger(
        &ns,
        "to-nats",
        "b",
        &filter_type("a"),
        "    ref:\n      apiVersion: sources.switchyard.dev/v1alpha1\n      kind: NatsSink\n      name: out\n",
    ));
    let t = cp
        .wait_for("trigger", &ns, "to-nats", "SubscriberResolved False", |t| {
            observed(t) && has_condition(t, "SubscriberResolved", "False", "Unresolved")
        })
        .await;
    assert!(
        message(&t, "SubscriberResolved").contains(&format!("NatsSink {ns}/out not found")),
        "{:#}",
        t["status"]
    );
    cp.apply(&format!(
        "apiVersion: sources.switchyard.dev/v1alpha1\nkind: NatsSink\nmetadata:\n  name: out\n  namespace: {ns}\n\
         spec:\n  servers:\n    - {}\n  subject: k8s.out\n",
        nats.url()
    ));
    cp.wait_for("natssink", &ns, "out", "Ready", |s| observed(s) && ready(s))
        .await;
    let t = cp
        .wait_for("trigger", &ns, "to-nats", "Ready", |t| {
            observed(t) && ready(t)
        })
        .await;
    assert_eq!(
        t["status"]["subscriberUri"],
        format!("{}/k8s.out", nats.url()),
        "descriptive subscriberUri"
    );

    // The data plane needs a moment to see the objects: send until a message arrives (404s until then).
    let url = sw.ingress_url(&format!("/{ns}/b"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seq = 0;
    let msg = loop {
        seq += 1;
        send(&url, &format!("nats-{seq}"), "a").await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), messages.next()).await
        {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event published to k8s.out within 60 s; Switchyard log:\n{}",
            sw.log()
        );
    };
    let headers = msg.headers.expect("binary mode has headers");
    assert_eq!(headers.get("ce-type").unwrap().as_str(), "a");
    assert!(headers.get("ce-id").unwrap().as_str().starts_with("nats-"));
    assert_eq!(&msg.payload[..], b"{}");
}

/// The validating admission webhook, called by the real apiserver over HTTPS with the CA the controller
/// issued and published: bad writes are refused with the field path, good ones pass, immutable fields
/// stay immutable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refuses_invalid_writes() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("webhook");
    cp.kubectl_ok(&[
        "label",
        "namespace",
        &ns,
        &format!("switchyard-webhook={ns}"),
    ]);
    let config = format!("switchyard-validation-{ns}");
    let ctl = Switchyard::spawn_with(
        cp,
        Role::Controller,
        &ns,
        &format!("{ns}-controller"),
        &[
            "--webhook-listen",
            "127.0.0.1:0",
            "--webhook-host",
            "127.0.0.1",
            "--webhook-configuration",
            &config,
        ],
    );
    let port = ctl
        .webhook
        .expect("the controller reports its webhook address")
        .port();
    // What deploy/webhook.yaml installs, pointed at this process and limited to this test's namespace.
    cp.apply(&format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n\
         metadata: {{name: {config}}}\nwebhooks:\n- name: validation.switchyard.dev\n  \
         admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 5\n  \
         namespaceSelector: {{matchLabels: {{switchyard-webhook: {ns}}}}}\n  \
         clientConfig: {{url: 'https://127.0.0.1:{port}/validate'}}\n  rules:\n  \
         - apiGroups: [eventing.knative.dev]\n    apiVersions: [v1]\n    operations: [CREATE, UPDATE]\n    \
         resources: [brokers, triggers]\n"
    ));
    cp.wait_for(
        "validatingwebhookconfiguration",
        "",
        &config,
        "the CA in caBundle",
        |c| {
            c["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .is_some_and(|b| !b.is_empty())
        },
    )
    .await;
    // The Secret holds what the webhook serves with.
    let secret = cp
        .get_json("secret", &ns, "switchyard-webhook-certs")
        .expect("certificate Secret");
    assert!(secret["data"]["tls.crt"].is_string() && secret["data"]["ca.crt"].is_string());

    let refused = |yaml: String, expected: &'static str| {
        let out = cp.try_apply(&yaml, &[]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "accepted: {yaml}");
        assert!(
            err.contains("admission webhook \"validation.switchyard.dev\" denied the request")
                && err.contains(expected),
            "expected a denial naming {expected:?}, got: {err}"
        );
    };
    refused(
        trigger(
            &ns,
            "upper",
            "b",
            &filter_type("a").replace("type:", "Type:"),
            &uri("http://s.example/"),
        ),
        "spec.filter.attributes: key \"Type\"",
    );
    refused(
        trigger(
            &ns,
            "cesql",
            "b",
            "  filters:\n  - cesql: \"type = \"\n",
            &uri("http://s.example/"),
        ),
        "spec.filters[0].cesql",
    );
    refused(
        trigger(&ns, "relative", "b", "", &uri("/not-absolute")),
        "spec.subscriber.uri",
    );
    // Valid objects pass; immutable fields cannot change afterwards.
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.apply(&trigger(
        &ns,
        "ok",
        "b",
        &filter_type("a"),
        &uri("http://s.example/"),
    ));
    refused(
        trigger(
            &ns,
            "ok",
            "other",
            &filter_type("a"),
            &uri("http://s.example/"),
        ),
        "spec.broker is immutable (was \"b\", now \"other\")",
    );
    refused(
        broker(&ns, "b", "Switchyard").replace("Switchyard", "Acme"),
        "is immutable",
    );
    // Brokers of another class are not Switchyard's to judge.
    cp.apply(&broker(&ns, "knative", "MTChannelBasedBroker"));
    let metrics = request("GET", &ctl.admin_url("/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains("switchyard_webhook_reviews_total{kind=\"Trigger\",allowed=\"false\"}"),
        "{text}"
    );
    cp.kubectl_ok(&["delete", "validatingwebhookconfiguration", &config]);
}

/// Dead-letter sinks: the Broker's is resolved into its status (Ready needs it, as the spec says), a
/// Trigger without delivery inherits it, a Trigger with its own delivery uses its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_sinks_resolve_and_inherit() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("dls");
    cp.create_data_plane_endpoints(&ns);
    cp.create_service(&ns, "dls");
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    let with_dls = |name: &str, svc: &str| {
        format!(
            "{}spec:\n  delivery:\n    retry: 2\n    deadLetterSink:\n      ref: {{apiVersion: v1, kind: Service, name: {svc}}}\n",
            broker(&ns, name, "Switchyard")
        )
    };
    cp.apply(&with_dls("b", "dls"));
    cp.apply(&with_dls("broken", "missing"));
    cp.apply(&trigger(
        &ns,
        "inherits",
        "b",
        "",
        &uri("http://s.example/"),
    ));
    cp.apply(&trigger(
        &ns,
        "own",
        "b",
        "  delivery:\n    deadLetterSink: {uri: 'http://own-dls.example/'}\n",
        &uri("http://s.example/"),
    ));
    let b = cp.wait_for("broker", &ns, "b", "Ready", ready).await;
    let dls = format!("http://dls.{ns}.svc.cluster.local");
    assert_eq!(
        b["status"]["deadLetterSinkUri"],
        dls.as_str(),
        "{:#}",
        b["status"]
    );
    let t = cp
        .wait_for("trigger", &ns, "inherits", "Ready", ready)
        .await;
    assert_eq!(
        t["status"]["deadLetterSinkUri"],
        dls.as_str(),
        "{:#}",
        t["status"]
    );
    let t = cp.wait_for("trigger", &ns, "own", "Ready", ready).await;
    assert_eq!(
        t["status"]["deadLetterSinkUri"], "http://own-dls.example/",
        "{:#}",
        t["status"]
    );
    let broken = cp
        .wait_for(
            "broker",
            &ns,
            "broken",
            "DeadLetterSinkResolved False",
            |b| observed(b) && has_condition(b, "DeadLetterSinkResolved", "False", "Unresolved"),
        )
        .await;
    assert_eq!(condition_status(&broken, "Ready"), Some("False"));
    assert!(broken["status"].get("deadLetterSinkUri").is_none());
    // Creating the missing Service resolves it.
    cp.create_service(&ns, "missing");
    let fixed = cp
        .wait_for_within(
            Duration::from_secs(30),
            "broker",
            &ns,
            "broken",
            "Ready",
            ready,
        )
        .await;
    assert_eq!(
        fixed["status"]["deadLetterSinkUri"],
        format!("http://missing.{ns}.svc.cluster.local").as_str()
    );
}

/// Failures are Kubernetes Events on the object (what `kubectl describe` shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_published_as_events() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("events");
    let _ctl = Switchyard::spawn(cp, Role::Controller, &ns);
    cp.apply(&trigger(
        &ns,
        "orphan",
        "nope",
        "",
        &uri("http://s.example/"),
    ));
    eventually(
        "a Warning event BrokerDoesNotExist for Trigger orphan",
        || async {
            let out = cp.kubectl(&["get", "events.events.k8s.io", "-n", &ns, "-o", "json"]);
            let list: Value = serde_json::from_slice(&out.stdout).ok()?;
            list["items"]
                .as_array()?
                .iter()
                .any(|e| {
                    e["type"] == "Warning"
                        && e["reason"] == "BrokerDoesNotExist"
                        && e["regarding"]["kind"] == "Trigger"
                        && e["regarding"]["name"] == "orphan"
                        && e["note"].as_str().is_some_and(|n| n.contains("nope"))
                })
                .then_some(())
        },
    )
    .await;
}

/// `serve --kubernetes` (role all): controller and data plane in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_controls_and_serves() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("all-in-one");
    cp.create_data_plane_endpoints(&ns);
    let sy = Switchyard::spawn(cp, Role::All, &ns);
    let sub = Subscriber::start().await;
    cp.apply(&broker(&ns, "b", "Switchyard"));
    cp.apply(&trigger(&ns, "t", "b", "", &uri(&sub.url("/t"))));
    cp.wait_for("trigger", &ns, "t", "Ready", ready).await;
    let url = sy.ingress_url(&format!("/{ns}/b"));
    let mut n = 0;
    eventually("an event delivered through the all-in-one process", || {
        n += 1;
        let id = format!("e{n}");
        let (url, sub) = (url.clone(), &sub);
        async move {
            send(&url, &id, "a").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (!sub.received_on("/t").is_empty()).then_some(())
        }
    })
    .await;
    let readyz = request("GET", &sy.admin_url("/readyz"), &[], "").await;
    assert_eq!(
        readyz.status, 200,
        "the data plane is ready once the cluster configuration is applied"
    );
    // One OpenMetrics exposition with the data plane's and the controller's metrics.
    let metrics = request("GET", &sy.admin_url("/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("switchyard_controller_leader 1"), "{text}");
    assert!(
        text.contains("switchyard_controller_reconciles_total{kind=\"Trigger\",result=\"ok\"}"),
        "{text}"
    );
    assert!(text.contains("switchyard_events_accepted_total"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    assert!(text.ends_with("# EOF\n"));
}
