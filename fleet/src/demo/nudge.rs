//! Shortens the waits a newcomer would otherwise sit through: a Kustomization that failed
//! because a dependency or its source was not ready yet retries only after its
//! `retryInterval` (30 s in the demo repository), as Flux's does. When the fleet shows the
//! cause is gone, the demo asks for a reconcile at once, as `flux reconcile kustomization`
//! would.

use std::collections::BTreeSet;

use proto::{ObjectStatus, Readiness};

/// The message prefix of a Kustomization waiting for a dependency (`dependency 'NS/NAME' …`).
const DEPENDENCY: &str = "dependency '";
/// The message prefix of a Kustomization whose source had no artifact yet.
const NO_ARTIFACT: &str = "Source artifact not found for ";

/// Kustomizations of one cluster (by namespace and name) that wait for something the fleet
/// now shows Ready. Each wait is returned once per cause and revision (`asked` remembers).
pub fn stale_waits(
    cluster: &str,
    objects: &[ObjectStatus],
    asked: &mut BTreeSet<String>,
) -> Vec<(String, String)> {
    let ready = |kind: &str, namespace: &str, name: &str| {
        objects
            .iter()
            .find(|o| {
                o.object.kind == kind && o.object.namespace == namespace && o.object.name == name
            })
            .filter(|o| o.ready == Readiness::True)
            .map(|o| o.revision.clone().unwrap_or_default())
    };
    let mut stale = Vec::new();
    for waiting in objects
        .iter()
        .filter(|o| o.object.kind == "Kustomization" && o.ready != Readiness::True)
    {
        let cause = if let Some(rest) = waiting.message.strip_prefix(DEPENDENCY) {
            rest.split_once('\'').and_then(|(reference, _)| {
                let (namespace, name) = reference
                    .split_once('/')
                    .unwrap_or((&waiting.object.namespace, reference));
                ready("Kustomization", namespace, name).map(|r| format!("{reference}@{r}"))
            })
        } else if let Some(rest) = waiting.message.strip_prefix(NO_ARTIFACT) {
            // KIND/NS/NAME, then ", retrying".
            let reference = rest.split(',').next().unwrap_or_default();
            let mut parts = reference.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(kind), Some(namespace), Some(name)) => {
                    ready(kind, namespace, name).map(|r| format!("{reference}@{r}"))
                }
                _ => None,
            }
        } else {
            None
        };
        let Some(cause) = cause else { continue };
        let key = format!(
            "{cluster}/{}/{}/{cause}",
            waiting.object.namespace, waiting.object.name
        );
        if asked.insert(key) {
            stale.push((
                waiting.object.namespace.clone(),
                waiting.object.name.clone(),
            ));
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ObjectRef;

    fn object(kind: &str, name: &str, ready: Readiness, message: &str) -> ObjectStatus {
        ObjectStatus {
            object: ObjectRef {
                kind: kind.into(),
                namespace: "flux-system".into(),
                name: name.into(),
            },
            ready,
            revision: Some("main@sha1:abc".into()),
            suspended: false,
            message: message.into(),
        }
    }

    #[test]
    fn a_kustomization_waiting_for_a_dependency_that_became_ready_is_asked_once() {
        let waiting = object(
            "Kustomization",
            "apps",
            Readiness::False,
            "dependency 'flux-system/infrastructure' is not ready",
        );
        let mut asked = BTreeSet::new();
        let not_yet = [
            waiting.clone(),
            object("Kustomization", "infrastructure", Readiness::Unknown, ""),
        ];
        assert!(stale_waits("staging", &not_yet, &mut asked).is_empty());
        let now = [
            waiting.clone(),
            object("Kustomization", "infrastructure", Readiness::True, ""),
        ];
        assert_eq!(
            stale_waits("staging", &now, &mut asked),
            vec![("flux-system".to_string(), "apps".to_string())]
        );
        assert!(stale_waits("staging", &now, &mut asked).is_empty());
        assert_eq!(stale_waits("production", &now, &mut asked).len(), 1);
    }

    #[test]
    fn a_kustomization_without_an_artifact_is_asked_when_its_source_is_ready() {
        let waiting = object(
            "Kustomization",
            "flux-system",
            Readiness::False,
            "Source artifact not found for GitRepository/flux-system/flux-system, retrying",
        );
        let mut asked = BTreeSet::new();
        let now = [
            waiting,
            object("GitRepository", "flux-system", Readiness::True, ""),
        ];
        assert_eq!(stale_waits("staging", &now, &mut asked).len(), 1);
        let unrelated = [object(
            "Kustomization",
            "x",
            Readiness::False,
            "kustomize build failed",
        )];
        assert!(stale_waits("staging", &unrelated, &mut asked).is_empty());
    }
}
