//! One requested yarn v1 package directory: its `yarn.lock` read ([`super::lockfile`]) and
//! turned into npm's lockfile entries, so that npm's classification, plan, fetch and registry
//! artifacts serve yarn unchanged (`crate::pkg_managers::npm`).
//!
//! What yarn v1 differs in, decided here:
//! - `resolved` carries the tarball's sha1 as its `#<hex>` fragment: without an `integrity`
//!   it is the checksum (`sha1-<base64>`), and a tarball with neither is refused;
//! - `file:`/`link:` directories have no `resolved`; a `file:` tarball's is `file:<path>`;
//! - git sources (`git+<url>#<commit>`, `https://…/x.git#<commit>`, GitHub's codeload tarballs
//!   at a commit) become npm's git specs: checked out at the full commit and packed as npm's git
//!   dependencies are (npm's classification refuses one not at a full commit);
//! - dev dependencies are not marked: whatever the package.json's `dependencies` and
//!   `optionalDependencies` do not reach through the lockfile is dev;
//! - the graph (the SBOM's): each entry's `dependencies` and `optionalDependencies`, and the
//!   package.json's dependencies of every kind (peer ones where the lockfile has them),
//!   resolved as yarn does, `name@range` to the entry with that key.

use super::graph::location_graph;
use super::lockfile::{self, Entry, YarnLockError, YARN_LOCK};
use crate::pkg_managers::limits::MAX_LOCKFILE_BYTES;
use crate::pkg_managers::npm::lockfile::{
    check_project_dir, open_limited, rel_display, LocationGraph, LockEntry, Lockfile,
    LockfileError, PackageJson, Project,
};
use common::digest::{Digest, HashAlgorithm};
use common::repo_path::RepoPath;
use common::{Classify, ErrorKind};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    #[error(transparent)]
    YarnLock(#[from] YarnLockError),
    #[error("The dependency {label} has neither an integrity value nor a #<sha1> fragment in its resolved URL; Larder verifies every tarball against the lockfile")]
    NoChecksum { label: String },
    #[error(
        "{file} line {line}: the keys of one entry name different packages ({first} and {second})"
    )]
    MixedEntry {
        file: String,
        line: usize,
        first: String,
        second: String,
    },
}

impl Classify for ProjectError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProjectError::Lockfile(e) => e.kind(),
            ProjectError::YarnLock(e) => e.kind(),
            ProjectError::NoChecksum { .. } => ErrorKind::InvalidChecksum,
            ProjectError::MixedEntry { .. } => ErrorKind::InvalidFileFormat,
        }
    }
}

/// Read the package directory at `path`: an npm [`Project`] whose lockfile entries are the
/// yarn.lock's, in its order (one per entry).
pub fn read_project(app_dir: &Path, path: &RepoPath) -> Result<Project, ProjectError> {
    let checked = check_project_dir(app_dir, path, "yarn", &[YARN_LOCK])?;
    let display = rel_display(path, YARN_LOCK);
    let mut text = String::new();
    open_limited(&checked.dir.join(YARN_LOCK), &display, MAX_LOCKFILE_BYTES)?
        .read_to_string(&mut text)
        .map_err(|e| LockfileError::Io {
            file: display.clone(),
            reason: e.to_string(),
        })?;
    let lock = lockfile::parse(&text, &display)?;
    drop(text);
    let pj = &checked.package_json;
    let by_key = key_index(&lock.entries);
    // dev: what the runtime roots do not reach; optional: what only optional edges reach
    let runtime = reached(
        &lock.entries,
        &by_key,
        [&pj.dependencies, &pj.optional_dependencies],
        true,
    );
    let required = reached(
        &lock.entries,
        &by_key,
        [&pj.dependencies, &pj.dev_dependencies],
        false,
    );
    let entries = lock
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut entry = to_npm_entry(e, !runtime.contains(&i), &display)?;
            entry.optional = !required.contains(&i);
            Ok(entry)
        })
        .collect::<Result<Vec<_>, ProjectError>>()?;
    let graph = graph(&lock.entries, &entries, &by_key, pj);
    Ok(Project {
        path: path.clone(),
        dir: checked.dir,
        package_json: checked.package_json,
        lockfile: Lockfile {
            file_name: YARN_LOCK,
            lockfile_version: 1,
            name: None,
            version: None,
            entries,
            graph: Some(graph),
        },
    })
}

/// Each entry's index by every key of it (`name@range`).
fn key_index(entries: &[Entry]) -> BTreeMap<String, usize> {
    entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.keys.iter().map(move |k| (k.text(), i)))
        .collect()
}

