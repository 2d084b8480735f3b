//! One reconcile of a Kustomization, in Flux's order: dependencies, artifact, build,
//! dry-run of everything, staged apply, prune, health; then one status write, one event and
//! the metrics. The actor decides when to run it; this module decides what it does.

use std::sync::Arc;
use std::time::Instant;

use api::conditions::{self, annotations, reasons, types};
use api::duration::go_string;
use api::inventory::{ResourceInventory, ResourceRef};
use api::kustomize::{DriftMode, Kustomization, KustomizationStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::apply::{self, Action, Applier, ApplyError, ChangeSet, Prepared, Target};
use super::build;
use super::deps::Deps;
use super::ignore::{self, IgnoreRules};
use super::plan::{self, Stage};
use super::status::{self, Failure, Report};
use super::{dependencies, impersonate, remote};
use crate::events::{self, EventType, Occurrence};
use crate::health;
use crate::hub::ArtifactReady;

/// The finalizer that lets a Kustomization prune its objects when it is deleted.
pub const FINALIZER: &str = "finalizers.fluxcd.io";
const KIND: &str = "Kustomization";
/// Flux's prefix for failures that retrying the same input cannot fix.
const TERMINAL_ERROR_MESSAGE: &str = "Reconciliation failed terminally due to configuration error";

/// Set by the actor to `Kind/namespace/name` of the source when a new revision of it arrives
/// during the reconcile: a health wait for the old revision is then given up with
/// `HealthCheckCanceled` and the new revision reconciled right after, as Flux's
/// `CancelHealthCheckOnNewRevision` does (always on here: waiting out the timeout of a
/// revision already replaced helps no one).
pub type Interrupt = tokio::sync::watch::Receiver<Option<String>>;

/// What a reconcile did, for the actor to schedule the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reconciled; next at `spec.interval`.
    Succeeded,
    /// Failed in a way that may pass by itself; retry at `spec.retryInterval`.
    Retry,
    /// Failed because of the input; try again at the next interval, revision or spec change.
    Stalled,
    /// `spec.suspend`: nothing done.
    Suspended,
    /// The object was deleted and its finalizer handled; the actor can stop.
    Finalized,
}

/// Runs one reconcile of the object `seen` (read afresh from the API first, so that it
/// starts from the latest status and inventory) with the latest `artifact` of its source.
pub async fn reconcile(
    deps: &Deps,
    seen: Arc<Kustomization>,
    artifact: Option<ArtifactReady>,
    interrupt: Interrupt,
) -> Outcome {
    let context = &deps.context;
    let name = seen.name_any();
    let namespace = seen.namespace().unwrap_or_default();
    // Bounds the requests in flight (and so the connections and their buffers) when
    // thousands of Kustomizations reconcile at once.
    let slot = deps.reconciles.acquire().await.ok();
    let api: Api<Kustomization> = Api::namespaced(context.client.clone(), &namespace);
    // The steps below are boxed: a thousand reconciles may wait for a slot at once, and
    // boxed, each waiting one holds a few hundred bytes instead of the whole reconcile's
    // state (about 9 KB).
    let object = match Box::pin(apply::retrying(|| api.get_opt(&name))).await {
        Ok(Some(latest)) => latest,
        Ok(None) => return Outcome::Finalized,
        Err(error) => {
            tracing::warn!(%namespace, %name, %error, "reading the Kustomization failed");
            return Outcome::Retry;
        }
    };
    if object.meta().deletion_timestamp.is_some() {
        return Box::pin(super::finalize::finalize(deps, &object)).await;
    }
    context
        .metrics
        .record_suspend(KIND, &namespace, &name, object.spec.suspend);
    if object.spec.suspend {
        return Outcome::Suspended;
    }
    if let Err(error) = Box::pin(ensure_finalizer(deps, &object)).await {
        tracing::warn!(%namespace, %name, %error, "adding the finalizer failed");
        return Outcome::Retry;
    }
    let started = Instant::now();
    let mut report = Box::pin(run(deps, &object, artifact, slot, interrupt)).await;
    report.took = started.elapsed();
    report.requested_at = object
        .annotations()
        .get(annotations::RECONCILE_REQUESTED_AT)
        .cloned();
    Box::pin(finish(deps, &object, report)).await
}

