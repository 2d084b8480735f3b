//! Flotilla's API types: Flux's custom resources, with Flux's groups, versions, kinds and
//! field names, and the fleet's own kinds (`fleet.flotilla.io`).
//!
//! Each kind is a `kube::CustomResource`; [`crd::all`] turns them into the
//! CustomResourceDefinitions checked in under `deploy/crds/`, and [`parse::parse_yaml`]
//! reads objects of any served version with errors that name the field.

pub mod conditions;
pub mod crd;
pub mod duration;
pub mod fleet;
pub mod helm;
pub mod image;
pub mod inventory;
pub mod kustomize;
pub mod meta;
pub mod notification;
pub mod parse;
pub mod revision;
mod schema;
pub mod source;
pub mod source_extensions;

pub use duration::Duration;
pub use fleet::{Cluster, Pipeline, Promotion};
pub use helm::HelmRelease;
pub use inventory::{ObjectId, ResourceInventory, ResourceRef};
pub use kustomize::Kustomization;
pub use parse::{Document, FluxObject, ParseError, parse_yaml};
pub use revision::Revision;
pub use source::{
    Bucket, ExternalArtifact, GitRepository, HelmChart, HelmRepository, OCIRepository,
};
