//! Flux's `spec.ref`: which refs to fetch, and how the fetched refs resolve to a commit
//! and a revision string.

use gix::ObjectId;

use super::semver::{self, Constraint};
use super::{Error, Result};

/// A validated `spec.ref`.
///
/// Precedence is Flux's: `commit` > `name` > `semver` > `tag` > `branch`; with nothing set,
/// the branch `master` (Flux's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// Follow the head of a branch. Revision `<branch>@sha1:<hex>`.
    Branch(String),
    /// A fixed tag (lightweight or annotated). Revision `<tag>@sha1:<hex>`.
    Tag(String),
    /// The highest tag that satisfies a semver constraint. Revision `<tag>@sha1:<hex>`.
    Semver {
        /// The constraint as written, for messages.
        text: String,
        /// The parsed constraint.
        constraint: Constraint,
    },
    /// A full reference name such as `refs/pull/42/head`. Revision `<name>@sha1:<hex>`.
    Name(String),
    /// One commit, optionally looked up on a branch. Revision `sha1:<hex>`, or
    /// `<branch>@sha1:<hex>` with a branch.
    Commit {
        /// The commit.
        id: ObjectId,
        /// The branch expected to contain it.
        branch: Option<String>,
    },
}

impl std::fmt::Display for GitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitRef::Branch(b) => write!(f, "branch '{b}'"),
            GitRef::Tag(t) => write!(f, "tag '{t}'"),
            GitRef::Semver { text, .. } => write!(f, "semver '{text}'"),
            GitRef::Name(n) => write!(f, "ref '{n}'"),
            GitRef::Commit {
                id,
                branch: Some(b),
            } => write!(f, "commit '{id}' on branch '{b}'"),
            GitRef::Commit { id, branch: None } => write!(f, "commit '{id}'"),
        }
    }
}

/// A reference as the remote advertised it, after the fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteRef {
    /// Full name, e.g. `refs/heads/main`.
    pub name: String,
    /// The object the ref points to, peeled through annotated tags when the remote said so.
    pub target: ObjectId,
}

/// What a [`GitRef`] resolved to before the commit itself is checked locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    /// The object to peel to a commit.
    pub object: ObjectId,
    /// The revision string, minus the `sha1:<hex>` part (`None` for a bare commit).
    pub revision_prefix: Option<String>,
}

impl GitRef {
    /// Builds the reference from the `spec.ref` fields, applying Flux's precedence.
    pub fn from_spec(
        branch: Option<&str>,
        tag: Option<&str>,
        semver: Option<&str>,
        name: Option<&str>,
        commit: Option<&str>,
    ) -> Result<Self> {
        if let Some(commit) = set(commit) {
            let id = parse_sha(commit)?;
            let branch = set(branch).map(validated_branch).transpose()?;
            return Ok(GitRef::Commit { id, branch });
        }
        if let Some(name) = set(name) {
            if !name.starts_with("refs/") {
                return Err(Error::InvalidReference(format!(
                    "ref name '{name}' must be a full reference name starting with 'refs/'"
                )));
            }
            check_ref_name(name)?;
            return Ok(GitRef::Name(name.to_owned()));
        }
        if let Some(text) = set(semver) {
            let constraint =
                Constraint::parse(text).map_err(|e| Error::InvalidReference(e.to_string()))?;
            return Ok(GitRef::Semver {
                text: text.to_owned(),
                constraint,
            });
        }
        if let Some(tag) = set(tag) {
            check_ref_name(&format!("refs/tags/{tag}"))?;
            return Ok(GitRef::Tag(tag.to_owned()));
        }
        Ok(GitRef::Branch(validated_branch(
            set(branch).unwrap_or("master"),
        )?))
    }

    /// A branch reference.
    pub fn branch(name: &str) -> Result<Self> {
        Self::from_spec(Some(name), None, None, None, None)
    }

    /// The refspecs to fetch: only what this reference needs, force-updated so rewritten
    /// history is followed.
    pub(crate) fn refspecs(&self) -> Vec<String> {
        match self {
            GitRef::Branch(b)
            | GitRef::Commit {
                branch: Some(b), ..
            } => vec![format!("+refs/heads/{b}:refs/heads/{b}")],
            GitRef::Tag(t) => vec![format!("+refs/tags/{t}:refs/tags/{t}")],
            GitRef::Semver { .. } => vec!["+refs/tags/*:refs/tags/*".to_owned()],
            GitRef::Name(n) => vec![format!("+{n}:{n}")],
            GitRef::Commit { branch: None, .. } => {
                vec![
                    "+refs/heads/*:refs/heads/*".to_owned(),
                    "+refs/tags/*:refs/tags/*".to_owned(),
                ]
            }
        }
    }

