//! `flotilla serve`: the fleet server.
//!
//! Two listeners over rustls (TLS 1.3): the agent endpoint, which demands a client
//! certificate that chains to the fleet CA and is still admitted by the registry, and the
//! admin API (JSON, server-sent events, `/metrics`, `/healthz`), which takes an admin client
//! certificate or a bearer token. [`start`] runs both in-process and returns a [`RunningFleet`].

pub mod api;
pub mod fleet_actor;
pub mod metrics;
pub mod report;
pub mod session;
pub mod state;
pub mod trust;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::{Extensions, ServerHandle};
use actix_web::{App, HttpServer, web};
use proto::pki::{Fingerprint, Identity, SecretPem};
use proto::tls::{self, ClientAuth};

pub use fleet_actor::FleetActor;
pub use session::ClusterSession;
pub use state::{ClusterView, ConnectionState, FleetEvent, FleetState};

use crate::registry::{Registry, RegistryError};
use metrics::FleetMetrics;
use trust::TrustStore;

/// What can go wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS configuration could not be built from the certificates.
    #[error("TLS configuration: {0}")]
    Tls(#[from] tls::TlsError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The metric families could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The registry could not be read at start-up.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The fleet actor stopped while starting.
    #[error("the fleet actor is not running")]
    ActorGone,
}

/// Everything the server needs; see `flotilla serve --help` for the defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where agents connect.
    pub agent_addr: SocketAddr,
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// The fleet CA (PEM): client certificates must chain to it.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub server_cert_pem: String,
    /// Its key.
    pub server_key_pem: SecretPem,
    /// A bearer token that grants API access, if any.
    pub admin_token: Option<SecretPem>,
    /// How often agents heartbeat.
    pub heartbeat: Duration,
    /// How many heartbeats may be missed before the cluster counts as disconnected.
    pub missed_heartbeats: u32,
    /// How often the registry is re-read (new clusters, revocations).
    pub registry_poll: Duration,
    /// Worker threads per listener.
    pub workers: usize,
}

/// The verified client certificate of a connection, recorded when it is accepted.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// Who it names.
    pub identity: Identity,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// Shared by every handler and session.
#[derive(Debug)]
pub struct ServerContext {
    /// The read side.
    pub state: FleetState,
    /// The metric families.
    pub metrics: FleetMetrics,
    /// The fleet actor.
    pub fleet: Addr<FleetActor>,
    /// The agents' heartbeat interval.
    pub heartbeat: Duration,
    /// Missed heartbeats before disconnecting.
    pub missed_heartbeats: u32,
    /// SHA-256 of the admin token, compared in constant time.
    pub token_digest: Option<[u8; 32]>,
}

/// Records the verified peer certificate on the connection, so handlers read the identity
/// from the TLS session itself and never from anything the client sends.
fn record_peer(conn: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(stream) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = stream.get_ref();
    let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) else {
        return;
    };
    // The verifier already refused certificates without an identity.
    if let Ok(identity) = Identity::from_der(leaf) {
        data.insert(PeerCertificate {
            identity,
            fingerprint: Fingerprint::of_der(leaf),
        });
    }
}

/// A running fleet server.
pub struct RunningFleet {
    /// Where agents connect (the bound address; port 0 in the config is resolved here).
    pub agent_addr: SocketAddr,
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// The read side, for in-process callers.
    pub state: FleetState,
    fleet: Addr<FleetActor>,
    registry: Arc<dyn Registry>,
    reporter: Arc<tokio::sync::Mutex<report::StatusReporter>>,
    handles: Vec<ServerHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningFleet")
            .field("agent_addr", &self.agent_addr)
            .field("api_addr", &self.api_addr)
            .finish()
    }
}

impl RunningFleet {
    /// The URL agents dial.
    pub fn agent_url(&self) -> String {
        format!("wss://localhost:{}/v1/agent", self.agent_addr.port())
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        format!("https://localhost:{}", self.api_addr.port())
    }

    /// Re-reads the registry now (the server also does it every `registry_poll`).
    pub async fn reload_registry(&self) -> Result<(), ServeError> {
        self.fleet
            .send(fleet_actor::ReloadRegistry)
            .await
            .map_err(|_| ServeError::ActorGone)??;
        Ok(())
    }

    /// Writes the clusters' observed status to the registry now (the server also does it
    /// every `registry_poll`); returns how many clusters changed.
    pub async fn report_status(&self) -> Result<usize, ServeError> {
        Ok(self
            .reporter
            .lock()
            .await
            .report(&self.state, &self.registry)
            .await?)
    }

