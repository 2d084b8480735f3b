//! Field ownership: `managedFields` bookkeeping for every write, and server-side apply.
//!
//! Follows structured-merge-diff as kube-apiserver runs it: an Update makes its manager own
//! what it changed and takes those fields from others; an Apply merges the applied
//! configuration, fails with a 409 naming each field another manager owns and the apply would
//! change (unless forced, which moves ownership), and removes fields the manager applied before
//! but no longer does when nobody else owns them.
//!
//! # Not covered
//! - Defaulting: the apiserver defaults the applied object before computing ownership; kubesim
//!   stores and tracks only what clients send.
//! - Version conversion of managed fields between versions of a multi-version CRD (sets are kept
//!   as recorded; kubesim serves CRD versions without conversion).
//! - Merging of lists of unknown schema (they are atomic, as in SMD's deduced type) and
//!   `x-kubernetes-map-type: granular` inside atomic parents.

use serde_json::{Map, Value, json};

use crate::fields::{FieldSet, PathElem, get_at, item_key, path_string, remove_at};
use crate::meta::now;
use crate::registry::ResourceType;
use crate::schema::{Cursor, ListType};
use crate::status::ApiError;

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion of the request.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// `status` or empty.
    pub subresource: String,
    /// Owned fields.
    pub set: FieldSet,
}

/// The type and subresource a write goes to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The resource type.
    pub rt: &'a ResourceType,
    /// The request's version.
    pub version: &'a str,
    /// `status` or empty.
    pub subresource: &'a str,
}

impl Scope<'_> {
    fn cursor(&self) -> Cursor<'_> {
        Cursor::root(
            &self.rt.resource,
            self.rt.schema(self.version),
            self.rt.builtin,
        )
    }
}

/// Reads `metadata.managedFields`.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    list.iter()
        .filter(|e| e.get("manager").is_some())
        .map(|e| Entry {
            manager: s(e, "manager"),
            operation: s(e, "operation"),
            api_version: s(e, "apiVersion"),
            time: s(e, "time"),
            subresource: s(e, "subresource"),
            set: e
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

/// Writes `metadata.managedFields` (removed when empty).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut m = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_fields_v1(),
            });
            if !e.subresource.is_empty() {
                m["subresource"] = Value::String(e.subresource.clone());
            }
            m
        })
        .collect();
    if list.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The part of an object whose ownership is tracked for a subresource.
fn trackable(obj: &Value, scope: &Scope<'_>) -> Value {
    // A subresource tracks a small part: copy only that part, not the whole object.
    let mut v = match (obj, scope.subresource) {
        (Value::Object(m), "status") => Value::Object(
            m.get("status")
                .map(|s| ("status".to_string(), s.clone()))
                .into_iter()
                .collect(),
        ),
        (Value::Object(m), "scale") => Value::Object(
            m.get("spec")
                .map(|s| ("spec".to_string(), s.clone()))
                .into_iter()
                .collect(),
        ),
        _ => obj.clone(),
    };
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("apiVersion");
        m.shift_remove("kind");
        if scope.subresource == "status" {
            m.retain(|k, _| k == "status");
        } else if scope.subresource == "scale" {
            let replicas = m.get("spec").and_then(|s| s.get("replicas")).cloned();
            m.clear();
            if let Some(r) = replicas {
                m.insert("spec".into(), json!({"replicas": r}));
            }
            return v;
        } else if scope.rt.status {
            m.shift_remove("status");
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in IGNORED_META {
                meta.shift_remove(*k);
            }
            if meta.is_empty() {
                m.shift_remove("metadata");
            }
        }
    }
    v
}

struct Compare {
    changed: FieldSet,
    removed: FieldSet,
}

fn compare(old: &Value, new: &Value, scope: &Scope<'_>) -> Compare {
    let cur = scope.cursor();
    let (old_t, new_t) = (trackable(old, scope), trackable(new, scope));
    let s_old = FieldSet::of(&old_t, &cur, &scope.rt.resource);
    let s_new = FieldSet::of(&new_t, &cur, &scope.rt.resource);
    let mut changed = s_new.difference(&s_old);
    for p in s_new.intersection(&s_old).paths() {
        if !s_new.has_children(&p) && get_at(&old_t, &p) != get_at(&new_t, &p) {
            changed = changed.union(&single(&p));
        }
    }
    Compare {
        changed,
        removed: s_old.difference(&s_new),
    }
}

fn single(path: &[PathElem]) -> FieldSet {
    FieldSet::from_fields_v1(&path_json(path))
}

