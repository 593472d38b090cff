//! `pnpm-lock.yaml` lockfileVersion 9.x, read natively into typed structs (never by running
//! pnpm): `importers` (the workspace's package directories and their direct dependencies),
//! `packages` (one per package: its resolution) and `snapshots` (the dependency graph, keyed
//! by dependency paths that may carry a peer suffix, `pkg@1.0.0(react@16.0.0)`).
//!
//! Unknown fields are skipped; a key twice in one map is an error (`UniqueMap`); serde_yaml
//! bounds nesting and alias expansion, so hostile input is an error, never a panic.

use crate::pkg_managers::unique_map::UniqueMap;
use common::{Classify, ErrorKind};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const PNPM_LOCK: &str = "pnpm-lock.yaml";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PnpmLockError {
    #[error("The file {file} is not a valid pnpm lockfile: {reason}")]
    Syntax { file: String, reason: String },
    #[error("The file {file} has lockfileVersion {version}; only pnpm lockfile version 9 (9.x, written by pnpm 9 and newer) is supported")]
    UnsupportedVersion { file: String, version: String },
    #[error("The package {key} in {file} has an unsupported resolution ({what})")]
    UnsupportedResolution {
        file: String,
        key: String,
        what: String,
    },
    #[error("The key {key:?} in {file} is not a pnpm dependency path (<name>@<version>)")]
    BadKey { file: String, key: String },
}

impl Classify for PnpmLockError {
    fn kind(&self) -> ErrorKind {
        match self {
            PnpmLockError::UnsupportedResolution { .. } => ErrorKind::UnsupportedFeature,
            _ => ErrorKind::InvalidFileFormat,
        }
    }
}

/// The whole lockfile, as far as Larder reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PnpmLock {
    #[serde(default)]
    pub importers: Option<UniqueMap<Importer>>,
    #[serde(default)]
    pub packages: Option<UniqueMap<PackageEntry>>,
    #[serde(default)]
    pub snapshots: Option<UniqueMap<Snapshot>>,
}

/// Only the version, read first: a lockfile of another version has another shape.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    lockfile_version: Option<serde_yaml::Value>,
}

/// One package directory of the workspace (`.` is the directory pnpm runs in).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Importer {
    #[serde(default)]
    pub dependencies: Option<UniqueMap<ImporterDep>>,
    #[serde(default)]
    pub optional_dependencies: Option<UniqueMap<ImporterDep>>,
    #[serde(default)]
    pub dev_dependencies: Option<UniqueMap<ImporterDep>>,
}

#[derive(Debug, Deserialize)]
pub struct ImporterDep {
    #[serde(default)]
    pub specifier: Option<String>,
    /// a version (`1.0.0`, `1.2.0(react@18.2.0)`), a dependency path (`ms@file:x.tgz`,
    /// an alias's `real@1.0.0`) or `link:<dir>`
    pub version: String,
}

/// One `packages` entry: where the package comes from.
#[derive(Debug, Deserialize)]
pub struct PackageEntry {
    pub resolution: RawResolution,
    /// the package's version for non-registry entries (registry ones have it in their key)
    #[serde(default)]
    pub version: Option<String>,
}

/// `resolution` as written; [`RawResolution::classify`] says which variant it is.
#[derive(Debug, Default, Deserialize)]
pub struct RawResolution {
    #[serde(default)]
    pub integrity: Option<String>,
    #[serde(default)]
    pub tarball: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub directory: Option<String>,
}

/// The resolution variants of pnpm's lockfile types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// `{integrity}`: the registry's tarball of the key's name and version
    Registry { integrity: Option<String> },
    /// `{integrity?, tarball}`: an http(s) URL or a `file:` tarball
    Tarball {
        integrity: Option<String>,
        tarball: String,
    },
    /// `{type: git, repo, commit}`
    Git { repo: String, commit: String },
    /// `{type: directory, directory}`
    Directory { directory: String },
}

