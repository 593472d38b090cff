//! Several api instances and workers against one database and one broker, with no disk in
//! common: the token secret and the requests' logs live in the database, so every api checks
//! the same tokens and serves every request's log.

use crate::support::*;
use common::token::TokenSecret;
use diesel::sql_types::{BigInt, Binary, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Another `larder api` of `larder`'s deployment, on its own port and data directory; its URL.
fn spawn_api(larder: &mut Larder, data_dir: &Path, extra: &[(&str, &str)]) -> (usize, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let data = data_dir.to_string_lossy().into_owned();
    let mut env = vec![
        ("LARDER_LISTEN", listen.as_str()),
        ("LARDER_PUBLIC_URL", url.as_str()),
        ("LARDER_DATA_DIR", data.as_str()),
    ];
    env.extend_from_slice(extra);
    let index = larder.spawn("api", &env);
    (index, url)
}

async fn wait_healthy_at(larder: &Larder, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(resp) = larder.http.get(format!("{url}/healthz")).send().await {
            if resp.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the api at {url} did not become healthy:\n{}",
        larder.logs()
    );
}

async fn status_of(larder: &Larder, url: String) -> u16 {
    larder.http.get(url).send().await.unwrap().status().as_u16()
}

async fn log_at(larder: &Larder, url: &str, id: i64) -> (u16, String) {
    let resp = larder
        .http
        .get(format!("{url}/api/v1/requests/{id}/logs"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn bytes_downloaded(larder: &Larder, url: &str) -> u64 {
    let metrics = larder
        .http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("larder_bytes_downloaded_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no bytes downloaded in {metrics}"))
}

#[derive(diesel::QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Binary)]
    value: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct SaltRow {
    #[diesel(sql_type = Text)]
    token_salt: String,
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn stored_secrets(conn: &mut AsyncPgConnection) -> Vec<Vec<u8>> {
    diesel::sql_query("SELECT value FROM server_secrets")
        .load::<SecretRow>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect()
}

async fn salt_of(conn: &mut AsyncPgConnection, id: i64) -> String {
    diesel::sql_query("SELECT token_salt FROM requests WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result::<SaltRow>(conn)
        .await
        .unwrap()
        .token_salt
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<CountRow>(conn)
        .await
        .unwrap()
        .n
}

/// The repository answers 404 for a package the request does not have once the token is
/// accepted, 401 before.
async fn accepts_token(larder: &Larder, url: &str, id: i64, token: &str) -> bool {
    match status_of(larder, format!("{url}/repos/{id}/t/{token}/npm/absent")).await {
        404 => true,
        401 => false,
        other => panic!("unexpected {other} from {url}'s repository"),
    }
}

#[tokio::test]
async fn two_apis_started_together_agree_on_tokens_and_serve_every_log() {
    let mut larder = Larder::new();
    let other_data = tempfile::tempdir().unwrap();
    // both start at once: each finds no secret and creates one; one row wins for both
    larder.spawn("api", &[]);
    let (_, other) = spawn_api(&mut larder, other_data.path(), &[]);
    larder.wait_healthy().await;
    wait_healthy_at(&larder, &other).await;
    // the worker reports to the second api only
    larder.spawn("worker", &[("LARDER_API_URL", other.as_str())]);

    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");

    // "request complete" is logged once the api took the completion: it is shipped after it
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let (status, log) = log_at(&larder, &larder.url, id).await;
        assert_eq!(status, 200, "{log}");
        if log.contains("request complete") {
            break log;
        }
        assert!(Instant::now() < deadline, "no completion in the log: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(first.contains("request claimed"), "{first}");
    assert_eq!(log_at(&larder, &other, id).await, (200, first.clone()));
    // /metrics counts the bytes both served, whichever is asked (the other's within seconds)
    let both = 2 * first.len() as u64;
    for url in [&larder.url, &other] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let served = bytes_downloaded(&larder, url).await;
            if served >= both {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} reports {served} bytes downloaded, not {both}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // nothing of it on either api's disk
    for dir in [larder.data.path(), other_data.path()] {
        assert!(!dir.join("logs").exists(), "{}", dir.display());
        assert!(!dir.join("secret.key").exists(), "{}", dir.display());
    }

    let mut conn = AsyncPgConnection::establish(&larder.database_url)
        .await
        .unwrap();
    let secrets = stored_secrets(&mut conn).await;
    assert_eq!(secrets.len(), 1);
    let secret = TokenSecret::from_slice(&secrets[0]).unwrap();
    let token = secret.repo_token(id, &salt_of(&mut conn, id).await);
    for url in [&larder.url, &other] {
        assert!(accepts_token(&larder, url, id, &token).await, "{url}");
        assert!(
            !accepts_token(&larder, url, id, &"0".repeat(48)).await,
            "{url}"
        );
    }

    // stale: the log goes, for both
    larder.expire_all();
    for url in [&larder.url, &other] {
        assert_eq!(log_at(&larder, url, id).await.0, 410, "{url}");
    }
    let chunks = count(&mut conn, "SELECT count(*) AS n FROM request_log_chunks").await;
    assert_eq!(chunks, 0);
}

#[tokio::test]
async fn an_existing_secret_file_is_imported_and_its_tokens_stay_valid() {
    let mut larder = Larder::new();
    let known = [0x5au8; 32];
    std::fs::write(larder.data.path().join("secret.key"), hex::encode(known)).unwrap();
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let id = larder
        .submit(json!({"repo": "https://github.com/org/repo.git", "ref": "0123456789abcdef0123456789abcdef01234567", "pkg_managers": ["npm"]}))
        .await;
    let (status, job) = larder
        .post(
            &format!("/api/v1/requests/{id}/claim"),
            &json!({"worker": "scale-out-test"}),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    let mut conn = AsyncPgConnection::establish(&larder.database_url)
        .await
        .unwrap();
    let token = TokenSecret::from_bytes(known).repo_token(id, &salt_of(&mut conn, id).await);
    assert_eq!(job["repository_token"], token.as_str());

    // an api on another machine, whose data directory holds another secret, takes the stored one
    let other_data = tempfile::tempdir().unwrap();
    std::fs::write(
        other_data.path().join("secret.key"),
        hex::encode([0x11u8; 32]),
    )
    .unwrap();
    let (_, other) = spawn_api(&mut larder, other_data.path(), &[]);
    wait_healthy_at(&larder, &other).await;
    assert!(accepts_token(&larder, &other, id, &token).await);
    assert_eq!(stored_secrets(&mut conn).await, vec![known.to_vec()]);
}

#[tokio::test]
async fn logs_are_appended_once_per_chunk_after_an_old_log_file_and_streamed_in_bounded_memory() {
    let mut larder = Larder::new();
    let api = larder.spawn("api", &[]);
    larder.wait_healthy().await;
    let submit = || {
        larder.submit(json!({"repo": "https://github.com/org/repo.git", "ref": "0123456789abcdef0123456789abcdef01234567", "pkg_managers": []}))
    };
    let quiet = submit().await;
    assert_eq!(
        log_at(&larder, &larder.url, quiet).await,
        (200, String::new())
    );

    let id = submit().await;
    // the log file an earlier version wrote comes first
    std::fs::create_dir_all(larder.data.path().join("logs")).unwrap();
    std::fs::write(
        larder.data.path().join(format!("logs/{id}.log")),
        "from the file\n",
    )
    .unwrap();
    let append = |writer: &str, seq: i64, body: Vec<u8>| {
        let req = larder
            .http
            .post(format!(
                "{}/api/v1/requests/{id}/logs?writer={writer}&seq={seq}",
                larder.url
            ))
            .header("Content-Type", "text/plain")
            .body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(append("w-1", 0, b"one\n".to_vec()).await, 204);
    // sent again after a lost answer: stored once
    assert_eq!(append("w-1", 0, b"one\n".to_vec()).await, 204);
    assert_eq!(append("w-2", 0, b"two\n".to_vec()).await, 204);
    assert_eq!(append("w-1", 1, b"three\n".to_vec()).await, 204);
    assert_eq!(
        log_at(&larder, &larder.url, id).await,
        (200, "from the file\none\ntwo\nthree\n".to_string())
    );
    // and the page's log tail shows the same
    let live: serde_json::Value = larder
        .http
        .get(format!("{}/ui/requests/{id}/live", larder.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["log_tail"], "from the file\none\ntwo\nthree");
    assert_eq!(append("w-1", 2, vec![0xff, b'\n']).await, 400);
    assert_eq!(append("w-1", 2, b"no newline".to_vec()).await, 400);
    assert_eq!(append("w-1", 2, b"a \x1b[31m colour\n".to_vec()).await, 400);
    assert_eq!(
        append("w-1", 2, vec![b'x'; common::LOG_CHUNK_LIMIT + 1]).await,
        413
    );

    // 64 MiB of log: served a page of chunks at a time
    let line = format!("{}\n", "y".repeat(1023));
    let chunk = line.repeat(1024);
    for seq in 0..64 {
        assert_eq!(append("big", seq, chunk.clone().into_bytes()).await, 204);
    }
    let pid = larder.pid(api);
    let rss_before = rss_kib(pid);
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let resp = larder
        .http
        .get(format!("{}/api/v1/requests/{id}/logs", larder.url))
        .send()
        .await
        .unwrap();
    let mut served = 0usize;
    let mut stream = resp.bytes_stream();
    use futures_util::StreamExt;
    while let Some(bytes) = stream.next().await {
        served += bytes.unwrap().len();
    }
    assert_eq!(
        served,
        "from the file\none\ntwo\nthree\n".len() + 64 * chunk.len()
    );
    let grew_mib = vm_hwm_kib(pid).saturating_sub(rss_before) / 1024;
    assert!(grew_mib < 24, "serving a 64 MiB log took {grew_mib} MiB");

    // stale: no more lines, and the old file is gone too
    larder.expire_all();
    assert_eq!(append("w-1", 3, b"late\n".to_vec()).await, 410);
    assert_eq!(log_at(&larder, &larder.url, id).await.0, 410);
    assert!(!larder.data.path().join(format!("logs/{id}.log")).exists());
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_apis_sweeping_hand_a_silent_request_over_once_per_lease() {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_HEARTBEAT_TIMEOUT".into(), "2s".into());
    // both sweep every 0.5 s
    larder.spawn("api", &[]);
    let other_data = tempfile::tempdir().unwrap();
    let (_, other) = spawn_api(&mut larder, other_data.path(), &[]);
    larder.wait_healthy().await;
    wait_healthy_at(&larder, &other).await;

    // this test is the only consumer: it sees every job the apis publish
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut jobs = channel
        .basic_consume(
            larder.queue.as_str().into(),
            "scale-out-test".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let id = larder
        .submit(json!({"repo": "https://github.com/org/repo.git", "ref": "0123456789abcdef0123456789abcdef01234567", "pkg_managers": []}))
        .await;
    use futures_util::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), jobs.next())
        .await
        .expect("the submission's job");
    assert!(first.is_some());
    // a worker claims it, then is never heard of again
    let (status, job) = larder
        .post(
            &format!("/api/v1/requests/{id}/claim"),
            &json!({"worker": "silent-1"}),
        )
        .await;
    assert_eq!(status, 200, "{job}");

    let watched = Instant::now();
    let mut handovers = Vec::new();
    while watched.elapsed() < Duration::from_secs(7) {
        let left = Duration::from_secs(7).saturating_sub(watched.elapsed());
        let Ok(Some(delivery)) = tokio::time::timeout(left, jobs.next()).await else {
            break;
        };
        let delivery = delivery.unwrap();
        let message: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(message["request_id"], id);
        handovers.push(watched.elapsed());
    }
    // a lease is 2 s: a handover in each (1 s apart at least, whatever the sweeps' latency),
    // never two from the two apis at once
    assert!(handovers.len() >= 2, "{handovers:?}\n{}", larder.logs());
    for pair in handovers.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "two handovers within one lease: {handovers:?}"
        );
    }
}
