//! The read side of the fleet: what every cluster reported, in concurrent maps that the API
//! and console read without a round trip through [`super::FleetActor`].
//!
//! # Writers
//! Each cluster's status has one writer, the cluster's current [`super::ClusterSession`];
//! connection state is written by the [`super::FleetActor`]. Every change is also published
//! on a broadcast channel for server-sent events.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use proto::{ObjectRef, ObjectStatus, Readiness};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::registry::RegistryContents;

/// Whether a cluster's agent is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum ConnectionState {
    /// Registered; no agent has connected since the fleet started.
    Pending,
    /// An agent is connected and heartbeating.
    Connected,
    /// The agent went away or missed its heartbeats.
    Disconnected,
}

impl ConnectionState {
    /// Every state, for metrics that must report zeros too.
    pub const ALL: [ConnectionState; 3] = [
        ConnectionState::Pending,
        ConnectionState::Connected,
        ConnectionState::Disconnected,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Pending => "Pending",
            ConnectionState::Connected => "Connected",
            ConnectionState::Disconnected => "Disconnected",
        }
    }
}

/// One cluster, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The cluster name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Connected or not.
    pub state: ConnectionState,
    /// The last frame received from its agent.
    pub last_seen: Option<DateTime<Utc>>,
    /// The agent's release.
    pub agent_version: Option<String>,
    /// How many objects the agent reports.
    pub objects: usize,
    /// How many of them are `Ready=True`.
    pub ready: usize,
}

/// A live change, as server-sent events carry it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FleetEvent {
    /// A cluster's connection state or summary changed.
    Cluster(ClusterView),
    /// An object's status changed.
    Object {
        /// The cluster.
        cluster: String,
        /// Its new status.
        status: ObjectStatus,
    },
    /// An object is gone.
    ObjectRemoved {
        /// The cluster.
        cluster: String,
        /// Which object.
        object: ObjectRef,
    },
    /// A cluster was removed from the fleet.
    ClusterRemoved {
        /// The cluster.
        cluster: String,
    },
}

impl FleetEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            FleetEvent::Cluster(_) => "cluster",
            FleetEvent::Object { .. } => "object",
            FleetEvent::ObjectRemoved { .. } => "objectRemoved",
            FleetEvent::ClusterRemoved { .. } => "clusterRemoved",
        }
    }
}

#[derive(Debug)]
struct ClusterEntry {
    view: ClusterView,
    objects: BTreeMap<ObjectRef, ObjectStatus>,
}

impl ClusterEntry {
    fn summarise(&mut self) {
        self.view.objects = self.objects.len();
        self.view.ready = self
            .objects
            .values()
            .filter(|o| o.ready == Readiness::True)
            .count();
    }
}

/// The shared read side. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FleetState {
    clusters: Arc<DashMap<String, ClusterEntry>>,
    events: broadcast::Sender<FleetEvent>,
}

impl Default for FleetState {
    fn default() -> Self {
        FleetState::new()
    }
}

impl FleetState {
    /// An empty fleet.
    pub fn new() -> FleetState {
        FleetState {
            clusters: Arc::new(DashMap::new()),
            events: broadcast::channel(4096).0,
        }
    }

    /// Live changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }

    fn publish(&self, event: FleetEvent) {
        // No subscriber is the normal case; the error only says so.
        let _ = self.events.send(event);
    }

