//! The controller: reconciles Switchyard's Brokers and Triggers into Knative's status.
//!
//! Broker (class = [`Settings::broker_class`], or no class and that is the default class):
//! `SpecValid` (the standalone loader's checks on the Broker and its ConfigMap; the immutable class and
//! `spec.config`, recorded in `status.annotations` on first sight), `Addressable` (+ `status.address.url`),
//! `DataPlaneAvailable` (the ingress Service's Endpoints have a ready address), `DeadLetterSinkResolved`
//! (+ `status.deadLetterSinkUri`), and `Ready` as their AND.
//!
//! Trigger (of such a Broker, or of a Broker that does not exist yet): `SpecValid` (filters, attribute
//! keys, CESQL, delivery; immutable `spec.broker`), `BrokerReady` (the Broker's `Ready`),
//! `SubscriberResolved` (+ `status.subscriberUri`), `DeadLetterSinkResolved` (of the delivery in force: the
//! trigger's when it sets any field, else the broker's), and `Ready`.
//!
//! A Trigger whose subscriber refs a KafkaSink or NatsSink (by kind and apiVersion) resolves no address:
//! `SubscriberResolved` is True when the sink exists in the Trigger's namespace, and `status.subscriberUri`
//! is a descriptive `kafka://<bootstrap servers>/<topic>` or `nats://<servers>/<subject>` (not an HTTP
//! address; the data plane keeps the `ref` and produces / publishes directly).
//!
//! KafkaSource, NatsSource ([`sources`]): `SinkProvided` (+ `status.sinkUri`, `spec.sink` resolved like
//! any destination), `SpecValid`, `Ready`; KafkaSink, NatsSink: `SpecValid`, `Ready`. A kind whose CRD is
//! not installed is skipped (logged) until the controller restarts.
//!
//! Status is written only when it changed (`lastTransitionTime` moves only on a status change), failures
//! are also published as Kubernetes Events, errors are retried with exponential backoff per object, and
//! Ready objects are reconciled again every [`Settings::resync`] to re-resolve referenced addresses.
//! [`run`] runs both controllers while this process holds the leader Lease.

use crate::conditions::{self, status_of, with_ready, Observed};
use crate::crd::{
    Broker, BrokerStatus, Condition, DeliverySpec, NamespacedObject, Trigger, TriggerStatus,
};
use crate::crd_sources::{
    sink_kind_of, KafkaSink, KafkaSource, NatsSink, NatsSource, SourceOrSink,
};
use crate::leader::LeaseLock;
use crate::manifest::{
    broker_manifest, configmap_manifest, delivery_is_set, owns_broker, problems_of,
    trigger_manifest, PLACEHOLDER_URL,
};
use crate::metrics::ControllerMetrics;
use crate::resolve::{resolve, Resolved};
use crate::{Error, Settings};
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Service};
use kube::api::{Api, PostParams};
use kube::core::object::HasStatus;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use sources::{object_error_policy, reconcile_object, resolve_sink_subscriber};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Status annotation recording the broker class first seen (it is immutable).
pub const CLASS_SEEN: &str = "switchyard.dev/class";
/// Status annotation recording the Broker's `spec.config` first seen (immutable).
pub const CONFIG_SEEN: &str = "switchyard.dev/config";
/// Status annotation recording the Trigger's `spec.broker` first seen (immutable).
pub const BROKER_SEEN: &str = "switchyard.dev/broker";

