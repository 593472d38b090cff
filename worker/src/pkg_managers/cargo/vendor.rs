//! Write `deps/cargo/<name>-<version>/` exactly the way `cargo vendor --versioned-dirs` does:
//! the unpacked `.crate` (registry) or the crate's directory of a git checkout, filtered by
//! cargo's rules, plus `.cargo-checksum.json`.
//!
//! Extraction goes through one checked routine: only regular files and directories, every entry
//! under `<name>-<version>/`, no absolute paths, no `..`, no links, no devices, bounded sizes.

use crate::pkg_managers::cargo::util::{glob_match, is_safe_version, sha256_hex};
use common::artifact::cargo::is_crate_name;
use common::digest::{Digest, HashAlgorithm};
use common::ErrorKind;
use flate2::read::GzDecoder;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    // what was computed is never shown: it would hand out the digest of any content served
    #[error("The crate {label} does not match the checksum {expected} in Cargo.lock")]
    ChecksumMismatch { label: String, expected: String },
    #[error("The crate archive of {label} is unsafe or malformed: {reason}")]
    UnsafeArchive { label: String, reason: String },
    #[error("The crate archive of {label} is too large: {reason}")]
    TooLarge { label: String, reason: String },
    #[error(
        "The git dependency {label} was not found in its repository at the locked commit: {reason}"
    )]
    GitCrateNotFound { label: String, reason: String },
    #[error("The git dependency {label} contains an unsafe path: {reason}")]
    UnsafeGitTree { label: String, reason: String },
    #[error("The crate name or version {0:?} is invalid")]
    InvalidName(String),
    #[error("I/O error while vendoring {label}: {reason}")]
    Io { label: String, reason: String },
}

impl common::Classify for VendorError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::ChecksumMismatch { .. } => ErrorKind::InvalidChecksum,
            Self::UnsafeArchive { .. } | Self::TooLarge { .. } => ErrorKind::InvalidFileFormat,
            Self::GitCrateNotFound { .. } | Self::UnsafeGitTree { .. } => {
                ErrorKind::InvalidRepoStructure
            }
            Self::InvalidName(_) => ErrorKind::ValidationError,
            Self::Io { .. } => ErrorKind::FileAccessError,
        }
    }
}

/// Bounds for one crate extraction.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_entries: 200_000,
        }
    }
}

fn io(label: &str) -> impl Fn(std::io::Error) -> VendorError + '_ {
    move |e| VendorError::Io {
        label: label.to_string(),
        reason: e.to_string(),
    }
}

/// The directory name cargo vendor uses with `--versioned-dirs`.
pub fn vendor_dir_name(name: &str, version: &str) -> String {
    format!("{name}-{version}")
}

fn check_name(name: &str, version: &str) -> Result<(), VendorError> {
    if !is_crate_name(name) {
        return Err(VendorError::InvalidName(name.into()));
    }
    if !is_safe_version(version) {
        return Err(VendorError::InvalidName(version.into()));
    }
    Ok(())
}

/// Serialize `.cargo-checksum.json` byte-for-byte like cargo (compact, sorted keys).
pub fn checksum_json(files: &BTreeMap<String, String>, package: Option<&str>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Ck<'a> {
        files: &'a BTreeMap<String, String>,
        package: Option<&'a str>,
    }
    serde_json::to_vec(&Ck { files, package }).unwrap_or_default()
}

/// Part of every vendored crate's cache key: a change to what vendoring writes changes it, and
/// crates vendored before are no longer reused.
pub const VENDOR_FORMAT: &str = "cargo-vendor-1";

/// The `.crate`'s sha256 as computed when it was fetched must be the lockfile's `checksum`.
pub fn check_verified(verified: &Digest, checksum: &str, label: &str) -> Result<(), VendorError> {
    if verified.algorithm != HashAlgorithm::Sha256 || !verified.hex().eq_ignore_ascii_case(checksum)
    {
        return Err(VendorError::ChecksumMismatch {
            label: label.into(),
            expected: checksum.into(),
        });
    }
    Ok(())
}

/// Largest Cargo.toml parsed for its licence (crates.io's are a few KiB; the vendoring reads
/// any size).
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// A registry crate laid out in the vendor directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendoredCrate {
    pub dir: PathBuf,
    /// The `license` its Cargo.toml declares (see [`manifest_license`]).
    pub license: Option<String>,
}

/// The `license` of a crate's (normalized, as published) Cargo.toml: an SPDX expression, with
/// cargo's deprecated `/` separator (`MIT/Apache-2.0`, which meant either) read as ` OR `.
/// `None` when the manifest does not parse or declares none (`license-file` alone names no
/// licence): a licence is never a reason to fail.
pub fn manifest_license(manifest: &[u8]) -> Option<String> {
    if manifest.len() > MAX_MANIFEST_BYTES {
        return None;
    }
    let text = std::str::from_utf8(manifest).ok()?;
    let table: toml::Table = toml::from_str(text).ok()?;
    let license = table.get("package")?.get("license")?.as_str()?.trim();
    if license.is_empty() {
        return None;
    }
    let is_identifier = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
    };
    let parts: Vec<&str> = license.split('/').map(str::trim).collect();
    if parts.len() > 1 && parts.iter().all(|p| is_identifier(p)) {
        return Some(parts.join(" OR "));
    }
    Some(license.to_string())
}

