//! The kustomization file, read into typed fields (legacy fields kept apart so the build can
//! apply them in kustomize's order).

use crate::error::{Error, Result};
use crate::yaml::{Node, v2_plain_is_string};

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
    pub disable_name_suffix_hash: bool,
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
    /// The file's name (`kustomization.yaml`, `kustomization.yml` or `Kustomization`).
    pub file_name: String,
    pub kind: String,
    pub api_version: String,
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
    /// Files of generator configurations (only kustomize's builtin generators run).
    pub generators: Vec<String>,
    /// Files of validator configurations (plugins, which kubectl does not run either).
    pub validators: Vec<String>,
    /// Helm charts to inflate, which kubectl refuses without `--enable-helm` (as Flux does).
    pub helm_charts: Vec<Node>,
    pub sort_options: Option<Node>,
    pub build_metadata: Vec<String>,
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

/// The Go type of a kustomization field, as `encoding/json` decodes into it.
#[derive(Clone, Copy)]
enum GoType {
    /// A string kind, named as Go prints its type (`string`, `types.SortOrder`).
    Str(&'static str),
    Bool,
    /// An integer kind, named as Go prints it (`int64`, `int`).
    Int(&'static str),
    StrMap,
    BoolMap,
    List(&'static GoType),
    Struct(&'static GoStruct),
    /// Decoded by other parts of the engine, with their own checks.
    Any,
    /// Checked against the inner type but kept as written (vars are read with the key
    /// spellings kustomize's documentation uses, `fieldref: {fieldpath: …}`).
    Verbatim(&'static GoType),
}

struct GoStruct {
    name: &'static str,
    fields: &'static [(&'static str, GoType)],
}

const STRING: GoType = GoType::Str("string");
const STRINGS: GoType = GoType::List(&STRING);

const GENERATOR_OPTIONS: GoStruct = GoStruct {
    name: "GeneratorOptions",
    fields: &[
        ("labels", GoType::StrMap),
        ("annotations", GoType::StrMap),
        ("disableNameSuffixHash", GoType::Bool),
        ("immutable", GoType::Bool),
    ],
};

const GENERATOR_FIELDS: [(&str, GoType); 9] = [
    ("namespace", STRING),
    ("name", STRING),
    ("behavior", STRING),
    ("literals", STRINGS),
    ("files", STRINGS),
    ("envs", STRINGS),
    ("env", STRING),
    ("options", GoType::Struct(&GENERATOR_OPTIONS)),
    ("type", STRING),
];

const CONFIG_MAP_ARGS: GoStruct = GoStruct {
    name: "ConfigMapArgs",
    fields: GENERATOR_FIELDS.split_at(8).0,
};

const SECRET_ARGS: GoStruct = GoStruct {
    name: "SecretArgs",
    fields: &GENERATOR_FIELDS,
};

const SELECTOR: GoStruct = GoStruct {
    name: "Selector",
    fields: &[
        ("group", STRING),
        ("version", STRING),
        ("kind", STRING),
        ("name", STRING),
        ("namespace", STRING),
        ("annotationSelector", STRING),
        ("labelSelector", STRING),
    ],
};

const PATCH: GoStruct = GoStruct {
    name: "Patch",
    fields: &[
        ("path", STRING),
        ("patch", STRING),
        ("target", GoType::Struct(&SELECTOR)),
        ("options", GoType::BoolMap),
    ],
};

const IMAGE: GoStruct = GoStruct {
    name: "Image",
    fields: &[
        ("name", STRING),
        ("newName", STRING),
        ("tagSuffix", STRING),
        ("newTag", STRING),
        ("digest", STRING),
    ],
};

const REPLICA: GoStruct = GoStruct {
    name: "Replica",
    fields: &[("name", STRING), ("count", GoType::Int("int64"))],
};

const FIELD_SPEC: GoStruct = GoStruct {
    name: "FieldSpec",
    fields: &[
        ("group", STRING),
        ("version", STRING),
        ("kind", STRING),
        ("path", STRING),
        ("create", GoType::Bool),
    ],
};

const LABEL: GoStruct = GoStruct {
    name: "Label",
    fields: &[
        ("pairs", GoType::StrMap),
        ("includeSelectors", GoType::Bool),
        ("includeTemplates", GoType::Bool),
        ("fields", GoType::List(&GoType::Struct(&FIELD_SPEC))),
    ],
};

const LEGACY_SORT_OPTIONS: GoStruct = GoStruct {
    name: "LegacySortOptions",
    fields: &[("orderFirst", STRINGS), ("orderLast", STRINGS)],
};

const SORT_OPTIONS: GoStruct = GoStruct {
    name: "SortOptions",
    fields: &[
        ("order", GoType::Str("types.SortOrder")),
        ("legacySortOptions", GoType::Struct(&LEGACY_SORT_OPTIONS)),
    ],
};

const OBJECT_META: GoStruct = GoStruct {
    name: "ObjectMeta",
    fields: &[
        ("name", STRING),
        ("namespace", STRING),
        ("labels", GoType::StrMap),
        ("annotations", GoType::StrMap),
    ],
};

const ANY_LIST: GoType = GoType::List(&GoType::Any);

const VAR_TARGET: GoStruct = GoStruct {
    name: "Target",
    fields: &[
        ("apiVersion", STRING),
        ("group", STRING),
        ("version", STRING),
        ("kind", STRING),
        ("name", STRING),
        ("namespace", STRING),
    ],
};

const FIELD_SELECTOR: GoStruct = GoStruct {
    name: "FieldSelector",
    fields: &[("fieldPath", STRING)],
};

const VAR: GoStruct = GoStruct {
    name: "Var",
    fields: &[
        ("name", STRING),
        ("objref", GoType::Struct(&VAR_TARGET)),
        ("fieldref", GoType::Struct(&FIELD_SELECTOR)),
    ],
};

const FIELD_OPTIONS: GoStruct = GoStruct {
    name: "FieldOptions",
    fields: &[
        ("delimiter", STRING),
        ("index", GoType::Int("int")),
        ("encoding", STRING),
        ("create", GoType::Bool),
    ],
};

const SOURCE_SELECTOR: GoStruct = GoStruct {
    name: "SourceSelector",
    fields: &[
        ("group", STRING),
        ("version", STRING),
        ("kind", STRING),
        ("name", STRING),
        ("namespace", STRING),
        ("fieldPath", STRING),
        ("options", GoType::Struct(&FIELD_OPTIONS)),
    ],
};

const TARGET_SELECTOR: GoStruct = GoStruct {
    name: "TargetSelector",
    fields: &[
        ("select", GoType::Struct(&SELECTOR)),
        ("reject", GoType::List(&GoType::Struct(&SELECTOR))),
        ("fieldPaths", STRINGS),
        ("options", GoType::Struct(&FIELD_OPTIONS)),
    ],
};

const REPLACEMENT_FIELD: GoStruct = GoStruct {
    name: "ReplacementField",
    fields: &[
        ("source", GoType::Struct(&SOURCE_SELECTOR)),
        ("targets", GoType::List(&GoType::Struct(&TARGET_SELECTOR))),
        ("path", STRING),
    ],
};

const KUSTOMIZATION: GoStruct = GoStruct {
    name: "Kustomization",
    fields: &[
        ("kind", STRING),
        ("apiVersion", STRING),
        ("metadata", GoType::Struct(&OBJECT_META)),
        ("openapi", GoType::StrMap),
        ("namePrefix", STRING),
        ("nameSuffix", STRING),
        ("namespace", STRING),
        ("commonLabels", GoType::StrMap),
        ("labels", GoType::List(&GoType::Struct(&LABEL))),
        ("commonAnnotations", GoType::StrMap),
        (
            "patchesStrategicMerge",
            GoType::List(&GoType::Str("types.PatchStrategicMerge")),
        ),
        ("patchesJson6902", GoType::List(&GoType::Struct(&PATCH))),
        ("patches", GoType::List(&GoType::Struct(&PATCH))),
        ("images", GoType::List(&GoType::Struct(&IMAGE))),
        ("imageTags", GoType::List(&GoType::Struct(&IMAGE))),
        (
            "replacements",
            GoType::List(&GoType::Struct(&REPLACEMENT_FIELD)),
        ),
        ("replicas", GoType::List(&GoType::Struct(&REPLICA))),
        (
            "vars",
            GoType::List(&GoType::Verbatim(&GoType::Struct(&VAR))),
        ),
        ("sortOptions", GoType::Struct(&SORT_OPTIONS)),
        ("resources", STRINGS),
        ("components", STRINGS),
        ("crds", STRINGS),
        ("bases", STRINGS),
        (
            "configMapGenerator",
            GoType::List(&GoType::Struct(&CONFIG_MAP_ARGS)),
        ),
        (
            "secretGenerator",
            GoType::List(&GoType::Struct(&SECRET_ARGS)),
        ),
        ("helmGlobals", GoType::Any),
        ("helmCharts", ANY_LIST),
        ("helmChartInflationGenerator", ANY_LIST),
        ("generatorOptions", GoType::Struct(&GENERATOR_OPTIONS)),
        ("configurations", STRINGS),
        ("generators", STRINGS),
        ("transformers", STRINGS),
        ("validators", STRINGS),
        ("buildMetadata", STRINGS),
    ],
};

impl GoType {
    fn name(&self) -> String {
        match self {
            GoType::Str(name) => name.to_string(),
            GoType::Bool => "bool".into(),
            GoType::Int(name) => name.to_string(),
            GoType::StrMap => "map[string]string".into(),
            GoType::BoolMap => "map[string]bool".into(),
            GoType::List(item) => format!("[]{}", item.name()),
            GoType::Struct(s) => format!("types.{}", s.name),
            GoType::Any => "interface {}".into(),
            GoType::Verbatim(inner) => inner.name(),
        }
    }
}

/// What a YAML value is once sigs.k8s.io/yaml has turned it into JSON (go-yaml v2 typing).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum JsonKind {
    Null,
    Bool(bool),
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    pub(crate) fn of(n: &Node) -> JsonKind {
        let s = match n {
            Node::Map(_) => return JsonKind::Object,
            Node::Seq(_) => return JsonKind::Array,
            Node::Scalar(s) => s,
        };
        // The text decides (go-yaml v2 typing), unless the scalar was quoted.
        if s.quoted {
            return JsonKind::String;
        }
        match s.value.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => JsonKind::Null,
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                JsonKind::Bool(true)
            }
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off"
            | "OFF" => JsonKind::Bool(false),
            text if v2_plain_is_string(text) => JsonKind::String,
            _ => JsonKind::Number,
        }
    }

