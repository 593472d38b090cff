//! Web page benchmark (not run by CI): `cargo bench --bench ui`.
//!
//! Fills PostgreSQL with `LARDER_UI_BENCH_REQUESTS` requests (default 100,000) with SQL
//! (`generate_series`), then renders pages through a real `larder api`'s HTTP
//! (`LARDER_UI_BENCH_QUERIES` times each, default 300, one after another) and prints p50/p99
//! per page next to the goal (`/ui/requests` under 50 ms p99), and the plan of each list query.
//!
//! Request `i`: repository `app-<i mod 10,000>` (10 requests each), package managers by
//! `i mod 4` (npm, pip, gomod, cargo+npm), failed when `i mod 100 = 0`, in progress when
//! `i mod 1,000 = 1`, else complete; one history entry and 8 dependencies each. No request uses
//! rubygems: on `pkg_managers @>` that filter read every request (the planner walks the primary
//! key expecting a match soon, with or without a GIN index); through `request_pkg_managers`
//! (migration 2026-12-13) it is an empty index range. Both plans are printed.

#[path = "database.rs"]
mod database;
#[path = "../tests/e2e/support/mod.rs"]
mod support;

use database::{env_number, exec, PlanLine};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::time::{Duration, Instant};
use support::*;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

async fn run() {
    let requests = env_number("LARDER_UI_BENCH_REQUESTS", 100_000);
    let queries = env_number("LARDER_UI_BENCH_QUERIES", 300) as usize;
    // the api alone (no worker): the seeded requests in progress stay so
    let mut larder = Larder::new();
    larder.spawn("api", &[]);
    larder.wait_healthy().await;
    println!("database: {}", larder.database_url);
    let mut conn = AsyncPgConnection::establish(&larder.database_url)
        .await
        .unwrap();
    let t = Instant::now();
    exec(&mut conn, &format!(
        "INSERT INTO requests (repo, ref, pkg_managers, flags, created, state, state_reason, updated, token_salt, dispatched_at) \
         SELECT 'https://git.example.com/app-' || (i % 10000), md5(i::text) || left(md5(i::text || 'x'), 8), \
                CASE i % 4 WHEN 0 THEN '{{npm}}'::text[] WHEN 1 THEN '{{pip}}' WHEN 2 THEN '{{gomod}}' ELSE '{{cargo,npm}}' END, '{{}}', \
                now() - make_interval(secs => {requests} - i), \
                CASE WHEN i % 100 = 0 THEN 'failed' WHEN i % 1000 = 1 THEN 'in_progress' ELSE 'complete' END, \
                CASE WHEN i % 100 = 0 THEN 'The lockfile names <b>a package</b> the registry does not have' ELSE 'Completed successfully' END, \
                now(), 'salt', now() \
         FROM generate_series(1, {requests}) i"
    ))
    .await;
    exec(&mut conn,
        "INSERT INTO request_states (request_id, state, state_reason, updated) SELECT id, state, state_reason, updated FROM requests",
    )
    .await;
    exec(&mut conn,
        "INSERT INTO request_dependencies (request_id, purl, type, name, version, dev) \
         SELECT r.id, 'pkg:npm/dep-' || ((r.id * 7 + j) % 5000) || '@1.0.0', 'npm', 'dep-' || ((r.id * 7 + j) % 5000), '1.0.0', j = 7 \
         FROM requests r, generate_series(0, 7) j",
    )
    .await;
    exec(&mut conn, "VACUUM ANALYZE requests").await;
    exec(&mut conn, "VACUUM ANALYZE request_states").await;
    exec(&mut conn, "VACUUM ANALYZE request_dependencies").await;
    exec(&mut conn, "VACUUM ANALYZE request_pkg_managers").await;
    println!("filled {requests} requests in {:.1?}", t.elapsed());
    let ids: Vec<Id> = diesel::sql_query("SELECT min(id) AS id FROM requests")
        .load(&mut conn)
        .await
        .unwrap();
    let first = ids[0].id;
    let deep = first + requests / 10;
    let old_repo = "https://git.example.com/app-17";

    let columns = "id, repo, ref, pkg_managers, state, state_reason, created";
    let by_pm = "id IN (SELECT request_id FROM request_pkg_managers WHERE pkg_manager =";
    for (what, sql) in [
        ("newest page", format!("SELECT {columns} FROM requests ORDER BY id DESC LIMIT 26")),
        ("state=failed", format!("SELECT {columns} FROM requests WHERE state = 'failed' ORDER BY id DESC LIMIT 26")),
        ("repo= (10 requests)", format!("SELECT {columns} FROM requests WHERE repo = '{old_repo}' ORDER BY id DESC LIMIT 26")),
        ("pkg_manager=pip", format!("SELECT {columns} FROM requests WHERE {by_pm} 'pip') ORDER BY id DESC LIMIT 26")),
        ("pkg_manager=rubygems (no request)", format!("SELECT {columns} FROM requests WHERE {by_pm} 'rubygems') ORDER BY id DESC LIMIT 26")),
        ("pkg_manager=rubygems on the array (before 2026-12-13)", format!("SELECT {columns} FROM requests WHERE pkg_managers @> '{{rubygems}}' ORDER BY id DESC LIMIT 26")),
        ("state=in_progress&pkg_manager=cargo", format!("SELECT {columns} FROM requests WHERE state = 'in_progress' AND {by_pm} 'cargo') ORDER BY id DESC LIMIT 26")),
        ("before= (90% back)", format!("SELECT {columns} FROM requests WHERE id < {deep} ORDER BY id DESC LIMIT 26")),
        ("status: in progress", "SELECT count(*) FROM requests WHERE state = 'in_progress'".to_string()),
        ("status: failures", "SELECT id FROM requests WHERE state = 'failed' ORDER BY id DESC LIMIT 10".to_string()),
    ] {
        let plan: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}"))
            .load(&mut conn)
            .await
            .unwrap();
        println!("\nplan of {what}:");
        for l in plan {
            println!("  {}", l.line);
        }
    }

    // what the repository filter costs without the index of migration 2026-12-11 (dropped in a
    // transaction that is rolled back)
    exec(&mut conn, "BEGIN").await;
    exec(&mut conn, "DROP INDEX requests_repo_idx").await;
    let plan: Vec<PlanLine> = diesel::sql_query(format!(
        "EXPLAIN (ANALYZE, COSTS OFF) SELECT {columns} FROM requests WHERE repo = '{old_repo}' ORDER BY id DESC LIMIT 26"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    println!("\nplan of repo= (10 requests) without the index of 2026-12-11:");
    for l in plan {
        println!("  {}", l.line);
    }
    exec(&mut conn, "ROLLBACK").await;

    let http = reqwest::Client::new();
    let pages = [
        ("/ui/requests (newest 25)", "/ui/requests".to_string()),
        (
            "/ui/requests?state=failed",
            "/ui/requests?state=failed".to_string(),
        ),
        (
            "/ui/requests?repo= (10 requests)",
            format!(
                "/ui/requests?repo={}",
                common::percent::encode_component(old_repo)
            ),
        ),
        (
            "/ui/requests?pkg_manager=pip",
            "/ui/requests?pkg_manager=pip".to_string(),
        ),
        (
            "/ui/requests?pkg_manager=rubygems (none)",
            "/ui/requests?pkg_manager=rubygems".to_string(),
        ),
        (
            "/ui/requests?state=in_progress&pkg_manager=cargo",
            "/ui/requests?state=in_progress&pkg_manager=cargo".to_string(),
        ),
        (
            "/ui/requests?before= (90% back)",
            format!("/ui/requests?before={deep}"),
        ),
        (
            "/ui/requests?per_page=100",
            "/ui/requests?per_page=100".to_string(),
        ),
        ("/ui/requests/{id}", format!("/ui/requests/{deep}")),
        (
            "/ui/search?purl=",
            "/ui/search?purl=pkg:npm/dep-42@1.0.0".to_string(),
        ),
        ("/ui/status", "/ui/status".to_string()),
    ];
    println!("\n{requests} requests, {queries} sequential GETs each through HTTP (client-side time, whole body read):\n");
    println!("| page | p50 ms | p99 ms | max ms | bytes |");
    println!("|---|---:|---:|---:|---:|");
    for (what, path) in pages {
        let url = format!("{}{path}", larder.url);
        // warm the connection and the caches once
        let _ = http.get(&url).send().await.unwrap().bytes().await;
        let mut times: Vec<Duration> = Vec::with_capacity(queries);
        let mut size = 0;
        for _ in 0..queries {
            let t = Instant::now();
            let resp = http.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            size = resp.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {what} | {:.2} | {:.2} | {:.2} | {size} |",
            ms(at(0.50)),
            ms(at(0.99)),
            ms(times[times.len() - 1])
        );
    }
    println!("\ngoal: /ui/requests p99 < 50 ms");
    // the deployment (and its database) goes with `larder`
    drop(conn);
}
