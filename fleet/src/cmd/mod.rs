//! One module per subcommand; each exposes its clap `Args` and a `run` function.

pub mod act;
pub mod cluster;
pub mod demo;
pub mod fleet;
pub mod get;
pub mod kustomize;
pub mod serve;
pub mod sim;

/// Process-wide set-up shared by every subcommand: the one rustls crypto provider (aws-lc-rs)
/// and logging to stderr, filtered by `RUST_LOG`.
pub fn init_process() {
    // Installing twice (e.g. in tests that call this again) is harmless: the first one stays.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
