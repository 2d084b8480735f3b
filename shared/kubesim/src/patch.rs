//! The four patch types kube-apiserver takes (apply is in [`crate::ssa`]): JSON patch, JSON
//! merge patch, and strategic merge patch for built-in types with their merge keys and
//! directives (`$patch`, `$retainKeys`, `$setElementOrder/`, `$deleteFromPrimitiveList/`).

use serde_json::{Map, Value};

use crate::schema::{Cursor, ListType};
use crate::status::ApiError;

/// RFC 6902.
pub fn json_patch(target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let p: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = target.clone();
    json_patch::patch(&mut out, &p).map_err(|e| {
        // kube-apiserver reports failed operations (missing paths, failed tests) as 422.
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("the server rejected our request due to an error in our request: {e}"),
            details: None,
            retry_after: None,
        }
    })?;
    Ok(out)
}

/// RFC 7386.
pub fn merge_patch(target: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !p.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: a merge patch must be an object",
        ));
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, &p);
    Ok(out)
}

/// Strategic merge patch onto a built-in object.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &[u8],
    cursor: &Cursor<'_>,
    resource: &str,
) -> Result<Value, ApiError> {
    let p: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !p.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: a strategic merge patch must be an object",
        ));
    }
    let mut out = target.clone();
    smp_object(&mut out, &p, cursor, resource)?;
    Ok(out)
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|x| x.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn smp_object(o: &mut Value, p: &Value, cur: &Cursor<'_>, resource: &str) -> Result<(), ApiError> {
    let Some(pm) = p.as_object() else {
        *o = p.clone();
        return Ok(());
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *o = strip_directives(p);
            return Ok(());
        }
        Some("delete") => {
            *o = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(ApiError::bad_request(format!(
                "Unknown patch type: {other}"
            )));
        }
        _ => {}
    }
    if !o.is_object() {
        *o = Value::Object(Map::new());
    }
    let mut orders = Vec::new();
    for (k, pv) in pm {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), pv.clone()));
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (o.get_mut(field), pv.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let c = cur.field(k, resource);
        let Some(om) = o.as_object_mut() else { break };
        if pv.is_null() {
            om.shift_remove(k);
            continue;
        }
        match om.get_mut(k) {
            Some(ov) => smp_value(ov, pv, &c, resource)?,
            None => {
                let mut fresh = Value::Null;
                smp_value(&mut fresh, pv, &c, resource)?;
                om.insert(k.clone(), fresh);
            }
        }
    }
    if let Some(keys) = pm.get("$retainKeys").and_then(Value::as_array)
        && let Some(om) = o.as_object_mut()
    {
        om.retain(|k, _| keys.iter().any(|x| x.as_str() == Some(k)));
    }
    for (field, order) in orders {
        let c = cur.field(&field, resource);
        if let (Some(Value::Array(list)), Some(order)) = (o.get_mut(&field), order.as_array()) {
            reorder(list, order, c.patch_merge_key().as_deref());
        }
    }
    Ok(())
}

fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let pos = |item: &Value| {
        order.iter().position(|o| match key {
            Some(k) => o.get(k).is_some() && o.get(k) == item.get(k),
            None => o == item,
        })
    };
    list.sort_by_key(|item| pos(item).unwrap_or(usize::MAX));
}

fn smp_value(o: &mut Value, p: &Value, cur: &Cursor<'_>, resource: &str) -> Result<(), ApiError> {
    match p {
        Value::Object(_) => {
            if cur.atomic_map() {
                *o = strip_directives(p);
                Ok(())
            } else {
                smp_object(o, p, cur, resource)
            }
        }
        Value::Array(items) => {
            let ltype = cur.list_type();
            let replace = items
                .iter()
                .any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace"));
            if replace || !o.is_array() {
                *o = strip_directives(p);
                return Ok(());
            }
            let Some(list) = o.as_array_mut() else {
                return Ok(());
            };
            match ltype {
                ListType::Map(keys) => {
                    let Some(mk) = keys.first() else {
                        *o = strip_directives(p);
                        return Ok(());
                    };
                    let ic = cur.item();
                    for it in items {
                        let Some(kv) = it.get(mk) else {
                            return Err(ApiError::bad_request(format!(
                                "map: {it} does not contain declared merge key: {mk}"
                            )));
                        };
                        let idx = list.iter().position(|x| x.get(mk) == Some(kv));
                        if it.get("$patch").and_then(Value::as_str) == Some("delete") {
                            list.retain(|x| x.get(mk) != Some(kv));
                            continue;
                        }
                        match idx {
                            Some(i) => smp_object(&mut list[i], it, &ic, resource)?,
                            None => list.push(strip_directives(it)),
                        }
                    }
                }
                ListType::Set => {
                    for it in items {
                        if !list.contains(it) {
                            list.push(it.clone());
                        }
                    }
                }
                ListType::Atomic => *o = strip_directives(p),
            }
            Ok(())
        }
        other => {
            *o = other.clone();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Cursor<'static> {
        Cursor::root("deployments", None, true)
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let o = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]}, {"name": "b", "image": "y"}]}}}});
        let p = br#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"x2","env":[{"name":"B","value":"2"}]}]}}}}"#;
        let r = strategic_merge_patch(&o, p, &deploy(), "deployments").expect("patch");
        let cs = &r["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "x2");
        assert_eq!(cs[0]["env"].as_array().map(Vec::len), Some(2));
        assert_eq!(cs[1]["name"], "b");
    }

    #[test]
    fn patch_delete_directive_removes_a_list_item() {
        let o =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}});
        let p = br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"}],"containers":[{"$patch":"delete","name":"a"}]}}}}"#;
        let r = strategic_merge_patch(&o, p, &deploy(), "deployments").expect("patch");
        assert_eq!(
            r["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b"}])
        );
    }

    #[test]
    fn merge_patch_null_deletes_a_field() {
        let r = merge_patch(&json!({"a": 1, "b": 2}), br#"{"a":null}"#).expect("patch");
        assert_eq!(r, json!({"b": 2}));
    }
}
