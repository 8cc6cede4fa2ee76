//! What the sources of every component share (`kafka::source`, `nats::source`): the URL a source's
//! events are POSTed to and the HTTP client they are POSTed with. Each source runs its attempts with the
//! one retry driver ([`crate::delivery::retry`]) and a [`crate::delivery::SourceBackoff`].

use crate::config::{ObjectKey, SourceSinkConfig};
use crate::http_client::HttpClient;

/// The URL a source's events are POSTed to: `{base}/{namespace}/{name}` for a Broker sink.
pub fn sink_url(sink: &SourceSinkConfig, broker_base_url: &str) -> String {
    match sink {
        SourceSinkConfig::Url(u) => u.clone(),
        SourceSinkConfig::Broker(b) => format!(
            "{}/{}/{}",
            broker_base_url.trim_end_matches('/'),
            b.namespace,
            b.name
        ),
    }
}

/// The sources an `apply` could not start, with why: `Ok` when there are none, else `not_started`'s
/// error for them.
pub(crate) fn started<E>(
    failures: Vec<(ObjectKey, String)>,
    not_started: fn(Vec<(ObjectKey, String)>) -> E,
) -> Result<(), E> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(not_started(failures))
    }
}

/// The HTTP client the sources hand events to a broker's ingress or a `uri` sink with: at most 4 idle
/// connections per host; response bodies are read up to 64 KiB (so that the connection is reused), then
/// dropped.
pub(crate) fn sink_client(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<HttpClient, String> {
    HttpClient::new(4, 64 * 1024, extra_roots)
}
