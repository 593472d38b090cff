//! The version reported for a main module, from the request's git repository (Cachito's rule):
//!
//! 1. the highest semver tag on the commit whose major version fits the module path
//!    (`/vN` suffix → only `vN.*`; otherwise `v1.*`, then `v0.*`) → that version;
//! 2. else the highest such tag reachable from the commit → a Go pseudo-version:
//!    `vX.Y.(Z+1)-0.<ts>-<sha12>` after a release, `vX.Y.Z-pre.0.<ts>-<sha12>` after a
//!    pre-release;
//! 3. else `vN.0.0-<ts>-<sha12>` (N from `/vN`, else 0).
//!
//! `<ts>` is the committer time in UTC (`yyyymmddhhmmss`). For a module in a subdirectory
//! `sub/dir`, only tags `sub/dir/vX.Y.Z` count. Tags with build metadata (`+meta`) are not
//! canonical Go versions and are ignored. A shallow fetch may lack tags or history: whatever
//! is missing simply does not count.

use common::gomod::compare_versions;
use std::cmp::Ordering;
use std::path::Path;

/// The commit a version is computed for.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
}

/// A semver tag relevant to the module, already stripped of its subdirectory prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Semver {
    major: u64,
    minor: u64,
    patch: u64,
    /// Pre-release without the leading `-` ("" for a release).
    pre: String,
}

impl Semver {
    fn canonical(&self) -> String {
        let mut s = format!("v{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            s.push('-');
            s.push_str(&self.pre);
        }
        s
    }
    fn cmp(&self, other: &Semver) -> Ordering {
        compare_versions(&self.canonical(), &other.canonical())
    }
}

/// Strict `MAJOR.MINOR.PATCH[-pre]` number: digits, no leading zero.
fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Parse `vX.Y.Z[-pre]` (no build metadata), strictly as semver 2.0.
fn parse_semver(tag: &str) -> Option<Semver> {
    let v = tag.strip_prefix('v')?;
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let mut parts = core.split('.');
    let (major, minor, patch) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if parts.next().is_some() {
        return None;
    }
    if let Some(pre) = pre {
        let ok = pre.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!id.bytes().all(|b| b.is_ascii_digit()) || num(id).is_some())
        });
        if !ok {
            return None;
        }
    }
    Some(Semver {
        major,
        minor,
        patch,
        pre: pre.unwrap_or_default().to_string(),
    })
}

/// The semver of a tag name for a module in `subpath` (None or "." for the repository root).
fn tag_semver(tag: &str, subpath: Option<&str>) -> Option<Semver> {
    let version = match subpath.filter(|s| !s.is_empty() && *s != ".") {
        Some(sub) => tag
            .strip_prefix(sub.trim_end_matches('/'))?
            .strip_prefix('/')?,
        None => tag,
    };
    parse_semver(version)
}

/// N of a trailing `/vN` (N ≥ 2, no leading zero) in a module path.
pub fn module_major(module: &str) -> Option<u64> {
    let (_, last) = module.rsplit_once('/')?;
    let n = num(last.strip_prefix('v')?)?;
    (n >= 2).then_some(n)
}

fn highest<'a>(
    tags: impl Iterator<Item = &'a str>,
    subpath: Option<&str>,
    major: u64,
) -> Option<Semver> {
    tags.filter_map(|t| tag_semver(t, subpath))
        .filter(|v| v.major == major)
        .max_by(|a, b| a.cmp(b))
}

/// The main module's version from the tags on the commit and the tags reachable from it
/// (raw tag names, e.g. `v1.2.3` or `sub/dir/v1.2.3`). Pure.
pub fn main_module_version(
    module: &str,
    subpath: Option<&str>,
    commit: &CommitInfo,
    tags_on_commit: &[&str],
    reachable_tags: &[&str],
) -> String {
    let module_major = module_major(module);
    let majors: &[u64] = match &module_major {
        Some(n) => std::slice::from_ref(n),
        None => &[1, 0],
    };
    for &major in majors {
        if let Some(v) = highest(tags_on_commit.iter().copied(), subpath, major) {
            return v.canonical();
        }
    }
    let ts = chrono::DateTime::from_timestamp(commit.time, 0)
        .unwrap_or_default()
        .format("%Y%m%d%H%M%S");
    let sha: String = commit.id.chars().take(12).collect();
    for &major in majors {
        if let Some(v) = highest(reachable_tags.iter().copied(), subpath, major) {
            return if v.pre.is_empty() {
                format!("v{}.{}.{}-0.{ts}-{sha}", v.major, v.minor, v.patch + 1)
            } else {
                format!("{}.0.{ts}-{sha}", v.canonical())
            };
        }
    }
    format!("v{}.0.0-{ts}-{sha}", module_major.unwrap_or(0))
}

