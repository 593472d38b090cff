//! End to end: submit real git repositories to a real Larder and check what comes back.

use crate::support::*;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `git archive` of a commit, as path -> content.
fn git_archive(repo: &GitRepo, commit: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    let out = std::process::Command::new("git")
        .args(["archive", "--format=tar.gz", "--prefix=app/", commit])
        .current_dir(&repo.dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    untar(&out.stdout)
}

fn files_only(tree: &BTreeMap<String, Option<Vec<u8>>>, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    tree.iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .filter_map(|(p, c)| c.clone().map(|c| (p.clone(), c)))
        .collect()
}

#[tokio::test]
async fn bundle_matches_git_archive_and_survives_the_repository() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("README.md", "# demo\n")
        .write("src/main.c", "int main() { return 0; }\n")
        .symlink("docs/readme", "../README.md");
    repo.commit("first");
    repo.write("src/main.c", "int main() { return 1; }\n");
    let commit = repo.commit("second");

    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(done["state_reason"], "Completed successfully");
    assert!(done.get("error_origin").is_none());
    let reasons: Vec<&str> = done["state_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state_reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"Fetching the application source"),
        "{reasons:?}"
    );
    assert_eq!(reasons.last(), Some(&"The request was initiated"));

    let (bytes, digest) = larder.download(id).await;
    let expected = format!(
        "sha-256={}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes))
    );
    assert_eq!(digest, expected);
    let bundle = untar(&bytes);
    assert_eq!(
        files_only(&bundle, "app/"),
        files_only(&git_archive(&repo, &commit), "app/")
    );
    assert!(bundle.contains_key("deps"), "bundle has deps/");
    assert!(
        !bundle.keys().any(|p| p.starts_with("app/.git")),
        ".git is left out by default"
    );

    // The same commit again, with the repository gone: served from the source cache.
    std::fs::remove_dir_all(&repo.dir).unwrap();
    let again = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    let done = larder.wait(again).await;
    assert_eq!(done["state"], "complete", "{done}");
    let (bytes2, _) = larder.download(again).await;
    assert_eq!(bytes, bytes2, "bundles are byte-reproducible");

    // Logs name the request's work.
    let logs = larder.text(&format!("/api/v1/requests/{again}/logs")).await;
    assert!(logs.contains("reusing the cached source archive"), "{logs}");
    // plain text: no terminal colour codes in the request log or the redirected stderr
    assert!(!logs.contains('\x1b'), "{logs:?}");
    let stderr = larder.logs();
    assert!(stderr.contains("request created"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

#[tokio::test]
async fn a_bundle_download_resumes_with_a_range() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", &"a".repeat(5000));
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    let (whole, _) = larder.download(id).await;
    let url = format!("{}/api/v1/requests/{id}/download", larder.url);
    let get = |headers: &[(&str, String)]| {
        let mut req = larder.http.get(&url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let (range, etag) = (header("content-range"), header("etag"));
            (status, range, etag, resp.bytes().await.unwrap().to_vec())
        }
    };
    let (status, _, etag, body) = get(&[]).await;
    assert_eq!((status, body.len()), (200, whole.len()));
    let etag = etag.expect("an ETag");
    let n = whole.len();
    // the rest from byte 100, as `curl -C 100` asks
    let (status, range, _, body) = get(&[("Range", "bytes=100-".into())]).await;
    assert_eq!(status, 206);
    assert_eq!(range.unwrap(), format!("bytes 100-{}/{n}", n - 1));
    assert_eq!(body, whole[100..]);
    let (status, _, _, body) =
        get(&[("Range", "bytes=-10".into()), ("If-Range", etag.clone())]).await;
    assert_eq!((status, body), (206, whole[n - 10..].to_vec()));
    // other bytes than the client has: the whole
    let (status, _, _, body) = get(&[
        ("Range", "bytes=0-9".into()),
        ("If-Range", "\"other\"".into()),
    ])
    .await;
    assert_eq!((status, body.len()), (200, n));
    let (status, range, _, _) = get(&[("Range", format!("bytes={n}-"))]).await;
    assert_eq!((status, range.unwrap()), (416, format!("bytes */{n}")));
    // a range is a GET's: HEAD answers for the whole
    let head = larder
        .http
        .head(&url)
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
}

#[tokio::test]
async fn include_git_dir_keeps_git() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let id = larder.submit(json!({"repo": format!("file://{}", repo.url()), "ref": commit, "pkg_managers": [], "flags": ["include-git-dir"]})).await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    let bundle = untar(&larder.download(id).await.0);
    assert!(bundle.contains_key("app/.git/HEAD"));
    let head = String::from_utf8(bundle["app/.git/HEAD"].clone().unwrap()).unwrap();
    assert_eq!(
        head.trim(),
        commit,
        "HEAD is the requested commit, detached"
    );
}

#[tokio::test]
async fn escaping_symlink_fails_or_is_removed() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("a.txt", "a")
        .symlink("sub/evil", "../../../../../etc/passwd");
    let commit = repo.commit("c");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed");
    assert_eq!(done["error_origin"], "client");
    assert_eq!(
        done["state_reason"],
        "The destination of 'sub/evil' is outside of cloned repository"
    );

    let id = larder.submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": [], "flags": ["remove-unsafe-symlinks"]})).await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    let bundle = untar(&larder.download(id).await.0);
    assert!(bundle.contains_key("app/a.txt"));
    assert!(!bundle.contains_key("app/sub/evil"));
}

