//! pnpm end to end: a real Larder, a fixture npm registry (StaticServer), and the real pnpm 9
//! (`support::clients::pnpm_path`): `pnpm install --frozen-lockfile` through the per-request
//! registry with only the hand-back over a `git archive` of the commit, and
//! `pnpm install --offline --frozen-lockfile` from the bundle with no registry at all.

use crate::support::clients::pnpm;
use crate::support::npm_fixtures::{
    assert_tampered_tarball_fails, build, files_under, larder_for, write, write_registry,
    BuiltPackage, FixturePackage,
};
use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

pub(crate) struct Fixture {
    pub tmp: tempfile::TempDir,
    pub upstream: StaticServer,
    pub repo: GitRepo,
    pub commit: String,
}

/// An importer's dependency as pnpm writes it.
fn dep(name: &str, specifier: &str, version: &str) -> String {
    let q = |s: &str| {
        if s.starts_with('@') {
            format!("'{s}'")
        } else {
            s.to_string()
        }
    };
    format!(
        "      {}:\n        specifier: {}\n        version: {}\n",
        q(name),
        q(specifier),
        q(version)
    )
}

/// A `packages` key as pnpm writes it (scoped ones quoted).
fn key(k: &str) -> String {
    if k.starts_with('@') {
        format!("'{k}'")
    } else {
        k.to_string()
    }
}

/// A registry package's `packages` entry.
fn registry_entry(p: &BuiltPackage, extra: &str) -> String {
    format!(
        "  {}:\n    resolution: {{integrity: {}}}\n{extra}\n",
        key(&format!("{}@{}", p.name, p.version)),
        p.integrity
    )
}

/// The pnpm-lock.yaml of the fixture, as pnpm 9.15 writes it.
fn lockfile(
    pk: &Packages,
    turl: &str,
    gspec: &str,
    gurl: &str,
    gsha: &str,
    outside_dir: bool,
) -> String {
    let Packages {
        a,
        b1,
        b2,
        c,
        p,
        t,
        f,
    } = pk;
    let mut s = String::from(
        "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n",
    );
    s += &dep("a", "^1.0.0", "1.0.0");
    s += &dep("b", "^1.0.0", "1.1.0");
    s += &dep("f", "file:vendor/f-1.0.0.tgz", "file:vendor/f-1.0.0.tgz");
    s += &dep("gd", gspec, gspec);
    if outside_dir {
        s += &dep("loc", "file:../outside", "file:../outside");
    } else {
        s += &dep("loc", "file:./local", "file:local");
    }
    s += &dep("p", "1.0.0", "1.0.0(b@1.1.0)");
    s += &dep("t", turl, turl);
    s += &dep("w", "workspace:*", "link:packages/w");
    s += "    devDependencies:\n";
    s += &dep("@s/c", "^2.0.0", "2.0.0");
    s += "\n  packages/w:\n    dependencies:\n";
    s += &dep("a", "^1.0.0", "1.0.0");
    s += "\npackages:\n\n";
    s += &registry_entry(c, "");
    s += &registry_entry(a, "");
    s += &registry_entry(b1, "");
    s += &registry_entry(b2, "");
    s += &format!(
        "  f@file:vendor/f-1.0.0.tgz:\n    resolution: {{integrity: {}, tarball: file:vendor/f-1.0.0.tgz}}\n    version: 1.0.0\n\n",
        f.integrity
    );
    s += &format!(
        "  gd@{gspec}:\n    resolution: {{commit: {gsha}, repo: {gurl}, type: git}}\n    version: 0.3.0\n\n"
    );
    if outside_dir {
        s += "  loc@file:../outside:\n    resolution: {directory: ../outside, type: directory}\n\n";
    } else {
        s += "  loc@file:local:\n    resolution: {directory: local, type: directory}\n\n";
    }
    s += &registry_entry(p, "    peerDependencies:\n      b: ^1.0.0\n");
    s += &format!(
        "  t@{turl}:\n    resolution: {{integrity: {}, tarball: {turl}}}\n    version: 1.0.0\n\n",
        t.integrity
    );
    let loc = if outside_dir {
        "file:../outside"
    } else {
        "file:local"
    };
    s += &format!(
        "snapshots:\n\n  '@s/c@2.0.0':\n    dependencies:\n      b: 2.0.0\n\n  a@1.0.0:\n    dependencies:\n      b: 1.1.0\n\n  b@1.1.0: {{}}\n\n  b@2.0.0: {{}}\n\n  f@file:vendor/f-1.0.0.tgz: {{}}\n\n  gd@{gspec}: {{}}\n\n  loc@{loc}: {{}}\n\n  p@1.0.0(b@1.1.0):\n    dependencies:\n      b: 1.1.0\n\n  t@{turl}: {{}}\n"
    );
    s
}