    pub(crate) fn word(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool(_) => "bool",
            JsonKind::Number => "number",
            JsonKind::String => "string",
            JsonKind::Array => "array",
            JsonKind::Object => "object",
        }
    }
}

/// Decodes a kustomization document against kustomize's Go types the way `encoding/json`
/// with unknown fields disallowed does: keys matched case-insensitively and renamed to the
/// field's name, booleans spelled `true`/`false`, and the first error (in JSON's sorted key
/// order) reported in Go's words.
struct Decoder {
    path: Vec<&'static str>,
    first_error: Option<String>,
}

impl Decoder {
    fn fail(&mut self, got: &str, struct_name: &str, ty: &GoType) {
        if self.first_error.is_some() {
            return;
        }
        self.first_error = Some(if self.path.is_empty() {
            format!(
                "json: cannot unmarshal {got} into Go value of type {}",
                ty.name()
            )
        } else {
            format!(
                "json: cannot unmarshal {got} into Go struct field {struct_name}.{} of type {}",
                self.path.join("."),
                ty.name()
            )
        });
    }

    fn value(&mut self, n: &Node, ty: &GoType, struct_name: &str) -> Node {
        let kind = JsonKind::of(n);
        if kind == JsonKind::Null {
            return n.clone();
        }
        match (ty, kind, n) {
            (GoType::Any, ..) => n.clone(),
            (GoType::Str(_), JsonKind::String, _) => n.clone(),
            (GoType::Bool, JsonKind::Bool(b), _) => Node::plain(if b { "true" } else { "false" }),
            (GoType::Verbatim(inner), ..) => {
                self.value(n, inner, struct_name);
                n.clone()
            }
            (GoType::Int(_), JsonKind::Number, Node::Scalar(s)) => {
                if s.value.replace('_', "").parse::<i64>().is_err() {
                    self.fail(&format!("number {}", s.value), struct_name, ty);
                }
                n.clone()
            }
            (GoType::StrMap | GoType::BoolMap, JsonKind::Object, Node::Map(entries)) => {
                let item = if matches!(ty, GoType::StrMap) {
                    STRING
                } else {
                    GoType::Bool
                };
                let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                for (_, v) in sorted {
                    self.value(v, &item, struct_name);
                }
                Node::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), self.value(v, &item, struct_name)))
                        .collect(),
                )
            }
            (GoType::List(item), JsonKind::Array, Node::Seq(items)) => Node::Seq(
                items
                    .iter()
                    .map(|i| self.value(i, item, struct_name))
                    .collect(),
            ),
            (GoType::Struct(s), JsonKind::Object, Node::Map(entries)) => self.object(entries, s),
            _ => {
                self.fail(kind.word(), struct_name, ty);
                n.clone()
            }
        }
    }

    fn object(&mut self, entries: &[(String, Node)], s: &'static GoStruct) -> Node {
        let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Node::map();
        for (key, v) in sorted {
            let field = s
                .fields
                .iter()
                .find(|f| f.0 == key)
                .or_else(|| s.fields.iter().find(|f| f.0.eq_ignore_ascii_case(key)));
            let Some((name, ty)) = field else {
                if self.first_error.is_none() {
                    self.first_error = Some(format!("json: unknown field {key:?}"));
                }
                continue;
            };
            self.path.push(name);
            let decoded = self.value(v, ty, s.name);
            self.path.pop();
            out.set(name, decoded);
        }
        out
    }
}

