//! Writes what the fleet observes about each cluster back to the registry (the `Cluster`
//! objects' status in a management cluster), so `kubectl get clusters.fleet.flotilla.io` and
//! other fleet replicas see it.
//!
//! Only changes are written: connection, agent version and object counts whenever they
//! change, `lastSeen` at most once per [`LAST_SEEN_RESOLUTION`], so thousands of heartbeating
//! agents do not turn into thousands of writes.

use std::collections::HashMap;
use std::sync::Arc;

use api::fleet::{ClusterSummary, ObjectCounts};
use chrono::{DateTime, Utc};
use proto::Readiness;

use super::state::{ConnectionState, FleetState};
use crate::registry::{ClusterReport, Registry, RegistryError};

/// How stale a written `lastSeen` may get before it is rewritten.
pub const LAST_SEEN_RESOLUTION: chrono::Duration = chrono::Duration::seconds(60);

/// Remembers what was last written, to write only changes.
#[derive(Debug, Default)]
pub struct StatusReporter {
    written: HashMap<String, ClusterReport>,
}

fn summarise(state: &FleetState, cluster: &str) -> ClusterSummary {
    let mut summary = ClusterSummary::default();
    for o in state.objects(cluster, None).unwrap_or_default() {
        let counts: &mut ObjectCounts = match o.object.kind.as_str() {
            "Kustomization" => &mut summary.kustomizations,
            "HelmRelease" => &mut summary.helm_releases,
            _ => &mut summary.sources,
        };
        counts.total += 1;
        match o.ready {
            Readiness::True => counts.ready += 1,
            Readiness::False => counts.failing += 1,
            Readiness::Unknown => {}
        }
        if o.suspended {
            counts.suspended += 1;
        }
    }
    summary
}

fn stale(written: Option<DateTime<Utc>>, now: Option<DateTime<Utc>>) -> bool {
    match (written, now) {
        (Some(w), Some(n)) => n - w >= LAST_SEEN_RESOLUTION,
        (w, n) => w != n,
    }
}

impl StatusReporter {
    /// The reports that differ from what was last written.
    pub fn changes(&self, state: &FleetState) -> Vec<ClusterReport> {
        state
            .clusters()
            .into_iter()
            .filter(|c| c.state != ConnectionState::Pending || self.written.contains_key(&c.name))
            .map(|c| ClusterReport {
                summary: summarise(state, &c.name),
                connected: c.state == ConnectionState::Connected,
                last_seen: c.last_seen,
                agent_version: c.agent_version,
                name: c.name,
            })
            .filter(|r| match self.written.get(&r.name) {
                None => true,
                Some(w) => {
                    w.connected != r.connected
                        || w.agent_version != r.agent_version
                        || w.summary != r.summary
                        || stale(w.last_seen, r.last_seen)
                }
            })
            .collect()
    }

    /// Writes the changes; remembers them only once written.
    pub async fn report(
        &mut self,
        state: &FleetState,
        registry: &Arc<dyn Registry>,
    ) -> Result<usize, RegistryError> {
        let changes = self.changes(state);
        let count = changes.len();
        if count > 0 {
            registry.report(changes.clone()).await?;
        }
        for c in changes {
            self.written.insert(c.name.clone(), c);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registration, RegistryContents};
    use proto::{ObjectRef, ObjectStatus};

    fn state() -> FleetState {
        let state = FleetState::new();
        let mut contents = RegistryContents::default();
        contents.clusters.insert(
            "staging".into(),
            Registration {
                name: "staging".into(),
                labels: Default::default(),
                certificates: vec![],
                registered_at: Utc::now(),
            },
        );
        state.sync_registrations(&contents);
        state
    }

    #[test]
    fn only_changes_are_reported_and_pending_clusters_are_left_alone() {
        let state = state();
        let mut reporter = StatusReporter::default();
        assert!(
            reporter.changes(&state).is_empty(),
            "never connected: nothing to say"
        );
        state.connected("staging", "0.1.0");
        state.apply_snapshot(
            "staging",
            vec![ObjectStatus {
                object: ObjectRef {
                    kind: "Kustomization".into(),
                    namespace: "flux-system".into(),
                    name: "apps".into(),
                },
                ready: Readiness::False,
                revision: None,
                suspended: true,
                message: String::new(),
            }],
        );
        let changes = reporter.changes(&state);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].connected);
        assert_eq!(
            changes[0].summary.kustomizations,
            ObjectCounts {
                total: 1,
                ready: 0,
                failing: 1,
                suspended: 1
            }
        );
        for c in changes {
            reporter.written.insert(c.name.clone(), c);
        }
        state.seen("staging");
        assert!(
            reporter.changes(&state).is_empty(),
            "a fresher lastSeen alone waits"
        );
        state.disconnected("staging");
        assert_eq!(reporter.changes(&state).len(), 1);
    }
}
