//! The in-process controllers that make kubesim behave like a cluster, each reacting to store
//! events: the garbage collector (ownerReferences, background/foreground/orphan), the namespace
//! controller (deletion cascade), CRD cleanup and registration, and the simulated workloads.
//!
//! # Guarantees
//! Every handler runs under the store lock and is idempotent, so a missed event (a lagging
//! subscription) is recovered by a full resync.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{self, DeleteOptions, Target};
use crate::sim::Sim;
use crate::store::{Event, EventType, Key, State, owner_uids};
use crate::workloads;

fn uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn target(sim: &Sim, key: &Key) -> Option<Target> {
    let rt = sim.registry.by_resource(&key.group, &key.resource)?;
    Some(Target {
        version: rt.storage_version().to_string(),
        namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
        name: Some(key.name.clone()),
        sub: None,
        rt,
    })
}

fn delete(sim: &Sim, st: &mut State, key: &Key, propagation: &str) {
    let Some(t) = target(sim, key) else {
        // A custom object whose CRD is gone: nothing serves it any more, drop it directly.
        let _ = st.remove(key);
        return;
    };
    let o = DeleteOptions {
        propagation: Some(propagation.into()),
        ..Default::default()
    };
    if let Err(e) = api::delete_object(st, &t, &key.name, &o)
        && e.code != 404
    {
        tracing::warn!(error = %e.message, "kubesim: controller delete failed");
    }
}

/// Removes finalizer `f` from an object; the store removes it if it was the last one and the
/// object is being deleted.
fn remove_finalizer(st: &mut State, key: &Key, f: &str) {
    let Some(obj) = st.get(key) else { return };
    let mut new = (*obj).clone();
    let rest: Vec<Value> = finalizers(&obj)
        .into_iter()
        .filter(|x| x != f)
        .map(Value::String)
        .collect();
    let done = rest.is_empty() && obj.pointer("/metadata/deletionTimestamp").is_some();
    let meta = api::meta_mut(&mut new);
    if rest.is_empty() {
        meta.shift_remove("finalizers");
    } else {
        meta.insert("finalizers".into(), Value::Array(rest));
    }
    let res = if done && !(key.group.is_empty() && key.resource == "namespaces") {
        st.remove(key).map(|_| ())
    } else {
        st.put(key.clone(), new).map(|_| ())
    };
    if let Err(e) = res {
        tracing::warn!(error = %e.message, "kubesim: finalizer removal failed");
    }
}

fn dependents(st: &State, owner_uid: &str) -> Vec<(Key, Arc<Value>)> {
    st.dependents(owner_uid)
}

/// Garbage collection after `owner` went away or is being deleted.
fn collect(sim: &Sim, st: &mut State, owner_key: &Key, owner: &Value, deleted: bool) {
    let Some(owner_uid) = uid(owner).map(str::to_string) else {
        return;
    };
    let fins = finalizers(owner);
    if !deleted && fins.iter().any(|f| f == "orphan") {
        for (k, d) in dependents(st, &owner_uid) {
            let mut new = (*d).clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&owner_uid));
            }
            let _ = st.put(k, new);
        }
        remove_finalizer(st, owner_key, "orphan");
        return;
    }
    if !deleted && fins.iter().any(|f| f == "foregroundDeletion") {
        let deps = dependents(st, &owner_uid);
        if deps.is_empty() {
            remove_finalizer(st, owner_key, "foregroundDeletion");
            return;
        }
        for (k, d) in deps {
            if d.pointer("/metadata/deletionTimestamp").is_none() {
                delete(sim, st, &k, "Foreground");
            }
        }
        // A dependent deleted at once leaves nothing to wait for.
        if dependents(st, &owner_uid).is_empty() {
            remove_finalizer(st, owner_key, "foregroundDeletion");
        }
        return;
    }
    if !deleted {
        return;
    }

    for (k, d) in dependents(st, &owner_uid) {
        let owners = owner_uids(&d);
        if owners.iter().all(|u| st.by_uid(u).is_none()) {
            delete(sim, st, &k, "Background");
        } else {
            let mut new = (*d).clone();
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&owner_uid));
            }
            let _ = st.put(k, new);
        }
    }
}

/// Re-checks owners waiting in foreground deletion for a dependent that went away.
fn owners_waiting(sim: &Sim, st: &mut State, dependent: &Value) {
    for owner_uid in owner_uids(dependent) {
        let owner = st.by_uid(&owner_uid);
        if let Some((k, o)) = owner
            && o.pointer("/metadata/deletionTimestamp").is_some()
        {
            collect(sim, st, &k, &o, false);
        }
    }
}

