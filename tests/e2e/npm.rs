//! npm end to end: a real Larder, a fixture npm registry (StaticServer over tarballs the test
//! builds, real sha512 integrity), and the real `npm ci --ignore-scripts` against the
//! per-request registry and offline from the unpacked bundle.

use crate::support::clients::{npm, npm_installed as installed};
use crate::support::npm_fixtures;
use crate::support::npm_fixtures::{
    assert_tampered_tarball_fails, build, copy_dir, files_under, larder_for, write, write_registry,
    FixturePackage, RootProject, TreeEntry,
};
use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;

/// The upstream registry and a repository whose lockfile (version `v`) uses every kind of
/// dependency: registry (nested, scoped, dev, optional, alias), a workspace (v2/v3), a git
/// dependency, an http(s) tarball and a `file:` tarball inside the repository.
pub(crate) struct Fixture {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) upstream: StaticServer,
    pub(crate) repo: GitRepo,
    commit: String,
    /// `location@version` of every package npm must install
    pub(crate) tree: Vec<String>,
}

fn entry(location: &str, pkg: &npm_fixtures::BuiltPackage, dev: bool, optional: bool) -> TreeEntry {
    TreeEntry {
        location: location.into(),
        pkg: pkg.clone(),
        dev,
        optional,
    }
}

/// Also `larder fetch-deps`'s (`fetch_deps.rs`): the same lockfiles of every kind.
pub(crate) async fn fixture(v: u32, extras: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let b1 = build(&FixturePackage::new("b", "1.1.0"));
    let b2 = build(&FixturePackage::new("b", "2.0.0"));
    let a = build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0"));
    let c = build(&FixturePackage::new("@s/c", "2.0.0").dep("b", "^2.0.0"));
    let d = build(&FixturePackage::new("d", "1.0.0"));
    let left_pad = build(&FixturePackage::new("left-pad", "1.3.0"));
    // a scoped and an unscoped package whose tarballs share one file name (any Jest project)
    let expect = build(&FixturePackage::new("expect", "29.7.0"));
    let jest_expect =
        build(&FixturePackage::new("@jest/expect", "29.7.0").dep("expect", "^29.7.0"));
    write_registry(
        &up_dir,
        &upstream.url,
        &[
            a.clone(),
            b1.clone(),
            b2.clone(),
            c.clone(),
            d.clone(),
            left_pad,
            expect.clone(),
            jest_expect.clone(),
        ],
    )
    .unwrap();
    let mut root = RootProject {
        name: "e2e-app".into(),
        version: "1.2.3".into(),
        ..Default::default()
    };
    root.dependencies.insert("a".into(), "^1.0.0".into());
    root.dev_dependencies.insert("@s/c".into(), "^2.0.0".into());
    root.dependencies
        .insert("@jest/expect".into(), "^29.7.0".into());
    let tree = vec![
        entry("node_modules/a", &a, false, false),
        entry("node_modules/b", &b1, false, false),
        entry("node_modules/@s/c", &c, true, false),
        entry("node_modules/@s/c/node_modules/b", &b2, true, false),
        entry("node_modules/d", &d, false, true),
        entry("node_modules/@jest/expect", &jest_expect, false, false),
        entry("node_modules/expect", &expect, false, false),
    ];
    let mut expect: Vec<String> = tree
        .iter()
        .map(|t| format!("{}@{}", t.location, t.pkg.version))
        .collect();
    let mut lock = npm_fixtures::lockfile(v, &root, &tree, "https://registry.npmjs.org/");
    let mut pj = root.package_json();
    pj["optionalDependencies"] = json!({"d": "^1.0.0"});
    if v >= 2 {
        lock["packages"][""]["optionalDependencies"] = json!({"d": "^1.0.0"});
    }
    let repo = GitRepo::new(tmp.path().join("repo"));
    if extras {
        // an http(s) tarball on another host than the registry
        let t = build(&FixturePackage::new("t", "1.0.0"));
        write(&up_dir.join("dl/t-1.0.0.tgz"), &t.tgz);
        let turl = format!("{}/dl/t-1.0.0.tgz", upstream.url);
        // a file: tarball inside the repository
        let f = build(&FixturePackage::new("f", "1.0.0"));
        write(&repo.dir.join("vendor/f-1.0.0.tgz"), &f.tgz);
        // a git dependency (a local repository: LARDER_ALLOW_LOCAL_REPOS=true)
        let g = GitRepo::new(tmp.path().join("gdep"));
        g.write(
            "package.json",
            r#"{"name":"gdep","version":"0.3.0","main":"index.js"}"#,
        )
        .write("index.js", "module.exports = 'gdep';\n")
        .write("test/t.js", "x")
        .write(".npmignore", "test/\n");
        let gsha = g.commit("gdep");
        let gspec = format!("git+file://{}#{gsha}", g.url());
        pj["dependencies"]["t"] = json!(turl);
        pj["dependencies"]["f"] = json!("file:vendor/f-1.0.0.tgz");
        pj["dependencies"]["gdep"] = json!(gspec);
        pj["dependencies"]["al"] = json!("npm:b@^1.0.0");
        expect.extend(
            [
                "node_modules/t@1.0.0",
                "node_modules/f@1.0.0",
                "node_modules/gdep@0.3.0",
                "node_modules/al@1.1.0",
            ]
            .map(String::from),
        );
        if v == 1 {
            let deps = lock["dependencies"].as_object_mut().unwrap();
            legacy_non_registry_deps(
                deps,
                &turl,
                &t.integrity,
                &f.integrity,
                &b1.integrity,
                &gspec,
            );
        } else {
            repo.write(
                "packages/w/package.json",
                r#"{"name":"w","version":"0.1.0","dependencies":{"a":"^1.0.0"}}"#,
            )
            .write("packages/w/index.js", "module.exports = 'w';\n");
            pj["workspaces"] = json!(["packages/w"]);
            let p = lock["packages"].as_object_mut().unwrap();
            p[""] = pj.clone();
            p.insert(
                "node_modules/t".into(),
                json!({"version": "1.0.0", "resolved": turl, "integrity": t.integrity}),
            );
            p.insert("node_modules/f".into(), json!({"version": "1.0.0", "resolved": "file:vendor/f-1.0.0.tgz", "integrity": f.integrity}));
            p.insert("node_modules/al".into(), json!({"name": "b", "version": "1.1.0", "resolved": "https://registry.npmjs.org/b/-/b-1.1.0.tgz", "integrity": b1.integrity}));
            p.insert(
                "node_modules/gdep".into(),
                json!({"version": "0.3.0", "resolved": gspec}),
            );
            p.insert(
                "node_modules/w".into(),
                json!({"resolved": "packages/w", "link": true}),
            );
            p.insert(
                "packages/w".into(),
                json!({"name": "w", "version": "0.1.0", "dependencies": {"a": "^1.0.0"}}),
            );
            if v == 2 {
                let deps = lock["dependencies"].as_object_mut().unwrap();
                legacy_non_registry_deps(
                    deps,
                    &turl,
                    &t.integrity,
                    &f.integrity,
                    &b1.integrity,
                    &gspec,
                );
                deps.insert("w".into(), json!({"version": "file:packages/w"}));
            }
        }
    }
    expect.sort();
    repo.write("package.json", &serde_json::to_string_pretty(&pj).unwrap())
        .write(
            "package-lock.json",
            &serde_json::to_string_pretty(&lock).unwrap(),
        );
    let commit = repo.commit("npm app");
    Fixture {
        tmp,
        upstream,
        repo,
        commit,
        tree: expect,
    }
}

