//! `/api/v1/requests`: create, list, show, latest, and the worker's updates.

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::json_stream;
use crate::models::{render_request, Hidden, RenderedRequest, RequestRow, StateRow};
use crate::publisher;
use crate::schema::{request_pkg_managers, request_states, requests};
use crate::v1::filters::WindowAndError;
use crate::v1::pagination::{PageMeta, Pagination};
use crate::v1::validation::{check_text, has_control, validate_new_request};
use crate::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use common::commit::CommitId;
use common::{text, EnvVar, ErrorOrigin, PackagesData, RequestState};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const INITIATED: &str = "The request was initiated";

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let caller = auth::require_user(&req)?;
    let new = validate_new_request(&body, state.config.allow_local_repos, &state.catalogue)?;
    let (owner, submitted_by) = match (&new.user, &caller) {
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "Cannot set \"user\" when authentication is disabled",
            ))
        }
        (Some(user), Some(id)) => {
            if id.role != common::config::Role::Representative {
                return Err(ApiError::forbidden(
                    "You are not authorized to create a request on behalf of another user",
                ));
            }
            (Some(user.clone()), Some(id.user.clone()))
        }
        (None, caller) => (caller.as_ref().map(|c| c.user.clone()), None),
    };
    let now = crate::db::clock();
    let pkg_managers: Vec<String> = new.pkg_managers.iter().map(|p| p.to_string()).collect();
    let mut conn = state.pool.get().await?;
    let (row, first_state): (RequestRow, StateRow) = crate::on!(&mut conn, c => crate::transaction!(c, diesel::result::Error, async |conn| {
        let row: RequestRow = diesel::insert_into(requests::table)
            .values((
                requests::repo.eq(&new.repo),
                requests::git_ref.eq(new.git_ref.as_str()),
                requests::pkg_managers.eq(crate::sql_types::Strings(&pkg_managers)),
                requests::packages
                    .eq(serde_json::to_value(&new.packages).expect("serializable")),
                requests::flags.eq(crate::sql_types::Strings(&new.flags)),
                requests::dependency_replacements
                    .eq(serde_json::to_value(&new.dependency_replacements)
                        .expect("serializable")),
                requests::user_name.eq(&owner),
                requests::submitted_by.eq(&submitted_by),
                requests::created.eq(now),
                requests::state.eq(RequestState::InProgress.as_str()),
                requests::state_reason.eq(INITIATED),
                requests::updated.eq(now),
                requests::token_salt.eq(common::token::new_salt()),
            ))
            .returning(RequestRow::as_returning())
            .get_result(conn)
            .await?;
        let first_state: StateRow = diesel::insert_into(request_states::table)
            .values((
                request_states::request_id.eq(row.id),
                request_states::state.eq(RequestState::InProgress.as_str()),
                request_states::state_reason.eq(INITIATED),
                request_states::updated.eq(now),
            ))
            .returning(StateRow::as_returning())
            .get_result(conn)
            .await?;
        Ok((row, first_state))
    }))?;
    drop(conn);
    tracing::info!(request_id = row.id, repo = %row.repo, git_ref = %row.git_ref, "request created");
    // A failed publish loses nothing: the dispatcher sends the job once the broker is back.
    if let Err(e) = publisher::dispatch(&state.pool, &state.publisher, row.id).await {
        tracing::warn!(request_id = row.id, error = %e, "could not publish the job now; the dispatcher will retry");
    }
    // The request as created: a worker may already have moved it on, but the body agrees with
    // itself (its state is its newest history entry).
    Ok(HttpResponse::Created().json(render_request(
        &row,
        true,
        Some(&[first_state]),
        None,
        &state.config.public_url,
        None,
    )))
}

pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let caller = auth::caller(&req)?;
    let mut conn = state.pool.get().await?;
    let row = find(&mut conn, *id).await?;
    let data = shown_packages_data(&mut conn, &row).await?;
    let history = load_history(&mut conn, row.id).await?;
    let token = hidden_token(&state, &caller, &row);
    let rendered = render_request(
        &row,
        true,
        Some(&history),
        data,
        &state.config.public_url,
        token.as_deref().map(Hidden),
    );
    // a status poll is a few hundred bytes: streamed only when it carries the contents
    Ok(if rendered.has_contents() {
        json_stream::streamed(HttpResponse::Ok(), rendered)
    } else {
        HttpResponse::Ok().json(rendered)
    })
}

