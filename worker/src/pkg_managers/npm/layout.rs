//! Bundle layout, packages report, env vars, config files (`.npmrc`, rewritten lockfile and
//! package.json) and the per-request registry's artifacts.
//!
//! Two lockfile variants are produced from the original:
//! - **registry** (handed back as a config file `app/<path>/<lockfile>`): every fetched entry's
//!   `resolved` is `<repo_url><name>/-/<file>` on the per-request registry;
//! - **offline** (written into the bundle's app overlay, `deps/app-overlay/<path>/<lockfile>`):
//!   every fetched entry's `resolved` is `file:<relative path to ../deps/npm/...>`, so once the
//!   overlay is copied over `app/`, `npm ci --offline --ignore-scripts --no-audit --no-fund`
//!   installs with no registry at all (verified with npm 11.19.1). `app/` itself stays the
//!   commit.
//!
//! Non-registry dependencies (git, https, file tarballs) are also rewritten in the package.json
//! files that declare them, so `npm ci` finds lockfile and package.json in sync (as Cachito does).

use crate::bundle::overlay_path;
use crate::pkg_managers::npm::classify::{download_url, Kind};
use crate::pkg_managers::npm::integrity::Integrity;
use crate::pkg_managers::npm::lockfile::{
    open_limited, rel_display, LocationGraph, Project, PACKAGE_LOCK, SHRINKWRAP,
};
use crate::pkg_managers::npm::plan::{Plan, PlannedDep};
use crate::pkg_managers::ReposCa;
use common::artifact::npm::{NpmDist, NpmManifest, NpmMeta, NpmSource};
use common::digest::{FileDigests, HashAlgorithm};
use common::percent::{encode_component, encode_path};
use common::repo_path::{RepoPath, RepoPathError};
use common::{
    Artifact, ArtifactMeta, Classify, ConfigContent, ConfigFile, Dependency, EnvVar, EnvVars,
    ErrorKind, Failure, Package, Store,
};
use serde::ser::{SerializeMap, Serializer as _};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
pub const MAX_TGZ_SCAN_BYTES: u64 = 2 * 1024 * 1024 * 1024;
pub const MAX_TGZ_ENTRIES: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("The tarball of {label} is not a valid npm package: {reason}")]
    BadTarball { label: String, reason: String },
    #[error("The tarball of {label} has no package/package.json")]
    NoManifest { label: String },
    #[error("The file of {label} was not fetched (store key {store_key})")]
    Missing { label: String, store_key: String },
    #[error("The tarball of {label} does not match the lockfile: {reason}")]
    Mismatch { label: String, reason: String },
    #[error("Could not rewrite {file}: {reason}")]
    Rewrite { file: String, reason: String },
    #[error("Could not read {file}: {reason}")]
    Io { file: String, reason: String },
    #[error("Could not place a file in the bundle: {0}")]
    Bundle(#[from] crate::bundle::PlaceError),
}

