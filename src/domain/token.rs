//! Session tokens: `kwt_` + 44 base62 characters (261 bits from the OS CSPRNG) + the
//! session's number in decimal.
//!
//! The number finds the session by its primary key; the random part is the secret, stored only
//! as its digest and compared in constant time. Finding sessions by the digest instead needs a
//! unique index over random values, and SQLite wrote a page of that index per login.

use super::ids::SessionId;
use super::secret::{Secret, SecretHash, random_base62};
use std::fmt;

pub const TOKEN_PREFIX: &str = "kwt_";
const SECRET_LEN: usize = 44;
/// `i64::MAX` has 19 digits.
const MAX_NUMBER_LEN: usize = 19;

/// The secret part of a token, made before its session has a number.
pub struct TokenSecret(Secret);

impl TokenSecret {
    pub fn generate() -> Self {
        Self(Secret::new(random_base62(SECRET_LEN)))
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.expose())
    }

    /// The token the caller presents from now on.
    pub fn into_token(self, session: SessionId) -> SessionToken {
        SessionToken(Secret::new(format!(
            "{TOKEN_PREFIX}{}{}",
            self.0.expose(),
            session.0
        )))
    }
}

#[derive(Clone)]
pub struct SessionToken(Secret);

impl SessionToken {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<hidden>)")
    }
}

/// A presented token's session and the digest of its secret, or `None` when the string cannot
/// be a token at all (it is then refused without a lookup).
pub fn parse(token: &str) -> Option<(SessionId, SecretHash)> {
    let body = token.strip_prefix(TOKEN_PREFIX)?.as_bytes();
    if body.len() <= SECRET_LEN || body.len() > SECRET_LEN + MAX_NUMBER_LEN {
        return None;
    }
    let (secret, number) = body.split_at(SECRET_LEN);
    if !secret.iter().all(u8::is_ascii_alphanumeric)
        || !number.iter().all(u8::is_ascii_digit)
        || number[0] == b'0'
    {
        return None;
    }
    // Only ASCII digits are left, so both conversions fail only on overflow.
    let id = std::str::from_utf8(number).ok()?.parse().ok()?;
    let secret = std::str::from_utf8(secret).ok()?;
    Some((SessionId(id), SecretHash::of(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_session_and_digests_only_its_secret() {
        let secret = TokenSecret::generate();
        let hash = secret.hash();
        let token = secret.into_token(SessionId(4711));
        assert!(token.expose().starts_with(TOKEN_PREFIX) && token.expose().ends_with("4711"));
        assert_eq!(parse(token.expose()), Some((SessionId(4711), hash)));
        let other = TokenSecret::generate();
        assert_ne!(other.hash(), hash);
    }

    #[test]
    fn strings_that_cannot_be_tokens_are_refused() {
        let secret = "a".repeat(SECRET_LEN);
        for text in [
            "kwt_short".to_owned(),
            format!("kwt_{secret}"),
            format!("kwt_{secret}0"),
            format!("kwt_{secret}012"),
            format!("kwt_{secret}+12"),
            format!("kwt_{secret}12a"),
            format!("kwt_{secret}99999999999999999999"),
            format!("kwt_{secret}9223372036854775808"),
            format!("kwt_{}é1", "a".repeat(SECRET_LEN - 2)),
            format!("kwt_{}_12", "a".repeat(SECRET_LEN - 1)),
            format!("kw_{secret}12"),
        ] {
            assert_eq!(parse(&text), None, "{text}");
        }
        assert_eq!(
            parse(&format!("kwt_{secret}9223372036854775807")).map(|(id, _)| id),
            Some(SessionId(i64::MAX))
        );
    }
}