#[tokio::test]
async fn unknown_commit_fails_clearly() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("a.txt", "a");
    repo.commit("c");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": missing, "pkg_managers": []}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed");
    assert_eq!(done["error_origin"], "client");
    assert_eq!(done["error_type"], "InvalidRequestData");
    assert_eq!(
        done["state_reason"],
        format!("Failed on checking out the Git repository. Please verify the supplied reference of \"{missing}\" is valid.")
    );
    let (status, body) = larder.get(&format!("/api/v1/requests/{id}/download")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "The request must be in the \"complete\" state before downloading the archive"
    );

    // A repository that does not exist at all.
    let id = larder.submit(json!({"repo": work.path().join("nope").to_string_lossy(), "ref": missing, "pkg_managers": []})).await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed");
    assert!(
        done["state_reason"]
            .as_str()
            .unwrap()
            .starts_with("Failed cloning the Git repository"),
        "{done}"
    );
}

#[tokio::test]
async fn git_submodules_are_fetched_and_reported() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let lib = GitRepo::new(work.path().join("lib"));
    lib.write("lib.txt", "library v1");
    let lib_commit = lib.commit("lib");
    let app = GitRepo::new(work.path().join("app"));
    app.write("main.txt", "main");
    app.add_submodule(&lib, "vendor/lib");
    let commit = app.commit("with submodule");
    lib.write("lib.txt", "library v2");
    lib.commit("moved on");

    let id = larder
        .submit(json!({"repo": app.url(), "ref": commit, "pkg_managers": ["git-submodule"]}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(
        done["packages"],
        json!([{"name": "vendor/lib", "type": "git-submodule", "version": format!("{}#{lib_commit}", lib.url()), "path": "vendor/lib", "dependencies": []}])
    );
    let bundle = untar(&larder.download(id).await.0);
    assert_eq!(
        bundle["app/vendor/lib/lib.txt"].as_deref(),
        Some(&b"library v1"[..]),
        "the submodule at its recorded commit"
    );
    let (_, manifest) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    assert_eq!(manifest["image_contents"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["image_contents"][0]["dependencies"], json!([]));
    assert_eq!(manifest["metadata"]["icm_version"], 1);
}

#[tokio::test]
async fn every_package_manager_cachito_knows_is_processed_here() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    // (a name Cachito knows that a deployment does not process is refused as "not enabled":
    // api/src/v1/validation.rs tests it with a catalogue without one)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let (_, status) = larder.get("/api/v1/status").await;
        if status["can_process"]["npm"] == true || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for pm in common::pm::CACHITO_PACKAGE_MANAGERS {
        assert_eq!(status["can_process"][pm], true, "{pm}: {status}");
    }

    // a 201 body agrees with itself: its state is its newest history entry
    for _ in 0..5 {
        let (status, created) = larder
            .post(
                "/api/v1/requests",
                &json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let newest = &created["state_history"][0];
        assert_eq!(created["state"], newest["state"], "{created}");
        assert_eq!(created["state_reason"], newest["state_reason"], "{created}");
        assert_eq!(created["updated"], newest["updated"], "{created}");
    }
}

#[tokio::test]
async fn stored_files_go_out_as_stored_with_their_length_and_answer_head() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    let (bytes, digest) = larder.download(id).await;
    let url = format!("{}/api/v1/requests/{id}/download", larder.url);
    // every `requests` client and browser sends this; the bundle must not be gzipped again
    let resp = larder
        .http
        .get(&url)
        .header("Accept-Encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-encoding").is_none(),
        "{:?}",
        resp.headers()
    );
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);
    let head = larder
        .http
        .head(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["digest"].to_str().unwrap(), digest);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    // JSON is still compressed for clients that ask
    let json = larder
        .http
        .get(format!("{}/api/v1/requests/{id}", larder.url))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(json.headers()["content-encoding"], "gzip");
    // HEAD works wherever GET does
    for path in [
        format!("/api/v1/requests/{id}"),
        "/api/v1/requests".to_string(),
        format!("/api/v1/requests/{id}/logs"),
        "/healthz".to_string(),
    ] {
        let resp = larder
            .http
            .head(format!("{}{path}", larder.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "HEAD {path}");
    }
}

