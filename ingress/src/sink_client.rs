//! The HTTP client sources use to hand events to a broker's ingress or a `uri` sink.

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

/// The HTTP client of the sinks: pooled, http and https (rustls, Mozilla roots + extra roots).
#[derive(Debug, Clone)]
pub(crate) struct SinkClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Response bodies are read (so the connection can be reused) up to this size, then dropped.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

impl SinkClient {
    pub(crate) fn new(extra_roots: &[CertificateDer<'static>]) -> Result<SinkClient, String> {
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
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(SinkClient { inner })
    }

    /// One POST; `Ok` with the status and headers of any response, `Err` with the transport error.
    pub(crate) async fn post(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, HeaderMap), String> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|e| error_chain(&e))?;
            let (parts, body) = resp.into_parts();
            if !body.is_end_stream() {
                // Drained so that the connection is reused; a larger body is just dropped.
                let _ = Limited::new(body, MAX_RESPONSE_BYTES).collect().await;
            }
            Ok((parts.status.as_u16(), parts.headers))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("no response within {timeout:?}")),
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