impl Classify for LayoutError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayoutError::BadTarball { .. }
            | LayoutError::NoManifest { .. }
            | LayoutError::Mismatch { .. }
            | LayoutError::Rewrite { .. } => ErrorKind::InvalidFileFormat,
            LayoutError::Missing { .. } | LayoutError::Io { .. } | LayoutError::Bundle(_) => {
                ErrorKind::FileAccessError
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tarball manifest

/// Read `<top>/package.json` (npm strips the first path component, normally `package/`) from an
/// npm tarball, bounded: at most [`MAX_TGZ_ENTRIES`] entries and [`MAX_TGZ_SCAN_BYTES`]
/// decompressed bytes are scanned, the manifest may be at most [`MAX_MANIFEST_BYTES`].
pub fn read_manifest_from_tgz(path: &Path, label: &str) -> Result<Value, LayoutError> {
    let f = fs::File::open(path).map_err(|e| LayoutError::Io {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    read_manifest_from_reader(std::io::BufReader::new(f), label)
}

/// The fields of a stored tarball's manifest that its artifact reads ([`artifact_for`],
/// [`packument_manifest`]): recorded on the file the first time (`file_record`), read from
/// the tarball again only when it has no record or was written since.
fn manifest_of(file: &Path, label: &str) -> Result<Value, LayoutError> {
    const RECORD: &str = "npm-manifest";
    if let Some(kept) = common::store::file_record::recorded(file, RECORD)
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(Value::is_object)
    {
        return Ok(kept);
    }
    let before = fs::metadata(file).ok();
    let manifest = read_manifest_from_tgz(file, label)?;
    let mut kept = serde_json::Map::new();
    for field in MANIFEST_FIELDS {
        if let Some(v) = manifest.get(*field) {
            kept.insert((*field).to_string(), v.clone());
        }
    }
    let install_scripts: serde_json::Map<String, Value> = manifest
        .get("scripts")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| INSTALL_SCRIPTS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !install_scripts.is_empty() {
        kept.insert("scripts".into(), Value::Object(install_scripts));
    }
    let kept = Value::Object(kept);
    // too large for the filesystem's attributes: read from the tarball each time
    if let Some(before) = before {
        let value = kept.to_string();
        let _ = common::store::file_record::record(file, RECORD, value.as_bytes(), &before);
    }
    Ok(kept)
}

/// The manifest fields an artifact reads (`scripts` aside: only its install scripts).
const MANIFEST_FIELDS: &[&str] = &[
    "name",
    "version",
    "description",
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "deprecated",
    "license",
    "_hasShrinkwrap",
];

const INSTALL_SCRIPTS: [&str; 3] = ["preinstall", "install", "postinstall"];

pub fn read_manifest_from_tgz_bytes(bytes: &[u8], label: &str) -> Result<Value, LayoutError> {
    read_manifest_from_reader(bytes, label)
}

fn read_manifest_from_reader(r: impl Read, label: &str) -> Result<Value, LayoutError> {
    let bad = |e: std::io::Error| LayoutError::BadTarball {
        label: label.into(),
        reason: e.to_string(),
    };
    let gz = flate2::read::GzDecoder::new(r);
    let mut ar = tar::Archive::new(gz.take(MAX_TGZ_SCAN_BYTES));
    let mut found: Option<(usize, Value)> = None;
    for (n, entry) in ar.entries().map_err(bad)?.enumerate() {
        if n >= MAX_TGZ_ENTRIES {
            break;
        }
        let mut entry = entry.map_err(bad)?;
        let p = entry
            .path()
            .map_err(bad)?
            .to_string_lossy()
            .replace('\\', "/");
        let parts: Vec<&str> = p
            .trim_start_matches("./")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if parts.len() != 2 || parts[1] != "package.json" || !entry.header().entry_type().is_file()
        {
            continue;
        }
        // prefer `package/package.json`; else the first top-level dir's
        let rank = if parts[0] == "package" { 0 } else { 1 };
        if found.as_ref().is_some_and(|(r, _)| *r <= rank) {
            continue;
        }
        if entry.size() > MAX_MANIFEST_BYTES {
            return Err(LayoutError::BadTarball {
                label: label.into(),
                reason: "package.json is too large".into(),
            });
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        (&mut entry)
            .take(MAX_MANIFEST_BYTES)
            .read_to_end(&mut buf)
            .map_err(bad)?;
        let v: Value = serde_json::from_slice(&buf).map_err(|e| LayoutError::BadTarball {
            label: label.into(),
            reason: format!("package.json: {e}"),
        })?;
        if !v.is_object() {
            return Err(LayoutError::BadTarball {
                label: label.into(),
                reason: "package.json is not an object".into(),
            });
        }
        found = Some((rank, v));
        if rank == 0 {
            break;
        }
    }
    found
        .map(|(_, v)| v)
        .ok_or_else(|| LayoutError::NoManifest {
            label: label.into(),
        })
}

/// The packument fields npm needs of a tarball's package.json. `hasInstallScript` is derived
/// from `scripts` (preinstall/install/postinstall).
pub fn packument_manifest(manifest: &Value) -> NpmManifest {
    let field = |k: &str| manifest.get(k).cloned();
    let has_install_script = manifest
        .get("scripts")
        .and_then(|s| s.as_object())
        .is_some_and(|s| INSTALL_SCRIPTS.iter().any(|k| s.contains_key(*k)));
    NpmManifest {
        description: field("description"),
        dependencies: field("dependencies"),
        optional_dependencies: field("optionalDependencies"),
        peer_dependencies: field("peerDependencies"),
        peer_dependencies_meta: field("peerDependenciesMeta"),
        bundle_dependencies: field("bundleDependencies").or_else(|| field("bundledDependencies")),
        bin: field("bin"),
        directories: field("directories"),
        engines: field("engines"),
        os: field("os"),
        cpu: field("cpu"),
        deprecated: field("deprecated"),
        license: field("license"),
        has_install_script,
        has_shrinkwrap: manifest.get("_hasShrinkwrap").and_then(|v| v.as_bool()) == Some(true),
    }
}

// ---------------------------------------------------------------------------------------------
// purls

/// Cachito's npm dependency purl for `name` and its reported `version`.
pub fn dep_purl(name: &str, version: &str) -> String {
    let qn = encode_path(name);
    if let Some(p) = version.strip_prefix("file:") {
        return format!("pkg:generic/{qn}?file={}", encode_component(p));
    }
    for forge in ["github", "gitlab", "bitbucket"] {
        if let Some(rest) = version.strip_prefix(&format!("{forge}:")) {
            if !rest.contains("//") {
                let (path, r) = rest.split_once('#').unwrap_or((rest, ""));
                let path = path.trim_end_matches(".git");
                return if r.is_empty() {
                    format!("pkg:{forge}/{path}")
                } else {
                    format!("pkg:{forge}/{path}@{r}")
                };
            }
        }
    }
    if version.starts_with("git+") || version.starts_with("git://") {
        return format!("pkg:generic/{qn}?vcs_url={}", encode_component(version));
    }
    if version.starts_with("http://") || version.starts_with("https://") {
        return format!(
            "pkg:generic/{qn}?download_url={}",
            encode_component(version)
        );
    }
    format!("pkg:npm/{qn}@{}", encode_component(version))
}

/// VCS purl of the request's repository (top-level package), `#<path>` when not at the root.
pub fn vcs_purl(repo: &str, reference: &str, name: &str, path: &RepoPath) -> String {
    let sub = if path.is_root() {
        String::new()
    } else {
        format!("#{path}")
    };
    let parsed = url::Url::parse(repo).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let upath = parsed
        .as_ref()
        .map(|u| {
            u.path()
                .trim_matches('/')
                .trim_end_matches(".git")
                .to_string()
        })
        .unwrap_or_default();
    match host.as_str() {
        "github.com" | "bitbucket.org" if upath.matches('/').count() == 1 => {
            let forge = if host == "github.com" {
                "github"
            } else {
                "bitbucket"
            };
            format!(
                "pkg:{forge}/{}@{reference}{sub}",
                upath.to_ascii_lowercase()
            )
        }
        _ => format!(
            "pkg:generic/{}?vcs_url={}{sub}",
            encode_path(name),
            encode_component(&format!("{repo}@{reference}"))
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// layout

/// Inputs the foundation knows.
#[derive(Clone, Debug)]
pub struct LayoutContext {
    /// per-request registry base URL, e.g. `http://127.0.0.1:8080/repos/7/npm/` (a trailing `/`
    /// is added if missing)
    pub repo_url: String,
    /// the per-request token written into `.npmrc` as `_authToken`
    pub token: String,
    /// the request's repository URL and commit (top-level purls)
    pub source_repo: String,
    pub source_ref: String,
    /// the bundle being laid out: tarballs are placed in it (streamed from the store when it is
    /// written) and the offline files written into the app overlay as they are made
    pub bundle: crate::bundle::BundleTree,
    /// where the rewritten lockfile handed back is kept
    pub store: common::Store,
    /// the registry's CA (`LARDER_REPOS_CA_FILE`): each `.npmrc` names it as `cafile`
    pub repos_ca: Option<ReposCa>,
    /// the package manager reporting (`npm`, `yarn`): its packages' and artifacts' type
    pub pm: &'static str,
    /// where a tarball (its dependency and store key) is linked in the bundle, if anywhere
    /// (npm: at its store key, `deps/npm/…`; yarn: in its offline mirror)
    pub bundle_rel: fn(&PlannedDep, &str) -> Option<String>,
    /// `LARDER_NPM_REGISTRY`: where registry tarballs are fetched from (the artifacts'
    /// `source_url`)
    pub upstream_registry: String,
    /// What the hand-back is for: for an output directory the offline files name each
    /// tarball by its absolute path, `file://<output dir>/deps/npm/…` (as Hermeto's do).
    pub hand_back: crate::pkg_managers::HandBack,
}

/// The upstream URL a tarball was fetched from, credentials stripped: the configured
/// registry's for a registry dependency (whatever host the lockfile names, that is where it
/// comes from), the lockfile's for an http(s) tarball; none for what Larder packs from git or
/// takes from the repository.
pub fn upstream_url(d: &PlannedDep, upstream_registry: &str) -> Option<String> {
    match &d.kind {
        Kind::Registry => common::artifact::distribution_url(&download_url(
            upstream_registry,
            &d.entry.name,
            d.entry.version.as_deref()?,
        )),
        Kind::HttpsTarball { url, .. } => common::artifact::distribution_url(url),
        _ => None,
    }
}

/// npm's [`LayoutContext::bundle_rel`]: the bundle path of a tarball is its store key.
pub fn at_store_key(_: &PlannedDep, store_key: &str) -> Option<String> {
    Some(store_key.to_string())
}

impl LayoutContext {
    /// The bundle's root: `app/` and `deps/` below it.
    pub fn bundle_root(&self) -> &Path {
        self.bundle.root()
    }

    /// the unpacked repository (`app/`): package.json files are read inside it only
    fn app_dir(&self) -> PathBuf {
        self.bundle_root().join("app")
    }
}

/// What `layout` returns for one project path.
#[derive(Clone, Debug, Default)]
pub struct LayoutOutput {
    pub package: Option<Package>,
    pub config_files: Vec<ConfigFile>,
    /// Cachito's npm defaults (set them once per request)
    pub env_vars: EnvVars,
}

/// Cachito's default npm environment variables.
pub fn default_env_vars() -> EnvVars {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("CHROMEDRIVER_SKIP_DOWNLOAD", "true"),
        ("CYPRESS_INSTALL_BINARY", "0"),
        ("GECKODRIVER_SKIP_DOWNLOAD", "true"),
        ("SKIP_SASS_BINARY_DOWNLOAD_FOR_CI", "true"),
    ] {
        m.insert(
            k.to_string(),
            EnvVar {
                value: v.to_string(),
                kind: "literal".into(),
            },
        );
    }
    m
}

/// `.npmrc` for the per-request registry (token scoped to the registry URL, "nerf-darted"),
/// and `cafile=<cafile>` when the registry's CA is handed back. npm resolves a relative
/// `cafile` against the directory it runs in, not the `.npmrc`'s (VERIFIED with npm 11.19.1:
/// `npm config get cafile` in `app/sub/` with `cafile=../registry-ca.pem` gives
/// `app/registry-ca.pem`), so it is relative to the package directory, as Cachito writes it:
/// `cd app/<path> && npm ci`.
pub fn npmrc(repo_url: &str, token: &str, cafile: Option<&str>) -> String {
    let base = with_slash(repo_url);
    let nerf = match url::Url::parse(&base) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("//{}{port}{}", u.host_str().unwrap_or_default(), u.path())
        }
        Err(_) => base
            .trim_start_matches("https:")
            .trim_start_matches("http:")
            .to_string(),
    };
    let mut s = format!(
        "registry={base}\n{nerf}:_authToken={token}\naudit=false\nfund=false\nupdate-notifier=false\nfetch-retries=5\nfetch-retry-factor=2\n"
    );
    if let Some(cafile) = cafile {
        s.push_str(&format!("cafile={cafile}\n"));
    }
    s
}

/// A repository's `.npmrc` is settings, not data.
const MAX_NPMRC_BYTES: u64 = 1 << 20;

/// The settings of the repository's own `app/<path>/.npmrc` that are not about where packages
/// come from or how to authenticate (those are the hand-back's), one a line; "" without one.
pub fn repository_settings(project: &Project, app_root: &Path) -> Result<String, Failure> {
    let display = rel_display(&project.path, ".npmrc");
    let Ok(file) = project
        .path
        .join(".npmrc")
        .and_then(|p| p.resolve(app_root))
    else {
        // missing, or a symlink out of the repository: nothing of it is used
        return Ok(String::new());
    };
    if !file.is_file() {
        return Ok(String::new());
    }
    let mut text = String::new();
    open_limited(&file, &display, MAX_NPMRC_BYTES)?
        .read_to_string(&mut text)
        .map_err(|e| LayoutError::Io {
            file: display,
            reason: e.to_string(),
        })?;
    Ok(kept_settings(&text))
}

/// The lines of an `.npmrc` text that Larder's hand-back keeps: not a registry, an
/// authentication, a CA, a proxy or an offline setting, nor a comment.
pub fn kept_settings(npmrc: &str) -> String {
    const DROPPED: &[&str] = &[
        "registry",
        "username",
        "email",
        "always-auth",
        "ca",
        "ca[]",
        "cafile",
        "cert",
        "key",
        "strict-ssl",
        "proxy",
        "http-proxy",
        "https-proxy",
        "noproxy",
        "no-proxy",
        "offline",
        "prefer-offline",
    ];
    let mut out = String::new();
    for line in npmrc.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let key = line.split('=').next().unwrap_or_default().trim();
        let key = key.to_ascii_lowercase();
        if DROPPED.contains(&key.as_str())
            || key.ends_with(":registry")
            || key.starts_with("//")
            || key.starts_with('_')
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if out.is_empty() {
        out
    } else {
        format!("# kept from the repository's .npmrc\n{out}")
    }
}

/// `app/<path>/.npmrc` of a package directory for `ctx`'s registry, token and CA, `extra`
/// lines after, then the settings of the repository's own `.npmrc` that it keeps (it replaces
/// that file).
pub fn npmrc_file(
    ctx: &LayoutContext,
    project: &Project,
    extra: &str,
) -> Result<ConfigFile, Failure> {
    let path = &project.path;
    let ca = ctx.repos_ca.as_ref().map(|ca| ca.relative_to(path));
    let kept = repository_settings(project, &ctx.app_dir())?;
    Ok(ConfigFile::inline(
        format!("{}/.npmrc", app_rel(path)),
        npmrc(&with_slash(&ctx.repo_url), &ctx.token, ca.as_deref()) + extra + &kept,
    ))
}

pub fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

fn reported_version(d: &PlannedDep) -> Option<String> {
    match &d.kind {
        Kind::Registry => d.entry.version.clone(),
        Kind::Git { original, .. } => Some(original.clone()),
        Kind::HttpsTarball { url, .. } => Some(url.clone()),
        Kind::FileTarball { original, .. } => Some(original.clone()),
        // as the lockfile says it, relative to the package directory
        Kind::Link { path } => {
            let r = d.entry.resolved.clone().unwrap_or_else(|| path.to_string());
            Some(format!("file:{}", r.strip_prefix("file:").unwrap_or(&r)))
        }
        Kind::Bundled => None,
    }
}

/// The packages report entry of one project.
pub fn package_report(project: &Project, plan: &Plan, ctx: &LayoutContext) -> Package {
    // (dev, optional): a package is either only when each of its entries is
    let mut seen: BTreeMap<(String, String), (bool, bool)> = BTreeMap::new();
    for d in &plan.deps {
        if d.entry.local_dir || d.kind == Kind::Bundled {
            continue;
        }
        let Some(v) = reported_version(d) else {
            continue;
        };
        let (dev, optional) = (d.entry.is_dev(), d.entry.is_optional());
        seen.entry((d.entry.name.clone(), v))
            .and_modify(|(x, o)| {
                *x = *x && dev;
                *o = *o && optional;
            })
            .or_insert((dev, optional));
    }
    let mut deps: Vec<Dependency> = seen
        .into_iter()
        .map(|((name, version), (dev, optional))| Dependency {
            kind: ctx.pm.into(),
            purl: dep_purl(&name, &version),
            name,
            version: Some(version),
            dev: Some(dev),
            optional: optional.then_some(true),
            replaces: None,
            depends_on: Vec::new(),
        })
        .collect();
    // the purl each reported entry's location stands for
    let purl_at: HashMap<&str, String> = plan
        .deps
        .iter()
        .filter(|d| !d.entry.local_dir && d.kind != Kind::Bundled)
        .filter_map(|d| {
            Some((
                d.entry.location.as_str(),
                dep_purl(&d.entry.name, &reported_version(d)?),
            ))
        })
        .collect();
    let (root, mut edges) = match &project.lockfile.graph {
        Some(graph) => location_graph_purls(graph, &purl_at),
        None => node_graph_purls(project, plan, &purl_at),
    };
    for dep in &mut deps {
        if let Some(targets) = edges.remove(&dep.purl) {
            dep.depends_on = targets.into_iter().collect();
        }
    }
    deps.sort_by(|a, b| (a.dev, &a.name, &a.version).cmp(&(b.dev, &b.name, &b.version)));
    let name = project.name();
    Package {
        kind: ctx.pm.into(),
        purl: vcs_purl(&ctx.source_repo, &ctx.source_ref, &name, &project.path),
        name,
        version: project.version(),
        path: (!project.path.is_root()).then(|| project.path.to_string()),
        dependencies: deps,
        depends_on: root.into_iter().collect(),
    }
}

/// The package's direct dependencies and each dependency's, as purls.
type PurlGraph = (BTreeSet<String>, HashMap<String, BTreeSet<String>>);

/// npm v2/v3 `packages`: each entry's declared dependencies resolved as node does, from its
/// own node_modules up to the root's; the package's from the root.
fn node_graph_purls(project: &Project, plan: &Plan, purl_at: &HashMap<&str, String>) -> PurlGraph {
    let resolve = |from: &str, name: &str| -> Option<String> {
        let mut base = from;
        loop {
            let candidate = if base.is_empty() {
                format!("node_modules/{name}")
            } else {
                format!("{base}/node_modules/{name}")
            };
            if let Some(purl) = purl_at.get(candidate.as_str()) {
                return Some(purl.clone());
            }
            if base.is_empty() {
                return None;
            }
            base = base
                .rfind("node_modules/")
                .map(|i| base[..i].trim_end_matches('/'))
                .unwrap_or_default();
        }
    };
    let mut edges: HashMap<String, BTreeSet<String>> = HashMap::new();
    for d in &plan.deps {
        let Some(purl) = purl_at.get(d.entry.location.as_str()) else {
            continue;
        };
        let targets = edges.entry(purl.clone()).or_default();
        for name in &d.entry.requires {
            targets.extend(resolve(&d.entry.location, name).filter(|t| t != purl));
        }
    }
    // only where the lockfile records edges (v2/v3 with dependencies): else the package is
    // taken to depend on all of them
    if !plan.deps.iter().any(|d| !d.entry.requires.is_empty()) {
        return (BTreeSet::new(), edges);
    }
    let pj = &project.package_json;
    let root = [
        &pj.dependencies,
        &pj.optional_dependencies,
        &pj.dev_dependencies,
    ]
    .into_iter()
    .flatten()
    .filter_map(|v| v.as_object())
    .flat_map(|m| m.keys())
    .filter_map(|name| resolve("", name))
    .collect();
    (root, edges)
}

/// A graph the lockfile's reader resolved between locations, as purls: a location the
/// report does not hold (a workspace, a `file:` directory) is left out with its edges.
fn location_graph_purls(graph: &LocationGraph, purl_at: &HashMap<&str, String>) -> PurlGraph {
    let purls = |locations: &BTreeSet<String>| -> BTreeSet<String> {
        locations
            .iter()
            .filter_map(|l| purl_at.get(l.as_str()).cloned())
            .collect()
    };
    let mut edges: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (from, to) in &graph.edges {
        let Some(purl) = purl_at.get(from.as_str()) else {
            continue;
        };
        let targets = edges.entry(purl.clone()).or_default();
        targets.extend(purls(to));
        targets.remove(purl);
    }
    (purls(&graph.roots), edges)
}

/// Per fetched tarball: check its digests (computed as it was fetched) against the lockfile,
/// read its manifest, check name/version against the lockfile (registry deps), and describe it
/// as an [`Artifact`].
pub fn artifact_for(
    pm: &str,
    d: &PlannedDep,
    file: &Path,
    digests: &FileDigests,
) -> Result<Artifact, LayoutError> {
    let label = d.entry.label();
    let store_key = d.store_key.clone().unwrap_or_default();
    // the whole SRI check (every value of the strongest algorithm): keeps the metadata honest
    if let Some(iv) = &d.entry.integrity {
        if !matches!(d.kind, Kind::Git { .. }) {
            let mismatch = |reason: String| LayoutError::Mismatch {
                label: label.clone(),
                reason,
            };
            Integrity::parse(iv, &label)
                .and_then(|i| i.verify(&label, digests))
                .map_err(|e| mismatch(e.to_string()))?;
        }
    }
    let manifest = manifest_of(file, &label)?;
    let mname = manifest
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let mversion = manifest
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if d.kind == Kind::Registry {
        let version = d.entry.version.as_deref().unwrap_or_default();
        if mname != d.entry.name || mversion != version {
            return Err(LayoutError::Mismatch {
                label,
                reason: format!("its package.json says {mname}@{mversion}"),
            });
        }
    }
    let source = match d.kind {
        Kind::Registry => NpmSource::Registry,
        Kind::Git { .. } => NpmSource::Git,
        Kind::HttpsTarball { .. } => NpmSource::Url,
        _ => NpmSource::File,
    };
    let meta = NpmMeta {
        source,
        manifest: packument_manifest(&manifest),
        dist: NpmDist {
            integrity: digests.get(HashAlgorithm::Sha512).sri(),
            shasum: digests.get(HashAlgorithm::Sha1).hex(),
        },
    };
    Ok(Artifact {
        pm: pm.into(),
        name: d.entry.name.clone(),
        version: if mversion.is_empty() {
            d.entry.version.clone().unwrap_or_default()
        } else {
            mversion
        },
        filename: d.filename().unwrap_or_default(),
        store_key,
        meta: ArtifactMeta::Npm(Box::new(meta)),
        source_url: None,
    })
}

/// `app` or `app/<path>`: where a file of the package directory goes in the bundle.
pub fn app_rel(path: &RepoPath) -> String {
    if path.is_root() {
        "app".to_string()
    } else {
        format!("app/{path}")
    }
}

/// What the rewrites need of each tarball, by store key.
pub type Tarballs<'p> = BTreeMap<&'p str, Tarball>;

/// The artifact of every tarball of `plan` not in `tarballs` yet, made from its file in `store`
/// and its digests (computed as it was fetched or packed), linked into the bundle and emitted
/// as it is made: only what the rewrites need is kept.
pub fn add_tarballs<'p>(
    plan: &'p Plan,
    store: &Store,
    digests: &BTreeMap<String, FileDigests>,
    ctx: &LayoutContext,
    tarballs: &mut Tarballs<'p>,
    emit: &mut dyn FnMut(Artifact) -> Result<(), Failure>,
) -> Result<(), Failure> {
    for d in &plan.deps {
        let Some(key) = &d.store_key else { continue };
        if tarballs.contains_key(key.as_str()) {
            continue;
        }
        let missing = || LayoutError::Missing {
            label: d.entry.label(),
            store_key: key.clone(),
        };
        let file_digests = digests.get(key).ok_or_else(missing)?;
        let file = store.path(key).map_err(|_| missing())?;
        let mut a = artifact_for(ctx.pm, d, &file, file_digests)?;
        a.source_url = upstream_url(d, &ctx.upstream_registry);
        if let Some(rel) = (ctx.bundle_rel)(d, key) {
            ctx.bundle
                .place_stored(store, &rel, key)
                .map_err(LayoutError::from)?;
        }
        let ArtifactMeta::Npm(meta) = &a.meta else {
            return Err(missing().into());
        };
        let tarball = Tarball {
            integrity: meta.dist.integrity.clone(),
            shasum: meta.dist.shasum.clone(),
            version: a.version.clone(),
            filename: a.filename.clone(),
        };
        emit(a)?;
        tarballs.insert(key, tarball);
    }
    Ok(())
}

/// Layout of one project, once [`add_tarballs`] has made its tarballs' artifacts.
pub fn layout(
    project: &Project,
    plan: &Plan,
    arts: &Tarballs<'_>,
    ctx: &LayoutContext,
) -> Result<LayoutOutput, Failure> {
    let repo_url = with_slash(&ctx.repo_url);
    let mut out = LayoutOutput {
        env_vars: default_env_vars(),
        ..Default::default()
    };
    let mut rewrites = Rewrites {
        by_location: BTreeMap::new(),
        repo_url: &repo_url,
        up: "../".repeat(project.path.depth() + 1),
        output_dir: ctx.hand_back == crate::pkg_managers::HandBack::OutputDir,
    };
    for d in &plan.deps {
        let Some(key) = &d.store_key else { continue };
        let a = &arts[key.as_str()];
        rewrites.by_location.insert(
            &d.entry.location,
            Rewrite {
                name: &d.entry.name,
                filename: &a.filename,
                store_key: key,
                integrity: &a.integrity,
                non_registry: !matches!(d.kind, Kind::Registry),
                version: &a.version,
            },
        );
    }
    out.package = Some(package_report(project, plan, ctx));
    let app_rel_dir = app_rel(&project.path);
    out.config_files.push(npmrc_file(ctx, project, "")?);

    let lock_name = project.lockfile.file_name;
    let lock_path = project.dir.join(lock_name);
    let text = read_text(&lock_path, lock_name)?;
    let offline = create_in_bundle(
        ctx.bundle_root(),
        &overlay_path(&format!("{app_rel_dir}/{lock_name}")),
    )?;
    rewrite_lock_to(
        &text,
        &rewrites,
        Variant::Offline,
        lock_name,
        std::io::BufWriter::new(offline),
    )?;
    // written to the store, never held: it is as large as the lockfile
    let mut not_rewritten = None;
    let stored = ctx
        .store
        .put_by_sha256(common::store::config_file_key, |out| {
            rewrite_lock_to(&text, &rewrites, Variant::Registry, lock_name, out).map_err(|e| {
                let reason = std::io::Error::other(e.to_string());
                not_rewritten = Some(e);
                reason
            })
        });
    drop(text);
    let digest = match (stored, not_rewritten) {
        (_, Some(e)) => return Err(e.into()),
        (Err(e), None) => {
            return Err(LayoutError::Io {
                file: lock_name.into(),
                reason: e.to_string(),
            }
            .into())
        }
        (Ok(digest), None) => digest,
    };
    out.config_files.push(ConfigFile {
        path: format!("{app_rel_dir}/{lock_name}"),
        content: ConfigContent::Stored(digest),
    });

    // package.json files declaring non-registry deps: the root and each local dir entry
    let mut pj_dirs: BTreeSet<String> = BTreeSet::new();
    pj_dirs.insert(String::new());
    for d in &plan.deps {
        if d.entry.local_dir {
            pj_dirs.insert(d.entry.location.clone());
        }
    }
    for dir in pj_dirs {
        let unusable = |e: RepoPathError| LayoutError::Io {
            file: format!("{dir}/package.json"),
            reason: e.to_string(),
        };
        let pkg_dir = project.path.join(&dir).map_err(unusable)?;
        let pj_file = match pkg_dir
            .join("package.json")
            .map_err(unusable)?
            .resolve(&ctx.app_dir())
        {
            Ok(f) if f.is_file() => f,
            Ok(_) | Err(RepoPathError::Missing(_)) => continue,
            Err(e) => return Err(unusable(e).into()),
        };
        let pj = read_json(&pj_file, "package.json")?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let extra_up = if dir.is_empty() {
            String::new()
        } else {
            "../".repeat(dir.split('/').count())
        };
        let (reg_pj, changed) =
            rewrite_package_json(&pj, &prefix, &rewrites, Variant::Registry, "");
        if changed {
            let (off_pj, _) =
                rewrite_package_json(&pj, &prefix, &rewrites, Variant::Offline, &extra_up);
            let app = app_rel(&pkg_dir);
            out.config_files.push(ConfigFile::inline(
                format!("{app}/package.json"),
                to_bytes(&reg_pj),
            ));
            let overlay = overlay_path(&format!("{app}/package.json"));
            let mut file = create_in_bundle(ctx.bundle_root(), &overlay)?;
            std::io::Write::write_all(&mut file, &to_bytes(&off_pj)).map_err(|e| {
                LayoutError::Io {
                    file: overlay,
                    reason: e.to_string(),
                }
            })?;
        }
    }
    Ok(out)
}

/// What the rewrites need of a tarball's artifact.
pub struct Tarball {
    integrity: String,
    /// hex sha1, the `#<sha1>` fragment yarn v1 writes after `resolved`
    shasum: String,
    version: String,
    filename: String,
}

impl Tarball {
    pub fn integrity(&self) -> &str {
        &self.integrity
    }
    pub fn shasum(&self) -> &str {
        &self.shasum
    }
    /// the file name the registry serves it as
    pub fn filename(&self) -> &str {
        &self.filename
    }
}

/// What a lockfile location's entry becomes, borrowed from the plan and the artifacts (one
/// per package of a lockfile: its URLs are made when they are written).
#[derive(Clone, Debug)]
struct Rewrite<'a> {
    name: &'a str,
    filename: &'a str,
    store_key: &'a str,
    integrity: &'a str,
    non_registry: bool,
    version: &'a str,
}

/// The rewrites of one project, by lockfile location.
struct Rewrites<'a> {
    by_location: BTreeMap<&'a str, Rewrite<'a>>,
    /// The per-request registry, ending in `/`.
    repo_url: &'a str,
    /// From the project's directory in `app/` up to the bundle's root.
    up: String,
    /// Offline files for an output directory: absolute `file://` URLs below its mark.
    output_dir: bool,
}

impl Rewrites<'_> {
    fn get(&self, location: &str) -> Option<&Rewrite<'_>> {
        self.by_location.get(location)
    }

    /// `resolved` in `variant`: the per-request registry's URL, or the bundle's file from
    /// `extra_up` below the project's directory.
    fn resolved(&self, r: &Rewrite<'_>, variant: Variant, extra_up: &str) -> String {
        match variant {
            Variant::Registry => format!("{}{}/-/{}", self.repo_url, r.name, r.filename),
            Variant::Offline if self.output_dir => format!(
                "file://{}/{}",
                crate::pkg_managers::output_dir_mark(),
                r.store_key
            ),
            Variant::Offline => format!("file:{extra_up}{}{}", self.up, r.store_key),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Registry,
    Offline,
}

pub fn read_text(p: &Path, display: &str) -> Result<String, LayoutError> {
    let f = fs::File::open(p).map_err(|e| LayoutError::Io {
        file: display.into(),
        reason: e.to_string(),
    })?;
    let limit = crate::pkg_managers::npm::lockfile::MAX_LOCKFILE_BYTES;
    // sized up front: grown while reading, a 19 MB lockfile took a 32 MB buffer
    let len = f.metadata().map_or(0, |m| m.len().min(limit));
    let mut s = String::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(limit)
        .read_to_string(&mut s)
        .map_err(|e| LayoutError::Rewrite {
            file: display.into(),
            reason: e.to_string(),
        })?;
    Ok(s)
}

pub fn read_json(p: &Path, display: &str) -> Result<Value, LayoutError> {
    let f = fs::File::open(p).map_err(|e| LayoutError::Io {
        file: display.into(),
        reason: e.to_string(),
    })?;
    serde_json::from_reader(std::io::BufReader::new(f)).map_err(|e| LayoutError::Rewrite {
        file: display.into(),
        reason: e.to_string(),
    })
}

pub fn to_bytes(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).unwrap_or_default();
    s.push(b'\n');
    s
}

