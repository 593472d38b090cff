//! A stored file's tar entry as a gzip member, compressed once and kept in the store: a
//! bundle copies members instead of compressing its dependencies again on every request.
//!
//! A member is named by what it is made of (its path in the bundle and the stored file's key)
//! and recorded with its own sha256 and the stored file's size and modification time, so a
//! member is rebuilt when the file under it was replaced, and a damaged one is caught as its
//! bytes are copied into a bundle.

use common::archive::TarGzWriter;
use common::Store;
use sha2::{Digest, Sha256};
use std::io;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

/// Part of every member's name: a change to how members are written (tar headers, gzip
/// parameters) changes it, and old members are simply no longer found.
const FORMAT: &[u8] = b"larder-tar-member-1";

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("the stored file {key} cannot be read: {source}")]
    Source { key: String, source: io::Error },
    #[error("the stored file {0} is not a regular file")]
    NotAFile(String),
    #[error("the bundle member of {key} cannot be written: {source}")]
    Write { key: String, source: io::Error },
}

/// A member ready to be copied into a bundle.
#[derive(Debug)]
pub struct Member {
    /// The member's own store key (its `.sha256` record is beside it).
    pub key: String,
    pub path: PathBuf,
    pub sha256: [u8; 32],
}

/// The member's record: its digest and the stored file it was made from.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    sha256: [u8; 32],
    source_len: u64,
    source_mtime_ns: u128,
}

