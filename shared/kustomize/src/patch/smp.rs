//! Strategic merge patches as kyaml's merge2 walker applies them for kustomize: maps merged
//! field by field, lists by their merge keys from the built-in schema (or replaced), the
//! `$patch` directives, and the resource's id kept unless the patch may change it.

use crate::error::{Error, Result};
use crate::resource::Object;
use crate::schema::{Field, Schema};
use crate::yaml::{Node, Tag};

use super::assoc;

/// Where a node sits in the built-in schema: a definition, an array field, or unknown.
#[derive(Clone, Copy)]
pub(super) enum Sch<'a> {
    None,
    Def(&'a str),
    List(&'a Field),
}

fn child<'a>(s: Sch<'a>, field: &str) -> Sch<'a> {
    let Sch::Def(d) = s else { return Sch::None };
    match Schema::get().field(d, field) {
        Some(f) if f.kind == b'o' => f.reference.map(Sch::Def).unwrap_or(Sch::None),
        Some(f) if f.kind == b'a' => Sch::List(f),
        _ => Sch::None,
    }
}

fn tagged_null(n: &Node) -> bool {
    n.is_null()
}

enum Directive {
    Merge,
    Replace,
    Delete,
}

fn map_directive(n: &mut Node) -> Result<Directive> {
    let Some(v) = n.get("$patch").and_then(Node::as_str).map(str::to_string) else {
        return Ok(Directive::Merge);
    };
    n.remove("$patch");
    match v.as_str() {
        "delete" => Ok(Directive::Delete),
        "replace" => Ok(Directive::Replace),
        "merge" => Ok(Directive::Merge),
        other => Err(Error::msg(format!("unknown patch strategy '{other}'"))),
    }
}

fn seq_directive(items: &mut Vec<Node>) -> Result<Directive> {
    let Some(i) = items
        .iter()
        .position(|e| e.as_map().is_some_and(|m| m.len() == 1) && e.get("$patch").is_some())
    else {
        return Ok(Directive::Merge);
    };
    let v = items[i]
        .get("$patch")
        .and_then(Node::as_str)
        .unwrap_or("")
        .to_string();
    let d = match v.as_str() {
        "delete" => Directive::Delete,
        "replace" => Directive::Replace,
        "merge" => Directive::Merge,
        other => return Err(Error::msg(format!("unknown patch strategy '{other}'"))),
    };
    items.remove(i);
    Ok(d)
}

/// The yaml.v3 name of a node's kind, as kyaml's errors print it.
fn node_kind(n: &Node) -> &'static str {
    match n {
        Node::Map(_) => "MappingNode",
        Node::Seq(_) => "SequenceNode",
        Node::Scalar(_) => "ScalarNode",
    }
}

