//! One [`ClusterSession`] per agent connection: the websocket handshake, the protocol's
//! state (hello first, then status and heartbeats), and the commands going the other way.
//!
//! # Guarantees
//! The cluster a session speaks for is the one in its verified certificate, fixed when the
//! connection is accepted. A status message naming any other cluster, a malformed or
//! oversize frame, or a protocol version the fleet does not speak closes the connection
//! with a logged reason; other sessions are unaffected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseReason, ProtocolError};
use proto::frame::{self, FrameError};
use proto::pki::{Fingerprint, Identity};
use proto::{
    AgentMessage, CloseCode, Command, FleetMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION, Welcome,
};
use tokio::sync::mpsc;

use super::fleet_actor::{AckReceived, SessionClosed, SessionOpened};
use super::{PeerCertificate, ServerContext};

/// Sends a command to the agent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendCommand(pub Command);

/// Closes the session with a code and reason the agent sees.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession {
    /// The close code.
    pub code: CloseCode,
    /// Why, for the agent's log.
    pub reason: String,
}

enum Outbound {
    Text(String),
    Pong(Bytes),
    Close(CloseCode, String),
}

/// How many frames may wait for the socket before the session counts as stuck.
const OUTBOUND_QUEUE: usize = 256;

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// One connected agent.
pub struct ClusterSession {
    id: u64,
    cluster: String,
    fingerprint: Fingerprint,
    ctx: web::Data<ServerContext>,
    out: mpsc::Sender<Outbound>,
    said_hello: bool,
    last_seen: Instant,
    closing: bool,
}

impl ClusterSession {
    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, reason: String) {
        if self.closing {
            return;
        }
        self.closing = true;
        let _ = self.out.try_send(Outbound::Close(code, reason));
        ctx.stop();
    }

    /// Refuses the connection for a protocol violation: logged, counted, closed.
    fn violation(&mut self, ctx: &mut Context<Self>, code: CloseCode, reason: String, label: &str) {
        tracing::warn!(cluster = %self.cluster, session = self.id, close_code = code.code(), %reason, "closing agent connection");
        self.ctx.metrics.rejected(label);
        self.close(ctx, code, reason);
    }

    fn send(&mut self, ctx: &mut Context<Self>, message: &FleetMessage) {
        match frame::encode(message) {
            Ok(text) => {
                if self.out.try_send(Outbound::Text(text)).is_err() {
                    self.violation(
                        ctx,
                        CloseCode::Normal,
                        "agent is not reading its socket".into(),
                        "stuck",
                    );
                }
            }
            Err(e) => {
                tracing::error!(cluster = %self.cluster, error = %e, "cannot encode a message for the agent")
            }
        }
    }

    fn on_text(&mut self, ctx: &mut Context<Self>, text: &str) {
        let message = match frame::decode_agent(text) {
            Ok(m) => m,
            Err(e) => return self.frame_error(ctx, e),
        };
        self.ctx.metrics.message(message.kind());
        if let Some(claimed) = message.claimed_cluster()
            && claimed != self.cluster
        {
            let reason = format!(
                "status for cluster {claimed:?} rejected: this certificate speaks for {:?}",
                self.cluster
            );
            return self.violation(
                ctx,
                CloseCode::IdentityMismatch,
                reason,
                "identity_mismatch",
            );
        }
        match (self.said_hello, message) {
            (false, AgentMessage::Hello(hello)) => {
                if let Err(e) = frame::check_version(&hello) {
                    return self.frame_error(ctx, e);
                }
                self.said_hello = true;
                let welcome = FleetMessage::Welcome(Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    cluster: self.cluster.clone(),
                    heartbeat_seconds: self.ctx.heartbeat.as_secs().max(1),
                });
                self.send(ctx, &welcome);
                self.ctx.fleet.do_send(SessionOpened {
                    cluster: self.cluster.clone(),
                    session_id: self.id,
                    fingerprint: self.fingerprint.clone(),
                    addr: ctx.address(),
                    agent_version: hello.agent_version,
                });
            }
            (false, other) => {
                let reason = format!("expected hello first, got {}", other.kind());
                self.violation(ctx, CloseCode::Malformed, reason, "no_hello");
            }
            (true, AgentMessage::Hello(_)) => {
                self.violation(
                    ctx,
                    CloseCode::Malformed,
                    "second hello on one connection".into(),
                    "malformed",
                );
            }
            (true, AgentMessage::Snapshot(s)) => {
                self.ctx.state.apply_snapshot(&self.cluster, s.objects);
                self.ctx.metrics.propagated(s.sent_at_ms);
            }
            (true, AgentMessage::Delta(d)) => {
                self.ctx
                    .state
                    .apply_delta(&self.cluster, d.changed, d.removed);
                self.ctx.metrics.propagated(d.sent_at_ms);
            }
            (true, AgentMessage::Heartbeat(_)) => {}
            (true, AgentMessage::Ack(ack)) => self.ctx.fleet.do_send(AckReceived {
                cluster: self.cluster.clone(),
                ack,
            }),
        }
    }

    fn frame_error(&mut self, ctx: &mut Context<Self>, error: FrameError) {
        let label = match error.close_code() {
            CloseCode::TooLarge => "too_large",
            CloseCode::VersionMismatch => "version_mismatch",
            CloseCode::Unsupported => "binary",
            _ => "malformed",
        };
        self.violation(ctx, error.close_code(), error.to_string(), label);
    }
}

