//! Per-broker routing: which triggers an event matches, evaluated once per broker.
//! (Stub: replaced by the real index.)

use crate::config::TriggerSpec;
use crate::event::Event;
use std::sync::Arc;

/// The compiled set of a broker's triggers with an index on exact keys.
#[derive(Debug, Default)]
pub struct RoutingTable {
    triggers: Vec<Arc<TriggerSpec>>,
}

impl RoutingTable {
    /// Builds the table.
    pub fn new(triggers: Vec<Arc<TriggerSpec>>) -> RoutingTable {
        RoutingTable { triggers }
    }

    /// All triggers of the broker, in a stable order; `route` returns indices into this slice.
    pub fn triggers(&self) -> &[Arc<TriggerSpec>] {
        &self.triggers
    }

    /// Appends to `out` the indices (into [`RoutingTable::triggers`]) of the triggers matching `event`,
    /// in increasing order.
    pub fn route(&self, event: &Event, out: &mut Vec<usize>) {
        let _ = event;
        out.extend(0..self.triggers.len());
    }
}
