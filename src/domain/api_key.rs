//! API keys: `kw_` + random base62 + a 6-character CRC-32 checksum.
//!
//! The prefix lets secret scanners find leaked keys; the checksum lets them (and us) tell a
//! real key from a look-alike without a database, and refuses typos before any lookup.
//! CRC-32 detects every single-character change, which a truncated hash does not promise.

use super::secret::{Secret, SecretHash, random_base62};
use std::fmt;

pub const KEY_PREFIX: &str = "kw_";
pub const MIN_KEY_LEN: usize = 64;
pub const MAX_KEY_LEN: usize = 256;
pub const DEFAULT_KEY_LEN: usize = 64;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Slice-by-16: every request with a key checks its checksum (a table of 16 KiB, made at compile
/// time; the bytewise default took 1.7 % of an `/api/v1/me` call's CPU).
static CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// The regular expression secret scanners use to find Keyward keys.
pub const SCANNER_REGEX: &str = r"\bkw_[0-9A-Za-z]{61,253}\b";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a key is {MIN_KEY_LEN} to {MAX_KEY_LEN} characters long")]
    Length,
    #[error("a key is made of printable ASCII characters without spaces")]
    Character,
    #[error(
        "the key starts with `kw_` but its checksum does not match; it was mistyped or truncated"
    )]
    Checksum,
}

/// A plaintext API key. It exists only between its creation and the moment it is shown,
/// or between a request's arrival and its hashing.
#[derive(Clone)]
pub struct ApiKey(Secret);

/// What a presented string looks like before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyShape {
    /// `kw_…` with a valid checksum: made by Keyward.
    Generated,
    /// Any other well-formed key: imported from another system.
    Imported,
}

impl ApiKey {
    /// A new key of `len` characters from the OS CSPRNG.
    pub fn generate(len: usize) -> Result<Self, KeyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&len) {
            return Err(KeyError::Length);
        }
        let mut key = String::with_capacity(len);
        key.push_str(KEY_PREFIX);
        key.push_str(&random_base62(len - KEY_PREFIX.len() - CHECKSUM_LEN));
        key.extend(checksum(&key).map(char::from));
        Ok(Self(Secret::new(key)))
    }

    /// An existing key brought from another system (a migration).
    pub fn import(text: &str) -> Result<Self, KeyError> {
        let text = text.trim_end_matches(['\r', '\n']);
        inspect(text)?;
        Ok(Self(Secret::new(text.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.expose())
    }

    pub fn hint(&self) -> String {
        hint(self.expose())
    }

    pub fn shape(&self) -> KeyShape {
        inspect(self.expose()).unwrap_or(KeyShape::Imported)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<hidden>)")
    }
}

/// Whether `text` has the shape of a generated key (what [`SCANNER_REGEX`] finds), checksum
/// right or not: a key mistyped into a URL has leaked all the same.
pub fn looks_like_key(text: &str) -> bool {
    text.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&text.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Checks length, alphabet and (for `kw_` keys) the checksum, without any lookup.
pub fn inspect(key: &str) -> Result<KeyShape, KeyError> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(KeyError::Length);
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(KeyError::Character);
    }
    match key.strip_prefix(KEY_PREFIX) {
        None => Ok(KeyShape::Imported),
        Some(_) => {
            let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
            if body[KEY_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
                && checksum(body) == sum.as_bytes()
            {
                Ok(KeyShape::Generated)
            } else {
                Err(KeyError::Checksum)
            }
        }
    }
}

/// The part of a key that may be displayed: its first three and last four characters.
pub fn hint(key: &str) -> String {
    let head: String = key.chars().take(3).collect();
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…{tail}")
}

