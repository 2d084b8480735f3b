//! The pure half of a Kustomization reconcile: which objects to apply in which stage and
//! order, which to prune, and the inventory to record. The actor carries the plan out.
//!
//! Orders and stages are Flux's (`fluxcd/pkg/ssa`): CRDs, Namespaces and ClusterRoles are
//! applied first and waited for, then `*Class` kinds, then everything else in Flux's kind
//! order; pruning goes in the reverse order.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use api::conditions::annotations;
use api::inventory::{ObjectId, ResourceInventory, ResourceRef};
use serde_json::Value;

/// Kinds applied before all others, in this order; unlisted kinds come after them.
const FIRST_KINDS: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterClass",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "VolumeSnapshotClass",
    "IngressClass",
    "GatewayClass",
    "ClusterRoleBinding",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// Kinds applied after all others: webhooks last, so they cannot block the objects they
/// would admit.
const LAST_KINDS: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Why a set of objects cannot be planned; nothing is applied then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An object lacks apiVersion, kind or metadata.name.
    #[error("object {index} is not a Kubernetes object: missing {missing}")]
    NotAnObject { index: usize, missing: &'static str },
    /// The same object appears twice in the build output.
    #[error("duplicate object {id}")]
    Duplicate { id: String },
}

/// An object from the build, with its identity read once.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub id: ObjectId,
    pub api_version: String,
    pub object: Value,
}

/// The stages of an apply, each applied (and, for the first two, waited for) before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// CRDs, Namespaces and ClusterRoles: other objects depend on them existing.
    ClusterDefinitions,
    /// Kinds named `*Class` (StorageClass, IngressClass, ...).
    ClassDefinitions,
    /// Everything else.
    Resources,
}

/// Objects to apply, grouped by stage, each stage in Flux's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyPlan {
    pub stages: Vec<(Stage, Vec<DesiredObject>)>,
}

impl ApplyPlan {
    /// Every object in apply order.
    pub fn objects(&self) -> impl Iterator<Item = &DesiredObject> {
        self.stages.iter().flat_map(|(_, objects)| objects.iter())
    }

    /// The inventory this plan leaves once applied: every object, in apply order.
    pub fn inventory(&self) -> ResourceInventory {
        ResourceInventory {
            entries: self
                .objects()
                .map(|o| ResourceRef::new(&o.id, &o.api_version))
                .collect(),
        }
    }
}

impl DesiredObject {
    /// Reads the identity of one object of the build output.
    pub fn from_value(object: Value, index: usize) -> Result<Self, PlanError> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let api_version = text("/apiVersion").ok_or(PlanError::NotAnObject {
            index,
            missing: "apiVersion",
        })?;
        let kind = text("/kind").ok_or(PlanError::NotAnObject {
            index,
            missing: "kind",
        })?;
        let name = text("/metadata/name").ok_or(PlanError::NotAnObject {
            index,
            missing: "metadata.name",
        })?;
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g.to_string())
            .unwrap_or_default();
        let namespace = text("/metadata/namespace").unwrap_or_default();
        Ok(Self {
            id: ObjectId {
                namespace,
                name,
                group,
                kind,
            },
            api_version,
            object,
        })
    }

    /// The stage this object is applied in.
    pub fn stage(&self) -> Stage {
        let kind = self.id.kind.as_str();
        let is_crd = kind == "CustomResourceDefinition" && self.id.group == "apiextensions.k8s.io";
        let is_namespace = kind == "Namespace" && self.api_version == "v1";
        let is_cluster_role = kind == "ClusterRole" && self.id.group == "rbac.authorization.k8s.io";
        if is_crd || is_namespace || is_cluster_role {
            Stage::ClusterDefinitions
        } else if kind.ends_with("Class") {
            Stage::ClassDefinitions
        } else {
            Stage::Resources
        }
    }

    /// The value of one of Flux's annotations (or labels, which Flux also honours).
    fn flux_marker(&self, key: &str) -> Option<&str> {
        marker(&self.object, key)
    }
}

fn marker<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    ["annotations", "labels"].iter().find_map(|field| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
    })
}

/// Flux's rank of a kind: negative for the first kinds, 0 for the rest, positive for the last.
fn kind_rank(kind: &str) -> i32 {
    if let Some(i) = FIRST_KINDS.iter().position(|k| *k == kind) {
        return i as i32 - FIRST_KINDS.len() as i32;
    }
    LAST_KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as i32 + 1)
}

