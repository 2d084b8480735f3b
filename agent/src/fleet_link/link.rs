//! The [`FleetLink`] actor: dial, introduce, snapshot, stream deltas and heartbeats, run
//! the fleet's commands, and start over with backoff whenever the connection ends.
//!
//! # Lifecycle
//! `Disconnected` -(backoff elapsed)-> `Connecting` -(socket open; Hello + Snapshot sent)->
//! `Connected` -(Welcome)-> backoff reset. Any error, close frame, missed fleet traffic or a
//! full outbound queue goes back to `Disconnected`. A close code the fleet marks permanent
//! (version mismatch, revoked) makes the next wait the longest.
//!
//! # Guarantees
//! Messages to the link never wait on the network. The last status of every object is kept,
//! so whatever happened while disconnected reaches the fleet in the next snapshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::{SinkExt, StreamExt};
use proto::dial::{self, CloseFrame, WsError, WsMessage};
use proto::frame;
use proto::message::now_ms;
use proto::pki::{Identity, SecretPem};
use proto::{
    Ack, AgentMessage, CloseCode, Command, Delta, FleetMessage, Heartbeat, Hello, ObjectRef,
    ObjectStatus, PROTOCOL_VERSION, Snapshot,
};
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;

/// What can go wrong setting the link up.
#[derive(Debug, thiserror::Error)]
pub enum FleetLinkError {
    /// A certificate or key file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] proto::tls::TlsError),
    /// The certificate is not a cluster certificate of the fleet.
    #[error("the agent certificate does not name a cluster: {0}")]
    Identity(String),
}

/// How to reach the fleet.
#[derive(Clone)]
pub struct FleetLinkConfig {
    /// `wss://host:port/v1/agent`.
    pub url: String,
    /// The cluster name, read from the certificate.
    pub cluster: String,
    /// TLS with the cluster certificate, trusting the fleet CA.
    pub tls: Arc<rustls::ClientConfig>,
    /// The agent's release, reported in `Hello`.
    pub agent_version: String,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Give up a connection attempt after this long.
    pub connect_timeout: Duration,
    /// Heartbeat interval until the fleet's `Welcome` says otherwise.
    pub heartbeat: Duration,
}

impl std::fmt::Debug for FleetLinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLinkConfig")
            .field("url", &self.url)
            .field("cluster", &self.cluster)
            .field("agent_version", &self.agent_version)
            .finish_non_exhaustive()
    }
}

impl FleetLinkConfig {
    /// A configuration from PEM strings: the fleet CA, the cluster certificate and its key.
    /// The cluster name comes from the certificate, so it cannot disagree with it.
    pub fn new(
        url: &str,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &SecretPem,
    ) -> Result<FleetLinkConfig, FleetLinkError> {
        let leaf = proto::tls::parse_certs(cert_pem)?.remove(0);
        let cluster = match Identity::from_der(&leaf) {
            Ok(Identity::Cluster(name)) => name,
            Ok(other) => return Err(FleetLinkError::Identity(format!("it names {other}"))),
            Err(e) => return Err(FleetLinkError::Identity(e.to_string())),
        };
        let tls = proto::tls::client_config(ca_pem, Some((cert_pem, key_pem)))?;
        Ok(FleetLinkConfig {
            url: url.to_string(),
            cluster,
            tls: Arc::new(tls),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(60)),
            connect_timeout: Duration::from_secs(15),
            heartbeat: Duration::from_secs(10),
        })
    }

    /// [`FleetLinkConfig::new`] from files (`--fleet-ca`, `--fleet-cert`, `--fleet-key`).
    pub fn from_files(
        url: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<FleetLinkConfig, FleetLinkError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| FleetLinkError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        FleetLinkConfig::new(url, &read(ca)?, &read(cert)?, &SecretPem::new(read(key)?))
    }
}

/// An object's status changed (or the object appeared).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StatusChanged(pub ObjectStatus);

/// An object was deleted.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ObjectRemoved(pub ObjectRef);

/// A command from the fleet, for whoever carries commands out; the reply is the message of
/// the `Ack` (`Err` for a failed command).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<String, String>")]
pub struct ExecuteCommand(pub Command);

/// A rotated certificate: used from the next connection on, while the open one stays up
/// (the fleet accepts both certificates until the old one expires or is revoked).
#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct RenewCredentials(pub Arc<rustls::ClientConfig>);

impl std::fmt::Debug for RenewCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenewCredentials(<client config>)")
    }
}

/// What the link is doing, published on a watch channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkStatus {
    /// The fleet welcomed the current connection.
    pub connected: bool,
    /// How many times the fleet welcomed this link.
    pub sessions: u64,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
}

type Inbound = (u64, Result<WsMessage, WsError>);

/// The connection while it is open.
struct Open {
    generation: u64,
    tx: mpsc::Sender<WsMessage>,
    stream: SpawnHandle,
    welcomed: bool,
}

