//! The one checked routine that unpacks archives, and the deterministic tarball writer.

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive entry {0:?} has an unsafe path")]
    UnsafePath(String),
    #[error("the archive entry {0:?} is a link that points outside the archive")]
    UnsafeLink(String),
    #[error("the archive entry {0:?} has an unsupported type")]
    UnsupportedEntry(String),
    #[error("the archive entry {path:?} is larger than the limit of {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("the archive unpacks to more than {0} bytes")]
    TotalTooLarge(u64),
    #[error("the archive could not be read: {0}")]
    Io(#[from] io::Error),
}

/// What an unpacked archive may contain.
#[derive(Clone, Copy, Debug)]
pub struct UnpackLimits {
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
    /// Keep symlinks (whatever their target) for a later check; otherwise links must stay inside.
    pub keep_any_symlink: bool,
    /// Leave out every `.git` directory (and what is below it): a repository's objects are a
    /// second copy of its files that only some consumers need.
    pub without_git_dirs: bool,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_entry_bytes: 4 << 30,
            max_total_bytes: 16 << 30,
            keep_any_symlink: false,
            without_git_dirs: false,
        }
    }
}

/// A relative path made only of normal components (a leading `./` is dropped).
pub fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Lexically resolve `target` of a link living at `link` (both relative to the same root);
/// `None` when it climbs above the root or is absolute.
pub fn resolve_link_target(link: &Path, target: &Path) -> Option<PathBuf> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<_> = link
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(_) => parts.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Unpack a `.tar.gz` into `dest` (created if missing).
pub fn unpack_tar_gz(
    archive: &Path,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<(), ArchiveError> {
    let file = File::open(archive)?;
    unpack_tar(MultiGzDecoder::new(io::BufReader::new(file)), dest, limits)
}

/// Unpack a tar stream into `dest`, refusing absolute paths, `..`, writes through links,
/// links leaving `dest` (unless kept for a later check), devices and oversized entries.
pub fn unpack_tar(
    reader: impl Read,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<(), ArchiveError> {
    fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(reader);
    let mut total = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let name = raw.to_string_lossy().into_owned();
        let Some(rel) = safe_relative(&raw) else {
            if raw.components().all(|c| matches!(c, Component::CurDir)) {
                continue;
            }
            return Err(ArchiveError::UnsafePath(name));
        };
        if limits.without_git_dirs && rel.components().any(|c| c.as_os_str() == ".git") {
            continue;
        }
        ensure_no_link_ancestor(dest, &rel, &name)?;
        let out = dest.join(&rel);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&out)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.header().size()?;
                if size > limits.max_entry_bytes {
                    return Err(ArchiveError::TooLarge {
                        path: name,
                        limit: limits.max_entry_bytes,
                    });
                }
                total += size;
                if total > limits.max_total_bytes {
                    return Err(ArchiveError::TotalTooLarge(limits.max_total_bytes));
                }
                if let Some(parent) = out.parent() {
                    fs::create_dir_all(parent)?;
                }
                remove_existing(&out)?;
                let mut file = File::create(&out)?;
                let copied = io::copy(
                    &mut (&mut entry).take(limits.max_entry_bytes + 1),
                    &mut file,
                )?;
                if copied > limits.max_entry_bytes {
                    return Err(ArchiveError::TooLarge {
                        path: name,
                        limit: limits.max_entry_bytes,
                    });
                }
                let mode = entry.header().mode().unwrap_or(0o644);
                set_mode(&out, if mode & 0o111 != 0 { 0o755 } else { 0o644 })?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| ArchiveError::UnsafeLink(name.clone()))?;
                if !limits.keep_any_symlink && resolve_link_target(&rel, &target).is_none() {
                    return Err(ArchiveError::UnsafeLink(name));
                }
                if let Some(parent) = out.parent() {
                    fs::create_dir_all(parent)?;
                }
                remove_existing(&out)?;
                symlink(&target, &out)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            _ => return Err(ArchiveError::UnsupportedEntry(name)),
        }
    }
    Ok(())
}

