//! One requested yarn Berry package directory (a `yarn.lock` with `__metadata`, Yarn 2–4):
//! read ([`super::berry_lockfile`]), planned as npm registry tarballs (npm's store keys,
//! fetches and registry artifacts, `crate::pkg_managers::npm`), verified, and laid out.
//!
//! - `npm:` entries: the tarball from the upstream registry. Berry's `checksum` is of Yarn's
//!   cache zip, not of the tarball: with a compression-level-0 cache key (`…c0`, Yarn 4's
//!   default) the zip is rebuilt byte for byte ([`super::berry_zip`]) and its sha512 checked
//!   against the lockfile before anything is stored; an entry without a checksum (Yarn leaves
//!   it out for a conditional package it did not fetch) or of another cache key is checked
//!   against the upstream registry's published `dist.integrity` instead.
//! - `workspace:` entries are the project's own packages: they must be inside the repository.
//! - `patch:` entries: a patch file must be inside the repository; Yarn's built-in patches
//!   (`optional!builtin<compat/typescript>`) are inside Yarn. The base package is an `npm:`
//!   entry of its own, fetched and verified as one; the client applies the patch.
//! - http(s) tarballs (`a@https://host/a.tgz`): fetched from their URL and verified as `npm:`
//!   ones are, by their cache zip (which depends on the package name, not on the URL); a
//!   tarball without a `…c0` checksum fails.
//! - git at a full commit (`a@https://host/o/r.git#commit=<sha>`): checked out at the commit
//!   and packed as npm packs git dependencies (`npm::pack`), never running scripts. Yarn's
//!   checksum of it is of `yarn pack`'s output (which runs scripts): it is not verified, the
//!   commit is.
//! - Yarn fetches an http(s) tarball from its URL and clones a git source whatever the
//!   registry settings say, so the hand-back's yarn.lock keeps every descriptor and points those
//!   entries' `resolution` at the per-request registry's tarball (the token in its path: Yarn
//!   sends no credentials to a tarball URL), a git one with the checksum of Larder's zip of its
//!   pack. Yarn 4 accepts such a lockfile with `--immutable` (measured with 4.18.1): a
//!   descriptor's stored resolution is not re-resolved, and the lockfile it would write is
//!   this one.
//! - the graph (the SBOM's): each entry's `dependencies` and `peerDependencies` resolved
//!   through their descriptors (`yarn::graph`), a patch standing for the package it patches;
//!   the workspaces' dependencies are the package's (one package per requested directory).
//! - anything else (`file:`, `link:`, `portal:`, `exec:`) is refused.

use super::berry_lockfile::{self, is_builtin_patch, BerryLock, Entry, Locator, PatchRef};
use super::berry_zip::{self, cache_file_name};
use super::graph::location_graph;
use super::lockfile::YARN_LOCK;
use crate::bundle::overlay_path;
use crate::fetch::Check;
use crate::pkg_managers::limits::MAX_LOCKFILE_BYTES;
use crate::pkg_managers::npm::classify::{
    basename, download_url, parse_git, valid_name, valid_version, Kind,
};
use crate::pkg_managers::npm::integrity::Integrity;
use crate::pkg_managers::npm::layout::with_slash;
use crate::pkg_managers::npm::layout::{
    app_rel, create_in_bundle, package_report, LayoutContext, LayoutError,
};
use crate::pkg_managers::npm::lockfile::{
    check_project_dir, open_limited, read_package_json, rel_display, LocationGraph, LockEntry,
    Lockfile, LockfileError, Project,
};
use crate::pkg_managers::npm::plan::{
    git_store_key, registry_store_key, safe_host, GitDep, Plan, PlannedDep,
};
use crate::pkg_managers::PmContext;
use common::commit::CommitId;
use common::repo_path::RepoPath;
use common::{Classify, ConfigFile, Download, ErrorKind, Failure, Package};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// Where the bundle carries Yarn's cache (one for every package directory: the file names are
/// Yarn's, by locator and checksum).
pub const CACHE_DIR: &str = "deps/yarn-berry/cache";
pub const YARNRC: &str = ".yarnrc.yml";
/// Yarn's global folder in `larder fetch-deps`' output directory (Hermeto's
/// `YARN_GLOBAL_FOLDER`): its `cache/` is the mirror the build's Yarn fills its cache from.
pub const OUTPUT_DIR_GLOBAL_FOLDER: &str = "deps/yarn";
const MAX_YARNRC_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BerryError {
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    #[error(transparent)]
    Lock(#[from] berry_lockfile::BerryLockError),
    #[error("The dependency {0} is not supported for yarn Berry (only npm:, workspace:, patch:, http(s) tarball and git resolutions are)")]
    Unsupported(String),
    #[error("The git dependency {0} must be resolved at a full 40-character commit id (`#commit=<sha>`)")]
    GitNotPinned(String),
    #[error("The http(s) tarball dependency {0} has no checksum of Yarn's cache key 10c0 in the lockfile, which Larder verifies it by")]
    TarballWithoutChecksum(String),
    #[error("The dependency {label} needs Larder's own cache zip, which is Yarn 4's (cache key …c0); the lockfile's cache key is {key:?}")]
    CacheKey { label: String, key: String },
    #[error("The entry of {0} was not found in yarn.lock to rewrite")]
    Rewrite(String),
    #[error("The dependency {0} names a tarball URL of its own (__archiveUrl); only the registry's tarballs are supported")]
    ArchiveUrl(String),
    #[error("The {what} {path:?} of {label} is not inside the repository")]
    Outside {
        what: &'static str,
        path: String,
        label: String,
    },
    #[error("The dependency {0} has an invalid package name or version for npm")]
    InvalidName(String),
    #[error("The patch {label} patches {base}, which is not an npm: entry of the lockfile")]
    PatchBase { label: String, base: String },
    #[error("{file} is not valid YAML: {reason}")]
    Yarnrc { file: String, reason: String },
    #[error("The upstream registry publishes no integrity for {label} (needed because {why})")]
    NoPublishedIntegrity { label: String, why: String },
    #[error("The yarn Berry lockfile of {path:?} has the cache key {key:?}: `larder fetch-deps` makes Yarn's cache zips of cache key …c0 (Yarn 4's default), which Yarn takes from a mirror only with a lockfile of that key")]
    OutputDirCacheKey { path: String, key: String },
    #[error("The upstream registry's document of {name} is not valid JSON: {reason}")]
    Packument { name: String, reason: String },
}

impl Classify for BerryError {
    fn kind(&self) -> ErrorKind {
        match self {
            BerryError::Lockfile(e) => e.kind(),
            BerryError::Lock(e) => e.kind(),
            BerryError::Unsupported(_)
            | BerryError::ArchiveUrl(_)
            | BerryError::GitNotPinned(_)
            | BerryError::CacheKey { .. }
            | BerryError::OutputDirCacheKey { .. } => ErrorKind::UnsupportedFeature,
            BerryError::TarballWithoutChecksum(_) => ErrorKind::InvalidChecksum,
            BerryError::Rewrite(_) => ErrorKind::InvalidFileFormat,
            BerryError::Outside { .. } => ErrorKind::ValidationError,
            BerryError::PatchBase { .. }
            | BerryError::Yarnrc { .. }
            | BerryError::InvalidName(_) => ErrorKind::InvalidFileFormat,
            BerryError::NoPublishedIntegrity { .. } => ErrorKind::MissingUpstream,
            BerryError::Packument { .. } => ErrorKind::NetworkError,
        }
    }
}

/// One registry tarball of a Berry project and its Yarn cache zip.
#[derive(Clone, Debug)]
pub struct CacheZip {
    pub store_key: String,
    pub name: String,
    pub version: String,
    /// the lockfile's checksum hash, when the zip is verified against it
    pub checksum: Option<String>,
    /// Yarn's cache file name
    pub file_name: String,
    /// Yarn's name for it in a mirror (`Cache.getVersionFilename`: by locator and the
    /// lockfile's cache key, whatever its checksum), where `larder fetch-deps` puts it
    pub mirror_file_name: String,
    pub label: String,
}

/// An entry the hand-back points at the per-request registry's tarball.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handback {
    /// the lockfile's resolution
    pub resolution: String,
    pub name: String,
    pub store_key: String,
    /// a git source: served as Larder's pack, with the checksum of Larder's zip of it
    pub git: bool,
}

/// A planned Berry package directory.
pub struct BerryProject {
    pub project: Project,
    pub plan: Plan,
    pub zips: Vec<CacheZip>,
    /// whether the bundle's Yarn cache can serve it (a `…c0` cache key)
    pub offline: bool,
    pub handback: Vec<Handback>,
    /// the lockfile's cache key (`10c0`)
    pub cache_key: String,
    /// integrities the plan took from the registry, to record (name, version, integrity)
    pub published: Vec<(String, String, String)>,
}

