//! The harness of the fleet's integration tests: a CA and registry made by the test, a real
//! fleet server on loopback, real FleetLink agents, and a log capture to prove no secret is
//! ever logged.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use actix::prelude::*;
use agent::fleet_link::{Backoff, ExecuteCommand, FleetLink, FleetLinkConfig, LinkStatus};
use fleet::client::{ApiClient, Credential};
use fleet::registry::{CertificateRecord, FileRegistry, Registration, Registry};
use fleet::server::{self, FleetState, RunningFleet, ServeConfig};
use proto::pki::{Ca, Identity, IssuedCert, SecretPem};
use proto::{ObjectRef, ObjectStatus, Readiness};
use tokio::sync::watch;

/// Everything a test logs, to check for secrets.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line at debug level (the most a log can say).
pub fn init_logging() {
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                "debug,h2=info,hyper=info,rustls=info,tungstenite=info,tokio_tungstenite=info",
            )
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

/// The log so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Asserts no line of the log holds any of `secrets` (key bodies, tokens).
pub fn assert_no_secret_logged(secrets: &[String]) {
    let log = logs();
    assert!(
        !log.contains("PRIVATE KEY"),
        "a private key header was logged"
    );
    for secret in secrets {
        // The base64 body of a PEM key, line by line: any one of them is a leak.
        for line in secret
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
        {
            assert!(!log.contains(line), "secret material was logged");
        }
    }
}

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "flotilla-fleet-test-{name}-{}-{}",
            std::process::id(),
            proto::message::now_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const DAY: Duration = Duration::from_secs(86_400);

/// A fleet's PKI and registry, made by the test.
pub struct Pki {
    pub ca: Ca,
    pub server: IssuedCert,
    pub admin: IssuedCert,
    pub token: String,
    pub registry: Arc<FileRegistry>,
    pub secrets: Vec<String>,
    _dir: TempDir,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        init_logging();
        let ca = Ca::generate("test", DAY).expect("CA");
        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], DAY)
            .expect("server cert");
        let admin = ca
            .issue_client(&Identity::Admin("ops".into()), DAY)
            .expect("admin cert");
        let dir = TempDir::new(name);
        let registry = Arc::new(FileRegistry::new(dir.0.join("clusters.json")));
        let token = format!("token-{}-{}", name, proto::message::now_ms());
        let secrets = vec![
            ca.key_pem().expose().to_string(),
            server.key_pem.expose().to_string(),
            admin.key_pem.expose().to_string(),
            token.clone(),
        ];
        Pki {
            ca,
            server,
            admin,
            token,
            registry,
            secrets,
            _dir: dir,
        }
    }

    /// Registers `name` and issues its certificate.
    pub async fn add_cluster(&mut self, name: &str) -> IssuedCert {
        let cert = self
            .ca
            .issue_client(&Identity::Cluster(name.into()), DAY)
            .expect("cluster cert");
        let now = chrono::Utc::now();
        let registration = Registration {
            name: name.into(),
            labels: BTreeMap::from([("env".to_string(), name.to_string())]),
            certificates: vec![CertificateRecord {
                fingerprint: cert.fingerprint.clone(),
                issued_at: now,
                not_after: cert.not_after,
            }],
            registered_at: now,
        };
        self.registry
            .register(registration, false)
            .await
            .expect("register");
        self.secrets.push(cert.key_pem.expose().to_string());
        cert
    }

    pub fn serve_config(&self, agent_port: u16, api_port: u16) -> ServeConfig {
        ServeConfig {
            agent_addr: ([127, 0, 0, 1], agent_port).into(),
            api_addr: ([127, 0, 0, 1], api_port).into(),
            ca_pem: self.ca.cert_pem().to_string(),
            server_cert_pem: self.server.cert_pem.clone(),
            server_key_pem: self.server.key_pem.clone(),
            admin_token: Some(SecretPem::new(self.token.clone())),
            // Long enough never to fire by accident on a loaded machine; tests that need a
            // reload ask for it.
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 6,
            registry_poll: Duration::from_secs(3600),
            workers: 1,
        }
    }

    /// Starts a fleet on free ports.
    pub async fn start_fleet(&self) -> RunningFleet {
        server::start(self.serve_config(0, 0), self.registry.clone())
            .await
            .expect("fleet starts")
    }

    /// An API client with the admin certificate.
    pub fn admin_client(&self, fleet: &RunningFleet) -> ApiClient {
        let credential = Credential::Certificate {
            cert_pem: self.admin.cert_pem.clone(),
            key_pem: self.admin.key_pem.clone(),
        };
        ApiClient::new(&fleet.api_url(), self.ca.cert_pem(), credential).expect("client")
    }

    /// An API client with the bearer token.
    pub fn token_client(&self, fleet: &RunningFleet, token: &str) -> ApiClient {
        ApiClient::new(
            &fleet.api_url(),
            self.ca.cert_pem(),
            Credential::Token(SecretPem::new(token.into())),
        )
        .expect("client")
    }

    /// A FleetLink configuration for `cert`.
    pub fn link_config(&self, url: &str, cert: &IssuedCert) -> FleetLinkConfig {
        let mut config =
            FleetLinkConfig::new(url, self.ca.cert_pem(), &cert.cert_pem, &cert.key_pem)
                .expect("link config");
        config.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(300));
        config.connect_timeout = Duration::from_secs(5);
        config
    }
}

