//! JSON 6902 patches as kustomize applies them: gopkg.in/evanphx/json-patch.v4's `Apply`
//! with its default options (negative indices allowed, no path creation on add, a `replace`
//! of a missing map key adds it), on the object round-tripped through JSON.

use crate::error::{Error, Result};
use crate::resource::ResId;
use crate::yaml::{Node, Tag, go_json};

/// Go's JSON numbers are float64: integers beyond 2^53 come back rounded.
const EXACT_INT_LIMIT: i128 = 1 << 53;

/// RFC 6901 token decoding in one pass, as `strings.NewReplacer("~1", "/", "~0", "~")`.
fn decode_token(tok: &str) -> String {
    let mut out = String::with_capacity(tok.len());
    let mut rest = tok;
    while let Some(i) = rest.find('~') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("~1") {
            out.push('/');
            rest = r;
        } else if let Some(r) = after.strip_prefix("~0") {
            out.push('~');
            rest = r;
        } else {
            out.push('~');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// `strconv.Atoi` then json-patch's negative-index rule against a length.
fn index(key: &str, len: usize) -> std::result::Result<usize, String> {
    let i: i64 = key
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {key:?}: invalid syntax"))?;
    let len = len as i64;
    let invalid = || format!("Unable to access invalid index: {i}: invalid index referenced");
    if i >= len || i < -len {
        return Err(invalid());
    }
    Ok(if i < 0 { i + len } else { i } as usize)
}

/// The container holding the last token of `path` and that token (json-patch's `findObject`):
/// every intermediate step must exist and be a map or a list.
fn find_object<'a>(doc: &'a mut Node, path: &str) -> Option<(&'a mut Node, String)> {
    let parts: Vec<&str> = path.split('/').collect();
    let (last, middle) = parts.split_last()?;
    let middle = middle.get(1..)?;
    let mut cur = doc;
    for part in middle {
        let part = decode_token(part);
        cur = match cur {
            Node::Map(_) => cur.get_mut(&part)?,
            Node::Seq(items) => {
                let i = index(&part, items.len()).ok()?;
                items.get_mut(i)?
            }
            Node::Scalar(_) => return None,
        };
        if cur.is_null() || matches!(cur, Node::Scalar(_)) {
            return None;
        }
    }
    Some((cur, decode_token(last)))
}

/// The value at `key` of a container: a missing map key (or a null) is `None`, as json-patch's
/// `partialDoc.get` returns nil without error.
fn get(con: &Node, key: &str) -> std::result::Result<Option<Node>, String> {
    match con {
        Node::Seq(items) => Ok(Some(items[index(key, items.len())?].clone())),
        _ => Ok(con.get(key).filter(|v| !v.is_null()).cloned()),
    }
}

fn add_to(con: &mut Node, key: &str, value: Node) -> std::result::Result<(), String> {
    match con {
        Node::Seq(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let i = index(key, items.len() + 1).map_err(|e| {
                if e.starts_with("strconv") {
                    format!("value was not a proper array index: '{key}': {e}")
                } else {
                    e
                }
            })?;
            items.insert(i, value);
            Ok(())
        }
        _ => {
            con.set(key, value);
            Ok(())
        }
    }
}

fn remove_from(con: &mut Node, key: &str) -> std::result::Result<Node, String> {
    match con {
        Node::Seq(items) => {
            let i = index(key, items.len())?;
            Ok(items.remove(i))
        }
        _ => con
            .remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value")),
    }
}

fn json_equal(a: Option<&Node>, b: Option<&Node>) -> bool {
    let text = |n: Option<&Node>| n.filter(|n| !n.is_null()).map(|n| go_json(n).ok());
    text(a) == text(b)
}

/// go-yaml v2 reads these plain words as booleans (`sigs.k8s.io/yaml.YAMLToJSON` of a patch
/// written in YAML); go-yaml v3 reads them as strings.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// The operations as `YAMLToJSON` hands them to json-patch.
fn as_yaml11(n: &mut Node) {
    match n {
        Node::Scalar(s) => {
            // go-yaml v2 leaves a plain timestamp as its text.
            if s.tag == Tag::Timestamp {
                s.tag = Tag::Str;
                s.quoted = true;
                return;
            }
            // The reader tags plain scalars by their YAML 1.2 reading; these read as strings.
            if matches!(s.tag, Tag::Implicit | Tag::Str)
                && !s.quoted
                && let Some(b) = yaml11_bool(&s.value)
            {
                s.value = b.to_string();
                s.tag = Tag::Bool;
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(as_yaml11),
        Node::Map(entries) => entries.iter_mut().for_each(|(_, v)| as_yaml11(v)),
    }
}

/// What the JSON round trip does to a patched object: integers lose precision past 2^53.
fn round_trip_numbers(n: &mut Node) {
    match n {
        Node::Scalar(s) => {
            if matches!(s.tag, Tag::Implicit | Tag::Int)
                && !s.quoted
                && let crate::yaml::Resolved::Int(i) = crate::yaml::resolve_v3(&s.value)
                && !(-EXACT_INT_LIMIT..=EXACT_INT_LIMIT).contains(&i)
            {
                s.value = format!("{}", i as f64);
            }
        }
        Node::Seq(items) => items.iter_mut().for_each(round_trip_numbers),
        Node::Map(entries) => entries.iter_mut().for_each(|(_, v)| round_trip_numbers(v)),
    }
}

/// kustomize rewrites the annotations after a JSON patch (`SetAnnotations`): every value as a
/// string, and no field at all when none is left.
fn reset_annotations(doc: &mut Node) {
    let Some(meta) = doc.get_mut("metadata") else {
        return;
    };
    let Some(ann) = meta.get_mut("annotations") else {
        return;
    };
    match ann.as_map_mut() {
        Some(entries) if !entries.is_empty() => {
            for (_, v) in entries.iter_mut() {
                let text = v.as_str().unwrap_or("").to_string();
                *v = Node::str(text);
            }
        }
        _ => {
            meta.remove("annotations");
        }
    }
}

fn op_error(op: &str, what: &str, path: &str) -> Error {
    Error::msg(format!(
        "{op} operation does not apply: {what}{path}: missing value"
    ))
}

/// The annotations `StorePreviousId` writes before a `patches` entry's JSON patch runs: the
/// patch sees them (so `/metadata/annotations/x` can be added to an object without
/// annotations), and they are gone from the output.
const PREVIOUS_ID_KEYS: [&str; 3] = [
    "internal.config.kubernetes.io/previousNames",
    "internal.config.kubernetes.io/previousNamespaces",
    "internal.config.kubernetes.io/previousKinds",
];

fn add_previous_id(doc: &mut Node, prev: &[ResId]) {
    let csv = |f: fn(&ResId) -> &str| {
        prev.iter()
            .map(f)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    };
    let values = [
        csv(|id| &id.name),
        csv(|id| &id.namespace),
        csv(|id| &id.gvk.kind),
    ];
    let Some(ann) = doc
        .entry_map("metadata")
        .and_then(|m| m.entry_map("annotations"))
    else {
        return;
    };
    for (key, value) in PREVIOUS_ID_KEYS.iter().zip(values) {
        if !value.is_empty() {
            ann.set(key, Node::str(value));
        }
    }
}

fn drop_previous_id(doc: &mut Node) {
    if let Some(ann) = doc
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .filter(|a| matches!(a, Node::Map(_)))
    {
        for key in PREVIOUS_ID_KEYS {
            ann.remove(key);
        }
    }
}

/// Applies JSON patch operations (a list) to one object whose earlier ids are `prev`.
pub(crate) fn apply(doc: &mut Node, ops: &Node, prev: &[ResId]) -> Result<()> {
    let Some(ops) = ops.as_seq() else {
        return Err(Error::msg("json patch is not a list of operations"));
    };
    let mut ops = ops.clone();
    ops.iter_mut().for_each(as_yaml11);
    if !prev.is_empty() {
        add_previous_id(doc, prev);
    }
    for op in &ops {
        apply_one(doc, op)?;
    }
    if !prev.is_empty() {
        drop_previous_id(doc);
    }
    round_trip_numbers(doc);
    reset_annotations(doc);
    Ok(())
}

fn apply_one(doc: &mut Node, op: &Node) -> Result<()> {
    let kind = op.str_at(&["op"]).unwrap_or("");
    let path = op.get("path").and_then(Node::as_str);
    let value = op.get("value").cloned().unwrap_or_else(Node::null);
    let need_path = |what: &str| {
        path.ok_or_else(|| {
            Error::msg(format!(
                "{what} operation failed to decode path: missing value"
            ))
        })
    };
    match kind {
        "add" => {
            let path = need_path("add")?;
            let (con, key) = find_object(doc, path)
                .ok_or_else(|| op_error("add", "doc is missing path: ", &format!("\"{path}\"")))?;
            add_to(con, &key, value)
                .map_err(|e| Error::msg(format!("error in add for path: '{path}': {e}")))
        }
        "remove" => {
            let path = need_path("remove")?;
            let (con, key) = find_object(doc, path).ok_or_else(|| {
                op_error("remove", "doc is missing path: ", &format!("\"{path}\""))
            })?;
            remove_from(con, &key)
                .map(|_| ())
                .map_err(|e| Error::msg(format!("error in remove for path: '{path}': {e}")))
        }
        "replace" => {
            let path = need_path("replace")?;
            if path.is_empty() {
                if !matches!(value, Node::Map(_) | Node::Seq(_)) {
                    return Err(Error::msg(
                        "replace operation value must be object or array",
                    ));
                }
                *doc = value;
                return Ok(());
            }
            let (con, key) = find_object(doc, path)
                .ok_or_else(|| op_error("replace", "doc is missing path: ", path))?;
            match con {
                Node::Seq(items) => {
                    let i = index(&key, items.len())
                        .map_err(|_| op_error("replace", "doc is missing key: ", path))?;
                    items[i] = value;
                }
                _ => con.set(&key, value),
            }
            Ok(())
        }
        "move" => {
            let from = op
                .get("from")
                .and_then(Node::as_str)
                .ok_or_else(|| Error::msg("move operation failed to decode from: missing value"))?;
            let (con, key) = find_object(doc, from)
                .ok_or_else(|| op_error("move", "doc is missing from path: ", from))?;
            let wrap = |e: String| Error::msg(format!("error in move for path: '{key}': {e}"));
            get(con, &key).map_err(wrap)?;
            let v = remove_from(con, &key).map_err(wrap)?;
            let path = need_path("move")?;
            let (con, key) = find_object(doc, path)
                .ok_or_else(|| op_error("move", "doc is missing destination path: ", path))?;
            add_to(con, &key, v)
                .map_err(|e| Error::msg(format!("error in move for path: '{path}': {e}")))
        }
        "copy" => {
            let from = op
                .get("from")
                .and_then(Node::as_str)
                .ok_or_else(|| Error::msg("copy operation failed to decode from: missing value"))?;
            let (con, key) = find_object(doc, from)
                .ok_or_else(|| op_error("copy", "doc is missing from path: ", from))?;
            let v = get(con, &key)
                .map_err(|e| Error::msg(format!("error in copy for from: '{from}': {e}")))?
                .unwrap_or_else(Node::null);
            let path = need_path("copy")?;
            let (con, key) = find_object(doc, path)
                .ok_or_else(|| op_error("copy", "doc is missing destination path: ", path))?;
            add_to(con, &key, v)
                .map_err(|e| Error::msg(format!("error while adding value during copy: {e}")))
        }
        "test" => {
            let path = need_path("test")?;
            let failed = || Error::msg(format!("testing value {path} failed: test failed"));
            let want = op.get("value");
            if path.is_empty() {
                return if json_equal(Some(doc), want) {
                    Ok(())
                } else {
                    Err(failed())
                };
            }
            let (con, key) = find_object(doc, path)
                .ok_or_else(|| op_error("test", "is missing path: ", path))?;
            let cur = get(con, &key)
                .map_err(|e| Error::msg(format!("error in test for path: '{path}': {e}")))?;
            if json_equal(cur.as_ref(), want) {
                Ok(())
            } else {
                Err(failed())
            }
        }
        other => Err(Error::msg(format!("Unexpected kind: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_in_one_pass() {
        assert_eq!(decode_token("a~1b~0c"), "a/b~c");
        assert_eq!(decode_token("~01"), "~1");
    }

    fn doc(text: &str) -> Node {
        crate::yaml::parse_documents(text, crate::yaml::Limits::default())
            .expect("yaml")
            .into_iter()
            .flatten()
            .next()
            .expect("one document")
    }

    #[test]
    fn replace_adds_a_missing_key_but_add_creates_no_parents() {
        let mut d = doc("spec: {a: 1}\n");
        apply(
            &mut d,
            &doc("- {op: replace, path: /spec/b, value: 2}\n"),
            &[],
        )
        .expect("replace");
        assert_eq!(d.str_at(&["spec", "b"]), Some("2"));
        let err = apply(
            &mut d,
            &doc("- {op: add, path: /spec/x/y, value: 1}\n"),
            &[],
        )
        .expect_err("no parent");
        assert!(
            err.to_string()
                .contains("add operation does not apply: doc is missing path"),
            "{err}"
        );
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        assert_eq!(index("-1", 3), Ok(2));
        assert!(index("3", 3).is_err());
        assert!(index("-4", 3).is_err());
        assert!(index("x", 3).is_err());
    }
}
