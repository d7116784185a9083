//! Admin passwords: Argon2id, hashed off the async threads. Unknown users are checked
//! against a dummy hash so the time taken says nothing about who exists.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::LazyLock;

use crate::domain::secret::Secret;

pub const MIN_PASSWORD_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must be at least {MIN_PASSWORD_LEN} characters long")]
    TooShort,
    #[error("could not hash the password")]
    Hash,
}

fn argon2() -> Argon2<'static> {
    // OWASP's recommended Argon2id parameters: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    argon2()
        .hash_password(b"keyward-dummy-password")
        .ok()
        .map(|h| h.to_string())
});

/// Argon2 takes 19 MiB and a core for ~50 ms: a burst of sign-ins waits its turn here rather
/// than exhausting memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

pub async fn hash(password: Secret) -> Result<String, PasswordError> {
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    let _turn = HASHING.acquire().await.map_err(|_| PasswordError::Hash)?;
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|_| PasswordError::Hash)
    })
    .await
    .map_err(|_| PasswordError::Hash)?
}

/// Checks `password` against `stored`, or against a dummy hash when there is no user.
pub async fn verify(password: Secret, stored: Option<String>) -> bool {
    let exists = stored.is_some();
    let Ok(_turn) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        // The dummy hash is made on first use, here, off the async threads.
        let Some(stored) = stored.or_else(|| DUMMY_HASH.clone()) else {
            return false;
        };
        PasswordHash::new(&stored)
            .map(|parsed| {
                argon2()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
        && exists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let stored = hash(Secret::new("correct horse battery".into()))
            .await
            .expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify(
                Secret::new("correct horse battery".into()),
                Some(stored.clone())
            )
            .await
        );
        assert!(!verify(Secret::new("wrong horse battery".into()), Some(stored)).await);
        assert!(!verify(Secret::new("keyward-dummy-password".into()), None).await);
    }

    #[tokio::test]
    async fn short_passwords_are_refused() {
        assert!(matches!(
            hash(Secret::new("short".into())).await,
            Err(PasswordError::TooShort)
        ));
    }
}
