//! What the agent's benchmarks share: kubesim in a child process (so that the bench
//! process measures only our side), clients, and the CRDs and namespaces they need.

// Each bench binary uses its own subset.
#![allow(dead_code)]

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

/// Set in the child process that serves kubesim.
pub const SERVE_ENV: &str = "FLOTILLA_BENCH_SERVE_KUBESIM";

/// Call first in `main`: in the kubesim child, serves and returns `true`.
pub fn serve_kubesim_if_child() -> bool {
    if std::env::var_os(SERVE_ENV).is_none() {
        return false;
    }
    serve_kubesim();
    true
}

/// The child process: kubesim until stdin closes; prints the kubeconfig path first.
pub fn serve_kubesim() {
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
pub struct Sim {
    child: std::process::Child,
    pub kubeconfig: std::path::PathBuf,
}

impl Sim {
    pub fn start() -> Sim {
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

    pub async fn client(&self) -> Client {
        client(&std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig")).await
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn client(kubeconfig: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

pub async fn setup(client: &Client) {
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
    namespace(client, super::support_ks::NS).await;
}

pub async fn namespace(client: &Client, name: &str) {
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
