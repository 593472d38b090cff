//! Who is calling: tokens from `LARDER_API_TOKENS`, sent as `Authorization: Bearer <token>`.

use crate::error::ApiError;
use crate::AppState;
use actix_web::{web, HttpRequest};
use common::config::{Identity, Role};
use subtle::ConstantTimeEq;

pub const WORKERS_ONLY: &str = "This API endpoint is restricted to Cachito workers";

/// The caller, or `None` when authentication is off.
pub fn caller(req: &HttpRequest) -> Result<Option<Identity>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("app state is registered");
    let Some(identities) = &state.identities else {
        return Ok(None);
    };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    identities
        .iter()
        .find(|(token, _)| bool::from(token.as_bytes().ct_eq(presented.as_bytes())))
        .map(|(_, id)| Some(id.clone()))
        .ok_or_else(ApiError::unauthorized)
}

/// Submitting needs a user (or representative) token.
pub fn require_user(req: &HttpRequest) -> Result<Option<Identity>, ApiError> {
    let caller = caller(req)?;
    if let Some(id) = &caller {
        if id.role == Role::Worker {
            return Err(ApiError::forbidden("Workers cannot submit requests"));
        }
    }
    Ok(caller)
}

/// Worker endpoints need a worker token.
pub fn require_worker(req: &HttpRequest) -> Result<(), ApiError> {
    match caller(req)? {
        Some(id) if id.role != Role::Worker => Err(ApiError::forbidden(WORKERS_ONLY)),
        _ => Ok(()),
    }
}
