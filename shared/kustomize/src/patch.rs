//! Patches: strategic merge (kyaml's merge2 semantics, as kustomize v5 applies them) and
//! JSON 6902, with kustomize's target selectors.

mod assoc;
mod builtin;
mod json6902;
mod selector;
mod smp;

use smp::apply_smp;

use regex::Regex;

use crate::build::{Acc, Builder, read_yaml};
use crate::error::{Error, Result};
use crate::kustomization::{Patch, Selector};
use crate::resource::{Gvk, Object, ResId};
use crate::yaml::{Limits, Node, parse_documents};

// ---------------------------------------------------------------------------------------------
// Selection and application

fn anchored(p: &str) -> Result<Option<Regex>> {
    if p.is_empty() {
        return Ok(None);
    }
    let full = format!("^(?:{p})$");
    Regex::new(&full)
        .map(Some)
        .map_err(|e| go_regexp_error(&full, &e.to_string()))
}

/// Go's `regexp.Compile` error for the common mistakes (Rust's parser words them otherwise).
fn go_regexp_error(expr: &str, rust: &str) -> Error {
    let (code, part) = if rust.contains("unclosed character class") {
        (
            "missing closing ]",
            expr.rfind('[').map_or(expr, |i| &expr[i..]),
        )
    } else if rust.contains("unclosed group") {
        ("missing closing )", expr)
    } else if rust.contains("unopened group") {
        ("unexpected )", expr)
    } else if rust.contains("repetition operator missing expression") {
        ("missing argument to repetition operator", expr)
    } else {
        ("invalid regular expression", expr)
    };
    Error::msg(format!("error parsing regexp: {code}: `{part}`"))
}

/// Whether `labels` satisfy a Kubernetes label selector (`a=b,c!=d,e in (x,y),!f,g`).
pub fn label_selector_matches(sel: &str, labels: &[(String, String)]) -> Result<bool> {
    selector::matches(sel, labels)
}

/// The objects a patch target selects: name, namespace, group, version and kind are anchored
/// regular expressions; name and namespace may match the original or the current id.
pub(crate) fn select(objs: &[Object], s: &Selector) -> Result<Vec<usize>> {
    let name = anchored(&s.name)?;
    let ns = anchored(&s.namespace)?;
    let group = anchored(&s.group)?;
    let version = anchored(&s.version)?;
    let kind = anchored(&s.kind)?;
    let fits = |re: &Option<Regex>, text: &str| re.as_ref().is_none_or(|re| re.is_match(text));
    let mut out = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        let org = crate::build::org_id(o);
        let cur = o.cur_id();
        if !fits(&ns, org.gvk.effective_namespace(&org.namespace))
            && !fits(&ns, cur.gvk.effective_namespace(&cur.namespace))
        {
            continue;
        }
        if !fits(&name, &org.name) && !fits(&name, &cur.name) {
            continue;
        }
        if !(fits(&group, &cur.gvk.group)
            && fits(&version, &cur.gvk.version)
            && fits(&kind, &cur.gvk.kind))
        {
            continue;
        }
        if !s.label_selector.is_empty()
            && !label_selector_matches(&s.label_selector, &o.meta_map("labels"))?
        {
            continue;
        }
        if !s.annotation_selector.is_empty()
            && !label_selector_matches(&s.annotation_selector, &o.meta_map("annotations"))?
        {
            continue;
        }
        out.push(i);
    }
    Ok(out)
}

fn patch_id(p: &Node) -> ResId {
    ResId {
        gvk: Gvk::from_api_version(
            p.str_at(&["apiVersion"]).unwrap_or(""),
            p.str_at(&["kind"]).unwrap_or(""),
        ),
        name: p.str_at(&["metadata", "name"]).unwrap_or("").to_string(),
        namespace: p
            .str_at(&["metadata", "namespace"])
            .unwrap_or("")
            .to_string(),
    }
}

