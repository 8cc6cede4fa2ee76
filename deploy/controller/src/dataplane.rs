//! The data plane's view of the cluster: Brokers and Triggers, as the controller resolved them, turned
//! into the [`Topology`] the channel, ingress and dispatcher run (exactly like a config hot reload).
//!
//! An object is used once the controller has reconciled its current generation
//! (`status.observedGeneration == metadata.generation`) and found it valid (`SpecValid` not False); a
//! Trigger also needs `SubscriberResolved` and uses `status.subscriberUri`, and dead-letter sinks use the
//! resolved `status.deadLetterSinkUri`. While an edit waits for the controller, the previous accepted
//! version stays in force, so an edit never interrupts routing. Brokers of other classes, and Triggers
//! of brokers this installation does not serve, are ignored. ConfigMaps referenced by Kafka- or
//! JetStream-backed Brokers are read at each rebuild and every [`RESYNC`].
//!
//! KafkaSources, KafkaSinks, NatsSources and NatsSinks follow the same acceptance rule; a source keeps a
//! `ref` to a Broker this installation serves (the loader points it at this process's own ingress) and
//! otherwise uses `status.sinkUri`; a Trigger whose subscriber is a KafkaSink / NatsSink keeps its `ref`
//! and runs once that sink does. These kinds are optional: a kind whose list fails with 404 (CRD not
//! installed) counts as empty, so it never holds up the first topology, and is watched again with backoff.
//!
//! Every change is debounced ([`DEBOUNCE`]), loaded with the standalone loader's tolerant pass (the
//! objects are fed as values, never as YAML text; an object the loader rejects, and what depends on it,
//! is left out and logged, in one pass; the rest still apply) and sent only when the result differs.

use crate::conditions::{is_false, is_true};
use crate::crd::{Broker, BrokerStatus, Condition, DeliverySpec, Trigger, TriggerStatus};
use crate::crd_sources::{
    is_broker_ref, sink_kind_of, KafkaSink, KafkaSource, NatsSink, NatsSource, SourceOrSink,
};
use crate::manifest::{
    broker_manifest, configmap_manifest, object_manifest, owns_broker, sink_ref_subscriber,
    source_sink, trigger_manifest_with,
};
use crate::Settings;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use switchyard_broker::config::Topology;
use switchyard_broker::model::object::Object;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Quiet time after a change before the topology is rebuilt (coalesces bursts, e.g. `kubectl apply -f dir`).
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// Rebuild at least this often (picks up ConfigMap edits).
pub const RESYNC: Duration = Duration::from_secs(30);

/// The last accepted manifest per object: `(kind namespace/name)` → (fingerprint, manifest). The
/// fingerprint (the object's `resourceVersion` plus any outside input) lets an unchanged object keep its
/// manifest without translating it again: a status update of one Trigger among thousands re-translates one.
#[derive(Debug, Default)]
pub struct Accepted {
    objects: HashMap<String, (Option<String>, Object)>,
}

impl Accepted {
    /// Records the accepted version of `key`, rendering it only when `fingerprint` changed (`None`: always).
    fn accept(&mut self, key: &str, fingerprint: Option<String>, render: impl FnOnce() -> Object) {
        if let Some((Some(seen), _)) = self.objects.get(key) {
            if fingerprint.as_ref() == Some(seen) {
                return;
            }
        }
        self.objects.insert(key.to_owned(), (fingerprint, render()));
    }
}

fn generation_observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.is_some() && observed == generation
}

/// Whether the controller has checked this generation of a Broker or Trigger, found its spec valid and
/// resolved the dead-letter sink of its `delivery` (if it has one).
fn checked(
    generation: Option<i64>,
    observed: Option<i64>,
    conditions: &[Condition],
    delivery: Option<&DeliverySpec>,
    dead_letter_sink_uri: Option<&str>,
) -> bool {
    let dls_needed = delivery.is_some_and(|d| d.dead_letter_sink.is_some());
    generation_observed(generation, observed)
        && !is_false(conditions, "SpecValid")
        && (!dls_needed || dead_letter_sink_uri.is_some())
}

