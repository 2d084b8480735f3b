//! `flotilla demo`: the whole fleet on one machine, until Ctrl-C (see [`crate::demo`]).

use std::path::PathBuf;

use clap::Args;

use crate::demo::{self, DemoConfig};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its repository, clusters and credentials; a rerun resumes from it.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
    /// The port of the fleet API and console (127.0.0.1).
    #[arg(long, default_value_t = demo::DEFAULT_PORT)]
    pub port: u16,
}

/// `$HOME/flotilla-demo`, else `./flotilla-demo`.
fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("flotilla-demo")
}

/// As [`super::init_process`], but logging only errors unless `RUST_LOG` says otherwise: the
/// demo's own lines are what a newcomer should read.
pub fn init_process() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = DemoConfig {
        dir: args.dir,
        port: args.port,
    };
    // The kubesims and the fleet share one multi-threaded runtime, so no simulated cluster
    // waits behind another; actix's own actors run on the system's local set.
    let system = actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
    });
    system.block_on(async move {
        let interrupted = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        demo::run(config, interrupted).await
    })?;
    Ok(())
}
