//! gomod end to end: a real Larder against a fixture GOPROXY (static tree with real `h1:` sums),
//! checked with the real `go` command (Go 1.19) from the unpacked bundle offline and against
//! the per-request GOPROXY with an empty module cache.

use crate::support::gomod_fixtures::*;
use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const STRICT_MESSAGE: &str = "The \"gomod-vendor\" or \"gomod-vendor-check\" flag must be set when your repository has vendored dependencies.";
const INCONSISTENT_MESSAGE: &str = "The content of the vendor directory is not consistent with go.mod. Run `go mod vendor` locally to fix this problem. See the logs for more details.";

struct Setup {
    larder: Larder,
    upstream: StaticServer,
    work: tempfile::TempDir,
    fx: Transitive,
}

impl Setup {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let proxy = work.path().join("proxy");
        let fx = transitive(&proxy);
        let upstream = StaticServer::start(&proxy).await;
        let larder = larder_for(&upstream, extra).await;
        Self {
            larder,
            upstream,
            work,
            fx,
        }
    }

    fn proxy(&self) -> PathBuf {
        self.work.path().join("proxy")
    }

    fn repo(&self, name: &str) -> GitRepo {
        GitRepo::new(self.work.path().join(name))
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.work.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The transitive app: go.mod, go.sum, main.go.
    fn app_repo(&self, name: &str) -> GitRepo {
        let repo = self.repo(name);
        repo.write("go.mod", APP_GOMOD)
            .write("go.sum", &gosum_text(&[&self.fx.upper, &self.fx.b], &[]))
            .write("main.go", &main_go(&["github.com/Fix/Upper"], "upper.A()"));
        repo
    }

    async fn submit(&self, repo: &GitRepo, commit: &str, extra: Value) -> (i64, Value) {
        submit(&self.larder, repo, commit, extra).await
    }

    /// Download and unpack the bundle; returns its root and the client environment.
    async fn bundle(&self, id: i64, name: &str) -> (PathBuf, Vec<(String, String)>) {
        bundle(&self.larder, id, &self.dir(name)).await
    }
}

async fn larder_for(upstream: &StaticServer, extra: &[(&str, &str)]) -> Larder {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_GOPROXY".into(), upstream.url.clone());
    for (k, v) in extra {
        larder.env.insert(k.to_string(), v.to_string());
    }
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    larder
}

