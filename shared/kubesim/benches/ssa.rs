//! Benchmark: server-side apply of a 50-object set with kube-rs (objects/s), and memory for
//! 100k stored objects. No kube-apiserver runs on these machines, so the peer column says so
//! instead of inventing a figure.

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn rss_bytes() -> u64 {
    // /proc/self/statm: size resident ... in pages.
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn object(i: usize, round: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("obj-{i}"), "labels": {"app.kubernetes.io/name": "bench", "round": round.to_string()}},
        "data": {"config.yaml": format!("replicas: {round}\nimage: nginx:1.{i}\n"), "index": i.to_string()},
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = kubesim::Server::start(kubesim::Config::default()).await?;
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig())?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("bench").force();

    // Warm-up round creates the set; measured rounds change every object.
    for i in 0..50 {
        api.patch(&format!("obj-{i}"), &pp, &Patch::Apply(object(i, 0)))
            .await?;
    }
    let rounds = 20;
    let start = Instant::now();
    for round in 1..=rounds {
        for i in 0..50 {
            api.patch(&format!("obj-{i}"), &pp, &Patch::Apply(object(i, round)))
                .await?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = (rounds * 50) as f64 / secs;
    println!(
        "ssa 50-object set, sequential: kubesim {rate:.0} objects/s; kube-apiserver: not measured (none on this machine); ratio: n/a"
    );

    let big: Api<ConfigMap> = Api::namespaced(client, "default");
    let before = rss_bytes();
    let n = 100_000usize;
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let big = big.clone();
            async move {
                let c: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("m-{i}"), "labels": {"i": (i % 100).to_string()}}, "data": {"k": "v"}}))?;
                big.create(&PostParams::default(), &c).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let created = start.elapsed().as_secs_f64();
    let after = rss_bytes();
    println!(
        "100k stored ConfigMaps: {} objects, RSS +{:.1} MiB ({:.0} bytes/object), created at {:.0}/s; kube-apiserver+etcd: not measured; ratio: n/a",
        server.object_count(),
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0),
        after.saturating_sub(before) as f64 / n as f64,
        n as f64 / created
    );
    server.shutdown().await;
    Ok(())
}
