//! What the agent tells the fleet.
//!
//! [`StatusReporter`] watches the Flux objects of the cluster and forwards each one's
//! readiness, revision and suspension to the [`FleetLink`] as it changes. It reads the
//! objects from the API, not from the actors, so the fleet sees exactly what `flux get`
//! and `kubectl` see, whoever wrote the status.
//!
//! The fleet's commands are carried out by [`crate::fleet_link::KubeExecutor`].

use actix::prelude::*;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use proto::{ObjectRef, ObjectStatus, Readiness};
use serde_json::Value;

use crate::fleet_link::{FleetLink, ObjectRemoved, StatusChanged};

/// The Flux kinds reported to the fleet: `(group, version, kind, plural)`.
pub const REPORTED_KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
        "gitrepositories",
    ),
    (
        "source.toolkit.fluxcd.io",
        "v1",
        "OCIRepository",
        "ocirepositories",
    ),
    (
        "source.toolkit.fluxcd.io",
        "v1",
        "HelmRepository",
        "helmrepositories",
    ),
    ("source.toolkit.fluxcd.io", "v1", "HelmChart", "helmcharts"),
    ("source.toolkit.fluxcd.io", "v1", "Bucket", "buckets"),
    (
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
    ),
    (
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
        "helmreleases",
    ),
];

/// The fleet's view of one object, read from it as the API serves it.
pub fn status_of(kind: &str, object: &Value) -> ObjectStatus {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let ready = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let readiness = match ready.and_then(|c| c.get("status")).and_then(Value::as_str) {
        Some("True") => Readiness::True,
        Some("False") => Readiness::False,
        _ => Readiness::Unknown,
    };
    // What `flux get` shows as REVISION for each kind.
    let revision = match kind {
        "Kustomization" => text("/status/lastAppliedRevision"),
        "HelmRelease" => text("/status/lastAttemptedRevision"),
        _ => text("/status/artifact/revision"),
    };
    ObjectStatus {
        object: ObjectRef {
            kind: kind.to_string(),
            namespace: text("/metadata/namespace").unwrap_or_default().to_string(),
            name: text("/metadata/name").unwrap_or_default().to_string(),
        },
        ready: readiness,
        revision: revision.map(str::to_string),
        suspended: object
            .pointer("/spec/suspend")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        message: ready
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

/// Watches every reported kind and forwards changes to the fleet link.
pub struct StatusReporter {
    client: Client,
    link: Addr<FleetLink>,
}

impl StatusReporter {
    pub fn new(client: Client, link: Addr<FleetLink>) -> Self {
        Self { client, link }
    }
}

/// One watch event of one reported kind.
#[derive(Message)]
#[rtype(result = "()")]
struct Observed {
    kind: &'static str,
    event: Result<watcher::Event<DynamicObject>, watcher::Error>,
}

impl Actor for StatusReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for (group, version, kind, plural) in REPORTED_KINDS {
            let resource = ApiResource {
                group: group.to_string(),
                version: version.to_string(),
                api_version: format!("{group}/{version}"),
                kind: kind.to_string(),
                plural: plural.to_string(),
            };
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |event| Observed { kind, event });
            ctx.add_message_stream(stream);
        }
    }
}

impl Handler<Observed> for StatusReporter {
    type Result = ();

    fn handle(&mut self, Observed { kind, event }: Observed, _: &mut Context<Self>) {
        match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                self.link.do_send(StatusChanged(status_of(kind, &value)));
            }
            Ok(watcher::Event::Delete(object)) => self.link.do_send(ObjectRemoved(ObjectRef {
                kind: kind.to_string(),
                namespace: object.namespace().unwrap_or_default(),
                name: object.name_any(),
            })),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            // A kind whose CRD is not installed fails here until it is; the stream retries.
            Err(error) => {
                tracing::debug!(kind, %error, "watch for the fleet report failed; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_kustomization_reports_its_applied_revision_and_ready_condition() {
        let object = json!({
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"suspend": true},
            "status": {
                "lastAppliedRevision": "main@sha1:abc",
                "conditions": [{"type": "Ready", "status": "False", "message": "health check failed"}],
            },
        });
        let status = status_of("Kustomization", &object);
        assert_eq!(status.object.to_string(), "Kustomization/flux-system/apps");
        assert_eq!(status.ready, Readiness::False);
        assert_eq!(status.revision.as_deref(), Some("main@sha1:abc"));
        assert!(status.suspended);
        assert_eq!(status.message, "health check failed");
    }

    #[test]
    fn a_source_reports_its_artifact_revision_and_a_new_object_is_unknown() {
        let object = json!({"metadata": {"name": "repo", "namespace": "flux-system"},
            "status": {"artifact": {"revision": "main@sha1:def"}}});
        let status = status_of("GitRepository", &object);
        assert_eq!(status.revision.as_deref(), Some("main@sha1:def"));
        assert_eq!(status.ready, Readiness::Unknown);
    }
}