/// Merges `src` (the patch) into `dest`; `None` means the field is removed.
pub(super) fn merge(
    dest: Option<Node>,
    src: Option<Node>,
    s: Sch,
    depth: usize,
) -> Result<Option<Node>> {
    if depth > 200 {
        return Err(Error::msg("patch nests too deeply"));
    }
    if src.is_none() {
        return walk_unpatched(dest, s, depth);
    }
    let dest_live = dest.as_ref().filter(|d| !d.is_null());
    let src_live = src.as_ref().filter(|d| !d.is_null());
    if let (Some(d), Some(o)) = (dest_live, src_live)
        && node_kind(d) != node_kind(o)
    {
        return Err(Error::msg(format!(
            "wrong node kind: expected {} but got {}: node contents:\n{}",
            node_kind(d),
            node_kind(o),
            crate::yaml::to_yaml(o).unwrap_or_default()
        )));
    }
    let kind_of = dest_live.or(src_live);
    match kind_of {
        None | Some(Node::Map(_)) => {
            let mut src = src;
            if dest_live.is_none() {
                let Some(mut o) = src.take() else {
                    return Ok(dest);
                };
                if let Node::Map(_) = o {
                    if matches!(map_directive(&mut o)?, Directive::Delete) {
                        return Ok(None);
                    }
                    let fields: Vec<String> = o
                        .as_map()
                        .map(|m| m.iter().map(|(k, _)| k.clone()).collect())
                        .unwrap_or_default();
                    let mut out = Node::map();
                    for f in fields {
                        let v = o.get(&f).cloned();
                        if let Some(v) = merge(None, v, child(s, &f), depth + 1)? {
                            out.set(&f, v);
                        }
                    }
                    return Ok(Some(out));
                }
                // A null patch for a missing field: drop it.
                return Ok(if o.is_null() { None } else { Some(o) });
            }
            let Some(mut d) = dest else { return Ok(None) };
            let Some(mut o) = src else { return Ok(Some(d)) };
            if tagged_null(&o) {
                return Ok(None);
            }
            if !matches!(o, Node::Map(_)) {
                return Ok(Some(o));
            }
            match map_directive(&mut o)? {
                Directive::Delete => return Ok(None),
                Directive::Replace => return merge(None, Some(o), s, depth + 1),
                Directive::Merge => {}
            }
            let mut names: Vec<String> = Vec::new();
            for m in [d.as_map(), o.as_map()].into_iter().flatten() {
                for (k, _) in m {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
            names.sort();
            for f in names {
                // Take the field out (its slot keeps its place) rather than copying the subtree.
                let dv = d
                    .get_mut(&f)
                    .map(|slot| std::mem::replace(slot, Node::null()));
                let ov = o.remove(&f);
                match merge(dv, ov, child(s, &f), depth + 1)? {
                    Some(v) => d.set(&f, v),
                    None => {
                        d.remove(&f);
                    }
                }
            }
            Ok(Some(d))
        }
        Some(Node::Seq(_)) => {
            let assoc = matches!(s, Sch::List(f) if f.strategy.split(',').any(|x| x == "merge"));
            if !assoc {
                return Ok(match src {
                    Some(o) if tagged_null(&o) => None,
                    Some(o) => Some(o),
                    None => dest,
                });
            }
            let Sch::List(field) = s else { return Ok(dest) };
            let elem = field.reference.map(Sch::Def).unwrap_or(Sch::None);
            let Some(mut o) = src else { return Ok(dest) };
            if tagged_null(&o) {
                return Ok(None);
            }
            let Node::Seq(src_items) = &mut o else {
                return Ok(Some(o));
            };
            match seq_directive(src_items)? {
                Directive::Delete => return Ok(None),
                Directive::Replace => return Ok(Some(o)),
                Directive::Merge => {}
            }
            let src_items = std::mem::take(src_items);
            let dest_items = match dest_live {
                Some(Node::Seq(items)) => items.clone(),
                _ => Vec::new(),
            };
            if dest_live.is_none() {
                // kyaml merges a new list with itself (one node on both sides, so directives
                // it reads from the patch side are gone from the other): elements sharing key
                // values collapse into one, and a deleted element survives when its key
                // values do not find it.
                let merged = assoc::merge_list(
                    src_items,
                    Vec::new(),
                    &field.keys,
                    elem,
                    depth,
                    assoc::Sides::Shared,
                )?;
                return Ok(Some(Node::Seq(merged)));
            }
            assoc::merge_list(
                dest_items,
                src_items,
                &field.keys,
                elem,
                depth,
                assoc::Sides::Apart,
            )
            .map(|v| Some(Node::Seq(v)))
        }
        Some(Node::Scalar(_)) => Ok(match src {
            Some(o) if tagged_null(&o) => None,
            Some(o) => Some(keep_quoting(dest_live, o)),
            None => dest,
        }),
    }
}

/// A part of the resource the patch does not mention, as kyaml's walker still visits it: a
/// key with no value at all (`key:`) is dropped (an explicit `null` or `~` stays), and
/// associative lists are merged with themselves, so elements sharing key values collapse.
/// Lists without merge keys are not entered.
fn walk_unpatched(dest: Option<Node>, s: Sch, depth: usize) -> Result<Option<Node>> {
    match dest {
        None => Ok(None),
        Some(Node::Scalar(sc))
            if sc.value.is_empty() && matches!(sc.tag, Tag::Null | Tag::Implicit) =>
        {
            Ok(None)
        }
        Some(Node::Map(entries)) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let sch = child(s, &k);
                if let Some(v) = merge(Some(v), None, sch, depth + 1)? {
                    out.push((k, v));
                }
            }
            Ok(Some(Node::Map(out)))
        }
        Some(Node::Seq(items)) => match s {
            Sch::List(f) if f.strategy.split(',').any(|x| x == "merge") => {
                let elem = f.reference.map(Sch::Def).unwrap_or(Sch::None);
                if distinct_single_keys(&items, &f.keys) {
                    // The common case, where kyaml's self-merge keeps every element in place.
                    let mut out = Vec::with_capacity(items.len());
                    for e in items {
                        if let Some(v) = merge(Some(e), None, elem, depth + 1)? {
                            out.push(v);
                        }
                    }
                    return Ok(Some(Node::Seq(out)));
                }
                let merged = assoc::merge_list(
                    items,
                    Vec::new(),
                    &f.keys,
                    elem,
                    depth,
                    assoc::Sides::Apart,
                )?;
                Ok(Some(Node::Seq(merged)))
            }
            _ => Ok(Some(Node::Seq(items))),
        },
        other => Ok(other),
    }
}

