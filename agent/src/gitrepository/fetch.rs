//! One fetch of a GitRepository: resolve `spec.ref`, fetch into the cache, package the tree
//! into the artifact store. Blocking; the actor runs it with `spawn_blocking`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::conditions::reasons;
use api::source::GitRepositorySpec;

use crate::source::artifact::{self, ArchiveLimits, ArtifactStore, SourceKey, StoredArtifact};
use crate::source::git::{self, Auth, GitCache, GitRef, RepoUrl};

/// Everything one fetch needs, owned, so it can move to a blocking thread.
#[derive(Debug, Clone)]
pub struct FetchJob {
    pub url: String,
    pub reference: Option<api::source::GitRepositoryRef>,
    pub ignore: Option<String>,
    pub timeout: Duration,
    pub auth: Auth,
    pub cache_dir: PathBuf,
    pub store: Arc<ArtifactStore>,
    pub key: SourceKey,
}

/// A fetch that failed, with Flux's reason and whether retrying can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    pub reason: &'static str,
    pub message: String,
    pub terminal: bool,
}

impl FetchJob {
    /// The job for a spec; credentials are read by the caller (they come from a Secret).
    pub fn new(
        spec: &GitRepositorySpec,
        auth: Auth,
        cache_dir: PathBuf,
        store: Arc<ArtifactStore>,
        key: SourceKey,
    ) -> Self {
        Self {
            url: spec.url.clone(),
            reference: spec.reference.clone(),
            ignore: spec.ignore.clone(),
            timeout: spec
                .timeout
                .as_ref()
                .map_or(Duration::from_secs(60), |t| t.as_std()),
            auth,
            cache_dir,
            store,
            key,
        }
    }

    /// Fetches, and packages the commit unless the store already holds that revision.
    pub fn run(&self) -> Result<StoredArtifact, FetchFailure> {
        let url = RepoUrl::parse(&self.url).map_err(git_failure)?;
        let reference = match &self.reference {
            Some(r) => GitRef::from_spec(
                r.branch.as_deref(),
                r.tag.as_deref(),
                r.semver.as_deref(),
                r.name.as_deref(),
                r.commit.as_deref(),
            ),
            None => GitRef::branch("master"),
        }
        .map_err(git_failure)?;
        let cache = GitCache::new(&self.cache_dir);
        let resolved = cache
            .fetch(&url, &reference, &self.auth, self.timeout)
            .map_err(git_failure)?;
        if let Ok(Some(latest)) = self.store.latest(&self.key)
            && latest.revision == resolved.revision
            && self
                .store
                .blob_path(&latest.digest)
                .is_some_and(|p| p.exists())
        {
            return Ok(latest);
        }
        let repo = cache.repository().map_err(git_failure)?;
        artifact::package(
            &self.store,
            &self.key,
            &repo,
            resolved.commit,
            &resolved.revision,
            self.ignore.as_deref(),
            ArchiveLimits::default(),
        )
        .map_err(|error| FetchFailure {
            reason: reasons::ARCHIVE_OPERATION_FAILED,
            terminal: error.is_terminal(),
            message: error.to_string(),
        })
    }
}

/// Flux's reason for a Git error, and whether it is terminal.
pub fn git_failure(error: git::Error) -> FetchFailure {
    let message = error.to_string();
    let reason = match &error {
        git::Error::InvalidUrl { .. } | git::Error::UnsupportedScheme { .. } => {
            reasons::URL_INVALID
        }
        git::Error::InvalidCredentials(_) => reasons::AUTHENTICATION_FAILED,
        _ if message.contains("authentication")
            || message.contains("401")
            || message.contains("403") =>
        {
            reasons::AUTHENTICATION_FAILED
        }
        _ => reasons::GIT_OPERATION_FAILED,
    };
    FetchFailure {
        reason,
        terminal: error.is_terminal(),
        message,
    }
}
