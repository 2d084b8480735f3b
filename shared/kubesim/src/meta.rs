//! Object metadata conventions: names, timestamps, ages.

use chrono::{DateTime, SecondsFormat, Utc};

/// The RFC 3339 second-precision UTC form of `metav1.Time`.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a `metav1.Time`.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The errors of a label or annotation key (`[prefix/]name`), as kube-apiserver words them.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else if p.len() > 253 || !p.split('.').all(is_label) {
            errs.push(format!("prefix part {DNS1123_SUBDOMAIN}"));
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    } else if !is_name_part(name) {
        errs.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    errs
}

/// The error of a label value, if invalid.
pub fn label_value_error(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !v.is_empty() && !is_name_part(v) {
        return Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    None
}

/// Which rule a kind's names follow in kube-apiserver's validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label, starting with a letter (services).
    Label1035,
}

/// The name rule of a built-in resource.
pub fn name_rule(group: &str, resource: &str) -> NameRule {
    match (group, resource) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Label1035,
        _ => NameRule::Subdomain,
    }
}

const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// The errors kube-apiserver reports for a name under a rule.
pub fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    let mut errs = Vec::new();
    match rule {
        NameRule::Label | NameRule::Label1035 => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".to_string());
            }
            if rule == NameRule::Label && !is_label(name) {
                errs.push(DNS1123_LABEL.to_string());
            }
            if rule == NameRule::Label1035
                && !(is_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()))
            {
                errs.push(DNS1035_LABEL.to_string());
            }
        }
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push("must be no more than 253 characters".to_string());
            }
            if !name.split('.').all(is_label) {
                errs.push(DNS1123_SUBDOMAIN.to_string());
            }
        }
    }
    errs
}

/// kubectl's human-readable age (`5s`, `3m20s`, `4h`, `2d3h`, `3y`), so Table cells read as a
/// real server's do.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of an object for Table cells.
pub fn age(obj: &serde_json::Value) -> String {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(serde_json::Value::as_str)
        .and_then(parse_time)
        .map(|t| human_duration((Utc::now() - t).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 4), "4h");
        assert_eq!(human_duration(3600 * 51), "2d3h");
    }

    #[test]
    fn label_keys_are_qualified_names() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert!(!qualified_name_errors("Bad Key").is_empty());
        assert!(!qualified_name_errors("UPPER.io/x").is_empty());
        assert!(label_value_error("").is_none());
        assert!(label_value_error("-x").is_some());
    }

    #[test]
    fn names_must_be_dns1123() {
        assert!(name_errors("web-1.example", NameRule::Subdomain).is_empty());
        assert!(!name_errors("Web_1", NameRule::Subdomain).is_empty());
        assert!(!name_errors("a.b", NameRule::Label).is_empty());
        assert!(!name_errors("1svc", NameRule::Label1035).is_empty());
        assert!(name_errors("1ns", NameRule::Label).is_empty());
    }
}
