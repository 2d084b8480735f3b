//! The demo's fleet repository: `config/demo` embedded at compile time, written into a normal
//! Git working tree with gix (commit, index and branches), and the branch tips the demo
//! watches.
//!
//! Staging follows `main`; production and production-clone follow `production`, so a commit
//! reaches staging at once and production only when promoted (`git push . main:production`),
//! the environment-branch flow many Flux fleets use.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::refs::transaction::PreviousValue;

use super::DemoError;

/// The branch staging follows (where the user commits).
pub const MAIN: &str = "main";
/// The branch production and its clone follow.
pub const PRODUCTION: &str = "production";

macro_rules! embed {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/demo/",
                $path
            )),
        )
    };
}

/// `config/demo`, file by file (the `every_file_of_config_demo_is_embedded` test keeps this
/// list complete).
pub const FILES: &[(&str, &str)] = &[
    embed!("README.md"),
    embed!("apps/base/podinfo/deployment.yaml"),
    embed!("apps/base/podinfo/hpa.yaml"),
    embed!("apps/base/podinfo/kustomization.yaml"),
    embed!("apps/base/podinfo/service.yaml"),
    embed!("apps/production/kustomization.yaml"),
    embed!("apps/production/podinfo-patch.yaml"),
    embed!("apps/staging/kustomization.yaml"),
    embed!("apps/staging/podinfo-patch.yaml"),
    embed!("clusters/production-clone/kustomization.yaml"),
    embed!("clusters/production/apps.yaml"),
    embed!("clusters/production/infrastructure.yaml"),
    embed!("clusters/production/kustomization.yaml"),
    embed!("clusters/staging/apps.yaml"),
    embed!("clusters/staging/infrastructure.yaml"),
    embed!("clusters/staging/kustomization.yaml"),
    embed!("infrastructure/cluster-settings.yaml"),
    embed!("infrastructure/kustomization.yaml"),
    embed!("infrastructure/namespaces.yaml"),
];

/// What [`ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoState {
    /// A new repository was written, with this first commit.
    Created(ObjectId),
    /// An existing repository was kept as it is.
    Reused,
}

fn git_error(
    context: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> DemoError {
    let context = context.into();
    move |source| DemoError::Git { context, source }
}

/// Boxes any error for [`git_error`].
fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

/// Creates the repository at `dir` with the demo content (one commit on `main`, `production`
/// at the same commit, a clean index), or keeps the one already there.
pub fn ensure(dir: &Path) -> Result<RepoState, DemoError> {
    if dir.join(".git").exists() {
        let repo = gix::open(dir)
            .map_err(boxed)
            .map_err(git_error(format!("opening {}", dir.display())))?;
        // A user may have deleted the production branch; bring it back at main.
        if tip(dir, PRODUCTION)?.is_none()
            && let Some(main) = tip(dir, MAIN)?
        {
            create_branch(&repo, PRODUCTION, main)?;
        }
        return Ok(RepoState::Reused);
    }
    std::fs::create_dir_all(dir).map_err(|source| DemoError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (path, content) in FILES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DemoError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&file, content).map_err(|source| DemoError::Io { path: file, source })?;
    }
    let repo = gix::init(dir)
        .map_err(boxed)
        .map_err(git_error(format!("initialising {}", dir.display())))?;
    let commit = commit_files(&repo, dir)?;
    create_branch(&repo, PRODUCTION, commit)?;
    Ok(RepoState::Created(commit))
}

