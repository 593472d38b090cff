//! `/api/v1/request-metrics` and `/api/v1/request-metrics/summary`: how long finished requests
//! took, read from their state history. A request's final state is its `complete` or `failed`
//! entry; it stays in the history when the request later goes stale, so a stale request counts
//! as it finished (as in Cachito).

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::schema::{request_states, requests};
use crate::v1::dates::QueryDate;
use crate::v1::filters::WindowAndError;
use crate::v1::pagination::{PageMeta, Pagination};
use crate::AppState;
use actix_web::{web, HttpResponse, ResponseError};
use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

// SQL fragments as macros, so that `concat!` builds every query from them at compile time.

/// The final-state rows, in the words of the partial index `request_states_finished_idx` (the
/// planner uses it only for this very predicate).
macro_rules! is_final_state {
    () => {
        "request_states.state IN ('complete', 'failed')"
    };
}

/// The state is of a request this instance processed (not one imported from another).
macro_rules! this_instances {
    () => {
        "NOT EXISTS (SELECT 1 FROM requests i WHERE i.id = request_states.request_id AND i.imported_instance IS NOT NULL)"
    };
}

/// When the request of the outer query's `request_states` row had its first (`0`) or second
/// (`1`) state, by the `(request_id, id)` index.
macro_rules! nth_state_at {
    ($n:literal) => {
        concat!(
            "(SELECT s.updated FROM request_states s WHERE s.request_id = request_states.request_id ",
            "ORDER BY s.id OFFSET ",
            $n,
            " LIMIT 1)"
        )
    };
}

/// Seconds from the first state to this (final) one.
macro_rules! duration {
    () => {
        concat!(
            "EXTRACT(EPOCH FROM request_states.updated - ",
            nth_state_at!(0),
            ")::float8"
        )
    };
}

/// Seconds from the first state to the second: the time before a worker reported. A request
/// whose final state is its second waited all along.
macro_rules! time_in_queue {
    () => {
        concat!(
            "EXTRACT(EPOCH FROM COALESCE(",
            nth_state_at!(1),
            ", request_states.updated) - ",
            nth_state_at!(0),
            ")::float8"
        )
    };
}

/// SQLite's [`nth_state_at!`]: its `OFFSET` comes after a `LIMIT`.
macro_rules! nth_state_at_sqlite {
    ($n:literal) => {
        concat!(
            "(SELECT s.updated FROM request_states s WHERE s.request_id = request_states.request_id ",
            "ORDER BY s.id LIMIT 1 OFFSET ",
            $n,
            ")"
        )
    };
}

/// SQLite's seconds from one stored timestamp (text `YYYY-MM-DD HH:MM:SS[.ffffff]`) to a later
/// one, to the microsecond: `unixepoch` reads whole seconds, the fractions are read from the
/// text (SQLite's date functions keep milliseconds only); whole seconds and fractions are
/// subtracted apart, so that no float of the epoch's size rounds them.
#[macro_export]
macro_rules! sqlite_seconds {
    ($from:expr, $to:expr) => {
        concat!(
            "((unixepoch(",
            $to,
            ") - unixepoch(",
            $from,
            ")) + (CAST('0' || substr(",
            $to,
            ", 20) AS REAL) - CAST('0' || substr(",
            $from,
            ", 20) AS REAL)))"
        )
    };
}

/// SQLite's [`duration!`].
macro_rules! duration_sqlite {
    () => {
        sqlite_seconds!(nth_state_at_sqlite!(0), "request_states.updated")
    };
}

/// SQLite's [`time_in_queue!`].
macro_rules! time_in_queue_sqlite {
    () => {
        sqlite_seconds!(
            nth_state_at_sqlite!(0),
            concat!(
                "COALESCE(",
                nth_state_at_sqlite!(1),
                ", request_states.updated)"
            )
        )
    };
}

/// One finished request. Fields in Cachito's (sorted) order; the select lists them so too.
#[derive(Debug, Queryable, Serialize)]
struct FinishedRequest {
    duration: f64,
    final_state: String,
    final_state_reason: String,
    #[serde(serialize_with = "serialize_time")]
    finished: NaiveDateTime,
    id: i64,
    time_in_queue: f64,
}

fn serialize_time<S: Serializer>(time: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&common::format_time(time))
}

