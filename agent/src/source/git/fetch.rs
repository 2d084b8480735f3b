//! The bare cache of one source and the incremental fetch into it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;
use gix::sec::identity::Account;

use super::reference::{RemoteRef, revision};
use super::{Auth, BoxError, Error, GitRef, RepoUrl, Result, error_chain};

/// A commit resolved from `spec.ref`, present in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit.
    pub commit: ObjectId,
    /// Flux's revision string, e.g. `main@sha1:<hex>`.
    pub revision: String,
}

/// A bare repository used as the fetch cache of one source.
///
/// The first fetch clones; later fetches transfer only new objects. The repository is
/// opened in isolation: the agent's own git configuration, environment and credential
/// helpers never apply.
///
/// # Guarantees
/// - Secrets never reach argv, the repository's configuration on disk, or messages.
/// - Refs are force-updated, so rewritten (force-pushed) history is followed.
///
/// # Assumptions
/// - One fetch at a time per cache directory (one actor owns one cache). A fetch abandoned
///   on timeout may still be finishing in the background; a following fetch that meets its
///   ref locks fails and is retried.
#[derive(Debug, Clone)]
pub struct GitCache {
    dir: PathBuf,
}

impl GitCache {
    /// A cache in `dir` (created on first fetch).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        GitCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the cache repository, creating it if needed.
    pub fn repository(&self) -> Result<gix::Repository> {
        self.open_with(Vec::new())
    }

