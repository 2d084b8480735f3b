//! Semver constraints as Flux evaluates `spec.ref.semver` (Masterminds/semver syntax):
//! `>=1.0.0 <2.0.0`, `1.x`, `~1.2`, `^1`, `1.2 - 1.4`, `!=1.3.0`, `,` for AND, `||` for OR.
//!
//! Tags parse leniently as Masterminds does: an optional `v`, and missing minor or patch
//! numbers count as zero. A pre-release version only satisfies a range whose comparators
//! mention a pre-release.

use semver::{BuildMetadata, Prerelease, Version};

/// A parsed constraint: any of several groups, each group a conjunction of comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    comparators: Vec<Comparator>,
    allows_prerelease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comparator {
    /// `lo <= v < hi` style range; `None` means unbounded on that side.
    Within {
        lo: Option<Bound>,
        hi: Option<Bound>,
    },
    /// The complement of a range (`!=`).
    Outside {
        lo: Option<Bound>,
        hi: Option<Bound>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    version: Version,
    inclusive: bool,
}

/// A malformed constraint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver constraint '{constraint}': {reason}")]
pub struct ParseError {
    constraint: String,
    reason: String,
}

/// A version with possibly-missing parts (`1`, `1.2`, `1.x`).
#[derive(Debug, Clone)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

impl Constraint {
    /// Parses a Masterminds-style constraint.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let err = |reason: &str| ParseError {
            constraint: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.trim().is_empty() {
            return Err(err("the constraint is empty"));
        }
        let mut groups = Vec::new();
        for group_text in text.split("||") {
            let normalized = group_text.replace(',', " ");
            let mut tokens: Vec<String> = Vec::new();
            for token in normalized.split_whitespace() {
                // An operator written apart from its version (">= 1.2") joins the next token.
                match tokens.last_mut() {
                    Some(last) if is_operator(last) && token != "-" => last.push_str(token),
                    _ => tokens.push(token.to_owned()),
                }
            }
            if tokens.is_empty() {
                return Err(err("an empty alternative between '||'"));
            }
            let mut comparators = Vec::new();
            let mut allows_prerelease = false;
            let mut i = 0;
            while i < tokens.len() {
                if tokens.get(i + 1).map(String::as_str) == Some("-") {
                    let (Some(lo), Some(hi)) = (tokens.get(i), tokens.get(i + 2)) else {
                        return Err(err("a hyphen range needs a version on both sides"));
                    };
                    let lo = parse_partial(lo).map_err(|r| err(&r))?;
                    let hi = parse_partial(hi).map_err(|r| err(&r))?;
                    allows_prerelease |= !lo.pre.is_empty() || !hi.pre.is_empty();
                    comparators.push(Comparator::Within {
                        lo: Some(lower_inclusive(&lo)),
                        hi: upper_of_le(&hi),
                    });
                    i += 3;
                    continue;
                }
                let token = &tokens[i];
                if is_operator(token) {
                    return Err(err(&format!("operator '{token}' has no version")));
                }
                let (op, version) = split_operator(token);
                let partial = parse_partial(version).map_err(|r| err(&r))?;
                allows_prerelease |= !partial.pre.is_empty();
                comparators.push(comparator(op, &partial).map_err(|r| err(&r))?);
                i += 1;
            }
            groups.push(Group {
                comparators,
                allows_prerelease,
            });
        }
        Ok(Constraint { groups })
    }

    /// True if `version` satisfies the constraint.
    pub fn matches(&self, version: &Version) -> bool {
        self.groups.iter().any(|g| {
            (version.pre.is_empty() || g.allows_prerelease)
                && g.comparators.iter().all(|c| c.matches(version))
        })
    }
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        match self {
            Comparator::Within { lo, hi } => within(v, lo.as_ref(), hi.as_ref()),
            Comparator::Outside { lo, hi } => !within(v, lo.as_ref(), hi.as_ref()),
        }
    }
}

fn within(v: &Version, lo: Option<&Bound>, hi: Option<&Bound>) -> bool {
    let above = lo.is_none_or(|b| {
        if b.inclusive {
            cmp(v, &b.version).is_ge()
        } else {
            cmp(v, &b.version).is_gt()
        }
    });
    let below = hi.is_none_or(|b| {
        if b.inclusive {
            cmp(v, &b.version).is_le()
        } else {
            cmp(v, &b.version).is_lt()
        }
    });
    above && below
}

/// Semver precedence, ignoring build metadata.
fn cmp(a: &Version, b: &Version) -> std::cmp::Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

fn is_operator(token: &str) -> bool {
    matches!(
        token,
        "=" | "!=" | ">" | "<" | ">=" | "=>" | "<=" | "=<" | "~" | "~>" | "^"
    )
}

