//! Decision 5: a reply that cannot be stored makes the subscriber delivery fail and be retried.
//! Uses a channel that fails the first reply append, and a real HTTP subscriber that always replies.

use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_broker::channel::{
    BoxFuture, Channel, ChannelError, Delivery, EntryId, ParkRecord, ParkedEvent, Result,
    Subscription,
};
use switchyard_broker::config::load::load_sources;
use switchyard_broker::config::{BrokerKey, Topology, TriggerKey};
use switchyard_broker::event::Event;
use switchyard_broker::metrics::Metrics;
use switchyard_dispatcher::{Dispatcher, DispatcherOptions};

struct OneShotSub(Option<Delivery>);

impl Subscription for OneShotSub {
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            match self.0.take() {
                Some(d) => Some(d),
                None => std::future::pending().await,
            }
        })
    }
}

#[derive(Default)]
struct FlakyChannel {
    appends: AtomicUsize,
    stored: Mutex<Vec<Event>>,
    acked: Mutex<Vec<EntryId>>,
}

impl Channel for FlakyChannel {
    fn apply_topology(&self, _t: Arc<Topology>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn append<'a>(&'a self, _b: &'a BrokerKey, events: Vec<Event>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.appends.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(ChannelError::Storage("disk full".into()));
            }
            self.stored.lock().extend(events);
            Ok(())
        })
    }
    fn subscribe(&self, _t: &TriggerKey) -> Result<Box<dyn Subscription>> {
        let mut e = Event::new("original", "/s", "t");
        e.set_extension(
            switchyard_broker::event::TTL_EXTENSION,
            switchyard_broker::event::ExtValue::Int(10),
        );
        Ok(Box::new(OneShotSub(Some(Delivery {
            id: EntryId::seq(7),
            event: Arc::new(e),
        }))))
    }
    fn ack<'a>(&'a self, _t: &'a TriggerKey, id: EntryId) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.acked.lock().push(id);
            Ok(())
        })
    }
    fn park<'a>(
        &'a self,
        _t: &'a TriggerKey,
        _s: EntryId,
        _r: ParkRecord,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { panic!("nothing should be parked") })
    }
    fn backlog(&self, _b: &BrokerKey) -> u64 {
        0
    }
    fn trigger_backlog(&self, _t: &TriggerKey) -> u64 {
        0
    }
    fn dead_letters(&self, _l: usize) -> Result<Vec<ParkedEvent>> {
        Ok(vec![])
    }
    fn redrive(&self, id: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { Err(ChannelError::DeadLetterNotFound(id)) })
    }
    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn reply_storage_failure_retries_the_subscriber() {
    // A subscriber that always answers 200 with a reply event.
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move |_headers: HeaderMap| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::OK,
                [
                    ("ce-specversion", "1.0"),
                    ("ce-id", "reply"),
                    ("ce-source", "/sub"),
                    ("ce-type", "reply.type"),
                ],
                "",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let yaml = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: b\n---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n  broker: b\n  delivery:\n    retry: 3\n    backoffPolicy: linear\n    backoffDelay: PT0.01S\n  subscriber:\n    uri: http://{addr}/\n"
    );
    let topology = load_sources(&[("t.yaml".into(), yaml)]).unwrap().topology;
    let channel = Arc::new(FlakyChannel::default());
    let dispatcher = Dispatcher::new(
        channel.clone(),
        Arc::new(Metrics::new()),
        DispatcherOptions::default(),
    )
    .unwrap();
    dispatcher.apply(&topology).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while channel.acked.lock().is_empty() {
        assert!(Instant::now() < deadline, "the delivery never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the subscriber was called again"
    );
    assert_eq!(channel.appends.load(Ordering::SeqCst), 2);
    let stored = channel.stored.lock().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, "reply");
    assert_eq!(
        stored[0].ttl(),
        Some(9),
        "the reply carries the original TTL, decremented"
    );
    assert_eq!(*channel.acked.lock(), vec![EntryId::seq(7)]);
    dispatcher.shutdown(Duration::from_secs(1)).await;
}
