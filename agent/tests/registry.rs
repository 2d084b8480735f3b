//! The registry against kubesim: one actor per object, updates forwarded, deletions
//! delivered, stopped actors restarted.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use actix::prelude::*;
use agent::registry::{Gone, ListChildren, ObjectActor, ObjectKey, Observed, Registry};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

#[derive(Default)]
struct Journal(Mutex<Vec<String>>);

impl Journal {
    fn note(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Notes what it sees; stops itself when the ConfigMap asks it to, to simulate a failure.
struct Recorder {
    name: String,
    journal: Arc<Journal>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl ObjectActor for Recorder {
    type Object = ConfigMap;
    type Deps = Arc<Journal>;

    fn for_object(object: Arc<ConfigMap>, journal: &Arc<Journal>) -> Self {
        journal.note(format!("create {}", object.name_any()));
        Recorder {
            name: object.name_any(),
            journal: journal.clone(),
        }
    }
}

impl Handler<Observed<ConfigMap>> for Recorder {
    type Result = ();

    fn handle(&mut self, Observed(object): Observed<ConfigMap>, ctx: &mut Context<Self>) {
        let value = object
            .data
            .as_ref()
            .and_then(|d| d.get("value"))
            .cloned()
            .unwrap_or_default();
        self.journal.note(format!("observed {} {value}", self.name));
        if value == "fail" {
            ctx.stop();
        }
    }
}

impl Handler<Gone> for Recorder {
    type Result = ();

    fn handle(&mut self, _: Gone, ctx: &mut Context<Self>) {
        self.journal.note(format!("gone {}", self.name));
        ctx.stop();
    }
}

async fn client_for(server: &kubesim::RunningServer) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig()).unwrap_or_else(|e| panic!("{e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"value": value},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (bounded) until the journal holds `line`.
async fn until_noted(journal: &Journal, line: &str) {
    for _ in 0..200 {
        if journal.lines().iter().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never noted {line:?}; journal: {:?}", journal.lines());
}

#[actix::test]
async fn each_object_gets_one_actor_that_sees_updates_and_deletion() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let server = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = client_for(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("one", "a"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let journal = Arc::new(Journal::default());
    let mut handle = Registry::<Recorder>::start(api.clone(), journal.clone());
    handle
        .synced
        .wait_for(|synced| *synced)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.create(&PostParams::default(), &config_map("two", "b"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&journal, "create two").await;
    let mut changed = api.get("one").await.unwrap_or_else(|e| panic!("{e}"));
    changed
        .data
        .get_or_insert_with(Default::default)
        .insert("value".into(), "c".into());
    api.replace("one", &PostParams::default(), &changed)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&journal, "observed one c").await;
    api.delete("two", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&journal, "gone two").await;
    let children = handle
        .addr
        .send(ListChildren)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let key = |name: &str| ObjectKey {
        namespace: "default".into(),
        name: name.into(),
    };
    // Every namespace also holds the cluster's `kube-root-ca.crt`, which has its own actor.
    assert!(
        children.contains(&key("one")) && !children.contains(&key("two")),
        "{children:?}"
    );
    let creations = journal
        .lines()
        .iter()
        .filter(|l| l.starts_with("create one"))
        .count();
    assert_eq!(creations, 1, "one actor per object: {:?}", journal.lines());
    server.shutdown().await;
}

#[actix::test]
async fn a_stopped_actor_is_restarted_from_the_latest_object() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let server = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = client_for(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let journal = Arc::new(Journal::default());
    let mut handle = Registry::<Recorder>::start(api.clone(), journal.clone());
    handle
        .synced
        .wait_for(|synced| *synced)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.create(&PostParams::default(), &config_map("flaky", "ok"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&journal, "create flaky").await;
    let mut failing = api.get("flaky").await.unwrap_or_else(|e| panic!("{e}"));
    failing
        .data
        .get_or_insert_with(Default::default)
        .insert("value".into(), "fail".into());
    api.replace("flaky", &PostParams::default(), &failing)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&journal, "observed flaky fail").await;
    // The first restart comes after one second of backoff.
    for _ in 0..200 {
        if journal
            .lines()
            .iter()
            .filter(|l| *l == "create flaky")
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        journal
            .lines()
            .iter()
            .filter(|l| *l == "create flaky")
            .count(),
        2,
        "{:?}",
        journal.lines()
    );
    server.shutdown().await;
}
