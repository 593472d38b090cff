//! The application source: fetched once per commit with git2 and kept permanently in the
//! store as `sources/<host>/<path>/<commit>.tar.gz` (with `.git` inside).

use crate::outbound::{BodyKind, Outbound};
use common::archive::TarGzWriter;
use common::{Failure, Store};
use git2::{AutotagOption, FetchOptions, Oid, RemoteCallbacks, RemoteRedirect, Repository};
use std::cell::Cell;
use std::path::{Component, Path};
use std::time::Instant;

/// The store key of a repository's source at a commit. The host is part of the key, so two
/// hosts with the same repository path never share a slot.
pub fn source_key(repo_url: &str, commit: &str, with_submodules: bool) -> Result<String, Failure> {
    let (host, path) = match common::purl::host_and_path(repo_url) {
        Some((host, path)) if !host.is_empty() => (host, path),
        _ => {
            let local = repo_url.strip_prefix("file://").unwrap_or(repo_url);
            (
                "local".to_string(),
                local.trim_start_matches('/').to_string(),
            )
        }
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = vec![sanitize(&host)];
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(sanitize(&p.to_string_lossy())),
            Component::CurDir => {}
            _ => {
                return Err(Failure::client(
                    "InvalidRequestData",
                    format!("The repository URL {repo_url} has an unusable path"),
                ))
            }
        }
    }
    let suffix = if with_submodules {
        "-with-submodules"
    } else {
        ""
    };
    Ok(format!(
        "sources/{}/{commit}{suffix}.tar.gz",
        parts.join("/")
    ))
}

fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@~+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn is_local(repo_url: &str) -> bool {
    repo_url.starts_with('/') || repo_url.starts_with("file://")
}

/// Fetch `commit` of `url` into a fresh repository at `dir` and check it out: only once the
/// outbound policy allows the URL's resolved addresses, following no redirect, within the
/// request's size limits and `LARDER_DOWNLOAD_TIMEOUT`. Blocking.
pub fn fetch_commit(
    url: &str,
    commit: &str,
    dir: &Path,
    outbound: &Outbound,
) -> Result<Repository, Failure> {
    outbound
        .policy()
        .resolve_git_url(url)
        .map_err(|r| r.failure(&format!("the git repository {url}")))?;
    let access = |e: git2::Error| {
        Failure::client(
            "RepositoryAccessError",
            format!("Failed cloning the Git repository {url}: {}", e.message()),
        )
    };
    let bad_ref = || {
        Failure::client(
            "InvalidRequestData",
            format!("Failed on checking out the Git repository. Please verify the supplied reference of \"{commit}\" is valid."),
        )
    };
    let oid = Oid::from_str(commit).map_err(|_| bad_ref())?;
    let repo = Repository::init(dir).map_err(|e| {
        Failure::server(
            "FileAccessError",
            format!("Cannot create a git repository: {e}"),
        )
    })?;
    fetch_within_limits(&repo, url, commit, outbound).map_err(|e| match e {
        FetchError::Git(e) => access(e),
        FetchError::Stopped(failure) => failure,
    })?;
    {
        let found = repo.find_commit(oid).map_err(|_| bad_ref())?;
        repo.set_head_detached(found.id()).map_err(|_| bad_ref())?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.force();
        repo.checkout_head(Some(&mut checkout)).map_err(|e| {
            Failure::client(
                "InvalidRequestData",
                format!(
                    "Failed on checking out the Git repository at {commit}: {}",
                    e.message()
                ),
            )
        })?;
    }
    Ok(repo)
}

enum FetchError {
    Git(git2::Error),
    /// Stopped at a limit, or the request's total is spent.
    Stopped(Failure),
}

/// Fetch `commit` into `repo` (all branches and tags when the server refuses to hand out an
/// unadvertised commit), following no redirect, stopped at the request's size limits and
/// `LARDER_DOWNLOAD_TIMEOUT`. The progress callback is the only place libgit2 lets a fetch be
/// stopped, and it runs as pack data arrives: a server that sends nothing is ended by the
/// server timeout set at worker start.
fn fetch_within_limits(
    repo: &Repository,
    url: &str,
    commit: &str,
    outbound: &Outbound,
) -> Result<(), FetchError> {
    let deadline = Instant::now() + outbound.limits().timeout;
    let stopped: Cell<Option<Failure>> = Cell::new(None);
    let received = Cell::new(0u64);
    let what = format!("The git repository {url}");
    let options = |tags: AutotagOption| {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.transfer_progress(|progress| {
            let bytes = progress.received_bytes() as u64;
            received.set(bytes);
            if let Err(e) = outbound.check_size(BodyKind::Artifact, 0, bytes) {
                stopped.set(Some(e.failure(&what)));
                return false;
            }
            if Instant::now() > deadline {
                stopped.set(Some(Failure::server(
                    "NetworkError",
                    format!(
                        "{what} did not download within {} (LARDER_DOWNLOAD_TIMEOUT)",
                        humantime::format_duration(outbound.limits().timeout)
                    ),
                )));
                return false;
            }
            true
        });
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(tags)
            .follow_redirects(RemoteRedirect::None);
        options
    };
    // every fetch counts into the request's total, and a stop is final
    let settle = |result: Result<(), git2::Error>| {
        outbound
            .charge(received.take())
            .map_err(|e| FetchError::Stopped(e.failure(&what)))?;
        match stopped.take() {
            Some(failure) => Err(FetchError::Stopped(failure)),
            None => Ok(result),
        }
    };
    let mut remote = repo.remote_anonymous(url).map_err(FetchError::Git)?;
    let mut by_id = options(AutotagOption::None);
    if !is_local(url) {
        by_id.depth(1);
    }
    let Err(e) = settle(remote.fetch(&[commit], Some(&mut by_id), None))? else {
        return Ok(());
    };
    tracing::debug!(error = %e, "fetch by commit id refused; fetching all refs");
    let mut all = options(AutotagOption::All);
    let refspecs = [
        "+refs/heads/*:refs/remotes/origin/*",
        "+refs/tags/*:refs/tags/*",
    ];
    settle(remote.fetch(&refspecs, Some(&mut all), None))?.map_err(FetchError::Git)
}

