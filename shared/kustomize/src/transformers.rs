//! The field-spec driven builtin transformers: namespace, name prefix/suffix, labels,
//! annotations, replicas and images.

use regex::Regex;

use crate::error::{Error, Result};
use crate::fieldspec::{Create, FieldSpec, TransformerConfig, apply};
use crate::kustomization::{Image, Kustomization};
use crate::resource::Object;
use crate::yaml::Node;

/// Sets a scalar the way kyaml's `FieldSetter` does: the new text keeps the old node's quoting.
pub(crate) fn set_scalar_keep_style(n: &mut Node, value: &str) {
    let quoted = matches!(n, Node::Scalar(s) if s.quoted);
    *n = if quoted {
        Node::str(value)
    } else {
        Node::plain(value)
    };
}

/// An id with kustomize's namespace equality (`default` and none are the same).
fn id_key(o: &Object) -> (crate::resource::Gvk, String, String) {
    let id = o.cur_id();
    let ns = if id.namespace == "default" {
        String::new()
    } else {
        id.namespace
    };
    (id.gvk, id.name, ns)
}

/// Which (cluster) role binding subjects take the namespace (`setRoleBindingSubjects`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) enum Subjects {
    /// Subjects named `default` (kustomize's default).
    #[default]
    NamedDefault,
    /// Subjects of kind ServiceAccount.
    ServiceAccounts,
    None,
}

/// The options of kustomize's NamespaceTransformer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NamespaceOptions {
    /// Only fields without a value get the namespace.
    pub unset_only: bool,
    pub subjects: Subjects,
}

pub(crate) fn namespace(
    objs: &mut [Object],
    ns: &str,
    cfg: &TransformerConfig,
    opts: NamespaceOptions,
) -> Result<()> {
    if ns.is_empty() {
        return Ok(());
    }
    // kustomize checks after each object that its new id is unique (Namespace objects all
    // take the namespace's name, for one).
    let mut ids: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    for o in objs.iter() {
        *ids.entry(id_key(o)).or_default() += 1;
    }
    for i in 0..objs.len() {
        if objs[i].node.as_map().is_none_or(|m| m.is_empty()) {
            continue;
        }
        let before = id_key(&objs[i]);
        namespace_one(&mut objs[i], ns, cfg, opts)?;
        let after = id_key(&objs[i]);
        if after != before {
            if let Some(n) = ids.get_mut(&before) {
                *n -= 1;
            }
            *ids.entry(after.clone()).or_default() += 1;
        }
        if ids.get(&after).copied().unwrap_or(0) > 1 {
            let clashing: Vec<String> = objs
                .iter()
                .filter(|o| id_key(o) == after)
                .map(|o| o.cur_id().to_string())
                .collect();
            return Err(Error::msg(format!(
                "namespace transformation produces ID conflict: [{}]",
                clashing.join(" ")
            )));
        }
    }
    Ok(())
}

fn namespace_one(
    o: &mut Object,
    ns: &str,
    cfg: &TransformerConfig,
    opts: NamespaceOptions,
) -> Result<()> {
    // kyaml's SetEntryIfEmpty under unsetOnly: a field with a value keeps it.
    let keeps = |n: Option<&Node>| {
        opts.unset_only && n.and_then(Node::as_str).is_some_and(|v| !v.is_empty())
    };
    o.store_previous_id();
    let gvk = o.gvk();
    if !gvk.is_cluster_scoped() && !keeps(o.node.get_path(&["metadata", "namespace"])) {
        o.set_namespace(ns);
    }
    let is_rb = gvk.kind == "RoleBinding" || gvk.kind == "ClusterRoleBinding";
    if is_rb && let Some(subjects) = o.node.get_mut("subjects").and_then(Node::as_seq_mut) {
        for s in subjects {
            let chosen = match opts.subjects {
                Subjects::NamedDefault => s.str_at(&["name"]) == Some("default"),
                Subjects::ServiceAccounts => s.str_at(&["kind"]) == Some("ServiceAccount"),
                Subjects::None => false,
            };
            if chosen && !keeps(s.get("namespace")) {
                s.set("namespace", Node::str(ns));
            }
        }
    }
    let api_version = o.api_version().to_string();
    for fs in &cfg.namespace {
        if fs.path == "metadata/namespace" || (fs.path == "metadata/name" && api_version != "v1") {
            continue;
        }
        if is_rb && fs.path == "subjects/namespace" {
            continue;
        }
        if !fs.matches(&gvk) {
            continue;
        }
        let id = o.cur_id();
        apply(&mut o.node, fs, Some(Create::Scalar), &mut |n| {
            let found = match n {
                Node::Map(_) => "MappingNode",
                Node::Seq(_) => "SequenceNode",
                Node::Scalar(_) => "",
            };
            if !found.is_empty() {
                return Err(Error::msg(format!(
                    "namespace field specs must target scalar nodes: considering field '{}' of object {id}: wrong node kind: expected ScalarNode but got {found}: node contents:\n{}",
                    fs.path,
                    crate::yaml::to_yaml(n).unwrap_or_default()
                )));
            }
            if !keeps(Some(n)) {
                *n = Node::str(ns);
            }
            Ok(())
        })?;
    }
    Ok(())
}