    /// Every cluster, by name.
    pub fn clusters(&self) -> Vec<ClusterView> {
        let mut all: Vec<_> = self.clusters.iter().map(|e| e.view.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// One cluster.
    pub fn cluster(&self, name: &str) -> Option<ClusterView> {
        self.clusters.get(name).map(|e| e.view.clone())
    }

    /// One cluster's objects, optionally of one kind.
    pub fn objects(&self, cluster: &str, kind: Option<&str>) -> Option<Vec<ObjectStatus>> {
        self.clusters.get(cluster).map(|e| {
            e.objects
                .values()
                .filter(|o| kind.is_none_or(|k| o.object.kind.eq_ignore_ascii_case(k)))
                .cloned()
                .collect()
        })
    }

    /// Every object of every cluster, optionally of one kind, as (cluster, status).
    pub fn all_objects(&self, kind: Option<&str>) -> Vec<(String, ObjectStatus)> {
        let mut out = Vec::new();
        for entry in self.clusters.iter() {
            for o in entry.objects.values() {
                if kind.is_none_or(|k| o.object.kind.eq_ignore_ascii_case(k)) {
                    out.push((entry.key().clone(), o.clone()));
                }
            }
        }
        out.sort_by(|a, b| (&a.1.object, &a.0).cmp(&(&b.1.object, &b.0)));
        out
    }

    /// How many clusters are in each state.
    pub fn count_by_state(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<_, _> = ConnectionState::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
        for entry in self.clusters.iter() {
            *counts.entry(entry.view.state.as_str()).or_default() += 1;
        }
        counts
    }

    /// Makes the known clusters match the registry: new registrations appear as pending,
    /// removed ones disappear, labels follow.
    pub fn sync_registrations(&self, contents: &RegistryContents) {
        for reg in contents.clusters.values() {
            let mut entry = self
                .clusters
                .entry(reg.name.clone())
                .or_insert_with(|| ClusterEntry {
                    view: ClusterView {
                        name: reg.name.clone(),
                        labels: reg.labels.clone(),
                        state: ConnectionState::Pending,
                        last_seen: None,
                        agent_version: None,
                        objects: 0,
                        ready: 0,
                    },
                    objects: BTreeMap::new(),
                });
            if entry.view.labels != reg.labels {
                entry.view.labels = reg.labels.clone();
                let view = entry.view.clone();
                drop(entry);
                self.publish(FleetEvent::Cluster(view));
            }
        }
        let gone: Vec<String> = self
            .clusters
            .iter()
            .filter(|e| !contents.clusters.contains_key(e.key()))
            .map(|e| e.key().clone())
            .collect();
        for name in gone {
            self.clusters.remove(&name);
            self.publish(FleetEvent::ClusterRemoved { cluster: name });
        }
    }

    fn update_view(&self, cluster: &str, change: impl FnOnce(&mut ClusterView)) {
        let view = {
            let Some(mut entry) = self.clusters.get_mut(cluster) else {
                return;
            };
            change(&mut entry.view);
            entry.view.clone()
        };
        self.publish(FleetEvent::Cluster(view));
    }

    /// An agent connected.
    pub fn connected(&self, cluster: &str, agent_version: &str) {
        self.update_view(cluster, |v| {
            v.state = ConnectionState::Connected;
            v.agent_version = Some(agent_version.to_string());
            v.last_seen = Some(Utc::now());
        });
    }

    /// The agent went away; its last report stays visible.
    pub fn disconnected(&self, cluster: &str) {
        self.update_view(cluster, |v| v.state = ConnectionState::Disconnected);
    }

    /// A frame arrived from the cluster's agent.
    pub fn seen(&self, cluster: &str) {
        if let Some(mut entry) = self.clusters.get_mut(cluster) {
            entry.view.last_seen = Some(Utc::now());
        }
    }

    /// A snapshot replaces everything known about the cluster's objects.
    pub fn apply_snapshot(&self, cluster: &str, objects: Vec<ObjectStatus>) {
        let (changed, removed) = {
            let Some(mut entry) = self.clusters.get_mut(cluster) else {
                return;
            };
            let new: BTreeMap<_, _> = objects.into_iter().map(|o| (o.object.clone(), o)).collect();
            let removed: Vec<ObjectRef> = entry
                .objects
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect();
            let changed: Vec<ObjectStatus> = new
                .values()
                .filter(|o| entry.objects.get(&o.object) != Some(*o))
                .cloned()
                .collect();
            entry.objects = new;
            entry.summarise();
            (changed, removed)
        };
        self.publish_changes(cluster, changed, removed);
    }

    /// A delta changes some objects.
    pub fn apply_delta(&self, cluster: &str, changed: Vec<ObjectStatus>, removed: Vec<ObjectRef>) {
        {
            let Some(mut entry) = self.clusters.get_mut(cluster) else {
                return;
            };
            for o in &changed {
                entry.objects.insert(o.object.clone(), o.clone());
            }
            for r in &removed {
                entry.objects.remove(r);
            }
            entry.summarise();
        }
        self.publish_changes(cluster, changed, removed);
    }

    fn publish_changes(&self, cluster: &str, changed: Vec<ObjectStatus>, removed: Vec<ObjectRef>) {
        for status in changed {
            self.publish(FleetEvent::Object {
                cluster: cluster.to_string(),
                status,
            });
        }
        for object in removed {
            self.publish(FleetEvent::ObjectRemoved {
                cluster: cluster.to_string(),
                object,
            });
        }
        self.update_view(cluster, |_| {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registration;

    fn status(name: &str, ready: Readiness) -> ObjectStatus {
        ObjectStatus {
            object: ObjectRef {
                kind: "Kustomization".into(),
                namespace: "flux-system".into(),
                name: name.into(),
            },
            ready,
            revision: Some("main@sha1:1".into()),
            suspended: false,
            message: String::new(),
        }
    }

    fn state_with(names: &[&str]) -> FleetState {
        let state = FleetState::new();
        let mut contents = RegistryContents::default();
        for n in names {
            contents.clusters.insert(
                n.to_string(),
                Registration {
                    name: n.to_string(),
                    labels: Default::default(),
                    certificates: vec![],
                    registered_at: Utc::now(),
                },
            );
        }
        state.sync_registrations(&contents);
        state
    }

    #[test]
    fn a_snapshot_replaces_and_a_delta_amends() {
        let state = state_with(&["staging"]);
        state.apply_snapshot(
            "staging",
            vec![status("a", Readiness::True), status("b", Readiness::False)],
        );
        state.apply_delta(
            "staging",
            vec![status("c", Readiness::True)],
            vec![status("a", Readiness::True).object],
        );
        let names: Vec<_> = state
            .objects("staging", None)
            .expect("known")
            .into_iter()
            .map(|o| o.object.name)
            .collect();
        assert_eq!(names, ["b", "c"]);
        let view = state.cluster("staging").expect("known");
        assert_eq!((view.objects, view.ready), (2, 1));
        state.apply_snapshot("staging", vec![status("d", Readiness::Unknown)]);
        assert_eq!(state.objects("staging", None).expect("known").len(), 1);
    }

    #[test]
    fn status_for_an_unregistered_cluster_is_dropped() {
        let state = state_with(&["staging"]);
        state.apply_snapshot("ghost", vec![status("a", Readiness::True)]);
        assert!(state.objects("ghost", None).is_none());
    }

    #[test]
    fn changes_are_published_for_live_views() {
        let state = state_with(&["staging"]);
        let mut events = state.subscribe();
        state.connected("staging", "0.1.0");
        state.apply_delta("staging", vec![status("a", Readiness::True)], vec![]);
        let first = events.try_recv().expect("cluster event");
        assert!(
            matches!(first, FleetEvent::Cluster(ref v) if v.state == ConnectionState::Connected)
        );
        assert!(matches!(
            events.try_recv().expect("object event"),
            FleetEvent::Object { .. }
        ));
    }

    #[test]
    fn unregistering_removes_the_cluster_and_counts_follow() {
        let state = state_with(&["a", "b"]);
        state.connected("a", "0.1.0");
        assert_eq!(state.count_by_state()["Connected"], 1);
        assert_eq!(state.count_by_state()["Pending"], 1);
        state.sync_registrations(&RegistryContents::default());
        assert!(state.clusters().is_empty());
    }
}
