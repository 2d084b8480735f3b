//! `KustomizationActor`: one per Kustomization, started and supervised by the registry.
//!
//! It subscribes to its source in the [`ArtifactHub`](crate::hub::ArtifactHub) and
//! reconciles at once when a new artifact arrives, when the spec changes (a new
//! generation), on `reconcile.fluxcd.io/requestedAt`, on [`RequestReconcile`], and every
//! `spec.interval`. Failures that may pass by themselves retry at `spec.retryInterval`,
//! doubling per consecutive failure up to `spec.interval`; a Kustomization held back by
//! another one it depends on also reconciles the moment that one succeeds.
//!
//! # Supervision
//! The reconcile runs in its own task; the actor's handlers only record inputs and
//! schedule, so a slow or failing Kustomization never holds up another. A panic in a
//! reconcile ends that task; the actor then stops and the registry restarts it.
//!
//! # Guarantees
//! - At most one reconcile of an object at a time; triggers during a reconcile fold into
//!   one more reconcile right after it.
//! - Each reconcile reads the object afresh from the API, so it starts from the latest
//!   written status and inventory, including after a restart.
//!
//! # Drift
//! Each reconcile dry-runs every object and re-applies those that differ from the cluster,
//! which corrects drift at every interval. With `spec.drift.mode: DetectOnly`, a reconcile
//! of an already applied revision and generation changes nothing: it sets the `Drifted`
//! condition listing each drifted object and its changed fields (objects missing from the
//! cluster are listed as `missing`). A new revision or spec change is applied as usual.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use api::conditions::annotations;
use api::kustomize::Kustomization;
use kube::{Resource, ResourceExt};

use super::deps::Deps;
use super::reconcile::{self, Outcome};
use crate::hub::{ArtifactReady, Latest, SourceRef, Subscribe, Unsubscribe};
use crate::registry::{Gone, ObjectActor, ObjectKey, Observed};

/// How long a new actor waits for its source's artifact before reconciling without one.
const SOURCE_START_GRACE: Duration = Duration::from_secs(3);

/// Asks for a reconcile now, whatever the schedule.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestReconcile;

/// Where the actor is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No reconcile running; the next one is scheduled. `failures` counts consecutive
    /// retryable failures, for the backoff.
    Idle { failures: u32 },
    /// A reconcile is running; `again` when a trigger arrived meanwhile.
    Reconciling { again: bool, failures: u32 },
    /// The object was deleted and released: nothing more to do.
    Done,
}

/// What happens to the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Something asks for a reconcile (artifact, spec change, timer, request).
    Trigger,
    /// The running reconcile ended.
    Finished(Outcome),
}

/// What the actor must do after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    StartReconcile,
    /// Trigger again after this long (replacing any earlier timer).
    Schedule(Duration),
    /// Cancel the timer (suspended: only a spec change or request resumes).
    CancelTimer,
    Stop,
}

/// The schedule of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub retry_interval: Duration,
}

impl Timing {
    pub fn of(object: &Kustomization) -> Self {
        let interval = object
            .spec
            .interval
            .as_std()
            .max(Duration::from_millis(100));
        let retry_interval = object
            .spec
            .retry_interval
            .as_ref()
            .map_or(interval, |d| d.as_std())
            .max(Duration::from_millis(100));
        Timing {
            interval,
            retry_interval,
        }
    }

    /// The delay after the `failures`-th consecutive failure.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(6);
        (self.retry_interval * factor).min(self.interval.max(self.retry_interval))
    }
}

/// The lifecycle: pure, so that every transition is unit-tested.
pub fn step(state: State, input: Input, timing: Timing) -> (State, Vec<Effect>) {
    match (state, input) {
        (State::Done, _) => (State::Done, vec![]),
        (State::Idle { failures }, Input::Trigger) => (
            State::Reconciling {
                again: false,
                failures,
            },
            vec![Effect::StartReconcile],
        ),
        (State::Reconciling { failures, .. }, Input::Trigger) => (
            State::Reconciling {
                again: true,
                failures,
            },
            vec![],
        ),
        (State::Idle { failures }, Input::Finished(_)) => (State::Idle { failures }, vec![]),
        (State::Reconciling { again, failures }, Input::Finished(outcome)) => {
            let (failures, next) = match outcome {
                Outcome::Finalized => return (State::Done, vec![Effect::Stop]),
                Outcome::Succeeded | Outcome::Stalled => (0, Some(timing.interval)),
                Outcome::Retry => (failures + 1, Some(timing.backoff(failures + 1))),
                Outcome::Suspended => (0, None),
            };
            if again {
                return (
                    State::Reconciling {
                        again: false,
                        failures,
                    },
                    vec![Effect::StartReconcile],
                );
            }
            let effect = next.map_or(Effect::CancelTimer, Effect::Schedule);
            (State::Idle { failures }, vec![effect])
        }
    }
}

