//! The store across an air gap (issue 17): instance A reaches its fixture upstreams, completes
//! requests and `larder export`s its store; instance B, with `LARDER_OFFLINE=true` and every
//! upstream URL pointed at a closed port, `larder import`s the volumes and completes the same
//! requests offline with byte-identical bundles. Then: `--since-last`, an import killed at
//! twenty points, a flipped byte, a missing volume, a second import, `GET /api/v1/transfers`,
//! and an offline request that needs what was never imported.

use crate::support::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `larder <args>` with the deployment's environment (as `spawn` gives it), to completion.
fn larder_cli(larder: &Larder, args: &[&str], extra: &[(&str, &str)]) -> Output {
    cli_command(larder, args, extra).output().unwrap()
}

fn cli_command(larder: &Larder, args: &[&str], extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", larder.data.path())
        .envs(&larder.env);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// `larder export --out <out> <args>`: must exit 0; the manifest it wrote.
fn export(larder: &Larder, out: &Path, args: &[&str]) -> Value {
    let mut all = vec!["export", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let done = larder_cli(larder, &all, &[]);
    assert!(
        done.status.success(),
        "larder export {args:?}: {:?}\nstdout: {}\nstderr: {}",
        done.status,
        text(&done.stdout),
        text(&done.stderr)
    );
    manifest(out)
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn manifest_keys(m: &Value) -> BTreeSet<String> {
    m["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect()
}

/// `larder import <dir>`: (exit code, stdout, stderr).
fn import(larder: &Larder, dir: &Path) -> (i32, String, String) {
    let done = larder_cli(larder, &["import", dir.to_str().unwrap()], &[]);
    (
        done.status.code().unwrap_or(-1),
        text(&done.stdout),
        text(&done.stderr),
    )
}

fn import_ok(larder: &Larder, dir: &Path) -> String {
    let (code, out, err) = import(larder, dir);
    assert_eq!(code, 0, "larder import: stdout: {out}\nstderr: {err}");
    out
}

/// The exported part of a deployment's store (`sources/`, `deps/` under its data directory):
/// key -> sha256 of its bytes.
fn store_tree(larder: &Larder) -> BTreeMap<String, String> {
    fn rec(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                rec(root, &path, out);
            } else if kind.is_file() {
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(key, sha256_hex(&std::fs::read(&path).unwrap()));
            }
        }
    }
    let root = larder.data.path();
    let mut out = BTreeMap::new();
    for top in ["sources", "deps"] {
        rec(root, &root.join(top), &mut out);
    }
    out
}

/// A closed port: nothing listens there.
fn closed_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Every upstream setting of a deployment pointed at a closed port, and `LARDER_OFFLINE=true`.
fn offline_env(larder: &mut Larder) {
    let closed = closed_url();
    for (k, v) in [
        ("LARDER_OFFLINE", "true".to_string()),
        ("LARDER_NPM_REGISTRY", closed.clone()),
        ("LARDER_PYPI_INDEX", format!("{closed}/simple/")),
        ("LARDER_GOPROXY", closed.clone()),
        ("LARDER_CRATES_INDEX", format!("sparse+{closed}/")),
        ("LARDER_RUBYGEMS_URL", closed.clone()),
    ] {
        larder.env.insert(k.into(), v);
    }
}

/// Instance B: fresh data directory, database and queue, offline, no route to any upstream.
async fn offline_instance() -> Larder {
    let mut b = Larder::new();
    offline_env(&mut b);
    b.spawn("serve", &[]);
    b.wait_healthy().await;
    b
}

/// Instance A with `env` pointing its package managers at the fixture upstreams.
async fn online_instance(env: &[(String, String)]) -> Larder {
    let mut a = Larder::new();
    for (k, v) in env {
        a.env.insert(k.clone(), v.clone());
    }
    a.spawn("serve", &[]);
    a.wait_healthy().await;
    a
}

/// Submit and wait; the final request JSON.
async fn run_request(larder: &Larder, body: &Value) -> Value {
    let id = larder.submit(body.clone()).await;
    larder.wait(id).await
}

/// Submit, wait until complete (panics with the request otherwise); the bundle's sha256.
async fn completed_bundle(larder: &Larder, pm: &str, body: &Value) -> String {
    let done = run_request(larder, body).await;
    assert_eq!(done["state"], "complete", "{pm}: {done}\n{}", larder.logs());
    let (bytes, _) = larder.download(done["id"].as_i64().unwrap()).await;
    sha256_hex(&bytes)
}

fn merge_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let t = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            merge_tree(&e.path(), &t);
            continue;
        }
        std::fs::write(&t, std::fs::read(e.path()).unwrap()).unwrap();
    }
}

