//! The webhook key: AES-256-GCM over endpoints' signing secrets, so the database alone (a
//! backup, a dump) cannot sign events. Signing needs the secret back, so it cannot be a
//! digest like keys and tokens.
//!
//! The key comes from `webhook_key` (`KEYWARD_WEBHOOK_KEY`, 64 hex characters). Without it a
//! SQLite store keeps one in a file of its own beside the database (`<db>-webhook-key`, mode
//! 0600), which `.backup` copies do not include; PostgreSQL has no such place shared by every
//! node, so there it must be set.

use crate::domain::secret::Secret;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use std::path::{Path, PathBuf};

const KEY_LEN: usize = 32;
/// The first byte of a sealed secret: the format, so the scheme can change later.
const VERSION: u8 = 1;
const AAD: &[u8] = b"keyward webhook secret";

pub struct SealingKey(RandomizedNonceKey);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "webhook_key must be 64 hexadecimal characters (32 bytes), such as the output of `openssl rand -hex 32`"
    )]
    Malformed,
    #[error(
        "webhooks on PostgreSQL need a webhook key shared by every node and the command line: \
         set KEYWARD_WEBHOOK_KEY (or webhook_key in keyward.toml) to 64 hexadecimal characters, \
         such as the output of `openssl rand -hex 32`"
    )]
    Missing,
    #[error("cannot use the webhook key file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret could not be sealed or opened with this webhook key")]
    Crypto,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<hidden>)")
    }
}

impl SealingKey {
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Malformed)?;
        if bytes.len() != KEY_LEN {
            return Err(KeyError::Malformed);
        }
        RandomizedNonceKey::new(&AES_256_GCM, &bytes)
            .map(Self)
            .map_err(|_| KeyError::Malformed)
    }

    fn random() -> Result<Self, KeyError> {
        Self::from_hex(&hex::encode(random_bytes().map_err(|_| KeyError::Crypto)?))
    }

    /// The key in effect: the configured one, else (SQLite) the one in the file beside the
    /// database, made on first use; an in-memory database gets one for this process only.
    pub fn resolve(configured: Option<&Secret>, database_url: &str) -> Result<Self, KeyError> {
        if let Some(key) = configured {
            return Self::from_hex(key.expose());
        }
        match crate::store::sqlite_file(database_url) {
            Some(Some(path)) => Self::from_file(&key_file(&path)),
            Some(None) => Self::random(),
            None => Err(KeyError::Missing),
        }
    }

    /// The key in effect if there is one, without making one: the configured key, else (a
    /// SQLite file) the one in the file beside the database if that file exists.
    pub fn existing(
        configured: Option<&Secret>,
        database_url: &str,
    ) -> Result<Option<Self>, KeyError> {
        if let Some(key) = configured {
            return Self::from_hex(key.expose()).map(Some);
        }
        let Some(path) = Self::file_of(database_url) else {
            return Ok(None);
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::File { path, source }),
        }
    }

    /// Writes the configured key into the key file of a SQLite database that has none, so
    /// the database keeps opening its secrets once the setting is gone; the file written.
    pub fn keep_beside(
        configured: Option<&Secret>,
        database_url: &str,
    ) -> Result<Option<PathBuf>, KeyError> {
        let (Some(key), Some(path)) = (configured, Self::file_of(database_url)) else {
            return Ok(None);
        };
        Self::from_hex(key.expose())?;
        let key = key.expose().trim();
        let error = |source| KeyError::File {
            path: path.clone(),
            source,
        };
        if write_new_file(&path, key).map_err(error)? {
            return Ok(Some(path));
        }
        let kept = std::fs::read_to_string(&path).map_err(error)?;
        if kept.trim().eq_ignore_ascii_case(key) {
            Ok(None)
        } else {
            Err(error(std::io::Error::other(
                "it holds another key than webhook_key",
            )))
        }
    }

    /// The file that holds the key of a SQLite database: `keyward.db-webhook-key`.
    pub fn file_of(database_url: &str) -> Option<PathBuf> {
        crate::store::sqlite_file(database_url)
            .flatten()
            .map(|path| key_file(&path))
    }

    fn from_file(path: &Path) -> Result<Self, KeyError> {
        let error = |source| KeyError::File {
            path: path.to_owned(),
            source,
        };
        // Two processes starting together: one creates the file, the other reads it once
        // it has been written.
        for _ in 0..50 {
            match std::fs::read_to_string(path) {
                Ok(text) if text.trim().len() == 2 * KEY_LEN => return Self::from_hex(&text),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(key) = create_file(path).map_err(error)? {
                        return Self::from_hex(&key);
                    }
                }
                Err(e) => return Err(error(e)),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(KeyError::Malformed)
    }

    /// `version ‖ nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, secret: &str) -> Result<Vec<u8>, KeyError> {
        let mut in_out = secret.as_bytes().to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(AAD), &mut in_out)
            .map_err(|_| KeyError::Crypto)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Secret, KeyError> {
        let (version, rest) = sealed.split_first().ok_or(KeyError::Crypto)?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(KeyError::Crypto);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Crypto)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(AAD), &mut in_out)
            .map_err(|_| KeyError::Crypto)?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| KeyError::Crypto)
    }
}

fn random_bytes() -> std::io::Result<[u8; KEY_LEN]> {
    let mut bytes = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the random generator failed"))?;
    Ok(bytes)
}

/// `keyward.db` → `keyward.db-webhook-key`.
fn key_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-webhook-key");
    PathBuf::from(name)
}

/// Creates the key file with a new key, readable by this user only; `None` if another
/// process created it first.
fn create_file(path: &Path) -> std::io::Result<Option<String>> {
    let key = hex::encode(random_bytes()?);
    Ok(write_new_file(path, &key)?.then_some(key))
}

/// Writes `key` to a new file readable by this user only; `false` if the file exists.
fn write_new_file(path: &Path, key: &str) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(key.as_bytes())?;
            file.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let key = SealingKey::random().expect("key");
        let sealed = key.seal("whsec_abc").expect("seal");
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(key.open(&sealed).expect("open").expose(), "whsec_abc");
        let other = SealingKey::random().expect("key");
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(key.open(&tampered).is_err());
        assert_ne!(
            key.seal("whsec_abc").expect("seal"),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert!(SealingKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(SealingKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(SealingKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        let first = SealingKey::from_file(&path).expect("made");
        let sealed = first.seal("whsec_x").expect("seal");
        let again = SealingKey::from_file(&path).expect("read");
        assert_eq!(again.open(&sealed).expect("open").expose(), "whsec_x");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
