//! One requested pnpm package directory (the workspace root pnpm runs in): its
//! `pnpm-lock.yaml` read ([`super::lockfile`]) and turned into npm's lockfile entries, so that
//! npm's classification, plan, fetch and registry artifacts serve pnpm unchanged
//! (`crate::pkg_managers::npm`), its graph kept as npm's [`LocationGraph`].
//!
//! What pnpm differs in, decided here:
//! - one entry per `packages` key (a package with several peer-suffixed snapshots is one
//!   tarball); its key is the entry's `location`;
//! - registry entries carry only `integrity` (the URL is the upstream registry's); a registry
//!   or tarball entry without `integrity` is refused (Hermeto only warns);
//! - git entries (`{type: git, repo, commit}`) become npm git specs (`git+<repo>#<commit>`),
//!   checked out and packed as npm packs them;
//! - `{type: directory}` entries and the importers' `link:`s are directories that must be
//!   inside the repository; the importers other than `.` are workspace packages;
//! - dev: whatever the importers' `dependencies`/`optionalDependencies` do not reach through
//!   `snapshots` (breadth first); optional: what pnpm marks `optional: true` in every snapshot
//!   of it (only optional edges reach it);
//! - the graph (the SBOM's): the importer `.`'s dependencies of every kind are the package's,
//!   another importer's are those of the workspace link to it, and each snapshot's
//!   `dependencies`/`optionalDependencies` are its package's (the peer suffix cut: one
//!   package, one reported dependency, whatever peers it was resolved with).

use super::lockfile::{
    self, dep_path, package_key, split_key, DirectDep, PnpmLockError, Resolution, SnapshotGraph,
    PNPM_LOCK,
};
use crate::pkg_managers::limits::MAX_LOCKFILE_BYTES;
use crate::pkg_managers::npm::lockfile::{
    check_project_dir, open_limited, rel_display, LocationGraph, LockEntry, Lockfile,
    LockfileError, Project,
};
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
    PnpmLock(#[from] PnpmLockError),
    #[error(transparent)]
    Limit(#[from] crate::pkg_managers::limits::LimitError),
    #[error("The dependency {label} in {file} has no integrity value; Larder verifies every registry and tarball dependency against the lockfile (pnpm records it for registry packages, but pnpm 9 and 10 write none for a tarball URL: add `integrity: sha512-…` to its resolution, which pnpm then verifies too, or depend on the registry package)")]
    NoIntegrity { label: String, file: String },
    #[error("The workspace link {name}: link:{target} of the importer {importer:?} in {file} leads outside the repository")]
    LinkOutside {
        name: String,
        target: String,
        importer: String,
        file: String,
    },
}

impl Classify for ProjectError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProjectError::Lockfile(e) => e.kind(),
            ProjectError::PnpmLock(e) => e.kind(),
            ProjectError::Limit(e) => e.kind(),
            ProjectError::NoIntegrity { .. } => ErrorKind::InvalidChecksum,
            ProjectError::LinkOutside { .. } => ErrorKind::ValidationError,
        }
    }
}

/// Read the package directory at `path`: an npm [`Project`] whose lockfile entries are the
/// pnpm lockfile's packages, importers and links, with its graph.
pub fn read_project(app_dir: &Path, path: &RepoPath) -> Result<Project, ProjectError> {
    let checked = check_project_dir(app_dir, path, "pnpm", &[PNPM_LOCK])?;
    let display = rel_display(path, PNPM_LOCK);
    let mut text = String::new();
    open_limited(&checked.dir.join(PNPM_LOCK), &display, MAX_LOCKFILE_BYTES)?
        .read_to_string(&mut text)
        .map_err(|e| LockfileError::Io {
            file: display.clone(),
            reason: e.to_string(),
        })?;
    let lock = lockfile::parse(&text, &display)?;
    drop(text);
    let (entries, graph) = entries_and_graph(lock, &display)?;
    Ok(Project {
        path: path.clone(),
        dir: checked.dir,
        package_json: checked.package_json,
        lockfile: Lockfile {
            file_name: PNPM_LOCK,
            lockfile_version: 9,
            name: None,
            version: None,
            entries,
            graph: Some(graph),
        },
    })
}

