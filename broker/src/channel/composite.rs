//! The channel the app uses: the embedded store for embedded brokers, Kafka for Kafka-backed brokers.
//!
//! Every trigger exists in the store (a Kafka trigger's store queue holds its overflow and redriven
//! events, and its dead letters live in the store's dead-letter table), so parking, listing and redriving
//! work the same on every backend. An entry's [`EntryId`] says which backend handed it out, which is how
//! acks and parks find their backend.

#[cfg(any(feature = "kafka", feature = "nats"))]
use crate::channel::log::LogLayer;
use crate::channel::store::{StoreChannel, StoreHealth};
use crate::channel::{
    Channel, ChannelError, Done, Entry, EntryId, LogBackend, ParkRecord, ParkedEvent, Result,
    Subscription,
};
use crate::config::{Backend, BrokerKey, Topology, TriggerKey};
use crate::event::Event;
#[cfg(feature = "kafka")]
use crate::kafka::channel::{KafkaDriver, Producers};
use crate::kafka::config::KafkaOptions;
#[cfg(feature = "nats")]
use crate::nats::channel::NatsDriver;
use crate::nats::config::NatsOptions;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// The store plus the compiled-in log backends (Cargo features `kafka`, `nats`), chosen per broker by its
/// class.
pub struct CompositeChannel {
    store: Arc<StoreChannel>,
    logs: Vec<Box<dyn LogBackend>>,
    #[cfg(feature = "kafka")]
    kafka_producers: Option<Arc<Producers>>,
    topology: ArcSwap<Topology>,
}