/// Commits every embedded file as the first commit of `main` and writes the index with the
/// files' stat data, so `git status` is clean and `git commit -am` works straight away.
fn commit_files(repo: &gix::Repository, dir: &Path) -> Result<ObjectId, DemoError> {
    let mut editor = repo
        .edit_tree(ObjectId::empty_tree(repo.object_hash()))
        .map_err(boxed)
        .map_err(git_error("starting a tree"))?;
    for (path, content) in FILES {
        let blob = repo
            .write_blob(content.as_bytes())
            .map_err(boxed)
            .map_err(git_error(format!("writing {path}")))?;
        editor
            .upsert(*path, gix::object::tree::EntryKind::Blob, blob.detach())
            .map_err(boxed)
            .map_err(git_error(format!("adding {path}")))?;
    }
    let tree = editor
        .write()
        .map_err(boxed)
        .map_err(git_error("writing the tree"))?
        .detach();
    let signature = gix::actor::Signature {
        name: "Flotilla demo".into(),
        email: "demo@flotilla.invalid".into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let (mut committer_time, mut author_time) = Default::default();
    let commit = repo
        .commit_as(
            signature.to_ref(&mut committer_time),
            signature.to_ref(&mut author_time),
            format!("refs/heads/{MAIN}"),
            "The demo fleet: staging, production and production-clone",
            tree,
            None::<ObjectId>,
        )
        .map_err(boxed)
        .map_err(git_error("committing"))?
        .detach();
    // HEAD must name main whatever init.defaultBranch says, or the commit lands elsewhere.
    set_head(repo)?;

    let mut index = repo
        .index_from_tree(&tree)
        .map_err(boxed)
        .map_err(git_error("building the index"))?;
    let (entries, paths) = index.entries_mut_and_pathbacking();
    for entry in entries {
        let file = dir.join(entry.path_in(paths).to_string());
        let metadata = gix::index::fs::Metadata::from_path_no_follow(&file)
            .map_err(|source| DemoError::Io { path: file, source })?;
        // A stat we cannot express only costs git a re-hash of the file.
        if let Ok(stat) = gix::index::entry::Stat::from_fs(&metadata) {
            entry.stat = stat;
        }
    }
    index
        .write(gix::index::write::Options::default())
        .map_err(boxed)
        .map_err(git_error("writing the index"))?;
    Ok(commit)
}

/// Points HEAD at `refs/heads/main`.
fn set_head(repo: &gix::Repository) -> Result<(), DemoError> {
    let head = repo.git_dir().join("HEAD");
    std::fs::write(&head, format!("ref: refs/heads/{MAIN}\n"))
        .map_err(|source| DemoError::Io { path: head, source })?;
    Ok(())
}

fn create_branch(repo: &gix::Repository, name: &str, at: ObjectId) -> Result<(), DemoError> {
    repo.reference(
        format!("refs/heads/{name}"),
        at,
        PreviousValue::MustNotExist,
        "branch: created by flotilla demo",
    )
    .map_err(boxed)
    .map_err(git_error(format!("creating branch {name}")))?;
    Ok(())
}

/// The commit `branch` points at, if the branch exists.
pub fn tip(dir: &Path, branch: &str) -> Result<Option<ObjectId>, DemoError> {
    let repo = gix::open(dir)
        .map_err(boxed)
        .map_err(git_error(format!("opening {}", dir.display())))?;
    let Some(mut reference) = repo
        .try_find_reference(&format!("refs/heads/{branch}"))
        .map_err(boxed)
        .map_err(git_error(format!("reading branch {branch}")))?
    else {
        return Ok(None);
    };
    let id = reference
        .peel_to_id()
        .map_err(boxed)
        .map_err(git_error(format!("resolving branch {branch}")))?;
    Ok(Some(id.detach()))
}

/// The absolute `file://` URL agents fetch the repository from.
pub fn url(dir: &Path) -> Result<String, DemoError> {
    let absolute: PathBuf = dir.canonicalize().map_err(|source| DemoError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(format!("file://{}", absolute.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo")
    }

    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let relative = path.strip_prefix(root).unwrap_or_else(|e| panic!("{e}"));
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }

    #[test]
    fn every_file_of_config_demo_is_embedded() {
        let root = demo_dir();
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "repo::FILES must list config/demo exactly"
        );
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("git is required: {e}"));
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[test]
    fn a_new_repository_is_clean_committed_on_main_and_reused_on_rerun() {
        let dir = std::env::temp_dir().join(format!(
            "flotilla-demo-repo-{}-{}",
            std::process::id(),
            proto::message::now_ms()
        ));
        let created = ensure(&dir).unwrap_or_else(|e| panic!("{e}"));
        let RepoState::Created(first) = created else {
            panic!("expected a new repository, got {created:?}");
        };
        assert_eq!(git(&dir, &["status", "--porcelain"]), "");
        assert_eq!(
            git(&dir, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
            MAIN
        );
        assert_eq!(tip(&dir, MAIN).ok().flatten(), Some(first));
        assert_eq!(tip(&dir, PRODUCTION).ok().flatten(), Some(first));
        let tracked = git(&dir, &["ls-files"]);
        assert_eq!(tracked.lines().count(), FILES.len());

        std::fs::write(
            dir.join("apps/staging/podinfo-patch.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: podinfo\nspec:\n  replicas: 3\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        git(&dir, &["commit", "-qam", "staging: three replicas"]);
        let second = tip(&dir, MAIN).ok().flatten();
        assert_ne!(second, Some(first));

        assert_eq!(ensure(&dir).ok(), Some(RepoState::Reused));
        assert_eq!(tip(&dir, MAIN).ok().flatten(), second);
        assert_eq!(tip(&dir, PRODUCTION).ok().flatten(), Some(first));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
