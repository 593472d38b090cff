//! Per-request repositories under `/repos/{id}/…`: the token check shared by every package
//! manager, then one module per package manager serves its protocol.

pub mod cargo;
pub mod gomod;
pub mod npm;
pub mod pip;
pub mod rubygems;

use crate::error::{ApiError, ApiResult};
use crate::models::ArtifactRow;
use crate::schema::artifacts;
use crate::v1::requests::find;
use crate::v1::validation::has_control;
use crate::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use common::Artifact;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use subtle::ConstantTimeEq;

/// What a package manager's repository answers for one path.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    File {
        store_key: String,
        content_type: &'static str,
    },
    Body {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
    Redirect {
        location: String,
    },
    NotFound,
}

/// One protocol of the per-request repositories, `/repos/{id}/<segment>/…`: it serves the
/// artifacts its package managers recorded for the request, and nothing else. The token check,
/// the 410 of a stale request and the streaming of stored files are shared ([`check`],
/// [`RepoRequest::respond`]).
pub trait Repository: Sync {
    /// The path segment: `npm`, `pip`, `cargo`, `gomod`.
    fn segment(&self) -> &'static str;

    /// The package managers whose artifacts it serves.
    fn package_managers(&self) -> &'static [&'static str];

    /// Whether an artifact may name the stored file `key` (checked when a worker reports it
    /// and again when it is served): only the kinds of file its package managers store, never
    /// the token secret, bundles, logs, sources or another protocol's files.
    fn may_serve(&self, key: &str) -> bool;

    fn handle<'a>(
        &'a self,
        repo: &'a RepoRequest,
        req: &'a HttpRequest,
        tail: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<HttpResponse>>;
}

/// A protocol that serves stored files named `<prefix>…<suffix>` through an async handler:
/// declared as data rather than each writing out the same `Repository` impl.
pub struct FileRepository {
    pub segment: &'static str,
    pub package_managers: &'static [&'static str],
    /// (prefix, suffix) of the store keys its artifacts may name.
    pub store_keys: (&'static str, &'static str),
    pub handle: for<'a> fn(
        &'a RepoRequest,
        &'a HttpRequest,
        &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<HttpResponse>>,
}

impl Repository for FileRepository {
    fn segment(&self) -> &'static str {
        self.segment
    }

    fn package_managers(&self) -> &'static [&'static str] {
        self.package_managers
    }

    fn may_serve(&self, key: &str) -> bool {
        let (prefix, suffix) = self.store_keys;
        key.starts_with(prefix) && key.ends_with(suffix)
    }

    fn handle<'a>(
        &'a self,
        repo: &'a RepoRequest,
        req: &'a HttpRequest,
        tail: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<HttpResponse>> {
        (self.handle)(repo, req, tail)
    }
}

/// The protocols this api serves.
pub static REPOSITORIES: &[&dyn Repository] = &[
    &gomod::GoProxy,
    &npm::REGISTRY,
    &pip::SimpleIndex,
    &cargo::SPARSE_REGISTRY,
    &rubygems::GEM_SERVER,
];

/// The protocol that serves the artifacts of package manager `pm`.
pub fn repository_of(pm: &str) -> Option<&'static dyn Repository> {
    REPOSITORIES
        .iter()
        .copied()
        .find(|r| r.package_managers().contains(&pm))
}

/// Whether an artifact of package manager `pm` may name the stored file `key`.
pub fn servable_store_key(pm: &str, key: &str) -> bool {
    let normal = !key.is_empty()
        && !has_control(key)
        && !key.contains('\\')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    normal && repository_of(pm).is_some_and(|r| r.may_serve(key))
}

/// `deps/git/<host>/<path>/<40-hex commit>.tar.gz`
pub fn is_git_archive(key: &str) -> bool {
    key.strip_prefix("deps/git/")
        .and_then(|rest| rest.strip_suffix(".tar.gz"))
        .and_then(|rest| rest.rsplit_once('/'))
        .is_some_and(|(repo, commit)| {
            repo.contains('/') && common::commit::CommitId::parse_any_case(commit).is_ok()
        })
}

/// The request whose repository is being read, once its token has been checked.
pub struct RepoRequest {
    pub request_id: i64,
    /// `<public>/repos/<id>/t/<token>/<pm>/`
    pub base_url: String,
    pub state: web::Data<AppState>,
    pub repository: &'static dyn Repository,
}

