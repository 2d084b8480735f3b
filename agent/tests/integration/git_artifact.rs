//! Artifacts built from fetched commits: ignore rules, determinism, limits, symlinks, the
//! extractor and the artifact HTTP server.

use crate::support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use agent::source::artifact::{self, ArchiveLimits, ArtifactStore, SourceKey, StoredArtifact};
use agent::source::git::{Auth, GitCache, GitRef, RepoUrl, Resolved};
use support::Origin;

struct Fixture {
    _dir: tempfile::TempDir,
    cache: GitCache,
    store: ArtifactStore,
    key: SourceKey,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = GitCache::new(dir.path().join("cache"));
        let store = ArtifactStore::open(dir.path().join("store"), 2).expect("store");
        let key = SourceKey::new("gitrepository", "default", "app").expect("key");
        Fixture {
            _dir: dir,
            cache,
            store,
            key,
        }
    }

    fn fetch(&self, url: &str) -> Result<Resolved, agent::source::git::Error> {
        let url = RepoUrl::parse(url).expect("valid url");
        self.cache.fetch(
            &url,
            &GitRef::branch("main").expect("branch"),
            &Auth::none(),
            Duration::from_secs(60),
        )
    }

    fn package(
        &self,
        resolved: &Resolved,
        ignore: Option<&str>,
        limits: ArchiveLimits,
    ) -> artifact::Result<StoredArtifact> {
        let repo = self.cache.repository().expect("cache repo");
        artifact::package(
            &self.store,
            &self.key,
            &repo,
            resolved.commit,
            &resolved.revision,
            ignore,
            limits,
        )
    }

    fn artifact_for(&self, origin: &Origin, ignore: Option<&str>) -> StoredArtifact {
        let resolved = self.fetch(&origin.file_url()).expect("fetch");
        self.package(&resolved, ignore, ArchiveLimits::default())
            .expect("package")
    }

    /// Path -> (content, mode) of every regular file in a stored artifact.
    fn files(&self, artifact: &StoredArtifact) -> BTreeMap<String, (String, u32)> {
        let file = std::fs::File::open(self.store.root().join(&artifact.path)).expect("blob");
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut out = BTreeMap::new();
        for entry in tar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            assert!(
                matches!(
                    entry.header().entry_type(),
                    tar::EntryType::Regular | tar::EntryType::Directory
                ),
                "unexpected entry type {:?}",
                entry.header().entry_type()
            );
            if entry.header().entry_type() == tar::EntryType::Regular {
                let path = entry.path().expect("path").display().to_string();
                let mode = entry.header().mode().expect("mode");
                let mut content = String::new();
                entry.read_to_string(&mut content).expect("content");
                out.insert(path, (content, mode));
            }
        }
        out
    }
}

fn names(files: &BTreeMap<String, (String, u32)>) -> Vec<&str> {
    files.keys().map(String::as_str).collect()
}

const TREE: &[(&str, &str)] = &[
    ("deploy/app.yaml", "kind: ConfigMap\n"),
    ("README.md", "readme\n"),
    ("logo.png", "png\n"),
    (".github/workflows/ci.yml", "on: push\n"),
    (".gitignore", "target/\n"),
    ("docs/guide.md", "guide\n"),
];

#[test]
fn fluxs_default_exclusions_apply_when_the_repository_has_no_rules_of_its_own() {
    let origin = Origin::new(TREE);
    let fx = Fixture::new();
    let files = fx.files(&fx.artifact_for(&origin, None));
    assert_eq!(
        names(&files),
        vec!["README.md", "deploy/app.yaml", "docs/guide.md"]
    );
}

#[test]
fn spec_ignore_replaces_the_defaults_but_vcs_files_stay_excluded() {
    let origin = Origin::new(TREE);
    let fx = Fixture::new();
    let files = fx.files(&fx.artifact_for(&origin, Some("/docs/\n*.md\n!README.md\n")));
    assert_eq!(
        names(&files),
        vec![
            ".github/workflows/ci.yml",
            "README.md",
            "deploy/app.yaml",
            "logo.png"
        ],
    );
}

#[test]
fn sourceignore_files_apply_relative_to_their_directory() {
    let origin = Origin::new(&[
        ("apps/.sourceignore", "*.md\n/local.yaml\n"),
        ("apps/a.yaml", "a\n"),
        ("apps/NOTES.md", "n\n"),
        ("apps/local.yaml", "l\n"),
        ("apps/sub/local.yaml", "s\n"),
        ("README.md", "r\n"),
    ]);
    let fx = Fixture::new();
    let files = fx.files(&fx.artifact_for(&origin, None));
    assert_eq!(
        names(&files),
        vec![
            "README.md",
            "apps/.sourceignore",
            "apps/a.yaml",
            "apps/sub/local.yaml"
        ]
    );
}

#[test]
fn the_same_tree_always_gives_the_same_digest() {
    let origin = Origin::new(&[("deploy/app.yaml", "x: 1\n"), ("run.sh", "#!/bin/sh\n")]);
    let fx = Fixture::new();
    let first = fx.artifact_for(&origin, None);
    let again = fx.artifact_for(&origin, None);
    assert_eq!(first.digest, again.digest);
    origin.commit(&[], "empty commit, same tree");
    let same_tree = fx.artifact_for(&origin, None);
    assert_ne!(same_tree.revision, first.revision);
    assert_eq!(
        same_tree.digest, first.digest,
        "digest depends on content only"
    );
    assert!(first.digest.starts_with("sha256:") && first.digest.len() == 7 + 64);
    assert_eq!(first.path, format!("{}.tar.gz", &first.digest[7..]));
    let on_disk = std::fs::metadata(fx.store.root().join(&first.path))
        .expect("blob")
        .len();
    assert_eq!(first.size, on_disk);
}