/// The request's row, locked until the transaction ends (PostgreSQL's `FOR UPDATE`; SQLite's
/// one connection serializes every transaction, so its row is read as it is).
pub async fn lock(conn: &mut impl crate::db::AsDb, id: i64) -> ApiResult<RequestRow> {
    let query = requests::table.find(id);
    Ok(match conn.as_db() {
        crate::db::Db::Postgres(c) => {
            query
                .select(RequestRow::as_select())
                .for_update()
                .first(c)
                .await?
        }
        crate::db::Db::Sqlite(c) => query.select(RequestRow::as_select()).first(c).await?,
    })
}

/// The request (its dependencies, megabytes for a large lockfile, are loaded apart: see
/// [`packages_data`]).
pub async fn find(conn: &mut impl crate::db::AsDb, id: i64) -> ApiResult<RequestRow> {
    Ok(crate::on!(conn, c => requests::table
        .find(id)
        .select(RequestRow::as_select())
        .first(c)
        .await)?)
}

/// Every package and dependency the worker reported, read as text (a `serde_json::Value` of
/// them costs several times their size).
pub async fn packages_data(
    conn: &mut impl crate::db::AsDb,
    id: i64,
) -> ApiResult<Option<PackagesData>> {
    let text: Option<String> = crate::on!(conn, c => requests::table
        .find(id)
        .select(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Text>,
        >(crate::sql!(postgres: "packages_data::text", sqlite: "json(packages_data)")))
        .first(c)
        .await)?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| ApiError::internal(format!("corrupt packages data of request {id}: {e}")))
}

/// The packages data a request shows: only while it is complete (as Cachito).
pub async fn shown_packages_data(
    conn: &mut impl crate::db::AsDb,
    row: &RequestRow,
) -> ApiResult<Option<PackagesData>> {
    if row.state != RequestState::Complete.as_str() {
        return Ok(None);
    }
    packages_data(conn, row.id).await
}

pub(crate) async fn load_history(
    conn: &mut impl crate::db::AsDb,
    id: i64,
) -> ApiResult<Vec<StateRow>> {
    Ok(crate::on!(conn, c => request_states::table
        .filter(request_states::request_id.eq(id))
        .order(request_states::id.desc())
        .select(StateRow::as_select())
        .load(c)
        .await)?)
}

/// Filters of the list endpoint, validated.
pub(crate) struct ListQuery {
    pub(crate) pagination: Pagination,
    pub(crate) verbose: bool,
    pub(crate) state: Option<RequestState>,
    pub(crate) repo: Option<String>,
    pub(crate) git_ref: Option<String>,
    pub(crate) pkg_managers: Vec<String>,
    pub(crate) created_and_error: WindowAndError,
}

