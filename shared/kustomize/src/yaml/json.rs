//! The typed values kubectl's printing pipeline produces, and Go's `encoding/json` rendering of
//! them (generator hashes are sha256 sums of such JSON).

use super::node::{Node, Tag};
use super::resolve::{Resolved, resolve_v3};

/// A node as go-yaml v3 decodes it into Go values.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(std::borrow::Cow<'a, str>),
    Seq(Vec<Value<'a>>),
    /// Keys sorted as Go's encoding/json sorts them (bytewise).
    Map(Vec<(&'a str, Value<'a>)>),
}

/// Why a node cannot go through kubectl's printing pipeline (JSON, then YAML).
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// encoding/json refuses the value (NaN, infinities).
    #[error("json: unsupported value: {0}")]
    UnsupportedValue(String),
    /// JSON leaves the character as it is and go-yaml's reader then refuses it.
    #[error("yaml: control characters are not allowed")]
    ControlCharacter,
}

pub(crate) fn value(node: &Node) -> Result<Value<'_>, JsonError> {
    Ok(match node {
        Node::Scalar(s) => {
            // A string tag forces quoting when printed; any other tag is dropped or kept
            // consistent with the text, so the text decides.
            let r = match s.tag {
                Tag::Str => return Ok(Value::Str(s.value.as_str().into())),
                Tag::Null if !s.quoted => Resolved::Null,
                _ => resolve_v3(&s.value),
            };
            match r {
                Resolved::Null => Value::Null,
                Resolved::Bool(b) => Value::Bool(b),
                Resolved::Int(i) => Value::Int(i),
                Resolved::Float(f) if f.is_finite() => Value::Float(f),
                Resolved::Float(f) => return Err(JsonError::UnsupportedValue(format_go_g(f))),
                Resolved::Str => Value::Str(s.value.as_str().into()),
                Resolved::Timestamp(t) => Value::Str(t.into()),
            }
        }
        Node::Seq(items) => Value::Seq(items.iter().map(value).collect::<Result<_, _>>()?),
        Node::Map(entries) => {
            let mut m: Vec<(&str, Value)> = entries
                .iter()
                .map(|(k, v)| Ok((k.as_str(), value(v)?)))
                .collect::<Result<_, JsonError>>()?;
            m.sort_by(|a, b| a.0.cmp(b.0));
            Value::Map(m)
        }
    })
}

/// Shortest digits and decimal exponent of a finite, non-zero float: value = 0.DIGITS × 10^dp.
fn digits(f: f64) -> (String, i32) {
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (digits, exp + 1)
}

fn format_e(f: f64, min_exp_digits: usize) -> String {
    let (d, dp) = digits(f);
    let mut s = String::new();
    if f < 0.0 {
        s.push('-');
    }
    s.push_str(&d[..1]);
    if d.len() > 1 {
        s.push('.');
        s.push_str(&d[1..]);
    }
    let e = dp - 1;
    s.push('e');
    s.push(if e < 0 { '-' } else { '+' });
    s.push_str(&format!("{:0width$}", e.abs(), width = min_exp_digits));
    s
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`, as go-yaml v2 prints floats.
pub(crate) fn format_go_g(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (_, dp) = digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        return format_e(f, 2);
    }
    format!("{f}")
}

/// Go's `encoding/json` float text.
pub(crate) fn format_json_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format_e(f, 2);
        // encoding/json shortens e-07 to e-7.
        if let Some(i) = s.find("e-0") {
            return format!("{}e-{}", &s[..i], &s[i + 3..]);
        }
        return s;
    }
    format!("{f}")
}

/// Go's `encoding/json` string encoding (HTML-safe, as `json.Marshal` does).
pub fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_json_float(*f)),
        Value::Str(s) => go_json_string(s, out),
        Value::Seq(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(it, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, it)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                write_json(it, out);
            }
            out.push('}');
        }
    }
}

/// `json.Marshal` of the Go value go-yaml v3 decodes `node` into.
pub fn go_json(node: &Node) -> Result<String, JsonError> {
    let v = value(node)?;
    let mut out = String::new();
    write_json(&v, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        assert_eq!(format_go_g(1.5), "1.5");
        assert_eq!(format_go_g(1234567.5), "1.2345675e+06");
        assert_eq!(format_json_float(1e21), "1e+21");
        assert_eq!(format_json_float(1e-7), "1e-7");
        assert_eq!(format_json_float(0.5), "0.5");
    }

    #[test]
    fn json_strings_escape_html_and_controls() {
        let mut s = String::new();
        go_json_string("a<b>&\"\u{1}", &mut s);
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\u0001""#);
    }
}
