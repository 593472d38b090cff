//! Serving from an object store next to serving from a directory (issue 16; not run by CI):
//! `cargo bench --bench store`.
//!
//! One synthetic npm project on a fixture upstream on loopback (`tests/e2e/support/
//! projects.rs`): `LARDER_STORE_BENCH_N` packages (default 100) of `LARDER_STORE_BENCH_KIB` KiB
//! that do not compress (default 1024), so a bundle of about N MiB. For each store, its own
//! `larder serve`, database and queue:
//!
//! - `dir`: `LARDER_DATA_DIR` (the default);
//! - `s3`: `LARDER_STORE_URL=s3://…` on a real S3-compatible server on loopback (moto's
//!   `moto_server`, from `.ci/tools/moto-venv`; the case is skipped without it).
//!
//! The request is made once; then, median of `LARDER_STORE_BENCH_RUNS` (default 3):
//!
//! - `bundle MB/s`: `GET …/download`, the whole bundle, read to nowhere;
//! - `range MB/s`: `GET …/download` with `Range: bytes=<half>-`, the second half;
//! - `repo MB/s`: every package's tarball through the request's npm registry
//!   (`/repos/{id}/npm/…`), 4 at a time;
//! - `floor MB/s`: what the store itself gives the same bytes, with no Larder in between: for
//!   `dir` every stored tarball read from the data directory through a 256 KiB buffer; for `s3`
//!   every tarball's object `GET` straight from the S3 server, 4 at a time;
//! - `repo/floor`: Larder's repository throughput next to that floor.
//!
//! MB is 10⁶ bytes. Every byte Larder serves is hashed on the way out (the bundle against its
//! name, repository files against the sha256 they were stored with); the floors hash nothing.
//! Needs PostgreSQL and RabbitMQ like the tests, and `git`.
//!
//! A quick check under the dev profile: `LARDER_STORE_BENCH_N=10 cargo test --bench store`.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use futures_util::StreamExt;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
use support::s3::MotoServer;
use support::*;

const AT_ONCE: usize = 4;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

struct Row {
    store: &'static str,
    bundle_bytes: u64,
    bundle: Duration,
    range_bytes: u64,
    range: Duration,
    repo_bytes: u64,
    repo: Duration,
    floor: Duration,
}

async fn run() {
    let n = knob("LARDER_STORE_BENCH_N", 100);
    let kib = knob("LARDER_STORE_BENCH_KIB", 1024);
    let runs = knob("LARDER_STORE_BENCH_RUNS", 3);
    let work = tempfile::tempdir().unwrap();
    let npm = projects::npm_with_payload(work.path(), n, kib << 10).await;
    let tarballs: Vec<String> = npm
        .tree
        .iter()
        .map(|e| {
            let base = e.pkg.name.rsplit('/').next().unwrap();
            format!("{}/-/{base}-{}.tgz", e.pkg.name, e.pkg.version)
        })
        .collect();
    let mut rows = vec![measure("dir", &npm.project, &tarballs, runs, None).await];
    match MotoServer::start("larder-bench") {
        Some(moto) => {
            rows.push(measure("s3", &npm.project, &tarballs, runs, Some(&moto)).await);
        }
        None => eprintln!("s3: skipped (no moto_server)"),
    }
    println!(
        "\n{n} npm packages of {kib} KiB; median of {runs} runs; MB = 10^6 bytes\n\n\
         | store | bundle MB | bundle MB/s | range MB/s | repo MB | repo MB/s | floor MB/s | repo/floor |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in &rows {
        let rate = |bytes: u64, took: Duration| bytes as f64 / 1e6 / took.as_secs_f64();
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {:.2} |",
            r.store,
            r.bundle_bytes as f64 / 1e6,
            rate(r.bundle_bytes, r.bundle),
            rate(r.range_bytes, r.range),
            r.repo_bytes as f64 / 1e6,
            rate(r.repo_bytes, r.repo),
            rate(r.repo_bytes, r.floor),
            r.floor.as_secs_f64() / r.repo.as_secs_f64(),
        );
    }
}

