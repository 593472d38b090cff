//! gomod benchmark: prefetch a fixture of N modules (default 320, `LARDER_BENCH_MODULES`)
//! through a real Larder, cold (empty store) and warm (second request), next to the real `go`
//! command downloading the same modules from the same fixture upstream, and the peak RSS of
//! the `larder serve` process (api + worker).
//!
//! `cargo bench --bench gomod` (needs PostgreSQL, RabbitMQ and `go`).

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use support::gomod_fixtures;

use gomod_fixtures::*;
use std::time::{Duration, Instant};
use support::*;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("LARDER_BENCH_MODULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(320);
    let work = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let projects::Gomod {
        project,
        gomod,
        gosum,
        main,
    } = projects::gomod(work.path(), n).await;
    let fixture_time = t.elapsed();
    let upstream = &project.upstream;

    let mut larder = Larder::new();
    project.configure(&mut larder);
    larder.env.insert("LARDER_LOG".into(), "warn".into());
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let body = project.body();

    let (id, cold) = timed(&larder, &body).await;
    let cold_requests = upstream.requests().len();
    upstream.clear_requests();
    let (_, warm) = timed(&larder, &body).await;
    let warm_requests = upstream.requests().len();
    let hwm = vm_hwm_kib(larder.pid(serve));

    // the real client on the same upstream, empty module cache
    let app = work.path().join("client");
    std::fs::create_dir_all(&app).unwrap();
    for (f, c) in [("go.mod", &gomod), ("go.sum", &gosum), ("main.go", &main)] {
        std::fs::write(app.join(f), c).unwrap();
    }
    let gopath = work.path().join("gopath");
    let env = vec![
        ("GOPROXY".to_string(), upstream.url.clone()),
        ("GOSUMDB".to_string(), "off".to_string()),
        ("GOFLAGS".to_string(), "-mod=mod".to_string()),
        ("GOPATH".to_string(), gopath.display().to_string()),
        (
            "GOCACHE".to_string(),
            work.path().join("gocache").display().to_string(),
        ),
    ];
    let home = work.path().join("home");
    let t = Instant::now();
    let (ok, log) = go(&app, &home, &["mod", "download"], &env);
    let client = t.elapsed();
    assert!(ok, "{log}");
    make_writable(&gopath);

    // and the offline build from Larder's bundle
    let (bytes, _) = larder.download(id).await;
    let bundle_dir = work.path().join("bundle");
    unpack(&bytes, &bundle_dir);
    let (_, vars) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    let env = with(&env_from(&vars, &bundle_dir), "GOPROXY", "off");
    let t = Instant::now();
    let (ok, log) = go(&bundle_dir.join("app"), &home, &["build", "./..."], &env);
    let offline_build = t.elapsed();
    assert!(ok, "{log}");
    make_writable(&bundle_dir);

    let files = 3 * n;
    println!();
    println!("gomod prefetch, {n} modules ({files} .info/.mod/.zip files), fixture built in {fixture_time:.2?}");
    println!("| run | time | upstream requests |");
    println!("| --- | ---: | ---: |");
    println!("| Larder cold (empty store), submit -> complete | {cold:.2?} | {cold_requests} |");
    println!(
        "| Larder warm (same deps in store), submit -> complete | {warm:.2?} | {warm_requests} |"
    );
    println!("| go mod download (Go 1.19, empty module cache, same upstream) | {client:.2?} | - |");
    println!("| go build ./... from the bundle, GOPROXY=off (build cache cold) | {offline_build:.2?} | 0 |");
    println!(
        "| peak RSS of `larder serve` (api + worker, VmHWM) | {:.1} MiB | |",
        hwm as f64 / 1024.0
    );
}

/// Submit and wait for completion; returns the request id and the time it took.
async fn timed(larder: &Larder, body: &serde_json::Value) -> (i64, Duration) {
    let t = Instant::now();
    let id = larder.submit(body.clone()).await;
    let r = larder
        .wait_until(id, Duration::from_secs(1800), |r| {
            r["state"] != "in_progress"
        })
        .await;
    assert_eq!(r["state"], "complete", "{r}");
    (id, t.elapsed())
}
