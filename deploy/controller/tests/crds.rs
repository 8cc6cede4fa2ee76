//! The CRDs in deploy/crds/ are exactly what the Rust types render (CI fails on drift; regenerate with
//! `cargo run -p switchyard-kube --bin crdgen -- deploy/crds`).

#[test]
fn deploy_crds_match_the_rust_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let crds = switchyard_kube::crd::rendered_crds();
    assert_eq!(crds.len(), 2, "Broker and Trigger");
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
    for (name, yaml) in switchyard_kube::crd::rendered_crds() {
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
        let version = &v["spec"]["versions"][0];
        assert_eq!(version["name"], "v1", "{name}");
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
            !yaml.contains("$ref"),
            "{name}: structural schemas cannot use $ref"
        );
        assert!(
            !yaml.contains("default: ''"),
            "{name}: Kubernetes 1.20 rejects empty string defaults"
        );
    }
}
