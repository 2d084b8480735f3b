//! kube-rs 5 as a client: discovery, typed and dynamic Api, watcher, server-side apply, and
//! kubesim's semantics (conflicts, 410 Gone, finalizers, garbage collection, faults, persistence).

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use common::{WIDGET_CRD, start, start_with};

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .expect("configmap")
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_finds_builtin_and_crd_kinds() {
    let sim = start().await;
    let client = sim.client().await;
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: serde_json::Value = serde_saphyr::from_str(WIDGET_CRD).expect("yaml");
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).expect("crd"),
    )
    .await
    .expect("create crd");
    let discovery = Discovery::new(client).run().await.expect("discovery");
    let (deploy, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("deployments");
    assert_eq!(deploy.plural, "deployments");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let (widget, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("widgets discovered");
    assert_eq!(widget.plural, "widgets");
}

#[tokio::test]
async fn typed_crud_with_label_selectors_pagination_and_stale_updates() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    for i in 0..5 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        api.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"tier": tier})),
        )
        .await
        .expect("create");
    }
    let even = api
        .list(&ListParams::default().labels("tier=even"))
        .await
        .expect("list");
    assert_eq!(even.items.len(), 3);
    let byname = api
        .list(&ListParams::default().fields("metadata.name=c1"))
        .await
        .expect("list");
    assert_eq!(byname.items.len(), 1);
    // Every namespace also holds kube-root-ca.crt: the pages select the test's objects.
    let page1 = api
        .list(&ListParams::default().labels("tier").limit(2))
        .await
        .expect("page 1");
    assert_eq!(page1.items.len(), 2);
    assert_eq!(page1.metadata.remaining_item_count, Some(3));
    let token = page1.metadata.continue_.clone().expect("continue token");
    let page2 = api
        .list(
            &ListParams::default()
                .labels("tier")
                .limit(10)
                .continue_token(&token),
        )
        .await
        .expect("page 2");
    let names: Vec<_> = page2
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["c2", "c3", "c4"]);

    let mut stale = api.get("c0").await.expect("get");
    let mut fresh = stale.clone();
    fresh.data = Some([("k".to_string(), "new".to_string())].into());
    api.replace("c0", &PostParams::default(), &fresh)
        .await
        .expect("update");
    stale.data = Some([("k".to_string(), "lost".to_string())].into());
    let err = api_error(
        api.replace("c0", &PostParams::default(), &stale)
            .await
            .expect_err("stale update"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let err = api_error(
        api.create(&PostParams::default(), &cm("c0", json!({})))
            .await
            .expect_err("exists"),
    );
    assert_eq!(err.reason, "AlreadyExists");
    let err = api_error(api.get("missing").await.expect_err("missing"));
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "configmaps \"missing\" not found")
    );
}

#[tokio::test]
async fn objects_need_an_existing_namespace_and_get_uid_generation_and_timestamps() {
    let sim = start().await;
    let client = sim.client().await;
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let err = api_error(
        missing
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
    let deploys: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})).expect("deployment");
    let created = deploys
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let labelled = deploys
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let scaled = deploys
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale");
    assert_eq!(scaled.metadata.generation, Some(2));
    let dry = deploys
        .patch(
            "d",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .expect("dry run");
    assert_eq!(dry.spec.and_then(|s| s.replicas), Some(9));
    assert_eq!(
        deploys
            .get("d")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(3)
    );
}

