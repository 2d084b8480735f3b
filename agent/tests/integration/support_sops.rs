//! A test-only SOPS encryptor, written from the file format (not from SOPS' code): enough
//! to produce the documents the decryptor reads — YAML/JSON objects and dotenv files
//! sealed to an age recipient or a PGP key. Shared by the agent's unit tests and `tests/`.
#![allow(dead_code)]

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};
use std::io::Write as _;

pub const LAST_MODIFIED: &str = "2026-11-21T08:00:00Z";

/// Seals one value as `ENC[AES256_GCM,...]`. The IV is derived from the inputs: tests need
/// no randomness, and a fixed key never sees the same IV for different inputs.
pub fn encrypt_value(plain: &str, datatype: &str, key: &[u8; 32], aad: &str) -> String {
    if plain.is_empty() {
        return String::new();
    }
    let digest = Sha512::digest([&key[..], aad.as_bytes(), b"\0", plain.as_bytes()].concat());
    let iv = &digest[..32];
    let cipher = AesGcm::<Aes256, U32>::new_from_slice(key).expect("32-byte key");
    let sealed = cipher
        .encrypt(
            aes_gcm::Nonce::<U32>::from_slice(iv),
            Payload {
                msg: plain.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .expect("seal");
    let (data, tag) = sealed.split_at(sealed.len() - 16);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{datatype}]",
        STANDARD.encode(data),
        STANDARD.encode(iv),
        STANDARD.encode(tag)
    )
}

/// An age key pair for tests: (identity file text, recipient).
pub fn age_key() -> (String, String) {
    use age::secrecy::ExposeSecret as _;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    (
        format!("# test key\n{}\n", identity.to_string().expose_secret()),
        recipient,
    )
}

/// The data key armored for `recipient`, as SOPS stores it in `sops.age[].enc`.
pub fn seal_data_key(key: &[u8; 32], recipient: &str) -> String {
    let recipient: age::x25519::Recipient = recipient.parse().expect("age recipient");
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .expect("encryptor");
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .expect("armor");
    let mut writer = encryptor.wrap_output(armored).expect("wrap");
    writer.write_all(key).expect("write");
    writer.finish().and_then(|a| a.finish()).expect("finish");
    String::from_utf8(out).expect("armored text")
}

