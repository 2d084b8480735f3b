//! Name references: after renames (prefix, suffix, hash, namespace), fields naming other
//! objects are updated to the new names, choosing the referral as kustomize does.

use crate::error::{Error, Result};
use crate::fieldspec::{FieldSpec, TransformerConfig, apply};
use crate::resource::{Gvk, Object, ResId};
use crate::transformers::set_scalar_keep_style;
use crate::yaml::Node;

/// What nameref needs to know about a possible referral.
struct Cand {
    cur: ResId,
    prev: Vec<ResId>,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

/// kustomize's `SameEndingSubSlice`: the shorter list ends the longer one, and an empty
/// list only matches another empty one.
fn same_ending(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    if n == 0 {
        return a.len() == b.len();
    }
    a[a.len() - n..] == b[b.len() - n..]
}

fn ps_equals(c: &Cand, r: &Cand, allow_empty: bool) -> bool {
    if allow_empty {
        (c.prefixes.is_empty() || r.prefixes.is_empty() || same_ending(&c.prefixes, &r.prefixes))
            && (c.suffixes.is_empty()
                || r.suffixes.is_empty()
                || same_ending(&c.suffixes, &r.suffixes))
    } else {
        same_ending(&c.prefixes, &r.prefixes) && same_ending(&c.suffixes, &r.suffixes)
    }
}

struct Ctx<'a> {
    referrer: &'a Cand,
    target: &'a Gvk,
    role_ref: Option<Gvk>,
    cands: Vec<&'a Cand>,
}

impl Ctx<'_> {
    fn select(
        &self,
        old: &str,
        cands: &[&Cand],
        same_ns_too: bool,
    ) -> Result<Option<(String, String)>> {
        let mut c: Vec<&Cand> = cands
            .iter()
            .copied()
            .filter(|c| c.prev.iter().any(|id| id.name == old))
            .filter(|c| c.prev.iter().any(|id| id.gvk.is_selected_by(self.target)))
            .filter(|c| {
                self.role_ref
                    .as_ref()
                    .is_none_or(|g| c.prev.iter().any(|id| id.gvk.is_selected_by(g)))
            })
            .filter(|c| {
                self.referrer.cur.gvk.is_cluster_scoped()
                    || c.cur.gvk.is_cluster_scoped()
                    || c.cur.gvk.kind == "ServiceAccount"
                    || self.referrer.cur.ns_equals(&c.cur)
            })
            .collect();
        if c.len() != 1 {
            c.retain(|x| ps_equals(x, self.referrer, true));
            if c.len() > 1 {
                c.retain(|x| ps_equals(x, self.referrer, false));
            }
        }
        match c.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((one.cur.name.clone(), one.cur.namespace.clone()))),
            [first, rest @ ..] => {
                let identical = rest.iter().all(|x| {
                    x.cur.name == first.cur.name
                        && (!same_ns_too || x.cur.namespace == first.cur.namespace)
                });
                if identical {
                    Ok(Some((first.cur.name.clone(), first.cur.namespace.clone())))
                } else {
                    let ids: Vec<String> = c.iter().map(|x| x.cur.to_string()).collect();
                    Err(Error::msg(format!(
                        "found multiple possible referrals: {}",
                        ids.join(", ")
                    )))
                }
            }
        }
    }

    fn set(&self, n: &mut Node) -> Result<()> {
        match n {
            _ if n.is_null() => Ok(()),
            Node::Scalar(s) => {
                let old = s.value.clone();
                if let Some((name, _)) = self.select(&old, &self.cands, false)?
                    && name != old
                {
                    set_scalar_keep_style(n, &name);
                }
                Ok(())
            }
            Node::Map(_) => {
                let Some(old) = n.get("name").and_then(Node::as_str).map(str::to_string) else {
                    return Err(Error::msg("path config error; no 'name' field in node"));
                };
                let cands: Vec<&Cand> = match n.get("namespace").and_then(Node::as_str) {
                    None => self.cands.clone(),
                    Some(ns) => {
                        let by_org: Vec<&Cand> = self
                            .cands
                            .iter()
                            .copied()
                            .filter(|c| c.prev.first().unwrap_or(&c.cur).namespace == ns)
                            .collect();
                        if by_org.is_empty() {
                            self.cands
                                .iter()
                                .copied()
                                .filter(|c| c.cur.namespace == ns)
                                .collect()
                        } else {
                            by_org
                        }
                    }
                };
                if let Some((name, ns)) = self.select(&old, &cands, true)? {
                    if name == old && ns.is_empty() {
                        return Ok(());
                    }
                    n.set("name", Node::plain(name));
                    if !ns.is_empty() {
                        n.set("namespace", Node::plain(ns));
                    }
                }
                Ok(())
            }
            Node::Seq(items) => {
                for it in items {
                    self.set(it)?;
                }
                Ok(())
            }
        }
    }
}

