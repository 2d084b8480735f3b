//! From an artifact to the objects a Kustomization applies: unpack, build with the native
//! kustomize engine at `spec.path`, apply the spec's own transformations, decrypt (SOPS,
//! `spec.decryption`), substitute.
//!
//! [`from_artifact`] is the reconcile's build step; it runs [`build`] (synchronous: it reads
//! files and burns CPU) on a blocking thread.
//!
//! The spec's transformations (`targetNamespace`, `namePrefix`/`nameSuffix`, `patches`,
//! `images`, `components`) are those Flux adds to the kustomization at `spec.path`. We build
//! the directory first and feed its output to a generated overlay holding them, which gives
//! the same objects without editing the user's files.

use std::collections::BTreeMap;
use std::path::Path;

use api::conditions::reasons;
use api::kustomize::{Kustomization, KustomizationSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, ResourceExt};
use kustomize::{DiskFs, LoadRestrictions, Options};
use serde_json::{Value, json};

use super::decrypt::{self, Decryptor, Keys, SourceIndex};
use super::status::Failure;
use super::substitute::{self, SubstituteError, Variables};
use crate::hub::ArtifactReady;

/// Largest unpacked artifact accepted.
pub const MAX_ARTIFACT_SIZE: u64 = 512 * 1024 * 1024;

const OVERLAY_DIR: &str = ".flotilla-overlay";

