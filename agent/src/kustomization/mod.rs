//! Kustomizations: one [`actor::KustomizationActor`] per object reconciles it as Flux's
//! kustomize-controller does.
//!
//! - [`actor`]: the lifecycle (when to reconcile) and supervision.
//! - [`reconcile`]: one reconcile, in Flux's order; progress while on new input, the
//!   outcome's status once.
//! - [`remote`]: the client of another cluster (`spec.kubeConfig`).
//! - [`finalize`]: deletion, by `spec.deletionPolicy`.
//! - [`ignore`]: paths left to others (`spec.ignore`).
//! - [`build`]: artifact -> objects (native kustomize, spec transformations, substitution).
//! - [`decrypt`]: SOPS decryption of encrypted objects and generator files (`spec.decryption`).
//! - [`plan`]: pure apply order, stages, prune candidates, inventory.
//! - [`apply`]: server-side dry-run, apply, prune and health waits, as a typed change set.
//! - [`deps`]: what all actors share (context, caches, concurrency limits, waiters).
//! - [`drift`], [`status`], [`dependencies`], [`substitute`], [`impersonate`]: the parts.

pub mod actor;
pub mod apply;
pub mod build;
pub mod decrypt;
pub mod dependencies;
pub mod deps;
pub mod drift;
pub mod finalize;
pub mod ignore;
pub mod impersonate;
pub mod plan;
pub mod reconcile;
pub mod remote;
pub mod status;
pub mod substitute;

pub use actor::{KustomizationActor, RequestReconcile};
pub use deps::Deps;