/// Empties a terminating namespace, then releases it.
fn namespace(sim: &Sim, st: &mut State, name: &str) {
    let key = Key::new("", "namespaces", "", name);
    let Some(ns) = st.get(&key) else { return };
    if ns.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let content = st.in_namespace(name);
    for k in &content {
        if st
            .get(k)
            .is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_none())
        {
            delete(sim, st, k, "Background");
        }
    }
    if st.in_namespace(name).is_empty() {
        let mut new = (*ns).clone();
        api::set_in(&mut new, &["spec", "finalizers"], json!([]));
        if let Err(e) = api::finalize_namespace(st, &key, new) {
            tracing::warn!(error = %e.message, "kubesim: namespace finalization failed");
        }
    }
}

use crate::crd::CLEANUP_FINALIZER as CRD_CLEANUP;

fn crd_cleanup(sim: &Sim, st: &mut State, key: &Key, crd: &Value) {
    if crd.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let (Some(group), Some(plural)) = (
        crd.pointer("/spec/group").and_then(Value::as_str),
        crd.pointer("/spec/names/plural").and_then(Value::as_str),
    ) else {
        return;
    };
    for (k, _) in st.list(group, plural, None) {
        let _ = st.remove(&k);
    }
    let _ = sim;
    if finalizers(crd).iter().any(|f| f == CRD_CLEANUP) {
        remove_finalizer(st, key, CRD_CLEANUP);
    }
}

/// What kube-controller-manager puts in every new namespace: the `default` ServiceAccount and
/// the `kube-root-ca.crt` ConfigMap.
fn namespace_contents(sim: &Sim, st: &mut State, ns: &Value) {
    let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) else {
        return;
    };
    if ns.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let wanted = [
        (
            "serviceaccounts",
            "default",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        ),
        (
            "configmaps",
            "kube-root-ca.crt",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": sim.ca_pem}}),
        ),
    ];
    for (resource, obj_name, mut obj) in wanted {
        let key = Key::new("", resource, name, obj_name);
        if st.get(&key).is_some() {
            continue;
        }
        let Some(mut t) = target(sim, &key) else {
            continue;
        };
        t.name = None;
        if let Err(e) = api::create_object(
            sim,
            st,
            &t,
            &mut obj,
            "kube-controller-manager",
            false,
            None,
        ) && e.code != 409
        {
            tracing::debug!(error = %e.message, "kubesim: namespace contents");
        }
    }
}

/// Serves exactly the Established CRDs in the store.
pub fn rebuild_registry(sim: &Sim, st: &State) {
    let crds: Vec<Value> = st
        .list("apiextensions.k8s.io", "customresourcedefinitions", None)
        .into_iter()
        .map(|(_, v)| (*v).clone())
        .collect();
    sim.registry.rebuild(&crds);
}

fn handle(sim: &Arc<Sim>, st: &mut State, ev: &Event) {
    let k = &ev.key;
    if k.group == "apiextensions.k8s.io" && k.resource == "customresourcedefinitions" {
        crd_cleanup(sim, st, k, &ev.object);
        rebuild_registry(sim, st);
    }
    match ev.kind {
        EventType::Deleted => {
            collect(sim, st, k, &ev.object, true);
            owners_waiting(sim, st, &ev.object);
            if !k.namespace.is_empty() {
                namespace(sim, st, &k.namespace);
            }
        }
        _ => {
            if ev.object.pointer("/metadata/deletionTimestamp").is_some() {
                collect(sim, st, k, &ev.object, false);
                if k.group.is_empty() && k.resource == "namespaces" {
                    namespace(sim, st, &k.name);
                }
                if !k.namespace.is_empty() {
                    namespace(sim, st, &k.namespace);
                }
            }
            if k.group.is_empty() && k.resource == "namespaces" {
                namespace_contents(sim, st, &ev.object);
            }
            workloads::on_event(sim, st, ev);
        }
    }
}

fn resync(sim: &Arc<Sim>, st: &mut State) {
    rebuild_registry(sim, st);
    for (k, o) in st.all() {
        let ev = Event {
            rv: st.rv(),
            kind: EventType::Modified,
            key: k,
            object: o,
            prev: None,
        };
        handle(sim, st, &ev);
    }
}

/// Runs the controllers until the store's channel closes.
pub async fn run(sim: Arc<Sim>) {
    let mut rx = {
        let mut st = sim.store.lock();
        let rx = st.subscribe();
        resync(&sim, &mut st);
        rx
    };
    loop {
        match rx.recv().await {
            Ok(ev) => {
                let mut st = sim.store.lock();
                handle(&sim, &mut st, &ev);
            }
            Err(RecvError::Lagged(_)) => {
                let mut st = sim.store.lock();
                resync(&sim, &mut st);
            }
            Err(RecvError::Closed) => break,
        }
    }
}
