//! The user's health rules (`spec.healthCheckExprs`), as Flux's kustomize-controller applies
//! them (fluxcd/pkg `runtime/cel`, RFC 0009).
//!
//! A rule is chosen by the object's API group and kind; the version is ignored. A rule
//! without `kind` covers every kind of its group, and a rule naming the kind wins over it.
//! Two rules for the same group and kind are an error. For a chosen rule:
//! 1. a `status.observedGeneration` behind `metadata.generation` (both integers) is
//!    `InProgress`, whatever the expressions say;
//! 2. then `inProgress`, `failed` and `current` are evaluated in that order, and the first
//!    that is true decides; an empty expression is skipped;
//! 3. when none is true the object is `InProgress`;
//! 4. an expression that fails to evaluate (a missing field, a non-boolean result) makes the
//!    status `Unknown` with the error as message: the wait goes on until its timeout, whose
//!    message carries that error.
//!
//! Kstatus' other generic rules (deletion, `Stalled`, `Reconciling`) do not apply to a kind
//! the user has rules for, as in Flux.

use std::collections::HashMap;

use serde_json::Value;

use super::cel::{CompileError, Expression};
use super::{Health, HealthStatus, RulesError};

/// The expressions of one entry of `healthCheckExprs`.
#[derive(Debug, Clone)]
struct Evaluator {
    in_progress: Option<Expression>,
    failed: Option<Expression>,
    current: Expression,
}

/// Every entry of `healthCheckExprs`, by what it covers.
#[derive(Debug, Clone, Default)]
pub(super) struct CustomRules {
    by_kind: HashMap<(String, String), Evaluator>,
    by_group: HashMap<String, Evaluator>,
}

/// The API group of an `apiVersion`: `""` for the core group (`v1`).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

impl CustomRules {
    pub(super) fn new(checks: &[api::meta::CustomHealthCheck]) -> Result<Self, RulesError> {
        let mut rules = CustomRules::default();
        for (index, check) in checks.iter().enumerate() {
            let group = group(&check.api_version).to_string();
            let kind = check.kind.clone().filter(|kind| !kind.is_empty());
            let group_kind = match &kind {
                Some(kind) if group.is_empty() => kind.clone(),
                Some(kind) => format!("{kind}.{group}"),
                None => group.clone(),
            };
            let taken = match &kind {
                Some(kind) => rules.by_kind.contains_key(&(group.clone(), kind.clone())),
                None => rules.by_group.contains_key(&group),
            };
            if taken {
                return Err(RulesError::Duplicate { index, group_kind });
            }
            let evaluator = Evaluator::new(check).map_err(|problem| RulesError::Invalid {
                index,
                api_version: check.api_version.clone(),
                kind: kind
                    .as_ref()
                    .map_or_else(|| "every kind".to_string(), |kind| format!("kind {kind}")),
                problem,
            })?;
            match kind {
                Some(kind) => rules.by_kind.insert((group, kind), evaluator),
                None => rules.by_group.insert(group, evaluator),
            };
        }
        Ok(rules)
    }

    /// The health of `object` by the user's rules, or `None` when no rule covers its kind.
    pub(super) fn judge(&self, object: &Value) -> Option<Health> {
        let api_version = object.get("apiVersion").and_then(Value::as_str)?;
        let kind = object.get("kind").and_then(Value::as_str)?;
        let group = group(api_version);
        let evaluator = self
            .by_kind
            .get(&(group.to_string(), kind.to_string()))
            .or_else(|| self.by_group.get(group))?;
        Some(evaluator.judge(object))
    }
}

/// What is wrong with one expression of an entry.
#[derive(Debug, thiserror::Error)]
pub enum ExpressionProblem {
    /// `current` is empty.
    #[error("expression Current not specified")]
    MissingCurrent,
    /// The named expression (`Current`, `InProgress`, `Failed`) does not compile.
    #[error("failed to parse the expression {field}: {source}")]
    Invalid {
        field: &'static str,
        #[source]
        source: CompileError,
    },
}

