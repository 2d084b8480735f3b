//! The simulated clusters: one kubesim each, persisted in the demo directory, bootstrapped
//! as `flux bootstrap` leaves a cluster (CRDs, `flux-system`, its GitRepository and
//! Kustomization), and poked when their branch moves.

use std::path::{Path, PathBuf};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

use super::DemoError;

/// The field manager of everything the demo applies.
const MANAGER: &str = "flotilla-demo";
/// The namespace Flux's objects live in.
pub const NAMESPACE: &str = "flux-system";
/// The GitRepository and root Kustomization name, as `flux bootstrap` names them.
pub const ROOT: &str = "flux-system";

/// A running kubesim with its kubeconfig on disk.
pub struct SimCluster {
    /// The cluster's name.
    pub name: String,
    /// Where its kubeconfig is.
    pub kubeconfig: PathBuf,
    /// A client for it.
    pub client: Client,
    server: kubesim::RunningServer,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("name", &self.name)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl SimCluster {
    /// Starts (or resumes, from `data_dir`) a kubesim and writes its kubeconfig.
    pub async fn start(
        name: &str,
        data_dir: PathBuf,
        kubeconfig: PathBuf,
    ) -> Result<SimCluster, DemoError> {
        let server = kubesim::Server::start(kubesim::Config {
            data_dir: Some(data_dir),
            ..kubesim::Config::default()
        })
        .await
        .map_err(|source| DemoError::Kubesim {
            cluster: name.to_string(),
            source,
        })?;
        let text = server.kubeconfig();
        crate::home::write_file(&kubeconfig, &text, 0o600)?;
        let client = client(&text).await?;
        Ok(SimCluster {
            name: name.to_string(),
            kubeconfig,
            client,
            server,
        })
    }

    /// The kubeconfig's text.
    pub fn kubeconfig_text(&self) -> String {
        self.server.kubeconfig()
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

async fn client(kubeconfig: &str) -> Result<Client, DemoError> {
    let parsed = Kubeconfig::from_yaml(kubeconfig).map_err(DemoError::Kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(DemoError::Kubeconfig)?;
    Client::try_from(config).map_err(DemoError::Kube)
}

fn flux_resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

fn git_repositories(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &flux_resource(
            "source.toolkit.fluxcd.io",
            "GitRepository",
            "gitrepositories",
        ),
    )
}

/// What one cluster syncs.
#[derive(Debug, Clone)]
pub struct Sync {
    /// The repository URL.
    pub url: String,
    /// The branch it follows.
    pub branch: String,
    /// The path of its Flux Kustomizations.
    pub path: String,
}

/// Applies, with server-side apply, what `flux bootstrap` leaves in a cluster. Applying the
/// same objects again changes nothing, so a rerun of the demo is a no-op here.
pub async fn bootstrap(client: &Client, sync: &Sync) -> Result<(), DemoError> {
    let params = PatchParams::apply(MANAGER).force();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(DemoError::Kube)?;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            NAMESPACE,
            &params,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
            })),
        )
        .await
        .map_err(DemoError::Kube)?;
    git_repositories(client)
        .patch(
            ROOT,
            &params,
            &Patch::Apply(json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": ROOT, "namespace": NAMESPACE},
                // The demo asks for a fetch as soon as the branch moves; the interval only
                // catches what the demo did not see (e.g. a commit while it was stopped).
                "spec": {"interval": "1m0s", "url": sync.url, "ref": {"branch": sync.branch}},
            })),
        )
        .await
        .map_err(DemoError::Kube)?;
    let kustomizations: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &flux_resource(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "kustomizations",
        ),
    );
    kustomizations
        .patch(
            ROOT,
            &params,
            &Patch::Apply(json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": ROOT, "namespace": NAMESPACE},
                "spec": {
                    "interval": "10m0s",
                    "path": sync.path,
                    "prune": true,
                    "sourceRef": {"kind": "GitRepository", "name": ROOT},
                },
            })),
        )
        .await
        .map_err(DemoError::Kube)?;
    Ok(())
}

/// Asks the cluster's agent to fetch its source now, as `flux reconcile source git` does.
pub async fn request_fetch(client: &Client) -> Result<(), DemoError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}});
    git_repositories(client)
        .patch(ROOT, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(DemoError::Kube)?;
    Ok(())
}

/// Asks for a reconcile of a Kustomization now, as `flux reconcile kustomization` does.
pub async fn request_reconcile(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), DemoError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}});
    let kustomizations: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &flux_resource(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "kustomizations",
        ),
    );
    kustomizations
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(DemoError::Kube)?;
    Ok(())
}

/// The kubeconfig path of `name` in the demo directory.
pub fn kubeconfig_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("kubeconfigs").join(format!("{name}.yaml"))
}
