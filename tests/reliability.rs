//! Nothing is lost when a worker dies or the api loses the broker. Connections are broken
//! through a TCP proxy the test controls, so the shared RabbitMQ keeps running.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn a_killed_workers_request_is_finished_by_another() {
    let base = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(base.path().join("project"));
    repo.write("README", "survives a crash\n");
    let commit = repo.commit("c");
    let daemon = GitDaemon::start(base.path()).await;
    let proxy = TcpProxy::start(&format!("127.0.0.1:{}", daemon.port)).await;

    let mut larder = Larder::new();
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let first = larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);

    // The first worker gets stuck fetching the repository, then dies.
    proxy.set(ProxyMode::Paused);
    let id = larder.submit(json!({"repo": format!("git://127.0.0.1:{}/project", proxy.port), "ref": commit, "pkg_managers": []})).await;
    larder
        .wait_until(id, Duration::from_secs(60), |r| {
            r["state_reason"] == "Fetching the application source"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    larder.kill(first);
    let (_, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["state"], "in_progress");

    // RabbitMQ gives the unacknowledged job to the next worker.
    proxy.set(ProxyMode::Open);
    larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
    let bundle = untar(&larder.download(id).await.0);
    assert_eq!(
        bundle["app/README"].as_deref(),
        Some(&b"survives a crash\n"[..])
    );
}

#[tokio::test]
async fn a_request_submitted_while_the_broker_is_unreachable_completes_later() {
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    let mut larder = Larder::new();
    larder.spawn(
        "api",
        &[(
            "LARDER_AMQP_URL",
            &format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port),
        )],
    );
    larder.wait_healthy().await;
    larder.spawn("worker", &[]);
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");

    // Warm path: the api is connected.
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");

    // Cut the api's broker connection: it still answers and records the request.
    proxy.set(ProxyMode::Cut);
    let started = std::time::Instant::now();
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "submission must not hang on the broker"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["state"], "in_progress");
    assert_eq!(
        r["state_reason"], "The request was initiated",
        "no worker saw it yet"
    );
    let (_, status) = larder.get("/api/v1/status").await;
    assert_eq!(status["services"][1]["ok"], false, "{status}");

    // Once the broker is reachable again, the dispatcher sends the job.
    proxy.set(ProxyMode::Open);
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
}

#[tokio::test]
async fn workers_share_one_queue() {
    let mut larder = Larder::new();
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
                .await,
        );
    }
    for id in ids {
        let done = larder.wait(id).await;
        assert_eq!(done["state"], "complete", "{done}");
        // Each request went through exactly one pipeline run.
        let runs = done["state_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state_reason"] == "Fetching the application source")
            .count();
        assert_eq!(runs, 1, "{done}");
    }
}
