//! A request's sub-resources: bundle download, logs, environment variables, configuration
//! files, packages, content manifest, and the worker's reports of them.

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::models::RequestContents;
use crate::schema::{artifacts, configuration_files};
use crate::v1::requests::{find, packages_data, shown_packages_data};
use crate::v1::validation::{any_string, has_control};
use crate::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use common::{Artifact, PackagesData};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use futures_util::{stream, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

const CHUNK: usize = 64 * 1024;

/// Stream a file from the store, counting the bytes served.
pub fn stream_file(
    file: tokio::fs::File,
    counter: Arc<std::sync::atomic::AtomicU64>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    stream::unfold((file, counter), |(mut file, counter)| async move {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                counter.fetch_add(n as u64, Ordering::Relaxed);
                Some((Ok(web::Bytes::from(buf)), (file, counter)))
            }
            Err(e) => Some((Err(e), (file, counter))),
        }
    })
}

/// [`stream_file`], checked against the sha256 `expected` as it streams: each chunk goes out
/// only once the next one is read, and the last only once the whole file hashed to `expected`;
/// else the stream fails there (the client, short of `Content-Length`, fails too) and
/// `damaged` runs. A stored file that rotted is never served whole.
pub fn verified_stream(
    file: tokio::fs::File,
    expected: [u8; 32],
    counter: Arc<std::sync::atomic::AtomicU64>,
    damaged: impl FnOnce() + Send + 'static,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    let chunks = stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    verified_chunks(chunks, expected, counter, damaged)
}

/// Whether `size` bytes cannot hash to `expected` without being read: an empty body is never
/// polled, so [`verified_chunks`] cannot catch an object emptied in the store.
pub fn empty_but_not(size: u64, expected: &[u8; 32]) -> bool {
    size == 0 && <[u8; 32]>::from(Sha256::digest(b"")) != *expected
}

/// [`verified_stream`] of any chunks (an object store's).
pub fn verified_chunks<S>(
    chunks: S,
    expected: [u8; 32],
    counter: Arc<std::sync::atomic::AtomicU64>,
    damaged: impl FnOnce() + Send + 'static,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>>
where
    S: futures_util::Stream<Item = Result<web::Bytes, std::io::Error>>,
{
    struct State<S, F> {
        chunks: std::pin::Pin<Box<S>>,
        hasher: Sha256,
        held: Option<web::Bytes>,
        expected: [u8; 32],
        counter: Arc<std::sync::atomic::AtomicU64>,
        damaged: Option<F>,
    }
    let state = State {
        chunks: Box::pin(chunks),
        hasher: Sha256::new(),
        held: None,
        expected,
        counter,
        damaged: Some(damaged),
    };
    stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match state.chunks.next().await {
                None => {
                    let digest: [u8; 32] = std::mem::take(&mut state.hasher).finalize().into();
                    if digest != state.expected {
                        if let Some(damaged) = state.damaged.take() {
                            damaged();
                        }
                        let e = std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "the stored file does not have the sha256 it was verified with",
                        );
                        return Some((Err(e), None));
                    }
                    let last = state.held.take()?;
                    state
                        .counter
                        .fetch_add(last.len() as u64, Ordering::Relaxed);
                    return Some((Ok(last), None));
                }
                Some(Ok(chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    state.hasher.update(&chunk);
                    let previous = state.held.replace(chunk);
                    if let Some(chunk) = previous {
                        state
                            .counter
                            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        return Some((Ok(chunk), Some(state)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
            }
        }
    })
}

/// A response streaming a stored file as it is: never compressed again, with its length.
pub fn stored_file(
    mut builder: actix_web::HttpResponseBuilder,
    file: tokio::fs::File,
    size: u64,
    counter: Arc<std::sync::atomic::AtomicU64>,
) -> HttpResponse {
    builder
        .insert_header(header::ContentEncoding::Identity)
        .no_chunking(size)
        .streaming(stream_file(file, counter))
}

pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    drop(conn);
    if row.state != "complete" {
        return Err(ApiError::bad_request(
            "The request must be in the \"complete\" state before downloading the archive",
        ));
    }
    if let (Some(instance), Some(original)) = (&row.imported_instance, row.imported_id) {
        return Err(ApiError {
            status: actix_web::http::StatusCode::NOT_FOUND,
            message: format!(
                "Request {} is the record of request {original} of instance {instance}, \
                 imported without its bundle: submit the same repository and ref here to make \
                 one",
                row.id
            ),
        });
    }
    let missing = || {
        ApiError::internal(format!(
            "The bundle archive of request {} is missing",
            row.id
        ))
    };
    let changed = || {
        ApiError::internal(format!(
            "Checksum of bundle archive {}.tar.gz has changed.",
            row.id
        ))
    };
    if let Some(tier) = &state.objects {
        let sha256_hex = row.bundle_sha256.as_deref().ok_or_else(missing)?;
        return download_object(&req, &state, tier, row.id, sha256_hex, missing, changed).await;
    }
    let (store, id) = (state.store.clone(), row.id);
    let (path, recorded) = web::block(move || {
        // a release of the same bytes by a stale request moves the blob aside for a moment
        match store.bundle_of(id) {
            Ok(None) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                store.bundle_of(id)
            }
            found => found,
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|_| missing())?
    .ok_or_else(missing)?;
    // Every byte served is re-verified against the checksum recorded when the bundle was made.
    let hash_path = path.clone();
    let (digest, size) = web::block(move || sha256_of(&hash_path))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|_| missing())?;
    if hex::encode(digest) != recorded.trim() {
        return Err(changed());
    }
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (mut builder, range) = match bundle_response(&req, row.id, size, digest) {
        Ok(found) => found,
        Err(size) => return Ok(unsatisfiable(size)),
    };
    let counter = state.bytes_downloaded.counting();
    Ok(match range {
        None => stored_file(builder, file, size, counter),
        Some(range) => {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(range.start))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let len = range.end - range.start;
            builder
                .insert_header(header::ContentEncoding::Identity)
                .no_chunking(len)
                .streaming(stream_file_part(file, len, counter))
        }
    })
}

