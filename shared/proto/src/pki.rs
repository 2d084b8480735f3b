//! The fleet's certificate authority: the CA, the server certificate, and the client
//! certificates whose subject is the identity of a cluster (or an administrator).
//!
//! # Identity
//! A client certificate names exactly one [`Identity`], in its URI SAN
//! (`spiffe://flotilla/cluster/NAME` or `spiffe://flotilla/admin/NAME`) and, for people
//! reading it with openssl, in its common name. The fleet reads identity only from a
//! certificate that verified against its CA; nothing a peer sends can change it.
//!
//! # Secrets
//! Private keys only leave this module inside [`SecretPem`], whose `Debug` and `Display`
//! never print the key.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

/// The SPIFFE trust domain of the fleet's identities.
pub const TRUST_DOMAIN: &str = "flotilla";

/// What can go wrong issuing or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    /// A PEM or DER certificate could not be parsed.
    #[error("not a valid certificate: {0}")]
    BadCertificate(String),
    /// The private key could not be read (the key itself is never part of the message).
    #[error("not a valid private key")]
    BadKey(#[source] rcgen::Error),
    /// The certificate carries no fleet identity, or a malformed one.
    #[error("certificate has no fleet identity: {0}")]
    NoIdentity(String),
    /// A cluster or admin name that cannot be an identity.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The refused name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The random source failed.
    #[error("random number generation failed")]
    Random,
}

/// Result with [`PkiError`].
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// Who a verified client certificate speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "camelCase")]
pub enum Identity {
    /// A cluster's agent: may report that cluster's status, nothing else.
    Cluster(String),
    /// A person or tool administering the fleet: may call the HTTP API.
    Admin(String),
}

impl Identity {
    /// The SPIFFE URI naming this identity.
    pub fn uri(&self) -> String {
        match self {
            Identity::Cluster(n) => format!("spiffe://{TRUST_DOMAIN}/cluster/{n}"),
            Identity::Admin(n) => format!("spiffe://{TRUST_DOMAIN}/admin/{n}"),
        }
    }

    /// The bare name.
    pub fn name(&self) -> &str {
        match self {
            Identity::Cluster(n) | Identity::Admin(n) => n,
        }
    }

    /// Parses a SPIFFE URI of the fleet's trust domain.
    pub fn from_uri(uri: &str) -> Result<Identity> {
        let rest = uri
            .strip_prefix("spiffe://")
            .and_then(|r| r.strip_prefix(TRUST_DOMAIN))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                PkiError::NoIdentity(format!("{uri:?} is not in spiffe://{TRUST_DOMAIN}"))
            })?;
        let (kind, name) = rest
            .split_once('/')
            .ok_or_else(|| PkiError::NoIdentity(format!("{uri:?} has no name")))?;
        validate_name(name)?;
        match kind {
            "cluster" => Ok(Identity::Cluster(name.to_string())),
            "admin" => Ok(Identity::Admin(name.to_string())),
            _ => Err(PkiError::NoIdentity(format!(
                "{uri:?}: unknown kind {kind:?}"
            ))),
        }
    }

    /// Reads the identity of a DER certificate. Call it only on a certificate that has
    /// been verified against the fleet CA.
    pub fn from_der(der: &[u8]) -> Result<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?
            .ok_or_else(|| PkiError::NoIdentity("no subjectAltName".into()))?;
        let mut found = None;
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with("spiffe://")
            {
                if found.is_some() {
                    return Err(PkiError::NoIdentity("more than one SPIFFE URI".into()));
                }
                found = Some(Identity::from_uri(uri)?);
            }
        }
        found.ok_or_else(|| PkiError::NoIdentity("no spiffe:// URI SAN".into()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Cluster(n) => write!(f, "cluster {n}"),
            Identity::Admin(n) => write!(f, "admin {n}"),
        }
    }
}

/// Checks that a name can be an identity: a DNS-1123 label, as Kubernetes names are, so the
/// name is also a valid `Cluster` object name.
pub fn validate_name(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(PkiError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("must not be empty");
    }
    if name.len() > 63 {
        return fail("must be at most 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("must consist of lower-case letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return fail("must start and end with a letter or digit");
    }
    Ok(())
}

/// The SHA-256 of a certificate's DER, in lower-case hex: how the fleet names a certificate
/// when it revokes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        Fingerprint(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The fingerprint of the first certificate of a PEM bundle.
    pub fn of_pem(pem: &str) -> Result<Fingerprint> {
        let der = crate::tls::parse_certs(pem)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::BadCertificate("no certificate in PEM".into()))?;
        Ok(Fingerprint::of_der(&der))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// A PEM private key. Printing it shows `<redacted>`; [`SecretPem::expose`] is the one way
/// to the bytes, for writing the key where it belongs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps a PEM private key.
    pub fn new(pem: String) -> SecretPem {
        SecretPem(pem)
    }

    /// The key, for writing it to its file or Secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

impl fmt::Display for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A freshly issued certificate and its key.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: SecretPem,
    /// The certificate's fingerprint.
    pub fingerprint: Fingerprint,
    /// The end of its validity.
    pub not_after: chrono::DateTime<chrono::Utc>,
}

