//! dependsOn across kinds (a HelmRelease), CRDs applied and established before the custom
//! objects of the same set, and Flux's metrics for a reconcile.

use crate::support_ks;

use serde_json::json;
use support_ks::{Bed, NS, Repo, config_map, kustomization, ready_reason};

#[actix::test]
async fn a_kustomization_waits_for_a_helm_release_to_be_ready_at_its_generation() {
    let bed = Bed::start().await;
    let release = bed
        .apply(
            &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "ingress", "namespace": NS},
            "spec": {"interval": "10m", "chart": {"spec": {"chart": "ingress-nginx",
                "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}}),
        )
        .await;
    let repo = Repo::new("app");
    repo.write("config.yaml", &config_map("after-ingress", "default", "x"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "app",
        "app",
        "./",
        json!({"dependsOn": [{"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "ingress"}]}),
    ))
    .await;
    let k = bed
        .until("app", "DependencyNotReady", |k| {
            ready_reason(k).as_deref() == Some("DependencyNotReady")
        })
        .await;
    let message = support_ks::ready(&k).map(|r| r.2).unwrap_or_default();
    assert!(message.contains("flux-system/ingress"), "{message}");
    assert!(
        bed.get("v1", "ConfigMap", "default", "after-ingress")
            .await
            .is_none()
    );

    // The HelmRelease becomes Ready at its latest generation.
    let generation = release["metadata"]["generation"].as_i64().unwrap_or(1);
    let api: kube::Api<api::helm::HelmRelease> = kube::Api::namespaced(bed.client.clone(), NS);
    let status = json!({"status": {"observedGeneration": generation, "conditions": [{
        "type": "Ready", "status": "True", "reason": "InstallSucceeded", "message": "installed",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(
        "ingress",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&status),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    bed.until_ready_at("app", &first.artifact.revision).await;
    assert!(
        bed.get("v1", "ConfigMap", "default", "after-ingress")
            .await
            .is_some()
    );
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
    listKind: WidgetList
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

#[actix::test]
async fn crds_and_namespaces_are_established_before_the_objects_that_need_them() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("crd.yaml", CRD)
        .write(
            "namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: widgets\n",
        )
        .write(
            "widget.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: one\n  namespace: widgets\nspec:\n  size: 3\n",
        );
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("widgets", "app", "./", json!({})))
        .await;
    let k = bed
        .until_ready_at("widgets", &first.artifact.revision)
        .await;
    let widget = bed
        .get("example.com/v1", "Widget", "widgets", "one")
        .await
        .unwrap_or_else(|| panic!("widget not applied"));
    assert_eq!(widget["spec"]["size"], 3);
    let inventory: Vec<String> = k
        .status
        .and_then(|s| s.inventory)
        .map(|i| i.entries.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    assert_eq!(
        inventory,
        [
            "_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition",
            "_widgets__Namespace",
            "widgets_one_example.com_Widget"
        ]
    );
    let metrics = bed.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gotk_reconcile_condition")
                && l.contains("name=\"widgets\"")
                && l.contains("type=\"Ready\"")
                && l.contains("status=\"True\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(metrics.contains("gotk_reconcile_duration_seconds_count"));
}

#[actix::test]
async fn an_object_the_server_refuses_means_nothing_is_applied() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("good.yaml", &config_map("good", "default", "x")).write(
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: nope\n  namespace: default\n",
    );
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("refused", "app", "./", json!({})))
        .await;
    let k = bed
        .until("refused", "ReconciliationFailed", |k| {
            ready_reason(k).as_deref() == Some("ReconciliationFailed")
        })
        .await;
    let message = support_ks::ready(&k).map(|r| r.2).unwrap_or_default();
    assert!(message.contains("Gadget/default/nope"), "{message}");
    assert!(
        bed.get("v1", "ConfigMap", "default", "good")
            .await
            .is_none()
    );
}

#[actix::test]
async fn a_dependent_reconciles_the_moment_its_dependency_is_ready_not_at_its_next_retry() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write(
        "infra/controller.yaml",
        &support_ks::deployment("controller", "default", 1),
    )
    .write("apps/config.yaml", &config_map("app", "default", "x"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    // Without the wake-up, apps would wait ten minutes for its retry.
    bed.apply(&kustomization(
        "apps",
        "app",
        "./apps",
        json!({"retryInterval": "10m", "dependsOn": [{"name": "infra"}]}),
    ))
    .await;
    bed.until("apps", "DependencyNotReady", |k| {
        ready_reason(k).as_deref() == Some("DependencyNotReady")
    })
    .await;
    bed.apply(&kustomization(
        "infra",
        "app",
        "./infra",
        json!({"wait": true}),
    ))
    .await;
    bed.until_ready_at("infra", &first.artifact.revision).await;
    bed.until_ready_at("apps", &first.artifact.revision).await;
}