fn path_json(path: &[PathElem]) -> Value {
    // Builds the FieldsV1 form of one path; reusing the parser keeps one representation.
    let mut v = json!({});
    for pe in path.iter().rev() {
        let key = match pe {
            PathElem::Field(f) => format!("f:{f}"),
            PathElem::Key(k) => format!("k:{k}"),
            PathElem::Value(x) => format!("v:{x}"),
            PathElem::Index(i) => format!("i:{i}"),
        };
        let mut m = Map::new();
        m.insert(key, v);
        v = Value::Object(m);
    }
    v
}

/// Records an Update by `manager` that turned `old` into `new`, writing `new`'s managedFields.
pub fn track_update(scope: &Scope<'_>, old: Option<&Value>, new: &mut Value, manager: &str) {
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    // A client that sends managedFields different from the stored ones replaces them.
    let mut entries = match (
        old.map(read_entries),
        new.pointer("/metadata/managedFields"),
    ) {
        (Some(o), Some(sent)) if old_v.pointer("/metadata/managedFields") != Some(sent) => {
            let _ = o;
            read_entries(new)
        }
        (None, Some(_)) => read_entries(new),
        (Some(o), _) => o,
        (None, None) => Vec::new(),
    };
    let cmp = compare(old_v, new, scope);
    let is_self = |e: &Entry| {
        e.manager == manager && e.operation == "Update" && e.subresource == scope.subresource
    };
    for e in entries.iter_mut() {
        if !is_self(e) {
            e.set = e.set.difference(&cmp.changed);
        }
        e.set = e.set.difference(&cmp.removed);
    }
    if !cmp.changed.is_empty() {
        let api_version = scope.rt.api_version(scope.version);
        match entries.iter_mut().find(|e| is_self(e)) {
            Some(e) => {
                e.set = e.set.union(&cmp.changed);
                e.time = now();
                e.api_version = api_version;
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version,
                time: now(),
                subresource: scope.subresource.into(),
                set: cmp.changed,
            }),
        }
    }
    entries.retain(|e| !e.set.is_empty());
    write_entries(new, &entries);
}

fn merge(live: &mut Value, applied: &Value, cur: &Cursor<'_>, resource: &str) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if !cur.atomic_map() => {
            for (k, av) in a {
                let c = cur.field(k, resource);
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, &c, resource),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match cur.list_type() {
            ListType::Map(keys) => {
                let ic = cur.item();
                let key = |v: &Value| item_key(v, &keys).map(|k| format!("{k:?}"));
                *l = merge_ordered(l, a, &key, &mut |lv, av| match lv {
                    Some(mut lv) => {
                        merge(&mut lv, av, &ic, resource);
                        lv
                    }
                    None => av.clone(),
                });
            }
            ListType::Set => {
                let key = |v: &Value| Some(v.to_string());
                *l = merge_ordered(l, a, &key, &mut |lv, av| lv.unwrap_or_else(|| av.clone()));
            }
            ListType::Atomic => *l = a.clone(),
        },
        (live, applied) => *live = applied.clone(),
    }
}

/// Merges the items of an associative list in structured-merge-diff's order: items of both
/// lists follow the applied order, items only in the live list keep their place relative to
/// them, and new applied items appear where the applied list has them.
fn merge_ordered(
    live: &[Value],
    applied: &[Value],
    key: &dyn Fn(&Value) -> Option<String>,
    combine: &mut dyn FnMut(Option<Value>, &Value) -> Value,
) -> Vec<Value> {
    // Items without a key cannot be matched: they are kept (live) or appended (applied).
    let lhs: Vec<(String, &Value)> = live.iter().filter_map(|v| key(v).map(|k| (k, v))).collect();
    let rhs: Vec<(String, &Value)> = applied
        .iter()
        .filter_map(|v| key(v).map(|k| (k, v)))
        .collect();
    let in_rhs = |k: &str| rhs.iter().any(|(x, _)| x == k);
    let lhs_item = |k: &str| lhs.iter().find(|(x, _)| x == k).map(|(_, v)| (*v).clone());
    let mut shared = rhs
        .iter()
        .filter(|(k, _)| lhs.iter().any(|(x, _)| x == k))
        .map(|(k, _)| k.clone());
    let mut next_shared = shared.next();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            if lhs[li].0 == rhs[ri].0 {
                out.push(combine(Some(lhs[li].1.clone()), rhs[ri].1));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs(&lhs[li].0) && next_shared.as_deref().is_some_and(|n| n != lhs[li].0) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() && !in_rhs(&lhs[li].0) {
            out.push(lhs[li].1.clone());
            li += 1;
            continue;
        }
        if ri < rhs.len() {
            let (k, av) = &rhs[ri];
            out.push(combine(lhs_item(k), av));
            ri += 1;
            if next_shared.as_deref() == Some(k.as_str()) {
                next_shared = shared.next();
            }
        } else {
            // Only already-merged shared items remain on the live side.
            li += 1;
        }
    }
    out.extend(live.iter().filter(|v| key(v).is_none()).cloned());
    out.extend(applied.iter().filter(|v| key(v).is_none()).cloned());
    out
}

