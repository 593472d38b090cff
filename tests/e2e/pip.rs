//! pip end to end: a fixture simple index (real sdists and wheels, real sha256) behind a static
//! upstream, a real Larder, and the real pip 23.2 installing from the per-request index and
//! from the unpacked bundle with no index at all.

use crate::support::clients::{pip, run, venv};
use crate::support::pip_fixtures::{
    build_sdist, build_sdist_with, build_wheel_with, write_simple_index, FixtureFile,
};
use crate::support::*;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The fixture upstream: `<url>/pypi/simple/` (PEP 691 JSON pages, one project HTML only) and
/// `<url>/direct/urldep-1.0.tar.gz` for a direct URL requirement.
pub(crate) struct Upstream {
    pub(crate) server: StaticServer,
    _dir: tempfile::TempDir,
    root: PathBuf,
    files: BTreeMap<String, FixtureFile>,
}

impl Upstream {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dist = dir.path().join("dist");
        std::fs::create_dir_all(&dist).unwrap();
        // licences of both core metadata fields; Requires-Dist with and without markers (the
        // graph the pip SBOM test expects, see PIP_GRAPH)
        let alpha_license = [("License-Expression", "MIT OR Apache-2.0")];
        let mut files = vec![
            build_sdist_with(
                &dist,
                "alpha",
                "1.0",
                &["beta==2.0"],
                Some(">=3.8"),
                &alpha_license,
            )
            .unwrap(),
            build_wheel_with(
                &dist,
                "alpha",
                "1.0",
                &["beta==2.0"],
                Some(">=3.8"),
                &alpha_license,
            )
            .unwrap(),
            build_sdist_with(
                &dist,
                "beta",
                "2.0",
                &["gamma==3.0 ; extra == \"extra\""],
                None,
                &[("License", "BSD-3-Clause"), ("Provides-Extra", "extra")],
            )
            .unwrap(),
            build_sdist_with(
                &dist,
                "gamma",
                "3.0",
                &["alpha ; extra == \"tests\""],
                None,
                &[
                    ("License", "Custom fixture licence"),
                    ("Provides-Extra", "tests"),
                ],
            )
            .unwrap(),
            // reads like an expression, is no licence of the SPDX list
            build_sdist_with(
                &dist,
                "Zope.Fixture",
                "3.0",
                &["Beta>=2 ; python_version >= \"3\""],
                None,
                &[("License", "BSD")],
            )
            .unwrap(),
            build_sdist(&dist, "builddep", "1.0", &[], None).unwrap(),
            build_sdist(&dist, "delta", "1.0", &[], None).unwrap(),
            build_sdist(&dist, "htmlonly", "1.0", &[], None).unwrap(),
        ];
        let root = dir.path().join("root");
        write_simple_index(&root.join("pypi"), &files).unwrap();
        // One project only has an HTML page: the HTML fallback.
        std::fs::remove_file(root.join("pypi/simple/htmlonly/index.json")).unwrap();
        let direct = root.join("direct");
        std::fs::create_dir_all(&direct).unwrap();
        let urldep = build_sdist(&direct, "urldep", "1.0", &[], None).unwrap();
        files.push(urldep);
        let server = StaticServer::start(&root).await;
        Self {
            server,
            root,
            files: files.into_iter().map(|f| (f.filename.clone(), f)).collect(),
            _dir: dir,
        }
    }

    pub(crate) fn index(&self) -> String {
        format!("{}/pypi/simple/", self.server.url)
    }

    pub(crate) fn sha(&self, filename: &str) -> &str {
        &self.files[filename].sha256
    }
}

async fn larder(upstream: &Upstream) -> Larder {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_PYPI_INDEX".into(), upstream.index());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    larder
}

/// A git server speaking the smart HTTP protocol (`git http-backend`), for VCS requirements.
pub(crate) struct GitHttp {
    pub(crate) url: String,
    child: Child,
}

