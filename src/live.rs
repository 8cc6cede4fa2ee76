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
use switchyard_broker::kafka::source::KafkaSources;
use switchyard_broker::metrics::Metrics;
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
    pub(crate) sources: KafkaSources,
    pub(crate) nats_sources: NatsSources,
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
        // A source that cannot start (bad sink URL or consumer settings) is reported, the rest run.
        if let Err(e) = self.sources.apply(&topology, &self.ingress_base) {
            tracing::error!("{e}");
        }
        if let Err(e) = self.nats_sources.apply(&topology, &self.ingress_base) {
            tracing::error!("{e}");
        }
        self.topology.store(topology);
        Ok(())
    }
}
