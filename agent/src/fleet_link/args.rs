//! The agent's fleet flags (`--fleet URL --fleet-ca --fleet-cert --fleet-key`), ready to be
//! flattened into the agent's command line, and the link they start.

use std::path::PathBuf;

use actix::prelude::*;
use tokio::sync::watch;

use super::link::{ExecuteCommand, FleetLink, FleetLinkConfig, FleetLinkError, LinkStatus};

/// A started link and its status channel.
pub type StartedLink = (Addr<FleetLink>, watch::Receiver<LinkStatus>);

/// How the agent reaches the fleet; the link is off when `--fleet` is absent.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// The fleet's agent endpoint, e.g. wss://fleet.example.com:9443/v1/agent.
    #[arg(long = "fleet", env = "FLOTILLA_FLEET_URL")]
    pub url: Option<String>,
    /// The fleet CA certificate (PEM).
    #[arg(long = "fleet-ca", env = "FLOTILLA_FLEET_CA", requires = "url")]
    pub ca: Option<PathBuf>,
    /// This cluster's client certificate (PEM), issued by `flotilla cluster add`.
    #[arg(long = "fleet-cert", env = "FLOTILLA_FLEET_CERT", requires = "url")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long = "fleet-key", env = "FLOTILLA_FLEET_KEY", requires = "url")]
    pub key: Option<PathBuf>,
}

impl FleetArgs {
    /// The link's configuration, or `None` when no fleet is configured.
    pub fn config(&self) -> Result<Option<FleetLinkConfig>, FleetLinkError> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let missing = |flag: &str| FleetLinkError::Identity(format!("--fleet needs {flag}"));
        let ca = self.ca.as_ref().ok_or_else(|| missing("--fleet-ca"))?;
        let cert = self.cert.as_ref().ok_or_else(|| missing("--fleet-cert"))?;
        let key = self.key.as_ref().ok_or_else(|| missing("--fleet-key"))?;
        FleetLinkConfig::from_files(url, ca, cert, key).map(Some)
    }

    /// Starts the link (inside an actix system) when a fleet is configured.
    pub fn start(
        &self,
        executor: Option<Recipient<ExecuteCommand>>,
    ) -> Result<Option<StartedLink>, FleetLinkError> {
        Ok(self.config()?.map(|config| {
            let (link, status) = FleetLink::new(config, executor);
            (link.start(), status)
        }))
    }
}
