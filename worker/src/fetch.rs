//! Downloads into the permanent store: streamed to a temporary file while hashing, verified,
//! and only then moved into place. A file already in the store is re-verified, never re-fetched.
//!
//! Single flight: a request downloads a missing file only while it holds the file's lease
//! (`common::store::download_lease`), across requests and worker processes on one store.
//! Another request needing it meanwhile waits, then links the holder's verified file (verifying
//! it against its own digests, as a stored one) or, once the holder gave up or died, takes the
//! lease itself.

use crate::outbound::{BodyKind, LimitExceeded, Outbound, Refusal};
use crate::shared_objects::SharedObjects;
use common::digest::{Expected, FileDigests, Hasher};
use common::store::download_lease::{Attempt, DownloadLease, LeaseOwner};
use common::store::file_record;
use common::{Download, ErrorKind, Failure, Store};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether `digests` satisfy `expected`; the message names `label` when they do not.
pub fn verify(expected: &Expected, digests: &FileDigests, label: &str) -> Result<(), Failure> {
    if expected.is_met_by(digests) {
        return Ok(());
    }
    let algorithm = expected.0.first().map_or("", |d| d.algorithm.name());
    Err(Failure::new(
        ErrorKind::InvalidChecksum,
        // what was computed is never shown: it would hand out the digest of any content a URL
        // serves
        format!("The {algorithm} checksum of {label} does not match the expected {expected}"),
    ))
}

/// A format-specific check of a downloaded file, run before it is kept.
pub type Check = Box<dyn Fn(&Path) -> Result<(), Failure> + Send + Sync>;

/// No check beyond the digest.
pub fn no_check(_: &Download) -> Check {
    Box::new(|_| Ok(()))
}

/// A verified file waiting to be moved into the store (`temp` is None when it already is).
pub struct Staged {
    pub fetched: FetchedFile,
    temp: Option<tempfile::TempPath>,
    /// Held from the download until the file is in the store, or released when this is dropped
    /// (the request failed).
    lease: Option<DownloadLease>,
}

impl Staged {
    /// For a layout that reads no digests: 184 bytes less for each of 75,000 staged files.
    pub fn forget_digests(&mut self) {
        self.fetched.digests = None;
    }
}

/// A file in the store, with how it got there.
#[derive(Clone, Debug)]
pub struct FetchedFile {
    pub store_key: String,
    /// None once dropped for a layout that reads none ([`Staged::forget_digests`]).
    pub digests: Option<Box<FileDigests>>,
    pub from_network: bool,
}

/// Downloads of one request: through the outbound policy, within its size and time limits.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    store: Store,
    outbound: Outbound,
    /// This request as a holder of download leases; None when the store has no room for them
    /// (then it downloads without single flight).
    leases: Option<Arc<LeaseOwner>>,
    /// The digests of the files this request has verified and committed, by store key: a
    /// second package manager of the request that needs one (npm and yarn share tarballs)
    /// checks it against these instead of reading it again. Only kept digests are here (a
    /// layout that reads none forgets them as it stages).
    verified: Arc<std::sync::Mutex<HashMap<String, FileDigests>>>,
    /// On an object store: where a file missing from the store (this worker's cache of it) is
    /// taken from before it is downloaded.
    objects: Option<SharedObjects>,
    /// Every file this request committed, by store key.
    committed: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

const ATTEMPTS: u32 = 4;

/// How often a request waiting on another's download looks again.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// Where a file to stage comes from.
enum Source {
    Store,
    /// A link to the verified file another request downloaded.
    Linked(tempfile::TempPath),
    /// Downloaded, under its lease unless none could be had.
    Download(Option<DownloadLease>),
}

