//! The keys a Kustomization decrypts with, read from its decryption Secret, and the data
//! key of a document recovered with them.
//!
//! As in kustomize-controller, the Secret's entries are told apart by name: `*.agekey`
//! holds age identities (one per line, `#` comments allowed), `*.asc` armored PGP keys,
//! `sops.vault-token`, `sops.aws-kms`, `sops.azure-kv` and `sops.gcp-kms` cloud
//! credentials. Age and PGP (secret keys without a passphrase, as Flux imports them into
//! a GnuPG home) are implemented; the credential entries are recorded so an error can say
//! why a document whose only keys are of those kinds does not open.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::str::FromStr as _;

use age::x25519;
use pgp::composed::{Message, PublicOrSecret, SignedSecretKey};
use pgp::types::Password;

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
    pgp: Vec<SignedSecretKey>,
    /// Entries of kinds we do not implement (`sops.vault-token`, ...).
    unsupported: Vec<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("age_identities", &self.age.len())
            .field("pgp_keys", &self.pgp.len())
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
            } else if name.ends_with(PGP_EXTENSION) {
                keys.import_pgp(value).map_err(|reason| Error::ImportKey {
                    entry: name.clone(),
                    secret: shown.to_string(),
                    reason,
                })?;
            } else if CREDENTIAL_ENTRIES.contains(&name.as_str()) {
                keys.unsupported.push(name.clone());
            }
        }
        Ok(keys)
    }

    /// Keys holding the given age identities (`AGE-SECRET-KEY-1...` lines).
    #[cfg(test)]
    pub(crate) fn from_age_identities(text: &str) -> Result<Keys, Error> {
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
            // Say where, never what: the line is a secret.
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

    /// Armored OpenPGP keys; public keys in the block are skipped, as they decrypt nothing.
    fn import_pgp(&mut self, value: &[u8]) -> Result<(), String> {
        let (keys, _) = PublicOrSecret::from_armor_many(value)
            .map_err(|e| format!("failed to read armored OpenPGP keys: {e}"))?;
        for key in keys {
            match key.map_err(|e| format!("failed to parse an OpenPGP key: {e}"))? {
                PublicOrSecret::Secret(secret) => self.pgp.push(secret),
                PublicOrSecret::Public(_) => {}
            }
        }
        Ok(())
    }

    fn open_pgp(&self, armored: &str) -> Option<Vec<u8>> {
        if self.pgp.is_empty() {
            return None;
        }
        let (message, _) = Message::from_armor(armored.as_bytes()).ok()?;
        let empty = Password::empty();
        let passwords = vec![&empty; self.pgp.len()];
        let mut message = message
            .decrypt_with_keys(passwords, self.pgp.iter().collect())
            .ok()?;
        if message.is_compressed() {
            message = message.decompress().ok()?;
        }
        message.as_data_vec().ok()
    }

    /// Recovers the document's data key from one of its age or PGP stanzas.
    pub fn data_key(&self, metadata: &Metadata) -> Result<Vec<u8>, Error> {
        let groups = &metadata.key_groups;
        if groups.len() > 1 {
            return Err(Error::DataKey(
                "documents with several key groups (Shamir secret sharing) are not supported"
                    .into(),
            ));
        }
        let Some(group) = groups.first() else {
            return Err(Error::DataKey("the document has no master keys".into()));
        };
        let opened = group
            .age
            .iter()
            .map(|stanza| (stanza.recipient.as_str(), self.open_age(&stanza.enc)))
            .chain(
                group
                    .pgp
                    .iter()
                    .map(|stanza| (stanza.fingerprint.as_str(), self.open_pgp(&stanza.enc))),
            )
            .find_map(|(name, key)| key.map(|key| (name, key)));
        if let Some((name, key)) = opened {
            if key.len() != 32 {
                return Err(Error::DataKey(format!(
                    "data key for {name} has {} bytes, want 32",
                    key.len()
                )));
            }
            return Ok(key);
        }
        let mut failures = Vec::new();
        if !group.age.is_empty() {
            let recipients: Vec<&str> = group.age.iter().map(|s| s.recipient.as_str()).collect();
            failures.push(if self.age.is_empty() {
                format!("no age identities for recipients {}", recipients.join(", "))
            } else {
                format!(
                    "none of the {} age identities matches the recipients {}",
                    self.age.len(),
                    recipients.join(", ")
                )
            });
        }
        if !group.pgp.is_empty() {
            let fingerprints: Vec<&str> =
                group.pgp.iter().map(|s| s.fingerprint.as_str()).collect();
            failures.push(if self.pgp.is_empty() {
                format!("no PGP keys for fingerprints {}", fingerprints.join(", "))
            } else {
                format!(
                    "none of the {} PGP keys decrypts for fingerprints {}",
                    self.pgp.len(),
                    fingerprints.join(", ")
                )
            });
        }
        if !metadata.other_keys.is_empty() {
            let mut failure = format!(
                "master keys of kind {} are not supported",
                metadata.other_keys.join(", ")
            );
            if !self.unsupported.is_empty() {
                failure.push_str(&format!(
                    " (decryption Secret entries {} are not used)",
                    self.unsupported.join(", ")
                ));
            }
            failures.push(failure);
        }
        if failures.is_empty() {
            failures.push("the document has no age or PGP master keys".into());
        }
        Err(Error::DataKey(failures.join("; ")))
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
