//! `flotilla kustomize DIR`: the native kustomize engine, printing what `kubectl kustomize` prints.

use std::io::Write;
use std::path::PathBuf;

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

pub fn run(args: KustomizeArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", args.dir.display()))?;
    // Like kubectl, bases may live anywhere on disk, so the filesystem root is the root.
    let fs = kustomize::DiskFs::new("/")?;
    let entry = dir.to_string_lossy().trim_start_matches('/').to_string();
    let opts = kustomize::Options {
        generate_missing_kustomization: args.flux,
        ..Default::default()
    };
    let objs = kustomize::build(&fs, &entry, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = kustomize::print(&objs).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}
