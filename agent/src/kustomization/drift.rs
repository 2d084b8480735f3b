//! Whether a live object differs from what applying would make of it, and where.
//!
//! As Flux does, the reconciler compares the object in the cluster with the result of a
//! server-side dry-run apply: equal means the apply would change nothing, so the object is
//! skipped (a no-op reconcile writes nothing but status). Fields the server owns and that
//! change on every write (`resourceVersion`, `managedFields`, `generation`, timestamps) and
//! `status` are left out of the comparison.

use serde_json::{Map, Value};

const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// The object without the fields that do not tell whether an apply would change it.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in SERVER_METADATA {
                metadata.remove(*key);
            }
        }
    }
    object
}

/// Whether applying would change the live object (`dry_run` is the server's answer).
pub fn has_drifted(live: &Value, dry_run: &Value) -> bool {
    comparable(live) != comparable(dry_run)
}

/// The fields (as `.a.b[0].c`) whose value differs between `live` and `dry_run`, sorted.
pub fn changed_fields(live: &Value, dry_run: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(
        &comparable(live),
        &comparable(dry_run),
        &mut String::new(),
        &mut out,
    );
    out.sort();
    out
}

fn diff(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => diff_maps(a, b, path, out),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                diff(x, y, path, out);
                path.truncate(len);
            }
        }
        _ if a == b => {}
        _ => out.push(if path.is_empty() {
            ".".into()
        } else {
            path.clone()
        }),
    }
}

fn diff_maps(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    path: &mut String,
    out: &mut Vec<String>,
) {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let len = path.len();
        path.push('.');
        path.push_str(key);
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => diff(x, y, path, out),
            _ => out.push(path.clone()),
        }
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_bookkeeping_and_status_are_not_drift() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "7", "managedFields": [1], "generation": 3}, "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        let dry = json!({"metadata": {"name": "a", "resourceVersion": "8", "generation": 4}, "spec": {"replicas": 2}});
        assert!(!has_drifted(&live, &dry));
        assert!(changed_fields(&live, &dry).is_empty());
    }

    #[test]
    fn changed_added_and_removed_fields_are_named_by_path() {
        let live = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 5, "template": {"containers": [{"image": "b"}]}}});
        let dry = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2, "paused": false, "template": {"containers": [{"image": "a"}]}}});
        assert!(has_drifted(&live, &dry));
        assert_eq!(
            changed_fields(&live, &dry),
            [
                ".metadata.labels",
                ".spec.paused",
                ".spec.replicas",
                ".spec.template.containers[0].image"
            ]
        );
    }
}