/// The steps of a reconcile. The outcome's status is [`finish`]'s to write; this only shows
/// progress while working on new input (see [`status::in_progress`]).
async fn run(
    deps: &Deps,
    object: &Kustomization,
    artifact: Option<ArtifactReady>,
    slot: Option<tokio::sync::SemaphorePermit<'_>>,
    mut interrupt: Interrupt,
) -> Report {
    let context = &deps.context;
    let spec = &object.spec;
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let previous = object.status.clone().unwrap_or_default();
    let Clients {
        local: client,
        target,
        kinds,
    } = match clients(deps, object).await {
        Ok(clients) => clients,
        Err(error) => return Report::failed(error.failure),
    };

    // The user's health rules are checked first, as Flux does: a bad expression is
    // reported whatever the state of the source.
    let health_rules = match health::Rules::new(&spec.health_check_exprs) {
        Ok(rules) => rules,
        Err(error) => {
            return Report::failed(Failure {
                reason: reasons::INVALID_CEL_EXPRESSION,
                message: format!("{TERMINAL_ERROR_MESSAGE}: {error}"),
                terminal: true,
            });
        }
    };
    // 1. Dependencies.
    if let Err(why) = dependencies::check(&client, &deps.kinds, &namespace, &spec.depends_on).await
    {
        return Report::failed(Failure {
            reason: reasons::DEPENDENCY_NOT_READY,
            message: why,
            terminal: false,
        });
    }

    // 2. Artifact.
    let Some(artifact) = artifact else {
        let source = &spec.source_ref;
        return Report::failed(Failure {
            reason: reasons::ARTIFACT_FAILED,
            message: format!(
                "Source artifact not found for {}/{}/{}, retrying",
                source.kind,
                source.namespace.as_deref().unwrap_or(&namespace),
                source.name
            ),
            terminal: false,
        });
    };
    let revision = artifact.artifact.revision.clone();
    let with_revision = |mut report: Report| {
        report.revision = Some(revision.clone());
        report
    };
    let timeout = spec
        .timeout
        .as_ref()
        .map_or_else(|| spec.interval.as_std(), |t| t.as_std());
    let new_input = previous.last_attempted_revision.as_deref() != Some(revision.as_str())
        || previous.observed_generation != object.meta().generation;
    let mut shown = previous.clone();
    if new_input {
        shown = status::in_progress(
            &shown,
            &format!(
                "Fetching manifests for revision {revision} with a timeout of {}",
                go_string(timeout)
            ),
            now(),
        );
        write_status(deps, object, &shown).await;
    }

    // 3. Build (off the actor's thread: files and CPU).
    let objects = match build::from_artifact(&deps.builds, &client, object, &artifact).await {
        Ok(objects) => objects,
        Err(failure) => return with_revision(Report::failed(failure)),
    };
    let mut plan = match plan::plan_apply(objects) {
        Ok(plan) => plan,
        Err(error) => {
            return with_revision(Report::failed(Failure {
                reason: reasons::BUILD_FAILED,
                message: error.to_string(),
                terminal: true,
            }));
        }
    };
    let ignore_rules = match IgnoreRules::new(&spec.ignore) {
        Ok(rules) => rules,
        Err(error) => {
            return with_revision(Report::failed(Failure {
                reason: reasons::RECONCILIATION_FAILED,
                message: error.to_string(),
                terminal: true,
            }));
        }
    };
    for (_, stage) in &mut plan.stages {
        for desired in stage.iter_mut() {
            plan::set_owner_labels(&mut desired.object, &name, &namespace);
        }
    }

    // 4. Dry-run of everything, then the staged apply.
    let applier = Applier {
        client: target,
        kinds,
        field_manager: context.field_manager.clone(),
        force: spec.force,
    };
    if !ignore_rules.is_empty()
        && let Err(error) = keep_ignored_paths(&applier, &ignore_rules, &mut plan).await
    {
        return with_revision(Report::failed(Failure {
            reason: reasons::RECONCILIATION_FAILED,
            terminal: error.is_terminal(),
            message: error.to_string(),
        }));
    }
    let all: Vec<_> = plan.objects().cloned().collect();
    let previous_inventory = previous.inventory.clone().unwrap_or_default();
    let failed = |error: ApplyError, applied: &[&Prepared]| {
        let mut report = Report::failed(Failure {
            reason: reasons::RECONCILIATION_FAILED,
            terminal: error.is_terminal(),
            message: error.to_string(),
        });
        // Objects applied before the failure join the inventory, so that a later prune
        // still finds them if they leave the set.
        report.inventory = Some(merge(&previous_inventory, applied));
        with_revision(report)
    };
    let (prepared, deferred) = match applier.prepare(&all, &all).await {
        Ok(found) => found,
        Err(error) => return failed(error, &[]),
    };

    let detect_only = spec
        .drift
        .as_ref()
        .is_some_and(|d| d.mode == DriftMode::DetectOnly);
    let same_input = previous.last_applied_revision.as_deref() == Some(revision.as_str())
        && previous.observed_generation == object.meta().generation;
    if detect_only && same_input && deferred.is_empty() {
        let drift: status::DriftReport = prepared
            .iter()
            .filter_map(|p| match p.action() {
                Action::Configured => Some((p.subject(), p.drifted_fields())),
                Action::Created => Some((p.subject(), Vec::new())),
                _ => None,
            })
            .collect();
        return with_revision(Report {
            drift: Some(drift),
            ..Report::default()
        });
    }

    let mut changes = ChangeSet::default();
    let (first, rest): (Vec<Prepared>, Vec<Prepared>) = prepared
        .into_iter()
        .partition(|p| p.desired.stage() == Stage::ClusterDefinitions);
    if let Err(error) = applier.apply(&first, &mut changes).await {
        return failed(error, &[]);
    }
    let mut rest = rest;
    if !deferred.is_empty() {
        // Namespaces and CRDs must serve before what they hold can be checked and applied.
        let definitions: Vec<Target> = first
            .iter()
            .filter(|p| matches!(p.action(), Action::Created | Action::Configured))
            .map(Target::from)
            .collect();
        if let Err(error) = applier
            .wait(&definitions, timeout, &health::Rules::default())
            .await
        {
            return failed(error, &first.iter().collect::<Vec<_>>());
        }
        let deferred: Vec<_> = deferred.into_iter().map(|d| d.0).collect();
        match applier.prepare(&deferred, &[]).await {
            Ok((late, _)) => rest.extend(late),
            Err(error) => return failed(error, &first.iter().collect::<Vec<_>>()),
        }
        rest.sort_by(|a, b| {
            a.desired
                .stage()
                .cmp(&b.desired.stage())
                .then_with(|| plan::apply_order(&a.desired.id, &b.desired.id))
        });
    }
    if let Err(error) = applier.apply(&rest, &mut changes).await {
        let applied: Vec<&Prepared> = first.iter().chain(rest.iter()).collect();
        return failed(error, &applied);
    }
    let applied: Vec<&Prepared> = first.iter().chain(rest.iter()).collect();

    // 5. Prune. Without prune, objects that left the set stay in the cluster and leave the
    // inventory, as in Flux.
    let inventory = plan.inventory();
    if spec.prune {
        let stale = plan::prune_candidates(&previous_inventory, &plan);
        if let Err(error) = applier
            .prune(&stale, (&name, &namespace), &mut changes)
            .await
        {
            let mut report = Report::failed(Failure {
                reason: reasons::PRUNE_FAILED,
                message: error.to_string(),
                terminal: false,
            });
            report.inventory = Some(merge(&previous_inventory, &applied));
            emit_changes(deps, object, &revision, &changes).await;
            return with_revision(report);
        }
    }
    emit_changes(deps, object, &revision, &changes).await;

    // 6. Health, without holding a reconcile slot.
    drop(slot);
    let mut report = Report {
        inventory: Some(inventory),
        ..Report::default()
    };
    let mut targets: Vec<Target> = Vec::new();
    // Waiting for itself (a Kustomization that applies its own object) could never end.
    let is_self = |t: &Target| {
        t.resource.kind == KIND
            && t.resource.group == api::kustomize::GROUP
            && t.name == name
            && t.namespace == namespace
    };
    if spec.wait {
        targets.extend(
            applied
                .iter()
                .filter(|p| p.action() != Action::Skipped)
                .map(|p| Target::from(*p)),
        );
    } else {
        for check in &spec.health_checks {
            let ns = check.namespace.as_deref().unwrap_or(&namespace);
            let api_version = check.api_version.as_deref().unwrap_or("v1");
            match applier
                .target(api_version, &check.kind, ns, &check.name)
                .await
            {
                Ok(target) => targets.push(target),
                Err(error) => return failed(error, &applied),
            }
        }
    }
    targets.retain(|t| !is_self(t));
    if !targets.is_empty() {
        let already_healthy = conditions::is_true(&previous.conditions, types::HEALTHY)
            && previous.last_applied_revision.as_deref() == Some(revision.as_str())
            && !changes.changed_anything();
        if !already_healthy {
            shown = status::checking_health(
                &shown,
                &format!(
                    "Running health checks for revision {revision} with a timeout of {}",
                    go_string(timeout)
                ),
                now(),
            );
            write_status(deps, object, &shown).await;
            let waited = tokio::select! {
                waited = applier.wait(&targets, timeout, &health_rules) => Some(waited),
                trigger = interrupted(&mut interrupt) => {
                    report.failure = Some(Failure {
                        reason: reasons::HEALTH_CHECK_CANCELED,
                        message: format!("New reconciliation triggered by {trigger}"),
                        terminal: false,
                    });
                    None
                }
            };
            match waited {
                Some(Ok(())) => report.healthy = Some(true),
                Some(Err(error)) => {
                    report.healthy = Some(false);
                    report.failure = Some(Failure {
                        reason: reasons::HEALTH_CHECK_FAILED,
                        message: error.to_string(),
                        terminal: false,
                    });
                }
                None => {}
            }
        } else {
            report.healthy = Some(true);
        }
    }
    if detect_only {
        report.drift = Some(Vec::new());
    }
    with_revision(report)
}