/// The bundle `sha256_hex` from an object store. A whole GET is checked as it streams (a
/// damaged blob ends short of `Content-Length`, as a damaged repository file does); a range is
/// served only once the whole blob hashed to its name.
async fn download_object(
    req: &HttpRequest,
    state: &AppState,
    tier: &common::store::object::ObjectTier,
    id: i64,
    sha256_hex: &str,
    missing: impl Fn() -> ApiError,
    changed: impl Fn() -> ApiError,
) -> ApiResult<HttpResponse> {
    use common::store::object::ObjectTierError;
    let key = common::store::bundle_blob_key(sha256_hex);
    let backend = |e: ObjectTierError| match e {
        ObjectTierError::NotFound(_) => missing(),
        e => ApiError::internal(e.to_string()),
    };
    let digest: [u8; 32] = hex::decode(sha256_hex)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(&changed)?;
    let info = tier
        .head(&key)
        .await
        .map_err(backend)?
        .ok_or_else(&missing)?;
    if info.sha256.as_ref().map(|d| d.hex()).as_deref() != Some(sha256_hex) {
        return Err(changed());
    }
    let size = info.size;
    let (builder, range) = match bundle_response(req, id, size, digest) {
        Ok(found) => found,
        Err(size) => return Ok(unsatisfiable(size)),
    };
    let mut builder = builder;
    builder.insert_header(header::ContentEncoding::Identity);
    let counter = state.bytes_downloaded.counting();
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(builder
            .no_chunking(size)
            .streaming(stream::empty::<Result<web::Bytes, std::io::Error>>()));
    }
    let io = |e: ObjectTierError| std::io::Error::other(e.to_string());
    match range {
        None => {
            let object = tier.get_stream(&key).await.map_err(backend)?;
            if empty_but_not(object.size, &digest) {
                tracing::error!(
                    request_id = id,
                    key,
                    "a bundle in the object store is empty"
                );
                return Err(changed());
            }
            let chunks = object.bytes.map(move |c| c.map_err(io));
            let damaged = move || {
                tracing::error!(request_id = id, key = %common::store::bundle_blob_key(&hex::encode(digest)), "a bundle in the object store does not have its sha256");
            };
            Ok(builder
                .no_chunking(object.size)
                .streaming(verified_chunks(chunks, digest, counter, damaged)))
        }
        Some(range) => {
            // a range cannot be checked alone: the whole blob first, as on a directory store
            let mut whole = tier.get_stream(&key).await.map_err(backend)?;
            let mut hasher = Sha256::new();
            while let Some(chunk) = whole.bytes.next().await {
                hasher.update(chunk.map_err(backend)?);
            }
            if <[u8; 32]>::from(hasher.finalize()) != digest {
                tracing::error!(
                    request_id = id,
                    key,
                    "a bundle in the object store does not have its sha256"
                );
                return Err(changed());
            }
            let part = tier.get_range(&key, range).await.map_err(backend)?;
            let len = part.range.end - part.range.start;
            let counted = counter.clone();
            let chunks = part.bytes.map(move |c| {
                let c = c.map_err(io)?;
                counted.fetch_add(c.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(c)
            });
            Ok(builder.no_chunking(len).streaming(chunks))
        }
    }
}

/// The bundle's response head and the range it serves, if one (`Err`: the range starts past the
/// bundle's `size`, a 416, [`unsatisfiable`]): its sha256 names
/// the bytes (`ETag`, `Digest`), and a client resuming with `If-Range` gets the rest of these
/// bytes only.
fn bundle_response(
    req: &HttpRequest,
    id: i64,
    size: u64,
    digest: [u8; 32],
) -> Result<(actix_web::HttpResponseBuilder, Option<std::ops::Range<u64>>), u64> {
    let etag = format!("\"sha256-{}\"", hex::encode(digest));
    // a range is a GET's (RFC 9110 §14.2): HEAD answers for the whole
    let ranged = if req.method() == actix_web::http::Method::GET {
        byte_range(req, size, &etag)
    } else {
        Ranged::Whole
    };
    let range = match ranged {
        Ranged::Whole => None,
        Ranged::Part(range) => Some(range),
        Ranged::Unsatisfiable => return Err(size),
    };
    let mut builder = match &range {
        None => HttpResponse::Ok(),
        Some(range) => {
            let mut partial = HttpResponse::PartialContent();
            partial.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", range.start, range.end - 1),
            ));
            partial
        }
    };
    builder
        .content_type("application/gzip")
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, etag))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=larder-{id}.tar.gz"),
        ))
        .insert_header((
            "Digest",
            format!(
                "sha-256={}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ),
        ));
    Ok((builder, range))
}

