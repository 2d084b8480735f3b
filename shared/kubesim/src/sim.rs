//! Server configuration and the shared state every request and controller works on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::registry::Registry;
use crate::store::Store;

/// Faults to inject, each applied to a fraction (0.0–1.0) of API requests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fraction answered 500 InternalError.
    pub error_rate: f64,
    /// Fraction answered 429 TooManyRequests with `Retry-After`.
    pub throttle_rate: f64,
    /// The `Retry-After` seconds of throttled responses.
    pub retry_after_secs: u64,
    /// Fraction whose connection is reset without a response.
    pub reset_rate: f64,
    /// Latency added before every request is handled.
    pub latency: Duration,
    /// Watches end after this long, well before their timeout, as when an apiserver restarts.
    pub watch_expiry: Option<Duration>,
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Keep state here across restarts; in memory when `None`.
    pub data_dir: Option<PathBuf>,
    /// How long simulated workloads take to become ready.
    pub ready_delay: Duration,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// Faults to inject from the start (changeable later with `RunningServer::set_faults`).
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            ready_delay: Duration::from_millis(200),
            watch_history: 10_000,
            faults: Faults::default(),
        }
    }
}

/// Shared state of one server.
pub struct Sim {
    /// Objects and events.
    pub store: Store,
    /// Served types.
    pub registry: Registry,
    /// Workload readiness delay.
    pub ready_delay: Duration,
    /// Current faults.
    pub faults: RwLock<Faults>,
    /// `host:port` for discovery's serverAddressByClientCIDRs.
    pub server_address: String,
    /// The CA (PEM), published in every namespace as `kube-root-ca.crt`.
    pub ca_pem: String,
    /// Next ClusterIP offset.
    pub next_ip: AtomicU32,
    /// Next NodePort offset.
    pub next_node_port: AtomicU32,
    rng: AtomicU64,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Wraps a store.
    pub fn new(store: Store, config: &Config, server_address: String, ca_pem: String) -> Self {
        let mut seed = [0u8; 8];
        crate::tls::random_bytes(&mut seed);
        Self {
            store,
            registry: Registry::new(),
            ready_delay: config.ready_delay,
            faults: RwLock::new(config.faults.clone()),
            server_address,
            ca_pem,
            next_ip: AtomicU32::new(10),
            next_node_port: AtomicU32::new(0),
            rng: AtomicU64::new(u64::from_le_bytes(seed) | 1),
        }
    }

    /// A uniform sample in [0, 1) (xorshift; fault injection needs no cryptographic quality).
    pub fn sample(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }
}