/// The final states the filters of `$q` (a [`MetricsQuery`]) select: a boxed query, built in
/// each backend's arm of `on!` (it is typed by the backend).
macro_rules! filtered {
    ($q:expr) => {{
        let q: &MetricsQuery = $q;
        let mut query = request_states::table
            .filter(sql::<Bool>(is_final_state!()))
            .filter(sql::<Bool>(this_instances!()))
            .into_boxed();
        let filters = &q.finished_and_error;
        if let Some(from) = &filters.from {
            query = query.filter(request_states::updated.ge(from.at));
        }
        if let Some(to) = &filters.to {
            query = query.filter(request_states::updated.le(to.at));
        }
        if filters.error_origin.is_some() || filters.error_type.is_some() {
            let mut with_that_error = requests::table.select(requests::id).into_boxed();
            if let Some(origin) = filters.error_origin {
                with_that_error =
                    with_that_error.filter(requests::error_origin.eq(origin.as_str()));
            }
            if let Some(error_type) = &filters.error_type {
                with_that_error =
                    with_that_error.filter(requests::error_type.eq(error_type.clone()));
            }
            query = query.filter(request_states::request_id.eq_any(with_that_error));
        }
        query
    }};
}

struct MetricsQuery {
    pagination: Pagination,
    finished_and_error: WindowAndError,
}

impl MetricsQuery {
    fn parse(pairs: &[(String, String)]) -> ApiResult<Self> {
        let mut q = Self {
            pagination: Pagination::default(),
            finished_and_error: WindowAndError::new("finished_from", "finished_to"),
        };
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            if !q.pagination.accept(k, v)? && !q.finished_and_error.accept(k, v)? {
                invalid.push(k.as_str());
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

    fn link(&self, public_url: &str, page: i64) -> String {
        self.pagination.link(
            public_url,
            "/api/v1/request-metrics",
            page,
            &self.finished_and_error.link_pairs(),
        )
    }
}

/// The filters' count of finished requests, and the page of them `offset` on.
async fn finished_page(
    conn: &mut impl crate::db::AsDb,
    q: &MetricsQuery,
    offset: i64,
) -> diesel::QueryResult<(i64, Vec<FinishedRequest>)> {
    let total: i64 = crate::on!(conn, c => filtered!(q).count().get_result(c).await)?;
    // The page's rows first, then their durations: PostgreSQL computes a select list for the
    // rows an OFFSET skips as well.
    let items: Vec<FinishedRequest> = crate::on!(conn, c => {
        let page_rows = filtered!(q)
            .order((request_states::updated.desc(), request_states::id.desc()))
            .offset(offset)
            .limit(q.pagination.per_page)
            .select(request_states::id);
        request_states::table
            .filter(request_states::id.eq_any(page_rows))
            .order((request_states::updated.desc(), request_states::id.desc()))
            .select((
                sql::<Double>(crate::sql!(postgres: duration!(), sqlite: duration_sqlite!())),
                request_states::state,
                request_states::state_reason,
                request_states::updated,
                request_states::request_id,
                sql::<Double>(crate::sql!(
                    postgres: time_in_queue!(),
                    sqlite: time_in_queue_sqlite!(),
                )),
            ))
            .load(c)
            .await
    })?;
    Ok((total, items))
}

/// `GET /api/v1/request-metrics`: finished requests, the latest to finish first.
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> ApiResult<HttpResponse> {
    let q = MetricsQuery::parse(&query)?;
    let offset = q.pagination.offset()?;
    let mut conn = state.pool.get().await?;
    let (total, items) = finished_page(&mut conn, &q, offset).await?;
    drop(conn);
    q.pagination.check_exists(items.len())?;
    #[derive(Serialize)]
    struct Page {
        items: Vec<FinishedRequest>,
        meta: PageMeta,
    }
    let meta = q
        .pagination
        .meta(total, |page| q.link(&state.config.public_url, page));
    Ok(HttpResponse::Ok().json(Page { items, meta }))
}

/// The summary's window, both ends required. Cachito checks them with a pydantic model, whose
/// messages these are.
#[derive(Debug, PartialEq, Eq)]
struct SummaryWindow {
    from: NaiveDateTime,
    to: NaiveDateTime,
}

const FIELD_REQUIRED: &str = "field required";
const INVALID_DATE: &str = "invalid date format";

/// What the summary refuses: its window with Cachito's field errors, anything else with the
/// usual `{"error": …}`.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Window(#[from] FieldErrors),
}

impl ResponseError for SummaryError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            Self::Api(e) => e.status_code(),
            Self::Window(e) => e.status_code(),
        }
    }
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Api(e) => e.error_response(),
            Self::Window(e) => e.error_response(),
        }
    }
}

