//! yarn Berry end to end: a real Larder, a fixture npm registry (StaticServer), and the real
//! Yarn 4 (`support::clients::yarn_berry_path`). The repository's `yarn.lock` is made by that
//! Yarn against the fixture upstream (the test may run it; Larder never does): registry
//! packages (scoped, nested versions, dev), a workspace, a `patch:` with its patch file in the
//! repository and Yarn's built-in patch of `resolve`. Then `yarn install --immutable` through
//! the per-request registry with only the hand-back, and from the bundle's Yarn cache with no
//! network.

use crate::support::clients::yarn_berry;
use crate::support::npm_fixtures::{
    assert_tampered_tarball_fails, build, copy_dir, larder_for, write, write_registry,
    FixturePackage,
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

const PATCH: &str = "diff --git a/index.js b/index.js
--- a/index.js
+++ b/index.js
@@ -1 +1 @@
-module.exports = \"p@1.0.0\";
+module.exports = \"p@1.0.0 patched\";
";

pub(crate) async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let pkgs = [
        build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0")),
        build(&FixturePackage::new("b", "1.1.0")),
        build(&FixturePackage::new("b", "2.0.0")),
        build(&FixturePackage::new("@s/c", "2.0.0").dep("b", "^2.0.0")),
        build(&FixturePackage::new("d", "1.0.0")),
        build(&FixturePackage::new("p", "1.0.0")),
        build(&FixturePackage::new("resolve", "1.22.8")),
        build(&FixturePackage::new("left-pad", "1.3.0")),
        // for another system: Yarn locks it with `conditions` and no checksum
        build(&{
            let mut f = FixturePackage::new("fsx", "1.0.0");
            f.extra.insert("os".into(), json!(["darwin"]));
            f
        }),
    ];
    write_registry(&up_dir, &upstream.url, &pkgs).unwrap();

    let repo = GitRepo::new(tmp.path().join("repo"));
    let pj = json!({
        "name": "berry-app", "version": "1.2.3", "private": true,
        "workspaces": ["packages/*"],
        "dependencies": {"a": "^1.0.0", "w": "workspace:^", "resolve": "1.22.8",
                         "p": "patch:p@npm%3A1.0.0#./patches/p.patch"},
        "optionalDependencies": {"fsx": "1.0.0"},
        "devDependencies": {"@s/c": "^2.0.0"},
    });
    repo.write("package.json", &serde_json::to_string_pretty(&pj).unwrap())
        .write(
            "packages/w/package.json",
            r#"{"name":"w","version":"0.1.0","dependencies":{"d":"1.0.0"}}"#,
        )
        .write("patches/p.patch", PATCH)
        // the repository's own settings: one kept (nodeLinker), its registry replaced
        .write(
            ".yarnrc.yml",
            &format!(
                "nodeLinker: node-modules\nnpmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - 127.0.0.1\n",
                upstream.url
            ),
        );
    // the lockfile, as Yarn 4 makes it against the fixture upstream
    let gen = tmp.path().join("generate");
    copy_dir(&repo.dir, &gen);
    // Yarn 4.18 quarantines versions younger than a day by their packument's `time`, which the
    // fixture's have not
    let rc = fs::read_to_string(gen.join(".yarnrc.yml")).unwrap();
    write(
        &gen.join(".yarnrc.yml"),
        format!("{rc}npmMinimalAgeGate: 0\n"),
    );
    let (ok, out) = yarn_berry(&gen, &tmp.path().join("home-generate"), &["install"]);
    assert!(ok, "yarn install (making the lockfile) failed:\n{out}");
    let lock = fs::read_to_string(gen.join("yarn.lock")).unwrap();
    assert!(lock.contains("__metadata"), "{lock}");
    repo.write("yarn.lock", &lock);
    let commit = repo.commit("berry app");
    Fixture {
        tmp,
        upstream,
        repo,
        commit,
    }
}

/// What was installed in `dir`: `<path below node_modules>@<version>`, sorted (links to
/// workspaces left out).
fn installed(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let nm = dir.join("node_modules");
    let pjs = crate::support::npm_fixtures::files_under(&nm)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "package.json"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == ".cache"));
    for p in pjs {
        let rel = p
            .strip_prefix(&nm)
            .unwrap()
            .parent()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        out.push(format!("{rel}@{}", v["version"].as_str().unwrap_or("?")));
    }
    out.sort();
    out
}

