//! Per requested path: the exact files to fetch (`Download`s), git dependencies, and local
//! tarballs, with their store keys.
//!
//! Store keys (all under `deps/npm/`, so the bundle path equals the store key):
//! - registry: `deps/npm/<name>/-/<basename>-<version>.tgz`
//! - https tarball: `deps/npm/external/<host>/<name>/<basename>-external-<algo>-<hex digest>.tgz`
//!   (content-addressed by the lockfile's strongest integrity value: the same key always means
//!   the same bytes, two URLs with different content never share a key)
//! - git (packed by `pack.rs`): `deps/npm/<host>/<repo path>/<repo>-external-gitcommit-<sha>.tgz`
//!   (Cachito's layout; packing is deterministic so the key is stable)
//! - `file:` tarball inside the repository: `deps/npm/file/<name>/<basename>-file-<algo>-<hex>.tgz`

use crate::pkg_managers::npm::classify::{
    basename, classify, download_url, tarball_path, ClassifyError, Kind,
};
use crate::pkg_managers::npm::integrity::{Integrity, IntegrityError};
use crate::pkg_managers::npm::lockfile::{LockEntry, Project};
use common::commit::CommitId;
use common::repo_path::RepoPath;
use common::{Classify, Download, ErrorKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    #[error("The local tarball dependency {label} has no integrity value in the lockfile")]
    LocalWithoutIntegrity { label: String },
    #[error("The registry dependency {label} has no integrity value in the lockfile; Larder verifies every tarball against the lockfile (a current npm records it: run `npm install` and commit the lockfile)")]
    RegistryWithoutIntegrity { label: String },
    #[error("The lockfile is ambiguous: {first} and {second} are both {name_version} with different integrity values")]
    Ambiguous {
        name_version: String,
        first: String,
        second: String,
    },
}

impl Classify for PlanError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlanError::Classify(e) => e.kind(),
            PlanError::Integrity(e) => e.kind(),
            PlanError::LocalWithoutIntegrity { .. }
            | PlanError::RegistryWithoutIntegrity { .. } => ErrorKind::InvalidChecksum,
            PlanError::Ambiguous { .. } => ErrorKind::InvalidFileFormat,
        }
    }
}

/// A git dependency to check out at `commit` and pack
/// ([`crate::pkg_managers::npm::pack::pack_dir`]); the packed tarball goes to `store_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitDep {
    pub name: String,
    pub url: String,
    pub commit: CommitId,
    pub host: String,
    pub repo_path: String,
    pub store_key: String,
    pub label: String,
}

/// A `file:` tarball inside the repository, to copy into the store after verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTarball {
    pub path: RepoPath,
    pub store_key: String,
    pub integrity: Integrity,
    pub label: String,
}

/// One lockfile entry with its classification and where its tarball lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedDep {
    pub entry: LockEntry,
    pub kind: Kind,
    /// None for links/workspaces and bundled entries
    pub store_key: Option<String>,
}