fn manager_label(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if !e.subresource.is_empty() {
        s.push_str(&format!(" with subresource {:?}", e.subresource));
    }
    if e.operation == "Update" {
        s.push_str(&format!(" using {}", e.api_version));
    }
    s
}

fn conflict_error(conflicts: &[(String, Vec<Vec<PathElem>>)]) -> ApiError {
    let total: usize = conflicts.iter().map(|(_, p)| p.len()).sum();
    let mut causes = Vec::new();
    for (m, paths) in conflicts {
        for p in paths {
            causes.push(json!({"type": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": path_string(p)}));
        }
    }
    let message = if total == 1 {
        let (m, p) = conflicts
            .iter()
            .find_map(|(m, ps)| ps.first().map(|p| (m, p)))
            .map(|(m, p)| (m.as_str(), path_string(p)))
            .unwrap_or_default();
        format!("Apply failed with 1 conflict: conflict with {m}: {p}")
    } else {
        let mut lines = Vec::new();
        let mut sorted: Vec<_> = conflicts.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (m, paths) in sorted {
            lines.push(format!("conflicts with {m}:"));
            for p in paths {
                lines.push(format!("- {}", path_string(p)));
            }
        }
        format!("Apply failed with {total} conflicts: {}", lines.join("\n"))
    };
    ApiError::apply_conflict(message, causes)
}

/// Server-side apply of `applied` by `manager` onto `live` (None: the object is new). Returns the
/// object to store, with managedFields.
pub fn apply(
    scope: &Scope<'_>,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let cur = scope.cursor();
    let resource = scope.rt.resource.as_str();
    let applied_t = trackable(applied, scope);
    let set_a = FieldSet::of(&applied_t, &cur, resource);
    let mut entries = live.map(read_entries).unwrap_or_default();
    let base = match live {
        Some(l) => std::borrow::Cow::Borrowed(l),
        None => {
            let mut b = json!({"metadata": {}});
            for k in ["apiVersion", "kind"] {
                if let Some(v) = applied.get(k) {
                    b[k] = v.clone();
                }
            }
            std::borrow::Cow::Owned(b)
        }
    };
    let base: &Value = &base;
    let mut new = base.clone();
    // Only the tracked part of the applied configuration merges in: status is not applied
    // through the main resource, nor spec through /status.
    let mut to_merge = applied_t;
    if let (Some(m), Some(meta)) = (to_merge.as_object_mut(), applied.get("metadata")) {
        let mut meta = meta.clone();
        if let Some(mm) = meta.as_object_mut() {
            mm.retain(|k, _| {
                k == "name"
                    || k == "namespace"
                    || k == "labels"
                    || k == "annotations"
                    || k == "finalizers"
                    || k == "ownerReferences"
                    || k == "generateName"
            });
        }
        m.insert("metadata".into(), meta);
    }
    merge(&mut new, &to_merge, &cur, resource);

    let is_self = |e: &Entry| {
        e.manager == manager && e.operation == "Apply" && e.subresource == scope.subresource
    };
    let cmp = compare(base, &new, scope);
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_self(e)) {
        let c = e.set.intersection(&cmp.changed);
        if !c.is_empty() {
            conflicts.push((
                manager_label(e),
                c.paths(),
                e.manager.clone(),
                e.operation.clone(),
                e.subresource.clone(),
            ));
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let list: Vec<(String, Vec<Vec<PathElem>>)> =
                conflicts.into_iter().map(|c| (c.0, c.1)).collect();
            return Err(conflict_error(&list));
        }
        for e in entries.iter_mut().filter(|e| !is_self(e)) {
            e.set = e.set.difference(&cmp.changed);
        }
    }

    // Remove what this manager applied before and dropped, unless another manager owns it.
    let last = entries
        .iter()
        .find(|e| is_self(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !is_self(e))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.set));
    let dropped = last.difference(&set_a);
    let mut removal: Vec<Vec<PathElem>> = dropped
        .paths()
        .into_iter()
        .filter(|p| !others.contains(p) && !others.has_children(p))
        .collect();
    removal.sort_by_key(Vec::len);
    let tracked_root = |p: &[PathElem]| -> bool {
        match p.first() {
            Some(PathElem::Field(f)) if f == "status" => {
                scope.subresource == "status" || !scope.rt.status
            }
            _ => scope.subresource != "status",
        }
    };
    for p in removal.iter().filter(|p| tracked_root(p)) {
        remove_at(&mut new, p);
    }
    prune_empty_parents(&mut new, &removal);

    // Nothing removed leaves `new` as compared above.
    let after = if removal.is_empty() {
        cmp
    } else {
        compare(base, &new, scope)
    };
    for e in entries.iter_mut() {
        e.set = e.set.difference(&after.removed);
    }
    let api_version = scope.rt.api_version(scope.version);
    match entries.iter_mut().find(|e| is_self(e)) {
        Some(e) => {
            e.set = set_a;
            e.time = now();
            e.api_version = api_version;
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version,
            time: now(),
            subresource: scope.subresource.into(),
            set: set_a,
        }),
    }
    entries.retain(|e| !e.set.is_empty());
    write_entries(&mut new, &entries);
    Ok(new)
}

