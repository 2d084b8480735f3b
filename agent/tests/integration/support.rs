//! Real Git servers on 127.0.0.1 for the Git-layer tests, started and stopped by the tests:
//! `git daemon`, `git http-backend` behind lighttpd (basic auth and bearer token), and sshd.
//! Each server is killed when its handle drops.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command, panicking with its output if it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    cmd
}

/// A bare "origin" repository plus a working clone to make commits in.
pub struct Origin {
    pub dir: tempfile::TempDir,
    /// Path of the bare repository (`<root>/repos/origin.git`).
    pub bare: PathBuf,
    work: PathBuf,
}

impl Origin {
    /// An origin with one commit on `main` containing `files`.
    pub fn new(files: &[(&str, &str)]) -> Origin {
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = dir.path().join("repos/origin.git");
        std::fs::create_dir_all(&bare).expect("mkdir");
        run(git(&bare).args(["init", "--bare", "-q", "-b", "main"]));
        run(git(&bare).args(["config", "http.receivepack", "true"]));
        let work = dir.path().join("work");
        run(git(dir.path()).args(["init", "-q", "-b", "main", "work"]));
        run(git(&work).args(["remote", "add", "origin"]).arg(&bare));
        let origin = Origin { dir, bare, work };
        origin.commit(files, "initial");
        origin
    }

    /// The directory holding `origin.git` (base path for servers).
    pub fn repos_root(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    /// `file://` URL of the bare repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes files (empty content deletes), commits and pushes `main`; returns the commit.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let full = self.work.join(path);
            if content.is_empty() {
                let _ = std::fs::remove_file(&full);
                continue;
            }
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write");
        }
        run(git(&self.work).args(["add", "-A"]));
        run(git(&self.work).args(["commit", "-q", "--allow-empty", "-m", message]));
        run(git(&self.work).args(["push", "-q", "origin", "HEAD:refs/heads/main"]));
        self.head()
    }

    /// Makes a symlink in the working tree (committed by the next [`Origin::commit`]).
    pub fn symlink(&self, target: &str, link: &str) {
        std::os::unix::fs::symlink(target, self.work.join(link)).expect("symlink");
    }

    /// The commit at HEAD of the working clone.
    pub fn head(&self) -> String {
        run(git(&self.work).args(["rev-parse", "HEAD"]))
    }

    /// Creates a tag at HEAD (annotated when `annotated`) and pushes it.
    pub fn tag(&self, name: &str, annotated: bool) {
        if annotated {
            run(git(&self.work).args(["tag", "-a", "-m", name, name]));
        } else {
            run(git(&self.work).args(["tag", name]));
        }
        run(git(&self.work).args(["push", "-q", "origin", &format!("refs/tags/{name}")]));
    }

    /// Pushes HEAD to an arbitrary ref, e.g. `refs/pull/1/head`.
    pub fn push_ref(&self, refname: &str) {
        run(git(&self.work).args(["push", "-q", "origin", &format!("HEAD:{refname}")]));
    }

    /// Rewrites history: a new root commit with `files`, force-pushed to `main`.
    pub fn force_push_new_history(&self, files: &[(&str, &str)]) -> String {
        run(git(&self.work).args(["checkout", "-q", "--orphan", "rewritten"]));
        run(git(&self.work).args(["rm", "-rq", "--cached", "."]));
        for entry in std::fs::read_dir(&self.work).expect("ls") {
            let path = entry.expect("entry").path();
            if path.file_name().is_some_and(|n| n != ".git") {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).expect("rm");
                } else {
                    std::fs::remove_file(&path).expect("rm");
                }
            }
        }
        for (path, content) in files {
            let full = self.work.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write");
        }
        run(git(&self.work).args(["add", "-A"]));
        run(git(&self.work).args(["commit", "-q", "-m", "rewritten"]));
        run(git(&self.work).args(["push", "-q", "-f", "origin", "HEAD:refs/heads/main"]));
        self.head()
    }

    /// Content of `path` on the origin's `main`, via `git show`.
    pub fn show(&self, path: &str) -> String {
        run(git(&self.bare).args(["show", &format!("main:{path}")]))
    }

    /// Commit of `main` in the bare origin.
    pub fn origin_main(&self) -> String {
        run(git(&self.bare).args(["rev-parse", "refs/heads/main"]))
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts a server with `spawn(port)` on a free port, retrying on another port if the
/// child exits before listening (another test may have taken the port in between).
fn spawn_listening(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        if wait_for_port(port, &mut child, what) {
            return (child, port);
        }
    }
    panic!("{what} exited before listening, on five different ports");
}

/// Waits until something accepts connections on `port`: `false` if the child exited
/// first; panics after 20s.
fn wait_for_port(port: u16, child: &mut Child, what: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    true
}

/// A child process killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Stops the server now (the "server down" case).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `git daemon` serving every repository under `root`, with push enabled.
pub fn git_daemon(root: &Path) -> Server {
    // Run git-daemon itself: `git daemon` would fork it, and killing `git` would leave it up.
    let daemon = format!("{}/git-daemon", run(Command::new("git").arg("--exec-path")));
    let (child, port) = spawn_listening("git daemon", |port| {
        Command::new(&daemon)
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon")
    });
    Server {
        child,
        port,
        _dir: None,
    }
}

