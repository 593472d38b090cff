//! Scale out on an S3-compatible store (issue 16): a real S3 server (moto, `support::s3`), two
//! `larder api` and two `larder worker` processes against one database and one queue, each with
//! a LARDER_DATA_DIR and LARDER_WORK_DIR of its own, so that no directory is shared: every
//! file a request makes or fetches reaches the others through the object store only.
//!
//! Without moto (`.ci/tools/moto-venv`) these tests skip, loudly, unless LARDER_REQUIRE_MOTO is
//! set (CI): then they fail.

use crate::support::clients::npm as npm_client;
use crate::support::npm_fixtures::{copy_dir, write};
use crate::support::s3::{MotoServer, CREDENTIALS, REGION};
use crate::support::*;
use common::token::TokenSecret;
use diesel::sql_types::{BigInt, Binary, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BUCKET: &str = "larder-e2e";
/// The store's prefix in the bucket: every key Larder writes is below it.
const PREFIX: &str = "store";

/// A deployment on moto: two apis (`apis[0]` is `larder.url`), two workers (worker `i`
/// reports to `apis[i]`), nothing shared on disk.
struct S3Larder {
    larder: Larder,
    moto: MotoServer,
    apis: Vec<String>,
    /// `larder.spawn` indices of the apis
    api_indices: Vec<usize>,
    /// `larder.spawn` indices of the workers
    workers: Vec<usize>,
    /// every process's LARDER_DATA_DIR, for the "nothing of the store on a disk" check
    data_dirs: Vec<tempfile::TempDir>,
    work_dirs: Vec<tempfile::TempDir>,
}

impl S3Larder {
    /// moto with the bucket made, and a deployment configured for it (nothing started yet);
    /// `None` when moto is not installed (the test skips, said loudly by `MotoServer`).
    fn new() -> Option<Self> {
        let moto = MotoServer::start(BUCKET)?;
        let mut larder = Larder::new();
        let env = [
            ("LARDER_STORE_URL", format!("s3://{BUCKET}/{PREFIX}")),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", CREDENTIALS.0.to_string()),
            ("AWS_SECRET_ACCESS_KEY", CREDENTIALS.1.to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            // a worker that is gone loses its request within seconds
            ("LARDER_HEARTBEAT_TIMEOUT", "2s".to_string()),
        ];
        for (k, v) in env {
            larder.env.insert(k.into(), v);
        }

        Some(Self {
            larder,
            moto,
            apis: Vec::new(),
            api_indices: Vec::new(),
            workers: Vec::new(),
            data_dirs: Vec::new(),
            work_dirs: Vec::new(),
        })
    }

    /// A process's own LARDER_DATA_DIR and LARDER_WORK_DIR (its HOME and TMPDIR: `home` and
    /// `tmp` in its data directory, so that not even /tmp is common to two processes).
    fn own_dirs(&mut self) -> (String, String) {
        let data = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        for own in ["home", "tmp"] {
            std::fs::create_dir(data.path().join(own)).unwrap();
        }
        let paths = (
            data.path().to_string_lossy().into_owned(),
            work.path().to_string_lossy().into_owned(),
        );
        self.data_dirs.push(data);
        self.work_dirs.push(work);
        paths
    }

    /// Two apis, then a worker on each; returns once both apis answer.
    async fn start(&mut self) {
        let mut indices = Vec::new();
        for i in 0..2 {
            let (data, work) = self.own_dirs();
            let url = if i == 0 {
                self.larder.url.clone()
            } else {
                format!("http://127.0.0.1:{}", free_port())
            };
            let listen = url.trim_start_matches("http://").to_string();
            let index = self.larder.spawn(
                "api",
                &[
                    ("LARDER_LISTEN", listen.as_str()),
                    ("LARDER_PUBLIC_URL", url.as_str()),
                    ("LARDER_DATA_DIR", data.as_str()),
                    ("HOME", &format!("{data}/home")),
                    ("TMPDIR", &format!("{data}/tmp")),
                    ("HOME", &format!("{data}/home")),
                    ("TMPDIR", &format!("{data}/tmp")),
                    ("LARDER_WORK_DIR", work.as_str()),
                ],
            );
            self.apis.push(url);
            self.api_indices.push(index);
            indices.push(index);
        }
        for (url, index) in self.apis.clone().iter().zip(indices) {
            wait_healthy_at(&self.larder, url, index).await;
        }
        for i in 0..2 {
            self.spawn_worker(i);
        }
    }

    /// Another `larder worker` reporting to `apis[api]`, with fresh directories of its own.
    fn spawn_worker(&mut self, api: usize) -> usize {
        let (data, work) = self.own_dirs();
        let url = self.apis[api].clone();
        let index = self.larder.spawn(
            "worker",
            &[
                ("LARDER_API_URL", url.as_str()),
                ("LARDER_DATA_DIR", data.as_str()),
                ("HOME", &format!("{data}/home")),
                ("TMPDIR", &format!("{data}/tmp")),
                ("LARDER_WORK_DIR", work.as_str()),
            ],
        );
        self.workers.push(index);
        index
    }

    /// SIGKILL every worker and start two new ones (one on each api) with empty caches.
    fn fresh_workers(&mut self) {
        for w in std::mem::take(&mut self.workers) {
            self.larder.kill(w);
        }
        self.spawn_worker(0);
        self.spawn_worker(1);
    }

    /// `larder cleanup` with a lifetime of 0 days, on a machine of its own (a data directory
    /// nobody else has).
    fn cleanup(&mut self) {
        let (data, _) = self.own_dirs();
        run_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
                .arg("cleanup")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(&self.larder.env)
                .env("LARDER_DATA_DIR", &data)
                .env("LARDER_REQUEST_LIFETIME_DAYS", "0"),
        );
    }

    /// Submit through `apis[api]`.
    async fn submit_at(&self, api: usize, body: Value) -> i64 {
        let resp = self
            .larder
            .http
            .post(format!("{}/api/v1/requests", self.apis[api]))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let created: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "{created}");
        created["id"].as_i64().unwrap()
    }

    /// Wait (through the first api) until the request is final; it must be complete.
    async fn complete(&self, id: i64) -> Value {
        let done = self
            .larder
            .wait_until(id, Duration::from_secs(120), |r| {
                r["state"] != "in_progress"
            })
            .await;
        assert_eq!(
            done["state"],
            "complete",
            "request {id}: {done}\n{}",
            self.larder.logs()
        );
        done
    }

    /// The request's bundle through `api`: (status, body or the error that cut it short).
    async fn bundle_at(&self, api: &str, id: i64) -> (u16, Result<Vec<u8>, String>) {
        get_body(
            self.larder
                .http
                .get(format!("{api}/api/v1/requests/{id}/download")),
        )
        .await
    }

    /// The bundle downloads whole and identical through both apis; its bytes.
    async fn same_bundle_through_both(&self, id: i64) -> Vec<u8> {
        let mut seen: Option<Vec<u8>> = None;
        for api in &self.apis {
            let resp = self
                .larder
                .http
                .get(format!("{api}/api/v1/requests/{id}/download"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                200,
                "bundle of {id} through {api}\n{}",
                self.larder.logs()
            );
            let length = header(&resp, "content-length");
            let digest = header(&resp, "digest");
            let bytes = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("bundle of {id} through {api} cut short: {e}"))
                .to_vec();
            assert_eq!(length.as_deref(), Some(bytes.len().to_string().as_str()));
            if let Some(digest) = digest {
                use base64::Engine;
                let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
                assert_eq!(digest, format!("sha-256={sha}"), "{api}");
            }
            match &seen {
                None => seen = Some(bytes),
                Some(first) => assert!(
                    *first == bytes,
                    "the bundle of {id} differs between the apis ({} and {} bytes)",
                    first.len(),
                    bytes.len()
                ),
            }
        }
        let bytes = seen.unwrap();
        // it unpacks
        untar(&bytes);
        bytes
    }

    /// The repository token of request `id` (what every api checks: the secret in the
    /// database).
    async fn token(&self, id: i64) -> String {
        let mut conn = AsyncPgConnection::establish(&self.larder.database_url)
            .await
            .unwrap();
        let secret: Vec<SecretRow> = diesel::sql_query("SELECT value FROM server_secrets")
            .load(&mut conn)
            .await
            .unwrap();
        assert_eq!(secret.len(), 1, "one server secret");
        let salt: SaltRow = diesel::sql_query("SELECT token_salt FROM requests WHERE id = $1")
            .bind::<BigInt, _>(id)
            .get_result(&mut conn)
            .await
            .unwrap();
        TokenSecret::from_slice(&secret[0].value)
            .unwrap()
            .repo_token(id, &salt.token_salt)
    }

    /// GET `/repos/{id}/t/<token>/<path>` through `api`: (status, body or the error that cut
    /// it short).
    async fn repo_file(&self, api: &str, id: i64, path: &str) -> (u16, Result<Vec<u8>, String>) {
        let token = self.token(id).await;
        get_body(
            self.larder
                .http
                .get(format!("{api}/repos/{id}/t/{token}/{path}")),
        )
        .await
    }

    /// The repository file `path` of request `id` is `want`, byte for byte, through both apis.
    async fn repo_file_through_both(&self, id: i64, path: &str, want: &[u8]) {
        for api in &self.apis {
            let (status, body) = self.repo_file(api, id, path).await;
            assert_eq!(
                status,
                200,
                "{path} of request {id} through {api}: {body:?}\n{}",
                self.larder.logs()
            );
            let body = body
                .unwrap_or_else(|e| panic!("{path} of request {id} through {api} cut short: {e}"));
            assert!(
                body == want,
                "{path} of request {id} through {api}: {} bytes, not the upstream's {}",
                body.len(),
                want.len()
            );
        }
    }

    /// Every key in the bucket below the store's prefix, the prefix taken off.
    fn keys(&self) -> Vec<String> {
        list_keys(&self.moto, &format!("{PREFIX}/"))
            .into_iter()
            .map(|k| k[PREFIX.len() + 1..].to_string())
            .collect()
    }

    /// The store object `key` (below the prefix): its bytes and its `sha256` metadata.
    fn object(&self, key: &str) -> (Vec<u8>, Option<String>) {
        let (status, headers, body) = raw(
            &self.moto,
            "GET",
            &format!("/{BUCKET}/{}", encode_key(&format!("{PREFIX}/{key}"))),
            &[],
            b"",
        );
        assert_eq!(status, 200, "GET {key}: {}", String::from_utf8_lossy(&body));
        (body, headers.get("x-amz-meta-sha256").cloned())
    }

    /// Overwrite the store object `key` with `bytes`, keeping the `sha256` it had: damage the
    /// store cannot see from its metadata.
    fn corrupt(&self, key: &str, bytes: &[u8]) {
        let (_, sha) = self.object(key);
        let sha = sha.unwrap_or_else(|| panic!("{key} carries no sha256 metadata"));
        self.moto.put_raw(
            &format!("{PREFIX}/{}", key_for_put(key)),
            bytes,
            &[("sha256", &sha)],
        );
        let (now, still) = self.object(key);
        assert_eq!(now, bytes, "the corruption of {key} took");
        assert_eq!(still, Some(sha));
    }

    /// No process's LARDER_DATA_DIR holds the store (dependencies, bundles, sources).
    fn nothing_stored_on_disk(&self) {
        for dir in &self.data_dirs {
            for shared in [
                "deps",
                "bundles",
                "sources",
                "bundle-members",
                "config-files",
            ] {
                let p = dir.path().join(shared);
                assert!(
                    !p.exists(),
                    "{} is on a process's disk: the store is the bucket",
                    p.display()
                );
            }
        }
    }
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

/// A started deployment (two apis, two workers, moto) with an npm project of `n` packages on
/// its fixture upstream; `None` when there is no S3 server to test with.
async fn started_with_npm(
    n: usize,
) -> Option<(S3Larder, crate::support::projects::Npm, tempfile::TempDir)> {
    let mut d = S3Larder::new()?;
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm(&tmp.path().join("npm"), n).await;
    npm.project.configure(&mut d.larder);
    d.start().await;
    Some((d, npm, tmp))
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Send; (status, the whole body or why it did not arrive whole: a transport error, or fewer
/// bytes than its Content-Length).
async fn get_body(req: reqwest::RequestBuilder) -> (u16, Result<Vec<u8>, String>) {
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return (0, Err(format!("no response: {e}"))),
    };
    let status = resp.status().as_u16();
    let length: Option<usize> = header(&resp, "content-length").and_then(|l| l.parse().ok());
    let body = match resp.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => return (status, Err(format!("body cut short: {e}"))),
    };
    match length {
        Some(l) if l != body.len() => (
            status,
            Err(format!("{} bytes of a Content-Length of {l}", body.len())),
        ),
        _ => (status, Ok(body)),
    }
}

/// Wait until the api (`larder.spawn` index `index`) at `url` answers; fails at once when it
/// exited with an error (its log's `Error: …`).
async fn wait_healthy_at(larder: &Larder, url: &str, index: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = larder.data.path().join(format!("api-{index}.log"));
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.starts_with("Error: ") || text.contains("\nError: ") {
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!("the api at {url} exited:\n{}", larder.logs());
        }
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

/// A key as a path of the S3 API (each segment percent-encoded, `/` kept).
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `put_raw` formats the path itself: encode the key for it.
fn key_for_put(key: &str) -> String {
    encode_key(key)
}

/// One S3 request to moto (which checks no signature but tells callers apart by the key an
/// `Authorization` names): status, lower-cased headers, body.
fn raw(
    moto: &MotoServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={}/20260101/{REGION}/s3/aws4_request, \
         SignedHeaders=host, Signature={}\r\n",
        moto.port,
        body.len(),
        CREDENTIALS.0,
        "0".repeat(64)
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = response[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// Every key of the bucket below `prefix` (ListObjectsV2, all pages).
fn list_keys(moto: &MotoServer, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!(
            "/{BUCKET}?list-type=2&max-keys=1000&prefix={}",
            encode_key(prefix).replace('/', "%2F")
        );
        if let Some(t) = &token {
            path.push_str(&format!("&continuation-token={}", encode_key(t)));
        }
        let (status, _, body) = raw(moto, "GET", &path, &[], b"");
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "ListObjectsV2: {body}");
        for item in body.split("<Contents>").skip(1) {
            if let Some(key) = element(item, "Key") {
                keys.push(xml_unescape(&key));
            }
        }
        token = element(&body, "NextContinuationToken");
        if token.is_none() || element(&body, "IsTruncated").as_deref() != Some("true") {
            return keys;
        }
    }
}

fn element(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every object below the prefix carries its sha256 as `sha256` metadata.
fn every_object_carries_its_sha256(d: &S3Larder, keys: &[String]) {
    for key in keys {
        let (bytes, sha) = d.object(key);
        assert_eq!(
            sha.as_deref(),
            Some(sha256_hex(&bytes).as_str()),
            "{key}: its sha256 metadata is not its bytes'"
        );
    }
}

/// One request of every package manager Larder has, half of them submitted through each api, at
/// once: each completes; its bundle downloads whole and identical through both apis (HEAD and
/// Range too); a stored file of each repository is served through both; every object carries its
/// sha256; no process keeps the store on its disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_package_manager_completes_on_s3_and_both_apis_serve_its_bundle_and_repository() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let fx = crate::air_gap::Fixtures::new().await;
    d.larder.env.extend(fx.env());
    d.start().await;
    let bodies: Vec<(&str, Value)> = [
        "npm",
        "yarn",
        "pnpm",
        "pip",
        "gomod",
        "cargo",
        "rubygems",
        "git-submodule",
    ]
    .into_iter()
    .map(|pm| (pm, fx.body(pm)))
    .collect();
    // every package manager of the registry is here
    let catalogue: Vec<String> = worker::pkg_managers::REGISTRY
        .iter()
        .map(|pm| pm.descriptor().name.to_string())
        .collect();
    for pm in &catalogue {
        assert!(
            bodies.iter().any(|(name, _)| name == pm),
            "no request of {pm} in this test"
        );
    }
    let mut ids = BTreeMap::new();
    for (i, (pm, body)) in bodies.into_iter().enumerate() {
        ids.insert(pm, d.submit_at(i % 2, body).await);
    }
    let mut bundles = BTreeMap::new();
    for (pm, id) in &ids {
        d.complete(*id).await;
        bundles.insert(*pm, d.same_bundle_through_both(*id).await);
    }

    // a request's log, through either api
    let id = ids["npm"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = d.larder.text(&format!("/api/v1/requests/{id}/logs")).await;
        if log.contains("request complete") {
            break log;
        }
        assert!(Instant::now() < deadline, "no completion in the log: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let other = d
        .larder
        .http
        .get(format!("{}/api/v1/requests/{id}/logs", d.apis[1]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(other, log, "the log through the other api");

    // what each bundle holds
    let npm_bundle = untar(&bundles["npm"]);
    let pkg = &fx.npm.tree[0].pkg;
    assert_eq!(
        npm_bundle
            .get(&format!("deps/npm/{}", pkg.tarball_path()))
            .cloned()
            .flatten()
            .as_deref(),
        Some(&pkg.tgz[..]),
        "{:?}",
        npm_bundle.keys()
    );
    let sub = untar(&bundles["git-submodule"]);
    assert_eq!(
        sub["app/vendor/lib/lib.txt"].as_deref(),
        Some(&b"library v1"[..])
    );

    // HEAD and Range of a bundle, through each api
    let whole = &bundles["npm"];
    for api in &d.apis {
        let url = format!("{api}/api/v1/requests/{}/download", ids["npm"]);
        let head = d.larder.http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD through {api}");
        assert_eq!(
            header(&head, "content-length"),
            Some(whole.len().to_string()),
            "HEAD through {api}"
        );
        let (from, to) = (10usize, whole.len() / 2);
        let resp = d
            .larder
            .http
            .get(&url)
            .header("Range", format!("bytes={from}-{to}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "Range through {api}");
        assert_eq!(
            header(&resp, "content-range"),
            Some(format!("bytes {from}-{to}/{}", whole.len())),
            "Range through {api}"
        );
        let part = resp.bytes().await.unwrap();
        assert!(
            part[..] == whole[from..=to],
            "the range through {api} is not the bundle's bytes"
        );
    }

    // a stored file of each repository, through both apis
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    d.repo_file_through_both(ids["npm"], &format!("npm/{}", pkg.tarball_path()), &pkg.tgz)
        .await;
    for pm in ["yarn", "pnpm"] {
        d.repo_file_through_both(
            ids[pm],
            "npm/a/-/a-1.0.0.tgz",
            &read(fx.registry.root.join("a/-/a-1.0.0.tgz")),
        )
        .await;
    }
    d.repo_file_through_both(
        ids["gomod"],
        "gomod/example.com/m0/@v/v1.0.0.zip",
        &read(
            fx.gomod
                .project
                .upstream
                .root
                .join("example.com/m0/@v/v1.0.0.zip"),
        ),
    )
    .await;
    let krate = &fx.cargo.built[0];
    d.repo_file_through_both(
        ids["cargo"],
        &format!(
            "cargo/api/v1/crates/{}/{}/download",
            krate.name, krate.version
        ),
        &krate.bytes,
    )
    .await;
    d.repo_file_through_both(
        ids["rubygems"],
        "rubygems/gems/rack-1.0.0.gem",
        &fx.gems.gem,
    )
    .await;
    // pip: the first file its simple page links to
    let dist = &fx.pip.files[0];
    let token = d.token(ids["pip"]).await;
    let page_url = format!(
        "{}/repos/{}/t/{token}/pip/simple/{}/",
        d.apis[1],
        ids["pip"],
        crate::support::pip_fixtures::normalize_name(&dist.name)
    );
    let page: Value = d
        .larder
        .http
        .get(&page_url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file_url = page["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["filename"] == dist.filename.as_str()))
        .and_then(|f| f["url"].as_str())
        .unwrap_or_else(|| panic!("{} not on {page_url}: {page}", dist.filename))
        .to_string();
    let file_url = reqwest::Url::parse(&page_url)
        .unwrap()
        .join(&file_url)
        .unwrap();
    let marker = format!("/repos/{}/t/{token}/", ids["pip"]);
    let path = file_url.path();
    let rel = &path[path.find(&marker).expect("a repository URL") + marker.len()..];
    d.repo_file_through_both(ids["pip"], rel, &read(dist.path.clone()))
        .await;

    // the bucket: every package manager's files and the bundles, each with its sha256
    let keys = d.keys();
    for prefix in [
        "deps/npm/",
        "deps/pip/",
        "deps/gomod/",
        "deps/cargo/",
        "deps/rubygems/",
        "bundles/sha256/",
    ] {
        assert!(
            keys.iter().any(|k| k.starts_with(prefix)),
            "nothing below {prefix} in the bucket: {keys:?}"
        );
    }
    every_object_carries_its_sha256(&d, &keys);
    d.nothing_stored_on_disk();
}

/// Real clients install from the per-request repository of the api that did not take the
/// request (the hand-back pointed there), no directory shared: `npm ci` a request submitted
/// through the first api from the second's registry, `pip install` a request submitted through
/// the second from the first's index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_install_on_s3_through_the_api_that_did_not_take_the_request() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm(&tmp.path().join("npm"), 4).await;
    let pip = crate::support::projects::pip(&tmp.path().join("pip"), 2, true).await;
    npm.project.configure(&mut d.larder);
    pip.project.configure(&mut d.larder);
    d.start().await;
    let id = d.submit_at(0, npm.project.body()).await;
    let pip_id = d.submit_at(1, pip.project.body()).await;
    d.complete(id).await;
    d.complete(pip_id).await;

    // pip: PIP_INDEX_URL, read through the first api and pointed at it
    let (status, env) = get_json(
        &d.larder,
        &format!(
            "{}/api/v1/requests/{pip_id}/environment-variables",
            d.apis[0]
        ),
    )
    .await;
    assert_eq!(status, 200, "{env}");
    let index_url = env["PIP_INDEX_URL"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no PIP_INDEX_URL: {env}"))
        .to_string();
    let host = |url: &str| url.trim_start_matches("http://").to_string();
    assert!(index_url.contains(&host(&d.apis[0])) || index_url.contains(&host(&d.apis[1])));
    let index_url = index_url.replace(&host(&d.apis[1]), &host(&d.apis[0]));
    let home = tmp.path().join("home-pip");
    std::fs::create_dir_all(&home).unwrap();
    let py = crate::support::clients::venv(&tmp.path().join("venv"), &home);
    let reqs = pip.project.repo.dir.join("requirements.txt");
    let (ok, out) = crate::support::clients::pip(
        &py,
        &home,
        &[("PIP_INDEX_URL", &index_url)],
        &[
            "install",
            "--only-binary",
            ":all:",
            "-r",
            reqs.to_str().unwrap(),
        ],
    );
    assert!(
        ok,
        "pip install through the other api's index failed:\n{out}\n{}",
        d.larder.logs()
    );
    for f in pip.files.iter().filter(|f| f.filename.ends_with(".whl")) {
        assert!(
            out.contains(&format!("{}-{}", f.name, f.version)),
            "{} not installed:\n{out}",
            f.filename
        );
    }

    // the hand-back, read through the second api and pointed at it
    let (status, files) = get_body(d.larder.http.get(format!(
        "{}/api/v1/requests/{id}/configuration-files",
        d.apis[1]
    )))
    .await;
    let files: Value = match files {
        Ok(body) if status == 200 => serde_json::from_slice(&body).unwrap(),
        other => panic!(
            "configuration files through {}: {status} {:?}\n{}",
            d.apis[1],
            other.map(|b| String::from_utf8_lossy(&b).into_owned()),
            d.larder.logs()
        ),
    };
    let work = tmp.path().join("work");
    copy_dir(&npm.project.repo.dir, &work);
    for f in files.as_array().unwrap() {
        use base64::Engine;
        let content = base64::engine::general_purpose::STANDARD
            .decode(
                f["content"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no content: {files}")),
            )
            .unwrap();
        // `//host:port/…` (an .npmrc's token line) as well as URLs
        let host = |url: &str| url.trim_start_matches("http:").to_string();
        let text = String::from_utf8(content)
            .unwrap()
            .replace(&host(&d.apis[0]), &host(&d.apis[1]));
        assert!(!text.contains(&host(&d.apis[0])));
        let path = f["path"].as_str().unwrap();
        write(&work.join(path.strip_prefix("app/").unwrap()), text);
    }
    let npmrc = std::fs::read_to_string(work.join(".npmrc")).unwrap();
    assert!(npmrc.contains(&d.apis[1]), "{npmrc}");
    let (ok, out) = npm_client(
        &work,
        &tmp.path().join("home"),
        &["ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        &[],
    );
    assert!(
        ok,
        "npm ci through the other api's registry failed:\n{out}\n{}",
        d.larder.logs()
    );
    let mut want: Vec<String> = npm
        .tree
        .iter()
        .map(|e| format!("{}@{}", e.location, e.pkg.version))
        .collect();
    want.sort();
    assert_eq!(crate::support::clients::npm_installed(&work), want);
    d.nothing_stored_on_disk();
}

async fn get_json(larder: &Larder, url: &str) -> (u16, Value) {
    let resp = larder.http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Both apis still answer (a damaged object cuts a response short, never the process).
async fn both_apis_up(d: &S3Larder) {
    for api in &d.apis {
        let resp = d.larder.http.get(format!("{api}/healthz")).send().await;
        assert!(
            resp.is_ok_and(|r| r.status().is_success()),
            "{api} no longer answers:\n{}",
            d.larder.logs()
        );
    }
}

/// The index (in `d.workers`) of the worker whose log shows it took request `id`.
fn worker_of(d: &S3Larder, id: i64) -> Option<usize> {
    let taken = |log: &str| {
        log.lines().any(|l| {
            (l.contains(&format!("request_id={id}")) || l.contains(&format!("request{{id={id}")))
                && (l.contains("claimed") || l.contains("Fetching"))
        })
    };
    d.workers.iter().position(|&index| {
        let log = std::fs::read_to_string(d.larder.data.path().join(format!("worker-{index}.log")))
            .unwrap_or_default();
        taken(&log)
    })
}

/// A worker SIGKILLed while it waits on a stalled upstream: the other worker takes the request
/// over once the lease expires and completes it; its bundle is served through both apis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_request_on_s3_leaves_it_to_the_other_worker() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm(&tmp.path().join("npm"), 3).await;
    npm.project.configure(&mut d.larder);
    d.larder
        .env
        .insert("LARDER_WORKER_CONCURRENCY".into(), "1".into());
    d.start().await;

    // the upstream answers nothing: the worker that takes the request hangs downloading
    let upstream = &npm.project.upstream;
    upstream.hold();
    let id = d.submit_at(0, npm.project.body()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !upstream.requests().iter().any(|r| r.ends_with(".tgz")) {
        assert!(
            Instant::now() < deadline,
            "no download started:\n{}",
            d.larder.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let victim = loop {
        if let Some(w) = worker_of(&d, id) {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "no worker's log names request {id}:\n{}",
            d.larder.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    d.larder.kill(d.workers[victim]);
    let (_, r) = get_json(&d.larder, &format!("{}/api/v1/requests/{id}", d.apis[1])).await;
    assert_eq!(r["state"], "in_progress", "{r}");
    upstream.release();
    let done = d.complete(id).await;
    let claims = done["state_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state_reason"] == "Fetching the application source")
        .count();
    assert!(claims >= 2, "taken over, not finished by the first: {done}");
    let bundle = untar(&d.same_bundle_through_both(id).await);
    for entry in &npm.tree {
        let path = format!("deps/npm/{}", entry.pkg.tarball_path());
        assert_eq!(
            bundle.get(&path).cloned().flatten().as_deref(),
            Some(&entry.pkg.tgz[..]),
            "{path}"
        );
    }
    d.nothing_stored_on_disk();
}

/// An npm tarball overwritten in the bucket with other bytes, its `sha256` metadata kept: no api
/// serves it whole from a repository; a new request (on workers with empty caches) completes with
/// the good bytes, fetched again from the upstream and stored again, and the repository then
/// serves the good bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_dependency_object_on_s3_is_never_served_and_is_fetched_again() {
    let Some((mut d, npm, _tmp)) = started_with_npm(3).await else {
        return;
    };
    let id = d.submit_at(0, npm.project.body()).await;
    d.complete(id).await;

    // two tarballs damaged: one read by an api first, the other by a worker first
    let served = &npm.tree[0].pkg;
    let refetched = &npm.tree[1].pkg;
    for pkg in [served, refetched] {
        let key = format!("deps/npm/{}", pkg.tarball_path());
        assert_eq!(d.object(&key).0, pkg.tgz, "{key} as stored");
        let mut bad = pkg.tgz.clone();
        let middle = bad.len() / 2;
        bad[middle] ^= 0xff;
        d.corrupt(&key, &bad);
    }

    // (a) neither api serves the damaged tarball whole
    let path = format!("npm/{}", served.tarball_path());
    for api in &d.apis {
        let (status, body) = d.repo_file(api, id, &path).await;
        eprintln!(
            "the corrupted {path} through {api}: {status}, {:?}",
            body.as_ref().map(Vec::len)
        );
        if let (200, Ok(body)) = (status, &body) {
            panic!(
                "{api} served the corrupted {path} whole ({} bytes, {})",
                body.len(),
                if *body == served.tgz {
                    "the good bytes"
                } else {
                    "the bad bytes"
                }
            );
        }
    }

    both_apis_up(&d).await;

    // (b) workers with empty caches: a new request of the same lockfile (another commit, so that
    // no bundle is reused by its recipe) needs both tarballs
    d.fresh_workers();
    npm.project
        .repo
        .write("NOTE", "another commit, the same lockfile\n");
    let commit = npm.project.repo.commit("again");
    npm.project.upstream.clear_requests();
    let mut body = npm.project.body();
    body["ref"] = json!(commit);
    let again = d.submit_at(1, body).await;
    d.complete(again).await;
    let bundle = untar(&d.same_bundle_through_both(again).await);
    for pkg in [served, refetched] {
        let path = format!("deps/npm/{}", pkg.tarball_path());
        assert_eq!(
            bundle.get(&path).cloned().flatten().as_deref(),
            Some(&pkg.tgz[..]),
            "{path} in the new bundle"
        );
    }
    let hits = npm.project.upstream.hits();
    for pkg in [served, refetched] {
        let path = format!("/{}", pkg.tarball_path());
        assert!(
            hits.contains_key(&path),
            "{path} was not downloaded again: {hits:?}"
        );
    }
    // stored again, good, and served good by both apis, for both requests
    for pkg in [served, refetched] {
        let key = format!("deps/npm/{}", pkg.tarball_path());
        let (bytes, sha) = d.object(&key);
        assert!(bytes == pkg.tgz, "{key} is still damaged in the bucket");
        assert_eq!(sha, Some(sha256_hex(&pkg.tgz)));
        for request in [again, id] {
            d.repo_file_through_both(request, &format!("npm/{}", pkg.tarball_path()), &pkg.tgz)
                .await;
        }
    }
}

/// A bundle overwritten in the bucket with other bytes, its `sha256` metadata kept: its download
/// fails through both apis (an error status or a body cut short), never the bad bytes whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_bundle_on_s3_is_never_downloaded_whole() {
    let Some((d, npm, _tmp)) = started_with_npm(2).await else {
        return;
    };
    let id = d.submit_at(0, npm.project.body()).await;
    d.complete(id).await;
    let good = d.same_bundle_through_both(id).await;
    let key = format!("bundles/sha256/{}.tar.gz", sha256_hex(&good));
    let keys = d.keys();
    assert!(keys.contains(&key), "{key} not in the bucket: {keys:?}");
    let mut bad = good.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0xff;
    d.corrupt(&key, &bad);
    for api in &d.apis {
        let (status, body) = d.bundle_at(api, id).await;
        eprintln!(
            "the corrupted bundle through {api}: {status}, {:?}",
            body.as_ref().map(Vec::len)
        );
        if let (200, Ok(body)) = (status, &body) {
            panic!(
                "{api} served the corrupted bundle whole ({} bytes, {})",
                body.len(),
                if *body == good {
                    "the good bytes"
                } else {
                    "the bad bytes"
                }
            );
        }
    }
    both_apis_up(&d).await;
}

/// A dependency and a bundle larger than two 8 MiB parts (multipart uploads): stored whole with
/// their sha256, no upload left incomplete, streamed whole through both apis (an api's peak
/// memory does not grow by what it serves), and a Range across a part boundary is the bundle's
/// bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_several_multipart_parts_are_streamed_whole_through_s3_and_both_apis() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let npm =
        crate::support::projects::npm_with_payload(&tmp.path().join("npm"), 1, 17 << 20).await;
    npm.project.configure(&mut d.larder);
    d.start().await;
    let id = d.submit_at(1, npm.project.body()).await;
    d.complete(id).await;
    let pkg = &npm.tree[0].pkg;
    assert!(pkg.tgz.len() > 16 << 20, "{} bytes", pkg.tgz.len());

    let key = format!("deps/npm/{}", pkg.tarball_path());
    let (stored, sha) = d.object(&key);
    assert!(stored == pkg.tgz, "{key} is not the upstream's tarball");
    assert_eq!(sha, Some(sha256_hex(&pkg.tgz)), "{key}");
    let bundle = d.same_bundle_through_both(id).await;
    assert!(bundle.len() > 16 << 20);
    let (stored, sha) = d.object(&format!("bundles/sha256/{}.tar.gz", sha256_hex(&bundle)));
    assert!(
        stored == bundle,
        "the stored bundle is not the one downloaded"
    );
    assert_eq!(sha, Some(sha256_hex(&bundle)));
    let uploads = d.moto.multipart_uploads();
    assert!(uploads.is_empty(), "uploads left incomplete: {uploads:?}");

    d.repo_file_through_both(id, &format!("npm/{}", pkg.tarball_path()), &pkg.tgz)
        .await;
    // streamed: an api's peak memory does not grow by what it serves
    let token = d.token(id).await;
    for (api, index) in d.apis.iter().zip(&d.api_indices) {
        let pid = d.larder.pid(*index);
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let before = vm_hwm_kib(pid);
        let mut served = 0;
        for url in [
            format!("{api}/api/v1/requests/{id}/download"),
            format!("{api}/repos/{id}/t/{token}/npm/{}", pkg.tarball_path()),
        ] {
            let mut resp = d.larder.http.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            while let Some(chunk) = resp.chunk().await.unwrap() {
                served += chunk.len();
            }
        }
        assert_eq!(served, bundle.len() + pkg.tgz.len());
        let grew_mib = vm_hwm_kib(pid).saturating_sub(before) / 1024;
        eprintln!(
            "{api} served {} MiB; its peak grew {grew_mib} MiB",
            served >> 20
        );
        assert!(
            grew_mib < 12,
            "{api} grew {grew_mib} MiB serving {} MiB",
            served >> 20
        );
    }
    let (from, to) = ((8 << 20) - 1000, (8 << 20) + 1000);
    for api in &d.apis {
        let resp = d
            .larder
            .http
            .get(format!("{api}/api/v1/requests/{id}/download"))
            .header("Range", format!("bytes={from}-{to}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "Range through {api}");
        assert_eq!(
            header(&resp, "content-range"),
            Some(format!("bytes {from}-{to}/{}", bundle.len()))
        );
        let part = resp.bytes().await.unwrap();
        assert!(part[..] == bundle[from..=to], "the range through {api}");
    }
    d.nothing_stored_on_disk();
}

/// Two requests of the same lockfile (of one commit, or of two) taken at once by the two
/// workers, each with a cache of its own, both waiting on the upstream, then downloading at once:
/// both complete, and every dependency is one object in the bucket (the upstream's bytes, with
/// their sha256) that both requests' repositories serve through both apis. Returns the two
/// requests' bundles.
async fn race(
    d: &mut S3Larder,
    npm: &crate::support::projects::Npm,
    same_commit: bool,
) -> (Vec<u8>, Vec<u8>) {
    let body = |note: &str| {
        let mut body = npm.project.body();
        if !same_commit {
            npm.project.repo.write("NOTE", note);
            body["ref"] = json!(npm.project.repo.commit(note));
        }
        body
    };
    let (one, two) = (body("one"), body("two"));
    let upstream = &npm.project.upstream;
    upstream.hold();
    let first = d.submit_at(0, one).await;
    let second = d.submit_at(1, two).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (worker_of(d, first), worker_of(d, second));
        if let (Some(a), Some(b)) = (a, b) {
            assert_ne!(a, b, "one worker took both requests");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers did not take one request each:\n{}",
            d.larder.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    upstream.release();
    d.complete(first).await;
    d.complete(second).await;
    let bundles = (
        d.same_bundle_through_both(first).await,
        d.same_bundle_through_both(second).await,
    );

    let keys = d.keys();
    for entry in &npm.tree {
        let key = format!("deps/npm/{}", entry.pkg.tarball_path());
        assert_eq!(
            keys.iter().filter(|k| **k == key).count(),
            1,
            "{key} in {keys:?}"
        );
        let (bytes, sha) = d.object(&key);
        assert!(bytes == entry.pkg.tgz, "{key} is not the upstream's bytes");
        assert_eq!(sha, Some(sha256_hex(&entry.pkg.tgz)), "{key}");
        for id in [first, second] {
            d.repo_file_through_both(
                id,
                &format!("npm/{}", entry.pkg.tarball_path()),
                &entry.pkg.tgz,
            )
            .await;
        }
    }
    let uploads = d.moto.multipart_uploads();
    assert!(uploads.is_empty(), "uploads left incomplete: {uploads:?}");
    every_object_carries_its_sha256(d, &keys);
    bundles
}

async fn racing_deployment() -> Option<(S3Larder, tempfile::TempDir, crate::support::projects::Npm)>
{
    let mut d = S3Larder::new()?;
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm(&tmp.path().join("npm"), 4).await;
    npm.project.configure(&mut d.larder);
    d.larder
        .env
        .insert("LARDER_WORKER_CONCURRENCY".into(), "1".into());
    d.start().await;
    Some((d, tmp, npm))
}

/// Two workers storing the same dependencies at once, for two commits of one lockfile: they
/// converge on one object each ([`race`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_storing_the_same_dependencies_at_once_converge_on_one_object() {
    let Some((mut d, _tmp, npm)) = racing_deployment().await else {
        return;
    };
    race(&mut d, &npm, false).await;
}

/// Two workers taking two requests of the same commit, new to the store, at once: each fetches
/// the commit and both put its source archive; both requests complete ([`race`]) with one
/// bundle, one blob in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_fetching_the_same_new_commit_at_once_both_complete_it() {
    let Some((mut d, _tmp, npm)) = racing_deployment().await else {
        return;
    };
    let (one, other) = race(&mut d, &npm, true).await;
    assert!(one == other, "the same commit made two different bundles");
    let blobs = d
        .keys()
        .iter()
        .filter(|k| k.starts_with("bundles/sha256/") && k.ends_with(".tar.gz"))
        .count();
    assert_eq!(blobs, 1, "one bundle blob");
}

/// `larder cleanup` on an object store: a stale request's bundle download is refused (400, as on
/// the local store) and its repository answers 410 through both apis, and its bundle blob, used
/// by no other request, leaves the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_requests_bundle_leaves_the_bucket_and_both_apis_refuse_it() {
    let Some((mut d, npm, _tmp)) = started_with_npm(2).await else {
        return;
    };
    let id = d.submit_at(0, npm.project.body()).await;
    d.complete(id).await;
    let bundle = d.same_bundle_through_both(id).await;
    let blob = format!("bundles/sha256/{}.tar.gz", sha256_hex(&bundle));
    assert!(d.keys().contains(&blob), "{blob} in {:?}", d.keys());
    let token = d.token(id).await;

    d.cleanup();
    let pkg = &npm.tree[0].pkg;
    for api in &d.apis {
        let (status, _) = d.bundle_at(api, id).await;
        assert_eq!(status, 400, "the stale bundle through {api}");
        let (status, _) = get_body(d.larder.http.get(format!(
            "{api}/repos/{id}/t/{token}/npm/{}",
            pkg.tarball_path()
        )))
        .await;
        assert_eq!(status, 410, "the stale repository through {api}");
    }
    let keys = d.keys();
    assert!(!keys.contains(&blob), "{blob} stays in the bucket");
    // the dependencies stay for the next request
    assert!(
        keys.contains(&format!("deps/npm/{}", pkg.tarball_path())),
        "{keys:?}"
    );
}

/// Workers with empty caches take from the bucket what another worker stored: a second request
/// of the same commit downloads nothing from the upstream and makes the same bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_an_empty_cache_takes_what_another_stored_and_downloads_nothing() {
    let Some((mut d, npm, _tmp)) = started_with_npm(3).await else {
        return;
    };
    let first = d.submit_at(0, npm.project.body()).await;
    d.complete(first).await;
    let bundle = d.same_bundle_through_both(first).await;

    d.fresh_workers();
    let upstream = &npm.project.upstream;
    upstream.clear_requests();
    let second = d.submit_at(1, npm.project.body()).await;
    d.complete(second).await;
    let downloads: Vec<String> = upstream
        .requests()
        .into_iter()
        .filter(|r| r.ends_with(".tgz"))
        .collect();
    assert_eq!(downloads, Vec::<String>::new(), "downloaded again");
    assert!(
        d.same_bundle_through_both(second).await == bundle,
        "the same commit made another bundle"
    );
}

/// A stored configuration file (npm's registry lockfile) and a source archive overwritten in
/// the bucket with other bytes, their `sha256` kept: neither api hands the damaged configuration
/// file out, and workers with empty caches fetch the commit again: a new request of the same
/// commit completes with the commit as its `app/`, the source object is whole again, and the
/// new request's configuration files (its own: they name its repositories) are handed out
/// through both apis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_configuration_file_or_source_archive_on_s3_is_never_used() {
    let Some((mut d, npm, _tmp)) = started_with_npm(2).await else {
        return;
    };
    let id = d.submit_at(0, npm.project.body()).await;
    d.complete(id).await;
    let keys = d.keys();
    let find = |prefix: &str| -> String {
        let found: Vec<&String> = keys.iter().filter(|k| k.starts_with(prefix)).collect();
        assert_eq!(found.len(), 1, "one key below {prefix}: {keys:?}");
        found[0].clone()
    };
    let config = find("config-files/");
    let source = find("sources/");
    for key in [&config, &source] {
        let (mut bytes, _) = d.object(key);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        d.corrupt(key, &bytes);
    }

    for api in &d.apis {
        let (status, body) = get_body(
            d.larder
                .http
                .get(format!("{api}/api/v1/requests/{id}/configuration-files")),
        )
        .await;
        eprintln!(
            "the corrupted configuration file through {api}: {status}, {:?}",
            body.as_ref().map(Vec::len)
        );
        if let (200, Ok(body)) = (status, &body) {
            panic!(
                "{api} handed out the configuration files with a damaged one: {}",
                String::from_utf8_lossy(body)
            );
        }
    }
    both_apis_up(&d).await;

    d.fresh_workers();
    let again = d.submit_at(1, npm.project.body()).await;
    d.complete(again).await;
    let bundle = d.same_bundle_through_both(again).await;
    assert_app_is_commit(&bundle, &npm.project.repo.dir, &npm.project.commit);
    // the new request's configuration files, whole through both apis
    for api in &d.apis {
        let (status, body) = get_body(
            d.larder
                .http
                .get(format!("{api}/api/v1/requests/{again}/configuration-files")),
        )
        .await;
        assert_eq!(
            status,
            200,
            "the configuration files through {api}: {body:?}\n{}",
            d.larder.logs()
        );
        let files: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        let paths: Vec<&str> = files
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"app/package-lock.json"), "{paths:?}");
    }
    every_object_carries_its_sha256(&d, &[source]);
}

/// Two requests of one commit share one bundle blob: `larder cleanup` making the first stale
/// leaves the blob to the second (downloaded whole through both apis); once the second is stale
/// too, the blob leaves the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_blob_shared_by_two_requests_stays_until_the_last_is_stale() {
    let Some((mut d, npm, _tmp)) = started_with_npm(2).await else {
        return;
    };
    let first = d.submit_at(0, npm.project.body()).await;
    d.complete(first).await;
    let second = d.submit_at(1, npm.project.body()).await;
    d.complete(second).await;
    let bundle = d.same_bundle_through_both(first).await;
    assert!(d.same_bundle_through_both(second).await == bundle);
    let blob = format!("bundles/sha256/{}.tar.gz", sha256_hex(&bundle));
    assert!(d.keys().contains(&blob), "{blob} in {:?}", d.keys());

    // the second was updated a day from now: only the first is past a lifetime of 0 days
    let mut conn = AsyncPgConnection::establish(&d.larder.database_url)
        .await
        .unwrap();
    diesel::sql_query("UPDATE requests SET updated = updated + interval '1 day' WHERE id = $1")
        .bind::<BigInt, _>(second)
        .execute(&mut conn)
        .await
        .unwrap();
    d.cleanup();
    for api in &d.apis {
        assert_eq!(d.bundle_at(api, first).await.0, 400, "{api}");
    }
    assert!(
        d.keys().contains(&blob),
        "the second's blob left the bucket"
    );
    assert!(d.same_bundle_through_both(second).await == bundle);

    diesel::sql_query("UPDATE requests SET updated = updated - interval '2 days' WHERE id = $1")
        .bind::<BigInt, _>(second)
        .execute(&mut conn)
        .await
        .unwrap();
    d.cleanup();
    for api in &d.apis {
        assert_eq!(d.bundle_at(api, second).await.0, 400, "{api}");
    }
    assert!(!d.keys().contains(&blob), "{blob} stays in the bucket");
}

/// Yarn Berry on S3 (its Yarn cache zips made once, kept as bundle members in the store): its
/// bundle is identical through both apis and carries the cache; workers with empty caches then
/// make a request of another commit of the same lockfile from the bucket alone (nothing
/// downloaded from the upstream) and the same cache zips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_berry_cache_zips_made_by_one_worker_serve_the_next_from_s3() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let berry = crate::yarn_berry::fixture().await;
    berry.repo.write("NOTE", "first\n");
    let first_commit = berry.repo.commit("first");
    d.larder
        .env
        .insert("LARDER_NPM_REGISTRY".into(), berry.upstream.url.clone());
    d.start().await;
    let body =
        |commit: &str| json!({"repo": berry.repo.url(), "ref": commit, "pkg_managers": ["yarn"]});
    let first = d.submit_at(0, body(&first_commit)).await;
    d.complete(first).await;
    let zips = |bundle: &[u8]| -> BTreeMap<String, Vec<u8>> {
        untar(bundle)
            .into_iter()
            .filter(|(k, _)| k.starts_with("deps/yarn-berry/cache/") && k.ends_with(".zip"))
            .map(|(k, v)| (k, v.unwrap()))
            .collect()
    };
    let made = zips(&d.same_bundle_through_both(first).await);
    assert!(!made.is_empty(), "no Yarn cache zip in the bundle");
    d.repo_file_through_both(
        first,
        "npm/a/-/a-1.0.0.tgz",
        &std::fs::read(berry.tmp.path().join("upstream/a/-/a-1.0.0.tgz")).unwrap(),
    )
    .await;

    d.fresh_workers();
    berry.repo.write("NOTE", "second\n");
    let second_commit = berry.repo.commit("second");
    berry.upstream.clear_requests();
    let second = d.submit_at(1, body(&second_commit)).await;
    d.complete(second).await;
    let downloads: Vec<String> = berry
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.ends_with(".tgz"))
        .collect();
    assert_eq!(downloads, Vec::<String>::new(), "downloaded again");
    assert_eq!(zips(&d.same_bundle_through_both(second).await), made);
}

/// Workers whose cache of the object store is held to nothing (LARDER_WORK_CACHE_SIZE=0): the
/// worker that ran the first request empties its cache after it, and the next requests (one at
/// least on an emptied cache) still complete whole, taking from the bucket what the cache let
/// go: the upstream is asked for each tarball once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_a_cache_held_to_nothing_take_everything_from_s3_again() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm(&tmp.path().join("npm"), 3).await;
    npm.project.configure(&mut d.larder);
    d.larder
        .env
        .insert("LARDER_WORK_CACHE_SIZE".into(), "0".into());
    d.start().await;
    for round in 0..3 {
        npm.project.repo.write("NOTE", &format!("round {round}\n"));
        let commit = npm.project.repo.commit("another round");
        let mut body = npm.project.body();
        body["ref"] = json!(commit);
        let id = d.submit_at(round % 2, body).await;
        d.complete(id).await;
        let bundle = untar(&d.same_bundle_through_both(id).await);
        for entry in &npm.tree {
            let path = format!("deps/npm/{}", entry.pkg.tarball_path());
            assert_eq!(
                bundle.get(&path).cloned().flatten().as_deref(),
                Some(&entry.pkg.tgz[..]),
                "{path} in round {round}"
            );
        }
        if round == 0 {
            // the worker that ran it pruned its cache before taking another job
            let deadline = Instant::now() + Duration::from_secs(20);
            while !d
                .larder
                .logs()
                .contains("pruned the work directory's cache of the object store")
            {
                assert!(
                    Instant::now() < deadline,
                    "no worker pruned its cache:\n{}",
                    d.larder.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for (path, hits) in npm.project.upstream.hits() {
        if path.ends_with(".tgz") {
            assert_eq!(hits, 1, "{path} downloaded {hits} times");
        }
    }
}

/// A worker frozen (SIGSTOP) while it waits on a stalled upstream keeps its broker connection:
/// only its lease can tell. The other worker takes the request over once the lease expires and
/// completes it; the old attempt, woken, changes nothing: not the request, not its bundle, not
/// an object in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_workers_request_on_s3_is_taken_over_once_its_lease_expires() {
    let Some(mut d) = S3Larder::new() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let npm = crate::support::projects::npm(&tmp.path().join("npm"), 3).await;
    npm.project.configure(&mut d.larder);
    d.larder
        .env
        .insert("LARDER_WORKER_CONCURRENCY".into(), "1".into());
    d.start().await;

    let upstream = &npm.project.upstream;
    upstream.hold();
    let id = d.submit_at(1, npm.project.body()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let frozen = loop {
        if let (Some(w), true) = (
            worker_of(&d, id),
            upstream.requests().iter().any(|r| r.ends_with(".tgz")),
        ) {
            break d.workers[w];
        }
        assert!(
            Instant::now() < deadline,
            "no worker started downloading:\n{}",
            d.larder.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let signal = |sig: &str| {
        let pid = d.larder.pid(frozen).to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    upstream.release();
    let done = d.complete(id).await;
    let bundle = d.same_bundle_through_both(id).await;
    let keys = d.keys();

    signal("-CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, after) = get_json(&d.larder, &format!("{}/api/v1/requests/{id}", d.apis[0])).await;
    assert_eq!(after["state"], "complete", "{after}");
    assert_eq!(after["state_history"], done["state_history"], "{after}");
    assert!(d.same_bundle_through_both(id).await == bundle);
    let now = d.keys();
    assert_eq!(now, keys, "the old attempt changed the bucket");
    every_object_carries_its_sha256(&d, &now);
}
