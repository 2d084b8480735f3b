//! Flux's exclusion rules for Git artifacts, with gitignore semantics.
//!
//! Lowest to highest precedence (a later match wins, `!pattern` re-includes):
//! 1. VCS files, always: `.git/`, `.gitignore`, `.gitmodules`, `.gitattributes`.
//! 2. Flux's defaults (images, archives, CI and tool configs) — only when the repository has
//!    no `.sourceignore` file and `spec.ignore` is unset, as in source-controller.
//! 3. `.sourceignore` files, each relative to its own directory.
//! 4. `spec.ignore`, relative to the repository root.

use gix::bstr::BStr;
use gix::glob::pattern::Case;
use gix::ignore::search::Ignore;

/// Always excluded.
pub const VCS_PATTERNS: &str = ".git/\n.gitignore\n.gitmodules\n.gitattributes\n";

/// Excluded unless the user supplies their own rules.
pub const DEFAULT_PATTERNS: &str = "*.jpg\n*.jpeg\n*.gif\n*.png\n*.wmv\n*.flv\n*.tar.gz\n*.zip\n\
.github/\n.circleci/\n.travis.yml\n.gitlab-ci.yml\nappveyor.yml\n.drone.yml\ncloudbuild.yaml\n\
codeship-services.yml\ncodeship-steps.yml\n**/.goreleaser.yml\n**/.sops.yaml\n**/.flux.yaml\n";

/// The name of per-directory ignore files.
pub const SOURCEIGNORE: &str = ".sourceignore";

/// A compiled set of exclusion rules.
pub struct IgnoreRules {
    search: gix::ignore::Search,
}

impl std::fmt::Debug for IgnoreRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgnoreRules")
            .field("lists", &self.search.patterns.len())
            .finish()
    }
}

impl IgnoreRules {
    /// Builds the rules from `spec.ignore` and the `.sourceignore` files found, given as
    /// `(directory relative to the root, "" for the root; file content)`.
    pub fn new(spec_ignore: Option<&str>, sourceignore_files: &[(String, Vec<u8>)]) -> Self {
        let parse = Ignore {
            support_precious: false,
        };
        let mut search = gix::ignore::Search::default();
        let root = std::path::Path::new("/");
        let mut add = |bytes: &[u8], dir: &str| {
            let source = root.join(dir).join(SOURCEIGNORE);
            // Only fails for a source without a parent, which a joined path always has.
            let _ = search.add_patterns_buffer(bytes, source, Some(root), parse);
        };
        add(VCS_PATTERNS.as_bytes(), "");
        let user_rules = spec_ignore.is_some() || !sourceignore_files.is_empty();
        if !user_rules {
            add(DEFAULT_PATTERNS.as_bytes(), "");
        }
        let mut files: Vec<_> = sourceignore_files.iter().collect();
        // Deeper files are more specific and take precedence, as they would in Git.
        files.sort_by_key(|(dir, _)| {
            (
                dir.matches('/').count() + usize::from(!dir.is_empty()),
                dir.clone(),
            )
        });
        for (dir, content) in files {
            add(content, dir);
        }
        if let Some(rules) = spec_ignore {
            add(rules.as_bytes(), "");
        }
        IgnoreRules { search }
    }

    /// True if `path` (relative, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str, is_dir: bool) -> bool {
        self.search
            .pattern_matching_relative_path(BStr::new(path), Some(is_dir), Case::Sensitive)
            .is_some_and(|m| !m.pattern.is_negative())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcs_files_are_always_excluded() {
        let rules = IgnoreRules::new(Some("!.gitignore\n"), &[]);
        assert!(rules.is_excluded(".git", true));
        assert!(rules.is_excluded("sub/.gitmodules", false));
        assert!(
            !rules.is_excluded(".gitignore", false),
            "a user rule can re-include"
        );
    }

    #[test]
    fn defaults_apply_only_without_user_rules() {
        let defaults = IgnoreRules::new(None, &[]);
        assert!(defaults.is_excluded("img/logo.png", false));
        assert!(defaults.is_excluded(".github", true));
        assert!(defaults.is_excluded("deep/.sops.yaml", false));
        assert!(!defaults.is_excluded("deploy/app.yaml", false));
        let custom = IgnoreRules::new(Some("docs/\n"), &[]);
        assert!(!custom.is_excluded("img/logo.png", false));
        assert!(custom.is_excluded("docs", true));
    }

    #[test]
    fn sourceignore_rules_are_relative_to_their_directory() {
        let rules = IgnoreRules::new(None, &[("apps".into(), b"*.md\n/local.yaml\n".to_vec())]);
        assert!(rules.is_excluded("apps/README.md", false));
        assert!(rules.is_excluded("apps/x/NOTES.md", false));
        assert!(rules.is_excluded("apps/local.yaml", false));
        assert!(!rules.is_excluded("apps/x/local.yaml", false));
        assert!(!rules.is_excluded("README.md", false));
    }

    #[test]
    fn spec_ignore_wins_over_sourceignore() {
        let rules = IgnoreRules::new(Some("!keep.md\n"), &[(String::new(), b"*.md\n".to_vec())]);
        assert!(rules.is_excluded("other.md", false));
        assert!(!rules.is_excluded("keep.md", false));
    }
}
