//! Kustomizations against kubesim with real artifacts: the seeds' layout applied in
//! dependency order, revisions, pruning, no-op reconciles, substitution and deletion.

use crate::support_ks;

use serde_json::json;
use support_ks::{Bed, NS, Repo, config_map, deployment, kustomization, ready};

const INFRA: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: infra-controllers
  namespace: flux-system
spec:
  interval: 10m
  retryInterval: 1s
  timeout: 20s
  path: ./infrastructure/controllers
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: fleet
";

const APPS: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  retryInterval: 1s
  timeout: 20s
  dependsOn:
  - name: infra-controllers
  path: ./apps/staging
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: fleet
";

fn seed(repo: &Repo) {
    repo.write("clusters/staging/infrastructure.yaml", INFRA)
        .write("clusters/staging/apps.yaml", APPS)
        .write(
            "infrastructure/controllers/namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ingress\n",
        )
        .write(
            "infrastructure/controllers/controller.yaml",
            &deployment("ingress-controller", "ingress", 1),
        )
        .write(
            "infrastructure/controllers/kustomization.yaml",
            "resources:\n- namespace.yaml\n- controller.yaml\n",
        )
        .write(
            "apps/base/podinfo/namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n",
        )
        .write("apps/base/podinfo/deployment.yaml", &deployment("podinfo", "podinfo", 1))
        .write("apps/base/podinfo/config.yaml", &config_map("podinfo", "podinfo", "base"))
        .write(
            "apps/base/podinfo/service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n  namespace: podinfo\nspec:\n  selector:\n    app: podinfo\n  ports:\n  - port: 9898\n",
        )
        .write(
            "apps/base/podinfo/kustomization.yaml",
            "resources:\n- namespace.yaml\n- config.yaml\n- service.yaml\n- deployment.yaml\n",
        )
        .write(
            "apps/staging/kustomization.yaml",
            "resources:\n- ../base/podinfo\npatches:\n- target:\n    kind: Deployment\n    name: podinfo\n  patch: |\n    - op: replace\n      path: /spec/replicas\n      value: 2\n",
        );
}

#[actix::test]
async fn the_seeds_layout_is_applied_in_dependency_order_and_every_kustomization_becomes_ready() {
    let bed = Bed::start().await;
    let repo = Repo::new("fleet");
    seed(&repo);
    let artifact = repo.commit("seed");
    let revision = artifact.artifact.revision.clone();
    bed.publish(artifact).await;
    bed.apply(&kustomization(
        "flux-system",
        "fleet",
        "./clusters/staging",
        json!({}),
    ))
    .await;

    let root = bed.until_ready_at("flux-system", &revision).await;
    let infra = bed.until_ready_at("infra-controllers", &revision).await;
    let apps = bed.until_ready_at("apps", &revision).await;

    // The root applied the other two Kustomizations, and recorded them.
    let inventory: Vec<String> = root
        .status
        .clone()
        .and_then(|s| s.inventory)
        .map(|i| i.entries.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    assert_eq!(
        inventory,
        [
            "flux-system_apps_kustomize.toolkit.fluxcd.io_Kustomization",
            "flux-system_infra-controllers_kustomize.toolkit.fluxcd.io_Kustomization"
        ]
    );
    // apps waited for infra: it became Ready no earlier than infra did.
    let ready_at = |k: &api::kustomize::Kustomization| {
        api::conditions::find_condition(&k.status.clone().unwrap_or_default().conditions, "Ready")
            .map(|c| c.last_transition_time.0)
    };
    assert!(ready_at(&apps) >= ready_at(&infra));
    assert!(api::conditions::is_true(
        &apps.status.clone().unwrap_or_default().conditions,
        "Healthy"
    ));

    // The staging overlay's patch, the owner labels and the inventory of apps.
    let podinfo = bed
        .get("apps/v1", "Deployment", "podinfo", "podinfo")
        .await
        .unwrap_or_else(|| panic!("podinfo not applied"));
    assert_eq!(podinfo["spec"]["replicas"], 2);
    assert_eq!(
        podinfo["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"],
        "apps"
    );
    assert_eq!(
        podinfo["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"],
        NS
    );
    let managers: Vec<&str> = podinfo["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|f| f["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"flotilla"), "{managers:?}");
    let apps_inventory: Vec<String> = apps
        .status
        .clone()
        .and_then(|s| s.inventory)
        .map(|i| i.entries.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    assert_eq!(
        apps_inventory,
        [
            "_podinfo__Namespace",
            "podinfo_podinfo__ConfigMap",
            "podinfo_podinfo__Service",
            "podinfo_podinfo_apps_Deployment"
        ]
    );
    let events = bed.events("apps").await;
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("Deployment/podinfo/podinfo created")
                && m.contains("Namespace/podinfo created")),
        "{events:?}"
    );
}