/// Key/value pairs of a JSON object in document order, values kept as raw text borrowed from
/// the input (so a lockfile is never held as a whole `serde_json::Value`).
struct OrderedRaw<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for OrderedRaw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = OrderedRaw<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, raw)) = m.next_entry::<String, &'de RawValue>()? {
                    v.push((k, raw));
                }
                Ok(OrderedRaw(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Serializes a raw object entry by entry, each value rewritten on the fly by `f` (one entry's
/// `Value` alive at a time).
type EntryFn<'a> = &'a dyn Fn(&str, &RawValue) -> Value;

struct LazyMap<'a> {
    items: &'a [(String, &'a RawValue)],
    f: EntryFn<'a>,
}

impl Serialize for LazyMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.items.len()))?;
        for (k, raw) in self.items {
            m.serialize_entry(k, &(self.f)(k, raw))?;
        }
        m.end()
    }
}

enum TopValue<'a> {
    Raw(&'a RawValue),
    Lazy(LazyMap<'a>),
}

impl Serialize for TopValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TopValue::Raw(r) => r.serialize(s),
            TopValue::Lazy(m) => m.serialize(s),
        }
    }
}

fn parse_entry(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

fn rewrite_packages_entry(
    loc: &str,
    mut entry: Value,
    rw: &Rewrites<'_>,
    variant: Variant,
) -> Value {
    if let (Some(r), Some(o)) = (rw.get(loc), entry.as_object_mut()) {
        o.insert(
            "resolved".into(),
            Value::String(rw.resolved(r, variant, "")),
        );
        o.insert("integrity".into(), Value::String(r.integrity.to_string()));
        if r.non_registry && !o.contains_key("version") {
            o.insert("version".into(), Value::String(r.version.to_string()));
        }
    }
    if loc.is_empty() {
        // the root entry's declared specs must match the rewritten package.json
        rewrite_dep_maps(&mut entry, "", rw, variant, "");
    } else if !loc.contains("node_modules/") {
        let extra_up = "../".repeat(loc.split('/').count());
        rewrite_dep_maps(&mut entry, &format!("{loc}/"), rw, variant, &extra_up);
    }
    entry
}

/// All of `file`, from its start, in a buffer of its size.
/// Rewrite a lockfile text (v1/v2/v3) for `variant`, entry by entry; the output is
/// pretty-printed with two-space indentation like npm's.
#[cfg(test)]
fn rewrite_lock(
    text: &str,
    rw: &Rewrites<'_>,
    variant: Variant,
    file: &str,
) -> Result<Vec<u8>, LayoutError> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 4);
    rewrite_lock_to(text, rw, variant, file, &mut out)?;
    Ok(out)
}

