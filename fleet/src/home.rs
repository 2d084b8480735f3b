//! The fleet's data directory: its CA, server and admin credentials, and (until the
//! management cluster holds them) its cluster registrations.
//!
//! ```text
//! DIR/ca.crt ca.key              the fleet CA
//! DIR/server.crt server.key      the server certificate (agents and the API)
//! DIR/admin.crt admin.key        an admin client certificate for the CLI
//! DIR/admin-token                a bearer token for the API
//! DIR/clusters.json              cluster registrations and revocations (FileRegistry)
//! ```
//! Keys and the token are written with mode 0600; nothing here logs their content.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::pki::{Ca, Fingerprint, Identity, PkiError, SecretPem};

/// What can go wrong with the data directory.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `fleet init` would overwrite an existing CA.
    #[error(
        "{0} already holds a fleet CA; pass --force to replace it (every issued certificate stops working)"
    )]
    AlreadyInitialised(PathBuf),
    /// The directory has no CA yet.
    #[error("{0} holds no fleet CA; run `flotilla fleet init --dir {0}` first")]
    NotInitialised(PathBuf),
    /// Generating or loading a certificate failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The random source failed.
    #[error("random number generation failed")]
    Random,
}

/// Result with [`HomeError`].
pub type Result<T, E = HomeError> = std::result::Result<T, E>;

/// How long the CA lives.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long the server and admin certificates live.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// The data directory.
#[derive(Debug, Clone)]
pub struct FleetHome {
    dir: PathBuf,
}

/// What `fleet init` created, for the report (no secrets).
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The CA certificate's fingerprint.
    pub ca_fingerprint: Fingerprint,
    /// The server certificate's fingerprint.
    pub server_fingerprint: Fingerprint,
    /// The names the server certificate is valid for.
    pub server_names: Vec<String>,
}

impl FleetHome {
    /// The data directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FleetHome {
        FleetHome { dir: dir.into() }
    }

    /// `$FLOTILLA_HOME`, else `$HOME/.flotilla`, else `./.flotilla`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("FLOTILLA_HOME") {
            return PathBuf::from(dir);
        }
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".flotilla")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the files.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Creates the CA, the server certificate (for `localhost`, `127.0.0.1` and `extra_names`),
    /// an admin certificate and an API token.
    pub fn init(
        &self,
        fleet_name: &str,
        extra_names: &[String],
        force: bool,
    ) -> Result<InitReport> {
        if self.path("ca.crt").exists() && !force {
            return Err(HomeError::AlreadyInitialised(self.dir.clone()));
        }
        fs::create_dir_all(&self.dir).map_err(|source| HomeError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let ca = Ca::generate(fleet_name, CA_VALIDITY)?;
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        for name in extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let server = ca.issue_server(&names, SERVER_VALIDITY)?;
        let admin = ca.issue_client(&Identity::Admin("admin".into()), SERVER_VALIDITY)?;
        let mut token = [0u8; 32];
        aws_lc_rs::rand::fill(&mut token).map_err(|_| HomeError::Random)?;
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();

        self.write_public("ca.crt", ca.cert_pem())?;
        self.write_secret("ca.key", ca.key_pem().expose())?;
        self.write_public("server.crt", &server.cert_pem)?;
        self.write_secret("server.key", server.key_pem.expose())?;
        self.write_public("admin.crt", &admin.cert_pem)?;
        self.write_secret("admin.key", admin.key_pem.expose())?;
        self.write_secret("admin-token", &token)?;
        Ok(InitReport {
            ca_fingerprint: Fingerprint::of_pem(ca.cert_pem())?,
            server_fingerprint: server.fingerprint,
            server_names: names,
        })
    }

    /// Loads the CA with its key, to issue certificates.
    pub fn ca(&self) -> Result<Ca> {
        let cert = self.read_public("ca.crt")?;
        Ca::load(&cert, &self.read_secret("ca.key")?).map_err(HomeError::from)
    }

    /// Reads a public file (certificate).
    pub fn read_public(&self, file: &str) -> Result<String> {
        let path = self.path(file);
        fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound && file == "ca.crt" {
                HomeError::NotInitialised(self.dir.clone())
            } else {
                HomeError::Io { path, source }
            }
        })
    }

    /// Reads a secret file (key, token).
    pub fn read_secret(&self, file: &str) -> Result<SecretPem> {
        let path = self.path(file);
        let text = fs::read_to_string(&path).map_err(|source| HomeError::Io { path, source })?;
        // A token file may end with a newline an editor added; a PEM key is taken as it is.
        let text = if file.ends_with(".key") {
            text
        } else {
            text.trim().to_string()
        };
        Ok(SecretPem::new(text))
    }

    /// Writes a public file.
    pub fn write_public(&self, file: &str, content: &str) -> Result<()> {
        write_file(&self.path(file), content, 0o644)
    }

    /// Writes a secret file, readable by its owner only.
    pub fn write_secret(&self, file: &str, content: &str) -> Result<()> {
        write_file(&self.path(file), content, 0o600)
    }
}

/// Writes `content` to `path` with `mode`, replacing it atomically (a reader never sees half a
/// file, and a secret is never readable by others, not even briefly).
pub fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(content.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flotilla-home-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn init_writes_a_ca_that_can_issue_and_keeps_keys_private() {
        let dir = tempdir("init");
        let home = FleetHome::new(&dir);
        let report = home
            .init("test", &["fleet.example.com".into()], false)
            .expect("init");
        assert!(
            report
                .server_names
                .contains(&"fleet.example.com".to_string())
        );
        for key in ["ca.key", "server.key", "admin.key", "admin-token"] {
            let mode = fs::metadata(dir.join(key))
                .expect("exists")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        let ca = home.ca().expect("load");
        ca.issue_client(&Identity::Cluster("staging".into()), SERVER_VALIDITY)
            .expect("issue");
        let again = home
            .init("test", &[], false)
            .expect_err("refuses to overwrite");
        assert!(matches!(again, HomeError::AlreadyInitialised(_)));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_uninitialised_directory_says_how_to_initialise_it() {
        let home = FleetHome::new(tempdir("empty"));
        let err = home.ca().expect_err("no CA");
        assert!(err.to_string().contains("flotilla fleet init"), "{err}");
    }
}
