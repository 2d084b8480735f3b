//! Benchmarks of the Kustomization reconciler on kubesim (run as a separate process, so that
//! the agent's memory is measured alone):
//!
//! 1. Flux's benchmark shape: N Kustomizations (default 100, 500, 1000; `FLOTILLA_BENCH_N`)
//!    each applying a podinfo-like app (Deployment, Service, HorizontalPodAutoscaler,
//!    ConfigMap) from one source: time from the artifact to all N Ready, and the agent's
//!    peak RSS. Flux cannot run here; its published figure (Flux 2.3, 16 cores: 1000 in
//!    4m15s, 112 MiB) is printed beside ours. Run under `taskset -c 0,1` for 2 cores.
//! 2. Our dry-run + apply of a 500-object set against `kubectl apply --server-side` of the
//!    same set, same kubesim, one run each: objects/s and the ratio.
//! 3. Commit to Ready of a one-Deployment change with an immediate reconcile: p50 and p99
//!    over 50 commits (commit + artifact packaging + publish + reconcile; the GitRepository
//!    fetch is measured by the `git_fetch` bench).
//!
//! Run with `cargo bench -p agent --bench kustomization`.

#[path = "../tests/support_ks/mod.rs"]
mod support_ks;

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::prelude::*;
use agent::context::{AgentContext, FIELD_MANAGER};
use agent::hub::{ArtifactHub, Publish};
use agent::kustomization::apply::{Applier, ChangeSet, KindCache};
use agent::kustomization::plan;
use agent::kustomization::{Deps, KustomizationActor};
use agent::registry::Registry;
use agent::telemetry::Metrics;
use api::kustomize::Kustomization;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use support_ks::{NS, Repo, deployment, kustomization};

const SERVE_ENV: &str = "FLOTILLA_BENCH_SERVE_KUBESIM";

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        serve_kubesim();
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let sizes: Vec<usize> = std::env::var("FLOTILLA_BENCH_N")
        .unwrap_or_else(|_| "100,500,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let only = std::env::var("FLOTILLA_BENCH_ONLY").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("cpus available to this process: {cpus}");
    if only.is_empty() || only.contains('1') {
        for n in &sizes {
            fleet_of_kustomizations(*n);
        }
    }
    if only.is_empty() || only.contains('2') {
        apply_versus_kubectl(500);
    }
    if only.is_empty() || only.contains('3') {
        commit_to_ready(50);
    }
}

/// The child process: kubesim until stdin closes; prints the kubeconfig path first.
fn serve_kubesim() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let server = kubesim::Server::start(kubesim::Config::default())
            .await
            .expect("kubesim");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, server.kubeconfig()).expect("kubeconfig");
        println!("{}", path.display());
        std::io::stdout().flush().expect("flush");
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {}
        })
        .await
        .expect("stdin");
        server.shutdown().await;
    });
}

/// A kubesim child process; killed on drop.
struct Sim {
    child: std::process::Child,
    kubeconfig: std::path::PathBuf,
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env(SERVE_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("kubesim child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("kubeconfig path");
        Sim {
            child,
            kubeconfig: line.trim().into(),
        }
    }

    async fn client(&self) -> Client {
        client(&std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig")).await
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(kubeconfig: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

async fn setup(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("crd");
    }
    namespace(client, NS).await;
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(
        name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&ns),
    )
    .await
    .expect("namespace");
}

fn podinfo(repo: &Repo, replicas: u32) {
    repo.write("podinfo/deployment.yaml", &deployment("podinfo", "default", replicas))
        .write(
            "podinfo/service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  selector:\n    app: podinfo\n  ports:\n  - port: 9898\n",
        )
        .write(
            "podinfo/hpa.yaml",
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: podinfo\n  namespace: default\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  minReplicas: 1\n  maxReplicas: 4\n",
        )
        .write(
            "podinfo/config.yaml",
            &support_ks::config_map("podinfo", "default", "bench"),
        );
}

/// Runs a Kustomization registry on its own thread and actix system, as an agent would.
fn start_agent(kubeconfig: String, hub: Addr<ArtifactHub>) -> actix::System {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let client = client(&kubeconfig).await;
            let storage = std::env::temp_dir();
            let context = AgentContext {
                client: client.clone(),
                hub,
                metrics: Metrics::new().expect("metrics"),
                storage_dir: storage,
                artifact_base_url: "http://127.0.0.1:1".into(),
                field_manager: FIELD_MANAGER.into(),
            };
            let mut handle =
                Registry::<KustomizationActor>::start(Api::all(client), Deps::new(context));
            let _ = handle.synced.wait_for(|s| *s).await;
            let _ = tx.send(actix::System::current());
            std::mem::forget(handle);
        });
        let _ = system.run();
    });
    rx.recv().expect("agent started")
}

