//! What the agent's benchmarks share: kubesim in a child process, the agent in another (so
//! that its memory is measured alone, as Flux's figure is its controller pod's), clients,
//! and the CRDs and namespaces they need.

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
/// Set, to the kubeconfig path, in the child process that runs the agent.
pub const AGENT_ENV: &str = "FLOTILLA_BENCH_RUN_AGENT";
/// A command line the agent child is run under (a profiler), when set.
pub const AGENT_WRAPPER_ENV: &str = "FLOTILLA_BENCH_AGENT_WRAPPER";

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

/// Call first in `main`: in the agent child, runs the agent and returns `true`.
pub fn run_agent_if_child() -> bool {
    let Some(kubeconfig) = std::env::var_os(AGENT_ENV) else {
        return false;
    };
    run_agent(std::path::Path::new(&kubeconfig));
    true
}

/// An artifact as the bench sends it to the agent child, one JSON line each.
#[derive(serde::Serialize, serde::Deserialize)]
struct PublishLine {
    kind: String,
    namespace: String,
    name: String,
    artifact: api::meta::Artifact,
    file: std::path::PathBuf,
}

/// The agent child: what `flotilla-agent` runs for Kustomizations (the registry and its
/// actors, the artifact hub, metrics, info-level logs), with the artifacts coming from the
/// bench over stdin instead of from GitRepository actors. Prints `synced` once every
/// Kustomization has an actor; exits when stdin closes.
fn run_agent(kubeconfig: &std::path::Path) {
    use actix::Actor;
    use agent::context::{AgentContext, FIELD_MANAGER};
    use agent::hub::{ArtifactHub, ArtifactReady, Publish, SourceRef};
    use agent::kustomization::{Deps, KustomizationActor};
    use agent::registry::Registry;

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kubeconfig = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    actix::System::new().block_on(async move {
        let kubeconfig = Kubeconfig::from_yaml(&kubeconfig).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config");
        let client = agent::runtime::client_from(config).expect("client");
        let hub = ArtifactHub::default().start();
        let context = AgentContext {
            client: client.clone(),
            hub: hub.clone(),
            metrics: agent::telemetry::Metrics::new().expect("metrics"),
            storage_dir: std::env::temp_dir(),
            artifact_base_url: "http://127.0.0.1:1".into(),
            field_manager: FIELD_MANAGER.into(),
        };
        let mut registry =
            Registry::<KustomizationActor>::start(Api::all(client), Deps::new(context));
        let _ = registry.synced.wait_for(|synced| *synced).await;
        println!("synced");
        std::io::stdout().flush().expect("flush");
        let (lines, mut received) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = received.recv().await {
            let published: PublishLine = serde_json::from_str(&line).expect("publish line");
            let ready = ArtifactReady {
                source: SourceRef {
                    kind: published.kind,
                    namespace: published.namespace,
                    name: published.name,
                },
                artifact: published.artifact,
                file: published.file,
            };
            hub.send(Publish(ready)).await.expect("publish");
        }
        drop(registry);
    });
}

/// The agent in a child process; killed on drop.
pub struct AgentProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    /// Where the agent's logs go.
    pub log: std::path::PathBuf,
}

impl AgentProcess {
    /// Starts the agent on `sim` and waits until every existing Kustomization has an actor.
    pub fn start(sim: &Sim) -> AgentProcess {
        let log =
            std::env::temp_dir().join(format!("flotilla-bench-agent-{}.log", std::process::id()));
        // A profiler for the agent alone, e.g. `valgrind --tool=massif`.
        let wrapper = std::env::var(AGENT_WRAPPER_ENV).unwrap_or_default();
        let exe = std::env::current_exe().expect("exe");
        let mut command = match wrapper.split_whitespace().collect::<Vec<_>>().as_slice() {
            [program, args @ ..] => {
                let mut command = Command::new(program);
                command.args(args).arg(exe);
                command
            }
            [] => Command::new(exe),
        };
        let mut child = command
            .env(AGENT_ENV, &sim.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("agent child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("agent synced");
        assert_eq!(
            line.trim(),
            "synced",
            "agent child failed; see {}",
            log.display()
        );
        let stdin = child.stdin.take();
        AgentProcess { child, stdin, log }
    }

    /// Hands the agent a new artifact, as its GitRepository actor would.
    pub fn publish(&mut self, ready: &agent::hub::ArtifactReady) {
        let line = PublishLine {
            kind: ready.source.kind.clone(),
            namespace: ready.source.namespace.clone(),
            name: ready.source.name.clone(),
            artifact: ready.artifact.clone(),
            file: ready.file.clone(),
        };
        let mut line = serde_json::to_string(&line).expect("publish line");
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("agent stdin");
        stdin.write_all(line.as_bytes()).expect("publish");
        stdin.flush().expect("publish");
    }

    /// `VmHWM` (peak) and `VmRSS` (now) of the agent process, in MiB.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Memory {
            peak_mib: field("VmHWM:") / 1024.0,
            now_mib: field("VmRSS:") / 1024.0,
            threads: field("Threads:") as u32,
        }
    }
}

/// The agent process's memory as the kernel counts it.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub peak_mib: f64,
    pub now_mib: f64,
    pub threads: u32,
}

impl Drop for AgentProcess {
    /// Closes stdin, so that the agent exits by itself (and a profiler it runs under writes
    /// its report), and kills it if it has not within a minute.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
