//! Per-request repository tokens. A token is derived from a server secret and a random
//! per-request salt, so the database never holds a usable token, yet the api can hand the
//! token back in a request's environment variables and check a presented one.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::io::{self, Write};
use std::path::Path;

#[derive(Clone)]
pub struct TokenSecret([u8; 32]);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

impl TokenSecret {
    /// Read the secret at `path`, creating it (mode 0600) on first use. Every api sharing the
    /// store shares the secret.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        if let Ok(bytes) = std::fs::read(path) {
            let decoded = hex::decode(bytes.trim_ascii())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let key: [u8; 32] = decoded.try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the secret key must be 32 bytes",
                )
            })?;
            return Ok(Self(key));
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(path) {
            Ok(mut file) => {
                file.write_all(hex::encode(key).as_bytes())?;
                file.sync_all()?;
                Ok(Self(key))
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(e) => Err(e),
        }
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
    fn secret_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let one = TokenSecret::load_or_create(&path).unwrap();
        let two = TokenSecret::load_or_create(&path).unwrap();
        assert_eq!(one.repo_token(1, "x"), two.repo_token(1, "x"));
    }
}
