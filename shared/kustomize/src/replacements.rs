//! `replacements`: copy a field of one object (or a literal value) into fields of others.

use regex::Regex;

use crate::build::{Builder, read_yaml};
use crate::error::{Error, Result};
use crate::patch::label_selector_matches;
use crate::resource::{Gvk, Object, ResId};
use crate::yaml::Node;

/// Splits a field path on `.` as kyaml's `SmarterPathSplitter` does: `\.` escapes a dot,
/// a bracketed element holding dots stays whole (`[a.b=c]` keeps its brackets as a list
/// selector, `[a.b]` loses them as a map key), and a leading dot is ignored.
pub(crate) fn split_field_path(path: &str) -> Vec<String> {
    let mut escaped: Vec<String> = Vec::new();
    let mut parts = path.split('.').peekable();
    if path.starts_with('.') && path.len() > 1 {
        parts.next();
    }
    for p in parts {
        match escaped.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(p);
            }
            _ => escaped.push(p.to_string()),
        }
    }
    let mut out = Vec::with_capacity(escaped.len());
    let mut it = escaped.into_iter();
    while let Some(elem) = it.next() {
        if !elem.starts_with('[') || elem.ends_with(']') {
            out.push(elem);
            continue;
        }
        let mut joined = elem;
        for next in it.by_ref() {
            joined.push('.');
            joined.push_str(&next);
            if next.ends_with(']') {
                break;
            }
        }
        if joined.contains('=') {
            out.push(joined);
        } else {
            out.push(joined.trim_matches(|c| c == '[' || c == ']').to_string());
        }
    }
    out
}

/// A path element naming a map key: `[a.b/c]` quotes a key holding dots.
fn map_key(p: &str) -> &str {
    match p.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        Some(inner) if !inner.contains('=') => inner,
        _ => p,
    }
}

fn text(n: &Node, key: &str) -> String {
    n.str_at(&[key]).unwrap_or("").to_string()
}

/// An id selector: empty fields match anything; `regex` makes name/namespace/gvk patterns.
struct IdSelector {
    gvk: Gvk,
    name: String,
    namespace: String,
    label_selector: String,
    annotation_selector: String,
}

impl IdSelector {
    fn from_node(n: &Node) -> IdSelector {
        let mut gvk = Gvk {
            group: text(n, "group"),
            version: text(n, "version"),
            kind: text(n, "kind"),
        };
        let av = text(n, "apiVersion");
        if !av.is_empty() {
            let g = Gvk::from_api_version(&av, "");
            gvk.group = g.group;
            gvk.version = g.version;
        }
        IdSelector {
            gvk,
            name: text(n, "name"),
            namespace: text(n, "namespace"),
            label_selector: text(n, "labelSelector"),
            annotation_selector: text(n, "annotationSelector"),
        }
    }

    fn id(&self) -> ResId {
        ResId {
            gvk: self.gvk.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// kyaml's `ResId.IsSelectedBy`: exact fields, namespaces compared as effective ones.
    fn selects_exact(&self, id: &ResId) -> bool {
        id.gvk.is_selected_by(&self.gvk)
            && (self.name.is_empty() || self.name == id.name)
            && (self.namespace.is_empty()
                || self.gvk.effective_namespace(&self.namespace)
                    == id.gvk.effective_namespace(&id.namespace))
    }

    fn has_id_fields(&self) -> bool {
        !(self.gvk.group.is_empty()
            && self.gvk.version.is_empty()
            && self.gvk.kind.is_empty()
            && self.name.is_empty()
            && self.namespace.is_empty())
    }

    fn matches_meta(&self, o: &Object) -> Result<bool> {
        Ok((self.label_selector.is_empty()
            || label_selector_matches(&self.label_selector, &o.meta_map("labels"))?)
            && (self.annotation_selector.is_empty()
                || label_selector_matches(&self.annotation_selector, &o.meta_map("annotations"))?))
    }
}

fn ids(o: &Object) -> Vec<ResId> {
    let mut v = vec![o.cur_id()];
    for p in &o.prev_ids {
        let mut id = p.clone();
        if id.namespace == "default" && o.namespace().is_empty() {
            id.namespace.clear();
        }
        v.push(id);
    }
    v
}

/// Looks a field path up without creating anything.
fn lookup<'a>(n: &'a Node, path: &[String]) -> Option<&'a Node> {
    let mut cur = n;
    for p in path {
        cur = match cur {
            Node::Map(_) => cur.get(map_key(p))?,
            Node::Seq(items) => {
                if let Some((k, v)) = p
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .and_then(|x| x.split_once('='))
                {
                    items.iter().find(|e| e.str_at(&[k]) == Some(v))?
                } else {
                    items.get(p.parse::<usize>().ok()?)?
                }
            }
            Node::Scalar(_) => return None,
        };
    }
    Some(cur)
}

