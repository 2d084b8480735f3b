//! The tree of a commit as a deterministic tar.gz, read straight from the object database.
//!
//! Nothing is checked out: file content comes from Git blobs, so no path outside the
//! repository can ever be read.
//!
//! # Guarantees
//! - The same tree and rules give byte-identical output: entries in Git tree order, mtime 0,
//!   uid/gid 0, modes 0644/0755 (directories 0755), gzip header without name or time.
//! - Symbolic links are dropped (as in Flux, whose archiver keeps only regular files and
//!   directories), whatever they point to; submodule entries are dropped too.
//! - A file over [`ArchiveLimits::max_file_size`] fails the whole artifact with
//!   [`Error::FileTooLarge`] naming the file.

use std::io::Write;

use flate2::{Compression, GzBuilder};
use gix::ObjectId;
use gix::objs::tree::EntryKind;

use super::ignore::{IgnoreRules, SOURCEIGNORE};
use super::{Error, Result};

/// Size limits applied while archiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Largest single file, in bytes.
    pub max_file_size: u64,
    /// Largest sum of file sizes, in bytes.
    pub max_total_size: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_file_size: 50 << 20,
            max_total_size: 500 << 20,
        }
    }
}

/// What went into an archive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Regular files written.
    pub files: u64,
    /// Sum of their sizes.
    pub bytes: u64,
    /// Entries left out by the ignore rules.
    pub excluded: u64,
    /// Symbolic links and submodules left out.
    pub skipped_links: u64,
}

/// Writes the tree of `commit` minus excluded paths to `out` as tar.gz.
pub fn write_archive(
    repo: &gix::Repository,
    commit: ObjectId,
    spec_ignore: Option<&str>,
    limits: ArchiveLimits,
    out: impl Write,
) -> Result<ArchiveStats> {
    let commit = repo
        .find_object(commit)
        .map_err(|e| Error::git(format!("commit {commit}"), e))?
        .try_into_commit()
        .map_err(|e| Error::git(format!("commit {commit}"), e))?;
    let tree = commit
        .tree_id()
        .map_err(|e| Error::git("the commit's tree", e))?
        .detach();

    let mut sourceignores = Vec::new();
    collect_sourceignores(repo, tree, String::new(), &mut sourceignores)?;
    let rules = IgnoreRules::new(spec_ignore, &sourceignores);

    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut walk = Walk {
        repo,
        rules: &rules,
        limits,
        stats: ArchiveStats::default(),
        tar: &mut tar,
    };
    walk.tree(tree, "")?;
    let stats = walk.stats;
    let gz = tar
        .into_inner()
        .map_err(|e| Error::io("finishing the tar stream", std::path::Path::new("-"), e))?;
    gz.finish()
        .map_err(|e| Error::io("finishing the gzip stream", std::path::Path::new("-"), e))?;
    Ok(stats)
}

struct Walk<'a, W: Write> {
    repo: &'a gix::Repository,
    rules: &'a IgnoreRules,
    limits: ArchiveLimits,
    stats: ArchiveStats,
    tar: &'a mut tar::Builder<W>,
}

impl<W: Write> Walk<'_, W> {
    fn tree(&mut self, id: ObjectId, prefix: &str) -> Result<()> {
        for (name, mode, oid) in tree_entries(self.repo, id)? {
            let path = format!("{prefix}{name}");
            let is_dir = mode == EntryKind::Tree;
            if self.rules.is_excluded(&path, is_dir) {
                self.stats.excluded += 1;
                continue;
            }
            match mode {
                EntryKind::Tree => {
                    self.header(&path, tar::EntryType::Directory, 0o755, 0, std::io::empty())?;
                    self.tree(oid, &format!("{path}/"))?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let size = self
                        .repo
                        .find_header(oid)
                        .map_err(|e| Error::git(format!("the header of '{path}'"), e))?
                        .size();
                    if size > self.limits.max_file_size {
                        return Err(Error::FileTooLarge {
                            path,
                            size,
                            limit: self.limits.max_file_size,
                        });
                    }
                    self.stats.bytes += size;
                    if self.stats.bytes > self.limits.max_total_size {
                        return Err(Error::ArtifactTooLarge {
                            limit: self.limits.max_total_size,
                        });
                    }
                    let blob = self
                        .repo
                        .find_blob(oid)
                        .map_err(|e| Error::git(format!("'{path}'"), e))?;
                    let file_mode = if mode == EntryKind::BlobExecutable {
                        0o755
                    } else {
                        0o644
                    };
                    self.header(
                        &path,
                        tar::EntryType::Regular,
                        file_mode,
                        size,
                        blob.data.as_slice(),
                    )?;
                    self.stats.files += 1;
                }
                EntryKind::Link | EntryKind::Commit => self.stats.skipped_links += 1,
            }
        }
        Ok(())
    }

    fn header(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        size: u64,
        data: impl std::io::Read,
    ) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let name = if kind == tar::EntryType::Directory {
            format!("{path}/")
        } else {
            path.to_owned()
        };
        self.tar
            .append_data(&mut header, &name, data)
            .map_err(|e| Error::io("writing the tar entry", std::path::Path::new(&name), e))
    }
}

/// Decoded entries of one tree, names validated as single safe path components.
fn tree_entries(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<Vec<(String, EntryKind, ObjectId)>> {
    let tree = repo
        .find_tree(id)
        .map_err(|e| Error::git(format!("tree {id}"), e))?;
    let decoded = tree
        .decode()
        .map_err(|e| Error::git(format!("tree {id}"), e))?;
    decoded
        .entries
        .iter()
        .map(|entry| {
            let name = String::from_utf8_lossy(entry.filename).into_owned();
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
                return Err(Error::UnsafePath(name));
            }
            Ok((name, entry.mode.kind(), entry.oid.to_owned()))
        })
        .collect()
}

fn collect_sourceignores(
    repo: &gix::Repository,
    tree: ObjectId,
    dir: String,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<()> {
    for (name, mode, oid) in tree_entries(repo, tree)? {
        match mode {
            EntryKind::Tree if name != ".git" => {
                let sub = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                collect_sourceignores(repo, oid, sub, out)?;
            }
            EntryKind::Blob | EntryKind::BlobExecutable if name == SOURCEIGNORE => {
                let blob = repo
                    .find_blob(oid)
                    .map_err(|e| Error::git(format!("'{dir}/{SOURCEIGNORE}'"), e))?;
                out.push((dir.clone(), blob.data.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}