/// The agent's one connection to the fleet.
pub struct FleetLink {
    config: FleetLinkConfig,
    executor: Option<Recipient<ExecuteCommand>>,
    objects: BTreeMap<ObjectRef, ObjectStatus>,
    open: Option<Open>,
    generation: u64,
    last_inbound: Instant,
    heartbeat: Duration,
    heartbeat_timer: Option<SpawnHandle>,
    status: watch::Sender<LinkStatus>,
}

/// Frames that may wait for the socket; more means the fleet is not reading, and the link
/// starts over rather than buffer without bound.
const OUTBOUND_QUEUE: usize = 1024;

impl FleetLink {
    /// A link that runs commands through `executor` (without one, every command is
    /// acknowledged as unsupported). The watch channel reports the link's status.
    pub fn new(
        config: FleetLinkConfig,
        executor: Option<Recipient<ExecuteCommand>>,
    ) -> (FleetLink, watch::Receiver<LinkStatus>) {
        let (status, rx) = watch::channel(LinkStatus::default());
        let heartbeat = config.heartbeat;
        let link = FleetLink {
            config,
            executor,
            objects: BTreeMap::new(),
            open: None,
            generation: 0,
            last_inbound: Instant::now(),
            heartbeat,
            heartbeat_timer: None,
            status,
        };
        (link, rx)
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let url = self.config.url.clone();
        let tls = self.config.tls.clone();
        let timeout = self.config.connect_timeout;
        let attempt = async move {
            match tokio::time::timeout(timeout, dial::dial(&url, tls)).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no connection within {}s", timeout.as_secs())),
            }
        };
        ctx.spawn(attempt.into_actor(self).map(move |result, act, ctx| {
            if generation != act.generation {
                return;
            }
            match result {
                Ok(socket) => act.opened(ctx, socket),
                Err(reason) => act.lost(ctx, generation, reason, None),
            }
        }));
    }

    fn opened(&mut self, ctx: &mut Context<Self>, socket: dial::FleetSocket) {
        let generation = self.generation;
        let (mut sink, stream) = socket.split();
        let (tx, mut rx) = mpsc::channel::<WsMessage>(OUTBOUND_QUEUE);
        actix::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let stream = ctx.add_stream(stream.map(move |m| (generation, m)));
        self.open = Some(Open {
            generation,
            tx,
            stream,
            welcomed: false,
        });
        self.last_inbound = Instant::now();
        tracing::info!(url = %self.config.url, cluster = %self.config.cluster, "connected to the fleet; sending hello and snapshot");
        let hello = AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: self.config.agent_version.clone(),
            capabilities: vec!["commands".into()],
        });
        self.send(ctx, &hello);
        let snapshot = AgentMessage::Snapshot(Snapshot {
            cluster: self.config.cluster.clone(),
            sent_at_ms: now_ms(),
            objects: self.objects.values().cloned().collect(),
        });
        self.send(ctx, &snapshot);
    }

    /// The connection (attempt) `generation` ended; schedule the next one.
    fn lost(
        &mut self,
        ctx: &mut Context<Self>,
        generation: u64,
        reason: String,
        close: Option<CloseCode>,
    ) {
        if generation != self.generation {
            return;
        }
        if let Some(open) = self.open.take() {
            ctx.cancel_future(open.stream);
        }
        // Invalidate anything still in flight for this connection.
        self.generation += 1;
        if close.is_some_and(CloseCode::is_permanent) {
            self.config.backoff.exhaust();
        }
        let delay = self.config.backoff.next_delay();
        tracing::warn!(url = %self.config.url, %reason, retry_in_ms = delay.as_millis() as u64, "fleet connection lost; reconciling continues");
        self.status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(reason);
        });
        ctx.run_later(delay, |act, ctx| {
            if act.open.is_none() {
                act.connect(ctx);
            }
        });
    }

    fn send(&mut self, ctx: &mut Context<Self>, message: &AgentMessage) {
        let Some(open) = &self.open else { return };
        let generation = open.generation;
        let text = match frame::encode(message) {
            Ok(text) => text,
            Err(e) => {
                // An oversize snapshot cannot be sent; the fleet keeps what it had.
                tracing::error!(error = %e, kind = message.kind(), "cannot send a message to the fleet");
                return;
            }
        };
        if open.tx.try_send(WsMessage::text(text)).is_err() {
            self.lost(
                ctx,
                generation,
                "the fleet is not reading; starting over".into(),
                None,
            );
        }
    }

    fn on_frame(&mut self, ctx: &mut Context<Self>, text: &str) {
        let message = match frame::decode_fleet(text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "malformed frame from the fleet; reconnecting");
                let generation = self.generation;
                if let Some(open) = &self.open {
                    let frame = CloseFrame {
                        code: e.close_code().code().into(),
                        reason: e.to_string().into(),
                    };
                    let _ = open.tx.try_send(WsMessage::Close(Some(frame)));
                }
                return self.lost(ctx, generation, e.to_string(), None);
            }
        };
        match message {
            FleetMessage::Welcome(welcome) => {
                if welcome.cluster != self.config.cluster {
                    tracing::warn!(ours = %self.config.cluster, theirs = %welcome.cluster, "the fleet names this cluster differently");
                }
                if let Some(open) = &mut self.open {
                    open.welcomed = true;
                }
                self.config.backoff.reset();
                self.set_heartbeat(ctx, Duration::from_secs(welcome.heartbeat_seconds.max(1)));
                self.status.send_modify(|s| {
                    s.connected = true;
                    s.sessions += 1;
                    s.last_error = None;
                });
            }
            FleetMessage::Command(command) => self.execute(ctx, command),
        }
    }

    fn execute(&mut self, ctx: &mut Context<Self>, command: Command) {
        let id = command.id;
        tracing::info!(command = id, action = %command.action, object = %command.object, "command from the fleet");
        let Some(executor) = self.executor.clone() else {
            let ack = Ack {
                id,
                ok: false,
                message: "this agent does not carry out commands".into(),
            };
            return self.send(ctx, &AgentMessage::Ack(ack));
        };
        ctx.spawn(executor.send(ExecuteCommand(command)).into_actor(self).map(
            move |outcome, act, ctx| {
                let ack = match outcome {
                    Ok(Ok(message)) => Ack {
                        id,
                        ok: true,
                        message,
                    },
                    Ok(Err(message)) => Ack {
                        id,
                        ok: false,
                        message,
                    },
                    Err(e) => Ack {
                        id,
                        ok: false,
                        message: format!("command executor unavailable: {e}"),
                    },
                };
                act.send(ctx, &AgentMessage::Ack(ack));
            },
        ));
    }

    fn set_heartbeat(&mut self, ctx: &mut Context<Self>, every: Duration) {
        if let Some(timer) = self.heartbeat_timer.take() {
            ctx.cancel_future(timer);
        }
        self.heartbeat = every;
        self.heartbeat_timer = Some(ctx.run_interval(every, |act, ctx| act.beat(ctx)));
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        let Some(open) = &self.open else { return };
        let generation = open.generation;
        // The fleet answers every ping; three intervals of silence mean the path is dead even
        // if TCP has not noticed.
        if self.last_inbound.elapsed() > self.heartbeat * 3 {
            return self.lost(ctx, generation, "no traffic from the fleet".into(), None);
        }
        let _ = open.tx.try_send(WsMessage::Ping(Vec::new().into()));
        self.send(
            ctx,
            &AgentMessage::Heartbeat(Heartbeat {
                sent_at_ms: now_ms(),
            }),
        );
    }

    fn send_delta(
        &mut self,
        ctx: &mut Context<Self>,
        changed: Vec<ObjectStatus>,
        removed: Vec<ObjectRef>,
    ) {
        if self.open.is_none() {
            return;
        }
        let delta = AgentMessage::Delta(Delta {
            cluster: self.config.cluster.clone(),
            sent_at_ms: now_ms(),
            changed,
            removed,
        });
        self.send(ctx, &delta);
    }
}

