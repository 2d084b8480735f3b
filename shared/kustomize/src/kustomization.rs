//! The kustomization file, read into typed fields (legacy fields kept apart so the build can
//! apply them in kustomize's order).

use crate::error::{Error, Result};
use crate::yaml::Node;

/// A patch target selector.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub label_selector: String,
    pub annotation_selector: String,
}

#[derive(Clone, Debug, Default)]
pub struct Patch {
    pub path: Option<String>,
    pub patch: Option<String>,
    pub target: Option<Selector>,
    pub allow_name_change: bool,
    pub allow_kind_change: bool,
}

#[derive(Clone, Debug, Default)]
pub struct GeneratorArgs {
    pub name: String,
    pub namespace: String,
    pub behavior: String,
    pub literals: Vec<String>,
    pub files: Vec<String>,
    pub envs: Vec<String>,
    pub secret_type: String,
    pub options: GeneratorOptions,
}

#[derive(Clone, Debug, Default)]
pub struct GeneratorOptions {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Image {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub tag_suffix: Option<String>,
    pub digest: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Label {
    pub pairs: Vec<(String, String)>,
    pub include_selectors: bool,
    pub include_templates: bool,
    pub fields: Option<Node>,
}

/// A kustomization file.
#[derive(Clone, Debug, Default)]
pub struct Kustomization {
    pub is_component: bool,
    pub resources: Vec<String>,
    pub components: Vec<String>,
    pub namespace: String,
    pub name_prefix: String,
    pub name_suffix: String,
    pub common_labels: Vec<(String, String)>,
    pub labels: Vec<Label>,
    pub common_annotations: Vec<(String, String)>,
    pub images: Vec<Image>,
    pub replicas: Vec<(String, Node)>,
    pub config_map_generator: Vec<GeneratorArgs>,
    pub secret_generator: Vec<GeneratorArgs>,
    pub generator_options: Option<GeneratorOptions>,
    pub patches: Vec<Patch>,
    pub patches_strategic_merge: Vec<String>,
    pub patches_json6902: Vec<Patch>,
    pub replacements: Vec<Node>,
    pub vars: Vec<Node>,
    pub crds: Vec<String>,
    pub configurations: Vec<String>,
    pub transformers: Vec<String>,
    pub sort_options: Option<Node>,
    /// Fields naming features that would run programs or plugins (helm, exec generators,
    /// validators) or replace the built-in schema; the engine refuses them.
    pub unsupported: Vec<String>,
    /// kustomize's warnings for deprecated fields, in its order.
    pub deprecations: Vec<&'static str>,
}

/// Deprecated fields and kustomize's warning for each, in the order kustomize checks them.
const DEPRECATED: &[(&str, &str)] = &[
    (
        "bases",
        "# Warning: 'bases' is deprecated. Please use 'resources' instead. Run 'kustomize edit fix' to update your Kustomization automatically.",
    ),
    (
        "commonLabels",
        "# Warning: 'commonLabels' is deprecated. Please use 'labels' instead. Run 'kustomize edit fix' to update your Kustomization automatically.",
    ),
    (
        "imageTags",
        "# Warning: 'imageTags' is deprecated. Please use 'images' instead. Run 'kustomize edit fix' to update your Kustomization automatically.",
    ),
    (
        "patchesJson6902",
        "# Warning: 'patchesJson6902' is deprecated. Please use 'patches' instead. Run 'kustomize edit fix' to update your Kustomization automatically.",
    ),
    (
        "patchesStrategicMerge",
        "# Warning: 'patchesStrategicMerge' is deprecated. Please use 'patches' instead. Run 'kustomize edit fix' to update your Kustomization automatically.",
    ),
    (
        "vars",
        "# Warning: 'vars' is deprecated. Please use 'replacements' instead. [EXPERIMENTAL] Run 'kustomize edit fix' to update your Kustomization automatically.",
    ),
];

const KNOWN: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "components",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "images",
    "imageTags",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "replacements",
    "vars",
    "crds",
    "configurations",
    "transformers",
    "generators",
    "validators",
    "sortOptions",
    "buildMetadata",
    "openapi",
    "helmCharts",
    "helmGlobals",
    "helmChartInflationGenerator",
];

fn invalid(msg: String) -> Error {
    Error::InvalidKustomization(msg)
}

/// Text of a scalar, as Go would read it into a string field.
fn scalar_text(n: &Node, field: &str) -> Result<String> {
    match n {
        Node::Scalar(_) if n.is_null() => Ok(String::new()),
        Node::Scalar(s) => Ok(s.value.clone()),
        _ => Err(invalid(format!(
            "json: cannot unmarshal into field {field} of type string"
        ))),
    }
}

fn str_field(m: &Node, key: &str) -> Result<String> {
    match m.get(key) {
        None => Ok(String::new()),
        Some(n) => scalar_text(n, key),
    }
}

fn str_list(m: &Node, key: &str) -> Result<Vec<String>> {
    match m.get(key) {
        None => Ok(Vec::new()),
        Some(n) if n.is_null() => Ok(Vec::new()),
        Some(Node::Seq(items)) => items.iter().map(|i| scalar_text(i, key)).collect(),
        Some(_) => Err(invalid(format!(
            "json: cannot unmarshal into field {key} of type []string"
        ))),
    }
}

fn str_map(m: &Node, key: &str) -> Result<Vec<(String, String)>> {
    match m.get(key) {
        None => Ok(Vec::new()),
        Some(n) if n.is_null() => Ok(Vec::new()),
        Some(Node::Map(entries)) => entries
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    if v.is_null() {
                        String::new()
                    } else {
                        scalar_text(v, key)?
                    },
                ))
            })
            .collect(),
        Some(_) => Err(invalid(format!(
            "json: cannot unmarshal into field {key} of type map[string]string"
        ))),
    }
}

