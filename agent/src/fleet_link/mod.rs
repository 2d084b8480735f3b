//! The agent side of the fleet connection: one long-lived mutual-TLS websocket to the fleet
//! server, kept by the [`FleetLink`] actor.
//!
//! The link is never in the data path of GitOps: the agent's actors tell it about status
//! changes with `do_send` (it never answers, never blocks them), and reconciling goes on
//! whether the fleet is reachable or not. While disconnected the link only keeps the latest
//! status of every object; on reconnect it sends a full snapshot, so the fleet resyncs
//! without replaying history.
//!
//! - [`backoff`]: jittered exponential backoff between connection attempts.
//! - [`link`]: the actor, its messages and its configuration.
//! - [`executor`]: carries the fleet's commands out on the cluster's Flux objects.
//! - [`args`]: the agent's `--fleet*` flags.

pub mod args;
pub mod backoff;
pub mod executor;
pub mod link;

pub use args::FleetArgs;
pub use backoff::Backoff;
pub use executor::KubeExecutor;
pub use link::{
    ExecuteCommand, FleetLink, FleetLinkConfig, FleetLinkError, LinkStatus, ObjectRemoved,
    RenewCredentials, StatusChanged,
};
