//! The build: accumulating resources, bases and components, running generators and
//! transformers in kustomize's order, then hashing names and fixing references.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fieldspec::TransformerConfig;
use crate::fs::{EntryKind, FileSystem, is_within, join};
use crate::kustomization::Kustomization;
use crate::resource::{Object, ResId};
use crate::yaml::{Limits, Node, parse_documents, parse_documents_last_key_wins};
use crate::{generators, nameref, patch, replacements, sort, transformers, vars};

/// Options of [`build`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Flux's rule for an entry directory without a kustomization file: build a generated one
    /// listing the directory's manifests and its sub-directories that hold a kustomization.
    pub generate_missing_kustomization: bool,
    /// Limits on every YAML file read.
    pub limits: Limits,
    /// Whether a kustomization may read files outside its own directory.
    pub load_restrictions: LoadRestrictions,
}

/// kustomize's `--load-restrictor`. Either way nothing outside the [`FileSystem`]'s root
/// (the repository) is ever read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadRestrictions {
    /// kubectl's default: a kustomization reads files in or below its directory only (other
    /// directories come in as bases or components).
    #[default]
    RootOnly,
    /// Flux's setting: any file of the repository, e.g. `resources: [../shared/cm.yaml]`.
    None,
}

pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Objects accumulated so far, with the configuration and variables they bring.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    pub objs: Vec<Object>,
    /// The effective configuration: kustomize's defaults plus `extra`.
    pub config: Arc<TransformerConfig>,
    /// What `configurations` and `crds` added here and in bases (kept apart so merging a
    /// base's configuration does not re-merge the large defaults).
    pub extra: TransformerConfig,
    pub vars: Vec<vars::Var>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            objs: Vec::new(),
            config: TransformerConfig::defaults_shared(),
            extra: TransformerConfig::default(),
            vars: Vec::new(),
        }
    }

    fn add_config(&mut self, c: TransformerConfig) {
        if c.is_empty() {
            return;
        }
        self.extra.merge(c);
        let mut effective = TransformerConfig::defaults().clone();
        effective.merge(self.extra.clone());
        self.config = Arc::new(effective);
    }

    pub(crate) fn append(&mut self, o: Object) -> Result<()> {
        let id = o.cur_id();
        if self.objs.iter().any(|e| e.cur_id().equals(&id)) {
            return Err(Error::msg(format!(
                "may not add resource with an already registered id: {id}"
            )));
        }
        self.objs.push(o);
        Ok(())
    }
}

pub(crate) struct Builder<'a> {
    pub fs: &'a dyn FileSystem,
    pub opts: &'a Options,
    stack: Vec<String>,
    /// Deprecation warnings, in the order kustomization files were loaded.
    warnings: Vec<String>,
    /// The entry directory, from which origins are written.
    entry: String,
    /// The entry's `buildMetadata` is set: resources record where they come from and which
    /// transformers ran over them (kept in the output only if asked for).
    pub(crate) track_origins: bool,
}

/// The result of a build: the objects, and the warnings kubectl prints on stderr.
#[derive(Debug)]
pub struct Build {
    pub objects: Vec<Object>,
    pub warnings: Vec<String>,
}

/// Builds the kustomization in directory `entry` (relative to the filesystem root).
pub fn build(fs: &dyn FileSystem, entry: &str, opts: &Options) -> Result<Vec<Object>> {
    build_with_warnings(fs, entry, opts).map(|b| b.objects)
}

/// [`build`], also returning the deprecation warnings kustomize reports.
pub fn build_with_warnings(fs: &dyn FileSystem, entry: &str, opts: &Options) -> Result<Build> {
    let entry = join("", entry)?;
    let mut b = Builder {
        fs,
        opts,
        stack: Vec::new(),
        warnings: Vec::new(),
        entry: entry.clone(),
        track_origins: false,
    };
    let (k, _) = b.load_kustomization(&entry, opts.generate_missing_kustomization)?;
    // Only the entry's buildMetadata counts: kustomize gives it to every base.
    b.track_origins = !k.build_metadata.is_empty();
    let wants = |option: &str| k.build_metadata.iter().any(|o| o == option);
    let mut acc = Acc::new();
    b.stack.push(entry.clone());
    b.accumulate_target(&entry, &k, &mut acc)?;
    // The steps kustomize runs once, at the top level.
    generators::add_hashes(&mut acc.objs)?;
    nameref::fix(&mut acc.objs, &acc.config)?;
    vars::resolve(&mut acc.objs, &acc.vars, &acc.config)?;
    // kustomize keeps a local-config resource only when the annotation says "false".
    acc.objs.retain(|o| {
        match o.node.get_path(&[
            "metadata",
            "annotations",
            "config.kubernetes.io/local-config",
        ]) {
            None => true,
            Some(v) => v.as_str() == Some("false"),
        }
    });
    sort::apply(&mut acc.objs, k.sort_options.as_ref())?;
    if wants("managedByLabel") {
        transformers::set_entries(
            &mut acc.objs,
            &[(
                "app.kubernetes.io/managed-by".to_string(),
                "kustomize-(devel)".to_string(),
            )],
            &[crate::fieldspec::FieldSpec::new("metadata/labels", true)],
        )?;
    }
    let keep = Keep {
        origin: wants("originAnnotations"),
        transformations: wants("transformerAnnotations"),
    };
    for o in &mut acc.objs {
        finish_annotations(&mut o.node, keep)?;
    }
    Ok(Build {
        objects: acc.objs,
        warnings: b.warnings,
    })
}

