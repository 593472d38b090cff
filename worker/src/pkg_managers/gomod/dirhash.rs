//! `h1:` dirhash (golang.org/x/mod/sumdb/dirhash Hash1) of module zips and go.mod files, and
//! module zip validation (golang.org/x/mod/zip rules).

use base64::Engine;
use common::gomod::check_file_path;
use common::{Classify, ErrorKind};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

pub const MAX_ZIP_FILE: u64 = 500 << 20;
pub const MAX_ZIP_UNCOMPRESSED: u64 = 500 << 20;
pub const MAX_GO_MOD: u64 = 16 << 20;
pub const MAX_LICENSE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DirhashError {
    #[error("Cannot read the module zip of {label} ({path}): {source}.")]
    Io {
        label: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("The module zip of {label} is not a valid zip archive: {reason}.")]
    BadZip { label: String, reason: String },
    #[error("The module zip of {label} is invalid: entry {entry:?}: {reason}.")]
    BadEntry {
        label: String,
        entry: String,
        reason: String,
    },
    #[error("The module zip of {label} is invalid: {reason}.")]
    Invalid { label: String, reason: String },
    // what was computed is never shown: it would hand out the digest of any content served
    #[error("The checksum of {what} of {label} does not match go.sum's {expected}. The upstream file was tampered with or go.sum is wrong.")]
    Mismatch {
        label: String,
        what: &'static str,
        expected: String,
    },
}

impl Classify for DirhashError {
    fn kind(&self) -> ErrorKind {
        match self {
            DirhashError::Io { .. } => ErrorKind::FileAccessError,
            DirhashError::Mismatch { .. } => ErrorKind::InvalidChecksum,
            _ => ErrorKind::ValidationError,
        }
    }
}

fn h1_from_lines(summary: &[u8]) -> String {
    let d = Sha256::digest(summary);
    format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(d))
}

/// Hash1 over (name, sha256 hex) pairs. Names must not contain `\n`.
pub fn hash1(files: &mut [(String, String)]) -> Option<String> {
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut summary = Vec::with_capacity(files.len() * 100);
    for (name, hexsum) in files.iter() {
        if name.contains('\n') {
            return None;
        }
        summary.extend_from_slice(hexsum.as_bytes());
        summary.extend_from_slice(b"  ");
        summary.extend_from_slice(name.as_bytes());
        summary.push(b'\n');
    }
    Some(h1_from_lines(&summary))
}

/// `h1:` of a go.mod file (the `/go.mod` go.sum line).
pub fn hash_gomod(content: &[u8]) -> String {
    let line = format!("{}  go.mod\n", hex::encode(Sha256::digest(content)));
    h1_from_lines(line.as_bytes())
}

/// `h1:` of a module file set given in memory (paths relative to the module root, prefixed with
/// `module@version/` as in the zip).
pub fn hash_files<'a>(
    module: &str,
    version: &str,
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut v: Vec<(String, String)> = files
        .into_iter()
        .map(|(n, c)| {
            (
                format!("{module}@{version}/{n}"),
                hex::encode(Sha256::digest(c)),
            )
        })
        .collect();
    hash1(&mut v).unwrap_or_default()
}

fn open_zip(path: &Path, label: &str) -> Result<zip::ZipArchive<BufReader<File>>, DirhashError> {
    let f = File::open(path).map_err(|e| DirhashError::Io {
        label: label.to_string(),
        path: path.display().to_string(),
        source: e,
    })?;
    let len = f
        .metadata()
        .map_err(|e| DirhashError::Io {
            label: label.to_string(),
            path: path.display().to_string(),
            source: e,
        })?
        .len();
    if len > MAX_ZIP_FILE {
        return Err(DirhashError::Invalid {
            label: label.to_string(),
            reason: format!("the zip file is {len} bytes, larger than the 500 MiB limit"),
        });
    }
    zip::ZipArchive::new(BufReader::new(f)).map_err(|e| DirhashError::BadZip {
        label: label.to_string(),
        reason: e.to_string(),
    })
}

