//! Reading a package directory: `package.json` and `npm-shrinkwrap.json` (wins) or
//! `package-lock.json`, lockfile versions 1, 2 and 3, into a flat list of [`LockEntry`].
//!
//! Parsing uses typed serde structs from a `BufReader` (unknown fields are skipped, never held),
//! so memory is proportional to the number of entries, not to the JSON tree.

use crate::pkg_managers::unique_map::UniqueMap;
use common::repo_path::{RepoPath, RepoPathError};
use common::{Classify, ErrorKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

pub const SHRINKWRAP: &str = "npm-shrinkwrap.json";
pub const PACKAGE_LOCK: &str = "package-lock.json";
pub use crate::pkg_managers::limits::{MAX_LOCKFILE_BYTES, MAX_LOCKFILE_ENTRIES};
pub const MAX_PACKAGE_JSON_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("The {0} file must be present for the {1} package manager")]
    MissingLockfile(String, &'static str),
    #[error("The {0} file must be present for the {1} package manager")]
    MissingPackageJson(String, &'static str),
    #[error("The {0} directory cannot be present in the source repository")]
    NodeModulesPresent(String),
    #[error(
        "The package path {0:?} is invalid: it must be relative and stay inside the repository"
    )]
    InvalidPath(String),
    #[error("The destination of '{0}' is outside of cloned repository")]
    OutsideRepository(String),
    #[error("The file {file} is not valid JSON for npm: {reason}")]
    InvalidJson { file: String, reason: String },
    #[error("The file {file} has lockfileVersion {version}; only lockfile versions 1, 2 and 3 are supported")]
    UnsupportedVersion { file: String, version: String },
    #[error("The file {file} is larger than the {limit} bytes allowed")]
    TooLarge { file: String, limit: u64 },
    #[error(transparent)]
    Limit(#[from] crate::pkg_managers::limits::LimitError),
    #[error("Could not read {file}: {reason}")]
    Io { file: String, reason: String },
}

impl Classify for LockfileError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockfileError::MissingLockfile(..)
            | LockfileError::MissingPackageJson(..)
            | LockfileError::NodeModulesPresent(_) => ErrorKind::InvalidRepoStructure,
            LockfileError::InvalidPath(_) => ErrorKind::InvalidRequestData,
            LockfileError::OutsideRepository(_) => ErrorKind::ValidationError,
            LockfileError::InvalidJson { .. }
            | LockfileError::UnsupportedVersion { .. }
            | LockfileError::TooLarge { .. } => ErrorKind::InvalidFileFormat,
            LockfileError::Limit(e) => e.kind(),
            LockfileError::Io { .. } => ErrorKind::FileAccessError,
        }
    }
}

/// One installed package of the lockfile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockEntry {
    /// install location: `node_modules/a/node_modules/@s/b`; for v1 synthesized the same way;
    /// for workspace/link targets the folder (`packages/x`).
    pub location: String,
    /// the real package name (alias resolved)
    pub name: String,
    /// the name it is installed under when it is an alias (`"foo": "npm:bar@1"` -> Some("foo"))
    pub alias: Option<String>,
    pub version: Option<String>,
    pub resolved: Option<String>,
    pub integrity: Option<String>,
    pub dev: bool,
    pub optional: bool,
    pub dev_optional: bool,
    pub peer: bool,
    pub in_bundle: bool,
    pub link: bool,
    /// a `packages` key that is not under node_modules (workspace or `file:` directory)
    pub local_dir: bool,
    pub has_install_script: bool,
    /// The names (as installed) of the entry's `dependencies`, `optionalDependencies` and
    /// `peerDependencies` (npm lockfile v2/v3): its edges, resolved as node does.
    pub requires: Vec<String>,
}