impl RawResolution {
    pub fn classify(&self, file: &str, key: &str) -> Result<Resolution, PnpmLockError> {
        let unsupported = |what: String| PnpmLockError::UnsupportedResolution {
            file: file.into(),
            key: key.into(),
            what,
        };
        match self.kind.as_deref() {
            None => Ok(match &self.tarball {
                Some(t) => Resolution::Tarball {
                    integrity: self.integrity.clone(),
                    tarball: t.clone(),
                },
                None => Resolution::Registry {
                    integrity: self.integrity.clone(),
                },
            }),
            Some("git") => {
                if self.path.is_some() {
                    return Err(unsupported(
                        "a git repository's subdirectory (`path`) is not supported yet".into(),
                    ));
                }
                match (&self.repo, &self.commit) {
                    (Some(repo), Some(commit)) => Ok(Resolution::Git {
                        repo: repo.clone(),
                        commit: commit.clone(),
                    }),
                    _ => Err(unsupported("type git without repo and commit".into())),
                }
            }
            Some("directory") => match &self.directory {
                Some(d) => Ok(Resolution::Directory {
                    directory: d.clone(),
                }),
                None => Err(unsupported("type directory without a directory".into())),
            },
            Some(other) => Err(unsupported(format!("type {other}"))),
        }
    }
}

/// One `snapshots` entry: the edges of the dependency graph.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// name → version or dependency path, as in the importers
    #[serde(default)]
    pub dependencies: Option<UniqueMap<String>>,
    #[serde(default)]
    pub optional_dependencies: Option<UniqueMap<String>>,
    #[serde(default)]
    pub optional: bool,
}

/// Parse the text of a pnpm lockfile (`file` names it in errors): lockfileVersion 9.x only.
pub fn parse(text: &str, file: &str) -> Result<PnpmLock, PnpmLockError> {
    let syntax = |e: serde_yaml::Error| PnpmLockError::Syntax {
        file: file.into(),
        reason: e.to_string(),
    };
    let header: Header = serde_yaml::from_str(text).map_err(syntax)?;
    let version = match header.lockfile_version {
        Some(serde_yaml::Value::String(s)) => s,
        Some(serde_yaml::Value::Number(n)) => n.to_string(),
        Some(_) | None => "(absent)".into(),
    };
    if version.split('.').next() != Some("9") {
        return Err(PnpmLockError::UnsupportedVersion {
            file: file.into(),
            version,
        });
    }
    serde_yaml::from_str(text).map_err(syntax)
}

/// Split a dependency path or `packages` key into its name and the rest (`@s/a@1.0.0` →
/// (`@s/a`, `1.0.0`)): at the first `@` after the first character.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let at = key.char_indices().skip(1).find(|(_, c)| *c == '@')?.0;
    let (name, rest) = (&key[..at], &key[at + 1..]);
    (!name.is_empty() && !rest.is_empty()).then_some((name, rest))
}

/// The `packages` key of a snapshot key: its peer or patch suffix (from the first `(`) cut.
pub fn package_key(snapshot_key: &str) -> &str {
    snapshot_key
        .split_once('(')
        .map_or(snapshot_key, |(k, _)| k)
}

/// The dependency path (snapshot key) a dependency `name` with `reference` (an importer's or a
/// snapshot's version) names; None for a `link:` (pnpm's `refToRelative`).
pub fn dep_path(name: &str, reference: &str) -> Option<String> {
    if reference.starts_with("link:") {
        return None;
    }
    if reference.starts_with('@') {
        return Some(reference.to_string());
    }
    let Some(at) = reference.find('@') else {
        return Some(format!("{name}@{reference}"));
    };
    let before = |c: char| reference.find(c).is_none_or(|i| at < i);
    if before(':') && before('(') {
        Some(reference.to_string())
    } else {
        Some(format!("{name}@{reference}"))
    }
}

