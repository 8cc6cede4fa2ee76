//! Pass 2 for a Trigger: annotations, broker, filters, subscriber, delivery.

use super::destination::{delivery, destination};
use super::filter::trigger_filter;
use super::meta::{metadata, namespace_or_default};
use crate::config::manifest::fields::Ctx;
use crate::config::manifest::shape::Shape;
use crate::config::rules::is_dns1123_label;
use crate::config::{
    BrokerKey, DeliveryOrder, TriggerConfig, TriggerKey, DEFAULT_MAX_INFLIGHT,
    DELIVERY_ORDER_ANNOTATION, MAX_INFLIGHT_ANNOTATION,
};
use crate::model::eventing as model;
use crate::model::object::Resource;

pub(super) fn trigger(
    ctx: &mut Ctx<'_>,
    t: &Resource<model::TriggerSpec>,
    shape: &Shape,
) -> Option<TriggerConfig> {
    let meta = metadata(ctx, &t.metadata, shape);
    let max_inflight = meta
        .as_ref()
        .and_then(|m| m.positive_annotation(ctx, MAX_INFLIGHT_ANNOTATION))
        .map_or(DEFAULT_MAX_INFLIGHT, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let delivery_order = match meta
        .as_ref()
        .and_then(|m| m.annotation(DELIVERY_ORDER_ANNOTATION))
    {
        None => DeliveryOrder::Unordered,
        Some(Some(o)) if o == "unordered" => DeliveryOrder::Unordered,
        Some(Some(o)) if o == "ordered" => DeliveryOrder::Ordered,
        Some(other) => {
            let got = other.map_or_else(|| "a non-string value".to_owned(), |o| format!("{o:?}"));
            ctx.err(
                "metadata.annotations",
                format!(
                    "{DELIVERY_ORDER_ANNOTATION:?} must be \"ordered\" or \"unordered\" (the default), \
                     got {got}"
                ),
            );
            DeliveryOrder::Unordered
        }
    };
    if shape.is_unusable("spec") {
        return None;
    }
    let spec = &t.spec;

    let broker_given = shape.is_given("spec.broker");
    let broker = if !broker_given {
        if spec.broker_ref.is_some() {
            ctx.err(
                "spec.brokerRef",
                "cross-namespace brokerRef is not supported in standalone mode; use broker",
            );
        }
        None
    } else if shape.is_unusable("spec.broker") {
        None
    } else if is_dns1123_label(&spec.broker) {
        Some(spec.broker.clone())
    } else {
        ctx.err(
            "spec.broker",
            format!("{:?} is not a valid broker name", spec.broker),
        );
        None
    };
    if broker_given && spec.broker_ref.is_some() {
        ctx.err(
            "spec.brokerRef",
            "broker and brokerRef are mutually exclusive",
        );
    }

    let filter = trigger_filter(ctx, spec, shape);

    let subscriber = if shape.is_unusable("spec.subscriber") {
        None
    } else {
        let ns = namespace_or_default(&meta);
        destination(ctx, "spec.subscriber", &spec.subscriber, Some(ns), shape)
    };

    let delivery = spec
        .delivery
        .as_ref()
        .and_then(|d| delivery(ctx, "spec.delivery", d, shape));

    let meta = meta?;
    Some(TriggerConfig {
        broker: BrokerKey::new(meta.namespace.clone(), broker?),
        key: TriggerKey::new(meta.namespace, meta.name),
        filter: filter?,
        subscriber: subscriber?,
        delivery,
        max_inflight,
        delivery_order,
    })
}