impl PlannedDep {
    /// The file name the per-request registry serves it as (`<name>/-/<file>`).
    pub fn filename(&self) -> Option<String> {
        self.store_key
            .as_ref()
            .map(|k| k.rsplit('/').next().unwrap_or(k).to_string())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub path: RepoPath,
    pub downloads: Vec<Download>,
    pub git: Vec<GitDep>,
    pub local: Vec<LocalTarball>,
    pub deps: Vec<PlannedDep>,
}

pub fn registry_store_key(name: &str, version: &str) -> String {
    format!("deps/npm/{}", tarball_path(name, version))
}

pub fn git_store_key(host: &str, repo_path: &str, commit: &CommitId) -> String {
    let repo = repo_path.rsplit('/').next().unwrap_or(repo_path);
    format!(
        "deps/npm/{}/{repo_path}/{repo}-external-gitcommit-{commit}.tgz",
        safe_host(host)
    )
}

pub fn safe_host(h: &str) -> String {
    h.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn strongest(i: &Integrity) -> (&'static str, String) {
    let h = i.strongest()[0];
    (h.algorithm.name(), h.hex())
}

/// Build the plan of one project. `upstream` is `LARDER_NPM_REGISTRY`.
/// Every entry of `project`'s lockfile moves into the plan: one copy of a large lockfile, not two.
pub fn plan(app_dir: &Path, project: &mut Project, upstream: &str) -> Result<Plan, PlanError> {
    let mut out = Plan {
        path: project.path.clone(),
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    // name@version -> (integrity, the entry that named it first)
    let mut registry: BTreeMap<String, (Integrity, String)> = BTreeMap::new();
    for e in std::mem::take(&mut project.lockfile.entries) {
        let kind = classify(app_dir, &project.path, &e)?;
        let label = e.label();
        let store_key = match &kind {
            Kind::Registry => {
                let (name, version) = (&e.name, e.version.as_deref().unwrap_or_default());
                let key = registry_store_key(name, version);
                let Some(integrity) = &e.integrity else {
                    return Err(PlanError::RegistryWithoutIntegrity { label });
                };
                let parsed = Integrity::parse(integrity, &label)?;
                let name_version = format!("{name}@{version}");
                match registry.get(&name_version) {
                    Some((first, first_entry)) if !first.same_hashes(&parsed) => {
                        return Err(PlanError::Ambiguous {
                            name_version,
                            first: first_entry.clone(),
                            second: e.location.clone(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        registry.insert(name_version, (parsed.clone(), e.location.clone()));
                    }
                }
                let expected = parsed.expected();
                if seen.insert(key.clone()) {
                    out.downloads.push(Download {
                        url: download_url(upstream, name, version),
                        store_key: key.clone(),
                        expected,
                        label: format!("{name}@{version}"),
                    });
                }
                Some(key)
            }
            Kind::HttpsTarball { url, integrity } => {
                let i = Integrity::parse(integrity, &label)?;
                let (algo, hex) = strongest(&i);
                let host = url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(safe_host))
                    .unwrap_or_default();
                let key = format!(
                    "deps/npm/external/{host}/{}/{}-external-{algo}-{hex}.tgz",
                    e.name,
                    basename(&e.name)
                );
                if seen.insert(key.clone()) {
                    out.downloads.push(Download {
                        url: url.clone(),
                        store_key: key.clone(),
                        expected: i.expected(),
                        label: label.clone(),
                    });
                }
                Some(key)
            }
            Kind::Git {
                url,
                commit,
                host,
                repo_path,
                ..
            } => {
                let key = git_store_key(host, repo_path, commit);
                if seen.insert(key.clone()) {
                    out.git.push(GitDep {
                        name: e.name.clone(),
                        url: url.clone(),
                        commit: commit.clone(),
                        host: host.clone(),
                        repo_path: repo_path.clone(),
                        store_key: key.clone(),
                        label: format!("{}@{url}#{commit}", e.name),
                    });
                }
                Some(key)
            }
            Kind::FileTarball {
                path, integrity, ..
            } => {
                let Some(iv) = integrity else {
                    return Err(PlanError::LocalWithoutIntegrity { label });
                };
                let i = Integrity::parse(iv, &label)?;
                let (algo, hex) = strongest(&i);
                let key = format!(
                    "deps/npm/file/{}/{}-file-{algo}-{hex}.tgz",
                    e.name,
                    basename(&e.name)
                );
                if seen.insert(key.clone()) {
                    out.local.push(LocalTarball {
                        path: path.clone(),
                        store_key: key.clone(),
                        integrity: i,
                        label: label.clone(),
                    });
                }
                Some(key)
            }
            Kind::Link { .. } | Kind::Bundled => None,
        };
        out.deps.push(PlannedDep {
            entry: e,
            kind,
            store_key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::npm::integrity::sri_sha512;
    use crate::pkg_managers::npm::lockfile::read_project;
    use common::digest::HashAlgorithm;

    fn plan_of(packages: &str) -> Result<Plan, PlanError> {
        let t = tempfile::tempdir().unwrap();
        let lock = format!(
            r#"{{"lockfileVersion":3,"packages":{{"":{{"name":"app","version":"1.0.0"}},{packages}}}}}"#
        );
        std::fs::write(t.path().join("package-lock.json"), lock).unwrap();
        std::fs::write(
            t.path().join("package.json"),
            r#"{"name":"app","version":"1.0.0"}"#,
        )
        .unwrap();
        let mut p = read_project(t.path(), &RepoPath::root()).unwrap();
        plan(t.path(), &mut p, "http://up.example/npm/")
    }

    #[test]
    fn registry_tarballs_need_one_integrity() {
        let (i, j) = (sri_sha512(b"x"), sri_sha512(b"y"));
        let r = "https://registry.npmjs.org/a/-/a-1.0.0.tgz";
        let e = plan_of(&format!(
            r#""node_modules/a":{{"version":"1.0.0","resolved":"{r}"}}"#
        ))
        .unwrap_err();
        assert!(
            matches!(e, PlanError::RegistryWithoutIntegrity { .. }),
            "{e}"
        );
        assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
        // the same name@version twice with a different integrity: neither may be dropped
        let e = plan_of(&format!(
            r#""node_modules/a":{{"version":"1.0.0","resolved":"{r}","integrity":"{i}"}},
            "node_modules/x/node_modules/a":{{"version":"1.0.0","resolved":"{r}","integrity":"{j}"}}"#
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The lockfile is ambiguous: node_modules/a and node_modules/x/node_modules/a are both a@1.0.0 with different integrity values",
        );
        // the same one twice is fine
        assert!(plan_of(&format!(
            r#""node_modules/a":{{"version":"1.0.0","resolved":"{r}","integrity":"{i}"}},
            "node_modules/x/node_modules/a":{{"version":"1.0.0","resolved":"{r}","integrity":"{i}"}}"#
        ))
        .is_ok());
    }

    #[test]
    fn plan_all_kinds() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("vendor")).unwrap();
        std::fs::write(root.join("vendor/f-1.0.0.tgz"), b"f").unwrap();
        let i = sri_sha512(b"x");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let lock = format!(
            r#"{{"lockfileVersion":3,"packages":{{"":{{"name":"app","version":"1.0.0"}},
            "node_modules/a":{{"version":"1.0.0","resolved":"https://registry.npmjs.org/a/-/a-1.0.0.tgz","integrity":"{i}"}},
            "node_modules/x/node_modules/a":{{"version":"1.0.0","resolved":"https://registry.npmjs.org/a/-/a-1.0.0.tgz","integrity":"{i}"}},
            "node_modules/@s/b":{{"version":"2.0.0","resolved":"https://registry.npmjs.org/@s/b/-/b-2.0.0.tgz","integrity":"{i}","dev":true}},
            "node_modules/t":{{"version":"1.0.0","resolved":"https://cdn.example.com:8443/t.tgz","integrity":"{i}"}},
            "node_modules/g":{{"version":"1.0.0","resolved":"git+ssh://git@github.com/u/r.git#{sha}"}},
            "node_modules/f":{{"version":"1.0.0","resolved":"file:vendor/f-1.0.0.tgz","integrity":"{i}"}},
            "node_modules/bb":{{"version":"1.0.0","inBundle":true}}
            }}}}"#
        );
        std::fs::write(root.join("package-lock.json"), lock).unwrap();
        std::fs::write(
            root.join("package.json"),
            r#"{"name":"app","version":"1.0.0"}"#,
        )
        .unwrap();
        let mut p = read_project(root, &RepoPath::root()).unwrap();
        let pl = plan(root, &mut p, "http://up.example/npm/").unwrap();
        let keys: Vec<_> = pl
            .downloads
            .iter()
            .map(|d| (d.url.as_str(), d.store_key.as_str()))
            .collect();
        assert!(keys.contains(&(
            "http://up.example/npm/a/-/a-1.0.0.tgz",
            "deps/npm/a/-/a-1.0.0.tgz"
        )));
        assert!(keys.contains(&(
            "http://up.example/npm/@s/b/-/b-2.0.0.tgz",
            "deps/npm/@s/b/-/b-2.0.0.tgz"
        )));
        assert_eq!(pl.downloads.len(), 3, "a is deduplicated");
        let t = pl.downloads.iter().find(|d| d.url.contains("cdn")).unwrap();
        assert!(t
            .store_key
            .starts_with("deps/npm/external/cdn.example.com/t/t-external-sha512-"));
        assert!(!t.expected.is_none());
        assert!(t
            .expected
            .0
            .iter()
            .all(|d| d.algorithm == HashAlgorithm::Sha512));
        assert_eq!(pl.git.len(), 1);
        assert_eq!(
            pl.git[0].store_key,
            format!("deps/npm/github.com/u/r/r-external-gitcommit-{sha}.tgz")
        );
        assert_eq!(pl.local.len(), 1);
        assert_eq!(pl.local[0].path.as_str(), "vendor/f-1.0.0.tgz");
        assert_eq!(pl.deps.len(), 7);
        assert!(pl
            .deps
            .iter()
            .any(|d| d.kind == Kind::Bundled && d.store_key.is_none()));
    }
}