/// 416 for a bundle of `size` bytes.
fn unsatisfiable(size: u64) -> HttpResponse {
    HttpResponse::RangeNotSatisfiable()
        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
        .finish()
}

/// What a `Range` header asks of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// No range, one this server does not serve (several, another unit), or an `If-Range`
    /// naming other bytes: the whole.
    Whole,
    /// One satisfiable range (end exclusive).
    Part(std::ops::Range<u64>),
    /// One range that starts past the end.
    Unsatisfiable,
}

/// The single byte range of `Range: bytes=…` (RFC 9110 §14.1.2: `a-b`, `a-`, `-n`).
fn byte_range(req: &HttpRequest, size: u64, etag: &str) -> Ranged {
    let Some(spec) = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ranged::Whole;
    };
    // any validator but this ETag, however it is written: the whole (RFC 9110 §13.1.5)
    if let Some(tag) = req.headers().get(header::IF_RANGE) {
        if tag.as_bytes().trim_ascii() != etag.as_bytes() {
            return Ranged::Whole;
        }
    }
    parse_byte_range(spec, size)
}

fn parse_byte_range(spec: &str, size: u64) -> Ranged {
    let Some((first, last)) = spec.trim().split_once('-').filter(|_| !spec.contains(',')) else {
        return Ranged::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => return Ranged::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size),
            None => return Ranged::Whole,
        },
        (start, "") => match number(start) {
            Some(start) => (start, size),
            None => return Ranged::Whole,
        },
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if start <= end => (start, end.saturating_add(1).min(size)),
            _ => return Ranged::Whole,
        },
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(start..end)
}

/// [`stream_file`] of the next `len` bytes of `file`.
fn stream_file_part(
    file: tokio::fs::File,
    len: u64,
    counter: Arc<std::sync::atomic::AtomicU64>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    stream::unfold(
        (file, len, counter),
        |(mut file, left, counter)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the bundle is shorter than it was",
                    )),
                    (file, 0, counter),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(web::Bytes::from(buf)), (file, left - n as u64, counter)))
                }
                Err(e) => Some((Err(e), (file, 0, counter))),
            }
        },
    )
}

pub async fn environment_variables(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    auth::require_secret_reader(&req, row.submitted_by.as_deref(), row.user_name.as_deref())?;
    Ok(HttpResponse::Ok().json(row.env_vars()))
}

pub async fn get_configuration_files(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    auth::require_secret_reader(&req, row.submitted_by.as_deref(), row.user_name.as_deref())?;
    let rows: Vec<(String, Option<Vec<u8>>, Option<String>)> = crate::on!(&mut conn, c => {
        configuration_files::table
            .filter(configuration_files::request_id.eq(row.id))
            .order(configuration_files::path)
            .select((
                configuration_files::path,
                configuration_files::content,
                configuration_files::sha256,
            ))
            .load(c)
            .await
    })?;
    drop(conn);
    let mut files = Vec::with_capacity(rows.len());
    for (path, content, sha256) in rows {
        let content = match (content, sha256) {
            (Some(bytes), _) => HeldContent::Row(bytes),
            (None, Some(sha256)) => {
                // verified before the first byte is sent, as a bundle is
                let key = stored_config_file_key(&sha256)
                    .ok_or_else(|| ApiError::internal(format!("bad sha256 of {path}")))?;
                if let Some(tier) = &state.objects {
                    // verified as it is copied; the copy goes with the response
                    let copy = tempfile::NamedTempFile::new()
                        .map_err(|e| ApiError::internal(e.to_string()))?
                        .into_temp_path();
                    tier.get_to_file(&key, &copy).await.map_err(|e| {
                        ApiError::internal(format!("The configuration file {path} is missing: {e}"))
                    })?;
                    files.push((path, HeldContent::Copy(copy)));
                    continue;
                }
                let file = state.store.path(&key)?;
                let (verified, file) = web::block(move || {
                    let (digest, _) = sha256_of(&file)?;
                    std::io::Result::Ok((hex::encode(digest) == sha256, file))
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| {
                    ApiError::internal(format!("The configuration file {path} is missing: {e}"))
                })?;
                if !verified {
                    return Err(ApiError::internal(format!(
                        "Checksum of configuration file {path} has changed."
                    )));
                }
                HeldContent::Store(file)
            }
            (None, None) => return Err(ApiError::internal(format!("{path} has no content"))),
        };
        files.push((path, content));
    }
    Ok(crate::json_stream::written(
        HttpResponse::Ok(),
        move |out| {
            // Cachito's shape, `[{"content": <base64>, "path": …, "type": "base64"}]`, the base64
            // encoded as it is read
            out.write_all(b"[")?;
            for (i, (path, content)) in files.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(b"{\"content\":\"")?;
                {
                    let mut encoder = base64::write::EncoderWriter::new(
                        &mut *out,
                        &base64::engine::general_purpose::STANDARD,
                    );
                    match content {
                        HeldContent::Row(bytes) => encoder.write_all(&bytes)?,
                        HeldContent::Store(file) => {
                            std::io::copy(&mut std::fs::File::open(file)?, &mut encoder)?;
                        }
                        HeldContent::Copy(copy) => {
                            std::io::copy(&mut std::fs::File::open(&copy)?, &mut encoder)?;
                        }
                    }
                    encoder.finish()?;
                }
                out.write_all(b"\",\"path\":")?;
                serde_json::to_writer(&mut *out, &path)?;
                out.write_all(b",\"type\":\"base64\"}")?;
            }
            out.write_all(b"]")
        },
    ))
}

