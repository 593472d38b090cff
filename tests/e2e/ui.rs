//! The web pages in a real browser (headless Chromium through ChromeDriver) against a real
//! Larder: a request submitted through the API turns `complete` on the list without a reload,
//! its page (open in a second tab meanwhile) follows it to complete and then shows its packages
//! and log, the search finds it by a dependency's purl, a hostile
//! repository URL and state reason show as text and run nothing, and every page is written to
//! `target/ui-screenshots/` (at a desktop and at a phone width).

use crate::support::browser::{screenshot_dir, Browser};
use crate::support::npm_fixtures::{
    self, build, larder_for, write_registry, FixturePackage, RootProject, TreeEntry,
};
use crate::support::*;
use serde_json::json;
use std::time::Duration;

const HOSTILE_REPO: &str =
    "https://example.invalid/<script>document.title='pwned';window.__pwned=1</script>";
const HOSTILE_REASON: &str =
    "<img src=x onerror=\"window.__pwned=2\"><script>window.__pwned=3;document.title='pwned'</script>";

/// Whether any hostile script ran in the page (it would have set `window.__pwned` or the title).
async fn assert_nothing_ran(browser: &Browser, page: &str) {
    let pwned = browser
        .eval("return typeof window.__pwned;", json!([]))
        .await;
    assert_eq!(pwned, "undefined", "a script ran on {page}");
    assert!(!browser.title().await.contains("pwned"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_pages_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let up_dir = tmp.path().join("upstream");
    std::fs::create_dir_all(&up_dir).unwrap();
    let upstream = StaticServer::start(&up_dir).await;
    let leaf = build(&FixturePackage::new("leaf", "1.2.3"));
    let tool = build(&FixturePackage::new("devtool", "0.4.0"));
    write_registry(&up_dir, &upstream.url, &[leaf.clone(), tool.clone()]).unwrap();
    let mut root = RootProject {
        name: "webapp".into(),
        version: "1.0.0".into(),
        ..Default::default()
    };
    root.dependencies.insert("leaf".into(), "*".into());
    root.dev_dependencies.insert("devtool".into(), "*".into());
    let tree = [
        TreeEntry {
            location: "node_modules/leaf".into(),
            pkg: leaf.clone(),
            dev: false,
            optional: false,
        },
        TreeEntry {
            location: "node_modules/devtool".into(),
            pkg: tool.clone(),
            dev: true,
            optional: false,
        },
    ];
    let (repo, commit) =
        npm_fixtures::committed_project(tmp.path().join("webapp"), &root, &tree, "webapp");
    let larder = larder_for(&upstream).await;
    let shots = screenshot_dir();
    let browser = Browser::start(1280, 900).await;

    // held upstream: the request stays in progress until the list is on screen
    upstream.hold();
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"]}))
        .await;
    browser.goto(&format!("{}/ui/requests", larder.url)).await;
    let row = format!("tr[data-live-id=\"{id}\"] [data-state]");
    assert_eq!(
        browser.text(&row).await.as_deref(),
        Some("in_progress"),
        "the list shows the request in progress"
    );
    // a mark a navigation or reload would lose
    browser
        .eval("window.__sameDocument = 'kept'; return true;", json!([]))
        .await;
    let list_tab = browser.tab().await;
    // the request's own page, in a second tab, follows it too
    browser.new_tab().await;
    browser
        .goto(&format!("{}/ui/requests/{id}", larder.url))
        .await;
    assert_eq!(browser.text("#state").await.as_deref(), Some("in_progress"));
    assert_eq!(
        browser
            .eval(
                "return document.getElementById('live-note').hidden;",
                json!([])
            )
            .await,
        false,
        "the page says it follows the request"
    );
    upstream.release();
    browser
        .wait_for(
            "the request's page following it to complete, with its packages",
            "var s = document.getElementById('state'); \
             return !!s && s.textContent === 'complete' && !!document.querySelector('table.deps');",
            json!([]),
            Duration::from_secs(120),
        )
        .await;
    browser.switch_to(&list_tab).await;
    let row_complete = |id: i64| {
        format!(
            "var a = document.querySelector('a[href=\"/ui/requests/{id}\"]'); \
             if (!a) return false; var s = a.closest('tr').querySelector('[data-state]'); \
             return s.textContent === 'complete' && s.classList.contains('state-complete');"
        )
    };
    browser
        .wait_for(
            "the request turning complete",
            &row_complete(id),
            json!([]),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(
        browser
            .eval("return window.__sameDocument || null;", json!([]))
            .await,
        "kept",
        "the list updated without a reload"
    );
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "complete", "{done}");
    // a request made while the list is open appears on top of it (its dependencies are stored
    // already: it may be complete by then), and follows its state
    let second = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": ["npm"]}))
        .await;
    browser
        .wait_for(
            "the new request on top of the list",
            &format!(
                "var row = document.querySelector('#request-list tbody tr'); \
                 return !!row && row.querySelector('a').getAttribute('href') === '/ui/requests/{second}' \
                   && row.cells[1].textContent === {repo};",
                repo = serde_json::to_string(&repo.url()).unwrap()
            ),
            json!([]),
            Duration::from_secs(60),
        )
        .await;
    browser
        .wait_for(
            "the new request turning complete",
            &row_complete(second),
            json!([]),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(
        browser
            .eval(
                "return [window.__sameDocument || null, document.querySelectorAll('#request-list tbody tr').length];",
                json!([])
            )
            .await,
        json!(["kept", 2]),
        "the new request was added without a reload, once"
    );
    assert_eq!(larder.wait(second).await["state"], "complete");
    browser.screenshot(&shots.join("requests.png")).await;

    // the request's page: packages (dev marked), the log, links
    browser
        .goto(&format!("{}/ui/requests/{id}", larder.url))
        .await;
    assert_eq!(browser.text("#state").await.as_deref(), Some("complete"));
    let deps = browser
        .text("table.deps")
        .await
        .expect("a dependency table");
    assert!(deps.contains("leaf") && deps.contains("1.2.3"), "{deps}");
    assert!(deps.contains("devtool") && deps.contains("dev"), "{deps}");
    let dev_marked = browser
        .eval(
            "return Array.from(document.querySelectorAll('tr[data-dep]')).map(function (r) { \
               return r.cells[1].innerText + ':' + !!r.querySelector('.tag.dev'); }).sort().join(',');",
            json!([]),
        )
        .await;
    assert_eq!(dev_marked, "devtool:true,leaf:false");
    let log = browser.text("#log").await.unwrap_or_default();
    assert!(!log.trim().is_empty(), "the log tail is shown");
    for link in [
        format!("/api/v1/requests/{id}/download"),
        format!("/api/v1/requests/{id}/content-manifest"),
        format!("/api/v1/requests/{id}/sbom?format=cyclonedx"),
        format!("/api/v1/requests/{id}/sbom?format=spdx"),
    ] {
        let found = browser
            .eval(
                "return !!document.querySelector('a[href=\"' + arguments[0] + '\"]');",
                json!([link]),
            )
            .await;
        assert_eq!(found, true, "{link}");
        let status = larder
            .http
            .get(format!("{}{link}", larder.url))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{link}");
    }
    // the filter box hides the rows that do not match, as one types
    browser
        .eval(
            "var i = document.getElementById('dep-filter'); i.value = 'leaf'; \
             i.dispatchEvent(new Event('input')); return true;",
            json!([]),
        )
        .await;
    let visible = browser
        .eval(
            "return Array.from(document.querySelectorAll('tr[data-dep]')).filter(function (r) { return !r.hidden; }).length;",
            json!([]),
        )
        .await;
    assert_eq!(visible, 1);
    browser.screenshot(&shots.join("request.png")).await;

    // the search by a dependency's purl links the request
    let purl = "pkg:npm/leaf@1.2.3";
    browser
        .goto(&format!(
            "{}/ui/search?purl={}",
            larder.url,
            common::percent::encode_component(purl)
        ))
        .await;
    let results = browser.text("#search-results").await.unwrap_or_default();
    assert!(results.contains(&id.to_string()), "{results}");
    let linked = browser
        .eval(
            "return !!document.querySelector('#search-results a[href=\"/ui/requests/' + arguments[0] + '\"]');",
            json!([id]),
        )
        .await;
    assert_eq!(linked, true);
    browser.screenshot(&shots.join("search.png")).await;

    // hostile strings are text
    let hostile = larder
        .submit(json!({"repo": HOSTILE_REPO, "ref": commit, "pkg_managers": []}))
        .await;
    let failed = larder.wait(hostile).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let (status, body) = larder
        .patch(
            &format!("/api/v1/requests/{hostile}"),
            &json!({"state": "stale", "state_reason": HOSTILE_REASON}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for page in [
        "/ui/requests".to_string(),
        format!("/ui/requests/{hostile}"),
    ] {
        browser.goto(&format!("{}{page}", larder.url)).await;
        assert_nothing_ran(&browser, &page).await;
        let body = browser.text("body").await.unwrap_or_default();
        assert!(
            body.contains(HOSTILE_REPO),
            "{page} shows the repository as text:\n{body}"
        );
        assert!(
            body.contains(HOSTILE_REASON),
            "{page} shows the reason as text:\n{body}"
        );
    }
    browser.screenshot(&shots.join("hostile.png")).await;

    browser
        .goto(&format!("{}/ui/requests?state=failed", larder.url))
        .await;
    // the store's size by package manager: measured in the background when the page asks,
    // shown from then on (a measurement is at most 10 s old on a store this small)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        browser.goto(&format!("{}/ui/status", larder.url)).await;
        let npm = browser
            .eval(
                "var row = document.querySelector('#store-usage tr[data-area=\"deps/npm\"]'); \
                 return row ? [row.cells[1].textContent, row.cells[2].title] : null;",
                json!([]),
            )
            .await;
        if npm.is_array() {
            // the two tarballs of the project, and their bytes exactly
            let stored: u64 = ["leaf", "devtool"]
                .iter()
                .map(|name| {
                    let dir = larder.data.path().join("deps/npm").join(name).join("-");
                    std::fs::read_dir(&dir)
                        .unwrap()
                        .map(|e| e.unwrap().metadata().unwrap().len())
                        .sum::<u64>()
                })
                .sum();
            assert_eq!(npm, json!(["2", format!("{stored} bytes")]));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/ui/status never showed the npm files: {:?}",
            browser.text("main").await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let facts = browser.text("main").await.unwrap_or_default();
    assert!(facts.contains("Workers on queue"), "{facts}");
    assert_nothing_ran(&browser, "/ui/status").await;
    browser.screenshot(&shots.join("status.png")).await;
    browser.goto(&format!("{}/", larder.url)).await;
    assert_eq!(
        browser
            .eval("return document.documentElement.lang;", json!([]))
            .await,
        "en"
    );
    browser.screenshot(&shots.join("landing.png")).await;
    browser.goto(&format!("{}/api", larder.url)).await;
    assert!(browser.title().await.contains("Larder"));
    browser.quit().await;

    // at a phone's width: no page is wider than the screen (tables scroll in their own box)
    let phone = Browser::start(390, 844).await;
    for (page, name) in [
        ("/".to_string(), "landing"),
        ("/ui/requests".to_string(), "requests"),
        (format!("/ui/requests/{id}"), "request"),
        (
            format!(
                "/ui/search?purl={}",
                common::percent::encode_component(purl)
            ),
            "search",
        ),
        ("/ui/status".to_string(), "status"),
    ] {
        phone.goto(&format!("{}{page}", larder.url)).await;
        assert_eq!(
            phone
                .eval("return document.documentElement.clientWidth;", json!([]))
                .await,
            390,
            "{page} is laid out at the phone's width"
        );
        let overflow = phone
            .eval(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                json!([]),
            )
            .await;
        assert!(
            overflow.as_i64().unwrap_or(1) <= 0,
            "{page} overflows the phone's width by {overflow}px"
        );
        phone
            .screenshot(&shots.join(format!("phone-{name}.png")))
            .await;
    }
    phone.quit().await;
    for name in [
        "requests", "request", "search", "status", "landing", "hostile",
    ] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 1000,
            "{name}.png"
        );
    }
}

/// Without JavaScript (plain HTTP, as a browser with scripts off gets them) the pages hold
/// everything, and bad input is a 400 page, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_pages_without_javascript_and_bad_input() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("r"), "a", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    larder.wait(id).await;
    let get = |path: String| {
        let http = larder.http.clone();
        let url = format!("{}{path}", larder.url);
        async move {
            let resp = http.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, ctype, resp.text().await.unwrap())
        }
    };
    let (status, ctype, list) = get("/ui/requests?state=complete&per_page=5".into()).await;
    assert_eq!((status, ctype.as_str()), (200, "text/html; charset=utf-8"));
    assert!(
        list.contains(&format!("href=\"/ui/requests/{id}\"")),
        "{list}"
    );
    let (status, _, page) = get(format!("/ui/requests/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<span id=\"state\" class=\"state state-complete\">complete</span>"));
    for (path, expected) in [
        ("/ui/requests?state=done".to_string(), 400),
        ("/ui/requests?ref=nothex".into(), 400),
        ("/ui/requests?pkg_manager=nope".into(), 400),
        ("/ui/requests?before=x".into(), 400),
        ("/ui/requests?before=1&after=2".into(), 400),
        ("/ui/requests?page=2".into(), 400),
        ("/ui/requests?colour=red".into(), 400),
        ("/ui/requests?per_page=0".into(), 400),
        ("/ui/requests/abc".into(), 404),
        ("/ui/requests/99999999".into(), 404),
        ("/ui/requests/-1".into(), 404),
        ("/ui/search?purl=notapurl".into(), 400),
        ("/ui/search?type=npm".into(), 400),
        ("/ui/search?purl=pkg:npm/a@1&before=0".into(), 400),
        ("/ui/states?ids=1,x".into(), 400),
        ("/ui/requests/99999999/live".into(), 404),
        ("/ui/requests?repo=%FF%FE".into(), 200),
        ("/ui/search".into(), 200),
        ("/ui/status".into(), 200),
        ("/ui/static/larder.css".into(), 200),
        ("/ui/static/larder.js".into(), 200),
        ("/api".into(), 200),
        ("/".into(), 200),
    ] {
        let (status, _, body) = get(path.clone()).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    // paging by keyset, filters kept: three requests one a page
    let more: Vec<i64> = {
        let mut ids = vec![id];
        for _ in 0..2 {
            let next = larder
                .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
                .await;
            larder.wait(next).await;
            ids.push(next);
        }
        ids
    };
    let href = |page: &str, rel: &str| -> Option<String> {
        let at = page.find(&format!("rel=\"{rel}\""))?;
        let start = page[..at].rfind("href=\"")? + 6;
        let end = start + page[start..].find('"')?;
        Some(page[start..end].replace("&#38;", "&"))
    };
    let ids_on = |page: &str| -> Vec<i64> {
        more.iter()
            .copied()
            .filter(|i| page.contains(&format!("href=\"/ui/requests/{i}\"")))
            .collect()
    };
    let (_, _, newest) = get("/ui/requests?per_page=1&state=complete".into()).await;
    assert_eq!(ids_on(&newest), [more[2]]);
    assert_eq!(href(&newest, "prev"), None);
    let older = href(&newest, "next").expect("an older page");
    assert_eq!(
        older,
        format!("/ui/requests?per_page=1&state=complete&before={}", more[2])
    );
    let (_, _, middle) = get(older).await;
    assert_eq!(ids_on(&middle), [more[1]]);
    let newer = href(&middle, "prev").expect("a newer page");
    assert_eq!(
        newer,
        format!("/ui/requests?per_page=1&state=complete&after={}", more[1])
    );
    let (_, _, back) = get(newer).await;
    assert_eq!(ids_on(&back), [more[2]]);
    let (_, _, oldest) = get(href(&middle, "next").expect("the oldest page")).await;
    assert_eq!(ids_on(&oldest), [more[0]]);
    assert_eq!(href(&oldest, "next"), None);

    let (_, _, states) = get(format!("/ui/states?ids={id},99999999")).await;
    let states: serde_json::Value = serde_json::from_str(&states).unwrap();
    assert_eq!(states["requests"][0]["id"], id);
    assert_eq!(states["requests"][0]["state"], "complete");
    assert_eq!(states["requests"].as_array().unwrap().len(), 1);
}

/// With authentication on, a request's page shows its configuration files' contents only to
/// those the API lets read them (its submitter, a representative, a worker), as
/// `GET …/configuration-files` decides; anyone else sees their paths and a note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_request_page_shows_secrets_only_to_their_readers() {
    use base64::Engine;
    let mut larder = Larder::new();
    larder.env.insert(
        "LARDER_API_TOKENS".into(),
        "alicetok=alice,bobtok=bob,reptok=osbs:representative,worktok=bot:worker".into(),
    );
    larder
        .env
        .insert("LARDER_WORKER_TOKEN".into(), "worktok".into());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("r"), "a", "a");
    larder.token = Some("alicetok".into());
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    assert_eq!(larder.wait(id).await["state"], "complete");
    larder.token = Some("worktok".into());
    let secret = "//registry/:_authToken=SECRET-VALUE-42";
    let (status, body) = larder
        .post(
            &format!("/api/v1/requests/{id}/configuration-files"),
            &json!([{"path": "app/.npmrc", "type": "base64",
                     "content": base64::engine::general_purpose::STANDARD.encode(secret)}]),
        )
        .await;
    assert!(
        status == 200 || status == 201 || status == 204,
        "{status} {body}"
    );
    let page_as = |token: Option<&'static str>| {
        let http = larder.http.clone();
        let url = format!("{}/ui/requests/{id}", larder.url);
        async move {
            let mut req = http.get(url);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    for reader in ["alicetok", "reptok", "worktok"] {
        let page = page_as(Some(reader)).await;
        assert!(page.contains(secret), "{reader} reads the file");
        assert!(page.contains("<code>app/.npmrc</code>"));
    }
    for (who, token) in [("anonymous", None), ("bob", Some("bobtok"))] {
        let page = page_as(token).await;
        assert!(!page.contains("SECRET-VALUE-42"), "{who} must not read it");
        assert!(
            page.contains("<code>app/.npmrc</code>"),
            "{who} sees the path"
        );
        assert!(page.contains("may read them"), "{who} is told why");
    }
}
