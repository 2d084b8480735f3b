//! The registry: one actor per object of a kind, fed by a kube watcher stream.
//!
//! A [`Registry`] watches one kind. For each object it starts an [`ObjectActor`] and
//! forwards every later version of the object to it as [`Observed`]; when the object is gone
//! from the API it sends [`Gone`] and forgets the actor.
//!
//! # Supervision
//! Actors keep their handlers short and run blocking or fallible work (Git, builds, API
//! calls) in spawned tasks. An actor that fails beyond what it handles itself stops (a panic
//! in a spawned task is caught there and turned into a stop). The registry checks its
//! children every [`SUPERVISION_TICK`] and restarts a stopped child from the latest version
//! of its object, after an exponential backoff (1 s doubling to 5 min) that resets once the
//! child has stayed up for [`HEALTHY_AFTER`]. A failing object never stops the registry or
//! the other objects' actors.
//!
//! # Guarantees
//! - At most one actor per object at a time.
//! - After a watch restart (`Init`..`InitDone`), actors of objects deleted while the watch
//!   was down receive [`Gone`].
//! - A message in flight to an actor that stops is lost; the restarted actor starts from the
//!   latest object, so it needs no message history.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// How often the registry looks for stopped children.
pub const SUPERVISION_TICK: Duration = Duration::from_millis(500);
/// A child that has run this long without stopping has its backoff reset.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(600);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `namespace/name` of an object (namespace empty for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of<K: Resource>(object: &K) -> Self {
        Self {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A new version of the actor's object (created, changed, or marked for deletion).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observed<K>(pub Arc<K>);

/// The actor's object no longer exists in the API; the actor should clean up and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Gone;

/// An actor that owns one object.
pub trait ObjectActor:
    Actor<Context = Context<Self>> + Handler<Observed<Self::Object>> + Handler<Gone>
{
    type Object: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// What every actor of this kind shares (clients, stores, other actors' addresses).
    type Deps: Clone + Unpin + 'static;

    /// Builds the actor for an object. Called on first sight and again on every restart, so
    /// it must rebuild its state from the object (and the cluster), not from memory.
    fn for_object(object: Arc<Self::Object>, deps: &Self::Deps) -> Self;
}

struct Child<A: ObjectActor> {
    addr: Addr<A>,
    latest: Arc<A::Object>,
    started: Instant,
    failures: u32,
    restart_at: Option<Instant>,
}

/// Watches one kind and keeps one actor per object.
pub struct Registry<A: ObjectActor> {
    deps: A::Deps,
    children: HashMap<ObjectKey, Child<A>>,
    /// Keys seen since the last `Init`, while a relist is in progress.
    relisting: Option<HashSet<ObjectKey>>,
    synced: watch::Sender<bool>,
}

/// The running registry and whether it has listed every object once.
pub struct RegistryHandle<A: ObjectActor> {
    pub addr: Addr<Registry<A>>,
    pub synced: watch::Receiver<bool>,
}

impl<A: ObjectActor> Registry<A> {
    /// Starts watching `api` and spawning actors with `deps`.
    pub fn start(api: Api<A::Object>, deps: A::Deps) -> RegistryHandle<A> {
        let (synced, synced_rx) = watch::channel(false);
        let addr = Registry::create(move |ctx| {
            // No actor reads `managedFields`, often the biggest part of an object: kept out
            // of the copy the registry and each actor hold.
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(|object| object.meta_mut().managed_fields = None);
            ctx.add_stream(stream);
            Registry {
                deps,
                children: HashMap::new(),
                relisting: None,
                synced,
            }
        });
        RegistryHandle {
            addr,
            synced: synced_rx,
        }
    }

    fn observe(&mut self, object: A::Object) {
        let key = ObjectKey::of(&object);
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(key.clone());
        }
        let object = Arc::new(object);
        match self.children.get_mut(&key) {
            Some(child) => {
                child.latest = object.clone();
                if child.addr.connected() {
                    child.addr.do_send(Observed(object));
                }
            }
            None => {
                tracing::debug!(kind = %A::Object::kind(&()), %key, "starting actor");
                let addr = A::for_object(object.clone(), &self.deps).start();
                self.children.insert(
                    key,
                    Child {
                        addr,
                        latest: object,
                        started: Instant::now(),
                        failures: 0,
                        restart_at: None,
                    },
                );
            }
        }
    }

    fn forget(&mut self, key: &ObjectKey) {
        if let Some(child) = self.children.remove(key) {
            tracing::debug!(kind = %A::Object::kind(&()), %key, "object gone, stopping its actor");
            if child.addr.connected() {
                child.addr.do_send(Gone);
            }
        }
    }

    fn supervise(&mut self) {
        let now = Instant::now();
        for (key, child) in &mut self.children {
            if child.addr.connected() {
                if child.failures > 0 && now.duration_since(child.started) >= HEALTHY_AFTER {
                    child.failures = 0;
                }
                continue;
            }
            match child.restart_at {
                None => {
                    let delay = backoff(child.failures);
                    tracing::warn!(kind = %A::Object::kind(&()), %key, failures = child.failures + 1,
                        retry_in = ?delay, "actor stopped; restarting after backoff");
                    child.restart_at = Some(now + delay);
                }
                Some(at) if now >= at => {
                    child.addr = A::for_object(child.latest.clone(), &self.deps).start();
                    child.failures += 1;
                    child.started = now;
                    child.restart_at = None;
                }
                Some(_) => {}
            }
        }
    }
}

/// The delay before the `failures + 1`-th restart: 1 s doubling, capped at 5 min.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(MAX_BACKOFF)
}

impl<A: ObjectActor> Actor for Registry<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SUPERVISION_TICK, |registry, _| registry.supervise());
    }
}

impl<A: ObjectActor> StreamHandler<Result<watcher::Event<A::Object>, watcher::Error>>
    for Registry<A>
{
    fn handle(
        &mut self,
        event: Result<watcher::Event<A::Object>, watcher::Error>,
        _: &mut Context<Self>,
    ) {
        match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                self.observe(object)
            }
            Ok(watcher::Event::Delete(object)) => self.forget(&ObjectKey::of(&object)),
            Ok(watcher::Event::Init) => self.relisting = Some(HashSet::new()),
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = self.relisting.take() {
                    let vanished: Vec<ObjectKey> = self
                        .children
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for key in vanished {
                        self.forget(&key);
                    }
                }
                self.synced.send_replace(true);
            }
            // The stream backs off and retries by itself; the actors keep running meanwhile.
            Err(error) => {
                tracing::warn!(kind = %A::Object::kind(&()), %error, "watch failed; retrying")
            }
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The watcher stream never ends on its own; if it does, the agent is shutting down.
        tracing::debug!(kind = %A::Object::kind(&()), "watch stream ended");
    }
}

/// The keys of the objects that currently have an actor (running or awaiting restart).
#[derive(Message)]
#[rtype(result = "Vec<ObjectKey>")]
pub struct ListChildren;

impl<A: ObjectActor> Handler<ListChildren> for Registry<A> {
    type Result = Vec<ObjectKey>;

    fn handle(&mut self, _: ListChildren, _: &mut Context<Self>) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self.children.keys().cloned().collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(9), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
