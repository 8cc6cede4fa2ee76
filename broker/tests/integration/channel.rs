//! Behaviour of the embedded redb channel (`StoreChannel`) against the `Channel` contract.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_broker::channel::store::{StoreChannel, StoreOptions};
use switchyard_broker::channel::{
    Channel, ChannelError, Delivery, EntryId, ParkRecord, Subscription,
};
use switchyard_broker::config::{BrokerConfig, BrokerKey, Topology, TriggerConfig, TriggerKey};
use switchyard_broker::event::Event;
use switchyard_broker::filter::Filter;

const NS: &str = "default";
/// Deadline for anything that should happen "now" (never reached when the code is right).
const DEADLINE: Duration = Duration::from_secs(10);

fn bkey(name: &str) -> BrokerKey {
    BrokerKey::new(NS, name)
}

fn tkey(name: &str) -> TriggerKey {
    TriggerKey::new(NS, name)
}

fn broker(name: &str) -> BrokerConfig {
    BrokerConfig {
        key: bkey(name),
        class: "MTChannelBasedBroker".into(),
        delivery: None,
        max_backlog: None,
        config: BTreeMap::new(),
        backend: Default::default(),
    }
}

fn trigger(name: &str, broker: &str) -> TriggerConfig {
    TriggerConfig {
        key: tkey(name),
        broker: bkey(broker),
        filter: Filter::True,
        subscriber: switchyard_broker::config::DestinationConfig::Url(format!(
            "http://{name}.example"
        )),
        delivery: None,
        max_inflight: 10,
        delivery_order: Default::default(),
    }
}

fn topology(brokers: &[&str], triggers: &[(&str, &str)]) -> Arc<Topology> {
    Arc::new(Topology::new(
        brokers.iter().map(|b| broker(b)).collect(),
        triggers.iter().map(|(t, b)| trigger(t, b)).collect(),
    ))
}

fn ev(id: impl Into<String>) -> Event {
    Event::new(id, "/test", "com.example.test")
}

fn evs(range: std::ops::Range<usize>) -> Vec<Event> {
    range.map(|i| ev(format!("e{i}"))).collect()
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("a delivery before the deadline")
        .expect("subscription still live")
}

async fn next_n(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(sub).await);
    }
    out
}

async fn ended(sub: &mut Box<dyn Subscription>) -> bool {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("subscription resolves before the deadline")
        .is_none()
}

fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.event.id.clone()).collect()
}

fn names(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("e{i}")).collect()
}

fn mem() -> StoreChannel {
    StoreChannel::in_memory(StoreOptions::default()).expect("in-memory store")
}

async fn two_triggers() -> StoreChannel {
    let ch = mem();
    ch.apply_topology(topology(&["b"], &[("t1", "b"), ("t2", "b")]))
        .await
        .expect("topology");
    ch
}

fn park_record(event: Event) -> ParkRecord {
    ParkRecord {
        reason: "retries-exhausted".into(),
        error_dest: Some("http://t1.example".into()),
        error_code: Some(503),
        error_data: Some("busy".into()),
        event,
    }
}

#[tokio::test]
async fn append_delivers_to_every_matching_trigger_in_order() {
    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    ch.append(&bkey("b"), evs(0..1)).await.expect("append");
    // The first delivery of a new subscription comes from the database (leftovers first)...
    assert_eq!(next(&mut s1).await.event.id, "e0");
    assert_eq!(next(&mut s2).await.event.id, "e0");
    ch.append(&bkey("b"), evs(1..4)).await.expect("append");

    let d1 = next_n(&mut s1, 3).await;
    let d2 = next_n(&mut s2, 3).await;
    assert_eq!(ids(&d1), names(1..4));
    assert_eq!(ids(&d2), names(1..4));
    assert!(d1.windows(2).all(|w| w[0].id < w[1].id));
    for (a, b) in d1.iter().zip(&d2) {
        assert_eq!(a.id, b.id);
        // ...then from the in-memory buffers: one `Arc<Event>` shared by both triggers.
        assert!(Arc::ptr_eq(&a.event, &b.event));
    }
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.queue_entries), (4, 8));
}

#[tokio::test]
async fn stored_event_round_trips_all_attributes() {
    use switchyard_broker::event::{Data, ExtValue};
    let ch = two_triggers().await;
    let mut e = ev("full");
    e.subject = Some("subj".into());
    e.datacontenttype = Some("application/json".into());
    e.set_extension("knativebrokerttl", ExtValue::Int(255));
    e.set_extension("flag", ExtValue::Bool(true));
    e.data = Data::Json(bytes::Bytes::from_static(b"{\"k\":1}"));
    ch.append(&bkey("b"), vec![e.clone()])
        .await
        .expect("append");
    // A fresh subscription reads from the database (decoded), not from the in-memory buffer.
    let mut s = ch.subscribe(&tkey("t1")).expect("sub");
    assert_eq!(*next(&mut s).await.event, e);
}

