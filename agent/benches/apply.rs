//! Our server-side dry-run + apply of a 500-object set against `kubectl apply
//! --server-side` of the same set, on the same kubesim, in one run: objects/s and the ratio
//! (issue 6's second benchmark; goal >= 3x).
//!
//! Run with `cargo bench -p agent --bench apply` (`FLOTILLA_BENCH_OBJECTS` sets the count).

#[path = "../tests/integration/support_ks.rs"]
mod support_ks;

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::context::FIELD_MANAGER;
use agent::kustomization::apply::{Applier, ChangeSet, KindCache};
use agent::kustomization::plan;
use common::{Sim, namespace};
use serde_json::json;
use support_ks::deployment;

fn main() {
    if common::serve_kubesim_if_child() {
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let count = std::env::var("FLOTILLA_BENCH_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    apply_versus_kubectl(count);
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
        let sim_pid = child_pid();
        let cpu_before = (cpu_time(std::process::id()), sim_pid.map(cpu_time));
        let started = Instant::now();
        let (prepared, _) = applier.prepare(&all, &all).await.expect("dry-run");
        let dry_run = started.elapsed();
        let mut changes = ChangeSet::default();
        applier.apply(&prepared, &mut changes).await.expect("apply");
        let ours = started.elapsed();
        let cpu_ours = cpu_time(std::process::id()) - cpu_before.0;
        let cpu_sim = sim_pid.map(cpu_time).zip(cpu_before.1).map(|(a, b)| a - b);
        let sim_before_kubectl = sim_pid.map(cpu_time);

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
        let cpu_sim_kubectl = sim_pid
            .map(cpu_time)
            .zip(sim_before_kubectl)
            .map(|(a, b)| a - b);
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
        let ms = |d: Option<Duration>| d.map_or("?".to_string(), |d| format!("{}ms", d.as_millis()));
        println!(
            "  ours: dry-run {}ms; CPU: ours {}, kubesim {}; kubectl's run: kubesim CPU {}",
            dry_run.as_millis(),
            ms(Some(cpu_ours)),
            ms(cpu_sim),
            ms(cpu_sim_kubectl),
        );
    });
}

/// The one-document YAML our fixtures write, as JSON (via the kustomize engine's reader).
fn yaml_to_json(yaml: &str) -> String {
    let docs = kustomize::yaml::parse_documents(yaml, Default::default()).expect("yaml");
    let node = docs.into_iter().flatten().next().expect("document");
    kustomize::yaml::go_json(&node).expect("json")
}

/// The kubesim child (the one child of this process when it is asked).
fn child_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The fields after the command name: state, then the parent's pid.
            let after = stat.rsplit_once(')')?.1;
            (after.split_whitespace().nth(1)? == me).then_some(pid)
        })
}

/// CPU time used so far by all threads of a process (Linux schedstat, nanoseconds).
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .sum()
}
