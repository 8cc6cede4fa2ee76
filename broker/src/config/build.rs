//! The topology builder: decoded objects (with where each came from) → cross-document checks
//! (duplicates, `spec.config` ConfigMaps and their Kafka or NATS settings, KafkaSink/NatsSink subscribers,
//! source Broker sinks) → the [`Topology`]. Strict: every problem is reported (the caller applies nothing
//! when there is one). Tolerant (the Kubernetes data plane): an object with a problem is left out, and so
//! is what depends on it, in one pass.

use super::duration::parse_iso8601;
use super::error::ConfigError;
use super::manifest::{Ctx, Document};
use super::rules::{parse_bootstrap_csv, parse_nats_servers_csv};
use super::{
    nats_broker_stream, nats_broker_subject, Backend, BrokerConfig, BrokerKey, Components,
    DestinationConfig, KafkaBrokerConfig, KafkaSinkConfig, KafkaSourceConfig, NatsBrokerConfig,
    NatsSinkConfig, NatsSourceConfig, NatsStorage, SourceSinkConfig, Topology, TriggerConfig,
};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::hash::Hash;

/// Where a decoded object came from, for cross-document messages.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The source (file or object) name.
    pub(crate) source: &'a str,
    /// 1-based document index in the source.
    pub(crate) doc: usize,
}

/// A decoded Broker whose `spec.config` reference (namespace, name) is not resolved yet.
pub(crate) struct PendingBroker<'a> {
    origin: Origin<'a>,
    spec: BrokerConfig,
    config_ref: Option<(String, String)>,
    /// `Some((topic, external))` for class Kafka.
    kafka_topic: Option<(String, bool)>,
    /// Class NatsJetStream.
    nats: bool,
}

/// Knative `kafka-broker-config` keys.
const BOOTSTRAP_SERVERS_KEY: &str = "bootstrap.servers";
const PARTITIONS_KEY: &str = "default.topic.partitions";
const REPLICATION_FACTOR_KEY: &str = "default.topic.replication.factor";
const AUTH_SECRET_KEY: &str = "auth.secret.ref.name";
/// Knative's default `default.topic.partitions`.
const DEFAULT_PARTITIONS: i32 = 10;
/// Switchyard's default `default.topic.replication.factor` (Knative's is 3; a dev cluster has one broker).
const DEFAULT_REPLICATION_FACTOR: i16 = 1;

/// The Kafka settings of a `kafka-broker-config`-style ConfigMap.
struct KafkaSettings {
    bootstrap_servers: String,
    partitions: i32,
    replication_factor: i16,
}

/// The required comma-separated list under `key` of a ConfigMap's `data`, normalised by `parse`; a
/// missing or empty one (`missing` says what is needed) or a bad one is added to `problems` as (path
/// inside the ConfigMap, message).
fn required_list(
    data: &BTreeMap<String, String>,
    key: &str,
    parse: fn(&str) -> Result<String, Vec<String>>,
    missing: String,
    problems: &mut Vec<(String, String)>,
) -> Option<String> {
    let path = format!("data.{key}");
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => {
            problems.push((path, missing));
            None
        }
        Some(s) => match parse(s) {
            Ok(list) => Some(list),
            Err(messages) => {
                problems.extend(messages.into_iter().map(|m| (path.clone(), m)));
                None
            }
        },
    }
}