#[tokio::test]
async fn a_trigger_that_never_acks_does_not_block_another() {
    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    for round in 0..3 {
        ch.append(&bkey("b"), evs(round * 10..round * 10 + 10))
            .await
            .expect("append");
        for d in next_n(&mut s2, 10).await {
            ch.ack(&tkey("t2"), d.id).await.expect("ack");
        }
    }
    assert_eq!(ch.trigger_backlog(&tkey("t1")), 30);
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 0);
    // t1 still has everything, in order.
    assert_eq!(ids(&next_n(&mut s1, 30).await), names(0..30));
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.queue_entries), (30, 30));
}

#[tokio::test]
async fn acks_reclaim_space_and_are_idempotent() {
    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    ch.append(&bkey("b"), evs(0..5)).await.expect("append");
    let d1 = next_n(&mut s1, 5).await;
    let d2 = next_n(&mut s2, 5).await;
    for d in &d1 {
        ch.ack(&tkey("t1"), d.id).await.expect("ack t1");
    }
    // Still referenced by t2.
    assert_eq!(ch.stats().expect("stats").events, 5);
    for d in &d2 {
        ch.ack(&tkey("t2"), d.id).await.expect("ack t2");
    }
    // Acking again, or a seq that never existed, changes nothing.
    ch.ack(&tkey("t2"), d2[0].id).await.expect("double ack");
    ch.ack(&tkey("t1"), EntryId::seq(9_999))
        .await
        .expect("unknown seq");
    ch.ack(&tkey("gone"), EntryId::seq(0))
        .await
        .expect("unknown trigger");
    let stats = ch.stats().expect("stats");
    assert_eq!(
        (stats.events, stats.refs, stats.queue_entries),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(ch.backlog(&bkey("b")), 0);
    // Ack-only batches are committed without fsync.
    assert!(stats.durable_commits < stats.commits, "{stats:?}");
}

#[tokio::test]
async fn restart_redelivers_unacked_entries_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = topology(&["b"], &[("t1", "b"), ("t2", "b")]);
    let last_seq;
    {
        let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("open");
        ch.apply_topology(topo.clone()).await.expect("topology");
        ch.append(&bkey("b"), evs(0..4)).await.expect("append");
        let mut s1 = ch.subscribe(&tkey("t1")).expect("sub");
        let d = next_n(&mut s1, 4).await;
        last_seq = d[3].id;
        // Ack the first two (ack-only batches are committed non-durably; close makes them durable).
        ch.ack(&tkey("t1"), d[0].id).await.expect("ack");
        ch.ack(&tkey("t1"), d[1].id).await.expect("ack");
        ch.close().await.expect("close");
        ch.close().await.expect("close is idempotent");
        assert!(ended(&mut s1).await, "subscriptions end at close");
        assert!(matches!(
            ch.append(&bkey("b"), evs(9..10)).await,
            Err(ChannelError::Closed)
        ));
    }
    let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("reopen");
    // Counters are known before any topology is applied.
    assert_eq!(ch.trigger_backlog(&tkey("t1")), 2);
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 4);
    ch.apply_topology(topo).await.expect("topology");
    assert_eq!(ch.backlog(&bkey("b")), 6);
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub");
    assert_eq!(ids(&next_n(&mut s1, 2).await), names(2..4));
    assert_eq!(ids(&next_n(&mut s2, 4).await), names(0..4));
    // Sequence numbers continue after the restart; nothing else is pending for t1.
    ch.append(&bkey("b"), evs(4..5)).await.expect("append");
    let d = next(&mut s1).await;
    assert_eq!(d.event.id, "e4");
    assert!(d.id > last_seq);
}

#[tokio::test]
async fn sequence_numbers_keep_increasing_across_restarts_after_everything_was_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = topology(&["b"], &[("t1", "b")]);
    let mut last_seq = None;
    for round in 0..3 {
        let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("open");
        ch.apply_topology(topo.clone()).await.expect("topology");
        ch.append(&bkey("b"), evs(round * 3..round * 3 + 3))
            .await
            .expect("append");
        let mut s = ch.subscribe(&tkey("t1")).expect("sub");
        let d = next_n(&mut s, 3).await;
        assert_eq!(ids(&d), names(round * 3..round * 3 + 3));
        if let Some(last) = last_seq {
            assert!(d[0].id > last, "round {round}: {} after {last}", d[0].id);
        }
        last_seq = Some(d[2].id);
        for d in &d {
            ch.ack(&tkey("t1"), d.id).await.expect("ack");
        }
        // Nothing is left that would tell the next open which seqs were used.
        let stats = ch.stats().expect("stats");
        assert_eq!((stats.events, stats.queue_entries), (0, 0), "{stats:?}");
        ch.close().await.expect("close");
    }
}

