//! Legacy `vars`: `$(NAME)` references in the fields of the varReference config, replaced by a
//! field of a named object once everything else is built.

use crate::error::{Error, Result};
use crate::fieldspec::{TransformerConfig, apply};
use crate::resource::{Gvk, Object};
use crate::yaml::{Node, Resolved, Tag, resolve_v3};

/// One declared variable.
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub gvk: Gvk,
    pub obj_name: String,
    pub obj_namespace: String,
    pub field_path: String,
    /// `fieldref.fieldpath` as written (empty when defaulted), for kustomize's messages.
    pub written_field_path: String,
}

/// encoding/json's field match, as kustomize decodes a var: the exact key, else one equal
/// ignoring case (`objRef`, `fieldRef`, `fieldPath`).
fn json_field<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    let m = n.as_map()?;
    m.iter()
        .find(|(k, _)| k == key)
        .or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(_, v)| v)
}

impl Var {
    /// Go's `%v` of kustomize's Var after defaulting, as its errors print it.
    fn go_display(&self) -> String {
        self.display_with(&self.field_path)
    }

    fn display_with(&self, field_path: &str) -> String {
        let or = |s: &str, none: &str| {
            if s.is_empty() {
                none.to_string()
            } else {
                s.to_string()
            }
        };
        format!(
            "{{{} {}.{}.{} {{{}}}}}",
            self.name,
            or(&self.gvk.kind, "[noKind]"),
            or(&self.gvk.version, "[noVer]"),
            or(&self.gvk.group, "[noGrp]"),
            field_path
        )
    }

    pub fn from_node(n: &Node) -> Result<Var> {
        let s = |p: &[&str]| {
            p.iter()
                .try_fold(n, |n, k| json_field(n, k))
                .filter(|v| !v.is_null())
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_string()
        };
        let api = s(&["objref", "apiVersion"]);
        let mut gvk = Gvk::from_api_version(&api, &s(&["objref", "kind"]));
        if gvk.group.is_empty() {
            gvk.group = s(&["objref", "group"]);
        }
        if gvk.version.is_empty() {
            gvk.version = s(&["objref", "version"]);
        }
        let fp = s(&["fieldref", "fieldpath"]);
        Ok(Var {
            name: s(&["name"]),
            gvk,
            obj_name: s(&["objref", "name"]),
            obj_namespace: s(&["objref", "namespace"]),
            field_path: if fp.is_empty() {
                "metadata.name".into()
            } else {
                fp.clone()
            },
            written_field_path: fp,
        })
    }
}

/// A var's field path as kyaml's `GetFieldValue` reads it: split like a replacement path,
/// then `name[3]` becomes `name`, `3` (other bracketed suffixes stay part of the field name).
fn steps(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in crate::replacements::split_field_path(path) {
        let index = part.strip_suffix(']').and_then(|p| {
            let open = p.rfind('[')?;
            let digits = &p[open + 1..];
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (p[..open].to_string(), digits.to_string()))
        });
        match index {
            Some((field, i)) => {
                if !field.is_empty() {
                    out.push(field);
                }
                out.push(i);
            }
            None => out.push(part),
        }
    }
    out
}

fn lookup<'a>(n: &'a Node, path: &str) -> Option<&'a Node> {
    let mut cur = n;
    for s in steps(path) {
        let selector = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .and_then(|x| x.split_once('='));
        cur = if let Some((k, v)) = selector {
            cur.as_seq()?.iter().find(|e| e.str_at(&[k]) == Some(v))?
        } else if let Node::Seq(items) = cur {
            // kyaml's Lookup takes a bare number as an index into a list.
            items.get(s.parse::<usize>().ok()?)?
        } else {
            cur.get(&s)?
        };
    }
    Some(cur)
}

fn is_string(n: &Node) -> bool {
    match n {
        Node::Scalar(s) => match s.tag {
            Tag::Str => true,
            Tag::Implicit => resolve_v3(&s.value) == Resolved::Str,
            _ => false,
        },
        _ => false,
    }
}

/// Go's `%v` of the value kustomize reads from a var's field (`GetFieldValue`): numbers and
/// booleans are parsed, so `1.50` reads `1.5` and `1000000.0` reads `1e+06`.
fn go_text(v: &Node) -> String {
    let Node::Scalar(s) = v else {
        return String::new();
    };
    match typed(s) {
        Some(Resolved::Float(f)) => crate::yaml::format_go_g(f),
        Some(Resolved::Bool(b)) => b.to_string(),
        _ => s.value.clone(),
    }
}

/// The type kustomize's `GetFieldValue` gives a scalar: by its tag, or by its text when plain.
fn typed(s: &crate::yaml::Scalar) -> Option<Resolved> {
    let r = match s.tag {
        Tag::Str | Tag::Timestamp | Tag::Null => return None,
        _ if s.quoted => return None,
        _ => resolve_v3(&s.value),
    };
    match (s.tag, r) {
        (Tag::Float, Resolved::Int(i)) => Some(Resolved::Float(i as f64)),
        (_, r @ (Resolved::Float(_) | Resolved::Bool(_) | Resolved::Int(_))) => Some(r),
        _ => None,
    }
}

/// The node a whole-string reference to a var becomes (kustomize's `updateNodeValue`):
/// a float loses its exponent and trailing zeros, a boolean is lower case.
fn whole_value(v: &Node) -> Node {
    let Node::Scalar(s) = v else {
        return v.clone();
    };
    let text = match typed(s) {
        Some(Resolved::Float(f)) => format!("{f}"),
        Some(Resolved::Bool(b)) => b.to_string(),
        _ => return v.clone(),
    };
    let mut out = s.clone();
    out.value = text;
    Node::Scalar(out)
}

