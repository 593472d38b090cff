//! What a layout makes from stored inputs (a vendored crate, a Yarn cache zip), kept in the
//! store as a ready gzip member of tar entries: made and compressed once, copied into every
//! bundle that needs it after.
//!
//! A member is named by what it is made of (its path in the bundle and a key naming its inputs)
//! and recorded with its sha256: checked when it is reused and again as it is copied.

use common::archive::TarGzWriter;
use common::Store;
use sha2::{Digest, Sha256};
use std::io;
use std::path::PathBuf;

/// Part of every member's name: a change to how members are written (tar headers, gzip
/// parameters) changes it, and old members are simply no longer found.
const FORMAT: &[u8] = b"larder-tar-member-1";

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("the bundle member {key} cannot be written: {source}")]
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

/// The member's record: its sha256.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    sha256: [u8; 32],
}

impl Record {
    fn to_line(&self) -> String {
        format!("{}\n", hex::encode(self.sha256))
    }

    fn parse(text: &str) -> Option<Self> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(text.trim_end_matches('\n'), &mut sha256).ok()?;
        Some(Self { sha256 })
    }
}

/// The store key of the member holding, at `bundle_path`, what `cache_key` names (a tree or
/// file made from stored inputs).
pub fn derived_member_key(bundle_path: &str, cache_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [FORMAT, bundle_path.as_bytes(), cache_key.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let name = hex::encode(h.finalize());
    format!("bundle-members/{}/{name}.tar.gz", &name[..2])
}

fn record_key(member_key: &str) -> String {
    format!("{member_key}.sha256")
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
    let record = Record { sha256 };
    store
        .put_bytes(&record_key(&key), record.to_line().as_bytes())
        .map_err(store_err)?;
    tracing::debug!(member = %key, cache_key, "bundle member made");
    Ok(Member { key, path, sha256 })
}

/// Forget a member found damaged: the next bundle needing it makes it again.
pub fn discard(store: &Store, member_key: &str) {
    for key in [record_key(member_key), member_key.to_string()] {
        if let Err(e) = store.remove(&key) {
            tracing::warn!(key, error = %e, "could not remove a damaged bundle member");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let r = Record { sha256: [7; 32] };
        assert_eq!(Record::parse(&r.to_line()), Some(r));
        for bad in ["", "zz", &format!("{} 1", "0".repeat(64)), &"0".repeat(63)] {
            assert_eq!(Record::parse(bad), None, "{bad}");
        }
    }
}
