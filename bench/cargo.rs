//! `cargo bench --bench cargo`: prefetch of a real-world-sized lockfile (≥ 250 crates, default
//! 250 + every 10th in a second version) through a real Larder, cold (empty store) and warm (same
//! request again), next to the real `cargo fetch` of the same lockfile from the same fixture
//! sparse registry, plus the worker's peak RSS. `LARDER_BENCH_CRATES=<n>` changes the size.
//! Needs PostgreSQL and RabbitMQ like the tests.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

fn cargo(home: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut c = clean_command("cargo", home);
    c.env("CARGO_HOME", home.join(".cargo"))
        .env("CARGO_TARGET_DIR", home.join("target"))
        .env("CARGO_NET_RETRY", "0");
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".rustup")));
    if let Some(r) = rustup_home {
        c.env("RUSTUP_HOME", r);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    std::fs::create_dir_all(home.join(".cargo")).unwrap();
    let out = c.args(args).current_dir(dir).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n: usize = std::env::var("LARDER_BENCH_CRATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    let work = tempfile::tempdir().unwrap();
    let t = work.path();

    // fixture registry + workspace (lockfile with real checksums)
    let projects::Cargo {
        project,
        built,
        index,
    } = projects::cargo(t, n).await;
    let (up, repo_dir) = (&project.upstream, project.repo.dir.clone());
    let total_bytes: usize = built.iter().map(|c| c.bytes.len()).sum();
    println!(
        "fixture: {} crates in Cargo.lock ({} KiB of .crate files), registry {}",
        built.len(),
        total_bytes / 1024,
        up.url
    );

    // Larder
    let mut larder = Larder::new();
    project.configure(&mut larder);
    let serve = larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let pid = larder.pid(serve);
    let submit = project.body();

    up.clear_requests();
    let start = Instant::now();
    let id = larder.submit(submit.clone()).await;
    let r = larder.wait(id).await;
    let cold = start.elapsed();
    assert_eq!(r["state"], "complete", "{r}");
    let cold_upstream = up.requests().len();

    up.clear_requests();
    let start = Instant::now();
    let id2 = larder.submit(submit).await;
    let r = larder.wait(id2).await;
    let warm = start.elapsed();
    assert_eq!(r["state"], "complete", "{r}");
    let warm_upstream = up.requests().len();
    let hwm = vm_hwm_kib(pid);
    if let Some(p) = std::env::var_os("LARDER_BENCH_LOGS") {
        std::fs::write(p, larder.logs()).unwrap();
    }

    // the real client on the same lockfile and the same fixture registry
    let home = t.join("home-cargo");
    std::fs::create_dir_all(home.join(".cargo")).unwrap();
    std::fs::write(
        home.join(".cargo/config.toml"),
        format!("[source.crates-io]\nreplace-with = \"up\"\n[source.up]\nregistry = \"{index}\"\n"),
    )
    .unwrap();
    up.clear_requests();
    let start = Instant::now();
    let (ok, out) = cargo(&home, &repo_dir, &["fetch", "--locked"], &[]);
    let client_cold = start.elapsed();
    assert!(ok, "cargo fetch: {out}");
    let client_upstream = up.requests().len();
    up.clear_requests();
    let start = Instant::now();
    let (ok, out) = cargo(&home, &repo_dir, &["fetch", "--locked"], &[]);
    let client_warm = start.elapsed();
    let client_warm_upstream = up.requests().len();
    assert!(ok, "cargo fetch (warm): {out}");

    // the real client from Larder's per-request registry
    let (_, files) = larder
        .get(&format!("/api/v1/requests/{id}/configuration-files"))
        .await;
    let (_, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    let token = env["CARGO_REGISTRIES_LARDER_TOKEN"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    for f in files.as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        if path.ends_with("config.registry.toml") {
            let content = base64::engine::general_purpose::STANDARD
                .decode(f["content"].as_str().unwrap())
                .unwrap();
            let dest = repo_dir.join(path.trim_start_matches("app/"));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(dest, content).unwrap();
        }
    }
    let home_reg = t.join("home-registry");
    up.clear_requests();
    let start = Instant::now();
    let (ok, out) = cargo(
        &home_reg,
        &repo_dir,
        &[
            "--config",
            ".cargo/config.registry.toml",
            "fetch",
            "--locked",
        ],
        &[("CARGO_REGISTRIES_LARDER_TOKEN", &token)],
    );
    let from_larder = start.elapsed();
    let from_larder_upstream = up.requests().len();
    assert!(ok, "cargo fetch from Larder: {out}");

    println!();
    println!(
        "| what ({} crates)                                   | time     | upstream requests |",
        built.len()
    );
    println!(
        "|----------------------------------------------------|----------|-------------------|"
    );
    println!(
        "| Larder prefetch, cold (empty store), submit→complete | {:>8} | {:>17} |",
        secs(cold),
        cold_upstream
    );
    println!(
        "| Larder prefetch, warm (same lockfile again)        | {:>8} | {:>17} |",
        secs(warm),
        warm_upstream
    );
    println!(
        "| `cargo fetch --locked`, fresh CARGO_HOME           | {:>8} | {:>17} |",
        secs(client_cold),
        client_upstream
    );
    println!(
        "| `cargo fetch --locked`, again (warm CARGO_HOME)    | {:>8} | {:>17} |",
        secs(client_warm),
        client_warm_upstream
    );
    println!(
        "| `cargo fetch --locked` from Larder's registry      | {:>8} | {:>17} |",
        secs(from_larder),
        from_larder_upstream
    );
    println!(
        "\n`larder serve` (api + worker) peak RSS (VmHWM): {:.1} MiB",
        hwm as f64 / 1024.0
    );
}
