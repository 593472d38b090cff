//! The object tier: the store's blobs in an object store (`LARDER_STORE_URL`), so api and worker
//! machines share no disk. `s3://bucket/prefix` is any S3-compatible service (endpoint, region
//! and credentials from the standard `AWS_*` variables); `file:///path` is a directory through
//! the same interface.
//!
//! What it guarantees:
//! - A key is written once. A write that finds the key taken converges when the object there has
//!   the same sha256 and fails with [`ObjectTierError::Conflict`] when it has other bytes; the
//!   object there stays. S3 writes are conditional (`If-None-Match: *`): a single PUT, or the
//!   completion of a multipart upload (which the tier signs and sends itself: object_store 0.14
//!   completes unconditionally). A multipart upload's object is read back and checked after.
//! - Every object carries the sha256 of its bytes (S3 user metadata `sha256`; on `file://` an
//!   extended attribute of the file, set before the file appears under its key).
//!   [`ObjectTier::get_to_file`] hands back only bytes that have it; streams hand the recorded
//!   sha256 to the caller, who checks it as the bytes go by.
//! - Memory does not grow with an object's size: files go up in parts of
//!   [`DEFAULT_PART_SIZE`] with at most [`PARTS_IN_FLIGHT`] in flight, and come down chunk by
//!   chunk. A multipart upload that fails is aborted (one left by a crashed process needs the
//!   bucket's lifecycle rule for incomplete uploads).

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::HttpRequestBody;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, GetResult, MultipartId,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::digest::{Digest, HashAlgorithm};
use crate::{Classify, ErrorKind};

/// Files up to this size go up in one PUT (held in memory); larger ones in parts of this size.
/// S3 wants parts of at least 5 MiB (but the last) and at most 10,000 of them: 78 GiB.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// Parts of one upload in memory at once (sent, or being read): one goes up while the next is
/// read, and memory stays at two parts.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The S3 user metadata (`x-amz-meta-sha256`) holding an object's sha256, hex.
const SHA256_METADATA: &str = "sha256";

/// The extended attribute holding a `file://` object's sha256, hex. Not a
/// [`super::file_record`] record: those lapse when the file is written, and a rewritten object
/// must still be caught by its old sha256.
const SHA256_XATTR: &str = "user.larder.object.sha256";

/// `LARDER_STORE_URL`: where the store's objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// A directory on this machine: `file:///absolute/path`.
    File(PathBuf),
    /// An S3 bucket; every key is below `prefix` (no leading or trailing `/`; empty for none).
    S3 { bucket: String, prefix: String },
}

impl StoreUrl {
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        let bad = |why: &str| format!("invalid LARDER_STORE_URL {text:?}: {why}");
        let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or fragment means nothing here"));
        }
        match url.scheme() {
            "file" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(bad(
                        "a file URL names no host: file:///absolute/path (three slashes)",
                    ));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("not an absolute path"))?;
                Ok(StoreUrl::File(path))
            }
            "s3" => {
                if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
                    return Err(bad(
                        "credentials and endpoint come from AWS_* variables, not the URL",
                    ));
                }
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("no bucket: s3://bucket/prefix"))?;
                let prefix = url.path().trim_matches('/');
                // the URL parser resolves `.` and `..` away; a prefix that had them is a mistake
                let dotted = text.split(['/', '?', '#']).any(|s| s == "." || s == "..");
                if dotted || (!prefix.is_empty() && !valid_key(prefix)) {
                    return Err(bad("the prefix has an empty, `.` or `..` segment"));
                }
                Ok(StoreUrl::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.to_string(),
                })
            }
            other => Err(bad(&format!(
                "scheme {other:?} is not one of file:///absolute/path, s3://bucket/prefix"
            ))),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File(path) => write!(f, "file://{}", path.display()),
            StoreUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectTierError {
    #[error("invalid store key {0:?}")]
    InvalidKey(String),
    #[error("{0} is not a sha256 digest")]
    NotSha256(Digest),
    #[error("store key {0}: no such object")]
    NotFound(String),
    #[error(
        "store key {key}: holds other bytes already (sha256 {existing}), not these ({offered})"
    )]
    Conflict {
        key: String,
        existing: String,
        offered: String,
    },
    #[error(
        "store key {key}: its bytes have sha256 {actual}, not the {recorded} recorded for them"
    )]
    Damaged {
        key: String,
        recorded: String,
        actual: String,
    },
    #[error("store key {0}: the object has no recorded sha256, its bytes cannot be verified")]
    Unrecorded(String),
    #[error(
        "{path}: changed while it was stored: {read_size} bytes with sha256 {read} read, \
         {expected_size} with sha256 {expected} expected"
    )]
    SourceChanged {
        path: PathBuf,
        expected_size: u64,
        expected: String,
        read_size: u64,
        read: String,
    },
    #[error("{path}: {source}")]
    Local { path: PathBuf, source: io::Error },
    #[error("object store, key {key}: {source}")]
    Backend {
        key: String,
        source: object_store::Error,
    },
    #[error("store directory {0}: its filesystem keeps no user extended attributes, where each object's sha256 is recorded")]
    NoRecords(PathBuf),
}

