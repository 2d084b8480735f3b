//! `flotilla demo`: the whole fleet on one machine — a Git repository, a management kubesim
//! holding the fleet's `Cluster` objects, three cluster kubesims, the fleet server and one
//! agent per cluster over mutual TLS — started by [`run`] and resumed from the same
//! directory on the next run.
//!
//! ```text
//! DIR/repo/                       the fleet repository (edit and commit here)
//! DIR/fleet/                      the fleet's CA, server and admin credentials, token
//! DIR/kubeconfigs/NAME.yaml       kubeconfig of each kubesim (management and clusters)
//! DIR/state/NAME/                 each kubesim's persisted objects and credentials
//! DIR/agents/NAME/                each agent's certificate and Git/artifact storage
//! ```

pub mod agents;
pub mod clusters;
pub mod nudge;
pub mod progress;
pub mod repo;
mod run;

use std::path::PathBuf;

pub use run::run;

/// The clusters of the demo and the branch each follows.
pub const CLUSTERS: [(&str, &str); 3] = [
    ("staging", repo::MAIN),
    ("production", repo::PRODUCTION),
    ("production-clone", repo::PRODUCTION),
];

/// The port of the API and console unless told otherwise: the CLI's default server, so
/// `flotilla get` needs no `--server`.
pub const DEFAULT_PORT: u16 = 9444;

/// What `flotilla demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Where everything lives.
    pub dir: PathBuf,
    /// The API and console port (on 127.0.0.1).
    pub port: u16,
}

impl DemoConfig {
    /// The repository's working tree.
    pub fn repo_dir(&self) -> PathBuf {
        self.dir.join("repo")
    }

    /// The fleet's data directory (what `FLOTILLA_HOME` must name for the CLI).
    pub fn fleet_home(&self) -> PathBuf {
        self.dir.join("fleet")
    }

    /// The API's URL (what `FLOTILLA_SERVER` must name for the CLI).
    pub fn api_url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

/// Why the demo could not start or stopped. Messages name what failed; the cause is the
/// error's `source` (the CLI prints the whole chain).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory could not be read or written.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Git operation on the demo repository failed.
    #[error("git: {context}")]
    Git {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A kubesim could not start.
    #[error("kubesim for {cluster}")]
    Kubesim {
        /// Which cluster.
        cluster: String,
        /// The error.
        #[source]
        source: kubesim::Error,
    },
    /// A kubeconfig the demo wrote could not be used.
    #[error("kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API")]
    Kube(#[source] kube::Error),
    /// The fleet's data directory could not be set up.
    #[error(transparent)]
    Home(#[from] crate::home::HomeError),
    /// A certificate could not be issued.
    #[error(transparent)]
    Pki(#[from] proto::pki::PkiError),
    /// The registry refused a registration.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The fleet server could not start.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// A thread could not be started.
    #[error("starting {what}")]
    Thread {
        /// What the thread was for.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The API port is taken (checked first, before anything is started).
    #[error("127.0.0.1:{port} is taken; choose another port with --port")]
    PortInUse {
        /// The port.
        port: u16,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An agent stopped on its own.
    #[error("the agent of {cluster} stopped: {message}")]
    Agent {
        /// Which cluster.
        cluster: String,
        /// Why.
        message: String,
    },
}
