//! `flotilla sim`: serve kubesim on loopback and write a kubeconfig for kubectl and kube-rs.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on, e.g. 127.0.0.1:6443.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub addr: String,
    /// Where to write the kubeconfig that clients use.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Keep state on disk here so it survives restarts; in memory when absent.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Milliseconds before simulated workloads report ready.
    #[arg(long, default_value_t = 1000)]
    pub ready_delay: u64,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    bail!("kubesim is not built yet (asked to serve on {})", args.addr)
}
