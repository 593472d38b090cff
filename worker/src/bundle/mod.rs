//! The request's bundle: `app/` + `deps/`, byte-reproducible, streamed to the store as gzip
//! members (a `.tar.gz` every gzip reader reads whole): what the request wrote, compressed now;
//! its stored files, streamed as they are; what was made from them, compressed once and kept.

pub mod member;

use common::archive::{HashingWriter, TarGzWriter};
use common::store::{file_record, BundleReuse};
use common::{ErrorKind, Failure, Store};
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the bundle keeps files an offline build needs over `app/` (rewritten lockfiles, client
/// configuration), laid out as `app/` is: `cp -r deps/app-overlay/. app/`. `app/` itself stays
/// byte for byte the commit.
pub const APP_OVERLAY: &str = "deps/app-overlay";

/// `larder fetch-deps` only: files an offline build needs in the output directory itself (as
/// Hermeto's Bundler configuration, `bundler/config_override/config`), laid out as the output
/// directory is; each becomes a project file at `<output>/<path>`. Never part of a bundle.
pub const OUTPUT_OVERLAY: &str = "deps/output-overlay";

/// Write `content` at `rel` (relative to the output directory) in [`OUTPUT_OVERLAY`].
pub fn write_output_overlay_file(
    bundle_root: &Path,
    rel: &str,
    content: &[u8],
) -> Result<(), Failure> {
    write_below(bundle_root, &format!("{OUTPUT_OVERLAY}/{rel}"), content)
}

/// The overlay path of a bundle path under `app/` (`app/web/package-lock.json` →
/// `deps/app-overlay/web/package-lock.json`).
pub fn overlay_path(app_path: &str) -> String {
    let rel = app_path.strip_prefix("app/").unwrap_or(app_path);
    format!("{APP_OVERLAY}/{rel}")
}

/// Write `content` at the overlay path of `app_path` under the bundle's root.
pub fn write_overlay_file(
    bundle_root: &Path,
    app_path: &str,
    content: &[u8],
) -> Result<(), Failure> {
    write_below(bundle_root, &overlay_path(app_path), content)
}

/// Write `content` at `rel` below the bundle's root (a relative path that stays below it).
fn write_below(bundle_root: &Path, rel: &str, content: &[u8]) -> Result<(), Failure> {
    let safe = common::archive::safe_relative(Path::new(&rel)).ok_or_else(|| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Unsafe overlay path {rel:?}"),
        )
    })?;
    let dest = bundle_root.join(safe);
    let io = |e: std::io::Error| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Cannot write {rel}: {e}"),
        )
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&dest, content).map_err(io)
}

/// The bundle being laid out: files written under its root; stored files, and members made
/// from them ([`member`]), placed at their bundle paths without a copy.
#[derive(Clone, Debug)]
pub struct BundleTree {
    root: PathBuf,
    /// bundle path (`deps/npm/x-1.0.0.tgz`) → what is there
    stored: Arc<Mutex<BTreeMap<String, Placed>>>,
}

/// What is placed at a bundle path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Placed {
    /// A stored file, by key (streamed from the store when the bundle is written), with the
    /// sha256 recorded on it when it was verified (`common::store::file_record`; checked as
    /// it streams) and whether it is executable (its mode in the bundle).
    Stored {
        key: String,
        sha256: Option<[u8; 32]>,
        executable: bool,
    },
    /// A member made from stored inputs ([`BundleTree::place_derived`]).
    Derived { key: String, sha256: [u8; 32] },
    /// A small file the layout made ([`BundleTree::place_bytes`]).
    Bytes(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{0:?} is not a safe path in the bundle")]
    UnsafePath(String),
    #[error("{path} is placed twice in the bundle, from {first} and {second}")]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("{key} is not a file in the store")]
    NotStored { key: String },
    #[error(transparent)]
    Member(#[from] member::MemberError),
    #[error("Cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("The stored file {0} does not have the sha256 it was verified with")]
    Damaged(String),
}

impl common::Classify for PlaceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::FileAccessError
    }
}