/// A resolution fetched from elsewhere than the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// an http(s) tarball
    Tarball { url: String },
    /// a git repository at a full commit (`url`: what git clones)
    Git {
        url: String,
        commit: CommitId,
        host: String,
        repo_path: String,
    },
}

/// What a resolution that is neither `npm:`, `workspace:` nor `patch:` is: an http(s) tarball
/// (`a@https://host/a.tgz`), a git source (`a@https://host/o/r.git#commit=<sha>`,
/// `a@git+ssh://…`, `a@git+file://…`; it must name a full commit), or none Larder supports.
pub fn remote_of(res: &Locator) -> Result<Remote, BerryError> {
    let label = res.text();
    let r = res.reference.as_str();
    let (base, frag) = match r.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (r, None),
    };
    let lower = base.to_ascii_lowercase();
    let http = lower.starts_with("http://") || lower.starts_with("https://");
    let git = ["git+", "git:", "ssh:", "github:", "gitlab:", "bitbucket:"]
        .iter()
        .any(|p| lower.starts_with(p))
        || (http && (lower.ends_with(".git") || frag.is_some()));
    if git {
        let mut commit = None;
        for param in frag.unwrap_or_default().split('&') {
            match param.split_once('=') {
                Some(("commit", c)) => commit = Some(c),
                // `workspace=`, `tag=`, …: not a commit alone
                _ => return Err(BerryError::GitNotPinned(label)),
            }
        }
        let commit = commit
            .and_then(|c| CommitId::parse_any_case(c).ok())
            .ok_or_else(|| BerryError::GitNotPinned(label.clone()))?;
        let (url, _, host, repo_path) = parse_git(&format!("{base}#{commit}"))
            .ok_or_else(|| BerryError::Unsupported(label.clone()))?;
        return Ok(Remote::Git {
            url,
            commit,
            host,
            repo_path,
        });
    }
    if http && url::Url::parse(base).is_ok() {
        return Ok(Remote::Tarball { url: base.into() });
    }
    Err(BerryError::Unsupported(label))
}

/// Whether the yarn.lock at `path` is a Berry one (false when there is none: the classic reader
/// reports that).
pub fn is_berry_dir(app_dir: &Path, path: &RepoPath) -> bool {
    let Ok(file) = path.join(YARN_LOCK).and_then(|p| p.resolve(app_dir)) else {
        return false;
    };
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    // Yarn writes `__metadata` as the first entry: the header decides, the rest is read once,
    // by the parser of the lockfile it is (v1's refuses a `__metadata` further down)
    std::io::BufRead::lines(std::io::BufReader::new(f.take(64 << 10)))
        .map_while(Result::ok)
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .is_some_and(|l| berry_lockfile::is_berry(&l))
}

fn read_to_string_limited(p: &Path, display: &str, limit: u64) -> Result<String, LockfileError> {
    let mut text = String::new();
    open_limited(p, display, limit)?
        .read_to_string(&mut text)
        .map_err(|e| LockfileError::Io {
            file: display.into(),
            reason: e.to_string(),
        })?;
    Ok(text)
}

fn dep_names(v: &Option<serde_json::Value>) -> impl Iterator<Item = String> + '_ {
    v.iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| m.keys().cloned())
}

/// A Berry package directory read: its npm [`Project`] (no lockfile entries: the plan holds
/// them) and lockfile.
pub struct BerryRead {
    pub project: Project,
    pub lock: BerryLock,
    /// indexes of the entries the workspaces' `dependencies`/`optionalDependencies` reach
    pub runtime: BTreeSet<usize>,
    /// those the workspaces' `dependencies`/`devDependencies` reach through no optional edge
    pub required: BTreeSet<usize>,
}

/// Read and check the package directory at `path` (blocking).
pub fn read(app_dir: &Path, path: &RepoPath) -> Result<BerryRead, BerryError> {
    let checked = check_project_dir(app_dir, path, "yarn", &[YARN_LOCK])?;
    let display = rel_display(path, YARN_LOCK);
    let text = read_to_string_limited(&checked.dir.join(YARN_LOCK), &display, MAX_LOCKFILE_BYTES)?;
    let lock = berry_lockfile::parse(&text, &display)?;
    drop(text);

    // workspaces and patch files inside the repository; the runtime roots of each workspace
    // per workspace: the names its runtime starts from, and those its required part does
    let mut roots: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut required_roots: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let npm_locators: BTreeSet<String> = lock
        .entries
        .iter()
        .filter(|e| e.resolution.protocol() == "npm")
        .map(|e| e.resolution.text())
        .collect();
    let workspace_dir = |rel: &str, label: &str| -> Result<RepoPath, BerryError> {
        let outside = || BerryError::Outside {
            what: "workspace",
            path: rel.into(),
            label: label.into(),
        };
        let p = path.join(rel).map_err(|_| outside())?;
        p.resolve(app_dir).map_err(|_| outside())?;
        Ok(p)
    };
    for (i, e) in lock.entries.iter().enumerate() {
        let label = e.resolution.text();
        match e.resolution.protocol() {
            "npm" => {
                if e.resolution.reference.contains("::") {
                    return Err(BerryError::ArchiveUrl(label));
                }
                // both go into store keys and URLs
                let version = &e.resolution.reference["npm:".len()..];
                if !valid_name(&e.resolution.name) || !valid_version(version) {
                    return Err(BerryError::InvalidName(label));
                }
            }
            "workspace" => {
                let rel = &e.resolution.reference["workspace:".len()..];
                let dir = workspace_dir(rel, &label)?;
                let pj = if dir == *path {
                    checked.package_json.clone()
                } else {
                    let pj_rel = dir.join("package.json").map_err(|_| BerryError::Outside {
                        what: "workspace",
                        path: rel.into(),
                        label: label.clone(),
                    })?;
                    let file = pj_rel.resolve(app_dir).map_err(|_| BerryError::Outside {
                        what: "workspace package.json",
                        path: pj_rel.to_string(),
                        label: label.clone(),
                    })?;
                    read_package_json(&file, pj_rel.as_str())?
                };
                roots.insert(i, names(&[&pj.dependencies, &pj.optional_dependencies]));
                required_roots.insert(i, names(&[&pj.dependencies, &pj.dev_dependencies]));
            }
            "patch" => {
                let patch = PatchRef::parse(&e.resolution.reference)
                    .ok_or_else(|| BerryError::Unsupported(label.clone()))?;
                if !npm_locators.contains(&patch.base) {
                    return Err(BerryError::PatchBase {
                        label,
                        base: patch.base,
                    });
                }
                // a relative patch path is relative to the workspace that declares it
                let base_dir = match patch
                    .locator
                    .as_deref()
                    .and_then(Locator::parse)
                    .filter(|l| l.protocol() == "workspace")
                {
                    Some(l) => workspace_dir(&l.reference["workspace:".len()..], &label)?,
                    None => path.clone(),
                };
                for source in &patch.sources {
                    if is_builtin_patch(source) {
                        continue;
                    }
                    let outside = || BerryError::Outside {
                        what: "patch file",
                        path: source.clone(),
                        label: label.clone(),
                    };
                    let rel = source.strip_prefix("~/").unwrap_or(source);
                    let file = if source.starts_with("~/") {
                        path.join(rel)
                    } else {
                        base_dir.join(rel)
                    }
                    .map_err(|_| outside())?;
                    let real = file.resolve(app_dir).map_err(|_| outside())?;
                    if !real.is_file() {
                        return Err(outside());
                    }
                }
            }
            _ => {
                if !valid_name(&e.resolution.name) {
                    return Err(BerryError::InvalidName(label));
                }
                remote_of(&e.resolution)?;
            }
        }
    }
    // dev: what the runtime roots do not reach; optional: what only optional edges reach
    let by_descriptor = descriptor_index(&lock.entries);
    let runtime = reached(&lock.entries, &by_descriptor, &roots, true);
    let required = reached(&lock.entries, &by_descriptor, &required_roots, false);
    let graph = graph(&lock.entries, &by_descriptor);
    Ok(BerryRead {
        project: Project {
            path: path.clone(),
            dir: checked.dir,
            package_json: checked.package_json,
            lockfile: Lockfile {
                file_name: YARN_LOCK,
                lockfile_version: lock.version,
                name: None,
                version: None,
                entries: Vec::new(),
                graph: Some(graph),
            },
        },
        lock,
        runtime,
        required,
    })
}

