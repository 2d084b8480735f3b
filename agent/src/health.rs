//! Object health by kstatus' rules, as Flux's `wait` and `healthChecks` judge it.
//!
//! Generic rules come first for every object: being deleted is `Terminating`; a
//! `status.observedGeneration` behind `metadata.generation` is `InProgress`; a `Stalled=True`
//! condition is `Failed` and `Reconciling=True` is `InProgress`. Then built-in kinds have
//! their own rules (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod, PVC, Service,
//! CRD); any other kind is judged by its `Ready` condition when it has one, and is `Current`
//! when it has none.
//!
//! `spec.healthCheckExprs` replaces all of that for the kinds it names: see [`custom`] for
//! how Flux applies those rules and [`cel`] for what an expression sees and how its cost is
//! bounded.

pub mod cel;
pub mod custom;

use serde_json::Value;

/// What kstatus calls the status of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Reconciled and ready.
    Current,
    /// Still converging; keep waiting.
    InProgress,
    /// Will not converge without a change (e.g. a Deployment past its progress deadline).
    Failed,
    /// Being deleted.
    Terminating,
    /// Could not be judged: a `healthCheckExprs` expression failed to evaluate. Keep waiting;
    /// the message says why.
    Unknown,
}

/// The status of one object and a message saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: HealthStatus,
    pub message: String,
}

impl Health {
    fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn in_progress(message: impl Into<String>) -> Self {
        Self::new(HealthStatus::InProgress, message)
    }

    fn current(message: impl Into<String>) -> Self {
        Self::new(HealthStatus::Current, message)
    }

    fn failed(message: impl Into<String>) -> Self {
        Self::new(HealthStatus::Failed, message)
    }
}

/// How a reconcile judges the objects it waits for: kstatus' rules, and the user's own
/// (`spec.healthCheckExprs`) for the kinds they name.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    custom: custom::CustomRules,
}

/// Why `spec.healthCheckExprs` cannot be used. Messages follow Flux's, naming the entry.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Two entries cover the same group and kind.
    #[error("duplicate custom health check for GroupKind {group_kind} at healthchecks[{index}]")]
    Duplicate { index: usize, group_kind: String },
    /// An expression of an entry is missing or does not compile.
    #[error(
        "failed to create custom status evaluator for healthchecks[{index}] (apiVersion {api_version}, {kind}): {problem}"
    )]
    Invalid {
        index: usize,
        api_version: String,
        /// `kind X`, or `every kind` for an entry without one.
        kind: String,
        #[source]
        problem: custom::ExpressionProblem,
    },
}

impl Rules {
    /// The rules of a Kustomization or HelmRelease with these `healthCheckExprs`; every
    /// expression is compiled here, so a bad one is known before anything is applied.
    pub fn new(checks: &[api::meta::CustomHealthCheck]) -> Result<Self, RulesError> {
        Ok(Rules {
            custom: custom::CustomRules::new(checks)?,
        })
    }

    /// The health of `object` under these rules.
    pub fn judge(&self, object: &Value) -> Health {
        self.custom.judge(object).unwrap_or_else(|| compute(object))
    }
}

/// Computes the health of an object as read from the API server.
pub fn compute(object: &Value) -> Health {
    if let Some(health) = generic(object) {
        return health;
    }
    let api_version = text(object, "/apiVersion").unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = text(object, "/kind").unwrap_or_default();
    match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps" | "extensions", "DaemonSet") => daemon_set(object),
        ("apps" | "extensions", "ReplicaSet") => replica_set(object),
        ("batch", "Job") => job(object),
        ("", "Pod") => pod(object),
        ("", "PersistentVolumeClaim") => pvc(object),
        ("", "Service") => service(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        ("", "ConfigMap" | "Secret") | ("batch", "CronJob") | ("policy", "PodDisruptionBudget") => {
            Health::current("Resource is always ready")
        }
        _ => ready_condition(object),
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn int(object: &Value, pointer: &str, default: i64) -> i64 {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// `(status, reason, message)` of the condition of the given type, if present.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|c| {
            (c.get("type").and_then(Value::as_str) == Some(type_)).then(|| {
                (
                    c.get("status").and_then(Value::as_str).unwrap_or(""),
                    c.get("reason").and_then(Value::as_str).unwrap_or(""),
                    c.get("message").and_then(Value::as_str).unwrap_or(""),
                )
            })
        })
}

