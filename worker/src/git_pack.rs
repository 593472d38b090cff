//! Streaming reads of whole (non-delta) blobs straight out of a repository's packfiles.
//!
//! libgit2 inflates a blob into one buffer and its packed-object reads have no streaming API, so
//! a 500 MB file would cost 500 MB of memory. A blob stored whole in a pack is one zlib stream at
//! an offset the pack index gives; it is inflated here in chunks and its object id re-computed
//! as it goes (a mismatch or a short stream is an error, never a short file). Blobs stored as
//! deltas need their base and are left to libgit2.
//!
//! Formats: `gitformat-pack(5)` (index version 2, pack versions 2 and 3).

use flate2::bufread::ZlibDecoder;
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const IDX_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const FANOUT_START: u64 = 8;
const NAMES_START: u64 = FANOUT_START + 256 * 4;
const OID_LEN: usize = 20;

const OBJ_BLOB: u8 = 3;
const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a valid pack file: {reason}")]
    Invalid { path: String, reason: String },
}

/// Where a blob is stored whole: its zlib stream in a pack file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedBlob {
    pub pack: PathBuf,
    /// Offset of the zlib stream (just past the entry header).
    pub data_offset: u64,
    /// The blob's size, from the entry header.
    pub size: u64,
    pub id: [u8; OID_LEN],
}

/// How a blob is stored in the repository's packs.
#[derive(Debug, PartialEq, Eq)]
pub enum Packed {
    Whole(PackedBlob),
    /// Stored as a delta against another object: only libgit2 can rebuild it.
    Delta,
    /// In no pack (a loose object, or another index version).
    Absent,
}

/// Look `id` (a SHA-1 object id) up in every pack of the repository at `git_dir`.
pub fn find_blob(git_dir: &Path, id: &[u8]) -> Result<Packed, PackError> {
    let Ok(id) = <[u8; OID_LEN]>::try_from(id) else {
        return Ok(Packed::Absent);
    };
    let pack_dir = git_dir.join("objects").join("pack");
    let entries = match std::fs::read_dir(&pack_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Packed::Absent),
        Err(source) => {
            return Err(PackError::Io {
                path: pack_dir.display().to_string(),
                source,
            })
        }
    };
    let mut indexes: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    indexes.sort();
    for idx in indexes {
        if let Some(offset) = index_lookup(&idx, &id)? {
            return entry_at(&idx.with_extension("pack"), offset, id);
        }
    }
    Ok(Packed::Absent)
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> PackError {
    PackError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read_u32(file: &File, at: u64, path: &Path) -> Result<u32, PackError> {
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, at).map_err(io_err(path))?;
    Ok(u32::from_be_bytes(b))
}

/// The pack offset of `id` from a version 2 index, by binary search on disk (an index is not
/// read whole: a large repository's is tens of megabytes).
fn index_lookup(idx: &Path, id: &[u8; OID_LEN]) -> Result<Option<u64>, PackError> {
    let file = File::open(idx).map_err(io_err(idx))?;
    let mut header = [0u8; 8];
    file.read_exact_at(&mut header, 0).map_err(io_err(idx))?;
    if header[..4] != IDX_MAGIC || header[4..] != 2u32.to_be_bytes() {
        // version 1 indexes (no header) are not written by libgit2
        return Ok(None);
    }
    let first = u64::from(id[0]);
    let lo = if first == 0 {
        0
    } else {
        read_u32(&file, FANOUT_START + (first - 1) * 4, idx)?
    };
    let hi = read_u32(&file, FANOUT_START + first * 4, idx)?;
    let count = u64::from(read_u32(&file, FANOUT_START + 255 * 4, idx)?);
    if lo > hi || u64::from(hi) > count {
        return Err(invalid(idx, "its fan-out table is not sorted"));
    }
    let (mut lo, mut hi) = (u64::from(lo), u64::from(hi));
    let mut name = [0u8; OID_LEN];
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        file.read_exact_at(&mut name, NAMES_START + mid * OID_LEN as u64)
            .map_err(io_err(idx))?;
        match name.cmp(id) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let offsets = NAMES_START + count * (OID_LEN as u64 + 4);
                let small = read_u32(&file, offsets + mid * 4, idx)?;
                if small & 0x8000_0000 == 0 {
                    return Ok(Some(u64::from(small)));
                }
                let large_at = offsets + count * 4 + u64::from(small & 0x7fff_ffff) * 8;
                let mut b = [0u8; 8];
                file.read_exact_at(&mut b, large_at).map_err(io_err(idx))?;
                return Ok(Some(u64::from_be_bytes(b)));
            }
        }
    }
    Ok(None)
}