/// [`rewrite_lock`] into a writer (the offline variant goes straight to its file).
fn rewrite_lock_to(
    text: &str,
    rw: &Rewrites<'_>,
    variant: Variant,
    file: &str,
    mut out: impl std::io::Write,
) -> Result<(), LayoutError> {
    let bad = |e: serde_json::Error| LayoutError::Rewrite {
        file: file.into(),
        reason: e.to_string(),
    };
    let top: OrderedRaw<'_> = serde_json::from_str(text).map_err(bad)?;
    let mut sub: Vec<(String, Option<OrderedRaw<'_>>)> = Vec::new();
    for (k, raw) in &top.0 {
        let inner = if k == "packages" || k == "dependencies" {
            Some(serde_json::from_str::<OrderedRaw<'_>>(raw.get()).map_err(bad)?)
        } else {
            None
        };
        sub.push((k.clone(), inner));
    }
    let fp = |loc: &str, raw: &RawValue| rewrite_packages_entry(loc, parse_entry(raw), rw, variant);
    let fd = |key: &str, raw: &RawValue| {
        let mut one = Map::new();
        one.insert(key.to_string(), parse_entry(raw));
        rewrite_v1(&mut one, "", rw, variant);
        one.remove(key).unwrap_or(Value::Null)
    };
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"  "),
    );
    let mut m = ser.serialize_map(Some(top.0.len())).map_err(bad)?;
    for ((k, raw), (_, inner)) in top.0.iter().zip(sub.iter()) {
        let v = match (k.as_str(), inner) {
            ("packages", Some(o)) => TopValue::Lazy(LazyMap {
                items: &o.0,
                f: &fp,
            }),
            ("dependencies", Some(o)) => TopValue::Lazy(LazyMap {
                items: &o.0,
                f: &fd,
            }),
            _ => TopValue::Raw(raw),
        };
        m.serialize_entry(k, &v).map_err(bad)?;
    }
    m.end().map_err(bad)?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(|e| LayoutError::Rewrite {
            file: file.into(),
            reason: e.to_string(),
        })
}

