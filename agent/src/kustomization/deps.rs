//! What every Kustomization actor shares: the agent context, the kind cache, the limits
//! on concurrent builds and reconciles, and who waits for whom.

use std::sync::Arc;

use actix::Recipient;

use super::actor::RequestReconcile;
use super::apply::KindCache;
use crate::context::AgentContext;
use crate::registry::ObjectKey;

/// What every Kustomization actor shares.
#[derive(Clone)]
pub struct Deps {
    pub context: AgentContext,
    pub kinds: KindCache,
    /// Builds running at once: one per core, so that a thousand reconciles starting
    /// together queue for the CPU instead of each taking a blocking thread and its memory.
    pub builds: Arc<tokio::sync::Semaphore>,
    /// Reconciles between dependency check and prune running at once (Flux's
    /// `--concurrent`, scaled by cores). Health waits happen outside it, so a Kustomization
    /// waiting for its workloads never holds a slot that a healthy one needs.
    pub reconciles: Arc<tokio::sync::Semaphore>,
    /// Kustomizations waiting for another to become Ready, so that they reconcile the moment
    /// it is (rather than at their next retry).
    pub waiters: Waiters,
}

/// Who waits for which Kustomization (by `namespace/name`) to become Ready.
#[derive(Clone, Default)]
pub struct Waiters(Arc<dashmap::DashMap<ObjectKey, Vec<Recipient<RequestReconcile>>>>);

impl Waiters {
    /// `waiter` gets [`RequestReconcile`] once `dependency` next succeeds.
    pub fn wait_for(&self, dependency: ObjectKey, waiter: Recipient<RequestReconcile>) {
        let mut entry = self.0.entry(dependency).or_default();
        if !entry.contains(&waiter) {
            entry.push(waiter);
        }
    }

    /// `dependency` succeeded: wake everyone waiting for it.
    pub fn ready(&self, dependency: &ObjectKey) {
        if let Some((_, waiters)) = self.0.remove(dependency) {
            for waiter in waiters {
                waiter.do_send(RequestReconcile);
            }
        }
    }
}

impl Deps {
    pub fn new(context: AgentContext) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Deps {
            context,
            kinds: KindCache::default(),
            builds: Arc::new(tokio::sync::Semaphore::new(cores)),
            reconciles: Arc::new(tokio::sync::Semaphore::new(8 * cores)),
            waiters: Waiters::default(),
        }
    }
}
