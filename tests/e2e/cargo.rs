//! The `cargo` package manager end to end: a real Larder, a fixture sparse registry upstream
//! (crates packed by the test, real checksums), local git repositories, and the real `cargo`
//! (fresh CARGO_HOME, no inherited CARGO_* variables, crates.io replaced: never touched).

use crate::support::cargo_fixtures::*;
use crate::support::clients::cargo;
use crate::support::sbom;
use crate::support::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A Cargo.lock's graph: `name@version -> {name@version}` (a dependency named without a
/// version is the only package of that name).
fn lockfile_edges(lock: &str) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut packages: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut in_deps = false;
    for line in lock.lines() {
        let value = |l: &str| l.split('"').nth(1).unwrap_or_default().to_string();
        if line == "[[package]]" {
            packages.push(Default::default());
            in_deps = false;
        } else if let Some(p) = packages.last_mut() {
            if line.starts_with("name = ") {
                p.0 = value(line);
            } else if line.starts_with("version = ") {
                p.1 = value(line);
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line.starts_with(" \"") {
                p.2.push(value(line));
            } else if line == "]" {
                in_deps = false;
            }
        }
    }
    let resolve = |dep: &str| -> String {
        let mut parts = dep.split(' ');
        let name = parts.next().unwrap();
        match parts.next() {
            Some(v) => format!("{name}@{v}"),
            None => {
                let (_, v, _) = packages.iter().find(|p| p.0 == name).unwrap();
                format!("{name}@{v}")
            }
        }
    };
    packages
        .iter()
        .map(|(n, v, deps)| {
            (
                format!("{n}@{v}"),
                deps.iter().map(|d| resolve(d)).collect(),
            )
        })
        .collect()
}

fn write(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A running fixture registry: the static upstream and its `sparse+` index URL.
struct Upstream {
    server: StaticServer,
    index: String,
    _dir: tempfile::TempDir,
}

async fn upstream(crates: &[BuiltCrate]) -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let server = StaticServer::start(dir.path()).await;
    write_registry(
        dir.path(),
        &format!(
            "{}/crates/{{crate}}/{{crate}}-{{version}}.crate",
            server.url
        ),
        crates,
    )
    .unwrap();
    let index = format!("sparse+{}/", server.url);
    Upstream {
        server,
        index,
        _dir: dir,
    }
}

async fn larder_for(index: &str) -> Larder {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_CRATES_INDEX".into(), index.to_string());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    larder
}

/// The files of the bundle written to `dir` (`dir/app`, `dir/deps`).
fn unpack(bytes: &[u8], dir: &Path) {
    gnu_untar(bytes, dir);
}