/// Flux's apply order: kind rank, then group, kind, namespace and name.
pub fn apply_order(a: &ObjectId, b: &ObjectId) -> Ordering {
    kind_rank(&a.kind)
        .cmp(&kind_rank(&b.kind))
        .then_with(|| a.group.cmp(&b.group))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| a.namespace.cmp(&b.namespace))
        .then_with(|| a.name.cmp(&b.name))
}

/// Groups the build output into stages in apply order; duplicates are refused.
pub fn plan_apply(objects: Vec<Value>) -> Result<ApplyPlan, PlanError> {
    let mut desired = objects
        .into_iter()
        .enumerate()
        .map(|(index, object)| DesiredObject::from_value(object, index))
        .collect::<Result<Vec<_>, _>>()?;
    desired.sort_by(|a, b| {
        a.stage()
            .cmp(&b.stage())
            .then_with(|| apply_order(&a.id, &b.id))
    });
    let mut seen = BTreeSet::new();
    for object in &desired {
        if !seen.insert(&object.id) {
            return Err(PlanError::Duplicate {
                id: object.id.to_string(),
            });
        }
    }
    let mut plan = ApplyPlan::default();
    for object in desired {
        match plan.stages.last_mut() {
            Some((stage, objects)) if *stage == object.stage() => objects.push(object),
            _ => plan.stages.push((object.stage(), vec![object])),
        }
    }
    Ok(plan)
}

/// How the apply treats one object, from its Flux annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyPolicy {
    /// Server-side apply, correcting drift.
    Apply,
    /// Create the object when missing, never change it after (`ssa: IfNotPresent`).
    IfNotPresent,
    /// Leave the object alone (`ssa: Ignore` or `reconcile: disabled`).
    Skip,
}

/// The policy an object asks for.
pub fn apply_policy(object: &DesiredObject) -> ApplyPolicy {
    if object.flux_marker(annotations::RECONCILE) == Some("disabled") {
        return ApplyPolicy::Skip;
    }
    match object.flux_marker(annotations::SSA) {
        Some("Ignore" | "ignore") => ApplyPolicy::Skip,
        Some("IfNotPresent" | "ifnotpresent") => ApplyPolicy::IfNotPresent,
        _ => ApplyPolicy::Apply,
    }
}

/// Entries of the previous inventory that the new build no longer has, in prune order
/// (the reverse of apply order, so that e.g. a Namespace goes after what it holds).
pub fn prune_candidates(
    previous: &ResourceInventory,
    desired: &ApplyPlan,
) -> Vec<(ObjectId, String)> {
    let keep: BTreeSet<&ObjectId> = desired.objects().map(|o| &o.id).collect();
    let mut stale: Vec<(ObjectId, String)> = previous
        .entries
        .iter()
        .filter_map(|entry| entry.object_id().ok().map(|id| (id, entry.v.clone())))
        .filter(|(id, _)| !keep.contains(id))
        .collect();
    stale.sort_by(|(a, _), (b, _)| {
        stage_of_id(b)
            .cmp(&stage_of_id(a))
            .then_with(|| apply_order(b, a))
    });
    stale
}

fn stage_of_id(id: &ObjectId) -> Stage {
    let probe = DesiredObject {
        id: id.clone(),
        api_version: if id.group.is_empty() {
            "v1".into()
        } else {
            format!("{}/v1", id.group)
        },
        object: Value::Null,
    };
    probe.stage()
}

/// Whether the object found in the cluster may be deleted by pruning.
pub fn may_prune(live: &Value) -> bool {
    marker(live, annotations::PRUNE) != Some("disabled")
        && marker(live, annotations::RECONCILE) != Some("disabled")
        && !matches!(marker(live, annotations::SSA), Some("Ignore" | "ignore"))
}

/// Labels every applied object carries, naming the Kustomization that owns it.
pub fn owner_labels(
    kustomization_name: &str,
    kustomization_namespace: &str,
) -> [(String, String); 2] {
    [
        (
            "kustomize.toolkit.fluxcd.io/name".to_string(),
            kustomization_name.to_string(),
        ),
        (
            "kustomize.toolkit.fluxcd.io/namespace".to_string(),
            kustomization_namespace.to_string(),
        ),
    ]
}

