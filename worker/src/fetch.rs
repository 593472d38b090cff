//! Downloads into the permanent store: streamed to a temporary file while hashing, verified,
//! and only then moved into place. A file already in the store is re-verified, never re-fetched.

use common::{Download, Expected, Failure, Store};
use futures_util::StreamExt;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Digests of a file, computed in one pass.
#[derive(Clone, Debug)]
pub struct Digests {
    pub size: u64,
    pub sha1: String,
    pub sha256: String,
    pub sha384: String,
    pub sha512: String,
}

#[derive(Default)]
struct Hashers {
    size: u64,
    sha1: Sha1,
    sha256: Sha256,
    sha384: Sha384,
    sha512: Sha512,
}

impl Hashers {
    fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha1.update(chunk);
        self.sha256.update(chunk);
        self.sha384.update(chunk);
        self.sha512.update(chunk);
    }
    fn finish(self) -> Digests {
        Digests {
            size: self.size,
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
            sha384: hex::encode(self.sha384.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
        }
    }
}

pub fn digest_file(path: &Path) -> std::io::Result<Digests> {
    let mut file = std::fs::File::open(path)?;
    let mut hashers = Hashers::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hashers.finish());
        }
        hashers.update(&buf[..n]);
    }
}

/// Whether `digests` satisfy `expected`; the message names `label` when they do not.
pub fn verify(expected: &Expected, digests: &Digests, label: &str) -> Result<(), Failure> {
    let (algo, want, got) = match expected {
        Expected::Sha256(h) => ("sha256", h, &digests.sha256),
        Expected::Sha384(h) => ("sha384", h, &digests.sha384),
        Expected::Sha512(h) => ("sha512", h, &digests.sha512),
        Expected::Sha1(h) => ("sha1", h, &digests.sha1),
        Expected::None => return Ok(()),
    };
    if want.eq_ignore_ascii_case(got) {
        Ok(())
    } else {
        Err(Failure::client(
            "InvalidChecksum",
            // what was computed is never shown: it would hand out the digest of any content
            // a URL serves
            format!("The {algo} checksum of {label} does not match the expected {algo} {want}"),
        ))
    }
}

/// A format-specific check of a downloaded file, run before it is kept.
pub type Check = Box<dyn Fn(&Path) -> Result<(), Failure> + Send + Sync>;

/// No check beyond the digest.
pub fn no_check(_: &Download) -> Check {
    Box::new(|_| Ok(()))
}

/// A verified file waiting to be moved into the store (`temp` is None when it already is).
pub struct Staged {
    pub fetched: Fetched,
    temp: Option<tempfile::TempPath>,
}

/// A file in the store, with how it got there.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub store_key: String,
    pub path: PathBuf,
    pub digests: Digests,
    pub from_network: bool,
}

#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    store: Store,
}

const ATTEMPTS: u32 = 4;

