//! Warm-request benchmark (not run by CI; issue 15): `cargo bench --bench warm`.
//!
//! For each case, a synthetic project on a fixture upstream on loopback (`tests/e2e/support/
//! projects.rs`, the same ones `bench/npm.rs`, `cargo.rs`, `pip.rs` and `gomod.rs` use), its own
//! fresh `larder serve` (api + worker in one process), fresh data directory and database:
//!
//! 1. cold: the request submitted with the store empty;
//! 2. `larder serve` is stopped and a fresh one started on the same data directory, database and
//!    queue, so that its peak RSS covers warm requests only;
//! 3. warm: the same repository and commit submitted again, every dependency stored,
//!    `LARDER_WARM_BENCH_WARM_RUNS` times (default 3), one after the other;
//! 4. the disk floor: every file under `<data>/deps/<pm>/` and `<data>/bundle-members/` read to
//!    nowhere.
//!
//! Cases: `npm-1000`, `npm-3000` (package-lock.json v3 of that many packages, each tarball
//! holding `LARDER_WARM_BENCH_NPM_KIB` KiB that do not compress, default 28: the mean of a real
//! 495-package lockfile's 14 MB), `cargo-250`
//! (Cargo.lock of 250 crates + every 10th in a second version: 275 `.crate` files), `pip-250`
//! (requirements.txt of 250 hashed sdists), `gomod-320` (go.mod/go.sum of 320 modules). Any
//! `<pm>-<n>` of those package managers works (`npm-50` for a quick run).
//!
//! Columns of the table:
//! - `cold s`: wall time from `POST /api/v1/requests` to the first `GET /api/v1/requests/{id}`
//!   (polled every 20 ms) that answers `complete`, store empty.
//! - `warm s`: the same for the same repository and commit again; the median of the warm runs
//!   (each run is listed below the table).
//! - `warm/cold`: the ratio of those two; goal ≤ 0.2.
//! - `floor s`: the disk floor: wall time of walking `<data>/deps/<pm>/` (the store's files of
//!   that package manager: what the request downloaded and verified — npm tarballs, cargo
//!   `.crate` files and `.index-line` records, pip sdists, gomod `.info`/`.mod`/`.zip` — whose
//!   bytes a warm bundle carries) and `<data>/bundle-members/` (what was made from them once
//!   and a warm bundle copies: cargo's vendored crates); the bundles and the sources are not
//!   read) and reading every regular file through a 256 KiB
//!   buffer to nowhere, like `find … -exec cat {} + > /dev/null`. One untimed read first, so
//!   that it is the page-cache floor as the warm request sees it; the median of 3 timed reads.
//! - `warm/floor`: `warm s` / `floor s`; goal ≤ 3.
//! - `fixed s`: the warm time (median of the runs) of a project of one package of the same
//!   package manager, measured the same way: what a request costs whatever its lockfile
//!   (submission, its transactions, the queue, the 20 ms polling).
//! - `(warm − fixed)/floor`: what grows with the lockfile, next to the disk floor.
//! - `bundle MB`: bytes (10⁶) of `GET /api/v1/requests/{id}/download` of the last warm request
//!   (checked against the cold request's bundle: same sha256 or not, below the table).
//! - `RSS cold MiB`: peak RSS (`VmHWM` of `/proc/<pid>/status`) of the first `larder serve`
//!   after the cold request completed (before its bundle is downloaded). Child processes
//!   (`larder git-fetch`) are not counted.
//! - `RSS warm MiB`: the same of the second `larder serve` after the warm runs (its idle peak,
//!   read before them, is listed below the table). Goal for npm 3,000: ≤ 100 MiB, cold and warm.
//!
//! A goal met is marked ✓, missed ✗. Times are of one machine as it is: on a shared machine they
//! are noisy.
//!
//! Knobs: `LARDER_WARM_BENCH_CASES=npm-1000,cargo-250` (default
//! `npm-1000,npm-3000,cargo-250,pip-250,gomod-320`), `LARDER_WARM_BENCH_WARM_RUNS` (default 3),
//! `LARDER_WARM_BENCH_NPM_KIB` (default 28), `LARDER_WARM_BENCH_CHILD_<VAR>=value` (set `<VAR>` for
//! `larder serve`), `LARDER_WARM_BENCH_PRINT_LOGS=1` (print the warm `larder serve`'s log: with
//! `LARDER_WARM_BENCH_CHILD_LARDER_LOG=info`, each step of a request with its time). Needs PostgreSQL and
//! RabbitMQ like the tests, and `git`.
//!
//! A quick check under the dev profile (`larder` unoptimized, so no numbers to keep):
//! `LARDER_WARM_BENCH_CASES=npm-50 cargo test --bench warm`.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::projects::{self, Project};
use support::*;

const DEFAULT_CASES: &str = "npm-1000,npm-3000,cargo-250,pip-250,gomod-320";
const WARM_COLD_GOAL: f64 = 0.2;
const WARM_FLOOR_GOAL: f64 = 3.0;
const RSS_GOAL_MIB: f64 = 100.0;
/// The case the RSS goal is set for.
const RSS_GOAL_CASE: &str = "npm-3000";
const POLL: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(3600);

