//! Choosing the files to fetch for pinned requirements, with the hash each must match.
//!
//! Rules: the sdist(s) of the pinned version always (none -> failure unless `pip-allow-binary`),
//! plus every wheel of that version with `pip-allow-binary`. Yanked files are never chosen.
//! When the requirement has `--hash` values, files whose index sha256 is not listed are dropped
//! (none left -> failure); otherwise the index sha256 is the expected hash (missing -> failure:
//! fail closed). When the requirement's own `--hash` values decide (or two requirements name
//! the same file) the planned item has `verify_after: true` and the worker must call
//! [`verify_file`] on the downloaded file.

use crate::pkg_managers::pip::index::IndexFile;
use crate::pkg_managers::pip::names::{
    normalize_name, parse_dist_filename_for, DistFilename, Version,
};
use crate::pkg_managers::pip::requirements::{ParsedRequirements, Requirement, Source};
use common::commit::CommitId;
use common::digest::{Digest, Expected, FileDigests, HashAlgorithm};
use common::{Classify, Download, ErrorKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The request flag that allows wheels.
pub const FLAG_ALLOW_BINARY: &str = "pip-allow-binary";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("No sdists found for package {name}=={version} ({file}:{line}); only wheels are published for it, set the request flag pip-allow-binary to use them")]
    NoSdist {
        name: String,
        version: String,
        file: String,
        line: usize,
    },
    #[error("No distribution files found for package {name}=={version} ({file}:{line}) in the package index")]
    NoFiles {
        name: String,
        version: String,
        file: String,
        line: usize,
    },
    #[error("None of the files of {name}=={version} in the package index match the hashes given in {file}:{line}")]
    NoHashMatch {
        name: String,
        version: String,
        file: String,
        line: usize,
    },
    #[error("The package index gives no sha256 for {filename} and {file}:{line} has no --hash for {name}; add --hash=sha256:<hex> so the file can be verified")]
    NoHashAvailable {
        name: String,
        filename: String,
        file: String,
        line: usize,
    },
    #[error("The package index page for {0} was not fetched")]
    MissingPage(String),
    // what was computed is never shown: it would hand out the digest of any content a URL serves
    #[error("The file {filename} ({label}) does not match any expected hash")]
    HashMismatch { filename: String, label: String },
    #[error("The downloaded file {filename} could not be read: {reason}")]
    Io { filename: String, reason: String },
    #[error("The VCS URL {0} cannot be mapped to a storage path")]
    BadVcsUrl(String),
    #[error("The hash {hash} given for {filename} is not a valid digest")]
    InvalidHash { filename: String, hash: String },
}

impl Classify for PlanError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlanError::MissingPage(_) | PlanError::Io { .. } => ErrorKind::FileAccessError,
            PlanError::HashMismatch { .. } => ErrorKind::InvalidChecksum,
            _ => ErrorKind::InvalidRequestData,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    Sdist,
    Wheel,
}

/// A file from the package index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// normalized project name
    pub name: String,
    /// version as written in the file name
    pub version: String,
    pub filename: String,
    pub kind: FileKind,
    pub download: Download,
    /// hashes the file may match (the requirement's `--hash` values, or the index sha256)
    pub accept: Vec<Digest>,
    /// the hashes of every other requirement naming the same file: it must match one of each
    /// list too (two requirements never silently weaken each other)
    pub also_accept: Vec<Vec<Digest>>,
    /// call [`verify_file`] after downloading (the `Expected` alone does not prove `accept`)
    pub verify_after: bool,
    pub requires_python: Option<String>,
    pub size: Option<u64>,
    /// only needed by build requirements
    pub dev: bool,
}

/// A git dependency: checked out at its commit, packed by the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDep {
    pub name: String,
    /// `https://host/path` without `git+` and ref
    pub url: String,
    pub commit: CommitId,
    pub subdirectory: Option<String>,
    /// where the packed archive goes in the bundle (Cachito's layout), and its store key
    pub bundle_path: String,
    pub dev: bool,
}