/// The checksum's base62 characters (ASCII), without an allocation: every request checks one.
fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(CRC.checksum(body.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_prefix_length_and_valid_checksum() {
        for len in [MIN_KEY_LEN, 100, MAX_KEY_LEN] {
            let key = ApiKey::generate(len).expect("valid length");
            assert_eq!(key.expose().len(), len);
            assert!(key.expose().starts_with("kw_"));
            assert_eq!(inspect(key.expose()), Ok(KeyShape::Generated));
        }
    }

    #[test]
    fn the_checksum_is_crc32_in_base62_as_keys_already_issued_carry_it() {
        // Computed independently: Python's zlib.crc32 of the body, in six base62 digits.
        let issued = [
            "kw_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrs4WytKT".to_owned(),
            format!("kw_{}4R8tDr", "0123456789".repeat(20)),
        ];
        for key in issued {
            assert_eq!(inspect(&key), Ok(KeyShape::Generated), "{key}");
        }
    }

    #[test]
    fn lengths_outside_the_range_are_refused() {
        assert_eq!(ApiKey::generate(63).err(), Some(KeyError::Length));
        assert_eq!(ApiKey::generate(257).err(), Some(KeyError::Length));
    }

    #[test]
    fn every_single_character_change_is_detected() {
        let key = ApiKey::generate(64).expect("key");
        let text = key.expose();
        for i in 3..text.len() {
            for replacement in ['0', 'a', 'Z', 'q'] {
                let mut bytes = text.as_bytes().to_vec();
                if bytes[i] == replacement as u8 {
                    continue;
                }
                bytes[i] = replacement as u8;
                let corrupted = String::from_utf8(bytes).expect("ascii");
                assert_eq!(inspect(&corrupted), Err(KeyError::Checksum), "position {i}");
            }
        }
    }

    #[test]
    fn imported_keys_need_printable_ascii_without_spaces() {
        assert!(ApiKey::import(&"a".repeat(64)).is_ok());
        assert_eq!(
            ApiKey::import(&"a".repeat(63)).err(),
            Some(KeyError::Length)
        );
        let spaced = format!("{} {}", "a".repeat(40), "b".repeat(40));
        assert_eq!(ApiKey::import(&spaced).err(), Some(KeyError::Character));
        let forged = format!("kw_{}", "a".repeat(61));
        assert_eq!(ApiKey::import(&forged).err(), Some(KeyError::Checksum));
    }

    #[test]
    fn hint_shows_prefix_and_last_four() {
        let key = format!("kw_{}wxyz", "a".repeat(57));
        assert_eq!(hint(&key), "kw_…wxyz");
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = ApiKey::generate(64).expect("key");
        assert!(!format!("{key:?}").contains(key.expose()));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every generated key passes its own checksum, at every length.
        #[test]
        fn generated_keys_round_trip(len in MIN_KEY_LEN..=MAX_KEY_LEN) {
            let key = ApiKey::generate(len).expect("valid length");
            prop_assert_eq!(inspect(key.expose()), Ok(KeyShape::Generated));
            prop_assert_eq!(ApiKey::import(key.expose()).map(|k| k.hash()), Ok(key.hash()));
        }

        /// Changing any one character after the prefix into any other base62 character is
        /// always detected: CRC-32 catches every single-byte error.
        #[test]
        fn any_single_character_corruption_is_detected(
            len in MIN_KEY_LEN..=MAX_KEY_LEN,
            position in any::<prop::sample::Index>(),
            replacement in prop::sample::select(BASE62.to_vec()),
        ) {
            let key = ApiKey::generate(len).expect("valid length");
            let mut bytes = key.expose().as_bytes().to_vec();
            let at = KEY_PREFIX.len() + position.index(len - KEY_PREFIX.len());
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            let corrupted = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(inspect(&corrupted), Err(KeyError::Checksum));
        }

        /// The documented scanner expression finds every generated key, whole, at every length.
        #[test]
        fn the_scanner_regex_finds_every_generated_key(len in MIN_KEY_LEN..=MAX_KEY_LEN) {
            let key = ApiKey::generate(len).expect("valid length");
            let regex = regex::Regex::new(SCANNER_REGEX).expect("regex");
            let text = format!("KEYWARD_KEY={}\n", key.expose());
            prop_assert_eq!(regex.find(&text).map(|m| m.as_str()), Some(key.expose()));
        }

        /// Any text at all is judged without panicking.
        #[test]
        fn inspecting_never_panics(text in "\\PC{0,300}") {
            let _ = inspect(&text);
            let _ = hint(&text);
        }
    }
}
