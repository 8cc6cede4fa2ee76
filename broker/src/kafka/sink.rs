//! KafkaSink: a trigger's deliveries produced to a Kafka topic, a [`Sink`] of the dispatcher.
//!
//! The producer comes from the pool the Kafka-backed brokers use ([`Producers`], one per cluster). Each
//! attempt encodes the event with the Kafka binding in the sink's content mode (TTL removed) and
//! resolves when the record is acknowledged; a produce failure or timeout is a retryable failed attempt
//! (`kafka-produce-failed`). There are no replies.

use crate::channel::BoxFuture;
use crate::config::{ContentMode, KafkaSinkConfig};
use crate::event::Event;
use crate::kafka::channel::{produce_event, Producers};
use crate::sink::{within, without_ttl, Sent, Sink, SinkError};
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
    fn send<'a>(
        &'a self,
        event: &'a Event,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Sent, SinkError>> {
        Box::pin(async move {
            let event = without_ttl(event);
            let produce = produce_event(&self.producer, &self.topic, &event, self.content_mode);
            match within(timeout, produce).await {
                Ok(()) => Ok(Sent::Stored),
                Err(e) => Err(SinkError::retryable(
                    format!("kafka produce to {}: {e}", self.topic),
                    "kafka-produce-failed",
                )),
            }
        })
    }
}