/// The lockfile's graph between the npm entries' locations (`npm_entries[i]` is `entries[i]`).
fn graph(
    entries: &[Entry],
    npm_entries: &[LockEntry],
    by_key: &BTreeMap<String, usize>,
    pj: &PackageJson,
) -> LocationGraph {
    let locations: Vec<Option<String>> = npm_entries
        .iter()
        .map(|e| Some(e.location.clone()))
        .collect();
    let roots: Vec<(String, String)> = [
        &pj.dependencies,
        &pj.optional_dependencies,
        &pj.dev_dependencies,
        &pj.peer_dependencies,
    ]
    .into_iter()
    .flat_map(names_of)
    .collect();
    let references = entries.iter().enumerate().flat_map(|(i, e)| {
        e.dependencies
            .iter()
            .chain(&e.optional_dependencies)
            .map(move |(n, r)| (i, n.as_str(), r.as_str()))
    });
    location_graph(
        |name, range| by_key.get(&format!("{name}@{range}")).copied(),
        &locations,
        roots.iter().map(|(n, r)| (n.as_str(), r.as_str())),
        references,
    )
}

fn names_of(v: &Option<serde_json::Value>) -> Vec<(String, String)> {
    v.as_ref()
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|r| (k.clone(), r.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The entries the package.json's `roots` reach through the lockfile's `dependencies` (and
/// `optionalDependencies` when `through_optional`).
fn reached(
    entries: &[Entry],
    by_key: &BTreeMap<String, usize>,
    roots: [&Option<serde_json::Value>; 2],
    through_optional: bool,
) -> BTreeSet<usize> {
    let mut todo: Vec<usize> = roots
        .into_iter()
        .flat_map(names_of)
        .filter_map(|(n, r)| by_key.get(&format!("{n}@{r}")).copied())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(i) = todo.pop() {
        if !seen.insert(i) {
            continue;
        }
        let e = &entries[i];
        let optional = e.optional_dependencies.iter().filter(|_| through_optional);
        for (n, r) in e.dependencies.iter().chain(optional) {
            if let Some(j) = by_key.get(&format!("{n}@{r}")) {
                todo.push(*j);
            }
        }
    }
    seen
}

/// npm's git spec (`crate::pkg_managers::npm::classify::parse_git`) of a `resolved` URL that is
/// a git source as Hermeto classifies them; None when it is not one. GitHub's codeload tarball
/// at a commit is that commit of the repository: a git checkout is verified by its id, the
/// tarball by nothing.
pub fn git_spec(resolved: &str) -> Option<String> {
    for scheme in ["https", "http"] {
        if let Some(rest) = resolved.strip_prefix(&format!("{scheme}://codeload.github.com/")) {
            let parts: Vec<&str> = rest.split('/').collect();
            return match parts.as_slice() {
                [owner, repo, "tar.gz", commit] => Some(format!("github:{owner}/{repo}#{commit}")),
                _ => Some(resolved.to_string()),
            };
        }
    }
    let base = resolved.split('#').next().unwrap_or(resolved);
    if resolved.starts_with("git+") || resolved.starts_with("git:") {
        Some(resolved.to_string())
    } else if resolved.starts_with("ssh:") || base.ends_with(".git") {
        Some(format!("git+{resolved}"))
    } else {
        None
    }
}

fn to_npm_entry(e: &Entry, dev: bool, file: &str) -> Result<LockEntry, ProjectError> {
    let first = &e.keys[0];
    let (name, _) = first.real();
    for k in &e.keys[1..] {
        let (other, _) = k.real();
        if other != name {
            return Err(ProjectError::MixedEntry {
                file: file.into(),
                line: e.line,
                first: name,
                second: other,
            });
        }
    }
    let version = e.field("version").map(str::to_string);
    let label = match &version {
        Some(v) => format!("{name}@{v}"),
        None => first.text(),
    };
    let mut out = LockEntry {
        location: first.text(),
        alias: (first.name != name).then(|| first.name.clone()),
        name,
        version,
        integrity: e.field("integrity").map(str::to_string),
        dev,
        ..LockEntry::default()
    };
    let Some(resolved) = e.field("resolved") else {
        // a `file:`/`link:` directory: no tarball
        let local = e.keys.iter().find_map(|k| {
            let (_, range) = k.real();
            let p = range
                .strip_prefix("file:")
                .or_else(|| range.strip_prefix("link:"))?;
            Some(p.to_string())
        });
        if let Some(p) = local {
            out.local_dir = true;
            out.resolved = Some(format!("file:{p}"));
            out.location = p;
        }
        return Ok(out);
    };
    if let Some(spec) = git_spec(resolved) {
        // npm's classification refuses it unless it names a full commit, which is the check:
        // an `integrity` would be of yarn's own archive of it
        out.integrity = None;
        out.resolved = Some(spec);
        return Ok(out);
    }
    let (url, fragment) = match resolved.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (resolved, None),
    };
    out.resolved = Some(url.to_string());
    if out.integrity.is_none() {
        let sha1 = fragment.and_then(|f| Digest::from_hex(HashAlgorithm::Sha1, f).ok());
        match sha1 {
            Some(d) => out.integrity = Some(d.sri()),
            None => return Err(ProjectError::NoChecksum { label }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::npm::classify::{classify, Kind};
    use crate::pkg_managers::npm::layout::{graph_of, report_graph};

    const HEAD: &str = "# yarn lockfile v1\n\n";
    const SHA1: &str = "4d9ccdbc61e8629b259fdca67e65891448d569fd";

    fn project(pj: &str, lock: &str) -> (tempfile::TempDir, Result<Project, ProjectError>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("package.json"), pj).unwrap();
        std::fs::write(t.path().join("yarn.lock"), format!("{HEAD}{lock}")).unwrap();
        let p = read_project(t.path(), &RepoPath::root());
        (t, p)
    }

    #[test]
    fn entries_dev_and_checksums() {
        let lock = format!(
            r#"a@^1.0.0:
  version "1.0.0"
  resolved "https://registry.yarnpkg.com/a/-/a-1.0.0.tgz#{SHA1}"
  dependencies:
    "@s/b" "^2.0.0"

"@s/b@^2.0.0":
  version "2.0.0"
  resolved "https://registry.npmjs.org/@s/b/-/b-2.0.0.tgz#{SHA1}"
  integrity sha512-OP2IUU6HeYKJi3i0z4A19kHMQoLVs4Hc+DPqqxI2h/DPZHTm/vjsfC6P0b4jCMy14XizLBqvndQ+UilD7707Jw==

dev-only@1:
  version "1.0.0"
  resolved "https://registry.yarnpkg.com/dev-only/-/dev-only-1.0.0.tgz#{SHA1}"

"x@npm:fecha@^4":
  version "4.2.3"
  resolved "https://cdn.example.com/fecha.tgz#{SHA1}"

"local@file:./vendor/local":
  version "0.1.0"
"#
        );
        let (t, p) = project(
            r#"{"name":"app","version":"1.0.0","dependencies":{"a":"^1.0.0","local":"file:./vendor/local"},"optionalDependencies":{"x":"npm:fecha@^4"},"devDependencies":{"dev-only":"1"}}"#,
            &lock,
        );
        std::fs::create_dir_all(t.path().join("vendor/local")).unwrap();
        let p = p.unwrap();
        let e = &p.lockfile.entries;
        assert_eq!(e.len(), 5);
        assert_eq!(
            e.iter().map(|e| e.dev).collect::<Vec<_>>(),
            [false, false, true, false, false]
        );
        // only x is reached through an optionalDependencies edge alone
        assert_eq!(
            e.iter().map(|e| e.optional).collect::<Vec<_>>(),
            [false, false, false, true, false]
        );
        assert_eq!(
            e[0].integrity.as_deref(),
            Some("sha1-TZzNvGHoYpsln9ymfmWJFEjVaf0=")
        );
        assert_eq!(
            e[0].resolved.as_deref(),
            Some("https://registry.yarnpkg.com/a/-/a-1.0.0.tgz")
        );
        assert!(e[1].integrity.as_deref().unwrap().starts_with("sha512-"));
        assert_eq!(
            (e[3].name.as_str(), e[3].alias.as_deref()),
            ("fecha", Some("x"))
        );
        assert!(e[4].local_dir);
        let kinds: Vec<Kind> = e
            .iter()
            .map(|e| classify(t.path(), &RepoPath::root(), e).unwrap())
            .collect();
        assert_eq!(kinds[0], Kind::Registry);
        assert_eq!(kinds[1], Kind::Registry);
        assert!(matches!(kinds[3], Kind::HttpsTarball { .. }));
        assert!(matches!(kinds[4], Kind::Link { .. }));
    }

    #[test]
    fn graph_resolves_each_reference_to_the_entry_with_that_key() {
        let registry = |n: &str, v: &str| {
            format!(
                "  version \"{v}\"\n  resolved \"https://registry.yarnpkg.com/{n}/-/{n}-{v}.tgz#{SHA1}\"\n"
            )
        };
        // a diamond (a and c both reach d, by two keys of one entry), an optional edge (a to
        // ao), a dev root (t) depending on a runtime one, a reference to no entry (ghost)
        let lock = [
            format!(
                "a@^1:\n{}  dependencies:\n    d \"^1\"\n  optionalDependencies:\n    ao \"1\"\n\n",
                registry("a", "1.0.0")
            ),
            format!("ao@1:\n{}\n", registry("ao", "1.0.0")),
            format!(
                "c@^1:\n{}  dependencies:\n    d \"^1.0.0\"\n    ghost \"^1\"\n\n",
                registry("c", "1.0.0")
            ),
            format!("d@^1, d@^1.0.0:\n{}\n", registry("d", "1.1.0")),
            format!("o@1:\n{}\n", registry("o", "1.0.0")),
            format!(
                "t@^1:\n{}  dependencies:\n    a \"^1\"\n",
                registry("t", "1.0.0")
            ),
        ]
        .concat();
        let (t, p) = project(
            r#"{"name":"app","dependencies":{"a":"^1","c":"^1"},"optionalDependencies":{"o":"1"},"devDependencies":{"t":"^1"},"peerDependencies":{"a":"^1","absent":"^9"}}"#,
            &lock,
        );
        let mut p = p.unwrap();
        let plan =
            crate::pkg_managers::npm::plan::plan(t.path(), &mut p, "https://r.example").unwrap();
        assert_eq!(
            report_graph(&p, &plan, "yarn"),
            graph_of(&[
                (".", &["a@1.0.0", "c@1.0.0", "o@1.0.0", "t@1.0.0"]),
                ("a@1.0.0", &["ao@1.0.0", "d@1.1.0"]),
                ("ao@1.0.0", &[]),
                ("c@1.0.0", &["d@1.1.0"]),
                ("d@1.1.0", &[]),
                ("o@1.0.0", &[]),
                ("t@1.0.0", &["a@1.0.0"]),
            ])
        );
        let dev: Vec<&str> = plan
            .deps
            .iter()
            .filter(|d| d.entry.dev)
            .map(|d| d.entry.name.as_str())
            .collect();
        assert_eq!(dev, ["t"]);
    }

    #[test]
    fn refused_sources() {
        for (resolved, what) in [
            (
                "https://registry.yarnpkg.com/a/-/a-1.0.0.tgz",
                "neither an integrity",
            ),
            (
                "https://cdn.example.com/a.tgz#nothex",
                "neither an integrity",
            ),
        ] {
            let (_t, p) = project(
                r#"{"name":"app"}"#,
                &format!("a@1:\n  version \"1.0.0\"\n  resolved \"{resolved}\"\n"),
            );
            let e = p.unwrap_err();
            assert!(e.to_string().contains(what), "{resolved}: {e}");
            assert_eq!(e.kind().origin(), common::ErrorOrigin::Client);
        }
        // git sources: checked out at a full commit, else refused
        let c = "0123456789abcdef0123456789abcdef01234567";
        for (resolved, spec) in [
            (
                format!("git+https://h/u/a.git#{c}"),
                format!("git+https://h/u/a.git#{c}"),
            ),
            (
                format!("https://h/u/a.git#{c}"),
                format!("git+https://h/u/a.git#{c}"),
            ),
            (
                format!("https://codeload.github.com/u/a/tar.gz/{c}"),
                format!("github:u/a#{c}"),
            ),
        ] {
            let (t, p) = project(
                r#"{"name":"app"}"#,
                &format!(
                    "a@1:\n  version \"1.0.0\"\n  resolved \"{resolved}\"\n  integrity sha1-x\n"
                ),
            );
            let e = &p.unwrap().lockfile.entries[0];
            assert_eq!(e.resolved.as_deref(), Some(spec.as_str()));
            assert_eq!(e.integrity, None);
            assert!(matches!(
                classify(t.path(), &RepoPath::root(), e),
                Ok(Kind::Git { .. })
            ));
        }
        let (t, p) = project(
            r#"{"name":"app"}"#,
            "a@1:\n  version \"1.0.0\"\n  resolved \"git+https://h/u/a.git#main\"\n",
        );
        let e = classify(t.path(), &RepoPath::root(), &p.unwrap().lockfile.entries[0]);
        assert!(
            e.unwrap_err().to_string().contains("pinned to a full"),
            "unpinned"
        );
        // a file: directory outside the repository
        let (t, p) = project(
            r#"{"name":"app"}"#,
            "\"x@file:../outside\":\n  version \"1.0.0\"\n",
        );
        let e = classify(t.path(), &RepoPath::root(), &p.unwrap().lockfile.entries[0]);
        assert!(e.is_err());
        let (_t, p) = project(r#"{"name":"app"}"#, "a@1, b@1:\n  version \"1.0.0\"\n");
        assert!(matches!(p, Err(ProjectError::MixedEntry { .. })));
        let (_t, p) = project(r#"{"name":"app"}"#, "__metadata:\n  version: 6\n");
        assert!(p
            .unwrap_err()
            .to_string()
            .contains("is a yarn Berry lockfile"));
    }
}