fn rewrite_v1(deps: &mut Map<String, Value>, prefix: &str, rw: &Rewrites<'_>, variant: Variant) {
    for (k, e) in deps.iter_mut() {
        let loc = format!("{prefix}node_modules/{k}");
        if let Some(o) = e.as_object_mut() {
            if let Some(r) = rw.get(&loc) {
                o.insert(
                    "resolved".into(),
                    Value::String(rw.resolved(r, variant, "")),
                );
                o.insert("integrity".into(), Value::String(r.integrity.to_string()));
                if r.non_registry {
                    // npm 7+ reads v1 `version` as the installed version; a URL there makes
                    // `npm ci` report the lockfile out of sync (verified with npm 11.19.1)
                    o.insert("version".into(), Value::String(r.version.to_string()));
                    o.remove("from");
                }
            }
            if let Some(n) = o.get_mut("dependencies").and_then(|d| d.as_object_mut()) {
                rewrite_v1(n, &format!("{loc}/"), rw, variant);
            }
        }
    }
}

/// Rewrite the specs of non-registry deps in a package.json-like object (package.json itself or
/// a lockfile's root/workspace entry). `prefix` is that package's location (`""` or
/// `packages/w/`); `extra_up` the `../` needed to climb from it to the project dir.
fn rewrite_dep_maps(
    obj: &mut Value,
    prefix: &str,
    rw: &Rewrites<'_>,
    variant: Variant,
    extra_up: &str,
) -> bool {
    rewrite_dep_specs(obj, |k, _| {
        let r = rw
            .get(&format!("{prefix}node_modules/{k}"))
            .or_else(|| rw.get(&format!("node_modules/{k}")))?;
        r.non_registry.then(|| rw.resolved(r, variant, extra_up))
    })
}