/// A target's `[field=value]`: kyaml's PathMatcher takes the value as an unanchored regular
/// expression (a replacement source's lookup matches exactly).
enum Pattern<'a> {
    Text(&'a str),
    Regex(Regex),
}

impl<'a> Pattern<'a> {
    fn new(p: &'a str) -> Pattern<'a> {
        // Without metacharacters a regular expression is a substring test: no compilation.
        if p.contains(|c| "\\.+*?()|[]{}^$".contains(c))
            && let Ok(re) = Regex::new(p)
        {
            return Pattern::Regex(re);
        }
        Pattern::Text(p)
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Text(t) => text.contains(t),
            Pattern::Regex(re) => re.is_match(text),
        }
    }
}

/// The text a list element is matched on: its `field`, or itself for `[=value]`.
fn element_text<'n>(it: &'n Node, field: &str) -> Option<&'n str> {
    if field.is_empty() {
        return it.as_str();
    }
    it.get(field)
        .filter(|v| !v.is_null())
        .and_then(Node::as_str)
}

/// Whether a path element addresses list elements (kyaml's PathMatcher then needs a list).
fn is_list_step(p: &str) -> bool {
    p == "*"
        || (p.starts_with('[') && p.ends_with(']') && p.contains('='))
        || p.parse::<usize>().is_ok()
}

/// Every node a target path reaches (wildcards and list selectors), creating missing fields
/// when `create` says what kind the last one is. A list step on a map or a scalar is kyaml's
/// error.
fn targets<'a>(
    n: &'a mut Node,
    path: &[String],
    create: Option<&Node>,
    out: &mut Vec<&'a mut Node>,
) -> std::result::Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        out.push(n);
        return Ok(());
    };
    if is_list_step(head) && !n.is_null() {
        let got = match n {
            Node::Map(_) => Some("MappingNode"),
            Node::Scalar(_) => Some("ScalarNode"),
            Node::Seq(_) => None,
        };
        if let Some(got) = got {
            return Err(format!(
                "wrong node kind: expected SequenceNode but got {got}"
            ));
        }
    }
    let new_child = |rest: &[String]| -> Node {
        match rest.first() {
            None => match create {
                Some(Node::Map(_)) => Node::map(),
                Some(Node::Seq(_)) => Node::Seq(Vec::new()),
                _ => Node::plain(""),
            },
            Some(next)
                if (next.starts_with('[') && next.contains('='))
                    || next.parse::<usize>().is_ok() =>
            {
                Node::Seq(Vec::new())
            }
            Some(_) => Node::map(),
        }
    };
    match n {
        Node::Map(_) => {
            if head == "*" {
                if let Node::Map(m) = n {
                    for (_, v) in m.iter_mut() {
                        targets(v, rest, create, out)?;
                    }
                }
                return Ok(());
            }
            let head = map_key(head);
            if n.get(head).is_none_or(Node::is_null) {
                if create.is_none() {
                    return Ok(());
                }
                n.set(head, new_child(rest));
            }
            if let Some(c) = n.get_mut(head) {
                targets(c, rest, create, out)?;
            }
        }
        Node::Seq(items) => {
            if head == "*" || head == "-" {
                for it in items.iter_mut() {
                    targets(it, rest, create, out)?;
                }
            } else if let Some((k, v)) = head
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .and_then(|x| x.split_once('='))
            {
                let pattern = Pattern::new(v);
                let hit = |it: &Node| element_text(it, k).is_some_and(|t| pattern.matches(t));
                if !items.iter().any(hit) && create.is_some() {
                    items.push(if k.is_empty() {
                        Node::plain(v)
                    } else {
                        Node::Map(vec![(k.to_string(), Node::plain(v))])
                    });
                }
                for it in items.iter_mut() {
                    if hit(it) {
                        targets(it, rest, create, out)?;
                    }
                }
            } else if let Ok(i) = head.parse::<usize>() {
                // kyaml appends for the index just past the end when creating; any other
                // index past the end is an error.
                if i == items.len() && create.is_some() {
                    items.push(new_child(rest));
                }
                let len = items.len();
                let Some(it) = items.get_mut(i) else {
                    return Err(format!("index {i} specified but only {len} elements found"));
                };
                targets(it, rest, create, out)?;
            }
        }
        Node::Scalar(_) => {}
    }
    Ok(())
}

