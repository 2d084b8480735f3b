//! Writes the CustomResourceDefinitions of every kind in `shared/api` to `deploy/crds/`
//! (or the directory given as the only argument). A test in `shared/api` fails when the
//! checked-in files differ from what this writes.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let crds = api::crd::all();
    for crd in &crds {
        let path = dir.join(api::crd::file_name(crd));
        let yaml = api::crd::to_yaml(crd)
            .with_context(|| format!("serializing {}", crd.spec.names.kind))?;
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote {} CRDs to {}", crds.len(), dir.display());
    Ok(())
}
