//! The CLI's client for the fleet's admin API: TLS with the fleet CA, authenticated by the
//! admin client certificate or a bearer token.

use std::time::Duration;

use proto::pki::SecretPem;
use serde::de::DeserializeOwned;

use crate::home::{FleetHome, HomeError};

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The credentials could not be loaded.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] proto::tls::TlsError),
    /// The HTTP request failed.
    #[error("request to the fleet API failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The API answered with an error.
    #[error("the fleet API answered {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error message.
        message: String,
    },
}

/// Result with [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How the CLI authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The admin client certificate and key.
    Certificate {
        /// PEM certificate.
        cert_pem: String,
        /// PEM key.
        key_pem: SecretPem,
    },
    /// A bearer token.
    Token(SecretPem),
}

/// A client for one fleet's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    token: Option<SecretPem>,
}

impl ApiClient {
    /// A client for the API at `base` (e.g. `https://localhost:9444`), trusting `ca_pem`.
    pub fn new(base: &str, ca_pem: &str, credential: Credential) -> Result<ApiClient> {
        let (identity, token) = match &credential {
            Credential::Certificate { cert_pem, key_pem } => {
                (Some((cert_pem.as_str(), key_pem)), None)
            }
            Credential::Token(token) => (None, Some(token.clone())),
        };
        let tls = proto::tls::client_config(ca_pem, identity)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(ClientError::Http)?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            token,
        })
    }

    /// A client using the data directory's CA and admin certificate, or `token` when given.
    pub fn from_home(base: &str, home: &FleetHome, token: Option<SecretPem>) -> Result<ApiClient> {
        let ca = home.read_public("ca.crt")?;
        let credential = match token {
            Some(token) => Credential::Token(token),
            None => Credential::Certificate {
                cert_pem: home.read_public("admin.crt")?,
                key_pem: home.read_secret("admin.key")?,
            },
        };
        ApiClient::new(base, &ca, credential)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no details")
                .to_string();
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        response.json().await.map_err(ClientError::Http)
    }

    /// `GET path`, decoded as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(ClientError::Http)?;
        Self::decode(response).await
    }

    /// `POST path`, decoded as JSON (also when the API answers 409 with an `Ack`).
    pub async fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self
            .request(reqwest::Method::POST, path)
            .send()
            .await
            .map_err(ClientError::Http)?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return response.json().await.map_err(ClientError::Http);
        }
        Self::decode(response).await
    }

    /// Live changes (`GET /api/v1/events`): the current clusters first, then every change,
    /// as server-sent events.
    pub async fn events(&self) -> Result<impl futures::Stream<Item = Result<SseEvent>> + use<>> {
        let response = self
            .request(reqwest::Method::GET, "/api/v1/events")
            .send()
            .await
            .map_err(ClientError::Http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: "event stream refused".into(),
            });
        }
        let bytes = response.bytes_stream();
        Ok(futures::stream::unfold(
            (bytes, SseParser::default()),
            |(mut bytes, mut parser)| async move {
                use futures::StreamExt;
                loop {
                    if let Some(event) = parser.next_event() {
                        return Some((Ok(event), (bytes, parser)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => parser.push(&chunk),
                        Some(Err(e)) => return Some((Err(ClientError::Http(e)), (bytes, parser))),
                        None => return None,
                    }
                }
            },
        ))
    }

    /// `GET path` as raw text (for `/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<(u16, String)> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(ClientError::Http)?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.map_err(ClientError::Http)?))
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name.
    pub name: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// Splits a byte stream into server-sent events.
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let mut event = SseEvent {
                name: "message".into(),
                data: String::new(),
            };
            let mut has_data = false;
            for line in text.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event.name = name.trim().to_string();
                } else if let Some(data) = line.strip_prefix("data:") {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                    has_data = true;
                }
            }
            if has_data {
                return Some(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_split_across_chunks_are_reassembled() {
        let mut parser = SseParser::default();
        parser.push(b"event: cluster\ndata: {\"a\"");
        assert_eq!(parser.next_event(), None);
        parser.push(b":1}\n\n: comment\n\nevent: object\ndata: x\ndata: y\n\n");
        assert_eq!(
            parser.next_event(),
            Some(SseEvent {
                name: "cluster".into(),
                data: r#"{"a":1}"#.into()
            })
        );
        assert_eq!(
            parser.next_event(),
            Some(SseEvent {
                name: "object".into(),
                data: "x\ny".into()
            })
        );
        assert_eq!(parser.next_event(), None);
    }
}