/// Where a configuration file's bytes are while its response is written.
enum HeldContent {
    Row(Vec<u8>),
    Store(std::path::PathBuf),
    /// A verified copy of an object (removed with the response).
    Copy(tempfile::TempPath),
}

/// The store key of a configuration file named by a sha256 in lowercase hex.
fn stored_config_file_key(sha256: &str) -> Option<String> {
    let digest = common::digest::Digest::from_hex(common::digest::HashAlgorithm::Sha256, sha256)
        .ok()
        .filter(|d| d.hex() == sha256)?;
    Some(common::store::config_file_key(&digest))
}

/// A stored file's sha256 and size, read through once.
fn sha256_of(path: &std::path::Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok((hasher.finalize().into(), size))
}

/// A configuration-files body may hold one rewritten lockfile (lockfiles are at most 64 MiB,
/// `worker/src/pkg_managers/limits.rs`) in base64: more than the 16 MiB of other JSON bodies.
/// Larder's worker puts such a file in the store and sends its digest instead.
const CONFIGURATION_FILES_BODY_BYTES: usize = 96 << 20;

/// What a report says a configuration file holds.
enum ReportedContent {
    Bytes(Vec<u8>),
    /// In the store under its sha256 (hex), verified when reported.
    Stored(String),
}

pub async fn add_configuration_files(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    let bytes = read_body(&req, payload, CONFIGURATION_FILES_BODY_BYTES).await?;
    // read in place, never as a serde_json::Value: a base64 lockfile of tens of MB would be
    // copied once more before it is decoded
    use serde_json::value::RawValue;
    let not_json = |e: serde_json::Error| {
        ApiError::bad_request(format!("The request body is not valid JSON: {e}"))
    };
    let body: &RawValue = serde_json::from_slice(&bytes).map_err(not_json)?;
    let items: Vec<&RawValue> = serde_json::from_str(body.get())
        .map_err(|_| ApiError::bad_request("The input data must be a JSON array"))?;
    let mut files = Vec::new();
    for item in items {
        let obj: BTreeMap<String, &RawValue> = serde_json::from_str(item.get())
            .map_err(|_| ApiError::bad_request("The input data must be a JSON array of objects"))?;
        let string = |k: &str| -> ApiResult<Option<std::borrow::Cow<'_, str>>> {
            obj.get(k)
                .map(|v| {
                    serde_json::from_str(v.get()).map_err(|_| {
                        ApiError::bad_request(format!(
                            "The configuration file key of \"{k}\" must be a string"
                        ))
                    })
                })
                .transpose()
        };
        let kind = string("type")?.unwrap_or_default();
        let keys: [&str; 3] = match kind.as_ref() {
            "base64" => ["content", "path", "type"],
            "stored" => ["path", "sha256", "type"],
            "" => ["content", "path", "type"],
            other => {
                return Err(ApiError::bad_request(format!(
                    "The configuration type of \"{other}\" is invalid"
                )))
            }
        };
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !obj.contains_key(*k))
            .collect();
        let extra: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !keys.contains(k))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(ApiError::bad_request(format!(
                "The following keys for the {} configuration file are missing: {}; invalid: {}",
                if kind.is_empty() {
                    "base64"
                } else {
                    kind.as_ref()
                },
                missing.join(", "),
                extra.join(", ")
            )));
        }
        let path = string("path")?.unwrap_or_default().into_owned();
        if crate::v1::validation::request_path(&path).is_none_or(|p| p.as_str() != path)
            || !path.starts_with("app/")
            || has_control(&path)
        {
            return Err(ApiError::bad_request(format!("The configuration file path {path:?} must be a normalized relative path under app/")));
        }
        let content = if kind == "stored" {
            let sha256 = string("sha256")?.unwrap_or_default().into_owned();
            let key = stored_config_file_key(&sha256).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "The sha256 of \"{path}\" must be 64 lowercase hexadecimal digits"
                ))
            })?;
            let not_stored =
                || ApiError::bad_request(format!("The content of \"{path}\" is not in the store"));
            let actual = match &state.objects {
                // the sha256 the worker put it with; its bytes are checked when it is served
                Some(tier) => tier
                    .head(&key)
                    .await
                    .map_err(|e| ApiError::internal(format!("cannot look up {key}: {e}")))?
                    .and_then(|o| o.sha256)
                    .ok_or_else(not_stored)?
                    .hex(),
                None => {
                    let file = state.store.path(&key)?;
                    let (digest, _) = web::block(move || sha256_of(&file))
                        .await
                        .map_err(|e| ApiError::internal(e.to_string()))?
                        .map_err(|_| not_stored())?;
                    hex::encode(digest)
                }
            };
            if actual != sha256 {
                return Err(ApiError::bad_request(format!(
                    "The content of \"{path}\" in the store does not match its sha256"
                )));
            }
            ReportedContent::Stored(sha256)
        } else {
            let content = string("content")?.unwrap_or_default();
            ReportedContent::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(content.as_bytes())
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "The content of \"{path}\" is not valid base64"
                        ))
                    })?,
            )
        };
        files.push((path, content));
    }
    drop(bytes);
    let attempt = crate::v1::leases::attempt_header(&req)?;
    let mut conn = state.pool.get().await?;
    crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        let row = crate::v1::leases::lock_for_report(conn, attempt, *id).await?;
        for (path, content) in files {
            let (content, sha256) = match content {
                ReportedContent::Bytes(bytes) => (Some(bytes), None),
                ReportedContent::Stored(sha256) => (None, Some(sha256)),
            };
            diesel::insert_into(configuration_files::table)
                .values((
                    configuration_files::request_id.eq(row.id),
                    configuration_files::path.eq(path),
                    configuration_files::content.eq(content),
                    configuration_files::sha256.eq(sha256),
                ))
                .on_conflict((configuration_files::request_id, configuration_files::path))
                .do_update()
                .set((
                    configuration_files::content
                        .eq(diesel::upsert::excluded(configuration_files::content)),
                    configuration_files::sha256
                        .eq(diesel::upsert::excluded(configuration_files::sha256)),
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    }))?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_packages(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    if row.state == "stale" {
        return Err(ApiError::not_found());
    }
    let data: PackagesData = packages_data(&mut conn, row.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(crate::json_stream::streamed(
        HttpResponse::Ok(),
        RequestContents::new(data),
    ))
}

/// Worker-only: the packages data of a request (Larder keeps it in the database).
pub async fn put_packages(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    let body = read_body(&req, payload, crate::error::WORKER_REPORT_BODY_LIMIT).await?;
    // checked a package at a time and stored as sent: a parsed copy of 50,000 dependencies
    // (and its serialization) cost several times the body
    let (json, index) = web::block(move || checked_packages_data(body))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let attempt = crate::v1::leases::attempt_header(&req)?;
    let mut conn = state.pool.get().await?;
    crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        let row = crate::v1::leases::lock_for_report(conn, attempt, *id).await?;
        store_packages_data(conn, row.id, json, index).await
    }))?;
    Ok(HttpResponse::NoContent().finish())
}