/// Shared by every reconcile.
pub struct Context {
    client: Client,
    settings: Settings,
    metrics: Arc<ControllerMetrics>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for the reconcilers.
    pub fn new(client: Client, settings: Settings, metrics: Arc<ControllerMetrics>) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "switchyard-controller".into(),
                instance: Some(settings.identity.clone()),
            },
        );
        Context {
            client,
            settings,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn key(kind: &str, ns: &str, name: &str) -> String {
    format!("{kind} {ns}/{name}")
}

fn ready_of(conditions: &[Condition]) -> Option<&Condition> {
    status_of(conditions, "Ready")
}

/// Publishes a Warning event when `Ready` turned False (or its reason changed), a Normal one when it
/// turned True.
async fn report_transition<K>(ctx: &Context, obj: &K, before: &[Condition], after: &[Condition])
where
    K: Resource<DynamicType = ()>,
{
    let (Some(now), prev) = (ready_of(after), ready_of(before)) else {
        return;
    };
    let changed = prev.is_none_or(|p| p.status != now.status || p.reason != now.reason);
    if !changed || now.status == conditions::UNKNOWN {
        return;
    }
    let (type_, reason) = if now.status == conditions::TRUE {
        (EventType::Normal, "Ready".to_owned())
    } else {
        (
            EventType::Warning,
            now.reason.clone().unwrap_or_else(|| "NotReady".into()),
        )
    };
    let event = Event {
        type_,
        reason,
        note: now.message.clone(),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "Could not publish a Kubernetes event.");
    }
}

/// The end of a reconcile: writes `updated` (when the status changed; see [`write_status`]), forgets
/// the failures counted under `failures_key`, and requeues after the resync period (soon after a 409).
pub(crate) async fn settle<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    failures_key: &str,
    before: &[Condition],
    after: &[Condition],
    updated: Option<K>,
) -> Result<Action, Error>
where
    K: NamespacedObject,
{
    if let Some(updated) = updated {
        if !write_status(ctx, ns, name, before, after, &updated).await? {
            return Ok(Action::requeue(Duration::from_millis(200)));
        }
    }
    ctx.failures.lock().remove(failures_key);
    Ok(Action::requeue(ctx.settings.resync))
}

/// [`settle`] for a Broker or Trigger whose status is now `status` (with the conditions `after`): written
/// when it differs from the object's.
async fn settle_status<K>(
    ctx: &Context,
    obj: &K,
    before: &[Condition],
    after: &[Condition],
    status: K::Status,
) -> Result<Action, Error>
where
    K: NamespacedObject + HasStatus,
    K::Status: PartialEq,
{
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let name = obj.name_any();
    let updated = (obj.status() != Some(&status)).then(|| {
        let mut updated = obj.clone();
        *updated.status_mut() = Some(status);
        updated
    });
    let failures_key = key(&K::kind(&()), &ns, &name);
    settle(ctx, &ns, &name, &failures_key, before, after, updated).await
}

