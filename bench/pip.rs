//! pip benchmark: cold and warm prefetch of a fully hashed requirements.txt of N pinned sdists
//! (default 250, `LARDER_BENCH_PIP_N`) through a real Larder, next to the real
//! `pip download --no-deps` of the same files from the same fixture index, and the peak RSS
//! (VmHWM) of the `larder serve` process. Run with `cargo bench --bench pip`.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::*;

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("LARDER_BENCH_PIP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    scenario(n, false).await;
    scenario(n, true).await;
}

/// `wheels: false`: sdists only; Larder and `pip download --no-deps` fetch the same 250 sdists
/// (pip also prepares each sdist's metadata, running its build backend). `wheels: true`: each
/// pin also has a wheel; Larder runs with `pip-allow-binary` (sdist + wheel of each pin), pip
/// with `--only-binary :all:` (the wheels: a pure download).
async fn scenario(n: usize, wheels: bool) {
    let work = tempfile::tempdir().unwrap();
    let projects::Pip {
        project,
        files,
        requirements,
        index,
    } = projects::pip(work.path(), n, wheels).await;
    let upstream = &project.upstream;
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();

    let mut larder = Larder::new();
    project.configure(&mut larder);
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let pid = larder.pid(serve);
    let body = project.body();

    let mut rows = Vec::new();
    for label in ["cold", "warm"] {
        upstream.clear_requests();
        let start = Instant::now();
        let id = larder.submit(body.clone()).await;
        let done = larder
            .wait_until(id, Duration::from_secs(1800), |r| {
                r["state"] != "in_progress"
            })
            .await;
        let took = start.elapsed();
        assert_eq!(done["state"], "complete", "{done}");
        rows.push((
            format!("larder prefetch ({label})"),
            took,
            upstream.requests().len(),
        ));
    }
    let hwm = vm_hwm_kib(pid);

    // The real client on the same index and files.
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let req_file = work.path().join("requirements.txt");
    std::fs::write(&req_file, &requirements).unwrap();
    let dest = work.path().join("pip-download");
    upstream.clear_requests();
    let start = Instant::now();
    let mut pip = clean_command("python3", &home);
    pip.args([
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-deps",
        "--index-url",
        &index,
    ]);
    if wheels {
        pip.args(["--only-binary", ":all:"]);
    }
    let out = pip
        .arg("-d")
        .arg(&dest)
        .arg("-r")
        .arg(&req_file)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "pip download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fetched = std::fs::read_dir(&dest).unwrap().count();
    let what = if wheels {
        "pip download --no-deps --only-binary :all:"
    } else {
        "pip download --no-deps"
    };
    rows.push((
        format!("{what} ({fetched} files)"),
        took,
        upstream.requests().len(),
    ));

    let kind = if wheels {
        "an sdist and a wheel each, larder with pip-allow-binary"
    } else {
        "sdists only"
    };
    println!(
        "\npip benchmark: {n} hashed requirements, {} files ({kind}), {:.1} MiB",
        files.len(),
        total_bytes as f64 / 1048576.0
    );
    println!("| run | time | upstream requests |");
    println!("| --- | ---: | ---: |");
    for (label, took, requests) in &rows {
        println!("| {label} | {} | {requests} |", secs(*took));
    }
    println!(
        "\npeak RSS of `larder serve` (api + worker, VmHWM): {:.1} MiB",
        hwm as f64 / 1024.0
    );
}