fn find_by_any_id(objs: &[Object], id: &ResId) -> Result<usize> {
    let m: Vec<usize> = objs
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.node.as_map().is_some_and(|m| !m.is_empty()) && o.all_ids().any(|i| i.equals(id))
        })
        .map(|(i, _)| i)
        .collect();
    match m.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::msg(format!(
            "no matches for Id {id}; failed to find unique target for patch {id}"
        ))),
        _ => Err(Error::msg(format!(
            "multiple matches for Id {id}; failed to find unique target for patch {id}"
        ))),
    }
}

/// The target of a `patches` entry's strategic merge patch, with PatchTransformer's wording.
fn find_patch_target(objs: &[Object], id: &ResId) -> Result<usize> {
    find_by_any_id(objs, id).map_err(|e| {
        Error::msg(format!(
            "no resource matches strategic merge patch \"{id}\": {e}"
        ))
    })
}

fn patch_docs(b: &Builder, dir: &str, p: &Patch) -> Result<(Vec<Node>, String)> {
    let path = p.path.as_deref().filter(|s| !s.is_empty());
    let inline = p.patch.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if path.is_some() && inline.is_some() {
        return Err(Error::msg("patch and path can't be set at the same time"));
    }
    match (path, inline) {
        (Some(path), _) => {
            let f = b.file_in(dir, path)?;
            Ok((read_yaml(b.fs, &f, b.opts.limits)?, f))
        }
        (_, Some(text)) => {
            let docs = parse_documents(text, Limits::default()).map_err(|source| Error::Yaml {
                file: "inline patch".into(),
                source,
            })?;
            Ok((
                docs.into_iter()
                    .flatten()
                    .filter(|d| !d.is_null())
                    .collect(),
                "inline patch".into(),
            ))
        }
        _ => Err(Error::msg("must specify one of patch and path")),
    }
}

/// Go's `%q` of a string, as kustomize names an inline patch in its errors.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How kustomize's PatchTransformer names a patch in its errors.
fn patch_source(p: &Patch) -> String {
    match (p.path.as_deref().filter(|s| !s.is_empty()), &p.patch) {
        (Some(path), _) => format!("[path: {}]", go_quote(path)),
        (None, Some(text)) => format!("[patch: {}]", go_quote(text.trim())),
        (None, None) => String::new(),
    }
}

/// Applies a JSON patch to the selected objects. The patch sees the annotations recording
/// earlier ids, as kustomize keeps them in the object while it builds.
fn apply_json_ops(acc: &mut Acc, target: &Selector, ops: &Node, store_id: bool) -> Result<()> {
    for i in select(&acc.objs, target)? {
        let o = &mut acc.objs[i];
        if store_id {
            // kustomize records the id first, so renames by JSON patch still resolve references.
            o.store_previous_id();
        }
        json6902::apply(&mut o.node, ops, &o.prev_ids)?;
    }
    Ok(())
}

/// A builtin transformer configuration under `transformers:`, when it is one kustomize runs
/// through patches, replacements or its own fieldSpecs; `false` for any other.
pub(crate) fn run_builtin(b: &Builder, dir: &str, d: &Node, acc: &mut Acc) -> Result<bool> {
    builtin::run(b, dir, d, acc)
}

