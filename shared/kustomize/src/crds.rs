//! `crds`: OpenAPI definitions (a map of type name to `{Schema: ...}`, JSON or YAML) whose
//! `x-kubernetes-*` extensions make kustomize treat custom kinds like built-in ones:
//! `object-ref-*` adds name references, `label-selector` adds a commonLabels path,
//! `annotation` a commonAnnotations path, `identity` a name prefix path.

use crate::fieldspec::{FieldSpec, NameBackRef, TransformerConfig};
use crate::kustomization::JsonKind;
use crate::resource::Gvk;
use crate::yaml::{Node, Tag};

/// go-openapi's `Extensions.GetString`: only a string value counts.
fn string_ext<'a>(p: &'a Node, key: &str) -> Option<&'a str> {
    match p.get(key)? {
        Node::Scalar(s) if s.tag == Tag::Str => Some(&s.value),
        _ => None,
    }
}

fn props<'a>(types: &'a Node, name: &str) -> Option<&'a Vec<(String, Node)>> {
    types.get(name)?.get("Schema")?.get("properties")?.as_map()
}

fn walk(
    cfg: &mut TransformerConfig,
    gvk: &Gvk,
    types: &Node,
    type_name: &str,
    path: &mut Vec<String>,
) {
    // Definitions may refer to each other in cycles; kustomize's configs are never this deep.
    if path.len() > 32 {
        return;
    }
    let Some(properties) = props(types, type_name) else {
        return;
    };
    for (prop, p) in properties {
        path.push(prop.clone());
        let spec = || FieldSpec {
            gvk: gvk.clone(),
            path: path.join("/"),
            create: false,
        };
        if string_ext(p, "x-kubernetes-annotation").is_some() {
            cfg.common_annotations.push(spec());
        }
        if string_ext(p, "x-kubernetes-label-selector").is_some() {
            cfg.common_labels.push(spec());
        }
        if string_ext(p, "x-kubernetes-identity").is_some() {
            cfg.name_prefix.push(spec());
        }
        if let (Some(version), Some(kind)) = (
            string_ext(p, "x-kubernetes-object-ref-api-version"),
            string_ext(p, "x-kubernetes-object-ref-kind"),
        ) {
            let key = string_ext(p, "x-kubernetes-object-ref-name-key").unwrap_or("name");
            cfg.add_back_ref(NameBackRef {
                gvk: Gvk {
                    group: String::new(),
                    version: version.to_string(),
                    kind: kind.to_string(),
                },
                referrers: vec![FieldSpec {
                    gvk: gvk.clone(),
                    path: format!("{}/{key}", path.join("/")),
                    create: false,
                }],
            });
        }
        if let Some(r) = p.str_at(&["$ref"]) {
            walk(cfg, gvk, types, r, path);
        }
        path.pop();
    }
}

/// Adds the field specs the definitions in `docs` declare.
/// Adds the field specs of the CRD definitions in `docs`; a document that is not kustomize's
/// `map[string]OpenAPIDefinition` fails as its JSON decoding does.
pub(crate) fn load(docs: &[Node], cfg: &mut TransformerConfig) -> Result<(), String> {
    let refuse = |n: &Node, go_type: &str| match JsonKind::of(n) {
        JsonKind::Null | JsonKind::Object => Ok(()),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type accumulator.{go_type}",
            other.word()
        )),
    };
    for types in docs {
        refuse(types, "nameToApiMap")?;
        let Some(entries) = types.as_map() else {
            continue;
        };
        for (_, definition) in entries {
            refuse(definition, "OpenAPIDefinition")?;
        }
        for (name, _) in entries {
            let Some(p) = props(types, name) else {
                continue;
            };
            let has = |k: &str| p.iter().any(|(n, _)| n == k);
            if !(has("kind") && has("apiVersion") && has("metadata")) {
                continue;
            }
            let kind = name.rsplit('.').next().unwrap_or(name);
            let gvk = Gvk {
                kind: kind.to_string(),
                ..Default::default()
            };
            let mut add = TransformerConfig::default();
            walk(&mut add, &gvk, types, name, &mut Vec::new());
            cfg.merge(add);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_documents};

    #[test]
    fn object_ref_extensions_become_name_references() {
        let text = r#"{"x.io/v1.App": {"Schema": {"properties": {"apiVersion": {}, "kind": {}, "metadata": {},
            "spec": {"$ref": "x.io/v1.Spec"}}}},
          "x.io/v1.Spec": {"Schema": {"properties": {"cfg": {"x-kubernetes-object-ref-api-version": "v1",
            "x-kubernetes-object-ref-kind": "ConfigMap"}, "sel": {"x-kubernetes-label-selector": ""}}}}}"#;
        let docs: Vec<Node> = parse_documents(text, Limits::default())
            .expect("json")
            .into_iter()
            .flatten()
            .collect();
        let mut cfg = TransformerConfig::default();
        load(&docs, &mut cfg).expect("a map of definitions");
        assert_eq!(cfg.name_reference[0].gvk.kind, "ConfigMap");
        assert_eq!(cfg.name_reference[0].referrers[0].path, "spec/cfg/name");
        assert_eq!(cfg.common_labels[0].path, "spec/sel");
    }
}