/// A body of at most `limit` bytes, in one buffer sized once from the announced length (grown
/// by doubling, it would hold up to twice the body).
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> ApiResult<Vec<u8>> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(announced.min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("The request body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `body` if it is packages data PostgreSQL accepts: every package is read as
/// [`common::Package`], its dependencies added to the search index, and dropped.
pub(crate) fn checked_packages_data(body: Vec<u8>) -> ApiResult<(String, DependencyIndex)> {
    use serde::de::DeserializeSeed;
    let text = String::from_utf8(body)
        .map_err(|_| ApiError::bad_request("The request body is not valid UTF-8"))?;
    let mut index = DependencyIndex::default();
    let mut de = serde_json::Deserializer::from_str(&text);
    IndexedPackages(&mut index)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| {
            ApiError::bad_request(format!("The request body is not valid packages data: {e}"))
        })?;
    // PostgreSQL refuses a NUL in jsonb, which JSON can only write as this escape
    if text.contains("\\u0000") {
        return Err(ApiError::bad_request(
            "The packages data must not contain NUL characters",
        ));
    }
    Ok((text, index))
}

/// Store a request's checked packages data ([`checked_packages_data`]) and its search rows
/// (inside the caller's transaction).
pub(crate) async fn store_packages_data(
    conn: &mut impl crate::db::AsDb,
    request_id: i64,
    json: String,
    index: DependencyIndex,
) -> ApiResult<()> {
    crate::on!(conn, c => diesel::sql_query(crate::sql!(
        postgres: "UPDATE requests SET packages_data = $1::jsonb WHERE id = $2",
        sqlite: "UPDATE requests SET packages_data = jsonb($1) WHERE id = $2",
    ))
    .bind::<diesel::sql_types::Text, _>(&json)
    .bind::<diesel::sql_types::Int8, _>(request_id)
    .execute(c)
    .await)?;
    index.write(conn, request_id).await
}

/// The search index of stored packages data (`search_backfill`).
pub fn dependency_index_of(body: Vec<u8>) -> ApiResult<DependencyIndex> {
    checked_packages_data(body).map(|(_, index)| index)
}

/// The packages data object (`{"packages": [...]}`, other keys ignored), read into the index.
struct IndexedPackages<'i>(&'i mut DependencyIndex);

/// Its `packages`: each one read as [`common::Package`], indexed, and dropped.
struct EachPackage<'i>(&'i mut DependencyIndex);

