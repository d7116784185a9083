//! API user names: 3–20 characters of `A-Z a-z 0-9 . _ -`.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("must be 3 to 20 characters long")]
    Length,
    #[error("may contain only letters A-Z and a-z, digits, '.', '_' and '-'")]
    Character,
}

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 20;

    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.chars().count()) {
            return Err(UsernameError::Length);
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(UsernameError::Character);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_of_the_allowed_alphabet() {
        for name in [
            "abc",
            "inventory-sync",
            "erp_2.0",
            "A-Z.a_z-09",
            "x".repeat(20).as_str(),
        ] {
            assert!(Username::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_short_long_and_foreign_names() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"x".repeat(21)), Err(UsernameError::Length));
        assert_eq!(Username::parse(""), Err(UsernameError::Length));
        for name in ["with space", "semi;colon", "émile", "a/b", "<script>"] {
            assert_eq!(
                Username::parse(name),
                Err(UsernameError::Character),
                "{name}"
            );
        }
    }
}
