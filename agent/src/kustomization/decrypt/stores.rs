//! The file formats SOPS writes (its "stores"): YAML and JSON documents with a top-level
//! `sops` key, dotenv files with flattened `sops_*` lines, and the binary store (a JSON
//! envelope whose `data` key holds the whole file).

use serde_json::{Map, Value};

use super::Error;
use super::keys::Keys;
use super::tree::{self, Metadata, Walk};

/// A SOPS store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Binary,
}

impl Format {
    /// SOPS' choice by file name (`FormatForPath`), with Flux's exception that a
    /// `.dockerconfigjson` key is JSON.
    pub fn for_path(path: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else if lower.ends_with(".json") || lower.ends_with(".dockerconfigjson") {
            Format::Json
        } else if lower.ends_with(".env") {
            Format::Dotenv
        } else {
            Format::Binary
        }
    }

    /// Bytes only an encrypted file of this format contains (kustomize-controller's
    /// markers): a plain file is left alone.
    pub fn marker(self) -> &'static [u8] {
        match self {
            Format::Yaml => b"mac: ENC[",
            Format::Json | Format::Binary => b"\"mac\": \"ENC[",
            Format::Dotenv => b"sops_mac=ENC[",
        }
    }

    /// The format whose marker `data` contains, if any.
    pub fn detect(data: &[u8]) -> Option<Format> {
        [Format::Yaml, Format::Json, Format::Dotenv]
            .into_iter()
            .find(|format| contains(data, format.marker()))
    }

    fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Dotenv => "dotenv",
            Format::Binary => "binary",
        }
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A decrypted document: dotenv keeps its comments and order, the others are a map.
enum Plain {
    Tree(Value),
    Dotenv(Vec<DotenvLine>),
}

enum DotenvLine {
    Pair(String, String),
    Comment(String),
}

/// Decrypts a whole file written by SOPS in format `input` and prints it in `output`,
/// verifying its MAC (the file is as SOPS wrote it, so the MAC must hold).
pub fn decrypt_file(
    data: &[u8],
    input: Format,
    output: Format,
    keys: &Keys,
) -> Result<Vec<u8>, Error> {
    let plain = match input {
        Format::Dotenv => decrypt_dotenv(data, keys)?,
        Format::Yaml | Format::Json | Format::Binary => {
            let document = load_document(data, input)?;
            let (branch, metadata) = split_metadata(document)?;
            let key = keys.data_key(&metadata)?;
            let (value, mac) = tree::decrypt_branch(branch, &metadata, &key)?;
            tree::verify_mac(&metadata, &key, &mac)?;
            Plain::Tree(value)
        }
    };
    emit(plain, output)
}

/// Parses one YAML or JSON document, keeping key order (the MAC depends on it).
pub fn load_document(data: &[u8], format: Format) -> Result<Value, Error> {
    let text = std::str::from_utf8(data)
        .map_err(|_| Error::Load(format!("{} data is not UTF-8", format.name())))?;
    let load = |e: String| {
        Error::Load(format!(
            "failed to load encrypted {} data: {e}",
            format.name()
        ))
    };
    match format {
        Format::Json | Format::Binary => {
            serde_json::from_str(text).map_err(|e| load(e.to_string()))
        }
        Format::Yaml | Format::Dotenv => {
            let mut documents = yaml_documents(text).map_err(load)?;
            if documents.len() > 1 {
                return Err(load("multi-document YAML files are not supported".into()));
            }
            documents.pop().ok_or_else(|| load("empty document".into()))
        }
    }
}

/// The documents of a YAML text in their key order (the kustomize engine's JSON view
/// sorts keys, as Go does, which would change the MAC).
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// Splits the `sops` block off a document.
pub fn split_metadata(document: Value) -> Result<(Value, Metadata), Error> {
    let Value::Object(mut map) = document else {
        return Err(Error::Load("the document is not a map".into()));
    };
    let block = map
        .shift_remove("sops")
        .ok_or_else(|| Error::Load("sops metadata not found".into()))?;
    Ok((Value::Object(map), Metadata::from_value(&block)?))
}