struct Row {
    case: String,
    cold: Duration,
    /// every warm run, in order
    warm_runs: Vec<Duration>,
    floor: Floor,
    bundle_bytes: u64,
    same_bundle: bool,
    rss_cold_kib: u64,
    rss_warm_idle_kib: u64,
    rss_warm_kib: u64,
    upstream_cold: usize,
    upstream_warm: usize,
    fixture: Duration,
    /// The warm time of a project of one package of the same package manager: what a request
    /// costs whatever its lockfile (submission, transactions, queue, polling).
    fixed: Duration,
}

impl Row {
    fn warm(&self) -> Duration {
        median(&self.warm_runs)
    }
}

/// What the disk floor read.
struct Floor {
    took: Duration,
    files: usize,
    bytes: u64,
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
    let cases = std::env::var("LARDER_WARM_BENCH_CASES").unwrap_or_else(|_| DEFAULT_CASES.into());
    let runs: usize = std::env::var("LARDER_WARM_BENCH_WARM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let mut rows = Vec::new();
    for case in cases.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let work = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let project = project(case, work.path()).await;
        let fixture = t.elapsed();
        eprintln!("{case}: fixture built in {fixture:.1?}");
        let mut row = measure(case, &project, runs, fixture).await;
        let pm = case.split_once('-').map_or(case, |(pm, _)| pm);
        let one_dir = tempfile::tempdir().unwrap();
        let one = self::project(&format!("{pm}-1"), one_dir.path()).await;
        row.fixed = measure(&format!("{pm}-1"), &one, runs, Duration::ZERO)
            .await
            .warm();
        eprintln!(
            "{case}: cold {:.2?}, warm {:.2?} (runs {:.2?}), floor {:.3?}, RSS cold {} MiB, warm {} MiB",
            row.cold,
            row.warm(),
            row.warm_runs,
            row.floor.took,
            row.rss_cold_kib / 1024,
            row.rss_warm_kib / 1024
        );
        rows.push(row);
    }
    print_table(&rows, runs);
}

/// The project of a case: `<pm>-<n>`.
async fn project(case: &str, dir: &Path) -> Project {
    let (pm, n) = case
        .split_once('-')
        .and_then(|(pm, n)| Some((pm, n.parse::<usize>().ok()?)))
        .unwrap_or_else(|| panic!("case {case:?} is not <pm>-<n>"));
    match pm {
        "npm" => {
            let kib = std::env::var("LARDER_WARM_BENCH_NPM_KIB")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(28);
            projects::npm_with_payload(dir, n, kib << 10).await.project
        }
        "cargo" => projects::cargo(dir, n).await.project,
        "pip" => projects::pip(dir, n, false).await.project,
        "gomod" => projects::gomod(dir, n).await.project,
        other => panic!("no warm case for {other} (npm, cargo, pip, gomod)"),
    }
}

async fn measure(case: &str, project: &Project, runs: usize, fixture: Duration) -> Row {
    let mut larder = Larder::new();
    larder.env.insert("LARDER_LOG".into(), "warn".into());
    project.configure(&mut larder);
    for (k, v) in std::env::vars() {
        if let Some(var) = k.strip_prefix("LARDER_WARM_BENCH_CHILD_") {
            larder.env.insert(var.into(), v);
        }
    }
    let body = project.body();

    // cold
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    project.upstream.clear_requests();
    let (cold_id, cold) = timed(&larder, &body).await;
    let rss_cold_kib = vm_hwm_kib(larder.pid(serve));
    let upstream_cold = project.upstream.requests().len();
    let (_, cold_sha) = download(&larder, cold_id).await;
    larder.kill(serve);

    // warm, on a fresh process: its peak is of warm requests only
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let rss_warm_idle_kib = vm_hwm_kib(larder.pid(serve));
    project.upstream.clear_requests();
    let mut warm_runs = Vec::with_capacity(runs);
    let mut last = cold_id;
    for _ in 0..runs {
        let (id, took) = timed(&larder, &body).await;
        warm_runs.push(took);
        last = id;
    }
    let rss_warm_kib = vm_hwm_kib(larder.pid(serve));
    let upstream_warm = project.upstream.requests().len();
    let (bundle_bytes, warm_sha) = download(&larder, last).await;
    if std::env::var_os("LARDER_WARM_BENCH_PRINT_LOGS").is_some() {
        eprintln!("{}", larder.logs());
    }

    // the disk floor
    let dirs = [
        larder.data.path().join("deps").join(project.pm),
        larder.data.path().join("bundle-members"),
    ];
    let floor = tokio::task::spawn_blocking(move || floor(&dirs))
        .await
        .unwrap();

    Row {
        case: case.into(),
        cold,
        warm_runs,
        floor,
        bundle_bytes,
        same_bundle: cold_sha == warm_sha,
        rss_cold_kib,
        rss_warm_idle_kib,
        rss_warm_kib,
        upstream_cold,
        upstream_warm,
        fixture,
        fixed: Duration::ZERO,
    }
}

