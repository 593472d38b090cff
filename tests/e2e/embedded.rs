//! One machine with nothing installed: `larder serve --dev` with neither `LARDER_DATABASE_URL`
//! nor `LARDER_AMQP_URL` keeps its records in the embedded SQLite database of its data
//! directory and queues its jobs in its own process. This test makes a network namespace in
//! which nothing listens on PostgreSQL's or RabbitMQ's ports and runs every package manager's
//! tests, the API's requests and the web pages there again (this binary, filtered), each
//! `larder serve` on SQLite.

use crate::support::IN_NAMESPACE;
use std::process::Command;

/// What runs again in the namespace: a request of each package manager through its real
/// client, the API's behaviour (states, pagination, errors, its OpenAPI description),
/// the pages, a `serve` killed mid-request whose request completes once it is started again,
/// export and import, TLS, and hostile lockfiles and upstreams. Not here: the modules that
/// read PostgreSQL themselves (`search`, `hostile_api`, `object_store`), run several api
/// instances on one database (`scale_out`), run `larder api` and `larder worker` with RabbitMQ
/// (`metrics`, `single_flight`, the rest of `reliability`; the metrics' SQL is compared on both
/// databases by the api's unit tests), or measure the machine (`load`, `large_files`).
const AGAIN: &[&str] = &[
    "npm::",
    "yarn::",
    "yarn_berry::",
    "pnpm::",
    "pip::",
    "gomod::",
    "cargo::",
    "rubygems::",
    "requests::",
    "ui::",
    "reliability::serve_without_a_broker_queues_in_process_and_finishes_a_request_after_a_kill",
    "validation::",
    "openapi::",
    "air_gap::",
    "store_integrity::",
    "https_repos::",
    "tls::",
    "hostile_lockfiles::",
    "hostile_net::",
];

#[test]
fn every_package_manager_completes_on_sqlite_with_nothing_on_postgres_or_rabbitmq_ports() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        // this is the namespace's run: the ports are checked in support::Larder
        return;
    }
    let this_binary = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c"])
        // a new network namespace has only a loopback device, down
        .arg(r#"ip link set lo up && exec "$0" "$@""#)
        .arg(&this_binary)
        .args(["--test-threads", "2"])
        .args(AGAIN)
        .env(IN_NAMESPACE, "1")
        .env("LARDER_TEST_DATABASE", "sqlite")
        .output()
        .expect("unshare (util-linux) and ip (iproute2) run the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tests in the namespace failed:\n{stdout}\n{stderr}"
    );
    // the filters matched: an empty run would pass too
    let passed = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("test result: ok. ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(0);
    assert!(passed >= 85, "only {passed} tests ran:\n{stdout}");
}