impl ListQuery {
    pub(crate) fn parse(
        pairs: &[(String, String)],
        catalogue: &common::Catalogue,
    ) -> ApiResult<Self> {
        let mut q = ListQuery {
            pagination: Pagination::default(),
            verbose: false,
            state: None,
            repo: None,
            git_ref: None,
            pkg_managers: Vec::new(),
            created_and_error: WindowAndError::new("created_from", "created_to"),
        };
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            if q.pagination.accept(k, v)? || q.created_and_error.accept(k, v)? {
                continue;
            }
            match k.as_str() {
                "verbose" => {
                    q.verbose = match v.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(ApiError::bad_request("The \"verbose\" parameter must be true or false")),
                    }
                }
                "state" => {
                    q.state = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("{v} is not a valid request state. Valid states are: complete, failed, in_progress, stale"))
                    })?)
                }
                "repo" => {
                    check_text("repo", v)?;
                    if v.len() >= 200 {
                        return Err(ApiError::bad_request("The \"repo\" parameter must be shorter than 200 characters"));
                    }
                    q.repo = Some(v.clone());
                }
                "ref" => {
                    if CommitId::parse(v).is_err() {
                        return Err(ApiError::bad_request("The \"ref\" parameter must be a 40 character hex string"));
                    }
                    q.git_ref = Some(v.clone());
                }
                "pkg_manager" => {
                    if v.is_empty() {
                        continue;
                    }
                    if !catalogue.known(v) {
                        return Err(ApiError::bad_request(format!("Cachito does not have package manager {v}.")));
                    }
                    if !q.pkg_managers.contains(v) {
                        q.pkg_managers.push(v.clone());
                    }
                }
                other => invalid.push(other.to_string()),
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::bad_request(format!(
                "The following query parameters are invalid: {}",
                invalid.join(", ")
            )));
        }
        Ok(q)
    }

    /// The requests these filters select, for either backend: use it inside an `on!` body,
    /// where the backend is inferred from the connection (`q.filtered().count().get_result(c)`);
    /// outside one, name it (`q.filtered::<diesel::pg::Pg>()`).
    pub(crate) fn filtered<'a, DB: ListBackend>(&self) -> requests::BoxedQuery<'a, DB> {
        DB::filtered(self)
    }

    /// A link to `page` that keeps every filter.
    fn link(&self, public_url: &str, page: i64) -> String {
        let mut filters: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = self.state {
            filters.push(("state", s.as_str()));
        }
        if let Some(r) = &self.repo {
            filters.push(("repo", r));
        }
        if let Some(r) = &self.git_ref {
            filters.push(("ref", r));
        }
        for pm in &self.pkg_managers {
            filters.push(("pkg_manager", pm));
        }
        filters.extend(self.created_and_error.link_pairs());
        filters.push(("verbose", if self.verbose { "true" } else { "false" }));
        self.pagination
            .link(public_url, "/api/v1/requests", page, &filters)
    }
}

/// A backend the list's filters are built for ([`ListQuery::filtered`]): PostgreSQL and
/// SQLite, the same query built for each.
pub(crate) trait ListBackend: diesel::backend::Backend + Sized {
    fn filtered<'a>(q: &ListQuery) -> requests::BoxedQuery<'a, Self>;
}

macro_rules! list_backend {
    ($db:ty) => {
        impl ListBackend for $db {
            fn filtered<'a>(q: &ListQuery) -> requests::BoxedQuery<'a, Self> {
                let mut query = requests::table.into_boxed();
                if let Some(s) = q.state {
                    query = query.filter(requests::state.eq(s.as_str()));
                }
                if let Some(repo) = &q.repo {
                    query = query.filter(requests::repo.eq(repo.clone()));
                }
                if let Some(r) = &q.git_ref {
                    query = query.filter(requests::git_ref.eq(r.clone()));
                }
                for pm in &q.pkg_managers {
                    // through the index of migration 2026-12-13, not `pkg_managers @>`: see there
                    query = query.filter(
                        requests::id.eq_any(
                            request_pkg_managers::table
                                .filter(request_pkg_managers::pkg_manager.eq(pm.clone()))
                                .select(request_pkg_managers::request_id),
                        ),
                    );
                }
                let window = &q.created_and_error;
                if let Some(from) = &window.from {
                    query = query.filter(requests::created.ge(from.at));
                }
                if let Some(to) = &window.to {
                    query = query.filter(requests::created.le(to.at));
                }
                if let Some(origin) = window.error_origin {
                    query = query.filter(requests::error_origin.eq(origin.as_str()));
                }
                if let Some(error_type) = &window.error_type {
                    query = query.filter(requests::error_type.eq(error_type.clone()));
                }
                query
            }
        }
    };
}

list_backend!(diesel::pg::Pg);
list_backend!(diesel::sqlite::Sqlite);

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let q = ListQuery::parse(&query, &state.catalogue)?;
    let caller = auth::caller(&req)?;
    let offset = q.pagination.offset()?;
    let mut conn = state.pool.get().await?;
    let total: i64 = crate::on!(&mut conn, c => q.filtered().count().get_result(c).await)?;
    let rows: Vec<RequestRow> = crate::on!(&mut conn, c => q
        .filtered()
        .order(requests::id.desc())
        .offset(offset)
        .limit(q.pagination.per_page)
        .select(RequestRow::as_select())
        .load(c)
        .await)?;
    q.pagination.check_exists(rows.len())?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let (history, data) = if q.verbose {
            (
                Some(load_history(&mut conn, row.id).await?),
                shown_packages_data(&mut conn, row).await?,
            )
        } else {
            (None, None)
        };
        let token = hidden_token(&state, &caller, row);
        items.push(render_request(
            row,
            q.verbose,
            history.as_deref(),
            data,
            &state.config.public_url,
            token.as_deref().map(Hidden),
        ));
    }
    let meta = q
        .pagination
        .meta(total, |page| q.link(&state.config.public_url, page));
    #[derive(serde::Serialize)]
    struct Page {
        items: Vec<RenderedRequest>,
        meta: PageMeta,
    }
    Ok(json_stream::streamed(
        HttpResponse::Ok(),
        Page { items, meta },
    ))
}

