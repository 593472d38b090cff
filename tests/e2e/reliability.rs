//! Nothing is lost when a worker dies or the api loses the broker. Connections are broken
//! through a TCP proxy the test controls, so the shared RabbitMQ keeps running.

use crate::support::gomod_fixtures;
use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// A repository of one commit (a README) served over git:// behind a proxy the test can pause
/// (a fetch of `through_proxy()` then hangs until it opens).
struct ServedRepo {
    repo: GitRepo,
    commit: String,
    proxy: TcpProxy,
    _daemon: GitDaemon,
    _base: tempfile::TempDir,
}

impl ServedRepo {
    async fn start(readme: &str) -> Self {
        let base = tempfile::tempdir().unwrap();
        let repo = GitRepo::new(base.path().join("project"));
        repo.write("README", readme);
        let commit = repo.commit("c");
        let daemon = GitDaemon::start(base.path()).await;
        let proxy = TcpProxy::start(&format!("127.0.0.1:{}", daemon.port)).await;
        Self {
            repo,
            commit,
            proxy,
            _daemon: daemon,
            _base: base,
        }
    }

    fn through_proxy(&self) -> String {
        format!("git://127.0.0.1:{}/project", self.proxy.port)
    }
}

#[tokio::test]
async fn a_killed_workers_request_is_finished_by_another() {
    let served = ServedRepo::start("survives a crash\n").await;
    let (commit, proxy) = (served.commit.clone(), &served.proxy);

    let mut larder = Larder::new();
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let first = larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);

    // The first worker gets stuck fetching the repository, then dies.
    proxy.set(ProxyMode::Paused);
    let id = larder
        .submit(json!({"repo": served.through_proxy(), "ref": commit, "pkg_managers": []}))
        .await;
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

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn wait_for_log(larder: &Larder, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !larder.logs().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never logged:\n{}",
            larder.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reasons(r: &serde_json::Value) -> Vec<String> {
    r["state_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state_reason"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_silent_workers_request_is_taken_over_and_the_old_attempt_changes_nothing() {
    let served = ServedRepo::start("slow\n").await;
    let (proxy, url, commit) = (&served.proxy, served.through_proxy(), served.commit.clone());
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_HEARTBEAT_TIMEOUT".into(), "2s".into());
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let one = [("LARDER_WORKER_CONCURRENCY", "1")];
    let first = larder.spawn("worker", &one);
    proxy.set(ProxyMode::Paused);
    let id = larder
        .submit(json!({"repo": url, "ref": commit, "pkg_managers": []}))
        .await;
    larder
        .wait_until(id, Duration::from_secs(60), |r| {
            r["state_reason"] == "Fetching the application source"
        })
        .await;
    // the worker hangs without dying: its broker connection stays open, so only the lease
    // (heartbeats) can tell
    signal(larder.pid(first), "-STOP");
    larder.spawn("worker", &one);
    proxy.set(ProxyMode::Open);
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    // the old attempt wakes up, finishes its fetch, and is refused everything it sends
    signal(larder.pid(first), "-CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, after) = larder.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(after["state"], "complete", "{after}");
    assert_eq!(after["state_history"], done["state_history"], "{after}");
    let completions = reasons(&after)
        .iter()
        .filter(|r| *r == "Completed successfully")
        .count();
    assert_eq!(completions, 1, "{after}");
}

#[tokio::test]
async fn a_request_past_its_deadline_fails_and_frees_the_worker() {
    let base = tempfile::tempdir().unwrap();
    let served = ServedRepo::start("slow\n").await;
    let (proxy, url, commit) = (&served.proxy, served.through_proxy(), served.commit.clone());
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_REQUEST_TIMEOUT".into(), "3s".into());
    larder.spawn("serve", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    larder.wait_healthy().await;
    proxy.set(ProxyMode::Paused);
    let id = larder
        .submit(json!({"repo": url, "ref": commit, "pkg_managers": []}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error_origin"], "server", "{done}");
    assert_eq!(done["error_type"], "RequestTimeout", "{done}");
    assert_eq!(
        done["state_reason"],
        "The request did not finish within 3s (LARDER_REQUEST_TIMEOUT)"
    );
    // the only worker slot is free again
    let (repo, commit) = GitRepo::with_file(base.path().join("quick"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
}

#[tokio::test]
async fn a_request_whose_workers_keep_dying_fails_after_its_deliveries() {
    let base = tempfile::tempdir().unwrap();
    let served = ServedRepo::start("slow\n").await;
    let (proxy, url, commit) = (&served.proxy, served.through_proxy(), served.commit.clone());
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_MAX_DELIVERIES".into(), "2".into());
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    proxy.set(ProxyMode::Paused);
    let id = larder
        .submit(json!({"repo": url, "ref": commit, "pkg_managers": []}))
        .await;
    for attempt in 1..=2 {
        let w = larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);
        wait_for_log(
            &larder,
            &format!("request claimed request_id={id} attempt={attempt}"),
        )
        .await;
        larder.kill(w);
    }
    // a poison request does not hold the next worker: the third delivery fails it
    let _w = larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error_origin"], "server", "{done}");
    assert_eq!(done["error_type"], "TooManyAttempts", "{done}");
    assert!(
        done["state_reason"]
            .as_str()
            .unwrap()
            .contains("LARDER_MAX_DELIVERIES"),
        "{done}"
    );
    proxy.set(ProxyMode::Open);
    let (repo, commit) = GitRepo::with_file(base.path().join("quick"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
}

/// Files under `dir`, relative, sorted.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_worker_killed_20_times_at_random_points_converges() {
    use rand::Rng;
    let work = tempfile::tempdir().unwrap();
    let proxy_dir = work.path().join("proxy");
    let fx = gomod_fixtures::transitive(&proxy_dir);
    let upstream = StaticServer::start(&proxy_dir).await;
    let repo = GitRepo::new(work.path().join("app"));
    repo.write("go.mod", gomod_fixtures::APP_GOMOD).write(
        "go.sum",
        &gomod_fixtures::gosum_text(&[&fx.upper, &fx.b], &[]),
    );
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_GOPROXY".into(), upstream.url.clone());
    larder
        .env
        .insert("LARDER_MAX_DELIVERIES".into(), "100".into());
    larder
        .env
        .insert("LARDER_HEARTBEAT_TIMEOUT".into(), "2s".into());
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        repo.write(
            "main.go",
            &gomod_fixtures::main_go(&["github.com/Fix/Upper"], &format!("upper.A() + \"{i}\"")),
        );
        let commit = repo.commit(&format!("app {i}"));
        ids.push(
            larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["gomod"]}))
                .await,
        );
    }
    let mut rng = rand::rng();
    let mut kills = Vec::new();
    for _ in 0..20 {
        let w = larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "2")]);
        let after = Duration::from_millis(rng.random_range(50..1500));
        tokio::time::sleep(after).await;
        larder.kill(w);
        kills.push(after.as_millis());
    }
    larder.spawn("worker", &[("LARDER_WORKER_CONCURRENCY", "2")]);
    for id in &ids {
        let done = larder.wait(*id).await;
        assert_eq!(done["state"], "complete", "killed at {kills:?} ms: {done}");
        let completions = reasons(&done)
            .iter()
            .filter(|r| *r == "Completed successfully")
            .count();
        assert_eq!(completions, 1, "{done}");
        assert_eq!(done["dependencies"].as_array().unwrap().len(), 2, "{done}");
        let bundle = untar(&larder.download(*id).await.0);
        assert!(
            bundle.contains_key("deps/gomod/pkg/mod/cache/download/example.com/b/@v/v1.1.0.zip"),
            "{:?}",
            bundle.keys()
        );
    }
    // nothing stored twice, nothing left behind: a bundle named for each request (the same
    // bundle bytes shared), each module file once, no work directory of a finished request
    let data = larder.data.path();
    let all = files(&data.join("bundles"));
    let named = all.iter().filter(|f| f.ends_with(".tar.gz.sha256")).count();
    assert_eq!(named, ids.len(), "{all:?}");
    let blobs = all.iter().filter(|f| f.ends_with(".tar.gz")).count();
    assert!((1..=ids.len()).contains(&blobs), "{all:?}");
    // one reference a request, none left over from an attempt, nothing moved aside
    let refs = all.iter().filter(|f| f.contains(".refs/")).count();
    assert_eq!(refs, ids.len(), "{all:?}");
    assert!(!all.iter().any(|f| f.contains(".released-")), "{all:?}");
    let deps = files(&data.join("deps/gomod"));
    let unique: std::collections::BTreeSet<&String> = deps.iter().collect();
    assert_eq!(unique.len(), deps.len());
    assert_eq!(deps.len(), 6, "{deps:?}");
    let leftovers: Vec<String> = files(&data.join("tmp"))
        .into_iter()
        .filter(|f| f.starts_with("work-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!("killed the worker at {kills:?} ms after its start");
}

/// `larder serve` without `LARDER_AMQP_URL`: jobs go to its own worker, and a job it held when
/// it was killed is sent again when it starts (the database is the record).
#[tokio::test]
async fn serve_without_a_broker_queues_in_process_and_finishes_a_request_after_a_kill() {
    let served = ServedRepo::start("queued in process\n").await;
    let (repo, commit, proxy) = (&served.repo, served.commit.clone(), &served.proxy);

    let mut larder = Larder::new();
    larder.env.remove("LARDER_AMQP_URL");
    // RabbitMQ is not asked: nothing of this deployment's queue appears there
    let first = larder.spawn("serve", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    larder.wait_healthy().await;
    // the worker takes the queue once its runtime started
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = larder.get("/api/v1/status").await.1;
        if status["workers"][0]["consumers"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["workers"][0]["consumers"], 1, "{status}");
    assert_eq!(status["workers"][0]["name"], "in-process queue", "{status}");

    let quick = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(quick).await["state"], "complete");

    // stuck fetching the repository, then killed
    proxy.set(ProxyMode::Paused);
    let id = larder
        .submit(json!({"repo": served.through_proxy(), "ref": commit, "pkg_managers": []}))
        .await;
    larder
        .wait_until(id, Duration::from_secs(60), |r| {
            r["state_reason"] == "Fetching the application source"
        })
        .await;
    larder.kill(first);
    proxy.set(ProxyMode::Open);
    larder.spawn("serve", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    larder.wait_healthy().await;
    let done = larder
        .wait_until(id, Duration::from_secs(60), |r| r["state"] != "in_progress")
        .await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let bundle = untar(&larder.download(id).await.0);
    assert_eq!(
        bundle["app/README"].as_deref(),
        Some(&b"queued in process\n"[..])
    );
    // (the embedded database's run has no RabbitMQ to look at)
    if std::env::var_os(crate::support::IN_NAMESPACE).is_none() {
        assert!(
            !queue_exists(&larder.queue).await,
            "a queue named {} appeared on RabbitMQ",
            larder.queue
        );
    }
}

/// One `larder serve` with its own queue per database: a second is refused. Once it is gone, a
/// RabbitMQ deployment on the same database sends the jobs it had queued and not started to
/// RabbitMQ (they lived only in that process), and takes over the one it had started.
#[tokio::test]
async fn jobs_a_serve_queued_itself_are_finished_by_rabbitmq_workers_once_it_is_gone() {
    let served = ServedRepo::start("queued in process\n").await;
    let (repo, commit, proxy) = (&served.repo, served.commit.clone(), &served.proxy);

    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_HEARTBEAT_TIMEOUT".into(), "2s".into());
    let amqp = larder.env.remove("LARDER_AMQP_URL").unwrap();
    // one job at a time: the second waits in the process's queue, never started
    let serve = larder.spawn("serve", &[("LARDER_WORKER_CONCURRENCY", "1")]);
    larder.wait_healthy().await;

    let second_serve = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", larder.data.path())
        .envs(&larder.env)
        .env("LARDER_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!second_serve.status.success(), "a second serve started");
    let err = String::from_utf8_lossy(&second_serve.stderr);
    assert!(
        err.contains("another `larder serve` without LARDER_AMQP_URL runs on this database"),
        "{err}"
    );

    proxy.set(ProxyMode::Paused);
    let stuck_repo = served.through_proxy();
    let started = larder
        .submit(json!({"repo": stuck_repo, "ref": commit, "pkg_managers": []}))
        .await;
    larder
        .wait_until(started, Duration::from_secs(60), |r| {
            r["state_reason"] == "Fetching the application source"
        })
        .await;
    let queued = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    // dispatched to the busy worker's queue
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = larder.page("/ui/status").await;
    assert!(status.contains("<dd id=\"queue-depth\">1</dd>"), "{status}");
    larder.kill(serve);
    proxy.set(ProxyMode::Open);

    larder.env.insert("LARDER_AMQP_URL".into(), amqp);
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    larder.spawn("worker", &[]);
    for id in [queued, started] {
        let done = larder
            .wait_until(id, Duration::from_secs(90), |r| r["state"] != "in_progress")
            .await;
        assert_eq!(done["state"], "complete", "{id}: {done}\n{}", larder.logs());
    }
}

/// `larder api` and `larder worker` work from RabbitMQ: without `LARDER_AMQP_URL` they refuse
/// to start, saying so.
#[tokio::test]
async fn api_and_worker_without_a_broker_refuse_to_start_naming_it() {
    let mut larder = Larder::new();
    larder.env.remove("LARDER_AMQP_URL");
    for cmd in ["api", "worker"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg(cmd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", larder.data.path())
            .envs(&larder.env)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cmd} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("LARDER_AMQP_URL is not set"), "{cmd}: {err}");
    }
}