/// The whole journey for lockfile version `v`: prefetch, report, bundle, the real `npm ci`
/// from the per-request registry and offline from the bundle.
async fn journey(v: u32, extras: bool) -> (Larder, Fixture, i64) {
    let fx = fixture(v, extras).await;
    let larder = larder_for(&fx.upstream).await;
    let id = larder
        .submit(json!({"repo": fx.repo.url(), "ref": fx.commit, "pkg_managers": ["npm"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());

    // the report: one npm package, its dependencies with `dev`
    assert_eq!(done["packages"].as_array().unwrap().len(), 1, "{done}");
    let pkg = &done["packages"][0];
    assert_eq!(
        (pkg["name"].as_str(), pkg["version"].as_str()),
        (Some("e2e-app"), Some("1.2.3"))
    );
    let dep = |n: &str| -> Vec<Value> {
        pkg["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["name"] == n)
            .cloned()
            .collect()
    };
    assert_eq!(dep("b").len(), 2, "{pkg}");
    assert_eq!(dep("@s/c")[0]["dev"], true);
    assert_eq!(dep("a")[0]["dev"], false);
    assert_eq!(dep("d").len(), 1);
    assert_eq!(dep("d")[0]["optional"], true, "{pkg}");
    assert!(dep("a")[0].get("optional").is_none(), "{pkg}");
    if extras {
        assert_eq!(dep("gdep").len(), 1, "{pkg}");
        assert_eq!(dep("t").len(), 1);
        assert_eq!(dep("f").len(), 1);
    }
    let (_, manifest) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    let purls = manifest.to_string();
    assert!(purls.contains("pkg:npm/%40s/c@2.0.0"), "{manifest}");
    assert!(purls.contains("pkg:npm/b@1.1.0"), "{manifest}");
    let (_, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    assert_eq!(env["CHROMEDRIVER_SKIP_DOWNLOAD"]["value"], "true", "{env}");

    let cfg = larder.config_files(id).await;
    assert!(cfg.contains_key("app/.npmrc"), "{:?}", cfg.keys());
    assert!(cfg.contains_key("app/package-lock.json"));
    let reg_lock = String::from_utf8(cfg["app/package-lock.json"].clone()).unwrap();
    assert!(!reg_lock.contains("registry.npmjs.org"), "{reg_lock}");
    assert!(!reg_lock.contains("git+file"), "{reg_lock}");

    // the bundle: app/ is the commit; deps/npm/… and the offline lockfile in the app overlay
    let bundle_bytes = larder.download(id).await.0;
    assert_app_is_commit(&bundle_bytes, &fx.repo.dir, &fx.commit);
    let bundle = untar(&bundle_bytes);
    assert!(
        bundle.contains_key("deps/npm/@s/c/-/c-2.0.0.tgz"),
        "{:?}",
        bundle.keys()
    );
    assert!(bundle.contains_key("deps/npm/b/-/b-2.0.0.tgz"));
    assert!(bundle.contains_key("deps/npm/expect/-/expect-29.7.0.tgz"));
    assert!(bundle.contains_key("deps/npm/@jest/expect/-/expect-29.7.0.tgz"));
    if v >= 2 {
        // the SBOM: valid; the lockfile's edges (node's resolution of each entry's declared
        // dependencies); each registry tarball's SHA-512 is the bundle file's
        let bom = crate::support::sbom::valid_sboms(&larder, id).await;
        let edges = crate::support::sbom::cyclonedx_edges(&bom);
        let set =
            |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
        assert_eq!(edges["a@1.0.0"], set(&["b@1.1.0"]), "{edges:?}");
        assert_eq!(edges["@s/c@2.0.0"], set(&["b@2.0.0"]), "{edges:?}");
        assert_eq!(
            edges["@jest/expect@29.7.0"],
            set(&["expect@29.7.0"]),
            "{edges:?}"
        );
        assert_eq!(edges["b@1.1.0"], set(&[]), "{edges:?}");
        let app = &edges["e2e-app@1.2.3"];
        for d in ["a@1.0.0", "@s/c@2.0.0", "@jest/expect@29.7.0", "d@1.0.0"] {
            assert!(app.contains(d), "{d} not an edge of the package: {edges:?}");
        }
        assert!(!app.contains("b@2.0.0"), "{edges:?}");
        let scope = |n: &str| {
            bom["components"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["purl"] == n)
                .map(|c| c["scope"].clone())
        };
        assert_eq!(scope("pkg:npm/%40s/c@2.0.0"), Some(json!("excluded")));
        assert_eq!(scope("pkg:npm/d@1.0.0"), Some(json!("optional")));
        assert_eq!(scope("pkg:npm/a@1.0.0"), Some(json!("required")));
        let hashes = crate::support::sbom::cyclonedx_hashes(&bom);
        for (file, key) in [
            ("deps/npm/b/-/b-2.0.0.tgz", "b@2.0.0"),
            ("deps/npm/a/-/a-1.0.0.tgz", "a@1.0.0"),
            ("deps/npm/@s/c/-/c-2.0.0.tgz", "@s/c@2.0.0"),
        ] {
            let bytes = bundle[file].clone().unwrap();
            let sha512 = hex::encode(<sha2::Sha512 as sha2::Digest>::digest(&bytes));
            assert!(
                hashes[key].contains(&("SHA-512".to_string(), sha512)),
                "{file}: {:?}",
                hashes[key]
            );
        }
        // a registry tarball's distribution is the configured registry's file
        let distributions = crate::support::sbom::cyclonedx_distributions(&bom);
        assert_eq!(
            distributions["@s/c@2.0.0"],
            set(&[&format!("{}/@s/c/-/c-2.0.0.tgz", fx.upstream.url)]),
            "{distributions:?}"
        );
    }
    let off_lock = String::from_utf8(
        bundle["deps/app-overlay/package-lock.json"]
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert!(
        off_lock.contains("file:../deps/npm/a/-/a-1.0.0.tgz"),
        "{off_lock}"
    );

    // registry route: the configuration files over a checkout, then the real client
    let work = fx.tmp.path().join("work");
    copy_dir(&fx.repo.dir, &work);
    for (p, c) in &cfg {
        write(&work.join(p.strip_prefix("app/").unwrap()), c);
    }
    let (ok, out) = npm(
        &work,
        &fx.tmp.path().join("home-registry"),
        &["ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        &[],
    );
    assert!(
        ok,
        "npm ci against the per-request registry failed:\n{out}\n{}",
        larder.logs()
    );
    let got = installed(&work);
    assert_eq!(got, fx.tree, "npm installs exactly the lockfile's tree");
    if extras {
        assert!(work.join("node_modules/gdep/index.js").is_file());
        assert!(
            !work.join("node_modules/gdep/test").exists(),
            ".npmignore honoured"
        );
        let al: Value =
            serde_json::from_slice(&fs::read(work.join("node_modules/al/package.json")).unwrap())
                .unwrap();
        assert_eq!(al["name"], "b");
    }

    // a tarball of the per-request registry goes out as stored (never gzipped again), with its
    // length, for the scoped one of the pair sharing a file name too
    let token = npm_token_of(&cfg["app/.npmrc"]);
    for name in ["expect", "@jest/expect"] {
        let resp = larder
            .http
            .get(format!(
                "{}/repos/{id}/npm/{name}/-/expect-29.7.0.tgz",
                larder.url
            ))
            .bearer_auth(&token)
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-encoding").is_none());
        let len: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len(), len);
        assert_eq!(
            body.to_vec(),
            fs::read(
                fx.tmp
                    .path()
                    .join(format!("upstream/{name}/-/expect-29.7.0.tgz"))
            )
            .unwrap()
        );
    }

    // offline route: the unpacked bundle with its app overlay applied (README's command), an
    // empty cache and no registry at all
    let unpacked = fx.tmp.path().join("bundle");
    gnu_untar(&bundle_bytes, &unpacked);
    apply_app_overlay(&unpacked);
    let (ok, out) = npm(
        &unpacked.join("app"),
        &fx.tmp.path().join("home-offline"),
        &[
            "ci",
            "--offline",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--registry",
            "http://127.0.0.1:9/",
        ],
        &[],
    );
    assert!(ok, "offline npm ci from the bundle failed:\n{out}");
    assert_eq!(installed(&unpacked.join("app")), fx.tree);
    (larder, fx, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_lockfile_v3_all_kinds_real_client_and_reuse() {
    let (larder, fx, id) = journey(3, true).await;
    let work = fx.tmp.path().join("work");

    // a package the lockfile does not declare cannot be installed (it exists upstream)
    let (ok, out) = npm(
        &work,
        &fx.tmp.path().join("home-registry"),
        &[
            "install",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "left-pad",
        ],
        &[],
    );
    assert!(!ok, "an undeclared package was installed:\n{out}");
    assert!(out.contains("404"), "{out}");

    // the per-request registry: packuments (scoped, abbreviated) list only the request's
    // versions; wrong token 401
    let base = format!("{}/repos/{id}/npm/", larder.url);
    let token = larder.npm_token(id).await;
    let get = |path: &str, token: &str, accept: &str| {
        larder
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .header("Accept", accept)
            .send()
    };
    let resp = get("@s%2fc", &token, "application/vnd.npm.install-v1+json")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1, "{doc}");
    let doc: Value = get("b", &token, "application/json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    versions.sort();
    assert_eq!(versions, ["1.1.0", "2.0.0"]);
    assert_eq!(
        get("left-pad", &token, "application/json")
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("b/-/b-1.1.0.tgz", &token, "*/*")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("b/-/b-1.1.0.tgz", "wrong", "*/*")
            .await
            .unwrap()
            .status(),
        401
    );

    // a second request for the same packages makes no upstream request
    fx.upstream.clear_requests();
    let id2 = larder
        .submit(json!({"repo": fx.repo.url(), "ref": fx.commit, "pkg_managers": ["npm"]}))
        .await;
    let done = larder.wait(id2).await;
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(fx.upstream.requests(), Vec::<String>::new());
    // the same bundle bytes: one blob in the store, named for both requests
    assert_eq!(larder.download(id).await.0, larder.download(id2).await.0);
    let blobs: Vec<_> = files_under(&larder.data.path().join("bundles/sha256"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");

    // the registry lockfile handed back is kept in the store by its digest, and verified
    // before it is served
    let stored = files_under(&larder.data.path().join("config-files"));
    assert_eq!(
        stored.len(),
        2,
        "one registry lockfile per request: {stored:?}"
    );
    let handed_back = larder.config_files(id).await["app/package-lock.json"].clone();
    let blob = stored
        .iter()
        .find(|p| fs::read(p).unwrap() == handed_back)
        .expect("the lockfile handed back is the stored one");
    fs::write(blob, b"{}").unwrap();
    let (status, body) = larder
        .get(&format!("/api/v1/requests/{id}/configuration-files"))
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("has changed"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_lockfile_v2_all_kinds_real_client() {
    journey(2, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_lockfile_v1_all_kinds_real_client() {
    journey(1, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_tampered_tarball_fails_naming_the_package_and_stores_nothing() {
    let fx = fixture(3, false).await;
    let up_dir = fx.tmp.path().join("upstream");
    assert_tampered_tarball_fails(&up_dir, &fx.upstream, &fx.repo, &fx.commit, "npm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_file_dependencies_inside_ok_outside_fails() {
    let fx = fixture(3, false).await;
    let larder = larder_for(&fx.upstream).await;
    let f = build(&FixturePackage::new("f", "1.0.0"));
    let lock_for = |spec: &str| {
        let mut lock: Value =
            serde_json::from_slice(&fs::read(fx.repo.dir.join("package-lock.json")).unwrap())
                .unwrap();
        lock["packages"][""]["dependencies"]["f"] = json!(spec);
        lock["packages"]["node_modules/f"] =
            json!({"version": "1.0.0", "resolved": spec, "integrity": f.integrity});
        let mut pj: Value =
            serde_json::from_slice(&fs::read(fx.repo.dir.join("package.json")).unwrap()).unwrap();
        pj["dependencies"]["f"] = json!(spec);
        (lock, pj)
    };
    write(&fx.tmp.path().join("outside/f-1.0.0.tgz"), &f.tgz);
    write(&fx.repo.dir.join("sub/vendor/f-1.0.0.tgz"), &f.tgz);
    for (spec, ok) in [
        ("file:sub/vendor/f-1.0.0.tgz", true),
        ("file:../outside/f-1.0.0.tgz", false),
    ] {
        let (lock, pj) = lock_for(spec);
        fx.repo
            .write(
                "package-lock.json",
                &serde_json::to_string_pretty(&lock).unwrap(),
            )
            .write("package.json", &serde_json::to_string_pretty(&pj).unwrap());
        let commit = fx.repo.commit(spec);
        let id = larder
            .submit(json!({"repo": fx.repo.url(), "ref": commit, "pkg_managers": ["npm"]}))
            .await;
        let done = larder.wait(id).await;
        if ok {
            assert_eq!(done["state"], "complete", "{done}");
            let bundle = untar(&larder.download(id).await.0);
            assert!(
                bundle.keys().any(|k| k.starts_with("deps/npm/file/f/")),
                "{:?}",
                bundle.keys()
            );
        } else {
            assert_eq!(done["state"], "failed", "{done}");
            assert_eq!(done["error_origin"], "client", "{done}");
            assert!(
                done["state_reason"].as_str().unwrap().contains("f@"),
                "{done}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_missing_lockfile_fails_as_client_error() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = StaticServer::start(tmp.path()).await;
    let larder = larder_for(&upstream).await;
    let repo = GitRepo::new(tmp.path().join("repo"));
    repo.write("package.json", r#"{"name":"x","version":"1.0.0"}"#);
    let commit = repo.commit("no lockfile");
    larder
        .fails_as_client_error(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"]}),
            "package-lock.json",
        )
        .await;
}

/// The legacy `dependencies` entries (lockfile v1, and mirrored in v2) of the non-registry
/// dependencies: an http tarball, a `file:` tarball, an alias and a git dependency.
fn legacy_non_registry_deps(
    deps: &mut serde_json::Map<String, serde_json::Value>,
    tarball_url: &str,
    t_integrity: &str,
    f_integrity: &str,
    b1_integrity: &str,
    git_spec: &str,
) {
    deps.insert(
        "t".into(),
        json!({"version": tarball_url, "integrity": t_integrity}),
    );
    deps.insert(
        "f".into(),
        json!({"version": "file:vendor/f-1.0.0.tgz", "integrity": f_integrity}),
    );
    deps.insert(
        "al".into(),
        json!({"version": "npm:b@1.1.0", "resolved": "https://registry.npmjs.org/b/-/b-1.1.0.tgz", "integrity": b1_integrity}),
    );
    deps.insert(
        "gdep".into(),
        json!({"version": git_spec, "from": git_spec}),
    );
}
