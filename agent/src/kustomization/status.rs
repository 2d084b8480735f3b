//! The status a reconcile leaves, in Flux's vocabulary, built in memory from what the
//! reconcile found and written once.
//!
//! - Success: `Ready=True` (`ReconciliationSucceeded`, "Applied revision: ..."), `Healthy`
//!   when health was checked, no `Reconciling`/`Stalled`; `lastAppliedRevision` moves.
//! - Transient failure: `Ready=False` with the failure's reason and `Reconciling=True`
//!   (`ProgressingWithRetry`); retried at `retryInterval`.
//! - Terminal failure (the input itself is wrong): `Ready=False` and `Stalled=True` with
//!   the same reason; retried only on a new revision, a spec change or the next interval.
//! - Always: `observedGeneration`, `lastAttemptedRevision`, `lastHandledReconcileAt`.

use std::time::Duration;

use api::conditions::{self, reasons, types};
use api::inventory::ResourceInventory;
use api::kustomize::KustomizationStatus;
use api::meta::Snapshot;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

/// How many history entries are kept, as in Flux.
pub const HISTORY_LIMIT: usize = 5;

/// Why a reconcile failed, as the status and event report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A Flux reason: `BuildFailed`, `HealthCheckFailed`, `DependencyNotReady`, ...
    pub reason: &'static str,
    pub message: String,
    /// Retrying the same input cannot help (mark `Stalled`).
    pub terminal: bool,
}

/// Drift found in detect-only mode: `Kind/ns/name` and its changed fields.
pub type DriftReport = Vec<(String, Vec<String>)>;

/// What one reconcile found; the input of [`next`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub revision: Option<String>,
    /// The inventory after this reconcile; `None` keeps the previous one.
    pub inventory: Option<ResourceInventory>,
    /// `Some(true/false)` when health was checked.
    pub healthy: Option<bool>,
    /// Detect-only drift; `Some(empty)` when drift was checked and none found.
    pub drift: Option<DriftReport>,
    pub failure: Option<Failure>,
    pub requested_at: Option<String>,
    pub took: Duration,
}

impl Report {
    pub fn failed(failure: Failure) -> Self {
        Report {
            failure: Some(failure),
            ..Report::default()
        }
    }

    /// The reason of the Ready condition this report leads to.
    pub fn reason(&self) -> &'static str {
        self.failure
            .as_ref()
            .map_or(reasons::RECONCILIATION_SUCCEEDED, |f| f.reason)
    }
}

/// The status shown while a reconcile of new input (a revision or generation not attempted
/// yet) is under way, as Flux shows it: `Ready=Unknown` and `Reconciling=True` saying what
/// is being done. A periodic reconcile of the same input does not write it, so that it
/// writes status once.
pub fn in_progress(previous: &KustomizationStatus, step: &str, now: Time) -> KustomizationStatus {
    let mut status = previous.clone();
    let generation = previous.observed_generation;
    let c = &mut status.conditions;
    conditions::set_unknown(
        c,
        types::READY,
        reasons::PROGRESSING,
        "Reconciliation in progress",
        generation,
        now.clone(),
    );
    conditions::set_condition(
        c,
        types::RECONCILING,
        true,
        reasons::PROGRESSING,
        step,
        generation,
        now,
    );
    c.sort_by_key(|c| condition_rank(&c.type_));
    status
}

/// [`in_progress`] while waiting for health: `Healthy=Unknown` too.
pub fn checking_health(
    previous: &KustomizationStatus,
    step: &str,
    now: Time,
) -> KustomizationStatus {
    let mut status = in_progress(previous, step, now.clone());
    let generation = previous.observed_generation;
    conditions::set_unknown(
        &mut status.conditions,
        types::HEALTHY,
        reasons::PROGRESSING,
        step,
        generation,
        now,
    );
    status.conditions.sort_by_key(|c| condition_rank(&c.type_));
    status
}