/// `doc` decoded as kustomize's `Kustomization` type (see [`Decoder`]).
fn decode(doc: &Node) -> Result<Node> {
    let mut d = Decoder {
        path: Vec::new(),
        first_error: None,
    };
    let ty = GoType::Struct(&KUSTOMIZATION);
    let out = d.value(doc, &ty, KUSTOMIZATION.name);
    match d.first_error {
        Some(e) => Err(invalid(e)),
        None => Ok(out),
    }
}

/// Whether a decoded kustomization sets nothing beyond kind and apiVersion (kustomize's
/// `CheckEmpty`: empty strings, false and null count as unset, empty lists and maps do not,
/// except for the deprecated lists it folds into others).
fn is_empty_kustomization(doc: &Node) -> bool {
    doc.as_map().is_none_or(|entries| {
        entries.iter().all(|(k, v)| match v {
            _ if k == "kind" || k == "apiVersion" || v.is_null() => true,
            Node::Scalar(s) => s.value.is_empty() || s.value == "false" || s.value == "0",
            Node::Seq(items) => items.is_empty() && (k == "bases" || k == "imageTags"),
            Node::Map(_) => false,
        })
    })
}

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
        disable_name_suffix_hash: bool_field(n, "disableNameSuffixHash"),
        immutable: bool_field(n, "immutable"),
    })
}

