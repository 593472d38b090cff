//! npm test fixtures: npm tarballs with real sha512 integrity, a static registry tree (packuments +
//! tarballs) that `python3 -m http.server` (or any static server) can serve, and lockfiles
//! v1/v2/v3 for a given installed tree. Used by end-to-end tests and the benchmark.

#![allow(dead_code)]

use super::{Larder, StaticServer};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use worker::pkg_managers::npm::classify::{basename, tarball_path};
use worker::pkg_managers::npm::integrity::{sha1_hex, sri_sha512};
use worker::pkg_managers::npm::pack::{write_tgz, TgzEntry};

#[derive(Clone, Debug, Default)]
pub struct FixturePackage {
    pub name: String,
    pub version: String,
    pub dependencies: BTreeMap<String, String>,
    /// extra files below `package/` (package.json is generated)
    pub files: Vec<(String, Vec<u8>)>,
    /// extra package.json fields (scripts, bin, os, ...)
    pub extra: Map<String, Value>,
}

impl FixturePackage {
    pub fn new(name: &str, version: &str) -> Self {
        FixturePackage {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        }
    }
    pub fn dep(mut self, name: &str, range: &str) -> Self {
        self.dependencies.insert(name.into(), range.into());
        self
    }
    pub fn manifest(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("name".into(), json!(self.name));
        m.insert("version".into(), json!(self.version));
        if !self.dependencies.is_empty() {
            m.insert("dependencies".into(), json!(self.dependencies));
        }
        Value::Object(m)
    }
}

#[derive(Clone, Debug)]
pub struct BuiltPackage {
    pub name: String,
    pub version: String,
    pub tgz: Vec<u8>,
    pub integrity: String,
    pub shasum: String,
    pub manifest: Value,
}

impl BuiltPackage {
    pub fn tarball_path(&self) -> String {
        tarball_path(&self.name, &self.version)
    }
}

pub fn build(p: &FixturePackage) -> BuiltPackage {
    let manifest = p.manifest();
    let pj = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let index = format!(
        "module.exports = {:?};\n",
        format!("{}@{}", p.name, p.version)
    )
    .into_bytes();
    let mut entries = vec![TgzEntry {
        path: "package/package.json".into(),
        data: &pj,
        executable: false,
    }];
    let has_index = p.files.iter().any(|(f, _)| f == "index.js");
    if !has_index {
        entries.push(TgzEntry {
            path: "package/index.js".into(),
            data: &index,
            executable: false,
        });
    }
    for (f, d) in &p.files {
        entries.push(TgzEntry {
            path: format!("package/{f}"),
            data: d,
            executable: false,
        });
    }
    let tgz = write_tgz(&entries).unwrap_or_default();
    BuiltPackage {
        name: p.name.clone(),
        version: p.version.clone(),
        integrity: sri_sha512(&tgz),
        shasum: sha1_hex(&tgz),
        tgz,
        manifest,
    }
}

/// Write `<dir>/<name>/-/<basename>-<version>.tgz` and the full packument as
/// `<dir>/<name>/index.json` and `<dir>/<name>/index.html` (so `python3 -m http.server`
/// answers `GET /<name>` via its directory redirect), tarball URLs under `base_url`.
pub fn write_registry(dir: &Path, base_url: &str, pkgs: &[BuiltPackage]) -> io::Result<()> {
    let base = if base_url.ends_with('/') {
        base_url.to_string()
    } else {
        format!("{base_url}/")
    };
    let mut by_name: BTreeMap<&str, Vec<&BuiltPackage>> = BTreeMap::new();
    for p in pkgs {
        by_name.entry(&p.name).or_default().push(p);
        let f = dir.join(p.tarball_path());
        if let Some(parent) = f.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(f, &p.tgz)?;
    }
    for (name, list) in by_name {
        let mut versions = Map::new();
        let mut latest = String::new();
        for p in &list {
            let mut m = p.manifest.as_object().cloned().unwrap_or_default();
            m.insert("_id".into(), json!(format!("{}@{}", p.name, p.version)));
            m.insert(
                "dist".into(),
                json!({"tarball": format!("{base}{}", p.tarball_path()), "integrity": p.integrity, "shasum": p.shasum}),
            );
            versions.insert(p.version.clone(), Value::Object(m));
            if api::repos::npm::cmp_semver(&p.version, &latest).is_gt() {
                latest = p.version.clone();
            }
        }
        let doc = json!({"_id": name, "name": name, "dist-tags": {"latest": latest}, "versions": versions});
        let d = dir.join(name);
        fs::create_dir_all(&d)?;
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        fs::write(d.join("index.json"), &bytes)?;
        fs::write(d.join("index.html"), &bytes)?;
    }
    Ok(())
}

