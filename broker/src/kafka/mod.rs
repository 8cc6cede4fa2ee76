//! The Kafka component: everything Switchyard knows about Kafka, in the same files as every other
//! integration ([`crate::nats`] has the same headings).
//!
//! # Config
//!
//! Decoded with the other manifests, always compiled (a manifest is validated the same whatever the
//! features): `config/manifest/kafka.rs` decodes `KafkaSource` and `KafkaSink` documents and the Kafka
//! broker ConfigMap settings into the compiled specs of [`crate::config`] ([`crate::config::KafkaSourceConfig`],
//! [`crate::config::KafkaSinkConfig`], [`crate::config::KafkaBrokerConfig`]). It stays in `config/` because
//! the loader calls it and this component reads the specs it builds: in `kafka/` the two modules would
//! import each other. [`config`]: the process settings (`KafkaOptions`, from the command line) and the
//! names given in a cluster (`consumer_group`), always compiled too.
//!
//! # Binding
//!
//! [`binding`]: the CloudEvents Kafka protocol binding (binary and structured records, `partitionkey` as
//! the key, Knative's wrapping of records that are not CloudEvents). Pure, no rdkafka types, always
//! compiled (the fuzz targets use it without the feature).
//!
//! # Channel backend
//!
//! `channel` (feature `kafka`): Kafka-backed brokers (`broker.class: Kafka`), a driver of the shared log
//! layer (`channel/log.rs`): one consumer group per broker, offset tracking, probes, and the producer
//! pool (`Producers`) shared with the KafkaSinks.
//!
//! # Sink
//!
//! `sink` (feature `kafka`): `KafkaSink`, a [`crate::sink::Sink`] of the dispatcher: produce to a topic
//! through the producer pool shared with the Kafka-backed brokers; a failed or timed-out produce is a
//! retryable attempt; no replies.
//!
//! # Source
//!
//! `source` (feature `kafka`): KafkaSource runners (consume a topic, decode or wrap each record, POST it
//! to the broker's ingress or a `uri`, commit only what was accepted, back off on 429/503), over the
//! shared source helpers of `crate::source`.

pub mod binding;
#[cfg(feature = "kafka")]
pub mod channel;
pub mod config;
#[cfg(feature = "kafka")]
pub mod sink;
#[cfg(feature = "kafka")]
pub mod source;
