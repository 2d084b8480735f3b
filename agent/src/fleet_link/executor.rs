//! [`KubeExecutor`]: carries out the fleet's commands on this cluster's Flux objects the way
//! the `flux` CLI does — `reconcile` sets the `reconcile.fluxcd.io/requestedAt` annotation,
//! `suspend`/`resume` set `spec.suspend` (resume also requests a reconcile).

use actix::prelude::*;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use proto::{Command, CommandAction, ObjectRef};

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

/// The source a Kustomization (`spec.sourceRef`) or HelmRelease (`spec.chart.spec.sourceRef`
/// or `spec.chartRef`) reconciles from.
pub fn source_of(object: &DynamicObject, namespace: &str) -> Option<ObjectRef> {
    let spec = &object.data["spec"];
    let reference = [
        &spec["sourceRef"],
        &spec["chartRef"],
        &spec["chart"]["spec"]["sourceRef"],
    ]
    .into_iter()
    .find(|r| r.is_object())?;
    Some(ObjectRef {
        kind: reference["kind"].as_str()?.to_string(),
        namespace: reference["namespace"]
            .as_str()
            .unwrap_or(namespace)
            .to_string(),
        name: reference["name"].as_str()?.to_string(),
    })
}

async fn execute(client: kube::Client, command: Command) -> Result<String, String> {
    let Command {
        action,
        object,
        with_source,
        ..
    } = command;
    let mut done = Vec::new();
    if with_source && action == CommandAction::ReconcileNow {
        let resource = resource_of(&object.kind)
            .ok_or_else(|| format!("{} is not a Flux kind", object.kind))?;
        let objects: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &object.namespace, &resource);
        let current = match objects.get(&object.name).await {
            Ok(o) => o,
            Err(kube::Error::Api(e)) if e.code == 404 => return Err(format!("{object} not found")),
            Err(e) => return Err(format!("reading {object} failed: {e}")),
        };
        let source = source_of(&current, &object.namespace)
            .ok_or_else(|| format!("{object} names no source"))?;
        done.push(patch_object(client.clone(), action, source).await?);
    }
    done.push(patch_object(client, action, object).await?);
    Ok(done.join("; "))
}

async fn patch_object(
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
        Box::pin(execute(self.client.clone(), command))
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
    fn sources_are_found_where_flux_keeps_them() {
        let ks: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": { "name": "apps" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" } }
        }))
        .expect("object");
        let source = source_of(&ks, "flux-system").expect("source");
        assert_eq!(source.to_string(), "GitRepository/flux-system/repo");
        let hr: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": { "name": "podinfo" },
            "spec": { "chart": { "spec": { "chart": "podinfo", "sourceRef": { "kind": "HelmRepository", "name": "podinfo", "namespace": "charts" } } } }
        }))
        .expect("object");
        assert_eq!(
            source_of(&hr, "apps").expect("source").to_string(),
            "HelmRepository/charts/podinfo"
        );
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
