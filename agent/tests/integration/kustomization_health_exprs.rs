//! `spec.healthCheckExprs`: the user's CEL expressions decide the health of a custom kind
//! during `spec.wait`, and an invalid expression stops the reconcile before anything is
//! applied.

use crate::support_ks;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use support_ks::{Bed, Repo, kustomization, ready, ready_reason};

/// A namespaced `example.com/v1` Widget whose status is written through `/status`.
fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

fn widget(name: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  size: 3\n"
    )
}

/// Rules for Widgets: Ready when `status.phase` says so, failed when it says Broken.
fn widget_rules(current: &str) -> Value {
    json!([{
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "current": current,
        "failed": "status.phase == 'Broken'",
    }])
}

async fn bed_with_widgets() -> Bed {
    let bed = Bed::start().await;
    bed.apply(&widget_crd()).await;
    bed
}

/// Writes a Widget's status as its controller would, once the agent has created it.
async fn set_widget_status(bed: &Bed, name: &str, status: Value) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(bed.client.clone(), "default", &resource);
    for _ in 0..1200 {
        if widgets
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some()
        {
            widgets
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("Widget {name} was never created");
}

#[actix::test]
async fn a_custom_kind_is_ready_once_its_current_expression_holds() {
    let bed = bed_with_widgets().await;
    let repo = Repo::new("app");
    repo.write("widget.yaml", &widget("one"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "widgets",
        "app",
        "./",
        json!({"wait": true, "timeout": "60s", "healthCheckExprs": widget_rules("status.phase == 'Ready'")}),
    ))
    .await;

    // Without a status the expression cannot be evaluated: the wait goes on.
    bed.until("widgets", "the health check in progress", |k| {
        let conditions = k.status.clone().unwrap_or_default().conditions;
        api::conditions::find_condition(&conditions, "Healthy")
            .is_some_and(|c| c.status == "Unknown")
    })
    .await;
    // kstatus would call this in progress (Ready=False); the user's rule decides.
    set_widget_status(
        &bed,
        "one",
        json!({"phase": "Ready", "conditions": [{"type": "Ready", "status": "False", "reason": "Stale"}]}),
    )
    .await;
    let k = bed
        .until_ready_at("widgets", &first.artifact.revision)
        .await;
    let conditions = k.status.unwrap_or_default().conditions;
    let healthy = api::conditions::find_condition(&conditions, "Healthy")
        .unwrap_or_else(|| panic!("no Healthy condition"));
    assert_eq!(healthy.status, "True");
}

#[actix::test]
async fn a_custom_kind_whose_failed_expression_holds_is_health_check_failed_by_name() {
    let bed = bed_with_widgets().await;
    let repo = Repo::new("app");
    repo.write("widget.yaml", &widget("bad"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "widgets",
        "app",
        "./",
        json!({"wait": true, "timeout": "60s", "healthCheckExprs": widget_rules("status.phase == 'Ready'")}),
    ))
    .await;

    set_widget_status(&bed, "bad", json!({"phase": "Broken"})).await;
    let k = bed
        .until("widgets", "HealthCheckFailed", |k| {
            ready_reason(k).as_deref() == Some("HealthCheckFailed")
        })
        .await;
    let (status, _, message) = ready(&k).unwrap_or_default();
    assert_eq!(status, "False");
    assert!(message.contains("Widget/default/bad"), "{message}");
    assert!(message.contains("'Failed'"), "{message}");
    let conditions = k.status.unwrap_or_default().conditions;
    let healthy = api::conditions::find_condition(&conditions, "Healthy")
        .unwrap_or_else(|| panic!("no Healthy condition"));
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("False", "HealthCheckFailed")
    );
}

#[actix::test]
async fn an_invalid_expression_stops_the_reconcile_before_anything_is_applied() {
    let bed = bed_with_widgets().await;
    let repo = Repo::new("app");
    repo.write("widget.yaml", &widget("never"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "widgets",
        "app",
        "./",
        json!({"wait": true, "healthCheckExprs": widget_rules("status.phase ==")}),
    ))
    .await;

    let k = bed
        .until("widgets", "Ready=False", |k| {
            ready(k).is_some_and(|(status, _, _)| status == "False")
        })
        .await;
    let (_, reason, message) = ready(&k).unwrap_or_default();
    assert_eq!(reason, "InvalidCELExpression", "{message}");
    for expected in [
        "healthchecks[0] (apiVersion example.com/v1, kind Widget)",
        "failed to parse the expression Current",
        "'status.phase =='",
        "Syntax error",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let status = k.status.unwrap_or_default();
    assert!(api::conditions::is_true(&status.conditions, "Stalled"));
    assert_eq!(
        bed.get("example.com/v1", "Widget", "default", "never")
            .await,
        None
    );
}

#[actix::test]
async fn an_expression_that_cannot_be_evaluated_waits_until_the_timeout() {
    let bed = bed_with_widgets().await;
    let repo = Repo::new("app");
    repo.write("widget.yaml", &widget("silent"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    // The Widget never gets a status, so `status.phase` never evaluates.
    bed.apply(&kustomization(
        "widgets",
        "app",
        "./",
        json!({"wait": true, "timeout": "2s", "healthCheckExprs": widget_rules("status.phase == 'Ready'")}),
    ))
    .await;

    let k = bed
        .until("widgets", "HealthCheckFailed", |k| {
            ready_reason(k).as_deref() == Some("HealthCheckFailed")
        })
        .await;
    let (_, _, message) = ready(&k).unwrap_or_default();
    assert!(
        message.contains("timeout waiting for: [Widget/default/silent status: 'Unknown'"),
        "{message}"
    );
    // The reason it could not be told is in the message, as in Flux.
    assert!(
        message.contains("failed to evaluate the CEL expression"),
        "{message}"
    );
}
