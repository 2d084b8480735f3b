//! Legacy `vars`: `$(NAME)` references in the fields of the varReference config, replaced by a
//! field of a named object once everything else is built.

use crate::error::{Error, Result};
use crate::fieldspec::{TransformerConfig, apply};
use crate::resource::{Gvk, Object};
use crate::yaml::Node;

/// One declared variable.
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub gvk: Gvk,
    pub obj_name: String,
    pub obj_namespace: String,
    pub field_path: String,
}

impl Var {
    pub fn from_node(n: &Node) -> Result<Var> {
        let s = |p: &[&str]| n.str_at(p).unwrap_or("").to_string();
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
                fp
            },
        })
    }
}

/// Splits `spec.ports[0].port` / `a.b[name=x]` into path steps.
fn steps(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_string());
            }
            let end = rest[i..].find(']').map(|e| e + i).unwrap_or(rest.len() - 1);
            out.push(rest[i..=end].to_string());
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

fn lookup<'a>(n: &'a Node, path: &str) -> Option<&'a Node> {
    let mut cur = n;
    for s in steps(path) {
        cur = if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            let items = cur.as_seq()?;
            if let Some((k, v)) = inner.split_once('=') {
                items.iter().find(|e| e.str_at(&[k]) == Some(v))?
            } else {
                items.get(inner.parse::<usize>().ok()?)?
            }
        } else {
            cur.get(&s)?
        };
    }
    Some(cur)
}

fn expand(s: &str, values: &[(String, String)], used: &mut Vec<String>) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'('
                && let Some(end) = s[i + 2..].find(')')
            {
                let name = &s[i + 2..i + 2 + end];
                if let Some((_, v)) = values.iter().find(|(k, _)| k == name) {
                    out.push_str(v);
                    used.push(name.to_string());
                    i += 3 + end;
                    continue;
                }
            }
        }
        let c = s[i..].chars().next().unwrap_or('\0');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn substitute(n: &mut Node, values: &[(String, String)], used: &mut Vec<String>) {
    match n {
        Node::Scalar(s) => {
            if s.value.contains("$(") {
                let v = expand(&s.value, values, used);
                if v != s.value {
                    *n = Node::str(v);
                }
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(|i| substitute(i, values, used)),
        Node::Map(m) => m.iter_mut().for_each(|(_, v)| substitute(v, values, used)),
    }
}

/// Resolves all variables and substitutes them.
pub(crate) fn resolve(objs: &mut [Object], vars: &[Var], cfg: &TransformerConfig) -> Result<()> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values = Vec::new();
    for v in vars {
        if values.iter().any(|(k, _): &(String, String)| *k == v.name) {
            return Err(Error::msg(format!("var '{}' already encountered", v.name)));
        }
        let found: Vec<&Object> = objs
            .iter()
            .filter(|o| {
                o.cur_id().gvk.is_selected_by(&v.gvk)
                    && o.all_ids()
                        .chain(o.prev_ids.first().cloned())
                        .any(|id| id.name == v.obj_name)
                    && (v.obj_namespace.is_empty()
                        || o.namespace() == v.obj_namespace
                        || (o.namespace().is_empty() && v.obj_namespace == "default"))
            })
            .collect();
        let [o] = found.as_slice() else {
            return Err(Error::msg(format!(
                "var '{}' cannot be mapped to a field in the set of known resources",
                v.name
            )));
        };
        let val = lookup(&o.node, &v.field_path)
            .and_then(Node::as_str)
            .ok_or_else(|| {
                Error::msg(format!(
                    "field specified in var '{}' not found in corresponding resource",
                    v.name
                ))
            })?;
        values.push((v.name.clone(), val.to_string()));
    }
    let mut used = Vec::new();
    for o in objs.iter_mut() {
        let gvk = o.gvk();
        for fs in &cfg.var_reference {
            if !fs.matches(&gvk) {
                continue;
            }
            apply(&mut o.node, fs, None, &mut |n| {
                substitute(n, &values, &mut used);
                Ok(())
            })?;
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
