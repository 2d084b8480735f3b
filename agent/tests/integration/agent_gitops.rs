//! A whole agent (the runtime as `flotilla-agent` starts it) against kubesim and a real Git
//! repository: GitRepository fetched and served, Kustomization applied, a new commit
//! followed after a reconcile request, a bad URL stalled.

use crate::support_ks;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use api::source::GitRepository;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("git is required: {e}"));
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn config_map(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  value: \"{value}\"\n"
    )
}

fn commit(repo: &Path, value: &str) -> String {
    std::fs::create_dir_all(repo.join("deploy")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(repo.join("deploy/settings.yaml"), config_map(value))
        .unwrap_or_else(|e| panic!("{e}"));
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", &format!("value {value}")]);
    git(repo, &["rev-parse", "HEAD"])
}

struct Agent {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `flotilla-agent`'s runtime on its own thread and actix system, as the binary does.
fn start_agent(kubeconfig: PathBuf, storage: PathBuf) -> Agent {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let system = actix::System::new();
        let config = agent::config::AgentConfig {
            kubeconfig: Some(kubeconfig),
            context: None,
            storage_dir: storage,
            metrics_addr: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            artifact_addr: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            fleet: None,
            fleet_ca: None,
            cert: None,
            key: None,
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = system.block_on(agent::runtime::run(config, shutdown)) {
            panic!("agent failed: {error}");
        }
    });
    Agent {
        stop: Some(stop),
        thread: Some(thread),
    }
}

async fn apply(client: &Client, object: Value) {
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("flux-system")
        .to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &kind);
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api: Api<kube::api::DynamicObject> = match capabilities.scope {
        kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        kube::discovery::Scope::Namespaced => {
            Api::namespaced_with(client.clone(), &namespace, &resource)
        }
    };
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// Polls (bounded) until `check` returns a value.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ready(object: &GitRepository) -> Option<(String, String)> {
    let condition = object
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((condition.status.clone(), condition.reason.clone()))
}

/// kubesim with Flux's CRDs and namespace, its kubeconfig on disk, and a Git repository with
/// one commit (the value "one").
struct Bed {
    server: kubesim::RunningServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    client: Client,
    repo: PathBuf,
    /// The first commit's hash.
    first: String,
}

