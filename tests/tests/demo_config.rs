//! The demo's fleet repository (`config/demo`) builds, with our engine, to exactly what
//! `kubectl kustomize` prints, for every path a cluster syncs.

use std::path::Path;
use std::process::Command;

const PATHS: &[&str] = &[
    "infrastructure",
    "apps/staging",
    "apps/production",
    "clusters/staging",
    "clusters/production",
    "clusters/production-clone",
];

#[test]
fn every_demo_path_builds_like_kubectl_kustomize() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo");
    let fs = kustomize::DiskFs::new(&root).unwrap_or_else(|e| panic!("{e}"));
    for path in PATHS {
        let objects = kustomize::build(&fs, path, &kustomize::Options::default())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let ours = kustomize::print(&objects).unwrap_or_else(|e| panic!("{path}: {e}"));
        let kubectl = Command::new("kubectl")
            .arg("kustomize")
            .arg(root.join(path))
            .output()
            .unwrap_or_else(|e| panic!("kubectl is required for this test: {e}"));
        assert!(
            kubectl.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&kubectl.stderr)
        );
        assert_eq!(ours, String::from_utf8_lossy(&kubectl.stdout), "{path}");
    }
}

#[test]
fn production_clone_syncs_what_production_syncs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo");
    let fs = kustomize::DiskFs::new(&root).unwrap_or_else(|e| panic!("{e}"));
    let build = |path| {
        let objects = kustomize::build(&fs, path, &kustomize::Options::default())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        kustomize::print(&objects).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    assert_eq!(
        build("clusters/production-clone"),
        build("clusters/production")
    );
}