/// Set each spec of a package.json-like object's dependency maps to what `new_spec(name,
/// spec)` says, where it says something; whether any changed.
pub fn rewrite_dep_specs(
    obj: &mut Value,
    mut new_spec: impl FnMut(&str, &str) -> Option<String>,
) -> bool {
    let mut changed = false;
    for field in [
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
    ] {
        let Some(m) = obj.get_mut(field).and_then(|d| d.as_object_mut()) else {
            continue;
        };
        for (name, spec) in m.iter_mut() {
            let Some(new) = new_spec(name, spec.as_str().unwrap_or_default()) else {
                continue;
            };
            if spec.as_str() != Some(new.as_str()) {
                *spec = Value::String(new);
                changed = true;
            }
        }
    }
    changed
}

fn rewrite_package_json(
    pj: &Value,
    prefix: &str,
    rw: &Rewrites<'_>,
    variant: Variant,
    extra_up: &str,
) -> (Value, bool) {
    let mut v = pj.clone();
    let changed = rewrite_dep_maps(&mut v, prefix, rw, variant, extra_up);
    (v, changed)
}

/// `rel` under the bundle's root, if it is a safe relative path.
fn in_bundle(bundle_root: &Path, rel: &str) -> Result<PathBuf, LayoutError> {
    match RepoPath::parse(rel) {
        Ok(p) if !p.is_root() => Ok(p.under(bundle_root)),
        _ => Err(LayoutError::Io {
            file: rel.into(),
            reason: "unsafe bundle path".into(),
        }),
    }
}

fn bundle_io(f: &Path, e: std::io::Error) -> LayoutError {
    LayoutError::Io {
        file: f.display().to_string(),
        reason: e.to_string(),
    }
}

/// A new file at `rel` in the bundle (the app overlay's offline files).
pub fn create_in_bundle(bundle_root: &Path, rel: &str) -> Result<fs::File, LayoutError> {
    let dst = in_bundle(bundle_root, rel)?;
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(|e| bundle_io(parent, e))?;
    }
    fs::File::create(&dst).map_err(|e| bundle_io(&dst, e))
}

pub fn is_lockfile_name(n: &str) -> bool {
    n == PACKAGE_LOCK || n == SHRINKWRAP
}

