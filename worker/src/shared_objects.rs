//! A worker on an object store (`LARDER_STORE_URL=s3://…`): its requests work in a local
//! cache of the store (`LARDER_WORK_DIR`), take from the objects a file the cache lacks before
//! downloading it, and put there every file the api will serve or another worker will want
//! (sources, dependencies, configuration files, the bundle) before the request is reported.

use common::digest::{Digest, FileDigests, HashAlgorithm};
use common::store::file_record;
use common::store::object::{ObjectTier, ObjectTierError};
use common::{ErrorKind, Store};
use futures_util::{stream, StreamExt, TryStreamExt};

#[derive(Debug, thiserror::Error)]
pub enum SharedObjectsError {
    #[error("the object store: {0}")]
    Tier(#[from] ObjectTierError),
    #[error("{key} is not in the worker's work directory: {reason}")]
    NotLocal { key: String, reason: String },
    #[error("The object store already holds other bytes for {key} than this request verified")]
    OtherBytes { key: String },
}

impl common::Classify for SharedObjectsError {
    fn kind(&self) -> ErrorKind {
        // a file taken from the store is checked against the lockfile like a download (a
        // lockfile's doing fails there); other bytes at put time are two workers making a
        // file apart and differently: this deployment's doing
        ErrorKind::FileAccessError
    }
}

/// Multipart uploads one request runs at once.
const MULTIPART_AT_ONCE: usize = 2;

/// The shared objects and this worker's cache of them.
#[derive(Clone, Debug)]
pub struct SharedObjects {
    tier: ObjectTier,
    local: Store,
}

impl SharedObjects {
    pub fn new(tier: ObjectTier, local: Store) -> Self {
        Self { tier, local }
    }

    pub fn tier(&self) -> &ObjectTier {
        &self.tier
    }