/// Reconciles one Kustomization.
pub struct KustomizationActor {
    object: Arc<Kustomization>,
    deps: Deps,
    source: SourceRef,
    artifact: Option<ArtifactReady>,
    state: State,
    timer: Option<SpawnHandle>,
    /// The revision the running reconcile works on, and how to interrupt its health wait
    /// when a newer one arrives.
    running: Option<(Option<String>, tokio::sync::watch::Sender<Option<String>>)>,
}

fn source_of(object: &Kustomization) -> SourceRef {
    let reference = &object.spec.source_ref;
    SourceRef {
        kind: reference.kind.clone(),
        namespace: reference
            .namespace
            .clone()
            .unwrap_or_else(|| object.namespace().unwrap_or_default()),
        name: reference.name.clone(),
    }
}

impl KustomizationActor {
    fn apply(&mut self, input: Input, ctx: &mut Context<Self>) {
        let (state, effects) = step(self.state, input, Timing::of(&self.object));
        self.state = state;
        for effect in effects {
            match effect {
                Effect::StartReconcile => self.start_reconcile(ctx),
                Effect::Schedule(delay) => {
                    self.cancel_timer(ctx);
                    self.timer =
                        Some(ctx.run_later(delay, |act, ctx| act.apply(Input::Trigger, ctx)));
                }
                Effect::CancelTimer => self.cancel_timer(ctx),
                Effect::Stop => ctx.stop(),
            }
        }
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
    }

    fn start_reconcile(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        let deps = self.deps.clone();
        let seen = self.object.clone();
        let artifact = self.artifact.clone();
        let (interrupt, interrupted) = tokio::sync::watch::channel(None);
        self.running = Some((
            artifact.as_ref().map(|a| a.artifact.revision.clone()),
            interrupt,
        ));
        // Its own task: a panic ends the task only, and is seen here as a join error.
        let task =
            actix::spawn(
                async move { reconcile::reconcile(&deps, seen, artifact, interrupted).await },
            );
        ctx.spawn(task.into_actor(self).map(|joined, act, ctx| {
            act.running = None;
            match joined {
            Ok(outcome) => {
                act.announce(&outcome, ctx);
                act.apply(Input::Finished(outcome), ctx);
            }
            Err(error) => {
                tracing::error!(object = %act.object.name_any(), %error, "reconcile panicked; restarting the actor");
                ctx.stop();
            }
            }
        }));
    }

    /// Wakes the Kustomizations waiting for this one when it succeeded; when it must retry,
    /// waits for its Kustomization dependencies (whichever of them held it back).
    fn announce(&self, outcome: &Outcome, ctx: &mut Context<Self>) {
        let namespace = self.object.namespace().unwrap_or_default();
        match outcome {
            Outcome::Succeeded => self.deps.waiters.ready(&ObjectKey {
                namespace,
                name: self.object.name_any(),
            }),
            Outcome::Retry => {
                for dependency in &self.object.spec.depends_on {
                    if dependency.kind.as_deref().unwrap_or("Kustomization") != "Kustomization" {
                        continue;
                    }
                    let key = ObjectKey {
                        namespace: dependency
                            .namespace
                            .clone()
                            .unwrap_or_else(|| namespace.clone()),
                        name: dependency.name.clone(),
                    };
                    self.deps.waiters.wait_for(key, ctx.address().recipient());
                }
            }
            _ => {}
        }
    }

    fn subscribe(&self, ctx: &mut Context<Self>) {
        self.deps.context.hub.do_send(Subscribe {
            source: self.source.clone(),
            subscriber: ctx.address().recipient(),
        });
    }
}

impl Actor for KustomizationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.subscribe(ctx);
        // The first reconcile waits for the hub's answer, so that a source that already
        // has an artifact is not reported missing.
        let latest = self.deps.context.hub.send(Latest(self.source.clone()));
        ctx.spawn(latest.into_actor(self).map(|latest, act, ctx| {
            if act.artifact.is_none() {
                act.artifact = latest.ok().flatten();
            }
            if act.artifact.is_none() && act.source.kind == "GitRepository" {
                // After an agent restart the source actors republish their stored artifacts
                // as they start, possibly just after this one asked: give them a moment
                // (the artifact's arrival triggers at once) rather than report every
                // Kustomization's artifact missing for an instant.
                act.timer = Some(ctx.run_later(SOURCE_START_GRACE, |act, ctx| {
                    act.apply(Input::Trigger, ctx)
                }));
            } else {
                act.apply(Input::Trigger, ctx);
            }
        }));
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.deps.context.hub.do_send(Unsubscribe {
            source: self.source.clone(),
            subscriber: ctx.address().recipient(),
        });
    }
}

impl ObjectActor for KustomizationActor {
    type Object = Kustomization;
    type Deps = Deps;