/// A direct URL dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlDep {
    pub name: String,
    pub url: String,
    pub hash: Digest,
    pub filename: String,
    pub download: Download,
    pub dev: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub files: Vec<PlannedFile>,
    pub git: Vec<GitDep>,
    pub urls: Vec<UrlDep>,
}

/// Normalized names whose index project page must be fetched.
pub fn pages_needed<'a>(sets: impl IntoIterator<Item = &'a ParsedRequirements>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for set in sets {
        for r in &set.requirements {
            if matches!(r.source, Source::Index { .. }) {
                names.insert(r.normalized.clone());
            }
        }
    }
    names.into_iter().collect()
}

/// The files of `files` that belong to the version an index requirement pins (yanked ones
/// included): what a cached project page keeps for that pin.
pub fn files_of_pin(req: &Requirement, files: &[IndexFile]) -> Vec<IndexFile> {
    let Source::Index { version, arbitrary } = &req.source else {
        return Vec::new();
    };
    let pin = (!arbitrary).then(|| Version::parse(version).ok()).flatten();
    files
        .iter()
        .filter(|f| {
            parse_dist_filename_for(&f.filename, &req.normalized).is_some_and(|d| match &pin {
                Some(p) => Version::parse(d.version()).is_ok_and(|fv| fv.matches_pin(p)),
                None => d.version().eq_ignore_ascii_case(version),
            })
        })
        .cloned()
        .collect()
}

/// Choose the files of one pinned index requirement.
pub fn plan_index_requirement(
    req: &Requirement,
    files: &[IndexFile],
    allow_binary: bool,
    dev: bool,
) -> Result<Vec<PlannedFile>, PlanError> {
    let Source::Index { version, arbitrary } = &req.source else {
        return Ok(Vec::new());
    };
    let pin = (!arbitrary).then(|| Version::parse(version).ok()).flatten();
    let matches_version = |v: &str| -> bool {
        match &pin {
            Some(p) => Version::parse(v).is_ok_and(|fv| fv.matches_pin(p)),
            None => v.eq_ignore_ascii_case(version),
        }
    };
    let mut candidates: Vec<(&IndexFile, DistFilename)> = files
        .iter()
        .filter(|f| !f.yanked)
        .filter_map(|f| parse_dist_filename_for(&f.filename, &req.normalized).map(|d| (f, d)))
        .filter(|(_, d)| matches_version(d.version()))
        .filter(|(_, d)| allow_binary || !d.is_wheel())
        .collect();
    let err_ctx = (
        req.normalized.clone(),
        version.clone(),
        req.file.to_string(),
        req.line,
    );
    if candidates.is_empty() {
        let (name, version, file, line) = err_ctx;
        let has_wheels = files.iter().any(|f| {
            !f.yanked
                && parse_dist_filename_for(&f.filename, &req.normalized)
                    .is_some_and(|d| d.is_wheel() && matches_version(d.version()))
        });
        return Err(if has_wheels {
            PlanError::NoSdist {
                name,
                version,
                file,
                line,
            }
        } else {
            PlanError::NoFiles {
                name,
                version,
                file,
                line,
            }
        });
    }
    let had_sdist = candidates.iter().any(|(_, d)| !d.is_wheel());
    let req_sha256: Vec<String> = req
        .hashes
        .iter()
        .filter(|h| h.algorithm == HashAlgorithm::Sha256)
        .map(Digest::hex)
        .collect();
    let only_sha256 = !req.hashes.is_empty() && req_sha256.len() == req.hashes.len();
    let mut out = Vec::new();
    candidates.sort_by(|a, b| a.0.filename.cmp(&b.0.filename));
    for (f, d) in candidates {
        let (expected, accept, verify_after) = if req.hashes.is_empty() {
            let Some(sha) = &f.sha256 else {
                return Err(PlanError::NoHashAvailable {
                    name: req.normalized.clone(),
                    filename: f.filename.clone(),
                    file: req.file.to_string(),
                    line: req.line,
                });
            };
            let h = Digest::from_hex(HashAlgorithm::Sha256, sha).map_err(|_| {
                PlanError::InvalidHash {
                    filename: f.filename.clone(),
                    hash: format!("sha256:{sha}"),
                }
            })?;
            (Expected::one(h.clone()), vec![h], false)
        } else {
            match &f.sha256 {
                // The requirement's hashes are "any of": the worker checks them with
                // `verify_file` once the file is downloaded.
                Some(sha) if only_sha256 && !req_sha256.contains(sha) => continue,
                _ => (Expected::none(), req.hashes.clone(), true),
            }
        };
        out.push(PlannedFile {
            name: req.normalized.clone(),
            version: d.version().to_string(),
            filename: f.filename.clone(),
            kind: if d.is_wheel() {
                FileKind::Wheel
            } else {
                FileKind::Sdist
            },
            download: Download {
                url: f.url.clone(),
                store_key: format!("deps/pip/{}/{}", req.normalized, f.filename),
                expected,
                label: format!("{}=={} ({})", req.normalized, version, f.filename),
            },
            accept,
            also_accept: Vec::new(),
            verify_after,
            requires_python: f.requires_python.clone(),
            size: f.size,
            dev,
        });
    }
    let (name, version, file, line) = err_ctx;
    if out.is_empty() {
        return Err(PlanError::NoHashMatch {
            name,
            version,
            file,
            line,
        });
    }
    if !allow_binary && had_sdist && !out.iter().any(|p| p.kind == FileKind::Sdist) {
        return Err(PlanError::NoHashMatch {
            name,
            version,
            file,
            line,
        });
    }
    Ok(out)
}