/// `h1:` of a module zip file exactly as the go command computes it (every entry the zip lists),
/// streaming one entry at a time. No validation beyond what hashing needs.
pub fn hash_zip(path: &Path, label: &str) -> Result<String, DirhashError> {
    let mut z = open_zip(path, label)?;
    let mut files = Vec::with_capacity(z.len());
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(|e| DirhashError::BadZip {
            label: label.to_string(),
            reason: e.to_string(),
        })?;
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        let (sum, _) = sha256_reader(&mut f, label, &name)?;
        files.push((name, sum));
    }
    hash1(&mut files).ok_or_else(|| DirhashError::Invalid {
        label: label.to_string(),
        reason: "a file name contains a newline".into(),
    })
}

fn sha256_reader(
    r: &mut impl Read,
    label: &str,
    entry: &str,
) -> Result<(String, u64), DirhashError> {
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| DirhashError::BadEntry {
            label: label.to_string(),
            entry: entry.to_string(),
            reason: format!("cannot decompress: {e}"),
        })?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), n_total))
}

/// Result of [`validate_zip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    pub h1: String,
    /// file paths relative to the module root, sorted
    pub files: Vec<String>,
    pub total_size: u64,
    pub has_gomod: bool,
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

/// Validate a module zip against golang.org/x/mod/zip's rules for `module@version` and return its
/// `h1:` computed in the same streaming pass:
/// every entry under `module@version/`, clean valid file paths, no duplicates under case folding
/// (also file vs directory), only a top-level `go.mod`, size limits, declared size == real size,
/// no symlinks or other irregular files.
pub fn validate_zip(path: &Path, module: &str, version: &str) -> Result<ZipSummary, DirhashError> {
    let label = format!("{module}@{version}");
    let label = label.as_str();
    let mut z = open_zip(path, label)?;
    let prefix = format!("{module}@{version}/");
    let mut hashes = Vec::with_capacity(z.len());
    let mut folded: BTreeMap<String, bool> = BTreeMap::new(); // folded path -> is_dir
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut has_gomod = false;
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(|e| DirhashError::BadZip {
            label: label.to_string(),
            reason: e.to_string(),
        })?;
        let raw = f.name_raw().to_vec();
        let name = String::from_utf8(raw).map_err(|_| DirhashError::BadEntry {
            label: label.to_string(),
            entry: String::from_utf8_lossy(f.name_raw()).into_owned(),
            reason: "file name is not valid UTF-8".into(),
        })?;
        let bad = |reason: &str| DirhashError::BadEntry {
            label: label.to_string(),
            entry: name.clone(),
            reason: reason.to_string(),
        };
        let Some(rel) = name.strip_prefix(&prefix) else {
            return Err(bad(&format!("path does not have prefix {prefix:?}")));
        };
        if rel.is_empty() {
            continue;
        }
        let is_dir = rel.ends_with('/');
        let rel = rel.strip_suffix('/').unwrap_or(rel);
        check_file_path(rel).map_err(|e| bad(&e.to_string()))?;
        if let Some(mode) = f.unix_mode() {
            let t = mode & S_IFMT;
            if t != 0 && t != S_IFREG && !(is_dir && t == S_IFDIR) {
                return Err(bad("symbolic links and irregular files are not allowed"));
            }
        }
        if f.is_symlink() {
            return Err(bad("symbolic links are not allowed"));
        }
        // collisions under case folding, and a file used as a directory
        let fold = rel.to_lowercase();
        if let Some(prev_dir) = folded.get(&fold) {
            if !(is_dir && *prev_dir) {
                return Err(bad("case-insensitive file name collision"));
            }
        }
        folded.insert(fold.clone(), is_dir);
        let mut parent = fold.as_str();
        while let Some(p) = parent.rfind('/') {
            parent = &parent[..p];
            match folded.get(parent) {
                Some(false) => return Err(bad("a file and a directory have the same name")),
                Some(true) => break,
                None => {
                    folded.insert(parent.to_string(), true);
                }
            }
        }
        let declared = f.size();
        let base = rel.rsplit('/').next().unwrap_or(rel);
        if !is_dir {
            if base.eq_ignore_ascii_case("go.mod") && rel != "go.mod" {
                return Err(bad("go.mod file not in module root directory"));
            }
            if rel == "go.mod" {
                has_gomod = true;
                if declared > MAX_GO_MOD {
                    return Err(bad("go.mod file too large (max 16 MiB)"));
                }
            }
            if rel == "LICENSE" && declared > MAX_LICENSE {
                return Err(bad("LICENSE file too large (max 16 MiB)"));
            }
            total = total.saturating_add(declared);
            if total > MAX_ZIP_UNCOMPRESSED {
                return Err(DirhashError::Invalid {
                    label: label.to_string(),
                    reason: "total uncompressed size of files exceeds the 500 MiB limit".into(),
                });
            }
        }
        // Go's HashZip hashes every listed entry (directory entries included, as empty files).
        let (sum, real) = sha256_reader(&mut f, label, &name)?;
        if real != declared {
            return Err(bad(&format!(
                "uncompressed size {real} differs from the declared size {declared}"
            )));
        }
        if is_dir && real != 0 {
            return Err(bad("directory entry has content"));
        }
        if !is_dir {
            files.push(rel.to_string());
        }
        hashes.push((name.clone(), sum));
    }
    let h1 = hash1(&mut hashes).ok_or_else(|| DirhashError::Invalid {
        label: label.to_string(),
        reason: "a file name contains a newline".into(),
    })?;
    files.sort();
    Ok(ZipSummary {
        h1,
        files,
        total_size: total,
        has_gomod,
    })
}