/// Parses the Kafka settings of a ConfigMap, or returns the problems as (path inside the ConfigMap,
/// message); `broker` is named in the messages.
fn kafka_settings(
    data: &BTreeMap<String, String>,
    broker: &BrokerKey,
) -> Result<KafkaSettings, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let path = |key: &str| format!("data.{key}");
    let missing = format!(
        "required by Kafka broker {broker}: a comma-separated list of host:port \
         (e.g. \"kafka-0.example:9092,kafka-1.example:9092\")"
    );
    let bootstrap = required_list(
        data,
        BOOTSTRAP_SERVERS_KEY,
        parse_bootstrap_csv,
        missing,
        &mut problems,
    );
    let mut positive = |key: &str, max: i64, default: i64| -> i64 {
        let Some(text) = data.get(key) else {
            return default;
        };
        match text.trim().parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                problems.push((
                    path(key),
                    format!("must be an integer from 1 to {max}, got {text:?}"),
                ));
                default
            }
        }
    };
    let partitions = positive(
        PARTITIONS_KEY,
        i64::from(i32::MAX),
        i64::from(DEFAULT_PARTITIONS),
    );
    let replication = positive(
        REPLICATION_FACTOR_KEY,
        i64::from(i16::MAX),
        i64::from(DEFAULT_REPLICATION_FACTOR),
    );
    if data.contains_key(AUTH_SECRET_KEY) {
        problems.push((
            path(AUTH_SECRET_KEY),
            format!(
                "Kafka authentication is not supported in standalone mode (Kafka broker {broker}); \
                 remove the key to connect without authentication"
            ),
        ));
    }
    match bootstrap {
        Some(bootstrap_servers) if problems.is_empty() => Ok(KafkaSettings {
            bootstrap_servers,
            partitions: i32::try_from(partitions).unwrap_or(DEFAULT_PARTITIONS),
            replication_factor: i16::try_from(replication).unwrap_or(DEFAULT_REPLICATION_FACTOR),
        }),
        _ => Err(problems),
    }
}

/// NATS broker ConfigMap keys.
const NATS_SERVERS_KEY: &str = "servers";
const NATS_REPLICAS_KEY: &str = "stream.replicas";
const NATS_MAX_AGE_KEY: &str = "stream.maxAge";
const NATS_MAX_BYTES_KEY: &str = "stream.maxBytes";
const NATS_STORAGE_KEY: &str = "stream.storage";
/// JetStream's replica limit.
const NATS_MAX_REPLICAS: usize = 5;

/// The NATS settings of a ConfigMap (everything but the stream and subject, which come from the broker).
#[derive(Clone)]
struct NatsSettings {
    servers: String,
    replicas: usize,
    max_age: Option<std::time::Duration>,
    max_bytes: Option<i64>,
    storage: NatsStorage,
}

/// A Go-style duration of `<integer><unit>` parts with units `h`, `m`, `s` (`1h`, `30m`, `1h30m`).
fn parse_simple_duration(s: &str) -> Option<std::time::Duration> {
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = match rest.bytes().next()? {
            b'h' => 3600,
            b'm' => 60,
            b's' => 1,
            _ => return None,
        };
        rest = &rest[1..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(std::time::Duration::from_secs(total))
}

/// Parses the NATS settings of a ConfigMap, or returns the problems as (path inside the ConfigMap,
/// message); `broker` is named in the messages.
fn nats_settings(
    data: &BTreeMap<String, String>,
    broker: &BrokerKey,
) -> Result<NatsSettings, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let path = |key: &str| format!("data.{key}");
    let missing = format!(
        "required by NATS JetStream broker {broker}: a comma-separated list of \
         nats://host:port, tls://host:port or host:port (e.g. \
         \"nats://nats-0.example:4222,nats://nats-1.example:4222\")"
    );
    let servers = required_list(
        data,
        NATS_SERVERS_KEY,
        parse_nats_servers_csv,
        missing,
        &mut problems,
    );
    let replicas = match data.get(NATS_REPLICAS_KEY) {
        None => 1,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=NATS_MAX_REPLICAS).contains(&n) => n,
            _ => {
                problems.push((
                    path(NATS_REPLICAS_KEY),
                    format!("must be an integer from 1 to {NATS_MAX_REPLICAS}, got {text:?}"),
                ));
                1
            }
        },
    };
    let max_age = match data.get(NATS_MAX_AGE_KEY) {
        None => None,
        Some(text) => {
            let t = text.trim();
            let parsed = if t.starts_with(['P', 'p']) {
                parse_iso8601(t).ok()
            } else {
                parse_simple_duration(t)
            };
            match parsed {
                Some(d) if !d.is_zero() => Some(d),
                _ => {
                    problems.push((
                        path(NATS_MAX_AGE_KEY),
                        format!(
                            "must be a positive duration, ISO-8601 (\"PT1H\") or like \"1h\", \
                             \"30m\", \"10s\", got {text:?}"
                        ),
                    ));
                    None
                }
            }
        }
    };
    let max_bytes = match data.get(NATS_MAX_BYTES_KEY) {
        None => None,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                problems.push((
                    path(NATS_MAX_BYTES_KEY),
                    format!("must be a positive integer (bytes), got {text:?}"),
                ));
                None
            }
        },
    };
    let storage = match data.get(NATS_STORAGE_KEY).map(|s| s.trim()) {
        None | Some("file") => NatsStorage::File,
        Some("memory") => NatsStorage::Memory,
        Some(other) => {
            problems.push((
                path(NATS_STORAGE_KEY),
                format!("must be \"file\" (the default) or \"memory\", got {other:?}"),
            ));
            NatsStorage::File
        }
    };
    match servers {
        Some(servers) if problems.is_empty() => Ok(NatsSettings {
            servers,
            replicas,
            max_age,
            max_bytes,
            storage,
        }),
        _ => Err(problems),
    }
}

