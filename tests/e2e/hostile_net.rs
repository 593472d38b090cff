//! Hostile URLs and upstreams: dependency and source URLs that point at internal addresses
//! are refused before anything is contacted (also after DNS resolution and at every redirect
//! hop); downloads that are too large or too slow fail at their limits and leave nothing
//! behind; a failed checksum never tells what the content's digest was. The worker stays
//! alive through all of it.

use crate::support::*;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const METADATA_URL: &str = "http://169.254.169.254/latest/meta-data/";

/// An upstream misbehaving on purpose, by path prefix: `/redirect/…` (302 to the cloud
/// metadata address), `/huge-length/…` (announces 1 GiB), `/huge-chunked/…` (chunked zeros
/// without end), `/trickle/…` (a byte every 500 ms), `/file/<name>` (a file the test put
/// there). It logs every path asked for.
struct Hostile {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    /// Body bytes written by `/huge-chunked/`.
    chunked_sent: Arc<AtomicU64>,
}

impl Hostile {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let hostile = Self {
            url,
            log: Arc::default(),
            files: Arc::default(),
            chunked_sent: Arc::default(),
        };
        let (log, files, sent) = (
            hostile.log.clone(),
            hostile.files.clone(),
            hostile.chunked_sent.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, files, sent) = (log.clone(), files.clone(), sent.clone());
                tokio::spawn(async move {
                    let _ = respond(stream, &log, &files, &sent).await;
                });
            }
        });
        hostile
    }

    fn put(&self, name: &str, content: Vec<u8>) -> String {
        self.files.lock().unwrap().insert(name.into(), content);
        format!("{}/file/{name}", self.url)
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn respond(
    mut stream: TcpStream,
    log: &Mutex<Vec<String>>,
    files: &Mutex<BTreeMap<String, Vec<u8>>>,
    chunked_sent: &AtomicU64,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let zeros = vec![0u8; 64 * 1024];
    if path.starts_with("/redirect/") {
        let head = format!("HTTP/1.1 302 Found\r\nLocation: {METADATA_URL}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
    } else if path.starts_with("/huge-length/") {
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n",
            )
            .await?;
        for _ in 0..(1 << 14) {
            stream.write_all(&zeros).await?;
        }
    } else if path.starts_with("/huge-chunked/") {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            .await?;
        loop {
            stream
                .write_all(format!("{:x}\r\n", zeros.len()).as_bytes())
                .await?;
            stream.write_all(&zeros).await?;
            stream.write_all(b"\r\n").await?;
            chunked_sent.fetch_add(zeros.len() as u64, Ordering::Relaxed);
        }
    } else if path.starts_with("/trickle/") {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
            .await?;
        for _ in 0..1000 {
            stream.write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    } else if let Some(body) = path
        .strip_prefix("/file/")
        .and_then(|name| files.lock().unwrap().get(name).cloned())
    {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
    } else {
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sri_sha512(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes))
    )
}

/// `n` bytes that do not compress.
fn noise(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(&Sha256::digest(i.to_le_bytes()));
        i += 1;
    }
    out.truncate(n);
    out
}

/// A repository at `dir/<name>` with `files`; returns its path and commit.
fn repo_with(dir: &Path, name: &str, files: &[(&str, &str)]) -> (String, String) {
    let repo = GitRepo::new(dir.join(name));
    for (path, content) in files {
        repo.write(path, content);
    }
    let commit = repo.commit(name);
    (repo.url(), commit)
}

async fn submit_pip(larder: &Larder, dir: &Path, name: &str, requirements: &str) -> i64 {
    let (repo, commit) = repo_with(dir, name, &[("requirements.txt", requirements)]);
    larder
        .submit(json!({"repo": repo, "ref": commit, "pkg_managers": ["pip"]}))
        .await
}

/// The request failed as a client error whose reason contains every one of `needles`.
fn assert_failed(r: &Value, origin: &str, needles: &[&str]) {
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["error_origin"], origin, "{r}");
    let reason = r["state_reason"].as_str().unwrap();
    for needle in needles {
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
    }
}

