//! Resources ([`Object`]) and their identity (group/version/kind, name, namespace).

use std::fmt;

use crate::yaml::Node;

/// Group, version and kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        Gvk {
            group,
            version,
            kind: kind.to_string(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this GVK matches a selector whose empty fields match anything.
    pub fn is_selected_by(&self, sel: &Gvk) -> bool {
        (sel.group.is_empty() || sel.group == self.group)
            && (sel.version.is_empty() || sel.version == self.version)
            && (sel.kind.is_empty() || sel.kind == self.kind)
    }

    /// kyaml's `EffectiveNamespace` of an object of this kind in `namespace`: none means
    /// `default`, and cluster-scoped kinds have none at all.
    pub(crate) fn effective_namespace<'a>(&self, namespace: &'a str) -> &'a str {
        if self.is_cluster_scoped() {
            "_non_namespaceable_"
        } else if namespace.is_empty() {
            "default"
        } else {
            namespace
        }
    }

    /// Built-in kinds Kubernetes serves without a namespace.
    pub fn is_cluster_scoped(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "APIService"
                | "CertificateSigningRequest"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "ComponentStatus"
                | "CSIDriver"
                | "CSINode"
                | "CustomResourceDefinition"
                | "FlowSchema"
                | "IngressClass"
                | "MutatingWebhookConfiguration"
                | "Namespace"
                | "Node"
                | "PersistentVolume"
                | "PodSecurityPolicy"
                | "PriorityClass"
                | "PriorityLevelConfiguration"
                | "RuntimeClass"
                | "SelfSubjectAccessReview"
                | "SelfSubjectRulesReview"
                | "StorageClass"
                | "SubjectAccessReview"
                | "TokenReview"
                | "ValidatingWebhookConfiguration"
                | "VolumeAttachment"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        )
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |s: &str, d: &'static str| {
            if s.is_empty() {
                d.to_string()
            } else {
                s.to_string()
            }
        };
        write!(
            f,
            "{}.{}.{}",
            or(&self.kind, "[noKind]"),
            or(&self.version, "[noVer]"),
            or(&self.group, "[noGrp]")
        )
    }
}

/// A resource's identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResId {
    pub gvk: Gvk,
    pub name: String,
    pub namespace: String,
}

fn ns_norm(ns: &str) -> &str {
    if ns == "default" { "" } else { ns }
}

impl ResId {
    /// Same GVK and name, namespaces equal with `default` meaning none.
    pub fn equals(&self, o: &ResId) -> bool {
        self.gvk == o.gvk
            && self.name == o.name
            && ns_norm(&self.namespace) == ns_norm(&o.namespace)
    }

    pub fn ns_equals(&self, o: &ResId) -> bool {
        ns_norm(&self.namespace) == ns_norm(&o.namespace)
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "[noName]"
        } else {
            &self.name
        };
        let ns = if self.namespace.is_empty() {
            "[noNs]"
        } else {
            &self.namespace
        };
        write!(f, "{}/{}.{}", self.gvk, name, ns)
    }
}

/// How a generated object combines with one of the same name from a base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Behavior {
    #[default]
    Create,
    Merge,
    Replace,
}

/// One Kubernetes object being built, with the history kustomize keeps to fix references.
#[derive(Clone, Debug)]
pub struct Object {
    /// The object itself (a mapping).
    pub node: Node,
    /// Its id when first read or generated.
    pub(crate) org_id: ResId,
    /// Ids it had before renames (prefix, suffix, namespace, hash).
    pub(crate) prev_ids: Vec<ResId>,
    pub(crate) prefixes: Vec<String>,
    pub(crate) suffixes: Vec<String>,
    /// Generated with a name that still needs its content hash.
    pub(crate) needs_hash: bool,
    pub(crate) behavior: Behavior,
}

impl Object {
    pub(crate) fn new(node: Node) -> Object {
        let mut o = Object {
            node,
            org_id: ResId::default(),
            prev_ids: Vec::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            needs_hash: false,
            behavior: Behavior::Create,
        };
        o.org_id = o.cur_id();
        o
    }

    pub fn api_version(&self) -> &str {
        self.node.str_at(&["apiVersion"]).unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.node.str_at(&["kind"]).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.node.str_at(&["metadata", "name"]).unwrap_or("")
    }

    pub fn namespace(&self) -> &str {
        self.node.str_at(&["metadata", "namespace"]).unwrap_or("")
    }

    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(self.api_version(), self.kind())
    }

    pub fn cur_id(&self) -> ResId {
        ResId {
            gvk: self.gvk(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }

    /// Current id plus all earlier ones.
    pub(crate) fn all_ids(&self) -> impl Iterator<Item = ResId> + '_ {
        self.prev_ids
            .iter()
            .cloned()
            .chain(std::iter::once(self.cur_id()))
    }

    pub(crate) fn store_previous_id(&mut self) {
        let mut id = self.cur_id();
        if id.gvk.is_cluster_scoped() {
            id.namespace.clear();
        } else if id.namespace.is_empty() {
            id.namespace = "default".into();
        }
        self.prev_ids.push(id);
    }

    pub(crate) fn set_name(&mut self, name: &str) {
        if let Some(meta) = self.node.entry_map("metadata") {
            meta.set("name", Node::str(name));
        }
    }

    pub(crate) fn set_namespace(&mut self, ns: &str) {
        if let Some(meta) = self.node.entry_map("metadata") {
            meta.set("namespace", Node::str(ns));
        }
    }

    /// A string map under metadata (labels or annotations) as kyaml's `GetLabels` reads it:
    /// each value's text as written (`null` stays "null"), collections as "".
    pub(crate) fn meta_map(&self, field: &str) -> Vec<(String, String)> {
        self.node
            .get_path(&["metadata", field])
            .and_then(Node::as_map)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// kyaml's `GetValue`: a scalar's text, `""` for null and for collections.
pub(crate) fn get_value(n: &Node) -> String {
    match n {
        Node::Scalar(s) if s.tag != crate::yaml::Tag::Null => s.value.clone(),
        _ => String::new(),
    }
}

/// A mapping read into a string map as kyaml's `GetDataMap`/`GetLabels` do (values through
/// [`get_value`]); anything else reads as empty.
pub(crate) fn string_map(n: Option<&Node>) -> Vec<(String, String)> {
    n.and_then(Node::as_map)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), get_value(v))).collect())
        .unwrap_or_default()
}
