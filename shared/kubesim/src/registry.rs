//! The resource types the server knows: built-in kinds and those of Established CRDs.

use std::sync::{Arc, RwLock};

use serde_json::Value;

/// One additional printer column of a CRD version.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header, e.g. `Ready`.
    pub name: String,
    /// OpenAPI type: string, integer, number, boolean, date.
    pub type_: String,
    /// Format hint passed through to the Table.
    pub format: String,
    /// Description passed through to the Table.
    pub description: String,
    /// 0 shows in the default view, more only with `-o wide`.
    pub priority: i64,
    /// A JSONPath into the object.
    pub json_path: String,
}

/// A served resource: its names, scope, versions and subresources.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// Served versions, the preferred one first.
    pub versions: Vec<String>,
    /// The version objects are stored at, when it is not the preferred one (CRDs).
    pub storage: Option<String>,
    /// Plural resource name used in paths.
    pub resource: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (then the main resource ignores status changes).
    pub status: bool,
    /// Whether `/scale` is a subresource.
    pub scale: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Printer columns per version (CRDs only).
    pub columns: Vec<(String, Vec<Column>)>,
    /// `openAPIV3Schema` per version (CRDs only).
    pub schemas: Vec<(String, Value)>,
    /// False for types defined by a CRD.
    pub builtin: bool,
}

impl ResourceType {
    /// The group/version string for a version of this type.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The group objects are stored under: events.k8s.io Events share the core Events' storage.
    pub fn storage_group(&self) -> &str {
        if self.group == "events.k8s.io" && self.resource == "events" {
            ""
        } else {
            &self.group
        }
    }

    /// Whether objects are converted from the core Event form when served.
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.resource == "events"
    }

    /// The version objects are stored at.
    pub fn storage_version(&self) -> &str {
        self.storage
            .as_deref()
            .or(self.versions.first().map(String::as_str))
            .unwrap_or("v1")
    }

    /// The CRD schema of a version, if any.
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, s)| s)
    }

    /// The printer columns of a version (CRDs only).
    pub fn columns(&self, version: &str) -> Option<&[Column]> {
        self.columns
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, c)| c.as_slice())
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    generation: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        resource,
        kind,
        namespaced,
        short,
        all: false,
        status: false,
        scale: false,
        generation: false,
    }
}

impl Builtin {
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
}

// The types of issue 3, with the scope, short names, categories and subresources that
// kube-apiserver v1.32 reports for them.
const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false, &["ns"]).status(),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    b("", "v1", "secrets", "Secret", true, &[]),
    b("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    b("", "v1", "services", "Service", true, &["svc"])
        .all()
        .status(),
    b("", "v1", "endpoints", "Endpoints", true, &["ep"]),
    b("", "v1", "events", "Event", true, &["ev"]),
    b("", "v1", "pods", "Pod", true, &["po"]).all().status(),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
    )
    .status(),
    b("", "v1", "nodes", "Node", false, &["no"]).status(),
    b(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        true,
        &["quota"],
    )
    .status(),
    b("", "v1", "limitranges", "LimitRange", true, &["limits"]),
    b(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
    )
    .status(),
    b("", "v1", "podtemplates", "PodTemplate", true, &[]),
    b(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
        &["rc"],
    )
    .all()
    .status()
    .scale()
    .generation(),
    b("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        .all()
        .status()
        .scale()
        .generation(),
    b("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
        .all()
        .status()
        .scale()
        .generation(),
    b("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"])
        .all()
        .status()
        .generation(),
    b("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
        .all()
        .status()
        .scale()
        .generation(),
    b(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        true,
        &[],
    ),
    b("batch", "v1", "jobs", "Job", true, &[])
        .all()
        .status()
        .generation(),
    b("batch", "v1", "cronjobs", "CronJob", true, &["cj"])
        .all()
        .status()
        .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
    )
    .status()
    .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
    )
    .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
    )
    .all()
    .status()
    .generation(),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
    )
    .status()
    .generation(),
    b("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
    b(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
        &["pc"],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        &["sc"],
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        &[],
    )
    .generation(),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        &[],
    )
    .generation(),
    b(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        false,
        &[],
    )
    .status(),
    b("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )
    .status()
    .generation(),
];