impl Bed {
    async fn start() -> Bed {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let server = kubesim::Server::start(kubesim::Config::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, server.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
        let client = support_ks::client_for(&server).await;
        support_ks::install_crds(&client).await;
        apply(
            &client,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
        )
        .await;
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap_or_else(|e| panic!("{e}"));
        git(&repo, &["init", "-q", "-b", "main"]);
        let first = commit(&repo, "one");
        Bed {
            server,
            dir,
            kubeconfig,
            client,
            repo,
            first,
        }
    }
}

/// A GitRepository `fleet` of `repo`'s main branch and a Kustomization `settings` of its
/// `deploy` directory.
async fn follow(client: &Client, repo: &Path) {
    apply(client, json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "fleet", "namespace": "flux-system"},
        "spec": {"interval": "10m", "url": format!("file://{}", repo.display()), "ref": {"branch": "main"}},
    }))
    .await;
    apply(
        client,
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "settings", "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": "./deploy", "prune": true,
                     "sourceRef": {"kind": "GitRepository", "name": "fleet"}},
        }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_fetches_a_repository_applies_it_and_follows_new_commits() {
    let Bed {
        server,
        dir,
        kubeconfig,
        client,
        repo,
        first,
    } = Bed::start().await;

    let _agent = start_agent(kubeconfig, dir.path().join("storage"));
    follow(&client, &repo).await;

    let sources: Api<GitRepository> = Api::namespaced(client.clone(), "flux-system");
    let fetched = until("the GitRepository to be Ready", || async {
        let object = sources.get("fleet").await.ok()?;
        (ready(&object)? == ("True".to_string(), "Succeeded".to_string())).then_some(object)
    })
    .await;
    let artifact = fetched
        .status
        .as_ref()
        .and_then(|s| s.artifact.clone())
        .unwrap_or_else(|| panic!("no artifact"));
    assert_eq!(artifact.revision, format!("main@sha1:{first}"));

    // The artifact is served where status says, with the digest status gives.
    let body = reqwest::get(&artifact.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    use sha2::Digest;
    assert_eq!(
        Some(format!("sha256:{:x}", sha2::Sha256::digest(&body))),
        artifact.digest
    );

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    until("the ConfigMap from the first commit", || async {
        let cm = config_maps.get("settings").await.ok()?;
        (cm.data?.get("value")? == "one").then_some(())
    })
    .await;

    // A new commit, then a reconcile request as `flux reconcile source git` makes it.
    let second = commit(&repo, "two");
    let request = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-21T06:30:00Z"}}});
    sources
        .patch("fleet", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until("the ConfigMap from the second commit", || async {
        let cm = config_maps.get("settings").await.ok()?;
        (cm.data?.get("value")? == "two").then_some(())
    })
    .await;
    let handled = until("the request to be recorded", || async {
        let object = sources.get("fleet").await.ok()?;
        let status = object.status?;
        (status.artifact?.revision == format!("main@sha1:{second}"))
            .then_some(status.last_handled_reconcile_at)
    })
    .await;
    assert_eq!(handled.as_deref(), Some("2026-11-21T06:30:00Z"));

    // The repository disappears: the source is not Ready, and retries, while the last good
    // artifact stays in status and is still served.
    std::fs::rename(&repo, dir.path().join("moved")).unwrap_or_else(|e| panic!("{e}"));
    let request = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-21T06:31:00Z"}}});
    sources
        .patch("fleet", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let failing = until("the fetch to fail", || async {
        let object = sources.get("fleet").await.ok()?;
        (ready(&object)?.0 == "False").then_some(object)
    })
    .await;
    let status = failing.status.unwrap_or_default();
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Reconciling" && c.status == "True")
    );
    let kept = status
        .artifact
        .unwrap_or_else(|| panic!("the last artifact left status"));
    assert_eq!(kept.revision, format!("main@sha1:{second}"));
    let response = reqwest::get(&kept.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.status().is_success(), "{}", response.status());

    // A URL we cannot fetch from stalls the source, naming the problem.
    apply(
        &client,
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "broken", "namespace": "flux-system"},
            "spec": {"interval": "10m", "url": "ftp://example.com/repo.git"},
        }),
    )
    .await;
    let stalled = until("the bad URL to stall", || async {
        let object = sources.get("broken").await.ok()?;
        let status = object.status?;
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled" && c.status == "True")
            .cloned()
    })
    .await;
    assert_eq!(stalled.reason, "URLInvalid");
    assert!(stalled.message.contains("ftp"), "{}", stalled.message);
    server.shutdown().await;
}

/// An agent restart must not make Kustomizations report their artifact missing while the
/// source actors republish what they stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_keeps_its_kustomizations_ready() {
    let Bed {
        server,
        dir,
        kubeconfig,
        client,
        repo,
        ..
    } = Bed::start().await;
    follow(&client, &repo).await;
    let kustomizations: Api<api::kustomize::Kustomization> =
        Api::namespaced(client.clone(), "flux-system");
    let reconciliations = |k: &api::kustomize::Kustomization| {
        let status = k.status.clone().unwrap_or_default();
        let ready = api::conditions::is_true(&status.conditions, "Ready");
        ready.then(|| {
            status
                .history
                .first()
                .map_or(0, |h| h.total_reconciliations)
        })
    };

    let agent = start_agent(kubeconfig.clone(), dir.path().join("storage"));
    let before = until("the Kustomization to be Ready", || async {
        reconciliations(&kustomizations.get("settings").await.ok()?)
    })
    .await;
    drop(agent);

    let _agent = start_agent(kubeconfig, dir.path().join("storage"));
    until("a reconcile by the restarted agent", || async {
        let k = kustomizations.get("settings").await.ok()?;
        let count = reconciliations(&k);
        assert!(
            count.is_some(),
            "not Ready after the restart: {:?}",
            k.status
        );
        count.filter(|count| *count > before)
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), "flux-system");
    let missing: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ArtifactFailed"))
        .filter_map(|e| e.message)
        .collect();
    assert!(missing.is_empty(), "{missing:?}");
    server.shutdown().await;
}
