//! Moving a store across an air gap. `larder export` writes the objects stored since a time as
//! tar volumes and a manifest naming every object's key, size and sha256; `larder import`
//! brings them into another store, each object verified against the manifest before it
//! becomes visible there, written once and atomically, so an import killed at any point and
//! run again ends as if it had run once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::archive::{HashingReader, HashingWriter};
use crate::digest::{Digest, Expected, FileDigests, HashAlgorithm, Hasher};
use crate::store::object::ObjectTierError;
use crate::store::{file_record, SharedStore, Store};

/// The manifest's file name in a transfer directory; written last, so a directory without it
/// is an export that did not finish.
pub const MANIFEST: &str = "manifest.json";
/// The exported requests' records (`larder export --with-requests`), one JSON object a line.
pub const REQUESTS: &str = "requests.jsonl";
const FORMAT: &str = "larder-transfer/1";
/// What is exported: the permanent part of a store (bundles, recipes, leases and work files
/// are each instance's own).
const EXPORTED: &[&str] = &["sources", "deps"];
/// A tar entry's header blocks (a long name takes two more) and the archive's end.
const ENTRY_OVERHEAD: u64 = 3 * 512;
const ARCHIVE_END: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the store: {0}")]
    Objects(#[from] ObjectTierError),
    #[error("the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(
        "{0} is not a transfer directory: it has no {MANIFEST} (an export that did not finish?)"
    )]
    NoManifest(PathBuf),
    #[error("{path} is not a manifest this version reads: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("the volume {0} is missing from the transfer directory")]
    MissingVolume(String),
    #[error("{0} already holds a transfer; export into an empty directory")]
    NotEmpty(PathBuf),
    #[error("{REQUESTS} does not hold the requests the manifest says: {0}")]
    DamagedRequests(String),
}

type Result<T, E = TransferError> = std::result::Result<T, E>;

fn io_at(path: &Path) -> impl Fn(io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an export holds and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The exporting instance.
    pub instance: String,
    /// Objects stored after this (none: all of them) ...
    pub since: Option<DateTime<Utc>>,
    /// ... and by this time.
    pub until: DateTime<Utc>,
    pub volumes: Vec<Volume>,
    pub objects: Vec<ManifestObject>,
    /// The requests' records in [`REQUESTS`], when the export has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestsFile>,
}

/// What [`REQUESTS`] holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestsFile {
    pub count: u64,
    pub size: u64,
    pub sha256: String,
}

/// Requests' records being written for an export, one JSON line each, in a temporary file
/// beside the transfer directory until [`export`] puts it with the volumes.
pub struct RequestRecords {
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    count: u64,
    size: u64,
}

impl RequestRecords {
    /// For an export into `out`.
    pub fn new(out: &Path) -> Result<Self> {
        let beside = match out.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&beside).map_err(io_at(&beside))?;
        let file = tempfile::NamedTempFile::new_in(&beside).map_err(io_at(&beside))?;
        Ok(Self {
            file: BufWriter::new(file),
            hasher: Sha256::new(),
            count: 0,
            size: 0,
        })
    }

    pub fn push(&mut self, record: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| io_at(Path::new(REQUESTS))(io::Error::other(e)))?;
        line.push(b'\n');
        self.hasher.update(&line);
        self.file
            .write_all(&line)
            .map_err(io_at(Path::new(REQUESTS)))?;
        self.count += 1;
        self.size += line.len() as u64;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Move the records to `path`; what the manifest says of them.
    fn place(self, path: &Path) -> Result<RequestsFile> {
        use std::os::unix::fs::PermissionsExt;
        let temp = self
            .file
            .into_inner()
            .map_err(|e| io_at(Path::new(REQUESTS))(e.into_error()))?;
        temp.as_file().sync_all().map_err(io_at(temp.path()))?;
        // readable by whoever carries the media, as the volumes are
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(io_at(temp.path()))?;
        if let Err(e) = temp.persist(path) {
            // another file system (the transfer directory a mount point)
            std::fs::copy(e.file.path(), path).map_err(io_at(path))?;
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(io_at(path))?;
        }
        Ok(RequestsFile {
            count: self.count,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}

/// The requests' records of the transfer in `dir`, when its manifest names them: the whole
/// file checked against the manifest first, then read a line (a record) at a time; a line that
/// does not read is an error of its own (why), as is a count other than the manifest's.
pub fn request_records<T: serde::de::DeserializeOwned>(
    dir: &Path,
    manifest: &Manifest,
) -> Result<Option<impl Iterator<Item = Result<T, String>>>> {
    use std::io::{BufRead, Seek};
    let Some(expected) = &manifest.requests else {
        return Ok(None);
    };
    let path = dir.join(REQUESTS);
    let damaged = |why: String| TransferError::DamagedRequests(why);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(damaged(format!("{} is missing", path.display())))
        }
        Err(e) => return Err(io_at(&path)(e)),
    };
    let mut hasher = Sha256::new();
    let size = io::copy(
        &mut (&mut file).take(expected.size.saturating_add(1)),
        &mut hasher,
    )
    .map_err(io_at(&path))?;
    let sha256 = hex::encode(hasher.finalize());
    if size != expected.size || sha256 != expected.sha256 {
        return Err(damaged(format!(
            "{size} bytes of sha256 {sha256}, not {} of {}",
            expected.size, expected.sha256
        )));
    }
    file.rewind().map_err(io_at(&path))?;
    let mut reader = BufReader::new(file);
    let (count, mut read, mut ended) = (expected.count, 0u64, false);
    Ok(Some(std::iter::from_fn(move || {
        if ended {
            return None;
        }
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => {
                ended = true;
                (read != count).then(|| {
                    Err(format!(
                        "the file holds {read} record(s), the manifest says {count}"
                    ))
                })
            }
            Ok(_) => {
                read += 1;
                Some(serde_json::from_slice(&line).map_err(|e| e.to_string()))
            }
            Err(e) => {
                ended = true;
                Some(Err(e.to_string()))
            }
        }
    })))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The index of its volume in [`Manifest::volumes`].
    pub volume: usize,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TransferError::NoManifest(dir.to_path_buf()))
            }
            Err(e) => return Err(io_at(&path)(e)),
        };
        let bad = |reason: String| TransferError::BadManifest {
            path: path.clone(),
            reason,
        };
        let manifest: Manifest =
            serde_json::from_reader(BufReader::new(file)).map_err(|e| bad(e.to_string()))?;
        if manifest.format != FORMAT {
            return Err(bad(format!("its format is {:?}", manifest.format)));
        }
        // what `api::transfers::instance_of` names an instance: it is stored and shown
        if manifest.instance.len() != 16
            || !manifest
                .instance
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(format!(
                "the instance {:?} is not an instance's name",
                manifest.instance
            )));
        }
        // a volume is a file of the transfer directory, nothing else
        if let Some(v) = manifest.volumes.iter().find(|v| {
            !v.name.ends_with(".tar")
                || v.name.contains(['/', '\\', '\0'])
                || v.name.starts_with('.')
        }) {
            return Err(bad(format!(
                "the volume name {:?} is not a file name",
                v.name
            )));
        }
        if let Some(o) = manifest
            .objects
            .iter()
            .find(|o| o.volume >= manifest.volumes.len() || !valid_key(&o.key))
        {
            return Err(bad(format!(
                "the object {:?} is not one it can hold",
                o.key
            )));
        }
        Ok(manifest)
    }

    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}

