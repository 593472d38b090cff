//! Read a `Cargo.lock` (v1–v4) and the workspace's `Cargo.toml`s at a package path, and classify
//! every locked package as registry (crates.io), git (pinned commit) or path (inside the repo).
//!
//! Nothing here touches the network; every path is a [`RepoPath`] that stays inside the
//! repository after resolving symlinks.

use crate::pkg_managers::cargo::util::glob_match;
use crate::pkg_managers::limits;
use cargo_lock::package::{Checksum, GitReference, SourceId, SourceKind};
use common::artifact::cargo::is_crate_name;
use common::commit::CommitId;
use common::repo_path::{RepoPath, RepoPathError};
use common::ErrorKind;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::Path;

/// The crates.io index as written in every lockfile (git form, even when cargo talks sparse).
pub const CRATES_IO_REGISTRY: &str = "registry+https://github.com/rust-lang/crates.io-index";
/// The crates.io sparse index id (accepted as the same registry).
pub const CRATES_IO_SPARSE: &str = "sparse+https://index.crates.io/";

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("The Cargo.lock file is missing at {0}: commit a Cargo.lock (run `cargo generate-lockfile`) for the cargo package manager")]
    MissingLockfile(String),
    #[error("The Cargo.toml file is missing at {0}")]
    MissingManifest(String),
    #[error("The file {path} could not be read: {reason}")]
    Read { path: String, reason: String },
    #[error(transparent)]
    Limit(#[from] crate::pkg_managers::limits::LimitError),
    #[error("The file {path} is not a valid Cargo.lock: {reason}")]
    InvalidLockfile { path: String, reason: String },
    #[error("The file {path} is not a valid Cargo.toml: {reason}")]
    InvalidManifest { path: String, reason: String },
    #[error("The package {name}@{version} comes from the registry {source_id}; only crates.io is supported")]
    UnsupportedRegistry {
        name: String,
        version: String,
        source_id: String,
    },
    #[error("The package {name}@{version} uses an unsupported source {source_id}")]
    UnsupportedSource {
        name: String,
        version: String,
        source_id: String,
    },
    #[error("The registry package {name}@{version} has no checksum in Cargo.lock; regenerate the lockfile with a current cargo")]
    MissingChecksum { name: String, version: String },
    #[error("The git package {name}@{version} is not pinned to a full 40-hex commit in Cargo.lock (source {source_id})")]
    GitNotPinned {
        name: String,
        version: String,
        source_id: String,
    },
    #[error("The crate name {0:?} is not valid")]
    InvalidName(String),
    #[error("Cargo.lock is ambiguous: it lists {name}@{version} from {source_id} twice")]
    Duplicate {
        name: String,
        version: String,
        source_id: String,
    },
    #[error("The path {path:?} declared in {manifest} is outside the repository")]
    PathOutside { path: String, manifest: String },
    #[error("The path {path:?} declared in {manifest} does not exist in the repository")]
    PathMissing { path: String, manifest: String },
    #[error("The path package {name}@{version} in Cargo.lock is neither a workspace member nor a path dependency inside the repository")]
    UnknownPathPackage { name: String, version: String },
}

impl common::Classify for LockfileError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Read { .. } => ErrorKind::FileAccessError,
            Self::Limit(e) => e.kind(),
            Self::MissingLockfile(_) | Self::MissingManifest(_) => ErrorKind::InvalidRepoStructure,
            Self::InvalidLockfile { .. }
            | Self::InvalidManifest { .. }
            | Self::Duplicate { .. } => ErrorKind::InvalidFileFormat,
            Self::UnsupportedRegistry { .. } | Self::UnsupportedSource { .. } => {
                ErrorKind::UnsupportedFeature
            }
            Self::MissingChecksum { .. } => ErrorKind::ValidationError,
            Self::GitNotPinned { .. } | Self::InvalidName(_) => ErrorKind::ValidationError,
            Self::PathOutside { .. } | Self::PathMissing { .. } => ErrorKind::InvalidRepoStructure,
            Self::UnknownPathPackage { .. } => ErrorKind::InvalidRepoStructure,
        }
    }
}

/// How a git source names the commit it follows (as in the lockfile query string).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GitRef {
    DefaultBranch,
    Branch(String),
    Tag(String),
    Rev(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// crates.io; `checksum` = lowercase sha256 hex of the `.crate`.
    Registry { checksum: String },
    /// `source_id` is the lockfile source string without the `#<commit>` fragment
    /// (the key of the `[source."..."]` replacement block); `url` the repository URL.
    Git {
        url: String,
        source_id: String,
        reference: GitRef,
        commit: CommitId,
    },
    /// A workspace member or a path dependency.
    Path { path: RepoPath },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub source: Source,
    /// Indexes into `CargoLock::packages` of this package's dependencies.
    pub dependencies: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub name: String,
    pub version: String,
    pub path: RepoPath,
}

