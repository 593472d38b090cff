//! Memory and temporary disk benchmark (not run by CI): `cargo bench --bench memory`.
//!
//! Each case runs one request through its own fresh `larder serve` (api + worker in one process)
//! against loopback fixture upstreams, then downloads the bundle, and reports the process's peak
//! RSS (`VmHWM`), the peak size of the store's temporary directory (`<data>/tmp`: clones, work
//! directories, archives being written; sampled every 100 ms) and the wall time of the request.
//! Git fetches run in child processes (`larder git-fetch`): the largest one's peak is printed
//! beside the service's.
//!
//! - `file-5mb`, `file-500mb`: a repository with one incompressible file, served by `git daemon`;
//!   the bundle's copy is checked byte for byte (SHA-256).
//! - `npm`: a package-lock.json v3 of 50,000 packages (tarballs from a fixture registry).
//! - `cargo`: a Cargo.lock of 50,000 registry crates (fixture sparse registry).
//! - `gomod`: a go.sum of 50,000 lines (25,000 modules, fixture GOPROXY).
//!
//! Knobs: `LARDER_MEMORY_BENCH_CASES=file-5mb,npm` (default all), `LARDER_MEMORY_BENCH_FILE_MB`
//! (the big file, default 500), `LARDER_MEMORY_BENCH_ENTRIES` (lockfile entries, default 50000),
//! `LARDER_MEMORY_BENCH_CHILD_<VAR>=value` (set `<VAR>` for `larder serve`, e.g. MALLOC_ARENA_MAX).
//! Needs PostgreSQL and RabbitMQ like the tests, and `git`.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use support::gomod_fixtures;

// glibc's malloc fragments this harness's heap while it builds 50,000 fixture crates (each
// build frees a large zlib state under a small survivor): gigabytes for nothing
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// The goal for `larder serve` on every case.
const GOAL_MIB: u64 = 150;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes allocated on disk below `dir` (hard links counted once per visit).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Samples, while a request runs, the peak size of `<data>/tmp` and the peak anonymous RSS of
/// the process (VmHWM also counts file pages mapped for reading, which the kernel can drop).
struct Sampler {
    temp_peak: Arc<AtomicU64>,
    anon_peak: Arc<AtomicU64>,
    /// milliseconds after the start when the anonymous RSS peaked
    anon_peak_at: Arc<AtomicU64>,
    /// At the highest total RSS sampled: the mapping holding most of it (`[heap]`, `[anon]`, a
    /// file), which says whether a peak is our heap or pages of a file mapped for reading.
    largest_mapping: Arc<std::sync::Mutex<String>>,
    /// The highest VmHWM of any child process (`larder git-fetch`), KiB.
    child_peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The processes `pid` started that are still running.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The mapping of `pid` with the largest resident size: (KiB, name).
fn largest_mapping(pid: u32) -> (u64, String) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut best, mut name) = ((0, String::new()), String::new());
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && first.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
            name = fields.nth(4).unwrap_or("[anon]").to_string();
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            if kib > best.0 {
                best = (kib, name.clone());
            }
        }
    }
    best
}

