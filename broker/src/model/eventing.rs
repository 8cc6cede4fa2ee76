//! Knative Eventing's `eventing.knative.dev/v1` Broker and Trigger `spec`s and the duck types they use
//! (`KReference`, `Destination`, `DeliverySpec`), with Knative's field names. The standalone loader and the
//! Kubernetes CRDs (`switchyard-kube`, whose custom resources wrap these specs) share them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `spec` of a Broker. `config` and the class annotation are immutable; `delivery` may change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrokerSpec {
    /// Reference to the broker's configuration, typically a ConfigMap (Kafka or JetStream settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    /// Delivery defaults for the broker's triggers (a trigger that sets any delivery field replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// `spec` of a Trigger. `broker` is required and immutable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// Name of the Broker in the Trigger's namespace.
    #[serde(default)]
    pub broker: String,
    /// Cross-namespace broker reference (Knative alpha feature; not supported by Switchyard, reported as
    /// a status condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_ref: Option<KReference>,
    /// Legacy exact-match attribute filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    /// SubscriptionsAPI filters (`exact`, `prefix`, `suffix`, `all`, `any`, `not`, `cesql`); nested, so
    /// the schema keeps them as free-form objects and Switchyard validates them itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::model::schema::free_form_object_list")
    )]
    pub filters: Vec<serde_json::Value>,
    /// Where matching events go.
    pub subscriber: Destination,
    /// Delivery options (retries, backoff, timeout, dead-letter sink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// `spec.filter` of a Trigger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TriggerFilter {
    /// Attribute name → exact value (empty value: attribute must be present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// A Knative `KReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct KReference {
    /// Kind of the referent.
    pub kind: String,
    /// Namespace of the referent (defaults to the referrer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the referent.
    pub name: String,
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// API group of the referent (Knative's alternative to `apiVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Name of one of the referent's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A Knative `Destination`: `ref`, `uri`, or `ref` plus a relative `uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Destination {
    /// Reference to an addressable object (a Service, or anything with `status.address.url`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    /// Absolute URL, or a URL relative to `ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// PEM CA certificates for an https destination.
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// OIDC audience of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// A Knative `DeliverySpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Where events go when retries are exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    /// `linear` or `exponential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<String>,
    /// ISO-8601 duration, the backoff unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// ISO-8601 duration, cap on the backoff (a Switchyard extension the standalone loader reads; not in
    /// the CRD schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub backoff_max: Option<String>,
    /// ISO-8601 duration, per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// ISO-8601 duration, cap on a subscriber's Retry-After.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
    /// `json` (structured) or `binary` content mode toward subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}