/// Why the build failed; the reconcile reports `ArtifactFailed` or `BuildFailed`.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The artifact could not be opened or unpacked.
    #[error("failed to extract artifact {path}: {source}")]
    Artifact {
        path: String,
        #[source]
        source: crate::source::artifact::Error,
    },
    /// The artifact file could not be opened.
    #[error("failed to open artifact {path}: {source}")]
    ArtifactOpen {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `spec.path` leaves the artifact or does not exist in it.
    #[error("kustomization path not found: {0}")]
    Path(String),
    /// The kustomize build failed.
    #[error("kustomize build failed: {0}")]
    Kustomize(#[source] kustomize::Error),
    /// Post-build substitution failed.
    #[error("post-build substitutions failed: {0}")]
    Substitute(#[source] SubstituteError),
    /// Writing the generated overlay failed.
    #[error("writing the generated kustomization: {0}")]
    Io(#[source] std::io::Error),
    /// The build produced something that is not a Kubernetes object.
    #[error("{0}")]
    Output(String),
    /// An encrypted file a generator or patch reads did not decrypt.
    #[error("error decrypting sources: {0}")]
    DecryptSources(#[source] decrypt::Error),
    /// A SOPS-encrypted Secret would be applied as is (no decryption configured, or an
    /// encrypted Secret without a MAC); Flux refuses it before applying anything.
    #[error(
        "{0} is SOPS encrypted, configuring decryption is required for this secret to be reconciled"
    )]
    EncryptedSecret(String),
    /// An encrypted object of the build output did not decrypt; `object` is kustomize's
    /// `group_version_kind/name`, as Flux shows it.
    #[error("decryption failed for '{object}': {source}")]
    Decrypt {
        object: String,
        #[source]
        source: decrypt::Error,
    },
}

impl BuildError {
    /// The Flux reason this error is reported with.
    pub fn reason(&self) -> &'static str {
        match self {
            BuildError::Artifact { .. } | BuildError::ArtifactOpen { .. } => {
                api::conditions::reasons::ARTIFACT_FAILED
            }
            // Flux finds these in its apply step.
            BuildError::EncryptedSecret(_) => api::conditions::reasons::RECONCILIATION_FAILED,
            _ => api::conditions::reasons::BUILD_FAILED,
        }
    }

    /// Retrying the same artifact cannot help, except when the decryption keys are wrong
    /// or missing: editing the Secret fixes that without a new revision.
    pub fn is_terminal(&self) -> bool {
        match self {
            BuildError::DecryptSources(e) | BuildError::Decrypt { source: e, .. } => {
                !e.is_key_problem()
            }
            // Configuring decryption changes the spec; Flux retries until then.
            BuildError::EncryptedSecret(_) => false,
            other => other.reason() == reasons::BUILD_FAILED,
        }
    }
}

/// Unpacks `artifact` into `workdir`.
pub fn unpack(artifact: &Path, workdir: &Path) -> Result<(), BuildError> {
    let shown = artifact.display().to_string();
    let file = std::fs::File::open(artifact).map_err(|source| BuildError::ArtifactOpen {
        path: shown.clone(),
        source,
    })?;
    crate::source::artifact::extract(file, workdir, MAX_ARTIFACT_SIZE).map_err(|source| {
        BuildError::Artifact {
            path: shown,
            source,
        }
    })?;
    Ok(())
}

/// Builds the Kustomization's objects from an unpacked artifact at `root`; with `keys`,
/// decrypts encrypted generator files before the build and encrypted objects after it.
pub fn build(
    root: &Path,
    spec: &KustomizationSpec,
    variables: Option<&Variables>,
    keys: Option<&Keys>,
) -> Result<Vec<Value>, BuildError> {
    let path = normalize_path(spec.path.as_deref().unwrap_or("./"))?;
    let fs = DiskFs::new(root).map_err(|e| BuildError::Path(e.to_string()))?;
    // Flux builds without kustomize's load restrictor: a kustomization may use any file of
    // the artifact (`resources: [../shared/cm.yaml]`); the filesystem is still rooted at it.
    let options = Options {
        generate_missing_kustomization: true,
        load_restrictions: LoadRestrictions::None,
        ..Options::default()
    };
    if !root.join(&path).is_dir() {
        return Err(BuildError::Path(spec.path.clone().unwrap_or_default()));
    }
    if let Some(keys) = keys {
        decrypt::sources::decrypt_sources(root, &path, keys).map_err(BuildError::DecryptSources)?;
    }
    let mut objects = kustomize::build(&fs, &path, &options).map_err(BuildError::Kustomize)?;
    if let Some(overlay) = overlay(spec, &path, root) {
        let dir = root.join(OVERLAY_DIR);
        std::fs::create_dir_all(&dir).map_err(BuildError::Io)?;
        let printed = kustomize::print(&objects).map_err(BuildError::Kustomize)?;
        std::fs::write(dir.join("resources.yaml"), printed).map_err(BuildError::Io)?;
        std::fs::write(dir.join("kustomization.yaml"), overlay.to_string())
            .map_err(BuildError::Io)?;
        objects = kustomize::build(&fs, OVERLAY_DIR, &options).map_err(BuildError::Kustomize)?;
    }
    let mut decryptor =
        keys.map(|keys| Decryptor::new(keys, SourceIndex::new(root, &[OVERLAY_DIR])));
    let mut out = Vec::with_capacity(objects.len());
    for object in &objects {
        let value = match decryptor.as_mut() {
            Some(decryptor) => decrypted(decryptor, object)?,
            None => None,
        };
        let value = match (value, variables) {
            (Some(value), Some(variables)) => substituted_value(value, variables)?,
            (Some(value), None) => value,
            (None, Some(variables)) => substituted(object, variables)?,
            (None, None) => to_json(&object.node)?,
        };
        if decrypt::is_encrypted_secret(&value) && !decrypt::is_disabled(&value) {
            return Err(BuildError::EncryptedSecret(format!(
                "Secret/{}",
                object_path(&value)
            )));
        }
        out.push(with_common_metadata(value, spec));
    }
    Ok(out)
}

/// `namespace/name`, or `name` for an object without a namespace.
fn object_path(object: &Value) -> String {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(namespace) if !namespace.is_empty() => format!("{namespace}/{name}"),
        _ => name.to_string(),
    }
}

