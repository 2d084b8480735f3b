//! `flotilla sim`: serve kubesim on loopback and write a kubeconfig for kubectl and kube-rs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
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
    let addr = args
        .addr
        .parse()
        .with_context(|| format!("--addr {:?} is not an IP:port address", args.addr))?;
    let config = kubesim::Config {
        addr,
        data_dir: args.data_dir.clone(),
        ready_delay: Duration::from_millis(args.ready_delay),
        ..kubesim::Config::default()
    };
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let server = kubesim::Server::start(config).await.context("starting kubesim")?;
        write_private(&args.kubeconfig, &server.kubeconfig())
            .with_context(|| format!("writing the kubeconfig to {}", args.kubeconfig.display()))?;
        tracing::info!(url = %server.base_url(), kubeconfig = %args.kubeconfig.display(), "kubesim serving");
        eprintln!("kubesim serving on {} (kubeconfig: {})", server.base_url(), args.kubeconfig.display());
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        server.shutdown().await;
        Ok(())
    })
}

/// The kubeconfig carries the token: readable by the owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())
}