/// Submit, then poll until the request is final; it must be complete. (id, submit → complete)
async fn timed(larder: &Larder, body: &serde_json::Value) -> (i64, Duration) {
    let t = Instant::now();
    let id = larder.submit(body.clone()).await;
    if std::env::var_os("LARDER_WARM_BENCH_PRINT_LOGS").is_some() {
        eprintln!("request {id}: submitted in {:.1?}", t.elapsed());
    }
    loop {
        let polled = Instant::now();
        let (status, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
        if std::env::var_os("LARDER_WARM_BENCH_PRINT_LOGS").is_some() {
            eprintln!(
                "request {id}: {} at {:.1?} (GET {:.1?})",
                r["state"],
                t.elapsed(),
                polled.elapsed()
            );
        }
        assert_eq!(status, 200, "{r}");
        if r["state"] != "in_progress" {
            let took = t.elapsed();
            assert_eq!(r["state"], "complete", "{r}\nlogs:\n{}", larder.logs());
            return (id, took);
        }
        assert!(
            t.elapsed() < TIMEOUT,
            "request {id} took too long: {r}\nlogs:\n{}",
            larder.logs()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `GET …/download`, streamed: (bytes, sha256 hex).
async fn download(larder: &Larder, id: i64) -> (u64, String) {
    let mut resp = larder
        .http
        .get(format!("{}/api/v1/requests/{id}/download", larder.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "download of request {id}");
    let (mut bytes, mut hasher) = (0u64, Sha256::new());
    while let Some(chunk) = resp.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (bytes, hex::encode(hasher.finalize()))
}

/// Walk `dirs` (those that exist) and read every regular file below them through a 256 KiB
/// buffer, discarding the bytes: once to warm the page cache, then the median of three timed
/// reads.
fn floor(dirs: &[PathBuf]) -> Floor {
    assert!(dirs[0].is_dir(), "{} is not a directory", dirs[0].display());
    let mut buf = vec![0u8; 256 * 1024];
    let read_all = |buf: &mut [u8]| {
        dirs.iter()
            .filter(|d| d.is_dir())
            .map(|d| read_tree(d, buf))
            .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2))
    };
    let (files, bytes) = read_all(&mut buf);
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let again = read_all(&mut buf);
            let took = t.elapsed();
            assert_eq!(again, (files, bytes), "the store changed under the floor");
            took
        })
        .collect();
    times.sort();
    Floor {
        took: times[1],
        files,
        bytes,
    }
}

/// (files, bytes) read.
fn read_tree(dir: &Path, buf: &mut [u8]) -> (usize, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let mut f = std::fs::File::open(entry.path()).unwrap();
                loop {
                    let n = f.read(buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                }
                files += 1;
            }
        }
    }
    (files, bytes)
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_table(rows: &[Row], runs: usize) {
    println!();
    println!(
        "warm benchmark: one fresh `larder serve` per case, fixture upstreams on loopback; warm = median of {runs} runs"
    );
    println!(
        "goals (issue 15): warm/cold ≤ {WARM_COLD_GOAL}, warm ≤ {WARM_FLOOR_GOAL}× the disk floor, peak RSS ≤ {RSS_GOAL_MIB} MiB cold and warm for {RSS_GOAL_CASE}"
    );
    println!("| case | cold s | warm s | warm/cold | floor s | warm/floor | fixed s | (warm − fixed)/floor | bundle MB | RSS cold MiB | RSS warm MiB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let warm = r.warm().as_secs_f64();
        let cold = r.cold.as_secs_f64();
        let floor = r.floor.took.as_secs_f64();
        let warm_cold = warm / cold;
        let warm_floor = warm / floor;
        let fixed = r.fixed.as_secs_f64();
        let growing = (warm - fixed).max(0.0) / floor;
        let rss = |kib: u64| {
            if r.case == RSS_GOAL_CASE {
                format!("{:.1} {}", mib(kib), mark(mib(kib) <= RSS_GOAL_MIB))
            } else {
                format!("{:.1}", mib(kib))
            }
        };
        println!(
            "| {} | {cold:.2} | {warm:.2} | {warm_cold:.2} {} | {floor:.4} | {warm_floor:.1} {} | {fixed:.3} | {growing:.1} | {:.2} | {} | {} |",
            r.case,
            mark(warm_cold <= WARM_COLD_GOAL),
            mark(warm_floor <= WARM_FLOOR_GOAL),
            r.bundle_bytes as f64 / 1e6,
            rss(r.rss_cold_kib),
            rss(r.rss_warm_kib),
        );
    }
    println!();
    for r in rows {
        let runs: Vec<String> = r
            .warm_runs
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        println!(
            "- {}: warm runs {} s; floor read {} files, {:.1} MB; upstream requests cold {}, warm {}; warm bundle {} the cold one; warm `larder serve` idle peak {:.1} MiB; fixture built in {:.1?}",
            r.case,
            runs.join(", "),
            r.floor.files,
            r.floor.bytes as f64 / 1e6,
            r.upstream_cold,
            r.upstream_warm,
            if r.same_bundle { "is byte for byte" } else { "differs from" },
            mib(r.rss_warm_idle_kib),
            r.fixture,
        );
    }
}