/// The object decrypted, or `None` when it held nothing encrypted.
fn decrypted(
    decryptor: &mut Decryptor<'_>,
    object: &kustomize::Object,
) -> Result<Option<Value>, BuildError> {
    let value = to_json(&object.node)?;
    let holds_files = value["kind"] == "Secret" && value.get("data").is_some();
    if !decrypt::is_encrypted(&value) && !holds_files {
        return Ok(None);
    }
    let before = holds_files.then(|| value.clone());
    let gvk = gvk_name(&value);
    let plain = decryptor
        .decrypt_object(value)
        .map_err(|source| BuildError::Decrypt {
            object: gvk,
            source,
        })?;
    Ok((before.as_ref() != Some(&plain)).then_some(plain))
}

/// kustomize's `group_version_kind/name` (`~G_v1_Secret/db`).
fn gvk_name(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let or = |s: &str, empty: &str| {
        if s.is_empty() {
            empty.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}/{}",
        or(group, "~G"),
        or(version, "~V"),
        or(object["kind"].as_str().unwrap_or_default(), "~K"),
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

/// Substitution in a decrypted object: it goes back through the YAML printer so the
/// variables see the same text as for any other object.
fn substituted_value(value: Value, variables: &Variables) -> Result<Value, BuildError> {
    if substitute::is_disabled(&value) {
        return Ok(value);
    }
    let documents = kustomize::yaml::parse_documents(&value.to_string(), Default::default())
        .map_err(|e| BuildError::Output(e.to_string()))?;
    let Some(node) = documents.into_iter().flatten().next() else {
        return Ok(value);
    };
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    substituted_node(&node, name, variables)
}

/// Whether the component `relative` to `path` is in the artifact (one that would leave it
/// counts as present, so that the build reports it).
fn component_exists(root: &Path, path: &str, relative: &str) -> bool {
    match normalize_path(&format!("{path}/{relative}")) {
        Ok(inside) => root.join(inside).exists(),
        Err(_) => true,
    }
}

fn normalize_path(path: &str) -> Result<String, BuildError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(BuildError::Path(path.to_string()));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// The generated overlay for the spec's transformations, if it asks for any.
fn overlay(spec: &KustomizationSpec, path: &str, root: &Path) -> Option<Value> {
    let mut patches: Vec<Value> = spec
        .patches
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    patches.extend(
        spec.patches_strategic_merge
            .iter()
            .map(|p| json!({"patch": p.to_string()})),
    );
    patches.extend(spec.patches_json6902.iter().map(|p| {
        json!({"patch": serde_json::to_string(&p.patch).unwrap_or_default(), "target": p.target})
    }));
    let wanted = spec.target_namespace.is_some()
        || spec.name_prefix.is_some()
        || spec.name_suffix.is_some()
        || !patches.is_empty()
        || !spec.images.is_empty()
        || !spec.components.is_empty();
    if !wanted {
        return None;
    }
    let up = if path == "." {
        "..".to_string()
    } else {
        format!("../{path}")
    };
    let components: Vec<String> = spec
        .components
        .iter()
        .filter(|c| !spec.ignore_missing_components || component_exists(root, path, c))
        .map(|c| format!("{up}/{}", c.trim_start_matches("./")))
        .collect();
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["resources.yaml"],
    });
    let set = |k: &mut Value, key: &str, value: Value| {
        if let Some(map) = k.as_object_mut() {
            map.insert(key.to_string(), value);
        }
    };
    if let Some(ns) = &spec.target_namespace {
        set(&mut k, "namespace", json!(ns));
    }
    if let Some(prefix) = &spec.name_prefix {
        set(&mut k, "namePrefix", json!(prefix));
    }
    if let Some(suffix) = &spec.name_suffix {
        set(&mut k, "nameSuffix", json!(suffix));
    }
    if !patches.is_empty() {
        set(&mut k, "patches", Value::Array(patches));
    }
    if !spec.images.is_empty() {
        set(
            &mut k,
            "images",
            serde_json::to_value(&spec.images).unwrap_or(Value::Null),
        );
    }
    if !components.is_empty() {
        set(&mut k, "components", json!(components));
    }
    Some(k)
}