#[actix::test]
async fn a_new_commit_is_applied_with_matching_revisions_and_a_removed_file_is_pruned() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("deploy/app.yaml", &deployment("web", "default", 1))
        .write("deploy/extra.yaml", &config_map("extra", "default", "x"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("web", "app", "./deploy", json!({})))
        .await;
    bed.until_ready_at("web", &first.artifact.revision).await;
    assert!(
        bed.get("v1", "ConfigMap", "default", "extra")
            .await
            .is_some()
    );

    repo.write("deploy/app.yaml", &deployment("web", "default", 3))
        .remove("deploy/extra.yaml");
    let second = repo.commit("scale and drop extra");
    bed.publish(second.clone()).await;
    let k = bed.until_ready_at("web", &second.artifact.revision).await;
    let status = k.status.unwrap_or_default();
    assert_eq!(
        status.last_attempted_revision.as_deref(),
        Some(second.artifact.revision.as_str())
    );
    let web = bed
        .get("apps/v1", "Deployment", "default", "web")
        .await
        .unwrap_or_else(|| panic!("web gone"));
    assert_eq!(web["spec"]["replicas"], 3);
    assert!(
        bed.get("v1", "ConfigMap", "default", "extra")
            .await
            .is_none()
    );
    let inventory: Vec<String> = status
        .inventory
        .map(|i| i.entries.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    assert_eq!(inventory, ["default_web_apps_Deployment"]);
    let events = bed.events("web").await;
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("Deployment/default/web configured")
                && m.contains("ConfigMap/default/extra deleted")),
        "{events:?}"
    );
    assert!(status.history.len() >= 2);
}

#[actix::test]
async fn a_reconcile_without_changes_writes_nothing_but_status() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("app.yaml", &deployment("web", "default", 1))
        .write("config.yaml", &config_map("web", "default", "a"));
    // Enough ConfigMaps that their live versions are read with one LIST.
    for i in 0..9 {
        repo.write(
            &format!("more/{i}.yaml"),
            &config_map(&format!("more-{i}"), "default", "b"),
        );
    }
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("web", "app", "./", json!({})))
        .await;
    bed.until_ready_at("web", &first.artifact.revision).await;
    let before = bed.get("v1", "ConfigMap", "default", "web").await;
    let before_deploy = bed.get("apps/v1", "Deployment", "default", "web").await;
    let before_more = bed.get("v1", "ConfigMap", "default", "more-3").await;

    let mut request = kustomization("web", "app", "./", json!({}));
    request["metadata"]["annotations"] = json!({"reconcile.fluxcd.io/requestedAt": "one"});
    bed.apply(&request).await;
    let k = bed
        .until("web", "handled the request", |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some("one")
        })
        .await;
    assert_eq!(
        ready(&k).map(|r| r.1).as_deref(),
        Some("ReconciliationSucceeded")
    );
    let rv = |o: &Option<serde_json::Value>| {
        o.as_ref().map(|o| o["metadata"]["resourceVersion"].clone())
    };
    assert_eq!(
        rv(&bed.get("v1", "ConfigMap", "default", "web").await),
        rv(&before)
    );
    assert_eq!(
        rv(&bed.get("v1", "ConfigMap", "default", "more-3").await),
        rv(&before_more)
    );
    // Nothing was reported changed either: the only change event is the first apply's.
    let events = bed.events("web").await;
    assert!(
        !events.iter().any(|(_, m)| m.contains("configured")),
        "{events:?}"
    );
    // The Deployment's status moves on its own; its spec was not written again.
    let generation =
        |o: &Option<serde_json::Value>| o.as_ref().map(|o| o["metadata"]["generation"].clone());
    assert_eq!(
        generation(&bed.get("apps/v1", "Deployment", "default", "web").await),
        generation(&before_deploy)
    );
}

