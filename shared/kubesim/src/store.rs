//! The object store: one increasing resourceVersion, a bounded event history for watches, and
//! an optional append-only log that is fsynced before a write is acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::persist::Log;
use crate::status::ApiError;

/// Where an object lives: group, plural resource (version-agnostic), namespace ("" for
/// cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// API group, empty for core.
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// Builds a key.
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// The watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object was removed; the event carries its last state.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, in resourceVersion order.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object's key.
    pub key: Key,
    /// The object after the change (before it, for deletions, with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change, for modifications (selector transitions in watches).
    pub prev: Option<Arc<Value>>,
}

/// A subscription to store events.
pub type EventReceiver = broadcast::Receiver<Arc<Event>>;

/// The mutable state, only reachable through [`Store::lock`].
pub struct State {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    /// Keys by namespace, for namespace deletion.
    by_namespace: HashMap<String, BTreeSet<Key>>,
    /// Dependents by owner uid, for garbage collection.
    by_owner: HashMap<String, BTreeSet<Key>>,
    /// Keys by uid, for resolving owner references.
    by_uid: HashMap<String, Key>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// The first rv a watch may resume from without 410.
    oldest: u64,
    log: Option<Log>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Shared store handle.
pub struct Store {
    state: Mutex<State>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The uids in an object's ownerReferences.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

struct Indexes<'a> {
    by_namespace: &'a mut HashMap<String, BTreeSet<Key>>,
    by_owner: &'a mut HashMap<String, BTreeSet<Key>>,
    by_uid: &'a mut HashMap<String, Key>,
}

fn index(ix: Indexes<'_>, key: &Key, obj: &Value, add: bool) {
    let Indexes {
        by_namespace,
        by_owner,
        by_uid,
    } = ix;
    if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
        if add {
            by_uid.insert(uid.to_string(), key.clone());
        } else if by_uid.get(uid) == Some(key) {
            by_uid.remove(uid);
        }
    }
    let apply = |map: &mut HashMap<String, BTreeSet<Key>>, idx: String| {
        if add {
            map.entry(idx).or_default().insert(key.clone());
        } else if let Some(set) = map.get_mut(&idx) {
            set.remove(key);
            if set.is_empty() {
                map.remove(&idx);
            }
        }
    };
    if !key.namespace.is_empty() {
        apply(by_namespace, key.namespace.clone());
    }
    for uid in owner_uids(obj) {
        apply(by_owner, uid);
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// A store holding `objects` at resourceVersion `rv`, persisting through `log` if any.
    pub fn new(
        rv: u64,
        objects: BTreeMap<Key, Arc<Value>>,
        log: Option<Log>,
        history_cap: usize,
    ) -> Self {
        let (tx, _) = broadcast::channel(8192);
        let mut by_namespace: HashMap<String, BTreeSet<Key>> = HashMap::new();
        let mut by_owner: HashMap<String, BTreeSet<Key>> = HashMap::new();
        let mut by_uid: HashMap<String, Key> = HashMap::new();
        for (k, v) in &objects {
            let ix = Indexes {
                by_namespace: &mut by_namespace,
                by_owner: &mut by_owner,
                by_uid: &mut by_uid,
            };
            index(ix, k, v, true);
        }
        Self {
            state: Mutex::new(State {
                rv,
                objects,
                by_namespace,
                by_owner,
                by_uid,
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                oldest: rv,
                log,
                tx,
            }),
        }
    }

    /// Locks the state; callers must not hold the guard across an await.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would leave a consistent map (writes are applied
        // after persisting, in one step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// One object.
    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// Objects of a resource, in one namespace or all, ordered by namespace then name.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<(Key, Arc<Value>)> {
        let start = Key::new(group, resource, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| {
                k.group == group
                    && k.resource == resource
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every object in a namespace, of any resource.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Key> {
        self.by_namespace
            .get(namespace)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn indexes(&mut self) -> Indexes<'_> {
        Indexes {
            by_namespace: &mut self.by_namespace,
            by_owner: &mut self.by_owner,
            by_uid: &mut self.by_uid,
        }
    }

    /// The object with this uid.
    pub fn by_uid(&self, uid: &str) -> Option<(Key, Arc<Value>)> {
        let k = self.by_uid.get(uid)?;
        self.objects.get(k).map(|v| (k.clone(), v.clone()))
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<(Key, Arc<Value>)> {
        self.by_owner
            .get(uid)
            .map(|s| {
                s.iter()
                    .filter_map(|k| self.objects.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every object (for the garbage collector's scans).
    pub fn all(&self) -> Vec<(Key, Arc<Value>)> {
        self.objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Creates or replaces an object under the next resourceVersion; durable when this returns.
    pub fn put(&mut self, key: Key, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        let rv = self.rv + 1;
        set_rv(&mut obj, rv);
        if let Some(log) = &mut self.log {
            log.append_put(rv, &key, &obj).map_err(ApiError::internal)?;
        }
        self.rv = rv;
        let obj = Arc::new(obj);
        self.maybe_compact_after(&key, &obj);
        let prev = self.objects.insert(key.clone(), obj.clone());
        if let Some(p) = &prev {
            index(self.indexes(), &key, p, false);
        }
        index(self.indexes(), &key, &obj, true);
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(Event {
            rv,
            kind,
            key,
            object: obj.clone(),
            prev,
        });
        Ok(obj)
    }

    /// Removes an object; the returned last state carries the deletion's resourceVersion.
    pub fn remove(&mut self, key: &Key) -> Result<Option<Arc<Value>>, ApiError> {
        let Some(old) = self.objects.get(key) else {
            return Ok(None);
        };
        let rv = self.rv + 1;
        if let Some(log) = &mut self.log {
            log.append_delete(rv, key).map_err(ApiError::internal)?;
        }
        let mut last = (**old).clone();
        set_rv(&mut last, rv);
        if let Some(old) = self.objects.remove(key) {
            index(self.indexes(), key, &old, false);
        }
        self.rv = rv;
        let last = Arc::new(last);
        self.emit(Event {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            object: last.clone(),
            prev: None,
        });
        Ok(Some(last))
    }

    /// Rewrites an overgrown log (the write at hand is already durable in it).
    fn maybe_compact_after(&mut self, key: &Key, obj: &Arc<Value>) {
        let Some(log) = &mut self.log else { return };
        if !log.wants_compaction() {
            return;
        }
        // The snapshot must include the write just appended, which is not in the map yet.
        let mut objects = self.objects.clone();
        objects.insert(key.clone(), obj.clone());
        if let Err(e) = log.compact(self.rv, &objects) {
            tracing::warn!(error = %e, "kubesim: log compaction failed; appending continues");
        }
    }

    fn emit(&mut self, ev: Event) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.oldest = old.rv;
            }
        }
        // No receivers is normal (nobody watching).
        let _ = self.tx.send(ev);
    }

    /// Events after `since` and a receiver for later ones, or `Err(oldest)` when `since` is
    /// older than the history.
    pub fn watch_from(&self, since: u64) -> Result<(Vec<Arc<Event>>, EventReceiver), u64> {
        if since < self.oldest {
            return Err(self.oldest);
        }
        let past = self
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok((past, self.tx.subscribe()))
    }

    /// A receiver of every future event (for the in-process controllers).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_write_gets_the_next_resource_version() {
        let store = Store::new(1, BTreeMap::new(), None, 10);
        let mut st = store.lock();
        let a = st
            .put(
                Key::new("", "configmaps", "ns", "a"),
                json!({"metadata": {"name": "a"}}),
            )
            .expect("put");
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        let gone = st
            .remove(&Key::new("", "configmaps", "ns", "a"))
            .expect("remove")
            .expect("present");
        assert_eq!(gone["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn watching_from_before_the_history_window_is_refused() {
        let store = Store::new(1, BTreeMap::new(), None, 2);
        let mut st = store.lock();
        for n in ["a", "b", "c", "d"] {
            st.put(Key::new("", "configmaps", "ns", n), json!({"metadata": {}}))
                .expect("put");
        }
        assert!(st.watch_from(1).is_err());
        let (past, _) = st.watch_from(3).expect("in window");
        assert_eq!(past.iter().map(|e| e.rv).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn indexes_follow_owner_references_and_namespaces_through_updates() {
        let store = Store::new(1, BTreeMap::new(), None, 10);
        let mut st = store.lock();
        let child = Key::new("", "configmaps", "ns", "child");
        let owned = json!({"metadata": {"uid": "c", "ownerReferences": [{"uid": "o"}]}});
        st.put(child.clone(), owned).expect("put");
        assert_eq!(st.dependents("o").len(), 1);
        assert_eq!(st.by_uid("c").map(|(k, _)| k), Some(child.clone()));
        st.put(child.clone(), json!({"metadata": {"uid": "c"}}))
            .expect("update");
        assert!(
            st.dependents("o").is_empty(),
            "a removed owner reference leaves the index"
        );
        assert_eq!(st.in_namespace("ns"), std::slice::from_ref(&child));
        st.remove(&child).expect("remove");
        assert!(st.in_namespace("ns").is_empty() && st.by_uid("c").is_none());
    }

    #[test]
    fn list_is_limited_to_one_resource_and_namespace() {
        let store = Store::new(1, BTreeMap::new(), None, 10);
        let mut st = store.lock();
        for (r, ns, n) in [
            ("configmaps", "a", "x"),
            ("configmaps", "b", "y"),
            ("secrets", "a", "z"),
        ] {
            st.put(Key::new("", r, ns, n), json!({"metadata": {}}))
                .expect("put");
        }
        assert_eq!(st.list("", "configmaps", Some("a")).len(), 1);
        assert_eq!(st.list("", "configmaps", None).len(), 2);
    }
}