/// lighttpd running `git http-backend` for repositories under `root`:
/// `/basic/<repo>` requires HTTP basic auth (`user`/`password`),
/// `/bearer/<repo>` requires `Authorization: Bearer <token>`.
pub fn lighttpd(root: &Path, user: &str, password: &str, token: &str) -> Server {
    lighttpd_with(
        root,
        user,
        password,
        token,
        tempfile::tempdir().expect("tempdir"),
        "",
    )
}

/// Like [`lighttpd`], over HTTPS with a certificate for 127.0.0.1 issued by a CA generated
/// here; returns the server and the CA certificate (PEM) a Secret's `ca.crt` would hold.
pub fn lighttpd_tls(root: &Path, user: &str, password: &str) -> (Server, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "flotilla test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    let cert = params.signed_by(&key, &ca).expect("server cert");
    std::fs::write(dir.path().join("server.crt"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("key");
    let tls = format!(
        "server.modules += (\"mod_openssl\")\nssl.engine = \"enable\"\nssl.pemfile = \"{d}/server.crt\"\nssl.privkey = \"{d}/server.key\"\n",
        d = dir.path().display()
    );
    let server = lighttpd_with(root, user, password, "unused-token", dir, &tls);
    (server, ca.pem())
}

fn lighttpd_with(
    root: &Path,
    user: &str,
    password: &str,
    token: &str,
    dir: tempfile::TempDir,
    extra: &str,
) -> Server {
    let backend = format!(
        "{}/git-http-backend",
        run(Command::new("git").arg("--exec-path"))
    );
    std::fs::write(dir.path().join("users"), format!("{user}:{password}\n")).expect("users");
    std::fs::create_dir_all(dir.path().join("www")).expect("www");
    let conf_path = dir.path().join("lighttpd.conf");
    let (child, port) = spawn_listening("lighttpd", |port| {
        let conf = format!(
            r#"server.modules = ("mod_access", "mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi")
server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
auth.backend = "plain"
auth.backend.plain.userfile = "{dir}/users"
setenv.add-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
$HTTP["url"] =~ "^/basic/" {{
  alias.url = ("/basic" => "{backend}")
  cgi.assign = ("" => "")
  auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
}}
$HTTP["url"] =~ "^/bearer/" {{
  alias.url = ("/bearer" => "{backend}")
  cgi.assign = ("" => "")
  $REQUEST_HEADER["Authorization"] != "Bearer {token}" {{
    url.access-deny = ("")
  }}
}}
{extra}"#,
            www = dir.path().join("www").display(),
            dir = dir.path().display(),
            root = root.display(),
        );
        std::fs::write(&conf_path, conf).expect("conf");
        Command::new("lighttpd")
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lighttpd (apt-get install lighttpd)")
    });
    Server {
        child,
        port,
        _dir: Some(dir),
    }
}

/// sshd on a free port with a generated host key, accepting one generated client key for
/// the current user. `identity` and `known_hosts` are what a Flux Secret would hold.
pub struct Sshd {
    pub server: Server,
    pub user: String,
    pub identity: Vec<u8>,
    /// A second authorized key, encrypted with [`ENCRYPTED_KEY_PASSPHRASE`].
    pub encrypted_identity: Vec<u8>,
    pub known_hosts: Vec<u8>,
    /// A known_hosts line for a different key, to test host-key verification.
    pub wrong_known_hosts: Vec<u8>,
}

/// The passphrase of [`Sshd::encrypted_identity`].
pub const ENCRYPTED_KEY_PASSPHRASE: &str = "key-passphrase-77";

pub fn sshd() -> Sshd {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keygen = |name: &str| {
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(d.join(name)));
    };
    keygen("host_key");
    keygen("client_key");
    keygen("other_key");
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            ENCRYPTED_KEY_PASSPHRASE,
            "-C",
            "encrypted",
            "-f",
        ])
        .arg(d.join("encrypted_key")));
    let authorized = [
        std::fs::read_to_string(d.join("client_key.pub")).expect("client key"),
        std::fs::read_to_string(d.join("encrypted_key.pub")).expect("encrypted key"),
    ]
    .concat();
    std::fs::write(d.join("authorized_keys"), authorized).expect("authorized_keys");
    let user = run(Command::new("id").arg("-un"));
    // Debian's sshd insists on its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("sshd");
    let (child, port) = spawn_listening("sshd", |port| {
        let conf = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
PermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\nLogLevel ERROR\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), conf).expect("sshd_config");
        Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (apt-get install openssh-server)")
    });
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host key");
    let other_pub = std::fs::read_to_string(d.join("other_key.pub")).expect("other key");
    let entry = |key: &str| {
        let mut parts = key.split_whitespace();
        let (kind, body) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        format!("[127.0.0.1]:{port} {kind} {body}\n").into_bytes()
    };
    Sshd {
        identity: std::fs::read(d.join("client_key")).expect("identity"),
        encrypted_identity: std::fs::read(d.join("encrypted_key")).expect("encrypted identity"),
        known_hosts: entry(&host_pub),
        wrong_known_hosts: entry(&other_pub),
        user,
        server: Server {
            child,
            port,
            _dir: Some(dir),
        },
    }
}

/// A TCP server that accepts connections and never answers (for timeouts).
pub struct Silent {
    pub port: u16,
    _listener: TcpListener,
}

pub fn silent_server() -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    Silent {
        port,
        _listener: listener,
    }
}
