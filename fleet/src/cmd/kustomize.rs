//! `flotilla kustomize DIR`: the native kustomize engine, printing what `kubectl kustomize` prints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct KustomizeArgs {
    /// The directory holding kustomization.yaml (or plain manifests, as Flux allows).
    pub dir: PathBuf,
    /// Build a directory without a kustomization file the way Flux does (list its manifests).
    #[arg(long)]
    pub flux: bool,
}

fn build(root: &Path, entry: &Path, flux: bool) -> Result<String, kustomize::Error> {
    let fs = kustomize::DiskFs::new(root)?;
    let opts = kustomize::Options {
        generate_missing_kustomization: flux,
        ..Default::default()
    };
    let built = kustomize::build_with_warnings(&fs, &entry.to_string_lossy(), &opts)?;
    // kubectl reports deprecated kustomization fields on stderr.
    for w in &built.warnings {
        eprintln!("{w}");
    }
    kustomize::print(&built.objects)
}

pub fn run(args: KustomizeArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", args.dir.display()))?;
    // Read below the working directory when the build stays there (errors then name paths
    // relative to it); like kubectl, fall back to the whole disk when bases live elsewhere.
    let cwd = std::env::current_dir().and_then(|d| d.canonicalize()).ok();
    let below_cwd = cwd.as_deref().and_then(|c| {
        dir.strip_prefix(c)
            .ok()
            .map(|rel| (c.to_path_buf(), rel.to_path_buf()))
    });
    let disk_root = || {
        (
            PathBuf::from("/"),
            dir.strip_prefix("/").unwrap_or(&dir).to_path_buf(),
        )
    };
    let out = match below_cwd {
        Some((root, entry)) => match build(&root, &entry, args.flux) {
            Err(e) if e.is_outside_root() => {
                let (root, entry) = disk_root();
                build(&root, &entry, args.flux)
            }
            other => other,
        },
        None => {
            let (root, entry) = disk_root();
            build(&root, &entry, args.flux)
        }
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