/// The status after a reconcile.
pub fn next(
    previous: &KustomizationStatus,
    generation: Option<i64>,
    report: &Report,
    now: Time,
) -> KustomizationStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    if let Some(requested) = &report.requested_at {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    if let Some(revision) = &report.revision {
        status.last_attempted_revision = Some(revision.clone());
    }
    if let Some(inventory) = &report.inventory {
        status.inventory = Some(inventory.clone());
    }
    let c = &mut status.conditions;
    match &report.failure {
        None => {
            let revision = report.revision.clone().unwrap_or_default();
            status.last_applied_revision = report.revision.clone();
            conditions::set_condition(
                c,
                types::READY,
                true,
                reasons::RECONCILIATION_SUCCEEDED,
                format!("Applied revision: {revision}"),
                generation,
                now.clone(),
            );
            conditions::remove_condition(c, types::RECONCILING);
            conditions::remove_condition(c, types::STALLED);
            if report.healthy == Some(true) {
                conditions::set_condition(
                    c,
                    types::HEALTHY,
                    true,
                    reasons::SUCCEEDED,
                    "Health check passed",
                    generation,
                    now.clone(),
                );
            }
        }
        Some(failure) => {
            conditions::set_condition(
                c,
                types::READY,
                false,
                failure.reason,
                failure.message.clone(),
                generation,
                now.clone(),
            );
            if failure.terminal {
                conditions::remove_condition(c, types::RECONCILING);
                conditions::set_condition(
                    c,
                    types::STALLED,
                    true,
                    failure.reason,
                    failure.message.clone(),
                    generation,
                    now.clone(),
                );
            } else {
                conditions::remove_condition(c, types::STALLED);
                conditions::set_condition(
                    c,
                    types::RECONCILING,
                    true,
                    reasons::PROGRESSING_WITH_RETRY,
                    format!("Reconciliation failed, retrying: {}", failure.message),
                    generation,
                    now.clone(),
                );
            }
            if report.healthy == Some(false) {
                conditions::set_condition(
                    c,
                    types::HEALTHY,
                    false,
                    reasons::HEALTH_CHECK_FAILED,
                    failure.message.clone(),
                    generation,
                    now.clone(),
                );
            }
        }
    }
    match &report.drift {
        Some(drift) if !drift.is_empty() => conditions::set_condition(
            c,
            types::DRIFTED,
            true,
            reasons::DRIFT_DETECTED,
            drift_message(drift),
            generation,
            now.clone(),
        ),
        Some(_) => conditions::set_condition(
            c,
            types::DRIFTED,
            false,
            reasons::NO_DRIFT_DETECTED,
            "No drift detected",
            generation,
            now.clone(),
        ),
        None => {}
    }
    // Flux orders Ready first so that `kubectl get` shows it; keep a stable order.
    c.sort_by_key(|c| condition_rank(&c.type_));
    record_history(&mut status, report, now);
    status
}

fn condition_rank(type_: &str) -> usize {
    [
        types::READY,
        types::RECONCILING,
        types::STALLED,
        types::HEALTHY,
        types::DRIFTED,
    ]
    .iter()
    .position(|t| *t == type_)
    .unwrap_or(usize::MAX)
}

