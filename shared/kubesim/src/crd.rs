//! CustomResourceDefinition handling: validation, the status the apiextensions controllers
//! write (NamesAccepted, Established), and pruning of fields the schema does not declare.

use serde_json::{Value, json};

use crate::meta::now;
use crate::registry::ResourceType;

/// The finalizer under which the apiextensions controller deletes a CRD's objects.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Adds the field errors kube-apiserver reports for an invalid CRD.
pub fn validate(crd: &Value, causes: &mut Vec<(String, &'static str, String)>) {
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (group, plural, kind) = (
        s("/spec/group"),
        s("/spec/names/plural"),
        s("/spec/names/kind"),
    );
    let name = s("/metadata/name");
    let mut req = |field: &str, v: &str| {
        if v.is_empty() {
            causes.push((
                field.to_string(),
                "FieldValueRequired",
                "Required value".to_string(),
            ));
        }
    };
    req("spec.group", group);
    req("spec.names.plural", plural);
    req("spec.names.kind", kind);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match crd.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Namespaced") | Some("Cluster") => {}
        other => causes.push((
            "spec.scope".into(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                other.unwrap_or_default()
            ),
        )),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(("spec.versions".into(), "FieldValueInvalid", "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): must have exactly one version marked as storage version".into()));
    } else if versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count()
        != 1
    {
        causes.push((
            "spec.versions".into(),
            "FieldValueInvalid",
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
}

fn type_ok(ty: &str, v: &Value, schema: &Value) -> bool {
    match ty {
        "string" => {
            v.is_string()
                || (v.is_number()
                    && schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)))
        }
        "integer" => {
            v.is_i64()
                || v.is_u64()
                || (v.is_string()
                    && schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)))
        }
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn check(schema: &Value, v: &Value, path: &str, causes: &mut Vec<(String, &'static str, String)>) {
    if v.is_null() {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_ok(ty, v, schema)
    {
        let actual = match v {
            Value::String(_) => "string",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            _ => "object",
        };
        causes.push((
            path.to_string(),
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: \"{actual}\": {path} in body must be of type {ty}: \"{actual}\""
            ),
        ));
        return;
    }
    if int_or_string && !(v.is_string() || v.is_number()) {
        causes.push((
            path.to_string(),
            "FieldValueTypeInvalid",
            format!("Invalid value: {v}: {path} in body must be of type integer-or-string"),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        causes.push((
            path.to_string(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::Object(m) => {
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !m.contains_key(req) {
                    let p = if path.is_empty() {
                        req.to_string()
                    } else {
                        format!("{path}.{req}")
                    };
                    causes.push((p, "FieldValueRequired", "Required value".into()));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(cs) = props.and_then(|x| x.get(k)).or(additional) {
                    check(cs, child, &p, causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    check(is, it, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

/// Validates a custom object against its version's structural schema: types, `required` and
/// `enum` (patterns, formats and CEL rules are not evaluated).
pub fn validate_object(
    schema: &Value,
    obj: &Value,
    causes: &mut Vec<(String, &'static str, String)>,
) {
    check(schema, obj, "", causes);
}

fn condition(existing: &Value, ty: &str, reason: &str, message: &str) -> Value {
    let since = existing
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now()));
    json!({"type": ty, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
}

/// Writes the status the apiextensions controllers converge to: names accepted, Established.
pub fn set_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(k.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let conditions = vec![
        condition(crd, "NamesAccepted", "NoConflicts", "no conflicts found"),
        condition(
            crd,
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
    ];
    crd["status"] =
        json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored});
}

fn walk(
    v: &mut Value,
    schema: Option<&Value>,
    path: &str,
    unknown: &mut Vec<String>,
    remove: bool,
) {
    let Some(schema) = schema else { return };
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(cs) => {
                        if let Some(child) = m.get_mut(&k) {
                            walk(child, Some(cs), &child_path, unknown, remove);
                        }
                    }
                    None if preserve
                        || (props.is_none()
                            && additional.is_none()
                            && schema.get("type").is_none()) => {}
                    None => {
                        unknown.push(child_path);
                        if remove {
                            m.shift_remove(&k);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                walk(
                    it,
                    schema.get("items"),
                    &format!("{path}[{i}]"),
                    unknown,
                    remove,
                );
            }
        }
        _ => {}
    }
}

/// Fields of a custom object its version's schema does not declare.
pub fn unknown_fields(rt: &ResourceType, version: &str, obj: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut copy = obj.clone();
    walk(&mut copy, rt.schema(version), "", &mut unknown, false);
    unknown
}

/// Drops undeclared fields, as kube-apiserver prunes custom objects.
pub fn prune(rt: &ResourceType, version: &str, obj: &mut Value) {
    let mut unknown = Vec::new();
    walk(obj, rt.schema(version), "", &mut unknown, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undeclared_fields_are_found_and_pruned_but_preserved_ones_kept() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}, "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
        let crd = json!({"metadata": {"name": "things.x.io"}, "spec": {"group": "x.io", "scope": "Namespaced", "names": {"kind": "Thing", "plural": "things"}, "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]}, "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        let rt = crate::registry::from_crd(&crd).expect("servable");
        let mut obj = json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"a": "1", "b": 2, "free": {"z": 1}}});
        assert_eq!(unknown_fields(&rt, "v1", &obj), ["spec.b"]);
        prune(&rt, "v1", &mut obj);
        assert_eq!(obj["spec"], json!({"a": "1", "free": {"z": 1}}));
    }
}