#[tokio::test]
async fn reference_rows_exist_only_for_events_shared_by_several_triggers() {
    let single = mem();
    single
        .apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    single.append(&bkey("b"), evs(0..3)).await.expect("append");
    let stats = single.stats().expect("stats");
    assert_eq!((stats.events, stats.refs), (3, 0), "{stats:?}");

    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    ch.append(&bkey("b"), evs(0..2)).await.expect("append");
    // Two triggers each: one refs row per event.
    assert_eq!(ch.stats().expect("stats").refs, 2);
    let d1 = next_n(&mut s1, 2).await;
    let d2 = next_n(&mut s2, 2).await;
    ch.ack(&tkey("t1"), d1[0].id).await.expect("ack");
    // Down to one reference: the row goes, the event stays.
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.refs), (2, 1), "{stats:?}");
    ch.ack(&tkey("t2"), d2[0].id).await.expect("ack");
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.refs), (1, 1), "{stats:?}");
    ch.ack(&tkey("t2"), d2[1].id).await.expect("ack");
    ch.ack(&tkey("t1"), d1[1].id).await.expect("ack");
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.refs, stats.queue_entries), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_acks_in_any_order_remove_exactly_the_acked_entries() {
    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    ch.append(&bkey("b"), evs(0..300)).await.expect("append");
    let d1 = next_n(&mut s1, 300).await;
    let d2 = next_n(&mut s2, 300).await;
    // t1 acks two thirds (odd positions first, then every third even one, some twice); t2 acks all of
    // them newest first. All at once, so that they land in a few batches in mixed order.
    let mut acks = Vec::new();
    for (i, d) in d1.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        acks.push(("t1", d.id));
        if i % 7 == 0 {
            acks.push(("t1", d.id));
        }
    }
    for (_, d) in d1.iter().enumerate().filter(|(i, _)| i % 6 == 0) {
        acks.push(("t1", d.id));
    }
    for d in d2.iter().rev() {
        acks.push(("t2", d.id));
    }
    let tasks: Vec<_> = acks
        .into_iter()
        .map(|(t, seq)| {
            let ch = ch.clone();
            tokio::spawn(async move { ch.ack(&tkey(t), seq).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("ack");
    }
    let kept: Vec<usize> = (0..300).filter(|i| i % 2 == 0 && i % 6 != 0).collect();
    assert_eq!(ch.trigger_backlog(&tkey("t1")), kept.len() as u64);
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 0);
    let stats = ch.stats().expect("stats");
    assert_eq!(
        (stats.events, stats.refs, stats.queue_entries),
        (kept.len() as u64, 0, kept.len() as u64),
        "{stats:?}"
    );
    // A new subscription reads exactly the un-acked entries from the database.
    let mut s1 = ch.subscribe(&tkey("t1")).expect("resubscribe");
    let again = next_n(&mut s1, kept.len()).await;
    assert_eq!(
        ids(&again),
        kept.iter().map(|i| format!("e{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn dropping_the_last_handle_releases_the_file_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = topology(&["b"], &[("t1", "b")]);
    {
        let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("open");
        ch.apply_topology(topo.clone()).await.expect("topology");
        ch.append(&bkey("b"), evs(0..3)).await.expect("append");
        let mut s = ch.subscribe(&tkey("t1")).expect("sub");
        let first = next(&mut s).await;
        ch.ack(&tkey("t1"), first.id).await.expect("ack");
    }
    let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("reopen after drop");
    ch.apply_topology(topo).await.expect("topology");
    let mut s = ch.subscribe(&tkey("t1")).expect("sub");
    assert_eq!(ids(&next_n(&mut s, 2).await), names(1..3));
    assert_eq!(ch.trigger_backlog(&tkey("t1")), 2);
}

#[tokio::test]
async fn a_trigger_added_later_only_sees_later_events() {
    let ch = mem();
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    ch.append(&bkey("b"), evs(0..1)).await.expect("append");
    ch.apply_topology(topology(&["b"], &[("t1", "b"), ("t2", "b")]))
        .await
        .expect("topology");
    ch.append(&bkey("b"), evs(1..2)).await.expect("append");
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    assert_eq!(ids(&next_n(&mut s1, 2).await), names(0..2));
    assert_eq!(next(&mut s2).await.event.id, "e1");
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 1);
    assert_eq!(ch.backlog(&bkey("b")), 3);
}

#[tokio::test]
async fn a_removed_trigger_ends_its_subscription_and_frees_its_entries() {
    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub t1");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2");
    ch.append(&bkey("b"), evs(0..3)).await.expect("append");
    let _ = next_n(&mut s2, 3).await;

    // Remove t2 while its subscriber is (very likely) waiting in `next`.
    let waiter = tokio::spawn(async move { tokio::time::timeout(DEADLINE, s2.next()).await });
    tokio::task::yield_now().await;
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    let after = waiter.await.expect("join").expect("ends before deadline");
    assert!(after.is_none(), "subscription of a removed trigger ends");

    assert!(matches!(
        ch.subscribe(&tkey("t2")),
        Err(ChannelError::UnknownTrigger(_))
    ));
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 0);
    assert_eq!(ch.backlog(&bkey("b")), 3);
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.queue_entries, stats.triggers), (3, 1));
    for d in next_n(&mut s1, 3).await {
        ch.ack(&tkey("t1"), d.id).await.expect("ack");
    }
    assert_eq!(
        ch.stats().expect("stats").events,
        0,
        "t2's references were released"
    );

    // Adding t2 back starts from an empty queue.
    ch.apply_topology(topology(&["b"], &[("t1", "b"), ("t2", "b")]))
        .await
        .expect("topology");
    ch.append(&bkey("b"), evs(3..4)).await.expect("append");
    let mut s2 = ch.subscribe(&tkey("t2")).expect("sub t2 again");
    assert_eq!(next(&mut s2).await.event.id, "e3");
}

