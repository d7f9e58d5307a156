//! Unguessable secrets (keys, invitation tokens) and the hashes they are stored as.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// A random string of `len` alphanumerics after `prefix` (32 characters ≈ 190 bits).
pub fn generate(prefix: &str, len: usize) -> String {
    let body: String = rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect();
    format!("{prefix}{body}")
}

/// The stored form of a secret: hex SHA-256. Secrets are long and random, so a fast
/// hash is enough (no password stretching needed).
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A fingerprint of a request body, to tell an idempotent retry from a conflicting one.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_distinct_and_hashes_are_stable() {
        let a = super::generate("rk_secret_", 32);
        let b = super::generate("rk_secret_", 32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 42);
        assert_eq!(super::hash(&a), super::hash(&a));
        assert_eq!(super::hash(&a).len(), 64);
        assert_ne!(super::fingerprint(&["ab", "c"]), super::fingerprint(&["a", "bc"]));
    }
}
