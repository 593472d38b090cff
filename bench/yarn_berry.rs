//! yarn Berry benchmark (not run by CI): `cargo bench --bench yarn_berry`
//! (`LARDER_YARN_BERRY_BENCH_N` packages, default 1000). A synthetic tree in a fixture registry,
//! its `yarn.lock` made by the real Yarn 4 (`.ci/tools/berry`), then through a real Larder:
//! prefetch cold and warm (submit → complete), next to the real `yarn install --immutable`
//! with an empty cache from the same fixture registry, through the per-request registry with
//! the hand-back, and offline from the bundle's Yarn cache.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::clients::yarn_berry;
use support::npm_fixtures::{copy_dir, synthetic, write, write_registry};
use support::*;

fn timed_yarn(dir: &Path, home: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let (ok, out) = yarn_berry(dir, home, args);
    let took = t.elapsed();
    assert!(ok, "yarn {args:?} in {} failed:\n{out}", dir.display());
    took
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let n: usize = std::env::var("LARDER_YARN_BERRY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let up_dir = t.join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let (root, tree) = synthetic(n);
    let pkgs: Vec<_> = tree.iter().map(|e| e.pkg.clone()).collect();
    write_registry(&up_dir, &upstream.url, &pkgs).unwrap();

    let repo = GitRepo::new(t.join("repo"));
    repo.write(
        "package.json",
        &serde_json::to_string_pretty(&root.package_json()).unwrap(),
    )
    .write(
        ".yarnrc.yml",
        &format!(
            "nodeLinker: node-modules\nnpmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - 127.0.0.1\nnpmMinimalAgeGate: 0\n",
            upstream.url
        ),
    );
    let gen = t.join("generate");
    copy_dir(&repo.dir, &gen);
    let resolve = timed_yarn(&gen, &t.join("home-generate"), &["install"]);
    let lock = std::fs::read_to_string(gen.join("yarn.lock")).unwrap();
    repo.write("yarn.lock", &lock);
    let commit = repo.commit("bench");

    // the real client, same fixture registry, empty cache
    let direct = t.join("direct");
    copy_dir(&repo.dir, &direct);
    let yarn_direct = timed_yarn(&direct, &t.join("home-direct"), &["install", "--immutable"]);

    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_NPM_REGISTRY".into(), upstream.url.clone());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let prefetch = |label: &'static str| {
        let larder = &larder;
        let (repo_url, commit) = (repo.url(), commit.clone());
        async move {
            let t = Instant::now();
            let id = larder
                .submit(json!({"repo": repo_url, "ref": commit, "pkg_managers": ["yarn"]}))
                .await;
            let done = larder
                .wait_until(id, Duration::from_secs(1800), |r| {
                    r["state"] != "in_progress"
                })
                .await;
            assert_eq!(done["state"], "complete", "{label}: {done}");
            (id, t.elapsed())
        }
    };
    upstream.clear_requests();
    let (_, cold) = prefetch("cold").await;
    let cold_requests = upstream.requests().len();
    upstream.clear_requests();
    let (id, warm) = prefetch("warm").await;
    let warm_requests = upstream.requests().len();

    // the real client against the per-request registry (a checkout and the configuration files)
    let cfg = larder.config_files(id).await;
    let via = t.join("via-larder");
    copy_dir(&repo.dir, &via);
    for (p, c) in &cfg {
        write(&via.join(p.strip_prefix("app/").unwrap()), c);
    }
    let yarn_via = timed_yarn(&via, &t.join("home-via"), &["install", "--immutable"]);

    // offline, from the bundle's Yarn cache
    let bundle = larder.download(id).await.0;
    let unpacked = t.join("bundle");
    tar::Archive::new(flate2::read::GzDecoder::new(&bundle[..]))
        .unpack(&unpacked)
        .unwrap();
    apply_app_overlay(&unpacked);
    let yarn_offline = timed_yarn(
        &unpacked.join("app"),
        &t.join("home-offline"),
        &["install", "--immutable"],
    );

    println!("yarn Berry benchmark: {n} packages (Yarn 4 lockfile, fixture registry on 127.0.0.1)");
    println!("| what | time | upstream requests |");
    println!("| --- | --- | --- |");
    println!("| Larder prefetch, cold (submit → complete) | {cold:.2?} | {cold_requests} |");
    println!("| Larder prefetch, warm (submit → complete) | {warm:.2?} | {warm_requests} |");
    println!("| `yarn install` (resolving, writing the lockfile), fixture registry, empty cache | {resolve:.2?} | |");
    println!("| `yarn install --immutable`, fixture registry, empty cache | {yarn_direct:.2?} | |");
    println!(
        "| `yarn install --immutable`, per-request registry, empty cache | {yarn_via:.2?} | |"
    );
    println!("| `yarn install --immutable`, offline from the bundle's Yarn cache | {yarn_offline:.2?} | |");
}