#[tokio::test]
async fn dynamic_api_serves_custom_objects_with_a_status_subresource() {
    let sim = start().await;
    let client = sim.client().await;
    let crd_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: serde_json::Value = serde_saphyr::from_str(WIDGET_CRD).expect("yaml");
    crd_api
        .patch(
            "widgets.example.com",
            &PatchParams::apply("test"),
            &Patch::Apply(crd),
        )
        .await
        .expect("apply crd");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let created = widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(w).expect("widget"),
        )
        .await
        .expect("create");
    assert!(
        created.data.get("status").is_none(),
        "status is ignored on create through the main resource"
    );
    let st = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .expect("status");
    assert_eq!(st.data["status"]["conditions"][0]["status"], "True");
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );
    let applied_status = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let st = widgets
        .patch_status(
            "w",
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(&applied_status),
        )
        .await
        .expect("status apply");
    assert_eq!(st.data["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        st.data["spec"]["size"], 1,
        "spec is untouched by a status apply"
    );
    let status_owner = st
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("widget-controller"))
        .expect("status manager");
    assert_eq!(status_owner.subresource.as_deref(), Some("status"));
    // Without fieldValidation the server warns and drops unknown fields (its default, Warn).
    let extra = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "extra"}, "spec": {"size": 1, "shape": "round"}});
    let stored = widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(extra).expect("widget"),
        )
        .await
        .expect("unknown fields are not an error by default");
    assert!(
        stored.data["spec"].get("shape").is_none(),
        "unknown fields are pruned"
    );
    let err = api_error(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await
            .expect_err("smp on CR"),
    );
    assert_eq!(err.code, 415);
}

#[tokio::test]
async fn validation_rejects_immutable_changes_and_schema_violations() {
    let sim = start().await;
    let client = sim.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut frozen = cm("frozen", json!({}));
    frozen.immutable = Some(true);
    cms.create(&PostParams::default(), &frozen)
        .await
        .expect("create");
    let err = api_error(
        cms.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .expect_err("immutable"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );

    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    deploys
        .patch("d", &PatchParams::apply("t"), &Patch::Apply(&d))
        .await
        .expect("create");
    let mut moved = d.clone();
    moved["spec"]["selector"]["matchLabels"]["a"] = json!("c");
    moved["spec"]["template"]["metadata"]["labels"]["a"] = json!("c");
    let err = api_error(
        deploys
            .patch("d", &PatchParams::apply("t"), &Patch::Apply(&moved))
            .await
            .expect_err("selector"),
    );
    assert!(
        err.message
            .starts_with("Deployment.apps \"d\" is invalid: spec.selector: Invalid value"),
        "{}",
        err.message
    );

    let crd_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let mut crd: serde_json::Value = serde_saphyr::from_str(WIDGET_CRD).expect("yaml");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] =
        json!(["size"]);
    crd_api
        .patch(
            "widgets.example.com",
            &PatchParams::apply("test"),
            &Patch::Apply(crd),
        )
        .await
        .expect("crd");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"color": 7}});
    let err = api_error(
        widgets
            .create(
                &PostParams::default(),
                &serde_json::from_value(bad).expect("obj"),
            )
            .await
            .expect_err("invalid"),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("spec.size: Required value")
            && err
                .message
                .contains("spec.color in body must be of type string"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn core_and_events_k8s_io_events_are_one_object() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let sim = start().await;
    let client = sim.client().await;
    let new_api: Api<Event> = Api::namespaced(client.clone(), "default");
    let ev: Event = serde_json::from_value(json!({"metadata": {"name": "e1"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Synced", "note": "all good", "type": "Normal", "action": "Reconcile", "reportingController": "flotilla", "reportingInstance": "agent-0", "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "default"}})).expect("event");
    new_api
        .create(&PostParams::default(), &ev)
        .await
        .expect("create");
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let same = core.get("e1").await.expect("visible as core/v1");
    assert_eq!(same.message.as_deref(), Some("all good"));
    assert_eq!(same.involved_object.name.as_deref(), Some("x"));
    assert_eq!(same.reporting_component.as_deref(), Some("flotilla"));
    let back = new_api.get("e1").await.expect("events.k8s.io");
    assert_eq!(back.note.as_deref(), Some("all good"));
}

#[tokio::test]
async fn watcher_sees_additions_modifications_and_deletions() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=w"),
    )
    .applied_objects()
    .boxed();
    api.create(&PostParams::default(), &cm("w", json!({})))
        .await
        .expect("create");
    let first = stream.try_next().await.expect("event").expect("object");
    assert_eq!(first.metadata.name.as_deref(), Some("w"));
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .expect("patch");
    let second = stream.try_next().await.expect("event").expect("object");
    assert_eq!(
        second.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("changed")
    );

    let mut raw = api
        .watch(
            &WatchParams::default(),
            &second.metadata.resource_version.expect("rv"),
        )
        .await
        .expect("watch")
        .boxed();
    api.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    match raw.try_next().await.expect("event") {
        Some(WatchEvent::Deleted(o)) => assert_eq!(o.metadata.name.as_deref(), Some("w")),
        other => panic!("expected a deletion, got {other:?}"),
    }
}

