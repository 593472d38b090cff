//! rubygems benchmark (not run by CI): `cargo bench --bench rubygems` (`LARDER_RUBYGEMS_BENCH_N`
//! gems, default 300). A synthetic Gemfile locked by the real `bundle lock` against a fixture
//! gem server (gems built by RubyGems' own builder), prefetched through a real Larder (cold,
//! then warm: submit → complete), next to the real `bundle install` from the same fixture
//! server into an empty path, and through the per-request gem server.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use support::rubygems_fixtures::*;
use support::*;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

/// `bundle install` into an empty `vendor/bundle` (deployment mode), timed.
fn install(dir: &Path, home: &Path, env: &[(&str, &str)]) -> Duration {
    let t = Instant::now();
    let (ok, out) = bundle(dir, home, &["install", "--jobs", "4"], env);
    let took = t.elapsed();
    assert!(ok, "bundle install in {}: {out}", dir.display());
    took
}

async fn run() {
    let n: usize = std::env::var("LARDER_RUBYGEMS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // gem i depends on gem i+1 within runs of ten; the Gemfile names the head of each run
    let gems: Vec<FixtureGem> = (0..n)
        .map(|i| {
            let dep = format!("g{}", i + 1);
            if i % 10 != 9 && i + 1 < n {
                FixtureGem::new(&format!("g{i}"), "1.0.0", &[(&dep, "= 1.0.0")])
            } else {
                FixtureGem::new(&format!("g{i}"), "1.0.0", &[])
            }
        })
        .collect();
    let built_at = Instant::now();
    let built = build_gems(t, &gems);
    let build_time = built_at.elapsed();
    let up_dir = t.join("upstream");
    write_server(&up_dir, &built);
    let upstream = StaticServer::start(&up_dir).await;
    let mirror = format!("{}/", upstream.url);

    let repo = GitRepo::new(t.join("repo"));
    let mut gemfile = String::from("source \"https://rubygems.org\"\n");
    for i in (0..n).step_by(10) {
        gemfile.push_str(&format!("gem \"g{i}\"\n"));
    }
    repo.write("Gemfile", &gemfile);
    let (ok, out) = bundle(
        &repo.dir,
        &t.join("home-lock"),
        &["lock"],
        &[("BUNDLE_MIRROR__ALL", &mirror)],
    );
    assert!(ok, "bundle lock: {out}");
    let commit = repo.commit("bench");
    let lock = std::fs::read_to_string(repo.dir.join("Gemfile.lock")).unwrap();

    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_RUBYGEMS_URL".into(), upstream.url.clone());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;

    let prefetch = |label: &'static str| {
        let larder = &larder;
        let (repo_url, commit) = (repo.url(), commit.clone());
        async move {
            let t = Instant::now();
            let id = larder
                .submit(json!({"repo": repo_url, "ref": commit, "pkg_managers": ["rubygems"]}))
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

    // the real client from the fixture server, empty path and HOME
    let direct = t.join("direct");
    std::fs::create_dir_all(&direct).unwrap();
    std::fs::write(direct.join("Gemfile"), &gemfile).unwrap();
    std::fs::write(direct.join("Gemfile.lock"), &lock).unwrap();
    let (d, h, m) = (direct.clone(), t.join("home-direct"), mirror.clone());
    let bundle_direct = tokio::task::spawn_blocking(move || {
        install(
            &d,
            &h,
            &[
                ("BUNDLE_MIRROR__ALL", m.as_str()),
                ("BUNDLE_DEPLOYMENT", "true"),
            ],
        )
    })
    .await
    .unwrap();

    // the real client through the per-request gem server (the returned .bundle/config)
    let files = larder.config_files(id).await;
    let via = t.join("via-larder");
    std::fs::create_dir_all(via.join(".bundle")).unwrap();
    std::fs::write(via.join("Gemfile"), &gemfile).unwrap();
    std::fs::write(via.join("Gemfile.lock"), &lock).unwrap();
    std::fs::write(via.join(".bundle/config"), &files["app/.bundle/config"]).unwrap();
    let (v, h) = (via.clone(), t.join("home-via"));
    let bundle_via = tokio::task::spawn_blocking(move || install(&v, &h, &[]))
        .await
        .unwrap();
    let installed = installed_gems(&via.join("vendor/bundle"));
    assert_eq!(installed.len(), n, "{installed:?}");

    println!(
        "rubygems benchmark: {n} gems (Gemfile.lock by bundle lock; fixture gem server on 127.0.0.1; {} to build the gems)",
        format_args!("{build_time:.2?}")
    );
    println!("| what | time | upstream requests |");
    println!("| --- | --- | --- |");
    println!("| Larder prefetch, cold (submit → complete) | {cold:.2?} | {cold_requests} |");
    println!("| Larder prefetch, warm (submit → complete) | {warm:.2?} | {warm_requests} |");
    println!(
        "| `bundle install` (deployment), fixture server, empty path | {bundle_direct:.2?} | |"
    );
    println!(
        "| `bundle install` (deployment), per-request gem server, empty path | {bundle_via:.2?} | |"
    );
}
