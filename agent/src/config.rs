//! The agent's command line: which cluster, where to keep artifacts, where to listen, and
//! (optionally) the fleet to report to.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// flotilla-agent: keeps one Kubernetes cluster in sync with Git, as Flux's controllers do.
#[derive(Debug, Clone, Parser)]
#[command(name = "flotilla-agent", version, about, long_about = None)]
pub struct AgentConfig {
    /// Kubeconfig of the cluster to reconcile. Without it, `KUBECONFIG` or the in-cluster
    /// service account is used, as kubectl and kube-rs do.
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (the current context when absent).
    #[arg(long)]
    pub context: Option<String>,
    /// Directory for Git caches and artifacts; survives restarts.
    #[arg(long)]
    pub storage_dir: PathBuf,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`:8080` listens on all addresses).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,
    /// Where artifacts are served over HTTP, as source-controller does.
    #[arg(long, default_value = "127.0.0.1:9090", value_parser = parse_listen_addr)]
    pub artifact_addr: SocketAddr,
    /// The fleet server's agent endpoint, e.g. `wss://fleet.example.com:9443/v1/agent`.
    #[arg(long, requires_all = ["fleet_ca", "cert", "key"])]
    pub fleet: Option<String>,
    /// CA certificate (PEM) the fleet server's certificate is checked against.
    #[arg(long, requires = "fleet")]
    pub fleet_ca: Option<PathBuf>,
    /// This cluster's client certificate (PEM), issued by `flotilla cluster add`.
    #[arg(long, requires = "fleet")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of `--cert`.
    #[arg(long, requires = "fleet")]
    pub key: Option<PathBuf>,
}

/// Parses `host:port`, or `:port` meaning every address, as Go programs (Flux) accept.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.parse()
        .map_err(|e| format!("invalid listen address {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_accept_the_go_port_only_form() {
        assert_eq!(parse_listen_addr(":8080").map(|a| a.port()), Ok(8080));
        assert_eq!(
            parse_listen_addr("127.0.0.1:9").map(|a| a.to_string()),
            Ok("127.0.0.1:9".to_string())
        );
        assert!(parse_listen_addr("localhost").is_err());
    }

    #[test]
    fn fleet_flags_come_together() {
        let parse = |args: &[&str]| AgentConfig::try_parse_from(args);
        assert!(parse(&["flotilla-agent", "--storage-dir", "/tmp/x"]).is_ok());
        assert!(
            parse(&[
                "flotilla-agent",
                "--storage-dir",
                "/tmp/x",
                "--fleet",
                "https://f:1"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "flotilla-agent",
                "--storage-dir",
                "/tmp/x",
                "--fleet",
                "https://f:1",
                "--fleet-ca",
                "ca.pem",
                "--cert",
                "c.pem",
                "--key",
                "k.pem",
            ])
            .is_ok()
        );
    }
}