impl BundleTree {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            stored: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Put the stored file `key` at `path` (`deps/...`) in the bundle. The same file at the same
    /// path twice is one entry.
    pub fn place_stored(&self, store: &Store, path: &str, key: &str) -> Result<(), PlaceError> {
        let path = self.checked_path(path)?;
        let not_stored = || PlaceError::NotStored {
            key: key.to_string(),
        };
        let file = store.path(key).map_err(|_| not_stored())?;
        let meta = std::fs::metadata(&file).map_err(|_| not_stored())?;
        if !meta.is_file() {
            return Err(not_stored());
        }
        let placed = Placed::Stored {
            key: key.to_string(),
            sha256: file_record::recorded_digests(&file).map(|d| *d.sha256()),
            // what tar's deterministic mode keeps of it: 0755 when the owner may run it
            executable: meta.permissions().mode() & 0o100 != 0,
        };
        self.insert(path, placed)
    }

    /// Put at `path` (`deps/...`) what `cache_key` names, made from stored inputs: the kept
    /// member when there is one, else `build` makes it (see [`member::derived_member`]).
    /// `cache_key` must name everything the result depends on.
    pub fn place_derived<E: From<PlaceError>>(
        &self,
        store: &Store,
        path: &str,
        cache_key: &str,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(), E> {
        let path = self.checked_path(path)?;
        let member = member::derived_member(store, &path, cache_key, |dir: &Path| {
            build(dir).map_err(Derived::Build)
        })
        .map_err(|e| match e {
            Derived::Build(e) => e,
            Derived::Member(e) => E::from(PlaceError::Member(e)),
        })?;
        self.insert(
            path,
            Placed::Derived {
                key: member.key,
                sha256: member.sha256,
            },
        )
        .map_err(E::from)
    }

    /// Put a small file the layout made at `path` (`deps/...`), kept in memory until the bundle
    /// is written: nothing written into the work tree, no directory made for it.
    pub fn place_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<(), PlaceError> {
        let path = self.checked_path(path)?;
        self.insert(path, Placed::Bytes(bytes))
    }

    /// `path` made safe. Its directories are not made in the tree (thousands of `mkdir`s are
    /// most of a warm layout's time): the bundle has entries for them ([`write_bundle`]).
    fn checked_path(&self, path: &str) -> Result<String, PlaceError> {
        let rel = common::archive::safe_relative(Path::new(path))
            .filter(|p| p.starts_with("deps") && p != Path::new("deps"))
            .ok_or_else(|| PlaceError::UnsafePath(path.to_string()))?;
        Ok(rel.to_string_lossy().into_owned())
    }

    fn insert(&self, path: String, placed: Placed) -> Result<(), PlaceError> {
        let mut stored = self.stored.lock().expect("not poisoned");
        // a file placed where a placed directory tree has one of its own, or the reverse
        let below = format!("{path}/");
        let nested = stored
            .range(below.clone()..)
            .next()
            .filter(|(k, _)| k.starts_with(&below))
            .map(|(k, _)| k.clone())
            .or_else(|| {
                path.char_indices()
                    .filter(|&(_, c)| c == '/')
                    .map(|(i, _)| &path[..i])
                    .find(|a| stored.contains_key(*a))
                    .map(str::to_string)
            });
        if let Some(other) = nested {
            return Err(PlaceError::Conflict {
                first: other,
                second: format!("{placed:?}"),
                path,
            });
        }
        match stored.get(&path) {
            Some(first) if *first != placed => Err(PlaceError::Conflict {
                first: format!("{first:?}"),
                second: format!("{placed:?}"),
                path,
            }),
            Some(_) => Ok(()),
            None => {
                stored.insert(path, placed);
                Ok(())
            }
        }
    }

    /// Whether something is placed at `path`.
    pub fn has_stored(&self, path: &str) -> bool {
        self.stored.lock().expect("not poisoned").contains_key(path)
    }

    /// Write what is placed into the directory `dest` instead of a bundle (`larder fetch-deps`'s
    /// output directory): stored files copied out of the store (checked against the sha256
    /// recorded when they were verified, as a bundle checks them), derived members unpacked,
    /// small files written.
    pub fn write_placed_to(&self, store: &Store, dest: &Path) -> Result<(), PlaceError> {
        for (path, placed) in self.take_stored() {
            let target = dest.join(&path);
            let write = |source: io::Error| PlaceError::Write {
                path: path.clone(),
                source,
            };
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(write)?;
            }
            match placed {
                Placed::Stored {
                    key,
                    sha256,
                    executable,
                } => {
                    let source = store
                        .path(&key)
                        .map_err(|_| PlaceError::NotStored { key: key.clone() })?;
                    let copied = copy_hashing(&source, &target).map_err(write)?;
                    if sha256.is_some_and(|recorded| recorded != copied) {
                        let _ = std::fs::remove_file(&target);
                        return Err(PlaceError::Damaged(key));
                    }
                    if executable {
                        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                            .map_err(write)?;
                    }
                }
                Placed::Derived { key, sha256 } => {
                    let member = store
                        .path(&key)
                        .map_err(|_| PlaceError::NotStored { key: key.clone() })?;
                    // checked as a bundle checks it, before anything of it is unpacked
                    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
                    io::copy(
                        &mut std::fs::File::open(&member).map_err(write)?,
                        &mut hasher,
                    )
                    .map_err(write)?;
                    if <[u8; 32]>::from(sha2::Digest::finalize(hasher)) != sha256 {
                        member::discard(store, &key);
                        return Err(PlaceError::Damaged(key));
                    }
                    common::archive::unpack_tar_gz(&member, dest, Default::default())
                        .map_err(|e| write(io::Error::other(e.to_string())))?;
                }
                Placed::Bytes(bytes) => std::fs::write(&target, bytes).map_err(write)?,
            }
        }
        Ok(())
    }

