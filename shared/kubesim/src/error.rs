//! Errors of starting and running the server (request errors are `metav1.Status` values, see
//! [`crate::status`]).

use std::path::PathBuf;

/// Why the server could not start or persist its state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating the CA, the serving certificate or the client certificate failed.
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was rejected by rustls.
    #[error("configuring TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the generated CA.
    #[error("configuring client certificate verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The listening socket could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the data directory failed.
    #[error("data directory {path}")]
    Persist {
        /// The file that failed.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A record of the on-disk log is not valid JSON (only a torn last record is tolerated).
    #[error("data directory {path}: corrupt record at line {line}")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