pub(crate) fn generator(n: &Node) -> Result<GeneratorArgs> {
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
    /// kustomize's `EnforceFields`: what is wrong with the kind and apiVersion, if anything.
    pub fn kind_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.kind.is_empty() && self.kind != "Kustomization" && self.kind != "Component" {
            errors.push("kind should be Kustomization or Component".to_string());
        }
        let required = if self.kind == "Component" {
            "kustomize.config.k8s.io/v1alpha1"
        } else {
            "kustomize.config.k8s.io/v1beta1"
        };
        if !self.api_version.is_empty() && self.api_version != required {
            errors.push(format!("apiVersion for {} should be {required}", self.kind));
        }
        errors
    }

    /// Reads a kustomization document; unknown fields are refused as kustomize refuses them.
    pub fn from_node(doc: &Node) -> Result<Kustomization> {
        let decoded = decode(doc)?;
        let doc = &decoded;
        if is_empty_kustomization(doc) {
            return Err(Error::msg("kustomization.yaml is empty"));
        }
        let kind = str_field(doc, "kind")?;
        let mut k = Kustomization {
            is_component: kind == "Component",
            api_version: str_field(doc, "apiVersion")?,
            kind,
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
        k.generators = str_list(doc, "generators")?;
        k.validators = str_list(doc, "validators")?;
        k.sort_options = doc.get("sortOptions").cloned();
        k.build_metadata = str_list(doc, "buildMetadata")?;
        k.file_name = "kustomization.yaml".into();
        for (field, message) in DEPRECATED {
            if doc.get(field).is_some_and(|n| !n.is_null()) {
                k.deprecations.push(message);
            }
        }
        for f in ["helmCharts", "helmChartInflationGenerator"] {
            k.helm_charts.extend(seq(doc, f).iter().cloned());
        }
        // A custom OpenAPI schema would change how patches merge; the engine has only the
        // builtin one.
        if doc
            .get("openapi")
            .and_then(Node::as_map)
            .is_some_and(|m| !m.is_empty())
        {
            k.unsupported.push("openapi".to_string());
        }
        Ok(k)
    }
}