impl Actor for ClusterSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.ctx.metrics.session_opened();
        let timeout = self.ctx.heartbeat * self.ctx.missed_heartbeats;
        ctx.run_interval(self.ctx.heartbeat, move |act, ctx| {
            if act.last_seen.elapsed() > timeout {
                let reason = if act.said_hello {
                    format!("no heartbeat for {}s", timeout.as_secs())
                } else {
                    "no hello".to_string()
                };
                act.violation(
                    ctx,
                    CloseCode::HeartbeatTimeout,
                    reason,
                    "heartbeat_timeout",
                );
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.ctx.metrics.session_closed();
        if self.said_hello {
            self.ctx.fleet.do_send(SessionClosed {
                cluster: self.cluster.clone(),
                session_id: self.id,
            });
        }
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for ClusterSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        if self.closing {
            return;
        }
        self.last_seen = Instant::now();
        if self.said_hello {
            self.ctx.state.seen(&self.cluster);
        }
        match item {
            Ok(AggregatedMessage::Text(text)) => self.on_text(ctx, &text),
            Ok(AggregatedMessage::Binary(_)) => self.frame_error(ctx, FrameError::Binary),
            Ok(AggregatedMessage::Ping(payload)) => {
                let _ = self.out.try_send(Outbound::Pong(payload));
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(reason)) => {
                tracing::info!(cluster = %self.cluster, session = self.id, ?reason, "agent closed the connection");
                self.close(ctx, CloseCode::Normal, String::new());
            }
            Err(ProtocolError::Overflow) => {
                let error = FrameError::TooLarge {
                    size: MAX_FRAME_BYTES + 1,
                    limit: MAX_FRAME_BYTES,
                };
                self.frame_error(ctx, error);
            }
            // The connection itself went away (the agent stopped or the network dropped):
            // not something the agent said wrong.
            Err(ProtocolError::Io(e)) => {
                tracing::info!(cluster = %self.cluster, session = self.id, error = %e, "agent connection lost");
                self.close(ctx, CloseCode::Normal, String::new());
            }
            Err(e) => self.violation(
                ctx,
                CloseCode::Malformed,
                format!("websocket protocol error: {e}"),
                "websocket",
            ),
        }
    }
}

impl Handler<SendCommand> for ClusterSession {
    type Result = ();

    fn handle(&mut self, msg: SendCommand, ctx: &mut Self::Context) {
        self.send(ctx, &FleetMessage::Command(msg.0));
    }
}

impl Handler<CloseSession> for ClusterSession {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        tracing::info!(cluster = %self.cluster, session = self.id, reason = %msg.reason, "closing agent session");
        self.close(ctx, msg.code, msg.reason);
    }
}

/// `GET /v1/agent`: upgrades an agent's connection to the protocol's websocket.
pub async fn agent_socket(
    req: HttpRequest,
    body: web::Payload,
    ctx: web::Data<ServerContext>,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(peer) = req.conn_data::<PeerCertificate>().cloned() else {
        return Ok(HttpResponse::Unauthorized().body("a cluster client certificate is required"));
    };
    let Identity::Cluster(cluster) = peer.identity else {
        tracing::warn!(identity = %peer.identity, "non-cluster certificate on the agent endpoint");
        return Ok(
            HttpResponse::Forbidden().body("only cluster certificates may open an agent session")
        );
    };
    let (response, mut socket, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let (out, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    // The writer owns the socket so the actor never awaits a slow peer.
    actix_web::rt::spawn(async move {
        while let Some(outbound) = rx.recv().await {
            let sent = match outbound {
                Outbound::Text(text) => socket.text(text).await,
                Outbound::Pong(payload) => socket.pong(&payload).await,
                Outbound::Close(code, reason) => {
                    let reason = CloseReason {
                        code: code.code().into(),
                        description: Some(reason),
                    };
                    let _ = socket.close(Some(reason)).await;
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
        let _ = socket.close(None).await;
    });
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%cluster, session = id, fingerprint = %peer.fingerprint, "agent websocket opened");
    ClusterSession::create(|actx| {
        actx.add_stream(stream);
        ClusterSession {
            id,
            cluster,
            fingerprint: peer.fingerprint,
            ctx,
            out,
            said_hello: false,
            last_seen: Instant::now(),
            closing: false,
        }
    });
    Ok(response)
}
