//! Secrets at rest (docs/privacy.md, "Secrets at rest"): what rapport must be able to read
//! back — webhook signing secrets, identity-verification secrets, the customer id of a
//! `customer.erased` event — is stored sealed with XChaCha20-Poly1305 under a key the
//! database does not hold.
//!
//! A [`Keyring`] holds one or more 256-bit keys, each with a short id. The first is the
//! newest: it seals everything written from now on; every key opens what it sealed.
//! The key's id is stored beside each ciphertext, so rotation (`rapport secrets rotate`)
//! knows what to re-seal and opening never has to guess. Every ciphertext is bound to
//! where it lives (`context`, e.g. `webhook_endpoints.secret/<id>`, as associated data),
//! so a ciphertext copied to another row or column does not open there.
//!
//! Stored form: base64 (standard, padded) of the 24-byte random nonce followed by the
//! ciphertext and its 16-byte tag.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng as _;

use crate::error::{AppError, Result};

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// Most characters of a key id.
pub const MAX_KEY_ID_CHARS: usize = 32;

/// A sealed value as stored: the id of the key that sealed it and the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// base64 of nonce ‖ ciphertext ‖ tag.
    pub ciphertext: String,
}

/// One key: its id and its bytes. The bytes are never printed (`Debug` shows the id).
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    bytes: [u8; KEY_BYTES],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new random key with a new id (`k` + UTC date + 6 random characters).
    pub fn generate(today: chrono::NaiveDate) -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill(&mut bytes[..]);
        let suffix: String = rand::rng()
            .sample_iter(&rand::distr::Alphanumeric)
            .take(6)
            .map(|c| (c as char).to_ascii_lowercase())
            .collect();
        SecretKey { id: format!("k{}{suffix}", today.format("%Y%m%d")), bytes }
    }

    /// Parses `id:base64` (32 bytes of key), as written in `RAPPORT_SECRET_KEYS` and key files.
    pub fn parse(entry: &str) -> std::result::Result<Self, String> {
        let entry = entry.trim();
        let (id, key) = entry
            .split_once(':')
            .ok_or_else(|| "a key is written as <id>:<base64 of 32 bytes>, e.g. k1:…".to_owned())?;
        let id = id.trim();
        if id.is_empty()
            || id.chars().count() > MAX_KEY_ID_CHARS
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("key id {id:?}: 1–{MAX_KEY_ID_CHARS} characters of A–Z, a–z, 0–9, - and _"));
        }
        let bytes = B64.decode(key.trim()).map_err(|_| format!("key {id}: not base64"))?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("key {id}: {} bytes; a key is {KEY_BYTES} bytes (44 base64 characters)", b.len())
        })?;
        Ok(SecretKey { id: id.to_owned(), bytes })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `id:base64` line this key is written as.
    pub fn to_line(&self) -> String {
        format!("{}:{}", self.id, B64.encode(self.bytes))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

/// The keys secrets are sealed with: the first seals, all open.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<SecretKey>,
}

impl Keyring {
    /// A keyring of `keys`, newest first. Ids must be distinct.
    pub fn new(keys: Vec<SecretKey>) -> std::result::Result<Self, String> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(format!("key id {} appears twice", k.id));
            }
        }
        Ok(Keyring { keys })
    }

    /// Parses keys separated by commas, whitespace or line breaks (lines starting with
    /// `#` are comments), newest first.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split([',', ' ', '\t']))
            .filter(|e| !e.trim().is_empty())
            .map(SecretKey::parse)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no key given".into());
        }
        Self::new(keys)
    }

    /// A keyring with one random key that lives as long as the process (in-memory
    /// databases and unit tests only: what it sealed cannot be opened after a restart).
    pub fn ephemeral() -> Self {
        Keyring { keys: vec![SecretKey::generate(chrono::Utc::now().date_naive())] }
    }

    /// Whether there is no key (nothing can be sealed or opened).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that seals.
    pub fn newest_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    /// The ids of every key, newest first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether a key with this id is here.
    pub fn has(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Seals `plaintext` under the newest key, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<Sealed> {
        let key = self.keys.first().ok_or_else(no_key)?;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill(&mut nonce[..]);
        let ct = key
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| AppError::Internal(anyhow::anyhow!("sealing a secret failed")))?;
        let mut out = Vec::with_capacity(NONCE_BYTES + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(Sealed { key_id: key.id.clone(), ciphertext: B64.encode(out) })
    }

    /// Opens what [`Keyring::seal`] sealed for `context`. A key id this keyring does
    /// not hold, a ciphertext changed or moved to another context, is an internal error
    /// naming the key id (never the ciphertext).
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<String> {
        let key = self.keys.iter().find(|k| k.id == sealed.key_id).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "a secret is sealed under key {:?}, which is not among the configured keys ({})",
                sealed.key_id,
                self.ids().join(", ")
            ))
        })?;
        let bad = || AppError::Internal(anyhow::anyhow!("a secret sealed under key {:?} does not open", sealed.key_id));
        let raw = B64.decode(sealed.ciphertext.as_bytes()).map_err(|_| bad())?;
        if raw.len() < NONCE_BYTES + 16 {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| bad())?;
        let plain = key
            .cipher()
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    /// `sealed` again under the newest key, if another key sealed it (`None`: nothing to do).
    pub fn reseal(&self, context: &str, sealed: &Sealed) -> Result<Option<Sealed>> {
        if self.newest_id() == Some(sealed.key_id.as_str()) {
            return Ok(None);
        }
        let plain = self.open(context, sealed)?;
        self.seal(context, &plain).map(Some)
    }
}