struct Packages {
    a: BuiltPackage,
    b1: BuiltPackage,
    b2: BuiltPackage,
    c: BuiltPackage,
    p: BuiltPackage,
    t: BuiltPackage,
    f: BuiltPackage,
}

/// A registry upstream and a pnpm workspace at `sub` ("" the root) whose lockfile has registry
/// packages (scoped, dev, two versions of one, a peer-suffixed snapshot), an https tarball, a
/// `file:` tarball and a directory inside the repository, a workspace link and a git
/// dependency at a commit (a local repository); `edit` changes the lockfile text.
pub(crate) async fn fixture(sub: &str, outside_dir: bool, edit: fn(String) -> String) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let b1 = build(&FixturePackage::new("b", "1.1.0"));
    let b2 = build(&FixturePackage::new("b", "2.0.0"));
    let a = build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0"));
    let c = build(&FixturePackage::new("@s/c", "2.0.0").dep("b", "^2.0.0"));
    let mut pp = FixturePackage::new("p", "1.0.0");
    pp.extra
        .insert("peerDependencies".into(), json!({"b": "^1.0.0"}));
    let p = build(&pp);
    let left_pad = build(&FixturePackage::new("left-pad", "1.3.0"));
    write_registry(
        &up_dir,
        &upstream.url,
        &[
            a.clone(),
            b1.clone(),
            b2.clone(),
            c.clone(),
            p.clone(),
            left_pad,
        ],
    )
    .unwrap();
    let t = build(&FixturePackage::new("t", "1.0.0"));
    write(&up_dir.join("dl/t-1.0.0.tgz"), &t.tgz);
    let turl = format!("{}/dl/t-1.0.0.tgz", upstream.url);
    let f = build(&FixturePackage::new("f", "1.0.0"));

    let g = GitRepo::new(tmp.path().join("gdep"));
    g.write(
        "package.json",
        r#"{"name":"gd","version":"0.3.0","main":"index.js"}"#,
    )
    .write("index.js", "module.exports = 'gd';\n");
    let gsha = g.commit("gd");
    let gurl = format!("file://{}", g.url());
    let gspec = format!("git+{gurl}#{gsha}");

    let repo = GitRepo::new(tmp.path().join("repo"));
    let dir = if sub.is_empty() {
        String::new()
    } else {
        format!("{sub}/")
    };
    write(&repo.dir.join(format!("{dir}vendor/f-1.0.0.tgz")), &f.tgz);
    repo.write(
        &format!("{dir}local/package.json"),
        r#"{"name":"loc","version":"0.1.0"}"#,
    )
    .write(
        &format!("{dir}packages/w/package.json"),
        r#"{"name":"w","version":"0.2.0","dependencies":{"a":"^1.0.0"}}"#,
    )
    .write(
        &format!("{dir}pnpm-workspace.yaml"),
        "packages:\n  - packages/*\n",
    )
    // the repository's own settings: kept, but not its registry
    .write(
        &format!("{dir}.npmrc"),
        "registry=https://registry.invalid/\nauto-install-peers=true\n",
    );
    let loc = if outside_dir {
        "file:../outside"
    } else {
        "file:./local"
    };
    let pj = json!({
        "name": "pnpm-app", "version": "1.2.3",
        "dependencies": {"a": "^1.0.0", "b": "^1.0.0", "p": "1.0.0", "t": turl,
                         "f": "file:vendor/f-1.0.0.tgz", "loc": loc, "w": "workspace:*",
                         "gd": gspec},
        "devDependencies": {"@s/c": "^2.0.0"},
    });
    let pk = Packages {
        a,
        b1,
        b2,
        c,
        p,
        t,
        f,
    };
    let lock = edit(lockfile(&pk, &turl, &gspec, &gurl, &gsha, outside_dir));
    repo.write(
        &format!("{dir}package.json"),
        &serde_json::to_string_pretty(&pj).unwrap(),
    )
    .write(&format!("{dir}pnpm-lock.yaml"), &lock);
    let commit = repo.commit("pnpm app");
    Fixture {
        tmp,
        upstream,
        repo,
        commit,
    }
}