/// Resolve a submodule URL relative to its superproject's URL.
pub fn resolve_submodule_url(parent: &str, url: &str) -> String {
    if !(url.starts_with("./") || url.starts_with("../")) {
        return url.to_string();
    }
    let mut base: Vec<&str> = parent.trim_end_matches('/').split('/').collect();
    for part in url.split('/') {
        match part {
            "." => {}
            ".." => {
                base.pop();
            }
            p => base.push(p),
        }
    }
    base.join("/")
}

/// Fetch the submodules (one level) recorded in the checked-out tree at their recorded commits.
pub fn fetch_submodules(
    repo: &Repository,
    parent_url: &str,
    dir: &Path,
    outbound: &Outbound,
) -> Result<(), Failure> {
    let submodules = repo.submodules().map_err(|e| {
        Failure::client(
            "InvalidRepoStructure",
            format!("Cannot read .gitmodules: {e}"),
        )
    })?;
    for sub in submodules {
        let path = sub.path().to_path_buf();
        let Some(rel) = common::archive::safe_relative(&path) else {
            return Err(Failure::client(
                "InvalidRepoStructure",
                format!(
                    "The submodule path {} is outside the repository",
                    path.display()
                ),
            ));
        };
        let url = resolve_submodule_url(parent_url, sub.url().ok().flatten().unwrap_or_default());
        outbound
            .policy()
            .check_git_url(&url)
            .map_err(|r| r.failure(&format!("the submodule {} ({url})", path.display())))?;
        let Some(commit) = sub.head_id() else {
            return Err(Failure::client(
                "InvalidRepoStructure",
                format!("The submodule {} has no commit recorded", path.display()),
            ));
        };
        let target = dir.join(&rel);
        std::fs::create_dir_all(&target)
            .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
        fetch_commit(&url, &commit.to_string(), &target, outbound)?;
    }
    Ok(())
}

/// Make sure the store holds the source archive; fetch it from the repository if not.
/// Returns whether the network was used.
pub fn ensure_source(
    store: &Store,
    key: &str,
    url: &str,
    commit: &str,
    submodules: bool,
    outbound: &Outbound,
) -> Result<bool, Failure> {
    // a cached copy is only handed out while the policy would still fetch it
    outbound
        .policy()
        .check_git_url(url)
        .map_err(|r| r.failure(&format!("the git repository {url}")))?;
    if store.contains(key) {
        tracing::info!(key, "reusing the cached source archive");
        return Ok(false);
    }
    let io = |e: std::io::Error| {
        Failure::server(
            "FileAccessError",
            format!("Cannot write the source archive: {e}"),
        )
    };
    let tmp = store.temp_dir("clone-").map_err(io)?;
    let app = tmp.path().join("app");
    tracing::info!(url, commit, "fetching the repository");
    let repo = fetch_commit(url, commit, &app, outbound)?;
    if submodules {
        fetch_submodules(&repo, url, &app, outbound)?;
    }
    drop(repo);
    let temp = store.temp_file().map_err(io)?;
    let file = temp.reopen().map_err(io)?;
    let mut writer = TarGzWriter::new(file);
    writer.append_tree("app", &app, &|_| false).map_err(io)?;
    writer.finish().map_err(io)?;
    store
        .persist(temp, key)
        .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_include_host() {
        let sha = "a".repeat(40);
        assert_eq!(
            source_key("https://github.com/o/r.git", &sha, false).unwrap(),
            format!("sources/github.com/o/r/{sha}.tar.gz")
        );
        assert_eq!(
            source_key("git@evil.example:o/r", &sha, true).unwrap(),
            format!("sources/evil.example/o/r/{sha}-with-submodules.tar.gz")
        );
        assert_eq!(
            source_key("/tmp/x/repo", &sha, false).unwrap(),
            format!("sources/local/tmp/x/repo/{sha}.tar.gz")
        );
        assert!(source_key("https://h/a/../../b", &sha, false).is_ok_and(|k| !k.contains("..")));
    }

    #[test]
    fn relative_submodule_urls() {
        assert_eq!(
            resolve_submodule_url("https://h/o/r.git", "../s.git"),
            "https://h/o/s.git"
        );
        assert_eq!(
            resolve_submodule_url("https://h/o/r", "./s"),
            "https://h/o/r/s"
        );
        assert_eq!(
            resolve_submodule_url("https://h/o/r", "https://x/y"),
            "https://x/y"
        );
    }
}
