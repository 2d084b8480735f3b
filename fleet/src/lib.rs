//! The fleet half of Flotilla: the `flotilla` command line and the fleet server it runs.
//!
//! [`cli::main`] parses the command line and hands each subcommand to its module in [`cmd`].
//! [`server::start`] runs the fleet server ([`server::FleetActor`], one
//! [`server::ClusterSession`] per agent, the admin API); [`home::FleetHome`] holds its CA and
//! credentials; [`registry::Registry`] its durable cluster registrations; [`client`] is the
//! CLI's way to the API.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod demo;
pub mod home;
pub mod registry;
pub mod server;
