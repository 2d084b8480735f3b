//! Post-build variable substitution with Flux's syntax (`spec.postBuild`).
//!
//! Only `${...}` expressions are expanded, never a bare `$var`, so shell scripts embedded
//! in ConfigMaps keep their variables; `$${var}` writes a literal `${var}`. Supported forms,
//! as in Flux's envsubst: `${var}`, `${var:=default}`, `${var=default}`, `${var:-default}`,
//! `${var-default}`, `${#var}`, `${var^}`, `${var^^}`, `${var,}`, `${var,,}`,
//! `${var:offset}`, `${var:offset:length}`. A default may itself be `${other}`.
//!
//! An object labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` is
//! left as it is (see [`is_disabled`]).

use std::collections::BTreeMap;

/// Why substitution failed; the reconcile reports it as a build failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    /// A variable name from `substitute`/`substituteFrom` is not an identifier.
    #[error("'{name}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'")]
    InvalidName { name: String },
    /// `${` without its closing brace, or an expression we cannot read.
    #[error("variable substitution failed: bad substitution at byte {offset}: {snippet:?}")]
    BadExpression { offset: usize, snippet: String },
    /// Strict mode: a variable without value and without default.
    #[error("variable substitution failed: variable not set (strict mode): {name:?}")]
    Unset { name: String },
}

/// Variables collected from `substitute` and `substituteFrom`, later sources winning.
pub type Variables = BTreeMap<String, String>;

/// Checks every name and removes newlines from values, as Flux does before substituting.
pub fn normalize(variables: Variables) -> Result<Variables, SubstituteError> {
    variables
        .into_iter()
        .map(|(name, value)| {
            if is_identifier(&name) {
                Ok((name, value.replace('\n', "")))
            } else {
                Err(SubstituteError::InvalidName { name })
            }
        })
        .collect()
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether an object opted out of substitution through its labels or annotations.
pub fn is_disabled(object: &serde_json::Value) -> bool {
    let key = api::conditions::annotations::SUBSTITUTE;
    ["labels", "annotations"].iter().any(|field| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(|m| m.get(key))
            .and_then(|v| v.as_str())
            == Some("disabled")
    })
}

/// Expands every `${...}` in `text`. With `strict`, an unset variable without default is an
/// error; otherwise it expands to the empty string.
pub fn substitute(
    text: &str,
    variables: &Variables,
    strict: bool,
) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            consumed += dollar + 3;
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            rest = &after[1..];
            consumed += dollar + 1;
            continue;
        }
        let offset = consumed + dollar;
        let close = matching_brace(&after[2..]).ok_or_else(|| bad(offset, after))?;
        let expression = &after[2..2 + close];
        out.push_str(
            &evaluate(expression, variables, strict).map_err(|e| match e {
                SubstituteError::BadExpression { .. } => bad(offset, after),
                other => other,
            })?,
        );
        rest = &after[2 + close + 1..];
        consumed = offset + 2 + close + 1;
    }
    out.push_str(rest);
    Ok(out)
}

fn bad(offset: usize, at: &str) -> SubstituteError {
    SubstituteError::BadExpression {
        offset,
        snippet: at.chars().take(40).collect(),
    }
}

/// Index of the `}` closing an expression, allowing nested `${...}` in defaults.
fn matching_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            b'\n' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn evaluate(
    expression: &str,
    variables: &Variables,
    strict: bool,
) -> Result<String, SubstituteError> {
    let bad = || SubstituteError::BadExpression {
        offset: 0,
        snippet: expression.to_string(),
    };
    if let Some(name) = expression.strip_prefix('#') {
        return lookup(name, variables, strict).map(|v| v.chars().count().to_string());
    }
    let name_len = expression
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(expression.len());
    let (name, operator) = expression.split_at(name_len);
    if !is_identifier(name) {
        return Err(bad());
    }
    let value = variables.get(name);
    let default = |fallback: &str| substitute(fallback, variables, strict);
    match operator {
        "" => lookup(name, variables, strict),
        _ if operator.starts_with(":=") || operator.starts_with(":-") => match value {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => default(&operator[2..]),
        },
        _ if operator.starts_with('=') || operator.starts_with('-') => match value {
            Some(v) => Ok(v.clone()),
            None => default(&operator[1..]),
        },
        "^" => Ok(map_first(&lookup(name, variables, strict)?, |c| {
            c.to_uppercase().collect()
        })),
        "^^" => Ok(lookup(name, variables, strict)?.to_uppercase()),
        "," => Ok(map_first(&lookup(name, variables, strict)?, |c| {
            c.to_lowercase().collect()
        })),
        ",," => Ok(lookup(name, variables, strict)?.to_lowercase()),
        _ if operator.starts_with(':') => {
            let value = lookup(name, variables, strict)?;
            let mut parts = operator[1..].splitn(2, ':');
            let offset: usize = parts
                .next()
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(bad)?;
            let length = match parts.next() {
                Some(p) => Some(p.trim().parse::<usize>().map_err(|_| bad())?),
                None => None,
            };
            let tail = value.chars().skip(offset);
            Ok(match length {
                Some(length) => tail.take(length).collect(),
                None => tail.collect(),
            })
        }
        _ => Err(bad()),
    }
}