#[tokio::test]
async fn listing_filters_paginate_and_keep_filters() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
                .await,
        );
    }
    let other = larder.submit(json!({"repo": repo.url(), "ref": "0123456789abcdef0123456789abcdef01234567", "pkg_managers": []})).await;
    for id in ids.iter().chain([&other]) {
        larder.wait(*id).await;
    }
    let (status, page) = larder
        .get(&format!(
            "/api/v1/requests?state=complete&ref={commit}&per_page=2"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["meta"]["total"], 3);
    assert_eq!(page["meta"]["pages"], 2);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ids[2], "newest first");
    assert!(
        items[0]["packages"].is_number() || items[0]["packages"].is_null(),
        "non-verbose items carry counts"
    );
    let next = page["meta"]["next"].as_str().unwrap();
    assert!(
        next.contains(&format!("ref={commit}")) && next.contains("state=complete"),
        "{next}"
    );
    let next_page: serde_json::Value = larder
        .http
        .get(next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next_page["items"].as_array().unwrap().len(), 1);
    assert_eq!(next_page["items"][0]["id"], ids[0]);
    let (_, failed) = larder
        .get("/api/v1/requests?state=failed&verbose=true")
        .await;
    assert_eq!(failed["items"][0]["id"], other);
    let (_, by_id) = larder.get(&format!("/api/v1/requests/{other}")).await;
    assert_eq!(failed["items"][0], by_id, "verbose items equal GET by id");
    let (status, _) = larder.get("/api/v1/requests?page=9").await;
    assert_eq!(status, 404);

    // latest: by repository path and ref.
    let repo_name = repo.url().trim_start_matches('/').to_string();
    let (status, latest) = larder
        .get(&format!(
            "/api/v1/requests/latest?repo_name={repo_name}&ref={commit}"
        ))
        .await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["id"], ids[2]);
    assert!(
        latest.get("configuration_files").is_none(),
        "latest is non-verbose"
    );
}