impl Evaluator {
    fn new(check: &api::meta::CustomHealthCheck) -> Result<Self, ExpressionProblem> {
        if check.current.is_empty() {
            return Err(ExpressionProblem::MissingCurrent);
        }
        let compile = |field: &'static str, source: &str| {
            Expression::compile(source)
                .map_err(|source| ExpressionProblem::Invalid { field, source })
        };
        let optional = |field: &'static str, source: &Option<String>| match source.as_deref() {
            None | Some("") => Ok(None),
            Some(source) => compile(field, source).map(Some),
        };
        Ok(Evaluator {
            current: compile("Current", &check.current)?,
            failed: optional("Failed", &check.failed)?,
            in_progress: optional("InProgress", &check.in_progress)?,
        })
    }

    fn judge(&self, object: &Value) -> Health {
        let generation = object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        let observed = object
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        if let (Some(generation), Some(observed)) = (generation, observed)
            && generation != observed
        {
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("Resource");
            return Health::in_progress(format!(
                "{kind} generation is {generation}, but latest observed generation is {observed}"
            ));
        }
        let ordered: Vec<(&Expression, HealthStatus, &str)> = [
            (
                self.in_progress.as_ref(),
                HealthStatus::InProgress,
                "inProgress",
            ),
            (self.failed.as_ref(), HealthStatus::Failed, "failed"),
            (Some(&self.current), HealthStatus::Current, "current"),
        ]
        .into_iter()
        .filter_map(|(expression, status, field)| Some((expression?, status, field)))
        .collect();
        let expressions: Vec<&Expression> = ordered.iter().map(|(e, _, _)| *e).collect();
        match super::cel::first_holding(&expressions, object) {
            Ok(Some(index)) => {
                if let Some((expression, status, field)) = ordered.get(index) {
                    return Health::new(
                        *status,
                        format!("healthCheckExprs {field} is true: {}", expression.source()),
                    );
                }
            }
            Ok(None) => {}
            Err(error) => return Health::new(HealthStatus::Unknown, error.to_string()),
        }
        Health::in_progress("no healthCheckExprs expression is true yet")
    }
}

#[cfg(test)]
mod tests {
    use api::meta::CustomHealthCheck;
    use serde_json::json;

    use super::super::{Rules, RulesError, compute};
    use super::*;

    fn check(api_version: &str, kind: Option<&str>, current: &str) -> CustomHealthCheck {
        CustomHealthCheck {
            api_version: api_version.to_string(),
            kind: kind.map(str::to_string),
            current: current.to_string(),
            in_progress: None,
            failed: None,
        }
    }

    fn sealed_secret_rules() -> Rules {
        Rules::new(&[CustomHealthCheck {
            in_progress: Some(
                "status.conditions.exists(e, e.type == 'Synced' && e.status == 'Unknown')".into(),
            ),
            failed: Some(
                "status.conditions.exists(e, e.type == 'Synced' && e.status == 'False')".into(),
            ),
            ..check(
                "bitnami.com/v1alpha1",
                Some("SealedSecret"),
                "status.conditions.exists(e, e.type == 'Synced' && e.status == 'True')",
            )
        }])
        .expect("valid rules")
    }