/// The fleet's certificate authority, loaded with its key.
pub struct Ca {
    cert_pem: String,
    key_pem: SecretPem,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Backdating `notBefore` a little keeps a certificate usable on a peer whose clock is behind.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + valid_for;
}

fn serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    // A positive 127-bit serial, as RFC 5280 asks.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn to_chrono(t: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
}

impl Ca {
    /// Creates a new CA valid for `valid_for`, named after the fleet.
    pub fn generate(fleet_name: &str, valid_for: Duration) -> Result<Ca> {
        let key = KeyPair::generate().map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Flotilla fleet CA ({fleet_name})"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "flotilla");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(serial()?);
        validity(&mut params, valid_for);
        let cert = params.self_signed(&key).map_err(PkiError::Generate)?;
        let key_pem = SecretPem(key.serialize_pem());
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA written by [`Ca::generate`] (or any CA certificate and its key).
    pub fn load(cert_pem: &str, key_pem: &SecretPem) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem.expose()).map_err(PkiError::BadKey)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.clone(),
            issuer,
        })
    }

    /// The CA certificate, PEM: what both ends trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, for saving it next to the certificate.
    pub fn key_pem(&self) -> &SecretPem {
        &self.key_pem
    }

    fn sign(&self, mut params: CertificateParams, valid_for: Duration) -> Result<IssuedCert> {
        let key = KeyPair::generate().map_err(PkiError::Generate)?;
        params.serial_number = Some(serial()?);
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, valid_for);
        let not_after = to_chrono(params.not_after);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(PkiError::Generate)?;
        Ok(IssuedCert {
            fingerprint: Fingerprint::of_der(cert.der()),
            cert_pem: cert.pem(),
            key_pem: SecretPem(key.serialize_pem()),
            not_after,
        })
    }

    /// Issues the fleet server's certificate for these DNS names and IP addresses.
    pub fn issue_server(&self, names: &[String], valid_for: Duration) -> Result<IssuedCert> {
        let mut params = CertificateParams::new(names.to_vec()).map_err(PkiError::Generate)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "flotilla fleet server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, valid_for)
    }

    /// Issues a client certificate for `identity`: CN = the name, URI SAN = the SPIFFE URI,
    /// usable for client authentication only.
    pub fn issue_client(&self, identity: &Identity, valid_for: Duration) -> Result<IssuedCert> {
        validate_name(identity.name())?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.name());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "flotilla");
        let uri = identity.uri().try_into().map_err(PkiError::Generate)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, valid_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_cluster_certificate_names_its_cluster_in_cn_and_uri_san() {
        let ca = Ca::generate("test", DAY).expect("ca");
        let issued = ca
            .issue_client(&Identity::Cluster("staging".into()), DAY)
            .expect("cert");
        let der = crate::tls::parse_certs(&issued.cert_pem)
            .expect("pem")
            .remove(0);
        assert_eq!(
            Identity::from_der(&der).expect("identity"),
            Identity::Cluster("staging".into())
        );
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok());
        assert_eq!(cn, Some("staging"));
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("present")
            .value;
        assert!(eku.client_auth && !eku.server_auth);
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert!(
            lifetime <= (DAY + CLOCK_SKEW).as_secs() as i64,
            "bounded validity"
        );
        assert_eq!(issued.fingerprint, Fingerprint::of_der(&der));
        assert_eq!(issued.fingerprint.0.len(), 64);
    }

    #[test]
    fn a_reloaded_ca_signs_certificates_that_chain_to_it() {
        let ca = Ca::generate("test", DAY).expect("ca");
        let again = Ca::load(ca.cert_pem(), ca.key_pem()).expect("reload");
        let issued = again
            .issue_client(&Identity::Admin("alice".into()), DAY)
            .expect("cert");
        let der = crate::tls::parse_certs(&issued.cert_pem)
            .expect("pem")
            .remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let ca_der = crate::tls::parse_certs(ca.cert_pem())
            .expect("pem")
            .remove(0);
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).expect("x509");
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
    }

    #[test]
    fn names_that_cannot_be_identities_are_refused() {
        for bad in [
            "",
            "Staging",
            "a/b",
            "-x",
            "x-",
            &"a".repeat(64),
            "spiffe://x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("production-clone").is_ok());
        assert!(Identity::from_uri("spiffe://other/cluster/a").is_err());
        assert!(Identity::from_uri("spiffe://flotilla/robot/a").is_err());
        assert_eq!(
            Identity::from_uri("spiffe://flotilla/cluster/prod-1").expect("ok"),
            Identity::Cluster("prod-1".into())
        );
    }

    #[test]
    fn a_secret_key_never_prints() {
        let ca = Ca::generate("test", DAY).expect("ca");
        let shown = format!("{:?} {} {:?}", ca.key_pem(), ca.key_pem(), ca);
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}