fn options(n: Option<&Node>) -> (String, i64, bool) {
    let Some(o) = n else {
        return (String::new(), 0, false);
    };
    (
        text(o, "delimiter"),
        o.str_at(&["index"])
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        o.str_at(&["create"]) == Some("true"),
    )
}

fn set_field(target: &mut Node, value: &Node, delimiter: &str, index: i64) -> Result<()> {
    // A map or list value brings no text to a scalar.
    let mut text = value.as_str().unwrap_or("").to_string();
    if !delimiter.is_empty() {
        let Node::Scalar(t) = &*target else {
            return Err(Error::msg(
                "delimiter option can only be used with scalar nodes",
            ));
        };
        let mut parts: Vec<String> = t.value.split(delimiter).map(str::to_string).collect();
        if index < 0 {
            parts.insert(0, text);
        } else if index as usize >= parts.len() {
            parts.push(text);
        } else {
            parts[index as usize] = text;
        }
        text = parts.join(delimiter);
    }
    match &mut *target {
        // kyaml replaces only the text of a scalar target: its tag and style stay.
        Node::Scalar(t) => t.value = text,
        _ => *target = value.clone(),
    }
    Ok(())
}

/// A target typed as a number or boolean keeps that tag, so new text of another type fails
/// when kustomize next decodes the object, as go-yaml does.
fn check_typed_text(t: &crate::yaml::Scalar) -> Result<()> {
    use crate::yaml::{Resolved, Tag, resolve_v3};
    let want = match t.tag {
        Tag::Int => "!!int",
        Tag::Float => "!!float",
        Tag::Bool => "!!bool",
        _ => return Ok(()),
    };
    let (got, ok) = match resolve_v3(&t.value) {
        Resolved::Int(_) => ("!!int", matches!(t.tag, Tag::Int | Tag::Float)),
        Resolved::Float(_) => ("!!float", t.tag == Tag::Float),
        Resolved::Bool(_) => ("!!bool", t.tag == Tag::Bool),
        Resolved::Null => ("!!null", false),
        Resolved::Timestamp(_) => ("!!timestamp", false),
        Resolved::Str => ("!!str", false),
    };
    if ok {
        return Ok(());
    }
    Err(Error::msg(format!(
        "map[string]interface {{}}(nil): yaml: cannot decode {got} `{}` as a {want}",
        t.value
    )))
}