/// The clients of one reconcile: `local` for the agent's own cluster (dependencies,
/// substitution and decryption inputs), `target` for where objects are applied (another
/// cluster with `spec.kubeConfig`), both as `spec.serviceAccountName` when set; and the
/// kinds known in the target.
pub(super) struct Clients {
    pub local: kube::Client,
    pub target: kube::Client,
    pub kinds: apply::KindCache,
}

/// Why the clients of a reconcile could not be made.
pub(super) struct ClientsError {
    pub failure: Failure,
    /// Reading the kubeconfig Secret failed for a reason that may pass (not "it is not
    /// there" or "it is not valid").
    pub transient: bool,
}

impl From<Failure> for ClientsError {
    fn from(failure: Failure) -> Self {
        ClientsError {
            failure,
            transient: false,
        }
    }
}

pub(super) async fn clients(deps: &Deps, object: &Kustomization) -> Result<Clients, ClientsError> {
    let context = &deps.context;
    let namespace = object.namespace().unwrap_or_default();
    let as_account = |client: &kube::Client| match &object.spec.service_account_name {
        Some(account) => {
            let user = impersonate::service_account_user(&namespace, account);
            impersonate::impersonating(client, &user).ok_or_else(|| Failure {
                reason: reasons::RECONCILIATION_FAILED,
                message: format!("invalid serviceAccountName {account:?}"),
                terminal: true,
            })
        }
        None => Ok(client.clone()),
    };
    let local = as_account(&context.client)?;
    let Some(reference) = &object.spec.kube_config else {
        return Ok(Clients {
            target: local.clone(),
            local,
            kinds: deps.kinds.clone(),
        });
    };
    let remote = remote::client(&local, &namespace, reference)
        .await
        .map_err(|error| {
            use remote::RemoteError as E;
            ClientsError {
                transient: matches!(error, E::Read { .. }),
                failure: Failure {
                    reason: reasons::RECONCILIATION_FAILED,
                    terminal: matches!(error, E::Unsafe { .. } | E::ConfigMapRef | E::NoSecretRef),
                    message: error.to_string(),
                },
            }
        })?;
    Ok(Clients {
        target: as_account(&remote)?,
        local,
        // Another cluster serves other kinds; what this one learns is not shared.
        kinds: apply::KindCache::default(),
    })
}

