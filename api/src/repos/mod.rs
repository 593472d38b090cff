//! Per-request repositories under `/repos/{id}/…`: the token check shared by every package
//! manager, then one module per package manager serves its protocol.

pub mod cargo;
pub mod gomod;
pub mod npm;
pub mod pip;

use crate::error::{ApiError, ApiResult};
use crate::schema::artifacts;
use crate::v1::requests::find;
use crate::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use common::Artifact;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
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

/// The request whose repository is being read, once its token has been checked.
pub struct RepoRequest {
    pub request_id: i64,
    /// `<public>/repos/<id>/t/<token>/<pm>/`
    pub base_url: String,
    pub state: web::Data<AppState>,
}

impl RepoRequest {
    /// Artifacts of this request's package manager `pm`, optionally only those named `name`.
    pub async fn artifacts(&self, pm: &str, name: Option<&str>) -> ApiResult<Vec<Artifact>> {
        let mut conn = self.state.pool.get().await?;
        let mut query = artifacts::table
            .filter(artifacts::request_id.eq(self.request_id))
            .filter(artifacts::pm.eq(pm.to_string()))
            .into_boxed();
        if let Some(name) = name {
            query = query.filter(artifacts::name.eq(name.to_string()));
        }
        let rows: Vec<(String, String, String, String, String, serde_json::Value)> = query
            .select((
                artifacts::pm,
                artifacts::name,
                artifacts::version,
                artifacts::filename,
                artifacts::store_key,
                artifacts::meta,
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(pm, name, version, filename, store_key, meta)| Artifact {
                pm,
                name,
                version,
                filename,
                store_key,
                meta,
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
                self.state
                    .bytes_downloaded
                    .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(HttpResponse::Ok().content_type(content_type).body(bytes))
            }
            Served::File {
                store_key,
                content_type,
            } => {
                let path = self.state.store.path(&store_key)?;
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| ApiError::internal(format!("{store_key}: {e}")))?;
                let size = file
                    .metadata()
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?
                    .len();
                let mut builder = HttpResponse::Ok();
                builder.content_type(content_type);
                Ok(crate::v1::files::stored_file(
                    builder,
                    file,
                    size,
                    self.state.bytes_downloaded.clone(),
                ))
            }
        }
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
    pm: &str,
) -> ApiResult<RepoRequest> {
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
        pm
    );
    Ok(RepoRequest {
        request_id: row.id,
        base_url,
        state,
    })
}

async fn dispatch(
    repo: RepoRequest,
    req: &HttpRequest,
    pm: &str,
    tail: &str,
) -> ApiResult<HttpResponse> {
    match pm {
        "cargo" => cargo::handle(&repo, req, tail).await,
        "npm" => npm::handle(&repo, req, tail).await,
        "gomod" => gomod::serve(&repo, tail).await,
        "pypi" => pip::handle(&repo, req, tail).await,
        _ => repo.respond(Served::NotFound).await,
    }
}

/// `/repos/{id}/t/{token}/{pm}/{tail}`: the capability-URL form (the token is in the path).
pub async fn serve_with_path_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, token, pm, tail) = path.into_inner();
    let repo = check(&req, state, id, Some(&token), &pm).await?;
    dispatch(repo, &req, &pm, &tail).await
}

/// `/repos/{id}/{pm}/{tail}`: the token comes in the `Authorization` header.
pub async fn serve_with_header_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, pm, tail) = path.into_inner();
    let repo = check(&req, state, id, None, &pm).await?;
    dispatch(repo, &req, &pm, &tail).await
}
