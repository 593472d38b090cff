//! Test support: a real Larder (the `larder` binary) against the real PostgreSQL and RabbitMQ,
//! with a fresh database, queue and store per test; git fixtures; a TCP proxy the test controls.
#![allow(dead_code)]

pub mod browser;
pub mod cargo_fixtures;
pub mod clients;
pub mod gomod_fixtures;
pub mod npm_fixtures;
pub mod pip_fixtures;
pub mod projects;
pub mod rubygems_fixtures;
pub mod s3;
pub mod sbom;
pub mod tls;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Tests that measure the machine (a 1,000-request burst, a 500 MB file) run alone in this one
/// test binary: every deployment holds this lock shared, such a test holds it exclusively.
static MACHINE: std::sync::LazyLock<Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Arc::default);

thread_local! {
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Held by a test that must have the machine to itself; its own deployments start freely.
pub struct Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>);

/// Wait until no other test's deployment runs, and keep others from starting.
pub async fn alone() -> Alone {
    let guard = MACHINE.clone().write_owned().await;
    ALONE.with(|a| a.set(true));
    Alone(guard)
}

impl Drop for Alone {
    fn drop(&mut self) {
        ALONE.with(|a| a.set(false));
    }
}

/// A deployment's share of the machine: waits while a test runs alone.
fn share_machine() -> Option<tokio::sync::OwnedRwLockReadGuard<()>> {
    if ALONE.with(|a| a.get()) {
        return None;
    }
    loop {
        if let Ok(guard) = MACHINE.clone().try_read_owned() {
            return Some(guard);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Set in the run `embedded.rs` makes in a network namespace of its own (and only there).
pub const IN_NAMESPACE: &str = "LARDER_TEST_IN_NAMESPACE";

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}_{}", std::process::id(), free_port())
}

/// `LARDER_TEST_DATABASE=sqlite`: the deployments of this run use the embedded SQLite database.
pub fn embedded_database() -> bool {
    std::env::var("LARDER_TEST_DATABASE").is_ok_and(|d| d == "sqlite")
}

/// A Larder deployment for one test.
pub struct Larder {
    pub url: String,
    pub data: tempfile::TempDir,
    pub database_url: String,
    pub queue: String,
    pub env: BTreeMap<String, String>,
    children: Vec<(String, Child)>,
    pub http: reqwest::Client,
    pub token: Option<String>,
    _machine: Option<tokio::sync::OwnedRwLockReadGuard<()>>,
}

impl Larder {
    /// A deployment's configuration without any process started.
    pub fn new() -> Self {
        let machine = share_machine();
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let data = tempfile::tempdir().unwrap();
        let database_url = format!(
            "postgres://postgres@127.0.0.1:5432/{}",
            unique("larder_test")
        );
        let queue = unique("larder_test");
        let mut env = BTreeMap::new();
        // `LARDER_TEST_DATABASE=sqlite`: every command of the deployment keeps its records in
        // the embedded database of its data directory, as one without PostgreSQL does
        if !embedded_database() {
            env.insert("LARDER_DATABASE_URL".into(), database_url.clone());
        }
        env.insert("LARDER_AMQP_URL".into(), AMQP.into());
        env.insert("LARDER_QUEUE".into(), queue.clone());
        env.insert(
            "LARDER_DATA_DIR".into(),
            data.path().to_string_lossy().into_owned(),
        );
        env.insert("LARDER_LISTEN".into(), format!("127.0.0.1:{port}"));
        env.insert("LARDER_PUBLIC_URL".into(), url.clone());
        env.insert("LARDER_ALLOW_LOCAL_REPOS".into(), "true".into());
        // fixture upstreams listen on loopback; tests of the outbound policy turn this off
        env.insert("LARDER_ALLOW_PRIVATE_UPSTREAMS".into(), "true".into());
        env.insert("LARDER_LOG".into(), "info,lapin=warn".into());
        Self {
            url,
            data,
            database_url,
            queue,
            env,
            children: Vec::new(),
            // idle connections are dropped before the server's keep-alive (5 s) can close one
            // under a request being sent
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            token: None,
            _machine: machine,
        }
    }

    /// `larder serve` (api + worker) and wait until it answers.
    pub async fn start() -> Self {
        if std::env::var_os(IN_NAMESPACE).is_some() {
            for port in [5432, 5672] {
                assert!(
                    std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                    "port {port} answers in the namespace"
                );
            }
        }
        let mut larder = Self::new();
        larder.spawn("serve", &[]);
        larder.wait_healthy().await;
        larder
    }

    /// Start `larder <cmd>` with this deployment's environment plus `extra`.
    pub fn spawn(&mut self, cmd: &str, extra: &[(&str, &str)]) -> usize {
        let log = std::fs::File::create(
            self.data
                .path()
                .join(format!("{cmd}-{}.log", self.children.len())),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_larder"));
        command
            .arg(cmd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.data.path());
        // `LARDER_TEST_QUEUE=in-process` (or an embedded database): every `serve` queues its
        // jobs itself, as one without RabbitMQ does
        let in_process = cmd == "serve"
            && (embedded_database()
                || std::env::var("LARDER_TEST_QUEUE").is_ok_and(|q| q == "in-process"))
            && !extra.iter().any(|(k, _)| *k == "LARDER_AMQP_URL");
        for (k, v) in &self.env {
            if !(in_process && k == "LARDER_AMQP_URL") {
                command.env(k, v);
            }
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push((cmd.to_string(), child));
        self.children.len() - 1
    }

    /// The process id of a process started with `spawn` (for /proc/<pid>/status in benchmarks).
    pub fn pid(&self, index: usize) -> u32 {
        self.children[index].1.id()
    }

    /// SIGKILL a process started with `spawn`.
    pub fn kill(&mut self, index: usize) {
        let (_, child) = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
    }

    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(resp) = self.http.get(format!("{}/healthz", self.url)).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("larder did not become healthy; logs:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.data.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                out.push_str(&format!(
                    "== {}\n{}\n",
                    entry.path().display(),
                    std::fs::read_to_string(entry.path()).unwrap_or_default()
                ));
            }
        }
        out
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .auth(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The body of a page (`/ui/…`) as text, whatever its status.
    pub async fn page(&self, path: &str) -> String {
        self.auth(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .auth(self.http.post(format!("{}{path}", self.url)))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .auth(self.http.patch(format!("{}{path}", self.url)))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Submit; panics unless the api answers 201.
    pub async fn submit(&self, body: Value) -> i64 {
        let (status, created) = self.post("/api/v1/requests", &body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_i64().unwrap()
    }

    /// Poll until the request is final.
    pub async fn wait(&self, id: i64) -> Value {
        self.wait_until(id, Duration::from_secs(120), |r| {
            r["state"] != "in_progress"
        })
        .await
    }

    /// Submit `body` and wait: the request must fail as a client error whose reason contains
    /// `reason`; its final JSON.
    pub async fn fails_as_client_error(&self, body: Value, reason: &str) -> Value {
        let id = self.submit(body).await;
        let done = self.wait(id).await;
        assert_eq!(done["state"], "failed", "{done}");
        assert_eq!(done["error_origin"], "client", "{done}");
        let got = done["state_reason"].as_str().unwrap_or_default();
        assert!(got.contains(reason), "{reason:?} not in {done}");
        done
    }

    pub async fn wait_until(
        &self,
        id: i64,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, r) = self.get(&format!("/api/v1/requests/{id}")).await;
            assert_eq!(status, 200, "{r}");
            if done(&r) {
                return r;
            }
            if Instant::now() > deadline {
                panic!(
                    "request {id} did not get there in time: {r}\nlogs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A request's configuration files: path -> decoded content.
    pub async fn config_files(&self, id: i64) -> BTreeMap<String, Vec<u8>> {
        use base64::Engine;
        let (status, files) = self
            .get(&format!("/api/v1/requests/{id}/configuration-files"))
            .await;
        assert_eq!(status, 200, "{files}");
        files
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let content = base64::engine::general_purpose::STANDARD
                    .decode(f["content"].as_str().unwrap())
                    .unwrap();
                (f["path"].as_str().unwrap().to_string(), content)
            })
            .collect()
    }

    /// `larder cleanup` with a lifetime of 0 days: every finished request becomes stale.
    /// The npm registry token the request's `app/.npmrc` carries.
    pub async fn npm_token(&self, id: i64) -> String {
        npm_token_of(&self.config_files(id).await["app/.npmrc"])
    }

    pub fn expire_all(&self) {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_larder"))
                .arg("cleanup")
                .envs(&self.env)
                .env("LARDER_REQUEST_LIFETIME_DAYS", "0"),
        );
    }

    /// A text resource (a request's log, the docs page), whatever its status.
    pub async fn text(&self, path: &str) -> String {
        self.auth(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Download the bundle; returns (bytes, Digest header).
    pub async fn download(&self, id: i64) -> (Vec<u8>, String) {
        let resp = self
            .http
            .get(format!("{}/api/v1/requests/{id}/download", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let digest = resp.headers()["Digest"].to_str().unwrap().to_string();
        (resp.bytes().await.unwrap().to_vec(), digest)
    }
}

impl Drop for Larder {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (db, queue) = (self.database_url.clone(), self.queue.clone());
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = api::db::drop_database(&db).await;
                if let Ok(conn) =
                    lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default()).await
                {
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .queue_delete(
                                queue.as_str().into(),
                                lapin::options::QueueDeleteOptions::default(),
                            )
                            .await;
                    }
                }
            })
        })
        .join();
    }
}