/// The npm entries of a parsed lockfile (packages in key order, then the workspace's links and
/// importers) and its graph between their locations.
pub fn entries_and_graph(
    lock: lockfile::PnpmLock,
    file: &str,
) -> Result<(Vec<LockEntry>, LocationGraph), ProjectError> {
    let packages = lock.packages.map(|m| m.0).unwrap_or_default();
    let snapshots = lock.snapshots.map(|m| m.0).unwrap_or_default();
    let importers = lock.importers.map(|m| m.0).unwrap_or_default();
    crate::pkg_managers::limits::check_entries(file, packages.len().max(snapshots.len()))?;

    let mut snapshot_graph = SnapshotGraph::default();
    let mut graph = LocationGraph::default();
    // links: (name, target relative to the package directory, dev)
    let mut links: BTreeMap<(String, String), bool> = BTreeMap::new();
    for (importer, i) in &importers {
        let mut direct = Vec::new();
        // the locations of its entries: a package's key, a link's target
        let mut direct_locations = BTreeSet::new();
        let groups = [
            (&i.dependencies, false),
            (&i.optional_dependencies, false),
            (&i.dev_dependencies, true),
        ];
        for (group, dev) in groups {
            for (name, d) in group.iter().flat_map(|g| g.0.iter()) {
                match d.version.strip_prefix("link:") {
                    Some(target) => {
                        let outside = || ProjectError::LinkOutside {
                            name: name.clone(),
                            target: target.into(),
                            importer: importer.clone(),
                            file: file.into(),
                        };
                        let base = RepoPath::root().join(importer).map_err(|_| outside())?;
                        let to = base.join(target).map_err(|_| outside())?;
                        direct_locations.insert(to.to_string());
                        links
                            .entry((name.clone(), to.to_string()))
                            .and_modify(|x| *x = *x && dev)
                            .or_insert(dev);
                    }
                    None => {
                        if let Some(dep_path) = dep_path(name, &d.version) {
                            direct_locations.insert(package_key(&dep_path).to_string());
                            direct.push(DirectDep { dep_path, dev });
                        }
                    }
                }
            }
        }
        snapshot_graph.importers.insert(importer.clone(), direct);
        // a workspace package's dependencies are those of the link to it (its location)
        match importer.as_str() {
            "." => graph.roots = direct_locations,
            _ => graph
                .edges
                .entry(importer.clone())
                .or_default()
                .extend(direct_locations),
        }
    }
    // optional: pnpm marks each snapshot only optional edges reach `optional: true`; a package
    // is optional when every snapshot of it is
    let mut optional: BTreeMap<String, bool> = BTreeMap::new();
    for (key, s) in snapshots {
        optional
            .entry(package_key(&key).to_string())
            .and_modify(|o| *o = *o && s.optional)
            .or_insert(s.optional);
        let next = [&s.dependencies, &s.optional_dependencies]
            .into_iter()
            .flat_map(|g| g.iter().flat_map(|g| g.0.iter()))
            .filter_map(|(n, r)| dep_path(n, r))
            .collect::<Vec<_>>();
        let from = package_key(&key);
        let targets = graph.edges.entry(from.to_string()).or_default();
        targets.extend(
            next.iter()
                .map(|d| package_key(d))
                .filter(|to| *to != from)
                .map(str::to_string),
        );
        snapshot_graph.edges.insert(key, next);
    }
    let runtime = snapshot_graph.runtime_packages();

    let mut entries = Vec::with_capacity(packages.len() + links.len() + importers.len());
    for (key, p) in &packages {
        let bad_key = || PnpmLockError::BadKey {
            file: file.into(),
            key: key.clone(),
        };
        let (name, rest) = split_key(package_key(key)).ok_or_else(bad_key)?;
        let resolution = p.resolution.classify(file, key)?;
        let dev = !runtime.contains(key.as_str());
        let mut e = LockEntry {
            location: key.clone(),
            name: name.to_string(),
            version: p.version.clone(),
            dev,
            optional: optional.get(key).copied().unwrap_or(false),
            ..LockEntry::default()
        };
        let label = format!("{name}@{}", p.version.as_deref().unwrap_or(rest));
        let no_integrity = || ProjectError::NoIntegrity {
            label: label.clone(),
            file: file.into(),
        };
        match resolution {
            Resolution::Registry { integrity } => {
                e.version = Some(rest.to_string());
                e.integrity = Some(integrity.ok_or_else(no_integrity)?);
            }
            Resolution::Tarball { integrity, tarball } => {
                e.integrity = Some(integrity.ok_or_else(no_integrity)?);
                e.resolved = Some(tarball);
            }
            Resolution::Git { repo, commit } => {
                let spec = if repo.starts_with("git+") || repo.starts_with("git://") {
                    repo
                } else {
                    format!("git+{repo}")
                };
                e.resolved = Some(format!("{spec}#{commit}"));
            }
            Resolution::Directory { directory } => {
                // reported as npm reports a `file:` directory
                e.link = true;
                e.resolved = Some(format!("file:{directory}"));
            }
        }
        entries.push(e);
    }
    for ((name, target), dev) in links {
        entries.push(LockEntry {
            location: target.clone(),
            name,
            resolved: Some(format!("file:{target}")),
            link: true,
            dev,
            ..LockEntry::default()
        });
    }
    // the workspace packages themselves: directories of the repository, not dependencies
    for importer in importers.keys().filter(|k| k.as_str() != ".") {
        entries.push(LockEntry {
            location: importer.clone(),
            name: importer.clone(),
            local_dir: true,
            ..LockEntry::default()
        });
    }
    Ok((entries, graph))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg_managers::npm::classify::{classify, Kind};
    use crate::pkg_managers::npm::layout::{graph_of, report_graph};

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn lock(extra_packages: &str) -> String {
        format!(
            r#"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      '@s/c':
        specifier: ^2.0.0
        version: 2.0.0
      g:
        specifier: git+https://github.com/u/g.git#{SHA}
        version: git+https://github.com/u/g.git#{SHA}
      loc:
        specifier: file:./local
        version: file:local
      u:
        specifier: 1.2.0
        version: 1.2.0(react@18.2.0)
      w:
        specifier: workspace:*
        version: link:packages/w
    optionalDependencies:
      tb:
        specifier: https://cdn.example.com/t.tgz
        version: t@https://cdn.example.com/t.tgz
    devDependencies:
      d:
        specifier: 1.0.0
        version: 1.0.0

  packages/w:
    dependencies:
      react:
        specifier: 18.2.0
        version: 18.2.0
      v:
        specifier: workspace:*
        version: link:../v

packages:

  '@s/c@2.0.0':
    resolution: {{integrity: sha512-AAAA}}

  d@1.0.0:
    resolution: {{integrity: sha512-DDDD}}

  e@1.0.0:
    resolution: {{integrity: sha512-EEEE}}

  g@git+https://github.com/u/g.git#{SHA}:
    resolution: {{commit: {SHA}, repo: https://github.com/u/g.git, type: git}}
    version: 0.3.0

  loc@file:local:
    resolution: {{directory: local, type: directory}}

  react@18.2.0:
    resolution: {{integrity: sha512-RRRR}}

  t@https://cdn.example.com/t.tgz:
    resolution: {{integrity: sha512-TTTT, tarball: https://cdn.example.com/t.tgz}}
    version: 1.0.0

  u@1.2.0:
    resolution: {{integrity: sha512-UUUU}}
    peerDependencies:
      react: ^18
{extra_packages}
snapshots:

  '@s/c@2.0.0': {{}}

  d@1.0.0:
    dependencies:
      e: 1.0.0

  e@1.0.0: {{}}

  g@git+https://github.com/u/g.git#{SHA}: {{}}

  loc@file:local: {{}}

  react@18.2.0: {{}}

  t@https://cdn.example.com/t.tgz:
    optional: true

  u@1.2.0(react@18.2.0):
    dependencies:
      react: 18.2.0
"#
        )
    }

    fn project(text: &str) -> (tempfile::TempDir, Result<Project, ProjectError>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("package.json"), r#"{"name":"app"}"#).unwrap();
        std::fs::write(t.path().join(PNPM_LOCK), text).unwrap();
        for d in ["local", "packages/w", "packages/v"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        let p = read_project(t.path(), &RepoPath::root());
        (t, p)
    }

    #[test]
    fn entries_kinds_dev_and_graph() {
        let (t, p) = project(&lock(""));
        let p = p.unwrap();
        let by = |loc: &str| {
            p.lockfile
                .entries
                .iter()
                .find(|e| e.location == loc)
                .unwrap_or_else(|| panic!("{loc}"))
                .clone()
        };
        let kind = |loc: &str| classify(t.path(), &RepoPath::root(), &by(loc)).unwrap();
        assert_eq!(kind("@s/c@2.0.0"), Kind::Registry);
        assert_eq!(by("@s/c@2.0.0").name, "@s/c");
        assert_eq!(by("u@1.2.0").version.as_deref(), Some("1.2.0"));
        assert!(matches!(
            kind(&format!("g@git+https://github.com/u/g.git#{SHA}")),
            Kind::Git { .. }
        ));
        assert!(matches!(
            kind("t@https://cdn.example.com/t.tgz"),
            Kind::HttpsTarball { .. }
        ));
        assert_eq!(
            by("t@https://cdn.example.com/t.tgz").version.as_deref(),
            Some("1.0.0")
        );
        assert!(matches!(kind("loc@file:local"), Kind::Link { .. }));
        assert!(matches!(kind("packages/w"), Kind::Link { .. }));
        assert!(matches!(kind("packages/v"), Kind::Link { .. }));
        // dev: d and what only d reaches; react is reached through the peer-suffixed snapshot
        // and the workspace package
        for (loc, dev) in [
            ("d@1.0.0", true),
            ("e@1.0.0", true),
            ("react@18.2.0", false),
            ("u@1.2.0", false),
            ("t@https://cdn.example.com/t.tgz", false),
            ("packages/w", false),
        ] {
            assert_eq!(by(loc).dev, dev, "{loc}");
        }
        assert!(by("t@https://cdn.example.com/t.tgz").optional);
        assert!(!by("u@1.2.0").optional && !by("d@1.0.0").optional);
        // the graph between locations: peer suffixes cut, links by their target, a workspace
        // package's dependencies those of the link to it
        let graph = p.lockfile.graph.as_ref().unwrap();
        let set =
            |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            graph.roots,
            set(&[
                "@s/c@2.0.0",
                &format!("g@git+https://github.com/u/g.git#{SHA}"),
                "loc@file:local",
                "u@1.2.0",
                "packages/w",
                "t@https://cdn.example.com/t.tgz",
                "d@1.0.0",
            ])
        );
        assert_eq!(graph.edges["u@1.2.0"], set(&["react@18.2.0"]));
        assert_eq!(graph.edges["d@1.0.0"], set(&["e@1.0.0"]));
        assert_eq!(graph.edges["e@1.0.0"], set(&[]));
        assert_eq!(
            graph.edges["packages/w"],
            set(&["react@18.2.0", "packages/v"])
        );
    }

    #[test]
    fn graph_is_the_importers_and_snapshots_as_the_reported_purls() {
        // a diamond (a and c both reach d), an optional edge (a to ao), a dev root (t) that
        // depends on a runtime one, a package in two peer-suffixed snapshots (p), a workspace
        // package (w, its dependencies the link's) and a reference to no package (ghost)
        let text = r#"lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      a:
        specifier: ^1
        version: 1.0.0
      c:
        specifier: ^1
        version: 1.0.0(b@1.0.0)
      w:
        specifier: workspace:*
        version: link:packages/w
    optionalDependencies:
      o:
        specifier: '1'
        version: 1.0.0
    devDependencies:
      t:
        specifier: ^1
        version: 1.0.0

  packages/w:
    dependencies:
      p:
        specifier: '1'
        version: 1.0.0(b@2.0.0)

packages:

  a@1.0.0:
    resolution: {integrity: INTEGRITY}

  ao@1.0.0:
    resolution: {integrity: INTEGRITY}

  b@1.0.0:
    resolution: {integrity: INTEGRITY}

  b@2.0.0:
    resolution: {integrity: INTEGRITY}

  c@1.0.0:
    resolution: {integrity: INTEGRITY}
    peerDependencies:
      b: '*'

  d@1.1.0:
    resolution: {integrity: INTEGRITY}

  o@1.0.0:
    resolution: {integrity: INTEGRITY}

  p@1.0.0:
    resolution: {integrity: INTEGRITY}
    peerDependencies:
      b: '*'

  t@1.0.0:
    resolution: {integrity: INTEGRITY}

snapshots:

  a@1.0.0:
    dependencies:
      d: 1.1.0
    optionalDependencies:
      ao: 1.0.0

  ao@1.0.0:
    optional: true

  b@1.0.0: {}

  b@2.0.0: {}

  c@1.0.0(b@1.0.0):
    dependencies:
      b: 1.0.0
      d: 1.1.0
      ghost: 1.0.0

  d@1.1.0: {}

  o@1.0.0:
    optional: true

  p@1.0.0(b@1.0.0):
    dependencies:
      b: 1.0.0

  p@1.0.0(b@2.0.0):
    dependencies:
      b: 2.0.0

  t@1.0.0:
    dependencies:
      a: 1.0.0
"#;
        let integrity = "sha512-OP2IUU6HeYKJi3i0z4A19kHMQoLVs4Hc+DPqqxI2h/DPZHTm/vjsfC6P0b4jCMy14XizLBqvndQ+UilD7707Jw==";
        let (t, p) = project(&text.replace("INTEGRITY", integrity));
        let mut p = p.unwrap();
        let plan =
            crate::pkg_managers::npm::plan::plan(t.path(), &mut p, "https://r.example").unwrap();
        let w = "w@file:packages/w";
        assert_eq!(
            report_graph(&p, &plan, "pnpm"),
            graph_of(&[
                (".", &["a@1.0.0", "c@1.0.0", "o@1.0.0", "t@1.0.0", w]),
                ("a@1.0.0", &["ao@1.0.0", "d@1.1.0"]),
                ("ao@1.0.0", &[]),
                ("b@1.0.0", &[]),
                ("b@2.0.0", &[]),
                ("c@1.0.0", &["b@1.0.0", "d@1.1.0"]),
                ("d@1.1.0", &[]),
                ("o@1.0.0", &[]),
                ("p@1.0.0", &["b@1.0.0", "b@2.0.0"]),
                ("t@1.0.0", &["a@1.0.0"]),
                (w, &["p@1.0.0"]),
            ])
        );
    }

    #[test]
    fn refusals() {
        // no integrity: registry and tarball
        for (extra, what) in [
            ("  n@1.0.0:\n    resolution: {}\n", "n@1.0.0"),
            (
                "  n@https://x.example/n.tgz:\n    resolution: {tarball: https://x.example/n.tgz}\n    version: 1.0.0\n",
                "n@1.0.0",
            ),
        ] {
            let (_t, p) = project(&lock(extra));
            let e = p.unwrap_err();
            assert!(matches!(e, ProjectError::NoIntegrity { .. }), "{e}");
            assert!(e.to_string().contains(what), "{e}");
            assert_eq!(e.kind(), ErrorKind::InvalidChecksum);
        }
        // a directory outside the repository
        let (t, p) = project(&lock(
            "  o@file:../out:\n    resolution: {directory: ../out, type: directory}\n",
        ));
        let p = p.unwrap();
        let o = p.lockfile.entries.iter().find(|e| e.name == "o").unwrap();
        let e = classify(t.path(), &RepoPath::root(), o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationError);
        // a link outside
        let (_t, p) = project(&lock("").replace("link:../v", "link:../../../x"));
        assert!(matches!(p.unwrap_err(), ProjectError::LinkOutside { .. }));
        // unknown resolution types and git subdirectories
        let (_t, p) = project(&lock(
            "  n@1.0.0:\n    resolution: {type: variations, variants: []}\n",
        ));
        assert_eq!(p.unwrap_err().kind(), ErrorKind::UnsupportedFeature);
        let (_t, p) = project(&lock(&format!(
            "  n@git+https://h/r.git#{SHA}:\n    resolution: {{commit: {SHA}, repo: https://h/r.git, type: git, path: sub}}\n"
        )));
        assert_eq!(p.unwrap_err().kind(), ErrorKind::UnsupportedFeature);
        // lockfile v6
        let (_t, p) = project("lockfileVersion: '6.0'\n");
        let e = p.unwrap_err();
        assert!(e.to_string().contains("lockfileVersion 6.0"), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidFileFormat);
    }
}
