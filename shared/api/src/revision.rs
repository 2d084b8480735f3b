//! Revision strings as Flux writes them: `main@sha1:<40 hex>`, `v1.2.3@sha1:<hex>`,
//! `sha1:<hex>` for a bare commit, `<tag>@sha256:<hex>` for OCI artifacts.

use std::fmt;

/// A source revision: an optional human name (branch, tag, ref) and a content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// Branch, tag or ref name; absent for a commit or digest pinned directly.
    pub name: Option<String>,
    /// Digest algorithm, e.g. `sha1` for Git commits, `sha256` for OCI digests.
    pub algorithm: String,
    /// Lower-case hex digest.
    pub digest: String,
}

/// A revision string that is neither `<name>@<algo>:<hex>` nor `<algo>:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid revision {text:?}: expected <name>@<algorithm>:<hex> or <algorithm>:<hex>")]
pub struct InvalidRevision {
    pub text: String,
}

impl Revision {
    /// A Git commit reached through a branch or tag: `main@sha1:<hex>`.
    pub fn git(name: Option<&str>, commit_hex: &str) -> Self {
        Self {
            name: name.map(str::to_string),
            algorithm: "sha1".to_string(),
            digest: commit_hex.to_ascii_lowercase(),
        }
    }

    /// Parses a revision, accepting the legacy `main/<hex>` form Flux wrote before v1.
    pub fn parse(text: &str) -> Result<Self, InvalidRevision> {
        let invalid = || InvalidRevision {
            text: text.to_string(),
        };
        let (name, digest_part) = match text.rsplit_once('@') {
            Some((name, digest)) if !name.is_empty() => (Some(name), digest),
            Some(_) => return Err(invalid()),
            None => (None, text),
        };
        if let Some((algorithm, digest)) = digest_part.split_once(':') {
            if algorithm.is_empty() || !is_hex(digest) {
                return Err(invalid());
            }
            return Ok(Self {
                name: name.map(str::to_string),
                algorithm: algorithm.to_string(),
                digest: digest.to_ascii_lowercase(),
            });
        }
        // Legacy `<branch>/<sha1>` written by Flux v1beta1 sources.
        match (name, digest_part.rsplit_once('/')) {
            (None, Some((branch, sha))) if is_hex(sha) && sha.len() == 40 => {
                Ok(Self::git(Some(branch), sha))
            }
            _ => Err(invalid()),
        }
    }

    /// The commit (or digest) without the name, e.g. `sha1:<hex>`.
    pub fn digest_only(&self) -> String {
        format!("{}:{}", self.algorithm, self.digest)
    }

    /// A short form for tables: `main@sha1:0123abcd`.
    pub fn short(&self) -> String {
        let short: String = self.digest.chars().take(8).collect();
        match &self.name {
            Some(name) => format!("{name}@{}:{short}", self.algorithm),
            None => format!("{}:{short}", self.algorithm),
        }
    }
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}@{}:{}", self.algorithm, self.digest),
            None => write!(f, "{}:{}", self.algorithm, self.digest),
        }
    }
}

/// A content digest of an artifact as Flux writes it: `sha256:<hex>`.
pub fn sha256_digest(hex: &str) -> String {
    format!("sha256:{}", hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738";

    #[test]
    fn branch_tag_and_bare_commit_revisions_round_trip() {
        for text in [
            format!("main@sha1:{SHA}"),
            format!("v1.2.3@sha1:{SHA}"),
            format!("sha1:{SHA}"),
        ] {
            let revision = Revision::parse(&text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(revision.to_string(), text);
        }
    }

    #[test]
    fn a_ref_name_containing_slashes_keeps_them() {
        let revision = Revision::parse(&format!("refs/heads/feature/x@sha1:{SHA}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(revision.name.as_deref(), Some("refs/heads/feature/x"));
    }

    #[test]
    fn legacy_slash_revisions_are_understood() {
        let revision = Revision::parse(&format!("main/{SHA}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(revision, Revision::git(Some("main"), SHA));
    }

    #[test]
    fn malformed_revisions_are_refused() {
        for bad in [
            "",
            "main",
            "@sha1:abc",
            "main@sha1:",
            "main@sha1:xyz",
            "sha1",
        ] {
            assert!(Revision::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn short_revisions_keep_eight_hex_digits() {
        assert_eq!(
            Revision::git(Some("main"), SHA).short(),
            "main@sha1:5394cb7f"
        );
    }
}
