//! JSON bodies read as YAML would read them: the same values, and a duplicate mapping key
//! refused (the YAML reader refuses them, so the JSON fast path must not accept them).

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The value of a JSON document whose mappings have unique keys; `None` for anything else.
pub(super) fn parse_unique_keys(body: &[u8]) -> Option<Value> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = reader.deserialize_any(UniqueKeys).ok()?;
    reader.end().ok()?;
    Some(value)
}

struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate mapping key: {key}")));
            }
            let value = map.next_value_seed(UniqueKeys)?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_documents_read_as_the_yaml_reader_reads_them() {
        let body = br#" {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
            "data": {"k": "v\u00e9"}, "n": [1, -2, 2.5, true, null]} "#;
        let yaml: Value =
            serde_saphyr::from_str(std::str::from_utf8(body).expect("utf-8")).expect("yaml");
        assert_eq!(parse_unique_keys(body), Some(yaml));
    }

    #[test]
    fn duplicate_keys_and_yaml_proper_are_left_to_the_yaml_reader() {
        assert_eq!(parse_unique_keys(br#"{"a": {"b": 1, "b": 2}}"#), None);
        assert_eq!(parse_unique_keys(b"kind: ConfigMap\n"), None);
        assert_eq!(parse_unique_keys(b"{\"a\": 1}\n---\n{}"), None);
    }
}
