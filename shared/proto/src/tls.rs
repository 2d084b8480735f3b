//! rustls configurations for both ends: TLS 1.3 only, aws-lc-rs only, mutual.
//!
//! The fleet's client verifier is rustls' WebPKI verifier (chain to the fleet CA, validity,
//! ClientAuth usage) followed by a [`CertificateGate`]: the fleet's own decision on the
//! verified certificate (is this cluster still registered, is this certificate revoked?).
//! A refused certificate fails the handshake, so its holder never reaches the application.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::pki::{Fingerprint, Identity, SecretPem};

/// What can go wrong building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM certificate bundle could not be read.
    #[error("cannot read certificates: {0}")]
    Certificates(#[source] rustls::pki_types::pem::Error),
    /// The PEM private key could not be read (its content is never part of the message).
    #[error("cannot read the private key")]
    Key(#[source] rustls::pki_types::pem::Error),
    /// The CA bundle holds no usable certificate.
    #[error("no usable CA certificate: {0}")]
    Roots(String),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[source] rustls::Error),
    /// The client verifier could not be built.
    #[error("cannot build the client verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// Result with [`TlsError`].
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

/// Parses every certificate of a PEM bundle.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(TlsError::Certificates)?;
    if certs.is_empty() {
        return Err(TlsError::Certificates(
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

/// Parses a PEM private key.
pub fn parse_key(pem: &SecretPem) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(TlsError::Key)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Roots(e.to_string()))?;
    }
    Ok(roots)
}

/// The fleet's decision on a client certificate that chains to its CA.
pub trait CertificateGate: Send + Sync + fmt::Debug {
    /// Admits or refuses the certificate; the reason is logged by the caller.
    fn admit(
        &self,
        identity: &Identity,
        fingerprint: &Fingerprint,
    ) -> std::result::Result<(), String>;
}

/// WebPKI client verification, then the [`CertificateGate`].
#[derive(Debug)]
pub struct GatedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    gate: Arc<dyn CertificateGate>,
}

impl ClientCertVerifier for GatedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let fingerprint = Fingerprint::of_der(end_entity);
        let identity = Identity::from_der(end_entity).map_err(|e| {
            tracing::warn!(%fingerprint, error = %e, "client certificate refused: no fleet identity");
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        })?;
        self.gate.admit(&identity, &fingerprint).map_err(|reason| {
            tracing::warn!(%identity, %fingerprint, %reason, "client certificate refused");
            rustls::Error::InvalidCertificate(CertificateError::Revoked)
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether a listener demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate, no handshake: the agent endpoint.
    Required,
    /// A certificate is verified when offered; otherwise the application authenticates the
    /// request some other way (a bearer token on the admin API).
    Optional,
}

/// The server side: the fleet's certificate and key, client certificates verified against
/// `ca_pem` and then `gate`.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &SecretPem,
    auth: ClientAuth,
    gate: Arc<dyn CertificateGate>,
) -> Result<ServerConfig> {
    let provider = provider();
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider.clone());
    let builder = match auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let inner = builder.build().map_err(TlsError::Verifier)?;
    let verifier = Arc::new(GatedClientVerifier { inner, gate });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Rustls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(cert_pem)?, parse_key(key_pem)?)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client side: trust only `ca_pem`; present `cert_pem` when given.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &SecretPem)>) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots(ca_pem)?);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(parse_certs(cert)?, parse_key(key)?)
            .map_err(TlsError::Rustls)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