/// A PGP key for tests: (armored secret key, the key). Ed25519 with a Curve25519
/// encryption subkey, no passphrase (as Flux imports keys).
pub fn pgp_key() -> (String, pgp::composed::SignedSecretKey) {
    use pgp::composed::{EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
    let mut encryption = SubkeyParamsBuilder::default();
    encryption
        .key_type(KeyType::ECDH(
            pgp::crypto::ecc_curve::ECCCurve::Curve25519Legacy,
        ))
        .can_sign(false)
        .can_encrypt(EncryptionCaps::All)
        .can_authenticate(false);
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id("Flotilla test <test@flotilla.invalid>".into())
        .subkeys(vec![encryption.build().expect("subkey params")]);
    let key = params
        .build()
        .expect("key params")
        .generate(rand::thread_rng())
        .expect("generate");
    let armored = key.to_armored_string(Default::default()).expect("armor");
    (armored, key)
}

/// The data key as an armored OpenPGP message to the key's encryption subkey, as SOPS
/// stores it in `sops.pgp[].enc`.
pub fn seal_data_key_pgp(key: &[u8; 32], secret: &pgp::composed::SignedSecretKey) -> String {
    use pgp::composed::{MessageBuilder, SignedPublicKey};
    let public = SignedPublicKey::from(secret.clone());
    let mut rng = rand::thread_rng();
    let mut builder = MessageBuilder::from_bytes("", key.to_vec())
        .seipd_v1(&mut rng, pgp::crypto::sym::SymmetricKeyAlgorithm::AES256);
    builder
        .encrypt_to_key(&mut rng, &public.public_subkeys[0])
        .expect("encrypt to subkey");
    builder
        .to_armored_string(&mut rng, Default::default())
        .expect("armor")
}

/// What to encrypt and how.
pub struct Sealer {
    pub data_key: [u8; 32],
    pub recipient: String,
    /// Seal the data key to this PGP key instead of the age recipient.
    pub pgp: Option<pgp::composed::SignedSecretKey>,
    /// `encrypted_regex`; every value is encrypted when `None`.
    pub encrypted_regex: Option<String>,
}

impl Sealer {
    pub fn new(recipient: &str) -> Sealer {
        let mut data_key = [0u8; 32];
        data_key.copy_from_slice(&Sha512::digest(recipient.as_bytes())[..32]);
        Sealer {
            data_key,
            recipient: recipient.to_string(),
            pgp: None,
            encrypted_regex: Some("^(data|stringData)$".into()),
        }
    }

    fn encrypted(&self, path: &[String]) -> bool {
        match &self.encrypted_regex {
            None => true,
            Some(r) => {
                let r = regex::Regex::new(r).expect("regex");
                path.iter().any(|p| r.is_match(p))
            }
        }
    }

    /// The document encrypted, with its `sops` block.
    pub fn seal(&self, document: &Value) -> Value {
        let mut hash = Sha512::new();
        let mut path = Vec::new();
        let mut sealed = self.walk(document, &mut path, &mut hash);
        let mac: String = hash.finalize().iter().map(|b| format!("{b:02X}")).collect();
        let mut block = match &self.pgp {
            Some(key) => {
                use pgp::types::KeyDetails as _;
                json!({"pgp": [{
                    "created_at": LAST_MODIFIED,
                    "enc": seal_data_key_pgp(&self.data_key, key),
                    "fp": key.fingerprint().to_string().to_uppercase(),
                }]})
            }
            None => json!({
                "age": [{"recipient": self.recipient, "enc": seal_data_key(&self.data_key, &self.recipient)}],
            }),
        };
        block["lastmodified"] = json!(LAST_MODIFIED);
        block["mac"] = json!(encrypt_value(&mac, "str", &self.data_key, LAST_MODIFIED));
        if let Some(regex) = &self.encrypted_regex {
            block["encrypted_regex"] = json!(regex);
        }
        block["version"] = json!("3.9.0");
        if let Some(map) = sealed.as_object_mut() {
            map.insert("sops".into(), block);
        }
        sealed
    }

    /// The document encrypted, printed as YAML.
    pub fn seal_yaml(&self, document: &Value) -> String {
        serde_saphyr::to_string(&self.seal(document)).expect("yaml")
    }

    fn walk(&self, value: &Value, path: &mut Vec<String>, hash: &mut Sha512) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    path.push(k.clone());
                    out.insert(k.clone(), self.walk(v, path, hash));
                    path.pop();
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.walk(v, path, hash)).collect())
            }
            Value::Null => Value::Null,
            leaf => {
                let (text, datatype) = match leaf {
                    Value::String(s) => (s.clone(), "str"),
                    Value::Bool(b) => ((if *b { "True" } else { "False" }).to_string(), "bool"),
                    Value::Number(n) if n.is_i64() => (n.to_string(), "int"),
                    other => (
                        other.as_f64().map(|f| format!("{f}")).unwrap_or_default(),
                        "float",
                    ),
                };
                hash.update(text.as_bytes());
                if self.encrypted(path) {
                    let aad = format!("{}:", path.join(":"));
                    Value::String(encrypt_value(&text, datatype, &self.data_key, &aad))
                } else {
                    leaf.clone()
                }
            }
        }
    }

    /// A dotenv file encrypted (every value), with flattened `sops_*` lines.
    pub fn seal_dotenv(&self, pairs: &[(&str, &str)]) -> String {
        let mut hash = Sha512::new();
        let mut out = String::new();
        for (k, v) in pairs {
            hash.update(v.as_bytes());
            let sealed = encrypt_value(v, "str", &self.data_key, &format!("{k}:"));
            out.push_str(&format!("{k}={sealed}\n"));
        }
        let mac: String = hash.finalize().iter().map(|b| format!("{b:02X}")).collect();
        let enc = seal_data_key(&self.data_key, &self.recipient).replace('\n', "\\n");
        out.push_str(&format!("sops_age__list_0__map_enc={enc}\n"));
        out.push_str(&format!(
            "sops_age__list_0__map_recipient={}\n",
            self.recipient
        ));
        out.push_str(&format!("sops_lastmodified={LAST_MODIFIED}\n"));
        out.push_str(&format!(
            "sops_mac={}\n",
            encrypt_value(&mac, "str", &self.data_key, LAST_MODIFIED)
        ));
        out.push_str("sops_version=3.9.0\n");
        out
    }
}