fn decrypt_dotenv(data: &[u8], keys: &Keys) -> Result<Plain, Error> {
    let text =
        std::str::from_utf8(data).map_err(|_| Error::Load("dotenv data is not UTF-8".into()))?;
    let mut lines = Vec::new();
    let mut flat = Map::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            lines.push(DotenvLine::Comment(comment.to_string()));
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| Error::Load("invalid dotenv input line".into()))?;
        let value = value.replace("\\n", "\n");
        match key.strip_prefix("sops_") {
            Some(meta) => {
                flat.insert(meta.to_string(), Value::String(value));
            }
            None => lines.push(DotenvLine::Pair(key.to_string(), value)),
        }
    }
    if flat.is_empty() {
        return Err(Error::Load("sops metadata not found".into()));
    }
    let metadata = Metadata::from_value(&unflatten(flat))?;
    let key = keys.data_key(&metadata)?;
    let mut walk = Walk::new(&metadata, &key);
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        out.push(match line {
            DotenvLine::Comment(c) => DotenvLine::Comment(walk.comment(&c, &[])),
            DotenvLine::Pair(k, v) => {
                let path = [k];
                let plain = walk.leaf(Value::String(v), &path)?;
                let [k] = path;
                DotenvLine::Pair(k, value_text(tree::plain_to_value(plain)))
            }
        });
    }
    tree::verify_mac(&metadata, &key, &walk.finish())?;
    Ok(Plain::Dotenv(out))
}

/// SOPS flattens nested metadata for dotenv: `age__list_0__map_enc` is `age[0].enc`.
fn unflatten(flat: Map<String, Value>) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in flat {
        let mut node = &mut root;
        let mut rest = key.as_str();
        loop {
            let (head, tail) = match (rest.find("__list_"), rest.find("__map_")) {
                (Some(l), Some(m)) if l < m => (&rest[..l], Some(&rest[l..])),
                (Some(l), None) => (&rest[..l], Some(&rest[l..])),
                (_, Some(m)) => (&rest[..m], Some(&rest[m..])),
                (None, None) => (rest, None),
            };
            match tail {
                None => {
                    insert_path(node, head, value);
                    break;
                }
                Some(tail) => {
                    if let Some(after) = tail.strip_prefix("__list_") {
                        let digits = after
                            .find(|c: char| !c.is_ascii_digit())
                            .unwrap_or(after.len());
                        let index: usize = after[..digits].parse().unwrap_or(0);
                        node = list_entry(node, head, index);
                        rest = after[digits..]
                            .strip_prefix("__map_")
                            .unwrap_or(&after[digits..]);
                    } else {
                        let after = tail.strip_prefix("__map_").unwrap_or(tail);
                        node = map_entry(node, head);
                        rest = after;
                    }
                }
            }
        }
    }
    root
}

fn insert_path(node: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = node {
        map.insert(key.to_string(), value);
    }
}

fn map_entry<'v>(node: &'v mut Value, key: &str) -> &'v mut Value {
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    match node {
        Value::Object(map) => map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new())),
        other => other,
    }
}

fn list_entry<'v>(node: &'v mut Value, key: &str, index: usize) -> &'v mut Value {
    let list = map_entry(node, key);
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    match list {
        Value::Array(items) => {
            while items.len() <= index {
                items.push(Value::Object(Map::new()));
            }
            &mut items[index]
        }
        other => other,
    }
}

fn value_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// JSON as SOPS prints a plain document for Flux: Go's `json.Indent` with tabs, Go's
/// escaping of `<`, `>`, `&`, U+2028 and U+2029, and a final newline. Generated Secrets
/// hash their content into their name, so the bytes matter.
fn go_json_indented(value: &Value) -> Result<Vec<u8>, serde_json::Error> {
    use serde::Serialize as _;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer)?;
    // These characters only occur inside strings in serialized JSON.
    let text = String::from_utf8_lossy(&out)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    Ok(bytes)
}

