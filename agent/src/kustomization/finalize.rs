//! A Kustomization being deleted: what happens to its objects (`spec.deletionPolicy`, as
//! Flux), then its finalizer is removed.
//!
//! - `MirrorPrune` (the default): delete them when `spec.prune` is set, else leave them.
//! - `Delete`: delete them whatever `spec.prune` says.
//! - `WaitForTermination`: delete them and wait (up to `spec.timeout`) until they are gone,
//!   e.g. for their own finalizers; a timeout is reported and the object released anyway.
//! - `Orphan`: leave them.
//!
//! A suspended Kustomization leaves its objects. When the target cluster cannot be reached as
//! the Kustomization says (its service account name is invalid, its kubeconfig Secret went
//! first), what is left behind is reported and the object released, so that deleting a
//! namespace never hangs on it; a failure that may pass (the API refusing a read or a
//! delete) is retried.

use std::time::Duration;

use api::conditions::{reasons, types};
use api::inventory::{ObjectId, ResourceInventory};
use api::kustomize::Kustomization;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::apply::{Action, Applier, ChangeSet};
use super::deps::Deps;
use super::plan;
use super::reconcile::{self, Clients, FINALIZER, Outcome, emit, emit_changes};

/// What `spec.deletionPolicy` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionPolicy {
    MirrorPrune,
    Delete,
    WaitForTermination,
    Orphan,
}

impl DeletionPolicy {
    pub fn of(object: &Kustomization) -> Self {
        match object.spec.deletion_policy.as_deref() {
            Some("Delete") => DeletionPolicy::Delete,
            Some("WaitForTermination") => DeletionPolicy::WaitForTermination,
            Some("Orphan") => DeletionPolicy::Orphan,
            _ => DeletionPolicy::MirrorPrune,
        }
    }

    /// Whether the objects are deleted with the Kustomization.
    pub fn deletes(self, prune: bool) -> bool {
        match self {
            DeletionPolicy::MirrorPrune => prune,
            DeletionPolicy::Delete | DeletionPolicy::WaitForTermination => true,
            DeletionPolicy::Orphan => false,
        }
    }
}

/// Handles the deletion of `object`; [`Outcome::Finalized`] once it is released.
pub async fn finalize(deps: &Deps, object: &Kustomization) -> Outcome {
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    if !object.finalizers().iter().any(|f| f == FINALIZER) {
        return Outcome::Finalized;
    }
    let policy = DeletionPolicy::of(object);
    if policy.deletes(object.spec.prune) && !object.spec.suspend {
        match reconcile::clients(deps, object).await {
            Ok(clients) => {
                if let Err(outcome) = delete_objects(deps, object, clients, policy).await {
                    return outcome;
                }
            }
            Err(error) if error.transient => {
                tracing::warn!(%namespace, %name, error = %error.failure.message, "finalizing: retrying");
                return Outcome::Retry;
            }
            Err(error) => {
                let message = format!(
                    "unable to prune objects: {}; left in place: {} objects",
                    error.failure.message,
                    inventory_of(object).entries.len()
                );
                warn(deps, object, &message).await;
            }
        }
    }
    release(deps, object).await
}

/// A deletion that goes on despite a problem: logged and recorded as a Warning event.
async fn warn(deps: &Deps, object: &Kustomization, message: &str) {
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    tracing::warn!(%namespace, %name, %message, "finalizing");
    emit(
        deps,
        object,
        "Warning",
        reasons::PRUNE_FAILED,
        message,
        None,
    )
    .await;
}

fn inventory_of(object: &Kustomization) -> ResourceInventory {
    object
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .unwrap_or_default()
}

/// Deletes everything in the inventory (what the Kustomization still owns), then waits for
/// it to be gone with `WaitForTermination`.
async fn delete_objects(
    deps: &Deps,
    object: &Kustomization,
    clients: Clients,
    policy: DeletionPolicy,
) -> Result<(), Outcome> {
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let applier = Applier {
        client: clients.target,
        kinds: clients.kinds,
        field_manager: deps.context.field_manager.clone(),
        force: false,
    };
    let stale = plan::prune_candidates(&inventory_of(object), &plan::ApplyPlan::default());
    let mut changes = ChangeSet::default();
    if let Err(error) = applier
        .prune(&stale, (&name, &namespace), &mut changes)
        .await
    {
        emit(
            deps,
            object,
            "Warning",
            reasons::PRUNE_FAILED,
            &error.to_string(),
            None,
        )
        .await;
        return Err(Outcome::Retry);
    }
    emit_changes(deps, object, "", &changes).await;
    if policy == DeletionPolicy::WaitForTermination {
        let deleted: Vec<&(ObjectId, String)> = stale
            .iter()
            .filter(|(id, _)| {
                let subject = super::apply::subject(id);
                changes
                    .0
                    .iter()
                    .any(|c| c.action == Action::Deleted && c.subject == subject)
            })
            .collect();
        let timeout = object
            .spec
            .timeout
            .as_ref()
            .map_or_else(|| object.spec.interval.as_std(), |t| t.as_std());
        if let Err(left) = wait_until_gone(&applier, &deleted, timeout).await {
            let message = format!("failed to wait for resources termination: {left}");
            warn(deps, object, &message).await;
        }
    }
    Ok(())
}

/// Polls until every object is gone; `Err` lists those still there at `timeout`.
async fn wait_until_gone(
    applier: &Applier,
    objects: &[&(ObjectId, String)],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        let mut left = Vec::new();
        for (id, version) in objects {
            let api_version = if id.group.is_empty() {
                version.clone()
            } else {
                format!("{}/{}", id.group, version)
            };
            let Ok(target) = applier
                .target(&api_version, &id.kind, &id.namespace, &id.name)
                .await
            else {
                // Its kind is gone: so is the object.
                continue;
            };
            let api = target.api(&applier.client);
            match api.get_opt(&target.name).await {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => left.push(target.subject),
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(left.join(", "));
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Removes the finalizer.
async fn release(deps: &Deps, object: &Kustomization) -> Outcome {
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let api: Api<Kustomization> = Api::namespaced(deps.context.client.clone(), &namespace);
    let patch = json!({"metadata": {"finalizers": finalizers}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            deps.context.metrics.record_condition(
                "Kustomization",
                &namespace,
                &name,
                types::READY,
                "Deleted",
            );
            Outcome::Finalized
        }
        Err(error) if matches!(&error, kube::Error::Api(s) if s.code == 404) => Outcome::Finalized,
        Err(error) => {
            tracing::warn!(%namespace, %name, %error, "removing the finalizer failed");
            Outcome::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_policies_decide_whether_objects_go_with_the_kustomization() {
        use DeletionPolicy::*;
        assert!(MirrorPrune.deletes(true));
        assert!(!MirrorPrune.deletes(false));
        assert!(Delete.deletes(false));
        assert!(WaitForTermination.deletes(false));
        assert!(!Orphan.deletes(true));
    }
}