fn no_key() -> AppError {
    AppError::Internal(anyhow::anyhow!("no secret key is configured (RAPPORT_SECRET_KEYS)"))
}

/// Where a webhook endpoint's signing secret lives (the associated data of its seal).
pub fn webhook_secret_context(endpoint_id: &str) -> String {
    format!("webhook_endpoints.secret/{endpoint_id}")
}

/// Where a tenant's identity-verification secret lives.
pub fn identity_secret_context(tenant_id: &str) -> String {
    format!("tenants.identity_secret/{tenant_id}")
}

/// Where a sealed event payload lives.
pub fn event_context(event_id: &str) -> String {
    format!("events.data/{event_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> SecretKey {
        SecretKey { id: id.into(), bytes: [byte; KEY_BYTES] }
    }

    #[test]
    fn what_is_sealed_opens_only_in_its_context_and_does_not_show_the_plaintext() {
        let ring = Keyring::new(vec![key("k2", 2), key("k1", 1)]).unwrap();
        let s = ring.seal("webhook_endpoints.secret/e1", "whsec_plain").unwrap();
        assert_eq!(s.key_id, "k2", "the newest key seals");
        assert!(!s.ciphertext.contains("whsec") && !s.ciphertext.contains("plain"));
        assert_eq!(ring.open("webhook_endpoints.secret/e1", &s).unwrap(), "whsec_plain");
        assert!(ring.open("webhook_endpoints.secret/e2", &s).is_err(), "moved to another row");
        let again = ring.seal("webhook_endpoints.secret/e1", "whsec_plain").unwrap();
        assert_ne!(again.ciphertext, s.ciphertext, "a fresh nonce each time");

        let mut tampered = s.clone();
        let mut raw = B64.decode(&tampered.ciphertext).unwrap();
        raw[30] ^= 1;
        tampered.ciphertext = B64.encode(raw);
        assert!(ring.open("webhook_endpoints.secret/e1", &tampered).is_err());
    }

    #[test]
    fn every_key_opens_and_reseal_moves_to_the_newest() {
        let old = Keyring::new(vec![key("k1", 1)]).unwrap();
        let s = old.seal("c", "secret").unwrap();
        let both = Keyring::new(vec![key("k2", 2), key("k1", 1)]).unwrap();
        assert_eq!(both.open("c", &s).unwrap(), "secret");
        let moved = both.reseal("c", &s).unwrap().expect("re-sealed");
        assert_eq!(moved.key_id, "k2");
        assert!(both.reseal("c", &moved).unwrap().is_none(), "already under the newest");
        let new_only = Keyring::new(vec![key("k2", 2)]).unwrap();
        assert_eq!(new_only.open("c", &moved).unwrap(), "secret");
        let err = new_only.open("c", &s).unwrap_err().to_string();
        assert!(err.contains("k1"), "{err}");
    }

    #[test]
    fn keys_parse_from_lines_and_lists_and_bad_ones_are_named() {
        let a = SecretKey::generate(chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert!(a.id().starts_with("k20261201"), "{}", a.id());
        let b = key("old", 7);
        let text = format!("# newest first\n{}\n\n{}\n", a.to_line(), b.to_line());
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.ids(), [a.id(), "old"]);
        let ring = Keyring::parse(&format!("{}, {}", a.to_line(), b.to_line())).unwrap();
        assert_eq!(ring.newest_id(), Some(a.id()));

        assert!(Keyring::parse("").unwrap_err().contains("no key"));
        assert!(Keyring::parse("nocolon").unwrap_err().contains("<id>:"));
        assert!(Keyring::parse("k1:AAAA").unwrap_err().contains("32 bytes"));
        assert!(Keyring::parse("k 1:AAAA").is_err());
        assert!(Keyring::parse("bad$id:AAAA").unwrap_err().contains("key id"));
        assert!(Keyring::parse(&format!("{}\n{}", b.to_line(), b.to_line())).unwrap_err().contains("twice"));
        assert!(!format!("{:?}", b).contains(&B64.encode([7u8; 32])), "Debug never shows the key");
    }

    #[test]
    fn an_empty_keyring_seals_nothing() {
        assert!(Keyring::default().seal("c", "x").is_err());
    }
}
