//! One SOPS value: `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<type>]`, sealed with
//! AES-256-GCM (32-byte nonce) under the document's data key, with the value's key path
//! (`a:b:c:`) as additional data so that a value moved to another key no longer opens.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// AES-GCM as SOPS uses it: 32-byte nonces, 16-byte tags.
type Gcm = AesGcm<Aes256, U32>;

const NONCE_SIZE: usize = 32;

/// Why one value did not decrypt. No variant carries the value or its plaintext.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CipherError {
    /// The text is not an `ENC[AES256_GCM,...]` value.
    #[error("input string <redacted> does not match sops' data format")]
    Format,
    /// A base64 part of the value is malformed.
    #[error("error base64-decoding {0}")]
    Base64(&'static str),
    /// The IV is not 32 bytes long.
    #[error("unexpected IV length {0}")]
    IvLength(usize),
    /// The data key is not 32 bytes long.
    #[error("data key has {0} bytes, want 32")]
    KeyLength(usize),
    /// Authentication failed: wrong key, tampered ciphertext, or a value moved to another key.
    #[error("could not decrypt with AES_GCM")]
    Open,
    /// The decrypted bytes do not parse as the value's declared type.
    #[error("decrypted value is not a valid {0}")]
    Type(String),
    /// The value's type is none SOPS writes.
    #[error("unknown datatype: {0}")]
    UnknownType(String),
}

/// A decrypted value with the type SOPS recorded for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    /// A timestamp, kept as its RFC 3339 text.
    Time(String),
    Comment(String),
}

impl Plain {
    /// The bytes this value contributes to the MAC (SOPS' `ToBytes`).
    pub fn mac_bytes(&self) -> Vec<u8> {
        match self {
            Plain::Str(s) | Plain::Time(s) | Plain::Comment(s) => s.as_bytes().to_vec(),
            Plain::Int(i) => i.to_string().into_bytes(),
            Plain::Float(f) => format_float(*f).into_bytes(),
            Plain::Bool(b) => bool_text(*b).as_bytes().to_vec(),
            Plain::Bytes(b) => b.clone(),
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, never an exponent,
/// which is also what Rust's `Display` prints for finite floats.
pub fn format_float(f: f64) -> String {
    format!("{f}")
}

/// How SOPS writes booleans into the MAC and into ciphertexts.
pub fn bool_text(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Whether `text` has the shape of an encrypted value.
pub fn is_encrypted_value(text: &str) -> bool {
    text.starts_with("ENC[AES256_GCM,")
}

/// Decrypts one value. An empty string stays empty, as SOPS never encrypts it.
pub fn decrypt(text: &str, key: &[u8], additional_data: &str) -> Result<Plain, CipherError> {
    if text.is_empty() {
        return Ok(Plain::Str(String::new()));
    }
    let parts = parse(text)?;
    if parts.iv.len() != NONCE_SIZE {
        return Err(CipherError::IvLength(parts.iv.len()));
    }
    let cipher = Gcm::new_from_slice(key).map_err(|_| CipherError::KeyLength(key.len()))?;
    let mut sealed = parts.data;
    sealed.extend_from_slice(&parts.tag);
    let nonce = aes_gcm::Nonce::<U32>::from_slice(&parts.iv);
    let opened = cipher
        .decrypt(
            nonce,
            Payload {
                msg: &sealed,
                aad: additional_data.as_bytes(),
            },
        )
        .map_err(|_| CipherError::Open)?;
    typed(opened, parts.datatype)
}

struct Parts<'a> {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    datatype: &'a str,
}

fn parse(text: &str) -> Result<Parts<'_>, CipherError> {
    let inner = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(CipherError::Format)?;
    let mut data = None;
    let mut iv = None;
    let mut tag = None;
    let mut datatype = None;
    for field in inner.split(',') {
        let (name, value) = field.split_once(':').ok_or(CipherError::Format)?;
        let slot = match name {
            "data" => &mut data,
            "iv" => &mut iv,
            "tag" => &mut tag,
            "type" => &mut datatype,
            _ => return Err(CipherError::Format),
        };
        *slot = Some(value);
    }
    let decode = |part: Option<&str>, name: &'static str| {
        let part = part.ok_or(CipherError::Format)?;
        STANDARD.decode(part).map_err(|_| CipherError::Base64(name))
    };
    Ok(Parts {
        data: decode(data, "data")?,
        iv: decode(iv, "iv")?,
        tag: decode(tag, "tag")?,
        datatype: datatype
            .filter(|t| !t.is_empty())
            .ok_or(CipherError::Format)?,
    })
}

fn typed(bytes: Vec<u8>, datatype: &str) -> Result<Plain, CipherError> {
    let invalid = || CipherError::Type(datatype.to_string());
    let text = || String::from_utf8(bytes.clone()).map_err(|_| invalid());
    Ok(match datatype {
        "str" => Plain::Str(text()?),
        "int" => Plain::Int(text()?.parse().map_err(|_| invalid())?),
        "float" => Plain::Float(text()?.parse().map_err(|_| invalid())?),
        "bool" => Plain::Bool(parse_go_bool(&text()?).ok_or_else(invalid)?),
        "bytes" => Plain::Bytes(bytes),
        "time" => Plain::Time(text()?),
        "comment" => Plain::Comment(text()?),
        other => return Err(CipherError::UnknownType(other.to_string())),
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kustomization::decrypt::test_encryptor as enc;

    #[test]
    fn values_round_trip_with_their_types_and_the_path_binds_them() {
        let key = [7u8; 32];
        let sealed = enc::encrypt_value("hunter2", "str", &key, "data:password:");
        assert_eq!(
            decrypt(&sealed, &key, "data:password:"),
            Ok(Plain::Str("hunter2".into()))
        );
        assert_eq!(decrypt(&sealed, &key, "data:user:"), Err(CipherError::Open));
        assert_eq!(
            decrypt(&sealed, &[8u8; 32], "data:password:"),
            Err(CipherError::Open)
        );
        let number = enc::encrypt_value("42", "int", &key, "n:");
        assert_eq!(decrypt(&number, &key, "n:"), Ok(Plain::Int(42)));
        let flag = enc::encrypt_value("True", "bool", &key, "b:");
        assert_eq!(decrypt(&flag, &key, "b:"), Ok(Plain::Bool(true)));
        assert_eq!(decrypt("", &key, "x:"), Ok(Plain::Str(String::new())));
    }

    #[test]
    fn malformed_values_are_refused_without_echoing_them() {
        let key = [1u8; 32];
        let error = decrypt("ENC[AES256_GCM,data:c2VjcmV0aXNo]", &key, "a:").err();
        assert_eq!(error, Some(CipherError::Format));
        assert!(!CipherError::Format.to_string().contains("secretish"));
        assert_eq!(
            decrypt("plain", &key, "a:").err(),
            Some(CipherError::Format)
        );
    }

    #[test]
    fn floats_and_booleans_feed_the_mac_as_sops_writes_them() {
        assert_eq!(Plain::Float(1.0).mac_bytes(), b"1");
        assert_eq!(Plain::Float(0.5).mac_bytes(), b"0.5");
        assert_eq!(Plain::Float(1e21).mac_bytes(), b"1000000000000000000000");
        assert_eq!(Plain::Bool(false).mac_bytes(), b"False");
    }
}