fn names(pj_fields: &[&Option<serde_json::Value>]) -> BTreeSet<String> {
    pj_fields.iter().flat_map(|f| dep_names(f)).collect()
}

/// Each entry's index by every descriptor of it.
fn descriptor_index(entries: &[Entry]) -> BTreeMap<&str, usize> {
    let mut by_descriptor: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        for d in &e.descriptors {
            by_descriptor.insert(d.as_str(), i);
            // Yarn binds a relative patch's descriptor to its parent (`::locator=…`), which
            // the parent's dependency does not write
            if let Some((unbound, _)) = d.split_once("::") {
                by_descriptor.entry(unbound).or_insert(i);
            }
        }
    }
    by_descriptor
}

/// The lockfile's graph between the locations the plan gives its entries (their resolution).
/// A patch stands for the package it patches (the one reported); the workspaces are the
/// package itself, so each one's dependencies are the package's. A reference resolves
/// through its descriptor, `name@range`; a peer's range is the package's own, which Berry
/// normalizes to `npm:` where it has no protocol.
fn graph(entries: &[Entry], by_descriptor: &BTreeMap<&str, usize>) -> LocationGraph {
    let locations: Vec<Option<String>> = entries
        .iter()
        .map(|e| match e.resolution.protocol() {
            "workspace" => None,
            "patch" => PatchRef::parse(&e.resolution.reference).map(|p| p.base),
            _ => Some(e.resolution.text()),
        })
        .collect();
    fn references(e: &Entry) -> impl Iterator<Item = (&str, &str)> {
        e.dependencies
            .iter()
            .chain(&e.peer_dependencies)
            .map(|(n, r)| (n.as_str(), r.as_str()))
    }
    let is_workspace = |e: &&Entry| e.resolution.protocol() == "workspace";
    let resolve = |name: &str, range: &str| {
        let exact = by_descriptor.get(format!("{name}@{range}").as_str());
        let normalized = || {
            (!range.contains(':'))
                .then(|| by_descriptor.get(format!("{name}@npm:{range}").as_str()))
                .flatten()
        };
        exact.or_else(normalized).copied()
    };
    location_graph(
        resolve,
        &locations,
        entries.iter().filter(is_workspace).flat_map(references),
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !is_workspace(e))
            .flat_map(|(i, e)| references(e).map(move |(n, r)| (i, n, r))),
    )
}

/// The entries reached from the workspaces (`roots`: each one's names to start from) through
/// the lockfile's dependencies (optional ones only when `through_optional`; a patch reaches its
/// base); a workspace reached goes on through its own root names only.
fn reached(
    entries: &[Entry],
    by_descriptor: &BTreeMap<&str, usize>,
    roots: &BTreeMap<usize, BTreeSet<String>>,
    through_optional: bool,
) -> BTreeSet<usize> {
    let by_locator: BTreeMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.resolution.text(), i))
        .collect();
    let mut todo: Vec<usize> = roots.keys().copied().collect();
    let mut seen = BTreeSet::new();
    while let Some(i) = todo.pop() {
        if !seen.insert(i) {
            continue;
        }
        let e = &entries[i];
        let only = roots.get(&i);
        for (n, r) in &e.dependencies {
            if only.is_some_and(|names| !names.contains(n))
                || (!through_optional && only.is_none() && e.optional.contains(n))
            {
                continue;
            }
            if let Some(&j) = by_descriptor.get(format!("{n}@{r}").as_str()) {
                todo.push(j);
            }
        }
        if let Some(p) = PatchRef::parse(&e.resolution.reference) {
            let base = by_descriptor
                .get(p.base.as_str())
                .or_else(|| by_locator.get(&p.base));
            if let Some(&j) = base {
                todo.push(j);
            }
        }
    }
    // the workspaces themselves are not dependencies
    seen.retain(|i| entries[*i].resolution.protocol() != "workspace");
    seen
}

/// Plan each Berry package directory: its registry tarballs with the check each needs. The
/// downloads not in `keys` yet are added to `downloads`.
pub async fn plan(
    ctx: &PmContext<'_>,
    reads: Vec<BerryRead>,
    keys: &mut BTreeSet<String>,
    downloads: &mut Vec<(Arc<Download>, Check)>,
) -> Result<Vec<BerryProject>, Failure> {
    let upstream = ctx.config.npm_registry.clone();
    let mut out = Vec::new();
    // the published integrity of name@version, fetched once
    let mut published: BTreeMap<String, String> = BTreeMap::new();
    for r in reads {
        let metadata_key = r.lock.cache_key.clone().unwrap_or_default();
        let offline = metadata_key.ends_with("c0");
        let mut plan = Plan {
            path: r.project.path.clone(),
            ..Plan::default()
        };
        let mut zips = Vec::new();
        let mut handback = Vec::new();
        let mut new_records = Vec::new();
        for (i, e) in r.lock.entries.iter().enumerate() {
            if !matches!(e.resolution.protocol(), "npm" | "workspace" | "patch") {
                let remote = remote_of(&e.resolution).map_err(Failure::from)?;
                let label = e.resolution.text();
                if !offline {
                    return Err(BerryError::CacheKey {
                        label,
                        key: metadata_key.clone(),
                    }
                    .into());
                }
                let (dev, optional) = (!r.runtime.contains(&i), !r.required.contains(&i));
                let name = e.resolution.name.clone();
                let (kind, store_key) = match remote {
                    Remote::Tarball { url } => {
                        let Some((hash, key)) =
                            e.checksum.as_ref().filter(|(_, key)| key.ends_with("c0"))
                        else {
                            return Err(BerryError::TarballWithoutChecksum(label).into());
                        };
                        let host = url::Url::parse(&url)
                            .ok()
                            .and_then(|u| u.host_str().map(safe_host))
                            .unwrap_or_default();
                        // content-addressed by the zip's checksum: one key, one zip
                        let store_key = format!(
                            "deps/npm/external/{host}/{name}/{}-external-berryzip-{}.tgz",
                            basename(&name),
                            hash.to_ascii_lowercase()
                        );
                        if keys.insert(store_key.clone()) {
                            downloads.push((
                                Arc::new(Download {
                                    url: url.clone(),
                                    store_key: store_key.clone(),
                                    expected: common::digest::Expected::none(),
                                    label: label.clone(),
                                }),
                                zip_check(name.clone(), label.clone(), hash.clone()),
                            ));
                        }
                        zips.push(CacheZip {
                            store_key: store_key.clone(),
                            name: name.clone(),
                            version: e.version.clone().unwrap_or_default(),
                            checksum: Some(hash.clone()),
                            file_name: berry_zip::cache_file_name_for(
                                &name,
                                &e.resolution.reference,
                                Some(hash),
                                key,
                            ),
                            mirror_file_name: berry_zip::cache_file_name_for(
                                &name,
                                &e.resolution.reference,
                                None,
                                &metadata_key,
                            ),
                            label: label.clone(),
                        });
                        (
                            Kind::HttpsTarball {
                                url,
                                integrity: String::new(),
                            },
                            store_key,
                        )
                    }
                    Remote::Git {
                        url,
                        commit,
                        host,
                        repo_path,
                    } => {
                        let store_key = git_store_key(&host, &repo_path, &commit);
                        if !plan.git.iter().any(|g| g.store_key == store_key) {
                            plan.git.push(GitDep {
                                name: name.clone(),
                                url: url.clone(),
                                commit: commit.clone(),
                                host: host.clone(),
                                repo_path: repo_path.clone(),
                                store_key: store_key.clone(),
                                label: label.clone(),
                            });
                        }
                        let original = format!("git+{}#{commit}", url.trim_start_matches("git+"));
                        (
                            Kind::Git {
                                url,
                                commit,
                                host,
                                repo_path,
                                original,
                            },
                            store_key,
                        )
                    }
                };
                handback.push(Handback {
                    resolution: label.clone(),
                    name: name.clone(),
                    store_key: store_key.clone(),
                    git: matches!(kind, Kind::Git { .. }),
                });
                plan.deps.push(PlannedDep {
                    entry: LockEntry {
                        location: label,
                        name,
                        version: e.version.clone(),
                        dev,
                        optional,
                        ..LockEntry::default()
                    },
                    kind,
                    store_key: Some(store_key),
                });
                continue;
            }
            if e.resolution.protocol() != "npm" {
                continue;
            }
            let name = e.resolution.name.clone();
            let version = e.resolution.reference["npm:".len()..].to_string();
            let label = format!("{name}@{version}");
            let store_key = registry_store_key(&name, &version);
            // the zip is verifiable when Yarn built it as Larder does: compression level 0
            let zip_checksum = e
                .checksum
                .as_ref()
                .filter(|(_, key)| key.ends_with("c0"))
                .map(|(hash, _)| hash.clone());
            let mut integrity = None;
            if zip_checksum.is_none() {
                let why = match &e.checksum {
                    None => "the lockfile has no checksum of it".to_string(),
                    Some((_, key)) => format!(
                        "its checksum is of a zip of cache key {key:?}, which Larder does not rebuild"
                    ),
                };
                let sri = match published.get(&label) {
                    Some(s) => s.clone(),
                    None => {
                        let (s, fresh) =
                            recorded_or_published_integrity(ctx, &upstream, &name, &version, &why)
                                .await?;
                        if fresh {
                            new_records.push((name.clone(), version.clone(), s.clone()));
                        }
                        published.insert(label.clone(), s.clone());
                        s
                    }
                };
                integrity = Some(sri);
            }
            let parsed = integrity
                .as_deref()
                .map(|sri| Integrity::parse(sri, &label))
                .transpose()
                .map_err(Failure::from)?;
            let check: Check = match (&zip_checksum, &parsed) {
                (Some(hash), _) => zip_check(name.clone(), label.clone(), hash.clone()),
                (None, Some(i)) => integrity_check(label.clone(), i.clone()),
                (None, None) => Box::new(|_| Ok(())),
            };
            if keys.insert(store_key.clone()) {
                downloads.push((
                    Arc::new(Download {
                        url: download_url(&upstream, &name, &version),
                        store_key: store_key.clone(),
                        expected: parsed
                            .as_ref()
                            .map_or_else(common::digest::Expected::none, Integrity::expected),
                        label: label.clone(),
                    }),
                    check,
                ));
            } else if let Some(slot) = downloads.iter_mut().find(|(d, _)| d.store_key == store_key)
            {
                // another package directory (or a v1 one) fetches it already: its check and
                // this one's, both
                let first = std::mem::replace(&mut slot.1, Box::new(|_| Ok(())));
                slot.1 = Box::new(move |p: &Path| {
                    first(p)?;
                    check(p)
                });
            }
            let cache_key = e
                .checksum
                .as_ref()
                .map(|(_, k)| k.clone())
                .unwrap_or_else(|| metadata_key.clone());
            zips.push(CacheZip {
                store_key: store_key.clone(),
                name: name.clone(),
                version: version.clone(),
                checksum: zip_checksum.clone(),
                file_name: cache_file_name(&name, &version, zip_checksum.as_deref(), &cache_key),
                mirror_file_name: cache_file_name(&name, &version, None, &metadata_key),
                label: label.clone(),
            });
            plan.deps.push(PlannedDep {
                entry: LockEntry {
                    location: e.resolution.text(),
                    name,
                    version: Some(version),
                    // checked again when its artifact is made
                    integrity,
                    dev: !r.runtime.contains(&i),
                    optional: !r.required.contains(&i),
                    ..LockEntry::default()
                },
                kind: Kind::Registry,
                store_key: Some(store_key),
            });
        }
        out.push(BerryProject {
            project: r.project,
            plan,
            zips,
            offline,
            handback,
            cache_key: metadata_key,
            published: new_records,
        });
    }
    Ok(out)
}

