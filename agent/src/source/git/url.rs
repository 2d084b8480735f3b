//! Validation of `spec.url` before anything touches the network.

use gix::bstr::ByteSlice;
use gix::url::Scheme;

use super::{Error, Result};

/// A Git remote URL that passed validation, with any embedded password taken out.
///
/// A password written into the URL (`https://user:pass@host/...`) is moved into
/// [`RepoUrl::embedded_credentials`] so that it never reaches gix, a log line or an error
/// message; [`std::fmt::Display`] shows the URL without it.
#[derive(Clone)]
pub struct RepoUrl {
    url: gix::Url,
    shown: String,
    embedded: Option<(String, String)>,
}

impl RepoUrl {
    /// Parses and checks a URL: `http(s)://`, `ssh://`, `git://`, `file://` or scp-like
    /// `user@host:path`. Anything else is a terminal error.
    pub fn parse(raw: &str) -> Result<Self> {
        let trimmed = raw.trim();
        let shown_raw = redact_raw(trimmed);
        if trimmed.is_empty() {
            return Err(Error::InvalidUrl {
                url: shown_raw,
                reason: "the URL is empty".into(),
            });
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidUrl {
                url: shown_raw,
                reason: "the URL contains whitespace or control characters".into(),
            });
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git" | "file") {
                return Err(Error::UnsupportedScheme {
                    scheme,
                    url: shown_raw,
                });
            }
        }
        let mut url =
            gix::url::parse(trimmed.as_bytes().as_bstr()).map_err(|e| Error::InvalidUrl {
                url: shown_raw.clone(),
                reason: e.to_string(),
            })?;
        let has_scheme = trimmed.contains("://");
        match &url.scheme {
            Scheme::Http | Scheme::Https | Scheme::Git => {
                if url.host().is_none_or(str::is_empty) {
                    return Err(Error::InvalidUrl {
                        url: shown_raw,
                        reason: "the URL has no host".into(),
                    });
                }
            }
            Scheme::Ssh => {
                if url.host().is_none_or(str::is_empty) {
                    return Err(Error::InvalidUrl {
                        url: shown_raw,
                        reason: "the URL has no host".into(),
                    });
                }
                if url.host_argument_safe().is_none() || url.user_argument_safe().is_none() {
                    return Err(Error::InvalidUrl {
                        url: shown_raw,
                        reason: "the host or user could be mistaken for an ssh option".into(),
                    });
                }
            }
            Scheme::File if has_scheme => {}
            Scheme::File => {
                return Err(Error::InvalidUrl {
                    url: shown_raw,
                    reason: "not a URL: expected https://, http://, ssh://, git://, file:// or user@host:path"
                        .into(),
                });
            }
            Scheme::Ext | Scheme::Helper(_) | Scheme::HelperUrl(_) => {
                return Err(Error::UnsupportedScheme {
                    scheme: url.scheme.as_str().to_owned(),
                    url: shown_raw,
                });
            }
        }
        if url.path.is_empty() || url.path_is_root() {
            return Err(Error::InvalidUrl {
                url: shown_raw,
                reason: "the URL has no repository path".into(),
            });
        }
        let embedded = url
            .set_password(None)
            .map(|password| (url.user().unwrap_or_default().to_owned(), password));
        let shown = url.to_bstring().to_string();
        Ok(RepoUrl {
            url,
            shown,
            embedded,
        })
    }

    /// The URL handed to gix and `git`: never contains a password.
    pub fn gix_url(&self) -> &gix::Url {
        &self.url
    }

    /// The scheme, for choosing how credentials apply.
    pub fn scheme(&self) -> &Scheme {
        &self.url.scheme
    }

    /// `(username, password)` that were written into the URL, if any.
    pub fn embedded_credentials(&self) -> Option<(&str, &str)> {
        self.embedded
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// True for ssh:// and scp-like URLs.
    pub fn is_ssh(&self) -> bool {
        matches!(self.url.scheme, Scheme::Ssh)
    }

    /// True for http:// and https:// URLs.
    pub fn is_http(&self) -> bool {
        matches!(self.url.scheme, Scheme::Http | Scheme::Https)
    }
}

impl std::fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RepoUrl").field(&self.shown).finish()
    }
}

/// Removes `:password` from `scheme://user:password@host` without parsing, for error
/// messages about URLs that do not parse.
fn redact_raw(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_form_parses() {
        for url in [
            "https://example.com/org/repo.git",
            "http://127.0.0.1:8080/repo",
            "ssh://git@example.com:2222/org/repo.git",
            "git@github.com:org/repo.git",
            "git://127.0.0.1:9418/repo.git",
            "file:///tmp/repo.git",
        ] {
            assert!(RepoUrl::parse(url).is_ok(), "{url} should parse");
        }
    }

    #[test]
    fn unknown_schemes_are_terminal_errors_naming_the_scheme() {
        let err = RepoUrl::parse("ftp://example.com/repo.git").expect_err("ftp is unsupported");
        assert!(err.is_terminal());
        assert!(
            err.to_string().contains("unsupported URL scheme 'ftp'"),
            "{err}"
        );
    }

    #[test]
    fn strings_that_are_not_urls_are_terminal_errors() {
        for bad in ["", "not a url", "/just/a/path", "https://", "https:///repo"] {
            let err = RepoUrl::parse(bad).expect_err(bad);
            assert!(err.is_terminal(), "{bad}: {err}");
        }
    }

    #[test]
    fn a_password_in_the_url_is_moved_out_and_never_displayed() {
        let url = RepoUrl::parse("https://alice:s3cret@example.com/repo.git").expect("valid");
        assert_eq!(url.embedded_credentials(), Some(("alice", "s3cret")));
        assert!(!url.to_string().contains("s3cret"));
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.gix_url().password().is_none());
        let err = RepoUrl::parse("gopher://alice:s3cret@example.com/repo").expect_err("bad scheme");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