fn store_files_under(root: &Path, prefix: &str) -> Vec<String> {
    fn rec(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                rec(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    rec(root, &root.join(prefix), &mut out);
    out.sort();
    out
}

fn fixture_crates() -> Vec<BuiltCrate> {
    [
        FixtureCrate::new("leaf", "1.0.0", &[]).license("MIT OR Apache-2.0"),
        // cargo's deprecated separator: either licence
        FixtureCrate::new("leaf", "2.0.0", &[]).license("MIT/Apache-2.0"),
        FixtureCrate::new("mid-dle", "0.3.1", &[("leaf", "1.0.0")]).license("Apache-2.0"),
        FixtureCrate::new("ab", "0.1.0", &[("mid-dle", "0.3.1")]),
        FixtureCrate::new("undeclared", "1.0.0", &[]),
    ]
    .iter()
    .map(build_crate)
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn workspace_with_git_and_path_deps_builds_offline_and_serves_a_registry() {
    let work = tempfile::tempdir().unwrap();
    let t = work.path();
    let up = upstream(&fixture_crates()).await;
    let larder = larder_for(&up.index).await;

    // a git dependency: a workspace using inheritance, depended on at a branch
    let gitdep = GitRepo::new(t.join("gitdep"));
    gitdep
        .write("Cargo.toml", "[workspace]\nmembers = [\"gitdep\", \"other\"]\nresolver = \"2\"\n[workspace.package]\nversion = \"0.2.0\"\nedition = \"2021\"\n[workspace.dependencies]\nother = { path = \"other\", version = \"0.3.0\" }\n")
        .write("gitdep/Cargo.toml", "[package]\nname = \"gitdep\"\nversion.workspace = true\nedition.workspace = true\n\n[dependencies]\nother.workspace = true\n")
        .write("gitdep/src/lib.rs", "pub fn g() -> u64 { other::o() + 1 }\n")
        .write("other/Cargo.toml", "[package]\nname = \"other\"\nversion = \"0.3.0\"\nedition = \"2021\"\n")
        .write("other/src/lib.rs", "pub fn o() -> u64 { 1 }\n");
    let git_commit = gitdep.commit("gitdep");
    git(&gitdep.dir, &["branch", "dev"]);
    let git_url = format!("file://{}", gitdep.url());

    // the repository: two members + a path dependency inside the repository + the git dep
    let repo = GitRepo::new(t.join("repo"));
    repo.write("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"2\"\n")
        .write("crates/app/Cargo.toml", &format!("[package]\nname = \"app\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[dependencies]\nab = \"=0.1.0\"\nleaf = \"=2.0.0\"\ngitdep = {{ git = \"{git_url}\", branch = \"dev\" }}\nlocal = {{ path = \"../../libs/local\" }}\n"))
        .write("crates/app/src/lib.rs", "pub fn app() -> u64 { ab::ab() + leaf::leaf() + gitdep::g() + local::l() }\n")
        .write("crates/tool/Cargo.toml", "[package]\nname = \"tool\"\nversion = \"0.9.0\"\nedition = \"2021\"\n\n[dependencies]\nmid-dle = \"=0.3.1\"\n")
        .write("crates/tool/src/lib.rs", "pub fn t() -> u64 { mid_dle::mid_dle() }\n")
        .write("libs/local/Cargo.toml", "[package]\nname = \"local\"\nversion = \"0.5.0\"\nedition = \"2021\"\n")
        .write("libs/local/src/lib.rs", "pub fn l() -> u64 { 1 }\n")
        .write(".gitignore", "target\n");
    // the lockfile, generated by the real cargo against the fixture registry
    let home_gen = t.join("home-gen");
    write(
        &home_gen.join(".cargo/config.toml"),
        &format!(
            "[source.crates-io]\nreplace-with = \"up\"\n[source.up]\nregistry = \"{}\"\n",
            up.index
        ),
    );
    let (ok, out) = cargo(&home_gen, &repo.dir, &["generate-lockfile"], &[]);
    assert!(ok, "generate-lockfile: {out}");
    let lock_text = std::fs::read_to_string(repo.dir.join("Cargo.lock")).unwrap();
    assert!(
        lock_text.contains(&format!("?branch=dev#{git_commit}")),
        "{lock_text}"
    );
    let commit = repo.commit("app");
    up.server.clear_requests();

    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["cargo"]}))
        .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "complete", "{r}\n{}", larder.logs());
    assert!(!up.server.requests().is_empty());

    // packages: one per workspace member, with purls
    let (status, pk) = larder.get(&format!("/api/v1/requests/{id}/packages")).await;
    assert_eq!(status, 200, "{pk}");
    let pkgs = pk["packages"].as_array().unwrap();
    let names: Vec<&str> = pkgs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["app", "local", "tool"], "{pk}");
    let app = &pkgs[0];
    assert_eq!(app["type"], "cargo");
    assert_eq!(app["path"], "crates/app", "{pk}");
    let deps: Vec<&str> = app["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for d in ["ab", "gitdep", "leaf", "local", "mid-dle", "other"] {
        assert!(deps.contains(&d), "{d} missing: {pk}");
    }
    assert_eq!(pkgs[2]["path"], "crates/tool");
    // purls in the content manifest
    let (status, cm) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    assert_eq!(status, 200, "{cm}");
    let cm = cm.to_string();
    for purl in [
        "pkg:cargo/app@1.0.0",
        "pkg:cargo/tool@0.9.0",
        "pkg:cargo/ab@0.1.0",
        "pkg:cargo/mid-dle@0.3.1",
        "pkg:cargo/gitdep@0.2.0?vcs_url=git%2Bfile",
    ] {
        assert!(
            cm.contains(purl),
            "{purl} not in the content manifest: {cm}"
        );
    }

    // the bundle: app/ is the commit; vendored crates as `cargo vendor` lays them out
    let (bytes, _) = larder.download(id).await;
    assert_app_is_commit(&bytes, &repo.dir, &commit);
    let bundle = t.join("bundle");
    unpack(&bytes, &bundle);
    for d in [
        "ab-0.1.0",
        "leaf-1.0.0",
        "leaf-2.0.0",
        "mid-dle-0.3.1",
        "gitdep-0.2.0",
        "other-0.3.0",
    ] {
        assert!(
            bundle
                .join("deps/cargo")
                .join(d)
                .join(".cargo-checksum.json")
                .is_file(),
            "{d} not vendored"
        );
    }
    assert!(!bundle.join("deps/cargo/undeclared-1.0.0").exists());

    // the SBOM: valid in both formats; its graph is the lockfile's; each vendored crate's
    // SHA-256 is the one cargo checks (`.cargo-checksum.json`'s `package`)
    let bom = sbom::valid_sboms(&larder, id).await;
    let edges = sbom::cyclonedx_edges(&bom);
    let lock = lockfile_edges(&lock_text);
    for (p, deps) in &lock {
        assert_eq!(
            edges.get(p).cloned().unwrap_or_default(),
            *deps,
            "{p}'s edges in the SBOM are not the lockfile's: {bom}"
        );
    }
    assert_eq!(
        edges.keys().filter(|k| !lock.contains_key(*k)).count(),
        1,
        "only the application is outside the lockfile: {edges:?}"
    );
    let hashes = sbom::cyclonedx_hashes(&bom);
    for d in ["ab-0.1.0", "leaf-1.0.0", "leaf-2.0.0", "mid-dle-0.3.1"] {
        let checksum: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                bundle
                    .join("deps/cargo")
                    .join(d)
                    .join(".cargo-checksum.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let (name, version) = d.rsplit_once('-').unwrap();
        let want = (
            "SHA-256".to_string(),
            checksum["package"].as_str().unwrap().to_string(),
        );
        assert_eq!(
            hashes[&format!("{name}@{version}")],
            [want].into_iter().collect(),
            "{d}"
        );
    }
    // licences as the crates' Cargo.toml declare them (ab declares none), and each registry
    // crate's distribution URL is the upstream file the fetch downloaded
    let licenses = sbom::cyclonedx_licenses(&bom);
    for (crate_, license) in [
        ("leaf@1.0.0", Some("MIT OR Apache-2.0")),
        ("leaf@2.0.0", Some("MIT OR Apache-2.0")),
        ("mid-dle@0.3.1", Some("Apache-2.0")),
        ("ab@0.1.0", None),
    ] {
        assert_eq!(
            licenses.get(crate_).map(String::as_str),
            license,
            "{crate_}"
        );
    }
    let distributions = sbom::cyclonedx_distributions(&bom);
    for (name, version) in [
        ("ab", "0.1.0"),
        ("leaf", "1.0.0"),
        ("leaf", "2.0.0"),
        ("mid-dle", "0.3.1"),
    ] {
        assert_eq!(
            distributions[&format!("{name}@{version}")],
            [format!(
                "{}/crates/{name}/{name}-{version}.crate",
                up.server.url
            )]
            .into_iter()
            .collect(),
            "{bom}"
        );
    }
    // the git crate's reference is its repository, not a download
    assert!(
        !distributions.contains_key("gitdep@0.2.0"),
        "{distributions:?}"
    );

    // the returned configuration: offline + registry variants; the offline one is also in the
    // bundle's app overlay, so the bundle alone builds offline
    let files = larder.config_files(id).await;
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        vec!["app/.cargo/config.registry.toml", "app/.cargo/config.toml"]
    );
    assert_eq!(
        std::fs::read(bundle.join("deps/app-overlay/.cargo/config.toml")).unwrap(),
        files["app/.cargo/config.toml"]
    );
    apply_app_overlay(&bundle);
    for (p, c) in files.iter().filter(|(p, _)| p.ends_with("registry.toml")) {
        std::fs::create_dir_all(bundle.join(p).parent().unwrap()).unwrap();
        std::fs::write(bundle.join(p), c).unwrap();
    }
    let (status, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    assert_eq!(status, 200);
    let token = env["CARGO_REGISTRIES_LARDER_TOKEN"]["value"]
        .as_str()
        .or_else(|| env["CARGO_REGISTRIES_LARDER_TOKEN"].as_str())
        .unwrap_or_else(|| panic!("{env}"))
        .to_string();

    // 1. real cargo builds offline from the unpacked bundle
    let (ok, out) = cargo(
        &t.join("home-offline"),
        &bundle.join("app"),
        &["build", "--offline", "--locked"],
        &[],
    );
    assert!(ok, "offline build from the bundle failed:\n{out}");
    assert_eq!(
        std::fs::read_to_string(bundle.join("app/Cargo.lock")).unwrap(),
        lock_text
    );

    // 2. real cargo fetches from the per-request registry, never from upstream
    up.server.clear_requests();
    let home_reg = t.join("home-registry");
    let (ok, out) = cargo(
        &home_reg,
        &bundle.join("app"),
        &[
            "--config",
            ".cargo/config.registry.toml",
            "fetch",
            "--locked",
        ],
        &[("CARGO_REGISTRIES_LARDER_TOKEN", &token)],
    );
    assert!(
        ok,
        "cargo fetch against the per-request registry:\n{out}\n{}",
        larder.logs()
    );
    assert!(
        home_reg
            .join(".cargo/registry/cache")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "nothing was downloaded from the per-request registry"
    );
    assert_eq!(
        up.server.requests(),
        Vec::<String>::new(),
        "the client went upstream"
    );

    // 3. the wrong token: 401 for the client and over HTTP
    let (ok, out) = cargo(
        &t.join("home-bad"),
        &bundle.join("app"),
        &[
            "--config",
            ".cargo/config.registry.toml",
            "fetch",
            "--locked",
        ],
        &[("CARGO_REGISTRIES_LARDER_TOKEN", "wrong")],
    );
    assert!(!ok, "a wrong token must fail:\n{out}");
    let base = format!("{}/repos/{id}/cargo/", larder.url);
    for (auth, want) in [("wrong", 401), (token.as_str(), 200)] {
        let resp = larder
            .http
            .get(format!("{base}config.json"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "token {auth}");
    }
    let cfg: serde_json::Value = larder
        .http
        .get(format!("{base}config.json"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["dl"], format!("{base}api/v1/crates"));
    assert_eq!(cfg["auth-required"], true);
    let resp = larder
        .http
        .get(format!("{base}le/af/leaf"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap().lines().count(), 2);
    let resp = larder
        .http
        .get(format!("{base}un/de/undeclared"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // 4. an undeclared dependency cannot be resolved through the per-request registry
    let neg = t.join("neg");
    unpack(&bytes, &neg);
    for (p, c) in &files {
        if p.ends_with("config.registry.toml") {
            std::fs::create_dir_all(neg.join(p).parent().unwrap()).unwrap();
            std::fs::write(neg.join(p), c).unwrap();
        }
    }
    let m = neg.join("app/crates/tool/Cargo.toml");
    let mut s = std::fs::read_to_string(&m).unwrap();
    s.push_str("undeclared = \"1\"\n");
    std::fs::write(&m, s).unwrap();
    // the git dependency comes from its (local) repository; crates.io from the registry
    let (ok, out) = cargo(
        &home_reg,
        &neg.join("app"),
        &[
            "--config",
            ".cargo/config.registry.toml",
            "generate-lockfile",
        ],
        &[("CARGO_REGISTRIES_LARDER_TOKEN", &token)],
    );
    assert!(!ok, "undeclared dependency resolved:\n{out}");
    assert!(out.contains("undeclared"), "{out}");
    assert_eq!(
        up.server.requests(),
        Vec::<String>::new(),
        "the client went upstream"
    );

    // 5. a second request is served from the store: no upstream request at all
    let id2 = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["cargo"]}))
        .await;
    let r2 = larder.wait(id2).await;
    assert_eq!(r2["state"], "complete", "{r2}");
    assert_eq!(
        up.server.requests(),
        Vec::<String>::new(),
        "a warm request went upstream"
    );
    let (bytes2, _) = larder.download(id2).await;
    let deps_of = |b: &[u8]| -> BTreeMap<String, Option<Vec<u8>>> {
        untar(b)
            .into_iter()
            .filter(|(p, _)| p.starts_with("deps/"))
            .collect()
    };
    assert_eq!(deps_of(&bytes), deps_of(&bytes2));
    // its SBOM names the same distribution URLs (recorded when the crates were first fetched)
    // and licences (read from the .crates: their vendored directories are kept members now)
    let (status, bom2) = larder.get(&format!("/api/v1/requests/{id2}/sbom")).await;
    assert_eq!(status, 200, "{bom2}");
    assert_eq!(
        sbom::cyclonedx_distributions(&bom2),
        sbom::cyclonedx_distributions(&bom)
    );
    assert_eq!(
        sbom::cyclonedx_licenses(&bom2),
        sbom::cyclonedx_licenses(&bom)
    );

    // 6. a stale request's registry is gone: 410
    larder.expire_all();
    let resp = larder
        .http
        .get(format!("{base}config.json"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
}

/// A single-member repository with a Cargo.lock written by the fixtures.
fn simple_repo(dir: PathBuf, crates: &[BuiltCrate], deps: &[(&str, &str)]) -> GitRepo {
    let ws = dir.clone();
    write_workspace(
        &ws,
        &[FixtureMember {
            name: "app".into(),
            version: "0.1.0".into(),
            path: "app".into(),
            deps: deps
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            path_deps: vec![],
        }],
        crates,
    )
    .unwrap();
    GitRepo::new(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_crate_upstream_fails_and_stores_nothing() {
    let work = tempfile::tempdir().unwrap();
    let crates = fixture_crates();
    let up = upstream(&crates).await;
    let larder = larder_for(&up.index).await;
    let used: Vec<BuiltCrate> = crates
        .iter()
        .filter(|c| c.name != "undeclared" && !(c.name == "leaf" && c.version == "2.0.0"))
        .cloned()
        .collect();
    let repo = simple_repo(work.path().join("repo"), &used, &[("ab", "0.1.0")]);
    let commit = repo.commit("app");
    // the upstream `.crate` no longer matches the lockfile (and the index) checksum
    let evil = build_crate(&FixtureCrate::new("mid-dle", "0.3.1", &[("leaf", "2.0.0")]));
    std::fs::write(
        up.server.root.join("crates/mid-dle/mid-dle-0.3.1.crate"),
        &evil.bytes,
    )
    .unwrap();
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["cargo"]}))
        .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "failed", "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    assert!(reason.contains("mid-dle@0.3.1"), "{reason}");
    assert_eq!(r["error_type"], "InvalidChecksum", "{r}");
    assert_eq!(
        store_files_under(larder.data.path(), "deps/cargo"),
        Vec::<String>::new(),
        "something was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn path_dependency_outside_the_repository_fails() {
    let work = tempfile::tempdir().unwrap();
    let up = upstream(&fixture_crates()).await;
    let larder = larder_for(&up.index).await;
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nelsewhere = { path = \"../elsewhere\" }\n")
        .write("src/lib.rs", "\n")
        .write("Cargo.lock", "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"elsewhere\",\n]\n\n[[package]]\nname = \"elsewhere\"\nversion = \"0.1.0\"\n");
    write(
        &work.path().join("elsewhere/Cargo.toml"),
        "[package]\nname = \"elsewhere\"\nversion = \"0.1.0\"\n",
    );
    let commit = repo.commit("app");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["cargo"]}))
        .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "failed", "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("../elsewhere") && reason.contains("outside the repository"),
        "{reason}"
    );
    assert_eq!(r["error_origin"], "client", "{r}");
    assert!(up.server.requests().is_empty());
}
