//! Package report, artifacts and the bundle's `deps/cargo/` tree.
//!
//! Purls: registry and path crates `pkg:cargo/<name>@<version>`; git crates
//! `pkg:cargo/<name>@<version>?vcs_url=<percent-encoded "git+<url>@<commit>">` (purl spec's
//! `vcs_url` qualifier: the type stays `cargo` so SBOM tools recognise the crate, the qualifier
//! pins the exact source; Cachito's `pkg:github/...` style would lose the crate name inside a
//! multi-crate repository).

use crate::bundle::{BundleTree, PlaceError};
use crate::pkg_managers::cargo::index::{check_line, IndexError};
use crate::pkg_managers::cargo::lockfile::{CargoLock, LockedPackage, Source};
use crate::pkg_managers::cargo::plan::crate_store_key;
use crate::pkg_managers::cargo::vendor::{
    check_verified, crate_license, vendor_dir_name, vendor_git_crate, vendor_registry_crate,
    Limits, VendorError, VENDOR_FORMAT,
};
use common::artifact::cargo::CargoMeta;
use common::commit::CommitId;
use common::digest::Digest;
use common::{Artifact, ArtifactMeta, Dependency, ErrorKind, Package, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("The upstream index line of {0} is missing from the store")]
    MissingIndexLine(String),
    #[error("The crate {0} is locked from two different sources; they cannot share one vendor directory")]
    DuplicateCrate(String),
    #[error("The {0} was not fetched")]
    NotFetched(String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Vendor(#[from] VendorError),
    #[error("The vendored crate cannot be put in the bundle: {0}")]
    Bundle(#[from] PlaceError),
}

impl common::Classify for LayoutError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingIndexLine(_) | Self::NotFetched(_) => ErrorKind::FileAccessError,
            Self::DuplicateCrate(_) => ErrorKind::UnsupportedFeature,
            Self::Index(e) => e.kind(),
            Self::Vendor(e) => e.kind(),
            Self::Bundle(_) => ErrorKind::FileAccessError,
        }
    }
}

pub fn purl(p: &LockedPackage) -> String {
    let base = format!("pkg:cargo/{}@{}", p.name, p.version);
    match &p.source {
        Source::Git { url, commit, .. } => format!(
            "{base}?vcs_url={}",
            common::percent::encode_component(&format!("git+{url}@{commit}"))
        ),
        _ => base,
    }
}

pub fn dependency(p: &LockedPackage) -> Dependency {
    Dependency {
        kind: "cargo".into(),
        name: p.name.clone(),
        version: Some(p.version.clone()),
        dev: None,
        optional: None,
        replaces: None,
        purl: purl(p),
        depends_on: Vec::new(),
    }
}

/// One `cargo` package per workspace member; dependencies = everything reachable from the
/// member in the lockfile graph (registry, git and path crates), sorted.
pub fn packages(lock: &CargoLock) -> Vec<Package> {
    let mut out = Vec::new();
    for m in &lock.members {
        let Some(start) = lock.member_index(m) else {
            continue;
        };
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if let Some(p) = lock.packages.get(i) {
                stack.extend(p.dependencies.iter().copied());
            }
        }
        seen.remove(&start);
        // the lockfile's edges, kept inside what the member reaches
        let edges = |i: usize| -> Vec<String> {
            let mut out: Vec<String> = lock
                .packages
                .get(i)
                .map(|p| p.dependencies.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|j| seen.contains(*j))
                .filter_map(|&j| lock.packages.get(j))
                .map(purl)
                .collect();
            out.sort();
            out.dedup();
            out
        };
        let mut deps: Vec<Dependency> = seen
            .iter()
            .filter_map(|&i| {
                let mut dep = dependency(lock.packages.get(i)?);
                dep.depends_on = edges(i);
                Some(dep)
            })
            .collect();
        deps.sort_by(|a, b| (&a.name, &a.version, &a.purl).cmp(&(&b.name, &b.version, &b.purl)));
        deps.dedup();
        out.push(Package {
            kind: "cargo".into(),
            name: m.name.clone(),
            version: m.version.clone(),
            path: (!m.path.is_root()).then(|| m.path.to_string()),
            dependencies: deps,
            purl: format!("pkg:cargo/{}@{}", m.name, m.version),
            depends_on: edges(start),
        });
    }
    out
}

/// What the SBOM learns of each registry crate, by (name, version), beyond its index line.
#[derive(Clone, Debug, Default)]
pub struct CrateSources {
    /// The licence its Cargo.toml declares (read as it was vendored).
    pub licenses: BTreeMap<(String, String), String>,
    /// The upstream URL of its `.crate` (credentials stripped).
    pub urls: BTreeMap<(String, String), String>,
}