/// Entries of a `.crate` looked through for its Cargo.toml: cargo packs files sorted by path,
/// so only `.cargo_vcs_info.json` and the few names sorting before `Cargo.toml` precede it.
const MAX_MANIFEST_SEARCH_ENTRIES: usize = 256;
/// Decompressed bytes of a `.crate` read through while looking for its Cargo.toml.
const MAX_MANIFEST_SEARCH_BYTES: u64 = 64 << 20;

/// The licence of a `.crate`'s Cargo.toml (see [`manifest_license`]), read from the archive
/// without unpacking it: for a crate whose vendored directory was kept from an earlier request.
/// `None` when it cannot be read.
pub fn crate_license(crate_file: &Path, name: &str, version: &str) -> Option<String> {
    let manifest = format!("{}/Cargo.toml", vendor_dir_name(name, version));
    let file = fs::File::open(crate_file).ok()?;
    let decompressed =
        GzDecoder::new(std::io::BufReader::new(file)).take(MAX_MANIFEST_SEARCH_BYTES);
    let mut archive = tar::Archive::new(decompressed);
    for entry in archive.entries().ok()?.take(MAX_MANIFEST_SEARCH_ENTRIES) {
        let entry = entry.ok()?;
        if entry.header().entry_type().is_file()
            && entry.path().ok()?.to_str() == Some(manifest.as_str())
        {
            let mut data = Vec::new();
            entry
                .take(MAX_MANIFEST_BYTES as u64 + 1)
                .read_to_end(&mut data)
                .ok()?;
            return manifest_license(&data);
        }
    }
    None
}

/// Unpack a `.crate` into `vendor_dir/<name>-<version>/` and write `.cargo-checksum.json`.
/// `verified` is the `.crate`'s sha256 as computed when it was fetched: it must be the lockfile's
/// `checksum`. Its Cargo.toml's licence is read as the file is hashed.
pub fn vendor_registry_crate(
    crate_file: &Path,
    verified: &Digest,
    name: &str,
    version: &str,
    checksum: &str,
    vendor_dir: &Path,
    limits: &Limits,
) -> Result<VendoredCrate, VendorError> {
    check_name(name, version)?;
    let label = format!("{name}@{version}");
    check_verified(verified, checksum, &label)?;
    let actual = verified.hex();
    let file = fs::File::open(crate_file).map_err(io(&label))?;
    fs::create_dir_all(vendor_dir).map_err(io(&label))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{name}-{version}-"))
        .tempdir_in(vendor_dir)
        .map_err(io(&label))?;
    let top = vendor_dir_name(name, version);
    extract_crate(
        std::io::BufReader::new(file),
        &top,
        tmp.path(),
        limits,
        &label,
    )?;
    let unpacked = tmp.path().join(&top);
    fs::create_dir_all(&unpacked).map_err(io(&label))?;
    // hash in place (like cargo, which unpacks straight into the vendor dir), drop filtered files
    let files = select_files(&unpacked, &label, None)?;
    let mut all = Vec::new();
    walk_all(&unpacked, &unpacked, &mut all).map_err(io(&label))?;
    for rel in all.iter().filter(|r| files.binary_search(r).is_err()) {
        fs::remove_file(unpacked.join(rel)).map_err(io(&label))?;
    }
    let mut cks = BTreeMap::new();
    let mut license = None;
    for rel in &files {
        let data = fs::read(unpacked.join(rel)).map_err(io(&label))?;
        if rel == "Cargo.toml" {
            license = manifest_license(&data);
        }
        cks.insert(rel.clone(), sha256_hex(&data));
    }
    fs::write(
        unpacked.join(".cargo-checksum.json"),
        checksum_json(&cks, Some(&actual)),
    )
    .map_err(io(&label))?;
    let dir = finish(&unpacked, &vendor_dir.join(&top), &label)?;
    Ok(VendoredCrate { dir, license })
}

/// Every regular file below `dir` (relative to `root`), no filtering.
fn walk_all(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk_all(root, &p, out)?;
        } else {
            out.push(
                p.strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
    Ok(())
}

fn finish(staged: &Path, dest: &Path, label: &str) -> Result<PathBuf, VendorError> {
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(io(label))?;
    }
    fs::rename(staged, dest).map_err(io(label))?;
    Ok(dest.to_path_buf())
}

