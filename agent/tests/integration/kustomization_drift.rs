//! Drift: edits made directly in the cluster are corrected by the next reconcile, or only
//! reported (`Drifted`, with the changed fields) in detect-only mode.

use crate::support_ks;

use serde_json::{Value, json};
use support_ks::{Bed, Repo, deployment, kustomization};

/// Scales the Deployment as another field manager would (`kubectl scale` / an edit);
/// returns the replicas the API server stored for that write.
async fn scale_by_hand(bed: &Bed, replicas: u32) -> Value {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(bed.client.clone(), "default");
    let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas}});
    let stored = api
        .patch(
            "web",
            &kube::api::PatchParams::apply("kubectl-edit").force(),
            &kube::api::Patch::Apply(&patch),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    json!(stored.spec.and_then(|s| s.replicas))
}

async fn replicas(bed: &Bed) -> Value {
    bed.get("apps/v1", "Deployment", "default", "web")
        .await
        .map(|d| d["spec"]["replicas"].clone())
        .unwrap_or(Value::Null)
}

fn requested(spec: Value, at: &str) -> Value {
    let mut k = kustomization("web", "app", "./", spec);
    k["metadata"]["annotations"] = json!({"reconcile.fluxcd.io/requestedAt": at});
    k
}

#[actix::test]
async fn an_edit_made_in_the_cluster_is_corrected_by_the_next_reconcile() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("app.yaml", &deployment("web", "default", 2));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("web", "app", "./", json!({})))
        .await;
    bed.until_ready_at("web", &first.artifact.revision).await;

    // Checked on the write itself: a reconcile still finishing may already correct it.
    assert_eq!(scale_by_hand(&bed, 5).await, 5);
    bed.apply(&requested(json!({}), "fix")).await;
    bed.until("web", "handled the request", |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("fix")
    })
    .await;
    assert_eq!(replicas(&bed).await, 2);
    let events = bed.events("web").await;
    assert!(
        events
            .iter()
            .any(|(_, m)| m == "Deployment/default/web configured"),
        "{events:?}"
    );
}

#[actix::test]
async fn detect_only_mode_reports_the_drifted_fields_and_leaves_the_edit_in_place() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("app.yaml", &deployment("web", "default", 2));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    let spec = json!({"drift": {"mode": "DetectOnly"}});
    bed.apply(&kustomization("web", "app", "./", spec.clone()))
        .await;
    bed.until_ready_at("web", &first.artifact.revision).await;

    assert_eq!(scale_by_hand(&bed, 5).await, 5);
    bed.apply(&requested(spec.clone(), "look")).await;
    let k = bed
        .until("web", "Drifted", |k| {
            k.status.as_ref().is_some_and(|s| {
                s.last_handled_reconcile_at.as_deref() == Some("look")
                    && api::conditions::is_true(&s.conditions, "Drifted")
            })
        })
        .await;
    let conditions = k.status.unwrap_or_default().conditions;
    let drifted = api::conditions::find_condition(&conditions, "Drifted")
        .unwrap_or_else(|| panic!("no Drifted condition"));
    assert_eq!(drifted.reason, "DriftDetected");
    assert_eq!(drifted.message, "Deployment/default/web: .spec.replicas");
    assert!(api::conditions::is_true(&conditions, "Ready"));
    assert_eq!(replicas(&bed).await, 5);

    // A new revision is applied as usual, which also ends the drift.
    repo.write("app.yaml", &deployment("web", "default", 3));
    let second = repo.commit("three replicas");
    bed.publish(second.clone()).await;
    let k = bed.until_ready_at("web", &second.artifact.revision).await;
    assert_eq!(replicas(&bed).await, 3);
    let conditions = k.status.unwrap_or_default().conditions;
    assert!(!api::conditions::is_true(&conditions, "Drifted"));
}

/// `spec.ignore`, as Flux's drift ignore rules: an object is created whole; later a change
/// made in the cluster at an ignored path stays (through a new revision too), while other
/// drift is still corrected.
#[actix::test]
async fn ignored_paths_keep_what_the_cluster_holds() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    let settings = |managed: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  managed: \"{managed}\"\n  ignored: original\n"
        )
    };
    repo.write("settings.yaml", &settings("v1"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    let spec = json!({"ignore": [{"paths": ["/data/ignored"], "target": {"kind": "ConfigMap"}}]});
    let mut k = kustomization("web", "app", "./", spec.clone());
    bed.apply(&k).await;
    bed.until_ready_at("web", &first.artifact.revision).await;
    let data = || async {
        bed.get("v1", "ConfigMap", "default", "settings")
            .await
            .map(|c| c["data"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        data().await,
        json!({"managed": "v1", "ignored": "original"})
    );

    let maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(bed.client.clone(), "default");
    let edit = |data: Value| {
        let maps = maps.clone();
        async move {
            maps.patch(
                "settings",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({ "data": data })),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    edit(json!({"ignored": "set in the cluster"})).await;
    repo.write("settings.yaml", &settings("v2"));
    let second = repo.commit("second");
    bed.publish(second.clone()).await;
    bed.until_ready_at("web", &second.artifact.revision).await;
    assert_eq!(
        data().await,
        json!({"managed": "v2", "ignored": "set in the cluster"})
    );

    edit(json!({"managed": "tampered"})).await;
    k["metadata"]["annotations"] = json!({"reconcile.fluxcd.io/requestedAt": "again"});
    bed.apply(&k).await;
    bed.until("web", "handled the request", |k| {
        k.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("again")
    })
    .await;
    assert_eq!(
        data().await,
        json!({"managed": "v2", "ignored": "set in the cluster"})
    );
}
