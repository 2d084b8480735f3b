//! The YAML layer: a node tree that keeps what kustomize's output depends on (scalar text and
//! whether it was quoted or tagged), a bounded reader, and the printer reproducing kubectl's bytes.
//!
//! kubectl prints each resource by encoding it with go-yaml v3, decoding that into plain Go
//! values, marshalling to JSON and converting the JSON back to YAML with go-yaml v2. Our tree
//! therefore only needs each scalar's text and its tag; styles and key order are not observable.

mod emit;
mod json;
mod node;
mod parse;
mod resolve;

pub use emit::to_yaml;
pub(crate) use json::format_go_g;
pub use json::{JsonError, go_json, go_json_string};
pub use node::{Node, Scalar, Tag};
pub use parse::{Limits, YamlError, parse_documents, parse_documents_last_key_wins};
pub use resolve::{Resolved, resolve_v3, v2_plain_is_string};
