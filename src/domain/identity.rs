//! Identity verification of in-app callers (docs/in-app.md, "Identity verification"): a web page may only answer as
//! the customer its CRM's server vouched for. The server computes
//! `customer_hash = hex(HMAC-SHA256(tenant secret, customer id))` and hands it to the
//! page with the customer id; rapport recomputes it. A visitor who edits the page's
//! customer id has no secret to compute the matching hash.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of identity-verification secrets, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "idv_";

/// The lowercase hex HMAC-SHA256 of `customer_id` under `secret`.
pub fn customer_hash(secret: &str, customer_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(customer_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` (hex, either case) is the hash of `customer_id` under `secret`.
/// Compared in constant time.
pub fn verify(secret: &str, customer_id: &str, given: &str) -> bool {
    let Some(bytes) = decode_hex(given.trim()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(customer_id.as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published HMAC-SHA256 example (key "key", the quick brown fox).
    const FOX: &str = "The quick brown fox jumps over the lazy dog";
    const FOX_HMAC: &str = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";

    #[test]
    fn the_hash_is_the_standard_hmac_sha256_in_lowercase_hex() {
        assert_eq!(customer_hash("key", FOX), FOX_HMAC);
    }

    #[test]
    fn verify_accepts_the_right_hash_in_either_case_and_nothing_else() {
        assert!(verify("key", FOX, FOX_HMAC));
        assert!(verify("key", FOX, &FOX_HMAC.to_uppercase()));
        assert!(!verify("key", "The quick brown fox jumps over the lazy cat", FOX_HMAC));
        assert!(!verify("other", FOX, FOX_HMAC));
        assert!(!verify("key", FOX, &FOX_HMAC[..62]));
        assert!(!verify("key", FOX, ""));
        assert!(!verify("key", FOX, &format!("{}zz", &FOX_HMAC[..62])));
        assert!(!verify("key", FOX, &"é".repeat(32)));
    }
}
