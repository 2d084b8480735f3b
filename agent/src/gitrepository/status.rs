//! The status a fetch leaves on a GitRepository, with Flux's conditions and reasons.

use api::conditions::{reasons, remove_condition, set_condition, types};
use api::meta::Artifact;
use api::source::GitRepositoryStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::fetch::FetchFailure;

/// What one reconcile found.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The artifact for the resolved revision is stored and served.
    Stored(Artifact),
    Failed(FetchFailure),
}

/// What else the status records about the reconcile.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub generation: Option<i64>,
    /// The `reconcile.fluxcd.io/requestedAt` value this reconcile handled.
    pub handled_request: Option<String>,
    pub ignore: Option<String>,
}

/// The next status: conditions as source-controller sets them, the last good artifact kept
/// on failure.
pub fn next(
    previous: &GitRepositoryStatus,
    outcome: &Outcome,
    observed: Observed,
    now: Time,
) -> GitRepositoryStatus {
    let mut status = previous.clone();
    status.observed_generation = observed.generation;
    if observed.handled_request.is_some() {
        status.last_handled_reconcile_at = observed.handled_request;
    }
    status.observed_ignore = observed.ignore;
    status.url = None;
    let generation = observed.generation;
    let conditions = &mut status.conditions;
    match outcome {
        Outcome::Stored(artifact) => {
            let message = format!("stored artifact for revision '{}'", artifact.revision);
            remove_condition(conditions, types::FETCH_FAILED);
            remove_condition(conditions, types::STALLED);
            remove_condition(conditions, types::RECONCILING);
            set_condition(
                conditions,
                types::ARTIFACT_IN_STORAGE,
                true,
                reasons::SUCCEEDED,
                &message,
                generation,
                now.clone(),
            );
            set_condition(
                conditions,
                types::READY,
                true,
                reasons::SUCCEEDED,
                message,
                generation,
                now,
            );
            status.artifact = Some(artifact.clone());
        }
        Outcome::Failed(failure) => {
            set_condition(
                conditions,
                types::FETCH_FAILED,
                true,
                failure.reason,
                &failure.message,
                generation,
                now.clone(),
            );
            set_condition(
                conditions,
                types::READY,
                false,
                failure.reason,
                &failure.message,
                generation,
                now.clone(),
            );
            if failure.terminal {
                remove_condition(conditions, types::RECONCILING);
                set_condition(
                    conditions,
                    types::STALLED,
                    true,
                    failure.reason,
                    &failure.message,
                    generation,
                    now,
                );
            } else {
                remove_condition(conditions, types::STALLED);
                let retrying = format!("retrying after failure: {}", failure.message);
                set_condition(
                    conditions,
                    types::RECONCILING,
                    true,
                    reasons::PROGRESSING_WITH_RETRY,
                    retrying,
                    generation,
                    now,
                );
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use api::conditions::{find_condition, is_true};

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_else(|e| panic!("{e}")))
    }

    fn artifact(revision: &str) -> Artifact {
        Artifact {
            digest: Some("sha256:00".into()),
            path: "00.tar.gz".into(),
            url: "http://127.0.0.1:9090/00.tar.gz".into(),
            revision: revision.into(),
            last_update_time: at(1),
            size: Some(10),
            metadata: None,
        }
    }

    fn failure(terminal: bool) -> FetchFailure {
        FetchFailure {
            reason: reasons::GIT_OPERATION_FAILED,
            message: "connection refused".into(),
            terminal,
        }
    }

    #[test]
    fn a_stored_artifact_makes_the_source_ready_and_clears_failures() {
        let failed = next(
            &GitRepositoryStatus::default(),
            &Outcome::Failed(failure(false)),
            Observed::default(),
            at(1),
        );
        let observed = Observed {
            generation: Some(2),
            ..Observed::default()
        };
        let status = next(
            &failed,
            &Outcome::Stored(artifact("main@sha1:ab")),
            observed,
            at(2),
        );
        assert!(is_true(&status.conditions, types::READY));
        assert!(is_true(&status.conditions, types::ARTIFACT_IN_STORAGE));
        assert!(find_condition(&status.conditions, types::FETCH_FAILED).is_none());
        assert!(find_condition(&status.conditions, types::RECONCILING).is_none());
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(
            status.artifact.map(|a| a.revision).as_deref(),
            Some("main@sha1:ab")
        );
    }

    #[test]
    fn a_failed_fetch_keeps_the_last_artifact_and_retries() {
        let ready = next(
            &GitRepositoryStatus::default(),
            &Outcome::Stored(artifact("main@sha1:ab")),
            Observed::default(),
            at(1),
        );
        let status = next(
            &ready,
            &Outcome::Failed(failure(false)),
            Observed::default(),
            at(2),
        );
        assert!(!is_true(&status.conditions, types::READY));
        assert!(is_true(&status.conditions, types::FETCH_FAILED));
        assert!(is_true(&status.conditions, types::RECONCILING));
        assert!(find_condition(&status.conditions, types::STALLED).is_none());
        assert_eq!(
            status.artifact.map(|a| a.revision).as_deref(),
            Some("main@sha1:ab")
        );
    }

    #[test]
    fn a_terminal_failure_stalls() {
        let status = next(
            &GitRepositoryStatus::default(),
            &Outcome::Failed(failure(true)),
            Observed::default(),
            at(1),
        );
        assert!(is_true(&status.conditions, types::STALLED));
        assert!(find_condition(&status.conditions, types::RECONCILING).is_none());
        let ready = find_condition(&status.conditions, types::READY).map(|c| c.message.clone());
        assert_eq!(ready.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_handled_request_is_recorded() {
        let observed = Observed {
            handled_request: Some("2026-11-21T06:00:00Z".into()),
            ..Observed::default()
        };
        let status = next(
            &GitRepositoryStatus::default(),
            &Outcome::Stored(artifact("main@sha1:ab")),
            observed,
            at(1),
        );
        assert_eq!(
            status.last_handled_reconcile_at.as_deref(),
            Some("2026-11-21T06:00:00Z")
        );
    }
}