#[actix::test]
async fn post_build_substitution_reads_inline_values_and_config_maps() {
    let bed = Bed::start().await;
    bed.apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-vars", "namespace": NS},
        "data": {"cluster_env": "staging"}}))
        .await;
    let repo = Repo::new("app");
    repo.write(
        "config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  env: ${cluster_env}\n  region: ${region:=eu-west-1}\n  owner: ${owner}\n",
    );
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "settings",
        "app",
        "./",
        json!({"postBuild": {
        "substitute": {"owner": "platform"},
        "substituteFrom": [
            {"kind": "ConfigMap", "name": "cluster-vars"},
            {"kind": "Secret", "name": "absent", "optional": true}
        ]}}),
    ))
    .await;
    bed.until_ready_at("settings", &first.artifact.revision)
        .await;
    let settings = bed
        .get("v1", "ConfigMap", "default", "settings")
        .await
        .unwrap_or_else(|| panic!("settings not applied"));
    assert_eq!(
        settings["data"],
        json!({"env": "staging", "region": "eu-west-1", "owner": "platform"})
    );
}

/// Flux's `substituteStrategy`: without any variable, `WithVariables` (the default) leaves
/// the manifests as written; `Always` substitutes the defaults anyway.
#[actix::test]
async fn without_variables_only_the_always_strategy_substitutes() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    for name in ["kept", "defaulted"] {
        repo.write(
            &format!("{name}/config.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  region: ${{region:=eu-west-1}}\n"),
        );
    }
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    let optional_only = json!([{"kind": "ConfigMap", "name": "absent", "optional": true}]);
    bed.apply(&kustomization(
        "kept",
        "app",
        "./kept",
        json!({"postBuild": {"substituteFrom": optional_only}}),
    ))
    .await;
    bed.apply(&kustomization(
        "defaulted",
        "app",
        "./defaulted",
        json!({"postBuild": {"substituteStrategy": "Always", "substituteFrom": optional_only}}),
    ))
    .await;
    bed.until_ready_at("kept", &first.artifact.revision).await;
    bed.until_ready_at("defaulted", &first.artifact.revision)
        .await;
    let region = |object: Option<serde_json::Value>| object.map(|o| o["data"]["region"].clone());
    assert_eq!(
        region(bed.get("v1", "ConfigMap", "default", "kept").await),
        Some(json!("${region:=eu-west-1}"))
    );
    assert_eq!(
        region(bed.get("v1", "ConfigMap", "default", "defaulted").await),
        Some(json!("eu-west-1"))
    );
}

#[actix::test]
async fn deleting_a_kustomization_with_prune_removes_its_objects() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    repo.write("config.yaml", &config_map("doomed", "default", "a"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization("doomed", "app", "./", json!({})))
        .await;
    let k = bed.until_ready_at("doomed", &first.artifact.revision).await;
    assert!(
        k.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"finalizers.fluxcd.io".to_string())
    );
    kube::Api::<api::kustomize::Kustomization>::namespaced(bed.client.clone(), NS)
        .delete("doomed", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..400 {
        let gone = kube::Api::<api::kustomize::Kustomization>::namespaced(bed.client.clone(), NS)
            .get_opt("doomed")
            .await
            .ok()
            .flatten()
            .is_none();
        if gone
            && bed
                .get("v1", "ConfigMap", "default", "doomed")
                .await
                .is_none()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the Kustomization or its ConfigMap is still there");
}

/// Flux's bootstrap layout: a Kustomization that applies its own object. With `wait` it
/// must not wait for itself (it cannot be Ready before its reconcile ends).
#[actix::test]
async fn a_kustomization_that_applies_itself_does_not_wait_for_itself() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    let itself = kustomization("self", "app", "./", json!({"wait": true, "timeout": "10m"}));
    repo.write("self.yaml", &itself.to_string())
        .write("config.yaml", &config_map("settings", "default", "one"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&itself).await;
    let k = bed.until_ready_at("self", &first.artifact.revision).await;
    let entries = k.status.and_then(|s| s.inventory).map(|i| i.entries);
    assert!(
        entries.is_some_and(|e| e
            .iter()
            .any(|e| e.id == "flux-system_self_kustomize.toolkit.fluxcd.io_Kustomization")),
        "the Kustomization is part of its own inventory"
    );
}

/// `spec.kubeConfig`: objects go to the cluster of the kubeconfig in the Secret (and are
/// pruned there on deletion); the Kustomization and its status stay here.
#[actix::test]
async fn a_kubeconfig_secret_sends_the_objects_to_another_cluster() {
    let bed = Bed::start().await;
    let remote = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let remote_client = support_ks::client_for(&remote).await;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "remote-kubeconfig", "namespace": NS},
        "stringData": {"value": remote.kubeconfig()},
    });
    bed.apply(&secret).await;
    let repo = Repo::new("app");
    repo.write("config.yaml", &config_map("far", "default", "a"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "far",
        "app",
        "./",
        json!({"kubeConfig": {"secretRef": {"name": "remote-kubeconfig"}}}),
    ))
    .await;
    bed.until_ready_at("far", &first.artifact.revision).await;
    let remote_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(remote_client.clone(), "default");
    let far = remote_maps
        .get_opt("far")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        far.and_then(|c| c.data)
            .and_then(|d| d.get("value").cloned()),
        Some("a".to_string())
    );
    assert!(bed.get("v1", "ConfigMap", "default", "far").await.is_none());

    kube::Api::<api::kustomize::Kustomization>::namespaced(bed.client.clone(), NS)
        .delete("far", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..400 {
        let pruned = remote_maps.get_opt("far").await.ok().flatten().is_none();
        if pruned {
            remote.shutdown().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the ConfigMap in the other cluster was not pruned");
}

/// A kubeconfig that would run a program is refused, naming why, before anything is applied.
#[actix::test]
async fn a_kubeconfig_with_an_exec_plugin_is_refused() {
    let bed = Bed::start().await;
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/touch\n      args: [/tmp/flotilla-exec-ran]\n";
    bed.apply(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sneaky", "namespace": NS},
        "stringData": {"value": kubeconfig},
    }))
    .await;
    let repo = Repo::new("app");
    repo.write("config.yaml", &config_map("never", "default", "a"));
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "sneaky",
        "app",
        "./",
        json!({"kubeConfig": {"secretRef": {"name": "sneaky"}}}),
    ))
    .await;
    let k = bed
        .until("sneaky", "a failure", |k| {
            ready(k).is_some_and(|(status, ..)| status == "False")
        })
        .await;
    let (_, reason, message) = ready(&k).unwrap_or_default();
    assert_eq!(reason, "ReconciliationFailed");
    assert!(message.contains("exec credential plugin"), "{message}");
    let stalled = k.status.unwrap_or_default().conditions;
    assert!(api::conditions::is_true(&stalled, "Stalled"));
    assert!(
        bed.get("v1", "ConfigMap", "default", "never")
            .await
            .is_none()
    );
}

