//! The permanent content store: a directory tree of immutable blobs addressed by key.
//! Writes are atomic (temp file, fsync, rename) so a reader never sees half a blob.

pub mod download_lease;
pub mod file_record;
pub mod object;
pub mod shared;

pub use shared::SharedStore;

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

    /// Move a temporary file already synced and closed to `key`, unless the key holds a file
    /// already: that one stays (a stored file is never replaced) and the temporary file is
    /// handed back for the caller to compare (it is removed when dropped).
    pub fn persist_new(
        &self,
        temp: tempfile::TempPath,
        key: &str,
    ) -> Result<Option<tempfile::TempPath>, StoreError> {
        let dest = self.path(key)?;
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        match temp.persist_noclobber(&dest) {
            Ok(()) => Ok(None),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(Some(e.path)),
            Err(e) => Err(io(e.error)),
        }
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

/// Where a request's bundle was kept before bundles were shared by content (still read, and
/// removed with the request).
pub fn legacy_bundle_key(request_id: i64) -> String {
    format!("bundles/{request_id}.tar.gz")
}

/// The request's bundle by name: the sha256 (hex) of its bytes, which name the shared blob.
pub fn bundle_checksum_key(request_id: i64) -> String {
    format!("bundles/{request_id}.tar.gz.sha256")
}

/// A bundle's bytes, shared by every request whose bundle is the same.
pub fn bundle_blob_key(sha256_hex: &str) -> String {
    format!("bundles/sha256/{sha256_hex}.tar.gz")
}

/// The requests using a bundle blob: one empty file each.
fn bundle_refs_dir(sha256_hex: &str) -> String {
    format!("bundles/sha256/{sha256_hex}.refs")
}

/// The blob a request referred to and has not named yet (a reuse or publication under way).
fn bundle_pending_key(request_id: i64) -> String {
    format!("bundles/{request_id}.tar.gz.pending")
}

/// What a bundle made of exactly these inputs turned out to be: its blob's sha256 (hex).
fn bundle_recipe_key(recipe_hex: &str) -> String {
    format!("bundles/recipes/{recipe_hex}")
}

/// What [`Store::reuse_bundle`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleReuse {
    /// The blob, whole: it is the request's bundle now.
    Named,
    /// No such blob (released since).
    Missing,
    /// A blob without its sha256: removed.
    Damaged,
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// Keep `temp` (a finished bundle whose sha256 is `sha256_hex`) as the bundle of
    /// `request_id`: a blob shared by content, a reference to it, then the request's name for it.
    ///
    /// The reference is made before the blob is (re)placed, and [`release_bundle`] takes a blob
    /// away only when it finds no reference after moving it aside: whichever order the two run
    /// in, a referenced blob stays.
    ///
    /// [`release_bundle`]: Store::release_bundle
    pub fn publish_bundle(
        &self,
        temp: tempfile::NamedTempFile,
        sha256_hex: &str,
        request_id: i64,
    ) -> Result<PathBuf, StoreError> {
        if !is_sha256_hex(sha256_hex) {
            return Err(StoreError::InvalidKey(sha256_hex.to_string()));
        }
        self.add_bundle_ref(sha256_hex, request_id)?;
        let blob = self.persist(temp, &bundle_blob_key(sha256_hex))?;
        self.name_bundle(sha256_hex, request_id)?;
        Ok(blob)
    }

    /// Name the blob `sha256_hex`, already in the store, as the bundle of `request_id`, as
    /// [`publish_bundle`](Store::publish_bundle) does, when it is there with those bytes (read
    /// and hashed: a damaged blob is removed, for the caller to write it again).
    pub fn reuse_bundle(
        &self,
        sha256_hex: &str,
        request_id: i64,
    ) -> Result<BundleReuse, StoreError> {
        if !is_sha256_hex(sha256_hex) {
            return Err(StoreError::InvalidKey(sha256_hex.to_string()));
        }
        self.add_bundle_ref(sha256_hex, request_id)?;
        let found = self.checked_blob(sha256_hex, request_id);
        match found {
            Ok(BundleReuse::Named) => self.name_bundle(sha256_hex, request_id)?,
            // the reference taken above goes, whatever went wrong
            _ => self.drop_pending_ref(sha256_hex, request_id)?,
        }
        found
    }

    /// Whether the blob `sha256_hex` is there whole (then [`BundleReuse::Named`], not named yet),
    /// missing, or damaged (then removed).
    fn checked_blob(&self, sha256_hex: &str, request_id: i64) -> Result<BundleReuse, StoreError> {
        let key = bundle_blob_key(sha256_hex);
        let blob = self.path(&key)?;
        let io = |source| StoreError::Io {
            key: key.clone(),
            source,
        };
        let mut hasher = Sha256::new();
        let read = match File::open(&blob) {
            Ok(mut file) => {
                io::copy(&mut file, &mut hasher).map_err(io)?;
                file.metadata().map_err(io)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BundleReuse::Missing),
            Err(e) => return Err(io(e)),
        };
        if hex::encode(hasher.finalize()) != sha256_hex {
            self.remove_damaged_blob(&blob, &read, request_id)
                .map_err(io)?;
            return Ok(BundleReuse::Damaged);
        }
        Ok(BundleReuse::Named)
    }

    /// Take away the damaged blob at `blob`, the file `read` was of: not another request's
    /// whole one published there since.
    fn remove_damaged_blob(
        &self,
        blob: &Path,
        read: &fs::Metadata,
        request_id: i64,
    ) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let aside = blob.with_extension(format!("gz.damaged-{request_id}"));
        match fs::rename(blob, &aside) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        }
        let moved = fs::metadata(&aside)?;
        if (moved.dev(), moved.ino()) != (read.dev(), read.ino()) && !blob.exists() {
            return fs::rename(&aside, blob);
        }
        fs::remove_file(&aside)
    }

    /// A reference this request added and will not name (the blob was gone or damaged): it
    /// goes, unless the request's bundle is that blob already.
    fn drop_pending_ref(&self, sha256_hex: &str, request_id: i64) -> Result<(), StoreError> {
        if self.recorded_bundle(request_id)?.as_deref() != Some(sha256_hex) {
            self.release_blob(sha256_hex, request_id)?;
        }
        self.remove(&bundle_pending_key(request_id))
    }

    /// The bundle (sha256 hex) made before of the inputs `recipe_hex` names, if one was.
    pub fn bundle_of_recipe(&self, recipe_hex: &str) -> Result<Option<String>, StoreError> {
        if !is_sha256_hex(recipe_hex) {
            return Err(StoreError::InvalidKey(recipe_hex.to_string()));
        }
        let key = bundle_recipe_key(recipe_hex);
        match fs::read_to_string(self.path(&key)?) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| is_sha256_hex(t))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { key, source }),
        }
    }

    /// Record that the inputs `recipe_hex` names made the bundle `sha256_hex`.
    pub fn record_bundle_recipe(
        &self,
        recipe_hex: &str,
        sha256_hex: &str,
    ) -> Result<(), StoreError> {
        if !is_sha256_hex(recipe_hex) || !is_sha256_hex(sha256_hex) {
            return Err(StoreError::InvalidKey(format!("{recipe_hex} {sha256_hex}")));
        }
        self.put_bytes(&bundle_recipe_key(recipe_hex), sha256_hex.as_bytes())
            .map(drop)
    }

    /// Forget the recipes whose bundle is gone (released with its last request): what the
    /// stale cleanup runs. How many it forgot.
    pub fn prune_bundle_recipes(&self) -> Result<usize, StoreError> {
        let dir = self.root.join("bundles/recipes");
        let io = |source| StoreError::Io {
            key: "bundles/recipes".into(),
            source,
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        let mut pruned = 0;
        for entry in entries {
            let entry = entry.map_err(io)?;
            let Some(recipe) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_sha256_hex(&recipe) {
                continue;
            }
            let kept = self
                .bundle_of_recipe(&recipe)?
                .is_some_and(|hex| self.contains(&bundle_blob_key(&hex)));
            if !kept {
                match fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io(e)),
                    _ => pruned += 1,
                }
            }
        }
        Ok(pruned)
    }

    fn add_bundle_ref(&self, sha256_hex: &str, request_id: i64) -> Result<(), StoreError> {
        // first what the reference is, so that a worker killed before it names it leaves
        // nothing that the request's release does not find
        self.put_bytes(&bundle_pending_key(request_id), sha256_hex.as_bytes())?;
        let refs = self.path(&bundle_refs_dir(sha256_hex))?;
        let io = |source| StoreError::Io {
            key: bundle_refs_dir(sha256_hex),
            source,
        };
        // the directory may be removed by a release between the two calls: try again
        let mut attempts = 0;
        loop {
            fs::create_dir_all(&refs).map_err(io)?;
            match File::create(refs.join(request_id.to_string())) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 10 => attempts += 1,
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// The request's name for its (referenced) bundle blob.
    fn name_bundle(&self, sha256_hex: &str, request_id: i64) -> Result<(), StoreError> {
        // an earlier attempt of the request may have made other bytes: its reference goes
        let earlier = self.recorded_bundle(request_id)?;
        self.put_bytes(&bundle_checksum_key(request_id), sha256_hex.as_bytes())?;
        if let Some(old) = earlier.filter(|old| old != sha256_hex) {
            self.release_blob(&old, request_id)?;
        }
        self.remove(&bundle_pending_key(request_id))
    }

    /// The path of the request's bundle and the sha256 (hex) it must have, if it has one.
    pub fn bundle_of(&self, request_id: i64) -> Result<Option<(PathBuf, String)>, StoreError> {
        let recorded = match fs::read_to_string(self.path(&bundle_checksum_key(request_id))?) {
            Ok(text) => text.trim().to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    key: bundle_checksum_key(request_id),
                    source,
                })
            }
        };
        if !is_sha256_hex(&recorded) {
            return Err(StoreError::InvalidKey(recorded));
        }
        let blob = self.path(&bundle_blob_key(&recorded))?;
        if blob.is_file() {
            return Ok(Some((blob, recorded)));
        }
        let legacy = self.path(&legacy_bundle_key(request_id))?;
        Ok(legacy.is_file().then_some((legacy, recorded)))
    }

    /// The request no longer needs its bundle: its name and reference go, and the blob too
    /// when no other request refers to it.
    pub fn release_bundle(&self, request_id: i64) -> Result<(), StoreError> {
        let named = self.recorded_bundle(request_id)?;
        if let Some(hex) = &named {
            self.release_blob(hex, request_id)?;
        }
        let pending = fs::read_to_string(self.path(&bundle_pending_key(request_id))?)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| is_sha256_hex(t) && Some(t) != named.as_ref());
        if let Some(hex) = pending {
            self.release_blob(&hex, request_id)?;
        }
        self.remove(&bundle_pending_key(request_id))?;
        // the name last: a failure before leaves it, and a retry finds what to release
        self.remove(&legacy_bundle_key(request_id))?;
        self.remove(&bundle_checksum_key(request_id))
    }

    /// The sha256 (hex) the request's bundle name records, if any.
    fn recorded_bundle(&self, request_id: i64) -> Result<Option<String>, StoreError> {
        Ok(
            fs::read_to_string(self.path(&bundle_checksum_key(request_id))?)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| is_sha256_hex(t)),
        )
    }

    /// Drop the request's reference to a blob, and the blob with the last one.
    fn release_blob(&self, hex: &str, request_id: i64) -> Result<(), StoreError> {
        let refs = self.path(&bundle_refs_dir(hex))?;
        let io = |source| StoreError::Io {
            key: bundle_blob_key(hex),
            source,
        };
        match fs::remove_file(refs.join(request_id.to_string())) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let referenced = |refs: &Path| {
            fs::read_dir(refs).map_or(Ok(false), |mut d| d.next().transpose().map(|e| e.is_some()))
        };
        if referenced(&refs).map_err(io)? {
            return Ok(());
        }
        let blob = self.path(&bundle_blob_key(hex))?;
        let aside = blob.with_extension(format!("gz.released-{request_id}"));
        match fs::rename(&blob, &aside) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(io)?,
        }
        if referenced(&refs).map_err(io)? {
            // a request published the same bundle meanwhile: put it back unless it already did
            if blob.exists() {
                fs::remove_file(&aside).map_err(io)?;
            } else {
                fs::rename(&aside, &blob).map_err(io)?;
            }
            return Ok(());
        }
        fs::remove_file(&aside).map_err(io)?;
        // fails while a publisher has just made it again: then it is theirs
        let _ = fs::remove_dir(&refs);
        Ok(())
    }
}

