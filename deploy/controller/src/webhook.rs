//! The validating admission webhook: Knative's webhook rules for Brokers and Triggers, enforced when
//! an object is written (`kubectl apply` fails with the field path), with the same checks as local
//! files and as the controller's `SpecValid` condition (which stays as the safety net for objects
//! written while the webhook was not installed or not reachable).
//!
//! - Broker (of this installation's class): the standalone loader's checks; on UPDATE the class
//!   annotation and `spec.config` must not change.
//! - Trigger (whose Broker is ours, or missing and the default class is ours): filters (attribute names,
//!   one dialect per filter, CESQL parses), delivery, subscriber shape; on UPDATE `spec.broker` must not
//!   change; `brokerRef` is refused.
//!
//! Serving: HTTPS with a certificate this module issues from its own CA ([`certificate`]); the CA and
//! the serving pair live in a Secret shared by the controller replicas, and the CA is written into the
//! `caBundle` of the ValidatingWebhookConfiguration, like Knative's webhook does.

use crate::crd::{Broker, Trigger};
use crate::manifest::{
    broker_class, broker_manifest, owns_broker, problems_of, trigger_manifest, PLACEHOLDER_URL,
};
use crate::resolve::is_absolute_http;
use crate::{Error, Settings};
use axum::extract::State;
use axum::Json;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Path the API server posts AdmissionReviews to.
pub const PATH: &str = "/validate";

