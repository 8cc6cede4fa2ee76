//! Reconciler tests against tower-test's mock API server (controller-rs style): each test scripts the
//! API calls a reconcile must make, in order, and checks what it writes.

use super::*;
use crate::crd::{BrokerSpec, Destination, KReference, TriggerFilter};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let settings = Settings {
        system_namespace: "sys".into(),
        ..Settings::default()
    };
    (
        Arc::new(Context::new(
            client,
            settings,
            Arc::new(crate::metrics::ControllerMetrics::default()),
        )),
        handle,
    )
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, status: u16, body: Value) {
    send.send_response(
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

fn not_found(kind: &str, name: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
           "message": format!("{kind} \"{name}\" not found"), "code": 404})
}

/// Expects a request with this method and path; returns its JSON body (Null when empty).
async fn expect(
    handle: &mut Handle,
    method: Method,
    path: &str,
) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request; expected {method} {path}"))
        .expect("service dropped");
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().path(), path);
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (body, send)
}

/// Expects the status write (PUT, answered with what was sent) and the Event the transition publishes;
/// returns the written object and the event.
async fn status_written_with_event(handle: &mut Handle, status_path: &str) -> (Value, Value) {
    let (body, send) = expect(handle, Method::PUT, status_path).await;
    respond(send, 200, body.clone());
    let (event, send) = expect(
        handle,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/ns/events",
    )
    .await;
    respond(send, 201, event.clone());
    (body, event)
}

async fn no_more_requests(handle: &mut Handle) {
    let next = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    if let Ok(Some((request, _))) = next {
        panic!(
            "unexpected extra request {} {}",
            request.method(),
            request.uri()
        );
    }
}

fn broker(class: Option<&str>, spec: BrokerSpec) -> Broker {
    let mut b = Broker::new("b", spec);
    b.metadata.namespace = Some("ns".into());
    b.metadata.generation = Some(3);
    b.metadata.resource_version = Some("7".into());
    if let Some(c) = class {
        b.metadata.annotations = Some(
            [(
                switchyard_broker::config::manifest::BROKER_CLASS_ANNOTATION.to_owned(),
                c.to_owned(),
            )]
            .into(),
        );
    }
    b
}

fn endpoints(ready: bool) -> Value {
    let subsets = if ready {
        json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 8080}]}])
    } else {
        json!([])
    };
    json!({"apiVersion": "v1", "kind": "Endpoints",
           "metadata": {"name": "switchyard-ingress", "namespace": "sys"}, "subsets": subsets})
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no condition {type_} in {status}"))
}

#[tokio::test]
async fn broker_becomes_ready_with_its_address_and_an_event() {
    let (ctx, mut handle) = context();
    let b = broker(Some("Switchyard"), BrokerSpec::default());
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/sys/endpoints/switchyard-ingress",
        )
        .await;
        respond(send, 200, endpoints(true));
        let (body, event) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b/status",
        )
        .await;
        no_more_requests(&mut handle).await;
        (body, event)
    });
    let action = reconcile_broker(Arc::new(b), ctx)
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Settings::default().resync));
    let (written, event) = server.await.unwrap();
    let status = &written["status"];
    assert_eq!(
        written["metadata"]["resourceVersion"], "7",
        "optimistic concurrency"
    );
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(
        status["address"]["url"],
        "http://switchyard-ingress.sys.svc.cluster.local/ns/b"
    );
    for t in [
        "Ready",
        "Addressable",
        "DataPlaneAvailable",
        "DeadLetterSinkResolved",
        "SpecValid",
    ] {
        assert_eq!(condition(status, t)["status"], "True", "{t}");
    }
    assert_eq!(
        condition(status, "DeadLetterSinkResolved")["reason"],
        "DeadLetterSinkNotConfigured"
    );
    assert_eq!(status["annotations"]["switchyard.dev/class"], "Switchyard");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reason"], "Ready");
}

