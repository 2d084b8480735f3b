//! `GitRepositoryActor`: one per GitRepository, started and supervised by the registry.
//!
//! The lifecycle is [`crate::source::lifecycle`]'s pure state machine; this actor feeds it
//! events (start, spec change, suspend/resume, `reconcile.fluxcd.io/requestedAt`, timer,
//! fetch results) and carries out its effects (fetch, schedule, publish).
//!
//! One reconcile is one task off the actor thread: read credentials, fetch and package
//! (blocking, on the blocking pool), write status once, record an event and metrics. The
//! actor then publishes a new artifact to the [`ArtifactHub`](crate::hub::ArtifactHub).
//!
//! # Supervision
//! A panic in a fetch ends its task; the actor then stops and the registry restarts it
//! with backoff. On (re)start the actor republishes the artifact it already has in the
//! store, so consumers never wait for a fetch after an agent restart.
//!
//! # Guarantees
//! - At most one fetch per source at a time; requests during a fetch fold into one more.
//! - The last good artifact stays stored, served and published while fetches fail.
//! - Credentials never appear in status, events or logs (the Git layer scrubs messages).

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use api::conditions::{annotations, reasons, types};
use api::source::GitRepository;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::fetch::{FetchFailure, FetchJob};
use super::status::{self, Outcome};
use crate::context::AgentContext;
use crate::events::{self, EventType, Occurrence};
use crate::hub::{ArtifactReady, Publish, SourceRef, Withdraw};
use crate::registry::{Gone, ObjectActor, Observed};
use crate::source::artifact::{ArtifactStore, SourceKey, StoredArtifact};
use crate::source::git::Auth;
use crate::source::lifecycle::{self, Effect, Event, Policy, State};

const KIND: &str = "GitRepository";
/// Events are attributed to Flux's controller, so `flux events` and alerts match them.
const COMPONENT: &str = "source-controller";

/// What every GitRepository actor shares.
#[derive(Clone)]
pub struct SourceDeps {
    pub context: AgentContext,
    pub store: Arc<ArtifactStore>,
}

/// Keeps one GitRepository fetched, stored, reported and published.
pub struct GitRepositoryActor {
    object: Arc<GitRepository>,
    deps: SourceDeps,
    state: State,
    timer: Option<SpawnHandle>,
    /// Varies the interval jitter between sources and between cycles.
    seed: u64,
    /// The `requestedAt` value the next fetch will record as handled.
    requested: Option<String>,
    /// The artifact of the last successful fetch, published on [`Effect::Publish`].
    stored: Option<StoredArtifact>,
}

/// The scheduled timer fired.
#[derive(Message)]
#[rtype(result = "()")]
struct TimerFired;

/// A fetch task ended.
#[derive(Message)]
#[rtype(result = "()")]
struct FetchDone(Result<StoredArtifact, FetchFailure>);

/// A fetch task panicked: stop so that the registry restarts this actor.
#[derive(Message)]
#[rtype(result = "()")]
struct Crashed(String);

impl ObjectActor for GitRepositoryActor {
    type Object = GitRepository;
    type Deps = SourceDeps;

    fn for_object(object: Arc<GitRepository>, deps: &SourceDeps) -> Self {
        let seed = object.uid().map_or(0, |uid| {
            uid.bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        });
        GitRepositoryActor {
            object,
            deps: deps.clone(),
            state: State::Idle,
            timer: None,
            seed,
            requested: None,
            stored: None,
        }
    }
}

impl GitRepositoryActor {
    fn key(&self) -> Option<SourceKey> {
        SourceKey::new(
            "gitrepository",
            &self.object.namespace().unwrap_or_default(),
            &self.object.name_any(),
        )
        .ok()
    }

    fn source_ref(&self) -> SourceRef {
        SourceRef {
            kind: KIND.into(),
            namespace: self.object.namespace().unwrap_or_default(),
            name: self.object.name_any(),
        }
    }

    fn policy(&self) -> Policy {
        Policy {
            interval: self.object.spec.interval.as_std(),
            ..Policy::default()
        }
    }

    fn step(&mut self, event: Event, ctx: &mut Context<Self>) {
        self.seed = self.seed.wrapping_add(1);
        let (state, effects) =
            lifecycle::step(self.state.clone(), event, &self.policy(), self.seed);
        self.state = state;
        for effect in effects {
            match effect {
                Effect::Fetch => self.start_fetch(ctx),
                Effect::Schedule(delay) => {
                    if let Some(timer) = self.timer.take() {
                        ctx.cancel_future(timer);
                    }
                    self.timer = Some(ctx.notify_later(TimerFired, delay));
                }
                Effect::CancelTimer => {
                    if let Some(timer) = self.timer.take() {
                        ctx.cancel_future(timer);
                    }
                }
                Effect::Publish { .. } => self.publish(),
            }
        }
    }