/// Where the webhook serves and how it is known to the API server.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Names (DNS or IP) the serving certificate is valid for.
    pub hosts: Vec<String>,
    /// Secret (in the system namespace) holding the CA and the serving pair.
    pub secret: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` is kept current.
    pub configuration: String,
}

/// The problems of a Broker write (empty: allowed). `old` is the stored object on UPDATE.
pub fn broker_problems(new: &Broker, old: Option<&Broker>, settings: &Settings) -> Vec<String> {
    if !owns_broker(new, settings) && old.is_none_or(|o| !owns_broker(o, settings)) {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if let Some(old) = old {
        let (was, is) = (broker_class(old, settings), broker_class(new, settings));
        if was != is {
            problems.push(format!(
                "metadata.annotations: {} is immutable (was {was:?}, now {is:?})",
                switchyard_broker::config::manifest::BROKER_CLASS_ANNOTATION
            ));
        }
        if old.spec.config != new.spec.config {
            problems.push("spec.config is immutable".to_owned());
        }
    }
    if owns_broker(new, settings) {
        let subject = "Broker".to_owned();
        let doc = broker_manifest(new, Some(PLACEHOLDER_URL));
        // The referenced ConfigMap may be created later: its checks belong to the controller.
        problems.extend(
            problems_of(&subject, &[(subject.clone(), doc)])
                .into_iter()
                .filter(|p| !p.starts_with("spec.config:")),
        );
    }
    problems
}

fn destination_problems(path: &str, d: &crate::crd::Destination) -> Option<String> {
    match (&d.reference, d.uri.as_deref()) {
        (None, None) => Some(format!("{path}: set uri or ref")),
        (None, Some(u)) if !is_absolute_http(u) => Some(format!(
            "{path}.uri: {u:?} is not an absolute http(s) URL (a relative uri needs a ref)"
        )),
        (Some(_), Some(u)) if is_absolute_http(u) => {
            Some(format!("{path}.uri: must be relative when ref is set"))
        }
        (Some(r), _) if r.name.is_empty() || r.kind.is_empty() => {
            Some(format!("{path}.ref: kind and name are required"))
        }
        _ => None,
    }
}

/// The problems of a Trigger write (empty: allowed). `broker` is the Trigger's Broker if it exists.
pub fn trigger_problems(
    new: &Trigger,
    old: Option<&Trigger>,
    broker: Option<&Broker>,
    settings: &Settings,
) -> Vec<String> {
    let ours = match broker {
        Some(b) => owns_broker(b, settings),
        None => settings.default_broker_class == settings.broker_class,
    };
    if !ours {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if let Some(old) = old {
        if old.spec.broker != new.spec.broker {
            problems.push(format!(
                "spec.broker is immutable (was {:?}, now {:?})",
                old.spec.broker, new.spec.broker
            ));
        }
    }
    if new.spec.broker_ref.is_some() {
        problems.push(
            "spec.brokerRef: cross-namespace brokers are not supported; use spec.broker".into(),
        );
    }
    problems.extend(destination_problems(
        "spec.subscriber",
        &new.spec.subscriber,
    ));
    if let Some(d) = new
        .spec
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_sink.as_ref())
    {
        problems.extend(destination_problems("spec.delivery.deadLetterSink", d));
    }
    let subject = "Trigger".to_owned();
    let doc = trigger_manifest(new, PLACEHOLDER_URL, Some(PLACEHOLDER_URL));
    problems.extend(problems_of(&subject, &[(subject.clone(), doc)]));
    problems
}

fn decode<K: serde::de::DeserializeOwned>(o: &DynamicObject) -> Result<K, String> {
    let v = serde_json::to_value(o).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("cannot decode the object: {e}"))
}

/// Decides one AdmissionRequest. `lookup` finds a Trigger's Broker (by namespace and name).
pub async fn decide<F, Fut>(
    req: &AdmissionRequest<DynamicObject>,
    settings: &Settings,
    lookup: F,
) -> AdmissionResponse
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Broker>, kube::Error>>,
{
    let response = AdmissionResponse::from(req);
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return response;
    }
    let Some(obj) = &req.object else {
        return response;
    };
    let problems = match req.kind.kind.as_str() {
        "Broker" => match (
            decode::<Broker>(obj),
            req.old_object.as_ref().map(decode::<Broker>).transpose(),
        ) {
            (Ok(new), Ok(old)) => broker_problems(&new, old.as_ref(), settings),
            (Err(e), _) | (_, Err(e)) => vec![e],
        },
        "Trigger" => match (
            decode::<Trigger>(obj),
            req.old_object.as_ref().map(decode::<Trigger>).transpose(),
        ) {
            (Ok(new), Ok(old)) => {
                let ns = new.namespace().unwrap_or_else(|| "default".into());
                let broker = if new.spec.broker.is_empty() {
                    Ok(None)
                } else {
                    lookup(ns, new.spec.broker.clone()).await
                };
                match broker {
                    Ok(b) => trigger_problems(&new, old.as_ref(), b.as_ref(), settings),
                    // Cannot tell whose trigger it is: allow; the controller reports problems.
                    Err(e) => {
                        tracing::warn!(error = %e, "Webhook: cannot read the Trigger's Broker; allowing.");
                        Vec::new()
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => vec![e],
        },
        _ => Vec::new(),
    };
    if problems.is_empty() {
        response
    } else {
        response.deny(problems.join("; "))
    }
}

#[derive(Clone)]
struct AppState {
    client: Client,
    settings: Settings,
    metrics: Arc<crate::metrics::ControllerMetrics>,
}

async fn validate(
    State(s): State<AppState>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return Json(AdmissionResponse::invalid(e.to_string()).into_review());
        }
    };
    let client = s.client.clone();
    let response = decide(&req, &s.settings, move |ns, name| async move {
        Api::<Broker>::namespaced(client, &ns).get_opt(&name).await
    })
    .await;
    s.metrics.reviewed(&req.kind.kind, response.allowed);
    Json(response.into_review())
}

/// The CA (PEM) and serving pair (cert PEM, key PEM) for `hosts`.
pub fn issue(hosts: &[String]) -> Result<(String, String, String), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "switchyard-webhook-ca");
    let ca_key = KeyPair::generate()?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key)?;
    let mut leaf = CertificateParams::new(hosts.to_vec())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        hosts.first().cloned().unwrap_or_default(),
    );
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca)?;
    Ok((ca.pem(), leaf_cert.pem(), leaf_key.serialize_pem()))
}

const HOSTS_ANNOTATION: &str = "switchyard.dev/webhook-hosts";

fn secret_data(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// The webhook's certificates: read from the Secret, or issued and stored there (the first replica
/// wins a create race; the others read its Secret). Returns (CA PEM, cert PEM, key PEM).
pub async fn certificate(
    client: &Client,
    settings: &Settings,
    webhook: &WebhookSettings,
) -> Result<(String, String, String), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.system_namespace);
    let hosts = webhook.hosts.join(",");
    for _ in 0..3 {
        let existing = api.get_opt(&webhook.secret).await?;
        if let Some(s) = &existing {
            let same_hosts = s.annotations().get(HOSTS_ANNOTATION) == Some(&hosts);
            if let (true, Some(ca), Some(crt), Some(key)) = (
                same_hosts,
                secret_data(s, "ca.crt"),
                secret_data(s, "tls.crt"),
                secret_data(s, "tls.key"),
            ) {
                return Ok((ca, crt, key));
            }
        }
        let (ca, crt, key) =
            issue(&webhook.hosts).map_err(|e| Error::ClientConfig(format!("issuing: {e}")))?;
        let data: BTreeMap<String, ByteString> =
            [("ca.crt", &ca), ("tls.crt", &crt), ("tls.key", &key)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.clone().into_bytes())))
                .collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(webhook.secret.clone()),
                annotations: Some([(HOSTS_ANNOTATION.to_owned(), hosts.clone())].into()),
                resource_version: existing
                    .as_ref()
                    .and_then(|s| s.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            data: Some(data),
            type_: Some("kubernetes.io/tls".into()),
            ..Secret::default()
        };
        let written = match existing {
            None => api.create(&PostParams::default(), &secret).await,
            Some(_) => {
                api.replace(&webhook.secret, &PostParams::default(), &secret)
                    .await
            }
        };
        match written {
            Ok(_) => return Ok((ca, crt, key)),
            // Another replica wrote it first: use theirs.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::ClientConfig(
        "the webhook certificate Secret keeps changing".into(),
    ))
}

/// Writes the CA into every webhook of the ValidatingWebhookConfiguration (if it is installed).
pub async fn publish_ca(
    client: &Client,
    webhook: &WebhookSettings,
    ca_pem: &str,
) -> Result<bool, Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for _ in 0..3 {
        let Some(mut config) = api.get_opt(&webhook.configuration).await? else {
            return Ok(false);
        };
        let bundle = ByteString(ca_pem.as_bytes().to_vec());
        let mut changed = false;
        for w in config.webhooks.iter_mut().flatten() {
            if w.client_config.ca_bundle.as_ref() != Some(&bundle) {
                w.client_config.ca_bundle = Some(bundle.clone());
                changed = true;
            }
        }
        if !changed {
            return Ok(true);
        }
        match api
            .replace(&webhook.configuration, &PostParams::default(), &config)
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

fn tls_config(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("webhook certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("webhook key: {e}"))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("webhook TLS: {e}"))
}

/// A TLS listener for axum: handshakes (bounded in time) before handing a connection over.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Webhook: accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, peer = %addr, "Webhook: TLS handshake failed.")
                }
                Err(_) => tracing::debug!(peer = %addr, "Webhook: TLS handshake timed out."),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Largest AdmissionReview accepted (the API server's own request limit is 3 MiB).
const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// Issues or loads the certificate, publishes the CA, and serves the webhook until `stop` fires.
/// Every controller replica serves it (validation needs no leadership).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<crate::metrics::ControllerMetrics>,
    webhook: WebhookSettings,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<(), Error> {
    let (ca, crt, key) = certificate(&client, &settings, &webhook).await?;
    let tls = tls_config(&crt, &key).map_err(Error::ClientConfig)?;
    // The configuration may be created (or re-applied without a caBundle) after start: keep it current.
    let publisher = {
        let (client, webhook, stop) = (client.clone(), webhook.clone(), stop.clone());
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                match publish_ca(&client, &webhook, &ca).await {
                    Ok(true) => warned = false,
                    Ok(false) if !warned => {
                        warned = true;
                        tracing::warn!(
                            configuration = %webhook.configuration,
                            "ValidatingWebhookConfiguration not found yet: the API server does not call the webhook."
                        );
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "Could not publish the webhook CA."),
                }
                tokio::select! {
                    _ = tokio::time::sleep(CA_PUBLISH_INTERVAL) => {}
                    _ = stop.cancelled() => return,
                }
            }
        })
    };
    let app = axum::Router::new()
        .route(PATH, axum::routing::post(validate))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(AppState {
            client,
            settings,
            metrics,
        });
    let listener = TlsListener {
        tcp: listener,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
    };
    tracing::info!(listen = %webhook.listen, "Validating webhook serving.");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
        })
        .await
        .map_err(|e| Error::ClientConfig(format!("webhook server: {e}")));
    publisher.abort();
    served
}

/// How often the CA is checked in the ValidatingWebhookConfiguration.
pub const CA_PUBLISH_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(
        kind: &str,
        operation: &str,
        object: serde_json::Value,
        old: Option<serde_json::Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "eventing.knative.dev", "version": "v1", "kind": kind},
                "resource": {"group": "eventing.knative.dev", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
                "operation": operation,
                "userInfo": {},
                "object": object,
                "oldObject": old,
                "dryRun": false,
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn trigger(broker: &str, filter_key: &str, subscriber: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "t", "namespace": "ns"},
               "spec": {"broker": broker, "filter": {"attributes": {filter_key: "x"}}, "subscriber": subscriber}})
    }

    fn broker(class: &str, config: Option<&str>) -> serde_json::Value {
        let mut spec = json!({});
        if let Some(c) = config {
            spec["config"] = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": c});
        }
        json!({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
               "metadata": {"name": "b", "namespace": "ns",
                            "annotations": {"eventing.knative.dev/broker.class": class}},
               "spec": spec})
    }

    async fn no_broker(_: String, _: String) -> Result<Option<Broker>, kube::Error> {
        Ok(None)
    }

    async fn decide_with(
        req: AdmissionRequest<DynamicObject>,
        broker: Option<serde_json::Value>,
    ) -> AdmissionResponse {
        let b: Option<Broker> = broker.map(|b| serde_json::from_value(b).unwrap());
        decide(&req, &Settings::default(), move |_, _| async move { Ok(b) }).await
    }

    #[tokio::test]
    async fn valid_objects_are_allowed() {
        let r = decide(
            &request(
                "Trigger",
                "CREATE",
                trigger("b", "type", json!({"uri": "http://s"})),
                None,
            ),
            &Settings::default(),
            no_broker,
        )
        .await;
        assert!(r.allowed, "{:?}", r.result);
        let r = decide_with(
            request("Broker", "CREATE", broker("Switchyard", None), None),
            None,
        )
        .await;
        assert!(r.allowed, "{:?}", r.result);
    }

    #[tokio::test]
    async fn knative_webhook_rules_are_enforced_with_field_paths() {
        let r = decide(
            &request(
                "Trigger",
                "CREATE",
                trigger("b", "Type", json!({"uri": "http://s"})),
                None,
            ),
            &Settings::default(),
            no_broker,
        )
        .await;
        assert!(!r.allowed);
        assert!(
            r.result
                .message
                .starts_with("spec.filter.attributes: key \"Type\""),
            "{}",
            r.result.message
        );

        let r = decide(
            &request(
                "Trigger",
                "CREATE",
                trigger("b", "type", json!({"uri": "/relative"})),
                None,
            ),
            &Settings::default(),
            no_broker,
        )
        .await;
        assert!(!r.allowed);
        assert!(
            r.result.message.contains("spec.subscriber.uri"),
            "{}",
            r.result.message
        );

        let mut two_dialects = trigger("b", "type", json!({"uri": "http://s"}));
        two_dialects["spec"]["filters"] =
            json!([{"exact": {"type": "a"}, "prefix": {"type": "b"}}]);
        let r = decide(
            &request("Trigger", "CREATE", two_dialects, None),
            &Settings::default(),
            no_broker,
        )
        .await;
        assert!(!r.allowed);
        assert!(
            r.result.message.contains("spec.filters[0]"),
            "{}",
            r.result.message
        );
    }

    #[tokio::test]
    async fn immutable_fields_cannot_change() {
        let old = trigger("b", "type", json!({"uri": "http://s"}));
        let new = trigger("c", "type", json!({"uri": "http://s"}));
        let r = decide(
            &request("Trigger", "UPDATE", new, Some(old)),
            &Settings::default(),
            no_broker,
        )
        .await;
        assert!(!r.allowed);
        assert_eq!(
            r.result.message,
            "spec.broker is immutable (was \"b\", now \"c\")"
        );

        let r = decide_with(
            request(
                "Broker",
                "UPDATE",
                broker("Switchyard", Some("c2")),
                Some(broker("Switchyard", Some("c1"))),
            ),
            None,
        )
        .await;
        assert!(!r.allowed);
        assert_eq!(r.result.message, "spec.config is immutable");

        let r = decide_with(
            request(
                "Broker",
                "UPDATE",
                broker("MTChannelBasedBroker", None),
                Some(broker("Switchyard", None)),
            ),
            None,
        )
        .await;
        assert!(!r.allowed);
        assert!(
            r.result
                .message
                .contains("is immutable (was \"Switchyard\", now \"MTChannelBasedBroker\")"),
            "{}",
            r.result.message
        );
    }

    #[tokio::test]
    async fn other_classes_are_not_judged() {
        let r = decide_with(
            request(
                "Broker",
                "CREATE",
                broker("MTChannelBasedBroker", None),
                None,
            ),
            None,
        )
        .await;
        assert!(r.allowed);
        // A trigger of a Knative broker may use whatever Knative accepts.
        let r = decide_with(
            request(
                "Trigger",
                "CREATE",
                trigger("b", "Type", json!({"uri": "http://s"})),
                None,
            ),
            Some(broker("MTChannelBasedBroker", None)),
        )
        .await;
        assert!(r.allowed);
        // Deletes are never blocked.
        let r = decide(
            &request(
                "Trigger",
                "DELETE",
                trigger("b", "Type", json!({"uri": "http://s"})),
                None,
            ),
            &Settings::default(),
            no_broker,
        )
        .await;
        assert!(r.allowed);
    }

    #[test]
    fn issued_certificates_chain_to_the_ca_and_name_the_hosts() {
        let (ca, crt, key) =
            issue(&["switchyard-webhook.sys.svc".into(), "127.0.0.1".into()]).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(crt.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        assert_ne!(ca, crt);
        tls_config(&crt, &key).expect("a usable serving pair");
    }
}
