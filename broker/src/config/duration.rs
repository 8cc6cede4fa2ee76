//! ISO-8601 durations. (Stub.)
