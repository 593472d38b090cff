//! Hostile input to the api: control characters in every field, query parameter and
//! repository path, oversized bodies, headers and URIs, integer overflows, artifact store keys
//! that try to leave their package manager's files, and a saturated database pool. Each ends
//! in a 4xx (or a 503 with `Retry-After`) with Cachito's `{"error": …}` body, never a 500, and
//! the api stays healthy.

use crate::support::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// `larder api` alone: no worker, so requests stay in progress for the test to update.
async fn api_only(extra: &[(&str, &str)]) -> Larder {
    let mut larder = Larder::new();
    larder.spawn("api", extra);
    larder.wait_healthy().await;
    larder
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A client error in Cachito's shape.
fn assert_client_error(what: &str, status: u16, body: &Value) {
    assert!(
        (400..500).contains(&status),
        "{what}: expected a 4xx, got {status} {body}"
    );
    assert!(body["error"].is_string(), "{what}: {status} {body}");
}

async fn assert_healthy(larder: &Larder) {
    let started = Instant::now();
    let resp = larder
        .http
        .get(format!("{}/healthz", larder.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Claim the request as a worker would (no worker runs here), for its job.
async fn job(larder: &Larder, id: i64) -> Value {
    let (status, job) = larder
        .post(
            &format!("/api/v1/requests/{id}/claim"),
            &json!({"worker": "hostile-test"}),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    job
}

#[tokio::test]
async fn control_characters_in_bodies_queries_and_paths_are_client_errors() {
    let larder = api_only(&[]).await;
    let repo = "https://github.com/org/repo.git";
    let nul = "\u{0}";
    let bodies = [
        json!({"repo": format!("/tmp/repo{nul}"), "ref": SHA}),
        json!({"repo": format!("{repo}{nul}"), "ref": SHA}),
        json!({"repo": format!("{repo}\u{1b}[31m"), "ref": SHA}),
        json!({"repo": repo, "ref": format!("{}{nul}", &SHA[..39])}),
        json!({"repo": repo, "ref": SHA, "user": format!("alice{nul}")}),
        json!({"repo": repo, "ref": SHA, "pkg_managers": [format!("npm{nul}")]}),
        json!({"repo": repo, "ref": SHA, "flags": [format!("include-git-dir{nul}")]}),
        json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "packages": {"npm": [{"path": format!("web{nul}")}]}}),
        json!({"repo": repo, "ref": SHA, "pkg_managers": ["pip"], "packages": {"pip": [{"path": ".", "requirements_files": [format!("r.txt{nul}")]}]}}),
        json!({"repo": repo, "ref": SHA, "pkg_managers": ["pip"], "packages": {"pip": [{"path": ".", "requirements_build_files": ["b\u{7}.txt"]}]}}),
        json!({"repo": repo, "ref": SHA, "dependency_replacements": [{"name": format!("x{nul}"), "type": "gomod", "version": "v1.0.0"}]}),
        json!({"repo": repo, "ref": SHA, "dependency_replacements": [{"name": "x", "type": "gomod", "version": format!("v1{nul}")}]}),
        json!({"repo": repo, "ref": SHA, "dependency_replacements": [{"name": "x", "type": "gomod", "version": "v1", "new_name": format!("y{nul}")}]}),
        json!({"repo": repo, "ref": SHA, format!("repo{nul}"): "x"}),
    ];
    for body in bodies {
        let (status, answer) = larder.post("/api/v1/requests", &body).await;
        assert_client_error(&body.to_string(), status, &answer);
    }
    // Nothing was recorded.
    let (_, list) = larder.get("/api/v1/requests").await;
    assert_eq!(list["meta"]["total"], 0, "{list}");

    let id = larder
        .submit(json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"]}))
        .await;
    let token = job(&larder, id).await["repository_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut paths = vec![
        "/api/v1/requests?repo=%00".to_string(),
        "/api/v1/requests?repo=a%01b".to_string(),
        "/api/v1/requests?state=%00".to_string(),
        "/api/v1/requests?ref=%00".to_string(),
        "/api/v1/requests?pkg_manager=npm%00".to_string(),
        "/api/v1/requests?verbose=%00".to_string(),
        "/api/v1/requests?page=1%00".to_string(),
        "/api/v1/requests?%00=1".to_string(),
        format!("/api/v1/requests/latest?repo_name=org/repo%00&ref={SHA}"),
        "/api/v1/requests/latest?repo_name=org/repo&ref=%00".to_string(),
        "/api/v1/content-manifest?requests=1%00".to_string(),
        format!("/api/v1/sbom?requests={id}&format=%00"),
        format!("/api/v1/requests/{id}%00"),
        format!("/api/v1/requests/{id}%00/logs"),
    ];
    for pm in ["npm", "pip", "cargo", "gomod"] {
        for tail in [
            "good-pkg%00.json",
            "%00",
            "@scope%2f%00",
            "a/-/a%00.tgz",
            "simple/x%00/",
            "files/x%00.tar.gz",
            "config.json%00",
            "3/s/s%00",
            "example.com/m%00/@v/list",
            "example.com/m/@v/v1.0.0%00.zip",
            "x%2500",
        ] {
            paths.push(format!("/repos/{id}/t/{token}/{pm}/{tail}"));
            paths.push(format!("/repos/{id}/{pm}/{tail}"));
        }
        paths.push(format!("/repos/{id}/t/{token}%00/{pm}/x"));
        paths.push(format!("/repos/{id}/t/{token}/{pm}%00/x"));
        paths.push(format!("/repos/{id}/{pm}%00/x"));
    }
    for path in &paths {
        // the header token too: reach the database lookups behind a valid token
        let req = larder
            .http
            .get(format!("{}{path}", larder.url))
            .bearer_auth(&token);
        let (status, body) = send(req).await;
        assert_client_error(path, status, &body);
    }

    // Random repository paths (fixed seed): every byte, percent-encoded, in every position.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..600 {
        let pm = ["npm", "pip", "cargo", "gomod"][(next() % 4) as usize];
        let tail: String = (0..(next() % 24))
            .map(|_| match next() % 4 {
                0 => format!("%{:02x}", next() % 256),
                1 => "/".to_string(),
                _ => ((b'a' + (next() % 26) as u8) as char).to_string(),
            })
            .collect();
        let path = format!("/repos/{id}/{pm}/{tail}");
        let req = larder
            .http
            .get(format!("{}{path}", larder.url))
            .bearer_auth(&token);
        let (status, body) = send(req).await;
        assert!(status < 500, "{path}: {status} {body}");
    }
    assert_healthy(&larder).await;
}

#[tokio::test]
async fn worker_updates_are_cleaned_and_bounded() {
    let larder = api_only(&[]).await;
    let id = larder
        .submit(json!({"repo": "https://github.com/org/repo.git", "ref": SHA, "pkg_managers": []}))
        .await;
    let patch = |body: Value| {
        larder
            .http
            .patch(format!("{}/api/v1/requests/{id}", larder.url))
            .json(&body)
    };
    let (status, body) = send(patch(
        json!({"environment_variables": {"BAD\u{0}NAME": {"value": "x", "kind": "literal"}}}),
    ))
    .await;
    assert_client_error("NUL in a variable name", status, &body);

    let long = "y".repeat(100_000);
    let (status, body) = send(patch(json!({
        "state": "failed",
        "state_reason": format!("broken\u{0}reason \u{1b}[31m{long}"),
        "error_origin": "client",
        "error_type": "Bad\u{0}Type",
        "environment_variables": {"GOFLAGS": {"value": "-mod=mod\u{0}", "kind": "literal"}},
    })))
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, request) = larder.get(&format!("/api/v1/requests/{id}")).await;
    let reason = request["state_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("broken\\x00reason \\x1b[31myyy"),
        "{reason}"
    );
    assert!(reason.len() < 9 * 1024, "{}", reason.len());
    assert!(reason.ends_with("more bytes cut]"), "{reason}");
    assert_eq!(request["state_history"][0]["state_reason"], reason);
    assert_eq!(request["error_type"], "Bad\\x00Type");
    assert_eq!(request["environment_variables"]["GOFLAGS"], "-mod=mod\\x00");

    // The worker's reports: NUL where PostgreSQL cannot store it is refused.
    let put = |path: &str, body: Value| {
        larder
            .http
            .put(format!("{}/api/v1/requests/{id}/{path}", larder.url))
            .json(&body)
    };
    let (status, body) = send(
        put(
            "packages",
            json!({"packages": [{"name": "a\u{0}", "type": "npm", "version": "1", "dependencies": [], "purl": "pkg:npm/a@1"}]}),
        ),
    )
    .await;
    assert_client_error("NUL in the packages data", status, &body);
    let (status, body) = send(
        put(
            "artifacts",
            json!([{"pm": "npm", "name": "a", "version": "1.0.0", "filename": "a-1.0.0.tgz", "store_key": "deps/npm/a/-/a-1.0.0.tgz", "meta": {"protocol": "npm", "description": "x\u{0}"}}]),
        ),
    )
    .await;
    assert_client_error("NUL in artifact metadata", status, &body);
    let (status, body) = send(
        larder
            .http
            .post(format!(
                "{}/api/v1/requests/{id}/configuration-files",
                larder.url
            ))
            .json(&json!([{"path": "app/a\u{1}b", "type": "base64", "content": ""}])),
    )
    .await;
    assert_client_error(
        "a control character in a configuration file path",
        status,
        &body,
    );
    for (what, sha256) in [
        (
            "a stored configuration file not in the store",
            "0".repeat(64),
        ),
        (
            "a stored configuration file named by no digest",
            "../../secret.key".into(),
        ),
    ] {
        let (status, body) = send(
            larder
                .http
                .post(format!(
                    "{}/api/v1/requests/{id}/configuration-files",
                    larder.url
                ))
                .json(&json!([{"path": "app/a", "type": "stored", "sha256": sha256}])),
        )
        .await;
        assert_client_error(what, status, &body);
    }
    assert_healthy(&larder).await;
}

#[tokio::test]
async fn artifact_store_keys_stay_inside_their_package_managers_files() {
    let larder = api_only(&[]).await;
    let id = larder
        .submit(
            json!({"repo": "https://github.com/org/repo.git", "ref": SHA, "pkg_managers": ["npm"]}),
        )
        .await;
    let token = job(&larder, id).await["repository_token"]
        .as_str()
        .unwrap()
        .to_string();
    // the secret of an earlier version, still in a data directory after an upgrade
    let secret = "5ec7e7".repeat(10);
    std::fs::write(larder.data.path().join("secret.key"), &secret).unwrap();
    let stored = larder.data.path().join("deps/npm/ok/-/ok-1.0.0.tgz");
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(&stored, b"the ok tarball").unwrap();
    std::fs::create_dir_all(larder.data.path().join("bundles")).unwrap();
    std::fs::write(larder.data.path().join("bundles/1.tar.gz"), b"a bundle").unwrap();

    let artifact = |name: &str, pm: &str, key: &str| json!({"pm": pm, "name": name, "version": "1.0.0", "filename": format!("{name}-1.0.0.tgz"), "store_key": key, "meta": {"protocol": pm}});
    let put = |artifacts: Value| {
        larder
            .http
            .put(format!("{}/api/v1/requests/{id}/artifacts", larder.url))
            .json(&artifacts)
    };
    let (status, body) = send(put(json!([artifact(
        "ok",
        "npm",
        "deps/npm/ok/-/ok-1.0.0.tgz"
    )])))
    .await;
    assert_eq!(status, 204, "{body}");

    for (pm, key) in [
        ("npm", "secret.key"),
        ("npm", "bundles/1.tar.gz"),
        ("npm", "logs/1.log"),
        ("npm", "../x"),
        ("npm", "/etc/passwd"),
        ("npm", "deps/npm/../../secret.key"),
        ("npm", "deps/npm/ok/-/../../../secret.key"),
        ("npm", "deps/pip/ok/ok-1.0.0.tar.gz"),
        ("npm", "deps/cargo/ok/ok-1.0.0.crate"),
        ("npm", "sources/github.com/org/repo/x.tar.gz"),
        ("cargo", "deps/npm/ok/-/ok-1.0.0.tgz"),
        ("pip", "deps/pip-index/ok/1.0.0.json"),
        ("gomod", "deps/npm/ok/-/ok-1.0.0.tgz"),
        ("git-submodule", "deps/git/github.com/org/repo/x.tar.gz"),
    ] {
        let (status, body) = send(put(json!([
            artifact("ok", "npm", "deps/npm/ok/-/ok-1.0.0.tgz"),
            artifact("evil", pm, key)
        ])))
        .await;
        assert_eq!(status, 400, "{pm} {key}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(
        larder
            .logs()
            .contains("refused an artifact whose store key lies outside"),
        "refusals are logged"
    );

    // An artifact recorded before keys were checked is not served either.
    let mut conn = AsyncPgConnection::establish(&larder.database_url)
        .await
        .unwrap();
    diesel::sql_query(
        "INSERT INTO artifacts (request_id, pm, name, version, filename, store_key, meta) \
         VALUES ($1, 'npm', 'old', '1.0.0', 'old-1.0.0.tgz', 'secret.key', 'null')",
    )
    .bind::<diesel::sql_types::BigInt, _>(id)
    .execute(&mut conn)
    .await
    .unwrap();

    let base = format!("{}/repos/{id}/t/{token}/npm", larder.url);
    for (path, want) in [
        ("ok/-/ok-1.0.0.tgz", 200),
        ("evil/-/evil-1.0.0.tgz", 404),
        ("old/-/old-1.0.0.tgz", 404),
        ("old", 404),
    ] {
        let resp = larder
            .http
            .get(format!("{base}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{path}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains(&secret), "{path} served the secret");
        if want == 200 {
            assert_eq!(body, "the ok tarball");
        }
    }
    assert_healthy(&larder).await;
}

#[tokio::test]
async fn oversized_bodies_headers_and_uris_and_overflowing_integers_are_refused() {
    let larder = api_only(&[]).await;
    let id = larder
        .submit(
            json!({"repo": "https://github.com/org/repo.git", "ref": SHA, "pkg_managers": ["npm"]}),
        )
        .await;

    // Bodies: a submission is small, a worker's report of a big lockfile is not.
    let padding = "x".repeat(300 << 10);
    let (status, body) = larder
        .post(
            "/api/v1/requests",
            &json!({"repo": "https://github.com/org/repo.git", "ref": SHA, "user": padding}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let (status, body) = send(
        larder
            .http
            .patch(format!("{}/api/v1/requests/{id}", larder.url))
            .json(&json!({"state_reason": "x".repeat(2 << 20), "state": "failed"})),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // Chunked, without a Content-Length: cut at the limit all the same.
    let chunks =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 16 << 10])));
    let (status, body) = send(
        larder
            .http
            .post(format!("{}/api/v1/requests", larder.url))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks)),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // 50,000 artifacts (a large npm lockfile) are a legitimate report.
    let artifacts: Vec<Value> = (0..50_000)
        .map(|i| {
            json!({"pm": "npm", "name": format!("package-{i}"), "version": "1.0.0",
                   "filename": format!("package-{i}-1.0.0.tgz"),
                   "store_key": format!("deps/npm/package-{i}/-/package-{i}-1.0.0.tgz"),
                   "meta": {"protocol": "npm", "dist": {"integrity": format!("sha512-{}", "A".repeat(86)), "shasum": "0".repeat(40)},
                            "dependencies": {"left-pad": "^1.0.0", "right-pad": "^2.0.0"}, "source": "registry"}})
        })
        .collect();
    let report = serde_json::to_vec(&artifacts).unwrap();
    assert!(report.len() > 20_000_000, "{}", report.len());
    let (status, body) = send(
        larder
            .http
            .put(format!("{}/api/v1/requests/{id}/artifacts", larder.url))
            .header("content-type", "application/json")
            .body(report),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // URIs and headers.
    let long_path = format!("/repos/{id}/npm/{}", "a".repeat(9 << 10));
    let long_query = format!("/api/v1/requests?repo={}", "a".repeat(9 << 10));
    for path in [long_path, long_query] {
        let (status, body) = send(larder.http.get(format!("{}{path}", larder.url))).await;
        assert_eq!(status, 414, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = send(
        larder
            .http
            .get(format!("{}/api/v1/requests", larder.url))
            .header("x-padding", "a".repeat(40 << 10)),
    )
    .await;
    assert_eq!(status, 431, "{body}");
    assert!(body["error"].is_string(), "{body}");
    // Past actix's own bound the connection is closed after a bare 431 (on a client of its
    // own, so that the closed connection is not reused).
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/requests", larder.url))
        .header("x-padding", "a".repeat(200 << 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);

    // Integers: the normal 404 or a 400, never a 500.
    for (path, want) in [
        ("/api/v1/requests?page=9223372036854775807", 404),
        (
            "/api/v1/requests?page=9223372036854775807&per_page=100",
            404,
        ),
        ("/api/v1/requests?page=9223372036854775808", 400),
        ("/api/v1/requests?page=-1", 400),
        ("/api/v1/requests?per_page=9223372036854775808", 400),
        ("/api/v1/requests/9223372036854775807", 404),
        ("/api/v1/requests/9223372036854775808", 404),
        ("/api/v1/requests/-9223372036854775808/logs", 404),
        (
            "/api/v1/content-manifest?requests=99999999999999999999",
            400,
        ),
        ("/api/v1/content-manifest?requests=9223372036854775807", 400),
        ("/repos/9223372036854775808/npm/x", 404),
    ] {
        let (status, body) = larder.get(path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (status, list) = larder
        .get("/api/v1/requests?per_page=9223372036854775807")
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["per_page"], 100);
    let (status, body) = send(
        larder
            .http
            .patch(format!("{}/api/v1/requests/{id}", larder.url))
            .json(&json!({"packages_count": 9223372036854775807_i64})),
    )
    .await;
    assert_client_error("packages_count overflow", status, &body);
    assert_healthy(&larder).await;
}

/// A transaction (held by the test) that blocks every use of the `requests` table.
async fn lock_requests_table(database_url: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    diesel::sql_query("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn a_saturated_pool_answers_503_and_health_stays_quick() {
    let larder = api_only(&[("LARDER_DB_POOL_SIZE", "1")]).await;
    let submission =
        json!({"repo": "https://github.com/org/repo.git", "ref": SHA, "pkg_managers": []});
    let mut lock = lock_requests_table(&larder.database_url).await;

    // The first submission takes the only connection and waits for the lock.
    let first = {
        let (http, url, body) = (
            larder.http.clone(),
            format!("{}/api/v1/requests", larder.url),
            submission.clone(),
        );
        tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The next one waits for the pool, then is told to come back.
    let started = Instant::now();
    let resp = larder
        .http
        .post(format!("{}/api/v1/requests", larder.url))
        .timeout(Duration::from_secs(30))
        .json(&submission)
        .send()
        .await
        .expect("answered, not left hanging");
    assert_eq!(resp.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
    for _ in 0..3 {
        assert_healthy(&larder).await;
    }

    diesel::sql_query("COMMIT")
        .execute(&mut lock)
        .await
        .unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 201);
    let (_, list) = larder.get("/api/v1/requests").await;
    assert_eq!(list["meta"]["total"], 1, "the 503 recorded nothing: {list}");
}

#[tokio::test]
async fn publishing_holds_no_database_connection_while_the_broker_hangs() {
    let proxy = TcpProxy::start("127.0.0.1:5672").await;
    proxy.set(ProxyMode::Paused);
    let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut larder = Larder::new();
    larder.spawn(
        "api",
        &[("LARDER_AMQP_URL", &amqp), ("LARDER_DB_POOL_SIZE", "1")],
    );
    larder.wait_healthy().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;

    // Past the dispatch grace time, the dispatcher keeps trying the hung broker; the one
    // pooled connection stays free for readers all along.
    let until = Instant::now() + Duration::from_secs(12);
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        let (status, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(status, 200, "{r}");
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a read waited {} ms for the connection",
        slowest.as_millis()
    );

    // The job still goes out once the broker answers.
    proxy.set(ProxyMode::Open);
    larder.spawn("worker", &[("LARDER_AMQP_URL", AMQP)]);
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
}