pub async fn latest(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let mut repo_name = None;
    let mut git_ref = None;
    for (k, v) in query.iter() {
        match k.as_str() {
            "repo_name" => repo_name = Some(v.clone()),
            "ref" => git_ref = Some(v.clone()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "The following query parameters are invalid: {other}"
                )))
            }
        }
    }
    let (Some(repo_name), Some(git_ref)) = (repo_name, git_ref) else {
        return Err(ApiError::bad_request(
            "The \"repo_name\" and \"ref\" query parameters are required",
        ));
    };
    check_text("repo_name", &repo_name)?;
    let name_ok = (3..=200).contains(&repo_name.len())
        && repo_name.contains('/')
        && !repo_name.contains("://");
    if !name_ok {
        return Err(ApiError::bad_request(
            "The \"repo_name\" parameter must be a repository path like namespace/name",
        ));
    }
    if CommitId::parse(&git_ref).is_err() {
        return Err(ApiError::bad_request(
            "The \"ref\" parameter must be a 40 character hex string",
        ));
    }
    let mut conn = state.pool.get().await?;
    let rows: Vec<RequestRow> = crate::on!(&mut conn, c => requests::table
        .filter(requests::git_ref.eq(&git_ref))
        // another instance's record has no bundle here
        .filter(requests::imported_instance.is_null())
        .filter(
            requests::repo
                .like(format!("%{repo_name}"))
                .or(requests::repo.like(format!("%{repo_name}.git"))),
        )
        .order(requests::id.desc())
        .select(RequestRow::as_select())
        .load(c)
        .await)?;
    let found = rows.iter().find(|row| {
        common::purl::host_and_path(&row.repo)
            .map(|(_, path)| path)
            .or_else(|| Some(row.repo.clone()))
            .is_some_and(|path| {
                path.trim_matches('/')
                    .trim_end_matches(".git")
                    .trim_matches('/')
                    == repo_name.trim_matches('/')
            })
    });
    let row = found.ok_or_else(ApiError::not_found)?;
    let token = hidden_token(&state, &auth::caller(&req)?, row);
    Ok(HttpResponse::Ok().json(render_request(
        row,
        false,
        None,
        None,
        &state.config.public_url,
        token.as_deref().map(Hidden),
    )))
}

/// The request's repository token when the caller may not see it.
pub(crate) fn hidden_token(
    state: &AppState,
    caller: &auth::Caller,
    row: &RequestRow,
) -> Option<String> {
    let visible = auth::may_see_secrets(
        caller,
        row.submitted_by.as_deref(),
        row.user_name.as_deref(),
    );
    (!visible).then(|| state.secret.repo_token(row.id, &row.token_salt))
}

const PATCH_KEYS: &[&str] = &[
    "bundle_sha256",
    "dependencies_count",
    "environment_variables",
    "error_origin",
    "error_type",
    "packages_count",
    "state",
    "state_reason",
];

/// The worker's (and cleanup's) update of a request.
pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    auth::require_worker(&req)?;
    let id = *id;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The input data must be a JSON object"))?;
    if obj.is_empty() {
        return Err(ApiError::bad_request(
            "At least one key must be specified to update the request",
        ));
    }
    let invalid: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !PATCH_KEYS.contains(k))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "The following keys are not allowed: {}",
            invalid.join(", ")
        )));
    }
    let update = PatchBody::parse(obj)?;
    let attempt = crate::v1::leases::attempt_header(&req)?;
    let mut conn = state.pool.get().await?;
    let progress_only = update.is_progress_only();
    let new_state = crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| {
        // (PostgreSQL only: SQLite's commits all wait for the disk)
        if progress_only && !SQLITE {
            // a progress note may be lost with the last moments before a crash (the next
            // one, or the request's end, says more); waiting for the disk on each is a
            // WAL flush per note, most of a warm request's time in PostgreSQL
            diesel::sql_query("SET LOCAL synchronous_commit TO OFF")
                .execute(conn)
                .await?;
        }
        let bundle = update.bundle_sha256.clone();
        let new_state = apply_patch(conn, id, update, attempt).await?;
        if let Some(sha256_hex) = bundle {
            crate::bundles::name(conn, state.objects.as_ref(), id, &sha256_hex).await?;
        }
        Ok(new_state)
    }))?;
    // released first: the release of the bundle takes a pooled connection (SQLite's pool has
    // one)
    drop(conn);
    if new_state == Some(RequestState::Stale) {
        remove_stale_files(&state.pool, &state.shared, &state.store, id).await;
    }
    Ok(HttpResponse::Ok().finish())
}