const GIT_HTTP_PY: &str = r#"
import http.server, os, subprocess, sys
root, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.run()
    def do_POST(self):
        self.run()
    def run(self):
        path, _, query = self.path.partition("?")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, CONTENT_LENGTH=str(len(body)),
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                   GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, rest = out.partition(sep)
        status, headers = 200, []
        for line in head.decode().splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

impl GitHttp {
    pub(crate) async fn start(root: &Path) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", GIT_HTTP_PY])
            .arg(root)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(std::time::Instant::now() < deadline, "git server");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A buildable Python project in a bare git repository `<root>/<name>.git`: the files of a
/// fixture sdist (its in-tree build backend included). Returns the commit.
pub(crate) fn python_git_repo(root: &Path, work: &Path, name: &str, version: &str) -> String {
    let dist = work.join(format!("{name}-dist"));
    std::fs::create_dir_all(&dist).unwrap();
    let sdist = build_sdist(&dist, name, version, &[], None).unwrap();
    let repo = GitRepo::new(work.join(format!("{name}-src")));
    let tree = untar(&std::fs::read(&sdist.path).unwrap());
    for (path, content) in tree {
        if let (Some((_, rel)), Some(content)) = (path.split_once('/'), content) {
            repo.write(rel, &String::from_utf8(content).unwrap());
        }
    }
    let commit = repo.commit("release");
    std::fs::create_dir_all(root).unwrap();
    git(
        root,
        &["clone", "-q", "--bare", &repo.url(), &format!("{name}.git")],
    );
    commit
}

/// Unpack a bundle onto disk, with the request's configuration files written over `app/`.
fn unpack_bundle(bytes: &[u8], dest: &Path, config_files: &Value) {
    gnu_untar(bytes, dest);
    for f in config_files.as_array().unwrap() {
        let content = base64::engine::general_purpose::STANDARD
            .decode(f["content"].as_str().unwrap())
            .unwrap();
        std::fs::write(dest.join(f["path"].as_str().unwrap()), content).unwrap();
    }
}

fn dependency<'a>(packages: &'a Value, name: &str) -> &'a Value {
    packages["packages"][0]["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no dependency {name} in {packages}"))
}

fn store_files(larder: &Larder, prefix: &str) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &larder.data.path().join(prefix),
        larder.data.path(),
        &mut out,
    );
    out.sort();
    out
}

pub(crate) const PYPROJECT: &str = "[project]\nname = \"demo-app\"\nversion = \"0.1.0\"\n";

