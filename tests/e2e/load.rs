//! A burst of submissions against one `larder serve` (auth on, loopback only): every submission
//! is answered, either 201 (and the request completes) or 503 with `Retry-After` (and nothing is
//! recorded), and `/healthz` keeps answering quickly throughout.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SUBMISSIONS: usize = 1000;
const HEALTHZ_BUDGET: Duration = Duration::from_secs(1);

enum Answer {
    Created(i64),
    Busy,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_submissions_is_answered_and_nothing_is_lost() {
    let _alone = alone().await;
    let mut larder = Larder::new();
    larder.spawn(
        "serve",
        &[
            ("LARDER_API_TOKENS", "load-token=alice"),
            ("LARDER_WORKER_CONCURRENCY", "8"),
            ("LARDER_LOG", "warn"),
        ],
    );
    larder.token = Some("load-token".into());
    larder.wait_healthy().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a.txt", "load\n");
    let body = json!({"repo": repo.url(), "ref": commit, "pkg_managers": []});

    // /healthz, polled on its own connection for the whole burst, from its own thread: the
    // 1,000 submitting tasks must not delay the poll's timer or its response on this side.
    let stop = Arc::new(AtomicBool::new(false));
    let health = {
        let (url, stop) = (format!("{}/healthz", larder.url), stop.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let status = http.get(&url).send().await.map(|r| r.status().as_u16());
                    latencies.push((started.elapsed(), status.ok()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                latencies
            })
        })
    };

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let burst_started = Instant::now();
    let submissions: Vec<_> = (0..SUBMISSIONS)
        .map(|_| {
            let (http, url, body) = (
                http.clone(),
                format!("{}/api/v1/requests", larder.url),
                body.clone(),
            );
            tokio::spawn(async move {
                let started = Instant::now();
                let resp = http
                    .post(url)
                    .bearer_auth("load-token")
                    .json(&body)
                    .send()
                    .await
                    .expect("every submission is answered");
                let status = resp.status().as_u16();
                let retry_after = resp.headers().contains_key("retry-after");
                let answer: Value = resp.json().await.expect("a JSON body");
                let elapsed = started.elapsed();
                match status {
                    201 => (Answer::Created(answer["id"].as_i64().unwrap()), elapsed),
                    503 => {
                        assert!(retry_after, "a 503 without Retry-After: {answer}");
                        assert!(answer["error"].is_string(), "{answer}");
                        (Answer::Busy, elapsed)
                    }
                    other => panic!("a submission was answered {other}: {answer}"),
                }
            })
        })
        .collect();
    let mut created = BTreeSet::new();
    let mut busy = 0;
    let mut latencies = Vec::new();
    for s in submissions {
        let (answer, elapsed) = s.await.unwrap();
        latencies.push(elapsed);
        match answer {
            Answer::Created(id) => assert!(created.insert(id), "id {id} given twice"),
            Answer::Busy => busy += 1,
        }
    }
    let burst = burst_started.elapsed();

    // Every created request completes.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, list) = larder
            .get("/api/v1/requests?state=in_progress&per_page=1")
            .await;
        assert_eq!(status, 200, "{list}");
        if list["meta"]["total"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} requests still in progress; logs:\n{}",
            list["meta"]["total"],
            larder.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let completed_after = burst_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let health = health.join().unwrap();

    // The database holds exactly the requests answered 201, all complete.
    let mut recorded = BTreeSet::new();
    for page in 1.. {
        let (status, list) = larder
            .get(&format!("/api/v1/requests?per_page=100&page={page}"))
            .await;
        assert_eq!(status, 200, "{list}");
        for item in list["items"].as_array().unwrap() {
            assert_eq!(item["state"], "complete", "{item}");
            recorded.insert(item["id"].as_i64().unwrap());
        }
        assert_eq!(list["meta"]["total"], created.len(), "{}", list["meta"]);
        if list["meta"]["next"].is_null() {
            break;
        }
    }
    assert_eq!(
        recorded, created,
        "the database and the 201 answers disagree"
    );
    assert_eq!(created.len() + busy, SUBMISSIONS);

    latencies.sort();
    let health_max = health.iter().map(|(d, _)| *d).max().unwrap_or_default();
    println!(
        "load: {SUBMISSIONS} concurrent submissions in {:.1} s: 201 = {}, 503 = {busy}; \
         latency p50 = {} ms, p99 = {} ms, max = {} ms; all complete after {:.1} s; \
         /healthz: {} polls, max {} ms",
        burst.as_secs_f64(),
        created.len(),
        percentile(&latencies, 0.50).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().unwrap().as_millis(),
        completed_after.as_secs_f64(),
        health.len(),
        health_max.as_millis(),
    );
    assert!(!created.is_empty(), "every submission was refused");
    for (latency, status) in &health {
        assert_eq!(*status, Some(200), "/healthz failed during the burst");
        assert!(
            *latency < HEALTHZ_BUDGET,
            "/healthz took {} ms during the burst",
            latency.as_millis()
        );
    }
}