/// `deletionPolicy: Delete` deletes the objects even without `prune`;
/// `WaitForTermination` also keeps the Kustomization until they are gone.
#[actix::test]
async fn deletion_policies_delete_and_wait_for_termination() {
    let bed = Bed::start().await;
    let repo = Repo::new("app");
    let held = config_map("held", "default", "a").replacen(
        "  namespace: default\n",
        "  namespace: default\n  finalizers:\n  - example.com/hold\n",
        1,
    );
    repo.write("plain/config.yaml", &config_map("plain", "default", "a"))
        .write("held/config.yaml", &held);
    let first = repo.commit("first");
    bed.publish(first.clone()).await;
    bed.apply(&kustomization(
        "plain",
        "app",
        "./plain",
        json!({"prune": false, "deletionPolicy": "Delete"}),
    ))
    .await;
    bed.apply(&kustomization(
        "held",
        "app",
        "./held",
        json!({"deletionPolicy": "WaitForTermination", "timeout": "10m"}),
    ))
    .await;
    bed.until_ready_at("plain", &first.artifact.revision).await;
    bed.until_ready_at("held", &first.artifact.revision).await;
    let kustomizations =
        kube::Api::<api::kustomize::Kustomization>::namespaced(bed.client.clone(), NS);
    for name in ["plain", "held"] {
        kustomizations
            .delete(name, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let gone = |name: &'static str| {
        let kustomizations = kustomizations.clone();
        async move { kustomizations.get_opt(name).await.ok().flatten().is_none() }
    };
    let mut waited = 0;
    while !(gone("plain").await
        && bed
            .get("v1", "ConfigMap", "default", "plain")
            .await
            .is_none())
    {
        waited += 1;
        assert!(waited < 400, "plain or its ConfigMap is still there");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The held ConfigMap is terminating; its Kustomization waits for it.
    let mut waited = 0;
    while bed
        .get("v1", "ConfigMap", "default", "held")
        .await
        .is_none_or(|held| !held["metadata"]["deletionTimestamp"].is_string())
    {
        waited += 1;
        assert!(waited < 400, "the held ConfigMap was never deleted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!gone("held").await, "held did not wait for its ConfigMap");
    let maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(bed.client.clone(), "default");
    maps.patch(
        "held",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut waited = 0;
    while !gone("held").await {
        waited += 1;
        assert!(waited < 400, "held never went after its ConfigMap did");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
