//! CloudEvents encodings: JSON format, HTTP binding, validation and the storage codec. (Stub.)