/// The check of a downloaded tarball: Yarn's cache zip of it has the lockfile's checksum.
fn zip_check(name: String, label: String, hash: String) -> Check {
    Box::new(move |file: &Path| {
        let tgz = std::fs::read(file)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        if !berry_zip::zip_sha512(&tgz, &name, &label)?.eq_ignore_ascii_case(&hash) {
            return Err(Failure::new(
                ErrorKind::InvalidChecksum,
                format!("The checksum of {label} (of Yarn's cache zip of its tarball) does not match the lockfile's {hash}"),
            ));
        }
        Ok(())
    })
}

/// The check of a downloaded tarball against an integrity value, for a tarball whose download
/// was planned with another's expectations.
fn integrity_check(label: String, integrity: Integrity) -> Check {
    Box::new(move |file: &Path| {
        let digests = common::digest::FileDigests::of_file(file)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        integrity.verify(&label, &digests).map_err(Failure::from)
    })
}

/// Where the store records the integrity the upstream registry published for `name@version`
/// when it was first read: npm versions are immutable, so a warm run (or an offline one) takes
/// it from there and asks the registry nothing.
pub fn published_integrity_key(name: &str, version: &str) -> String {
    format!("{}.published-integrity", registry_store_key(name, version))
}

/// The integrity of `name@version` the store recorded, else the upstream registry's (with
/// `true`: for the layout to record, [`record_integrities`], once everything verified).
async fn recorded_or_published_integrity(
    ctx: &PmContext<'_>,
    upstream: &str,
    name: &str,
    version: &str,
    why: &str,
) -> Result<(String, bool), Failure> {
    let key = published_integrity_key(name, version);
    if ctx.fetcher.take_into_cache(&key).await? {
        let path = ctx
            .store
            .path(&key)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        let recorded = std::fs::read_to_string(&path).unwrap_or_default();
        ctx.fetcher.share(key.clone());
        if recorded.starts_with("sha512-") && !recorded.contains(char::is_whitespace) {
            return Ok((recorded, false));
        }
        tracing::warn!(%key, "the recorded integrity is not one: asking the registry");
    }
    let sri = published_integrity(ctx, upstream, name, version, why).await?;
    ctx.fetcher.share(key);
    Ok((sri, true))
}

/// Record in the store the integrities the plan took from the registry (the first one recorded
/// stands), once every file verified.
pub fn record_integrities(b: &BerryProject, store: &common::Store) -> Result<(), Failure> {
    for (name, version, sri) in &b.published {
        let key = published_integrity_key(name, version);
        if !store.contains(&key) {
            store
                .put_bytes(&key, sri.as_bytes())
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        }
    }
    Ok(())
}