impl Record {
    fn to_line(&self) -> String {
        format!(
            "{} {} {}\n",
            hex::encode(self.sha256),
            self.source_len,
            self.source_mtime_ns
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(parts.next()?, &mut sha256).ok()?;
        let record = Self {
            sha256,
            source_len: parts.next()?.parse().ok()?,
            source_mtime_ns: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(record)
    }
}

/// The store key of the member holding `source_key` at `bundle_path`.
pub fn member_key(bundle_path: &str, source_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [FORMAT, bundle_path.as_bytes(), source_key.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let name = hex::encode(h.finalize());
    format!("bundle-members/{}/{name}.tar.gz", &name[..2])
}

fn record_key(member_key: &str) -> String {
    format!("{member_key}.sha256")
}

/// The member of the stored file `source_key` at `bundle_path`: the kept one when its record
/// matches the stored file, else made now (and kept).
pub fn member_for(
    store: &Store,
    bundle_path: &str,
    source_key: &str,
) -> Result<Member, MemberError> {
    let source_err = |source| MemberError::Source {
        key: source_key.to_string(),
        source,
    };
    let source = store
        .path(source_key)
        .map_err(|e| source_err(io::Error::other(e.to_string())))?;
    let meta = std::fs::metadata(&source).map_err(source_err)?;
    if !meta.is_file() {
        return Err(MemberError::NotAFile(source_key.to_string()));
    }
    let mtime = meta
        .modified()
        .map_err(source_err)?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let key = member_key(bundle_path, source_key);
    let write_err = |source| MemberError::Write {
        key: source_key.to_string(),
        source,
    };
    let path = store
        .path(&key)
        .map_err(|e| write_err(io::Error::other(e.to_string())))?;
    let kept = store
        .path(&record_key(&key))
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| Record::parse(&t));
    if let Some(r) = kept {
        if r.source_len == meta.len() && r.source_mtime_ns == mtime && path.is_file() {
            return Ok(Member {
                key,
                path,
                sha256: r.sha256,
            });
        }
    }
    let temp = store.temp_file().map_err(write_err)?;
    let mut writer = TarGzWriter::member(temp.reopen().map_err(write_err)?);
    writer
        .append_file(bundle_path, &source)
        .map_err(write_err)?;
    let (_, sha256, _) = writer.finish().map_err(write_err)?;
    let store_err = |e: common::store::StoreError| write_err(io::Error::other(e.to_string()));
    store.persist(temp, &key).map_err(store_err)?;
    let record = Record {
        sha256,
        source_len: meta.len(),
        source_mtime_ns: mtime,
    };
    store
        .put_bytes(&record_key(&key), record.to_line().as_bytes())
        .map_err(store_err)?;
    tracing::debug!(member = %key, source = source_key, "bundle member made");
    Ok(Member { key, path, sha256 })
}

/// The store key of the member holding, at `bundle_path`, what `cache_key` names (a tree or
/// file made from stored inputs: a vendored crate, a converted archive).
pub fn derived_member_key(bundle_path: &str, cache_key: &str) -> String {
    member_key(bundle_path, &format!("derived:{cache_key}"))
}

/// The member of what `cache_key` names at `bundle_path`: the kept one when its bytes have
/// their recorded sha256, else made now by `build`, which writes it at
/// `<the directory it is given>/<last part of bundle_path>` (a directory or a file).
pub fn derived_member<E: From<MemberError>>(
    store: &Store,
    bundle_path: &str,
    cache_key: &str,
    build: impl FnOnce(&std::path::Path) -> Result<(), E>,
) -> Result<Member, E> {
    let key = derived_member_key(bundle_path, cache_key);
    let write_err = |source| MemberError::Write {
        key: key.clone(),
        source,
    };
    let store_err = |e: common::store::StoreError| write_err(io::Error::other(e.to_string()));
    let path = store.path(&key).map_err(store_err)?;
    let kept = store
        .path(&record_key(&key))
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| Record::parse(&t));
    if let Some(r) = kept {
        // read once here (its compressed bytes), so a damaged one is made again now, while
        // `build` can still make it
        let intact = std::fs::File::open(&path)
            .and_then(|mut f| {
                let mut h = Sha256::new();
                io::copy(&mut f, &mut h)?;
                Ok(<[u8; 32]>::from(h.finalize()))
            })
            .is_ok_and(|d| d == r.sha256);
        if intact {
            return Ok(Member {
                key,
                path,
                sha256: r.sha256,
            });
        }
        tracing::warn!(member = %key, "a kept bundle member is damaged; making it again");
    }
    let work = store.temp_dir("derive-").map_err(write_err)?;
    build(work.path())?;
    let name = bundle_path.rsplit('/').next().unwrap_or(bundle_path);
    let built = work.path().join(name);
    let temp = store.temp_file().map_err(write_err)?;
    let mut writer = TarGzWriter::member(temp.reopen().map_err(write_err)?);
    if built.is_dir() {
        writer.append_tree(bundle_path, &built, &|_| false)
    } else {
        writer.append_file(bundle_path, &built)
    }
    .map_err(write_err)?;
    let (_, sha256, _) = writer.finish().map_err(write_err)?;
    store.persist(temp, &key).map_err(store_err)?;
    let record = Record {
        sha256,
        source_len: 0,
        source_mtime_ns: 0,
    };
    store
        .put_bytes(&record_key(&key), record.to_line().as_bytes())
        .map_err(store_err)?;
    tracing::debug!(member = %key, cache_key, "bundle member made");
    Ok(Member { key, path, sha256 })
}

/// Forget a member found damaged: the next bundle makes it again.
pub fn discard(store: &Store, member: &Member) {
    for key in [record_key(&member.key), member.key.clone()] {
        if let Err(e) = store.remove(&key) {
            tracing::warn!(key, error = %e, "could not remove a damaged bundle member");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_made_once_and_remade_when_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.put_bytes("deps/npm/a-1.0.0.tgz", b"tarball").unwrap();
        let one = member_for(&store, "deps/npm/a-1.0.0.tgz", "deps/npm/a-1.0.0.tgz").unwrap();
        let made = std::fs::metadata(&one.path).unwrap().modified().unwrap();
        let two = member_for(&store, "deps/npm/a-1.0.0.tgz", "deps/npm/a-1.0.0.tgz").unwrap();
        assert_eq!(one.sha256, two.sha256);
        assert_eq!(
            std::fs::metadata(&two.path).unwrap().modified().unwrap(),
            made,
            "kept, not made again"
        );
        assert_eq!(
            <[u8; 32]>::from(Sha256::digest(std::fs::read(&two.path).unwrap())),
            two.sha256
        );
        // another path in the bundle is another member
        let elsewhere = member_for(&store, "deps/other/a.tgz", "deps/npm/a-1.0.0.tgz").unwrap();
        assert_ne!(elsewhere.key, one.key);
        // the stored file replaced (another size): the member follows it
        store
            .put_bytes("deps/npm/a-1.0.0.tgz", b"tarball 2")
            .unwrap();
        let three = member_for(&store, "deps/npm/a-1.0.0.tgz", "deps/npm/a-1.0.0.tgz").unwrap();
        assert_ne!(three.sha256, one.sha256);
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let r = Record {
            sha256: [7; 32],
            source_len: 12,
            source_mtime_ns: 1_700_000_000_123_456_789,
        };
        assert_eq!(Record::parse(&r.to_line()), Some(r));
        for bad in [
            "",
            "zz 1 2",
            &format!("{} 1", "0".repeat(64)),
            &format!("{} 1 2 3", "0".repeat(64)),
        ] {
            assert_eq!(Record::parse(bad), None, "{bad}");
        }
    }
}