/// One project of every package manager on its fixture upstream (npm, yarn and pnpm share one
/// registry, as they share one setting); the object-store tests use it too.
pub(crate) struct Fixtures {
    _tmp: tempfile::TempDir,
    pub(crate) npm: crate::support::projects::Npm,
    pub(crate) yarn: crate::yarn::Fixture,
    pub(crate) pnpm: crate::pnpm::Fixture,
    pub(crate) pip: crate::support::projects::Pip,
    pub(crate) gomod: crate::support::projects::Gomod,
    pub(crate) cargo: crate::support::projects::Cargo,
    pub(crate) gems: crate::support::projects::Gems,
    pub(crate) registry: StaticServer,
    pub(crate) app: GitRepo,
    pub(crate) app_commit: String,
    _lib: GitRepo,
}

impl Fixtures {
    pub(crate) async fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let npm = crate::support::projects::npm(&t.join("npm"), 3).await;
        let yarn = crate::yarn::fixture("").await;
        let pnpm = crate::pnpm::fixture("", false, |s| s).await;
        let pip = crate::support::projects::pip(&t.join("pip"), 2, false).await;
        let gomod = crate::support::projects::gomod(&t.join("gomod"), 2).await;
        let cargo = crate::support::projects::cargo(&t.join("cargo"), 2).await;
        let gems = crate::support::projects::gems(&t.join("gems")).await;
        let registry_dir = t.join("npm-registry");
        merge_tree(&npm.project.upstream.root, &registry_dir);
        merge_tree(&yarn.tmp.path().join("upstream"), &registry_dir);
        merge_tree(&pnpm.tmp.path().join("upstream"), &registry_dir);
        let registry = StaticServer::start(&registry_dir).await;
        let lib = GitRepo::new(t.join("lib"));
        lib.write("lib.txt", "library v1");
        lib.commit("lib");
        let app = GitRepo::new(t.join("app"));
        app.write("main.txt", "main");
        app.add_submodule(&lib, "vendor/lib");
        let app_commit = app.commit("with submodule");
        Self {
            _tmp: tmp,
            npm,
            yarn,
            pnpm,
            pip,
            gomod,
            cargo,
            gems,
            registry,
            app,
            app_commit,
            _lib: lib,
        }
    }

    pub(crate) fn env(&self) -> Vec<(String, String)> {
        [
            ("LARDER_NPM_REGISTRY", self.registry.url.clone()),
            ("LARDER_PYPI_INDEX", self.pip.index.clone()),
            ("LARDER_GOPROXY", self.gomod.project.upstream.url.clone()),
            ("LARDER_CRATES_INDEX", self.cargo.index.clone()),
            ("LARDER_RUBYGEMS_URL", self.gems.server.url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub(crate) fn body(&self, pm: &str) -> Value {
        match pm {
            "npm" => self.npm.project.body(),
            "yarn" => {
                json!({"repo": self.yarn.repo.url(), "ref": self.yarn.commit, "pkg_managers": ["yarn"]})
            }
            "pnpm" => {
                json!({"repo": self.pnpm.repo.url(), "ref": self.pnpm.commit, "pkg_managers": ["pnpm"]})
            }
            "pip" => self.pip.project.body(),
            "gomod" => self.gomod.project.body(),
            "cargo" => self.cargo.project.body(),
            "rubygems" => {
                json!({"repo": self.gems.repo.url(), "ref": self.gems.commit, "pkg_managers": ["rubygems"]})
            }
            "git-submodule" => {
                json!({"repo": self.app.url(), "ref": self.app_commit, "pkg_managers": ["git-submodule"]})
            }
            other => panic!("no fixture of {other}"),
        }
    }

    fn servers(&self) -> Vec<&StaticServer> {
        vec![
            &self.registry,
            &self.npm.project.upstream,
            &self.yarn.upstream,
            &self.pnpm.upstream,
            &self.pip.project.upstream,
            &self.gomod.project.upstream,
            &self.cargo.project.upstream,
            &self.gems.server,
        ]
    }

    fn forget_requests(&self) {
        for s in self.servers() {
            s.clear_requests();
        }
    }

    /// Paths any fixture upstream was asked for since [`Fixtures::forget_requests`].
    fn requests(&self) -> Vec<String> {
        self.servers()
            .iter()
            .flat_map(|s| s.requests().into_iter().map(|p| format!("{}{p}", s.url)))
            .collect()
    }
}

/// The whole journey for `pms`: A completes one request of each → `larder export` → B
/// (offline, fresh) imports → the same requests complete on B with the same bundles, and no
/// fixture upstream hears from B.
async fn across_the_gap(pms: &[&str]) {
    let fx = Fixtures::new().await;
    let a = online_instance(&fx.env()).await;
    let mut on_a = BTreeMap::new();
    for pm in pms {
        on_a.insert(*pm, completed_bundle(&a, pm, &fx.body(pm)).await);
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("transfer");
    let m = export(&a, &dir, &[]);
    assert_eq!(m["format"], "larder-transfer/1", "{m}");
    assert_eq!(
        manifest_keys(&m),
        store_tree(&a).keys().cloned().collect::<BTreeSet<_>>(),
        "the export holds every object of A's sources/ and deps/"
    );

    fx.forget_requests();
    let b = offline_instance().await;
    let said = import_ok(&b, &dir);
    assert!(
        said.contains(&format!(
            "imported {} object(s)",
            m["objects"].as_array().unwrap().len()
        )),
        "{said}"
    );
    let mut failures = Vec::new();
    for pm in pms {
        let done = run_request(&b, &fx.body(pm)).await;
        if done["state"] != "complete" {
            failures.push(format!(
                "{pm}: {} on B: {}",
                done["state"], done["state_reason"]
            ));
            continue;
        }
        let (bytes, _) = b.download(done["id"].as_i64().unwrap()).await;
        if sha256_hex(&bytes) != on_a[pm] {
            failures.push(format!(
                "{pm}: B's bundle sha256 {} differs from A's {}",
                sha256_hex(&bytes),
                on_a[pm]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "offline on B:\n{}\nB's logs:\n{}",
        failures.join("\n"),
        b.logs()
    );
    assert_eq!(
        fx.requests(),
        Vec::<String>::new(),
        "B (offline) contacted a fixture upstream"
    );
}

/// Acceptance of issue 17, one request of every package manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_completed_online_complete_offline_after_export_and_import_with_identical_bundles()
{
    let pms = [
        "npm",
        "yarn",
        "pnpm",
        "pip",
        "cargo",
        "gomod",
        "rubygems",
        "git-submodule",
    ];
    // every package manager Larder has is here
    for pm in worker::pkg_managers::REGISTRY.iter() {
        let name = pm.descriptor().name;
        assert!(pms.contains(&name), "no request of {name} in this test");
    }
    across_the_gap(&pms).await;
}

/// A cargo project whose one crate (`late-crate`) no other fixture has, published on the
/// cargo fixture's upstream.
fn late_cargo_project(fx: &Fixtures) -> (GitRepo, Value) {
    use crate::support::cargo_fixtures::*;
    let late = build_crate(&FixtureCrate::new("late-crate", "1.0.0", &[]));
    let up = &fx.cargo.project.upstream;
    write_registry(
        &up.root,
        &format!("{}/crates/{{crate}}/{{crate}}-{{version}}.crate", up.url),
        std::slice::from_ref(&late),
    )
    .unwrap();
    let dir = fx._tmp.path().join("late");
    write_workspace(
        &dir,
        &[FixtureMember {
            name: "app".into(),
            version: "0.1.0".into(),
            path: "app".into(),
            deps: vec![("late-crate".into(), "1.0.0".into())],
            path_deps: vec![],
        }],
        &[late],
    )
    .unwrap();
    let repo = GitRepo::new(dir);
    let commit = repo.commit("late");
    let body = json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["cargo"]});
    (repo, body)
}

/// `--since-last`: A completes npm, gomod and cargo requests and exports (its first export:
/// everything); right after, it completes a cargo request of a crate it never had; the second
/// export holds exactly the objects that request added (within the overlap a `--since-last`
/// export keeps, what the first one held is left out). On B, after the first import, the first
/// requests complete and the new one fails offline naming its missing crate; after the second
/// import it completes too, every bundle identical to A's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_export_since_the_last_holds_only_what_was_stored_after_the_first() {
    let fx = Fixtures::new().await;
    let (_late_repo, late) = late_cargo_project(&fx);
    let a = online_instance(&fx.env()).await;
    let mut on_a = BTreeMap::new();
    for pm in ["npm", "gomod", "cargo"] {
        on_a.insert(pm, completed_bundle(&a, pm, &fx.body(pm)).await);
    }
    let out = tempfile::tempdir().unwrap();
    let first_dir = out.path().join("first");
    let first = export(&a, &first_dir, &["--since-last"]);
    assert!(
        first["since"].is_null(),
        "a first export holds all: {first}"
    );
    let first_keys = manifest_keys(&first);
    let before: BTreeSet<String> = store_tree(&a).keys().cloned().collect();
    assert_eq!(first_keys, before);

    let late_on_a = completed_bundle(&a, "cargo", &late).await;
    let added: BTreeSet<String> = store_tree(&a)
        .keys()
        .filter(|k| !before.contains(*k))
        .cloned()
        .collect();
    assert!(
        added.iter().any(|k| k.contains("late-crate")),
        "the new request stored its crate: {added:?}"
    );
    let second_dir = out.path().join("second");
    let second = export(&a, &second_dir, &["--since-last"]);
    assert!(!second["since"].is_null(), "{second}");
    let second_keys = manifest_keys(&second);
    assert_eq!(
        second_keys, added,
        "the second export holds what A stored after the first, and only that"
    );
    assert!(second_keys.is_disjoint(&first_keys));

    fx.forget_requests();
    let b = offline_instance().await;
    import_ok(&b, &first_dir);
    for pm in ["npm", "gomod", "cargo"] {
        let done = run_request(&b, &fx.body(pm)).await;
        assert_eq!(done["state"], "complete", "{pm} on B: {done}");
        let (bytes, _) = b.download(done["id"].as_i64().unwrap()).await;
        assert_eq!(sha256_hex(&bytes), on_a[pm], "{pm}: B's bundle");
    }
    let said = import_ok(&b, &second_dir);
    assert!(
        said.contains(&format!("imported {} object(s)", second_keys.len())),
        "{said}"
    );
    let done = run_request(&b, &late).await;
    assert_eq!(done["state"], "complete", "the new request on B: {done}");
    let (bytes, _) = b.download(done["id"].as_i64().unwrap()).await;
    assert_eq!(sha256_hex(&bytes), late_on_a, "the new request: B's bundle");
    assert_eq!(
        fx.requests(),
        Vec::<String>::new(),
        "B (offline) contacted a fixture upstream"
    );
}

/// Each of `pms` completes on A (which names its dependencies); on a fresh offline B that
/// imported nothing, the same request fails with a reason naming one of those dependencies and
/// LARDER_OFFLINE, and no upstream hears from B.
async fn never_imported(pms: &[&str]) {
    let fx = Fixtures::new().await;
    let a = online_instance(&fx.env()).await;
    let mut names = BTreeMap::new();
    for pm in pms {
        let done = run_request(&a, &fx.body(pm)).await;
        assert_eq!(done["state"], "complete", "{pm} on A: {done}");
        let deps: Vec<String> = done["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert!(!deps.is_empty(), "{pm}: {done}");
        names.insert(*pm, deps);
    }
    fx.forget_requests();
    let b = offline_instance().await;
    let mut failures = Vec::new();
    for pm in pms {
        let done = run_request(&b, &fx.body(pm)).await;
        let reason = done["state_reason"].as_str().unwrap_or_default();
        if done["state"] != "failed"
            || !reason.contains("LARDER_OFFLINE")
            || !names[pm].iter().any(|n| reason.contains(n.as_str()))
        {
            failures.push(format!(
                "{pm} ({}): {} (its dependencies: {:?})",
                done["state"], done["state_reason"], names[pm]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not failed naming a missing dependency and LARDER_OFFLINE:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        fx.requests(),
        Vec::<String>::new(),
        "B (offline) contacted a fixture upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_request_needing_dependencies_never_imported_fails_naming_one_and_larder_offline(
) {
    never_imported(&["npm", "yarn", "pnpm", "pip", "gomod", "rubygems"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_cargo_request_needing_a_crate_never_imported_fails_naming_it_and_larder_offline(
) {
    never_imported(&["cargo"]).await;
}

/// A exports an npm project of `n` packages of `payload` bytes each, in volumes of at most
/// `max_volume`.
struct Exported {
    _tmp: tempfile::TempDir,
    _npm: crate::support::projects::Npm,
    _a: Larder,
    dir: PathBuf,
    manifest: Value,
}

async fn exported_npm(n: usize, payload: usize, max_volume: &str) -> Exported {
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm_with_payload(&tmp.path().join("npm"), n, payload).await;
    let a = online_instance(&npm.project.env).await;
    let done = run_request(&a, &npm.project.body()).await;
    assert_eq!(done["state"], "complete", "{done}");
    let dir = tmp.path().join("transfer");
    let manifest = export(&a, &dir, &["--max-volume-size", max_volume]);
    Exported {
        _tmp: tmp,
        _npm: npm,
        _a: a,
        dir,
        manifest,
    }
}

/// Copy a transfer directory (to damage the copy).
fn copy_transfer(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// An import SIGKILLed at twenty points spread over an uninterrupted import's duration (each
/// into a fresh store and database), then run again: the rerun exits 0 and the store's
/// `sources/` and `deps/` hold exactly what the uninterrupted import wrote, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_at_twenty_points_converges_on_rerun_to_an_uninterrupted_import() {
    let ex = exported_npm(150, 64 << 10, "4M").await;
    let objects = ex.manifest["objects"].as_array().unwrap().len();

    let reference = Larder::new();
    let started = Instant::now();
    let said = import_ok(&reference, &ex.dir);
    let took = started.elapsed();
    assert!(
        said.contains(&format!("imported {objects} object(s)")),
        "{said}"
    );
    let want = store_tree(&reference);
    assert_eq!(
        want.keys().cloned().collect::<BTreeSet<_>>(),
        manifest_keys(&ex.manifest)
    );
    eprintln!("an uninterrupted import of {objects} objects took {took:?}");

    let seed: u64 = rand::random();
    eprintln!("kill delays seeded with {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut partial = 0;
    let mut failures = Vec::new();
    for i in 0..20u32 {
        // a quarter of the kills at a time over the whole run (its start-up and database
        // migration included), the rest once a random number of objects is stored: on a
        // loaded machine a time alone mostly lands before the copy or after it
        let (at, delay, after_objects) = if i % 4 == 0 {
            let delay = took.mul_f64((i as f64 + rand::Rng::random::<f64>(&mut rng)) / 20.0);
            (format!("{delay:?}"), delay, None)
        } else {
            let k = rand::Rng::random_range(&mut rng, 1..objects);
            (format!("{k} objects"), Duration::ZERO, Some(k))
        };
        let b = Larder::new();
        let started = Instant::now();
        let mut child = cli_command(&b, &["import", ex.dir.to_str().unwrap()], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match after_objects {
            None => std::thread::sleep(delay),
            Some(k) => {
                while store_tree_len(&b) < k
                    && child.try_wait().unwrap().is_none()
                    && started.elapsed() < Duration::from_secs(60)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let interrupted = store_tree(&b);
        if !interrupted.is_empty() && interrupted != want {
            partial += 1;
        }
        for (key, sha) in &interrupted {
            if want.get(key) != Some(sha) {
                failures.push(format!(
                    "kill at {at:?}: {key} is visible with bytes an uninterrupted import did not write"
                ));
            }
        }
        let (code, out, err) = import(&b, &ex.dir);
        if code != 0 {
            failures.push(format!(
                "kill at {at:?} ({status}): the rerun exited {code}: {out}{err}"
            ));
        }
        let got = store_tree(&b);
        if got != want {
            let missing: Vec<_> = want
                .keys()
                .filter(|k| !got.contains_key(*k))
                .take(5)
                .collect();
            let differ: Vec<_> = got
                .iter()
                .filter(|(k, v)| want.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .take(5)
                .collect();
            failures.push(format!(
                "kill at {at:?}: after the rerun the store differs: missing {missing:?}, other {differ:?} ({out})"
            ));
        }
    }
    eprintln!("{partial} of 20 kills left a partial import");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        partial >= 10,
        "only {partial} of 20 kills landed mid-import: the test does not exercise resumption"
    );
}

/// How many files `larder`'s store holds under `sources/` and `deps/` (a cheap walk).
fn store_tree_len(larder: &Larder) -> usize {
    let mut dirs = vec![
        larder.data.path().join("sources"),
        larder.data.path().join("deps"),
    ];
    let mut n = 0;
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Where the bytes of `key` sit in a volume (an offset from the volume's start).
fn offset_in_volume(volume: &Path, key: &str) -> u64 {
    let mut archive = tar::Archive::new(std::fs::File::open(volume).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == key {
            return entry.raw_file_position();
        }
    }
    panic!("{key} is not in {}", volume.display());
}

/// One byte flipped in the middle of one object in one volume: the import refuses exactly that
/// object (exit 2, its key on stderr), imports every other, and stores nothing under its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_volume_refuses_exactly_that_object_and_imports_every_other() {
    let ex = exported_npm(12, 16 << 10, "64K").await;
    let objects = ex.manifest["objects"].as_array().unwrap();
    let victim = objects
        .iter()
        .find(|o| {
            o["key"].as_str().unwrap().starts_with("deps/") && o["size"].as_u64().unwrap() > 1000
        })
        .expect("a dependency of some size");
    let key = victim["key"].as_str().unwrap();
    let volume_name = ex.manifest["volumes"][victim["volume"].as_u64().unwrap() as usize]["name"]
        .as_str()
        .unwrap();
    let damaged = ex.dir.parent().unwrap().join("damaged");
    copy_transfer(&ex.dir, &damaged);
    let volume = damaged.join(volume_name);
    let at = offset_in_volume(&volume, key) + victim["size"].as_u64().unwrap() / 2;
    let mut bytes = std::fs::read(&volume).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(&volume, bytes).unwrap();

    let b = Larder::new();
    let (code, out, err) = import(&b, &damaged);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    let refused: Vec<&str> = err.lines().filter(|l| l.starts_with("REFUSED: ")).collect();
    assert_eq!(refused.len(), 1, "{err}");
    assert!(
        refused[0].starts_with(&format!("REFUSED: {key}: ")),
        "{err}"
    );
    assert!(
        out.contains(&format!("imported {} object(s)", objects.len() - 1))
            && out.contains("1 refused"),
        "{out}"
    );
    let got = store_tree(&b);
    let mut want = manifest_keys(&ex.manifest);
    want.remove(key);
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), want);
    for o in objects {
        let k = o["key"].as_str().unwrap();
        if k != key {
            assert_eq!(got[k], o["sha256"].as_str().unwrap(), "{k}");
        }
    }

    // the intact volumes bring the refused object in
    let (code, out, err) = import(&b, &ex.dir);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("imported 1 object(s)"), "{out}");
    assert_eq!(
        store_tree(&b).keys().cloned().collect::<BTreeSet<_>>(),
        manifest_keys(&ex.manifest)
    );
}

/// An export in several volumes, one deleted: the import exits 1 naming that volume, and
/// stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_volume_fails_the_import_naming_it_and_imports_nothing() {
    let ex = exported_npm(12, 16 << 10, "64K").await;
    let volumes = ex.manifest["volumes"].as_array().unwrap();
    assert!(volumes.len() >= 3, "{}", ex.manifest["volumes"]);
    let gone = volumes[1]["name"].as_str().unwrap();
    assert_eq!(gone, "volume-00002.tar");
    let partial = ex.dir.parent().unwrap().join("partial");
    copy_transfer(&ex.dir, &partial);
    std::fs::remove_file(partial.join(gone)).unwrap();

    let b = Larder::new();
    let (code, out, err) = import(&b, &partial);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains(gone), "stderr names {gone}: {err}");
    assert_eq!(store_tree(&b), BTreeMap::new(), "nothing imported");
}

/// The same volumes imported twice: the second writes nothing (all present); B's
/// `GET /api/v1/transfers` lists both imports, newest first, with their counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_import_of_the_same_volumes_writes_nothing_and_the_transfers_api_lists_both() {
    let ex = exported_npm(12, 16 << 10, "64K").await;
    let objects = ex.manifest["objects"].as_array().unwrap().len();
    let bytes: u64 = ex.manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["size"].as_u64().unwrap())
        .sum();
    let b = offline_instance().await;
    let first = import_ok(&b, &ex.dir);
    assert!(
        first.contains(&format!("imported {objects} object(s)")),
        "{first}"
    );
    let tree = store_tree(&b);
    let second = import_ok(&b, &ex.dir);
    assert!(
        second.contains("imported 0 object(s)")
            && second.contains(&format!("{objects} already present"))
            && second.contains("0 refused"),
        "{second}"
    );
    assert_eq!(store_tree(&b), tree, "the second import changed the store");

    let (status, listed) = b.get("/api/v1/transfers").await;
    assert_eq!(status, 200, "{listed}");
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let dir = ex.dir.display().to_string();
    for (item, (objects, bytes, present)) in
        items.iter().zip([(0, 0, objects), (objects, bytes, 0)])
    {
        assert_eq!(item["kind"], "import", "{item}");
        assert_eq!(item["state"], "complete", "{item}");
        assert_eq!(item["directory"], dir.as_str(), "{item}");
        assert_eq!(item["instance"], ex.manifest["instance"], "{item}");
        assert!(!item["until"].is_null(), "{item}");
        assert_eq!(item["objects"], objects as u64, "{item}");
        assert_eq!(item["bytes"], bytes, "{item}");
        assert_eq!(item["present"], present as u64, "{item}");
        assert_eq!(item["refused"], 0, "{item}");
    }
    assert!(
        items[0]["id"].as_i64() > items[1]["id"].as_i64(),
        "newest first: {listed}"
    );
}

/// B (offline) completes a git-submodule request of a local repository itself (local
/// repositories are read offline), storing that commit's source archive; A, which completed the
/// same request, exports: B's import finds that archive already present, the same bytes, and
/// refuses nothing, and the two bundles are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_archive_both_instances_made_of_one_commit_is_the_same_and_imports_as_present() {
    let fx = Fixtures::new().await;
    let body = fx.body("git-submodule");
    let a = online_instance(&fx.env()).await;
    let on_a = completed_bundle(&a, "git-submodule", &body).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("transfer");
    let b = offline_instance().await;
    let on_b = completed_bundle(&b, "git-submodule", &body).await;
    // and an npm request, which fails offline once its source archive is stored
    let npm_a = run_request(&a, &fx.body("npm")).await;
    assert_eq!(npm_a["state"], "complete", "{npm_a}");
    let npm_b = run_request(&b, &fx.body("npm")).await;
    assert_eq!(npm_b["state"], "failed", "{npm_b}");
    let (ta, tb) = (store_tree(&a), store_tree(&b));
    let differ: Vec<String> = tb
        .iter()
        .filter(|(k, v)| ta.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| {
            let (x, y) = (
                std::fs::read(a.data.path().join(k)).unwrap(),
                std::fs::read(b.data.path().join(k)).unwrap(),
            );
            let gunzip = |bytes: &[u8]| {
                let mut out = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::MultiGzDecoder::new(bytes),
                    &mut out,
                )
                .map(|_| out)
                .ok()
            };
            let (ux, uy) = (gunzip(&x), gunzip(&y));
            let first = match (&ux, &uy) {
                (Some(ux), Some(uy)) => ux
                    .iter()
                    .zip(uy.iter())
                    .position(|(p, q)| p != q)
                    .map(|i| {
                        let at = i / 512 * 512;
                        let show = |u: &[u8]| {
                            String::from_utf8_lossy(&u[at..(at + 100).min(u.len())])
                                .trim_end_matches('\0')
                                .to_string()
                        };
                        format!(
                            "first decompressed difference at byte {i} of {} / {}, in the block {:?} / {:?}",
                            ux.len(),
                            uy.len(),
                            show(ux),
                            show(uy)
                        )
                    })
                    .unwrap_or_else(|| format!("decompressed equal: {}", ux == uy)),
                _ => "not gzip".into(),
            };
            let entries = |u: &Option<Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
                let Some(u) = u else { return BTreeMap::new() };
                let mut out = BTreeMap::new();
                for e in tar::Archive::new(&u[..]).entries().unwrap() {
                    let mut e = e.unwrap();
                    let name = e.path().unwrap().to_string_lossy().into_owned();
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut e, &mut buf).unwrap();
                    out.insert(name, buf);
                }
                out
            };
            let (ex, ey) = (entries(&ux), entries(&uy));
            let members: Vec<&String> = ex.keys().filter(|n| ex.get(*n) != ey.get(*n)).collect();
            format!(
                "{k}: A {} bytes, B {} bytes; {first}; members that differ: {members:?}",
                x.len(),
                y.len()
            )
        })
        .collect();
    let mut problems: Vec<String> = differ
        .into_iter()
        .map(|d| format!("the same key, other bytes on A and B: {d}"))
        .collect();
    if on_b != on_a {
        problems.push(format!(
            "the git-submodule bundles of one commit differ: A {on_a}, B {on_b}"
        ));
    }
    export(&a, &out, &[]);
    let (code, said, err) = import(&b, &out);
    if code != 0 || !said.contains(" 0 refused") {
        let refused: Vec<&str> = err.lines().filter(|l| l.starts_with("REFUSED")).collect();
        problems.push(format!(
            "the import exited {code}: {} {refused:?}",
            said.trim()
        ));
    }
    // the npm request that failed offline completes now, with A's bundle
    let npm_b = run_request(&b, &fx.body("npm")).await;
    if npm_b["state"] != "complete" {
        problems.push(format!(
            "npm on B after the import: {}",
            npm_b["state_reason"]
        ));
    } else {
        let (x, _) = a.download(npm_a["id"].as_i64().unwrap()).await;
        let (y, _) = b.download(npm_b["id"].as_i64().unwrap()).await;
        if x != y {
            problems.push("npm: B's bundle differs from A's".into());
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// B already holds one of the exported keys with other bytes: the import refuses that object
/// (exit 2, its key on stderr), leaves B's bytes as they were, and imports every other object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_store_holds_with_other_bytes_is_refused_and_left_unchanged() {
    let ex = exported_npm(6, 4 << 10, "4G").await;
    let objects = ex.manifest["objects"].as_array().unwrap();
    let key = objects
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .find(|k| k.starts_with("deps/"))
        .expect("a dependency");
    let b = Larder::new();
    let theirs = b.data.path().join(key);
    std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    std::fs::write(&theirs, b"other bytes under this key").unwrap();
    let (code, out, err) = import(&b, &ex.dir);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    let refused: Vec<&str> = err.lines().filter(|l| l.starts_with("REFUSED: ")).collect();
    assert_eq!(refused.len(), 1, "{err}");
    assert!(
        refused[0].starts_with(&format!("REFUSED: {key}: ")),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&theirs).unwrap(),
        b"other bytes under this key",
        "the import changed what B held"
    );
    let got = store_tree(&b);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        manifest_keys(&ex.manifest)
    );
    for o in objects {
        let k = o["key"].as_str().unwrap();
        if k != key {
            assert_eq!(got[k], o["sha256"].as_str().unwrap(), "{k}");
        }
    }
}

/// `--with-requests`: A's finished requests go across as records; B lists them under its own
/// ids with where they came from, their history, contents and search entries, refuses their
/// bundle by name, and a second import records nothing again. Without the flag, none go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_with_requests_carries_their_records_and_the_far_side_lists_and_searches_them() {
    let fx = Fixtures::new().await;
    let a = online_instance(&fx.env()).await;
    let complete = run_request(&a, &fx.body("npm")).await;
    assert_eq!(complete["state"], "complete", "{complete}\n{}", a.logs());
    let missing_commit = "0".repeat(40);
    let failed = run_request(
        &a,
        &json!({"repo": fx.app.url(), "ref": missing_commit, "pkg_managers": ["npm"]}),
    )
    .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let a_id = complete["id"].as_i64().unwrap();
    let (_, on_a) = a.get(&format!("/api/v1/requests/{a_id}")).await;

    let out = tempfile::tempdir().unwrap();
    let plain = export(&a, &out.path().join("plain"), &[]);
    assert!(plain.get("requests").is_none(), "{plain}");
    assert!(!out.path().join("plain/requests.jsonl").exists());
    let dir = out.path().join("with");
    let m = export(&a, &dir, &["--with-requests"]);
    assert_eq!(m["requests"]["count"], 2, "{m}");

    let b = offline_instance().await;
    let said = import_ok(&b, &dir);
    assert!(said.contains("imported 2 request(s)"), "{said}");
    let (_, listed) = b.get("/api/v1/requests?per_page=10").await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let instance = m["instance"].as_str().unwrap();
    let on_b = items
        .iter()
        .find(|r| r["imported_from"]["id"] == a_id)
        .unwrap_or_else(|| panic!("A's request {a_id} is not on B: {listed}"));
    assert_eq!(on_b["imported_from"]["instance"], instance);
    assert!(items
        .iter()
        .any(|r| r["state"] == "failed" && r["state_reason"] == failed["state_reason"]));
    let b_id = on_b["id"].as_i64().unwrap();
    let (status, detail) = b.get(&format!("/api/v1/requests/{b_id}")).await;
    assert_eq!(status, 200, "{detail}");
    for field in [
        "repo",
        "ref",
        "pkg_managers",
        "state",
        "state_reason",
        "created",
        "updated",
        "state_history",
        "packages",
        "dependencies",
    ] {
        assert_eq!(detail[field], on_a[field], "{field} on B differs from A");
    }
    assert_eq!(detail["environment_variables"], json!({}));
    // what it contained, as A said
    let (_, manifest_a) = a
        .get(&format!("/api/v1/requests/{a_id}/content-manifest"))
        .await;
    let (status, manifest_b) = b
        .get(&format!("/api/v1/requests/{b_id}/content-manifest"))
        .await;
    assert_eq!(status, 200, "{manifest_b}");
    assert_eq!(manifest_b, manifest_a);
    let (status, sbom) = b.get(&format!("/api/v1/requests/{b_id}/sbom")).await;
    assert_eq!(status, 200, "{sbom}");
    // the dependency search finds it by what it fetched
    let purl = manifest_a["image_contents"][0]["dependencies"][0]["purl"]
        .as_str()
        .unwrap_or_else(|| panic!("no dependency purl in {manifest_a}"));
    let query: String = url::form_urlencoded::byte_serialize(purl.as_bytes()).collect();
    let (status, found) = b.get(&format!("/api/v1/dependencies?purl={query}")).await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == b_id),
        "{purl}: {found}"
    );
    // no bundle here, and it says whose request it is
    let (status, body) = b.get(&format!("/api/v1/requests/{b_id}/download")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains(instance), "{body}");

    // once: a second import records nothing, and B's own export does not send them back
    let again = import_ok(&b, &dir);
    assert!(
        again.contains("imported 0 request(s), 2 already present"),
        "{again}"
    );
    let (_, listed) = b.get("/api/v1/requests").await;
    assert_eq!(listed["meta"]["total"], 2, "{listed}");
    let (_, transfers) = b.get("/api/v1/transfers").await;
    assert_eq!(transfers["items"][0]["requests"], 0, "{transfers}");
    assert_eq!(transfers["items"][1]["requests"], 2, "{transfers}");
    let back = export(&b, &out.path().join("back"), &["--with-requests"]);
    assert_eq!(back["requests"]["count"], 0, "{back}");
    // B's own work only: the metrics and `latest` leave A's records out
    let (_, metrics) = b.get("/api/v1/request-metrics").await;
    assert_eq!(metrics["meta"]["total"], 0, "{metrics}");
    let repo_name = on_a["repo"].as_str().unwrap().trim_start_matches("file://");
    let latest = format!(
        "/api/v1/requests/latest?repo_name={}&ref={}",
        url::form_urlencoded::byte_serialize(repo_name.as_bytes()).collect::<String>(),
        on_a["ref"].as_str().unwrap()
    );
    let (status, found) = a.get(&latest).await;
    assert_eq!((status, &found["id"]), (200, &json!(a_id)), "{found}");
    let (status, found) = b.get(&latest).await;
    assert_eq!(status, 404, "{found}");

    // an export imported where it was made: its requests are refused, named
    let (code, said, err) = import(&a, &dir);
    assert_eq!(code, 2, "{said}\n{err}");
    assert!(
        err.contains("REFUSED: requests.jsonl: these are this instance's own requests"),
        "{err}"
    );
    let (_, on_a_now) = a.get("/api/v1/requests").await;
    assert_eq!(on_a_now["meta"]["total"], 2, "{on_a_now}");
}

/// A requests file that does not match its manifest is refused whole, named; every object is
/// imported all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_requests_file_is_refused_whole_and_the_objects_still_import() {
    let fx = Fixtures::new().await;
    let a = online_instance(&fx.env()).await;
    let done = run_request(&a, &fx.body("npm")).await;
    assert_eq!(done["state"], "complete", "{done}");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("t");
    let m = export(&a, &dir, &["--with-requests"]);
    let path = dir.join("requests.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"complete\"", "\"failed__\"", 1)).unwrap();

    let b = offline_instance().await;
    let (code, said, err) = import(&b, &dir);
    assert_eq!(code, 2, "{said}\n{err}");
    assert!(err.contains("REFUSED: requests.jsonl"), "{err}");
    assert!(
        said.contains(&format!(
            "imported {} object(s)",
            m["objects"].as_array().unwrap().len()
        )),
        "{said}"
    );
    let (_, listed) = b.get("/api/v1/requests").await;
    assert_eq!(listed["meta"]["total"], 0, "{listed}");
}
