//! The registry against kubesim: one actor per object, updates forwarded, deletions
//! delivered, stopped actors restarted.

use crate::support_ks;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use actix::prelude::*;
use agent::registry::{
    Gone, ListChildren, ObjectActor, ObjectKey, Observed, Registry, RegistryHandle,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

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

/// kubesim with a registry of [`Recorder`]s watching its `default` ConfigMaps.
struct Bed {
    server: kubesim::RunningServer,
    api: Api<ConfigMap>,
    journal: Arc<Journal>,
    handle: RegistryHandle<Recorder>,
}

async fn start(existing: &[(&str, &str)]) -> Bed {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let server = kubesim::Server::start(kubesim::Config::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api: Api<ConfigMap> = Api::namespaced(support_ks::client_for(&server).await, "default");
    for (name, value) in existing {
        api.create(&PostParams::default(), &config_map(name, value))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let journal = Arc::new(Journal::default());
    let mut handle = Registry::<Recorder>::start(api.clone(), journal.clone());
    handle
        .synced
        .wait_for(|synced| *synced)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Bed {
        server,
        api,
        journal,
        handle,
    }
}

async fn set_value(api: &Api<ConfigMap>, name: &str, value: &str) {
    let mut object = api.get(name).await.unwrap_or_else(|e| panic!("{e}"));
    object
        .data
        .get_or_insert_with(Default::default)
        .insert("value".into(), value.into());
    api.replace(name, &PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn count(journal: &Journal, line: &str) -> usize {
    journal.lines().iter().filter(|l| *l == line).count()
}

#[actix::test]
async fn each_object_gets_one_actor_that_sees_updates_and_deletion() {
    let bed = start(&[("one", "a")]).await;
    bed.api
        .create(&PostParams::default(), &config_map("two", "b"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&bed.journal, "create two").await;
    set_value(&bed.api, "one", "c").await;
    until_noted(&bed.journal, "observed one c").await;
    bed.api
        .delete("two", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&bed.journal, "gone two").await;
    let children = bed
        .handle
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
    assert_eq!(
        count(&bed.journal, "create one"),
        1,
        "one actor per object: {:?}",
        bed.journal.lines()
    );
    bed.server.shutdown().await;
}

#[actix::test]
async fn a_stopped_actor_is_restarted_from_the_latest_object() {
    let bed = start(&[]).await;
    bed.api
        .create(&PostParams::default(), &config_map("flaky", "ok"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until_noted(&bed.journal, "create flaky").await;
    set_value(&bed.api, "flaky", "fail").await;
    until_noted(&bed.journal, "observed flaky fail").await;
    // The first restart comes after one second of backoff.
    for _ in 0..200 {
        if count(&bed.journal, "create flaky") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        count(&bed.journal, "create flaky"),
        2,
        "{:?}",
        bed.journal.lines()
    );
    bed.server.shutdown().await;
}
