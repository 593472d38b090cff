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

/// What `/api/v1/status` reports: the database (from the background check), the broker and the
/// workers consuming this deployment's queue. `/api/v1/status/short` answers from it too.
pub(crate) struct ServiceStatus {
    pub(crate) database_ok: bool,
    /// Consumers of the queue; `None` when the broker did not answer.
    pub(crate) consumers: Option<u32>,
}

impl ServiceStatus {
    pub(crate) async fn check(state: &AppState) -> Self {
        Self {
            database_ok: state.database_health.is_ok(),
            consumers: state.publisher.consumer_count().await,
        }
    }

    pub(crate) fn workers_ok(&self) -> bool {
        self.consumers.unwrap_or(0) > 0
    }

    /// Why the api cannot take requests now, in Cachito's words: the first service down, in
    /// its order. Workers do not count: without one, requests are still recorded and their
    /// jobs wait in the queue for the first worker to come.
    pub(crate) fn service_down(&self) -> Option<String> {
        if !self.database_ok {
            Some(format!("database unavailable: {DATABASE_DOWN}"))
        } else if self.consumers.is_none() {
            Some(format!("rabbitmq unavailable: {BROKER_DOWN}"))
        } else {
            None
        }
    }

    fn to_json(&self, state: &AppState) -> Value {
        let mut services = vec![json!({"name": "database", "ok": self.database_ok})];
        if !self.database_ok {
            services[0]["reason"] = json!(DATABASE_DOWN);
        }
        let in_process = matches!(&*state.publisher, crate::publisher::Publisher::InProcess(_));
        let (broker_name, queue_name) = if in_process {
            (
                "in-process queue".to_string(),
                "in-process queue".to_string(),
            )
        } else {
            (
                "rabbitmq".to_string(),
                format!("queue {}", state.config.queue),
            )
        };
        let mut broker = json!({"name": broker_name, "ok": self.consumers.is_some()});
        if self.consumers.is_none() {
            broker["reason"] = json!(BROKER_DOWN);
        }
        services.push(broker);
        let mut workers = json!({"name": queue_name, "ok": self.workers_ok(), "consumers": self.consumers.unwrap_or(0)});
        if !self.workers_ok() {
            workers["reason"] = json!(NO_WORKERS);
        }
        let ready = self.service_down().is_none() && self.workers_ok();
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
        json!({"can_process": can_process, "services": services, "workers": [workers]})
    }
}

const DATABASE_DOWN: &str = "database connection failed";
const BROKER_DOWN: &str = "broker connection failed";
const NO_WORKERS: &str = "no workers are available";

pub async fn status(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let status = ServiceStatus::check(&state).await;
    Ok(HttpResponse::Ok().json(status.to_json(&state)))
}

/// 200 `{"ok": true}` when the api can take requests (its database and broker answer), else
/// 503 `{"ok": false, "reason": …}`. Cachito answers a service that is down with a 500
/// `{"error": …}` here, against its own documentation, and a missing worker with the 503;
/// `/api/v1/status` tells about the workers.
pub async fn status_short(state: web::Data<AppState>) -> HttpResponse {
    match ServiceStatus::check(&state).await.service_down() {
        None => HttpResponse::Ok().json(json!({"ok": true})),
        Some(reason) => {
            HttpResponse::ServiceUnavailable().json(json!({"ok": false, "reason": reason}))
        }
    }
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

/// Derived from the database at scrape time, so every api instance reports the same numbers
/// (the bytes downloaded through the other instances within `counters::FLUSH_INTERVAL` aside).
pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    // this instance's requests: another's imported records are not its work
    let counts: Vec<(String, i64)> = {
        let q = requests::table
            .filter(requests::imported_instance.is_null())
            .group_by(requests::state)
            .select((requests::state, diesel::dsl::count_star()));
        crate::on!(&mut conn, c => q.load(c).await)?
    };
    // The duration of a finished request: from creation to its final state. SQLite has no
    // LATERAL: the first such state's time by a correlated subquery (rows without one left
    // out, as the inner join does).
    let durations: Vec<DurationRow> = crate::on!(&mut conn, c => {
        diesel::sql_query(crate::sql!(
            postgres: "SELECT r.state, EXTRACT(EPOCH FROM (s.updated - r.created))::float8 AS seconds \
                       FROM requests r JOIN LATERAL (SELECT updated FROM request_states WHERE request_id = r.id AND state = r.state ORDER BY id LIMIT 1) s ON true \
                       WHERE r.state IN ('complete', 'failed') AND r.imported_instance IS NULL",
            sqlite: concat!("SELECT state, ", crate::sqlite_seconds!("created", "updated"), " AS seconds \
                     FROM (SELECT r.state, r.created, (SELECT updated FROM request_states WHERE request_id = r.id AND state = r.state ORDER BY id LIMIT 1) AS updated \
                           FROM requests r WHERE r.state IN ('complete', 'failed') AND r.imported_instance IS NULL) \
                     WHERE updated IS NOT NULL"),
        ))
        .load(c)
        .await
    })?;
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
    drop(conn);
    let bytes_downloaded = state
        .bytes_downloaded
        .total(&state.pool)
        .await
        .map_err(|e| {
            crate::error::ApiError::unavailable(format!("The counters cannot be read: {e}"))
        })?;
    out.push_str("# HELP larder_bytes_downloaded_total Bytes served to clients (bundles, logs, repositories) by every api instance.\n# TYPE larder_bytes_downloaded_total counter\n");
    let _ = writeln!(out, "larder_bytes_downloaded_total {bytes_downloaded}");
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