    fn open_with(&self, overrides: Vec<String>) -> Result<gix::Repository> {
        if !self.dir.join("HEAD").exists() {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| self.cache_error("creating the directory", e))?;
            gix::init_bare(&self.dir)
                .map_err(|e| self.cache_error("initialising a bare repository", e))?;
        }
        // Git's own default delta-base cache; unset (isolated), gix resolves every delta
        // chain from scratch and archiving a tree gets about three times slower.
        let mut overrides = overrides;
        overrides.push("core.deltaBaseCacheLimit=96m".to_owned());
        let options = gix::open::Options::isolated().config_overrides(overrides);
        gix::open_opts(&self.dir, options)
            .map_err(|e| self.cache_error("opening the repository", e))
    }

    /// Fetches what `reference` needs from `url` and resolves it to a commit.
    ///
    /// Blocks for at most about `timeout`: the transfer runs on its own thread and is
    /// interrupted when the time is up.
    pub fn fetch(
        &self,
        url: &RepoUrl,
        reference: &GitRef,
        auth: &Auth,
        timeout: Duration,
    ) -> Result<Resolved> {
        let prepared = auth.prepare(url, timeout.as_secs())?;
        let repo = self.open_with(prepared.gix_overrides())?;
        let shown = url.to_string();
        let specs = reference.refspecs();
        let gix_url = url.gix_url().clone();
        let basic = prepared.basic.clone();
        let basic_configured = basic.is_some();
        let ca_pem = prepared.ca_pem.clone();
        let interrupt = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread_interrupt = Arc::clone(&interrupt);
        let thread_repo = repo.into_sync();
        std::thread::Builder::new()
            .name("flotilla-git-fetch".into())
            .spawn(move || {
                let repo = thread_repo.to_thread_local();
                let result = fetch_refs(&repo, gix_url, &specs, basic, ca_pem, &thread_interrupt);
                // The receiver may have given up on timeout; nothing to do then.
                let _ = tx.send(result);
            })
            .map_err(|e| self.cache_error("starting the fetch thread", e))?;
        let remote = match rx.recv_timeout(timeout) {
            Ok(Ok(refs)) => refs,
            Ok(Err(source)) => {
                let mut message = prepared.scrub(&error_chain(source.as_ref()));
                // gix reports a ref the remote lacks as a refspec that matched nothing.
                if message.contains("None of the refspec") {
                    return Err(Error::ReferenceNotFound {
                        reference: reference.to_string(),
                        url: shown,
                    });
                }
                // gix asks for credentials again when the remote refuses the ones it sent,
                // so the same error means "none configured" or "rejected".
                if message.contains("No credentials were returned") {
                    message = if basic_configured {
                        "authentication failed: the remote refused the username and password of \
                         spec.secretRef"
                            .to_owned()
                    } else {
                        "authentication required: the remote asked for credentials and none are \
                         configured (spec.secretRef with 'username' and 'password', or 'bearerToken')"
                            .to_owned()
                    };
                }
                if let Some(ssh) = prepared.ssh_diagnostics() {
                    message = format!("{message}: ssh: {ssh}");
                }
                return Err(Error::Fetch {
                    url: shown,
                    source: Box::new(Scrubbed(message.clone())),
                    message,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                interrupt.store(true, Ordering::SeqCst);
                return Err(Error::Timeout {
                    url: shown,
                    after: timeout,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Fetch {
                    url: shown,
                    message: "the fetch thread ended without a result".into(),
                    source: Box::new(Scrubbed("fetch thread panicked".into())),
                });
            }
        };
        drop(prepared);
        self.resolve(reference, &remote, &shown)
    }

    fn resolve(&self, reference: &GitRef, remote: &[RemoteRef], url: &str) -> Result<Resolved> {
        let selected = reference.select(remote, url)?;
        let repo = self.repository()?;
        let object = match repo.try_find_object(selected.object) {
            Ok(Some(object)) => object,
            Ok(None) if matches!(reference, GitRef::Commit { .. }) => {
                return Err(Error::CommitNotFound {
                    commit: selected.object.to_string(),
                    url: url.to_owned(),
                });
            }
            Ok(None) => {
                return Err(self.cache_error(
                    "reading the fetched object",
                    Scrubbed(format!(
                        "object {} is missing after the fetch",
                        selected.object
                    )),
                ));
            }
            Err(e) => return Err(self.cache_error("reading the fetched object", e)),
        };
        let commit = object
            .peel_to_commit()
            .map_err(|e| self.cache_error("peeling the reference to a commit", e))?;
        let id = commit.id;
        Ok(Resolved {
            commit: id,
            revision: revision(selected.revision_prefix.as_deref(), &id),
        })
    }

    fn cache_error(&self, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Cache {
            path: self.dir.display().to_string(),
            message: format!("{what}: {e}"),
            source: Box::new(e),
        }
    }
}

fn fetch_refs(
    repo: &gix::Repository,
    url: gix::Url,
    specs: &[String],
    basic: Option<(String, String)>,
    ca_pem: Option<Vec<u8>>,
    interrupt: &AtomicBool,
) -> std::result::Result<Vec<RemoteRef>, BoxError> {
    let is_http = matches!(url.scheme, gix::url::Scheme::Http | gix::url::Scheme::Https);
    let transport_options = match ca_pem {
        Some(pem) if is_http => Some(http_options_with_ca(repo, &url, pem)?),
        _ => None,
    };
    let remote = repo
        .remote_at(url)?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(
            specs.iter().map(String::as_str),
            gix::remote::Direction::Fetch,
        )?;
    let connection = remote
        .connect(gix::remote::Direction::Fetch)?
        .with_credentials(move |action| match action {
            // Answer only with the Secret's credentials: never a prompt or a system helper.
            Action::Get(ctx) => Ok(basic.as_ref().map(|(username, password)| Outcome {
                identity: Account {
                    username: username.clone(),
                    password: password.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            })),
            Action::Store(_) | Action::Erase(_) => Ok(None),
        });
    let connection = match transport_options {
        Some(options) => connection.with_transport_options(options),
        None => connection,
    };
    let outcome = connection
        .prepare_fetch(gix::progress::Discard, Default::default())?
        .receive(gix::progress::Discard, interrupt)?;
    Ok(outcome
        .ref_map
        .remote_refs
        .iter()
        .filter_map(|r| {
            let (name, target, peeled) = r.unpack();
            let target = peeled.or(target)?;
            Some(RemoteRef {
                name: name.to_string(),
                target: target.to_owned(),
            })
        })
        .collect())
}

/// The repository's HTTP options plus a client hook that trusts the Secret's `ca.crt` in
/// addition to the system roots (as Flux does).
fn http_options_with_ca(
    repo: &gix::Repository,
    url: &gix::Url,
    pem: Vec<u8>,
) -> std::result::Result<Box<dyn std::any::Any>, BoxError> {
    use gix_transport::client::blocking_io::http;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("parsing ca.crt: {e}"))?;
    if certs.is_empty() {
        return Err("ca.crt holds no PEM certificate".into());
    }
    let url_text = url.to_bstring();
    let mut options = match repo.transport_options(url_text.as_bstr(), None)? {
        Some(any) => *any
            .downcast::<http::Options>()
            .map_err(|_| "unexpected HTTP transport options")?,
        None => http::Options::default(),
    };
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(
            move |builder: reqwest::blocking::ClientBuilder| {
                Ok(builder.tls_certs_merge(certs.clone()))
            },
        )),
        configure_request: None,
    };
    options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
    Ok(Box::new(options))
}

/// An error message that has already been scrubbed of secrets.
#[derive(Debug)]
struct Scrubbed(String);

impl std::fmt::Display for Scrubbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Scrubbed {}
