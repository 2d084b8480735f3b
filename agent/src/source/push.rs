//! Commit and push: the one place that writes to Git remotes (bootstrap, promotions, image
//! automation).
//!
//! The commit is made with gix in the source's bare cache, on top of the branch head just
//! fetched; the push runs the `git` CLI because gix cannot push yet.
//!
//! # Guarantees
//! - Credentials never appear in argv: HTTP basic goes through a `GIT_ASKPASS` helper that
//!   prints values from the child's environment, bearer tokens through `GIT_CONFIG_*`
//!   environment variables, SSH keys through a wrapper in a private temporary directory.
//! - `git` runs without the system or user configuration and never prompts.
//! - A push that loses a race (the branch moved) is [`Error::Rejected`]: fetch and retry.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gix::ObjectId;
use gix::objs::tree::EntryKind;

use super::git::{self, Auth, GitCache, GitRef, PreparedAuth, RepoUrl};

/// One file to write (`Some(content)`) or delete (`None`), by repository-relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// `/`-separated path relative to the repository root.
    pub path: String,
    /// New content, or `None` to delete the file.
    pub content: Option<Vec<u8>>,
}

/// What to commit where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    /// The branch to commit on (created from nothing if the remote lacks it).
    pub branch: String,
    /// The commit message.
    pub message: String,
    /// Author and committer name.
    pub author_name: String,
    /// Author and committer email.
    pub author_email: String,
    /// The changes on top of the branch head.
    pub changes: Vec<FileChange>,
}

/// The result of [`commit_and_push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// A new commit is on the remote branch.
    Pushed {
        /// The new commit.
        commit: ObjectId,
        /// Its revision, `<branch>@sha1:<hex>`.
        revision: String,
    },
    /// The changes were already in the branch head; nothing was pushed.
    Unchanged {
        /// The current head.
        commit: ObjectId,
        /// Its revision.
        revision: String,
    },
}

/// What can go wrong committing or pushing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fetching the branch head failed.
    #[error(transparent)]
    Fetch(#[from] git::Error),
    /// A change's path is absolute, has `..`, or touches `.git`.
    #[error("invalid path '{0}' in commit")]
    InvalidPath(String),
    /// Writing objects into the cache failed.
    #[error("writing the commit: {what}")]
    Commit {
        /// What was being written.
        what: String,
        /// The gix error.
        #[source]
        source: git::BoxError,
    },
    /// The remote refused because the branch moved; fetch and retry.
    #[error("push to branch '{branch}' rejected: {message}")]
    Rejected {
        /// The branch.
        branch: String,
        /// git's message, scrubbed of secrets.
        message: String,
    },
    /// `git push` failed for another reason (network, authentication, permissions).
    #[error("git push failed: {message}")]
    Push {
        /// git's message, scrubbed of secrets.
        message: String,
    },
    /// `git push` did not finish in time and was killed.
    #[error("git push timed out after {0:?}")]
    Timeout(Duration),
    /// The `git` program could not be run.
    #[error("running git")]
    Spawn(#[source] std::io::Error),
}

/// Result of the push module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fetches `request.branch`, commits `request.changes` on top of it and pushes the commit.
pub fn commit_and_push(
    cache: &GitCache,
    url: &RepoUrl,
    auth: &Auth,
    request: &CommitRequest,
    timeout: Duration,
) -> Result<PushOutcome> {
    let reference = GitRef::branch(&request.branch)?;
    let branch = match &reference {
        GitRef::Branch(b) => b.clone(),
        _ => request.branch.clone(),
    };
    let head = match cache.fetch(url, &reference, auth, timeout) {
        Ok(resolved) => Some(resolved.commit),
        Err(git::Error::ReferenceNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let repo = cache.repository()?;
    let (commit, changed) = write_commit(&repo, head, request)?;
    let revision = format!("{branch}@sha1:{commit}");
    if !changed {
        return Ok(PushOutcome::Unchanged { commit, revision });
    }
    let prepared = auth.prepare(url, timeout.as_secs())?;
    push(cache, url, &prepared, commit, &branch, timeout)?;
    Ok(PushOutcome::Pushed { commit, revision })
}

/// Writes the commit object; returns it and whether the tree changed.
fn write_commit(
    repo: &gix::Repository,
    head: Option<ObjectId>,
    request: &CommitRequest,
) -> Result<(ObjectId, bool)> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: gix::Error| Error::Commit {
            what,
            source: Box::new(e),
        }
    };
    let base_tree = match head {
        Some(id) => repo
            .find_commit(id)
            .map_err(|e| Error::Commit {
                what: "reading the head commit".into(),
                source: Box::new(e),
            })?
            .tree_id()
            .map_err(|e| Error::Commit {
                what: "reading the head tree".into(),
                source: Box::new(e),
            })?
            .detach(),
        None => ObjectId::empty_tree(repo.object_hash()),
    };
    let mut editor = repo
        .edit_tree(base_tree)
        .map_err(fail("opening the tree editor"))?;
    for change in &request.changes {
        let path = checked_path(&change.path)?;
        match &change.content {
            Some(content) => {
                let blob = repo
                    .write_blob(content)
                    .map_err(fail("writing a blob"))?
                    .detach();
                editor
                    .upsert(path.as_str(), EntryKind::Blob, blob)
                    .map_err(fail("editing the tree"))?;
            }
            None => {
                editor
                    .remove(path.as_str())
                    .map_err(fail("editing the tree"))?;
            }
        }
    }
    let tree = editor.write().map_err(fail("writing the tree"))?.detach();
    if let Some(head) = head.filter(|_| tree == base_tree) {
        return Ok((head, false));
    }
    let signature = gix::actor::Signature {
        name: request.author_name.as_str().into(),
        email: request.author_email.as_str().into(),
        time: gix::date::Time::now_utc(),
    };
    let commit = gix::objs::Commit {
        tree,
        parents: head.into_iter().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: request.message.as_str().into(),
        extra_headers: Vec::new(),
    };
    let id = repo
        .write_object(&commit)
        .map_err(fail("writing the commit"))?
        .detach();
    Ok((id, true))
}

fn checked_path(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let bad = path.is_empty()
        || path.starts_with('/')
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.eq_ignore_ascii_case(".git"))
        || path.contains(['\0', '\\']);
    if bad {
        Err(Error::InvalidPath(path.to_owned()))
    } else {
        Ok(path.to_owned())
    }
}