fn to_json(node: &kustomize::yaml::Node) -> Result<Value, BuildError> {
    let text = kustomize::yaml::go_json(node).map_err(|e| BuildError::Output(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| BuildError::Output(e.to_string()))
}

/// Substitutes in the object's YAML text, as Flux does, unless the object opted out.
fn substituted(object: &kustomize::Object, variables: &Variables) -> Result<Value, BuildError> {
    let value = to_json(&object.node)?;
    if substitute::is_disabled(&value) {
        return Ok(value);
    }
    substituted_node(&object.node, object.name(), variables)
}

fn substituted_node(
    node: &kustomize::yaml::Node,
    name: &str,
    variables: &Variables,
) -> Result<Value, BuildError> {
    let text = kustomize::yaml::to_yaml(node).map_err(|e| BuildError::Output(e.to_string()))?;
    let text = substitute::substitute(&text, variables, false).map_err(BuildError::Substitute)?;
    let documents = kustomize::yaml::parse_documents(&text, Default::default())
        .map_err(|e| BuildError::Output(format!("{name}: after substitution: {e}")))?;
    match documents.into_iter().flatten().next() {
        Some(node) => to_json(&node),
        None => Err(BuildError::Output(format!(
            "{name}: empty after substitution"
        ))),
    }
}

/// Adds `spec.commonMetadata` labels and annotations to an object.
fn with_common_metadata(mut object: Value, spec: &KustomizationSpec) -> Value {
    let Some(common) = &spec.common_metadata else {
        return object;
    };
    for (field, entries) in [
        ("labels", &common.labels),
        ("annotations", &common.annotations),
    ] {
        let Some(entries) = entries else { continue };
        let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        let map = metadata.entry(field).or_insert_with(|| json!({}));
        if let Some(map) = map.as_object_mut() {
            for (k, v) in entries {
                map.insert(k.clone(), json!(v));
            }
        }
    }
    object
}

/// The build step of a reconcile: reads the postBuild variables, then unpacks and builds
/// the artifact on a blocking thread, at most `builds` at once.
pub async fn from_artifact(
    builds: &tokio::sync::Semaphore,
    client: &kube::Client,
    object: &Kustomization,
    artifact: &ArtifactReady,
) -> Result<Vec<Value>, Failure> {
    let namespace = object.namespace().unwrap_or_default();
    let variables = variables(client, &namespace, object)
        .await
        .map_err(|message| Failure {
            reason: reasons::BUILD_FAILED,
            message,
            terminal: false,
        })?;
    let keys = decryption_keys(client, &namespace, object)
        .await
        .map_err(|message| Failure {
            reason: reasons::BUILD_FAILED,
            message,
            terminal: false,
        })?;
    let spec = object.spec.clone();
    let file = artifact.file.clone();
    // The semaphore is never closed, so acquiring only fails if it were; build anyway then.
    let permit = builds.acquire().await.ok();
    let built = tokio::task::spawn_blocking(move || {
        let workdir = tempfile::tempdir().map_err(BuildError::Io)?;
        unpack(&file, workdir.path())?;
        build(workdir.path(), &spec, variables.as_ref(), keys.as_ref())
    })
    .await;
    drop(permit);
    match built {
        Ok(Ok(objects)) => Ok(objects),
        Ok(Err(error)) => Err(Failure {
            reason: error.reason(),
            terminal: error.is_terminal(),
            message: error.to_string(),
        }),
        Err(join) => Err(Failure {
            reason: reasons::BUILD_FAILED,
            message: format!("build aborted: {join}"),
            terminal: false,
        }),
    }
}

/// The keys of `spec.decryption.secretRef`, read as kustomize-controller does; `None`
/// without decryption. Errors name the Secret and entry, never a key.
async fn decryption_keys(
    client: &kube::Client,
    namespace: &str,
    object: &Kustomization,
) -> Result<Option<Keys>, String> {
    let Some(decryption) = &object.spec.decryption else {
        return Ok(None);
    };
    if decryption.provider != decrypt::PROVIDER_SOPS {
        return Ok(None);
    }
    let Some(reference) = &decryption.secret_ref else {
        // Without a Secret, only keys from elsewhere (cloud identities) could open the
        // documents; we have none, so they fail with a message naming their recipients.
        return Ok(Some(Keys::default()));
    };
    let shown = format!("{namespace}/{}", reference.name);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|e| format!("cannot get sops decryption Secret '{shown}': {e}"))?
        .ok_or_else(|| format!("secrets \"{}\" not found", reference.name))?;
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Keys::from_secret_data(&shown, &data)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `postBuild.substitute` and `substituteFrom`; `None` when nothing is to be substituted.
async fn variables(
    client: &kube::Client,
    namespace: &str,
    object: &Kustomization,
) -> Result<Option<super::substitute::Variables>, String> {
    let Some(post_build) = &object.spec.post_build else {
        return Ok(None);
    };
    let mut variables = BTreeMap::new();
    for reference in &post_build.substitute_from {
        let shown = format!("substitute from '{}/{}'", reference.kind, reference.name);
        let found: Option<BTreeMap<String, String>> = match reference.kind.as_str() {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&reference.name)
                .await
                .map_err(|e| format!("{shown} failed: {e}"))?
                .map(|c| c.data.unwrap_or_default()),
            "Secret" => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&reference.name)
                .await
                .map_err(|e| format!("{shown} failed: {e}"))?
                .map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect()
                }),
            other => return Err(format!("{shown}: unsupported kind {other}")),
        };
        match found {
            Some(values) => variables.extend(values),
            None if reference.optional => {}
            None => return Err(format!("{shown} failed: not found")),
        }
    }
    if let Some(inline) = &post_build.substitute {
        variables.extend(inline.clone());
    }
    // Flux's `WithVariables` (the default) substitutes only when some variable is defined,
    // so that `${x:=default}` stays as written otherwise; `Always` substitutes regardless.
    let always = post_build.substitute_strategy.as_deref() == Some("Always");
    if variables.is_empty() && !always {
        return Ok(None);
    }
    super::substitute::normalize(variables)
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn spec(extra: Value) -> KustomizationSpec {
        let mut base = json!({"interval": "1m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "repo"}});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap_or_else(|e| panic!("{e}"))
    }

    fn write(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(file, text).unwrap_or_else(|e| panic!("{e}"));
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: ${replicas:=1}\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n";

    #[test]
    fn a_directory_without_kustomization_is_built_with_the_spec_transformations() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(dir.path(), "apps/web/deploy.yaml", DEPLOYMENT);
        let spec = spec(json!({
            "path": "./apps/web",
            "targetNamespace": "prod",
            "namePrefix": "p-",
            "images": [{"name": "nginx", "newTag": "2.0"}],
            "commonMetadata": {"labels": {"team": "a"}},
            "postBuild": {"substitute": {"replicas": "3"}},
        }));
        let mut variables = Variables::new();
        variables.insert("replicas".into(), "3".into());
        let objects =
            build(dir.path(), &spec, Some(&variables), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects.len(), 1);
        let d = &objects[0];
        assert_eq!(d["metadata"]["name"], "p-web");
        assert_eq!(d["metadata"]["namespace"], "prod");
        assert_eq!(d["metadata"]["labels"]["team"], "a");
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2.0"
        );
    }

    #[test]
    fn substitution_defaults_apply_and_paths_cannot_leave_the_artifact() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(dir.path(), "deploy.yaml", DEPLOYMENT);
        let objects = build(dir.path(), &spec(json!({})), Some(&Variables::new()), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects[0]["spec"]["replicas"], 1);
        assert!(matches!(
            build(dir.path(), &spec(json!({"path": "../.."})), None, None),
            Err(BuildError::Path(_))
        ));
        assert!(matches!(
            build(dir.path(), &spec(json!({"path": "missing"})), None, None),
            Err(BuildError::Path(_))
        ));
    }

    #[test]
    fn missing_components_fail_the_build_unless_ignored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(dir.path(), "apps/web/deploy.yaml", DEPLOYMENT);
        write(
            dir.path(),
            "apps/tls/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels:\n  tls: \"on\"\n",
        );
        let components = json!({"path": "./apps/web", "components": ["../tls", "../ingress"]});
        assert!(matches!(
            build(dir.path(), &spec(components.clone()), None, None),
            Err(BuildError::Kustomize(_))
        ));
        let mut ignoring = components;
        ignoring["ignoreMissingComponents"] = json!(true);
        let objects =
            build(dir.path(), &spec(ignoring), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects[0]["metadata"]["labels"]["tls"], "on");
    }

    #[test]
    fn a_kustomization_reads_files_elsewhere_in_the_artifact_as_flux_allows() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(dir.path(), "shared/deploy.yaml", DEPLOYMENT);
        write(
            dir.path(),
            "apps/web/kustomization.yaml",
            "resources:\n- ../../shared/deploy.yaml\n",
        );
        let objects = build(dir.path(), &spec(json!({"path": "./apps/web"})), None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects.len(), 1);
        write(
            dir.path(),
            "apps/web/kustomization.yaml",
            "resources:\n- ../../../outside.yaml\n",
        );
        assert!(matches!(
            build(dir.path(), &spec(json!({"path": "./apps/web"})), None, None),
            Err(BuildError::Kustomize(_))
        ));
    }

    #[test]
    fn broken_yaml_is_a_build_failure() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(
            dir.path(),
            "deploy.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [oops\n",
        );
        let error = build(dir.path(), &spec(json!({})), None, None).err();
        assert!(matches!(error, Some(BuildError::Kustomize(_))), "{error:?}");
    }
}