#[tokio::test]
async fn a_trigger_repointed_to_another_broker_starts_fresh() {
    let ch = mem();
    ch.apply_topology(topology(&["a", "b"], &[("t", "a")]))
        .await
        .expect("topology");
    ch.append(&bkey("a"), evs(0..2)).await.expect("append");
    let mut old = ch.subscribe(&tkey("t")).expect("sub");
    ch.apply_topology(topology(&["a", "b"], &[("t", "b")]))
        .await
        .expect("topology");
    assert!(ended(&mut old).await);
    assert_eq!(ch.trigger_backlog(&tkey("t")), 0);
    assert_eq!(ch.backlog(&bkey("a")), 0);
    assert_eq!(ch.stats().expect("stats").events, 0);
    ch.append(&bkey("b"), evs(2..3)).await.expect("append");
    let mut s = ch.subscribe(&tkey("t")).expect("sub");
    assert_eq!(next(&mut s).await.event.id, "e2");
    assert_eq!(ch.backlog(&bkey("b")), 1);
}

#[tokio::test]
async fn park_list_and_redrive() {
    let ch = two_triggers().await;
    let mut s1 = ch.subscribe(&tkey("t1")).expect("sub");
    ch.append(&bkey("b"), evs(0..2)).await.expect("append");
    let d = next_n(&mut s1, 2).await;

    let mut parked_event = (*d[0].event).clone();
    parked_event.set_extension(
        "knativeerrorcode",
        switchyard_broker::event::ExtValue::Int(503),
    );
    let record = park_record(parked_event.clone());
    ch.park(&tkey("t1"), d[0].id, record.clone())
        .await
        .expect("park");
    // Parking an entry that is gone (already parked) does not create a second dead letter.
    ch.park(&tkey("t1"), d[0].id, record.clone())
        .await
        .expect("double park is a no-op");
    assert!(matches!(
        ch.park(&tkey("nope"), EntryId::seq(0), record.clone())
            .await,
        Err(ChannelError::UnknownTrigger(_))
    ));
    ch.park(&tkey("t1"), d[1].id, park_record((*d[1].event).clone()))
        .await
        .expect("park");
    assert_eq!(ch.trigger_backlog(&tkey("t1")), 0);
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 2);

    let parked = ch.dead_letters(10).expect("list");
    assert_eq!(parked.len(), 2);
    assert_eq!(parked[0].trigger, tkey("t1"));
    assert_eq!(parked[0].record, record);
    assert!(parked[0].parked_at_ms > 0);
    assert!(parked[0].id < parked[1].id, "oldest first");
    assert_eq!(parked[1].record.event.id, "e1");
    assert_eq!(ch.dead_letters(1).expect("list").len(), 1);

    ch.redrive(parked[0].id).await.expect("redrive");
    let again = next(&mut s1).await;
    assert_eq!(*again.event, parked_event);
    assert!(again.id > d[1].id, "redriven as a new entry");
    // Only t1 gets the redriven event.
    assert_eq!(ch.trigger_backlog(&tkey("t1")), 1);
    assert_eq!(ch.trigger_backlog(&tkey("t2")), 2);
    assert!(matches!(
        ch.redrive(parked[0].id).await,
        Err(ChannelError::DeadLetterNotFound(_))
    ));
    let left = ch.dead_letters(10).expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, parked[1].id);

    // Redriving into a trigger that no longer exists fails and keeps the dead letter.
    ch.apply_topology(topology(&["b"], &[("t2", "b")]))
        .await
        .expect("topology");
    assert!(matches!(
        ch.redrive(parked[1].id).await,
        Err(ChannelError::UnknownTrigger(_))
    ));
    assert_eq!(ch.dead_letters(10).expect("list").len(), 1);
}

