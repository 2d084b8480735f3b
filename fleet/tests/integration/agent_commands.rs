//! A command from the fleet's API reaches the agent over its link and changes the Flux
//! object on the agent's cluster (kubesim), as `flux reconcile|suspend|resume` would.

use crate::support;

use std::time::Duration;

use actix::prelude::*;
use agent::fleet_link::KubeExecutor;
use agent::fleet_link::executor::REQUESTED_AT;
use agent::fleet_link::{FleetLink, StatusChanged};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use proto::{Ack, Readiness};
use support::{Pki, kustomization};

async fn cluster_with_a_kustomization(server: &kubesim::RunningServer) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig()).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    for (group, kind) in [
        ("kustomize.toolkit.fluxcd.io", "Kustomization"),
        ("source.toolkit.fluxcd.io", "GitRepository"),
    ] {
        let kind = api::crd::find_kind(group, kind).expect("kind");
        let crd = api::crd::crd_for(kind).expect("crd");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
        let name = crd.metadata.name.clone().expect("name");
        let established = kube::runtime::wait::await_condition(
            crds,
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("in time")
            .expect("established");
    }

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut ns = k8s_openapi::api::core::v1::Namespace::default();
    ns.metadata.name = Some("flux-system".into());
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let objects = kustomizations(&client);
    let object: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": { "name": "apps", "namespace": "flux-system" },
        "spec": { "interval": "10m", "path": "./apps", "prune": true, "sourceRef": { "kind": "GitRepository", "name": "flux-system" } }
    }))
    .expect("object");
    objects
        .create(&PostParams::default(), &object)
        .await
        .expect("create Kustomization");
    let repository: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": { "name": "flux-system", "namespace": "flux-system" },
        "spec": { "interval": "1m", "url": "https://example.invalid/fleet.git", "ref": { "branch": "main" } }
    }))
    .expect("object");
    repositories(&client)
        .create(&PostParams::default(), &repository)
        .await
        .expect("create GitRepository");
    client
}

fn kustomizations(client: &kube::Client) -> Api<DynamicObject> {
    let resource = agent::fleet_link::executor::resource_of("Kustomization").expect("resource");
    Api::namespaced_with(client.clone(), "flux-system", &resource)
}

fn repositories(client: &kube::Client) -> Api<DynamicObject> {
    let resource = agent::fleet_link::executor::resource_of("GitRepository").expect("resource");
    Api::namespaced_with(client.clone(), "flux-system", &resource)
}

fn requested_at(object: &DynamicObject) -> Option<String> {
    object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_AT))
        .cloned()
}

#[actix_web::test]
async fn reconcile_suspend_and_resume_reach_the_object_on_the_agents_cluster() {
    let mut pki = Pki::new("commands");
    let staging = pki.add_cluster("staging").await;
    let sim = kubesim::Server::start(kubesim::Config::default())
        .await
        .expect("kubesim");
    let client = cluster_with_a_kustomization(&sim).await;
    let fleet = pki.start_fleet().await;

    let executor = KubeExecutor::new(client.clone()).start();
    let (link, mut status) = FleetLink::new(
        pki.link_config(&fleet.agent_url(), &staging),
        Some(executor.recipient()),
    );
    let link = link.start();
    link.do_send(StatusChanged(kustomization(
        "apps",
        "main@sha1:1",
        Readiness::True,
    )));
    tokio::time::timeout(Duration::from_secs(30), status.wait_for(|s| s.connected))
        .await
        .expect("in time")
        .expect("alive");

    let api = pki.admin_client(&fleet);
    let base = "/api/v1/clusters/staging/objects/Kustomization/flux-system";
    let ack: Ack = api
        .post(&format!("{base}/apps/suspend"))
        .await
        .expect("suspend");
    assert!(ack.ok, "{ack:?}");
    let object = kustomizations(&client).get("apps").await.expect("object");
    assert_eq!(object.data["spec"]["suspend"], true);

    let ack: Ack = api
        .post(&format!("{base}/apps/resume"))
        .await
        .expect("resume");
    assert!(ack.ok, "{ack:?}");
    let object = kustomizations(&client).get("apps").await.expect("object");
    assert_eq!(object.data["spec"]["suspend"], false);
    let requested = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_AT))
        .cloned()
        .expect("requested");

    let ack: Ack = api
        .post(&format!("{base}/apps/reconcile"))
        .await
        .expect("reconcile");
    assert!(ack.ok, "{ack:?}");
    let object = kustomizations(&client).get("apps").await.expect("object");
    let again = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_AT))
        .cloned()
        .expect("requested");
    assert_ne!(again, requested, "a new reconcile request");

    assert_eq!(
        requested_at(
            &repositories(&client)
                .get("flux-system")
                .await
                .expect("repo")
        ),
        None
    );
    let ack: Ack = api
        .post(&format!("{base}/apps/reconcile?withSource=true"))
        .await
        .expect("reconcile with source");
    assert!(ack.ok, "{ack:?}");
    assert!(
        ack.message
            .contains("GitRepository/flux-system/flux-system"),
        "{ack:?}"
    );
    let source_requested = requested_at(
        &repositories(&client)
            .get("flux-system")
            .await
            .expect("repo"),
    );
    assert!(
        source_requested.is_some(),
        "the source was asked to reconcile"
    );

    let missing: Ack = api
        .post(&format!("{base}/nope/reconcile"))
        .await
        .expect("answered");
    assert!(
        !missing.ok && missing.message.contains("not found"),
        "{missing:?}"
    );

    fleet.stop().await;
    sim.shutdown().await;
    support::assert_no_secret_logged(&pki.secrets);
}