#[cfg(test)]
mod decryption_tests {
    use super::tests::spec;
    use super::*;
    use crate::kustomization::decrypt::test_encryptor::{Sealer, age_key};

    #[test]
    fn objects_are_decrypted_after_the_spec_transformations_and_before_substitution() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (identity, recipient) = age_key();
        let keys = Keys::from_age_identities(&identity).unwrap_or_else(|e| panic!("{e}"));
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "stringData": {"url": "postgres://${host}/app"},
        });
        std::fs::write(
            dir.path().join("secret.yaml"),
            Sealer::new(&recipient).seal_yaml(&secret),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = spec(json!({"namePrefix": "p-", "targetNamespace": "prod"}));
        let mut variables = Variables::new();
        variables.insert("host".into(), "db.internal".into());
        let objects = build(dir.path(), &spec, Some(&variables), Some(&keys))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["metadata"]["name"], "p-db");
        assert_eq!(objects[0]["metadata"]["namespace"], "prod");
        assert_eq!(
            objects[0]["stringData"]["url"],
            "postgres://db.internal/app"
        );
        assert!(objects[0].get("sops").is_none());

        let (other, _) = age_key();
        let other = Keys::from_age_identities(&other).unwrap_or_else(|e| panic!("{e}"));
        let error = build(dir.path(), &spec, None, Some(&other)).err();
        let message = error.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(message.starts_with("decryption failed for '~G_v1_Secret/p-db': failed to decrypt and format 'prod/p-db' Secret data: cannot get sops data key"), "{message}");
        assert!(error.is_some_and(|e| !e.is_terminal()));
    }

    #[test]
    fn an_encrypted_secret_without_decryption_is_refused_unless_opted_out() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, recipient) = age_key();
        let mut secret = Sealer::new(&recipient).seal(&json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
            "stringData": {"password": "hunter2"},
        }));
        let file = dir.path().join("secret.yaml");
        let write = |secret: &Value| {
            std::fs::write(&file, serde_saphyr::to_string(secret).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        write(&secret);
        let error = build(dir.path(), &spec(json!({})), None, None).err();
        assert_eq!(
            error.as_ref().map(ToString::to_string).as_deref(),
            Some(
                "Secret/apps/db is SOPS encrypted, configuring decryption is required for this secret to be reconciled"
            )
        );
        assert_eq!(error.map(|e| e.reason()), Some("ReconciliationFailed"));
        secret["metadata"]["annotations"] =
            json!({"kustomize.toolkit.fluxcd.io/decrypt": "disabled"});
        write(&secret);
        assert!(build(dir.path(), &spec(json!({})), None, None).is_ok());
    }
}