#[tokio::test]
async fn plain_pins_build_requirements_real_pip_offline_and_cached_second_request() {
    let upstream = Upstream::start().await;
    let mut larder = larder(&upstream).await;
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("pyproject.toml", PYPROJECT)
        .write(
            "requirements.txt",
            "# plain pins\nalpha==1.0\nbeta==2.0  # a comment\nhtmlonly==1.0\n",
        )
        .write("requirements-build.txt", "builddep==1.0\n");
    let commit = repo.commit("pins");
    let body = json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"],
        "flags": ["pip-allow-binary"]});
    let id = larder.submit(body.clone()).await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let reasons: Vec<String> = done["state_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state_reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r == "Fetching the pip dependencies at the \".\" directory"),
        "{reasons:?}"
    );

    // Packages: one pip package, build requirements are dev.
    let (_, packages) = larder.get(&format!("/api/v1/requests/{id}/packages")).await;
    let pkg = &packages["packages"][0];
    assert_eq!(pkg["type"], "pip");
    assert_eq!(pkg["name"], "demo-app");
    assert_eq!(pkg["version"], "0.1.0");
    assert_eq!(dependency(&packages, "alpha")["dev"], false);
    assert_eq!(dependency(&packages, "alpha")["version"], "1.0");
    assert_eq!(dependency(&packages, "builddep")["dev"], true);
    assert_eq!(dependency(&packages, "htmlonly")["version"], "1.0");

    // The bundle: app/ is the commit; sdists, the wheel (pip-allow-binary), the find-links page.
    let (bytes, _) = larder.download(id).await;
    assert_app_is_commit(&bytes, &repo.dir, &commit);
    let bundle = untar(&bytes);
    for f in [
        "deps/pip/alpha/alpha-1.0.tar.gz",
        "deps/pip/alpha/alpha-1.0-py3-none-any.whl",
        "deps/pip/beta/beta-2.0.tar.gz",
        "deps/pip/htmlonly/htmlonly-1.0.tar.gz",
        "deps/pip/builddep/builddep-1.0.tar.gz",
        "deps/pip/index.html",
    ] {
        assert!(bundle.contains_key(f), "{f} missing: {:?}", bundle.keys());
    }
    assert_eq!(
        bundle["deps/pip/beta/beta-2.0.tar.gz"].as_deref().unwrap(),
        std::fs::read(&upstream.files["beta-2.0.tar.gz"].path).unwrap()
    );
    assert!(!bundle.contains_key("deps/pip/delta/delta-1.0.tar.gz"));

    // The environment: PIP_INDEX_URL with the token as the Basic password.
    let (_, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    let index_url = env["PIP_INDEX_URL"]["value"].as_str().unwrap().to_string();
    assert_eq!(env["PIP_INDEX_URL"]["kind"], "literal");
    assert!(
        index_url.starts_with("http://__token__:")
            && index_url.ends_with(&format!("/repos/{id}/pip/simple/")),
        "{index_url}"
    );

    // The per-request index: negotiation, only this request's files, tokens.
    let token = index_url
        .trim_start_matches("http://__token__:")
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let page = |accept: &'static str, name: &str, token: &str| {
        http.get(format!("{}/repos/{id}/pip/simple/{name}/", larder.url))
            .basic_auth("__token__", Some(token))
            .header("Accept", accept)
            .send()
    };
    let resp = page(
        "application/vnd.pypi.simple.v1+json, text/html;q=0.01",
        "alpha",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.pypi.simple.v1+json"
    );
    let json: Value = resp.json().await.unwrap();
    let names: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha-1.0-py3-none-any.whl", "alpha-1.0.tar.gz"]);
    assert_eq!(
        json["files"][1]["hashes"]["sha256"],
        upstream.sha("alpha-1.0.tar.gz")
    );
    assert_eq!(json["files"][1]["requires-python"], ">=3.8");
    let html = page("text/html", "alpha", &token)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "alpha-1.0.tar.gz#sha256={}\" data-requires-python=\"&gt;=3.8\"",
            upstream.sha("alpha-1.0.tar.gz")
        )),
        "{html}"
    );
    assert_eq!(
        page("text/html", "delta", &token).await.unwrap().status(),
        404
    );
    assert_eq!(
        page("text/html", "alpha", "wrong").await.unwrap().status(),
        401
    );

    // Real pip, no hashes, from the per-request index into a fresh venv.
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let unpacked = work.path().join("bundle");
    let (_, config_files) = larder
        .get(&format!("/api/v1/requests/{id}/configuration-files"))
        .await;
    unpack_bundle(&bytes, &unpacked, &config_files);
    let py = venv(&work.path().join("venv-online"), &home);
    let reqs = unpacked.join("app/requirements.txt");
    let (ok, log) = pip(
        &py,
        &home,
        &[("PIP_INDEX_URL", &index_url)],
        &["install", "-r", reqs.to_str().unwrap()],
    );
    assert!(ok, "pip install -r requirements.txt failed:\n{log}");
    let (ok, log) = run(Command::new(&py).args(["-c", "import alpha, beta, htmlonly"]));
    assert!(ok, "{log}");
    // An undeclared package is not there.
    let (ok, log) = pip(
        &py,
        &home,
        &[("PIP_INDEX_URL", &index_url)],
        &["install", "delta==1.0"],
    );
    assert!(!ok, "installing an undeclared package worked:\n{log}");

    // Offline: the bundle alone.
    let py = venv(&work.path().join("venv-offline"), &home);
    let find_links = unpacked.join("deps/pip");
    let (ok, log) = pip(
        &py,
        &home,
        &[],
        &[
            "install",
            "--no-index",
            "--find-links",
            find_links.to_str().unwrap(),
            "-r",
            reqs.to_str().unwrap(),
        ],
    );
    assert!(ok, "offline pip install failed:\n{log}");
    let (ok, log) = run(Command::new(&py).args(["-c", "import alpha, beta, htmlonly"]));
    assert!(ok, "{log}");

    // The same pins again: nothing is asked of the upstream. (A fresh client: the pooled
    // connection may have idled out while pip ran.)
    larder.http = reqwest::Client::new();
    upstream.server.clear_requests();
    let again = larder.submit(body).await;
    let done = larder.wait(again).await;
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(upstream.server.requests(), Vec::<String>::new());
}