impl std::fmt::Debug for CompositeChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompositeChannel")
            .field("store", &self.store)
            .field(
                "logs",
                &self.logs.iter().map(|l| l.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl CompositeChannel {
    /// A channel over an opened store, serving embedded brokers only until log backends are added.
    pub fn new(store: Arc<StoreChannel>) -> CompositeChannel {
        CompositeChannel {
            store,
            logs: Vec::new(),
            #[cfg(feature = "kafka")]
            kafka_producers: None,
            topology: ArcSwap::from_pointee(Topology::default()),
        }
    }

    /// Serves Kafka-backed brokers too (without the `kafka` feature: nothing changes, and a Kafka-backed
    /// broker is refused by name when the topology is applied).
    #[cfg(feature = "kafka")]
    pub fn with_kafka(mut self, options: KafkaOptions) -> CompositeChannel {
        let (window, wait) = (options.trigger_window, options.topic_wait);
        let driver = KafkaDriver::new(options);
        self.kafka_producers = Some(driver.producers().clone());
        let layer = LogLayer::new(self.store.clone(), driver, window, wait);
        self.logs.push(Box::new(layer));
        self
    }

    /// Serves Kafka-backed brokers too (without the `kafka` feature: nothing changes, and a Kafka-backed
    /// broker is refused by name when the topology is applied).
    #[cfg(not(feature = "kafka"))]
    pub fn with_kafka(self, _options: KafkaOptions) -> CompositeChannel {
        self
    }

    /// The Kafka producers of the Kafka-backed brokers, for KafkaSinks to share (`None` before
    /// [`with_kafka`](Self::with_kafka)).
    #[cfg(feature = "kafka")]
    pub fn kafka_producers(&self) -> Option<Arc<Producers>> {
        self.kafka_producers.clone()
    }

    /// Serves JetStream-backed brokers too (without the `nats` feature: nothing changes, and a
    /// JetStream-backed broker is refused by name when the topology is applied).
    #[cfg(feature = "nats")]
    pub fn with_nats(mut self, options: NatsOptions) -> CompositeChannel {
        let (window, wait) = (options.trigger_window, options.stream_wait);
        let layer = LogLayer::new(self.store.clone(), NatsDriver::new(options), window, wait);
        self.logs.push(Box::new(layer));
        self
    }

    /// Serves JetStream-backed brokers too (without the `nats` feature: nothing changes, and a
    /// JetStream-backed broker is refused by name when the topology is applied).
    #[cfg(not(feature = "nats"))]
    pub fn with_nats(self, _options: NatsOptions) -> CompositeChannel {
        self
    }

    /// The embedded store.
    pub fn store(&self) -> &Arc<StoreChannel> {
        &self.store
    }

    /// The log serving brokers with this backend (`None` for the embedded store, or a backend this build
    /// does not have).
    fn log_for(&self, backend: &Backend) -> Option<&dyn LogBackend> {
        self.logs.iter().find(|l| l.serves(backend)).map(|l| &**l)
    }

    /// The log serving this trigger (`None`: the store does).
    fn log_of_trigger(&self, trigger: &TriggerKey) -> Option<&dyn LogBackend> {
        self.logs
            .iter()
            .find(|l| l.has_trigger(trigger))
            .map(|l| &**l)
    }

    /// Whether the trigger's broker keeps its events in an external log (Kafka, JetStream): its deliveries
    /// come from the log through an in-memory window, and only overflow and redriven entries from the store.
    pub fn trigger_on_log(&self, trigger: &TriggerKey) -> bool {
        self.log_of_trigger(trigger).is_some()
    }

    /// Records of a log-backed broker's topic or stream that were not valid CloudEvents (skipped); 0 for an
    /// embedded broker.
    pub fn invalid_records(&self, broker: &BrokerKey) -> u64 {
        self.logs.iter().map(|l| l.invalid(broker)).sum()
    }

    fn backend_of(&self, broker: &BrokerKey) -> Option<Backend> {
        self.topology
            .load()
            .brokers
            .get(broker)
            .map(|b| b.backend.clone())
    }

    /// Whether a broker takes events (`None`) or why not: for an embedded broker the store's health, for a
    /// Kafka- or JetStream-backed broker whether its cluster or server answers. `None` for an unknown broker.
    pub fn broker_not_ready(&self, broker: &BrokerKey) -> Option<String> {
        let backend = self.backend_of(broker)?;
        if let Backend::Embedded = backend {
            return match self.store.health() {
                StoreHealth::Healthy => None,
                StoreHealth::Full { reason } => Some(format!("the store is full ({reason})")),
                StoreHealth::Failed { reason } => Some(format!(
                    "the store is recovering from a write failure ({reason})"
                )),
            };
        }
        match self.log_for(&backend) {
            Some(log) => log.not_ready(broker),
            None => Some(unsupported(broker, &backend).to_string()),
        }
    }

    /// Stops the log consumers (committing finished offsets), flushes producers, then closes the store.
    pub async fn close(&self, deadline: Duration) -> Result<()> {
        for log in &self.logs {
            log.close(deadline).await;
        }
        self.store.close().await
    }
}

/// The error for a broker whose backend this build does not have.
fn unsupported(broker: &BrokerKey, backend: &Backend) -> ChannelError {
    let (class, feature) = match backend {
        Backend::Kafka(_) => ("Kafka", "kafka"),
        Backend::NatsJetStream(_) => ("NatsJetStream", "nats"),
        Backend::Embedded => ("embedded", ""),
    };
    ChannelError::Unsupported(format!(
        "broker {broker} has class {class}, which this build of switchyard does not include \
         (Cargo feature `{feature}`)"
    ))
}

impl Channel for CompositeChannel {
    fn apply_topology(&self, topology: Arc<Topology>) -> Done<'_> {
        Box::pin(async move {
            for (key, broker) in &topology.brokers {
                if !matches!(broker.backend, Backend::Embedded)
                    && self.log_for(&broker.backend).is_none()
                {
                    return Err(unsupported(key, &broker.backend));
                }
            }
            self.store.apply_topology(topology.clone()).await?;
            self.topology.store(topology.clone());
            for log in &self.logs {
                log.apply_topology(topology.clone()).await?;
            }
            Ok(())
        })
    }

    fn append<'a>(&'a self, broker: &'a BrokerKey, events: Vec<Event>) -> Done<'a> {
        let topology = self.topology.load();
        match topology.brokers.get(broker).map(|b| &b.backend) {
            Some(Backend::Embedded) | None => self.store.append(broker, events),
            Some(backend) => match self.log_for(backend) {
                Some(log) => log.append(broker, events),
                None => {
                    let err = unsupported(broker, backend);
                    Box::pin(async move { Err(err) })
                }
            },
        }
    }

    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>> {
        match self.log_of_trigger(trigger) {
            Some(log) => log.subscribe(trigger),
            None => self.store.subscribe(trigger),
        }
    }

    fn ack<'a>(&'a self, trigger: &'a TriggerKey, id: EntryId) -> Done<'a> {
        match id.0 {
            Entry::Store(_) => self.store.ack(trigger, id),
            Entry::Kafka { .. } | Entry::Nats(_) => {
                if let Some(log) = self.log_of_trigger(trigger) {
                    log.finish(trigger, id);
                }
                Box::pin(async { Ok(()) })
            }
        }
    }

    fn park<'a>(&'a self, trigger: &'a TriggerKey, id: EntryId, record: ParkRecord) -> Done<'a> {
        match id.0 {
            Entry::Store(_) => self.store.park(trigger, id, record),
            Entry::Kafka { .. } | Entry::Nats(_) => Box::pin(async move {
                self.store.park_detached(trigger, record).await?;
                if let Some(log) = self.log_of_trigger(trigger) {
                    log.finish(trigger, id);
                }
                Ok(())
            }),
        }
    }

    /// Embedded: the store's queue entries. Kafka/JetStream: what the log still holds for the broker
    /// (not consumed by this process and not finished by another) + this process's windows + its store
    /// entries (overflow, redriven); each event counted once per place, never twice.
    fn backlog(&self, broker: &BrokerKey) -> u64 {
        self.store.backlog(broker) + self.logs.iter().map(|l| l.backlog(broker)).sum::<u64>()
    }

    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64 {
        self.store.trigger_backlog(trigger)
            + self
                .logs
                .iter()
                .map(|l| l.trigger_backlog(trigger))
                .sum::<u64>()
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<ParkedEvent>> {
        self.store.dead_letters(limit)
    }

    fn redrive(&self, id: u64) -> Done<'_> {
        self.store.redrive(id)
    }

    fn flush(&self) -> Done<'_> {
        self.store.flush()
    }
}
