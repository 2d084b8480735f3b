//! The on-disk form of the store: a JSON-lines log, compacted into a snapshot at start-up.
//!
//! # Guarantees
//! A write is appended and `fsync`ed before the store applies it, so an acknowledged write
//! survives `kill -9`. A torn last line (a crash mid-append, never acknowledged) is dropped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::store::Key;

const LOG_NAME: &str = "kubesim.jsonl";

/// The append handle.
pub struct Log {
    path: PathBuf,
    file: File,
    /// Size of the snapshot the log starts with.
    snapshot: u64,
    /// Bytes appended since.
    appended: u64,
    /// Set when a compaction replaced the file but it could not be reopened: appends would go
    /// to the unlinked old file, so they fail instead.
    detached: bool,
}

/// What was recovered from a data directory.
pub struct Recovered {
    /// The last resourceVersion.
    pub rv: u64,
    /// The objects.
    pub objects: BTreeMap<Key, Arc<Value>>,
    /// The log, ready for appends.
    pub log: Log,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Persist {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads `dir` (creating it if needed), compacts its log and opens it for appending.
pub fn open(dir: &Path) -> Result<Recovered> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(LOG_NAME);
    let mut rv = 0u64;
    let mut objects = BTreeMap::new();
    if path.exists() {
        let file = File::open(&path).map_err(io_err(&path))?;
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(io_err(&path))?;
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                // Only the last record can be torn by a crash.
                Err(_) if i + 1 == count => break,
                Err(source) => {
                    return Err(Error::Corrupt {
                        path,
                        line: i + 1,
                        source,
                    });
                }
            };
            let rec_rv = rec.get("rv").and_then(Value::as_u64).unwrap_or(rv);
            rv = rv.max(rec_rv);
            let key: Option<Key> = rec
                .get("key")
                .and_then(|k| serde_json::from_value(k.clone()).ok());
            match (rec.get("op").and_then(Value::as_str), key) {
                (Some("put"), Some(key)) => {
                    if let Some(obj) = rec.get("object") {
                        objects.insert(key, Arc::new(obj.clone()));
                    }
                }
                (Some("del"), Some(key)) => {
                    objects.remove(&key);
                }
                _ => {}
            }
        }
    }
    let snapshot = write_snapshot(dir, &path, rv, &objects)?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok(Recovered {
        rv,
        objects,
        log: Log {
            path,
            file,
            snapshot,
            appended: 0,
            detached: false,
        },
    })
}

/// Writes the live objects to a new file and atomically replaces the log with it; returns its
/// size.
fn write_snapshot(
    dir: &Path,
    path: &Path,
    rv: u64,
    objects: &BTreeMap<Key, Arc<Value>>,
) -> Result<u64> {
    let tmp = dir.join(format!("{LOG_NAME}.tmp"));
    let mut buf = Vec::new();
    writeln!(buf, "{}", json!({"op": "rv", "rv": rv})).map_err(io_err(&tmp))?;
    for (key, obj) in objects {
        let line = json!({"op": "put", "rv": rv, "key": key, "object": &**obj});
        writeln!(buf, "{line}").map_err(io_err(&tmp))?;
    }
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&buf).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(buf.len() as u64)
}

/// The log is rewritten once appends exceed this and four times the last snapshot.
const COMPACT_AFTER: u64 = 64 * 1024 * 1024;

impl Log {
    fn append(&mut self, rec: &Value) -> std::io::Result<()> {
        if self.detached {
            return Err(std::io::Error::other(
                "the log could not be reopened after compaction",
            ));
        }
        let mut line = serde_json::to_vec(rec)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.appended += line.len() as u64;
        self.file.sync_data()
    }

    /// Records a create or update.
    pub fn append_put(&mut self, rv: u64, key: &Key, obj: &Value) -> std::io::Result<()> {
        self.append(&json!({"op": "put", "rv": rv, "key": key, "object": obj}))
    }

    /// Records a removal.
    pub fn append_delete(&mut self, rv: u64, key: &Key) -> std::io::Result<()> {
        self.append(&json!({"op": "del", "rv": rv, "key": key}))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log has grown enough to be rewritten as a snapshot.
    pub fn wants_compaction(&self) -> bool {
        self.appended > COMPACT_AFTER.max(4 * self.snapshot)
    }

    /// Rewrites the log as a snapshot of `objects` at `rv` (a crash in between leaves either
    /// the old log or the new snapshot, both complete).
    pub fn compact(&mut self, rv: u64, objects: &BTreeMap<Key, Arc<Value>>) -> Result<()> {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        self.snapshot = write_snapshot(&dir, &self.path, rv, objects)?;
        match OpenOptions::new().append(true).open(&self.path) {
            Ok(f) => {
                self.file = f;
                self.appended = 0;
                Ok(())
            }
            Err(source) => {
                self.detached = true;
                Err(Error::Persist {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_exactly_the_live_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = open(dir.path()).expect("open");
        let (a, b) = (
            Key::new("", "configmaps", "ns", "a"),
            Key::new("", "configmaps", "ns", "b"),
        );
        rec.log
            .append_put(2, &a, &json!({"metadata": {"name": "a"}}))
            .expect("put a");
        rec.log
            .append_put(3, &b, &json!({"metadata": {"name": "b"}}))
            .expect("put b");
        rec.log.append_delete(4, &a).expect("delete a");
        let live: BTreeMap<Key, Arc<Value>> =
            [(b.clone(), Arc::new(json!({"metadata": {"name": "b"}})))].into();
        rec.log.compact(4, &live).expect("compact");
        rec.log
            .append_put(5, &a, &json!({"metadata": {"name": "a2"}}))
            .expect("put after");
        drop(rec);
        let back = open(dir.path()).expect("reopen");
        assert_eq!(back.rv, 5);
        assert_eq!(back.objects.len(), 2);
        assert_eq!(back.objects[&a]["metadata"]["name"], "a2");
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_earlier_writes_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut rec = open(dir.path()).expect("open");
            let key = Key::new("", "configmaps", "default", "a");
            rec.log
                .append_put(5, &key, &json!({"metadata": {"name": "a"}}))
                .expect("append");
        }
        let path = dir.path().join(LOG_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"op\":\"put\",\"rv\":6,\"ke")
            .expect("write");
        drop(f);
        let rec = open(dir.path()).expect("reopen");
        assert_eq!(rec.rv, 5);
        assert_eq!(rec.objects.len(), 1);
    }
}