#[tokio::test]
async fn broker_without_endpoints_or_with_missing_configmap_is_not_ready() {
    let (ctx, mut handle) = context();
    let b = broker(
        Some("Switchyard"),
        switchyard_broker::model::eventing::BrokerSpec {
            config: Some(KReference {
                kind: "ConfigMap".into(),
                name: "kafka".into(),
                api_version: Some("v1".into()),
                ..KReference::default()
            }),
            ..Default::default()
        }
        .into(),
    );
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/ns/configmaps/kafka",
        )
        .await;
        respond(send, 404, not_found("configmaps", "kafka"));
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/sys/endpoints/switchyard-ingress",
        )
        .await;
        respond(send, 200, endpoints(false));
        let (body, event) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b/status",
        )
        .await;
        (body, event)
    });
    reconcile_broker(Arc::new(b), ctx)
        .await
        .expect("reconciled");
    let (written, event) = server.await.unwrap();
    let status = &written["status"];
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(
        condition(status, "DataPlaneAvailable")["reason"],
        "NoEndpoints"
    );
    assert_eq!(
        condition(status, "SpecValid")["reason"],
        "ConfigMapNotFound"
    );
    assert!(condition(status, "SpecValid")["message"]
        .as_str()
        .unwrap()
        .contains("ConfigMap ns/kafka not found"));
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn brokers_of_other_classes_are_left_alone() {
    let (ctx, mut handle) = context();
    let b = broker(Some("MTChannelBasedBroker"), BrokerSpec::default());
    let action = reconcile_broker(Arc::new(b), ctx)
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
    no_more_requests(&mut handle).await;
}

/// Runs one reconcile of a Ready broker and returns the status it wrote.
async fn ready_broker_status(b: &Broker) -> BrokerStatus {
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/sys/endpoints/switchyard-ingress",
        )
        .await;
        respond(send, 200, endpoints(true));
        let (body, _) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b/status",
        )
        .await;
        body
    });
    reconcile_broker(Arc::new(b.clone()), ctx)
        .await
        .expect("reconciled");
    serde_json::from_value(server.await.unwrap()["status"].clone()).unwrap()
}

#[tokio::test]
async fn unchanged_status_is_not_written_again() {
    let mut b = broker(None, BrokerSpec::default());
    b.status = Some(ready_broker_status(&b).await);
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/sys/endpoints/switchyard-ingress",
        )
        .await;
        respond(send, 200, endpoints(true));
        no_more_requests(&mut handle).await;
    });
    reconcile_broker(Arc::new(b), ctx)
        .await
        .expect("reconciled");
    server.await.unwrap();
}

#[tokio::test]
async fn changing_the_broker_class_is_reported_not_applied() {
    let mut b = broker(None, BrokerSpec::default());
    b.status = Some(ready_broker_status(&b).await);
    // Now the Broker is re-pointed at another config: spec.config is immutable.
    b.spec.config = Some(KReference {
        kind: "ConfigMap".into(),
        name: "other".into(),
        ..KReference::default()
    });
    b.metadata.generation = Some(4);
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/sys/endpoints/switchyard-ingress",
        )
        .await;
        respond(send, 200, endpoints(true));
        let (body, _) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b/status",
        )
        .await;
        body
    });
    reconcile_broker(Arc::new(b), ctx)
        .await
        .expect("reconciled");
    let written = server.await.unwrap();
    let valid = condition(&written["status"], "SpecValid");
    assert_eq!(valid["status"], "False");
    assert_eq!(valid["reason"], "ImmutableFieldChanged");
    assert!(valid["message"]
        .as_str()
        .unwrap()
        .starts_with("spec.config changed from none to"));
    assert_eq!(written["status"]["observedGeneration"], 4);
}

fn trigger(subscriber: Destination) -> Trigger {
    let mut t = Trigger::new(
        "t",
        switchyard_broker::model::eventing::TriggerSpec {
            broker: "b".into(),
            filter: Some(TriggerFilter {
                attributes: Some([("type".to_owned(), "a".to_owned())].into()),
            }),
            subscriber,
            ..Default::default()
        }
        .into(),
    );
    t.metadata.namespace = Some("ns".into());
    t.metadata.generation = Some(1);
    t
}

fn service_ref(name: &str, uri: Option<&str>) -> Destination {
    Destination {
        reference: Some(KReference {
            kind: "Service".into(),
            name: name.into(),
            api_version: Some("v1".into()),
            ..KReference::default()
        }),
        uri: uri.map(str::to_owned),
        ..Destination::default()
    }
}

