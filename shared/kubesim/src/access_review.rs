//! `authorization.k8s.io` reviews (`kubectl auth can-i`, `--list`, and controllers that ask
//! before acting). kubesim authenticates clients but does not enforce RBAC, so every review is
//! allowed, and the answer says why.

use serde_json::{Value, json};

use crate::status::{ApiError, ApiResult};

const REASON: &str = "kubesim does not enforce RBAC: every authenticated request is allowed";

/// The review resources, answered on create and never stored.
pub fn is_review(group: &str, version: &str, resource: &str) -> bool {
    group == "authorization.k8s.io"
        && version == "v1"
        && matches!(
            resource,
            "selfsubjectaccessreviews"
                | "subjectaccessreviews"
                | "localsubjectaccessreviews"
                | "selfsubjectrulesreviews"
        )
}

/// The review with its status filled in.
pub fn answer(resource: &str, mut review: Value) -> ApiResult<Value> {
    let Some(object) = review.as_object_mut() else {
        return Err(ApiError::bad_request("a review must be an object"));
    };
    let status = if resource == "selfsubjectrulesreviews" {
        json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        })
    } else {
        json!({"allowed": true, "reason": REASON})
    };
    object.insert("status".into(), status);
    object
        .entry("metadata")
        .or_insert_with(|| json!({"creationTimestamp": null}));
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_review_is_allowed_with_the_reason() {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}},
        });
        let answered = answer("selfsubjectaccessreviews", review).expect("answered");
        assert_eq!(answered["status"]["allowed"], true);
        assert_eq!(answered["spec"]["resourceAttributes"]["verb"], "create");
    }

    #[test]
    fn a_rules_review_lists_everything() {
        let answered = answer(
            "selfsubjectrulesreviews",
            json!({"spec": {"namespace": "a"}}),
        )
        .expect("answered");
        assert_eq!(answered["status"]["resourceRules"][0]["verbs"][0], "*");
    }
}
