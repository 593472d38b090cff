//! A stored file whose bytes changed without a write (rot, a bad disk) is never served whole by
//! a per-request repository: the response fails short of its length, the file is removed from
//! the store, and the next request that needs it downloads it again.

use crate::support::projects;
use crate::support::*;
use std::time::{Duration, SystemTime};

#[tokio::test]
async fn a_rotten_stored_tarball_is_not_served_and_is_downloaded_again() {
    let tmp = tempfile::tempdir().unwrap();
    let npm = projects::npm(tmp.path(), 2).await;
    let project = &npm.project;
    let mut larder = Larder::new();
    project.configure(&mut larder);
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let id = larder.submit(project.body()).await;
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());

    let pkg = &npm.tree[0].pkg;
    let key = format!("deps/npm/{}", pkg.tarball_path());
    let stored = larder.data.path().join(&key);
    let whole = std::fs::read(&stored).unwrap();
    let token = larder.npm_token(id).await;
    let url = format!("{}/repos/{id}/npm/{}", larder.url, pkg.tarball_path());
    // the body, or why there is none whole
    let fetch = || async {
        let resp = larder
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(resp.status(), 200);
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        fetch().await.unwrap(),
        whole,
        "served whole while it is whole"
    );

    // rot: other bytes, the same size and modification time (no write the record would see)
    let mtime: SystemTime = std::fs::metadata(&stored).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&stored)
        .unwrap();
    let mut rotten = whole.clone();
    let middle = rotten.len() / 2;
    rotten[middle] ^= 0xff;
    std::io::Write::write_all(&mut &file, &rotten).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    // the response fails short of its length (a small file: before its head)
    assert!(fetch().await.is_err(), "the rotten file was served whole");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotten file stays in the store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // the next request downloads it again, and its repository serves it whole
    project.upstream.clear_requests();
    let again = larder.submit(project.body()).await;
    let done = larder.wait(again).await;
    assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
    let downloads = project
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.ends_with(".tgz"))
        .count();
    assert_eq!(downloads, 1, "only the removed tarball is downloaded again");
    assert_eq!(std::fs::read(&stored).unwrap(), whole);
}
