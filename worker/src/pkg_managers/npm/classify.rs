//! What each lockfile entry is and where it comes from.

use crate::pkg_managers::npm::lockfile::LockEntry;
use common::commit::CommitId;
use common::repo_path::{RepoPath, RepoPathError};
use common::{Classify, ErrorKind};
use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    #[error(
        "The git dependency {label} must be pinned to a full 40-character commit id, got {url:?}"
    )]
    GitNotPinned { label: String, url: String },
    #[error("The dependency {label} is an http(s) tarball without an integrity value in the lockfile; URL dependencies must carry a hash")]
    MissingIntegrity { label: String },
    #[error("The local file dependency path {path} of {label} is outside the repository")]
    FileOutside { label: String, path: String },
    #[error("The dependency {label} has an unsupported source {resolved:?} (supported: the registry, git at a commit, http(s) tarballs with integrity, file: inside the repository)")]
    Unsupported { label: String, resolved: String },
    #[error("The dependency {label} has an invalid package name or version for npm")]
    InvalidName { label: String },
    #[error("The registry dependency {label} has no version in the lockfile")]
    MissingVersion { label: String },
    #[error("Could not check the local path of {label}: {reason}")]
    Io { label: String, reason: String },
}

impl Classify for ClassifyError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClassifyError::GitNotPinned { .. } | ClassifyError::Unsupported { .. } => {
                ErrorKind::UnsupportedFeature
            }
            ClassifyError::MissingIntegrity { .. } => ErrorKind::InvalidChecksum,
            ClassifyError::FileOutside { .. } => ErrorKind::ValidationError,
            ClassifyError::InvalidName { .. } | ClassifyError::MissingVersion { .. } => {
                ErrorKind::InvalidFileFormat
            }
            ClassifyError::Io { .. } => ErrorKind::FileAccessError,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// fetched from the configured upstream registry, whatever host `resolved` names
    /// (its name, version and integrity are the entry's)
    Registry,
    /// `url`: what git clones (https for github/gitlab/bitbucket); `original`: the lockfile's text
    Git {
        url: String,
        commit: CommitId,
        host: String,
        repo_path: String,
        original: String,
    },
    HttpsTarball {
        url: String,
        integrity: String,
    },
    /// a tarball inside the repository
    FileTarball {
        path: RepoPath,
        original: String,
        integrity: Option<String>,
    },
    /// link / workspace / `file:` directory inside the repository
    Link {
        path: RepoPath,
    },
    /// comes inside its parent's tarball: never fetched
    Bundled,
}

/// `<upstream>/<name>/-/<basename>-<version>.tgz` (scoped: `@s/n/-/n-v.tgz`).
pub fn download_url(upstream: &str, name: &str, version: &str) -> String {
    format!(
        "{}/{}",
        upstream.trim_end_matches('/'),
        tarball_path(name, version)
    )
}

/// `<name>/-/<basename>-<version>.tgz`
pub fn tarball_path(name: &str, version: &str) -> String {
    format!("{name}/-/{}-{version}.tgz", basename(name))
}

/// Name without its scope.
pub fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// npm package names as they may appear in store keys and URLs: `name` or `@scope/name`, each
/// part made of `[A-Za-z0-9._~-]`, not starting with `.`, at most 214 characters.
pub fn valid_name(name: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(rest) => match rest.split_once('/') {
            Some((s, n)) => part_ok(s) && part_ok(n),
            None => false,
        },
        None => part_ok(name),
    }
}

/// Versions as they may appear in file names: semver characters only.
pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b))
}

/// Parse a git spec as npm writes it in lockfiles into (clone url, commit, host, repo path).
pub fn parse_git(spec: &str) -> Option<(String, Option<String>, String, String)> {
    let (base, frag) = match spec.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (spec, None),
    };
    let commit = frag.map(|f| f.trim_start_matches("commit=").to_ascii_lowercase());
    let shorthand = |host: &str, rest: &str| {
        let path = rest.trim_end_matches(".git").trim_matches('/').to_string();
        safe_repo_path(&path).then(|| {
            (
                format!("https://{host}/{path}.git"),
                commit.clone(),
                host.to_string(),
                path,
            )
        })
    };
    if let Some(r) = base.strip_prefix("github:") {
        return shorthand("github.com", r);
    }
    if let Some(r) = base.strip_prefix("gitlab:") {
        return shorthand("gitlab.com", r);
    }
    if let Some(r) = base.strip_prefix("bitbucket:") {
        return shorthand("bitbucket.org", r);
    }
    let url = base.strip_prefix("git+").unwrap_or(base);
    if let Some(local) = url.strip_prefix("file://") {
        // a local repository (`git+file:///srv/repo.git`): only cloned when the deployment
        // allows local repositories (`LARDER_ALLOW_LOCAL_REPOS`, checked by the git fetcher)
        let path = local.trim_matches('/').trim_end_matches(".git").to_string();
        return safe_repo_path(&path).then(|| (url.to_string(), commit, "local".to_string(), path));
    }
    let known = ["https://", "http://", "ssh://", "git://"];
    if !known.iter().any(|p| url.starts_with(p)) {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    let path = parsed
        .path()
        .trim_matches('/')
        .trim_end_matches(".git")
        .to_string();
    if !safe_repo_path(&path) {
        return None;
    }
    let clone = match (parsed.scheme(), host.as_str()) {
        ("ssh" | "git", "github.com" | "gitlab.com" | "bitbucket.org") => {
            format!("https://{host}/{path}.git")
        }
        _ => url.to_string(),
    };
    Some((clone, commit, host, path))
}

