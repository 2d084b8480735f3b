//! Files in the artifact: encrypted files a kustomization feeds to secretGenerator
//! (`files`, `envs`) or to `patches` are decrypted in place before the build, as
//! kustomize-controller does; and [`SourceIndex`] finds the file an encrypted object of the
//! build output came from, so its MAC is checked against what SOPS wrote rather than
//! against the object kustomize has since changed (namespace, labels, key order).

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::Error;
use super::keys::Keys;
use super::stores::{self, Format};

/// Largest file decrypted or indexed (kustomize-controller's limit).
pub const MAX_FILE_SIZE: u64 = 5 << 20;

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Decrypts, in place, the encrypted files used by the kustomizations reachable from
/// `path` (relative to `root`).
pub fn decrypt_sources(root: &Path, path: &str, keys: &Keys) -> Result<(), Error> {
    let mut visited = HashSet::new();
    let mut decrypted = HashSet::new();
    visit(root, Path::new(path), keys, &mut visited, &mut decrypted)
}

fn visit(
    root: &Path,
    dir: &Path,
    keys: &Keys,
    visited: &mut HashSet<PathBuf>,
    decrypted: &mut HashSet<PathBuf>,
) -> Result<(), Error> {
    let Some(dir) = inside(dir) else {
        return Ok(());
    };
    if !visited.insert(dir.clone()) {
        return Ok(());
    }
    let Some(kustomization) = read_kustomization(root, &dir)? else {
        return Ok(());
    };
    for (file, format) in referenced_files(&kustomization) {
        let Some(relative) = inside(&dir.join(&file)) else {
            return Err(Error::File {
                path: file,
                reason: "path leaves the artifact".into(),
            });
        };
        if decrypted.insert(relative.clone()) {
            decrypt_in_place(root, &relative, format, keys)?;
        }
    }
    let children = ["resources", "components"]
        .into_iter()
        .filter_map(|field| kustomization.get(field).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str);
    for child in children {
        if child.contains("://") {
            continue;
        }
        let child = dir.join(child);
        if root.join(&child).is_dir() {
            visit(root, &child, keys, visited, decrypted)?;
        }
    }
    Ok(())
}

fn read_kustomization(root: &Path, dir: &Path) -> Result<Option<Value>, Error> {
    for name in KUSTOMIZATION_FILES {
        let file = root.join(dir).join(name);
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        // A kustomization the engine cannot read is reported by the build itself.
        return Ok(stores::load_document(text.as_bytes(), Format::Yaml).ok());
    }
    Ok(None)
}

/// The files a kustomization reads that Flux decrypts, with the store each is read with.
fn referenced_files(kustomization: &Value) -> Vec<(String, Format)> {
    let strings = |value: Option<&Value>| -> Vec<String> {
        match value {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    };
    let mut files = Vec::new();
    let generators = kustomization
        .get("secretGenerator")
        .and_then(Value::as_array);
    for generator in generators.into_iter().flatten() {
        for source in strings(generator.get("files")) {
            let (key, path) = source.split_once('=').unwrap_or((&source, &source));
            files.push((path.to_string(), Format::for_path(key)));
        }
        let mut envs = strings(generator.get("envs"));
        envs.extend(strings(generator.get("env")));
        for env in envs {
            let format = match Format::for_path(&env) {
                Format::Binary => Format::Dotenv,
                other => other,
            };
            files.push((env, format));
        }
    }
    let patches = kustomization.get("patches").and_then(Value::as_array);
    for patch in patches.into_iter().flatten() {
        if let Some(path) = patch.get("path").and_then(Value::as_str)
            && !path.contains("://")
        {
            files.push((path.to_string(), Format::for_path(path)));
        }
    }
    files
}

fn decrypt_in_place(
    root: &Path,
    relative: &Path,
    format: Format,
    keys: &Keys,
) -> Result<(), Error> {
    let shown = relative.display().to_string();
    let file_error = |reason: String| Error::File {
        path: shown.clone(),
        reason,
    };
    let file = root.join(relative);
    let Ok(meta) = std::fs::symlink_metadata(&file) else {
        // A missing file is the build's to report, with its own message.
        return Ok(());
    };
    if !meta.file_type().is_file() {
        return Err(file_error(
            "cannot decrypt irregular file as it has file mode type bits set".into(),
        ));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(file_error(format!(
            "cannot decrypt file with size ({} bytes) exceeding limit ({MAX_FILE_SIZE})",
            meta.len()
        )));
    }
    let data = std::fs::read(&file).map_err(|e| file_error(e.to_string()))?;
    if !stores::contains(&data, format.marker()) {
        return Ok(());
    }
    let plain = stores::decrypt_file(&data, format, format, keys).map_err(|e| Error::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&file, plain).map_err(|e| file_error(e.to_string()))
}

/// `path` without `.` and `..`, or `None` if it climbs out of the root.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Encrypted YAML/JSON documents of the artifact by their `sops.mac`, read on first use.
pub struct SourceIndex {
    root: PathBuf,
    skip: Vec<String>,
    documents: Option<BTreeMap<String, Vec<(String, Value)>>>,
}

impl SourceIndex {
    /// An index of the files under `root`, except the top-level directories in `skip`
    /// (our generated overlay holds built objects, not sources).
    pub fn new(root: &Path, skip: &[&str]) -> SourceIndex {
        SourceIndex {
            root: root.to_path_buf(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            documents: None,
        }
    }

    /// The documents (file and content) whose encrypted MAC is `mac`.
    pub fn documents(&mut self, mac: &str) -> &[(String, Value)] {
        let root = &self.root;
        let skip = &self.skip;
        let documents = self.documents.get_or_insert_with(|| index(root, skip));
        documents.get(mac).map(Vec::as_slice).unwrap_or_default()
    }
}

fn index(root: &Path, skip: &[String]) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut found: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let relative = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let skipped = dir.as_os_str().is_empty()
                    && skip.iter().any(|s| entry.file_name() == s.as_str());
                if !skipped {
                    pending.push(relative);
                }
                continue;
            }
            let name = relative.to_string_lossy().into_owned();
            let format = Format::for_path(&name);
            if !kind.is_file() || !matches!(format, Format::Yaml | Format::Json) {
                continue;
            }
            if entry.metadata().map_or(true, |m| m.len() > MAX_FILE_SIZE) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            // Quoted or not, an encrypted document holds this.
            if !text.contains("ENC[AES256_GCM,") {
                continue;
            }
            for document in documents(&text) {
                if let Some(mac) = document.pointer("/sops/mac").and_then(Value::as_str) {
                    found
                        .entry(mac.to_string())
                        .or_default()
                        .push((name.clone(), document.clone()));
                }
            }
        }
    }
    found
}

/// Every document of a YAML (or JSON) file, skipping a file that does not parse: the build
/// reports broken files it uses.
fn documents(text: &str) -> Vec<Value> {
    stores::yaml_documents(text).unwrap_or_default()
}