/// The source and sink objects of the cluster (each empty when its CRD is not installed).
#[derive(Debug, Default, Clone)]
pub struct Others {
    /// KafkaSources.
    pub kafka_sources: Vec<Arc<KafkaSource>>,
    /// KafkaSinks.
    pub kafka_sinks: Vec<Arc<KafkaSink>>,
    /// NatsSources.
    pub nats_sources: Vec<Arc<NatsSource>>,
    /// NatsSinks.
    pub nats_sinks: Vec<Arc<NatsSink>>,
}

/// Accepts sources and sinks like Brokers (current generation observed, `SpecValid` not False); a
/// source's sink is its Broker `ref` as is when this installation serves that Broker (the loader
/// resolves it to this process's own ingress), else the controller's `status.sinkUri`.
fn select_objects<K: SourceOrSink>(
    objects: &[Arc<K>],
    served: &BTreeSet<(String, String)>,
    accepted: &mut Accepted,
    alive: &mut BTreeSet<String>,
    out: &mut BTreeMap<String, Object>,
) {
    for o in objects {
        let ns = o.namespace().unwrap_or_default();
        let key = format!("{} {ns}/{}", K::KIND, o.name_any());
        alive.insert(key.clone());
        let usable = generation_observed(o.meta().generation, o.observed_generation())
            && !is_false(o.conditions(), "SpecValid");
        let sink = match o.sink() {
            None => Some(None),
            Some(d) => {
                let served_broker = is_broker_ref(&d)
                    && d.reference.as_ref().is_some_and(|r| {
                        let bns = r.namespace.clone().unwrap_or_else(|| ns.clone());
                        served.contains(&(bns, r.name.clone()))
                    });
                if served_broker {
                    Some(Some(source_sink(&d, true, None)))
                } else {
                    o.sink_uri().map(|u| Some(source_sink(&d, false, Some(u))))
                }
            }
        };
        if let (true, Some(sink)) = (usable, sink) {
            // The sink depends on other objects (is its Broker served here?): part of the fingerprint.
            let fingerprint = o
                .meta()
                .resource_version
                .as_ref()
                .map(|rv| format!("{rv} {sink:?}"));
            accepted.accept(&key, fingerprint, || object_manifest(&**o, sink));
        }
        if let Some((_, manifest)) = accepted.objects.get(&key) {
            out.insert(key, manifest.clone());
        }
    }
}

/// What the data plane applies now: object name (`Kind namespace/name`) → manifest, in a stable order.
/// Pure except for `accepted`, which carries the last accepted version of each object across calls.
pub fn select(
    brokers: &[Arc<Broker>],
    triggers: &[Arc<Trigger>],
    others: &Others,
    settings: &Settings,
    accepted: &mut Accepted,
) -> BTreeMap<String, Object> {
    let mut out = BTreeMap::new();
    let mut alive = BTreeSet::new();
    let mut served = BTreeSet::new();
    for b in brokers.iter().filter(|b| owns_broker(b, settings)) {
        let ns = b.namespace().unwrap_or_default();
        let key = format!("Broker {ns}/{}", b.name_any());
        alive.insert(key.clone());
        let no_status = BrokerStatus::default();
        let status = b.status.as_ref().unwrap_or(&no_status);
        let usable = checked(
            b.metadata.generation,
            status.observed_generation,
            &status.conditions,
            b.spec.delivery.as_ref(),
            status.dead_letter_sink_uri.as_deref(),
        );
        if usable {
            accepted.accept(&key, b.metadata.resource_version.clone(), || {
                broker_manifest(b, status.dead_letter_sink_uri.as_deref())
            });
        }
        if let Some((_, manifest)) = accepted.objects.get(&key) {
            out.insert(key, manifest.clone());
            served.insert((ns, b.name_any()));
        }
    }
    let (a, o) = (&mut alive, &mut out);
    select_objects(&others.kafka_sinks, &served, accepted, a, o);
    select_objects(&others.nats_sinks, &served, accepted, a, o);
    select_objects(&others.kafka_sources, &served, accepted, a, o);
    select_objects(&others.nats_sources, &served, accepted, a, o);
    for t in triggers {
        let ns = t.namespace().unwrap_or_default();
        if !served.contains(&(ns.clone(), t.spec.broker.clone())) {
            continue;
        }
        let key = format!("Trigger {ns}/{}", t.name_any());
        alive.insert(key.clone());
        let no_status = TriggerStatus::default();
        let status = t.status.as_ref().unwrap_or(&no_status);
        let usable = checked(
            t.metadata.generation,
            status.observed_generation,
            &status.conditions,
            t.spec.delivery.as_ref(),
            status.dead_letter_sink_uri.as_deref(),
        ) && is_true(&status.conditions, "SubscriberResolved");
        // A KafkaSink / NatsSink subscriber stays a ref (the dispatcher produces / publishes to it); the
        // trigger waits until the data plane runs that sink (the loader would reject it otherwise).
        let sink = sink_kind_of(&t.spec.subscriber).zip(t.spec.subscriber.reference.as_ref());
        let subscriber = match sink {
            Some((_, r)) => Some(sink_ref_subscriber(r)),
            None => status
                .subscriber_uri
                .as_deref()
                .map(crate::manifest::destination_as_uri),
        };
        if let (true, Some(subscriber)) = (usable, subscriber) {
            accepted.accept(&key, t.metadata.resource_version.clone(), || {
                trigger_manifest_with(t, subscriber, status.dead_letter_sink_uri.as_deref())
            });
        }
        let sink_running = sink.is_none_or(|(kind, r)| {
            let sns = r.namespace.clone().unwrap_or_else(|| ns.clone());
            out.contains_key(&format!("{kind} {sns}/{}", r.name))
        });
        if let (true, Some((_, manifest))) = (sink_running, accepted.objects.get(&key)) {
            out.insert(key, manifest.clone());
        }
    }
    // Deleted objects (or objects whose broker went away) are forgotten.
    accepted.objects.retain(|k, _| alive.contains(k));
    out
}