/// A request that needs no network but its own (local) repository completes.
async fn assert_worker_alive(larder: &Larder, dir: &Path) {
    let (repo, commit) = repo_with(dir, "alive", &[("README", "still here\n")]);
    let id = larder
        .submit(json!({"repo": repo, "ref": commit, "pkg_managers": []}))
        .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "complete", "{r}\n{}", larder.logs());
}

/// Wait until the store's `tmp/` holds nothing (a request's work directory goes right after
/// it is reported failed).
async fn assert_tmp_empties(larder: &Larder) {
    let tmp = larder.data.path().join("tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "temporary files left in the store: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_urls_of_every_kind_are_refused_before_any_contact() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let target_root = tempfile::tempdir().unwrap();
    let target = StaticServer::start(target_root.path()).await;
    let port = target.url.rsplit(':').next().unwrap().to_string();
    // the refused files exist: a request that got through would complete
    let tarball = b"not really a tarball".to_vec();
    std::fs::write(target_root.path().join("x-1.0.tar.gz"), &tarball).unwrap();
    std::fs::create_dir_all(target_root.path().join("files")).unwrap();
    std::fs::write(target_root.path().join("files/t-1.0.0.tgz"), &tarball).unwrap();

    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_ALLOW_PRIVATE_UPSTREAMS".into(), "false".into());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;

    let mut cases: Vec<(i64, Vec<String>)> = Vec::new();

    // pip: a direct URL at an IP literal
    let pip_url = format!("http://127.0.0.1:{port}/x-1.0.tar.gz");
    let id = submit_pip(
        &larder,
        dir,
        "pip",
        &format!("x @ {pip_url}#sha256={}\n", sha256_hex(&tarball)),
    )
    .await;
    cases.push((id, vec![pip_url, "127.0.0.1 is a loopback address".into()]));

    // npm: a URL tarball at a name resolving to loopback, and a git dependency at loopback
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let npm_url = format!("http://localhost:{port}/files/t-1.0.0.tgz");
    let git_url = format!("http://127.0.0.1:{port}/gdep.git");
    for (name, resolved, integrity, needles) in [
        (
            "npm-url",
            npm_url.clone(),
            Some(sri_sha512(&tarball)),
            vec![npm_url.clone(), "localhost resolves to".into()],
        ),
        (
            "npm-git",
            format!("git+{git_url}#{sha}"),
            None,
            vec![git_url.clone(), "loopback".into()],
        ),
    ] {
        let mut entry = json!({"version": "1.0.0", "resolved": resolved});
        if let Some(i) = integrity {
            entry["integrity"] = json!(i);
        }
        let package_json =
            json!({"name": "app", "version": "1.0.0", "dependencies": {"t": resolved}});
        let lock = json!({
            "name": "app", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
            "packages": {"": package_json, "node_modules/t": entry},
        });
        let (repo, commit) = repo_with(
            dir,
            name,
            &[
                ("package.json", &package_json.to_string()),
                ("package-lock.json", &lock.to_string()),
            ],
        );
        let id = larder
            .submit(json!({"repo": repo, "ref": commit, "pkg_managers": ["npm"]}))
            .await;
        cases.push((id, needles));
    }

    // cargo: a git dependency at a name resolving to loopback
    let cargo_git = format!("http://localhost:{port}/gitdep.git");
    let (repo, commit) = repo_with(
        dir,
        "cargo",
        &[
            ("Cargo.toml", &format!("[package]\nname = \"app\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[dependencies]\ngitdep = {{ git = \"{cargo_git}\" }}\n")),
            ("src/lib.rs", "pub fn f() {}\n"),
            ("Cargo.lock", &format!("version = 3\n\n[[package]]\nname = \"app\"\nversion = \"1.0.0\"\ndependencies = [\n \"gitdep\",\n]\n\n[[package]]\nname = \"gitdep\"\nversion = \"0.1.0\"\nsource = \"git+{cargo_git}#{sha}\"\n")),
        ],
    );
    let id = larder
        .submit(json!({"repo": repo, "ref": commit, "pkg_managers": ["cargo"]}))
        .await;
    cases.push((id, vec![cargo_git.clone(), "localhost resolves to".into()]));

    // a git submodule at loopback (a gitlink and .gitmodules, as `git submodule add` leaves)
    let sub_url = format!("http://127.0.0.1:{port}/sub.git");
    let app = GitRepo::new(dir.join("submodule"));
    app.write(
        ".gitmodules",
        &format!("[submodule \"sub\"]\n\tpath = sub\n\turl = {sub_url}\n"),
    );
    git(
        &app.dir,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{sha},sub"),
        ],
    );
    let commit = app.commit("with a submodule");
    let id = larder
        .submit(json!({"repo": app.url(), "ref": commit, "pkg_managers": ["git-submodule"]}))
        .await;
    cases.push((id, vec![sub_url.clone(), "submodule sub".into()]));

    // the request's own repository
    let repo_url = format!("http://127.0.0.1:{port}/app.git");
    let id = larder
        .submit(json!({"repo": repo_url, "ref": sha, "pkg_managers": []}))
        .await;
    cases.push((id, vec![repo_url.clone()]));

    for (id, needles) in &cases {
        let r = larder.wait(*id).await;
        let mut needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        needles.extend(["Refusing to fetch", "does not allow private upstreams"]);
        assert_failed(&r, "client", &needles);
    }
    assert_eq!(
        target.requests(),
        Vec::<String>::new(),
        "the internal server was contacted"
    );
    assert_worker_alive(&larder, dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_rechecked_and_checksum_failures_do_not_tell_the_digest() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hostile = Hostile::start().await;

    let mut larder = Larder::new();
    // private upstreams allowed (so the first hop is reachable), but only this one host
    larder
        .env
        .insert("LARDER_ALLOWED_HOSTS".into(), "127.0.0.1".into());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;

    let redirect = format!("{}/redirect/x-1.0.tar.gz", hostile.url);
    let redirected = submit_pip(
        &larder,
        dir,
        "redirect",
        &format!("x @ {redirect}#sha256={}\n", "0".repeat(64)),
    )
    .await;

    let secret = b"internal credentials".to_vec();
    let secret_url = hostile.put("secret-1.0.tar.gz", secret.clone());
    let not_listed = secret_url.replace("127.0.0.1", "localhost");
    let unlisted = submit_pip(
        &larder,
        dir,
        "unlisted",
        &format!("s @ {not_listed}#sha256={}\n", sha256_hex(&secret)),
    )
    .await;

    let wrong = submit_pip(
        &larder,
        dir,
        "wrong-digest",
        &format!("s @ {secret_url}#sha256={}\n", "0".repeat(64)),
    )
    .await;

    let r = larder.wait(redirected).await;
    assert_failed(
        &r,
        "client",
        &[
            &redirect,
            &format!("it redirects to {METADATA_URL}"),
            "169.254.169.254 is a cloud metadata address, which is never contacted",
        ],
    );
    let r = larder.wait(unlisted).await;
    assert_failed(
        &r,
        "client",
        &[
            &not_listed,
            "localhost is not one of this deployment's allowed hosts",
        ],
    );
    let r = larder.wait(wrong).await;
    assert_failed(&r, "client", &["does not match the expected sha256"]);
    let reason = r["state_reason"].as_str().unwrap();
    assert!(
        !reason.contains(&sha256_hex(&secret)),
        "the failure tells the served content's digest: {reason}"
    );
    assert_eq!(
        hostile.requests(),
        vec!["/redirect/x-1.0.tar.gz", "/file/secret-1.0.tar.gz"],
        "only the allowed host was contacted, once per URL (refusals are not retried)"
    );

    // a good download from the allowed host completes and is in the bundle
    let good = hostile.put("good-1.0.tar.gz", b"fine".to_vec());
    let id = submit_pip(
        &larder,
        dir,
        "good",
        &format!("good @ {good}#sha256={}\n", sha256_hex(b"fine")),
    )
    .await;
    let r = larder.wait(id).await;
    assert_eq!(r["state"], "complete", "{r}\n{}", larder.logs());
    let bundle = untar(&larder.download(id).await.0);
    assert!(
        bundle
            .iter()
            .any(|(path, content)| path.starts_with("deps/pip/")
                && content.as_deref() == Some(&b"fine"[..])),
        "{:?}",
        bundle.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_trickling_downloads_fail_at_their_limits_and_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hostile = Hostile::start().await;
    const MIB: usize = 1 << 20;

    let mut larder = Larder::new();
    for (k, v) in [
        ("LARDER_MAX_ARTIFACT_SIZE", MIB.to_string()),
        ("LARDER_MAX_REQUEST_DOWNLOAD", (MIB + MIB / 2).to_string()),
        ("LARDER_DOWNLOAD_TIMEOUT", "3s".to_string()),
        (
            "LARDER_PYPI_INDEX",
            format!("{}/huge-chunked/simple/", hostile.url),
        ),
    ] {
        larder.env.insert(k.into(), v);
    }
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let zeros = "0".repeat(64);
    let artifact_limit =
        format!("larger than the limit of {MIB} bytes for one download (LARDER_MAX_ARTIFACT_SIZE)");

    let by_length = submit_pip(
        &larder,
        dir,
        "length",
        &format!(
            "x @ {}/huge-length/x-1.0.tar.gz#sha256={zeros}\n",
            hostile.url
        ),
    )
    .await;
    let chunked = submit_pip(
        &larder,
        dir,
        "chunked",
        &format!(
            "x @ {}/huge-chunked/x-1.0.tar.gz#sha256={zeros}\n",
            hostile.url
        ),
    )
    .await;
    let index_page = submit_pip(&larder, dir, "index", "foo==1.0\n").await;
    let (a, b) = (noise(MIB - 100), noise(MIB - 200));
    let (a_url, b_url) = (
        hostile.put("a-1.0.tar.gz", a.clone()),
        hostile.put("b-1.0.tar.gz", b.clone()),
    );
    let total = submit_pip(
        &larder,
        dir,
        "total",
        &format!(
            "a @ {a_url}#sha256={}\nb @ {b_url}#sha256={}\n",
            sha256_hex(&a),
            sha256_hex(&b)
        ),
    )
    .await;
    let trickle_url = format!("{}/trickle/x-1.0.tar.gz", hostile.url);
    let started = Instant::now();
    let trickle = submit_pip(
        &larder,
        dir,
        "trickle",
        &format!("x @ {trickle_url}#sha256={zeros}\n"),
    )
    .await;
    // a git repository (over git://) larger than one download may be
    let base = tempfile::tempdir().unwrap();
    let big = GitRepo::new(base.path().join("big"));
    std::fs::write(big.dir.join("blob.bin"), noise(2 * MIB)).unwrap();
    let big_commit = big.commit("big");
    let daemon = GitDaemon::start(base.path()).await;
    let big_url = format!("git://127.0.0.1:{}/big", daemon.port);
    let git_big = larder
        .submit(json!({"repo": big_url, "ref": big_commit, "pkg_managers": []}))
        .await;

    let r = larder.wait(by_length).await;
    assert_failed(&r, "client", &["x-1.0.tar.gz", &artifact_limit]);
    let r = larder.wait(chunked).await;
    assert_failed(&r, "client", &["x-1.0.tar.gz", &artifact_limit]);
    let r = larder.wait(index_page).await;
    assert_failed(
        &r,
        "client",
        &[
            &format!("{}/huge-chunked/simple/foo/", hostile.url),
            &format!("larger than the limit of {MIB} bytes for an index document"),
        ],
    );
    let sent = hostile.chunked_sent.load(Ordering::Relaxed);
    assert!(
        sent < 32 * MIB as u64,
        "{sent} bytes were read from endless bodies"
    );
    let r = larder.wait(total).await;
    assert_failed(
        &r,
        "client",
        &[&format!(
            "takes the request past its limit of {} bytes of downloads (LARDER_MAX_REQUEST_DOWNLOAD)",
            MIB + MIB / 2
        )],
    );
    let r = larder.wait(trickle).await;
    assert_failed(
        &r,
        "server",
        &[
            &trickle_url,
            "did not download within 3s (LARDER_DOWNLOAD_TIMEOUT)",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the deadline, not a read timeout, ended the trickle"
    );
    let r = larder.wait(git_big).await;
    assert_failed(
        &r,
        "client",
        &[&format!("The git repository {big_url}"), &artifact_limit],
    );

    assert_tmp_empties(&larder).await;
    let stored = files_under(&larder.data.path().join("deps"));
    assert!(stored.is_empty(), "stored after failures: {stored:?}");
    assert_worker_alive(&larder, dir).await;
}