impl Actor for FleetLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = self.heartbeat;
        self.set_heartbeat(ctx, every);
        self.connect(ctx);
    }
}

impl StreamHandler<Inbound> for FleetLink {
    fn handle(&mut self, (generation, item): Inbound, ctx: &mut Self::Context) {
        if generation != self.generation {
            return;
        }
        self.last_inbound = Instant::now();
        match item {
            Ok(WsMessage::Text(text)) => self.on_frame(ctx, text.as_str()),
            Ok(WsMessage::Close(frame)) => {
                let (code, reason) = match frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                    None => (None, String::new()),
                };
                let ours = code.and_then(CloseCode::from_code);
                let reason = format!(
                    "the fleet closed the connection (code {}): {reason}",
                    code.unwrap_or(1005)
                );
                self.lost(ctx, generation, reason, ours);
            }
            Ok(WsMessage::Binary(_)) => {
                tracing::warn!("binary frame from the fleet ignored");
            }
            Ok(_) => {}
            Err(e) => self.lost(ctx, generation, format!("websocket error: {e}"), None),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The stream of the current connection ended without a close frame.
        let generation = self.generation;
        if self.open.is_some() {
            self.lost(ctx, generation, "connection closed".into(), None);
        }
    }
}

impl Handler<StatusChanged> for FleetLink {
    type Result = ();

    fn handle(&mut self, StatusChanged(status): StatusChanged, ctx: &mut Self::Context) {
        if self.objects.get(&status.object) == Some(&status) {
            return;
        }
        self.objects.insert(status.object.clone(), status.clone());
        self.send_delta(ctx, vec![status], vec![]);
    }
}

impl Handler<ObjectRemoved> for FleetLink {
    type Result = ();

    fn handle(&mut self, ObjectRemoved(object): ObjectRemoved, ctx: &mut Self::Context) {
        if self.objects.remove(&object).is_some() {
            self.send_delta(ctx, vec![], vec![object]);
        }
    }
}

impl Handler<RenewCredentials> for FleetLink {
    type Result = ();

    fn handle(&mut self, RenewCredentials(tls): RenewCredentials, _: &mut Self::Context) {
        tracing::info!(cluster = %self.config.cluster, "fleet client certificate renewed; used from the next connection");
        self.config.tls = tls;
    }
}
