//! A content-addressed artifact store: `<root>/<sha256 hex>.tar.gz`.
//!
//! Each source keeps a short history (newest first) in `<root>/.history/<kind>/<ns>/<name>.json`;
//! a blob no history mentions is garbage-collected. Blobs are shared when two sources
//! produce the same bytes.
//!
//! # Guarantees
//! - A blob appears under its final name only when complete (written to a temporary file
//!   in the same directory, then renamed), so the HTTP server never serves a partial file.
//! - Blobs are not fsynced (an fsync per artifact costs more than building it): after a
//!   crash a blob may be truncated, which [`ArtifactStore::verify`] detects, and consumers
//!   check the digest anyway, as Flux's do.
//! - The newest artifact of every source survives garbage collection, whatever happens to
//!   later fetches: a failing source keeps serving its last good artifact.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Error, Result};

const HISTORY_DIR: &str = ".history";

/// Identifies a source: `kind/namespace/name`, e.g. `gitrepository/flux-system/podinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceKey {
    kind: String,
    namespace: String,
    name: String,
}

impl SourceKey {
    /// Validates each part as a Kubernetes-style name so it is safe as a path segment.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Result<Self> {
        for part in [kind, namespace, name] {
            let valid = !part.is_empty()
                && part.len() <= 253
                && part != "."
                && part != ".."
                && part.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid {
                return Err(Error::InvalidKey(format!("{kind}/{namespace}/{name}")));
            }
        }
        Ok(SourceKey {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    fn history_file(&self, root: &Path) -> PathBuf {
        root.join(HISTORY_DIR)
            .join(&self.kind)
            .join(&self.namespace)
            .join(format!("{}.json", self.name))
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// One stored artifact, in the shape of Flux's `status.artifact` (minus the URL, which
/// depends on where the store is served: see [`StoredArtifact::url`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredArtifact {
    /// Flux revision, e.g. `main@sha1:<hex>`.
    pub revision: String,
    /// `sha256:<hex>` of the tar.gz.
    pub digest: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
    /// File name relative to the store root: `<hex>.tar.gz`.
    pub path: String,
    /// When this artifact was stored.
    pub last_update_time: DateTime<Utc>,
}

impl StoredArtifact {
    /// The URL under which the artifact server at `base` (e.g. `http://10.0.0.5:9090`) serves it.
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}", base.trim_end_matches('/'), self.path)
    }
}

/// The store. Cheap to share behind an `Arc`; operations are serialised internally.
#[derive(Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    keep: usize,
    lock: Mutex<()>,
}

impl ArtifactStore {
    /// Opens (creating) a store at `root` that keeps the last `keep` artifacts per source.
    pub fn open(root: impl Into<PathBuf>, keep: usize) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(HISTORY_DIR))
            .map_err(|e| Error::io("creating the store", &root, e))?;
        Ok(ArtifactStore {
            root,
            keep: keep.max(1),
            lock: Mutex::new(()),
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a blob given its hex digest or `sha256:<hex>`; `None` if the digest is malformed.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        is_sha256_hex(hex).then(|| self.root.join(format!("{hex}.tar.gz")))
    }

    /// Writes an artifact with `write`, hashes it, stores it under its digest, records it as
    /// the newest artifact of `source`, and garbage-collects.
    pub fn put<E>(
        &self,
        source: &SourceKey,
        revision: &str,
        write: impl FnOnce(&mut dyn Write) -> std::result::Result<(), E>,
    ) -> std::result::Result<StoredArtifact, E>
    where
        E: From<Error>,
    {
        let mut temp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&self.root)
            .map_err(|e| Error::io("creating a temporary file in", &self.root, e))?;
        let (hasher, size) = {
            let file = std::io::BufWriter::new(temp.as_file_mut());
            let mut hashing = HashingWriter {
                inner: file,
                hasher: Sha256::new(),
                size: 0,
            };
            write(&mut hashing)?;
            let HashingWriter {
                mut inner,
                hasher,
                size,
            } = hashing;
            inner
                .flush()
                .map_err(|e| Error::io("writing", &self.root, e))?;
            (hasher, size)
        };
        let hex = format!("{:x}", hasher.finalize());
        let path = format!("{hex}.tar.gz");
        let final_path = self.root.join(&path);
        let artifact = StoredArtifact {
            revision: revision.to_owned(),
            digest: format!("sha256:{hex}"),
            size,
            path,
            last_update_time: Utc::now(),
        };
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        temp.persist(&final_path)
            .map_err(|e| Error::io("storing", &final_path, e.error))?;
        let mut history = self.read_history(source)?;
        history.retain(|a| a.digest != artifact.digest);
        history.insert(0, artifact.clone());
        history.truncate(self.keep);
        self.write_history(source, &history)?;
        self.collect_garbage_locked()?;
        Ok(artifact)
    }

    /// Re-hashes a stored blob: `Ok(false)` if it is missing or its bytes no longer match
    /// the digest (e.g. truncated by a crash), so the caller rebuilds it.
    pub fn verify(&self, artifact: &StoredArtifact) -> Result<bool> {
        let Some(path) = self.blob_path(&artifact.digest) else {
            return Err(Error::InvalidDigest(artifact.digest.clone()));
        };
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("opening", &path, e)),
        };
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io("reading", &path, e))?;
        Ok(format!("sha256:{:x}", hasher.finalize()) == artifact.digest)
    }

    /// The artifacts of `source`, newest first.
    pub fn history(&self, source: &SourceKey) -> Result<Vec<StoredArtifact>> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.read_history(source)
    }

    /// The newest artifact of `source`, if any.
    pub fn latest(&self, source: &SourceKey) -> Result<Option<StoredArtifact>> {
        Ok(self.history(source)?.into_iter().next())
    }

    /// Forgets a deleted source and collects its blobs.
    pub fn remove_source(&self, source: &SourceKey) -> Result<()> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = source.history_file(&self.root);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &file, e)),
        }
        self.collect_garbage_locked().map(drop)
    }

    /// Deletes every blob that no history references; returns how many were deleted.
    pub fn collect_garbage(&self) -> Result<usize> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<usize> {
        let mut deleted = 0;
        let mut live = HashSet::new();
        let mut stack = vec![self.root.join(HISTORY_DIR)];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|x| x == "json") {
                    for artifact in read_history_file(&path)? {
                        live.insert(artifact.path);
                    }
                }
            }
        }
        let entries =
            std::fs::read_dir(&self.root).map_err(|e| Error::io("listing", &self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_blob = name.strip_suffix(".tar.gz").is_some_and(is_sha256_hex);
            if is_blob && !live.contains(&name) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| Error::io("deleting", &path, e))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    fn read_history(&self, source: &SourceKey) -> Result<Vec<StoredArtifact>> {
        let file = source.history_file(&self.root);
        if !file.exists() {
            return Ok(Vec::new());
        }
        read_history_file(&file)
    }

    fn write_history(&self, source: &SourceKey, history: &[StoredArtifact]) -> Result<()> {
        let file = source.history_file(&self.root);
        let dir = file.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let json = serde_json::to_vec_pretty(history).map_err(|e| Error::History {
            path: file.display().to_string(),
            source: e,
        })?;
        let mut temp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io("writing", &file, e))?;
        temp.write_all(&json)
            .map_err(|e| Error::io("writing", &file, e))?;
        temp.persist(&file)
            .map_err(|e| Error::io("writing", &file, e.error))?;
        Ok(())
    }
}

