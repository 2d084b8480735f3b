//! Field sets as structured-merge-diff models them, and their `FieldsV1` wire form.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::schema::{Cursor, ListType, key_default};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElem {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// An associative-list item by its key fields, canonical JSON: `k:{"name":"x"}`.
    Key(String),
    /// A set item by value, JSON: `v:"x"`.
    Value(String),
    /// A list item by index (only where an item has no key): `i:0`.
    Index(usize),
}

impl PathElem {
    fn wire(&self) -> String {
        match self {
            Self::Field(f) => format!("f:{f}"),
            Self::Key(k) => format!("k:{k}"),
            Self::Value(v) => format!("v:{v}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        let (p, rest) = s.split_at_checked(2)?;
        match p {
            "f:" => Some(Self::Field(rest.into())),
            "k:" => Some(Self::Key(rest.into())),
            "v:" => Some(Self::Value(rest.into())),
            "i:" => rest.parse().ok().map(Self::Index),
            _ => None,
        }
    }
}

/// A path as structured-merge-diff prints it in conflict messages: `.spec.containers[name="x"].image`.
pub fn path_string(path: &[PathElem]) -> String {
    let mut s = String::new();
    for pe in path {
        match pe {
            PathElem::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElem::Key(k) => {
                let obj: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = obj.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push('[');
                s.push_str(&parts.join(","));
                s.push(']');
            }
            PathElem::Value(v) => s.push_str(&format!("[={v}]")),
            PathElem::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A set of field paths, as a tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElem, FieldSet>,
}

impl FieldSet {
    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// The fields an object sets, per its type's shape.
    pub fn of(value: &Value, cursor: &Cursor<'_>, resource: &str) -> Self {
        let mut set = FieldSet::default();
        walk(value, cursor, resource, &mut set);
        set
    }

    #[cfg(test)]
    fn insert(&mut self, path: &[PathElem]) {
        match path.split_first() {
            None => self.member = true,
            Some((pe, rest)) => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[PathElem]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((pe, rest)) => self.children.get(pe).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Every member path.
    pub fn paths(&self) -> Vec<Vec<PathElem>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElem>, out: &mut Vec<Vec<PathElem>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Members of both sets.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.add(other);
        out
    }

    /// Adds the members of `other` (and only the nodes on their paths).
    fn add(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (pe, c) in &other.children {
            if !c.is_empty() {
                self.children.entry(pe.clone()).or_default().add(c);
            }
        }
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        self.without(Some(other)).unwrap_or_default()
    }

    /// The members of `self` not in `other`, `None` when there are none. Set operations walk
    /// both trees at once instead of testing every path from the root.
    fn without(&self, other: Option<&FieldSet>) -> Option<FieldSet> {
        let mut out = FieldSet {
            member: self.member && !other.is_some_and(|o| o.member),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if let Some(rest) = c.without(other.and_then(|o| o.children.get(pe))) {
                out.children.insert(pe.clone(), rest);
            }
        }
        (out.member || !out.children.is_empty()).then_some(out)
    }

    /// Members of both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        self.common(other).unwrap_or_default()
    }

    fn common(&self, other: &FieldSet) -> Option<FieldSet> {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if let Some(both) = other.children.get(pe).and_then(|o| c.common(o)) {
                out.children.insert(pe.clone(), both);
            }
        }
        (out.member || !out.children.is_empty()).then_some(out)
    }

    /// Whether `path` has members below it in this set.
    pub fn has_children(&self, path: &[PathElem]) -> bool {
        match path.split_first() {
            None => !self.children.is_empty(),
            Some((pe, rest)) => self.children.get(pe).is_some_and(|c| c.has_children(rest)),
        }
    }

    /// The `FieldsV1` JSON.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, c) in &self.children {
            if !c.is_empty() {
                m.insert(pe.wire(), c.to_fields_v1());
            }
        }
        Value::Object(m)
    }

    /// Parses `FieldsV1` JSON; unknown entries are skipped.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Some(m) = v.as_object() {
            for (k, c) in m {
                if k == "." {
                    set.member = true;
                    continue;
                }
                let Some(pe) = PathElem::from_wire(k) else {
                    continue;
                };
                let mut child = FieldSet::from_fields_v1(c);
                if c.as_object().is_some_and(Map::is_empty) {
                    child.member = true;
                }
                set.children.insert(pe, child);
            }
        }
        set
    }
}

/// The key path element of an associative-list item, if it has every key (or its default).
pub fn item_key(item: &Value, keys: &[String]) -> Option<PathElem> {
    let mut obj = BTreeMap::new();
    for k in keys {
        let v = item.get(k).cloned().or_else(|| key_default(k))?;
        obj.insert(k.clone(), v);
    }
    serde_json::to_string(&obj).ok().map(PathElem::Key)
}