impl LockEntry {
    /// `dev` as reported: only packages strictly in the dev tree. `devOptional` packages are
    /// also optional dependencies of the production tree (npm installs them with
    /// `--omit=dev`), so they are not dev.
    pub fn is_dev(&self) -> bool {
        self.dev
    }
    /// Optional in the tree it is in: `optional`, or `devOptional` (an optional dependency of
    /// the production tree that the dev tree needs).
    pub fn is_optional(&self) -> bool {
        self.optional || self.dev_optional
    }
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{}", self.name, v),
            None => self.name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockfile {
    /// "npm-shrinkwrap.json" or "package-lock.json"
    pub file_name: &'static str,
    pub lockfile_version: u32,
    pub name: Option<String>,
    pub version: Option<String>,
    pub entries: Vec<LockEntry>,
    /// The graph as the lockfile's own rules resolve it (yarn's descriptors, pnpm's
    /// snapshots); None for npm's, whose entries' `requires` resolve through `node_modules`.
    pub graph: Option<LocationGraph>,
}

/// A dependency graph between lockfile entries, named by their `location`: the package's
/// direct dependencies and each entry's. The report turns locations into purls; a location it
/// does not report (a workspace, a `file:` directory) drops its edges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationGraph {
    /// the locations of the package's own direct dependencies (dev ones included)
    pub roots: BTreeSet<String>,
    /// location → the locations of its direct dependencies
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

/// The `package.json` fields we use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PackageJson {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub scripts: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub files: Option<Vec<String>>,
    /// as written (yarn reads which entries they reach)
    #[serde(default)]
    pub dependencies: Option<serde_json::Value>,
    #[serde(default, rename = "optionalDependencies")]
    pub optional_dependencies: Option<serde_json::Value>,
    #[serde(default, rename = "devDependencies")]
    pub dev_dependencies: Option<serde_json::Value>,
    /// the package's edges to them where the lockfile has them (yarn v1)
    #[serde(default, rename = "peerDependencies")]
    pub peer_dependencies: Option<serde_json::Value>,
}

/// One requested npm package directory, read and validated.
#[derive(Clone, Debug)]
pub struct Project {
    /// the requested package directory
    pub path: RepoPath,
    /// where it is on disk (inside the repository, symlinks included)
    pub dir: PathBuf,
    pub package_json: PackageJson,
    pub lockfile: Lockfile,
}

impl Project {
    pub fn name(&self) -> String {
        self.package_json
            .name
            .clone()
            .or_else(|| self.lockfile.name.clone())
            .unwrap_or_else(|| "unnamed".into())
    }
    pub fn version(&self) -> String {
        self.package_json
            .version
            .clone()
            .or_else(|| self.lockfile.version.clone())
            .unwrap_or_default()
    }
}

/// `path` must resolve inside the repository (symlinks followed) if it exists; `display`
/// names it in the error.
fn inside(app_dir: &Path, path: &RepoPath, display: &str) -> Result<PathBuf, LockfileError> {
    path.resolve_new(app_dir).map_err(|e| match e {
        RepoPathError::Outside(_) | RepoPathError::Missing(_) => {
            LockfileError::OutsideRepository(display.into())
        }
        RepoPathError::Absolute(_) | RepoPathError::Invalid(_) => {
            LockfileError::InvalidPath(display.into())
        }
    })
}

pub fn rel_display(path: &RepoPath, file: &str) -> String {
    if path.is_root() {
        file.to_string()
    } else {
        format!("{path}/{file}")
    }
}

/// Read and validate one requested package directory (Cachito's checks, in Cachito's order:
/// lockfile, package.json, node_modules).
pub fn read_project(app_dir: &Path, path: &RepoPath) -> Result<Project, LockfileError> {
    let checked = check_project_dir(app_dir, path, "npm", &[SHRINKWRAP, PACKAGE_LOCK])?;
    let lockfile = read_lockfile(
        &checked.dir.join(checked.lock_name),
        checked.lock_name,
        &rel_display(path, checked.lock_name),
    )?;
    Ok(Project {
        path: path.clone(),
        dir: checked.dir,
        package_json: checked.package_json,
        lockfile,
    })
}

/// A package directory whose lockfile is still to be read.
pub struct CheckedDir {
    pub dir: PathBuf,
    /// the first of the candidate lockfile names present
    pub lock_name: &'static str,
    pub package_json: PackageJson,
}