/// For objects that exist, what the cluster holds at their ignored paths replaces what Git
/// says, before the dry-run (so neither drift nor an apply touches those paths).
async fn keep_ignored_paths(
    applier: &Applier,
    rules: &IgnoreRules,
    plan: &mut plan::ApplyPlan,
) -> Result<(), ApplyError> {
    for (_, stage) in &mut plan.stages {
        for desired in stage.iter_mut() {
            let paths = rules.paths_for(&desired.object);
            if paths.is_empty() {
                continue;
            }
            let id = &desired.id;
            // A kind the cluster does not serve yet has no objects to keep values of.
            let Ok(target) = applier
                .target(&desired.api_version, &id.kind, &id.namespace, &id.name)
                .await
            else {
                continue;
            };
            let api = target.api(&applier.client);
            let live = apply::retrying(|| api.get_opt(&target.name))
                .await
                .map_err(|source| ApplyError::Read {
                    subject: target.subject.clone(),
                    source,
                })?;
            if let Some(live) = live.and_then(|l| serde_json::to_value(l).ok()) {
                ignore::keep_live(&mut desired.object, &live, &paths);
            }
        }
    }
    Ok(())
}

/// The previous inventory plus the objects applied so far.
fn merge(previous: &ResourceInventory, applied: &[&Prepared]) -> ResourceInventory {
    let mut entries = previous.entries.clone();
    for p in applied {
        let entry = ResourceRef::new(&p.desired.id, &p.desired.api_version);
        if !entries.iter().any(|e| e.id == entry.id) {
            entries.push(entry);
        }
    }
    ResourceInventory { entries }
}