/// Whether every element of a list merged by one key has a distinct, non-empty value for it.
fn distinct_single_keys(items: &[Node], keys: &[&str]) -> bool {
    let [key] = keys else { return false };
    let mut seen: Vec<&str> = Vec::with_capacity(items.len());
    for e in items {
        match e.get(key) {
            Some(n @ Node::Scalar(s))
                if !n.is_null() && !s.value.is_empty() && !seen.contains(&s.value.as_str()) =>
            {
                seen.push(&s.value)
            }
            _ => return false,
        }
    }
    true
}

/// Whether kyaml would hold `n` with a quoted (or block) style: text read from a file quoted,
/// or a string kyaml quotes when it sets it (one YAML 1.1 would read as another type). A
/// plain-looking string we created cannot be told from a quoted one read from a file; it is
/// taken as created (style-less), the common case.
fn quoted_style(n: &Node) -> bool {
    match n {
        Node::Scalar(s) => {
            s.quoted && (s.value.contains('\n') || !crate::yaml::v2_plain_is_string(&s.value))
        }
        _ => false,
    }
}

/// kyaml's FieldSetter gives a replaced value the old value's style: a number or boolean
/// patched over a quoted value is written quoted, so it reads back as a string.
fn keep_quoting(dest: Option<&Node>, src: Node) -> Node {
    let Node::Scalar(s) = &src else { return src };
    if s.tag == Tag::Str || !dest.is_some_and(quoted_style) {
        return src;
    }
    Node::str(s.value.clone())
}

/// Applies a strategic merge patch to an object; `false` when the patch deleted it.
pub(crate) fn apply_smp(
    o: &mut Object,
    patch: &Node,
    allow_name: bool,
    allow_kind: bool,
) -> Result<bool> {
    let (name, ns, kind) = (
        o.name().to_string(),
        o.namespace().to_string(),
        o.kind().to_string(),
    );
    let schema = Schema::get();
    let def = schema.type_def(o.api_version(), o.kind()).or_else(|| {
        schema.type_def(
            patch.str_at(&["apiVersion"]).unwrap_or(""),
            patch.str_at(&["kind"]).unwrap_or(""),
        )
    });
    let s = def.map(Sch::Def).unwrap_or(Sch::None);
    if allow_name || allow_kind {
        // Remember the old id first, so references to it follow the rename.
        o.store_previous_id();
    }
    if patch.get("$patch").and_then(Node::as_str) == Some("replace") {
        // kyaml hands back the patch as the merged root, but kustomize keeps merging into the
        // resource in place: a root `replace` changes nothing.
        return Ok(true);
    }
    let node = std::mem::replace(&mut o.node, Node::map());
    match merge(Some(node), Some(patch.clone()), s, 0)? {
        None => Ok(false),
        Some(n) if n.as_map().is_some_and(|m| m.is_empty()) => Ok(false),
        Some(n) => {
            o.node = n;
            if !allow_kind {
                o.node.set("kind", Node::str(kind));
            }
            if !allow_name {
                o.set_name(&name);
            }
            if ns.is_empty() {
                if let Some(m) = o.node.get_mut("metadata")
                    && m.get("namespace").is_some()
                {
                    m.remove("namespace");
                }
            } else {
                o.set_namespace(&ns);
            }
            Ok(true)
        }
    }
}
