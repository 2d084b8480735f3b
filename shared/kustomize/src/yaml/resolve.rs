//! Implicit typing of plain scalars, as go-yaml v3 (reading) and v2 (printing) decide it.

/// What a plain scalar means to go-yaml v3.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A timestamp, as RFC 3339 text (what `time.Time` marshals to).
    Timestamp(String),
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

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

/// A timestamp in one of go-yaml's layouts (`2006-1-2`, `2006-1-2T15:4:5.999999999Z07:00`,
/// `2006-1-2 15:4:5.999999999`), rendered as Go's `time.Time` marshals to JSON (RFC 3339).
pub(crate) fn parse_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    let num = |i: &mut usize, min: usize, max: usize| -> Option<u32> {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - st < max {
            *i += 1;
        }
        if *i - st < min {
            return None;
        }
        s[st..*i].parse().ok()
    };
    let year = num(&mut i, 4, 4)?;
    let lit = |i: &mut usize, c: u8| -> Option<()> { (b.get(*i) == Some(&c)).then(|| *i += 1) };
    lit(&mut i, b'-')?;
    let month = num(&mut i, 1, 2)?;
    lit(&mut i, b'-')?;
    let day = num(&mut i, 1, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if i == b.len() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let sep = b[i];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    i += 1;
    let h = num(&mut i, 1, 2)?;
    lit(&mut i, b':')?;
    let mi = num(&mut i, 1, 2)?;
    lit(&mut i, b':')?;
    let sec = num(&mut i, 1, 2)?;
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut frac = String::new();
    if b.get(i) == Some(&b'.') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 9 {
            i += 1;
        }
        if i == st {
            return None;
        }
        frac = s[st..i].trim_end_matches('0').to_string();
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    let time = format!("{date}T{h:02}:{mi:02}:{sec:02}{frac}");
    if sep == b' ' {
        return (i == b.len()).then(|| format!("{time}Z"));
    }
    match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => Some(format!("{time}Z")),
        Some(&c @ (b'+' | b'-')) => {
            i += 1;
            let oh = num(&mut i, 2, 2)?;
            lit(&mut i, b':')?;
            let om = num(&mut i, 2, 2)?;
            if i != b.len() {
                return None;
            }
            if oh == 0 && om == 0 {
                Some(format!("{time}Z"))
            } else {
                Some(format!("{time}{}{oh:02}:{om:02}", c as char))
            }
        }
        _ => None,
    }
}

fn numeric(s: &str, allow_timestamp: bool) -> Option<Resolved> {
    if allow_timestamp && let Some(t) = parse_timestamp(s) {
        return Some(Resolved::Timestamp(t));
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

/// go-yaml v3's reading of an untagged plain scalar.
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
        assert_eq!(
            resolve_v3("2024-01-02"),
            Resolved::Timestamp("2024-01-02T00:00:00Z".into())
        );
        assert_eq!(resolve_v3("2024-13-01"), Resolved::Str);
        assert_eq!(
            resolve_v3("2024-01-02T10:00:00.500+02:00"),
            Resolved::Timestamp("2024-01-02T10:00:00.5+02:00".into())
        );
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
