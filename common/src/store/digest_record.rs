//! What a stored file was verified to hash to, recorded on the file itself (an extended
//! attribute, so it goes wherever the inode goes and dies with it): a request that finds the
//! file again checks its lockfile's digests against the record instead of reading every byte
//! again (a warm request of 1,000 npm packages spent a third of its time re-hashing).
//!
//! The record names the file's size and modification time when it was made: a file written
//! since is not taken at its word, it is hashed again. Bytes that rot without a write are
//! caught where they are read: the bundle hashes every stored file it streams and checks the
//! record's sha256 ([`Recorded::sha256`]). Where the filesystem keeps no extended attributes,
//! there is no record and every request hashes the file, as before.

use crate::digest::FileDigests;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const ATTRIBUTE: &str = "user.larder.digests";
const VERSION: u8 = 1;

/// Record `digests` (computed from the file at `path` as it is now) on it.
pub fn record(path: &Path, digests: &FileDigests) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.len() != digests.size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} has {} bytes, its digests were taken of {}",
                path.display(),
                meta.len(),
                digests.size
            ),
        ));
    }
    let mut value = vec![VERSION];
    value.extend_from_slice(&stamp(&meta));
    value.extend_from_slice(&digests.to_bytes());
    xattr::set(path, ATTRIBUTE, &value)
}

/// The digests recorded on the file at `path`, if it has a record made since its last write.
pub fn recorded(path: &Path) -> Option<FileDigests> {
    let value = xattr::get(path, ATTRIBUTE).ok()??;
    let meta = std::fs::metadata(path).ok()?;
    let (&version, rest) = value.split_first()?;
    let (when, digests) = rest.split_at_checked(STAMP)?;
    if version != VERSION || when != stamp(&meta) {
        return None;
    }
    FileDigests::from_bytes(digests).filter(|d| d.size == meta.len())
}

/// Whether the filesystem of the directory `dir` keeps records (user extended attributes).
pub fn kept_in(dir: &Path) -> bool {
    tempfile::NamedTempFile::new_in(dir)
        .is_ok_and(|probe| xattr::set(probe.path(), ATTRIBUTE, &[]).is_ok())
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
        record(&path, &digests).unwrap();
        assert_eq!(recorded(&path), Some(digests.clone()));
        // a hard link is the same inode: the same record
        let link = dir.path().join("link.tgz");
        std::fs::hard_link(&path, &link).unwrap();
        assert_eq!(recorded(&link), Some(digests.clone()));

        // rewritten in place (same size): the record no longer speaks for it
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &file, b"TARBALL").unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(recorded(&path), None);

        // digests of other bytes than the file holds are refused
        let other = FileDigests::of_reader(&b"other size"[..]).unwrap();
        assert!(record(&path, &other).is_err());
        // none at all
        assert_eq!(recorded(&dir.path().join("missing")), None);
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
