//! Every Flux object in the seeds' fleet repository (Flux's flux2-kustomize-helm-example,
//! read from `$FLOTILLA_CORPUS/fleet-repo`) parses into our types.

use std::path::{Path, PathBuf};

use api::parse::{Document, FluxObject, parse_yaml};

fn corpus() -> PathBuf {
    let root = std::env::var_os("FLOTILLA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    assert!(
        root.join("fleet-repo").is_dir(),
        "conformance corpus not found at {} (set FLOTILLA_CORPUS)",
        root.display()
    );
    root
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Files that kustomization.yaml files name as patches: they are fragments of an object,
/// checked below by applying them to the object they patch.
fn patch_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut patches = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "kustomization.yaml"))
    {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for patch in value
            .get("patches")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(path) = patch.get("path").and_then(|p| p.as_str()) {
                patches.push(file.with_file_name(path));
            }
        }
    }
    patches
}

/// A strategic merge of maps, enough for patches that only set fields of maps.
fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge(
                    base.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[test]
fn every_flux_object_in_the_fleet_repository_parses() {
    let root = corpus().join("fleet-repo");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let patches = patch_files(&files);
    let mut parsed = Vec::new();
    for file in files.iter().filter(|f| !patches.contains(f)) {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for document in parse_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display())) {
            if let Document::Flux(object) = document {
                parsed.push(*object);
            }
        }
    }
    let count = |f: fn(&FluxObject) -> bool| parsed.iter().filter(|o| f(o)).count();
    assert_eq!(count(|o| matches!(o, FluxObject::Kustomization(_))), 6);
    assert_eq!(count(|o| matches!(o, FluxObject::HelmRelease(_))), 3);
    assert_eq!(count(|o| matches!(o, FluxObject::HelmRepository(_))), 1);
    assert_eq!(count(|o| matches!(o, FluxObject::OCIRepository(_))), 2);
    assert_eq!(count(|o| matches!(o, FluxObject::ArtifactGenerator(_))), 2);
}

#[test]
fn every_helm_release_patch_in_the_fleet_repository_parses_once_applied() {
    let root = corpus().join("fleet-repo");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    let base_text = std::fs::read_to_string(root.join("apps/base/podinfo/release.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let base: serde_json::Value =
        serde_saphyr::from_str(&base_text).unwrap_or_else(|e| panic!("{e}"));
    let patches = patch_files(&files);
    assert!(
        !patches.is_empty(),
        "the fleet repository patches its HelmReleases per cluster"
    );
    for patch_file in patches {
        let text = std::fs::read_to_string(&patch_file)
            .unwrap_or_else(|e| panic!("{}: {e}", patch_file.display()));
        let patch: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let mut patched = base.clone();
        merge(&mut patched, &patch);
        let document = api::parse::parse_value(patched, 0)
            .unwrap_or_else(|e| panic!("{}: {e}", patch_file.display()));
        assert!(
            matches!(document, Document::Flux(ref o) if matches!(**o, FluxObject::HelmRelease(_)))
        );
    }
}
