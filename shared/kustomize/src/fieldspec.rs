//! Field specs (which fields of which kinds a transformer touches) and the transformer
//! configuration: kustomize's defaults, extended by `configurations` and `crds`.

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::resource::Gvk;
use crate::yaml::Node;

/// One field of some kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub gvk: Gvk,
    pub path: String,
    pub create: bool,
}

impl FieldSpec {
    pub fn new(path: &str, create: bool) -> FieldSpec {
        FieldSpec {
            gvk: Gvk::default(),
            path: path.to_string(),
            create,
        }
    }

    /// Whether the spec applies to an object of this kind (empty selector fields match all).
    pub fn matches(&self, gvk: &Gvk) -> bool {
        gvk.is_selected_by(&self.gvk)
    }
}

/// Referrers of one kind: the fields that hold names of objects of kind `gvk`.
#[derive(Clone, Debug)]
pub struct NameBackRef {
    pub gvk: Gvk,
    pub referrers: Vec<FieldSpec>,
}

/// The field specs of every builtin transformer.
#[derive(Clone, Debug, Default)]
pub struct TransformerConfig {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
    pub var_reference: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

fn merge_specs(into: &mut Vec<FieldSpec>, more: Vec<FieldSpec>) {
    for fs in more {
        if !into.iter().any(|f| f.gvk == fs.gvk && f.path == fs.path) {
            into.push(fs);
        }
    }
}

fn text(n: &Node, key: &str) -> String {
    n.str_at(&[key]).unwrap_or("").to_string()
}

pub(crate) fn gvk_of(n: &Node) -> Gvk {
    Gvk {
        group: text(n, "group"),
        version: text(n, "version"),
        kind: text(n, "kind"),
    }
}

pub(crate) fn specs(n: Option<&Node>) -> Vec<FieldSpec> {
    n.and_then(Node::as_seq)
        .map(|items| {
            items
                .iter()
                .map(|i| FieldSpec {
                    gvk: gvk_of(i),
                    path: text(i, "path"),
                    create: i.get("create").and_then(Node::as_str) == Some("true"),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl TransformerConfig {
    /// Reads a configuration document (the format of kustomize's `configurations` files).
    pub fn from_node(n: &Node) -> TransformerConfig {
        let mut c = TransformerConfig {
            name_prefix: specs(n.get("namePrefix")),
            name_suffix: specs(n.get("nameSuffix")),
            namespace: specs(n.get("namespace")),
            common_labels: specs(n.get("commonLabels")),
            template_labels: specs(n.get("templateLabels")),
            common_annotations: specs(n.get("commonAnnotations")),
            var_reference: specs(n.get("varReference")),
            images: specs(n.get("images")),
            replicas: specs(n.get("replicas")),
            name_reference: Vec::new(),
        };
        for r in n
            .get("nameReference")
            .and_then(Node::as_seq)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            c.add_back_ref(NameBackRef {
                gvk: gvk_of(r),
                referrers: specs(r.get("fieldSpecs")),
            });
        }
        c
    }

    pub(crate) fn add_back_ref(&mut self, b: NameBackRef) {
        if let Some(existing) = self.name_reference.iter_mut().find(|e| e.gvk == b.gvk) {
            merge_specs(&mut existing.referrers, b.referrers);
        } else {
            self.name_reference.push(b);
        }
    }

    /// Adds another configuration's specs (duplicates dropped).
    pub fn merge(&mut self, o: TransformerConfig) {
        merge_specs(&mut self.name_prefix, o.name_prefix);
        merge_specs(&mut self.name_suffix, o.name_suffix);
        merge_specs(&mut self.namespace, o.namespace);
        merge_specs(&mut self.common_labels, o.common_labels);
        merge_specs(&mut self.template_labels, o.template_labels);
        merge_specs(&mut self.common_annotations, o.common_annotations);
        merge_specs(&mut self.var_reference, o.var_reference);
        merge_specs(&mut self.images, o.images);
        merge_specs(&mut self.replicas, o.replicas);
        for b in o.name_reference {
            self.add_back_ref(b);
        }
    }

    /// Whether no transformer has any field spec.
    pub fn is_empty(&self) -> bool {
        self.name_prefix.is_empty()
            && self.name_suffix.is_empty()
            && self.namespace.is_empty()
            && self.common_labels.is_empty()
            && self.template_labels.is_empty()
            && self.common_annotations.is_empty()
            && self.name_reference.is_empty()
            && self.var_reference.is_empty()
            && self.images.is_empty()
            && self.replicas.is_empty()
    }

    /// The builtin configuration, shared.
    pub fn defaults_shared() -> Arc<TransformerConfig> {
        Self::loaded().clone()
    }

    /// kustomize's builtin configuration, loaded from `builtin/fieldspecs.tsv` (generated from
    /// `builtin/fieldspecs.yaml` by `tools/gen_fieldspecs.py`).
    pub fn defaults() -> &'static TransformerConfig {
        Self::loaded()
    }

    /// Parsed once per process and never copied: a short-lived `flotilla kustomize` pays for
    /// it on every run.
    fn loaded() -> &'static Arc<TransformerConfig> {
        static DEFAULTS: OnceLock<Arc<TransformerConfig>> = OnceLock::new();
        DEFAULTS.get_or_init(|| Arc::new(parse_tsv(include_str!("builtin/fieldspecs.tsv"))))
    }
}

fn parse_tsv(text: &str) -> TransformerConfig {
    let mut c = TransformerConfig::default();
    let owned = |s: &str| {
        if s == "-" {
            String::new()
        } else {
            s.to_owned()
        }
    };
    // Columns are taken in place (no per-line Vec): this runs at the start of every
    // `flotilla kustomize` process.
    for line in text.lines() {
        let mut cols = line.split('\t');
        let mut next = || cols.next().unwrap_or("");
        let record = next();
        let section = if record == "S" { next() } else { "" };
        let gvk = {
            let (g, v, k) = (next(), next(), next());
            Gvk {
                group: owned(g),
                version: owned(v),
                kind: owned(k),
            }
        };
        let spec = |gvk: Gvk, path: &str, create: &str| FieldSpec {
            gvk,
            path: path.to_owned(),
            create: create == "1",
        };
        match record {
            "S" => {
                let list = match section {
                    "namePrefix" => &mut c.name_prefix,
                    "nameSuffix" => &mut c.name_suffix,
                    "namespace" => &mut c.namespace,
                    "commonLabels" => &mut c.common_labels,
                    "templateLabels" => &mut c.template_labels,
                    "commonAnnotations" => &mut c.common_annotations,
                    "varReference" => &mut c.var_reference,
                    "images" => &mut c.images,
                    "replicas" => &mut c.replicas,
                    _ => continue,
                };
                let (path, create) = (next(), next());
                list.push(spec(gvk, path, create));
            }
            "N" => c.name_reference.push(NameBackRef {
                gvk,
                referrers: Vec::new(),
            }),
            "R" => {
                let (path, create) = (next(), next());
                if let Some(b) = c.name_reference.last_mut() {
                    b.referrers.push(spec(gvk, path, create));
                }
            }
            _ => {}
        }
    }
    c
}

/// Splits a field-spec path on `/`, keeping bracketed parts (`[a/b]`) whole.
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '/' if depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// What to create at the end of a missing path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    Scalar,
    Map,
}

/// Calls `f` on every node a field spec's path reaches in `obj` (creating missing fields when
/// the spec says so). Sequences on the way are entered element by element.
pub fn apply(
    obj: &mut Node,
    fs: &FieldSpec,
    create: Option<Create>,
    f: &mut dyn FnMut(&mut Node) -> Result<()>,
) -> Result<()> {
    let path = split_path(&fs.path);
    walk(obj, &path, fs.create, create, f)
}

fn walk(
    node: &mut Node,
    path: &[String],
    create_ok: bool,
    create: Option<Create>,
    f: &mut dyn FnMut(&mut Node) -> Result<()>,
) -> Result<()> {
    let Some((head, rest)) = path.split_first() else {
        return f(node);
    };
    match node {
        Node::Seq(items) => {
            for it in items {
                walk(it, path, create_ok, create, f)?;
            }
            Ok(())
        }
        Node::Map(_) => {
            let (field, is_seq) = match head.strip_suffix("[]") {
                Some(h) => (h, true),
                None => (head.as_str(), false),
            };
            let can_create = create_ok && create.is_some() && !is_seq;
            if node.get(field).is_none() {
                if !can_create {
                    return Ok(());
                }
                let new = if rest.is_empty() && create == Some(Create::Scalar) {
                    Node::null()
                } else {
                    Node::map()
                };
                node.set(field, new);
            }
            let Some(child) = node.get_mut(field) else {
                return Ok(());
            };
            if child.is_null() {
                if is_seq {
                    *child = Node::Seq(Vec::new());
                } else if can_create && !(rest.is_empty() && create == Some(Create::Scalar)) {
                    *child = Node::map();
                } else if !rest.is_empty() {
                    return Ok(());
                }
            }
            walk(child, rest, create_ok, create, f)
        }
        Node::Scalar(_) if node.is_null() => Ok(()),
        Node::Scalar(_) => Err(Error::msg(format!(
            "expected sequence or mapping node at path element {head}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::Limits;

    #[test]
    fn the_generated_table_matches_the_kustomize_yaml_it_came_from() {
        let docs = crate::yaml::parse_documents(
            include_str!("builtin/fieldspecs.yaml"),
            Limits::default(),
        )
        .expect("yaml");
        let from_yaml = TransformerConfig::from_node(docs[0].as_ref().expect("doc"));
        let d = TransformerConfig::defaults();
        assert_eq!(d.common_labels, from_yaml.common_labels);
        assert_eq!(d.namespace, from_yaml.namespace);
        assert_eq!(d.var_reference, from_yaml.var_reference);
        assert_eq!(d.name_reference.len(), from_yaml.name_reference.len());
        for (a, b) in d.name_reference.iter().zip(&from_yaml.name_reference) {
            assert_eq!((&a.gvk, &a.referrers), (&b.gvk, &b.referrers));
        }
    }

    #[test]
    fn defaults_hold_every_builtin_transformer() {
        let d = TransformerConfig::defaults();
        assert!(d.common_labels.len() > 20);
        assert!(d.name_reference.iter().any(|b| b.gvk.kind == "ConfigMap"));
        assert_eq!(d.name_prefix, vec![FieldSpec::new("metadata/name", false)]);
    }

    #[test]
    fn paths_enter_sequences_and_create_maps() {
        let mut n = crate::yaml::parse_documents(
            "spec:\n  containers:\n  - image: a\n  - image: b\n",
            Limits::default(),
        )
        .expect("yaml")
        .remove(0)
        .expect("doc");
        let mut seen = Vec::new();
        apply(
            &mut n,
            &FieldSpec::new("spec/containers[]/image", true),
            Some(Create::Scalar),
            &mut |v| {
                seen.push(v.as_str().unwrap_or("").to_string());
                Ok(())
            },
        )
        .expect("walks");
        assert_eq!(seen, ["a", "b"]);
        apply(
            &mut n,
            &FieldSpec::new("metadata/labels", true),
            Some(Create::Map),
            &mut |_| Ok(()),
        )
        .expect("creates");
        assert!(n.get_path(&["metadata", "labels"]).is_some());
    }
}