/// Adds the owner labels to an object (creating `metadata.labels` if needed).
pub fn set_owner_labels(
    object: &mut Value,
    kustomization_name: &str,
    kustomization_namespace: &str,
) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    if let Some(labels) = labels.as_object_mut() {
        for (key, value) in owner_labels(kustomization_name, kustomization_namespace) {
            labels.insert(key, Value::String(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(api_version: &str, kind: &str, namespace: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}})
    }

    fn order(plan: &ApplyPlan) -> Vec<String> {
        plan.objects()
            .map(|o| format!("{}/{}", o.id.kind, o.id.name))
            .collect()
    }

    #[test]
    fn definitions_then_classes_then_resources_in_flux_kind_order() {
        let plan = plan_apply(vec![
            object("apps/v1", "Deployment", "web", "app"),
            object("networking.k8s.io/v1", "Ingress", "web", "app"),
            object("v1", "Service", "web", "app"),
            object("networking.k8s.io/v1", "IngressClass", "", "nginx"),
            object("v1", "Namespace", "", "web"),
            object(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                "widgets.example.com",
            ),
            object(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "",
                "hook",
            ),
            object("v1", "ConfigMap", "web", "config"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            order(&plan),
            [
                "CustomResourceDefinition/widgets.example.com",
                "Namespace/web",
                "IngressClass/nginx",
                "ConfigMap/config",
                "Service/app",
                "Deployment/app",
                "Ingress/app",
                "ValidatingWebhookConfiguration/hook",
            ]
        );
        let stages: Vec<Stage> = plan.stages.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            stages,
            [
                Stage::ClusterDefinitions,
                Stage::ClassDefinitions,
                Stage::Resources
            ]
        );
    }

    #[test]
    fn duplicates_and_nameless_objects_are_refused() {
        let twice = vec![
            object("v1", "ConfigMap", "a", "x"),
            object("v1", "ConfigMap", "a", "x"),
        ];
        assert!(matches!(
            plan_apply(twice),
            Err(PlanError::Duplicate { .. })
        ));
        let nameless = vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})];
        assert_eq!(
            plan_apply(nameless),
            Err(PlanError::NotAnObject {
                index: 0,
                missing: "metadata.name"
            })
        );
    }

    #[test]
    fn objects_that_left_the_build_are_pruned_in_reverse_order() {
        let before = plan_apply(vec![
            object("v1", "Namespace", "", "old"),
            object("apps/v1", "Deployment", "old", "app"),
            object("v1", "ConfigMap", "old", "config"),
            object("v1", "ConfigMap", "web", "kept"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let after = plan_apply(vec![object("v1", "ConfigMap", "web", "kept")])
            .unwrap_or_else(|e| panic!("{e}"));
        let pruned: Vec<String> = prune_candidates(&before.inventory(), &after)
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(
            pruned,
            [
                "old_app_apps_Deployment",
                "old_config__ConfigMap",
                "_old__Namespace"
            ]
        );
    }

    #[test]
    fn inventory_records_ids_and_versions_in_apply_order() {
        let plan = plan_apply(vec![
            object("apps/v1", "Deployment", "web", "app"),
            object("v1", "Namespace", "", "web"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let entries: Vec<(String, String)> = plan
            .inventory()
            .entries
            .into_iter()
            .map(|e| (e.id, e.v))
            .collect();
        assert_eq!(
            entries,
            [
                ("_web__Namespace".into(), "v1".into()),
                ("web_app_apps_Deployment".into(), "v1".into())
            ]
        );
    }

    #[test]
    fn flux_annotations_decide_apply_and_prune() {
        let mut ignored = object("v1", "ConfigMap", "a", "x");
        ignored["metadata"]["annotations"] = json!({"kustomize.toolkit.fluxcd.io/ssa": "Ignore"});
        let desired =
            DesiredObject::from_value(ignored.clone(), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(apply_policy(&desired), ApplyPolicy::Skip);
        assert!(!may_prune(&ignored));
        let mut kept = object("v1", "ConfigMap", "a", "y");
        kept["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/prune": "disabled"});
        assert!(!may_prune(&kept));
        assert!(may_prune(&object("v1", "ConfigMap", "a", "z")));
    }

    #[test]
    fn owner_labels_are_added_without_losing_existing_ones() {
        let mut value = object("v1", "ConfigMap", "a", "x");
        value["metadata"]["labels"] = json!({"app": "web"});
        set_owner_labels(&mut value, "apps", "flux-system");
        assert_eq!(value["metadata"]["labels"]["app"], "web");
        assert_eq!(
            value["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"],
            "apps"
        );
        assert_eq!(
            value["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"],
            "flux-system"
        );
    }
}
