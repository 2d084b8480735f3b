//! What every actor of the agent shares: the cluster client, the artifact hub, metrics and
//! where things live on disk and on the network.

use std::path::PathBuf;

use actix::Addr;
use kube::Client;

use crate::hub::ArtifactHub;
use crate::telemetry::Metrics;

/// Shared by every actor; cheap to clone.
#[derive(Clone)]
pub struct AgentContext {
    pub client: Client,
    pub hub: Addr<ArtifactHub>,
    pub metrics: Metrics,
    /// Root of Git caches and the artifact store (`--storage-dir`).
    pub storage_dir: PathBuf,
    /// Base URL under which the artifact server serves the store, e.g.
    /// `http://127.0.0.1:9090`; `status.artifact.url` starts with it.
    pub artifact_base_url: String,
    /// Field manager for server-side apply and status writes.
    pub field_manager: String,
}

impl std::fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentContext")
            .field("storage_dir", &self.storage_dir)
            .field("artifact_base_url", &self.artifact_base_url)
            .field("field_manager", &self.field_manager)
            .finish_non_exhaustive()
    }
}

/// The field manager Flotilla applies and writes status with.
pub const FIELD_MANAGER: &str = "flotilla";