fn one(r: &Node, objs: &mut [Object]) -> Result<()> {
    let source = r.get("source");
    let targets_list = r.get("targets").and_then(Node::as_seq);
    let Some(target_list) = targets_list else {
        return Err(Error::msg(
            "replacements must specify a source and at least one target",
        ));
    };
    let value: Node = match (r.get("sourceValue"), source) {
        (Some(_), Some(_)) => {
            return Err(Error::msg(
                "value and resource selectors are mutually exclusive",
            ));
        }
        (Some(v), None) => Node::plain(v.as_str().unwrap_or("")),
        (None, None) => {
            return Err(Error::msg(
                "replacements must specify a source and at least one target",
            ));
        }
        (None, Some(src)) => {
            let sel = IdSelector::from_node(src);
            let fp = src
                .str_at(&["fieldPath"])
                .unwrap_or("metadata.name")
                .to_string();
            let mut found: Option<&Object> = None;
            for o in objs.iter() {
                if ids(o).iter().any(|id| sel.selects_exact(id)) {
                    if found.is_some() {
                        return Err(Error::msg(format!(
                            "multiple matches for selector {}:{fp}",
                            sel.id()
                        )));
                    }
                    found = Some(o);
                }
            }
            let Some(o) = found else {
                return Err(Error::msg(format!("nothing selected by {}:{fp}", sel.id())));
            };
            // kyaml's IsNilOrEmpty: null, `{}` and `[]` count as missing.
            let v = lookup(&o.node, &split_field_path(&fp))
                .filter(|n| match n {
                    Node::Scalar(_) => !n.is_null(),
                    Node::Map(m) => !m.is_empty(),
                    Node::Seq(items) => !items.is_empty(),
                })
                .ok_or_else(|| {
                    Error::msg(format!(
                        "fieldPath `{fp}` is missing for replacement source {}",
                        sel.id()
                    ))
                })?;
            let (delim, index, _) = options(src.get("options"));
            if delim.is_empty() {
                v.clone()
            } else {
                let Node::Scalar(s) = v else {
                    return Err(Error::msg(
                        "delimiter option can only be used with scalar nodes",
                    ));
                };
                let parts: Vec<&str> = s.value.split(delim.as_str()).collect();
                let part = usize::try_from(index)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .ok_or_else(|| {
                        Error::msg(format!(
                            "options.index {index} is out of bounds for value {}",
                            s.value
                        ))
                    })?;
                let mut c = s.clone();
                c.value = part.to_string();
                Node::Scalar(c)
            }
        }
    };
    for t in target_list {
        let Some(select) = t.get("select") else {
            return Err(Error::msg("target must specify resources to select"));
        };
        let select = IdSelector::from_node(select);
        let rejects: Vec<IdSelector> = t
            .get("reject")
            .and_then(Node::as_seq)
            .map(|r| r.iter().map(IdSelector::from_node).collect())
            .unwrap_or_default();
        let mut paths: Vec<String> = t
            .get("fieldPaths")
            .and_then(Node::as_seq)
            .map(|p| {
                p.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if paths.is_empty() {
            paths.push("metadata.name".into());
        }
        let (delim, index, create) = options(t.get("options"));
        for o in objs.iter_mut() {
            if !select.matches_meta(o)? {
                continue;
            }
            let mut rejected = false;
            for rj in &rejects {
                if (!rj.label_selector.is_empty() || !rj.annotation_selector.is_empty())
                    && rj.matches_meta(o)?
                {
                    rejected = true;
                }
                if rj.has_id_fields() && ids(o).iter().any(|id| rj.selects_exact(id)) {
                    rejected = true;
                }
            }
            if rejected {
                continue;
            }
            if !ids(o).iter().any(|id| select.selects_exact(id)) {
                continue;
            }
            for fp in &paths {
                let mut found = Vec::new();
                let missing = if create {
                    format!("unable to find or create field \"{fp}\" in replacement target")
                } else {
                    format!("unable to find field \"{fp}\" in replacement target")
                };
                targets(
                    &mut o.node,
                    &split_field_path(fp),
                    create.then_some(&value),
                    &mut found,
                )
                .map_err(|e| Error::msg(format!("{missing}: {e}")))?;
                if found.is_empty() {
                    return Err(Error::msg(missing));
                }
                for f in found {
                    set_field(f, &value, &delim, index)?;
                }
            }
        }
    }
    Ok(())
}

const SELECTOR_FIELDS: &[&str] = &[
    "group",
    "version",
    "kind",
    "name",
    "namespace",
    "labelSelector",
    "annotationSelector",
];
const OPTION_FIELDS: &[&str] = &["delimiter", "index", "encoding", "create"];

/// The field names of kustomize's `Replacement` type at a path of field names.
fn replacement_fields(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => &["source", "targets", "path", "sourceValue"],
        ["source"] => &[
            "group",
            "version",
            "kind",
            "name",
            "namespace",
            "fieldPath",
            "options",
        ],
        ["source", "options"] | ["targets", "options"] => OPTION_FIELDS,
        ["targets"] => &["select", "reject", "fieldPaths", "options"],
        ["targets", "select"] | ["targets", "reject"] => SELECTOR_FIELDS,
        _ => &[],
    }
}

/// A replacement read from a file, its keys spelled as kustomize's Go fields: encoding/json
/// matches them ignoring case (`fieldpath`, `Source`).
fn canonical_keys(n: Node) -> Node {
    fn walk(n: Node, path: &mut Vec<&'static str>) -> Node {
        match n {
            Node::Map(entries) => {
                let fields = replacement_fields(path);
                Node::Map(
                    entries
                        .into_iter()
                        .map(
                            |(k, v)| match fields.iter().find(|f| f.eq_ignore_ascii_case(&k)) {
                                Some(f) => {
                                    path.push(f);
                                    let v = walk(v, path);
                                    path.pop();
                                    (f.to_string(), v)
                                }
                                None => (k, v),
                            },
                        )
                        .collect(),
                )
            }
            // List elements share their field's path (`targets`, `reject`).
            Node::Seq(items) => Node::Seq(items.into_iter().map(|i| walk(i, path)).collect()),
            other => other,
        }
    }
    walk(n, &mut Vec::new())
}

/// Go's `reflect.Kind` name of what a YAML value decodes to, for kustomize's error.
fn go_kind(n: Option<&Node>) -> &'static str {
    match n {
        None => "invalid",
        Some(n) if n.is_null() => "invalid",
        Some(Node::Scalar(s)) => match crate::yaml::resolve_v3(&s.value) {
            _ if s.tag == crate::yaml::Tag::Str => "string",
            crate::yaml::Resolved::Int(_) => "int",
            crate::yaml::Resolved::Float(_) => "float64",
            crate::yaml::Resolved::Bool(_) => "bool",
            _ => "string",
        },
        Some(Node::Seq(_)) => "slice",
        Some(Node::Map(_)) => "map",
    }
}