/// Loads the objects in one pass of the loader's tolerant mode, leaving out (and logging) the ones it
/// rejects and what depends on them, so that one bad object never stops the others.
pub fn load_tolerant(sources: BTreeMap<String, Object>) -> Topology {
    let objects: Vec<(String, Object)> = sources.into_iter().collect();
    let (manifests, mut errors) = crate::manifest::manifests(&objects);
    let loaded = switchyard_broker::config::load::load_tolerant(&manifests);
    errors.extend(loaded.errors);
    for e in &errors {
        tracing::error!(object = %e.file, problem = %format!("{}: {}", e.path, e.message), "Left out of the data plane.");
    }
    loaded.topology
}

async fn with_configmaps(
    client: &Client,
    brokers: &[std::sync::Arc<Broker>],
    settings: &Settings,
    mut sources: BTreeMap<String, Object>,
) -> BTreeMap<String, Object> {
    for b in brokers.iter().filter(|b| owns_broker(b, settings)) {
        let ns = b.namespace().unwrap_or_default();
        if !sources.contains_key(&format!("Broker {ns}/{}", b.name_any())) {
            continue;
        }
        let Some(c) = b.spec.config.as_ref().filter(|c| c.kind == "ConfigMap") else {
            continue;
        };
        let cns = c.namespace.clone().unwrap_or(ns);
        let key = format!("ConfigMap {cns}/{}", c.name);
        if sources.contains_key(&key) {
            continue;
        }
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cns);
        match api.get_opt(&c.name).await {
            Ok(Some(cm)) => {
                let manifest = configmap_manifest(&cns, &c.name, &cm.data.unwrap_or_default());
                sources.insert(key, manifest);
            }
            Ok(None) => tracing::warn!(configmap = %key, "Referenced ConfigMap not found."),
            Err(e) => {
                tracing::warn!(configmap = %key, error = %e, "Cannot read a referenced ConfigMap.")
            }
        }
    }
    sources
}

fn watch_stream<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    (reader, stream)
}

