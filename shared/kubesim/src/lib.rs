//! kubesim: an in-process Kubernetes API server test double, faithful enough for the real
//! `kubectl` (v1.32) and kube-rs.
//!
//! Start it with [`Server::start`] (random 127.0.0.1 port by default) and point clients at
//! [`RunningServer::kubeconfig`]. It serves HTTPS with a generated CA, authenticates by bearer
//! token or client certificate, and implements discovery (legacy and aggregated), CRUD, watch,
//! JSON/merge/strategic-merge patches, server-side apply with managed fields (see [`ssa`] for
//! the cases not covered), CRDs that become servable once Established, finalizers, garbage
//! collection, namespace deletion, simulated workload readiness ([`workloads`]), persistence
//! ([`persist`]) and fault injection ([`Faults`]).
//!
//! ```no_run
//! # async fn demo() -> kubesim::Result<()> {
//! let server = kubesim::Server::start(kubesim::Config::default()).await?;
//! std::fs::write("/tmp/kubeconfig", server.kubeconfig()).ok();
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod events;
pub mod fields;
pub mod meta;
pub mod patch;
pub mod persist;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod sim;
pub mod ssa;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod watch;
pub mod workloads;

pub use error::{Error, Result};
pub use server::{RunningServer, Server};
pub use sim::{Config, Faults};
pub use workloads::FAIL_ANNOTATION;