    fn for_object(object: Arc<Kustomization>, deps: &Deps) -> Self {
        KustomizationActor {
            source: source_of(&object),
            object,
            deps: deps.clone(),
            artifact: None,
            state: State::Idle { failures: 0 },
            timer: None,
            running: None,
        }
    }
}

/// Whether a new version of the object asks for a reconcile (status writes do not).
fn wants_reconcile(old: &Kustomization, new: &Kustomization) -> bool {
    let requested = |k: &Kustomization| {
        k.annotations()
            .get(annotations::RECONCILE_REQUESTED_AT)
            .cloned()
    };
    old.meta().generation != new.meta().generation
        || requested(old) != requested(new)
        || (new.meta().deletion_timestamp.is_some() && old.meta().deletion_timestamp.is_none())
}

impl Handler<Observed<Kustomization>> for KustomizationActor {
    type Result = ();

    fn handle(&mut self, Observed(object): Observed<Kustomization>, ctx: &mut Context<Self>) {
        let trigger = wants_reconcile(&self.object, &object);
        let source = source_of(&object);
        self.object = object;
        if source != self.source {
            self.deps.context.hub.do_send(Unsubscribe {
                source: self.source.clone(),
                subscriber: ctx.address().recipient(),
            });
            self.source = source;
            self.artifact = None;
            self.subscribe(ctx);
        }
        if trigger {
            self.apply(Input::Trigger, ctx);
        }
    }
}

impl Handler<ArtifactReady> for KustomizationActor {
    type Result = ();

    fn handle(&mut self, ready: ArtifactReady, ctx: &mut Context<Self>) {
        if ready.source != self.source || self.artifact.as_ref() == Some(&ready) {
            return;
        }
        if let Some((revision, interrupt)) = &self.running
            && revision.as_deref() != Some(ready.artifact.revision.as_str())
        {
            let source = &self.source;
            interrupt.send_replace(Some(format!(
                "{}/{}/{}",
                source.kind, source.namespace, source.name
            )));
        }
        self.artifact = Some(ready);
        self.apply(Input::Trigger, ctx);
    }
}

impl Handler<RequestReconcile> for KustomizationActor {
    type Result = ();

    fn handle(&mut self, _: RequestReconcile, ctx: &mut Context<Self>) {
        self.apply(Input::Trigger, ctx);
    }
}

impl Handler<Gone> for KustomizationActor {
    type Result = ();

    fn handle(&mut self, _: Gone, ctx: &mut Context<Self>) {
        self.state = State::Done;
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        interval: Duration::from_secs(600),
        retry_interval: Duration::from_secs(10),
    };

    #[test]
    fn triggers_during_a_reconcile_fold_into_one_more_right_after() {
        let (state, effects) = step(State::Idle { failures: 0 }, Input::Trigger, TIMING);
        assert_eq!(effects, [Effect::StartReconcile]);
        let (state, effects) = step(state, Input::Trigger, TIMING);
        assert!(effects.is_empty());
        let (state, _) = step(state, Input::Trigger, TIMING);
        let (state, effects) = step(state, Input::Finished(Outcome::Succeeded), TIMING);
        assert_eq!(effects, [Effect::StartReconcile]);
        let (state, effects) = step(state, Input::Finished(Outcome::Succeeded), TIMING);
        assert_eq!(effects, [Effect::Schedule(TIMING.interval)]);
        assert_eq!(state, State::Idle { failures: 0 });
    }

    #[test]
    fn retries_back_off_from_the_retry_interval_up_to_the_interval() {
        let mut state = State::Idle { failures: 0 };
        let mut delays = Vec::new();
        for _ in 0..8 {
            state = step(state, Input::Trigger, TIMING).0;
            let (next, effects) = step(state, Input::Finished(Outcome::Retry), TIMING);
            state = next;
            if let [Effect::Schedule(d)] = effects.as_slice() {
                delays.push(d.as_secs());
            }
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600]);
        state = step(state, Input::Trigger, TIMING).0;
        let (state, effects) = step(state, Input::Finished(Outcome::Succeeded), TIMING);
        assert_eq!(state, State::Idle { failures: 0 });
        assert_eq!(effects, [Effect::Schedule(TIMING.interval)]);
    }

    #[test]
    fn suspension_cancels_the_timer_and_finalization_stops_the_actor() {
        let state = step(State::Idle { failures: 0 }, Input::Trigger, TIMING).0;
        let (state, effects) = step(state, Input::Finished(Outcome::Suspended), TIMING);
        assert_eq!(effects, [Effect::CancelTimer]);
        let state = step(state, Input::Trigger, TIMING).0;
        let (state, effects) = step(state, Input::Finished(Outcome::Finalized), TIMING);
        assert_eq!((state, effects), (State::Done, vec![Effect::Stop]));
        assert_eq!(step(State::Done, Input::Trigger, TIMING).1, vec![]);
    }
}
