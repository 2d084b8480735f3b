//! Benchmarks of the Kustomization reconciler on kubesim. The bench binary runs three
//! processes: kubesim, the agent (its Kustomization registry, as `flotilla-agent` runs it,
//! fed artifacts over stdin) and this driver, so that the agent's memory is measured alone,
//! as Flux's figure is its controller pod's:
//!
//! 1. Flux's benchmark shape: N Kustomizations (default 100, 500, 1000; `FLOTILLA_BENCH_N`)
//!    each applying a podinfo-like app (Deployment, Service, HorizontalPodAutoscaler,
//!    ConfigMap) from one source: time from the artifact to all N Ready, and the agent's
//!    peak RSS (`VmHWM` of its process, one fresh process per N) and its RSS when idle
//!    before the artifact. Flux cannot run here; its published figure (Flux 2.3, 16 cores: 1000 in
//!    4m15s, 112 MiB) is printed beside ours. Run under `taskset -c 0,1` for 2 cores.
//! 2. (The apply throughput against kubectl is the `apply` bench.)
//! 3. Commit to Ready of a one-Deployment change with an immediate reconcile: p50 and p99
//!    over 50 commits (commit + artifact packaging + publish + reconcile; the GitRepository
//!    fetch is measured by the `git_fetch` bench).
//!
//! Run with `cargo bench -p agent --bench kustomization`.

#[path = "../tests/integration/support_ks.rs"]
mod support_ks;

mod common;
use common::{AgentProcess, Sim, namespace, setup};

use std::time::{Duration, Instant};

use api::kustomize::Kustomization;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support_ks::{NS, Repo, deployment, kustomization};

fn main() {
    if common::serve_kubesim_if_child() || common::run_agent_if_child() {
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
    if only.is_empty() || only.contains('3') {
        commit_to_ready(50);
    }
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
        let mut agent = AgentProcess::start(&sim);
        // Every actor has reported the missing artifact: the agent is up and idle.
        while count_ready(&client, None).await < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let idle = agent.memory();
        let started = Instant::now();
        agent.publish(&artifact);
        while count_ready(&client, Some(&revision)).await < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed();
        let done = agent.memory();
        let rss = done.peak_mib;
        drop(agent);
        println!(
            "bench 1: {n} Kustomizations x 4 objects: all Ready {:.2}s after the artifact; agent peak RSS {rss:.1} MiB \
             (idle before: {:.1} MiB; after: {:.1} MiB, {} threads) \
             (Flux 2.3 published, 1000 on 16 cores: 255 s, 112 MiB{})",
            took.as_secs_f64(),
            idle.now_mib,
            done.now_mib,
            done.threads,
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

fn commit_to_ready(commits: usize) {
    let system = actix::System::new();
    system.block_on(async move {
        let sim = Sim::start();
        let client = sim.client().await;
        setup(&client).await;
        let repo = Repo::new("app");
        repo.write("deployment.yaml", &deployment("web", "default", 1));
        let first = repo.commit("first");
        let api: Api<Kustomization> = Api::namespaced(client.clone(), NS);
        let k = kustomization("web", "app", "./", json!({"interval": "1h"}));
        api.patch("web", &PatchParams::apply("bench").force(), &Patch::Apply(&k))
            .await
            .expect("kustomization");
        let mut agent = AgentProcess::start(&sim);
        agent.publish(&first);
        while count_ready(&client, Some(&first.artifact.revision)).await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut samples = Vec::with_capacity(commits);
        for i in 0..commits {
            let started = Instant::now();
            repo.write("deployment.yaml", &deployment("web", "default", 2 + i as u32 % 3));
            let artifact = repo.commit(&format!("change {i}"));
            let revision = artifact.artifact.revision.clone();
            agent.publish(&artifact);
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
        drop(agent);
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "bench 3: commit to Ready over {commits} commits: p50 {:.0} ms, p99 {:.0} ms (goal p50 < 1000 ms)",
            pct(0.5).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0
        );
    });
}