/// One artifact per registry crate, made as it is read (50,000 at once were 40 MB). `lines` maps
/// (name, version) to the verbatim upstream index line (as stored under
/// `plan::index_line_store_key`); each is re-checked against the lockfile.
pub fn artifacts<'a>(
    lock: &'a CargoLock,
    lines: &'a BTreeMap<(String, String), String>,
    sources: &'a CrateSources,
) -> impl Iterator<Item = Result<Artifact, LayoutError>> + 'a {
    lock.registry().map(|(p, checksum)| {
        let key = (p.name.clone(), p.version.clone());
        let line = lines
            .get(&key)
            .ok_or_else(|| LayoutError::MissingIndexLine(format!("{}@{}", p.name, p.version)))?;
        let line = line.trim_end_matches(['\n', '\r']);
        check_line(&p.name, &p.version, checksum, line)?;
        Ok(Artifact {
            pm: "cargo".into(),
            name: p.name.clone(),
            version: p.version.clone(),
            filename: format!("{}-{}.crate", p.name, p.version),
            store_key: crate_store_key(&p.name, &p.version),
            meta: ArtifactMeta::Cargo(CargoMeta {
                index_line: line.to_string(),
                cksum: checksum.to_string(),
                license: sources.licenses.get(&key).cloned(),
            }),
            source_url: sources.urls.get(&key).cloned(),
        })
    })
}

/// Where the fetch left a registry crate: its file in the store and the sha256 computed as it
/// was verified.
pub type CrateFile<'a> = &'a dyn Fn(&str, &str) -> Option<(PathBuf, Digest)>;
/// Where the fetch checked out a repository at a commit.
pub type GitCheckout<'a> = &'a dyn Fn(&str, &CommitId) -> Option<PathBuf>;

/// Where vendored crates go: each one a bundle member made once from its `.crate` (or its
/// repository at the locked commit) and kept, placed at `deps/cargo/<name>-<version>`.
pub struct VendorTarget<'a> {
    pub store: &'a Store,
    pub bundle: &'a BundleTree,
}

