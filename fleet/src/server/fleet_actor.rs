//! The [`FleetActor`]: which session speaks for which cluster, commands in flight, and the
//! registry reloads that admit new clusters and cut off removed ones.
//!
//! # Guarantees
//! At most one session per cluster: a newer connection from the same cluster replaces the
//! older one (an agent that reconnects before the fleet noticed the old socket die).
//! A command whose session ends before the agent acknowledged it fails (its reply channel is
//! dropped); it is never silently re-sent.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use proto::pki::{Fingerprint, Identity};
use proto::{Ack, CloseCode, Command, CommandAction, ObjectRef};
use tokio::sync::oneshot;

use super::metrics::FleetMetrics;
use super::session::{CloseSession, ClusterSession, SendCommand};
use super::state::FleetState;
use super::trust::TrustStore;
use crate::registry::{Registry, RegistryError};

/// A session finished its `Hello`; it now speaks for `cluster`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionOpened {
    /// The cluster of the session's certificate.
    pub cluster: String,
    /// Unique per fleet process.
    pub session_id: u64,
    /// The certificate the session was opened with.
    pub fingerprint: Fingerprint,
    /// The session.
    pub addr: Addr<ClusterSession>,
    /// The agent's release.
    pub agent_version: String,
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionClosed {
    /// Its cluster.
    pub cluster: String,
    /// Its id, so a late close of a replaced session does not mark the cluster down.
    pub session_id: u64,
}

/// An agent acknowledged a command.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AckReceived {
    /// The agent's cluster.
    pub cluster: String,
    /// The acknowledgement.
    pub ack: Ack,
}

/// Why a command could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No such cluster is registered.
    #[error("cluster {0} is not registered")]
    UnknownCluster(String),
    /// The cluster's agent is not connected.
    #[error("the agent of cluster {0} is not connected")]
    NotConnected(String),
}

/// Relays a command to a cluster's agent; the reply resolves with the agent's `Ack`.
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<Ack>, RelayError>")]
pub struct RelayCommand {
    /// The cluster.
    pub cluster: String,
    /// What to do.
    pub action: CommandAction,
    /// To which object.
    pub object: ObjectRef,
    /// Reconcile the object's source first.
    pub with_source: bool,
}

/// Re-reads the registry: new clusters appear, removed ones are disconnected.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct ReloadRegistry;

struct SessionEntry {
    id: u64,
    addr: Addr<ClusterSession>,
    fingerprint: Fingerprint,
}

struct Pending {
    cluster: String,
    action: CommandAction,
    reply: oneshot::Sender<Ack>,
}

/// The fleet: one per server.
pub struct FleetActor {
    state: FleetState,
    metrics: FleetMetrics,
    trust: TrustStore,
    registry: Arc<dyn Registry>,
    sessions: HashMap<String, SessionEntry>,
    pending: HashMap<u64, Pending>,
    next_command: u64,
}

impl FleetActor {
    /// A fleet over these views and this registry.
    pub fn new(
        state: FleetState,
        metrics: FleetMetrics,
        trust: TrustStore,
        registry: Arc<dyn Registry>,
    ) -> FleetActor {
        FleetActor {
            state,
            metrics,
            trust,
            registry,
            sessions: HashMap::new(),
            pending: HashMap::new(),
            next_command: 1,
        }
    }
}

impl Actor for FleetActor {
    type Context = Context<Self>;
}

impl Handler<SessionOpened> for FleetActor {
    type Result = ();

    fn handle(&mut self, msg: SessionOpened, _: &mut Self::Context) {
        let entry = SessionEntry {
            id: msg.session_id,
            addr: msg.addr,
            fingerprint: msg.fingerprint,
        };
        if let Some(old) = self.sessions.insert(msg.cluster.clone(), entry) {
            tracing::info!(cluster = %msg.cluster, old = old.id, new = msg.session_id, "a newer connection replaces the cluster's session");
            old.addr.do_send(CloseSession {
                code: CloseCode::Replaced,
                reason: "replaced by a newer connection".into(),
            });
        }
        self.state.connected(&msg.cluster, &msg.agent_version);
        tracing::info!(cluster = %msg.cluster, agent_version = %msg.agent_version, session = msg.session_id, "agent connected");
    }
}

