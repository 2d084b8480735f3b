//! Go-style durations (`1h30m`, `5m`, `10s`, `500ms`) as Flux's `metav1.Duration` fields carry them.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern Flux's CRDs put on interval-like fields.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// A duration written the way Go's `time.ParseDuration` reads it, limited to the units Flux's
/// CRD pattern allows (`ms`, `s`, `m`, `h`).
///
/// The text is kept as written so that objects round-trip byte for byte through the API.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

/// A duration string that does not match `([0-9]+(\.[0-9]+)?(ms|s|m|h))+`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: expected a Go duration such as 30s, 5m or 1h30m")]
pub struct InvalidDuration {
    pub text: String,
}

impl Duration {
    /// The duration as a standard library value.
    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }

    /// The duration as written in the object.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Formats a standard duration the way Go's `time.Duration.String` would for whole
    /// hours, minutes and seconds (`1h0m0s` is written `1h`, which Go also parses).
    pub fn from_std(value: std::time::Duration) -> Self {
        let millis = value.as_millis();
        let text = if !millis.is_multiple_of(1000) {
            format!("{millis}ms")
        } else {
            let secs = value.as_secs();
            let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
            let mut text = String::new();
            if h > 0 {
                text.push_str(&format!("{h}h"));
            }
            if m > 0 {
                text.push_str(&format!("{m}m"));
            }
            if s > 0 || text.is_empty() {
                text.push_str(&format!("{s}s"));
            }
            text
        };
        Self { text, value }
    }
}

/// A duration as Go's `time.Duration.String` writes it (`1h0m0s`, `5m0s`, `1.5s`, `300ms`),
/// for messages that must read as Flux's.
pub fn go_string(value: std::time::Duration) -> String {
    fn trimmed(whole: u128, fraction: u128, digits: usize) -> String {
        let fraction = format!("{fraction:0digits$}");
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{fraction}")
        }
    }
    let nanos = value.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trimmed(nanos / 1_000, nanos % 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trimmed(nanos / 1_000_000, nanos % 1_000_000, 6));
    }
    let secs = nanos / 1_000_000_000;
    let seconds = format!("{}s", trimmed(secs % 60, nanos % 1_000_000_000, 9));
    let (hours, minutes) = (secs / 3600, (secs % 3600) / 60);
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration {
            text: text.to_string(),
        };
        if text.is_empty() {
            return Err(invalid());
        }
        let mut total_nanos: u128 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(invalid)?;
            let (number, tail) = rest.split_at(number_len);
            let (unit_nanos, unit_len): (u128, usize) = if tail.starts_with("ms") {
                (1_000_000, 2)
            } else if tail.starts_with('s') {
                (1_000_000_000, 1)
            } else if tail.starts_with('m') {
                (60_000_000_000, 1)
            } else if tail.starts_with('h') {
                (3_600_000_000_000, 1)
            } else {
                return Err(invalid());
            };
            total_nanos = total_nanos
                .checked_add(scaled(number, unit_nanos).ok_or_else(invalid)?)
                .ok_or_else(invalid)?;
            rest = &tail[unit_len..];
        }
        let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid())?;
        let nanos = (total_nanos % 1_000_000_000) as u32;
        Ok(Self {
            text: text.to_string(),
            value: std::time::Duration::new(secs, nanos),
        })
    }
}

/// `number` (digits with at most one fraction) times `unit_nanos`, or None when malformed.
fn scaled(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return None,
        None => (number, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos = whole.parse::<u128>().ok()?.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for digit in fraction.bytes() {
        if !digit.is_ascii_digit() {
            return None;
        }
        scale /= 10;
        nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(nanos)
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({})", self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": DURATION_PATTERN })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::time::Duration {
        text.parse::<Duration>()
            .map(|d| d.as_std())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        let s = std::time::Duration::from_secs;
        assert_eq!(go_string(s(0)), "0s");
        assert_eq!(go_string(s(30)), "30s");
        assert_eq!(go_string(s(300)), "5m0s");
        assert_eq!(go_string(s(3600)), "1h0m0s");
        assert_eq!(go_string(s(3690)), "1h1m30s");
        assert_eq!(go_string(std::time::Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_string(std::time::Duration::from_millis(300)), "300ms");
    }

    #[test]
    fn go_durations_parse_with_every_unit_and_fractions() {
        assert_eq!(parse("10m"), std::time::Duration::from_secs(600));
        assert_eq!(parse("1h30m"), std::time::Duration::from_secs(5400));
        assert_eq!(parse("500ms"), std::time::Duration::from_millis(500));
        assert_eq!(parse("1.5h"), std::time::Duration::from_secs(5400));
        assert_eq!(parse("2m0.5s"), std::time::Duration::from_millis(120_500));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in ["", "10", "m", "1d", "-5m", "1.h", "5 m", "1e3s"] {
            assert!(
                bad.parse::<Duration>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn standard_durations_format_like_go() {
        let text = |secs| Duration::from_std(std::time::Duration::from_secs(secs)).to_string();
        assert_eq!(text(3600), "1h");
        assert_eq!(text(5400), "1h30m");
        assert_eq!(text(0), "0s");
        assert_eq!(
            Duration::from_std(std::time::Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
    }
}
