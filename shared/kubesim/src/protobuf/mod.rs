//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! kubectl's typed clients send for built-in kinds (`kubectl create deployment`, `create job`,
//! `create role` ...). The envelope names the kind; the message is read field by field through a
//! table generated from the Go types, and written as the JSON the API server would have stored:
//! Go's `omitempty` drops zero scalars that proto2 always writes, non-pointer structs stay as
//! `{}`, and the special types (Time, Quantity, IntOrString, RawExtension) take their JSON forms.
//! Kinds outside the table (custom resources are never sent as protobuf) are answered 415.

mod schema;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};
use schema::{FieldDef, Type};

const MAGIC: &[u8] = b"k8s\0";

/// Deeper nesting than any built-in kind has means a hostile body.
const MAX_DEPTH: usize = 64;

/// One field of a protobuf message.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
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
            1 => {
                let bytes = buf
                    .get(pos..pos + 8)
                    .ok_or_else(|| bad("truncated field"))?;
                let mut word = [0u8; 8];
                word.copy_from_slice(bytes);
                out.push((num, Field::Fixed64(u64::from_le_bytes(word))));
                pos += 8;
            }
            5 => {
                let bytes = buf
                    .get(pos..pos + 4)
                    .ok_or_else(|| bad("truncated field"))?;
                let mut word = [0u8; 4];
                word.copy_from_slice(bytes);
                out.push((num, Field::Fixed32(u32::from_le_bytes(word))));
                pos += 4;
            }
            _ => return Err(bad("unsupported wire type")),
        }
    }
    Ok(out)
}

fn string(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

fn bytes_of<'a>(field: Field<'a>, name: &str) -> ApiResult<&'a [u8]> {
    match field {
        Field::Bytes(b) => Ok(b),
        _ => Err(bad(&format!("field {name} has the wrong wire type"))),
    }
}

fn varint_of(field: Field<'_>, name: &str) -> ApiResult<u64> {
    match field {
        Field::Varint(v) => Ok(v),
        _ => Err(bad(&format!("field {name} has the wrong wire type"))),
    }
}

/// The first value of each numbered field of a small fixed message (Time, Quantity ...).
fn small_message(b: &[u8]) -> ApiResult<[Option<Field<'_>>; 4]> {
    let mut out = [None; 4];
    for (n, f) in fields(b)? {
        if let Some(slot) = usize::try_from(n).ok().and_then(|n| out.get_mut(n)) {
            *slot = Some(f);
        }
    }
    Ok(out)
}

