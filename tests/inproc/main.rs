//! Broker behaviour over real HTTP, with no external service: brokers started in-process on port 0 (and the
//! real binary for a few CLI cases), real HTTP subscribers. One test binary for all of them (linking the
//! whole application once instead of once per file): `cargo test --test inproc`, one module with
//! `cargo test --test inproc delivery::`.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod concurrency;
mod delivery;
mod explain;
mod ingress;
mod routing;
