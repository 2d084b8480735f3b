//! Server-side printing: `meta.k8s.io/v1` Tables, as `kubectl get` asks for them.

use serde_json::{Value, json};

use crate::meta::age;
use crate::registry::{Column, ResourceType};

fn col(name: &str, type_: &str, format: &str, priority: i64) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: format.into(),
        description: String::new(),
        priority,
        json_path: String::new(),
    }
}

/// The column definitions of a type.
pub fn columns(rt: &ResourceType, version: &str) -> Vec<Column> {
    let name = col("Name", "string", "name", 0);
    let age_col = col("Age", "string", "", 0);
    if !rt.builtin {
        let custom = rt.columns(version).unwrap_or_default();
        if custom.is_empty() {
            return vec![name, age_col];
        }
        let mut v = vec![name];
        v.extend(custom.iter().cloned());
        return v;
    }
    let mut v = vec![name];
    let s = |n: &str| col(n, "string", "", 0);
    match rt.resource.as_str() {
        "namespaces" => v.push(s("Status")),
        "deployments" => {
            v.extend([
                s("Ready"),
                col("Up-to-date", "integer", "", 0),
                col("Available", "integer", "", 0),
                age_col.clone(),
                col("Containers", "string", "", 1),
                col("Images", "string", "", 1),
                col("Selector", "string", "", 1),
            ]);
            return v;
        }
        "statefulsets" => v.push(s("Ready")),
        "replicasets" => v.extend([
            col("Desired", "integer", "", 0),
            col("Current", "integer", "", 0),
            col("Ready", "integer", "", 0),
        ]),
        "daemonsets" => v.extend([
            col("Desired", "integer", "", 0),
            col("Current", "integer", "", 0),
            col("Ready", "integer", "", 0),
            col("Up-to-date", "integer", "", 0),
            col("Available", "integer", "", 0),
        ]),
        "pods" => v.extend([s("Ready"), s("Status"), col("Restarts", "string", "", 0)]),
        "services" => v.extend([s("Type"), s("Cluster-IP"), s("External-IP"), s("Port(s)")]),
        "configmaps" => v.push(col("Data", "integer", "", 0)),
        "secrets" => v.extend([s("Type"), col("Data", "integer", "", 0)]),
        "jobs" => v.extend([s("Status"), s("Completions"), s("Duration")]),
        "nodes" => {
            v.extend([s("Status"), s("Roles"), age_col.clone(), s("Version")]);
            return v;
        }
        "serviceaccounts" => v.push(col("Secrets", "integer", "", 0)),
        "persistentvolumeclaims" => v.extend([
            s("Status"),
            s("Volume"),
            s("Capacity"),
            s("Access Modes"),
            s("StorageClass"),
        ]),
        "endpoints" => v.push(s("Endpoints")),
        "leases" => v.push(s("Holder")),
        "rolebindings" | "clusterrolebindings" => v.push(s("Role")),
        "roles" | "clusterroles" => {
            v.push(col("Created At", "date", "", 0));
            return v;
        }
        "customresourcedefinitions" => {
            v.push(col("Created At", "date", "", 0));
            return v;
        }
        _ => {}
    }
    v.push(age_col);
    v
}

