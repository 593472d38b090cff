//! Per-request repository tokens. A token is derived from a server secret and a random
//! per-request salt, so the database never holds a usable token, yet the api can hand the
//! token back in a request's environment variables and check a presented one. The api keeps
//! the secret in its database (`api/src/secret.rs`).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::io;
use std::path::Path;

const WRONG_LENGTH: &str = "the secret key must be 32 bytes";

#[derive(Clone)]
pub struct TokenSecret([u8; 32]);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

impl TokenSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// The secret an api of an earlier version kept at `path` (hex), if there is one there.
    pub fn read_file(path: &Path) -> io::Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let decoded = hex::decode(bytes.trim_ascii())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Self::from_slice(&decoded)
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, WRONG_LENGTH))
    }

    /// `None` unless `bytes` is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The repository token of a request.
    pub fn repo_token(&self, request_id: i64, salt: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("larder-repo-token\0{request_id}\0{salt}").as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..24])
    }
}

/// A random salt for a new request.
pub fn new_salt() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_per_request_and_salt() {
        let secret = TokenSecret::from_bytes([7; 32]);
        let a = secret.repo_token(1, "s");
        assert_eq!(a, secret.repo_token(1, "s"));
        assert_ne!(a, secret.repo_token(2, "s"));
        assert_ne!(a, secret.repo_token(1, "t"));
        assert_eq!(a.len(), 48);
    }

    #[test]
    fn a_secret_file_of_an_earlier_version_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        assert!(TokenSecret::read_file(&path).unwrap().is_none());
        std::fs::write(&path, format!("{}\n", hex::encode([9u8; 32]))).unwrap();
        let read = TokenSecret::read_file(&path).unwrap().unwrap();
        assert_eq!(read.as_bytes(), &[9u8; 32]);
        std::fs::write(&path, hex::encode([9u8; 31])).unwrap();
        assert!(TokenSecret::read_file(&path).is_err());
    }
}
