//! A GitRepository behind `git http-backend` with basic auth: a wrong password leaves the
//! source not Ready with a message that never contains the password; the right one, after
//! the Secret is fixed and a reconcile requested, makes it Ready.

use crate::support;
use crate::support_ks;

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use agent::context::{AgentContext, FIELD_MANAGER};
use agent::gitrepository::{GitRepositoryActor, SourceDeps};
use agent::hub::ArtifactHub;
use agent::registry::Registry;
use agent::source::artifact::ArtifactStore;
use agent::telemetry::Metrics;
use api::source::GitRepository;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

const WRONG_PASSWORD: &str = "wrong-horse-battery";
const PASSWORD: &str = "correct-horse-staple";

fn secret(password: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-auth", "namespace": "flux-system"},
           "stringData": {"username": "alice", "password": password}})
}

async fn ready_of(api: &Api<GitRepository>) -> Option<(String, String, String)> {
    let object = api.get("private").await.ok()?;
    let condition = object
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((condition.status, condition.reason, condition.message))
}

#[actix::test]
async fn a_wrong_password_is_reported_without_the_password_and_the_right_one_recovers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let origin = support::Origin::new(&[("deploy/settings.yaml", "kind: ConfigMap\n")]);
    let http = support::lighttpd(&origin.repos_root(), "alice", PASSWORD, "unused-token");
    let server = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = support_ks::client_for(&server).await;
    let apply = PatchParams::apply("test").force();
    support_ks::install_crds(&client).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}});
    namespaces
        .patch("flux-system", &apply, &Patch::Apply(&namespace))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "flux-system");
    secrets
        .patch("git-auth", &apply, &Patch::Apply(&secret(WRONG_PASSWORD)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let storage = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(
        ArtifactStore::open(storage.path().join("artifacts"), 3).unwrap_or_else(|e| panic!("{e}")),
    );
    let context = AgentContext {
        client: client.clone(),
        hub: ArtifactHub::default().start(),
        metrics: Metrics::new().unwrap_or_else(|e| panic!("{e}")),
        storage_dir: storage.path().to_path_buf(),
        artifact_base_url: "http://127.0.0.1:1".into(),
        field_manager: FIELD_MANAGER.into(),
    };
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), "flux-system");
    let _registry = Registry::<GitRepositoryActor>::start(
        Api::all(client.clone()),
        SourceDeps { context, store },
    );
    let repository = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "private", "namespace": "flux-system"},
        "spec": {"interval": "10m", "url": format!("http://127.0.0.1:{}/basic/origin.git", http.port),
                 "ref": {"branch": "main"}, "secretRef": {"name": "git-auth"}},
    });
    sources
        .patch("private", &apply, &Patch::Apply(&repository))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut failed = None;
    for _ in 0..400 {
        if let Some((status, reason, message)) = ready_of(&sources).await
            && status == "False"
        {
            failed = Some((reason, message));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (reason, message) = failed.unwrap_or_else(|| panic!("the source never failed"));
    assert!(
        !message.contains(WRONG_PASSWORD),
        "the password leaked into status: {message}"
    );
    assert_eq!(reason, "AuthenticationFailed");
    assert!(message.contains("not accepted"), "{message}");
    let events: Api<Event> = Api::namespaced(client.clone(), "flux-system");
    for event in events
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
    {
        let text = event.message.unwrap_or_default();
        assert!(
            !text.contains(WRONG_PASSWORD),
            "the password leaked into an event: {text}"
        );
    }

    secrets
        .patch("git-auth", &apply, &Patch::Apply(&secret(PASSWORD)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let request =
        json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}}});
    sources
        .patch("private", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut recovered = false;
    for _ in 0..400 {
        if ready_of(&sources)
            .await
            .is_some_and(|(status, _, _)| status == "True")
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "the source did not recover: {:?}",
        ready_of(&sources).await
    );
    let object = sources
        .get("private")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let revision = object.status.and_then(|s| s.artifact).map(|a| a.revision);
    assert_eq!(revision, Some(format!("main@sha1:{}", origin.head())));
    server.shutdown().await;
}
