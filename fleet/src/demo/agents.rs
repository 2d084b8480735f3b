//! One `flotilla-agent` per simulated cluster, each the agent's own runtime on its own thread
//! and actix system (as the binary runs it), stopped through a oneshot channel.

use std::path::PathBuf;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::DemoError;

/// Where an agent finds its cluster, its storage and the fleet.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The cluster's name.
    pub cluster: String,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// Git caches and artifacts (kept across runs).
    pub storage_dir: PathBuf,
    /// The fleet's agent endpoint.
    pub fleet_url: String,
    /// The fleet CA, the cluster certificate and its key (PEM files).
    pub fleet_ca: PathBuf,
    /// The cluster certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// A running agent.
#[derive(Debug)]
pub struct RunningAgent {
    /// The cluster it reconciles.
    pub cluster: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// Starts the agent of `spec` on its own thread.
pub fn start(spec: AgentSpec) -> Result<RunningAgent, DemoError> {
    let (stop, stopped) = oneshot::channel::<()>();
    let cluster = spec.cluster.clone();
    let config = agent::config::AgentConfig {
        kubeconfig: Some(spec.kubeconfig),
        context: None,
        storage_dir: spec.storage_dir,
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        artifact_addr: ([127, 0, 0, 1], 0).into(),
        fleet: Some(spec.fleet_url),
        fleet_ca: Some(spec.fleet_ca),
        cert: Some(spec.cert),
        key: Some(spec.key),
    };
    let thread = std::thread::Builder::new()
        .name(format!("agent-{cluster}"))
        .spawn(move || {
            let system = actix::System::new();
            let shutdown = async move {
                let _ = stopped.await;
            };
            system
                .block_on(agent::runtime::run(config, shutdown))
                .map_err(|e| e.to_string())
        })
        .map_err(|source| DemoError::Thread {
            what: format!("the agent of {cluster}"),
            source,
        })?;
    Ok(RunningAgent {
        cluster,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl RunningAgent {
    /// Whether the agent stopped on its own (it failed to start or crashed).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the agent and waits for its thread; returns why it failed, if it did.
    pub fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err("the agent thread panicked".into()),
            None => Ok(()),
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