#[tokio::test]
async fn metadata_only_requests_and_streaming_list_watches_work() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    api.create(&PostParams::default(), &cm("m", json!({"a": "b"})))
        .await
        .expect("create");
    let meta = api.get_metadata("m").await.expect("metadata");
    assert_eq!(
        meta.metadata
            .labels
            .and_then(|l| l.get("a").cloned())
            .as_deref(),
        Some("b")
    );
    let list = api
        .list_metadata(&ListParams::default().labels("a=b"))
        .await
        .expect("metadata list");
    assert_eq!(list.items.len(), 1);
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(sim.client().await, "default");
    let mut stream = watcher(meta_api, watcher::Config::default().streaming_lists()).boxed();
    let mut initialized = false;
    while let Some(ev) = stream.try_next().await.expect("event") {
        if let watcher::Event::InitDone = ev {
            initialized = true;
            break;
        }
    }
    assert!(
        initialized,
        "the initial-events-end bookmark completes the initial list"
    );
}

#[tokio::test]
async fn a_watch_from_an_expired_resource_version_gets_410_gone() {
    let sim = start_with(kubesim::Config {
        watch_history: 3,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    for i in 0..6 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .expect("create");
    }
    let mut events = api
        .watch(&WatchParams::default(), "2")
        .await
        .expect("watch")
        .boxed();
    match events.try_next().await.expect("event") {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn server_side_apply_tracks_managers_conflicts_and_removes_dropped_fields() {
    let sim = start().await;
    let api: Api<Deployment> = Api::namespaced(sim.client().await, "default");
    let cfg = |replicas: i64, image: &str, extra_env: bool| {
        let mut env = vec![json!({"name": "A", "value": "1"})];
        if extra_env {
            env.push(json!({"name": "B", "value": "2"}));
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "main", "image": image, "env": env}]}}}})
    };
    api.patch(
        "app",
        &PatchParams::apply("ci"),
        &Patch::Apply(cfg(1, "img:1", true)),
    )
    .await
    .expect("first apply");
    let err = api_error(api.patch("app", &PatchParams::apply("hpa"), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"}, "spec": {"replicas": 5}}))).await.expect_err("conflict"));
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("conflict with \"ci\": .spec.replicas"),
        "{}",
        err.message
    );
    let forced = api.patch("app", &PatchParams::apply("hpa").force(), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"}, "spec": {"replicas": 5}}))).await.expect("forced");
    assert_eq!(forced.spec.as_ref().and_then(|s| s.replicas), Some(5));
    // ci drops env B and changes the image; replicas now belongs to hpa, so ci must not send it.
    let mut next = cfg(1, "img:2", false);
    next["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let out = api
        .patch("app", &PatchParams::apply("ci"), &Patch::Apply(next))
        .await
        .expect("second apply");
    let c = &out
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0];
    assert_eq!(c.image.as_deref(), Some("img:2"));
    assert_eq!(
        c.env
            .as_ref()
            .map(|e| e.iter().map(|v| v.name.as_str()).collect::<Vec<_>>()),
        Some(vec!["A"])
    );
    assert_eq!(out.spec.as_ref().and_then(|s| s.replicas), Some(5));
    let managers: Vec<_> = out
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("ci".into(), "Apply".into()))
            && managers.contains(&("hpa".into(), "Apply".into())),
        "{managers:?}"
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let mut c = cm("held", json!({}));
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &c)
        .await
        .expect("create");
    let pending = api
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        pending.is_left(),
        "a pending deletion answers with the object"
    );
    let terminating = api.get("held").await.expect("still there");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(
        api_error(api.get("held").await.expect_err("gone")).code,
        404
    );
}

