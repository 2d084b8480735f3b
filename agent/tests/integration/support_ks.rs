//! A Kustomization test bed: kubesim in-process with Flotilla's CRDs, the Kustomization
//! registry of a real agent context, and a Git repository whose commits become real
//! artifacts (deterministic tar.gz in an artifact store) published to the hub, as the
//! GitRepository actor does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use actix::prelude::*;
use agent::context::{AgentContext, FIELD_MANAGER};
use agent::hub::{ArtifactHub, ArtifactReady, Publish, SourceRef};
use agent::kustomization::{Deps, KustomizationActor};
use agent::registry::Registry;
use agent::source::artifact::{ArchiveLimits, ArtifactStore, SourceKey};
use agent::telemetry::Metrics;
use api::kustomize::Kustomization;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::Value;

pub const NS: &str = "flux-system";

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Git repository whose commits are packaged as artifacts of `GitRepository/flux-system/<name>`.
pub struct Repo {
    pub name: String,
    dir: tempfile::TempDir,
    store: ArtifactStore,
}

impl Repo {
    pub fn new(name: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("work")).unwrap_or_else(|e| panic!("{e}"));
        git(&dir.path().join("work"), &["init", "-q", "-b", "main"]);
        let store =
            ArtifactStore::open(dir.path().join("store"), 3).unwrap_or_else(|e| panic!("{e}"));
        Repo {
            name: name.to_string(),
            dir,
            store,
        }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn write(&self, path: &str, text: &str) -> &Self {
        let file = self.work().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(file, text).unwrap_or_else(|e| panic!("{e}"));
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.work().join(path)).unwrap_or_else(|e| panic!("{e}"));
        self
    }

    pub fn source(&self) -> SourceRef {
        SourceRef {
            kind: "GitRepository".into(),
            namespace: NS.into(),
            name: self.name.clone(),
        }
    }

    /// Commits everything and returns the artifact of that commit, ready to publish.
    pub fn commit(&self, message: &str) -> ArtifactReady {
        let work = self.work();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", message]);
        let hex = git(&work, &["rev-parse", "HEAD"]);
        let revision = format!("main@sha1:{hex}");
        let repo = gix::open(&work).unwrap_or_else(|e| panic!("{e}"));
        let commit = gix::ObjectId::from_hex(hex.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let key = SourceKey::new("gitrepository", NS, &self.name).unwrap_or_else(|e| panic!("{e}"));
        let stored = agent::source::artifact::package(
            &self.store,
            &key,
            &repo,
            commit,
            &revision,
            None,
            ArchiveLimits::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        ArtifactReady {
            source: self.source(),
            artifact: api::meta::Artifact {
                digest: Some(stored.digest.clone()),
                path: stored.path.clone(),
                url: stored.url("http://127.0.0.1:1"),
                revision,
                last_update_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ),
                size: Some(stored.size as i64),
                metadata: None,
            },
            file: self.store.root().join(&stored.path),
        }
    }
}

/// kubesim with the CRDs, and an agent context whose Kustomization registry runs.
pub struct Bed {
    pub server: kubesim::RunningServer,
    pub client: Client,
    pub hub: Addr<ArtifactHub>,
    pub metrics: Metrics,
    agent: Option<(actix::System, std::thread::JoinHandle<()>)>,
    _storage: tempfile::TempDir,
}

pub async fn client_for(server: &kubesim::RunningServer) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
}

/// Server-side applies every CRD of `shared/api` (kubesim establishes them at once).
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

impl Bed {
    pub async fn start() -> Bed {
        Self::start_with(kubesim::Config::default()).await
    }

