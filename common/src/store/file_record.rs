//! What was learnt from a stored file when it was verified, recorded on the file itself (an
//! extended attribute per record, so it goes wherever the inode goes and dies with it): its
//! digests ([`record_digests`]), and what a package manager read from it (an npm tarball's
//! manifest). A request that finds the file again takes the record's word instead of reading
//! every byte again (a warm request of 1,000 npm packages spent a third of its time re-hashing
//! and a quarter re-reading manifests).
//!
//! A record names the file's size and modification time when it was made: a file written
//! since is not taken at its word, it is read again. Bytes that rot without a write are
//! caught where they are read: the bundle hashes every stored file it streams and checks the
//! recorded sha256. Where the filesystem keeps no extended attributes (or a record is too
//! large for it), there is no record and every request reads the file, as before.

use crate::digest::FileDigests;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const PREFIX: &str = "user.larder.";
const VERSION: u8 = 1;

/// Record `value` as `name` on the file at `path`, for the file as `meta` saw it (taken before
/// its bytes were read): a write since changes the stamp, and the record speaks for nothing.
pub fn record(path: &Path, name: &str, value: &[u8], meta: &Metadata) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(1 + STAMP + value.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(&stamp(meta));
    bytes.extend_from_slice(value);
    xattr::set(path, format!("{PREFIX}{name}"), &bytes)
}

/// The record `name` of the file at `path`, if it has one made since its last write.
pub fn recorded(path: &Path, name: &str) -> Option<Vec<u8>> {
    read(path, name).map(|(value, _)| value)
}

/// The record and the file's metadata: one `getxattr` into a block-sized buffer (ext4 keeps no
/// larger value) and one `statx`, per record of each of thousands of files a warm request reads.
fn read(path: &Path, name: &str) -> Option<(Vec<u8>, Metadata)> {
    let attribute = format!("{PREFIX}{name}");
    let mut buf = [0u8; 4096];
    let larger;
    let value = match rustix::fs::getxattr(path, attribute.as_str(), &mut buf[..]) {
        Ok(n) => &buf[..n],
        // a filesystem that keeps larger values (XFS, btrfs)
        Err(rustix::io::Errno::RANGE) => {
            larger = xattr::get(path, &attribute).ok()??;
            &larger[..]
        }
        Err(_) => return None,
    };
    let meta = std::fs::metadata(path).ok()?;
    Some((stamped(value, &meta)?.to_vec(), meta))
}

/// The value of a record made of the file `meta` describes, as it is now.
fn stamped<'v>(record: &'v [u8], meta: &Metadata) -> Option<&'v [u8]> {
    let (&version, rest) = record.split_first()?;
    let (when, value) = rest.split_at_checked(STAMP)?;
    (version == VERSION && when == stamp(meta)).then_some(value)
}

/// [`recorded_digests`] of an open file: the very file a reader streams, whichever file its
/// path names by now.
pub fn recorded_digests_of(file: &std::fs::File) -> Option<FileDigests> {
    use xattr::FileExt;
    let record = file.get_xattr(format!("{PREFIX}{DIGESTS}")).ok()??;
    let meta = file.metadata().ok()?;
    FileDigests::from_bytes(stamped(&record, &meta)?).filter(|d| d.size == meta.len())
}

const DIGESTS: &str = "digests";

/// Record `digests` (computed from the file at `path` as `meta` saw it before it was read) on it.
pub fn record_digests(path: &Path, digests: &FileDigests, meta: &Metadata) -> io::Result<()> {
    let size = meta.len();
    if size != digests.size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} has {size} bytes, its digests were taken of {}",
                path.display(),
                digests.size
            ),
        ));
    }
    record(path, DIGESTS, &digests.to_bytes(), meta)
}

/// The digests recorded on the file at `path`, if it has a record made since its last write.
pub fn recorded_digests(path: &Path) -> Option<FileDigests> {
    let (value, meta) = read(path, DIGESTS)?;
    FileDigests::from_bytes(&value).filter(|d| d.size == meta.len())
}

/// Whether the filesystem of the directory `dir` keeps records (user extended attributes).
pub fn kept_in(dir: &Path) -> bool {
    tempfile::NamedTempFile::new_in(dir)
        .is_ok_and(|probe| xattr::set(probe.path(), format!("{PREFIX}probe"), &[]).is_ok())
}

const STAMP: usize = 8 + 8 + 8;

/// Size and modification time (seconds, nanoseconds): what any write changes.
fn stamp(meta: &Metadata) -> [u8; STAMP] {
    let mut out = [0u8; STAMP];
    out[..8].copy_from_slice(&meta.len().to_le_bytes());
    out[8..16].copy_from_slice(&meta.mtime().to_le_bytes());
    out[16..].copy_from_slice(&meta.mtime_nsec().to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_record_holds_until_the_file_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tgz");
        std::fs::write(&path, b"tarball").unwrap();
        let digests = FileDigests::of_file(&path).unwrap();
        if !kept_in(dir.path()) {
            return;
        }
        record_digests(&path, &digests, &std::fs::metadata(&path).unwrap()).unwrap();
        assert_eq!(recorded_digests(&path), Some(digests.clone()));
        // a hard link is the same inode: the same record
        let link = dir.path().join("link.tgz");
        std::fs::hard_link(&path, &link).unwrap();
        assert_eq!(recorded_digests(&link), Some(digests.clone()));

        // rewritten in place (same size): the record no longer speaks for it
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &file, b"TARBALL").unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(recorded_digests(&path), None);

        // digests of other bytes than the file holds are refused
        let other = FileDigests::of_reader(&b"other size"[..]).unwrap();
        assert!(record_digests(&path, &other, &std::fs::metadata(&path).unwrap()).is_err());
        // none at all
        assert_eq!(recorded_digests(&dir.path().join("missing")), None);
    }

    #[test]
    fn digests_round_trip_with_and_without_sha384() {
        let all = FileDigests::of_reader(&b"x"[..]).unwrap();
        assert_eq!(FileDigests::from_bytes(&all.to_bytes()), Some(all));
        let some = crate::digest::Hasher::for_expected(&Default::default()).finish();
        assert_eq!(FileDigests::from_bytes(&some.to_bytes()), Some(some));
        assert_eq!(FileDigests::from_bytes(b"short"), None);
    }
}
