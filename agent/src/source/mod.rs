//! Sources: Git repositories fetched into artifacts that consumers receive by message.
//!
//! The blocking Git layer lives here; the actors call it through `spawn_blocking`.
//!
//! - [`git`]: fetch into a bare cache ([`git::GitCache`]), resolve Flux's `spec.ref` into a
//!   revision, credentials from Flux's Secret keys.
//! - [`artifact`]: the tree at a commit as a deterministic tar.gz in a content-addressed
//!   [`artifact::ArtifactStore`], with Flux's ignore rules, and a safe extractor.
//! - [`server`]: the HTTP service that serves stored artifacts (`--artifact-addr`).
//! - [`push`]: write a commit on a branch and push it.
//! - [`lifecycle`]: the pure state machine of one source (interval, jitter, backoff).

pub mod artifact;
pub mod git;
pub mod lifecycle;
pub mod push;
pub mod server;

pub use artifact::{ArtifactStore, SourceKey, StoredArtifact};
pub use git::{Auth, GitCache, GitRef, RepoUrl, Resolved};