/// After removing fields, maps left empty by the removal (e.g. `labels: {}` when the last
/// applied label is dropped) are removed too, as SMD does.
fn prune_empty_parents(obj: &mut Value, removed: &[Vec<PathElem>]) {
    for p in removed {
        for cut in (1..p.len()).rev() {
            let parent = &p[..cut];
            let empty =
                get_at(obj, parent).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
            if empty && matches!(parent.last(), Some(PathElem::Field(_))) {
                remove_at(obj, parent);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn deploy_scope(reg: &Registry) -> std::sync::Arc<ResourceType> {
        reg.lookup("apps", "v1", "deployments")
            .expect("deployments")
    }

    fn cfg(replicas: i64, label: Option<&str>) -> Value {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": replicas}});
        if let Some(l) = label {
            v["metadata"]["labels"] = json!({ l: "1" });
        }
        v
    }

    #[test]
    fn a_second_manager_changing_an_owned_field_conflicts_unless_forced() {
        let reg = Registry::new();
        let rt = deploy_scope(&reg);
        let scope = Scope {
            rt: &rt,
            version: "v1",
            subresource: "",
        };
        let a = apply(&scope, None, &cfg(1, None), "a", false).expect("first apply");
        let err = apply(&scope, Some(&a), &cfg(2, None), "b", false).expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
        let forced = apply(&scope, Some(&a), &cfg(2, None), "b", true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 2);
        let owners: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(owners, ["b"]);
    }

    #[test]
    fn the_same_value_from_two_managers_is_shared_without_conflict() {
        let reg = Registry::new();
        let rt = deploy_scope(&reg);
        let scope = Scope {
            rt: &rt,
            version: "v1",
            subresource: "",
        };
        let a = apply(&scope, None, &cfg(1, None), "a", false).expect("a");
        let b = apply(&scope, Some(&a), &cfg(1, None), "b", false).expect("b");
        assert_eq!(
            b["metadata"]["managedFields"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_field_dropped_by_its_only_manager_is_removed() {
        let reg = Registry::new();
        let rt = deploy_scope(&reg);
        let scope = Scope {
            rt: &rt,
            version: "v1",
            subresource: "",
        };
        let a = apply(&scope, None, &cfg(1, Some("x")), "a", false).expect("a");
        assert!(a.pointer("/metadata/labels/x").is_some());
        let a2 = apply(&scope, Some(&a), &cfg(1, None), "a", false).expect("a again");
        assert!(a2.pointer("/metadata/labels").is_none());
    }

    #[test]
    fn merged_lists_follow_the_applied_order_and_keep_live_only_items_in_place() {
        let v = |s: &[&str]| s.iter().map(|x| json!({"name": x})).collect::<Vec<_>>();
        let key = |x: &Value| x.get("name").map(Value::to_string);
        let names = |l: Vec<Value>| {
            l.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        };
        let out = merge_ordered(
            &v(&["a", "x", "b"]),
            &v(&["b", "c", "a"]),
            &key,
            &mut |l, a| l.unwrap_or_else(|| a.clone()),
        );
        assert_eq!(names(out), ["x", "b", "c", "a"]);
        let out = merge_ordered(&v(&["a", "b"]), &v(&["b", "a"]), &key, &mut |l, a| {
            l.unwrap_or_else(|| a.clone())
        });
        assert_eq!(names(out), ["b", "a"]);
    }

    #[test]
    fn an_update_takes_ownership_of_what_it_changed() {
        let reg = Registry::new();
        let rt = deploy_scope(&reg);
        let scope = Scope {
            rt: &rt,
            version: "v1",
            subresource: "",
        };
        let a = apply(&scope, None, &cfg(1, None), "a", false).expect("a");
        let mut edited = a.clone();
        edited["spec"]["replicas"] = json!(3);
        track_update(&scope, Some(&a), &mut edited, "kubectl-edit");
        let err = apply(&scope, Some(&edited), &cfg(1, None), "a", false).expect_err("conflict");
        assert!(
            err.message
                .contains("conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"),
            "{}",
            err.message
        );
    }
}
