//! Reading Flux objects from YAML or JSON, whatever served version they are written in,
//! with errors that name the kind and the path of the offending field.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::{self, KindVersions};
use crate::{fleet, helm, image, kustomize, notification, source, source_extensions};

/// One object of a kind this crate defines.
///
/// Variants differ in size (a HelmRelease is large); documents are read a few at a time, so
/// boxing each variant would cost more in indirection than it saves.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum FluxObject {
    GitRepository(source::GitRepository),
    HelmRepository(source::HelmRepository),
    HelmChart(source::HelmChart),
    OCIRepository(source::OCIRepository),
    Bucket(source::Bucket),
    ExternalArtifact(source::ExternalArtifact),
    ArtifactGenerator(source_extensions::ArtifactGenerator),
    Kustomization(kustomize::Kustomization),
    HelmRelease(helm::HelmRelease),
    Provider(notification::Provider),
    Alert(notification::Alert),
    Receiver(notification::Receiver),
    ImageRepository(image::ImageRepository),
    ImagePolicy(image::ImagePolicy),
    ImageUpdateAutomation(image::ImageUpdateAutomation),
    Cluster(fleet::Cluster),
    Pipeline(fleet::Pipeline),
    Promotion(fleet::Promotion),
}

impl FluxObject {
    /// The object's kind, e.g. `Kustomization`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::GitRepository(_) => "GitRepository",
            Self::HelmRepository(_) => "HelmRepository",
            Self::HelmChart(_) => "HelmChart",
            Self::OCIRepository(_) => "OCIRepository",
            Self::Bucket(_) => "Bucket",
            Self::ExternalArtifact(_) => "ExternalArtifact",
            Self::ArtifactGenerator(_) => "ArtifactGenerator",
            Self::Kustomization(_) => "Kustomization",
            Self::HelmRelease(_) => "HelmRelease",
            Self::Provider(_) => "Provider",
            Self::Alert(_) => "Alert",
            Self::Receiver(_) => "Receiver",
            Self::ImageRepository(_) => "ImageRepository",
            Self::ImagePolicy(_) => "ImagePolicy",
            Self::ImageUpdateAutomation(_) => "ImageUpdateAutomation",
            Self::Cluster(_) => "Cluster",
            Self::Pipeline(_) => "Pipeline",
            Self::Promotion(_) => "Promotion",
        }
    }
}

/// A document of a YAML stream: one of ours, or any other Kubernetes object.
#[derive(Debug, Clone)]
pub enum Document {
    Flux(Box<FluxObject>),
    /// An object of a group this crate does not define (Namespace, Deployment, ...).
    Other {
        api_version: String,
        kind: String,
    },
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not YAML (or JSON).
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    /// A document is not a mapping with string `apiVersion` and `kind`.
    #[error("document {index}: not a Kubernetes object (missing apiVersion or kind)")]
    NotAnObject { index: usize },
    /// The group is ours but the kind is not one of it.
    #[error("{api_version}: unknown kind {kind:?} (known kinds of {group}: {known})")]
    UnknownKind {
        api_version: String,
        group: String,
        kind: String,
        known: String,
    },
    /// The kind is known but not in this version.
    #[error("{kind}: version {version:?} of {group} is not served (served: {served})")]
    UnknownVersion {
        kind: String,
        group: String,
        version: String,
        served: String,
    },
    /// The object does not match the kind's schema; `path` names the field.
    #[error("{kind} {name:?}: {path}: {message}")]
    Invalid {
        kind: String,
        name: String,
        path: String,
        message: String,
    },
}

/// Groups whose kinds this crate defines; any other group is left to others.
const OUR_GROUPS: &[&str] = &[
    source::GROUP,
    source_extensions::GROUP,
    kustomize::GROUP,
    helm::GROUP,
    notification::GROUP,
    image::GROUP,
    fleet::GROUP,
];

/// Reads every document of a YAML stream (empty documents are skipped).
pub fn parse_yaml(text: &str) -> Result<Vec<Document>, ParseError> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text)?;
    values
        .into_iter()
        .filter(|value| !value.is_null())
        .enumerate()
        .map(|(index, value)| parse_value(value, index))
        .collect()
}

/// Reads one object given as a JSON value (e.g. from the API server).
pub fn parse_value(value: Value, index: usize) -> Result<Document, ParseError> {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(ParseError::NotAnObject { index });
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if !OUR_GROUPS.contains(&group) {
        return Ok(Document::Other {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    }
    let Some(entry) = crd::find_kind(group, kind) else {
        let known: Vec<&str> = crd::KINDS
            .iter()
            .filter(|k| k.group == group)
            .map(|k| k.kind)
            .collect();
        return Err(ParseError::UnknownKind {
            api_version: api_version.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
            known: known.join(", "),
        });
    };
    if !entry.served_versions().any(|served| served == version) {
        return Err(ParseError::UnknownVersion {
            kind: kind.to_string(),
            group: group.to_string(),
            version: version.to_string(),
            served: entry.served_versions().collect::<Vec<_>>().join(", "),
        });
    }
    let object = into_storage_version(value, entry);
    decode(object, entry).map(|flux| Document::Flux(Box::new(flux)))
}

/// Rewrites `apiVersion` to the storage version, as the API server does for a CRD with
/// conversion strategy `None`; the schema is the same for every served version.
fn into_storage_version(mut value: Value, entry: &KindVersions) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "apiVersion".into(),
            Value::String(format!("{}/{}", entry.group, entry.storage_version)),
        );
    }
    value
}