fn read_history_file(path: &Path) -> Result<Vec<StoredArtifact>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::History {
        path: path.display().to_string(),
        source: e,
    })
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &ArtifactStore, key: &SourceKey, content: &[u8]) -> StoredArtifact {
        store
            .put::<Error>(key, "main@sha1:0", |w| {
                w.write_all(content)
                    .map_err(|e| Error::io("w", Path::new("-"), e))
            })
            .expect("stored")
    }

    #[test]
    fn blobs_are_named_by_the_sha256_of_their_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path(), 2).expect("store");
        let key = SourceKey::new("gitrepository", "default", "app").expect("key");
        let artifact = put(&store, &key, b"hello");
        assert_eq!(
            artifact.digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(artifact.size, 5);
        assert!(dir.path().join(&artifact.path).is_file());
        assert_eq!(
            artifact.url("http://127.0.0.1:9090/"),
            format!("http://127.0.0.1:9090/{}", artifact.path)
        );
    }

    #[test]
    fn only_the_last_n_artifacts_per_source_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path(), 2).expect("store");
        let a = SourceKey::new("gitrepository", "default", "a").expect("key");
        let b = SourceKey::new("gitrepository", "default", "b").expect("key");
        let first = put(&store, &a, b"one");
        let shared = put(&store, &b, b"one");
        put(&store, &a, b"two");
        put(&store, &a, b"three");
        let history: Vec<_> = store
            .history(&a)
            .expect("history")
            .into_iter()
            .map(|x| x.size)
            .collect();
        assert_eq!(history, vec![5, 3]);
        assert!(
            dir.path().join(&first.path).is_file(),
            "still referenced by source b"
        );
        store.remove_source(&b).expect("removed");
        assert!(
            !dir.path().join(&shared.path).exists(),
            "collected once unreferenced"
        );
        assert_eq!(store.latest(&a).expect("latest").map(|x| x.size), Some(5));
    }

    #[test]
    fn verification_detects_a_truncated_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path(), 2).expect("store");
        let key = SourceKey::new("gitrepository", "default", "app").expect("key");
        let artifact = put(&store, &key, b"complete content");
        assert!(store.verify(&artifact).expect("verify"));
        std::fs::write(dir.path().join(&artifact.path), b"compl").expect("truncate");
        assert!(!store.verify(&artifact).expect("verify"));
        std::fs::remove_file(dir.path().join(&artifact.path)).expect("rm");
        assert!(!store.verify(&artifact).expect("verify"));
    }

    #[test]
    fn keys_that_could_escape_the_store_are_refused() {
        assert!(SourceKey::new("gitrepository", "..", "x").is_err());
        assert!(SourceKey::new("gitrepository", "ns", "a/b").is_err());
        assert!(SourceKey::new("gitrepository", "ns", "").is_err());
    }

    #[test]
    fn malformed_digests_have_no_blob_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path(), 1).expect("store");
        assert!(store.blob_path("../etc/passwd").is_none());
        assert!(
            store
                .blob_path(&format!("sha256:{}", "a".repeat(64)))
                .is_some()
        );
    }
}
