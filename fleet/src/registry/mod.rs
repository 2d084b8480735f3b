//! Durable cluster registrations and certificate revocations, behind [`Registry`].
//!
//! [`KubeRegistry`] keeps them as the fleet's `Cluster` custom resources in a management
//! cluster (kubesim locally, a real cluster in production), so fleet replicas share them;
//! [`FileRegistry`] keeps them in one JSON file of the fleet's data directory, for a single
//! fleet process without a management cluster.
//!
//! # Guarantees
//! Removing a cluster moves every certificate fingerprint it had to the revocation list in
//! the same write, so there is no moment when a removed cluster's certificate is neither
//! registered nor revoked.

mod file;
mod kube;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use proto::pki::Fingerprint;
use serde::{Deserialize, Serialize};

pub use file::FileRegistry;
pub use kube::{DEFAULT_NAMESPACE, KubeRegistry};

/// What can go wrong reading or writing registrations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The backing file could not be read or written.
    #[error("registry {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The backing file is not a registry.
    #[error("registry {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Write(#[from] crate::home::HomeError),
    /// The management cluster refused or failed a request.
    #[error("management cluster: {0}")]
    Kube(#[source] Box<::kube::Error>),
    /// A `Cluster` object that cannot be read as a registration.
    #[error("Cluster {name}: {reason}")]
    Invalid {
        /// The object.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A removed cluster's name cannot be registered again while its revocation is kept.
    #[error(
        "cluster {0} was removed; its Cluster object keeps the revocation (delete it to reuse the name)"
    )]
    Removed(String),
    /// `register` of a cluster that exists, without asking to add a certificate to it.
    #[error("cluster {0} is already registered (use --rotate to issue it another certificate)")]
    AlreadyRegistered(String),
    /// The cluster is not registered.
    #[error("cluster {0} is not registered")]
    NotFound(String),
}

/// Result with [`RegistryError`].
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// One certificate issued to a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRecord {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: Fingerprint,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub not_after: DateTime<Utc>,
}

/// A registered cluster (the spec and status of a `Cluster` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The cluster name, also its identity.
    pub name: String,
    /// Labels, for selecting clusters (e.g. `env=production`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The certificates the cluster may connect with; more than one while rotating.
    #[serde(default)]
    pub certificates: Vec<CertificateRecord>,
    /// When the cluster was registered.
    pub registered_at: DateTime<Utc>,
}

/// A certificate the fleet refuses although its CA signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// The certificate.
    pub fingerprint: Fingerprint,
    /// The cluster it was issued to.
    pub cluster: String,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
    /// The certificate's own expiry; the revocation can be forgotten after it.
    pub not_after: DateTime<Utc>,
}

/// Everything the registry holds, read in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryContents {
    /// Registered clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, Registration>,
    /// Revoked certificates.
    #[serde(default)]
    pub revoked: Vec<Revocation>,
}

/// Durable registrations. Async because the production implementation talks to the
/// Kubernetes API.
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// Everything, consistently.
    fn load(&self) -> BoxFuture<'_, Result<RegistryContents>>;

    /// Registers a cluster, or (with `rotate`) adds certificates to a registered one.
    fn register(
        &self,
        registration: Registration,
        rotate: bool,
    ) -> BoxFuture<'_, Result<Registration>>;

    /// Removes a cluster and revokes all its certificates; returns what was removed.
    fn remove(&self, name: &str) -> BoxFuture<'_, Result<Registration>>;

    /// Records what the fleet observed about clusters (connection, agent, object counts)
    /// where other readers of the registry see it. Storing nothing is allowed: the file
    /// registry has no readers but this fleet.
    fn report(&self, reports: Vec<ClusterReport>) -> BoxFuture<'_, Result<()>> {
        drop(reports);
        Box::pin(async { Ok(()) })
    }
}

/// What the fleet observed about one cluster, for the `Cluster` object's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterReport {
    /// The cluster.
    pub name: String,
    /// Whether its agent is connected.
    pub connected: bool,
    /// The last frame from its agent.
    pub last_seen: Option<DateTime<Utc>>,
    /// The agent's release.
    pub agent_version: Option<String>,
    /// Counts of the objects its agent reports, by family.
    pub summary: api::fleet::ClusterSummary,
}