/// Expands `$(NAME)` references; `$$` is a literal `$`. A string that is exactly one
/// reference takes the variable's own node (so a port stays a number).
fn expand(s: &str, values: &[(String, Node)]) -> Node {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[last..i]);
            match b[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                }
                b'(' => match s[i + 2..].find(')') {
                    Some(end) => {
                        let name = &s[i + 2..i + 2 + end];
                        // A map or list value is left unreplaced, as kustomize's primitive
                        // replacer does.
                        let value = values
                            .iter()
                            .find(|(k, v)| k == name && matches!(v, Node::Scalar(_)));
                        match value {
                            Some((_, v)) if s.len() == end + 3 => return v.clone(),
                            Some((_, v)) => out.push_str(&go_text(v)),
                            None => out.push_str(&s[i..i + 3 + end]),
                        }
                        i += 3 + end;
                    }
                    None => {
                        out.push_str("$(");
                        i += 2;
                    }
                },
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
            last = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&s[last.min(s.len())..]);
    Node::str(out)
}

fn substitute_scalar(n: &mut Node, values: &[(String, Node)]) {
    if let Node::Scalar(s) = n {
        *n = expand(&s.value, values);
    }
}

/// kustomize's refvar filter: strings, lists of strings, and the string values of a map.
fn substitute(n: &mut Node, values: &[(String, Node)]) -> Result<()> {
    match n {
        _ if n.is_null() => Ok(()),
        Node::Scalar(_) => {
            if is_string(n) {
                substitute_scalar(n, values);
            }
            Ok(())
        }
        Node::Seq(items) => {
            for it in items {
                if !is_string(it) {
                    return Err(Error::msg("invalid value type expect a string"));
                }
                substitute_scalar(it, values);
            }
            Ok(())
        }
        Node::Map(m) => {
            for (_, v) in m.iter_mut() {
                if is_string(v) {
                    substitute_scalar(v, values);
                }
            }
            Ok(())
        }
    }
}

/// Resolves all variables and substitutes them.
pub(crate) fn resolve(objs: &mut [Object], vars: &[Var], cfg: &TransformerConfig) -> Result<()> {
    if vars.is_empty() {
        return Ok(());
    }
    // kustomize merges the declarations while accumulating, before resolving any.
    for (i, v) in vars.iter().enumerate() {
        if vars[..i].iter().any(|w| w.name == v.name) {
            return Err(Error::msg(format!("var '{}' already encountered", v.name)));
        }
    }
    let mut values = Vec::new();
    for v in vars {
        // kustomize's MergeVars: exact group/version/kind and name on any of an object's
        // ids; the namespace counts when given or when the kind has none.
        let ns_matters = !v.obj_namespace.is_empty() || v.gvk.is_cluster_scoped();
        let want_ns = v.gvk.effective_namespace(&v.obj_namespace);
        let found: Vec<&Object> = objs
            .iter()
            .filter(|o| {
                o.all_ids().any(|id| {
                    id.gvk == v.gvk
                        && id.name == v.obj_name
                        && (!ns_matters || id.gvk.effective_namespace(&id.namespace) == want_ns)
                })
            })
            .collect();
        if found.len() > 1 {
            return Err(Error::msg(format!(
                "found {} resId matches for var {} (unable to disambiguate)",
                found.len(),
                v.display_with(&v.written_field_path)
            )));
        }
        let [o] = found.as_slice() else {
            return Err(Error::msg(format!(
                "var '{}' cannot be mapped to a field in the set of known resources",
                v.go_display()
            )));
        };
        let val = lookup(&o.node, &v.field_path).ok_or_else(|| {
            Error::msg(format!(
                "field specified in var '{}' not found in corresponding resource",
                v.go_display()
            ))
        })?;
        values.push((v.name.clone(), whole_value(val)));
    }
    for o in objs.iter_mut() {
        let gvk = o.gvk();
        for fs in &cfg.var_reference {
            if !fs.matches(&gvk) {
                continue;
            }
            apply(&mut o.node, fs, None, &mut |n| substitute(n, &values))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testutil::ok;

    #[test]
    fn vars_substitute_into_container_args_and_leave_unknown_ones() {
        let kust = "resources: [r.yaml]\nvars:\n- name: SVC\n  objref:\n    kind: Service\n    name: s\n    apiVersion: v1\n";
        let r = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    args: [\"--svc=$(SVC)\", \"$(OTHER)\"]\n";
        let out = ok(&[("k/kustomization.yaml", kust), ("k/r.yaml", r)], "k");
        assert!(out.contains("- --svc=s\n"), "{out}");
        assert!(out.contains("- $(OTHER)\n"), "{out}");
    }
}

#[cfg(test)]
mod typed_tests {
    use crate::testutil::ok;

    #[test]
    fn a_whole_string_reference_takes_the_variables_type() {
        let kust = "resources: [r.yaml]\nvars:\n- name: PORT\n  objref:\n    kind: Service\n    name: s\n    apiVersion: v1\n  fieldref:\n    fieldpath: spec.ports[0].port\n";
        let r = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 8080\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    env:\n    - name: P\n      value: $(PORT)\n    - name: Q\n      value: port-$(PORT)\n";
        let out = ok(&[("k/kustomization.yaml", kust), ("k/r.yaml", r)], "k");
        assert!(out.contains("name: P\n      value: 8080\n"), "{out}");
        assert!(out.contains("name: Q\n      value: port-8080\n"), "{out}");
    }
}
