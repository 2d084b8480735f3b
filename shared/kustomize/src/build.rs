//! The build: accumulating resources, bases and components, running generators and
//! transformers in kustomize's order, then hashing names and fixing references.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fieldspec::TransformerConfig;
use crate::fs::{EntryKind, FileSystem, is_within, join};
use crate::kustomization::Kustomization;
use crate::resource::{Object, ResId};
use crate::yaml::{Limits, Node, parse_documents};
use crate::{generators, nameref, patch, replacements, sort, transformers, vars};

/// Options of [`build`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Flux's rule for an entry directory without a kustomization file: build a generated one
    /// listing the directory's manifests and its sub-directories that hold a kustomization.
    pub generate_missing_kustomization: bool,
    /// Limits on every YAML file read.
    pub limits: Limits,
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
    };
    let (k, _) = b.load_kustomization(&entry, opts.generate_missing_kustomization)?;
    let mut acc = Acc::new();
    b.accumulate_target(&entry, &k, &mut acc)?;
    // The steps kustomize runs once, at the top level.
    generators::add_hashes(&mut acc.objs)?;
    nameref::fix(&mut acc.objs, &acc.config)?;
    vars::resolve(&mut acc.objs, &acc.vars, &acc.config)?;
    acc.objs.retain(|o| {
        o.node.str_at(&[
            "metadata",
            "annotations",
            "config.kubernetes.io/local-config",
        ]) != Some("true")
    });
    sort::apply(&mut acc.objs, k.sort_options.as_ref())?;
    Ok(Build {
        objects: acc.objs,
        warnings: b.warnings,
    })
}

/// Reads and parses a YAML file, naming it in errors.
pub(crate) fn read_yaml(fs: &dyn FileSystem, path: &str, limits: Limits) -> Result<Vec<Node>> {
    let bytes = fs.read(path)?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::msg(format!("{path}: file is not UTF-8")))?;
    let docs = parse_documents(&text, limits).map_err(|source| Error::Yaml {
        file: path.to_string(),
        source,
    })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|d| !d.is_null())
        .collect())
}