/// Annotations kustomize uses while building (its own and kyaml's reader annotations),
/// removed from the output, with the origin and transformation records it only keeps when
/// `buildMetadata` asks for them.
const BUILD_ANNOTATIONS: [&str; 18] = [
    "internal.config.kubernetes.io/previousKinds",
    "internal.config.kubernetes.io/previousNames",
    "internal.config.kubernetes.io/prefixes",
    "internal.config.kubernetes.io/suffixes",
    "internal.config.kubernetes.io/previousNamespaces",
    "internal.config.kubernetes.io/allowNameChange",
    "internal.config.kubernetes.io/allowKindChange",
    "internal.config.kubernetes.io/refBy",
    "internal.config.kubernetes.io/generatorBehavior",
    "internal.config.kubernetes.io/needsHashSuffix",
    "internal.config.kubernetes.io/path",
    "internal.config.kubernetes.io/index",
    "internal.config.kubernetes.io/seqindent",
    "internal.config.kubernetes.io/id",
    "internal.config.kubernetes.io/annotations-migration-resource-id",
    "config.kubernetes.io/path",
    "config.kubernetes.io/index",
    "config.k8s.io/id",
];
const ORIGIN: &str = "config.kubernetes.io/origin";
const TRANSFORMATIONS: &str = "alpha.config.kubernetes.io/transformations";

/// kubectl's failure for a mapping key kustomize created from text that reads as another
/// type (`"1"`, `"true"`, `""`): kyaml writes new keys untagged, so they come out plain and
/// kubectl's re-read makes them non-string keys, which JSON cannot carry.
pub(crate) fn check_created_key(key: &str) -> Result<()> {
    if crate::yaml::resolve_v3(key) == crate::yaml::Resolved::Str {
        return Ok(());
    }
    Err(Error::msg(format!(
        "key {key:?} is written unquoted and read back as a non-string: json: unsupported type: map[interface {{}}]interface {{}}"
    )))
}

/// Which `buildMetadata` annotations stay in the output.
#[derive(Clone, Copy)]
struct Keep {
    origin: bool,
    transformations: bool,
}

/// kustomize's last steps on every resource: the build annotations are dropped and the
/// annotations written back as kyaml's `SetAnnotations` writes them, every value as the
/// string of its text (collections as ""), an empty map removed, and `metadata` created
/// if missing.
fn finish_annotations(node: &mut Node, keep: Keep) -> Result<()> {
    let Some(meta) = node.entry_map("metadata") else {
        return Ok(());
    };
    let Some(annotations) = meta.remove("annotations") else {
        return Ok(());
    };
    let entries: Vec<(String, Node)> = match annotations {
        Node::Map(entries) => entries
            .into_iter()
            .filter(|(k, _)| {
                !BUILD_ANNOTATIONS.contains(&k.as_str())
                    && (keep.origin || k != ORIGIN)
                    && (keep.transformations || k != TRANSFORMATIONS)
            })
            .map(|(k, v)| {
                let text = match v {
                    Node::Scalar(s) => s.value,
                    _ => String::new(),
                };
                (k, Node::str(text))
            })
            .collect(),
        _ => Vec::new(),
    };
    for (k, _) in &entries {
        check_created_key(k)?;
    }
    if !entries.is_empty() {
        meta.set("annotations", Node::Map(entries));
    }
    Ok(())
}

/// `path` relative to directory `from` (both normalized paths below the root), as Go's
/// `filepath.Join` builds kustomize's origin paths.
fn relative_path(from: &str, path: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|c| !c.is_empty()).collect();
    let to: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// A scalar as kyaml's marshaller writes it in an origin annotation.
fn origin_scalar(s: &str) -> String {
    let typed = !crate::yaml::v2_plain_is_string(s)
        || crate::yaml::resolve_v3(s) != crate::yaml::Resolved::Str;
    if typed {
        return format!("{s:?}");
    }
    let first = s.chars().next().unwrap_or(' ');
    let plain = !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !s.ends_with(' ')
        && !"-?:,[]{}#&*!|>'\"%@` ".contains(first);
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// The text of a generator's or transformer's `resource.Origin` (kyaml-marshalled).
pub(crate) fn configured_origin(configured_in: &str, kind: &str, name: &str, ns: &str) -> String {
    let mut text = format!(
        "configuredIn: {}\nconfiguredBy:\n  apiVersion: builtin\n  kind: {kind}\n",
        origin_scalar(configured_in)
    );
    if !name.is_empty() {
        text.push_str(&format!("  name: {}\n", origin_scalar(name)));
    }
    if !ns.is_empty() {
        text.push_str(&format!("  namespace: {}\n", origin_scalar(ns)));
    }
    text
}

fn annotation<'a>(o: &'a Object, key: &str) -> Option<&'a str> {
    o.node.str_at(&["metadata", "annotations", key])
}

