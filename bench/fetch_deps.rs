//! `larder fetch-deps` benchmark (not run by CI): `cargo bench --bench fetch_deps`
//! (`LARDER_FETCH_DEPS_BENCH_N` packages, default 1000). A synthetic npm lockfile through the
//! real binary with an empty cache (cold), then again on the same cache into a new output
//! directory (warm), then `inject-files` and the real `npm ci --offline` from the output.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn larder(home: &Path, cache: &Path, args: &[&str], env: &[(String, String)]) -> Duration {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_larder"), home);
    cmd.args(args)
        .env("LARDER_CACHE_DIR", cache)
        .env("LARDER_ALLOW_PRIVATE_UPSTREAMS", "true")
        .env("LARDER_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.output().expect("larder runs");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "larder {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
    let n: usize = std::env::var("LARDER_FETCH_DEPS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let projects::Npm { project, .. } = projects::npm(tmp.path(), n).await;
    let (home, cache) = (tmp.path().join("home"), tmp.path().join("cache"));
    let source = project.repo.dir.to_str().unwrap().to_string();
    let env = project.env.clone();
    let fetch = |output: &Path| {
        let output = output.to_str().unwrap().to_string();
        let (home, cache, source, env) = (home.clone(), cache.clone(), source.clone(), env.clone());
        tokio::task::spawn_blocking(move || {
            larder(
                &home,
                &cache,
                &[
                    "fetch-deps",
                    "--source",
                    &source,
                    "--output",
                    &output,
                    "npm",
                ],
                &env,
            )
        })
    };
    let upstream = &project.upstream;
    upstream.clear_requests();
    let cold = fetch(&tmp.path().join("out-cold")).await.unwrap();
    let cold_requests = upstream.requests().len();
    upstream.clear_requests();
    let warm_out = tmp.path().join("out-warm");
    let warm = fetch(&warm_out).await.unwrap();
    let warm_requests = upstream.requests().len();

    // the output installs: inject-files, then the real npm offline
    larder(
        &home,
        &cache,
        &["inject-files", warm_out.to_str().unwrap()],
        &[],
    );
    let npm_home = tmp.path().join("npm-home");
    std::fs::create_dir_all(&npm_home).unwrap();
    let t = Instant::now();
    let out = clean_command("npm", &npm_home)
        .args([
            "ci",
            "--offline",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ])
        .current_dir(&project.repo.dir)
        .env("npm_config_cache", npm_home.join("cache"))
        .env("npm_config_registry", "http://127.0.0.1:9/")
        .output()
        .expect("npm runs");
    let npm_ci = t.elapsed();
    assert!(
        out.status.success(),
        "npm ci --offline failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "fetch-deps benchmark: {n} npm packages; cold {cold:.2?} ({cold_requests} upstream requests), warm {warm:.2?} ({warm_requests}); npm ci --offline from the output {npm_ci:.2?}"
    );
}
