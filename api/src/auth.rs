//! Who is calling, and what they may do. A caller is known by, in this order: a bearer token
//! of `LARDER_API_TOKENS`; a client certificate verified against `LARDER_TLS_CLIENT_CA` (its
//! subject DN); the user a trusted reverse proxy names in `LARDER_REMOTE_USER_HEADER`.
//! `LARDER_REPRESENTATIVES` and `LARDER_WORKER_USERS` give any of them a role.

use crate::error::ApiError;
use crate::tls::ClientDn;
use crate::AppState;
use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest};
use common::config::{user_list, Identity, Networks, Role, TokenListError};
use common::Config;
use std::collections::{BTreeMap, BTreeSet};
use subtle::ConstantTimeEq;

pub const WORKERS_ONLY: &str = "This API endpoint is restricted to Cachito workers";

/// How callers are known; absent when authentication is off.
pub struct Authentication {
    tokens: BTreeMap<String, Identity>,
    representatives: BTreeSet<String>,
    workers: BTreeSet<String>,
    trusted_proxies: Option<Networks>,
    remote_user_header: HeaderName,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Tokens(#[from] TokenListError),
    #[error("LARDER_REMOTE_USER_HEADER {0:?} is not a header name")]
    Header(String),
}

impl Authentication {
    /// `None` unless tokens, client certificates or a trusted proxy can name a caller.
    pub fn from_config(config: &Config) -> Result<Option<Self>, AuthSetupError> {
        if !config.authentication_on() {
            return Ok(None);
        }
        let tokens = config.identities()?;
        let remote_user_header = HeaderName::try_from(config.remote_user_header.as_str())
            .map_err(|_| AuthSetupError::Header(config.remote_user_header.clone()))?;
        Ok(Some(Self {
            tokens: tokens.unwrap_or_default(),
            representatives: user_list(config.representatives.as_deref()),
            workers: user_list(config.worker_users.as_deref()),
            trusted_proxies: config.trusted_proxies.clone(),
            remote_user_header,
        }))
    }

    /// `role` unless the user is named in `LARDER_WORKER_USERS` or `LARDER_REPRESENTATIVES`.
    fn identity(&self, user: String, role: Role) -> Identity {
        let role = if self.workers.contains(&user) {
            Role::Worker
        } else if self.representatives.contains(&user) {
            Role::Representative
        } else {
            role
        };
        Identity { user, role }
    }

    fn caller(&self, req: &HttpRequest) -> Result<Option<Identity>, ApiError> {
        // another scheme (a proxy passing on `Negotiate`) is not ours to judge
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .filter(|v| v.len() >= 7 && v[..7].eq_ignore_ascii_case(b"bearer "));
        if let Some(presented) = bearer {
            let token = std::str::from_utf8(&presented[7..])
                .map(str::trim)
                .map_err(|_| ApiError::unauthorized())?;
            // every token compared, in constant time
            let found = self.tokens.iter().fold(None, |found, (known, id)| {
                if bool::from(known.as_bytes().ct_eq(token.as_bytes())) {
                    Some(id)
                } else {
                    found
                }
            });
            let id = found.ok_or_else(ApiError::unauthorized)?;
            return Ok(Some(self.identity(id.user.clone(), id.role)));
        }
        if let Some(ClientDn(dn)) = req.conn_data::<ClientDn>() {
            return Ok(Some(self.identity(dn.clone(), Role::User)));
        }
        let from_proxy = self.trusted_proxies.as_ref().is_some_and(|proxies| {
            req.peer_addr()
                .is_some_and(|peer| proxies.contains(peer.ip()))
        });
        if from_proxy {
            if let Some(user) = req
                .headers()
                .get(&self.remote_user_header)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|u| !u.is_empty())
            {
                return Ok(Some(self.identity(user.to_string(), Role::User)));
            }
        }
        Ok(None)
    }
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off: anyone may do anything.
    Anyone,
    Anonymous,
    Known(Identity),
}

pub fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("app state is registered");
    let Some(auth) = &state.auth else {
        return Ok(Caller::Anyone);
    };
    Ok(match auth.caller(req)? {
        Some(id) => Caller::Known(id),
        None => Caller::Anonymous,
    })
}

/// Submitting needs a known user (or representative); `None` when authentication is off.
pub fn require_user(req: &HttpRequest) -> Result<Option<Identity>, ApiError> {
    match caller(req)? {
        Caller::Anyone => Ok(None),
        Caller::Anonymous => Err(ApiError::unauthorized()),
        Caller::Known(id) if id.role == Role::Worker => {
            Err(ApiError::forbidden("Workers cannot submit requests"))
        }
        Caller::Known(id) => Ok(Some(id)),
    }
}

/// Worker endpoints need a worker.
pub fn require_worker(req: &HttpRequest) -> Result<(), ApiError> {
    match caller(req)? {
        Caller::Anyone => Ok(()),
        Caller::Anonymous => Err(ApiError::unauthorized()),
        Caller::Known(id) if id.role == Role::Worker => Ok(()),
        Caller::Known(_) => Err(ApiError::forbidden(WORKERS_ONLY)),
    }
}

/// Whether the caller may see what holds a request's repository token: its submitter, the
/// user it acted for, a representative or a worker.
pub fn may_see_secrets(caller: &Caller, submitted_by: Option<&str>, user: Option<&str>) -> bool {
    match caller {
        Caller::Anyone => true,
        Caller::Anonymous => false,
        Caller::Known(id) => {
            matches!(id.role, Role::Worker | Role::Representative)
                || [submitted_by, user].contains(&Some(id.user.as_str()))
        }
    }
}

/// Reading environment variables or configuration files: 401 for an anonymous caller, 403 for
/// one who is none of [`may_see_secrets`]'s.
pub fn require_secret_reader(
    req: &HttpRequest,
    submitted_by: Option<&str>,
    user: Option<&str>,
) -> Result<(), ApiError> {
    let caller = caller(req)?;
    if may_see_secrets(&caller, submitted_by, user) {
        return Ok(());
    }
    Err(match caller {
        Caller::Anonymous => ApiError::unauthorized(),
        _ => ApiError::forbidden(
            "Only the request's submitter, its user, a representative or a worker may read this",
        ),
    })
}