fn set_annotation(o: &mut Object, key: &str, value: String) {
    if let Some(meta) = o.node.entry_map("metadata")
        && let Some(annotations) = meta.entry_map("annotations")
    {
        annotations.set(key, Node::str(value));
    }
}

/// kubectl's refusal of a plugin configuration (it runs no external plugins), or of a
/// builtin kind kustomize does not have.
pub(crate) fn plugin_refusal(api_version: &str, kind: &str) -> String {
    if api_version == "builtin" {
        let gvk = crate::resource::Gvk::from_api_version(api_version, kind);
        format!("unable to load builtin {gvk}")
    } else {
        format!("external plugins disabled; unable to load external plugin '{kind}'")
    }
}

/// Gives objects without an origin this one (kustomize's `AddOriginAnnotation`).
pub(crate) fn add_origin(objs: &mut [Object], origin: &str) {
    for o in objs.iter_mut().filter(|o| annotation(o, ORIGIN).is_none()) {
        set_annotation(o, ORIGIN, origin.to_string());
    }
}

/// The origin `old` had, restored on the object that replaced it.
pub(crate) fn keep_origin(old: &Object, new: &mut Object) {
    if let Some(origin) = annotation(old, ORIGIN) {
        set_annotation(new, ORIGIN, origin.to_string());
    }
}

/// Records that a transformer ran over every object (kustomize's
/// `AddTransformerAnnotation`): an object without an origin takes the transformer's.
fn add_transformation(objs: &mut [Object], origin: &str) {
    let mut item = String::new();
    for (i, line) in origin.lines().enumerate() {
        item.push_str(if i == 0 { "- " } else { "  " });
        item.push_str(line);
        item.push('\n');
    }
    for o in objs.iter_mut() {
        if annotation(o, ORIGIN).is_none() {
            set_annotation(o, ORIGIN, origin.to_string());
            continue;
        }
        let list = annotation(o, TRANSFORMATIONS).unwrap_or("").to_string() + &item;
        set_annotation(o, TRANSFORMATIONS, list);
    }
}

/// Reads and parses a YAML file, naming it in errors.
pub(crate) fn read_yaml(fs: &dyn FileSystem, path: &str, limits: Limits) -> Result<Vec<Node>> {
    read_yaml_with(fs, path, limits, parse_documents)
}

type Parse = fn(&str, Limits) -> Result<Vec<Option<Node>>, crate::yaml::YamlError>;

fn read_yaml_with(
    fs: &dyn FileSystem,
    path: &str,
    limits: Limits,
    parse: Parse,
) -> Result<Vec<Node>> {
    let bytes = fs.read(path)?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::msg(format!("{path}: file is not UTF-8")))?;
    let docs = parse(&text, limits).map_err(|source| Error::Yaml {
        file: path.to_string(),
        source,
    })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|d| !d.is_null())
        .collect())
}

/// The text of a metadata field kyaml counts as set (present, not null, not empty).
fn meta_field<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    n.get(key).filter(|v| match v {
        Node::Map(m) => !m.is_empty(),
        Node::Seq(s) => !s.is_empty(),
        Node::Scalar(_) => !v.is_null(),
    })
}

/// Go's `%v` of a `map[string]string` (keys sorted).
fn go_string_map(n: Option<&Node>) -> String {
    let mut entries: Vec<(&str, &str)> = n
        .and_then(Node::as_map)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let items: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}

/// kyaml's `GetValidatedMetadata`, which every document of a resource file must pass: some
/// metadata at all, a kind, and a name unless the kind is a list.
fn validate_metadata(d: &Node) -> Result<()> {
    let text = |n: Option<&Node>| n.and_then(Node::as_str).unwrap_or("").to_string();
    let (api_version, kind) = (meta_field(d, "apiVersion"), meta_field(d, "kind"));
    let meta = meta_field(d, "metadata").filter(|m| m.as_map().is_some());
    let (name, namespace, labels, annotations) = match meta {
        Some(m) => (
            meta_field(m, "name"),
            meta_field(m, "namespace"),
            meta_field(m, "labels"),
            meta_field(m, "annotations"),
        ),
        None => (None, None, None, None),
    };
    if [api_version, kind, name, namespace, labels, annotations]
        .iter()
        .all(Option::is_none)
    {
        return Err(Error::msg("missing Resource metadata"));
    }
    let kind_text = text(kind);
    let shown = || {
        format!(
            "{{{{{} {kind_text}}} {{{{{} {}}} {} {}}}}}",
            text(api_version),
            text(name),
            text(namespace),
            go_string_map(labels),
            go_string_map(annotations)
        )
    };
    if kind_text.is_empty() {
        return Err(Error::msg(format!("missing kind in object {}", shown())));
    }
    if !kind_text.ends_with("List") && text(name).is_empty() {
        return Err(Error::msg(format!(
            "missing metadata.name in object {}",
            shown()
        )));
    }
    Ok(())
}

fn is_nil_or_empty(n: &Node) -> bool {
    n.is_null() || n.as_map().is_some_and(Vec::is_empty)
}