fn decode(value: Value, entry: &KindVersions) -> Result<FluxObject, ParseError> {
    Ok(match entry.kind {
        "GitRepository" => FluxObject::GitRepository(typed(value, entry)?),
        "HelmRepository" => FluxObject::HelmRepository(typed(value, entry)?),
        "HelmChart" => FluxObject::HelmChart(typed(value, entry)?),
        "OCIRepository" => FluxObject::OCIRepository(typed(value, entry)?),
        "Bucket" => FluxObject::Bucket(typed(value, entry)?),
        "ExternalArtifact" => FluxObject::ExternalArtifact(typed(value, entry)?),
        "ArtifactGenerator" => FluxObject::ArtifactGenerator(typed(value, entry)?),
        "Kustomization" => FluxObject::Kustomization(typed(value, entry)?),
        "HelmRelease" => FluxObject::HelmRelease(typed(value, entry)?),
        "Provider" => FluxObject::Provider(typed(value, entry)?),
        "Alert" => FluxObject::Alert(typed(value, entry)?),
        "Receiver" => FluxObject::Receiver(typed(value, entry)?),
        "ImageRepository" => FluxObject::ImageRepository(typed(value, entry)?),
        "ImagePolicy" => FluxObject::ImagePolicy(typed(value, entry)?),
        "ImageUpdateAutomation" => FluxObject::ImageUpdateAutomation(typed(value, entry)?),
        "Cluster" => FluxObject::Cluster(typed(value, entry)?),
        "Pipeline" => FluxObject::Pipeline(typed(value, entry)?),
        "Promotion" => FluxObject::Promotion(typed(value, entry)?),
        other => {
            return Err(ParseError::UnknownKind {
                api_version: format!("{}/{}", entry.group, entry.storage_version),
                group: entry.group.to_string(),
                kind: other.to_string(),
                known: String::new(),
            });
        }
    })
}

/// Deserializes with the path of the failing field, e.g. `spec.sourceRef.kindd`.
///
/// The derived root type of a kind ignores unknown top-level keys (as the API server
/// would prune them); unknown keys inside `spec` are errors, since they are almost always
/// a typo that would otherwise be silently dropped.
pub fn typed<T: DeserializeOwned>(value: Value, entry: &KindVersions) -> Result<T, ParseError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        ParseError::Invalid {
            kind: entry.kind.to_string(),
            name,
            path: if path == "." {
                "(root)".to_string()
            } else {
                path
            },
            message: error.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(text: &str) -> Result<Document, ParseError> {
        let mut documents = parse_yaml(text)?;
        assert_eq!(documents.len(), 1);
        Ok(documents.remove(0))
    }

    const KUSTOMIZATION: &str = "
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
";

    #[test]
    fn a_kustomization_parses_into_its_type() {
        let Ok(Document::Flux(object)) = only(KUSTOMIZATION) else {
            panic!("not parsed")
        };
        let FluxObject::Kustomization(ks) = *object else {
            panic!("wrong kind")
        };
        assert_eq!(ks.spec.path.as_deref(), Some("./apps"));
        assert_eq!(
            ks.spec.interval.as_std(),
            std::time::Duration::from_secs(600)
        );
    }

    #[test]
    fn an_older_served_version_reads_into_the_storage_type() {
        let text = KUSTOMIZATION
            .replace("/v1\n", "/v1beta2\n")
            .replace("prune: true", "prune: true\n  validation: client");
        let Ok(Document::Flux(object)) = only(&text) else {
            panic!("not parsed")
        };
        let FluxObject::Kustomization(ks) = *object else {
            panic!("wrong kind")
        };
        assert_eq!(ks.spec.validation.as_deref(), Some("client"));
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let text = KUSTOMIZATION.replace("name: flux-system}", "name: flux-system, nmespace: x}");
        let error = only(&text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("spec.sourceRef"), "{error}");
        assert!(error.contains("nmespace"), "{error}");
    }

    #[test]
    fn a_malformed_duration_names_the_field() {
        let text = KUSTOMIZATION.replace("10m", "ten minutes");
        let error = only(&text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("spec.interval"), "{error}");
    }

    #[test]
    fn an_unknown_version_or_kind_is_named() {
        let error = only(&KUSTOMIZATION.replace("/v1\n", "/v7\n"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("Kustomization") && error.contains("v7"),
            "{error}"
        );
        let error = only(&KUSTOMIZATION.replace("kind: Kustomization", "kind: Kustomisation"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("Kustomisation"), "{error}");
    }

    #[test]
    fn objects_of_other_groups_are_passed_over() {
        let document = only("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n").ok();
        assert!(
            matches!(document, Some(Document::Other { ref api_version, ref kind }) if api_version == "v1" && kind == "Namespace")
        );
    }

    #[test]
    fn a_document_without_kind_is_refused() {
        assert!(matches!(
            only("foo: bar\n"),
            Err(ParseError::NotAnObject { .. })
        ));
    }
}