fn walk(value: &Value, cursor: &Cursor<'_>, resource: &str, set: &mut FieldSet) {
    match value {
        Value::Object(obj) => {
            if cursor.atomic_map() {
                set.member = true;
                return;
            }
            let is_struct = cursor.is_struct();
            for (k, v) in obj {
                let c = cursor.field(k, resource);
                let child = set.children.entry(PathElem::Field(k.clone())).or_default();
                walk(v, &c, resource, child);
                let empty = v.is_null() || v.as_object().is_some_and(Map::is_empty);
                if empty || !is_struct {
                    child.member = true;
                }
            }
        }
        Value::Array(items) => match cursor.list_type() {
            ListType::Atomic => set.member = true,
            ListType::Set => {
                for it in items {
                    let pe = PathElem::Value(it.to_string());
                    set.children.entry(pe).or_default().member = true;
                }
            }
            ListType::Map(keys) => {
                let ic = cursor.item();
                for (i, it) in items.iter().enumerate() {
                    let pe = item_key(it, &keys).unwrap_or(PathElem::Index(i));
                    let child = set.children.entry(pe).or_default();
                    walk(it, &ic, resource, child);
                    child.member = true;
                }
            }
        },
        _ => set.member = true,
    }
}

fn item_matches(item: &Value, pe: &PathElem) -> bool {
    match pe {
        PathElem::Key(k) => {
            let Ok(obj) = serde_json::from_str::<Map<String, Value>>(k) else {
                return false;
            };
            obj.iter()
                .all(|(k, v)| item.get(k).cloned().or_else(|| key_default(k)).as_ref() == Some(v))
        }
        PathElem::Value(v) => serde_json::from_str::<Value>(v).is_ok_and(|v| &v == item),
        _ => false,
    }
}

/// The value at `path`.
pub fn get_at<'v>(value: &'v Value, path: &[PathElem]) -> Option<&'v Value> {
    let Some((pe, rest)) = path.split_first() else {
        return Some(value);
    };
    let next = match (pe, value) {
        (PathElem::Field(f), Value::Object(m)) => m.get(f)?,
        (PathElem::Index(i), Value::Array(a)) => a.get(*i)?,
        (pe, Value::Array(a)) => a.iter().find(|it| item_matches(it, pe))?,
        _ => return None,
    };
    get_at(next, rest)
}

/// Removes the value at `path`, if present.
pub fn remove_at(value: &mut Value, path: &[PathElem]) {
    let Some((pe, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match (pe, value) {
            (PathElem::Field(f), Value::Object(m)) => {
                m.shift_remove(f);
            }
            (PathElem::Index(i), Value::Array(a)) if *i < a.len() => {
                a.remove(*i);
            }
            (pe, Value::Array(a)) => a.retain(|it| !item_matches(it, pe)),
            _ => {}
        }
        return;
    }
    let next = match (pe, value) {
        (PathElem::Field(f), Value::Object(m)) => m.get_mut(f),
        (PathElem::Index(i), Value::Array(a)) => a.get_mut(*i),
        (pe, Value::Array(a)) => a.iter_mut().find(|it| item_matches(it, pe)),
        _ => None,
    };
    if let Some(next) = next {
        remove_at(next, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_set(v: &Value) -> FieldSet {
        FieldSet::of(v, &Cursor::root("deployments", None, true), "deployments")
    }

    #[test]
    fn fields_v1_marks_list_items_and_leaves_like_the_apiserver() {
        let v = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let f = deployment_set(&v).to_fields_v1();
        assert_eq!(
            f,
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&f), deployment_set(&v));
    }

    #[test]
    fn paths_print_as_in_conflict_messages() {
        let p = vec![
            PathElem::Field("spec".into()),
            PathElem::Field("containers".into()),
            PathElem::Key("{\"name\":\"web\"}".into()),
            PathElem::Field("image".into()),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"web\"].image");
    }

    #[test]
    fn values_are_found_and_removed_by_key() {
        let mut v = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        let p = vec![
            PathElem::Field("spec".into()),
            PathElem::Field("containers".into()),
            PathElem::Key("{\"name\":\"a\"}".into()),
        ];
        assert_eq!(
            get_at(&v, &p).and_then(|c| c.get("image")),
            Some(&json!("x"))
        );
        remove_at(&mut v, &p);
        assert_eq!(v, json!({"spec": {"containers": [{"name": "b"}]}}));
    }

    #[test]
    fn set_operations_keep_exactly_the_member_paths() {
        let a = deployment_set(&json!({"metadata": {"labels": {"app": "web", "tier": "x"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "a", "ports": [{"containerPort": 80}]}, {"name": "side", "image": "s"}]}}}}));
        let b = deployment_set(&json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"paused": true, "template": {"spec": {"containers": [{"name": "web", "image": "b"}]}}}}));
        let rebuilt = |paths: Vec<Vec<PathElem>>| {
            let mut set = FieldSet::default();
            for p in paths {
                set.insert(&p);
            }
            set
        };
        let (pa, pb) = (a.paths(), b.paths());
        let only = |x: &[Vec<PathElem>], keep: &dyn Fn(&Vec<PathElem>) -> bool| {
            rebuilt(x.iter().filter(|p| keep(p)).cloned().collect())
        };
        assert_eq!(a.difference(&b), only(&pa, &|p| !b.contains(p)));
        assert_eq!(b.difference(&a), only(&pb, &|p| !a.contains(p)));
        assert_eq!(a.intersection(&b), only(&pa, &|p| b.contains(p)));
        assert_eq!(
            a.union(&b),
            rebuilt(pa.iter().chain(&pb).cloned().collect())
        );
        assert!(a.difference(&a).is_empty() && a.difference(&a) == FieldSet::default());
    }
}