fn split_operator(token: &str) -> (&str, &str) {
    for op in ["!=", ">=", "=>", "<=", "=<", "~>", ">", "<", "=", "~", "^"] {
        if let Some(rest) = token.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", token)
}

fn version(major: u64, minor: u64, patch: u64, pre: &Prerelease) -> Version {
    Version {
        major,
        minor,
        patch,
        pre: pre.clone(),
        build: BuildMetadata::EMPTY,
    }
}

fn lower_inclusive(p: &Partial) -> Bound {
    Bound {
        version: version(
            p.major.unwrap_or(0),
            p.minor.unwrap_or(0),
            p.patch.unwrap_or(0),
            &p.pre,
        ),
        inclusive: true,
    }
}

/// The exclusive upper bound just past every version the partial stands for
/// (`1.2` -> `<1.3.0`), or an inclusive bound for a full version.
fn upper_of_le(p: &Partial) -> Option<Bound> {
    match (p.major, p.minor, p.patch) {
        (None, _, _) => None,
        (Some(ma), None, _) => Some(Bound {
            version: version(ma + 1, 0, 0, &Prerelease::EMPTY),
            inclusive: false,
        }),
        (Some(ma), Some(mi), None) => Some(Bound {
            version: version(ma, mi + 1, 0, &Prerelease::EMPTY),
            inclusive: false,
        }),
        (Some(ma), Some(mi), Some(pa)) => Some(Bound {
            version: version(ma, mi, pa, &p.pre),
            inclusive: true,
        }),
    }
}

fn comparator(op: &str, p: &Partial) -> Result<Comparator, String> {
    let exact = p.patch.is_some();
    let lo = lower_inclusive(p);
    Ok(match op {
        "" | "=" => Comparator::Within {
            lo: p.major.map(|_| lo),
            hi: upper_of_le(p),
        },
        "!=" => Comparator::Outside {
            lo: p.major.map(|_| lo),
            hi: upper_of_le(p),
        },
        ">=" | "=>" => Comparator::Within {
            lo: Some(lo),
            hi: None,
        },
        "<" => Comparator::Within {
            lo: None,
            hi: Some(Bound {
                version: lo.version,
                inclusive: false,
            }),
        },
        "<=" | "=<" => Comparator::Within {
            lo: None,
            hi: upper_of_le(p),
        },
        ">" => {
            let lo = if exact {
                Bound {
                    version: lo.version,
                    inclusive: false,
                }
            } else {
                match upper_of_le(p) {
                    Some(past) => Bound {
                        version: past.version,
                        inclusive: true,
                    },
                    // `>*` can match nothing.
                    None => return Ok(Comparator::Outside { lo: None, hi: None }),
                }
            };
            Comparator::Within {
                lo: Some(lo),
                hi: None,
            }
        }
        "~" | "~>" => {
            let hi = match (p.major, p.minor) {
                (None, _) => None,
                (Some(ma), None) => Some(version(ma + 1, 0, 0, &Prerelease::EMPTY)),
                (Some(ma), Some(mi)) => Some(version(ma, mi + 1, 0, &Prerelease::EMPTY)),
            };
            Comparator::Within {
                lo: Some(lo),
                hi: hi.map(|version| Bound {
                    version,
                    inclusive: false,
                }),
            }
        }
        "^" => {
            let hi = match (p.major, p.minor, p.patch) {
                (None, _, _) => None,
                (Some(0), None, _) => Some(version(1, 0, 0, &Prerelease::EMPTY)),
                (Some(0), Some(0), None) => Some(version(0, 1, 0, &Prerelease::EMPTY)),
                (Some(0), Some(0), Some(pa)) => Some(version(0, 0, pa + 1, &Prerelease::EMPTY)),
                (Some(0), Some(mi), _) => Some(version(0, mi + 1, 0, &Prerelease::EMPTY)),
                (Some(ma), _, _) => Some(version(ma + 1, 0, 0, &Prerelease::EMPTY)),
            };
            Comparator::Within {
                lo: Some(lo),
                hi: hi.map(|version| Bound {
                    version,
                    inclusive: false,
                }),
            }
        }
        other => return Err(format!("unknown operator '{other}'")),
    })
}

fn parse_partial(text: &str) -> Result<Partial, String> {
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    let text = text.split_once('+').map_or(text, |(v, _)| v);
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (
            core,
            Prerelease::new(pre).map_err(|e| format!("pre-release '{pre}': {e}"))?,
        ),
        None => (text, Prerelease::EMPTY),
    };
    let mut parts = core.split('.');
    let mut next = |name: &str| -> Result<Option<u64>, String> {
        match parts.next() {
            None | Some("x" | "X" | "*") => Ok(None),
            Some(n) => n
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("'{text}' has a non-numeric {name} '{n}'")),
        }
    };
    let (major, minor, patch) = (next("major")?, next("minor")?, next("patch")?);
    if parts.next().is_some() {
        return Err(format!("'{text}' has more than three numbers"));
    }
    // A wildcard anywhere makes everything after it a wildcard too.
    let minor = major.and(minor);
    let patch = minor.and(patch);
    Ok(Partial {
        major,
        minor,
        patch,
        pre,
    })
}

