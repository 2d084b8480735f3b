//! Discovery documents: `/version`, legacy `/api` and `/apis` lists, and aggregated discovery
//! (`apidiscovery.k8s.io/v2`), as kube-apiserver v1.32 serves them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{ResourceType, version_priority};

/// The media type of aggregated discovery v2 responses.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-kubesim", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64"
    })
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Groups in discovery order (core first, then by name) with versions by priority.
fn groups(types: &[Arc<ResourceType>]) -> Vec<(String, Vec<String>)> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in types {
        let vs = map.entry(t.group.clone()).or_default();
        for v in &t.versions {
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
    }
    map.into_iter()
        .map(|(g, mut vs)| {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
            (g, vs)
        })
        .collect()
}

fn gv(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api` (legacy form).
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": gv(group, v), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis` (legacy form).
pub fn api_group_list(types: &[Arc<ResourceType>]) -> Value {
    let groups: Vec<Value> = groups(types)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group(types: &[Arc<ResourceType>], name: &str) -> Option<Value> {
    groups(types)
        .into_iter()
        .find(|(g, _)| g == name)
        .map(|(g, vs)| {
            let mut v = api_group(&g, &vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
    {
        let mut r = json!({
            "name": t.resource, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind, "verbs": VERBS,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status {
            resources.push(json!({"name": format!("{}/status", t.resource), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
        }
        if t.scale {
            resources.push(json!({"name": format!("{}/scale", t.resource), "singularName": "", "namespaced": t.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(group, version), "resources": resources}),
    )
}

fn aggregated_resource(t: &ResourceType, version: &str) -> Value {
    let kind = json!({"group": t.group, "version": version, "kind": t.kind});
    let mut r = json!({
        "resource": t.resource, "responseKind": kind, "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular, "verbs": VERBS,
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let mut subs = Vec::new();
    if t.status {
        subs.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
    }
    if t.scale {
        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
    }
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// Aggregated discovery for the core group (`/api`) or every other group (`/apis`).
pub fn aggregated(types: &[Arc<ResourceType>], core: bool) -> Value {
    let items: Vec<Value> = groups(types)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let rs: Vec<Value> = types
                        .iter()
                        .filter(|t| t.group == g && t.versions.iter().any(|x| x == v))
                        .map(|t| aggregated_resource(t, v))
                        .collect();
                    json!({"version": v, "resources": rs, "freshness": "Current"})
                })
                .collect();
            let meta = if g.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": g, "creationTimestamp": null})
            };
            json!({"metadata": meta, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The OpenAPI v3 index: one document per group/version.
pub fn openapi_v3_index(types: &[Arc<ResourceType>], generation: u64) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, vs) in groups(types) {
        for v in vs {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={generation:016X}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of a group/version: the PATCH operations (with the parameters
/// kubectl probes for: `fieldValidation`, `dryRun`, `fieldManager`, `force`) and, for CRDs, their
/// schemas. Built-in schemas are not published, so kubectl builds strategic merge patches from
/// its compiled-in types, as it does against servers without them.
pub fn openapi_v3_doc(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let params: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]
        .iter()
        .map(|n| json!({"name": n, "in": "query", "schema": {"type": if *n == "force" { "boolean" } else { "string" }, "uniqueItems": true}}))
        .collect();
    let mut any = false;
    for t in types
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
    {
        any = true;
        let gvk = json!({"group": t.group, "version": version, "kind": t.kind});
        let item = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.resource)
        } else {
            format!("{prefix}/{}/{{name}}", t.resource)
        };
        let schema_name = format!(
            "{}.{}.{}",
            if group.is_empty() {
                "io.k8s.api.core"
            } else {
                group
            },
            version,
            t.kind
        );
        let body = json!({"content": {
            "application/json-patch+json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}},
            "application/merge-patch+json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}},
            "application/apply-patch+yaml": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}},
        }});
        paths.insert(item, json!({
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
            "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": params, "requestBody": body},
        }));
        let mut schema = t.schema(version).cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if !schema.is_object() {
            schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        }
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name, schema);
    }
    any.then(|| json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "components": {"schemas": schemas}}))
}