#[tokio::test]
async fn trigger_before_its_broker_says_so() {
    let (ctx, mut handle) = context();
    let t = trigger(Destination {
        uri: Some("http://sink.example/".into()),
        ..Destination::default()
    });
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b",
        )
        .await;
        respond(send, 404, not_found("brokers", "b"));
        let (body, event) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/triggers/t/status",
        )
        .await;
        (body, event)
    });
    reconcile_trigger(Arc::new(t), ctx)
        .await
        .expect("reconciled");
    let (written, event) = server.await.unwrap();
    let status = &written["status"];
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(
        condition(status, "BrokerReady")["reason"],
        "BrokerDoesNotExist"
    );
    assert_eq!(condition(status, "SubscriberResolved")["status"], "True");
    assert_eq!(status["subscriberUri"], "http://sink.example/");
    assert_eq!(event["reason"], "BrokerDoesNotExist");
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn trigger_resolves_a_service_ref_and_follows_its_ready_broker() {
    let mut b = broker(Some("Switchyard"), BrokerSpec::default());
    b.status = Some(ready_broker_status(&b).await);
    let broker_json = serde_json::to_value(&b).unwrap();
    let (ctx, mut handle) = context();
    let t = trigger(service_ref("svc", Some("/events")));
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b",
        )
        .await;
        respond(send, 200, broker_json);
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/ns/services/svc",
        )
        .await;
        respond(
            send,
            200,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "ns"}}),
        );
        let (body, _) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/triggers/t/status",
        )
        .await;
        body
    });
    reconcile_trigger(Arc::new(t), ctx)
        .await
        .expect("reconciled");
    let status = server.await.unwrap()["status"].clone();
    assert_eq!(
        status["subscriberUri"],
        "http://svc.ns.svc.cluster.local/events"
    );
    for c in [
        "Ready",
        "BrokerReady",
        "SubscriberResolved",
        "DeadLetterSinkResolved",
        "SpecValid",
    ] {
        assert_eq!(condition(&status, c)["status"], "True", "{c}");
    }
    assert_eq!(status["annotations"]["switchyard.dev/broker"], "b");
}

#[tokio::test]
async fn trigger_with_a_missing_service_and_a_bad_filter_reports_both() {
    let (ctx, mut handle) = context();
    let mut t = trigger(service_ref("gone", None));
    t.spec.filters = vec![json!({"cesql": "type = "})];
    let server = tokio::spawn(async move {
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b",
        )
        .await;
        respond(send, 404, not_found("brokers", "b"));
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/api/v1/namespaces/ns/services/gone",
        )
        .await;
        respond(send, 404, not_found("services", "gone"));
        let (body, _) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1/namespaces/ns/triggers/t/status",
        )
        .await;
        body
    });
    reconcile_trigger(Arc::new(t), ctx)
        .await
        .expect("reconciled");
    let status = server.await.unwrap()["status"].clone();
    let sub = condition(&status, "SubscriberResolved");
    assert_eq!(sub["status"], "False");
    assert_eq!(sub["reason"], "Unresolved");
    assert!(sub["message"]
        .as_str()
        .unwrap()
        .contains("Service ns/gone not found"));
    assert!(
        status.get("subscriberUri").is_none(),
        "no URI while unresolved"
    );
    let valid = condition(&status, "SpecValid");
    assert_eq!(valid["status"], "False");
    assert!(
        valid["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.filters[0].cesql"),
        "{valid}"
    );
}

#[tokio::test]
async fn api_errors_back_off_exponentially_per_object() {
    let (ctx, _handle) = context();
    let err = || Error::ClientConfig("boom".into());
    let b = Arc::new(broker(None, BrokerSpec::default()));
    let delays: Vec<Action> = (0..4)
        .map(|_| broker_error_policy(b.clone(), &err(), ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        [500u64, 1000, 2000, 4000]
            .map(|ms| Action::requeue(Duration::from_millis(ms)))
            .to_vec()
    );
    // Other objects have their own count.
    let t = Arc::new(trigger(Destination::default()));
    assert_eq!(
        trigger_error_policy(t, &err(), ctx.clone()),
        Action::requeue(Duration::from_millis(500))
    );
}

fn eventing_v1_resources() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "eventing.knative.dev/v1",
           "resources": [
               {"name": "brokers", "singularName": "broker", "namespaced": true, "kind": "Broker",
                "verbs": ["get", "list", "watch"]},
               {"name": "brokers/status", "singularName": "", "namespaced": true, "kind": "Broker",
                "verbs": ["get", "update"]}]})
}

