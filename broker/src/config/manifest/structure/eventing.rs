//! Pass 1 for `eventing.knative.dev/v1` Broker and Trigger and the `v1` ConfigMap.

use super::destination::{config_ref, delivery, destination, Context};
use super::filter::{attributes, filters};
use super::top::{metadata, resource, type_meta};
use crate::config::manifest::fields::*;
use crate::config::manifest::shape::Shape;
use crate::model::eventing::{BrokerSpec, TriggerFilter, TriggerSpec};
use crate::model::object::{ConfigMap, Resource};
use serde_yaml::Value;
use std::collections::BTreeMap;

pub(super) fn broker(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
) -> Option<Resource<BrokerSpec>> {
    resource(ctx, v, shape, |ctx, top, shape| {
        let mut spec = BrokerSpec::default();
        if let Some(s) = top.get("spec") {
            match Obj::new(ctx, "spec", s, &["config", "delivery"]) {
                Some(s) => {
                    if let Some(d) = s.get("delivery") {
                        spec.delivery = delivery(ctx, "spec.delivery", d, shape);
                    }
                    if let Some(c) = s.get("config") {
                        spec.config = config_ref(ctx, c, shape);
                    }
                }
                None => shape.unusable("spec"),
            }
        }
        spec
    })
}

pub(super) fn configmap(ctx: &mut Ctx<'_>, v: &Value, shape: &mut Shape) -> Option<ConfigMap> {
    let top = Obj::new(
        ctx,
        TOP_PATH,
        v,
        &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "binaryData",
            "immutable",
        ],
    )?;
    let (api_version, kind) = type_meta(&top);
    let metadata = metadata(ctx, top.map, shape);
    let mut data = BTreeMap::new();
    match top.get("data") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    ctx.err("data", format!("keys must be strings, got {k:?}"));
                    continue;
                };
                match v {
                    Value::String(s) => {
                        data.insert(k.to_owned(), s.clone());
                    }
                    other => ctx.err(
                        &join("data", k),
                        format!("must be a string (quote it), got {}", kind_of(other)),
                    ),
                }
            }
        }
        Some(other) => ctx.err("data", format!("must be an object, got {}", kind_of(other))),
    }
    Some(ConfigMap {
        api_version,
        kind,
        metadata,
        data,
    })
}

/// A Trigger. A missing or unusable `spec` is noted as `spec` (nothing in it is decoded).
pub(super) fn trigger(
    ctx: &mut Ctx<'_>,
    v: &Value,
    shape: &mut Shape,
) -> Option<Resource<TriggerSpec>> {
    resource(ctx, v, shape, |ctx, top, shape| {
        trigger_spec(ctx, top, shape).unwrap_or_else(|| {
            shape.unusable("spec");
            TriggerSpec::default()
        })
    })
}

fn trigger_spec(ctx: &mut Ctx<'_>, top: &Obj<'_>, shape: &mut Shape) -> Option<TriggerSpec> {
    let spec_v = required(ctx, "spec", top.get("spec"), "broker and subscriber")?;
    let spec = Obj::new(
        ctx,
        "spec",
        spec_v,
        &[
            "broker",
            "brokerRef",
            "filter",
            "filters",
            "subscriber",
            "delivery",
        ],
    )?;
    let mut out = TriggerSpec::default();
    // `brokerRef` is not supported in standalone mode: only whether it is there matters.
    if let Some(r) = spec.get("brokerRef") {
        out.broker_ref = Some(serde_yaml::from_value(r.clone()).unwrap_or_default());
    }
    match spec.get("broker") {
        Some(b) => {
            shape.given("spec.broker");
            match string(ctx, "spec.broker", b) {
                Some(s) => out.broker = s.to_owned(),
                None => shape.unusable("spec.broker"),
            }
        }
        None => {
            shape.unusable("spec.broker");
            if out.broker_ref.is_none() {
                ctx.err("spec.broker", "required");
            }
        }
    }

    let errors_before = ctx.errors.len();
    if let Some(f) = spec.get("filter") {
        if let Some(obj) = Obj::new(ctx, "spec.filter", f, &["attributes"]) {
            let attrs = obj
                .get("attributes")
                .and_then(|a| attributes(ctx, "spec.filter.attributes", a));
            out.filter = Some(TriggerFilter { attributes: attrs });
        }
    }
    if let Some(list) = spec.get("filters") {
        out.filters = filters(ctx, "spec.filters", list, shape);
    }
    if ctx.errors.len() != errors_before {
        shape.unusable("spec.filter");
    }

    match spec.get("subscriber") {
        Some(s) => {
            out.subscriber = destination(ctx, "spec.subscriber", s, Context::Subscriber, shape)
                .unwrap_or_default();
        }
        None => {
            ctx.err("spec.subscriber", "required (uri)");
            shape.unusable("spec.subscriber");
        }
    }
    if let Some(d) = spec.get("delivery") {
        out.delivery = delivery(ctx, "spec.delivery", d, shape);
    }
    Some(out)
}
