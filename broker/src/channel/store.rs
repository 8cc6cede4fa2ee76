//! The embedded redb channel. (Stub.)
