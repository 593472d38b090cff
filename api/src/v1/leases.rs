//! Worker leases: a worker claims a request for one attempt (`POST …/claim`), keeps the lease
//! alive (`POST …/heartbeat`, and every report it sends), and sends its attempt with every report
//! (`X-Larder-Attempt`). A newer claim fences the older attempt: nothing it sends changes the
//! request. Claims are bounded (`LARDER_MAX_DELIVERIES`) and so is a request's time
//! (`LARDER_REQUEST_TIMEOUT`): past either, the request fails with `error_origin: server`.

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::models::RequestRow;
use crate::schema::requests;
use crate::v1::requests::{apply_patch, lock, PatchBody};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use common::{ErrorKind, Failure, Job, PmName, RequestState, ATTEMPT_HEADER};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Deserialize;

/// The attempt a worker's report carries, if any (Cachito's own clients send none).
pub fn attempt_header(req: &HttpRequest) -> ApiResult<Option<i32>> {
    match req.headers().get(ATTEMPT_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!("The {ATTEMPT_HEADER} header must be an integer"))
            }),
    }
}

/// A report from an attempt that is no longer the request's current one is refused.
pub fn check_attempt(row: &RequestRow, attempt: i32) -> ApiResult<()> {
    if attempt != row.attempts {
        return Err(ApiError::conflict(format!(
            "Attempt {attempt} of request {} was superseded by attempt {}",
            row.id, row.attempts
        )));
    }
    if row.state != RequestState::InProgress.as_str() {
        return Err(ApiError::conflict(format!(
            "Request {} is {}: nothing more can be reported",
            row.id, row.state
        )));
    }
    Ok(())
}

/// Worker-only writes (packages, artifacts, configuration files) with the attempt checked under
/// the request's row lock.
pub async fn lock_for_report(
    conn: &mut impl crate::db::AsDb,
    attempt: Option<i32>,
    id: i64,
) -> ApiResult<RequestRow> {
    let row = lock(conn, id).await?;
    if let Some(attempt) = attempt {
        check_attempt(&row, attempt)?;
    }
    Ok(row)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Who claims (`host-pid`), shown in logs and status.
    pub worker: String,
    /// The broker redelivered the job: the consumer that held it is gone, so its lease may be
    /// taken over at once instead of waiting for it to expire.
    #[serde(default)]
    pub redelivered: bool,
}

enum Claim {
    Granted(Box<RequestRow>),
    Refused(String),
}

/// Worker-only: take the request for a new attempt. 200 with the job; 409 when the request is
/// final, held by a live attempt, or was just failed for running too long or too often.
pub async fn claim(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<ClaimBody>,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    let id = *id;
    let worker = common::text::clean(&body.worker, 200);
    let config = &state.config;
    let (timeout, max, lease) = (
        chrono::Duration::from_std(config.request_timeout).unwrap_or(chrono::Duration::MAX),
        i32::try_from(config.max_deliveries).unwrap_or(i32::MAX),
        chrono::Duration::from_std(config.heartbeat_timeout).unwrap_or(chrono::Duration::MAX),
    );
    let mut conn = state.pool.get().await?;
    let outcome = crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        let row = lock(conn, id).await?;
        if row.state != RequestState::InProgress.as_str() {
            return Ok(Claim::Refused(format!("Request {id} is {}", row.state)));
        }
        let now = crate::db::now(conn).await?;
        let live = row.heartbeat_at.is_some_and(|h| now - h < lease);
        if row.attempts > 0 && live && !body.redelivered {
            return Ok(Claim::Refused(format!(
                "Request {id} is being processed by {} (attempt {})",
                row.worker.as_deref().unwrap_or("a worker"),
                row.attempts
            )));
        }
        if let Some(failure) = exhausted(&row, now, timeout, max, config) {
            let reason = failure.message.clone();
            apply_patch(conn, id, PatchBody::failed(failure), None).await?;
            return Ok(Claim::Refused(reason));
        }
        let row: RequestRow = diesel::update(requests::table.find(id))
            .set((
                requests::attempts.eq(row.attempts + 1),
                requests::started_at.eq(row.started_at.unwrap_or(now)),
                requests::heartbeat_at.eq(now),
                requests::worker.eq(&worker),
            ))
            .returning(RequestRow::as_returning())
            .get_result(conn)
            .await?;
        Ok(Claim::Granted(Box::new(row)))
    }))?;
    drop(conn);
    let row = match outcome {
        Claim::Refused(reason) => return Err(ApiError::conflict(reason)),
        Claim::Granted(row) => row,
    };
    tracing::info!(request_id = id, attempt = row.attempts, %worker, "request claimed");
    let token = state.secret.repo_token(row.id, &row.token_salt);
    let started = row.started_at.unwrap_or(row.created);
    let job = Job {
        id: row.id,
        repo: row.repo.clone(),
        git_ref: row.git_ref.clone(),
        state: RequestState::InProgress,
        pkg_managers: row.pkg_managers.iter().map(PmName::new).collect(),
        packages: serde_json::from_value(row.packages.clone())
            .map_err(|e| ApiError::internal(e.to_string()))?,
        flags: row.flags.clone(),
        dependency_replacements: serde_json::from_value(row.dependency_replacements.clone())
            .map_err(|e| ApiError::internal(e.to_string()))?,
        repository_url: format!(
            "{}/repos/{}/t/{}/",
            config.public_url.trim_end_matches('/'),
            row.id,
            token
        ),
        repository_token: token,
        attempt: row.attempts,
        deadline: started + timeout,
        heartbeat_seconds: (config.heartbeat_timeout.as_secs() / 4).max(1),
    };
    Ok(HttpResponse::Ok().json(job))
}

/// Why a request may not run again, if it may not.
fn exhausted(
    row: &RequestRow,
    now: chrono::NaiveDateTime,
    timeout: chrono::Duration,
    max: i32,
    config: &common::Config,
) -> Option<Failure> {
    if row.started_at.is_some_and(|s| now - s >= timeout) {
        return Some(Failure::timed_out(config.request_timeout));
    }
    (row.attempts >= max).then(|| {
        Failure::new(
            ErrorKind::TooManyAttempts,
            format!(
                "The request was taken by a worker {} times without finishing: its worker stopped or stopped answering each time (LARDER_MAX_DELIVERIES)",
                row.attempts
            ),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    pub attempt: i32,
}

/// Worker-only: the attempt is alive. 204; 409 once it was superseded or the request is final
/// (the worker then stops working on it).
pub async fn heartbeat(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<HeartbeatBody>,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    let id = *id;
    let mut conn = state.pool.get().await?;
    crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        let row = lock(conn, id).await?;
        check_attempt(&row, body.attempt)?;
        let now = crate::db::now(conn).await?;
        diesel::update(requests::table.find(id))
            .set(requests::heartbeat_at.eq(now))
            .execute(conn)
            .await?;
        Ok(())
    }))?;
    Ok(HttpResponse::NoContent().finish())
}