/// The checked extraction routine: gzip tar, every entry below `top/`.
pub fn extract_crate(
    archive: impl Read,
    top: &str,
    dest: &Path,
    limits: &Limits,
    label: &str,
) -> Result<(), VendorError> {
    let unsafe_ = |reason: String| VendorError::UnsafeArchive {
        label: label.into(),
        reason,
    };
    let mut archive = tar::Archive::new(GzDecoder::new(archive));
    let entries = archive.entries().map_err(|e| unsafe_(e.to_string()))?;
    let (mut total, mut count) = (0u64, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| unsafe_(format!("corrupt archive: {e}")))?;
        count += 1;
        if count > limits.max_entries {
            return Err(VendorError::TooLarge {
                label: label.into(),
                reason: format!("more than {} entries", limits.max_entries),
            });
        }
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(|e| unsafe_(format!("bad entry name: {e}")))?
            .into_owned();
        let shown = path.display().to_string();
        let mut comps = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(s) => comps.push(
                    s.to_str()
                        .ok_or_else(|| unsafe_(format!("entry {shown:?} is not UTF-8")))?
                        .to_string(),
                ),
                Component::CurDir => {}
                _ => {
                    return Err(unsafe_(format!(
                        "entry {shown:?} has an absolute or `..` path"
                    )))
                }
            }
        }
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
        {
            continue;
        }
        if comps.first().map(String::as_str) != Some(top) {
            return Err(unsafe_(format!("entry {shown:?} is not under {top}/")));
        }
        let target = comps.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(io(label))?;
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(unsafe_(format!(
                "entry {shown:?} is a link, device or other special file ({kind:?})"
            )));
        }
        if comps.len() < 2 {
            return Err(unsafe_(format!(
                "entry {shown:?} is a file at the archive root"
            )));
        }
        let size = entry.header().size().map_err(|e| unsafe_(e.to_string()))?;
        if size > limits.max_entry_bytes {
            return Err(VendorError::TooLarge {
                label: label.into(),
                reason: format!("entry {shown:?} is {size} bytes"),
            });
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(VendorError::TooLarge {
                label: label.into(),
                reason: format!("more than {} bytes unpacked", limits.max_total_bytes),
            });
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io(label))?;
        }
        // We never create symlinks, so no path below dest can lead outside it.
        let mut f = fs::File::create(&target).map_err(io(label))?;
        let copied = std::io::copy(&mut (&mut entry).take(limits.max_entry_bytes + 1), &mut f)
            .map_err(io(label))?;
        if copied != size {
            return Err(unsafe_(format!("entry {shown:?} is truncated")));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.header().mode().unwrap_or(0o644);
            let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
            let _ = fs::set_permissions(&target, fs::Permissions::from_mode(perm));
        }
    }
    Ok(())
}

/// include/exclude rules from the package manifest (gitignore-style globs).
#[derive(Clone, Debug, Default)]
pub struct PackageRules {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// gitignore-like match of `pattern` against a relative path or any of its parents.
fn rule_matches(pattern: &str, rel: &str) -> bool {
    let pat = pattern.trim();
    if pat.is_empty() || pat.starts_with('#') {
        return false;
    }
    let dir_only = pat.ends_with('/');
    let pat = pat.trim_end_matches('/');
    let anchored = pat.starts_with('/') || pat.contains('/');
    let pat = pat.trim_start_matches('/');
    let segs: Vec<&str> = rel.split('/').collect();
    // try the path and each parent
    for end in (1..=segs.len()).rev() {
        if dir_only && end == segs.len() {
            continue; // the full path is a file here
        }
        let cand = &segs[..end];
        let ok = if anchored {
            seg_match(&pat.split('/').collect::<Vec<_>>(), cand)
        } else {
            cand.last().is_some_and(|last| glob_match(pat, last))
        };
        if ok {
            return true;
        }
    }
    false
}

fn seg_match(p: &[&str], t: &[&str]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(&"**") => (0..=t.len()).any(|i| seg_match(&p[1..], &t[i..])),
        Some(s) => !t.is_empty() && glob_match(s, t[0]) && seg_match(&p[1..], &t[1..]),
    }
}

/// cargo 1.95 `vendor_this`: drops `.gitattributes`, `.gitignore`, `.git` and `.cargo-ok`; for
/// git/path crates only at the package root (relative path compared), for registry crates at any
/// depth (VERIFIED: a nested `src/.gitignore` in a `.crate` is not vendored).
fn vendor_this(rel: &str, any_depth: bool) -> bool {
    let name = if any_depth {
        rel.rsplit('/').next().unwrap_or(rel)
    } else {
        rel
    };
    !matches!(name, ".gitattributes" | ".gitignore" | ".git" | ".cargo-ok")
}