    fn publish(&self) {
        if let Some(stored) = &self.stored {
            let artifact = to_artifact(stored, &self.deps.context.artifact_base_url);
            let file = self.deps.store.root().join(&stored.path);
            self.deps.context.hub.do_send(Publish(ArtifactReady {
                source: self.source_ref(),
                artifact,
                file,
            }));
        }
    }

    fn start_fetch(&mut self, ctx: &mut Context<Self>) {
        let Some(key) = self.key() else {
            let failure = FetchFailure {
                reason: reasons::INVALID_PATH,
                message: "namespace and name cannot be used as a storage key".into(),
                terminal: true,
            };
            ctx.notify(FetchDone(Err(failure)));
            return;
        };
        let object = self.object.clone();
        let deps = self.deps.clone();
        let handled_request = self.requested.clone();
        let started = Instant::now();
        let me = ctx.address();
        actix::spawn(async move {
            let result = match read_auth(&deps.context, &object).await {
                Ok(auth) => {
                    let cache_dir = deps
                        .context
                        .storage_dir
                        .join("git")
                        .join(object.namespace().unwrap_or_default())
                        .join(object.name_any());
                    let job = FetchJob::new(&object.spec, auth, cache_dir, deps.store.clone(), key);
                    match tokio::task::spawn_blocking(move || job.run()).await {
                        Ok(result) => result,
                        Err(join) => {
                            me.do_send(Crashed(join.to_string()));
                            return;
                        }
                    }
                }
                Err(failure) => Err(failure),
            };
            report(&deps, &object, &result, handled_request, started).await;
            me.do_send(FetchDone(result));
        });
    }
}

/// Reads the credentials Secret named by `spec.secretRef`, if any.
async fn read_auth(context: &AgentContext, object: &GitRepository) -> Result<Auth, FetchFailure> {
    let Some(secret_ref) = &object.spec.secret_ref else {
        return Ok(Auth::none());
    };
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let secret = api
        .get(&secret_ref.name)
        .await
        .map_err(|error| FetchFailure {
            reason: reasons::AUTHENTICATION_FAILED,
            message: format!(
                "failed to get secret '{namespace}/{}': {error}",
                secret_ref.name
            ),
            terminal: false,
        })?;
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Auth::from_secret_data(&data).map_err(super::fetch::git_failure)
}

fn to_artifact(stored: &StoredArtifact, base_url: &str) -> api::meta::Artifact {
    let seconds = stored.last_update_time.timestamp();
    api::meta::Artifact {
        digest: Some(stored.digest.clone()),
        path: stored.path.clone(),
        url: stored.url(base_url),
        revision: stored.revision.clone(),
        last_update_time: Time(
            k8s_openapi::jiff::Timestamp::from_second(seconds)
                .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        ),
        size: i64::try_from(stored.size).ok(),
        metadata: None,
    }
}

