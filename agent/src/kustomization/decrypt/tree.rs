//! A SOPS document: its `sops` metadata block, which values are encrypted (the
//! `*_suffix` / `*_regex` rules), and the walk that decrypts the values in document order
//! while hashing them into the MAC.

use regex::Regex;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha512};

use super::Error;
use super::cipher::{self, Plain};

/// SOPS seeds the MAC with these bytes when `mac_only_encrypted` is set, so the two kinds
/// of MAC never collide.
const MAC_ONLY_ENCRYPTED_SEED: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// One age recipient and the data key sealed to it (an armored age file).
#[derive(Debug, Clone)]
pub struct AgeStanza {
    pub recipient: String,
    pub enc: String,
}

/// One PGP key and the data key encrypted to it (an armored OpenPGP message).
#[derive(Debug, Clone)]
pub struct PgpStanza {
    pub fingerprint: String,
    pub enc: String,
}

/// Master keys that each hold the whole data key (or, with several groups, a share).
#[derive(Debug, Clone, Default)]
pub struct KeyGroup {
    pub age: Vec<AgeStanza>,
    pub pgp: Vec<PgpStanza>,
}

/// The `sops` block of a document, as far as decryption needs it.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub last_modified: String,
    pub mac: String,
    pub mac_only_encrypted: bool,
    /// The key groups (the top-level lists form the only group).
    pub key_groups: Vec<KeyGroup>,
    /// Master key kinds present that we cannot use (kms, hc_vault, ...), for the error message.
    pub other_keys: Vec<&'static str>,
    rules: Rules,
}

#[derive(Debug, Clone, Default)]
struct Rules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
    /// Comment rules depend on comments the build output no longer has: values are then
    /// judged by their shape.
    by_comments: bool,
}

const OTHER_KEY_KINDS: [(&str, &str); 5] = [
    ("kms", "kms"),
    ("gcp_kms", "gcp_kms"),
    ("azure_kv", "azure_kv"),
    ("hc_vault", "hc_vault"),
    ("hckms", "hckms"),
];

impl Metadata {
    /// Reads a `sops` block. Values may be strings where YAML/JSON would have other types
    /// (the dotenv store flattens everything to strings).
    pub fn from_value(block: &Value) -> Result<Metadata, Error> {
        let map = block
            .as_object()
            .ok_or_else(|| Error::Load("sops metadata is not a map".into()))?;
        let text = |key: &str| -> Option<String> {
            match map.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            }
        };
        let regex = |key: &str| -> Result<Option<Regex>, Error> {
            text(key)
                .map(|r| Regex::new(&r).map_err(|e| Error::Load(format!("invalid {key}: {e}"))))
                .transpose()
        };
        let mac = text("mac").ok_or_else(|| Error::Load("no MAC in sops metadata".into()))?;
        let last_modified = text("lastmodified")
            .ok_or_else(|| Error::Load("no lastmodified in sops metadata".into()))?;
        let mac_only_encrypted = match map.get("mac_only_encrypted") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let mut other_keys = Vec::new();
        let mut key_groups = Vec::new();
        match map.get("key_groups").and_then(Value::as_array) {
            Some(groups) if !groups.is_empty() => {
                for group in groups {
                    key_groups.push(key_group(group));
                    note_other_keys(group, &mut other_keys);
                }
            }
            _ => {
                key_groups.push(key_group(block));
                note_other_keys(block, &mut other_keys);
            }
        }
        Ok(Metadata {
            last_modified,
            mac,
            mac_only_encrypted,
            key_groups,
            other_keys,
            rules: Rules {
                unencrypted_suffix: text("unencrypted_suffix"),
                encrypted_suffix: text("encrypted_suffix"),
                unencrypted_regex: regex("unencrypted_regex")?,
                encrypted_regex: regex("encrypted_regex")?,
                by_comments: text("unencrypted_comment_regex").is_some()
                    || text("encrypted_comment_regex").is_some(),
            },
        })
    }

    /// Whether the value at `path` is stored encrypted (SOPS' `shouldBeEncrypted` without
    /// comments).
    fn should_be_encrypted(&self, path: &[String]) -> bool {
        let rules = &self.rules;
        let any = |test: &dyn Fn(&str) -> bool| path.iter().any(|p| test(p));
        let mut encrypted = true;
        if let Some(suffix) = &rules.unencrypted_suffix
            && any(&|p| p.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &rules.encrypted_suffix {
            encrypted = any(&|p| p.ends_with(suffix.as_str()));
        }
        if let Some(regex) = &rules.unencrypted_regex
            && any(&|p| regex.is_match(p))
        {
            encrypted = false;
        }
        if let Some(regex) = &rules.encrypted_regex {
            encrypted = any(&|p| regex.is_match(p));
        }
        encrypted
    }

    /// The MAC's additional data: `lastmodified` as Go's `time.RFC3339` prints it.
    fn mac_additional_data(&self) -> String {
        rfc3339_seconds(&self.last_modified)
    }
}

