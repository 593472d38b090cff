//! Dependency search end to end: real npm requests against a fixture registry, then
//! `GET /api/v1/dependencies` by purl, by type and name, with a version and a state, paged, and
//! the `larder search` command.

use crate::support::npm_fixtures::{
    self, build, larder_for, write_registry, BuiltPackage, FixturePackage, RootProject, TreeEntry,
};
use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn entry(location: &str, pkg: &BuiltPackage, dev: bool) -> TreeEntry {
    TreeEntry {
        location: location.into(),
        pkg: pkg.clone(),
        dev,
        optional: false,
    }
}

/// A repository whose npm lockfile installs `tree`, committed.
fn npm_app(
    dir: std::path::PathBuf,
    name: &str,
    root_deps: &[(&str, bool)],
    tree: &[TreeEntry],
) -> (GitRepo, String) {
    let mut root = RootProject {
        name: name.into(),
        version: "1.0.0".into(),
        ..Default::default()
    };
    for (dep, dev) in root_deps {
        let deps = if *dev {
            &mut root.dev_dependencies
        } else {
            &mut root.dependencies
        };
        deps.insert(dep.to_string(), "*".into());
    }
    npm_fixtures::committed_project(dir, &root, tree, name)
}

/// `(id, dev)` of every item of a page.
fn found(page: &Value) -> Vec<(i64, bool)> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["dev"].as_bool().unwrap()))
        .collect()
}

