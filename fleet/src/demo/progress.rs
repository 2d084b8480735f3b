//! Per-cluster readiness as the fleet sees it: the lines the demo prints while clusters come
//! up and whenever what they run changes.

use std::collections::BTreeMap;

use proto::{ObjectStatus, Readiness};

use crate::server::FleetState;

/// One cluster's Kustomizations, summarised for a progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterProgress {
    /// How many Kustomizations the agent reports.
    pub total: usize,
    /// How many of them are Ready.
    pub ready: usize,
    /// How many the cluster's path defines (plus the root), when known.
    pub expected: Option<usize>,
    /// The revisions the Ready ones applied.
    pub revisions: Vec<String>,
    /// Those not Ready yet, with their message.
    pub pending: Vec<(String, String)>,
}

impl ClusterProgress {
    /// Reads `cluster`'s Kustomizations from the fleet's state.
    pub fn of(state: &FleetState, cluster: &str, expected: Option<usize>) -> ClusterProgress {
        let objects = state
            .objects(cluster, Some("Kustomization"))
            .unwrap_or_default();
        Self::from_objects(&objects, expected)
    }

    fn from_objects(objects: &[ObjectStatus], expected: Option<usize>) -> ClusterProgress {
        let mut revisions: Vec<String> = objects
            .iter()
            .filter(|o| o.ready == Readiness::True)
            .filter_map(|o| o.revision.clone())
            .collect();
        revisions.sort();
        revisions.dedup();
        let pending = objects
            .iter()
            .filter(|o| o.ready != Readiness::True)
            .map(|o| (o.object.name.clone(), o.message.clone()))
            .collect();
        ClusterProgress {
            total: objects.len(),
            ready: objects
                .iter()
                .filter(|o| o.ready == Readiness::True)
                .count(),
            expected,
            revisions,
            pending,
        }
    }

    /// Every Kustomization (at least as many as expected) is Ready.
    pub fn is_ready(&self) -> bool {
        self.total > 0 && self.ready == self.total && self.expected.is_none_or(|e| self.total >= e)
    }

    /// What a new line is printed for: a change in readiness or in the applied revision (a
    /// message changing while the counts stay is not news), or `None` while Ready clusters
    /// are half-way between two revisions.
    pub fn key(&self) -> Option<String> {
        if self.is_ready() && self.revisions.len() > 1 {
            return None;
        }
        Some(format!(
            "{}/{}/{}",
            self.ready,
            self.is_ready(),
            self.revisions.join(",")
        ))
    }

    /// The line printed for this state.
    pub fn line(&self, cluster: &str) -> String {
        let of = self.expected.unwrap_or(self.total).max(self.total);
        if self.is_ready() {
            let revision = match self.revisions.as_slice() {
                [one] => one.clone(),
                many => many.join(", "),
            };
            return format!("  {cluster:<17} Ready: {of}/{of} Kustomizations at {revision}");
        }
        let waiting = self
            .pending
            .iter()
            .map(|(name, message)| {
                if message.is_empty() {
                    format!("{name} (reconciling)")
                } else {
                    format!("{name} ({message})")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let waiting = if waiting.is_empty() {
            "waiting for the agent".to_string()
        } else {
            waiting
        };
        format!(
            "  {cluster:<17} {}/{of} Kustomizations Ready; {waiting}",
            self.ready
        )
    }
}

/// Remembers what was last printed per cluster, to print only changes.
#[derive(Debug, Default)]
pub struct Printed(BTreeMap<String, String>);

impl Printed {
    /// The line for `progress` if its [`ClusterProgress::key`] changed since the last one
    /// printed for `cluster`.
    pub fn changed(&mut self, cluster: &str, progress: &ClusterProgress) -> Option<String> {
        let key = progress.key()?;
        if self.0.get(cluster) == Some(&key) {
            return None;
        }
        self.0.insert(cluster.to_string(), key);
        Some(progress.line(cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ObjectRef;

    fn ks(name: &str, ready: Readiness) -> ObjectStatus {
        ObjectStatus {
            object: ObjectRef {
                kind: "Kustomization".into(),
                namespace: "flux-system".into(),
                name: name.into(),
            },
            ready,
            revision: Some("main@sha1:abc".into()),
            suspended: false,
            message: if ready == Readiness::True {
                String::new()
            } else {
                "dependency not ready".into()
            },
        }
    }

    #[test]
    fn a_cluster_is_ready_only_when_every_expected_kustomization_is() {
        let root_only =
            ClusterProgress::from_objects(&[ks("flux-system", Readiness::True)], Some(3));
        assert!(!root_only.is_ready());
        assert_eq!(
            root_only.line("staging"),
            "  staging           1/3 Kustomizations Ready; waiting for the agent"
        );
        let all = [
            ks("flux-system", Readiness::True),
            ks("infrastructure", Readiness::True),
            ks("apps", Readiness::Unknown),
        ];
        let pending = ClusterProgress::from_objects(&all, Some(3));
        assert!(!pending.is_ready());
        assert!(
            pending
                .line("staging")
                .contains("apps (dependency not ready)")
        );
        let mut done = all.clone();
        done[2] = ks("apps", Readiness::True);
        let ready = ClusterProgress::from_objects(&done, Some(3));
        assert!(ready.is_ready());
        assert_eq!(
            ready.line("staging"),
            "  staging           Ready: 3/3 Kustomizations at main@sha1:abc"
        );
    }

    #[test]
    fn a_line_is_printed_again_only_when_readiness_or_revision_changes() {
        let mut printed = Printed::default();
        let mut objects = vec![ks("flux-system", Readiness::Unknown)];
        let progress = |o: &[ObjectStatus]| ClusterProgress::from_objects(o, Some(1));
        assert!(printed.changed("a", &progress(&objects)).is_some());
        objects[0].message = "another message".into();
        assert!(printed.changed("a", &progress(&objects)).is_none());
        assert!(printed.changed("b", &progress(&objects)).is_some());
        objects[0] = ks("flux-system", Readiness::True);
        assert!(printed.changed("a", &progress(&objects)).is_some());
        objects.push(ks("apps", Readiness::True));
        objects[1].revision = Some("main@sha1:def".into());
        let mixed = ClusterProgress::from_objects(&objects, Some(2));
        assert!(
            printed.changed("a", &mixed).is_none(),
            "half-way between revisions"
        );
        objects[0].revision = Some("main@sha1:def".into());
        let moved = ClusterProgress::from_objects(&objects, Some(2));
        assert!(
            printed
                .changed("a", &moved)
                .is_some_and(|l| l.contains("at main@sha1:def"))
        );
    }
}
