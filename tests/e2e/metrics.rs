//! `/api/v1/request-metrics`, its summary, `/api/v1/status/short`, and the request list's
//! creation and error filters. A full Larder finishes real requests; an api without a worker
//! lets the test move requests through their states itself (authentication off, so it may
//! PATCH as a worker does) and check every number against their state history.

use crate::support::*;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use serde_json::{json, Value};
use std::time::Duration;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// `larder api` alone: no worker, so requests stay in progress until the test moves them on.
async fn api_only() -> Larder {
    let mut larder = Larder::new();
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    larder
}

fn parse_time(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn seconds(from: NaiveDateTime, to: NaiveDateTime) -> f64 {
    (to - from).num_microseconds().unwrap() as f64 / 1e6
}

fn day(time: NaiveDateTime) -> String {
    time.date().format("%Y-%m-%d").to_string()
}

fn day_before(date: NaiveDate) -> String {
    (date - TimeDelta::days(1)).format("%Y-%m-%d").to_string()
}

/// PostgreSQL's `percentile_cont`: linear interpolation between the closest ranks.
fn percentile_cont(values: &[f64], fraction: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = fraction * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn assert_close(what: &str, actual: &Value, expected: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual}"));
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: {actual} != {expected}"
    );
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// A request the test drove, with the times of its states as the api recorded them.
struct Driven {
    id: i64,
    created: NaiveDateTime,
    first: NaiveDateTime,
    second: NaiveDateTime,
    /// Its complete or failed state (`None`: left in progress).
    finished: Option<(NaiveDateTime, String)>,
}

impl Driven {
    fn finished_at(&self) -> NaiveDateTime {
        self.finished.as_ref().unwrap().0
    }
    fn finished_text(&self) -> &str {
        &self.finished.as_ref().unwrap().1
    }
    fn duration(&self) -> f64 {
        seconds(self.first, self.finished_at())
    }
    fn time_in_queue(&self) -> f64 {
        seconds(self.first, self.second)
    }
}

async fn patch(larder: &Larder, id: i64, body: Value) {
    let resp = larder
        .http
        .patch(format!("{}/api/v1/requests/{id}", larder.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "PATCH {id} {body}");
}

/// The final state the test gives a request.
struct Final {
    state: &'static str,
    reason: &'static str,
    /// `error_origin` and `error_type`
    error: Option<(&'static str, &'static str)>,
}

/// How each request ends (`None`: it stays in progress), and whether it then goes stale.
const ENDINGS: [(Option<Final>, bool); 6] = [
    (
        Some(Final {
            state: "complete",
            reason: "Completed successfully",
            error: None,
        }),
        false,
    ),
    (
        Some(Final {
            state: "failed",
            reason: "bad input",
            error: Some(("client", "InvalidRequestData")),
        }),
        false,
    ),
    (
        Some(Final {
            state: "failed",
            reason: "too slow",
            error: Some(("server", "RequestTimeout")),
        }),
        false,
    ),
    (
        Some(Final {
            state: "complete",
            reason: "Completed successfully",
            error: None,
        }),
        true,
    ),
    (None, false),
    (
        Some(Final {
            state: "failed",
            reason: "no lockfile",
            error: Some(("client", "InvalidRepoStructure")),
        }),
        false,
    ),
];

/// Submit six requests, then move each through a second state to its ending, one after the
/// other with pauses of different lengths, so that they finish in order and each took its
/// own time.
async fn drive_requests(larder: &Larder) -> Vec<Driven> {
    let mut ids = Vec::new();
    for _ in ENDINGS {
        ids.push(
            larder
                .submit(json!({"repo": "https://github.com/org/repo.git", "ref": SHA, "pkg_managers": []}))
                .await,
        );
    }
    for (n, (id, (ending, goes_stale))) in ids.iter().zip(ENDINGS).enumerate() {
        tokio::time::sleep(Duration::from_millis(10 * (n as u64 + 1))).await;
        patch(
            larder,
            *id,
            json!({"state": "in_progress", "state_reason": "Fetching the application source"}),
        )
        .await;
        let Some(last) = ending else {
            continue;
        };
        tokio::time::sleep(Duration::from_millis(60 - 10 * n as u64)).await;
        let mut body = json!({"state": last.state, "state_reason": last.reason});
        if let Some((origin, kind)) = last.error {
            body["error_origin"] = json!(origin);
            body["error_type"] = json!(kind);
        }
        patch(larder, *id, body).await;
        if goes_stale {
            patch(
                larder,
                *id,
                json!({"state": "stale", "state_reason": "The request has expired"}),
            )
            .await;
        }
    }
    let mut driven = Vec::new();
    for id in ids {
        let (status, request) = larder.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(status, 200, "{request}");
        // newest first
        let history: Vec<&Value> = request["state_history"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .collect();
        let time = |entry: &Value| parse_time(entry["updated"].as_str().unwrap());
        let finished = history
            .iter()
            .find(|entry| entry["state"] == "complete" || entry["state"] == "failed")
            .map(|entry| (time(entry), entry["updated"].as_str().unwrap().to_string()));
        driven.push(Driven {
            id,
            created: parse_time(request["created"].as_str().unwrap()),
            first: time(history[0]),
            second: time(history[1]),
            finished,
        });
    }
    driven
}

#[tokio::test]
async fn status_short_names_the_service_that_is_down() {
    let mut larder = Larder::new();
    let nothing_listens = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    larder.spawn("api", &[("LARDER_AMQP_URL", &nothing_listens)]);
    larder.wait_healthy().await;
    let (status, body) = larder.get("/api/v1/status/short").await;
    assert_eq!(
        (status, body),
        (
            503,
            json!({"ok": false, "reason": "rabbitmq unavailable: broker connection failed"})
        )
    );
    let (_, full) = larder.get("/api/v1/status").await;
    assert_eq!(
        full["services"][1],
        json!({"name": "rabbitmq", "ok": false, "reason": "broker connection failed"})
    );
}

#[tokio::test]
async fn finished_requests_are_listed_newest_first_with_their_durations() {
    let larder = Larder::start().await;
    let (status, body) = larder.get("/api/v1/status/short").await;
    assert_eq!((status, body), (200, json!({"ok": true})));
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "a");
    let complete = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    let complete = larder.wait(complete).await;
    assert_eq!(complete["state"], "complete", "{complete}");
    let failed = larder
        .submit(json!({"repo": repo.url(), "ref": SHA, "pkg_managers": []}))
        .await;
    let failed = larder.wait(failed).await;
    assert_eq!(failed["state"], "failed", "{failed}");

    let (status, page) = larder.get("/api/v1/request-metrics").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        ids(&page),
        [&failed, &complete].map(|r| r["id"].as_i64().unwrap())
    );
    assert_eq!(page["meta"]["total"], 2);
    for (item, request) in page["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&failed, &complete])
    {
        assert_eq!(item["final_state"], request["state"]);
        assert_eq!(item["final_state_reason"], request["state_reason"]);
        assert_eq!(item["finished"], request["updated"]);
        let (duration, queued) = (
            item["duration"].as_f64().unwrap(),
            item["time_in_queue"].as_f64().unwrap(),
        );
        assert!(0.0 < queued && queued <= duration, "{item}");
    }
    let (_, client_errors) = larder
        .get("/api/v1/request-metrics?error_origin=client&error_type=InvalidRequestData")
        .await;
    assert_eq!(ids(&client_errors), [failed["id"].as_i64().unwrap()]);

    let today = day(parse_time(failed["updated"].as_str().unwrap()));
    let (status, summary) = larder
        .get(&format!(
            "/api/v1/request-metrics/summary?finished_from=2000-01-01&finished_to={today}"
        ))
        .await;
    assert_eq!(status, 200, "{summary}");
    let counts = [
        "total",
        "complete",
        "failed",
        "client_errors",
        "server_errors",
    ];
    assert_eq!(
        counts.map(|k| summary[k].as_i64().unwrap()),
        [2, 1, 1, 1, 0]
    );
    let durations: Vec<f64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["duration"].as_f64().unwrap())
        .collect();
    assert_close("duration_avg", &summary["duration_avg"], mean(&durations));
}

#[tokio::test]
async fn request_metrics_filter_paginate_and_sum_up_a_known_set() {
    let larder = api_only().await;
    // no worker: the api still takes requests, their jobs wait in the queue
    let (status, body) = larder.get("/api/v1/status/short").await;
    assert_eq!((status, body), (200, json!({"ok": true})));

    let driven = drive_requests(&larder).await;
    let finished: Vec<&Driven> = driven.iter().filter(|d| d.finished.is_some()).collect();
    let newest_first = |list: &[&Driven]| -> Vec<i64> {
        let mut list = list.to_vec();
        list.sort_by_key(|d| std::cmp::Reverse(d.finished_at()));
        list.iter().map(|d| d.id).collect()
    };
    let select = |keep: &dyn Fn(usize) -> bool| -> Vec<&Driven> {
        driven
            .iter()
            .enumerate()
            .filter(|(n, d)| d.finished.is_some() && keep(*n))
            .map(|(_, d)| d)
            .collect()
    };
    let metrics_ids = async |query: &str| -> Vec<i64> {
        let (status, page) = larder
            .get(&format!("/api/v1/request-metrics?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        ids(&page)
    };

    // Every finished request (the stale one as it finished), none in progress.
    let (_, page) = larder.get("/api/v1/request-metrics").await;
    assert_eq!(ids(&page), newest_first(&finished));
    assert_eq!(page["meta"]["total"], 5);
    for item in page["items"].as_array().unwrap() {
        let d = driven.iter().find(|d| d.id == item["id"]).unwrap();
        assert_eq!(item["finished"], d.finished_text());
        assert_close("duration", &item["duration"], d.duration());
        assert_close("time_in_queue", &item["time_in_queue"], d.time_in_queue());
    }
    let stale = &page["items"][1];
    assert_eq!(stale["id"], driven[3].id);
    assert_eq!(stale["final_state"], "complete");
    assert_eq!(stale["final_state_reason"], "Completed successfully");

    // Windows: datetimes are inclusive instants, a bare `finished_to` date its whole day.
    let pivot = driven[2].finished_text();
    assert_eq!(
        metrics_ids(&format!("finished_from={pivot}")).await,
        newest_first(&select(&|n| n >= 2))
    );
    assert_eq!(
        metrics_ids(&format!("finished_to={pivot}")).await,
        newest_first(&select(&|n| n <= 2))
    );
    assert_eq!(
        metrics_ids(&format!(
            "finished_from={}&finished_to={}",
            driven[1].finished_text(),
            driven[3].finished_text()
        ))
        .await,
        newest_first(&select(&|n| (1..=3).contains(&n)))
    );
    let first_day = day(driven[0].finished_at());
    let last_day = day(driven[5].finished_at());
    assert_eq!(
        metrics_ids(&format!("finished_from={first_day}&finished_to={last_day}")).await,
        newest_first(&finished)
    );
    assert_eq!(
        metrics_ids(&format!(
            "finished_to={}",
            day_before(driven[0].finished_at().date())
        ))
        .await,
        Vec::<i64>::new()
    );
    // an offset moves the instant: the pivot two hours east is the pivot
    let pivot_east = (driven[2].finished_at() + TimeDelta::hours(2))
        .format("%Y-%m-%dT%H:%M:%S%.6f%%2B02:00")
        .to_string();
    assert_eq!(
        metrics_ids(&format!("finished_from={pivot_east}")).await,
        newest_first(&select(&|n| n >= 2))
    );

    // Errors.
    assert_eq!(
        metrics_ids("error_origin=client").await,
        newest_first(&select(&|n| n == 1 || n == 5))
    );
    assert_eq!(metrics_ids("error_origin=server").await, [driven[2].id]);
    assert_eq!(
        metrics_ids("error_type=InvalidRequestData").await,
        [driven[1].id]
    );
    assert_eq!(
        metrics_ids("error_origin=client&error_type=InvalidRepoStructure").await,
        [driven[5].id]
    );
    assert_eq!(
        metrics_ids("error_origin=server&error_type=InvalidRequestData").await,
        Vec::<i64>::new()
    );

    // Pages keep the filters.
    let (_, page) = larder
        .get(&format!(
            "/api/v1/request-metrics?per_page=2&finished_from={first_day}&error_origin=client"
        ))
        .await;
    assert_eq!(ids(&page), [driven[5].id, driven[1].id]);
    assert_eq!(page["meta"]["pages"], 1);
    let (_, page) = larder
        .get(&format!(
            "/api/v1/request-metrics?per_page=2&finished_from={first_day}&finished_to={last_day}"
        ))
        .await;
    assert_eq!(page["meta"]["pages"], 3);
    let next = page["meta"]["next"].as_str().unwrap();
    let pairs: Vec<(String, String)> = url::Url::parse(next)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let expected_pairs = [
        ("page", "2"),
        ("per_page", "2"),
        ("finished_from", first_day.as_str()),
        ("finished_to", last_day.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(pairs, expected_pairs);
    let second: Value = larder
        .http
        .get(next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&second), [driven[2].id, driven[1].id]);
    let (status, _) = larder
        .get("/api/v1/request-metrics?page=4&per_page=2")
        .await;
    assert_eq!(status, 404);

    // Bad values, in the `{"error": …}` body.
    for (query, message) in [
        (
            "finished_from=2026-13-01",
            "'2026-13-01' is not a valid datetime(ISO 8601 format).",
        ),
        (
            "finished_to=1676468605",
            "'1676468605' is not a valid datetime(ISO 8601 format).",
        ),
        (
            "finished_to=2026-01-01%00",
            "The \"finished_to\" parameter must not contain control characters",
        ),
        (
            "error_origin=nobody",
            "'nobody' is not one of ['client', 'server']",
        ),
        (
            "state=failed",
            "The following query parameters are invalid: state",
        ),
        (
            "per_page=0",
            "The \"per_page\" parameter must be an integer of at least 1",
        ),
    ] {
        let (status, body) = larder
            .get(&format!("/api/v1/request-metrics?{query}"))
            .await;
        assert_eq!((status, body), (400, json!({"error": message})), "{query}");
    }

    // The summary of the whole set, against the numbers from the state history.
    let (status, summary) = larder
        .get(&format!(
            "/api/v1/request-metrics/summary?finished_from={first_day}&finished_to={last_day}"
        ))
        .await;
    assert_eq!(status, 200, "{summary}");
    let counts = [
        "total",
        "complete",
        "failed",
        "client_errors",
        "server_errors",
    ];
    assert_eq!(
        counts.map(|k| summary[k].as_i64().unwrap()),
        [5, 2, 3, 2, 1]
    );
    let durations: Vec<f64> = finished.iter().map(|d| d.duration()).collect();
    let queued: Vec<f64> = finished.iter().map(|d| d.time_in_queue()).collect();
    assert_close("duration_avg", &summary["duration_avg"], mean(&durations));
    assert_close(
        "duration_50",
        &summary["duration_50"],
        percentile_cont(&durations, 0.5),
    );
    assert_close(
        "duration_95",
        &summary["duration_95"],
        percentile_cont(&durations, 0.95),
    );
    assert_close(
        "time_in_queue_avg",
        &summary["time_in_queue_avg"],
        mean(&queued),
    );
    assert_close(
        "time_in_queue_95",
        &summary["time_in_queue_95"],
        percentile_cont(&queued, 0.95),
    );
    // a window of two failures
    let (_, summary) = larder
        .get(&format!(
            "/api/v1/request-metrics/summary?finished_from={}&finished_to={}",
            driven[1].finished_text(),
            driven[2].finished_text()
        ))
        .await;
    assert_eq!(
        counts.map(|k| summary[k].as_i64().unwrap()),
        [2, 0, 2, 1, 1]
    );
    assert_close(
        "duration_avg",
        &summary["duration_avg"],
        mean(&[driven[1].duration(), driven[2].duration()]),
    );
    // nothing finished: counts 0, averages and percentiles null
    let (status, summary) = larder
        .get("/api/v1/request-metrics/summary?finished_from=2000-01-01&finished_to=2000-01-31")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        summary,
        json!({"client_errors": 0, "complete": 0, "duration_50": null, "duration_95": null,
               "duration_avg": null, "failed": 0, "server_errors": 0, "time_in_queue_95": null,
               "time_in_queue_avg": null, "total": 0})
    );

    // Bad summary windows: Cachito's field errors.
    for (query, errors) in [
        (
            "",
            json!({"finished_from": "field required", "finished_to": "field required"}),
        ),
        (
            "finished_from=2026-01-01",
            json!({"finished_to": "field required"}),
        ),
        (
            "finished_from=yesterday&finished_to=2026-02-30",
            json!({"finished_from": "invalid date format", "finished_to": "invalid date format"}),
        ),
        (
            "finished_from=2026-01-01&finished_to=",
            json!({"finished_to": "invalid date format"}),
        ),
    ] {
        let (status, body) = larder
            .get(&format!("/api/v1/request-metrics/summary?{query}"))
            .await;
        assert_eq!((status, body), (400, json!({"errors": errors})), "{query}");
    }
    let (status, body) = larder
        .get("/api/v1/request-metrics/summary?finished_from=2026-01-01&finished_to=2026-01-31&page=1")
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "The following query parameters are invalid: page"})
        )
    );
}

