//! `flotilla kustomize DIR`: the native kustomize engine, printing what `kubectl kustomize` prints.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

#[derive(Debug, Args)]
pub struct KustomizeArgs {
    /// The directory holding kustomization.yaml (or plain manifests, as Flux allows).
    pub dir: PathBuf,
}

pub fn run(args: KustomizeArgs) -> anyhow::Result<()> {
    bail!("the kustomize engine is not built yet (asked to build {})", args.dir.display())
}