/// Whether RabbitMQ has a queue of this name.
pub async fn queue_exists(queue: &str) -> bool {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await
    .is_ok()
}

/// Run `cmd` to completion; panics with its stderr unless it succeeds. Returns its stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A git repository built by the test with the real `git`.
pub struct GitRepo {
    pub dir: PathBuf,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Larder Test",
            "-c",
            "user.email=test@larder.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl GitRepo {
    pub fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q"]);
        Self { dir }
    }

    pub fn write(&self, path: &str, content: &str) -> &Self {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    /// Commit everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "--allow-empty", "-m", message]);
        git(&self.dir, &["rev-parse", "HEAD"])
    }

    pub fn url(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Add `other` (at its current commit) as a submodule at `path`.
    pub fn add_submodule(&self, other: &GitRepo, path: &str) -> &Self {
        git(&self.dir, &["submodule", "add", "-q", &other.url(), path]);
        self
    }

    /// A repository under `dir` with one committed file; returns it and the commit id.
    pub fn with_file(dir: PathBuf, path: &str, content: &str) -> (Self, String) {
        let repo = Self::new(dir);
        repo.write(path, content);
        let commit = repo.commit("initial");
        (repo, commit)
    }
}

/// Unpack a `.tar.gz` into a map of path -> content (directories as None).
/// Unpack a bundle with GNU tar, as a user does: a bundle is several gzip members, and the
/// offline routes are proven on what `tar -xzf` makes of it.
pub fn gnu_untar(bytes: &[u8], dest: &Path) {
    use std::io::Write;
    std::fs::create_dir_all(dest).unwrap();
    let mut tar = Command::new("tar")
        .args(["-xzf", "-", "-C"])
        .arg(dest)
        .stdin(Stdio::piped())
        .spawn()
        .expect("GNU tar runs");
    tar.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(tar.wait().unwrap().success(), "tar -xzf unpacks the bundle");
}