/// `Deployment/default/web: .spec.replicas; ConfigMap/default/c: .data.x, .data.y`.
pub fn drift_message(drift: &DriftReport) -> String {
    drift
        .iter()
        .map(|(subject, fields)| {
            if fields.is_empty() {
                format!("{subject}: missing")
            } else {
                format!("{subject}: {}", fields.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Flux's history: one entry per distinct (inventory digest, outcome), newest first.
fn record_history(status: &mut KustomizationStatus, report: &Report, now: Time) {
    let Some(revision) = &report.revision else {
        return;
    };
    let mut hasher = Sha256::new();
    hasher.update(revision.as_bytes());
    for entry in status.inventory.iter().flat_map(|i| i.entries.iter()) {
        hasher.update(entry.id.as_bytes());
        hasher.update(entry.v.as_bytes());
    }
    let digest = format!("sha256:{:x}", hasher.finalize());
    let outcome = report.reason().to_string();
    let took = api::Duration::from_std(report.took);
    let position = status
        .history
        .iter()
        .position(|s| s.digest == digest && s.last_reconciled_status == outcome);
    let entry = match position {
        Some(i) => {
            let mut entry = status.history.remove(i);
            entry.last_reconciled = now;
            entry.last_reconciled_duration = took;
            entry.total_reconciliations += 1;
            entry
        }
        None => Snapshot {
            digest,
            first_reconciled: now.clone(),
            last_reconciled: now,
            last_reconciled_duration: took,
            last_reconciled_status: outcome,
            total_reconciliations: 1,
            metadata: Some([("revision".to_string(), revision.clone())].into()),
        },
    };
    status.history.insert(0, entry);
    status.history.truncate(HISTORY_LIMIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap_or_else(|e| panic!("{e}")))
    }

    fn ready(status: &KustomizationStatus) -> (String, String) {
        let c = conditions::find_condition(&status.conditions, types::READY)
            .unwrap_or_else(|| panic!("no Ready"));
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn success_sets_ready_revisions_and_clears_reconciling() {
        let failed = next(
            &KustomizationStatus::default(),
            Some(1),
            &Report {
                revision: Some("main@sha1:a".into()),
                ..Report::failed(Failure {
                    reason: reasons::HEALTH_CHECK_FAILED,
                    message: "timeout".into(),
                    terminal: false,
                })
            },
            at(1),
        );
        assert_eq!(ready(&failed), ("False".into(), "HealthCheckFailed".into()));
        assert!(conditions::is_true(&failed.conditions, types::RECONCILING));
        assert_eq!(failed.last_applied_revision, None);
        assert_eq!(
            failed.last_attempted_revision.as_deref(),
            Some("main@sha1:a")
        );
        let ok = next(
            &failed,
            Some(2),
            &Report {
                revision: Some("main@sha1:b".into()),
                healthy: Some(true),
                requested_at: Some("now".into()),
                ..Report::default()
            },
            at(2),
        );
        assert_eq!(
            ready(&ok),
            ("True".into(), "ReconciliationSucceeded".into())
        );
        assert!(conditions::find_condition(&ok.conditions, types::RECONCILING).is_none());
        assert_eq!(ok.last_applied_revision.as_deref(), Some("main@sha1:b"));
        assert_eq!(ok.observed_generation, Some(2));
        assert_eq!(ok.last_handled_reconcile_at.as_deref(), Some("now"));
        assert_eq!(ok.conditions[0].type_, types::READY);
        assert_eq!(ok.history.len(), 2);
        assert_eq!(
            ok.history[0].last_reconciled_status,
            "ReconciliationSucceeded"
        );
    }

    #[test]
    fn progress_shows_ready_unknown_and_what_is_being_done_then_the_outcome_replaces_it() {
        let ok = next(
            &KustomizationStatus::default(),
            Some(1),
            &Report {
                revision: Some("main@sha1:a".into()),
                healthy: Some(true),
                ..Report::default()
            },
            at(1),
        );
        let fetching = in_progress(&ok, "Fetching manifests for revision main@sha1:b", at(2));
        assert_eq!(ready(&fetching), ("Unknown".into(), "Progressing".into()));
        let reconciling = conditions::find_condition(&fetching.conditions, types::RECONCILING)
            .unwrap_or_else(|| panic!("no Reconciling"));
        assert_eq!(reconciling.status, "True");
        assert_eq!(
            reconciling.message,
            "Fetching manifests for revision main@sha1:b"
        );
        assert_eq!(
            fetching.last_applied_revision.as_deref(),
            Some("main@sha1:a")
        );
        let health = checking_health(&fetching, "Running health checks", at(3));
        let healthy = conditions::find_condition(&health.conditions, types::HEALTHY)
            .unwrap_or_else(|| panic!("no Healthy"));
        assert_eq!(healthy.status, "Unknown");
        let types: Vec<&str> = health.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [types::READY, types::RECONCILING, types::HEALTHY]);
    }

    #[test]
    fn terminal_failures_stall_and_drift_is_reported_by_field() {
        let status = next(
            &KustomizationStatus::default(),
            Some(1),
            &Report {
                drift: Some(vec![(
                    "Deployment/default/web".into(),
                    vec![".spec.replicas".into()],
                )]),
                ..Report::failed(Failure {
                    reason: reasons::BUILD_FAILED,
                    message: "bad yaml".into(),
                    terminal: true,
                })
            },
            at(1),
        );
        assert!(conditions::is_true(&status.conditions, types::STALLED));
        let drifted = conditions::find_condition(&status.conditions, types::DRIFTED)
            .unwrap_or_else(|| panic!("no Drifted"));
        assert_eq!(drifted.message, "Deployment/default/web: .spec.replicas");
        assert_eq!(drifted.reason, "DriftDetected");
    }

    #[test]
    fn repeated_outcomes_count_in_one_history_entry() {
        let report = Report {
            revision: Some("main@sha1:a".into()),
            ..Report::default()
        };
        let once = next(&KustomizationStatus::default(), Some(1), &report, at(1));
        let twice = next(&once, Some(1), &report, at(2));
        assert_eq!(twice.history.len(), 1);
        assert_eq!(twice.history[0].total_reconciliations, 2);
    }
}
