//! [`KubeExecutor`]: carries out the fleet's commands on this cluster's Flux objects the way
//! the `flux` CLI does — `reconcile` sets the `reconcile.fluxcd.io/requestedAt` annotation,
//! `suspend`/`resume` set `spec.suspend` (resume also requests a reconcile).

use actix::prelude::*;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use proto::{CommandAction, ObjectRef};

use super::link::ExecuteCommand;

/// The annotation Flux controllers watch to reconcile out of schedule.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// Applies commands through the Kubernetes API.
pub struct KubeExecutor {
    client: kube::Client,
}

impl KubeExecutor {
    /// Commands on the cluster `client` talks to.
    pub fn new(client: kube::Client) -> KubeExecutor {
        KubeExecutor { client }
    }
}

impl Actor for KubeExecutor {
    type Context = Context<Self>;
}

/// The API resource of a Flux kind (the fleet's own kinds are not commandable).
pub fn resource_of(kind: &str) -> Option<ApiResource> {
    let known = api::crd::KINDS
        .iter()
        .find(|k| k.kind == kind && k.group != api::fleet::GROUP)?;
    Some(ApiResource::from_gvk(&GroupVersionKind::gvk(
        known.group,
        known.storage_version,
        known.kind,
    )))
}

/// The merge patch that carries out `action`.
pub fn patch_for(action: CommandAction, now: &str) -> serde_json::Value {
    let requested = serde_json::json!({ "annotations": { REQUESTED_AT: now } });
    match action {
        CommandAction::ReconcileNow => serde_json::json!({ "metadata": requested }),
        CommandAction::Suspend => serde_json::json!({ "spec": { "suspend": true } }),
        CommandAction::Resume => {
            serde_json::json!({ "metadata": requested, "spec": { "suspend": false } })
        }
    }
}

async fn execute(
    client: kube::Client,
    action: CommandAction,
    object: ObjectRef,
) -> Result<String, String> {
    let resource =
        resource_of(&object.kind).ok_or_else(|| format!("{} is not a Flux kind", object.kind))?;
    let objects: Api<DynamicObject> = Api::namespaced_with(client, &object.namespace, &resource);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let patch = patch_for(action, &now);
    match objects
        .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(match action {
            CommandAction::ReconcileNow => format!("reconcile requested for {object} at {now}"),
            CommandAction::Suspend => format!("{object} suspended"),
            CommandAction::Resume => format!("{object} resumed"),
        }),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(format!("{object} not found")),
        Err(e) => Err(format!("{action} {object} failed: {e}")),
    }
}

impl Handler<ExecuteCommand> for KubeExecutor {
    type Result = ResponseFuture<Result<String, String>>;

    fn handle(
        &mut self,
        ExecuteCommand(command): ExecuteCommand,
        _: &mut Self::Context,
    ) -> Self::Result {
        Box::pin(execute(self.client.clone(), command.action, command.object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_kinds_resolve_to_their_served_resources() {
        let ks = resource_of("Kustomization").expect("known");
        assert_eq!(
            (ks.group.as_str(), ks.version.as_str(), ks.plural.as_str()),
            ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
        );
        assert_eq!(
            resource_of("GitRepository").expect("known").plural,
            "gitrepositories"
        );
        assert!(
            resource_of("Cluster").is_none(),
            "fleet kinds are not commandable"
        );
        assert!(resource_of("Secret").is_none());
    }

    #[test]
    fn commands_patch_what_flux_patches() {
        let resume = patch_for(CommandAction::Resume, "t");
        assert_eq!(resume["spec"]["suspend"], false);
        assert_eq!(resume["metadata"]["annotations"][REQUESTED_AT], "t");
        assert_eq!(
            patch_for(CommandAction::Suspend, "t"),
            serde_json::json!({ "spec": { "suspend": true } })
        );
    }
}