#[tokio::test]
async fn listing_by_package_manager_finds_every_request_naming_it() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    // (the requests fail: the repository has no lockfile; the list does not care)
    let mut ids = Vec::new();
    for pms in [
        json!(["npm"]),
        json!(["pip"]),
        json!(["npm", "pip"]),
        json!([]),
    ] {
        ids.push(
            larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": pms}))
                .await,
        );
    }
    for id in &ids {
        larder.wait(*id).await;
    }
    let listed = |query: &'static str| {
        let larder = &larder;
        async move {
            let (status, page) = larder.get(&format!("/api/v1/requests?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            let items: Vec<i64> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
            if !query.contains("per_page") {
                assert_eq!(page["meta"]["total"], items.len(), "{query}");
            }
            items
        }
    };
    assert_eq!(listed("pkg_manager=npm").await, [ids[2], ids[0]]);
    assert_eq!(listed("pkg_manager=pip").await, [ids[2], ids[1]]);
    assert_eq!(listed("pkg_manager=npm&pkg_manager=pip").await, [ids[2]]);
    assert_eq!(
        listed("pkg_manager=pip&pkg_manager=npm&pkg_manager=pip").await,
        [ids[2]]
    );
    assert_eq!(listed("pkg_manager=gomod").await, Vec::<i64>::new());
    assert_eq!(listed("pkg_manager=pip&per_page=1&page=2").await, [ids[1]]);
    assert_eq!(
        listed("pkg_manager=").await.len(),
        4,
        "an empty value is no filter"
    );
    // the page for people uses the same filter
    let page = larder.page("/ui/requests?pkg_manager=pip").await;
    for (id, shown) in ids.iter().zip([false, true, true, false]) {
        assert_eq!(
            page.contains(&format!("href=\"/ui/requests/{id}\"")),
            shown,
            "request {id} on /ui/requests?pkg_manager=pip"
        );
    }
}

#[tokio::test]
async fn cleanup_makes_requests_stale() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    larder.expire_all();
    let (_, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["state"], "stale");
    assert_eq!(r["state_reason"], "The request has expired");
    let (status, _) = larder.get(&format!("/api/v1/requests/{id}/download")).await;
    assert_eq!(status, 400);
    let (status, _) = larder.get(&format!("/api/v1/requests/{id}/logs")).await;
    assert_eq!(status, 410);
    let bundles = larder.data.path().join("bundles");
    assert!(!bundles.join(format!("{id}.tar.gz.sha256")).exists());
    let blobs: Vec<_> = std::fs::read_dir(bundles.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        blobs.is_empty(),
        "the only request's bundle goes with it: {blobs:?}"
    );
    let (_, manifest) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    assert_eq!(manifest["image_contents"], json!([]));
}

#[tokio::test]
async fn cli_submits_a_checkout_and_fetches_results() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "hello.txt", "hi");
    let bundle = work.path().join("bundle.tar.gz");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["submit", "--repo", ".", "--ref", "HEAD", "--download"])
        .arg(&bundle)
        .current_dir(&repo.dir)
        .env("LARDER_URL", &larder.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (_, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(r["ref"], commit);
    assert_eq!(r["state"], "complete");
    let tree = untar(&std::fs::read(&bundle).unwrap());
    assert_eq!(tree["app/hello.txt"].as_deref(), Some(&b"hi"[..]));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["status", &id.to_string()])
        .env("LARDER_URL", &larder.url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["list", "--state", "complete"])
        .env("LARDER_URL", &larder.url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&commit[..12]));
}

