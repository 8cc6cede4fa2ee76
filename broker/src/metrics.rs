//! Prometheus metrics. (Stub.)
