//! Bad input gets a 400 with Cachito's message; auth is enforced when tokens are configured.

use crate::support::*;
use serde_json::{json, Value};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

async fn expect_400(larder: &Larder, body: Value, message: &str) {
    let (status, answer) = larder.post("/api/v1/requests", &body).await;
    assert_eq!(status, 400, "{body} -> {answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(message),
        "{body}: expected {message:?}, got {answer}"
    );
}

#[tokio::test]
async fn every_validation_rule_answers_400() {
    let larder = Larder::start().await;
    let repo = "https://github.com/org/repo.git";
    let cases = [
        (json!(["not", "an", "object"]), "The input data must be a JSON object"),
        (json!({"repo": repo}), "Missing required parameter(s): ref"),
        (json!({"ref": SHA}), "Missing required parameter(s): repo"),
        (json!({"repo": repo, "ref": SHA, "colour": "blue"}), "The following parameters are invalid: colour"),
        (json!({"repo": repo, "ref": "main"}), "The \"ref\" parameter must be a 40 character hex string"),
        (json!({"repo": repo, "ref": SHA.to_uppercase()}), "The \"ref\" parameter must be a 40 character hex string"),
        (json!({"repo": repo, "ref": &SHA[..39]}), "The \"ref\" parameter must be a 40 character hex string"),
        (json!({"repo": format!("https://h/{}", "x".repeat(200)), "ref": SHA}), "The \"repo\" parameter must be shorter than 200 characters"),
        (json!({"repo": "ftp://h/x", "ref": SHA}), "The \"repo\" parameter must be a https, http, git or ssh URL"),
        (json!({"repo": "not a url", "ref": SHA}), "The \"repo\" parameter must be a https, http, git or ssh URL"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": "npm"}), "The \"pkg_managers\" value must be an array of strings"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm", "maven"]}), "The following package managers are invalid: maven"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "packages": []}), "The \"packages\" parameter must be an object"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "packages": {"pip": [{"path": "a"}]}}), "The following package managers in the \"packages\" object do not apply: pip"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["git-submodule"], "packages": {"git-submodule": [{"path": "a"}]}}), "are unsupported: git-submodule"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "packages": {"npm": [{"path": "a", "x": 1}]}}), "The value of \"packages.npm\" must be an array of objects with the following keys: path"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "packages": {"npm": [{"path": "../outside"}]}}), "The \"path\" values in the \"packages.npm\" value must be to a relative path in the source repository"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "packages": {"npm": [{"path": "/etc"}]}}), "must be to a relative path in the source repository"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["gomod"], "packages": {"gomod": [{"path": "a/../../b"}]}}), "must be to a relative path in the source repository"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["pip"], "packages": {"pip": [{"path": ".", "requirements_files": ["../req.txt"]}]}}), "The \"requirements_files\" values in the \"packages.pip\" value must be to a relative path"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm", "yarn"]}), "The following paths cannot be processed by both 'npm' and 'yarn': ."),
        (json!({"repo": repo, "ref": SHA, "flags": ["turbo"]}), "Invalid/Inactive flag(s): turbo"),
        (json!({"repo": repo, "ref": SHA, "dependency_replacements": {}}), "\"dependency_replacements\" must be an array"),
        (json!({"repo": repo, "ref": SHA, "dependency_replacements": [{"name": "x"}]}), "A dependency replacement must be a JSON object with the following keys: name, type, version."),
        (json!({"repo": repo, "ref": SHA, "dependency_replacements": [{"name": "x", "type": "gomod", "version": 1}]}), "The \"version\" key of the dependency replacement must be a string"),
        (json!({"repo": repo, "ref": SHA, "pkg_managers": ["npm"], "dependency_replacements": [{"name": "x", "type": "npm", "version": "1"}]}), "Dependency replacements are not yet supported for the npm package manager"),
        (json!({"repo": repo, "ref": SHA, "user": "alice"}), "Cannot set \"user\" when authentication is disabled"),
    ];
    for (body, message) in cases {
        expect_400(&larder, body, message).await;
    }
    // Not JSON at all.
    let resp = larder
        .http
        .post(format!("{}/api/v1/requests", larder.url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string());
    // Nothing was recorded.
    let (_, list) = larder.get("/api/v1/requests").await;
    assert_eq!(list["meta"]["total"], 0);

    // Query validation on the list endpoint.
    for (query, message) in [
        ("state=done", "done is not a valid request state. Valid states are: complete, failed, in_progress, stale"),
        ("ref=abc", "The \"ref\" parameter must be a 40 character hex string"),
        ("pkg_manager=maven", "Cachito does not have package manager maven."),
        ("per_page=0", "per_page"),
        ("page=x", "page"),
        ("sort=id", "The following query parameters are invalid: sort"),
    ] {
        let (status, body) = larder.get(&format!("/api/v1/requests?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["error"].as_str().unwrap().contains(message), "{query}: {body}");
    }
}

#[tokio::test]
async fn local_repositories_need_the_setting() {
    let mut larder = Larder::new();
    larder
        .env
        .insert("LARDER_ALLOW_LOCAL_REPOS".into(), "false".into());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    for repo in ["/srv/git/repo", "file:///srv/git/repo"] {
        expect_400(
            &larder,
            json!({"repo": repo, "ref": SHA}),
            "local repositories are not allowed",
        )
        .await;
    }
    for repo in [
        "https://github.com/o/r",
        "http://h/r.git",
        "git://h/r",
        "ssh://git@h/r.git",
        "git@github.com:o/r.git",
    ] {
        let (status, body) = larder
            .post(
                "/api/v1/requests",
                &json!({"repo": repo, "ref": SHA, "pkg_managers": []}),
            )
            .await;
        assert_eq!(status, 201, "{repo}: {body}");
    }
}

#[tokio::test]
async fn unknown_ids_and_unfinished_downloads() {
    let larder = Larder::start().await;
    for path in [
        "/api/v1/requests/424242",
        "/api/v1/requests/424242/download",
        "/api/v1/requests/424242/logs",
        "/api/v1/requests/424242/environment-variables",
        "/api/v1/requests/424242/configuration-files",
        "/api/v1/requests/424242/content-manifest",
        "/api/v1/requests/abc",
        "/no/such/route",
    ] {
        let (status, body) = larder.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            body["error"], "The requested resource was not found",
            "{path}"
        );
    }
    // A request that cannot finish soon: its repository host does not answer.
    let id = larder
        .submit(json!({"repo": "https://127.0.0.1:9/none.git", "ref": SHA, "pkg_managers": []}))
        .await;
    let (status, body) = larder
        .get(&format!("/api/v1/requests/{id}/content-manifest"))
        .await;
    if status == 400 {
        assert_eq!(body["error"], "Content manifests are only available for requests in the \"complete\" or \"stale\" states");
    }
    let done = larder.wait(id).await;
    assert_eq!(done["state"], "failed");
    let (status, body) = larder.get(&format!("/api/v1/requests/{id}/download")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "The request must be in the \"complete\" state before downloading the archive"
    );
}

#[tokio::test]
async fn auth_guards_submission_and_worker_endpoints() {
    let mut larder = Larder::new();
    larder.env.insert(
        "LARDER_API_TOKENS".into(),
        "usertok=alice,reptok=osbs:representative,worktok=bot:worker".into(),
    );
    larder
        .env
        .insert("LARDER_WORKER_TOKEN".into(), "worktok".into());
    larder.spawn("serve", &[]);
    larder.wait_healthy().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a", "a");
    let body = json!({"repo": repo.url(), "ref": commit, "pkg_managers": []});

    // No token, a wrong token: 401.
    let (status, answer) = larder.post("/api/v1/requests", &body).await;
    assert_eq!(status, 401, "{answer}");
    larder.token = Some("wrong".into());
    assert_eq!(larder.post("/api/v1/requests", &body).await.0, 401);

    // A user submits; the owner is recorded.
    larder.token = Some("usertok".into());
    let id = larder.submit(body.clone()).await;
    let done = larder.wait(id).await;
    assert_eq!(
        done["state"], "complete",
        "the in-process worker authenticates with its token"
    );
    assert_eq!(done["user"], "alice");

    // On behalf of someone else: only representatives.
    let mut on_behalf = body.clone();
    on_behalf["user"] = json!("bob");
    let (status, answer) = larder.post("/api/v1/requests", &on_behalf).await;
    assert_eq!(status, 403);
    assert_eq!(
        answer["error"],
        "You are not authorized to create a request on behalf of another user"
    );
    larder.token = Some("reptok".into());
    let id2 = larder.submit(on_behalf).await;
    let (_, r) = larder.get(&format!("/api/v1/requests/{id2}")).await;
    assert_eq!(r["user"], "bob");
    assert_eq!(r["submitted_by"], "osbs");

    // Worker endpoints: 401 without a token, 403 with a user token, allowed for workers.
    let patch = json!({"state": "in_progress", "state_reason": "poke"});
    let worker_calls: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::PATCH,
            format!("/api/v1/requests/{id}"),
            patch.clone(),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/requests/{id}/configuration-files"),
            json!([]),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/requests/{id}/claim"),
            json!({"worker": "w-1"}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/requests/{id}/heartbeat"),
            json!({"attempt": 1}),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/requests/{id}/artifacts"),
            json!([]),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/requests/{id}/logs?writer=w-1&seq=0"),
            json!("not even a line"),
        ),
    ];
    for (method, path, payload) in &worker_calls {
        let url = format!("{}{path}", larder.url);
        let req = || larder.http.request(method.clone(), &url).json(payload);
        assert_eq!(
            req().send().await.unwrap().status(),
            401,
            "{method} {path} without a token"
        );
        let resp = req().bearer_auth("usertok").send().await.unwrap();
        assert_eq!(resp.status(), 403, "{method} {path} with a user token");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(
            answer["error"],
            "This API endpoint is restricted to Cachito workers"
        );
    }
    // a worker may claim; this request is complete, so the claim is refused for that reason
    let resp = larder
        .http
        .post(format!("{}/api/v1/requests/{id}/claim", larder.url))
        .json(&json!({"worker": "w-1"}))
        .bearer_auth("worktok")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"], format!("Request {id} is complete"));
    // A worker cannot submit.
    larder.token = Some("worktok".into());
    assert_eq!(larder.post("/api/v1/requests", &body).await.0, 403);
    // Reads stay anonymous, as in Cachito.
    larder.token = None;
    assert_eq!(larder.get(&format!("/api/v1/requests/{id}")).await.0, 200);
}

