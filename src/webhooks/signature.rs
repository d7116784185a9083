//! The `Keyward-Signature` header, as Stripe signs its webhooks: `t=<unix seconds>,v1=<hex>`,
//! where the hex is HMAC-SHA256, keyed with the endpoint's whole secret (`whsec_…` as UTF-8),
//! of `"<t>.<body>"`. The time inside the signature lets a receiver refuse replays; the
//! README shows how to check it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "keyward-signature";

/// The header's value for `body` sent at `timestamp` (Unix seconds): one `v1` per secret, as
/// Stripe signs while an endpoint's rolled secret still holds beside its new one. A receiver
/// accepts the request when any of them matches its secret.
pub fn sign(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(digest(secret, timestamp, body)));
    }
    header
}

fn digest(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: this does not fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_hmac_sha256_of_time_dot_body() {
        // Computed independently: printf '%s' '1.{}' | openssl dgst -sha256 -hmac whsec_k
        assert_eq!(
            sign(&["whsec_k"], 1, b"{}"),
            "t=1,v1=3e55f0b5839e8ec0fb44b2f4f4153484f384cbc5344451738bfc77fe78d0d531"
        );
    }

    #[test]
    fn each_secret_signs_the_same_time_and_body_in_its_order() {
        let both = sign(&["whsec_new", "whsec_old"], 7, b"{}");
        let new = sign(&["whsec_new"], 7, b"{}");
        let old = sign(&["whsec_old"], 7, b"{}");
        let v1 = |header: &str| header.split_once(",v1=").map(|(_, v)| v.to_owned());
        assert_eq!(both, format!("{new},v1={}", v1(&old).expect("a signature")));
    }
}