    fn sealed_secret(synced: Option<&str>) -> Value {
        let mut object = json!({
            "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": "s", "generation": 2},
            "status": {"observedGeneration": 2, "conditions": []},
        });
        if let Some(synced) = synced {
            object["status"]["conditions"] = json!([{"type": "Synced", "status": synced}]);
        }
        object
    }

    #[test]
    fn the_first_true_expression_decides_in_progress_then_failed_then_current() {
        let rules = sealed_secret_rules();
        assert_eq!(
            rules.judge(&sealed_secret(Some("True"))).status,
            HealthStatus::Current
        );
        assert_eq!(
            rules.judge(&sealed_secret(Some("False"))).status,
            HealthStatus::Failed
        );
        assert_eq!(
            rules.judge(&sealed_secret(Some("Unknown"))).status,
            HealthStatus::InProgress
        );
        let both = Rules::new(&[CustomHealthCheck {
            in_progress: Some("true".into()),
            failed: Some("true".into()),
            ..check("example.com/v1", Some("Widget"), "true")
        }])
        .expect("valid rules");
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget"});
        assert_eq!(both.judge(&widget).status, HealthStatus::InProgress);
    }

    #[test]
    fn no_true_expression_is_in_progress() {
        let health = sealed_secret_rules().judge(&sealed_secret(None));
        assert_eq!(health.status, HealthStatus::InProgress);
    }

    #[test]
    fn an_unobserved_generation_is_in_progress_whatever_the_expressions_say() {
        let mut object = sealed_secret(Some("True"));
        object["metadata"]["generation"] = json!(3);
        let health = sealed_secret_rules().judge(&object);
        assert_eq!(health.status, HealthStatus::InProgress);
        assert!(
            health.message.contains("generation is 3"),
            "{}",
            health.message
        );
        // Some kinds type observedGeneration as a string: the expressions decide alone.
        object["status"]["observedGeneration"] = json!("2");
        assert_eq!(
            sealed_secret_rules().judge(&object).status,
            HealthStatus::Current
        );
    }

    #[test]
    fn kstatus_rules_other_than_the_generation_do_not_apply_to_a_covered_kind() {
        let rules =
            Rules::new(&[check("example.com/v1", Some("Widget"), "true")]).expect("valid rules");
        let stalled = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "status": {"conditions": [{"type": "Stalled", "status": "True", "message": "cannot"}]}});
        assert_eq!(rules.judge(&stalled).status, HealthStatus::Current);
        assert_eq!(compute(&stalled).status, HealthStatus::Failed);
    }

    #[test]
    fn kinds_without_rules_keep_kstatus_rules() {
        let rules = sealed_secret_rules();
        let other = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "message": "working"}]}});
        assert_eq!(rules.judge(&other), compute(&other));
        // Same kind name, other group.
        let mut elsewhere = sealed_secret(Some("True"));
        elsewhere["apiVersion"] = json!("example.com/v1");
        assert_eq!(rules.judge(&elsewhere), compute(&elsewhere));
    }

    #[test]
    fn the_version_is_ignored_and_a_rule_for_the_kind_wins_over_one_for_its_group() {
        let rules = Rules::new(&[
            CustomHealthCheck {
                failed: Some("true".into()),
                ..check("bitnami.com/v1alpha1", None, "false")
            },
            check("bitnami.com/v1", Some("SealedSecret"), "true"),
        ])
        .expect("valid rules");
        assert_eq!(
            rules.judge(&sealed_secret(None)).status,
            HealthStatus::Current
        );
        let other_kind = json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "Other"});
        assert_eq!(rules.judge(&other_kind).status, HealthStatus::Failed);
    }

    #[test]
    fn a_failing_evaluation_is_unknown_and_says_why() {
        let rules = Rules::new(&[check("v1", Some("ConfigMap"), "has(data.foo.bar)")])
            .expect("valid rules");
        let health = rules.judge(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {}}));
        assert_eq!(health.status, HealthStatus::Unknown);
        assert!(
            health
                .message
                .starts_with("failed to evaluate the CEL expression 'has(data.foo.bar)': "),
            "{}",
            health.message
        );
    }

    #[test]
    fn an_earlier_expression_failing_to_evaluate_hides_a_later_true_one() {
        let rules = Rules::new(&[CustomHealthCheck {
            in_progress: Some("status.phase == 'Pending'".into()),
            ..check("example.com/v1", Some("Widget"), "true")
        }])
        .expect("valid rules");
        let without_status = json!({"apiVersion": "example.com/v1", "kind": "Widget"});
        assert_eq!(rules.judge(&without_status).status, HealthStatus::Unknown);
        let running = json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"phase": "Running"}});
        assert_eq!(rules.judge(&running).status, HealthStatus::Current);
    }

    #[test]
    fn an_invalid_expression_names_its_entry_kind_field_and_text() {
        let error = Rules::new(&[
            check("v1", Some("ConfigMap"), "true"),
            CustomHealthCheck {
                in_progress: Some("foo.".into()),
                ..check("example.com/v1", Some("Widget"), "true")
            },
        ])
        .expect_err("foo. is not CEL");
        let message = error.to_string();
        assert!(
            message.starts_with(
                "failed to create custom status evaluator for healthchecks[1] (apiVersion example.com/v1, kind Widget): \
                 failed to parse the expression InProgress: failed to parse the CEL expression 'foo.': \
                 ERROR: <input>:1:5: Syntax error: no viable alternative at input '.'"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_invalid_expression_of_a_group_wide_entry_says_so() {
        let error = Rules::new(&[check("bitnami.com/v1alpha1", None, "status.")])
            .expect_err("status. is not CEL");
        assert!(
            error.to_string().starts_with(
                "failed to create custom status evaluator for healthchecks[0] (apiVersion bitnami.com/v1alpha1, every kind): \
                 failed to parse the expression Current: failed to parse the CEL expression 'status.'"
            ),
            "{error}"
        );
    }

    #[test]
    fn an_empty_current_and_duplicate_kinds_are_refused() {
        let error = Rules::new(&[check("v1", Some("ConfigMap"), "")]).expect_err("no current");
        assert!(
            error
                .to_string()
                .ends_with("expression Current not specified"),
            "{error}"
        );
        let error = Rules::new(&[
            check("bitnami.com/v1alpha1", Some("SealedSecret"), "true"),
            check("bitnami.com/v1", Some("SealedSecret"), "false"),
        ])
        .expect_err("the same group and kind twice");
        assert!(matches!(error, RulesError::Duplicate { index: 1, .. }));
        assert_eq!(
            error.to_string(),
            "duplicate custom health check for GroupKind SealedSecret.bitnami.com at healthchecks[1]"
        );
        let error = Rules::new(&[
            check("bitnami.com/v1", None, "true"),
            check("bitnami.com/v1alpha1", Some(""), "true"),
        ])
        .expect_err("the same group twice");
        assert!(matches!(error, RulesError::Duplicate { index: 1, .. }));
    }

    #[test]
    fn empty_optional_expressions_are_skipped() {
        let rules = Rules::new(&[CustomHealthCheck {
            in_progress: Some(String::new()),
            failed: Some(String::new()),
            ..check("example.com/v1", Some("Widget"), "true")
        }])
        .expect("valid rules");
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget"});
        assert_eq!(rules.judge(&widget).status, HealthStatus::Current);
    }
}