#[tokio::test]
async fn patch_follows_the_state_machine() {
    let larder = Larder::start().await;
    let work = tempfile::tempdir().unwrap();
    let (repo, commit) = GitRepo::with_file(work.path().join("repo"), "a", "a");
    let id = larder
        .submit(json!({"repo": repo.url(), "ref": commit, "pkg_managers": []}))
        .await;
    larder.wait(id).await;
    let patch = |body: Value| {
        let url = format!("{}/api/v1/requests/{id}", larder.url);
        let http = larder.http.clone();
        async move {
            let resp = http.patch(url).json(&body).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (body, message) in [
        (
            json!({}),
            "At least one key must be specified to update the request",
        ),
        (
            json!({"color": "x"}),
            "The following keys are not allowed: color",
        ),
        (
            json!({"state": "complete"}),
            "The \"state_reason\" key is required when \"state\" is supplied",
        ),
        (
            json!({"state": "done", "state_reason": "x"}),
            "The state \"done\" is invalid",
        ),
        (
            json!({"state": "in_progress", "state_reason": "again"}),
            "State transition is not allowed from complete to in_progress.",
        ),
        (
            json!({"environment_variables": {"A": {"value": "x", "kind": "weird"}}}),
            "The environment variable kind, weird, is not supported",
        ),
    ] {
        let (status, answer) = patch(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    // Repeating the current state and reason is accepted without a new history row.
    assert_eq!(
        patch(json!({"state": "complete", "state_reason": "Completed successfully"}))
            .await
            .0,
        200
    );
    let (_, r) = larder.get(&format!("/api/v1/requests/{id}")).await;
    assert_eq!(
        r["state_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "complete")
            .count(),
        1
    );
    assert_eq!(
        patch(json!({"environment_variables": {"FOO": {"value": "bar", "kind": "literal"}}}))
            .await
            .0,
        200
    );
    let (_, env) = larder
        .get(&format!("/api/v1/requests/{id}/environment-variables"))
        .await;
    assert_eq!(env["FOO"], json!({"value": "bar", "kind": "literal"}));
    assert_eq!(
        patch(json!({"state": "stale", "state_reason": "The request has expired"}))
            .await
            .0,
        200
    );
    let (status, _) = patch(json!({"state": "complete", "state_reason": "back"})).await;
    assert_eq!(status, 400, "stale is terminal");
}