impl Fetcher {
    pub fn new(store: Store, outbound: Outbound) -> Self {
        let http = outbound
            .http_client()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("larder/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("TLS backend initializes");
        let leases = LeaseOwner::new(&store)
            .inspect_err(|e| tracing::warn!(error = %e, "downloads run without single flight"))
            .ok();
        Self {
            http,
            store,
            outbound,
            leases,
            verified: Arc::default(),
            objects: None,
            committed: Arc::default(),
        }
    }

    /// A missing file is taken from `objects` if they have it, downloaded otherwise.
    pub fn with_objects(mut self, objects: Option<SharedObjects>) -> Self {
        self.objects = objects;
        self
    }

    /// On an object store, take the stored file `key` into this worker's cache if the cache
    /// lacks it (a file a package manager keeps for itself, such as pip's index pins); whether
    /// the cache has it now. A directory store has it or not.
    pub async fn take_into_cache(&self, key: &str) -> Result<bool, Failure> {
        match &self.objects {
            Some(objects) => Ok(objects.take_into_cache(key).await?),
            None => Ok(self.store.contains(key)),
        }
    }

    /// A file this request stores itself (not a download) that other workers should find:
    /// put in the object store with the rest.
    pub fn share(&self, key: String) {
        self.committed.lock().expect("not poisoned").insert(key);
    }

    /// The store keys of every file this request committed (downloaded, taken or found).
    pub fn committed_keys(&self) -> Vec<String> {
        let committed = self.committed.lock().expect("not poisoned");
        committed.iter().cloned().collect()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The request's outbound policy and download budget (git fetches share it).
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Whether the policy lets `url` be requested; `what` names it in the failure.
    fn checked_url(&self, url: &str, what: &str) -> Result<(), Failure> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Failure::new(
                ErrorKind::InvalidRequestData,
                format!("{what} is not a valid URL: {e}"),
            )
        })?;
        self.outbound
            .policy()
            .check_http_url(&parsed)
            .map_err(|r| r.failure(what))
    }

    /// GET a small document (an index page, a config), with retries on transient errors,
    /// bounded in size (`BodyKind::Document`) and time (`LARDER_DOWNLOAD_TIMEOUT`).
    /// `Ok(None)` for 404/410.
    pub async fn get_bytes(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, Failure> {
        self.checked_url(url, url)?;
        let timeout = self.outbound.limits().timeout;
        tokio::time::timeout(timeout, self.get_bytes_retrying(url, accept))
            .await
            .unwrap_or_else(|_| Err(deadline_failure(url, timeout)))
    }

    async fn get_bytes_retrying(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, Failure> {
        let mut delay = Duration::from_millis(300);
        for attempt in 1..=ATTEMPTS {
            let err = match self.get_document(url, accept).await {
                Ok(found) => return Ok(Some(found)),
                Err(DownloadError::NotFound) => return Ok(None),
                Err(DownloadError::Final(failure)) => return Err(failure),
                Err(DownloadError::Transient(err)) => err,
            };
            if attempt == ATTEMPTS {
                return Err(Failure::new(
                    ErrorKind::NetworkError,
                    format!("Fetching {url} failed: {err}"),
                ));
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        unreachable!("the loop returns")
    }

    async fn get_document(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<(Vec<u8>, Option<String>), DownloadError> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        let resp = req.send().await.map_err(|e| send_error(&e, url))?;
        match resp.status() {
            s if s.is_success() => {}
            s if matches!(s.as_u16(), 404 | 410) => return Err(DownloadError::NotFound),
            s if s.is_client_error() && s.as_u16() != 429 => {
                return Err(DownloadError::Final(Failure::new(
                    ErrorKind::NetworkError,
                    format!("Fetching {url} failed: HTTP {s}"),
                )));
            }
            s => return Err(DownloadError::Transient(format!("HTTP {s}"))),
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        self.stream_body(resp, BodyKind::Document, url, |chunk| {
            body.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        Ok((body, content_type))
    }

    /// Hand a response body to `sink` chunk by chunk, within the size limit of `kind` and the
    /// request's total (both checked against Content-Length first, when there is one).
    async fn stream_body(
        &self,
        resp: reqwest::Response,
        kind: BodyKind,
        what: &str,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), DownloadError> {
        let too_large = |e: LimitExceeded| DownloadError::Final(e.failure(what));
        if let Some(length) = resp.content_length() {
            self.outbound
                .check_size(kind, 0, length)
                .map_err(too_large)?;
        }
        let mut received = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DownloadError::Transient(describe(&e)))?;
            let n = chunk.len() as u64;
            self.outbound
                .check_size(kind, received, n)
                .map_err(too_large)?;
            self.outbound.charge(n).map_err(too_large)?;
            received += n;
            sink(&chunk).map_err(|e| DownloadError::Transient(e.to_string()))?;
        }
        Ok(())
    }

    /// Make sure `download` is in the store and verified.
    pub async fn fetch(&self, download: &Download) -> Result<FetchedFile, Failure> {
        let staged = self.stage(download, no_check(download)).await?;
        let fetcher = self.clone();
        crate::blocking::blocking(move || fetcher.commit(staged)).await
    }

    /// A file in the store whose digests this request verified, or whose recorded ones
    /// (`common::store::file_record`) cover what `download` expects: checked against them
    /// without reading it. Its `check` still runs: it may be the only tie to this package
    /// manager's lockfile (yarn Berry's zip checksum). None when it must be staged the long way
    /// ([`stage`](Self::stage)). Blocking.
    pub fn stage_stored(
        &self,
        download: &Download,
        check: &Check,
    ) -> Option<Result<Staged, Failure>> {
        let path = self.store.path(&download.store_key).ok()?;
        let digests = self
            .verified
            .lock()
            .expect("not poisoned")
            .get(&download.store_key)
            .filter(|d| d.covers(&download.expected))
            .cloned()
            .or_else(|| {
                file_record::recorded_digests(&path).filter(|d| d.covers(&download.expected))
            })?;
        let checked =
            verify(&download.expected, &digests, &download.label).and_then(|()| check(&path));
        Some(checked.map(|()| staged(download, digests, None, None, false)))
    }

    /// Verify a file already in the store, or download and verify it into a staged temporary
    /// file that `commit` moves into the store.
    pub async fn stage(&self, download: &Download, check: Check) -> Result<Staged, Failure> {
        let path = self
            .store
            .path(&download.store_key)
            .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
        let ((temp, digests), lease) = match self.source(download, &path).await {
            Source::Store => {
                let (fetcher, download) = (self.clone(), download.clone());
                return crate::blocking::blocking(move || {
                    if let Some(checked) = fetcher.stage_stored(&download, &check) {
                        return checked;
                    }
                    // the stamp before the bytes: a write while they are read voids the record
                    let before = std::fs::metadata(&path).ok();
                    let digests =
                        hash_and_verify(&path, &download.expected, &download.label, &check)?;
                    if let Some(before) = before {
                        keep_record(&path, &digests, &before);
                    }
                    Ok(staged(&download, digests, None, None, false))
                })
                .await;
            }
            Source::Linked(temp) => {
                let (temp, digests) = verified_temp(temp, download, check).await?;
                return Ok(staged(download, digests, Some(temp), None, false));
            }
            Source::Download(lease) => (self.taken_or_downloaded(download).await?, lease),
        };
        let digests_for_record = digests.clone();
        let key = download.store_key.clone();
        let (temp, lease) = crate::blocking::blocking(move || {
            check(temp.path())?;
            // on the inode: it goes into the store with the file, and to the waiters that link it
            if let Ok(meta) = temp.as_file().metadata() {
                keep_record(temp.path(), &digests_for_record, &meta);
            }
            temp.as_file()
                .sync_all()
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
            let mut lease = lease;
            if let Some(Err(e)) = lease.as_mut().map(|l| l.publish(temp.path())) {
                // waiters then wait for the commit, or their deadline
                tracing::warn!(key, error = %e, "cannot publish a verified download");
            }
            Ok((temp.into_temp_path(), lease))
        })
        .await?;
        Ok(staged(download, digests, Some(temp), lease, true))
    }

    /// Where `download` comes from: the store, another request's verified download, or the
    /// network. Waits while another live request holds its lease, up to `LARDER_DOWNLOAD_TIMEOUT`
    /// (a holder stuck longer is not waited for: the file is downloaded anyway).
    async fn source(&self, download: &Download, path: &Path) -> Source {
        let Some(owner) = &self.leases else {
            return if path.is_file() {
                Source::Store
            } else {
                Source::Download(None)
            };
        };
        let key = &download.store_key;
        let deadline = Instant::now() + self.outbound.limits().timeout;
        loop {
            if path.is_file() {
                return Source::Store;
            }
            match owner.link_ready(key) {
                Ok(Some(temp)) => return Source::Linked(temp),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot look for a download in flight");
                    return Source::Download(None);
                }
            }
            match owner.try_take(key) {
                // its holder may have committed it between our look and our take
                Ok(Attempt::Taken(_)) if path.is_file() => return Source::Store,
                Ok(Attempt::Taken(lease)) => return Source::Download(Some(lease)),
                // the plans list a key once; should one come twice, it never waits on itself
                Ok(Attempt::HeldByThisOwner) => return Source::Download(None),
                Ok(Attempt::HeldByOther) if Instant::now() >= deadline => {
                    tracing::warn!(
                        key,
                        "another request has held this download past LARDER_DOWNLOAD_TIMEOUT; \
                         downloading it too"
                    );
                    return Source::Download(None);
                }
                Ok(Attempt::HeldByOther) => tokio::time::sleep(LEASE_POLL).await,
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot take a download lease");
                    return Source::Download(None);
                }
            }
        }
    }

    /// Move a staged file into the store.
    pub fn commit(&self, staged: Staged) -> Result<FetchedFile, Failure> {
        let Staged {
            fetched,
            temp,
            lease,
        } = staged;
        if let Some(temp) = temp {
            let io = |e: std::io::Error| Failure::new(ErrorKind::FileAccessError, e.to_string());
            let kept = self
                .store
                .persist_new(temp, &fetched.store_key)
                .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
            // a stored file is never replaced (a bundle streams it after it was verified):
            // another request stored the key meanwhile, and it must be these very bytes
            if let Some(ours) = kept {
                let theirs = self
                    .store
                    .path(&fetched.store_key)
                    .map_err(|e| Failure::new(ErrorKind::FileAccessError, e.to_string()))?;
                if !same_content(&ours, &theirs).map_err(io)? {
                    return Err(Failure::new(
                        ErrorKind::InvalidChecksum,
                        format!(
                            "The store already holds other bytes for {} than this request verified",
                            fetched.store_key
                        ),
                    ));
                }
            }
            tracing::debug!(key = %fetched.store_key, "stored");
        }
        // in the store now, where waiters look first
        drop(lease);
        self.committed
            .lock()
            .expect("not poisoned")
            .insert(fetched.store_key.clone());
        if let Some(digests) = &fetched.digests {
            self.verified
                .lock()
                .expect("not poisoned")
                .insert(fetched.store_key.clone(), (**digests).clone());
        }
        Ok(fetched)
    }

    /// The file from the object store if it has it (checked against the lockfile's digests as
    /// a download is), else downloaded.
    async fn taken_or_downloaded(
        &self,
        download: &Download,
    ) -> Result<(tempfile::NamedTempFile, FileDigests), Failure> {
        if let Some(objects) = &self.objects {
            if let Some(temp) = objects.take(&download.store_key).await? {
                let path = temp.path().to_path_buf();
                let digests = verified(path, download, no_check(download)).await?;
                return Ok((temp, digests));
            }
        }
        self.download_verified(download).await
    }

    /// Download with retries into a temporary file and check its digest; the whole of it
    /// (retries included) within `LARDER_DOWNLOAD_TIMEOUT`. A temporary file is deleted as
    /// soon as its download fails.
    async fn download_verified(
        &self,
        download: &Download,
    ) -> Result<(tempfile::NamedTempFile, FileDigests), Failure> {
        let what = describe_download(download);
        self.checked_url(&download.url, &what)?;
        let timeout = self.outbound.limits().timeout;
        let (temp, digests) = tokio::time::timeout(timeout, self.download_retrying(download))
            .await
            .unwrap_or_else(|_| Err(deadline_failure(&what, timeout)))?;
        verify(&download.expected, &digests, &download.label)?;
        Ok((temp, digests))
    }

    async fn download_retrying(
        &self,
        download: &Download,
    ) -> Result<(tempfile::NamedTempFile, FileDigests), Failure> {
        let what = describe_download(download);
        let mut delay = Duration::from_millis(300);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .download_to_temp(&download.url, &what, &download.expected)
                .await
            {
                Ok(done) => return Ok(done),
                Err(DownloadError::NotFound) => {
                    return Err(Failure::new(
                        ErrorKind::MissingUpstream,
                        format!(
                            "{} was not found upstream at {}",
                            download.label, download.url
                        ),
                    ));
                }
                Err(DownloadError::Final(failure)) => return Err(failure),
                Err(DownloadError::Transient(msg)) if attempt >= ATTEMPTS => {
                    return Err(Failure::new(
                        ErrorKind::NetworkError,
                        format!("Downloading {what} failed: {msg}"),
                    ));
                }
                Err(DownloadError::Transient(msg)) => {
                    tracing::warn!(url = %download.url, error = %msg, attempt, "download failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    async fn download_to_temp(
        &self,
        url: &str,
        what: &str,
        expected: &Expected,
    ) -> Result<(tempfile::NamedTempFile, FileDigests), DownloadError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| send_error(&e, what))?;
        match resp.status().as_u16() {
            200..=299 => {}
            404 | 410 => return Err(DownloadError::NotFound),
            s => return Err(DownloadError::Transient(format!("HTTP {s}"))),
        }
        let mut temp = self
            .store
            .temp_file()
            .map_err(|e| DownloadError::Transient(e.to_string()))?;
        let mut hashers = Hasher::for_expected(expected);
        self.stream_body(resp, BodyKind::Artifact, what, |chunk| {
            hashers.update(chunk);
            temp.write_all(chunk)
        })
        .await?;
        Ok((temp, hashers.finish()))
    }
}

fn staged(
    download: &Download,
    digests: FileDigests,
    temp: Option<tempfile::TempPath>,
    lease: Option<DownloadLease>,
    from_network: bool,
) -> Staged {
    Staged {
        fetched: FetchedFile {
            store_key: download.store_key.clone(),
            digests: Some(Box::new(digests)),
            from_network,
        },
        temp,
        lease,
    }
}

/// Whether two files hold the same bytes: the same file (a holder's published download,
/// linked), or equal digests.
fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    if (ma.dev(), ma.ino()) == (mb.dev(), mb.ino()) {
        return Ok(true);
    }
    Ok(ma.len() == mb.len() && FileDigests::of_file(a)? == FileDigests::of_file(b)?)
}

/// The digests of the file at `path`, checked against what `download` expects and by `check`
/// (on the blocking pool).
async fn verified(
    path: PathBuf,
    download: &Download,
    check: Check,
) -> Result<FileDigests, Failure> {
    let (expected, label) = (download.expected.clone(), download.label.clone());
    crate::blocking::blocking(move || hash_and_verify(&path, &expected, &label, &check)).await
}

fn hash_and_verify(
    path: &Path,
    expected: &Expected,
    label: &str,
    check: &Check,
) -> Result<FileDigests, Failure> {
    let digests = FileDigests::of_file_for(path, expected).map_err(|e| {
        Failure::new(
            ErrorKind::FileAccessError,
            format!("Cannot read {}: {e}", path.display()),
        )
    })?;
    verify(expected, &digests, label)?;
    check(path)?;
    Ok(digests)
}

/// Record `digests` on the verified file at `path`; a filesystem without extended attributes
/// keeps none (the file is then hashed by every request that needs it).
fn keep_record(path: &Path, digests: &FileDigests, before: &std::fs::Metadata) {
    if let Err(e) = file_record::record_digests(path, digests, before) {
        tracing::debug!(path = %path.display(), error = %e, "no digest record kept");
    }
}

/// [`verified`] for a temporary file, handed back with its digests.
async fn verified_temp(
    temp: tempfile::TempPath,
    download: &Download,
    check: Check,
) -> Result<(tempfile::TempPath, FileDigests), Failure> {
    let path = temp.to_path_buf();
    let digests = verified(path, download, check).await?;
    Ok((temp, digests))
}

enum DownloadError {
    NotFound,
    /// Retrying cannot help (a refused URL, a size limit): the request fails with this.
    Final(Failure),
    Transient(String),
}

/// A failed request: the policy's refusal (from the resolver or the redirect policy) is
/// final, anything else may be retried.
fn send_error(e: &reqwest::Error, what: &str) -> DownloadError {
    match Refusal::find(e) {
        Some(refusal) => DownloadError::Final(refusal.failure(what)),
        None => DownloadError::Transient(describe(e)),
    }
}

/// An error with its causes (reqwest's own message rarely says what went wrong).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The download's label, with its URL unless the label already says it.
fn describe_download(download: &Download) -> String {
    if download.label.contains(&download.url) {
        download.label.clone()
    } else {
        format!("{} ({})", download.label, download.url)
    }
}

fn deadline_failure(what: &str, timeout: Duration) -> Failure {
    Failure::new(
        ErrorKind::NetworkError,
        format!(
            "{what} did not download within {} (LARDER_DOWNLOAD_TIMEOUT)",
            humantime::format_duration(timeout)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{DownloadLimits, OutboundPolicy};
    use common::digest::HashAlgorithm;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::watch;

    const BODY: &[u8] = b"a tarball";

    /// A server answering every GET with `BODY` once released; counts the GETs.
    struct Upstream {
        url: String,
        hits: Arc<AtomicUsize>,
        released: watch::Sender<bool>,
    }

    impl Upstream {
        async fn start() -> Self {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/x.tgz", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let released = watch::channel(false).0;
            let (counter, gate) = (hits.clone(), released.subscribe());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (counter, mut gate) = (counter.clone(), gate.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|released| *released).await;
                        let header = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            BODY.len()
                        );
                        let _ = stream.write_all(header.as_bytes()).await;
                        let _ = stream.write_all(BODY).await;
                    });
                }
            });
            Self {
                url,
                hits,
                released,
            }
        }

        fn release(&self) {
            self.released.send_replace(true);
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    /// One request's fetcher on `store`.
    fn fetcher(store: &Store, timeout: Duration) -> Fetcher {
        let limits = DownloadLimits {
            max_artifact: 1 << 20,
            max_request: 1 << 20,
            timeout,
        };
        Fetcher::new(
            store.clone(),
            Outbound::new(OutboundPolicy::allowing_private(), limits),
        )
    }

    fn download(url: &str, of: &[u8]) -> Download {
        let digests = FileDigests::of_reader(of).unwrap();
        Download {
            url: url.into(),
            store_key: "deps/npm/x/-/x-1.0.0.tgz".into(),
            expected: Expected::one(digests.get(HashAlgorithm::Sha256)),
            label: "x@1.0.0".into(),
        }
    }

    async fn until_hits(upstream: &Upstream, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while upstream.hits() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the upstream saw {} of {n} requests",
            upstream.hits()
        );
    }

    #[tokio::test]
    async fn a_request_does_not_read_again_a_file_it_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let d = download("http://127.0.0.1:9/unused", BODY);
        store.put_bytes(&d.store_key, BODY).unwrap();
        let request = fetcher(&store, Duration::from_secs(30));
        let first = request.stage(&d, no_check(&d)).await.unwrap();
        request.commit(first).unwrap();
        // the stored bytes change under it: this request verified them already and does not
        // read them again (another request does, and fails)
        store.put_bytes(&d.store_key, b"other").unwrap();
        let again = request.stage(&d, no_check(&d)).await.unwrap();
        assert!(!again.fetched.from_network);
        // its format check runs all the same
        let refusing: Check = Box::new(|_| {
            Err(Failure::new(
                ErrorKind::InvalidFileFormat,
                "the check refuses it",
            ))
        });
        let err = request.stage(&d, refusing).await.err().unwrap();
        assert_eq!(err.error_type(), "InvalidFileFormat");
        let other = fetcher(&store, Duration::from_secs(30));
        let err = other.stage(&d, no_check(&d)).await.err().unwrap();
        assert_eq!(err.error_type(), "InvalidChecksum");
        // its own expectations still hold against what it verified
        let wrong = Download {
            expected: Expected::one(
                FileDigests::of_reader(&b"x"[..])
                    .unwrap()
                    .get(HashAlgorithm::Sha256),
            ),
            ..d.clone()
        };
        let err = request.stage(&wrong, no_check(&wrong)).await.err().unwrap();
        assert_eq!(err.error_type(), "InvalidChecksum");
    }

    #[tokio::test]
    async fn a_stored_file_is_checked_against_its_digest_record_until_it_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let d = download("http://127.0.0.1:9/unused", BODY);
        let path = store.put_bytes(&d.store_key, BODY).unwrap();
        // the first request to find it hashes it and records what it verified
        let first = fetcher(&store, Duration::from_secs(30));
        first.stage(&d, no_check(&d)).await.unwrap();
        if !file_record::kept_in(dir.path()) {
            return;
        }
        assert!(file_record::recorded_digests(&path).is_some());
        // bytes that change without a write (rot): the record speaks for the file, unread
        // (the bundle's streaming check is what catches those)
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &file, &BODY.to_ascii_uppercase()).unwrap();
        file.set_modified(mtime).unwrap();
        let unread = fetcher(&store, Duration::from_secs(30));
        assert!(unread.stage(&d, no_check(&d)).await.is_ok());
        // a write (a new modification time): hashed again, and refused
        file.set_modified(mtime + Duration::from_secs(1)).unwrap();
        let after = fetcher(&store, Duration::from_secs(30));
        let err = after.stage(&d, no_check(&d)).await.err().unwrap();
        assert_eq!(err.error_type(), "InvalidChecksum");
    }

    #[tokio::test]
    async fn a_download_is_stored_with_its_file_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let upstream = Upstream::start().await;
        upstream.release();
        let d = download(&upstream.url, BODY);
        let request = fetcher(&store, Duration::from_secs(30));
        let staged = request.stage(&d, no_check(&d)).await.unwrap();
        request.commit(staged).unwrap();
        let path = store.path(&d.store_key).unwrap();
        if file_record::kept_in(dir.path()) {
            let recorded = file_record::recorded_digests(&path).expect("a record");
            assert_eq!(
                recorded,
                FileDigests::of_file_for(&path, &d.expected).unwrap()
            );
        }
    }

    #[tokio::test]
    async fn two_requests_download_a_missing_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let upstream = Upstream::start().await;
        let (first, second) = (
            fetcher(&store, Duration::from_secs(30)),
            fetcher(&store, Duration::from_secs(30)),
        );
        let d = download(&upstream.url, BODY);
        let holder = tokio::spawn({
            let (first, d) = (first.clone(), d.clone());
            async move { first.stage(&d, no_check(&d)).await }
        });
        until_hits(&upstream, 1).await;
        let waiter = tokio::spawn({
            let (second, d) = (second.clone(), d.clone());
            async move { second.stage(&d, no_check(&d)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        upstream.release();
        let (held, waited) = (holder.await.unwrap(), waiter.await.unwrap());
        let (held, waited) = (held.unwrap(), waited.unwrap());
        assert_eq!(upstream.hits(), 1);
        assert!(held.fetched.from_network && !waited.fetched.from_network);
        // nothing is in the store before a request commits, and either may commit first
        assert!(!store.contains(&d.store_key));
        second.commit(waited).unwrap();
        first.commit(held).unwrap();
        assert_eq!(
            std::fs::read(store.path(&d.store_key).unwrap()).unwrap(),
            BODY
        );
    }

    #[tokio::test]
    async fn two_requests_waiting_on_each_others_downloads_do_not_wait_for_each_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let upstream = Upstream::start().await;
        let (a, b) = (
            fetcher(&store, Duration::from_secs(30)),
            fetcher(&store, Duration::from_secs(30)),
        );
        let x = download(&upstream.url, BODY);
        let y = Download {
            store_key: "deps/npm/y/-/y-1.0.0.tgz".into(),
            ..x.clone()
        };
        let stage = |f: &Fetcher, d: &Download| {
            let (f, d) = (f.clone(), d.clone());
            tokio::spawn(async move { f.stage(&d, no_check(&d)).await })
        };
        // each request holds the lease of a file the other needs, and commits nothing before
        // all of its own files are staged
        let a_x = stage(&a, &x);
        until_hits(&upstream, 1).await;
        let b_y = stage(&b, &y);
        until_hits(&upstream, 2).await;
        let (a_y, b_x) = (stage(&a, &y), stage(&b, &x));
        tokio::time::sleep(Duration::from_millis(300)).await;
        upstream.release();
        let all = async { (a_x.await, b_y.await, a_y.await, b_x.await) };
        let (a_x, b_y, a_y, b_x) = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("neither waits for the other's commit");
        for staged in [a_x, b_y, a_y, b_x] {
            assert!(staged.unwrap().is_ok());
        }
        assert_eq!(upstream.hits(), 2);
    }

    #[tokio::test]
    async fn a_waiter_checks_the_holders_download_against_its_own_digests() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let upstream = Upstream::start().await;
        let (first, second) = (
            fetcher(&store, Duration::from_secs(30)),
            fetcher(&store, Duration::from_secs(30)),
        );
        let d = download(&upstream.url, BODY);
        let holder = tokio::spawn({
            let (first, d) = (first.clone(), d.clone());
            async move { first.stage(&d, no_check(&d)).await }
        });
        until_hits(&upstream, 1).await;
        let other = download(&upstream.url, b"other bytes");
        let waiter = tokio::spawn(async move { second.stage(&other, no_check(&other)).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        upstream.release();
        // kept until the waiter is done: dropped, it would release the lease and the waiter
        // might download the file itself
        let _held = holder.await.unwrap().unwrap();
        let err = waiter.await.unwrap().err().expect("fails");
        assert_eq!(err.error_type(), "InvalidChecksum");
        assert_eq!(upstream.hits(), 1);
    }

    #[tokio::test]
    async fn a_holder_stuck_past_the_download_timeout_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let upstream = Upstream::start().await;
        upstream.release();
        let d = download(&upstream.url, BODY);
        // a live request that took the lease and never gets anywhere
        let stuck = LeaseOwner::new(&store).unwrap();
        let _lease = match stuck.try_take(&d.store_key).unwrap() {
            Attempt::Taken(lease) => lease,
            other => panic!("{other:?}"),
        };
        let started = Instant::now();
        let staged = fetcher(&store, Duration::from_millis(500))
            .stage(&d, no_check(&d))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(staged.fetched.from_network);
        assert_eq!(upstream.hits(), 1);
    }

    #[tokio::test]
    async fn a_request_staging_a_key_twice_does_not_wait_on_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let upstream = Upstream::start().await;
        let f = fetcher(&store, Duration::from_secs(30));
        let d = download(&upstream.url, BODY);
        let first = tokio::spawn({
            let (f, d) = (f.clone(), d.clone());
            async move { f.stage(&d, no_check(&d)).await }
        });
        until_hits(&upstream, 1).await;
        let second = tokio::spawn({
            let (f, d) = (f.clone(), d.clone());
            async move { f.stage(&d, no_check(&d)).await }
        });
        // the second downloads too rather than wait on its own request's lease
        until_hits(&upstream, 2).await;
        upstream.release();
        assert!(first.await.unwrap().is_ok() && second.await.unwrap().is_ok());
    }

    #[test]
    fn verify_names_the_file() {
        use common::digest::{Digest, HashAlgorithm};
        let d = FileDigests::of_reader(&b"hello"[..]).unwrap();
        let good = d.get(HashAlgorithm::Sha256);
        assert!(verify(&Expected::one(good), &d, "x").is_ok());
        let zeros = Digest::from_hex(HashAlgorithm::Sha256, &"0".repeat(64)).unwrap();
        let err = verify(&Expected::one(zeros), &d, "left-pad@1.0.0").unwrap_err();
        assert!(err.message.contains("left-pad@1.0.0"));
        assert_eq!(err.error_type(), "InvalidChecksum");
        assert_eq!(
            err.message,
            format!(
                "The sha256 checksum of left-pad@1.0.0 does not match the expected sha256:{}",
                "0".repeat(64)
            ),
            "the digest of what was served is never echoed"
        );
    }
}
