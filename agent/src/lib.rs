//! flotilla-agent: keeps one Kubernetes cluster in sync with Git, as Flux's controllers do.
//!
//! [`runtime::run`] starts a whole agent from an [`config::AgentConfig`]: the cluster
//! client, [`telemetry`] (Flux's metrics, health endpoints) and the actors. Sources
//! ([`source`]) fetch Git repositories into artifacts; [`fleet_link`] keeps the agent's one
//! mutual-TLS connection to the fleet server.

pub mod config;
pub mod fleet_link;
pub mod runtime;
pub mod source;
pub mod telemetry;
