//! The HTTP client used for subscriber and dead-letter deliveries: pooled keep-alive connections per
//! host (hyper), a per-attempt timeout covering the whole exchange, and a bounded response body.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body as _;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

/// A subscriber's response (body bounded by the client's limit).
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

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
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;
        let limit = self.max_response_bytes;
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| SendError::Transport(error_chain(&e)))?;
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
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
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
