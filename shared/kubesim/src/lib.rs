//! kubesim: an in-process Kubernetes API server test double, faithful enough for the real
//! `kubectl` (v1.32) and kube-rs.
//!
//! Start it with [`Server::start`] (random 127.0.0.1 port by default) and point clients at
//! [`RunningServer::kubeconfig`]. It serves HTTPS with a generated CA, authenticates by bearer
//! token or client certificate, and implements discovery (legacy and aggregated), CRUD, watch,
//! JSON/merge/strategic-merge patches, server-side apply with managed fields (see [`ssa`] for
//! the cases not covered), CRDs that become servable once Established, finalizers, garbage
//! collection, namespace deletion, simulated workload readiness ([`workloads`]), persistence
//! ([`persist`]) and fault injection ([`Faults`]).
//!
//! # Differences from kube-apiserver
//! - Request bodies in protobuf are decoded for the built-in kinds of the [`protobuf`] table
//!   (what kubectl's typed clients send: `kubectl create deployment|job|role|quota ...`);
//!   custom resources in protobuf get 415, as no client sends them. Responses are always JSON.
//! - OpenAPI: `/openapi/v3` lists every group/version with its PATCH parameters (what kubectl
//!   probes for `fieldValidation`) and CRD schemas; built-in schemas are not published, so
//!   kubectl builds strategic merge patches from its compiled-in types and `kubectl explain`
//!   shows no fields for built-in kinds. `/openapi/v2` is 404.
//! - Validation: names, labels, immutable fields of the common kinds, CRD structural schemas
//!   (type, required, enum; not pattern, format or CEL), with unknown CRD fields pruned or
//!   rejected under `fieldValidation=Strict`. Built-in kinds have no schema here: their specs
//!   are not validated and unknown fields in them are kept rather than dropped.
//! - Defaulting covers the common workload, pod template, Service and Secret fields.
//! - No admission and no RBAC enforcement: access reviews (`kubectl auth can-i`) are all
//!   allowed, with the reason ([`access_review`]). No pods of workloads, ReplicaSets of
//!   Deployments, kubelet, logs, exec or port-forward: workloads' status is simulated (see
//!   [`workloads`]), so `kubectl rollout history|undo` and `kubectl logs` find nothing; one
//!   Node exists.
//! - A `continue` token resumes after its last key in the current state, not in a snapshot
//!   at the token's resourceVersion.
//! - Versions of a multi-version CRD are served without conversion (as with strategy None;
//!   conversion webhooks are not called).
//! - Server-side apply: see [`ssa`] for the cases not covered.
//!
//! ```no_run
//! # async fn demo() -> kubesim::Result<()> {
//! let server = kubesim::Server::start(kubesim::Config::default()).await?;
//! std::fs::write("/tmp/kubeconfig", server.kubeconfig()).ok();
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod access_review;
pub mod api;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod events;
pub mod fields;
pub mod meta;
pub mod patch;
pub mod persist;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod sim;
pub mod ssa;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod watch;
pub mod workloads;

pub use error::{Error, Result};
pub use server::{RunningServer, Server};
pub use sim::{Config, Faults};
pub use workloads::FAIL_ANNOTATION;
