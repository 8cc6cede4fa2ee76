//! The NATS component: everything Switchyard knows about NATS and JetStream, in the same files as every
//! other integration ([`crate::kafka`] has the same headings).
//!
//! # Config
//!
//! Decoded with the other manifests, always compiled (a manifest is validated the same whatever the
//! features): `config/manifest/nats.rs` decodes `NatsSource` and `NatsSink` documents and the JetStream
//! broker ConfigMap settings into the compiled specs of [`crate::config`] ([`crate::config::NatsSourceConfig`],
//! [`crate::config::NatsSinkConfig`], [`crate::config::NatsBrokerConfig`]). It stays in `config/` because
//! the loader calls it and this component reads the specs it builds: in `nats/` the two modules would
//! import each other. [`config`]: the process settings (`NatsOptions`, from the command line) and the
//! names given on a server (`consumer_name`), always compiled too.
//!
//! # Binding
//!
//! [`binding`]: the CloudEvents NATS protocol binding (binary `ce-` headers incl. `ce-datacontenttype`,
//! percent-encoded; structured JSON). Pure, no async-nats types, always compiled (the fuzz targets use
//! it without the feature).
//!
//! # Channel backend
//!
//! `channel` (feature `nats`): JetStream-backed brokers (`broker.class: NatsJetStream`), a driver of the
//! shared log layer (`channel/log.rs`): a stream and one durable pull consumer per broker, per-message
//! acks, probes.
//!
//! # Sink
//!
//! `sink` (feature `nats`): `NatsSink`, a [`crate::sink::Sink`] of the dispatcher: core publish + flush,
//! or JetStream publish + PubAck; a connection per servers, made on first use (`NatsClients`); a failed
//! or timed-out publish is a retryable attempt; no replies.
//!
//! # Source
//!
//! `source` (feature `nats`): NatsSource runners (core NATS with request-reply verdicts, JetStream
//! durable consumer with ack/nak/term), over the shared source helpers of `crate::source`.

pub mod binding;
#[cfg(feature = "nats")]
pub mod channel;
pub mod config;
#[cfg(feature = "nats")]
pub mod sink;
#[cfg(feature = "nats")]
pub mod source;