/// `VmHWM:` (peak) or `VmRSS:` (now) of this process, in MiB.
fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// How many Kustomizations are Ready at `revision` (or, with `None`, have any Ready condition).
async fn count_ready(client: &Client, revision: Option<&str>) -> usize {
    let api: Api<Kustomization> = Api::namespaced(client.clone(), NS);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|k| {
            let status = k.status.clone().unwrap_or_default();
            match revision {
                Some(revision) => {
                    api::conditions::is_true(&status.conditions, "Ready")
                        && status.last_applied_revision.as_deref() == Some(revision)
                }
                None => api::conditions::find_condition(&status.conditions, "Ready").is_some(),
            }
        })
        .count()
}

fn fleet_of_kustomizations(n: usize) {
    let system = actix::System::new();
    system.block_on(async move {
        let sim = Sim::start();
        let client = sim.client().await;
        setup(&client).await;
        for i in 0..n {
            namespace(&client, &format!("bench-{i}")).await;
        }
        let repo = Repo::new("fleet");
        podinfo(&repo, 1);
        let artifact = repo.commit("podinfo");
        let revision = artifact.artifact.revision.clone();
        let api: Api<Kustomization> = Api::namespaced(client.clone(), NS);
        for i in 0..n {
            let k = kustomization(
                &format!("podinfo-{i}"),
                "fleet",
                "./podinfo",
                json!({"interval": "1h", "targetNamespace": format!("bench-{i}")}),
            );
            api.patch(
                &format!("podinfo-{i}"),
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&k),
            )
            .await
            .expect("kustomization");
        }
        let hub = ArtifactHub::default().start();
        let agent = start_agent(
            std::fs::read_to_string(&sim.kubeconfig).expect("kubeconfig"),
            hub.clone(),
        );
        // Every actor has reported the missing artifact: the agent is up and idle.
        while count_ready(&client, None).await < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let idle_rss = rss_mib("VmRSS:");
        let started = Instant::now();
        hub.send(Publish(artifact)).await.expect("publish");
        while count_ready(&client, Some(&revision)).await < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed();
        let rss = rss_mib("VmHWM:");
        agent.stop();
        println!(
            "bench 1: {n} Kustomizations x 4 objects: all Ready {:.2}s after the artifact; agent peak RSS {rss:.0} MiB (idle before: {idle_rss:.0} MiB) \
             (Flux 2.3 published, 1000 on 16 cores: 255 s, 112 MiB{})",
            took.as_secs_f64(),
            if n == 1000 {
                format!(
                    "; ratio {:.1}x faster, {:.1}x less memory",
                    255.0 / took.as_secs_f64(),
                    112.0 / rss.max(1.0)
                )
            } else {
                String::new()
            }
        );
    });
}

