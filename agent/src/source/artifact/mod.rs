//! Artifacts: the tree at a commit as a deterministic tar.gz, kept in a content-addressed
//! store and unpacked safely by consumers.
//!
//! - [`archive`]: tree -> tar.gz with Flux's ignore rules ([`ignore`]) and size limits.
//! - [`store`]: `<root>/<sha256>.tar.gz`, the last N per source, garbage-collected.
//! - [`extract`]: unpack into a directory, refusing anything that could escape it.

pub mod archive;
pub mod extract;
pub mod ignore;
pub mod store;

pub use archive::{ArchiveLimits, ArchiveStats, write_archive};
pub use extract::extract;
pub use ignore::IgnoreRules;
pub use store::{ArtifactStore, SourceKey, StoredArtifact};

/// Archives the tree of `commit` into `store` as the newest artifact of `source`.
pub fn package(
    store: &ArtifactStore,
    source: &SourceKey,
    repo: &gix::Repository,
    commit: gix::ObjectId,
    revision: &str,
    spec_ignore: Option<&str>,
    limits: ArchiveLimits,
) -> Result<StoredArtifact> {
    store.put(source, revision, |out| {
        write_archive(repo, commit, spec_ignore, limits, out).map(drop)
    })
}

/// What can go wrong building, storing or extracting an artifact.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One file exceeds the per-file limit.
    #[error("file '{path}' is {size} bytes, over the limit of {limit} bytes per file")]
    FileTooLarge {
        /// Path inside the repository.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The files together exceed the per-artifact limit.
    #[error("the artifact content exceeds the limit of {limit} bytes")]
    ArtifactTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A path in a tree or archive is absolute, climbs out with `..`, or is otherwise unsafe.
    #[error("unsafe path '{0}' refused")]
    UnsafePath(String),
    /// An archive entry of a kind we never produce (symlink, hard link, device).
    #[error(
        "archive entry '{path}' of type {kind} refused: only regular files and directories are extracted"
    )]
    UnsupportedEntry {
        /// Path of the entry.
        path: String,
        /// Its tar entry type.
        kind: String,
    },
    /// A source key segment is not a Kubernetes name.
    #[error("invalid source key '{0}'")]
    InvalidKey(String),
    /// A digest is not `sha256:<64 hex>`.
    #[error("invalid artifact digest '{0}'")]
    InvalidDigest(String),
    /// `spec.ignore` or a `.sourceignore` file could not be read.
    #[error("ignore rules from '{source_name}': {message}")]
    Ignore {
        /// Where the rules came from.
        source_name: String,
        /// What was wrong.
        message: String,
    },
    /// Reading objects from the Git cache failed.
    #[error("reading {what} from the Git cache")]
    Git {
        /// What was being read.
        what: String,
        /// The gix error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// File system I/O failed.
    #[error("{what} '{path}'")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The per-source history file is unreadable.
    #[error("artifact history '{path}'")]
    History {
        /// The history file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A short stable name for metrics and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::FileTooLarge { .. } => "FileTooLarge",
            Error::ArtifactTooLarge { .. } => "ArtifactTooLarge",
            Error::UnsafePath(_) => "UnsafePath",
            Error::UnsupportedEntry { .. } => "UnsupportedEntry",
            Error::InvalidKey(_) => "InvalidKey",
            Error::InvalidDigest(_) => "InvalidDigest",
            Error::Ignore { .. } => "Ignore",
            Error::Git { .. } => "Git",
            Error::Io { .. } => "Io",
            Error::History { .. } => "History",
        }
    }

    /// True when the same input will fail the same way (limits, unsafe content): the
    /// source is Stalled until a new commit or spec arrives.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::FileTooLarge { .. }
                | Error::ArtifactTooLarge { .. }
                | Error::UnsafePath(_)
                | Error::UnsupportedEntry { .. }
                | Error::InvalidKey(_)
                | Error::Ignore { .. }
        )
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn git(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Git {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// Result of the artifact layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