pub(crate) fn assert_installed(dir: &Path, out: &str) {
    let got = installed(dir);
    for want in [
        "@s/c@2.0.0",
        "a@1.0.0",
        "d@1.0.0",
        "p@1.0.0",
        "resolve@1.22.8",
    ] {
        assert!(got.iter().any(|g| g == want), "{want} in {got:?}\n{out}");
    }
    // where each b goes is the linker's choice
    for b in ["b@1.1.0", "b@2.0.0"] {
        assert!(
            got.iter().any(|g| g == b || g.ends_with(&format!("/{b}"))),
            "{b} in {got:?}"
        );
    }
    let p = fs::read_to_string(dir.join("node_modules/p/index.js")).unwrap();
    assert!(
        p.contains("patched"),
        "the repository's patch is applied: {p}"
    );
}

/// The graph of the Berry package directory `dir` from its files alone
/// ([`sbom::graph_by_keys`]): each entry's `dependencies` and `peerDependencies` are
/// descriptors (a peer's bare range is Berry's `npm:` one; a patch's descriptor is bound to
/// its parent with `::`, which the parent's reference leaves out), the workspaces' references
/// are the package's.
fn lockfile_graph(
    dir: &Path,
    component: impl Fn(&str, &str) -> Option<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let pj: Value = serde_json::from_slice(&fs::read(dir.join("package.json")).unwrap()).unwrap();
    let lock: serde_yaml::Mapping =
        serde_yaml::from_str(&fs::read_to_string(dir.join("yarn.lock")).unwrap()).unwrap();
    let mut entries = Vec::new();
    for (key, entry) in &lock {
        let key = key.as_str().unwrap();
        if key == "__metadata" {
            continue;
        }
        let mut keys = Vec::new();
        for descriptor in key.split(", ") {
            keys.push(descriptor.to_string());
            if let Some((unbound, _)) = descriptor.split_once("::") {
                keys.push(unbound.to_string());
            }
        }
        let resolution = entry["resolution"].as_str().unwrap();
        let at = resolution[1..].find('@').unwrap() + 1;
        let (name, reference) = (&resolution[..at], &resolution[at + 1..]);
        let mut references = Vec::new();
        for (kind, bare) in [("dependencies", ""), ("peerDependencies", "npm:")] {
            for (n, r) in entry[kind].as_mapping().into_iter().flatten() {
                let r = r.as_str().unwrap();
                let protocol = if r.contains(':') { "" } else { bare };
                references.push(format!("{}@{protocol}{r}", n.as_str().unwrap()));
            }
        }
        let version = entry["version"].as_str().unwrap_or_default();
        entries.push(sbom::KeyedEntry {
            keys,
            component: component(name, version),
            references,
            workspace: reference.starts_with("workspace:"),
        });
    }
    let package = format!(
        "{}@{}",
        pj["name"].as_str().unwrap(),
        pj["version"].as_str().unwrap()
    );
    sbom::graph_by_keys(&package, &[], &entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_registry_route_and_offline_cache_with_the_real_yarn() {
    let fx = fixture().await;
    // what Yarn 4 asks a registry for when the lockfile is there: each tarball, nothing else
    // (no packument), so the per-request registry's tarballs are all it needs
    let probe = fx.tmp.path().join("probe");
    copy_dir(&fx.repo.dir, &probe);
    fx.upstream.clear_requests();
    let (ok, out) = yarn_berry(
        &probe,
        &fx.tmp.path().join("home-probe"),
        &["install", "--immutable"],
    );
    assert!(ok, "{out}");
    let asked = fx.upstream.requests();
    assert_eq!(asked.len(), 7, "{asked:?}");
    assert!(
        asked
            .iter()
            .all(|r| r.contains("/-/") && r.ends_with(".tgz")),
        "{asked:?}"
    );

    let larder = larder_for(&fx.upstream).await;
    let id = larder
        .submit(json!({"repo": fx.repo.url(), "ref": fx.commit, "pkg_managers": ["yarn"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());

    // the report: one yarn package, dev from the workspaces' package.json roots
    let pkg = &done["packages"][0];
    assert_eq!(pkg["type"], "yarn", "{pkg}");
    assert_eq!(pkg["name"], "berry-app");
    let deps = pkg["dependencies"].as_array().unwrap();
    let dev_of = |n: &str, v: &str| {
        deps.iter()
            .find(|d| d["name"] == n && d["version"] == v)
            .unwrap_or_else(|| panic!("{n}@{v} in {pkg}"))["dev"]
            .clone()
    };
    for (n, v) in [
        ("a", "1.0.0"),
        ("b", "1.1.0"),
        ("d", "1.0.0"),
        ("p", "1.0.0"),
        ("resolve", "1.22.8"),
        ("fsx", "1.0.0"),
    ] {
        assert_eq!(dev_of(n, v), false, "{n}@{v}");
    }
    assert_eq!(dev_of("@s/c", "2.0.0"), true);
    // reached only through optionalDependencies
    let fsx = deps.iter().find(|d| d["name"] == "fsx").unwrap();
    assert_eq!(fsx["optional"], true, "{fsx}");
    let a = deps.iter().find(|d| d["name"] == "a").unwrap();
    assert!(a.get("optional").is_none_or(|o| o == false), "{a}");
    assert_eq!(dev_of("b", "2.0.0"), true);
    // the SBOM's graph is the lockfile's (and not empty: a and @s/c reach b; the workspace's
    // d and the patched p are the package's)
    let bom = sbom::valid_sboms(&larder, id).await;
    let edges = sbom::package_edges(&bom);
    let want = lockfile_graph(&fx.repo.dir, sbom::component_names(&bom));
    assert_eq!(edges, want);
    assert_eq!(edges["a@1.0.0"], BTreeSet::from(["b@1.1.0".to_string()]));
    for d in ["d@1.0.0", "p@1.0.0", "@s/c@2.0.0", "fsx@1.0.0"] {
        assert!(edges["berry-app@1.2.3"].contains(d), "{d}: {edges:?}");
    }
    let (_, manifest) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    let content = &manifest["image_contents"][0];
    let purls = |key: &str| -> Vec<String> {
        content[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["purl"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        purls("sources").contains(&"pkg:npm/%40s/c@2.0.0".to_string()),
        "{manifest}"
    );
    assert!(
        !purls("dependencies").contains(&"pkg:npm/%40s/c@2.0.0".to_string()),
        "{manifest}"
    );
    // the patched packages as their base package
    for p in [
        "pkg:npm/p@1.0.0",
        "pkg:npm/resolve@1.22.8",
        "pkg:npm/d@1.0.0",
    ] {
        assert!(
            purls("dependencies").contains(&p.to_string()),
            "{p}: {manifest}"
        );
    }
    assert_eq!(
        deps.len(),
        8,
        "workspaces and patches are not dependencies: {pkg}"
    );

    // the hand-back: .yarnrc.yml on the per-request registry, the repository's setting kept
    let cfg = larder.config_files(id).await;
    let rc = String::from_utf8(cfg["app/.yarnrc.yml"].clone()).unwrap();
    assert!(rc.contains("nodeLinker: node-modules"), "{rc}");
    assert!(rc.contains("/npm"), "{rc}");
    assert!(!rc.contains(&fx.upstream.url), "{rc}");
    assert!(rc.contains("checksumBehavior: throw"), "{rc}");

    // registry route: a checkout, only the configuration files over it, the real Yarn 4
    let work = fx.tmp.path().join("work");
    copy_dir(&fx.repo.dir, &work);
    for (p, c) in &cfg {
        write(&work.join(p.strip_prefix("app/").unwrap()), c);
    }
    fx.upstream.clear_requests();
    let home = fx.tmp.path().join("home-registry");
    let (ok, out) = yarn_berry(&work, &home, &["install", "--immutable"]);
    assert!(
        ok,
        "yarn install --immutable against the per-request registry failed:\n{out}\n{}",
        larder.logs()
    );
    assert_installed(&work, &out);
    assert_eq!(
        fx.upstream.requests(),
        Vec::<String>::new(),
        "nothing came from upstream"
    );

    // an undeclared package cannot be installed (it exists upstream)
    let (ok, out) = yarn_berry(&work, &home, &["add", "left-pad@1.3.0"]);
    assert!(!ok, "an undeclared package was installed:\n{out}");
    assert!(
        out.contains("left-pad@npm:1.3.0: Package not found"),
        "{out}"
    );

    // offline route: the bundle with its overlay, the commit's own yarn.lock, no network
    let bundle_bytes = larder.download(id).await.0;
    assert_app_is_commit(&bundle_bytes, &fx.repo.dir, &fx.commit);
    let bundle = untar(&bundle_bytes);
    let zips: Vec<&String> = bundle
        .keys()
        .filter(|k| k.starts_with("deps/yarn-berry/cache/") && k.ends_with(".zip"))
        .collect();
    assert_eq!(zips.len(), 8, "{zips:?}");
    // verified against the registry's published integrity: under Yarn's name for no checksum
    assert!(
        zips.iter()
            .any(|k| k.starts_with("deps/yarn-berry/cache/fsx-npm-1.0.0-")
                && k.ends_with("-10c0.zip")),
        "{zips:?}"
    );
    assert!(
        zips.iter()
            .any(|k| k.starts_with("deps/yarn-berry/cache/@s-c-npm-2.0.0-")),
        "{zips:?}"
    );
    let unpacked = fx.tmp.path().join("bundle");
    tar::Archive::new(flate2::read::MultiGzDecoder::new(&bundle_bytes[..]))
        .unpack(&unpacked)
        .unwrap();
    apply_app_overlay(&unpacked);
    let udir = unpacked.join("app");
    fx.upstream.clear_requests();
    let (ok, out) = yarn_berry(
        &udir,
        &fx.tmp.path().join("home-offline"),
        &["install", "--immutable"],
    );
    assert!(ok, "offline yarn install from the bundle failed:\n{out}");
    assert_installed(&udir, &out);
    assert_eq!(fx.upstream.requests(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_tampered_tarball_fails_naming_the_package_and_stores_nothing() {
    let fx = fixture().await;
    let up_dir = fx.tmp.path().join("upstream");
    assert_tampered_tarball_fails(&up_dir, &fx.upstream, &fx.repo, &fx.commit, "yarn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_changed_tarball_content_fails_the_zip_checksum() {
    let fx = fixture().await;
    // other bytes inside a well-formed tarball: only the rebuilt zip's checksum can tell
    let changed = build(&FixturePackage::new("d", "1.0.0").dep("evil", "1"));
    let up_dir = fx.tmp.path().join("upstream");
    fs::write(up_dir.join("d/-/d-1.0.0.tgz"), &changed.tgz).unwrap();
    let larder = larder_for(&fx.upstream).await;
    larder
        .fails_as_client_error(
            json!({"repo": fx.repo.url(), "ref": fx.commit, "pkg_managers": ["yarn"]}),
            "The checksum of d@1.0.0",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_unpinned_git_dependency_is_a_clear_client_error() {
    let tmp = tempfile::tempdir().unwrap();
    let up = StaticServer::start(tmp.path()).await;
    let repo = GitRepo::new(tmp.path().join("repo"));
    repo.write("package.json", r#"{"name":"x","version":"1.0.0"}"#)
        .write(
            "yarn.lock",
            "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n\"g@https://github.com/u/g.git#main\":\n  version: 1.0.0\n  resolution: \"g@https://github.com/u/g.git#main\"\n  languageName: node\n  linkType: hard\n",
        );
    let commit = repo.commit("berry");
    let larder = larder_for(&up).await;
    larder
        .fails_as_client_error(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["yarn"]}),
            "The git dependency g@https://github.com/u/g.git#main must be resolved at a full 40-character commit id",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_http_tarball_without_a_zip_checksum_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let up = StaticServer::start(tmp.path()).await;
    let larder = larder_for(&up).await;
    let repo = GitRepo::new(tmp.path().join("repo"));
    let entry = "\"t@https://h.example/t.tgz\":\n  version: 1.0.0\n  resolution: \"t@https://h.example/t.tgz\"\n";
    for (lock, reason) in [
        (
            format!("__metadata:\n  version: 8\n  cacheKey: 10c0\n\n{entry}  languageName: node\n  linkType: hard\n"),
            "The http(s) tarball dependency t@https://h.example/t.tgz has no checksum",
        ),
        (
            format!("__metadata:\n  version: 6\n  cacheKey: 8\n\n{entry}  checksum: abc\n  languageName: node\n  linkType: hard\n"),
            "the lockfile's cache key is \"8\"",
        ),
    ] {
        repo.write("package.json", r#"{"name":"x","version":"1.0.0"}"#)
            .write("yarn.lock", &lock);
        let commit = repo.commit("berry");
        larder
            .fails_as_client_error(
                json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["yarn"]}),
                reason,
            )
            .await;
    }
}

/// An http(s) tarball (locked by Yarn 4 against the fixture upstream) and a git dependency
/// from a local repository (Yarn 4 cannot lock a `git+file:` URL: its entry is written as
/// Yarn writes a git entry, with a checksum Larder does not check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_https_tarball_and_git_dependency_with_the_real_yarn() {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let pkgs = [
        build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0")),
        build(&FixturePackage::new("b", "1.1.0")),
    ];
    write_registry(&up_dir, &upstream.url, &pkgs).unwrap();
    let t = build(&FixturePackage::new("t", "1.0.0"));
    write(&up_dir.join("dl/t-1.0.0.tgz"), &t.tgz);
    let turl = format!("{}/dl/t-1.0.0.tgz", upstream.url);

    let g = GitRepo::new(tmp.path().join("gdep"));
    g.write(
        "package.json",
        r#"{"name":"zz-git","version":"0.3.0","main":"index.js"}"#,
    )
    .write("index.js", "module.exports = 'zz-git';\n");
    let sha = g.commit("gdep");
    let gspec = format!("git+file://{}#commit={sha}", g.url());

    let repo = GitRepo::new(tmp.path().join("repo"));
    let mut pj = json!({"name": "berry-remote", "version": "1.0.0", "private": true,
                        "dependencies": {"a": "^1.0.0", "t": turl}});
    repo.write("package.json", &serde_json::to_string_pretty(&pj).unwrap())
        .write(
            ".yarnrc.yml",
            &format!(
                "nodeLinker: node-modules\nnpmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - 127.0.0.1\n",
                upstream.url
            ),
        );
    let gen = tmp.path().join("generate");
    copy_dir(&repo.dir, &gen);
    let rc = fs::read_to_string(gen.join(".yarnrc.yml")).unwrap();
    write(
        &gen.join(".yarnrc.yml"),
        format!("{rc}npmMinimalAgeGate: 0\n"),
    );
    let (ok, out) = yarn_berry(&gen, &tmp.path().join("home-generate"), &["install"]);
    assert!(ok, "yarn install (making the lockfile) failed:\n{out}");
    let lock = fs::read_to_string(gen.join("yarn.lock")).unwrap();
    assert!(
        lock.contains(&format!("resolution: \"t@{turl}\"")),
        "{lock}"
    );
    // the git dependency, by hand: last among the workspace's dependencies and the entries
    let tdep = format!("    t: \"{turl}\"\n");
    assert!(lock.contains(&tdep), "{lock}");
    let lock = lock.replacen(&tdep, &format!("{tdep}    zz-git: \"{gspec}\"\n"), 1)
        + &format!(
            "\n\"zz-git@{gspec}\":\n  version: 0.3.0\n  resolution: \"zz-git@{gspec}\"\n  checksum: 10c0/{}\n  languageName: node\n  linkType: hard\n",
            "0".repeat(128)
        );
    pj["dependencies"]["zz-git"] = json!(gspec);
    repo.write("package.json", &serde_json::to_string_pretty(&pj).unwrap())
        .write("yarn.lock", &lock);
    let commit = repo.commit("remote sources");

    let larder = larder_for(&upstream).await;
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["yarn"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let (_, manifest) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    let purls: Vec<String> = manifest["image_contents"][0]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["purl"].as_str().unwrap().to_string())
        .collect();
    let has = |f: &dyn Fn(&String) -> bool| purls.iter().any(f);
    assert!(
        has(&|p| p.starts_with("pkg:generic/t?download_url=") && p.contains("t-1.0.0.tgz")),
        "{purls:?}"
    );
    assert!(
        has(&|p| p.starts_with("pkg:generic/zz-git?vcs_url=") && p.contains(&sha)),
        "{purls:?}"
    );
    assert!(has(&|p| p == "pkg:npm/a@1.0.0"), "{purls:?}");

    // the hand-back: the yarn.lock's http(s) and git entries on the per-request registry
    let cfg = larder.config_files(id).await;
    let handed = String::from_utf8(cfg["app/yarn.lock"].clone()).unwrap();
    assert!(
        !handed.contains(&format!("resolution: \"t@{turl}\"")),
        "{handed}"
    );
    assert!(handed.contains(&format!("\"zz-git@{gspec}\":")), "{handed}");
    assert!(
        handed.contains(&format!(
            "/npm/zz-git/-/gdep-external-gitcommit-{sha}.tgz\""
        )),
        "{handed}"
    );
    assert!(!cfg.contains_key("app/package.json"), "{:?}", cfg.keys());

    let work = tmp.path().join("work");
    copy_dir(&repo.dir, &work);
    for (p, c) in &cfg {
        write(&work.join(p.strip_prefix("app/").unwrap()), c);
    }
    upstream.clear_requests();
    let (ok, out) = yarn_berry(
        &work,
        &tmp.path().join("home-registry"),
        &["install", "--immutable"],
    );
    assert!(
        ok,
        "yarn install --immutable against the per-request registry failed:\n{out}\n{}",
        larder.logs()
    );
    let remote_installed = |dir: &Path, out: &str| {
        let got = installed(dir);
        for want in ["a@1.0.0", "b@1.1.0", "t@1.0.0", "zz-git@0.3.0"] {
            assert!(got.iter().any(|g| g == want), "{want} in {got:?}\n{out}");
        }
        let js = fs::read_to_string(dir.join("node_modules/zz-git/index.js")).unwrap();
        assert!(js.contains("'zz-git'"), "{js}");
    };
    remote_installed(&work, &out);
    assert_eq!(
        upstream.requests(),
        Vec::<String>::new(),
        "nothing from upstream"
    );

    // offline: the bundle's cache, the overlay's yarn.lock (its git entry on Larder's pack)
    let bundle_bytes = larder.download(id).await.0;
    let unpacked = tmp.path().join("bundle");
    tar::Archive::new(flate2::read::MultiGzDecoder::new(&bundle_bytes[..]))
        .unpack(&unpacked)
        .unwrap();
    apply_app_overlay(&unpacked);
    let udir = unpacked.join("app");
    let (ok, out) = yarn_berry(
        &udir,
        &tmp.path().join("home-offline"),
        &["install", "--immutable"],
    );
    assert!(ok, "offline yarn install from the bundle failed:\n{out}");
    remote_installed(&udir, &out);
    assert_eq!(upstream.requests(), Vec::<String>::new());

    // another tarball at the URL: its zip does not have the lockfile's checksum
    let other = build(&FixturePackage::new("t", "1.0.0").dep("evil", "1"));
    write(&up_dir.join("dl/t-1.0.0.tgz"), &other.tgz);
    let larder = larder_for(&upstream).await;
    larder
        .fails_as_client_error(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["yarn"]}),
            &format!("The checksum of t@{turl}"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_compressed_cache_key_is_verified_by_published_integrity_without_an_offline_cache(
) {
    let fx = fixture().await;
    // as Yarn 3 writes it: compressed zips (cache key 8), bare checksums Larder cannot rebuild
    let lock = fs::read_to_string(fx.repo.dir.join("yarn.lock")).unwrap();
    let old = lock
        .replace("cacheKey: 10c0", "cacheKey: 8")
        .replace("checksum: 10c0/", "checksum: ");
    assert_ne!(lock, old);
    fx.repo.write("yarn.lock", &old);
    let commit = fx.repo.commit("a Yarn 3 lockfile");
    let larder = larder_for(&fx.upstream).await;
    let id = larder
        .submit(json!({"repo": fx.repo.url(), "ref": commit, "pkg_managers": ["yarn"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let cfg = larder.config_files(id).await;
    assert!(cfg.contains_key("app/.yarnrc.yml"), "{:?}", cfg.keys());
    let bundle = untar(&larder.download(id).await.0);
    assert!(
        !bundle
            .keys()
            .any(|k| k.starts_with("deps/yarn-berry/") || k.starts_with("deps/app-overlay/")),
        "no offline route: {:?}",
        bundle.keys()
    );
    // a changed tarball now fails against the registry's published integrity
    let changed = build(&FixturePackage::new("d", "1.0.0").dep("evil", "1"));
    fs::write(fx.tmp.path().join("upstream/d/-/d-1.0.0.tgz"), &changed.tgz).unwrap();
    let larder = larder_for(&fx.upstream).await;
    larder
        .fails_as_client_error(
            json!({"repo": fx.repo.url(), "ref": commit, "pkg_managers": ["yarn"]}),
            "d@1.0.0",
        )
        .await;
}