/// Relative paths (with `/`) of the files cargo would vendor from `root`, sorted.
fn select_files(
    root: &Path,
    label: &str,
    rules: Option<&PackageRules>,
) -> Result<Vec<String>, VendorError> {
    let mut out = Vec::new();
    walk(root, root, label, rules, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    label: &str,
    rules: Option<&PackageRules>,
    out: &mut Vec<String>,
) -> Result<(), VendorError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io(label))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let ft = fs::symlink_metadata(&path).map_err(io(label))?.file_type();
        let at_root = dir == root;
        let meta_is_dir;
        if ft.is_symlink() {
            let canon = path
                .canonicalize()
                .map_err(|_| VendorError::UnsafeGitTree {
                    label: label.into(),
                    reason: format!("{rel} is a dangling symlink"),
                })?;
            let croot = root.canonicalize().map_err(io(label))?;
            if !canon.starts_with(&croot) {
                return Err(VendorError::UnsafeGitTree {
                    label: label.into(),
                    reason: format!("{rel} is a symlink out of the crate directory"),
                });
            }
            meta_is_dir = canon.is_dir();
            if meta_is_dir {
                continue; // cargo does not follow directory symlinks into a package
            }
        } else {
            meta_is_dir = ft.is_dir();
        }
        if meta_is_dir {
            if rules.is_none() {
                // registry crate: cargo unpacks the whole tarball
                walk(root, &path, label, rules, out)?;
                continue;
            }
            if rel == ".git" || (at_root && rel == "target") {
                continue;
            }
            // sub-packages are not part of this package
            if path.join("Cargo.toml").exists() {
                continue;
            }
            if let Some(r) = rules {
                if !r.exclude.is_empty() && r.exclude.iter().any(|p| rule_matches(p, &rel)) {
                    continue;
                }
            }
            walk(root, &path, label, rules, out)?;
            continue;
        }
        if !ft.is_file() && !ft.is_symlink() {
            continue; // sockets, fifos: never copied
        }
        if let Some(r) = rules {
            if !r.include.is_empty() {
                if rel != "Cargo.toml" && !r.include.iter().any(|p| rule_matches(p, &rel)) {
                    continue;
                }
            } else if r.exclude.iter().any(|p| rule_matches(p, &rel)) {
                continue;
            }
        }
        // cargo vendor's `vendor_this` filter (cargo 1.95)
        if !vendor_this(&rel, rules.is_none()) {
            continue;
        }
        out.push(rel);
    }
    Ok(())
}

/// Copy the files to `dst`, returning their sha256; `replace` supplies contents to write
/// instead of copying (the normalized Cargo.toml of git crates).
fn copy_files(
    src: &Path,
    files: &[String],
    dst: &Path,
    label: &str,
    replace: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, String>, VendorError> {
    let mut cks = BTreeMap::new();
    fs::create_dir_all(dst).map_err(io(label))?;
    for rel in files {
        let from = src.join(rel);
        let to = dst.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io(label))?;
        }
        let digest = if let Some(content) = replace.get(rel) {
            fs::write(&to, content).map_err(io(label))?;
            sha256_hex(content)
        } else {
            let mut input = fs::File::open(&from).map_err(io(label))?;
            let mut out = fs::File::create(&to).map_err(io(label))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input.read(&mut buf).map_err(io(label))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io(label))?;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = fs::metadata(&from) {
                    let perm = if m.permissions().mode() & 0o111 != 0 {
                        0o755
                    } else {
                        0o644
                    };
                    let _ = fs::set_permissions(&to, fs::Permissions::from_mode(perm));
                }
            }
            hex::encode(h.finalize())
        };
        cks.insert(rel.clone(), digest);
    }
    Ok(cks)
}

/// Find the directory of crate `name` at `version` inside a git checkout: the `Cargo.toml`
/// whose `[package] name` matches (version resolved through workspace inheritance).
pub fn find_git_crate(checkout: &Path, name: &str, version: &str) -> Result<PathBuf, VendorError> {
    check_name(name, version)?;
    let label = format!("{name}@{version}");
    let mut found_versions = Vec::new();
    let mut stack = vec![checkout.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file()
            && !fs::symlink_metadata(&manifest)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(true)
        {
            if let Ok(text) = fs::read_to_string(&manifest) {
                if let Ok(t) = toml::from_str::<toml::Table>(&text) {
                    if t.get("package")
                        .and_then(|p| p.get("name"))
                        .and_then(|n| n.as_str())
                        == Some(name)
                    {
                        let ws = workspace_root_table(checkout, &dir);
                        let v = resolve_field(&t, "version", ws.as_ref())
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_else(|| "0.0.0".into());
                        if v == version {
                            return Ok(dir);
                        }
                        found_versions.push(v);
                    }
                }
            }
        }
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        let mut subdirs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false)) // no symlinked dirs
            .filter(|e| e.file_name() != ".git" && e.file_name() != "target")
            .map(|e| e.path())
            .collect();
        subdirs.sort();
        subdirs.reverse();
        stack.extend(subdirs);
    }
    Err(VendorError::GitCrateNotFound {
        label,
        reason: if found_versions.is_empty() {
            "no Cargo.toml declares this package".into()
        } else {
            format!("the repository has versions {}", found_versions.join(", "))
        },
    })
}