    /// Picks the advertised ref this reference means; `url` is only for messages.
    pub(crate) fn select(&self, remote: &[RemoteRef], url: &str) -> Result<Selected> {
        let find = |full: &str| remote.iter().find(|r| r.name == full).map(|r| r.target);
        let not_found = |reference: String| Error::ReferenceNotFound {
            reference,
            url: url.to_owned(),
        };
        match self {
            GitRef::Branch(b) => Ok(Selected {
                object: find(&format!("refs/heads/{b}"))
                    .ok_or_else(|| not_found(format!("branch '{b}'")))?,
                revision_prefix: Some(b.clone()),
            }),
            GitRef::Tag(t) => Ok(Selected {
                object: find(&format!("refs/tags/{t}"))
                    .ok_or_else(|| not_found(format!("tag '{t}'")))?,
                revision_prefix: Some(t.clone()),
            }),
            GitRef::Name(n) => Ok(Selected {
                object: find(n).ok_or_else(|| not_found(format!("ref '{n}'")))?,
                revision_prefix: Some(n.clone()),
            }),
            GitRef::Semver { text, constraint } => {
                let tags = remote
                    .iter()
                    .filter_map(|r| r.name.strip_prefix("refs/tags/"));
                let tag = semver::highest_matching(constraint, tags).ok_or_else(|| {
                    Error::NoMatchingTag {
                        constraint: text.clone(),
                        url: url.to_owned(),
                    }
                })?;
                Ok(Selected {
                    object: find(&format!("refs/tags/{tag}"))
                        .ok_or_else(|| not_found(format!("tag '{tag}'")))?,
                    revision_prefix: Some(tag.to_owned()),
                })
            }
            GitRef::Commit { id, branch } => {
                if let Some(b) = branch {
                    find(&format!("refs/heads/{b}"))
                        .ok_or_else(|| not_found(format!("branch '{b}'")))?;
                }
                Ok(Selected {
                    object: *id,
                    revision_prefix: branch.clone(),
                })
            }
        }
    }
}

/// Flux's revision string for `commit` reached through `prefix`.
pub(crate) fn revision(prefix: Option<&str>, commit: &ObjectId) -> String {
    match prefix {
        Some(p) => format!("{p}@sha1:{commit}"),
        None => format!("sha1:{commit}"),
    }
}

fn set(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

fn validated_branch(branch: &str) -> Result<String> {
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    check_ref_name(&format!("refs/heads/{branch}"))?;
    Ok(branch.to_owned())
}

fn check_ref_name(full: &str) -> Result<()> {
    gix::refs::FullName::try_from(full)
        .map(|_| ())
        .map_err(|e| {
            Error::InvalidReference(format!("'{full}' is not a valid reference name: {e}"))
        })
}

fn parse_sha(text: &str) -> Result<ObjectId> {
    if text.len() != 40 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidReference(format!(
            "commit '{text}' is not a full 40-character SHA-1"
        )));
    }
    ObjectId::from_hex(text.to_ascii_lowercase().as_bytes())
        .map_err(|e| Error::InvalidReference(format!("commit '{text}': {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn id(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.as_bytes()).expect("hex")
    }

    fn remote() -> Vec<RemoteRef> {
        [
            ("refs/heads/main", SHA),
            ("refs/tags/v1.2.0", SHA),
            ("refs/pull/7/head", SHA),
        ]
        .iter()
        .map(|(n, h)| RemoteRef {
            name: (*n).to_owned(),
            target: id(h),
        })
        .collect()
    }

    #[test]
    fn flux_precedence_is_commit_then_name_then_semver_then_tag_then_branch() {
        let r = GitRef::from_spec(
            Some("main"),
            Some("v1"),
            Some("1.x"),
            Some("refs/pull/7/head"),
            Some(SHA),
        );
        assert!(matches!(r, Ok(GitRef::Commit { branch: Some(ref b), .. }) if b == "main"));
        let r = GitRef::from_spec(
            Some("main"),
            Some("v1"),
            Some("1.x"),
            Some("refs/pull/7/head"),
            None,
        );
        assert_eq!(r.ok(), Some(GitRef::Name("refs/pull/7/head".into())));
        let r = GitRef::from_spec(Some("main"), Some("v1"), Some("1.x"), None, None);
        assert!(matches!(r, Ok(GitRef::Semver { .. })));
        let r = GitRef::from_spec(Some("main"), Some("v1"), None, None, None);
        assert_eq!(r.ok(), Some(GitRef::Tag("v1".into())));
        assert_eq!(
            GitRef::from_spec(None, None, None, None, None).ok(),
            Some(GitRef::Branch("master".into()))
        );
    }

    #[test]
    fn revisions_have_fluxs_shape_for_every_kind_of_ref() {
        let commit = id(SHA);
        let cases = [
            (
                GitRef::branch("main").expect("branch"),
                format!("main@sha1:{SHA}"),
            ),
            (GitRef::Tag("v1.2.0".into()), format!("v1.2.0@sha1:{SHA}")),
            (
                GitRef::from_spec(None, None, Some("^1"), None, None).expect("semver"),
                format!("v1.2.0@sha1:{SHA}"),
            ),
            (
                GitRef::Name("refs/pull/7/head".into()),
                format!("refs/pull/7/head@sha1:{SHA}"),
            ),
            (
                GitRef::Commit {
                    id: commit,
                    branch: None,
                },
                format!("sha1:{SHA}"),
            ),
            (
                GitRef::Commit {
                    id: commit,
                    branch: Some("main".into()),
                },
                format!("main@sha1:{SHA}"),
            ),
        ];
        for (reference, expected) in cases {
            let selected = reference.select(&remote(), "u").expect("resolves");
            assert_eq!(
                revision(selected.revision_prefix.as_deref(), &commit),
                expected
            );
        }
    }

    #[test]
    fn malformed_refs_are_terminal_errors() {
        for (branch, semver, name, commit) in [
            (Some("bad..name"), None, None, None),
            (None, Some(">=banana"), None, None),
            (None, None, Some("pull/7/head"), None),
            (None, None, None, Some("abc123")),
        ] {
            let err = GitRef::from_spec(branch, None, semver, name, commit).expect_err("invalid");
            assert!(err.is_terminal(), "{err}");
        }
    }

    #[test]
    fn a_missing_branch_is_a_retryable_not_found_error() {
        let err = GitRef::branch("gone")
            .expect("valid")
            .select(&remote(), "u")
            .expect_err("missing");
        assert!(
            !err.is_terminal() && err.to_string().contains("branch 'gone'"),
            "{err}"
        );
    }
}