/// One installed node of the tree.
#[derive(Clone, Debug)]
pub struct TreeEntry {
    /// `node_modules/a` or `node_modules/a/node_modules/b`
    pub location: String,
    pub pkg: BuiltPackage,
    pub dev: bool,
    pub optional: bool,
}

/// The root project of a generated lockfile.
#[derive(Clone, Debug, Default)]
pub struct RootProject {
    pub name: String,
    pub version: String,
    pub dependencies: BTreeMap<String, String>,
    pub dev_dependencies: BTreeMap<String, String>,
}

impl RootProject {
    pub fn package_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("version".into(), json!(self.version));
        if !self.dependencies.is_empty() {
            m.insert("dependencies".into(), json!(self.dependencies));
        }
        if !self.dev_dependencies.is_empty() {
            m.insert("devDependencies".into(), json!(self.dev_dependencies));
        }
        Value::Object(m)
    }
}

fn resolved(base: &str, p: &BuiltPackage) -> String {
    let base = if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    };
    format!("{base}{}", p.tarball_path())
}

/// A lockfile (version 1, 2 or 3) for `root` and the installed `tree`, `resolved` URLs under
/// `registry` (use `https://registry.npmjs.org/` for what npm would write).
/// A repository at `dir` holding `root`'s package.json and the v3 lockfile of `tree` (with
/// registry.npmjs.org URLs), committed with the message `message`: the repository and commit.
pub fn committed_project(
    dir: PathBuf,
    root: &RootProject,
    tree: &[TreeEntry],
    message: &str,
) -> (super::GitRepo, String) {
    let lock = lockfile(3, root, tree, "https://registry.npmjs.org/");
    let repo = super::GitRepo::new(dir);
    repo.write(
        "package.json",
        &serde_json::to_string_pretty(&root.package_json()).unwrap(),
    )
    .write(
        "package-lock.json",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    let commit = repo.commit(message);
    (repo, commit)
}

pub fn lockfile(version: u32, root: &RootProject, tree: &[TreeEntry], registry: &str) -> Value {
    let mut doc = Map::new();
    doc.insert("name".into(), json!(root.name));
    doc.insert("version".into(), json!(root.version));
    doc.insert("lockfileVersion".into(), json!(version));
    doc.insert("requires".into(), json!(true));
    if version >= 2 {
        let mut pkgs = Map::new();
        pkgs.insert("".into(), root.package_json());
        for t in tree {
            let mut e = Map::new();
            e.insert("version".into(), json!(t.pkg.version));
            e.insert("resolved".into(), json!(resolved(registry, &t.pkg)));
            e.insert("integrity".into(), json!(t.pkg.integrity));
            if t.dev {
                e.insert("dev".into(), json!(true));
            }
            if t.optional {
                e.insert("optional".into(), json!(true));
            }
            for k in [
                "dependencies",
                "optionalDependencies",
                "peerDependencies",
                "bin",
                "engines",
                "os",
                "cpu",
            ] {
                if let Some(v) = t.pkg.manifest.get(k) {
                    e.insert(k.into(), v.clone());
                }
            }
            pkgs.insert(t.location.clone(), Value::Object(e));
        }
        doc.insert("packages".into(), Value::Object(pkgs));
    }
    if version <= 2 {
        // nested v1 `dependencies`
        let mut rootdeps = Map::new();
        let mut sorted: Vec<&TreeEntry> = tree.iter().collect();
        sorted.sort_by_key(|t| t.location.matches("node_modules/").count());
        for t in sorted {
            let parts: Vec<&str> = t
                .location
                .split("node_modules/")
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_end_matches('/'))
                .collect();
            let mut e = Map::new();
            e.insert("version".into(), json!(t.pkg.version));
            e.insert("resolved".into(), json!(resolved(registry, &t.pkg)));
            e.insert("integrity".into(), json!(t.pkg.integrity));
            if t.dev {
                e.insert("dev".into(), json!(true));
            }
            if t.optional {
                e.insert("optional".into(), json!(true));
            }
            if let Some(d) = t.pkg.manifest.get("dependencies") {
                e.insert("requires".into(), d.clone());
            }
            insert_nested(&mut rootdeps, &parts, Value::Object(e));
        }
        doc.insert("dependencies".into(), Value::Object(rootdeps));
    }
    Value::Object(doc)
}

