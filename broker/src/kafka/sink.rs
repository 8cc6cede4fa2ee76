//! KafkaSink: a trigger's deliveries produced to a Kafka topic, a [`Sink`] of the dispatcher.
//!
//! The producer comes from the pool the Kafka-backed brokers use ([`Producers`], one per cluster). Each
//! attempt encodes the event with the Kafka binding in the sink's content mode (TTL removed) and
//! resolves when the record is acknowledged; a produce failure or timeout is a retryable failed attempt
//! (`kafka-produce-failed`). There are no replies.

use crate::config::{ContentMode, KafkaSinkConfig};
use crate::event::Event;
use crate::kafka::channel::{produce_event, Producers};
use crate::sink::{stored_within, without_ttl, Sending, Sink};
use rdkafka::producer::FutureProducer;
use std::time::Duration;

/// A resolved KafkaSink.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    content_mode: ContentMode,
}

impl KafkaSink {
    /// The sink of `spec`, producing through the pool's producer for its bootstrap servers.
    pub fn new(producers: &Producers, spec: &KafkaSinkConfig) -> Result<KafkaSink, String> {
        let bootstrap = &spec.bootstrap_servers;
        let producer = producers
            .get(bootstrap)
            .map_err(|e| format!("kafka producer for {bootstrap}: {e}"))?;
        Ok(KafkaSink {
            producer,
            topic: spec.topic.clone(),
            content_mode: spec.content_mode,
        })
    }
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Sink for KafkaSink {
    fn send<'a>(&'a self, event: &'a Event, timeout: Duration) -> Sending<'a> {
        Box::pin(async move {
            let event = without_ttl(event);
            let produce = produce_event(&self.producer, &self.topic, &event, self.content_mode);
            let what = ("kafka produce", self.topic.as_str());
            stored_within(timeout, produce, what, "kafka-produce-failed").await
        })
    }
}