/// A key an export may carry: below an exported prefix, no `.`/`..`/empty segment.
fn valid_key(key: &str) -> bool {
    EXPORTED
        .iter()
        .any(|p| key.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
}

/// An object of the store, as a listing sees it.
#[derive(Clone, Debug)]
struct Listed {
    key: String,
    size: u64,
    modified: DateTime<Utc>,
}

/// Every exported object stored after `since` (all of them when `None`), by key.
async fn list(store: &SharedStore, since: Option<DateTime<Utc>>) -> Result<Vec<Listed>> {
    let mut found = match store {
        SharedStore::Directory(dir) => {
            let root = dir.root().to_path_buf();
            tokio::task::spawn_blocking(move || list_directory(&root))
                .await
                .map_err(|e| io_at(Path::new("store"))(io::Error::other(e)))??
        }
        SharedStore::Objects(tier) => {
            let mut found = Vec::new();
            for prefix in EXPORTED {
                let listed: Vec<_> = tier.list(prefix).try_collect().await?;
                found.extend(listed.into_iter().map(|o| Listed {
                    key: o.key,
                    size: o.size,
                    modified: o.modified,
                }));
            }
            found
        }
    };
    found.retain(|o| valid_key(&o.key) && since.is_none_or(|since| o.modified > since));
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

fn list_directory(root: &Path) -> Result<Vec<Listed>> {
    let mut found = Vec::new();
    let mut dirs: Vec<PathBuf> = EXPORTED.iter().map(|p| root.join(p)).collect();
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_at(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_at(&dir))?;
            let meta = entry.metadata().map_err(io_at(&entry.path()))?;
            if meta.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let path = entry.path();
            let Some(key) = path
                .strip_prefix(root)
                .ok()
                .and_then(|k| k.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            // when it appeared under its key: a stored file is renamed into place (which
            // changes its ctime) after it was written (its mtime), maybe long after
            use std::os::unix::fs::MetadataExt;
            let written: DateTime<Utc> = meta.modified().map_err(io_at(&path))?.into();
            let placed =
                DateTime::from_timestamp(meta.ctime(), meta.ctime_nsec() as u32).unwrap_or(written);
            found.push(Listed {
                key,
                size: meta.len(),
                modified: written.max(placed),
            });
        }
    }
    Ok(found)
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub manifest: Manifest,
    /// Objects that no longer have the sha256 they were stored with (key, why): left out (an
    /// object store checks before the volume is written), or carried with the sha256 they
    /// should have, which the far side refuses them on (a directory's record is checked as the
    /// bytes go into the volume).
    pub damaged: Vec<(String, String)>,
}

/// What an export covers: objects stored after `since` (all when `None`) and by `until` (the
/// time the export is of, taken before the store is listed), less the keys in `held` (what an
/// earlier export carried).
#[derive(Clone, Debug, Default)]
pub struct ExportRange {
    pub since: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
    pub held: std::collections::HashSet<String>,
}

/// Write every object of `store` that `range` covers into `out` (made if missing, empty):
/// volumes of at most `max_volume` bytes (an object larger than that alone in one), then the
/// manifest.
pub async fn export(
    store: &SharedStore,
    out: &Path,
    instance: &str,
    range: &ExportRange,
    max_volume: u64,
    requests: Option<RequestRecords>,
    progress: &Progress,
) -> Result<Exported> {
    let (since, until) = (range.since, range.until);
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    if std::fs::read_dir(out).map_err(io_at(out))?.next().is_some() {
        return Err(TransferError::NotEmpty(out.to_path_buf()));
    }
    let mut listed = list(store, since).await?;
    listed.retain(|o| !range.held.contains(&o.key));
    progress.start(listed.len() as u64, listed.iter().map(|o| o.size).sum());
    let scratch = tempfile::tempdir_in(out).map_err(io_at(out))?;
    let mut volumes = Vec::new();
    let mut objects = Vec::new();
    let mut damaged = Vec::new();
    let mut current: Option<VolumeWriter> = None;
    for object in listed {
        let entry = ENTRY_OVERHEAD + object.size.div_ceil(512) * 512;
        if current
            .as_ref()
            .is_some_and(|v| v.objects > 0 && v.written + entry + ARCHIVE_END > max_volume)
        {
            volumes.push(current.take().expect("checked").finish()?);
        }
        let volume = match &mut current {
            Some(volume) => volume,
            None => current.insert(VolumeWriter::create(out, volumes.len() + 1)?),
        };
        match read_object(store, &object.key, scratch.path()).await {
            Ok(source) => {
                let sha256 = match volume.append(&object.key, &source)? {
                    Appended::Whole(sha256) => sha256,
                    Appended::Damaged { recorded } => {
                        let why = "its bytes no longer have the sha256 recorded when it was \
                                   stored; the far side refuses it"
                            .to_string();
                        tracing::error!(key = %object.key, why, "damaged in the store");
                        damaged.push((object.key.clone(), why));
                        recorded
                    }
                };
                objects.push(ManifestObject {
                    key: object.key,
                    size: source.size,
                    sha256,
                    volume: volumes.len(),
                });
            }
            Err(ReadError::Damaged(why)) => {
                tracing::error!(key = %object.key, %why, "not exported: the stored object is damaged");
                damaged.push((object.key, why));
            }
            // removed since it was listed (a damaged file taken away): nothing to move
            Err(ReadError::Gone) => {}
            Err(ReadError::Transfer(e)) => return Err(e),
        }
        progress.advance(object.size);
    }
    if let Some(volume) = current {
        volumes.push(volume.finish()?);
    }
    // a volume left with nothing (its only object damaged or gone) is not shipped
    let mut kept = Vec::new();
    let mut renumber = HashMap::new();
    for (i, volume) in volumes.into_iter().enumerate() {
        if objects.iter().any(|o| o.volume == i) {
            renumber.insert(i, kept.len());
            kept.push(volume);
        } else {
            let path = out.join(&volume.name);
            std::fs::remove_file(&path).map_err(io_at(&path))?;
        }
    }
    for o in &mut objects {
        o.volume = renumber[&o.volume];
    }
    let requests = requests
        .map(|records| records.place(&out.join(REQUESTS)))
        .transpose()?;
    let manifest = Manifest {
        format: FORMAT.into(),
        instance: instance.into(),
        since,
        until,
        volumes: kept,
        objects,
        requests,
    };
    drop(scratch);
    let temp = tempfile::NamedTempFile::new_in(out).map_err(io_at(out))?;
    serde_json::to_writer_pretty(BufWriter::new(temp.as_file()), &manifest)
        .map_err(|e| io_at(out)(e.into()))?;
    temp.as_file().sync_all().map_err(io_at(out))?;
    // readable by whoever carries the media, as the volumes are
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(io_at(out))?;
    let path = out.join(MANIFEST);
    temp.persist(&path).map_err(|e| io_at(&path)(e.error))?;
    progress.finish();
    Ok(Exported { manifest, damaged })
}

/// An object about to go into a volume: a file to read and the sha256 its bytes must have.
struct Source {
    path: PathBuf,
    size: u64,
    /// The sha256 recorded for it, if any; checked as it is copied.
    sha256: Option<[u8; 32]>,
    /// Removed with this (a copy taken from an object store).
    _copy: Option<tempfile::TempPath>,
}

enum ReadError {
    Damaged(String),
    Gone,
    Transfer(TransferError),
}

async fn read_object(
    store: &SharedStore,
    key: &str,
    scratch: &Path,
) -> std::result::Result<Source, ReadError> {
    match store {
        SharedStore::Directory(dir) => {
            let path = dir.path(key).map_err(|e| ReadError::Transfer(e.into()))?;
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::Gone),
                Err(e) => return Err(ReadError::Transfer(io_at(&path)(e))),
            };
            let size = file
                .metadata()
                .map_err(|e| ReadError::Transfer(io_at(&path)(e)))?
                .len();
            let sha256 = file_record::recorded_digests_of(&file)
                .filter(|d| d.size == size)
                .map(|d| *d.sha256());
            Ok(Source {
                path,
                size,
                sha256,
                _copy: None,
            })
        }
        SharedStore::Objects(tier) => {
            // taken whole and verified first: a volume never holds bytes the store did not
            // record
            let copy = tempfile::NamedTempFile::new_in(scratch)
                .map_err(|e| ReadError::Transfer(io_at(scratch)(e)))?
                .into_temp_path();
            match tier.get_to_file(key, &copy).await {
                Ok(info) => Ok(Source {
                    path: copy.to_path_buf(),
                    size: info.size,
                    sha256: info.sha256.and_then(|d| d.bytes().try_into().ok()),
                    _copy: Some(copy),
                }),
                Err(ObjectTierError::NotFound(_)) => Err(ReadError::Gone),
                Err(e @ (ObjectTierError::Damaged { .. } | ObjectTierError::Unrecorded(_))) => {
                    Err(ReadError::Damaged(e.to_string()))
                }
                Err(e) => Err(ReadError::Transfer(e.into())),
            }
        }
    }
}