/// A stale request keeps its row and history; its bundle and the log file of an earlier
/// version go (its log in the database went with the transition). Sources and dependencies
/// stay: they are permanent.
pub async fn remove_stale_files(
    pool: &crate::db::DbPool,
    shared: &common::store::SharedStore,
    directory: &common::Store,
    id: i64,
) {
    if let Err(e) = crate::bundles::release(pool, shared, id).await {
        tracing::warn!(request_id = id, error = %e.message, "could not release a stale request's bundle");
    }
    if let Err(e) = directory.remove(&common::store::log_key(id)) {
        tracing::warn!(request_id = id, error = %e, "could not delete a stale request's log file");
    }
}

pub const EXPIRED: &str = "The request has expired";

/// Mark one request stale (the cleanup job); `false` when it already was (another cleanup made
/// it stale first).
pub async fn expire(
    pool: &crate::db::DbPool,
    shared: &common::store::SharedStore,
    directory: &common::Store,
    id: i64,
) -> ApiResult<bool> {
    let mut conn = pool.get().await?;
    let update = PatchBody::state(RequestState::Stale, EXPIRED.to_string(), None);
    let changed = crate::on!(&mut conn, c => crate::transaction!(c, ApiError, async |conn| apply_patch(conn, id, update, None).await))?;
    let expired = changed == Some(RequestState::Stale);
    drop(conn);
    if expired {
        remove_stale_files(pool, shared, directory, id).await;
    }
    Ok(expired)
}

/// Bounds of what a worker reports (reasons: `common::text::MAX_REASON_BYTES`).
const MAX_ERROR_TYPE_BYTES: usize = 256;
const MAX_ENV_NAME_BYTES: usize = 256;
const MAX_ENV_VALUE_BYTES: usize = 64 * 1024;

pub(crate) struct PatchBody {
    pub state: Option<(RequestState, String)>,
    pub env: BTreeMap<String, EnvVar>,
    pub packages_count: Option<i32>,
    pub dependencies_count: Option<i32>,
    pub error: Option<(ErrorOrigin, String)>,
    /// The worker's bundle (sha256 hex), named with its completion.
    pub bundle_sha256: Option<String>,
}

impl PatchBody {
    /// The request failed (the api's own verdict: a deadline, too many attempts).
    pub fn failed(failure: common::Failure) -> Self {
        let error = Some((failure.origin(), failure.error_type().to_string()));
        Self::state(RequestState::Failed, failure.message, error)
    }

    /// Only a new state (and, for `failed`, its error).
    pub fn state(
        state: RequestState,
        reason: String,
        error: Option<(ErrorOrigin, String)>,
    ) -> Self {
        Self {
            state: Some((state, reason)),
            env: BTreeMap::new(),
            packages_count: None,
            dependencies_count: None,
            error,
            bundle_sha256: None,
        }
    }

    /// Only a note that the request is still in progress.
    fn is_progress_only(&self) -> bool {
        matches!(self.state, Some((RequestState::InProgress, _)))
            && self.env.is_empty()
            && self.packages_count.is_none()
            && self.dependencies_count.is_none()
            && self.error.is_none()
            && self.bundle_sha256.is_none()
    }

