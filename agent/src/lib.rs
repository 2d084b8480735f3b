//! flotilla-agent: keeps one Kubernetes cluster in sync with Git, as Flux's controllers do.
//!
//! [`runtime::run`] starts a whole agent from a [`config::AgentConfig`]: the cluster client,
//! [`telemetry`] (Flux's metrics, health endpoints) and the actors. A [`registry::Registry`]
//! per kind keeps one supervised actor per object; sources ([`source`]) fetch Git
//! repositories into artifacts and publish them to the [`hub::ArtifactHub`], where consumers
//! subscribe. [`kustomization`] plans what a reconcile applies and prunes; [`health`] judges
//! applied objects as kstatus does; [`fleet_link`] keeps the agent's one mutual-TLS
//! connection to the fleet server, fed by [`fleet_report`].

pub mod config;
pub mod context;
pub mod events;
pub mod fleet_link;
pub mod fleet_report;
pub mod gitrepository;
pub mod health;
pub mod hub;
pub mod kustomization;
pub mod registry;
pub mod runtime;
pub mod source;
pub mod telemetry;
