//! TEMPORARY STUB (replaced by the real format module on merge).
#![allow(missing_docs, unused_variables)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatErrorKind {
    Invalid,
    UnsupportedMediaType,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormatError {
    pub kind: FormatErrorKind,
    pub message: String,
    pub field: Option<String>,
}
pub mod http {
    use super::FormatError;
    use crate::event::Event;
    pub enum Message {
        Single(Event),
        Batch(Vec<Event>),
    }
    pub fn parse_request(
        headers: &http::HeaderMap,
        body: bytes::Bytes,
    ) -> Result<Message, FormatError> {
        unimplemented!()
    }
    pub fn parse_response(
        headers: &http::HeaderMap,
        body: bytes::Bytes,
    ) -> Result<Option<Event>, FormatError> {
        unimplemented!()
    }
    pub fn write_binary(event: &Event, headers: &mut http::HeaderMap) -> bytes::Bytes {
        unimplemented!()
    }
    pub fn write_structured(event: &Event, headers: &mut http::HeaderMap) -> bytes::Bytes {
        unimplemented!()
    }
}
pub mod json {
    use super::FormatError;
    use crate::event::Event;
    pub fn parse_event(bytes: &[u8]) -> Result<Event, FormatError> {
        unimplemented!()
    }
    pub fn write_event(event: &Event, out: &mut Vec<u8>) {
        unimplemented!()
    }
}
pub mod validate {
    pub fn is_valid_attribute_name(name: &str) -> bool {
        unimplemented!()
    }
}