/// What [`load_tolerant`](super::load::load_tolerant) gives: the topology of every object without a problem, and the problems.
#[derive(Debug)]
pub struct Tolerant {
    /// The objects without problems (and the ones that depend only on them).
    pub topology: Topology,
    /// Non-fatal notes, as in [`LoadedConfig::warnings`](super::load::LoadedConfig::warnings).
    pub warnings: Vec<String>,
    /// Every problem, each naming its object (`file`): those objects are left out of `topology`.
    pub errors: Vec<ConfigError>,
}

/// The decoded objects of a configuration, in document order, each with its origin.
#[derive(Default)]
pub(crate) struct Decoded<'a> {
    brokers: Vec<PendingBroker<'a>>,
    triggers: Vec<(Origin<'a>, TriggerConfig)>,
    configmaps: HashMap<(String, String), (Origin<'a>, BTreeMap<String, String>)>,
    kafka_sinks: Vec<(Origin<'a>, KafkaSinkConfig)>,
    kafka_sources: Vec<(Origin<'a>, KafkaSourceConfig)>,
    nats_sinks: Vec<(Origin<'a>, NatsSinkConfig)>,
    nats_sources: Vec<(Origin<'a>, NatsSourceConfig)>,
}

impl<'a> Decoded<'a> {
    /// Adds the object of the document `ctx` names (a second ConfigMap of the same name is an error;
    /// a skipped kind a warning).
    pub(crate) fn add(
        &mut self,
        origin: Origin<'a>,
        ctx: &mut Ctx<'_>,
        document: Document,
        warnings: &mut Vec<String>,
    ) {
        match document {
            Document::Skipped(w) => warnings.push(format!("{} doc {}: {w}", ctx.file, ctx.doc)),
            Document::Broker {
                spec,
                config_ref,
                kafka_topic,
                nats,
            } => self.brokers.push(PendingBroker {
                origin,
                spec,
                config_ref,
                kafka_topic,
                nats,
            }),
            Document::Trigger(t) => self.triggers.push((origin, t)),
            Document::ConfigMap { key, data } => match self.configmaps.entry(key) {
                Entry::Occupied(e) => {
                    let (ns, name) = e.key();
                    ctx.err("metadata.name", format!("duplicate ConfigMap {ns}/{name}"));
                }
                Entry::Vacant(e) => {
                    e.insert((origin, data));
                }
            },
            Document::KafkaSink(s) => self.kafka_sinks.push((origin, s)),
            Document::KafkaSource(s) => self.kafka_sources.push((origin, s)),
            Document::NatsSink(s) => self.nats_sinks.push((origin, s)),
            Document::NatsSource(s) => self.nats_sources.push((origin, s)),
        }
    }
}

/// Reports a problem of the object at `o`.
fn err_at(errors: &mut Vec<ConfigError>, o: &Origin<'_>, path: &str, message: String) {
    errors.push(ConfigError {
        file: o.source.to_owned(),
        doc: o.doc,
        path: path.to_owned(),
        message,
    });
}

/// The parsed settings, or `None` with their problems (path inside the ConfigMap, message) reported at
/// the ConfigMap `o`.
fn reported<T>(
    errors: &mut Vec<ConfigError>,
    o: &Origin<'_>,
    parsed: Result<T, Vec<(String, String)>>,
) -> Option<T> {
    parsed
        .map_err(|problems| {
            for (path, message) in problems {
                err_at(errors, o, &path, message);
            }
        })
        .ok()
}

/// Where an object is, for messages.
fn place(o: &Origin<'_>) -> String {
    format!("{} doc {}", o.source, o.doc)
}

/// Reports the object at `origin` as a second `kind` named `key` (the first is at `first`).
fn duplicate(
    errors: &mut Vec<ConfigError>,
    kind: &str,
    key: &dyn Display,
    origin: &Origin<'_>,
    first: &Origin<'_>,
) {
    let msg = format!("duplicate {kind} {key} (first defined at {})", place(first));
    err_at(errors, origin, "metadata.name", msg);
}

/// Keeps the first object of each key, in order: a later one is reported as a duplicate `kind` and
/// left out. `check` then runs on each first object (reporting its problems) and says whether to keep
/// it; an object it leaves out does not take its key. Returns where each kept key is defined, and the
/// kept objects.
fn first_of_each<'a, K, T>(
    objects: Vec<(Origin<'a>, T)>,
    kind: &str,
    key: impl Fn(&T) -> &K,
    errors: &mut Vec<ConfigError>,
    mut check: impl FnMut(&mut Vec<ConfigError>, &Origin<'a>, &T) -> bool,
) -> (HashMap<K, Origin<'a>>, Vec<(Origin<'a>, T)>)
where
    K: Eq + Hash + Clone + Display,
{
    let mut seen: HashMap<K, Origin<'a>> = HashMap::new();
    let mut kept = Vec::with_capacity(objects.len());
    for (origin, object) in objects {
        let k = key(&object);
        if let Some(first) = seen.get(k) {
            duplicate(errors, kind, k, &origin, first);
            continue;
        }
        if !check(errors, &origin, &object) {
            continue;
        }
        seen.insert(k.clone(), origin);
        kept.push((origin, object));
    }
    (seen, kept)
}

/// The objects without their origins.
fn specs<T>(objects: Vec<(Origin<'_>, T)>) -> Vec<T> {
    objects.into_iter().map(|(_, object)| object).collect()
}

/// Cross-document checks and the topology (see the module docs).
pub(crate) fn topology<'a>(
    decoded: Decoded<'a>,
    tolerant: bool,
    mut errors: Vec<ConfigError>,
    mut warnings: Vec<String>,
) -> Tolerant {
    let Decoded {
        brokers,
        triggers,
        configmaps,
        kafka_sinks,
        kafka_sources,
        nats_sinks,
        nats_sources,
    } = decoded;
    let mut seen_brokers: HashMap<BrokerKey, Origin<'a>> = HashMap::new();
    let mut broker_specs = Vec::with_capacity(brokers.len());
    // Kafka settings per ConfigMap, parsed (and its problems reported) once however many brokers use it.
    let mut kafka_configs: HashMap<(String, String), Option<KafkaSettings>> = HashMap::new();
    let mut nats_configs: HashMap<(String, String), Option<NatsSettings>> = HashMap::new();
    for PendingBroker {
        origin,
        mut spec,
        config_ref,
        kafka_topic,
        nats,
    } in brokers
    {
        // Tolerant: a broker whose ConfigMap is missing or invalid is left out.
        let mut config_failed = false;
        if let Some((ns, name)) = config_ref {
            let cm_key = (ns.clone(), name.clone());
            match configmaps.get(&cm_key) {
                Some((cm_origin, data)) => {
                    spec.config = data.clone();
                    if nats {
                        let settings = nats_configs.entry(cm_key.clone()).or_insert_with(|| {
                            reported(&mut errors, cm_origin, nats_settings(data, &spec.key))
                        });
                        config_failed |= settings.is_none();
                        if let Some(n) = settings.clone() {
                            let (ns, name) = (&spec.key.namespace, &spec.key.name);
                            spec.backend = Backend::NatsJetStream(NatsBrokerConfig {
                                servers: n.servers,
                                stream: nats_broker_stream(ns, name),
                                subject: nats_broker_subject(ns, name),
                                replicas: n.replicas,
                                max_age: n.max_age,
                                max_bytes: n.max_bytes,
                                storage: n.storage,
                            });
                        }
                    }
                    if let Some((topic, external_topic)) = kafka_topic {
                        let settings = kafka_configs.entry(cm_key).or_insert_with(|| {
                            reported(&mut errors, cm_origin, kafka_settings(data, &spec.key))
                        });
                        config_failed |= settings.is_none();
                        if let Some(k) = settings {
                            spec.backend = Backend::Kafka(KafkaBrokerConfig {
                                bootstrap_servers: k.bootstrap_servers.clone(),
                                topic,
                                external_topic,
                                partitions: k.partitions,
                                replication_factor: k.replication_factor,
                            });
                        }
                    }
                }
                None => {
                    err_at(
                        &mut errors,
                        &origin,
                        "spec.config",
                        format!("ConfigMap {ns}/{name} is not defined in the configuration"),
                    );
                    config_failed = true;
                }
            }
            if tolerant && config_failed {
                if configmaps.contains_key(&(ns.clone(), name.clone())) {
                    let msg = format!("ConfigMap {ns}/{name} is invalid (see its problems)");
                    err_at(&mut errors, &origin, "spec.config", msg);
                }
                continue;
            }
        }
        if let Some(first) = seen_brokers.get(&spec.key) {
            duplicate(&mut errors, "Broker", &spec.key, &origin, first);
            continue;
        }
        seen_brokers.insert(spec.key.clone(), origin);
        broker_specs.push(spec);
    }

    let (_, trigger_specs) = first_of_each(
        triggers,
        "Trigger",
        |t: &TriggerConfig| &t.key,
        &mut errors,
        |_, origin, t| {
            if !seen_brokers.contains_key(&t.broker) {
                warnings.push(format!(
                    "{}: trigger {} refers to broker {}, which is not defined; it routes nothing \
                     until the broker exists",
                    place(origin),
                    t.key,
                    t.broker
                ));
            }
            true
        },
    );
    let (seen_sinks, sink_specs) = first_of_each(
        kafka_sinks,
        "KafkaSink",
        |s: &KafkaSinkConfig| &s.key,
        &mut errors,
        |_, _, _| true,
    );
    let (seen_nats_sinks, nats_sink_specs) = first_of_each(
        nats_sinks,
        "NatsSink",
        |s: &NatsSinkConfig| &s.key,
        &mut errors,
        |_, _, _| true,
    );
    let trigger_specs: Vec<TriggerConfig> = trigger_specs
        .into_iter()
        .filter_map(|(origin, t)| {
            let mut ok = true;
            if let DestinationConfig::KafkaSink(sink) = &t.subscriber {
                if !seen_sinks.contains_key(sink) {
                    let msg = format!("KafkaSink {sink} is not defined in the configuration");
                    err_at(&mut errors, &origin, "spec.subscriber.ref", msg);
                    ok = false;
                }
            }
            if let DestinationConfig::NatsSink(sink) = &t.subscriber {
                if !seen_nats_sinks.contains_key(sink) {
                    let msg = format!("NatsSink {sink} is not defined in the configuration");
                    err_at(&mut errors, &origin, "spec.subscriber.ref", msg);
                    ok = false;
                }
            }
            (ok || !tolerant).then_some(t)
        })
        .collect();

    // A source whose sink is a Broker needs that Broker (tolerant: it is left out without one).
    let broker_sink =
        |errors: &mut Vec<ConfigError>, origin: &Origin<'_>, sink: &SourceSinkConfig| {
            if let SourceSinkConfig::Broker(b) = sink {
                if !seen_brokers.contains_key(b) {
                    let msg = format!("Broker {b} is not defined in the configuration");
                    err_at(errors, origin, "spec.sink.ref", msg);
                    return !tolerant;
                }
            }
            true
        };
    let (_, source_specs) = first_of_each(
        kafka_sources,
        "KafkaSource",
        |s: &KafkaSourceConfig| &s.key,
        &mut errors,
        |errors, origin, s| broker_sink(errors, origin, &s.sink),
    );
    let (_, nats_source_specs) = first_of_each(
        nats_sources,
        "NatsSource",
        |s: &NatsSourceConfig| &s.key,
        &mut errors,
        |errors, origin, s| broker_sink(errors, origin, &s.sink),
    );

    // Strict: the caller applies nothing when there is a problem, so the topology is not built.
    let topology = if tolerant || errors.is_empty() {
        Topology::new(broker_specs, trigger_specs).with_components(Components {
            kafka_sinks: specs(sink_specs),
            kafka_sources: specs(source_specs),
            nats_sinks: specs(nats_sink_specs),
            nats_sources: specs(nats_source_specs),
        })
    } else {
        Topology::default()
    };
    Tolerant {
        topology,
        warnings,
        errors,
    }
}
