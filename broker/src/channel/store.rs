//! TEMPORARY STUB (replaced on merge).
#![allow(missing_docs, unused_variables)]
use super::*;
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    pub trigger_buffer: usize,
    pub queue_depth: usize,
}
impl Default for StoreOptions {
    fn default() -> Self {
        unimplemented!()
    }
}
#[derive(Debug, Clone)]
pub struct StoreChannel;
impl StoreChannel {
    pub fn open(
        dir: &std::path::Path,
        options: StoreOptions,
    ) -> Result<StoreChannel, ChannelError> {
        unimplemented!()
    }
    pub fn in_memory(options: StoreOptions) -> Result<StoreChannel, ChannelError> {
        unimplemented!()
    }
    pub fn close(&self) -> BoxFuture<'_, Result<()>> {
        unimplemented!()
    }
}
impl Channel for StoreChannel {
    fn apply_topology(&self, topology: Arc<Topology>) -> BoxFuture<'_, Result<()>> {
        unimplemented!()
    }
    fn append<'a>(
        &'a self,
        broker: &'a BrokerKey,
        events: Vec<Event>,
    ) -> BoxFuture<'a, Result<()>> {
        unimplemented!()
    }
    fn subscribe(&self, trigger: &TriggerKey) -> Result<Box<dyn Subscription>> {
        unimplemented!()
    }
    fn ack<'a>(&'a self, trigger: &'a TriggerKey, seq: u64) -> BoxFuture<'a, Result<()>> {
        unimplemented!()
    }
    fn park<'a>(
        &'a self,
        trigger: &'a TriggerKey,
        seq: u64,
        record: ParkRecord,
    ) -> BoxFuture<'a, Result<()>> {
        unimplemented!()
    }
    fn backlog(&self, broker: &BrokerKey) -> u64 {
        unimplemented!()
    }
    fn trigger_backlog(&self, trigger: &TriggerKey) -> u64 {
        unimplemented!()
    }
    fn dead_letters(&self, limit: usize) -> Result<Vec<ParkedEvent>> {
        unimplemented!()
    }
    fn redrive(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        unimplemented!()
    }
    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        unimplemented!()
    }
}