async fn submit(larder: &Larder, repo: &GitRepo, commit: &str, extra: Value) -> (i64, Value) {
    let mut body = json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["gomod"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let id = larder.submit(body).await;
    (id, larder.wait(id).await)
}

fn assert_complete(r: &Value) {
    assert_eq!(r["state"], "complete", "{r}");
}

fn assert_failed_with(r: &Value, needles: &[&str]) {
    assert_eq!(r["state"], "failed", "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    for n in needles {
        assert!(reason.contains(n), "{n:?} not in {reason:?}");
    }
}

async fn bundle(larder: &Larder, id: i64, dest: &Path) -> (PathBuf, Vec<(String, String)>) {
    let (bytes, _) = larder.download(id).await;
    unpack(&bytes, dest);
    let (status, vars) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    assert_eq!(status, 200);
    (dest.to_path_buf(), env_from(&vars, dest))
}

/// (name, version) of a request's dependencies.
fn deps(r: &Value) -> Vec<(String, String)> {
    r["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn get_env<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    &env.iter().find(|(k, _)| k == key).unwrap().1
}

/// `go run .` in `app/<sub>` from the bundle with its environment and GOPROXY=off; returns
/// stdout+stderr, asserting success. `go build ./...` must succeed too.
fn run_offline(root: &Path, env: &[(String, String)], sub: &str, home: &Path) -> String {
    let env = with(env, "GOPROXY", "off");
    let dir = root.join("app").join(sub);
    let (ok, log) = go(&dir, home, &["build", "./..."], &env);
    assert!(ok, "offline go build in {sub} failed: {log}");
    let (ok, log) = go(&dir, home, &["run", "."], &env);
    assert!(ok, "offline go run in {sub} failed: {log}");
    log
}

/// The client environment against the per-request GOPROXY with an empty module cache.
fn proxy_env(env: &[(String, String)], fresh: &Path) -> Vec<(String, String)> {
    let env = with(
        env,
        "GOMODCACHE",
        &fresh.join("pkg/mod").display().to_string(),
    );
    let env = with(&env, "GOPATH", &fresh.display().to_string());
    with(&env, "GOCACHE", &fresh.join("cache").display().to_string())
}

/// `go run .` in `dir` against the per-request GOPROXY with an empty module cache.
fn run_via_proxy(dir: &Path, env: &[(String, String)], fresh: &Path, home: &Path) -> String {
    let env = proxy_env(env, fresh);
    let (ok, log) = go(dir, home, &["build", "./..."], &env);
    assert!(ok, "go build against the request's GOPROXY failed: {log}");
    let (ok, log) = go(dir, home, &["run", "."], &env);
    assert!(ok, "go run against the request's GOPROXY failed: {log}");
    make_writable(fresh);
    log
}

#[tokio::test]
async fn transitive_deps_build_offline_and_via_the_request_goproxy() {
    let s = Setup::start(&[]).await;
    let repo = s.app_repo("repo");
    let commit = repo.commit("app");
    let (id, r) = s.submit(&repo, &commit, json!({})).await;
    assert_complete(&r);
    assert_eq!(
        deps(&r),
        vec![
            ("example.com/b".to_string(), "v1.1.0".to_string()),
            ("github.com/Fix/Upper".to_string(), "v1.0.0".to_string()),
        ]
    );
    assert_eq!(r["packages"][0]["name"], "example.com/app");
    // No tags reach the worker (the source is fetched by commit id, without tags), so the
    // main module gets Cachito's no-tag pseudo-version v0.0.0-<committer time UTC>-<sha12>.
    let main_version = r["packages"][0]["version"].as_str().unwrap();
    let ts = main_version
        .strip_prefix("v0.0.0-")
        .and_then(|v| v.strip_suffix(&format!("-{}", &commit[..12])))
        .unwrap_or_else(|| panic!("unexpected main version {main_version}"));
    assert!(
        ts.len() == 14 && ts.bytes().all(|b| b.is_ascii_digit()) && !ts.starts_with("1970"),
        "{main_version}"
    );
    // the SBOM: valid; its graph is each module's go.mod requirements (the app requires
    // Upper and, indirectly, b; Upper's go.mod requires b)
    let bom = crate::support::sbom::valid_sboms(&s.larder, id).await;
    let edges = crate::support::sbom::cyclonedx_edges(&bom);
    let set = |items: &[&str]| -> std::collections::BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    };
    assert_eq!(
        edges[&format!("example.com/app@{main_version}")],
        set(&["example.com/b@v1.1.0", "github.com/Fix/Upper@v1.0.0"]),
        "{edges:?}"
    );
    assert_eq!(
        edges["github.com/Fix/Upper@v1.0.0"],
        set(&["example.com/b@v1.1.0"]),
        "{edges:?}"
    );
    assert_eq!(edges["example.com/b@v1.1.0"], set(&[]), "{edges:?}");
    // a module's distribution is the .zip fetched from the GOPROXY (module paths case-encoded)
    let distributions = crate::support::sbom::cyclonedx_distributions(&bom);
    assert_eq!(
        distributions["github.com/Fix/Upper@v1.0.0"],
        set(&[&format!(
            "{}/github.com/!fix/!upper/@v/v1.0.0.zip",
            s.upstream.url
        )])
    );
    let (_, manifest) = s
        .larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    let manifest = manifest.to_string();
    for purl in [
        "pkg:golang/github.com%2FFix%2FUpper@v1.0.0",
        "pkg:golang/example.com%2Fb@v1.1.0",
        &format!("pkg:golang/example.com%2Fapp@{main_version}"),
    ] {
        assert!(manifest.contains(purl), "{purl} not in {manifest}");
    }

    assert_app_is_commit(&s.larder.download(id).await.0, &repo.dir, &commit);
    let (root, env) = s.bundle(id, "bundle").await;
    let goproxy = get_env(&env, "GOPROXY").to_string();
    assert!(
        goproxy.starts_with(&format!("{}/repos/{id}/t/", s.larder.url))
            && goproxy.ends_with("/gomod"),
        "{goproxy}"
    );
    assert_eq!(get_env(&env, "GOSUMDB"), "off");
    assert_eq!(get_env(&env, "GOFLAGS"), "-mod=mod");
    assert_eq!(
        Path::new(get_env(&env, "GOMODCACHE")),
        root.join("deps/gomod/pkg/mod")
    );
    let cache = root.join("deps/gomod/pkg/mod/cache/download");
    assert_eq!(
        std::fs::read_to_string(cache.join("github.com/!fix/!upper/@v/v1.0.0.ziphash")).unwrap(),
        s.fx.upper.h1
    );
    assert_eq!(
        std::fs::read_to_string(cache.join("example.com/b/@v/list")).unwrap(),
        "v1.1.0\n"
    );
    assert!(!cache.join("example.com/undeclared").exists());

    // (1) the unpacked bundle, offline
    let home = s.dir("home");
    assert!(run_offline(&root, &env, ".", &home).contains("ab"));

    // (2) the per-request GOPROXY, empty module cache
    let app = root.join("app");
    let out = run_via_proxy(&app, &env, &s.dir("fresh1"), &home);
    assert!(out.contains("ab"), "{out}");

    // the repository serves exactly the request's modules
    let http = reqwest::Client::new();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(format!("{goproxy}/example.com/b/@v/list")).await,
        200
    );
    assert_eq!(
        status(format!(
            "{goproxy}/github.com/%21fix/%21upper/@v/v1.0.0.zip"
        ))
        .await,
        200
    );
    assert_eq!(
        status(format!("{goproxy}/example.com/undeclared/@v/list")).await,
        404
    );
    assert_eq!(
        status(format!("{goproxy}/example.com/undeclared/@v/v1.0.0.zip")).await,
        404
    );
    assert_eq!(
        status(format!("{goproxy}/example.com/b/@v/v1.0.0.zip")).await,
        404
    );
    assert_eq!(
        status(format!("{goproxy}/sumdb/sum.golang.org/supported")).await,
        404
    );
    let token = goproxy
        .split("/t/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let wrong = goproxy.replace(token, "not-the-token");
    assert_eq!(status(format!("{wrong}/example.com/b/@v/list")).await, 401);
    let header_form = format!("{}/repos/{id}/gomod/example.com/b/@v/list", s.larder.url);
    assert_eq!(status(header_form.clone()).await, 401);
    let resp = http
        .get(&header_form)
        .basic_auth("x", Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // importing a module go.sum does not declare fails against the request's GOPROXY, though
    // the upstream has it
    std::fs::write(
        app.join("extra.go"),
        "package main\n\nimport _ \"example.com/undeclared\"\n",
    )
    .unwrap();
    let fresh = s.dir("fresh2");
    let (ok, log) = go(&app, &home, &["build", "./..."], &proxy_env(&env, &fresh));
    make_writable(&fresh);
    assert!(!ok, "an undeclared module was served: {log}");
    assert!(log.contains("example.com/undeclared"), "{log}");

    // a second request with the same dependencies does not touch the upstream
    s.upstream.clear_requests();
    let (_, r2) = s.submit(&repo, &commit, json!({})).await;
    assert_complete(&r2);
    assert_eq!(s.upstream.requests(), Vec::<String>::new());
    make_writable(&root);

    // a stale request's proxy is gone
    s.larder.expire_all();
    assert_eq!(
        status(format!("{goproxy}/example.com/b/@v/list")).await,
        410
    );
}

#[tokio::test]
async fn tampered_upstream_fails_and_stores_nothing() {
    let s = Setup::start(&[]).await;
    let repo = s.app_repo("repo");
    let commit = repo.commit("app");
    let stored = || files_below(&s.larder.data.path().join("deps"));

    let zip = s.proxy().join("example.com/b/@v/v1.1.0.zip");
    let evil = lib(
        "example.com/b",
        "v1.1.0",
        "b",
        &[],
        "package b\n\nfunc B() string { return \"pwned\" }\n",
    );
    std::fs::write(&zip, &evil.zip).unwrap();
    let (_, r) = s.submit(&repo, &commit, json!({})).await;
    assert_failed_with(&r, &["example.com/b@v1.1.0"]);
    assert_eq!(stored(), Vec::<PathBuf>::new());

    std::fs::write(&zip, &s.fx.b.zip).unwrap();
    std::fs::write(
        s.proxy().join("example.com/b/@v/v1.1.0.mod"),
        "module example.com/b\n\ngo 1.20\n",
    )
    .unwrap();
    let (_, r) = s.submit(&repo, &commit, json!({})).await;
    assert_failed_with(&r, &["example.com/b@v1.1.0", "go.mod"]);
    assert_eq!(stored(), Vec::<PathBuf>::new());

    // a required module without a go.sum line
    repo.write("go.sum", &gosum_text(&[&s.fx.upper], &[]));
    let commit = repo.commit("drop b from go.sum");
    let (_, r) = s.submit(&repo, &commit, json!({})).await;
    assert_failed_with(&r, &["example.com/b@v1.1.0", "go.sum"]);
    assert_eq!(r["error_type"], "GoModError", "{r}");
}

#[tokio::test]
async fn replace_to_another_module_version() {
    let s = Setup::start(&[]).await;
    let fork = build_module(
        &FixtureModule::new("example.com/fork", "v1.5.0")
            .file("go.mod", "module example.com/b\n\ngo 1.19\n")
            .file("b.go", "package b\n\nfunc B() string { return \"fork\" }\n"),
    )
    .unwrap();
    write_proxy_tree(&s.proxy(), std::slice::from_ref(&fork)).unwrap();
    let repo = s.repo("repo");
    repo.write(
        "go.mod",
        &format!("{APP_GOMOD}\nreplace example.com/b => example.com/fork v1.5.0\n"),
    )
    .write("go.sum", &gosum_text(&[&s.fx.upper, &fork], &[]))
    .write("main.go", &main_go(&["github.com/Fix/Upper"], "upper.A()"));
    let commit = repo.commit("replace");
    let (id, r) = s.submit(&repo, &commit, json!({})).await;
    assert_complete(&r);
    assert!(
        deps(&r).contains(&("example.com/fork".into(), "v1.5.0".into())),
        "{r}"
    );
    assert!(!deps(&r).iter().any(|(n, _)| n == "example.com/b"), "{r}");
    let (root, env) = s.bundle(id, "bundle").await;
    let home = s.dir("home");
    let out = run_offline(&root, &env, ".", &home);
    assert!(out.contains("afork"), "{out}");
    let out = run_via_proxy(&root.join("app"), &env, &s.dir("fresh"), &home);
    assert!(out.contains("afork"), "{out}");
    make_writable(&root);
}

#[tokio::test]
async fn local_parent_replace_in_a_multi_module_request() {
    let s = Setup::start(&[]).await;
    let repo = s.repo("repo");
    let sum = gosum_text(&[&s.fx.upper, &s.fx.b], &[]);
    repo.write("go.mod", "module example.com/root\n\ngo 1.19\n\nrequire github.com/Fix/Upper v1.0.0\n\nrequire example.com/b v1.1.0 // indirect\n")
        .write("go.sum", &sum)
        .write(
            "root.go",
            "package root\n\nimport \"github.com/Fix/Upper\"\n\nfunc R() string { return \"root\" + upper.A() }\n",
        )
        .write("svc/go.mod", "module example.com/svc\n\ngo 1.19\n\nrequire example.com/root v0.0.0\n\nrequire (\n\texample.com/b v1.1.0 // indirect\n\tgithub.com/Fix/Upper v1.0.0 // indirect\n)\n\nreplace example.com/root => ../\n")
        .write("svc/go.sum", &sum)
        .write("svc/main.go", &main_go(&["example.com/root"], "root.R()"));
    let commit = repo.commit("two modules");
    let (id, r) = s
        .submit(
            &repo,
            &commit,
            json!({"packages": {"gomod": [{"path": "."}, {"path": "svc"}]}}),
        )
        .await;
    assert_complete(&r);
    let names: Vec<&str> = r["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"example.com/root") && names.contains(&"example.com/svc"),
        "{r}"
    );
    assert!(
        deps(&r).contains(&("example.com/root".into(), "../".into())),
        "{r}"
    );
    let (root, env) = s.bundle(id, "bundle").await;
    let home = s.dir("home");
    let env_off = with(&env, "GOPROXY", "off");
    let (ok, log) = go(&root.join("app"), &home, &["build", "./..."], &env_off);
    assert!(ok, "{log}");
    let out = run_offline(&root, &env, "svc", &home);
    assert!(out.contains("rootab"), "{out}");
    let out = run_via_proxy(&root.join("app/svc"), &env, &s.dir("fresh"), &home);
    assert!(out.contains("rootab"), "{out}");
    make_writable(&root);
}

/// `-mod=vendor` with an empty module cache: only `vendor/` can provide the packages.
fn vendored(env: &[(String, String)], empty: &Path) -> Vec<(String, String)> {
    let env = with(env, "GOFLAGS", "-mod=vendor");
    with(&env, "GOMODCACHE", &empty.display().to_string())
}

pub(crate) const MODULES_TXT: &str = "# example.com/b v1.1.0\n## explicit; go 1.19\nexample.com/b\n# github.com/Fix/Upper v1.0.0\n## explicit; go 1.19\ngithub.com/Fix/Upper\n";

#[tokio::test]
async fn vendored_repository_with_and_without_the_flags() {
    let s = Setup::start(&[("LARDER_GOMOD_STRICT_VENDOR", "true")]).await;
    let repo = s.app_repo("repo");
    repo.write("vendor/modules.txt", MODULES_TXT)
        .write(
            "vendor/example.com/b/b.go",
            "package b\n\nfunc B() string { return \"b\" }\n",
        )
        .write(
            "vendor/github.com/Fix/Upper/upper.go",
            "package upper\n\nimport \"example.com/b\"\n\nfunc A() string { return \"a\" + b.B() }\n",
        );
    let consistent = repo.commit("vendored");
    repo.write(
        "vendor/modules.txt",
        "# github.com/Fix/Upper v1.0.0\n## explicit; go 1.19\ngithub.com/Fix/Upper\n",
    );
    let inconsistent = repo.commit("stale vendor");
    let home = s.dir("home");

    // strict deployment, no flag
    let (_, r) = s.submit(&repo, &consistent, json!({})).await;
    assert_failed_with(&r, &[STRICT_MESSAGE]);

    // gomod-vendor-check keeps a consistent vendor directory: builds with -mod=vendor offline
    let (id, r) = s
        .submit(&repo, &consistent, json!({"flags": ["gomod-vendor-check"]}))
        .await;
    assert_complete(&r);
    let (root, env) = s.bundle(id, "bundle-check").await;
    assert_eq!(
        std::fs::read_to_string(root.join("app/vendor/modules.txt")).unwrap(),
        MODULES_TXT
    );
    let out = run_offline(&root, &vendored(&env, &s.dir("empty1")), ".", &home);
    assert!(out.contains("ab"), "{out}");
    make_writable(&root);

    // gomod-vendor-check refuses an inconsistent one, with Cachito's message
    let (_, r) = s
        .submit(
            &repo,
            &inconsistent,
            json!({"flags": ["gomod-vendor-check"]}),
        )
        .await;
    assert_failed_with(&r, &[INCONSISTENT_MESSAGE]);

    // gomod-vendor regenerates it
    let (id, r) = s
        .submit(&repo, &inconsistent, json!({"flags": ["gomod-vendor"]}))
        .await;
    assert_complete(&r);
    let (root, env) = s.bundle(id, "bundle-vendor").await;
    assert_eq!(
        std::fs::read_to_string(root.join("app/vendor/modules.txt")).unwrap(),
        MODULES_TXT
    );
    let out = run_offline(&root, &vendored(&env, &s.dir("empty2")), ".", &home);
    assert!(out.contains("ab"), "{out}");
    make_writable(&root);

    // a default (non-strict) deployment takes the vendored repository without a flag; the
    // module cache in the bundle builds it
    let plain = larder_for(&s.upstream, &[]).await;
    let (id, r) = submit(&plain, &repo, &consistent, json!({})).await;
    assert_complete(&r);
    let (root, env) = bundle(&plain, id, &s.dir("bundle-plain")).await;
    let out = run_offline(&root, &env, ".", &home);
    assert!(out.contains("ab"), "{out}");
    make_writable(&root);
}

#[tokio::test]
async fn dependency_replacements_rewrite_go_mod() {
    let s = Setup::start(&[]).await;
    let b2 = lib(
        "example.com/b",
        "v1.2.0",
        "b",
        &[],
        "package b\n\nfunc B() string { return \"b2\" }\n",
    );
    write_proxy_tree(&s.proxy(), std::slice::from_ref(&b2)).unwrap();
    let repo = s.app_repo("repo");
    let commit = repo.commit("app");
    let (id, r) = s
        .submit(
            &repo,
            &commit,
            json!({"dependency_replacements": [{"type": "gomod", "name": "example.com/b", "version": "v1.2.0"}]}),
        )
        .await;
    assert_complete(&r);
    let dep = r["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "example.com/b")
        .unwrap()
        .clone();
    assert_eq!(dep["version"], "v1.2.0", "{r}");
    assert_eq!(dep["replaces"]["name"], "example.com/b", "{r}");
    assert_eq!(dep["replaces"]["version"], "v1.1.0", "{r}");
    let (root, env) = s.bundle(id, "bundle").await;
    let gomod = std::fs::read_to_string(root.join("app/go.mod")).unwrap();
    assert!(
        gomod.ends_with("replace example.com/b => example.com/b v1.2.0\n"),
        "{gomod}"
    );
    let gosum = std::fs::read_to_string(root.join("app/go.sum")).unwrap();
    assert!(gosum.contains(&b2.gosum_lines()), "{gosum}");
    let home = s.dir("home");
    let out = run_offline(&root, &env, ".", &home);
    assert!(out.contains("ab2"), "{out}");
    let out = run_via_proxy(&root.join("app"), &env, &s.dir("fresh"), &home);
    assert!(out.contains("ab2"), "{out}");
    make_writable(&root);

    // a replacement of a module the build does not use fails clearly (as Cachito does)
    let (_, r) = s
        .submit(
            &repo,
            &commit,
            json!({"dependency_replacements": [
                {"type": "gomod", "name": "example.com/b", "version": "v1.2.0"},
                {"type": "gomod", "name": "example.com/pizza", "version": "v1.0.0"}]}),
        )
        .await;
    assert_failed_with(
        &r,
        &["The following gomod dependency replacements don't apply: example.com/pizza"],
    );
    assert_eq!(r["error_origin"], "client", "{r}");
}

#[tokio::test]
async fn every_module_whose_source_ships_is_reported() {
    let s = Setup::start(&[]).await;
    // a test dependency of a dependency: go.sum vouches for its zip, the build list has no room
    // for it (go 1.19: go.mod lists the whole build list)
    let testonly = lib(
        "example.com/testonly",
        "v1.0.0",
        "testonly",
        &[],
        "package testonly\n",
    );
    write_proxy_tree(&s.proxy(), std::slice::from_ref(&testonly)).unwrap();
    let repo = s.app_repo("repo");
    repo.write(
        "go.sum",
        &gosum_text(&[&s.fx.upper, &s.fx.b, &testonly], &[]),
    );
    let commit = repo.commit("app");
    let (id, r) = s.submit(&repo, &commit, json!({})).await;
    assert_complete(&r);
    let dev: Vec<(String, Value)> = r["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_string(), d["dev"].clone()))
        .collect();
    assert!(
        dev.contains(&("example.com/testonly".to_string(), json!(true))),
        "{r}"
    );
    assert!(
        dev.iter()
            .filter(|(n, _)| n != "example.com/testonly")
            .all(|(_, d)| d != &json!(true)),
        "{r}"
    );
    let purl = "pkg:golang/example.com%2Ftestonly@v1.0.0";
    let (_, manifest) = s
        .larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    let entry = &manifest["image_contents"][0];
    assert!(entry["sources"].to_string().contains(purl), "{manifest}");
    assert!(
        !entry["dependencies"].to_string().contains(purl),
        "{manifest}"
    );
    let (_, sbom) = s.larder.get(&format!("/api/v1/sbom?requests={id}")).await;
    assert!(sbom.to_string().contains(purl), "{sbom}");
    let (root, _) = s.bundle(id, "bundle").await;
    assert!(root
        .join("deps/gomod/pkg/mod/cache/download/example.com/testonly/@v/v1.0.0.zip")
        .is_file());
    make_writable(&root);
}