/// One entry of legacy `patchesJson6902` (kustomize's PatchJson6902Transformer).
pub(crate) fn apply_legacy_json6902(
    b: &Builder,
    dir: &str,
    p: &Patch,
    acc: &mut Acc,
) -> Result<()> {
    let Some(target) = p.target.as_ref().filter(|t| !t.name.is_empty()) else {
        return Err(Error::msg("must specify the target name"));
    };
    let path = p.path.as_deref().filter(|s| !s.is_empty());
    let inline = p.patch.as_deref().filter(|s| !s.is_empty());
    match (path, inline) {
        (None, None) => return Err(Error::msg("empty file path and empty jsonOp")),
        (Some(_), Some(_)) => {
            return Err(Error::msg("must specify a file path or jsonOp, not both"));
        }
        _ => {}
    }
    let (docs, _) = patch_docs(b, dir, p)?;
    match docs.first() {
        Some(ops @ Node::Seq(items)) if !items.is_empty() => {
            apply_json_ops(acc, target, ops, false)
        }
        // What encoding/json says decoding anything but a list into a patch.
        Some(other @ (Node::Map(_) | Node::Scalar(_))) if !other.is_null() => {
            let kind = match other {
                Node::Map(_) => "object",
                Node::Scalar(s) => match crate::yaml::resolve_v3(&s.value) {
                    _ if s.tag == crate::yaml::Tag::Str => "string",
                    crate::yaml::Resolved::Bool(_) => "bool",
                    crate::yaml::Resolved::Int(_) | crate::yaml::Resolved::Float(_) => "number",
                    _ => "string",
                },
                Node::Seq(_) => "array",
            };
            Err(Error::msg(format!(
                "decoding {}: json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch",
                crate::yaml::go_json(other).unwrap_or_default()
            )))
        }
        _ => Err(Error::msg(format!(
            "patch appears to be empty; file={}, JsonOp={}",
            path.unwrap_or(""),
            inline.unwrap_or("")
        ))),
    }
}

/// Strategic merge patch documents as kustomize's resource factory reads them.
fn sm_patches(docs: Vec<Node>) -> Result<Vec<Node>> {
    Ok(crate::build::objects_from_docs(docs)?
        .into_iter()
        .map(|o| o.node)
        .collect())
}