/// The `[workspace]` table of the nearest ancestor manifest (up to the checkout root).
fn workspace_root_table(checkout: &Path, dir: &Path) -> Option<toml::Table> {
    workspace_root(checkout, dir).map(|(_, t)| t)
}

/// Nearest ancestor manifest with `[workspace]`: (its directory, the table).
fn workspace_root(checkout: &Path, dir: &Path) -> Option<(PathBuf, toml::Table)> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if let Ok(text) = fs::read_to_string(d.join("Cargo.toml")) {
            if let Ok(t) = toml::from_str::<toml::Table>(&text) {
                if let Some(ws) = t.get("workspace").and_then(|w| w.as_table()) {
                    return Some((d.to_path_buf(), ws.clone()));
                }
            }
        }
        if d == checkout {
            break;
        }
        cur = d.parent();
    }
    None
}

fn resolve_field(
    pkg_manifest: &toml::Table,
    field: &str,
    ws: Option<&toml::Table>,
) -> Option<toml::Value> {
    let v = pkg_manifest.get("package")?.get(field)?;
    if let Some(t) = v.as_table() {
        if t.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
            return ws?.get("package")?.get(field).cloned();
        }
    }
    Some(v.clone())
}

/// Resolve `workspace = true` in `[package]` and dependency tables and drop `[workspace]`,
/// producing a standalone manifest (cargo instead writes its full `cargo package`
/// normalization; see the module report: the content differs, the semantics match).
/// `to_ws` is the path from the crate directory to the workspace root (e.g. `..`), used to
/// rebase inherited `readme`, `license-file` and dependency `path` values.
pub fn standalone_manifest(
    text: &str,
    ws: Option<&toml::Table>,
    to_ws: &str,
    label: &str,
) -> Result<Vec<u8>, VendorError> {
    let rebase = |p: &str| -> String {
        if to_ws.is_empty() || to_ws == "." || Path::new(p).is_absolute() {
            p.to_string()
        } else {
            format!("{to_ws}/{p}")
        }
    };
    let bad = |reason: String| VendorError::GitCrateNotFound {
        label: label.into(),
        reason,
    };
    let mut t: toml::Table =
        toml::from_str(text).map_err(|e| bad(format!("invalid Cargo.toml: {e}")))?;
    t.remove("workspace");
    let ws_pkg = ws
        .and_then(|w| w.get("package"))
        .and_then(|p| p.as_table())
        .cloned();
    let ws_deps = ws
        .and_then(|w| w.get("dependencies"))
        .and_then(|p| p.as_table())
        .cloned();
    if let Some(pkg) = t.get_mut("package").and_then(|p| p.as_table_mut()) {
        let keys: Vec<String> = pkg.keys().cloned().collect();
        for k in keys {
            let inherit = pkg
                .get(&k)
                .and_then(|v| v.as_table())
                .and_then(|t| t.get("workspace"))
                .and_then(|w| w.as_bool())
                == Some(true);
            if inherit {
                let mut v = ws_pkg
                    .as_ref()
                    .and_then(|w| w.get(&k))
                    .cloned()
                    .ok_or_else(|| {
                        bad(format!(
                            "`{k}.workspace = true` but the workspace does not define it"
                        ))
                    })?;
                if k == "readme" || k == "license-file" {
                    if let Some(p) = v.as_str() {
                        v = toml::Value::String(rebase(p));
                    }
                }
                pkg.insert(k, v);
            }
        }
    }
    let fix_deps = |deps: &mut toml::Table| -> Result<(), VendorError> {
        for (dname, d) in deps.iter_mut() {
            let Some(dt) = d.as_table_mut() else { continue };
            if dt.get("workspace").and_then(|w| w.as_bool()) != Some(true) {
                continue;
            }
            let base = ws_deps.as_ref().and_then(|w| w.get(dname)).cloned().ok_or_else(|| bad(format!("dependency `{dname}` inherits from the workspace, which does not define it")))?;
            let mut merged = match base {
                toml::Value::String(s) => {
                    let mut m = toml::Table::new();
                    m.insert("version".into(), toml::Value::String(s));
                    m
                }
                toml::Value::Table(mut m) => {
                    if let Some(p) = m.get("path").and_then(|p| p.as_str()).map(&rebase) {
                        m.insert("path".into(), toml::Value::String(p));
                    }
                    m
                }
                _ => return Err(bad(format!("workspace dependency `{dname}` is malformed"))),
            };
            dt.remove("workspace");
            for (k, v) in dt.iter() {
                if k == "features" {
                    let mut f = merged
                        .get("features")
                        .and_then(|f| f.as_array())
                        .cloned()
                        .unwrap_or_default();
                    f.extend(v.as_array().cloned().unwrap_or_default());
                    merged.insert(k.clone(), toml::Value::Array(f));
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
            *dt = merged;
        }
        Ok(())
    };
    for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(d) = t.get_mut(key).and_then(|d| d.as_table_mut()) {
            fix_deps(d)?;
        }
    }
    if let Some(targets) = t.get_mut("target").and_then(|d| d.as_table_mut()) {
        for (_, tt) in targets.iter_mut() {
            for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
                if let Some(d) = tt.get_mut(key).and_then(|d| d.as_table_mut()) {
                    fix_deps(d)?;
                }
            }
        }
    }
    if t.get("lints")
        .and_then(|l| l.get("workspace"))
        .and_then(|w| w.as_bool())
        == Some(true)
    {
        match ws.and_then(|w| w.get("lints")) {
            Some(l) => {
                t.insert("lints".into(), l.clone());
            }
            None => {
                return Err(bad(
                    "`lints.workspace = true` but the workspace has no [workspace.lints]".into(),
                ))
            }
        }
    }
    let body = toml::to_string(&t).map_err(|e| bad(e.to_string()))?;
    Ok(format!(
        "# Vendored by Larder from a git dependency: workspace inheritance resolved.\n\n{body}"
    )
    .into_bytes())
}