fn bool_field(m: &Node, key: &str) -> bool {
    m.get(key)
        .and_then(Node::as_str)
        .is_some_and(|s| s == "true" || s == "True" || s == "TRUE")
}

fn seq<'a>(m: &'a Node, key: &str) -> &'a [Node] {
    m.get(key)
        .and_then(Node::as_seq)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn selector(n: Option<&Node>) -> Result<Option<Selector>> {
    let Some(t) = n.filter(|n| !n.is_null()) else {
        return Ok(None);
    };
    Ok(Some(Selector {
        group: str_field(t, "group")?,
        version: str_field(t, "version")?,
        kind: str_field(t, "kind")?,
        name: str_field(t, "name")?,
        namespace: str_field(t, "namespace")?,
        label_selector: str_field(t, "labelSelector")?,
        annotation_selector: str_field(t, "annotationSelector")?,
    }))
}

fn gen_options(n: &Node) -> Result<GeneratorOptions> {
    Ok(GeneratorOptions {
        labels: str_map(n, "labels")?,
        annotations: str_map(n, "annotations")?,
        disable_name_suffix_hash: n
            .get("disableNameSuffixHash")
            .map(|_| bool_field(n, "disableNameSuffixHash")),
        immutable: bool_field(n, "immutable"),
    })
}

fn generator(n: &Node) -> Result<GeneratorArgs> {
    let mut envs = str_list(n, "envs")?;
    let env = str_field(n, "env")?;
    if !env.is_empty() {
        envs.push(env);
    }
    Ok(GeneratorArgs {
        name: str_field(n, "name")?,
        namespace: str_field(n, "namespace")?,
        behavior: str_field(n, "behavior")?,
        literals: str_list(n, "literals")?,
        files: str_list(n, "files")?,
        envs,
        secret_type: str_field(n, "type")?,
        options: n
            .get("options")
            .map(gen_options)
            .transpose()?
            .unwrap_or_default(),
    })
}

