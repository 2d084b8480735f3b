//! What server-side apply and strategic merge patch need to know of a type's shape: which
//! lists are associative (and by which keys), which are sets, which maps are atomic, and which
//! objects are structs rather than free-form maps.
//!
//! Built-in types use a table of the Kubernetes API's list markers (`+listType`,
//! `+listMapKey`, `+patchMergeKey`, `+structType=atomic`) for the commonly used fields; CRDs
//! use their `openAPIV3Schema` (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`). Anything not known is treated as SMD's deduced type does: lists
//! atomic, maps granular.

use serde_json::Value;

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars, merged by value.
    Set,
    /// A map keyed by these fields of its items.
    Map(Vec<String>),
}

/// A position in a type's schema while walking an object.
#[derive(Debug, Clone)]
pub enum Cursor<'a> {
    /// A built-in type (or a CRD's metadata): the field names from the root; `[]` marks a
    /// list item.
    Builtin {
        /// The plural resource, for fields whose shape depends on the kind.
        resource: &'a str,
        /// The path so far.
        path: Vec<&'a str>,
    },
    /// A CRD schema node (`None` below a node that declares nothing) and its depth.
    Crd(Option<&'a Value>, usize),
}

const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "stringData",
    "binaryData",
    "nodeSelector",
    "matchLabels",
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "parameters",
];

fn container_list(name: &str) -> bool {
    matches!(
        name,
        "containers" | "initContainers" | "ephemeralContainers"
    )
}

impl<'a> Cursor<'a> {
    /// The root of a type; `schema` is the CRD version's openAPIV3Schema, if any.
    pub fn root(resource: &'a str, schema: Option<&'a Value>, builtin: bool) -> Self {
        if builtin {
            Cursor::Builtin {
                resource,
                path: Vec::new(),
            }
        } else {
            Cursor::Crd(schema, 0)
        }
    }

    /// The field `name` of this object.
    pub fn field(&self, name: &'a str, resource: &'a str) -> Self {
        match self {
            Cursor::Builtin { resource, path } => {
                let mut path = path.clone();
                path.push(name);
                Cursor::Builtin { resource, path }
            }
            Cursor::Crd(node, depth) => {
                // Metadata follows ObjectMeta, not the CRD's schema.
                if *depth == 0 && name == "metadata" {
                    return Cursor::Builtin {
                        resource,
                        path: vec!["metadata"],
                    };
                }
                let next = node.and_then(|n| {
                    n.get("properties")
                        .and_then(|p| p.get(name))
                        .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
                });
                Cursor::Crd(next, depth + 1)
            }
        }
    }

    /// The items of this list.
    pub fn item(&self) -> Self {
        match self {
            Cursor::Builtin { resource, path } => {
                let mut path = path.clone();
                path.push("[]");
                Cursor::Builtin { resource, path }
            }
            Cursor::Crd(node, depth) => Cursor::Crd(node.and_then(|n| n.get("items")), depth + 1),
        }
    }

    /// How the list here merges.
    pub fn list_type(&self) -> ListType {
        match self {
            Cursor::Builtin { resource, path } => builtin_list_type(resource, path),
            Cursor::Crd(node, _) => {
                let Some(n) = node else {
                    return ListType::Atomic;
                };
                match n.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => ListType::Map(
                        n.get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|k| k.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    _ => ListType::Atomic,
                }
            }
        }
    }

    /// Whether the object here is replaced as a whole.
    pub fn atomic_map(&self) -> bool {
        match self {
            Cursor::Builtin { resource, path } => {
                let last = path.last().copied().unwrap_or("");
                matches!(
                    last,
                    "podSelector" | "namespaceSelector" | "labelSelector" | "nodeSelectorTerms"
                ) || (last == "selector" && *resource != "services" && path.len() == 2)
            }
            Cursor::Crd(node, _) => {
                node.and_then(|n| n.get("x-kubernetes-map-type"))
                    .and_then(Value::as_str)
                    == Some("atomic")
            }
        }
    }

    /// Whether the keys of the object here are declared struct fields (not members of their
    /// own in a field set) rather than free-form map keys.
    pub fn is_struct(&self) -> bool {
        match self {
            Cursor::Builtin { path, .. } => {
                let last = path.last().copied().unwrap_or("");
                !(MAP_FIELDS.contains(&last) || (last == "selector" && path.len() == 2))
            }
            Cursor::Crd(node, _) => node
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty()),
        }
    }

    /// The strategic-merge-patch merge key of the list here, and whether its items are
    /// primitives merged as a set (`finalizers`).
    pub fn patch_merge_key(&self) -> Option<String> {
        match self.list_type() {
            ListType::Map(keys) => keys.first().cloned(),
            _ => None,
        }
    }
}

fn builtin_list_type(resource: &str, path: &[&str]) -> ListType {
    let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    let last = path.last().copied().unwrap_or("");
    let in_container = path.iter().rev().skip(1).any(|p| container_list(p));
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => keys(&["name"]),
        "env" if in_container => keys(&["name"]),
        "ports" if in_container => keys(&["containerPort", "protocol"]),
        "ports" if resource == "services" && path == ["spec", "ports"] => {
            keys(&["port", "protocol"])
        }
        "volumes" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumeDevices" => keys(&["devicePath"]),
        "hostAliases" => keys(&["ip"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        "conditions" if path.first() == Some(&"status") => keys(&["type"]),
        "finalizers" if path == ["metadata", "finalizers"] => ListType::Set,
        "ownerReferences" => keys(&["uid"]),
        "secrets" if resource == "serviceaccounts" => keys(&["name"]),
        _ => ListType::Atomic,
    }
}

/// The value a missing list-map key defaults to in the Kubernetes schema (`protocol: TCP`).
pub fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ports_are_keyed_by_port_and_protocol() {
        let c = Cursor::root("deployments", None, true);
        let ports = c
            .field("spec", "deployments")
            .field("template", "deployments")
            .field("spec", "deployments")
            .field("containers", "deployments")
            .item()
            .field("ports", "deployments");
        assert_eq!(
            ports.list_type(),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
    }

    #[test]
    fn crd_list_markers_are_read_from_the_schema() {
        let schema = serde_json::json!({"properties": {"spec": {"properties": {"items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]}}}}});
        let c = Cursor::root("things", Some(&schema), false)
            .field("spec", "things")
            .field("items", "things");
        assert_eq!(c.list_type(), ListType::Map(vec!["id".into()]));
    }
}