impl Sampler {
    fn start(tmp: PathBuf, pid: u32) -> Self {
        let temp_peak = Arc::new(AtomicU64::new(0));
        let anon_peak = Arc::new(AtomicU64::new(0));
        let anon_peak_at = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let largest: Arc<std::sync::Mutex<String>> = Arc::default();
        let child_peak = Arc::new(AtomicU64::new(0));
        let (t, a, at, s, l, c) = (
            temp_peak.clone(),
            anon_peak.clone(),
            anon_peak_at.clone(),
            stop.clone(),
            largest.clone(),
            child_peak.clone(),
        );
        let start = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut rss_peak = 0;
            let mut hwm_seen = 0;
            let mut tick = 0u64;
            while !s.load(Ordering::Relaxed) {
                // the total every 5 ms (a file mapped and read through is a short spike), the
                // rest every 100 ms (walking the temporary directory costs)
                let rss = status_kib(pid, "VmRSS:");
                let hwm = status_kib(pid, "VmHWM:");
                if hwm > hwm_seen + 8 * 1024 {
                    hwm_seen = hwm;
                    eprintln!(
                        "  VmHWM {} MiB at {} ms",
                        hwm / 1024,
                        start.elapsed().as_millis()
                    );
                }
                for child in children(pid) {
                    c.fetch_max(status_kib(child, "VmHWM:"), Ordering::Relaxed);
                }
                if rss > rss_peak + 1024 {
                    rss_peak = rss;
                    let (kib, name) = largest_mapping(pid);
                    *l.lock().unwrap() = format!(
                        "{} MiB of {} MiB in {name} ({} MiB anonymous, {} MiB of files), {} ms in",
                        kib / 1024,
                        rss / 1024,
                        status_kib(pid, "RssAnon:") / 1024,
                        status_kib(pid, "RssFile:") / 1024,
                        start.elapsed().as_millis()
                    );
                }
                tick += 1;
                if !tick.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let anon = status_kib(pid, "RssAnon:");
                if anon > a.fetch_max(anon, Ordering::Relaxed) {
                    at.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                t.fetch_max(disk_usage(&tmp), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            temp_peak,
            anon_peak,
            anon_peak_at,
            largest_mapping: largest,
            child_peak,
            stop,
            thread: Some(thread),
        }
    }

    /// (peak temp bytes, peak anonymous RSS KiB, when it peaked, peak RSS of a child KiB)
    fn finish(mut self) -> (u64, u64, Duration, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        eprintln!(
            "at the highest RSS: {}",
            self.largest_mapping.lock().unwrap()
        );
        (
            self.temp_peak.load(Ordering::Relaxed),
            self.anon_peak.load(Ordering::Relaxed),
            Duration::from_millis(self.anon_peak_at.load(Ordering::Relaxed)),
            self.child_peak.load(Ordering::Relaxed),
        )
    }
}

/// A fixture ready to submit: the request body and the upstream it needs.
struct Fixture {
    what: String,
    body: Value,
    env: Vec<(String, String)>,
    /// (path in the bundle, sha256) the bundle must hold byte for byte
    expect: Option<(String, String)>,
    built_in: Duration,
    // kept alive while the case runs
    _servers: Vec<Box<dyn std::any::Any>>,
}

struct Row {
    case: String,
    what: String,
    rss_mib: u64,
    /// The largest child process (a git fetch), sampled.
    child_mib: u64,
    anon_mib: u64,
    peak_step: String,
    temp_mib: u64,
    wall: Duration,
    fixture: Duration,
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
    let cases = std::env::var("LARDER_MEMORY_BENCH_CASES")
        .unwrap_or_else(|_| "file-5mb,file-500mb,npm,cargo,gomod".into());
    let file_mb = env_usize("LARDER_MEMORY_BENCH_FILE_MB", 500);
    let entries = env_usize("LARDER_MEMORY_BENCH_ENTRIES", 50_000);
    let mut rows = Vec::new();
    for case in cases.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let work = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let mut fixture = match case {
            "file-5mb" => big_file(work.path(), 5).await,
            "file-500mb" => big_file(work.path(), file_mb).await,
            "npm" => npm(work.path(), entries).await,
            "cargo" => cargo(work.path(), entries).await,
            "gomod" => gomod(work.path(), entries).await,
            other => panic!("unknown case {other}"),
        };
        fixture.built_in = t.elapsed();
        eprintln!("{case}: fixture built in {:.1?}", fixture.built_in);
        let row = measure(case, fixture).await;
        eprintln!(
            "{case}: VmHWM {} MiB, peak anonymous {} MiB during {:?}, peak temp {} MiB, {:.1?}",
            row.rss_mib, row.anon_mib, row.peak_step, row.temp_mib, row.wall
        );
        rows.push(row);
    }
    println!();
    println!("memory benchmark: one request per case through a fresh `larder serve`, loopback fixture upstreams");
    println!("| case | fixture | peak RSS of `larder serve` (VmHWM) | goal | its largest child (`git-fetch`, sampled VmHWM) | peak anonymous RSS (sampled), during | peak temp disk (`<data>/tmp`, sampled) | request wall time | fixture built in |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} MiB | {GOAL_MIB} MiB{} | {} MiB | {} MiB, {} | {} MiB | {:.1?} | {:.1?} |",
            r.case,
            r.what,
            r.rss_mib,
            if r.rss_mib <= GOAL_MIB { "" } else { " (over)" },
            r.child_mib,
            r.anon_mib,
            r.peak_step,
            r.temp_mib,
            r.wall,
            r.fixture
        );
    }
}

