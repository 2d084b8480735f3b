//! Credentials from a Flux-style Secret, and their short-lived on-disk form for one
//! Git operation.
//!
//! Flux's keys: `username` + `password` (HTTP basic), `bearerToken` (HTTP bearer),
//! `identity` + `known_hosts` (+ optional `password` as the key passphrase) for SSH, and
//! `ca.crt` for a private CA.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Error, RepoUrl, Result};

/// Credentials for one Git remote. `Debug` never shows secret values.
#[derive(Clone, Default)]
pub struct Auth {
    username: Option<String>,
    password: Option<String>,
    bearer_token: Option<String>,
    identity: Option<Vec<u8>>,
    known_hosts: Option<Vec<u8>>,
    ca_cert: Option<Vec<u8>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("known_hosts", &self.known_hosts.is_some())
            .field("ca_cert", &self.ca_cert.is_some())
            .finish()
    }
}

impl Auth {
    /// No credentials: public repositories and local servers.
    pub fn none() -> Self {
        Self::default()
    }

    /// HTTP basic authentication.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Self::default()
        }
    }

    /// HTTP bearer token (`Authorization: Bearer ...`).
    pub fn bearer(token: impl Into<String>) -> Self {
        Auth {
            bearer_token: Some(token.into()),
            ..Self::default()
        }
    }

    /// An SSH private key (OpenSSH or PEM) and the known_hosts lines that pin the server.
    pub fn ssh(identity: impl Into<Vec<u8>>, known_hosts: impl Into<Vec<u8>>) -> Self {
        Auth {
            identity: Some(identity.into()),
            known_hosts: Some(known_hosts.into()),
            ..Self::default()
        }
    }

    /// Adds a CA bundle (PEM) trusted for HTTPS.
    pub fn with_ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert = Some(pem.into());
        self
    }

    /// Reads Flux's Secret keys from a Secret's decoded `data`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let text = |key: &str| -> Result<Option<String>> {
            data.get(key)
                .map(|v| {
                    String::from_utf8(v.clone())
                        .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                        .map_err(|_| {
                            Error::InvalidCredentials(format!("Secret key '{key}' is not UTF-8"))
                        })
                })
                .transpose()
        };
        let auth = Auth {
            username: text("username")?,
            password: text("password")?,
            bearer_token: text("bearerToken")?,
            identity: data.get("identity").cloned(),
            known_hosts: data.get("known_hosts").cloned(),
            ca_cert: data.get("ca.crt").or_else(|| data.get("caFile")).cloned(),
        };
        if auth.password.is_some() && auth.username.is_none() && auth.identity.is_none() {
            return Err(Error::InvalidCredentials(
                "Secret has 'password' but no 'username'".into(),
            ));
        }
        // A line break would end the header or askpass answer early and smuggle in another.
        for (key, value) in [
            ("username", &auth.username),
            ("password", &auth.password),
            ("bearerToken", &auth.bearer_token),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.contains(['\n', '\r', '\0']))
            {
                return Err(Error::InvalidCredentials(format!(
                    "Secret key '{key}' contains a line break"
                )));
            }
        }
        if auth.bearer_token.is_some() && auth.username.is_some() {
            return Err(Error::InvalidCredentials(
                "Secret has both 'bearerToken' and 'username': use one of basic or bearer authentication".into(),
            ));
        }
        Ok(auth)
    }

    /// Username and password for HTTP, from the Secret or else the URL.
    pub(crate) fn basic_for<'a>(&'a self, url: &'a RepoUrl) -> Option<(&'a str, &'a str)> {
        match (&self.username, &self.password) {
            (Some(user), Some(pass)) if self.identity.is_none() => Some((user, pass)),
            (Some(user), None) if self.identity.is_none() => Some((user, "")),
            _ => url.embedded_credentials(),
        }
    }

    /// The secret strings that must never appear in messages.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        [self.password.as_deref(), self.bearer_token.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| s.len() >= 3)
            .collect()
    }

    /// Writes the files this operation needs into a private (0700) temporary directory.
    pub(crate) fn prepare(&self, url: &RepoUrl, timeout_secs: u64) -> Result<PreparedAuth> {
        if url.is_ssh() && self.identity.is_some() && self.known_hosts.is_none() {
            return Err(Error::InvalidCredentials(
                "SSH authentication requires 'known_hosts' in the Secret".into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("flotilla-git-auth-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| cache_io("creating a private directory for credentials", e))?;
        let mut prepared = PreparedAuth {
            ssh_command: None,
            ca_file: None,
            ca_pem: self.ca_cert.clone(),
            bearer_header: self
                .bearer_token
                .as_ref()
                .map(|t| format!("Authorization: Bearer {t}")),
            basic: self
                .basic_for(url)
                .map(|(u, p)| (u.to_owned(), p.to_owned())),
            secrets: self.secrets().into_iter().map(str::to_owned).collect(),
            dir,
        };
        if let Some(ca) = &self.ca_cert {
            prepared.ca_file = Some(prepared.write("ca.crt", ca, 0o600)?);
        }
        if url.is_ssh() {
            prepared.ssh_command = Some(self.write_ssh_wrapper(&prepared, timeout_secs)?);
        }
        Ok(prepared)
    }

    fn write_ssh_wrapper(&self, prepared: &PreparedAuth, timeout_secs: u64) -> Result<PathBuf> {
        let known_hosts = match &self.known_hosts {
            Some(lines) => prepared.write("known_hosts", lines, 0o600)?,
            None => PathBuf::from("/dev/null"),
        };
        let mut script = String::from("#!/bin/sh\n");
        let mut opts = vec![
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-o".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".to_owned(),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "-o".to_owned(),
            "PasswordAuthentication=no".to_owned(),
            "-o".to_owned(),
            "KbdInteractiveAuthentication=no".to_owned(),
            "-o".to_owned(),
            format!("ConnectTimeout={}", timeout_secs.max(1)),
        ];
        match &self.identity {
            Some(key) => {
                let mut key = key.clone();
                // OpenSSH refuses a key file without a final newline.
                if !key.ends_with(b"\n") {
                    key.push(b'\n');
                }
                let identity = prepared.write("identity", &key, 0o600)?;
                opts.extend([
                    "-o".to_owned(),
                    "IdentitiesOnly=yes".to_owned(),
                    "-i".to_owned(),
                    identity.display().to_string(),
                ]);
                if let Some(passphrase) = &self.password {
                    // ssh reads a passphrase only from a terminal or SSH_ASKPASS; the helper
                    // prints it from a private file so it never appears in argv or env.
                    let secret = prepared.write("passphrase", passphrase.as_bytes(), 0o600)?;
                    let askpass = format!(
                        "#!/bin/sh\nexec cat {}\n",
                        shell_quote(&secret.display().to_string())
                    );
                    let askpass = prepared.write("askpass", askpass.as_bytes(), 0o700)?;
                    let _ = writeln!(
                        script,
                        "SSH_ASKPASS={} SSH_ASKPASS_REQUIRE=force DISPLAY=none; export SSH_ASKPASS SSH_ASKPASS_REQUIRE DISPLAY",
                        shell_quote(&askpass.display().to_string())
                    );
                } else {
                    opts.extend(["-o".to_owned(), "BatchMode=yes".to_owned()]);
                }
            }
            None => opts.extend(["-o".to_owned(), "BatchMode=yes".to_owned()]),
        }
        script.push_str("exec ssh");
        for opt in &opts {
            script.push(' ');
            script.push_str(&shell_quote(opt));
        }
        // ssh's own diagnostics ("Host key verification failed.", "Permission denied") go to
        // a private file so they end up in the error message instead of the agent's stderr.
        let log = prepared.dir.path().join("ssh-stderr");
        script.push_str(&format!(
            " \"$@\" 2>>{}\n",
            shell_quote(&log.display().to_string())
        ));
        prepared.write("ssh", script.as_bytes(), 0o700)
    }
}

/// Credentials written to a private temporary directory for the duration of one
/// operation; the directory is removed on drop.
pub(crate) struct PreparedAuth {
    dir: tempfile::TempDir,
    /// Executable that runs `ssh` with the identity and known_hosts of the Secret.
    pub ssh_command: Option<PathBuf>,
    /// CA bundle for HTTPS, as a file for `git`.
    pub ca_file: Option<PathBuf>,
    /// CA bundle for HTTPS, PEM, for gix's HTTP client.
    pub ca_pem: Option<Vec<u8>>,
    /// `Authorization` header for bearer tokens.
    pub bearer_header: Option<String>,
    /// HTTP basic credentials.
    pub basic: Option<(String, String)>,
    secrets: Vec<String>,
}

impl PreparedAuth {
    fn write(&self, name: &str, content: &[u8], mode: u32) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| cache_io("writing a credentials file", e))?;
        file.write_all(content)
            .map_err(|e| cache_io("writing a credentials file", e))?;
        Ok(path)
    }

    /// The private directory, for helpers such as `GIT_ASKPASS`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes an executable helper script into the private directory.
    pub fn write_script(&self, name: &str, content: &str) -> Result<PathBuf> {
        self.write(name, content.as_bytes(), 0o700)
    }

    /// The last lines ssh wrote to its stderr, scrubbed, if any.
    pub fn ssh_diagnostics(&self) -> Option<String> {
        self.ssh_command.as_ref()?;
        let text = std::fs::read_to_string(self.dir.path().join("ssh-stderr")).ok()?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '@'))
            .collect();
        let tail = lines[lines.len().saturating_sub(2)..].join("; ");
        (!tail.is_empty()).then(|| self.scrub(&tail))
    }

    /// Replaces every secret value in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, self.secrets.iter().map(String::as_str))
    }

    /// gix configuration overrides (in memory only) that apply these credentials.
    pub fn gix_overrides(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(ssh) = &self.ssh_command {
            out.push(format!("core.sshCommand={}", ssh.display()));
            out.push("ssh.variant=ssh".to_owned());
        }
        if let Some(ca) = &self.ca_file {
            out.push(format!("http.sslCAInfo={}", ca.display()));
        }
        if let Some(header) = &self.bearer_header {
            out.push(format!("http.extraHeader={header}"));
        }
        out
    }
}