impl Classify for ObjectTierError {
    fn kind(&self) -> ErrorKind {
        match self {
            ObjectTierError::Backend { .. } => ErrorKind::NetworkError,
            ObjectTierError::NoRecords(_) => ErrorKind::Misconfigured,
            _ => ErrorKind::FileAccessError,
        }
    }
}

type Result<T, E = ObjectTierError> = std::result::Result<T, E>;

/// What [`ObjectTier::head`] finds under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// The sha256 recorded when the object was written; `None` for one written some other way.
    pub sha256: Option<Digest>,
}

/// How [`ObjectTier::put_file`] left the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// This call wrote it.
    Written,
    /// It held the same bytes already (another writer's, or an earlier call's).
    AlreadyThere,
}

/// A whole object being read ([`ObjectTier::get_stream`]).
pub struct ObjectStream {
    pub size: u64,
    /// What the bytes must hash to; the reader checks it as they go by, and treats a mismatch
    /// (or `None`) as a failed read.
    pub sha256: Option<Digest>,
    pub bytes: BoxStream<'static, Result<Bytes>>,
}

/// Part of an object being read ([`ObjectTier::get_range`]).
pub struct RangeStream {
    /// The bytes the stream holds (the request's range, cut at the object's end).
    pub range: Range<u64>,
    /// The whole object's size (for `Content-Range`).
    pub size: u64,
    pub bytes: BoxStream<'static, Result<Bytes>>,
}

/// One object found by [`ObjectTier::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// When the store wrote it (S3: when its upload started).
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// The store's objects in an object store, by key (the same keys as [`super::Store`]).
#[derive(Clone, Debug)]
pub struct ObjectTier {
    objects: Arc<dyn ObjectStore>,
    /// Set for `file://`: writes go through a staged file and a hard link, with the sha256 as
    /// an extended attribute, which `LocalFileSystem` cannot set.
    local: Option<Arc<LocalFileSystem>>,
    /// Set for `s3://`: multipart uploads part by part, completed conditionally.
    s3: Option<S3Access>,
    /// Put before every key (S3 only; a local tier's root is its prefix).
    prefix: String,
    part_size: usize,
}

