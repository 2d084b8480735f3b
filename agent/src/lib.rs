//! flotilla-agent: keeps one Kubernetes cluster in sync with Git, as Flux's controllers do.
//!
//! Sources ([`source`]) fetch Git repositories into artifacts; [`fleet_link`] keeps the
//! agent's one mutual-TLS connection to the fleet server.

pub mod fleet_link;
pub mod source;