/// Writes `updated` (carrying the new status and the `resourceVersion` it was read at) to the status
/// subresource and publishes the Ready transition as an Event. `Ok(false)`: the object changed meanwhile
/// (409); the watch brings the new version, requeue soon.
pub(crate) async fn write_status<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    before: &[Condition],
    after: &[Condition],
    updated: &K,
) -> Result<bool, Error>
where
    K: NamespacedObject,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .replace_status(name, &PostParams::default(), updated)
        .await
    {
        Ok(_) => {
            report_transition(ctx, updated, before, after).await;
            Ok(true)
        }
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

async fn resolve_dls(
    ctx: &Context,
    ns: &str,
    delivery: Option<&DeliverySpec>,
) -> Result<(Observed, Option<String>), Error> {
    const T: &str = "DeadLetterSinkResolved";
    let Some(dls) = delivery.and_then(|d| d.dead_letter_sink.as_ref()) else {
        return Ok((
            Observed::ok(
                T,
                "DeadLetterSinkNotConfigured",
                "No dead letter sink is configured.",
            ),
            None,
        ));
    };
    Ok(
        match resolve(&ctx.client, ns, dls, &ctx.settings.cluster_domain).await? {
            Resolved::Url(u) => (Observed::ok(T, "", ""), Some(u)),
            Resolved::Failed(why) => (
                Observed::failed(T, "Unresolved", format!("dead letter sink: {why}")),
                None,
            ),
        },
    )
}

fn spec_valid(problems: Vec<String>, reason: &str) -> Observed {
    if problems.is_empty() {
        Observed::ok("SpecValid", "", "")
    } else {
        Observed::failed("SpecValid", reason, problems.join("; "))
    }
}

/// Reconciles one Broker.
pub async fn reconcile_broker(b: Arc<Broker>, ctx: Arc<Context>) -> Result<Action, Error> {
    let s = &ctx.settings;
    if !owns_broker(&b, s) {
        return Ok(Action::await_change());
    }
    let ns = b.namespace().unwrap_or_else(|| "default".into());
    let name = b.name_any();
    let prev = b.status.clone().unwrap_or_default();
    let mut seen = prev.annotations.clone().unwrap_or_default();

    // Immutable fields: the first values seen are recorded; a change is reported, not applied.
    let class = crate::manifest::broker_class(&b, s).to_owned();
    let config = b
        .spec
        .config
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        // Not "": the 1.20 API server's validation reads an empty string as null and rejects it.
        .unwrap_or_else(|| "none".to_owned());
    let mut immutable = Vec::new();
    match seen.get(CLASS_SEEN) {
        Some(c) if *c != class => immutable.push(format!(
            "metadata.annotations: {} changed from {c:?} to {class:?}; it is immutable (delete and \
             recreate the Broker)",
            switchyard_broker::config::manifest::BROKER_CLASS_ANNOTATION
        )),
        Some(_) => {}
        None => {
            seen.insert(CLASS_SEEN.into(), class);
        }
    }
    match seen.get(CONFIG_SEEN) {
        Some(c) if *c != config => immutable.push(format!(
            "spec.config changed from {c} to {config}; it is immutable (delete and recreate the Broker)"
        )),
        Some(_) => {}
        None => {
            seen.insert(CONFIG_SEEN.into(), config);
        }
    }

    let (dls, dls_uri) = resolve_dls(&ctx, &ns, b.spec.delivery.as_ref()).await?;

    let valid = if !immutable.is_empty() {
        spec_valid(immutable, "ImmutableFieldChanged")
    } else {
        let subject = key("Broker", &ns, &name);
        let mut sources = vec![(
            subject.clone(),
            broker_manifest(&b, dls_uri.as_deref().or(Some(PLACEHOLDER_URL))),
        )];
        let mut missing = None;
        if let Some(c) = b.spec.config.as_ref().filter(|c| c.kind == "ConfigMap") {
            let cns = c.namespace.clone().unwrap_or_else(|| ns.clone());
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &cns);
            match api.get_opt(&c.name).await? {
                Some(cm) => sources.push((
                    key("ConfigMap", &cns, &c.name),
                    configmap_manifest(&cns, &c.name, &cm.data.unwrap_or_default()),
                )),
                None => {
                    missing = Some(format!("spec.config: ConfigMap {cns}/{} not found", c.name))
                }
            }
        }
        match missing {
            Some(m) => spec_valid(vec![m], "ConfigMapNotFound"),
            None => spec_valid(problems_of(&subject, &sources), "Invalid"),
        }
    };

    let endpoints: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &s.system_namespace);
    let available = match endpoints.get_opt(&s.ingress_service).await? {
        Some(ep)
            if ep
                .subsets
                .iter()
                .flatten()
                .any(|ss| ss.addresses.as_ref().is_some_and(|a| !a.is_empty())) =>
        {
            Observed::ok("DataPlaneAvailable", "", "")
        }
        _ => Observed::failed(
            "DataPlaneAvailable",
            "NoEndpoints",
            format!(
                "no ready data-plane endpoints behind Service {}/{}",
                s.system_namespace, s.ingress_service
            ),
        ),
    };
    let url = format!(
        "http://{}.{}.svc.{}/{ns}/{name}",
        s.ingress_service, s.system_namespace, s.cluster_domain
    );
    let dependents = vec![Observed::ok("Addressable", "", ""), available, dls, valid];
    let status = BrokerStatus {
        observed_generation: b.metadata.generation,
        conditions: with_ready(&prev.conditions, dependents, &rfc3339_now()),
        annotations: Some(seen),
        address: Some(crate::crd::Addressable {
            name: Some("http".into()),
            url: Some(url.clone()),
            ..Default::default()
        }),
        addresses: vec![crate::crd::Addressable {
            name: Some("http".into()),
            url: Some(url),
            ..Default::default()
        }],
        dead_letter_sink_uri: dls_uri,
        ..BrokerStatus::default()
    };
    let conditions = status.conditions.clone();
    settle_status(&ctx, &*b, &prev.conditions, &conditions, status).await
}