/// The objects of a manifest file as kustomize's resource factory makes them: documents
/// validated, and `…List` kinds with items replaced by their items, which join the end of
/// the queue (so they follow the file's later documents).
pub(crate) fn objects_from_docs(docs: Vec<Node>) -> Result<Vec<Object>> {
    let mut queue: std::collections::VecDeque<Node> = std::collections::VecDeque::new();
    for d in docs {
        if is_nil_or_empty(&d) {
            continue;
        }
        validate_metadata(&d)?;
        queue.push_back(d);
    }
    let mut out = Vec::new();
    while let Some(d) = queue.pop_front() {
        let kind = d.str_at(&["kind"]).unwrap_or("");
        if !kind.ends_with("List") {
            out.push(Object::new(d));
            continue;
        }
        match d.get("items") {
            None => out.push(Object::new(d)),
            Some(items) if items.is_null() => {}
            Some(Node::Seq(items)) => {
                for item in items {
                    if is_nil_or_empty(item) {
                        continue;
                    }
                    validate_metadata(item)?;
                    queue.push_back(item.clone());
                }
            }
            Some(other) => {
                let found = match other {
                    Node::Map(_) => "map[string]interface {}",
                    Node::Scalar(s) if s.quoted => "string",
                    Node::Scalar(s) => match crate::yaml::resolve_v3(&s.value) {
                        crate::yaml::Resolved::Bool(_) => "bool",
                        crate::yaml::Resolved::Int(_) => "int",
                        crate::yaml::Resolved::Float(_) => "float64",
                        _ => "string",
                    },
                    Node::Seq(_) => "[]interface {}",
                };
                return Err(Error::msg(format!(
                    "expected array in {kind}/items, but found {found}"
                )));
            }
        }
    }
    Ok(out)
}

fn is_remote(p: &str) -> bool {
    p.contains("://")
        || p.starts_with("github.com/")
        || p.starts_with("git@")
        || p.starts_with("gitlab.com/")
}