/// Vendor a git crate from a checkout at the locked commit into `vendor_dir/<name>-<version>/`
/// (`.cargo-checksum.json` with `"package": null`).
pub fn vendor_git_crate(
    checkout: &Path,
    name: &str,
    version: &str,
    vendor_dir: &Path,
) -> Result<PathBuf, VendorError> {
    let label = format!("{name}@{version}");
    let crate_dir = find_git_crate(checkout, name, version)?;
    let text = fs::read_to_string(crate_dir.join("Cargo.toml")).map_err(io(&label))?;
    let manifest: toml::Table =
        toml::from_str(&text).map_err(|e| VendorError::GitCrateNotFound {
            label: label.clone(),
            reason: e.to_string(),
        })?;
    let ws_root = workspace_root(checkout, &crate_dir);
    let to_ws = ws_root
        .as_ref()
        .and_then(|(root, _)| crate_dir.strip_prefix(root).ok())
        .map(|rel| vec![".."; rel.components().count()].join("/"))
        .unwrap_or_default();
    let ws = ws_root.map(|(_, t)| t);
    let strs = |k: &str| -> Vec<String> {
        resolve_field(&manifest, k, ws.as_ref())
            .and_then(|v| v.as_array().cloned())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let rules = PackageRules {
        include: strs("include"),
        exclude: strs("exclude"),
    };
    let files = select_files(&crate_dir, &label, Some(&rules))?;
    let mut replace = BTreeMap::new();
    // a manifest using workspace inheritance (or declaring a workspace) is made standalone;
    // any other manifest is kept byte for byte
    if text.contains("workspace") {
        replace.insert(
            "Cargo.toml".to_string(),
            standalone_manifest(&text, ws.as_ref(), &to_ws, &label)?,
        );
    }
    fs::create_dir_all(vendor_dir).map_err(io(&label))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{name}-{version}-"))
        .tempdir_in(vendor_dir)
        .map_err(io(&label))?;
    let staged = tmp.path().join(".out");
    let cks = copy_files(&crate_dir, &files, &staged, &label, &replace)?;
    fs::write(
        staged.join(".cargo-checksum.json"),
        checksum_json(&cks, None),
    )
    .map_err(io(&label))?;
    finish(
        &staged,
        &vendor_dir.join(vendor_dir_name(name, version)),
        &label,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::cargo::fixtures::{build_crate_from_files, CrateFile};
    use common::Classify;

    /// What the fetch computed of `bytes`.
    fn sha256(bytes: &[u8]) -> Digest {
        Digest::from_hex(HashAlgorithm::Sha256, &sha256_hex(bytes)).unwrap()
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // bypass the tar crate's own path checks to craft malicious names
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn try_vendor(bytes: &[u8]) -> Result<VendoredCrate, VendorError> {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.crate");
        fs::write(&f, bytes).unwrap();
        let r = vendor_registry_crate(
            &f,
            &sha256(bytes),
            "foo",
            "1.0.0",
            &sha256_hex(bytes),
            &d.path().join("vendor"),
            &Limits::default(),
        );
        // nothing escaped
        assert!(!d.path().join("evil").exists());
        r
    }

    #[test]
    fn vendors_registry_crate_like_cargo() {
        let bytes = build_crate_from_files(
            "foo",
            "1.0.0",
            &[
                CrateFile::new(
                    "Cargo.toml",
                    b"[package]\nname = \"foo\"\nversion = \"1.0.0\"\nlicense = \"MIT/Apache-2.0\"\n",
                ),
                CrateFile::new("Cargo.toml.orig", b"orig"),
                CrateFile::new(".cargo_vcs_info.json", b"{}"),
                CrateFile::new(".gitignore", b"target"),
                CrateFile::new("src/lib.rs", b"pub fn f() {}"),
                CrateFile::new("src/x.rs.rej", b"rej"),
                CrateFile::new("sub/.gitignore", b"x"),
            ],
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("foo.crate");
        fs::write(&f, &bytes).unwrap();
        let ck = sha256_hex(&bytes);
        let out = vendor_registry_crate(
            &f,
            &sha256(&bytes),
            "foo",
            "1.0.0",
            &ck,
            &d.path().join("vendor"),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.license.as_deref(), Some("MIT OR Apache-2.0"));
        let out = out.dir;
        assert_eq!(out, d.path().join("vendor/foo-1.0.0"));
        let j: serde_json::Value =
            serde_json::from_slice(&fs::read(out.join(".cargo-checksum.json")).unwrap()).unwrap();
        let files: Vec<&String> = j["files"].as_object().unwrap().keys().collect();
        // cargo 1.95 keeps `.orig`/`.rej` and drops `.gitignore` at any depth for registry crates
        assert_eq!(
            files,
            vec![
                ".cargo_vcs_info.json",
                "Cargo.toml",
                "Cargo.toml.orig",
                "src/lib.rs",
                "src/x.rs.rej"
            ]
        );
        assert_eq!(j["package"], ck);
        assert_eq!(j["files"]["src/lib.rs"], sha256_hex(b"pub fn f() {}"));
        assert!(!out.join("sub/.gitignore").exists());
        // idempotent
        vendor_registry_crate(
            &f,
            &sha256(&bytes),
            "foo",
            "1.0.0",
            &ck,
            &d.path().join("vendor"),
            &Limits::default(),
        )
        .unwrap();
        // tampered
        let e = vendor_registry_crate(
            &f,
            &sha256(&bytes),
            "foo",
            "1.0.0",
            &"0".repeat(64),
            &d.path().join("vendor2"),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind().error_type(), "InvalidChecksum");
        assert!(!d.path().join("vendor2/foo-1.0.0").exists());
    }

    #[test]
    fn licence_of_the_crates_manifest() {
        let lic = |toml: &str| manifest_license(toml.as_bytes());
        assert_eq!(
            lic("[package]\nname = \"a\"\nlicense = \"MIT OR Apache-2.0\"\n").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            lic("[package]\nlicense = \"MIT / Apache-2.0\"\n").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            lic("[package]\nlicense = \"Apache-2.0 WITH LLVM-exception\"\n").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception")
        );
        // a licence file alone, none, an empty one, a manifest that does not parse
        assert_eq!(lic("[package]\nlicense-file = \"LICENSE\"\n"), None);
        assert_eq!(lic("[package]\nname = \"a\"\n"), None);
        assert_eq!(lic("[package]\nlicense = \" \"\n"), None);
        assert_eq!(lic("[package\nlicense = \"MIT\""), None);
        assert_eq!(manifest_license(&[0xff, 0xfe]), None);
        let mut huge = b"[package]\nlicense = \"MIT\"\n#".to_vec();
        huge.resize(MAX_MANIFEST_BYTES + 1, b'x');
        assert_eq!(manifest_license(&huge), None);
        // a crate whose manifest declares none still vendors
        let bytes = build_crate_from_files(
            "foo",
            "1.0.0",
            &[
                CrateFile::new("Cargo.toml", b"[package\nbroken"),
                CrateFile::new("src/lib.rs", b""),
            ],
        );
        assert_eq!(try_vendor(&bytes).unwrap().license, None);
        // read from the .crate alone, as for a kept vendored crate
        let d = tempfile::tempdir().unwrap();
        let with_licence = d.path().join("foo.crate");
        fs::write(
            &with_licence,
            build_crate_from_files(
                "foo",
                "1.0.0",
                &[
                    CrateFile::new(".cargo_vcs_info.json", b"{}"),
                    CrateFile::new("Cargo.lock", b"# lock"),
                    CrateFile::new("Cargo.toml", b"[package]\nlicense = \"MIT/Apache-2.0\"\n"),
                    CrateFile::new("src/lib.rs", b""),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            crate_license(&with_licence, "foo", "1.0.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        // another crate's name, no such file, not a crate
        assert_eq!(crate_license(&with_licence, "bar", "1.0.0"), None);
        assert_eq!(
            crate_license(&d.path().join("none.crate"), "foo", "1.0.0"),
            None
        );
        fs::write(d.path().join("junk.crate"), b"junk").unwrap();
        assert_eq!(
            crate_license(&d.path().join("junk.crate"), "foo", "1.0.0"),
            None
        );
    }

    #[test]
    fn refuses_malicious_archives() {
        use tar::EntryType::*;
        for (entries, what) in [
            (vec![("foo-1.0.0/../evil", Regular, &b"x"[..])], "dotdot"),
            (vec![("/evil", Regular, &b"x"[..])], "absolute"),
            (
                vec![("other-1.0.0/src/lib.rs", Regular, &b"x"[..])],
                "wrong prefix",
            ),
            (vec![("foo-1.0.0/link", Symlink, &b""[..])], "symlink"),
            (vec![("foo-1.0.0/hard", Link, &b""[..])], "hardlink"),
            (vec![("foo-1.0.0/dev", Char, &b""[..])], "device"),
            (vec![("foo-1.0.0/fifo", Fifo, &b""[..])], "fifo"),
            (vec![("foo-1.0.0", Regular, &b"x"[..])], "root file"),
        ] {
            let r = try_vendor(&raw_tar(&entries));
            assert!(r.is_err(), "{what} accepted");
            assert_eq!(
                r.unwrap_err().kind().origin(),
                common::ErrorOrigin::Client,
                "{what}"
            );
        }
        assert!(try_vendor(b"not a gzip").is_err());
        let d = tempfile::tempdir().unwrap();
        let bytes = raw_tar(&[("foo-1.0.0/big", tar::EntryType::Regular, &[0u8; 2048][..])]);
        fs::write(d.path().join("c"), &bytes).unwrap();
        let small = Limits {
            max_entry_bytes: 1024,
            ..Limits::default()
        };
        let e = vendor_registry_crate(
            &d.path().join("c"),
            &sha256(&bytes),
            "foo",
            "1.0.0",
            &sha256_hex(&bytes),
            d.path(),
            &small,
        )
        .unwrap_err();
        assert!(matches!(e, VendorError::TooLarge { .. }));
        let e = vendor_registry_crate(
            &d.path().join("c"),
            &sha256(&bytes),
            "../x",
            "1.0.0",
            "",
            d.path(),
            &small,
        )
        .unwrap_err();
        assert!(matches!(e, VendorError::InvalidName(_)));
    }

    #[test]
    fn rules() {
        assert!(rule_matches("big/*", "big/blob.bin"));
        assert!(rule_matches("*.bin", "a/b/c.bin"));
        assert!(rule_matches("/tests", "tests/x.rs"));
        assert!(!rule_matches("/tests", "src/tests/x.rs"));
        assert!(rule_matches("src/**/*.rs", "src/a/b/c.rs"));
        assert!(rule_matches("docs/", "docs/x.md"));
        assert!(!rule_matches("docs/", "docs"));
    }

    #[test]
    fn git_crate_in_workspace() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("repo");
        let w = |p: &str, c: &str| {
            let p = r.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        };
        w("Cargo.toml", "[workspace]\nmembers=[\"g\"]\n[workspace.package]\nversion=\"0.2.0\"\nreadme=\"README.md\"\n[workspace.dependencies]\nserde = { version = \"1\", default-features = false }\nh = { path = \"h\" }\n[workspace.lints.rust]\nunsafe_code = \"forbid\"\n");
        w("g/Cargo.toml", "[package]\nname=\"g\"\nversion.workspace=true\nreadme.workspace=true\nexclude=[\"big/*\"]\n[dependencies]\nserde = { workspace = true, features = [\"derive\"] }\nh.workspace = true\n[lints]\nworkspace = true\n");
        w("g/src/lib.rs", "");
        w("g/big/x", "");
        w("g/.gitignore", "");
        w("g/sub/Cargo.toml", "[package]\nname=\"sub\"\n");
        w("g/sub/src/lib.rs", "");
        let out = vendor_git_crate(&r, "g", "0.2.0", &d.path().join("v")).unwrap();
        let j: serde_json::Value =
            serde_json::from_slice(&fs::read(out.join(".cargo-checksum.json")).unwrap()).unwrap();
        assert_eq!(j["package"], serde_json::Value::Null);
        let files: Vec<&String> = j["files"].as_object().unwrap().keys().collect();
        assert_eq!(files, vec!["Cargo.toml", "src/lib.rs"]);
        let m: toml::Table =
            toml::from_str(&fs::read_to_string(out.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(m["package"]["version"].as_str(), Some("0.2.0"));
        assert_eq!(m["dependencies"]["serde"]["version"].as_str(), Some("1"));
        assert_eq!(
            m["dependencies"]["serde"]["default-features"].as_bool(),
            Some(false)
        );
        assert_eq!(m["dependencies"]["h"]["path"].as_str(), Some("../h"));
        assert_eq!(m["package"]["readme"].as_str(), Some("../README.md"));
        assert_eq!(m["lints"]["rust"]["unsafe_code"].as_str(), Some("forbid"));
        assert!(find_git_crate(&r, "g", "9.9.9")
            .unwrap_err()
            .to_string()
            .contains("0.2.0"));
        assert!(find_git_crate(&r, "nope", "1.0.0").is_err());
    }
}
