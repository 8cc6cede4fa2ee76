//! Knative conformance routing cases against a real broker and real HTTP subscribers.

use crate::common::*;

#[tokio::test]
async fn trigger_without_filter_receives_everything() {
    let sub = Subscriber::start().await;
    let b = TestBroker::start(&config("", &[trigger("all", "", &sub.url("/all"))])).await;
    let r = post(
        &b.ingress("/default/default"),
        &ce_headers("1", "a.type"),
        "{\"x\":1}",
    )
    .await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for("/all", 1).await;
    assert_eq!(got[0].header("ce-id").as_deref(), Some("1"));
    assert_eq!(got[0].header("ce-type").as_deref(), Some("a.type"));
    assert_eq!(&got[0].body[..], b"{\"x\":1}");
    b.shutdown().await;
}

#[tokio::test]
async fn type_filter_match_and_mismatch_and_two_triggers() {
    let sub = Subscriber::start().await;
    let yaml = config(
        "",
        &[
            trigger(
                "orders",
                "  filter:\n    attributes:\n      type: order.created\n",
                &sub.url("/orders"),
            ),
            trigger(
                "payments",
                "  filter:\n    attributes:\n      type: payment.done\n",
                &sub.url("/payments"),
            ),
            trigger("all", "", &sub.url("/all")),
        ],
    );
    let b = TestBroker::start(&yaml).await;
    for (id, ty) in [
        ("1", "order.created"),
        ("2", "payment.done"),
        ("3", "other"),
    ] {
        let r = post(&b.ingress("/default/default"), &ce_headers(id, ty), "{}").await;
        assert_eq!(r.status, 202);
    }
    sub.wait_for("/all", 3).await;
    let orders = sub.wait_for("/orders", 1).await;
    let payments = sub.wait_for("/payments", 1).await;
    // Everything that will arrive has arrived once /all has all three (same broker, same commit).
    // Give the dispatcher a moment to prove no extra delivery happens, by sending a sentinel.
    let r = post(
        &b.ingress("/default/default"),
        &ce_headers("4", "order.created"),
        "{}",
    )
    .await;
    assert_eq!(r.status, 202);
    let orders_after = sub.wait_for("/orders", 2).await;
    assert_eq!(orders[0].header("ce-id").as_deref(), Some("1"));
    assert_eq!(
        orders_after
            .iter()
            .map(|r| r.header("ce-id").unwrap())
            .collect::<Vec<_>>(),
        vec!["1", "4"]
    );
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].header("ce-id").as_deref(), Some("2"));
    assert_eq!(sub.received_on("/payments").len(), 1);
    b.shutdown().await;
}

#[tokio::test]
async fn new_filters_override_legacy_filter_and_missing_attribute_fails() {
    let sub = Subscriber::start().await;
    let yaml = config(
        "",
        &[
            trigger(
                "override",
                "  filter:\n    attributes:\n      type: never\n  filters:\n    - prefix:\n        type: com.\n    - exact:\n        myext: yes\n",
                &sub.url("/override"),
            ),
            trigger("sentinel", "", &sub.url("/sentinel")),
        ],
    );
    let b = TestBroker::start(&yaml).await;
    let mut with_ext = ce_headers("1", "com.x");
    with_ext.push(("ce-myext", "yes"));
    assert_eq!(
        post(&b.ingress("/default/default"), &with_ext, "{}")
            .await
            .status,
        202
    );
    // missing extension → no match
    b.send("2", "com.x").await;
    sub.wait_for("/sentinel", 2).await;
    let got = sub.wait_for("/override", 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("ce-id").as_deref(), Some("1"));
    b.shutdown().await;
}

#[tokio::test]
async fn reply_chain_reaches_second_trigger() {
    let sub = Subscriber::start().await;
    let yaml = config(
        "",
        &[
            trigger(
                "first",
                "  filter:\n    attributes:\n      type: step.one\n",
                &sub.url("/first"),
            ),
            trigger(
                "second",
                "  filter:\n    attributes:\n      type: step.two\n",
                &sub.url("/second"),
            ),
        ],
    );
    sub.script([Reply::status(200)
        .header("ce-specversion", "1.0")
        .header("ce-id", "reply-1")
        .header("ce-source", "/first")
        .header("ce-type", "step.two")
        .header("content-type", "text/plain")
        .body("from first")]);
    let b = TestBroker::start(&yaml).await;
    let r = post(
        &b.ingress("/default/default"),
        &ce_headers("1", "step.one"),
        "{}",
    )
    .await;
    assert_eq!(r.status, 202);
    let got = sub.wait_for("/second", 1).await;
    assert_eq!(got[0].header("ce-id").as_deref(), Some("reply-1"));
    assert_eq!(&got[0].body[..], b"from first");
    // TTL is never shown to subscribers.
    assert!(got[0].header("ce-knativebrokerttl").is_none());
    assert!(sub.received_on("/first")[0]
        .header("ce-knativebrokerttl")
        .is_none());
    b.shutdown().await;
}

#[tokio::test]
async fn cesql_filters_route_events() {
    let sub = Subscriber::start().await;
    let yaml = config(
        "",
        &[
            trigger(
                "shop-orders",
                "  filters:\n    - cesql: \"type = 'com.example.order' AND source LIKE 'https://shop/%'\"\n",
                &sub.url("/orders"),
            ),
            trigger(
                "big",
                "  filters:\n    - cesql: \"INT(amount) > 100 AND NOT EXISTS subject\"\n",
                &sub.url("/big"),
            ),
            trigger("sentinel", "", &sub.url("/sentinel")),
        ],
    );
    let b = TestBroker::start(&yaml).await;
    let url = b.ingress("/default/default");
    let send =
        |id: &'static str, ty: &'static str, source: &'static str, amount: Option<&'static str>| {
            let url = url.clone();
            async move {
                let mut h = vec![
                    ("ce-specversion", "1.0"),
                    ("ce-id", id),
                    ("ce-source", source),
                    ("ce-type", ty),
                ];
                if let Some(a) = amount {
                    h.push(("ce-amount", a));
                }
                assert_eq!(post(&url, &h, "").await.status, 202);
            }
        };
    send("1", "com.example.order", "https://shop/eu", Some("50")).await;
    send("2", "com.example.order", "https://other/eu", Some("500")).await;
    send("3", "com.example.refund", "https://shop/eu", None).await; // amount missing → error → no match
    sub.wait_for("/sentinel", 3).await;
    let orders = sub.wait_for("/orders", 1).await;
    let big = sub.wait_for("/big", 1).await;
    // A sentinel for each proves nothing else was routed to them.
    send("4", "com.example.order", "https://shop/us", Some("1000")).await;
    sub.wait_for("/sentinel", 4).await;
    let orders = sub.wait_for("/orders", orders.len() + 1).await;
    let big = sub.wait_for("/big", big.len() + 1).await;
    let ids = |v: &[Received]| {
        v.iter()
            .filter_map(|r| r.header("ce-id"))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&orders), vec!["1", "4"]);
    assert_eq!(ids(&big), vec!["2", "4"]);
    b.shutdown().await;
}