fn lookup(name: &str, variables: &Variables, strict: bool) -> Result<String, SubstituteError> {
    match variables.get(name) {
        Some(value) => Ok(value.clone()),
        None if strict => Err(SubstituteError::Unset {
            name: name.to_string(),
        }),
        None => Ok(String::new()),
    }
}

fn map_first(value: &str, change: impl Fn(char) -> String) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => change(first) + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expand(text: &str, pairs: &[(&str, &str)]) -> String {
        substitute(text, &vars(pairs), false).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn braced_variables_are_replaced_and_bare_ones_kept() {
        assert_eq!(
            expand("replicas: ${count} $count $HOME", &[("count", "3")]),
            "replicas: 3 $count $HOME"
        );
    }

    #[test]
    fn defaults_apply_when_unset_or_empty_as_in_bash() {
        let pairs = [("empty", "")];
        assert_eq!(expand("${missing:=eu-west-1}", &pairs), "eu-west-1");
        assert_eq!(expand("${empty:=fallback}", &pairs), "fallback");
        assert_eq!(expand("${empty=fallback}", &pairs), "");
        assert_eq!(expand("${missing-x}", &pairs), "x");
        assert_eq!(expand("${missing:=${other:=deep}}", &pairs), "deep");
    }

    #[test]
    fn double_dollar_escapes_an_expression() {
        assert_eq!(
            expand("echo $${HOME} ${a}", &[("a", "1")]),
            "echo ${HOME} 1"
        );
    }

    #[test]
    fn case_length_and_substring_functions_work() {
        let pairs = [("env", "production")];
        assert_eq!(expand("${env^}", &pairs), "Production");
        assert_eq!(expand("${env^^}", &pairs), "PRODUCTION");
        assert_eq!(expand("${#env}", &pairs), "10");
        assert_eq!(expand("${env:0:4}", &pairs), "prod");
        assert_eq!(expand("${env:4}", &pairs), "uction");
    }

    #[test]
    fn unset_variables_expand_to_nothing_unless_strict() {
        assert_eq!(expand("a${nope}b", &[]), "ab");
        assert_eq!(
            substitute("${nope}", &Variables::new(), true),
            Err(SubstituteError::Unset {
                name: "nope".into()
            })
        );
    }

    #[test]
    fn an_unclosed_expression_is_an_error_naming_where() {
        let error = substitute("key: ${broken", &Variables::new(), false);
        assert!(
            matches!(error, Err(SubstituteError::BadExpression { offset: 5, .. })),
            "{error:?}"
        );
    }

    #[test]
    fn invalid_variable_names_are_refused_and_newlines_dropped() {
        assert!(normalize(vars(&[("bad-name", "x")])).is_err());
        let normalized = normalize(vars(&[("ok_1", "a\nb")])).unwrap_or_default();
        assert_eq!(normalized.get("ok_1").map(String::as_str), Some("ab"));
    }

    #[test]
    fn objects_can_opt_out_by_label_or_annotation() {
        let annotated = serde_json::json!({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}});
        let labelled = serde_json::json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}});
        assert!(is_disabled(&annotated) && is_disabled(&labelled));
        assert!(!is_disabled(&serde_json::json!({"metadata": {}})));
    }
}