impl RepoRequest {
    /// The request's artifacts of the package managers this protocol serves, optionally only
    /// those named `name`.
    pub async fn artifacts(&self, name: Option<&str>) -> ApiResult<Vec<Artifact>> {
        if name.is_some_and(has_control) {
            // no artifact is named so (they are refused when reported)
            return Ok(Vec::new());
        }
        let mut conn = self.state.pool.get().await?;
        // boxed per backend
        let rows: Vec<ArtifactRow> = crate::on!(&mut conn, c => {
            let mut query = artifacts::table
                .filter(artifacts::request_id.eq(self.request_id))
                .filter(artifacts::pm.eq_any(self.repository.package_managers()))
                .into_boxed();
            if let Some(name) = name {
                query = query.filter(artifacts::name.eq(name.to_string()));
            }
            query.select(ArtifactRow::as_select()).load(c).await
        })?;
        Ok(rows
            .into_iter()
            .filter(|row| {
                // recorded before keys were checked when reported
                let servable = servable_store_key(&row.pm, &row.store_key);
                if !servable {
                    tracing::warn!(request_id = self.request_id, pm = %row.pm, store_key = %row.store_key, "not serving an artifact outside its package manager's files");
                }
                servable
            })
            .filter_map(|row| {
                row.into_artifact()
                    .inspect_err(|(store_key, e)| {
                        tracing::warn!(request_id = self.request_id, %store_key, error = %e, "not serving an artifact whose metadata is unreadable");
                    })
                    .ok()
            })
            .collect())
    }

    pub async fn respond(&self, served: Served) -> ApiResult<HttpResponse> {
        match served {
            Served::NotFound => Err(ApiError::not_found()),
            Served::Redirect { location } => Ok(HttpResponse::MovedPermanently()
                .insert_header((header::LOCATION, location))
                .finish()),
            Served::Body {
                bytes,
                content_type,
            } => {
                self.state.bytes_downloaded.add(bytes.len() as u64);
                Ok(HttpResponse::Ok().content_type(content_type).body(bytes))
            }
            Served::File {
                store_key,
                content_type,
            } => {
                if let Some(tier) = &self.state.objects {
                    return self.object(tier, store_key, content_type).await;
                }
                let path = self.state.store.path(&store_key)?;
                let opened = path.clone();
                // the record, size and identity of the very file served, whatever its path
                // names by the time the stream ends
                let (file, meta, recorded) = web::block(move || {
                    let file = std::fs::File::open(&opened)?;
                    let meta = file.metadata()?;
                    let recorded = common::store::file_record::recorded_digests_of(&file);
                    Ok::<_, std::io::Error>((file, meta, recorded))
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(format!("{store_key}: {e}")))?;
                let size = meta.len();
                let file = tokio::fs::File::from_std(file);
                let counter = self.state.bytes_downloaded.counting();
                let mut builder = HttpResponse::Ok();
                builder
                    .content_type(content_type)
                    .insert_header(header::ContentEncoding::Identity)
                    .no_chunking(size);
                // what a request verified is what is served: checked as it streams
                Ok(match recorded.filter(|d| d.size == size) {
                    Some(digests) => {
                        let store = self.state.store.clone();
                        let damaged = move || {
                            use std::os::unix::fs::MetadataExt;
                            tracing::error!(key = %store_key, "a stored file does not have the sha256 it was verified with: removed, the next request that needs it downloads it again");
                            // not a whole file stored at its key since this one was opened
                            let same = std::fs::symlink_metadata(&path).is_ok_and(|now| {
                                (now.dev(), now.ino()) == (meta.dev(), meta.ino())
                            });
                            if !same {
                                return;
                            }
                            if let Err(e) = store.remove(&store_key) {
                                tracing::warn!(key = %store_key, error = %e, "cannot remove a damaged stored file");
                            }
                        };
                        builder.streaming(crate::v1::files::verified_stream(
                            file,
                            *digests.sha256(),
                            counter,
                            damaged,
                        ))
                    }
                    None => builder.streaming(crate::v1::files::stream_file(file, counter)),
                })
            }
        }
    }

    /// A stored file from the object store, checked as it streams against the sha256 the
    /// worker put it with: a damaged object is removed (the next request that needs it
    /// downloads it again) and the response ends short of its `Content-Length`.
    async fn object(
        &self,
        tier: &common::store::object::ObjectTier,
        store_key: String,
        content_type: &'static str,
    ) -> ApiResult<HttpResponse> {
        use common::store::object::ObjectTierError;
        let object = tier.get_stream(&store_key).await.map_err(|e| match e {
            ObjectTierError::NotFound(_) => {
                ApiError::internal(format!("{store_key} is not in the store"))
            }
            e => ApiError::internal(format!("{store_key}: {e}")),
        })?;
        let Some(sha256) = object
            .sha256
            .and_then(|d| <[u8; 32]>::try_from(d.bytes()).ok())
        else {
            return Err(ApiError::internal(format!(
                "{store_key} has no sha256 in the store"
            )));
        };
        let size = object.size;
        let counter = self.state.bytes_downloaded.counting();
        let chunks = object
            .bytes
            .map(|c| c.map_err(|e| std::io::Error::other(e.to_string())));
        let (tier, key) = (tier.clone(), store_key.clone());
        let damaged = move || {
            tracing::error!(%key, "an object does not have the sha256 it was stored with: removed, the next request that needs it downloads it again");
            tokio::spawn(async move {
                if let Err(e) = tier.delete(&key).await {
                    tracing::warn!(%key, error = %e, "cannot remove a damaged object");
                }
            });
        };
        if crate::v1::files::empty_but_not(size, &sha256) {
            damaged();
            return Err(ApiError::internal(format!(
                "{store_key} is damaged in the store"
            )));
        }
        Ok(HttpResponse::Ok()
            .content_type(content_type)
            .insert_header(header::ContentEncoding::Identity)
            .no_chunking(size)
            .streaming(crate::v1::files::verified_chunks(
                chunks, sha256, counter, damaged,
            )))
    }
}

/// The token as the clients send it: HTTP Basic password (pip, go), `Bearer` (npm), or the raw
/// header value (cargo).
fn header_token(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    if let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_string());
    }
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string());
    }
    Some(value.to_string())
}

