//! Durable cluster registrations and certificate revocations, behind [`Registry`].
//!
//! The production implementation keeps them as the fleet's `Cluster` custom resources in a
//! management cluster (through kube), so fleet replicas share them; [`FileRegistry`] keeps
//! them in one JSON file of the fleet's data directory, for a single fleet process.
//!
//! # Guarantees
//! Removing a cluster moves every certificate fingerprint it had to the revocation list in
//! the same write, so there is no moment when a removed cluster's certificate is neither
//! registered nor revoked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use proto::pki::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::home::write_file;

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
}

/// The registry as a JSON file; one writer at a time within the process, atomic replacement
/// on disk so a concurrently reading fleet never sees half a file.
#[derive(Debug)]
pub struct FileRegistry {
    path: PathBuf,
    write: Mutex<()>,
}

impl FileRegistry {
    /// The registry at `path` (created on first write).
    pub fn new(path: impl Into<PathBuf>) -> FileRegistry {
        FileRegistry {
            path: path.into(),
            write: Mutex::new(()),
        }
    }

    fn read(&self) -> Result<RegistryContents> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| RegistryError::Corrupt {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryContents::default()),
            Err(source) => Err(RegistryError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn write(&self, contents: &RegistryContents) -> Result<()> {
        let text =
            serde_json::to_string_pretty(contents).map_err(|source| RegistryError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        write_file(&self.path, &text, 0o644)?;
        Ok(())
    }

    fn update<T>(&self, change: impl FnOnce(&mut RegistryContents) -> Result<T>) -> Result<T> {
        let _guard = self
            .write
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut contents = self.read()?;
        let out = change(&mut contents)?;
        let now = Utc::now();
        contents.revoked.retain(|r| r.not_after > now);
        self.write(&contents)?;
        Ok(out)
    }
}

impl Registry for FileRegistry {
    fn load(&self) -> BoxFuture<'_, Result<RegistryContents>> {
        Box::pin(async move { self.read() })
    }

    fn register(
        &self,
        registration: Registration,
        rotate: bool,
    ) -> BoxFuture<'_, Result<Registration>> {
        Box::pin(async move {
            self.update(
                |contents| match contents.clusters.get_mut(&registration.name) {
                    Some(existing) if rotate => {
                        existing.certificates.extend(registration.certificates);
                        existing.labels.extend(registration.labels);
                        Ok(existing.clone())
                    }
                    Some(_) => Err(RegistryError::AlreadyRegistered(registration.name.clone())),
                    None if rotate => Err(RegistryError::NotFound(registration.name.clone())),
                    None => {
                        contents
                            .clusters
                            .insert(registration.name.clone(), registration.clone());
                        Ok(registration)
                    }
                },
            )
        })
    }

    fn remove(&self, name: &str) -> BoxFuture<'_, Result<Registration>> {
        let name = name.to_string();
        Box::pin(async move {
            self.update(|contents| {
                let removed = contents
                    .clusters
                    .remove(&name)
                    .ok_or_else(|| RegistryError::NotFound(name.clone()))?;
                let now = Utc::now();
                contents
                    .revoked
                    .extend(removed.certificates.iter().map(|c| Revocation {
                        fingerprint: c.fingerprint.clone(),
                        cluster: name.clone(),
                        revoked_at: now,
                        not_after: c.not_after,
                    }));
                Ok(removed)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, fingerprint: &str) -> Registration {
        let now = Utc::now();
        Registration {
            name: name.into(),
            labels: BTreeMap::from([("env".to_string(), "test".to_string())]),
            certificates: vec![CertificateRecord {
                fingerprint: Fingerprint(fingerprint.into()),
                issued_at: now,
                not_after: now + chrono::Duration::days(1),
            }],
            registered_at: now,
        }
    }

    fn registry(name: &str) -> FileRegistry {
        let path = std::env::temp_dir().join(format!(
            "flotilla-registry-{name}-{}.json",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        FileRegistry::new(path)
    }

    #[tokio::test]
    async fn removing_a_cluster_revokes_its_certificates() {
        let reg = registry("remove");
        reg.register(registration("staging", "aa"), false)
            .await
            .expect("register");
        reg.register(registration("staging", "bb"), true)
            .await
            .expect("rotate");
        let removed = reg.remove("staging").await.expect("remove");
        assert_eq!(removed.certificates.len(), 2);
        let contents = reg.load().await.expect("load");
        assert!(contents.clusters.is_empty());
        let revoked: Vec<_> = contents
            .revoked
            .iter()
            .map(|r| r.fingerprint.0.as_str())
            .collect();
        assert_eq!(revoked, ["aa", "bb"]);
    }

    #[tokio::test]
    async fn registering_twice_without_rotate_is_refused() {
        let reg = registry("twice");
        reg.register(registration("prod", "aa"), false)
            .await
            .expect("register");
        let err = reg
            .register(registration("prod", "bb"), false)
            .await
            .expect_err("refused");
        assert!(matches!(err, RegistryError::AlreadyRegistered(_)));
        let err = reg.remove("nope").await.expect_err("unknown");
        assert!(matches!(err, RegistryError::NotFound(_)));
    }
}
