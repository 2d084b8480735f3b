//! `spec.dependsOn`: a Kustomization waits until each dependency is Ready at its latest
//! generation (and, for a Kustomization, has applied the revision it last attempted).
//!
//! Flux only knows dependencies of the same kind; an entry may also name another kind with
//! `apiVersion`/`kind` (e.g. a `HelmRelease`), judged by its `Ready` condition at its latest
//! generation. An entry without them is a Kustomization, as in Flux.

use api::meta::DependencyReference;
use kube::Client;
use serde_json::Value;

use super::apply::KindCache;

/// The API version assumed for a kind named without one.
fn default_api_version(kind: &str) -> Option<&'static str> {
    match kind {
        "Kustomization" => Some("kustomize.toolkit.fluxcd.io/v1"),
        "HelmRelease" => Some("helm.toolkit.fluxcd.io/v2"),
        _ => None,
    }
}

/// Why a dependency is not ready, in the words of the status message.
pub type NotReady = String;

/// Whether a dependency object (as read from the API) is ready; `Err` says why not.
pub fn judge(kind: &str, object: &Value) -> Result<(), NotReady> {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if generation.is_some() && observed != generation {
        return Err("is not ready: latest generation not observed".into());
    }
    let ready = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    if ready.and_then(|c| c.get("status")).and_then(Value::as_str) != Some("True") {
        return Err("is not ready".into());
    }
    if kind == "Kustomization" {
        let applied = object.pointer("/status/lastAppliedRevision");
        let attempted = object.pointer("/status/lastAttemptedRevision");
        if attempted.is_some() && applied != attempted {
            return Err("is not ready: last attempted revision not applied".into());
        }
    }
    Ok(())
}

/// Checks every dependency; the first that is not ready is reported.
pub async fn check(
    client: &Client,
    kinds: &KindCache,
    own_namespace: &str,
    dependencies: &[DependencyReference],
) -> Result<(), NotReady> {
    for dependency in dependencies {
        let kind = dependency.kind.as_deref().unwrap_or("Kustomization");
        let namespace = dependency.namespace.as_deref().unwrap_or(own_namespace);
        let shown = format!("dependency '{namespace}/{}'", dependency.name);
        let Some(api_version) = dependency
            .api_version
            .as_deref()
            .or_else(|| default_api_version(kind))
        else {
            return Err(format!("{shown}: kind {kind} needs an apiVersion"));
        };
        let (resource, _) = kinds
            .resolve(client, api_version, kind)
            .await
            .map_err(|e| format!("{shown}: kind {kind} is not served: {e}"))?;
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(client.clone(), namespace, &resource);
        let object = match api.get_opt(&dependency.name).await {
            Ok(Some(object)) => serde_json::to_value(object).unwrap_or(Value::Null),
            Ok(None) => return Err(format!("{shown} not found")),
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        judge(kind, &object).map_err(|why| format!("{shown} {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(
        generation: i64,
        observed: i64,
        ready: &str,
        applied: &str,
        attempted: &str,
    ) -> Value {
        json!({"metadata": {"generation": generation}, "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": ready}],
            "lastAppliedRevision": applied, "lastAttemptedRevision": attempted}})
    }

    #[test]
    fn a_kustomization_is_ready_at_its_latest_generation_and_revision() {
        assert_eq!(
            judge("Kustomization", &object(2, 2, "True", "a", "a")),
            Ok(())
        );
        assert!(judge("Kustomization", &object(3, 2, "True", "a", "a")).is_err());
        assert!(judge("Kustomization", &object(2, 2, "False", "a", "a")).is_err());
        assert!(judge("Kustomization", &object(2, 2, "True", "a", "b")).is_err());
    }

    #[test]
    fn a_helm_release_is_judged_by_ready_at_its_generation_only() {
        let release = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(judge("HelmRelease", &release), Ok(()));
        assert!(judge("HelmRelease", &json!({"metadata": {"generation": 1}})).is_err());
    }
}
