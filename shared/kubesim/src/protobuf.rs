//! Decoding of the Kubernetes protobuf envelope for the few kinds `kubectl create` sends as
//! protobuf (its typed clients prefer `application/vnd.kubernetes.protobuf`): Namespace,
//! ConfigMap, Secret and ServiceAccount, with their ObjectMeta. Other kinds are answered 415, so
//! clients that can fall back to JSON do.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};

const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message.
#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> ApiResult<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("varint too long"))
}

fn bad(why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {why}"))
}

fn fields(buf: &[u8]) -> ApiResult<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| bad("truncated field"))?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return Err(bad("unsupported wire type")),
        }
    }
    Ok(out)
}

fn string(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

fn map_entry(b: &[u8], bytes_value: bool) -> ApiResult<(String, Value)> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = string(x)?,
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(x)),
                2 => v = Value::String(string(x)?),
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn object_meta(b: &[u8]) -> ApiResult<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            // proto2 writes empty strings; they mean unset.
            (n @ (1 | 2 | 3 | 6), Field::Bytes(x)) if !x.is_empty() => {
                let key = match n {
                    1 => "name",
                    2 => "generateName",
                    3 => "namespace",
                    _ => "resourceVersion",
                };
                m.insert(key.into(), json!(string(x)?));
            }
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                labels.insert(k, v);
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                annotations.insert(k, v);
            }
            (14, Field::Bytes(x)) => finalizers.push(json!(string(x)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

/// Decodes a protobuf request body into the JSON form of the object.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = string(x)?,
                        (2, Field::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let unsupported = || ApiError::unsupported_media(&["application/json", "application/yaml"]);
    if api_version != "v1" {
        return Err(unsupported());
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let mut data = Map::new();
    let mut binary = Map::new();
    for (n, f) in fields(raw)? {
        match (kind.as_str(), n, f) {
            (_, 1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            ("Namespace", 2, Field::Bytes(x)) => {
                let fins: Vec<Value> = fields(x)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => string(s).ok().map(Value::String),
                        _ => None,
                    })
                    .collect();
                if !fins.is_empty() {
                    obj["spec"] = json!({"finalizers": fins});
                }
            }
            ("ConfigMap", 2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3, Field::Bytes(x)) | ("Secret", 2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, true)?;
                if kind == "Secret" {
                    data.insert(k, v);
                } else {
                    binary.insert(k, v);
                }
            }
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                obj["immutable"] = json!(v != 0)
            }
            // proto2 writes empty strings; an empty type is unset (and defaults to Opaque).
            ("Secret", 3, Field::Bytes(x)) if !x.is_empty() => obj["type"] = json!(string(x)?),
            ("Secret", 4, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                let enc = base64::engine::general_purpose::STANDARD
                    .encode(v.as_str().unwrap_or_default());
                data.insert(k, json!(enc));
            }
            ("Namespace" | "ConfigMap" | "Secret" | "ServiceAccount", _, _) => {}
            _ => return Err(unsupported()),
        }
    }
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        obj["binaryData"] = Value::Object(binary);
    }
    if !matches!(
        kind.as_str(),
        "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
    ) {
        return Err(unsupported());
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(num << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_namespace_envelope_decodes_to_json() {
        let meta = [
            ld(1, b"demo"),
            ld(
                11,
                &[ld(1, b"team").as_slice(), ld(2, b"a").as_slice()].concat(),
            ),
        ]
        .concat();
        let raw = ld(1, &meta);
        let tm = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"team": "a"}}})
        );
    }

    #[test]
    fn truncated_protobuf_is_a_bad_request() {
        let err = decode(b"k8s\0\x0a\x10ab").expect_err("truncated");
        assert_eq!(err.code, 400);
    }
}