#[tokio::test]
async fn dependents_are_garbage_collected_in_background_and_foreground() {
    let sim = start().await;
    let client = sim.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (owner, policy) in [
        ("bg", DeleteParams::background()),
        ("fg", DeleteParams::foreground()),
    ] {
        let o = api
            .create(&PostParams::default(), &cm(owner, json!({})))
            .await
            .expect("owner");
        let mut d = cm(&format!("{owner}-child"), json!({}));
        d.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner.into(),
                uid: o.metadata.uid.clone().expect("uid"),
                block_owner_deletion: Some(true),
                ..Default::default()
            },
        ]);
        api.create(&PostParams::default(), &d)
            .await
            .expect("dependent");
        api.delete(owner, &policy).await.expect("delete owner");
        let child = format!("{owner}-child");
        let mut events = api
            .watch(
                &WatchParams::default().fields(&format!("metadata.name={child}")),
                "0",
            )
            .await
            .expect("watch")
            .boxed();
        // The collector removes the dependent; wait for that event (or find it gone already).
        if api.get_opt(&child).await.expect("get").is_some() {
            while let Some(ev) = events.try_next().await.expect("event") {
                if matches!(ev, WatchEvent::Deleted(_)) {
                    break;
                }
            }
        }
        assert!(
            api.get_opt(&child).await.expect("get").is_none(),
            "{child} collected"
        );
        assert!(
            api.get_opt(owner).await.expect("get").is_none(),
            "{owner} deleted"
        );
    }
}

#[tokio::test]
async fn injected_faults_reach_the_client() {
    let sim = start().await;
    // kube-rs retries 429/503/504 by default; these requests must see the raw responses.
    let mut cfg = sim.client_config().await;
    cfg.default_retry = false;
    let api: Api<Namespace> = Api::all(kube::Client::try_from(cfg).expect("client"));
    sim.server.set_faults(kubesim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(
        api_error(api.list(&ListParams::default()).await.expect_err("500")).code,
        500
    );
    sim.server.set_faults(kubesim::Faults {
        throttle_rate: 1.0,
        retry_after_secs: 7,
        ..Default::default()
    });
    let err = api_error(api.list(&ListParams::default()).await.expect_err("429"));
    assert_eq!((err.code, err.reason.as_str()), (429, "TooManyRequests"));
    sim.server.set_faults(kubesim::Faults {
        reset_rate: 1.0,
        ..Default::default()
    });
    assert!(!matches!(
        api.list(&ListParams::default()).await.expect_err("reset"),
        kube::Error::Api(_)
    ));
    sim.server.set_faults(kubesim::Faults {
        watch_expiry: Some(Duration::from_millis(50)),
        ..Default::default()
    });
    let mut events = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let mut seen = 0;
    while let Some(ev) = events.try_next().await.expect("event") {
        assert!(matches!(ev, WatchEvent::Added(_)));
        seen += 1;
    }
    assert_eq!(
        seen, 4,
        "the initial namespaces, then the stream ends early"
    );
    sim.server.set_faults(kubesim::Faults::default());
    api.list(&ListParams::default())
        .await
        .expect("healthy again");
}

#[tokio::test]
async fn state_in_a_data_dir_survives_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let config = kubesim::Config {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let sim = start_with(config.clone()).await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let created = api
        .create(&PostParams::default(), &cm("kept", json!({})))
        .await
        .expect("create");
    let (old_token, old_ca) = (
        sim.server.token().to_string(),
        sim.server.ca_pem().to_string(),
    );
    // Abort without a graceful shutdown: acknowledged writes are already on disk.
    drop(sim);
    let sim = start_with(config).await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let back = api.get("kept").await.expect("survived");
    assert_eq!(
        (sim.server.token(), sim.server.ca_pem()),
        (old_token.as_str(), old_ca.as_str()),
        "the CA and token are kept"
    );
    assert_eq!(back.metadata.uid, created.metadata.uid);
    let next = api
        .create(&PostParams::default(), &cm("after", json!({})))
        .await
        .expect("create");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or_default()
    };
    assert!(
        rv(&next) > rv(&back),
        "resourceVersions keep increasing across restarts"
    );
}