/// The singular name kube-apiserver derives for built-in types: the lower-cased kind.
fn builtin_type(x: &Builtin) -> ResourceType {
    ResourceType {
        group: x.group.into(),
        versions: vec![x.version.into()],
        storage: None,
        resource: x.resource.into(),
        singular: x.kind.to_lowercase(),
        kind: x.kind.into(),
        namespaced: x.namespaced,
        short_names: x.short.iter().map(|s| s.to_string()).collect(),
        categories: if x.all { vec!["all".into()] } else { vec![] },
        status: x.status,
        scale: x.scale,
        generation: x.generation,
        columns: vec![],
        schemas: vec![],
        builtin: true,
    }
}

/// The resource type a CRD defines, if the CRD is Established and serves a version.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let established = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    if !established || crd.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let strs = |v: &Value, k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = s(names, "kind")?;
    let plural = s(names, "plural")?;
    let mut versions = Vec::new();
    let mut columns = Vec::new();
    let mut schemas = Vec::new();
    let mut status = false;
    let mut scale = false;
    let mut storage = None;
    for v in spec.get("versions")?.as_array()? {
        let Some(name) = s(v, "name") else { continue };
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage = Some(name.clone());
        }
        status |= v.pointer("/subresources/status").is_some();
        scale |= v.pointer("/subresources/scale").is_some();
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(Column {
                            name: s(c, "name")?,
                            type_: s(c, "type").unwrap_or_else(|| "string".into()),
                            format: s(c, "format").unwrap_or_default(),
                            description: s(c, "description").unwrap_or_default(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: s(c, "jsonPath")?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        columns.push((name.clone(), cols));
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schemas.push((name.clone(), schema.clone()));
        }
        versions.push(name);
    }
    if versions.is_empty() {
        return None;
    }
    // kube-apiserver sorts versions by Kubernetes version priority (v2 > v1 > v1beta1 ...).
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    Some(ResourceType {
        group: s(spec, "group")?,
        versions,
        storage,
        singular: s(names, "singular").unwrap_or_else(|| kind.to_lowercase()),
        resource: plural,
        kind,
        namespaced: s(spec, "scope").as_deref() != Some("Cluster"),
        short_names: strs(names, "shortNames"),
        categories: strs(names, "categories"),
        status,
        scale,
        generation: true,
        columns,
        schemas,
        builtin: false,
    })
}

/// Orders versions as Kubernetes does: GA > beta > alpha, higher numbers first, and
/// non-Kubernetes-style names last.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match n.parse::<u64>() {
        Ok(minor) => (level, major, minor),
        Err(_) => (0, 0, 0),
    }
}

/// All served types; rebuilt when CRDs change.
#[derive(Debug, Default)]
pub struct Registry {
    types: RwLock<Arc<Vec<Arc<ResourceType>>>>,
}

impl Registry {
    /// The built-in types only.
    pub fn new() -> Self {
        let r = Self::default();
        r.rebuild(&[]);
        r
    }

    /// Replaces the CRD-defined types by those of `crds`.
    pub fn rebuild(&self, crds: &[Value]) {
        let mut all: Vec<Arc<ResourceType>> =
            BUILTINS.iter().map(|x| Arc::new(builtin_type(x))).collect();
        for crd in crds {
            if let Some(t) = from_crd(crd) {
                // A CRD may not shadow a built-in type.
                if !all
                    .iter()
                    .any(|x| x.group == t.group && x.resource == t.resource)
                {
                    all.push(Arc::new(t));
                }
            }
        }
        if let Ok(mut w) = self.types.write() {
            *w = Arc::new(all);
        }
    }

    /// A snapshot of every type.
    pub fn all(&self) -> Arc<Vec<Arc<ResourceType>>> {
        self.types
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The type served at `group/version/resource`.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .iter()
            .find(|t| {
                t.group == group
                    && t.resource == resource
                    && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// The type of a group and kind (any version), e.g. for owner references.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }

    /// The type of a group and plural resource (any version).
    pub fn by_resource(&self, group: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .iter()
            .find(|t| t.group == group && t.resource == resource)
            .cloned()
    }
}

/// Splits an apiVersion into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_ga_before_beta_before_alpha() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn a_crd_without_established_condition_is_not_served() {
        let crd = serde_json::json!({"spec": {"group": "x.io", "names": {"kind": "A", "plural": "as"}, "scope": "Namespaced", "versions": [{"name": "v1", "served": true, "storage": true}]}});
        assert!(from_crd(&crd).is_none());
    }
}
