//! Loading manifests from files. (Stub.)
