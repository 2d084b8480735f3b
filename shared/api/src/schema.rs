//! Schema helpers for fields whose content the API server must keep as written.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON value (Helm values, patches), kept as is by the API server.
pub fn any_json(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of arbitrary JSON values (legacy `patchesStrategicMerge`).
pub fn any_json_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "x-kubernetes-preserve-unknown-fields": true }
    })
}