/// The `snapshots` graph by dependency path (what decides which packages are dev): each
/// importer's direct dependencies and each snapshot's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotGraph {
    /// importer path → its direct dependencies (links left out)
    pub importers: BTreeMap<String, Vec<DirectDep>>,
    /// snapshot key → the snapshot keys of its dependencies and optional dependencies
    pub edges: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectDep {
    /// the snapshot key
    pub dep_path: String,
    /// declared in `devDependencies` only
    pub dev: bool,
}

impl SnapshotGraph {
    /// The `packages` keys reached from the importers' `dependencies` and
    /// `optionalDependencies` (breadth first): whatever is not is only a dev dependency.
    pub fn runtime_packages(&self) -> std::collections::BTreeSet<&str> {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: std::collections::VecDeque<&str> = self
            .importers
            .values()
            .flatten()
            .filter(|d| !d.dev)
            .map(|d| d.dep_path.as_str())
            .collect();
        while let Some(k) = todo.pop_front() {
            if !seen.insert(k) {
                continue;
            }
            if let Some(next) = self.edges.get(k) {
                todo.extend(next.iter().map(String::as_str));
            }
        }
        seen.into_iter().map(package_key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_paths() {
        assert_eq!(dep_path("a", "1.0.0").unwrap(), "a@1.0.0");
        assert_eq!(
            dep_path("u", "1.2.0(react@18.2.0)").unwrap(),
            "u@1.2.0(react@18.2.0)"
        );
        assert_eq!(dep_path("x", "fecha@4.2.3").unwrap(), "fecha@4.2.3");
        assert_eq!(dep_path("x", "@s/b@2.0.0").unwrap(), "@s/b@2.0.0");
        assert_eq!(
            dep_path("ft", "ms@file:vendor/m.tgz").unwrap(),
            "ms@file:vendor/m.tgz"
        );
        assert_eq!(dep_path("loc", "file:local").unwrap(), "loc@file:local");
        assert_eq!(
            dep_path("g", "git+https://h/r.git#abc").unwrap(),
            "g@git+https://h/r.git#abc"
        );
        assert_eq!(dep_path("w", "link:packages/w"), None);
        assert_eq!(package_key("u@1.2.0(react@18.2.0)"), "u@1.2.0");
        assert_eq!(split_key("@s/a@1.0.0"), Some(("@s/a", "1.0.0")));
        assert_eq!(
            split_key("ms@http://h/m.tgz"),
            Some(("ms", "http://h/m.tgz"))
        );
        assert_eq!(split_key("@s/a"), None);
    }

    #[test]
    fn versions_other_than_9_fail_clearly() {
        for (text, v) in [
            ("lockfileVersion: '6.0'\nimporters: {}\n", "6.0"),
            ("lockfileVersion: 5.4\nspecifiers: {}\n", "5.4"),
            ("importers: {}\n", "(absent)"),
            ("lockfileVersion: '10.0'\n", "10.0"),
        ] {
            let e = parse(text, "pnpm-lock.yaml").unwrap_err();
            assert_eq!(
                e,
                PnpmLockError::UnsupportedVersion {
                    file: "pnpm-lock.yaml".into(),
                    version: v.into()
                }
            );
            assert_eq!(e.kind(), ErrorKind::InvalidFileFormat);
        }
        assert!(parse("lockfileVersion: '9.0'\n", "x").is_ok());
    }

    #[test]
    fn hostile_input_is_an_error() {
        for text in [
            "",
            "[",
            "lockfileVersion: '9.0'\npackages:\n  a@1: {resolution: {integrity: x}}\n  a@1: {resolution: {integrity: y}}\n",
            "lockfileVersion: '9.0'\npackages: [1]\n",
            "\0",
        ] {
            let e = parse(text, "pnpm-lock.yaml");
            assert!(e.is_err(), "{text:?}");
        }
        // a billion laughs ends quickly, refused or skipped, never expanded
        let mut s =
            String::from("lockfileVersion: '9.0'\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let _ = parse(&s, "pnpm-lock.yaml");
    }
}