/// What pnpm installed: `<name>@<version>` of every package in its virtual store and every
/// top-level link of `dir`, sorted.
pub(crate) fn installed(dir: &Path) -> Vec<String> {
    let nm = dir.join("node_modules");
    let mut out: Vec<String> = files_under(&nm)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "package.json"))
        .filter_map(|p| {
            let v: Value = serde_json::from_slice(&fs::read(&p).ok()?).ok()?;
            Some(format!(
                "{}@{}",
                v["name"].as_str()?,
                v["version"].as_str().unwrap_or("?")
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(crate) const TREE: &[&str] = &[
    "@s/c@2.0.0",
    "a@1.0.0",
    "b@1.1.0",
    "b@2.0.0",
    "f@1.0.0",
    "gd@0.3.0",
    "p@1.0.0",
    "t@1.0.0",
];

/// A checkout of `commit` as `git archive` makes it, at `dst`.
fn archive_checkout(repo: &GitRepo, commit: &str, dst: &Path) {
    let file = dst.with_extension("tar");
    git(
        &repo.dir,
        &[
            "archive",
            "--format=tar",
            "-o",
            file.to_str().unwrap(),
            commit,
        ],
    );
    fs::create_dir_all(dst).unwrap();
    tar::Archive::new(fs::File::open(&file).unwrap())
        .unpack(dst)
        .unwrap();
}

/// The graph of the pnpm package directory `dir` from its lockfile alone: the importer `.`'s
/// dependencies are the package's, another importer's those of the workspace link to it, each
/// snapshot's `dependencies`/`optionalDependencies` its package's (peer suffix cut).
/// `component` names a package in the SBOM ([`sbom::component_names`]).
fn lockfile_graph(
    dir: &Path,
    component: impl Fn(&str, &str) -> Option<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let pj: Value = serde_json::from_slice(&fs::read(dir.join("package.json")).unwrap()).unwrap();
    let lock: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(dir.join("pnpm-lock.yaml")).unwrap()).unwrap();
    let split = |key: &str| -> (String, String) {
        let at = key[1..].find('@').unwrap() + 1;
        (key[..at].to_string(), key[at + 1..].to_string())
    };
    // a `packages` key's component: its `version` where it has one (a tarball, git), else the
    // key's
    let of_key = |key: &str| -> Option<String> {
        let key = key.split('(').next().unwrap();
        let (name, rest) = split(key);
        let version = lock["packages"][key]["version"].as_str().unwrap_or(&rest);
        component(&name, version)
    };
    // pnpm's dependency path of `name: version`: the version itself when it names a package
    let target = |name: &str, version: &str| -> Option<String> {
        if let Some(link) = version.strip_prefix("link:") {
            return component(name, &format!("file:{link}"));
        }
        let at = version.find('@');
        let names_package = at.is_some_and(|at| {
            at == 0
                || [':', '(']
                    .iter()
                    .all(|c| version.find(*c).is_none_or(|i| at < i))
        });
        of_key(&if names_package {
            version.to_string()
        } else {
            format!("{name}@{version}")
        })
    };
    let references = |node: &serde_yaml::Value, kinds: &[&str], versions_in: bool| {
        let mut out = BTreeSet::new();
        for kind in kinds {
            for (n, v) in node[*kind].as_mapping().into_iter().flatten() {
                let v = if versions_in { &v["version"] } else { v };
                out.extend(target(n.as_str().unwrap(), v.as_str().unwrap()));
            }
        }
        out
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in lock["packages"].as_mapping().unwrap().keys() {
        graph.extend(of_key(key.as_str().unwrap()).map(|c| (c, BTreeSet::new())));
    }
    let importer_kinds = ["dependencies", "devDependencies", "optionalDependencies"];
    for (path, importer) in lock["importers"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        let from = if path == "." {
            format!(
                "{}@{}",
                pj["name"].as_str().unwrap(),
                pj["version"].as_str().unwrap()
            )
        } else {
            let name = fs::read(dir.join(path).join("package.json")).unwrap();
            let name: Value = serde_json::from_slice(&name).unwrap();
            component(name["name"].as_str().unwrap(), &format!("file:{path}")).unwrap()
        };
        graph
            .entry(from)
            .or_default()
            .extend(references(importer, &importer_kinds, true));
    }
    for (key, snapshot) in lock["snapshots"].as_mapping().unwrap() {
        let Some(from) = of_key(key.as_str().unwrap()) else {
            continue;
        };
        let mut to = references(snapshot, &["dependencies", "optionalDependencies"], false);
        to.remove(&from);
        graph.entry(from).or_default().extend(to);
    }
    graph
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_registry_route_and_offline_install_with_the_real_pnpm() {
    let sub = "web";
    let fx = fixture(sub, false, |s| s).await;
    let larder = larder_for(&fx.upstream).await;
    let id = larder
        .submit(
            json!({"repo": fx.repo.url(), "ref": fx.commit, "pkg_managers": ["pnpm"],
                       "packages": {"pnpm": [{"path": sub}]}}),
        )
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());

    // the report: one pnpm package, dev from the importers' roots through the snapshots
    let pkg = &done["packages"][0];
    assert_eq!(pkg["type"], "pnpm", "{pkg}");
    assert_eq!(
        (&pkg["name"], &pkg["version"]),
        (&json!("pnpm-app"), &json!("1.2.3"))
    );
    let deps = pkg["dependencies"].as_array().unwrap();
    let dev_of = |n: &str, v: &str| {
        deps.iter()
            .find(|d| d["name"] == n && d["version"] == v)
            .unwrap_or_else(|| panic!("{n}@{v} in {pkg}"))["dev"]
            .clone()
    };
    assert_eq!(dev_of("a", "1.0.0"), false);
    assert_eq!(dev_of("b", "1.1.0"), false);
    assert_eq!(dev_of("p", "1.0.0"), false);
    assert_eq!(dev_of("@s/c", "2.0.0"), true);
    assert_eq!(dev_of("b", "2.0.0"), true);
    assert!(deps.iter().all(|d| d["type"] == "pnpm"), "{pkg}");
    // the SBOM's graph is the lockfile's (and not empty: the workspace package and the
    // peer-suffixed snapshot have edges)
    let bom = sbom::valid_sboms(&larder, id).await;
    let edges = sbom::package_edges(&bom);
    let want = lockfile_graph(&fx.repo.dir.join(sub), sbom::component_names(&bom));
    assert_eq!(edges, want);
    assert_eq!(edges["p@1.0.0"], BTreeSet::from(["b@1.1.0".to_string()]));
    assert!(edges["pnpm-app@1.2.3"].contains("@s/c@2.0.0"), "{edges:?}");
    let (_, manifest) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    let content = &manifest["image_contents"][0];
    let has = |k: &str, purl: &str| {
        content[k]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["purl"] == purl)
    };
    assert!(has("sources", "pkg:npm/%40s/c@2.0.0"), "{manifest}");
    assert!(!has("dependencies", "pkg:npm/%40s/c@2.0.0"), "{manifest}");
    assert!(has("dependencies", "pkg:npm/p@1.0.0"), "{manifest}");
    let purls = content["sources"].to_string();
    assert!(purls.contains("vcs_url=git%2Bfile"), "{manifest}");
    assert!(purls.contains("download_url="), "{manifest}");

    // the hand-back: .npmrc (the repository's settings kept, not its registry) and the
    // lockfile with the tarball URL and the git repository on the per-request registry
    let cfg = larder.config_files(id).await;
    let npmrc = String::from_utf8(cfg[&format!("app/{sub}/.npmrc")].clone()).unwrap();
    assert!(npmrc.contains("auto-install-peers=true"), "{npmrc}");
    assert!(!npmrc.contains("registry.invalid"), "{npmrc}");
    let lock = String::from_utf8(cfg[&format!("app/{sub}/pnpm-lock.yaml")].clone()).unwrap();
    assert!(!lock.contains("type: git"), "{lock}");
    assert!(
        !lock.contains(&format!("tarball: {}", fx.upstream.url)),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("/repos/{id}/npm/t/-/t-external-sha512-")),
        "{lock}"
    );

    // registry route: a `git archive` of the commit, only the configuration files over it
    let work = fx.tmp.path().join("work");
    archive_checkout(&fx.repo, &fx.commit, &work);
    for (p, c) in &cfg {
        write(&work.join(p.strip_prefix("app/").unwrap()), c);
    }
    let wdir = work.join(sub);
    let home = fx.tmp.path().join("home-registry");
    fx.upstream.clear_requests();
    let (ok, out) = pnpm(
        &wdir,
        &home,
        &["install", "--frozen-lockfile", "--ignore-scripts"],
    );
    assert!(
        ok,
        "pnpm install against the per-request registry failed:\n{out}\n{}",
        larder.logs()
    );
    let got = installed(&wdir);
    for want in TREE {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}\n{out}");
    }
    assert!(wdir.join("node_modules/w/package.json").is_file(), "{out}");
    assert!(
        wdir.join("node_modules/loc/package.json").is_file(),
        "{out}"
    );
    assert!(
        wdir.join("packages/w/node_modules/a/package.json")
            .is_file(),
        "{out}"
    );

    // an undeclared package cannot be installed (it exists upstream)
    let (ok, out) = pnpm(
        &wdir,
        &home,
        &[
            "add",
            "left-pad@1.3.0",
            "--workspace-root",
            "--ignore-scripts",
        ],
    );
    assert!(!ok, "an undeclared package was installed:\n{out}");
    assert!(out.contains("404") && out.contains("left-pad"), "{out}");
    assert!(out.contains(&format!("/repos/{id}/")), "{out}");

    // offline route: the bundle with its overlay, no registry reachable, an empty store
    let bundle_bytes = larder.download(id).await.0;
    assert_app_is_commit(&bundle_bytes, &fx.repo.dir, &fx.commit);
    let bundle = untar(&bundle_bytes);
    for f in [
        "a/-/a-1.0.0.tgz",
        "b/-/b-2.0.0.tgz",
        "@s/c/-/c-2.0.0.tgz",
        "p/-/p-1.0.0.tgz",
    ] {
        assert!(
            bundle.contains_key(&format!("deps/pnpm/{f}")),
            "{f}: {:?}",
            bundle.keys()
        );
    }
    let unpacked = fx.tmp.path().join("bundle");
    tar::Archive::new(flate2::read::MultiGzDecoder::new(&bundle_bytes[..]))
        .unpack(&unpacked)
        .unwrap();
    apply_app_overlay(&unpacked);
    let udir = unpacked.join("app").join(sub);
    drop(fx.upstream);
    drop(larder);
    let (ok, out) = pnpm(
        &udir,
        &fx.tmp.path().join("home-offline"),
        &[
            "install",
            "--offline",
            "--frozen-lockfile",
            "--ignore-scripts",
        ],
    );
    assert!(ok, "offline pnpm install from the bundle failed:\n{out}");
    let got = installed(&udir);
    for want in TREE {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_tampered_tarball_fails_naming_the_package_and_stores_nothing() {
    let fx = fixture("", false, |s| s).await;
    let up_dir = fx.tmp.path().join("upstream");
    assert_tampered_tarball_fails(&up_dir, &fx.upstream, &fx.repo, &fx.commit, "pnpm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_lockfiles_larder_refuses_are_clear_client_errors() {
    // a registry entry without integrity
    let fx = fixture("", false, |s| {
        let at = s.find("  a@1.0.0:\n    resolution: {integrity: ").unwrap();
        let end = at + s[at..].find("}\n").unwrap();
        format!(
            "{}  a@1.0.0:\n    resolution: {{}}{}",
            &s[..at],
            &s[end + 1..]
        )
    })
    .await;
    let larder = larder_for(&fx.upstream).await;
    let body =
        |fx: &Fixture| json!({"repo": fx.repo.url(), "ref": fx.commit, "pkg_managers": ["pnpm"]});
    larder
        .fails_as_client_error(
            body(&fx),
            "The dependency a@1.0.0 in pnpm-lock.yaml has no integrity value",
        )
        .await;
    // lockfileVersion 6
    let v6 = fixture("", false, |s| {
        s.replace("lockfileVersion: '9.0'", "lockfileVersion: '6.0'")
    })
    .await;
    larder
        .fails_as_client_error(
            body(&v6),
            "has lockfileVersion 6.0; only pnpm lockfile version 9",
        )
        .await;
    // a directory outside the repository
    let out = fixture("", true, |s| s).await;
    larder
        .fails_as_client_error(body(&out), "is outside the repository")
        .await;
}

/// A lockfile of registry entries only: the hand-back is `.npmrc` alone (the commit's own
/// lockfile serves as it is), and pnpm installs through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_registry_only_lockfile_needs_only_the_npmrc() {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let b = build(&FixturePackage::new("b", "1.1.0"));
    let a = build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0"));
    write_registry(&up_dir, &upstream.url, &[a.clone(), b.clone()]).unwrap();
    let mut lock = String::from(
        "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n",
    );
    lock += &dep("a", "^1.0.0", "1.0.0");
    lock += "\npackages:\n\n";
    lock += &registry_entry(&a, "");
    lock += &registry_entry(&b, "");
    lock += "snapshots:\n\n  a@1.0.0:\n    dependencies:\n      b: 1.1.0\n\n  b@1.1.0: {}\n";
    let repo = GitRepo::new(tmp.path().join("repo"));
    repo.write(
        "package.json",
        r#"{"name":"reg","version":"0.0.1","dependencies":{"a":"^1.0.0"}}"#,
    )
    .write("pnpm-lock.yaml", &lock);
    let commit = repo.commit("registry only");
    let larder = larder_for(&upstream).await;
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pnpm"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let cfg = larder.config_files(id).await;
    assert_eq!(
        cfg.keys().collect::<Vec<_>>(),
        ["app/.npmrc"],
        "only the .npmrc is handed back"
    );
    let work = tmp.path().join("work");
    archive_checkout(&repo, &commit, &work);
    write(&work.join(".npmrc"), &cfg["app/.npmrc"]);
    upstream.clear_requests();
    let (ok, out) = pnpm(
        &work,
        &tmp.path().join("home"),
        &["install", "--frozen-lockfile", "--ignore-scripts"],
    );
    assert!(ok, "{out}\n{}", larder.logs());
    assert_eq!(installed(&work), ["a@1.0.0", "b@1.1.0"], "{out}");
    assert_eq!(upstream.requests(), Vec::<String>::new(), "{out}");
}
