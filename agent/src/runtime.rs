//! Starting and stopping a whole agent: the cluster client, telemetry, and the actors.
//!
//! # Guarantees
//! The agent never exits because the API server is unreachable: it retries the first
//! contact with backoff and logs each failure, so that an agent started before its cluster
//! is up (or during an outage) converges once the cluster answers.

use std::future::Future;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::sync::Arc;

use kube::{Api, Client, Config};

use actix::{Actor, Addr};

use crate::config::AgentConfig;
use crate::context::{AgentContext, FIELD_MANAGER};
use crate::fleet_link::KubeExecutor;
use crate::fleet_link::{FleetLink, FleetLinkConfig, FleetLinkError};
use crate::fleet_report::StatusReporter;
use crate::gitrepository::{GitRepositoryActor, SourceDeps};
use crate::hub::ArtifactHub;
use crate::kustomization::KustomizationActor;
use crate::registry::Registry;
use crate::source::artifact::ArtifactStore;
use crate::telemetry::{self, Metrics, Readiness, TelemetryError};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error("no cluster configuration: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration (e.g. bad TLS material).
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("storage directory {path}: {source}")]
    Storage {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The artifact server could not listen on `--artifact-addr`.
    #[error("serving artifacts on {addr}: {source}")]
    ArtifactServer {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The artifact store could not be opened.
    #[error("artifact store: {0}")]
    Artifacts(String),
    /// The fleet credentials could not be read or do not name a cluster.
    #[error("fleet connection: {0}")]
    Fleet(#[source] FleetLinkError),
}

/// Builds the Kubernetes client from `--kubeconfig`, or `KUBECONFIG`/in-cluster config.
pub async fn kube_client(config: &AgentConfig) -> Result<Client, StartError> {
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(StartError::Kubeconfig)?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(StartError::Kubeconfig)?
        }
        None if config.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(StartError::Kubeconfig)?,
        None => Config::infer().await.map_err(StartError::Infer)?,
    };
    client_from(kube_config).map_err(StartError::Client)
}

/// Requests to the API server in flight at once, from all actors together. Over HTTP/1.1
/// each request in flight holds a connection of its own, with its buffers and TLS state,
/// kept open in the pool afterwards: unbounded, a thousand reconciles finishing together
/// opened over a hundred. The rest wait in the client's queue; a watch holds its slot only
/// until the API server answers with headers.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 32;

/// The agent's client for `config`: kube's default stack, with at most
/// [`MAX_REQUESTS_IN_FLIGHT`] requests in flight.
pub fn client_from(config: Config) -> Result<Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
            MAX_REQUESTS_IN_FLIGHT,
        ))
        .build())
}

/// Waits until the API server answers, retrying with capped exponential backoff.
async fn wait_for_api_server(client: &Client) -> String {
    let mut delay = Duration::from_millis(200);
    loop {
        match client.apiserver_version().await {
            Ok(info) => return info.git_version,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?delay, "the API server does not answer yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Starts one registry per reconciled kind and returns their "listed once" signals.
fn start_registries(
    context: &AgentContext,
    store: Arc<ArtifactStore>,
) -> Vec<tokio::sync::watch::Receiver<bool>> {
    let sources = Registry::<GitRepositoryActor>::start(
        Api::all(context.client.clone()),
        SourceDeps {
            context: context.clone(),
            store,
        },
    );
    let kustomizations = Registry::<KustomizationActor>::start(
        Api::all(context.client.clone()),
        crate::kustomization::Deps::new(context.clone()),
    );
    vec![sources.synced, kustomizations.synced]
}

/// Artifacts kept per source (the newest is served; older ones allow consumers mid-way
/// through a download to finish).
const ARTIFACTS_KEPT: usize = 3;

/// The URL consumers reach the artifact server at: the bound address, or loopback when it
/// listens on every address.
fn artifact_base_url(bound: std::net::SocketAddr) -> String {
    let host = if bound.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        bound.ip().to_string()
    };
    format!("http://{host}:{}", bound.port())
}

/// Connects to the fleet when `--fleet` is given: the link, the status reporter feeding it
/// and the executor of the fleet's commands. The fleet is never in the data path: the
/// agent reconciles the same whether or not the link is up.
fn start_fleet_link(
    config: &AgentConfig,
    context: &AgentContext,
) -> Result<Option<Addr<FleetLink>>, StartError> {
    let (Some(url), Some(ca), Some(cert), Some(key)) =
        (&config.fleet, &config.fleet_ca, &config.cert, &config.key)
    else {
        return Ok(None);
    };
    let link_config = FleetLinkConfig::from_files(url, ca, cert, key).map_err(StartError::Fleet)?;
    tracing::info!(fleet = %url, cluster = %link_config.cluster, "connecting to the fleet");
    let executor = KubeExecutor::new(context.client.clone()).start();
    let (link, _status) = FleetLink::new(link_config, Some(executor.recipient()));
    let link = link.start();
    StatusReporter::new(context.client.clone(), link.clone()).start();
    Ok(Some(link))
}

/// Runs an agent until `shutdown` completes.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    std::fs::create_dir_all(&config.storage_dir).map_err(|source| StartError::Storage {
        path: config.storage_dir.clone(),
        source,
    })?;
    let client = kube_client(&config).await?;
    let metrics = Metrics::new()?;
    let readiness = Readiness::default();
    let (telemetry_server, metrics_addr) =
        telemetry::serve(config.metrics_addr, metrics.clone(), readiness.clone())?;
    let telemetry_handle = telemetry_server.handle();
    actix_web::rt::spawn(telemetry_server);
    tracing::info!(%metrics_addr, "serving /metrics, /healthz and /readyz");

    let store = Arc::new(
        ArtifactStore::open(config.storage_dir.join("artifacts"), ARTIFACTS_KEPT)
            .map_err(|e| StartError::Artifacts(e.to_string()))?,
    );
    let (artifact_server, artifact_addr) =
        crate::source::server::bind(config.artifact_addr, store.clone()).map_err(|source| {
            StartError::ArtifactServer {
                addr: config.artifact_addr,
                source,
            }
        })?;
    let artifact_handle = artifact_server.handle();
    actix_web::rt::spawn(artifact_server);
    let artifact_base_url = artifact_base_url(artifact_addr);
    tracing::info!(%artifact_base_url, "serving artifacts");

    let server_version = wait_for_api_server(&client).await;
    tracing::info!(%server_version, "connected to the cluster");

    let context = AgentContext {
        client,
        hub: ArtifactHub::default().start(),
        metrics,
        storage_dir: config.storage_dir.clone(),
        artifact_base_url,
        field_manager: FIELD_MANAGER.to_string(),
    };
    // The fleet link first: it does not depend on the Flux CRDs being installed.
    let _fleet = start_fleet_link(&config, &context)?;
    // Each kind's registry starts here; the agent is ready once every one has listed its
    // objects. Sources first, so that consumers find their artifacts as early as possible.
    let registries: Vec<tokio::sync::watch::Receiver<bool>> = start_registries(&context, store);
    for mut synced in registries {
        let _ = synced.wait_for(|synced| *synced).await;
    }
    readiness.set_ready();

    shutdown.await;
    tracing::info!("shutting down");
    telemetry_handle.stop(true).await;
    artifact_handle.stop(true).await;
    Ok(())
}
