//! [`KubeRegistry`]: registrations as `Cluster` objects (`fleet.flotilla.io/v1alpha1`) in a
//! management cluster, so the fleet restarts without losing them and replicas share them.
//!
//! # Mapping
//! A registered cluster is a `Cluster` with its labels and certificate fingerprints in the
//! spec. Removing it sets `spec.revoked` (and `revokedAt`) rather than deleting the object:
//! the object then *is* the revocation, and the fleet keeps refusing its fingerprints.

use ::kube::Client;
use ::kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use api::fleet::{Cluster, ClusterSpec};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proto::pki::Fingerprint;

use super::{
    CertificateRecord, ClusterReport, Registration, Registry, RegistryContents, RegistryError,
    Result, Revocation,
};

/// The namespace the fleet keeps its objects in, unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "flotilla-system";

/// Registrations in a management cluster.
#[derive(Clone)]
pub struct KubeRegistry {
    api: Api<Cluster>,
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for KubeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRegistry")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn kube_error(e: ::kube::Error) -> RegistryError {
    RegistryError::Kube(Box::new(e))
}

/// Another fleet process created it first: fine.
fn ignore_conflict<T>(result: Result<T, ::kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(::kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(kube_error(e)),
    }
}

// Time is a jiff timestamp; going through its RFC 3339 form keeps this crate on chrono.
fn to_time(t: DateTime<Utc>) -> Option<Time> {
    serde_json::from_value(serde_json::Value::String(t.to_rfc3339())).ok()
}

fn from_time(t: &Time) -> Option<DateTime<Utc>> {
    match serde_json::to_value(t).ok()? {
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(&s)
            .ok()
            .map(|d| d.with_timezone(&Utc)),
        _ => None,
    }
}

/// Certificates without a recorded expiry are kept as if valid for a year from now, so a
/// revocation is never forgotten early.
fn far_future() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(365)
}

impl KubeRegistry {
    /// Registrations in `namespace` of the cluster `client` talks to.
    pub fn new(client: Client, namespace: &str) -> KubeRegistry {
        KubeRegistry {
            api: Api::namespaced(client.clone(), namespace),
            client,
            namespace: namespace.to_string(),
        }
    }

    /// A registry in the cluster a kubeconfig (its YAML text) points at.
    pub async fn from_kubeconfig(kubeconfig: &str, namespace: &str) -> Result<KubeRegistry> {
        let invalid = |reason: String| RegistryError::Invalid {
            name: "kubeconfig".into(),
            reason,
        };
        let parsed = ::kube::config::Kubeconfig::from_yaml(kubeconfig)
            .map_err(|e| invalid(e.to_string()))?;
        let config = ::kube::Config::from_custom_kubeconfig(
            parsed,
            &::kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| invalid(e.to_string()))?;
        let client = Client::try_from(config).map_err(kube_error)?;
        Ok(KubeRegistry::new(client, namespace))
    }