fn ensure_no_link_ancestor(dest: &Path, rel: &Path, name: &str) -> Result<(), ArchiveError> {
    let mut current = dest.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(c) = components.next() {
        if components.peek().is_none() {
            break;
        }
        current.push(c);
        if let Ok(meta) = fs::symlink_metadata(&current) {
            if meta.file_type().is_symlink() {
                return Err(ArchiveError::UnsafePath(name.to_string()));
            }
        }
    }
    Ok(())
}

fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }
    pub fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.written)
    }
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// The sha256 of what was read, and how many bytes.
    pub(crate) fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Per relative path, the content standing in for a placeholder file: (exact size, reader).
pub type Substitutions<'a> = dyn Fn(&Path) -> Option<io::Result<(u64, Box<dyn Read>)>> + 'a;

/// Yields exactly `remaining` bytes of `inner`, or an error: the tar writer pads a short entry
/// with zeros and would otherwise write a damaged archive without a word.
struct ExactSize<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut extra = [0u8; 1];
            return match self.inner.read(&mut extra)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "an archive entry is longer than its size",
                )),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "an archive entry is shorter than its size",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Passes writes through until sealed, then drops them: how a tar builder finishes without
/// its end-of-archive blocks (the `tar` crate always writes them).
struct Sealable<W> {
    inner: W,
    sealed: bool,
}

impl<W: Write> Write for Sealable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.sealed {
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The gzip parameters of every archive and member Larder writes: the same bytes for the same
/// entries, whichever path wrote them.
fn gzip<W: Write>(out: W) -> GzEncoder<W> {
    gzip_at(out, Compression::new(6))
}

fn gzip_at<W: Write>(out: W, level: Compression) -> GzEncoder<W> {
    GzBuilder::new().mtime(0).write(out, level)
}

/// The last gzip member of a bundle made of members: tar's end-of-archive (two zero blocks).
pub fn end_of_archive_member() -> Vec<u8> {
    let mut gz = gzip(Vec::new());
    gz.write_all(&[0u8; 1024]).expect("writing to a Vec");
    gz.finish().expect("writing to a Vec")
}

/// Writes a byte-reproducible `.tar.gz`: sorted entries, fixed owners and times, streamed.
/// Or, made by [`member`](Self::member), one gzip member of tar entries without the
/// end-of-archive: concatenated members and [`end_of_archive_member`] are a `.tar.gz` (gzip
/// readers read every member of a stream, RFC 1952 §2.2).
pub struct TarGzWriter<W: Write> {
    builder: tar::Builder<Sealable<GzEncoder<HashingWriter<BufWriter<W>>>>>,
    is_member: bool,
}

impl<W: Write> TarGzWriter<W> {
    pub fn new(out: W) -> Self {
        Self::with(out, false, Compression::new(6))
    }

    /// A gzip member of entries, without tar's end-of-archive.
    pub fn member(out: W) -> Self {
        Self::with(out, true, Compression::new(6))
    }

    /// A member whose deflate blocks are stored, not compressed: for entries that are
    /// compressed archives already (a tarball, a wheel, a module zip), which compressing again
    /// would not make smaller, written at the speed of a copy.
    pub fn stored_member(out: W) -> Self {
        Self::with(out, true, Compression::none())
    }

    fn with(out: W, is_member: bool, level: Compression) -> Self {
        let gz = gzip_at(HashingWriter::new(BufWriter::new(out)), level);
        let mut builder = tar::Builder::new(Sealable {
            inner: gz,
            sealed: false,
        });
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        Self { builder, is_member }
    }

    /// Append the file at `path` (a regular file) under the archive name `name`.
    pub fn append_file(&mut self, name: &str, path: &Path) -> io::Result<()> {
        self.builder.append_path_with_name(path, name)
    }

    /// [`append_file`](Self::append_file) (the same entry), returning the sha256 of the bytes
    /// it streamed (what a caller checks a file against without reading it twice) and the
    /// metadata of the file it read.
    pub fn append_file_hashed(
        &mut self,
        name: &str,
        path: &Path,
    ) -> io::Result<([u8; 32], fs::Metadata)> {
        let file = fs::File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        let mut hashing = HashingReader::new(file);
        let exact = ExactSize {
            inner: &mut hashing,
            remaining: meta.len(),
        };
        self.builder.append_data(&mut header, name, exact)?;
        Ok((hashing.hasher.finalize().into(), meta))
    }

