//! The messages of protocol version [`crate::PROTOCOL_VERSION`], as they travel: one JSON
//! object per websocket text frame, tagged by `type`.
//!
//! # Compatibility
//! Within one protocol version, fields may be added (with a default) but never removed or
//! renamed; an unknown `type` is a protocol error. Anything else bumps the version.

use serde::{Deserialize, Serialize};

/// What an agent sends to the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum AgentMessage {
    /// First frame of every connection.
    Hello(Hello),
    /// The full status of the cluster's objects; sent after `Hello` and whenever the agent
    /// wants to resynchronise. Replaces everything the fleet knew about the cluster.
    Snapshot(Snapshot),
    /// Changes since the previous snapshot or delta.
    Delta(Delta),
    /// Proof of life, sent at the interval the fleet asked for in [`Welcome`].
    Heartbeat(Heartbeat),
    /// The outcome of a [`Command`].
    Ack(Ack),
}

/// What the fleet sends to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FleetMessage {
    /// The fleet accepted the `Hello`.
    Welcome(Welcome),
    /// Something to do to one object on the cluster.
    Command(Command),
}

/// The agent's introduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The protocol version the agent speaks; the fleet closes the connection with
    /// [`crate::CloseCode::VersionMismatch`] when it does not speak it too.
    pub protocol_version: u32,
    /// The agent's release, shown in the fleet's cluster list.
    pub agent_version: String,
    /// Optional features the agent supports (e.g. `"commands"`).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// The fleet's answer to a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// The protocol version both ends now speak.
    pub protocol_version: u32,
    /// The cluster name the fleet read from the agent's certificate.
    pub cluster: String,
    /// How often the agent should send a heartbeat; the fleet marks the cluster disconnected
    /// after a few missed ones.
    pub heartbeat_seconds: u64,
}

/// The full status of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The cluster this status belongs to; must be the cluster of the certificate.
    pub cluster: String,
    /// When the agent took the snapshot (milliseconds since the Unix epoch).
    pub sent_at_ms: i64,
    /// Every object the agent reconciles.
    pub objects: Vec<ObjectStatus>,
}

/// Status changes since the last snapshot or delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    /// The cluster this status belongs to; must be the cluster of the certificate.
    pub cluster: String,
    /// When the agent sent the delta (milliseconds since the Unix epoch); the fleet measures
    /// status propagation latency from it.
    pub sent_at_ms: i64,
    /// Objects added or changed.
    #[serde(default)]
    pub changed: Vec<ObjectStatus>,
    /// Objects that no longer exist.
    #[serde(default)]
    pub removed: Vec<ObjectRef>,
}

/// Proof of life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// When the agent sent it (milliseconds since the Unix epoch).
    pub sent_at_ms: i64,
}

/// Which object: the key of every status and command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The Flux kind, e.g. `Kustomization` or `GitRepository`.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The `Ready` condition's status, as Flux writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Readiness {
    /// `Ready=True`.
    True,
    /// `Ready=False`.
    False,
    /// No `Ready` condition yet, or `Ready=Unknown` (reconciling).
    #[default]
    Unknown,
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Readiness::True => "True",
            Readiness::False => "False",
            Readiness::Unknown => "Unknown",
        })
    }
}

/// What the agent reports about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// Which object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// The `Ready` condition.
    #[serde(default)]
    pub ready: Readiness,
    /// The last applied (or fetched, for sources) revision, e.g. `main@sha1:…`.
    #[serde(default)]
    pub revision: Option<String>,
    /// `spec.suspend`.
    #[serde(default)]
    pub suspended: bool,
    /// The `Ready` condition's message.
    #[serde(default)]
    pub message: String,
}

/// An order from the fleet, answered by an [`Ack`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// Unique per fleet process; echoed in the `Ack`.
    pub id: u64,
    /// What to do.
    pub action: CommandAction,
    /// To which object.
    pub object: ObjectRef,
    /// For `reconcileNow` of a Kustomization or HelmRelease: reconcile its source first, as
    /// `flux reconcile --with-source` does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_source: bool,
}

/// The things the fleet can ask of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandAction {
    /// Reconcile now, as `flux reconcile` does (the `reconcile.fluxcd.io/requestedAt`
    /// annotation).
    ReconcileNow,
    /// Set `spec.suspend: true`.
    Suspend,
    /// Set `spec.suspend: false`.
    Resume,
}

impl std::fmt::Display for CommandAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommandAction::ReconcileNow => "reconcile",
            CommandAction::Suspend => "suspend",
            CommandAction::Resume => "resume",
        })
    }
}

/// The outcome of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// The command's id.
    pub id: u64,
    /// Whether the agent carried it out.
    pub ok: bool,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
}

impl AgentMessage {
    /// The cluster a status message speaks for, if it is one.
    pub fn claimed_cluster(&self) -> Option<&str> {
        match self {
            AgentMessage::Snapshot(s) => Some(&s.cluster),
            AgentMessage::Delta(d) => Some(&d.cluster),
            AgentMessage::Hello(_) | AgentMessage::Heartbeat(_) | AgentMessage::Ack(_) => None,
        }
    }

    /// A short name for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentMessage::Hello(_) => "hello",
            AgentMessage::Snapshot(_) => "snapshot",
            AgentMessage::Delta(_) => "delta",
            AgentMessage::Heartbeat(_) => "heartbeat",
            AgentMessage::Ack(_) => "ack",
        }
    }
}

/// Milliseconds since the Unix epoch, the protocol's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