/// Parse the entry header at `offset` of `pack`.
fn entry_at(pack: &Path, offset: u64, id: [u8; OID_LEN]) -> Result<Packed, PackError> {
    let file = File::open(pack).map_err(io_err(pack))?;
    let mut header = [0u8; 8];
    file.read_exact_at(&mut header, 0).map_err(io_err(pack))?;
    if &header[..4] != b"PACK" || !matches!(header[7], 2 | 3) || header[4..7] != [0, 0, 0] {
        return Err(invalid(pack, "its header is not PACK version 2 or 3"));
    }
    // type and size: 3 bits of type, then the size in little-endian groups of 7 bits
    let mut buf = [0u8; 10];
    let n = file.read_at(&mut buf, offset).map_err(io_err(pack))?;
    let Some(&first) = buf[..n].first() else {
        return Err(invalid(pack, format!("no object at offset {offset}")));
    };
    let kind = (first >> 4) & 0x7;
    let mut size = u64::from(first & 0x0f);
    let mut shift = 4;
    let mut used = 1;
    let mut more = first & 0x80 != 0;
    while more {
        let Some(&b) = buf[..n].get(used) else {
            return Err(invalid(
                pack,
                format!("the object size at offset {offset} is too long"),
            ));
        };
        size |= u64::from(b & 0x7f) << shift;
        shift += 7;
        used += 1;
        more = b & 0x80 != 0;
    }
    match kind {
        OBJ_BLOB => Ok(Packed::Whole(PackedBlob {
            pack: pack.to_path_buf(),
            data_offset: offset + used as u64,
            size,
            id,
        })),
        OBJ_OFS_DELTA | OBJ_REF_DELTA => Ok(Packed::Delta),
        other => Err(invalid(
            pack,
            format!("the object at offset {offset} is of type {other}, not a blob"),
        )),
    }
}

impl PackedBlob {
    /// The blob's content, inflated as it is read and checked against its object id.
    pub fn open(&self) -> io::Result<BlobReader> {
        let mut file = File::open(&self.pack)?;
        file.seek(SeekFrom::Start(self.data_offset))?;
        let mut hasher = Sha1::new();
        hasher.update(format!("blob {}\0", self.size).as_bytes());
        Ok(BlobReader {
            inflate: ZlibDecoder::new(BufReader::with_capacity(256 * 1024, file)),
            hasher,
            remaining: self.size,
            id: self.id,
            checked: false,
        })
    }
}

/// Reads exactly the blob's bytes; the end of the stream is reported only once the object id
/// and the end of the zlib stream check out.
pub struct BlobReader {
    inflate: ZlibDecoder<BufReader<File>>,
    hasher: Sha1,
    remaining: u64,
    id: [u8; OID_LEN],
    checked: bool,
}

