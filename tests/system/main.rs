//! Switchyard as a real process: the binary started as a child (`kill -9`, SIGTERM, CLI, scale-out, see
//! `process`) and in Kubernetes mode against a real kube-apiserver + etcd (`kubernetes`; one control plane
//! for this test binary, started on first use by `common::k8s`, needs `.ci/k8s-testbed.sh`). One test
//! binary: `cargo test --test system`, one module with `cargo test --test system kubernetes::`.

#[path = "../common/mod.rs"]
mod common;

mod kubernetes;
mod process;
