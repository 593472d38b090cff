//! `/ui/status`: the database and broker, the workers on the queue and the jobs waiting in it,
//! the requests in progress, and the latest failures. Each number is an index range of what it
//! counts (in progress, waiting to be dispatched) or the broker's own count. The store's size by
//! package manager is the last measurement of `store_usage` (the page never waits for one).

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

/// One area of the store as shown.
pub struct Area {
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    pub shown: String,
}

/// The store's usage as shown: the last measurement, or why there is none.
pub struct Usage {
    pub areas: Vec<Area>,
    pub total: Area,
    pub at: String,
    pub took_ms: u128,
}

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
    /// Which database.
    pub database: &'static str,
    pub broker_ok: bool,
    pub queue: String,
    pub workers: u32,
    pub waiting_jobs: u32,
    pub in_progress: i64,
    pub undispatched: i64,
    pub pkg_managers: Vec<&'static str>,
    pub failures: Vec<Failure>,
    pub max_failures: i64,
    pub usage: Option<Usage>,
    pub usage_error: Option<String>,
}

/// `bytes` in binary units, to three significant figures or so.
pub fn shown_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} bytes"),
        _ if value < 10.0 => format!("{value:.2} {}", UNITS[unit]),
        _ if value < 100.0 => format!("{value:.1} {}", UNITS[unit]),
        _ => format!("{value:.0} {}", UNITS[unit]),
    }
}

fn area(name: String, usage: &crate::store_usage::AreaUsage) -> Area {
    Area {
        name,
        files: usage.files,
        bytes: usage.bytes,
        shown: shown_bytes(usage.bytes),
    }
}

pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> UiResult<HttpResponse> {
    auth::caller(&req)?;
    let counts = state.publisher.queue_counts().await;
    let mut conn = state.pool.get().await?;
    // the (state, id) index: as many entries as requests in progress
    let in_progress: i64 = crate::on!(&mut conn, c => {
        requests::table
            .filter(requests::state.eq(RequestState::InProgress.as_str()))
            .count()
            .get_result(c)
            .await
    })?;
    // the dispatcher's partial index, with the same predicate
    let undispatched: i64 = crate::on!(&mut conn, c => {
        requests::table
            .filter(requests::dispatched_at.is_null())
            .filter(requests::state.eq(RequestState::InProgress.as_str()))
            .count()
            .get_result(c)
            .await
    })?;
    #[allow(clippy::type_complexity)]
    let failed: Vec<(
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        chrono::NaiveDateTime,
    )> = {
        let q = requests::table
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
            ));
        crate::on!(&mut conn, c => q.load(c).await)?
    };
    drop(conn);
    let (measured, usage_error) = state.store_usage.current(&state.shared);
    let usage = measured.map(|m| Usage {
        total: area("total".into(), &m.total()),
        areas: m
            .areas
            .iter()
            .map(|(name, a)| area(name.clone(), a))
            .collect(),
        at: shown_time(&m.at),
        took_ms: m.took.as_millis(),
    });
    let page = StatusPage {
        usage,
        usage_error,
        database_ok: state.database_health.is_ok(),
        database: state.database.kind(),
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

#[cfg(test)]
mod tests {
    use super::shown_bytes;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(shown_bytes(0), "0 bytes");
        assert_eq!(shown_bytes(1023), "1023 bytes");
        assert_eq!(shown_bytes(1024), "1.00 KiB");
        assert_eq!(shown_bytes(15 << 20), "15.0 MiB");
        assert_eq!(shown_bytes(300 << 30), "300 GiB");
        assert_eq!(shown_bytes(u64::MAX), "16384 PiB");
    }
}
