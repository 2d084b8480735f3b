//! The agent's side of the connection: TCP, TLS with the cluster certificate, websocket.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::frame::MAX_FRAME_BYTES;

/// An open agent connection.
pub type FleetSocket = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

pub use tokio_tungstenite::tungstenite::Error as WsError;
/// Re-exported so callers can name frames without depending on tungstenite themselves.
pub use tokio_tungstenite::tungstenite::Message as WsMessage;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

/// Why dialing the fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The URL is not a `wss://host:port/path` URL.
    #[error("invalid fleet URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Host and port.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (unknown server, refused client certificate, ...).
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// Host and port.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The websocket upgrade failed.
    #[error("websocket upgrade failed: {0}")]
    Upgrade(#[source] Box<WsError>),
}

/// Opens the websocket at `url` (`wss://host:port/path`) over TLS with `tls`.
pub async fn dial(url: &str, tls: Arc<ClientConfig>) -> Result<FleetSocket, DialError> {
    let bad = |reason: &str| DialError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let request = url.into_client_request().map_err(|e| bad(&e.to_string()))?;
    if request.uri().scheme_str() != Some("wss") {
        return Err(bad("the scheme must be wss"));
    }
    let host = request
        .uri()
        .host()
        .ok_or_else(|| bad("no host"))?
        .to_string();
    let port = request.uri().port_u16().unwrap_or(443);
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name = ServerName::try_from(bare_host.clone()).map_err(|e| bad(&e.to_string()))?;
    let addr = format!("{host}:{port}");
    let tcp = TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|source| DialError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let tls_stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|source| DialError::Tls { addr, source })?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, tls_stream, Some(config))
            .await
            .map_err(|e| DialError::Upgrade(Box::new(e)))?;
    Ok(socket)
}