/// Parses a tag name as a version the way Flux does: optional `v`, missing parts are zero.
/// Returns `None` for tags that are not versions.
pub fn parse_tag(tag: &str) -> Option<Version> {
    let p = parse_partial(tag).ok()?;
    let major = p.major?;
    if tag.contains(['x', 'X', '*']) && !tag.contains('-') {
        return None;
    }
    Some(version(
        major,
        p.minor.unwrap_or(0),
        p.patch.unwrap_or(0),
        &p.pre,
    ))
}

/// Picks the highest of `tags` that satisfies `constraint`; ties go to the later name.
pub fn highest_matching<'a>(
    constraint: &Constraint,
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    tags.into_iter()
        .filter_map(|tag| parse_tag(tag).map(|v| (v, tag)))
        .filter(|(v, _)| constraint.matches(v))
        .max_by(|(a, ta), (b, tb)| cmp(a, b).then_with(|| ta.cmp(tb)))
        .map(|(_, tag)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        let constraint = Constraint::parse(c).expect(c);
        constraint.matches(&parse_tag(v).expect(v))
    }

    #[test]
    fn ranges_with_spaces_and_commas_are_conjunctions() {
        assert!(ok(">=1.0.0 <2.0.0", "1.9.9"));
        assert!(!ok(">=1.0.0 <2.0.0", "2.0.0"));
        assert!(ok(">= 1.0.0, < 2.0.0", "v1.0.0"));
        assert!(!ok(">=1.0.0, <2.0.0", "0.9.0"));
    }

    #[test]
    fn wildcards_tilde_and_caret_follow_masterminds() {
        assert!(ok("1.x", "1.7.3") && !ok("1.x", "2.0.0"));
        assert!(ok("*", "9.9.9"));
        assert!(ok("~1.2", "1.2.9") && !ok("~1.2", "1.3.0"));
        assert!(ok("~1.2.3", "1.2.4") && !ok("~1.2.3", "1.2.2"));
        assert!(ok("^1", "1.99.0") && !ok("^1", "2.0.0"));
        assert!(ok("^0.2.3", "0.2.9") && !ok("^0.2.3", "0.3.0"));
        assert!(ok("^0.0.3", "0.0.3") && !ok("^0.0.3", "0.0.4"));
        assert!(ok("1.2", "1.2.5") && !ok("1.2.3", "1.2.4"));
    }

    #[test]
    fn partial_bounds_cover_the_whole_partial_version() {
        assert!(ok("<=1.2", "1.2.9") && !ok("<=1.2", "1.3.0"));
        assert!(!ok(">1.2", "1.2.9") && ok(">1.2", "1.3.0"));
        assert!(ok(">1.2.3", "1.2.4") && !ok(">1.2.3", "1.2.3"));
        assert!(ok("1.2 - 1.4", "1.4.7") && !ok("1.2 - 1.4", "1.5.0"));
        assert!(ok("1.2.0 - 1.4.5", "1.4.5") && !ok("1.2.0 - 1.4.5", "1.4.6"));
        assert!(!ok("!=1.3.0", "1.3.0") && ok("!=1.3.0", "1.3.1"));
    }

    #[test]
    fn alternatives_are_separated_by_double_bars() {
        assert!(ok("<1.0.0 || >=3.0.0", "3.1.0"));
        assert!(!ok("<1.0.0 || >=3.0.0", "2.0.0"));
    }

    #[test]
    fn prereleases_only_match_ranges_that_mention_one() {
        assert!(!ok(">=1.0.0", "1.1.0-rc.1"));
        assert!(ok(">=1.1.0-0", "1.1.0-rc.1"));
    }

    #[test]
    fn malformed_constraints_are_rejected_with_the_reason() {
        for bad in ["", ">=", "1.2.3.4", "banana", ">=1.0.0 ||", "1.0 -"] {
            let err = Constraint::parse(bad).err();
            assert!(err.is_some(), "'{bad}' should be rejected");
        }
    }

    #[test]
    fn the_highest_matching_tag_wins_and_non_versions_are_skipped() {
        let c = Constraint::parse(">=1.0.0 <2.0.0").expect("valid");
        let tags = [
            "v0.9.0",
            "v1.0.0",
            "v1.10.0",
            "v1.9.0",
            "v2.0.0",
            "latest",
            "v1.11.0-rc.1",
        ];
        assert_eq!(highest_matching(&c, tags), Some("v1.10.0"));
        assert_eq!(
            highest_matching(&Constraint::parse("^3").expect("valid"), tags),
            None
        );
    }
}
