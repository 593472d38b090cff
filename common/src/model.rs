//! The wire model: what a request asks for and what its package managers report.

use crate::pm::PmName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    InProgress,
    Complete,
    Failed,
    Stale,
}

impl RequestState {
    pub const ALL: [RequestState; 4] =
        [Self::Complete, Self::Failed, Self::InProgress, Self::Stale];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Stale => "stale",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Self::InProgress)
    }

    /// Cachito's state machine: `stale` is terminal, `complete` and `failed` only go stale.
    pub fn can_become(self, next: RequestState) -> bool {
        use RequestState::*;
        match next {
            InProgress | Complete | Failed => self == InProgress,
            Stale => self != Stale,
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or(())
    }
}

/// Flags a request may carry.
pub const FLAGS: &[&str] = &[
    "cgo-disable",
    "force-gomod-tidy",
    "gomod-vendor",
    "gomod-vendor-check",
    "include-git-dir",
    "pip-allow-binary",
    "remove-unsafe-symlinks",
    "rubygems-platforms",
];

/// A dependency as Cachito reports it, plus the purl Larder computes for manifests.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dependency {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<bool>,
    /// Installed only as an optional dependency (the install goes on without it), where the
    /// lockfile says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    #[serde(default)]
    pub replaces: Option<Replaced>,
    pub purl: String,
    /// The purls of the dependencies this one depends on directly, as its lockfile records
    /// them (the SBOM's graph). Empty when the package manager does not report edges; never
    /// part of Cachito's request JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Replaced {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub version: Option<String>,
}

/// One package found in the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub version: String,
    /// Relative path inside the repository; `None` for the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub dependencies: Vec<Dependency>,
    pub purl: String,
    /// The purls of the dependencies the package itself depends on directly (the SBOM's graph
    /// roots). Empty when the package manager does not report edges: then every dependency is
    /// taken as the package's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// An environment variable handed back; kind `path` is relative to the bundle root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub value: String,
    pub kind: String,
}

impl EnvVar {
    pub fn literal(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            kind: "literal".into(),
        }
    }
    pub fn path(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            kind: "path".into(),
        }
    }
}

pub type EnvVars = BTreeMap<String, EnvVar>;

/// A configuration file handed back; `path` is relative to the bundle root (`app/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: String,
    pub content: ConfigContent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigContent {
    /// Sent in the worker's report body.
    Inline(Vec<u8>),
    /// Already in the store under [`crate::store::config_file_key`] of this sha256: a rewritten
    /// lockfile is as large as the lockfile, and a report body of it (in base64) was the
    /// largest allocation of a whole request.
    Stored(crate::digest::Digest),
}

impl ConfigFile {
    pub fn inline(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            content: ConfigContent::Inline(content.into()),
        }
    }

    /// The content when it is held in memory.
    pub fn inline_content(&self) -> Option<&[u8]> {
        match &self.content {
            ConfigContent::Inline(bytes) => Some(bytes),
            ConfigContent::Stored(_) => None,
        }
    }
}

/// Cachito's wire form of a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFileBase64 {
    pub content: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One `packages.<pm>` entry of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSpec {
    #[serde(default)]
    pub path: crate::repo_path::RepoPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_files: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_build_files: Option<Vec<String>>,
}

impl Default for PackageSpec {
    fn default() -> Self {
        Self {
            path: crate::repo_path::RepoPath::root(),
            requirements_files: None,
            requirements_build_files: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyReplacement {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
}

/// The message on the queue: everything else the worker asks the api for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub request_id: i64,
}

/// What a worker needs to process a request (worker-only `POST /api/v1/requests/{id}/claim`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub state: RequestState,
    pub pkg_managers: Vec<PmName>,
    #[serde(default)]
    pub packages: BTreeMap<PmName, Vec<PackageSpec>>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub dependency_replacements: Vec<DependencyReplacement>,
    /// Base URL of this request's repositories, token included: `<public>/repos/<id>/t/<token>/`.
    pub repository_url: String,
    /// The request's repository token, for clients that take it apart from the URL.
    pub repository_token: String,
    /// This worker's attempt at the request: sent back with every report (`X-Larder-Attempt`)
    /// and heartbeat, so a superseded attempt can change nothing.
    pub attempt: i32,
    /// When the request must be final (`LARDER_REQUEST_TIMEOUT` after its first claim).
    pub deadline: chrono::NaiveDateTime,
    /// How often the worker renews its lease (`POST …/heartbeat`).
    pub heartbeat_seconds: u64,
}

/// The header a worker's reports carry: the attempt its claim returned.
pub const ATTEMPT_HEADER: &str = "X-Larder-Attempt";

/// The largest chunk of a request's log a worker sends at once (`POST …/logs`): whole lines,
/// each at most 64 KiB.
pub const LOG_CHUNK_LIMIT: usize = 1 << 20;

/// The packages data of a finished request (Cachito's packages file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagesData {
    pub packages: Vec<Package>,
}

impl PackagesData {
    /// All packages' dependencies, deduplicated on (name, type, version, dev) and sorted by
    /// (type, dev, name, version) as Cachito does.
    pub fn merged_dependencies(&self) -> Vec<Dependency> {
        let mut deps: Vec<Dependency> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for dep in self.packages.iter().flat_map(|p| &p.dependencies) {
            if seen.insert((&dep.name, &dep.kind, &dep.version, dep.dev)) {
                deps.push(dep.clone());
            }
        }
        deps.sort_by(|a, b| {
            (&a.kind, a.dev.unwrap_or(false), &a.name, &a.version).cmp(&(
                &b.kind,
                b.dev.unwrap_or(false),
                &b.name,
                &b.version,
            ))
        });
        deps
    }
}

/// One file a request needs in the store: fetched from `url` unless `store_key` is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    pub url: String,
    pub store_key: String,
    pub expected: crate::digest::Expected,
    /// Names the file in messages: `lodash@4.17.21`.
    pub label: String,
}