async fn measure(case: &str, fixture: Fixture) -> Row {
    let mut larder = Larder::new();
    larder.env.insert("LARDER_LOG".into(), "warn".into());
    for (k, v) in &fixture.env {
        larder.env.insert(k.clone(), v.clone());
    }
    for (k, v) in std::env::vars() {
        if let Some(var) = k.strip_prefix("LARDER_MEMORY_BENCH_CHILD_") {
            larder.env.insert(var.into(), v);
        }
    }
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let pid = larder.pid(serve);
    let sampler = Sampler::start(larder.data.path().join("tmp"), pid);
    let t = Instant::now();
    let id = larder.submit(fixture.body.clone()).await;
    // the request's steps as they were seen, to tell when the memory peaked
    let mut steps: Vec<(Duration, String)> = Vec::new();
    let done = loop {
        let (status, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(status, 200, "{r}");
        let reason = r["state_reason"].as_str().unwrap_or_default().to_string();
        if steps.last().is_none_or(|(_, last)| *last != reason) {
            steps.push((t.elapsed(), reason));
        }
        if r["state"] != "in_progress" {
            break r;
        }
        assert!(t.elapsed() < Duration::from_secs(3600), "{case}: too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = t.elapsed();
    for (at, step) in &steps {
        eprintln!("  {:>7} ms  {step}", at.as_millis());
    }
    let (temp_peak, anon_peak, anon_peak_at, child_peak) = sampler.finish();
    let peak_step = steps
        .iter()
        .rev()
        .find(|(at, _)| *at <= anon_peak_at)
        .map(|(_, step)| step.clone())
        .unwrap_or_default();
    assert_eq!(done["state"], "complete", "{case}: {done}");
    eprintln!(
        "{case}: VmHWM {} MiB when the request ended (its last GET included)",
        status_kib(pid, "VmHWM:") / 1024
    );

    // the api streams (and re-hashes) the bundle: part of the process's peak
    let bundle = larder.data.path().join("downloaded.tar.gz");
    download_to(&larder, id, &bundle).await;
    if let Some((path, sha)) = &fixture.expect {
        assert_eq!(
            &member_sha256(&bundle, path),
            sha,
            "{case}: {path} in the bundle is not the committed file"
        );
    }
    let _ = std::fs::remove_file(&bundle);
    let rss = status_kib(pid, "VmHWM:");
    Row {
        case: case.into(),
        what: fixture.what,
        rss_mib: rss / 1024,
        child_mib: child_peak / 1024,
        anon_mib: anon_peak / 1024,
        peak_step,
        temp_mib: temp_peak >> 20,
        wall,
        fixture: fixture.built_in,
    }
}

async fn download_to(larder: &Larder, id: i64, dest: &Path) {
    let resp = larder
        .http
        .get(format!("{}/api/v1/requests/{id}/download", larder.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest).unwrap());
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk.unwrap()).unwrap();
    }
    out.flush().unwrap();
}

/// SHA-256 of one member of a `.tar.gz`, streamed.
fn member_sha256(archive: &Path, member: &str) -> String {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
        file,
    )));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == member {
            let mut hasher = Sha256::new();
            std::io::copy(&mut entry, &mut hasher).unwrap();
            return hex::encode(hasher.finalize());
        }
    }
    panic!("{member} is not in the bundle");
}

