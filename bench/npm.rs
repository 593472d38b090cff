//! npm benchmark (not run by CI): `cargo bench --bench npm` (`LARDER_NPM_BENCH_N` packages,
//! default 1000). A synthetic lockfile through a real Larder (cold, then warm: submit →
//! complete), next to the real `npm ci --ignore-scripts` installing the same tree from the same
//! fixture registry into an empty cache, and the `larder serve` process's peak RSS.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use support::npm_fixtures;

use base64::Engine;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn npm_ci(dir: &Path, home: &Path) -> Duration {
    std::fs::create_dir_all(home).unwrap();
    let t = Instant::now();
    let out = clean_command("npm", home)
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .env("npm_config_cache", home.join("cache"))
        .output()
        .expect("npm runs");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "npm ci failed: {}{}",
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
    let n: usize = std::env::var("LARDER_NPM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let projects::Npm {
        project,
        root,
        tree,
    } = projects::npm(tmp.path(), n).await;
    let upstream = &project.upstream;

    let mut larder = Larder::new();
    project.configure(&mut larder);
    // measurement knobs for the served process (the harness clears its environment):
    // LARDER_NPM_BENCH_CHILD_<VAR>=value sets <VAR> (e.g. MALLOC_ARENA_MAX, LD_PRELOAD)
    for (k, v) in std::env::vars() {
        if let Some(var) = k.strip_prefix("LARDER_NPM_BENCH_CHILD_") {
            larder.env.insert(var.into(), v);
        }
    }
    // LARDER_NPM_BENCH_SPLIT: `larder api` + `larder worker` as two processes, to tell their
    // memory apart (prefetch-only runs)
    let split = std::env::var_os("LARDER_NPM_BENCH_SPLIT").is_some();
    let (serve, worker) = if split {
        let api = larder.spawn("api", &[]);
        larder.wait_healthy().await;
        // LARDER_NPM_BENCH_WORKER_<VAR>=value: env for the worker process only
        let worker_env: Vec<(String, String)> = std::env::vars()
            .filter_map(|(k, v)| Some((k.strip_prefix("LARDER_NPM_BENCH_WORKER_")?.to_string(), v)))
            .collect();
        let worker_env: Vec<(&str, &str)> = worker_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        (api, Some(larder.spawn("worker", &worker_env)))
    } else {
        (larder.spawn("serve", &[]), None)
    };
    larder.wait_healthy().await;
    let rss_idle = vm_hwm_kib(larder.pid(serve));

    let prefetch = |label: &'static str| {
        let larder = &larder;
        let body = project.body();
        async move {
            let t = Instant::now();
            let id = larder.submit(body).await;
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
    let rss_peak = vm_hwm_kib(larder.pid(serve));
    if std::env::var_os("LARDER_NPM_BENCH_SKIP_NPM_CI").is_some() {
        // memory/prefetch only: no `npm ci` runs
        println!(
            "npm benchmark: {n} packages; cold {cold:.2?} ({cold_requests} upstream requests), warm {warm:.2?} ({warm_requests}); `larder serve` VmHWM idle {} MiB, after prefetches {} MiB",
            rss_idle / 1024,
            rss_peak / 1024
        );
        let _ = id;
        if let Some(w) = worker {
            println!(
                "split: `larder api` VmHWM {} MiB, `larder worker` VmHWM {} MiB",
                vm_hwm_kib(larder.pid(serve)) / 1024,
                vm_hwm_kib(larder.pid(w)) / 1024
            );
        }
        if std::env::var_os("LARDER_NPM_BENCH_PROC").is_some() {
            let pid = larder.pid(worker.unwrap_or(serve));
            let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
            let mut cur = String::new();
            let mut maps = vec![];
            for l in smaps.lines() {
                if let Some(rss) = l.strip_prefix("Rss:") {
                    let kb: u64 = rss
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    maps.push((kb, cur.clone()));
                } else if l
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.contains('-') && !w.ends_with(':'))
                {
                    cur = l.to_string();
                }
            }
            maps.sort();
            for (kb, m) in maps.iter().rev().take(15) {
                println!("{kb:>8} kB {m}");
            }
            for f in ["status", "smaps_rollup"] {
                println!(
                    "{}",
                    std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default()
                );
            }
        }
        return;
    }

    // the real client, same fixture registry, empty cache
    let direct = tmp.path().join("direct");
    std::fs::create_dir_all(&direct).unwrap();
    let lock_up = npm_fixtures::lockfile(3, &root, &tree, &upstream.url);
    std::fs::write(
        direct.join("package.json"),
        serde_json::to_vec_pretty(&root.package_json()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        direct.join("package-lock.json"),
        serde_json::to_vec_pretty(&lock_up).unwrap(),
    )
    .unwrap();
    let home = tmp.path().join("home-direct");
    let npm_direct = tokio::task::spawn_blocking(move || npm_ci(&direct, &home))
        .await
        .unwrap();

    // the real client against the per-request registry (the returned configuration files)
    let (_, files) = larder
        .get(&format!("/api/v1/requests/{id}/configuration-files"))
        .await;
    let via = tmp.path().join("via-larder");
    std::fs::create_dir_all(&via).unwrap();
    std::fs::write(
        via.join("package.json"),
        serde_json::to_vec_pretty(&root.package_json()).unwrap(),
    )
    .unwrap();
    for f in files.as_array().unwrap() {
        let rel = f["path"].as_str().unwrap().strip_prefix("app/").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(f["content"].as_str().unwrap())
            .unwrap();
        std::fs::write(via.join(rel), bytes).unwrap();
    }
    let home = tmp.path().join("home-via");
    let npm_via = tokio::task::spawn_blocking(move || npm_ci(&via, &home))
        .await
        .unwrap();
    let rss_after_serving = vm_hwm_kib(larder.pid(serve));

    let installed: Value = serde_json::from_slice(
        &std::fs::read(
            tmp.path()
                .join("via-larder/node_modules/.package-lock.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(installed["packages"].as_object().unwrap().len(), n);

    println!("npm benchmark: {n} packages (lockfile v3, fixture registry on 127.0.0.1)");
    println!("| what | time | upstream requests |");
    println!("| --- | --- | --- |");
    println!(
        "| Larder prefetch, cold (submit → complete) | {:.2?} | {cold_requests} |",
        cold
    );
    println!(
        "| Larder prefetch, warm (submit → complete) | {:.2?} | {warm_requests} |",
        warm
    );
    println!(
        "| `npm ci --ignore-scripts`, fixture registry, empty cache | {:.2?} | |",
        npm_direct
    );
    println!(
        "| `npm ci --ignore-scripts`, per-request registry, empty cache | {:.2?} | |",
        npm_via
    );
    println!(
        "| `larder serve` peak RSS (VmHWM): idle {} MiB, after prefetches {} MiB, after serving npm ci {} MiB | | |",
        rss_idle / 1024,
        rss_peak / 1024,
        rss_after_serving / 1024
    );
}
