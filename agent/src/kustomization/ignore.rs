//! `spec.ignore`: JSON pointer paths (RFC 6901) the Kustomization leaves to others, as
//! Flux's drift ignore rules. An object is created whole; once it exists, what the cluster
//! holds at an ignored path is kept (an autoscaler's replicas, a value another controller
//! writes), so a change there is neither drift nor corrected, and a field nobody changed is
//! not removed either.
//!
//! A rule's `target` selects objects as kustomize's patch targets do: group, version and
//! kind exactly, name and namespace as anchored regular expressions, label and annotation
//! selectors; without a target it applies to every object.

use api::kustomize::IgnoreRule;
use regex::Regex;
use serde_json::{Map, Value};

/// Why `spec.ignore` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("spec.ignore[{rule}]: path {path:?} is not a JSON pointer (it must start with '/')")]
    Pointer { rule: usize, path: String },
    #[error("spec.ignore[{rule}].target.{field}: invalid regular expression: {source}")]
    Regex {
        rule: usize,
        field: &'static str,
        #[source]
        source: regex::Error,
    },
}

/// The compiled rules of one Kustomization.
#[derive(Debug, Default)]
pub struct IgnoreRules(Vec<Rule>);

#[derive(Debug)]
struct Rule {
    paths: Vec<String>,
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Option<String>,
    annotations: Option<String>,
}

impl IgnoreRules {
    pub fn new(rules: &[IgnoreRule]) -> Result<Self, IgnoreError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            if let Some(path) = rule.paths.iter().find(|p| !p.starts_with('/')) {
                return Err(IgnoreError::Pointer {
                    rule: index,
                    path: path.clone(),
                });
            }
            let anchored = |field: &'static str, pattern: &Option<String>| {
                pattern
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .map(|p| Regex::new(&format!("^(?:{p})$")))
                    .transpose()
                    .map_err(|source| IgnoreError::Regex {
                        rule: index,
                        field,
                        source,
                    })
            };
            let target = match &rule.target {
                Some(t) => Some(Target {
                    group: t.group.clone(),
                    version: t.version.clone(),
                    kind: t.kind.clone(),
                    name: anchored("name", &t.name)?,
                    namespace: anchored("namespace", &t.namespace)?,
                    labels: t.label_selector.clone().filter(|s| !s.is_empty()),
                    annotations: t.annotation_selector.clone().filter(|s| !s.is_empty()),
                }),
                None => None,
            };
            compiled.push(Rule {
                paths: rule.paths.clone(),
                target,
            });
        }
        Ok(IgnoreRules(compiled))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ignored paths of `object` (as built, before it is applied).
    pub fn paths_for(&self, object: &Value) -> Vec<&str> {
        self.0
            .iter()
            .filter(|rule| rule.target.as_ref().is_none_or(|t| t.selects(object)))
            .flat_map(|rule| rule.paths.iter().map(String::as_str))
            .collect()
    }
}

impl Target {
    fn selects(&self, object: &Value) -> bool {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let (group, version) = match text("/apiVersion").rsplit_once('/') {
            Some((group, version)) => (group, version),
            None => ("", text("/apiVersion")),
        };
        let exact = |wanted: &Option<String>, actual: &str| {
            wanted
                .as_deref()
                .is_none_or(|w| w.is_empty() || w == actual)
        };
        let pattern = |wanted: &Option<Regex>, actual: &str| {
            wanted.as_ref().is_none_or(|re| re.is_match(actual))
        };
        let selected = |selector: &Option<String>, pointer: &str| {
            selector.as_deref().is_none_or(|selector| {
                let pairs: Vec<(String, String)> = object
                    .pointer(pointer)
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                kustomize::label_selector_matches(selector, &pairs).unwrap_or(false)
            })
        };
        exact(&self.group, group)
            && exact(&self.version, version)
            && exact(&self.kind, text("/kind"))
            && pattern(&self.name, text("/metadata/name"))
            && pattern(&self.namespace, text("/metadata/namespace"))
            && selected(&self.labels, "/metadata/labels")
            && selected(&self.annotations, "/metadata/annotations")
    }
}

/// Makes `desired` hold what `live` holds at each of `paths` (and nothing where `live` has
/// nothing), so that applying it changes nothing there.
pub fn keep_live(desired: &mut Value, live: &Value, paths: &[&str]) {
    for path in paths {
        let tokens: Vec<String> = path.split('/').skip(1).map(unescape).collect();
        match live.pointer(path) {
            Some(value) => set(desired, &tokens, value.clone()),
            None => remove(desired, &tokens),
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn set(root: &mut Value, tokens: &[String], value: Value) {
    let Some((last, parents)) = tokens.split_last() else {
        *root = value;
        return;
    };
    let mut node = root;
    for token in parents {
        node = match node {
            Value::Object(map) => map
                .entry(token.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = value;
            }
        }
        _ => {}
    }
}

fn remove(root: &mut Value, tokens: &[String]) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut node = root;
    for token in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(token) {
                Some(child) => child,
                None => return,
            },
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Some(index) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(index);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> IgnoreRules {
        let parsed: Vec<IgnoreRule> =
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        IgnoreRules::new(&parsed).unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "web", "labels": labels},
            "spec": {"replicas": 1}})
    }

    #[test]
    fn targets_select_by_kind_name_pattern_and_labels() {
        let rules = rules(json!([
            {"paths": ["/spec/replicas"], "target": {"kind": "Deployment", "name": "front.*", "labelSelector": "tier in (web)"}},
            {"paths": ["/metadata/annotations/x"]}
        ]));
        let front = deployment("frontend", json!({"tier": "web"}));
        assert_eq!(
            rules.paths_for(&front),
            ["/spec/replicas", "/metadata/annotations/x"]
        );
        let back = deployment("backend", json!({"tier": "web"}));
        assert_eq!(rules.paths_for(&back), ["/metadata/annotations/x"]);
        let unlabelled = deployment("frontend", json!({}));
        assert_eq!(rules.paths_for(&unlabelled), ["/metadata/annotations/x"]);
    }

    #[test]
    fn the_live_value_is_kept_and_a_field_missing_live_is_dropped() {
        let mut desired = json!({"data": {"a": "git", "b/c": "git", "gone": "git"}, "spec": {}});
        let live = json!({"data": {"a": "cluster", "b/c": "cluster"}, "spec": {"x": {"y": 1}}});
        keep_live(
            &mut desired,
            &live,
            &["/data/a", "/data/b~1c", "/data/gone", "/spec/x/y"],
        );
        assert_eq!(
            desired,
            json!({"data": {"a": "cluster", "b/c": "cluster"}, "spec": {"x": {"y": 1}}})
        );
    }

    #[test]
    fn paths_must_be_pointers_and_patterns_must_compile() {
        let bad: Vec<IgnoreRule> = serde_json::from_value(json!([{"paths": ["spec.replicas"]}]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            IgnoreRules::new(&bad),
            Err(IgnoreError::Pointer { rule: 0, .. })
        ));
        let bad: Vec<IgnoreRule> =
            serde_json::from_value(json!([{"paths": ["/a"], "target": {"name": "("}}]))
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            IgnoreRules::new(&bad),
            Err(IgnoreError::Regex { field: "name", .. })
        ));
    }
}
