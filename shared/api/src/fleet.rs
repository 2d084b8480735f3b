//! `fleet.flotilla.io/v1alpha1`: the fleet's own kinds, stored in the management cluster.
//!
//! - [`Cluster`]: a member cluster, its client certificate and what its agent last reported.
//! - [`Pipeline`]: ordered stages of clusters and what is promoted between them.
//! - [`Promotion`]: one value moving from one stage to the next, with its history.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::meta::{LocalObjectReference, NamespacedObjectKindReference};

/// The API group of the fleet's kinds.
pub const GROUP: &str = "fleet.flotilla.io";

/// A cluster of the fleet. Its name is the identity in the agent's client certificate.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "fleet.flotilla.io",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "fc",
    category = "flotilla",
    printcolumn = r#"{"name":"Connected","type":"boolean","jsonPath":".status.connected"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".status.agentVersion"}"#,
    printcolumn = r#"{"name":"Last Seen","type":"date","jsonPath":".status.lastSeen"}"#,
    printcolumn = r#"{"name":"Revoked","type":"boolean","jsonPath":".spec.revoked"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Labels pipelines select clusters by (e.g. `env: production`), copied from
    /// `flotilla cluster add --label`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// SHA-256 fingerprints (hex) of the client certificates the fleet accepts for this
    /// cluster; more than one while a certificate is being rotated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_fingerprints: Vec<String>,
    /// When the newest certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<Time>,
    /// A revoked cluster's certificates are refused even though the fleet CA signed them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default)]
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ClusterSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Counts of the Flux objects the cluster's agent reported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    pub sources: ObjectCounts,
    pub kustomizations: ObjectCounts,
    pub helm_releases: ObjectCounts,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCounts {
    pub total: u32,
    pub ready: u32,
    pub failing: u32,
    pub suspended: u32,
}

/// Ordered stages (e.g. staging -> production -> production-clone) and what moves along them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "fleet.flotilla.io",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    status = "PipelineStatus",
    category = "flotilla",
    printcolumn = r#"{"name":"Subject","type":"string","jsonPath":".spec.subject.kind"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// The fleet repository promotions are committed to.
    pub repository: FleetRepository,
    pub subject: PromotionSubject,
    /// In promotion order; the first stage receives new values from outside the pipeline.
    pub stages: Vec<Stage>,
}

/// A Git repository and branch the fleet commits promotions to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FleetRepository {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Credentials, with the same keys as a GitRepository's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// What a pipeline promotes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionSubject {
    pub kind: SubjectKind,
    /// The object whose value is read at the source stage and written at the target stage,
    /// e.g. a GitRepository (revision), a HelmRelease (chart version) or an ImagePolicy (tag).
    pub object: NamespacedObjectKindReference,
}

/// The kinds of value a pipeline can promote.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SubjectKind {
    /// A source's Git revision (`spec.ref.commit` of the target stage's GitRepository).
    #[default]
    GitRevision,
    /// A HelmRelease's `spec.chart.spec.version`.
    ChartVersion,
    /// An image tag.
    ImageTag,
}

/// One stage of a pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    /// Clusters of this stage by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    /// Or by label (`Cluster.spec.labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<BTreeMap<String, String>>,
    /// The file and field in the fleet repository holding this stage's value.
    pub target: PromotionTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

/// Where a stage's value lives in the fleet repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionTarget {
    /// Path of a YAML file relative to the repository root.
    pub path: String,
    /// Dotted path of the field in that file, e.g. `spec.ref.commit`.
    pub field: String,
    /// With several documents in the file: the one of this kind and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<NamespacedObjectKindReference>,
}

/// What must hold at the previous stage before a value is promoted into this one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gate {
    /// How long the previous stage must have been Ready and healthy at the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<Duration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_approval: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The value currently at each stage, by stage name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One value moving from stage `from` to stage `to` of a pipeline.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "fleet.flotilla.io",
    version = "v1alpha1",
    kind = "Promotion",
    namespaced,
    status = "PromotionStatus",
    category = "flotilla",
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".spec.pipeline"}"#,
    printcolumn = r#"{"name":"From","type":"string","jsonPath":".spec.from"}"#,
    printcolumn = r#"{"name":"To","type":"string","jsonPath":".spec.to"}"#,
    printcolumn = r#"{"name":"Value","type":"string","jsonPath":".spec.value"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionSpec {
    pub pipeline: String,
    pub from: String,
    pub to: String,
    pub value: String,
    /// Who approved it, when the target stage's gate requires approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// A rollback restores the value the target stage had before this promotion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// Where a promotion is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PromotionPhase {
    /// Created; the gate has not been checked yet.
    #[default]
    Pending,
    /// The gate does not hold yet (source stage not Ready at the value, soaking, or waiting
    /// for approval).
    Waiting,
    /// The commit is being written and pushed.
    Committing,
    /// Committed; waiting for the target stage to be Ready at the value.
    Rolling,
    Succeeded,
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    #[serde(default)]
    pub phase: PromotionPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The fleet repository commit that made the promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The value the target stage had before, for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PromotionEvent>,
}

/// One step in a promotion's history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionEvent {
    pub time: Time,
    pub phase: PromotionPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