    fn parse(obj: &Map<String, Value>) -> ApiResult<Self> {
        let state = match (obj.get("state"), obj.get("state_reason")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ApiError::bad_request(
                    "The \"state_reason\" key is required when \"state\" is supplied",
                ))
            }
            (None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "The \"state\" key is required when \"state_reason\" is supplied",
                ))
            }
            (Some(s), Some(r)) => {
                let s = s
                    .as_str()
                    .ok_or_else(|| ApiError::bad_request("The \"state\" key must be a string"))?;
                let r = r.as_str().ok_or_else(|| {
                    ApiError::bad_request("The \"state_reason\" key must be a string")
                })?;
                let st: RequestState = s.parse().map_err(|_| {
                    ApiError::bad_request(format!("The state \"{s}\" is invalid. It must be one of: complete, failed, in_progress, stale"))
                })?;
                // the worker cleans its reasons too, but the api does not count on it
                Some((st, text::clean(r, text::MAX_REASON_BYTES)))
            }
        };
        let mut env = BTreeMap::new();
        if let Some(v) = obj.get("environment_variables") {
            let vars = v.as_object().ok_or_else(|| {
                ApiError::bad_request("The value for \"environment_variables\" must be an object")
            })?;
            for (name, info) in vars {
                let info: EnvVar = serde_json::from_value(info.clone()).map_err(|_| {
                    ApiError::bad_request(format!("The following keys must be set in the info of the environment variable {name}: kind, value"))
                })?;
                if info.kind != "path" && info.kind != "literal" {
                    return Err(ApiError::bad_request(format!(
                        "The environment variable kind, {}, is not supported",
                        info.kind
                    )));
                }
                if name.is_empty() || name.len() > MAX_ENV_NAME_BYTES || has_control(name) {
                    return Err(ApiError::bad_request(format!(
                        "The environment variable name {name:?} is invalid"
                    )));
                }
                let info = EnvVar {
                    value: text::clean(&info.value, MAX_ENV_VALUE_BYTES),
                    kind: info.kind,
                };
                env.insert(name.clone(), info);
            }
        }
        let count = |key: &str| -> ApiResult<Option<i32>> {
            match obj.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .filter(|n| (0..=i32::MAX as i64).contains(n))
                    .map(|n| Some(n as i32))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "The value for \"{key}\" must be a non-negative integer"
                        ))
                    }),
            }
        };
        let error = match (obj.get("error_origin"), obj.get("error_type")) {
            (Some(o), Some(t)) => {
                let origin = match o.as_str() {
                    Some("client") => ErrorOrigin::Client,
                    Some("server") => ErrorOrigin::Server,
                    _ => {
                        return Err(ApiError::bad_request(
                            "The \"error_origin\" key must be client or server",
                        ))
                    }
                };
                let t = t.as_str().ok_or_else(|| {
                    ApiError::bad_request("The \"error_type\" key must be a string")
                })?;
                Some((origin, text::clean(t, MAX_ERROR_TYPE_BYTES)))
            }
            (None, None) => None,
            _ => {
                return Err(ApiError::bad_request(
                    "The \"error_origin\" and \"error_type\" keys must be supplied together",
                ))
            }
        };
        let bundle_sha256 = match obj.get("bundle_sha256") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|s| crate::bundles::is_sha256_hex(s))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "The value for \"bundle_sha256\" must be 64 lowercase hexadecimal digits",
                        )
                    })?
                    .to_string(),
            ),
        };
        Ok(Self {
            state,
            env,
            packages_count: count("packages_count")?,
            dependencies_count: count("dependencies_count")?,
            error,
            bundle_sha256,
        })
    }
}

