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
//! Every change is debounced ([`DEBOUNCE`]), loaded with the standalone loader (an object the loader
//! rejects is left out and logged; the rest still apply) and sent only when the result differs.

use crate::conditions::{is_false, is_true};
use crate::crd::{Broker, Trigger};
use crate::manifest::{
    broker_manifest, configmap_manifest, owns_broker, to_yaml, trigger_manifest,
};
use crate::Settings;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use switchyard_broker::config::load::load_sources;
use switchyard_broker::config::Topology;
use tokio::sync::{mpsc, watch};

/// Quiet time after a change before the topology is rebuilt (coalesces bursts, e.g. `kubectl apply -f dir`).
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// Rebuild at least this often (picks up ConfigMap edits).
pub const RESYNC: Duration = Duration::from_secs(30);

/// The last accepted manifest per object: `(kind namespace/name)` → (generation, YAML).
#[derive(Debug, Default)]
pub struct Accepted {
    objects: HashMap<String, (i64, String)>,
}

fn generation_observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.is_some() && observed == generation
}

/// What the data plane applies now: source name → manifest YAML, in a stable order. Pure except for
/// `accepted`, which carries the last accepted version of each object across calls.
pub fn select(
    brokers: &[std::sync::Arc<Broker>],
    triggers: &[std::sync::Arc<Trigger>],
    settings: &Settings,
    accepted: &mut Accepted,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut alive = BTreeSet::new();
    let mut served = BTreeSet::new();
    for b in brokers.iter().filter(|b| owns_broker(b, settings)) {
        let ns = b.namespace().unwrap_or_default();
        let key = format!("Broker {ns}/{}", b.name_any());
        alive.insert(key.clone());
        let status = b.status.clone().unwrap_or_default();
        let dls_needed = b
            .spec
            .delivery
            .as_ref()
            .is_some_and(|d| d.dead_letter_sink.is_some());
        let usable = generation_observed(b.metadata.generation, status.observed_generation)
            && !is_false(&status.conditions, "SpecValid")
            && (!dls_needed || status.dead_letter_sink_uri.is_some());
        if usable {
            let yaml = to_yaml(&broker_manifest(
                b,
                settings,
                status.dead_letter_sink_uri.as_deref(),
            ));
            accepted
                .objects
                .insert(key.clone(), (b.metadata.generation.unwrap_or(0), yaml));
        }
        if let Some((_, yaml)) = accepted.objects.get(&key) {
            out.insert(key, yaml.clone());
            served.insert((ns, b.name_any()));
        }
    }
    for t in triggers {
        let ns = t.namespace().unwrap_or_default();
        if !served.contains(&(ns.clone(), t.spec.broker.clone())) {
            continue;
        }
        let key = format!("Trigger {ns}/{}", t.name_any());
        alive.insert(key.clone());
        let status = t.status.clone().unwrap_or_default();
        let dls_needed = t
            .spec
            .delivery
            .as_ref()
            .is_some_and(|d| d.dead_letter_sink.is_some());
        let usable = generation_observed(t.metadata.generation, status.observed_generation)
            && !is_false(&status.conditions, "SpecValid")
            && is_true(&status.conditions, "SubscriberResolved")
            && (!dls_needed || status.dead_letter_sink_uri.is_some());
        if let (true, Some(uri)) = (usable, status.subscriber_uri.as_deref()) {
            let yaml = to_yaml(&trigger_manifest(
                t,
                settings,
                uri,
                status.dead_letter_sink_uri.as_deref(),
            ));
            accepted
                .objects
                .insert(key.clone(), (t.metadata.generation.unwrap_or(0), yaml));
        }
        if let Some((_, yaml)) = accepted.objects.get(&key) {
            out.insert(key, yaml.clone());
        }
    }
    // Deleted objects (or objects whose broker went away) are forgotten.
    accepted.objects.retain(|k, _| alive.contains(k));
    out
}