impl SummaryWindow {
    fn parse(pairs: &[(String, String)]) -> Result<Self, SummaryError> {
        let (mut from, mut to) = (None, None);
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "finished_from" => from = Some(v.as_str()),
                "finished_to" => to = Some(v.as_str()),
                other => invalid.push(other),
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::bad_request(format!(
                "The following query parameters are invalid: {}",
                invalid.join(", ")
            ))
            .into());
        }
        let mut errors = BTreeMap::new();
        let mut bound = |name: &'static str, text: Option<&str>| match text.map(QueryDate::parse) {
            Some(Ok(date)) => Some(date),
            Some(Err(_)) => {
                errors.insert(name, INVALID_DATE);
                None
            }
            None => {
                errors.insert(name, FIELD_REQUIRED);
                None
            }
        };
        let (from, to) = (bound("finished_from", from), bound("finished_to", to));
        match (from, to) {
            (Some(from), Some(to)) => Ok(Self {
                from: from.start(),
                to: to.end(),
            }),
            _ => Err(FieldErrors(errors).into()),
        }
    }
}

/// Over the requests finished in a window; averages and percentiles are null when none did
/// (as Cachito's, straight from PostgreSQL). Fields in Cachito's (sorted) order.
#[derive(Debug, QueryableByName, Serialize)]
struct Summary {
    #[diesel(sql_type = BigInt)]
    client_errors: i64,
    #[diesel(sql_type = BigInt)]
    complete: i64,
    #[diesel(sql_type = Nullable<Double>)]
    duration_50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    duration_95: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    duration_avg: Option<f64>,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    server_errors: i64,
    #[diesel(sql_type = Nullable<Double>)]
    time_in_queue_95: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    time_in_queue_avg: Option<f64>,
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// Over the window's final states (`$1`, `$2`: its ends, inclusive). Materialized so that each
/// request's lookups run once, not once per aggregate reading them.
const SUMMARY: &str = concat!(
    "WITH finished AS MATERIALIZED (SELECT request_states.state, ",
    "(SELECT requests.error_origin FROM requests WHERE requests.id = request_states.request_id) AS error_origin, ",
    duration!(),
    " AS duration, ",
    time_in_queue!(),
    " AS time_in_queue FROM request_states WHERE ",
    is_final_state!(),
    " AND ",
    this_instances!(),
    " AND request_states.updated >= $1 AND request_states.updated <= $2) ",
    "SELECT avg(duration) AS duration_avg, ",
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) AS duration_50, ",
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) AS duration_95, ",
    "avg(time_in_queue) AS time_in_queue_avg, ",
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY time_in_queue) AS time_in_queue_95, ",
    "count(*) FILTER (WHERE error_origin = 'client') AS client_errors, ",
    "count(*) FILTER (WHERE error_origin = 'server') AS server_errors, ",
    "count(*) AS total, ",
    "count(*) FILTER (WHERE state = 'complete') AS complete, ",
    "count(*) FILTER (WHERE state = 'failed') AS failed ",
    "FROM finished",
);

/// SQLite's summary: the window's finished requests (`$1`, `$2` as in [`SUMMARY`]), summed up
/// in Rust by [`Summary::of`] (SQLite has no `percentile_cont`).
const SUMMARY_ROWS_SQLITE: &str = concat!(
    "SELECT request_states.state, ",
    "(SELECT requests.error_origin FROM requests WHERE requests.id = request_states.request_id) AS error_origin, ",
    duration_sqlite!(),
    " AS duration, ",
    time_in_queue_sqlite!(),
    " AS time_in_queue FROM request_states WHERE ",
    is_final_state!(),
    " AND ",
    this_instances!(),
    " AND request_states.updated >= $1 AND request_states.updated <= $2",
);

/// One row of [`SUMMARY_ROWS_SQLITE`].
#[derive(Debug, QueryableByName)]
struct FinishedRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    error_origin: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    duration: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    time_in_queue: Option<f64>,
}

/// PostgreSQL's `percentile_cont(p) WITHIN GROUP (ORDER BY …)` of `sorted` (ascending, no
/// nulls): linear between the two nearest ranks, computed as PostgreSQL does
/// (`percentile_cont_final_common`, `float8_lerp`); null over nothing.
fn percentile_cont(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let at = p * (sorted.len() as i64 - 1) as f64;
    let (first, second) = (at.floor(), at.ceil());
    let low = sorted[first as usize];
    if second > first {
        let high = sorted[second as usize];
        Some(low + (at - first) * (high - low))
    } else {
        Some(low)
    }
}

