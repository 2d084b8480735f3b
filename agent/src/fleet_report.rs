//! What the agent tells the fleet, and what it does when the fleet asks.
//!
//! [`StatusReporter`] watches the Flux objects of the cluster and forwards each one's
//! readiness, revision and suspension to the [`FleetLink`] as it changes. It reads the
//! objects from the API, not from the actors, so the fleet sees exactly what `flux get`
//! and `kubectl` see, whoever wrote the status.
//!
//! [`CommandExecutor`] carries out the fleet's commands the way Flux's CLI does: "reconcile
//! now" sets the `reconcile.fluxcd.io/requestedAt` annotation, suspend and resume set
//! `spec.suspend`. The actors notice through their own watchers, so a command takes the same
//! path as a `flux reconcile` typed by hand.

use actix::prelude::*;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use proto::{Command, CommandAction, ObjectRef, ObjectStatus, Readiness};
use serde_json::{Value, json};

use crate::fleet_link::{ExecuteCommand, FleetLink, ObjectRemoved, StatusChanged};

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

fn api_resource(kind: &str) -> Option<ApiResource> {
    REPORTED_KINDS
        .iter()
        .find(|(_, _, k, _)| *k == kind)
        .map(|(group, version, kind, plural)| ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: format!("{group}/{version}"),
            kind: kind.to_string(),
            plural: plural.to_string(),
        })
}

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

/// Carries out the fleet's commands on the cluster.
pub struct CommandExecutor {
    client: Client,
    field_manager: String,
}

impl CommandExecutor {
    pub fn new(client: Client, field_manager: impl Into<String>) -> Self {
        Self {
            client,
            field_manager: field_manager.into(),
        }
    }
}

impl Actor for CommandExecutor {
    type Context = Context<Self>;
}

/// The merge patch that carries out an action, as `flux reconcile|suspend|resume` writes it.
pub fn patch_for(action: CommandAction, now: &str) -> Value {
    match action {
        CommandAction::ReconcileNow => {
            json!({"metadata": {"annotations": {api::conditions::annotations::RECONCILE_REQUESTED_AT: now}}})
        }
        CommandAction::Suspend => json!({"spec": {"suspend": true}}),
        CommandAction::Resume => json!({"spec": {"suspend": false}}),
    }
}

impl Handler<ExecuteCommand> for CommandExecutor {
    type Result = ResponseFuture<Result<String, String>>;

    fn handle(
        &mut self,
        ExecuteCommand(command): ExecuteCommand,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let client = self.client.clone();
        // A merge patch, as the Flux CLI uses: it touches only these fields and takes no
        // ownership of them, so the Kustomization that applied the object keeps it.
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        Box::pin(async move {
            let Command { action, object, .. } = command;
            let resource = api_resource(&object.kind)
                .ok_or_else(|| format!("unsupported kind {}", object.kind))?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(client, &object.namespace, &resource);
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let patch = patch_for(action, &now);
            api.patch(&object.name, &params, &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("{object}: {e}"))?;
            Ok(format!("{action} requested for {object}"))
        })
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn commands_become_the_patches_the_flux_cli_writes() {
        let reconcile = patch_for(CommandAction::ReconcileNow, "2026-11-21T06:00:00Z");
        assert_eq!(
            reconcile["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
            "2026-11-21T06:00:00Z"
        );
        assert_eq!(
            patch_for(CommandAction::Suspend, "")["spec"]["suspend"],
            true
        );
        assert_eq!(
            patch_for(CommandAction::Resume, "")["spec"]["suspend"],
            false
        );
    }
}
