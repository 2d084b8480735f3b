//! The inventory of objects an applier manages, in Flux's format: entries with an id
//! `<namespace>_<name>_<group>_<kind>` and the API version `v`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The objects applied by the last successful reconcile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceInventory {
    pub entries: Vec<ResourceRef>,
}

/// One inventory entry.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// `<namespace>_<name>_<group>_<kind>`; namespace and group are empty when absent.
    pub id: String,
    /// The API version the object was applied with, e.g. `v1` or `apps/v1`'s `v1`.
    pub v: String,
}

/// The identity of an object as an inventory id spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub namespace: String,
    pub name: String,
    pub group: String,
    pub kind: String,
}

/// An inventory id that does not have the four `_`-separated parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid inventory id {id:?}: expected <namespace>_<name>_<group>_<kind>")]
pub struct InvalidObjectId {
    pub id: String,
}

impl ObjectId {
    /// Parses an id. Names and namespaces cannot contain `_` (DNS-1123), groups can hold
    /// dots but no underscore, so splitting on `_` is unambiguous.
    pub fn parse(id: &str) -> Result<Self, InvalidObjectId> {
        let parts: Vec<&str> = id.split('_').collect();
        match parts.as_slice() {
            [namespace, name, group, kind] if !name.is_empty() && !kind.is_empty() => Ok(Self {
                namespace: namespace.to_string(),
                name: name.to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
            }),
            _ => Err(InvalidObjectId { id: id.to_string() }),
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}",
            self.namespace, self.name, self.group, self.kind
        )
    }
}

impl ResourceRef {
    /// The entry for an object with the given identity and API version (`group/version`
    /// or `version` for the core group; only the version is stored, as Flux does).
    pub fn new(id: &ObjectId, api_version: &str) -> Self {
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        Self {
            id: id.to_string(),
            v: version.to_string(),
        }
    }

    pub fn object_id(&self) -> Result<ObjectId, InvalidObjectId> {
        ObjectId::parse(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_for_namespaced_and_cluster_objects() {
        for id in [
            "podinfo_podinfo_apps_Deployment",
            "_podinfo__Namespace",
            "flux-system_apps_kustomize.toolkit.fluxcd.io_Kustomization",
        ] {
            let parsed = ObjectId::parse(id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.to_string(), id);
        }
    }

    #[test]
    fn entries_keep_only_the_version() {
        let id = ObjectId::parse("default_web_apps_Deployment").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ResourceRef::new(&id, "apps/v1").v, "v1");
        assert_eq!(ResourceRef::new(&id, "v1").v, "v1");
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "a_b_c", "a_b_c_d_e", "ns__group_Kind", "ns_name_group_"] {
            assert!(ObjectId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
