//! The live pieces of a running data plane (channel, ingress, dispatcher, sources, topology), shared by
//! the composition root (`app`), the config reloader and the admin server, and how a new topology is
//! installed in all of them, in order.

use anyhow::Context;
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use switchyard_broker::channel::composite::CompositeChannel;
use switchyard_broker::channel::Channel;
use switchyard_broker::config::Topology;
#[cfg(feature = "kafka")]
use switchyard_broker::kafka::source::KafkaSources;
use switchyard_broker::metrics::Metrics;
#[cfg(feature = "nats")]
use switchyard_broker::nats::source::NatsSources;
use switchyard_dispatcher::Dispatcher;
use switchyard_ingress::Ingress;
use switchyard_kube::metrics::ControllerMetrics;

/// The live pieces, shared with the reloader and the admin server.
pub(crate) struct Live {
    pub(crate) channel: Arc<CompositeChannel>,
    pub(crate) ingress: Arc<Ingress>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) topology: ArcSwap<Topology>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ready: AtomicBool,
    /// KafkaSources: they send to `ingress_base` (this process's own ingress) or their `uri`.
    #[cfg(feature = "kafka")]
    pub(crate) sources: KafkaSources,
    /// NatsSources, sending like the KafkaSources.
    #[cfg(feature = "nats")]
    pub(crate) nats_sources: NatsSources,
    /// This process's ingress, where the sources send events for a Broker.
    #[cfg(any(feature = "kafka", feature = "nats"))]
    pub(crate) ingress_base: String,
    /// The controller's metrics when it runs in this process (role `all`), appended to `/metrics`.
    pub(crate) controller_metrics: Option<Arc<ControllerMetrics>>,
}

impl Live {
    /// Installs a topology everywhere, in order: channel (ordered with appends), ingress, dispatcher.
    pub(crate) async fn apply(&self, topology: Topology) -> anyhow::Result<()> {
        let topology = Arc::new(topology);
        self.channel
            .apply_topology(topology.clone())
            .await
            .context("applying the topology to the channel")?;
        self.ingress.apply(&topology);
        self.dispatcher
            .apply(&topology)
            .context("starting trigger dispatchers")?;
        // A source that cannot start (bad sink URL or consumer settings, or a component this build does
        // not have) is reported, the rest run.
        #[cfg(feature = "kafka")]
        if let Err(e) = self.sources.apply(&topology, &self.ingress_base) {
            tracing::error!("{e}");
        }
        #[cfg(not(feature = "kafka"))]
        not_compiled(
            topology.kafka_sources.keys(),
            "KafkaSource",
            "Kafka",
            "kafka",
        );
        #[cfg(feature = "nats")]
        if let Err(e) = self.nats_sources.apply(&topology, &self.ingress_base) {
            tracing::error!("{e}");
        }
        #[cfg(not(feature = "nats"))]
        not_compiled(topology.nats_sources.keys(), "NatsSource", "NATS", "nats");
        self.topology.store(topology);
        Ok(())
    }

    /// Stops every source; a send in flight may finish until `deadline`.
    pub(crate) async fn shutdown_sources(&self, deadline: std::time::Instant) {
        #[cfg(feature = "kafka")]
        self.sources.shutdown(deadline).await;
        #[cfg(feature = "nats")]
        self.nats_sources.shutdown(deadline).await;
        let _ = deadline;
    }
}

/// Reports the sources of a component this build does not have (`system`, Cargo feature `feature`).
#[cfg(not(all(feature = "kafka", feature = "nats")))]
fn not_compiled<'a>(
    keys: impl Iterator<Item = &'a switchyard_broker::config::ObjectKey>,
    kind: &str,
    system: &str,
    feature: &str,
) {
    for key in keys {
        tracing::error!(
            "{kind} {key}: not started, this build has no {system} support (Cargo feature `{feature}`)"
        );
    }
}