/// The pip graph the hashed request's SBOM must have: each fixture's Requires-Dist among the
/// request's dependencies. alpha needs beta; beta needs gamma with its extra `extra`, which the
/// request asks (`beta[extra]`); gamma needs alpha only with `tests`, which nobody asks; zope's
/// python_version marker is not evaluated. urldep and vcsdep need nothing (checked apart).
const PIP_GRAPH: &[(&str, &[&str])] = &[
    ("alpha@1.0", &["beta@2.0"]),
    ("beta@2.0", &["gamma@3.0"]),
    ("gamma@3.0", &[]),
    ("zope-fixture@3.0", &["beta@2.0"]),
];

#[tokio::test]
async fn hashes_extras_markers_include_vcs_and_url_with_require_hashes() {
    let upstream = Upstream::start().await;
    let larder = larder(&upstream).await;
    let work = tempfile::tempdir().unwrap();
    let git_root = work.path().join("git");
    let vcs_commit = python_git_repo(&git_root, work.path(), "vcsdep", "0.5");
    let git_http = GitHttp::start(&git_root).await;

    let urldep_sha = upstream.sha("urldep-1.0.tar.gz").to_string();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("pyproject.toml", PYPROJECT)
        .write(
            "requirements.txt",
            &format!(
                "--require-hashes\nalpha==1.0 \\\n    --hash=sha256:{} \\\n    --hash=sha256:{}\nbeta[extra]==2.0 --hash=sha256:{}\nZope.Fixture==3.0 ; python_version >= \"3\" --hash=sha256:{}\n-r more/reqs.txt\n",
                upstream.sha("alpha-1.0.tar.gz"),
                upstream.sha("alpha-1.0-py3-none-any.whl"),
                upstream.sha("beta-2.0.tar.gz"),
                upstream.sha("zope_fixture-3.0.tar.gz"),
            ),
        )
        .write(
            "more/reqs.txt",
            &format!(
                "gamma==3.0 --hash=sha256:{}\nurldep @ {}/direct/urldep-1.0.tar.gz#sha256={urldep_sha}\ngit+{}/vcsdep.git@{vcs_commit}#egg=vcsdep\n",
                upstream.sha("gamma-3.0.tar.gz"),
                upstream.server.url,
                git_http.url,
            ),
        );
    let commit = repo.commit("hashed");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    // the SBOM (hashes, VCS and URL requirements) is valid in both formats; its graph is the
    // fetched files' Requires-Dist, its licences and distribution URLs their metadata's and
    // the files fetched
    let bom = crate::support::sbom::valid_sboms(&larder, id).await;
    let edges = crate::support::sbom::cyclonedx_edges(&bom);
    for (dependency, want) in PIP_GRAPH {
        let want: std::collections::BTreeSet<String> = want.iter().map(|d| d.to_string()).collect();
        assert_eq!(edges[*dependency], want, "{dependency}: {edges:?}");
    }
    for (from, to) in &edges {
        let external = from.starts_with("urldep@") || from.starts_with("vcsdep@");
        assert!(!external || to.is_empty(), "{from} -> {to:?}");
    }
    let licenses = crate::support::sbom::cyclonedx_licenses(&bom);
    assert_eq!(licenses["alpha@1.0"], "MIT OR Apache-2.0");
    assert_eq!(licenses["beta@2.0"], "BSD-3-Clause");
    assert_eq!(licenses["gamma@3.0"], "Custom fixture licence");
    assert_eq!(licenses["zope-fixture@3.0"], "BSD");
    let (_, spdx) = larder
        .get(&format!("/api/v1/requests/{id}/sbom?format=spdx"))
        .await;
    let declared = |name: &str| {
        let package = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        package["licenseDeclared"].as_str().unwrap().to_string()
    };
    assert_eq!(declared("alpha"), "MIT OR Apache-2.0");
    // a licence that is no SPDX expression is declared by its text
    let texts: BTreeMap<String, String> = spdx["hasExtractedLicensingInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let text = l["extractedText"].as_str().unwrap().to_string();
            (l["licenseId"].as_str().unwrap().to_string(), text)
        })
        .collect();
    assert_eq!(texts[&declared("zope-fixture")], "BSD");
    assert_eq!(texts[&declared("gamma")], "Custom fixture licence");
    let distributions = crate::support::sbom::cyclonedx_distributions(&bom);
    let base = &upstream.server.url;
    for (dependency, file) in [
        ("alpha@1.0", "alpha/alpha-1.0.tar.gz"),
        ("beta@2.0", "beta/beta-2.0.tar.gz"),
        ("gamma@3.0", "gamma/gamma-3.0.tar.gz"),
        ("zope-fixture@3.0", "zope-fixture/zope_fixture-3.0.tar.gz"),
    ] {
        assert_eq!(
            distributions[dependency],
            [format!("{base}/pypi/files/{file}")].into_iter().collect(),
            "{dependency}"
        );
    }
    let urldep: Vec<_> = distributions
        .iter()
        .filter(|(d, _)| d.starts_with("urldep@"))
        .flat_map(|(_, urls)| urls)
        .collect();
    assert_eq!(urldep, [&format!("{base}/direct/urldep-1.0.tar.gz")]);
    assert!(!distributions.keys().any(|d| d.starts_with("vcsdep@")));
    // the URL and git requirements' files are theirs in the SBOM too (their reported versions
    // are Cachito's, not the files')
    let hashes = crate::support::sbom::cyclonedx_hashes(&bom);
    let hashes_of = |prefix: &str| -> Vec<(String, String)> {
        hashes
            .iter()
            .filter(|(d, _)| d.starts_with(prefix))
            .flat_map(|(_, h)| h.iter().cloned())
            .collect()
    };
    assert_eq!(
        hashes_of("urldep@"),
        [("SHA-256".to_string(), urldep_sha.clone())]
    );
    assert_eq!(hashes_of("vcsdep@").len(), 1, "{hashes:?}");

    let (_, packages) = larder.get(&format!("/api/v1/requests/{id}/packages")).await;
    assert_eq!(dependency(&packages, "zope-fixture")["version"], "3.0");
    assert_eq!(dependency(&packages, "gamma")["dev"], false);
    let vcs = dependency(&packages, "vcsdep");
    assert_eq!(
        vcs["version"],
        format!("git+{}/vcsdep.git@{vcs_commit}", git_http.url)
    );
    let url = dependency(&packages, "urldep");
    assert_eq!(
        url["version"],
        format!(
            "{}/direct/urldep-1.0.tar.gz#cachito_hash=sha256:{urldep_sha}",
            upstream.server.url
        )
    );

    let (bytes, _) = larder.download(id).await;
    let bundle = untar(&bytes);
    for f in [
        "deps/pip/alpha/alpha-1.0.tar.gz".to_string(),
        "deps/pip/zope-fixture/zope_fixture-3.0.tar.gz".to_string(),
        "deps/pip/gamma/gamma-3.0.tar.gz".to_string(),
        format!("deps/pip/external-urldep/urldep-external-sha256-{urldep_sha}.tar.gz"),
        format!("deps/pip/127.0.0.1/vcsdep/vcsdep-external-gitcommit-{vcs_commit}.tar.gz"),
    ] {
        assert!(bundle.contains_key(&f), "{f} missing: {:?}", bundle.keys());
    }
    // No wheel without pip-allow-binary.
    assert!(!bundle.contains_key("deps/pip/alpha/alpha-1.0-py3-none-any.whl"));

    // The rewritten include points the VCS and URL requirements at this request's index.
    let (_, config_files) = larder
        .get(&format!("/api/v1/requests/{id}/configuration-files"))
        .await;
    let files = config_files.as_array().unwrap();
    assert_eq!(files.len(), 1, "{config_files}");
    assert_eq!(files[0]["path"], "app/more/reqs.txt");
    let rewritten = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(files[0]["content"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(
        rewritten.contains(&format!("/repos/{id}/pip/files/127.0.0.1/vcsdep/")),
        "{rewritten}"
    );
    assert!(!rewritten.contains(&git_http.url), "{rewritten}");

    // Real pip in hash-checking mode from the per-request index.
    let (_, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    let index_url = env["PIP_INDEX_URL"]["value"].as_str().unwrap().to_string();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let unpacked = work.path().join("bundle");
    unpack_bundle(&bytes, &unpacked, &config_files);
    let py = venv(&work.path().join("venv"), &home);
    let reqs = unpacked.join("app/requirements.txt");
    let (ok, log) = pip(
        &py,
        &home,
        &[("PIP_INDEX_URL", &index_url)],
        &["install", "--require-hashes", "-r", reqs.to_str().unwrap()],
    );
    assert!(ok, "pip install --require-hashes failed:\n{log}");
    let (ok, log) = run(Command::new(&py).args([
        "-c",
        "import alpha, beta, gamma, zope_fixture, urldep, vcsdep; assert vcsdep.__version__ == '0.5'",
    ]));
    assert!(ok, "{log}");
    let (ok, log) = pip(
        &py,
        &home,
        &[("PIP_INDEX_URL", &index_url)],
        &["download", "--no-deps", "-d", "dl", "delta==1.0"],
    );
    assert!(!ok, "an undeclared package was served:\n{log}");
}

#[tokio::test]
async fn tampered_sdist_fails_naming_the_file_and_stores_nothing() {
    let upstream = Upstream::start().await;
    let larder = larder(&upstream).await;
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("pyproject.toml", PYPROJECT).write(
        "requirements.txt",
        &format!(
            "gamma==3.0 --hash=sha256:{}\nbeta==2.0 --hash=sha256:{}\n",
            upstream.sha("gamma-3.0.tar.gz"),
            upstream.sha("beta-2.0.tar.gz"),
        ),
    );
    let commit = repo.commit("hashed");
    // The upstream file changes after the requirements were hashed.
    let other = work.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let evil = build_sdist(&other, "beta", "2.0", &["evil==1"], None).unwrap();
    std::fs::copy(
        &evil.path,
        upstream.root.join("pypi/files/beta/beta-2.0.tar.gz"),
    )
    .unwrap();

    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    let reason = done["state_reason"].as_str().unwrap();
    assert!(reason.contains("beta-2.0.tar.gz"), "{reason}");
    assert_eq!(done["error_type"], "InvalidChecksum", "{done}");
    assert!(
        upstream
            .server
            .requests()
            .contains(&"/pypi/files/gamma/gamma-3.0.tar.gz".to_string()),
        "{:?}",
        upstream.server.requests()
    );
    assert_eq!(store_files(&larder, "deps/pip"), Vec::<String>::new());
    assert_eq!(store_files(&larder, "deps/pip-index"), Vec::<String>::new());

    // Without hashes the index sha256 is the reference: same outcome.
    let repo2 = GitRepo::new(work.path().join("repo2"));
    repo2
        .write("pyproject.toml", PYPROJECT)
        .write("requirements.txt", "gamma==3.0\nbeta==2.0\n");
    let commit2 = repo2.commit("plain");
    let id = larder
        .submit(json!({"repo": repo2.url(), "ref": commit2, "pkg_managers": ["pip"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["state_reason"]
            .as_str()
            .unwrap()
            .contains("beta-2.0.tar.gz"),
        "{done}"
    );
    assert_eq!(store_files(&larder, "deps/pip"), Vec::<String>::new());
}

#[tokio::test]
async fn unpinned_file_and_escaping_requirements_fail_with_clear_reasons() {
    let upstream = Upstream::start().await;
    let larder = larder(&upstream).await;
    let work = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        (
            "unpinned",
            "alpha>=1.0\n",
            "is not pinned to an exact version",
        ),
        (
            "file",
            "beta @ file:///tmp/beta-2.0.tar.gz\n",
            "Direct references with 'file' scheme are not supported",
        ),
        (
            "index-url",
            "--index-url https://evil.example/simple\nalpha==1.0\n",
            "--index-url",
        ),
    ];
    for (name, text, expected) in cases {
        let repo = GitRepo::new(work.path().join(name));
        repo.write("pyproject.toml", PYPROJECT)
            .write("requirements.txt", text);
        let commit = repo.commit(name);
        let id = larder
            .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"]}))
            .await;
        let done = larder.wait(id).await;
        assert_eq!(done["state"], "failed", "{name}: {done}");
        let reason = done["state_reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{name}: {reason}");
        assert!(reason.contains("requirements.txt"), "{name}: {reason}");
    }

    // A requirements file outside the repository: refused at submission.
    let (status, body) = larder
        .post(
            "/api/v1/requests",
            &json!({"repo": "https://example.com/r.git", "ref": "a".repeat(40),
                "pkg_managers": ["pip"],
                "packages": {"pip": [{"path": ".", "requirements_files": ["../outside.txt"]}]}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // A symlinked requirements file escaping the repository: failed at the worker.
    let outside = work.path().join("outside.txt");
    std::fs::write(&outside, "alpha==1.0\n").unwrap();
    let repo = GitRepo::new(work.path().join("symlink"));
    repo.write("pyproject.toml", PYPROJECT)
        .symlink("reqs/prod.txt", outside.to_str().unwrap());
    let commit = repo.commit("symlink");
    let id = larder
        .submit(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"],
            "packages": {"pip": [{"path": ".", "requirements_files": ["reqs/prod.txt"]}]}}),
        )
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    let id = larder
        .submit(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"],
            "flags": ["remove-unsafe-symlinks"],
            "packages": {"pip": [{"path": ".", "requirements_files": ["reqs/prod.txt"]}]}}),
        )
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["state_reason"]
            .as_str()
            .unwrap()
            .contains("reqs/prod.txt"),
        "{done}"
    );
    assert_eq!(store_files(&larder, "deps/pip"), Vec::<String>::new());
}

#[tokio::test]
async fn application_without_project_metadata_is_named_after_its_repository() {
    let upstream = Upstream::start().await;
    let larder = larder(&upstream).await;
    let work = tempfile::tempdir().unwrap();
    // no pyproject.toml, setup.cfg or setup.py: only pinned requirements, as most apps have
    let repo = GitRepo::new(work.path().join("My_App.git"));
    repo.write("requirements.txt", "alpha==1.0\n")
        .write("tools/requirements.txt", "beta==2.0\n");
    let commit = repo.commit("requirements only");
    let id = larder
        .submit(
            json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"],
            "packages": {"pip": [{"path": "."}, {"path": "tools"}]}}),
        )
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let version = format!("0.0.0+{}", &commit[..7]);
    let packages: Vec<(String, String, Value)> = done["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["path"].clone(),
            )
        })
        .collect();
    assert_eq!(
        packages,
        vec![
            ("my-app".to_string(), version.clone(), Value::Null),
            ("my-app-tools".to_string(), version, json!("tools")),
        ]
    );
    let logs = larder.text(&format!("/api/v1/requests/{id}/logs")).await;
    assert!(logs.contains("using the repository's name"), "{logs}");
}