#[tokio::test]
async fn merged_manifests_and_sboms_of_several_requests() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let lib = GitRepo::new(work.path().join("lib"));
    lib.write("x", "x");
    let lib_commit = lib.commit("lib");
    let app = GitRepo::new(work.path().join("app"));
    app.write("a", "a");
    app.add_submodule(&lib, "sub");
    let commit = app.commit("c");
    let one = larder
        .submit(json!({"repo": app.url(), "ref": commit, "pkg_managers": ["git-submodule"]}))
        .await;
    let two = larder
        .submit(json!({"repo": app.url(), "ref": commit, "pkg_managers": []}))
        .await;
    let bad = larder.submit(json!({"repo": app.url(), "ref": "0123456789abcdef0123456789abcdef01234567", "pkg_managers": []})).await;
    for id in [one, two, bad] {
        larder.wait(id).await;
    }
    let purl = format!(
        "pkg:generic/sub?vcs_url={}",
        common::purl::quote(&format!("{}@{lib_commit}", lib.url()))
    );

    let (status, icm) = larder
        .get(&format!(
            "/api/v1/content-manifest?requests={one},{two},,{one}"
        ))
        .await;
    assert_eq!(status, 200, "{icm}");
    assert_eq!(
        icm["image_contents"],
        json!([{"purl": purl, "dependencies": [], "sources": []}])
    );
    let (_, empty) = larder.get("/api/v1/content-manifest").await;
    assert_eq!(empty["image_contents"], json!([]));
    let (status, err) = larder.get("/api/v1/content-manifest?requests=1,x").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("x is not an integer."))
    );
    let (status, err) = larder.get("/api/v1/content-manifest?requests=99999").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("Cannot find request(s) 99999."))
    );
    let (status, err) = larder
        .get(&format!("/api/v1/content-manifest?requests={bad}"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"],
        format!("Request {bad} is in state failed, not in {{'complete'}}.")
    );

    let (status, bom) = larder
        .get(&format!("/api/v1/sbom?requests={one},{two}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(bom["bomFormat"], "CycloneDX");
    let sub: Vec<&serde_json::Value> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["purl"] == purl)
        .collect();
    assert_eq!(sub.len(), 1, "{bom}");
    assert_eq!(sub[0]["name"], "sub");
    assert_eq!(sub[0]["version"], format!("{}#{lib_commit}", lib.url()));
    // both requests' applications, under the merged document's own
    assert_eq!(bom["metadata"]["component"]["bom-ref"], "larder:merged");
    crate::support::sbom::assert_valid("cyclonedx", &bom);
    let (status, merged_spdx) = larder
        .get(&format!("/api/v1/sbom?requests={one},{two}&format=spdx"))
        .await;
    assert_eq!(status, 200);
    crate::support::sbom::assert_valid("spdx", &merged_spdx);
    // a request's own SBOM: unknown → 404, a bad format → 400, not complete → 400
    let (status, err) = larder.get("/api/v1/requests/99999/sbom").await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = larder
        .get(&format!("/api/v1/requests/{one}/sbom?format=xml"))
        .await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("xml"), "{err}");
    let (status, err) = larder.get(&format!("/api/v1/requests/{bad}/sbom")).await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = larder
        .get(&format!("/api/v1/requests/{one}/sbom?bogus=1"))
        .await;
    assert_eq!(status, 400);
    let one_bom = crate::support::sbom::valid_sboms(&larder, one).await;
    assert_eq!(one_bom["metadata"]["component"]["version"], commit);
    let (status, spdx) = larder
        .get(&format!("/api/v1/sbom?requests={one}&format=spdx"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    assert!(spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["externalRefs"][0]["referenceLocator"] == purl));
    let (status, _) = larder.get(&format!("/api/v1/sbom?requests={bad}")).await;
    assert_eq!(status, 400);
}

/// A CA certificate (PEM): what `LARDER_REPOS_CA_FILE` names in these tests.
fn repos_ca() -> String {
    let pki = crate::support::tls::TestPki::new("Larder test repositories CA");
    std::fs::read_to_string(pki.ca()).unwrap()
}

/// `LARDER_REPOS_CA_FILE`: one `app/registry-ca.pem` for all the package managers of a
/// request, each client's configuration naming it; none for a request with no repository; a
/// file gone bad after the worker started fails the request as the deployment's error. (The
/// clients themselves over HTTPS are for the TLS serving's tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repos_ca_is_handed_back_once_and_named_by_every_client_configuration() {
    let work = tempfile::tempdir().unwrap();
    let ca_file = work.path().join("repos-ca.pem");
    let ca = repos_ca();
    std::fs::write(&ca_file, format!("# our CA\n{ca}")).unwrap();
    let mut larder = Larder::new();
    larder.env.insert(
        "LARDER_REPOS_CA_FILE".into(),
        ca_file.to_string_lossy().into_owned(),
    );
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;

    // four package managers with nothing to fetch, three of them below the root
    let repo = GitRepo::new(work.path().join("repo"));
    let lock = r#"{"name":"web","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"web","version":"1.0.0"}}}"#;
    repo.write("web/package.json", r#"{"name":"web","version":"1.0.0"}"#)
        .write("web/package-lock.json", lock)
        .write(
            "rs/Cargo.toml",
            "[package]\nname = \"rs\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .write("rs/src/main.rs", "fn main() {}\n")
        .write(
            "rs/Cargo.lock",
            "version = 3\n\n[[package]]\nname = \"rs\"\nversion = \"0.1.0\"\n",
        )
        .write("go/go.mod", "module example.com/app\n\ngo 1.19\n")
        .write("go/main.go", "package main\n\nfunc main() {}\n")
        .write("requirements.txt", "\n");
    let commit = repo.commit("four package managers");
    let id = larder
        .submit(json!({
            "repo": repo.url(), "ref": commit,
            "pkg_managers": ["gomod", "npm", "pip", "cargo"],
            "packages": {"npm": [{"path": "web"}], "cargo": [{"path": "rs"}], "gomod": [{"path": "go"}]}
        }))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());

    let files = larder.config_files(id).await;
    let pems: Vec<&String> = files.keys().filter(|p| p.ends_with(".pem")).collect();
    assert_eq!(pems, ["app/registry-ca.pem"], "{:?}", files.keys());
    assert_eq!(
        std::str::from_utf8(&files["app/registry-ca.pem"]).unwrap(),
        ca,
        "the certificates, without the comment"
    );
    let text = |p: &str| String::from_utf8(files[p].clone()).unwrap();
    assert!(
        text("app/web/.npmrc").ends_with("\ncafile=../registry-ca.pem\n"),
        "{}",
        text("app/web/.npmrc")
    );
    let cargo = text("app/rs/.cargo/config.registry.toml");
    assert!(
        cargo.ends_with("\n[http]\ncainfo = \"../registry-ca.pem\"\n"),
        "{cargo}"
    );
    let offline = text("app/rs/.cargo/config.toml");
    assert!(
        !offline.contains("cainfo"),
        "offline needs no CA: {offline}"
    );
    let (status, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    assert_eq!(status, 200);
    for name in ["PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"] {
        assert_eq!(
            env[name],
            json!({"value": "app/registry-ca.pem", "kind": "path"}),
            "{name}: {env}"
        );
    }
    // the bundle is the commit: the CA is a configuration file only
    let (bundle, _) = larder.download(id).await;
    assert!(!untar(&bundle).contains_key("app/registry-ca.pem"));

    // no package manager, no repository: no CA
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    assert!(larder.config_files(id).await.is_empty());

    // the file went away after the worker started: the request fails, the deployment's fault
    std::fs::remove_file(&ca_file).unwrap();
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"], "packages": {"npm": [{"path": "web"}]}}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error_origin"], "server", "{done}");
    assert_eq!(done["error_type"], "ConfigurationError", "{done}");
    let reason = done["state_reason"].as_str().unwrap();
    assert!(
        reason.contains("LARDER_REPOS_CA_FILE") && reason.contains("cannot read it"),
        "{reason}"
    );
}