/// Go's time.Duration.String() for a whole number of nanoseconds (`1h2m3s`, `1.5s`, `0s`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, scale) = match n {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(n, scale));
    }
    let (hours, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = fraction(rest, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

fn fraction(value: u64, scale: u64) -> String {
    let (whole, part) = (value / scale, value % scale);
    if part == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let text = format!("{part:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

fn timestamp(b: &[u8], micro: bool) -> ApiResult<Value> {
    let [_, seconds, nanos, _] = small_message(b)?;
    let seconds = seconds
        .map(|f| varint_of(f, "seconds"))
        .transpose()?
        .unwrap_or(0) as i64;
    let nanos = nanos
        .map(|f| varint_of(f, "nanos"))
        .transpose()?
        .unwrap_or(0) as u32;
    if seconds == 0 && nanos == 0 {
        // A zero metav1.Time marshals as null, which the object's JSON leaves out.
        return Ok(Value::Null);
    }
    let time = chrono::DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| bad("timestamp out of range"))?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(json!(time.format(format).to_string()))
}

fn embedded_json(b: &[u8]) -> ApiResult<Value> {
    let [_, raw, _, _] = small_message(b)?;
    match raw {
        None => Ok(Value::Null),
        Some(f) => serde_json::from_slice(bytes_of(f, "raw")?)
            .map_err(|e| bad(&format!("embedded object is not JSON: {e}"))),
    }
}

fn int_or_string(b: &[u8]) -> ApiResult<Value> {
    let [_, kind, int_value, str_value] = small_message(b)?;
    if kind.map(|f| varint_of(f, "type")).transpose()? == Some(1) {
        let text = str_value
            .map(|f| bytes_of(f, "strVal"))
            .transpose()?
            .unwrap_or_default();
        return Ok(json!(string(text)?));
    }
    let value = int_value
        .map(|f| varint_of(f, "intVal"))
        .transpose()?
        .unwrap_or(0);
    Ok(json!(value as i64 as i32))
}

/// One value of a field, as JSON. Null means "leave the field out".
fn value(field: Field<'_>, kind: &Type, def_name: &str, depth: usize) -> ApiResult<Value> {
    Ok(match kind {
        Type::Str => json!(string(bytes_of(field, def_name)?)?),
        Type::Int => json!(varint_of(field, def_name)? as i64),
        Type::Bool => json!(varint_of(field, def_name)? != 0),
        Type::Float => match field {
            Field::Fixed64(bits) => json!(f64::from_bits(bits)),
            Field::Fixed32(bits) => json!(f32::from_bits(bits)),
            _ => return Err(bad(&format!("field {def_name} has the wrong wire type"))),
        },
        Type::Bytes => {
            json!(base64::engine::general_purpose::STANDARD.encode(bytes_of(field, def_name)?))
        }
        Type::Time => timestamp(bytes_of(field, def_name)?, false)?,
        Type::MicroTime => timestamp(bytes_of(field, def_name)?, true)?,
        Type::Duration => {
            let [_, nanos, _, _] = small_message(bytes_of(field, def_name)?)?;
            let nanos = nanos
                .map(|f| varint_of(f, "duration"))
                .transpose()?
                .unwrap_or(0);
            json!(go_duration(nanos as i64))
        }
        Type::Quantity => {
            let [_, text, _, _] = small_message(bytes_of(field, def_name)?)?;
            json!(string(
                text.map(|f| bytes_of(f, "string"))
                    .transpose()?
                    .unwrap_or_default()
            )?)
        }
        Type::IntOrString => int_or_string(bytes_of(field, def_name)?)?,
        Type::RawExtension | Type::FieldsV1 => embedded_json(bytes_of(field, def_name)?)?,
        Type::Message(name) => Value::Object(message(bytes_of(field, def_name)?, name, depth + 1)?),
        Type::Map(_) => return Err(bad(&format!("field {def_name}: a map inside a map"))),
    })
}

/// Go's `omitempty` on a scalar: its zero value is left out of the JSON.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn message(b: &[u8], name: &str, depth: usize) -> ApiResult<Map<String, Value>> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    let def = schema::table()
        .message(name)
        .ok_or_else(|| bad(&format!("no schema for {name}")))?;
    // Collected per declared field, then written in declaration order.
    let mut values: Vec<Option<Value>> = vec![None; def.fields.len()];
    for (number, field) in fields(b)? {
        // Fields this version does not know are skipped, as the API server's decoder does.
        let Some((index, field_def)) = def.field(number) else {
            continue;
        };
        let slot = &mut values[index];
        collect(slot, field, field_def, depth)?;
    }
    let mut out = Map::new();
    for ((_, field_def), collected) in def.fields.iter().zip(values) {
        let Some(v) = collected else { continue };
        let keep = match &v {
            Value::Null => false,
            Value::Array(items) => !items.is_empty(),
            Value::Object(_) if matches!(field_def.kind, Type::Map(_)) => {
                !v.as_object().is_some_and(Map::is_empty)
            }
            Value::Object(_) => true,
            scalar => field_def.pointer || !field_def.omit_empty || !is_zero(scalar),
        };
        if !keep {
            continue;
        }
        match (field_def.inline, v) {
            (true, Value::Object(inner)) => out.extend(inner),
            (_, v) => {
                out.insert(field_def.json_name.to_string(), v);
            }
        }
    }
    Ok(out)
}

fn collect(
    slot: &mut Option<Value>,
    field: Field<'_>,
    def: &FieldDef,
    depth: usize,
) -> ApiResult<()> {
    let name = def.json_name;
    if let Type::Map(inner) = &def.kind {
        let [_, key, entry_value, _] = small_message(bytes_of(field, name)?)?;
        let key = string(
            key.map(|f| bytes_of(f, "key"))
                .transpose()?
                .unwrap_or_default(),
        )?;
        let entry_value = match entry_value {
            Some(f) => value(f, inner, name, depth)?,
            // An absent value is the value type's zero.
            None => match **inner {
                Type::Int => json!(0),
                Type::Bool => json!(false),
                _ => json!(""),
            },
        };
        if let Value::Object(map) = slot.get_or_insert_with(|| Value::Object(Map::new())) {
            map.insert(key, entry_value);
        }
        return Ok(());
    }
    if def.repeated {
        let items = match slot.get_or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(items) => items,
            _ => return Ok(()),
        };
        // proto2 repeated numbers may arrive packed (one length-delimited run).
        if let (Field::Bytes(run), Type::Int | Type::Bool) = (field, &def.kind) {
            let mut pos = 0;
            while pos < run.len() {
                items.push(value(
                    Field::Varint(varint(run, &mut pos)?),
                    &def.kind,
                    name,
                    depth,
                )?);
            }
            return Ok(());
        }
        items.push(value(field, &def.kind, name, depth)?);
        return Ok(());
    }
    *slot = Some(value(field, &def.kind, name, depth)?);
    Ok(())
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
    let Some(message_name) = schema::table().kind(&api_version, &kind) else {
        return Err(ApiError::unsupported_media(&[
            "application/json",
            "application/yaml",
        ]));
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    obj.extend(message(raw, message_name, 0)?);
    Ok(Value::Object(obj))
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
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(2_000_000), "2ms");
        assert_eq!(go_duration(-5_000_000_000), "-5s");
    }

    #[test]
    fn zero_scalars_of_omitempty_fields_are_left_out_and_pointers_kept() {
        // DeploymentSpec: replicas (pointer) = 0, minReadySeconds (omitempty) = 0, paused = false.
        let spec = [vec![1 << 3, 0], vec![5 << 3, 0], vec![7 << 3, 0]].concat();
        let meta = ld(1, b"web");
        let raw = [ld(1, &meta), ld(2, &spec)].concat();
        let tm = [ld(1, b"apps/v1"), ld(2, b"Deployment")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(v["spec"], json!({"replicas": 0}));
        assert_eq!(v["metadata"], json!({"name": "web"}));
    }

    #[test]
    fn a_field_with_the_wrong_wire_type_is_a_bad_request() {
        // ObjectMeta.name sent as a varint.
        let raw = ld(1, &[1 << 3, 7]);
        let tm = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        assert_eq!(decode(&body).expect_err("wrong wire type").code, 400);
    }

    #[test]
    fn kinds_outside_the_table_are_unsupported_media() {
        let tm = [ld(1, b"example.com/v1"), ld(2, b"Widget")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, b"")].concat();
        assert_eq!(decode(&body).expect_err("unknown kind").code, 415);
    }

    #[test]
    fn truncated_protobuf_is_a_bad_request() {
        let err = decode(b"k8s\0\x0a\x10ab").expect_err("truncated");
        assert_eq!(err.code, 400);
    }
}