impl Handler<SessionClosed> for FleetActor {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _: &mut Self::Context) {
        if self
            .sessions
            .get(&msg.cluster)
            .is_some_and(|s| s.id == msg.session_id)
        {
            self.sessions.remove(&msg.cluster);
            self.state.disconnected(&msg.cluster);
            // Dropping the reply channels tells the waiting API calls the agent is gone.
            self.pending.retain(|_, p| p.cluster != msg.cluster);
            tracing::info!(cluster = %msg.cluster, session = msg.session_id, "agent disconnected");
        }
    }
}

impl Handler<AckReceived> for FleetActor {
    type Result = ();

    fn handle(&mut self, msg: AckReceived, _: &mut Self::Context) {
        match self.pending.remove(&msg.ack.id) {
            Some(p) if p.cluster == msg.cluster => {
                self.metrics.command(
                    &p.action.to_string(),
                    if msg.ack.ok { "ok" } else { "failed" },
                );
                let _ = p.reply.send(msg.ack);
            }
            Some(p) => {
                tracing::warn!(cluster = %msg.cluster, command = msg.ack.id, owner = %p.cluster, "ack for another cluster's command ignored");
                self.pending.insert(msg.ack.id, p);
            }
            None => {
                tracing::debug!(cluster = %msg.cluster, command = msg.ack.id, "ack for an unknown or expired command")
            }
        }
    }
}

impl Handler<RelayCommand> for FleetActor {
    type Result = Result<oneshot::Receiver<Ack>, RelayError>;

    fn handle(&mut self, msg: RelayCommand, _: &mut Self::Context) -> Self::Result {
        if self.state.cluster(&msg.cluster).is_none() {
            return Err(RelayError::UnknownCluster(msg.cluster));
        }
        let Some(session) = self.sessions.get(&msg.cluster) else {
            self.metrics
                .command(&msg.action.to_string(), "not_connected");
            return Err(RelayError::NotConnected(msg.cluster));
        };
        let id = self.next_command;
        self.next_command += 1;
        // Answers that never come (API call timed out) would pile up; closed ones go now.
        self.pending.retain(|_, p| !p.reply.is_closed());
        let (reply, rx) = oneshot::channel();
        self.pending.insert(
            id,
            Pending {
                cluster: msg.cluster.clone(),
                action: msg.action,
                reply,
            },
        );
        tracing::info!(cluster = %msg.cluster, command = id, action = %msg.action, object = %msg.object, "relaying command");
        session.addr.do_send(SendCommand(Command {
            id,
            action: msg.action,
            object: msg.object,
            with_source: msg.with_source,
        }));
        Ok(rx)
    }
}

impl Handler<ReloadRegistry> for FleetActor {
    type Result = ResponseActFuture<Self, Result<(), RegistryError>>;

    fn handle(&mut self, _: ReloadRegistry, _: &mut Self::Context) -> Self::Result {
        let registry = self.registry.clone();
        Box::pin(async move { registry.load().await }.into_actor(self).map(|loaded, act, _| {
            let contents = loaded?;
            act.trust.replace(&contents);
            act.state.sync_registrations(&contents);
            let cut: Vec<String> = act
                .sessions
                .iter()
                .filter(|(cluster, s)| !act.trust.still_admits(&Identity::Cluster((*cluster).clone()), &s.fingerprint))
                .map(|(cluster, _)| cluster.clone())
                .collect();
            for cluster in cut {
                if let Some(s) = act.sessions.remove(&cluster) {
                    tracing::warn!(%cluster, fingerprint = %s.fingerprint, "cluster removed or certificate revoked: closing its session");
                    s.addr.do_send(CloseSession { code: CloseCode::Revoked, reason: "cluster removed from the fleet".into() });
                    act.pending.retain(|_, p| p.cluster != cluster);
                }
            }
            Ok(())
        }))
    }
}
