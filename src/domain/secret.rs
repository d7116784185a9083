//! What keys and session tokens share: random generation keyed by the OS, digests at rest,
//! constant-time comparison, and a `Debug` that never prints the secret.

use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rand_core::UnwrapErr;
use rand::rngs::{StdRng, SysRng};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a key or token: the only form in which a secret is stored.
/// Keys and tokens carry ≥ 256 bits of entropy, so a fast digest is enough (as Stripe
/// and GitHub do); a password hash would only slow every request down.
#[derive(Clone, Copy, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for SecretHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// `len` characters of `A-Z a-z 0-9` from a CSPRNG keyed, for this one secret, with 256 bits
/// from the operating system's. Alphanumeric is exactly base62, and it samples without
/// modulo bias. (Sampling the OS generator directly costs a system call per character: 48
/// of them for each session token.)
pub(crate) fn random_base62(len: usize) -> String {
    // The OS generator failing means the machine cannot make secrets at all: refusing to
    // go on (the request answers 500) is the only safe behaviour.
    let mut rng = StdRng::from_rng(&mut UnwrapErr(SysRng));
    Alphanumeric.sample_string(&mut rng, len)
}

/// A secret that was just made or just received. `Debug` and `Display` hide it; the only
/// way to read it is `expose`, which makes every use visible in review.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Masks whatever follows a `kw_` or `kwt_` prefix in `text`, so a key pasted into a URL path
/// cannot reach the history or a log through it.
pub fn redact(text: &str) -> String {
    Redacted(text).to_string()
}

/// Client input to quote back (in the history, in a refusal): keys and tokens masked as
/// [`redact`] masks them, anything but visible ASCII left out, and cut to `most` characters,
/// with `…` where it was cut.
pub fn quoted(text: &str, most: usize) -> String {
    let redacted = redact(text);
    let mut clean: String = redacted
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == '…')
        .take(most)
        .collect();
    if clean.chars().count() < redacted.chars().count() {
        clean.push('…');
    }
    clean
}

/// `text` as [`redact`] masks it, written where it is shown: a log line's path is masked
/// without a string made for it.
pub struct Redacted<'a>(pub &'a str);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        mask(self.0, 1, f)
    }
}

/// Masks the secrets in `text` that are long enough to be keys or tokens (a key has at least
/// 61 characters after `kw_`, a token 44 after `kwt_`), and leaves shorter names such as a
/// username `kw_bot` as they are: for text that quotes what a client sent.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = mask(text, 40, &mut out);
    out
}

/// Writes `text` to `out` with each run of at least `shortest` letters and digits after `kw_`
/// or `kwt_` masked.
fn mask(text: &str, shortest: usize, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find("kw") {
        let (before, from) = rest.split_at(at);
        out.write_str(before)?;
        let prefix = ["kwt_", "kw_"].into_iter().find(|p| from.starts_with(p));
        let Some(prefix) = prefix else {
            out.write_str("kw")?;
            rest = &from[2..];
            continue;
        };
        out.write_str(prefix)?;
        let tail = &from[prefix.len()..];
        let secret_len = tail.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if secret_len >= shortest {
            out.write_char('…')?;
            rest = &tail[secret_len..];
        } else {
            rest = tail;
        }
    }
    out.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_keys_and_tokens_and_keeps_the_rest() {
        assert_eq!(redact("/api/v1/kw_abc123/x"), "/api/v1/kw_…/x");
        assert_eq!(redact("a kwt_Zz9 b kw_ c"), "a kwt_… b kw_ c");
        assert_eq!(redact("keyword kwargs"), "keyword kwargs");
        assert_eq!(redact("ékw_1é"), "ékw_…é");
    }

    #[test]
    fn a_refusal_masks_only_what_is_long_enough_to_be_a_secret() {
        let key = format!("kw_{}", random_base62(61));
        let token = format!("kwt_{}", random_base62(44));
        assert_eq!(
            redact_secrets(&format!("`{key}` and `{token}`, not ?confirm=kw_bot")),
            "`kw_…` and `kwt_…`, not ?confirm=kw_bot"
        );
    }

    #[test]
    fn random_strings_are_base62_and_distinct() {
        let a = random_base62(64);
        let b = random_base62(64);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_secrets() {
        let s = Secret::new("kw_topsecret".into());
        assert_eq!(format!("{s:?}"), "<hidden>");
        assert!(!format!("{:?}", SecretHash::of("x")).contains("x\""));
    }
}