/// [`main_module_version`] for `git_ref` (else HEAD) of the git repository at `repo_dir`.
pub fn git_main_version(
    repo_dir: &Path,
    git_ref: &str,
    module: &str,
    subpath: Option<&str>,
) -> Result<String, git2::Error> {
    let repo = git2::Repository::open(repo_dir)?;
    let commit = match git2::Oid::from_str(git_ref).and_then(|id| repo.find_commit(id)) {
        Ok(c) => c,
        Err(_) => repo.head()?.peel_to_commit()?,
    };
    let head = commit.id();
    let mut on_commit = Vec::new();
    let mut reachable = Vec::new();
    for reference in repo.references_glob("refs/tags/*")?.flatten() {
        let Some(name) = reference
            .name()
            .ok()
            .and_then(|n| n.strip_prefix("refs/tags/"))
        else {
            continue;
        };
        // cheap filter first: only tags that could count are peeled and walked
        if tag_semver(name, subpath).is_none() {
            continue;
        }
        let Ok(target) = reference.peel_to_commit() else {
            continue;
        };
        let name = name.to_string();
        if target.id() == head {
            on_commit.push(name.clone());
            reachable.push(name);
        } else if repo.graph_descendant_of(head, target.id()).unwrap_or(false) {
            reachable.push(name);
        }
    }
    let on_commit: Vec<&str> = on_commit.iter().map(String::as_str).collect();
    let reachable: Vec<&str> = reachable.iter().map(String::as_str).collect();
    let info = CommitInfo {
        id: head.to_string(),
        time: commit.time().seconds(),
    };
    Ok(main_module_version(
        module, subpath, &info, &on_commit, &reachable,
    ))
}