pub fn untar(bytes: &[u8]) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(bytes));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let content = match entry.header().entry_type() {
            tar::EntryType::Directory => None,
            tar::EntryType::Symlink => {
                Some(format!("-> {}", entry.link_name().unwrap().unwrap().display()).into_bytes())
            }
            _ => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut buf).unwrap();
                Some(buf)
            }
        };
        assert!(
            out.insert(path.clone(), content).is_none(),
            "duplicate member {path}"
        );
    }
    out
}

/// Regular files and symlinks of a tar stream below `prefix`: path -> (executable, content or
/// `-> target`). Directories are left out (git archive and a bundle differ only there).
fn tar_files(reader: impl std::io::Read, prefix: &str) -> BTreeMap<String, (bool, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix(prefix) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let exec = entry.header().mode().unwrap() & 0o111 != 0;
        let content = match kind {
            tar::EntryType::Symlink => {
                format!("-> {}", entry.link_name().unwrap().unwrap().display()).into_bytes()
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut buf).unwrap();
                buf
            }
            _ => continue,
        };
        let exec = exec && kind != tar::EntryType::Symlink;
        out.insert(rel.to_string(), (exec, content));
    }
    out
}

/// The bundle's `app/` is byte for byte `git archive` of the commit: the same files with the
/// same contents, executable bits and symlinks.
pub fn assert_app_is_commit(bundle: &[u8], repo: &Path, commit: &str) {
    let archive = run_ok(
        Command::new("git")
            .args(["archive", "--format=tar", commit])
            .current_dir(repo)
            .env("GIT_CONFIG_GLOBAL", "/dev/null"),
    );
    let want = tar_files(&archive[..], "");
    let got = tar_files(flate2::read::MultiGzDecoder::new(bundle), "app/");
    let want_paths: Vec<&String> = want.keys().collect();
    let got_paths: Vec<&String> = got.keys().collect();
    assert_eq!(
        got_paths, want_paths,
        "the bundle's app/ holds other files than the commit"
    );
    for (path, (exec, content)) in &want {
        let (got_exec, got_content) = &got[path];
        assert!(got_content == content, "app/{path} differs from the commit");
        assert_eq!(
            got_exec, exec,
            "app/{path}: executable bit differs from the commit"
        );
    }
}

