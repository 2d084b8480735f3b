//! The crate's error type.

use crate::fs::FsError;
use crate::yaml::YamlError;

/// Why a build failed. Messages follow kustomize's wording where tools match on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kustomization file has unknown fields or badly typed values.
    #[error("invalid Kustomization: {0}")]
    InvalidKustomization(String),
    /// A file is not valid YAML.
    #[error("MalformedYAMLError: {source} in File: {file}")]
    Yaml {
        file: String,
        #[source]
        source: YamlError,
    },
    /// A file could not be read (missing, outside the root, too large).
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A value cannot be printed (e.g. `.inf`, which JSON cannot carry).
    #[error(transparent)]
    Json(#[from] crate::yaml::JsonError),
    /// Anything else kustomize refuses, in its words.
    #[error("{0}")]
    Msg(String),
    /// An error with the step that hit it.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub(crate) fn msg(s: impl Into<String>) -> Error {
        Error::Msg(s.into())
    }

    pub(crate) fn context(self, c: impl Into<String>) -> Error {
        Error::Context {
            context: c.into(),
            source: Box::new(self),
        }
    }

    /// Whether the build failed because a path leads above the filesystem root.
    pub fn is_outside_root(&self) -> bool {
        match self {
            Error::Fs(FsError::Escapes(_)) => true,
            Error::Context { source, .. } => source.is_outside_root(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