impl ObjectTier {
    /// The tier `url` names; S3 settings come from the `AWS_*` environment variables
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP` for a plain-http endpoint, ...).
    pub fn open(url: &StoreUrl) -> Result<Self> {
        match url {
            StoreUrl::File(root) => Self::local(root),
            StoreUrl::S3 { bucket, prefix } => {
                Self::s3(AmazonS3Builder::from_env(), bucket, prefix)
            }
        }
    }

    /// A tier in the directory `root` (made if missing).
    pub fn local(root: &Path) -> Result<Self> {
        let io = |source| ObjectTierError::Local {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        if !super::file_record::kept_in(root) {
            return Err(ObjectTierError::NoRecords(root.to_path_buf()));
        }
        let files = Arc::new(LocalFileSystem::new_with_prefix(root).map_err(|source| {
            ObjectTierError::Backend {
                key: String::new(),
                source,
            }
        })?);
        Ok(Self {
            objects: files.clone(),
            local: Some(files),
            s3: None,
            prefix: String::new(),
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// A tier in `bucket`, below `prefix`, through `builder`'s endpoint and credentials.
    pub fn s3(builder: AmazonS3Builder, bucket: &str, prefix: &str) -> Result<Self> {
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() && !valid_key(prefix) {
            return Err(ObjectTierError::InvalidKey(prefix.to_string()));
        }
        // object_store's own default region
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let s3 = builder.with_bucket_name(bucket).build().map_err(|source| {
            ObjectTierError::Backend {
                key: String::new(),
                source,
            }
        })?;
        let s3 = Arc::new(s3);
        Ok(Self {
            objects: s3.clone(),
            local: None,
            s3: Some(S3Access {
                s3,
                region,
                // S3 may take minutes to assemble a large object (it answers as it goes)
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(30))
                    .timeout(Duration::from_secs(15 * 60))
                    .build()
                    .map_err(|e| ObjectTierError::Backend {
                        key: String::new(),
                        source: object_store::Error::Generic {
                            store: "S3",
                            source: e.into(),
                        },
                    })?,
            }),
            prefix: prefix.to_string(),
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Upload in parts of `bytes` (at least 5 MiB on S3), files larger than that.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// The underlying object store, without this tier's checks (for tools and tests).
    /// Files above this go up in a multipart upload, two parts of it in memory at a time.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Where `key` is in the object store.
    pub fn location(&self, key: &str) -> Result<ObjectPath> {
        if !valid_key(key) {
            return Err(ObjectTierError::InvalidKey(key.to_string()));
        }
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(full).map_err(|_| ObjectTierError::InvalidKey(key.to_string()))
    }

    /// The object under `key`: its size and recorded sha256; `None` when there is none.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let location = self.location(key)?;
        self.head_at(key, &location).await
    }

    async fn head_at(&self, key: &str, location: &ObjectPath) -> Result<Option<ObjectInfo>> {
        // a HEAD request: the size, and on S3 the user metadata
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.objects.get_opts(location, options).await {
            Ok(found) => Ok(Some(ObjectInfo {
                size: found.meta.size,
                sha256: self.recorded_sha256(key, location, &found.attributes)?,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(backend(key, source)),
        }
    }

    /// The sha256 recorded for the object at `location`: S3 metadata (`attributes`, as a GET or
    /// HEAD returned them), or the local file's extended attribute.
    fn recorded_sha256(
        &self,
        key: &str,
        location: &ObjectPath,
        attributes: &Attributes,
    ) -> Result<Option<Digest>> {
        let hex = match &self.local {
            None => attributes
                .get(&Attribute::Metadata(SHA256_METADATA.into()))
                .map(|v| v.to_string()),
            Some(files) => {
                let path = files
                    .path_to_filesystem(location)
                    .map_err(|source| backend(key, source))?;
                match xattr::get(&path, SHA256_XATTR) {
                    Ok(value) => value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(source) => return Err(ObjectTierError::Local { path, source }),
                }
            }
        };
        // a record that is not a sha256 is no record
        Ok(hex.and_then(|hex| Digest::from_hex(HashAlgorithm::Sha256, &hex).ok()))
    }

    /// Store the file at `source` under `key`; `sha256` is what its bytes hash to, checked as
    /// they are read and recorded with the object.
    ///
    /// Written once: a key holding the same bytes already is [`Stored::AlreadyThere`], one
    /// holding other bytes a [`ObjectTierError::Conflict`] (and it stays as it is). Concurrent
    /// writers of the same bytes both succeed with one whole object. A file that changes while
    /// it is read is [`ObjectTierError::SourceChanged`] and nothing is stored.
    ///
    /// Files above the part size go up in a multipart upload, aborted on any failure, completed
    /// only if the key is still free, and read back after: an object the store assembled with
    /// other bytes is removed and [`ObjectTierError::Damaged`].
    pub async fn put_file(&self, key: &str, source: &Path, sha256: &Digest) -> Result<Stored> {
        if sha256.algorithm != HashAlgorithm::Sha256 {
            return Err(ObjectTierError::NotSha256(sha256.clone()));
        }
        let location = self.location(key)?;
        if let Some(existing) = self.head_at(key, &location).await? {
            return self.converge(key, &location, existing, sha256).await;
        }
        let size = tokio::fs::metadata(source)
            .await
            .map_err(|e| local_error(source, e))?
            .len();
        let written = if let Some(files) = &self.local {
            put_local(files.clone(), location.clone(), source, size, sha256).await?
        } else if size <= self.part_size as u64 {
            self.put_single(key, &location, source, size, sha256)
                .await?
        } else {
            let s3 = self.s3.as_ref().expect("a tier is local or S3");
            self.put_multipart(s3, key, &location, source, size, sha256)
                .await?
        };
        if written {
            tracing::debug!(key, size, "object stored");
            return Ok(Stored::Written);
        }
        // another writer was first: the same bytes, or a conflict
        match self.head_at(key, &location).await? {
            Some(existing) => self.converge(key, &location, existing, sha256).await,
            None => Err(backend(
                key,
                object_store::Error::Generic {
                    store: "larder",
                    source: "the key was taken, then gone".into(),
                },
            )),
        }
    }

    /// `key` holds `existing` already: fine if it is these bytes, a conflict if not.
    async fn converge(
        &self,
        key: &str,
        location: &ObjectPath,
        existing: ObjectInfo,
        offered: &Digest,
    ) -> Result<Stored> {
        let existing = match existing.sha256 {
            Some(recorded) => recorded,
            // written by something else: its bytes decide
            None => self.sha256_of(key, location).await?,
        };
        if existing == *offered {
            Ok(Stored::AlreadyThere)
        } else {
            Err(ObjectTierError::Conflict {
                key: key.to_string(),
                existing: existing.hex(),
                offered: offered.hex(),
            })
        }
    }

    /// The sha256 of the bytes stored at `location`, read through.
    async fn sha256_of(&self, key: &str, location: &ObjectPath) -> Result<Digest> {
        let found = self
            .objects
            .get_opts(location, GetOptions::default())
            .await
            .map_err(|e| not_found_or_backend(key, e))?;
        let mut bytes = found.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = bytes.next().await {
            hasher.update(chunk.map_err(|e| backend(key, e))?);
        }
        Ok(sha256_digest(hasher))
    }

    fn sha256_attributes(sha256: &Digest) -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            AttributeValue::from(sha256.hex()),
        );
        attributes
    }

    /// One conditional PUT; `false` when the key was taken first.
    async fn put_single(
        &self,
        key: &str,
        location: &ObjectPath,
        source: &Path,
        size: u64,
        sha256: &Digest,
    ) -> Result<bool> {
        let bytes = tokio::fs::read(source)
            .await
            .map_err(|e| local_error(source, e))?;
        let mut hasher = Sha256::new();
        hasher.update(&bytes);
        check_source(source, size, sha256, bytes.len() as u64, hasher)?;
        let options = PutOptions {
            mode: PutMode::Create,
            attributes: Self::sha256_attributes(sha256),
            ..PutOptions::default()
        };
        match self
            .objects
            .put_opts(location, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(source) => Err(backend(key, source)),
        }
    }

    /// A multipart upload, completed only if the key is still free (`If-None-Match: *`) and
    /// aborted unless it completes; `false` when the key was taken first.
    async fn put_multipart(
        &self,
        s3: &S3Access,
        key: &str,
        location: &ObjectPath,
        source: &Path,
        size: u64,
        sha256: &Digest,
    ) -> Result<bool> {
        let options = PutMultipartOptions {
            attributes: Self::sha256_attributes(sha256),
            ..PutMultipartOptions::default()
        };
        let upload = s3
            .s3
            .create_multipart_opts(location, options)
            .await
            .map_err(|e| backend(key, e))?;
        let outcome = match self
            .upload_parts(s3, key, location, &upload, source, size, sha256)
            .await
        {
            Ok(parts) => s3.complete_if_absent(key, location, &upload, &parts).await,
            Err(e) => Err(e),
        };
        if !matches!(outcome, Ok(true)) {
            if let Err(e) = s3.s3.abort_multipart(location, &upload).await {
                tracing::warn!(key, error = %e, "could not abort a multipart upload");
            }
        }
        if !outcome? {
            return Ok(false);
        }
        // the digest of what the store assembled, not of what was sent
        let stored = self.sha256_of(key, location).await?;
        if stored == *sha256 {
            return Ok(true);
        }
        match self.head_at(key, location).await?.and_then(|o| o.sha256) {
            Some(recorded) if recorded == *sha256 => {
                // this upload's own object, damaged: nobody can use it
                if let Err(e) = self.objects.delete(location).await {
                    tracing::warn!(key, error = %e, "could not remove a damaged upload");
                }
                Err(ObjectTierError::Damaged {
                    key: key.to_string(),
                    recorded: recorded.hex(),
                    actual: stored.hex(),
                })
            }
            // another writer's, completed over this one: a store whose conditional completion
            // is not atomic (moto's is not); never remove what may be theirs
            _ => Err(ObjectTierError::Conflict {
                key: key.to_string(),
                existing: stored.hex(),
                offered: sha256.hex(),
            }),
        }
    }

    /// Send the file's parts, at most [`PARTS_IN_FLIGHT`] at once, checking what was read
    /// against `size` and `sha256` before the upload may complete; the parts in order.
    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        s3: &S3Access,
        key: &str,
        location: &ObjectPath,
        upload: &MultipartId,
        source: &Path,
        size: u64,
        sha256: &Digest,
    ) -> Result<Vec<PartId>> {
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| local_error(source, e))?;
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        let mut parts = Vec::new();
        // spawned, so parts go up while the next is read; dropped (aborted) on an error
        let mut in_flight = tokio::task::JoinSet::new();
        for index in 0.. {
            // a slot first, then the part: no more than PARTS_IN_FLIGHT parts in memory
            while in_flight.len() >= PARTS_IN_FLIGHT {
                parts.push(part_done(key, in_flight.join_next().await)?);
            }
            let mut part = vec![0u8; self.part_size];
            let filled = read_up_to(&mut file, &mut part)
                .await
                .map_err(|e| local_error(source, e))?;
            if filled == 0 {
                break;
            }
            part.truncate(filled);
            hasher.update(&part);
            read += filled as u64;
            let (objects, location, upload) = (s3.s3.clone(), location.clone(), upload.clone());
            in_flight.spawn(async move {
                let part = objects
                    .put_part(&location, &upload, index, PutPayload::from(part))
                    .await?;
                Ok((index, part))
            });
            if filled < self.part_size {
                break;
            }
        }
        while let Some(joined) = in_flight.join_next().await {
            parts.push(part_done(key, Some(joined))?);
        }
        check_source(source, size, sha256, read, hasher)?;
        parts.sort_by_key(|(index, _)| *index);
        Ok(parts.into_iter().map(|(_, part)| part).collect())
    }

    /// Write the object under `key` to `dest` (replacing it), streaming, and only if its bytes
    /// have the sha256 recorded for them: otherwise [`ObjectTierError::Damaged`] (or
    /// [`ObjectTierError::Unrecorded`]) and `dest` is not touched.
    pub async fn get_to_file(&self, key: &str, dest: &Path) -> Result<ObjectInfo> {
        let location = self.location(key)?;
        let found = self
            .objects
            .get_opts(&location, GetOptions::default())
            .await
            .map_err(|e| not_found_or_backend(key, e))?;
        let recorded = self
            .recorded_sha256(key, &location, &found.attributes)?
            .ok_or_else(|| ObjectTierError::Unrecorded(key.to_string()))?;
        let size = found.meta.size;
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (file, temp) = tempfile::Builder::new()
            .prefix(".larder-get-")
            .tempfile_in(dir)
            .map_err(|e| local_error(dir, e))?
            .into_parts();
        let mut out = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut bytes = found.into_stream();
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| backend(key, e))?;
            hasher.update(&chunk);
            written += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| local_error(&temp, e))?;
        }
        out.sync_all().await.map_err(|e| local_error(&temp, e))?;
        drop(out);
        let actual = sha256_digest(hasher);
        if actual != recorded || written != size {
            // `temp` goes with this return
            tracing::warn!(key, recorded = %recorded.hex(), actual = %actual.hex(), "damaged object");
            return Err(ObjectTierError::Damaged {
                key: key.to_string(),
                recorded: recorded.hex(),
                actual: actual.hex(),
            });
        }
        temp.persist(dest).map_err(|e| local_error(dest, e.error))?;
        Ok(ObjectInfo {
            size,
            sha256: Some(recorded),
        })
    }

    /// The whole object under `key`, as a stream, with its size and recorded sha256. The bytes
    /// are not verified here: the caller hashes them as it passes them on and fails (cuts the
    /// response short) when they end with another sha256, or when none is recorded.
    pub async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        let location = self.location(key)?;
        let found = self
            .objects
            .get_opts(&location, GetOptions::default())
            .await
            .map_err(|e| not_found_or_backend(key, e))?;
        let sha256 = self.recorded_sha256(key, &location, &found.attributes)?;
        Ok(ObjectStream {
            size: found.meta.size,
            sha256,
            bytes: stream_of(key, found),
        })
    }

    /// The bytes `range` of the object under `key` (cut at its end), for HTTP Range requests.
    /// A range cannot be checked against the object's sha256: it is served as stored.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<RangeStream> {
        let location = self.location(key)?;
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let found = self
            .objects
            .get_opts(&location, options)
            .await
            .map_err(|e| not_found_or_backend(key, e))?;
        Ok(RangeStream {
            range: found.range.clone(),
            size: found.meta.size,
            bytes: stream_of(key, found),
        })
    }

    /// Remove the object under `key`; none there is no error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let location = self.location(key)?;
        match self.objects.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(backend(key, source)),
        }
    }

    /// Every object whose key is below `prefix` (whole segments: `deps/npm` lists
    /// `deps/npm/…`, not `deps/npmx`); `""` lists the whole tier. In no particular order.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<ListedObject>> {
        let under = match (prefix.trim_matches('/'), self.prefix.as_str()) {
            ("", "") => None,
            ("", tier) => ObjectPath::parse(tier).ok(),
            (prefix, _) => match self.location(prefix) {
                Ok(location) => Some(location),
                Err(e) => return futures_util::stream::once(async move { Err(e) }).boxed(),
            },
        };
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        self.objects
            .list(under.as_ref())
            .map_err(|e| backend("", e))
            .map_ok(move |meta| ListedObject {
                key: meta
                    .location
                    .as_ref()
                    .strip_prefix(strip.as_str())
                    .unwrap_or(meta.location.as_ref())
                    .to_string(),
                size: meta.size,
                modified: meta.last_modified,
            })
            .boxed()
    }
}

/// `file://`: copy `source` beside its key's file while hashing it, record the sha256 on the
/// copy, then hard-link it into place unless the key is taken (`false`).
async fn put_local(
    files: Arc<LocalFileSystem>,
    location: ObjectPath,
    source: &Path,
    size: u64,
    sha256: &Digest,
) -> Result<bool> {
    let source = source.to_path_buf();
    let sha256 = sha256.clone();
    tokio::task::spawn_blocking(move || {
        let dest = files
            .path_to_filesystem(&location)
            .map_err(|e| backend(location.as_ref(), e))?;
        let dir = dest.parent().expect("a key's file is below the root");
        std::fs::create_dir_all(dir).map_err(|e| local_error(dir, e))?;
        // `name#digits` is what LocalFileSystem takes for an upload in progress: never listed
        let staged_path = dir.join(format!(
            "{}#{}",
            dest.file_name()
                .expect("a key names a file")
                .to_string_lossy(),
            rand::random::<u64>()
        ));
        let mut staged =
            std::fs::File::create_new(&staged_path).map_err(|e| local_error(&staged_path, e))?;
        let staged_path = tempfile::TempPath::try_from_path(&staged_path)
            .map_err(|e| local_error(&staged_path, e))?;
        let mut input = std::fs::File::open(&source).map_err(|e| local_error(&source, e))?;
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).map_err(|e| local_error(&source, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
            staged
                .write_all(&buf[..n])
                .map_err(|e| local_error(&staged_path, e))?;
        }
        check_source(&source, size, &sha256, read, hasher)?;
        xattr::set(&staged_path, SHA256_XATTR, sha256.hex().as_bytes())
            .map_err(|e| local_error(&staged_path, e))?;
        staged
            .sync_all()
            .map_err(|e| local_error(&staged_path, e))?;
        match std::fs::hard_link(&staged_path, &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(local_error(&dest, e)),
        }
        // `staged_path` is removed here: the key's file is its other link
    })
    .await
    .expect("the local put does not panic")
}

/// Keys as [`super::Store`] takes them: relative, normalized, `/`-separated.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.contains('\\')
        && !key.contains('\0')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn check_source(
    source: &Path,
    size: u64,
    sha256: &Digest,
    read_size: u64,
    hasher: Sha256,
) -> Result<()> {
    let read = sha256_digest(hasher);
    if read_size == size && read == *sha256 {
        return Ok(());
    }
    Err(ObjectTierError::SourceChanged {
        path: source.to_path_buf(),
        expected_size: size,
        expected: sha256.hex(),
        read_size,
        read: read.hex(),
    })
}

fn sha256_digest(hasher: Sha256) -> Digest {
    Digest::new(HashAlgorithm::Sha256, &hasher.finalize()).expect("32 bytes")
}

/// Fill `buf` from `file` unless it ends first; how much was read.
async fn read_up_to(file: &mut tokio::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

type UploadedPart = (usize, PartId);

fn part_done(
    key: &str,
    joined: Option<Result<object_store::Result<UploadedPart>, tokio::task::JoinError>>,
) -> Result<UploadedPart> {
    match joined.expect("a part in flight") {
        Ok(Ok(part)) => Ok(part),
        Ok(Err(e)) => Err(backend(key, e)),
        Err(e) => Err(backend(key, object_store::Error::JoinError { source: e })),
    }
}

/// What an S3 tier needs beyond `ObjectStore`: object_store completes a multipart upload
/// unconditionally, so the tier sends CompleteMultipartUpload itself, signed with the same
/// credentials, with `If-None-Match: *` (AWS S3 since 2024, moto).
#[derive(Clone, Debug)]
struct S3Access {
    s3: Arc<AmazonS3>,
    region: String,
    http: reqwest::Client,
}

impl S3Access {
    /// Complete the upload unless the key holds an object already (`false`).
    async fn complete_if_absent(
        &self,
        key: &str,
        location: &ObjectPath,
        upload: &MultipartId,
        parts: &[PartId],
    ) -> Result<bool> {
        let failed = |what: String| {
            backend(
                key,
                object_store::Error::Generic {
                    store: "S3",
                    source: what.into(),
                },
            )
        };
        // the object's URL as object_store addresses it (endpoint, path or virtual host)
        let mut url = self
            .s3
            .signed_url(http::Method::POST, location, Duration::from_secs(60))
            .await
            .map_err(|e| backend(key, e))?;
        url.set_query(None);
        url.query_pairs_mut().append_pair("uploadId", upload);
        let mut body = String::from("<CompleteMultipartUpload>");
        for (index, part) in parts.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                index + 1,
                xml_text(&part.content_id)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let credential = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| backend(key, e))?;
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(url.as_str())
            .header(http::header::IF_NONE_MATCH, "*")
            .header(http::header::CONTENT_TYPE, "application/xml")
            .body(HttpRequestBody::from(body.clone()))
            .map_err(|e| failed(e.to_string()))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| backend(key, e))?;
        let response = self
            .http
            .post(url)
            .headers(request.headers().clone())
            .body(body)
            .send()
            .await
            .map_err(|e| failed(format!("CompleteMultipartUpload: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match status.as_u16() {
            // an error can come with 200 once the upload has been assembled
            200 if !text.contains("<Error>") => Ok(true),
            // taken: 412; a conditional write to the same key in flight: 409
            412 | 409 => Ok(false),
            _ => Err(failed(format!(
                "CompleteMultipartUpload answered {status}: {text:.500}"
            ))),
        }
    }
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn stream_of(key: &str, found: GetResult) -> BoxStream<'static, Result<Bytes>> {
    let key = key.to_string();
    found
        .into_stream()
        .map_err(move |e| backend(&key, e))
        .boxed()
}

fn backend(key: &str, source: object_store::Error) -> ObjectTierError {
    ObjectTierError::Backend {
        key: key.to_string(),
        source,
    }
}

fn not_found_or_backend(key: &str, source: object_store::Error) -> ObjectTierError {
    match source {
        object_store::Error::NotFound { .. } => ObjectTierError::NotFound(key.to_string()),
        source => backend(key, source),
    }
}

fn local_error(path: &Path, source: io::Error) -> ObjectTierError {
    ObjectTierError::Local {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_file_or_s3() {
        assert_eq!(
            StoreUrl::parse("file:///var/lib/larder").unwrap(),
            StoreUrl::File("/var/lib/larder".into())
        );
        assert_eq!(
            StoreUrl::parse("s3://larder-store").unwrap(),
            StoreUrl::S3 {
                bucket: "larder-store".into(),
                prefix: String::new()
            }
        );
        let url = StoreUrl::parse("s3://larder-store/prod/eu/").unwrap();
        assert_eq!(
            url,
            StoreUrl::S3 {
                bucket: "larder-store".into(),
                prefix: "prod/eu".into()
            }
        );
        assert_eq!(url.to_string(), "s3://larder-store/prod/eu");
        for (bad, says) in [
            ("gs://bucket/x", "scheme \"gs\""),
            ("https://s3.amazonaws.com/bucket", "scheme \"https\""),
            ("file://relative/path", "three slashes"),
            ("s3:///prefix", "no bucket"),
            ("s3://key:secret@bucket", "AWS_*"),
            ("s3://bucket/a//b", "segment"),
            ("s3://bucket/a/../b", "segment"),
            ("/var/lib/larder", "invalid LARDER_STORE_URL"),
        ] {
            let error = StoreUrl::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn keys_go_below_the_prefix_and_stay_relative() {
        let tier = ObjectTier::s3(
            AmazonS3Builder::new()
                .with_region("us-east-1")
                .with_endpoint("http://127.0.0.1:1")
                .with_allow_http(true),
            "bucket",
            "/prod/",
        )
        .unwrap();
        assert_eq!(
            tier.location("deps/npm/a/-/a-1.0.0.tgz").unwrap().as_ref(),
            "prod/deps/npm/a/-/a-1.0.0.tgz"
        );
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a\\b"] {
            assert!(
                matches!(tier.location(bad), Err(ObjectTierError::InvalidKey(_))),
                "{bad:?}"
            );
        }
    }
}