async fn big_file(dir: &Path, mib: usize) -> Fixture {
    let base = dir.join("git");
    let repo = GitRepo::new(base.join("big"));
    repo.write("README", "one big file\n");
    let sha = write_random_file(&repo.dir.join("big.bin"), mib, mib as u64);
    let commit = repo.commit("big");
    let daemon = GitDaemon::start(&base).await;
    let url = format!("git://127.0.0.1:{}/big", daemon.port);
    Fixture {
        what: format!("one {mib} MiB file (git://)"),
        body: json!({"repo": url, "ref": commit, "pkg_managers": []}),
        env: vec![],
        expect: Some(("app/big.bin".into(), sha)),
        built_in: Duration::ZERO,
        _servers: vec![Box::new(daemon)],
    }
}

async fn npm(dir: &Path, n: usize) -> Fixture {
    let p = projects::npm(dir, n).await.project;
    let size = std::fs::metadata(p.repo.dir.join("package-lock.json"))
        .unwrap()
        .len();
    Fixture {
        what: format!("package-lock.json v3, {n} packages ({} MiB)", size >> 20),
        body: p.body(),
        env: p.env,
        expect: None,
        built_in: Duration::ZERO,
        _servers: vec![Box::new(p.upstream)],
    }
}

async fn cargo(dir: &Path, n: usize) -> Fixture {
    // synthetic_graph(k) has k + k/10 crates
    let projects::Cargo {
        project: p, built, ..
    } = projects::cargo(dir, (n * 10).div_ceil(11)).await;
    let size = std::fs::metadata(p.repo.dir.join("Cargo.lock"))
        .unwrap()
        .len();
    Fixture {
        what: format!("Cargo.lock, {} crates ({} MiB)", built.len(), size >> 20),
        body: p.body(),
        env: p.env,
        expect: None,
        built_in: Duration::ZERO,
        _servers: vec![Box::new(p.upstream)],
    }
}

async fn gomod(dir: &Path, lines: usize) -> Fixture {
    use gomod_fixtures::*;
    let n = lines / 2;
    let proxy = dir.join("proxy");
    let mut built = Vec::with_capacity(n);
    for i in 0..n {
        let m = FixtureModule::new(&format!("example.com/m{i}"), "v1.0.0")
            .gomod("1.19", &[])
            .file(
                &format!("m{i}.go"),
                format!("package m{i}\n\nfunc F() int {{ return {i} }}\n"),
            );
        built.push(build_module(&m).unwrap());
    }
    write_proxy_tree(&proxy, &built).unwrap();
    let upstream = StaticServer::start(&proxy).await;
    let mut gomod = "module example.com/app\n\ngo 1.19\n\nrequire (\n".to_string();
    for m in &built {
        gomod.push_str(&format!("\t{} {}\n", m.path, m.version));
    }
    gomod.push_str(")\n");
    let refs: Vec<&BuiltModule> = built.iter().collect();
    let gosum = gosum_text(&refs, &[]);
    let repo = GitRepo::new(dir.join("repo"));
    repo.write("go.mod", &gomod)
        .write("go.sum", &gosum)
        .write("main.go", &main_go(&[], "\"app\""));
    let commit = repo.commit("gomod");
    Fixture {
        what: format!(
            "go.sum, {} lines ({n} modules, {} MiB)",
            gosum.lines().count(),
            gosum.len() >> 20
        ),
        body: json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["gomod"]}),
        env: vec![("LARDER_GOPROXY".into(), upstream.url.clone())],
        expect: None,
        built_in: Duration::ZERO,
        _servers: vec![Box::new(upstream)],
    }
}
