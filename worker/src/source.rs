//! The application source: fetched once per commit with git2 and kept permanently in the
//! store as `sources/<host>/<path>/<commit>.tar.gz` (with `.git` inside).

use crate::git_pack::{self, Packed, PackedBlob};
use crate::outbound::{BodyKind, DownloadLimits, Outbound, OutboundPolicy};
use common::archive::TarGzWriter;
use common::{ErrorKind, Failure, Store};
use git2::{
    AttrValue, AutotagOption, FetchOptions, Oid, RemoteCallbacks, RemoteRedirect, Repository,
};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
                return Err(Failure::new(
                    ErrorKind::InvalidRequestData,
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

/// How much of a pack file libgit2 maps at once (its defaults, 1 GiB windows and up to 8 GiB
/// mapped, keep a whole large pack in the process's resident set). Its final pass over a
/// freshly fetched pack holds every window until the pass ends, whatever the limit.
const MWINDOW_BYTES: usize = 16 << 20;
const MWINDOW_MAPPED_LIMIT_BYTES: usize = 64 << 20;

/// Bound libgit2's mappings of pack files. Call once, before any other use of git2.
pub fn limit_libgit2_mappings() {
    // SAFETY: libgit2's global options are set before any thread uses libgit2.
    let set = unsafe {
        git2::opts::set_mwindow_size(MWINDOW_BYTES)
            .and_then(|()| git2::opts::set_mwindow_mapped_limit(MWINDOW_MAPPED_LIMIT_BYTES))
    };
    if let Err(e) = set {
        tracing::warn!(error = %e, "cannot limit libgit2's pack mappings");
    }
}

/// Blobs at least this large are not checked out by libgit2 (which inflates a whole blob into
/// memory) when they are stored whole in a pack: they are streamed from it instead.
pub const STREAM_BLOB_BYTES: usize = 1 << 20;

/// A file the checkout left as an empty placeholder (path and mode only): its content is
/// streamed from the pack where the tree is archived.
#[derive(Clone, Debug)]
pub struct StreamedFile {
    /// Relative to the root of the checkout.
    pub path: PathBuf,
    pub executable: bool,
    pub blob: PackedBlob,
}

/// A fetched and checked-out repository.
pub struct Checkout {
    pub repo: Repository,
    pub streamed: Vec<StreamedFile>,
}

/// Fetch `commit` of `url` into a fresh repository at `dir` and check it out, large blobs left
/// as placeholders (see [`Checkout::streamed`]): only once the outbound policy allows the URL's
/// resolved addresses, following no redirect, within the request's size limits and
/// `LARDER_DOWNLOAD_TIMEOUT`. Blocking.
pub fn fetch_commit(
    url: &str,
    commit: &str,
    dir: &Path,
    outbound: &Outbound,
) -> Result<Checkout, Failure> {
    outbound
        .policy()
        .resolve_git_url(url)
        .map_err(|r| r.failure(&format!("the git repository {url}")))?;
    let bad_ref = || {
        Failure::new(ErrorKind::InvalidRequestData,
            format!("Failed on checking out the Git repository. Please verify the supplied reference of \"{commit}\" is valid."),
        )
    };
    let oid = Oid::from_str(commit).map_err(|_| bad_ref())?;
    let cannot_create = |e: git2::Error| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Cannot create a git repository: {e}"),
        )
    };
    let repo = match FETCH_PROGRAM.get() {
        Some(program) => {
            drop(Repository::init(dir).map_err(cannot_create)?);
            fetch_in_child(program, url, commit, dir, outbound)?;
            Repository::open(dir).map_err(cannot_create)?
        }
        None => {
            let repo = Repository::init(dir).map_err(cannot_create)?;
            fetch_into(&repo, url, commit, outbound)?;
            repo
        }
    };
    let streamed = {
        let found = repo.find_commit(oid).map_err(|_| bad_ref())?;
        repo.set_head_detached(found.id()).map_err(|_| bad_ref())?;
        checkout(&repo, &found, dir).map_err(|e| match e {
            CheckoutError::Git(e) => Failure::new(
                ErrorKind::InvalidRequestData,
                format!(
                    "Failed on checking out the Git repository at {commit}: {}",
                    e.message()
                ),
            ),
            CheckoutError::Pack(e) => Failure::new(
                ErrorKind::FileAccessError,
                format!("Cannot read the fetched repository at {commit}: {e}"),
            ),
            CheckoutError::Io(e) => Failure::new(
                ErrorKind::FileAccessError,
                format!("Cannot write the checkout of {commit}: {e}"),
            ),
        })?
    };
    Ok(Checkout { repo, streamed })
}