fn broker_sink(name: &str) -> crate::crd_sources::SourceSink {
    crate::crd_sources::SourceSink {
        reference: Some(crate::crd_sources::SinkRef {
            api_version: "eventing.knative.dev/v1".into(),
            kind: "Broker".into(),
            name: name.into(),
            namespace: None,
        }),
        uri: None,
    }
}

#[tokio::test]
async fn source_with_a_broker_sink_is_ready_with_the_broker_address() {
    let mut b = broker(Some("Switchyard"), BrokerSpec::default());
    b.status = Some(ready_broker_status(&b).await);
    let address = b
        .status
        .as_ref()
        .unwrap()
        .address
        .clone()
        .unwrap()
        .url
        .unwrap();
    let broker_json = serde_json::to_value(&b).unwrap();
    let mut src = crate::crd_sources::NatsSource::new(
        "src",
        switchyard_broker::model::sources::NatsSourceSpec {
            servers: json!(["nats://n:4222"]),
            subject: "orders.>".into(),
            sink: broker_sink("b"),
            ..Default::default()
        }
        .into(),
    );
    src.metadata.namespace = Some("ns".into());
    src.metadata.generation = Some(2);
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut handle, Method::GET, "/apis/eventing.knative.dev/v1").await;
        respond(send, 200, eventing_v1_resources());
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b",
        )
        .await;
        respond(send, 200, broker_json);
        let (body, event) = status_written_with_event(
            &mut handle,
            "/apis/sources.switchyard.dev/v1alpha1/namespaces/ns/natssources/src/status",
        )
        .await;
        no_more_requests(&mut handle).await;
        (body, event)
    });
    let action = reconcile_object(Arc::new(src), ctx)
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Settings::default().resync));
    let (written, event) = server.await.unwrap();
    let status = &written["status"];
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["sinkUri"], address.as_str());
    assert_eq!(
        address,
        "http://switchyard-ingress.sys.svc.cluster.local/ns/b"
    );
    for t in ["Ready", "SinkProvided", "SpecValid"] {
        assert_eq!(condition(status, t)["status"], "True", "{t}: {status}");
    }
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reason"], "Ready");
}

#[tokio::test]
async fn source_with_a_missing_sink_is_not_ready() {
    let mut src = crate::crd_sources::KafkaSource::new(
        "src",
        switchyard_broker::model::sources::KafkaSourceSpec {
            bootstrap_servers: vec!["kafka:9092".into()],
            topics: vec!["orders".into()],
            sink: (&broker_sink("gone")).into(),
            ..Default::default()
        }
        .into(),
    );
    src.metadata.namespace = Some("ns".into());
    src.metadata.generation = Some(1);
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut handle, Method::GET, "/apis/eventing.knative.dev/v1").await;
        respond(send, 200, eventing_v1_resources());
        let (_, send) = expect(
            &mut handle,
            Method::GET,
            "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/gone",
        )
        .await;
        respond(send, 404, not_found("brokers.eventing.knative.dev", "gone"));
        let (body, event) = status_written_with_event(
            &mut handle,
            "/apis/sources.knative.dev/v1beta1/namespaces/ns/kafkasources/src/status",
        )
        .await;
        no_more_requests(&mut handle).await;
        (body, event)
    });
    reconcile_object(Arc::new(src), ctx)
        .await
        .expect("reconciled");
    let (written, event) = server.await.unwrap();
    let status = &written["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert!(status.get("sinkUri").is_none(), "{status}");
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(condition(status, "SinkProvided")["status"], "False");
    assert_eq!(condition(status, "SinkProvided")["reason"], "NotFound");
    let msg = condition(status, "SinkProvided")["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("Broker ns/gone not found"), "{msg}");
    assert_eq!(
        condition(status, "SpecValid")["status"],
        "True",
        "the spec itself is valid: {status}"
    );
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "NotFound");
}