impl Kustomization {
    /// Reads a kustomization document; unknown fields are refused as kustomize refuses them.
    pub fn from_node(doc: &Node) -> Result<Kustomization> {
        let Node::Map(entries) = doc else {
            return Err(invalid("kustomization is not a mapping".into()));
        };
        for (k, _) in entries {
            if !KNOWN.contains(&k.as_str()) {
                return Err(invalid(format!("json: unknown field \"{k}\"")));
            }
        }
        let kind = str_field(doc, "kind")?;
        let mut k = Kustomization {
            is_component: kind == "Component",
            ..Default::default()
        };
        k.resources = str_list(doc, "resources")?;
        k.resources.extend(str_list(doc, "bases")?);
        k.components = str_list(doc, "components")?;
        k.namespace = str_field(doc, "namespace")?;
        k.name_prefix = str_field(doc, "namePrefix")?;
        k.name_suffix = str_field(doc, "nameSuffix")?;
        k.common_labels = str_map(doc, "commonLabels")?;
        k.common_annotations = str_map(doc, "commonAnnotations")?;
        for l in seq(doc, "labels") {
            k.labels.push(Label {
                pairs: str_map(l, "pairs")?,
                include_selectors: bool_field(l, "includeSelectors"),
                include_templates: bool_field(l, "includeTemplates"),
                fields: l.get("fields").cloned(),
            });
        }
        for key in ["images", "imageTags"] {
            for i in seq(doc, key) {
                let opt = |f: &str| -> Result<Option<String>> {
                    i.get(f).map(|n| scalar_text(n, f)).transpose()
                };
                k.images.push(Image {
                    name: str_field(i, "name")?,
                    new_name: opt("newName")?,
                    new_tag: opt("newTag")?,
                    tag_suffix: opt("tagSuffix")?,
                    digest: opt("digest")?,
                });
            }
        }
        for r in seq(doc, "replicas") {
            k.replicas.push((
                str_field(r, "name")?,
                r.get("count").cloned().unwrap_or_else(|| Node::int(0)),
            ));
        }
        k.config_map_generator = seq(doc, "configMapGenerator")
            .iter()
            .map(generator)
            .collect::<Result<_>>()?;
        k.secret_generator = seq(doc, "secretGenerator")
            .iter()
            .map(generator)
            .collect::<Result<_>>()?;
        k.generator_options = doc.get("generatorOptions").map(gen_options).transpose()?;
        for p in seq(doc, "patches") {
            let opts = p.get("options");
            k.patches.push(Patch {
                path: p.get("path").map(|n| scalar_text(n, "path")).transpose()?,
                patch: p
                    .get("patch")
                    .map(|n| scalar_text(n, "patch"))
                    .transpose()?,
                target: selector(p.get("target"))?,
                allow_name_change: opts.is_some_and(|o| bool_field(o, "allowNameChange")),
                allow_kind_change: opts.is_some_and(|o| bool_field(o, "allowKindChange")),
            });
        }
        k.patches_strategic_merge = str_list(doc, "patchesStrategicMerge")?;
        for p in seq(doc, "patchesJson6902") {
            k.patches_json6902.push(Patch {
                path: p.get("path").map(|n| scalar_text(n, "path")).transpose()?,
                patch: p
                    .get("patch")
                    .map(|n| scalar_text(n, "patch"))
                    .transpose()?,
                target: selector(p.get("target"))?,
                ..Default::default()
            });
        }
        k.replacements = seq(doc, "replacements").to_vec();
        k.vars = seq(doc, "vars").to_vec();
        k.crds = str_list(doc, "crds")?;
        k.configurations = str_list(doc, "configurations")?;
        k.transformers = str_list(doc, "transformers")?;
        k.sort_options = doc.get("sortOptions").cloned();
        for (field, message) in DEPRECATED {
            if doc.get(field).is_some_and(|n| !n.is_null()) {
                k.deprecations.push(message);
            }
        }
        for f in [
            "helmCharts",
            "helmGlobals",
            "helmChartInflationGenerator",
            "generators",
            "validators",
            "openapi",
        ] {
            let present = match doc.get(f) {
                None => false,
                Some(Node::Seq(s)) => !s.is_empty(),
                Some(Node::Map(m)) => !m.is_empty(),
                Some(n) => !n.is_null(),
            };
            if present {
                k.unsupported.push(f.to_string());
            }
        }
        Ok(k)
    }
}