/// Reconciles one Trigger.
pub async fn reconcile_trigger(t: Arc<Trigger>, ctx: Arc<Context>) -> Result<Action, Error> {
    let s = &ctx.settings;
    let ns = t.namespace().unwrap_or_else(|| "default".into());
    let name = t.name_any();
    let brokers: Api<Broker> = Api::namespaced(ctx.client.clone(), &ns);
    let broker = if t.spec.broker.is_empty() {
        None
    } else {
        brokers.get_opt(&t.spec.broker).await?
    };
    if let Some(b) = &broker {
        if !owns_broker(b, s) {
            // Another broker class's trigger: its own controller reports on it.
            return Ok(Action::await_change());
        }
    }
    let prev = t.status.clone().unwrap_or_default();
    let mut seen = prev.annotations.clone().unwrap_or_default();
    let mut problems = Vec::new();
    let mut reason = "Invalid";
    match seen.get(BROKER_SEEN) {
        Some(b) if *b != t.spec.broker => {
            reason = "ImmutableFieldChanged";
            problems.push(format!(
                "spec.broker changed from {b:?} to {:?}; it is immutable (delete and recreate the \
                 Trigger)",
                t.spec.broker
            ));
        }
        Some(_) => {}
        None if t.spec.broker.is_empty() => {}
        None => {
            seen.insert(BROKER_SEEN.into(), t.spec.broker.clone());
        }
    }
    if t.spec.broker_ref.is_some() {
        problems.push(
            "spec.brokerRef: cross-namespace brokers are not supported; use spec.broker".into(),
        );
    }

    let broker_ready = match &broker {
        None if t.spec.broker.is_empty() => {
            Observed::failed("BrokerReady", "BrokerDoesNotExist", "spec.broker is empty")
        }
        None => Observed::failed(
            "BrokerReady",
            "BrokerDoesNotExist",
            format!("Broker {ns}/{} does not exist", t.spec.broker),
        ),
        Some(b) => {
            let conds = b
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]);
            match ready_of(conds) {
                Some(r) if r.status == conditions::TRUE => Observed::ok("BrokerReady", "", ""),
                Some(r) if r.status == conditions::FALSE => Observed::failed(
                    "BrokerReady",
                    "BrokerNotReady",
                    format!(
                        "Broker {ns}/{} is not ready: {}",
                        t.spec.broker,
                        r.message.clone().or(r.reason.clone()).unwrap_or_default()
                    ),
                ),
                _ => Observed::unknown(
                    "BrokerReady",
                    "BrokerNotReady",
                    format!("Broker {ns}/{} is not reconciled yet", t.spec.broker),
                ),
            }
        }
    };

    let sink_kind = sink_kind_of(&t.spec.subscriber);
    let (subscriber, subscriber_uri) = match sink_kind {
        Some(kind) => resolve_sink_subscriber(&ctx, &ns, kind, &t.spec.subscriber).await?,
        None => match resolve(&ctx.client, &ns, &t.spec.subscriber, &s.cluster_domain).await? {
            Resolved::Url(u) => (Observed::ok("SubscriberResolved", "", ""), Some(u)),
            Resolved::Failed(why) => (
                Observed::failed(
                    "SubscriberResolved",
                    "Unresolved",
                    format!("subscriber: {why}"),
                ),
                None,
            ),
        },
    };
    let delivery = if delivery_is_set(t.spec.delivery.as_ref()) {
        t.spec.delivery.as_ref()
    } else {
        broker.as_ref().and_then(|b| b.spec.delivery.as_ref())
    };
    let (dls, dls_uri) = resolve_dls(&ctx, &ns, delivery).await?;

    if problems.is_empty() {
        let subject = key("Trigger", &ns, &name);
        // A KafkaSink / NatsSink subscriber is checked by resolve_sink_subscriber; its descriptive
        // subscriberUri is not an http URL.
        let m = trigger_manifest(
            &t,
            subscriber_uri
                .as_deref()
                .filter(|_| sink_kind.is_none())
                .unwrap_or(PLACEHOLDER_URL),
            Some(dls_uri.as_deref().unwrap_or(PLACEHOLDER_URL)),
        );
        problems = problems_of(&subject, &[(subject.clone(), m)]);
    }
    let dependents = vec![broker_ready, subscriber, dls, spec_valid(problems, reason)];
    let status = TriggerStatus {
        observed_generation: t.metadata.generation,
        conditions: with_ready(&prev.conditions, dependents, &rfc3339_now()),
        annotations: Some(seen),
        subscriber_uri,
        dead_letter_sink_uri: dls_uri,
        ..TriggerStatus::default()
    };
    let conditions = status.conditions.clone();
    settle_status(&ctx, &*t, &prev.conditions, &conditions, status).await
}

