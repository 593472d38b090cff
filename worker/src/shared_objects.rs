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
        match self {
            Self::OtherBytes { .. } => ErrorKind::InvalidChecksum,
            Self::Tier(ObjectTierError::Conflict { .. }) => ErrorKind::InvalidChecksum,
            _ => ErrorKind::FileAccessError,
        }
    }
}

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
        let put = stream::iter(keys)
            .map(|key| async move { self.put(&key).await })
            .buffer_unordered(concurrency.max(1))
            .try_fold(0, |n, written| async move { Ok(n + usize::from(written)) })
            .await?;
        Ok(put)
    }

    /// Put one file of the cache; whether this call wrote it.
    async fn put(&self, key: &str) -> Result<bool, SharedObjectsError> {
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
                _ => Err(SharedObjectsError::OtherBytes {
                    key: key.to_string(),
                }),
            };
        }
        let stored = self.tier.put_file(key, &path, &sha256).await?;
        Ok(stored == common::store::object::Stored::Written)
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