#[tokio::test]
async fn append_to_an_unknown_broker_stores_nothing() {
    let ch = two_triggers().await;
    let err = ch
        .append(&bkey("nope"), evs(0..10))
        .await
        .expect_err("unknown broker");
    assert!(matches!(err, ChannelError::UnknownBroker(ref b) if *b == bkey("nope")));
    assert!(!err.is_unavailable());
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.queue_entries), (0, 0));
    // Other appends are unaffected.
    ch.append(&bkey("b"), evs(0..1)).await.expect("append");
    assert_eq!(ch.backlog(&bkey("b")), 2);
}

#[tokio::test]
async fn an_event_no_trigger_wants_is_accepted_but_not_stored() {
    let ch = mem();
    ch.apply_topology(topology(&["empty", "b"], &[("t1", "b")]))
        .await
        .expect("topology");
    ch.append(&bkey("empty"), evs(0..5)).await.expect("append");
    ch.append(&bkey("b"), Vec::new())
        .await
        .expect("empty batch");
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.queue_entries), (0, 0));
    assert_eq!(ch.backlog(&bkey("empty")), 0);
}

#[tokio::test]
async fn events_routed_by_filter_reach_only_matching_triggers() {
    // Depends on real routing (not the stub that routes to every trigger): run when routing lands.
    let ch = mem();
    let mut only_a = trigger("only-a", "b");
    only_a.filter = Filter::Exact(vec![("type".into(), "a".into())]);
    ch.apply_topology(Arc::new(Topology::new(
        vec![broker("b")],
        vec![only_a, trigger("all", "b")],
    )))
    .await
    .expect("topology");
    let a = Event::new("1", "/s", "a");
    let other = Event::new("2", "/s", "other");
    ch.append(&bkey("b"), vec![other.clone(), a.clone()])
        .await
        .expect("append");
    let mut s = ch.subscribe(&tkey("only-a")).expect("sub");
    let d = next(&mut s).await;
    if d.event.id == "2" {
        // Stub routing: nothing more to check here.
        return;
    }
    assert_eq!(*d.event, a);
    assert_eq!(ch.trigger_backlog(&tkey("only-a")), 1);
    assert_eq!(ch.trigger_backlog(&tkey("all")), 2);
    let stats = ch.stats().expect("stats");
    assert_eq!((stats.events, stats.queue_entries), (2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_overflow_falls_back_to_the_database_in_order_exactly_once() {
    let ch = StoreChannel::in_memory(StoreOptions {
        trigger_buffer: 4,
        ..StoreOptions::default()
    })
    .expect("store");
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    let mut sub = ch.subscribe(&tkey("t1")).expect("sub");
    // Half appended before consuming (overflow), half while consuming (races between buffer and db).
    ch.append(&bkey("b"), evs(0..50)).await.expect("append");
    let producer = {
        let ch = ch.clone();
        tokio::spawn(async move {
            for i in 50..100 {
                ch.append(&bkey("b"), evs(i..i + 1)).await.expect("append");
            }
        })
    };
    let got = next_n(&mut sub, 100).await;
    producer.await.expect("producer");
    assert_eq!(ids(&got), names(0..100));
    assert!(got.windows(2).all(|w| w[0].id < w[1].id));
    for d in &got {
        ch.ack(&tkey("t1"), d.id).await.expect("ack");
    }
    assert_eq!(ch.trigger_backlog(&tkey("t1")), 0);
    // Back to the in-memory path afterwards.
    ch.append(&bkey("b"), evs(100..101)).await.expect("append");
    assert_eq!(next(&mut sub).await.event.id, "e100");
    assert_eq!(ch.stats().expect("stats").events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_commit_and_are_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("open");
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    let before = ch.stats().expect("stats");
    const TASKS: usize = 32;
    const PER_TASK: usize = 25;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                ch.append(&bkey("b"), vec![ev(format!("{t}-{i}"))])
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = ch.stats().expect("stats");
    let appends = stats.appends - before.appends;
    let commits = stats.commits - before.commits;
    assert_eq!(appends, (TASKS * PER_TASK) as u64);
    assert!(
        commits < appends,
        "group commit: {commits} commits for {appends} appends"
    );
    assert_eq!(stats.events, (TASKS * PER_TASK) as u64);
    assert_eq!(ch.backlog(&bkey("b")), (TASKS * PER_TASK) as u64);

    // Every event exactly once, and each task's events in its append order.
    let mut sub = ch.subscribe(&tkey("t1")).expect("sub");
    let got = next_n(&mut sub, TASKS * PER_TASK).await;
    let mut seen = std::collections::HashSet::new();
    let mut last = vec![None::<usize>; TASKS];
    for d in &got {
        assert!(seen.insert(d.event.id.clone()), "duplicate {}", d.event.id);
        let (t, i) = d.event.id.split_once('-').expect("id");
        let (t, i): (usize, usize) = (t.parse().expect("t"), i.parse().expect("i"));
        assert!(last[t].is_none_or(|prev| prev < i));
        last[t] = Some(i);
    }
}

#[tokio::test]
async fn backlog_counts_undelivered_entries_per_trigger_and_broker() {
    let ch = mem();
    ch.apply_topology(topology(
        &["a", "b"],
        &[("a1", "a"), ("a2", "a"), ("b1", "b")],
    ))
    .await
    .expect("topology");
    ch.append(&bkey("a"), evs(0..3)).await.expect("append");
    ch.append(&bkey("b"), evs(3..5)).await.expect("append");
    assert_eq!(ch.backlog(&bkey("a")), 6);
    assert_eq!(ch.backlog(&bkey("b")), 2);
    assert_eq!(ch.backlog(&bkey("nope")), 0);
    assert_eq!(ch.trigger_backlog(&tkey("nope")), 0);

    let mut s = ch.subscribe(&tkey("a1")).expect("sub");
    let d = next_n(&mut s, 2).await;
    ch.ack(&tkey("a1"), d[0].id).await.expect("ack");
    ch.park(&tkey("a1"), d[1].id, park_record((*d[1].event).clone()))
        .await
        .expect("park");
    assert_eq!(ch.trigger_backlog(&tkey("a1")), 1);
    assert_eq!(ch.trigger_backlog(&tkey("a2")), 3);
    assert_eq!(ch.backlog(&bkey("a")), 4);
    ch.redrive(ch.dead_letters(1).expect("list")[0].id)
        .await
        .expect("redrive");
    assert_eq!(ch.backlog(&bkey("a")), 5);
}

#[tokio::test]
async fn a_second_subscription_replaces_the_first_and_redelivers_unacked() {
    let ch = two_triggers().await;
    let mut first = ch.subscribe(&tkey("t1")).expect("sub");
    ch.append(&bkey("b"), evs(0..3)).await.expect("append");
    let d = next_n(&mut first, 2).await;
    ch.ack(&tkey("t1"), d[0].id).await.expect("ack");
    let mut second = ch.subscribe(&tkey("t1")).expect("sub again");
    assert!(ended(&mut first).await);
    assert_eq!(ids(&next_n(&mut second, 2).await), names(1..3));
    ch.append(&bkey("b"), evs(3..4)).await.expect("append");
    assert_eq!(next(&mut second).await.event.id, "e3");
}

#[tokio::test]
async fn flush_and_unknown_operations() {
    let ch = two_triggers().await;
    ch.flush().await.expect("flush");
    assert!(matches!(
        ch.subscribe(&tkey("nope")),
        Err(ChannelError::UnknownTrigger(_))
    ));
    assert!(matches!(
        ch.redrive(42).await,
        Err(ChannelError::DeadLetterNotFound(42))
    ));
    ch.close().await.expect("close");
    ch.flush().await.expect("flush after close is a no-op");
    assert!(matches!(
        ch.subscribe(&tkey("t1")),
        Err(ChannelError::Closed)
    ));
    assert!(matches!(ch.dead_letters(1), Err(ChannelError::Closed)));
}

/// An in-memory redb backend whose writes and syncs fail while `fail` is set.
#[derive(Debug)]
struct FlakyBackend {
    inner: redb::backends::InMemoryBackend,
    fail: Arc<std::sync::atomic::AtomicBool>,
    /// Fail like a full volume (ENOSPC) rather than with a generic I/O error.
    full: bool,
}

impl FlakyBackend {
    fn new(fail: &Arc<std::sync::atomic::AtomicBool>, full: bool) -> FlakyBackend {
        FlakyBackend {
            inner: redb::backends::InMemoryBackend::new(),
            fail: fail.clone(),
            full,
        }
    }

    fn check(&self) -> std::io::Result<()> {
        match self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            false => Ok(()),
            true if self.full => Err(std::io::Error::from_raw_os_error(28)),
            true => Err(std::io::Error::other("injected IO failure")),
        }
    }
}

impl redb::StorageBackend for FlakyBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

/// A store on a `FlakyBackend` (failing like a full volume when `full`) with broker `b` and trigger `t1`;
/// writes fail while the returned flag is set.
async fn flaky_store(full: bool) -> (Arc<std::sync::atomic::AtomicBool>, StoreChannel) {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ch = StoreChannel::with_backend(FlakyBackend::new(&fail, full), StoreOptions::default())
        .expect("store");
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    (fail, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_waiter_and_applies_nothing() {
    let (fail, ch) = flaky_store(false).await;
    ch.append(&bkey("b"), evs(0..1)).await.expect("append");
    let before = ch.stats().expect("stats");

    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            ch.append(&bkey("b"), evs(i * 10..i * 10 + 10)).await
        }));
    }
    for t in tasks {
        let err = t.await.expect("task").expect_err("commit fails");
        assert!(matches!(err, ChannelError::Storage(_)), "{err:?}");
        assert!(err.is_unavailable());
    }
    // Nothing was published: counters unchanged, no new commit counted.
    assert_eq!(ch.backlog(&bkey("b")), 1);
    assert_eq!(ch.stats().expect("stats").commits, before.commits);
    let mut s = ch.subscribe(&tkey("t1")).expect("sub");
    let d = next(&mut s).await;
    assert_eq!(d.event.id, "e0");
}

/// Polls `f` every 10 ms until it is true, or panics after `DEADLINE`.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_keeps_acks_and_parks_and_recovers_by_itself() {
    use switchyard_broker::channel::store::StoreHealth;
    let (fail, ch) = flaky_store(false).await;
    ch.append(&bkey("b"), evs(0..5)).await.expect("append");
    let mut sub = ch.subscribe(&tkey("t1")).expect("sub");
    let d = next_n(&mut sub, 2).await;

    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = ch
        .append(&bkey("b"), evs(5..6))
        .await
        .expect_err("the commit fails");
    assert!(matches!(err, ChannelError::Storage(_)), "{err:?}");
    assert!(
        matches!(ch.health(), StoreHealth::Failed { .. }),
        "{:?}",
        ch.health()
    );
    // Refused at once while failed (no writer round trip), in the project's words.
    let err = ch.append(&bkey("b"), evs(6..7)).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "storage failure: the store is recovering from a write failure"
    );
    // Deliveries made while failed: the ack is kept in memory, the park waits for the recovery.
    ch.ack(&tkey("t1"), d[0].id)
        .await
        .expect("ack kept while failed");
    let parking = {
        let ch = ch.clone();
        let seq = d[1].id;
        tokio::spawn(async move {
            let record = ParkRecord {
                reason: "retries-exhausted".into(),
                error_dest: None,
                error_code: Some(500),
                error_data: None,
                event: ev("e1"),
            };
            ch.park(&tkey("t1"), seq, record).await
        })
    };
    // Entries still in memory keep flowing to the consumer.
    assert_eq!(next(&mut sub).await.event.id, "e2");

    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    until("the store recovers", || ch.health() == StoreHealth::Healthy).await;
    tokio::time::timeout(DEADLINE, parking)
        .await
        .expect("the park completes after recovery")
        .expect("task")
        .expect("park");
    let stats = ch.stats().expect("stats");
    // e0 acked (the ack made while failed was committed), e1 parked, e2..e4 still queued.
    assert_eq!(stats.queue_entries, 3, "{stats:?}");
    assert_eq!(stats.dead_letters, 1, "{stats:?}");
    assert_eq!(ch.backlog(&bkey("b")), 3);
    ch.append(&bkey("b"), evs(7..8))
        .await
        .expect("appends work again");
    assert_eq!(next(&mut sub).await.event.id, "e3");
    assert_eq!(next(&mut sub).await.event.id, "e4");
    assert_eq!(next(&mut sub).await.event.id, "e7");
    ch.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_volume_is_reported_as_full() {
    use switchyard_broker::channel::store::StoreHealth;
    let (full, ch) = flaky_store(true).await;
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = ch.append(&bkey("b"), evs(0..1)).await.expect_err("ENOSPC");
    assert!(matches!(err, ChannelError::Full), "{err:?}");
    assert!(err.is_unavailable());
    assert!(matches!(ch.health(), StoreHealth::Full { .. }));
    assert!(matches!(
        ch.append(&bkey("b"), evs(1..2)).await,
        Err(ChannelError::Full)
    ));
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    until("the store recovers", || ch.health() == StoreHealth::Healthy).await;
    ch.append(&bkey("b"), evs(2..3)).await.expect("append");
    let mut sub = ch.subscribe(&tkey("t1")).expect("sub");
    assert_eq!(next(&mut sub).await.event.id, "e2");
    ch.close().await.expect("close");
}

