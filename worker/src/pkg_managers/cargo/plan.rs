//! What the foundation must fetch: `.crate` downloads, index lines, git repositories.
//!
//! Index storage choice: index *files* change upstream over time (new versions, yank flags), so
//! they are never stored. What is stored is the verbatim upstream *line* of each locked
//! (crate, version), once, under `deps/cargo/<name>/<name>-<version>.index-line` (immutable:
//! a published version's line only ever changes its `yanked` flag, which is irrelevant to a
//! locked build). The foundation fetches a crate's index file only when one of its wanted line
//! keys is missing from the store, extracts the lines with [`crate::pkg_managers::cargo::index::find_index_lines`]
//! (which checks `cksum` against the lockfile) and stores each line. A warm request therefore
//! makes no upstream request at all. The line is also copied into the artifact `meta`, so the
//! api serves the per-request index without reading the store.

use crate::pkg_managers::cargo::index::{index_file_url, IndexConfig, IndexError};
use crate::pkg_managers::cargo::lockfile::{CargoLock, Source};
use crate::pkg_managers::GitFetch;
use common::digest::{BadDigest, Digest, Expected, HashAlgorithm};
use common::{Download, ErrorKind};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("The Cargo.lock checksum of {label} is not valid: {source}")]
    BadChecksum {
        label: String,
        #[source]
        source: BadDigest,
    },
    #[error("The package {name}@{version} is locked twice with different checksums ({a} and {b})")]
    ConflictingChecksums {
        name: String,
        version: String,
        a: String,
        b: String,
    },
}

impl common::Classify for PlanError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Index(e) => e.kind(),
            Self::ConflictingChecksums { .. } | Self::BadChecksum { .. } => {
                ErrorKind::InvalidChecksum
            }
        }
    }
}

pub fn crate_store_key(name: &str, version: &str) -> String {
    format!("deps/cargo/{name}/{name}-{version}.crate")
}

pub fn index_line_store_key(name: &str, version: &str) -> String {
    format!("deps/cargo/{name}/{name}-{version}.index-line")
}

/// Where the upstream URL a `.crate` was first fetched from is kept (credentials removed): a
/// request that finds every crate in the store reads no `config.json`, so it cannot compute it.
pub fn download_url_store_key(name: &str, version: &str) -> String {
    format!("deps/cargo/{name}/{name}-{version}.download-url")
}

/// One wanted index line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedLine {
    pub version: String,
    pub checksum: String,
    pub store_key: String,
}

/// Fetch `url` (the crate's sparse index file) only if some `lines[*].store_key` is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFetch {
    pub name: String,
    pub url: String,
    pub lines: Vec<WantedLine>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub downloads: Vec<Download>,
    pub index: Vec<IndexFetch>,
    pub git: Vec<GitFetch>,
}

/// Every store key the registry part of these lockfiles needs (`.crate`s and index lines).
/// When the store has all of them the foundation can skip upstream entirely, including
/// `config.json` (needed only to compute download URLs).
pub fn required_store_keys<'a>(locks: &'a [&CargoLock]) -> impl Iterator<Item = String> + 'a {
    locks.iter().flat_map(|lock| {
        lock.registry().flat_map(|(p, _)| {
            [
                crate_store_key(&p.name, &p.version),
                index_line_store_key(&p.name, &p.version),
            ]
        })
    })
}

