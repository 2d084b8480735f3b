//! Durability: every acknowledged write survives `kill -9` of the serving process.

use std::io::BufRead;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

const DIR_VAR: &str = "KUBESIM_KILL9_DIR";

/// Not a test: the child process the kill -9 test starts (run only with `--ignored --exact`).
#[tokio::test]
#[ignore = "helper process for acknowledged_writes_survive_kill_9"]
async fn helper_serves_until_killed() {
    let dir = std::env::var(DIR_VAR).expect("the kill -9 test sets the data dir");
    let config = kubesim::Config {
        data_dir: Some(dir.clone().into()),
        ..Default::default()
    };
    let server = kubesim::Server::start(config).await.expect("start");
    std::fs::write(format!("{dir}/kubeconfig"), server.kubeconfig()).expect("kubeconfig");
    println!("KUBESIM-READY");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "helper_serves_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child server");
    let stdout = child.stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("KUBESIM-READY"))
    })
    .await
    .expect("join");
    assert!(ready, "child server did not start");
    let kubeconfig = std::fs::read_to_string(dir.path().join("kubeconfig")).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).expect("parse");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config"),
    )
    .expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut acked = Vec::new();
    for i in 0..20 {
        let c: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("c{i}")}, "data": {"i": i.to_string()}}),
        )
        .expect("cm");
        let created = api
            .create(&PostParams::default(), &c)
            .await
            .expect("acknowledged");
        acked.push(created);
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let config = kubesim::Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let server = kubesim::Server::start(config).await.expect("restart");
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).expect("parse");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config"),
    )
    .expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for c in acked {
        let name = c.metadata.name.clone().expect("name");
        let back = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{name} lost: {e}"));
        assert_eq!(back.metadata.uid, c.metadata.uid);
        assert_eq!(back.data, c.data);
    }
}
