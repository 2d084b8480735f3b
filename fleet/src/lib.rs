//! The fleet half of Flotilla: the `flotilla` command line and the subcommands it runs.
//!
//! [`cli::main`] parses the command line and hands each subcommand to its module in [`cmd`].

pub mod cli;
pub mod cmd;