/// `avg` of the values, nulls ignored; null over nothing.
fn average(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

impl Summary {
    /// What [`SUMMARY`] computes, over rows as [`SUMMARY_ROWS_SQLITE`] reads them.
    fn of(rows: &[FinishedRow]) -> Self {
        let sorted = |values: &mut Vec<f64>| values.sort_by(f64::total_cmp);
        let mut durations: Vec<f64> = rows.iter().filter_map(|r| r.duration).collect();
        let mut in_queue: Vec<f64> = rows.iter().filter_map(|r| r.time_in_queue).collect();
        let (duration_avg, time_in_queue_avg) = (average(&durations), average(&in_queue));
        sorted(&mut durations);
        sorted(&mut in_queue);
        let count = |f: &dyn Fn(&FinishedRow) -> bool| rows.iter().filter(|r| f(r)).count() as i64;
        Self {
            client_errors: count(&|r| r.error_origin.as_deref() == Some("client")),
            complete: count(&|r| r.state == "complete"),
            duration_50: percentile_cont(&durations, 0.5),
            duration_95: percentile_cont(&durations, 0.95),
            duration_avg,
            failed: count(&|r| r.state == "failed"),
            server_errors: count(&|r| r.error_origin.as_deref() == Some("server")),
            time_in_queue_95: percentile_cont(&in_queue, 0.95),
            time_in_queue_avg,
            total: rows.len() as i64,
        }
    }
}

/// The summary of the window's finished requests.
async fn summarize(
    conn: &mut impl crate::db::AsDb,
    window: &SummaryWindow,
) -> diesel::QueryResult<Summary> {
    match conn.as_db() {
        crate::db::Db::Postgres(conn) => {
            crate::transaction!(conn, diesel::result::Error, async |conn| {
                // PostgreSQL's JIT compiles this plan for longer than it runs, a few index
                // lookups per request (measured over 22,000 requests: 0.9 s with it, 0.3 s
                // without)
                diesel::sql_query("SET LOCAL jit = off")
                    .execute(conn)
                    .await?;
                diesel::sql_query(SUMMARY)
                    .bind::<Timestamp, _>(window.from)
                    .bind::<Timestamp, _>(window.to)
                    .get_result(conn)
                    .await
            })
        }
        // one statement: no transaction, and no JIT to turn off
        crate::db::Db::Sqlite(conn) => {
            let rows: Vec<FinishedRow> = diesel::sql_query(SUMMARY_ROWS_SQLITE)
                .bind::<Timestamp, _>(window.from)
                .bind::<Timestamp, _>(window.to)
                .load(conn)
                .await?;
            Ok(Summary::of(&rows))
        }
    }
}

/// `GET /api/v1/request-metrics/summary?finished_from=…&finished_to=…`.
pub async fn summary(
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, SummaryError> {
    let window = SummaryWindow::parse(&query)?;
    let mut conn = state.pool.get().await.map_err(ApiError::from)?;
    let summary = summarize(&mut conn, &window)
        .await
        .map_err(ApiError::from)?;
    drop(conn);
    Ok(HttpResponse::Ok().json(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field_errors(list: &[(&str, &str)]) -> BTreeMap<&'static str, &'static str> {
        match SummaryWindow::parse(&pairs(list)) {
            Err(SummaryError::Window(FieldErrors(errors))) => errors,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    #[test]
    fn summary_window_covers_whole_days() {
        let window = SummaryWindow::parse(&pairs(&[
            ("finished_from", "2026-01-01"),
            ("finished_to", "2026-01-31"),
        ]))
        .unwrap();
        assert_eq!(window.from.to_string(), "2026-01-01 00:00:00");
        assert_eq!(window.to.to_string(), "2026-01-31 23:59:59.999999");
    }

    #[test]
    fn summary_window_errors_name_every_bad_field() {
        assert_eq!(
            field_errors(&[]),
            BTreeMap::from([
                ("finished_from", FIELD_REQUIRED),
                ("finished_to", FIELD_REQUIRED)
            ])
        );
        assert_eq!(
            field_errors(&[("finished_from", "2026-01-01"), ("finished_to", "")]),
            BTreeMap::from([("finished_to", INVALID_DATE)])
        );
        assert_eq!(
            field_errors(&[("finished_from", "yesterday\0")]),
            BTreeMap::from([
                ("finished_from", INVALID_DATE),
                ("finished_to", FIELD_REQUIRED)
            ])
        );
        match SummaryWindow::parse(&pairs(&[("page", "1")])) {
            Err(SummaryError::Api(e)) => {
                assert_eq!(
                    e.message,
                    "The following query parameters are invalid: page"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// The Rust percentiles and averages (SQLite's summary) are PostgreSQL's, to the bit.
    #[tokio::test(flavor = "multi_thread")]
    async fn percentiles_in_rust_are_postgresqls() {
        #[derive(QueryableByName)]
        struct PgRow {
            #[diesel(sql_type = Nullable<Double>)]
            p50: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)]
            p95: Option<f64>,
            #[diesel(sql_type = Nullable<Double>)]
            mean: Option<f64>,
        }
        let db = crate::test_db::TestDb::new().await;
        let mut conn = db.pool.get().await.unwrap();
        let many: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f64 / 7.0)
            .collect();
        let sets: Vec<Vec<f64>> = vec![
            vec![],
            vec![42.5],
            vec![1.0, 2.0],
            vec![10.0, 1.0, 3.0, 2.0],
            vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1],
            vec![3.25, 3.25, 0.001, 1e6, 12.345, 7.0, 7.0],
            (1..=21).map(|i| (i * i) as f64 * 0.37).collect(),
            many,
        ];
        for set in sets {
            let pg: PgRow = diesel::sql_query(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50, \
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY v) AS p95, avg(v) AS mean \
                 FROM unnest($1) AS v",
            )
            .bind::<diesel::sql_types::Array<Double>, _>(&set)
            .get_result(crate::test_db::pg(&mut conn))
            .await
            .unwrap();
            let rows: Vec<FinishedRow> = set
                .iter()
                .map(|d| FinishedRow {
                    state: "complete".into(),
                    error_origin: None,
                    duration: Some(*d),
                    time_in_queue: Some(*d),
                })
                .collect();
            let ours = Summary::of(&rows);
            assert_eq!(ours.duration_50, pg.p50, "{set:?}");
            assert_eq!(ours.duration_95, pg.p95, "{set:?}");
            assert_eq!(ours.time_in_queue_95, pg.p95, "{set:?}");
            assert_eq!(ours.total, set.len() as i64);
            // avg: the same sum, in PostgreSQL's order of the rows (unnest's)
            assert_eq!(ours.duration_avg, pg.mean, "{set:?}");
        }
    }

    /// The same finished requests in either database.
    async fn fill(conn: &mut impl crate::db::AsDb) {
        use crate::sql_types::Strings;
        let at = |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let none: Vec<String> = Vec::new();
        let created = at("2026-01-01 00:00:00.5");
        for (id, state, origin, imported, finished) in [
            (1i64, "complete", None, None, "2026-01-01 00:02:00.123"),
            (2, "failed", Some("client"), None, "2026-01-01 00:04:07.001"),
            (3, "failed", Some("server"), None, "2026-01-01 00:06:00.999"),
            (
                4,
                "complete",
                None,
                Some("other"),
                "2026-01-01 00:08:00.000",
            ),
            (5, "in_progress", None, None, ""),
            (6, "complete", None, None, "2026-01-02 00:00:00.000"),
            // its final state is its second
            (7, "complete", None, None, "2026-01-01 00:00:09.5"),
            (8, "failed", Some("client"), None, "2026-01-01 10:00:00.25"),
        ] {
            crate::on!(conn, c => {
                diesel::insert_into(requests::table)
                    .values((
                        requests::id.eq(id),
                        requests::repo.eq("r"),
                        requests::git_ref.eq("g"),
                        requests::pkg_managers.eq(Strings(&none)),
                        requests::flags.eq(Strings(&none)),
                        requests::created.eq(created),
                        requests::state.eq(state),
                        requests::state_reason.eq("x"),
                        requests::updated.eq(created),
                        requests::token_salt.eq("s"),
                        requests::error_origin.eq(origin),
                        requests::imported_instance.eq(imported),
                        requests::imported_id.eq(imported.map(|_| id)),
                    ))
                    .execute(c)
                    .await
            })
            .unwrap();
            let mut states = vec![("in_progress", created)];
            if id != 7 {
                states.push(("in_progress", at("2026-01-01 00:00:03.25")));
            }
            if !finished.is_empty() {
                states.push((state, at(finished)));
            }
            for (s, t) in states {
                crate::on!(conn, c => {
                    diesel::insert_into(request_states::table)
                        .values((
                            request_states::request_id.eq(id),
                            request_states::state.eq(s),
                            request_states::state_reason.eq("x"),
                            request_states::updated.eq(t),
                        ))
                        .execute(c)
                        .await
                })
                .unwrap();
            }
        }
    }

    /// Equal JSON, numbers to a relative 1e-12 (an average's sum may run in another order).
    fn assert_close(a: &serde_json::Value, b: &serde_json::Value) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} != {y}");
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{a} != {b}");
                x.iter().zip(y).for_each(|(x, y)| assert_close(x, y));
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
                x.iter().for_each(|(k, v)| assert_close(v, &y[k]));
            }
            _ => assert_eq!(a, b),
        }
    }

    /// The list and the summary answer the same on PostgreSQL and SQLite.
    #[tokio::test(flavor = "multi_thread")]
    async fn postgresql_and_sqlite_agree() {
        let pg = crate::test_db::TestDb::new().await;
        let lite = crate::test_db::TestSqlite::new().await;
        let mut answers = Vec::new();
        for pool in [&pg.pool, &lite.pool] {
            let mut conn = pool.get().await.unwrap();
            fill(&mut conn).await;
            let mut answer = Vec::new();
            for window in [
                ("2026-01-01", "2026-01-01"),
                ("2026-01-01", "2026-01-02"),
                ("2025-01-01", "2025-01-01"),
            ] {
                let window = SummaryWindow::parse(&pairs(&[
                    ("finished_from", window.0),
                    ("finished_to", window.1),
                ]))
                .unwrap();
                let summary = summarize(&mut conn, &window).await.unwrap();
                answer.push(serde_json::to_value(&summary).unwrap());
            }
            for query in [
                &[][..],
                &[("per_page", "2"), ("page", "2")],
                &[("error_origin", "client")],
                &[
                    ("finished_from", "2026-01-01T00:03:00"),
                    ("finished_to", "2026-01-01"),
                ],
            ] {
                let q = MetricsQuery::parse(&pairs(query)).unwrap();
                let (total, items) = finished_page(&mut conn, &q, q.pagination.offset().unwrap())
                    .await
                    .unwrap();
                answer.push(serde_json::json!({"total": total, "items": items}));
            }
            answers.push(serde_json::Value::Array(answer));
        }
        assert_close(&answers[0], &answers[1]);
        // not vacuous: the summary of the first day
        assert_eq!(answers[1][0]["total"], 5, "{}", answers[1]);
        assert_eq!(answers[1][0]["duration_50"], 246.501, "{}", answers[1]);
    }

    #[test]
    fn the_summary_in_rust_counts_as_postgresql_does() {
        let row = |state: &str, origin: Option<&str>, d: f64, q: f64| FinishedRow {
            state: state.into(),
            error_origin: origin.map(str::to_string),
            duration: Some(d),
            time_in_queue: Some(q),
        };
        let s = Summary::of(&[
            row("complete", None, 4.0, 1.0),
            row("failed", Some("client"), 2.0, 0.5),
            row("failed", Some("server"), 1.0, 0.25),
            row("complete", None, 3.0, 2.0),
        ]);
        assert_eq!(
            (
                s.total,
                s.complete,
                s.failed,
                s.client_errors,
                s.server_errors
            ),
            (4, 2, 2, 1, 1)
        );
        assert_eq!(s.duration_avg, Some(2.5));
        assert_eq!(s.duration_50, Some(2.5));
        assert_eq!(s.duration_95, Some(3.0 + (0.95 * 3.0 - 2.0) * (4.0 - 3.0)));
        assert_eq!(s.time_in_queue_avg, Some(0.9375));
        let none = Summary::of(&[]);
        assert_eq!(
            (none.total, none.duration_50, none.duration_avg),
            (0, None, None)
        );
    }

    #[test]
    fn metrics_query_refuses_unknown_parameters() {
        let Err(e) = MetricsQuery::parse(&pairs(&[("finished_to", "2026-01-31"), ("state", "x")]))
        else {
            panic!("accepted");
        };
        assert_eq!(
            e.message,
            "The following query parameters are invalid: state"
        );
    }
}