/// Part 2 of issue 11: under steady load through a subscriber that acks everything, the file does not
/// grow without bound (freed pages are reused), and once the queues drain an idle store compacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_does_not_grow_the_file_and_a_drained_store_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(switchyard_broker::channel::store::DB_FILE);
    let ch = StoreChannel::open(dir.path(), StoreOptions::default()).expect("store");
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("topology");
    let mut sub = ch.subscribe(&tkey("t1")).expect("sub");
    let payload = bytes::Bytes::from(vec![b'x'; 4096]);
    let batch = |from: usize| -> Vec<Event> {
        (from..from + 100)
            .map(|i| {
                let mut e = ev(format!("e{i}"));
                e.data = switchyard_broker::event::Data::Text(payload.clone());
                e
            })
            .collect()
    };
    // A backlog of 2,000 events, then drained: the file's size after this first pass is the yardstick.
    let mut n = 0;
    while n < 2000 {
        ch.append(&bkey("b"), batch(n)).await.expect("append");
        n += 100;
    }
    for d in next_n(&mut sub, 2000).await {
        ch.ack(&tkey("t1"), d.id).await.expect("ack");
    }
    ch.flush().await.expect("flush");
    let first = std::fs::metadata(&file).unwrap().len();
    // Ten times the file's size in events, at a backlog of at most 100.
    let target = 10 * first;
    let mut sent = 0u64;
    let mut largest = first;
    while sent < target {
        ch.append(&bkey("b"), batch(n)).await.expect("append");
        n += 100;
        sent += 100 * 4096;
        for d in next_n(&mut sub, 100).await {
            ch.ack(&tkey("t1"), d.id).await.expect("ack");
        }
        largest = largest.max(std::fs::metadata(&file).unwrap().len());
    }
    assert!(
        largest <= 2 * first,
        "the file grew from {first} to {largest} bytes under steady load"
    );
    // Drained and idle: the store compacts by itself and the space goes back to the volume.
    ch.flush().await.expect("flush");
    until("compaction after the drain", || {
        ch.space().file_bytes > 0 && ch.space().file_bytes < first / 4
    })
    .await;
    assert!(std::fs::metadata(&file).unwrap().len() < first / 4);
    ch.close().await.expect("close");
}