/// Runs a kustomization's replacements in order; entries may name a file of replacements.
/// All are loaded before any runs, as kustomize configures its transformer first.
pub(crate) fn run(b: &Builder, dir: &str, reps: &[Node], objs: &mut [Object]) -> Result<()> {
    let mut loaded: Vec<Node> = Vec::new();
    for r in reps {
        let Some(path) = r.str_at(&["path"]) else {
            loaded.push(r.clone());
            continue;
        };
        let inline_targets = r
            .get("targets")
            .and_then(Node::as_seq)
            .is_some_and(|t| !t.is_empty());
        if r.get("source").is_some_and(|s| !s.is_null()) || inline_targets {
            return Err(Error::msg(
                "cannot specify both path and inline replacement",
            ));
        }
        // yaml.Unmarshal reads the first document only.
        let doc = read_yaml(b.fs, &b.file_in(dir, path)?, b.opts.limits)?
            .into_iter()
            .next();
        match doc {
            Some(Node::Seq(items)) => loaded.extend(items.into_iter().map(canonical_keys)),
            Some(m @ Node::Map(_)) => loaded.push(canonical_keys(m)),
            other => {
                return Err(Error::msg(format!(
                    "unsupported replacement type encountered within replacement path: {}",
                    go_kind(other.as_ref())
                )));
            }
        }
    }
    for r in &loaded {
        one(r, objs)?;
    }
    // Text of another type in a number or boolean field fails only when kustomize decodes
    // the objects for output: after all replacements ran, the first in output order.
    let mut bad: Vec<Object> = objs
        .iter()
        .filter(|o| check_typed_tree(&o.node).is_err())
        .cloned()
        .collect();
    crate::sort::apply(&mut bad, None)?;
    match bad.first() {
        Some(o) => check_typed_tree(&o.node),
        None => Ok(()),
    }
}

fn check_typed_tree(n: &Node) -> Result<()> {
    match n {
        Node::Scalar(s) => check_typed_text(s),
        Node::Seq(items) => items.iter().try_for_each(check_typed_tree),
        Node::Map(entries) => entries.iter().try_for_each(|(_, v)| check_typed_tree(v)),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{ok, run};

    #[test]
    fn field_paths_split_like_kyaml() {
        let split = super::split_field_path;
        assert_eq!(split("a.[b.c=d].e"), ["a", "[b.c=d]", "e"]);
        assert_eq!(
            split("metadata.annotations.[a.b/c]"),
            ["metadata", "annotations", "a.b/c"]
        );
        assert_eq!(
            split(r"metadata.annotations.x\.y"),
            ["metadata", "annotations", "x.y"]
        );
        assert_eq!(split(".spec.replicas"), ["spec", "replicas"]);
    }

    const FILES: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  host: db.prod\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: a:1\n    env:\n    - name: HOST\n      value: x\n";

    #[test]
    fn values_are_copied_into_list_selected_fields_and_delimited_parts() {
        let kust = "resources: [r.yaml]\nreplacements:\n- source:\n    kind: ConfigMap\n    name: c\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: Pod\n    fieldPaths:\n    - spec.containers.[name=a].env.[name=HOST].value\n- source:\n    kind: ConfigMap\n    name: c\n    fieldPath: data.host\n    options:\n      delimiter: .\n      index: 1\n  targets:\n  - select:\n      kind: Pod\n    fieldPaths:\n    - spec.containers.0.image\n    options:\n      delimiter: ':'\n      index: 1\n";
        let out = ok(&[("k/kustomization.yaml", kust), ("k/r.yaml", FILES)], "k");
        assert!(out.contains("value: db.prod\n"), "{out}");
        assert!(out.contains("image: a:prod\n"), "{out}");
    }

    #[test]
    fn a_source_that_selects_nothing_is_an_error() {
        let kust = "resources: [r.yaml]\nreplacements:\n- source:\n    kind: Secret\n    name: nope\n    fieldPath: data.x\n  targets:\n  - select:\n      kind: Pod\n";
        let err = run(&[("k/kustomization.yaml", kust), ("k/r.yaml", FILES)], "k")
            .expect_err("no source");
        assert!(
            err.to_string()
                .contains("nothing selected by Secret.[noVer].[noGrp]/nope.[noNs]:data.x"),
            "{err}"
        );
    }
}
