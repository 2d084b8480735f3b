//! The CRDs checked in under `deploy/crds/` are exactly what the Rust types generate.

use std::path::Path;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let crds = api::crd::all();
    let mut stale = Vec::new();
    for crd in &crds {
        let name = api::crd::file_name(crd);
        let expected = api::crd::to_yaml(crd).unwrap_or_else(|e| panic!("{name}: {e}"));
        if std::fs::read_to_string(dir.join(&name)).ok().as_deref() != Some(expected.as_str()) {
            stale.push(name);
        }
    }
    let on_disk = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        stale.is_empty() && on_disk == crds.len(),
        "deploy/crds is stale ({stale:?}, {on_disk} files for {} CRDs): run `cargo run -p fleet --bin crdgen`",
        crds.len()
    );
}

#[test]
fn the_deploy_kustomization_lists_every_crd() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let missing: Vec<String> = api::crd::all()
        .iter()
        .map(|crd| format!("crds/{}", api::crd::file_name(crd)))
        .filter(|entry| !text.lines().any(|line| line.trim() == format!("- {entry}")))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/kustomization.yaml does not list {missing:?}"
    );
}
