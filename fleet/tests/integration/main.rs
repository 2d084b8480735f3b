//! The fleet server's integration tests against real servers (the fleet server with real TLS,
//! kubesim, agents). One test binary with a module per subject, so the test build links the
//! fleet once instead of once per file. Run one subject with
//! `cargo test -p fleet --test integration console::`.

mod support;

mod agent_commands;
mod agent_identity;
mod agent_sessions;
mod console;
mod front;
mod kube_registry;