/// The graph of `plan`'s report as package manager `pm` makes it, each purl as the
/// `name@version` of the dependency reported with it (the package itself is `.`); panics on an
/// edge to a purl the report does not hold. For the tests of the readers whose graph npm's
/// report turns into purls.
#[cfg(test)]
pub(crate) fn report_graph(
    project: &Project,
    plan: &Plan,
    pm: &'static str,
) -> BTreeMap<String, BTreeSet<String>> {
    let dir = tempfile::tempdir().unwrap();
    let ctx = LayoutContext {
        repo_url: "https://larder.example/repos/1/npm/".into(),
        token: "t".into(),
        source_repo: "https://git.example/o/app".into(),
        source_ref: "abc".into(),
        bundle: crate::bundle::BundleTree::new(dir.path()),
        store: Store::new(dir.path().join("store")),
        repos_ca: None,
        pm,
        bundle_rel: at_store_key,
        upstream_registry: "https://registry.npmjs.org".into(),
        hand_back: crate::pkg_managers::HandBack::Service,
    };
    let package = package_report(project, plan, &ctx);
    let names: HashMap<&str, String> = package
        .dependencies
        .iter()
        .map(|d| {
            let version = d.version.as_deref().unwrap_or_default();
            (d.purl.as_str(), format!("{}@{version}", d.name))
        })
        .collect();
    let named = |purls: &[String]| -> BTreeSet<String> {
        purls
            .iter()
            .map(|p| {
                names
                    .get(p.as_str())
                    .unwrap_or_else(|| panic!("{p} not reported"))
            })
            .cloned()
            .collect()
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = package
        .dependencies
        .iter()
        .map(|d| (names[d.purl.as_str()].clone(), named(&d.depends_on)))
        .collect();
    graph.insert(".".into(), named(&package.depends_on));
    graph
}

/// `(name@version, its direct dependencies)` as the tests write a graph.
#[cfg(test)]
pub(crate) fn graph_of(items: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    items
        .iter()
        .map(|(from, to)| (from.to_string(), to.iter().map(|t| t.to_string()).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_repositorys_own_settings_but_not_its_registries() {
        let kept = kept_settings(
            "# c\nregistry=https://r.example/\n@s:registry=https://s.example/\n//r.example/:_authToken=${T}\n_auth=x\nauto-install-peers=false\n node-linker = hoisted\ncafile=/etc/x.pem\nstrict-ssl=false\n; c\n",
        );
        assert_eq!(
            kept,
            "# kept from the repository's .npmrc\nauto-install-peers=false\nnode-linker = hoisted\n"
        );
        assert_eq!(kept_settings("registry=x\n"), "");
    }

    #[test]
    fn the_repositorys_npmrc_is_read_inside_it_only() {
        use crate::pkg_managers::npm::lockfile::{Lockfile, PackageJson};
        use common::repo_path::RepoPath;
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let app = t.path().join("app");
        std::fs::create_dir_all(app.join("web")).unwrap();
        std::fs::create_dir_all(app.join("api")).unwrap();
        std::fs::write(app.join("web/.npmrc"), "node-linker=hoisted\n").unwrap();
        std::fs::write(outside.path().join(".npmrc"), "secret-setting=1\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join(".npmrc"), app.join("api/.npmrc")).unwrap();
        let project = |path: &str| Project {
            path: RepoPath::parse(path).unwrap(),
            dir: app.join(path),
            package_json: PackageJson::default(),
            lockfile: Lockfile {
                file_name: PACKAGE_LOCK,
                lockfile_version: 3,
                name: None,
                version: None,
                entries: Vec::new(),
                graph: None,
            },
        };
        assert_eq!(
            repository_settings(&project("web"), &app).unwrap(),
            "# kept from the repository's .npmrc\nnode-linker=hoisted\n"
        );
        assert_eq!(repository_settings(&project("api"), &app).unwrap(), "");
        assert_eq!(repository_settings(&project("."), &app).unwrap(), "");
    }

    #[test]
    fn purls() {
        assert_eq!(dep_purl("@s/n", "1.0.0"), "pkg:npm/%40s/n@1.0.0");
        assert_eq!(
            dep_purl("a", "file:vendor/a.tgz"),
            "pkg:generic/a?file=vendor%2Fa.tgz"
        );
        assert_eq!(dep_purl("a", "github:u/r#abc"), "pkg:github/u/r@abc");
        assert_eq!(
            dep_purl("a", "git+https://h/u/r.git#abc"),
            "pkg:generic/a?vcs_url=git%2Bhttps%3A%2F%2Fh%2Fu%2Fr.git%23abc"
        );
        assert_eq!(
            dep_purl("a", "https://h/a.tgz"),
            "pkg:generic/a?download_url=https%3A%2F%2Fh%2Fa.tgz"
        );
        assert_eq!(
            vcs_purl(
                "https://github.com/Org/Repo.git",
                "abc",
                "x",
                &RepoPath::root()
            ),
            "pkg:github/org/repo@abc"
        );
        assert_eq!(
            vcs_purl(
                "https://github.com/o/r",
                "abc",
                "x",
                &RepoPath::parse("sub/d").unwrap()
            ),
            "pkg:github/o/r@abc#sub/d"
        );
        assert!(
            vcs_purl("https://git.example/o/r", "abc", "x", &RepoPath::root())
                .starts_with("pkg:generic/x?vcs_url=https%3A")
        );
    }

    #[test]
    fn npmrc_scoped() {
        let s = npmrc("http://127.0.0.1:8080/repos/7/npm", "tok", None);
        assert!(s.starts_with("registry=http://127.0.0.1:8080/repos/7/npm/\n"));
        assert!(s.contains("\n//127.0.0.1:8080/repos/7/npm/:_authToken=tok\n"));
        assert!(
            s.contains("audit=false")
                && s.contains("fund=false")
                && s.contains("update-notifier=false")
        );
        assert!(!s.contains("cafile"));
        let s = npmrc("https://larder.example/repos/7/t/x/npm/", "tok", None);
        assert!(s.contains("//larder.example/repos/7/t/x/npm/:_authToken=tok"));
        let s = npmrc(
            "https://larder.example/repos/7/npm/",
            "tok",
            Some("../registry-ca.pem"),
        );
        assert!(s.ends_with("\ncafile=../registry-ca.pem\n"), "{s}");
    }

    /// The `.npmrc` of a package directory names the CA relative to it, when there is one.
    #[test]
    fn npmrc_names_the_repositories_ca() {
        let bundle = tempfile::tempdir().unwrap();
        let store = common::Store::new(bundle.path().join("store"));
        let lock = r#"{"name":"web","version":"1.0.0","lockfileVersion":3,"requires":true,
            "packages":{"":{"name":"web","version":"1.0.0"}}}"#;
        for dir in ["app", "app/web"] {
            let d = bundle.path().join(dir);
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join("package.json"),
                r#"{"name":"web","version":"1.0.0"}"#,
            )
            .unwrap();
            fs::write(d.join("package-lock.json"), lock).unwrap();
        }
        let npmrc_of = |path: &str, ca: Option<ReposCa>| {
            let path = RepoPath::parse(path).unwrap();
            let ctx = LayoutContext {
                repo_url: "https://larder.example/repos/7/npm/".into(),
                token: "tok".into(),
                source_repo: "https://git.example/o/web".into(),
                source_ref: "abc".into(),
                bundle: crate::bundle::BundleTree::new(bundle.path()),
                store: store.clone(),
                repos_ca: ca,
                pm: "npm",
                bundle_rel: at_store_key,
                upstream_registry: "https://registry.npmjs.org".into(),
                hand_back: crate::pkg_managers::HandBack::Service,
            };
            let app = bundle.path().join("app");
            let mut project =
                crate::pkg_managers::npm::lockfile::read_project(&app, &path).unwrap();
            let plan = crate::pkg_managers::npm::plan::plan(
                &app,
                &mut project,
                "https://registry.npmjs.org",
            )
            .unwrap();
            let out = layout(&project, &plan, &Tarballs::new(), &ctx).unwrap();
            let npmrc: Vec<_> = out
                .config_files
                .iter()
                .filter(|f| f.path.ends_with("/.npmrc"))
                .collect();
            assert_eq!(npmrc.len(), 1);
            assert!(
                !out.config_files.iter().any(|f| f.path.ends_with(".pem")),
                "the pipeline hands the CA back, once"
            );
            (
                npmrc[0].path.clone(),
                String::from_utf8(npmrc[0].inline_content().unwrap().to_vec()).unwrap(),
            )
        };
        let ca = crate::pkg_managers::repos_ca::tests::test_ca();
        let (path, text) = npmrc_of("web", Some(ca.clone()));
        assert_eq!(path, "app/web/.npmrc");
        assert!(text.ends_with("\ncafile=../registry-ca.pem\n"), "{text}");
        let (path, text) = npmrc_of(".", Some(ca));
        assert_eq!(path, "app/.npmrc");
        assert!(text.ends_with("\ncafile=registry-ca.pem\n"), "{text}");
        let (_, text) = npmrc_of("web", None);
        assert!(!text.contains("cafile"), "{text}");
    }

    #[test]
    fn env_defaults() {
        let e = default_env_vars();
        assert_eq!(e.len(), 4);
        assert_eq!(e["CYPRESS_INSTALL_BINARY"].value, "0");
        assert!(e.values().all(|v| v.kind == "literal"));
    }

    #[test]
    fn a_manifest_read_once_is_recorded_on_the_tarball_with_what_artifacts_read() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = br#"{"name":"p","version":"1.0.0","readme":"long","dependencies":{"a":"^1"},
            "scripts":{"test":"x","postinstall":"y"},"license":"MIT","_hasShrinkwrap":true}"#;
        let t = crate::pkg_managers::npm::pack::write_tgz(&[
            crate::pkg_managers::npm::pack::TgzEntry {
                path: "package/package.json".into(),
                data: manifest,
                executable: false,
            },
        ])
        .unwrap();
        let file = dir.path().join("p-1.0.0.tgz");
        std::fs::write(&file, &t).unwrap();
        let read = read_manifest_from_tgz(&file, "p").unwrap();
        let first = manifest_of(&file, "p").unwrap();
        assert_eq!(packument_manifest(&first), packument_manifest(&read));
        assert_eq!(first["name"], "p");
        assert_eq!(first["version"], "1.0.0");
        assert!(first.get("readme").is_none(), "{first}");
        assert_eq!(first["scripts"], serde_json::json!({"postinstall": "y"}));
        if !common::store::file_record::kept_in(dir.path()) {
            return;
        }
        assert!(common::store::file_record::recorded(&file, "npm-manifest").is_some());
        // from the record: the tarball is not read (here: it could not be)
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        std::io::Write::write_all(&mut &f, &vec![0u8; t.len()]).unwrap();
        f.set_modified(mtime).unwrap();
        assert_eq!(manifest_of(&file, "p").unwrap(), first);
        // written since: read again (and refused, these bytes are no tarball)
        f.set_modified(mtime + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(manifest_of(&file, "p").is_err());
    }

    #[test]
    fn manifest_reading_is_bounded() {
        assert!(read_manifest_from_tgz_bytes(b"not gzip", "x").is_err());
        let empty = crate::pkg_managers::npm::pack::write_tgz(&[]).unwrap();
        assert!(matches!(
            read_manifest_from_tgz_bytes(&empty, "x").unwrap_err(),
            LayoutError::NoManifest { .. }
        ));
        let t = crate::pkg_managers::npm::pack::write_tgz(&[
            crate::pkg_managers::npm::pack::TgzEntry {
                path: "other/package.json".into(),
                data: br#"{"name":"o"}"#,
                executable: false,
            },
            crate::pkg_managers::npm::pack::TgzEntry {
                path: "package/package.json".into(),
                data: br#"{"name":"p","scripts":{"install":"x"}}"#,
                executable: false,
            },
            crate::pkg_managers::npm::pack::TgzEntry {
                path: "package/x/package.json".into(),
                data: b"{",
                executable: false,
            },
        ])
        .unwrap();
        let m = read_manifest_from_tgz_bytes(&t, "x").unwrap();
        assert_eq!(m["name"], "p");
        let manifest = packument_manifest(&m);
        assert!(manifest.has_install_script);
        assert!(!manifest.has_shrinkwrap);
        let t = crate::pkg_managers::npm::pack::write_tgz(&[
            crate::pkg_managers::npm::pack::TgzEntry {
                path: "package/package.json".into(),
                data: b"[1]",
                executable: false,
            },
        ])
        .unwrap();
        assert!(read_manifest_from_tgz_bytes(&t, "x").is_err());
    }
}

#[cfg(test)]
mod rewrite_tests {
    use super::*;

    fn rw() -> Rewrites<'static> {
        let mut by_location = BTreeMap::new();
        by_location.insert(
            "node_modules/g",
            Rewrite {
                name: "g",
                filename: "g-external-gitcommit-abc.tgz",
                store_key: "deps/npm/h/u/g/g-external-gitcommit-abc.tgz",
                integrity: "sha512-new",
                non_registry: true,
                version: "1.0.0",
            },
        );
        Rewrites {
            by_location,
            repo_url: "http://r/npm/",
            up: "../".into(),
            output_dir: false,
        }
    }

    #[test]
    fn keeps_order_and_unknown_fields() {
        let text = r#"{"name":"x","lockfileVersion":3,"zzz":{"keep":[1,2]},"requires":true,"packages":{
          "":{"name":"x","dependencies":{"g":"github:u/g#abc","r":"^1"}},
          "node_modules/g":{"version":"1.0.0","resolved":"git+ssh://git@github.com/u/g.git#abc","license":"MIT"},
          "node_modules/r":{"version":"1.0.0","resolved":"https://registry.npmjs.org/r/-/r-1.0.0.tgz"}}}"#;
        let out = rewrite_lock(text, &rw(), Variant::Registry, "package-lock.json").unwrap();
        let s = String::from_utf8(out).unwrap();
        let pos = |k: &str| s.find(k).unwrap();
        assert!(
            pos("\"name\"") < pos("\"lockfileVersion\"") && pos("\"zzz\"") < pos("\"requires\"")
        );
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["zzz"]["keep"][1], 2);
        assert_eq!(
            v["packages"]["node_modules/g"]["resolved"],
            "http://r/npm/g/-/g-external-gitcommit-abc.tgz"
        );
        assert_eq!(v["packages"]["node_modules/g"]["integrity"], "sha512-new");
        assert_eq!(v["packages"]["node_modules/g"]["license"], "MIT");
        assert_eq!(
            v["packages"][""]["dependencies"]["g"],
            "http://r/npm/g/-/g-external-gitcommit-abc.tgz"
        );
        assert_eq!(v["packages"][""]["dependencies"]["r"], "^1");
        let off = rewrite_lock(text, &rw(), Variant::Offline, "package-lock.json").unwrap();
        let v: Value = serde_json::from_slice(&off).unwrap();
        assert_eq!(
            v["packages"][""]["dependencies"]["g"],
            "file:../deps/npm/h/u/g/g-external-gitcommit-abc.tgz"
        );
    }

    #[test]
    fn v1_and_malformed() {
        let text = r#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"g":{"version":"git+ssh://x#abc","from":"github:u/g"}}},
          "g":{"version":"git+ssh://x#abc","from":"github:u/g"}}}"#;
        let out = rewrite_lock(text, &rw(), Variant::Registry, "npm-shrinkwrap.json").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["dependencies"]["g"]["version"], "1.0.0");
        assert!(v["dependencies"]["g"].get("from").is_none());
        // nested entry at another location is untouched
        assert_eq!(
            v["dependencies"]["a"]["dependencies"]["g"]["version"],
            "git+ssh://x#abc"
        );
        for bad in ["", "[]", "{\"packages\":[1]}", "{\"a\":"] {
            assert!(
                rewrite_lock(bad, &rw(), Variant::Registry, "package-lock.json").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tarballs_record_the_upstream_url_they_came_from() {
        use crate::pkg_managers::npm::lockfile::LockEntry;
        let dep = |name: &str, kind: Kind| PlannedDep {
            entry: LockEntry {
                name: name.into(),
                version: Some("1.0.0".into()),
                ..LockEntry::default()
            },
            kind,
            store_key: Some("deps/npm/x.tgz".into()),
        };
        let upstream = "https://npm:s3cret@registry.example/npm/";
        assert_eq!(
            upstream_url(&dep("@s/a", Kind::Registry), upstream).as_deref(),
            Some("https://registry.example/npm/@s/a/-/a-1.0.0.tgz")
        );
        let tarball = Kind::HttpsTarball {
            url: "https://cdn.example/t.tgz".into(),
            integrity: String::new(),
        };
        assert_eq!(
            upstream_url(&dep("t", tarball), upstream).as_deref(),
            Some("https://cdn.example/t.tgz")
        );
        let local = Kind::FileTarball {
            path: RepoPath::root(),
            original: "file:t.tgz".into(),
            integrity: None,
        };
        assert_eq!(upstream_url(&dep("f", local), upstream), None);
    }
}