#[tokio::test]
async fn request_list_filters_by_creation_and_error_and_keeps_them_in_links() {
    let larder = api_only().await;
    let driven = drive_requests(&larder).await;
    let newest_first = |keep: &dyn Fn(usize) -> bool| -> Vec<i64> {
        let mut ids: Vec<i64> = (0..driven.len())
            .filter(|n| keep(*n))
            .map(|n| driven[n].id)
            .collect();
        ids.sort_by_key(|id| std::cmp::Reverse(*id));
        ids
    };
    let list_ids = async |query: &str| -> Vec<i64> {
        let (status, page) = larder.get(&format!("/api/v1/requests?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        ids(&page)
    };
    let created = |n: usize| {
        driven[n]
            .created
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string()
    };

    assert_eq!(
        list_ids(&format!("created_from={}", created(2))).await,
        newest_first(&|n| n >= 2)
    );
    assert_eq!(
        list_ids(&format!("created_to={}", created(2))).await,
        newest_first(&|n| n <= 2)
    );
    let first_day = day(driven[0].created);
    let last_day = day(driven[5].created);
    assert_eq!(
        list_ids(&format!("created_from={first_day}&created_to={last_day}")).await,
        newest_first(&|_| true)
    );
    assert_eq!(
        list_ids(&format!(
            "created_to={}",
            day_before(driven[0].created.date())
        ))
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list_ids("error_origin=client").await,
        newest_first(&|n| n == 1 || n == 5)
    );
    assert_eq!(list_ids("error_type=RequestTimeout").await, [driven[2].id]);
    assert_eq!(
        list_ids("state=failed&error_origin=client&error_type=InvalidRepoStructure").await,
        [driven[5].id]
    );
    assert_eq!(
        list_ids("state=stale&error_origin=client").await,
        Vec::<i64>::new()
    );

    // The links of a page keep the new filters with the others.
    let (_, page) = larder
        .get(&format!(
            "/api/v1/requests?per_page=1&state=failed&created_from={}&created_to={last_day}&error_origin=client",
            created(1)
        ))
        .await;
    assert_eq!(ids(&page), [driven[5].id]);
    assert_eq!(page["meta"]["total"], 2);
    let next = page["meta"]["next"].as_str().unwrap();
    let pairs: Vec<(String, String)> = url::Url::parse(next)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let expected_pairs = [
        ("page", "2"),
        ("per_page", "1"),
        ("state", "failed"),
        ("created_from", created(1).as_str()),
        ("created_to", last_day.as_str()),
        ("error_origin", "client"),
        ("verbose", "false"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(pairs, expected_pairs);
    let second: Value = larder
        .http
        .get(next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&second), [driven[1].id]);

    for (query, message) in [
        (
            "created_from=2026-01-01T25:00",
            "'2026-01-01T25:00' is not a valid datetime(ISO 8601 format).",
        ),
        (
            "created_to=tom_hanks",
            "'tom_hanks' is not a valid datetime(ISO 8601 format).",
        ),
        ("error_origin=", "'' is not one of ['client', 'server']"),
        (
            "error_type=a%00b",
            "The \"error_type\" parameter must not contain control characters",
        ),
    ] {
        let (status, body) = larder.get(&format!("/api/v1/requests?{query}")).await;
        assert_eq!((status, body), (400, json!({"error": message})), "{query}");
    }
}
