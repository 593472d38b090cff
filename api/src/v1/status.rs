//! Service health: `/api/v1/status`, `/healthz` and Prometheus `/metrics`.

use crate::error::ApiResult;
use crate::schema::requests;
use crate::AppState;
use actix_web::{web, HttpResponse};
use common::RequestState;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::sync::atomic::Ordering;

pub async fn status(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let db = state.database_health.is_ok();
    let consumers = state.publisher.consumer_count().await;
    let mut services = vec![json!({"name": "database", "ok": db})];
    if !db {
        services[0]["reason"] = json!("database connection failed");
    }
    let mut broker = json!({"name": "rabbitmq", "ok": consumers.is_some()});
    if consumers.is_none() {
        broker["reason"] = json!("broker connection failed");
    }
    services.push(broker);
    let workers_ok = consumers.unwrap_or(0) > 0;
    let mut workers = json!({"name": format!("queue {}", state.config.queue), "ok": workers_ok, "consumers": consumers.unwrap_or(0)});
    if !workers_ok {
        workers["reason"] = json!("no workers are available");
    }
    let ready = db && consumers.is_some() && workers_ok;
    // what this deployment processes, and Cachito's others (never)
    let can_process: Map<String, Value> = state
        .catalogue
        .names()
        .map(|name| (name.to_string(), json!(ready)))
        .chain(
            common::pm::CACHITO_PACKAGE_MANAGERS
                .iter()
                .filter(|name| state.catalogue.get(name).is_none())
                .map(|name| (name.to_string(), json!(false))),
        )
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({"can_process": can_process, "services": services, "workers": [workers]})))
}

/// Answers from the last background check: never waits for the database or the pool.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.database_health.is_ok() {
        HttpResponse::Ok().content_type("text/plain").body("OK")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database connection failed")
    }
}

const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(QueryableByName)]
struct DurationRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    seconds: f64,
}

/// Derived from the database at scrape time, so every api instance reports the same numbers.
pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let counts: Vec<(String, i64)> = requests::table
        .group_by(requests::state)
        .select((requests::state, diesel::dsl::count_star()))
        .load(&mut conn)
        .await?;
    // The duration of a finished request: from creation to its final state.
    let durations: Vec<DurationRow> = diesel::sql_query(
        "SELECT r.state, EXTRACT(EPOCH FROM (s.updated - r.created))::float8 AS seconds \
         FROM requests r JOIN LATERAL (SELECT updated FROM request_states WHERE request_id = r.id AND state = r.state ORDER BY id LIMIT 1) s ON true \
         WHERE r.state IN ('complete', 'failed')",
    )
    .load(&mut conn)
    .await?;
    let mut out = String::new();
    out.push_str(
        "# HELP larder_requests_count Requests by state.\n# TYPE larder_requests_count gauge\n",
    );
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    for st in RequestState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| s == st.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "larder_requests_count{{state=\"{st}\"}} {n}");
    }
    let _ = writeln!(out, "larder_requests_count{{state=\"total\"}} {total}");
    out.push_str("# HELP larder_request_duration_seconds Time from submission to the final state.\n# TYPE larder_request_duration_seconds histogram\n");
    for st in ["complete", "failed"] {
        let values: Vec<f64> = durations
            .iter()
            .filter(|d| d.state == st)
            .map(|d| d.seconds)
            .collect();
        for bucket in DURATION_BUCKETS {
            let n = values.iter().filter(|v| **v <= bucket).count();
            let _ = writeln!(
                out,
                "larder_request_duration_seconds_bucket{{state=\"{st}\",le=\"{bucket}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "larder_request_duration_seconds_bucket{{state=\"{st}\",le=\"+Inf\"}} {}",
            values.len()
        );
        let _ = writeln!(
            out,
            "larder_request_duration_seconds_sum{{state=\"{st}\"}} {}",
            values.iter().sum::<f64>()
        );
        let _ = writeln!(
            out,
            "larder_request_duration_seconds_count{{state=\"{st}\"}} {}",
            values.len()
        );
    }
    out.push_str("# HELP larder_bytes_downloaded_total Bytes served to clients (bundles, logs, repositories).\n# TYPE larder_bytes_downloaded_total counter\n");
    let _ = writeln!(
        out,
        "larder_bytes_downloaded_total {}",
        std::sync::atomic::AtomicU64::load(&state.bytes_downloaded, Ordering::Relaxed)
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