/// `dist.integrity` of `name@version` in the upstream registry's document of `name`.
async fn published_integrity(
    ctx: &PmContext<'_>,
    upstream: &str,
    name: &str,
    version: &str,
    why: &str,
) -> Result<String, Failure> {
    let label = format!("{name}@{version}");
    let url = format!(
        "{}/{}",
        upstream.trim_end_matches('/'),
        name.replace('/', "%2f")
    );
    let none = || BerryError::NoPublishedIntegrity {
        label: label.clone(),
        why: why.into(),
    };
    let Some((body, _)) = ctx
        .fetcher
        .get_bytes(
            &url,
            Some("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"),
        )
        .await?
    else {
        return Err(none().into());
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| BerryError::Packument {
            name: name.into(),
            reason: e.to_string(),
        })?;
    let integrity = doc
        .pointer(&format!(
            "/versions/{}/dist/integrity",
            version.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(|v| v.as_str())
        .filter(|s| s.starts_with("sha512-"))
        .ok_or_else(none)?;
    Ok(integrity.to_string())
}

/// The repository's own `.yarnrc.yml` of the package directory, if any, as a YAML mapping.
fn own_yarnrc(project: &Project, ctx: &LayoutContext) -> Result<serde_yaml::Mapping, Failure> {
    let display = rel_display(&project.path, YARNRC);
    if !project.dir.join(YARNRC).is_file() {
        return Ok(serde_yaml::Mapping::new());
    }
    // not a symlink out of the repository
    let file = project
        .path
        .join(YARNRC)
        .and_then(|p| p.resolve(&ctx.bundle_root().join("app")))
        .map_err(|_| LockfileError::OutsideRepository(display.clone()))?;
    let text = read_to_string_limited(&file, &display, MAX_YARNRC_BYTES)?;
    if text.trim().is_empty() {
        return Ok(serde_yaml::Mapping::new());
    }
    serde_yaml::from_str(&text).map_err(|e| {
        BerryError::Yarnrc {
            file: display,
            reason: e.to_string(),
        }
        .into()
    })
}

/// Settings Larder sets itself: the repository's values of them (another registry, another
/// cache) would take the client past the per-request registry or Larder's checks.
const REPLACED: &[&str] = &[
    "npmRegistryServer",
    "npmAuthToken",
    "npmAuthIdent",
    "npmAlwaysAuth",
    "npmScopes",
    "npmRegistries",
    "enableGlobalCache",
    "checksumBehavior",
    "unsafeHttpWhitelist",
    "httpsCaFilePath",
    "caFilePath",
    "enableNetwork",
    "enableMirror",
    "cacheFolder",
];

fn yaml_text(m: &serde_yaml::Mapping, file: &str) -> Result<String, Failure> {
    serde_yaml::to_string(m).map_err(|e| {
        LayoutError::Io {
            file: file.into(),
            reason: e.to_string(),
        }
        .into()
    })
}

fn set(m: &mut serde_yaml::Mapping, k: &str, v: impl Into<serde_yaml::Value>) {
    m.insert(serde_yaml::Value::String(k.into()), v.into());
}

/// The registry route's `.yarnrc.yml`: the repository's settings, the per-request registry with
/// the token, no global cache, checksums enforced.
pub fn registry_yarnrc(
    own: &serde_yaml::Mapping,
    ctx: &LayoutContext,
    path: &RepoPath,
) -> serde_yaml::Mapping {
    let mut m = own.clone();
    for k in REPLACED {
        m.remove(*k);
    }
    let url = ctx.repo_url.trim_end_matches('/').to_string();
    set(&mut m, "npmRegistryServer", url.clone());
    set(&mut m, "npmAuthToken", ctx.token.clone());
    set(&mut m, "npmAlwaysAuth", true);
    set(&mut m, "enableGlobalCache", false);
    set(&mut m, "checksumBehavior", "throw");
    if let Ok(u) = url::Url::parse(&url) {
        if u.scheme() == "http" {
            if let Some(host) = u.host_str() {
                set(
                    &mut m,
                    "unsafeHttpWhitelist",
                    serde_yaml::Value::Sequence(vec![host.into()]),
                );
            }
        }
    }
    if let Some(ca) = &ctx.repos_ca {
        // Yarn resolves a relative path of a .yarnrc.yml against that file's directory
        set(&mut m, "httpsCaFilePath", ca.relative_to(path));
    }
    m
}

/// The offline route's `.yarnrc.yml` (in the bundle's app overlay): the repository's settings,
/// the bundle's cache, no network.
pub fn offline_yarnrc(own: &serde_yaml::Mapping, path: &RepoPath) -> serde_yaml::Mapping {
    let mut m = own.clone();
    for k in REPLACED {
        m.remove(*k);
    }
    let up = "../".repeat(path.depth() + 1);
    set(&mut m, "cacheFolder", format!("{up}{CACHE_DIR}"));
    set(&mut m, "enableGlobalCache", false);
    set(&mut m, "enableNetwork", false);
    set(&mut m, "checksumBehavior", "throw");
    m
}

/// A yarn.lock's entries rewritten: the entry whose `resolution` is a key of `rewrites` gets
/// the new resolution and, when given, the new checksum (its descriptors, and so its place in
/// the file, stay). Every rewrite must find its entry.
pub fn rewrite_lock(text: &str, rewrites: &Rewrites) -> Result<String, BerryError> {
    let mut out = String::with_capacity(text.len() + rewrites.len() * 64);
    let mut done = BTreeSet::new();
    // the new checksum of the entry being rewritten, until it is written
    let mut pending: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(value) = bare.strip_prefix("  resolution: ") {
            let value = value.trim_matches('"');
            if let Some((new, checksum)) = rewrites.get(value) {
                let quoted = serde_json::to_string(new).unwrap_or_default();
                out.push_str(&format!("  resolution: {quoted}\n"));
                done.insert(value.to_string());
                pending = checksum.as_deref();
                continue;
            }
        }
        if let Some(c) = pending {
            if bare.starts_with("  checksum: ") {
                out.push_str(&format!("  checksum: {c}\n"));
                pending = None;
                continue;
            }
            // Yarn writes the checksum before these (and the entry ends after them)
            if bare.starts_with("  conditions: ")
                || bare.starts_with("  languageName: ")
                || bare.starts_with("  linkType: ")
                || !bare.starts_with("  ")
            {
                out.push_str(&format!("  checksum: {c}\n"));
                pending = None;
            }
        }
        out.push_str(line);
    }
    if let Some(missing) = rewrites.keys().find(|k| !done.contains(*k)) {
        return Err(BerryError::Rewrite(missing.clone()));
    }
    Ok(out)
}

/// A yarn.lock's rewrites: the resolution of an entry → its new resolution and checksum.
type Rewrites = BTreeMap<String, (String, Option<String>)>;

/// The hand-back's and the offline route's rewrites of the package directory's yarn.lock
/// (empty when it has no http(s) tarball or git entry). The registry route points every such
/// entry at `tarball_base` (the per-request registry, token in the path); the offline one
/// only the git entries, at the registry without the token, their zips written into the
/// bundle's cache (once each, `written`) under Yarn's name for that locator.
fn handback_rewrites(
    b: &BerryProject,
    ctx: &LayoutContext,
    tarball_base: &str,
    written: &mut BTreeSet<String>,
) -> Result<(Rewrites, Rewrites), Failure> {
    let (mut online, mut offline) = (BTreeMap::new(), BTreeMap::new());
    for h in &b.handback {
        let file = h.store_key.rsplit('/').next().unwrap_or(&h.store_key);
        let url = format!("{}{}/-/{file}", with_slash(tarball_base), h.name);
        if !h.git {
            online.insert(h.resolution.clone(), (format!("{}@{url}", h.name), None));
            continue;
        }
        let tgz_path = ctx
            .store
            .path(&h.store_key)
            .map_err(|_| LayoutError::Missing {
                label: h.resolution.clone(),
                store_key: h.store_key.clone(),
            })?;
        let tgz = std::fs::read(&tgz_path).map_err(|e| LayoutError::Io {
            file: h.store_key.clone(),
            reason: e.to_string(),
        })?;
        let hash = berry_zip::zip_sha512(&tgz, &h.name, &h.resolution)?;
        let checksum = format!("{}/{hash}", b.cache_key);
        online.insert(
            h.resolution.clone(),
            (format!("{}@{url}", h.name), Some(checksum.clone())),
        );
        let offline_url = format!("{}{}/-/{file}", with_slash(&ctx.repo_url), h.name);
        let rel = format!(
            "{CACHE_DIR}/{}",
            berry_zip::cache_file_name_for(&h.name, &offline_url, Some(&hash), &b.cache_key)
        );
        if written.insert(rel.clone()) {
            let mut out = std::io::BufWriter::new(create_in_bundle(ctx.bundle_root(), &rel)?);
            berry_zip::convert_tgz_hashed(&tgz, &h.name, &h.resolution, &mut out)?;
            out.flush().map_err(|e| LayoutError::Io {
                file: rel.clone(),
                reason: e.to_string(),
            })?;
        }
        offline.insert(
            h.resolution.clone(),
            (format!("{}@{offline_url}", h.name), Some(checksum)),
        );
    }
    Ok((online, offline))
}

/// Part of every cache zip's key: a change to the conversion changes it.
const BERRY_ZIP_FORMAT: &str = "berry-zip-1";

/// Where the store keeps the tarball of `z`.
fn stored_tarball(ctx: &LayoutContext, z: &CacheZip) -> Result<std::path::PathBuf, LayoutError> {
    ctx.store
        .path(&z.store_key)
        .map_err(|_| LayoutError::Missing {
            label: z.label.clone(),
            store_key: z.store_key.clone(),
        })
}

/// Convert the stored tarball of `z` to Yarn's cache zip at `out`, checked against the
/// lockfile's checksum.
fn write_cache_zip(ctx: &LayoutContext, z: &CacheZip, out: &Path) -> Result<(), Failure> {
    let bytes = std::fs::read(stored_tarball(ctx, z)?).map_err(|e| LayoutError::Io {
        file: z.store_key.clone(),
        reason: e.to_string(),
    })?;
    let io = |e: std::io::Error| LayoutError::Io {
        file: z.file_name.clone(),
        reason: e.to_string(),
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let sha512 = berry_zip::convert_tgz_hashed(&bytes, &z.name, &z.label, &mut file)?;
    file.flush().map_err(io)?;
    // verified when fetched; again here, as it goes into the bundle (a mismatch fails the
    // request, and its bundle with it)
    if let Some(hash) = &z.checksum {
        if !sha512.eq_ignore_ascii_case(hash) {
            return Err(LayoutError::Mismatch {
                label: z.label.clone(),
                reason: "Yarn's cache zip of it does not have the lockfile's checksum".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// Place Yarn's cache zip of `z` at `rel` in the bundle (once: `written`), made once from
/// the stored tarball and kept in the store.
fn place_cache_zip(
    ctx: &LayoutContext,
    z: &CacheZip,
    rel: &str,
    written: &mut BTreeSet<String>,
) -> Result<(), Failure> {
    if !written.insert(rel.to_string()) {
        return Ok(());
    }
    // the lockfile's checksum is part of the key: a kept zip was checked against it;
    // without one, the tarball's own digest is (a store key names no upstream)
    let content = match &z.checksum {
        Some(hash) => format!("zip-sha512:{hash}"),
        None => {
            let digests = common::digest::FileDigests::of_file_for(
                &stored_tarball(ctx, z)?,
                &common::digest::Expected::none(),
            )
            .map_err(|e| LayoutError::Io {
                file: z.store_key.clone(),
                reason: e.to_string(),
            })?;
            format!("tgz-{}", digests.get(common::digest::HashAlgorithm::Sha256))
        }
    };
    let cache_key = format!("{BERRY_ZIP_FORMAT}:{}:{}:{content}", z.store_key, z.name);
    let name = rel.rsplit('/').next().unwrap_or(rel);
    ctx.bundle
        .place_derived(&ctx.store, rel, &cache_key, |work: &Path| {
            write_cache_zip(ctx, z, &work.join(name))
        })
}

/// `larder fetch-deps`' layout of one Berry package directory (Hermeto's): every cache zip
/// under Yarn's mirror name in `deps/yarn/cache/` (the mirror of a Yarn whose global folder
/// is `deps/yarn`, [`OUTPUT_DIR_GLOBAL_FOLDER`]); its package report. Nothing over the
/// source, but for git sources: Yarn's checksum of one is of `yarn pack`'s output (which runs
/// its scripts), so the project file `yarn.lock` gives each the checksum of Larder's zip of its
/// pack (written in the mirror under the git locator's name), the rest of the file as it is.
/// The plan refused what such a mirror cannot serve ([`output_dir_unsupported`]).
pub fn layout_output_dir(
    b: &BerryProject,
    ctx: &LayoutContext,
    written: &mut BTreeSet<String>,
) -> Result<Package, Failure> {
    for z in &b.zips {
        let rel = format!("{OUTPUT_DIR_GLOBAL_FOLDER}/cache/{}", z.mirror_file_name);
        place_cache_zip(ctx, z, &rel, written)?;
    }
    let mut rewrites = Rewrites::new();
    for h in b.handback.iter().filter(|h| h.git) {
        let io = |file: &str, e: std::io::Error| LayoutError::Io {
            file: file.into(),
            reason: e.to_string(),
        };
        let packed = ctx
            .store
            .path(&h.store_key)
            .map_err(|_| LayoutError::Missing {
                label: h.resolution.clone(),
                store_key: h.store_key.clone(),
            })?;
        let tgz = std::fs::read(&packed).map_err(|e| io(&h.store_key, e))?;
        let reference = h
            .resolution
            .strip_prefix(&format!("{}@", h.name))
            .ok_or_else(|| BerryError::Rewrite(h.resolution.clone()))?;
        let rel = format!(
            "{OUTPUT_DIR_GLOBAL_FOLDER}/cache/{}",
            berry_zip::cache_file_name_for(&h.name, reference, None, &b.cache_key)
        );
        let mut zip = Vec::new();
        let hash = berry_zip::convert_tgz_hashed(&tgz, &h.name, &h.resolution, &mut zip)?;
        if written.insert(rel.clone()) {
            create_in_bundle(ctx.bundle_root(), &rel)?
                .write_all(&zip)
                .map_err(|e| io(&rel, e))?;
        }
        rewrites.insert(
            h.resolution.clone(),
            (
                h.resolution.clone(),
                Some(format!("{}/{hash}", b.cache_key)),
            ),
        );
    }
    if !rewrites.is_empty() {
        let lock_rel = format!("{}/{YARN_LOCK}", app_rel(&b.project.path));
        let text = read_to_string_limited(
            &b.project.dir.join(YARN_LOCK),
            &lock_rel,
            MAX_LOCKFILE_BYTES,
        )?;
        let overlay = overlay_path(&lock_rel);
        create_in_bundle(ctx.bundle_root(), &overlay)?
            .write_all(rewrite_lock(&text, &rewrites)?.as_bytes())
            .map_err(|e| LayoutError::Io {
                file: overlay.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(package_report(&b.project, &b.plan, ctx))
}

/// Why a planned Berry package directory cannot be laid out for `larder fetch-deps`, if it
/// cannot: Yarn takes a mirror's zip only with the lockfile's checksum, which Larder makes for
/// a `…c0` cache key.
pub fn output_dir_unsupported(b: &BerryProject) -> Option<BerryError> {
    (!b.offline).then(|| BerryError::OutputDirCacheKey {
        path: b.project.path.to_string(),
        key: b.cache_key.clone(),
    })
}

/// Lay out one Berry package directory: its Yarn cache zips into the bundle (once each,
/// `written`), the offline `.yarnrc.yml` (and yarn.lock, with git entries) in the app overlay,
/// the registry route's `.yarnrc.yml` (and yarn.lock, with http(s) tarball or git entries)
/// handed back; its package report. `tarball_base` is the per-request npm registry with the
/// token in its path.
pub fn layout(
    b: &BerryProject,
    ctx: &LayoutContext,
    tarball_base: &str,
    written: &mut BTreeSet<String>,
) -> Result<(Package, Vec<ConfigFile>), Failure> {
    let own = own_yarnrc(&b.project, ctx)?;
    let app_dir = app_rel(&b.project.path);
    let rc_path = format!("{app_dir}/{YARNRC}");
    let mut configs = vec![ConfigFile::inline(
        rc_path.clone(),
        yaml_text(&registry_yarnrc(&own, ctx, &b.project.path), &rc_path)?,
    )];
    if !b.handback.is_empty() {
        let (online, offline) = handback_rewrites(b, ctx, tarball_base, written)?;
        let lock_rel = format!("{app_dir}/{YARN_LOCK}");
        let text = read_to_string_limited(
            &b.project.dir.join(YARN_LOCK),
            &lock_rel,
            MAX_LOCKFILE_BYTES,
        )?;
        let rewritten = rewrite_lock(&text, &online)?;
        let digest = ctx
            .store
            .put_by_sha256(common::store::config_file_key, |out| {
                out.write_all(rewritten.as_bytes())
            })
            .map_err(|e| LayoutError::Io {
                file: lock_rel.clone(),
                reason: e.to_string(),
            })?;
        configs.push(ConfigFile {
            path: lock_rel.clone(),
            content: common::ConfigContent::Stored(digest),
        });
        if !offline.is_empty() {
            let overlay = overlay_path(&lock_rel);
            let rewritten = rewrite_lock(&text, &offline)?;
            let mut f = create_in_bundle(ctx.bundle_root(), &overlay)?;
            f.write_all(rewritten.as_bytes())
                .map_err(|e| LayoutError::Io {
                    file: overlay,
                    reason: e.to_string(),
                })?;
        }
    }
    if b.offline {
        for z in &b.zips {
            place_cache_zip(ctx, z, &format!("{CACHE_DIR}/{}", z.file_name), written)?;
        }
        let overlay = overlay_path(&rc_path);
        let text = yaml_text(&offline_yarnrc(&own, &b.project.path), &overlay)?;
        let mut f = create_in_bundle(ctx.bundle_root(), &overlay)?;
        f.write_all(text.as_bytes()).map_err(|e| LayoutError::Io {
            file: overlay,
            reason: e.to_string(),
        })?;
    }
    Ok((package_report(&b.project, &b.plan, ctx), configs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n";

    fn entry(key: &str, resolution: &str, deps: &[(&str, &str)]) -> String {
        let mut s = format!("\"{key}\":\n  version: 1.0.0\n  resolution: \"{resolution}\"\n");
        if !deps.is_empty() {
            s.push_str("  dependencies:\n");
            for (n, r) in deps {
                s.push_str(&format!("    {n}: \"{r}\"\n"));
            }
        }
        s + "  languageName: node\n  linkType: hard\n\n"
    }

    fn read_with(
        files: &[(&str, &str)],
        lock: &str,
    ) -> (tempfile::TempDir, Result<BerryRead, BerryError>) {
        let t = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let f = t.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
        std::fs::write(t.path().join("yarn.lock"), format!("{HEAD}{lock}")).unwrap();
        let r = read(t.path(), &RepoPath::root());
        (t, r)
    }

    #[test]
    fn dev_is_what_no_workspace_runtime_dependency_reaches() {
        let lock = [
            entry(
                "app@workspace:.",
                "app@workspace:.",
                &[
                    ("a", "npm:^1"),
                    ("w", "workspace:^"),
                    ("t", "npm:^1"),
                    ("p", "patch:p@npm%3A1.0.0#./x.patch"),
                    ("o", "npm:1"),
                ],
            ),
            entry(
                "w@workspace:^, w@workspace:packages/w",
                "w@workspace:packages/w",
                &[("d", "npm:1"), ("wdev", "npm:1")],
            ),
            "\"a@npm:^1\":\n  version: 1.0.0\n  resolution: \"a@npm:1.0.0\"\n  dependencies:\n    b: \"npm:^1\"\n    ao: \"npm:1\"\n  dependenciesMeta:\n    ao:\n      optional: true\n\n".to_string(),
            entry("ao@npm:1", "ao@npm:1.0.0", &[]),
            entry("o@npm:1", "o@npm:1.0.0", &[]),
            entry("b@npm:^1", "b@npm:1.0.0", &[]),
            entry("d@npm:1", "d@npm:1.0.0", &[]),
            entry("wdev@npm:1", "wdev@npm:1.0.0", &[]),
            entry("t@npm:^1", "t@npm:1.0.0", &[]),
            entry("p@npm:1.0.0", "p@npm:1.0.0", &[]),
            entry(
                "p@patch:p@npm%3A1.0.0#./x.patch::locator=app%40workspace%3A.",
                "p@patch:p@npm%3A1.0.0#./x.patch::version=1.0.0&hash=1&locator=app%40workspace%3A.",
                &[],
            ),
        ]
        .concat();
        let (_t, r) = read_with(
            &[
                (
                    "package.json",
                    r#"{"name":"app","dependencies":{"a":"^1","w":"workspace:^","p":"patch:p@npm%3A1.0.0#./x.patch"},"optionalDependencies":{"o":"1"},"devDependencies":{"t":"^1"}}"#,
                ),
                (
                    "packages/w/package.json",
                    r#"{"name":"w","dependencies":{"d":"1"},"devDependencies":{"wdev":"1"}}"#,
                ),
                ("x.patch", "diff"),
            ],
            &lock,
        );
        let r = r.unwrap();
        let runtime: BTreeSet<String> = r
            .runtime
            .iter()
            .map(|i| r.lock.entries[*i].resolution.text())
            .collect();
        let want: BTreeSet<String> = [
            "a@npm:1.0.0",
            "ao@npm:1.0.0",
            "o@npm:1.0.0",
            "b@npm:1.0.0",
            "d@npm:1.0.0",
            "p@npm:1.0.0",
            "p@patch:p@npm%3A1.0.0#./x.patch::version=1.0.0&hash=1&locator=app%40workspace%3A.",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(runtime, want);
        // optional: what only optional edges reach
        let optional: BTreeSet<String> = (0..r.lock.entries.len())
            .filter(|i| !r.required.contains(i))
            .map(|i| r.lock.entries[i].resolution.text())
            .filter(|t| t.contains("@npm:"))
            .collect();
        assert_eq!(
            optional,
            BTreeSet::from(["ao@npm:1.0.0".to_string(), "o@npm:1.0.0".to_string()])
        );
    }

    #[test]
    fn graph_resolves_descriptors_and_the_workspaces_are_the_package() {
        // a diamond (a and c both reach d, by two descriptors of one entry), an optional edge
        // (a to ao), a dev root (t) depending on a runtime one, a peer given as the package
        // declares it (c's a, normalized to `npm:`), one that names no entry (react), a patch
        // (standing for its base) and a workspace whose dependencies are the package's
        let lock = [
            entry(
                "app@workspace:.",
                "app@workspace:.",
                &[
                    ("a", "npm:^1"),
                    ("c", "npm:^1"),
                    ("o", "npm:1"),
                    ("p", "patch:p@npm%3A1.0.0#./x.patch"),
                    ("t", "npm:^1"),
                    ("w", "workspace:^"),
                ],
            ),
            entry(
                "w@workspace:^, w@workspace:packages/w",
                "w@workspace:packages/w",
                &[("e", "npm:1")],
            ),
            "\"a@npm:^1\":\n  version: 1.0.0\n  resolution: \"a@npm:1.0.0\"\n  dependencies:\n    ao: \"npm:1\"\n    d: \"npm:^1\"\n  dependenciesMeta:\n    ao:\n      optional: true\n\n".to_string(),
            entry("ao@npm:1", "ao@npm:1.0.0", &[]),
            "\"c@npm:^1\":\n  version: 1.0.0\n  resolution: \"c@npm:1.0.0\"\n  dependencies:\n    d: \"npm:^1.0.0\"\n  peerDependencies:\n    a: ^1\n    react: \"*\"\n\n".to_string(),
            entry("d@npm:^1, d@npm:^1.0.0", "d@npm:1.1.0", &[]),
            entry("e@npm:1", "e@npm:1.0.0", &[]),
            entry("o@npm:1", "o@npm:1.0.0", &[]),
            entry("p@npm:1.0.0", "p@npm:1.0.0", &[]),
            entry(
                "p@patch:p@npm%3A1.0.0#./x.patch::locator=app%40workspace%3A.",
                "p@patch:p@npm%3A1.0.0#./x.patch::version=1.0.0&hash=1&locator=app%40workspace%3A.",
                &[("d", "npm:^1")],
            ),
            entry("t@npm:^1", "t@npm:1.0.0", &[("a", "npm:^1")]),
        ]
        .concat();
        let (_t, r) = read_with(
            &[
                (
                    "package.json",
                    r#"{"name":"app","dependencies":{"a":"^1","c":"^1","w":"workspace:^","p":"patch:p@npm%3A1.0.0#./x.patch"},"optionalDependencies":{"o":"1"},"devDependencies":{"t":"^1"}}"#,
                ),
                (
                    "packages/w/package.json",
                    r#"{"name":"w","dependencies":{"e":"1"}}"#,
                ),
                ("x.patch", "diff"),
            ],
            &lock,
        );
        let r = r.unwrap();
        let set =
            |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
        let graph = r.project.lockfile.graph.unwrap();
        assert_eq!(
            graph.roots,
            set(&[
                "a@npm:1.0.0",
                "c@npm:1.0.0",
                "e@npm:1.0.0",
                "o@npm:1.0.0",
                "p@npm:1.0.0",
                "t@npm:1.0.0",
            ])
        );
        // (an entry without dependencies has no edges to list)
        let edges: BTreeMap<String, BTreeSet<String>> = [
            ("a@npm:1.0.0", set(&["ao@npm:1.0.0", "d@npm:1.1.0"])),
            ("c@npm:1.0.0", set(&["a@npm:1.0.0", "d@npm:1.1.0"])),
            // the patched package's edges are the patch's too
            ("p@npm:1.0.0", set(&["d@npm:1.1.0"])),
            ("t@npm:1.0.0", set(&["a@npm:1.0.0"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(graph.edges, edges);
    }

    #[test]
    fn refused_entries_name_the_dependency() {
        let pj = ("package.json", r#"{"name":"app"}"#);
        for (lock, what) in [
            (
                entry(
                    "g@https://github.com/u/g.git#commit=abc",
                    "g@https://github.com/u/g.git#commit=abc",
                    &[],
                ),
                "The git dependency g@https://github.com/u/g.git#commit=abc must be resolved at a full 40-character commit id",
            ),
            (
                entry(
                    "g@https://github.com/u/g.git#main",
                    "g@https://github.com/u/g.git#main",
                    &[],
                ),
                "must be resolved at a full 40-character commit id",
            ),
            (
                entry(
                    "g@git+ssh://git@h/u/g.git#commit=0123456789012345678901234567890123456789&workspace=w",
                    "g@git+ssh://git@h/u/g.git#commit=0123456789012345678901234567890123456789&workspace=w",
                    &[],
                ),
                "must be resolved at a full 40-character commit id",
            ),
            (
                entry("t@ftp://h/t.tgz", "t@ftp://h/t.tgz", &[]),
                "The dependency t@ftp://h/t.tgz is not supported",
            ),
            (
                entry(
                    "l@link:../x",
                    "l@link:../x::locator=app%40workspace%3A.",
                    &[],
                ),
                "The dependency l@link:../x::locator=app%40workspace%3A. is not supported",
            ),
            (
                entry("x@npm:1", "../../x@npm:1.0.0", &[]),
                "invalid package name or version",
            ),
            (
                entry("x@npm:1", "x@npm:1.0.0/../../y", &[]),
                "invalid package name or version",
            ),
            (
                entry(
                    "a@npm:1",
                    "a@npm:1.0.0::__archiveUrl=https%3A%2F%2Fx%2Fa.tgz",
                    &[],
                ),
                "a tarball URL of its own",
            ),
            (
                entry("w@workspace:../out", "w@workspace:../out", &[]),
                "The workspace \"../out\" of w@workspace:../out is not inside the repository",
            ),
            (
                [
                    entry("p@npm:1.0.0", "p@npm:1.0.0", &[]),
                    entry(
                        "p@patch:x",
                        "p@patch:p@npm%3A1.0.0#./missing.patch::version=1.0.0",
                        &[],
                    ),
                ]
                .concat(),
                "The patch file \"./missing.patch\"",
            ),
            (
                [
                    entry("p@npm:1.0.0", "p@npm:1.0.0", &[]),
                    entry(
                        "p@patch:x",
                        "p@patch:p@npm%3A1.0.0#../../etc/passwd::version=1.0.0",
                        &[],
                    ),
                ]
                .concat(),
                "is not inside the repository",
            ),
            (
                entry(
                    "p@patch:x",
                    "p@patch:p@npm%3A2.0.0#./x.patch::version=2.0.0",
                    &[],
                ),
                "patches p@npm:2.0.0, which is not an npm: entry",
            ),
        ] {
            let (_t, r) = read_with(&[pj], &lock);
            let e = r.err().unwrap_or_else(|| panic!("{lock} was accepted"));
            assert!(e.to_string().contains(what), "{lock}: {e}");
            assert_eq!(e.kind().origin(), common::ErrorOrigin::Client, "{e}");
        }
        // Yarn's own patches are inside Yarn
        let lock = [
            entry("resolve@npm:1.22.8", "resolve@npm:1.22.8", &[]),
            entry(
                "resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>",
                "resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>::version=1.22.8&hash=c3c19d",
                &[],
            ),
        ]
        .concat();
        assert!(read_with(&[pj], &lock).1.is_ok());
    }

    #[test]
    fn remote_resolutions_are_git_at_a_commit_or_http_tarballs() {
        let sha = "cd2cae0b32aae73d54567296f6fbcf10b74b3f6b";
        let git = |text: &str| match remote_of(&Locator::parse(text).unwrap()).unwrap() {
            Remote::Git { url, commit, .. } => (url, commit.to_string()),
            other => panic!("{text}: {other:?}"),
        };
        for (text, url) in [
            (
                format!("g@https://github.com/o/r.git#commit={sha}"),
                "https://github.com/o/r.git",
            ),
            (
                format!("g@git+ssh://git@github.com/o/r.git#commit={sha}"),
                "https://github.com/o/r.git",
            ),
            (
                format!("g@git+file:///srv/repos/r#commit={sha}"),
                "file:///srv/repos/r",
            ),
            (
                format!("g@https://git.example/o/r#commit={}", sha.to_uppercase()),
                "https://git.example/o/r",
            ),
        ] {
            assert_eq!(git(&text), (url.to_string(), sha.to_string()), "{text}");
        }
        assert_eq!(
            remote_of(&Locator::parse("t@https://h.example/x/t-1.0.0.tgz").unwrap()).unwrap(),
            Remote::Tarball {
                url: "https://h.example/x/t-1.0.0.tgz".into()
            }
        );
        for bad in [
            "g@https://github.com/o/r.git#commit=abc",
            "g@github:o/r#main",
            "g@git+https://h/o/r.git",
        ] {
            let e = remote_of(&Locator::parse(bad).unwrap()).unwrap_err();
            assert!(matches!(e, BerryError::GitNotPinned(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn rewrite_lock_changes_resolutions_and_checksums_only() {
        let sha = "cd2cae0b32aae73d54567296f6fbcf10b74b3f6b";
        let lock = format!(
            "{HEAD}\"app@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"app@workspace:.\"\n  dependencies:\n    g: \"git+https://h/o/g.git#commit={sha}\"\n    t: \"https://h/t.tgz\"\n  languageName: unknown\n  linkType: soft\n\n\"g@git+https://h/o/g.git#commit={sha}\":\n  version: 2.0.0\n  resolution: \"g@https://h/o/g.git#commit={sha}\"\n  checksum: 10c0/yarnpack\n  languageName: node\n  linkType: hard\n\n\"n@git+https://h/o/n.git#commit={sha}\":\n  version: 1.0.0\n  resolution: \"n@https://h/o/n.git#commit={sha}\"\n  languageName: node\n  linkType: hard\n\n\"t@https://h/t.tgz\":\n  version: 1.0.0\n  resolution: \"t@https://h/t.tgz\"\n  checksum: 10c0/tt\n  languageName: node\n  linkType: hard\n"
        );
        let rewrites: Rewrites = [
            (
                format!("g@https://h/o/g.git#commit={sha}"),
                ("g@http://l/g.tgz".to_string(), Some("10c0/gg".to_string())),
            ),
            (
                format!("n@https://h/o/n.git#commit={sha}"),
                ("n@http://l/n.tgz".to_string(), Some("10c0/nn".to_string())),
            ),
            (
                "t@https://h/t.tgz".to_string(),
                ("t@http://l/t.tgz".to_string(), None),
            ),
        ]
        .into_iter()
        .collect();
        let out = rewrite_lock(&lock, &rewrites).unwrap();
        let want = lock
            .replace(
                &format!(
                    "resolution: \"g@https://h/o/g.git#commit={sha}\"\n  checksum: 10c0/yarnpack"
                ),
                "resolution: \"g@http://l/g.tgz\"\n  checksum: 10c0/gg",
            )
            .replace(
                &format!("resolution: \"n@https://h/o/n.git#commit={sha}\"\n"),
                "resolution: \"n@http://l/n.tgz\"\n  checksum: 10c0/nn\n",
            )
            .replace(
                "resolution: \"t@https://h/t.tgz\"",
                "resolution: \"t@http://l/t.tgz\"",
            );
        assert_eq!(out, want);
        // the descriptors stay: the lockfile is still read the same way
        let parsed = berry_lockfile::parse(&out, "yarn.lock").unwrap();
        assert_eq!(parsed.entries.len(), 4);
        let mut missing = rewrites.clone();
        missing.insert("x@https://h/x.tgz".into(), ("x@y".into(), None));
        assert!(matches!(
            rewrite_lock(&lock, &missing),
            Err(BerryError::Rewrite(r)) if r == "x@https://h/x.tgz"
        ));
    }

    #[test]
    fn yarnrc_files_keep_the_repositorys_settings_and_replace_the_registrys() {
        let own: serde_yaml::Mapping = serde_yaml::from_str(
            "nodeLinker: node-modules\nnpmRegistryServer: https://evil.example\nnpmScopes:\n  s:\n    npmRegistryServer: https://other.example\ncacheFolder: x\n",
        )
        .unwrap();
        let t = tempfile::tempdir().unwrap();
        let ctx = LayoutContext {
            repo_url: "http://larder.example:8080/repos/7/npm/".into(),
            token: "tok".into(),
            source_repo: "https://github.com/u/r".into(),
            source_ref: "0".repeat(40),
            bundle: crate::bundle::BundleTree::new(t.path()),
            store: common::Store::new(t.path().join("store")),
            repos_ca: None,
            pm: "yarn",
            bundle_rel: |_, _| None,
            upstream_registry: "https://registry.npmjs.org".into(),
            hand_back: crate::pkg_managers::HandBack::Service,
        };
        let sub = RepoPath::parse("web/app").unwrap();
        let text = serde_yaml::to_string(&registry_yarnrc(&own, &ctx, &sub)).unwrap();
        for line in [
            "nodeLinker: node-modules",
            "npmRegistryServer: http://larder.example:8080/repos/7/npm",
            "npmAuthToken: tok",
            "npmAlwaysAuth: true",
            "enableGlobalCache: false",
            "checksumBehavior: throw",
            "- larder.example",
        ] {
            assert!(text.lines().any(|l| l.trim() == line), "{line} in {text}");
        }
        assert!(
            !text.contains("evil")
                && !text.contains("other.example")
                && !text.contains("cacheFolder"),
            "{text}"
        );
        let mut with_ca = ctx.clone();
        with_ca.repos_ca = Some(crate::pkg_managers::repos_ca::tests::test_ca());
        let text = serde_yaml::to_string(&registry_yarnrc(&own, &with_ca, &sub)).unwrap();
        assert!(
            text.contains("httpsCaFilePath: ../../registry-ca.pem"),
            "{text}"
        );
        let text = serde_yaml::to_string(&offline_yarnrc(&own, &sub)).unwrap();
        for line in [
            "nodeLinker: node-modules",
            "cacheFolder: ../../../deps/yarn-berry/cache",
            "enableNetwork: false",
            "enableGlobalCache: false",
        ] {
            assert!(text.lines().any(|l| l.trim() == line), "{line} in {text}");
        }
        assert!(!text.contains("evil"), "{text}");
    }
}