/// The checks of a JavaScript package directory (npm's and yarn's): one of `lock_names` (the
/// first present is the lockfile), package.json, no node_modules, neither file a symlink out of
/// the repository; then its package.json.
pub fn check_project_dir(
    app_dir: &Path,
    path: &RepoPath,
    pm: &'static str,
    lock_names: &[&'static str],
) -> Result<CheckedDir, LockfileError> {
    let dir = inside(app_dir, path, path.as_str())?;
    let Some(lock_name) = lock_names.iter().copied().find(|n| dir.join(n).is_file()) else {
        let names: Vec<String> = lock_names.iter().map(|n| rel_display(path, n)).collect();
        return Err(LockfileError::MissingLockfile(names.join(" or "), pm));
    };
    let pj_path = dir.join("package.json");
    if !pj_path.is_file() {
        return Err(LockfileError::MissingPackageJson(
            rel_display(path, "package.json"),
            pm,
        ));
    }
    if dir.join("node_modules").symlink_metadata().is_ok() {
        return Err(LockfileError::NodeModulesPresent(rel_display(
            path,
            "node_modules",
        )));
    }
    // the lockfile and package.json themselves must not be symlinks out of the repository
    for file in [lock_name, "package.json"] {
        let display = rel_display(path, file);
        let file = path
            .join(file)
            .map_err(|_| LockfileError::InvalidPath(display.clone()))?;
        inside(app_dir, &file, &display)?;
    }
    let package_json = read_package_json(&pj_path, &rel_display(path, "package.json"))?;
    Ok(CheckedDir {
        dir,
        lock_name,
        package_json,
    })
}

pub fn open_limited(p: &Path, display: &str, limit: u64) -> Result<BufReader<File>, LockfileError> {
    let f = File::open(p).map_err(|e| LockfileError::Io {
        file: display.into(),
        reason: e.to_string(),
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > limit {
        return Err(LockfileError::TooLarge {
            file: display.into(),
            limit,
        });
    }
    Ok(BufReader::with_capacity(64 * 1024, f))
}

pub fn read_package_json(p: &Path, display: &str) -> Result<PackageJson, LockfileError> {
    let r = open_limited(p, display, MAX_PACKAGE_JSON_BYTES)?;
    serde_json::from_reader(r).map_err(|e| LockfileError::InvalidJson {
        file: display.into(),
        reason: e.to_string(),
    })
}

pub fn read_lockfile(
    p: &Path,
    file_name: &'static str,
    display: &str,
) -> Result<Lockfile, LockfileError> {
    let r = open_limited(p, display, MAX_LOCKFILE_BYTES)?;
    let raw: RawLock = serde_json::from_reader(r).map_err(|e| LockfileError::InvalidJson {
        file: display.into(),
        reason: e.to_string(),
    })?;
    from_raw(raw, file_name, display)
}

/// Parse lockfile bytes (tests, fixtures).
pub fn parse_lockfile(bytes: &[u8], file_name: &'static str) -> Result<Lockfile, LockfileError> {
    let raw: RawLock = serde_json::from_slice(bytes).map_err(|e| LockfileError::InvalidJson {
        file: file_name.into(),
        reason: e.to_string(),
    })?;
    from_raw(raw, file_name, file_name)
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "lockfileVersion")]
    lockfile_version: Option<serde_json::Number>,
    #[serde(default)]
    packages: Option<UniqueMap<RawPkg>>,
    #[serde(default)]
    dependencies: Option<UniqueMap<RawV1>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPkg {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    resolved: Option<String>,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    dev_optional: bool,
    #[serde(default)]
    peer: bool,
    #[serde(default)]
    in_bundle: bool,
    #[serde(default)]
    has_install_script: bool,
    #[serde(default)]
    dependencies: Option<BTreeMap<String, serde::de::IgnoredAny>>,
    #[serde(default)]
    optional_dependencies: Option<BTreeMap<String, serde::de::IgnoredAny>>,
    #[serde(default)]
    peer_dependencies: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

#[derive(Deserialize, Default)]
struct RawV1 {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    resolved: Option<String>,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    bundled: bool,
    #[serde(default)]
    dependencies: Option<UniqueMap<RawV1>>,
}

fn from_raw(
    raw: RawLock,
    file_name: &'static str,
    display: &str,
) -> Result<Lockfile, LockfileError> {
    let version = match &raw.lockfile_version {
        Some(n) => match n.as_u64() {
            Some(v @ 1..=3) => v as u32,
            _ => {
                return Err(LockfileError::UnsupportedVersion {
                    file: display.into(),
                    version: n.to_string(),
                })
            }
        },
        None => {
            return Err(LockfileError::UnsupportedVersion {
                file: display.into(),
                version: "(absent)".into(),
            })
        }
    };
    let mut entries = Vec::new();
    match (version, raw.packages) {
        (2 | 3, Some(pkgs)) => {
            for (key, p) in pkgs {
                if key.is_empty() {
                    continue;
                }
                let after_nm = key
                    .rfind("node_modules/")
                    .map(|i| &key[i + "node_modules/".len()..]);
                let local_dir = after_nm.is_none();
                let install_name = after_nm.unwrap_or(&key).to_string();
                let (name, alias) = match p.name {
                    Some(n) if n != install_name && !local_dir => (n, Some(install_name)),
                    Some(n) => (n, None),
                    None => (install_name, None),
                };
                entries.push(LockEntry {
                    location: key,
                    name,
                    alias,
                    version: p.version,
                    resolved: p.resolved,
                    integrity: p.integrity,
                    dev: p.dev,
                    optional: p.optional,
                    dev_optional: p.dev_optional,
                    peer: p.peer,
                    in_bundle: p.in_bundle,
                    link: p.link,
                    local_dir,
                    has_install_script: p.has_install_script,
                    requires: [p.dependencies, p.optional_dependencies, p.peer_dependencies]
                        .into_iter()
                        .flatten()
                        .flat_map(BTreeMap::into_keys)
                        .collect(),
                });
            }
        }
        (3, None) => {}
        _ => {
            if let Some(deps) = raw.dependencies {
                flatten_v1(deps, "", &mut entries, 0).map_err(|reason| {
                    LockfileError::InvalidJson {
                        file: display.into(),
                        reason,
                    }
                })?;
            }
        }
    }
    crate::pkg_managers::limits::check_entries(display, entries.len())?;
    Ok(Lockfile {
        file_name,
        lockfile_version: version,
        name: raw.name,
        version: raw.version,
        entries,
        graph: None,
    })
}

fn is_tarball_path(s: &str) -> bool {
    let s = s.split(['?', '#']).next().unwrap_or(s);
    s.ends_with(".tgz") || s.ends_with(".tar.gz") || s.ends_with(".tar")
}

fn flatten_v1(
    deps: UniqueMap<RawV1>,
    prefix: &str,
    out: &mut Vec<LockEntry>,
    depth: usize,
) -> Result<(), String> {
    if depth > 200 {
        return Err("the dependencies are nested too deeply".into());
    }
    for (key, d) in deps {
        let location = format!("{prefix}node_modules/{key}");
        let mut e = LockEntry {
            location: location.clone(),
            name: key.clone(),
            integrity: d.integrity,
            dev: d.dev,
            optional: d.optional,
            in_bundle: d.bundled,
            ..Default::default()
        };
        let v = d.version.unwrap_or_default();
        if let Some(rest) = v.strip_prefix("npm:") {
            // alias: npm:real@1.2.3 (real may be scoped)
            let at = rest.rfind('@').filter(|&i| i > 0);
            match at {
                Some(i) => {
                    e.name = rest[..i].to_string();
                    e.version = Some(rest[i + 1..].to_string());
                }
                None => e.name = rest.to_string(),
            }
            e.alias = Some(key.clone());
            e.resolved = d.resolved;
        } else if v.starts_with("file:") && !is_tarball_path(&v) {
            e.link = true;
            e.resolved = Some(v);
        } else if v.contains(':') || (v.contains('/') && !v.starts_with('@')) {
            // git URL, github shorthand, tarball URL or file tarball carried in `version`
            e.resolved = Some(d.resolved.unwrap_or(v));
        } else {
            e.version = if v.is_empty() { None } else { Some(v) };
            e.resolved = d.resolved;
        }
        out.push(e);
        if let Some(nested) = d.dependencies {
            flatten_v1(nested, &format!("{location}/"), out, depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const V3: &str = r#"{"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,
      "packages":{
        "":{"name":"app","version":"1.0.0","workspaces":["packages/*"],"dependencies":{"a":"^1"}},
        "node_modules/a":{"version":"1.0.0","resolved":"https://registry.npmjs.org/a/-/a-1.0.0.tgz","integrity":"sha512-x","unknown":{"deep":[1,2,3]}},
        "node_modules/a/node_modules/@s/b":{"version":"2.0.0","resolved":"https://r/@s/b/-/b-2.0.0.tgz","dev":true},
        "node_modules/foo":{"name":"bar","version":"3.0.0","devOptional":true,"optional":true},
        "node_modules/w":{"resolved":"packages/w","link":true},
        "packages/w":{"name":"w","version":"0.1.0"},
        "node_modules/c":{"version":"1.0.0","inBundle":true,"peer":true}
      }}"#;

    #[test]
    fn v3_entries() {
        let l = parse_lockfile(V3.as_bytes(), PACKAGE_LOCK).unwrap();
        assert_eq!(l.lockfile_version, 3);
        assert_eq!(l.entries.len(), 6);
        let by = |loc: &str| {
            l.entries
                .iter()
                .find(|e| e.location == loc)
                .unwrap()
                .clone()
        };
        assert_eq!(by("node_modules/a/node_modules/@s/b").name, "@s/b");
        assert!(by("node_modules/a/node_modules/@s/b").dev);
        let foo = by("node_modules/foo");
        assert_eq!(
            (foo.name.as_str(), foo.alias.as_deref()),
            ("bar", Some("foo"))
        );
        assert!(foo.dev_optional && !foo.is_dev());
        assert!(by("node_modules/w").link);
        assert!(by("packages/w").local_dir);
        assert_eq!(by("packages/w").alias, None);
        let c = by("node_modules/c");
        assert!(c.in_bundle && c.peer);
    }

    #[test]
    fn v2_ignores_dependencies() {
        let s = r#"{"lockfileVersion":2,"packages":{"node_modules/a":{"version":"1.0.0"}},
          "dependencies":{"zzz":{"version":"9.9.9"}}}"#;
        let l = parse_lockfile(s.as_bytes(), PACKAGE_LOCK).unwrap();
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[0].name, "a");
    }

    #[test]
    fn v1_nested_alias_git_file() {
        let s = r#"{"name":"app","version":"1.0.0","lockfileVersion":1,"dependencies":{
          "a":{"version":"1.0.0","resolved":"https://registry.npmjs.org/a/-/a-1.0.0.tgz","integrity":"sha1-x",
               "dependencies":{"b":{"version":"2.0.0","dev":true,"bundled":true}}},
          "foo":{"version":"npm:@s/bar@3.0.0","resolved":"https://registry.npmjs.org/@s/bar/-/bar-3.0.0.tgz"},
          "g":{"version":"git+https://github.com/u/r.git#0123456789abcdef0123456789abcdef01234567","from":"git+https://github.com/u/r.git"},
          "l":{"version":"file:packages/l"},
          "t":{"version":"file:vendor/t-1.0.0.tgz","integrity":"sha512-x"}
        }}"#;
        let l = parse_lockfile(s.as_bytes(), SHRINKWRAP).unwrap();
        let by = |loc: &str| {
            l.entries
                .iter()
                .find(|e| e.location == loc)
                .unwrap()
                .clone()
        };
        let b = by("node_modules/a/node_modules/b");
        assert!(b.dev && b.in_bundle);
        let foo = by("node_modules/foo");
        assert_eq!(foo.name, "@s/bar");
        assert_eq!(foo.version.as_deref(), Some("3.0.0"));
        assert_eq!(foo.alias.as_deref(), Some("foo"));
        let g = by("node_modules/g");
        assert!(g.resolved.unwrap().starts_with("git+https://"));
        assert_eq!(g.version, None);
        assert!(by("node_modules/l").link);
        let t = by("node_modules/t");
        assert!(!t.link);
        assert_eq!(t.resolved.as_deref(), Some("file:vendor/t-1.0.0.tgz"));
    }

    #[test]
    fn bad_versions_and_json() {
        for s in [
            r#"{"lockfileVersion":4}"#,
            r#"{"lockfileVersion":"x"}"#,
            r#"{}"#,
            r#"{"lockfileVersion":0}"#,
        ] {
            let e = parse_lockfile(s.as_bytes(), PACKAGE_LOCK).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidFileFormat, "{s}: {e}");
        }
        for s in [
            "",
            "[",
            "{\"lockfileVersion\":3,\"packages\":{\"a\":{\"version\":1}}}",
            "nul\0",
        ] {
            let e = parse_lockfile(s.as_bytes(), PACKAGE_LOCK).unwrap_err();
            assert!(e.to_string().contains(PACKAGE_LOCK));
        }
        // deep nesting does not overflow the stack
        let mut s = String::from(r#"{"lockfileVersion":1,"dependencies":"#);
        for _ in 0..5000 {
            s.push_str(r#"{"a":{"dependencies":"#);
        }
        assert!(parse_lockfile(s.as_bytes(), PACKAGE_LOCK).is_err());
    }

    #[test]
    fn project_checks_in_cachito_order() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let read_project = |p: &str| read_project(root, &RepoPath::parse(p).unwrap());
        fs::create_dir_all(root.join("client")).unwrap();
        let e = read_project(".").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The npm-shrinkwrap.json or package-lock.json file must be present for the npm package manager"
        );
        let f = common::Failure::from(e);
        assert_eq!(
            (f.origin(), f.error_type()),
            (common::ErrorOrigin::Client, "InvalidRepoStructure")
        );
        let e = read_project("client").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The client/npm-shrinkwrap.json or client/package-lock.json file must be present for the npm package manager"
        );
        fs::write(root.join("client/package-lock.json"), V3).unwrap();
        let e = read_project("client/").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The client/package.json file must be present for the npm package manager"
        );
        fs::write(
            root.join("client/package.json"),
            r#"{"name":"c","version":"2.0.0"}"#,
        )
        .unwrap();
        fs::create_dir(root.join("client/node_modules")).unwrap();
        let e = read_project("client").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The client/node_modules directory cannot be present in the source repository"
        );
        fs::remove_dir(root.join("client/node_modules")).unwrap();
        let p = read_project("./client").unwrap();
        assert_eq!(
            (p.name(), p.version(), p.path.as_str()),
            ("c".into(), "2.0.0".into(), "client")
        );
        assert_eq!(p.lockfile.file_name, PACKAGE_LOCK);
        // shrinkwrap wins
        fs::write(
            root.join("client/npm-shrinkwrap.json"),
            r#"{"lockfileVersion":3,"packages":{}}"#,
        )
        .unwrap();
        let p = read_project("client").unwrap();
        assert_eq!(p.lockfile.file_name, SHRINKWRAP);
        assert!(p.lockfile.entries.is_empty());
    }

    #[test]
    fn paths_must_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = t.path();
        for bad in ["../x", "/etc", "a/../../b"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        let e = read_project(root, &RepoPath::parse("link").unwrap()).unwrap_err();
        assert_eq!(common::Failure::from(e).error_type(), "ValidationError");
        let e = read_project(root, &RepoPath::parse("link/x").unwrap()).unwrap_err();
        assert_eq!(common::Failure::from(e).error_type(), "ValidationError");
        // a directory that does not exist is missing its lockfile, not outside
        let e = read_project(root, &RepoPath::parse("a/b").unwrap()).unwrap_err();
        assert!(matches!(e, LockfileError::MissingLockfile(..)), "{e}");
    }

    #[test]
    fn big_lockfile_parses() {
        let mut s = String::from(r#"{"lockfileVersion":3,"packages":{"":{}"#);
        for i in 0..5000 {
            s.push_str(&format!(
                r#","node_modules/p{i}":{{"version":"1.0.{i}","resolved":"https://registry.npmjs.org/p{i}/-/p{i}-1.0.{i}.tgz","integrity":"sha512-AA=="}}"#
            ));
        }
        s.push_str("}}");
        let l = parse_lockfile(s.as_bytes(), PACKAGE_LOCK).unwrap();
        assert_eq!(l.entries.len(), 5000);
    }

    #[test]
    fn too_many_entries_fail_clearly() {
        let mut s = String::from(r#"{"lockfileVersion":3,"packages":{"":{}"#);
        for i in 0..=MAX_LOCKFILE_ENTRIES {
            s.push_str(&format!(r#","node_modules/p{i}":{{}}"#));
        }
        s.push_str("}}");
        let f = common::Failure::from(parse_lockfile(s.as_bytes(), PACKAGE_LOCK).unwrap_err());
        assert_eq!(f.error_type(), "InvalidFileFormat");
        assert!(
            f.message.starts_with(&format!(
                "The file package-lock.json has {} entries, more than the",
                MAX_LOCKFILE_ENTRIES + 1
            )),
            "{}",
            f.message
        );
    }
}