/// Watches the cluster and sends a new topology on `tx` whenever what the data plane should run changes;
/// returns when `stop` fires or the receiver is gone.
pub async fn run(
    client: Client,
    settings: Settings,
    tx: mpsc::Sender<Topology>,
    stop: CancellationToken,
) {
    let (brokers_api, triggers_api): (Api<Broker>, Api<Trigger>) = match &settings.watch_namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (brokers, broker_events) = watch_stream(brokers_api);
    let (triggers, trigger_events) = watch_stream(triggers_api);
    let mut broker_events = std::pin::pin!(broker_events);
    let mut trigger_events = std::pin::pin!(trigger_events);
    // The source and sink kinds: optional (a cluster may not have their CRDs), so one stream of
    // (kind index, outcome) for all four, and a kind whose list fails with 404 counts as empty.
    let (kafka_sources, ks) = watch_stream(api_for::<KafkaSource>(&client, &settings));
    let (kafka_sinks, kk) = watch_stream(api_for::<KafkaSink>(&client, &settings));
    let (nats_sources, ns) = watch_stream(api_for::<NatsSource>(&client, &settings));
    let (nats_sinks, nk) = watch_stream(api_for::<NatsSink>(&client, &settings));
    let mut other_events = futures_util::stream::select_all([
        ks.map(|e| (0, e.map(|_| ()))).boxed(),
        kk.map(|e| (1, e.map(|_| ()))).boxed(),
        ns.map(|e| (2, e.map(|_| ()))).boxed(),
        nk.map(|e| (3, e.map(|_| ()))).boxed(),
    ]);
    let mut optional = [
        OptionalKind::new("KafkaSource"),
        OptionalKind::new("KafkaSink"),
        OptionalKind::new("NatsSource"),
        OptionalKind::new("NatsSink"),
    ];
    let mut accepted = Accepted::default();
    let mut last: Option<BTreeMap<String, Object>> = None;
    let mut dirty = true;
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let debounce = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = broker_events.next() => {
                if ev.is_none() { return; }
                log_watch_error(ev, "Brokers");
                dirty = true;
                continue;
            }
            ev = trigger_events.next() => {
                if ev.is_none() { return; }
                log_watch_error(ev, "Triggers");
                dirty = true;
                continue;
            }
            ev = other_events.next() => {
                let Some((i, ev)) = ev else { return; };
                optional[i].observe(ev);
                dirty = true;
                continue;
            }
            _ = resync.tick() => { dirty = true; continue; }
            _ = debounce, if dirty => {}
        }
        // Both caches must have their initial list, or a half-read cluster would look like deletions.
        // The optional kinds too, unless the cluster does not serve them (404: no objects of that kind).
        let unready = [
            kafka_sources.is_empty_unready(),
            kafka_sinks.is_empty_unready(),
            nats_sources.is_empty_unready(),
            nats_sinks.is_empty_unready(),
        ];
        if brokers.is_empty_unready()
            || triggers.is_empty_unready()
            || unready
                .iter()
                .zip(&optional)
                .any(|(unready, k)| *unready && !k.missing)
        {
            continue;
        }
        dirty = false;
        let (b, t) = (brokers.state(), triggers.state());
        let others = Others {
            kafka_sources: kafka_sources.state(),
            kafka_sinks: kafka_sinks.state(),
            nats_sources: nats_sources.state(),
            nats_sinks: nats_sinks.state(),
        };
        let selected = select(&b, &t, &others, &settings, &mut accepted);
        let sources = with_configmaps(&client, &b, &settings, selected).await;
        if last.as_ref() == Some(&sources) {
            continue;
        }
        let (nb, nt) = (b.len(), t.len());
        let topology = tokio::task::spawn_blocking({
            let sources = sources.clone();
            move || load_tolerant(sources)
        })
        .await
        .unwrap_or_default();
        tracing::info!(
            brokers = topology.brokers.len(),
            triggers = topology.triggers.len(),
            seen_brokers = nb,
            seen_triggers = nt,
            "Cluster configuration changed."
        );
        if tx.send(topology).await.is_err() {
            return;
        }
        last = Some(sources);
    }
}

fn api_for<K>(client: &Client, s: &Settings) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match &s.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A source or sink kind the cluster may not serve.
struct OptionalKind {
    kind: &'static str,
    /// The last list failed with 404: the CRD is not installed (no objects of that kind).
    missing: bool,
    logged: bool,
}

impl OptionalKind {
    fn new(kind: &'static str) -> OptionalKind {
        OptionalKind {
            kind,
            missing: false,
            logged: false,
        }
    }