/// The program whose `git-fetch` command runs this process's fetches.
static FETCH_PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Run every git fetch of this process in a child process, `<program> git-fetch`
/// ([`GitFetchJob`] as JSON on stdin, [`GitFetchReport`] on stdout). libgit2's indexer keeps
/// every window of the pack it writes mapped while it checksums an object, so fetching a 500 MB
/// file puts 500 MB of the pack in the fetching process's resident set; in a child it stays out
/// of the api's and the worker's, and a hostile pack is parsed away from them. Unset, fetches
/// run in this process.
pub fn fetch_in_child_processes(program: PathBuf) {
    let _ = FETCH_PROGRAM.set(program);
}

/// One fetch for a child process: the request's limits and what it has downloaded so far.
#[derive(Debug, Serialize, Deserialize)]
pub struct GitFetchJob {
    pub url: String,
    pub commit: String,
    /// An initialised repository.
    pub git_dir: PathBuf,
    pub max_artifact: u64,
    pub max_request: u64,
    pub timeout_ms: u64,
    pub downloaded: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GitFetchReport {
    /// Bytes received, to count into the request's total.
    pub received: u64,
    pub result: Result<(), Failure>,
}

/// What `larder git-fetch` does with a job.
pub fn run_fetch_job(job: GitFetchJob) -> GitFetchReport {
    crate::configure_libgit2();
    let limits = DownloadLimits {
        max_artifact: job.max_artifact,
        max_request: job.max_request,
        timeout: Duration::from_millis(job.timeout_ms),
    };
    // the parent checked the URL against the policy; a fetch only needs the limits
    let outbound = Outbound::new(OutboundPolicy::default(), limits);
    let _ = outbound.charge(job.downloaded);
    let result = Repository::open(&job.git_dir)
        .map_err(|e| {
            Failure::new(
                ErrorKind::FileAccessError,
                format!("Cannot open the git repository being fetched: {e}"),
            )
        })
        .and_then(|repo| fetch_into(&repo, &job.url, &job.commit, &outbound));
    GitFetchReport {
        received: outbound.downloaded().saturating_sub(job.downloaded),
        result,
    }
}

fn fetch_in_child(
    program: &Path,
    url: &str,
    commit: &str,
    git_dir: &Path,
    outbound: &Outbound,
) -> Result<(), Failure> {
    let limits = outbound.limits();
    let job = GitFetchJob {
        url: url.to_string(),
        commit: commit.to_string(),
        git_dir: git_dir.to_path_buf(),
        max_artifact: limits.max_artifact,
        max_request: limits.max_request,
        timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
        downloaded: outbound.downloaded(),
    };
    let broken = |reason: String| {
        Failure::new(
            ErrorKind::UnknownError,
            format!("The fetch of the git repository {url} {reason}"),
        )
    };
    let mut child = std::process::Command::new(program)
        .arg("git-fetch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| broken(format!("could not start: {e}")))?;
    if let Some(stdin) = child.stdin.take() {
        serde_json::to_writer(stdin, &job).map_err(|e| broken(format!("could not start: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| broken(format!("was lost: {e}")))?;
    let report: GitFetchReport = serde_json::from_slice(&output.stdout)
        .map_err(|_| broken(format!("ended without a result ({})", output.status)))?;
    let charged = outbound.charge(report.received);
    report.result.map_err(|f| Failure::new(f.kind, f.message))?;
    charged.map_err(|e| e.failure(&format!("The git repository {url}")))
}

enum FetchError {
    Git(git2::Error),
    /// Stopped at a limit, or the request's total is spent.
    Stopped(Failure),
}

/// [`fetch_within_limits`], its errors as the request's failure.
fn fetch_into(
    repo: &Repository,
    url: &str,
    commit: &str,
    outbound: &Outbound,
) -> Result<(), Failure> {
    fetch_within_limits(repo, url, commit, outbound).map_err(|e| match e {
        FetchError::Git(e) => Failure::new(
            ErrorKind::RepositoryAccessError,
            format!("Failed cloning the Git repository {url}: {}", e.message()),
        ),
        FetchError::Stopped(failure) => failure,
    })
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
                stopped.set(Some(Failure::new(
                    ErrorKind::NetworkError,
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

#[derive(Debug, thiserror::Error)]
enum CheckoutError {
    #[error(transparent)]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Pack(#[from] crate::git_pack::PackError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Check out `commit` at `dir` (the repository's work tree, empty) and write the index. Blobs
/// that [`streamable`] picks are left as empty placeholders with their mode.
fn checkout(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    dir: &Path,
) -> Result<Vec<StreamedFile>, CheckoutError> {
    let tree = commit.tree()?;
    let mut index = repo.index()?;
    index.read_tree(&tree)?;
    let streamed = streamable(repo, &index)?;
    for s in &streamed {
        index.remove_path(&s.path)?;
    }
    let mut options = git2::build::CheckoutBuilder::new();
    options.force();
    repo.checkout_index(Some(&mut index), Some(&mut options))?;
    for s in &streamed {
        let file = dir.join(&s.path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(&file)?;
        std::fs::set_permissions(
            &file,
            std::fs::Permissions::from_mode(if s.executable { 0o755 } else { 0o644 }),
        )?;
        // no stat data: git compares the content the first time it looks
        index.add(&git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: if s.executable { 0o100755 } else { 0o100644 },
            uid: 0,
            gid: 0,
            file_size: u32::try_from(s.blob.size).unwrap_or(u32::MAX),
            id: Oid::from_bytes(&s.blob.id)?,
            flags: 0,
            flags_extended: 0,
            path: s.path.as_os_str().as_bytes().to_vec(),
        })?;
    }
    // no stat data for any entry, and no reflog: two checkouts of one commit make the same
    // `.git`, so every fetch of it makes the same archive (git compares content the first time
    // it looks at an entry without stat data)
    let checked_out: Vec<git2::IndexEntry> = index.iter().collect();
    for mut entry in checked_out {
        entry.ctime = git2::IndexTime::new(0, 0);
        entry.mtime = git2::IndexTime::new(0, 0);
        (entry.dev, entry.ino, entry.uid, entry.gid) = (0, 0, 0, 0);
        index.add(&entry)?;
    }
    index.write()?;
    match std::fs::remove_dir_all(repo.path().join("logs")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    if !streamed.is_empty() {
        let bytes: u64 = streamed.iter().map(|s| s.blob.size).sum();
        tracing::info!(
            files = streamed.len(),
            bytes,
            "large files are streamed from the pack"
        );
    }
    Ok(streamed)
}

/// The index entries to stream: regular files of at least [`STREAM_BLOB_BYTES`] stored whole in
/// a pack that no git attribute or `core.autocrlf` converts on checkout (those stay with
/// libgit2, which converts them).
fn streamable(repo: &Repository, index: &git2::Index) -> Result<Vec<StreamedFile>, CheckoutError> {
    let odb = repo.odb()?;
    let autocrlf = repo
        .config()?
        .get_string("core.autocrlf")
        .is_ok_and(|v| !v.eq_ignore_ascii_case("false"));
    let mut out = Vec::new();
    for entry in index.iter() {
        let executable = match entry.mode {
            0o100644 => false,
            0o100755 => true,
            _ => continue,
        };
        let (size, kind) = odb.read_header(entry.id)?;
        if kind != git2::ObjectType::Blob || size < STREAM_BLOB_BYTES {
            continue;
        }
        let path = PathBuf::from(OsStr::from_bytes(&entry.path));
        if converted_on_checkout(repo, &path, autocrlf)? {
            tracing::info!(path = %path.display(), size, "a git attribute converts this large file: it is checked out in memory");
            continue;
        }
        match git_pack::find_blob(repo.path(), entry.id.as_bytes())? {
            Packed::Whole(blob) => out.push(StreamedFile {
                path,
                executable,
                blob,
            }),
            Packed::Delta | Packed::Absent => {
                tracing::info!(path = %path.display(), size, "this large file is stored as a delta: it is checked out in memory");
            }
        }
    }
    Ok(out)
}

/// Whether libgit2's checkout would change the blob at `path` (end-of-line conversion, `ident`,
/// a filter driver), judged from the attributes in the index and the configuration.
fn converted_on_checkout(
    repo: &Repository,
    path: &Path,
    autocrlf: bool,
) -> Result<bool, git2::Error> {
    let flags = git2::AttrCheckFlags::INDEX_ONLY;
    let attr = |name: &str| -> Result<AttrValue<'_>, git2::Error> {
        Ok(AttrValue::from_string(repo.get_attr(path, name, flags)?))
    };
    if attr("ident")? == AttrValue::True || attr("filter")? != AttrValue::Unspecified {
        return Ok(true);
    }
    let (text, crlf) = (attr("text")?, attr("crlf")?);
    if text == AttrValue::False || crlf == AttrValue::False {
        // binary: never converted
        return Ok(false);
    }
    let eol = attr("eol")?;
    Ok(autocrlf
        || [text, crlf, eol]
            .iter()
            .any(|v| *v != AttrValue::Unspecified))
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
/// Returns their streamed files, relative to `dir`.
pub fn fetch_submodules(
    repo: &Repository,
    parent_url: &str,
    dir: &Path,
    outbound: &Outbound,
) -> Result<Vec<StreamedFile>, Failure> {
    let mut streamed = Vec::new();
    let submodules = repo.submodules().map_err(|e| {
        Failure::new(
            ErrorKind::InvalidRepoStructure,
            format!("Cannot read .gitmodules: {e}"),
        )
    })?;
    for sub in submodules {
        let path = sub.path().to_path_buf();
        let Some(rel) = common::archive::safe_relative(&path) else {
            return Err(Failure::new(
                ErrorKind::InvalidRepoStructure,
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
            return Err(Failure::new(
                ErrorKind::InvalidRepoStructure,
                format!("The submodule {} has no commit recorded", path.display()),
            ));
        };
        let target = dir.join(&rel);
        std::fs::create_dir_all(&target)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        let checkout = fetch_commit(&url, &commit.to_string(), &target, outbound)?;
        streamed.extend(checkout.streamed.into_iter().map(|s| StreamedFile {
            path: rel.join(&s.path),
            ..s
        }));
    }
    Ok(streamed)
}

/// Whether the policy lets the repository `url` be read: a cached copy (`key`) is only handed
/// out while the policy would still fetch it, but offline (`LARDER_OFFLINE`) the store is where
/// repositories come from, so its copy is enough. `what` names the repository in the failure.
pub fn check_git_url(
    store: &Store,
    key: &str,
    url: &str,
    outbound: &Outbound,
    what: &str,
) -> Result<(), Failure> {
    match outbound.policy().check_git_url(url) {
        Ok(()) => Ok(()),
        Err(crate::outbound::Refusal::Offline) if store.contains(key) => Ok(()),
        Err(refusal) => Err(refusal.failure(&format!("{what} {url}"))),
    }
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
    check_git_url(store, key, url, outbound, "the git repository")?;
    if store.contains(key) {
        tracing::info!(key, "reusing the cached source archive");
        return Ok(false);
    }
    let io = |e: std::io::Error| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Cannot write the source archive: {e}"),
        )
    };
    let tmp = store.temp_dir("clone-").map_err(io)?;
    let app = tmp.path().join("app");
    tracing::info!(url, commit, "fetching the repository");
    let Checkout { repo, mut streamed } = fetch_commit(url, commit, &app, outbound)?;
    if submodules {
        streamed.extend(fetch_submodules(&repo, url, &app, outbound)?);
    }
    drop(repo);
    let streamed: HashMap<PathBuf, PackedBlob> =
        streamed.into_iter().map(|s| (s.path, s.blob)).collect();
    let temp = store.temp_file().map_err(io)?;
    let file = temp.reopen().map_err(io)?;
    let mut writer = TarGzWriter::new(file);
    writer
        .append_tree_substituted("app", &app, &|_| false, &|rel: &Path| {
            let blob = streamed.get(rel)?;
            Some(
                blob.open()
                    .map(|r| (blob.size, Box::new(r) as Box<dyn std::io::Read>)),
            )
        })
        .map_err(io)?;
    writer.finish().map_err(io)?;
    store
        .persist(temp, key)
        .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    /// A repository at `dir` with `files` (path, content, executable) in one commit.
    fn commit_files(dir: &Path, files: &[(&str, &[u8], bool)]) -> String {
        let repo = Repository::init(dir).unwrap();
        let mut index = repo.index().unwrap();
        for (path, data, executable) in files {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, data).unwrap();
            let mode = if *executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
            index.add_path(Path::new(path)).unwrap();
        }
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::new("t", "t@t", &git2::Time::new(0, 0)).unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap()
            .to_string()
    }

    #[test]
    fn large_files_are_streamed_from_the_pack_into_the_source_archive() {
        let dir = tempfile::tempdir().unwrap();
        let big = noise(STREAM_BLOB_BYTES + 12_345, 3);
        let text: Vec<u8> = "a line of text\n"
            .repeat(STREAM_BLOB_BYTES / 10)
            .into_bytes();
        let src = dir.path().join("src");
        let commit = commit_files(
            &src,
            &[
                (".gitattributes", b"conv/*.txt text eol=crlf\n", false),
                ("bin/big.bin", &big, true),
                ("conv/big.txt", &text, false),
                ("small", b"small", false),
            ],
        );
        let url = src.to_str().unwrap();

        // what the checkout leaves to the pack: the big binary, not the converted text
        let mut config = common::Config::from_env();
        config.allow_local_repos = true;
        let outbound = Outbound::for_request(&config);
        let checkout = fetch_commit(url, &commit, &dir.path().join("clone"), &outbound).unwrap();
        let streamed: Vec<&Path> = checkout.streamed.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(streamed, [Path::new("bin/big.bin")]);
        assert!(checkout.streamed[0].executable);

        let store = Store::new(dir.path().join("store"));
        let key = source_key(url, &commit, false).unwrap();
        assert!(ensure_source(&store, &key, url, &commit, false, &outbound).unwrap());
        let out = dir.path().join("out");
        common::archive::unpack_tar_gz(
            &store.path(&key).unwrap(),
            &out,
            common::archive::UnpackLimits::default(),
        )
        .unwrap();
        let app = out.join("app");
        assert!(std::fs::read(app.join("bin/big.bin")).unwrap() == big);
        let mode = std::fs::metadata(app.join("bin/big.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        let converted = std::fs::read(app.join("conv/big.txt")).unwrap();
        assert!(converted.starts_with(b"a line of text\r\n"));
        assert_eq!(converted.len(), text.len() + STREAM_BLOB_BYTES / 10);
        assert_eq!(std::fs::read(app.join("small")).unwrap(), b"small");
        // the archived repository's index matches its files
        let repo = Repository::open(&app).unwrap();
        let mut options = git2::StatusOptions::new();
        options.include_untracked(true);
        let statuses = repo.statuses(Some(&mut options)).unwrap();
        let dirty: Vec<String> = statuses
            .iter()
            .map(|s| format!("{:?} {:?}", s.path(), s.status()))
            .collect();
        assert!(dirty.is_empty(), "{dirty:?}");
    }

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

    #[test]
    fn offline_a_remote_repository_comes_from_the_store_or_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut config = common::Config::from_env();
        config.offline = true;
        let outbound = Outbound::for_request(&config);
        let url = "https://example.com/org/repo.git";
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let key = source_key(url, commit, false).unwrap();
        let missing = ensure_source(&store, &key, url, commit, false, &outbound).unwrap_err();
        assert!(missing.message.contains(url), "{}", missing.message);
        assert!(
            missing.message.contains("LARDER_OFFLINE"),
            "{}",
            missing.message
        );
        // imported: read from the store, never from the network
        store.put_bytes(&key, b"an archive").unwrap();
        assert!(!ensure_source(&store, &key, url, commit, false, &outbound).unwrap());
    }
}
