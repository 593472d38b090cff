//! `/ui/status`: the database and broker, the workers on the queue and the jobs waiting in it,
//! the requests in progress, and the latest failures. Each number is an index range of what it
//! counts (in progress, waiting to be dispatched) or the broker's own count; the API keeps no
//! total of the store's size by package manager, and this page does not scan the store for one.

use super::{html, shown_time, UiResult};
use crate::auth;
use crate::schema::requests;
use crate::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use common::RequestState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The failures the page lists.
pub const RECENT_FAILURES: i64 = 10;

pub struct Failure {
    pub id: i64,
    pub repo: String,
    pub state_reason: String,
    pub error: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub database_ok: bool,
    pub broker_ok: bool,
    pub queue: String,
    pub workers: u32,
    pub waiting_jobs: u32,
    pub in_progress: i64,
    pub undispatched: i64,
    pub pkg_managers: Vec<&'static str>,
    pub failures: Vec<Failure>,
    pub max_failures: i64,
}

pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> UiResult<HttpResponse> {
    auth::caller(&req)?;
    let counts = state.publisher.queue_counts().await;
    let mut conn = state.pool.get().await?;
    // the (state, id) index: as many entries as requests in progress
    let in_progress: i64 = requests::table
        .filter(requests::state.eq(RequestState::InProgress.as_str()))
        .count()
        .get_result(&mut conn)
        .await?;
    // the dispatcher's partial index, with the same predicate
    let undispatched: i64 = requests::table
        .filter(requests::dispatched_at.is_null())
        .filter(requests::state.eq(RequestState::InProgress.as_str()))
        .count()
        .get_result(&mut conn)
        .await?;
    #[allow(clippy::type_complexity)]
    let failed: Vec<(
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        chrono::NaiveDateTime,
    )> = requests::table
        .filter(requests::state.eq(RequestState::Failed.as_str()))
        .order(requests::id.desc())
        .limit(RECENT_FAILURES)
        .select((
            requests::id,
            requests::repo,
            requests::state_reason,
            requests::error_type,
            requests::error_origin,
            requests::updated,
        ))
        .load(&mut conn)
        .await?;
    drop(conn);
    let page = StatusPage {
        database_ok: state.database_health.is_ok(),
        broker_ok: counts.is_some(),
        queue: state.config.queue.clone(),
        workers: counts.map_or(0, |c| c.consumers),
        waiting_jobs: counts.map_or(0, |c| c.waiting_jobs),
        in_progress,
        undispatched,
        pkg_managers: state.catalogue.names().collect(),
        max_failures: RECENT_FAILURES,
        failures: failed
            .into_iter()
            .map(|(id, repo, state_reason, kind, origin, updated)| Failure {
                id,
                repo,
                state_reason,
                error: match (kind, origin) {
                    (Some(kind), Some(origin)) => format!("{kind} ({origin})"),
                    _ => String::new(),
                },
                updated: shown_time(&updated),
            })
            .collect(),
    };
    html(StatusCode::OK, &page)
}
