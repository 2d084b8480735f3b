//! `flotilla-agent`: a few lines over the library, so tests can run a whole agent in-process.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = agent::config::AgentConfig::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    actix::System::new().block_on(async move {
        let shutdown = async {
            // Without a signal handler the agent would run until killed; either way is safe.
            let _ = tokio::signal::ctrl_c().await;
        };
        agent::runtime::run(config, shutdown).await
    })?;
    Ok(())
}