/// Rewrites every name reference (kustomize's `FixBackReferences`).
pub(crate) fn fix(objs: &mut [Object], cfg: &TransformerConfig) -> Result<()> {
    let snapshot: Vec<Cand> = objs
        .iter()
        .map(|o| Cand {
            cur: o.cur_id(),
            prev: o.prev_ids.clone(),
            prefixes: o.prefixes.clone(),
            suffixes: o.suffixes.clone(),
        })
        .collect();
    for (i, o) in objs.iter_mut().enumerate() {
        let me = &snapshot[i];
        let org_gvk = me
            .prev
            .first()
            .map(|id| id.gvk.clone())
            .unwrap_or_else(|| me.cur.gvk.clone());
        // Objects this one may refer to: same namespace, cluster-scoped, or (for role
        // bindings) the namespaces of its ServiceAccount subjects.
        let rb_namespaces: Vec<String> = if matches!(o.kind(), "RoleBinding" | "ClusterRoleBinding")
        {
            o.node
                .get("subjects")
                .and_then(Node::as_seq)
                .map(|s| {
                    s.iter()
                        .filter(|x| x.str_at(&["kind"]) == Some("ServiceAccount"))
                        .filter_map(|x| x.str_at(&["namespace"]).map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let cands: Vec<&Cand> = if me.cur.gvk.is_cluster_scoped() {
            snapshot.iter().collect()
        } else {
            snapshot
                .iter()
                .filter(|c| {
                    c.cur.gvk.is_cluster_scoped()
                        || c.cur.ns_equals(&me.cur)
                        || rb_namespaces.contains(&c.cur.namespace)
                })
                .collect()
        };
        let role_ref_gvk = o.node.get("roleRef").map(|r| Gvk {
            group: r.str_at(&["apiGroup"]).unwrap_or("").to_string(),
            version: String::new(),
            kind: r.str_at(&["kind"]).unwrap_or("").to_string(),
        });
        for backref in &cfg.name_reference {
            for fs in &backref.referrers {
                if !org_gvk.is_selected_by(&fs.gvk) {
                    continue;
                }
                let ctx = Ctx {
                    referrer: me,
                    target: &backref.gvk,
                    role_ref: if fs.path.ends_with("roleRef/name") {
                        role_ref_gvk.clone()
                    } else {
                        None
                    },
                    cands: cands.clone(),
                };
                let spec = FieldSpec {
                    gvk: Gvk::default(),
                    path: fs.path.clone(),
                    create: false,
                };
                apply(&mut o.node, &spec, None, &mut |n| ctx.set(n)).map_err(|e| {
                    e.context(format!(
                        "updating name reference in '{}' field of '{}'",
                        fs.path, me.cur
                    ))
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testutil::ok;

    #[test]
    fn references_follow_prefixed_names_across_kinds() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "namePrefix: p-\nresources: [r.yaml]\n",
                ),
                (
                    "k/r.yaml",
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: role\nsubjects:\n- kind: ServiceAccount\n  name: sa\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: role\n",
                ),
            ],
            "k",
        );
        assert!(
            out.contains(
                "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: p-role\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("- kind: ServiceAccount\n  name: p-sa\n"),
            "{out}"
        );
    }
}
