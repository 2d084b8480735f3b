//! Strategic merge of associative lists, as kyaml's walker does it (`walk/associative_sequence.go`):
//! the patch's elements come first, merged with the resource's elements of the same key values,
//! then the resource's remaining elements are set into that list one by one. Its quirks are kept
//! (a list element's `$patch: replace` is undone by the resource's element, an element missing a
//! secondary key is appended twice and then deduplicated), because kubectl's output shows them.

use super::smp::{Sch, merge};
use crate::error::Result;
use crate::yaml::Node;

/// The text kyaml compares a field on: a scalar's value, nothing for a collection.
fn text(n: &Node) -> &str {
    match n {
        Node::Scalar(s) => &s.value,
        _ => "",
    }
}

fn is_empty_map(n: &Node) -> bool {
    n.as_map().is_some_and(|m| m.is_empty())
}

/// `ElementValuesList`: each key's value in an element, empty when absent or empty.
fn element_values(e: &Node, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            e.get(k)
                .filter(|v| !v.is_null())
                .map(|v| text(v).to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// `FieldMatcher{Name, StringValue}`: an empty value only asks for the field to exist.
fn field_matches(e: &Node, key: &str, value: &str) -> bool {
    if key.is_empty() {
        return matches!(e, Node::Scalar(_)) && text(e) == value;
    }
    e.get(key)
        .is_some_and(|f| value.is_empty() || text(f) == value)
}

/// `ElementSetter`: replaces the elements matching all key values by `element` (removes them
/// when `None`), or appends it when none matched. Empty elements are dropped on the way.
fn set_element(list: &mut Vec<Node>, element: Option<Node>, keys: &[&str], values: &[String]) {
    let keys: &[&str] = if keys.is_empty() { &[""] } else { keys };
    let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
    let mut matched = false;
    let mut out = Vec::with_capacity(list.len() + 1);
    for e in list.drain(..) {
        if e.is_null() || is_empty_map(&e) {
            continue;
        }
        if !matches!(e, Node::Map(_)) && mapping_setter {
            out.push(e);
            continue;
        }
        // Keys beyond the values reuse the last comparison, as the Go loop does.
        let mut last = false;
        let mut found = true;
        for (j, k) in keys.iter().enumerate() {
            if let Some(v) = values.get(j) {
                last = field_matches(&e, k, v);
            }
            if !last {
                found = false;
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                out.push(e);
            }
            continue;
        }
        matched = true;
        if let Some(el) = &element {
            out.push(el.clone());
        }
    }
    *list = out;
    if let Some(el) = element
        && !el.is_null()
        && !matched
    {
        list.push(el);
    }
}

/// `MatchElementList`: the first element whose fields equal all values exactly.
fn find_element(list: &[Node], keys: &[&str], values: &[String]) -> Option<usize> {
    if keys.first().is_none_or(|k| k.is_empty()) {
        let want = values.first().map(String::as_str).unwrap_or("");
        return list.iter().position(|e| text(e) == want);
    }
    list.iter().position(|e| {
        matches!(e, Node::Map(_))
            && keys
                .iter()
                .zip(values)
                .all(|(k, v)| e.get(k).is_some_and(|f| text(f) == v))
    })
}

/// `validateKeys`: only the keys some element has a value for (all keys when none has any).
fn validate_keys<'k>(
    values_list: &[Vec<String>],
    values: &[String],
    keys: &[&'k str],
) -> (Vec<&'k str>, Vec<String>) {
    let valid: Vec<bool> = (0..keys.len())
        .map(|i| {
            values_list
                .iter()
                .any(|vs| vs.get(i).is_some_and(|v| !v.is_empty()))
        })
        .collect();
    if !valid.iter().any(|v| *v) {
        return (keys.to_vec(), values.to_vec());
    }
    let vk = keys
        .iter()
        .zip(&valid)
        .filter(|(_, ok)| **ok)
        .map(|(k, _)| *k)
        .collect();
    let vv = values
        .iter()
        .zip(&valid)
        .filter(|(v, ok)| !v.is_empty() || **ok)
        .map(|(v, _)| v.clone())
        .collect();
    (vk, vv)
}

/// `mergeValues`: key tuples equal but for empty parts name the same element.
fn merge_values(list: &mut [Vec<String>]) {
    for i in 0..list.len() {
        // Go's range copies the outer element once; updates to it show only in later rounds.
        let a = list[i].clone();
        for j in 0..list.len() {
            let (a, b) = (&a, &list[j]);
            if a.len() != b.len() {
                continue;
            }
            let mut common = false;
            let mut res = Vec::with_capacity(a.len());
            let mut ok = true;
            for (x, y) in a.iter().zip(b) {
                if x == y {
                    common = true;
                    res.push(x.clone());
                } else if !x.is_empty() && !y.is_empty() {
                    ok = false;
                    break;
                } else {
                    res.push(if x.is_empty() { y.clone() } else { x.clone() });
                }
            }
            if ok && common {
                list[i] = res.clone();
                list[j] = res;
            }
        }
    }
}

fn replaces(patch_elem: Option<&Node>) -> bool {
    patch_elem
        .and_then(|e| e.get("$patch"))
        .and_then(Node::as_str)
        == Some("replace")
}

/// A list element without its own `$patch` key (nested ones stay).
fn without_directive(e: &Node) -> Node {
    match e {
        Node::Map(entries) => Node::Map(
            entries
                .iter()
                .filter(|(k, _)| k != "$patch")
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How the patch's elements relate to the resource's.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Sides {
    /// A patch list merged into the resource's list.
    Apart,
    /// A list new to the resource: kyaml merges it with itself, one node on both sides, so a
    /// directive it reads from the patch side is gone from the resource side too.
    Shared,
}

/// Merges patch elements `src` into the resource's `dest` elements by `keys` (no keys: a list
/// of scalars merged by value). With [`Sides::Shared`], `dest` is the list itself and `src`
/// is ignored.
pub(super) fn merge_list(
    mut dest: Vec<Node>,
    mut src: Vec<Node>,
    keys: &[&str],
    elem: Sch,
    depth: usize,
    sides: Sides,
) -> Result<Vec<Node>> {
    let shared = sides == Sides::Shared;
    let primitive = keys.is_empty();
    let keys: &[&str] = if primitive { &[""] } else { keys };
    let mut values_list: Vec<Vec<String>> = Vec::new();
    let patch_side: &[Node] = if shared { &[] } else { &src };
    for e in patch_side.iter().chain(dest.iter()) {
        let v = if primitive {
            vec![text(e).to_string()]
        } else {
            element_values(e, keys)
        };
        if !values_list.contains(&v) {
            values_list.push(v);
        }
    }
    if values_list.is_empty() {
        return Ok(dest);
    }
    if keys.len() > 1 {
        merge_values(&mut values_list);
    }
    let mut added: Vec<Node> = Vec::new();
    let mut valid_keys: Vec<&str> = keys.to_vec();
    for values in &values_list {
        let (vk, vv) = validate_keys(&values_list, values, keys);
        valid_keys.clone_from(&vk);
        let (ek, ev) = validate_keys(std::slice::from_ref(values), values, keys);
        let di = find_element(&dest, &ek, &ev);
        let (resource_elem, patch_elem) = if shared {
            let e = di.map(|i| &dest[i]);
            (e.map(without_directive), e.cloned())
        } else {
            let si = find_element(&src, &ek, &ev);
            let patch_elem = si.map(|i| src[i].clone());
            // kyaml reads the directive off the patch's element: a later visit of the same
            // element (key values merged into a repeated tuple) sees none.
            if let Some(i) = si {
                src[i] = without_directive(&src[i]);
            }
            (di.map(|i| dest[i].clone()), patch_elem)
        };
        let in_place = di.is_some() && (shared || !replaces(patch_elem.as_ref()));
        let merged = merge(resource_elem, patch_elem, elem, depth + 1)?;
        let mut val = match merged {
            Some(v) if !v.is_null() && !is_empty_map(&v) => v,
            _ => {
                // The directive was read off the element, which stays if its key values
                // do not find it.
                if let Some(i) = di {
                    dest[i] = without_directive(&dest[i]);
                }
                set_element(&mut dest, None, &vk, &vv);
                continue;
            }
        };
        for (k, v) in vk.iter().zip(&vv) {
            if !k.is_empty() && !v.is_empty() && val.get(k).is_none() {
                val.set(k, Node::plain(v.clone()));
            }
        }
        // kyaml merges into the resource's element itself, which is set back below.
        if in_place && let Some(i) = di {
            dest[i] = val.clone();
        }
        set_element(&mut added, Some(val), &vk, &vv);
    }
    // The resource's elements go after the patch's (kustomize prepends patch elements).
    for e in dest {
        if valid_keys[0].is_empty() {
            let v = vec![text(&e).to_string()];
            set_element(&mut added, Some(e), &[""], &v);
            continue;
        }
        let mut v = Vec::with_capacity(valid_keys.len());
        for k in &valid_keys {
            match e.get(k) {
                Some(f) => v.push(text(f).to_string()),
                None => added.push(e.clone()),
            }
        }
        if valid_keys.len() > 1 {
            set_element(&mut added, None, &valid_keys, &v);
        }
        set_element(&mut added, Some(e), &valid_keys, &v);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use crate::testutil::ok;

    #[test]
    fn a_port_without_protocol_merges_into_its_namesake_after_the_other_ports() {
        let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 53\n    protocol: UDP\n    name: dns\n  - port: 80\n    name: http\n";
        let patch = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 53\n    protocol: TCP\n    name: dns-tcp\n  - port: 80\n    targetPort: 9090\n";
        let out = ok(
            &[
                (
                    "k/kustomization.yaml",
                    "resources: [s.yaml]\npatches:\n- path: p.yaml\n",
                ),
                ("k/s.yaml", svc),
                ("k/p.yaml", patch),
            ],
            "k",
        );
        let order: Vec<&str> = out
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("- name: ")
                    .or(l.trim().strip_prefix("name: "))
            })
            .collect();
        assert!(out.contains("targetPort: 9090"), "{out}");
        assert_eq!(order, ["s", "dns-tcp", "dns", "http"], "{out}");
    }
}