/// Apply an update under the request's row lock. `attempt` is the worker's claim
/// (`X-Larder-Attempt`): a superseded attempt changes nothing, a current one renews its lease.
pub(crate) async fn apply_patch(
    conn: &mut impl crate::db::AsDb,
    id: i64,
    update: PatchBody,
    attempt: Option<i32>,
) -> ApiResult<Option<RequestState>> {
    let row = lock(conn, id).await?;
    let current: RequestState = row
        .state
        .parse()
        .map_err(|_| ApiError::internal("corrupt request state"))?;
    let now = crate::db::now(conn).await?;
    if let Some(attempt) = attempt {
        crate::v1::leases::check_attempt(&row, attempt)?;
        crate::on!(conn, c => diesel::update(requests::table.find(id))
            .set(requests::heartbeat_at.eq(now))
            .execute(c)
            .await)?;
    }
    let mut new_state = None;
    if let Some((next, reason)) = &update.state {
        let same = current == *next && row.state_reason == *reason;
        if !same {
            if !current.can_become(*next) {
                return Err(ApiError::bad_request(format!(
                    "State transition is not allowed from {current} to {next}."
                )));
            }
            crate::on!(conn, c => diesel::insert_into(request_states::table)
                .values((
                    request_states::request_id.eq(id),
                    request_states::state.eq(next.as_str()),
                    request_states::state_reason.eq(reason),
                    request_states::updated.eq(now),
                ))
                .execute(c)
                .await)?;
            crate::on!(conn, c => diesel::update(requests::table.find(id))
                .set((
                    requests::state.eq(next.as_str()),
                    requests::state_reason.eq(reason),
                    requests::updated.eq(now),
                ))
                .execute(c)
                .await)?;
            new_state = Some(*next);
            if *next == RequestState::Stale {
                crate::v1::logs::remove(conn, id).await?;
            }
        }
        if *next == RequestState::Failed {
            if let Some((origin, kind)) = &update.error {
                crate::on!(conn, c => diesel::update(requests::table.find(id))
                    .set((
                        requests::error_origin.eq(origin.as_str()),
                        requests::error_type.eq(kind),
                    ))
                    .execute(c)
                    .await)?;
            }
        }
    }
    if !update.env.is_empty() {
        let mut env: BTreeMap<String, EnvVar> =
            serde_json::from_value(row.environment_variables.clone()).unwrap_or_default();
        env.extend(update.env);
        crate::on!(conn, c => diesel::update(requests::table.find(id))
            .set(
                requests::environment_variables
                    .eq(serde_json::to_value(env).expect("serializable")),
            )
            .execute(c)
            .await)?;
    }
    if let Some(n) = update.packages_count {
        crate::on!(conn, c => diesel::update(requests::table.find(id))
            .set(requests::packages_count.eq(n))
            .execute(c)
            .await)?;
    }
    if let Some(n) = update.dependencies_count {
        crate::on!(conn, c => diesel::update(requests::table.find(id))
            .set(requests::dependencies_count.eq(n))
            .execute(c)
            .await)?;
    }
    Ok(new_state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list's filters on the embedded SQLite database: by state and by package manager
    /// (through the rows its trigger keeps).
    #[tokio::test(flavor = "multi_thread")]
    async fn list_filters_on_sqlite() {
        let lite = crate::test_db::TestSqlite::new().await;
        let mut conn = lite.pool.get().await.unwrap();
        let now = chrono::Utc::now().naive_utc();
        for pms in [vec!["npm".to_string()], vec!["npm".into(), "pip".into()]] {
            crate::on!(&mut conn, c => {
                diesel::insert_into(requests::table)
                    .values((
                        requests::repo.eq("https://example.com/r.git"),
                        requests::git_ref.eq("0123456789abcdef0123456789abcdef01234567"),
                        requests::pkg_managers.eq(crate::sql_types::Strings(&pms)),
                        requests::packages.eq(serde_json::json!({})),
                        requests::flags.eq(crate::sql_types::Strings(&[])),
                        requests::dependency_replacements.eq(serde_json::json!([])),
                        requests::created.eq(now),
                        requests::state.eq("in_progress"),
                        requests::state_reason.eq(INITIATED),
                        requests::updated.eq(now),
                        requests::token_salt.eq("salt"),
                    ))
                    .execute(c)
                    .await
            })
            .unwrap();
        }
        let query = |state: Option<RequestState>, pms: &[&str]| ListQuery {
            pagination: Pagination::default(),
            verbose: false,
            state,
            repo: None,
            git_ref: None,
            pkg_managers: pms.iter().map(|p| p.to_string()).collect(),
            created_and_error: WindowAndError::new("created_from", "created_to"),
        };
        for (q, want) in [
            (query(None, &[]), 2),
            (query(None, &["npm"]), 2),
            (query(None, &["npm", "pip"]), 1),
            (query(None, &["gomod"]), 0),
            (query(Some(RequestState::InProgress), &["pip"]), 1),
            (query(Some(RequestState::Complete), &[]), 0),
        ] {
            let total: i64 =
                crate::on!(&mut conn, c => q.filtered().count().get_result(c).await).unwrap();
            assert_eq!(total, want, "{:?} {:?}", q.state, q.pkg_managers);
        }
    }
}