/// Replaces each of `secrets` in `text` with `***`.
pub(crate) fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
    }
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn cache_io(what: &str, e: std::io::Error) -> Error {
    Error::Cache {
        path: std::env::temp_dir().display().to_string(),
        message: what.to_owned(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn flux_secret_keys_select_the_authentication_method() {
        let url = RepoUrl::parse("https://example.com/r.git").expect("url");
        let basic = Auth::from_secret_data(&secret(&[("username", "u"), ("password", "p4ss")]))
            .expect("basic");
        assert_eq!(basic.basic_for(&url), Some(("u", "p4ss")));
        let bearer = Auth::from_secret_data(&secret(&[("bearerToken", "tok3n")])).expect("bearer");
        let prepared = bearer.prepare(&url, 5).expect("prepare");
        assert!(
            prepared
                .gix_overrides()
                .contains(&"http.extraHeader=Authorization: Bearer tok3n".to_owned())
        );
    }

    #[test]
    fn values_with_line_breaks_are_refused_without_echoing_them() {
        let err = Auth::from_secret_data(&secret(&[("bearerToken", "abc\nX-Evil: 1")]))
            .expect_err("line break");
        assert!(
            err.is_terminal() && !err.to_string().contains("abc"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_hides_every_secret_value() {
        let auth = Auth::from_secret_data(&secret(&[
            ("username", "u"),
            ("password", "hunter22"),
            ("identity", "PRIVATE KEY"),
        ]))
        .expect("valid");
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("hunter22") && !shown.contains("PRIVATE KEY"),
            "{shown}"
        );
    }

    #[test]
    fn ssh_identity_without_known_hosts_is_a_terminal_error() {
        let url = RepoUrl::parse("ssh://git@example.com/r.git").expect("url");
        let auth = Auth::from_secret_data(&secret(&[("identity", "KEY")])).expect("parsed");
        let err = auth
            .prepare(&url, 5)
            .err()
            .expect("known_hosts is required");
        assert!(
            err.is_terminal() && err.to_string().contains("known_hosts"),
            "{err}"
        );
    }

    #[test]
    fn credential_files_are_private_to_the_agent_user() {
        let url = RepoUrl::parse("ssh://git@example.com/r.git").expect("url");
        let prepared = Auth::ssh("KEY", "host ssh-ed25519 AAAA")
            .prepare(&url, 5)
            .expect("prepare");
        let mode = std::fs::metadata(prepared.dir())
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "directory mode {mode:o}");
        let key = std::fs::metadata(prepared.dir().join("identity"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(key & 0o077, 0, "key mode {key:o}");
    }

    #[test]
    fn scrubbing_replaces_each_secret() {
        assert_eq!(
            scrub("a hunter22 b tok", ["hunter22", "tok"]),
            "a *** b ***"
        );
    }
}
