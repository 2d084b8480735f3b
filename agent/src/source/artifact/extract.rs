//! Unpacking an artifact into a directory, for consumers such as the Kustomization reconciler.
//!
//! # Guarantees
//! - Nothing is written outside `dest`: absolute paths and `..` are refused, and so are
//!   symbolic links, hard links and devices (our archives never contain them), so no entry
//!   can redirect a later write.
//! - Modes are normalised to 0644 / 0755; ownership and times are not restored.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use super::{Error, Result};

/// Unpacks the tar.gz read from `archive` into `dest` (created if missing), writing at most
/// `max_total_size` bytes of file content. Returns the number of files written.
pub fn extract(archive: impl Read, dest: &Path, max_total_size: u64) -> Result<u64> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io("creating", dest, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let entries = tar
        .entries()
        .map_err(|e| Error::io("reading the archive into", dest, e))?;
    let mut written = 0u64;
    let mut files = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io("reading the archive into", dest, e))?;
        let raw = entry
            .path()
            .map_err(|e| Error::io("reading an entry name in", dest, e))?
            .into_owned();
        let shown = raw.display().to_string();
        let relative = safe_relative(&raw).ok_or_else(|| Error::UnsafePath(shown.clone()))?;
        let target = dest.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| Error::io("creating", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::io("creating", parent, e))?;
                }
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                let mut file = std::fs::File::create(&target)
                    .map_err(|e| Error::io("creating", &target, e))?;
                let budget = max_total_size.saturating_sub(written);
                let copied =
                    std::io::copy(&mut (&mut entry).take(budget.saturating_add(1)), &mut file)
                        .map_err(|e| Error::io("writing", &target, e))?;
                written += copied;
                if written > max_total_size {
                    return Err(Error::ArtifactTooLarge {
                        limit: max_total_size,
                    });
                }
                let mode = if executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io("setting permissions on", &target, e))?;
                files += 1;
            }
            other => {
                return Err(Error::UnsupportedEntry {
                    path: shown,
                    kind: format!("{other:?}"),
                });
            }
        }
    }
    Ok(files)
}

/// The path with `.` removed, or `None` if it is absolute, empty, or has `..`.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    /// Builds a tar.gz with raw header names, bypassing the tar crate's own path checks.
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").expect("link name");
            }
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gz")
    }

    #[test]
    fn regular_files_and_directories_are_unpacked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = archive(&[
            ("app/", tar::EntryType::Directory, b""),
            ("app/a.yaml", tar::EntryType::Regular, b"a: 1"),
        ]);
        assert_eq!(
            extract(bytes.as_slice(), dir.path(), 1 << 20).expect("extracted"),
            1
        );
        assert_eq!(
            std::fs::read(dir.path().join("app/a.yaml")).expect("file"),
            b"a: 1"
        );
    }

    #[test]
    fn path_traversal_is_refused() {
        for name in ["../escape.yaml", "/etc/owned", "a/../../b"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let bytes = archive(&[(name, tar::EntryType::Regular, b"x")]);
            let err = extract(bytes.as_slice(), &dir.path().join("out"), 1 << 20).expect_err(name);
            assert!(matches!(err, Error::UnsafePath(_)), "{name}: {err}");
        }
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = archive(&[("link", tar::EntryType::Symlink, b"")]);
        let err = extract(bytes.as_slice(), dir.path(), 1 << 20).expect_err("symlink");
        assert!(matches!(err, Error::UnsupportedEntry { .. }), "{err}");
    }

    #[test]
    fn content_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = archive(&[("big", tar::EntryType::Regular, &[0u8; 100])]);
        let err = extract(bytes.as_slice(), dir.path(), 10).expect_err("too big");
        assert!(
            matches!(err, Error::ArtifactTooLarge { limit: 10 }),
            "{err}"
        );
    }
}
