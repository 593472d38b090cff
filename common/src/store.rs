//! The permanent content store: a directory tree of immutable blobs addressed by key.
//! Writes are atomic (temp file, fsync, rename) so a reader never sees half a blob.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashAlgorithm};
use sha2::{Digest as _, Sha256};

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store key {0:?}")]
    InvalidKey(String),
    #[error("store I/O error on {key}: {source}")]
    Io { key: String, source: io::Error },
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file path of a key. Keys are relative, normalized paths.
    pub fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let valid = !key.is_empty()
            && !key.contains('\\')
            && !key.contains('\0')
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !valid {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.path(key).map(|p| p.is_file()).unwrap_or(false)
    }

    /// A fresh temporary file inside the store (same filesystem, so it can be renamed in).
    pub fn temp_file(&self) -> io::Result<tempfile::NamedTempFile> {
        let dir = self.root.join("tmp");
        fs::create_dir_all(&dir)?;
        tempfile::NamedTempFile::new_in(dir)
    }

    /// A fresh temporary directory inside the store.
    pub fn temp_dir(&self, prefix: &str) -> io::Result<tempfile::TempDir> {
        let dir = self.root.join("tmp");
        fs::create_dir_all(&dir)?;
        tempfile::Builder::new().prefix(prefix).tempdir_in(dir)
    }

    /// Atomically move a finished temporary file to `key`, replacing what was there.
    pub fn persist(&self, temp: tempfile::NamedTempFile, key: &str) -> Result<PathBuf, StoreError> {
        let dest = self.path(key)?;
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        temp.as_file().sync_all().map_err(io)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        temp.persist(&dest).map_err(|e| io(e.error))?;
        Ok(dest)
    }

    /// Like `persist`, for a temporary file already synced and closed.
    pub fn persist_path(&self, temp: tempfile::TempPath, key: &str) -> Result<PathBuf, StoreError> {
        let dest = self.path(key)?;
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        temp.persist(&dest).map_err(|e| io(e.error))?;
        Ok(dest)
    }

    /// Atomically write `bytes` to `key`.
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        let mut temp = self.temp_file().map_err(io)?;
        temp.write_all(bytes).map_err(io)?;
        self.persist(temp, key)
    }

    /// Write a blob through `write` and keep it under `key_of` its sha256, which is returned.
    pub fn put_by_sha256(
        &self,
        key_of: fn(&Digest) -> String,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<Digest, StoreError> {
        // until its digest is known the blob is a temporary file
        let io = |source| StoreError::Io {
            key: "tmp".into(),
            source,
        };
        let temp = self.temp_file().map_err(io)?;
        let mut out = Sha256Writer {
            inner: io::BufWriter::new(temp),
            hasher: Sha256::new(),
        };
        write(&mut out).map_err(io)?;
        let temp = out.inner.into_inner().map_err(|e| io(e.into_error()))?;
        let digest = Digest::new(HashAlgorithm::Sha256, &out.hasher.finalize()).expect("32 bytes");
        self.persist(temp, &key_of(&digest))?;
        Ok(digest)
    }

    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
                key: key.to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    pub fn open(&self, key: &str) -> Result<File, StoreError> {
        File::open(self.path(key)?).map_err(|source| StoreError::Io {
            key: key.to_string(),
            source,
        })
    }
}

struct Sha256Writer<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn bundle_key(request_id: i64) -> String {
    format!("bundles/{request_id}.tar.gz")
}

pub fn bundle_checksum_key(request_id: i64) -> String {
    format!("bundles/{request_id}.tar.gz.sha256")
}

/// A configuration file too large for a report body, by its content.
pub fn config_file_key(sha256: &Digest) -> String {
    format!("config-files/{}", sha256.hex())
}

pub fn log_key(request_id: i64) -> String {
    format!("logs/{request_id}.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        let store = Store::new("/data");
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a\\b"] {
            assert!(store.path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            store.path("deps/npm/x.tgz").unwrap(),
            Path::new("/data/deps/npm/x.tgz")
        );
    }

    #[test]
    fn put_is_atomic_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.put_bytes("a/b/c.txt", b"hello").unwrap();
        assert!(store.contains("a/b/c.txt"));
        assert_eq!(
            fs::read(store.path("a/b/c.txt").unwrap()).unwrap(),
            b"hello"
        );
        store.remove("a/b/c.txt").unwrap();
        store.remove("a/b/c.txt").unwrap();
        assert!(!store.contains("a/b/c.txt"));
    }

    #[test]
    fn a_blob_put_by_sha256_is_named_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let digest = store
            .put_by_sha256(config_file_key, |out| out.write_all(b"hello"))
            .unwrap();
        assert_eq!(
            digest.hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            fs::read(store.path(&config_file_key(&digest)).unwrap()).unwrap(),
            b"hello"
        );
        let failed = store.put_by_sha256(config_file_key, |_| Err(io::Error::other("no")));
        assert!(failed.is_err());
        assert_eq!(
            fs::read_dir(dir.path().join("config-files"))
                .unwrap()
                .count(),
            1
        );
    }
}
