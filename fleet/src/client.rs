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