fn generic(object: &Value) -> Option<Health> {
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Some(Health::new(
            HealthStatus::Terminating,
            "Resource scheduled for deletion",
        ));
    }
    if let (Some(generation), Some(observed)) = (
        object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64),
        object
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64),
    ) && observed != generation
    {
        return Some(Health::in_progress(format!(
            "{} generation is {generation}, but latest observed generation is {observed}",
            text(object, "/kind").unwrap_or("Resource")
        )));
    }
    if let Some(("True", reason, message)) = condition(object, "Stalled") {
        return Some(Health::failed(if message.is_empty() {
            reason
        } else {
            message
        }));
    }
    if let Some(("True", reason, message)) = condition(object, "Reconciling") {
        return Some(Health::in_progress(if message.is_empty() {
            reason
        } else {
            message
        }));
    }
    None
}

fn deployment(object: &Value) -> Health {
    // Without progressDeadlineSeconds the controller never sets Progressing, so it cannot
    // be required.
    let mut progressing = object.pointer("/spec/progressDeadlineSeconds").is_none();
    match condition(object, "Progressing") {
        Some((_, "ProgressDeadlineExceeded", _)) => {
            return Health::failed("Progress deadline exceeded");
        }
        Some(("True", "NewReplicaSetAvailable", _)) => progressing = true,
        _ => {}
    }
    let available = matches!(condition(object, "Available"), Some(("True", _, _)));
    let spec = int(object, "/spec/replicas", 1);
    let replicas = int(object, "/status/replicas", 0);
    let updated = int(object, "/status/updatedReplicas", 0);
    let ready = int(object, "/status/readyReplicas", 0);
    let available_replicas = int(object, "/status/availableReplicas", 0);
    if spec > replicas {
        return Health::in_progress(format!("Replicas: {replicas}/{spec}"));
    }
    if spec > updated {
        return Health::in_progress(format!("Updated: {updated}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    if updated > available_replicas {
        return Health::in_progress(format!("Available: {available_replicas}/{updated}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if !progressing {
        return Health::in_progress("ReplicaSet not Available");
    }
    if !available {
        return Health::in_progress("Deployment not Available");
    }
    Health::current(format!("Deployment is available. Replicas: {replicas}"))
}

fn stateful_set(object: &Value) -> Health {
    if text(object, "/spec/updateStrategy/type") == Some("OnDelete") {
        return Health::current("StatefulSet is using the ondelete update strategy");
    }
    let spec = int(object, "/spec/replicas", 1);
    let ready = int(object, "/status/readyReplicas", 0);
    let current = int(object, "/status/currentReplicas", 0);
    let updated = int(object, "/status/updatedReplicas", 0);
    let replicas = int(object, "/status/replicas", 0);
    let partition = int(object, "/spec/updateStrategy/rollingUpdate/partition", -1);
    if spec > replicas {
        return Health::in_progress(format!("Replicas: {replicas}/{spec}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    if partition != -1 {
        if updated < spec - partition {
            return Health::in_progress(format!("updated: {updated}/{}", spec - partition));
        }
        return Health::current(format!("Partition rollout complete. updated: {updated}"));
    }
    if spec > current {
        return Health::in_progress(format!("current: {current}/{spec}"));
    }
    if text(object, "/status/currentRevision") != text(object, "/status/updateRevision") {
        return Health::in_progress("Waiting for updated revision to match current");
    }
    Health::current(format!(
        "All replicas scheduled as expected. Replicas: {replicas}"
    ))
}

fn daemon_set(object: &Value) -> Health {
    // The controller always sets these once it has seen the object.
    if object.pointer("/metadata/generation").is_none() {
        return Health::in_progress("DaemonSet metadata.generation not found");
    }
    if object.pointer("/status/observedGeneration").is_none() {
        return Health::in_progress("DaemonSet status.observedGeneration not found");
    }
    let desired = int(object, "/status/desiredNumberScheduled", -1);
    if desired == -1 {
        return Health::in_progress("Missing .status.desiredNumberScheduled");
    }
    for (pointer, label) in [
        ("/status/currentNumberScheduled", "Current"),
        ("/status/updatedNumberScheduled", "Updated"),
        ("/status/numberAvailable", "Available"),
        ("/status/numberReady", "Ready"),
    ] {
        let have = int(object, pointer, 0);
        if desired > have {
            return Health::in_progress(format!("{label}: {have}/{desired}"));
        }
    }
    Health::current(format!(
        "All replicas scheduled as expected. Replicas: {desired}"
    ))
}

fn replica_set(object: &Value) -> Health {
    if let Some(("True", _, _)) = condition(object, "ReplicaFailure") {
        return Health::in_progress("Replica Failure condition. Check Pods");
    }
    let spec = int(object, "/spec/replicas", 1);
    for (pointer, label) in [
        ("/status/fullyLabeledReplicas", "Labelled"),
        ("/status/availableReplicas", "Available"),
        ("/status/readyReplicas", "Ready"),
    ] {
        let have = int(object, pointer, 0);
        if spec > have {
            return Health::in_progress(format!("{label}: {have}/{spec}"));
        }
    }
    let replicas = int(object, "/status/replicas", 0);
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    Health::current(format!("ReplicaSet is available. Replicas: {replicas}"))
}

fn job(object: &Value) -> Health {
    let parallelism = int(object, "/spec/parallelism", 1);
    let completions = int(object, "/spec/completions", parallelism);
    let succeeded = int(object, "/status/succeeded", 0);
    let failed = int(object, "/status/failed", 0);
    if let Some(("True", _, _)) = condition(object, "Complete") {
        return Health::current(format!(
            "Job Completed. succeeded: {succeeded}/{completions}"
        ));
    }
    if let Some(("True", _, _)) = condition(object, "Failed") {
        return Health::failed(format!("Job Failed. failed: {failed}/{completions}"));
    }
    if let Some(("True", _, _)) = condition(object, "Suspended") {
        return Health::current("Job is suspended");
    }
    if text(object, "/status/startTime").is_none() {
        return Health::in_progress("Job not started");
    }
    let active = int(object, "/status/active", 0);
    Health::current(format!(
        "Job in progress. success:{succeeded}, active: {active}, failed: {failed}"
    ))
}

fn pod(object: &Value) -> Health {
    match text(object, "/status/phase").unwrap_or("") {
        "Succeeded" => Health::current("Pod has completed successfully"),
        "Failed" => Health::current("Pod has completed, but not successfully"),
        "Running" => {
            if let Some(("True", _, _)) = condition(object, "Ready") {
                return Health::current("Pod is Ready");
            }
            let crash_looping: Vec<&str> = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| {
                    c.pointer("/state/waiting/reason").and_then(Value::as_str)
                        == Some("CrashLoopBackOff")
                })
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect();
            if crash_looping.is_empty() {
                Health::in_progress("Pod is running but is not Ready")
            } else {
                Health::failed(format!(
                    "Containers in CrashLoop state: {}",
                    crash_looping.join(",")
                ))
            }
        }
        "Pending" => match condition(object, "PodScheduled") {
            Some(("False", "Unschedulable", _)) => Health::failed("Pod could not be scheduled"),
            _ => Health::in_progress("Pod is in the Pending phase"),
        },
        "" => Health::in_progress("Pod phase not available"),
        other => Health::in_progress(format!("Pod phase {other}")),
    }
}

fn pvc(object: &Value) -> Health {
    match text(object, "/status/phase") {
        Some("Bound") => Health::current("PVC is Bound"),
        phase => Health::in_progress(format!(
            "PVC is not Bound. phase: {}",
            phase.unwrap_or("unknown")
        )),
    }
}

fn service(object: &Value) -> Health {
    let load_balancer = text(object, "/spec/type") == Some("LoadBalancer");
    if load_balancer && text(object, "/spec/clusterIP").unwrap_or("").is_empty() {
        return Health::in_progress("ClusterIP not set. Service type: LoadBalancer");
    }
    Health::current("Service is ready")
}

fn crd(object: &Value) -> Health {
    if let Some(("False", reason, message)) = condition(object, "NamesAccepted") {
        return Health::failed(if message.is_empty() { reason } else { message });
    }
    match condition(object, "Established") {
        Some(("True", _, _)) => Health::current("CRD is established"),
        Some(("False", reason, message)) if reason != "Installing" => {
            Health::failed(if message.is_empty() { reason } else { message })
        }
        _ => Health::in_progress("Install in progress"),
    }
}

fn ready_condition(object: &Value) -> Health {
    match condition(object, "Ready") {
        Some(("True", _, message)) => Health::current(if message.is_empty() {
            "Resource is Ready"
        } else {
            message
        }),
        Some((_, reason, message)) => {
            Health::in_progress(if message.is_empty() { reason } else { message })
        }
        None => Health::current("Resource is current"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment_with(status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600},
            "status": status,
        })
    }

    #[test]
    fn a_rolled_out_deployment_is_current() {
        let object = deployment_with(json!({
            "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }));
        assert_eq!(compute(&object).status, HealthStatus::Current);
    }

    #[test]
    fn an_unobserved_generation_is_in_progress() {
        let object = deployment_with(json!({"observedGeneration": 1}));
        let health = compute(&object);
        assert_eq!(health.status, HealthStatus::InProgress);
        assert!(
            health.message.contains("generation is 2"),
            "{}",
            health.message
        );
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_has_failed() {
        let object = deployment_with(json!({
            "observedGeneration": 2,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
        }));
        assert_eq!(compute(&object).status, HealthStatus::Failed);
    }

    #[test]
    fn a_deployment_short_of_ready_replicas_says_how_many() {
        let object = deployment_with(json!({
            "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 2,
        }));
        assert_eq!(compute(&object), Health::in_progress("Ready: 1/2"));
    }

    #[test]
    fn jobs_complete_or_fail_by_their_conditions() {
        let complete = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
        let failed = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "status": {"failed": 3, "conditions": [{"type": "Failed", "status": "True"}]}});
        let pending = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {}});
        assert_eq!(compute(&complete).status, HealthStatus::Current);
        assert_eq!(compute(&failed).status, HealthStatus::Failed);
        assert_eq!(compute(&pending).status, HealthStatus::InProgress);
    }

    #[test]
    fn daemon_sets_need_every_node_scheduled_updated_and_ready() {
        let mut object = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                       "updatedNumberScheduled": 3, "numberAvailable": 3, "numberReady": 2}});
        assert_eq!(compute(&object), Health::in_progress("Ready: 2/3"));
        object["status"]["numberReady"] = json!(3);
        assert_eq!(compute(&object).status, HealthStatus::Current);
    }

    #[test]
    fn stateful_sets_wait_for_the_update_revision() {
        let object = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"replicas": 1},
            "status": {"replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "currentRevision": "a", "updateRevision": "b"}});
        assert_eq!(compute(&object).status, HealthStatus::InProgress);
    }

    #[test]
    fn custom_resources_follow_their_ready_condition() {
        let ks = |status: &str| {
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "generation": 1},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": status, "reason": "Progressing", "message": "working"}]}})
        };
        assert_eq!(compute(&ks("True")).status, HealthStatus::Current);
        assert_eq!(compute(&ks("False")), Health::in_progress("working"));
        let plain =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        assert_eq!(compute(&plain).status, HealthStatus::Current);
    }

    #[test]
    fn stalled_objects_have_failed_and_deleted_ones_are_terminating() {
        let stalled = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "status": {"conditions": [{"type": "Stalled", "status": "True", "reason": "Broken", "message": "cannot"}]}});
        assert_eq!(compute(&stalled), Health::failed("cannot"));
        let deleting = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(compute(&deleting).status, HealthStatus::Terminating);
    }

    #[test]
    fn crds_are_current_once_established() {
        let crd = |status: &str, reason: &str| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "x"}, "status": {"conditions": [{"type": "Established", "status": status, "reason": reason}]}})
        };
        assert_eq!(
            compute(&crd("True", "InitialNamesAccepted")).status,
            HealthStatus::Current
        );
        assert_eq!(
            compute(&crd("False", "Installing")).status,
            HealthStatus::InProgress
        );
    }

    #[test]
    fn pods_crash_looping_have_failed() {
        let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(
            compute(&object),
            Health::failed("Containers in CrashLoop state: app")
        );
    }
}