impl<'de> serde::de::DeserializeSeed<'de> for IndexedPackages<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for IndexedPackages<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with packages")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "packages" {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else if seen {
                return Err(serde::de::Error::duplicate_field("packages"));
            } else {
                map.next_value_seed(EachPackage(&mut *self.0))?;
                seen = true;
            }
        }
        if !seen {
            return Err(serde::de::Error::missing_field("packages"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for EachPackage<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EachPackage<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of packages")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(package) = seq.next_element::<common::Package>()? {
            self.0.add(&package);
        }
        Ok(())
    }
}

/// What the dependency search indexes of one dependency (`api/src/v1/dependencies.rs`).
#[derive(Debug, PartialEq, Eq)]
struct IndexedDependency {
    kind: String,
    name: String,
    version: Option<String>,
    /// a dev dependency of every package that has it
    dev: bool,
}

/// A request's dependencies by their purl's search key ([`common::purl::search_key`]; a purl
/// that is none is kept as written), once each.
#[derive(Debug, Default)]
pub struct DependencyIndex(BTreeMap<String, IndexedDependency>);

impl DependencyIndex {
    fn add(&mut self, package: &common::Package) {
        for dep in &package.dependencies {
            let dev = dep.dev.unwrap_or(false);
            let key = common::purl::search_key(&dep.purl).unwrap_or_else(|| dep.purl.clone());
            let name_bytes =
                dep.kind.len() + dep.name.len() + dep.version.as_ref().map_or(0, String::len);
            if key.len().max(name_bytes) > crate::v1::dependencies::INDEXED_BYTES {
                continue;
            }
            self.0
                .entry(key)
                .and_modify(|known| known.dev &= dev)
                .or_insert_with(|| IndexedDependency {
                    kind: dep.kind.clone(),
                    name: dep.name.clone(),
                    version: dep.version.clone(),
                    dev,
                });
        }
    }