#[derive(Clone, Debug)]
pub struct CargoLock {
    /// Lockfile format version 1–4.
    pub version: u32,
    pub packages: Vec<LockedPackage>,
    /// Workspace members (sorted by path).
    pub members: Vec<Member>,
    /// The requested package path.
    pub package_path: RepoPath,
}

impl CargoLock {
    pub fn registry(&self) -> impl Iterator<Item = (&LockedPackage, &str)> {
        self.packages.iter().filter_map(|p| match &p.source {
            Source::Registry { checksum } => Some((p, checksum.as_str())),
            _ => None,
        })
    }
    pub fn git(&self) -> impl Iterator<Item = &LockedPackage> {
        self.packages
            .iter()
            .filter(|p| matches!(p.source, Source::Git { .. }))
    }
    /// Index of the lockfile package for a member.
    pub fn member_index(&self, m: &Member) -> Option<usize> {
        self.packages.iter().position(|p| {
            p.name == m.name && p.version == m.version && matches!(p.source, Source::Path { .. })
        })
    }
}

fn read(path: &Path, shown: &str) -> Result<String, LockfileError> {
    fs::read_to_string(path).map_err(|e| LockfileError::Read {
        path: shown.into(),
        reason: e.to_string(),
    })
}

/// How messages name `file` in the directory `dir`.
fn shown_in(dir: &RepoPath, file: &str) -> String {
    if dir.is_root() {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

/// `path` as `manifest` declares it, relative to `base`, resolved through symlinks inside the
/// repository whose canonical root is `root`: the directory or file it really is.
fn resolve_declared(
    root: &Path,
    base: &RepoPath,
    path: &str,
    manifest: &str,
) -> Result<RepoPath, LockfileError> {
    let outside = || LockfileError::PathOutside {
        path: path.into(),
        manifest: manifest.into(),
    };
    let missing = || LockfileError::PathMissing {
        path: path.into(),
        manifest: manifest.into(),
    };
    let declared = base.join(path).map_err(|e| match e {
        RepoPathError::Invalid(_) | RepoPathError::Missing(_) => missing(),
        RepoPathError::Absolute(_) | RepoPathError::Outside(_) => outside(),
    })?;
    let real = declared.resolve(root).map_err(|e| match e {
        RepoPathError::Missing(_) => missing(),
        _ => outside(),
    })?;
    real.strip_prefix(root)
        .ok()
        .and_then(|rel| RepoPath::from_path(rel).ok())
        .ok_or_else(outside)
}

/// `path` is `dir` or below it.
fn is_within(path: &RepoPath, dir: &RepoPath) -> bool {
    dir.is_root()
        || path == dir
        || path
            .as_str()
            .strip_prefix(dir.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `path` is excluded from the workspace (an excluded `.` names the root only).
fn is_excluded(path: &RepoPath, excluded: &[RepoPath]) -> bool {
    excluded
        .iter()
        .any(|e| e == path || (!e.is_root() && is_within(path, e)))
}

/// A parsed Cargo.toml (only what we need).
#[derive(Debug, Default)]
struct Manifest {
    package: Option<(String, VersionSpec)>,
    workspace_version: Option<String>,
    members: Vec<String>,
    exclude: Vec<String>,
    is_workspace: bool,
    /// `path = ...` values of all dependency tables (incl. target.*, workspace.dependencies, patch).
    path_deps: Vec<String>,
}

#[derive(Debug)]
enum VersionSpec {
    Literal(String),
    Workspace,
    Missing,
}

fn parse_manifest(text: &str, shown: &str) -> Result<Manifest, LockfileError> {
    let v: toml::Table = toml::from_str(text).map_err(|e| LockfileError::InvalidManifest {
        path: shown.into(),
        reason: e.to_string(),
    })?;
    let bad = |reason: &str| LockfileError::InvalidManifest {
        path: shown.into(),
        reason: reason.into(),
    };
    let mut m = Manifest::default();
    if let Some(pkg) = v.get("package") {
        let pkg = pkg
            .as_table()
            .ok_or_else(|| bad("[package] is not a table"))?;
        let name = pkg
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| bad("[package] has no name"))?
            .to_string();
        let version = match pkg.get("version") {
            None => VersionSpec::Missing,
            Some(toml::Value::String(s)) => VersionSpec::Literal(s.clone()),
            Some(toml::Value::Table(t))
                if t.get("workspace").and_then(|w| w.as_bool()) == Some(true) =>
            {
                VersionSpec::Workspace
            }
            Some(_) => {
                return Err(bad(
                    "[package] version is neither a string nor `workspace = true`",
                ))
            }
        };
        m.package = Some((name, version));
    }
    let mut collect = |deps: Option<&toml::Value>| {
        if let Some(t) = deps.and_then(|d| d.as_table()) {
            for (_, d) in t {
                if let Some(p) = d.get("path").and_then(|p| p.as_str()) {
                    m.path_deps.push(p.to_string());
                }
            }
        }
    };
    for key in [
        "dependencies",
        "dev-dependencies",
        "dev_dependencies",
        "build-dependencies",
        "build_dependencies",
    ] {
        collect(v.get(key));
    }
    if let Some(targets) = v.get("target").and_then(|t| t.as_table()) {
        for (_, t) in targets {
            for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
                collect(t.get(key));
            }
        }
    }
    if let Some(patch) = v.get("patch").and_then(|t| t.as_table()) {
        for (_, t) in patch {
            collect(Some(t));
        }
    }
    if let Some(ws) = v.get("workspace") {
        let ws = ws
            .as_table()
            .ok_or_else(|| bad("[workspace] is not a table"))?;
        m.is_workspace = true;
        let strs = |k: &str| -> Vec<String> {
            ws.get(k)
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        m.members = strs("members");
        m.exclude = strs("exclude");
        m.workspace_version = ws
            .get("package")
            .and_then(|p| p.get("version"))
            .and_then(|v| v.as_str())
            .map(String::from);
        collect(ws.get("dependencies"));
    }
    Ok(m)
}

/// Expand a workspace `members` glob (relative to the root dir, `*`/`?` per segment).
fn expand_member_glob(root: &Path, base: &RepoPath, pattern: &str) -> Vec<String> {
    if !pattern.contains(['*', '?', '[']) {
        return vec![pattern.to_string()];
    }
    let mut current: Vec<String> = vec![String::new()];
    for seg in pattern.split('/').filter(|s| !s.is_empty() && *s != ".") {
        let mut next = Vec::new();
        for prefix in &current {
            if !seg.contains(['*', '?', '[']) {
                next.push(join_rel(prefix, seg));
                continue;
            }
            let dir = base.under(root).join(prefix);
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| glob_match(seg, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| join_rel(prefix, &n)));
        }
        current = next;
    }
    current
}

fn join_rel(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Parse `Cargo.lock` + workspace manifests at `package_path` (in the repository at `repo_root`).
pub fn parse(repo_root: &Path, package_path: &RepoPath) -> Result<CargoLock, LockfileError> {
    let root = repo_root.canonicalize().map_err(|e| LockfileError::Read {
        path: repo_root.display().to_string(),
        reason: e.to_string(),
    })?;
    // The package directory itself must stay inside (symlinks resolved).
    let pkg_rel = if package_path.is_root() {
        RepoPath::root()
    } else {
        resolve_declared(
            &root,
            &RepoPath::root(),
            package_path.as_str(),
            "the request",
        )?
    };
    let lock_shown = shown_in(&pkg_rel, "Cargo.lock");
    let lock_path = pkg_rel.under(&root).join("Cargo.lock");
    if !lock_path.is_file() {
        return Err(LockfileError::MissingLockfile(lock_shown));
    }
    // Cargo.lock must not be a symlink out of the repository.
    resolve_declared(&root, &pkg_rel, "Cargo.lock", &lock_shown)?;
    let len = fs::metadata(&lock_path)
        .map_err(|e| LockfileError::Read {
            path: lock_shown.clone(),
            reason: e.to_string(),
        })?
        .len();
    limits::check_size(&lock_shown, len)?;
    let lock = EncodedLock::parse(&read(&lock_path, &lock_shown)?).map_err(|reason| {
        LockfileError::InvalidLockfile {
            path: lock_shown.clone(),
            reason,
        }
    })?;
    limits::check_entries(&lock_shown, lock.packages.len())?;

    // --- workspace manifests
    let root_manifest_shown = shown_in(&pkg_rel, "Cargo.toml");
    let root_manifest_path = pkg_rel.under(&root).join("Cargo.toml");
    if !root_manifest_path.is_file() {
        return Err(LockfileError::MissingManifest(root_manifest_shown));
    }
    resolve_declared(&root, &pkg_rel, "Cargo.toml", &root_manifest_shown)?;
    let root_manifest = parse_manifest(
        &read(&root_manifest_path, &root_manifest_shown)?,
        &root_manifest_shown,
    )?;
    let ws_version = root_manifest.workspace_version.clone();

    let mut members: BTreeSet<Member> = BTreeSet::new();
    // (name, version) of path packages -> their directory
    let mut known_paths: BTreeMap<(String, String), RepoPath> = BTreeMap::new();
    let mut queue: Vec<(RepoPath, bool)> = Vec::new(); // (directory, is member)
    let mut visited: BTreeSet<RepoPath> = BTreeSet::new();
    queue.push((pkg_rel.clone(), true));
    let excluded: Vec<RepoPath> = root_manifest
        .exclude
        .iter()
        .filter_map(|e| pkg_rel.join(e).ok())
        .collect();
    for pattern in &root_manifest.members {
        for m in expand_member_glob(&root, &pkg_rel, pattern) {
            let rel = resolve_declared(&root, &pkg_rel, &m, &root_manifest_shown)?;
            if is_excluded(&rel, &excluded) {
                continue;
            }
            queue.push((rel, true));
        }
    }
    while let Some((dir, is_member)) = queue.pop() {
        if !visited.insert(dir.clone()) {
            continue;
        }
        let shown = shown_in(&dir, "Cargo.toml");
        let mpath = dir.under(&root).join("Cargo.toml");
        if !mpath.is_file() {
            return Err(LockfileError::MissingManifest(shown));
        }
        resolve_declared(&root, &dir, "Cargo.toml", &shown)?;
        let manifest = if dir == pkg_rel {
            None
        } else {
            Some(parse_manifest(&read(&mpath, &shown)?, &shown)?)
        };
        let manifest = manifest.as_ref().unwrap_or(&root_manifest);
        if let Some((name, vspec)) = &manifest.package {
            let version = match vspec {
                VersionSpec::Literal(v) => v.clone(),
                VersionSpec::Missing => "0.0.0".to_string(),
                VersionSpec::Workspace => ws_version.clone().ok_or_else(|| LockfileError::InvalidManifest {
                    path: shown.clone(),
                    reason: "`version.workspace = true` but the workspace root has no [workspace.package] version".into(),
                })?,
            };
            if !is_crate_name(name) {
                return Err(LockfileError::InvalidName(name.clone()));
            }
            known_paths.insert((name.clone(), version.clone()), dir.clone());
            if is_member {
                members.insert(Member {
                    name: name.clone(),
                    version,
                    path: dir.clone(),
                });
            }
        }
        for p in &manifest.path_deps {
            let rel = resolve_declared(&root, &dir, p, &shown)?;
            // A path dependency inside the workspace root dir is an implicit member.
            let implicit_member = is_within(&rel, &pkg_rel) && !is_excluded(&rel, &excluded);
            queue.push((rel, implicit_member && root_manifest.is_workspace));
        }
    }

    // --- classify lockfile packages
    let invalid = |reason: String| LockfileError::InvalidLockfile {
        path: lock_shown.clone(),
        reason,
    };
    let version = lock.version().map_err(invalid)?;
    let mut packages = Vec::with_capacity(lock.packages.len());
    let mut identities = HashSet::with_capacity(lock.packages.len());
    for p in &lock.packages {
        let name = p.name.clone();
        let version = p.version.clone();
        if !is_crate_name(&name) {
            return Err(LockfileError::InvalidName(name));
        }
        if cargo_lock::Version::parse(&version).is_err() {
            return Err(invalid(format!(
                "the package {name} has the version {version:?}, which is not a semantic version"
            )));
        }
        let source = match &p.source {
            None => {
                let Some(path) = known_paths.get(&(name.clone(), version.clone())).cloned() else {
                    return Err(LockfileError::UnknownPathPackage { name, version });
                };
                Source::Path { path }
            }
            Some(sid) => {
                let s = SourceId::from_url(sid).map_err(|e| {
                    invalid(format!(
                        "the package {name}@{version} has the source {sid:?}: {e}"
                    ))
                })?;
                match s.kind() {
                    SourceKind::Registry | SourceKind::SparseRegistry => {
                        if !(s.is_default_registry()
                            || sid == CRATES_IO_REGISTRY
                            || sid == CRATES_IO_SPARSE)
                        {
                            return Err(LockfileError::UnsupportedRegistry {
                                name,
                                version,
                                source_id: sid.clone(),
                            });
                        }
                        let checksum = lock
                            .checksum(p)
                            .ok_or_else(|| LockfileError::MissingChecksum {
                                name: name.clone(),
                                version: version.clone(),
                            })?
                            .parse::<Checksum>()
                            .ok()
                            .and_then(|c| c.as_sha256().map(hex::encode))
                            .ok_or_else(|| {
                                invalid(format!(
                                    "the checksum of {name}@{version} is not a SHA-256 hex digest"
                                ))
                            })?;
                        Source::Registry { checksum }
                    }
                    SourceKind::Git(r) => {
                        let Ok(commit) = CommitId::parse_any_case(s.precise().unwrap_or("")) else {
                            return Err(LockfileError::GitNotPinned {
                                name,
                                version,
                                source_id: sid.clone(),
                            });
                        };
                        let reference = match r {
                            GitReference::DefaultBranch => GitRef::DefaultBranch,
                            GitReference::Branch(b) => GitRef::Branch(b.clone()),
                            GitReference::Tag(t) => GitRef::Tag(t.clone()),
                            GitReference::Rev(r) => GitRef::Rev(r.clone()),
                        };
                        let source_id = sid.split('#').next().unwrap_or(sid).to_string();
                        let mut url = s.url().clone();
                        url.set_query(None);
                        url.set_fragment(None);
                        Source::Git {
                            url: url.to_string(),
                            source_id,
                            reference,
                            commit,
                        }
                    }
                    _ => {
                        return Err(LockfileError::UnsupportedSource {
                            name,
                            version,
                            source_id: sid.clone(),
                        })
                    }
                }
            }
        };
        // cargo itself refuses such a lockfile; keeping either entry would pick a checksum
        let source_id = p.source.as_deref().unwrap_or("a path");
        if !identities.insert((p.name.as_str(), p.version.as_str(), source_id)) {
            return Err(LockfileError::Duplicate {
                name,
                version,
                source_id: source_id.to_string(),
            });
        }
        packages.push(LockedPackage {
            name,
            version,
            source,
            dependencies: Vec::new(),
        });
    }
    drop(identities);
    let edges = lock.dependency_edges().map_err(invalid)?;
    for (package, dependencies) in packages.iter_mut().zip(edges) {
        package.dependencies = dependencies;
    }
    Ok(CargoLock {
        version,
        packages,
        members: members.into_iter().collect(),
        package_path: pkg_rel,
    })
}

/// `Cargo.lock` as written. Parsed one `[[package]]` table at a time: toml builds a document's
/// whole tree before deserializing it, and that tree is 140 MB for a 50,000-package lockfile.
#[derive(Debug, Default)]
struct EncodedLock {
    version: Option<u32>,
    packages: Vec<EncodedPackage>,
    /// The v1 `[metadata]` checksums, by (name, version).
    metadata_checksums: HashMap<(String, String), String>,
}

#[derive(Debug, serde::Deserialize)]
struct EncodedPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// What one piece of the document may hold: the root keys come before the first header.
#[derive(serde::Deserialize)]
struct EncodedSection {
    version: Option<u32>,
    #[serde(default)]
    package: Vec<EncodedPackage>,
    metadata: Option<HashMap<String, String>>,
}

const PACKAGE_HEADER: &str = "[[package]]";

/// The document cut before each line that is exactly `[[package]]`, as cargo writes it: (offset,
/// piece). Such a line inside a multi-line string would leave the piece before it unterminated,
/// so that lockfile is refused, never misread; a header spelled otherwise stays in its piece.
fn sections(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let headers = text
        .match_indices(PACKAGE_HEADER)
        .map(|(i, _)| i)
        .filter(move |&i| {
            let after = &text[i + PACKAGE_HEADER.len()..];
            (i == 0 || text.as_bytes()[i - 1] == b'\n')
                && (after.is_empty() || after.starts_with('\n') || after.starts_with("\r\n"))
        });
    let mut bounds = std::iter::once(0)
        .chain(headers)
        .chain(std::iter::once(text.len()))
        .peekable();
    std::iter::from_fn(move || {
        let start = bounds.next()?;
        let end = *bounds.peek()?;
        Some((start, &text[start..end]))
    })
    .filter(|(_, piece)| !piece.is_empty())
}

impl EncodedLock {
    fn parse(text: &str) -> Result<Self, String> {
        let mut lock = EncodedLock::default();
        let mut metadata: Option<HashMap<String, String>> = None;
        for (offset, piece) in sections(text) {
            let section: EncodedSection = toml::from_str(piece).map_err(|e| {
                let at = offset + e.span().map_or(0, |s| s.start);
                let line = 1 + text.get(..at).unwrap_or(text).matches('\n').count();
                format!("line {line}: {}", e.message().trim_end())
            })?;
            lock.version = lock.version.or(section.version);
            lock.packages.extend(section.package);
            if let Some(m) = section.metadata {
                if metadata.is_some() {
                    return Err("the table [metadata] is defined twice".into());
                }
                metadata = Some(m);
            }
        }
        // v1 keys: "checksum <name> <version> (<source>)"; the value may be "<none>"
        for (key, value) in metadata.unwrap_or_default() {
            let mut parts = key.split_whitespace();
            if let (Some("checksum"), Some(name), Some(version)) =
                (parts.next(), parts.next(), parts.next())
            {
                if value != "<none>" {
                    lock.metadata_checksums
                        .insert((name.to_string(), version.to_string()), value);
                }
            }
        }
        Ok(lock)
    }

    /// The lockfile format version, explicit (v3 on) or told by where checksums are (v1, v2).
    fn version(&self) -> Result<u32, String> {
        match self.version {
            Some(v @ 1..=4) => Ok(v),
            Some(v) => Err(format!("the lockfile version {v} is not one of 1 to 4")),
            None => {
                let v1 = !self.metadata_checksums.is_empty();
                if v1 && self.packages.iter().any(|p| p.checksum.is_some()) {
                    return Err("it has checksums both in [[package]] and in [metadata]".into());
                }
                Ok(if v1 { 1 } else { 2 })
            }
        }
    }

    fn checksum<'a>(&'a self, p: &'a EncodedPackage) -> Option<&'a str> {
        p.checksum.as_deref().or_else(|| {
            self.metadata_checksums
                .get(&(p.name.clone(), p.version.clone()))
                .map(String::as_str)
        })
    }

    /// For each package, the indexes of the packages its `dependencies` name ("name",
    /// "name version" or "name version (source)", as unambiguous as the lockfile needs).
    fn dependency_edges(&self) -> Result<Vec<Vec<usize>>, String> {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, p) in self.packages.iter().enumerate() {
            by_name.entry(p.name.as_str()).or_default().push(i);
        }
        self.packages
            .iter()
            .map(|p| {
                p.dependencies
                    .iter()
                    .map(|d| {
                        self.resolve(d, &by_name)?.ok_or_else(|| {
                            format!(
                                "{}@{} depends on {d:?}, which the lockfile does not lock",
                                p.name, p.version
                            )
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn resolve(
        &self,
        dependency: &str,
        by_name: &HashMap<&str, Vec<usize>>,
    ) -> Result<Option<usize>, String> {
        let malformed = || format!("the dependency {dependency:?} is malformed");
        let mut parts = dependency.split_whitespace();
        let name = parts.next().ok_or_else(malformed)?;
        let version = parts.next();
        let source = parts
            .next()
            .map(|s| {
                let s = s.strip_prefix('(').and_then(|s| s.strip_suffix(')'));
                s.and_then(|s| SourceId::from_url(s).ok())
                    .ok_or_else(malformed)
            })
            .transpose()?;
        if parts.next().is_some() {
            return Err(malformed());
        }
        let same_source = |q: &EncodedPackage| match (&source, &q.source) {
            (None, _) => true,
            (Some(a), Some(b)) => SourceId::from_url(b).is_ok_and(|b| *a == b),
            (Some(_), None) => false,
        };
        Ok(by_name.get(name).into_iter().flatten().copied().find(|&j| {
            let q = &self.packages[j];
            version.is_none_or(|v| v == q.version) && same_source(q)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Classify;
    use std::fs;

    const CK: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    fn write(dir: &Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn ws() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\nexclude = [\"crates/skip\"]\n[workspace.package]\nversion = \"1.2.3\"\n");
        write(d.path(), "crates/a/Cargo.toml", "[package]\nname = \"a\"\nversion.workspace = true\n[dependencies]\nb = { path = \"../b\" }\nlocal = { path = \"../../libs/local\" }\n");
        write(
            d.path(),
            "crates/b/Cargo.toml",
            "[package]\nname = \"b\"\nversion = \"0.1.0\"\n",
        );
        write(
            d.path(),
            "crates/skip/Cargo.toml",
            "[package]\nname = \"skip\"\nversion = \"0.1.0\"\n",
        );
        write(
            d.path(),
            "libs/local/Cargo.toml",
            "[package]\nname = \"local\"\nversion = \"0.5.0\"\n",
        );
        d
    }

    fn lock(extra: &str) -> String {
        format!(
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.2.3\"\ndependencies = [\"b\", \"local\", \"serde\"]\n\n[[package]]\nname = \"b\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"local\"\nversion = \"0.5.0\"\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{CK}\"\n{extra}"
        )
    }

    #[test]
    fn parses_workspace_members_and_sources() {
        let d = ws();
        let git = "\n[[package]]\nname = \"g\"\nversion = \"0.1.0\"\nsource = \"git+https://github.com/o/r?branch=dev#0123456789abcdef0123456789abcdef01234567\"\n";
        write(d.path(), "Cargo.lock", &lock(git));
        let l = parse(d.path(), &RepoPath::root()).unwrap();
        assert_eq!(l.version, 4);
        let names: Vec<_> = l
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.version.as_str(), m.path.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a", "1.2.3", "crates/a"),
                ("b", "0.1.0", "crates/b"),
                ("local", "0.5.0", "libs/local")
            ]
        );
        assert_eq!(l.registry().count(), 1);
        let g = l.git().next().unwrap();
        match &g.source {
            Source::Git {
                url,
                source_id,
                reference,
                commit,
            } => {
                assert_eq!(url, "https://github.com/o/r");
                assert_eq!(source_id, "git+https://github.com/o/r?branch=dev");
                assert_eq!(reference, &GitRef::Branch("dev".into()));
                assert_eq!(commit.as_str(), "0123456789abcdef0123456789abcdef01234567");
            }
            _ => panic!(),
        }
        let a = &l.packages[0];
        assert_eq!(a.dependencies, vec![1, 2, 3]);
        assert_eq!(
            l.packages[2].source,
            Source::Path {
                path: RepoPath::parse("libs/local").unwrap()
            }
        );
    }

    #[test]
    fn missing_lockfile() {
        let d = ws();
        let e = parse(d.path(), &RepoPath::root()).unwrap_err();
        assert!(matches!(e, LockfileError::MissingLockfile(_)));
        assert_eq!(e.kind().error_type(), "InvalidRepoStructure");
    }

    #[test]
    fn other_registry_unsupported() {
        let d = ws();
        write(d.path(), "Cargo.lock", &lock(&format!("\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\nsource = \"sparse+https://example.com/index/\"\nchecksum = \"{CK}\"\n")));
        let e = parse(d.path(), &RepoPath::root()).unwrap_err();
        assert_eq!(e.kind().error_type(), "UnsupportedFeature");
        assert!(e.to_string().contains("x@0.1.0"));
    }

    #[test]
    fn sparse_crates_io_accepted() {
        let d = ws();
        write(d.path(), "Cargo.lock", &lock(&format!("\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\nsource = \"sparse+https://index.crates.io/\"\nchecksum = \"{CK}\"\n")));
        assert_eq!(
            parse(d.path(), &RepoPath::root())
                .unwrap()
                .registry()
                .count(),
            2
        );
    }

    #[test]
    fn registry_without_checksum_fails() {
        let d = ws();
        write(d.path(), "Cargo.lock", &lock("\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"));
        let e = parse(d.path(), &RepoPath::root()).unwrap_err();
        assert!(matches!(e, LockfileError::MissingChecksum { .. }), "{e}");
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
    }

    #[test]
    fn one_crate_twice_with_different_checksums_is_ambiguous() {
        let d = ws();
        let other = "1".repeat(64);
        write(d.path(), "Cargo.lock", &lock(&format!("\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{other}\"\n")));
        let e = parse(d.path(), &RepoPath::root()).unwrap_err();
        assert!(e.to_string().contains("serde"), "{e}");
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
    }

    #[test]
    fn git_short_commit_fails() {
        let d = ws();
        write(d.path(), "Cargo.lock", &lock("\n[[package]]\nname = \"g\"\nversion = \"0.1.0\"\nsource = \"git+https://github.com/o/r#abc123\"\n"));
        assert!(matches!(
            parse(d.path(), &RepoPath::root()).unwrap_err(),
            LockfileError::GitNotPinned { .. }
        ));
    }

    #[test]
    fn path_outside_repo_fails() {
        let outer = tempfile::tempdir().unwrap();
        let repo = outer.path().join("repo");
        write(
            outer.path(),
            "elsewhere/Cargo.toml",
            "[package]\nname = \"elsewhere\"\nversion = \"0.1.0\"\n",
        );
        write(&repo, "Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[dependencies]\nelsewhere = { path = \"../elsewhere\" }\n");
        write(
            &repo,
            "Cargo.lock",
            "version = 4\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n",
        );
        let e = parse(&repo, &RepoPath::root()).unwrap_err();
        assert!(matches!(e, LockfileError::PathOutside { .. }), "{e}");
        assert!(e.to_string().contains("../elsewhere"));
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_path_dep_outside_fails() {
        let outer = tempfile::tempdir().unwrap();
        let repo = outer.path().join("repo");
        write(
            outer.path(),
            "elsewhere/Cargo.toml",
            "[package]\nname = \"elsewhere\"\nversion = \"0.1.0\"\n",
        );
        write(&repo, "Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\n[dependencies]\nelsewhere = { path = \"link\" }\n");
        write(
            &repo,
            "Cargo.lock",
            "version = 4\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n",
        );
        std::os::unix::fs::symlink(outer.path().join("elsewhere"), repo.join("link")).unwrap();
        assert!(matches!(
            parse(&repo, &RepoPath::root()).unwrap_err(),
            LockfileError::PathOutside { .. }
        ));
        // and the lockfile itself as a symlink out
        fs::remove_file(repo.join("Cargo.lock")).unwrap();
        fs::write(outer.path().join("Cargo.lock"), "version = 4\n").unwrap();
        std::os::unix::fs::symlink(outer.path().join("Cargo.lock"), repo.join("Cargo.lock"))
            .unwrap();
        assert!(parse(&repo, &RepoPath::root()).is_err());
    }

    #[test]
    fn unknown_path_package_fails() {
        let d = ws();
        write(
            d.path(),
            "Cargo.lock",
            &lock("\n[[package]]\nname = \"ghost\"\nversion = \"0.1.0\"\n"),
        );
        assert!(matches!(
            parse(d.path(), &RepoPath::root()).unwrap_err(),
            LockfileError::UnknownPathPackage { .. }
        ));
    }

    #[test]
    fn bad_package_path_and_garbage() {
        let d = ws();
        // a package path is a RepoPath: `..` and absolute paths never get here
        assert!(RepoPath::parse("../x").is_err());
        assert!(RepoPath::parse("/etc").is_err());
        assert!(matches!(
            parse(d.path(), &RepoPath::parse("nope").unwrap()).unwrap_err(),
            LockfileError::PathMissing { .. }
        ));
        write(d.path(), "Cargo.lock", "this is [[ not toml");
        assert!(matches!(
            parse(d.path(), &RepoPath::root()).unwrap_err(),
            LockfileError::InvalidLockfile { .. }
        ));
    }

    #[test]
    fn v1_lockfile_with_metadata_checksums() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n",
        );
        write(d.path(), "Cargo.lock", &format!("[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"serde 1.0.0 (registry+https://github.com/rust-lang/crates.io-index)\",\n]\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[metadata]\n\"checksum serde 1.0.0 (registry+https://github.com/rust-lang/crates.io-index)\" = \"{CK}\"\n"));
        let l = parse(d.path(), &RepoPath::root()).unwrap();
        assert_eq!(l.version, 1);
        assert_eq!(l.registry().next().unwrap().1, CK);
        assert!(l.members[0].path.is_root());
        assert_eq!(l.packages[0].dependencies, vec![1]);
    }

    #[test]
    fn pieces_parse_like_the_whole_document() {
        let crlf = "version = 3\r\n\r\n[[package]]\r\nname = \"a\"\r\nversion = \"1.0.0\"\r\ndependencies = [\"b\"]\r\n[[ package ]]\r\nname = \"b\"\r\nversion = \"1.0.0\"\r\n";
        let lock = EncodedLock::parse(crlf).unwrap();
        assert_eq!(lock.version().unwrap(), 3);
        assert_eq!(lock.packages.len(), 2);
        assert_eq!(lock.dependency_edges().unwrap(), vec![vec![1], vec![]]);

        // a header line inside a multi-line string cuts the string: refused, not misread
        let hidden = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nnote = \"\"\"\n[[package]]\nname = \"b\"\n\"\"\"\n";
        assert!(EncodedLock::parse(hidden).is_err());

        let e = EncodedLock::parse("version = 3\n\n[[package]]\nname = \"a\"\nname = \"b\"\n")
            .unwrap_err();
        assert!(e.starts_with("line 5:"), "{e}");
        let twice = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n[metadata]\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n[metadata]\n";
        assert!(EncodedLock::parse(twice)
            .unwrap_err()
            .contains("[metadata]"));

        let dangling = EncodedLock::parse(
            "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\ndependencies = [\"ghost\"]\n",
        )
        .unwrap();
        assert!(dangling.dependency_edges().unwrap_err().contains("ghost"));
        let versions = EncodedLock::parse("[[package]]\nname = \"a\"\nversion = \"1.0.0\"\ndependencies = [\"b 2.0.0\"]\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n[[package]]\nname = \"b\"\nversion = \"2.0.0\"\n").unwrap();
        assert_eq!(versions.dependency_edges().unwrap()[0], vec![2]);
    }
}