/// Writes the status a fetch leaves, and records its event and metrics.
async fn report(
    deps: &SourceDeps,
    object: &GitRepository,
    result: &Result<StoredArtifact, FetchFailure>,
    handled_request: Option<String>,
    started: Instant,
) {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let previous = object.status.clone().unwrap_or_default();
    let outcome = match result {
        Ok(stored) => Outcome::Stored(to_artifact(stored, &deps.context.artifact_base_url)),
        Err(failure) => Outcome::Failed(failure.clone()),
    };
    let observed = status::Observed {
        generation: object.metadata.generation,
        handled_request,
        ignore: object.spec.ignore.clone(),
    };
    let next = status::next(
        &previous,
        &outcome,
        observed,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let api: Api<GitRepository> = Api::namespaced(deps.context.client.clone(), &namespace);
    let patch = json!({ "status": next });
    let params = PatchParams {
        field_manager: Some(deps.context.field_manager.clone()),
        ..PatchParams::default()
    };
    if let Err(error) = api
        .patch_status(&name, &params, &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(%namespace, %name, %error, "writing GitRepository status failed");
    }

    let metrics = &deps.context.metrics;
    metrics.record_duration(KIND, &namespace, &name, started.elapsed());
    let ready = if result.is_ok() { "True" } else { "False" };
    metrics.record_condition(KIND, &namespace, &name, types::READY, ready);
    metrics.record_suspend(KIND, &namespace, &name, object.spec.suspend);

    let client = &deps.context.client;
    match result {
        Ok(stored) => {
            let previous_revision = previous.artifact.as_ref().map(|a| a.revision.as_str());
            if previous_revision != Some(stored.revision.as_str()) {
                let message = format!("stored artifact for revision '{}'", stored.revision);
                tracing::info!(%namespace, %name, revision = %stored.revision, "new artifact");
                let annotations = [(
                    "source.toolkit.fluxcd.io/revision".to_string(),
                    stored.revision.clone(),
                )]
                .into();
                let occurrence = Occurrence {
                    type_: EventType::Normal,
                    reason: reasons::NEW_ARTIFACT,
                    message: &message,
                    component: COMPONENT,
                    annotations,
                };
                events::record(client, object, occurrence).await;
            }
        }
        Err(failure) => {
            tracing::warn!(%namespace, %name, reason = failure.reason, message = %failure.message, "fetch failed");
            let occurrence = Occurrence {
                type_: EventType::Warning,
                reason: failure.reason,
                message: &failure.message,
                component: COMPONENT,
                annotations: Default::default(),
            };
            events::record(client, object, occurrence).await;
        }
    }
}

impl Actor for GitRepositoryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Serve and publish what the store already holds for the revision in status, so a
        // restarted agent does not make consumers wait for a fetch.
        let current = self
            .object
            .status
            .as_ref()
            .and_then(|s| s.artifact.as_ref())
            .map(|a| a.revision.clone());
        if let (Some(key), Some(current)) = (self.key(), current)
            && let Ok(Some(latest)) = self.deps.store.latest(&key)
            && latest.revision == current
        {
            self.stored = Some(latest);
            self.publish();
        }
        self.requested = requested_at(&self.object);
        if self.object.spec.suspend {
            self.step(Event::Suspend, ctx);
        } else {
            self.step(Event::SpecChanged, ctx);
        }
    }
}

fn requested_at(object: &GitRepository) -> Option<String> {
    object
        .annotations()
        .get(annotations::RECONCILE_REQUESTED_AT)
        .cloned()
}

impl Handler<Observed<GitRepository>> for GitRepositoryActor {
    type Result = ();

    fn handle(&mut self, Observed(object): Observed<GitRepository>, ctx: &mut Context<Self>) {
        let previous = std::mem::replace(&mut self.object, object);
        let request = requested_at(&self.object);
        let handled = self
            .object
            .status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.clone());
        let spec_changed = previous.metadata.generation != self.object.metadata.generation;
        match (previous.spec.suspend, self.object.spec.suspend) {
            (false, true) => self.step(Event::Suspend, ctx),
            (true, false) => self.step(Event::Resume, ctx),
            _ if spec_changed => self.step(Event::SpecChanged, ctx),
            _ => {}
        }
        if request.is_some() && request != self.requested && request != handled {
            self.requested = request;
            self.step(Event::ReconcileRequested, ctx);
        }
    }
}

impl Handler<TimerFired> for GitRepositoryActor {
    type Result = ();

    fn handle(&mut self, _: TimerFired, ctx: &mut Context<Self>) {
        self.timer = None;
        self.step(Event::TimerFired, ctx);
    }
}

impl Handler<FetchDone> for GitRepositoryActor {
    type Result = ();

    fn handle(&mut self, FetchDone(result): FetchDone, ctx: &mut Context<Self>) {
        match result {
            Ok(stored) => {
                let revision = stored.revision.clone();
                self.stored = Some(stored);
                self.step(Event::Fetched { revision }, ctx);
            }
            Err(failure) => self.step(
                Event::Failed {
                    terminal: failure.terminal,
                },
                ctx,
            ),
        }
    }
}

impl Handler<Crashed> for GitRepositoryActor {
    type Result = ();

    fn handle(&mut self, Crashed(reason): Crashed, ctx: &mut Context<Self>) {
        tracing::error!(namespace = ?self.object.namespace(), name = %self.object.name_any(), %reason, "fetch task panicked; restarting the actor");
        ctx.stop();
    }
}

impl Handler<Gone> for GitRepositoryActor {
    type Result = ();

    fn handle(&mut self, _: Gone, ctx: &mut Context<Self>) {
        self.deps.context.hub.do_send(Withdraw(self.source_ref()));
        let store = self.deps.store.clone();
        let key = self.key();
        let cache_dir = self
            .deps
            .context
            .storage_dir
            .join("git")
            .join(self.object.namespace().unwrap_or_default())
            .join(self.object.name_any());
        // Blocking file removal, off the actor thread; a failure only leaves garbage that
        // the store's collection removes later.
        tokio::task::spawn_blocking(move || {
            if let Some(key) = key {
                let _ = store.remove_source(&key);
            }
            let _ = std::fs::remove_dir_all(cache_dir);
        });
        ctx.stop();
    }
}