#[tokio::test]
async fn invalid_sink_spec_is_reported() {
    let mut sink = crate::crd_sources::KafkaSink::new(
        "k",
        switchyard_broker::model::sources::KafkaSinkSpec {
            topic: "out".into(),
            bootstrap_servers: vec!["kafka:9092".into()],
            num_partitions: Some(10),
            ..Default::default()
        }
        .into(),
    );
    sink.metadata.namespace = Some("ns".into());
    sink.metadata.generation = Some(1);
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (body, _) = status_written_with_event(
            &mut handle,
            "/apis/eventing.knative.dev/v1alpha1/namespaces/ns/kafkasinks/k/status",
        )
        .await;
        body
    });
    reconcile_object(Arc::new(sink), ctx)
        .await
        .expect("reconciled");
    let status = server.await.unwrap()["status"].clone();
    assert_eq!(condition(&status, "SpecValid")["status"], "False");
    let msg = condition(&status, "SpecValid")["message"].as_str().unwrap();
    assert!(msg.contains("spec.numPartitions"), "{msg}");
    assert!(status.get("sinkUri").is_none());
}

#[tokio::test]
async fn trigger_with_a_nats_sink_subscriber_resolves_when_the_sink_exists() {
    let mut b = broker(Some("Switchyard"), BrokerSpec::default());
    b.status = Some(ready_broker_status(&b).await);
    let broker_json = serde_json::to_value(&b).unwrap();
    let sink_ref = Destination {
        reference: Some(KReference {
            kind: "NatsSink".into(),
            name: "out".into(),
            api_version: Some("sources.switchyard.dev/v1alpha1".into()),
            ..KReference::default()
        }),
        ..Destination::default()
    };
    for exists in [true, false] {
        let (ctx, mut handle) = context();
        let broker_json = broker_json.clone();
        let server = tokio::spawn(async move {
            let (_, send) = expect(
                &mut handle,
                Method::GET,
                "/apis/eventing.knative.dev/v1/namespaces/ns/brokers/b",
            )
            .await;
            respond(send, 200, broker_json);
            let (_, send) = expect(
                &mut handle,
                Method::GET,
                "/apis/sources.switchyard.dev/v1alpha1/namespaces/ns/natssinks/out",
            )
            .await;
            if exists {
                respond(
                    send,
                    200,
                    json!({"apiVersion": "sources.switchyard.dev/v1alpha1", "kind": "NatsSink",
                           "metadata": {"name": "out", "namespace": "ns"},
                           "spec": {"servers": ["nats://a:4222", "tls://b:4222"], "subject": "o.x"}}),
                );
            } else {
                respond(
                    send,
                    404,
                    not_found("natssinks.sources.switchyard.dev", "out"),
                );
            }
            let (body, _) = status_written_with_event(
                &mut handle,
                "/apis/eventing.knative.dev/v1/namespaces/ns/triggers/t/status",
            )
            .await;
            no_more_requests(&mut handle).await;
            body
        });
        reconcile_trigger(Arc::new(trigger(sink_ref.clone())), ctx)
            .await
            .expect("reconciled");
        let status = server.await.unwrap()["status"].clone();
        let resolved = condition(&status, "SubscriberResolved");
        assert_eq!(
            condition(&status, "SpecValid")["status"],
            "True",
            "{status}"
        );
        if exists {
            assert_eq!(resolved["status"], "True", "{status}");
            assert_eq!(condition(&status, "Ready")["status"], "True", "{status}");
            assert_eq!(status["subscriberUri"], "nats://a:4222,b:4222/o.x");
        } else {
            assert_eq!(resolved["status"], "False", "{status}");
            assert_eq!(resolved["reason"], "Unresolved");
            assert!(
                resolved["message"]
                    .as_str()
                    .unwrap()
                    .contains("NatsSink ns/out not found"),
                "{status}"
            );
            assert!(status.get("subscriberUri").is_none());
        }
    }
}