/// Exponential backoff per object: 0.5 s, 1 s, 2 s … capped at 5 minutes; reset by a successful reconcile.
fn backoff(ctx: &Context, k: String, err: &Error) -> Action {
    let mut failures = ctx.failures.lock();
    let n = failures.entry(k.clone()).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_millis(500)
        .saturating_mul(1u32 << (*n - 1).min(10))
        .min(Duration::from_secs(300));
    tracing::warn!(object = %k, error = %err, retry_in = ?delay, "Reconcile failed.");
    Action::requeue(delay)
}

fn broker_error_policy(b: Arc<Broker>, err: &Error, ctx: Arc<Context>) -> Action {
    let k = key("Broker", &b.namespace().unwrap_or_default(), &b.name_any());
    backoff(&ctx, k, err)
}

fn trigger_error_policy(t: Arc<Trigger>, err: &Error, ctx: Arc<Context>) -> Action {
    let k = key("Trigger", &t.namespace().unwrap_or_default(), &t.name_any());
    backoff(&ctx, k, err)
}

fn refers_to(d: &crate::crd::Destination, ns: &str, kind: &str, name: &str, obj_ns: &str) -> bool {
    d.reference.as_ref().is_some_and(|r| {
        r.kind == kind && r.name == name && r.namespace.as_deref().unwrap_or(ns) == obj_ns
    })
}

/// What a `watches` mapper returns when `changed` changes: the objects of `store` that `depends` says
/// depend on it (given an object, and `changed`'s namespace and name).
fn dependents<K, C>(
    store: &Store<K>,
    changed: &C,
    depends: impl Fn(&K, &str, &str) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    C: ResourceExt,
{
    let (ns, name) = (changed.namespace().unwrap_or_default(), changed.name_any());
    store
        .state()
        .iter()
        .filter(|o| depends(o, &ns, &name))
        .map(|o| ObjectRef::from_obj(&**o))
        .collect()
}

fn broker_dls_is_service(b: &Broker, svc_ns: &str, svc: &str) -> bool {
    let ns = b.namespace().unwrap_or_default();
    b.spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
        .is_some_and(|d| refers_to(d, &ns, "Service", svc, svc_ns))
}

fn trigger_of_broker(t: &Trigger, broker_ns: &str, broker: &str) -> bool {
    t.namespace().unwrap_or_default() == broker_ns && t.spec.broker == broker
}

fn trigger_refers_to_service(t: &Trigger, svc_ns: &str, svc: &str) -> bool {
    let ns = t.namespace().unwrap_or_default();
    refers_to(&t.spec.subscriber, &ns, "Service", svc, svc_ns)
        || t.spec
            .delivery
            .as_ref()
            .and_then(|d| d.dead_letter_sink.as_ref())
            .is_some_and(|d| refers_to(d, &ns, "Service", svc, svc_ns))
}

fn api_for<K>(client: &Client, s: &Settings) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match &s.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Whether the cluster serves kind `K` (its CRD is installed): only a 404 on a list says no.
pub async fn is_served<K: SourceOrSink>(client: &Client, settings: &Settings) -> bool {
    let api = api_for::<K>(client, settings);
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            tracing::warn!(
                kind = K::KIND,
                "The cluster does not serve this kind (its CRD is not installed): not reconciled. \
                 Restart the controller after installing the CRD."
            );
            false
        }
        _ => true,
    }
}