/// A broker whose class needs a log backend the channel does not have (a build without the `kafka` or
/// `nats` feature) is refused when the topology is applied, with a message naming the broker and the
/// missing feature; embedded brokers of the same channel keep working.
#[tokio::test]
async fn a_broker_class_without_its_backend_is_refused_by_name() {
    use switchyard_broker::channel::composite::CompositeChannel;
    use switchyard_broker::config::{Backend, KafkaBrokerConfig};
    let store = Arc::new(StoreChannel::in_memory(StoreOptions::default()).expect("store"));
    let ch = CompositeChannel::new(store.clone());
    let mut kafka = broker("k");
    kafka.class = "Kafka".into();
    kafka.backend = Backend::Kafka(KafkaBrokerConfig {
        bootstrap_servers: "127.0.0.1:9".into(),
        topic: "knative-broker-ns-k".into(),
        external_topic: false,
        partitions: 1,
        replication_factor: 1,
    });
    let with_kafka = Arc::new(Topology::new(
        vec![broker("b"), kafka],
        vec![trigger("t1", "b"), trigger("tk", "k")],
    ));
    let err = ch
        .apply_topology(with_kafka)
        .await
        .expect_err("no Kafka backend in this channel");
    assert!(matches!(err, ChannelError::Unsupported(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("broker default/k") && text.contains("Kafka") && text.contains("`kafka`"),
        "{text}"
    );
    // The embedded broker alone is fine.
    ch.apply_topology(topology(&["b"], &[("t1", "b")]))
        .await
        .expect("embedded only");
    ch.append(&bkey("b"), evs(0..2)).await.expect("append");
    let mut sub = ch.subscribe(&tkey("t1")).expect("subscribe");
    assert_eq!(next_n(&mut sub, 2).await.len(), 2);
    store.close().await.expect("close");
}
