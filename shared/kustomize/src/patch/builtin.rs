//! Builtin transformer configurations listed under `transformers:` (`apiVersion: builtin`)
//! whose work is a patch, a replacement, or a field-spec driven transformer with its own
//! `fieldSpecs`: kustomize's PrefixSuffix, ImageTag, ReplicaCount, Patch, PatchJson6902,
//! PatchStrategicMerge and Replacement transformers.

use crate::build::{Acc, Builder};
use crate::error::{Error, Result};
use crate::fieldspec::{TransformerConfig, specs};
use crate::kustomization::{Image, Patch, Selector};
use crate::yaml::Node;

fn text(n: &Node, key: &str) -> String {
    n.str_at(&[key]).unwrap_or("").to_string()
}

fn optional(n: &Node, key: &str) -> Option<String> {
    n.str_at(&[key]).map(str::to_string)
}

fn selector(n: Option<&Node>) -> Option<Selector> {
    let t = n.filter(|n| matches!(n, Node::Map(_)))?;
    Some(Selector {
        group: text(t, "group"),
        version: text(t, "version"),
        kind: text(t, "kind"),
        name: text(t, "name"),
        namespace: text(t, "namespace"),
        label_selector: text(t, "labelSelector"),
        annotation_selector: text(t, "annotationSelector"),
    })
}

/// A configuration with only `set` filled, for transformers that bring their own fieldSpecs.
fn config(set: impl FnOnce(&mut TransformerConfig)) -> TransformerConfig {
    let mut cfg = TransformerConfig::default();
    set(&mut cfg);
    cfg
}

/// Runs `d` when it is one of the builtin transformers this module knows; `false` otherwise.
pub(crate) fn run(b: &Builder, dir: &str, d: &Node, acc: &mut Acc) -> Result<bool> {
    if d.str_at(&["apiVersion"]) != Some("builtin") {
        return Ok(false);
    }
    let fs = specs(d.get("fieldSpecs"));
    match d.str_at(&["kind"]).unwrap_or("") {
        "PrefixSuffixTransformer" => {
            let cfg = config(|c| {
                c.name_prefix = fs.clone();
                c.name_suffix = fs;
            });
            let (prefix, suffix) = (text(d, "prefix"), text(d, "suffix"));
            if !prefix.is_empty() {
                crate::transformers::prefix_suffix(&mut acc.objs, &prefix, true, &cfg)?;
            }
            if !suffix.is_empty() {
                crate::transformers::prefix_suffix(&mut acc.objs, &suffix, false, &cfg)?;
            }
        }
        "ImageTagTransformer" => {
            let Some(t) = d.get("imageTag") else {
                return Ok(true);
            };
            let img = Image {
                name: text(t, "name"),
                new_name: optional(t, "newName"),
                new_tag: optional(t, "newTag"),
                tag_suffix: optional(t, "tagSuffix"),
                digest: optional(t, "digest"),
            };
            let cfg = config(|c| c.images = fs);
            crate::transformers::images(&mut acc.objs, &img, &cfg)?;
        }
        "ReplicaCountTransformer" => {
            let Some(r) = d.get("replica") else {
                return Ok(true);
            };
            let count = r.get("count").cloned().unwrap_or_else(|| Node::int(0));
            let cfg = config(|c| c.replicas = fs);
            crate::transformers::replicas(&mut acc.objs, &text(r, "name"), &count, &cfg)?;
        }
        "PatchTransformer" => {
            let opts = d.get("options");
            let flag = |k: &str| opts.and_then(|o| o.str_at(&[k])) == Some("true");
            let p = Patch {
                path: optional(d, "path"),
                patch: optional(d, "patch"),
                target: selector(d.get("target")),
                allow_name_change: flag("allowNameChange"),
                allow_kind_change: flag("allowKindChange"),
            };
            super::apply_patch(b, dir, &p, acc)?;
        }
        "PatchJson6902Transformer" => {
            let p = Patch {
                path: optional(d, "path"),
                patch: optional(d, "jsonOp"),
                target: selector(d.get("target")),
                ..Default::default()
            };
            super::apply_legacy_json6902(b, dir, &p, acc)?;
        }
        "PatchStrategicMergeTransformer" => {
            let mut entries: Vec<String> = d
                .get("paths")
                .and_then(Node::as_seq)
                .map(|s| {
                    s.iter()
                        .filter_map(Node::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(inline) = optional(d, "patches") {
                entries.push(inline);
            }
            if entries.is_empty() {
                return Err(Error::msg("empty file path and empty patch content"));
            }
            super::strategic_merge_legacy(b, dir, &entries, acc)?;
        }
        "ReplacementTransformer" => {
            let reps = d
                .get("replacements")
                .and_then(Node::as_seq)
                .cloned()
                .unwrap_or_default();
            crate::replacements::run(b, dir, &reps, &mut acc.objs)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}