/// Counts a reconcile outcome (the stream item of a kube-runtime controller).
fn counted(ctx: &Context, kind: &str, ok: bool) -> futures_util::future::Ready<()> {
    ctx.metrics.reconciled(kind, ok);
    futures_util::future::ready(())
}

/// Resolves when `stop` is cancelled: a controller's graceful shutdown.
async fn stopped(stop: CancellationToken) {
    stop.cancelled().await;
}

/// The controller of a source or sink kind, when the cluster serves it; a source is reconciled again
/// when a Broker its sink refers to changes.
async fn object_controller<K: SourceOrSink>(
    client: &Client,
    settings: &Settings,
    ctx: &Arc<Context>,
    stop: &CancellationToken,
) -> Option<futures_util::future::BoxFuture<'static, ()>> {
    if !is_served::<K>(client, settings).await {
        return None;
    }
    let wc = watcher::Config::default();
    let mut ctl = Controller::new(api_for::<K>(client, settings), wc.clone());
    if K::IS_SOURCE {
        let store = ctl.store();
        ctl = ctl.watches(api_for::<Broker>(client, settings), wc, move |b| {
            dependents(&store, &b, |o, bns, bname| {
                let ns = o.namespace().unwrap_or_default();
                o.sink()
                    .is_some_and(|d| refers_to(&d, &ns, "Broker", bname, bns))
            })
        });
    }
    let ctx = ctx.clone();
    let run = ctl
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(reconcile_object::<K>, object_error_policy::<K>, ctx.clone())
        .for_each(move |r| counted(&ctx, &K::kind(&()), r.is_ok()));
    Some(run.boxed())
}

/// Reconciles a Trigger again when the sink of kind `K` it subscribes changes.
fn watch_sink<K: SourceOrSink>(
    trigger_ctl: Controller<Trigger>,
    client: &Client,
    settings: &Settings,
) -> Controller<Trigger> {
    let by_sink = trigger_ctl.store();
    trigger_ctl.watches(
        api_for::<K>(client, settings),
        watcher::Config::default(),
        move |sink| {
            dependents(&by_sink, &sink, |t, ns, name| {
                trigger_refers_to_sink(t, K::KIND, ns, name)
            })
        },
    )
}

fn trigger_refers_to_sink(t: &Trigger, kind: &str, sink_ns: &str, sink: &str) -> bool {
    let ns = t.namespace().unwrap_or_default();
    sink_kind_of(&t.spec.subscriber) == Some(kind)
        && refers_to(&t.spec.subscriber, &ns, kind, sink, sink_ns)
}