/// Writes status, emits the event and records metrics for a finished reconcile.
async fn finish(deps: &Deps, object: &Kustomization, report: Report) -> Outcome {
    let context = &deps.context;
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let previous = object.status.clone().unwrap_or_default();
    let next = status::next(&previous, object.meta().generation, &report, now());
    let written = write_status(deps, object, &next).await;

    let was_ready = conditions::is_true(&previous.conditions, types::READY);
    match &report.failure {
        // Not a failure of this revision: a newer one took its place.
        Some(failure) if failure.reason == reasons::HEALTH_CHECK_CANCELED => {
            let trigger = failure
                .message
                .trim_start_matches("New reconciliation triggered by ");
            emit(
                deps,
                object,
                "Normal",
                failure.reason,
                &format!("Health checks canceled due to new reconciliation triggered by {trigger}"),
                report.revision.as_deref(),
            )
            .await;
        }
        Some(failure) => {
            emit(
                deps,
                object,
                "Warning",
                failure.reason,
                &failure.message,
                report.revision.as_deref(),
            )
            .await;
        }
        None if !was_ready => {
            let message = format!(
                "Reconciliation finished in {:.1}s, next run in {}",
                report.took.as_secs_f64(),
                object.spec.interval.as_str()
            );
            emit(
                deps,
                object,
                "Normal",
                reasons::RECONCILIATION_SUCCEEDED,
                &message,
                report.revision.as_deref(),
            )
            .await;
        }
        None => {}
    }
    context
        .metrics
        .record_duration(KIND, &namespace, &name, report.took);
    let ready = if report.failure.is_some() {
        "False"
    } else {
        "True"
    };
    context
        .metrics
        .record_condition(KIND, &namespace, &name, types::READY, ready);
    tracing::info!(
        %namespace, %name,
        revision = report.revision.as_deref().unwrap_or(""),
        reason = report.reason(),
        took_ms = report.took.as_millis() as u64,
        "reconciled"
    );
    match &report.failure {
        _ if !written => Outcome::Retry,
        None => Outcome::Succeeded,
        Some(f) if f.terminal => Outcome::Stalled,
        Some(_) => Outcome::Retry,
    }
}