    /// Waits until both listeners stop (for `flotilla serve`, on a signal).
    pub async fn wait(mut self) {
        let servers = std::mem::take(&mut self.tasks);
        for task in servers {
            let _ = task.await;
        }
    }

    /// Stops both listeners and closes every connection.
    pub async fn stop(self) {
        for handle in &self.handles {
            handle.stop(false).await;
        }
        for task in &self.tasks {
            task.abort();
        }
        self.fleet.do_send(StopFleet);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct StopFleet;

impl Handler<StopFleet> for FleetActor {
    type Result = ();

    fn handle(&mut self, _: StopFleet, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Starts the fleet: reads the registry, binds both listeners, and keeps re-reading the
/// registry in the background. Must run inside an actix system (`#[actix_web::main]`).
pub async fn start(
    config: ServeConfig,
    registry: Arc<dyn Registry>,
) -> Result<RunningFleet, ServeError> {
    let state = FleetState::new();
    let metrics = FleetMetrics::new()?;
    let trust = TrustStore::default();
    let fleet = FleetActor::new(
        state.clone(),
        metrics.clone(),
        trust.clone(),
        registry.clone(),
    )
    .start();
    let reporter = Arc::new(tokio::sync::Mutex::new(report::StatusReporter::default()));
    fleet
        .send(fleet_actor::ReloadRegistry)
        .await
        .map_err(|_| ServeError::ActorGone)??;

    let gate: Arc<dyn tls::CertificateGate> = Arc::new(trust);
    let agent_tls = tls::server_config(
        &config.ca_pem,
        &config.server_cert_pem,
        &config.server_key_pem,
        ClientAuth::Required,
        gate.clone(),
    )?;
    let api_tls = tls::server_config(
        &config.ca_pem,
        &config.server_cert_pem,
        &config.server_key_pem,
        ClientAuth::Optional,
        gate,
    )?;
    let token_digest = config
        .admin_token
        .as_ref()
        .map(|t| api::digest(t.expose().as_bytes()));
    let context = web::Data::new(ServerContext {
        state: state.clone(),
        metrics,
        fleet: fleet.clone(),
        heartbeat: config.heartbeat,
        missed_heartbeats: config.missed_heartbeats.max(1),
        token_digest,
    });

    let agent_ctx = context.clone();
    let agent_server = HttpServer::new(move || {
        App::new()
            .app_data(agent_ctx.clone())
            .route("/v1/agent", web::get().to(session::agent_socket))
            .route("/healthz", web::get().to(api::healthz))
    })
    .workers(config.workers.max(1))
    .on_connect(record_peer)
    .disable_signals()
    .shutdown_timeout(1)
    .bind_rustls_0_23(config.agent_addr, agent_tls)
    .map_err(|source| ServeError::Bind {
        addr: config.agent_addr,
        source,
    })?;
    let agent_addr = agent_server.addrs()[0];

    let api_ctx = context.clone();
    let api_server =
        HttpServer::new(move || App::new().app_data(api_ctx.clone()).configure(api::routes))
            .workers(config.workers.max(1))
            .on_connect(record_peer)
            .disable_signals()
            .shutdown_timeout(1)
            .bind_rustls_0_23(config.api_addr, api_tls)
            .map_err(|source| ServeError::Bind {
                addr: config.api_addr,
                source,
            })?;
    let api_addr = api_server.addrs()[0];

    let agent_server = agent_server.run();
    let api_server = api_server.run();
    let handles = vec![agent_server.handle(), api_server.handle()];
    let mut tasks = vec![
        actix_web::rt::spawn(async move {
            if let Err(e) = agent_server.await {
                tracing::error!(error = %e, "agent listener failed");
            }
        }),
        actix_web::rt::spawn(async move {
            if let Err(e) = api_server.await {
                tracing::error!(error = %e, "API listener failed");
            }
        }),
    ];
    let poller = fleet.clone();
    let poll = config.registry_poll;
    let (poll_state, poll_registry, poll_reporter) =
        (state.clone(), registry.clone(), reporter.clone());
    tasks.push(actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(poll);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match poller.send(fleet_actor::ReloadRegistry).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "registry reload failed; keeping the previous view")
                }
                Err(_) => return,
            }
            let mut reporter = poll_reporter.lock().await;
            if let Err(e) = reporter.report(&poll_state, &poll_registry).await {
                tracing::warn!(error = %e, "writing cluster status to the registry failed; retrying next time");
            }
        }
    }));
    tracing::info!(%agent_addr, %api_addr, "fleet server listening");
    Ok(RunningFleet {
        agent_addr,
        api_addr,
        state,
        fleet,
        registry,
        reporter,
        handles,
        tasks,
    })
}