/// Runs the Broker, Trigger, source and sink controllers until `stop` fires (a source or sink kind whose
/// CRD is not installed is skipped).
pub async fn run_controllers(
    client: Client,
    settings: Settings,
    metrics: Arc<ControllerMetrics>,
    stop: CancellationToken,
) {
    let ctx = Arc::new(Context::new(client.clone(), settings.clone(), metrics));
    let wc = watcher::Config::default();
    let kafka_sources = object_controller::<KafkaSource>(&client, &settings, &ctx, &stop).await;
    let nats_sources = object_controller::<NatsSource>(&client, &settings, &ctx, &stop).await;
    let kafka_sinks = object_controller::<KafkaSink>(&client, &settings, &ctx, &stop).await;
    let nats_sinks = object_controller::<NatsSink>(&client, &settings, &ctx, &stop).await;

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), &settings.system_namespace);
    let broker_ctl = Controller::new(api_for::<Broker>(&client, &settings), wc.clone());
    let broker_store = broker_ctl.store();
    let brokers_by_service = broker_ctl.store();
    let ingress = settings.ingress_service.clone();
    let brokers = broker_ctl
        // A dead-letter sink Service created (or deleted) after its Broker.
        .watches(
            api_for::<Service>(&client, &settings),
            wc.clone(),
            move |svc| dependents(&brokers_by_service, &svc, broker_dls_is_service),
        )
        .watches(
            endpoints,
            watcher::Config::default().fields(&format!("metadata.name={ingress}")),
            move |_| {
                broker_store
                    .state()
                    .iter()
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(reconcile_broker, broker_error_policy, ctx.clone())
        .for_each({
            let ctx = ctx.clone();
            move |r| counted(&ctx, "Broker", r.is_ok())
        });

    let mut trigger_ctl = Controller::new(api_for::<Trigger>(&client, &settings), wc.clone());
    let by_broker = trigger_ctl.store();
    let by_service = trigger_ctl.store();
    if kafka_sinks.is_some() {
        trigger_ctl = watch_sink::<KafkaSink>(trigger_ctl, &client, &settings);
    }
    if nats_sinks.is_some() {
        trigger_ctl = watch_sink::<NatsSink>(trigger_ctl, &client, &settings);
    }
    let triggers = trigger_ctl
        .watches(
            api_for::<Broker>(&client, &settings),
            wc.clone(),
            move |b| dependents(&by_broker, &b, trigger_of_broker),
        )
        .watches(api_for::<Service>(&client, &settings), wc, move |svc| {
            dependents(&by_service, &svc, trigger_refers_to_service)
        })
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(reconcile_trigger, trigger_error_policy, ctx.clone())
        .for_each(move |r| counted(&ctx, "Trigger", r.is_ok()));
    let extra = [kafka_sources, nats_sources, kafka_sinks, nats_sinks];
    let extra = futures_util::future::join_all(extra.into_iter().flatten());
    tokio::select! {
        _ = futures_util::future::join3(brokers, triggers, extra) => {}
        _ = stop.cancelled() => {}
    }
}

/// Runs the controllers while this process holds the leader Lease; gives the Lease up when `stop` fires.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<ControllerMetrics>,
    stop: CancellationToken,
) {
    let mut lock = LeaseLock::new(
        client.clone(),
        &settings.system_namespace,
        &settings.lease_name,
        &settings.identity,
        settings.lease_duration,
    );
    let interval = lock.renew_interval();
    loop {
        // Candidate: try until the Lease is ours.
        loop {
            match lock.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "Leader election: cannot read the Lease."),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
        tracing::info!(identity = %settings.identity, lease = %settings.lease_name, "Leading: controllers start.");
        // This term's controllers: a child of `stop`, cancelled when leadership ends (or `run` is dropped).
        let lead = stop.child_token();
        let _lead_on_drop = lead.clone().drop_guard();
        metrics.set_leader(true);
        let controllers = tokio::spawn(run_controllers(
            client.clone(),
            settings.clone(),
            metrics.clone(),
            lead.clone(),
        ));
        let mut last_renewed = std::time::Instant::now();
        let stopping = loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => break true,
            }
            match lock.try_acquire_or_renew().await {
                Ok(true) => last_renewed = std::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(
                        "Leader election: another replica holds the Lease; stepping down."
                    );
                    break false;
                }
                Err(e) if last_renewed.elapsed() + interval >= settings.lease_duration => {
                    tracing::warn!(error = %e, "Leader election: cannot renew the Lease in time; stepping down.");
                    break false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Leader election: renewing the Lease failed; retrying.")
                }
            }
        };
        lead.cancel();
        metrics.set_leader(false);
        if tokio::time::timeout(Duration::from_secs(5), controllers)
            .await
            .is_err()
        {
            tracing::warn!("Controllers did not stop within 5 s.");
        }
        if stopping {
            if let Err(e) = lock.release().await {
                tracing::warn!(error = %e, "Could not release the leader Lease.");
            }
            return;
        }
    }
}

pub mod sources;
#[cfg(test)]
mod tests;