    /// Makes sure the namespace and the `Cluster` CRD exist, and waits until the CRD is
    /// established. Idempotent.
    pub async fn install(&self) -> Result<()> {
        use k8s_openapi::api::core::v1::Namespace;
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces
            .get_opt(&self.namespace)
            .await
            .map_err(kube_error)?
            .is_none()
        {
            let mut ns = Namespace::default();
            ns.metadata.name = Some(self.namespace.clone());
            ignore_conflict(namespaces.create(&PostParams::default(), &ns).await)?;
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let crd = <Cluster as ::kube::CustomResourceExt>::crd();
        let name = crd.metadata.name.clone().unwrap_or_default();
        if crds.get_opt(&name).await.map_err(kube_error)?.is_none() {
            ignore_conflict(crds.create(&PostParams::default(), &crd).await)?;
        }
        let established = ::kube::runtime::wait::await_condition(
            crds,
            &name,
            ::kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(std::time::Duration::from_secs(30), established)
            .await
            .map_err(|_| RegistryError::Invalid {
                name,
                reason: "CRD not established within 30s".into(),
            })?
            .map_err(|e| RegistryError::Invalid {
                name: "Cluster CRD".into(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    fn registration(cluster: &Cluster) -> Result<Registration> {
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or_else(|| RegistryError::Invalid {
                name: "<unnamed>".into(),
                reason: "no metadata.name".into(),
            })?;
        let not_after = cluster
            .spec
            .certificate_not_after
            .as_ref()
            .and_then(from_time)
            .unwrap_or_else(far_future);
        let registered_at = cluster
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(from_time)
            .unwrap_or_else(Utc::now);
        let certificates = cluster
            .spec
            .certificate_fingerprints
            .iter()
            .map(|f| CertificateRecord {
                fingerprint: Fingerprint(f.clone()),
                issued_at: registered_at,
                not_after,
            })
            .collect();
        Ok(Registration {
            name,
            labels: cluster.spec.labels.clone(),
            certificates,
            registered_at,
        })
    }

    async fn load_contents(&self) -> Result<RegistryContents> {
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(kube_error)?;
        let mut contents = RegistryContents::default();
        for cluster in &list.items {
            let registration = Self::registration(cluster)?;
            if cluster.spec.revoked {
                let revoked_at = cluster
                    .spec
                    .revoked_at
                    .as_ref()
                    .and_then(from_time)
                    .unwrap_or_else(Utc::now);
                contents
                    .revoked
                    .extend(registration.certificates.iter().map(|c| Revocation {
                        fingerprint: c.fingerprint.clone(),
                        cluster: registration.name.clone(),
                        revoked_at,
                        not_after: c.not_after,
                    }));
            } else {
                contents
                    .clusters
                    .insert(registration.name.clone(), registration);
            }
        }
        Ok(contents)
    }

    async fn register_cluster(
        &self,
        registration: Registration,
        rotate: bool,
    ) -> Result<Registration> {
        let name = registration.name.clone();
        let newest = registration.certificates.iter().map(|c| c.not_after).max();
        match self.api.get_opt(&name).await.map_err(kube_error)? {
            Some(existing) if existing.spec.revoked => Err(RegistryError::Removed(name)),
            Some(_) if !rotate => Err(RegistryError::AlreadyRegistered(name)),
            None if rotate => Err(RegistryError::NotFound(name)),
            Some(existing) => {
                let mut spec = existing.spec.clone();
                for c in &registration.certificates {
                    if !spec.certificate_fingerprints.contains(&c.fingerprint.0) {
                        spec.certificate_fingerprints.push(c.fingerprint.0.clone());
                    }
                }
                spec.labels.extend(registration.labels);
                if let Some(t) = newest.and_then(to_time) {
                    spec.certificate_not_after = Some(t);
                }
                let patch = serde_json::json!({ "spec": spec });
                let updated = self
                    .api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(kube_error)?;
                Self::registration(&updated)
            }
            None => {
                let spec = ClusterSpec {
                    labels: registration.labels.clone(),
                    certificate_fingerprints: registration
                        .certificates
                        .iter()
                        .map(|c| c.fingerprint.0.clone())
                        .collect(),
                    certificate_not_after: newest.and_then(to_time),
                    ..ClusterSpec::default()
                };
                let created = self
                    .api
                    .create(&PostParams::default(), &Cluster::new(&name, spec))
                    .await
                    .map_err(kube_error)?;
                Self::registration(&created)
            }
        }
    }

    async fn remove_cluster(&self, name: &str) -> Result<Registration> {
        let existing = match self.api.get_opt(name).await.map_err(kube_error)? {
            Some(c) if !c.spec.revoked => c,
            _ => return Err(RegistryError::NotFound(name.to_string())),
        };
        let patch =
            serde_json::json!({ "spec": { "revoked": true, "revokedAt": to_time(Utc::now()) } });
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_error)?;
        Self::registration(&existing)
    }
}

impl KubeRegistry {
    async fn write_reports(&self, reports: Vec<ClusterReport>) -> Result<()> {
        for report in reports {
            let status = serde_json::json!({
                "status": {
                    "connected": report.connected,
                    "lastSeen": report.last_seen.and_then(to_time),
                    "agentVersion": report.agent_version,
                    "summary": report.summary,
                }
            });
            match self
                .api
                .patch_status(
                    &report.name,
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
            {
                Ok(_) => {}
                // Removed meanwhile: nothing to report on.
                Err(::kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(kube_error(e)),
            }
        }
        Ok(())
    }
}

impl Registry for KubeRegistry {
    fn load(&self) -> BoxFuture<'_, Result<RegistryContents>> {
        Box::pin(self.load_contents())
    }

    fn register(
        &self,
        registration: Registration,
        rotate: bool,
    ) -> BoxFuture<'_, Result<Registration>> {
        Box::pin(self.register_cluster(registration, rotate))
    }

    fn remove(&self, name: &str) -> BoxFuture<'_, Result<Registration>> {
        let name = name.to_string();
        Box::pin(async move { self.remove_cluster(&name).await })
    }

    fn report(&self, reports: Vec<ClusterReport>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write_reports(reports))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_survive_the_trip_through_kubernetes_time() {
        let t = DateTime::parse_from_rfc3339("2026-11-21T05:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(to_time(t).as_ref().and_then(from_time), Some(t));
    }
}