    /// Append the tree at `dir` under the archive name `prefix`, in sorted order.
    /// `skip` decides, per relative path, whether to leave an entry (and what is below it) out.
    pub fn append_tree(
        &mut self,
        prefix: &str,
        dir: &Path,
        skip: &dyn Fn(&Path) -> bool,
    ) -> io::Result<()> {
        self.append_tree_substituted(prefix, dir, skip, &|_| None)
    }

    /// [`append_tree`](Self::append_tree), where `substitute` may give, per relative path of a
    /// regular file, the content that stands in for it: its exact size and a reader (the file
    /// on disk is then only a placeholder for the path and mode). A reader that yields another
    /// number of bytes is an error.
    pub fn append_tree_substituted(
        &mut self,
        prefix: &str,
        dir: &Path,
        skip: &dyn Fn(&Path) -> bool,
        substitute: &Substitutions<'_>,
    ) -> io::Result<()> {
        self.append_dir_entry(prefix, dir)?;
        self.append_children(prefix, dir, Path::new(""), skip, substitute)
    }

    fn append_children(
        &mut self,
        prefix: &str,
        root: &Path,
        rel: &Path,
        skip: &dyn Fn(&Path) -> bool,
        substitute: &Substitutions<'_>,
    ) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let child_rel = rel.join(&name);
            if skip(&child_rel) {
                continue;
            }
            let full = root.join(&child_rel);
            let archive_name = format!("{prefix}/{}", child_rel.to_string_lossy());
            let meta = fs::symlink_metadata(&full)?;
            if meta.is_dir() {
                self.append_dir_entry(&archive_name, &full)?;
                self.append_children(prefix, root, &child_rel, skip, substitute)?;
            } else if let Some(content) = meta.is_file().then(|| substitute(&child_rel)).flatten() {
                let (size, reader) = content?;
                let mut header = tar::Header::new_gnu();
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
                header.set_size(size);
                let exact = ExactSize {
                    inner: reader,
                    remaining: size,
                };
                self.builder
                    .append_data(&mut header, &archive_name, exact)?;
            } else {
                self.builder.append_path_with_name(&full, &archive_name)?;
            }
        }
        Ok(())
    }

    fn append_dir_entry(&mut self, name: &str, dir: &Path) -> io::Result<()> {
        self.builder.append_path_with_name(dir, name)
    }

    /// A regular file of `bytes` (mode 0644) under the archive name `name`.
    pub fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(1_153_704_088);
        header.set_size(bytes.len() as u64);
        self.builder.append_data(&mut header, name, bytes)
    }

    /// An empty directory entry.
    pub fn append_empty_dir(&mut self, name: &str) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_mtime(1_153_704_088);
        header.set_size(0);
        self.builder.append_data(&mut header, name, io::empty())
    }

    /// Finish the archive; returns the writer, the SHA-256 of the `.tar.gz` and its size.
    pub fn finish(mut self) -> io::Result<(W, [u8; 32], u64)> {
        self.builder.get_mut().sealed = self.is_member;
        let gz = self.builder.into_inner()?.inner;
        let hashing = gz.finish()?;
        let (buf, digest, size) = hashing.finish();
        let inner = buf.into_inner().map_err(|e| e.into_error())?;
        Ok((inner, digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // set_path refuses `..`, so write the raw name bytes.
            let name = &mut h.as_gnu_mut().unwrap().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn refuses_escapes() {
        let cases: Vec<Vec<u8>> = vec![
            tar_with(&[("../evil", tar::EntryType::Regular, b"x", None)]),
            tar_with(&[("/abs", tar::EntryType::Regular, b"x", None)]),
            tar_with(&[("l", tar::EntryType::Symlink, b"", Some("../../etc"))]),
            tar_with(&[("l", tar::EntryType::Symlink, b"", Some("/etc"))]),
            tar_with(&[("d", tar::EntryType::Char, b"", None)]),
        ];
        for tar in cases {
            let dir = tempfile::tempdir().unwrap();
            assert!(unpack_tar(&tar[..], dir.path(), UnpackLimits::default()).is_err());
        }
    }

    #[test]
    fn refuses_write_through_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_with(&[
            ("a", tar::EntryType::Symlink, b"", Some(".")),
            ("a/b", tar::EntryType::Regular, b"x", None),
        ]);
        let limits = UnpackLimits {
            keep_any_symlink: true,
            ..Default::default()
        };
        assert!(matches!(
            unpack_tar(&tar[..], dir.path(), limits),
            Err(ArchiveError::UnsafePath(_))
        ));
    }

    #[test]
    fn limits_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_with(&[("big", tar::EntryType::Regular, &[0u8; 100], None)]);
        let limits = UnpackLimits {
            max_entry_bytes: 10,
            ..Default::default()
        };
        assert!(matches!(
            unpack_tar(&tar[..], dir.path(), limits),
            Err(ArchiveError::TooLarge { .. })
        ));
    }

    #[test]
    fn tarball_is_reproducible_and_round_trips() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("b/c")).unwrap();
        fs::write(src.path().join("b/c/f.txt"), "hi").unwrap();
        fs::write(src.path().join("a.txt"), "a").unwrap();
        fs::create_dir_all(src.path().join(".git")).unwrap();
        let build = || {
            let mut w = TarGzWriter::new(Vec::new());
            w.append_tree("app", src.path(), &|p: &Path| {
                p.file_name().is_some_and(|n| n == ".git")
            })
            .unwrap();
            w.append_empty_dir("deps").unwrap();
            w.finish().unwrap()
        };
        let (one, digest_one, _) = build();
        let (two, digest_two, _) = build();
        assert_eq!(one, two);
        assert_eq!(digest_one, digest_two);
        assert_eq!(digest_one, <[u8; 32]>::from(Sha256::digest(&one)));
        let out = tempfile::tempdir().unwrap();
        unpack_tar(
            MultiGzDecoder::new(&one[..]),
            out.path(),
            UnpackLimits::default(),
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(out.path().join("app/b/c/f.txt")).unwrap(),
            "hi"
        );
        assert!(!out.path().join("app/.git").exists());
        assert!(out.path().join("deps").is_dir());
    }

    #[test]
    fn substituted_content_round_trips_and_must_have_its_size() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/big"), "").unwrap();
        set_mode(&src.path().join("d/big"), 0o755).unwrap();
        fs::write(src.path().join("small"), "s").unwrap();
        let content = b"streamed content".to_vec();
        let build = |size: u64| {
            let content = content.clone();
            let mut w = TarGzWriter::new(Vec::new());
            w.append_tree_substituted("app", src.path(), &|_| false, &move |rel: &Path| {
                (rel == Path::new("d/big")).then(|| {
                    Ok((
                        size,
                        Box::new(io::Cursor::new(content.clone())) as Box<dyn Read>,
                    ))
                })
            })
            .and_then(|()| w.finish())
        };
        let (bytes, _, _) = build(content.len() as u64).unwrap();
        let out = tempfile::tempdir().unwrap();
        unpack_tar(
            MultiGzDecoder::new(&bytes[..]),
            out.path(),
            UnpackLimits::default(),
        )
        .unwrap();
        let big = out.path().join("app/d/big");
        assert_eq!(fs::read(&big).unwrap(), content);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&big).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read(out.path().join("app/small")).unwrap(), b"s");
        // a reader shorter or longer than the size it was given never makes an archive
        assert!(build(content.len() as u64 + 1).is_err());
        assert!(build(content.len() as u64 - 1).is_err());
    }

    #[test]
    fn git_dirs_can_be_left_out() {
        let tar = tar_with(&[
            (
                "app/.git/objects/pack/p.pack",
                tar::EntryType::Regular,
                b"pack",
                None,
            ),
            ("app/sub/.git/HEAD", tar::EntryType::Regular, b"h", None),
            ("app/file", tar::EntryType::Regular, b"f", None),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let limits = UnpackLimits {
            without_git_dirs: true,
            ..Default::default()
        };
        unpack_tar(&tar[..], dir.path(), limits).unwrap();
        assert!(dir.path().join("app/file").is_file());
        assert!(!dir.path().join("app/.git").exists());
        assert!(!dir.path().join("app/sub/.git").exists());
        let all = tempfile::tempdir().unwrap();
        unpack_tar(&tar[..], all.path(), UnpackLimits::default()).unwrap();
        assert!(all.path().join("app/.git/objects/pack/p.pack").is_file());
    }
}