async fn measure(
    store: &'static str,
    project: &projects::Project,
    tarballs: &[String],
    runs: usize,
    moto: Option<&MotoServer>,
) -> Row {
    let mut larder = Larder::new();
    larder.env.insert("LARDER_LOG".into(), "warn".into());
    project.configure(&mut larder);
    let scratch = tempfile::tempdir().unwrap();
    if let Some(moto) = moto {
        for (k, v) in [
            ("LARDER_STORE_URL", format!("s3://{}/bench", moto.bucket)),
            ("LARDER_WORK_DIR", scratch.path().display().to_string()),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_REGION", s3::REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", s3::CREDENTIALS.0.to_string()),
            ("AWS_SECRET_ACCESS_KEY", s3::CREDENTIALS.1.to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ] {
            larder.env.insert(k.into(), v);
        }
    }
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let id = larder.submit(project.body()).await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let token = larder.npm_token(id).await;
    let download = format!("{}/api/v1/requests/{id}/download", larder.url);

    let (mut bundle, mut range, mut repo, mut floor) = (vec![], vec![], vec![], vec![]);
    let (mut bundle_bytes, mut range_bytes, mut repo_bytes) = (0, 0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        bundle_bytes = drain(larder.http.get(&download)).await;
        bundle.push(t.elapsed());

        let half = bundle_bytes / 2;
        let t = Instant::now();
        let ranged = larder
            .http
            .get(&download)
            .header("Range", format!("bytes={half}-"));
        range_bytes = drain(ranged).await;
        range.push(t.elapsed());
        assert_eq!(range_bytes, bundle_bytes - half);

        let t = Instant::now();
        repo_bytes = at_once(tarballs.iter().map(|path| {
            let url = format!("{}/repos/{id}/npm/{path}", larder.url);
            drain(larder.http.get(url).bearer_auth(&token))
        }))
        .await;
        repo.push(t.elapsed());

        let t = Instant::now();
        let floor_bytes = match moto {
            None => {
                let root = larder.data.path().join("deps/npm");
                let files: Vec<_> = tarballs.iter().map(|p| root.join(p)).collect();
                tokio::task::spawn_blocking(move || files.iter().map(|f| read_file(f)).sum())
                    .await
                    .unwrap()
            }
            Some(moto) => {
                at_once(tarballs.iter().map(|path| {
                    let url = format!("{}/{}/bench/deps/npm/{path}", moto.endpoint(), moto.bucket);
                    // moto tells callers apart by the access key the header names
                    let auth = format!(
                        "AWS4-HMAC-SHA256 Credential={}/20260101/{}/s3/aws4_request, SignedHeaders=host, Signature=0",
                        s3::CREDENTIALS.0,
                        s3::REGION
                    );
                    drain(larder.http.get(url).header("Authorization", auth))
                }))
                .await
            }
        };
        floor.push(t.elapsed());
        assert_eq!(
            floor_bytes, repo_bytes,
            "{store}: the floor read other bytes"
        );
    }
    Row {
        store,
        bundle_bytes,
        bundle: median(bundle),
        range_bytes,
        range: median(range),
        repo_bytes,
        repo: median(repo),
        floor: median(floor),
    }
}

/// Send, check the status, read the body to nowhere: its length.
async fn drain(request: reqwest::RequestBuilder) -> u64 {
    let mut resp = request.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut bytes = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
    }
    bytes
}

async fn at_once(reads: impl Iterator<Item = impl std::future::Future<Output = u64>>) -> u64 {
    futures_util::stream::iter(reads)
        .buffer_unordered(AT_ONCE)
        .fold(0, |sum, n| async move { sum + n })
        .await
}

fn read_file(path: &Path) -> u64 {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match file.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
