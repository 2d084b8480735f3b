//! The agent <-> fleet wire protocol and the mutual-TLS plumbing both ends share.
//!
//! Agents dial the fleet and keep one websocket open; every frame is a JSON [`AgentMessage`]
//! or [`FleetMessage`], checked by [`frame::decode_agent`] / [`frame::decode_fleet`] against
//! the size limit and the protocol version. [`pki`] issues the fleet's certificates (the
//! identity of a cluster is its certificate), [`tls`] builds the rustls configurations and the
//! client verifier that refuses revoked certificates, and [`dial`] opens the agent's
//! connection.

pub mod dial;
pub mod frame;
pub mod message;
pub mod pki;
pub mod tls;

pub use frame::{CloseCode, FrameError, MAX_FRAME_BYTES, PROTOCOL_VERSION};
pub use message::{
    Ack, AgentMessage, Command, CommandAction, Delta, FleetMessage, Heartbeat, Hello, ObjectRef,
    ObjectStatus, Readiness, Snapshot, Welcome,
};
pub use pki::{Identity, PkiError};
