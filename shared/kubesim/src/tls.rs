//! The generated PKI: a CA, a serving certificate for 127.0.0.1/localhost, a client
//! certificate and a bearer token, and the kubeconfig that carries them.

use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::Result;

/// User name of the generated client certificate (its CN), as kube-apiserver reads it.
pub const CLIENT_CERT_USER: &str = "kubesim-admin";

/// Credentials generated for one server instance.
pub struct Pki {
    /// PEM of the CA that signed the serving and client certificates.
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
    /// PEM of a client certificate (CN [`CLIENT_CERT_USER`], O system:masters).
    pub client_cert_pem: String,
    /// PEM of the client certificate's key.
    pub client_key_pem: String,
    /// The bearer token accepted by the server.
    pub token: String,
}

impl std::fmt::Debug for Pki {
    // The token and keys are secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// Fills `buf` from the process's crypto provider (aws-lc-rs).
pub fn random_bytes(buf: &mut [u8]) {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    // aws-lc-rs's RNG only fails when the OS has no entropy source; fall back to the clock
    // rather than panicking, since these values are test credentials and uids.
    if provider.secure_random.fill(buf).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8 ^ (i as u8);
        }
    }
}

/// A random RFC 4122 version 4 UUID, the format kube-apiserver uses for `metadata.uid`.
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Pki {
    /// Generates a fresh CA, serving and client certificates, and a token.
    pub fn generate() -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kubesim-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = server_params.signed_by(&server_key, &ca)?;

        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, CLIENT_CERT_USER);
        client_params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate()?;
        let client_cert = client_params.signed_by(&client_key, &ca)?;

        let mut tok = [0u8; 24];
        random_bytes(&mut tok);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok);

        Ok(Self {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_cert: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            token,
        })
    }

    /// Loads the credentials kept in `dir`, or generates and keeps new ones, so a server
    /// restarted on the same data directory keeps its CA and token and old kubeconfigs work.
    pub fn load_or_generate(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join("pki.json");
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let s = |k: &str| {
                v.get(k)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            let d = |k: &str| s(k).and_then(|x| b64.decode(x).ok());
            if let (
                Some(ca_pem),
                Some(ca_der),
                Some(server_cert),
                Some(server_key),
                Some(client_cert_pem),
                Some(client_key_pem),
                Some(token),
            ) = (
                s("caPem"),
                d("caDer"),
                d("serverCert"),
                d("serverKey"),
                s("clientCertPem"),
                s("clientKeyPem"),
                s("token"),
            ) {
                return Ok(Self {
                    ca_pem,
                    ca_der: CertificateDer::from(ca_der),
                    server_cert: CertificateDer::from(server_cert),
                    server_key,
                    client_cert_pem,
                    client_key_pem,
                    token,
                });
            }
        }
        let pki = Self::generate()?;
        let v = serde_json::json!({
            "caPem": pki.ca_pem, "caDer": b64.encode(pki.ca_der.as_ref()), "serverCert": b64.encode(pki.server_cert.as_ref()),
            "serverKey": b64.encode(&pki.server_key), "clientCertPem": pki.client_cert_pem, "clientKeyPem": pki.client_key_pem, "token": pki.token,
        });
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&path)?;
            f.write_all(v.to_string().as_bytes())?;
            f.sync_all()
        };
        write().map_err(|source| crate::error::Error::Persist {
            path: path.clone(),
            source,
        })?;
        Ok(pki)
    }

    /// rustls server configuration: HTTP/2 and HTTP/1.1, client certificates optional (a
    /// request without one must then carry the token).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server_cert.clone()], key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A kubeconfig for `server` authenticating with the bearer token.
    pub fn kubeconfig_token(&self, server: &str) -> String {
        kubeconfig(
            server,
            &self.ca_pem,
            &format!("    token: {}\n", self.token),
        )
    }

    /// A kubeconfig for `server` authenticating with the client certificate.
    pub fn kubeconfig_client_cert(&self, server: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        kubeconfig(
            server,
            &self.ca_pem,
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n",
                b64(&self.client_cert_pem),
                b64(&self.client_key_pem)
            ),
        )
    }
}

fn kubeconfig(server: &str, ca_pem: &str, user: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim-admin\n    namespace: default\ncurrent-context: kubesim\npreferences: {{}}\nusers:\n- name: kubesim-admin\n  user:\n{user}"
    )
}

/// The user named by a client certificate: its subject CN, as kube-apiserver reads it.
pub fn cert_user(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
