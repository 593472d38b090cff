//! A repository with large files, fetched over git:// as from a real server: the bundle's `app/`
//! is the commit byte for byte (large files are streamed out of the fetched pack, never held
//! whole in memory), and with `include-git-dir` the bundled repository is clean.

use crate::support::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

const BIG_MIB: usize = 64;

fn sha256_of(path: &Path) -> String {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

async fn download_and_unpack(larder: &Larder, id: i64, dest: &Path) -> Vec<u8> {
    let (bytes, _) = larder.download(id).await;
    tar::Archive::new(flate2::read::MultiGzDecoder::new(&bytes[..]))
        .unpack(dest)
        .unwrap();
    bytes
}

#[tokio::test]
async fn large_files_arrive_byte_for_byte() {
    let base = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(base.path().join("big"));
    std::fs::create_dir_all(repo.dir.join("data")).unwrap();
    let big_sha = write_random_file(&repo.dir.join("data/big.bin"), BIG_MIB, 1);
    let tool_sha = write_random_file(&repo.dir.join("tool"), 2, 2);
    std::fs::set_permissions(
        repo.dir.join("tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // converted on checkout: stays with libgit2, and must still match `git archive`
    repo.write(".gitattributes", "*.txt text eol=crlf\n")
        .write("notes.txt", &"a line of text\n".repeat(150_000))
        .write("README", "large files\n");
    let commit = repo.commit("large files");
    let daemon = GitDaemon::start(base.path()).await;
    let url = format!("git://127.0.0.1:{}/big", daemon.port);

    let _alone = alone().await;
    let larder = Larder::start().await;
    let id = larder
        .submit(json!({"repo": url, "ref": commit, "pkg_managers": []}))
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");

    let out = base.path().join("bundle");
    let bundle = download_and_unpack(&larder, id, &out).await;
    assert_eq!(sha256_of(&out.join("app/data/big.bin")), big_sha);
    assert_eq!(sha256_of(&out.join("app/tool")), tool_sha);
    assert_app_is_commit(&bundle, &repo.dir, &commit);
    assert!(!out.join("app/.git").exists());
    // a fresh connection: the pooled one may have idled out while the bundle was checked
    let log = reqwest::get(format!("{}/api/v1/requests/{id}/logs", larder.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("large files are streamed from the pack"),
        "the large files did not take the streaming path:\n{log}"
    );

    // the cached source again, with its repository: the index matches the files
    let id = larder
        .submit(
            json!({"repo": url, "ref": commit, "pkg_managers": [], "flags": ["include-git-dir"]}),
        )
        .await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
    let out = base.path().join("bundle-git");
    download_and_unpack(&larder, id, &out).await;
    assert_eq!(sha256_of(&out.join("app/data/big.bin")), big_sha);
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(out.join("app"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "");
    let head = git(&out.join("app"), &["rev-parse", "HEAD"]);
    assert_eq!(head, commit);
}
