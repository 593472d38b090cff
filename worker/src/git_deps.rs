//! Git dependencies (npm, pip, cargo): fetched once per commit into
//! `deps/git/<host>/<path>/<commit>.tar.gz`, reused without the network, checked out on demand.

use crate::blocking::blocking;
use crate::fetch::Fetcher;
use common::archive::UnpackLimits;
use common::commit::CommitId;
use common::{ErrorKind, Failure, Store};
use std::path::{Path, PathBuf};

pub fn git_dep_key(url: &str, commit: &str) -> Result<String, Failure> {
    let key = crate::source::source_key(url, commit, false)?;
    Ok(format!("deps/git/{}", key.trim_start_matches("sources/")))
}

/// A lockfile's commit for a git dependency: only a full id pins content.
pub fn commit_id(url: &str, commit: &str) -> Result<CommitId, Failure> {
    CommitId::parse_any_case(commit).map_err(|_| {
        Failure::new(
            ErrorKind::InvalidRequestData,
            format!("The git dependency {url} must name a full commit id, not {commit:?}"),
        )
    })
}

/// Make sure the store holds `url` at `commit` (a full 40-hex id) and unpack its files into
/// `dest` (without `.git`: the package managers pack or vendor the files only). Returns the
/// store key.
pub async fn checkout(
    fetcher: &Fetcher,
    url: &str,
    commit: &CommitId,
    dest: &Path,
) -> Result<String, Failure> {
    let key = git_dep_key(url, commit.as_str())?;
    // another worker's fetch of it, on an object store
    fetcher.take_into_cache(&key).await?;
    let (store, outbound) = (fetcher.store(), fetcher.outbound().clone());
    crate::source::check_git_url(store, &key, url, &outbound, "the git dependency")?;
    let (store, k, url, commit, dest): (Store, String, String, String, PathBuf) = (
        store.clone(),
        key.clone(),
        url.into(),
        commit.to_string(),
        dest.into(),
    );
    blocking(move || {
        crate::source::ensure_source(&store, &k, &url, &commit, false, &outbound)?;
        let archive = store
            .path(&k)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        let tmp = tempfile::tempdir_in(dest.parent().unwrap_or(Path::new("/tmp")))
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        common::archive::unpack_tar_gz(
            &archive,
            tmp.path(),
            UnpackLimits {
                keep_any_symlink: true,
                without_git_dirs: true,
                ..Default::default()
            },
        )
        .map_err(|e| {
            Failure::new(
                ErrorKind::FileAccessError,
                format!("The cached git dependency {k} is damaged: {e}"),
            )
        })?;
        std::fs::rename(tmp.path().join("app"), &dest)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        crate::sandbox::check_symlinks(&dest, false)?;
        Ok(())
    })
    .await?;
    fetcher.share(key.clone());
    Ok(key)
}
