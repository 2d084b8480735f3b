//! GitRepositories: one [`actor::GitRepositoryActor`] per object fetches it with gix, stores
//! the tree as an artifact, writes Flux's status and publishes the artifact to consumers.
//!
//! - [`actor`]: the lifecycle (driven by [`crate::source::lifecycle`]) and supervision.
//! - [`fetch`]: one fetch and packaging, blocking, run off the actor thread.
//! - [`status`]: the status a fetch leaves, pure.

pub mod actor;
pub mod fetch;
pub mod status;

pub use actor::{GitRepositoryActor, SourceDeps};