/// Carries out commands as an agent would, recording them.
pub struct Executor {
    pub seen: Arc<Mutex<Vec<proto::Command>>>,
}

impl Actor for Executor {
    type Context = Context<Self>;
}

impl Handler<ExecuteCommand> for Executor {
    type Result = Result<String, String>;

    fn handle(
        &mut self,
        ExecuteCommand(command): ExecuteCommand,
        _: &mut Self::Context,
    ) -> Self::Result {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(command.clone());
        if command.object.name == "missing" {
            return Err(format!("{} not found", command.object));
        }
        Ok(format!(
            "{} requested for {}",
            command.action, command.object
        ))
    }
}

/// A simulated agent: the real FleetLink, fed statuses by the test.
pub struct SimAgent {
    pub link: Addr<FleetLink>,
    pub status: watch::Receiver<LinkStatus>,
    pub commands: Arc<Mutex<Vec<proto::Command>>>,
}

impl SimAgent {
    pub fn start(config: FleetLinkConfig, initial: Vec<ObjectStatus>) -> SimAgent {
        let commands = Arc::new(Mutex::new(Vec::new()));
        let executor = Executor {
            seen: commands.clone(),
        }
        .start();
        let (link, status) = FleetLink::new(config, Some(executor.recipient()));
        let link = link.start();
        for object in initial {
            link.do_send(agent::fleet_link::StatusChanged(object));
        }
        SimAgent {
            link,
            status,
            commands,
        }
    }

    /// Waits until the link's status satisfies `pred`.
    pub async fn wait(&mut self, pred: impl Fn(&LinkStatus) -> bool) -> LinkStatus {
        let waited =
            tokio::time::timeout(Duration::from_secs(30), self.status.wait_for(|s| pred(s))).await;
        waited
            .expect("link status in time")
            .expect("link alive")
            .clone()
    }
}

/// A Kustomization's status.
pub fn kustomization(name: &str, revision: &str, ready: Readiness) -> ObjectStatus {
    ObjectStatus {
        object: ObjectRef {
            kind: "Kustomization".into(),
            namespace: "flux-system".into(),
            name: name.into(),
        },
        ready,
        revision: Some(revision.into()),
        suspended: false,
        message: format!("Applied revision: {revision}"),
    }
}

/// Waits until the fleet's read side satisfies `pred`, woken by its change events.
pub async fn wait_state(state: &FleetState, what: &str, pred: impl Fn(&FleetState) -> bool) {
    let mut events = state.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while !pred(state) {
            // A lagged receiver only means more changes happened: check again.
            let _ = events.recv().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "fleet state never reached: {what}");
}