#[test]
fn a_file_over_the_size_limit_fails_with_its_name() {
    let big = "x".repeat(4096);
    let origin = Origin::new(&[("small.yaml", "a: 1\n"), ("blobs/huge.bin", big.as_str())]);
    let fx = Fixture::new();
    let resolved = fx.fetch(&origin.file_url()).expect("fetch");
    let limits = ArchiveLimits {
        max_file_size: 1024,
        max_total_size: 1 << 20,
    };
    let err = fx.package(&resolved, None, limits).expect_err("too large");
    let message = err.to_string();
    assert!(
        message.contains("blobs/huge.bin") && message.contains("4096") && message.contains("1024"),
        "{message}"
    );
    assert!(err.is_terminal());
    assert_eq!(
        fx.store.latest(&fx.key).expect("history"),
        None,
        "nothing stored"
    );
}

#[test]
fn symlinks_are_never_followed_into_the_artifact() {
    let origin = Origin::new(&[("deploy/app.yaml", "kind: ConfigMap\n")]);
    origin.symlink("/etc/passwd", "passwd");
    origin.symlink("../../../../../../etc", "etc");
    origin.symlink("deploy/app.yaml", "inside.yaml");
    origin.commit(&[], "links");
    let fx = Fixture::new();
    let files = fx.files(&fx.artifact_for(&origin, None));
    assert_eq!(names(&files), vec!["deploy/app.yaml"]);
    assert!(
        files
            .values()
            .all(|(content, _)| !content.contains("root:"))
    );
}

#[test]
fn an_artifact_extracts_to_the_same_files_and_modes() {
    let origin = Origin::new(&[
        ("deploy/app.yaml", "x: 1\n"),
        ("scripts/run.sh", "#!/bin/sh\necho\n"),
    ]);
    let work = origin.dir.path().join("work/scripts/run.sh");
    let mut perms = std::fs::metadata(&work).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&work, perms).expect("chmod");
    origin.commit(&[], "executable");
    let fx = Fixture::new();
    let artifact = fx.artifact_for(&origin, None);
    let files = fx.files(&artifact);
    assert_eq!(files["scripts/run.sh"].1, 0o755);
    assert_eq!(files["deploy/app.yaml"].1, 0o644);

    let out = tempfile::tempdir().expect("tempdir");
    let blob = std::fs::File::open(fx.store.root().join(&artifact.path)).expect("blob");
    assert_eq!(
        artifact::extract(blob, out.path(), 1 << 20).expect("extract"),
        2
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("deploy/app.yaml")).expect("file"),
        "x: 1\n"
    );
    let mode = std::fs::metadata(out.path().join("scripts/run.sh"))
        .expect("script")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o755
    );
}

/// Runs the artifact server on its own actix system thread; returns its address.
fn serve(store: Arc<ArtifactStore>) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (server, addr) =
                agent::source::server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), store)
                    .expect("bind");
            tx.send((addr, server.handle())).expect("send");
            let _ = server.await;
        });
    });
    rx.recv().expect("server started")
}

/// A minimal HTTP/1.1 GET; returns (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, raw[split + 4..].to_vec())
}

#[test]
fn the_last_good_artifact_stays_stored_and_served_while_the_server_is_down() {
    let origin = Origin::new(&[("deploy/app.yaml", "x: 1\n")]);
    let mut daemon = support::git_daemon(&origin.repos_root());
    let url = format!("git://127.0.0.1:{}/origin.git", daemon.port);
    let fx = Fixture::new();
    let resolved = fx.fetch(&url).expect("fetch while up");
    let good = fx
        .package(&resolved, None, ArchiveLimits::default())
        .expect("package");

    daemon.stop();
    origin.commit(&[("deploy/app.yaml", "x: 2\n")], "unreachable change");
    let err = fx.fetch(&url).expect_err("server down");
    assert!(!err.is_terminal(), "{err}");
    assert_eq!(
        fx.store.latest(&fx.key).expect("history"),
        Some(good.clone())
    );

    let store = Arc::new(ArtifactStore::open(fx.store.root(), 2).expect("store"));
    let (addr, handle) = serve(store);
    let (status, body) = get(addr, &format!("/{}", good.path));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        std::fs::read(fx.store.root().join(&good.path)).expect("blob")
    );
    assert_eq!(get(addr, "/.history/gitrepository/default/app.json").0, 404);
    assert_eq!(get(addr, "/..%2f..%2fetc%2fpasswd").0, 404);
    assert_eq!(get(addr, &format!("/{}.tar.gz", "0".repeat(64))).0, 404);
    drop(handle.stop(false));
}

#[test]
fn older_artifacts_beyond_the_history_limit_are_garbage_collected() {
    let origin = Origin::new(&[("v", "1")]);
    let fx = Fixture::new();
    let first = fx.artifact_for(&origin, None);
    origin.commit(&[("v", "2")], "2");
    let second = fx.artifact_for(&origin, None);
    origin.commit(&[("v", "3")], "3");
    let third = fx.artifact_for(&origin, None);
    assert!(!fx.store.root().join(&first.path).exists(), "collected");
    assert!(
        fx.store.root().join(&second.path).exists() && fx.store.root().join(&third.path).exists()
    );
    let history: Vec<_> = fx
        .store
        .history(&fx.key)
        .expect("history")
        .into_iter()
        .map(|a| a.revision)
        .collect();
    assert_eq!(history, vec![third.revision, second.revision]);
}
