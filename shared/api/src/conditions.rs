//! Flux's condition vocabulary (types and reasons from `fluxcd/pkg/apis/meta` and the
//! controllers' APIs) and the one helper every reconciler uses to set a condition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const HEALTHY: &str = "Healthy";
    pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
    pub const ARTIFACT_OUTDATED: &str = "ArtifactOutdated";
    pub const SOURCE_VERIFIED: &str = "SourceVerified";
    pub const FETCH_FAILED: &str = "FetchFailed";
    pub const BUILD_FAILED: &str = "BuildFailed";
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    pub const RELEASED: &str = "Released";
    pub const TEST_SUCCESS: &str = "TestSuccess";
    pub const REMEDIATED: &str = "Remediated";
    /// Flotilla's detect-only drift mode reports differences under this type.
    pub const DRIFTED: &str = "Drifted";
}

/// Condition reasons.
pub mod reasons {
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const PROGRESSING: &str = "Progressing";
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    pub const SUSPENDED: &str = "Suspended";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const INVALID_PATH: &str = "InvalidPath";
    pub const INVALID_URL: &str = "InvalidURL";
    pub const URL_INVALID: &str = "URLInvalid";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const INSECURE_CONNECTIONS_DISALLOWED: &str = "InsecureConnectionsDisallowed";
    pub const UNSUPPORTED_CONNECTION_TYPE: &str = "UnsupportedConnectionType";
    pub const PRUNE_FAILED: &str = "PruneFailed";
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    pub const BUILD_FAILED: &str = "BuildFailed";
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    pub const HEALTH_CHECK_CANCELED: &str = "HealthCheckCanceled";
    pub const INVALID_CEL_EXPRESSION: &str = "InvalidCELExpression";
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
    pub const ARTIFACT_UP_TO_DATE: &str = "ArtifactUpToDate";
    pub const NEW_ARTIFACT: &str = "NewArtifact";
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    pub const ARCHIVE_OPERATION_FAILED: &str = "ArchiveOperationFailed";
    pub const INSTALL_SUCCEEDED: &str = "InstallSucceeded";
    pub const INSTALL_FAILED: &str = "InstallFailed";
    pub const UPGRADE_SUCCEEDED: &str = "UpgradeSucceeded";
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const TEST_SUCCEEDED: &str = "TestSucceeded";
    pub const TEST_FAILED: &str = "TestFailed";
    pub const ROLLBACK_SUCCEEDED: &str = "RollbackSucceeded";
    pub const ROLLBACK_FAILED: &str = "RollbackFailed";
    pub const UNINSTALL_SUCCEEDED: &str = "UninstallSucceeded";
    pub const UNINSTALL_FAILED: &str = "UninstallFailed";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const NO_DRIFT_DETECTED: &str = "NoDriftDetected";
}

/// Annotations Flux's CLI and webhooks set to ask for a reconcile.
pub mod annotations {
    /// `flux reconcile` writes the current time here; the controller copies it into
    /// `status.lastHandledReconcileAt` once handled.
    pub const RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
    pub const FORCE_REQUESTED_AT: &str = "reconcile.fluxcd.io/forceAt";
    /// Set to `disabled` on an object to keep a Kustomization from changing it.
    pub const RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
    /// Set to `disabled` to keep an object when it leaves the Kustomization.
    pub const PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";
    /// `IfNotPresent` or `Ignore`: how server-side apply treats the object.
    pub const SSA: &str = "kustomize.toolkit.fluxcd.io/ssa";
    /// Set to `disabled` to skip post-build variable substitution for an object.
    pub const SUBSTITUTE: &str = "kustomize.toolkit.fluxcd.io/substitute";
}

/// Sets (or replaces) the condition of the given type in `conditions`.
///
/// As in Kubernetes' `meta.SetStatusCondition`, `lastTransitionTime` changes only when the
/// status changes, so that it tells when the condition last flipped.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) {
    let status = if status { "True" } else { "False" };
    set(
        conditions,
        type_,
        status,
        reason,
        message.into(),
        observed_generation,
        now,
    );
}

/// Sets the condition of the given type to `Unknown`: the controller is finding out (e.g.
/// `Ready` while a reconcile is in progress).
pub fn set_unknown(
    conditions: &mut Vec<Condition>,
    type_: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) {
    set(
        conditions,
        type_,
        "Unknown",
        reason,
        message.into(),
        observed_generation,
        now,
    );
}

fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    observed_generation: Option<i64>,
    now: Time,
) {
    let status = status.to_string();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation,
            last_transition_time: now,
        }),
    }
}

/// Removes the condition of the given type, if present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of the given type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            types::READY,
            false,
            reasons::PROGRESSING,
            "starting",
            Some(1),
            at(10),
        );
        set_condition(
            &mut conditions,
            types::READY,
            false,
            reasons::BUILD_FAILED,
            "bad yaml",
            Some(1),
            at(20),
        );
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].reason, reasons::BUILD_FAILED);
        set_condition(
            &mut conditions,
            types::READY,
            true,
            reasons::RECONCILIATION_SUCCEEDED,
            "ok",
            Some(2),
            at(30),
        );
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert!(is_true(&conditions, types::READY));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn removing_a_condition_leaves_the_others() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            types::READY,
            true,
            reasons::SUCCEEDED,
            "",
            None,
            at(1),
        );
        set_condition(
            &mut conditions,
            types::RECONCILING,
            true,
            reasons::PROGRESSING,
            "",
            None,
            at(1),
        );
        remove_condition(&mut conditions, types::RECONCILING);
        assert_eq!(conditions.len(), 1);
        assert!(find_condition(&conditions, types::RECONCILING).is_none());
    }
}