impl Fetcher {
    pub fn new(store: Store) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("larder/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("TLS backend initializes");
        Self { http, store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// GET a small document (an index page, a config), with retries on transient errors.
    /// `Ok(None)` for 404/410.
    pub async fn get_bytes(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, Failure> {
        let mut delay = Duration::from_millis(300);
        for attempt in 1..=ATTEMPTS {
            let mut req = self.http.get(url);
            if let Some(a) = accept {
                req = req.header(reqwest::header::ACCEPT, a);
            }
            let err = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let content_type = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match resp.bytes().await {
                        Ok(b) => return Ok(Some((b.to_vec(), content_type))),
                        Err(e) => e.to_string(),
                    }
                }
                Ok(resp) if matches!(resp.status().as_u16(), 404 | 410) => return Ok(None),
                Ok(resp) if resp.status().is_client_error() && resp.status().as_u16() != 429 => {
                    return Err(Failure::server(
                        "NetworkError",
                        format!("Fetching {url} failed: HTTP {}", resp.status()),
                    ));
                }
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => e.to_string(),
            };
            if attempt == ATTEMPTS {
                return Err(Failure::server(
                    "NetworkError",
                    format!("Fetching {url} failed: {err}"),
                ));
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        unreachable!("the loop returns")
    }

    /// Make sure `download` is in the store and verified.
    pub async fn fetch(&self, download: &Download) -> Result<Fetched, Failure> {
        let staged = self.stage(download, no_check(download)).await?;
        let fetcher = self.clone();
        let mut fetched = crate::pipeline::blocking(move || fetcher.commit(vec![staged])).await?;
        Ok(fetched.remove(0))
    }

    /// Verify a file already in the store, or download and verify it into a staged temporary
    /// file that `commit` moves into the store.
    pub async fn stage(&self, download: &Download, check: Check) -> Result<Staged, Failure> {
        let path = self
            .store
            .path(&download.store_key)
            .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
        if path.is_file() {
            let (expected, label, p) = (
                download.expected.clone(),
                download.label.clone(),
                path.clone(),
            );
            let digests = crate::pipeline::blocking(move || {
                let digests = digest_file(&p).map_err(|e| {
                    Failure::server(
                        "FileAccessError",
                        format!("Cannot read {}: {e}", p.display()),
                    )
                })?;
                verify(&expected, &digests, &label)?;
                check(&p)?;
                Ok(digests)
            })
            .await?;
            let fetched = Fetched {
                store_key: download.store_key.clone(),
                path,
                digests,
                from_network: false,
            };
            return Ok(Staged {
                fetched,
                temp: None,
            });
        }
        let (temp, digests) = self.download_verified(download).await?;
        let temp = crate::pipeline::blocking(move || {
            check(temp.path())?;
            temp.as_file()
                .sync_all()
                .map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
            Ok(temp.into_temp_path())
        })
        .await?;
        let fetched = Fetched {
            store_key: download.store_key.clone(),
            path,
            digests,
            from_network: true,
        };
        Ok(Staged {
            fetched,
            temp: Some(temp),
        })
    }

    /// Move staged files into the store.
    pub fn commit(&self, staged: Vec<Staged>) -> Result<Vec<Fetched>, Failure> {
        staged
            .into_iter()
            .map(|s| {
                if let Some(temp) = s.temp {
                    self.store.persist_path(temp, &s.fetched.store_key).map_err(|e| Failure::server("FileAccessError", e.to_string()))?;
                    tracing::debug!(key = %s.fetched.store_key, size = s.fetched.digests.size, "stored");
                }
                Ok(s.fetched)
            })
            .collect()
    }

    /// Download with retries into a temporary file and check its digest.
    async fn download_verified(
        &self,
        download: &Download,
    ) -> Result<(tempfile::NamedTempFile, Digests), Failure> {
        let mut delay = Duration::from_millis(300);
        let mut attempt = 0;
        let (temp, digests) = loop {
            attempt += 1;
            match self.download_to_temp(&download.url).await {
                Ok(done) => break done,
                Err(DownloadError::NotFound) => {
                    return Err(Failure::client(
                        "NetworkError",
                        format!(
                            "{} was not found upstream at {}",
                            download.label, download.url
                        ),
                    ));
                }
                Err(DownloadError::Other(msg)) if attempt >= ATTEMPTS => {
                    return Err(Failure::server(
                        "NetworkError",
                        format!(
                            "Downloading {} from {} failed: {msg}",
                            download.label, download.url
                        ),
                    ));
                }
                Err(DownloadError::Other(msg)) => {
                    tracing::warn!(url = %download.url, error = %msg, attempt, "download failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        };
        verify(&download.expected, &digests, &download.label)?;
        Ok((temp, digests))
    }

    async fn download_to_temp(
        &self,
        url: &str,
    ) -> Result<(tempfile::NamedTempFile, Digests), DownloadError> {
        let other = |e: &dyn std::fmt::Display| DownloadError::Other(e.to_string());
        let resp = self.http.get(url).send().await.map_err(|e| other(&e))?;
        match resp.status().as_u16() {
            200..=299 => {}
            404 | 410 => return Err(DownloadError::NotFound),
            s => return Err(DownloadError::Other(format!("HTTP {s}"))),
        }
        let mut temp = self.store.temp_file().map_err(|e| other(&e))?;
        let mut hashers = Hashers::default();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| other(&e))?;
            hashers.update(&chunk);
            temp.write_all(&chunk).map_err(|e| other(&e))?;
        }
        Ok((temp, hashers.finish()))
    }
}

enum DownloadError {
    NotFound,
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let d = digest_file(&p).unwrap();
        assert_eq!(
            d.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(verify(&Expected::Sha256(d.sha256.to_uppercase()), &d, "x").is_ok());
        let err = verify(&Expected::Sha1("00".into()), &d, "left-pad@1.0.0").unwrap_err();
        assert!(err.message.contains("left-pad@1.0.0"));
        assert_eq!(err.error_type, "InvalidChecksum");
    }
}