/// Split a git URL into host and repository path segments (`.git` kept).
fn git_url_parts(url: &str) -> Result<(String, Vec<String>), PlanError> {
    let bad = || PlanError::BadVcsUrl(url.to_string());
    let u = url::Url::parse(url).map_err(|_| bad())?;
    let host = u.host_str().ok_or_else(bad)?.to_ascii_lowercase();
    let segs: Vec<String> = u
        .path_segments()
        .ok_or_else(bad)?
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .collect();
    let ok =
        |s: &str| s != "." && s != ".." && !s.contains(['\\', '\0', '%']) && !s.starts_with('.');
    if segs.is_empty() || !segs.iter().all(|s| ok(s)) || !ok(&host) || host.contains(['/', ':']) {
        return Err(bad());
    }
    Ok((host, segs))
}

/// Cachito's bundle path: `deps/pip/<host>/<ns...>/<repo>/<repo>-external-gitcommit-<sha>.tar.gz`.
pub fn vcs_bundle_path(url: &str, commit: &CommitId) -> Result<String, PlanError> {
    let (host, mut segs) = git_url_parts(url)?;
    if let Some(last) = segs.last_mut() {
        if let Some(s) = last.strip_suffix(".git") {
            *last = s.to_string();
        }
    }
    let repo = segs.last().cloned().unwrap_or_default();
    if repo.is_empty() {
        return Err(PlanError::BadVcsUrl(url.to_string()));
    }
    Ok(format!(
        "deps/pip/{host}/{}/{repo}-external-gitcommit-{commit}.tar.gz",
        segs.join("/")
    ))
}

/// Cachito's URL-dependency path: `deps/pip/external-<name>/<name>-external-<alg>-<hex><ext>`.
pub fn url_store_key(name: &str, hash: &Digest, extension: &str) -> String {
    let n = normalize_name(name);
    format!(
        "deps/pip/external-{n}/{n}-external-{}-{}{extension}",
        hash.algorithm,
        hash.hex()
    )
}

