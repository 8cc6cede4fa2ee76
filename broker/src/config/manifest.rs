//! Knative manifest serde types. (Stub.)