/// What [`VolumeWriter::append`] put in the volume.
enum Appended {
    /// Bytes with this sha256 (hex), the one recorded for them if any.
    Whole(String),
    /// Bytes that no longer have the sha256 (hex) recorded for them.
    Damaged { recorded: String },
}

/// A volume being written: a tar file, hashed as it goes.
struct VolumeWriter {
    name: String,
    path: PathBuf,
    tar: tar::Builder<HashingWriter<BufWriter<File>>>,
    written: u64,
    objects: usize,
}

impl VolumeWriter {
    fn create(out: &Path, number: usize) -> Result<Self> {
        let name = format!("volume-{number:05}.tar");
        let path = out.join(&name);
        let file = File::create_new(&path).map_err(io_at(&path))?;
        let mut tar = tar::Builder::new(HashingWriter::new(BufWriter::new(file)));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(Self {
            name,
            path,
            tar,
            written: 0,
            objects: 0,
        })
    }

    /// Append the object `key`, its bytes checked against the sha256 recorded for it.
    fn append(&mut self, key: &str, source: &Source) -> Result<Appended> {
        let file = File::open(&source.path).map_err(io_at(&source.path))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(source.size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        let mut reader = HashingReader::new(file.take(source.size));
        self.tar
            .append_data(&mut header, key, &mut reader)
            .map_err(io_at(&self.path))?;
        let (sha256, read) = reader.finish();
        if read != source.size {
            return Err(io_at(&source.path)(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than it was",
            )));
        }
        self.written = self.tar.get_ref().written();
        self.objects += 1;
        Ok(match source.sha256 {
            // the volume holds the bytes already: the manifest names what they should have
            // been, so the far side refuses them
            Some(recorded) if recorded != sha256 => Appended::Damaged {
                recorded: hex::encode(recorded),
            },
            _ => Appended::Whole(hex::encode(sha256)),
        })
    }