    /// The object `key`, verified against the sha256 it was put with, in a temporary file of
    /// the cache; `None` when there is none to take (a damaged one is removed: whoever needs
    /// it downloads it again).
    pub async fn take(
        &self,
        key: &str,
    ) -> Result<Option<tempfile::NamedTempFile>, SharedObjectsError> {
        let not_local = |e: std::io::Error| SharedObjectsError::NotLocal {
            key: key.to_string(),
            reason: e.to_string(),
        };
        let temp = self.local.temp_file().map_err(not_local)?;
        match self.tier.get_to_file(key, temp.path()).await {
            Ok(_) => {}
            Err(ObjectTierError::NotFound(_)) => return Ok(None),
            Err(e @ (ObjectTierError::Damaged { .. } | ObjectTierError::Unrecorded(_))) => {
                tracing::error!(key, error = %e, "an object is not what it was stored as: removed, downloading it again");
                self.tier.delete(key).await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        // the object's bytes replaced the empty file at the path: the handle follows the path
        let (_, path) = temp.into_parts();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(not_local)?;
        tracing::debug!(key, "taken from the object store");
        Ok(Some(tempfile::NamedTempFile::from_parts(file, path)))
    }

    /// Take `key` into the cache if the cache lacks it and the objects have it; whether it is
    /// in the cache now.
    pub async fn take_into_cache(&self, key: &str) -> Result<bool, SharedObjectsError> {
        if self.local.contains(key) {
            return Ok(true);
        }
        let Some(temp) = self.take(key).await? else {
            return Ok(false);
        };
        self.local
            .persist_new(temp.into_temp_path(), key)
            .map_err(|e| SharedObjectsError::NotLocal {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        Ok(true)
    }

    /// Put every file of the cache named by `keys` that the objects lack, `concurrency` at a
    /// time; a key held with the same sha256 is left as it is, with another is an error.
    pub async fn put_all(
        &self,
        keys: impl IntoIterator<Item = String>,
        concurrency: usize,
    ) -> Result<usize, SharedObjectsError> {
        let keys: std::collections::BTreeSet<String> = keys.into_iter().collect();
        // a multipart upload holds two parts in memory: few of those at once, whatever the
        // concurrency of small ones
        let multipart = tokio::sync::Semaphore::new(MULTIPART_AT_ONCE);
        let multipart = &multipart;
        let put = stream::iter(keys)
            .map(|key| async move { self.put(&key, multipart).await })
            .buffer_unordered(concurrency.max(1))
            .try_fold(0, |n, written| async move { Ok(n + usize::from(written)) })
            .await?;
        Ok(put)
    }

    /// Put one file of the cache; whether this call wrote it.
    async fn put(
        &self,
        key: &str,
        multipart: &tokio::sync::Semaphore,
    ) -> Result<bool, SharedObjectsError> {
        let not_local = |reason: String| SharedObjectsError::NotLocal {
            key: key.to_string(),
            reason,
        };
        let path = self.local.path(key).map_err(|e| not_local(e.to_string()))?;
        let sha256 = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || sha256_of(&path))
                .await
                .map_err(|e| not_local(e.to_string()))?
                .map_err(|e| not_local(e.to_string()))?
        };
        if let Some(there) = self.tier.head(key).await? {
            return match there.sha256 {
                Some(theirs) if theirs == sha256 => Ok(false),
                Some(_) if common::store::interchangeable(key) => Ok(false),
                _ => Err(SharedObjectsError::OtherBytes {
                    key: key.to_string(),
                }),
            };
        }
        let size = std::fs::metadata(&path)
            .map_err(|e| not_local(e.to_string()))?
            .len();
        let _permit = if size > self.tier.part_size() as u64 {
            Some(multipart.acquire().await.expect("never closed"))
        } else {
            None
        };
        match self.tier.put_file(key, &path, &sha256).await {
            Ok(stored) => Ok(stored == common::store::object::Stored::Written),
            // another worker's fetch of the same commit got there first
            Err(ObjectTierError::Conflict { .. }) if common::store::interchangeable(key) => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The file's sha256: its record (what it was verified to hash to, `file_record`) if it has
/// one, else hashed now. The object store checks the bytes against it as they go up.
fn sha256_of(path: &std::path::Path) -> std::io::Result<Digest> {
    let digests = match file_record::recorded_digests(path) {
        Some(digests) => digests,
        None => FileDigests::of_file(path)?,
    };
    Ok(Digest::new(HashAlgorithm::Sha256, digests.sha256()).expect("32 bytes"))
}

/// The part of the cache that fills from the objects (work directories, leases and recipes
/// are not the cache's).
const CACHED: &[&str] = &["deps", "sources", "config-files", "bundle-members"];

/// The worker's cache of the object store, held to `LARDER_WORK_CACHE_SIZE`: every request
/// uses it under a shared hold; the files used longest ago (by access time) go only when no
/// request holds it, so none loses a file it checked was there.
#[derive(Debug)]
pub struct WorkCache {
    holds: tokio::sync::RwLock<()>,
    root: std::path::PathBuf,
    max_bytes: u64,
    /// When the cache was last measured: a walk of a large cache takes a while, so at most
    /// one every [`MEASURE_EVERY`].
    measured: std::sync::Mutex<Option<std::time::Instant>>,
}

const MEASURE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl WorkCache {
    pub fn new(root: impl Into<std::path::PathBuf>, max_bytes: u64) -> Self {
        Self {
            holds: tokio::sync::RwLock::new(()),
            root: root.into(),
            max_bytes,
            measured: std::sync::Mutex::new(None),
        }
    }

    /// Held by a request for as long as it runs.
    pub async fn hold(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.holds.read().await
    }

    /// When the cache is larger than its bound, wait until no request holds it (requests that
    /// start meanwhile wait behind), then remove the files used longest ago until it is 80 % of
    /// the bound. How many bytes went.
    pub async fn prune_when_over(&self) -> u64 {
        {
            let mut measured = self.measured.lock().expect("not poisoned");
            if measured.is_some_and(|at| at.elapsed() < MEASURE_EVERY) {
                return 0;
            }
            *measured = Some(std::time::Instant::now());
        }
        let root = self.root.clone();
        if tokio::task::block_in_place(|| cached_files(&root).1) <= self.max_bytes {
            return 0;
        }
        let _alone = self.holds.write().await;
        let max = self.max_bytes;
        tokio::task::block_in_place(|| prune(&root, max))
    }
}

/// Hold `dir` as this process's work directory for as long as the file handed back is open: a
/// second worker process on the same directory would prune files under the first one's
/// requests, so it is refused at start.
pub fn lock_work_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(".larder-worker.lock");
    let file = std::fs::File::create(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
            "another worker process uses {} (LARDER_WORK_DIR): give each its own",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The cache's files (access time, size, path) and their total size.
fn cached_files(root: &std::path::Path) -> (Vec<(i64, u64, std::path::PathBuf)>, u64) {
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut dirs: Vec<std::path::PathBuf> = CACHED.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file() {
                use std::os::unix::fs::MetadataExt;
                total += meta.len();
                files.push((meta.atime(), meta.len(), entry.path()));
            }
        }
    }
    (files, total)
}

fn prune(root: &std::path::Path, max_bytes: u64) -> u64 {
    let (mut files, total) = cached_files(root);
    if total <= max_bytes {
        return 0;
    }
    files.sort_unstable();
    let goal = max_bytes / 10 * 8;
    let mut removed = 0;
    for (_, len, path) in files {
        if total - removed <= goal {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            removed += len;
        }
    }
    tracing::info!(
        removed_bytes = removed,
        kept_bytes = total - removed,
        "pruned the work directory's cache of the object store"
    );
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_s3 as s3;
    use object_store::aws::AmazonS3Builder;

    fn objects(moto: &s3::MotoServer, cache: &std::path::Path) -> SharedObjects {
        let builder = AmazonS3Builder::new()
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_region(s3::REGION)
            .with_access_key_id(s3::CREDENTIALS.0)
            .with_secret_access_key(s3::CREDENTIALS.1);
        let tier = ObjectTier::s3(builder, &moto.bucket, "p").unwrap();
        SharedObjects::new(tier, Store::new(cache))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn files_go_up_once_and_come_back_verified_and_a_damaged_object_is_not_taken() {
        let Some(moto) = s3::MotoServer::start("shared") else {
            return;
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (first, second) = (objects(&moto, a.path()), objects(&moto, b.path()));
        let key = "deps/npm/a/-/a-1.0.0.tgz";
        first.local.put_bytes(key, b"the tarball").unwrap();
        first.local.put_bytes("deps/npm/b.tgz", b"b").unwrap();

        assert!(
            second.take(key).await.unwrap().is_none(),
            "nothing there yet"
        );
        let keys = [key.to_string(), "deps/npm/b.tgz".to_string()];
        assert_eq!(first.put_all(keys.clone(), 4).await.unwrap(), 2);
        assert_eq!(first.put_all(keys, 4).await.unwrap(), 0, "there already");

        // another worker's cache fills from the store
        assert!(second.take_into_cache(key).await.unwrap());
        assert_eq!(
            std::fs::read(second.local.path(key).unwrap()).unwrap(),
            b"the tarball"
        );

        // other bytes under a key the store holds: the request fails, the object stays
        second.local.put_bytes("deps/npm/b.tgz", b"not b").unwrap();
        let refused = second
            .put_all(["deps/npm/b.tgz".to_string()], 1)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, SharedObjectsError::OtherBytes { .. }),
            "{refused}"
        );

        // an object that rotted in the store (its recorded sha256 kept) is not taken, and goes
        let sha256 = first.tier.head(key).await.unwrap().unwrap().sha256.unwrap();
        moto.put_raw(
            &format!("p/{key}"),
            b"rotten bytes",
            &[("sha256", &sha256.hex())],
        );
        let third = tempfile::tempdir().unwrap();
        let third = objects(&moto, third.path());
        assert!(third.take(key).await.unwrap().is_none());
        assert!(first.tier.head(key).await.unwrap().is_none(), "removed");
        // the next worker with a good copy puts it again
        assert_eq!(first.put_all([key.to_string()], 1).await.unwrap(), 1);
        assert!(third.take_into_cache(key).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_cache_loses_its_least_recently_used_files_once_no_request_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let keys = ["deps/npm/old.tgz", "deps/npm/mid.tgz", "sources/new.tar.gz"];
        for (i, key) in keys.iter().enumerate() {
            let path = store.put_bytes(key, &[0u8; 1000]).unwrap();
            // used an hour apart, oldest first
            let used = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_700_000_000 + 3600 * i as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_times(std::fs::FileTimes::new().set_accessed(used))
                .unwrap();
        }
        store
            .put_bytes("download-leases/x", b"not the cache's")
            .unwrap();
        let cache = WorkCache::new(dir.path(), 2500);

        let cache = std::sync::Arc::new(cache);
        let hold = cache.hold().await;
        let pruning = tokio::spawn({
            let cache = cache.clone();
            async move { cache.prune_when_over().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !pruning.is_finished(),
            "it waits while a request holds the cache"
        );
        assert!(keys.iter().all(|k| store.contains(k)));
        drop(hold);

        // 3000 bytes over a bound of 2500: down to 2000, the oldest first
        assert_eq!(pruning.await.unwrap(), 1000);
        assert!(!store.contains(keys[0]));
        assert!(store.contains(keys[1]) && store.contains(keys[2]));
        assert!(store.contains("download-leases/x"));
    }
}
