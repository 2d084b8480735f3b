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
    /// Fault injection: fraction (0-1) of API requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Fault injection: fraction of API requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Fault injection: fraction of API requests whose connection is reset.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Fault injection: milliseconds of latency added to every request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault injection: end every watch after this many milliseconds.
    #[arg(long)]
    pub watch_expiry_ms: Option<u64>,
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
        faults: kubesim::Faults {
            error_rate: rate("--fail-rate", args.fail_rate)?,
            throttle_rate: rate("--throttle-rate", args.throttle_rate)?,
            retry_after_secs: 1,
            reset_rate: rate("--reset-rate", args.reset_rate)?,
            latency: Duration::from_millis(args.latency_ms),
            watch_expiry: args.watch_expiry_ms.map(Duration::from_millis),
        },
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

fn rate(flag: &str, v: f64) -> anyhow::Result<f64> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        anyhow::bail!("{flag} must be a fraction between 0 and 1, got {v}")
    }
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
