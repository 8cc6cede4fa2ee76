//! The one outgoing HTTP client: subscriber and dead-letter deliveries (dispatcher) and sources handing
//! events to a broker's ingress or a `uri` sink (`kafka::source`, `nats::source`). Pooled keep-alive connections per host
//! (hyper), http and https (rustls with the Mozilla roots plus extra roots, e.g. `--ca-file`), a
//! per-attempt timeout covering connect, TLS, response and body, and a bounded response body.
//!
//! Behind the `http-client` Cargo feature (on by default): the core built without it has no hyper or
//! rustls.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body as _;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

pub use crate::sink::Response;

/// Why no response was obtained.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No response within the delivery timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("dispatch error: {0}")]
    Transport(String),
    /// The response body exceeded the limit.
    #[error("response body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The destination cannot be used (bad URL, unsupported scheme).
    #[error("invalid destination: {0}")]
    Destination(String),
}

impl SendError {
    /// The error as the sources report it: a transport failure is the bare error chain (without the
    /// dispatcher's `dispatch error:` prefix), anything else its display text.
    pub fn into_detail(self) -> String {
        match self {
            SendError::Transport(s) => s,
            other => other.to_string(),
        }
    }
}

/// Pooled HTTP/1.1 client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_response_bytes: usize,
}

impl HttpClient {
    /// Creates a client; `max_idle_per_host` bounds the pool, `max_response_bytes` the bodies read.
    ///
    /// `https` destinations are verified against the Mozilla root set (webpki-roots) plus `extra_roots`
    /// (e.g. a private CA given with `--ca-file`).
    pub fn new(
        max_idle_per_host: usize,
        max_response_bytes: usize,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<HttpClient, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("invalid CA certificate: {e}"))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(HttpClient {
            inner,
            max_response_bytes,
        })
    }

    /// POSTs `body` with `headers` to `uri`; the timeout covers connect, response and body.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, SendError> {
        self.send(uri, headers.clone(), body, timeout).await
    }

    /// [`HttpClient::post`] taking the headers by value: they move into the request without a copy.
    /// Only `http` and `https` destinations are accepted; a body over the limit is an error.
    pub async fn send(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, SendError> {
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(SendError::Destination(format!(
                "{uri}: only http:// and https:// destinations are supported"
            )));
        }
        let limit = self.max_response_bytes;
        let exchange = async {
            let resp = self.request(uri, headers, body).await?;
            let (parts, body) = resp.into_parts();
            // The common answer (a 202 without a body) needs no collection.
            let body = if body.is_end_stream() {
                Bytes::new()
            } else {
                Limited::new(body, limit)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.downcast_ref::<http_body_util::LengthLimitError>()
                            .is_some()
                        {
                            SendError::BodyTooLarge(limit)
                        } else {
                            SendError::Transport(e.to_string())
                        }
                    })?
                    .to_bytes()
            };
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        within(timeout, exchange).await
    }

    /// One POST for its status and headers only (the sources): the body is read up to the limit so
    /// that the connection can be reused, then dropped — a larger body is not an error. The URI is
    /// taken as configured (no scheme check). Errors are [`SendError::Transport`] or
    /// [`SendError::Timeout`].
    pub async fn send_for_status(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, HeaderMap), SendError> {
        let limit = self.max_response_bytes;
        let exchange = async {
            let resp = self.request(uri, headers, body).await?;
            let (parts, body) = resp.into_parts();
            if !body.is_end_stream() {
                // Drained so that the connection is reused; a larger body is just dropped.
                let _ = Limited::new(body, limit).collect().await;
            }
            Ok((parts.status.as_u16(), parts.headers))
        };
        within(timeout, exchange).await
    }

    async fn request(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;
        self.inner
            .request(req)
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))
    }
}

async fn within<T>(
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<T, SendError>>,
) -> Result<T, SendError> {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Timeout(timeout)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_errors_keep_their_text() {
        assert_eq!(
            SendError::Transport("connection refused".into()).into_detail(),
            "connection refused"
        );
        assert_eq!(
            SendError::Timeout(Duration::from_millis(1500)).into_detail(),
            "no response within 1.5s"
        );
    }

    #[tokio::test]
    async fn only_http_destinations_are_sent() {
        let client = HttpClient::new(1, 1024, &[]).expect("client");
        let uri: Uri = "ftp://example.com/x".parse().expect("uri");
        let e = client
            .send(&uri, HeaderMap::new(), Bytes::new(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, SendError::Destination(_)), "{e}");
    }
}
