//! Dependency search benchmark (not run by CI): `cargo bench --bench search`.
//!
//! Fills PostgreSQL with `LARDER_SEARCH_BENCH_REQUESTS` complete requests (default 100,000) of
//! 500 dependencies each, with SQL (`generate_series`, the search indexes built after the fill
//! from their migration's own definitions), then times `GET /api/v1/dependencies?purl=…`
//! through a real Larder's HTTP api (`LARDER_SEARCH_BENCH_QUERIES`, default 1,000, sequential)
//! for a purl of a few hundred requests and for one in every request, and prints p50/p99, the
//! plan of the purl query, and the table's and indexes' sizes. The goal: p99 under 20 ms.
//!
//! Each request `r` has `pkg:npm/lodash@4.17.21` and 499 of 20,000 names `dep-<k>` at one of
//! three versions, `k = (31 r + 997 j) mod 20000` for its `j`-th: at 100,000 requests a purl
//! `dep-<k>@1.0.<v>` is in about 830 of them; every fifth dependency is a dev dependency.
//!
//! Measured 2026-11-30 at 100,000 requests (50,000,000 rows), debug build of the api, on the
//! shared 2-core machine, with a purl's total read from `dependency_request_counts` (kept by
//! triggers): filled in 527 s, indexed in 160 s; heap 4,027 MiB, primary key 3,202 MiB, purl
//! index 2,812 MiB, name index 2,812 MiB (12,854 MiB in all). A typical purl (in ~830
//! requests): p50 2.8 ms, p99 8.2 ms; the purl in every request: p50 2.6 ms, p99 7.5 ms (its
//! total read in 0.03 ms, where counting its 100,000 index entries took 25 ms).

#[path = "database.rs"]
mod database;
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use database::{env_number, exec, PlanLine};
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::Rng;
use std::time::{Duration, Instant};
use support::*;

