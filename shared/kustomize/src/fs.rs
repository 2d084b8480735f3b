//! The filesystem abstraction the engine reads through, rooted at one directory.
//!
//! Paths handed to a [`FileSystem`] are normalized relative paths (`a/b.yaml`, `""` for the
//! root): the engine joins and normalizes them with [`join`], which refuses absolute paths and
//! `..` escapes, and [`DiskFs`] additionally refuses symlinks that resolve outside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a path could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Nothing exists at the path.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// The path (or a symlink on it) leads outside the root.
    #[error("security; file '{0}' is not in or below the root")]
    Escapes(String),
    /// The path is absolute; only relative paths are accepted.
    #[error("absolute path '{0}' is not allowed")]
    Absolute(String),
    /// A file is larger than the engine accepts.
    #[error("{0}: file exceeds the size limit")]
    TooLarge(String),
    /// The operating system refused the read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What sits at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// Read-only access to a tree of files.
pub trait FileSystem {
    /// The bytes of the file at `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>, FsError>;
    /// Whether `path` is a file, a directory or absent.
    fn kind(&self, path: &str) -> Option<EntryKind>;
    /// The names in directory `path`, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, FsError>;
    /// `path` with symlinks resolved, relative to the root (kustomize confines files to a
    /// kustomization's directory by their real paths); `None` if it does not exist.
    fn real_path(&self, path: &str) -> Option<String> {
        Some(path.to_string())
    }
}

/// Joins `rel` onto directory `dir` and normalizes `.` and `..`. Absolute paths and paths
/// climbing above the root are refused.
pub fn join(dir: &str, rel: &str) -> Result<String, FsError> {
    if rel.starts_with('/') || rel.starts_with('\\') || rel.as_bytes().get(1) == Some(&b':') {
        return Err(FsError::Absolute(rel.to_string()));
    }
    let mut parts: Vec<&str> = dir
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(FsError::Escapes(rel.to_string()));
                }
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// Whether `path` is `dir` or below it.
pub fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// The real disk below a root directory.
#[derive(Debug, Clone)]
pub struct DiskFs {
    root: PathBuf,
    max_file_bytes: u64,
}

impl DiskFs {
    /// A view of the directory `root` (which must exist).
    pub fn new(root: impl AsRef<Path>) -> Result<DiskFs, FsError> {
        let root = root.as_ref();
        let root = root.canonicalize().map_err(|source| FsError::Io {
            path: root.display().to_string(),
            source,
        })?;
        Ok(DiskFs {
            root,
            max_file_bytes: 64 << 20,
        })
    }

    /// The real path of `path`, refusing anything that resolves outside the root. Components
    /// below the root are checked with `lstat`; only when one is a symlink is the whole path
    /// canonicalized (far fewer system calls than canonicalizing every path).
    fn resolve(&self, path: &str) -> Result<PathBuf, FsError> {
        let not_found = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FsError::NotFound(path.to_string())
            } else {
                FsError::Io {
                    path: path.to_string(),
                    source: e,
                }
            }
        };
        let mut p = self.root.clone();
        let mut linked = false;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if comp == "." || comp == ".." {
                linked = true;
            }
            p.push(comp);
            if !linked {
                let meta = std::fs::symlink_metadata(&p).map_err(not_found)?;
                linked = meta.file_type().is_symlink();
            }
        }
        if !linked {
            return Ok(p);
        }
        let real = p.canonicalize().map_err(not_found)?;
        if !real.starts_with(&self.root) {
            return Err(FsError::Escapes(path.to_string()));
        }
        Ok(real)
    }
}

impl FileSystem for DiskFs {
    fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let real = self.resolve(path)?;
        let meta = std::fs::metadata(&real).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })?;
        if meta.len() > self.max_file_bytes {
            return Err(FsError::TooLarge(path.to_string()));
        }
        std::fs::read(&real).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        let real = self.resolve(path).ok()?;
        let meta = std::fs::metadata(real).ok()?;
        Some(if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        })
    }

    fn list(&self, path: &str) -> Result<Vec<String>, FsError> {
        let real = self.resolve(path)?;
        let rd = std::fs::read_dir(&real).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn real_path(&self, path: &str) -> Option<String> {
        let real = self.resolve(path).ok()?;
        let rel = real.strip_prefix(&self.root).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some(parts.join("/"))
    }
}

/// An in-memory tree, for tests and fuzzing. Directories exist implicitly.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    files: BTreeMap<String, Vec<u8>>,
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// Adds (or replaces) a file; `path` is relative to the root.
    pub fn add(&mut self, path: &str, content: impl Into<Vec<u8>>) -> &mut MemFs {
        let key = join("", path).unwrap_or_else(|_| path.to_string());
        self.files.insert(key, content.into());
        self
    }
}

impl FileSystem for MemFs {
    fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| FsError::NotFound(path.to_string()))
    }

    fn kind(&self, path: &str) -> Option<EntryKind> {
        if self.files.contains_key(path) {
            return Some(EntryKind::File);
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        self.files
            .keys()
            .any(|k| k.starts_with(&prefix))
            .then_some(EntryKind::Dir)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, FsError> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|r| r.split('/').next().unwrap_or(r).to_string())
            .collect();
        names.dedup();
        if names.is_empty() && !path.is_empty() {
            return Err(FsError::NotFound(path.to_string()));
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_normalizes_and_refuses_escapes() {
        assert_eq!(join("a/b", "../c.yaml").expect("inside"), "a/c.yaml");
        assert!(matches!(join("a", "../../x"), Err(FsError::Escapes(_))));
        assert!(matches!(
            join("a", "/etc/passwd"),
            Err(FsError::Absolute(_))
        ));
    }

    #[test]
    fn disk_fs_refuses_symlinks_leading_out_of_the_root() {
        let base = std::env::temp_dir().join(format!("kustomize-fs-test-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(base.join("secret"), "s").expect("write");
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink(base.join("secret"), root.join("link"));
            let fs = DiskFs::new(&root).expect("root");
            assert!(matches!(fs.read("link"), Err(FsError::Escapes(_))));
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn mem_fs_lists_implicit_directories() {
        let mut fs = MemFs::new();
        fs.add("a/b.yaml", "x").add("a/c/d.yaml", "y");
        assert_eq!(fs.list("a").expect("dir"), vec!["b.yaml", "c"]);
        assert_eq!(fs.kind("a/c"), Some(EntryKind::Dir));
    }
}
