//! The keys a Kustomization decrypts with, read from its decryption Secret, and the data
//! key of a document recovered with them.
//!
//! As in kustomize-controller, the Secret's entries are told apart by name: `*.agekey`
//! holds age identities (one per line, `#` comments allowed), `*.asc` armored PGP keys,
//! `sops.vault-token`, `sops.aws-kms`, `sops.azure-kv` and `sops.gcp-kms` cloud
//! credentials. Only age is implemented; the other entries are recorded so an error can
//! say why a document whose only keys are of those kinds does not open.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::str::FromStr as _;

use age::x25519;

use super::Error;
use super::tree::Metadata;

/// Suffix of Secret entries holding age identities.
pub const AGE_EXTENSION: &str = ".agekey";
/// Suffix of Secret entries holding armored PGP keys.
pub const PGP_EXTENSION: &str = ".asc";
const CREDENTIAL_ENTRIES: [&str; 4] = [
    "sops.vault-token",
    "sops.aws-kms",
    "sops.azure-kv",
    "sops.gcp-kms",
];

/// Decryption keys. `Debug` shows counts only.
#[derive(Default)]
pub struct Keys {
    age: Vec<x25519::Identity>,
    /// Entries of kinds we do not implement (`.asc`, `sops.vault-token`, ...).
    unsupported: Vec<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("age_identities", &self.age.len())
            .field("unsupported_entries", &self.unsupported)
            .finish()
    }
}

impl Keys {
    /// Reads the keys of the decryption Secret `shown` (`namespace/name`, for messages).
    pub fn from_secret_data(shown: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Keys, Error> {
        let mut keys = Keys::default();
        for (name, value) in data {
            if name.ends_with(AGE_EXTENSION) {
                keys.import_age(value).map_err(|reason| Error::ImportKey {
                    entry: name.clone(),
                    secret: shown.to_string(),
                    reason,
                })?;
            } else if name.ends_with(PGP_EXTENSION) || CREDENTIAL_ENTRIES.contains(&name.as_str()) {
                keys.unsupported.push(name.clone());
            }
        }
        Ok(keys)
    }

    /// Keys holding the given age identities (`AGE-SECRET-KEY-1...` lines).
    pub fn from_age_identities(text: &str) -> Result<Keys, Error> {
        let mut keys = Keys::default();
        keys.import_age(text.as_bytes())
            .map_err(|reason| Error::ImportKey {
                entry: "identities".into(),
                secret: String::new(),
                reason,
            })?;
        Ok(keys)
    }

    fn import_age(&mut self, value: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(value).map_err(|_| "not UTF-8 text".to_string())?;
        let before = self.age.len();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The parse error would not echo the key, but say only where it is.
            let identity = x25519::Identity::from_str(line).map_err(|_| {
                format!(
                    "failed to parse age identity on line {}: not an X25519 identity (AGE-SECRET-KEY-1...)",
                    number + 1
                )
            })?;
            self.age.push(identity);
        }
        if self.age.len() == before {
            return Err("no age identities found".into());
        }
        Ok(())
    }

    /// Recovers the document's data key from one of its age stanzas.
    pub fn data_key(&self, metadata: &Metadata) -> Result<Vec<u8>, Error> {
        let groups = &metadata.age_groups;
        if groups.len() > 1 {
            return Err(Error::DataKey(
                "documents with several key groups (Shamir secret sharing) are not supported"
                    .into(),
            ));
        }
        let stanzas = groups.first().map(Vec::as_slice).unwrap_or_default();
        for stanza in stanzas {
            if let Some(key) = self.open_age(&stanza.enc) {
                if key.len() != 32 {
                    return Err(Error::DataKey(format!(
                        "data key for age recipient {} has {} bytes, want 32",
                        stanza.recipient,
                        key.len()
                    )));
                }
                return Ok(key);
            }
        }
        let recipients: Vec<&str> = stanzas.iter().map(|s| s.recipient.as_str()).collect();
        let mut message = if recipients.is_empty() {
            "the document has no age recipients".to_string()
        } else if self.age.is_empty() {
            format!(
                "no age identities to decrypt the data key for recipients {}",
                recipients.join(", ")
            )
        } else {
            format!(
                "none of the {} age identities matches the recipients {}",
                self.age.len(),
                recipients.join(", ")
            )
        };
        if !metadata.other_keys.is_empty() {
            message.push_str(&format!(
                "; master keys of kind {} are not supported",
                metadata.other_keys.join(", ")
            ));
        }
        Err(Error::DataKey(message))
    }

    fn open_age(&self, armored: &str) -> Option<Vec<u8>> {
        if self.age.is_empty() {
            return None;
        }
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let decryptor = age::Decryptor::new(reader).ok()?;
        let identities = self.age.iter().map(|i| i as &dyn age::Identity);
        let mut stream = decryptor.decrypt(identities).ok()?;
        let mut key = Vec::with_capacity(32);
        stream.read_to_end(&mut key).ok()?;
        Some(key)
    }
}
