//! Our server-side dry-run + apply of a 500-object set against `kubectl apply
//! --server-side` of the same set, on the same kubesim, in one run: objects/s and the ratio
//! (issue 6's second benchmark; goal >= 3x).
//!
//! Run with `cargo bench -p agent --bench apply` (`FLOTILLA_BENCH_OBJECTS` sets the count).

#[path = "../tests/support_ks/mod.rs"]
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
