//! The channel: where a broker's accepted events live until every matching trigger is done with them.
//!
//! Contract (every backend):
//! - [`Channel::append`] resolves `Ok` only once the whole batch is durable (all-or-nothing). The events are
//!   routed to the matching triggers of the broker *as configured at commit time*; each matching trigger
//!   gets one queue entry per event. A trigger added later only sees events appended after it exists.
//! - Each trigger consumes its own queue ([`Channel::subscribe`]) independently of the others: a slow or
//!   failing subscriber never delays another trigger.
//! - An entry stays until it is [`Channel::ack`]ed or [`Channel::park`]ed; entries not acked before a crash
//!   or shutdown are delivered again after restart (at-least-once). Acks may be written lazily (group
//!   commit); a lost ack only causes a redelivery.
//! - An event's storage is reclaimed once no trigger queue references it.
//! - Parking moves an entry to the local dead-letter store atomically; parked events can be listed and
//!   redriven into the same trigger's queue.
//!
//! The embedded backend is [`store::StoreChannel`] (redb, on disk or in memory for tests); Kafka- and
//! JetStream-backed brokers use one shared log layer (`log.rs`: broker runtimes, trigger windows,
//! finishing, backlog, readiness) with a driver each (`kafka::channel`, `nats::channel`, in the
//! components [`crate::kafka`] and [`crate::nats`]);
//! [`composite::CompositeChannel`] picks one per broker.

pub mod composite;
#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) mod log;
pub mod store;
#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) mod windows;

use crate::config::{BrokerKey, Topology, TriggerKey};
use crate::event::Event;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so that the channel trait is object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Result alias for channel operations.
pub type Result<T, E = ChannelError> = std::result::Result<T, E>;

/// A channel operation in flight (an append, ack, park, redrive, flush or topology change): resolves
/// once it took effect (durably, where the operation is durable).
pub type Done<'a> = BoxFuture<'a, Result<()>>;

/// Errors of channel operations.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The broker is not in the current topology.
    #[error("broker {0} does not exist")]
    UnknownBroker(BrokerKey),
    /// The trigger is not in the current topology.
    #[error("trigger {0} does not exist")]
    UnknownTrigger(TriggerKey),
    /// No parked event with this id.
    #[error("dead letter {0} not found")]
    DeadLetterNotFound(u64),
    /// The storage engine failed (I/O); the embedded store then recovers by itself.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Stored data could not be decoded (a corrupt row or record); the message says what.
    #[error("storage failure: {0}")]
    Corrupt(String),
    /// The backend cannot take the operation now, though nothing failed: a log-backed broker that is
    /// not ready (setup pending, outage, client disconnected), or the store being reopened. Retry later.
    #[error("storage failure: {0}")]
    Unavailable(String),
    /// The store's volume is full, or below the free-space reserve (`--min-free-bytes`): appends are
    /// refused until space comes back; deliveries, acks and parking go on.
    #[error("the broker's store is full")]
    Full,
    /// The channel has been shut down.
    #[error("channel is shut down")]
    Closed,
    /// The configuration asks for something this build does not include (a broker class whose backend
    /// was left out at compile time).
    #[error("{0}")]
    Unsupported(String),
}

impl ChannelError {
    /// Whether the caller may retry later (storage trouble) rather than having sent something wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ChannelError::Storage(_)
                | ChannelError::Corrupt(_)
                | ChannelError::Unavailable(_)
                | ChannelError::Full
                | ChannelError::Closed
        )
    }
}

/// Names one queue entry for [`Channel::ack`] and [`Channel::park`]: an opaque handle that only the backend
/// which handed it out interprets (a store sequence number, a Kafka partition offset, a JetStream message).
///
/// Handles of the embedded store order like the store's queue (append order); handles of different
/// backends are never equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub(crate) Entry);

/// What an [`EntryId`] refers to, per backend.
// A build without a log backend never makes its handles.
#[cfg_attr(not(all(feature = "kafka", feature = "nats")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Entry {
    /// The embedded store's sequence number (unique per stored event, increasing in append order).
    Store(u64),
    /// A record of a Kafka-backed broker's topic, consumed under assignment `generation` of its partition
    /// (an ack after a rebalance took the partition away is recognised as stale).
    Kafka {
        generation: u8,
        partition: i32,
        offset: i64,
    },
    /// A message a JetStream-backed broker's consumer holds (index into its pending-message table).
    Nats(u64),
}

impl EntryId {
    /// A handle for sequence number `seq`: what the embedded store hands out, and what another
    /// [`Channel`] implementation (a test double) may use for its own entries.
    pub fn seq(seq: u64) -> EntryId {
        EntryId(Entry::Store(seq))
    }