impl BlobReader {
    fn check_end(&mut self) -> io::Result<()> {
        let mut extra = [0u8; 1];
        if self.inflate.read(&mut extra)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the packed blob is longer than its header says",
            ));
        }
        let digest: [u8; OID_LEN] = std::mem::take(&mut self.hasher).finalize().into();
        if digest != self.id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the packed blob {} has the object id {}: the pack is damaged",
                    hex::encode(self.id),
                    hex::encode(digest)
                ),
            ));
        }
        self.checked = true;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if !self.checked {
                self.check_end()?;
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inflate.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the packed blob ends before its size",
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Repository;

    /// A repository with `files` committed, fetched into a fresh one (so every object is in a
    /// pack, as after a real fetch). Returns (source dir, fetched repository).
    fn fetched(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Repository, git2::Oid) {
        let dir = tempfile::tempdir().unwrap();
        let src = Repository::init(dir.path().join("src")).unwrap();
        let mut index = src.index().unwrap();
        for (name, data) in files {
            let id = src.blob(data).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: data.len() as u32,
                id,
                flags: 0,
                flags_extended: 0,
                path: name.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        let tree = src.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::new("t", "t@t", &git2::Time::new(0, 0)).unwrap();
        let commit = src
            .commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        let dst = Repository::init(dir.path().join("dst")).unwrap();
        dst.remote_anonymous(dir.path().join("src").to_str().unwrap())
            .unwrap()
            .fetch(&["HEAD"], None, None)
            .unwrap();
        (dir, dst, commit)
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    fn blob_id(repo: &Repository, commit: git2::Oid, path: &str) -> git2::Oid {
        repo.find_commit(commit)
            .unwrap()
            .tree()
            .unwrap()
            .get_path(Path::new(path))
            .unwrap()
            .id()
    }

    #[test]
    fn streams_a_packed_blob_byte_for_byte() {
        let big = noise(3 << 20, 7);
        let (_dir, repo, commit) = fetched(&[("big.bin", big.clone()), ("small", b"x".to_vec())]);
        for (path, want) in [("big.bin", &big[..]), ("small", &b"x"[..])] {
            let id = blob_id(&repo, commit, path);
            let Packed::Whole(blob) = find_blob(repo.path(), id.as_bytes()).unwrap() else {
                panic!("{path} is not packed whole");
            };
            assert_eq!(blob.size, want.len() as u64);
            let mut got = Vec::new();
            blob.open().unwrap().read_to_end(&mut got).unwrap();
            assert!(got == want, "{path} differs");
        }
        let absent = [0x42u8; 20];
        assert_eq!(find_blob(repo.path(), &absent).unwrap(), Packed::Absent);
    }

    #[test]
    fn a_damaged_pack_is_an_error_never_a_short_file() {
        let big = noise(1 << 20, 9);
        let (_dir, repo, commit) = fetched(&[("big.bin", big)]);
        let id = blob_id(&repo, commit, "big.bin");
        let Packed::Whole(blob) = find_blob(repo.path(), id.as_bytes()).unwrap() else {
            panic!("not packed whole");
        };
        // another blob's id: the content inflates fine but does not hash to it
        let wrong = PackedBlob {
            id: [0u8; 20],
            ..blob.clone()
        };
        let err = std::io::copy(&mut wrong.open().unwrap(), &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // a longer size than stored: the stream ends first
        let longer = PackedBlob {
            size: blob.size + 1,
            ..blob.clone()
        };
        let err = std::io::copy(&mut longer.open().unwrap(), &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // flipped bytes in the middle of the zlib stream
        let mut bytes = std::fs::read(&blob.pack).unwrap();
        let at = (blob.data_offset + blob.size / 2) as usize;
        bytes[at] ^= 0xff;
        bytes[at + 1] ^= 0xff;
        let copy = blob.pack.with_file_name("copy.pack");
        std::fs::write(&copy, bytes).unwrap();
        let damaged = PackedBlob { pack: copy, ..blob };
        assert!(std::io::copy(&mut damaged.open().unwrap(), &mut std::io::sink()).is_err());
    }

    #[test]
    fn delta_entries_are_left_to_libgit2() {
        // two versions of a compressible file in one pack: the second is stored as a delta
        let mut v1: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let (dir, _, _) = fetched(&[("f", v1.clone())]);
        let src = Repository::open(dir.path().join("src")).unwrap();
        v1[1000] ^= 1;
        let id2 = src.blob(&v1).unwrap();
        let mut pb = src.packbuilder().unwrap();
        let head = src.head().unwrap().peel_to_commit().unwrap();
        pb.insert_tree(head.tree_id()).unwrap();
        pb.insert_object(id2, None).unwrap();
        let out = dir.path().join("packed");
        std::fs::create_dir_all(out.join("objects/pack")).unwrap();
        let mut buf = git2::Buf::new();
        pb.write_buf(&mut buf).unwrap();
        let odb_dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(odb_dir.path()).unwrap();
        let odb = repo.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        std::io::Write::write_all(&mut writer, &buf).unwrap();
        writer.commit().unwrap();
        let first = head.tree().unwrap().get_path(Path::new("f")).unwrap().id();
        let kinds = [
            find_blob(repo.path(), first.as_bytes()).unwrap(),
            find_blob(repo.path(), id2.as_bytes()).unwrap(),
        ];
        assert!(kinds.contains(&Packed::Delta), "{kinds:?}");
        assert!(
            kinds.iter().any(|k| matches!(k, Packed::Whole(_))),
            "{kinds:?}"
        );
    }
}