/// A key whose bytes one writer makes as good as another's: a source archive (each fetch of a
/// commit packs its own `.git`), and the records package managers keep of what an upstream
/// index said when they first read it (pip's pins, cargo's index lines and download URLs,
/// rubygems' info lines, the npm integrity yarn Berry takes from the registry: the first one
/// recorded stands). A store holding it with other bytes
/// keeps them, and whoever brings other ones (another worker, an import) leaves them be.
pub fn interchangeable(key: &str) -> bool {
    key.starts_with("sources/")
        || key.starts_with("deps/pip-index/")
        || (key.starts_with("deps/cargo/")
            && (key.ends_with(".index-line") || key.ends_with(".download-url")))
        || (key.starts_with("deps/rubygems/") && key.ends_with(".info-line"))
        || (key.starts_with("deps/npm/") && key.ends_with(".published-integrity"))
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

    fn bundle_temp(store: &Store, bytes: &[u8]) -> (tempfile::NamedTempFile, String) {
        let mut temp = store.temp_file().unwrap();
        temp.write_all(bytes).unwrap();
        (temp, hex::encode(Sha256::digest(bytes)))
    }

    #[test]
    fn a_recipe_names_its_bundle_until_the_bundle_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (kept_recipe, gone_recipe) = ("a".repeat(64), "b".repeat(64));
        let (a, kept) = bundle_temp(&store, b"kept bundle");
        store.publish_bundle(a, &kept, 1).unwrap();
        let (b, gone) = bundle_temp(&store, b"released bundle");
        store.publish_bundle(b, &gone, 2).unwrap();
        store.record_bundle_recipe(&kept_recipe, &kept).unwrap();
        store.record_bundle_recipe(&gone_recipe, &gone).unwrap();
        assert_eq!(
            store.bundle_of_recipe(&gone_recipe).unwrap(),
            Some(gone.clone())
        );
        // a reuse names the blob for another request; one of a blob gone finds it missing
        assert_eq!(store.reuse_bundle(&kept, 3).unwrap(), BundleReuse::Named);
        assert_eq!(store.bundle_of(3).unwrap().unwrap().1, kept);
        store.release_bundle(2).unwrap();
        assert_eq!(store.reuse_bundle(&gone, 4).unwrap(), BundleReuse::Missing);
        assert_eq!(store.prune_bundle_recipes().unwrap(), 1);
        assert_eq!(store.bundle_of_recipe(&gone_recipe).unwrap(), None);
        assert_eq!(store.bundle_of_recipe(&kept_recipe).unwrap(), Some(kept));
        assert!(store.bundle_of_recipe("not hex").is_err());
        // request 4 keeps no reference to the blob it did not get
        assert!(!store
            .root()
            .join(format!("bundles/sha256/{gone}.refs/4"))
            .exists());
    }

    #[test]
    fn identical_bundles_share_one_blob_until_the_last_request_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (a, hex) = bundle_temp(&store, b"bundle");
        let blob = store.publish_bundle(a, &hex, 1).unwrap();
        let (b, same) = bundle_temp(&store, b"bundle");
        assert_eq!(store.publish_bundle(b, &same, 2).unwrap(), blob);
        let (c, other) = bundle_temp(&store, b"another bundle");
        store.publish_bundle(c, &other, 3).unwrap();
        let blobs = |store: &Store| {
            fs::read_dir(store.root().join("bundles/sha256"))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "gz")
                })
                .count()
        };
        assert_eq!(blobs(&store), 2);
        assert_eq!(
            store.bundle_of(1).unwrap(),
            Some((blob.clone(), hex.clone()))
        );
        assert_eq!(
            store.bundle_of(2).unwrap(),
            Some((blob.clone(), hex.clone()))
        );
        store.release_bundle(1).unwrap();
        assert_eq!(store.bundle_of(1).unwrap(), None);
        assert!(blob.is_file(), "request 2 still uses it");
        store.release_bundle(2).unwrap();
        assert!(!blob.exists());
        assert_eq!(blobs(&store), 1);
        store.release_bundle(2).unwrap();
        // an attempt that made other bytes than the request's earlier one: the earlier goes
        let (d, first) = bundle_temp(&store, b"first attempt");
        let first_blob = store.publish_bundle(d, &first, 5).unwrap();
        let (e, second) = bundle_temp(&store, b"second attempt");
        store.publish_bundle(e, &second, 5).unwrap();
        assert!(!first_blob.exists());
        assert_eq!(store.bundle_of(5).unwrap().unwrap().1, second);
        store.release_bundle(5).unwrap();
        // a request of the old layout: its own file, still served and removed
        store.put_bytes(&legacy_bundle_key(9), b"old").unwrap();
        let old = hex::encode(Sha256::digest(b"old"));
        store
            .put_bytes(&bundle_checksum_key(9), old.as_bytes())
            .unwrap();
        assert_eq!(
            store.bundle_of(9).unwrap(),
            Some((store.path(&legacy_bundle_key(9)).unwrap(), old))
        );
        store.release_bundle(9).unwrap();
        assert!(!store.contains(&legacy_bundle_key(9)));
    }

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
