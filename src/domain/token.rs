//! Session tokens: `kwt_` + 44 base62 characters (261 bits from the OS CSPRNG).

use super::secret::{Secret, SecretHash, random_base62};
use std::fmt;

pub const TOKEN_PREFIX: &str = "kwt_";
const TOKEN_BODY_LEN: usize = 44;
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_BODY_LEN;

#[derive(Clone)]
pub struct SessionToken(Secret);

impl SessionToken {
    pub fn generate() -> Self {
        Self(Secret::new(format!(
            "{TOKEN_PREFIX}{}",
            random_base62(TOKEN_BODY_LEN)
        )))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.expose())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<hidden>)")
    }
}

/// Whether a presented string can be a token at all; anything else is refused without a lookup.
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_unique() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert!(is_well_formed(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert!(!is_well_formed("kwt_short"));
        assert!(!is_well_formed(&format!("kw_{}", "a".repeat(45))));
    }
}