    fn observe(&mut self, ev: Result<(), watcher::Error>) {
        match ev {
            Ok(()) => self.missing = false,
            Err(
                watcher::Error::InitialListFailed(kube::Error::Api(s))
                | watcher::Error::WatchStartFailed(kube::Error::Api(s)),
            ) if s.code == 404 => {
                self.missing = true;
                if !self.logged {
                    self.logged = true;
                    tracing::info!(
                        kind = self.kind,
                        "The cluster does not serve this kind (CRD not installed): none of them run; \
                         watching again with backoff."
                    );
                }
            }
            Err(e) => {
                tracing::warn!(kind = self.kind, error = %e, "Watch failed; retrying with backoff.")
            }
        }
    }
}

trait ReadyExt {
    fn is_empty_unready(&self) -> bool;
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> ReadyExt for Store<K> {
    /// True until the store has received its first complete list.
    fn is_empty_unready(&self) -> bool {
        futures_util::FutureExt::now_or_never(self.wait_until_ready()).is_none()
    }
}

fn log_watch_error<K>(ev: Option<Result<watcher::Event<K>, watcher::Error>>, what: &str) {
    if let Some(Err(e)) = ev {
        tracing::warn!(error = %e, "Watching {what} failed; retrying with backoff.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BrokerStatus, Condition, Destination, TriggerStatus};
    use crate::manifest::to_yaml;
    use std::sync::Arc;

    fn cond(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            ..Condition::default()
        }
    }

    fn broker(generation: i64, observed: Option<i64>, retry: i32) -> Arc<Broker> {
        let mut b = Broker::new(
            "b",
            switchyard_broker::model::eventing::BrokerSpec {
                delivery: Some(crate::crd::DeliverySpec {
                    retry: Some(retry),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into(),
        );
        b.metadata.namespace = Some("ns".into());
        b.metadata.generation = Some(generation);
        b.status = observed.map(|g| BrokerStatus {
            observed_generation: Some(g),
            conditions: vec![cond("SpecValid", "True")],
            ..BrokerStatus::default()
        });
        Arc::new(b)
    }

    fn trigger(broker: &str, resolved: Option<&str>) -> Arc<Trigger> {
        let mut t = Trigger::new(
            "t",
            switchyard_broker::model::eventing::TriggerSpec {
                broker: broker.into(),
                subscriber: Destination {
                    uri: Some("http://ignored-until-resolved".into()),
                    ..Destination::default()
                },
                ..Default::default()
            }
            .into(),
        );
        t.metadata.namespace = Some("ns".into());
        t.metadata.generation = Some(1);
        t.status = Some(TriggerStatus {
            observed_generation: Some(1),
            conditions: vec![cond(
                "SubscriberResolved",
                if resolved.is_some() { "True" } else { "False" },
            )],
            subscriber_uri: resolved.map(str::to_owned),
            ..TriggerStatus::default()
        });
        Arc::new(t)
    }

    #[test]
    fn only_what_the_controller_resolved_is_served_and_edits_wait_for_it() {
        let s = Settings::default();
        let mut acc = Accepted::default();
        // Not reconciled yet: nothing.
        assert!(select(&[broker(1, None, 1)], &[], &Others::default(), &s, &mut acc).is_empty());
        // Reconciled: the broker and its resolved trigger, with the resolved URI.
        let out = select(
            &[broker(1, Some(1), 1)],
            &[trigger("b", Some("http://svc.ns.svc.cluster.local"))],
            &Others::default(),
            &s,
            &mut acc,
        );
        assert_eq!(out.len(), 2);
        assert!(to_yaml(&out["Trigger ns/t"]).contains("uri: http://svc.ns.svc.cluster.local"));
        let topology = load_tolerant(out.clone());
        assert_eq!(topology.brokers.len(), 1);
        assert_eq!(topology.triggers.len(), 1);
        // An edit the controller has not seen yet: the previous version stays in force.
        let pending = select(
            &[broker(2, Some(1), 5)],
            &[trigger("b", Some("http://svc.ns.svc.cluster.local"))],
            &Others::default(),
            &s,
            &mut acc,
        );
        assert_eq!(pending["Broker ns/b"], out["Broker ns/b"]);
        // Once observed, the edit applies.
        let applied = select(
            &[broker(2, Some(2), 5)],
            &[trigger("b", Some("http://svc.ns.svc.cluster.local"))],
            &Others::default(),
            &s,
            &mut acc,
        );
        assert!(to_yaml(&applied["Broker ns/b"]).contains("retry: 5"));
        // Deleted: gone, and not resurrected from the accepted cache.
        assert!(select(&[], &[], &Others::default(), &s, &mut acc).is_empty());
        let again = select(
            &[broker(3, Some(2), 5)],
            &[],
            &Others::default(),
            &s,
            &mut acc,
        );
        assert!(
            again.is_empty(),
            "a deleted-then-recreated broker waits for the controller again"
        );
    }

    #[test]
    fn unresolved_triggers_and_other_brokers_triggers_are_left_out() {
        let s = Settings::default();
        let mut acc = Accepted::default();
        let out = select(
            &[broker(1, Some(1), 1)],
            &[trigger("b", None), trigger("elsewhere", Some("http://x"))],
            &Others::default(),
            &s,
            &mut acc,
        );
        assert_eq!(out.keys().collect::<Vec<_>>(), ["Broker ns/b"]);
    }

    fn nats_sink(observed: bool, spec_valid: &str) -> Arc<NatsSink> {
        let mut k = NatsSink::new(
            "out",
            switchyard_broker::model::sources::NatsSinkSpec {
                servers: serde_json::json!(["nats://n:4222"]),
                subject: "orders.out".into(),
                ..Default::default()
            }
            .into(),
        );
        k.metadata.namespace = Some("ns".into());
        k.metadata.generation = Some(1);
        k.status = observed.then(|| crate::crd_sources::SinkStatus {
            observed_generation: Some(1),
            conditions: vec![cond("SpecValid", spec_valid)],
        });
        Arc::new(k)
    }

    fn nats_source(
        sink: crate::crd_sources::SourceSink,
        sink_uri: Option<&str>,
    ) -> Arc<NatsSource> {
        let mut k = NatsSource::new(
            "in",
            switchyard_broker::model::sources::NatsSourceSpec {
                servers: serde_json::json!("nats://n:4222"),
                subject: "orders.>".into(),
                sink,
                ..Default::default()
            }
            .into(),
        );
        k.metadata.namespace = Some("ns".into());
        k.metadata.generation = Some(1);
        k.status = Some(crate::crd_sources::SourceStatus {
            observed_generation: Some(1),
            conditions: vec![cond("SpecValid", "True")],
            sink_uri: sink_uri.map(str::to_owned),
        });
        Arc::new(k)
    }

    fn broker_sink(name: &str) -> crate::crd_sources::SourceSink {
        crate::crd_sources::SourceSink {
            reference: Some(crate::crd_sources::SinkRef {
                api_version: "eventing.knative.dev/v1".into(),
                kind: "Broker".into(),
                name: name.into(),
                namespace: None,
            }),
            uri: None,
        }
    }

    fn sink_trigger() -> Arc<Trigger> {
        let mut t = (*trigger("b", Some("nats://n:4222/orders.out"))).clone();
        t.metadata.name = Some("to-nats".into());
        t.spec.subscriber = Destination {
            reference: Some(crate::crd::KReference {
                kind: "NatsSink".into(),
                name: "out".into(),
                api_version: Some("sources.switchyard.dev/v1alpha1".into()),
                ..Default::default()
            }),
            ..Destination::default()
        };
        Arc::new(t)
    }

    #[test]
    fn sinks_and_their_triggers_are_served_once_reconciled() {
        let s = Settings::default();
        let mut acc = Accepted::default();
        let b = [broker(1, Some(1), 1)];
        let t = [sink_trigger()];
        // The sink is not reconciled yet: neither it nor the trigger that needs it.
        let others = Others {
            nats_sinks: vec![nats_sink(false, "True")],
            ..Others::default()
        };
        let out = select(&b, &t, &others, &s, &mut acc);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["Broker ns/b"]);
        // An invalid sink: left out, and so is the trigger.
        let others = Others {
            nats_sinks: vec![nats_sink(true, "False")],
            ..Others::default()
        };
        let out = select(&b, &t, &others, &s, &mut acc);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["Broker ns/b"]);
        // Reconciled: both, the trigger keeping its ref (not the descriptive subscriberUri).
        let others = Others {
            nats_sinks: vec![nats_sink(true, "True")],
            ..Others::default()
        };
        let out = select(&b, &t, &others, &s, &mut acc);
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            ["Broker ns/b", "NatsSink ns/out", "Trigger ns/to-nats"]
        );
        let yaml = to_yaml(&out["Trigger ns/to-nats"]);
        assert!(yaml.contains("kind: NatsSink"), "{}", yaml);
        assert!(!yaml.contains("nats://n:4222/orders.out"));
        let topology = load_tolerant(out);
        assert_eq!(topology.nats_sinks.len(), 1);
        assert_eq!(topology.triggers.len(), 1);
    }

    #[test]
    fn sources_keep_a_served_broker_ref_and_use_the_sink_uri_otherwise() {
        let s = Settings::default();
        let mut acc = Accepted::default();
        let b = [broker(1, Some(1), 1)];
        // A served Broker: the ref as is (the loader resolves it to this process's ingress).
        let others = Others {
            nats_sources: vec![nats_source(broker_sink("b"), Some("http://ignored"))],
            ..Others::default()
        };
        let out = select(&b, &[], &others, &s, &mut acc);
        let yaml = &to_yaml(&out["NatsSource ns/in"]);
        assert!(
            yaml.contains("kind: Broker") && !yaml.contains("http://ignored"),
            "{yaml}"
        );
        let topology = load_tolerant(out);
        assert_eq!(topology.nats_sources.len(), 1);
        // A Broker this installation does not serve: status.sinkUri.
        let mut acc = Accepted::default();
        let others = Others {
            nats_sources: vec![nats_source(
                broker_sink("elsewhere"),
                Some("http://other-broker.example/ns/elsewhere"),
            )],
            ..Others::default()
        };
        let out = select(&b, &[], &others, &s, &mut acc);
        assert!(to_yaml(&out["NatsSource ns/in"])
            .contains("uri: http://other-broker.example/ns/elsewhere"));
        assert_eq!(load_tolerant(out).nats_sources.len(), 1);
        // Not resolved (no sinkUri) and not a served Broker: not run.
        let mut acc = Accepted::default();
        let others = Others {
            nats_sources: vec![nats_source(broker_sink("elsewhere"), None)],
            ..Others::default()
        };
        assert!(!select(&b, &[], &others, &s, &mut acc).contains_key("NatsSource ns/in"));
        // Deleted: forgotten.
        assert_eq!(
            select(&b, &[], &Others::default(), &s, &mut acc)
                .keys()
                .collect::<Vec<_>>(),
            ["Broker ns/b"]
        );
    }

    #[test]
    fn a_kind_the_cluster_does_not_serve_counts_as_empty_and_comes_back() {
        let not_found = || {
            watcher::Error::InitialListFailed(kube::Error::Api(Box::new(
                kube::core::Status::failure(
                    "the server could not find the requested resource",
                    "NotFound",
                )
                .with_code(404),
            )))
        };
        let mut k = OptionalKind::new("KafkaSource");
        assert!(!k.missing, "unknown until the first list fails");
        k.observe(Err(not_found()));
        assert!(k.missing && k.logged);
        k.observe(Err(not_found()));
        assert!(k.missing);
        // Another failure (e.g. 403 or a timeout) does not mean "not served": the build keeps waiting.
        let mut other = OptionalKind::new("NatsSink");
        other.observe(Err(watcher::Error::InitialListFailed(kube::Error::Api(
            Box::new(kube::core::Status::failure("forbidden", "Forbidden").with_code(403)),
        ))));
        assert!(!other.missing);
        // The CRD installed later: the list succeeds, the store fills and counts again.
        k.observe(Ok(()));
        assert!(!k.missing);
    }

    #[test]
    fn a_rejected_object_does_not_stop_the_others() {
        let mut sources = BTreeMap::new();
        let b = broker(1, Some(1), 1);
        sources.insert("Broker ns/b".to_owned(), broker_manifest(&b, None));
        let mut bad = (*trigger("b", Some("http://x"))).clone();
        bad.metadata.name = Some("bad".into());
        sources.insert(
            "Trigger ns/bad".to_owned(),
            crate::manifest::trigger_manifest(&bad, "not a url", None),
        );
        let topology = load_tolerant(sources);
        assert_eq!(topology.brokers.len(), 1);
        assert!(topology.triggers.is_empty());
    }
}
