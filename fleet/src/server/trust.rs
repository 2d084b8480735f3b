//! Which certificates the fleet admits, as the TLS handshake asks: a cluster certificate
//! must be one the registry issued to that very cluster and not revoked; an admin
//! certificate must not be revoked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use proto::pki::{Fingerprint, Identity};
use proto::tls::CertificateGate;

use crate::registry::RegistryContents;

#[derive(Debug, Default)]
struct Snapshot {
    /// Fingerprint -> the cluster it was issued to.
    issued: HashMap<Fingerprint, String>,
    revoked: HashSet<Fingerprint>,
}

/// The handshake's view of the registry; replaced whole on every registry reload.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
}

impl TrustStore {
    /// Replaces the view with the registry's current contents.
    pub fn replace(&self, contents: &RegistryContents) {
        let issued = contents
            .clusters
            .values()
            .flat_map(|r| {
                r.certificates
                    .iter()
                    .map(|c| (c.fingerprint.clone(), r.name.clone()))
            })
            .collect();
        let revoked = contents
            .revoked
            .iter()
            .map(|r| r.fingerprint.clone())
            .collect();
        let new = Arc::new(Snapshot { issued, revoked });
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = new;
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the certificate may still be used (for sessions opened before a reload).
    pub fn still_admits(&self, identity: &Identity, fingerprint: &Fingerprint) -> bool {
        self.admit(identity, fingerprint).is_ok()
    }
}

impl CertificateGate for TrustStore {
    fn admit(&self, identity: &Identity, fingerprint: &Fingerprint) -> Result<(), String> {
        let snapshot = self.current();
        if snapshot.revoked.contains(fingerprint) {
            return Err("certificate revoked".into());
        }
        match identity {
            Identity::Admin(_) => Ok(()),
            Identity::Cluster(name) => match snapshot.issued.get(fingerprint) {
                Some(owner) if owner == name => Ok(()),
                Some(owner) => Err(format!(
                    "certificate was issued to cluster {owner}, not {name}"
                )),
                None => Err(format!(
                    "certificate not issued to a registered cluster {name}"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CertificateRecord, Registration, Revocation};
    use chrono::Utc;

    fn contents() -> RegistryContents {
        let now = Utc::now();
        let mut c = RegistryContents::default();
        c.clusters.insert(
            "staging".into(),
            Registration {
                name: "staging".into(),
                labels: Default::default(),
                certificates: vec![CertificateRecord {
                    fingerprint: Fingerprint("aa".into()),
                    issued_at: now,
                    not_after: now,
                }],
                registered_at: now,
            },
        );
        c.revoked.push(Revocation {
            fingerprint: Fingerprint("bb".into()),
            cluster: "old".into(),
            revoked_at: now,
            not_after: now,
        });
        c
    }

    #[test]
    fn only_registered_unrevoked_certificates_of_the_right_cluster_pass() {
        let store = TrustStore::default();
        store.replace(&contents());
        let staging = Identity::Cluster("staging".into());
        assert!(store.admit(&staging, &Fingerprint("aa".into())).is_ok());
        assert!(
            store
                .admit(&Identity::Cluster("prod".into()), &Fingerprint("aa".into()))
                .is_err()
        );
        assert!(
            store.admit(&staging, &Fingerprint("cc".into())).is_err(),
            "unknown"
        );
        assert!(
            store
                .admit(&Identity::Admin("ops".into()), &Fingerprint("bb".into()))
                .is_err(),
            "revoked"
        );
        assert!(
            store
                .admit(&Identity::Admin("ops".into()), &Fingerprint("dd".into()))
                .is_ok()
        );
        store.replace(&RegistryContents::default());
        assert!(!store.still_admits(&staging, &Fingerprint("aa".into())));
    }
}