const DEPENDENCIES: i64 = 500;
const NAMES: i64 = 20_000;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(diesel::QueryableByName)]
struct Size {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

async fn run() {
    let requests = env_number("LARDER_SEARCH_BENCH_REQUESTS", 100_000);
    let queries = env_number("LARDER_SEARCH_BENCH_QUERIES", 1_000) as usize;
    // the api creates the database and applies the migrations
    let larder = Larder::start().await;
    // dropped at the end; named here in case the run is cut short
    println!("database: {}", larder.database_url);
    let mut conn = AsyncPgConnection::establish(&larder.database_url)
        .await
        .unwrap();

    let t = Instant::now();
    exec(&mut conn, "SET maintenance_work_mem = '512MB'").await;
    exec(&mut conn, &format!(
        "INSERT INTO requests (repo, ref, pkg_managers, flags, created, state, state_reason, updated, token_salt) \
         SELECT 'https://git.example.com/app-' || i, md5(i::text) || left(md5(i::text || 'x'), 8), '{{npm}}', '{{}}', \
                now() - make_interval(secs => {requests} - i), 'complete', 'bench', now(), 'salt' \
         FROM generate_series(1, {requests}) i"
    ))
    .await;
    // the search indexes (not the primary key) are built after the fill, as a restore would
    let indexes: Vec<Line> = diesel::sql_query(
        "SELECT indexdef AS line FROM pg_indexes WHERE tablename = 'request_dependencies' \
         AND indexname <> 'request_dependencies_pkey'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for index in &indexes {
        let name = index.line.split_whitespace().nth(2).unwrap();
        exec(&mut conn, &format!("DROP INDEX {name}")).await;
    }
    let ids: Vec<Size> = diesel::sql_query("SELECT 'ids' AS name, min(id) AS bytes FROM requests")
        .load(&mut conn)
        .await
        .unwrap();
    let first = ids[0].bytes;
    let chunk = 10_000;
    let mut from = first;
    while from < first + requests {
        let to = (from + chunk - 1).min(first + requests - 1);
        exec(&mut conn, &format!(
            "INSERT INTO request_dependencies (request_id, purl, type, name, version, dev) \
             SELECT r, CASE WHEN j = 0 THEN 'pkg:npm/lodash@4.17.21' ELSE 'pkg:npm/dep-' || k || '@1.0.' || (j % 3) END, \
                    'npm', CASE WHEN j = 0 THEN 'lodash' ELSE 'dep-' || k END, \
                    CASE WHEN j = 0 THEN '4.17.21' ELSE '1.0.' || (j % 3) END, j % 5 = 4 \
             FROM generate_series({from}::bigint, {to}) r, generate_series(0, {last}) j, \
                  LATERAL (SELECT (r * 31 + j * 997) % {NAMES} AS k) x",
            last = DEPENDENCIES - 1
        ))
        .await;
        from = to + 1;
    }
    let filled = t.elapsed();
    let t = Instant::now();
    for index in &indexes {
        exec(&mut conn, &index.line).await;
    }
    exec(&mut conn, "VACUUM ANALYZE request_dependencies").await;
    exec(&mut conn, "VACUUM ANALYZE requests").await;
    let indexed = t.elapsed();
    println!(
        "filled {requests} requests x {DEPENDENCIES} dependencies ({} rows) in {:.1?}, indexed and analyzed in {:.1?}",
        requests * DEPENDENCIES,
        filled,
        indexed
    );

    let sizes: Vec<Size> = diesel::sql_query(
        "SELECT 'table (heap)' AS name, pg_relation_size('request_dependencies') AS bytes \
         UNION ALL SELECT 'table (total with indexes and TOAST)', pg_total_relation_size('request_dependencies') \
         UNION ALL SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index \
                   WHERE indrelid = 'request_dependencies'::regclass",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for s in &sizes {
        println!(
            "{:<45} {:>10.1} MiB",
            s.name,
            s.bytes as f64 / (1 << 20) as f64
        );
    }

    let mut rng = rand::rng();
    let typical = |rng: &mut rand::rngs::ThreadRng| {
        format!(
            "pkg:npm/dep-{}@1.0.{}",
            rng.random_range(0..NAMES),
            rng.random_range(0..3)
        )
    };
    let sample = typical(&mut rng);
    for (what, purl) in [
        ("a typical purl", sample.as_str()),
        ("a purl in every request", "pkg:npm/lodash@4.17.21"),
    ] {
        let plan: Vec<PlanLine> = diesel::sql_query(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) \
             SELECT r.id, r.repo, r.ref, r.state, r.created, m.dev \
             FROM (SELECT d.request_id, bool_and(d.dev) AS dev FROM request_dependencies d WHERE d.purl = $1 \
                   GROUP BY d.request_id ORDER BY d.request_id DESC LIMIT 10 OFFSET 0) m \
             JOIN requests r ON r.id = m.request_id ORDER BY r.id DESC",
        )
        .bind::<Text, _>(purl)
        .load(&mut conn)
        .await
        .unwrap();
        println!("\nplan of a page for {what} ({purl}):");
        for l in plan {
            println!("  {}", l.line);
        }
        for (which, sql) in [
            (
                "its total (kept by the triggers)",
                "EXPLAIN (ANALYZE, COSTS OFF) SELECT requests FROM dependency_request_counts WHERE purl = $1",
            ),
            (
                "its count with &state= (counted)",
                "EXPLAIN (ANALYZE, COSTS OFF) SELECT count(*) FROM request_dependencies d WHERE d.purl = $1",
            ),
        ] {
            let plan: Vec<PlanLine> = diesel::sql_query(sql)
                .bind::<Text, _>(purl)
                .load(&mut conn)
                .await
                .unwrap();
            println!("plan of {which}:");
            for l in plan {
                println!("  {}", l.line);
            }
        }
    }

    let http = reqwest::Client::new();
    for (what, hot) in [
        ("a typical purl (random)", false),
        ("a purl in every request", true),
    ] {
        let mut times: Vec<Duration> = Vec::with_capacity(queries);
        let mut total = 0;
        for _ in 0..queries {
            let purl = if hot {
                "pkg:npm/lodash@4.17.21".to_string()
            } else {
                typical(&mut rng)
            };
            let t = Instant::now();
            let resp = http
                .get(format!(
                    "{}/api/v1/dependencies?purl={}",
                    larder.url,
                    common::percent::encode_component(&purl)
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let page: serde_json::Value = resp.json().await.unwrap();
            times.push(t.elapsed());
            total += page["meta"]["total"].as_i64().unwrap();
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "\n{what}: {queries} queries through HTTP, {:.0} requests found on average: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            total as f64 / queries as f64,
            at(0.50),
            at(0.99),
            times[times.len() - 1]
        );
    }
}
