//! Implicit typing of plain scalars, as go-yaml v3 (reading) and v2 (printing) decide it.

/// What a plain scalar means to go-yaml v3.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

fn go_parse_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        // ParseInt: down to -2^63.
        (v <= 1u128 << 63).then(|| -(v as i128))
    } else if v <= i64::MAX as u128 || (v <= u64::MAX as u128 && s.as_bytes()[0] != b'+') {
        // ParseInt up to i64::MAX, then ParseUint (which takes no sign) up to u64::MAX.
        Some(v as i128)
    } else {
        None
    }
}

fn yaml_style_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Timestamps as go-yaml accepts them (`2006-1-2`, with an optional time part).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let num = |i: &mut usize, min: usize, max: usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - st < max {
            *i += 1;
        }
        (*i - st) >= min
    };
    if !num(&mut i, 1, 2) || i >= b.len() || b[i] != b'-' {
        return false;
    }
    i += 1;
    if !num(&mut i, 1, 2) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let sep = b[i];
    if !(sep == b'T' || sep == b't' || sep == b' ') {
        return false;
    }
    i += 1;
    for k in 0..3 {
        if !num(&mut i, 1, 2) {
            return false;
        }
        if k < 2 {
            if i >= b.len() || b[i] != b':' {
                return false;
            }
            i += 1;
        }
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !num(&mut i, 1, 9) {
            return false;
        }
    }
    if i == b.len() {
        return true;
    }
    if sep == b' ' {
        return false;
    }
    if b[i] == b'Z' {
        return i + 1 == b.len();
    }
    if b[i] == b'+' || b[i] == b'-' {
        i += 1;
        return num(&mut i, 2, 2) && i < b.len() && b[i] == b':' && {
            i += 1;
            num(&mut i, 2, 2) && i == b.len()
        };
    }
    false
}

fn numeric(s: &str, allow_timestamp: bool) -> Option<Resolved> {
    if allow_timestamp && is_timestamp(s) {
        return Some(Resolved::Str);
    }
    let plain = s.replace('_', "");
    if let Some(i) = go_parse_int(&plain) {
        return Some(Resolved::Int(i));
    }
    if yaml_style_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Some(Resolved::Float(f));
    }
    None
}

/// go-yaml v3's reading of an untagged plain scalar. Timestamps stay strings, as v3 does when
/// decoding into `interface{}`.
pub fn resolve_v3(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match s.as_bytes()[0] {
        b'0'..=b'9' | b'+' | b'-' => numeric(s, true).unwrap_or(Resolved::Str),
        b'.' => s
            .parse::<f64>()
            .map(Resolved::Float)
            .unwrap_or(Resolved::Str),
        _ => Resolved::Str,
    }
}

/// Whether go-yaml v2 would read `s` back as a string if printed plain (it quotes otherwise).
pub fn v2_plain_is_string(s: &str) -> bool {
    match s {
        "" | "~" | "null" | "Null" | "NULL" | "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N"
        | "no" | "No" | "NO" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE" | "on"
        | "On" | "ON" | "off" | "Off" | "OFF" | ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf"
        | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | "<<" => {
            return false;
        }
        _ => {}
    }
    let first = s.as_bytes()[0];
    let typed = match first {
        b'0'..=b'9' | b'+' | b'-' => numeric(s, true).is_some(),
        b'.' => s.parse::<f64>().is_ok(),
        _ => false,
    };
    !typed && !is_base60_float(s)
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 2 {
            i += 1;
        }
        let n = i - st;
        if n == 0 || (n == 2 && b[st] > b'5') {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_reads_numbers_like_go_yaml() {
        assert_eq!(resolve_v3("0777"), Resolved::Int(511));
        assert_eq!(resolve_v3("1_000"), Resolved::Int(1000));
        assert_eq!(resolve_v3("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_v3("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve_v3("08"), Resolved::Float(8.0));
        assert_eq!(resolve_v3("yes"), Resolved::Str);
        assert_eq!(resolve_v3("2024-01-02"), Resolved::Str);
        assert_eq!(resolve_v3("1.2.3"), Resolved::Str);
    }

    #[test]
    fn v2_quotes_yaml_1_1_booleans_numbers_and_sexagesimals() {
        for s in ["on", "yes", "1", "1.5", "1e3", "2024-01-02", "1:20", ""] {
            assert!(!v2_plain_is_string(s), "{s}");
        }
        for s in ["hello", "1.2.3", "v1", "1:90"] {
            assert!(v2_plain_is_string(s), "{s}");
        }
    }
}