    fn finish(self) -> Result<Volume> {
        let Self {
            name, path, tar, ..
        } = self;
        let mut hashing = tar.into_inner().map_err(io_at(&path))?;
        hashing.flush().map_err(io_at(&path))?;
        let (buffered, sha256, size) = hashing.finish();
        let sha256 = hex::encode(sha256);
        let file = buffered
            .into_inner()
            .map_err(|e| io_at(&path)(e.into_error()))?;
        file.sync_all().map_err(io_at(&path))?;
        Ok(Volume { name, size, sha256 })
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Objects written into the store.
    pub written: u64,
    pub written_bytes: u64,
    /// Objects the store held already with the same sha256.
    pub present: u64,
    /// Objects not imported, and why: bytes other than the manifest names (a damaged
    /// volume), a key the store holds with other bytes, an entry the manifest does not name,
    /// an object missing from its volume.
    pub refused: Vec<(String, String)>,
}

/// Bring the transfer in `dir` into `store`. Every volume must be there (else
/// [`TransferError::MissingVolume`], and nothing is imported); each object is copied aside,
/// checked against the manifest's size and sha256, and only then stored under its key; a key
/// the store holds already is left as it is (the same bytes: counted present; other bytes:
/// refused). `staging` is where copies wait (the store's own temporary directory for a
/// directory store, so they are renamed into place).
pub async fn import(
    store: &SharedStore,
    dir: &Path,
    staging: &Path,
    progress: &Progress,
) -> Result<(Manifest, Imported)> {
    let manifest = Manifest::read(dir)?;
    if let Some(missing) = manifest
        .volumes
        .iter()
        .find(|v| !dir.join(&v.name).is_file())
    {
        return Err(TransferError::MissingVolume(missing.name.clone()));
    }
    progress.start(manifest.objects.len() as u64, manifest.bytes());
    std::fs::create_dir_all(staging).map_err(io_at(staging))?;
    let mut imported = Imported::default();
    for (index, volume) in manifest.volumes.iter().enumerate() {
        let expected: HashMap<String, ManifestObject> = manifest
            .objects
            .iter()
            .filter(|o| o.volume == index)
            .map(|o| (o.key.clone(), o.clone()))
            .collect();
        let path = dir.join(&volume.name);
        let (store, staging, handle) = (
            store.clone(),
            staging.to_path_buf(),
            tokio::runtime::Handle::current(),
        );
        let progress = progress.clone();
        let from_volume = tokio::task::spawn_blocking(move || {
            import_volume(&store, &path, expected, &staging, &handle, &progress)
        })
        .await
        .map_err(|e| io_at(dir)(io::Error::other(e)))??;
        imported.written += from_volume.written;
        imported.written_bytes += from_volume.written_bytes;
        imported.present += from_volume.present;
        imported.refused.extend(from_volume.refused);
    }
    progress.finish();
    Ok((manifest, imported))
}

/// Import the objects of one volume; `expected` is what the manifest says it holds (an object
/// it does not hold is refused as missing).
fn import_volume(
    store: &SharedStore,
    path: &Path,
    mut expected: HashMap<String, ManifestObject>,
    staging: &Path,
    handle: &tokio::runtime::Handle,
    progress: &Progress,
) -> Result<Imported> {
    let file = File::open(path).map_err(io_at(path))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut imported = Imported::default();
    let volume = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("volume");
    let entries = archive.entries().map_err(io_at(path))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            // a volume cut short: what it held so far is in, the rest is reported missing
            Err(e) => {
                tracing::error!(volume, error = %e, "the volume cannot be read further");
                break;
            }
        };
        let key = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(_) => continue,
        };
        let Some(object) = expected.remove(&key) else {
            imported.refused.push((
                key,
                format!("{volume} holds it but the manifest does not name it"),
            ));
            continue;
        };
        // never more read than the manifest names: a huge entry is refused unread
        let declared = entry.header().size().unwrap_or(u64::MAX);
        let outcome = if declared != object.size {
            Ok(Placed::Refused(format!(
                "{volume} holds {declared} bytes for it, not the {} the manifest names",
                object.size
            )))
        } else {
            import_object(store, &mut entry, &object, staging, handle)
        };
        progress.advance(object.size);
        match outcome {
            Ok(Placed::Written) => {
                imported.written += 1;
                imported.written_bytes += object.size;
            }
            Ok(Placed::Present) => imported.present += 1,
            Ok(Placed::Refused(why)) => {
                tracing::error!(key, %why, "not imported");
                imported.refused.push((key, why));
            }
            Err(e) => return Err(e),
        }
    }
    imported.refused.extend(
        expected
            .into_keys()
            .map(|key| (key, format!("not in {volume}"))),
    );
    Ok(imported)
}