/// README's offline step: `larder config-files --offline --dir <unpacked bundle>`, which
/// copies `deps/app-overlay/` over `app/`.
pub fn apply_app_overlay(unpacked: &Path) {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["config-files", "--offline", "--dir"])
            .arg(unpacked),
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    Open,
    /// Connections stay up but no byte moves.
    Paused,
    /// Every connection is closed and new ones are refused.
    Cut,
}

/// A TCP proxy the test controls, so it can break one client's connection to a shared server.
pub struct TcpProxy {
    pub port: u16,
    mode: Arc<watch::Sender<ProxyMode>>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, _) = watch::channel(ProxyMode::Open);
        let mode = Arc::new(tx);
        let target = target.to_string();
        let accept_mode = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *accept_mode.borrow() == ProxyMode::Cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, accept_mode.subscribe()));
                tokio::spawn(pipe(sr, cw, accept_mode.subscribe()));
            }
        });
        Self { port, mode }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let current = *mode.borrow_and_update();
        match current {
            ProxyMode::Cut => return,
            ProxyMode::Paused => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            ProxyMode::Open => {}
        }
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                // Hold data that arrives just as the proxy pauses.
                while *mode.borrow() == ProxyMode::Paused {
                    if mode.changed().await.is_err() { return; }
                }
                if *mode.borrow() == ProxyMode::Cut || to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

/// `git daemon` serving the repositories under `base` over git://.
pub struct GitDaemon {
    pub port: u16,
    child: Child,
}

