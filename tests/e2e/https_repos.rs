//! Issue 11's acceptance: `npm ci`, `yarn install` (v1 and Berry), `pnpm install`, `pip install`,
//! `cargo fetch`, `go build` (and issue 13's `bundle install`) through the
//! per-request repositories served over HTTPS with a private CA (`use_tls`: the api's certificate
//! and `LARDER_REPOS_CA_FILE` from one test CA), using only what the request hands back.
//!
//! Each test reads the configuration files and environment variables over HTTPS as the request's
//! submitter (a client certificate: a client CA turns authentication on), applies them as
//! `larder config-files --dir <root>` and `larder env --bundle-dir <root>` do over a fresh
//! checkout of the commit as `<root>/app` (no bundle: every dependency has to come from the
//! repository), and runs the real client in a clean environment: the machine's roots do not
//! hold the test CA, so the client trusts the repository only through the hand-back. Each client
//! is first run with the CA taken out of the hand-back, and must fail on the certificate, so the
//! test cannot pass for another reason (a client that does not verify, a URL that is not HTTPS,
//! a CA picked up elsewhere).
//!
//! The upstreams stay plain HTTP on loopback (only the clients' side is the subject here), and
//! the clients never reach them.

use crate::support::clients::{cargo, npm, npm_installed, pip, pnpm, run, yarn, yarn_berry};
use crate::support::tls::TestPki;
use crate::support::{cargo_fixtures, gomod_fixtures, npm_fixtures, pip_fixtures};
use crate::support::{clean_command, run_ok, GitRepo, Larder, StaticServer};
use rcgen::DnType;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Where the CA is handed back (worker's `ReposCa::PATH`).
const CA_FILE: &str = "app/registry-ca.pem";

/// `larder serve` over HTTPS with the upstream setting `upstream`; the test's client presents a
/// certificate of `pki`, so it submits and may read what its requests hand back.
async fn serve(pki: &TestPki, upstream: (&str, &str)) -> Larder {
    let mut larder = Larder::new();
    larder.use_tls(pki);
    larder.env.insert(upstream.0.into(), upstream.1.into());
    larder.spawn("serve", &[]);
    larder.http = pki.http(Some(&pki.client(&[
        (DnType::OrganizationName, "Example"),
        (DnType::CommonName, "builder"),
    ])));
    larder.wait_healthy().await;
    larder
}

/// Submit `pkg_managers` (with `flags`) for `commit` and wait until it completes.
async fn complete(larder: &Larder, repo: &GitRepo, commit: &str, pm: &str, flags: &[&str]) -> i64 {
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": [pm], "flags": flags}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    id
}

/// What a request hands back, read over HTTPS.
#[derive(Clone, Debug)]
struct HandBack {
    /// path below the bundle root -> content
    files: BTreeMap<String, Vec<u8>>,
    /// name -> `{"value", "kind"}`
    vars: Value,
}

impl HandBack {
    async fn read(larder: &Larder, id: i64) -> Self {
        let files = larder.config_files(id).await;
        let (status, vars) = larder
            .get(&format!("/api/v1/requests/{id}/environment-variables"))
            .await;
        assert_eq!(status, 200, "{vars}");
        Self { files, vars }
    }

    fn text(&self, path: &str) -> String {
        let content = self
            .files
            .get(path)
            .unwrap_or_else(|| panic!("no {path} among {:?}", self.files.keys()));
        String::from_utf8(content.clone()).unwrap()
    }

    fn var(&self, name: &str) -> (&str, &str) {
        let v = &self.vars[name];
        match (v["value"].as_str(), v["kind"].as_str()) {
            (Some(value), Some(kind)) => (value, kind),
            _ => panic!("no variable {name} in {}", self.vars),
        }
    }

    /// It carries `pki`'s CA as `app/registry-ca.pem`, names the repository at the api's HTTPS
    /// URL, and no plain-HTTP URL at all.
    fn assert_carries_the_ca(&self, pki: &TestPki, larder: &Larder, id: i64) {
        let unspaced = |b: &[u8]| -> String {
            String::from_utf8_lossy(b)
                .split_whitespace()
                .collect::<String>()
        };
        assert_eq!(
            unspaced(&self.files[CA_FILE]),
            unspaced(&std::fs::read(pki.ca()).unwrap()),
            "{CA_FILE} is not the repositories' CA"
        );
        let repo = format!("{}/repos/{id}/", larder.url);
        let host_port = repo
            .strip_prefix("https://")
            .unwrap_or_else(|| panic!("{repo} is not HTTPS"));
        let mut names_repo = false;
        // a package.json or yarn.lock keeps its own ranges: an upstream URL there is a key
        let plain = format!("http://{host_port}");
        for (path, content) in &self.files {
            let text = String::from_utf8_lossy(content);
            assert!(
                !text.contains(&plain),
                "{path} names the repositories over plain HTTP:\n{text}"
            );
            // .bundle/config's mirror carries the token as userinfo
            names_repo |= text.contains(&repo) || text.contains(&format!("@{host_port}"));
        }
        for (name, v) in self.vars.as_object().unwrap() {
            let value = v["value"].as_str().unwrap();
            assert!(!value.contains("http://"), "{name}={value}");
            // PIP_INDEX_URL carries the token as userinfo
            names_repo |= value.contains(&repo) || value.contains(&format!("@{host_port}"));
        }
        assert!(names_repo, "nothing names {repo}: {self:?}");
    }

    /// Without the lines of configuration file `path` that `drop` picks.
    fn without_lines(mut self, path: &str, drop: impl Fn(&str) -> bool) -> Self {
        let kept: String = self
            .text(path)
            .lines()
            .filter(|l| !drop(l))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(kept.as_bytes(), &self.files[path][..], "nothing dropped");
        self.files.insert(path.into(), kept.into_bytes());
        self
    }

    /// Without the environment variables `names`.
    fn without_vars(mut self, names: &[&str]) -> Self {
        for name in names {
            assert!(
                self.vars.as_object_mut().unwrap().remove(*name).is_some(),
                "{name}"
            );
        }
        self
    }

    /// Applied as a client applies it: the commit as `<root>/app`, the configuration files below
    /// `<root>`; returns the environment (`path` variables absolute below `<root>`).
    fn apply(&self, repo: &GitRepo, commit: &str, root: &Path) -> Vec<(String, String)> {
        let app = root.join("app");
        std::fs::create_dir_all(&app).unwrap();
        let tar = run_ok(
            Command::new("git")
                .args(["archive", "--format=tar", commit])
                .current_dir(&repo.dir)
                .env("GIT_CONFIG_GLOBAL", "/dev/null"),
        );
        tar::Archive::new(&tar[..]).unpack(&app).unwrap();
        for (path, content) in &self.files {
            assert!(
                !path.starts_with('/') && !path.split('/').any(|c| c == ".."),
                "{path}"
            );
            let target = root.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, content).unwrap();
        }
        gomod_fixtures::env_from(&self.vars, root)
    }
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The client's output says it failed on the server's certificate (one of `markers`).
fn assert_certificate_error(client: &str, ok: bool, out: &str, markers: &[&str]) {
    assert!(!ok, "{client} succeeded without the CA:\n{out}");
    let line = out
        .lines()
        .find(|l| markers.iter().any(|m| l.contains(m)))
        .unwrap_or_else(|| {
            panic!("{client} failed, but not on the certificate ({markers:?}):\n{out}")
        });
    eprintln!("{client} without the CA: {}", line.trim());
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    eprintln!("{what}: {:.1?}", start.elapsed());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_ci_over_https_with_only_the_hand_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let up_dir = t.join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    // four packages depending on one another, one of them scoped
    let (project, tree) = npm_fixtures::synthetic(4);
    let packages: Vec<_> = tree.iter().map(|e| e.pkg.clone()).collect();
    npm_fixtures::write_registry(&up_dir, &upstream.url, &packages).unwrap();
    let lock = npm_fixtures::lockfile(3, &project, &tree, "https://registry.npmjs.org/");
    let repo = GitRepo::new(t.join("repo"));
    repo.write(
        "package.json",
        &serde_json::to_string_pretty(&project.package_json()).unwrap(),
    )
    .write(
        "package-lock.json",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    let commit = repo.commit("npm app");

    let pki = TestPki::new("Larder repositories CA");
    let larder = serve(&pki, ("LARDER_NPM_REGISTRY", &upstream.url)).await;
    let id = complete(&larder, &repo, &commit, "npm", &[]).await;
    let back = HandBack::read(&larder, id).await;
    upstream.clear_requests();
    back.assert_carries_the_ca(&pki, &larder, id);
    let npmrc = back.text("app/.npmrc");
    assert!(
        npmrc.contains(&format!("registry={}/repos/{id}/npm/\n", larder.url)),
        "{npmrc}"
    );
    // npm resolves a relative cafile against the directory it runs in: app/
    assert!(
        npmrc.lines().any(|l| l == "cafile=registry-ca.pem"),
        "{npmrc}"
    );
    let ci = ["ci", "--ignore-scripts", "--no-audit", "--no-fund"];

    // without the cafile line npm has only its own roots (the .npmrc asks for five retries)
    let bare = back
        .clone()
        .without_lines("app/.npmrc", |l| l.starts_with("cafile="));
    let root = t.join("without-ca");
    let env = bare.apply(&repo, &commit, &root);
    let (ok, out) = timed("npm ci without the CA", || {
        npm(
            &root.join("app"),
            &t.join("home-without-ca"),
            &[&ci[..], &["--fetch-retries=0"]].concat(),
            &refs(&env),
        )
    });
    assert_certificate_error(
        "npm ci",
        ok,
        &out,
        &[
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
            "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
            "SELF_SIGNED_CERT_IN_CHAIN",
        ],
    );

    let root = t.join("with-ca");
    let env = back.apply(&repo, &commit, &root);
    let (ok, out) = timed("npm ci", || {
        npm(&root.join("app"), &t.join("home"), &ci, &refs(&env))
    });
    assert!(
        ok,
        "npm ci through the HTTPS registry failed:\n{out}\n{}",
        larder.logs()
    );
    let mut want: Vec<String> = tree
        .iter()
        .map(|e| format!("{}@{}", e.location, e.pkg.version))
        .collect();
    want.sort();
    assert_eq!(npm_installed(&root.join("app")), want);
    assert_eq!(
        upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_install_over_https_with_only_the_hand_back() {
    let fx = crate::yarn::fixture("").await;
    let t = fx.tmp.path();
    let pki = TestPki::new("Larder repositories CA");
    let larder = serve(&pki, ("LARDER_NPM_REGISTRY", &fx.upstream.url)).await;
    let id = complete(&larder, &fx.repo, &fx.commit, "yarn", &[]).await;
    let back = HandBack::read(&larder, id).await;
    fx.upstream.clear_requests();
    // yarn.lock keys are the package.json's specs, the fixture's plain-HTTP tarball URL among
    // them; what yarn fetches is `resolved`
    back.clone()
        .without_lines("app/yarn.lock", |l| {
            !l.trim_start().starts_with("resolved ")
        })
        .assert_carries_the_ca(&pki, &larder, id);
    let npmrc = back.text("app/.npmrc");
    assert!(
        npmrc.lines().any(|l| l == "cafile=registry-ca.pem"),
        "{npmrc}"
    );
    let install = [
        "install",
        "--frozen-lockfile",
        "--ignore-scripts",
        "--non-interactive",
    ];

    let bare = back
        .clone()
        .without_lines("app/.npmrc", |l| l.starts_with("cafile="));
    let root = t.join("without-ca");
    bare.apply(&fx.repo, &fx.commit, &root);
    let (ok, out) = timed("yarn install without the CA", || {
        yarn(&root.join("app"), &t.join("home-without-ca"), &install)
    });
    assert_certificate_error(
        "yarn install",
        ok,
        &out,
        &[
            "unable to verify",
            "self signed certificate",
            "self-signed certificate",
            "unable to get local issuer",
        ],
    );

    let root = t.join("with-ca");
    back.apply(&fx.repo, &fx.commit, &root);
    let (ok, out) = timed("yarn install", || {
        yarn(&root.join("app"), &t.join("home"), &install)
    });
    assert!(
        ok,
        "yarn install through the HTTPS registry failed:\n{out}\n{}",
        larder.logs()
    );
    assert_eq!(crate::yarn::installed(&root.join("app")), crate::yarn::TREE);
    assert_eq!(
        fx.upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_install_over_https_with_only_the_hand_back() {
    let fx = crate::pnpm::fixture("", false, |s| s).await;
    let t = fx.tmp.path();
    let pki = TestPki::new("Larder repositories CA");
    let larder = serve(&pki, ("LARDER_NPM_REGISTRY", &fx.upstream.url)).await;
    let id = complete(&larder, &fx.repo, &fx.commit, "pnpm", &[]).await;
    let back = HandBack::read(&larder, id).await;
    fx.upstream.clear_requests();
    // the lockfile's keys and specifiers are the package.json's, the fixture's plain-HTTP
    // tarball URL among them; what pnpm fetches is `resolution`
    back.clone()
        .without_lines("app/pnpm-lock.yaml", |l| {
            !l.trim_start().starts_with("resolution:")
        })
        .assert_carries_the_ca(&pki, &larder, id);
    let npmrc = back.text("app/.npmrc");
    assert!(
        npmrc.lines().any(|l| l == "cafile=registry-ca.pem"),
        "{npmrc}"
    );
    let install = ["install", "--frozen-lockfile", "--ignore-scripts"];

    let bare = back
        .clone()
        .without_lines("app/.npmrc", |l| l.starts_with("cafile="));
    let root = t.join("without-ca");
    bare.apply(&fx.repo, &fx.commit, &root);
    // no retries: the hand-back's fetch-retries would wait minutes for the same error
    let once = [&install[..], &["--fetch-retries=0"]].concat();
    let (ok, out) = timed("pnpm install without the CA", || {
        pnpm(&root.join("app"), &t.join("home-without-ca"), &once)
    });
    assert_certificate_error(
        "pnpm install",
        ok,
        &out,
        &[
            "unable to verify",
            "self signed certificate",
            "self-signed certificate",
            "unable to get local issuer",
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        ],
    );

    let root = t.join("with-ca");
    back.apply(&fx.repo, &fx.commit, &root);
    let (ok, out) = timed("pnpm install", || {
        pnpm(&root.join("app"), &t.join("home"), &install)
    });
    assert!(
        ok,
        "pnpm install through the HTTPS registry failed:\n{out}\n{}",
        larder.logs()
    );
    let got = crate::pnpm::installed(&root.join("app"));
    for want in crate::pnpm::TREE {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}\n{out}");
    }
    assert_eq!(
        fx.upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_install_over_https_with_only_the_hand_back() {
    let fx = crate::yarn_berry::fixture().await;
    let t = fx.tmp.path();
    let pki = TestPki::new("Larder repositories CA");
    let larder = serve(&pki, ("LARDER_NPM_REGISTRY", &fx.upstream.url)).await;
    let id = complete(&larder, &fx.repo, &fx.commit, "yarn", &[]).await;
    let back = HandBack::read(&larder, id).await;
    fx.upstream.clear_requests();
    back.assert_carries_the_ca(&pki, &larder, id);
    let rc = back.text("app/.yarnrc.yml");
    assert!(
        rc.lines().any(|l| l == "httpsCaFilePath: registry-ca.pem"),
        "{rc}"
    );
    assert!(!rc.contains("unsafeHttpWhitelist"), "{rc}");
    let install = ["install", "--immutable"];

    let bare = back
        .clone()
        .without_lines("app/.yarnrc.yml", |l| l.starts_with("httpsCaFilePath:"));
    let root = t.join("without-ca");
    bare.apply(&fx.repo, &fx.commit, &root);
    let (ok, out) = timed("yarn (Berry) install without the CA", || {
        yarn_berry(&root.join("app"), &t.join("home-without-ca"), &install)
    });
    assert_certificate_error(
        "yarn (Berry) install",
        ok,
        &out,
        &[
            "unable to verify",
            "self signed certificate",
            "self-signed certificate",
            "unable to get local issuer",
        ],
    );

    let root = t.join("with-ca");
    back.apply(&fx.repo, &fx.commit, &root);
    let (ok, out) = timed("yarn (Berry) install", || {
        yarn_berry(&root.join("app"), &t.join("home"), &install)
    });
    assert!(
        ok,
        "yarn install --immutable through the HTTPS registry failed:\n{out}\n{}",
        larder.logs()
    );
    crate::yarn_berry::assert_installed(&root.join("app"), &out);
    assert_eq!(
        fx.upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_install_over_https_with_only_the_hand_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // alpha as a wheel and an sdist (pip takes the wheel), its dependency beta as an sdist only
    let dist = t.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    let files = vec![
        pip_fixtures::build_wheel(&dist, "alpha", "1.0", &["beta==2.0"], None).unwrap(),
        pip_fixtures::build_sdist(&dist, "alpha", "1.0", &["beta==2.0"], None).unwrap(),
        pip_fixtures::build_sdist(&dist, "beta", "2.0", &[], None).unwrap(),
    ];
    let up_dir = t.join("upstream");
    pip_fixtures::write_simple_index(&up_dir.join("pypi"), &files).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let repo = GitRepo::new(t.join("repo"));
    repo.write(
        "pyproject.toml",
        "[project]\nname = \"demo-app\"\nversion = \"0.1.0\"\n",
    )
    .write("requirements.txt", "alpha==1.0\nbeta==2.0\n");
    let commit = repo.commit("pip app");

    let pki = TestPki::new("Larder repositories CA");
    let index = format!("{}/pypi/simple/", upstream.url);
    let larder = serve(&pki, ("LARDER_PYPI_INDEX", &index)).await;
    let id = complete(&larder, &repo, &commit, "pip", &["pip-allow-binary"]).await;
    let back = HandBack::read(&larder, id).await;
    upstream.clear_requests();
    back.assert_carries_the_ca(&pki, &larder, id);
    for name in ["PIP_CERT", "REQUESTS_CA_BUNDLE"] {
        assert_eq!(back.var(name), (CA_FILE, "path"));
    }
    let (index_url, _) = back.var("PIP_INDEX_URL");
    assert!(index_url.starts_with("https://__token__:"), "{index_url}");

    // the machine's pip, installing into a directory of its own (a venv costs seconds)
    let home = t.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let python = Path::new("python3");
    let install = |root: &Path, env: &[(String, String)], extra: &[&str]| {
        let requirements = root.join("app/requirements.txt");
        let target = root.join("site");
        let args = [
            &[
                "install",
                "--target",
                target.to_str().unwrap(),
                "-r",
                requirements.to_str().unwrap(),
            ][..],
            extra,
        ]
        .concat();
        pip(python, &home, &refs(env), &args)
    };

    // without PIP_CERT and REQUESTS_CA_BUNDLE pip has only its own roots (certifi)
    let bare = back
        .clone()
        .without_vars(&["PIP_CERT", "REQUESTS_CA_BUNDLE"]);
    let root = t.join("without-ca");
    let env = bare.apply(&repo, &commit, &root);
    let (ok, out) = timed("pip install without the CA", || {
        install(&root, &env, &["--retries", "0"])
    });
    assert_certificate_error("pip install", ok, &out, &["CERTIFICATE_VERIFY_FAILED"]);

    let root = t.join("with-ca");
    let env = back.apply(&repo, &commit, &root);
    let (ok, out) = timed("pip install", || install(&root, &env, &[]));
    assert!(
        ok,
        "pip install through the HTTPS index failed:\n{out}\n{}",
        larder.logs()
    );
    let (ok, out) = run(clean_command("python3", &home)
        .env("PYTHONPATH", root.join("site"))
        .args([
            "-c",
            "import alpha, beta; print(alpha.__version__, beta.__version__)",
        ]));
    assert!(ok && out.contains("1.0 2.0"), "{out}");
    assert_eq!(
        upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_fetch_over_https_with_only_the_hand_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let crates: Vec<_> = [
        cargo_fixtures::FixtureCrate::new("leaf", "1.0.0", &[]),
        cargo_fixtures::FixtureCrate::new("mid-dle", "0.3.1", &[("leaf", "1.0.0")]),
    ]
    .iter()
    .map(cargo_fixtures::build_crate)
    .collect();
    let up_dir = t.join("upstream");
    let upstream = StaticServer::start(&up_dir).await;
    cargo_fixtures::write_registry(
        &up_dir,
        &format!(
            "{}/crates/{{crate}}/{{crate}}-{{version}}.crate",
            upstream.url
        ),
        &crates,
    )
    .unwrap();
    let repo_dir = t.join("repo");
    cargo_fixtures::write_workspace(
        &repo_dir,
        &[cargo_fixtures::FixtureMember {
            name: "app".into(),
            version: "0.1.0".into(),
            path: "app".into(),
            deps: vec![("mid-dle".into(), "0.3.1".into())],
            path_deps: vec![],
        }],
        &crates,
    )
    .unwrap();
    let repo = GitRepo::new(repo_dir);
    let commit = repo.commit("cargo app");

    let pki = TestPki::new("Larder repositories CA");
    let index = format!("sparse+{}/", upstream.url);
    let larder = serve(&pki, ("LARDER_CRATES_INDEX", &index)).await;
    let id = complete(&larder, &repo, &commit, "cargo", &[]).await;
    let back = HandBack::read(&larder, id).await;
    upstream.clear_requests();
    back.assert_carries_the_ca(&pki, &larder, id);
    let config = "app/.cargo/config.registry.toml";
    let registry = back.text(config);
    assert!(
        registry.contains(&format!("\"sparse+{}/repos/{id}/cargo/\"", larder.url)),
        "{registry}"
    );
    // relative to the directory holding .cargo/: app/
    assert!(
        registry.contains("[http]\ncainfo = \"registry-ca.pem\"\n"),
        "{registry}"
    );
    let fetch = [
        "--config",
        ".cargo/config.registry.toml",
        "fetch",
        "--locked",
    ];

    // without [http] cainfo cargo has only the system's roots
    let bare = back
        .clone()
        .without_lines(config, |l| l == "[http]" || l.starts_with("cainfo"));
    let root = t.join("without-ca");
    let env = bare.apply(&repo, &commit, &root);
    let (ok, out) = timed("cargo fetch without the CA", || {
        cargo(
            &t.join("home-without-ca"),
            &root.join("app"),
            &fetch,
            &refs(&env),
        )
    });
    assert_certificate_error("cargo fetch", ok, &out, &["SSL certificate problem"]);

    let root = t.join("with-ca");
    let env = back.apply(&repo, &commit, &root);
    let home = t.join("home");
    let (ok, out) = timed("cargo fetch", || {
        cargo(&home, &root.join("app"), &fetch, &refs(&env))
    });
    assert!(
        ok,
        "cargo fetch through the HTTPS registry failed:\n{out}\n{}",
        larder.logs()
    );
    let mut downloaded: Vec<String> = std::fs::read_dir(home.join(".cargo/registry/cache"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    downloaded.sort();
    assert_eq!(downloaded, ["leaf-1.0.0.crate", "mid-dle-0.3.1.crate"]);
    assert_eq!(
        upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_build_over_https_with_only_the_hand_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let proxy = t.join("proxy");
    let fx = gomod_fixtures::transitive(&proxy);
    let upstream = StaticServer::start(&proxy).await;
    let repo = GitRepo::new(t.join("repo"));
    repo.write("go.mod", gomod_fixtures::APP_GOMOD)
        .write(
            "go.sum",
            &gomod_fixtures::gosum_text(&[&fx.upper, &fx.b], &[]),
        )
        .write(
            "main.go",
            &gomod_fixtures::main_go(&["github.com/Fix/Upper"], "upper.A()"),
        );
    let commit = repo.commit("go app");

    let pki = TestPki::new("Larder repositories CA");
    let larder = serve(&pki, ("LARDER_GOPROXY", &upstream.url)).await;
    let id = complete(&larder, &repo, &commit, "gomod", &[]).await;
    let back = HandBack::read(&larder, id).await;
    upstream.clear_requests();
    back.assert_carries_the_ca(&pki, &larder, id);
    assert_eq!(back.var("SSL_CERT_FILE"), (CA_FILE, "path"));
    let (goproxy, _) = back.var("GOPROXY");
    assert!(
        goproxy.starts_with(&format!("{}/repos/{id}/", larder.url)),
        "{goproxy}"
    );
    // GOMODCACHE, GOPATH, GOCACHE are below <root>/deps/gomod, which holds nothing: every
    // module comes from the GOPROXY
    let build = |root: &Path, env: &[(String, String)], home: &str| {
        let out = gomod_fixtures::go(
            &root.join("app"),
            &t.join(home),
            &["build", "-o", "app.bin", "."],
            env,
        );
        gomod_fixtures::make_writable(root);
        out
    };

    // without SSL_CERT_FILE go has only the system's roots
    let bare = back.clone().without_vars(&["SSL_CERT_FILE"]);
    let root = t.join("without-ca");
    let env = bare.apply(&repo, &commit, &root);
    let (ok, out) = timed("go build without the CA", || {
        build(&root, &env, "home-without-ca")
    });
    assert_certificate_error(
        "go build",
        ok,
        &out,
        &["x509: certificate signed by unknown authority"],
    );

    let root = t.join("with-ca");
    let env = back.apply(&repo, &commit, &root);
    let (ok, out) = timed("go build", || build(&root, &env, "home"));
    assert!(
        ok,
        "go build through the HTTPS GOPROXY failed:\n{out}\n{}",
        larder.logs()
    );
    assert!(root
        .join("deps/gomod/pkg/mod/cache/download/github.com/!fix/!upper/@v/v1.0.0.zip")
        .is_file());
    let (ok, out) = run(&mut Command::new(root.join("app/app.bin")));
    assert!(ok && out.trim() == "ab", "{out}");
    assert_eq!(
        upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_install_over_https_with_only_the_hand_back() {
    use crate::support::rubygems_fixtures::{
        build_gem, bundle, installed_gems, write_server, FixtureGem,
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let gems: Vec<_> = [
        FixtureGem::new("rack", "1.0.0", &[]),
        FixtureGem::new("middle", "0.3.1", &[("rack", "= 1.0.0")]),
    ]
    .iter()
    .map(|g| build_gem(t, g))
    .collect();
    let up_dir = t.join("upstream");
    write_server(&up_dir, &gems);
    let upstream = StaticServer::start(&up_dir).await;
    let repo = GitRepo::new(t.join("repo"));
    repo.write(
        "web/Gemfile",
        "source \"https://rubygems.org\"\ngem \"middle\"\n",
    )
    .write(
        "web/Gemfile.lock",
        &crate::rubygems::lockfile(&["middle-0.3.1", "rack-1.0.0"], &[], "")
            .replace("2.5.3", "2.3.15")
            .replace(
                "DEPENDENCIES\n  middle\n  rack\n",
                "DEPENDENCIES\n  middle\n",
            )
            .replace(
                "    middle (0.3.1)\n",
                "    middle (0.3.1)\n      rack (= 1.0.0)\n",
            ),
    );
    let commit = repo.commit("gems");

    let pki = TestPki::new("Larder repositories CA");
    let larder = serve(&pki, ("LARDER_RUBYGEMS_URL", &upstream.url)).await;
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["rubygems"], "packages": {"rubygems": [{"path": "web"}]}}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let back = HandBack::read(&larder, id).await;
    upstream.clear_requests();
    back.assert_carries_the_ca(&pki, &larder, id);
    let config = "app/web/.bundle/config";
    let text = back.text(config);
    // relative to the Gemfile's directory, where bundle runs
    assert!(
        text.contains("BUNDLE_SSL_CA_CERT: \"../registry-ca.pem\"\n"),
        "{text}"
    );

    // RubyGems' own fetcher downloads the .gem files: it trusts SSL_CERT_FILE
    assert_eq!(back.var("SSL_CERT_FILE"), (CA_FILE, "path"));

    // without them bundler has only the system's roots
    let bare = back
        .clone()
        .without_lines(config, |l| l.starts_with("BUNDLE_SSL_CA_CERT"))
        .without_vars(&["SSL_CERT_FILE"]);
    let root = t.join("without-ca");
    let env = bare.apply(&repo, &commit, &root);
    let (ok, out) = timed("bundle install without the CA", || {
        bundle(
            &root.join("app/web"),
            &t.join("home-without-ca"),
            &["install"],
            &refs(&env),
        )
    });
    assert_certificate_error(
        "bundle install",
        ok,
        &out,
        &["certificate verify failed", "SSL"],
    );

    let root = t.join("with-ca");
    let env = back.apply(&repo, &commit, &root);
    let (ok, out) = timed("bundle install", || {
        bundle(
            &root.join("app/web"),
            &t.join("home"),
            &["install"],
            &refs(&env),
        )
    });
    assert!(
        ok,
        "bundle install through the HTTPS gem server failed:\n{out}\n{}",
        larder.logs()
    );
    assert_eq!(
        installed_gems(&root.join("app/web/vendor/bundle")),
        ["middle-0.3.1", "rack-1.0.0"]
    );
    assert_eq!(
        upstream.requests(),
        Vec::<String>::new(),
        "a client went upstream"
    );
}