    pub async fn start_with(config: kubesim::Config) -> Bed {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let server = kubesim::Server::start(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = client_for(&server).await;
        install_crds(&client).await;
        let mut bed = Bed {
            server,
            client,
            hub: ArtifactHub::default().start(),
            metrics: Metrics::new().unwrap_or_else(|e| panic!("{e}")),
            agent: None,
            _storage: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        };
        bed.apply(
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await;
        bed.start_agent().await;
        bed
    }

    /// Starts an agent (again, after [`Bed::stop_agent`]): its own actix system on its own
    /// thread, with its own client, as a separate process would have.
    pub async fn start_agent(&mut self) {
        let kubeconfig = self.server.kubeconfig();
        let hub = self.hub.clone();
        let metrics = self.metrics.clone();
        let storage = self._storage.path().to_path_buf();
        let (started, ready) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let kubeconfig =
                    Kubeconfig::from_yaml(&kubeconfig).unwrap_or_else(|e| panic!("{e}"));
                let config =
                    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                let client = Client::try_from(config).unwrap_or_else(|e| panic!("{e}"));
                let context = AgentContext {
                    client: client.clone(),
                    hub,
                    metrics,
                    storage_dir: storage,
                    artifact_base_url: "http://127.0.0.1:1".into(),
                    field_manager: FIELD_MANAGER.into(),
                };
                let mut handle =
                    Registry::<KustomizationActor>::start(Api::all(client), Deps::new(context));
                let _ = handle.synced.wait_for(|s| *s).await;
                let _ = started.send(actix::System::current());
                // The registry lives as long as the system.
                std::mem::forget(handle);
            });
            let _ = system.run();
        });
        let system = ready
            .await
            .unwrap_or_else(|e| panic!("agent did not start: {e}"));
        self.agent = Some((system, thread));
    }

    /// Stops the agent's system at once, whatever it is doing (as when the agent is killed).
    pub async fn stop_agent(&mut self) {
        if let Some((system, thread)) = self.agent.take() {
            system.stop();
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|_| panic!("agent thread panicked"));
        }
    }

    pub async fn publish(&self, ready: ArtifactReady) {
        self.hub
            .send(Publish(ready))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Server-side applies any object as the test (not as the agent).
    pub async fn apply(&self, object: &Value) -> Value {
        let api = self.dynamic(object).await;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let applied = api
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(object),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::to_value(applied).unwrap_or_default()
    }

    async fn dynamic(&self, object: &Value) -> Api<DynamicObject> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        match (caps.scope, object["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// Reads an object; `None` when absent.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource =
            ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind));
        let resource = ApiResource {
            plural: plural(kind),
            ..resource
        };
        let api: Api<DynamicObject> = if namespace.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &resource)
        };
        api.get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("{kind}/{name}: {e}"))
            .map(|o| serde_json::to_value(o).unwrap_or_default())
    }

    pub async fn kustomization(&self, name: &str) -> Kustomization {
        Api::<Kustomization>::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Waits (bounded: 60 s) until `check` holds for the Kustomization.
    pub async fn until(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Kustomization) -> bool,
    ) -> Kustomization {
        let mut last = None;
        for _ in 0..1200 {
            if let Ok(Some(k)) = Api::<Kustomization>::namespaced(self.client.clone(), NS)
                .get_opt(name)
                .await
            {
                if check(&k) {
                    return k;
                }
                last = Some(k);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{name} never got {what}; last: {:#?}",
            last.map(|k| k.status)
        );
    }

    /// Waits until the Kustomization is Ready at `revision`.
    pub async fn until_ready_at(&self, name: &str, revision: &str) -> Kustomization {
        self.until(name, &format!("Ready at {revision}"), |k| {
            let status = k.status.clone().unwrap_or_default();
            ready_reason(k).as_deref() == Some("ReconciliationSucceeded")
                && status.last_applied_revision.as_deref() == Some(revision)
                && status.observed_generation == k.metadata.generation
        })
        .await
    }

    /// Waits (bounded: 20 s) for an event with `reason` on the Kustomization (events are
    /// recorded just after the status that reports the same outcome); returns its message.
    pub async fn until_event(&self, name: &str, reason: &str) -> String {
        let mut events = Vec::new();
        for _ in 0..400 {
            events = self.events(name).await;
            if let Some((_, message)) = events.iter().find(|(r, _)| r == reason) {
                return message.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {reason} event on {name}: {events:?}");
    }

    /// Events recorded on a Kustomization, oldest first: `(reason, message)`.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), NS);
        let mut events: Vec<_> = api
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect();
        events.sort_by_key(|e| e.metadata.name.clone());
        events
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "Ingress" => "ingresses".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        k => format!("{}s", k.to_lowercase()),
    }
}

/// `(status, reason, message)` of the Ready condition.
pub fn ready(k: &Kustomization) -> Option<(String, String, String)> {
    let status = k.status.as_ref()?;
    api::conditions::find_condition(&status.conditions, "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn ready_reason(k: &Kustomization) -> Option<String> {
    ready(k).map(|r| r.1)
}

/// A Kustomization of `path` in `repo`, with extra spec fields merged in.
pub fn kustomization(name: &str, repo: &str, path: &str, extra: Value) -> Value {
    let mut spec = serde_json::json!({
        "interval": "10m",
        "retryInterval": "1s",
        "timeout": "20s",
        "path": path,
        "prune": true,
        "sourceRef": {"kind": "GitRepository", "name": repo},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

pub fn deployment(name: &str, namespace: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: ghcr.io/stefanprodan/podinfo:6.5.0\n"
    )
}

pub fn config_map(name: &str, namespace: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  value: \"{value}\"\n"
    )
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some((system, _)) = self.agent.take() {
            system.stop();
        }
    }
}