fn unauthorized() -> ApiError {
    ApiError {
        status: actix_web::http::StatusCode::UNAUTHORIZED,
        message: "A valid token for this request's repository is required".into(),
    }
}

async fn check(
    req: &HttpRequest,
    state: web::Data<AppState>,
    id: i64,
    path_token: Option<&str>,
    segment: &str,
) -> ApiResult<RepoRequest> {
    let repository = REPOSITORIES
        .iter()
        .copied()
        .find(|r| r.segment() == segment)
        .ok_or_else(ApiError::not_found)?;
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, id).await?;
    drop(conn);
    let expected = state.secret.repo_token(row.id, &row.token_salt);
    let presented = path_token
        .map(str::to_string)
        .or_else(|| header_token(req))
        .ok_or_else(unauthorized)?;
    if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(unauthorized());
    }
    if row.state == "stale" {
        return Err(ApiError::gone(format!(
            "Request {id} is stale: its repositories are gone"
        )));
    }
    let base_url = format!(
        "{}/repos/{}/t/{}/{}/",
        state.config.public_url.trim_end_matches('/'),
        row.id,
        expected,
        segment
    );
    Ok(RepoRequest {
        request_id: row.id,
        base_url,
        state,
        repository,
    })
}

/// `/repos/{id}/t/{token}/{pm}/{tail}`: the capability-URL form (the token is in the path).
pub async fn serve_with_path_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, token, pm, tail) = path.into_inner();
    if [&token, &pm, &tail].iter().any(|s| has_control(s)) {
        return Err(ApiError::not_found());
    }
    let repo = check(&req, state, id, Some(&token), &pm).await?;
    repo.repository.handle(&repo, &req, &tail).await
}

/// `/repos/{id}/{pm}/{tail}`: the token comes in the `Authorization` header.
pub async fn serve_with_header_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, pm, tail) = path.into_inner();
    if has_control(&pm) || has_control(&tail) {
        return Err(ApiError::not_found());
    }
    let repo = check(&req, state, id, None, &pm).await?;
    repo.repository.handle(&repo, &req, &tail).await
}

#[cfg(test)]
mod tests {
    use super::servable_store_key;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn only_each_package_managers_own_files_are_servable() {
        for (pm, key) in [
            (
                "gomod",
                "deps/gomod/cache/download/golang.org/x/text/@v/v0.3.0.zip",
            ),
            ("npm", "deps/npm/@s/b/-/b-2.0.0.tgz"),
            (
                "npm",
                "deps/npm/github.com/o/r/r-external-gitcommit-abc.tgz",
            ),
            ("pip", "deps/pip/foo/foo-1.0.tar.gz"),
            ("pip", "deps/pip/external-bar/bar-external-sha256-00.whl"),
            ("pip", &format!("deps/git/github.com/org/repo/{SHA}.tar.gz")),
            ("cargo", "deps/cargo/serde/serde-1.0.0.crate"),
            ("rubygems", "deps/rubygems/rack/rack-3.0.8.gem"),
        ] {
            assert!(servable_store_key(pm, key), "{pm} {key}");
        }
        for (pm, key) in [
            ("npm", "secret.key"),
            ("npm", "bundles/1.tar.gz"),
            ("npm", "logs/1.log"),
            ("npm", "../x"),
            ("npm", "deps/npm/../../secret.key"),
            ("npm", "deps/npm/./x.tgz"),
            ("npm", "deps/npm//x.tgz"),
            ("npm", "/deps/npm/x.tgz"),
            ("npm", "deps/npm/x.tgz\0"),
            ("npm", "deps/pip/foo/foo-1.0.tar.gz"),
            ("npm", "deps/npm/x.json"),
            ("gomod", "deps/gomod/other/x.zip"),
            ("pip", "deps/pip-index/foo/1.0.json"),
            ("pip", "deps/git/github.com/org/repo/main.tar.gz"),
            ("pip", &format!("deps/git/{SHA}.tar.gz")),
            ("pip", "sources/github.com/org/repo/x.tar.gz"),
            ("cargo", "deps/cargo/serde/serde-1.0.0.index-line"),
            ("cargo", "deps/npm/a/-/a-1.0.0.tgz"),
            ("rubygems", "deps/rubygems/rack/rack-3.0.8.info-line"),
            ("git-submodule", "deps/git/github.com/org/repo/x.tar.gz"),
            ("", "deps/npm/a/-/a-1.0.0.tgz"),
        ] {
            assert!(!servable_store_key(pm, key), "{pm} {key}");
        }
    }
}
