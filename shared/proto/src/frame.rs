//! Turning websocket text frames into messages and back, with the limits both ends enforce.
//!
//! A frame that is too large, not JSON, or not a known message is a [`FrameError`]; the
//! receiving end closes that connection with the matching [`CloseCode`] and a reason it also
//! logs. Nothing here panics on input.

use serde::Serialize;

use crate::message::{AgentMessage, FleetMessage, Hello};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either end accepts, in bytes. A snapshot of a few thousand objects fits;
/// a runaway one does not take the fleet's memory with it.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The frame is not a message of this protocol version (bad JSON, unknown type, missing
    /// field).
    #[error("malformed frame: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A binary frame; the protocol only uses text frames.
    #[error("binary frames are not part of the protocol")]
    Binary,
    /// The peer speaks another protocol version.
    #[error("protocol version {theirs} is not supported; this side speaks version {ours}")]
    VersionMismatch {
        /// The peer's version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// A message could not be encoded (never expected for our own types).
    #[error("encoding a message failed: {0}")]
    Encode(#[source] serde_json::Error),
}

impl FrameError {
    /// The websocket close code that reports this error to the peer.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge { .. } => CloseCode::TooLarge,
            FrameError::Malformed(_) | FrameError::Encode(_) => CloseCode::Malformed,
            FrameError::Binary => CloseCode::Unsupported,
            FrameError::VersionMismatch { .. } => CloseCode::VersionMismatch,
        }
    }
}

/// The close codes of the protocol: the standard ones where they fit, application codes
/// (4000-4999) for the rest. The agent decides how to back off from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: a deliberate close (shutdown, replaced by a newer connection).
    Normal,
    /// 1003: a binary frame.
    Unsupported,
    /// 1009: a frame over the size limit.
    TooLarge,
    /// 4000: not JSON, an unknown message type, or a message out of order.
    Malformed,
    /// 4001: the agent speaks another protocol version; retrying soon will not help.
    VersionMismatch,
    /// 4003: a status message named a cluster other than the certificate's.
    IdentityMismatch,
    /// 4004: the cluster was removed from the fleet while connected.
    Revoked,
    /// 4008: no heartbeat within the timeout.
    HeartbeatTimeout,
    /// 4009: a newer connection from the same cluster replaced this one.
    Replaced,
}

impl CloseCode {
    /// The numeric websocket close code.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::Unsupported => 1003,
            CloseCode::TooLarge => 1009,
            CloseCode::Malformed => 4000,
            CloseCode::VersionMismatch => 4001,
            CloseCode::IdentityMismatch => 4003,
            CloseCode::Revoked => 4004,
            CloseCode::HeartbeatTimeout => 4008,
            CloseCode::Replaced => 4009,
        }
    }

    /// The close code with this number, if it is one of ours.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::Unsupported,
            CloseCode::TooLarge,
            CloseCode::Malformed,
            CloseCode::VersionMismatch,
            CloseCode::IdentityMismatch,
            CloseCode::Revoked,
            CloseCode::HeartbeatTimeout,
            CloseCode::Replaced,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// Whether reconnecting right away could succeed; the agent backs off to its maximum
    /// delay when it cannot.
    pub fn is_permanent(self) -> bool {
        matches!(self, CloseCode::VersionMismatch | CloseCode::Revoked)
    }
}

fn check_size(text: &str) -> Result<(), FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

/// Decodes one frame from an agent.
pub fn decode_agent(text: &str) -> Result<AgentMessage, FrameError> {
    check_size(text)?;
    serde_json::from_str(text).map_err(FrameError::Malformed)
}

/// Decodes one frame from the fleet.
pub fn decode_fleet(text: &str) -> Result<FleetMessage, FrameError> {
    check_size(text)?;
    serde_json::from_str(text).map_err(FrameError::Malformed)
}

/// Encodes a message as one frame, refusing to produce a frame the peer would refuse.
pub fn encode<T: Serialize>(message: &T) -> Result<String, FrameError> {
    let text = serde_json::to_string(message).map_err(FrameError::Encode)?;
    check_size(&text)?;
    Ok(text)
}

/// Checks that the peer's `Hello` speaks our version.
pub fn check_version(hello: &Hello) -> Result<(), FrameError> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch {
            theirs: hello.protocol_version,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Delta, ObjectRef, ObjectStatus, Readiness};

    #[test]
    fn a_delta_survives_the_round_trip() {
        let delta = AgentMessage::Delta(Delta {
            cluster: "staging".into(),
            sent_at_ms: 1,
            changed: vec![ObjectStatus {
                object: ObjectRef {
                    kind: "Kustomization".into(),
                    namespace: "flux-system".into(),
                    name: "apps".into(),
                },
                ready: Readiness::True,
                revision: Some("main@sha1:abc".into()),
                suspended: false,
                message: "Applied revision: main@sha1:abc".into(),
            }],
            removed: vec![],
        });
        let text = encode(&delta).expect("encodes");
        assert!(text.contains(r#""type":"delta""#), "{text}");
        assert_eq!(decode_agent(&text).expect("decodes"), delta);
    }

    #[test]
    fn an_unknown_message_type_is_malformed() {
        let err = decode_agent(r#"{"type":"launchMissiles"}"#).expect_err("refused");
        assert_eq!(err.close_code(), CloseCode::Malformed);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for text in ["", "{", "null", "[1,2]", "\u{0}", r#"{"type":"hello"}"#] {
            let err = decode_agent(text).expect_err(text);
            assert_eq!(err.close_code(), CloseCode::Malformed, "{text}");
        }
    }

    #[test]
    fn an_oversize_frame_is_refused_before_parsing() {
        let text = format!(
            r#"{{"type":"heartbeat","sentAtMs":1,"pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        let err = decode_agent(&text).expect_err("too large");
        assert_eq!(err.close_code().code(), 1009);
    }

    #[test]
    fn another_protocol_version_is_a_mismatch_with_a_clear_reason() {
        let hello = Hello {
            protocol_version: 2,
            agent_version: "9.9.9".into(),
            capabilities: vec![],
        };
        let err = check_version(&hello).expect_err("mismatch");
        assert_eq!(err.close_code(), CloseCode::VersionMismatch);
        assert!(
            err.to_string().contains("version 2 is not supported"),
            "{err}"
        );
        assert!(CloseCode::VersionMismatch.is_permanent());
    }

    #[test]
    fn close_codes_round_trip_through_their_numbers() {
        for code in [
            CloseCode::Normal,
            CloseCode::TooLarge,
            CloseCode::Revoked,
            CloseCode::Replaced,
        ] {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(1234), None);
    }
}
