//! Output order: kustomize's legacy order (kubectl's default) or load order (`fifo`).

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::resource::{Gvk, Object, ResId};
use crate::yaml::Node;

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn gvk_sort_string(g: &Gvk) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}",
        or(&g.group, "~G"),
        or(&g.version, "~V"),
        or(&g.kind, "~K")
    )
}

fn id_sort_string(id: &ResId) -> String {
    let ns = if id.namespace.is_empty() {
        "~X"
    } else {
        &id.namespace
    };
    let name = if id.name.is_empty() { "~N" } else { &id.name };
    format!("{}|{ns}|{name}", id.gvk)
}

/// kustomize's `Gvk.IsLessThan` with the default orders, as an ordering (it also sorts the
/// builtin field specs, which shows in error messages listing them).
pub(crate) fn gvk_cmp(a: &Gvk, b: &Gvk) -> Ordering {
    let order = |k: &str| -> i64 {
        if let Some(i) = ORDER_FIRST.iter().position(|f| *f == k) {
            return i as i64 - ORDER_FIRST.len() as i64;
        }
        if let Some(i) = ORDER_LAST.iter().position(|f| *f == k) {
            return i as i64 + 1;
        }
        0
    };
    order(&a.kind)
        .cmp(&order(&b.kind))
        .then_with(|| gvk_sort_string(a).cmp(&gvk_sort_string(b)))
}

fn legacy(objs: &mut [Object], first: &[String], last: &[String]) {
    let order = |k: &str| -> i64 {
        if let Some(i) = first.iter().position(|f| f == k) {
            return i as i64 - first.len() as i64;
        }
        if let Some(i) = last.iter().position(|f| f == k) {
            return i as i64 + 1;
        }
        0
    };
    objs.sort_by(|a, b| {
        let (ia, ib) = (a.cur_id(), b.cur_id());
        if ia.gvk != ib.gvk {
            let (oa, ob) = (order(&ia.gvk.kind), order(&ib.gvk.kind));
            if oa != ob {
                return oa.cmp(&ob);
            }
            let (sa, sb) = (gvk_sort_string(&ia.gvk), gvk_sort_string(&ib.gvk));
            if ia.gvk.kind == "Namespace"
                && ib.gvk.kind == "Namespace"
                && (ia.gvk.group.is_empty() || ib.gvk.group.is_empty())
            {
                return sb.cmp(&sa);
            }
            return sa.cmp(&sb);
        }
        id_sort_string(&ia)
            .cmp(&id_sort_string(&ib))
            .then(Ordering::Equal)
    });
}

fn strings(n: Option<&Node>) -> Option<Vec<String>> {
    n.and_then(Node::as_seq).map(|s| {
        s.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Orders the output per the top-level `sortOptions` (legacy when absent).
pub(crate) fn apply(objs: &mut [Object], opts: Option<&Node>) -> Result<()> {
    let defaults = || {
        (
            ORDER_FIRST
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ORDER_LAST.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    let Some(o) = opts.filter(|o| !o.is_null()) else {
        let (f, l) = defaults();
        legacy(objs, &f, &l);
        return Ok(());
    };
    match o.str_at(&["order"]).unwrap_or("") {
        "fifo" => {
            if o.get("legacySortOptions").is_some() {
                return Err(Error::msg(
                    "the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not 'legacy'",
                ));
            }
            Ok(())
        }
        "legacy" => {
            let (mut f, mut l) = defaults();
            if let Some(lo) = o.get("legacySortOptions") {
                f = strings(lo.get("orderFirst")).unwrap_or_default();
                l = strings(lo.get("orderLast")).unwrap_or_default();
            }
            legacy(objs, &f, &l);
            Ok(())
        }
        _ => Err(Error::msg(
            "the field 'sortOptions.order' must be one of [fifo, legacy]",
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::ok;

    const R: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: w\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

    fn kinds(out: &str) -> Vec<&str> {
        out.lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect()
    }

    #[test]
    fn legacy_order_puts_namespaces_first_and_webhooks_last() {
        let out = ok(
            &[
                ("k/kustomization.yaml", "resources: [r.yaml]\n"),
                ("k/r.yaml", R),
            ],
            "k",
        );
        assert_eq!(
            kinds(&out),
            [
                "Namespace",
                "ConfigMap",
                "Deployment",
                "ValidatingWebhookConfiguration"
            ]
        );
    }

    #[test]
    fn fifo_keeps_load_order() {
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "sortOptions:\n  order: fifo\nresources: [r.yaml]\n",
                ),
                ("k/r.yaml", R),
            ],
            "k",
        );
        assert_eq!(
            kinds(&out),
            [
                "Deployment",
                "Namespace",
                "ValidatingWebhookConfiguration",
                "ConfigMap"
            ]
        );
    }
}