const ASKPASS: &str = "#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$FLOTILLA_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$FLOTILLA_GIT_PASSWORD\" ;;\nesac\n";

fn push(
    cache: &GitCache,
    url: &RepoUrl,
    prepared: &PreparedAuth,
    commit: ObjectId,
    branch: &str,
    timeout: Duration,
) -> Result<()> {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", prepared.dir())
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(cache.dir())
        .args(["push", "--porcelain", "--no-verify"])
        .arg(url.to_string())
        .arg(format!("{commit}:refs/heads/{branch}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut config: Vec<(&str, String)> = Vec::new();
    if let Some((user, pass)) = &prepared.basic {
        let askpass = prepared.write_script("askpass", ASKPASS)?;
        cmd.env("GIT_ASKPASS", askpass)
            .env("FLOTILLA_GIT_USERNAME", user)
            .env("FLOTILLA_GIT_PASSWORD", pass);
    }
    if let Some(header) = &prepared.bearer_header {
        config.push(("http.extraHeader", header.clone()));
    }
    if let Some(ca) = &prepared.ca_file {
        config.push(("http.sslCAInfo", ca.display().to_string()));
    }
    if let Some(ssh) = &prepared.ssh_command {
        cmd.env("GIT_SSH_COMMAND", ssh)
            .env("GIT_SSH_VARIANT", "ssh");
    }
    cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (key, value)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }

    let mut child = cmd.spawn().map_err(Error::Spawn)?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(Error::Spawn)? {
            break status;
        }
        if Instant::now() >= deadline {
            // Killing can only fail if the child already exited, which is fine.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let out = prepared.scrub(&collect(stdout));
    let err = prepared.scrub(&collect(stderr));
    if status.success() {
        return Ok(());
    }
    let mut message = format!("{} {}", err.trim(), out.trim()).trim().to_owned();
    if let Some(ssh) = prepared.ssh_diagnostics() {
        message = format!("{message}; ssh: {ssh}");
    }
    if out.contains("[rejected]") || err.contains("non-fast-forward") || err.contains("fetch first")
    {
        return Err(Error::Rejected {
            branch: branch.to_owned(),
            message,
        });
    }
    Err(Error::Push { message })
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error just truncates the message we report.
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_escape_or_touch_git_metadata_are_refused() {
        for bad in [
            "",
            "/abs",
            "a/../b",
            "./a",
            ".git/config",
            "a//b",
            "sub/.GIT/x",
        ] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            checked_path("clusters/prod/app.yaml").ok().as_deref(),
            Some("clusters/prod/app.yaml")
        );
    }
}