/// Plan the fetches for one or more parsed lockfiles (deduplicated).
/// `index_base` is the upstream index (e.g. `sparse+https://index.crates.io/`), `config` its
/// parsed `config.json`.
pub fn plan(
    locks: &[&CargoLock],
    index_base: &str,
    config: &IndexConfig,
) -> Result<Plan, PlanError> {
    let mut registry: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    let mut git: BTreeSet<GitFetch> = BTreeSet::new();
    for lock in locks {
        for p in &lock.packages {
            match &p.source {
                Source::Registry { checksum } => {
                    let key = (p.name.as_str(), p.version.as_str());
                    if let Some(prev) = registry.get(&key) {
                        if prev != checksum {
                            return Err(PlanError::ConflictingChecksums {
                                name: p.name.clone(),
                                version: p.version.clone(),
                                a: prev.to_string(),
                                b: checksum.clone(),
                            });
                        }
                    }
                    registry.insert(key, checksum);
                }
                Source::Git { url, commit, .. } => {
                    git.insert(GitFetch {
                        url: url.clone(),
                        commit: commit.clone(),
                    });
                }
                Source::Path { .. } => {}
            }
        }
    }
    let mut out = Plan::default();
    let mut by_name: BTreeMap<&str, Vec<WantedLine>> = BTreeMap::new();
    for ((name, version), checksum) in registry {
        out.downloads.push(Download {
            url: config.download_url(name, version, checksum)?,
            store_key: crate_store_key(name, version),
            expected: Expected::one(Digest::from_hex(HashAlgorithm::Sha256, checksum).map_err(
                |source| PlanError::BadChecksum {
                    label: format!("{name}@{version}"),
                    source,
                },
            )?),
            label: format!("{name}@{version}"),
        });
        by_name.entry(name).or_default().push(WantedLine {
            version: version.to_string(),
            checksum: checksum.to_string(),
            store_key: index_line_store_key(name, version),
        });
    }
    for (name, lines) in by_name {
        out.index.push(IndexFetch {
            url: index_file_url(index_base, name)?,
            name: name.to_string(),
            lines,
        });
    }
    out.git = git.into_iter().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::cargo::index::parse_config;
    use crate::pkg_managers::cargo::lockfile::{GitRef, LockedPackage};

    fn lock(pkgs: Vec<LockedPackage>) -> CargoLock {
        CargoLock {
            version: 4,
            packages: pkgs,
            members: vec![],
            package_path: common::repo_path::RepoPath::root(),
        }
    }
    fn reg(n: &str, v: &str, c: &str) -> LockedPackage {
        LockedPackage {
            name: n.into(),
            version: v.into(),
            // a two-digit pattern spelled out to a sha256
            source: Source::Registry {
                checksum: c.repeat(32),
            },
            dependencies: vec![],
        }
    }

    #[test]
    fn plans_downloads_index_and_git() {
        let cfg = parse_config(br#"{"dl":"https://static.crates.io/crates"}"#).unwrap();
        let g = LockedPackage {
            name: "g".into(),
            version: "0.1.0".into(),
            source: Source::Git {
                url: "https://github.com/o/r".into(),
                source_id: "git+https://github.com/o/r".into(),
                reference: GitRef::DefaultBranch,
                commit: common::commit::CommitId::parse(&"a".repeat(40)).unwrap(),
            },
            dependencies: vec![],
        };
        let a = lock(vec![
            reg("serde", "1.0.0", "aa"),
            reg("serde", "1.0.1", "bb"),
            g.clone(),
        ]);
        let b = lock(vec![
            reg("serde", "1.0.0", "aa"),
            reg("libc", "0.2.0", "cc"),
            g,
        ]);
        let p = plan(&[&a, &b], "sparse+https://index.crates.io/", &cfg).unwrap();
        assert_eq!(p.downloads.len(), 3);
        let d = p
            .downloads
            .iter()
            .find(|d| d.label == "serde@1.0.0")
            .unwrap();
        assert_eq!(
            d.url,
            "https://static.crates.io/crates/serde/1.0.0/download"
        );
        assert_eq!(d.store_key, "deps/cargo/serde/serde-1.0.0.crate");
        assert_eq!(
            d.expected.to_string(),
            format!("sha256:{}", "aa".repeat(32))
        );
        assert_eq!(p.index.len(), 2);
        let s = p.index.iter().find(|i| i.name == "serde").unwrap();
        assert_eq!(s.url, "https://index.crates.io/se/rd/serde");
        assert_eq!(s.lines.len(), 2);
        assert_eq!(
            s.lines[0].store_key,
            "deps/cargo/serde/serde-1.0.0.index-line"
        );
        // one checkout for the git crate both lockfiles lock
        assert_eq!(
            p.git,
            vec![GitFetch {
                url: "https://github.com/o/r".into(),
                commit: common::commit::CommitId::parse(&"a".repeat(40)).unwrap(),
            }]
        );
    }

    #[test]
    fn conflicting_checksums() {
        let cfg = parse_config(br#"{"dl":"https://x/"}"#).unwrap();
        let a = lock(vec![reg("serde", "1.0.0", "aa")]);
        let b = lock(vec![reg("serde", "1.0.0", "ab")]);
        let e = plan(&[&a, &b], "sparse+https://x/", &cfg).unwrap_err();
        assert_eq!(common::Classify::kind(&e).error_type(), "InvalidChecksum");
    }
}