pub(crate) fn prefix_suffix(
    objs: &mut [Object],
    affix: &str,
    prefix: bool,
    cfg: &TransformerConfig,
) -> Result<()> {
    let specs = if prefix {
        &cfg.name_prefix
    } else {
        &cfg.name_suffix
    };
    for o in objs.iter_mut() {
        let org = crate::build::org_id(o);
        let skip = matches!(
            org.gvk.kind.as_str(),
            "CustomResourceDefinition" | "Namespace"
        ) || (org.gvk.kind == "APIService" && org.gvk.group == "apiregistration.k8s.io");
        if skip {
            continue;
        }
        for fs in specs {
            if !org.gvk.is_selected_by(&fs.gvk) {
                continue;
            }
            if fs.path == "metadata/name" {
                if prefix {
                    o.prefixes.push(affix.to_string());
                } else {
                    o.suffixes.push(affix.to_string());
                }
                o.store_previous_id();
            }
            let gvk = o.gvk();
            if !fs.matches(&gvk) {
                continue;
            }
            apply(&mut o.node, fs, None, &mut |n| {
                if let Node::Scalar(s) = n {
                    let v = if prefix {
                        format!("{affix}{}", s.value)
                    } else {
                        format!("{}{affix}", s.value)
                    };
                    set_scalar_keep_style(n, &v);
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

pub(crate) fn set_entries(
    objs: &mut [Object],
    pairs: &[(String, String)],
    specs: &[FieldSpec],
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    for o in objs.iter_mut() {
        let gvk = o.gvk();
        for fs in specs {
            if !fs.matches(&gvk) {
                continue;
            }
            apply(&mut o.node, fs, Some(Create::Map), &mut |n| {
                if n.is_null() {
                    *n = Node::map();
                }
                if !matches!(n, Node::Map(_)) {
                    return Err(Error::msg(format!(
                        "wrong node kind: expected MappingNode at {}",
                        fs.path
                    )));
                }
                for (k, v) in &sorted {
                    if n.get(k).is_none() {
                        crate::build::check_created_key(k)?;
                    }
                    n.set(k, Node::str(v.as_str()));
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn merge_specs(base: &[FieldSpec], more: &[FieldSpec]) -> Vec<FieldSpec> {
    let mut out = base.to_vec();
    for fs in more {
        if !out.iter().any(|f| f.gvk == fs.gvk && f.path == fs.path) {
            out.push(fs.clone());
        }
    }
    out
}

pub(crate) fn labels(
    objs: &mut [Object],
    k: &Kustomization,
    cfg: &TransformerConfig,
) -> Result<()> {
    for l in &k.labels {
        let own: Vec<FieldSpec> = l
            .fields
            .as_ref()
            .and_then(Node::as_seq)
            .map(|items| {
                items
                    .iter()
                    .map(|i| FieldSpec {
                        gvk: crate::fieldspec::gvk_of(i),
                        path: i.str_at(&["path"]).unwrap_or("").to_string(),
                        create: i.str_at(&["create"]) == Some("true"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let specs = if l.include_selectors {
            merge_specs(&own, &cfg.common_labels)
        } else {
            let mut s = own;
            if l.include_templates {
                s = merge_specs(&s, &cfg.template_labels);
            }
            merge_specs(&s, &[FieldSpec::new("metadata/labels", true)])
        };
        set_entries(objs, &l.pairs, &specs)?;
    }
    set_entries(objs, &k.common_labels, &cfg.common_labels)
}

pub(crate) fn annotations(
    objs: &mut [Object],
    pairs: &[(String, String)],
    cfg: &TransformerConfig,
) -> Result<()> {
    set_entries(objs, pairs, &cfg.common_annotations)
}

pub(crate) fn replicas(
    objs: &mut [Object],
    name: &str,
    count: &Node,
    cfg: &TransformerConfig,
) -> Result<()> {
    let mut found = false;
    for fs in &cfg.replicas {
        for o in objs.iter_mut() {
            // Any name the object had counts, as in kustomize's match on all its ids.
            if !o
                .all_ids()
                .any(|id| id.name == name && id.gvk.is_selected_by(&fs.gvk))
            {
                continue;
            }
            found = true;
            apply(&mut o.node, fs, Some(Create::Scalar), &mut |n| {
                match count {
                    // kyaml's setter keeps the quoting of the value it replaces.
                    Node::Scalar(s) if matches!(n, Node::Scalar(_)) => {
                        set_scalar_keep_style(n, &s.value)
                    }
                    Node::Scalar(s) => *n = Node::plain(s.value.clone()),
                    other => *n = other.clone(),
                }
                Ok(())
            })?;
        }
    }
    if !found {
        let mut specs: Vec<&FieldSpec> = cfg.replicas.iter().collect();
        specs.sort_by(|a, b| crate::sort::gvk_cmp(&a.gvk, &b.gvk));
        let gvks: Vec<String> = specs.iter().map(|fs| fs.gvk.to_string()).collect();
        return Err(Error::msg(format!(
            "resource with name {name} does not match a config with the following GVK [{}]",
            gvks.join(" ")
        )));
    }
    Ok(())
}

/// Splits an image reference into name, tag and digest as kustomize does.
fn split_image(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|&i| i > 0).unwrap_or(0);
    let search = &image[slash..];
    let id = search.find('@');
    let ic = search.find(':');
    match (id, ic) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (Some(d), c) if c.is_none_or(|c| d < c) => {
            let d = d + slash;
            (
                image[..d].to_string(),
                String::new(),
                image[d + 1..].to_string(),
            )
        }
        (Some(d), Some(c)) => {
            let (d, c) = (d + slash, c + slash);
            (
                image[..c].to_string(),
                image[c + 1..d].to_string(),
                image[d + 1..].to_string(),
            )
        }
        (_, Some(c)) => {
            let c = c + slash;
            (
                image[..c].to_string(),
                image[c + 1..].to_string(),
                String::new(),
            )
        }
        _ => (image.to_string(), String::new(), String::new()),
    }
}

/// Which image references an `images` entry changes. kustomize splices the entry's name
/// into a regular expression, so a `.` in it matches any character; plain names (nearly all)
/// are matched by hand, which spares a regex compilation per entry in every build.
enum ImageMatcher {
    /// The name's characters, `None` for a `.`.
    Name(Vec<Option<char>>),
    Pattern(Regex),
    /// The name is not a valid pattern: kustomize then changes nothing.
    Never,
}

impl ImageMatcher {
    fn new(name: &str) -> ImageMatcher {
        const SPECIAL: &[char] = &[
            '\\', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
        ];
        if !name.contains(SPECIAL) {
            return ImageMatcher::Name(name.chars().map(|c| (c != '.').then_some(c)).collect());
        }
        let pattern = format!(
            "^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@[a-zA-Z0-9]+([.+_-][a-zA-Z0-9]+)*:[a-zA-Z0-9_.{{}}-]*)?$"
        );
        Regex::new(&pattern).map_or(ImageMatcher::Never, ImageMatcher::Pattern)
    }

    fn is_match(&self, image: &str) -> bool {
        match self {
            ImageMatcher::Never => false,
            ImageMatcher::Pattern(regex) => regex.is_match(image),
            ImageMatcher::Name(name) => {
                let mut chars = image.chars();
                let name_matches = name.iter().all(|want| match (want, chars.next()) {
                    (_, None) | (None, Some('\n')) => false,
                    (None, Some(_)) => true,
                    (Some(w), Some(c)) => *w == c,
                });
                name_matches && tag_and_digest_follow(chars.as_str())
            }
        }
    }
}

/// `(:TAG)?(@DIGEST)?` to the end, with the character sets of kustomize's pattern:
/// TAG `[a-zA-Z0-9_.{}-]*`, DIGEST `[a-zA-Z0-9]+([.+_-][a-zA-Z0-9]+)*:` then TAG characters.
fn tag_and_digest_follow(rest: &str) -> bool {
    let tag_char = |c: char| c.is_ascii_alphanumeric() || "_.{}-".contains(c);
    let rest = match rest.strip_prefix(':') {
        Some(tagged) => tagged.trim_start_matches(tag_char),
        None => rest,
    };
    let Some(digest) = rest.strip_prefix('@') else {
        return rest.is_empty();
    };
    let mut rest = digest;
    loop {
        let after = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        if after.len() == rest.len() {
            return false;
        }
        match after.chars().next() {
            Some(':') => return after[1..].chars().all(tag_char),
            Some('.' | '+' | '_' | '-') => rest = &after[1..],
            _ => return false,
        }
    }
}

fn update_image(n: &mut Node, img: &Image, matcher: &ImageMatcher) -> Result<()> {
    let Node::Scalar(s) = n else {
        return Err(Error::msg("image field is not a scalar"));
    };
    if !matcher.is_match(&s.value) {
        return Ok(());
    }
    let (mut name, mut tag, mut digest) = split_image(&s.value);
    if let Some(nn) = img.new_name.as_deref().filter(|s| !s.is_empty()) {
        name = nn.to_string();
    }
    let new_tag = img.new_tag.as_deref().unwrap_or("");
    let new_digest = img.digest.as_deref().unwrap_or("");
    let suffix = img.tag_suffix.as_deref().unwrap_or("");
    if !new_tag.is_empty() && !new_digest.is_empty() {
        tag = new_tag.into();
        digest = new_digest.into();
    } else if !new_tag.is_empty() {
        tag = new_tag.into();
        digest.clear();
    } else if !new_digest.is_empty() {
        tag.clear();
        digest = new_digest.into();
    } else if !suffix.is_empty() {
        tag.push_str(suffix);
        digest.clear();
    }
    if !tag.is_empty() {
        name = format!("{name}:{tag}");
    }
    if !digest.is_empty() {
        name = format!("{name}@{digest}");
    }
    set_scalar_keep_style(n, &name);
    Ok(())
}

/// Walks every `containers`/`initContainers` list anywhere in the object (kustomize's legacy
/// image filter, which runs before the field-spec one).
fn legacy_images(n: &mut Node, img: &Image, matcher: &ImageMatcher) -> Result<()> {
    match n {
        Node::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                legacy_images(v, img, matcher)?;
                if (k == "containers" || k == "initContainers")
                    && let Node::Seq(items) = v
                {
                    for c in items {
                        if let Some(i) = c.get_mut("image") {
                            update_image(i, img, matcher)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Node::Seq(items) => items
            .iter_mut()
            .try_for_each(|i| legacy_images(i, img, matcher)),
        Node::Scalar(_) => Ok(()),
    }
}

pub(crate) fn images(objs: &mut [Object], img: &Image, cfg: &TransformerConfig) -> Result<()> {
    let matcher = ImageMatcher::new(&img.name);
    if let ImageMatcher::Never = matcher {
        return Ok(());
    }
    for o in objs.iter_mut() {
        if o.kind() == "CustomResourceDefinition" {
            continue;
        }
        legacy_images(&mut o.node, img, &matcher)?;
        let gvk = o.gvk();
        for fs in &cfg.images {
            if !fs.matches(&gvk) {
                continue;
            }
            apply(&mut o.node, fs, None, &mut |n| {
                update_image(n, img, &matcher)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_image_names_match_as_kustomize_pattern_does() {
        let cases = [
            ("nginx", "nginx", true),
            ("nginx", "nginx:1.2", true),
            ("nginx", "nginx:", true),
            ("nginx", "nginx@sha256:abc", true),
            ("nginx", "nginx:1.2@sha256:abc", true),
            ("nginx", "nginx@sha256", false),
            ("nginx", "nginx@sha256:", true),
            ("nginx", "nginx@a.b+c:d", true),
            ("nginx", "nginx@a..b:d", false),
            ("nginx", "nginx-other", false),
            ("nginx", "nginx:1.2/x", false),
            ("nginx", "my-nginx", false),
            ("nginx", "ngin", false),
            ("docker.io/nginx", "dockerxio/nginx:1", true),
            ("docker.io/nginx", "docker\nio/nginx", false),
            ("ghcr.io/a/b", "ghcr.io/a/b:{{tag}}", true),
        ];
        for (name, image, want) in cases {
            let by_hand = ImageMatcher::new(name);
            assert!(matches!(by_hand, ImageMatcher::Name(_)), "{name}");
            let pattern = format!(
                "^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@[a-zA-Z0-9]+([.+_-][a-zA-Z0-9]+)*:[a-zA-Z0-9_.{{}}-]*)?$"
            );
            let regex = Regex::new(&pattern).expect("pattern compiles");
            assert_eq!(regex.is_match(image), want, "regex: {name} vs {image}");
            assert_eq!(by_hand.is_match(image), want, "by hand: {name} vs {image}");
        }
        assert!(matches!(ImageMatcher::new("a(b"), ImageMatcher::Never));
        assert!(ImageMatcher::new("ng.*x").is_match("nginx:1"));
    }

    #[test]
    fn image_references_split_like_kustomize() {
        assert_eq!(split_image("nginx"), ("nginx".into(), "".into(), "".into()));
        assert_eq!(
            split_image("host:5000/app:1.2"),
            ("host:5000/app".into(), "1.2".into(), "".into())
        );
        assert_eq!(
            split_image("app@sha256:ab"),
            ("app".into(), "".into(), "sha256:ab".into())
        );
        assert_eq!(
            split_image("app:1@sha256:ab"),
            ("app".into(), "1".into(), "sha256:ab".into())
        );
    }
}

#[cfg(test)]
mod transformer_tests {
    use crate::testutil::ok;

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: example/web:1\n";

    #[test]
    fn namespace_is_set_on_namespaced_objects_and_renames_namespace_objects() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "namespace: prod\nresources: [d.yaml, ns.yaml, cr.yaml]\n",
                ),
                ("k/d.yaml", DEPLOY),
                (
                    "k/ns.yaml",
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: old\n",
                ),
                (
                    "k/cr.yaml",
                    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n",
                ),
            ],
            "k",
        );
        assert!(
            out.contains("kind: Namespace\nmetadata:\n  name: prod\n"),
            "{out}"
        );
        assert!(out.contains("  name: web\n  namespace: prod\n"), "{out}");
        assert!(
            out.contains("kind: ClusterRole\nmetadata:\n  name: r\n"),
            "{out}"
        );
    }

    #[test]
    fn prefix_and_suffix_wrap_names_but_not_crds() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "namePrefix: a-\nnameSuffix: -z\nresources: [d.yaml, crd.yaml]\n",
                ),
                ("k/d.yaml", DEPLOY),
                (
                    "k/crd.yaml",
                    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: xs.example.com\n",
                ),
            ],
            "k",
        );
        assert!(out.contains("name: a-web-z"), "{out}");
        assert!(out.contains("name: xs.example.com"), "{out}");
    }

    #[test]
    fn common_labels_reach_selectors_and_templates_while_plain_labels_do_not() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "commonLabels:\n  team: a\nlabels:\n- pairs:\n    tier: b\nresources: [d.yaml]\n",
                ),
                ("k/d.yaml", DEPLOY),
            ],
            "k",
        );
        assert!(
            out.contains("matchLabels:\n      app: web\n      team: a\n"),
            "{out}"
        );
        assert!(
            out.contains("labels:\n        app: web\n        team: a\n"),
            "{out}"
        );
        assert!(
            out.contains("  labels:\n    team: a\n    tier: b\n"),
            "{out}"
        );
    }

    #[test]
    fn common_annotations_are_quoted_when_they_read_as_other_types() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "commonAnnotations:\n  num: \"1\"\n  \"n\": x\nresources: [d.yaml]\n",
                ),
                ("k/d.yaml", DEPLOY),
            ],
            "k",
        );
        assert!(
            out.contains("  annotations:\n    \"n\": x\n    num: \"1\"\n"),
            "{out}"
        );
    }

    #[test]
    fn replicas_are_set_or_created_by_name() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "replicas:\n- name: web\n  count: 3\nresources: [d.yaml]\n",
                ),
                ("k/d.yaml", DEPLOY),
            ],
            "k",
        );
        assert!(out.contains("  replicas: 3\n"), "{out}");
    }

    #[test]
    fn images_change_name_tag_and_digest() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "images:\n- name: example/web\n  newName: reg/web\n  newTag: \"2\"\nresources: [d.yaml]\n",
                ),
                ("k/d.yaml", DEPLOY),
            ],
            "k",
        );
        assert!(out.contains("image: reg/web:2\n"), "{out}");
    }
}