fn insert_nested(map: &mut Map<String, Value>, parts: &[&str], e: Value) {
    match parts {
        [] => {}
        [last] => {
            map.insert((*last).to_string(), e);
        }
        [first, rest @ ..] => {
            if let Some(node) = map.get_mut(*first).and_then(|n| n.as_object_mut()) {
                let deps = node.entry("dependencies").or_insert_with(|| json!({}));
                if let Some(d) = deps.as_object_mut() {
                    insert_nested(d, rest, e);
                }
            }
        }
    }
}

/// A synthetic flat tree of `n` packages (`pkg-<i>` 1.0.<i>, each depending on up to two
/// earlier ones; every 10th is scoped `@fx/pkg-<i>`), the root depending on all of them.
pub fn synthetic(n: usize) -> (RootProject, Vec<TreeEntry>) {
    synthetic_with_payload(n, 0)
}

/// [`synthetic`], each package also holding `payload` bytes that do not compress (`data.bin`,
/// the same bytes for the same package every time): tarballs of a realistic size.
pub fn synthetic_with_payload(n: usize, payload: usize) -> (RootProject, Vec<TreeEntry>) {
    let name = |i: usize| {
        if i % 10 == 3 {
            format!("@fx/pkg-{i}")
        } else {
            format!("pkg-{i}")
        }
    };
    let mut root = RootProject {
        name: "bench-app".into(),
        version: "1.0.0".into(),
        ..Default::default()
    };
    let mut tree = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = FixturePackage::new(&name(i), &format!("1.0.{i}"));
        if i >= 1 {
            p = p.dep(&name(i / 2), &format!("^1.0.{}", i / 2));
        }
        if i >= 3 {
            p = p.dep(&name(i - 3), &format!("1.0.{}", i - 3));
        }
        if payload > 0 {
            // xorshift64 seeded by the package: incompressible and reproducible
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
            let data = (0..payload)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            p.files.push(("data.bin".into(), data));
        }
        let b = build(&p);
        root.dependencies
            .insert(b.name.clone(), format!("^{}", b.version));
        tree.push(TreeEntry {
            location: format!("node_modules/{}", b.name),
            pkg: b,
            dev: false,
            optional: false,
        });
    }
    (root, tree)
}

/// The basename used in tarball file names.
pub fn file_name(p: &BuiltPackage) -> String {
    format!("{}-{}.tgz", basename(&p.name), p.version)
}

/// Write `bytes` at `p`, its directories made.
pub fn write(p: &Path, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

/// A Larder (`serve`) whose npm upstream is `upstream`.
pub async fn larder_for(upstream: &StaticServer) -> Larder {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_NPM_REGISTRY".into(), upstream.url.clone());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    larder
}

/// Copy a checkout (its `.git` left out).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_name() == ".git" {
            continue;
        }
        let t = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), t).unwrap();
        }
    }
}

/// Every file below `dir` (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Tamper with `b@2.0.0` on `upstream` (served from `up_dir`), then a request of `pm` for
/// `repo` at `commit` must fail as a client error naming it, with nothing stored.
pub async fn assert_tampered_tarball_fails(
    up_dir: &Path,
    upstream: &StaticServer,
    repo: &super::GitRepo,
    commit: &str,
    pm: &str,
) {
    let tarball = up_dir.join("b/-/b-2.0.0.tgz");
    let mut bytes = fs::read(&tarball).unwrap();
    bytes.push(0);
    fs::write(&tarball, bytes).unwrap();
    let larder = larder_for(upstream).await;
    larder
        .fails_as_client_error(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": [pm]}),
            "b@2.0.0",
        )
        .await;
    let stored = files_under(&larder.data.path().join("deps/npm"));
    assert_eq!(stored, Vec::<PathBuf>::new(), "nothing is stored");
}