/// [`git_main_version`], falling back to `vN.0.0-19700101000000-<git_ref[..12]>` when the
/// repository cannot be read.
pub fn main_version_or_fallback(
    repo_dir: &Path,
    git_ref: &str,
    module: &str,
    subpath: Option<&str>,
) -> String {
    git_main_version(repo_dir, git_ref, module, subpath).unwrap_or_else(|e| {
        tracing::warn!(error = %e, module, "cannot read the main module's version from git");
        let info = CommitInfo {
            id: git_ref.to_string(),
            time: 0,
        };
        main_module_version(module, subpath, &info, &[], &[])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{Repository, Signature, Time};

    const T1: i64 = 1_600_000_000; // 2020-09-13 12:26:40 UTC
    const TS1: &str = "20200913122640";

    struct Repo {
        dir: tempfile::TempDir,
        repo: Repository,
        n: i64,
    }

    impl Repo {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repository::init(dir.path()).unwrap();
            Repo { dir, repo, n: 0 }
        }
        /// A new commit on HEAD; committer time T1 + 100*n, author time different on purpose.
        fn commit(&mut self) -> git2::Oid {
            let t = T1 + 100 * self.n;
            self.n += 1;
            std::fs::write(self.dir.path().join("f"), format!("{t}")).unwrap();
            let mut idx = self.repo.index().unwrap();
            idx.add_path(Path::new("f")).unwrap();
            let tree = self.repo.find_tree(idx.write_tree().unwrap()).unwrap();
            let author = Signature::new("a", "a@x", &Time::new(1, 0)).unwrap();
            let committer = Signature::new("c", "c@x", &Time::new(t, 120)).unwrap();
            let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
            let parents: Vec<&git2::Commit> = parent.iter().collect();
            self.repo
                .commit(Some("HEAD"), &author, &committer, "m", &tree, &parents)
                .unwrap()
        }
        fn light(&self, name: &str, id: git2::Oid) {
            let obj = self.repo.find_object(id, None).unwrap();
            self.repo.tag_lightweight(name, &obj, false).unwrap();
        }
        fn annotated(&self, name: &str, id: git2::Oid) {
            let obj = self.repo.find_object(id, None).unwrap();
            let sig = Signature::new("t", "t@x", &Time::new(5, 0)).unwrap();
            self.repo.tag(name, &obj, &sig, "msg", false).unwrap();
        }
        fn version(&self, module: &str, subpath: Option<&str>) -> String {
            let head = self.repo.head().unwrap().target().unwrap();
            git_main_version(self.dir.path(), &head.to_string(), module, subpath).unwrap()
        }
        fn sha12(&self) -> String {
            self.repo.head().unwrap().target().unwrap().to_string()[..12].to_string()
        }
    }

    #[test]
    fn tag_on_commit_lightweight_and_annotated() {
        let mut r = Repo::new();
        let c = r.commit();
        r.light("v1.2.3", c);
        assert_eq!(r.version("example.com/m", None), "v1.2.3");
        // annotated, higher, wins; non-semver tags ignored
        r.annotated("v1.3.0", c);
        r.light("v1.4", c);
        r.light("release", c);
        r.light("v1.9.0+meta", c);
        assert_eq!(r.version("example.com/m", None), "v1.3.0");
    }

    #[test]
    fn annotated_tag_on_commit_alone() {
        let mut r = Repo::new();
        let c = r.commit();
        r.annotated("v0.4.0-rc.1", c);
        assert_eq!(r.version("example.com/m", None), "v0.4.0-rc.1");
    }

    #[test]
    fn v1_preferred_over_v0_and_release_over_prerelease() {
        let mut r = Repo::new();
        let c = r.commit();
        r.light("v0.9.0", c);
        r.light("v1.0.0-rc.1", c);
        r.light("v1.0.0", c);
        assert_eq!(r.version("example.com/m", None), "v1.0.0");
    }

    #[test]
    fn earlier_release_tag_gives_patch_bump() {
        let mut r = Repo::new();
        let a = r.commit();
        r.annotated("v1.2.3", a);
        let b = r.commit();
        r.light("v1.1.0", b); // lower, on an earlier commit too: highest reachable wins
        r.commit();
        let ts = "20200913123000"; // third commit: T1 + 200
        assert_eq!(
            r.version("example.com/m", None),
            format!("v1.2.4-0.{ts}-{}", r.sha12())
        );
    }

    #[test]
    fn earlier_prerelease_tag() {
        let mut r = Repo::new();
        let a = r.commit();
        r.light("v2.0.0-beta.1", a);
        r.commit();
        assert_eq!(
            r.version("example.com/m/v2", None),
            format!("v2.0.0-beta.1.0.20200913122820-{}", r.sha12())
        );
    }

    #[test]
    fn no_tag() {
        let mut r = Repo::new();
        r.commit();
        assert_eq!(
            r.version("example.com/m", None),
            format!("v0.0.0-{TS1}-{}", r.sha12())
        );
        assert_eq!(
            r.version("example.com/m/v3", None),
            format!("v3.0.0-{TS1}-{}", r.sha12())
        );
    }

    #[test]
    fn tags_not_reachable_do_not_count() {
        let mut r = Repo::new();
        let a = r.commit();
        let b = r.commit();
        r.light("v1.5.0", b); // later than the requested commit
        let v = git_main_version(r.dir.path(), &a.to_string(), "example.com/m", None).unwrap();
        assert_eq!(v, format!("v0.0.0-{TS1}-{}", &a.to_string()[..12]));
    }

    #[test]
    fn major_version_suffix() {
        let mut r = Repo::new();
        let a = r.commit();
        r.light("v1.9.0", a);
        r.light("v2.1.0", a);
        r.light("v3.0.0", a);
        assert_eq!(r.version("example.com/m/v2", None), "v2.1.0");
        assert_eq!(r.version("example.com/m", None), "v1.9.0");
        r.commit();
        let sha = r.sha12();
        assert_eq!(
            r.version("example.com/m/v2", None),
            format!("v2.1.1-0.20200913122820-{sha}")
        );
        // no v4 tag anywhere
        assert_eq!(
            r.version("example.com/m/v4", None),
            format!("v4.0.0-20200913122820-{sha}")
        );
    }

    #[test]
    fn subdirectory_module_uses_prefixed_tags() {
        let mut r = Repo::new();
        let a = r.commit();
        r.light("v1.9.0", a); // root tag: not for the submodule
        r.annotated("sub/dir/v1.0.0", a);
        r.light("sub/v1.7.0", a); // other directory
        assert_eq!(
            r.version("example.com/m/sub/dir", Some("sub/dir")),
            "v1.0.0"
        );
        // the root module does not see prefixed tags
        assert_eq!(r.version("example.com/m", None), "v1.9.0");
        r.commit();
        assert_eq!(
            r.version("example.com/m/sub/dir", Some("sub/dir")),
            format!("v1.0.1-0.20200913122820-{}", r.sha12())
        );
    }

    #[test]
    fn missing_repository_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let git_ref = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            main_version_or_fallback(dir.path(), git_ref, "example.com/m/v2", None),
            "v2.0.0-19700101000000-0123456789ab"
        );
    }

    #[test]
    fn pure_rule() {
        let c = CommitInfo {
            id: "abcdefabcdef0123".into(),
            time: T1,
        };
        let v = |m: &str, s: Option<&str>, on: &[&str], re: &[&str]| {
            main_module_version(m, s, &c, on, re)
        };
        assert_eq!(v("x/m", None, &["v1.0.0"], &["v1.0.0"]), "v1.0.0");
        assert_eq!(
            v("x/m", None, &[], &["v0.3.0", "v0.10.0", "v0.9.9"]),
            format!("v0.10.1-0.{TS1}-abcdefabcdef")
        );
        assert_eq!(
            v(
                "x/m",
                None,
                &[],
                &["v1.0.0-rc.2", "v1.0.0-rc.10", "v0.99.0"]
            ),
            format!("v1.0.0-rc.10.0.{TS1}-abcdefabcdef")
        );
        // invalid semver ignored (leading zeros, bad pre-release)
        assert_eq!(
            v("x/m", None, &["v01.0.0", "v1.0.0-", "v1.0.0-01"], &[]),
            format!("v0.0.0-{TS1}-abcdefabcdef")
        );
        assert_eq!(v("x/m", Some("a/b"), &["a/b/v0.1.0"], &[]), "v0.1.0");
        assert_eq!(
            v("x/m", Some("a/b/"), &["a/bc/v0.1.0"], &[]),
            format!("v0.0.0-{TS1}-abcdefabcdef")
        );
        assert_eq!(module_major("x/m/v2"), Some(2));
        assert_eq!(module_major("x/m/v1"), None);
        assert_eq!(module_major("x/m/v02"), None);
        assert_eq!(module_major("x/m"), None);
    }
}