impl Builder<'_> {
    /// The kustomization of directory `dir` (or Flux's generated one).
    pub(crate) fn load_kustomization(
        &mut self,
        dir: &str,
        generate: bool,
    ) -> Result<(Kustomization, String)> {
        let mut found = Vec::new();
        for name in KUSTOMIZATION_FILES {
            let p = join(dir, name)?;
            if self.fs.kind(&p) == Some(EntryKind::File) {
                found.push(p);
            }
        }
        if found.len() > 1 {
            return Err(Error::msg(format!(
                "Found multiple kustomization files under: {}",
                if dir.is_empty() { "." } else { dir }
            )));
        }
        if let Some(p) = found.pop() {
            // kustomize reads its kustomization as a Go value, so bad YAML there is an
            // invalid Kustomization rather than a malformed resource file.
            let docs = read_yaml_with(self.fs, &p, self.opts.limits, parse_documents_last_key_wins)
                .map_err(|e| match e {
                    Error::Yaml { source, .. } => Error::InvalidKustomization(source.to_string()),
                    e => e,
                })?;
            let doc = docs.into_iter().next().unwrap_or_else(Node::map);
            let mut k = Kustomization::from_node(&doc).map_err(|e| e.context(p.clone()))?;
            k.file_name = p.rsplit('/').next().unwrap_or(&p).to_string();
            self.warnings
                .extend(k.deprecations.iter().map(|w| w.to_string()));
            let errors = k.kind_errors();
            if !errors.is_empty() {
                return Err(Error::msg(format!(
                    "Failed to read kustomization file under {}:\n{}",
                    if dir.is_empty() { "." } else { dir },
                    errors.join("\n")
                )));
            }
            return Ok((k, p));
        }
        if generate {
            let doc = self.flux_generated(dir)?;
            return Ok((
                Kustomization::from_node(&doc)?,
                join(dir, "kustomization.yaml")?,
            ));
        }
        Err(Error::msg(format!(
            "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'",
            if dir.is_empty() { "." } else { dir }
        )))
    }

    /// What Flux's kustomize-controller writes into a directory without a kustomization:
    /// its manifests and the sub-directories holding a kustomization, in lexical walk order.
    fn flux_generated(&self, dir: &str) -> Result<Node> {
        let mut resources = Vec::new();
        self.flux_walk(dir, dir, &mut resources)?;
        let mut doc = Node::Map(vec![
            (
                "apiVersion".into(),
                Node::str("kustomize.config.k8s.io/v1beta1"),
            ),
            ("kind".into(), Node::str("Kustomization")),
        ]);
        if resources.is_empty() {
            doc.set("namespace", Node::str("_placeholder"));
        } else {
            doc.set(
                "resources",
                Node::Seq(resources.into_iter().map(Node::str).collect()),
            );
        }
        Ok(doc)
    }

    fn flux_walk(&self, root: &str, dir: &str, out: &mut Vec<String>) -> Result<()> {
        for name in self.fs.list(dir)? {
            let p = join(dir, &name)?;
            let rel = p
                .strip_prefix(root)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(&p)
                .to_string();
            match self.fs.kind(&p) {
                Some(EntryKind::Dir) => {
                    let has_k = KUSTOMIZATION_FILES.iter().any(|k| {
                        join(&p, k).ok().and_then(|kp| self.fs.kind(&kp)) == Some(EntryKind::File)
                    });
                    if has_k {
                        out.push(format!("./{rel}"));
                    } else {
                        self.flux_walk(root, &p, out)?;
                    }
                }
                Some(EntryKind::File) if name.ends_with(".yaml") || name.ends_with(".yml") => {
                    out.push(format!("./{rel}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Go's `filepath.EvalSymlinks` failure for a path that does not exist: `lstat` names the
    /// first component missing.
    pub(crate) fn missing(&self, p: &str) -> String {
        let mut first_missing = p;
        for (i, _) in p.match_indices('/') {
            if self.fs.kind(&p[..i]).is_none() {
                first_missing = &p[..i];
                break;
            }
        }
        format!("evalsymlink failure on '{p}' : lstat {first_missing}: no such file or directory")
    }

    /// A YAML file listed in kustomization `dir` (configurations, crds).
    fn read_listed(&self, dir: &str, rel: &str) -> Result<Vec<Node>> {
        let p = join(dir, rel)?;
        if self.fs.kind(&p).is_none() {
            return Err(Error::msg(self.missing(&p)));
        }
        read_yaml(self.fs, &self.file_in(dir, rel)?, self.opts.limits)
    }

    /// Whether `p` is in or below `dir` once symlinks are resolved, as kustomize's loader
    /// checks it.
    fn within(&self, p: &str, dir: &str) -> bool {
        if self.opts.load_restrictions == LoadRestrictions::None {
            return true;
        }
        if !is_within(p, dir) {
            return false;
        }
        match (self.fs.real_path(p), self.fs.real_path(dir)) {
            (Some(rp), Some(rd)) => is_within(&rp, &rd),
            _ => true,
        }
    }

    /// A file path of kustomization `dir`, which must stay inside `dir`.
    pub(crate) fn file_in(&self, dir: &str, rel: &str) -> Result<String> {
        let p = join(dir, rel)?;
        if !self.within(&p, dir) {
            return Err(Error::msg(format!(
                "security; file '{p}' is not in or below '{dir}'"
            )));
        }
        Ok(p)
    }

    pub(crate) fn read_file(&self, dir: &str, rel: &str) -> Result<Vec<u8>> {
        let p = self.file_in(dir, rel)?;
        Ok(self.fs.read(&p)?)
    }

    pub(crate) fn accumulate_target(
        &mut self,
        dir: &str,
        k: &Kustomization,
        acc: &mut Acc,
    ) -> Result<()> {
        if let Some(f) = k.unsupported.first() {
            return Err(Error::msg(format!(
                "{}: '{f}' is not supported: the in-process engine runs no helm, plugins or custom schemas",
                if dir.is_empty() { "." } else { dir }
            )));
        }
        for r in &k.resources {
            self.accumulate_resource(dir, r, acc)
                .map_err(|e| e.context("accumulating resources"))?;
        }
        for c in &k.configurations {
            let docs = self.read_listed(dir, c)?;
            for d in docs {
                acc.add_config(TransformerConfig::from_node(&d));
            }
        }
        for c in &k.crds {
            let loading = |e: Error| e.context(format!("loading CRDs [{}]", k.crds.join(" ")));
            let docs = self.read_listed(dir, c).map_err(loading)?;
            let mut add = TransformerConfig::default();
            crate::crds::load(&docs, &mut add).map_err(|why| {
                loading(Error::msg(format!(
                    "unable to parse open API definition from '{c}': error unmarshaling JSON: while decoding JSON: {why}"
                )))
            })?;
            acc.add_config(add);
        }
        generators::run(self, dir, k, acc)?;
        for c in &k.components {
            self.accumulate_component(dir, c, acc)
                .map_err(|e| e.context("accumulating components"))?;
        }
        self.run_transformers(dir, k, acc)?;
        // Validators are plugins: kubectl refuses them once the transformers have run.
        for v in &k.validators {
            let file = self.file_in(dir, v)?;
            if self.fs.kind(&file).is_none() {
                let missing = self.missing(&file);
                return Err(Error::msg(format!(
                    "accumulation err='accumulating resources from '{v}': {missing}': must build at directory: not a valid directory: {missing}"
                )));
            }
            let docs = read_yaml(self.fs, &file, self.opts.limits)?;
            if let Some(d) = objects_from_docs(docs)?.first() {
                return Err(Error::msg(plugin_refusal(d.api_version(), d.kind())));
            }
        }
        for v in &k.vars {
            acc.vars.push(vars::Var::from_node(v)?);
        }
        Ok(())
    }

    fn accumulate_resource(&mut self, dir: &str, rel: &str, acc: &mut Acc) -> Result<()> {
        if is_remote(rel) {
            return Err(Error::msg(format!(
                "accumulating resources from '{rel}': remote resources are not supported"
            )));
        }
        let p = join(dir, rel)?;
        if rel.is_empty() {
            return Err(Error::msg(format!(
                "accumulation err='accumulating resources from '': '{p}' must resolve to a file': new root cannot be empty"
            )));
        }
        match self.fs.kind(&p) {
            Some(EntryKind::File) => self.accumulate_file(dir, rel, &p, acc).map_err(|e| {
                // Malformed YAML is reported alone; anything else after kustomize's second
                // attempt, loading the file as a directory.
                if matches!(e, Error::Context { ref source, .. } if matches!(**source, Error::Yaml { .. }))
                {
                    e
                } else {
                    Error::msg(format!(
                        "accumulation err='{e}': must build at directory: '{p}': file is not directory"
                    ))
                }
            }),
            Some(EntryKind::Dir) => self.accumulate_directory(&p, false, acc).map_err(|e| {
                Error::msg(format!(
                    "accumulation err='accumulating resources from '{rel}': '{p}' must resolve to a file'"
                ))
                .context_of(e)
            }),
            None => Err(Error::msg(format!(
                "accumulation err='accumulating resources from '{rel}': {missing}': must build at directory: not a valid directory: {missing}",
                missing = self.missing(&p)
            ))),
        }
    }

    fn accumulate_file(&mut self, dir: &str, rel: &str, p: &str, acc: &mut Acc) -> Result<()> {
        let from = |e: Error| e.context(format!("accumulating resources from '{rel}'"));
        if !self.within(p, dir) {
            return Err(from(Error::msg(format!(
                "security; file '{p}' is not in or below '{dir}'"
            ))));
        }
        let docs = read_yaml(self.fs, p, self.opts.limits).map_err(from)?;
        let mut objs = objects_from_docs(docs).map_err(from)?;
        if self.track_origins {
            let origin = format!("path: {}\n", origin_scalar(&relative_path(&self.entry, p)));
            for o in &mut objs {
                set_annotation(o, ORIGIN, origin.clone());
            }
        }
        // Duplicates within the file are found while the file is read, others when merged.
        let mut file_acc = Acc::new();
        for o in objs {
            file_acc.append(o).map_err(from)?;
        }
        for o in file_acc.objs {
            acc.append(o)
                .map_err(|e| e.context(format!("merging resources from '{rel}'")))?;
        }
        Ok(())
    }

    /// A base (`component` false) or component directory, as kustomize's
    /// `accumulateDirectory`; the caller words the failure.
    fn accumulate_directory(&mut self, p: &str, component: bool, acc: &mut Acc) -> Result<()> {
        if let Some(visited) = self.stack.iter().find(|v| is_within(v, p)) {
            return Err(Error::msg(format!(
                "cycle detected: candidate root '{p}' contains visited root '{visited}'"
            )));
        }
        let (k, _) = self
            .load_kustomization(p, false)
            .map_err(|e| e.context(format!("couldn't make target for path '{p}'")))?;
        if component && !k.is_component {
            return Err(Error::msg(format!(
                "expected kind 'Component' for path '{p}' but got '{}'",
                if k.kind.is_empty() {
                    "Kustomization"
                } else {
                    &k.kind
                }
            )));
        }
        if !component && k.is_component {
            return Err(Error::msg(format!(
                "expected kind != 'Component' for path '{p}'"
            )));
        }
        self.stack.push(p.to_string());
        let mut sub = Acc::new();
        // A component adds to the caller's accumulator; a base builds its own, merged after.
        let target = if component { &mut *acc } else { &mut sub };
        let r = self.accumulate_target(p, &k, target);
        self.stack.pop();
        r.map_err(|e| e.context(format!("recursed accumulation of path '{p}'")))?;
        if component {
            return Ok(());
        }
        for o in sub.objs {
            acc.append(o)
                .map_err(|e| e.context(format!("recursed merging from path '{p}'")))?;
        }
        acc.add_config(sub.extra);
        acc.vars.extend(sub.vars);
        Ok(())
    }

    fn accumulate_component(&mut self, dir: &str, rel: &str, acc: &mut Acc) -> Result<()> {
        let p = join(dir, rel)?;
        match self.fs.kind(&p) {
            Some(EntryKind::Dir) => {}
            Some(EntryKind::File) => {
                return Err(Error::msg(format!(
                    "loader.New \"must build at directory: '{p}': file is not directory\""
                )));
            }
            None => {
                return Err(Error::msg(format!(
                    "loader.New \"must build at directory: not a valid directory: {}\"",
                    self.missing(&p)
                )));
            }
        }
        self.accumulate_directory(&p, true, acc)
            .map_err(|e| Error::msg(format!("accumulateDirectory: {:?}", e.to_string())))
    }

    /// `path` as kustomize writes origin paths: relative to the entry directory.
    pub(crate) fn origin_path(&self, path: &str) -> String {
        relative_path(&self.entry, path)
    }

    /// The origin of a builtin generator or transformer configured in `dir`'s kustomization.
    pub(crate) fn builtin_origin(&self, dir: &str, k: &Kustomization, kind: &str) -> String {
        let file = join(dir, &k.file_name).unwrap_or_default();
        configured_origin(&relative_path(&self.entry, &file), kind, "", "")
    }

    /// Records `count` runs of builtin transformer `kind` over the accumulated objects.
    fn ran(&self, dir: &str, k: &Kustomization, kind: &str, count: usize, acc: &mut Acc) {
        if !self.track_origins {
            return;
        }
        let origin = self.builtin_origin(dir, k, kind);
        for _ in 0..count {
            add_transformation(&mut acc.objs, &origin);
        }
    }

    fn run_transformers(&mut self, dir: &str, k: &Kustomization, acc: &mut Acc) -> Result<()> {
        patch::strategic_merge_legacy(self, dir, &k.patches_strategic_merge, acc)?;
        let merges = usize::from(!k.patches_strategic_merge.is_empty());
        self.ran(dir, k, "PatchStrategicMergeTransformer", merges, acc);
        for p in &k.patches {
            patch::apply_patch(self, dir, p, acc)?;
            self.ran(dir, k, "PatchTransformer", 1, acc);
        }
        if !k.namespace.is_empty() {
            transformers::namespace(
                &mut acc.objs,
                &k.namespace,
                &acc.config,
                transformers::NamespaceOptions::default(),
            )?;
            self.ran(dir, k, "NamespaceTransformer", 1, acc);
        }
        if !k.name_prefix.is_empty() {
            transformers::prefix_suffix(&mut acc.objs, &k.name_prefix, true, &acc.config)?;
            self.ran(dir, k, "PrefixTransformer", 1, acc);
        }
        if !k.name_suffix.is_empty() {
            transformers::prefix_suffix(&mut acc.objs, &k.name_suffix, false, &acc.config)?;
            self.ran(dir, k, "SuffixTransformer", 1, acc);
        }
        transformers::labels(&mut acc.objs, k, &acc.config)?;
        // One transformer per `labels` entry and one for commonLabels, even empty.
        if !k.labels.is_empty() || !k.common_labels.is_empty() {
            self.ran(dir, k, "LabelTransformer", k.labels.len() + 1, acc);
        }
        if !k.common_annotations.is_empty() {
            transformers::annotations(&mut acc.objs, &k.common_annotations, &acc.config)?;
            self.ran(dir, k, "AnnotationsTransformer", 1, acc);
        }
        for p in &k.patches_json6902 {
            patch::apply_legacy_json6902(self, dir, p, acc)?;
            self.ran(dir, k, "PatchJson6902Transformer", 1, acc);
        }
        for (name, count) in &k.replicas {
            transformers::replicas(&mut acc.objs, name, count, &acc.config)?;
            self.ran(dir, k, "ReplicaCountTransformer", 1, acc);
        }
        for img in &k.images {
            transformers::images(&mut acc.objs, img, &acc.config)?;
            self.ran(dir, k, "ImageTagTransformer", 1, acc);
        }
        if !k.replacements.is_empty() {
            replacements::run(self, dir, &k.replacements, &mut acc.objs)?;
            self.ran(dir, k, "ReplacementTransformer", 1, acc);
        }
        for t in &k.transformers {
            let file = self.file_in(dir, t)?;
            if self.fs.kind(&file).is_none() {
                let missing = self.missing(&file);
                return Err(Error::msg(format!(
                    "accumulation err='accumulating resources from '{t}': {missing}': must build at directory: not a valid directory: {missing}"
                )));
            }
            let docs = read_yaml(self.fs, &file, self.opts.limits)?;
            for d in docs {
                self.run_configured_transformer(dir, &d, acc)
                    .map_err(|e| e.context(format!("transformer {t}")))?;
                if self.track_origins {
                    let origin = configured_origin(
                        &relative_path(&self.entry, &file),
                        d.str_at(&["kind"]).unwrap_or(""),
                        d.str_at(&["metadata", "name"]).unwrap_or(""),
                        d.str_at(&["metadata", "namespace"]).unwrap_or(""),
                    );
                    add_transformation(&mut acc.objs, &origin);
                }
            }
        }
        Ok(())
    }

    /// A builtin transformer configured in a `transformers` file (no plugins run here).
    fn run_configured_transformer(&self, dir: &str, d: &Node, acc: &mut Acc) -> Result<()> {
        if patch::run_builtin(self, dir, d, acc)? {
            return Ok(());
        }
        let pairs = |field: &str| -> Vec<(String, String)> {
            d.get(field)
                .and_then(Node::as_map)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let specs = crate::fieldspec::specs(d.get("fieldSpecs"));
        match (
            d.str_at(&["apiVersion"]).unwrap_or(""),
            d.str_at(&["kind"]).unwrap_or(""),
        ) {
            ("builtin", "LabelTransformer") => {
                transformers::set_entries(&mut acc.objs, &pairs("labels"), &specs)
            }
            ("builtin", "AnnotationsTransformer") => {
                transformers::set_entries(&mut acc.objs, &pairs("annotations"), &specs)
            }
            ("builtin", kind @ ("PrefixTransformer" | "SuffixTransformer")) => {
                let prefix = kind == "PrefixTransformer";
                let affix = d
                    .str_at(&[if prefix { "prefix" } else { "suffix" }])
                    .unwrap_or("");
                if affix.is_empty() {
                    return Ok(());
                }
                let mut cfg = (*acc.config).clone();
                if prefix {
                    cfg.name_prefix = specs;
                } else {
                    cfg.name_suffix = specs;
                }
                transformers::prefix_suffix(&mut acc.objs, affix, prefix, &cfg)
            }
            ("builtin", "NamespaceTransformer") => {
                let ns = d
                    .str_at(&["metadata", "namespace"])
                    .unwrap_or("")
                    .to_string();
                let subjects = match d.str_at(&["setRoleBindingSubjects"]).unwrap_or("") {
                    "" | "defaultOnly" => transformers::Subjects::NamedDefault,
                    "allServiceAccounts" => transformers::Subjects::ServiceAccounts,
                    "none" => transformers::Subjects::None,
                    other => {
                        return Err(Error::msg(format!(
                            "invalid value {other:?} for setRoleBindingSubjects: must be one of \"defaultOnly\", \"none\" or \"allServiceAccounts\""
                        )));
                    }
                };
                let unset_only = d.str_at(&["unsetOnly"]).is_some_and(|v| {
                    matches!(
                        v,
                        "true"
                            | "True"
                            | "TRUE"
                            | "yes"
                            | "Yes"
                            | "YES"
                            | "on"
                            | "On"
                            | "ON"
                            | "y"
                            | "Y"
                    )
                });
                let mut cfg = (*acc.config).clone();
                cfg.namespace = specs;
                transformers::namespace(
                    &mut acc.objs,
                    &ns,
                    &cfg,
                    transformers::NamespaceOptions {
                        unset_only,
                        subjects,
                    },
                )
            }
            (av, kind) => Err(Error::msg(plugin_refusal(av, kind))),
        }
    }
}

impl Error {
    /// `self` as the context of `inner`, kustomize style ("outer: inner").
    fn context_of(self, inner: Error) -> Error {
        inner.context(self.to_string())
    }
}

/// The id an object had when first read or generated.
pub(crate) fn org_id(o: &Object) -> ResId {
    o.prev_ids.first().cloned().unwrap_or_else(|| o.cur_id())
}

#[cfg(test)]
mod tests {
    use crate::testutil::run;
    use crate::{LoadRestrictions, MemFs, Options, build};

    #[test]
    fn files_outside_the_kustomization_root_are_refused() {
        let err = run(
            &[
                ("a/kustomization.yaml", "resources: [../b/x.yaml]\n"),
                ("b/x.yaml", "kind: ConfigMap\n"),
            ],
            "a",
        )
        .expect_err("escape");
        assert!(err.to_string().contains("is not in or below"), "{err}");
        let err = run(
            &[("a/kustomization.yaml", "resources: [../../x.yaml]\n")],
            "a",
        )
        .expect_err("above root");
        assert!(
            err.to_string().contains("not in or below the root"),
            "{err}"
        );
    }

    #[test]
    fn without_load_restrictions_any_file_of_the_repository_is_read_but_nothing_outside() {
        let mut fs = MemFs::new();
        fs.add("a/kustomization.yaml", "resources: [../b/x.yaml]\n");
        fs.add(
            "b/x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        );
        let opts = Options {
            load_restrictions: LoadRestrictions::None,
            ..Options::default()
        };
        let built = build(&fs, "a", &opts).expect("a file of the repository is read");
        assert_eq!(built.len(), 1);
        let mut fs = MemFs::new();
        fs.add("a/kustomization.yaml", "resources: [../../x.yaml]\n");
        let err = build(&fs, "a", &opts).expect_err("above the root");
        assert!(
            err.to_string().contains("not in or below the root"),
            "{err}"
        );
    }

    #[test]
    fn remote_resources_are_refused_with_a_clear_error() {
        let err = run(
            &[(
                "a/kustomization.yaml",
                "resources: [https://github.com/x/y//base]\n",
            )],
            "a",
        )
        .expect_err("remote");
        assert!(
            err.to_string()
                .contains("remote resources are not supported"),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_names_the_file() {
        let err = run(
            &[
                ("a/kustomization.yaml", "resources: [x.yaml]\n"),
                ("a/x.yaml", "a: [b\n"),
            ],
            "a",
        )
        .expect_err("bad yaml");
        let msg = err.to_string();
        assert!(
            msg.contains("MalformedYAMLError") && msg.contains("a/x.yaml"),
            "{msg}"
        );
    }

    #[test]
    fn a_directory_without_kustomization_builds_with_the_flux_rule() {
        let mut fs = MemFs::new();
        fs.add(
            "d/b.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        )
        .add("d/sub/kustomization.yaml", "resources: [c.yaml]\n")
        .add(
            "d/sub/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        )
        .add("d/notes.txt", "ignored");
        let opts = Options {
            generate_missing_kustomization: true,
            ..Default::default()
        };
        let objs = build(&fs, "d", &opts).expect("builds");
        let names: Vec<&str> = objs.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["b", "c"]);
        assert!(build(&fs, "d", &Options::default()).is_err());
    }

    #[test]
    fn cycles_between_bases_are_detected() {
        let err = run(
            &[
                ("a/kustomization.yaml", "resources: [../b]\n"),
                ("b/kustomization.yaml", "resources: [../a]\n"),
            ],
            "a",
        )
        .expect_err("cycle");
        assert!(err.to_string().contains("cycle"), "{err}");
    }
}