/// Vendor every registry crate (from `crate_file(name, version)`) and every git crate (from
/// `git_checkout(url, commit)`, a checkout at the locked commit) into the bundle's
/// `deps/cargo/`. Returns the licences the registry crates declare, by (name, version).
pub fn vendor_all(
    lock: &CargoLock,
    target: &VendorTarget,
    crate_file: CrateFile,
    git_checkout: GitCheckout,
    limits: &Limits,
) -> Result<BTreeMap<(String, String), String>, LayoutError> {
    let mut seen = BTreeSet::new();
    for p in lock
        .packages
        .iter()
        .filter(|p| !matches!(p.source, Source::Path { .. }))
    {
        if !seen.insert((p.name.clone(), p.version.clone())) {
            return Err(LayoutError::DuplicateCrate(format!(
                "{}@{}",
                p.name, p.version
            )));
        }
    }
    let mut licenses = BTreeMap::new();
    for p in &lock.packages {
        let dir = vendor_dir_name(&p.name, &p.version);
        let path = format!("deps/cargo/{dir}");
        match &p.source {
            Source::Registry { checksum } => {
                let (file, verified) = crate_file(&p.name, &p.version).ok_or_else(|| {
                    LayoutError::NotFetched(format!("crate {}@{}", p.name, p.version))
                })?;
                // checked here too: a kept member is reused without vendoring again
                check_verified(&verified, checksum, &format!("{}@{}", p.name, p.version))?;
                let cache_key = format!("{VENDOR_FORMAT}:registry:{}:{dir}", verified.hex());
                // the licence as the crate is hashed when the member is made; from the .crate's
                // Cargo.toml (near its start) when a kept one is reused
                let mut made = None;
                target
                    .bundle
                    .place_derived(target.store, &path, &cache_key, |work: &Path| {
                        let vendored = vendor_registry_crate(
                            &file, &verified, &p.name, &p.version, checksum, work, limits,
                        )?;
                        made = Some(vendored.license);
                        Ok::<_, LayoutError>(())
                    })?;
                let license = made.unwrap_or_else(|| crate_license(&file, &p.name, &p.version));
                if let Some(license) = license {
                    licenses.insert((p.name.clone(), p.version.clone()), license);
                }
            }
            Source::Git { url, commit, .. } => {
                let cache_key = format!("{VENDOR_FORMAT}:git:{url}:{commit}:{dir}");
                target
                    .bundle
                    .place_derived(target.store, &path, &cache_key, |work: &Path| {
                        let checkout = git_checkout(url, commit).ok_or_else(|| {
                            LayoutError::NotFetched(format!("git repository {url} at {commit}"))
                        })?;
                        vendor_git_crate(&checkout, &p.name, &p.version, work)
                            .map(drop)
                            .map_err(LayoutError::from)
                    })?;
            }
            Source::Path { .. } => {}
        }
    }
    Ok(licenses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::cargo::lockfile::{GitRef, Member};
    use common::repo_path::RepoPath;
    use common::Classify;

    fn lp(name: &str, source: Source, deps: Vec<usize>) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: "1.0.0".into(),
            source,
            dependencies: deps,
        }
    }

    fn sample() -> CargoLock {
        CargoLock {
            version: 4,
            packages: vec![
                lp(
                    "app",
                    Source::Path {
                        path: RepoPath::root(),
                    },
                    vec![1, 3],
                ),
                lp(
                    "serde",
                    Source::Registry {
                        checksum: "aa".into(),
                    },
                    vec![2],
                ),
                lp(
                    "serde_derive",
                    Source::Registry {
                        checksum: "bb".into(),
                    },
                    vec![],
                ),
                lp(
                    "g",
                    Source::Git {
                        url: "https://github.com/o/r".into(),
                        source_id: "git+https://github.com/o/r".into(),
                        reference: GitRef::DefaultBranch,
                        commit: CommitId::parse(&"a".repeat(40)).unwrap(),
                    },
                    vec![1],
                ),
                lp(
                    "other",
                    Source::Path {
                        path: RepoPath::parse("other").unwrap(),
                    },
                    vec![2],
                ),
            ],
            members: vec![
                Member {
                    name: "app".into(),
                    version: "1.0.0".into(),
                    path: RepoPath::root(),
                },
                Member {
                    name: "other".into(),
                    version: "1.0.0".into(),
                    path: RepoPath::parse("other").unwrap(),
                },
            ],
            package_path: RepoPath::root(),
        }
    }

    #[test]
    fn packages_and_purls() {
        let p = packages(&sample());
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].path, None);
        assert_eq!(p[0].purl, "pkg:cargo/app@1.0.0");
        let names: Vec<_> = p[0].dependencies.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["g", "serde", "serde_derive"]);
        let g = &p[0].dependencies[0];
        assert_eq!(
            g.purl,
            format!(
                "pkg:cargo/g@1.0.0?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Fo%2Fr%40{}",
                "a".repeat(40)
            )
        );
        assert_eq!(p[1].path.as_deref(), Some("other"));
        assert_eq!(p[1].dependencies.len(), 1);
    }

    #[test]
    fn duplicate_crate_from_two_sources() {
        let mut l = sample();
        let mut dup = lp(
            "g",
            Source::Registry {
                checksum: "cc".into(),
            },
            vec![],
        );
        dup.version = "1.0.0".into();
        l.packages.push(dup);
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("store"));
        let bundle = BundleTree::new(t.path().join("bundle"));
        let e = vendor_all(
            &l,
            &VendorTarget {
                store: &store,
                bundle: &bundle,
            },
            &|_, _| None,
            &|_, _| None,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(e, LayoutError::DuplicateCrate(ref c) if c == "g@1.0.0"),
            "{e}"
        );
        assert_eq!(e.kind().error_type(), "UnsupportedFeature");
    }

    #[test]
    fn artifacts_need_matching_lines() {
        let l = sample();
        let mut lines = BTreeMap::new();
        lines.insert(
            ("serde".to_string(), "1.0.0".to_string()),
            r#"{"name":"serde","vers":"1.0.0","cksum":"aa"}"#.to_string(),
        );
        fn all(
            l: &CargoLock,
            lines: &BTreeMap<(String, String), String>,
        ) -> Result<Vec<Artifact>, LayoutError> {
            artifacts(l, lines, &CrateSources::default()).collect()
        }
        assert!(matches!(
            all(&l, &lines),
            Err(LayoutError::MissingIndexLine(_))
        ));
        lines.insert(
            ("serde_derive".to_string(), "1.0.0".to_string()),
            r#"{"name":"serde_derive","vers":"1.0.0","cksum":"cc"}"#.to_string(),
        );
        assert!(matches!(all(&l, &lines), Err(LayoutError::Index(_))));
        lines.insert(
            ("serde_derive".to_string(), "1.0.0".to_string()),
            r#"{"name":"serde_derive","vers":"1.0.0","cksum":"bb"}"#.to_string(),
        );
        let a = all(&l, &lines).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].filename, "serde-1.0.0.crate");
        assert_eq!(a[0].store_key, "deps/cargo/serde/serde-1.0.0.crate");
        assert_eq!(
            a[0].meta,
            ArtifactMeta::Cargo(CargoMeta {
                index_line: r#"{"name":"serde","vers":"1.0.0","cksum":"aa"}"#.into(),
                cksum: "aa".into(),
                license: None,
            })
        );
        assert_eq!(a[0].source_url, None);
        let mut sources = CrateSources::default();
        let serde = ("serde".to_string(), "1.0.0".to_string());
        sources
            .licenses
            .insert(serde.clone(), "MIT OR Apache-2.0".into());
        sources.urls.insert(
            serde,
            "https://static.crates.io/crates/serde/serde-1.0.0.crate".into(),
        );
        let a: Vec<Artifact> = artifacts(&l, &lines, &sources)
            .collect::<Result<_, _>>()
            .unwrap();
        let ArtifactMeta::Cargo(meta) = &a[0].meta else {
            panic!()
        };
        assert_eq!(meta.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(
            a[0].source_url.as_deref(),
            Some("https://static.crates.io/crates/serde/serde-1.0.0.crate")
        );
        let ArtifactMeta::Cargo(meta) = &a[1].meta else {
            panic!()
        };
        assert_eq!(
            (meta.license.as_ref(), a[1].source_url.as_ref()),
            (None, None)
        );
    }
}
