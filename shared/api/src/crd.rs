//! CustomResourceDefinitions for every kind, generated from the Rust types.
//!
//! # Older versions
//! Flux's seeds and many existing repositories still write older API versions
//! (`source.toolkit.fluxcd.io/v1beta2`, `kustomize.toolkit.fluxcd.io/v1beta2`,
//! `helm.toolkit.fluxcd.io/v2beta1`, `notification.toolkit.fluxcd.io/v1beta1|v1beta2`,
//! `image.toolkit.fluxcd.io/v1beta1|v1beta2`). Each CRD serves them with the **same schema**
//! as the storage version and conversion strategy `None`: the API server stores and returns
//! the object unchanged but for `apiVersion`. That works because our Rust types (and thus the
//! schema) also carry the fields Flux removed in the newer version, marked deprecated, so an
//! object written in an old version keeps all its fields, and the agent reads every object
//! through the storage version's type. The old versions are marked `deprecated` with a
//! warning naming the version to move to, as `kubectl` then shows.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use kube::CustomResourceExt;

use crate::{fleet, helm, image, kustomize, notification, source, source_extensions};

/// A kind we define a CRD for, with the older versions it also serves.
#[derive(Debug, Clone, Copy)]
pub struct KindVersions {
    pub group: &'static str,
    pub kind: &'static str,
    /// The version of the Rust type, served and stored.
    pub storage_version: &'static str,
    /// Older versions served with the same schema, oldest first.
    pub legacy_versions: &'static [&'static str],
}

/// Every kind, in the order the CRDs are written.
pub const KINDS: &[KindVersions] = &[
    kind(source::GROUP, "GitRepository", "v1", &["v1beta2"]),
    kind(source::GROUP, "HelmRepository", "v1", &["v1beta2"]),
    kind(source::GROUP, "HelmChart", "v1", &["v1beta2"]),
    kind(source::GROUP, "OCIRepository", "v1", &["v1beta2"]),
    kind(source::GROUP, "Bucket", "v1", &["v1beta2"]),
    kind(source::GROUP, "ExternalArtifact", "v1", &[]),
    kind(
        source_extensions::GROUP,
        "ArtifactGenerator",
        "v1beta1",
        &[],
    ),
    kind(kustomize::GROUP, "Kustomization", "v1", &["v1beta2"]),
    kind(helm::GROUP, "HelmRelease", "v2", &["v2beta1", "v2beta2"]),
    kind(
        notification::GROUP,
        "Provider",
        "v1beta3",
        &["v1beta1", "v1beta2"],
    ),
    kind(
        notification::GROUP,
        "Alert",
        "v1beta3",
        &["v1beta1", "v1beta2"],
    ),
    kind(
        notification::GROUP,
        "Receiver",
        "v1",
        &["v1beta1", "v1beta2"],
    ),
    kind(
        image::GROUP,
        "ImageRepository",
        "v1",
        &["v1beta1", "v1beta2"],
    ),
    kind(image::GROUP, "ImagePolicy", "v1", &["v1beta1", "v1beta2"]),
    kind(
        image::GROUP,
        "ImageUpdateAutomation",
        "v1",
        &["v1beta1", "v1beta2"],
    ),
    kind(fleet::GROUP, "Cluster", "v1alpha1", &[]),
    kind(fleet::GROUP, "Pipeline", "v1alpha1", &[]),
    kind(fleet::GROUP, "Promotion", "v1alpha1", &[]),
];

const fn kind(
    group: &'static str,
    kind: &'static str,
    storage_version: &'static str,
    legacy_versions: &'static [&'static str],
) -> KindVersions {
    KindVersions {
        group,
        kind,
        storage_version,
        legacy_versions,
    }
}

impl KindVersions {
    /// Every served version, storage version last.
    pub fn served_versions(&self) -> impl Iterator<Item = &'static str> {
        self.legacy_versions
            .iter()
            .copied()
            .chain(std::iter::once(self.storage_version))
    }
}

/// The kind entry for a group and kind, if we serve it.
pub fn find_kind(group: &str, kind: &str) -> Option<&'static KindVersions> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

/// The CRD of the storage version only, as the derive writes it.
fn storage_crd(kind: &str) -> Option<CustomResourceDefinition> {
    Some(match kind {
        "GitRepository" => source::GitRepository::crd(),
        "HelmRepository" => source::HelmRepository::crd(),
        "HelmChart" => source::HelmChart::crd(),
        "OCIRepository" => source::OCIRepository::crd(),
        "Bucket" => source::Bucket::crd(),
        "ExternalArtifact" => source::ExternalArtifact::crd(),
        "ArtifactGenerator" => source_extensions::ArtifactGenerator::crd(),
        "Kustomization" => kustomize::Kustomization::crd(),
        "HelmRelease" => helm::HelmRelease::crd(),
        "Provider" => notification::Provider::crd(),
        "Alert" => notification::Alert::crd(),
        "Receiver" => notification::Receiver::crd(),
        "ImageRepository" => image::ImageRepository::crd(),
        "ImagePolicy" => image::ImagePolicy::crd(),
        "ImageUpdateAutomation" => image::ImageUpdateAutomation::crd(),
        "Cluster" => fleet::Cluster::crd(),
        "Pipeline" => fleet::Pipeline::crd(),
        "Promotion" => fleet::Promotion::crd(),
        _ => return None,
    })
}

/// The full CRD for one kind: the storage version plus its legacy versions.
pub fn crd_for(kind: &KindVersions) -> Option<CustomResourceDefinition> {
    let mut crd = storage_crd(kind.kind)?;
    let storage = crd.spec.versions.first()?.clone();
    let mut versions: Vec<CustomResourceDefinitionVersion> = kind
        .legacy_versions
        .iter()
        .map(|legacy| CustomResourceDefinitionVersion {
            name: legacy.to_string(),
            served: true,
            storage: false,
            deprecated: Some(true),
            deprecation_warning: Some(format!(
                "{}/{} {} is deprecated, upgrade to {}",
                kind.group, legacy, kind.kind, kind.storage_version
            )),
            ..storage.clone()
        })
        .collect();
    versions.push(storage);
    crd.spec.versions = versions;
    Some(crd)
}

/// Every CRD, in [`KINDS`] order.
pub fn all() -> Vec<CustomResourceDefinition> {
    KINDS.iter().filter_map(crd_for).collect()
}

/// The file name a CRD is written to: `<group>_<plural>.yaml`, as controller-gen names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD as YAML, the way it is checked in under `deploy/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    let yaml = serde_saphyr::to_string(crd)?;
    Ok(format!(
        "# Generated by `cargo run -p fleet --bin crdgen` from shared/api. Do not edit.\n---\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_crd_with_all_its_versions() {
        for kind in KINDS {
            let crd = crd_for(kind).unwrap_or_else(|| panic!("no CRD for {}", kind.kind));
            assert_eq!(crd.spec.group, kind.group);
            assert_eq!(crd.spec.names.kind, kind.kind);
            let names: Vec<&str> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names, kind.served_versions().collect::<Vec<_>>());
            let storage: Vec<&str> = crd
                .spec
                .versions
                .iter()
                .filter(|v| v.storage)
                .map(|v| v.name.as_str())
                .collect();
            assert_eq!(storage, vec![kind.storage_version]);
        }
    }

    #[test]
    fn flux_kinds_print_ready_and_status_columns_like_flux() {
        let crd = crd_for(&KINDS[0]).unwrap_or_else(|| panic!("no GitRepository CRD"));
        let columns: Vec<&str> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["URL", "Age", "Ready", "Status"]);
    }
}