/// One entry of `patches` (kustomize's PatchTransformer).
pub(crate) fn apply_patch(b: &Builder, dir: &str, p: &Patch, acc: &mut Acc) -> Result<()> {
    let file = patch_source(p);
    let (docs, _) = patch_docs(b, dir, p).map_err(|e| match e {
        Error::Yaml { .. } => Error::msg(format!("unable to parse SM or JSON patch from {file}")),
        Error::Fs(_) => e.context(format!(
            "failed to get the patch file from path({})",
            p.path.as_deref().unwrap_or("")
        )),
        Error::Msg(m) if m.starts_with("security;") => Error::Msg(m).context(format!(
            "failed to get the patch file from path({})",
            p.path.as_deref().unwrap_or("")
        )),
        e => e,
    })?;
    if docs.is_empty() {
        // Nothing but comments reads as an empty SM patch list and as a null JSON patch.
        return Err(Error::msg(format!(
            "illegally qualifies as both an SM and JSON patch: {file}"
        )));
    }
    if let [ops @ Node::Seq(_)] = docs.as_slice() {
        let Some(target) = &p.target else {
            return Err(Error::msg(format!(
                "must specify a target for JSON patch {file}"
            )));
        };
        return apply_json_ops(acc, target, ops, true);
    }
    // Strategic merge patches are read as resources: validated, `…List` kinds inlined.
    if docs.iter().any(|d| !matches!(d, Node::Map(_))) {
        return Err(Error::msg(format!(
            "unable to parse SM or JSON patch from {file}"
        )));
    }
    let docs = sm_patches(docs)
        .map_err(|_| Error::msg(format!("unable to parse SM or JSON patch from {file}")))?;
    for d in &docs {
        match &p.target {
            None => {
                let i = find_patch_target(&acc.objs, &patch_id(d))?;
                if !apply_smp(
                    &mut acc.objs[i],
                    d,
                    p.allow_name_change,
                    p.allow_kind_change,
                )? {
                    acc.objs.remove(i);
                }
            }
            Some(t) => {
                if docs.len() > 1 {
                    return Err(Error::msg(format!(
                        "Multiple Strategic-Merge Patches in one `patches` entry is not allowed to set `patches.target` field: {file}"
                    )));
                }
                let mut idx = select(&acc.objs, t)?;
                idx.reverse();
                for i in idx {
                    // kustomize gives each target's copy of the patch the target's apiVersion.
                    let mut patch = d.clone();
                    if let Some(av) = acc.objs[i].node.get("apiVersion").cloned() {
                        patch.set("apiVersion", av);
                    }
                    if !apply_smp(
                        &mut acc.objs[i],
                        &patch,
                        p.allow_name_change,
                        p.allow_kind_change,
                    )? {
                        acc.objs.remove(i);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Legacy `patchesStrategicMerge`: file paths or inline YAML.
pub(crate) fn strategic_merge_legacy(
    b: &Builder,
    dir: &str,
    entries: &[String],
    acc: &mut Acc,
) -> Result<()> {
    for e in entries {
        // kustomize reads an entry as patch content first, as a file path when that fails.
        let is_content = parse_documents(e, Limits::default()).is_ok_and(|docs| {
            let docs: Vec<Node> = docs.into_iter().flatten().collect();
            !docs.is_empty() && docs.iter().all(|d| matches!(d, Node::Map(_)))
        });
        let p = if !is_content {
            Patch {
                path: Some(e.clone()),
                ..Default::default()
            }
        } else {
            Patch {
                patch: Some(e.clone()),
                ..Default::default()
            }
        };
        let (docs, _) = patch_docs(b, dir, &p)?;
        for d in &sm_patches(docs)? {
            let i = find_by_any_id(&acc.objs, &patch_id(d))?;
            if !apply_smp(&mut acc.objs[i], d, false, false)? {
                acc.objs.remove(i);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testutil::{ok, run};

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: a\n        env:\n        - name: X\n          value: x\n      - name: b\n        image: b\n      tolerations:\n      - key: k\n";

    #[test]
    fn strategic_merge_merges_containers_by_name_and_replaces_lists_without_keys() {
        let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: b\n        image: b2\n      - name: c\n        image: c\n      tolerations:\n      - key: other\n";
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "resources: [d.yaml]\npatches:\n- path: p.yaml\n",
                ),
                ("k/d.yaml", DEPLOY),
                ("k/p.yaml", patch),
            ],
            "k",
        );
        assert!(out.contains("image: c\n"), "{out}");
        assert!(out.contains("image: a\n"), "{out}");
        assert!(out.contains("image: b2"), "{out}");
        assert!(out.contains("tolerations:\n      - key: other\n"), "{out}");
        assert!(!out.contains("key: k\n"), "{out}");
    }

    #[test]
    fn delete_directives_and_nulls_remove_elements_and_keys() {
        let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        $patch: delete\n      tolerations: null\n";
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "resources: [d.yaml]\npatches:\n- path: p.yaml\n",
                ),
                ("k/d.yaml", DEPLOY),
                ("k/p.yaml", patch),
            ],
            "k",
        );
        assert!(!out.contains("image: a\n"), "{out}");
        assert!(!out.contains("tolerations"), "{out}");
    }

    #[test]
    fn json6902_patches_need_a_target_and_apply_in_order() {
        let kust = "resources: [d.yaml]\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/template/spec/containers/0/image\n      value: z\n    - op: add\n      path: /metadata/annotations/a\n      value: b\n";
        let out = ok(&[("k/kustomization.yaml", kust), ("k/d.yaml", DEPLOY)], "k");
        assert!(out.contains("image: z\n"), "{out}");
        assert!(out.contains("annotations:\n    a: b\n"), "{out}");
        let err = run(
            &[("k/kustomization.yaml", "resources: [d.yaml]\npatches:\n- patch: '[{\"op\": \"remove\", \"path\": \"/spec\"}]'\n"), ("k/d.yaml", DEPLOY)],
            "k",
        )
        .expect_err("no target");
        assert!(err.to_string().contains("must specify a target"), "{err}");
    }

    #[test]
    fn label_selectors_support_equality_sets_and_existence() {
        let labels = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        for (sel, want) in [
            ("a=1", true),
            ("a!=1", false),
            ("b in (2,3)", true),
            ("c", false),
            ("!c", true),
            ("a=1,b=3", false),
        ] {
            assert_eq!(
                super::label_selector_matches(sel, &labels).expect("valid"),
                want,
                "{sel}"
            );
        }
    }
}
