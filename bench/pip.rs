//! pip benchmark: cold and warm prefetch of a fully hashed requirements.txt of N pinned sdists
//! (default 250, `LARDER_BENCH_PIP_N`) through a real Larder, next to the real
//! `pip download --no-deps` of the same files from the same fixture index, and the peak RSS
//! (VmHWM) of the `larder serve` process. Run with `cargo bench --bench pip`.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use support::pip_fixtures;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

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
    let dist = work.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    let (files, requirements) = pip_fixtures::benchmark_set(&dist, n, wheels).unwrap();
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let root = work.path().join("upstream");
    pip_fixtures::write_simple_index(&root, &files).unwrap();
    // HTML pages only, so that the static server answers `text/html`, which pip accepts too.
    for f in &files {
        let json = root
            .join("simple")
            .join(pip_fixtures::normalize_name(&f.name))
            .join("index.json");
        let _ = std::fs::remove_file(json);
    }
    let upstream = StaticServer::start(&root).await;
    let index = format!("{}/simple/", upstream.url);

    let mut larder = Larder::new();
    larder.env.insert("LARDER_PYPI_INDEX".into(), index.clone());
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let pid = larder.pid(serve);

    let repo = GitRepo::new(work.path().join("repo"));
    repo.write(
        "pyproject.toml",
        "[project]\nname = \"bench\"\nversion = \"1.0\"\n",
    )
    .write("requirements.txt", &requirements);
    let commit = repo.commit("bench");
    let flags: Vec<&str> = if wheels {
        vec!["pip-allow-binary"]
    } else {
        vec![]
    };
    let body = json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["pip"], "flags": flags});

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
    match hwm {
        Some(kib) => println!(
            "\npeak RSS of `larder serve` (api + worker, VmHWM): {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("\npeak RSS: /proc not readable"),
    }
}
