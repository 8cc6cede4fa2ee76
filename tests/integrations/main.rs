//! Kafka and NATS integrations against real servers: a tansu (Kafka protocol) or `nats-server -js` child
//! process per test on a free loopback port (`common::kafka`, `common::nats`). These tests fail — never
//! skip — without the servers (`.ci/kafka-testbed.sh`, `.ci/nats-testbed.sh`). One test binary:
//! `cargo test --test integrations`, one module with e.g. `cargo test --test integrations kafka_broker::`.
//!
//! Tests that use `common::kafka::Kafka` run one at a time within this binary (see `Kafka::_serial`); the
//! others run in parallel with them as usual.

#[path = "../common/mod.rs"]
mod common;

mod kafka_broker;
mod kafka_source;
mod kafka_testbed;
mod nats_broker;
mod nats_sink;
mod nats_source;
mod nats_testbed;