/// The objects of a manifest file: documents, with `List` kinds expanded.
pub(crate) fn objects_from_docs(docs: Vec<Node>, file: &str) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for d in docs {
        match &d {
            Node::Map(m) if m.is_empty() => {}
            Node::Map(_) => {
                let kind = d.str_at(&["kind"]).unwrap_or("");
                if kind.ends_with("List") && d.get("items").is_some_and(|i| i.as_seq().is_some()) {
                    for item in d.get("items").and_then(Node::as_seq).into_iter().flatten() {
                        if item.as_map().is_some_and(|m| !m.is_empty()) {
                            out.push(Object::new(item.clone()));
                        }
                    }
                } else {
                    out.push(Object::new(d));
                }
            }
            _ => return Err(Error::msg(format!("{file}: document is not a mapping"))),
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
            let docs = read_yaml(self.fs, &p, self.opts.limits)?;
            let doc = docs.into_iter().next().unwrap_or_else(Node::map);
            let k = Kustomization::from_node(&doc).map_err(|e| e.context(p.clone()))?;
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

    /// A file path of kustomization `dir`, which must stay inside `dir`.
    pub(crate) fn file_in(&self, dir: &str, rel: &str) -> Result<String> {
        let p = join(dir, rel)?;
        if !is_within(&p, dir) {
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
            let docs = read_yaml(self.fs, &self.file_in(dir, c)?, self.opts.limits)?;
            for d in docs {
                acc.add_config(TransformerConfig::from_node(&d));
            }
        }
        for c in &k.crds {
            let docs = read_yaml(self.fs, &self.file_in(dir, c)?, self.opts.limits)?;
            let mut add = TransformerConfig::default();
            crate::crds::load(&docs, &mut add);
            acc.add_config(add);
        }
        generators::run(self, dir, k, acc)?;
        for c in &k.components {
            self.accumulate_component(dir, c, acc)
                .map_err(|e| e.context("accumulating components"))?;
        }
        self.run_transformers(dir, k, acc)?;
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
        match self.fs.kind(&p) {
            Some(EntryKind::File) => {
                if !is_within(&p, dir) {
                    return Err(Error::msg(format!(
                        "accumulation err='accumulating resources from '{rel}': security; file '{p}' is not in or below '{dir}'': must build at directory: '{p}': file is not directory"
                    )));
                }
                let docs = read_yaml(self.fs, &p, self.opts.limits)
                    .map_err(|e| e.context(format!("accumulating resources from '{rel}'")))?;
                for o in objects_from_docs(docs, &p)? {
                    acc.append(o)?;
                }
                Ok(())
            }
            Some(EntryKind::Dir) => {
                let sub = self.build_base(&p).map_err(|e| {
                    Error::msg(format!("accumulation err='accumulating resources from '{rel}': '{p}' must resolve to a file'"))
                        .context_of(e)
                })?;
                for o in sub.objs {
                    acc.append(o)
                        .map_err(|e| e.context(format!("recursed merging from path '{p}'")))?;
                }
                acc.add_config(sub.extra);
                acc.vars.extend(sub.vars);
                Ok(())
            }
            None => Err(Error::msg(format!(
                "accumulation err='accumulating resources from '{rel}': evalsymlink failure on '{p}' : lstat {p}: no such file or directory': must build at directory: not a valid directory: evalsymlink failure on '{p}' : lstat {p}: no such file or directory"
            ))),
        }
    }

    fn build_base(&mut self, dir: &str) -> Result<Acc> {
        if self.stack.iter().any(|d| d == dir) {
            return Err(Error::msg(format!(
                "cycle detected: candidate root '{dir}' contains visited root"
            )));
        }
        let (k, _) = self
            .load_kustomization(dir, false)
            .map_err(|e| e.context(format!("couldn't make target for path '{dir}'")))?;
        if k.is_component {
            return Err(Error::msg(format!(
                "'{dir}' is a Component and may only be listed under components"
            )));
        }
        self.stack.push(dir.to_string());
        let mut acc = Acc::new();
        let r = self.accumulate_target(dir, &k, &mut acc);
        self.stack.pop();
        r?;
        Ok(acc)
    }

    fn accumulate_component(&mut self, dir: &str, rel: &str, acc: &mut Acc) -> Result<()> {
        let p = join(dir, rel)?;
        if self.fs.kind(&p) != Some(EntryKind::Dir) {
            return Err(Error::msg(format!(
                "component '{rel}' must be a directory holding a Component kustomization"
            )));
        }
        let (k, file) = self.load_kustomization(&p, false)?;
        if !k.is_component {
            return Err(Error::msg(format!(
                "{file}: expected kind 'Component' for path '{p}'"
            )));
        }
        if self.stack.contains(&p) {
            return Err(Error::msg(format!(
                "cycle detected: candidate root '{p}' contains visited root"
            )));
        }
        self.stack.push(p.clone());
        let r = self.accumulate_target(&p, &k, acc);
        self.stack.pop();
        r
    }

    fn run_transformers(&mut self, dir: &str, k: &Kustomization, acc: &mut Acc) -> Result<()> {
        patch::strategic_merge_legacy(self, dir, &k.patches_strategic_merge, acc)?;
        for p in &k.patches {
            patch::apply_patch(self, dir, p, acc)?;
        }
        if !k.namespace.is_empty() {
            transformers::namespace(&mut acc.objs, &k.namespace, &acc.config)?;
        }
        if !k.name_prefix.is_empty() {
            transformers::prefix_suffix(&mut acc.objs, &k.name_prefix, true, &acc.config)?;
        }
        if !k.name_suffix.is_empty() {
            transformers::prefix_suffix(&mut acc.objs, &k.name_suffix, false, &acc.config)?;
        }
        transformers::labels(&mut acc.objs, k, &acc.config)?;
        if !k.common_annotations.is_empty() {
            transformers::annotations(&mut acc.objs, &k.common_annotations, &acc.config)?;
        }
        for p in &k.patches_json6902 {
            patch::apply_patch(self, dir, p, acc)?;
        }
        for (name, count) in &k.replicas {
            transformers::replicas(&mut acc.objs, name, count, &acc.config)?;
        }
        for img in &k.images {
            transformers::images(&mut acc.objs, img, &acc.config)?;
        }
        if !k.replacements.is_empty() {
            replacements::run(self, dir, &k.replacements, &mut acc.objs)?;
        }
        for t in &k.transformers {
            let docs = read_yaml(self.fs, &self.file_in(dir, t)?, self.opts.limits)?;
            for d in docs {
                self.run_configured_transformer(&d, acc)
                    .map_err(|e| e.context(format!("transformer {t}")))?;
            }
        }
        Ok(())
    }

    /// A builtin transformer configured in a `transformers` file (no plugins run here).
    fn run_configured_transformer(&self, d: &Node, acc: &mut Acc) -> Result<()> {
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
            ("builtin", "NamespaceTransformer") => {
                let ns = d
                    .str_at(&["metadata", "namespace"])
                    .unwrap_or("")
                    .to_string();
                let mut cfg = (*acc.config).clone();
                cfg.namespace = specs;
                transformers::namespace(&mut acc.objs, &ns, &cfg)
            }
            (av, kind) => Err(Error::msg(format!(
                "transformer {av}/{kind} is not supported: only builtin Label, Annotations and Namespace transformers run in process"
            ))),
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
    use crate::{MemFs, Options, build};

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