fn int(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn text(obj: &Value, ptr: &str) -> String {
    obj.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn builtin_cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    let name = json!(text(obj, "/metadata/name"));
    let a = json!(age(obj));
    let containers = |o: &Value| -> (String, String) {
        let cs = o
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let names: Vec<String> = cs.iter().map(|c| text(c, "/name")).collect();
        let images: Vec<String> = cs.iter().map(|c| text(c, "/image")).collect();
        (names.join(","), images.join(","))
    };
    match rt.resource.as_str() {
        "namespaces" => vec![name, json!(text(obj, "/status/phase")), a],
        "deployments" => {
            let (c, i) = containers(obj);
            let sel = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(obj, "/status/readyReplicas"),
                    obj.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(int(obj, "/status/updatedReplicas")),
                json!(int(obj, "/status/availableReplicas")),
                a,
                json!(c),
                json!(i),
                json!(sel),
            ]
        }
        "statefulsets" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(obj, "/status/readyReplicas"),
                obj.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )),
            a,
        ],
        "replicasets" => vec![
            name,
            json!(
                obj.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            ),
            json!(int(obj, "/status/replicas")),
            json!(int(obj, "/status/readyReplicas")),
            a,
        ],
        "daemonsets" => vec![
            name,
            json!(int(obj, "/status/desiredNumberScheduled")),
            json!(int(obj, "/status/currentNumberScheduled")),
            json!(int(obj, "/status/numberReady")),
            json!(int(obj, "/status/updatedNumberScheduled")),
            json!(int(obj, "/status/numberAvailable")),
            a,
        ],
        "pods" => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            let ready = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
                        .count()
                })
                .unwrap_or(0);
            let phase = obj
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending");
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(phase),
                json!("0"),
                a,
            ]
        }
        "services" => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{}:{np}/{proto}", int(p, "/port")),
                                None => format!("{}/{proto}", int(p, "/port")),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let external = if ty == "LoadBalancer" {
                "<pending>"
            } else {
                "<none>"
            };
            let ports = if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            };
            vec![
                name,
                json!(ty),
                json!(text(obj, "/spec/clusterIP")),
                json!(external),
                json!(ports),
                a,
            ]
        }
        "configmaps" => {
            let n = ["data", "binaryData"]
                .iter()
                .map(|k| {
                    obj.get(*k)
                        .and_then(Value::as_object)
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum::<usize>();
            vec![name, json!(n), a]
        }
        "secrets" => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0);
            vec![
                name,
                json!(obj.get("type").and_then(Value::as_str).unwrap_or("Opaque")),
                json!(n),
                a,
            ]
        }
        "jobs" => {
            let complete = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Complete")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                });
            let failed = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Failed")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                });
            let status = if complete {
                "Complete"
            } else if failed {
                "Failed"
            } else {
                "Running"
            };
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                name,
                json!(status),
                json!(format!("{}/{completions}", int(obj, "/status/succeeded"))),
                json!(""),
                a,
            ]
        }
        "customresourcedefinitions" | "roles" | "clusterroles" => {
            vec![name, json!(text(obj, "/metadata/creationTimestamp"))]
        }
        "nodes" => {
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| {
                    c.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                })
                .and_then(|c| c.get("status").and_then(Value::as_str))
                == Some("True");
            let roles: Vec<&str> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            let roles = if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            };
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(roles),
                a,
                json!(text(obj, "/status/nodeInfo/kubeletVersion")),
            ]
        }
        "serviceaccounts" => vec![
            name,
            json!(
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map(Vec::len)
                    .unwrap_or(0)
            ),
            a,
        ],
        "persistentvolumeclaims" => {
            let modes: Vec<String> = obj
                .pointer("/status/accessModes")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(|m| match m {
                            "ReadWriteOnce" => "RWO".to_string(),
                            "ReadOnlyMany" => "ROX".to_string(),
                            "ReadWriteMany" => "RWX".to_string(),
                            "ReadWriteOncePod" => "RWOP".to_string(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(
                    obj.pointer("/status/phase")
                        .and_then(Value::as_str)
                        .unwrap_or("Pending")
                ),
                json!(text(obj, "/spec/volumeName")),
                json!(
                    obj.pointer("/status/capacity/storage")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
                json!(modes.join(",")),
                json!(
                    obj.pointer("/spec/storageClassName")
                        .and_then(Value::as_str)
                        .unwrap_or("<unset>")
                ),
                a,
            ]
        }
        "endpoints" => {
            let eps: Vec<String> = obj
                .get("subsets")
                .and_then(Value::as_array)
                .map(|subsets| {
                    subsets
                        .iter()
                        .flat_map(|ss| {
                            let ips: Vec<String> = ss
                                .get("addresses")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().map(|x| text(x, "/ip")).collect())
                                .unwrap_or_default();
                            let ports: Vec<i64> = ss
                                .get("ports")
                                .and_then(Value::as_array)
                                .map(|p| p.iter().map(|x| int(x, "/port")).collect())
                                .unwrap_or_default();
                            ips.into_iter().flat_map(move |ip| {
                                ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(if eps.is_empty() {
                    "<none>".to_string()
                } else {
                    eps.join(",")
                }),
                a,
            ]
        }
        "leases" => vec![name, json!(text(obj, "/spec/holderIdentity")), a],
        "rolebindings" | "clusterrolebindings" => vec![
            name,
            json!(format!(
                "{}/{}",
                text(obj, "/roleRef/kind"),
                text(obj, "/roleRef/name")
            )),
            a,
        ],
        _ => vec![name, a],
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `[n]`, `[?(@.k=="v")]`.
pub fn json_path<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            if !field.is_empty() {
                cur = cur.get(field)?;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, v) = filter.split_once("==")?;
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur.as_array()?.iter().find(|it| {
                    it.get(k.trim()).is_some_and(|x| {
                        x.as_str().map(|s| s == v).unwrap_or_else(|| {
                            serde_json::from_str::<Value>(v).ok().as_ref() == Some(x)
                        })
                    })
                })?;
            } else {
                cur = cur.as_array()?.get(inner.parse::<usize>().ok()?)?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

/// The cells of one object.
pub fn cells(rt: &ResourceType, version: &str, obj: &Value) -> Vec<Value> {
    if rt.builtin {
        return builtin_cells(rt, obj);
    }
    let name = json!(text(obj, "/metadata/name"));
    let custom = rt.columns(version).unwrap_or_default();
    if custom.is_empty() {
        return vec![name, json!(age(obj))];
    }
    let mut v = vec![name];
    for c in custom {
        let cell = match json_path(obj, &c.json_path) {
            None => Value::Null,
            Some(x) if c.type_ == "date" => {
                let mut tmp = json!({"metadata": {}});
                tmp["metadata"]["creationTimestamp"] = x.clone();
                json!(age(&tmp))
            }
            Some(Value::Array(a)) if c.type_ == "string" => json!(
                a.iter()
                    .map(|x| x
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Some(Value::Object(_)) if c.type_ == "string" => json!(
                json_path(obj, &c.json_path)
                    .map(Value::to_string)
                    .unwrap_or_default()
            ),
            Some(x) => x.clone(),
        };
        v.push(cell);
    }
    v
}

/// One Table row; `include` is the `includeObject` parameter (None, Metadata, Object).
pub fn row(rt: &ResourceType, version: &str, obj: &Value, include: &str) -> Value {
    let object = match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
        }
    };
    json!({"cells": cells(rt, version, obj), "object": object})
}

/// The column definitions in Table form.
pub fn column_definitions(rt: &ResourceType, version: &str) -> Value {
    Value::Array(
        columns(rt, version)
            .into_iter()
            .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect(),
    )
}

/// A Table of objects.
pub fn table(
    rt: &ResourceType,
    version: &str,
    objs: &[Value],
    metadata: Value,
    include: &str,
    headers: bool,
) -> Value {
    let rows: Vec<Value> = objs.iter().map(|o| row(rt, version, o, include)).collect();
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "rows": rows});
    if headers {
        t["columnDefinitions"] = column_definitions(rt, version);
    } else {
        t["columnDefinitions"] = Value::Null;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_filters_conditions_by_type() {
        let o = json!({"status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True", "message": "ok"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(&json!("Other"))
        );
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }
}
