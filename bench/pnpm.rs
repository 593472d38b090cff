//! pnpm benchmark (not run by CI): `cargo bench --bench pnpm` (`LARDER_PNPM_BENCH_N` packages,
//! default 1000). A synthetic pnpm-lock.yaml through a real Larder (cold, then warm: submit →
//! complete), next to the real `pnpm install --frozen-lockfile --ignore-scripts` installing the
//! same tree from the same fixture registry into an empty store, and through the per-request
//! registry with the hand-back.

#[path = "../tests/e2e/support/mod.rs"]
mod support;

use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::clients::pnpm;
use support::npm_fixtures::{self, RootProject, TreeEntry};
use support::*;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

fn quoted(s: &str) -> String {
    if s.starts_with('@') {
        format!("'{s}'")
    } else {
        s.to_string()
    }
}

/// The pnpm-lock.yaml pnpm 9 writes for a flat synthetic tree (every range resolves to the
/// tree's one version of that name).
fn pnpm_lockfile(root: &RootProject, tree: &[TreeEntry]) -> String {
    let version_of = |name: &str| {
        tree.iter()
            .find(|t| t.pkg.name == name)
            .map(|t| t.pkg.version.clone())
            .unwrap_or_default()
    };
    let mut s = String::from("lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n");
    for (name, spec) in &root.dependencies {
        let _ = write!(
            s,
            "      {}:\n        specifier: {}\n        version: {}\n",
            quoted(name),
            quoted(spec),
            version_of(name)
        );
    }
    let mut sorted: Vec<&TreeEntry> = tree.iter().collect();
    sorted.sort_by_key(|t| format!("{}@{}", t.pkg.name, t.pkg.version));
    s.push_str("\npackages:\n\n");
    for t in &sorted {
        let key = quoted(&format!("{}@{}", t.pkg.name, t.pkg.version));
        let _ = write!(
            s,
            "  {key}:\n    resolution: {{integrity: {}}}\n\n",
            t.pkg.integrity
        );
    }
    s.push_str("snapshots:\n\n");
    for t in &sorted {
        let key = quoted(&format!("{}@{}", t.pkg.name, t.pkg.version));
        let deps = t
            .pkg
            .manifest
            .get("dependencies")
            .and_then(|d| d.as_object())
            .cloned()
            .unwrap_or_default();
        if deps.is_empty() {
            let _ = write!(s, "  {key}: {{}}\n\n");
        } else {
            let _ = writeln!(s, "  {key}:\n    dependencies:");
            for name in deps.keys() {
                let _ = writeln!(s, "      {}: {}", quoted(name), version_of(name));
            }
            s.push('\n');
        }
    }
    s
}

fn install(dir: &Path, home: &Path) -> Duration {
    let t = Instant::now();
    let (ok, out) = pnpm(
        dir,
        home,
        &["install", "--frozen-lockfile", "--ignore-scripts"],
    );
    let took = t.elapsed();
    assert!(ok, "pnpm install failed: {out}");
    took
}

async fn run() {
    let n: usize = std::env::var("LARDER_PNPM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let (root, tree) = npm_fixtures::synthetic(n);
    let pkgs: Vec<_> = tree.iter().map(|e| e.pkg.clone()).collect();
    npm_fixtures::write_registry(&up_dir, &upstream.url, &pkgs).unwrap();
    let lock = pnpm_lockfile(&root, &tree);
    let package_json = serde_json::to_string_pretty(&root.package_json()).unwrap();
    let repo = GitRepo::new(tmp.path().join("repo"));
    repo.write("package.json", &package_json)
        .write("pnpm-lock.yaml", &lock);
    let commit = repo.commit("bench");

    let larder = npm_fixtures::larder_for(&upstream).await;
    let prefetch = |label: &'static str| {
        let larder = &larder;
        let (repo_url, commit) = (repo.url(), commit.clone());
        async move {
            let t = Instant::now();
            let id = larder
                .submit(json!({"repo": repo_url, "ref": commit, "pkg_managers": ["pnpm"]}))
                .await;
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

    // the real client, same fixture registry, empty store
    let direct = tmp.path().join("direct");
    std::fs::create_dir_all(&direct).unwrap();
    std::fs::write(direct.join("package.json"), &package_json).unwrap();
    std::fs::write(direct.join("pnpm-lock.yaml"), &lock).unwrap();
    std::fs::write(
        direct.join(".npmrc"),
        format!("registry={}/\n", upstream.url),
    )
    .unwrap();
    let home = tmp.path().join("home-direct");
    let pnpm_direct = tokio::task::spawn_blocking(move || install(&direct, &home))
        .await
        .unwrap();

    // through the per-request registry, with only the hand-back over the commit
    let via = tmp.path().join("via-larder");
    std::fs::create_dir_all(&via).unwrap();
    std::fs::write(via.join("package.json"), &package_json).unwrap();
    std::fs::write(via.join("pnpm-lock.yaml"), &lock).unwrap();
    for (path, content) in larder.config_files(id).await {
        std::fs::write(via.join(path.strip_prefix("app/").unwrap()), content).unwrap();
    }
    let home = tmp.path().join("home-via");
    let pnpm_via = tokio::task::spawn_blocking(move || install(&via, &home))
        .await
        .unwrap();

    println!("pnpm benchmark: {n} packages (lockfile 9.0, fixture registry on 127.0.0.1)");
    println!("| what | time | upstream requests |");
    println!("| --- | --- | --- |");
    println!("| Larder prefetch, cold (submit → complete) | {cold:.2?} | {cold_requests} |");
    println!("| Larder prefetch, warm (submit → complete) | {warm:.2?} | {warm_requests} |");
    println!(
        "| `pnpm install --frozen-lockfile`, fixture registry, empty store | {pnpm_direct:.2?} | |"
    );
    println!(
        "| `pnpm install --frozen-lockfile`, per-request registry, empty store | {pnpm_via:.2?} | |"
    );
}
