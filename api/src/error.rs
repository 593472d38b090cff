//! Errors answered with Cachito's `{"error": "..."}` body, and the `{"errors": {...}}` body of
//! its query models.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    /// Cachito answers every 404 with the same message.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: "The requested resource was not found".into(),
        }
    }
    pub fn unauthorized() -> Self {
        Self { status: StatusCode::UNAUTHORIZED, message: "Authentication is required: send a valid token as \"Authorization: Bearer <token>\", or a client certificate".into() }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::GONE,
            message: message.into(),
        }
    }
    /// The api is saturated or the database is unreachable: the client should retry (the
    /// response carries `Retry-After`). Nothing was recorded.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::warn!(%message, "answered 503");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        }
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("The request body is larger than the limit of {limit} bytes"),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((
                actix_web::http::header::RETRY_AFTER,
                RETRY_AFTER_SECONDS.to_string(),
            ));
        }
        response.json(serde_json::json!({ "error": self.message }))
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => Self::not_found(),
            e => Self::internal(format!("database error: {e}")),
        }
    }
}

/// Query parameters Cachito checks with a pydantic model (the request metrics summary's dates):
/// 400 `{"errors": {"<parameter>": "<message>"}}`, one entry per bad parameter.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid query parameters: {0:?}")]
pub struct FieldErrors(pub BTreeMap<&'static str, &'static str>);

impl ResponseError for FieldErrors {
    fn status_code(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::BadRequest().json(serde_json::json!({ "errors": self.0 }))
    }
}

/// What a 503 asks the client to wait before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        use deadpool::managed::PoolError;
        match e {
            PoolError::Timeout(deadpool::managed::TimeoutType::Wait) => Self::unavailable(
                "The service is busy: no database connection became free in time; retry later",
            ),
            PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::Closed => {
                Self::unavailable(format!("The database is unavailable: {e}; retry later"))
            }
            e => Self::internal(format!("database connection pool error: {e}")),
        }
    }
}

impl From<common::store::StoreError> for ApiError {
    fn from(e: common::store::StoreError) -> Self {
        Self::internal(e.to_string())
    }
}

/// The largest submission body (`POST /api/v1/requests`): a request is a few hundred bytes.
pub const SUBMISSION_BODY_LIMIT: usize = 256 << 10;
/// The largest body of a worker's update of a request (`PATCH`): state, reason, variables.
pub const WORKER_UPDATE_BODY_LIMIT: usize = 1 << 20;
/// The largest worker report (packages, artifacts, configuration files): a lockfile of 50,000
/// dependencies gives tens of MB.
pub const WORKER_REPORT_BODY_LIMIT: usize = 128 << 20;

/// JSON bodies of at most `limit` bytes (decompressed); malformed input is a 400 and an
/// oversized body a 413, in Cachito's shape.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    use actix_web::error::JsonPayloadError;
    actix_web::web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _| match err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::payload_too_large(limit).into()
            }
            err => {
                ApiError::bad_request(format!("The request body is not valid JSON: {err}")).into()
            }
        })
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|_, _| ApiError::not_found().into())
}