fn key_group(group: &Value) -> KeyGroup {
    let entries = |field: &str| -> Vec<(String, String)> {
        let name = if field == "age" { "recipient" } else { "fp" };
        group
            .get(field)
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| {
                        Some((
                            e.get(name)?.as_str()?.to_string(),
                            e.get("enc")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    KeyGroup {
        age: entries("age")
            .into_iter()
            .map(|(recipient, enc)| AgeStanza { recipient, enc })
            .collect(),
        pgp: entries("pgp")
            .into_iter()
            .map(|(fingerprint, enc)| PgpStanza { fingerprint, enc })
            .collect(),
    }
}

fn note_other_keys(group: &Value, found: &mut Vec<&'static str>) {
    for (field, name) in OTHER_KEY_KINDS {
        let present = group
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(|keys| !keys.is_empty());
        if present && !found.contains(&name) {
            found.push(name);
        }
    }
}

/// Go parses `lastmodified` into a time and formats it back with `time.RFC3339`, which
/// drops fractional seconds; SOPS itself writes whole seconds, so this is usually a no-op.
fn rfc3339_seconds(text: &str) -> String {
    match text.find('.') {
        Some(dot) => {
            let rest = &text[dot + 1..];
            let zone = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            format!("{}{}", &text[..dot], &rest[zone..])
        }
        None => text.to_string(),
    }
}

/// Decrypts every value of `branch` (the document without its `sops` key) in document
/// order and returns it with the MAC SOPS would compute over it.
pub fn decrypt_branch(
    branch: Value,
    metadata: &Metadata,
    key: &[u8],
) -> Result<(Value, String), Error> {
    let mut walk = Walk::new(metadata, key);
    let mut path = Vec::new();
    let value = walk.value(branch, &mut path)?;
    Ok((value, walk.finish()))
}

/// Checks a computed MAC against the document's own (itself encrypted under the data key,
/// with `lastmodified` as additional data, so it cannot be swapped either).
pub fn verify_mac(metadata: &Metadata, key: &[u8], computed: &str) -> Result<(), Error> {
    let stored = cipher::decrypt(&metadata.mac, key, &metadata.mac_additional_data())
        .map_err(|e| Error::Integrity(e.to_string()))?;
    match stored {
        Plain::Str(stored) if stored.eq_ignore_ascii_case(computed) => Ok(()),
        Plain::Str(_) => Err(Error::MacMismatch),
        _ => Err(Error::Integrity("MAC has an unexpected type".into())),
    }
}

/// Walks leaves in document order; also used for stores whose branches are not a `Value`
/// (dotenv) through [`Walk::leaf`] and [`Walk::comment`].
pub struct Walk<'a> {
    metadata: &'a Metadata,
    key: &'a [u8],
    hash: Sha512,
}

impl<'a> Walk<'a> {
    pub fn new(metadata: &'a Metadata, key: &'a [u8]) -> Walk<'a> {
        let mut hash = Sha512::new();
        if metadata.mac_only_encrypted {
            hash.update(MAC_ONLY_ENCRYPTED_SEED);
        }
        Walk {
            metadata,
            key,
            hash,
        }
    }

    /// The MAC over everything walked, as SOPS prints it (upper-case hex).
    pub fn finish(self) -> String {
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    fn value(&mut self, value: Value, path: &mut Vec<String>) -> Result<Value, Error> {
        match value {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    path.push(key);
                    let child = self.value(child, path);
                    let key = path.pop().unwrap_or_default();
                    out.insert(key, child?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .into_iter()
                .map(|item| self.value(item, path))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Null => Ok(Value::Null),
            leaf => Ok(plain_to_value(self.leaf(leaf, path)?)),
        }
    }

    /// Decrypts one leaf if the rules say it is encrypted, and hashes it into the MAC.
    pub fn leaf(&mut self, leaf: Value, path: &[String]) -> Result<Plain, Error> {
        let encrypted = match (&leaf, self.metadata.rules.by_comments) {
            (Value::String(s), true) => cipher::is_encrypted_value(s),
            (_, true) => false,
            (_, false) => self.metadata.should_be_encrypted(path),
        };
        let plain = if encrypted {
            let Value::String(text) = &leaf else {
                return Err(Error::Tree(format!(
                    "expected an encrypted value as string at '{}'",
                    path.join(".")
                )));
            };
            cipher::decrypt(text, self.key, &additional_data(path)).map_err(|e| {
                Error::Tree(format!(
                    "could not decrypt value at '{}': {e}",
                    path.join(".")
                ))
            })?
        } else {
            value_to_plain(leaf)
        };
        if !self.metadata.mac_only_encrypted || encrypted {
            self.hash.update(plain.mac_bytes());
        }
        Ok(plain)
    }

    /// A comment: decrypted when it opens (older SOPS left comments in the clear), never
    /// part of the MAC.
    pub fn comment(&mut self, text: &str, path: &[String]) -> String {
        if !cipher::is_encrypted_value(text) {
            return text.to_string();
        }
        match cipher::decrypt(text, self.key, &additional_data(path)) {
            Ok(Plain::Comment(c) | Plain::Str(c)) => c,
            _ => text.to_string(),
        }
    }
}

fn additional_data(path: &[String]) -> String {
    let mut data = path.join(":");
    data.push(':');
    data
}

fn value_to_plain(value: Value) -> Plain {
    match value {
        Value::String(s) => Plain::Str(s),
        Value::Bool(b) => Plain::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Plain::Int(i),
            // u64 beyond i64 and floats: Go would hold them as float64.
            None => Plain::Float(n.as_f64().unwrap_or_default()),
        },
        // Containers and null never reach a leaf.
        other => Plain::Str(other.to_string()),
    }
}

/// How a decrypted value appears in the emitted document.
pub fn plain_to_value(plain: Plain) -> Value {
    match plain {
        Plain::Str(s) | Plain::Time(s) | Plain::Comment(s) => Value::String(s),
        Plain::Int(i) => Value::Number(i.into()),
        Plain::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Plain::Bool(b) => Value::Bool(b),
        Plain::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(extra: Value) -> Metadata {
        let mut block = json!({"mac": "ENC[x]", "lastmodified": "2024-11-12T13:33:42Z"});
        if let (Some(b), Some(e)) = (block.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Metadata::from_value(&block).unwrap_or_else(|e| panic!("{e}"))
    }

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn rules_follow_sops_precedence() {
        let all = metadata(json!({}));
        assert!(all.should_be_encrypted(&path(&["metadata", "name"])));
        let regex = metadata(json!({"encrypted_regex": "^(data|stringData)$"}));
        assert!(regex.should_be_encrypted(&path(&["data", "password"])));
        assert!(!regex.should_be_encrypted(&path(&["metadata", "name"])));
        let suffix = metadata(json!({"unencrypted_suffix": "_unencrypted"}));
        assert!(!suffix.should_be_encrypted(&path(&["user_unencrypted"])));
        assert!(suffix.should_be_encrypted(&path(&["password"])));
        let encrypted_suffix = metadata(json!({"encrypted_suffix": "_secret"}));
        assert!(encrypted_suffix.should_be_encrypted(&path(&["db", "pw_secret"])));
        assert!(!encrypted_suffix.should_be_encrypted(&path(&["db", "host"])));
    }

    #[test]
    fn lastmodified_loses_fractional_seconds_like_go_rfc3339() {
        assert_eq!(
            rfc3339_seconds("2024-11-12T13:33:42Z"),
            "2024-11-12T13:33:42Z"
        );
        assert_eq!(
            rfc3339_seconds("2024-11-12T13:33:42.123456+02:00"),
            "2024-11-12T13:33:42+02:00"
        );
    }
}
