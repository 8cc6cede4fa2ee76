//! The channel the app uses: the embedded store for embedded brokers, Kafka for Kafka-backed brokers.
//!
//! Every trigger exists in the store (a Kafka trigger's store queue holds its overflow and redriven
//! events, and its dead letters live in the store's dead-letter table), so parking, listing and redriving
//! work the same on every backend. Queue entry ids of Kafka entries have [`kafka::KAFKA_SEQ_FLAG`] set,
//! which is how acks and parks find their backend.

use crate::channel::kafka::{self, KafkaBackend, KafkaOptions};
use crate::channel::nats::{self, NatsBackend, NatsOptions};
use crate::channel::store::{StoreChannel, StoreHealth};
use crate::channel::{BoxFuture, Channel, ParkRecord, ParkedEvent, Result, Subscription};
use crate::config::{Backend, BrokerKey, Topology, TriggerKey};
use crate::event::Event;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// Store + Kafka, chosen per broker by its class.
#[derive(Debug)]
pub struct CompositeChannel {
    store: Arc<StoreChannel>,
    kafka: KafkaBackend,
    nats: NatsBackend,
    topology: ArcSwap<Topology>,
}

impl CompositeChannel {
    /// A channel over an opened store.
    pub fn new(
        store: Arc<StoreChannel>,
        options: KafkaOptions,
        nats_options: NatsOptions,
    ) -> CompositeChannel {
        CompositeChannel {
            kafka: KafkaBackend::new(store.clone(), options),
            nats: NatsBackend::new(store.clone(), nats_options),
            store,
            topology: ArcSwap::from_pointee(Topology::default()),
        }
    }

    /// The embedded store.
    pub fn store(&self) -> &Arc<StoreChannel> {
        &self.store
    }

    /// The Kafka backend (producers are shared with KafkaSinks).
    pub fn kafka(&self) -> &KafkaBackend {
        &self.kafka
    }

    /// The JetStream backend.
    pub fn nats(&self) -> &NatsBackend {
        &self.nats
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
        match self.backend_of(broker)? {
            Backend::Kafka(_) => self.kafka.not_ready(broker),
            Backend::NatsJetStream(_) => self.nats.not_ready(broker),
            Backend::Embedded => match self.store.health() {
                StoreHealth::Healthy => None,
                StoreHealth::Full { reason } => Some(format!("the store is full ({reason})")),
                StoreHealth::Failed { reason } => Some(format!(
                    "the store is recovering from a write failure ({reason})"
                )),
            },
        }
    }

    /// Stops the Kafka consumers (committing finished offsets), flushes producers, then closes the store.
    pub async fn close(&self, deadline: Duration) -> Result<()> {
        self.kafka.close(deadline).await;
        self.nats.close(deadline).await;
        self.store.close().await
    }
}

impl Channel for CompositeChannel {
    fn apply_topology(&self, topology: Arc<Topology>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.store.apply_topology(topology.clone()).await?;
            self.topology.store(topology.clone());
            self.kafka.apply_topology(topology.clone()).await?;
            self.nats.apply_topology(topology).await
        })
    }

    fn append<'a>(
        &'a self,
        broker: &'a BrokerKey,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<()>> {
        match self.backend_of(broker) {
            Some(Backend::Kafka(_)) => {
                Box::pin(async move { self.kafka.append(broker, &events).await })
            }
            Some(Backend::NatsJetStream(_)) => {
                Box::pin(async move { self.nats.append(broker, &events).await })
            }
            _ => self.store.append(broker, events),
        }
    }

    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>> {
        if self.kafka.has_trigger(trigger) {
            self.kafka.subscribe(trigger)
        } else if self.nats.has_trigger(trigger) {
            self.nats.subscribe(trigger)
        } else {
            self.store.subscribe(trigger)
        }
    }

    fn ack<'a>(&'a self, trigger: &'a TriggerKey, seq: u64) -> BoxFuture<'a, Result<()>> {
        if kafka::is_kafka_seq(seq) {
            self.kafka.finish(trigger, seq);
            Box::pin(async { Ok(()) })
        } else if nats::is_nats_seq(seq) {
            self.nats.finish(trigger, seq);
            Box::pin(async { Ok(()) })
        } else {
            self.store.ack(trigger, seq)
        }
    }

    fn park<'a>(
        &'a self,
        trigger: &'a TriggerKey,
        seq: u64,
        record: ParkRecord,
    ) -> BoxFuture<'a, Result<()>> {
        if kafka::is_kafka_seq(seq) || nats::is_nats_seq(seq) {
            Box::pin(async move {
                self.store.park_detached(trigger, record).await?;
                if kafka::is_kafka_seq(seq) {
                    self.kafka.finish(trigger, seq);
                } else {
                    self.nats.finish(trigger, seq);
                }
                Ok(())
            })
        } else {
            self.store.park(trigger, seq, record)
        }
    }

    /// Embedded: the store's queue entries. Kafka/JetStream: what the log still holds for the broker
    /// (not consumed by this process and not finished by another) + this process's windows + its store
    /// entries (overflow, redriven); each event counted once per place, never twice.
    fn backlog(&self, broker: &BrokerKey) -> u64 {
        self.store.backlog(broker) + self.kafka.backlog(broker) + self.nats.backlog(broker)
    }

    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64 {
        self.store.trigger_backlog(trigger)
            + self.kafka.trigger_backlog(trigger)
            + self.nats.trigger_backlog(trigger)
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<ParkedEvent>> {
        self.store.dead_letters(limit)
    }

    fn redrive(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        self.store.redrive(id)
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        self.store.flush()
    }
}