/// Plan every requirement of the given sets; `pages` maps normalized names to the parsed upstream
/// project pages ([`pages_needed`]). Each set is `(requirements, dev)`.
pub fn plan(
    sets: &[(&ParsedRequirements, bool)],
    pages: &BTreeMap<String, Vec<IndexFile>>,
    allow_binary: bool,
) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut seen_files: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_git: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_url: BTreeMap<String, usize> = BTreeMap::new();
    for (set, dev) in sets {
        for req in &set.requirements {
            match &req.source {
                Source::Index { .. } => {
                    let files = pages
                        .get(&req.normalized)
                        .ok_or_else(|| PlanError::MissingPage(req.normalized.clone()))?;
                    for f in plan_index_requirement(req, files, allow_binary, *dev)? {
                        match seen_files.get(&f.download.store_key) {
                            Some(&i) => {
                                let known = &mut plan.files[i];
                                known.dev &= f.dev;
                                if known.accept != f.accept
                                    && !known.also_accept.contains(&f.accept)
                                {
                                    known.also_accept.push(f.accept);
                                    known.verify_after = true;
                                }
                            }
                            None => {
                                seen_files.insert(f.download.store_key.clone(), plan.files.len());
                                plan.files.push(f);
                            }
                        }
                    }
                }
                Source::Vcs {
                    url,
                    commit,
                    subdirectory,
                } => {
                    let bundle_path = vcs_bundle_path(url, commit)?;
                    if let Some(&i) = seen_git.get(&bundle_path) {
                        plan.git[i].dev &= *dev;
                        continue;
                    }
                    seen_git.insert(bundle_path.clone(), plan.git.len());
                    plan.git.push(GitDep {
                        name: req.normalized.clone(),
                        url: url.clone(),
                        commit: commit.clone(),
                        subdirectory: subdirectory.clone(),
                        bundle_path,
                        dev: *dev,
                    });
                }
                Source::Url {
                    url,
                    hash,
                    extension,
                } => {
                    let key = url_store_key(&req.normalized, hash, extension);
                    if let Some(&i) = seen_url.get(&key) {
                        plan.urls[i].dev &= *dev;
                        continue;
                    }
                    seen_url.insert(key.clone(), plan.urls.len());
                    let filename = key.rsplit('/').next().unwrap_or_default().to_string();
                    plan.urls.push(UrlDep {
                        name: req.normalized.clone(),
                        url: url.clone(),
                        hash: hash.clone(),
                        filename,
                        download: Download {
                            url: url.clone(),
                            store_key: key,
                            expected: Expected::one(hash.clone()),
                            label: format!("{} @ {}", req.normalized, url),
                        },
                        dev: *dev,
                    });
                }
            }
        }
    }
    Ok(plan)
}

/// Check a downloaded file against a list of acceptable hashes (any of them).
pub fn verify_file(path: &Path, label: &str, accept: &[Digest]) -> Result<(), PlanError> {
    let filename = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    verify_file_named(path, &filename, label, accept)
}