#[tokio::test]
async fn malformed_objects_and_patches_never_take_the_server_down() {
    let sim = start().await;
    let client = sim.client().await;
    let send = |method: &str, path: &str, ct: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .body(body.as_bytes().to_vec())
            .expect("request")
    };
    let cases = [
        (
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            "application/json",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"odd"},"spec":"x"}"#,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/odd/scale",
            "application/merge-patch+json",
            r#"{"spec":{"replicas":3}}"#,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/odd",
            "application/strategic-merge-patch+json",
            r#"{"spec":{"template":{"spec":{"containers":[1,2]}}}}"#,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/odd",
            "application/json-patch+json",
            r#"[{"op":"remove","path":"/nothing"}]"#,
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/odd",
            "application/apply-patch+yaml",
            "spec: [unclosed",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[1,"a",null]}}"#,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"x"}"#,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l","labels":{"a":1}}}"#,
        ),
        (
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"xs.x.io"},"spec":{"group":"x.io","scope":"Namespaced","names":{"kind":"X","plural":"xs"},"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":"nonsense"}}]}}"#,
        ),
        ("GET", "/openapi/v3/apis/x.io/v1", "application/json", ""),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps/none",
            "application/json",
            "{\"propagationPolicy\":7}",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/vnd.kubernetes.protobuf",
            "k8s\0\u{ff}\u{ff}",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=a+in+(&limit=x",
            "application/json",
            "",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?continue=%%%",
            "application/json",
            "",
        ),
    ];
    for (method, path, ct, body) in cases {
        // Each answer is a success or a Status error; a panic would drop the connection.
        match client.request_text(send(method, path, ct, body)).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(other) => panic!("{method} {path}: no Status answer: {other:?}"),
        }
    }
    let api: Api<Namespace> = Api::all(client);
    assert!(
        api.get("default").await.is_ok(),
        "the server still serves after malformed input"
    );
}

#[tokio::test]
async fn aggregated_discovery_matches_legacy_discovery() {
    let sim = start().await;
    let client = sim.client().await;
    let legacy = Discovery::new(client.clone())
        .run()
        .await
        .expect("legacy discovery");
    let aggregated = Discovery::new(client)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let names = |d: &Discovery| {
        let mut v: Vec<String> = d
            .groups()
            .flat_map(|g| {
                g.recommended_resources()
                    .into_iter()
                    .map(|(ar, _)| format!("{}/{}", ar.api_version, ar.plural))
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&legacy), names(&aggregated));
    assert!(names(&aggregated).contains(&"apps/v1/deployments".to_string()));
}

#[tokio::test]
async fn deletecollection_orphaning_and_watch_timeouts_behave_as_kubernetes() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &cm(&format!("batch-{i}"), json!({"batch": "yes"})),
        )
        .await
        .expect("create");
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=yes"),
    )
    .await
    .expect("deletecollection");
    assert!(
        api.list(&ListParams::default().labels("batch=yes"))
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .expect("owner");
    let mut child = cm("orphan", json!({}));
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.clone().expect("uid"),
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &child)
        .await
        .expect("child");
    api.delete("owner", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    let mut events = api
        .watch(
            &WatchParams::default()
                .fields("metadata.name=owner")
                .timeout(1),
            "0",
        )
        .await
        .expect("watch")
        .boxed();
    // The stream ends by itself after timeoutSeconds; the owner is gone by then or deleted in it.
    while events.try_next().await.expect("event").is_some() {}
    assert!(
        api.get_opt("owner").await.expect("get").is_none(),
        "the owner is deleted"
    );
    let kept = api
        .get("orphan")
        .await
        .expect("the dependent is orphaned, not deleted");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "its owner reference is removed"
    );
}
