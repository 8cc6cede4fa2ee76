//! Reconcilers of KafkaSource, NatsSource (`SinkProvided` + `status.sinkUri`, `SpecValid`, `Ready`) and
//! KafkaSink, NatsSink (`SpecValid`, `Ready`), and the resolution of Trigger subscribers that are such
//! sinks (not addresses: the dispatcher produces / publishes to them directly).

use super::{key, rfc3339_now, spec_valid, Context};
use crate::conditions::{with_ready, Observed};
use crate::crd::Destination;
use crate::crd_sources::{
    is_broker_ref, kafka_sink_uri, nats_sink_uri, KafkaSink, NatsSink, SourceOrSink,
};
use crate::manifest::{object_manifest, problems_of, source_sink, stub_broker_manifest};
use crate::resolve::{resolve, Resolved};
use crate::Error;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;

/// Reconciles one KafkaSource, KafkaSink, NatsSource or NatsSink.
///
/// A source's `spec.sink` is resolved like any Knative destination (a Broker `ref` → its
/// `status.address.url`); `SpecValid` runs the standalone loader's checks on the translated manifest (with
/// a Broker `ref` kept as is, so its shape is checked too).
pub async fn reconcile_object<K: SourceOrSink>(
    o: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let s = &ctx.settings;
    let ns = o.namespace().unwrap_or_else(|| "default".into());
    let name = o.name_any();
    let subject = key(K::KIND, &ns, &name);
    let mut dependents = Vec::new();
    let mut sink_uri = None;
    let mut others = Vec::new();
    let sink = match o.sink() {
        None => None,
        Some(dest) => {
            match resolve(&ctx.client, &ns, &dest, &s.cluster_domain).await? {
                Resolved::Url(u) => {
                    dependents.push(Observed::ok("SinkProvided", "", ""));
                    sink_uri = Some(u);
                }
                Resolved::Failed(why) => dependents.push(Observed::failed(
                    "SinkProvided",
                    "NotFound",
                    format!("sink: {why}"),
                )),
            }
            let keep_ref = is_broker_ref(&dest);
            if let Some(r) = dest.reference.as_ref().filter(|_| keep_ref) {
                let bns = r.namespace.clone().unwrap_or_else(|| ns.clone());
                others.push((
                    key("Broker", &bns, &r.name),
                    stub_broker_manifest(&bns, &r.name),
                ));
            }
            Some(source_sink(&dest, keep_ref, sink_uri.as_deref()))
        }
    };
    let mut sources = vec![(subject.clone(), object_manifest(&*o, sink))];
    sources.extend(others);
    dependents.push(spec_valid(problems_of(&subject, &sources), "Invalid"));

    let prev = o.conditions().to_vec();
    let conditions = with_ready(&prev, dependents, &rfc3339_now());
    let generation = o.meta().generation;
    let changed = o.observed_generation() != generation
        || prev != conditions
        || o.sink_uri() != sink_uri.as_deref();
    let updated = changed.then(|| o.with_status(generation, conditions.clone(), sink_uri));
    super::settle(&ctx, &ns, &name, &subject, &prev, &conditions, updated).await
}

/// Error policy of [`reconcile_object`]: per-object exponential backoff.
pub fn object_error_policy<K: SourceOrSink>(o: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let k = key(K::KIND, &o.namespace().unwrap_or_default(), &o.name_any());
    super::backoff(&ctx, k, err)
}

/// `SubscriberResolved` of a Trigger (in `ns`) whose subscriber refs a KafkaSink or NatsSink (`kind`):
/// True when the sink exists in the Trigger's namespace, with the descriptive `status.subscriberUri`
/// `kafka://<bootstrap servers>/<topic>` or `nats://<servers>/<subject>`; False `Unresolved` otherwise.
pub async fn resolve_sink_subscriber(
    ctx: &Context,
    ns: &str,
    kind: &str,
    dest: &Destination,
) -> Result<(Observed, Option<String>), Error> {
    const T: &str = "SubscriberResolved";
    let unresolved = |why: String| Ok((Observed::failed(T, "Unresolved", why), None));
    let Some(r) = &dest.reference else {
        return unresolved(format!("subscriber: a {kind} needs a ref"));
    };
    if dest.uri.is_some() {
        return unresolved(format!(
            "subscriber: a {kind} ref cannot be combined with a uri"
        ));
    }
    if let Some(rns) = r.namespace.as_deref().filter(|rns| *rns != ns) {
        return unresolved(format!(
            "subscriber: a {kind} subscriber must be in the trigger's namespace {ns:?}, got {rns:?}"
        ));
    }
    let found = if kind == "KafkaSink" {
        let api: Api<KafkaSink> = Api::namespaced(ctx.client.clone(), ns);
        api.get_opt(&r.name)
            .await
            .map(|s| s.map(|s| kafka_sink_uri(&s)))
    } else {
        let api: Api<NatsSink> = Api::namespaced(ctx.client.clone(), ns);
        api.get_opt(&r.name)
            .await
            .map(|s| s.map(|s| nats_sink_uri(&s)))
    };
    match found {
        Ok(Some(uri)) => Ok((Observed::ok(T, "", ""), Some(uri))),
        Ok(None) => unresolved(format!("subscriber: {kind} {ns}/{} not found", r.name)),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
            unresolved(format!("subscriber: {kind} {ns}/{}: {}", r.name, s.message))
        }
        Err(e) => Err(e.into()),
    }
}