async fn search(larder: &Larder, query: &str) -> Value {
    let (status, page) = larder.get(&format!("/api/v1/dependencies?{query}")).await;
    assert_eq!(status, 200, "{query}: {page}");
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_requests_by_purl_name_version_and_state() {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let b1 = build(&FixturePackage::new("b", "1.1.0"));
    let b2 = build(&FixturePackage::new("b", "2.0.0"));
    let a = build(&FixturePackage::new("a", "1.0.0").dep("b", "^1.0.0"));
    let c = build(&FixturePackage::new("@s/c", "2.0.0").dep("b", "^2.0.0"));
    write_registry(
        &up_dir,
        &upstream.url,
        &[a.clone(), b1.clone(), b2.clone(), c.clone()],
    )
    .unwrap();
    // one: a (and b 1.1.0) to run, @s/c (and b 2.0.0) to develop; two: the other way round
    let (one, one_commit) = npm_app(
        tmp.path().join("one"),
        "one",
        &[("a", false), ("@s/c", true)],
        &[
            entry("node_modules/a", &a, false),
            entry("node_modules/b", &b1, false),
            entry("node_modules/@s/c", &c, true),
            entry("node_modules/@s/c/node_modules/b", &b2, true),
        ],
    );
    let (two, two_commit) = npm_app(
        tmp.path().join("two"),
        "two",
        &[("a", true), ("@s/c", false)],
        &[
            entry("node_modules/a", &a, true),
            entry("node_modules/b", &b1, true),
            entry("node_modules/@s/c", &c, false),
            entry("node_modules/@s/c/node_modules/b", &b2, false),
        ],
    );
    let mut larder = larder_for(&upstream).await;
    let mut ids = Vec::new();
    for (repo, commit) in [
        (&one, &one_commit),
        (&two, &two_commit),
        (&one, &one_commit),
    ] {
        let id = larder
            .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"]}))
            .await;
        let done = larder.wait(id).await;
        assert_eq!(done["state"], "complete", "{done}\n{}", larder.logs());
        ids.push(id);
    }
    let (r1, r2, r3) = (ids[0], ids[1], ids[2]);

    // an exact purl, as Larder writes it or with the scope's `@` unescaped: newest first
    let page = search(&larder, "purl=pkg:npm/a@1.0.0").await;
    assert_eq!(
        found(&page),
        [(r3, false), (r2, true), (r1, false)],
        "{page}"
    );
    let item = &page["items"][0];
    assert_eq!(item["repo"], one.url());
    assert_eq!(item["ref"], one_commit.as_str());
    assert_eq!(item["state"], "complete");
    assert!(
        item["created"].as_str().unwrap().starts_with("20"),
        "{item}"
    );
    assert_eq!(page["meta"]["total"], 3);
    for purl in [
        "pkg:npm/%40s/c@2.0.0",
        "pkg:npm/@s/c@2.0.0",
        "PKG:npm/%40s%2Fc@2.0.0",
    ] {
        let page = search(&larder, &format!("purl={}", encode(purl))).await;
        assert_eq!(
            found(&page),
            [(r3, true), (r2, false), (r1, true)],
            "{purl}: {page}"
        );
    }
    assert_eq!(found(&search(&larder, "purl=pkg:npm/a@9.9.9").await), []);

    // type and name, any version: a request is listed once; dev only if dev in every version
    let page = search(&larder, "type=npm&name=b").await;
    assert_eq!(
        found(&page),
        [(r3, false), (r2, false), (r1, false)],
        "{page}"
    );
    let page = search(&larder, "type=npm&name=b&version=2.0.0").await;
    assert_eq!(
        found(&page),
        [(r3, true), (r2, false), (r1, true)],
        "{page}"
    );
    let page = search(&larder, "type=npm&name=b&version=1.1.0").await;
    assert_eq!(
        found(&page),
        [(r3, false), (r2, true), (r1, false)],
        "{page}"
    );
    let page = search(&larder, "type=npm&name=%40s%2Fc").await;
    assert_eq!(page["meta"]["total"], 3, "{page}");
    assert_eq!(found(&search(&larder, "type=pip&name=b").await), []);

    // pagination, every filter kept in the links
    let page = search(
        &larder,
        "type=npm&name=b&version=2.0.0&state=complete&per_page=2",
    )
    .await;
    assert_eq!(found(&page), [(r3, true), (r2, false)]);
    let meta = &page["meta"];
    assert_eq!(
        (meta["total"].as_i64(), meta["pages"].as_i64()),
        (Some(3), Some(2))
    );
    assert!(meta["previous"].is_null(), "{meta}");
    let next = meta["next"].as_str().unwrap();
    assert_eq!(
        next,
        format!(
            "{}/api/v1/dependencies?page=2&per_page=2&type=npm&name=b&version=2.0.0&state=complete",
            larder.url
        )
    );
    let page = search(&larder, next.split_once('?').unwrap().1).await;
    assert_eq!(found(&page), [(r1, true)]);
    assert!(page["meta"]["next"].is_null());
    assert!(page["meta"]["previous"]
        .as_str()
        .unwrap()
        .contains("page=1&"));
    let (status, _) = larder
        .get("/api/v1/dependencies?type=npm&name=b&per_page=2&page=3")
        .await;
    assert_eq!(status, 404);

    // by state; a stale request stays searchable
    assert_eq!(
        search(&larder, "purl=pkg:npm/a@1.0.0&state=failed").await["meta"]["total"],
        0
    );
    larder.expire_all();
    assert_eq!(
        search(&larder, "purl=pkg:npm/a@1.0.0&state=complete").await["meta"]["total"],
        0
    );
    let page = search(&larder, "purl=pkg:npm/a@1.0.0&state=stale").await;
    assert_eq!(
        found(&page),
        [(r3, false), (r2, true), (r1, false)],
        "{page}"
    );
    // the total of a purl is kept as rows come and go (a report replaces a request's rows)
    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut conn = AsyncPgConnection::establish(&larder.database_url)
            .await
            .unwrap();
        for sql in [
            format!("CREATE TEMP TABLE saved AS SELECT * FROM request_dependencies WHERE request_id = {r1}"),
            format!("DELETE FROM request_dependencies WHERE request_id = {r1}"),
        ] {
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
        let page = search(&larder, "purl=pkg:npm/a@1.0.0").await;
        assert_eq!(page["meta"]["total"], 2, "{page}");
        assert_eq!(found(&page), [(r3, false), (r2, true)], "{page}");
        diesel::sql_query("INSERT INTO request_dependencies SELECT * FROM saved")
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            search(&larder, "purl=pkg:npm/a@1.0.0").await["meta"]["total"],
            3
        );
    }

    // the command line: a table of the same
    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
            .args([
                "search",
                "npm/@s/c",
                "--version",
                "2.0.0",
                "--state",
                "stale",
            ])
            .env("LARDER_URL", &larder.url),
    );
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].trim_start().starts_with("ID"), "{out}");
    let rows: BTreeMap<i64, &str> = lines[1..4]
        .iter()
        .map(|l| (l.split_whitespace().next().unwrap().parse().unwrap(), *l))
        .collect();
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        [r1, r2, r3],
        "{out}"
    );
    assert!(rows[&r1].contains(" dev "), "{out}");
    assert!(!rows[&r2].contains(" dev "), "{out}");
    assert!(out.contains("3 requests"), "{out}");
    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_larder"))
            .args([
                "search",
                "pkg:npm/a@1.0.0",
                "--per-page",
                "1",
                "--page",
                "2",
            ])
            .env("LARDER_URL", &larder.url),
    );
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with(&r2.to_string()),
        "{out}"
    );

    // a request reported before the search existed (no rows, listed by the migration) is
    // indexed from its stored packages data when the api starts
    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut conn = AsyncPgConnection::establish(&larder.database_url)
            .await
            .unwrap();
        for sql in [
            format!("DELETE FROM request_dependencies WHERE request_id = {r1}"),
            format!("INSERT INTO request_dependencies_backfill VALUES ({r1})"),
        ] {
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
    }
    assert_eq!(
        search(&larder, "purl=pkg:npm/a@1.0.0").await["meta"]["total"],
        2
    );
    larder.kill(0);
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = search(&larder, "purl=pkg:npm/a@1.0.0").await;
        if found(&page) == [(r3, false), (r2, true), (r1, false)] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not backfilled: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        search(&larder, "purl=pkg:npm/a@1.0.0").await["meta"]["total"],
        3
    );
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_refuses_bad_queries_with_400() {
    let larder = Larder::start().await;
    for (query, message) in [
        ("", "Either the \"purl\" parameter or the \"type\" and \"name\" parameters are required"),
        ("type=npm", "Either the \"purl\" parameter or the \"type\" and \"name\" parameters are required"),
        ("purl=pkg:npm/a@1&type=npm&name=a", "The \"purl\" parameter cannot be combined with \"type\" or \"name\""),
        ("purl=pkg:npm/a@1&version=1", "The \"version\" parameter cannot be combined with \"purl\" (a purl names its version)"),
        ("purl=lodash", "The \"purl\" parameter is not a valid package URL: lodash"),
        ("type=npm&name=a&state=done", "done is not a valid request state. Valid states are: complete, failed, in_progress, stale"),
        ("type=npm&name=a&per_page=x", "The \"per_page\" parameter must be an integer of at least 1"),
        ("type=npm&name=a&sort=id", "The following query parameters are invalid: sort"),
    ] {
        let (status, body) = larder.get(&format!("/api/v1/dependencies?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body, json!({"error": message}), "{query}");
    }
    // nothing indexed yet: an empty first page
    let (status, body) = larder.get("/api/v1/dependencies?type=npm&name=a").await;
    assert_eq!((status, &body["items"]), (200, &json!([])), "{body}");
}
