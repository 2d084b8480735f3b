//! `flotilla serve`: run the fleet server until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::home::FleetHome;
use crate::server::{self, ServeConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The fleet's data directory (CA, server certificate, registry).
    #[arg(long, env = "FLOTILLA_HOME", default_value_os_t = FleetHome::default_dir())]
    pub dir: PathBuf,
    /// Where agents connect (mutual TLS, cluster certificates).
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub agent_addr: SocketAddr,
    /// Where the admin API, /metrics and /healthz listen.
    #[arg(long, default_value = "127.0.0.1:9444")]
    pub api_addr: SocketAddr,
    /// Seconds between agent heartbeats.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_seconds: u64,
    /// Missed heartbeats before a cluster counts as disconnected.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub missed_heartbeats: u32,
    /// Seconds between registry reloads (new clusters, revocations).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub registry_poll_seconds: u64,
    /// Worker threads per listener.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Do not accept the bearer token in DIR/admin-token (admin certificates only).
    #[arg(long)]
    pub no_token: bool,
    #[command(flatten)]
    pub registry: super::cluster::RegistryArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let home = FleetHome::new(&args.dir);
    let admin_token = if args.no_token || !home.path("admin-token").exists() {
        None
    } else {
        Some(home.read_secret("admin-token")?)
    };
    let config = ServeConfig {
        agent_addr: args.agent_addr,
        api_addr: args.api_addr,
        ca_pem: home.read_public("ca.crt")?,
        server_cert_pem: home.read_public("server.crt")?,
        server_key_pem: home.read_secret("server.key")?,
        admin_token,
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
        missed_heartbeats: args.missed_heartbeats,
        registry_poll: Duration::from_secs(args.registry_poll_seconds),
        workers: args.workers,
    };
    actix_web::rt::System::new().block_on(async move {
        let registry = args.registry.open(&home).await?;
        let fleet = server::start(config, registry).await?;
        eprintln!(
            "fleet serving agents on {} and the API on {}",
            fleet.agent_addr, fleet.api_addr
        );
        tokio::signal::ctrl_c().await?;
        tracing::info!("interrupted; stopping");
        fleet.stop().await;
        Ok(())
    })
}