/// Resolves with the trigger once the actor interrupts; never when it does not.
async fn interrupted(interrupt: &mut Interrupt) -> String {
    match interrupt.wait_for(Option::is_some).await {
        Ok(trigger) => trigger.clone().unwrap_or_default(),
        // The actor is gone (it stopped, e.g. the object was deleted): nothing will come.
        Err(_) => std::future::pending().await,
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Writes the status; `false` when the API server did not take it (then the reconcile is
/// retried, so that the status catches up).
async fn write_status(deps: &Deps, object: &Kustomization, status: &KustomizationStatus) -> bool {
    let api: Api<Kustomization> = Api::namespaced(
        deps.context.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    let patch = json!({ "status": status });
    let name = object.name_any();
    let params = PatchParams::default();
    let merge = Patch::Merge(&patch);
    match apply::retrying(|| api.patch_status(&name, &params, &merge)).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%name, %error, "writing status failed");
            false
        }
    }
}

async fn ensure_finalizer(deps: &Deps, object: &Kustomization) -> Result<(), kube::Error> {
    if object.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let api: Api<Kustomization> = Api::namespaced(
        deps.context.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
}

pub(super) async fn emit_changes(
    deps: &Deps,
    object: &Kustomization,
    revision: &str,
    changes: &ChangeSet,
) {
    let summary = changes.summary();
    if !summary.is_empty() {
        let revision = (!revision.is_empty()).then_some(revision);
        emit(
            deps,
            object,
            "Normal",
            reasons::PROGRESSING,
            &summary,
            revision,
        )
        .await;
    }
}

/// Records a core/v1 Event on the Kustomization, as Flux's controllers do.
pub(super) async fn emit(
    deps: &Deps,
    object: &Kustomization,
    type_: &str,
    reason: &str,
    message: &str,
    revision: Option<&str>,
) {
    let annotations = revision
        .map(|r| {
            (
                "kustomize.toolkit.fluxcd.io/revision".to_string(),
                r.to_string(),
            )
        })
        .into_iter()
        .collect();
    let type_ = if type_ == "Warning" {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let occurrence = Occurrence {
        type_,
        reason,
        message,
        component: "kustomize-controller",
        annotations,
    };
    events::record(&deps.context.client, object, occurrence).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_merge_keeps_previous_entries_and_adds_applied_ones_once() {
        let previous = ResourceInventory {
            entries: vec![ResourceRef {
                id: "default_a__ConfigMap".into(),
                v: "v1".into(),
            }],
        };
        assert_eq!(merge(&previous, &[]), previous);
    }

    #[test]
    fn unchanged_objects_are_not_part_of_the_change_event() {
        let changes = ChangeSet(vec![crate::kustomization::apply::Change {
            subject: "ConfigMap/default/a".into(),
            action: Action::Unchanged,
        }]);
        assert!(changes.summary().is_empty());
    }
}