/// Validate a zip and compare its h1 with go.sum's.
pub fn verify_zip(
    path: &Path,
    module: &str,
    version: &str,
    expected_h1: &str,
) -> Result<ZipSummary, DirhashError> {
    let s = validate_zip(path, module, version)?;
    if s.h1 != expected_h1 {
        return Err(DirhashError::Mismatch {
            label: format!("{module}@{version}"),
            what: "the module zip",
            expected: expected_h1.to_string(),
        });
    }
    Ok(s)
}

/// Compare a go.mod's h1 with go.sum's.
pub fn verify_gomod(
    content: &[u8],
    module: &str,
    version: &str,
    expected_h1: &str,
) -> Result<(), DirhashError> {
    if hash_gomod(content) != expected_h1 {
        return Err(DirhashError::Mismatch {
            label: format!("{module}@{version}"),
            what: "go.mod",
            expected: expected_h1.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    pub(crate) fn write_zip(dir: &Path, entries: &[(&str, &[u8])]) -> std::path::PathBuf {
        let p = dir.join("m.zip");
        let f = File::create(&p).unwrap();
        let mut w = zip::ZipWriter::new(f);
        for (n, c) in entries {
            w.start_file(*n, SimpleFileOptions::default()).unwrap();
            w.write_all(c).unwrap();
        }
        w.finish().unwrap();
        p
    }

    #[test]
    fn gomod_hash_known_value() {
        // go.sum of any module with go.mod "module example.com/x\n" — computed independently:
        // sha256("module example.com/x\n") then Hash1 over the single line.
        let h = hash_gomod(b"module example.com/x\n");
        assert!(h.starts_with("h1:") && h.len() == 47);
        // empty go.mod: the famous "bad" hash
        assert_eq!(hash_gomod(b""), super::super::gosum::BAD_EMPTY_GOMOD_H1);
    }

    #[test]
    fn zip_hash_matches_in_memory_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = write_zip(
            d.path(),
            &[
                ("a.com/m@v1.0.0/go.mod", b"module a.com/m\n"),
                ("a.com/m@v1.0.0/b.go", b"package m\n"),
                ("a.com/m@v1.0.0/A.go", b"package m\n"),
            ],
        );
        let mem = hash_files(
            "a.com/m",
            "v1.0.0",
            [
                ("b.go", &b"package m\n"[..]),
                ("go.mod", &b"module a.com/m\n"[..]),
                ("A.go", &b"package m\n"[..]),
            ],
        );
        assert_eq!(hash_zip(&p, "x").unwrap(), mem);
        let s = validate_zip(&p, "a.com/m", "v1.0.0").unwrap();
        assert_eq!(s.h1, mem);
        assert!(s.has_gomod);
        assert_eq!(s.files, vec!["A.go", "b.go", "go.mod"]);
        assert!(verify_zip(&p, "a.com/m", "v1.0.0", &mem).is_ok());
    }

    #[test]
    fn tampered_zip_mismatch() {
        let d = tempfile::tempdir().unwrap();
        let good = hash_files("a.com/m", "v1.0.0", [("x.go", &b"package m\n"[..])]);
        let p = write_zip(d.path(), &[("a.com/m@v1.0.0/x.go", b"package evil\n")]);
        let e = verify_zip(&p, "a.com/m", "v1.0.0", &good).unwrap_err();
        assert!(e.to_string().contains("a.com/m@v1.0.0"), "{e}");
        let served = validate_zip(&p, "a.com/m", "v1.0.0").unwrap().h1;
        assert!(
            !e.to_string().contains(&served),
            "the h1 of what was served is not echoed: {e}"
        );
        assert_eq!(e.kind().error_type(), "InvalidChecksum");
        let e = verify_gomod(
            b"module evil\n",
            "a.com/m",
            "v1.0.0",
            &hash_gomod(b"module a.com/m\n"),
        )
        .unwrap_err();
        assert!(matches!(e, DirhashError::Mismatch { what: "go.mod", .. }));
    }

    fn invalid(entries: &[(&str, &[u8])]) -> String {
        let d = tempfile::tempdir().unwrap();
        let p = write_zip(d.path(), entries);
        validate_zip(&p, "a.com/m", "v1.0.0")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn zip_rules() {
        assert!(invalid(&[("other@v1.0.0/x.go", b"")]).contains("prefix"));
        assert!(invalid(&[("a.com/m@v1.0.0/../../etc/passwd", b"")]).contains("passwd"));
        assert!(invalid(&[("a.com/m@v1.0.0//abs", b"")]).contains("invalid"));
        assert!(invalid(&[("/a.com/m@v1.0.0/x", b"")]).contains("prefix"));
        assert!(invalid(&[("a.com/m@v1.0.0/a\\..\\x", b"")]).contains("backslash"));
        assert!(
            invalid(&[("a.com/m@v1.0.0/A.go", b""), ("a.com/m@v1.0.0/a.go", b"")])
                .contains("collision")
        );
        assert!(
            invalid(&[("a.com/m@v1.0.0/x", b""), ("a.com/m@v1.0.0/X/y", b"")])
                .contains("same name")
        );
        assert!(invalid(&[("a.com/m@v1.0.0/sub/go.mod", b"module x\n")]).contains("go.mod"));
        assert!(invalid(&[("a.com/m@v1.0.0/GO.MOD", b"module x\n")]).contains("go.mod"));
        assert!(invalid(&[("a.com/m@v1.0.0/a:b", b"")]).contains("invalid character"));
        // zip slip through the version
        assert!(invalid(&[("a.com/m@v1.0.0/../v2.0.0/x", b"")]).contains(".."));
    }

    #[test]
    fn symlink_rejected() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.zip");
        let mut w = zip::ZipWriter::new(File::create(&p).unwrap());
        w.add_symlink(
            "a.com/m@v1.0.0/link",
            "/etc/passwd",
            SimpleFileOptions::default(),
        )
        .unwrap();
        w.finish().unwrap();
        let e = validate_zip(&p, "a.com/m", "v1.0.0").unwrap_err();
        assert!(e.to_string().contains("symbolic"), "{e}");
    }

    #[test]
    fn not_a_zip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.zip");
        std::fs::write(&p, b"definitely not a zip").unwrap();
        let e = validate_zip(&p, "a.com/m", "v1.0.0").unwrap_err();
        assert_eq!(e.kind().error_type(), "ValidationError");
        let e = validate_zip(&d.path().join("missing.zip"), "a.com/m", "v1.0.0").unwrap_err();
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Server);
    }

    #[test]
    fn declared_size_lie_detected() {
        // Build a stored zip, then patch the declared uncompressed size in both headers.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.zip");
        let mut w = zip::ZipWriter::new(File::create(&p).unwrap());
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file("a.com/m@v1.0.0/x.go", opts).unwrap();
        w.write_all(b"package m\n").unwrap();
        w.finish().unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        // local header: uncompressed size at offset 22; central dir header: signature PK\1\2,
        // uncompressed size at offset 24.
        bytes[22..26].copy_from_slice(&5u32.to_le_bytes());
        let cd = bytes
            .windows(4)
            .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
            .unwrap();
        bytes[cd + 24..cd + 28].copy_from_slice(&5u32.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        assert!(validate_zip(&p, "a.com/m", "v1.0.0").is_err());
    }
}