/// A worker does not start with a CA file it cannot hand back.
#[tokio::test]
async fn worker_refuses_to_start_with_a_bad_repos_ca_file() {
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("key.pem");
    std::fs::write(
        &key,
        format!(
            "{}-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
            repos_ca()
        ),
    )
    .unwrap();
    for (file, why) in [
        (work.path().join("missing.pem"), "cannot read it"),
        (key, "holds a PRIVATE KEY block"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("worker")
            .env("LARDER_REPOS_CA_FILE", &file)
            .env("LARDER_DATA_DIR", work.path().join("data"))
            .env("LARDER_AMQP_URL", "amqp://127.0.0.1:1/%2f")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("LARDER_REPOS_CA_FILE") && stderr.contains(why),
            "{stderr}"
        );
    }
}

/// `larder cleanup` and `larder export` beside a busy `larder serve` (cron on the machine it
/// runs on): every command succeeds and every request completes. On the embedded database the
/// processes share one SQLite file: a transaction that read before another process committed
/// must wait for its turn to write, not fail.
#[tokio::test]
async fn cleanup_and_export_beside_a_busy_serve_both_succeed() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for n in 0..4 {
        let (repo, commit) = GitRepo::with_file(
            work.path().join(format!("repo{n}")),
            "a.txt",
            &n.to_string(),
        );
        ids.push(
            larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
                .await,
        );
    }
    let env = larder.env.clone();
    let out = work.path().join("export");
    let beside = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            run_ok(
                std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
                    .arg("cleanup")
                    .envs(&env),
            );
        }
        run_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
                .args(["export", "--out"])
                .arg(&out)
                .envs(&env),
        );
    });
    for id in ids {
        assert_eq!(larder.wait(id).await["state"], "complete", "request {id}");
    }
    beside.await.unwrap();
}
