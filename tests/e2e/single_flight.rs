//! Single flight: requests that need the same missing artifact at the same time download it
//! once, whether one worker runs them or two worker processes on one store.

use crate::support::npm_fixtures::{self, FixturePackage, RootProject, TreeEntry};
use crate::support::*;
use serde_json::json;
use std::time::Duration;

const PACKAGES: usize = 16;

/// Two npm projects: the first locks packages 0..12, the second 4..16 (eight shared). The
/// upstream holds every download until both requests are fetching, so both want the shared
/// tarballs while neither has them.
struct Fixture {
    _tmp: tempfile::TempDir,
    upstream: StaticServer,
    projects: Vec<(GitRepo, String)>,
    tarballs: Vec<String>,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let packages: Vec<_> = (0..PACKAGES)
        .map(|i| npm_fixtures::build(&FixturePackage::new(&format!("sf-{i}"), "1.0.0")))
        .collect();
    npm_fixtures::write_registry(&up_dir, &upstream.url, &packages).unwrap();
    let mut projects = Vec::new();
    for (name, range) in [("app-a", 0..12), ("app-b", 4..PACKAGES)] {
        let mut root = RootProject {
            name: name.into(),
            version: "1.0.0".into(),
            ..Default::default()
        };
        let tree: Vec<_> = packages[range]
            .iter()
            .map(|p| {
                root.dependencies.insert(p.name.clone(), p.version.clone());
                TreeEntry {
                    location: format!("node_modules/{}", p.name),
                    pkg: p.clone(),
                    dev: false,
                    optional: false,
                }
            })
            .collect();
        let (repo, commit) =
            npm_fixtures::committed_project(tmp.path().join(name), &root, &tree, name);
        projects.push((repo, commit));
    }
    let tarballs = packages
        .iter()
        .map(|p| format!("/{}", p.tarball_path()))
        .collect();
    Fixture {
        _tmp: tmp,
        upstream,
        projects,
        tarballs,
    }
}

/// Submit both projects at once with the upstream held, let it answer once both requests are
/// fetching, and check that each tarball was requested exactly once and both completed.
async fn both_complete_with_one_download_each(larder: &Larder, fx: &Fixture) {
    fx.upstream.hold();
    let mut ids = Vec::new();
    for (repo, commit) in &fx.projects {
        ids.push(
            larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"]}))
                .await,
        );
    }
    for id in &ids {
        larder
            .wait_until(*id, Duration::from_secs(60), |r| {
                r["state_reason"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Fetching the npm dependencies"))
            })
            .await;
    }
    // both are past their plans and at their downloads (or waiting on the other's)
    tokio::time::sleep(Duration::from_millis(700)).await;
    fx.upstream.release();
    for id in &ids {
        let done = larder.wait(*id).await;
        assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    }
    let hits = fx.upstream.hits();
    let tarball_hits: Vec<_> = hits.iter().filter(|(p, _)| p.ends_with(".tgz")).collect();
    assert_eq!(tarball_hits.len(), fx.tarballs.len(), "{hits:?}");
    for tarball in &fx.tarballs {
        assert_eq!(hits.get(tarball), Some(&1), "{tarball}: {hits:?}");
    }
    // every lease was released
    let leases = lease_files(&larder.data.path().join("download-leases"));
    assert!(leases.is_empty(), "{leases:?}");
}

#[tokio::test]
async fn concurrent_requests_in_one_worker_download_a_shared_tarball_once() {
    let fx = fixture().await;
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_NPM_REGISTRY".into(), fx.upstream.url.clone());
    // fewer slots than tarballs: each request holds leases the other needs
    larder.spawn(
        "serve",
        &[
            ("LARDER_WORKER_CONCURRENCY", "2"),
            ("LARDER_DOWNLOAD_CONCURRENCY", "4"),
        ],
    );
    larder.wait_healthy().await;
    both_complete_with_one_download_each(&larder, &fx).await;
}

#[tokio::test]
async fn concurrent_requests_in_two_worker_processes_download_a_shared_tarball_once() {
    let fx = fixture().await;
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_NPM_REGISTRY".into(), fx.upstream.url.clone());
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let one_each = [
        ("LARDER_WORKER_CONCURRENCY", "1"),
        ("LARDER_DOWNLOAD_CONCURRENCY", "4"),
    ];
    let workers = [
        larder.spawn("worker", &one_each),
        larder.spawn("worker", &one_each),
    ];
    // both consume the queue before anything is published to it
    tokio::time::sleep(Duration::from_secs(2)).await;
    both_complete_with_one_download_each(&larder, &fx).await;
    // one request each: neither worker ran both
    let pids: Vec<_> = workers.iter().map(|w| larder.pid(*w)).collect();
    let logs = larder.logs();
    for pid in pids {
        assert!(
            logs.lines()
                .any(|l| l.contains("request claimed") && l.ends_with(&format!("-{pid}"))),
            "worker {pid} claimed no request:\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_killed_workers_download_leases_are_taken_over_by_a_live_worker() {
    let fx = fixture().await;
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_NPM_REGISTRY".into(), fx.upstream.url.clone());
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let one_each = [
        ("LARDER_WORKER_CONCURRENCY", "1"),
        ("LARDER_DOWNLOAD_CONCURRENCY", "4"),
    ];
    // both running before the request: the survivor's start-up sweep has nothing to remove,
    // so it meets the dead worker's leases while fetching
    let workers = [
        larder.spawn("worker", &one_each),
        larder.spawn("worker", &one_each),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;
    fx.upstream.hold();
    let (repo, commit) = &fx.projects[0];
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"]}))
        .await;
    // its first four downloads are in flight, each under its lease
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fx.upstream.requests().len() < 4 {
        assert!(std::time::Instant::now() < deadline, "{}", larder.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pids = workers.map(|w| larder.pid(w));
    // the api logs each claim with the worker's name, `<host>-<pid>`
    let claimed = |logs: &str, pid: u32| {
        logs.lines()
            .any(|l| l.contains("request claimed") && l.ends_with(&format!("-{pid}")))
    };
    let logs = larder.logs();
    let (first, survivor) = if claimed(&logs, pids[0]) {
        (0, 1)
    } else {
        (1, 0)
    };
    assert!(claimed(&logs, pids[first]), "{logs}");
    larder.kill(workers[first]);
    let leases = larder.data.path().join("download-leases");
    assert_eq!(
        lease_files(&leases).len(),
        4,
        "the dead worker's leases stay"
    );
    fx.upstream.release();

    // the survivor does not wait on them (that would take LARDER_DOWNLOAD_TIMEOUT, 15 min)
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    assert!(claimed(&larder.logs(), pids[survivor]));
    let hits = fx.upstream.hits();
    for tarball in &fx.tarballs[..12] {
        assert!(
            matches!(hits.get(tarball), Some(1 | 2)),
            "{tarball}: {hits:?}"
        );
    }
    assert!(
        lease_files(&leases).is_empty(),
        "{:?}",
        lease_files(&leases)
    );
}

/// The leases and published files in a store's `download-leases/`.
fn lease_files(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "owners" && n != "takeover.lock")
                .collect()
        })
        .unwrap_or_default()
}
