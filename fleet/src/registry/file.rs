//! [`FileRegistry`]: registrations in one JSON file of the fleet's data directory.

use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use futures::future::BoxFuture;

use super::{Registration, Registry, RegistryContents, RegistryError, Result, Revocation};
use crate::home::write_file;

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
    use crate::registry::CertificateRecord;
    use proto::pki::Fingerprint;
    use std::collections::BTreeMap;

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
