//! Encryption at rest for upstream credentials, OAuth tokens and proxy passwords:
//! XChaCha20-Poly1305 with a random 192-bit nonce per value, stored as
//! `v1:<base64(nonce ‖ ciphertext ‖ tag)>`. The key comes from the configuration or a key file;
//! it never reaches the database.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("the encryption key must be 32 bytes as 64 hex characters or base64")]
    BadKey,
    #[error("a stored secret is malformed")]
    Malformed,
    #[error("a stored secret cannot be decrypted with this key (was the encryption key changed?)")]
    WrongKey,
}

/// Seals and opens secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Parses a key written as 64 hex characters or as base64 of 32 bytes.
    pub fn from_key_text(text: &str) -> Result<SecretBox, CipherError> {
        let text = text.trim();
        let bytes = hex::decode(text).ok().filter(|b| b.len() == 32).or_else(|| STANDARD.decode(text).ok());
        match bytes {
            Some(b) if b.len() == 32 => Ok(SecretBox { cipher: XChaCha20Poly1305::new(Key::from_slice(&b)) }),
            _ => Err(CipherError::BadKey),
        }
    }

    /// A new random key in the text form `from_key_text` accepts.
    pub fn generate_key_text() -> String {
        hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let sealed = self.cipher.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CipherError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(CipherError::Malformed)?;
        let bytes = STANDARD.decode(body).map_err(|_| CipherError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(CipherError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| CipherError::WrongKey)
    }

    pub fn seal_str(&self, plaintext: &str) -> String {
        self.seal(plaintext.as_bytes())
    }

    pub fn open_string(&self, sealed: &str) -> Result<String, CipherError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| CipherError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_random_nonces() {
        let key = SecretBox::generate_key_text();
        let sb = SecretBox::from_key_text(&key).unwrap();
        let a = sb.seal_str("sk-ant-secret");
        let b = sb.seal_str("sk-ant-secret");
        assert_ne!(a, b, "every value gets its own nonce");
        assert!(a.starts_with("v1:") && !a.contains("sk-ant"));
        assert_eq!(sb.open_string(&a).unwrap(), "sk-ant-secret");
    }

    #[test]
    fn wrong_key_and_tampering_are_detected() {
        let sb = SecretBox::from_key_text(&SecretBox::generate_key_text()).unwrap();
        let other = SecretBox::from_key_text(&SecretBox::generate_key_text()).unwrap();
        let sealed = sb.seal_str("x");
        assert_eq!(other.open(&sealed), Err(CipherError::WrongKey));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sb.open(&tampered).is_err());
        assert_eq!(sb.open("plain"), Err(CipherError::Malformed));
    }

    #[test]
    fn keys_are_hex_or_base64_of_32_bytes() {
        assert!(SecretBox::from_key_text(&"ab".repeat(32)).is_ok());
        assert!(SecretBox::from_key_text(&STANDARD.encode([7u8; 32])).is_ok());
        assert_eq!(SecretBox::from_key_text("short").err(), Some(CipherError::BadKey));
        assert_eq!(format!("{:?}", SecretBox::from_key_text(&"ab".repeat(32)).unwrap()), "SecretBox(..)");
    }
}