fn apply_versus_kubectl(count: usize) {
    let system = actix::System::new();
    system.block_on(async move {
        let sim = Sim::start();
        let client = sim.client().await;
        let objects = |namespace: &str| -> Vec<serde_json::Value> {
            (0..count)
                .map(|i| {
                    if i % 5 == 0 {
                        serde_json::from_str::<serde_json::Value>(&yaml_to_json(&deployment(
                            &format!("app-{i}"),
                            namespace,
                            1,
                        )))
                        .expect("deployment")
                    } else {
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": format!("config-{i}"), "namespace": namespace},
                            "data": {"index": i.to_string(), "payload": "x".repeat(200)}})
                    }
                })
                .collect()
        };
        namespace(&client, "ours").await;
        namespace(&client, "kubectl").await;

        let applier = Applier {
            client: client.clone(),
            kinds: KindCache::default(),
            field_manager: FIELD_MANAGER.into(),
            force: false,
        };
        let plan = plan::plan_apply(objects("ours")).expect("plan");
        let all: Vec<_> = plan.objects().cloned().collect();
        let started = Instant::now();
        let (prepared, _) = applier.prepare(&all, &all).await.expect("dry-run");
        let mut changes = ChangeSet::default();
        applier.apply(&prepared, &mut changes).await.expect("apply");
        let ours = started.elapsed();

        let file = tempfile::NamedTempFile::new().expect("file");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects("kubectl")});
        std::fs::write(file.path(), list.to_string()).expect("write");
        let started = Instant::now();
        let status = Command::new("kubectl")
            .args(["apply", "--server-side", "--validate=false", "-f"])
            .arg(file.path())
            .env("KUBECONFIG", &sim.kubeconfig)
            .stdout(Stdio::null())
            .status()
            .expect("kubectl");
        let theirs = started.elapsed();
        assert!(status.success(), "kubectl apply failed");
        let rate = |d: Duration| count as f64 / d.as_secs_f64();
        println!(
            "bench 2: {count} objects, first apply: ours {:.0} objects/s ({:.2}s, dry-run of all + apply), \
             kubectl apply --server-side {:.0} objects/s ({:.2}s); ratio {:.1}x",
            rate(ours),
            ours.as_secs_f64(),
            rate(theirs),
            theirs.as_secs_f64(),
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    });
}

/// The one-document YAML our fixtures write, as JSON (via the kustomize engine's reader).
fn yaml_to_json(yaml: &str) -> String {
    let docs = kustomize::yaml::parse_documents(yaml, Default::default()).expect("yaml");
    let node = docs.into_iter().flatten().next().expect("document");
    kustomize::yaml::go_json(&node).expect("json")
}

fn commit_to_ready(commits: usize) {
    let system = actix::System::new();
    system.block_on(async move {
        let sim = Sim::start();
        let client = sim.client().await;
        setup(&client).await;
        let repo = Repo::new("app");
        repo.write("deployment.yaml", &deployment("web", "default", 1));
        let first = repo.commit("first");
        let hub = ArtifactHub::default().start();
        hub.send(Publish(first.clone())).await.expect("publish");
        let api: Api<Kustomization> = Api::namespaced(client.clone(), NS);
        let k = kustomization("web", "app", "./", json!({"interval": "1h"}));
        api.patch("web", &PatchParams::apply("bench").force(), &Patch::Apply(&k))
            .await
            .expect("kustomization");
        let agent = start_agent(
            std::fs::read_to_string(&sim.kubeconfig).expect("kubeconfig"),
            hub.clone(),
        );
        while count_ready(&client, Some(&first.artifact.revision)).await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut samples = Vec::with_capacity(commits);
        for i in 0..commits {
            let started = Instant::now();
            repo.write("deployment.yaml", &deployment("web", "default", 2 + i as u32 % 3));
            let artifact = repo.commit(&format!("change {i}"));
            let revision = artifact.artifact.revision.clone();
            hub.send(Publish(artifact)).await.expect("publish");
            loop {
                let k = api.get("web").await.expect("get");
                let status = k.status.unwrap_or_default();
                if status.last_applied_revision.as_deref() == Some(revision.as_str())
                    && api::conditions::is_true(&status.conditions, "Ready")
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples.push(started.elapsed());
        }
        agent.stop();
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "bench 3: commit to Ready over {commits} commits: p50 {:.0} ms, p99 {:.0} ms (goal p50 < 1000 ms)",
            pct(0.5).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0
        );
    });
}