enum Placed {
    Written,
    Present,
    Refused(String),
}

fn import_object(
    store: &SharedStore,
    entry: &mut impl Read,
    object: &ManifestObject,
    staging: &Path,
    handle: &tokio::runtime::Handle,
) -> Result<Placed> {
    let Ok(sha256) = Digest::from_hex(HashAlgorithm::Sha256, &object.sha256) else {
        return Ok(Placed::Refused("the manifest's sha256 is not one".into()));
    };
    // the store first: an object already there is not read from the volume at all
    if let Some(found) = present_sha256(store, &object.key, handle)? {
        return Ok(
            if found == sha256 || crate::store::interchangeable(&object.key) {
                Placed::Present
            } else {
                Placed::Refused(format!(
                    "the store holds other bytes under this key (sha256 {})",
                    found.hex()
                ))
            },
        );
    }
    let temp = tempfile::NamedTempFile::new_in(staging).map_err(io_at(staging))?;
    let mut hasher = Hasher::for_expected(&Expected::none());
    {
        let mut out = BufWriter::new(temp.as_file());
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(io_at(temp.path()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_at(temp.path()))?;
        }
        out.flush().map_err(io_at(temp.path()))?;
    }
    let digests = hasher.finish();
    if digests.size != object.size || *digests.sha256() != sha256.bytes()[..] {
        return Ok(Placed::Refused(format!(
            "its bytes (sha256 {}, {} bytes) are not what the manifest names",
            hex::encode(digests.sha256()),
            digests.size
        )));
    }
    temp.as_file().sync_all().map_err(io_at(temp.path()))?;
    match store {
        SharedStore::Directory(dir) => place_in_directory(dir, temp, &object.key, &digests),
        SharedStore::Objects(tier) => {
            match handle.block_on(tier.put_file(&object.key, temp.path(), &sha256)) {
                Ok(_) => Ok(Placed::Written),
                Err(ObjectTierError::Conflict { .. })
                    if crate::store::interchangeable(&object.key) =>
                {
                    Ok(Placed::Present)
                }
                Err(ObjectTierError::Conflict { .. }) => Ok(Placed::Refused(
                    "the store holds other bytes under this key".into(),
                )),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn place_in_directory(
    dir: &Store,
    temp: tempfile::NamedTempFile,
    key: &str,
    digests: &FileDigests,
) -> Result<Placed> {
    // recorded on the inode before it is visible: a request finds it checked already
    if let Ok(meta) = temp.as_file().metadata() {
        let _ = file_record::record_digests(temp.path(), digests, &meta);
    }
    match dir.persist_new(temp.into_temp_path(), key)? {
        None => Ok(Placed::Written),
        // stored meanwhile by someone else
        Some(ours) => {
            let theirs = dir.path(key)?;
            let same = sha256_of_file(&theirs)? == *digests.sha256();
            drop(ours);
            Ok(if same {
                Placed::Present
            } else {
                Placed::Refused("the store holds other bytes under this key".into())
            })
        }
    }
}

/// The sha256 of what the store holds under `key`, if anything.
fn present_sha256(
    store: &SharedStore,
    key: &str,
    handle: &tokio::runtime::Handle,
) -> Result<Option<Digest>> {
    match store {
        SharedStore::Directory(dir) => {
            let path = dir.path(key)?;
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_at(&path)(e)),
            };
            let size = file.metadata().map_err(io_at(&path))?.len();
            let sha256 = match file_record::recorded_digests_of(&file).filter(|d| d.size == size) {
                Some(digests) => *digests.sha256(),
                None => sha256_of_file(&path)?,
            };
            Ok(Some(
                Digest::new(HashAlgorithm::Sha256, &sha256).expect("32 bytes"),
            ))
        }
        SharedStore::Objects(tier) => Ok(handle
            .block_on(tier.head(key))?
            // an object without a record is nothing the store can vouch for: other bytes
            .map(|o| {
                o.sha256
                    .unwrap_or_else(|| Digest::new(HashAlgorithm::Sha256, &[0; 32]).expect("32"))
            })),
    }
}

fn sha256_of_file(path: &Path) -> Result<[u8; 32]> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(io_at(path))?;
    Ok(hasher.finalize().into())
}

/// How far an export or import is, shown on a terminal (a line redrawn at most twice a
/// second) and nowhere else.
#[derive(Clone, Debug)]
pub struct Progress {
    inner: Option<std::sync::Arc<std::sync::Mutex<ProgressLine>>>,
}

#[derive(Debug)]
struct ProgressLine {
    what: &'static str,
    objects: u64,
    bytes: u64,
    done_objects: u64,
    done_bytes: u64,
    drawn: Option<std::time::Instant>,
}

impl Progress {
    /// A progress line on stderr when it is a terminal.
    pub fn on_terminal(what: &'static str) -> Self {
        use std::io::IsTerminal;
        Self {
            inner: io::stderr().is_terminal().then(|| {
                std::sync::Arc::new(std::sync::Mutex::new(ProgressLine {
                    what,
                    objects: 0,
                    bytes: 0,
                    done_objects: 0,
                    done_bytes: 0,
                    drawn: None,
                }))
            }),
        }
    }

    pub fn hidden() -> Self {
        Self { inner: None }
    }

    fn start(&self, objects: u64, bytes: u64) {
        if let Some(line) = &self.inner {
            let mut line = line.lock().expect("not poisoned");
            line.objects = objects;
            line.bytes = bytes;
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(line) = &self.inner {
            let mut line = line.lock().expect("not poisoned");
            line.done_objects += 1;
            line.done_bytes += bytes;
            if line
                .drawn
                .is_none_or(|at| at.elapsed() >= std::time::Duration::from_millis(500))
            {
                line.drawn = Some(std::time::Instant::now());
                line.draw();
            }
        }
    }

    fn finish(&self) {
        if let Some(line) = &self.inner {
            line.lock().expect("not poisoned").draw();
            eprintln!();
        }
    }
}

impl ProgressLine {
    fn draw(&self) {
        let percent = (self.done_bytes * 100)
            .checked_div(self.bytes)
            .unwrap_or(100);
        eprint!(
            "\r{}: {}/{} objects, {:.1}/{:.1} MB ({percent} %)   ",
            self.what,
            self.done_objects,
            self.objects,
            self.done_bytes as f64 / 1e6,
            self.bytes as f64 / 1e6,
        );
    }
}

/// A size as people write it: bytes, or with a binary suffix (`512K`, `100M`, `4G`, `1T`).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (4G, 700M, 1048576)"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
        "" => 0,
        "K" | "KI" => 10,
        "M" | "MI" => 20,
        "G" | "GI" => 30,
        "T" | "TI" => 40,
        _ => return Err(format!("{text:?}: the unit is one of K, M, G, T")),
    };
    n.checked_mul(1 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size this can hold"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(dir: &Path, files: &[(&str, &[u8])]) -> SharedStore {
        let store = Store::new(dir);
        for (key, bytes) in files {
            store.put_bytes(key, bytes).unwrap();
        }
        SharedStore::Directory(store)
    }

    fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        list_directory(root)
            .unwrap()
            .into_iter()
            .map(|o| (o.key.clone(), std::fs::read(root.join(&o.key)).unwrap()))
            .collect()
    }

    const FILES: &[(&str, &[u8])] = &[
        ("deps/npm/a/-/a-1.0.0.tgz", b"a tarball"),
        ("deps/npm/b/-/b-2.0.0.tgz", &[7u8; 3000]),
        ("sources/example.com/r/0123.tar.gz", b"a source archive"),
    ];

    async fn exported(from: &SharedStore, out: &Path, max_volume: u64) -> Exported {
        let range = ExportRange {
            until: Utc::now(),
            ..ExportRange::default()
        };
        export(
            from,
            out,
            "00000000000000a1",
            &range,
            max_volume,
            None,
            &Progress::hidden(),
        )
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn request_records_go_beside_the_volumes_and_read_back_only_whole() {
        let (a, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = store_with(a.path(), FILES);
        let mut records = RequestRecords::new(out.path()).unwrap();
        for id in 1..=3 {
            records
                .push(&serde_json::json!({"id": id, "repo": "<script>"}))
                .unwrap();
        }
        let range = ExportRange {
            until: Utc::now(),
            ..ExportRange::default()
        };
        let done = export(
            &from,
            out.path(),
            "00000000000000a1",
            &range,
            1 << 20,
            Some(records),
            &Progress::hidden(),
        )
        .await
        .unwrap();
        let manifest = Manifest::read(out.path()).unwrap();
        assert_eq!(manifest, done.manifest);
        assert_eq!(manifest.requests.as_ref().unwrap().count, 3);
        let read: Vec<serde_json::Value> = request_records(out.path(), &manifest)
            .unwrap()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.path().join(REQUESTS))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(read.len(), 3);
        assert_eq!(read[2]["id"], 3);

        // one byte changed: nothing of it is read
        let path = out.path().join(REQUESTS);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let Err(TransferError::DamagedRequests(why)) =
            request_records::<serde_json::Value>(out.path(), &manifest).map(|_| ())
        else {
            panic!("a changed requests file was read");
        };
        assert!(why.contains(&manifest.requests.unwrap().sha256), "{why}");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            request_records::<serde_json::Value>(out.path(), &Manifest::read(out.path()).unwrap())
                .map(|_| ()),
            Err(TransferError::DamagedRequests(_))
        ));

        // an export without them names none
        let (b, out2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        exported(&store_with(b.path(), FILES), out2.path(), 1 << 20).await;
        let plain = Manifest::read(out2.path()).unwrap();
        assert_eq!(plain.requests, None);
        assert!(!std::fs::read_to_string(out2.path().join(MANIFEST))
            .unwrap()
            .contains("requests"));
        assert!(request_records::<serde_json::Value>(out2.path(), &plain)
            .unwrap()
            .is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_export_imports_whole_once_and_the_bundles_and_work_files_stay_home() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let from = store_with(a.path(), FILES);
        Store::new(a.path())
            .put_bytes("bundles/sha256/x.tar.gz", b"bundle")
            .unwrap();
        Store::new(a.path())
            .put_bytes("download-leases/x", b"lease")
            .unwrap();
        // small volumes: one object each
        let done = exported(&from, &out.path().join("x"), 4096).await;
        assert!(done.damaged.is_empty());
        assert_eq!(done.manifest.objects.len(), 3);
        assert_eq!(done.manifest.volumes.len(), 3);
        assert_eq!(
            Manifest::read(&out.path().join("x")).unwrap(),
            done.manifest
        );

        let to = SharedStore::Directory(Store::new(b.path()));
        let staging = b.path().join("tmp");
        let (_, first) = import(&to, &out.path().join("x"), &staging, &Progress::hidden())
            .await
            .unwrap();
        assert_eq!((first.written, first.present), (3, 0));
        assert!(first.refused.is_empty());
        assert_eq!(tree(b.path()), tree(a.path()));
        assert!(!b.path().join("bundles").exists());
        // stored with its digests recorded, as a download is
        let path = b.path().join(FILES[0].0);
        assert!(file_record::recorded_digests(&path).is_some());

        let (_, again) = import(&to, &out.path().join("x"), &staging, &Progress::hidden())
            .await
            .unwrap();
        assert_eq!((again.written, again.present), (0, 3));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_flipped_byte_refuses_that_object_only_and_a_missing_volume_imports_nothing() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let from = store_with(a.path(), FILES);
        let done = exported(&from, out.path(), 1 << 20).await;
        assert_eq!(done.manifest.volumes.len(), 1);
        // flip one byte of b's payload inside the volume
        let volume = out.path().join(&done.manifest.volumes[0].name);
        let mut bytes = std::fs::read(&volume).unwrap();
        let at = bytes
            .windows(3000)
            .position(|w| w.iter().all(|&x| x == 7))
            .unwrap()
            + 10;
        bytes[at] ^= 1;
        std::fs::write(&volume, bytes).unwrap();
        let to = SharedStore::Directory(Store::new(b.path()));
        let (_, done) = import(&to, out.path(), &b.path().join("tmp"), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(done.written, 2);
        assert_eq!(done.refused.len(), 1);
        assert_eq!(done.refused[0].0, "deps/npm/b/-/b-2.0.0.tgz");
        assert!(!b.path().join("deps/npm/b").exists());

        std::fs::remove_file(&volume).unwrap();
        let c = tempfile::tempdir().unwrap();
        let to = SharedStore::Directory(Store::new(c.path()));
        let missing = import(&to, out.path(), &c.path().join("tmp"), &Progress::hidden())
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("volume-00001.tar"),
            "{missing}"
        );
        assert!(list_directory(c.path()).unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_key_held_with_other_bytes_is_refused_and_left_alone() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let from = store_with(a.path(), FILES);
        exported(&from, out.path(), 1 << 20).await;
        let to = store_with(b.path(), &[("deps/npm/a/-/a-1.0.0.tgz", b"other bytes")]);
        let (_, done) = import(&to, out.path(), &b.path().join("tmp"), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(done.written, 2);
        assert_eq!(done.refused.len(), 1);
        assert!(
            done.refused[0].1.contains("other bytes"),
            "{:?}",
            done.refused
        );
        assert_eq!(
            std::fs::read(b.path().join("deps/npm/a/-/a-1.0.0.tgz")).unwrap(),
            b"other bytes"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_export_since_a_time_holds_what_was_stored_after_it_less_what_was_held() {
        let (a, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // a file written long ago and renamed into place now is stored now
        let late = a.path().join("tmp/late");
        std::fs::create_dir_all(late.parent().unwrap()).unwrap();
        std::fs::write(&late, FILES[1].1).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&late)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        let from = store_with(a.path(), &FILES[..1]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let since = Utc::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let dest = a.path().join(FILES[1].0);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::rename(&late, &dest).unwrap();
        store_with(a.path(), &FILES[2..]);
        let range = ExportRange {
            since: Some(since),
            until: Utc::now(),
            // what the previous export held is left out
            held: [FILES[2].0.to_string()].into(),
        };
        let done = export(
            &from,
            out.path(),
            "00000000000000a1",
            &range,
            1 << 20,
            None,
            &Progress::hidden(),
        )
        .await
        .unwrap();
        let keys: Vec<&str> = done
            .manifest
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(keys, [FILES[1].0]);
        assert_eq!(done.manifest.since, Some(since));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("700M"), Ok(700 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("").is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_object_store_exports_and_imports_like_a_directory_and_exports_no_damaged_object() {
        use crate::test_s3 as s3;
        let Some(moto) = s3::MotoServer::start("transfers") else {
            return;
        };
        let builder = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_region(s3::REGION)
            .with_access_key_id(s3::CREDENTIALS.0)
            .with_secret_access_key(s3::CREDENTIALS.1);
        let tier = crate::store::object::ObjectTier::s3(builder, &moto.bucket, "p").unwrap();
        let objects = SharedStore::Objects(tier.clone());
        let (a, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = store_with(a.path(), FILES);
        exported(&from, first.path(), 1 << 20).await;
        let staging = tempfile::tempdir().unwrap();
        let (_, into_s3) = import(&objects, first.path(), staging.path(), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(into_s3.written, 3);
        let (_, again) = import(&objects, first.path(), staging.path(), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!((again.written, again.present), (0, 3));

        // rot in the bucket, its sha256 kept: not carried across
        let rotten = FILES[0].0;
        let sha256 = tier.head(rotten).await.unwrap().unwrap().sha256.unwrap();
        moto.put_raw(
            &format!("p/{rotten}"),
            b"rotten",
            &[("sha256", &sha256.hex())],
        );
        let done = exported(&objects, second.path(), 1 << 20).await;
        assert_eq!(done.damaged.len(), 1);
        assert_eq!(done.damaged[0].0, rotten);
        let to = SharedStore::Directory(Store::new(c.path()));
        let (_, back) = import(
            &to,
            second.path(),
            &c.path().join("tmp"),
            &Progress::hidden(),
        )
        .await
        .unwrap();
        assert_eq!(back.written, 2);
        let mut expected = tree(a.path());
        expected.remove(rotten);
        assert_eq!(tree(c.path()), expected);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_file_that_rotted_in_a_directory_store_is_named_and_refused_on_the_far_side() {
        let (a, b, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let from = store_with(a.path(), FILES);
        // recorded when verified, then rotten in place: same size, same modification time
        let path = a.path().join(FILES[1].0);
        let meta = std::fs::metadata(&path).unwrap();
        let digests = FileDigests::of_file(&path).unwrap();
        file_record::record_digests(&path, &digests, &meta).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(meta.modified().unwrap())
            .unwrap();
        assert!(
            file_record::recorded_digests(&path).is_some(),
            "the record still stands"
        );

        let done = exported(&from, out.path(), 1 << 20).await;
        assert_eq!(done.damaged.len(), 1);
        assert_eq!(done.damaged[0].0, FILES[1].0);
        let to = SharedStore::Directory(Store::new(b.path()));
        let (_, imported) = import(&to, out.path(), &b.path().join("tmp"), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(imported.written, 2);
        assert_eq!(imported.refused.len(), 1);
        assert_eq!(imported.refused[0].0, FILES[1].0);
        assert!(!b.path().join(FILES[1].0).exists());
    }
}