    fn take_stored(&self) -> BTreeMap<String, Placed> {
        std::mem::take(&mut *self.stored.lock().expect("not poisoned"))
    }
}

/// Copy `source` to a new file `target`, returning the sha256 of what was copied.
fn copy_hashing(source: &Path, target: &Path) -> io::Result<[u8; 32]> {
    use sha2::Digest as _;
    let mut input = std::fs::File::open(source)?;
    let mut out = BufWriter::new(std::fs::File::create(target)?);
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = io::Read::read(&mut input, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(hasher.finalize().into())
}

/// A derived member's failure: the builder's own, or the member's.
enum Derived<E> {
    Build(E),
    Member(member::MemberError),
}

impl<E> From<member::MemberError> for Derived<E> {
    fn from(e: member::MemberError) -> Self {
        Derived::Member(e)
    }
}

#[derive(Debug, thiserror::Error)]
enum BundleError {
    #[error("Cannot write the bundle: {0}")]
    Io(#[from] io::Error),
    #[error("Cannot write the bundle: {0}")]
    Member(#[from] member::MemberError),
    #[error("Cannot write the bundle: {0}")]
    Store(#[from] common::store::StoreError),
    #[error("The bundle has a file at {0}, where a stored file is placed")]
    Collision(String),
    #[error("The bundle member {0} does not have its recorded sha256 (it was removed: it is made again by the next request that needs it)")]
    DamagedMember(String),
    #[error("The stored file {0} does not have the sha256 it was verified with (it was removed: it is downloaded again by the next request that needs it)")]
    DamagedStored(String),
}

/// Names the bundle writer's output for given inputs: a change to what it writes for the same
/// inputs must change this, so that recipes recorded before name nothing.
const BUNDLE_FORMAT: &str = concat!("larder-bundle/1/", env!("CARGO_PKG_VERSION"));

/// Write the request's bundle: `app/` and the files written under `deps/` compressed now, the
/// placed stored files streamed from the store, each kept derived member copied, then the end
/// of the archive; kept by its sha256 (shared with every request whose bundle is the same) and
/// named for the request.
pub fn write_bundle(
    store: &Store,
    request_id: i64,
    tree: &BundleTree,
    include_git: bool,
) -> Result<WrittenBundle, Failure> {
    let stored = tree.take_stored();
    let sha256_hex = write_members(store, request_id, tree.root(), &stored, include_git)
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    let stored_keys = stored
        .into_values()
        .filter_map(|placed| match placed {
            Placed::Stored { key, .. } => Some(key),
            Placed::Derived { .. } | Placed::Bytes(_) => None,
        })
        .collect();
    Ok(WrittenBundle {
        sha256_hex,
        stored_keys,
    })
}

/// What [`write_bundle`] made.
#[derive(Debug)]
pub struct WrittenBundle {
    /// The bundle's sha256 (hex): its blob's name.
    pub sha256_hex: String,
    /// The stored files it holds, by key.
    pub stored_keys: Vec<String>,
}

fn write_members(
    store: &Store,
    request_id: i64,
    root: &Path,
    stored: &BTreeMap<String, Placed>,
    include_git: bool,
) -> Result<String, BundleError> {
    for path in stored.keys() {
        if root.join(path).symlink_metadata().is_ok() {
            return Err(BundleError::Collision(path.clone()));
        }
    }
    let temp = store.temp_file()?;
    let mut out = HashingWriter::new(BufWriter::new(temp.reopen()?));
    let mut first = TarGzWriter::member(&mut out);
    let skip_git = |p: &Path| !include_git && p.file_name().is_some_and(|n| n == ".git");
    first.append_tree("app", &root.join("app"), &skip_git)?;
    let deps = root.join("deps");
    if deps.is_dir() {
        first.append_tree("deps", &deps, &|_| false)?;
    } else {
        first.append_empty_dir("deps")?;
    }
    // the directories of what is placed that the request did not write into: an entry each,
    // as the tree walk makes for those it did (a parent sorts before its children)
    let placed_dirs: std::collections::BTreeSet<&str> = stored
        .keys()
        .flat_map(|path| {
            path.char_indices()
                .filter(|&(_, c)| c == '/')
                .map(|(i, _)| &path[..i])
        })
        .collect();
    for dir in placed_dirs {
        match root.join(dir).symlink_metadata() {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(BundleError::Collision(dir.to_string())),
            Err(_) => first.append_empty_dir(dir)?,
        }
    }
    for (path, placed) in stored {
        if let Placed::Bytes(bytes) = placed {
            first.append_bytes(path, bytes)?;
        }
    }
    let (_, first_sha256, _) = first.finish()?;
    // the same inputs make the same bytes: a bundle made of them before is reused, read once
    // to check it, instead of being written again (most of a warm request's time)
    let recipe = recipe_of(&first_sha256, stored);
    if let Some(hex) = recipe
        .as_deref()
        .and_then(|r| reusable(store, r, request_id))
    {
        return Ok(hex);
    }
    // stored files are compressed archives already: one member of stored (not deflated)
    // blocks, streamed from the store at the speed of a copy, each checked against the
    // sha256 it was verified with
    let mut files = TarGzWriter::stored_member(&mut out);
    for (path, placed) in stored {
        if let Placed::Stored { key, sha256, .. } = placed {
            let file = store.path(key)?;
            let (streamed, read) = files.append_file_hashed(path, &file)?;
            if sha256.is_some_and(|recorded| recorded != streamed) {
                use std::os::unix::fs::MetadataExt;
                // the file read, not one stored at its key since
                let same = std::fs::symlink_metadata(&file)
                    .is_ok_and(|now| (now.dev(), now.ino()) == (read.dev(), read.ino()));
                if same {
                    let _ = store.remove(key);
                }
                return Err(BundleError::DamagedStored(key.clone()));
            }
        }
    }
    files.finish()?;
    for placed in stored.values() {
        let Placed::Derived { key, sha256 } = placed else {
            continue;
        };
        let mut file = std::fs::File::open(store.path(key)?)?;
        let mut check = HashingWriter::new(&mut out);
        io::copy(&mut file, &mut check)?;
        let (_, digest, _) = check.finish();
        if digest != *sha256 {
            member::discard(store, key);
            return Err(BundleError::DamagedMember(key.clone()));
        }
    }
    out.write_all(&common::archive::end_of_archive_member())?;
    let (buf, digest, size) = out.finish();
    buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let digest = hex::encode(digest);
    store.publish_bundle(temp, &digest, request_id)?;
    if let Some(recipe) = &recipe {
        // only a shortcut for the next request: the bundle is made
        if let Err(e) = store.record_bundle_recipe(recipe, &digest) {
            tracing::warn!(error = %e, "cannot record the bundle's recipe");
        }
    }
    tracing::info!(size, sha256 = %digest, members = stored.len(), "bundle written");
    Ok(digest)
}

/// The bundle made before of the inputs `recipe` names, now the request's (its sha256), if
/// there is one whole. A failure here only costs the shortcut: the bundle is written.
fn reusable(store: &Store, recipe: &str, request_id: i64) -> Option<String> {
    let hex = match store.bundle_of_recipe(recipe) {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a bundle recipe; writing the bundle");
            return None;
        }
    };
    match store.reuse_bundle(&hex, request_id) {
        Ok(BundleReuse::Named) => {
            tracing::info!(sha256 = %hex, "bundle reused: made of the same inputs before");
            Some(hex)
        }
        Ok(BundleReuse::Missing) => None,
        Ok(BundleReuse::Damaged) => {
            tracing::warn!(sha256 = %hex, "a kept bundle was damaged and is removed; writing it again");
            None
        }
        Err(e) => {
            tracing::warn!(sha256 = %hex, error = %e, "cannot reuse a kept bundle; writing it again");
            None
        }
    }
}

/// What the bundle is made of, named: the format, the first member's bytes (`app/`, what the
/// request wrote, the directories, the placed bytes), and every placed path with the sha256
/// of what is there. None when a stored file has no recorded digest to name it by.
fn recipe_of(first_sha256: &[u8; 32], stored: &BTreeMap<String, Placed>) -> Option<String> {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(BUNDLE_FORMAT);
    hasher.update([0]);
    hasher.update(first_sha256);
    for (path, placed) in stored {
        hasher.update(path);
        match placed {
            Placed::Stored {
                sha256, executable, ..
            } => {
                hasher.update(if *executable { b"\0x" } else { b"\0s" });
                hasher.update(sha256.as_ref()?);
            }
            Placed::Derived { sha256, .. } => {
                hasher.update(b"\0d");
                hasher.update(sha256);
            }
            Placed::Bytes(bytes) => {
                hasher.update(b"\0b");
                hasher.update(Sha256::digest(bytes));
            }
        }
    }
    Some(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// Every entry of an unpacked tree: path → (mode, bytes; none for a directory).
    fn tree_of(root: &Path) -> BTreeMap<String, (u32, Option<Vec<u8>>)> {
        let mut out = BTreeMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let mode = meta.permissions().mode() & 0o777;
                if meta.is_dir() {
                    dirs.push(p.clone());
                    out.insert(rel, (mode, None));
                } else {
                    out.insert(rel, (mode, Some(std::fs::read(&p).unwrap())));
                }
            }
        }
        out
    }

    fn unpack_with(tool: &str, bundle: &Path, dest: &Path) {
        std::fs::create_dir_all(dest).unwrap();
        let status = match tool {
            "tar" => Command::new("tar")
                .args(["-xzf"])
                .arg(bundle)
                .arg("-C")
                .arg(dest)
                .status(),
            _ => Command::new("python3")
                .args([
                    "-c",
                    "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])",
                ])
                .arg(bundle)
                .arg(dest)
                .status(),
        };
        assert!(status.unwrap().success(), "{tool} unpacks the bundle");
    }

    #[test]
    fn a_bundle_of_members_unpacks_as_the_whole_tree_did() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("app/src")).unwrap();
        std::fs::write(work.join("app/package.json"), "{}").unwrap();
        std::fs::write(work.join("app/src/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            work.join("app/src/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir_all(work.join("deps/app-overlay")).unwrap();
        std::fs::write(work.join("deps/app-overlay/.npmrc"), "offline=true\n").unwrap();
        let long = format!("deps/npm/@scope/{}/-/x-1.0.0.tgz", "n".repeat(120));
        let stored = [
            ("deps/npm/a/-/a-1.0.0.tgz", vec![1u8; 100_000]),
            (long.as_str(), b"long name".to_vec()),
            ("deps/npm/empty.tgz", Vec::new()),
        ];
        let tree = BundleTree::new(&work);
        for (key, bytes) in &stored {
            store.put_bytes(key, bytes).unwrap();
            tree.place_stored(&store, key, key).unwrap();
        }
        tree.place_bytes("deps/gomod/m/@v/list", b"v1.0.0\n".to_vec())
            .unwrap();
        // placed twice: one entry; another file at a placed path: refused
        tree.place_stored(&store, stored[0].0, stored[0].0).unwrap();
        assert!(matches!(
            tree.place_stored(&store, stored[0].0, &long),
            Err(PlaceError::Conflict { .. })
        ));
        assert!(matches!(
            tree.place_stored(&store, "app/x", &long),
            Err(PlaceError::UnsafePath(_))
        ));
        // a file inside a placed file, or a file where a placed one has its directory
        for nested in ["deps/npm/a/-/a-1.0.0.tgz/x", "deps/npm/a/-"] {
            assert!(
                matches!(
                    tree.place_stored(&store, nested, &long),
                    Err(PlaceError::Conflict { .. })
                ),
                "{nested}"
            );
        }

        // the old way: the stored files in the tree, the whole tree compressed at once
        let old_work = dir.path().join("old");
        assert!(Command::new("cp")
            .args(["-a"])
            .arg(&work)
            .arg(&old_work)
            .status()
            .unwrap()
            .success());
        for (key, _) in &stored {
            let dest = old_work.join(key);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::hard_link(store.path(key).unwrap(), dest).unwrap();
        }
        std::fs::create_dir_all(old_work.join("deps/gomod/m/@v")).unwrap();
        std::fs::write(old_work.join("deps/gomod/m/@v/list"), "v1.0.0\n").unwrap();
        let old_bundle = dir.path().join("old.tar.gz");
        let mut w = TarGzWriter::new(std::fs::File::create(&old_bundle).unwrap());
        w.append_tree("app", &old_work.join("app"), &|_| false)
            .unwrap();
        w.append_tree("deps", &old_work.join("deps"), &|_| false)
            .unwrap();
        w.finish().unwrap();

        let digest = write_bundle(&store, 7, &tree, false).unwrap().sha256_hex;
        let (new_bundle, recorded) = store.bundle_of(7).unwrap().unwrap();
        assert_eq!(recorded, digest);
        let bytes = std::fs::read(&new_bundle).unwrap();
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            digest
        );
        for tool in ["tar", "python"] {
            let (old_out, new_out) = (
                dir.path().join(format!("o-{tool}")),
                dir.path().join(format!("n-{tool}")),
            );
            unpack_with(tool, &old_bundle, &old_out);
            unpack_with(tool, &new_bundle, &new_out);
            let (old_tree, new_tree) = (tree_of(&old_out), tree_of(&new_out));
            assert_eq!(old_tree.len(), 20, "{:?}", old_tree.keys());
            assert_eq!(new_tree, old_tree, "{tool}");
        }
        let out = dir.path().join("ours");
        common::archive::unpack_tar_gz(&new_bundle, &out, Default::default()).unwrap();
        assert_eq!(tree_of(&out), tree_of(&dir.path().join("o-tar")));

        // the same request again (a warm one): the same bytes
        let again = BundleTree::new(&work);
        for (key, _) in &stored {
            again.place_stored(&store, key, key).unwrap();
        }
        again
            .place_bytes("deps/gomod/m/@v/list", b"v1.0.0\n".to_vec())
            .unwrap();
        assert_eq!(
            write_bundle(&store, 8, &again, false).unwrap().sha256_hex,
            digest
        );
    }

    #[test]
    fn a_derived_tree_is_built_once_kept_and_made_again_when_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("app")).unwrap();
        let builds = std::cell::Cell::new(0);
        let build = |out: &Path| -> Result<(), PlaceError> {
            builds.set(builds.get() + 1);
            std::fs::create_dir_all(out.join("c-1.0.0/src")).unwrap();
            std::fs::write(out.join("c-1.0.0/src/lib.rs"), "pub fn f() {}\n").unwrap();
            std::fs::write(out.join("c-1.0.0/.cargo-checksum.json"), "{}").unwrap();
            Ok(())
        };
        let bundle_with = |id: i64| {
            let tree = BundleTree::new(&work);
            tree.place_derived(&store, "deps/cargo/c-1.0.0", "crate c sha", build)
                .unwrap();
            write_bundle(&store, id, &tree, false).unwrap().sha256_hex
        };
        let first = bundle_with(1);
        assert_eq!(builds.get(), 1);
        assert_eq!(bundle_with(2), first);
        assert_eq!(builds.get(), 1, "the kept member is reused");
        let key = member::derived_member_key("deps/cargo/c-1.0.0", "crate c sha");
        std::fs::write(store.path(&key).unwrap(), b"damaged").unwrap();
        assert_eq!(bundle_with(3), first);
        assert_eq!(builds.get(), 2, "a damaged member is made again");
        let (path, _) = store.bundle_of(3).unwrap().unwrap();
        let out = dir.path().join("out");
        common::archive::unpack_tar_gz(&path, &out, Default::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("deps/cargo/c-1.0.0/src/lib.rs")).unwrap(),
            "pub fn f() {}\n"
        );
        // a builder's failure is the caller's error, and nothing is placed
        let tree = BundleTree::new(&work);
        let failed = tree.place_derived(&store, "deps/cargo/d-1.0.0", "d", |_: &Path| {
            Err(PlaceError::UnsafePath("no".into()))
        });
        assert!(matches!(failed, Err(PlaceError::UnsafePath(_))));
        assert!(!tree.has_stored("deps/cargo/d-1.0.0"));
    }

    #[test]
    fn a_bundle_of_the_same_inputs_is_reused_checked_and_stored_files_are_checked_as_they_stream() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let Some((store, work)) = recording_fixture(dir.path()) else {
            return;
        };
        let key = "deps/npm/a/-/a-1.0.0.tgz";
        let stored = put_recorded(&store, key, &[7u8; 50_000]);
        let bundle_with = |id: i64| bundle_placing(&store, &work, key, id);
        let inode = |id: i64| {
            let (path, _) = store.bundle_of(id).unwrap().unwrap();
            std::fs::metadata(path).unwrap().ino()
        };
        let first = bundle_with(1).unwrap();
        assert_eq!(bundle_with(2).unwrap(), first);
        assert_eq!(inode(2), inode(1), "the same blob, not written again");

        // a damaged blob is not reused: removed, and written again
        let (blob, _) = store.bundle_of(2).unwrap().unwrap();
        let mut bytes = std::fs::read(&blob).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&blob, &bytes).unwrap();
        assert_eq!(bundle_with(3).unwrap(), first);
        let (blob, _) = store.bundle_of(3).unwrap().unwrap();
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                std::fs::read(&blob).unwrap()
            )),
            first
        );

        // a stored file whose bytes changed without a write (its record still stands) fails
        // the next bundle that streams it, and is removed to be downloaded again
        std::fs::write(work.join("app/package.json"), "{\"other\": 1}").unwrap();
        let mtime = std::fs::metadata(&stored).unwrap().modified().unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&stored)
            .unwrap();
        std::io::Write::write_all(&mut &file, &[8u8; 10]).unwrap();
        file.set_modified(mtime).unwrap();
        let err = bundle_with(4).unwrap_err();
        assert!(err.message.contains(key), "{}", err.message);
        assert!(!stored.exists());
    }

    /// A store that keeps records, and a work tree holding `app/package.json`; None where the
    /// filesystem keeps no records.
    fn recording_fixture(dir: &Path) -> Option<(Store, PathBuf)> {
        let store = Store::new(dir.join("store"));
        std::fs::create_dir_all(store.root()).unwrap();
        if !file_record::kept_in(store.root()) {
            return None;
        }
        let work = dir.join("work");
        std::fs::create_dir_all(work.join("app")).unwrap();
        std::fs::write(work.join("app/package.json"), "{}").unwrap();
        Some((store, work))
    }

    /// The bundle of request `id`: the work tree, and the stored file `key` at its own path.
    fn bundle_placing(store: &Store, work: &Path, key: &str, id: i64) -> Result<String, Failure> {
        let tree = BundleTree::new(work);
        tree.place_stored(store, key, key).unwrap();
        write_bundle(store, id, &tree, false).map(|w| w.sha256_hex)
    }

    /// A stored file with its digest record.
    fn put_recorded(store: &Store, key: &str, bytes: &[u8]) -> PathBuf {
        let stored = store.put_bytes(key, bytes).unwrap();
        let digests = common::digest::FileDigests::of_file(&stored).unwrap();
        file_record::record_digests(&stored, &digests, &std::fs::metadata(&stored).unwrap())
            .unwrap();
        stored
    }

    #[test]
    fn a_reuse_that_finds_the_blob_gone_leaves_no_reference_behind() {
        let dir = tempfile::tempdir().unwrap();
        let Some((store, work)) = recording_fixture(dir.path()) else {
            return;
        };
        let key = "deps/npm/a/-/a-1.0.0.tgz";
        let stored = put_recorded(&store, key, &[7u8; 50_000]);
        let bundle_with = |id: i64| bundle_placing(&store, &work, key, id);
        let h = bundle_with(1).unwrap();
        // request 1 goes stale: its blob goes, its recipe stays until a cleanup
        store.release_bundle(1).unwrap();
        // request 2, the same inputs: the blob is gone, and then its bundle fails
        let mtime = std::fs::metadata(&stored).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&stored)
            .unwrap();
        std::io::Write::write_all(&mut &f, &[8u8; 10]).unwrap();
        f.set_modified(mtime).unwrap();
        assert!(bundle_with(2).is_err());
        assert!(!store
            .root()
            .join(format!("bundles/sha256/{h}.refs/2"))
            .exists());
        store.release_bundle(2).unwrap();
        // request 3 makes the blob again; when it goes stale, the blob goes
        put_recorded(&store, key, &[7u8; 50_000]);
        assert_eq!(bundle_with(3).unwrap(), h);
        store.release_bundle(3).unwrap();
        assert!(!store
            .root()
            .join(format!("bundles/sha256/{h}.tar.gz"))
            .exists());
    }

    #[test]
    fn a_reference_taken_and_never_named_goes_with_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("app")).unwrap();
        let key = "deps/npm/a/-/a-1.0.0.tgz";
        put_recorded(&store, key, b"a");
        let tree = BundleTree::new(&work);
        tree.place_stored(&store, key, key).unwrap();
        let h = write_bundle(&store, 1, &tree, false).unwrap().sha256_hex;
        // request 2's worker killed between taking its reference and naming the blob: as
        // `reuse_bundle` leaves it after the reference, before the blob is read
        let refs = store.root().join(format!("bundles/sha256/{h}.refs"));
        std::fs::write(refs.join("2"), b"").unwrap();
        std::fs::write(store.root().join("bundles/2.tar.gz.pending"), &h).unwrap();
        store.release_bundle(2).unwrap();
        store.release_bundle(1).unwrap();
        assert!(!store
            .root()
            .join(format!("bundles/sha256/{h}.tar.gz"))
            .exists());
    }

    #[test]
    fn the_recipe_names_the_mode_tar_writes() {
        let dir = tempfile::tempdir().unwrap();
        let Some((store, work)) = recording_fixture(dir.path()) else {
            return;
        };
        let key = "deps/x/tool.bin";
        let stored = put_recorded(&store, key, b"tool");
        let bundle_with = |id: i64| bundle_placing(&store, &work, key, id).unwrap();
        std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o654)).unwrap();
        let group_x = bundle_with(1);
        std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o754)).unwrap();
        let owner_x = bundle_with(2);
        std::fs::remove_dir_all(store.root().join("bundles/recipes")).unwrap();
        assert_ne!(owner_x, group_x, "other bytes, another recipe");
        assert_eq!(
            bundle_with(3),
            owner_x,
            "what these inputs make, written again"
        );
    }

    #[test]
    fn a_written_file_where_a_stored_one_is_placed_fails_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("app")).unwrap();
        store.put_bytes("deps/npm/a.tgz", b"a").unwrap();
        let tree = BundleTree::new(&work);
        tree.place_stored(&store, "deps/npm/a.tgz", "deps/npm/a.tgz")
            .unwrap();
        std::fs::create_dir_all(work.join("deps/npm")).unwrap();
        std::fs::write(work.join("deps/npm/a.tgz"), "other").unwrap();
        let err = write_bundle(&store, 1, &tree, false).unwrap_err();
        assert!(err.message.contains("deps/npm/a.tgz"), "{}", err.message);
    }
}
