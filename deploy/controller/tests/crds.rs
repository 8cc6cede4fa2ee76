//! The CRDs in deploy/crds/ are exactly what the Rust types render (CI fails on drift; regenerate with
//! `cargo run -p switchyard-kube --bin crdgen -- deploy/crds`).

#[test]
fn deploy_crds_match_the_rust_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let crds = switchyard_kube::crds::rendered_crds();
    let names: Vec<&str> = crds.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "brokers.eventing.knative.dev.yaml",
            "triggers.eventing.knative.dev.yaml",
            "kafkasources.sources.knative.dev.yaml",
            "kafkasinks.eventing.knative.dev.yaml",
            "natssources.sources.switchyard.dev.yaml",
            "natssinks.sources.switchyard.dev.yaml",
        ]
    );
    for (name, yaml) in crds {
        let path = dir.join(&name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run crdgen", path.display()));
        assert!(
            on_disk == yaml,
            "{} differs from the Rust types in deploy/controller/src/crd.rs; run \
             `cargo run -p switchyard-kube --bin crdgen -- deploy/crds`",
            path.display()
        );
    }
}

#[test]
fn crds_are_structural_and_knative_shaped() {
    for (name, yaml) in switchyard_kube::crds::rendered_crds() {
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
        let version = &v["spec"]["versions"][0];
        // Knative's versions: eventing v1 (Broker, Trigger), sources v1beta1 (KafkaSource), eventing
        // v1alpha1 (KafkaSink); Switchyard's own sources.switchyard.dev v1alpha1 (NatsSource, NatsSink).
        let expected = match v["spec"]["names"]["kind"].as_str() {
            Some("Broker" | "Trigger") => "v1",
            Some("KafkaSource") => "v1beta1",
            _ => "v1alpha1",
        };
        assert_eq!(version["name"], expected, "{name}");
        assert_eq!(
            version["subresources"]["status"],
            serde_yaml::Value::Mapping(Default::default()),
            "{name}: status subresource"
        );
        let schema = &version["schema"]["openAPIV3Schema"]["properties"];
        assert_eq!(
            schema["status"]["properties"]["conditions"]["type"], "array",
            "{name}"
        );
        assert!(
            !yaml.contains("x-kubernetes-validations"),
            "{name}: kubectl 1.20's validation rejects CEL rules"
        );
        assert!(
            !yaml.contains("$ref"),
            "{name}: structural schemas cannot use $ref"
        );
        assert!(
            !yaml.contains("default: ''"),
            "{name}: Kubernetes 1.20 rejects empty string defaults"
        );
    }
}