/// YAML close to what SOPS prints with go-yaml v3 for Flux: four-space indentation,
/// sequences indented under their key, long lines left unfolded, multi-line strings as
/// literal blocks.
fn go_yaml(value: &Value) -> Result<Vec<u8>, serde_saphyr::SerializeError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.indent_step = 4;
    options.compact_list_indent = false;
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, options).map(String::into_bytes)
}

fn emit(plain: Plain, output: Format) -> Result<Vec<u8>, Error> {
    let emit_error = |reason: String| Error::Emit {
        format: output.name(),
        reason,
    };
    let tree = |plain: Plain| match plain {
        Plain::Tree(value) => value,
        Plain::Dotenv(lines) => Value::Object(
            lines
                .into_iter()
                .filter_map(|line| match line {
                    DotenvLine::Pair(k, v) => Some((k, Value::String(v))),
                    DotenvLine::Comment(_) => None,
                })
                .collect(),
        ),
    };
    match output {
        Format::Yaml => go_yaml(&tree(plain)).map_err(|e| emit_error(e.to_string())),
        Format::Json => go_json_indented(&tree(plain)).map_err(|e| emit_error(e.to_string())),
        Format::Binary => match tree(plain).get("data") {
            Some(Value::String(data)) => Ok(data.clone().into_bytes()),
            _ => Err(emit_error("no string 'data' key".into())),
        },
        Format::Dotenv => {
            let lines = match plain {
                Plain::Dotenv(lines) => lines,
                Plain::Tree(Value::Object(map)) => map
                    .into_iter()
                    .map(|(k, v)| DotenvLine::Pair(k, value_text(v)))
                    .collect(),
                Plain::Tree(_) => return Err(emit_error("the document is not a map".into())),
            };
            let mut out = String::new();
            for line in lines {
                match line {
                    DotenvLine::Comment(c) => out.push_str(&format!("#{c}\n")),
                    DotenvLine::Pair(k, v) => {
                        out.push_str(&format!("{k}={}\n", v.replace('\n', "\\n")))
                    }
                }
            }
            Ok(out.into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattened_dotenv_metadata_nests_again() {
        let mut flat = Map::new();
        flat.insert("age__list_0__map_enc".into(), json!("E"));
        flat.insert("age__list_0__map_recipient".into(), json!("R"));
        flat.insert("mac".into(), json!("M"));
        assert_eq!(
            unflatten(flat),
            json!({"age": [{"enc": "E", "recipient": "R"}], "mac": "M"})
        );
    }

    #[test]
    fn json_is_printed_as_go_indents_and_escapes_it() {
        let printed = go_json_indented(&json!({"a": "<b&c>", "n": [1, {}]}))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        assert_eq!(
            printed.as_deref(),
            Some("{\n\t\"a\": \"\\u003cb\\u0026c\\u003e\",\n\t\"n\": [\n\t\t1,\n\t\t{}\n\t]\n}\n")
        );
    }

    #[test]
    fn yaml_is_printed_with_go_yaml_layout() {
        let long = "x ".repeat(60);
        let printed =
            go_yaml(&json!({"db": {"hosts": ["a", "b"], "cert": "l1\nl2\n", "long": long.trim()}}))
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default();
        assert_eq!(
            printed,
            format!(
                "db:\n    hosts:\n        - a\n        - b\n    cert: |\n        l1\n        l2\n    long: {}\n",
                long.trim()
            )
        );
    }

    #[test]
    fn formats_follow_the_file_name_and_markers() {
        assert_eq!(Format::for_path("a/secret.yml"), Format::Yaml);
        assert_eq!(Format::for_path(".dockerconfigjson"), Format::Json);
        assert_eq!(Format::for_path("app.env"), Format::Dotenv);
        assert_eq!(Format::for_path("key.txt"), Format::Binary);
        assert_eq!(
            Format::detect(b"a=1\nsops_mac=ENC[x]"),
            Some(Format::Dotenv)
        );
        assert_eq!(Format::detect(b"plain: text"), None);
    }
}
