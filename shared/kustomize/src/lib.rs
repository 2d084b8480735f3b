//! Native kustomize: builds a kustomization directory into resources, byte-identical to
//! `kubectl kustomize` (kustomize v5.5), reading only through a [`fs::FileSystem`].
//!
//! The entry point is [`build`], which returns [`Object`]s; [`print`] writes the bytes
//! `kubectl kustomize` prints for them.

mod build;
mod crds;
pub mod error;
pub mod fieldspec;
pub mod fs;
mod generators;
pub mod kustomization;
mod nameref;
mod patch;
mod replacements;
pub mod resource;
mod schema;
mod sort;
#[cfg(test)]
mod testutil;
mod transformers;
mod vars;
pub mod yaml;

pub use build::{Build, LoadRestrictions, Options, build, build_with_warnings};
pub use error::{Error, Result};
pub use fs::{DiskFs, FileSystem, MemFs};
pub use patch::label_selector_matches;
pub use resource::Object;

/// The bytes `kubectl kustomize` prints for these objects: each as YAML, `---` between them.
pub fn print(objs: &[Object]) -> Result<String> {
    let mut out = String::new();
    for (i, o) in objs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml::to_yaml(&o.node)?);
    }
    Ok(out)
}