    /// Replace the request's rows by these (inside the transaction that stores its packages
    /// data).
    pub async fn write(self, conn: &mut impl crate::db::AsDb, request_id: i64) -> ApiResult<()> {
        use crate::schema::request_dependencies as rd;
        // (SQLite: one connection, so one report at a time; no table lock to take)
        if let crate::db::Db::Postgres(c) = conn.as_db() {
            let replacing: bool = diesel::select(diesel::dsl::exists(
                rd::table.filter(rd::request_id.eq(request_id)),
            ))
            .get_result(c)
            .await?;
            if replacing {
                // the delete's counts and the inserts' are two runs of purl order, which could
                // cross another report's one run: replacements (a retried attempt) go one at a
                // time
                diesel::sql_query(
                    "LOCK TABLE dependency_request_counts IN SHARE ROW EXCLUSIVE MODE",
                )
                .execute(c)
                .await?;
            }
        }
        crate::on!(conn, c => diesel::delete(rd::table.filter(rd::request_id.eq(request_id)))
            .execute(c)
            .await)?;
        let rows: Vec<_> = self.0.into_iter().collect();
        macro_rules! values_of {
            ($chunk:expr) => {
                $chunk
                    .iter()
                    .map(|(purl, dep)| {
                        (
                            rd::request_id.eq(request_id),
                            rd::purl.eq(purl),
                            rd::kind.eq(&dep.kind),
                            rd::name.eq(&dep.name),
                            rd::version.eq(dep.version.as_deref()),
                            rd::dev.eq(dep.dev),
                        )
                    })
                    .collect::<Vec<_>>()
            };
        }
        // 6 parameters a row, well below PostgreSQL's 65,535 a statement (and SQLite's 32,766)
        match conn.as_db() {
            crate::db::Db::Postgres(c) => {
                for chunk in rows.chunks(5000) {
                    diesel::insert_into(rd::table)
                        .values(values_of!(chunk))
                        .execute(c)
                        .await?;
                }
            }
            // diesel writes SQLite's multi-row insert only on its synchronous connection
            crate::db::Db::Sqlite(c) => {
                c.spawn_blocking(move |c| {
                    for chunk in rows.chunks(5000) {
                        diesel::RunQueryDsl::execute(
                            diesel::insert_into(rd::table).values(values_of!(chunk)),
                            c,
                        )?;
                    }
                    Ok(())
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// Worker-only: the files this request's repositories serve (replaces what was recorded).
pub async fn put_artifacts(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Vec<Artifact>>,
) -> ApiResult<HttpResponse> {
    record_artifacts(req, state, *id, body.into_inner(), true).await
}

/// Worker-only: more files this request's repositories serve (added to what was recorded): a
/// request with many files reports them in several bodies, each parsed whole here.
pub async fn add_artifacts(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Vec<Artifact>>,
) -> ApiResult<HttpResponse> {
    record_artifacts(req, state, *id, body.into_inner(), false).await
}

async fn record_artifacts(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: i64,
    items: Vec<Artifact>,
    replace: bool,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    let mut metas = Vec::with_capacity(items.len());
    for a in &items {
        let meta = serde_json::to_value(&a.meta).map_err(|e| ApiError::internal(e.to_string()))?;
        if [a.pm.as_str(), &a.name, &a.version, &a.filename]
            .into_iter()
            .chain(a.source_url.as_deref())
            .any(has_control)
            || any_string(&meta, &|s| s.contains('\0'))
        {
            return Err(ApiError::bad_request(format!(
                "The artifact {:?} of {:?} contains control characters",
                a.filename, a.name
            )));
        }
        metas.push(meta);
        if !crate::repos::servable_store_key(a.pm.as_str(), &a.store_key) {
            tracing::warn!(request_id = id, pm = %a.pm, store_key = %a.store_key, "refused an artifact whose store key lies outside its package manager's files");
            return Err(ApiError::bad_request(format!(
                "The store key {:?} is not a {} file this request's repository may serve",
                a.store_key, a.pm
            )));
        }
    }
    let attempt = crate::v1::leases::attempt_header(&req)?;
    let mut conn = state.pool.get().await?;
    crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        let row = crate::v1::leases::lock_for_report(conn, attempt, id).await?;
        if replace {
            diesel::delete(artifacts::table.filter(artifacts::request_id.eq(row.id)))
                .execute(conn)
                .await?;
        }
        insert_artifacts(conn, row.id, &items, &metas).await?;
        Ok(())
    }))?;
    Ok(HttpResponse::NoContent().finish())
}

/// Record `items` (their metadata `metas`), those already recorded kept as they are.
async fn insert_artifacts(
    conn: &mut impl crate::db::AsDb,
    request_id: i64,
    items: &[Artifact],
    metas: &[serde_json::Value],
) -> diesel::QueryResult<()> {
    macro_rules! values_of {
        ($chunk:expr, $metas:expr) => {
            $chunk
                .iter()
                .zip($metas)
                .map(|(a, meta)| {
                    (
                        artifacts::request_id.eq(request_id),
                        artifacts::pm.eq(a.pm.as_str()),
                        artifacts::name.eq(&a.name),
                        artifacts::version.eq(&a.version),
                        artifacts::filename.eq(&a.filename),
                        artifacts::store_key.eq(&a.store_key),
                        artifacts::meta.eq(meta),
                        artifacts::source_url.eq(&a.source_url),
                    )
                })
                .collect::<Vec<_>>()
        };
    }
    // 8 parameters a row: within PostgreSQL's 65,535 and SQLite's 32,766 a statement
    match conn.as_db() {
        crate::db::Db::Postgres(c) => {
            for (chunk, metas) in items.chunks(1000).zip(metas.chunks(1000)) {
                diesel::insert_into(artifacts::table)
                    .values(values_of!(chunk, metas))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
            }
        }
        // diesel writes SQLite's multi-row insert only on its synchronous connection
        crate::db::Db::Sqlite(c) => {
            let (items, metas) = (items.to_vec(), metas.to_vec());
            c.spawn_blocking(move |c| {
                for (chunk, metas) in items.chunks(1000).zip(metas.chunks(1000)) {
                    diesel::RunQueryDsl::execute(
                        diesel::insert_into(artifacts::table)
                            .values(values_of!(chunk, metas))
                            .on_conflict_do_nothing(),
                        c,
                    )?;
                }
                Ok(())
            })
            .await?;
        }
    }
    Ok(())
}

pub async fn content_manifest(
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    if row.state != "complete" && row.state != "stale" {
        return Err(ApiError::bad_request("Content manifests are only available for requests in the \"complete\" or \"stale\" states"));
    }
    let data = shown_packages_data(&mut conn, &row).await?;
    Ok(HttpResponse::Ok().json(common::manifest::content_manifest(data.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker's writes on the embedded SQLite database: a request inserted as `create` does,
    /// its packages data and dependency rows (stored, then replaced), artifacts, a log chunk,
    /// and a patch to stale that removes the log.
    #[tokio::test(flavor = "multi_thread")]
    async fn worker_reports_on_sqlite() {
        use crate::models::RequestRow;
        use crate::schema::{request_dependencies, requests};
        use crate::v1::requests::{apply_patch, load_history, PatchBody};
        use common::RequestState;
        let lite = crate::test_db::TestSqlite::new().await;
        let mut conn = lite.pool.get().await.unwrap();
        let now = chrono::Utc::now().naive_utc();
        let (pms, flags) = (vec!["npm".to_string()], vec!["a-flag".to_string()]);
        let row: RequestRow = crate::on!(&mut conn, c => {
            diesel::insert_into(requests::table)
                .values((
                    requests::repo.eq("https://example.com/r.git"),
                    requests::git_ref.eq("0123456789abcdef0123456789abcdef01234567"),
                    requests::pkg_managers.eq(crate::sql_types::Strings(&pms)),
                    requests::packages.eq(serde_json::json!({})),
                    requests::flags.eq(crate::sql_types::Strings(&flags)),
                    requests::dependency_replacements.eq(serde_json::json!([])),
                    requests::created.eq(now),
                    requests::state.eq("in_progress"),
                    requests::state_reason.eq("The request was initiated"),
                    requests::updated.eq(now),
                    requests::token_salt.eq("salt"),
                ))
                .returning(RequestRow::as_returning())
                .get_result(c)
                .await
        })
        .unwrap();
        assert_eq!((row.pkg_managers.clone(), row.flags.clone()), (pms, flags));
        let id = row.id;
        let data = |deps: &[&str]| {
            let deps: Vec<_> = deps
                .iter()
                .map(|n| {
                    serde_json::json!({"type": "npm", "name": n, "version": "1.0.0",
                    "purl": format!("pkg:npm/{n}@1.0.0")})
                })
                .collect();
            serde_json::to_vec(
                &serde_json::json!({"packages": [{"type": "npm", "name": "p",
                "version": "1", "purl": "pkg:npm/p@1", "dependencies": deps}]}),
            )
            .unwrap()
        };
        for deps in [&["a", "b", "c"][..], &["b", "d"][..]] {
            let (json, index) = checked_packages_data(data(deps)).unwrap();
            crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
                crate::v1::leases::lock_for_report(conn, Some(0), id).await?;
                store_packages_data(conn, id, json, index).await
            }))
            .unwrap();
            let stored = packages_data(&mut conn, id).await.unwrap().unwrap();
            assert_eq!(stored.packages[0].dependencies.len(), deps.len());
            let indexed: i64 = crate::on!(&mut conn, c => request_dependencies::table
                .filter(request_dependencies::request_id.eq(id))
                .count()
                .get_result(c)
                .await)
            .unwrap();
            assert_eq!(indexed, deps.len() as i64);
        }
        let artifact = Artifact {
            pm: "gomod".into(),
            name: "example.com/a".into(),
            version: "v1.0.0".into(),
            filename: "v1.0.0.zip".into(),
            store_key: "deps/gomod/cache/download/example.com/a/@v/v1.0.0.zip".into(),
            meta: common::ArtifactMeta::Gomod(Default::default()),
            source_url: None,
        };
        let meta = serde_json::to_value(&artifact.meta).unwrap();
        for _ in 0..2 {
            insert_artifacts(
                &mut conn,
                id,
                std::slice::from_ref(&artifact),
                std::slice::from_ref(&meta),
            )
            .await
            .unwrap();
        }
        let metas: Vec<serde_json::Value> = crate::on!(&mut conn, c => artifacts::table
            .filter(artifacts::request_id.eq(id))
            .select(artifacts::meta)
            .load(c)
            .await)
        .unwrap();
        assert_eq!(metas, vec![meta]);
        crate::on!(&mut conn, c => diesel::sql_query(
            "INSERT INTO request_log_chunks (request_id, writer, writer_seq, body) \
             VALUES ($1, 'w', 1, x'6c696e650a')",
        )
        .bind::<diesel::sql_types::BigInt, _>(id)
        .execute(c)
        .await)
        .unwrap();
        let update = PatchBody::state(RequestState::Stale, "gone".into(), None);
        let changed = crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| apply_patch(conn, id, update, None).await))
        .unwrap();
        assert_eq!(changed, Some(RequestState::Stale));
        let row = find(&mut conn, id).await.unwrap();
        assert_eq!(row.state, "stale");
        assert_eq!(load_history(&mut conn, id).await.unwrap().len(), 1);
        let chunks: i64 = crate::on!(&mut conn, c => diesel::select(diesel::dsl::sql::<
            diesel::sql_types::BigInt,
        >("(SELECT count(*) FROM request_log_chunks)"))
        .get_result(c)
        .await)
        .unwrap();
        assert_eq!(chunks, 0);
    }

    /// (bytes the stream handed out before it ended or failed, whether it failed, whether
    /// `damaged` ran)
    async fn served(content: &[u8], expected: [u8; 32]) -> (usize, bool, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let stream = verified_stream(file, expected, Arc::default(), move || {
            flag.store(true, Ordering::SeqCst)
        });
        futures_util::pin_mut!(stream);
        let (mut out, mut failed) = (0, false);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => out += bytes.len(),
                Err(_) => failed = true,
            }
        }
        (
            out,
            failed,
            std::sync::atomic::AtomicBool::load(&ran, Ordering::SeqCst),
        )
    }

    #[test]
    fn byte_ranges() {
        use Ranged::*;
        for (spec, want) in [
            ("0-9", Part(0..10)),
            ("90-", Part(90..100)),
            ("-10", Part(90..100)),
            ("-1000", Part(0..100)),
            ("95-1000", Part(95..100)),
            ("100-", Unsatisfiable),
            ("-0", Unsatisfiable),
            ("9-0", Whole),
            ("0-1,5-6", Whole),
            ("x-", Whole),
            ("+5-", Whole),
            ("", Whole),
        ] {
            assert_eq!(parse_byte_range(spec, 100), want, "{spec}");
        }
    }

    #[tokio::test]
    async fn a_stored_file_is_served_whole_only_when_it_has_its_sha256() {
        let content: Vec<u8> = (0..3 * CHUNK + 17).map(|i| i as u8).collect();
        let good: [u8; 32] = Sha256::digest(&content).into();
        assert_eq!(served(&content, good).await, (content.len(), false, false));
        let (out, failed, damaged) = served(&content, [0; 32]).await;
        assert!(failed && damaged);
        assert!(
            out < content.len(),
            "{out} of {} bytes went out",
            content.len()
        );
        // one chunk, and none
        assert_eq!(
            served(b"x", Sha256::digest(b"x").into()).await,
            (1, false, false)
        );
        assert_eq!(
            served(b"", Sha256::digest(b"").into()).await,
            (0, false, false)
        );
        assert_eq!(served(b"x", [0; 32]).await, (0, true, true));
    }
}