    /// The sequence number of a handle made by [`EntryId::seq`] (the embedded store's entries).
    pub fn as_seq(self) -> Option<u64> {
        match self.0 {
            Entry::Store(seq) => Some(seq),
            _ => None,
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Entry::Store(seq) => write!(f, "{seq}"),
            Entry::Kafka {
                partition, offset, ..
            } => write!(f, "kafka:{partition}@{offset}"),
            Entry::Nats(n) => write!(f, "nats:{n}"),
        }
    }
}

/// One queue entry handed to a trigger's consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The entry, for [`Channel::ack`] / [`Channel::park`].
    pub id: EntryId,
    /// The event as stored (shared between the triggers it was routed to).
    pub event: Arc<Event>,
}

/// Why and how an event was parked in the local dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkRecord {
    /// Short machine-readable reason (`retries-exhausted`, `non-retryable`, `dead-letter-failed`,
    /// `ttl-exhausted`, ...).
    pub reason: String,
    /// The destination that failed last (`knativeerrordest`).
    pub error_dest: Option<String>,
    /// Last HTTP status, if there was a response.
    pub error_code: Option<u16>,
    /// Last response body (base64, truncated) or transport error text.
    pub error_data: Option<String>,
    /// The event to park (the original event with dead-letter extensions, or a reply).
    pub event: Event,
}

/// A parked event as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// Id used to redrive.
    pub id: u64,
    /// The trigger whose delivery failed.
    pub trigger: TriggerKey,
    /// Milliseconds since the Unix epoch when it was parked.
    pub parked_at_ms: u64,
    /// The record.
    pub record: ParkRecord,
}

/// A trigger's queue consumer.
pub trait Subscription: Send {
    /// The next entry, in queue order. `None` once the trigger is removed or the channel shuts down.
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery>>;
}

/// A channel backend. See the module docs for the contract.
pub trait Channel: Send + Sync + 'static {
    /// Installs a new topology (hot reload). New triggers start with an empty queue; removed triggers
    /// lose their queue (and their subscriptions end).
    fn apply_topology(&self, topology: Arc<Topology>) -> Done<'_>;

    /// Appends a batch to a broker durably, routing each event to the matching triggers.
    fn append<'a>(&'a self, broker: &'a BrokerKey, events: Vec<Event>) -> Done<'a>;

    /// Opens the consumer of a trigger's queue (starting with entries left from before a restart).
    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>>;

    /// Marks an entry done (delivered, or dead-lettered to a sink). Written with group commit. Acking an
    /// entry that no longer exists (or an id of another backend) is a no-op.
    fn ack<'a>(&'a self, trigger: &'a TriggerKey, id: EntryId) -> Done<'a>;

    /// Moves an entry to the local dead-letter store, durably and atomically with its removal.
    fn park<'a>(&'a self, trigger: &'a TriggerKey, id: EntryId, record: ParkRecord) -> Done<'a>;

    /// Undelivered queue entries across the broker's triggers (for the 429 backlog limit and metrics).
    fn backlog(&self, broker: &BrokerKey) -> u64;

    /// Undelivered queue entries of one trigger.
    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64;

    /// Lists parked events, oldest first.
    fn dead_letters(&self, limit: usize) -> Result<Vec<ParkedEvent>>;

    /// Puts a parked event back into its trigger's queue and removes it from the dead-letter store.
    fn redrive(&self, id: u64) -> Done<'_>;

    /// Makes every pending ack durable (used during shutdown).
    fn flush(&self) -> Done<'_>;
}

/// A log backend as the composite channel sees it (object-safe, one per compiled-in backend).
pub(crate) trait LogBackend: Send + Sync {
    /// The backend's name (`kafka`, `nats`), as in the admin API.
    fn name(&self) -> &'static str;
    /// Whether brokers with this backend are this log's.
    fn serves(&self, backend: &crate::config::Backend) -> bool;
    /// Starts, restarts and stops the log's broker runtimes and trigger windows.
    fn apply_topology(&self, topology: Arc<Topology>) -> Done<'_>;
    /// Writes a batch to the broker's log durably.
    fn append<'a>(&'a self, broker: &'a BrokerKey, events: Vec<Event>) -> Done<'a>;
    /// Whether the trigger's broker is this log's.
    fn has_trigger(&self, trigger: &TriggerKey) -> bool;
    /// The trigger's window, then its overflow/redrive queue in the store.
    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>>;
    /// The trigger finished an entry of this log (acked, or parked in the store).
    fn finish(&self, trigger: &TriggerKey, id: EntryId);
    /// What the log and this process's windows hold for the broker.
    fn backlog(&self, broker: &BrokerKey) -> u64;
    /// The trigger's window entries.
    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64;
    /// Why the broker cannot take events now, if it cannot.
    fn not_ready(&self, broker: &BrokerKey) -> Option<String>;
    /// Records of the broker's log that were not valid CloudEvents.
    fn invalid(&self, broker: &BrokerKey) -> u64;
    /// Stops the runtimes, ends the subscriptions, flushes what must be flushed.
    fn close(&self, deadline: std::time::Duration) -> BoxFuture<'_, ()>;
}
