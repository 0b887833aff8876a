//! Secrets at rest: sealed with ChaCha20-Poly1305 under a master key kept outside the database.

use crate::{Result, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::fmt;

/// The 32-byte key that seals secrets. It never enters the database or a log.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    pub fn generate() -> Self {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        MasterKey(key.into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Seals and opens secrets; sealed values are `base64(nonce ‖ ciphertext)`.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    key: MasterKey,
}

impl Sealer {
    pub fn new(key: MasterKey) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
            key,
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let ciphertext = self.cipher.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        if bytes.len() < 12 {
            return Err(StoreError::Crypto("sealed value too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| StoreError::Crypto("wrong master key or tampered value".into()))
    }

    /// A key for a purpose other than sealing (for example signing pagination tokens), derived so
    /// that the master key itself is used for one thing only.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key.0).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let sealer = Sealer::new(MasterKey::generate());
        let sealed = sealer.seal(b"s3cret");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(sealer.open(&sealed).unwrap(), b"s3cret");
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(sealer.open(&STANDARD.encode(bytes)).is_err());
        let other = Sealer::new(MasterKey::generate());
        assert!(other.open(&sealed).is_err());
    }
}
