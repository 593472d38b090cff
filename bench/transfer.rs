//! Export and import throughput next to `tar` of the same files (issue 17; not run by CI):
//! `cargo bench --bench transfer`.
//!
//! A directory store of `LARDER_TRANSFER_BENCH_MB` MB (default 1024) of incompressible files
//! under `deps/` and `sources/`, sizes spread from 4 KiB to 8 MiB (most small, most bytes in
//! the large ones, as a dependency store is), written once. Then, each timed from a cold start
//! of the operation (the files are in the page cache: what is measured is Larder's work, not
//! the disk's):
//!
//! - `export`: `common::transfer::export` of the whole store into 1 GiB volumes (every file
//!   read and hashed, the volumes written and synced, the manifest written);
//! - `import`: `common::transfer::import` of those volumes into an empty directory store (every
//!   object copied aside, hashed with SHA-1/256/512, checked against the manifest, its digests
//!   recorded, synced, renamed into place);
//! - `import again`: the same volumes into the now full store (every object found present by
//!   its record, no volume byte read but the tar headers);
//! - next to `tar -cf` of `sources/` and `deps/` into one file (then `sync`) and `tar -xf` of it
//!   into an empty directory (then `sync`).
//!
//! Needs GNU tar. No database: the CLI's rows in `transfers` are two statements per run.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::store::{SharedStore, Store};
use common::transfer::{self, Progress};
use rand::{Rng, RngCore, SeedableRng};

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let total_mb: u64 = std::env::var("LARDER_TRANSFER_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let work = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or("/tmp".into())).unwrap();
    let a = work.path().join("a");
    let (files, bytes) = fill(&a, total_mb * 1_000_000);
    eprintln!("store: {files} files, {:.1} MB", bytes as f64 / 1e6);
    // nothing of the fill left to write back during a timed run
    run_ok(&mut Command::new("sync"));

    let from = SharedStore::Directory(Store::new(&a));
    let out = work.path().join("export");
    let t = Instant::now();
    let range = transfer::ExportRange {
        until: chrono::Utc::now(),
        ..transfer::ExportRange::default()
    };
    let exported = transfer::export(
        &from,
        &out,
        "00000000000000be",
        &range,
        1 << 30,
        None,
        &Progress::hidden(),
    )
    .await
    .unwrap();
    let export_took = t.elapsed();
    assert_eq!(exported.manifest.objects.len() as u64, files);

    run_ok(&mut Command::new("sync"));
    let b = work.path().join("b");
    let to = SharedStore::Directory(Store::new(&b));
    let t = Instant::now();
    let (_, imported) = transfer::import(&to, &out, &b.join("tmp"), &Progress::hidden())
        .await
        .unwrap();
    let import_took = t.elapsed();
    assert_eq!(imported.written, files);
    let t = Instant::now();
    let (_, again) = transfer::import(&to, &out, &b.join("tmp"), &Progress::hidden())
        .await
        .unwrap();
    let again_took = t.elapsed();
    assert_eq!(again.present, files);

    run_ok(&mut Command::new("sync"));
    let tar_file = work.path().join("store.tar");
    let t = Instant::now();
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar_file)
            .arg("-C")
            .arg(&a)
            .args(["sources", "deps"]),
    );
    run_ok(&mut Command::new("sync"));
    let tar_c = t.elapsed();
    let c = work.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    let t = Instant::now();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar_file)
            .arg("-C")
            .arg(&c),
    );
    run_ok(&mut Command::new("sync"));
    let tar_x = t.elapsed();

    let rate = |took: Duration| bytes as f64 / 1e6 / took.as_secs_f64();
    println!(
        "\n{files} files, {:.1} MB (MB = 10^6 bytes)\n\n\
         | operation | Larder s | Larder MB/s | tar s | tar MB/s | Larder/tar time |\n\
         | --- | --- | --- | --- | --- | --- |",
        bytes as f64 / 1e6
    );
    for (what, took, tar) in [
        ("export (tar -cf)", export_took, tar_c),
        ("import (tar -xf)", import_took, tar_x),
        ("import again (tar -xf)", again_took, tar_x),
    ] {
        println!(
            "| {what} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} |",
            took.as_secs_f64(),
            rate(took),
            tar.as_secs_f64(),
            rate(tar),
            took.as_secs_f64() / tar.as_secs_f64()
        );
    }
}

/// Files of incompressible bytes under `root`'s `deps/` and `sources/` until `target` bytes:
/// sizes log-uniform from 4 KiB to 8 MiB. (files, bytes)
fn fill(root: &Path, target: u64) -> (u64, u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut buf = vec![0u8; 8 << 20];
    while bytes < target {
        let size = (2f64.powf(rng.random_range(12.0..23.0)) as u64)
            .min(target - bytes)
            .max(1);
        let dir = if files % 20 == 0 {
            "sources/example.com"
        } else {
            "deps/npm"
        };
        let path = root.join(format!("{dir}/p{}/f{files}.tgz", files % 97));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        rng.fill_bytes(&mut buf[..size as usize]);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&buf[..size as usize])
            .unwrap();
        files += 1;
        bytes += size;
    }
    (files, bytes)
}

fn run_ok(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}: {status}");
}
