//! Git fetching: a bare cache per source, fetched incrementally with gix, and Flux's
//! `spec.ref` resolved into a commit and a revision string.
//!
//! Entry point: [`GitCache::fetch`]. Everything here blocks; callers run it off their
//! actor's thread.

mod auth;
mod fetch;
mod reference;
pub mod semver;
mod url;

pub use auth::Auth;
pub(crate) use auth::PreparedAuth;
pub use fetch::{GitCache, Resolved};
pub use reference::GitRef;
pub use url::RepoUrl;

use std::time::Duration;

/// A boxed error from gix or the OS, kept as the `#[source]` of our variants.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong while fetching a Git source.
///
/// [`Error::is_terminal`] separates configuration mistakes (mark the source Stalled, do not
/// retry until the spec changes) from failures worth retrying with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL cannot be parsed or is not a URL at all. Terminal.
    #[error("invalid Git URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given, with any password removed.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The URL uses a scheme we cannot fetch from. Terminal.
    #[error(
        "unsupported URL scheme '{scheme}' in '{url}': use https://, http://, ssh://, git://, file:// or user@host:path"
    )]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
        /// The URL as given, with any password removed.
        url: String,
    },
    /// `spec.ref` is malformed (bad branch name, semver constraint or commit SHA). Terminal.
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    /// The credentials Secret lacks a key or holds an unusable value. Terminal.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    /// The remote does not have the requested branch, tag or ref (it may appear later).
    #[error("{reference} not found in '{url}'")]
    ReferenceNotFound {
        /// The requested reference, e.g. `branch 'main'`.
        reference: String,
        /// The remote URL, without password.
        url: String,
    },
    /// No tag of the remote satisfies the semver constraint (one may be pushed later).
    #[error("no tag in '{url}' matches semver constraint '{constraint}'")]
    NoMatchingTag {
        /// The constraint from `spec.ref.semver`.
        constraint: String,
        /// The remote URL, without password.
        url: String,
    },
    /// The requested commit is not in the fetched history.
    #[error("commit '{commit}' not found in '{url}'")]
    CommitNotFound {
        /// The commit SHA from `spec.ref.commit`.
        commit: String,
        /// The remote URL, without password.
        url: String,
    },
    /// Talking to the remote failed: network, authentication, protocol. Retried.
    #[error("failed to fetch '{url}': {message}")]
    Fetch {
        /// The remote URL, without password.
        url: String,
        /// The full error chain, scrubbed of secrets.
        message: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The fetch did not finish within `spec.timeout`. Retried.
    #[error("fetching '{url}' timed out after {after:?}")]
    Timeout {
        /// The remote URL, without password.
        url: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// Reading or writing the local cache failed. Retried.
    #[error("Git cache at '{path}': {message}")]
    Cache {
        /// The cache directory.
        path: String,
        /// What we were doing.
        message: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// True when retrying cannot help until the spec or Secret changes (Flux's Stalled).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::InvalidUrl { .. }
                | Error::UnsupportedScheme { .. }
                | Error::InvalidReference(_)
                | Error::InvalidCredentials(_)
        )
    }

    /// A short stable name for metrics and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } => "InvalidUrl",
            Error::UnsupportedScheme { .. } => "UnsupportedScheme",
            Error::InvalidReference(_) => "InvalidReference",
            Error::InvalidCredentials(_) => "InvalidCredentials",
            Error::ReferenceNotFound { .. } => "ReferenceNotFound",
            Error::NoMatchingTag { .. } => "NoMatchingTag",
            Error::CommitNotFound { .. } => "CommitNotFound",
            Error::Fetch { .. } => "Fetch",
            Error::Timeout { .. } => "Timeout",
            Error::Cache { .. } => "Cache",
        }
    }
}

/// Result of the Git layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders an error and all its sources on one line, as Flux does in condition messages.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}