/// Loads the sources, leaving out the ones the loader rejects (logged), so that one bad object never
/// stops the others.
pub fn load_tolerant(mut sources: BTreeMap<String, String>) -> Topology {
    for _ in 0..=sources.len() {
        let list: Vec<(String, String)> = sources
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match load_sources(&list) {
            Ok(loaded) => return loaded.topology,
            Err(errors) => {
                let mut dropped = false;
                for e in &errors.0 {
                    if sources.remove(&e.file).is_some() {
                        tracing::error!(object = %e.file, problem = %format!("{}: {}", e.path, e.message), "Left out of the data plane.");
                        dropped = true;
                    }
                }
                if !dropped {
                    tracing::error!("Cluster configuration rejected:\n{errors}");
                    return Topology::default();
                }
            }
        }
    }
    Topology::default()
}

async fn with_configmaps(
    client: &Client,
    brokers: &[std::sync::Arc<Broker>],
    settings: &Settings,
    mut sources: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
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
                let yaml = to_yaml(&configmap_manifest(
                    &cns,
                    &c.name,
                    &cm.data.unwrap_or_default(),
                ));
                sources.insert(key, yaml);
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
    mut stop: watch::Receiver<bool>,
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
    let mut accepted = Accepted::default();
    let mut last: Option<BTreeMap<String, String>> = None;
    let mut dirty = true;
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let debounce = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
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
            _ = resync.tick() => { dirty = true; continue; }
            _ = debounce, if dirty => {}
        }
        // Both caches must have their initial list, or a half-read cluster would look like deletions.
        if brokers.is_empty_unready() || triggers.is_empty_unready() {
            continue;
        }
        dirty = false;
        let (b, t) = (brokers.state(), triggers.state());
        let selected = select(&b, &t, &settings, &mut accepted);
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
    use crate::crd::{
        BrokerSpec, BrokerStatus, Condition, Destination, TriggerSpec, TriggerStatus,
    };
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
            BrokerSpec {
                delivery: Some(crate::crd::DeliverySpec {
                    retry: Some(retry),
                    ..Default::default()
                }),
                ..BrokerSpec::default()
            },
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
            TriggerSpec {
                broker: broker.into(),
                subscriber: Destination {
                    uri: Some("http://ignored-until-resolved".into()),
                    ..Destination::default()
                },
                ..TriggerSpec::default()
            },
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
        assert!(select(&[broker(1, None, 1)], &[], &s, &mut acc).is_empty());
        // Reconciled: the broker and its resolved trigger, with the resolved URI.
        let out = select(
            &[broker(1, Some(1), 1)],
            &[trigger("b", Some("http://svc.ns.svc.cluster.local"))],
            &s,
            &mut acc,
        );
        assert_eq!(out.len(), 2);
        assert!(out["Trigger ns/t"].contains("uri: http://svc.ns.svc.cluster.local"));
        let topology = load_tolerant(out.clone());
        assert_eq!(topology.brokers.len(), 1);
        assert_eq!(topology.triggers.len(), 1);
        // An edit the controller has not seen yet: the previous version stays in force.
        let pending = select(
            &[broker(2, Some(1), 5)],
            &[trigger("b", Some("http://svc.ns.svc.cluster.local"))],
            &s,
            &mut acc,
        );
        assert_eq!(pending["Broker ns/b"], out["Broker ns/b"]);
        // Once observed, the edit applies.
        let applied = select(
            &[broker(2, Some(2), 5)],
            &[trigger("b", Some("http://svc.ns.svc.cluster.local"))],
            &s,
            &mut acc,
        );
        assert!(applied["Broker ns/b"].contains("retry: 5"));
        // Deleted: gone, and not resurrected from the accepted cache.
        assert!(select(&[], &[], &s, &mut acc).is_empty());
        let again = select(&[broker(3, Some(2), 5)], &[], &s, &mut acc);
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
            &s,
            &mut acc,
        );
        assert_eq!(out.keys().collect::<Vec<_>>(), ["Broker ns/b"]);
    }

    #[test]
    fn a_rejected_object_does_not_stop_the_others() {
        let mut sources = BTreeMap::new();
        sources.insert(
            "Broker ns/b".to_owned(),
            "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: b, namespace: ns}\n".to_owned(),
        );
        sources.insert(
            "Trigger ns/bad".to_owned(),
            "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {name: bad, namespace: ns}\n\
             spec: {broker: b, subscriber: {uri: 'not a url'}}\n"
                .to_owned(),
        );
        let topology = load_tolerant(sources);
        assert_eq!(topology.brokers.len(), 1);
        assert!(topology.triggers.is_empty());
    }
}