/// [`verify_file`] for a file stored under another name; `filename` names it in messages.
pub fn verify_file_named(
    path: &Path,
    filename: &str,
    label: &str,
    accept: &[Digest],
) -> Result<(), PlanError> {
    let filename = filename.to_string();
    let digests = FileDigests::of_file(path).map_err(|e| PlanError::Io {
        filename: filename.clone(),
        reason: e.to_string(),
    })?;
    if accept.iter().any(|h| digests.matches(h)) {
        Ok(())
    } else {
        Err(PlanError::HashMismatch {
            filename,
            label: label.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::pip::requirements::{parse_hash, parse_str};
    use common::repo_path::RepoPath;

    fn h(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn file(name: &str, sha: Option<String>) -> IndexFile {
        IndexFile {
            filename: name.into(),
            url: format!("https://files.example/{name}"),
            sha256: sha,
            requires_python: Some(">=3.8".into()),
            yanked: false,
            size: Some(10),
        }
    }

    fn reqs(t: &str) -> ParsedRequirements {
        let file = RepoPath::parse("requirements.txt").unwrap();
        let c = parse_str(t, &file).unwrap();
        ParsedRequirements {
            files: vec![file],
            require_hashes: c.requirements.iter().any(|r| !r.hashes.is_empty()),
            requirements: c.requirements,
        }
    }

    fn page() -> Vec<IndexFile> {
        vec![
            file("Foo-1.0.tar.gz", Some(h('a'))),
            file("foo-1.0-py3-none-any.whl", Some(h('b'))),
            file(
                "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                Some(h('c')),
            ),
            file("foo-1.1.tar.gz", Some(h('d'))),
            file("foo_bar-1.0.tar.gz", Some(h('e'))),
            IndexFile {
                yanked: true,
                ..file("foo-1.0.zip", Some(h('f')))
            },
        ]
    }

    fn pages() -> BTreeMap<String, Vec<IndexFile>> {
        [("foo".to_string(), page())].into_iter().collect()
    }

    #[test]
    fn sdist_only() {
        let r = reqs("foo==1.0.0");
        let p = plan(&[(&r, false)], &pages(), false).unwrap();
        assert_eq!(p.files.len(), 1);
        let f = &p.files[0];
        assert_eq!(f.filename, "Foo-1.0.tar.gz");
        assert_eq!(f.download.store_key, "deps/pip/foo/Foo-1.0.tar.gz");
        assert_eq!(
            f.download.expected.to_string(),
            format!("sha256:{}", h('a'))
        );
        assert_eq!(f.download.url, "https://files.example/Foo-1.0.tar.gz");
        assert!(!f.verify_after && !f.dev);
        assert_eq!(pages_needed([&r]), vec!["foo"]);
    }

    #[test]
    fn two_requirements_of_one_file_must_both_hold() {
        let plain = reqs("foo==1.0");
        let hashed = reqs(&format!("foo==1.0 --hash=sha512:{}", "9".repeat(128)));
        let p = plan(&[(&plain, false), (&hashed, true)], &pages(), false).unwrap();
        assert_eq!(p.files.len(), 1);
        let f = &p.files[0];
        assert_eq!(f.accept[0].hex(), h('a'));
        assert_eq!(f.also_accept.len(), 1);
        assert_eq!(f.also_accept[0][0].hex(), "9".repeat(128));
        assert!(
            f.verify_after,
            "the second requirement's hash is checked too"
        );
        assert!(!f.dev);
        // the same requirement twice adds nothing
        let p = plan(&[(&plain, false), (&plain, true)], &pages(), false).unwrap();
        assert!(p.files[0].also_accept.is_empty() && !p.files[0].verify_after);
    }

    #[test]
    fn allow_binary_adds_wheels() {
        let r = reqs("foo==1.0");
        let p = plan(&[(&r, true)], &pages(), true).unwrap();
        let names: Vec<_> = p.files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "Foo-1.0.tar.gz",
                "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                "foo-1.0-py3-none-any.whl"
            ]
        );
        assert!(p.files.iter().all(|f| f.dev));
    }

    #[test]
    fn hashes_filter() {
        let r = reqs(&format!(
            "foo==1.0 --hash=sha256:{} --hash=sha256:{}",
            h('a'),
            h('b')
        ));
        let p = plan(&[(&r, false)], &pages(), true).unwrap();
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0].accept.len(), 2);
        // without allow-binary the sdist must be among the hashes
        let r = reqs(&format!("foo==1.0 --hash=sha256:{}", h('b')));
        let e = plan(&[(&r, false)], &pages(), false).unwrap_err();
        assert!(matches!(e, PlanError::NoHashMatch { .. }), "{e}");
        let r = reqs(&format!("foo==1.0 --hash=sha256:{}", h('9')));
        let e = plan(&[(&r, false)], &pages(), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "None of the files of foo==1.0 in the package index match the hashes given in requirements.txt:1"
        );
    }

    #[test]
    fn failures() {
        let only_wheel = [(
            "w".to_string(),
            vec![file("w-2.0-py3-none-any.whl", Some(h('1')))],
        )]
        .into_iter()
        .collect();
        let r = reqs("w==2.0");
        let e = plan(&[(&r, false)], &only_wheel, false).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("No sdists found for package w==2.0"));
        assert!(plan(&[(&r, false)], &only_wheel, true).is_ok());
        let r = reqs("foo==3.0");
        assert!(matches!(
            plan(&[(&r, false)], &pages(), true).unwrap_err(),
            PlanError::NoFiles { .. }
        ));
        // only yanked
        let y = [(
            "y".to_string(),
            vec![IndexFile {
                yanked: true,
                ..file("y-1.tar.gz", Some(h('1')))
            }],
        )]
        .into_iter()
        .collect();
        let r = reqs("y==1");
        assert!(plan(&[(&r, false)], &y, false).is_err());
        // no index hash and no requirement hash: fail closed
        let n = [("n".to_string(), vec![file("n-1.tar.gz", None)])]
            .into_iter()
            .collect();
        let r = reqs("n==1");
        let e = plan(&[(&r, false)], &n, false).unwrap_err();
        assert!(matches!(e, PlanError::NoHashAvailable { .. }));
        // ... but a requirement hash is enough
        let r = reqs(&format!("n==1 --hash=sha256:{}", h('7')));
        let p = plan(&[(&r, false)], &n, false).unwrap();
        assert!(p.files[0].download.expected.is_none());
        assert!(p.files[0].verify_after);
        assert_eq!(p.files[0].accept[0].hex(), h('7'));
        let r = reqs("other==1");
        assert!(matches!(
            plan(&[(&r, false)], &n, false).unwrap_err(),
            PlanError::MissingPage(_)
        ));
    }

    #[test]
    fn arbitrary_and_local_versions() {
        let pg = [(
            "a".to_string(),
            vec![
                file("a-1.0+local.tar.gz", Some(h('1'))),
                file("a-1.0.0.tar.gz", Some(h('2'))),
            ],
        )]
        .into_iter()
        .collect();
        let r = reqs("a==1.0");
        assert_eq!(plan(&[(&r, false)], &pg, false).unwrap().files.len(), 2);
        let r = reqs("a===1.0.0");
        let p = plan(&[(&r, false)], &pg, false).unwrap();
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].version, "1.0.0");
    }

    #[test]
    fn vcs_and_url() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let r = reqs(&format!(
            "git+https://github.com/Org/Repo.git@{sha}#egg=repo\nb @ https://h.example/b-1.0.tar.gz#sha256={}\n",
            h('a')
        ));
        let p = plan(&[(&r, false), (&r, true)], &BTreeMap::new(), false).unwrap();
        assert_eq!(p.git.len(), 1);
        assert!(!p.git[0].dev);
        assert_eq!(p.git[0].commit.as_str(), sha);
        assert_eq!(
            p.git[0].bundle_path,
            format!("deps/pip/github.com/Org/Repo/Repo-external-gitcommit-{sha}.tar.gz")
        );
        assert_eq!(p.urls.len(), 1);
        assert_eq!(
            p.urls[0].download.store_key,
            format!("deps/pip/external-b/b-external-sha256-{}.tar.gz", h('a'))
        );
        assert_eq!(
            p.urls[0].download.expected.to_string(),
            format!("sha256:{}", h('a'))
        );
        let sha = CommitId::parse(sha).unwrap();
        assert!(vcs_bundle_path("https://h/", &sha).is_err());
        assert!(vcs_bundle_path("https://h/a/b%2Fc", &sha).is_err());
    }

    #[test]
    fn verify() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.tar.gz");
        std::fs::write(&p, b"hello").unwrap();
        let good =
            parse_hash("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
                .unwrap();
        assert!(verify_file(&p, "x", std::slice::from_ref(&good)).is_ok());
        let e = verify_file(
            &p,
            "x==1",
            &[Digest::from_hex(HashAlgorithm::Sha384, &"0".repeat(96)).unwrap()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("x.tar.gz"));
        assert_eq!(common::Failure::from(e).error_type(), "InvalidChecksum");
    }
}
