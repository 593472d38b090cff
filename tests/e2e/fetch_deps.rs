//! `larder fetch-deps` (Hermeto's command line, no service): fixture upstreams, the real
//! `larder` binary with a fresh cache, then `inject-files` + `generate-env` and the real client
//! installing offline from the output directory as Hermeto's documentation describes; a second
//! run asks the upstream nothing; a wrong hash fails closed; bad input is a usage error.

use crate::support::clients::{npm, pip, run, venv};
use crate::support::npm_fixtures::{
    build, lockfile, write_registry, FixturePackage, RootProject, TreeEntry,
};
use crate::support::pip_fixtures::{build_sdist, write_simple_index};
use crate::support::sbom::assert_valid;
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A closed port: a client that tried the network there fails at once.
const NOWHERE: &str = "http://127.0.0.1:9/";

/// `larder <args>` as on a clean machine: a fresh HOME, the cache in `cache`, `env` added.
fn larder(home: &Path, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_larder"), home);
    cmd.args(args)
        .env("LARDER_CACHE_DIR", cache)
        // fixture upstreams listen on loopback
        .env("LARDER_ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("LARDER_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `larder fetch-deps --source <source> --output <output> <input>`, as [`larder`] runs it.
fn fetch_deps(
    home: &Path,
    cache: &Path,
    source: &str,
    output: &str,
    input: &str,
    env: &[(&str, &str)],
) -> (i32, String) {
    larder(
        home,
        cache,
        &["fetch-deps", "--source", source, "--output", output, input],
        env,
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The components' purls of a CycloneDX document.
fn purls(bom: &Value) -> BTreeSet<String> {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str().map(str::to_string))
        .collect()
}

/// The environment `generate-env --format json` gives, as pairs.
fn env_json(home: &Path, cache: &Path, output: &Path) -> Vec<(String, String)> {
    let (code, text) = larder(
        home,
        cache,
        // with Hermeto's global option, as Konflux's task passes it
        &[
            "--log-level=info",
            "generate-env",
            output.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    let start = text.find('[').unwrap();
    let vars: Value = serde_json::from_str(text[start..].lines().next().unwrap()).unwrap();
    vars.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A second run on the same input into a new output directory: the cache answers, and the
/// upstream is asked nothing.
fn assert_warm_run_asks_nothing(
    home: &Path,
    cache: &Path,
    source: &Path,
    input: &str,
    env: &[(&str, &str)],
    upstream: &StaticServer,
) {
    upstream.clear_requests();
    let output = tempfile::tempdir().unwrap();
    let (code, log) = fetch_deps(
        home,
        cache,
        source.to_str().unwrap(),
        output.path().to_str().unwrap(),
        input,
        env,
    );
    assert_eq!(code, 0, "warm run: {log}");
    assert_eq!(upstream.requests(), Vec::<String>::new(), "warm run: {log}");
}

struct NpmUpstream {
    server: StaticServer,
    _dir: tempfile::TempDir,
    root: RootProject,
    tree: Vec<TreeEntry>,
}

/// A registry of three packages (one scoped, one a dependency of another) and the root
/// project depending on them.
async fn npm_upstream() -> NpmUpstream {
    let dir = tempfile::tempdir().unwrap();
    let b = build(&FixturePackage::new("fx-b", "1.0.0"));
    let a = build(&FixturePackage::new("fx-a", "1.0.0").dep("fx-b", "^1.0.0"));
    let c = build(&FixturePackage::new("@fx/c", "2.0.0"));
    write_registry(
        dir.path(),
        "https://registry.npmjs.org/",
        &[a.clone(), b.clone(), c.clone()],
    )
    .unwrap();
    let mut root = RootProject {
        name: "demo-web".into(),
        version: "1.0.0".into(),
        ..Default::default()
    };
    root.dependencies.insert("fx-a".into(), "^1.0.0".into());
    root.dependencies.insert("@fx/c".into(), "^2.0.0".into());
    let entry = |pkg, dev| TreeEntry {
        location: format!("node_modules/{}", &pkg_name(&pkg)),
        pkg,
        dev,
        optional: false,
    };
    let tree = vec![entry(a, false), entry(b, false), entry(c, false)];
    let server = StaticServer::start(dir.path()).await;
    NpmUpstream {
        server,
        _dir: dir,
        root,
        tree,
    }
}

fn pkg_name(p: &crate::support::npm_fixtures::BuiltPackage) -> String {
    p.name.clone()
}

/// A committed npm project at `dir` (`sub` below the repository's root, "" for the root).
fn npm_project(repo: &GitRepo, sub: &str, up: &NpmUpstream) {
    let at = |f: &str| {
        if sub.is_empty() {
            f.to_string()
        } else {
            format!("{sub}/{f}")
        }
    };
    let lock = lockfile(3, &up.root, &up.tree, "https://registry.npmjs.org/");
    repo.write(
        &at("package.json"),
        &serde_json::to_string_pretty(&up.root.package_json()).unwrap(),
    )
    .write(
        &at("package-lock.json"),
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
}

struct PipUpstream {
    server: StaticServer,
    _dir: tempfile::TempDir,
}

impl PipUpstream {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dist = dir.path().join("dist");
        std::fs::create_dir_all(&dist).unwrap();
        let files = vec![
            build_sdist(&dist, "alpha", "1.0", &["beta==2.0"], None).unwrap(),
            build_sdist(&dist, "beta", "2.0", &[], None).unwrap(),
        ];
        let root = dir.path().join("root");
        write_simple_index(&root.join("pypi"), &files).unwrap();
        let server = StaticServer::start(&root).await;
        Self { server, _dir: dir }
    }

    fn index(&self) -> String {
        format!("{}/pypi/simple/", self.server.url)
    }
}

const PYPROJECT: &str = "[project]\nname = \"demo-app\"\nversion = \"0.1.0\"\n";

fn pip_project(repo: &GitRepo, sub: &str) {
    let at = |f: &str| {
        if sub.is_empty() {
            f.to_string()
        } else {
            format!("{sub}/{f}")
        }
    };
    repo.write(&at("pyproject.toml"), PYPROJECT)
        .write(&at("requirements.txt"), "alpha==1.0\nbeta==2.0\n");
}

/// Every file below `dir`, relative, with its bytes (none when it does not exist).
fn tree_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.push((
                    e.path().strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_fetch_deps_then_real_npm_ci_offline_and_a_warm_run_asks_nothing() {
    let up = npm_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let repo = GitRepo::new(work.path().join("src"));
    npm_project(&repo, "", &up);
    repo.commit("npm project");
    let output = work.path().join("output");
    let registry = [("LARDER_NPM_REGISTRY", up.server.url.as_str())];
    let fetch = |input: &str| {
        fetch_deps(
            &home,
            &cache,
            repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            input,
            &registry,
        )
    };
    // the bare name form
    let (code, log) = fetch("npm");
    assert_eq!(code, 0, "{log}");
    assert!(!up.server.requests().is_empty());

    // Hermeto's layout: deps/npm/…, bom.json, .build-config.json
    let deps = tree_of(&output.join("deps/npm"));
    assert_eq!(
        deps.len(),
        3,
        "{:?}",
        deps.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    let bom = read_json(&output.join("bom.json"));
    assert_valid("cyclonedx", &bom);
    let want: BTreeSet<String> = [
        "pkg:npm/fx-a@1.0.0",
        "pkg:npm/fx-b@1.0.0",
        "pkg:npm/%40fx/c@2.0.0",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert!(want.is_subset(&purls(&bom)), "{:?}", purls(&bom));
    let config = read_json(&output.join(".build-config.json"));
    let files = config["project_files"].as_array().unwrap();
    let lock_file = files
        .iter()
        .find(|f| {
            f["abspath"]
                .as_str()
                .unwrap()
                .ends_with("/package-lock.json")
        })
        .unwrap_or_else(|| panic!("{config}"));
    assert_eq!(
        lock_file["abspath"].as_str().unwrap(),
        repo.dir
            .canonicalize()
            .unwrap()
            .join("package-lock.json")
            .to_str()
            .unwrap()
    );
    let template = lock_file["template"].as_str().unwrap();
    assert!(
        template.contains("\"file://${output_dir}/deps/npm/"),
        "{template}"
    );
    assert!(!template.contains("registry.npmjs.org"), "{template}");

    // inject-files for the output directory where the build sees it (moved), generate-env
    let moved = work.path().join("moved-output");
    npm_fixtures_copy(&output, &moved);
    let (code, log) = larder(
        &home,
        &cache,
        &[
            "inject-files",
            output.to_str().unwrap(),
            "--for-output-dir",
            moved.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let injected = std::fs::read_to_string(repo.dir.join("package-lock.json")).unwrap();
    assert!(
        injected.contains(&format!("\"file://{}/deps/npm/", moved.display())),
        "{injected}"
    );
    let env_file = work.path().join("larder.env");
    let (code, log) = larder(
        &home,
        &cache,
        &[
            "generate-env",
            output.to_str().unwrap(),
            "-o",
            env_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let env_text = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        env_text.lines().all(|l| l.starts_with("export ")),
        "{env_text}"
    );

    // the real npm, offline, no registry reachable, the original output gone
    std::fs::remove_dir_all(&output).unwrap();
    let requests = up.server.requests().len();
    let npm_home = work.path().join("npm-home");
    let (ok, log) = npm(
        &repo.dir,
        &npm_home,
        &[
            "ci",
            "--offline",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ],
        &[("npm_config_registry", NOWHERE)],
    );
    assert!(ok, "npm ci failed:\n{log}");
    for p in ["fx-a", "fx-b", "@fx/c"] {
        assert!(
            repo.dir
                .join("node_modules")
                .join(p)
                .join("package.json")
                .is_file(),
            "{p} not installed"
        );
    }
    assert_eq!(up.server.requests().len(), requests);

    // a second run on the same input, another output: the cache answers, nobody is asked
    git(&repo.dir, &["checkout", "--", "."]);
    std::fs::remove_dir_all(repo.dir.join("node_modules")).unwrap();
    up.server.clear_requests();
    let (code, log) = fetch(r#"{"type": "npm", "path": "."}"#);
    assert_eq!(code, 0, "{log}");
    assert_eq!(up.server.requests(), Vec::<String>::new());
    assert_eq!(
        tree_of(&output.join("deps/npm")),
        tree_of(&moved.join("deps/npm"))
    );
}

fn npm_fixtures_copy(from: &Path, to: &Path) {
    let (ok, log) = run(Command::new("cp").arg("-a").arg(from).arg(to));
    assert!(ok, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_fetch_deps_then_real_pip_offline_and_a_warm_run_asks_nothing() {
    let up = PipUpstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let repo = GitRepo::new(work.path().join("src"));
    pip_project(&repo, "py");
    repo.commit("pip project");
    let output = work.path().join("output");
    let index = up.index();
    let fetch = || {
        fetch_deps(
            &home,
            &cache,
            repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            r#"{"packages": [{"type": "pip", "path": "py", "requirements_files": ["requirements.txt"]}], "flags": []}"#,
            &[("LARDER_PYPI_INDEX", index.as_str())],
        )
    };
    let (code, log) = fetch();
    assert_eq!(code, 0, "{log}");
    for f in [
        "deps/pip/alpha/alpha-1.0.tar.gz",
        "deps/pip/beta/beta-2.0.tar.gz",
        "deps/pip/index.html",
    ] {
        assert!(
            output.join(f).is_file(),
            "{f}: {:?}",
            tree_of(&output)
                .into_iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
        );
    }
    let bom = read_json(&output.join("bom.json"));
    assert_valid("cyclonedx", &bom);
    assert!(
        purls(&bom).contains("pkg:pypi/alpha@1.0"),
        "{:?}",
        purls(&bom)
    );

    // Hermeto's pip variables, resolved for the output directory
    let env = env_json(&home, &cache, &output);
    let out_abs = output.canonicalize().unwrap();
    assert!(
        env.contains(&(
            "PIP_FIND_LINKS".into(),
            format!("{}/deps/pip", out_abs.display())
        )),
        "{env:?}"
    );
    assert!(
        env.contains(&("PIP_NO_INDEX".into(), "true".into())),
        "{env:?}"
    );
    // the env format, for where the build mounts the output (a path a shell must have quoted)
    let (code, text) = larder(
        &home,
        &cache,
        &[
            "generate-env",
            output.to_str().unwrap(),
            "--for-output-dir",
            "/mnt/hermeto output",
            "--format",
            "env",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.lines()
            .any(|l| l == "export PIP_FIND_LINKS='/mnt/hermeto output/deps/pip'"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "export PIP_NO_INDEX=true"),
        "{text}"
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");

    // the real pip with those variables only: no index anywhere
    let pip_home = work.path().join("pip-home");
    std::fs::create_dir_all(&pip_home).unwrap();
    let py = venv(&work.path().join("venv"), &pip_home);
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut with_nowhere = vars.clone();
    with_nowhere.push(("PIP_INDEX_URL", NOWHERE));
    let reqs = repo.dir.join("py/requirements.txt");
    let requests = up.server.requests().len();
    let (ok, log) = pip(
        &py,
        &pip_home,
        &with_nowhere,
        &["install", "-r", reqs.to_str().unwrap()],
    );
    assert!(ok, "offline pip install failed:\n{log}");
    let (ok, log) = run(Command::new(&py).args(["-c", "import alpha, beta"]));
    assert!(ok, "{log}");
    assert_eq!(up.server.requests().len(), requests);

    // a second run: the cache answers (the pins recorded too), nobody is asked
    up.server.clear_requests();
    let (code, log) = fetch();
    assert_eq!(code, 0, "{log}");
    assert_eq!(up.server.requests(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_package_managers_and_merged_sboms_validate() {
    let npm_up = npm_upstream().await;
    let pip_up = PipUpstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let repo = GitRepo::new(work.path().join("src"));
    npm_project(&repo, "web", &npm_up);
    pip_project(&repo, "py");
    repo.commit("two projects");
    let index = pip_up.index();
    let upstreams = [
        ("LARDER_NPM_REGISTRY", npm_up.server.url.as_str()),
        ("LARDER_PYPI_INDEX", index.as_str()),
    ];
    let fetch = |output: &Path, input: &str, extra: &[&str]| {
        let mut args = vec![
            "fetch-deps",
            "--source",
            repo.dir.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(input);
        let (code, log) = larder(&home, &cache, &args, &upstreams);
        assert_eq!(code, 0, "{input}: {log}");
        read_json(&output.join("bom.json"))
    };
    let (npm_out, pip_out, both_out, spdx_out) = (
        work.path().join("npm"),
        work.path().join("pip"),
        work.path().join("both"),
        work.path().join("spdx"),
    );
    let npm_bom = fetch(&npm_out, r#"{"type": "npm", "path": "web"}"#, &[]);
    let pip_bom = fetch(&pip_out, r#"{"type": "pip", "path": "py"}"#, &[]);
    let list = r#"[{"type": "npm", "path": "web"}, {"type": "pip", "path": "py"}]"#;
    let both_bom = fetch(&both_out, list, &[]);
    assert_valid("cyclonedx", &both_bom);
    let spdx = fetch(&spdx_out, list, &["--sbom-output-type", "spdx"]);
    assert_valid("spdx", &spdx);
    assert!(both_out.join("deps/npm").is_dir() && both_out.join("deps/pip").is_dir());

    let merged_file = work.path().join("merged.json");
    let (code, log) = larder(
        &home,
        &cache,
        &[
            "merge-sboms",
            npm_out.join("bom.json").to_str().unwrap(),
            pip_out.join("bom.json").to_str().unwrap(),
            "-o",
            merged_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let merged = read_json(&merged_file);
    assert_valid("cyclonedx", &merged);
    let union: BTreeSet<String> = purls(&npm_bom).union(&purls(&pip_bom)).cloned().collect();
    assert_eq!(purls(&merged), union);
    // one run of both package managers names what the two runs did
    assert_eq!(purls(&both_bom), union);
    // the same SBOM twice merges into one of its components, each once
    let (code, log) = larder(
        &home,
        &cache,
        &[
            "merge-sboms",
            npm_out.join("bom.json").to_str().unwrap(),
            merged_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let again: Value = serde_json::from_str(&log[log.find('{').unwrap()..]).unwrap();
    assert_eq!(purls(&again), union);
    assert_eq!(
        again["components"].as_array().unwrap().len(),
        merged["components"].as_array().unwrap().len()
    );
    // one file is not a merge
    let (code, _) = larder(
        &home,
        &cache,
        &["merge-sboms", merged_file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);

    // SPDX: two runs' documents merge into one valid document, each package once (by purl),
    // every relationship of both kept
    let (npm_spdx_out, pip_spdx_out) = (work.path().join("npm-spdx"), work.path().join("pip-spdx"));
    let spdx_type = ["--sbom-output-type", "spdx"];
    let npm_spdx = fetch(
        &npm_spdx_out,
        r#"{"type": "npm", "path": "web"}"#,
        &spdx_type,
    );
    let pip_spdx = fetch(
        &pip_spdx_out,
        r#"{"type": "pip", "path": "py"}"#,
        &spdx_type,
    );
    let merge = |files: &[&Path], extra: &[&str]| {
        let out = work.path().join("merged-any.json");
        let mut args = vec!["merge-sboms"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        args.extend_from_slice(&["-o", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let (code, log) = larder(&home, &cache, &args, &[]);
        assert_eq!(code, 0, "{log}");
        read_json(&out)
    };
    let (npm_spdx_file, pip_spdx_file) =
        (npm_spdx_out.join("bom.json"), pip_spdx_out.join("bom.json"));
    let merged_spdx = merge(
        &[&npm_spdx_file, &pip_spdx_file],
        &["--sbom-output-type", "spdx", "--sbom-name", "web-and-py"],
    );
    assert_valid("spdx", &merged_spdx);
    assert_eq!(merged_spdx["name"], "web-and-py");
    let spdx_union: Vec<String> = spdx_purls(&npm_spdx)
        .into_iter()
        .chain(spdx_purls(&pip_spdx))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        spdx_purls(&merged_spdx),
        spdx_union,
        "a package lost or twice"
    );
    assert!(spdx_union.len() > 4, "{spdx_union:?}");
    let ids: BTreeSet<&str> = merged_spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), spdx_union.len(), "SPDXIDs not unique");
    let edges: BTreeSet<_> = spdx_edges(&npm_spdx)
        .union(&spdx_edges(&pip_spdx))
        .cloned()
        .collect();
    assert!(
        edges.iter().any(|(_, kind, _)| kind == "DEPENDS_ON"),
        "{edges:?}"
    );
    assert_eq!(spdx_edges(&merged_spdx), edges);
    // the same document again: nothing twice
    let again = merge(
        &[
            &npm_spdx_file,
            &pip_spdx_file,
            &merged_file_of(&work, &merged_spdx),
        ],
        &["--sbom-output-type", "spdx"],
    );
    assert_valid("spdx", &again);
    assert_eq!(spdx_purls(&again), spdx_union);
    // a mix (Hermeto's merge converts): CycloneDX and SPDX into either format
    let mixed = merge(
        &[&npm_out.join("bom.json"), &pip_spdx_file],
        &["--sbom-output-type", "spdx"],
    );
    assert_valid("spdx", &mixed);
    assert_eq!(spdx_purls(&mixed), spdx_union);
    let mixed = merge(&[&npm_out.join("bom.json"), &pip_spdx_file], &[]);
    assert_valid("cyclonedx", &mixed);
    assert_eq!(purls(&mixed), union);
}

/// `doc` written to a file of `work` (for a merge of a merge).
fn merged_file_of(work: &tempfile::TempDir, doc: &Value) -> PathBuf {
    let file = work.path().join("merged-spdx.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    file
}

/// Every purl of an SPDX document's packages, sorted, a package's repeated as often as it is
/// there.
fn spdx_purls(doc: &Value) -> Vec<String> {
    let mut purls: Vec<String> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["referenceType"] == "purl")
        .map(|r| r["referenceLocator"].as_str().unwrap().to_string())
        .collect();
    purls.sort();
    purls
}

/// An SPDX document's relationships between packages, by their purls (`DOCUMENT` for it).
fn spdx_edges(doc: &Value) -> BTreeSet<(String, String, String)> {
    let mut purl_of: std::collections::BTreeMap<&str, String> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["SPDXID"].as_str().unwrap(),
                p["externalRefs"][0]["referenceLocator"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    purl_of.insert("SPDXRef-DOCUMENT", "DOCUMENT".into());
    doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let end = |k: &str| purl_of[r[k].as_str().unwrap()].clone();
            (
                end("spdxElementId"),
                r["relationshipType"].as_str().unwrap().to_string(),
                end("relatedSpdxElement"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_hash_fails_closed_and_bad_input_is_a_usage_error() {
    let up = npm_upstream().await;
    let work = tempfile::tempdir().unwrap();
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let repo = GitRepo::new(work.path().join("src"));
    npm_project(&repo, "", &up);
    // the lockfile promises other bytes for fx-b
    let lock_path = repo.dir.join("package-lock.json");
    let mut lock = read_json(&lock_path);
    let wrong = format!("sha512-{}", "A".repeat(86) + "==");
    lock["packages"]["node_modules/fx-b"]["integrity"] = Value::String(wrong);
    repo.write(
        "package-lock.json",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    repo.commit("a wrong hash");
    let output = work.path().join("output");
    let registry = [("LARDER_NPM_REGISTRY", up.server.url.as_str())];
    let fetch = |input: &str| {
        fetch_deps(
            &home,
            &cache,
            repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            input,
            &registry,
        )
    };
    // an earlier run's results in the output directory do not outlive a failed run
    std::fs::create_dir_all(&output).unwrap();
    std::fs::write(output.join("bom.json"), "{}").unwrap();
    std::fs::write(output.join(".build-config.json"), "{}").unwrap();
    let (code, log) = fetch("npm");
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("fx-b"), "the failure names the package: {log}");
    assert!(!output.join("bom.json").exists());
    assert!(!output.join(".build-config.json").exists());
    // nothing of the failed run entered the cache's dependencies
    let stored: Vec<PathBuf> = tree_of(&cache.join("deps"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert!(
        stored
            .iter()
            .all(|p| !p.to_string_lossy().contains("fx-b-1.0.0")),
        "{stored:?}"
    );

    for bad in [
        "nosuch",
        r#"{"type": "npm", "paht": "x"}"#,
        r#"{"type": "npm", "path": "../outside"}"#,
        r#"{"packages": [{"type": "npm"}], "flags": ["no-such-flag"]}"#,
        r#"{"packages": []}"#,
        r#"{"type": "npm""#,
        r#"{"type": "yarn", "workspaces": ["a"]}"#,
    ] {
        let (code, log) = fetch(bad);
        assert_eq!(code, 2, "{bad}: {log}");
        assert!(log.contains("Error: "), "{bad}: {log}");
    }
}

/// git-submodule (not Hermeto's; the service's): the source's submodules, each checked out at
/// the commit HEAD pins, are components of `bom.json` with the purl the service gives them, and
/// nothing is in `deps/`; one checked out at another commit fails with exit 1, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_submodules_at_their_pinned_commits_are_reported_and_others_fail() {
    let work = tempfile::tempdir().unwrap();
    let t = work.path();
    let (lib, lib_commit) = GitRepo::with_file(t.join("lib"), "lib.txt", "v1\n");
    let repo = GitRepo::new(t.join("src"));
    repo.write("README", "app\n");
    repo.add_submodule(&lib, "vendor/lib");
    repo.commit("with a submodule");
    let (home, cache) = (t.join("home"), t.join("cache"));
    let output = t.join("output");
    let run = || {
        fetch_deps(
            &home,
            &cache,
            repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            r#"{"type": "git-submodule"}"#,
            &[],
        )
    };
    let (code, log) = run();
    assert_eq!(code, 0, "{log}");
    let bom = read_json(&output.join("bom.json"));
    assert_valid("cyclonedx", &bom);
    // the service's purl of a submodule (named by its path, as `git submodule add` names it)
    let want = common::purl::vcs_purl("vendor/lib", &lib.url(), &lib_commit);
    assert!(purls(&bom).contains(&want), "{want} in {:?}", purls(&bom));
    let deps: Vec<_> = std::fs::read_dir(output.join("deps")).unwrap().collect();
    assert!(deps.is_empty(), "{deps:?}");

    // the submodule moved on without the parent's pin: refused, nothing looks current
    let sub = repo.dir.join("vendor/lib");
    std::fs::write(sub.join("lib.txt"), "v2\n").unwrap();
    git(&sub, &["commit", "-qam", "v2"]);
    let moved = git(&sub, &["rev-parse", "HEAD"]);
    let (code, log) = run();
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("vendor/lib") && log.contains(&moved) && log.contains(&lib_commit),
        "{log}"
    );
    assert!(!output.join("bom.json").exists());
    // not checked out at all: refused too
    git(
        &repo.dir,
        &["submodule", "--quiet", "deinit", "-f", "vendor/lib"],
    );
    let (code, log) = run();
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("not checked out"), "{log}");
}

/// Every kind of npm dependency (registry, scoped, nested, an alias, an http(s) tarball, a
/// `file:` tarball, a git dependency, a workspace) of lockfile versions 3 and 1: after
/// `inject-files`, the real `npm ci --offline` installs the whole tree with no registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_every_kind_of_dependency_installs_offline() {
    for v in [3, 1] {
        let fx = crate::npm::fixture(v, true).await;
        let work = fx.tmp.path();
        let (home, cache) = (work.join("home"), work.join("cache"));
        let output = work.join("output");
        let (code, log) = fetch_deps(
            &home,
            &cache,
            fx.repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            r#"{"packages": [{"type": "npm"}]}"#,
            &[
                ("LARDER_NPM_REGISTRY", fx.upstream.url.as_str()),
                ("LARDER_ALLOW_LOCAL_REPOS", "true"),
            ],
        );
        assert_eq!(code, 0, "v{v}: {log}");
        assert_valid("cyclonedx", &read_json(&output.join("bom.json")));
        let (code, log) = larder(
            &home,
            &cache,
            &["inject-files", output.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 0, "v{v}: {log}");
        let requests = fx.upstream.requests().len();
        let (ok, log) = npm(
            &fx.repo.dir,
            &work.join("npm-home"),
            &[
                "ci",
                "--offline",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
            ],
            &[("npm_config_registry", NOWHERE)],
        );
        assert!(ok, "v{v}: npm ci --offline failed:\n{log}");
        assert_eq!(
            crate::support::clients::npm_installed(&fx.repo.dir),
            fx.tree,
            "v{v}"
        );
        assert_eq!(fx.upstream.requests().len(), requests, "v{v}");
    }
}

/// pip's VCS and direct URL requirements: the requirements file is a project file naming the
/// output directory's copies (`name @ file://${output_dir}/deps/pip/…#sha256=…`), and the real
/// pip installs all of it with no index and no git server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_vcs_and_url_requirements_install_offline() {
    let upstream = crate::pip::Upstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let git_root = work.path().join("git");
    let vcs_commit = crate::pip::python_git_repo(&git_root, work.path(), "vcsdep", "0.5");
    let git_http = crate::pip::GitHttp::start(&git_root).await;
    let repo = GitRepo::new(work.path().join("src"));
    repo.write("pyproject.toml", crate::pip::PYPROJECT).write(
        "requirements.txt",
        &format!(
            "alpha==1.0\nbeta==2.0\nurldep @ {}/direct/urldep-1.0.tar.gz#sha256={}\ngit+{}/vcsdep.git@{vcs_commit}#egg=vcsdep\n",
            upstream.server.url,
            upstream.sha("urldep-1.0.tar.gz"),
            git_http.url,
        ),
    );
    repo.commit("vcs and url");
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let output = work.path().join("output");
    let index = upstream.index();
    let (code, log) = fetch_deps(
        &home,
        &cache,
        repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "pip",
        &[
            ("LARDER_PYPI_INDEX", index.as_str()),
            ("LARDER_ALLOW_LOCAL_REPOS", "true"),
        ],
    );
    assert_eq!(code, 0, "{log}");
    let config = read_json(&output.join(".build-config.json"));
    let reqs = &config["project_files"][0];
    assert!(
        reqs["abspath"]
            .as_str()
            .unwrap()
            .ends_with("/requirements.txt"),
        "{config}"
    );
    let template = reqs["template"].as_str().unwrap();
    assert!(
        template.contains("urldep @ file://${output_dir}/deps/pip/"),
        "{template}"
    );
    assert!(
        template.contains("vcsdep @ file://${output_dir}/deps/pip/"),
        "{template}"
    );
    assert_valid("cyclonedx", &read_json(&output.join("bom.json")));
    drop(git_http);

    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let env = env_json(&home, &cache, &output);
    let pip_home = work.path().join("pip-home");
    std::fs::create_dir_all(&pip_home).unwrap();
    let py = venv(&work.path().join("venv"), &pip_home);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("PIP_INDEX_URL", NOWHERE));
    let requests = upstream.server.requests().len();
    let reqs = repo.dir.join("requirements.txt");
    let (ok, log) = pip(
        &py,
        &pip_home,
        &vars,
        &["install", "-r", reqs.to_str().unwrap()],
    );
    assert!(ok, "offline pip install failed:\n{log}");
    let (ok, log) = run(Command::new(&py).args(["-c", "import alpha, beta, urldep, vcsdep"]));
    assert!(ok, "{log}");
    assert_eq!(upstream.server.requests().len(), requests);
}

/// cargo: the crates vendored under `deps/cargo/`, `.cargo/config.toml` a project file naming
/// them by the output directory's path; the real `cargo build --offline --locked` builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_fetch_deps_then_real_cargo_build_offline() {
    let work = tempfile::tempdir().unwrap();
    let fx = crate::support::projects::cargo(work.path(), 6).await;
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let output = work.path().join("output");
    let env: Vec<(&str, &str)> = fx
        .project
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let source = fx.project.repo.dir.clone();
    let fetch = || {
        fetch_deps(
            &home,
            &cache,
            source.to_str().unwrap(),
            output.to_str().unwrap(),
            "cargo",
            &env,
        )
    };
    let (code, log) = fetch();
    assert_eq!(code, 0, "{log}");
    assert_valid("cyclonedx", &read_json(&output.join("bom.json")));
    let config = read_json(&output.join(".build-config.json"));
    let file = &config["project_files"][0];
    assert!(
        file["abspath"]
            .as_str()
            .unwrap()
            .ends_with("/.cargo/config.toml"),
        "{config}"
    );
    assert!(
        file["template"]
            .as_str()
            .unwrap()
            .contains("directory = \"${output_dir}/deps/cargo\""),
        "{config}"
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let requests = fx.project.upstream.requests().len();
    let (ok, log) = crate::support::clients::cargo(
        &work.path().join("cargo-home"),
        &source,
        &["build", "--offline", "--locked"],
        &[],
    );
    assert!(ok, "cargo build --offline failed:\n{log}");
    assert_eq!(fx.project.upstream.requests().len(), requests);

    git(&source, &["checkout", "--", "."]);
    fx.project.upstream.clear_requests();
    let (code, log) = fetch();
    assert_eq!(code, 0, "{log}");
    assert_eq!(fx.project.upstream.requests(), Vec::<String>::new());
}

/// gomod: the module cache under `deps/gomod/`, Hermeto's `GO*` variables below the output
/// directory; the real `go build` and `go run` with nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gomod_fetch_deps_then_real_go_build_offline() {
    use crate::support::gomod_fixtures::*;
    let work = tempfile::tempdir().unwrap();
    let proxy = work.path().join("proxy");
    let fx = transitive(&proxy);
    let upstream = StaticServer::start(&proxy).await;
    let repo = GitRepo::new(work.path().join("src"));
    repo.write("go.mod", APP_GOMOD)
        .write("go.sum", &gosum_text(&[&fx.upper, &fx.b], &[]))
        .write("main.go", &main_go(&["github.com/Fix/Upper"], "upper.A()"));
    repo.commit("app");
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let output = work.path().join("output");
    let fetch = || {
        fetch_deps(
            &home,
            &cache,
            repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            r#"{"packages": [{"type": "gomod"}], "flags": ["cgo-disable"]}"#,
            &[("LARDER_GOPROXY", upstream.url.as_str())],
        )
    };
    let (code, log) = fetch();
    assert_eq!(code, 0, "{log}");
    assert_valid("cyclonedx", &read_json(&output.join("bom.json")));
    let env = env_json(&home, &cache, &output);
    let out_abs = output.canonicalize().unwrap();
    assert!(
        env.contains(&(
            "GOMODCACHE".into(),
            format!("{}/deps/gomod/pkg/mod", out_abs.display())
        )),
        "{env:?}"
    );
    assert!(env.contains(&("GOPROXY".into(), "off".into())), "{env:?}");
    let requests = upstream.requests().len();
    let go_home = work.path().join("go-home");
    let (ok, log) = go(&repo.dir, &go_home, &["build", "./..."], &env);
    assert!(ok, "offline go build failed: {log}");
    let (ok, log) = go(&repo.dir, &go_home, &["run", "."], &env);
    assert!(ok, "offline go run failed: {log}");
    assert_eq!(upstream.requests().len(), requests);
    make_writable(&output);

    upstream.clear_requests();
    let (code, log) = fetch();
    assert_eq!(code, 0, "{log}");
    assert_eq!(upstream.requests(), Vec::<String>::new());
    make_writable(&output);
}

/// yarn v1: the offline mirror under `deps/yarn-classic/`, named by Hermeto's
/// `YARN_YARN_OFFLINE_MIRROR`; the real yarn 1 installs the whole tree (registry, scoped,
/// nested, an alias, https and `file:` tarballs, a git dependency) with the commit's own
/// yarn.lock and no registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_v1_fetch_deps_then_real_yarn_install_offline() {
    let fx = crate::yarn::fixture("").await;
    let work = fx.tmp.path();
    let (home, cache) = (work.join("home"), work.join("cache"));
    let output = work.join("output");
    let (code, log) = fetch_deps(
        &home,
        &cache,
        fx.repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "yarn",
        &[
            ("LARDER_NPM_REGISTRY", fx.upstream.url.as_str()),
            ("LARDER_ALLOW_LOCAL_REPOS", "true"),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert!(output.join("deps/yarn-classic/a-1.0.0.tgz").is_file());
    assert_warm_run_asks_nothing(
        &home,
        &cache,
        &fx.repo.dir,
        "yarn",
        &[
            ("LARDER_NPM_REGISTRY", fx.upstream.url.as_str()),
            ("LARDER_ALLOW_LOCAL_REPOS", "true"),
        ],
        &fx.upstream,
    );
    assert_valid("cyclonedx", &read_json(&output.join("bom.json")));
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let env = env_json(&home, &cache, &output);
    let requests = fx.upstream.requests().len();
    let yarn_home = work.join("yarn-home");
    std::fs::create_dir_all(&yarn_home).unwrap();
    let mut cmd = clean_command(
        crate::support::clients::yarn_path().to_str().unwrap(),
        &yarn_home,
    );
    cmd.args([
        "install",
        "--offline",
        "--frozen-lockfile",
        "--ignore-scripts",
        "--non-interactive",
    ])
    .current_dir(&fx.repo.dir)
    .env("YARN_CACHE_FOLDER", yarn_home.join("yarn-cache"))
    .env("YARN_DISABLE_SELF_UPDATE_CHECK", "true")
    .env("npm_config_registry", NOWHERE);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let (ok, log) = run(&mut cmd);
    assert!(ok, "offline yarn install failed:\n{log}");
    assert_eq!(
        crate::yarn::installed(&fx.repo.dir),
        crate::yarn::TREE,
        "{log}"
    );
    assert_eq!(fx.upstream.requests().len(), requests);
}

/// pnpm: the tarballs under `deps/pnpm/`, `pnpm-lock.yaml` a project file whose fetched
/// resolutions name them below `${output_dir}`; the real pnpm 9 installs offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_fetch_deps_then_real_pnpm_install_offline() {
    let fx = crate::pnpm::fixture("", false, |s| s).await;
    let work = fx.tmp.path();
    let (home, cache) = (work.join("home"), work.join("cache"));
    let output = work.join("output");
    let (code, log) = fetch_deps(
        &home,
        &cache,
        fx.repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "pnpm",
        &[
            ("LARDER_NPM_REGISTRY", fx.upstream.url.as_str()),
            ("LARDER_ALLOW_LOCAL_REPOS", "true"),
        ],
    );
    assert_eq!(code, 0, "{log}");
    assert_warm_run_asks_nothing(
        &home,
        &cache,
        &fx.repo.dir,
        "pnpm",
        &[
            ("LARDER_NPM_REGISTRY", fx.upstream.url.as_str()),
            ("LARDER_ALLOW_LOCAL_REPOS", "true"),
        ],
        &fx.upstream,
    );
    assert_valid("cyclonedx", &read_json(&output.join("bom.json")));
    let config = read_json(&output.join(".build-config.json"));
    let lock = config["project_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["abspath"].as_str().unwrap().ends_with("/pnpm-lock.yaml"))
        .unwrap_or_else(|| panic!("{config}"));
    assert!(
        lock["template"]
            .as_str()
            .unwrap()
            .contains("file:${output_dir}/deps/pnpm/"),
        "{lock}"
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let requests = fx.upstream.requests().len();
    let (ok, log) = crate::support::clients::pnpm(
        &fx.repo.dir,
        &work.join("pnpm-home"),
        &[
            "install",
            "--offline",
            "--frozen-lockfile",
            "--ignore-scripts",
        ],
    );
    assert!(ok, "offline pnpm install failed:\n{log}");
    let got = crate::pnpm::installed(&fx.repo.dir);
    for want in crate::pnpm::TREE {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}\n{log}");
    }
    assert_eq!(fx.upstream.requests().len(), requests);
}

/// bundler (Larder's rubygems), as Hermeto lays it out: Bundler's cache under `deps/bundler/`
/// (a git gem's checkout with its symbolic link inside it), `BUNDLE_APP_CONFIG` naming the
/// output directory's `bundler/config_override/` that `inject-files` writes; a committed
/// `.bundle/config` pointing elsewhere (a path, a mirror, a cache) is not read, and the real
/// `bundle install` installs the locked gems offline with no gem server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundler_fetch_deps_then_real_bundle_install_offline_despite_the_repository_config() {
    use crate::support::rubygems_fixtures::{
        bundle, gemspec, installed_gems, lib_source, FixtureGem,
    };
    let work = tempfile::tempdir().unwrap();
    let t = work.path();
    let up = crate::rubygems::upstream(t, &crate::rubygems::fixture_gems()).await;
    // a git gem whose alias file is a link to its library
    let gitgem = GitRepo::new(t.join("gitgem"));
    let gg = FixtureGem::new("gitgem", "0.2.0", &[]);
    gitgem
        .write(
            "gitgem.gemspec",
            &gemspec(&gg, &["lib/gitgem.rb", "lib/gitgem_alias.rb"]),
        )
        .write("lib/gitgem.rb", &lib_source(&gg));
    std::os::unix::fs::symlink("gitgem.rb", gitgem.dir.join("lib/gitgem_alias.rb")).unwrap();
    let git_commit = gitgem.commit("gitgem");
    let repo = GitRepo::new(t.join("shop"));
    repo.write(
        "Gemfile",
        &format!(
            "source \"https://rubygems.org\"\n\ngem \"top\"\ngem \"gitgem\", git: \"file://{}\", branch: \"main\"\n",
            gitgem.url()
        ),
    );
    let lock_text = crate::rubygems::lock(&repo.dir, &t.join("home-lock"), &up);
    repo.write("Gemfile.lock", &lock_text);
    // what a developer's machine left committed: every one of these would break the build
    let cache_elsewhere = t.join("not-the-cache");
    repo.write(
        ".bundle/config",
        &format!(
            "---\nBUNDLE_PATH: \"{}\"\nBUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/: \"{NOWHERE}\"\nBUNDLE_CACHE_PATH: \"{}\"\nBUNDLE_DEPLOYMENT: \"false\"\nBUNDLE_WITHOUT: \"nothing_here\"\n",
            t.join("wrong-path").display(),
            cache_elsewhere.display()
        ),
    );
    repo.commit("shop");
    let (home, cache) = (t.join("home"), t.join("cache"));
    let output = t.join("output");
    let upstream = [
        ("LARDER_RUBYGEMS_URL", up.server.url.as_str()),
        // the git gem is a local repository
        ("LARDER_ALLOW_LOCAL_REPOS", "true"),
    ];
    let (code, log) = fetch_deps(
        &home,
        &cache,
        repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        r#"{"type": "bundler"}"#,
        &upstream,
    );
    assert_eq!(code, 0, "{log}");
    assert_warm_run_asks_nothing(
        &home,
        &cache,
        &repo.dir,
        r#"{"type": "bundler"}"#,
        &upstream,
        &up.server,
    );
    for g in ["rack-1.0.0.gem", "middle-0.3.1.gem", "top-0.1.0.gem"] {
        assert!(output.join("deps/bundler").join(g).is_file(), "{g}");
    }
    assert!(!output.join("deps/rubygems").exists());
    let checkout = output.join(format!("deps/bundler/gitgem-{}", &git_commit[..12]));
    assert_eq!(
        std::fs::read_link(checkout.join("lib/gitgem_alias.rb")).unwrap(),
        Path::new("gitgem.rb")
    );
    assert_valid("cyclonedx", &read_json(&output.join("bom.json")));

    // Hermeto's variable, and its configuration written by inject-files, not into the source
    let env = env_json(&home, &cache, &output);
    let app_config = output.join("bundler/config_override");
    assert_eq!(
        env,
        vec![(
            "BUNDLE_APP_CONFIG".to_string(),
            app_config.to_str().unwrap().to_string()
        )]
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let config = std::fs::read_to_string(app_config.join("config")).unwrap();
    assert!(
        config.contains(&format!(
            "BUNDLE_CACHE_PATH: \"{}/deps/bundler\"",
            output.display()
        )),
        "{config}"
    );
    assert!(
        config.contains("BUNDLE_WITHOUT: \"nothing_here\""),
        "{config}"
    );
    for gone in ["wrong-path", "MIRROR", "not-the-cache", "\"false\""] {
        assert!(!config.contains(gone), "{gone}: {config}");
    }
    assert_eq!(source_changes(&repo.dir), "");

    let requests = up.server.requests().len();
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (ok, out) = bundle(&repo.dir, &t.join("home-install"), &["install"], &vars);
    assert!(ok, "bundle install:\n{out}\n{config}");
    let gems = installed_gems(&repo.dir.join("vendor/bundle"));
    for want in ["rack-1.0.0", "middle-0.3.1", "top-0.1.0"] {
        assert!(
            gems.contains(&want.to_string()),
            "{want} in {gems:?}\n{out}"
        );
    }
    // a git gem is used where it is cached: the output directory's checkout
    assert!(
        out.contains(&format!("(at {}@", checkout.display())),
        "{out}"
    );
    assert!(!t.join("wrong-path").exists() && !cache_elsewhere.exists());
    let (ok, out) = bundle(
        &repo.dir,
        &t.join("home-install"),
        &[
            "exec",
            "ruby",
            "-e",
            "require 'top'; require 'gitgem_alias'; puts :ok",
        ],
        &vars,
    );
    assert!(ok && out.contains("ok"), "{out}");
    assert_eq!(up.server.requests().len(), requests);
}

/// `git status --porcelain` of the source: empty when nothing in it changed.
fn source_changes(source: &Path) -> String {
    git(source, &["status", "--porcelain", "--ignored"])
}

/// gomod: `gomod-vendor` and `gomod-vendor-check` write nothing into the source (Hermeto's
/// deprecated no-ops): a committed consistent `vendor/` is checked and kept, an inconsistent one
/// is refused, and without one no `vendor/` is made; the real `go build` builds offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gomod_vendor_flags_never_write_the_source() {
    use crate::support::gomod_fixtures::*;
    let work = tempfile::tempdir().unwrap();
    let proxy = work.path().join("proxy");
    let fx = transitive(&proxy);
    let upstream = StaticServer::start(&proxy).await;
    let repo = GitRepo::new(work.path().join("src"));
    repo.write("go.mod", APP_GOMOD)
        .write("go.sum", &gosum_text(&[&fx.upper, &fx.b], &[]))
        .write("main.go", &main_go(&["github.com/Fix/Upper"], "upper.A()"))
        .write("vendor/modules.txt", crate::gomod::MODULES_TXT)
        .write(
            "vendor/example.com/b/b.go",
            "package b\n\nfunc B() string { return \"b\" }\n",
        )
        .write(
            "vendor/github.com/Fix/Upper/upper.go",
            "package upper\n\nimport \"example.com/b\"\n\nfunc A() string { return \"a\" + b.B() }\n",
        );
    repo.commit("vendored");
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let goproxy = [("LARDER_GOPROXY", upstream.url.as_str())];
    let go_home = work.path().join("go-home");
    let mut n = 0;
    let mut fetch = |flags: &str| {
        n += 1;
        let output = work.path().join(format!("output-{n}"));
        let input = format!(r#"{{"packages": [{{"type": "gomod"}}], "flags": {flags}}}"#);
        let (code, log) = fetch_deps(
            &home,
            &cache,
            repo.dir.to_str().unwrap(),
            output.to_str().unwrap(),
            &input,
            &goproxy,
        );
        (code, log, output)
    };

    // a consistent vendor/: kept as committed, with either flag, and go builds from it
    for flags in [
        r#"["gomod-vendor"]"#,
        r#"["gomod-vendor-check"]"#,
        r#"["gomod-vendor", "cgo-disable"]"#,
    ] {
        let (code, log, output) = fetch(flags);
        assert_eq!(code, 0, "{flags}: {log}");
        assert_eq!(source_changes(&repo.dir), "", "{flags}: {log}");
        assert_eq!(
            std::fs::read_to_string(repo.dir.join("vendor/modules.txt")).unwrap(),
            crate::gomod::MODULES_TXT
        );
        make_writable(&output);
    }
    let (_, _, output) = fetch(r#"["gomod-vendor"]"#);
    let env = env_json(&home, &cache, &output);
    let requests = upstream.requests().len();
    let (ok, log) = go(
        &repo.dir,
        &go_home,
        &["build", "-o", "/dev/null", "."],
        &env,
    );
    assert!(ok, "offline go build from vendor/ failed: {log}");
    assert_eq!(upstream.requests().len(), requests);
    assert_eq!(source_changes(&repo.dir), "");
    make_writable(&output);

    // an inconsistent vendor/: refused (the flag does not regenerate it), the source untouched
    repo.write(
        "vendor/modules.txt",
        "# github.com/Fix/Upper v1.0.0\n## explicit; go 1.19\ngithub.com/Fix/Upper\n",
    );
    repo.commit("stale vendor");
    for flags in [r#"["gomod-vendor"]"#, "[]"] {
        let (code, log, output) = fetch(flags);
        assert_ne!(code, 0, "{flags}: {log}");
        assert!(log.contains("vendor directory is not consistent"), "{log}");
        assert_eq!(source_changes(&repo.dir), "", "{flags}: {log}");
        if output.exists() {
            make_writable(&output);
        }
    }

    // no vendor/: none is made; the module cache in the output builds offline
    git(&repo.dir, &["rm", "-r", "-q", "vendor"]);
    repo.commit("no vendor");
    let (code, log, output) = fetch(r#"["gomod-vendor", "gomod-vendor-check"]"#);
    assert_eq!(code, 0, "{log}");
    assert_eq!(source_changes(&repo.dir), "", "{log}");
    assert!(!repo.dir.join("vendor").exists());
    let env = env_json(&home, &cache, &output);
    let requests = upstream.requests().len();
    let (ok, log) = go(
        &repo.dir,
        &go_home,
        &["build", "-o", "/dev/null", "."],
        &env,
    );
    assert!(ok, "offline go build failed: {log}");
    assert_eq!(upstream.requests().len(), requests);
    assert_eq!(source_changes(&repo.dir), "");
    make_writable(&output);
    make_writable(&go_home);
}

/// cargo: the repository's own `.cargo/config.toml` is merged into, not replaced: after
/// `inject-files` it keeps its `[build]` and `[alias]` and gains the vendored sources; the
/// real `cargo build --offline --locked` builds with its rustflags (the crate does not compile
/// without them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_fetch_deps_keeps_the_repository_cargo_config() {
    let work = tempfile::tempdir().unwrap();
    let fx = crate::support::projects::cargo(work.path(), 3).await;
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let output = work.path().join("output");
    let env: Vec<(&str, &str)> = fx
        .project
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let repo = &fx.project.repo;
    let source = repo.dir.clone();
    let lib = std::fs::read_to_string(source.join("app/src/lib.rs")).unwrap();
    repo.write(
        ".cargo/config.toml",
        "# the project's own settings\n[build]\nrustflags = [\"--cfg\", \"larder_test\"]\n\n\
         [alias]\nlarder-check = \"check --offline --locked\"\n",
    )
    .write(
        "app/src/lib.rs",
        &format!("#[cfg(not(larder_test))]\ncompile_error!(\"no larder_test cfg\");\n{lib}"),
    );
    repo.commit("own cargo config");

    let (code, log) = fetch_deps(
        &home,
        &cache,
        source.to_str().unwrap(),
        output.to_str().unwrap(),
        "cargo",
        &env,
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(source_changes(&source), "", "fetch-deps wrote the source");
    let config = read_json(&output.join(".build-config.json"));
    let files = config["project_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{config}");
    assert_eq!(
        files[0]["abspath"].as_str().unwrap(),
        source
            .canonicalize()
            .unwrap()
            .join(".cargo/config.toml")
            .to_str()
            .unwrap(),
        "{config}"
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let text = std::fs::read_to_string(source.join(".cargo/config.toml")).unwrap();
    let out_abs = output.canonicalize().unwrap();
    for want in [
        "[build]\nrustflags = [\"--cfg\", \"larder_test\"]\n",
        "[alias]\nlarder-check = \"check --offline --locked\"\n",
        "[source.crates-io]\nreplace-with = \"vendored-sources\"\n",
        &format!(
            "[source.vendored-sources]\ndirectory = \"{}/deps/cargo\"\n",
            out_abs.display()
        ),
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }

    let requests = fx.project.upstream.requests().len();
    let cargo_home = work.path().join("cargo-home");
    let (ok, log) = crate::support::clients::cargo(
        &cargo_home,
        &source,
        &["build", "--offline", "--locked"],
        &[],
    );
    assert!(ok, "cargo build --offline failed:\n{log}");
    let (ok, log) = crate::support::clients::cargo(&cargo_home, &source, &["larder-check"], &[]);
    assert!(ok, "the repository's alias:\n{log}");
    assert_eq!(fx.project.upstream.requests().len(), requests);
}

/// cargo: a `.cargo` that is a symbolic link out of the source is refused (the configuration
/// would be read from, and injected into, another directory); nothing is written there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_a_cargo_dir_linked_outside_the_source_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let fx = crate::support::projects::cargo(work.path(), 1).await;
    let (home, cache) = (work.path().join("home"), work.path().join("cache"));
    let output = work.path().join("output");
    let env: Vec<(&str, &str)> = fx
        .project
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("config.toml"), "[build]\njobs = 1\n").unwrap();
    let repo = &fx.project.repo;
    repo.symlink(".cargo", outside.to_str().unwrap());
    repo.commit("linked .cargo");
    let before = tree_of(&outside);

    let (code, log) = fetch_deps(
        &home,
        &cache,
        repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "cargo",
        &env,
    );
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("cargo configuration .cargo") && log.contains("symbolic link"),
        "{log}"
    );
    assert_eq!(tree_of(&outside), before, "written outside the source");
    assert_eq!(source_changes(&repo.dir), "");
    assert!(!output.join(".build-config.json").exists());
}

/// The real Yarn 4 `yarn install --immutable` in `dir` as a build would run it: a fresh HOME,
/// `generate-env`'s variables, the registry at a closed port (the repository's `.yarnrc.yml`
/// names the fixture upstream), no scripts, no telemetry.
fn yarn_berry_install_offline(dir: &Path, home: &Path, env: &[(String, String)]) -> (bool, String) {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command(
        crate::support::clients::yarn_berry_path().to_str().unwrap(),
        home,
    );
    cmd.args(["install", "--immutable"])
        .current_dir(dir)
        .env("YARN_NPM_REGISTRY_SERVER", NOWHERE.trim_end_matches('/'))
        .env("YARN_ENABLE_TELEMETRY", "false")
        .env("YARN_ENABLE_SCRIPTS", "false")
        .env("YARN_ENABLE_PROGRESS_BARS", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// `node -e <script>` in `dir` (`-r ./.pnp.cjs` first for a PnP install): its output.
fn node_in(dir: &Path, pnp: bool, script: &str) -> String {
    let mut cmd = clean_command("node", &dir.join(".node-home"));
    if pnp {
        cmd.args(["-r", "./.pnp.cjs"]);
    }
    cmd.args(["-e", script]).current_dir(dir);
    let (ok, out) = run(&mut cmd);
    assert!(ok, "node -e {script}:\n{out}");
    out
}

/// yarn Berry (Yarn 4): the cache zips under Yarn's mirror names in `deps/yarn/cache/`, named
/// by Hermeto's variables (`YARN_GLOBAL_FOLDER`, `YARN_ENABLE_MIRROR`, …) and nothing written
/// over the source; the real Yarn 4 installs `--immutable` with no registry, node-modules (the
/// fixture's `nodeLinker`) and PnP (the same project without it, from a warm cache that asks
/// the upstream nothing), and node requires what it installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_fetch_deps_then_real_yarn_4_install_offline() {
    let fx = crate::yarn_berry::fixture().await;
    let work = fx.tmp.path();
    let (home, cache) = (work.join("home"), work.join("cache"));
    // the PnP twin, before anything is installed in the repository
    let pnp_src = work.join("pnp-src");
    crate::support::npm_fixtures::copy_dir(&fx.repo.dir, &pnp_src);
    let rc = std::fs::read_to_string(pnp_src.join(".yarnrc.yml")).unwrap();
    assert!(rc.contains("nodeLinker: node-modules\n"), "{rc}");
    std::fs::write(
        pnp_src.join(".yarnrc.yml"),
        rc.replace("nodeLinker: node-modules\n", ""),
    )
    .unwrap();
    let registry = [("LARDER_NPM_REGISTRY", fx.upstream.url.as_str())];

    let output = work.join("output");
    let (code, log) = fetch_deps(
        &home,
        &cache,
        fx.repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        r#"{"type": "yarn", "path": "."}"#,
        &registry,
    );
    assert_eq!(code, 0, "{log}");
    let fetched = tree_of(&output.join("deps"));
    // every package's zip under Yarn's mirror name (its locator and the cache key), the
    // conditional fsx (no checksum in the lockfile) too
    let zips: Vec<String> = tree_of(&output.join("deps"))
        .into_iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(zips.len(), 8, "{zips:?}");
    assert!(
        zips.iter()
            .all(|z| z.starts_with("yarn/cache/") && z.ends_with("-10c0.zip")),
        "{zips:?}"
    );
    for prefix in ["a-npm-1.0.0-", "@s-c-npm-2.0.0-", "fsx-npm-1.0.0-"] {
        assert!(
            zips.iter()
                .any(|z| z.starts_with(&format!("yarn/cache/{prefix}"))),
            "{prefix}: {zips:?}"
        );
    }
    let bom = read_json(&output.join("bom.json"));
    assert_valid("cyclonedx", &bom);
    let want: BTreeSet<String> = [
        "pkg:npm/a@1.0.0",
        "pkg:npm/b@1.1.0",
        "pkg:npm/b@2.0.0",
        "pkg:npm/%40s/c@2.0.0",
        "pkg:npm/d@1.0.0",
        "pkg:npm/p@1.0.0",
        "pkg:npm/resolve@1.22.8",
        "pkg:npm/fsx@1.0.0",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert!(want.is_subset(&purls(&bom)), "{:?}", purls(&bom));
    // Hermeto's hand-back: variables only, nothing over the source
    let config = read_json(&output.join(".build-config.json"));
    assert_eq!(
        config["project_files"],
        Value::Array(Vec::new()),
        "{config}"
    );
    let env = env_json(&home, &cache, &output);
    for (name, value) in [
        ("YARN_ENABLE_GLOBAL_CACHE", "false".to_string()),
        ("YARN_ENABLE_IMMUTABLE_CACHE", "false".to_string()),
        ("YARN_ENABLE_MIRROR", "true".to_string()),
        (
            "YARN_GLOBAL_FOLDER",
            format!("{}/deps/yarn", output.canonicalize().unwrap().display()),
        ),
    ] {
        assert!(
            env.iter().any(|(n, v)| n == name && *v == value),
            "{name}={value} in {env:?}"
        );
    }
    assert!(
        !env.iter().any(|(n, _)| n.starts_with("YARN_YARN_")),
        "yarn v1's variables are for a v1 project: {env:?}"
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        git(&fx.repo.dir, &["status", "--porcelain"]).trim(),
        "",
        "fetch-deps and inject-files leave the source as it was"
    );

    // node-modules: the real Yarn 4, the commit's own yarn.lock, no registry
    let requests = fx.upstream.requests().len();
    let (ok, out) = yarn_berry_install_offline(&fx.repo.dir, &work.join("yarn-home"), &env);
    assert!(ok, "offline yarn 4 install (node-modules) failed:\n{out}");
    crate::yarn_berry::assert_installed(&fx.repo.dir, &out);
    let required = node_in(
        &fx.repo.dir,
        false,
        "console.log([require('a'), require('@s/c'), require('p')].join(','))",
    );
    assert_eq!(
        required.trim(),
        "a@1.0.0,@s/c@2.0.0,p@1.0.0 patched",
        "{out}"
    );
    assert_eq!(fx.upstream.requests().len(), requests);

    // PnP (Yarn's default linker), fetched from the warm cache: the upstream is asked nothing
    fx.upstream.clear_requests();
    let pnp_output = work.join("output-pnp");
    let (code, log) = fetch_deps(
        &home,
        &cache,
        pnp_src.to_str().unwrap(),
        pnp_output.to_str().unwrap(),
        "yarn",
        &registry,
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(fx.upstream.requests(), Vec::<String>::new(), "{log}");
    // (Yarn added its own patched zips to the first output's mirror as it installed)
    assert_eq!(
        tree_of(&pnp_output.join("deps")),
        fetched,
        "the same lockfile, the same zips"
    );
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", pnp_output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let env = env_json(&home, &cache, &pnp_output);
    let (ok, out) = yarn_berry_install_offline(&pnp_src, &work.join("yarn-home-pnp"), &env);
    assert!(ok, "offline yarn 4 install (PnP) failed:\n{out}");
    assert!(pnp_src.join(".pnp.cjs").is_file(), "{out}");
    assert!(!pnp_src.join("node_modules/a").exists(), "{out}");
    let required = node_in(
        &pnp_src,
        true,
        "console.log([require('a'), require('@s/c'), require('p')].join(','))",
    );
    assert_eq!(
        required.trim(),
        "a@1.0.0,@s/c@2.0.0,p@1.0.0 patched",
        "{out}"
    );
    assert_eq!(fx.upstream.requests(), Vec::<String>::new());
}

/// A yarn.lock whose checksum of one package is not its zip's: fetch-deps fails naming it,
/// writes no results, and the cache keeps nothing of that package. A lockfile of a compressed
/// cache key is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_a_changed_checksum_fails_closed() {
    let fx = crate::yarn_berry::fixture().await;
    let work = fx.tmp.path();
    let (home, cache) = (work.join("home"), work.join("cache"));
    let lock = std::fs::read_to_string(fx.repo.dir.join("yarn.lock")).unwrap();
    // d@npm:1.0.0's checksum, one hex digit changed
    let start = lock.find("resolution: \"d@npm:1.0.0\"").unwrap();
    let at = start + lock[start..].find("checksum: 10c0/").unwrap() + "checksum: 10c0/".len();
    let digit = if &lock[at..at + 1] == "0" { "1" } else { "0" };
    let changed = format!("{}{digit}{}", &lock[..at], &lock[at + 1..]);
    fx.repo.write("yarn.lock", &changed);
    fx.repo.commit("a changed checksum");
    let output = work.join("output");
    let (code, log) = fetch_deps(
        &home,
        &cache,
        fx.repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "yarn",
        &[("LARDER_NPM_REGISTRY", fx.upstream.url.as_str())],
    );
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("The checksum of d@1.0.0") && log.contains("does not match the lockfile"),
        "{log}"
    );
    assert!(!output.join("bom.json").exists());
    assert!(!output.join(".build-config.json").exists());
    let stored: Vec<PathBuf> = tree_of(&cache.join("deps"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert!(
        !stored
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == "d-1.0.0.tgz")),
        "{stored:?}"
    );

    // a compressed cache key (Yarn 3's): no zip Larder makes has its checksums
    fx.repo
        .write("yarn.lock", &lock.replace("cacheKey: 10c0", "cacheKey: 8"));
    let (code, log) = fetch_deps(
        &home,
        &cache,
        fx.repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "yarn",
        &[("LARDER_NPM_REGISTRY", fx.upstream.url.as_str())],
    );
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("has the cache key \"8\""), "{log}");
    assert!(!output.join(".build-config.json").exists());
}

/// A yarn Berry http(s) tarball dependency (`t@https://host/t.tgz`): its zip, checked against
/// the lockfile's checksum, under Yarn's mirror name for that locator; a git dependency at a
/// commit: packed, its zip under its locator's mirror name and the project file `yarn.lock`
/// giving it that zip's checksum. The real Yarn 4 installs both with the registry
/// dependencies, offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_http_tarball_and_git_dependency_install_offline() {
    use crate::support::npm_fixtures::copy_dir;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let up_dir = work.join("upstream");
    std::fs::create_dir_all(up_dir.join("dl")).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let pkgs = [
        build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0")),
        build(&FixturePackage::new("b", "1.1.0")),
    ];
    write_registry(&up_dir, &upstream.url, &pkgs).unwrap();
    let t = build(&FixturePackage::new("t", "1.0.0"));
    std::fs::write(up_dir.join("dl/t-1.0.0.tgz"), &t.tgz).unwrap();
    let turl = format!("{}/dl/t-1.0.0.tgz", upstream.url);
    let g = GitRepo::new(work.join("gdep"));
    g.write(
        "package.json",
        r#"{"name":"zz-git","version":"0.3.0","main":"index.js"}"#,
    )
    .write("index.js", "module.exports = 'zz-git@0.3.0';\n");
    let sha = g.commit("gdep");
    let gspec = format!("git+file://{}#commit={sha}", g.url());
    let repo = GitRepo::new(work.join("repo"));
    let mut pj = serde_json::json!({"name": "berry-remote", "version": "1.0.0", "private": true,
                                    "dependencies": {"a": "^1.0.0", "t": turl}});
    let rc = format!(
        "nodeLinker: node-modules\nnpmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - 127.0.0.1\n",
        upstream.url
    );
    repo.write("package.json", &serde_json::to_string_pretty(&pj).unwrap())
        .write(".yarnrc.yml", &rc);
    // the lockfile, as Yarn 4 makes it against the fixture upstream
    let gen = work.join("generate");
    copy_dir(&repo.dir, &gen);
    std::fs::write(
        gen.join(".yarnrc.yml"),
        format!("{rc}npmMinimalAgeGate: 0\n"),
    )
    .unwrap();
    let (ok, out) = crate::support::clients::yarn_berry(&gen, &work.join("home-gen"), &["install"]);
    assert!(ok, "yarn install (making the lockfile) failed:\n{out}");
    let lock = std::fs::read_to_string(gen.join("yarn.lock")).unwrap();
    assert!(
        lock.contains(&format!("resolution: \"t@{turl}\"")),
        "{lock}"
    );
    // the git dependency, by hand (Yarn would run its scripts to pack it): last among the
    // workspace's dependencies and the entries, a checksum Larder cannot make
    let tdep = format!("    t: \"{turl}\"\n");
    assert!(lock.contains(&tdep), "{lock}");
    let lock = lock.replacen(&tdep, &format!("{tdep}    zz-git: \"{gspec}\"\n"), 1)
        + &format!(
            "\n\"zz-git@{gspec}\":\n  version: 0.3.0\n  resolution: \"zz-git@{gspec}\"\n  checksum: 10c0/{}\n  languageName: node\n  linkType: hard\n",
            "0".repeat(128)
        );
    pj["dependencies"]["zz-git"] = serde_json::json!(gspec);
    repo.write("package.json", &serde_json::to_string_pretty(&pj).unwrap())
        .write("yarn.lock", &lock);
    repo.commit("an http tarball and a git dependency");

    let (home, cache) = (work.join("home"), work.join("cache"));
    let output = work.join("output");
    let (code, log) = fetch_deps(
        &home,
        &cache,
        repo.dir.to_str().unwrap(),
        output.to_str().unwrap(),
        "yarn",
        &[
            ("LARDER_NPM_REGISTRY", upstream.url.as_str()),
            ("LARDER_ALLOW_LOCAL_REPOS", "true"),
        ],
    );
    assert_eq!(code, 0, "{log}");
    let zips: Vec<String> = tree_of(&output.join("deps"))
        .into_iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(zips.len(), 4, "{zips:?}");
    for prefix in ["yarn/cache/t-http-", "yarn/cache/zz-git-git"] {
        assert!(
            zips.iter()
                .any(|z| z.starts_with(prefix) && z.ends_with("-10c0.zip")),
            "{prefix}: {zips:?}"
        );
    }
    let bom = read_json(&output.join("bom.json"));
    assert_valid("cyclonedx", &bom);
    assert!(
        purls(&bom)
            .iter()
            .any(|p| p.starts_with("pkg:generic/zz-git?") && p.contains(&sha)),
        "{:?}",
        purls(&bom)
    );
    // the one project file: yarn.lock, the git entry's checksum Larder's, nothing else changed
    let config = read_json(&output.join(".build-config.json"));
    let files = config["project_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{config}");
    assert!(files[0]["abspath"]
        .as_str()
        .unwrap()
        .ends_with("/yarn.lock"));
    let template = files[0]["template"].as_str().unwrap();
    assert!(!template.contains(&"0".repeat(128)), "{template}");
    let changed: Vec<(&str, &str)> = lock
        .lines()
        .zip(template.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].1.starts_with("  checksum: 10c0/"), "{changed:?}");
    let (code, log) = larder(
        &home,
        &cache,
        &["inject-files", output.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    let env = env_json(&home, &cache, &output);
    let requests = upstream.requests().len();
    // the git dependency's repository gone: Yarn cannot clone it, the mirror must serve it
    std::fs::remove_dir_all(&g.dir).unwrap();
    let (ok, out) = yarn_berry_install_offline(&repo.dir, &work.join("yarn-home"), &env);
    assert!(ok, "offline yarn 4 install failed:\n{out}");
    let required = node_in(
        &repo.dir,
        false,
        "console.log([require('a'), require('t'), require('zz-git')].join(','))",
    );
    assert_eq!(required.trim(), "a@1.0.0,t@1.0.0,zz-git@0.3.0", "{out}");
    assert_eq!(upstream.requests().len(), requests);
}
