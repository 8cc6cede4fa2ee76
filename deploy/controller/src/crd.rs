//! Rust types of Knative Eventing's `eventing.knative.dev/v1` Broker and Trigger, schema-compatible with
//! Knative's own CRDs (same fields, same status shape), so that Switchyard works in a cluster with or
//! without Knative installed. `crdgen` renders them into `deploy/crds/`; a test fails when the files drift.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use switchyard_broker::model::eventing as model;
pub use switchyard_broker::model::eventing::{
    DeliverySpec, Destination, KReference, TriggerFilter,
};

/// A custom resource whose `spec` is the model's (`switchyard_broker::model`) spec, flattened (the CRD
/// has exactly its fields), with `Deref`/`DerefMut` to it and `From` it. Every kind is namespaced and
/// prints its own columns, then `Age`, `Ready` and `Reason` (`age: first`) or `Ready`, `Reason` and `Age`
/// (`age: last`).
macro_rules! custom_resource {
    (
        $(#[$doc:meta])*
        $wrapper:ident($model:ty) {
            group: $group:tt, version: $version:tt,
            kind: $kind:tt, status: $status:tt,
            categories: [$($category:tt),*],
            columns: [$($column:tt),*],
            age: $age:ident $(,)?
        }
    ) => {
        custom_resource!(@columns $age
            [$(#[$doc])* $wrapper($model) [$group, $version, $kind, $status] [$($category),*]]
            [$($column),*]);
    };
    (@columns first [$($head:tt)*] [$($column:tt),*]) => {
        custom_resource!(@emit $($head)* [$($column,)*
            r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
            r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
            r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#]);
    };
    (@columns last [$($head:tt)*] [$($column:tt),*]) => {
        custom_resource!(@emit $($head)* [$($column,)*
            r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
            r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
            r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#]);
    };
    (@emit $(#[$doc:meta])* $wrapper:ident($model:ty) [$group:tt, $version:tt, $kind:tt, $status:tt]
        [$($category:tt),*] [$($column:tt),*]) => {
        $(#[$doc])*
        #[derive(
            kube::CustomResource,
            Debug,
            Clone,
            Default,
            PartialEq,
            serde::Serialize,
            serde::Deserialize,
            schemars::JsonSchema,
        )]
        #[kube(
            group = $group,
            version = $version,
            kind = $kind,
            namespaced,
            status = $status,
            $(category = $category,)*
            $(printcolumn = $column,)*
        )]
        pub struct $wrapper {
            /// The model's spec (`switchyard_broker::model`), flattened: the CRD has exactly its fields.
            #[serde(flatten)]
            pub spec: $model,
        }

        impl std::ops::Deref for $wrapper {
            type Target = $model;
            fn deref(&self) -> &$model {
                &self.spec
            }
        }

        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut $model {
                &mut self.spec
            }
        }

        impl From<$model> for $wrapper {
            fn from(spec: $model) -> $wrapper {
                $wrapper { spec }
            }
        }
    };
}
pub(crate) use custom_resource;

custom_resource! {
    /// `spec` of a Broker. `config` and the class annotation are immutable; `delivery` may change.
    BrokerSpec(model::BrokerSpec) {
        group: "eventing.knative.dev", version: "v1",
        kind: "Broker", status: "BrokerStatus",
        categories: ["all", "knative", "eventing"],
        columns: [r#"{"name":"URL","type":"string","jsonPath":".status.address.url"}"#],
        age: first,
    }
}

custom_resource! {
    /// `spec` of a Trigger. `broker` is required and immutable.
    TriggerSpec(model::TriggerSpec) {
        group: "eventing.knative.dev", version: "v1",
        kind: "Trigger", status: "TriggerStatus",
        categories: ["all", "knative", "eventing"],
        columns: [
            r#"{"name":"Broker","type":"string","jsonPath":".spec.broker"}"#,
            r#"{"name":"Subscriber_URI","type":"string","jsonPath":".status.subscriberUri"}"#
        ],
        age: first,
    }
}

/// A namespaced Kubernetes object the controller reads and writes whole (its status included).
pub trait NamespacedObject:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> NamespacedObject for K where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

/// A Knative status condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type (`Ready`, `Addressable`, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// `Error`, `Warning` or `Info` (empty means Error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// RFC 3339 time of the last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// One-word CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An address (`status.address`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Addressable {
    /// Name of the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URL events are sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM CA certificates of an https address.
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// OIDC audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// `status` of a Broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and its dependent conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Status annotations (Switchyard records the immutable fields it first saw here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The broker's ingress address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// All addresses (Switchyard has one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
    /// Resolved `spec.delivery.deadLetterSink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// CA certificates of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// OIDC audience of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
    /// Applied EventPolicies (Knative; Switchyard applies none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "switchyard_broker::model::schema::free_form_object_list")]
    pub policies: Vec<serde_json::Value>,
}

/// `status` of a Trigger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and its dependent conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Status annotations (Switchyard records the immutable `spec.broker` it first saw here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Resolved subscriber URL (empty when it cannot be resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    /// CA certificates of the subscriber.
    #[serde(
        default,
        rename = "subscriberCACerts",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscriber_ca_certs: Option<String>,
    /// OIDC audience of the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_audience: Option<String>,
    /// Resolved dead-letter sink of the delivery in force (the trigger's, else the broker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
    /// CA certificates of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_ca_certs: Option<String>,
    /// OIDC audience of the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_audience: Option<String>,
    /// OIDC identity (Knative; unused by Switchyard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "switchyard_broker::model::schema::free_form_object")]
    pub auth: Option<serde_json::Value>,
}