/// A repository path usable in a store key: `/`-separated segments of `[A-Za-z0-9._~-]`, none
/// empty, `.` or `..`.
fn safe_repo_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && path.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        })
}

fn is_git(s: &str) -> bool {
    s.starts_with("git+")
        || s.starts_with("git://")
        || s.starts_with("github:")
        || s.starts_with("gitlab:")
        || s.starts_with("bitbucket:")
}

/// Does `resolved` look like a registry tarball of `name@version` (any host)?
fn is_registry_url(resolved: &str, name: &str, version: &str) -> bool {
    let Ok(u) = url::Url::parse(resolved) else {
        return false;
    };
    if !matches!(u.scheme(), "http" | "https") {
        return false;
    }
    let want = format!("/-/{}-{version}.tgz", basename(name));
    let path = u.path();
    let unescaped = path.replace("%2f", "/").replace("%2F", "/");
    unescaped.ends_with(&format!("{name}{want}"))
}

/// Classify one entry of the package at `project_dir`; relative `file:` and link paths are
/// taken from there.
pub fn classify(
    app_dir: &Path,
    project_dir: &RepoPath,
    e: &LockEntry,
) -> Result<Kind, ClassifyError> {
    let label = e.label();
    if e.in_bundle {
        return Ok(Kind::Bundled);
    }
    let local_path = |p: &str| -> Result<RepoPath, ClassifyError> {
        let outside = || ClassifyError::FileOutside {
            label: label.clone(),
            path: p.to_string(),
        };
        let path = project_dir.join(p).map_err(|_| outside())?;
        match path.resolve_new(app_dir) {
            Ok(_) => Ok(path),
            Err(RepoPathError::Missing(_)) => Err(ClassifyError::Io {
                label: label.clone(),
                reason: "the repository is missing".into(),
            }),
            Err(_) => Err(outside()),
        }
    };
    if e.local_dir {
        return Ok(Kind::Link {
            path: local_path(&e.location)?,
        });
    }
    let resolved = e.resolved.clone().unwrap_or_default();
    if e.link {
        let p = resolved.strip_prefix("file:").unwrap_or(&resolved);
        return Ok(Kind::Link {
            path: local_path(p)?,
        });
    }
    if !valid_name(&e.name) {
        return Err(ClassifyError::InvalidName { label });
    }
    if is_git(&resolved) {
        let Some((url, commit, host, repo_path)) = parse_git(&resolved) else {
            return Err(ClassifyError::Unsupported { label, resolved });
        };
        return match commit.and_then(|c| CommitId::parse_any_case(&c).ok()) {
            Some(commit) => Ok(Kind::Git {
                url,
                commit,
                host,
                repo_path,
                original: resolved,
            }),
            _ => Err(ClassifyError::GitNotPinned {
                label,
                url: resolved,
            }),
        };
    }
    if let Some(p) = resolved.strip_prefix("file:") {
        let path = local_path(p)?;
        return Ok(Kind::FileTarball {
            path,
            original: resolved.clone(),
            integrity: e.integrity.clone(),
        });
    }
    let version = e.version.clone().unwrap_or_default();
    let is_http = resolved.starts_with("https://") || resolved.starts_with("http://");
    // No `resolved` means the registry; so does a registry-shaped tarball URL on any host.
    if resolved.is_empty()
        || (is_http && !version.is_empty() && is_registry_url(&resolved, &e.name, &version))
    {
        if version.is_empty() {
            return Err(ClassifyError::MissingVersion { label });
        }
        if !valid_version(&version) {
            return Err(ClassifyError::InvalidName { label });
        }
        return Ok(Kind::Registry);
    }
    if is_http {
        if url::Url::parse(&resolved)
            .ok()
            .and_then(|u| u.host_str().map(|_| ()))
            .is_none()
        {
            return Err(ClassifyError::Unsupported { label, resolved });
        }
        return match &e.integrity {
            Some(i) if !i.trim().is_empty() => Ok(Kind::HttpsTarball {
                url: resolved,
                integrity: i.clone(),
            }),
            _ => Err(ClassifyError::MissingIntegrity { label }),
        };
    }
    Err(ClassifyError::Unsupported { label, resolved })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: Option<&str>, resolved: Option<&str>) -> LockEntry {
        LockEntry {
            location: format!("node_modules/{name}"),
            name: name.into(),
            version: version.map(Into::into),
            resolved: resolved.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            download_url("https://r.example/", "lodash", "4.17.21"),
            "https://r.example/lodash/-/lodash-4.17.21.tgz"
        );
        assert_eq!(
            download_url("https://r.example/npm", "@s/n", "1.0.0"),
            "https://r.example/npm/@s/n/-/n-1.0.0.tgz"
        );
    }

    #[test]
    fn names() {
        for ok in ["a", "@s/n", "lodash.merge", "A_b", "x-y~z"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "@s", "@s/", "a/b", "../x", "@s/../x", "a b", "a%2f", ".hidden",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_version("1.0.0-beta.1+build"));
        assert!(!valid_version("../1"));
        assert!(!valid_version("1/2"));
    }

    #[test]
    fn kinds() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("vendor")).unwrap();
        let c = |e: &LockEntry| classify(root, &RepoPath::root(), e);
        let k = c(&entry(
            "a",
            Some("1.0.0"),
            Some("https://artifactory.corp/api/npm/a/-/a-1.0.0.tgz"),
        ))
        .unwrap();
        assert!(matches!(k, Kind::Registry));
        let k = c(&entry(
            "@s/a",
            Some("1.0.0"),
            Some("https://registry.npmjs.org/@s%2fa/-/a-1.0.0.tgz"),
        ))
        .unwrap();
        assert!(matches!(k, Kind::Registry));
        assert!(matches!(
            c(&entry("a", Some("1.0.0"), None)).unwrap(),
            Kind::Registry
        ));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let k = c(&entry(
            "g",
            None,
            Some(&format!("git+ssh://git@github.com/u/r.git#{sha}")),
        ))
        .unwrap();
        match k {
            Kind::Git {
                url,
                commit,
                host,
                repo_path,
                ..
            } => {
                assert_eq!(url, "https://github.com/u/r.git");
                assert_eq!(commit.as_str(), sha);
                assert_eq!((host.as_str(), repo_path.as_str()), ("github.com", "u/r"));
            }
            other => panic!("{other:?}"),
        }
        let k = c(&entry("g", None, Some(&format!("github:u/r#{sha}")))).unwrap();
        assert!(matches!(k, Kind::Git { .. }));
        let e = c(&entry(
            "g",
            None,
            Some("git+https://example.com/u/r.git#main"),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("40-character"));
        assert_eq!(
            common::Failure::from(e).origin(),
            common::ErrorOrigin::Client
        );
        let e = c(&entry(
            "t",
            Some("1.0.0"),
            Some("https://example.com/t.tgz"),
        ))
        .unwrap_err();
        assert!(matches!(e, ClassifyError::MissingIntegrity { .. }));
        let mut te = entry("t", Some("1.0.0"), Some("https://example.com/t.tgz"));
        te.integrity = Some("sha512-AA==".into());
        assert!(matches!(c(&te).unwrap(), Kind::HttpsTarball { .. }));
        let k = c(&entry("f", Some("1.0.0"), Some("file:vendor/f.tgz"))).unwrap();
        assert_eq!(
            k,
            Kind::FileTarball {
                path: RepoPath::parse("vendor/f.tgz").unwrap(),
                original: "file:vendor/f.tgz".into(),
                integrity: None
            }
        );
        let e = c(&entry("f", Some("1.0.0"), Some("file:../outside.tgz"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The local file dependency path ../outside.tgz of f@1.0.0 is outside the repository"
        );
        let mut l = entry("w", None, Some("vendor"));
        l.link = true;
        assert_eq!(
            c(&l).unwrap(),
            Kind::Link {
                path: RepoPath::parse("vendor").unwrap()
            }
        );
        l.resolved = Some("../../etc".into());
        assert!(c(&l).is_err());
        let mut b = entry("b", Some("1.0.0"), None);
        b.in_bundle = true;
        assert_eq!(c(&b).unwrap(), Kind::Bundled);
        assert!(c(&entry("../evil", Some("1.0.0"), None)).is_err());
        assert!(c(&entry("a", Some("../../1"), None)).is_err());
        assert!(c(&entry("a", Some("1"), Some("ftp://x/y.tgz"))).is_err());
        assert!(c(&entry("a", None, None)).is_err());
    }

    #[test]
    fn file_symlink_escape() {
        let t = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("x.tgz"), b"x").unwrap();
        std::os::unix::fs::symlink(out.path().join("x.tgz"), t.path().join("x.tgz")).unwrap();
        let e = classify(
            t.path(),
            &RepoPath::root(),
            &entry("x", Some("1.0.0"), Some("file:x.tgz")),
        )
        .unwrap_err();
        assert!(matches!(e, ClassifyError::FileOutside { .. }));
    }

    #[test]
    fn git_parse_rejects_traversal() {
        assert!(
            parse_git("git+https://h/../x.git#a").is_none()
                || parse_git("git+https://h/../x.git#a").unwrap().3 != ".."
        );
        // local repositories parse (the git fetcher refuses them unless LARDER_ALLOW_LOCAL_REPOS)
        assert!(parse_git("git+file:///srv/../etc#a").is_none());
        let (url, _, host, path) = parse_git("git+file:///srv/r.git#a").unwrap();
        assert_eq!(
            (url.as_str(), host.as_str(), path.as_str()),
            ("file:///srv/r.git", "local", "srv/r")
        );
    }
}