impl GitDaemon {
    pub async fn start(base: &Path) -> Self {
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
            ])
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { port, child }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A static file server standing in for an upstream registry: serves `root` (a directory's
/// `index.json` or `index.html` for a directory path), logs every request path, and can be
/// edited on disk by the test (to tamper with a file, say).
pub struct StaticServer {
    pub url: String,
    pub root: PathBuf,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    /// While true, requests are logged but not answered ([`StaticServer::hold`]).
    held: Arc<watch::Sender<bool>>,
}

impl StaticServer {
    pub async fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = Arc::new(watch::channel(false).0);
        let (root_dir, log_in, held_in) = (root.to_path_buf(), log.clone(), held.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // header and body go out in two writes: without this, delayed ACKs add ~40 ms
                // to every keep-alive response
                let _ = stream.set_nodelay(true);
                let (root, log, held) = (root_dir.clone(), log_in.clone(), held_in.subscribe());
                tokio::spawn(async move {
                    let _ = serve_static(stream, &root, &log, held).await;
                });
            }
        });
        Self {
            url,
            root: root.to_path_buf(),
            log,
            held,
        }
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many times each path was requested so far.
    pub fn hits(&self) -> BTreeMap<String, usize> {
        let mut hits = BTreeMap::new();
        for path in self.log.lock().unwrap().iter() {
            *hits.entry(path.clone()).or_default() += 1;
        }
        hits
    }

    /// Log requests but answer none until [`StaticServer::release`] (downloads stay in flight
    /// for as long as a test needs).
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Answer the held requests and those that follow.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    pub fn clear_requests(&self) {
        self.log.lock().unwrap().clear();
    }
}

async fn serve_static(
    mut stream: TcpStream,
    root: &Path,
    log: &std::sync::Mutex<Vec<String>>,
    mut held: watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
            if head.len() > 64 * 1024 {
                return Ok(());
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut parts = text.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let path = target.split('?').next().unwrap_or("/").to_string();
        log.lock().unwrap().push(path.clone());
        if held.wait_for(|held| !held).await.is_err() {
            return Ok(());
        }
        let raw = path.trim_start_matches('/');
        let rel = common::percent::decode(raw).unwrap_or_else(|| raw.to_string());
        let safe = !rel.split('/').any(|c| c == "..");
        let mut file = root.join(&rel);
        if file.is_dir() {
            file = ["index.json", "index.html"]
                .iter()
                .map(|i| file.join(i))
                .find(|f| f.is_file())
                .unwrap_or(file);
        }
        let (status, body, ctype) = match (safe && method == "GET", std::fs::read(&file)) {
            (true, Ok(body)) => {
                let ctype = match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => "application/json",
                    Some("html") => "text/html",
                    Some("tgz") | Some("gz") => "application/octet-stream",
                    _ => "application/octet-stream",
                };
                ("200 OK", body, ctype)
            }
            _ => ("404 Not Found", b"not found".to_vec(), "text/plain"),
        };
        let header = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: {ctype}\r\nConnection: keep-alive\r\n\r\n", body.len());
        stream.write_all(header.as_bytes()).await?;
        stream.write_all(&body).await?;
    }
}

/// A command for a real package client, isolated from this machine's own client configuration
/// (`PIP_*`, `npm_config_*`, `CARGO_*`, `GO*`, `SSL_CERT_FILE`, `~/.npmrc`, npm's global
/// `<prefix>/etc/npmrc`, `/etc/pip.conf`), as on a clean machine.
pub fn clean_command(program: &str, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for keep in ["PATH", "LANG", "TERM", "TMPDIR"] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("HOME", home)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("npm_config_userconfig", home.join(".npmrc-empty"))
        .env("npm_config_globalconfig", home.join(".npmrc-global-empty"));
    cmd
}

/// Peak resident set size (`VmHWM` in `/proc/<pid>/status`) of a process, KiB; 0 when it
/// cannot be read.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Incompressible bytes (xorshift64*), `mib` MiB, written to `path`; returns their SHA-256.
pub fn write_random_file(path: &Path, mib: usize, seed: u64) -> String {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut state = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        hasher.update(&buf);
        out.write_all(&buf).unwrap();
    }
    out.flush().unwrap();
    hex::encode(hasher.finalize())
}

/// The token of an `.npmrc`'s `//host/path/:_authToken=` line.
pub fn npm_token_of(npmrc: &[u8]) -> String {
    String::from_utf8_lossy(npmrc)
        .lines()
        .find_map(|l| {
            l.split_once(":_authToken=")
                .map(|(_, t)| t.trim().to_string())
        })
        .expect("the .npmrc carries the token")
}
